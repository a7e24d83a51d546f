/* sinkhorn.h - soft sort and soft rank by entropic optimal transport (Cuturi, Teboul,
 * Vert, "Differentiable Ranks and Sorting using Optimal Transport", NeurIPS 2019).
 *
 * Per row x [n] of a batch [batch][n]:
 *  - squashing (as ott-jax's soft_sort): z = (x - mean x) / sqrt(var x + 1e-12)
 *    (population variance; the 1e-12 keeps equal inputs finite and differentiable),
 *    xt = sigmoid(z) in (0, 1);
 *  - n targets y_j = j / (n - 1), j = 0..n-1 (uniform in [0, 1], ascending), uniform
 *    marginals a = b = 1/n, cost C_ij = (xt_i - y_j)^2;
 *  - log-domain Sinkhorn (paper eq. 4 in log form) with potentials u = f/eps, v = g/eps,
 *    u^0 = v^0 = 0 and, for t = 1..iterations,
 *        u^t_i = -log n - LSE_j(v^{t-1}_j - C_ij / eps)   (row update)
 *        v^t_j = -log n - LSE_i(u^t_i    - C_ij / eps)   (column update);
 *  - the relaxed permutation matrix in diffalg's orientation (DESIGN.md §4)
 *        P[b][i][j] = n exp(u^T_i + v^T_j - C_ij / eps),
 *    the weight of input i at ascending position j. The column update comes last, so
 *    every column sums to 1 (to rounding) and 0 < P <= 1; rows sum to 1 up to the
 *    Sinkhorn tolerance reached after the given iterations;
 *  - soft sorted values sorted[b][j] = sum_i P[b][i][j] x[b][i] (ascending, the original
 *    unsquashed x), soft ranks ranks[b][i] = sum_j P[b][i][j] (j + 1) (1-based ascending,
 *    the paper's R = n a^-1 . P b-bar with uniform marginals).
 * As epsilon -> 0 and iterations -> inf, P tends to the sorting permutation of x.
 * The squashing makes P invariant to shifts and (positive) scalings of a row; for
 * n = 2 the standardised row is always (-1, 1) (up to the 1e-12), so P is constant.
 * The VJP is reverse-mode differentiation through the unrolled iterations (exact for
 * the unrolled computation, not the implicit-function gradient at convergence); the
 * potentials of every iteration are stored: 16 (iterations + 1) n bytes per row
 * (per OpenMP thread for the plain-array face, per row in the ctx for the tensor face),
 * plus n^2 doubles per thread (the kernel; and P for the loss).
 * Domains: a row whose costs all satisfy C_ij / epsilon <= 100 (always when epsilon >=
 * 0.01) runs the same iterations on the scalings exp(u), exp(v) with the kernel
 * K = exp(-C / eps) formed once: u = (1/n) / (K v), v = (1/n) / (K^T u), and the reverse
 * pass as products with K and K^T (CBLAS); the results equal the log-domain ones to
 * rounding (tested to 1e-12 relative). Other rows run in the log domain above. Time per
 * row: n^2 exponentials and 4 iterations matrix-vector products (scaling), or
 * 4 iterations n^2 exponentials (log).
 *
 * Errors: DA_EINVAL (NULL cfg/x/loss, nothing requested, a cotangent without grad_x or
 * grad_x without any cotangent), DA_ERANGE (batch < 1, n outside [2, DA_SINKHORN_MAX_N],
 * iterations outside [1, DA_SINKHORN_MAX_ITER], epsilon outside
 * [DA_SINKHORN_MIN_EPS, inf)), DA_ENAN (NaN
 * epsilon, NaN/Inf in x, targets or a cotangent), DA_ENOMEM, DA_ESHAPE (tensor shapes).
 * Rows run in parallel (OpenMP); results do not depend on the thread count. */
#ifndef DA_SINKHORN_H
#define DA_SINKHORN_H

#include "tensor.h"

#define DA_SINKHORN_MAX_N 4096
#define DA_SINKHORN_MAX_ITER 100000
/* smallest epsilon: keeps every potential (about 1/epsilon) and cost term finite */
#define DA_SINKHORN_MIN_EPS 1e-12

typedef struct {
    int n;           /* items per row, in [2, DA_SINKHORN_MAX_N] */
    double epsilon;  /* entropic regularization (cost units: squashed inputs in (0,1)) */
    int iterations;  /* row + column updates, in [1, DA_SINKHORN_MAX_ITER] */
} da_sinkhorn_cfg;

/* Plain-array face: forward and, when grad_x is set, the VJP
 *   grad_x = J_P^T cot_P + J_sorted^T cot_sorted + J_ranks^T cot_ranks
 * (a NULL cotangent counts as zero; at least one must be set with grad_x).
 * x, sorted, ranks, cot_sorted, cot_ranks, grad_x: [batch][n]; P, cot_P: [batch][n][n].
 * Each output may be NULL; at least one of P, sorted, ranks, grad_x must be set. */
int da_sinkhorn_sort(const da_sinkhorn_cfg *cfg, int batch, const double *x, double *P,
                     double *sorted, double *ranks, const double *cot_P,
                     const double *cot_sorted, const double *cot_ranks, double *grad_x);

/* Tensor faces: x [batch][n] (F32 or F64, n = cfg->n) -> P [batch][n][n],
 * soft sorted [batch][n] or soft ranks [batch][n], in ctx; cfg is read at the call. */
da_tensor *da_sinkhorn_P(da_ctx *ctx, da_tensor *x, const da_sinkhorn_cfg *cfg);
da_tensor *da_sinkhorn_soft_sort(da_ctx *ctx, da_tensor *x, const da_sinkhorn_cfg *cfg);
da_tensor *da_sinkhorn_soft_rank(da_ctx *ctx, da_tensor *x, const da_sinkhorn_cfg *cfg);

/* Ranking loss on P, the same definition as the other permutation-matrix losses
 * (diffsort's experiments): the mean binary cross-entropy over all batch * n * n
 * entries between P and the true permutation matrix Q (Q[b][i][j] = 1 iff input i has
 * ascending rank j in targets[b], ties by index), each log clamped below at -100 as in
 * torch's BCELoss; a clamped term (or 1 - P <= 0 by rounding) is constant with zero
 * derivative. scores, targets, grad: [batch][n]; grad (or NULL) = d loss / d scores. */
int da_sinkhorn_loss(const da_sinkhorn_cfg *cfg, int batch, const double *scores,
                     const double *targets, double *loss, double *grad);
/* Tensor face of the loss: scores [batch][n] -> scalar; targets copied into ctx. */
da_tensor *da_sinkhorn(da_ctx *ctx, da_tensor *scores, const double *targets,
                       const da_sinkhorn_cfg *cfg);

#endif
