/* logic_compile.c - a trained logic gate network as a simplified circuit and its
 * bit-parallel evaluator (logic_compile.h). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "logic_compile_impl.h"
#include "alloc.h"
#include "simd.h"

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

/* c->runs: the maximal runs of one op in the scheduled gates */
static void make_runs(da_logic_circuit *c)
{
    c->n_runs = 0;
    for (int g = 0; g < c->n_gates; g++)
        if (g && c->gates[g].op == c->gates[g - 1].op)
            c->runs[c->n_runs - 1].end = g + 1;
        else
            c->runs[c->n_runs++] = (da_logic_run){c->gates[g].op, g, g + 1};
}

static int compare_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* c->steps, c->out_slot, c->n_slots: a slot per node, a dead node's slot reused by the
 * next gate (last in, first out: recently used memory); last [nodes] and slot [nodes]
 * scratch, free_slots [nodes] the stack */
static void assign_slots(da_logic_circuit *c, int *last, int *slot, int *free_slots)
{
    int first = c->n_bits + 1, nodes = first + c->n_gates, top = 0;
    for (int i = 0; i < nodes; i++)
        last[i] = -1;
    for (int g = 0; g < c->n_gates; g++)
        last[c->gates[g].a] = last[c->gates[g].b] = g;
    for (int o = 0; o < c->n_out; o++)
        last[c->out[o] >> 1] = c->n_gates; /* live to the end */
    c->n_slots = first;
    for (int i = 0; i < first; i++) {
        slot[i] = i;
        if (i && last[i] < 0) /* an input nobody reads */
            free_slots[top++] = i;
    }
    for (int g = 0; g < c->n_gates; g++) {
        int a = c->gates[g].a, b = c->gates[g].b; /* distinct, never node 0 */
        c->steps[g].a = slot[a];
        c->steps[g].b = slot[b];
        if (last[a] == g)
            free_slots[top++] = slot[a];
        if (last[b] == g)
            free_slots[top++] = slot[b];
        slot[first + g] = top ? free_slots[--top] : c->n_slots++;
        c->steps[g].y = slot[first + g];
    }
    for (int o = 0; o < c->n_out; o++)
        c->out_slot[o] = 2 * slot[c->out[o] >> 1] + (c->out[o] & 1);
    for (int k = 0; k < c->n_classes; k++) /* a count ignores the order: read memory in order */
        qsort(c->out_slot + (size_t)k * c->group, (size_t)c->group, sizeof *c->out_slot,
              compare_int);
}

/* the evaluation plan: runs, steps, slots */
static int make_plan(da_logic_circuit *c)
{
    size_t nodes = (size_t)c->n_bits + 1 + c->n_gates;
    int *last = da_malloc(nodes * sizeof *last), *slot = da_malloc(nodes * sizeof *slot);
    int *free_slots = da_malloc(nodes * sizeof *free_slots);
    c->runs = da_malloc(((size_t)c->n_gates + 1) * sizeof *c->runs);
    c->steps = da_malloc(((size_t)c->n_gates + 1) * sizeof *c->steps);
    c->out_slot = da_malloc((size_t)c->n_out * sizeof *c->out_slot);
    int rc = last && slot && free_slots && c->runs && c->steps && c->out_slot
                 ? DA_OK
                 : da_set_error(DA_ENOMEM, "da_logic_circuit_new: out of memory");
    if (!rc) {
        make_runs(c);
        assign_slots(c, last, slot, free_slots);
    }
    da_free(last);
    da_free(slot);
    da_free(free_slots);
    return rc;
}

/* the largest float <= t (t itself when it is a float) */
static float float_at_most(double t)
{
    float f = (float)t;
    return (double)f > t ? nextafterf(f, -INFINITY) : f;
}

