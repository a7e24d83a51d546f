/* logic_conv.c - logic tree convolutions and logical OR pooling (logic_conv.h).
 *
 * Paper: Petersen et al., "Convolutional Differentiable Logic Gate Networks", NeurIPS
 * 2024: Section 3.1 (logic tree kernels: a binary tree of gates over a receptive field of
 * 2 channels, shared across positions), Section 3.2 (OR pooling relaxed by max),
 * Section 3.3 (residual initialization). Every gate is the bilinear form of logic.c,
 * C0 + C1 a + C2 b + C3 ab with the softmax-weighted coefficients (eq. 3 of the 2022
 * paper), so one gate over all positions is a stream of 4-product evaluations; the
 * backward of a gate at a position sends g (C1 + C3 b) to a and g (C2 + C3 a) to b and adds
 * g (1, a, b, ab) to the gate's four sums S, from which logic.c's da_logic_logits_grad
 * gives the logit gradient (the sums run over the batch and all positions, since the
 * gates are shared).
 * One sample at a time per thread: the input is copied into a zero-padded image, the
 * tree values of one kernel at all positions [n_gates][P] are computed level by level
 * (the backward recomputes them), so the workspace is per thread and small. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "logic_conv.h"
#include "alloc.h"
#include "simd.h"

/* below this many gate evaluations per call a loop runs on one thread */
#define PAR_MIN 32768L

static int out_extent(int in, int size, int stride, int pad)
{
    return in + 2 * pad < size ? 0 : (in + 2 * pad - size) / stride + 1;
}

static int check_spec(const da_logic_conv_spec *s)
{
    static const char who[] = "da_logic_conv_new";
    if (s->kind != DA_LOGIC_CONV_TREE && s->kind != DA_LOGIC_CONV_OR_POOL)
        return da_set_error(DA_EINVAL, "%s: unknown stage kind %d", who, (int)s->kind);
    int tree = s->kind == DA_LOGIC_CONV_TREE;
    if (s->in_c < 1 || s->in_h < 1 || s->in_w < 1 || s->in_c > DA_LOGIC_CONV_MAX_DIM ||
        s->in_h > DA_LOGIC_CONV_MAX_DIM || s->in_w > DA_LOGIC_CONV_MAX_DIM ||
        (long)s->in_c * s->in_h * s->in_w > DA_LOGIC_CONV_MAX_UNITS)
        return da_set_error(DA_ERANGE, "%s: input %d x %d x %d out of range", who, s->in_c,
                            s->in_h, s->in_w);
    if (s->size < 1 || s->size > DA_LOGIC_CONV_MAX_SIZE || s->stride < 1 ||
        s->stride > DA_LOGIC_CONV_MAX_DIM || s->pad < 0 || s->pad >= s->size ||
        (!tree && s->pad))
        return da_set_error(DA_ERANGE, "%s: size %d, stride %d, pad %d out of range (pad < "
                            "size, no padding for a pool)", who, s->size, s->stride, s->pad);
    if (tree && (s->out_c < 1 || s->out_c > DA_LOGIC_CONV_MAX_DIM || s->depth < 1 ||
                 s->depth > DA_LOGIC_CONV_MAX_DEPTH))
        return da_set_error(DA_ERANGE, "%s: %d kernels of depth %d out of range", who,
                            s->out_c, s->depth);
    int oh = out_extent(s->in_h, s->size, s->stride, s->pad);
    int ow = out_extent(s->in_w, s->size, s->stride, s->pad);
    if (oh < 1 || ow < 1)
        return da_set_error(DA_ERANGE, "%s: a %d x %d window does not fit the %d x %d input",
                            who, s->size, s->size, s->in_h, s->in_w);
    long units = (long)(tree ? s->out_c : s->in_c) * oh * ow;
    if (tree && units * ((1L << s->depth) - 1) > DA_LOGIC_CONV_MAX_UNITS)
        return da_set_error(DA_ERANGE, "%s: %ld gates per sample (at most %ld)", who,
                            units * ((1L << s->depth) - 1), DA_LOGIC_CONV_MAX_UNITS);
    return DA_OK;
}

