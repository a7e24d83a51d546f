/* test_shortest_path_smooth.c - stochastic smoothing of the Dijkstra solver and of its
 * Hamming loss (shortest_path.h §4): on a 2 x 3 grid where only two paths can win, the
 * smoothed indicator, its Jacobian-vector product, the smoothed loss, its gradient and
 * its Hessian have closed forms (one-dimensional integrals of the smoothing density);
 * the estimates of many independent rows must agree with them within 4 standard errors,
 * for several distributions and variance-reduction schemes. Plus: tensor faces equal the
 * plain faces for a seed, a generic solver, and the error paths. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "suite_run.h"

/* The grid (H 2, W 3): s = 0, goal = 5. Vertices 2 and 3 cost 30, so (for costs ~10 and
 * noise of scale ~1) the path is 0-A-5 or 0-B-5 with A = 1 = (0,1), B = 4 = (1,1):
 * y_A = 1[c_A + e_A z_A < c_B + e_B z_B]. */
#define GH 2
#define GW 3
#define GN 6
#define VA 1
#define VB 4
#define ROWS 400

static const double base_cost[GN] = {10, 10, 30, 30, 10.75, 10};

/* P(u) = P(z_A - z_B < u) for iid z of mu and its first two derivatives in u, by
 * trapezoidal quadrature of int mu(z) F(u + z) dz (and of mu(z) mu(u + z), mu(z) mu'(u+z)) */
static void closed_form(da_dist d, double u, double *P, double *dP, double *d2P)
{
    double lo = -60, hi = 60, h = 1e-3;
    if (d == DA_DIST_TRIANGULAR)
        lo = -1, hi = 1, h = 1e-5;
    double s0 = 0, s1 = 0, s2 = 0;
    for (double z = lo; z <= hi + 1e-12; z += h) {
        double w = (z == lo || z + h > hi + 1e-12) ? 0.5 * h : h;
        double m = da_dist_density(d, z), mu = da_dist_density(d, u + z);
        s0 += w * m * da_dist_cdf(d, u + z);
        s1 += w * m * mu;
        if (da_dist_smooth2(d))
            s2 -= w * m * mu * da_dist_score(d, u + z);
    }
    *P = s0;
    *dP = s1;
    *d2P = s2;
}

/* mean and standard error of column j of x [rows][stride] */
static void column_stats(const double *x, int rows, int stride, int j, double *mean, double *se)
{
    double s = 0, ss = 0;
    for (int r = 0; r < rows; r++)
        s += x[(size_t)r * stride + j];
    s /= rows;
    for (int r = 0; r < rows; r++) {
        double e = x[(size_t)r * stride + j] - s;
        ss += e * e;
    }
    *mean = s;
    *se = sqrt(ss / (rows - 1) / rows);
}

/* column j agrees with exact within 4 standard errors (exactly if the estimate is constant) */
static void check_column(const char *what, const double *x, int rows, int stride, int j,
                         double exact)
{
    double mean, se;
    column_stats(x, rows, stride, j, &mean, &se);
    ck_assert_msg(fabs(mean - exact) <= 4 * se + 1e-12,
                  "%s[%d]: estimate %.6g +- %.3g, closed form %.6g", what, j, mean, se, exact);
}

static double *repeat_rows(const double *row, int n, int rows)
{
    double *x = malloc((size_t)rows * n * sizeof *x);
    for (int r = 0; r < rows; r++)
        memcpy(x + (size_t)r * n, row, (size_t)n * sizeof *x);
    return x;
}

typedef struct {
    da_dist dist;
    da_sampling sampling;
    da_control_variate cv;
    int antithetic, samples;
} scheme;

/* unbiased schemes (LOO only with MC: with stratified samples it has an O(1/s) bias) */
static const scheme schemes[] = {
    {DA_DIST_GAUSSIAN, DA_SAMPLE_MC, DA_CV_LOO, 0, 16},
    {DA_DIST_GAUSSIAN, DA_SAMPLE_RLATIN, DA_CV_FX, 1, 16},
    {DA_DIST_LOGISTIC, DA_SAMPLE_RLATIN, DA_CV_FX, 0, 16},
    {DA_DIST_GUMBEL, DA_SAMPLE_MC, DA_CV_NONE, 0, 32},
    {DA_DIST_LAPLACE, DA_SAMPLE_SOBOL, DA_CV_FX, 0, 16},
    {DA_DIST_TRIANGULAR, DA_SAMPLE_MC, DA_CV_LOO, 0, 16},
};
#define N_SCHEMES (int)(sizeof schemes / sizeof schemes[0])