void da_logic_circuit_free(da_logic_circuit *c)
{
    if (!c)
        return;
    da_free(c->thresholds);
    da_free(c->thr_f);
    da_free(c->runs);
    da_free(c->steps);
    da_free(c->out_slot);
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
        c->thr_f = da_malloc((size_t)net->n_thresholds * sizeof *c->thr_f);
        c->out = da_malloc((size_t)net->width * sizeof *c->out);
        B.gates = da_malloc((size_t)cap * sizeof *B.gates);
        B.hash = da_calloc(B.hsize, sizeof *B.hash);
    }
    if (!c || !c->thresholds || !c->thr_f || !c->out || !B.gates || !B.hash) {
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
    for (int t = 0; t < c->n_thresholds; t++)
        c->thr_f[t] = float_at_most(c->thresholds[t]);
    c->gates_before = cap;
    int rc = build_layers(c, net, &B);
    da_free(B.hash);
    c->gates = B.gates;
    c->n_gates = B.n;
    if (!rc)
        rc = eliminate_dead(c);
    if (!rc)
        rc = schedule(c);
    if (!rc)
        rc = make_plan(c);
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

/* ---- evaluation: blocks of 64 LANES samples, one bit per sample ---- */

/* a node's value over the block: bit s of word l is sample 64 l + s */
typedef uint64_t lanes __attribute__((vector_size(8 * LANES)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef uint32_t u32x8 __attribute__((vector_size(32)));
typedef uint64_t u64x4 __attribute__((vector_size(32)));

/* 1 if every x [n] is finite: the largest |x| as an integer is below the bits of
 * infinity (a sequential pass, the first touch of the rows) */
static inline __attribute__((always_inline)) int all_finite(long n, const float *x)
{
    uint32_t top = 0;
#pragma omp simd reduction(max : top)
    for (long i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        u &= 0x7fffffffu;
        top = u > top ? u : top;
    }
    return top < 0x7f800000u;
}

/* acc [nv]: bit s = x[s][8 k + j] > th in lane j of acc[k], samples s < ms <= 32 of rows
 * x [ms][n] (compare, shift, subtract the all-ones mask; nv independent chains) */
static inline __attribute__((always_inline)) void shift_in(const float *x, int n, int ms,
                                                          float th, int nv, u32x8 *acc)
{
    f32x8 tv = {th, th, th, th, th, th, th, th};
#pragma GCC unroll 4
    for (int k = 0; k < nv; k++)
        acc[k] = (u32x8){0};
    for (int s = ms - 1; s >= 0; s--) /* sample s ends at bit s */
#pragma GCC unroll 4
        for (int k = 0; k < nv; k++) {
            f32x8 xv;
            memcpy(&xv, x + (size_t)s * n + 8 * k, sizeof xv);
            acc[k] = (acc[k] << 1) - (u32x8)(xv > tv);
        }
}

/* word l of the values of inputs node [8 nv]: samples 0-31 from lo [nv], 32-63 from hi */
static inline __attribute__((always_inline)) void put_words(lanes *node, int l, int nv,
                                                           const u32x8 *lo, const u32x8 *hi)
{
#pragma GCC unroll 4
    for (int k = 0; k < nv; k++) {
        u64x4 w0 = __builtin_convertvector(__builtin_shufflevector(lo[k], lo[k], 0, 1, 2, 3),
                                           u64x4) |
                   __builtin_convertvector(__builtin_shufflevector(hi[k], hi[k], 0, 1, 2, 3),
                                           u64x4) << 32;
        u64x4 w1 = __builtin_convertvector(__builtin_shufflevector(lo[k], lo[k], 4, 5, 6, 7),
                                           u64x4) |
                   __builtin_convertvector(__builtin_shufflevector(hi[k], hi[k], 4, 5, 6, 7),
                                           u64x4) << 32;
        for (int j = 0; j < 4; j++) {
            node[8 * k + j][l] = w0[j];
            node[8 * k + 4 + j][l] = w1[j];
        }
    }
}

/* the words of inputs node [8 nv] from rows x [ms][n] (ms <= 64), 32 samples at a time */
static inline __attribute__((always_inline)) void bits64(const float *x, int n, int ms,
                                                        float th, int nv, lanes *node, int l)
{
    u32x8 lo[4], hi[4] = {{0}};
    shift_in(x, n, ms < 32 ? ms : 32, th, nv, lo);
    if (ms > 32)
        shift_in(x + (size_t)32 * n, n, ms - 32, th, nv, hi);
    put_words(node, l, nv, lo, hi);
}

/* v [1 + n_bits]: the input bits of samples x [m][n_inputs], m <= 64 LANES: bit t *
 * n_inputs + i of sample s is x[s][i] > threshold t (the same as x[s][i] > thr_f[t] for
 * a float x), computed 64 samples (checked finite first, then in cache) and 32 inputs
 * at a time. 0, or -1 if an x is NaN or infinite. */
SIMD_CLONES static int binarize(const da_logic_circuit *c, const float *x, int m, lanes *v)
{
    int n = c->n_inputs;
    if (m < 64 * LANES) /* lanes past the samples: zeros */
        memset(v + 1, 0, (size_t)c->n_bits * sizeof *v);
    for (int l = 0; 64 * l < m; l++) {
        int ms = m - 64 * l < 64 ? m - 64 * l : 64;
        const float *xs = x + (size_t)64 * l * n;
        if (!all_finite((long)ms * n, xs))
            return -1;
        for (int t = 0; t < c->n_thresholds; t++) {
            lanes *vt = v + 1 + (size_t)t * n;
            float th = c->thr_f[t];
            int i = 0;
            for (; i + 32 <= n; i += 32)
                bits64(xs + i, n, ms, th, 4, vt + i, l);
            for (; i + 8 <= n; i += 8)
                bits64(xs + i, n, ms, th, 1, vt + i, l);
            for (; i < n; i++) {
                uint64_t bits = 0;
                for (int s = ms - 1; s >= 0; s--)
                    bits = bits << 1 | (xs[(size_t)s * n + i] > th);
                vt[i][l] = bits;
            }
        }
    }
    return 0;
}

/* v [n_slots]: inputs filled, slot 0 zero; computes every gate, run by run of one op */
SIMD_CLONES static void eval_gates(const da_logic_circuit *c, lanes *v)
{
    const da_logic_step *p = c->steps;
    for (int r = 0; r < c->n_runs; r++) {
        int lo = c->runs[r].start, hi = c->runs[r].end;
        switch (c->runs[r].op) {
        case DA_LOGIC_OP_AND:
            for (int k = lo; k < hi; k++)
                v[p[k].y] = v[p[k].a] & v[p[k].b];
            break;
        case DA_LOGIC_OP_ANDNOT:
            for (int k = lo; k < hi; k++)
                v[p[k].y] = v[p[k].a] & ~v[p[k].b];
            break;
        case DA_LOGIC_OP_XOR:
            for (int k = lo; k < hi; k++)
                v[p[k].y] = v[p[k].a] ^ v[p[k].b];
            break;
        default:
            for (int k = lo; k < hi; k++)
                v[p[k].y] = v[p[k].a] | v[p[k].b];
        }
    }
}

/* carry-save adder: hi, lo = the two bits of a + b + c, per bit position */
#define CSA(hi, lo, a, b, c)                                                              \
    do {                                                                                  \
        lanes u_ = (a) ^ (b), c_ = (c);                                                   \
        (hi) = ((a) & (b)) | (u_ & c_);                                                   \
        (lo) = u_ ^ c_;                                                                   \
    } while (0)

/* plane [max(planes, 4)]: the bit planes of the number of true outputs among the slot
 * refs out [n] per sample (Harley-Seal: carry-save adders over blocks of 16 outputs,
 * the sixteens rippling into the planes from 4 on) */
static inline __attribute__((always_inline)) void count_planes(const lanes *v, const int *out,
                                                              int n, lanes *plane, int planes)
{
    lanes ones = {0}, twos = {0}, fours = {0}, eights = {0}, w[16];
    for (int p = 4; p < planes; p++)
        plane[p] = (lanes){0};
    for (int o = 0; o < n; o += 16) {
        for (int i = 0; i < 16; i++) /* zeros past the end */
            w[i] = o + i < n ? v[out[o + i] >> 1] ^ ((lanes){0} - (uint64_t)(out[o + i] & 1))
                             : (lanes){0};
        lanes t0, t1, t2, t3, f0, f1, e0, e1, carry;
        CSA(t0, ones, ones, w[0], w[1]);
        CSA(t1, ones, ones, w[2], w[3]);
        CSA(f0, twos, twos, t0, t1);
        CSA(t2, ones, ones, w[4], w[5]);
        CSA(t3, ones, ones, w[6], w[7]);
        CSA(f1, twos, twos, t2, t3);
        CSA(e0, fours, fours, f0, f1);
        CSA(t0, ones, ones, w[8], w[9]);
        CSA(t1, ones, ones, w[10], w[11]);
        CSA(f0, twos, twos, t0, t1);
        CSA(t2, ones, ones, w[12], w[13]);
        CSA(t3, ones, ones, w[14], w[15]);
        CSA(f1, twos, twos, t2, t3);
        CSA(e1, fours, fours, f0, f1);
        CSA(carry, eights, eights, e0, e1);
        for (int p = 4; p < planes; p++) { /* ripple-carry add of the sixteens */
            lanes t = plane[p] & carry;
            plane[p] ^= carry;
            carry = t;
        }
    }
    plane[0] = ones, plane[1] = twos, plane[2] = fours, plane[3] = eights;
}

/* pred [m] of the evaluated block: the first class of maximal count, found bit-sliced
 * (a comparator from the top plane down and a multiplexer per class) */
SIMD_CLONES static void argmax_block(const da_logic_circuit *c, const lanes *v, int m, int *pred)
{
    lanes cnt[DA_LOGIC_MAX_PLANES + 4], best[DA_LOGIC_MAX_PLANES + 4], idx[32] = {{0}};
    int P = c->planes, ib = 0;
    while ((1L << ib) < c->n_classes)
        ib++;
    count_planes(v, c->out_slot, c->group, best, P);
    for (int k = 1; k < c->n_classes; k++) {
        count_planes(v, c->out_slot + (size_t)k * c->group, c->group, cnt, P);
        lanes gt = {0}, eq = ~(lanes){0};
        for (int p = P - 1; p >= 0; p--) {
            gt |= eq & cnt[p] & ~best[p];
            eq &= ~(cnt[p] ^ best[p]);
        }
        for (int p = 0; p < P; p++)
            best[p] ^= (best[p] ^ cnt[p]) & gt;
        for (int b = 0; b < ib; b++)
            idx[b] = (k >> b) & 1 ? idx[b] | gt : idx[b] & ~gt;
    }
    for (int s = 0; s < m; s++) {
        int k = 0;
        for (int b = 0; b < ib; b++)
            k |= (int)((idx[b][s / 64] >> (s % 64)) & 1) << b;
        pred[s] = k;
    }
}

/* scratch values of one block: [n_slots], aligned, slot 0 zero */
static lanes *node_values(const da_logic_circuit *c)
{
    lanes *v = da_aligned_alloc(sizeof *v, (size_t)c->n_slots * sizeof *v);
    if (v)
        v[0] = (lanes){0};
    return v;
}

int da_logic_circuit_counts64(const da_logic_circuit *c, const uint64_t *in, int *counts)
{
    if (!c || !in || !counts)
        return da_set_error(DA_EINVAL, "da_logic_circuit_counts64: NULL argument");
    lanes *v = node_values(c), plane[DA_LOGIC_MAX_PLANES + 4];
    if (!v)
        return da_set_error(DA_ENOMEM, "da_logic_circuit_counts64: out of memory");
    for (int i = 0; i < c->n_bits; i++)
        v[1 + i] = (lanes){in[i]};
    eval_gates(c, v);
    for (int k = 0; k < c->n_classes; k++) {
        count_planes(v, c->out_slot + (size_t)k * c->group, c->group, plane, c->planes);
        for (int s = 0; s < 64; s++) {
            int n = 0;
            for (int p = 0; p < c->planes; p++)
                n |= (int)((plane[p][0] >> s) & 1) << p;
            counts[(size_t)s * c->n_classes + k] = n;
        }
    }
    da_free(v);
    return DA_OK;
}

int da_logic_circuit_predict(const da_logic_circuit *c, long n, const float *x, int *pred)
{
    static const char who[] = "da_logic_circuit_predict";
    if (!c || !x || !pred)
        return da_set_error(DA_EINVAL, "%s: NULL argument", who);
    if (n < 1)
        return da_set_error(DA_ERANGE, "%s: n = %ld must be >= 1", who, n);
    lanes *v = node_values(c);
    if (!v)
        return da_set_error(DA_ENOMEM, "%s: out of memory", who);
    int rc = DA_OK;
    for (long off = 0; off < n; off += 64 * LANES) {
        int m = n - off < 64 * LANES ? (int)(n - off) : 64 * LANES;
        if (binarize(c, x + (size_t)off * c->n_inputs, m, v)) {
            rc = da_set_error(DA_ENAN, "%s: NaN or Inf in x (rows %ld to %ld)", who, off,
                              off + m - 1);
            break;
        }
        eval_gates(c, v);
        argmax_block(c, v, m, pred + off);
    }
    da_free(v);
    return rc;
}
