/* logic_compile.c - a trained logic gate network as a simplified circuit and its
 * bit-parallel evaluator (logic_compile.h). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "logic_compile_impl.h"
#include "alloc.h"

/* samples per evaluator pass: LANES words of 64 */
#define LANES 4

/* ---- construction ---- */

typedef struct {
    da_logic_cgate *gates;
    int n, cap, first; /* first = node number of gate 0 */
    int *hash;         /* [hsize] gate index + 1, 0 = empty */
    size_t hsize;
} builder;

static size_t hash_of(int op, int a, int b, size_t size)
{
    size_t h = (size_t)op * 0x9e3779b97f4a7c15ULL ^ (size_t)a * 0xbf58476d1ce4e5b9ULL ^
               (size_t)b * 0x94d049bb133111ebULL;
    return (h ^ (h >> 29)) & (size_t)(size - 1);
}

/* the node of gate (op, a, b), merged with an identical existing gate */
static int add_gate(builder *B, int op, int a, int b)
{
    size_t h = hash_of(op, a, b, B->hsize);
    while (B->hash[h]) {
        const da_logic_cgate *g = &B->gates[B->hash[h] - 1];
        if (g->op == op && g->a == a && g->b == b)
            return B->first + B->hash[h] - 1;
        h = (h + 1) & (B->hsize - 1);
    }
    B->gates[B->n] = (da_logic_cgate){op, a, b};
    B->hash[h] = ++B->n;
    return B->first + B->n - 1;
}

/* value of difflogic gate g on logical inputs a, b (table column AB = 00, 01, 10, 11
 * is bit 3, 2, 1, 0 of g) */
static int gate_value(int g, int a, int b)
{
    return (g >> (3 - 2 * a - b)) & 1;
}

/* reference of a function of one node x given u(0), u(1) */
static int unary_ref(int x, int u0, int u1)
{
    if (u0 == u1)
        return u0; /* constant: ref 0 or 1 */
    return 2 * x + u0; /* u(x) = x (u0 = 0) or not x (u0 = 1) */
}

/* the reference computing difflogic gate g of references ra, rb */
static int make_gate(builder *B, int g, int ra, int rb)
{
    int x = ra >> 1, y = rb >> 1, sx = ra & 1, sy = rb & 1;
    int f[2][2]; /* f[x][y] over the nodes' values */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            f[i][j] = gate_value(g, i ^ sx, j ^ sy);
    if (x == 0) /* node 0 is the constant false */
        return y == 0 ? f[0][0] : unary_ref(y, f[0][0], f[0][1]);
    if (y == 0)
        return unary_ref(x, f[0][0], f[1][0]);
    if (x == y)
        return unary_ref(x, f[0][0], f[1][1]);
    if (f[0][0] == f[1][0] && f[0][1] == f[1][1]) /* ignores x */
        return unary_ref(y, f[0][0], f[0][1]);
    if (f[0][0] == f[0][1] && f[1][0] == f[1][1]) /* ignores y */
        return unary_ref(x, f[0][0], f[1][0]);
    int neg = f[0][0], t01 = f[0][1] ^ neg, t10 = f[1][0] ^ neg, t11 = f[1][1] ^ neg;
    int lo = x < y ? x : y, hi = x < y ? y : x, node;
    if (t01 && t10)
        node = add_gate(B, t11 ? DA_LOGIC_OP_OR : DA_LOGIC_OP_XOR, lo, hi);
    else if (t11)
        node = add_gate(B, DA_LOGIC_OP_AND, lo, hi);
    else
        node = t10 ? add_gate(B, DA_LOGIC_OP_ANDNOT, x, y) : add_gate(B, DA_LOGIC_OP_ANDNOT, y, x);
    return 2 * node + neg;
}