int da_logic_conv_shape(const da_logic_conv_spec *spec, int *out_c, int *out_h, int *out_w)
{
    if (!spec)
        return da_set_error(DA_EINVAL, "da_logic_conv_shape: NULL spec");
    int rc = check_spec(spec);
    if (rc)
        return rc;
    if (out_c)
        *out_c = spec->kind == DA_LOGIC_CONV_TREE ? spec->out_c : spec->in_c;
    if (out_h)
        *out_h = out_extent(spec->in_h, spec->size, spec->stride, spec->pad);
    if (out_w)
        *out_w = out_extent(spec->in_w, spec->size, spec->stride, spec->pad);
    return DA_OK;
}

da_logic_conv *da_logic_conv_new(const da_logic_conv_spec *spec)
{
    if (!spec) {
        da_set_error(DA_EINVAL, "da_logic_conv_new: NULL spec");
        return NULL;
    }
    if (check_spec(spec))
        return NULL;
    da_logic_conv *L = da_calloc(1, sizeof *L);
    if (!L) {
        da_set_error(DA_ENOMEM, "da_logic_conv_new: out of memory");
        return NULL;
    }
    L->spec = *spec;
    int tree = spec->kind == DA_LOGIC_CONV_TREE;
    L->out_c = tree ? spec->out_c : spec->in_c;
    L->out_h = out_extent(spec->in_h, spec->size, spec->stride, spec->pad);
    L->out_w = out_extent(spec->in_w, spec->size, spec->stride, spec->pad);
    if (!tree) {
        L->spec.out_c = L->out_c;
        L->spec.depth = 0;
        return L;
    }
    L->n_leaves = 1 << spec->depth;
    L->n_gates = L->n_leaves - 1;
    int wshape[2] = {L->out_c * L->n_gates, DA_LOGIC_N_GATES};
    L->leaf = da_calloc((size_t)L->out_c * L->n_leaves * 3, sizeof *L->leaf);
    L->w = da_tensor_new(DA_F64, 2, wshape);
    if (L->w)
        L->w->requires_grad = 1; /* a parameter */
    if (!L->leaf || !L->w) {
        da_logic_conv_free(L);
        da_set_error(DA_ENOMEM, "da_logic_conv_new: out of memory");
        return NULL;
    }
    return L;
}

void da_logic_conv_free(da_logic_conv *L)
{
    if (!L)
        return;
    da_free(L->leaf);
    da_tensor_free(L->w);
    da_free(L);
}

long da_logic_conv_in_size(const da_logic_conv *L)
{
    return L ? (long)L->spec.in_c * L->spec.in_h * L->spec.in_w : 0;
}

long da_logic_conv_out_size(const da_logic_conv *L)
{
    return L ? (long)L->out_c * L->out_h * L->out_w : 0;
}

/* leaf from candidate q of the 2 size^2 inputs of channels c0, c1 */
static void set_leaf(int *leaf, int q, int size, int c0, int c1)
{
    int r = q % (size * size);
    leaf[0] = q < size * size ? c0 : c1;
    leaf[1] = r / size;
    leaf[2] = r % size;
}

int da_logic_conv_init(da_logic_conv *L, da_rng *rng, int residual_init)
{
    if (!L || !rng)
        return da_set_error(DA_EINVAL, "da_logic_conv_init: NULL stage or rng");
    if (L->spec.kind != DA_LOGIC_CONV_TREE)
        return DA_OK;
    int in_c = L->spec.in_c, size = L->spec.size;
    for (int k = 0; k < L->out_c; k++) {
        int c0 = (int)da_rng_int(rng, (unsigned long)in_c), c1 = c0;
        if (in_c > 1)
            c1 = (c0 + 1 + (int)da_rng_int(rng, (unsigned long)in_c - 1)) % in_c;
        int n_cand = (in_c > 1 ? 2 : 1) * size * size;
        for (int g = 0; g < L->n_leaves / 2; g++) {
            int qa = (int)da_rng_int(rng, (unsigned long)n_cand), qb = qa;
            if (n_cand > 1) /* a second, different input */
                qb = (qa + 1 + (int)da_rng_int(rng, (unsigned long)n_cand - 1)) % n_cand;
            int *leaf = L->leaf + ((size_t)k * L->n_leaves + 2 * g) * 3;
            set_leaf(leaf, qa, size, c0, c1);
            set_leaf(leaf + 3, qb, size, c0, c1);
        }
    }
    double *w = L->w->data;
    for (long i = 0; i < L->w->size; i++)
        w[i] = residual_init ? (i % DA_LOGIC_N_GATES == 3) * DA_LOGIC_RESIDUAL_LOGIT
                             : da_rng_normal(rng);
    return DA_OK;
}

