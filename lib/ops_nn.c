/* ops_nn.c - matrix products (lib/ops.h "linear algebra"): matmul, bmm, linear, and the
 * fused linear+relu node declared in lib/layers.h. Convolution and pooling are in
 * lib/ops_conv.c, the losses in lib/ops_loss.c.
 *
 * Every matrix product goes through CBLAS (sgemm or dgemm chosen by dtype, row-major).
 * Backward kernels accumulate into the input grads (beta = 1 in the GEMMs). */
#include "layers.h"
#include "ops.h"
#include "ops_nn_impl.h"

/* out = relu(out) elementwise (a NaN stays NaN) */
static void relu_inplace(da_tensor *t)
{
    DA_DISPATCH(t->dtype, T, {
        T *y = t->data;
        for (long i = 0; i < t->size; i++)
            y[i] = y[i] < 0 ? 0 : y[i];
    });
}

/* the output grad of a node, masked by y > 0 when the node fused a relu (ctx copy) */
static const void *masked_grad(da_node *nd, int relu)
{
    da_tensor *out = nd->out;
    if (!relu)
        return out->grad;
    void *m = da_ctx_alloc(out->ctx, (size_t)out->size * da_dtype_size(out->dtype));
    if (!m)
        return NULL;
    DA_DISPATCH(out->dtype, T, {
        const T *y = out->data, *g = out->grad;
        T *gm = m;
        for (long i = 0; i < out->size; i++)
            gm[i] = y[i] > 0 ? g[i] : 0;
    });
    return m;
}

/* ---- matmul / bmm: [B][m][k] x [B][k][n] -> [B][m][n] ---- */

static int mm_backward(da_node *nd)
{
    da_tensor *a = nd->in[0], *b = nd->in[1], *out = nd->out;
    int B = nd->iparam[0], m = nd->iparam[1], k = nd->iparam[2], n = nd->iparam[3];
    size_t es = da_dtype_size(out->dtype);
    void *ga = a->requires_grad ? da_tensor_grad(a) : NULL;
    void *gb = b->requires_grad ? da_tensor_grad(b) : NULL;
    if ((a->requires_grad && !ga) || (b->requires_grad && !gb))
        return DA_ENOMEM;
    for (int i = 0; i < B; i++) {
        const char *A = (const char *)a->data + (size_t)i * m * k * es;
        const char *Bm = (const char *)b->data + (size_t)i * k * n * es;
        const char *G = (const char *)out->grad + (size_t)i * m * n * es;
        if (ga) /* dA [m][k] += G [m][n] B^T */
            gemm(out->dtype, 0, 1, m, k, n, 1, G, n, Bm, n, 1,
                 (char *)ga + (size_t)i * m * k * es, k);
        if (gb) /* dB [k][n] += A^T G */
            gemm(out->dtype, 1, 0, k, n, m, 1, A, k, G, n, 1,
                 (char *)gb + (size_t)i * k * n * es, n);
    }
    return DA_OK;
}

static da_tensor *mm(da_ctx *ctx, const char *who, da_tensor *a, da_tensor *b, int batched)
{
    int nd_in = batched ? 3 : 2;
    if (check_ctx(who, ctx) || check_input(who, a, "a", nd_in) ||
        check_input(who, b, "b", nd_in) || check_dtypes(who, a, b))
        return NULL;
    int B = batched ? a->shape[0] : 1, o = batched;
    int m = a->shape[o], k = a->shape[o + 1], n = b->shape[o + 1];
    if ((batched && b->shape[0] != B) || b->shape[o] != k) {
        da_set_error(DA_ESHAPE, "%s: shapes do not match ([..][%d][%d] x [..][%d][%d])", who,
                     m, k, b->shape[o], n);
        return NULL;
    }
    int shape[3] = {B, m, n};
    da_tensor *out = da_ctx_tensor(ctx, a->dtype, nd_in, batched ? shape : shape + 1);
    if (!out)
        return NULL;
    size_t es = da_dtype_size(a->dtype);
    for (int i = 0; i < B; i++)
        gemm(a->dtype, 0, 0, m, n, k, 1, (const char *)a->data + (size_t)i * m * k * es, k,
             (const char *)b->data + (size_t)i * k * n * es, n, 0,
             (char *)out->data + (size_t)i * m * n * es, n);
    da_tensor *in[2] = {a, b};
    da_node *nd;
    if (da_graph_record(ctx, who, out, in, 2, mm_backward, &nd))
        return NULL;
    if (nd) {
        nd->iparam[0] = B;
        nd->iparam[1] = m;
        nd->iparam[2] = k;
        nd->iparam[3] = n;
    }
    return out;
}