/* remove gates that no output reaches; renumber the rest in order */
static int eliminate_dead(da_logic_circuit *c)
{
    int first = c->n_bits + 1;
    char *live = da_calloc((size_t)c->n_gates + 1, 1);
    int *newnode = da_malloc(((size_t)first + c->n_gates) * sizeof *newnode);
    if (!live || !newnode) {
        da_free(live);
        da_free(newnode);
        return da_set_error(DA_ENOMEM, "da_logic_circuit_new: out of memory");
    }
    for (int o = 0; o < c->n_out; o++)
        if ((c->out[o] >> 1) >= first)
            live[(c->out[o] >> 1) - first] = 1;
    for (int g = c->n_gates - 1; g >= 0; g--)
        if (live[g]) {
            if (c->gates[g].a >= first)
                live[c->gates[g].a - first] = 1;
            if (c->gates[g].b >= first)
                live[c->gates[g].b - first] = 1;
        }
    for (int i = 0; i < first; i++)
        newnode[i] = i;
    int n = 0;
    for (int g = 0; g < c->n_gates; g++)
        if (live[g]) {
            da_logic_cgate k = c->gates[g];
            c->gates[n] = (da_logic_cgate){k.op, newnode[k.a], newnode[k.b]};
            newnode[first + g] = first + n++;
        }
    for (int o = 0; o < c->n_out; o++)
        c->out[o] = 2 * newnode[c->out[o] >> 1] + (c->out[o] & 1);
    c->n_gates = n;
    da_free(live);
    da_free(newnode);
    return DA_OK;
}

/* reorder the gates by level (longest path from the inputs), then by op: a topological
 * order in which the evaluator's switch over ops runs in long, predictable runs */
static int schedule(da_logic_circuit *c)
{
    int first = c->n_bits + 1, n = c->n_gates, top = 0;
    int *level = da_malloc(((size_t)n + 1) * sizeof *level);
    int *newnode = da_malloc(((size_t)first + n) * sizeof *newnode);
    da_logic_cgate *sorted = da_malloc(((size_t)n + 1) * sizeof *sorted);
    int *count = NULL;
    for (int g = 0; level && g < n; g++) {
        int la = c->gates[g].a >= first ? level[c->gates[g].a - first] : 0;
        int lb = c->gates[g].b >= first ? level[c->gates[g].b - first] : 0;
        level[g] = 1 + (la > lb ? la : lb);
        top = level[g] > top ? level[g] : top;
    }
    size_t keys = ((size_t)top + 1) * 4;
    if (level && newnode && sorted)
        count = da_calloc(keys + 1, sizeof *count);
    if (!count) {
        da_free(level);
        da_free(newnode);
        da_free(sorted);
        return da_set_error(DA_ENOMEM, "da_logic_circuit_new: out of memory");
    }
    for (int g = 0; g < n; g++) /* counting sort by (level, op), stable */
        count[(size_t)level[g] * 4 + c->gates[g].op + 1]++;
    for (size_t k = 1; k <= keys; k++)
        count[k] += count[k - 1];
    for (int i = 0; i < first; i++)
        newnode[i] = i;
    for (int g = 0; g < n; g++)
        newnode[first + g] = first + count[(size_t)level[g] * 4 + c->gates[g].op]++;
    for (int g = 0; g < n; g++) {
        const da_logic_cgate *k = &c->gates[g];
        sorted[newnode[first + g] - first] = (da_logic_cgate){k->op, newnode[k->a], newnode[k->b]};
    }
    memcpy(c->gates, sorted, (size_t)n * sizeof *sorted);
    for (int o = 0; o < c->n_out; o++)
        c->out[o] = 2 * newnode[c->out[o] >> 1] + (c->out[o] & 1);
    da_free(level);
    da_free(newnode);
    da_free(sorted);
    da_free(count);
    return DA_OK;
}

void da_logic_circuit_free(da_logic_circuit *c)
{
    if (!c)
        return;
    da_free(c->thresholds);
    da_free(c->gates);
    da_free(c->out);
    da_free(c);
}

/* ---- convolutional stages, unrolled: one gate per tree gate and position ---- */

/* the gate of every tree gate (first maximal logit) */
static void tree_gates(const da_logic_conv *L, int *gate)
{
    const double *w = L->w->data;
    for (long j = 0; j < L->w->size / DA_LOGIC_N_GATES; j++) {
        const double *wj = w + j * DA_LOGIC_N_GATES;
        int arg = 0;
        for (int g = 1; g < DA_LOGIC_N_GATES; g++)
            if (wj[g] > wj[arg])
                arg = g;
        gate[j] = arg;
    }
}

