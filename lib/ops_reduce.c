/* ops_reduce.c - reductions over one axis or every element, softmax, log-softmax
 * (DESIGN.md §3, ops.h).
 *
 * The input is seen as [outer][n][inner] around the axis (DA_ALL_AXES: [1][size][1]);
 * each of the outer*inner rows of n elements (stride inner) reduces independently, in
 * parallel from OPS_PAR_MIN elements. Sums accumulate in double. A sum over a whole
 * vector adds OPS_SUM_CHUNKS fixed chunks, so the result does not depend on the thread
 * count.
 *
 * logsumexp(x) = m + log sum_k e^(x_k - m) with m = max_k x_k (m itself if m = +-inf);
 * softmax(x)_k = e^(x_k - m) / s and log_softmax(x)_k = (x_k - m) - log s with
 * s = sum_k e^(x_k - m). Backward: d lse / dx_k = e^(x_k - lse); softmax:
 * gx = y (g - <g, y>); log-softmax: gx = g - e^y sum_k g_k. da_max sends the gradient to
 * the first maximum of each row. As in ops_elem.c, a NaN in a result is DA_ENAN (a NaN
 * input, or a softmax over a row of -inf). A 0-d tensor has no axis: only DA_ALL_AXES. */
#include <tgmath.h>

#include "ops.h"
#include "ops_util.h"

#define OPS_SUM_CHUNKS 64

typedef enum { RED_SUM, RED_MEAN, RED_MAX, RED_LSE, RED_SOFTMAX, RED_LOG_SOFTMAX } red_op;

static const char *const red_name[] = {"da_sum",       "da_mean",    "da_max",
                                       "da_logsumexp", "da_softmax", "da_log_softmax"};

typedef struct {
    long outer, n, inner;
} red_view;

/* the view of a for axis (ax = -1 for DA_ALL_AXES) */
static int red_view_of(const char *name, const da_tensor *a, int axis, red_view *v, int *ax)
{
    if (axis == DA_ALL_AXES) {
        *ax = -1;
        *v = (red_view){1, a->size, 1};
        return DA_OK;
    }
    if (ops_axis(name, a->ndim, axis, ax))
        return DA_ERANGE;
    ops_split(a, *ax, &v->outer, &v->n, &v->inner);
    return DA_OK;
}

/* Rows are processed in panels of up to PANEL adjacent columns j: each pass over a
 * panel walks k outside and the columns inside, so memory is read in order whatever the
 * axis. A panel of one column (inner = 1: the last axis) gets its own loop. */
#define PANEL 64

/* for k in [0, n) and column c in [0, w): the body sees e = k * inner + c, the offset of
 * element (k, c) from the panel's base */
#define PANEL_FOR(w, ...)                                                               \
    do {                                                                                \
        if ((w) == 1) {                                                                 \
            for (long k = 0; k < n; k++) {                                              \
                const long c = 0, e = k * inner;                                        \
                __VA_ARGS__                                                             \
            }                                                                           \
        } else {                                                                        \
            for (long k = 0; k < n; k++)                                                \
                for (long c = 0; c < (w); c++) {                                        \
                    const long e = k * inner + c;                                       \
                    __VA_ARGS__                                                         \
                }                                                                       \
        }                                                                               \
    } while (0)

/* every panel, in parallel under CLAUSES: the body sees i (outer index), j0 (first
 * column), w (columns) and base = offset of element (i, 0, j0) */
#define FOR_PANELS(CLAUSES, ...)                                                        \
    do {                                                                                \
        const long nblk_ = (inner + PANEL - 1) / PANEL;                                 \
        OPS_PRAGMA(omp parallel for collapse(2) CLAUSES)                                \
        for (long i = 0; i < outer; i++)                                                \
            for (long b_ = 0; b_ < nblk_; b_++) {                                       \
                const long j0 = b_ * PANEL, w = inner - j0 < PANEL ? inner - j0 : PANEL; \
                const long base = i * n * inner + j0;                                   \
                __VA_ARGS__                                                             \
            }                                                                           \
    } while (0)

/* m[c], am[c] = value and index k of the first maximum of column c of panel p (a NaN
 * wins and stays) */
#define PANEL_ARGMAX(p, w, m, am)                                                       \
    do {                                                                                \
        for (long c_ = 0; c_ < (w); c_++) {                                             \
            m[c_] = p[c_];                                                              \
            am[c_] = 0;                                                                 \
        }                                                                               \
        PANEL_FOR(w, if (p[e] > m[c] || (p[e] != p[e] && m[c] == m[c])) {               \
            m[c] = p[e];                                                                \
            am[c] = k;                                                                  \
        });                                                                             \
    } while (0)

