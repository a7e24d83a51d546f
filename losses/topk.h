/* topk.h - differentiable top-k networks and the top-k cross-entropy loss, difftopk
 * (Petersen, Kuehne, Borgelt, Deussen: "Differentiable Top-k Classification Learning",
 * ICML 2022), on the sorting networks of sortnet.h.
 *
 * Top-k operator: X [batch][n][k] = P[:, :, n-k:], the last k columns of the relaxed
 * permutation matrix of sortnet.h, so X[b][i][j] is the weight of input i at ascending
 * position n-k+j and column k-1 is the soft maximum. Computed with difftopk's backward
 * propagation (paper §3.2): P = A_1 A_2 ... A_L with one mixing matrix per layer, so
 * P E_k = A_1 (A_2 (... (A_L E_k))) propagates only the k needed columns from the
 * output side, O(n k) per layer instead of O(n^2). Its vector-Jacobian product runs
 * the layers the other way and then the values pass in reverse (O(n k layers)).
 *
 * Top-k cross-entropy (difftopk losses.py TopKCrossEntropyLoss, paper eq. 8), with
 * p_k = (p_1 .. p_K), the weight of "the label is among the top k'":
 *     dist_i = sum_{k'} p_k' * sum_{j >= n-k'} P[i][j]             (top1_mode SORT)
 *     SM:   the k' = 1 term is p_1 softmax(logits)_i instead
 *     loss_b = -log(dist_label * (1 - 2e-7) + 1e-7)
 *     SMCE: loss_b = p_1 CE(logits, label)
 *                    + (p_2 + .. + p_K) * -log(dist'_label * (1 - 2e-7) + 1e-7),
 *           dist' = the sum without its k' = 1 term
 * and the loss is the mean over the batch. Only the label's row of P enters, so the
 * loss propagates that single row forward through the layers (O(n) per layer, fewer
 * operations than the k columns; the same numbers up to rounding).
 * With m > 0 (difftopk's `m`), each sample first keeps the label's logit followed by
 * the m-1 largest other logits in descending order (ties: lower class index first);
 * the network then has m wires and the label is wire 0. Gradients flow to the kept
 * logits only.
 *
 * Errors (return code or NULL, message in da_last_error()):
 *   DA_EINVAL  NULL pointers, unknown top1_mode
 *   DA_ERANGE  batch < 1, k < 1 or k > n, bad m (need k < m < n_classes), a
 *              label outside [0, n_classes), p_k negative or not summing to 1 +- 1e-4
 *   DA_ENAN    NaN/Inf in x, logits, cotangents or p_k
 *   DA_ESHAPE  tensor shapes that do not match
 *   DA_ENOMEM  allocation failed
 * Ownership: all arrays are caller-owned; outputs are overwritten. The network and
 * p_k in a cfg are borrowed (they must outlive the tensor op's backward pass).
 * Samples run in parallel (OpenMP over the batch), results independent of the
 * thread count. */
#ifndef DA_TOPK_H
#define DA_TOPK_H

#include "sortnet.h"
#include "tensor.h"

/* Top-k operator of net over x [batch][n]: X [batch][n][k] (or NULL) and, with cot
 * [batch][n][k], grad_x = J^T cot [batch][n] (both NULL or both set). */
int da_topk(const da_sortnet *net, int k, int batch, const double *x, double *X,
            const double *cot, double *grad_x);

/* Tensor face: x [n] or [batch][n] -> X [n][k] or [batch][n][k]. */
da_tensor *da_topk_op(da_ctx *ctx, const da_sortnet *net, int k, da_tensor *x);

typedef enum { DA_TOP1_SM = 0, DA_TOP1_SMCE = 1, DA_TOP1_SORT = 2 } da_top1_mode;

typedef struct {
    const da_sortnet *net; /* over n_classes wires (m = 0) or over m wires; its
                              steepness is difftopk's inverse_temperature */
    int n_classes;
    int m;                 /* 0 = all classes (upstream m = None) */
    int k;                 /* number of p_k entries (K) */
    const double *p_k;     /* [k]: p_k[j] weighs top-(j+1) */
    da_top1_mode top1_mode;
} da_topk_ce_cfg;

/* Mean top-k cross-entropy over the batch of logits [batch][n_classes] with labels
 * [batch], and its gradient d loss / d logits (or NULL). */
int da_topk_ce_loss(const da_topk_ce_cfg *cfg, int batch, const double *logits,
                    const int *labels, double *loss, double *grad /*or NULL*/);

/* Tensor face: logits [batch][n_classes] -> scalar; labels are copied. */
da_tensor *da_topk_ce(da_ctx *ctx, da_tensor *logits, const int *labels,
                      const da_topk_ce_cfg *cfg);

#endif