int da_logic_conv_check_leaves(const da_logic_conv *L)
{
    if (!L)
        return da_set_error(DA_EINVAL, "da_logic_conv_check_leaves: NULL stage");
    for (long i = 0; i < (long)L->out_c * L->n_leaves; i++) {
        const int *f = L->leaf + 3 * i;
        if (f[0] < 0 || f[0] >= L->spec.in_c || f[1] < 0 || f[1] >= L->spec.size || f[2] < 0 ||
            f[2] >= L->spec.size)
            return da_set_error(DA_ERANGE, "logic conv: leaf %ld (%d, %d, %d) outside %d "
                                "channels x %d x %d", i, f[0], f[1], f[2], L->spec.in_c,
                                L->spec.size, L->spec.size);
    }
    return DA_OK;
}

/* ---- tree kernels ---- */

/* The streams over positions are vectorized (omp simd, SIMD_CLONES of simd.h). */
/* y [n] = c0 + c1 a + (c2 + c3 a) b with a, b read at strides sa, sb */
SIMD_CLONES static void gate_stream(int n, const double *a, int sa, const double *b, int sb,
                                    const double *c, double *restrict y)
{
    double c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
#pragma omp simd
    for (int p = 0; p < n; p++)
        y[p] = c0 + c1 * a[p * sa] + (c2 + c3 * a[p * sa]) * b[p * sb];
}

/* m [4] += sums of g * (1, a, b, ab) over n positions (a, b at strides sa, sb) */
SIMD_CLONES static void gate_sums(int n, const double *a, int sa, const double *b, int sb,
                                  const double *g, double *m)
{
    double m0 = 0, m1 = 0, m2 = 0, m3 = 0;
#pragma omp simd reduction(+ : m0, m1, m2, m3)
    for (int p = 0; p < n; p++) {
        double q = g[p], qb = q * b[p * sb];
        m0 += q, m1 += q * a[p * sa], m2 += qb, m3 += qb * a[p * sa];
    }
    m[0] += m0, m[1] += m1, m[2] += m2, m[3] += m3;
}

/* the cotangents ga, gb [n] (distinct rows) of a gate's operands a, b [n] */
SIMD_CLONES static void gate_operand_grads(int n, const double *a, const double *b,
                                           const double *g, const double *c,
                                           double *restrict ga, double *restrict gb)
{
    double c1 = c[1], c2 = c[2], c3 = c[3];
#pragma omp simd
    for (int p = 0; p < n; p++) {
        ga[p] = g[p] * (c1 + c3 * b[p]);
        gb[p] = g[p] * (c2 + c3 * a[p]);
    }
}

typedef struct {
    const da_logic_conv *L;
    int hp, wp, P;        /* padded input height, width; output positions */
    long padded;          /* in_c * hp * wp */
    int *off;             /* [out_c][n_leaves] leaf offsets in the padded input */
    int *kid;             /* [n_gates]: first child gate of an upper gate (-1: leaves) */
    double *coef;         /* [out_c * n_gates][4] */
    double *probs;        /* [out_c * n_gates][16] or NULL */
} tree_plan;

static void plan_free(tree_plan *T)
{
    da_free(T->off);
    da_free(T->kid);
    da_free(T->coef);
    da_free(T->probs);
}

