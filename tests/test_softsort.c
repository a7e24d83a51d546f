/* test_softsort.c - SoftSort: refs (converted from the descending-row layout), VJP/loss/
 * Hessian against finite differences, tensor faces (gc_check, f32), determinism, ties,
 * errors (checks in relperm_check.c), and the orientation conversion. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "relperm_check.h"

static int ss_apply(int n, double tau, int batch, const double *x, double *P, const double *cot,
                    double *grad_x)
{
    da_softsort_cfg cfg = {n, tau};
    return da_softsort_apply(&cfg, batch, x, P, cot, grad_x);
}

static int ss_loss(int n, double tau, int batch, const double *x, const double *targets,
                   double *loss, double *grad)
{
    da_softsort_cfg cfg = {n, tau};
    return da_softsort_loss(&cfg, batch, x, targets, loss, grad);
}

static int ss_hessian(int n, double tau, int batch, const double *x, const double *targets,
                      double *H)
{
    da_softsort_cfg cfg = {n, tau};
    return da_softsort_hessian(&cfg, batch, x, targets, H);
}

static da_tensor *ss_loss_op(da_ctx *ctx, da_tensor *scores, const double *targets, int n,
                             double tau)
{
    da_softsort_cfg cfg = {n, tau};
    return da_softsort(ctx, scores, targets, &cfg);
}

static da_tensor *ss_perm_op(da_ctx *ctx, da_tensor *scores, int n, double tau)
{
    da_softsort_cfg cfg = {n, tau};
    return da_softsort_perm(ctx, scores, &cfg);
}

static const rp_ops ops = {"da_softsort", "softsort", 1,          DA_SOFTSORT_MAX_N,
                           ss_apply,      ss_loss,    ss_hessian, ss_loss_op,
                           ss_perm_op};

START_TEST(test_refs)
{
    rp_check_refs(&ops);
}
END_TEST

/* by hand: n = 2 is the logistic swap; n = 3 columns are softmax(-|x - a_j| / tau) */
START_TEST(test_small_by_hand)
{
    double x2[2] = {0.3, -0.5}, P2[4];
    ck_assert_int_eq(ss_apply(2, 0.5, 1, x2, P2, NULL, NULL), DA_OK);
    double s = 1.0 / (1.0 + exp(1.6));
    ck_assert_double_eq_tol(P2[0], s, 1e-15);
    ck_assert_double_eq_tol(P2[1], 1 - s, 1e-15);
    double x3[3] = {2.0, 0.0, 1.0}, P3[9];
    ck_assert_int_eq(ss_apply(3, 1.0, 1, x3, P3, NULL, NULL), DA_OK);
    /* column 0 (a_0 = 0): weights exp(-2), exp(0), exp(-1) on inputs 0, 1, 2 */
    double z = exp(-2.0) + 1.0 + exp(-1.0);
    ck_assert_double_eq_tol(P3[0 * 3 + 0], exp(-2.0) / z, 1e-15);
    ck_assert_double_eq_tol(P3[1 * 3 + 0], 1.0 / z, 1e-15);
    ck_assert_double_eq_tol(P3[2 * 3 + 0], exp(-1.0) / z, 1e-15);
    /* column 1 (a_1 = 1): exp(-1), exp(-1), exp(0) */
    z = 2 * exp(-1.0) + 1.0;
    ck_assert_double_eq_tol(P3[2 * 3 + 1], 1.0 / z, 1e-15);
    ck_assert_double_eq_tol(P3[0 * 3 + 1], exp(-1.0) / z, 1e-15);
}
END_TEST

START_TEST(test_orientation)
{
    /* Q (descending rows) -> P: P[i][j] = Q[n-1-j][i], and back */
    double Q[2 * 9], P[2 * 9], back[2 * 9];
    gc_random(Q, 18, 42, 0, 1);
    ck_assert_int_eq(da_perm_desc_rows_to_diffalg(2, 3, Q, P), DA_OK);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                ck_assert_double_eq(P[b * 9 + i * 3 + j], Q[b * 9 + (2 - j) * 3 + i]);
    ck_assert_int_eq(da_perm_diffalg_to_desc_rows(2, 3, P, back), DA_OK);
    for (int k = 0; k < 18; k++)
        ck_assert_double_eq(back[k], Q[k]);
    /* a SoftSort P converted back is row-stochastic with row 0 on the largest input */
    double x[3] = {0.2, 1.7, -0.4}, Ps[9], Qs[9];
    ck_assert_int_eq(ss_apply(3, 0.1, 1, x, Ps, NULL, NULL), DA_OK);
    ck_assert_int_eq(da_perm_diffalg_to_desc_rows(1, 3, Ps, Qs), DA_OK);
    for (int r = 0; r < 3; r++)
        ck_assert_double_eq_tol(Qs[r * 3] + Qs[r * 3 + 1] + Qs[r * 3 + 2], 1.0, 1e-14);
    ck_assert_double_gt(Qs[0 * 3 + 1], 0.99);
    ck_assert_double_gt(Qs[2 * 3 + 2], 0.99);
    /* errors */
    ck_assert_int_eq(da_perm_desc_rows_to_diffalg(1, 3, Q, Q), DA_EINVAL);
    ck_assert_int_eq(da_perm_desc_rows_to_diffalg(1, 3, NULL, P), DA_EINVAL);
    ck_assert_int_eq(da_perm_diffalg_to_desc_rows(0, 3, Q, P), DA_ERANGE);
    ck_assert_int_eq(da_perm_diffalg_to_desc_rows(1, 0, Q, P), DA_ERANGE);
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
    ck_assert_int_eq(da_softsort_apply(NULL, 1, x, P, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_softsort_loss(NULL, 1, x, x, &loss, NULL), DA_EINVAL);
    ck_assert_int_eq(da_softsort_hessian(NULL, 1, x, x, P), DA_EINVAL);
    da_ctx *ctx = da_ctx_new();
    int shape[2] = {1, 3};
    da_tensor *s = da_ctx_tensor_from(ctx, DA_F64, 2, shape, x);
    ck_assert_ptr_null(da_softsort(ctx, s, x, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_softsort_perm(ctx, s, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("softsort");
    TCase *tc = tcase_create("softsort");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_refs);
    tcase_add_test(tc, test_small_by_hand);
    tcase_add_test(tc, test_orientation);
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
