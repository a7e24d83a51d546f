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

/* row (i, j): n elements from base p with stride inner */
#define ROW(p, k) (p)[(k) * inner]
/* am = index of the first maximum of row p (a NaN stops the search and wins) */
#define ROW_ARGMAX(p, am)                                                               \
    do {                                                                                \
        am = 0;                                                                         \
        for (long k_ = 1; k_ < n && ROW(p, am) == ROW(p, am); k_++)                     \
            if (ROW(p, k_) > ROW(p, am) || ROW(p, k_) != ROW(p, k_))                    \
                am = k_;                                                                \
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
        OPS_PRAGMA(omp parallel for collapse(2) if(par) reduction(+:nbad))
        for (long i = 0; i < outer; i++)
            for (long j = 0; j < inner; j++) {
                const T *p = x + i * n * inner + j;
                long am;
                double s = 0;
                T r;
                switch (op) {
                case RED_SUM:
                case RED_MEAN:
                    for (long k = 0; k < n; k++)
                        s += ROW(p, k);
                    r = (T)(op == RED_MEAN ? s / n : s);
                    break;
                case RED_MAX:
                    ROW_ARGMAX(p, am);
                    r = ROW(p, am);
                    if (argmax)
                        argmax[i * inner + j] = am;
                    break;
                default: /* RED_LSE */
                    ROW_ARGMAX(p, am);
                    r = ROW(p, am);
                    if (isinf(r))
                        break;
                    for (long k = 0; k < n; k++)
                        s += exp(ROW(p, k) - r);
                    r += (T)log(s);
                    break;
                }
                o[i * inner + j] = r;
                nbad += r != r;
            }
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
        OPS_PRAGMA(omp parallel for collapse(2) if(par) reduction(+:nbad))
        for (long i = 0; i < outer; i++)
            for (long j = 0; j < inner; j++) {
                const T *p = x + i * n * inner + j;
                T *q = o + i * n * inner + j;
                long am;
                double s = 0;
                ROW_ARGMAX(p, am);
                const T m = ROW(p, am);
                for (long k = 0; k < n; k++)
                    s += exp(ROW(p, k) - m);
                const T log_s = (T)log(s), inv_s = (T)(1 / s);
                for (long k = 0; k < n; k++) {
                    const T y = op == RED_SOFTMAX ? exp(ROW(p, k) - m) * inv_s
                                                  : (ROW(p, k) - m) - log_s;
                    ROW(q, k) = y;
                    nbad += y != y;
                }
            }
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
            OPS_PRAGMA(omp parallel for collapse(2) if(par))
            for (long i = 0; i < outer; i++)
                for (long k = 0; k < n; k++)
                    for (long j = 0; j < inner; j++) {
                        const long r = i * inner + j, e = (i * n + k) * inner + j;
                        gx[e] += op == RED_LSE ? g[r] * exp(x[e] - o[r]) : g[r] * scale;
                    }
            break;
        case RED_MAX:
            for (long i = 0; i < outer; i++)
                for (long j = 0; j < inner; j++)
                    gx[(i * n + argmax[i * inner + j]) * inner + j] += g[i * inner + j];
            break;
        default: /* RED_SOFTMAX, RED_LOG_SOFTMAX: o and g have a's shape */
            OPS_PRAGMA(omp parallel for collapse(2) if(par))
            for (long i = 0; i < outer; i++)
                for (long j = 0; j < inner; j++) {
                    const long base = i * n * inner + j;
                    const T *y = o + base, *gy = g + base;
                    T *gp = gx + base;
                    double s = 0; /* <g, y> (softmax) or sum g (log-softmax) */
                    for (long k = 0; k < n; k++)
                        s += op == RED_SOFTMAX ? ROW(gy, k) * ROW(y, k) : ROW(gy, k);
                    for (long k = 0; k < n; k++)
                        ROW(gp, k) += op == RED_SOFTMAX ? ROW(y, k) * (ROW(gy, k) - (T)s)
                                                        : ROW(gy, k) - exp(ROW(y, k)) * (T)s;
                }
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
