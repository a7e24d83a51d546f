/* ops_conv_impl.h - internal to lib/ops_conv.c (convolution drivers, im2col, pooling) and
 * lib/ops_winograd.c (Winograd minimal filtering): the geometry of one conv node and the
 * pieces both algorithms share. Not installed.
 *
 * Both algorithms run per chunk of nb images: the chunk's output Y (its grad G in the
 * backward) is one buffer [O][nb*P], image k of the chunk at column block k*P, so the
 * bias / relu / maxpool epilogue and the grad routing are the same code for both. */
#ifndef DA_OPS_CONV_IMPL_H
#define DA_OPS_CONV_IMPL_H

#include <string.h>

#include "ops_nn_impl.h"
#include "tensor.h"

#define CONV_SLOTS 16 /* the weight gradient is summed in this many partial sums, a fixed
                         number, so that it does not depend on the thread count */

typedef struct {
    int H, W, Ho, Wo, k, s;
} pool_dims;

typedef struct wino_plan wino_plan; /* lib/ops_winograd.c */

typedef struct {
    da_dtype dt;
    int N, C, H, W, O, kh, kw, Ho, Wo, stride, pad;
    int K;          /* C*kh*kw: rows of col */
    int P;          /* Ho*Wo: output pixels of one image */
    int nb;         /* images per chunk: one GEMM over nb*P columns (im2col) */
    int n_chunks;   /* ceil(N / nb) */
    int relu;       /* relu fused in */
    int pool;       /* maxpool fused in (after the relu), with dims pd */
    pool_dims pd;   /* [Ho][Wo] -> [pd.Ho][pd.Wo] */
    int *idx;       /* [N][O][pd.Ho][pd.Wo] argmax offsets in the [Ho][Wo] plane */
    int *ow_lo, *ow_hi; /* [kw] valid output columns [lo, hi) of kernel column j */
    const wino_plan *wino; /* Winograd plan, or NULL: im2col */
} conv_geom;

static inline size_t round64(size_t bytes) { return (bytes + 63) / 64 * 64; }

/* the images [n0, n0 + count) of chunk c */
static inline int conv_chunk(const conv_geom *g, int c, int *count)
{
    int n0 = c * g->nb;
    *count = g->N - n0 < g->nb ? g->N - n0 : g->nb;
    return n0;
}

/* C [M][N] (rows ldc apart) = op(A) op(B): zeroed with memset, then accumulated with
 * beta = 1, which skips OpenBLAS's beta = 0 pass (a slower scalar loop over C) */
static inline void gemm_into(da_dtype dt, int ta, int tb, int M, int N, int K, const void *A,
                             int lda, const void *B, int ldb, void *C, int ldc)
{
    size_t es = da_dtype_size(dt);
    if (N == ldc)
        memset(C, 0, (size_t)M * N * es);
    else
        for (int r = 0; r < M; r++)
            memset((char *)C + (size_t)r * ldc * es, 0, (size_t)N * es);
    gemm(dt, ta, tb, M, N, K, 1, A, lda, B, ldb, 1, C, ldc);
}

/* ---- Winograd F(m x m, r x r) for F32 stride-1 square convolutions (ops_winograd.c) ---- */

#define WINO_MAX_T 8 /* largest input tile t = m + r - 1 the transforms are built for */

/* The Toom-Cook matrices of the 1-D F(m, r), t = m + r - 1 <= WINO_MAX_T, from the points
 * 0, 1, -1, 2, -2, ... (t - 1 of them) and infinity: AT [m][t], G [t][r], BT [t][t] with
 * A^T [(G g) .* (B^T d)] = the correlation y[i] = sum_k g[k] d[i + k], i < m. DA_OK, or
 * DA_ERANGE for m, r < 1 or t > WINO_MAX_T. */
int da_winograd_matrices(int m, int r, double *AT, double *G, double *BT);

/* g->wino for the conv x (*) w when algo (a da_conv_algorithm) picks Winograd for it, with
 * the transformed weights U = G w G^T (kept for the backward); g->wino stays NULL when it
 * does not. DA_OK or DA_ENOMEM. */
int da_wino_plan(da_ctx *ctx, conv_geom *g, const da_tensor *w, int algo);
/* bytes of per-thread work space of the Winograd chunk functions */
size_t da_wino_work_bytes(const conv_geom *g);
/* Y [O][nb*P] of the images of chunk c (no bias) from x [N][C][H][W] */
void da_wino_forward_chunk(const conv_geom *g, const float *x, float *Y, char *work, int c);
/* the grads from chunk c given its output grad G [O][nb*P]: dU [t*t][O][C] += the
 * transformed-weight grad (when dU != NULL), gx += the input grad (when gx != NULL) */
void da_wino_backward_chunk(const conv_geom *g, const float *x, const float *G, char *work,
                            float *dU, float *gx, int c);
/* number of floats of one transformed-weight partial sum dU [t*t][O][C] */
long da_wino_dU_size(const conv_geom *g);
/* gw [O][C][r][r] += G^T (sum of the slot partials dU, slot s at part + s * stride bytes,
 * summed in slot order in double) G */
void da_wino_weight_grad(const conv_geom *g, const char *part, size_t stride, int slots,
                         float *gw);

#endif
