/* test_extremes.c - numerical extremes (issue 10): every loss on inputs of 1e30, -1e30,
 * subnormals, huge ranges and ties, and with steepness / temperatures / strengths at the
 * limits its header documents (the sorting networks also on +-1e300, where steepness 1e12
 * gave NaN before their sigmoids clamped an overflowing s (b - a)), gives either DA_OK
 * with finite loss and gradient (and Hessian where there is one), or a clear error
 * (DA_ERANGE, DA_ENAN or DA_ENUMERIC with a message): never a NaN or Inf result with DA_OK.
 * Regression tests under the sanitizer build: the Fisher step at +-1e30 reaches the eigen
 * fallback of the Woodbury solve, whose workspace was B*B doubles short (optim/newton.c). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "suite_run.h"

#define N 5
#define B 3
#define N_INPUTS 9

/* input sets [B][N]: each row mixes the extreme with ordinary values */
static double inputs[N_INPUTS][B * N];
static const char *const input_names[N_INPUTS] = {
    "1e30",        "-1e30",      "+-1e30",      "subnormal",    "tiny mixed",
    "all equal",   "1e30 ties",  "denormal ties", "1e300"};
/* the sorting networks take every input set (their sigmoids clamp an overflowing
 * s (b - a), e.g. steepness 1e12 on +-1e300); the other ranking losses the inputs up to
 * 1e30 */
#define N_RANKING_INPUTS (N_INPUTS - 1)

static void make_inputs(void)
{
    for (int i = 0; i < B * N; i++) {
        double o = sin(1.7 * i + 0.3); /* ordinary values in [-1, 1] */
        inputs[0][i] = i % 2 ? 1e30 * (1 + 0.1 * o) : o;
        inputs[1][i] = i % 3 ? -1e30 * (1 + 0.1 * o) : o;
        inputs[2][i] = (i % 2 ? 1e30 : -1e30) * (1 + 0.1 * o);
        inputs[3][i] = 4.9e-324 * (i % 7);
        inputs[4][i] = i % 2 ? 1e-310 * o : 1e-320;
        inputs[5][i] = 0.25;
        inputs[6][i] = i % 3 ? 1e30 : -1e30;
        inputs[7][i] = i % 2 ? 4.9e-324 : 0;
        inputs[8][i] = (i % 2 ? 1e300 : -1e300) * (1 + 0.1 * o);
    }
}

static const double targets[B * N] = {3, 1, 4, 0, 2, 0, 1, 2, 3, 4, 4, 3, 2, 1, 0};

/* DA_OK with every value finite, or a documented failure with a message */
static void check_result(const char *what, const char *input, int rc, const double *v,
                         long n)
{
    if (rc == DA_OK) {
        for (long i = 0; i < n; i++)
            ck_assert_msg(isfinite(v[i]), "%s on %s: DA_OK but value %ld is %g", what, input,
                          i, v[i]);
        return;
    }
    ck_assert_msg(rc == DA_ERANGE || rc == DA_ENAN || rc == DA_ENUMERIC,
                  "%s on %s: unexpected %s (%s)", what, input, da_status_name(rc),
                  da_last_error());
    ck_assert_msg(da_last_error()[0], "%s on %s: %s without a message", what, input,
                  da_status_name(rc));
}

/* ---------------------------------------------------------------- ranking losses */
static const char *const specs[] = {
    "odd_even:logistic",  "odd_even:logistic_phi", "odd_even:gaussian",
    "odd_even:reciprocal", "odd_even:cauchy",      "odd_even:optimal",
    "bitonic:logistic",    "bitonic:optimal",      "neuralsort",
    "softsort",            "sinkhorn",             "fast_soft_rank:l2",
    "fast_soft_rank:kl"};
/* the documented limits of the spec parser's steepness / tau / epsilon / strength, and the
 * sortnet's art_lambda */
static const char *const limits[] = {"steepness=1e-12", "steepness=1e12", "tau=1e-12",
                                     "tau=1e12",        "epsilon=1e-12",  "epsilon=1e12",
                                     "strength=1e-12",  "strength=1e12",  "art_lambda=0",
                                     "art_lambda=1",    "iterations=1"};