/* sum of x[0..n-1] in double over fixed chunks */
static double sum_vector(da_dtype dt, const void *data, long n)
{
    double part[OPS_SUM_CHUNKS];
    const long chunk = (n + OPS_SUM_CHUNKS - 1) / OPS_SUM_CHUNKS;
    const int par = n >= OPS_PAR_MIN;
    DA_DISPATCH(dt, T, {
        const T *x = data;
        OPS_PRAGMA(omp parallel for if(par))
        for (int c = 0; c < OPS_SUM_CHUNKS; c++) {
            double s = 0;
            const long end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
            for (long k = c * chunk; k < end; k++)
                s += x[k];
            part[c] = s;
        }
    });
    double s = 0;
    for (int c = 0; c < OPS_SUM_CHUNKS; c++)
        s += part[c];
    return s;
}

/* sum, mean, max, logsumexp of every row into o[i*inner + j]; argmax (may be NULL) gets
 * the first maximum of each row for da_max. Returns the NaN count. */
static long reduce_forward(red_op op, const red_view *v, const da_tensor *a, da_tensor *out,
                           long *argmax)
{
    const long outer = v->outer, n = v->n, inner = v->inner;
    const int par = a->size >= OPS_PAR_MIN;
    long nbad = 0;
    if ((op == RED_SUM || op == RED_MEAN) && outer * inner == 1) {
        double s = sum_vector(a->dtype, a->data, n);
        da_set(out, 0, op == RED_MEAN ? s / n : s);
        return da_get(out, 0) != da_get(out, 0);
    }
    DA_DISPATCH(a->dtype, T, {
        const T *x = a->data;
        T *o = out->data;
        FOR_PANELS(if(par) reduction(+:nbad), {
            const T *p = x + base;
            T *q = o + i * inner + j0; /* [w] results */
            T m[PANEL];
            long am[PANEL];
            double s[PANEL];
            for (long c = 0; c < w; c++)
                s[c] = 0;
            if (op == RED_SUM || op == RED_MEAN) {
                PANEL_FOR(w, s[c] += p[e];);
                for (long c = 0; c < w; c++)
                    q[c] = (T)(op == RED_MEAN ? s[c] / n : s[c]);
            } else {
                PANEL_ARGMAX(p, w, m, am);
                if (op == RED_LSE)
                    PANEL_FOR(w, s[c] += exp(p[e] - m[c]););
                for (long c = 0; c < w; c++) {
                    q[c] = op == RED_MAX || isinf(m[c]) ? m[c] : m[c] + (T)log(s[c]);
                    if (argmax)
                        argmax[i * inner + j0 + c] = am[c];
                }
            }
            for (long c = 0; c < w; c++)
                nbad += q[c] != q[c];
        });
    });
    return nbad;
}

/* softmax or log-softmax of every row into out (same shape); returns the NaN count */
static long softmax_forward(red_op op, const red_view *v, const da_tensor *a, da_tensor *out)
{
    const long outer = v->outer, n = v->n, inner = v->inner;
    const int par = a->size >= OPS_PAR_MIN;
    long nbad = 0;
    DA_DISPATCH(a->dtype, T, {
        const T *x = a->data;
        T *o = out->data;
        FOR_PANELS(if(par) reduction(+:nbad), {
            const T *p = x + base;
            T *q = o + base;
            T m[PANEL], log_s[PANEL], inv_s[PANEL];
            long am[PANEL];
            double s[PANEL];
            PANEL_ARGMAX(p, w, m, am);
            (void)am;
            for (long c = 0; c < w; c++)
                s[c] = 0;
            /* e^(x - m) into q first (independent calls), then its sums */
            PANEL_FOR(w, q[e] = exp(p[e] - m[c]););
            PANEL_FOR(w, s[c] += q[e];);
            for (long c = 0; c < w; c++) {
                log_s[c] = (T)log(s[c]);
                inv_s[c] = (T)(1 / s[c]);
            }
            if (op == RED_SOFTMAX)
                PANEL_FOR(w, q[e] *= inv_s[c]; nbad += q[e] != q[e];);
            else
                PANEL_FOR(w, q[e] = (p[e] - m[c]) - log_s[c]; nbad += q[e] != q[e];);
        });
    });
    return nbad;
}

