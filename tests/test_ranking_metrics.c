/* test_ranking_metrics.c - argsort, diffsort's em/ew/em5, Spearman, Kendall tau-b and
 * top-k accuracy against hand-worked examples; error paths. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "suite_run.h"

START_TEST(test_argsort)
{
    double x[7] = {3, 1, 2, 1, -5, 2, 0.5};
    int order[7], scratch[7];
    int want[7] = {4, 6, 1, 3, 2, 5, 0}; /* ties keep index order */
    da_rank_argsort(7, x, order, scratch);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(order[i], want[i]);
    double one = 4;
    da_rank_argsort(1, &one, order, scratch);
    ck_assert_int_eq(order[0], 0);
}
END_TEST

START_TEST(test_ranking_accuracy)
{
    /* sample 0 all right; sample 1 swaps the two largest (elements 4, 5): 4 of 6 ranks
     * right, but its first five elements are in order (em5 counts it); sample 2 swaps the
     * two smallest: 4 of 6 right, em5 wrong; sample 3 swaps elements 3 and 4, so only its
     * first four elements are in order: em5 wrong */
    double targets[24] = {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6,
                          1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6};
    double scores[24] = {10, 20, 30, 40, 50, 60, 1, 2, 3, 4, 6, 5,
                         2,  1,  3,  4,  5,  6,  1, 2, 3, 5, 4, 6};
    da_ranking_acc acc;
    ck_assert_int_eq(da_ranking_accuracy(4, 6, scores, targets, &acc), DA_OK);
    ck_assert_double_eq_tol(acc.em, 1.0 / 4, 1e-15);
    ck_assert_double_eq_tol(acc.ew, 18.0 / 24, 1e-15);
    ck_assert_double_eq_tol(acc.em5, 2.0 / 4, 1e-15);
    /* n < 5: em5 == em */
    double t3[3] = {0.1, 0.3, 0.2}, s3[3] = {5, 7, 6}, s3b[3] = {5, 6, 7};
    ck_assert_int_eq(da_ranking_accuracy(1, 3, s3, t3, &acc), DA_OK);
    ck_assert(acc.em == 1 && acc.ew == 1 && acc.em5 == 1);
    ck_assert_int_eq(da_ranking_accuracy(1, 3, s3b, t3, &acc), DA_OK);
    ck_assert_double_eq(acc.em, 0);
    ck_assert_double_eq(acc.em5, 0);
    ck_assert_double_eq_tol(acc.ew, 1.0 / 3, 1e-15);
}
END_TEST

START_TEST(test_spearman)
{
    double a[5] = {1, 2, 3, 4, 5}, b[5] = {5, 6, 7, 8, 7}, rho;
    /* ranks of b with ties averaged: 0, 1, 2.5, 4, 2.5 -> 8 / sqrt(10 * 9.5) */
    ck_assert_int_eq(da_spearman(1, 5, a, b, &rho), DA_OK);
    ck_assert_double_eq_tol(rho, 8.0 / sqrt(95.0), 1e-14);
    /* no ties: 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - 12/60; batch mean with -1 */
    double u[8] = {1, 2, 3, 4, 0.1, 0.2, 0.3, 0.4}, v[8] = {1, 3, 2, 4, 9, 8, 7, 6};
    ck_assert_int_eq(da_spearman(2, 4, u, v, &rho), DA_OK);
    ck_assert_double_eq_tol(rho, (0.8 - 1.0) / 2, 1e-14);
    double c[3] = {2, 2, 2}, d[3] = {1, 2, 3};
    ck_assert_int_eq(da_spearman(1, 3, c, d, &rho), DA_OK);
    ck_assert_double_eq(rho, 0.0);
}
END_TEST

