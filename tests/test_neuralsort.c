/* test_neuralsort.c - NeuralSort: refs, VJP/loss/Hessian against finite differences,
 * tensor faces (gc_check, f32), determinism, ties, errors (checks in relperm_check.c). */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "relperm_check.h"

static int ns_apply(int n, double tau, int batch, const double *x, double *P, const double *cot,
                    double *grad_x)
{
    da_neuralsort_cfg cfg = {n, tau};
    return da_neuralsort_apply(&cfg, batch, x, P, cot, grad_x);
}

static int ns_loss(int n, double tau, int batch, const double *x, const double *targets,
                   double *loss, double *grad)
{
    da_neuralsort_cfg cfg = {n, tau};
    return da_neuralsort_loss(&cfg, batch, x, targets, loss, grad);
}

static int ns_hessian(int n, double tau, int batch, const double *x, const double *targets,
                      double *H)
{
    da_neuralsort_cfg cfg = {n, tau};
    return da_neuralsort_hessian(&cfg, batch, x, targets, H);
}

static da_tensor *ns_loss_op(da_ctx *ctx, da_tensor *scores, const double *targets, int n,
                             double tau)
{
    da_neuralsort_cfg cfg = {n, tau};
    return da_neuralsort(ctx, scores, targets, &cfg);
}

static da_tensor *ns_perm_op(da_ctx *ctx, da_tensor *scores, int n, double tau)
{
    da_neuralsort_cfg cfg = {n, tau};
    return da_neuralsort_perm(ctx, scores, &cfg);
}

static const rp_ops ops = {"da_neuralsort", "neuralsort", 0,       DA_NEURALSORT_MAX_N,
                           ns_apply,        ns_loss,      ns_hessian, ns_loss_op,
                           ns_perm_op};

START_TEST(test_refs)
{
    rp_check_refs(&ops);
}
END_TEST

/* n = 2 by hand: column 0 puts sigmoid((x1 - x0)/tau) on input 0 (a logistic swap) */
START_TEST(test_two_elements)
{
    double x[2] = {0.3, -0.5}, P[4];
    ck_assert_int_eq(ns_apply(2, 0.5, 1, x, P, NULL, NULL), DA_OK);
    double s = 1.0 / (1.0 + exp(1.6));
    ck_assert_double_eq_tol(P[0], s, 1e-15);
    ck_assert_double_eq_tol(P[2], 1 - s, 1e-15);
    ck_assert_double_eq_tol(P[1], 1 - s, 1e-15);
    ck_assert_double_eq_tol(P[3], s, 1e-15);
}
END_TEST

/* at a tied pair the VJP is linear in sign(x_a - x_b), so sign(0) = 0 gives the mean of
 * the VJPs just above and just below the tie (checks the tie groups of the O(n) sums) */
START_TEST(test_tie_vjp_is_mean)
{
    double x[5] = {0.3, -1, 0.3, 0.9, 2}, W[25], P[25], g[3][5];
    gc_random(W, 25, 5, -1, 1);
    for (int s = 0; s < 3; s++) {
        double xs[5] = {x[0], x[1], x[2] + (s == 1 ? 1e-9 : s == 2 ? -1e-9 : 0), x[3], x[4]};
        ck_assert_int_eq(ns_apply(5, 0.5, 1, xs, P, W, g[s]), DA_OK);
    }
    double gap = 0;
    for (int i = 0; i < 5; i++) {
        ck_assert_double_eq_tol(g[0][i], 0.5 * (g[1][i] + g[2][i]), 1e-7);
        gap = fmax(gap, fabs(g[1][i] - g[2][i]));
    }
    ck_assert_double_gt(gap, 0.1); /* the one-sided VJPs really differ */
}
END_TEST

START_TEST(test_vjp_fd)
{
    rp_check_vjp_fd(&ops, 2, 1.0, 3);
    rp_check_vjp_fd(&ops, 5, 0.1, 3);
    rp_check_vjp_fd(&ops, 8, 0.5, 2);
    rp_check_vjp_fd(&ops, 16, 2.0, 2);
}
END_TEST

START_TEST(test_loss)
{
    rp_check_loss(&ops, 5, 0.1, 3);
    rp_check_loss(&ops, 8, 1.0, 2);
    rp_check_loss(&ops, 16, 0.5, 2);
    /* one block of columns (n span / tau <= 150), a few blocks, one column per block */
    static const int ns[] = {2, 3, 7, 64, 64, 64, 200, 300};
    static const double taus[] = {1.0, 0.05, 0.3, 2.0, 0.2, 0.01, 1.0, 3.0};
    for (int c = 0; c < 8; c++)
        rp_check_loss_vs_operator(&ops, ns[c], taus[c], 3, 0.3);
}
END_TEST

START_TEST(test_hessian)
{
    rp_check_hessian(&ops, 5, 1.0, 3);
    rp_check_hessian(&ops, 8, 0.7, 2);
    rp_check_hessian(&ops, 4, 0.2, 1);
}
END_TEST

START_TEST(test_tensor_faces)
{
    rp_check_tensor_faces(&ops, 5, 1.0, 3);
    rp_check_tensor_faces(&ops, 8, 0.3, 2);
}
END_TEST

START_TEST(test_batch_consistency)
{
    rp_check_batch_consistency(&ops, 12, 0.5, 40);
}
END_TEST

START_TEST(test_ties)
{
    rp_check_ties(&ops);
}
END_TEST

START_TEST(test_errors)
{
    rp_check_errors(&ops);
    double x[3] = {0, 1, 2}, P[9], loss;
    ck_assert_int_eq(da_neuralsort_apply(NULL, 1, x, P, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_neuralsort_loss(NULL, 1, x, x, &loss, NULL), DA_EINVAL);
    ck_assert_int_eq(da_neuralsort_hessian(NULL, 1, x, x, P), DA_EINVAL);
    da_ctx *ctx = da_ctx_new();
    int shape[2] = {1, 3};
    da_tensor *s = da_ctx_tensor_from(ctx, DA_F64, 2, shape, x);
    ck_assert_ptr_null(da_neuralsort(ctx, s, x, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_neuralsort_perm(ctx, s, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("neuralsort");
    TCase *tc = tcase_create("neuralsort");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_refs);
    tcase_add_test(tc, test_two_elements);
    tcase_add_test(tc, test_tie_vjp_is_mean);
    tcase_add_test(tc, test_vjp_fd);
    tcase_add_test(tc, test_loss);
    tcase_add_test(tc, test_hessian);
    tcase_add_test(tc, test_tensor_faces);
    tcase_add_test(tc, test_batch_consistency);
    tcase_add_test(tc, test_ties);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