static int reduce_backward(da_node *nd)
{
    da_tensor *a = nd->in[0], *out = nd->out;
    const red_op op = (red_op)nd->iparam[0];
    red_view v;
    int ax;
    red_view_of(red_name[op], a, nd->iparam[1] < 0 ? DA_ALL_AXES : nd->iparam[1], &v, &ax);
    const long outer = v.outer, n = v.n, inner = v.inner;
    const int par = a->size >= OPS_PAR_MIN;
    const long *argmax = nd->saved;
    void *gx_v = da_tensor_grad(a);
    if (!gx_v)
        return DA_ENOMEM;
    DA_DISPATCH(a->dtype, T, {
        const T *x = a->data, *o = out->data, *g = out->grad;
        T *gx = gx_v;
        const T scale = op == RED_MEAN ? (T)(1.0 / n) : 1;
        switch (op) {
        case RED_SUM:
        case RED_MEAN:
        case RED_LSE:
            /* gx[i][k][j] += g[i][j] * (scale, or e^(x - lse) for logsumexp) */
            OPS_PRAGMA(omp parallel for collapse(2) if(par))
            for (long i = 0; i < outer; i++)
                for (long k = 0; k < n; k++) {
                    const long e = (i * n + k) * inner;
                    const T *gr = g + i * inner, *lse = o + i * inner, *xr = x + e;
                    T *gp = gx + e;
                    if (op == RED_LSE)
                        for (long j = 0; j < inner; j++)
                            gp[j] += gr[j] * exp(xr[j] - lse[j]);
                    else
                        for (long j = 0; j < inner; j++)
                            gp[j] += gr[j] * scale;
                }
            break;
        case RED_MAX:
            for (long i = 0; i < outer; i++)
                for (long j = 0; j < inner; j++)
                    gx[(i * n + argmax[i * inner + j]) * inner + j] += g[i * inner + j];
            break;
        default: /* RED_SOFTMAX, RED_LOG_SOFTMAX: o and g have a's shape */
            FOR_PANELS(if(par), {
                const T *y = o + base, *gy = g + base;
                T *gp = gx + base;
                double s[PANEL]; /* <g, y> (softmax) or sum g (log-softmax) per column */
                for (long c = 0; c < w; c++)
                    s[c] = 0;
                if (op == RED_SOFTMAX) {
                    PANEL_FOR(w, s[c] += gy[e] * y[e];);
                    PANEL_FOR(w, gp[e] += y[e] * (gy[e] - (T)s[c]););
                } else {
                    PANEL_FOR(w, s[c] += gy[e];);
                    PANEL_FOR(w, gp[e] += gy[e] - exp(y[e]) * (T)s[c];);
                }
            });
            break;
        }
    });
    return DA_OK;
}

static da_tensor *reduce(da_ctx *ctx, red_op op, da_tensor *a, int axis, int keepdim)
{
    const char *name = red_name[op];
    const int is_softmax = op == RED_SOFTMAX || op == RED_LOG_SOFTMAX;
    red_view v;
    int ax;
    if (ops_check_inputs(ctx, name, &a, 1) || red_view_of(name, a, axis, &v, &ax))
        return NULL;
    int ndim = 0, shape[DA_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++)
        if (is_softmax || (ax >= 0 && d != ax))
            shape[ndim++] = a->shape[d];
        else if (keepdim)
            shape[ndim++] = 1;
    da_tensor *out = da_ctx_tensor(ctx, a->dtype, ndim, shape);
    long *argmax = NULL;
    if (!out)
        return NULL;
    if (op == RED_MAX && a->requires_grad &&
        !(argmax = da_ctx_alloc(ctx, (size_t)out->size * sizeof *argmax)))
        return NULL;
    long nbad = is_softmax ? softmax_forward(op, &v, a, out)
                           : reduce_forward(op, &v, a, out, argmax);
    if (ops_nan_result(name, nbad))
        return NULL;
    da_node *nd;
    if (da_graph_record(ctx, name, out, &a, 1, reduce_backward, &nd))
        return NULL;
    if (nd) {
        nd->iparam[0] = op;
        nd->iparam[1] = ax;
        nd->saved = argmax;
    }
    return out;
}

da_tensor *da_sum(da_ctx *ctx, da_tensor *a, int axis, int keepdim)
{
    return reduce(ctx, RED_SUM, a, axis, keepdim);
}

da_tensor *da_mean(da_ctx *ctx, da_tensor *a, int axis, int keepdim)
{
    return reduce(ctx, RED_MEAN, a, axis, keepdim);
}

da_tensor *da_max(da_ctx *ctx, da_tensor *a, int axis, int keepdim)
{
    return reduce(ctx, RED_MAX, a, axis, keepdim);
}

da_tensor *da_logsumexp(da_ctx *ctx, da_tensor *a, int axis, int keepdim)
{
    return reduce(ctx, RED_LSE, a, axis, keepdim);
}

da_tensor *da_softmax(da_ctx *ctx, da_tensor *a, int axis)
{
    return reduce(ctx, RED_SOFTMAX, a, axis, 1);
}

da_tensor *da_log_softmax(da_ctx *ctx, da_tensor *a, int axis)
{
    return reduce(ctx, RED_LOG_SOFTMAX, a, axis, 1);
}
