/* pav.h - fast soft sort and soft rank by projection onto the permutahedron
 * (Blondel, Teboul, Berthet, Djolonga, "Fast Differentiable Sorting and Ranking",
 * ICML 2020), solved as an isotonic regression by pool-adjacent-violators (PAV).
 *
 * Per row x [n] of a batch [batch][n] (rows are independent):
 *   soft rank  r(x) = P_Q(x / strength, w), w = (n, n-1, ..., 1)       (paper eq. 6)
 *   soft sort  s(x) = P_Q(w / strength, x)  (sorted values)            (paper eq. 5)
 * where P_Q is the regularised projection onto the permutahedron of its second
 * argument: Q = L2 (Euclidean projection) or KL (log-KL projection, eq. 7, which keeps
 * ranks positive). Both reduce to isotonic regression of the sorted input (Prop. 3),
 * O(n log n) for the sort plus O(n) for PAV. The vector-Jacobian product is exact
 * and uses the block structure of the isotonic solution (Lemma 1, Prop. 4):
 *   L2: each block averages,  KL: each block weights its members by a softmax of the
 *   sorted inputs inside the block.
 * Conventions follow fast-soft-sort's numpy_ops:
 *   - ranks are 1-based: with strength -> 0, ASCENDING gives rank 1 to the smallest
 *     element, DESCENDING rank 1 to the largest;
 *   - soft sort returns the values in ascending (or descending) order;
 *   - for soft sort with KL the VJP weights each block with the softmax of the sorted
 *     values (the exact derivative; upstream numpy_ops uses the wrong vector there,
 *     see refs/FORMAT.md `vjp_true`).
 * At exact ties of PAV block values (measure-zero kinks) the VJP is that of the
 * merged block. Inputs that are exactly equal get equal soft ranks.
 *
 * Errors (return code, message in da_last_error()):
 *   DA_EINVAL  x NULL; both out and grad_x NULL; only one of cot / grad_x NULL;
 *              bad direction or regularization
 *   DA_ERANGE  batch < 1, n < 2, n > DA_PAV_MAX_N, strength <= 0 or infinite,
 *              x / strength overflowing to infinity
 *   DA_ENAN    NaN strength, NaN/Inf in x or cot
 *   DA_ENOMEM  scratch allocation failed
 * Memory: scratch of O(n) per OpenMP thread per call, nothing per element. Rows run
 * in parallel (OpenMP); each row's result does not depend on the thread count. */
#ifndef DA_PAV_H
#define DA_PAV_H

#include "tensor.h"

/* largest row length accepted by every function of this module */
#define DA_PAV_MAX_N (1 << 24)

typedef enum { DA_ASCENDING, DA_DESCENDING } da_direction;
typedef enum { DA_REG_L2, DA_REG_KL } da_regularization;

/* Plain-array faces. x, out, cot, grad_x are [batch][n].
 * out: the soft ranks / soft-sorted rows, or NULL when only the VJP is wanted.
 * cot, grad_x: both NULL (forward only) or both set: grad_x = J^T cot (overwritten).
 * At least one of out and grad_x must be non-NULL. */
int da_soft_rank(int batch, int n, const double *x, da_direction dir,
                 da_regularization reg, double strength, double *out,
                 const double *cot, double *grad_x);
int da_soft_sort(int batch, int n, const double *x, da_direction dir,
                 da_regularization reg, double strength, double *out,
                 const double *cot, double *grad_x);

/* Tensor faces: x is [n] or [batch][n] (F32 or F64); the result has x's shape and
 * dtype and lives in ctx. One fused graph node; its backward is the exact VJP above.
 * NULL on error (same codes as above; DA_ESHAPE for another ndim). */
da_tensor *da_soft_rank_op(da_ctx *ctx, da_tensor *x, da_direction dir,
                           da_regularization reg, double strength);
da_tensor *da_soft_sort_op(da_ctx *ctx, da_tensor *x, da_direction dir,
                           da_regularization reg, double strength);

/* "fast_soft_rank" ranking loss (ranking benchmark): the MSE between the ascending
 * soft ranks of the scores and the true 1-based ascending ranks of the targets (the
 * ground-truth order is the ascending order of targets[b], ties broken by index):
 *   loss = 1/(batch n) sum_b sum_i (r(scores[b])_i - rank(targets[b])_i)^2,
 * i.e. the mean over the batch of each sample's mean squared error over its n
 * entries. scores, targets, grad are [batch][n]; grad (or NULL) is d loss / d scores.
 * cfg->n in [2, DA_PAV_MAX_N]; errors as above (NaN/Inf targets: DA_ENAN). */
typedef struct {
    int n;                   /* items per sample */
    da_regularization reg;   /* DA_REG_L2 or DA_REG_KL */
    double strength;         /* regularization strength, > 0 */
} da_fast_soft_rank_cfg;

int da_fast_soft_rank_loss(const da_fast_soft_rank_cfg *cfg, int batch,
                           const double *scores, const double *targets, double *loss,
                           double *grad);
/* Tensor face: scores [batch][n] -> scalar loss (same reduction). targets [batch][n]
 * (batch = scores->shape[0]) is copied into ctx; cfg is read at the call. */
da_tensor *da_fast_soft_rank(da_ctx *ctx, da_tensor *scores, const double *targets,
                             const da_fast_soft_rank_cfg *cfg);

#endif
