/* dist.c - smoothing distributions (see dist.h for the formulas). */
#include <math.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_math.h>

#include "dist.h"
#include "error.h"

static const char *const names[DA_DIST_COUNT] = {"gaussian", "logistic", "gumbel",
                                                 "cauchy",   "laplace",  "triangular"};

const char *da_dist_name(da_dist d)
{
    return (d >= 0 && d < DA_DIST_COUNT) ? names[d] : NULL;
}

int da_dist_parse(const char *name, da_dist *d)
{
    for (int i = 0; name && i < DA_DIST_COUNT; i++)
        if (!strcmp(name, names[i])) {
            *d = (da_dist)i;
            return DA_OK;
        }
    return da_set_error(DA_EINVAL, "unknown distribution '%s' (gaussian, logistic, gumbel, "
                                   "cauchy, laplace, triangular)", name ? name : "(null)");
}

int da_dist_symmetric(da_dist d) { return d != DA_DIST_GUMBEL; }

int da_dist_smooth2(da_dist d) { return d <= DA_DIST_CAUCHY; }

static double sign(double z) { return (z > 0) - (z < 0); }

double da_dist_icdf(da_dist d, double u)
{
    switch (d) {
    case DA_DIST_GAUSSIAN: return gsl_cdf_ugaussian_Pinv(u);
    case DA_DIST_LOGISTIC: return log(u) - log1p(-u);
    case DA_DIST_GUMBEL: return -log(-log(u));
    case DA_DIST_CAUCHY: return tan(M_PI * (u - 0.5));
    case DA_DIST_LAPLACE: return u < 0.5 ? log(2 * u) : -log(2 * (1 - u));
    case DA_DIST_TRIANGULAR: return u < 0.5 ? -1 + sqrt(2 * u) : 1 - sqrt(2 * (1 - u));
    default: return NAN;
    }
}

double da_dist_cdf(da_dist d, double z)
{
    switch (d) {
    case DA_DIST_GAUSSIAN: return gsl_cdf_ugaussian_P(z);
    case DA_DIST_LOGISTIC: return 1 / (1 + exp(-z));
    case DA_DIST_GUMBEL: return exp(-exp(-z));
    case DA_DIST_CAUCHY: return 0.5 + atan(z) / M_PI;
    case DA_DIST_LAPLACE: return z < 0 ? 0.5 * exp(z) : 1 - 0.5 * exp(-z);
    case DA_DIST_TRIANGULAR:
        if (z <= -1)
            return 0;
        if (z >= 1)
            return 1;
        return z < 0 ? 0.5 * (1 + z) * (1 + z) : 1 - 0.5 * (1 - z) * (1 - z);
    default: return NAN;
    }
}

double da_dist_density(da_dist d, double z)
{
    switch (d) {
    case DA_DIST_GAUSSIAN: return exp(-0.5 * z * z) / sqrt(2 * M_PI);
    case DA_DIST_LOGISTIC: {
        double e = exp(-fabs(z));
        return e / ((1 + e) * (1 + e));
    }
    case DA_DIST_GUMBEL: return exp(-z - exp(-z));
    case DA_DIST_CAUCHY: return 1 / (M_PI * (1 + z * z));
    case DA_DIST_LAPLACE: return 0.5 * exp(-fabs(z));
    case DA_DIST_TRIANGULAR: return fabs(z) < 1 ? 1 - fabs(z) : 0;
    default: return NAN;
    }
}

double da_dist_score(da_dist d, double z)
{
    switch (d) {
    case DA_DIST_GAUSSIAN: return z;
    case DA_DIST_LOGISTIC: return tanh(0.5 * z);
    case DA_DIST_GUMBEL: return 1 - exp(-z);
    case DA_DIST_CAUCHY: return 2 * z / (1 + z * z);
    case DA_DIST_LAPLACE: return sign(z);
    case DA_DIST_TRIANGULAR: return fabs(z) < 1 ? sign(z) / (1 - fabs(z)) : 0;
    default: return NAN;
    }
}

double da_dist_score_deriv(da_dist d, double z)
{
    switch (d) {
    case DA_DIST_GAUSSIAN: return 1;
    case DA_DIST_LOGISTIC: {
        double t = tanh(0.5 * z);
        return 0.5 * (1 - t * t);
    }
    case DA_DIST_GUMBEL: return exp(-z);
    case DA_DIST_CAUCHY: {
        double q = 1 + z * z;
        return 2 * (1 - z * z) / (q * q);
    }
    default: return NAN; /* laplace, triangular: not C^2 (see da_dist_smooth2) */
    }
}