/* ref of leaf (channel, dy, dx) at output (oy, ox): the input's, or false in the padding */
static int leaf_ref(const da_logic_conv *L, const int *f, int oy, int ox, const int *in)
{
    const da_logic_conv_spec *s = &L->spec;
    int y = oy * s->stride - s->pad + f[1], x = ox * s->stride - s->pad + f[2];
    if (y < 0 || y >= s->in_h || x < 0 || x >= s->in_w)
        return 0;
    return in[((size_t)f[0] * s->in_h + y) * s->in_w + x];
}

/* out [C][H][W] = refs of the stage's outputs from the refs in [in_c][in_h][in_w];
 * gate [out_c * n_gates] and v [n_gates] scratch */
static void build_stage(builder *B, const da_logic_conv *L, const int *in, int *out, int *gate,
                        int *v)
{
    const da_logic_conv_spec *s = &L->spec;
    if (L->w)
        tree_gates(L, gate);
    for (int k = 0; k < L->out_c; k++)
        for (int oy = 0; oy < L->out_h; oy++)
            for (int ox = 0; ox < L->out_w; ox++) {
                int r;
                if (L->w) { /* level by level, as logic_conv.h numbers the gates */
                    const int *leaf = L->leaf + (size_t)k * L->n_leaves * 3, *gk = gate + (size_t)k * L->n_gates;
                    int n0 = L->n_leaves / 2, g = 0;
                    for (; g < n0; g++)
                        v[g] = make_gate(B, gk[g], leaf_ref(L, leaf + 6 * g, oy, ox, in),
                                         leaf_ref(L, leaf + 6 * g + 3, oy, ox, in));
                    for (int n = n0, below = 0; n > 1; below += n, n /= 2)
                        for (int i = 0; i < n / 2; i++, g++)
                            v[g] = make_gate(B, gk[g], v[below + 2 * i], v[below + 2 * i + 1]);
                    r = v[L->n_gates - 1];
                } else { /* OR pooling: a chain of OR gates (difflogic gate 7) */
                    const int *base = in + ((size_t)k * s->in_h + (size_t)oy * s->stride) * s->in_w +
                                      (size_t)ox * s->stride;
                    r = base[0];
                    for (int i = 1; i < s->size * s->size; i++)
                        r = make_gate(B, 7, r, base[(i / s->size) * s->in_w + i % s->size]);
                }
                out[((size_t)k * L->out_h + oy) * L->out_w + ox] = r;
            }
}

/* gates before folding: tree gates and OR gates at every position, dense neurons */
static long count_gates(const da_logicnet *net)
{
    long n = (long)net->n_layers * net->width;
    for (int s = 0; s < net->n_conv; s++) {
        const da_logic_conv *L = net->conv[s];
        long per = L->w ? L->n_gates : (long)L->spec.size * L->spec.size - 1;
        n += da_logic_conv_out_size(L) * per;
    }
    return n;
}

/* translate the layers into the builder; refs of the last layer into c->out */
static int build_layers(da_logic_circuit *c, const da_logicnet *net, builder *B)
{
    long big = net->n_bits > net->width ? net->n_bits : net->width, ngate = net->width;
    for (int s = 0; s < net->n_conv; s++) {
        const da_logic_conv *L = net->conv[s];
        big = da_logic_conv_out_size(L) > big ? da_logic_conv_out_size(L) : big;
        ngate = L->w && L->w->size / 16 > ngate ? L->w->size / 16 : ngate;
    }
    int W = net->width, *ref = da_malloc((size_t)big * sizeof *ref);
    int *next = da_malloc((size_t)big * sizeof *next), *gate = da_malloc((size_t)ngate * sizeof *gate);
    int v[1 << DA_LOGIC_CONV_MAX_DEPTH];
    int rc = ref && next && gate ? DA_OK : da_set_error(DA_ENOMEM, "da_logic_circuit_new: "
                                                                   "out of memory");
    for (int i = 0; !rc && i < net->n_bits; i++)
        ref[i] = 2 * (1 + i);
    for (int s = 0; !rc && s < net->n_conv; s++) {
        build_stage(B, net->conv[s], ref, next, gate, v);
        memcpy(ref, next, (size_t)da_logic_conv_out_size(net->conv[s]) * sizeof *ref);
    }
    for (int l = 0; !rc && l < net->n_layers; l++) {
        rc = da_logicnet_gates(net, l, gate);
        for (int j = 0; !rc && j < W; j++)
            next[j] = make_gate(B, gate[j], ref[net->ia[l][j]], ref[net->ib[l][j]]);
        memcpy(ref, next, (size_t)W * sizeof *ref);
    }
    if (!rc)
        memcpy(c->out, ref, (size_t)W * sizeof *ref);
    da_free(ref);
    da_free(next);
    da_free(gate);
    return rc;
}

