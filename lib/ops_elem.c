/* ops_elem.c - elementwise ops: broadcasting binary ops and da_where, unary ops, da_cast
 * (DESIGN.md §3, ops.h).
 *
 * Broadcasting follows NumPy. Equal shapes take a plain loop; otherwise an OPS_WALK over
 * the output gives every operand's offset (stride 0 along a stretched dimension). Loops
 * run on OpenMP threads from OPS_PAR_MIN elements. The backward of a stretched input
 * sums over the stretched dimensions in one serial walk, so results do not depend on the
 * thread count.
 *
 * A forward result holding a NaN (a NaN input, log or sqrt of a negative number, 0/0,
 * ...) is an error (DA_ENAN): a NaN never propagates silently. Infinities pass
 * (log(0) = -inf, as in PyTorch).
 *
 * Stable forms: sigmoid(x) = 1/(1+e^-x) for x >= 0 and e^x/(1+e^x) below; softplus(x) =
 * max(x,0) + log1p(e^-|x|), whose derivative is sigmoid(x) = -expm1(-softplus(x)).
 * Conventions at non-differentiable points: relu'(0) = abs'(0) = 0; minimum/maximum ties
 * send the gradient to a; d(a^b)/db = a^b log a for a > 0, else 0. */
#include <tgmath.h>

#include "ops.h"
#include "ops_util.h"

/* ---- broadcasting binary ops (and da_where) ---- */

typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_POW, BIN_MIN, BIN_MAX, BIN_WHERE } bin_op;

static const char *const bin_name[] = {"da_add",     "da_sub",     "da_mul",  "da_div",
                                       "da_pow",     "da_minimum", "da_maximum", "da_where"};

/* minimum/maximum pick a on ties and when a is NaN (a NaN in b is picked by the else) */
#define PICK_MIN_A(x, y) ((x) <= (y) || (x) != (x))
#define PICK_MAX_A(x, y) ((x) >= (y) || (x) != (x))

/* NumPy broadcast shape of t[0..n-1] */
static int broadcast_shape(const char *name, da_tensor *const *t, int n, int *ndim, int *shape)
{
    int nd = 0;
    for (int k = 0; k < n; k++)
        nd = t[k]->ndim > nd ? t[k]->ndim : nd;
    for (int d = 0; d < nd; d++) {
        int size = 1;
        for (int k = 0; k < n; k++) {
            int j = d - (nd - t[k]->ndim);
            int s = j >= 0 ? t[k]->shape[j] : 1;
            if (s == 1 || s == size)
                continue;
            if (size != 1) {
                char b0[64], b1[64], b2[64];
                return da_set_error(DA_ESHAPE, "%s: shapes %s %s %s do not broadcast", name,
                                    ops_shape_str(t[0], b0, sizeof b0),
                                    ops_shape_str(t[1], b1, sizeof b1),
                                    n > 2 ? ops_shape_str(t[2], b2, sizeof b2) : "");
            }
            size = s;
        }
        shape[d] = size;
    }
    *ndim = nd;
    return DA_OK;
}

/* walk over out with operand k = t[k] aligned at the trailing dimension */
static void broadcast_walk(ops_walk *w, da_tensor *const *t, int n, const da_tensor *out)
{
    ops_walk_init(w, out->ndim, out->shape);
    w->flat = 1;
    for (int k = 0; k < n; k++) {
        long stride = 1;
        for (int j = t[k]->ndim - 1; j >= 0; j--) {
            w->st[k][DA_MAX_DIMS - t[k]->ndim + j] = t[k]->shape[j] == 1 ? 0 : stride;
            stride *= t[k]->shape[j];
        }
        if (t[k]->size != out->size)
            w->flat = 0;
    }
}

/* o[oi] = EXPR over the walk, counting NaN results */
#define BIN_FWD(EXPR)                                                                   \
    OPS_WALK(w, if(parallel: par) reduction(+:nbad), {                                  \
        const T v_ = (EXPR);                                                            \
        o[oi] = v_;                                                                     \
        nbad += v_ != v_;                                                               \
    })

