/* test_pav.c - fast soft sort / soft rank (losses/pav.*): the fast-soft-sort references,
 * finite-difference checks of every VJP and of the ranking loss, tensor faces, ties,
 * limits of the regularization strength, error paths. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "pav.h"
#include "refs.h"
#include "suite_run.h"

typedef int (*soft_fn)(int, int, const double *, da_direction, da_regularization, double,
                       double *, const double *, double *);

/* ---- references ---- */

static void check_ref_kind(const char *kind, soft_fn fn)
{
    char **paths;
    int count = ref_list(kind, &paths);
    ck_assert_int_gt(count, 0);
    for (int f = 0; f < count; f++) {
        const char *err = NULL;
        ref_file *r = ref_load(paths[f], &err);
        ck_assert_msg(r != NULL, "%s", err);
        int n = (int)ref_param_num(r, "n", 0);
        const char *dir = ref_param(r, "direction"), *reg = ref_param(r, "regularization");
        double strength = ref_param_num(r, "strength", NAN);
        const ref_tensor *x = ref_get(r, "x"), *out = ref_get(r, "out"), *g = ref_get(r, "g");
        const ref_tensor *vjp = ref_get(r, "vjp_true");
        ck_assert(x && out && g && vjp && dir && reg && n == x->size);
        double *o = malloc((size_t)n * sizeof(double)), *gx = malloc((size_t)n * sizeof(double));
        int rc = fn(1, n, x->data, strcmp(dir, "ASCENDING") ? DA_DESCENDING : DA_ASCENDING,
                    strcmp(reg, "l2") ? DA_REG_KL : DA_REG_L2, strength, o, g->data, gx);
        ck_assert_msg(rc == DA_OK, "%s: %s", paths[f], da_last_error());
        double e_out = ref_err(o, out->data, n), e_vjp = ref_err(gx, vjp->data, n);
        ck_assert_msg(e_out < 1e-9, "%s: out error %g", paths[f], e_out);
        ck_assert_msg(e_vjp < 1e-6, "%s: vjp error %g", paths[f], e_vjp);
        free(o);
        free(gx);
        ref_free(r);
    }
    ref_list_free(paths, count);
}

START_TEST(test_refs_softrank) { check_ref_kind("softrank", da_soft_rank); }
END_TEST

START_TEST(test_refs_softsort) { check_ref_kind("softsort_pav", da_soft_sort); }
END_TEST

/* ---- finite differences of the plain-array VJPs ---- */

/* symmetric relative error of J^T c against central differences of <f(x), c> */
static double fd_error(soft_fn fn, int batch, int n, const double *x0, da_direction dir,
                       da_regularization reg, double strength)
{
    long m = (long)batch * n;
    double *x = malloc(m * sizeof(double)), *c = malloc(m * sizeof(double));
    double *o = malloc(m * sizeof(double)), *g = malloc(m * sizeof(double));
    memcpy(x, x0, m * sizeof(double));
    gc_random(c, m, 99, -1, 1);
    ck_assert_int_eq(fn(batch, n, x, dir, reg, strength, NULL, c, g), DA_OK);
    /* the denominator has a floor of 1e-3: a nonzero VJP here is at least ~0.05 (about
     * 1/strength or a softmax weight), while rows with only singleton PAV blocks have
     * an exactly zero soft-rank VJP and finite differences give pure rounding noise */
    double num = 0, den = 1e-3, h = 1e-6;
    for (long k = 0; k < m; k++) {
        double lp = 0, lm = 0;
        x[k] = x0[k] + h;
        ck_assert_int_eq(fn(batch, n, x, dir, reg, strength, o, NULL, NULL), DA_OK);
        for (long i = 0; i < m; i++)
            lp += o[i] * c[i];
        x[k] = x0[k] - h;
        ck_assert_int_eq(fn(batch, n, x, dir, reg, strength, o, NULL, NULL), DA_OK);
        for (long i = 0; i < m; i++)
            lm += o[i] * c[i];
        x[k] = x0[k];
        double fd = (lp - lm) / (2 * h);
        num = fmax(num, fabs(fd - g[k]));
        den = fmax(den, fmax(fabs(fd), fabs(g[k])));
    }
    free(x);
    free(c);
    free(o);
    free(g);
    return num / den;
}