da_logic_circuit *da_logic_circuit_new(const da_logicnet *net)
{
    if (!net) {
        da_set_error(DA_EINVAL, "da_logic_circuit_new: NULL net");
        return NULL;
    }
    long cap = count_gates(net);
    if (cap > (1L << 28)) {
        da_set_error(DA_ERANGE, "da_logic_circuit_new: %ld gates (at most 2^28)", cap);
        return NULL;
    }
    da_logic_circuit *c = da_calloc(1, sizeof *c);
    builder B = {NULL, 0, (int)cap, net->n_bits + 1, NULL, 2};
    while (B.hsize < 2 * (size_t)cap)
        B.hsize *= 2;
    if (c) {
        c->thresholds = da_malloc((size_t)net->n_thresholds * sizeof *c->thresholds);
        c->out = da_malloc((size_t)net->width * sizeof *c->out);
        B.gates = da_malloc((size_t)cap * sizeof *B.gates);
        B.hash = da_calloc(B.hsize, sizeof *B.hash);
    }
    if (!c || !c->thresholds || !c->out || !B.gates || !B.hash) {
        da_logic_circuit_free(c);
        da_free(B.gates);
        da_free(B.hash);
        da_set_error(DA_ENOMEM, "da_logic_circuit_new: out of memory");
        return NULL;
    }
    c->n_inputs = net->n_inputs;
    c->n_thresholds = net->n_thresholds;
    c->n_bits = net->n_bits;
    c->n_classes = net->n_classes;
    c->n_out = net->width;
    c->group = net->width / net->n_classes;
    while ((1L << c->planes) <= c->group)
        c->planes++;
    memcpy(c->thresholds, net->thresholds, (size_t)net->n_thresholds * sizeof *c->thresholds);
    c->gates_before = cap;
    int rc = build_layers(c, net, &B);
    da_free(B.hash);
    c->gates = B.gates;
    c->n_gates = B.n;
    if (!rc)
        rc = eliminate_dead(c);
    if (!rc)
        rc = schedule(c);
    if (rc) {
        da_logic_circuit_free(c);
        return NULL;
    }
    return c;
}

da_logic_circuit_stats da_logic_circuit_get_stats(const da_logic_circuit *c)
{
    da_logic_circuit_stats s = {0};
    if (!c)
        return s;
    s.gates_before = c->gates_before;
    s.gates_after = c->n_gates;
    for (int g = 0; g < c->n_gates; g++) {
        int op = c->gates[g].op;
        s.n_and += op == DA_LOGIC_OP_AND;
        s.n_andnot += op == DA_LOGIC_OP_ANDNOT;
        s.n_xor += op == DA_LOGIC_OP_XOR;
        s.n_or += op == DA_LOGIC_OP_OR;
    }
    s.n_outputs = c->n_out;
    for (int o = 0; o < c->n_out; o++)
        s.n_const_outputs += (c->out[o] >> 1) == 0;
    return s;
}

/* ---- evaluation ---- */

#if defined(__x86_64__) && defined(__GNUC__)
#define SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SIMD_CLONES
#endif

/* w [n] |= bit s of (x[i] > t) (vectorized over the inputs; a float compare where it
 * equals the double one, i.e. when t is a float) */