static da_smooth_cfg cfg_of(const scheme *s, double eps)
{
    da_smooth_cfg cfg;
    da_smooth_cfg_default(&cfg);
    cfg.dist = s->dist;
    cfg.sampling = s->sampling;
    cfg.cv = s->cv;
    cfg.antithetic = s->antithetic;
    cfg.samples = s->samples;
    cfg.eps = eps;
    return cfg;
}

/* ---------------------------------------------------------------- (a) the solver */

START_TEST(test_smooth_path_closed_form)
{
    const double eps = 0.8, u = (base_cost[VB] - base_cost[VA]) / eps;
    const double cot[GN] = {0.3, 1.0, -0.2, 0.1, -0.5, 0.7}; /* any cotangent */
    double *cost = repeat_rows(base_cost, GN, ROWS), *cots = repeat_rows(cot, GN, ROWS);
    double *y = malloc(sizeof(double) * ROWS * GN), *g = malloc(sizeof(double) * ROWS * GN);
    for (int k = 0; k < N_SCHEMES; k++) {
        da_smooth_cfg cfg = cfg_of(&schemes[k], eps);
        da_rng *rng = da_rng_new(100 + k);
        double P, dP, d2P;
        closed_form(cfg.dist, u, &P, &dP, &d2P);
        ck_assert_int_eq(da_sp_smooth_path(&cfg, rng, ROWS, GH, GW, cost, y, cots, g), DA_OK);
        char what[64];
        snprintf(what, sizeof what, "path %s", da_dist_name(cfg.dist));
        const double exact_y[GN] = {1, P, 0, 0, 1 - P, 1};
        for (int j = 0; j < GN; j++)
            check_column(what, y, ROWS, GN, j, exact_y[j]);
        /* J^T cot: only A and B move, d y_A / d c_A = -P'/eps = -d y_A / d c_B */
        double ga = (cot[VB] - cot[VA]) * dP / eps;
        const double exact_g[GN] = {0, ga, 0, 0, -ga, 0};
        snprintf(what, sizeof what, "J^T cot %s", da_dist_name(cfg.dist));
        for (int j = 0; j < GN; j++)
            check_column(what, g, ROWS, GN, j, exact_g[j]);
        double mean, se; /* the test has power: the main entry is resolved to 10% */
        column_stats(g, ROWS, GN, VA, &mean, &se);
        ck_assert_msg(se < 0.1 * fabs(ga), "%s: standard error %g too large", what, se);
        da_rng_free(rng);
    }
    free(cost);
    free(cots);
    free(y);
    free(g);
}
END_TEST

/* per-vertex scales: y_A = Phi(delta / sqrt(e_A^2 + e_B^2)) for the Gaussian */
START_TEST(test_smooth_path_eps_vec)
{
    const double e[GN] = {0.5, 0.6, 1.0, 1.0, 0.9, 0.4}, sd = sqrt(0.36 + 0.81);
    const double u = (base_cost[VB] - base_cost[VA]) / sd;
    const double cot[GN] = {0, 1, 0, 0, 0, 0};
    double *cost = repeat_rows(base_cost, GN, ROWS), *cots = repeat_rows(cot, GN, ROWS);
    double *y = malloc(sizeof(double) * ROWS * GN), *g = malloc(sizeof(double) * ROWS * GN);
    scheme s = {DA_DIST_GAUSSIAN, DA_SAMPLE_MC, DA_CV_LOO, 0, 16};
    da_smooth_cfg cfg = cfg_of(&s, 1.0);
    cfg.eps_vec = e;
    da_rng *rng = da_rng_new(7);
    ck_assert_int_eq(da_sp_smooth_path(&cfg, rng, ROWS, GH, GW, cost, y, cots, g), DA_OK);
    double phi = exp(-0.5 * u * u) / sqrt(2 * M_PI);
    check_column("eps_vec path", y, ROWS, GN, VA, 0.5 * erfc(-u / sqrt(2.0)));
    check_column("eps_vec grad", g, ROWS, GN, VA, -phi / sd);
    check_column("eps_vec grad", g, ROWS, GN, VB, phi / sd);
    check_column("eps_vec grad", g, ROWS, GN, 0, 0);
    da_rng_free(rng);
    free(cost);
    free(cots);
    free(y);
    free(g);
}
END_TEST

