/* sortnet.h - differentiable sorting networks, diffsort (Petersen, Borgelt, Kuehne,
 * Deussen: "Differentiable Sorting Networks for Scalable Sorting and Ranking
 * Supervision", ICML 2021; "Monotonic Differentiable Sorting Networks", ICLR 2022).
 * DESIGN.md §5 fixes the semantics; they follow diffsort's code number for number.
 *
 * A network is a list of layers of comparators on n wires. A comparator on wires
 * lo < hi with values a = x[lo], b = x[hi] computes alpha = f(s (b - a)) (ICML'21 eq. 4,
 * ICLR'22 §4 for the sigmoids f) and the soft swap
 *     min' = alpha a + (1 - alpha) b,     max' = (1 - alpha) a + alpha b,
 * writing min' to lo and max' to hi (bitonic blocks sorting downwards swap the two
 * destinations). The relaxed permutation matrix starts from the identity and its
 * columns are mixed the same way (ICML'21 eq. 6), so that
 *     P[b][i][j] = weight of input i at ascending sorted position j,
 *     sorted[b]  = x[b] P[b]   (diffsort's code convention; the papers print P^T).
 * Networks: DA_SORTNET_ODD_EVEN (n layers of alternating neighbour comparators) and
 * DA_SORTNET_BITONIC (ceil(log2 n)(ceil(log2 n)+1)/2 layers; for n not a power of two
 * the network is built for 2^ceil(log2 n) wires and the lowest 2^ceil(log2 n) - n
 * wires are dropped, as diffsort does). diffsort pads the layers with "identity"
 * comparators of weight 0.5 (a wire compared with itself, for odd n and for
 * comparators that touch a dropped wire): their output 0.5 (alpha a + (1-alpha) a) +
 * 0.5 ((1-alpha) a + alpha a) equals a for every alpha, so they are exact identities
 * with zero derivatives of every order and are not stored.
 *
 * Sigmoids (v = b - a, s = steepness; diffsort's `distribution`):
 *   DA_SIGMOID_LOGISTIC      1 / (1 + exp(-s v))
 *   DA_SIGMOID_LOGISTIC_PHI  logistic of s v / (|v| + 1e-10)^art_lambda   (ART)
 *   DA_SIGMOID_GAUSSIAN      0.5 + 0.5 erf(s v / sqrt 2)
 *   DA_SIGMOID_RECIPROCAL    0.5 (s v / (2 + |s v|) + 1)
 *   DA_SIGMOID_CAUCHY        atan(s v) / pi + 0.5
 *   DA_SIGMOID_OPTIMAL       diffsort's s_best(s v) (ICLR'22 eq. 13)
 * At v = 0 the derivative of |v| is taken as 0 (as torch does).
 *
 * Ranking loss (diffsort experiments/main.py): with Q[b][i][j] = 1 iff input i has
 * ascending rank j in targets[b] (ties broken by index),
 *     loss = -mean over batch*n*n of [Q log P + (1 - Q) log(1 - P)],
 * each log clamped at -100 as torch's BCELoss does. Gradients and Hessians are the
 * exact derivatives of that clamped loss: a clamped term is a constant (zero
 * derivative). This equals torch's BCE gradient except where P(1-P) < 1e-12.
 *
 * Cost per sample: the values and the alphas O(n * layers); P and the loss gradient
 * O(n^2 * layers) (fused per-layer kernels, no dense n x n products); a Hessian-vector
 * product about three gradients; the full Hessian n of them. The backward pass
 * stores the alphas of every comparator and, for a block of rows of P, the
 * difference of the two mixed entries at every comparator (at most ~4 MB per block);
 * samples run in parallel (OpenMP over the batch), each with its own scratch, so
 * results do not depend on the thread count.
 *
 * Errors (return code or NULL, message in da_last_error()):
 *   DA_EINVAL  NULL net / x / targets / outputs, bad kind or sigmoid, nothing to compute
 *   DA_ERANGE  n < 2 or n > DA_SORTNET_MAX_N, batch < 1, steepness <= 0,
 *              art_lambda outside [0, 1] (logistic_phi)
 *   DA_ENAN    NaN/Inf steepness or art_lambda, NaN/Inf in x, targets or cotangents
 *   DA_ESHAPE  tensor shapes that do not match the network
 *   DA_ENOMEM  allocation failed
 * Ownership: da_sortnet_new allocates, da_sortnet_free frees (NULL is a no-op). A
 * network is immutable after creation and may be shared between threads. Every
 * output array is caller-allocated and overwritten. */
