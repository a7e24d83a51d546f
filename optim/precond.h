/* precond.h - TrAct and ISAAC: input-covariance preconditioning of the weight gradient
 * of a linear or conv2d layer.
 *
 *  TrAct (Petersen et al., NeurIPS 2024, arXiv 2410.23970, Sec. 3, the closed form of
 *  the activation-proposal least-squares step):
 *      grad_W = G^T X (X^T X / N + lambda I)^{-1}
 *  ISAAC ("ISAAC Newton", Petersen et al., ICLR 2023, the input-based curvature
 *  approximation of a layer):
 *      grad_W = lambda_a G^T X (X^T X / N + lambda_a I)^{-1}
 *  with X [N][in] the layer input, G = dL/dy [N][out] for y = x W^T + b. Only the weight
 *  gradient changes; dL/dx and dL/db stay the ordinary ones.
 *
 * Both are computed by one kernel that right-multiplies the ordinary gradient
 * B = G^T X [out][in] by (X^T X / N + lambda I)^{-1}, in one of two regimes:
 *  - DA_PRECOND_DXD: Cholesky of the in x in matrix X^T X / N + lambda I;
 *  - DA_PRECOND_NXN: Woodbury, B (X^T X/N + lambda I)^{-1}
 *        = (B - (B X^T)(X X^T + N lambda I)^{-1} X) / lambda,
 *    a Cholesky of an N x N matrix (the upstream code's branch for N < in).
 * DA_PRECOND_AUTO picks the regime with the lower flop count (which is N x N exactly
 * when N is clearly below in). Products go through CBLAS, solves through LAPACKE
 * (dpotrf/dpotrs); all arithmetic is double.
 *
 * Conv2d: X is the im2col matrix of the input, one row per output position
 * (n, oh, ow) in that order, columns (c, i, j) over C x kh x kw, so in = C kh kw and
 * the "N" of the formula is the number of rows N Ho Wo; G is read as [N Ho Wo][out].
 *
 * Plain-array functions write grad_W (no accumulation) and return DA_OK or an error code
 * with da_last_error() set: DA_EINVAL (NULL, bad kind/regime), DA_ERANGE (sizes < 1 or
 * too large, lambda <= 0), DA_ENAN (NaN/Inf in X, G or lambda), DA_ENOMEM,
 * DA_ENUMERIC (the Cholesky factorisation failed, e.g. after overflow). They allocate
 * their workspace with malloc and free it before returning. */
#ifndef DA_PRECOND_H
#define DA_PRECOND_H

#include "layers.h"
#include "tensor.h"

typedef enum { DA_PRECOND_TRACT = 1, DA_PRECOND_ISAAC = 2 } da_precond_kind;

typedef enum {
    DA_PRECOND_AUTO = 0, /* the cheaper of the two */
    DA_PRECOND_DXD = 1,  /* in x in Cholesky */
    DA_PRECOND_NXN = 2   /* N x N Cholesky (Woodbury) */
} da_precond_regime;

/* DESIGN.md §5b: linear layer y = x W^T + b, X [N][in], G = dL/dy [N][out];
 * writes the preconditioned dL/dW [out][in] (TrAct: lambda; ISAAC: lambda_a). */
int da_tract_linear_grad(int N, int in, int out, const double *X, const double *G,
                         double lambda, double *grad_W);
int da_isaac_linear_grad(int N, int in, int out, const double *X, const double *G,
                         double lambda_a, double *grad_W);

/* The same with an explicit kind and regime. */
int da_precond_linear_grad(da_precond_kind kind, da_precond_regime regime, int N, int in,
                           int out, const double *X, const double *G, double lambda,
                           double *grad_W);

/* Conv2d layer with weight [out][C][k][k], stride >= 1, pad >= 0:
 * x [N][C][H][W], G = dL/dy [N][out][Ho][Wo] with Ho = (H + 2 pad - k) / stride + 1
 * (likewise Wo); writes grad_W [out][C][k][k]. */
int da_precond_conv2d_grad(da_precond_kind kind, da_precond_regime regime, int N, int C,
                           int H, int W, int out, int k, int stride, int pad,
                           const double *x, const double *G, double lambda,
                           double *grad_W);

/* The shared kernel on an ordinary weight gradient: grad_W [out][in] holds G^T X on
 * entry and the preconditioned gradient on return. X [N][in]. */
int da_precond_apply(da_precond_kind kind, da_precond_regime regime, int N, int in, int out,
                     const double *X, double lambda, double *grad_W);

/* The regime DA_PRECOND_AUTO takes for these sizes (DA_PRECOND_DXD or _NXN). */
da_precond_regime da_precond_choose(int N, int in, int out);

/* ---- tensor face ---- */
typedef struct {
    da_precond_kind kind;
    double lambda;            /* TrAct lambda or ISAAC lambda_a, > 0 */
    da_precond_regime regime; /* usually DA_PRECOND_AUTO */
    int stride, pad;          /* conv2d weights only */
} da_precond_cfg;

/* W' = W in value (a ctx copy), one graph node whose backward turns the gradient
 * arriving at W' (the ordinary G^T X of the layer that uses W') into the preconditioned
 * one and accumulates it into W->grad. x is the layer input: x [N][in] for W [out][in]
 * (linear), x [N][C][H][W] for W [out][C][kh][kw] (conv2d with cfg->stride, cfg->pad).
 * x receives no gradient through this node. F32 or F64 (W and x of one dtype); the
 * kernel runs in double. cfg is copied. Use W' in place of W:
 *     y = da_linear(ctx, x, da_precond_weight(ctx, W, x, &cfg), b);
 * NULL on error (da_last_error() set). */
da_tensor *da_precond_weight(da_ctx *ctx, da_tensor *W, da_tensor *x,
                             const da_precond_cfg *cfg);

/* One-call use on a linear or conv2d layer of a da_model (layers.h): the layer's forward
 * (da_linear / da_conv2d with layer->stride, layer->pad) with its weight gradient
 * preconditioned. cfg->stride and cfg->pad are ignored (taken from the layer). */
da_tensor *da_precond_layer_forward(da_ctx *ctx, const da_layer *layer, da_tensor *x,
                                    da_precond_kind kind, double lambda);

/* Wrap a linear or conv2d layer of a model (da_model_layer) once: from then on
 * da_model_forward preconditions its weight gradient (TrAct: kind DA_PRECOND_TRACT,
 * lambda e.g. 0.1; ISAAC: DA_PRECOND_ISAAC, lambda_a). kind 0 unwraps. DA_EINVAL for
 * another layer kind, DA_ERANGE / DA_ENAN for lambda <= 0 / NaN. */
int da_precond_wrap(da_layer *layer, int kind, double lambda);

#endif