/* operands: t[0] = a, t[1] = b, t[2] = cond (da_where); returns the NaN count */
static long bin_forward(bin_op op, const ops_walk *w, da_tensor *const *t, da_tensor *out)
{
    long nbad = 0;
    const int par = w->size >= OPS_PAR_MIN;
    DA_DISPATCH(out->dtype, T, {
        const T *x = t[0]->data, *y = t[1]->data;
        const T *c = op == BIN_WHERE ? t[2]->data : NULL;
        T *o = out->data;
        switch (op) {
        case BIN_ADD: BIN_FWD(x[k0] + y[k1]); break;
        case BIN_SUB: BIN_FWD(x[k0] - y[k1]); break;
        case BIN_MUL: BIN_FWD(x[k0] * y[k1]); break;
        case BIN_DIV: BIN_FWD(x[k0] / y[k1]); break;
        case BIN_POW: BIN_FWD(pow(x[k0], y[k1])); break;
        case BIN_MIN: BIN_FWD(PICK_MIN_A(x[k0], y[k1]) ? x[k0] : y[k1]); break;
        case BIN_MAX: BIN_FWD(PICK_MAX_A(x[k0], y[k1]) ? x[k0] : y[k1]); break;
        case BIN_WHERE: BIN_FWD(c[k2] != 0 ? x[k0] : y[k1]); break;
        }
    });
    return nbad;
}

/* G[K] += EXPR over the walk; in parallel only when K's offsets are all distinct (PK) */
#define BIN_ACC(G, K, PK, EXPR) OPS_WALK(w, if(parallel: PK), G[K] += (EXPR);)

static int bin_backward(da_node *nd)
{
    da_tensor *a = nd->in[0], *b = nd->in[1], *out = nd->out;
    const da_tensor *cond = nd->saved;
    da_tensor *t[3] = {a, b, (da_tensor *)cond};
    const bin_op op = (bin_op)nd->iparam[0];
    ops_walk walk;
    const ops_walk *w = &walk;
    broadcast_walk(&walk, t, cond ? 3 : 2, out);
    void *ga_v = a->requires_grad ? da_tensor_grad(a) : NULL;
    void *gb_v = b->requires_grad ? da_tensor_grad(b) : NULL;
    if ((a->requires_grad && !ga_v) || (b->requires_grad && !gb_v))
        return DA_ENOMEM;
    const int par = walk.size >= OPS_PAR_MIN;
    const int pa = par && a->size == out->size, pb = par && b->size == out->size;
    DA_DISPATCH(out->dtype, T, {
        const T *x = a->data, *y = b->data, *o = out->data, *g = out->grad;
        const T *c = cond ? cond->data : NULL;
        T *ga = ga_v, *gb = gb_v;
        if (ga) {
            switch (op) {
            case BIN_ADD:
            case BIN_SUB: BIN_ACC(ga, k0, pa, g[oi]); break;
            case BIN_MUL: BIN_ACC(ga, k0, pa, g[oi] * y[k1]); break;
            case BIN_DIV: BIN_ACC(ga, k0, pa, g[oi] / y[k1]); break;
            case BIN_POW: BIN_ACC(ga, k0, pa, g[oi] * y[k1] * pow(x[k0], y[k1] - 1)); break;
            case BIN_MIN: BIN_ACC(ga, k0, pa, PICK_MIN_A(x[k0], y[k1]) ? g[oi] : 0); break;
            case BIN_MAX: BIN_ACC(ga, k0, pa, PICK_MAX_A(x[k0], y[k1]) ? g[oi] : 0); break;
            case BIN_WHERE: BIN_ACC(ga, k0, pa, c[k2] != 0 ? g[oi] : 0); break;
            }
        }
        if (gb) {
            switch (op) {
            case BIN_ADD: BIN_ACC(gb, k1, pb, g[oi]); break;
            case BIN_SUB: BIN_ACC(gb, k1, pb, -g[oi]); break;
            case BIN_MUL: BIN_ACC(gb, k1, pb, g[oi] * x[k0]); break;
            case BIN_DIV: BIN_ACC(gb, k1, pb, -g[oi] * o[oi] / y[k1]); break;
            case BIN_POW: BIN_ACC(gb, k1, pb, x[k0] > 0 ? g[oi] * o[oi] * log(x[k0]) : 0); break;
            case BIN_MIN: BIN_ACC(gb, k1, pb, PICK_MIN_A(x[k0], y[k1]) ? 0 : g[oi]); break;
            case BIN_MAX: BIN_ACC(gb, k1, pb, PICK_MAX_A(x[k0], y[k1]) ? 0 : g[oi]); break;
            case BIN_WHERE: BIN_ACC(gb, k1, pb, c[k2] != 0 ? 0 : g[oi]); break;
            }
        }
    });
    return DA_OK;
}

