/* test_smooth.c - smoothing distributions and the stochastic smoothing estimators. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "suite_run.h"

#define N_SEEDS 200

/* ---- distributions ---- */

START_TEST(test_distributions)
{
    for (int d = 0; d < DA_DIST_COUNT; d++) {
        da_dist D = (da_dist)d;
        da_dist parsed;
        ck_assert_int_eq(da_dist_parse(da_dist_name(D), &parsed), DA_OK);
        ck_assert_int_eq(parsed, D);
        for (double u = 0.05; u < 1; u += 0.1) {
            double z = da_dist_icdf(D, u), h = 1e-5;
            ck_assert_double_eq_tol(da_dist_cdf(D, z), u, 1e-12);
            /* density = CDF', score = -(log density)', s' = score' */
            double dens = (da_dist_cdf(D, z + h) - da_dist_cdf(D, z - h)) / (2 * h);
            ck_assert_double_eq_tol(da_dist_density(D, z), dens, 1e-7);
            double score = -(log(da_dist_density(D, z + h)) - log(da_dist_density(D, z - h))) / (2 * h);
            if (fabs(z) > 1e-3)
                ck_assert_double_eq_tol(da_dist_score(D, z), score, 1e-6 * fmax(1, fabs(score)));
            if (da_dist_smooth2(D)) {
                double sd = (da_dist_score(D, z + h) - da_dist_score(D, z - h)) / (2 * h);
                ck_assert_double_eq_tol(da_dist_score_deriv(D, z), sd, 1e-6);
            }
            if (da_dist_symmetric(D))
                ck_assert_double_eq_tol(da_dist_icdf(D, 1 - u), -z, 1e-9);
        }
    }
    da_dist bad;
    ck_assert_int_eq(da_dist_parse("uniform", &bad), DA_EINVAL);
}
END_TEST

/* ---- black boxes ---- */

static int f_identity(void *user, int n, const double *x, int m, double *y)
{
    memcpy(y, x, (size_t)n * sizeof *y);
    return 0;
}

static int f_sign(void *user, int n, const double *x, int m, double *y)
{
    y[0] = (x[0] > 0) - (x[0] < 0);
    return 0;
}

static int f_max(void *user, int n, const double *x, int m, double *y)
{
    y[0] = x[0];
    for (int i = 1; i < n; i++)
        y[0] = fmax(y[0], x[i]);
    return 0;
}

/* 5 + sum_i tanh(x_i) + x_0 x_1 */
static int f_smooth(void *user, int n, const double *x, int m, double *y)
{
    y[0] = 5 + x[0] * x[1];
    for (int i = 0; i < n; i++)
        y[0] += tanh(x[i]);
    return 0;
}

/* 0.5 x^T A x + b^T x with A = [[2, 0.5], [0.5, 1]], b = [1, -1] */
static int f_quad(void *user, int n, const double *x, int m, double *y)
{
    y[0] = x[0] * x[0] + 0.5 * x[0] * x[1] + 0.5 * x[1] * x[1] + x[0] - x[1];
    return 0;
}

static int f_fail(void *user, int n, const double *x, int m, double *y)
{
    return da_set_error(DA_EINVAL, "black box refuses");
}

/* mean and standard error over N_SEEDS estimates of a k-vector */
typedef struct {
    double mean[16], se[16], var_sum;
} stats;

static void estimate_stats(const da_smooth_cfg *cfg, da_blackbox_fn f, int n, int m,
                           const double *x, stats *st)
{
    int k = m * n;
    double s1[16] = {0}, s2[16] = {0}, J[16];
    da_rng *rng = da_rng_new(1);
    for (int r = 0; r < N_SEEDS; r++) {
        da_rng_seed(rng, 1000 + r);
        ck_assert_int_eq(da_smooth_jacobian(cfg, f, NULL, n, m, x, rng, NULL, J), DA_OK);
        for (int i = 0; i < k; i++) {
            s1[i] += J[i];
            s2[i] += J[i] * J[i];
        }
    }
    da_rng_free(rng);
    st->var_sum = 0;
    for (int i = 0; i < k; i++) {
        st->mean[i] = s1[i] / N_SEEDS;
        double var = fmax(0, s2[i] / N_SEEDS - st->mean[i] * st->mean[i]);
        st->se[i] = sqrt(var / N_SEEDS);
        st->var_sum += var;
    }
}

static void assert_unbiased(const stats *st, const double *truth, int k, const char *what)
{
    for (int i = 0; i < k; i++)
        ck_assert_msg(fabs(st->mean[i] - truth[i]) <= 4 * st->se[i] + 1e-9,
                      "%s: entry %d mean %g truth %g se %g", what, i, st->mean[i], truth[i],
                      st->se[i]);
}

