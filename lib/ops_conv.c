/* ops_conv.c - 2-D convolution and pooling (lib/ops.h "convolutions"), plus the fused
 * nodes declared in lib/layers.h: conv2d+relu and conv2d+relu+maxpool.
 *
 * conv2d is im2col + GEMM (Chellapilla et al. 2006, "High performance convolutional
 * neural networks for document processing"), one GEMM per chunk of nb images (nb*P >=
 * CONV_MIN_COLS columns, P = Ho*Wo), so that col, Y and G stay in cache:
 *   col [K][nb*P], K = C*kh*kw, col[(c*kh+i)*kw+j][k*P + oh*Wo+ow]
 *       = x[n0+k][c][oh*s+i-pad][ow*s+j-pad] (0 outside the image);
 *   Y [O][nb*P] = W [O][K] col, then y[n0+k][o][p] = Y[o][k*P+p] + b[o].
 * Backward with G [O][nb*P] (the output grad of the chunk in the same layout):
 *   dW += G col^T (col recomputed), db += row sums of G, dcol = W^T G, dx += col2im(dcol).
 * Chunks run on OpenMP threads, each with single-threaded GEMMs; per-thread work buffers
 * only, nothing of size N*K*P. The fused conv2d+relu+maxpool node pools straight from Y
 * and its backward scatters the pooled grads into G at the saved argmax offsets, so the
 * full-size activation, its grad and the relu mask are never materialised.
 * F32 stride-1 3x3 / 5x5 convolutions can run on Winograd minimal filtering instead of
 * im2col (lib/ops_winograd.c, da_conv_set_algorithm): the same chunks, threads, epilogue
 * and weight-gradient slots, only the Y = W col and backward GEMMs are replaced. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "layers.h"
#include "ops.h"
#include "ops_conv_impl.h"

/* db[r] += sum_c G[r][c], G [rows][cols] with rows ld apart */
static void add_row_sums(da_dtype dt, const void *G, long rows, long cols, long ld, void *db)
{
    DA_DISPATCH(dt, T, {
        const T *g = G;
        T *d = db;
        for (long r = 0; r < rows; r++) {
            T s = 0;
            OPS_PRAGMA(omp simd reduction(+ : s))
            for (long c = 0; c < cols; c++)
                s += g[r * ld + c];
            d[r] += s;
        }
    });
}

/* ---- pooling kernels on one plane [H][W] -> [Ho][Wo], window k, stride s ---- */

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

/* maxpool_plane for 2 x 2 windows at stride 2 (the papers' CNNs), the same taps in the
 * same order with constant strides, so the loop vectorises */