/* a op b, or da_where(cond, a, b); input errors name the arguments in public order */
static da_tensor *binary(da_ctx *ctx, bin_op op, da_tensor *a, da_tensor *b, da_tensor *cond)
{
    const char *name = bin_name[op];
    const int n = op == BIN_WHERE ? 3 : 2;
    da_tensor *given[3] = {cond, a, b};
    da_tensor *t[3] = {a, b, cond};
    int ndim = 0, shape[DA_MAX_DIMS] = {0};
    if (ops_check_inputs(ctx, name, op == BIN_WHERE ? given : t, n) ||
        broadcast_shape(name, t, n, &ndim, shape))
        return NULL;
    da_tensor *out = da_ctx_tensor(ctx, a->dtype, ndim, shape);
    if (!out)
        return NULL;
    ops_walk w;
    broadcast_walk(&w, t, n, out);
    if (ops_nan_result(name, bin_forward(op, &w, t, out)))
        return NULL;
    da_node *nd;
    if (da_graph_record(ctx, name, out, t, 2, bin_backward, &nd))
        return NULL;
    if (nd) {
        nd->iparam[0] = op;
        nd->saved = cond;
    }
    return out;
}

da_tensor *da_add(da_ctx *ctx, da_tensor *a, da_tensor *b)
{
    return binary(ctx, BIN_ADD, a, b, NULL);
}

da_tensor *da_sub(da_ctx *ctx, da_tensor *a, da_tensor *b)
{
    return binary(ctx, BIN_SUB, a, b, NULL);
}

da_tensor *da_mul(da_ctx *ctx, da_tensor *a, da_tensor *b)
{
    return binary(ctx, BIN_MUL, a, b, NULL);
}

da_tensor *da_div(da_ctx *ctx, da_tensor *a, da_tensor *b)
{
    return binary(ctx, BIN_DIV, a, b, NULL);
}

da_tensor *da_pow(da_ctx *ctx, da_tensor *a, da_tensor *b)
{
    return binary(ctx, BIN_POW, a, b, NULL);
}

da_tensor *da_minimum(da_ctx *ctx, da_tensor *a, da_tensor *b)
{
    return binary(ctx, BIN_MIN, a, b, NULL);
}

da_tensor *da_maximum(da_ctx *ctx, da_tensor *a, da_tensor *b)
{
    return binary(ctx, BIN_MAX, a, b, NULL);
}

da_tensor *da_where(da_ctx *ctx, da_tensor *cond, da_tensor *a, da_tensor *b)
{
    return binary(ctx, BIN_WHERE, a, b, cond);
}

/* ---- unary ops (one input, same shape) ---- */

typedef enum {
    UN_NEG, UN_EXP, UN_LOG, UN_SIGMOID, UN_TANH, UN_RELU, UN_SOFTPLUS, UN_ABS, UN_SQRT,
    UN_ADD_S, UN_MUL_S, UN_POW_S
} un_op;

static const char *const un_name[] = {"da_neg",  "da_exp",      "da_log",        "da_logistic",
                                      "da_tanh", "da_relu",     "da_softplus",   "da_abs",
                                      "da_sqrt", "da_add_scalar", "da_mul_scalar", "da_pow_scalar"};