/* ---------------------------------------------------------------- (b) the loss */

START_TEST(test_smooth_loss_closed_form)
{
    const double eps = 0.8, u = (base_cost[VB] - base_cost[VA]) / eps;
    const double t[GN] = {1, 1, 0, 0, 0, 1}; /* the path through A */
    double *cost = repeat_rows(base_cost, GN, ROWS), *target = repeat_rows(t, GN, ROWS);
    double *g = malloc(sizeof(double) * ROWS * GN), *H = malloc(sizeof(double) * ROWS * GN * GN);
    for (int k = 0; k < N_SCHEMES; k++) {
        da_smooth_cfg cfg = cfg_of(&schemes[k], eps);
        int second = da_dist_smooth2(cfg.dist);
        da_rng *rng = da_rng_new(200 + k);
        double P, dP, d2P, loss;
        closed_form(cfg.dist, u, &P, &dP, &d2P);
        ck_assert_int_eq(da_sp_smooth_loss(&cfg, rng, ROWS, GH, GW, cost, target, &loss, g,
                                           second ? H : NULL), DA_OK);
        /* loss = 2 (1 - P): each row's value is a mean of samples in {0, 2} */
        double se_bound = sqrt(4 * P * (1 - P) / cfg.samples / ROWS);
        ck_assert_msg(fabs(loss - 2 * (1 - P)) <= 4 * se_bound, "loss %s: %g vs %g",
                      da_dist_name(cfg.dist), loss, 2 * (1 - P));
        /* rows of g and H are per-sample values / ROWS */
        for (long i = 0; i < (long)ROWS * GN; i++)
            g[i] *= ROWS;
        const double exact_g[GN] = {0, 2 * dP / eps, 0, 0, -2 * dP / eps, 0};
        char what[64];
        snprintf(what, sizeof what, "loss grad %s", da_dist_name(cfg.dist));
        for (int j = 0; j < GN; j++)
            check_column(what, g, ROWS, GN, j, exact_g[j]);
        if (second) {
            for (long i = 0; i < (long)ROWS * GN * GN; i++)
                H[i] *= ROWS;
            double h = 2 * d2P / (eps * eps);
            snprintf(what, sizeof what, "loss Hessian %s", da_dist_name(cfg.dist));
            for (int a = 0; a < GN; a++)
                for (int b = 0; b < GN; b++) {
                    double exact = 0;
                    if ((a == VA || a == VB) && (b == VA || b == VB))
                        exact = a == b ? -h : h;
                    check_column(what, H, ROWS, GN * GN, a * GN + b, exact);
                }
        }
        da_rng_free(rng);
    }
    free(cost);
    free(target);
    free(g);
    free(H);
}
END_TEST

/* ---------------------------------------------------------------- faces */

/* costs exactly representable in float, so F32 and F64 see the same problem */
static void grid_costs(int B, int H, int W, double *c)
{
    for (int i = 0; i < B * H * W; i++)
        c[i] = 1 + (i * 37 % 11) * 0.5;
}