static void maxpool2_plane(da_dtype dt, const pool_dims *d, const void *x, void *y, int *idx)
{
    int W = d->W, Wo = d->Wo;
    DA_DISPATCH(dt, T, {
        for (int oh = 0; oh < d->Ho; oh++) {
            const T *r0 = (const T *)x + (long)oh * 2 * W, *r1 = r0 + W;
            T *yr = (T *)y + (long)oh * Wo;
            int *ir = idx + (long)oh * Wo, base = oh * 2 * W;
            OPS_PRAGMA(omp simd)
            for (int ow = 0; ow < Wo; ow++) {
                T m = r0[2 * ow], v01 = r0[2 * ow + 1], v10 = r1[2 * ow], v11 = r1[2 * ow + 1];
                int at = base + 2 * ow, take = (v01 > m) | (v01 != v01);
                m = take ? v01 : m;
                at = take ? base + 2 * ow + 1 : at;
                take = (v10 > m) | (v10 != v10);
                m = take ? v10 : m;
                at = take ? base + W + 2 * ow : at;
                take = (v11 > m) | (v11 != v11);
                yr[ow] = take ? v11 : m;
                ir[ow] = take ? base + W + 2 * ow + 1 : at;
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

/* ---- conv2d: im2col + GEMM per chunk of images, optionally relu and maxpool fused in ---- */

#define CONV_MIN_COLS 256 /* a chunk holds enough images for a GEMM of >= this many columns */

static da_conv_algorithm conv_algorithm = DA_CONV_AUTO; /* da_conv_set_algorithm */

int da_conv_set_algorithm(da_conv_algorithm algo)
{
    if (algo != DA_CONV_AUTO && algo != DA_CONV_IM2COL && algo != DA_CONV_WINOGRAD)
        return da_set_error(DA_ERANGE, "da_conv_set_algorithm: unknown algorithm %d",
                            (int)algo);
    conv_algorithm = algo;
    return DA_OK;
}

da_conv_algorithm da_conv_get_algorithm(void) { return conv_algorithm; }

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

/* OpenMP threads for the chunk loop: none below OPS_PAR_MIN, at most one per chunk */
static int conv_threads(const conv_geom *g)
{
    int nt = (long)(g->K + g->O) * g->N * g->P >= OPS_PAR_MIN ? omp_get_max_threads() : 1;
    return nt < g->n_chunks ? nt : g->n_chunks;
}

/* One threading model at a time: while nt OpenMP threads each run single-threaded GEMMs,
 * OpenBLAS's own threads are switched off (both at once oversubscribe the cores).
 * Returns the OpenBLAS thread count to restore. */
static int blas_threads_off(int nt)
{
    int nb = openblas_get_num_threads();
    if (nt > 1 && nb > 1)
        openblas_set_num_threads(1);
    return nb;
}

static void blas_threads_restore(int nt, int nb)
{
    if (nt > 1 && nb > 1)
        openblas_set_num_threads(nb);
}

/* image n of x [N][C][H][W] into column block `slot` of col [K][nb*P] */
static void im2col_image(const conv_geom *g, const void *x, void *col, int n, int slot)
{
    long P = g->P, ld = P * g->nb;
    int s = g->stride;
    DA_DISPATCH(g->dt, T, {
        const T *xn = (const T *)x + (long)n * g->C * g->H * g->W;
        for (int c = 0; c < g->C; c++)
            for (int i = 0; i < g->kh; i++)
                for (int j = 0; j < g->kw; j++) {
                    const T *xc = xn + (long)c * g->H * g->W;
                    T *row = (T *)col + (long)((c * g->kh + i) * g->kw + j) * ld + slot * P;
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

/* dx[n] += col2im of column block `slot` of dcol [K][nb*P] */
static void col2im_image(const conv_geom *g, const void *dcol, void *dx, int n, int slot)
{
    long P = g->P, ld = P * g->nb;
    int s = g->stride;
    DA_DISPATCH(g->dt, T, {
        T *xn = (T *)dx + (long)n * g->C * g->H * g->W;
        for (int c = 0; c < g->C; c++)
            for (int i = 0; i < g->kh; i++)
                for (int j = 0; j < g->kw; j++) {
                    T *xc = xn + (long)c * g->H * g->W;
                    const T *row =
                        (const T *)dcol + (long)((c * g->kh + i) * g->kw + j) * ld + slot * P;
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

/* image n of the output from column block `slot` of Y [O][nb*P]: y[n][o] =
 * relu?(Y[o][slot*P..] + b[o]), or with the pool fused, y[n][o] = relu(maxpool(Y[o][..]) +
 * b[o]) (max and relu commute, and adding b[o] after the max gives the same value) */
static void conv_output_image(const conv_geom *g, const void *Y, int slot, const void *b,
                              void *y, int n)
{
    long P = g->P, ld = P * g->nb;
    long Q = g->pool ? (long)g->pd.Ho * g->pd.Wo : P;
    size_t es = da_dtype_size(g->dt);
    for (int o = 0; o < g->O; o++) {
        const char *src = (const char *)Y + (size_t)(o * ld + slot * P) * es;
        char *dst = (char *)y + (size_t)(((long)n * g->O + o) * Q) * es;
        if (g->pool && g->pd.k == 2 && g->pd.s == 2)
            maxpool2_plane(g->dt, &g->pd, src, dst, g->idx + ((long)n * g->O + o) * Q);
        else if (g->pool)
            maxpool_plane(g->dt, &g->pd, src, dst, g->idx + ((long)n * g->O + o) * Q);
        DA_DISPATCH(g->dt, T, {
            const T *in = g->pool ? (const T *)dst : (const T *)src;
            T *out = (T *)dst, bo = b ? ((const T *)b)[o] : 0, lo = g->relu ? 0 : -INFINITY;
            OPS_PRAGMA(omp simd) /* in is out or disjoint from it */
            for (long p = 0; p < Q; p++) {
                T v = in[p] + bo;
                out[p] = v < lo ? 0 : v;
            }
        });
    }
}

/* column block `slot` of G [O][nb*P] from the output grad dy of image n, masked by y > 0
 * under a fused relu, routed to the argmax under a fused pool (into a zeroed block) */
static void conv_grad_image(const conv_geom *g, const void *dy, const void *y, void *G,
                            int slot, int n)
{
    long P = g->P, ld = P * g->nb;
    long Q = g->pool ? (long)g->pd.Ho * g->pd.Wo : P;
    DA_DISPATCH(g->dt, T, {
        for (int o = 0; o < g->O; o++) {
            long q0 = ((long)n * g->O + o) * Q;
            const T *src = (const T *)dy + q0, *yv = (const T *)y + q0;
            T *dst = (T *)G + o * ld + slot * P;
            const int *idx = g->pool ? g->idx + q0 : NULL;
            memset(dst, 0, (size_t)P * sizeof(T));
            for (long p = 0; p < Q && g->relu; p++) /* a NaN in y passes no gradient */
                dst[idx ? idx[p] : p] += yv[p] > 0 ? src[p] : 0;
            for (long p = 0; p < Q && !g->relu; p++)
                dst[idx ? idx[p] : p] += src[p];
        }
    });
}

/* per-thread work buffers: Y (or G) [O][nb*P], then col [K][nb*P] (im2col) or the
 * Winograd work space; *per = bytes a thread */
static char *conv_work(da_ctx *ctx, const conv_geom *g, int nt, size_t *per)
{
    size_t ld = (size_t)g->P * g->nb, es = da_dtype_size(g->dt);
    *per = round64((size_t)g->O * ld * es) +
           (g->wino ? da_wino_work_bytes(g) : round64((size_t)g->K * ld * es));
    return da_ctx_alloc_uninit(ctx, *per * (size_t)nt); /* every use overwrites it */
}

/* the output of the images of chunk c: Y (without bias) by Winograd, or by im2col and
 * Y = W col (one GEMM), then bias, relu and pool per image; Y and col are the thread's work
 * buffers */
static void conv_forward_chunk(const conv_geom *g, const da_tensor *x, const da_tensor *w,
                               const void *b, void *y, char *work, int c)
{
    int count, n0 = conv_chunk(g, c, &count), ld = g->P * g->nb;
    char *Y = work, *col = work + round64((size_t)g->O * ld * da_dtype_size(g->dt));
    if (g->wino) {
        da_wino_forward_chunk(g, x->data, (float *)Y, col, c);
    } else {
        for (int k = 0; k < count; k++)
            im2col_image(g, x->data, col, n0 + k, k);
        gemm_into(g->dt, 0, 0, g->O, count * g->P, g->K, w->data, g->K, col, ld, Y, ld);
    }
    for (int k = 0; k < count; k++)
        conv_output_image(g, Y, k, b, y, n0 + k);
}

/* floats of the weight part of a dW/db partial sum: dW [O][K], or Winograd's dU */
static long conv_dw_size(const conv_geom *g)
{
    return g->wino ? da_wino_dU_size(g) : (long)g->O * g->K;
}

/* the gradients from chunk c: G [O][nb*P] from the output grad; with dwb (the dW part,
 * conv_dw_size, then db [O]: the partial sums of a slot): db += row sums of G, and
 * dW += G col^T (col recomputed) or Winograd's dU; with gx: dx += col2im(W^T G) (dcol
 * reuses col) or Winograd's */
static void conv_backward_chunk(const conv_geom *g, const da_node *nd, char *work, void *dwb,
                                void *gx, int c)
{
    const da_tensor *x = nd->in[0], *w = nd->in[1];
    int count, n0 = conv_chunk(g, c, &count), ld = g->P * g->nb, cols = count * g->P;
    size_t es = da_dtype_size(g->dt);
    char *G = work, *col = work + round64((size_t)g->O * ld * es);
    for (int k = 0; k < count; k++)
        conv_grad_image(g, nd->out->grad, nd->out->data, G, k, n0 + k);
    if (dwb)
        add_row_sums(g->dt, G, g->O, cols, ld, (char *)dwb + (size_t)conv_dw_size(g) * es);
    if (g->wino) {
        da_wino_backward_chunk(g, x->data, (const float *)G, col, dwb, gx, c);
        return;
    }
    if (dwb) {
        for (int k = 0; k < count; k++)
            im2col_image(g, x->data, col, n0 + k, k);
        gemm(g->dt, 0, 1, g->O, g->K, cols, 1, G, ld, col, ld, 1, dwb, g->K);
    }
    if (gx) {
        gemm_into(g->dt, 1, 0, g->K, cols, g->O, w->data, g->K, G, ld, col, ld);
        for (int k = 0; k < count; k++)
            col2im_image(g, col, gx, n0 + k, k);
    }
}

/* gw += the slot partial sums of dW (Winograd: the transform of those of dU), gb += those
 * of db, in slot order */
static void conv_reduce(const conv_geom *g, const void *part, size_t stride, int slots,
                        void *gw, void *gb)
{
    long OK = conv_dw_size(g);
    if (g->wino && gw)
        da_wino_weight_grad(g, part, stride, slots, gw);
    DA_DISPATCH(g->dt, T, {
        for (int s = 0; s < slots; s++) {
            const T *p = (const T *)((const char *)part + (size_t)s * stride);
            for (long i = 0; gw && !g->wino && i < OK; i++)
                ((T *)gw)[i] += p[i];
            for (int o = 0; gb && o < g->O; o++)
                ((T *)gb)[o] += p[OK + o];
        }
    });
}

/* Chunks go to threads dynamically; the dW/db partial sums belong to CONV_SLOTS fixed
 * runs of chunks, each summed in chunk order, so the result is the same bitwise for any
 * thread count and schedule. */
static int conv_backward(da_node *nd)
{
    const conv_geom *g = nd->saved;
    da_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->n_in > 2 ? nd->in[2] : NULL;
    da_ctx *ctx = nd->out->ctx;
    size_t es = da_dtype_size(g->dt), per;
    void *gx = x->requires_grad ? da_tensor_grad(x) : NULL;
    void *gw = w->requires_grad ? da_tensor_grad(w) : NULL;
    void *gb = b && b->requires_grad ? da_tensor_grad(b) : NULL;
    if ((x->requires_grad && !gx) || (w->requires_grad && !gw) ||
        (b && b->requires_grad && !gb))
        return DA_ENOMEM;
    int nt = conv_threads(g), slots = g->n_chunks < CONV_SLOTS ? g->n_chunks : CONV_SLOTS;
    size_t stride = round64(((size_t)conv_dw_size(g) + g->O) * es);
    char *work = conv_work(ctx, g, nt, &per);
    char *part = gw || gb ? da_ctx_alloc(ctx, stride * (size_t)slots) : NULL; /* zeroed */
    if (!work || ((gw || gb) && !part))
        return DA_ENOMEM;
    int blas = blas_threads_off(nt);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int s = 0; s < slots; s++) {
        char *mine = work + (size_t)omp_get_thread_num() * per;
        int c1 = (int)((long)(s + 1) * g->n_chunks / slots);
        for (int c = (int)((long)s * g->n_chunks / slots); c < c1; c++)
            conv_backward_chunk(g, nd, mine, part ? part + (size_t)s * stride : NULL, gx, c);
    }
    blas_threads_restore(nt, blas);
    if (part)
        conv_reduce(g, part, stride, slots, gw, gb);
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
    if ((long)(x->shape[2] + 2 * pad) * (x->shape[3] + 2 * pad) * w->shape[1] * w->shape[2] *
            w->shape[3] > 2147483647L / 2)
        return da_set_error(DA_ERANGE, "%s: im2col buffer of one image too large for a GEMM",
                            who);
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
    g->K = g->C * g->kh * g->kw;
    g->P = g->Ho * g->Wo;
    g->nb = g->P >= CONV_MIN_COLS ? 1 : (CONV_MIN_COLS + g->P - 1) / g->P;
    g->nb = g->nb < g->N ? g->nb : g->N;
    g->n_chunks = (g->N + g->nb - 1) / g->nb;
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
    if (!g || da_wino_plan(ctx, g, w, conv_algorithm))
        return NULL;
    int nt = conv_threads(g);
    size_t per;
    int shape[4] = {g->N, g->O, g->pool ? g->pd.Ho : g->Ho, g->pool ? g->pd.Wo : g->Wo};
    da_tensor *y = da_ctx_tensor_uninit(ctx, g->dt, 4, shape); /* y and idx: overwritten */
    char *work = conv_work(ctx, g, nt, &per);
    if (g->pool)
        g->idx = da_ctx_alloc_uninit(ctx, (size_t)(y ? y->size : 1) * sizeof(int));
    if (!y || !work || (g->pool && !g->idx))
        return NULL;
    const void *bias = b ? b->data : NULL;
    int blas = blas_threads_off(nt);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int c = 0; c < g->n_chunks; c++)
        conv_forward_chunk(g, x, w, bias, y->data, work + (size_t)omp_get_thread_num() * per,
                           c);
    blas_threads_restore(nt, blas);
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
