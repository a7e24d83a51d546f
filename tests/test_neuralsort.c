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

/* the entry points with a NULL configuration */
START_TEST(test_null_cfg)
{
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
    const TTest *own[] = {test_two_elements, test_tie_vjp_is_mean, test_null_cfg};
    return rp_run_suite(&ops, own, (int)(sizeof own / sizeof own[0]));
}