START_TEST(test_vjp_finite_differences)
{
    static const int ns[] = {2, 5, 17, 48};
    static const double strengths[] = {0.1, 1, 10};
    soft_fn fns[2] = {da_soft_rank, da_soft_sort};
    int checked = 0;
    for (int f = 0; f < 2; f++)
        for (int ni = 0; ni < 4; ni++)
            for (int si = 0; si < 3; si++)
                for (int dir = 0; dir < 2; dir++)
                    for (int reg = 0; reg < 2; reg++) {
                        int batch = 3, n = ns[ni];
                        double x[3 * 48];
                        gc_random(x, batch * n, 7 + ni * 10 + si, -2, 2);
                        double e = fd_error(fns[f], batch, n, x, dir, reg, strengths[si]);
                        ck_assert_msg(e < 1e-6, "%s n=%d s=%g dir=%d reg=%d: fd error %g",
                                      f ? "sort" : "rank", n, strengths[si], dir, reg, e);
                        checked++;
                    }
    ck_assert_int_eq(checked, 96);
}
END_TEST

/* forward-only, VJP-only and both together agree; a batch (large enough to run on
 * several threads) equals its rows one by one */
START_TEST(test_batch_and_null_outputs)
{
    enum { B = 80, N = 33 };
    double x[B * N], c[B * N], o1[B * N], o2[B * N], g1[B * N], g2[B * N];
    gc_random(x, B * N, 3, -3, 3);
    gc_random(c, B * N, 4, -1, 1);
    soft_fn fns[2] = {da_soft_rank, da_soft_sort};
    for (int f = 0; f < 2; f++)
        for (int reg = 0; reg < 2; reg++) {
            ck_assert_int_eq(fns[f](B, N, x, DA_DESCENDING, reg, 0.5, o1, c, g1), DA_OK);
            ck_assert_int_eq(fns[f](B, N, x, DA_DESCENDING, reg, 0.5, NULL, c, g2), DA_OK);
            for (int k = 0; k < B * N; k++)
                ck_assert_double_eq(g1[k], g2[k]);
            for (int b = 0; b < B; b++)
                ck_assert_int_eq(fns[f](1, N, x + b * N, DA_DESCENDING, reg, 0.5, o2 + b * N,
                                        NULL, NULL),
                                 DA_OK);
            for (int k = 0; k < B * N; k++)
                ck_assert_double_eq(o1[k], o2[k]);
        }
}
END_TEST

/* ---- the ranking loss ---- */

START_TEST(test_rank_loss)
{
    enum { B = 4, N = 9 };
    double s[B * N], t[B * N], g[B * N], r[B * N];
    gc_random(s, B * N, 11, -2, 2);
    gc_random(t, B * N, 12, -1, 1);
    for (int reg = 0; reg < 2; reg++) {
        da_fast_soft_rank_cfg cfg = {N, reg, 0.7};
        double loss, lp, lm, h = 1e-6;
        ck_assert_int_eq(da_fast_soft_rank_loss(&cfg, B, s, t, &loss, g), DA_OK);
        /* the definition: mean over batch*n of (soft rank - true 1-based rank)^2 */
        ck_assert_int_eq(da_soft_rank(B, N, s, DA_ASCENDING, reg, 0.7, r, NULL, NULL), DA_OK);
        double direct = 0;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < N; i++) {
                int rank = 1;
                for (int j = 0; j < N; j++)
                    rank += t[b * N + j] < t[b * N + i];
                double e = r[b * N + i] - rank;
                direct += e * e / (B * N);
            }
        ck_assert_double_eq_tol(loss, direct, 1e-12 * direct);
        double num = 0, den = 1e-300;
        for (int k = 0; k < B * N; k++) {
            double s0 = s[k];
            s[k] = s0 + h;
            ck_assert_int_eq(da_fast_soft_rank_loss(&cfg, B, s, t, &lp, NULL), DA_OK);
            s[k] = s0 - h;
            ck_assert_int_eq(da_fast_soft_rank_loss(&cfg, B, s, t, &lm, NULL), DA_OK);
            s[k] = s0;
            double fd = (lp - lm) / (2 * h);
            num = fmax(num, fabs(fd - g[k]));
            den = fmax(den, fmax(fabs(fd), fabs(g[k])));
        }
        ck_assert_double_lt(num / den, 1e-6);
    }
}
END_TEST

/* ---- tensor faces ---- */

typedef struct {
    int sort;
    da_direction dir;
    da_regularization reg;
    double strength;
    const double *targets;
} face_cfg;