/* the unbiased combinations: every randomized sampling with CV none / f(x); LOO with MC */
START_TEST(test_identity_unbiased)
{
    const double x[3] = {0.3, -1.2, 0.8}, I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    const da_sampling samplings[] = {DA_SAMPLE_MC, DA_SAMPLE_LATIN, DA_SAMPLE_RLATIN,
                                     DA_SAMPLE_CARTESIAN, DA_SAMPLE_SOBOL, DA_SAMPLE_HALTON};
    for (int d = 0; d < DA_DIST_COUNT; d++)
        for (int si = 0; si < 6; si++)
            for (int cv = DA_CV_NONE; cv <= DA_CV_LOO; cv++)
                for (int anti = 0; anti <= 1; anti++) {
                    if (anti && !da_dist_symmetric((da_dist)d))
                        continue;
                    if (cv == DA_CV_LOO && samplings[si] != DA_SAMPLE_MC)
                        continue;
                    da_smooth_cfg cfg;
                    da_smooth_cfg_default(&cfg);
                    cfg.dist = (da_dist)d;
                    cfg.sampling = samplings[si];
                    cfg.cv = (da_control_variate)cv;
                    cfg.antithetic = anti;
                    cfg.samples = 16;
                    cfg.eps = 0.5;
                    stats st;
                    estimate_stats(&cfg, f_identity, 3, 3, x, &st);
                    char what[96];
                    snprintf(what, sizeof what, "%s/%s/cv%d/anti%d", da_dist_name(cfg.dist),
                             da_sampling_name(cfg.sampling), cv, anti);
                    if (cfg.sampling != DA_SAMPLE_LATIN) {
                        assert_unbiased(&st, I, 9, what);
                        continue;
                    }
                    /* cell centres are a midpoint rule per coordinate (QMC): biased, with
                       a bias that shrinks as the sample count grows */
                    cfg.samples = 256;
                    stats fine;
                    estimate_stats(&cfg, f_identity, 3, 3, x, &fine);
                    ck_assert_msg(fabs(fine.mean[0] - 1) < fabs(st.mean[0] - 1) ||
                                      fabs(st.mean[0] - 1) < 1e-12,
                                  "%s: %g then %g", what, st.mean[0], fine.mean[0]);
                }
}
END_TEST

/* sign(x): d/dx E[sign(x + eps z)] = 2 mu(-x/eps) / eps */
START_TEST(test_sign_closed_form)
{
    const double x = 0.4, eps = 0.7;
    for (int d = 0; d < DA_DIST_COUNT; d++)
        for (int cv = DA_CV_NONE; cv <= DA_CV_FX; cv++) {
            da_smooth_cfg cfg;
            da_smooth_cfg_default(&cfg);
            cfg.dist = (da_dist)d;
            cfg.sampling = DA_SAMPLE_RLATIN;
            cfg.cv = (da_control_variate)cv;
            cfg.samples = 64;
            cfg.eps = eps;
            double truth = 2 * da_dist_density(cfg.dist, -x / eps) / eps;
            stats st;
            estimate_stats(&cfg, f_sign, 1, 1, &x, &st);
            assert_unbiased(&st, &truth, 1, da_dist_name(cfg.dist));
        }
}
END_TEST

/* max(x) under Gaussian smoothing: d/dx_i = P(x_i + eps z_i is the largest) */
START_TEST(test_max_gaussian)
{
    const double x[3] = {0.2, -0.1, 0.5}, eps = 0.6;
    double truth[3];
    for (int i = 0; i < 3; i++) { /* integral of phi(t) prod_j Phi((x_i - x_j)/eps + t) */
        double s = 0, h = 1e-3;
        for (double t = -10; t <= 10; t += h) {
            double p = da_dist_density(DA_DIST_GAUSSIAN, t);
            for (int j = 0; j < 3; j++)
                if (j != i)
                    p *= da_dist_cdf(DA_DIST_GAUSSIAN, (x[i] - x[j]) / eps + t);
            s += p * h;
        }
        truth[i] = s;
    }
    ck_assert_double_eq_tol(truth[0] + truth[1] + truth[2], 1.0, 1e-6);
    da_smooth_cfg cfg;
    da_smooth_cfg_default(&cfg);
    cfg.eps = eps;
    cfg.samples = 125; /* default: Cartesian 5^3 + LOO */
    da_sampling used;
    int s;
    ck_assert_int_eq(da_smooth_plan(&cfg, 3, &used, &s), DA_OK);
    ck_assert_int_eq(used, DA_SAMPLE_CARTESIAN);
    ck_assert_int_eq(s, 125);
    cfg.cv = DA_CV_FX;
    stats st;
    estimate_stats(&cfg, f_max, 3, 1, x, &st);
    assert_unbiased(&st, truth, 3, "max");
}
END_TEST