START_TEST(test_tensor_faces)
{
    enum { B = 3, H = 5, W = 4, N = B * H * W };
    double c[N], t[N], cot[N], y[N], g[N], y2[N], g2[N];
    grid_costs(B, H, W, c);
    ck_assert_int_eq(da_sp_dijkstra(B, H, W, c, t, NULL), DA_OK);
    for (int i = 0; i < N; i++) {
        cot[i] = (1 - 2 * t[i]) / B;
        c[i] += (i % 3) * 0.25; /* the target is the path of other costs */
    }
    da_smooth_cfg cfg;
    da_smooth_cfg_default(&cfg);
    cfg.samples = 12;
    cfg.eps = 0.5;
    int shape[3] = {B, H, W};
    for (int dt = 0; dt < 2; dt++) {
        da_dtype dtype = dt ? DA_F64 : DA_F32;
        double tol = dt ? 1e-12 : 1e-6;
        da_rng *r1 = da_rng_new(5), *r2 = da_rng_new(5);
        ck_assert_int_eq(da_sp_smooth_path(&cfg, r1, B, H, W, c, y, cot, g), DA_OK);
        da_ctx *ctx = da_ctx_new();
        da_tensor *x = da_ctx_tensor_from(ctx, dtype, 3, shape, c);
        x->requires_grad = 1;
        da_tensor *p = da_sp_smooth_path_op(ctx, x, &cfg, r2);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(p->ndim, 3);
        /* the Hamming loss of the smoothed path: its gradient is J^T cot */
        da_tensor *l = da_sp_hamming(ctx, p, t);
        ck_assert_int_eq(da_backward(ctx, l), DA_OK);
        for (int i = 0; i < N; i++) {
            ck_assert_double_eq_tol(da_get(p, i), y[i], tol);
            ck_assert_double_eq_tol(da_get_grad(x, i), g[i], tol * (1 + fabs(g[i])));
        }
        /* the loss: op value and gradient = plain face with the same seed */
        double loss, loss2;
        da_rng_seed(r1, 9);
        da_rng_seed(r2, 9);
        ck_assert_int_eq(da_sp_smooth_loss(&cfg, r1, B, H, W, c, t, &loss, g2, NULL), DA_OK);
        da_ctx_reset(ctx);
        x = da_ctx_tensor_from(ctx, dtype, 3, shape, c);
        x->requires_grad = 1;
        l = da_sp_smooth_loss_op(ctx, x, t, &cfg, r2);
        ck_assert_ptr_nonnull(l);
        ck_assert_int_eq(da_backward(ctx, l), DA_OK);
        loss2 = da_get(l, 0);
        ck_assert_double_eq_tol(loss2, loss, tol * (1 + loss));
        for (int i = 0; i < N; i++)
            ck_assert_double_eq_tol(da_get_grad(x, i), g2[i], tol * (1 + fabs(g2[i])));
        /* without cot the plain face gives the same mean path */
        da_rng_seed(r1, 5);
        ck_assert_int_eq(da_sp_smooth_path(&cfg, r1, B, H, W, c, y2, NULL, NULL), DA_OK);
        for (int i = 0; i < N; i++)
            ck_assert_double_eq(y2[i], y[i]);
        da_ctx_free(ctx);
        da_rng_free(r1);
        da_rng_free(r2);
    }
}
END_TEST

/* a generic solver: the one-hot argmin of n costs. For n = 2 with Gaussian noise of scale
 * eps, y_0 = Phi((c_1 - c_0) / (eps sqrt 2)). */
static int argmin_solver(void *user, int n, const double *c, double *y)
{
    int *calls = user, best = 0;
    for (int i = 1; i < n; i++)
        if (c[i] < c[best])
            best = i;
    for (int i = 0; i < n; i++)
        y[i] = i == best;
    ++*calls;
    return DA_OK;
}