START_TEST(test_kendall)
{
    double a[4] = {1, 2, 3, 4}, b[4] = {1, 3, 2, 4}, tau;
    ck_assert_int_eq(da_kendall_tau(1, 4, a, b, &tau), DA_OK);
    ck_assert_double_eq_tol(tau, 4.0 / 6.0, 1e-15); /* 5 concordant, 1 discordant */
    double at[4] = {1, 2, 2, 3};                    /* tau-b: 5 / sqrt(5 * 6) */
    ck_assert_int_eq(da_kendall_tau(1, 4, at, a, &tau), DA_OK);
    ck_assert_double_eq_tol(tau, 5.0 / sqrt(30.0), 1e-15);
    double r[8] = {1, 2, 3, 4, 4, 3, 2, 1}, s[8] = {1, 2, 3, 4, 1, 2, 3, 4};
    ck_assert_int_eq(da_kendall_tau(2, 4, r, s, &tau), DA_OK);
    ck_assert_double_eq_tol(tau, 0.0, 1e-15); /* mean of +1 and -1 */
    double c[3] = {2, 2, 2};
    ck_assert_int_eq(da_kendall_tau(1, 3, c, a, &tau), DA_OK);
    ck_assert_double_eq(tau, 0.0);
}
END_TEST

START_TEST(test_topk)
{
    double logits[12] = {0.1, 0.5, 0.2, 0.9, /* label 1 has rank 1 */
                         1, 1, 1, 1,         /* label 2: ties broken by index, rank 2 */
                         3, 0, 0, 0};        /* label 0: rank 0 */
    int labels[3] = {1, 2, 0};
    double want[4] = {1.0 / 3, 2.0 / 3, 1, 1}, acc;
    for (int k = 1; k <= 4; k++) {
        ck_assert_int_eq(da_topk_accuracy(3, 4, logits, labels, k, &acc), DA_OK);
        ck_assert_double_eq_tol(acc, want[k - 1], 1e-15);
    }
}
END_TEST

START_TEST(test_errors)
{
    double a[4] = {1, 2, 3, 4}, bad[4] = {1, NAN, 3, 4}, out;
    da_ranking_acc acc;
    int labels[2] = {0, 1}, bad_labels[2] = {0, 4};
    ck_assert_int_eq(da_ranking_accuracy(1, 4, NULL, a, &acc), DA_EINVAL);
    ck_assert_int_eq(da_ranking_accuracy(1, 4, a, a, NULL), DA_EINVAL);
    ck_assert_int_eq(da_ranking_accuracy(0, 4, a, a, &acc), DA_ERANGE);
    ck_assert_int_eq(da_ranking_accuracy(1, 0, a, a, &acc), DA_ERANGE);
    ck_assert_int_eq(da_ranking_accuracy(1, 4, a, bad, &acc), DA_ENAN);
    ck_assert(strstr(da_last_error(), "da_ranking_accuracy") != NULL);
    ck_assert_int_eq(da_spearman(1, 1, a, a, &out), DA_ERANGE);
    ck_assert_int_eq(da_spearman(1, 4, bad, a, &out), DA_ENAN);
    ck_assert_int_eq(da_kendall_tau(1, 4, a, a, NULL), DA_EINVAL);
    ck_assert_int_eq(da_kendall_tau(1, (1 << 16) + 1, a, a, &out), DA_ERANGE);
    ck_assert_int_eq(da_topk_accuracy(2, 2, a, labels, 0, &out), DA_ERANGE);
    ck_assert_int_eq(da_topk_accuracy(2, 2, a, labels, 3, &out), DA_ERANGE);
    ck_assert_int_eq(da_topk_accuracy(2, 2, a, bad_labels, 1, &out), DA_ERANGE);
    ck_assert_int_eq(da_topk_accuracy(2, 2, bad, labels, 1, &out), DA_ENAN);
    ck_assert_int_eq(da_topk_accuracy(2, 2, a, NULL, 1, &out), DA_EINVAL);
    ck_assert(strstr(da_last_error(), "da_topk_accuracy") != NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ranking_metrics");
    TCase *tc = tcase_create("ranking_metrics");
    tcase_add_test(tc, test_argsort);
    tcase_add_test(tc, test_ranking_accuracy);
    tcase_add_test(tc, test_spearman);
    tcase_add_test(tc, test_kendall);
    tcase_add_test(tc, test_topk);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
