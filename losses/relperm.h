/* relperm.h - internal (not installed): the engine shared by NeuralSort and SoftSort.
 *
 * Both relax a permutation matrix as a column-wise softmax of piecewise-linear logits:
 *   P[i][j] = exp(Z[i][j]) / sum_k exp(Z[k][j])      (x [n] -> Z, P [n][n])
 * in diffalg's orientation (row i = input i, column j = ascending position j, columns sum
 * to 1). A kind supplies Z(x) and its Jacobian J = dZ/dx as a forward product (jvp) and a
 * reverse product (vjp); Z is piecewise linear in x, so d^2 Z / dx^2 = 0 almost
 * everywhere, and the engine derives everything else from those three functions:
 *  - the operator and its VJP: grad_x = J^T softmax_vjp(P, cot);
 *  - the ranking loss (cross-entropy of each column against the true permutation):
 *      l_b = (1/n) sum_j ( logsumexp_i Z[i][j] - Z[t_j][j] ),  L = (1/batch) sum_b l_b,
 *    t_j = index of the element with ascending rank j in targets[b] (stable argsort);
 *      dl_b/dZ = (P - Q)/n with Q the true permutation matrix; the kind computes l_b
 *    and J^T (P - Q)/n fused (its `loss`), in O(n^2) time or less and O(n) memory;
 *  - the Hessian: d^2 l_b / dx^2 = J^T K J with K the block-diagonal (one block per
 *    column) softmax Jacobian (diag(p_j) - p_j p_j^T)/n, exact wherever x has no ties
 *    (the |.| kinks of Z); Hv = J^T K (J v) costs O(n^2), the full Hessian O(n^3).
 * Batches run in parallel (OpenMP over samples, one workspace per thread); results do
 * not depend on the thread count (per-sample results are summed in a fixed order).
 *
 * Validation (every entry point): NULL arrays -> DA_EINVAL; batch < 1, n outside
 * [2, DA_RELPERM_MAX_N] -> DA_ERANGE; tau NaN -> DA_ENAN; tau <= 0 or Inf -> DA_ERANGE;
 * NaN/Inf in x, targets, cot or v -> DA_ENAN; 3 n max|x| / tau > 1e300 (logits would
 * overflow) -> DA_ERANGE. Messages are prefixed with the kind's public name. */
#ifndef DA_RELPERM_H
#define DA_RELPERM_H

#include "tensor.h"

#define DA_RELPERM_MAX_N 4096

/* scratch doubles (and ints) per element that the engine hands to a kind's callbacks */
#define DA_RELPERM_KIND_TMP 12
#define DA_RELPERM_KIND_ITMP 2

typedef struct {
    const char *name; /* public prefix for messages, e.g. "da_neuralsort" */
    /* Z [n][n] of one sample; order = stable ascending argsort of x; tmp: scratch of
     * DA_RELPERM_KIND_TMP * n doubles (all three callbacks) */
    void (*logits)(int n, double tau, const double *x, const int *order, double *Z,
                   double *tmp);
    /* dZ [n][n] = J v */
    void (*jvp)(int n, double tau, const double *x, const int *order, const double *v,
                double *dZ, double *tmp);
    /* gx [n] = J^T G (overwritten) */
    void (*vjp)(int n, double tau, const double *x, const int *order, const double *G,
                double *gx, double *tmp);
    /* the ranking loss of one sample, fused, without the [n][n] matrices: returns l_b
     * and, when gx != NULL, writes gx [n] = d l_b / dx = J^T (P - Q)/n (overwritten);
     * target = ascending argsort of the sample's targets; itmp: DA_RELPERM_KIND_ITMP n
     * ints. The tests check it against the operator (P and its VJP). */
    double (*loss)(int n, double tau, const double *x, const int *order, const int *target,
                   double *gx, double *tmp, int *itmp);
} da_relperm_kind;

/* sign with sign(0) = 0: the derivative of |d| that torch uses */
static inline double da_relperm_sign(double d)
{
    return (double)((d > 0) - (d < 0));
}

/* sum_j log s[j] for s [n] with every s[j] in [1, 4096] (column normalisers): one log
 * per 64 terms (products of 64 such values stay below 2^768) */
double da_relperm_sum_log(int n, const double *s);

/* P [batch][n][n] (or NULL) and, when cot [batch][n][n] is given, grad_x [batch][n] =
 * J^T cot (overwritten). At least one of P and grad_x; cot and grad_x together. */
int da_relperm_apply(const da_relperm_kind *k, int n, double tau, int batch, const double *x,
                     double *P, const double *cot, double *grad_x);
/* L (batch mean of l_b) and, when grad != NULL, grad [batch][n] = dL/dx. */
int da_relperm_loss(const da_relperm_kind *k, int n, double tau, int batch, const double *x,
                    const double *targets, double *loss, double *grad);
/* hv [batch][n] = (d^2 L / dx^2) v: block b is (1/batch) H_b v_b. */
int da_relperm_hvp(const da_relperm_kind *k, int n, double tau, int batch, const double *x,
                   const double *targets, const double *v, double *hv);
/* H [batch][n][n]: H[b] = d^2 L / dx_b^2 = (1/batch) d^2 l_b / dx_b^2 (batch-mean loss,
 * cross-sample blocks are zero). */
int da_relperm_hessian(const da_relperm_kind *k, int n, double tau, int batch,
                       const double *x, const double *targets, double *H);

/* Tensor faces. scores: [batch][n], or 1-D with batch*n elements (so that da_hessian,
 * which differentiates a 1-D leaf, reaches the exact hvp). targets [batch][n] is copied
 * into ctx. The loss op is a scalar node with an exact hvp; the perm op is a
 * [batch][n][n] node (its backward recomputes P). */
da_tensor *da_relperm_loss_op(da_ctx *ctx, const da_relperm_kind *k, int n, double tau,
                              da_tensor *scores, const double *targets);
da_tensor *da_relperm_perm_op(da_ctx *ctx, const da_relperm_kind *k, int n, double tau,
                              da_tensor *scores);

#endif