static int plan_init(tree_plan *T, const da_logic_conv *L, const double *w, int hard,
                     int want_probs)
{
    const da_logic_conv_spec *s = &L->spec;
    long ng = (long)L->out_c * L->n_gates;
    *T = (tree_plan){L, s->in_h + 2 * s->pad, s->in_w + 2 * s->pad, L->out_h * L->out_w, 0,
                     NULL, NULL, NULL, NULL};
    T->padded = (long)s->in_c * T->hp * T->wp;
    T->off = da_malloc((size_t)L->out_c * L->n_leaves * sizeof *T->off);
    T->kid = da_malloc((size_t)L->n_gates * sizeof *T->kid);
    T->coef = da_malloc((size_t)ng * 4 * sizeof *T->coef);
    T->probs = want_probs ? da_malloc((size_t)ng * DA_LOGIC_N_GATES * sizeof *T->probs) : NULL;
    if (!T->off || !T->kid || !T->coef || (want_probs && !T->probs)) {
        plan_free(T);
        return da_set_error(DA_ENOMEM, "logic conv: out of memory");
    }
    for (long i = 0; i < (long)L->out_c * L->n_leaves; i++) {
        const int *f = L->leaf + 3 * i;
        T->off[i] = (f[0] * T->hp + f[1]) * T->wp + f[2];
    }
    int n0 = L->n_leaves / 2, g = 0, below = 0;
    for (; g < n0; g++)
        T->kid[g] = -1;
    for (int n = n0; n > 1; below += n, n /= 2)
        for (int i = 0; i < n / 2; i++)
            T->kid[g++] = below + 2 * i;
    da_logic_coeffs((int)ng, w, hard, T->coef, T->probs);
    return DA_OK;
}

/* xp [in_c][hp][wp]: x [in_c][in_h][in_w] with a zero border of pad */
static void pad_input(const tree_plan *T, const double *x, double *xp)
{
    const da_logic_conv_spec *s = &T->L->spec;
    memset(xp, 0, (size_t)T->padded * sizeof *xp);
    for (int c = 0; c < s->in_c; c++)
        for (int y = 0; y < s->in_h; y++)
            memcpy(xp + ((size_t)c * T->hp + y + s->pad) * T->wp + s->pad,
                   x + ((size_t)c * s->in_h + y) * s->in_w, (size_t)s->in_w * sizeof *xp);
}

/* v [n_gates][P]: the gate values of kernel k at every position */
static void tree_values(const tree_plan *T, int k, const double *xp, double *v)
{
    const da_logic_conv *L = T->L;
    int st = L->spec.stride, P = T->P;
    const int *off = T->off + (size_t)k * L->n_leaves;
    const double *coef = T->coef + (size_t)k * L->n_gates * 4;
    for (int g = 0; g < L->n_gates; g++) {
        const double *c = coef + 4 * g;
        double *restrict vg = v + (size_t)g * P;
        if (T->kid[g] < 0) {
            for (int oy = 0; oy < L->out_h; oy++) {
                size_t row = (size_t)oy * st * T->wp;
                gate_stream(L->out_w, xp + off[2 * g] + row, st, xp + off[2 * g + 1] + row, st, c,
                            vg + (size_t)oy * L->out_w);
            }
        } else {
            const double *a = v + (size_t)T->kid[g] * P;
            gate_stream(P, a, 1, a + P, 1, c, vg);
        }
    }
}

/* the backward of kernel k for one sample: gv [n_gates][P] scratch (the root's row is
 * the cotangent gy [P]); S [n_gates][4] += sums; gxp [padded] += input gradient */