static da_tensor *soft_graph(da_ctx *ctx, da_tensor **in, void *user)
{
    const face_cfg *c = user;
    return c->sort ? da_soft_sort_op(ctx, in[0], c->dir, c->reg, c->strength)
                   : da_soft_rank_op(ctx, in[0], c->dir, c->reg, c->strength);
}

static da_tensor *loss_graph(da_ctx *ctx, da_tensor **in, void *user)
{
    const face_cfg *c = user;
    da_fast_soft_rank_cfg cfg = {in[0]->shape[1], c->reg, c->strength};
    return da_fast_soft_rank(ctx, in[0], c->targets, &cfg);
}

START_TEST(test_tensor_faces)
{
    enum { B = 3, N = 7 };
    double x[B * N], t[B * N];
    gc_random(x, B * N, 21, -2, 2);
    gc_random(t, B * N, 22, -2, 2);
    for (int sort = 0; sort < 2; sort++)
        for (int reg = 0; reg < 2; reg++) {
            face_cfg c = {sort, sort ? DA_ASCENDING : DA_DESCENDING, reg, 0.6, t};
            gc_input in2 = {2, {B, N}, x, 1}, in1 = {1, {N}, x, 1};
            ck_assert_double_lt(gc_check(soft_graph, 1, &in2, &c, 1e-6), 1e-6);
            ck_assert_double_lt(gc_check(soft_graph, 1, &in1, &c, 1e-6), 1e-6);
            ck_assert_double_lt(gc_check_f32(soft_graph, 1, &in2, &c), 1e-4);
            ck_assert_double_lt(gc_check(loss_graph, 1, &in2, &c, 1e-6), 1e-6);
            ck_assert_double_lt(gc_check_f32(loss_graph, 1, &in2, &c), 1e-4);
        }
    /* the tensor face gives the plain-array values */
    da_ctx *ctx = da_ctx_new();
    int shape[2] = {B, N};
    da_tensor *xt = da_ctx_tensor_from(ctx, DA_F64, 2, shape, x);
    da_tensor *r = da_soft_rank_op(ctx, xt, DA_ASCENDING, DA_REG_KL, 0.3);
    ck_assert_ptr_nonnull(r);
    double ref[B * N], loss;
    ck_assert_int_eq(da_soft_rank(B, N, x, DA_ASCENDING, DA_REG_KL, 0.3, ref, NULL, NULL), 0);
    for (int k = 0; k < B * N; k++)
        ck_assert_double_eq(da_get(r, k), ref[k]);
    da_fast_soft_rank_cfg cfg = {N, DA_REG_L2, 0.3};
    da_tensor *l = da_fast_soft_rank(ctx, xt, t, &cfg);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(da_fast_soft_rank_loss(&cfg, B, x, t, &loss, NULL), DA_OK);
    ck_assert_double_eq(da_get(l, 0), loss);
    da_ctx_free(ctx);
}
END_TEST

/* ---- ties, equal inputs, limits ---- */

START_TEST(test_ties)
{
    enum { N = 6 };
    double x[N] = {0.5, -1, 0.5, 2, 0.5, -1}, same[N] = {3, 3, 3, 3, 3, 3};
    double o[N], g[N], c[N] = {0.3, -0.2, 0.9, -1.1, 0.4, 0.25};
    soft_fn fns[2] = {da_soft_rank, da_soft_sort};
    for (int f = 0; f < 2; f++)
        for (int reg = 0; reg < 2; reg++)
            for (int dir = 0; dir < 2; dir++) {
                ck_assert_int_eq(fns[f](1, N, x, dir, reg, 0.01, o, c, g), DA_OK);
                ck_assert(da_all_finite(o, N) && da_all_finite(g, N));
                if (f == 0) { /* equal inputs, equal ranks; tied pair ranks average */
                    ck_assert_double_eq_tol(o[0], o[2], 1e-12);
                    ck_assert_double_eq_tol(o[0], o[4], 1e-12);
                    ck_assert_double_eq_tol(o[1], o[5], 1e-12);
                    ck_assert_double_eq_tol(o[1], dir == DA_ASCENDING ? 1.5 : 5.5, 1e-9);
                }
                ck_assert_int_eq(fns[f](1, N, same, dir, reg, 1.0, o, c, g), DA_OK);
                ck_assert(da_all_finite(o, N) && da_all_finite(g, N));
                for (int i = 1; i < N && f == 0; i++)
                    ck_assert_double_eq_tol(o[i], o[0], 1e-12);
            }
}
END_TEST