static void check_ranking(const char *spec)
{
    da_ranking *r = da_ranking_new(spec, N);
    ck_assert_msg(r != NULL, "%s: %s", spec, da_last_error());
    int n_inputs = da_ranking_family_of(r) == DA_RANK_SORTNET ? N_INPUTS : N_RANKING_INPUTS;
    for (int k = 0; k < n_inputs; k++) {
        double v[1 + B * N + B * N * N];
        int rc = da_ranking_loss(r, B, inputs[k], targets, v, v + 1);
        check_result(spec, input_names[k], rc, v, 1 + B * N);
        int exact;
        rc = da_ranking_hessian(r, B, inputs[k], targets, v + 1 + B * N, &exact);
        check_result(spec, input_names[k], rc, v + 1 + B * N, B * N * N);
        /* the scores as targets: extreme values in the ground truth as well */
        rc = da_ranking_loss(r, B, targets, inputs[k], v, v + 1);
        check_result(spec, "targets", rc, v, 1 + B * N);
    }
    da_ranking_free(r);
}

START_TEST(ranking_losses_at_extremes)
{
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        check_ranking(specs[s]);
        for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
            char spec[128];
            snprintf(spec, sizeof spec, "%s:%s", specs[s], limits[l]);
            da_clear_error();
            da_ranking *probe = da_ranking_new(spec, N);
            if (!probe) { /* an option of another family */
                ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
                continue;
            }
            da_ranking_free(probe);
            check_ranking(spec);
        }
    }
}
END_TEST

/* ---------------------------------------------------------------- top-k */
START_TEST(topk_at_extremes)
{
    const double steep[3] = {1e-12, 1, 1e12}, p_k[2] = {0.5, 0.5};
    const int labels[B] = {0, 4, 2};
    for (int s = 0; s < 3; s++)
        for (int mode = 0; mode < 3; mode++) {
            da_sortnet *net = da_sortnet_new(DA_SORTNET_BITONIC, N, DA_SIGMOID_LOGISTIC,
                                             steep[s], 0);
            ck_assert_ptr_nonnull(net);
            da_topk_ce_cfg cfg = {net, N, 0, 2, p_k, (da_top1_mode)mode};
            for (int k = 0; k < N_INPUTS; k++) {
                double v[1 + B * N], X[B * N * 2], cot[B * N * 2], gx[B * N];
                for (int i = 0; i < B * N * 2; i++)
                    cot[i] = 0.5 - (i % 3);
                check_result("da_topk_ce_loss", input_names[k],
                             da_topk_ce_loss(&cfg, B, inputs[k], labels, v, v + 1), v,
                             1 + B * N);
                int rc = da_topk(net, 2, B, inputs[k], X, cot, gx);
                check_result("da_topk", input_names[k], rc, X, B * N * 2);
                if (!rc)
                    check_result("da_topk vjp", input_names[k], rc, gx, B * N);
            }
            da_sortnet_free(net);
        }
}
END_TEST

/* ---------------------------------------------------------------- shortest paths */
#define H 3
#define W 4
#define C (B * H * W)

START_TEST(shortest_paths_at_extremes)
{
    static const double scales[5] = {1e30, -1e30, 4.9e-324, 1e-310, 1e300};
    double cost[C], target[C], path[C];
    for (int i = 0; i < H * W; i++)
        cost[i] = 1;
    ck_assert_int_eq(da_sp_dijkstra(1, H, W, cost, path, NULL), DA_OK);
    for (int b = 0; b < B; b++)
        memcpy(target + b * H * W, path, sizeof(double) * H * W);
    da_rng *rng = da_rng_new(11);
    for (int s = 0; s < 5; s++) {
        char name[32];
        snprintf(name, sizeof name, "cost scale %g", scales[s]);
        for (int i = 0; i < C; i++)
            cost[i] = scales[s] * (1 + (i * 5) % 7);
        double v[1 + C], pc[B];
        check_result("da_sp_dijkstra", name, da_sp_dijkstra(B, H, W, cost, path, pc), pc, B);
        const double lambdas[3] = {1e-300, 20, 1e300};
        for (int l = 0; l < 3; l++) {
            da_sp_blackbox_cfg bb = {lambdas[l]};
            check_result("da_sp_blackbox_loss", name,
                         da_sp_blackbox_loss(&bb, B, H, W, cost, target, v, v + 1), v, 1 + C);
        }
        const double betas[3] = {1e-12, 10, 1e12};
        for (int bi = 0; bi < 3; bi++)
            for (int loop = 0; loop < 2; loop++)
                for (int tc = 0; tc < 3; tc++) {
                    da_sp_relaxed_cfg rc = da_sp_relaxed_default(H, W);
                    rc.beta = betas[bi];
                    rc.loop = (da_sp_loop)loop;
                    rc.tconorm = (da_sp_tconorm)tc;
                    rc.max_iter = 64;
                    check_result("da_sp_relaxed_loss", name,
                                 da_sp_relaxed_loss(&rc, B, H, W, cost, target, v, v + 1), v,
                                 1 + C);
                }
        const double sigmas[3] = {1e-300, 1, 1e300};
        for (int si = 0; si < 3; si++)
            for (int noise = 0; noise < 2; noise++) {
                da_sp_perturbed_cfg pc2 = {(da_sp_noise)noise, sigmas[si], 4};
                check_result("da_sp_fy_loss", name,
                             da_sp_fy_loss(&pc2, rng, B, H, W, cost, target, v, v + 1), v,
                             1 + C);
            }
        const double eps[3] = {1e-300, 1, 1e300};
        for (int e = 0; e < 3; e++) {
            da_smooth_cfg sc;
            da_smooth_cfg_default(&sc);
            sc.samples = 8;
            sc.eps = eps[e];
            check_result("da_sp_smooth_loss", name,
                         da_sp_smooth_loss(&sc, rng, B, H, W, cost, target, v, v + 1, NULL), v,
                         1 + C);
        }
    }
    da_rng_free(rng);
}
END_TEST