static void tree_backward(const tree_plan *T, int k, const double *xp, const double *v,
                          const double *gy, double *gv, double *S, double *gxp)
{
    const da_logic_conv *L = T->L;
    int st = L->spec.stride, P = T->P;
    const int *off = T->off + (size_t)k * L->n_leaves;
    const double *coef = T->coef + (size_t)k * L->n_gates * 4;
    memcpy(gv + (size_t)(L->n_gates - 1) * P, gy, (size_t)P * sizeof *gv);
    for (int g = L->n_gates - 1; g >= 0; g--) {
        const double *c = coef + 4 * g, *gg = gv + (size_t)g * P;
        if (T->kid[g] < 0) { /* leaves: the operand rows may overlap, plain loop for gxp */
            for (int oy = 0; oy < L->out_h; oy++) {
                size_t row = (size_t)oy * st * T->wp;
                const double *ra = xp + off[2 * g] + row, *rb = xp + off[2 * g + 1] + row;
                double *ga = gxp + off[2 * g] + row, *gb = gxp + off[2 * g + 1] + row;
                const double *r = gg + (size_t)oy * L->out_w;
                gate_sums(L->out_w, ra, st, rb, st, r, S + 4 * g);
                for (int ox = 0; ox < L->out_w; ox++) {
                    double a = ra[ox * st], b = rb[ox * st], q = r[ox];
                    ga[ox * st] += q * (c[1] + c[3] * b);
                    gb[ox * st] += q * (c[2] + c[3] * a);
                }
            }
        } else {
            const double *a = v + (size_t)T->kid[g] * P;
            double *ga = gv + (size_t)T->kid[g] * P;
            gate_sums(P, a, 1, a + P, 1, gg, S + 4 * g);
            gate_operand_grads(P, a, a + P, gg, c, ga, ga + P);
        }
    }
}

/* gx [in_c][in_h][in_w] += the interior of gxp */
static void unpad_add(const tree_plan *T, const double *gxp, double *gx)
{
    const da_logic_conv_spec *s = &T->L->spec;
    for (int c = 0; c < s->in_c; c++)
        for (int y = 0; y < s->in_h; y++) {
            const double *src = gxp + ((size_t)c * T->hp + y + s->pad) * T->wp + s->pad;
            double *dst = gx + ((size_t)c * s->in_h + y) * s->in_w;
            for (int i = 0; i < s->in_w; i++)
                dst[i] += src[i];
        }
}

static int n_threads(const da_logic_conv *L, int batch)
{
    long work = (long)batch * da_logic_conv_out_size(L) * (L->n_gates ? L->n_gates : 1);
    return work > PAR_MIN ? omp_get_max_threads() : 1;
}

static int tree_forward(const da_logic_conv *L, const double *w, int batch, const double *x,
                        int hard, double *y)
{
    tree_plan T;
    int rc = plan_init(&T, L, w, hard, 0), nt = n_threads(L, batch);
    if (rc)
        return rc;
    size_t per = (size_t)T.padded + (size_t)L->n_gates * T.P;
    double *ws = da_malloc((size_t)nt * per * sizeof *ws);
    if (!ws) {
        plan_free(&T);
        return da_set_error(DA_ENOMEM, "logic conv: out of memory");
    }
    long in = da_logic_conv_in_size(L), out = da_logic_conv_out_size(L);
#pragma omp parallel num_threads(nt)
    {
        double *xp = ws + (size_t)omp_get_thread_num() * per, *v = xp + T.padded;
#pragma omp for schedule(static)
        for (int b = 0; b < batch; b++) {
            pad_input(&T, x + (size_t)b * in, xp);
            for (int k = 0; k < L->out_c; k++) {
                tree_values(&T, k, xp, v);
                memcpy(y + (size_t)b * out + (size_t)k * T.P, v + (size_t)(L->n_gates - 1) * T.P,
                       (size_t)T.P * sizeof *y);
            }
        }
    }
    da_free(ws);
    plan_free(&T);
    return DA_OK;
}