START_TEST(test_strength_limits)
{
    enum { N = 12 };
    double x[N], o[N], sorted[N];
    gc_random(x, N, 31, -1, 1);
    memcpy(sorted, x, sizeof x);
    for (int i = 1; i < N; i++) /* insertion sort, ascending */
        for (int j = i; j > 0 && sorted[j] < sorted[j - 1]; j--) {
            double t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    for (int reg = 0; reg < 2; reg++) {
        /* strength -> 0: hard ranks and hard sort */
        ck_assert_int_eq(da_soft_rank(1, N, x, DA_ASCENDING, reg, 1e-5, o, NULL, NULL), 0);
        for (int i = 0; i < N; i++) {
            int rank = 1;
            for (int j = 0; j < N; j++)
                rank += x[j] < x[i];
            ck_assert_double_eq_tol(o[i], rank, 1e-8);
        }
        ck_assert_int_eq(da_soft_rank(1, N, x, DA_DESCENDING, reg, 1e-5, o, NULL, NULL), 0);
        for (int i = 0; i < N; i++) {
            int rank = 1;
            for (int j = 0; j < N; j++)
                rank += x[j] > x[i];
            ck_assert_double_eq_tol(o[i], rank, 1e-8);
        }
        ck_assert_int_eq(da_soft_sort(1, N, x, DA_ASCENDING, reg, 1e-5, o, NULL, NULL), 0);
        for (int i = 0; i < N; i++)
            ck_assert_double_eq_tol(o[i], sorted[i], 1e-8);
        ck_assert_int_eq(da_soft_sort(1, N, x, DA_DESCENDING, reg, 1e-5, o, NULL, NULL), 0);
        for (int i = 0; i < N; i++)
            ck_assert_double_eq_tol(o[i], sorted[N - 1 - i], 1e-8);
    }
    /* strength -> inf (L2): every rank tends to the mean rank, every sorted value to the
     * mean value (the distance is O(n / strength)) */
    double mean = 0;
    for (int i = 0; i < N; i++)
        mean += x[i] / N;
    ck_assert_int_eq(da_soft_rank(1, N, x, DA_ASCENDING, DA_REG_L2, 1e9, o, NULL, NULL), 0);
    for (int i = 0; i < N; i++)
        ck_assert_double_eq_tol(o[i], (N + 1) / 2.0, 1e-7);
    ck_assert_int_eq(da_soft_sort(1, N, x, DA_ASCENDING, DA_REG_L2, 1e9, o, NULL, NULL), 0);
    for (int i = 0; i < N; i++)
        ck_assert_double_eq_tol(o[i], mean, 1e-7);
}
END_TEST

/* ---- errors ---- */

START_TEST(test_errors)
{
    double x[4] = {1, 2, 3, 4}, o[4], c[4] = {1, 1, 1, 1}, g[4];
    double bad[4] = {1, NAN, 3, 4}, inf[4] = {1, 2, INFINITY, 4}, badc[4] = {0, 0, NAN, 0};
    soft_fn fns[2] = {da_soft_rank, da_soft_sort};
    for (int f = 0; f < 2; f++) {
        soft_fn fn = fns[f];
        ck_assert_int_eq(fn(1, 4, x, DA_ASCENDING, DA_REG_L2, 0, o, NULL, NULL), DA_ERANGE);
        ck_assert(strstr(da_last_error(), "strength") != NULL);
        ck_assert_int_eq(fn(1, 4, x, DA_ASCENDING, DA_REG_L2, -1, o, NULL, NULL), DA_ERANGE);
        ck_assert_int_eq(fn(1, 4, x, DA_ASCENDING, DA_REG_L2, INFINITY, o, NULL, NULL),
                         DA_ERANGE);
        ck_assert_int_eq(fn(1, 4, x, DA_ASCENDING, DA_REG_L2, NAN, o, NULL, NULL), DA_ENAN);
        ck_assert_int_eq(fn(1, 1, x, DA_ASCENDING, DA_REG_L2, 1, o, NULL, NULL), DA_ERANGE);
        ck_assert_int_eq(fn(1, DA_PAV_MAX_N + 1, x, DA_ASCENDING, DA_REG_L2, 1, o, NULL, NULL),
                         DA_ERANGE);
        ck_assert_int_eq(fn(0, 4, x, DA_ASCENDING, DA_REG_L2, 1, o, NULL, NULL), DA_ERANGE);
        ck_assert_int_eq(fn(1, 4, x, (da_direction)5, DA_REG_L2, 1, o, NULL, NULL), DA_EINVAL);
        ck_assert_int_eq(fn(1, 4, x, DA_ASCENDING, (da_regularization)9, 1, o, NULL, NULL),
                         DA_EINVAL);
        ck_assert_int_eq(fn(1, 4, NULL, DA_ASCENDING, DA_REG_L2, 1, o, NULL, NULL), DA_EINVAL);
        ck_assert_int_eq(fn(1, 4, x, DA_ASCENDING, DA_REG_L2, 1, NULL, NULL, NULL), DA_EINVAL);
        ck_assert_int_eq(fn(1, 4, x, DA_ASCENDING, DA_REG_L2, 1, o, c, NULL), DA_EINVAL);
        ck_assert_int_eq(fn(1, 4, x, DA_ASCENDING, DA_REG_L2, 1, o, NULL, g), DA_EINVAL);
        ck_assert_int_eq(fn(1, 4, bad, DA_ASCENDING, DA_REG_KL, 1, o, NULL, NULL), DA_ENAN);
        ck_assert_int_eq(fn(1, 4, inf, DA_ASCENDING, DA_REG_KL, 1, o, NULL, NULL), DA_ENAN);
        ck_assert_int_eq(fn(1, 4, x, DA_ASCENDING, DA_REG_KL, 1, o, badc, g), DA_ENAN);
        double huge[4] = {1e300, 0, 1, 2};
        ck_assert_int_eq(fn(1, 4, huge, DA_ASCENDING, DA_REG_L2, 1e-10, o, NULL, NULL),
                         DA_ERANGE);
    }
    da_fast_soft_rank_cfg cfg = {4, DA_REG_L2, 1}, bad_cfg = {4, DA_REG_L2, -2};
    double loss, t[4] = {4, 3, 2, 1}, tn[4] = {4, NAN, 2, 1};
    ck_assert_int_eq(da_fast_soft_rank_loss(NULL, 1, x, t, &loss, g), DA_EINVAL);
    ck_assert_int_eq(da_fast_soft_rank_loss(&bad_cfg, 1, x, t, &loss, g), DA_ERANGE);
    ck_assert_int_eq(da_fast_soft_rank_loss(&cfg, 1, x, NULL, &loss, g), DA_EINVAL);
    ck_assert_int_eq(da_fast_soft_rank_loss(&cfg, 1, x, t, NULL, g), DA_EINVAL);
    ck_assert_int_eq(da_fast_soft_rank_loss(&cfg, 1, x, tn, &loss, g), DA_ENAN);
    ck_assert_int_eq(da_fast_soft_rank_loss(&cfg, 1, x, t, &loss, g), DA_OK);
    ck_assert_double_gt(loss, 0);

    da_ctx *ctx = da_ctx_new();
    int s1[1] = {4}, s3[3] = {1, 2, 2}, s2[2] = {1, 4};
    da_tensor *xt = da_ctx_tensor_from(ctx, DA_F64, 1, s1, x);
    da_tensor *x3 = da_ctx_tensor(ctx, DA_F64, 3, s3);
    da_tensor *xn = da_ctx_tensor_from(ctx, DA_F64, 1, s1, bad);
    ck_assert_ptr_null(da_soft_rank_op(NULL, xt, DA_ASCENDING, DA_REG_L2, 1));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_soft_sort_op(ctx, x3, DA_ASCENDING, DA_REG_L2, 1));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_soft_sort_op(ctx, xt, DA_ASCENDING, DA_REG_L2, 0));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_soft_sort_op(ctx, xn, DA_ASCENDING, DA_REG_L2, 1));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    da_tensor *x2 = da_ctx_tensor_from(ctx, DA_F64, 2, s2, x);
    da_fast_soft_rank_cfg cfg5 = {5, DA_REG_L2, 1};
    ck_assert_ptr_null(da_fast_soft_rank(ctx, x2, t, &cfg5));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_fast_soft_rank(ctx, xt, t, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_fast_soft_rank(ctx, x2, NULL, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_nonnull(da_fast_soft_rank(ctx, x2, t, &cfg));
    da_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pav");
    TCase *tc = tcase_create("pav");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_refs_softrank);
    tcase_add_test(tc, test_refs_softsort);
    tcase_add_test(tc, test_vjp_finite_differences);
    tcase_add_test(tc, test_batch_and_null_outputs);
    tcase_add_test(tc, test_rank_loss);
    tcase_add_test(tc, test_tensor_faces);
    tcase_add_test(tc, test_ties);
    tcase_add_test(tc, test_strength_limits);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
