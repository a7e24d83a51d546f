/* test_ranking.c - ranking losses by name: parsing, dispatch, Hessians, tensor face. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "suite_run.h"

static const char *const specs[] = {
    "odd_even", "odd_even:logistic:steepness=5", "bitonic:logistic_phi:art_lambda=0.5",
    "odd_even:optimal", "neuralsort:tau=0.5", "softsort", "sinkhorn:epsilon=0.2:iterations=30",
    "fast_soft_rank:kl:strength=0.5", "fast_soft_rank"};
#define N_SPECS ((int)(sizeof specs / sizeof specs[0]))

START_TEST(test_parse)
{
    da_ranking *r = da_ranking_new("odd_even", 5);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(da_ranking_spec(r), "odd_even:cauchy:steepness=10:art_lambda=0.25");
    ck_assert_int_eq(da_ranking_family_of(r), DA_RANK_SORTNET);
    da_ranking_free(r);
    r = da_ranking_new("fast_soft_rank:kl", 4);
    ck_assert_str_eq(da_ranking_spec(r), "fast_soft_rank:kl:strength=1");
    da_ranking_free(r);
    /* the canonical spec parses back to itself */
    for (int i = 0; i < N_SPECS; i++) {
        r = da_ranking_new(specs[i], 6);
        ck_assert_msg(r != NULL, "%s: %s", specs[i], da_last_error());
        da_ranking *again = da_ranking_new(da_ranking_spec(r), 6);
        ck_assert_ptr_nonnull(again);
        ck_assert_str_eq(da_ranking_spec(again), da_ranking_spec(r));
        da_ranking_free(again);
        da_ranking_free(r);
    }
    ck_assert_ptr_null(da_ranking_new("quicksort", 5));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_ranking_new("odd_even:sigmoidal", 5));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_ranking_new("neuralsort:tau=-1", 5));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_ranking_new("neuralsort:tau=abc", 5));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_ranking_new("softsort", 1));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_ranking_new(NULL, 5));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ranking_free(NULL);
}
END_TEST

/* dispatch: the plain face equals the family's own function; the gradient matches
   central differences; the tensor face equals the plain face in F64 and F32 */
START_TEST(test_loss_dispatch)
{
    enum { B = 3, n = 5 };
    double x[B * n], t[B * n], g[B * n], xp[B * n], loss, lp, lm;
    gc_random(x, B * n, 1, -2, 2);
    gc_random(t, B * n, 2, -2, 2);
    for (int i = 0; i < N_SPECS; i++) {
        da_ranking *r = da_ranking_new(specs[i], n);
        ck_assert_int_eq(da_ranking_loss(r, B, x, t, &loss, g), DA_OK);
        ck_assert(isfinite(loss));
        /* the best of three steps: BCE cancels in 1 - P, so no single step suits all */
        double best = INFINITY, den = 1e-300;
        for (double h = 1e-3; h > 1e-6; h /= 10) {
            double num = 0;
            for (int k = 0; k < B * n; k++) {
                memcpy(xp, x, sizeof xp);
                xp[k] = x[k] + h;
                da_ranking_loss(r, B, xp, t, &lp, NULL);
                xp[k] = x[k] - h;
                da_ranking_loss(r, B, xp, t, &lm, NULL);
                double fd = (lp - lm) / (2 * h);
                num = fmax(num, fabs(fd - g[k]));
                den = fmax(den, fmax(fabs(fd), fabs(g[k])));
            }
            best = fmin(best, num / den);
        }
        ck_assert_msg(best < 1e-6, "%s: gradient error %g", specs[i], best);
        for (int dt = 0; dt <= 1; dt++) {
            da_ctx *ctx = da_ctx_new();
            int shape[2] = {B, n};
            da_tensor *s = da_ctx_tensor_from(ctx, dt ? DA_F64 : DA_F32, 2, shape, x);
            s->requires_grad = 1;
            da_tensor *l = da_ranking_loss_op(ctx, r, s, t);
            ck_assert_msg(l != NULL, "%s: %s", specs[i], da_last_error());
            ck_assert_int_eq(da_backward(ctx, l), DA_OK);
            double tol = dt ? 1e-12 : 1e-4;
            ck_assert_double_eq_tol(da_get(l, 0), loss, tol * fmax(1, fabs(loss)));
            for (int k = 0; k < B * n; k++)
                ck_assert_double_eq_tol(da_get_grad(s, k), g[k], tol * fmax(1, den));
            da_ctx_free(ctx);
        }
        da_ranking_free(r);
    }
}
END_TEST

/* Hessians: symmetric, equal to central differences of the gradient (exact families
   too), and the exact flag */
START_TEST(test_hessian)
{
    enum { B = 2, n = 4 };
    double x[B * n], t[B * n], H[B * n * n], gp[B * n], gm[B * n], xp[B * n], loss;
    gc_random(x, B * n, 3, -1, 1);
    gc_random(t, B * n, 4, -1, 1);
    for (int i = 0; i < N_SPECS; i++) {
        da_ranking *r = da_ranking_new(specs[i], n);
        int exact = -1;
        ck_assert_int_eq(da_ranking_hessian(r, B, x, t, H, &exact), DA_OK);
        ck_assert_int_eq(exact, da_ranking_family_of(r) <= DA_RANK_SOFTSORT);
        double num = 0, den = 1e-300;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < n; j++) {
                memcpy(xp, x, sizeof xp);
                xp[b * n + j] = x[b * n + j] + 1e-5;
                da_ranking_loss(r, B, xp, t, &loss, gp);
                xp[b * n + j] = x[b * n + j] - 1e-5;
                da_ranking_loss(r, B, xp, t, &loss, gm);
                for (int k = 0; k < n; k++) {
                    double fd = (gp[b * n + k] - gm[b * n + k]) / 2e-5;
                    double h = H[(b * n + k) * n + j];
                    num = fmax(num, fabs(fd - h));
                    den = fmax(den, fabs(h));
                    ck_assert_double_eq_tol(h, H[(b * n + j) * n + k], 1e-9 * fmax(1, fabs(h)));
                }
            }
        ck_assert_msg(num / den < 1e-5, "%s: Hessian error %g", specs[i], num / den);
        da_ranking_free(r);
    }
}
END_TEST

START_TEST(test_errors)
{
    double x[4] = {0, 1, NAN, 2}, t[4] = {0, 1, 2, 3}, loss, H[16];
    da_ranking *r = da_ranking_new("neuralsort", 4);
    ck_assert_int_eq(da_ranking_loss(r, 1, x, t, &loss, NULL), DA_ENAN);
    ck_assert_int_eq(da_ranking_loss(NULL, 1, x, t, &loss, NULL), DA_EINVAL);
    ck_assert_int_eq(da_ranking_hessian(r, 1, x, t, NULL, NULL), DA_EINVAL);
    x[2] = 1.5;
    ck_assert_int_eq(da_ranking_hessian(r, 1, x, t, H, NULL), DA_OK);
    da_ctx *ctx = da_ctx_new();
    ck_assert_ptr_null(da_ranking_loss_op(ctx, r, NULL, t));
    int shape[2] = {1, 4};
    da_tensor *s = da_ctx_tensor_from(ctx, DA_F64, 2, shape, x);
    ck_assert_ptr_null(da_ranking_loss_op(ctx, r, s, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
    da_ranking_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ranking");
    TCase *tc = tcase_create("ranking");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_loss_dispatch);
    tcase_add_test(tc, test_hessian);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
