/* dist.h - the smoothing distributions of stochastic smoothing (Petersen et al.,
 * "Generalizing Stochastic Smoothing for Differentiation and Gradient Estimation",
 * arXiv 2410.08125, §3): each a standard 1-D density mu with its inverse CDF (samples
 * come from GSL uniforms, so stratified/quasi-random uniforms give stratified samples),
 * its density, its score s(z) = -d/dz log mu(z) and the score's derivative s'(z) (for
 * the second-order estimator). A multivariate sample is a vector of independent draws.
 *
 *   gaussian    mu = N(0,1)                      s = z               s' = 1
 *   logistic    mu = e^-z / (1+e^-z)^2           s = tanh(z/2)       s' = (1 - s^2)/2
 *   gumbel      mu = exp(-z - e^-z)              s = 1 - e^-z        s' = e^-z
 *   cauchy      mu = 1 / (pi (1+z^2))            s = 2z / (1+z^2)    s' = 2(1-z^2)/(1+z^2)^2
 *   laplace     mu = e^-|z| / 2                  s = sign(z)         (not C^2)
 *   triangular  mu = 1 - |z| on [-1, 1]          s = sign(z)/(1-|z|) (not C^2)
 */
#ifndef DA_DIST_H
#define DA_DIST_H

typedef enum {
    DA_DIST_GAUSSIAN = 0,
    DA_DIST_LOGISTIC,
    DA_DIST_GUMBEL,
    DA_DIST_CAUCHY,
    DA_DIST_LAPLACE,
    DA_DIST_TRIANGULAR,
    DA_DIST_COUNT
} da_dist;

/* "gaussian", "logistic", ... (NULL for an unknown value) */
const char *da_dist_name(da_dist d);
/* parse a name; returns DA_OK or DA_EINVAL */
int da_dist_parse(const char *name, da_dist *d);
/* 1 if mu(z) = mu(-z) (antithetic pairs are valid), else 0 */
int da_dist_symmetric(da_dist d);
/* 1 if mu is twice continuously differentiable (second-order estimator valid) */
int da_dist_smooth2(da_dist d);

/* u in (0, 1) -> z with CDF(z) = u */
double da_dist_icdf(da_dist d, double u);
double da_dist_cdf(da_dist d, double z);
double da_dist_density(da_dist d, double z);
double da_dist_score(da_dist d, double z);
double da_dist_score_deriv(da_dist d, double z);

#endif
