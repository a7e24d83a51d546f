/* smooth.h - stochastic smoothing of a black box f: R^n -> R^m with variance reduction
 * (Petersen et al., "Generalizing Stochastic Smoothing for Differentiation and Gradient
 * Estimation", arXiv 2410.08125).
 *
 * For z ~ mu (dist.h, independent coordinates) and a scale L (eps * I, diag(eps_vec) or
 * a full matrix), the smoothed function and its derivatives are (Eqs. 3-6 of the paper,
 * generalised to L by the change of variables u = x + L z):
 *   f_L(x)       = E[f(x + L z)]
 *   J_L(x)       = E[(f(x + L z) - b) (L^-T s(z))^T]                      [m][n]
 *   H_L(x)       = E[(f(x + L z) - b) L^-T (s(z) s(z)^T - diag s'(z)) L^-1]  (m = 1)
 * with s the score of mu and b a baseline (control variate) that leaves the estimate
 * unbiased. Estimates average over `samples` draws.
 *
 * Variance reduction, three orthogonal axes (4 x 3 x 2 = 24 strategies, plus Sobol and
 * Halton points):
 *   sampling    DA_SAMPLE_MC         independent uniforms
 *               DA_SAMPLE_LATIN      Latin hypercube, cell centres (QMC)
 *               DA_SAMPLE_RLATIN     randomized Latin hypercube (uniform within cells)
 *               DA_SAMPLE_CARTESIAN  randomized Cartesian grid: k^n cells, one uniform
 *                                    point each, k = floor(s_base^(1/n)) (so the sample
 *                                    count is k^n, possibly below `samples`)
 *               DA_SAMPLE_SOBOL / DA_SAMPLE_HALTON  gsl_qrng points with a random shift
 *                                    modulo 1 (Cranley-Patterson), so still unbiased
 *               DA_SAMPLE_DEFAULT    Cartesian where k >= 2 (and mu is not triangular),
 *                                    else randomized Latin
 *   baseline    DA_CV_NONE, DA_CV_FX (b = f(x), one extra call), DA_CV_LOO (b = mean of
 *               the other samples; with antithetic pairs, of the other pairs)
 *   antithetic  0/1: pairs (u, 1-u), i.e. (z, -z) for symmetric mu; `samples` counts
 *               both halves and must be even. Not valid for gumbel (DA_EINVAL).
 * Uniforms come from the da_rng in a fixed order, so a seed reproduces an estimate.
 * Zero-mean scores make CV_FX and CV_LOO unbiased for MC; with stratified samples LOO
 * carries an O(1/s) bias (the paper accepts it; our tests check the others exactly).
 *
 * f is called serially, `samples` (+1 for CV_FX) times per estimate, from the calling
 * thread; it returns 0 or an error code (propagated). Memory: O(samples * (n + m))
 * doubles of scratch per call, malloc'd once per call.
 * Errors: DA_EINVAL (NULL f, x or rng; bad options), DA_ERANGE (sizes, samples, eps <= 0
 * or Inf), DA_ENAN (NaN eps, NaN/Inf in x or L, a NaN/Inf output of f), DA_ENUMERIC (an
 * estimate that overflowed: eps too small or too large for x). */
#ifndef DA_SMOOTH_H
#define DA_SMOOTH_H

#include "dist.h"
#include "rng.h"
#include "tensor.h"

#define DA_SMOOTH_MAX_DIM 4096
#define DA_SMOOTH_MAX_SAMPLES (1 << 22)

typedef int (*da_blackbox_fn)(void *user, int n, const double *x, int m, double *y);

typedef enum {
    DA_SAMPLE_DEFAULT = 0,
    DA_SAMPLE_MC,
    DA_SAMPLE_LATIN,
    DA_SAMPLE_RLATIN,
    DA_SAMPLE_CARTESIAN,
    DA_SAMPLE_SOBOL,
    DA_SAMPLE_HALTON
} da_sampling;

typedef enum { DA_CV_NONE = 0, DA_CV_FX, DA_CV_LOO } da_control_variate;

typedef struct {
    da_dist dist;
    da_sampling sampling;
    da_control_variate cv;
    int antithetic;
    int samples;           /* total number of f evaluations (without the CV_FX call) */
    double eps;            /* isotropic scale, used when eps_vec and L are NULL */
    const double *eps_vec; /* [n] per-coordinate scale, or NULL (borrowed) */
    const double *L;       /* [n][n] invertible scale matrix, or NULL (borrowed) */
} da_smooth_cfg;

/* gaussian, DA_SAMPLE_DEFAULT, DA_CV_LOO, no antithetic, 64 samples, eps 1 */
void da_smooth_cfg_default(da_smooth_cfg *cfg);
/* The sampling scheme and sample count an estimate with this cfg uses for dimension n. */
int da_smooth_plan(const da_smooth_cfg *cfg, int n, da_sampling *sampling, int *samples);
const char *da_sampling_name(da_sampling s);
int da_sampling_parse(const char *name, da_sampling *s);

/* Smoothed value [m] and Jacobian estimate [m][n] of f at x (either output may be NULL). */
int da_smooth_jacobian(const da_smooth_cfg *cfg, da_blackbox_fn f, void *user, int n, int m,
                       const double *x, da_rng *rng, double *value, double *J);
/* Scalar f (m = 1): smoothed value, gradient [n] and Hessian [n][n] (any may be NULL),
 * all from the same samples. Needs a C^2 density (da_dist_smooth2), else DA_EINVAL. */
int da_smooth_hessian(const da_smooth_cfg *cfg, da_blackbox_fn f, void *user, int n,
                      const double *x, da_rng *rng, double *value, double *grad, double *H);

/* Tensor face: one graph node y = f_L(x) row by row, x [batch][n] (or [n]), y [batch][m]
 * (or [m]); the forward value is the sample mean, the backward J^T cotangent with the
 * forward's samples. cfg, f/user and rng are borrowed until the backward pass ends. */
da_tensor *da_smooth_op(da_ctx *ctx, da_tensor *x, int m, da_blackbox_fn f, void *user,
                        const da_smooth_cfg *cfg, da_rng *rng);

#endif
