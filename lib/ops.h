/* ops.h - the core's differentiable ops on da_tensor (DESIGN.md §3).
 *
 * Every op allocates its output (and any saved data) in ctx, records a graph node when
 * an input requires a gradient, and returns NULL on error (NULL inputs, dtype mismatch,
 * shape mismatch, out-of-range sizes) with da_last_error() set. Inputs of one op share
 * a dtype (F32 or F64; use da_cast to convert). Axes may be negative (-1 = last).
 *
 * An elementwise op or reduction whose result would contain NaN (a NaN input, log or sqrt
 * of a negative, 0/0, softmax of an all -inf row) fails with DA_ENAN; infinities pass
 * (log(0) = -inf). Shape ops only move data and do not check.
 *
 * Broadcasting (elementwise binary ops and da_where) follows NumPy: shapes are aligned
 * at the trailing dimension and a dimension of 1 stretches. The backward of a broadcast
 * input sums the gradient over the stretched dimensions. */
#ifndef DA_OPS_H
#define DA_OPS_H

#include "tensor.h"

/* reduce over every element (scalar result) */
#define DA_ALL_AXES (-100)

/* ---- elementwise, broadcasting (lib/ops_elem.c) ---- */
da_tensor *da_add(da_ctx *ctx, da_tensor *a, da_tensor *b);
da_tensor *da_sub(da_ctx *ctx, da_tensor *a, da_tensor *b);
da_tensor *da_mul(da_ctx *ctx, da_tensor *a, da_tensor *b);
da_tensor *da_div(da_ctx *ctx, da_tensor *a, da_tensor *b);
/* a^b elementwise; d/db = a^b log(a) is used where a > 0 and taken as 0 elsewhere */
da_tensor *da_pow(da_ctx *ctx, da_tensor *a, da_tensor *b);
da_tensor *da_minimum(da_ctx *ctx, da_tensor *a, da_tensor *b); /* ties: grad to a */
da_tensor *da_maximum(da_ctx *ctx, da_tensor *a, da_tensor *b); /* ties: grad to a */
/* cond != 0 ? a : b (cond gets no gradient) */
da_tensor *da_where(da_ctx *ctx, da_tensor *cond, da_tensor *a, da_tensor *b);
/* a + s, a * s, a^p with scalar s, p */
da_tensor *da_add_scalar(da_ctx *ctx, da_tensor *a, double s);
da_tensor *da_mul_scalar(da_ctx *ctx, da_tensor *a, double s);
da_tensor *da_pow_scalar(da_ctx *ctx, da_tensor *a, double p);

/* ---- elementwise, unary (lib/ops_elem.c) ---- */
da_tensor *da_neg(da_ctx *ctx, da_tensor *a);
da_tensor *da_exp(da_ctx *ctx, da_tensor *a);
da_tensor *da_log(da_ctx *ctx, da_tensor *a);
/* the logistic sigmoid 1 / (1 + e^-a) (named da_logistic: `da_sigmoid` is the sorting
 * networks' sigmoid type of DESIGN.md §5) */
da_tensor *da_logistic(da_ctx *ctx, da_tensor *a);
da_tensor *da_tanh(da_ctx *ctx, da_tensor *a);
da_tensor *da_relu(da_ctx *ctx, da_tensor *a);     /* grad 0 at 0 */
da_tensor *da_softplus(da_ctx *ctx, da_tensor *a); /* log(1 + e^a), stable */
da_tensor *da_abs(da_ctx *ctx, da_tensor *a);      /* grad 0 at 0 */
da_tensor *da_sqrt(da_ctx *ctx, da_tensor *a);
/* dtype conversion (differentiable) */
da_tensor *da_cast(da_ctx *ctx, da_tensor *a, da_dtype dtype);

/* ---- reductions (lib/ops_reduce.c): axis in [-ndim, ndim) or DA_ALL_AXES ---- */
da_tensor *da_sum(da_ctx *ctx, da_tensor *a, int axis, int keepdim);
da_tensor *da_mean(da_ctx *ctx, da_tensor *a, int axis, int keepdim);
da_tensor *da_max(da_ctx *ctx, da_tensor *a, int axis, int keepdim); /* grad to first max */
da_tensor *da_logsumexp(da_ctx *ctx, da_tensor *a, int axis, int keepdim);
da_tensor *da_softmax(da_ctx *ctx, da_tensor *a, int axis);
da_tensor *da_log_softmax(da_ctx *ctx, da_tensor *a, int axis);

