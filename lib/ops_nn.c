/* ops_nn.c - matrix products, 2-D convolution and pooling (lib/ops.h "linear algebra and
 * convolutions"), plus the fused nodes declared in lib/layers.h: linear+relu,
 * conv2d+relu and conv2d+relu+maxpool. The losses are in lib/ops_loss.c.
 *
 * Every matrix product goes through CBLAS (sgemm or dgemm chosen by dtype, row-major).
 * Backward kernels accumulate into the input grads (beta = 1 in the GEMMs).
 *
 * conv2d is im2col + one GEMM over the whole batch (Chellapilla et al. 2006, "High
 * performance convolutional neural networks for document processing"):
 *   col [K][N*P], K = C*kh*kw, P = Ho*Wo, col[(c*kh+i)*kw+j][n*P + oh*Wo+ow]
 *       = x[n][c][oh*s+i-pad][ow*s+j-pad] (0 outside the image);
 *   Y [O][N*P] = W [O][K] col, then y[n][o][p] = Y[o][n*P+p] + b[o].
 * Backward with G [O][N*P] (the output grad in the same layout):
 *   dW += G col^T, db += row sums of G, dcol = W^T G, dx += col2im(dcol).
 * im2col and col2im run in parallel over the batch (each image owns its columns and its
 * slice of dx, so the result does not depend on the thread count). The forward keeps
 * col in the ctx for the weight gradient.
 *
 * The fused conv2d+relu+maxpool node pools straight from Y (each [Ho][Wo] plane of an
 * image and channel is contiguous there) and its backward scatters the pooled grads
 * into G at the saved argmax offsets, so the full-size activation, its grad and the
 * relu mask are never materialised. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "layers.h"
#include "ops.h"
#include "ops_util.h"

/* ---- helpers ---- */

/* C = alpha op(A) op(B) + beta C, row-major, through sgemm/dgemm by dtype */
static void gemm(da_dtype dt, int ta, int tb, int M, int N, int K, double alpha,
                 const void *A, int lda, const void *B, int ldb, double beta, void *C,
                 int ldc)
{
    enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE TB = tb ? CblasTrans : CblasNoTrans;
    if (dt == DA_F32)
        cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, (float)alpha, A, lda, B, ldb,
                    (float)beta, C, ldc);
    else
        cblas_dgemm(CblasRowMajor, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* A NULL input passes the error of the op that produced it through (or reports one). */
static int check_input(const char *who, const da_tensor *t, const char *what, int ndim)
{
    if (!t) {
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "%s: %s is NULL", who, what);
        return da_last_error_code();
    }
    if (ndim >= 0 && t->ndim != ndim)
        return da_set_error(DA_ESHAPE, "%s: %s has %d dimensions (need %d)", who, what,
                            t->ndim, ndim);
    return DA_OK;
}

static int check_dtypes(const char *who, const da_tensor *a, const da_tensor *b)
{
    if (b && a->dtype != b->dtype)
        return da_set_error(DA_EDTYPE, "%s: inputs have different dtypes", who);
    return DA_OK;
}

static int check_ctx(const char *who, const da_ctx *ctx)
{
    return ctx ? DA_OK : da_set_error(DA_EINVAL, "%s: ctx is NULL", who);
}

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