/* o[i] = EXPR of xi = x[i], counting NaN results */
#define UN_FWD(EXPR)                                                                    \
    OPS_PRAGMA(omp parallel for simd if(parallel: par) reduction(+:nbad))               \
    for (long i = 0; i < n; i++) {                                                      \
        const T xi = x[i];                                                              \
        const T v_ = (EXPR);                                                            \
        o[i] = v_;                                                                      \
        nbad += v_ != v_;                                                               \
    }

static long un_forward(un_op op, double param, const da_tensor *a, da_tensor *out)
{
    long nbad = 0;
    const long n = a->size;
    const int par = n >= OPS_PAR_MIN;
    DA_DISPATCH(a->dtype, T, {
        const T *x = a->data, s = (T)param;
        T *o = out->data;
        switch (op) {
        case UN_NEG: UN_FWD(-xi); break;
        case UN_EXP: UN_FWD(exp(xi)); break;
        case UN_LOG: UN_FWD(log(xi)); break;
        case UN_SIGMOID: UN_FWD(xi >= 0 ? 1 / (1 + exp(-xi)) : exp(xi) / (1 + exp(xi))); break;
        case UN_TANH: UN_FWD(tanh(xi)); break;
        case UN_RELU: UN_FWD((xi > 0 || xi != xi) ? xi : 0); break;
        case UN_SOFTPLUS: UN_FWD(fmax(xi, (T)0) + log1p(exp(-fabs(xi)))); break;
        case UN_ABS: UN_FWD(fabs(xi)); break;
        case UN_SQRT: UN_FWD(sqrt(xi)); break;
        case UN_ADD_S: UN_FWD(xi + s); break;
        case UN_MUL_S: UN_FWD(xi * s); break;
        case UN_POW_S: UN_FWD(pow(xi, s)); break;
        }
    });
    return nbad;
}

/* gx[i] += EXPR of xi (input), yi (output), gi (output grad) */
#define UN_BWD(EXPR)                                                                    \
    OPS_PRAGMA(omp parallel for simd if(parallel: par))                                 \
    for (long i = 0; i < n; i++) {                                                      \
        const T xi = x[i], yi = o[i], gi = g[i];                                        \
        (void)xi;                                                                       \
        (void)yi;                                                                       \
        gx[i] += (EXPR);                                                                \
    }

static int un_backward(da_node *nd)
{
    da_tensor *a = nd->in[0];
    const un_op op = (un_op)nd->iparam[0];
    const long n = a->size;
    const int par = n >= OPS_PAR_MIN;
    void *gx_v = da_tensor_grad(a);
    if (!gx_v)
        return DA_ENOMEM;
    DA_DISPATCH(a->dtype, T, {
        const T *x = a->data, *o = nd->out->data, *g = nd->out->grad, s = (T)nd->fparam[0];
        T *gx = gx_v;
        switch (op) {
        case UN_NEG: UN_BWD(-gi); break;
        case UN_EXP: UN_BWD(gi * yi); break;
        case UN_LOG: UN_BWD(gi / xi); break;
        case UN_SIGMOID: UN_BWD(gi * yi * (1 - yi)); break;
        case UN_TANH: UN_BWD(gi * (1 - yi * yi)); break;
        case UN_RELU: UN_BWD(xi > 0 ? gi : 0); break;
        case UN_SOFTPLUS: UN_BWD(-gi * expm1(-yi)); break;
        case UN_ABS: UN_BWD(xi > 0 ? gi : (xi < 0 ? -gi : 0)); break;
        case UN_SQRT: UN_BWD(gi / (2 * yi)); break;
        case UN_ADD_S: UN_BWD(gi); break;
        case UN_MUL_S: UN_BWD(gi * s); break;
        case UN_POW_S: UN_BWD(s == 0 ? 0 : gi * s * pow(xi, s - 1)); break;
        }
    });
    return DA_OK;
}

