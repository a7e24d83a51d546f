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

/* the entry points with a NULL configuration */
START_TEST(test_null_cfg)
{
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
    const TTest *own[] = {test_small_by_hand, test_orientation, test_null_cfg};
    return rp_run_suite(&ops, own, (int)(sizeof own / sizeof own[0]));
}