/* db[r] += sum_c G[r][c], G [rows][cols] */
static void add_row_sums(da_dtype dt, const void *G, long rows, long cols, void *db)
{
    DA_DISPATCH(dt, T, {
        const T *g = G;
        T *d = db;
        for (long r = 0; r < rows; r++) {
            T s = 0;
            OPS_PRAGMA(omp simd reduction(+ : s))
            for (long c = 0; c < cols; c++)
                s += g[r * cols + c];
            d[r] += s;
        }
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

/* ---- pooling kernels on one plane [H][W] -> [Ho][Wo], window k, stride s ---- */

typedef struct {
    int H, W, Ho, Wo, k, s;
} pool_dims;

/* y = window max, idx = its offset in the plane (first max; a NaN wins and propagates,
 * as in torch). Each output row is updated window tap by window tap, so the inner loop
 * runs over outputs without branches (SIMD). */
static void maxpool_plane(da_dtype dt, const pool_dims *d, const void *x, void *y, int *idx)
{
    int W = d->W, Wo = d->Wo, s = d->s;
    DA_DISPATCH(dt, T, {
        for (int oh = 0; oh < d->Ho; oh++) {
            const T *x0 = (const T *)x + (long)oh * s * W;
            T *yr = (T *)y + (long)oh * Wo;
            int *ir = idx + (long)oh * Wo, base0 = oh * s * W;
            for (int ow = 0; ow < Wo; ow++) {
                yr[ow] = x0[ow * s];
                ir[ow] = base0 + ow * s;
            }
            for (int t = 1; t < d->k * d->k; t++) {
                int i = t / d->k, j = t % d->k, base = base0 + i * W + j;
                const T *xr = x0 + i * W + j;
                OPS_PRAGMA(omp simd)
                for (int ow = 0; ow < Wo; ow++) {
                    T v = xr[ow * s];
                    int take = (v > yr[ow]) | (v != v);
                    yr[ow] = take ? v : yr[ow];
                    ir[ow] = take ? base + ow * s : ir[ow];
                }
            }
        }
    });
}

static void avgpool_plane(da_dtype dt, const pool_dims *d, const void *x, void *y)
{
    DA_DISPATCH(dt, T, {
        const T *xp = x;
        T *yp = y;
        for (int oh = 0; oh < d->Ho; oh++)
            for (int ow = 0; ow < d->Wo; ow++) {
                T sum = 0;
                for (int i = 0; i < d->k; i++)
                    for (int j = 0; j < d->k; j++)
                        sum += xp[(oh * d->s + i) * d->W + ow * d->s + j];
                yp[oh * d->Wo + ow] = sum / (T)(d->k * d->k);
            }
    });
}

/* dx += the pooling's vector-Jacobian product with dy: max (idx != NULL) routes each grad
 * to its argmax, avg spreads it over the window */
static void pool_plane_backward(da_dtype dt, const pool_dims *d, const void *dy, void *dx,
                                const int *idx)
{
    DA_DISPATCH(dt, T, {
        const T *g = dy;
        T *dxp = dx;
        for (int oh = 0; oh < d->Ho; oh++)
            for (int ow = 0; ow < d->Wo; ow++) {
                T gv = g[oh * d->Wo + ow];
                if (idx) {
                    dxp[idx[oh * d->Wo + ow]] += gv;
                    continue;
                }
                gv /= (T)(d->k * d->k);
                for (int i = 0; i < d->k; i++)
                    for (int j = 0; j < d->k; j++)
                        dxp[(oh * d->s + i) * d->W + ow * d->s + j] += gv;
            }
    });
}

static int pool_dims_make(const char *who, int H, int W, int k, int s, pool_dims *d)
{
    if (k < 1 || s < 1)
        return da_set_error(DA_ERANGE, "%s: pool window %d and stride %d must be >= 1", who,
                            k, s);
    if (k > H || k > W)
        return da_set_error(DA_ESHAPE, "%s: pool window %d larger than the input %dx%d", who,
                            k, H, W);
    *d = (pool_dims){.H = H, .W = W, .Ho = (H - k) / s + 1, .Wo = (W - k) / s + 1, .k = k,
                     .s = s};
    return DA_OK;
}

/* ---- conv2d: im2col + GEMM, optionally relu and maxpool fused in ---- */

typedef struct {
    da_dtype dt;
    int N, C, H, W, O, kh, kw, Ho, Wo, stride, pad;
    int par;        /* enough work for OpenMP threads */
    int relu;       /* relu fused in */
    int pool;       /* maxpool fused in (after the relu), with dims pd */
    pool_dims pd;   /* [Ho][Wo] -> [pd.Ho][pd.Wo] */
    int *idx;       /* [N][O][pd.Ho][pd.Wo] argmax offsets in the [Ho][Wo] plane */
    int *ow_lo, *ow_hi; /* [kw] valid output columns [lo, hi) of kernel column j */
    void *col;      /* [K][N*P], kept for the weight gradient */
} conv_geom;

/* valid output columns [lo, hi) for kernel column j: 0 <= ow*s + j - pad < W */
static void conv_ow_range(conv_geom *g, int j)
{
    int a = g->pad - j, b = g->W - 1 + g->pad - j;
    int lo = a > 0 ? (a + g->stride - 1) / g->stride : 0;
    int hi = b >= 0 ? b / g->stride + 1 : 0;
    lo = lo < g->Wo ? lo : g->Wo;
    hi = hi < g->Wo ? hi : g->Wo;
    g->ow_lo[j] = lo;
    g->ow_hi[j] = hi > lo ? hi : lo;
}

/* image n of x [N][C][H][W] into its columns of col [K][N*P] */
static void im2col_image(const conv_geom *g, const void *x, void *col, int n)
{
    long P = (long)g->Ho * g->Wo, NP = P * g->N;
    int s = g->stride;
    DA_DISPATCH(g->dt, T, {
        const T *xn = (const T *)x + (long)n * g->C * g->H * g->W;
        for (int c = 0; c < g->C; c++)
            for (int i = 0; i < g->kh; i++)
                for (int j = 0; j < g->kw; j++) {
                    const T *xc = xn + (long)c * g->H * g->W;
                    T *row = (T *)col + (long)((c * g->kh + i) * g->kw + j) * NP + n * P;
                    int lo = g->ow_lo[j], hi = g->ow_hi[j], off = j - g->pad;
                    for (int oh = 0; oh < g->Ho; oh++) {
                        T *dst = row + (long)oh * g->Wo;
                        int ih = oh * s + i - g->pad;
                        if (ih < 0 || ih >= g->H) {
                            memset(dst, 0, (size_t)g->Wo * sizeof(T));
                            continue;
                        }
                        const T *src = xc + (long)ih * g->W;
                        for (int ow = 0; ow < lo; ow++)
                            dst[ow] = 0;
                        if (s == 1)
                            memcpy(dst + lo, src + lo + off, (size_t)(hi - lo) * sizeof(T));
                        else
                            for (int ow = lo; ow < hi; ow++)
                                dst[ow] = src[ow * s + off];
                        for (int ow = hi; ow < g->Wo; ow++)
                            dst[ow] = 0;
                    }
                }
    });
}

/* dx[n] += col2im of the columns of image n in dcol [K][N*P] */
static void col2im_image(const conv_geom *g, const void *dcol, void *dx, int n)
{
    long P = (long)g->Ho * g->Wo, NP = P * g->N;
    int s = g->stride;
    DA_DISPATCH(g->dt, T, {
        T *xn = (T *)dx + (long)n * g->C * g->H * g->W;
        for (int c = 0; c < g->C; c++)
            for (int i = 0; i < g->kh; i++)
                for (int j = 0; j < g->kw; j++) {
                    T *xc = xn + (long)c * g->H * g->W;
                    const T *row =
                        (const T *)dcol + (long)((c * g->kh + i) * g->kw + j) * NP + n * P;
                    int lo = g->ow_lo[j], hi = g->ow_hi[j], off = j - g->pad;
                    for (int oh = 0; oh < g->Ho; oh++) {
                        int ih = oh * s + i - g->pad;
                        if (ih < 0 || ih >= g->H)
                            continue;
                        const T *src = row + (long)oh * g->Wo;
                        T *dst = xc + (long)ih * g->W + off;
                        if (s == 1) {
                            OPS_PRAGMA(omp simd)
                            for (int ow = lo; ow < hi; ow++)
                                dst[ow] += src[ow];
                        } else {
                            for (int ow = lo; ow < hi; ow++)
                                dst[ow * s] += src[ow];
                        }
                    }
                }
    });
}

/* image n of the output from Y [O][N*P]: y[n][o] = relu?(Y[o][n*P..] + b[o]), or with the
 * pool fused, y[n][o] = relu(maxpool(Y[o][n*P..]) + b[o]) (max and relu commute, and
 * adding b[o] after the max gives the same value) */
static void conv_output_image(const conv_geom *g, const void *Y, const void *b, void *y, int n)
{
    long P = (long)g->Ho * g->Wo, NP = P * g->N;
    long Q = g->pool ? (long)g->pd.Ho * g->pd.Wo : P;
    size_t es = da_dtype_size(g->dt);
    for (int o = 0; o < g->O; o++) {
        const char *src = (const char *)Y + (size_t)(o * NP + n * P) * es;
        char *dst = (char *)y + (size_t)(((long)n * g->O + o) * Q) * es;
        if (g->pool)
            maxpool_plane(g->dt, &g->pd, src, dst, g->idx + ((long)n * g->O + o) * Q);
        DA_DISPATCH(g->dt, T, {
            const T *in = g->pool ? (const T *)dst : (const T *)src;
            T *out = (T *)dst, bo = b ? ((const T *)b)[o] : 0;
            for (long p = 0; p < Q; p++) {
                T v = in[p] + bo;
                out[p] = g->relu && v < 0 ? 0 : v;
            }
        });
    }
}

/* image n of G [O][N*P] (zero-filled) from the output grad dy (masked by y > 0 under a
 * fused relu, routed to the argmax under a fused pool) */
static void conv_grad_image(const conv_geom *g, const void *dy, const void *y, void *G, int n)
{
    long P = (long)g->Ho * g->Wo, NP = P * g->N;
    long Q = g->pool ? (long)g->pd.Ho * g->pd.Wo : P;
    DA_DISPATCH(g->dt, T, {
        for (int o = 0; o < g->O; o++) {
            long q0 = ((long)n * g->O + o) * Q;
            const T *src = (const T *)dy + q0, *yv = (const T *)y + q0;
            T *dst = (T *)G + o * NP + n * P;
            const int *idx = g->pool ? g->idx + q0 : NULL;
            for (long p = 0; p < Q; p++) {
                T gv = g->relu && !(yv[p] > 0) ? 0 : src[p];
                dst[idx ? idx[p] : p] += gv;
            }
        }
    });
}

static int conv_backward(da_node *nd)
{
    const conv_geom *g = nd->saved;
    da_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->n_in > 2 ? nd->in[2] : NULL;
    da_ctx *ctx = nd->out->ctx;
    int K = g->C * g->kh * g->kw;
    long NP = (long)g->N * g->Ho * g->Wo;
    size_t es = da_dtype_size(g->dt);
    void *G = da_ctx_alloc(ctx, (size_t)g->O * NP * es); /* [O][N*P], zero-filled */
    if (!G)
        return DA_ENOMEM;
#pragma omp parallel for schedule(static) if (g->par)
    for (int n = 0; n < g->N; n++)
        conv_grad_image(g, nd->out->grad, nd->out->data, G, n);
    if (b && b->requires_grad) {
        void *gb = da_tensor_grad(b);
        if (!gb)
            return DA_ENOMEM;
        add_row_sums(g->dt, G, g->O, NP, gb);
    }
    if (w->requires_grad) { /* dW [O][K] += G col^T */
        void *gw = da_tensor_grad(w);
        if (!gw)
            return DA_ENOMEM;
        gemm(g->dt, 0, 1, g->O, K, (int)NP, 1, G, (int)NP, g->col, (int)NP, 1, gw, K);
    }
    if (x->requires_grad) { /* dcol [K][N*P] = W^T G (dcol zero-filled), dx += col2im(dcol) */
        void *gx = da_tensor_grad(x);
        void *dcol = da_ctx_alloc(ctx, (size_t)K * NP * es);
        if (!gx || !dcol)
            return DA_ENOMEM;
        gemm(g->dt, 1, 0, K, (int)NP, g->O, 1, w->data, K, G, (int)NP, 1, dcol, (int)NP);
#pragma omp parallel for schedule(static) if (g->par)
        for (int n = 0; n < g->N; n++)
            col2im_image(g, dcol, gx, n);
    }
    return DA_OK;
}

static int conv_check(const char *who, da_tensor *x, da_tensor *w, da_tensor *b, int stride,
                      int pad)
{
    if (check_input(who, x, "x", 4) || check_input(who, w, "w", 4) ||
        check_dtypes(who, x, w) || check_dtypes(who, x, b))
        return da_last_error_code();
    if (stride < 1 || pad < 0)
        return da_set_error(DA_ERANGE, "%s: stride %d (need >= 1), pad %d (need >= 0)", who,
                            stride, pad);
    if (w->shape[1] != x->shape[1])
        return da_set_error(DA_ESHAPE, "%s: x has %d channels, w expects %d", who,
                            x->shape[1], w->shape[1]);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return da_set_error(DA_ESHAPE, "%s: b must have shape [%d]", who, w->shape[0]);
    if (w->shape[2] > x->shape[2] + 2 * pad || w->shape[3] > x->shape[3] + 2 * pad)
        return da_set_error(DA_ESHAPE, "%s: kernel %dx%d larger than the padded input %dx%d",
                            who, w->shape[2], w->shape[3], x->shape[2] + 2 * pad,
                            x->shape[3] + 2 * pad);
    if ((long)x->shape[0] * x->shape[2] * x->shape[3] * w->shape[1] * w->shape[2] *
            w->shape[3] > 2147483647L)
        return da_set_error(DA_ERANGE, "%s: im2col buffer too large for one GEMM", who);
    return DA_OK;
}

/* the geometry of conv (+ relu) (+ maxpool pool_k / pool_s when pool_k > 0) */
static conv_geom *conv_geom_new(da_ctx *ctx, const char *who, da_tensor *x, da_tensor *w,
                                int stride, int pad, int relu, int pool_k, int pool_s)
{
    conv_geom *g = da_ctx_alloc(ctx, sizeof *g);
    if (!g)
        return NULL;
    *g = (conv_geom){.dt = x->dtype, .N = x->shape[0], .C = x->shape[1], .H = x->shape[2],
                     .W = x->shape[3], .O = w->shape[0], .kh = w->shape[2], .kw = w->shape[3],
                     .stride = stride, .pad = pad, .relu = relu, .pool = pool_k > 0};
    g->Ho = (g->H + 2 * pad - g->kh) / stride + 1;
    g->Wo = (g->W + 2 * pad - g->kw) / stride + 1;
    g->par = (long)(g->C * g->kh * g->kw + g->O) * g->N * g->Ho * g->Wo >= OPS_PAR_MIN;
    g->ow_lo = da_ctx_alloc(ctx, 2 * (size_t)g->kw * sizeof(int));
    if (!g->ow_lo)
        return NULL;
    g->ow_hi = g->ow_lo + g->kw;
    for (int j = 0; j < g->kw; j++)
        conv_ow_range(g, j);
    if (g->pool && pool_dims_make(who, g->Ho, g->Wo, pool_k, pool_s, &g->pd))
        return NULL;
    return g;
}

static da_tensor *conv2d(da_ctx *ctx, const char *who, da_tensor *x, da_tensor *w,
                         da_tensor *b, int stride, int pad, int relu, int pool_k, int pool_s)
{
    if (check_ctx(who, ctx) || conv_check(who, x, w, b, stride, pad))
        return NULL;
    conv_geom *g = conv_geom_new(ctx, who, x, w, stride, pad, relu, pool_k, pool_s);
    if (!g)
        return NULL;
    int K = g->C * g->kh * g->kw;
    long NP = (long)g->N * g->Ho * g->Wo;
    size_t es = da_dtype_size(g->dt);
    int shape[4] = {g->N, g->O, g->pool ? g->pd.Ho : g->Ho, g->pool ? g->pd.Wo : g->Wo};
    da_tensor *y = da_ctx_tensor(ctx, g->dt, 4, shape);
    void *Y = da_ctx_alloc(ctx, (size_t)g->O * NP * es); /* [O][N*P] */
    g->col = da_ctx_alloc(ctx, (size_t)K * NP * es);
    if (g->pool)
        g->idx = da_ctx_alloc(ctx, (size_t)(y ? y->size : 1) * sizeof(int));
    if (!y || !Y || !g->col || (g->pool && !g->idx))
        return NULL;
#pragma omp parallel for schedule(static) if (g->par)
    for (int n = 0; n < g->N; n++)
        im2col_image(g, x->data, g->col, n);
    /* Y is zero-filled by the arena: beta = 1 spares GEMM a second zeroing pass */
    gemm(g->dt, 0, 0, g->O, (int)NP, K, 1, w->data, K, g->col, (int)NP, 1, Y, (int)NP);
    const void *bias = b ? b->data : NULL;
#pragma omp parallel for schedule(static) if (g->par)
    for (int n = 0; n < g->N; n++)
        conv_output_image(g, Y, bias, y->data, n);
    da_tensor *ins[3] = {x, w, b};
    da_node *nd;
    if (da_graph_record(ctx, who, y, ins, b ? 3 : 2, conv_backward, &nd))
        return NULL;
    if (nd)
        nd->saved = g;
    return y;
}

da_tensor *da_conv2d(da_ctx *ctx, da_tensor *x, da_tensor *w, da_tensor *b, int stride,
                     int pad)
{
    return conv2d(ctx, "da_conv2d", x, w, b, stride, pad, 0, 0, 0);
}

da_tensor *da_conv2d_relu(da_ctx *ctx, da_tensor *x, da_tensor *w, da_tensor *b, int stride,
                          int pad)
{
    return conv2d(ctx, "da_conv2d_relu", x, w, b, stride, pad, 1, 0, 0);
}

da_tensor *da_conv2d_relu_maxpool(da_ctx *ctx, da_tensor *x, da_tensor *w, da_tensor *b,
                                  int stride, int pad, int pool_k, int pool_stride)
{
    if (pool_k < 1) {
        da_set_error(DA_ERANGE, "da_conv2d_relu_maxpool: pool window %d (need >= 1)", pool_k);
        return NULL;
    }
    return conv2d(ctx, "da_conv2d_relu_maxpool", x, w, b, stride, pad, 1, pool_k,
                  pool_stride);
}

/* ---- pooling ops: x [N][C][H][W] -> [N][C][Ho][Wo], no padding ---- */

typedef struct {
    pool_dims d;
    int *idx; /* [N][C][Ho][Wo] argmax offsets in each plane (maxpool), NULL (avgpool) */
} pool_saved;

static int pool_backward(da_node *nd)
{
    da_tensor *x = nd->in[0], *y = nd->out;
    const pool_saved *ps = nd->saved;
    const pool_dims *d = &ps->d;
    const int *idx = ps->idx;
    void *gx = da_tensor_grad(x);
    if (!gx)
        return DA_ENOMEM;
    size_t es = da_dtype_size(x->dtype);
    long planes = (long)x->shape[0] * x->shape[1], in = (long)d->H * d->W,
         out = (long)d->Ho * d->Wo;
#pragma omp parallel for schedule(static) if (x->size >= OPS_PAR_MIN)
    for (long q = 0; q < planes; q++)
        pool_plane_backward(x->dtype, d, (const char *)y->grad + (size_t)(q * out) * es,
                            (char *)gx + (size_t)(q * in) * es, idx ? idx + q * out : NULL);
    return DA_OK;
}

static da_tensor *pool2d(da_ctx *ctx, const char *who, da_tensor *x, int k, int s, int is_max)
{
    if (check_ctx(who, ctx) || check_input(who, x, "x", 4))
        return NULL;
    pool_saved *ps = da_ctx_alloc(ctx, sizeof *ps);
    pool_dims *d = ps ? &ps->d : NULL;
    if (!ps || pool_dims_make(who, x->shape[2], x->shape[3], k, s, d))
        return NULL;
    int shape[4] = {x->shape[0], x->shape[1], d->Ho, d->Wo};
    da_tensor *y = da_ctx_tensor(ctx, x->dtype, 4, shape);
    int *idx = is_max && y ? da_ctx_alloc(ctx, (size_t)y->size * sizeof(int)) : NULL;
    if (!y || (is_max && !idx))
        return NULL;
    ps->idx = idx;
    size_t es = da_dtype_size(x->dtype);
    long planes = (long)x->shape[0] * x->shape[1], in = (long)d->H * d->W,
         out = (long)d->Ho * d->Wo;
#pragma omp parallel for schedule(static) if (x->size >= OPS_PAR_MIN)
    for (long q = 0; q < planes; q++) {
        const char *xq = (const char *)x->data + (size_t)(q * in) * es;
        char *yq = (char *)y->data + (size_t)(q * out) * es;
        if (is_max)
            maxpool_plane(x->dtype, d, xq, yq, idx + q * out);
        else
            avgpool_plane(x->dtype, d, xq, yq);
    }
    da_node *nd;
    if (da_graph_record(ctx, who, y, &x, 1, pool_backward, &nd))
        return NULL;
    if (nd)
        nd->saved = ps;
    return y;
}

da_tensor *da_maxpool2d(da_ctx *ctx, da_tensor *x, int k, int stride)
{
    return pool2d(ctx, "da_maxpool2d", x, k, stride, 1);
}

da_tensor *da_avgpool2d(da_ctx *ctx, da_tensor *x, int k, int stride)
{
    return pool2d(ctx, "da_avgpool2d", x, k, stride, 0);
}
