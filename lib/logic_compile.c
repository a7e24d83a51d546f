/* logic_compile.c - a trained logic gate network as a simplified circuit and its
 * bit-parallel evaluator (logic_compile.h). */
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

void da_logic_circuit_free(da_logic_circuit *c)
{
    if (!c)
        return;
    da_free(c->thresholds);
    da_free(c->gates);
    da_free(c->out);
    da_free(c);
}

/* translate the layers into the builder; refs of the last layer into c->out */
static int build_layers(da_logic_circuit *c, const da_logicnet *net, builder *B)
{
    int W = net->width, *ref = da_malloc((size_t)(net->n_bits > W ? net->n_bits : W) * sizeof *ref);
    int *next = da_malloc((size_t)W * sizeof *next), *gate = da_malloc((size_t)W * sizeof *gate);
    int rc = ref && next && gate ? DA_OK : da_set_error(DA_ENOMEM, "da_logic_circuit_new: "
                                                                   "out of memory");
    for (int i = 0; !rc && i < net->n_bits; i++)
        ref[i] = 2 * (1 + i);
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
    da_logic_circuit *c = da_calloc(1, sizeof *c);
    long cap = (long)net->n_layers * net->width;
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

/* counts [64 * lanes][n_classes] of the evaluated block, lanes <= LANES; plane is
 * scratch [planes] */
static void group_counts(const da_logic_circuit *c, uint64_t (*v)[LANES], int lanes,
                         uint64_t *plane, int *counts)
{
    for (int l = 0; l < lanes; l++)
        for (int k = 0; k < c->n_classes; k++) {
            memset(plane, 0, (size_t)c->planes * sizeof *plane);
            const int *out = c->out + (size_t)k * c->group;
            for (int o = 0; o < c->group; o++) {
                uint64_t carry = v[out[o] >> 1][l] ^ (0 - (uint64_t)(out[o] & 1));
                for (int p = 0; carry; p++) { /* ripple-carry add of one bit per lane */
                    uint64_t t = plane[p] & carry;
                    plane[p] ^= carry;
                    carry = t;
                }
            }
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
    uint64_t (*v)[LANES] = da_calloc(nodes, sizeof *v), *plane = da_calloc((size_t)c->planes + 1, 8);
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
    if (!da_all_finite_f32(x, n * c->n_inputs))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in x", who);
    size_t nodes = (size_t)c->n_bits + 1 + c->n_gates;
    uint64_t (*v)[LANES] = da_calloc(nodes, sizeof *v), *plane = da_calloc((size_t)c->planes + 1, 8);
    int *counts = da_malloc((size_t)64 * LANES * c->n_classes * sizeof *counts);
    if (!v || !plane || !counts) {
        da_free(v);
        da_free(plane);
        da_free(counts);
        return da_set_error(DA_ENOMEM, "%s: out of memory", who);
    }
    for (long off = 0; off < n; off += 64 * LANES) {
        int m = n - off < 64 * LANES ? (int)(n - off) : 64 * LANES;
        memset(v + 1, 0, (size_t)c->n_bits * sizeof *v);
        for (int s = 0; s < m; s++) {
            const float *xs = x + (size_t)(off + s) * c->n_inputs;
            for (int t = 0; t < c->n_thresholds; t++) {
                uint64_t (*vt)[LANES] = v + 1 + (size_t)t * c->n_inputs;
                for (int i = 0; i < c->n_inputs; i++) /* branch-free */
                    vt[i][s >> 6] |= (uint64_t)(xs[i] > c->thresholds[t]) << (s & 63);
            }
        }
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
    return DA_OK;
}