START_TEST(test_generic_solver)
{
    enum { R = 500 };
    double c[2 * R], t[2 * R], g[2 * R], loss;
    for (int r = 0; r < R; r++) {
        c[2 * r] = 0.3;
        c[2 * r + 1] = 0.7;
        t[2 * r] = 0;
        t[2 * r + 1] = 1; /* target: item 1 wins */
    }
    da_smooth_cfg cfg;
    da_smooth_cfg_default(&cfg);
    cfg.sampling = DA_SAMPLE_MC;
    cfg.samples = 8;
    da_rng *rng = da_rng_new(3);
    int calls = 0;
    ck_assert_int_eq(da_sp_smooth_solver_loss(&cfg, rng, R, 2, argmin_solver, &calls, c, t,
                                              &loss, g, NULL), DA_OK);
    ck_assert_int_eq(calls, R * 8);
    /* loss = 2 P(item 0 wins) = 2 Phi(0.4 / sqrt 2); d loss / d c_0 = -2 phi(u)/sqrt 2 */
    double u = 0.4 / sqrt(2.0), phi = exp(-0.5 * u * u) / sqrt(2 * M_PI);
    for (int i = 0; i < 2 * R; i++)
        g[i] *= R;
    check_column("argmin loss grad", g, R, 2, 0, -2 * phi / sqrt(2.0));
    check_column("argmin loss grad", g, R, 2, 1, 2 * phi / sqrt(2.0));
    ck_assert(fabs(loss - 2 * 0.5 * erfc(-u / sqrt(2.0))) < 0.05);
    /* the tensor face of the smoothed solver */
    da_ctx *ctx = da_ctx_new();
    int shape[2] = {R, 2};
    da_tensor *x = da_ctx_tensor_from(ctx, DA_F64, 2, shape, c);
    da_tensor *y = da_sp_smooth_solver_op(ctx, x, argmin_solver, &calls, &cfg, rng);
    ck_assert_ptr_nonnull(y);
    double ys[2 * R];
    da_tensor_copy_to(y, ys);
    check_column("argmin path", ys, R, 2, 0, 0.5 * erfc(-u / sqrt(2.0)));
    da_ctx_free(ctx);
    da_rng_free(rng);
}
END_TEST

/* ---------------------------------------------------------------- errors */

static int failing_solver(void *user, int n, const double *c, double *y)
{
    return da_set_error(DA_ENUMERIC, "failing_solver: no path");
}