/* ---------------------------------------------------------------- smoothing, Newton */
static int soft_step(void *user, int n, const double *x, int m, double *y)
{
    y[0] = 0;
    for (int i = 0; i < n; i++)
        y[0] += tanh(x[i]) + (x[i] > 0);
    return DA_OK;
}

START_TEST(smoothing_and_newton_at_extremes)
{
    const double eps[4] = {1e-300, 4.9e-324, 1, 1e300};
    da_rng *rng = da_rng_new(5);
    for (int d = 0; d < DA_DIST_COUNT; d++)
        for (int e = 0; e < 4; e++)
            for (int k = 0; k < N_INPUTS; k++) {
                da_smooth_cfg sc;
                da_smooth_cfg_default(&sc);
                sc.dist = (da_dist)d;
                sc.samples = 16;
                sc.eps = eps[e];
                double v[1 + N + N * N];
                char what[64];
                snprintf(what, sizeof what, "da_smooth_jacobian %s eps %g", da_dist_name(sc.dist),
                         eps[e]);
                check_result(what, input_names[k],
                             da_smooth_jacobian(&sc, soft_step, NULL, N, 1, inputs[k], rng, v,
                                                v + 1), v, 1 + N);
                if (da_dist_smooth2(sc.dist))
                    check_result(what, input_names[k],
                                 da_smooth_hessian(&sc, soft_step, NULL, N, inputs[k], rng, v,
                                                   v + 1, v + 1 + N), v, 1 + N + N * N);
            }
    da_rng_free(rng);

    const double lambdas[4] = {0, 4.9e-324, 1, 1e300};
    for (int k = 0; k < N_INPUTS; k++)
        for (int l = 0; l < 4; l++) {
            double Hs[B * N * N] = {0}, out[2 * B * N];
            for (int b = 0; b < B; b++)
                for (int i = 0; i < N; i++)
                    for (int j = 0; j < N; j++)
                        Hs[(b * N + i) * N + j] = i == j ? 2 + fabs(inputs[k][b * N + i]) : 0.5;
            const double *z = inputs[(k + 1) % N_INPUTS], *g = inputs[k];
            check_result("da_newton_hessian_step", input_names[k],
                         da_newton_hessian_step(B, N, z, g, Hs, lambdas[l], out, out + B * N,
                                                NULL), out, 2 * B * N);
            if (lambdas[l] > 0)
                check_result("da_newton_fisher_step", input_names[k],
                             da_newton_fisher_step(B, N, z, g, lambdas[l], out, out + B * N,
                                                   NULL), out, 2 * B * N);
        }
}
END_TEST

int main(void)
{
    make_inputs();
    Suite *s = suite_create("extremes");
    TCase *tc = tcase_create("extremes");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ranking_losses_at_extremes);
    tcase_add_test(tc, topk_at_extremes);
    tcase_add_test(tc, shortest_paths_at_extremes);
    tcase_add_test(tc, smoothing_and_newton_at_extremes);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