SIMD_CLONES static void threshold_bits(int n, const float *x, double t, int s, uint64_t *w)
{
    float tf = (float)t;
    uint64_t bit = (uint64_t)1 << s;
    if ((double)tf == t) {
#pragma omp simd
        for (int i = 0; i < n; i++)
            w[i] |= x[i] > tf ? bit : 0;
    } else {
#pragma omp simd
        for (int i = 0; i < n; i++)
            w[i] |= (double)x[i] > t ? bit : 0;
    }
}

/* 1 if every x [n] is finite (vectorized) */
SIMD_CLONES static int all_finite(long n, const float *x)
{
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (long i = 0; i < n; i++)
        bad |= !(fabsf(x[i]) <= FLT_MAX);
    return !bad;
}

/* v [1 + n_bits][LANES]: the input bits of samples x [m][n_inputs], m <= 64 LANES;
 * w is scratch [n_inputs] */
static void binarize_block(const da_logic_circuit *c, const float *x, int m,
                           uint64_t (*v)[LANES], uint64_t *w)
{
    for (int t = 0; t < c->n_thresholds; t++)
        for (int l = 0; l < LANES; l++) {
            memset(w, 0, (size_t)c->n_inputs * sizeof *w);
            for (int s = 64 * l; s < m && s < 64 * (l + 1); s++)
                threshold_bits(c->n_inputs, x + (size_t)s * c->n_inputs, c->thresholds[t],
                               s & 63, w);
            for (int i = 0; i < c->n_inputs; i++)
                v[1 + (size_t)t * c->n_inputs + i][l] = w[i];
        }
}

/* v [nodes][LANES]: inputs filled, node 0 zero; computes every gate */
static void eval_gates(const da_logic_circuit *c, uint64_t (*v)[LANES])
{
    int first = c->n_bits + 1;
    for (int g = 0; g < c->n_gates; g++) {
        const uint64_t *a = v[c->gates[g].a], *b = v[c->gates[g].b];
        uint64_t *y = v[first + g];
        switch (c->gates[g].op) {
        case DA_LOGIC_OP_AND:
            for (int l = 0; l < LANES; l++)
                y[l] = a[l] & b[l];
            break;
        case DA_LOGIC_OP_ANDNOT:
            for (int l = 0; l < LANES; l++)
                y[l] = a[l] & ~b[l];
            break;
        case DA_LOGIC_OP_XOR:
            for (int l = 0; l < LANES; l++)
                y[l] = a[l] ^ b[l];
            break;
        default:
            for (int l = 0; l < LANES; l++)
                y[l] = a[l] | b[l];
        }
    }
}

/* carry-save adder: hi, lo = the two bits of a + b + c, per bit position */
static inline void csa(uint64_t *hi, uint64_t *lo, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t u = a ^ b;
    *hi = (a & b) | (u & c);
    *lo = u ^ c;
}

/* adds the 8 words w into the counter bits ones, twos, fours; returns the carry of
 * weight 8 */
static uint64_t csa8(const uint64_t *w, uint64_t *ones, uint64_t *twos, uint64_t *fours)
{
    uint64_t ta, tb, fa, fb, e;
    csa(&ta, ones, *ones, w[0], w[1]);
    csa(&tb, ones, *ones, w[2], w[3]);
    csa(&fa, twos, *twos, ta, tb);
    csa(&ta, ones, *ones, w[4], w[5]);
    csa(&tb, ones, *ones, w[6], w[7]);
    csa(&fb, twos, *twos, ta, tb);
    csa(&e, fours, *fours, fa, fb);
    return e;
}

/* plane [>= 5]: the bit planes of the number of true outputs among out [n] in lane l,
 * per sample (Harley-Seal: carry-save adders over blocks of 16 words, the sixteens
 * rippling into the planes from 4 on) */