/* gx (+)= input gradient (may be NULL), gw += logit gradient (may be NULL) */
static int tree_backward_all(const da_logic_conv *L, const double *w, int batch,
                             const double *x, int hard, const double *gy, double *gx,
                             double *gw)
{
    tree_plan T;
    int want_w = gw && !hard, nt = n_threads(L, batch);
    if (!gx && !want_w)
        return DA_OK;
    int rc = plan_init(&T, L, w, hard, want_w);
    if (rc)
        return rc;
    size_t ns = (size_t)L->out_c * L->n_gates * 4;
    size_t per = 2 * (size_t)T.padded + 2 * (size_t)L->n_gates * T.P;
    double *ws = da_malloc((size_t)nt * per * sizeof *ws);
    double *part = da_calloc((size_t)nt * ns + ns, sizeof *part); /* [nt][ns], then S */
    if (!ws || !part) {
        da_free(ws);
        da_free(part);
        plan_free(&T);
        return da_set_error(DA_ENOMEM, "logic conv: out of memory");
    }
    long in = da_logic_conv_in_size(L), out = da_logic_conv_out_size(L);
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        double *xp = ws + (size_t)t * per, *gxp = xp + T.padded, *v = gxp + T.padded;
        double *gv = v + (size_t)L->n_gates * T.P, *S = part + (size_t)t * ns;
#pragma omp for schedule(static)
        for (int b = 0; b < batch; b++) {
            pad_input(&T, x + (size_t)b * in, xp);
            memset(gxp, 0, (size_t)T.padded * sizeof *gxp);
            for (int k = 0; k < L->out_c; k++) {
                tree_values(&T, k, xp, v);
                tree_backward(&T, k, xp, v, gy + (size_t)b * out + (size_t)k * T.P, gv,
                              S + (size_t)k * L->n_gates * 4, gxp);
            }
            if (gx)
                unpad_add(&T, gxp, gx + (size_t)b * in);
        }
    }
    if (want_w) {
        double *S = part + (size_t)nt * ns;
        for (int t = 0; t < nt; t++) /* thread order: deterministic */
            for (size_t i = 0; i < ns; i++)
                S[i] += part[(size_t)t * ns + i];
        da_logic_logits_grad(L->out_c * L->n_gates, T.probs, T.coef, S, gw);
    }
    da_free(ws);
    da_free(part);
    plan_free(&T);
    return DA_OK;
}

/* ---- OR pooling (max) ---- */

/* index in x [C][H][W] of the first maximum of the window of output o (c, oy, ox) */
static long pool_arg(const da_logic_conv *L, const double *x, long o)
{
    const da_logic_conv_spec *s = &L->spec;
    int ox = (int)(o % L->out_w), oy = (int)(o / L->out_w % L->out_h);
    long c = o / ((long)L->out_w * L->out_h);
    long base = (c * s->in_h + (long)oy * s->stride) * s->in_w + (long)ox * s->stride, arg = base;
    for (int dy = 0; dy < s->size; dy++)
        for (int dx = 0; dx < s->size; dx++) {
            long i = base + (long)dy * s->in_w + dx;
            if (x[i] > x[arg])
                arg = i;
        }
    return arg;
}

static void pool_forward(const da_logic_conv *L, int batch, const double *x, double *y)
{
    long in = da_logic_conv_in_size(L), out = da_logic_conv_out_size(L);
#pragma omp parallel for schedule(static) if (batch * out > PAR_MIN)
    for (int b = 0; b < batch; b++)
        for (long o = 0; o < out; o++)
            y[(size_t)b * out + o] = x[(size_t)b * in + pool_arg(L, x + (size_t)b * in, o)];
}

static void pool_backward(const da_logic_conv *L, int batch, const double *x, const double *gy,
                          double *gx)
{
    long in = da_logic_conv_in_size(L), out = da_logic_conv_out_size(L);
#pragma omp parallel for schedule(static) if (batch * out > PAR_MIN)
    for (int b = 0; b < batch; b++)
        for (long o = 0; o < out; o++)
            gx[(size_t)b * in + pool_arg(L, x + (size_t)b * in, o)] += gy[(size_t)b * out + o];
}

/* ---- plain-array faces ---- */

static int check_call(const char *who, const da_logic_conv *L, const double **w, int batch,
                      const double *x, const double *other)
{
    if (!L || !x || !other)
        return da_set_error(DA_EINVAL, "%s: NULL stage, x or output/cotangent", who);
    if (batch < 1)
        return da_set_error(DA_ERANGE, "%s: batch = %d must be >= 1", who, batch);
    if (!da_all_finite(x, (long)batch * da_logic_conv_in_size(L)))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in x", who);
    if (L->spec.kind != DA_LOGIC_CONV_TREE)
        return DA_OK;
    if (!*w)
        *w = L->w->data;
    if (!da_all_finite(*w, L->w->size))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in the gate logits", who);
    return da_logic_conv_check_leaves(L);
}

int da_logic_conv_forward(const da_logic_conv *L, const double *w, int batch, const double *x,
                          int hard, double *y)
{
    int rc = check_call("da_logic_conv_forward", L, &w, batch, x, y);
    if (rc)
        return rc;
    if (L->spec.kind == DA_LOGIC_CONV_OR_POOL) {
        pool_forward(L, batch, x, y);
        return DA_OK;
    }
    return tree_forward(L, w, batch, x, hard, y);
}