/* every variance-reduction strategy beats plain MC on a smooth function */
START_TEST(test_variance_reduction)
{
    const double x[2] = {0.3, -0.4};
    da_smooth_cfg cfg;
    da_smooth_cfg_default(&cfg);
    cfg.samples = 64;
    cfg.eps = 0.5;
    cfg.sampling = DA_SAMPLE_MC;
    cfg.cv = DA_CV_NONE;
    stats mc;
    estimate_stats(&cfg, f_smooth, 2, 1, x, &mc);
    const da_sampling samplings[] = {DA_SAMPLE_MC, DA_SAMPLE_LATIN, DA_SAMPLE_RLATIN,
                                     DA_SAMPLE_CARTESIAN, DA_SAMPLE_SOBOL, DA_SAMPLE_HALTON};
    for (int si = 0; si < 6; si++)
        for (int cv = DA_CV_NONE; cv <= DA_CV_LOO; cv++)
            for (int anti = 0; anti <= 1; anti++) {
                if (si == 0 && cv == DA_CV_NONE && !anti)
                    continue;
                cfg.sampling = samplings[si];
                cfg.cv = (da_control_variate)cv;
                cfg.antithetic = anti;
                stats st;
                estimate_stats(&cfg, f_smooth, 2, 1, x, &st);
                ck_assert_msg(st.var_sum < mc.var_sum, "%s cv%d anti%d: variance %g vs MC %g",
                              da_sampling_name(cfg.sampling), cv, anti, st.var_sum, mc.var_sum);
            }
}
END_TEST

/* Hessian of a quadratic is A; with a full scale matrix L too */
START_TEST(test_hessian_quadratic)
{
    const double x[2] = {0.5, 1.5}, A[4] = {2, 0.5, 0.5, 1};
    const double L[4] = {0.6, 0.0, 0.3, 0.4};
    for (int useL = 0; useL <= 1; useL++) {
        double s1[4] = {0}, s2[4] = {0}, g1[2] = {0}, H[4], g[2];
        da_smooth_cfg cfg;
        da_smooth_cfg_default(&cfg);
        cfg.samples = 256;
        cfg.eps = 0.3;
        cfg.L = useL ? L : NULL;
        da_rng *rng = da_rng_new(3);
        for (int r = 0; r < N_SEEDS; r++) {
            ck_assert_int_eq(da_smooth_hessian(&cfg, f_quad, NULL, 2, x, rng, NULL, g, H), DA_OK);
            for (int i = 0; i < 4; i++) {
                s1[i] += H[i];
                s2[i] += H[i] * H[i];
            }
            g1[0] += g[0];
            g1[1] += g[1];
        }
        da_rng_free(rng);
        for (int i = 0; i < 4; i++) {
            double mean = s1[i] / N_SEEDS;
            double se = sqrt(fmax(0, s2[i] / N_SEEDS - mean * mean) / N_SEEDS);
            ck_assert_msg(fabs(mean - A[i]) <= 4 * se + 1e-9, "L%d H[%d] %g vs %g (se %g)",
                          useL, i, mean, A[i], se);
        }
        /* gradient of the smoothed quadratic: A x + b (smoothing adds a constant only) */
        ck_assert_double_eq_tol(g1[0] / N_SEEDS, 2 * x[0] + 0.5 * x[1] + 1, 0.05);
        ck_assert_double_eq_tol(g1[1] / N_SEEDS, 0.5 * x[0] + x[1] - 1, 0.05);
    }
    da_smooth_cfg cfg;
    da_smooth_cfg_default(&cfg);
    cfg.dist = DA_DIST_LAPLACE;
    double H[4];
    da_rng *rng = da_rng_new(1);
    ck_assert_int_eq(da_smooth_hessian(&cfg, f_quad, NULL, 2, x, rng, NULL, NULL, H), DA_EINVAL);
    da_rng_free(rng);
}
END_TEST