static void count_planes(uint64_t (*v)[LANES], const int *out, int n, int l, uint64_t *plane,
                         int planes)
{
    uint64_t ones = 0, twos = 0, fours = 0, eights = 0, w[16];
    memset(plane, 0, (size_t)planes * sizeof *plane);
    for (int o = 0; o < n; o += 16) {
        for (int i = 0; i < 16; i++) /* zeros past the end */
            w[i] = o + i < n ? v[out[o + i] >> 1][l] ^ (0 - (uint64_t)(out[o + i] & 1)) : 0;
        uint64_t ea = csa8(w, &ones, &twos, &fours), eb = csa8(w + 8, &ones, &twos, &fours);
        uint64_t carry;
        csa(&carry, &eights, eights, ea, eb);
        for (int p = 4; carry; p++) { /* ripple-carry add of the sixteens */
            uint64_t t = plane[p] & carry;
            plane[p] ^= carry;
            carry = t;
        }
    }
    plane[0] = ones, plane[1] = twos, plane[2] = fours, plane[3] = eights;
}

/* counts [64 * lanes][n_classes] of the evaluated block, lanes <= LANES; plane is
 * scratch [planes + 5] */
static void group_counts(const da_logic_circuit *c, uint64_t (*v)[LANES], int lanes,
                         uint64_t *plane, int *counts)
{
    for (int l = 0; l < lanes; l++)
        for (int k = 0; k < c->n_classes; k++) {
            count_planes(v, c->out + (size_t)k * c->group, c->group, l, plane, c->planes + 5);
            for (int s = 0; s < 64; s++) {
                int n = 0;
                for (int p = 0; p < c->planes; p++)
                    n |= (int)((plane[p] >> s) & 1) << p;
                counts[(size_t)(64 * l + s) * c->n_classes + k] = n;
            }
        }
}

int da_logic_circuit_counts64(const da_logic_circuit *c, const uint64_t *in, int *counts)
{
    if (!c || !in || !counts)
        return da_set_error(DA_EINVAL, "da_logic_circuit_counts64: NULL argument");
    size_t nodes = (size_t)c->n_bits + 1 + c->n_gates;
    uint64_t (*v)[LANES] = da_calloc(nodes, sizeof *v), *plane = da_calloc((size_t)c->planes + 5, 8);
    if (!v || !plane) {
        da_free(v);
        da_free(plane);
        return da_set_error(DA_ENOMEM, "da_logic_circuit_counts64: out of memory");
    }
    for (int i = 0; i < c->n_bits; i++)
        v[1 + i][0] = in[i];
    eval_gates(c, v);
    group_counts(c, v, 1, plane, counts);
    da_free(v);
    da_free(plane);
    return DA_OK;
}

int da_logic_circuit_predict(const da_logic_circuit *c, long n, const float *x, int *pred)
{
    static const char who[] = "da_logic_circuit_predict";
    if (!c || !x || !pred)
        return da_set_error(DA_EINVAL, "%s: NULL argument", who);
    if (n < 1)
        return da_set_error(DA_ERANGE, "%s: n = %ld must be >= 1", who, n);
    if (!all_finite(n * c->n_inputs, x))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in x", who);
    size_t nodes = (size_t)c->n_bits + 1 + c->n_gates;
    uint64_t (*v)[LANES] = da_calloc(nodes, sizeof *v), *plane = da_calloc((size_t)c->planes + 5, 8);
    int *counts = da_malloc((size_t)64 * LANES * c->n_classes * sizeof *counts);
    uint64_t *w = da_malloc((size_t)c->n_inputs * sizeof *w);
    if (!v || !plane || !counts || !w) {
        da_free(v);
        da_free(plane);
        da_free(counts);
        da_free(w);
        return da_set_error(DA_ENOMEM, "%s: out of memory", who);
    }
    for (long off = 0; off < n; off += 64 * LANES) {
        int m = n - off < 64 * LANES ? (int)(n - off) : 64 * LANES;
        binarize_block(c, x + (size_t)off * c->n_inputs, m, v, w);
        eval_gates(c, v);
        group_counts(c, v, (m + 63) / 64, plane, counts);
        for (int s = 0; s < m; s++) {
            const int *cs = counts + (size_t)s * c->n_classes;
            int best = 0;
            for (int k = 1; k < c->n_classes; k++)
                if (cs[k] > cs[best])
                    best = k;
            pred[off + s] = best;
        }
    }
    da_free(v);
    da_free(plane);
    da_free(counts);
    da_free(w);
    return DA_OK;
}