#ifndef DA_SORTNET_H
#define DA_SORTNET_H

#include "tensor.h"

/* largest n accepted (odd-even: ~n^2/2 comparators, stored once per network) */
#define DA_SORTNET_MAX_N 2048

typedef enum { DA_SORTNET_ODD_EVEN = 0, DA_SORTNET_BITONIC = 1 } da_sortnet_kind;

/* the comparator sigmoid (DESIGN.md §5; the logistic op of ops.h is da_logistic) */
typedef enum {
    DA_SIGMOID_LOGISTIC = 0,
    DA_SIGMOID_LOGISTIC_PHI,
    DA_SIGMOID_GAUSSIAN,
    DA_SIGMOID_RECIPROCAL,
    DA_SIGMOID_CAUCHY,
    DA_SIGMOID_OPTIMAL
} da_sigmoid;

typedef struct da_sortnet da_sortnet;

/* A network on n wires. steepness > 0; art_lambda in [0, 1] is used by
 * DA_SIGMOID_LOGISTIC_PHI only (ignored otherwise). NULL on error. */
da_sortnet *da_sortnet_new(da_sortnet_kind kind, int n, da_sigmoid sigmoid,
                           double steepness, double art_lambda);
void da_sortnet_free(da_sortnet *net);
int da_sortnet_size(const da_sortnet *net);   /* n */
int da_sortnet_layers(const da_sortnet *net); /* number of layers */

/* Forward: x [batch][n] -> sorted [batch][n] (ascending) and/or P [batch][n][n]. */
int da_sortnet_apply(const da_sortnet *net, int batch, const double *x,
                     double *sorted /*[batch*n] or NULL*/, double *P /*[batch*n*n] or NULL*/);

/* Vector-Jacobian product of the operator x -> (sorted, P):
 * grad_x = J_sorted^T cot_sorted + J_P^T cot_P (either cotangent may be NULL, not
 * both). grad_x [batch][n] is overwritten. */
int da_sortnet_vjp(const da_sortnet *net, int batch, const double *x,
                   const double *cot_sorted /*[batch*n] or NULL*/,
                   const double *cot_P /*[batch*n*n] or NULL*/, double *grad_x);

/* Ranking loss (mean BCE over all batch*n*n entries, see above) and its gradient
 * d loss / d x [batch][n] (or NULL). targets [batch][n] are values whose ascending
 * order is the true ranking. */
int da_sortnet_loss(const da_sortnet *net, int batch, const double *x,
                    const double *targets, double *loss, double *grad_x /*or NULL*/);

/* Per-sample Hessians of the batch-mean ranking loss: H[b] = d^2 loss / d x[b]^2
 * [batch][n][n], where loss is the mean over all batch*n*n entries (the convention
 * of the refs' `hessian_exact`); cross-sample blocks are zero. Multiply by batch for
 * the Hessian of sample b's own mean loss. Cost: n Hessian-vector products per
 * sample. */
int da_sortnet_loss_hessian(const da_sortnet *net, int batch, const double *x,
                            const double *targets, double *H);

/* Hessian-vector products of the batch-mean ranking loss: hv[b] = H[b] v[b]. */
int da_sortnet_loss_hvp(const da_sortnet *net, int batch, const double *x,
                        const double *targets, const double *v /*[batch*n]*/,
                        double *hv /*[batch*n]*/);

/* ---- tensor faces (one da_op_custom node each; F32 or F64) ----
 * x / scores: [n] (one sample) or [batch][n]. The network is borrowed and must
 * outlive the backward pass. */
typedef enum { DA_SORTNET_OUT_SORTED = 0, DA_SORTNET_OUT_P = 1 } da_sortnet_output;

/* sorted (shape of x) or P ([n][n] or [batch][n][n]); backward by da_sortnet_vjp. */
da_tensor *da_sortnet_op(da_ctx *ctx, const da_sortnet *net, da_tensor *x,
                         da_sortnet_output what);
/* Scalar ranking loss of scores against targets (same shape, a constant: its gradient
 * is zero almost everywhere and is not propagated). The node has an exact
 * Hessian-vector product, so da_hessian takes its exact path. */
da_tensor *da_sortnet_ranking_loss(da_ctx *ctx, const da_sortnet *net, da_tensor *scores,
                                   da_tensor *targets);

#endif
