/* neuralsort.h - NeuralSort (Grover, Wang, Zweig, Ermon, ICLR 2019), deterministic.
 *
 * Relaxed permutation matrix, in diffalg's orientation (DESIGN.md §4):
 *   P[b][i][j] = weight of input i at ascending sorted position j (j = 0 the smallest),
 *   each COLUMN sums to 1, soft-sorted = x P;
 *   P[b][:, j] = softmax_i( ((2j + 1 - n) x_i - sum_k |x_i - x_k|) / tau ).
 * The paper (eq. 5 / Corollary 3) prints the transpose of the descending version: its row
 * r (1-based, descending) is softmax(((n + 1 - 2r) s - A_s 1) / tau). Applying it to -x
 * and transposing gives the line above, which is also difftopk's NeuralSort and the
 * `neuralsort` refs (orientation col_is_position_ascending). To convert to/from the
 * paper's row-per-descending-position layout use da_perm_desc_rows_to_diffalg /
 * da_perm_diffalg_to_desc_rows (softsort.h).
 *
 * Ranking loss (choice and reduction): the cross-entropy between each sorted position's
 * distribution over inputs (a column of P) and the true one-hot column,
 *   L = 1/(batch n) sum_b sum_j -log P[b][t_j][j],
 * t_j = the input with ascending rank j in targets[b] (stable argsort of the target
 * values). This is the loss of the NeuralSort paper's sorting experiments (their code:
 * softmax cross-entropy of the rows of P_hat against the true permutation, mean over the
 * rows, then over the batch). log P is taken as a log-softmax of the logits, so it is
 * exact where upstream's log(P + 1e-20) saturates. Reduction: mean over the batch (and
 * over the n positions). diffsort's mean-BCE over all n^2 entries is the loss of the
 * sorting networks (sortnet.h); the column CE is NeuralSort's own and has a simple
 * exact Hessian.
 *
 * Gradients are exact reverse passes (no tape). The logits are piecewise linear in x (the
 * |x_i - x_k| kinks at ties, where the derivative of |0| is taken as 0 as in torch), so
 * the Hessian is exactly J^T K J (K = per-column softmax Jacobian / n) away from ties:
 * da_neuralsort_hessian gives it in O(n^3) per sample, and the tensor face carries an
 * exact O(n^2) hvp (da_hessian reports DA_HESSIAN_EXACT; no finite differences). The
 * Hessian does not depend on the targets.
 *
 * Cost O(n^2) per sample, OpenMP over the batch: the operator takes n^2 exponentials;
 * the loss and its gradient O(n) memory and n^2 products with about 3n exponentials
 * (along the sorted order, each column of P follows from the previous one by one factor
 * per row; neuralsort.c), never forming P.
 * Errors: NULL pointers DA_EINVAL; batch < 1, n outside [2, DA_NEURALSORT_MAX_N],
 * tau <= 0 or Inf, or max|x| / tau so large that the logits overflow DA_ERANGE; NaN tau or
 * NaN/Inf in x, targets or cot DA_ENAN; wrong tensor shape DA_ESHAPE.
 * Ownership: all arrays belong to the caller; tensor outputs live in ctx. */
#ifndef DA_NEURALSORT_H
#define DA_NEURALSORT_H

#include "tensor.h"

#define DA_NEURALSORT_MAX_N 4096

typedef struct {
    int n;      /* elements per sample, [2, DA_NEURALSORT_MAX_N] */
    double tau; /* temperature > 0 */
} da_neuralsort_cfg;

/* Operator and VJP. x [batch][n]; P [batch][n][n] or NULL; when cot [batch][n][n] is
 * given, grad_x [batch][n] = sum_ij cot[b][i][j] dP[b][i][j]/dx (overwritten). At least
 * one of P and grad_x must be given, cot and grad_x together. */
int da_neuralsort_apply(const da_neuralsort_cfg *cfg, int batch, const double *x, double *P,
                        const double *cot, double *grad_x);

/* Ranking loss (above) of scores [batch][n] against target values [batch][n]; grad
 * [batch][n] = dL/dscores, or NULL. */
int da_neuralsort_loss(const da_neuralsort_cfg *cfg, int batch, const double *scores,
                       const double *targets, double *loss, double *grad);

/* H [batch][n][n]: H[b] = d^2 L / dscores[b]^2 of the batch-mean loss L (so (1/batch) x
 * the Hessian of sample b's own loss; cross-sample blocks are zero). This is the block
 * da_hessian returns for the tensor face on the flattened batch, and the convention of
 * the sortnet refs. Symmetric, positive semi-definite. */
int da_neuralsort_hessian(const da_neuralsort_cfg *cfg, int batch, const double *scores,
                          const double *targets, double *H);

/* Tensor face of the loss: scores [batch][n] or 1-D [batch*n] (F32 or F64), targets
 * [batch][n] copied into ctx; a scalar with an exact hvp. NULL on error. */
da_tensor *da_neuralsort(da_ctx *ctx, da_tensor *scores, const double *targets,
                         const da_neuralsort_cfg *cfg);

/* Tensor face of the operator: P [batch][n][n] from scores [batch][n] or [batch*n]. */
da_tensor *da_neuralsort_perm(da_ctx *ctx, da_tensor *scores, const da_neuralsort_cfg *cfg);

#endif