/* the tensor face: value and backward equal the plain estimate from the same seed */
START_TEST(test_tensor_face)
{
    const double x[6] = {0.3, -1.2, 0.8, 0.1, 0.5, -0.4};
    da_smooth_cfg cfg;
    da_smooth_cfg_default(&cfg);
    cfg.samples = 27;
    cfg.eps = 0.5;
    for (int dt = 0; dt <= 1; dt++) {
        da_ctx *ctx = da_ctx_new();
        da_rng *rng = da_rng_new(42);
        int shape[2] = {2, 3};
        da_tensor *xt = da_ctx_tensor_from(ctx, dt ? DA_F64 : DA_F32, 2, shape, x);
        xt->requires_grad = 1;
        da_tensor *y = da_smooth_op(ctx, xt, 1, f_max, NULL, &cfg, rng);
        ck_assert_ptr_nonnull(y);
        ck_assert_int_eq(y->ndim, 2);
        ck_assert_int_eq(y->shape[1], 1);
        double cot[2] = {1.0, -2.0};
        ck_assert_int_eq(da_backward_from(ctx, y, cot), DA_OK);
        da_rng_seed(rng, 42);
        for (int r = 0; r < 2; r++) {
            double xr[3], v, J[3];
            for (int j = 0; j < 3; j++)
                xr[j] = da_get(xt, r * 3 + j);
            ck_assert_int_eq(da_smooth_jacobian(&cfg, f_max, NULL, 3, 1, xr, rng, &v, J), DA_OK);
            double tol = dt ? 1e-12 : 1e-5;
            ck_assert_double_eq_tol(da_get(y, r), v, tol);
            for (int j = 0; j < 3; j++)
                ck_assert_double_eq_tol(da_get_grad(xt, r * 3 + j), cot[r] * J[j], tol);
        }
        da_rng_free(rng);
        da_ctx_free(ctx);
    }
}
END_TEST

START_TEST(test_errors)
{
    const double x[2] = {0.1, NAN};
    double J[4];
    da_smooth_cfg cfg;
    da_smooth_cfg_default(&cfg);
    da_rng *rng = da_rng_new(1);
    ck_assert_int_eq(da_smooth_jacobian(&cfg, f_identity, NULL, 2, 2, x, rng, NULL, J), DA_ENAN);
    const double y[2] = {0.1, 0.2};
    ck_assert_int_eq(da_smooth_jacobian(&cfg, NULL, NULL, 2, 2, y, rng, NULL, J), DA_EINVAL);
    ck_assert_int_eq(da_smooth_jacobian(&cfg, f_identity, NULL, 0, 2, y, rng, NULL, J), DA_ERANGE);
    ck_assert_int_eq(da_smooth_jacobian(&cfg, f_fail, NULL, 2, 2, y, rng, NULL, J), DA_EINVAL);
    cfg.eps = -1;
    ck_assert_int_eq(da_smooth_jacobian(&cfg, f_identity, NULL, 2, 2, y, rng, NULL, J), DA_ERANGE);
    cfg.eps = 1;
    cfg.dist = DA_DIST_GUMBEL;
    cfg.antithetic = 1;
    ck_assert_int_eq(da_smooth_jacobian(&cfg, f_identity, NULL, 2, 2, y, rng, NULL, J), DA_EINVAL);
    cfg.dist = DA_DIST_GAUSSIAN;
    cfg.samples = 63;
    ck_assert_int_eq(da_smooth_jacobian(&cfg, f_identity, NULL, 2, 2, y, rng, NULL, J), DA_EINVAL);
    cfg.antithetic = 0;
    cfg.samples = 1;
    cfg.cv = DA_CV_LOO;
    ck_assert_int_eq(da_smooth_jacobian(&cfg, f_identity, NULL, 2, 2, y, rng, NULL, J), DA_ERANGE);
    const double Lsing[4] = {1, 2, 2, 4};
    da_smooth_cfg_default(&cfg);
    cfg.L = Lsing;
    ck_assert_int_eq(da_smooth_jacobian(&cfg, f_identity, NULL, 2, 2, y, rng, NULL, J), DA_ENUMERIC);
    da_smooth_cfg_default(&cfg);
    cfg.sampling = DA_SAMPLE_CARTESIAN; /* 64 samples: no 2-per-axis grid in 10 dimensions */
    double ten[10] = {0};
    ck_assert_int_eq(da_smooth_jacobian(&cfg, f_sign, NULL, 10, 1, ten, rng, NULL, NULL), DA_ERANGE);
    cfg.sampling = DA_SAMPLE_SOBOL;
    double big[50] = {0};
    ck_assert_int_eq(da_smooth_jacobian(&cfg, f_sign, NULL, 50, 1, big, rng, NULL, NULL), DA_ERANGE);
    da_rng_free(rng);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("smooth");
    TCase *tc = tcase_create("smooth");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_distributions);
    tcase_add_test(tc, test_identity_unbiased);
    tcase_add_test(tc, test_sign_closed_form);
    tcase_add_test(tc, test_max_gaussian);
    tcase_add_test(tc, test_variance_reduction);
    tcase_add_test(tc, test_hessian_quadratic);
    tcase_add_test(tc, test_tensor_face);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