int da_logic_conv_backward(const da_logic_conv *L, const double *w, int batch,
                           const double *x, int hard, const double *gy, double *gx,
                           double *gw)
{
    static const char who[] = "da_logic_conv_backward";
    int rc = check_call(who, L, &w, batch, x, gy);
    if (rc)
        return rc;
    if (!da_all_finite(gy, (long)batch * da_logic_conv_out_size(L)))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in gy", who);
    if (gx)
        memset(gx, 0, (size_t)batch * da_logic_conv_in_size(L) * sizeof *gx);
    if (L->spec.kind == DA_LOGIC_CONV_OR_POOL) {
        if (gx)
            pool_backward(L, batch, x, gy, gx);
        return DA_OK;
    }
    if (gw)
        memset(gw, 0, (size_t)L->w->size * sizeof *gw);
    return tree_backward_all(L, w, batch, x, hard, gy, gx, gw);
}

/* ---- tensor face ---- */

typedef struct {
    const da_logic_conv *L;
    int hard, has_w;
} conv_state;

static int conv_op_forward(da_custom_args *args, double *y)
{
    const conv_state *st = args->state;
    const double *w = st->has_w ? args->in_data[1] : NULL;
    int batch = args->in[0]->shape[0];
    if (st->L->spec.kind == DA_LOGIC_CONV_OR_POOL) {
        pool_forward(st->L, batch, args->in_data[0], y);
        return DA_OK;
    }
    if (!w)
        w = st->L->w->data;
    if (!da_all_finite(w, st->L->w->size))
        return da_set_error(DA_ENAN, "da_logic_conv_op: NaN or Inf in the gate logits");
    return tree_forward(st->L, w, batch, args->in_data[0], st->hard, y);
}

static int conv_op_backward(da_custom_args *args, const double *gy, double *const *ig)
{
    const conv_state *st = args->state;
    int batch = args->in[0]->shape[0];
    if (st->L->spec.kind == DA_LOGIC_CONV_OR_POOL) {
        if (ig[0])
            pool_backward(st->L, batch, args->in_data[0], gy, ig[0]);
        return DA_OK;
    }
    const double *w = st->has_w ? args->in_data[1] : st->L->w->data;
    return tree_backward_all(st->L, w, batch, args->in_data[0], st->hard, gy, ig[0],
                             st->has_w ? ig[1] : NULL);
}

da_tensor *da_logic_conv_op(da_ctx *ctx, const da_logic_conv *L, da_tensor *x, da_tensor *w,
                            int hard)
{
    static const char who[] = "da_logic_conv_op";
    if (!ctx || !L) {
        da_set_error(DA_EINVAL, "%s: NULL ctx or stage", who);
        return NULL;
    }
    if (!x) { /* keep the error of the op that gave NULL, if any */
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "%s: NULL x", who);
        return NULL;
    }
    int tree = L->spec.kind == DA_LOGIC_CONV_TREE;
    if (x->ndim != 2 || x->shape[1] != da_logic_conv_in_size(L) ||
        (tree && w && (w->ndim != 2 || w->size != L->w->size || w->dtype != x->dtype))) {
        da_set_error(DA_ESHAPE, "%s: need x [batch][%ld] and w [%ld][16] of x's dtype", who,
                     da_logic_conv_in_size(L), L->w ? L->w->size / 16 : 0L);
        return NULL;
    }
    if (da_check_finite(x, "da_logic_conv_op: x") || (tree && da_logic_conv_check_leaves(L)))
        return NULL;
    conv_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st)
        return NULL;
    *st = (conv_state){L, hard, tree && w};
    int shape[2] = {x->shape[0], (int)da_logic_conv_out_size(L)};
    da_tensor *in[2] = {x, w};
    return da_op_custom(ctx, tree ? "logic_tree_conv" : "logic_or_pool", in, st->has_w ? 2 : 1,
                        2, shape, conv_op_forward, conv_op_backward, NULL, st);
}
