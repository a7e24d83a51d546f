/* newton.h - Newton Losses (Petersen et al., "Newton Losses: Using Curvature Information
 * for Learning with Differentiable Algorithms", NeurIPS 2024, arXiv 2410.19055).
 *
 * A network output z_i (sample i of a batch of B, dimension m) feeds a hard-to-optimise
 * loss l(z_i). Instead of back-propagating grad l, take one regularised Newton step in
 * output space (Eqs. 6 and 9 of the paper)
 *     z*_i = z_i - (C_i + lambda I)^-1 g_i,     g_i = d l(z_i) / d z_i (per sample)
 * and train on the Newton loss  l*(z) = (1/B) sum_i 1/2 ||z_i - z*_i||^2  with z* held
 * constant, whose gradient is  d l* / d z_i = (C_i + lambda I)^-1 g_i / B.
 *   Hessian variant: C_i = H_i, the per-sample Hessian of l at z_i.
 *   Fisher variant:  C_i = F = (1/B) sum_j g_j g_j^T, the empirical Fisher of the batch.
 * Conventions (they fix what lambda means): g_i and H_i are derivatives of the
 * PER-SAMPLE loss l(z_i), not of the batch mean; F is a MEAN over the batch; the Newton
 * loss is a MEAN over the batch. So as lambda -> infinity, the Newton-loss gradient tends
 * to g_i / (lambda B) = (gradient of the batch-mean loss) / lambda.
 *
 * Solves use LAPACKE: Cholesky (dpotrf/dpotrs) of C + lambda I; if that matrix is not
 * positive definite, an eigen-decomposition (dsyevd) with eigenvalues clipped below at
 * max(lambda, 1e-12) ("fallbacks" counts these). For the Fisher variant with m > B the
 * Woodbury identity solves a B x B system instead:
 *     (lambda I + G^T G / B)^-1 g = (g - G^T (lambda B I + G G^T)^-1 G g) / lambda.
 * Memory: O(m^2) scratch (O(B^2 + B m) for Woodbury), malloc'd once per call.
 * Errors: DA_EINVAL (NULL), DA_ERANGE (sizes, lambda < 0 or Inf), DA_ENAN (NaN lambda,
 * NaN/Inf in z, g or H), DA_ENUMERIC (the step overflowed: lambda too small for the
 * scale of g; the outputs are then left unwritten), DA_ENOMEM. */
#ifndef DA_NEWTON_H
#define DA_NEWTON_H

#include "tensor.h"

/* Hessian variant. z, g [B][m], H [B][m][m] (symmetric); outputs (NULL to skip):
 * zstar [B][m] and grad [B][m] (gradient of l* w.r.t. z). lambda >= 0 (0 only if every H_i is PD).
 * *fallbacks (may be NULL) = number of samples solved by the eigen fallback. */
int da_newton_hessian_step(int B, int m, const double *z, const double *g, const double *H,
                           double lambda, double *zstar, double *grad, int *fallbacks);
/* Fisher variant: same outputs with C = F of the batch of gradients g. lambda > 0. */
int da_newton_fisher_step(int B, int m, const double *z, const double *g, double lambda,
                          double *zstar, double *grad, int *fallbacks);

/* Tensor face of the Newton loss: scalar (1/B) sum_i 1/2 ||z_i - zstar_i||^2, z [B][m]
 * (or [m]: B = 1), zstar copied (held constant). Exact Hessian-vector product (I / B). */
da_tensor *da_newton_loss(da_ctx *ctx, da_tensor *z, const double *zstar);
/* InjectFisher: an identity op on z [B][m] whose backward replaces the incoming gradient
 * (the gradient of a batch-MEAN loss, so g_i = B * incoming_i) by the Fisher-Newton
 * direction (F + lambda I)^-1 g_i / B. Place it between model and loss. */
da_tensor *da_inject_fisher(da_ctx *ctx, da_tensor *z, double lambda);

#endif