static da_tensor *unary(da_ctx *ctx, un_op op, da_tensor *a, double param)
{
    const char *name = un_name[op];
    if (ops_check_inputs(ctx, name, &a, 1))
        return NULL;
    da_tensor *out = da_ctx_tensor(ctx, a->dtype, a->ndim, a->shape);
    if (!out || ops_nan_result(name, un_forward(op, param, a, out)))
        return NULL;
    da_node *nd;
    if (da_graph_record(ctx, name, out, &a, 1, un_backward, &nd))
        return NULL;
    if (nd) {
        nd->iparam[0] = op;
        nd->fparam[0] = param;
    }
    return out;
}

da_tensor *da_neg(da_ctx *ctx, da_tensor *a) { return unary(ctx, UN_NEG, a, 0); }
da_tensor *da_exp(da_ctx *ctx, da_tensor *a) { return unary(ctx, UN_EXP, a, 0); }
da_tensor *da_log(da_ctx *ctx, da_tensor *a) { return unary(ctx, UN_LOG, a, 0); }
da_tensor *da_logistic(da_ctx *ctx, da_tensor *a) { return unary(ctx, UN_SIGMOID, a, 0); }
da_tensor *da_tanh(da_ctx *ctx, da_tensor *a) { return unary(ctx, UN_TANH, a, 0); }
da_tensor *da_relu(da_ctx *ctx, da_tensor *a) { return unary(ctx, UN_RELU, a, 0); }
da_tensor *da_softplus(da_ctx *ctx, da_tensor *a) { return unary(ctx, UN_SOFTPLUS, a, 0); }
da_tensor *da_abs(da_ctx *ctx, da_tensor *a) { return unary(ctx, UN_ABS, a, 0); }
da_tensor *da_sqrt(da_ctx *ctx, da_tensor *a) { return unary(ctx, UN_SQRT, a, 0); }
da_tensor *da_add_scalar(da_ctx *ctx, da_tensor *a, double s) { return unary(ctx, UN_ADD_S, a, s); }
da_tensor *da_mul_scalar(da_ctx *ctx, da_tensor *a, double s) { return unary(ctx, UN_MUL_S, a, s); }
da_tensor *da_pow_scalar(da_ctx *ctx, da_tensor *a, double p) { return unary(ctx, UN_POW_S, a, p); }

/* ---- dtype conversion ---- */

/* dst = src (accumulate: dst += src) converting n values; returns the NaN count */
static long convert(const void *src, da_dtype sdt, void *dst, da_dtype ddt, long n, int accumulate)
{
    long nbad = 0;
    const int par = n >= OPS_PAR_MIN;
    DA_DISPATCH(sdt, S, DA_DISPATCH(ddt, D, {
        const S *s = src;
        D *d = dst;
        OPS_PRAGMA(omp parallel for simd if(parallel: par) reduction(+:nbad))
        for (long i = 0; i < n; i++) {
            const D v = accumulate ? d[i] + (D)s[i] : (D)s[i];
            d[i] = v;
            nbad += v != v;
        }
    }););
    return nbad;
}

static int cast_backward(da_node *nd)
{
    da_tensor *a = nd->in[0];
    void *gx = da_tensor_grad(a);
    if (!gx)
        return DA_ENOMEM;
    convert(nd->out->grad, nd->out->dtype, gx, a->dtype, a->size, 1);
    return DA_OK;
}

da_tensor *da_cast(da_ctx *ctx, da_tensor *a, da_dtype dtype)
{
    if (ops_check_inputs(ctx, "da_cast", &a, 1))
        return NULL;
    if (dtype != DA_F32 && dtype != DA_F64) {
        da_set_error(DA_EDTYPE, "da_cast: unknown dtype %d", (int)dtype);
        return NULL;
    }
    da_tensor *out = da_ctx_tensor(ctx, dtype, a->ndim, a->shape);
    if (!out || ops_nan_result("da_cast", convert(a->data, a->dtype, out->data, dtype, a->size, 0)))
        return NULL;
    da_node *nd;
    if (da_graph_record(ctx, "da_cast", out, &a, 1, cast_backward, &nd))
        return NULL;
    return out;
}
