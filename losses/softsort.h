/* softsort.h - SoftSort (Prillo & Eisenschlos, ICML 2020) with d = |.| (pow = 1).
 *
 * The paper (eq. 1) and difftopk's SoftSort produce, with s = sort(x) descending,
 *   Q[b][r][c] = softmax_c( -|x_c - s_r| / tau ):
 * row r = descending sorted position r (r = 0 the largest), column c = input, rows sum
 * to 1, soft-sorted = Q x. This is the layout of the `softsort` refs
 * (orientation row_is_position_descending). The gradient also flows through s (s_r is
 * the input x_{sigma(r)}, so d s_r / d x = e_{sigma(r)}), as in torch.
 *
 * diffalg's orientation (DESIGN.md §4), used by every function below:
 *   P[b][i][j] = Q[b][n-1-j][i]   (input i, ascending position j, columns sum to 1),
 *   i.e. P[b][:, j] = softmax_i( -|x_i - a_j| / tau ) with a = sort(x) ascending.
 * Convert at the boundary with da_perm_desc_rows_to_diffalg (Q -> P) and
 * da_perm_diffalg_to_desc_rows (P -> Q). A cotangent converts like its matrix, since
 * sum(Q * W) = sum(P * W') when W' is W converted the same way. (NeuralSort's paper
 * layout is the same descending-row layout.) With tied inputs, which of the equal
 * elements receives the gradient of a sorted value is decided by the stable ascending
 * argsort here and by torch.sort there: both are valid choices of the subgradient.
 *
 * Ranking loss: the same column cross-entropy as NeuralSort (see neuralsort.h), with
 * the same reduction (mean over the batch and the n positions),
 *   L = 1/(batch n) sum_b sum_j -log P[b][t_j][j].
 * Exact reverse passes; the logits are piecewise linear in x (kinks where x_i = a_j),
 * so the Hessian is exactly J^T K J away from ties: da_softsort_hessian (O(n^3) per
 * sample, batch-mean convention below) and an exact O(n^2) hvp on the tensor face
 * (da_hessian reports DA_HESSIAN_EXACT). The Hessian does not depend on the targets.
 *
 * Cost per sample: the operator O(n^2); the loss and its gradient O(n log n) time and O(n)
 * memory (the column normalisers and the gradient's row and column sums are one-sided
 * kernel sums along the sorted values, n - 1 exponentials), never forming P. OpenMP over
 * the batch. Errors and ownership as in
 * neuralsort.h (DA_SOFTSORT_MAX_N). */
#ifndef DA_SOFTSORT_H
#define DA_SOFTSORT_H

#include "tensor.h"

#define DA_SOFTSORT_MAX_N 4096

typedef struct {
    int n;      /* elements per sample, [2, DA_SOFTSORT_MAX_N] */
    double tau; /* temperature > 0 */
} da_softsort_cfg;

/* Operator and VJP in diffalg's orientation: P [batch][n][n] or NULL; when cot
 * [batch][n][n] is given, grad_x [batch][n] = sum_ij cot[b][i][j] dP[b][i][j]/dx. */
int da_softsort_apply(const da_softsort_cfg *cfg, int batch, const double *x, double *P,
                      const double *cot, double *grad_x);

/* Ranking loss of scores [batch][n] against target values [batch][n]; grad or NULL. */
int da_softsort_loss(const da_softsort_cfg *cfg, int batch, const double *scores,
                     const double *targets, double *loss, double *grad);

/* H [batch][n][n]: H[b] = d^2 L / dscores[b]^2 of the batch-mean loss L ((1/batch) x the
 * Hessian of sample b's own loss; cross-sample blocks are zero). */
int da_softsort_hessian(const da_softsort_cfg *cfg, int batch, const double *scores,
                        const double *targets, double *H);

/* Tensor faces: scores [batch][n] or 1-D [batch*n]; see neuralsort.h. */
da_tensor *da_softsort(da_ctx *ctx, da_tensor *scores, const double *targets,
                       const da_softsort_cfg *cfg);
da_tensor *da_softsort_perm(da_ctx *ctx, da_tensor *scores, const da_softsort_cfg *cfg);

/* Orientation conversion of [batch][n][n] matrices (in and out must not overlap):
 *   desc_rows_to_diffalg: out[b][i][j] = in[b][n-1-j][i]
 *   diffalg_to_desc_rows: out[b][r][c] = in[b][c][n-1-r]   (the inverse)
 * DA_EINVAL on NULL or in == out, DA_ERANGE on batch < 1 or n < 1. */
int da_perm_desc_rows_to_diffalg(int batch, int n, const double *in, double *out);
int da_perm_diffalg_to_desc_rows(int batch, int n, const double *in, double *out);

#endif