START_TEST(test_errors)
{
    double c[GN], t[GN] = {1, 1, 0, 0, 0, 1}, y[GN], g[GN], H[GN * GN], loss;
    memcpy(c, base_cost, sizeof c);
    da_smooth_cfg cfg;
    da_smooth_cfg_default(&cfg);
    da_rng *rng = da_rng_new(1);
    ck_assert_int_eq(da_sp_smooth_path(NULL, rng, 1, GH, GW, c, y, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sp_smooth_path(&cfg, NULL, 1, GH, GW, c, y, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sp_smooth_path(&cfg, rng, 0, GH, GW, c, y, NULL, NULL), DA_ERANGE);
    ck_assert_int_eq(da_sp_smooth_path(&cfg, rng, 1, 0, GW, c, y, NULL, NULL), DA_ERANGE);
    ck_assert_int_eq(da_sp_smooth_path(&cfg, rng, 1, GH, GW, NULL, y, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sp_smooth_path(&cfg, rng, 1, GH, GW, c, y, t, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sp_smooth_path(&cfg, rng, 1, GH, GW, c, NULL, NULL, NULL), DA_EINVAL);
    /* H * W beyond the smoothing dimension limit */
    double *big = calloc(100 * 100, sizeof *big);
    ck_assert_int_eq(da_sp_smooth_path(&cfg, rng, 1, 100, 100, big, big, NULL, NULL), DA_ERANGE);
    ck_assert_int_eq(da_sp_smooth_loss(&cfg, rng, 1, 100, 100, big, big, &loss, NULL, NULL),
                     DA_ERANGE);
    free(big);
    c[2] = NAN;
    ck_assert_int_eq(da_sp_smooth_path(&cfg, rng, 1, GH, GW, c, y, NULL, NULL), DA_ENAN);
    ck_assert_int_eq(da_sp_smooth_loss(&cfg, rng, 1, GH, GW, c, t, &loss, g, NULL), DA_ENAN);
    c[2] = 30;
    g[0] = INFINITY;
    ck_assert_int_eq(da_sp_smooth_path(&cfg, rng, 1, GH, GW, c, y, g, y), DA_ENAN);
    /* bad smoothing configurations are relax/'s errors */
    cfg.samples = 0;
    ck_assert_int_eq(da_sp_smooth_path(&cfg, rng, 1, GH, GW, c, y, NULL, NULL), DA_ERANGE);
    cfg.samples = 64;
    cfg.dist = DA_DIST_GUMBEL;
    cfg.antithetic = 1;
    ck_assert_int_eq(da_sp_smooth_loss(&cfg, rng, 1, GH, GW, c, t, &loss, g, NULL), DA_EINVAL);
    cfg.antithetic = 0;
    cfg.eps = -1;
    ck_assert_int_eq(da_sp_smooth_loss(&cfg, rng, 1, GH, GW, c, t, &loss, g, NULL), DA_ERANGE);
    cfg.eps = 1;
    /* the loss: target and loss pointers, NaN target, Hessian needs a C^2 density */
    ck_assert_int_eq(da_sp_smooth_loss(&cfg, rng, 1, GH, GW, c, NULL, &loss, g, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sp_smooth_loss(&cfg, rng, 1, GH, GW, c, t, NULL, g, NULL), DA_EINVAL);
    t[0] = NAN;
    ck_assert_int_eq(da_sp_smooth_loss(&cfg, rng, 1, GH, GW, c, t, &loss, g, NULL), DA_ENAN);
    t[0] = 1;
    cfg.dist = DA_DIST_LAPLACE;
    ck_assert_int_eq(da_sp_smooth_loss(&cfg, rng, 1, GH, GW, c, t, &loss, g, H), DA_EINVAL);
    ck_assert_int_eq(da_sp_smooth_loss(&cfg, rng, 1, GH, GW, c, t, &loss, g, NULL), DA_OK);
    ck_assert(isfinite(loss) && loss >= 0);
    /* generic solver: NULL, dimension, a failing solver's error propagates */
    ck_assert_int_eq(da_sp_smooth_solver_loss(&cfg, rng, 1, GN, NULL, NULL, c, t, &loss, g,
                                              NULL), DA_EINVAL);
    ck_assert_int_eq(da_sp_smooth_solver_loss(&cfg, rng, 1, 0, failing_solver, NULL, c, t,
                                              &loss, g, NULL), DA_ERANGE);
    ck_assert_int_eq(da_sp_smooth_solver_loss(&cfg, rng, 1, GN, failing_solver, NULL, c, t,
                                              &loss, g, NULL), DA_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(da_last_error(), "no path"));
    /* tensor faces */
    da_ctx *ctx = da_ctx_new();
    int s3[3] = {1, GH, GW}, s2[2] = {2, 3}, s4[4] = {1, 1, GH, GW};
    da_tensor *x = da_ctx_tensor_from(ctx, DA_F64, 3, s3, c);
    ck_assert_ptr_null(da_sp_smooth_path_op(NULL, x, &cfg, rng));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_sp_smooth_path_op(ctx, NULL, &cfg, rng));
    ck_assert_ptr_null(da_sp_smooth_path_op(ctx, da_ctx_tensor(ctx, DA_F64, 2, s2), &cfg, rng));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_sp_smooth_loss_op(ctx, da_ctx_tensor(ctx, DA_F64, 4, s4), t, &cfg, rng));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_sp_smooth_loss_op(ctx, x, NULL, &cfg, rng));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_sp_smooth_path_op(ctx, x, NULL, rng));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_set(x, 3, NAN);
    ck_assert_ptr_null(da_sp_smooth_path_op(ctx, x, &cfg, rng));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_sp_smooth_loss_op(ctx, x, t, &cfg, rng));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    int s1[2] = {1, GN};
    ck_assert_ptr_null(da_sp_smooth_solver_op(ctx, da_ctx_tensor(ctx, DA_F64, 2, s1),
                                              NULL, NULL, &cfg, rng));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_sp_smooth_solver_loss_op(ctx, da_ctx_tensor(ctx, DA_F64, 3, s3), t,
                                                   argmin_solver, NULL, &cfg, rng));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    da_ctx_free(ctx);
    da_rng_free(rng);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shortest_path_smooth");
    TCase *tc = tcase_create("shortest_path_smooth");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_smooth_path_closed_form);
    tcase_add_test(tc, test_smooth_path_eps_vec);
    tcase_add_test(tc, test_smooth_loss_closed_form);
    tcase_add_test(tc, test_tensor_faces);
    tcase_add_test(tc, test_generic_solver);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