/* ---- shape (lib/ops_shape.c) ---- */
/* one entry of shape may be -1 (inferred) */
da_tensor *da_reshape(da_ctx *ctx, da_tensor *a, int ndim, const int *shape);
/* out.shape[i] = a.shape[perm[i]] */
da_tensor *da_permute(da_ctx *ctx, da_tensor *a, const int *perm);
da_tensor *da_transpose(da_ctx *ctx, da_tensor *a, int axis0, int axis1);
/* elements start <= i < end along axis */
da_tensor *da_slice(da_ctx *ctx, da_tensor *a, int axis, int start, int end);
/* all inputs equal except along axis */
da_tensor *da_concat(da_ctx *ctx, da_tensor **ts, int n, int axis);
/* out = a with axis restricted to the listed indices (repeats allowed, grads add) */
da_tensor *da_index_select(da_ctx *ctx, da_tensor *a, int axis, const int *index, int n);

/* ---- linear algebra and convolutions (lib/ops_nn.c) ---- */
/* [m][k] x [k][n] -> [m][n] through CBLAS gemm */
da_tensor *da_matmul(da_ctx *ctx, da_tensor *a, da_tensor *b);
/* [B][m][k] x [B][k][n] -> [B][m][n] */
da_tensor *da_bmm(da_ctx *ctx, da_tensor *a, da_tensor *b);
/* y = x W^T + b: x [N][in], W [out][in], b [out] or NULL -> [N][out] (one fused node) */
da_tensor *da_linear(da_ctx *ctx, da_tensor *x, da_tensor *W, da_tensor *b);
/* x [N][C][H][W], w [O][C][kh][kw], b [O] or NULL -> [N][O][Ho][Wo] with
 * Ho = (H + 2 pad - kh) / stride + 1; im2col + GEMM, or Winograd (below) */
da_tensor *da_conv2d(da_ctx *ctx, da_tensor *x, da_tensor *w, da_tensor *b, int stride,
                     int pad);
/* The algorithm of da_conv2d and of the fused conv nodes of lib/layers.h. Process-wide:
 * set it before building graphs, never while ops run on other threads; a node keeps the
 * algorithm of its forward for its backward.
 *  - DA_CONV_AUTO (the default): Winograd for F32 convolutions with a square 3x3 or 5x5
 *    kernel, stride 1 (any pad) and C >= 8 input channels; im2col + GEMM for the rest;
 *  - DA_CONV_IM2COL: im2col + GEMM always;
 *  - DA_CONV_WINOGRAD: Winograd for every F32 stride-1 3x3 / 5x5 convolution (any C);
 *    the others (F64, other kernels or strides) still fall back to im2col.
 * Winograd (Lavin & Gray 2016) is F(4x4, 3x3) or F(2x2, 5x5) on 6x6 tiles: 4x (3x3) or
 * 2.8x (5x5) fewer multiplications in the GEMMs; float rounding error about 1e-6 relative
 * (normwise, against double; im2col: about 3e-7).
 * da_conv_set_algorithm returns DA_OK, or DA_ERANGE for an unknown value. */
typedef enum { DA_CONV_AUTO = 0, DA_CONV_IM2COL = 1, DA_CONV_WINOGRAD = 2 } da_conv_algorithm;
int da_conv_set_algorithm(da_conv_algorithm algo);
da_conv_algorithm da_conv_get_algorithm(void);
/* x [N][C][H][W] -> [N][C][Ho][Wo], window k, stride s, no padding, Ho = (H-k)/s+1 */
da_tensor *da_maxpool2d(da_ctx *ctx, da_tensor *x, int k, int stride);
da_tensor *da_avgpool2d(da_ctx *ctx, da_tensor *x, int k, int stride);

/* ---- losses (lib/ops_loss.c): all return a scalar, mean over the batch ---- */
/* logits [N][C], labels[N] in [0, C): mean of -log_softmax(logits)[label] */
da_tensor *da_cross_entropy(da_ctx *ctx, da_tensor *logits, const int *labels);
/* p in [0,1], target same shape: mean of -(t log p + (1-t) log(1-p)), each log clamped
 * at -100 as torch.nn.BCELoss; a clamped term has zero derivative */
da_tensor *da_bce(da_ctx *ctx, da_tensor *p, da_tensor *target);
/* mean of (a - b)^2 over all elements (both get gradients) */
da_tensor *da_mse(da_ctx *ctx, da_tensor *a, da_tensor *b);

#endif