da_tensor *da_matmul(da_ctx *ctx, da_tensor *a, da_tensor *b)
{
    return mm(ctx, "da_matmul", a, b, 0);
}

da_tensor *da_bmm(da_ctx *ctx, da_tensor *a, da_tensor *b) { return mm(ctx, "da_bmm", a, b, 1); }

/* ---- linear: y = x W^T + b, optionally relu'd, one node ---- */

/* db[c] += sum_r G[r][c], G [rows][cols] */
static void add_col_sums(da_dtype dt, const void *G, long rows, long cols, void *db)
{
    DA_DISPATCH(dt, T, {
        const T *g = G;
        T *d = db;
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < cols; c++)
                d[c] += g[r * cols + c];
    });
}

static int linear_backward(da_node *nd)
{
    da_tensor *x = nd->in[0], *W = nd->in[1], *b = nd->n_in > 2 ? nd->in[2] : NULL;
    int N = x->shape[0], in = x->shape[1], out = W->shape[0];
    da_dtype dt = x->dtype;
    const void *G = masked_grad(nd, nd->iparam[0]); /* [N][out] */
    if (!G)
        return DA_ENOMEM;
    if (x->requires_grad) { /* dx [N][in] += G W */
        void *gx = da_tensor_grad(x);
        if (!gx)
            return DA_ENOMEM;
        gemm(dt, 0, 0, N, in, out, 1, G, out, W->data, in, 1, gx, in);
    }
    if (W->requires_grad) { /* dW [out][in] += G^T x */
        void *gw = da_tensor_grad(W);
        if (!gw)
            return DA_ENOMEM;
        gemm(dt, 1, 0, out, in, N, 1, G, out, x->data, in, 1, gw, in);
    }
    if (b && b->requires_grad) {
        void *gb = da_tensor_grad(b);
        if (!gb)
            return DA_ENOMEM;
        add_col_sums(dt, G, N, out, gb);
    }
    return DA_OK;
}

static da_tensor *linear(da_ctx *ctx, const char *who, da_tensor *x, da_tensor *W,
                         da_tensor *b, int relu)
{
    if (check_ctx(who, ctx) || check_input(who, x, "x", 2) || check_input(who, W, "W", 2) ||
        check_dtypes(who, x, W) || check_dtypes(who, x, b))
        return NULL;
    int N = x->shape[0], in = x->shape[1], out = W->shape[0];
    if (W->shape[1] != in || (b && (b->ndim != 1 || b->shape[0] != out))) {
        da_set_error(DA_ESHAPE, "%s: x [%d][%d], W [%d][%d], b [%d]: shapes do not match",
                     who, N, in, out, W->shape[1], b ? b->shape[0] : out);
        return NULL;
    }
    int shape[2] = {N, out};
    da_tensor *y = da_ctx_tensor(ctx, x->dtype, 2, shape);
    if (!y)
        return NULL;
    if (b)
        for (int r = 0; r < N; r++)
            memcpy((char *)y->data + (size_t)r * out * da_dtype_size(y->dtype), b->data,
                   (size_t)out * da_dtype_size(y->dtype));
    gemm(x->dtype, 0, 1, N, out, in, 1, x->data, in, W->data, in, b ? 1 : 0, y->data, out);
    if (relu)
        relu_inplace(y);
    da_tensor *ins[3] = {x, W, b};
    da_node *nd;
    if (da_graph_record(ctx, who, y, ins, b ? 3 : 2, linear_backward, &nd))
        return NULL;
    if (nd)
        nd->iparam[0] = relu;
    return y;
}

da_tensor *da_linear(da_ctx *ctx, da_tensor *x, da_tensor *W, da_tensor *b)
{
    return linear(ctx, "da_linear", x, W, b, 0);
}

da_tensor *da_linear_relu(da_ctx *ctx, da_tensor *x, da_tensor *W, da_tensor *b)
{
    return linear(ctx, "da_linear_relu", x, W, b, 1);
}
