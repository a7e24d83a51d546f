/* test_ops_reduce.c - da_sum, da_mean, da_max, da_logsumexp, da_softmax, da_log_softmax:
 * finite-difference (F64) and F32-vs-F64 gradient checks over every axis (negative
 * too), DA_ALL_AXES and keepdim; forward values and gradients against a direct
 * computation (small and OpenMP-sized, same bits on 1 and 2 threads); the first-max
 * convention; stability for large inputs; NaN and error paths. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "ops_check.h"
#include "suite_run.h"

enum { OP_SUM, OP_MEAN, OP_MAX, OP_LSE, OP_SOFTMAX, OP_LOG_SOFTMAX, N_OPS };
static const char *const op_name[N_OPS] = {"sum", "mean", "max", "logsumexp", "softmax",
                                           "log_softmax"};

static int is_softmax(int op) { return op == OP_SOFTMAX || op == OP_LOG_SOFTMAX; }

static da_tensor *apply(da_ctx *ctx, int op, da_tensor *x, int axis, int keepdim)
{
    switch (op) {
    case OP_SUM: return da_sum(ctx, x, axis, keepdim);
    case OP_MEAN: return da_mean(ctx, x, axis, keepdim);
    case OP_MAX: return da_max(ctx, x, axis, keepdim);
    case OP_LSE: return da_logsumexp(ctx, x, axis, keepdim);
    case OP_SOFTMAX: return da_softmax(ctx, x, axis);
    default: return da_log_softmax(ctx, x, axis);
    }
}

/* ---- a direct reference, by multi-indices ---- */

/* the reduced row holding element i: its coordinates without the axis (ax < 0: all) */
static long row_of(int ndim, const int *shape, int ax, long i)
{
    long row = 0, stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        long c = i % shape[d];
        i /= shape[d];
        if (ax >= 0 && d != ax) {
            row += c * stride;
            stride *= shape[d];
        }
    }
    return row;
}

/* reference forward into out (rows values for reductions, size for softmax); also the
 * per-row logsumexp and first argmax (element index) when asked */
static void reference(int op, int ndim, const int *shape, int ax, const double *x, double *out,
                      double *lse, long *argmax)
{
    long size = shape_size(ndim, shape), n = ax < 0 ? size : shape[ax], rows = size / n;
    double *m = malloc(rows * sizeof *m), *s = calloc(rows, sizeof *s);
    for (long r = 0; r < rows; r++)
        m[r] = -INFINITY, argmax[r] = -1;
    for (long i = 0; i < size; i++) {
        long r = row_of(ndim, shape, ax, i);
        if (argmax[r] < 0 || x[i] > m[r])
            m[r] = x[i], argmax[r] = i;
        s[r] += x[i];
    }
    for (long r = 0; r < rows; r++)
        lse[r] = 0;
    for (long i = 0; i < size; i++) {
        long r = row_of(ndim, shape, ax, i);
        lse[r] += exp(x[i] - m[r]);
    }
    for (long r = 0; r < rows; r++) {
        lse[r] = m[r] + log(lse[r]);
        if (op == OP_SUM || op == OP_MEAN)
            out[r] = op == OP_MEAN ? s[r] / n : s[r];
        else if (op == OP_MAX || op == OP_LSE)
            out[r] = op == OP_MAX ? m[r] : lse[r];
    }
    if (is_softmax(op))
        for (long i = 0; i < size; i++) {
            double l = x[i] - lse[row_of(ndim, shape, ax, i)];
            out[i] = op == OP_SOFTMAX ? exp(l) : l;
        }
    free(m);
    free(s);
}

/* reference gradient of sum(out * cot) with respect to x */
static void reference_grad(int op, int ndim, const int *shape, int ax, const double *x,
                           const double *cot, double *gx)
{
    long size = shape_size(ndim, shape), n = ax < 0 ? size : shape[ax], rows = size / n;
    double *out = malloc(size * sizeof *out), *lse = malloc(rows * sizeof *lse);
    double *dot = calloc(rows, sizeof *dot);
    long *am = malloc(rows * sizeof *am);
    reference(op, ndim, shape, ax, x, out, lse, am);
    for (long i = 0; i < size; i++) { /* sum_k g_k y_k (softmax), sum_k g_k (log-softmax) */
        long r = row_of(ndim, shape, ax, i);
        dot[r] += op == OP_SOFTMAX ? cot[i] * out[i] : op == OP_LOG_SOFTMAX ? cot[i] : 0;
    }
    for (long i = 0; i < size; i++) {
        long r = row_of(ndim, shape, ax, i);
        double p = exp(x[i] - lse[r]);
        switch (op) {
        case OP_SUM: gx[i] = cot[r]; break;
        case OP_MEAN: gx[i] = cot[r] / n; break;
        case OP_MAX: gx[i] = am[r] == i ? cot[r] : 0; break;
        case OP_LSE: gx[i] = cot[r] * p; break;
        case OP_SOFTMAX: gx[i] = out[i] * (cot[i] - dot[r]); break;
        default: gx[i] = cot[i] - p * dot[r]; break;
        }
    }
    free(out);
    free(lse);
    free(dot);
    free(am);
}

/* distinct values (multiples of 0.1 in a seeded order): no ties for max, even under FD */
static void distinct_values(double *x, long n, unsigned long seed)
{
    double shift;
    gc_random(&shift, 1, seed, -0.05, 0.05);
    for (long i = 0; i < n; i++)
        x[i] = 0.1 * (double)((i * 7919 + (long)seed) % n) - 0.05 * n + shift;
}

/* ---- the cases ---- */

static const int shapes[][5] = {
    /* ndim, dims */
    {3, 2, 3, 4}, {4, 2, 3, 1, 2}, {1, 5}, {0}, {2, 1, 3},
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

typedef struct {
    int op, axis, keepdim;
} red_case;

static da_tensor *call_red(da_ctx *ctx, da_tensor **in, void *user)
{
    const red_case *c = user;
    return apply(ctx, c->op, in[0], c->axis, c->keepdim);
}

/* expected output shape */
static int expected_shape(int op, int ndim, const int *shape, int ax, int keepdim, int *out)
{
    int nd = 0;
    for (int d = 0; d < ndim; d++)
        if (is_softmax(op) || (ax >= 0 && d != ax))
            out[nd++] = shape[d];
        else if (keepdim)
            out[nd++] = 1;
    return nd;
}

START_TEST(test_gradients_and_forward)
{
    da_ctx *ctx = da_ctx_new();
    double x[64], out[64], lse[64];
    long am[64];
    int checked = 0;
    for (int op = 0; op < N_OPS; op++)
        for (int s = 0; s < N_SHAPES; s++) {
            const int ndim = shapes[s][0], *shape = &shapes[s][1];
            const long size = shape_size(ndim, shape);
            for (int axis = -ndim - 1; axis < ndim; axis++)
                for (int keepdim = 0; keepdim < 2; keepdim++) {
                    red_case c = {op, axis < -ndim ? DA_ALL_AXES : axis, keepdim};
                    int ax = c.axis == DA_ALL_AXES ? -1 : (axis < 0 ? axis + ndim : axis);
                    char what[96];
                    snprintf(what, sizeof what, "%s shape %d axis %d keepdim %d", op_name[op], s,
                             c.axis, keepdim);
                    distinct_values(x, size, 100 + s);
                    gc_input in = {ndim, {0}, x, 1};
                    memcpy(in.shape, shape, ndim * sizeof(int));
                    check_grads(call_red, 1, &in, &c, what);
                    /* forward and shape against the reference */
                    da_ctx_reset(ctx);
                    da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, ndim, shape, x);
                    da_tensor *o = apply(ctx, op, t, c.axis, keepdim);
                    ck_assert_msg(o != NULL, "%s: %s", what, da_last_error());
                    int eshape[4];
                    int end = expected_shape(op, ndim, shape, ax, keepdim, eshape);
                    ck_assert_int_eq(o->ndim, end);
                    for (int d = 0; d < end; d++)
                        ck_assert_int_eq(o->shape[d], eshape[d]);
                    reference(op, ndim, shape, ax, x, out, lse, am);
                    mismatch m = {0};
                    for (long i = 0; i < o->size; i++)
                        expect_near(&m, i, da_get(o, i), out[i], 1e-13 * fmax(1, fabs(out[i])));
                    ASSERT_NO_MISMATCH(m, what);
                    checked++;
                }
        }
    /* per shape: DA_ALL_AXES, ndim negative and ndim non-negative axes; keepdim 0 and 1 */
    ck_assert_int_eq(checked, 2 * N_OPS * (7 + 9 + 3 + 1 + 5));
    da_ctx_free(ctx);
}
END_TEST

/* OpenMP-sized inputs: forward and gradient against the reference on 1 and 2 threads,
 * with the same bits */
static void large_case(int op, int axis, int threads, double *o, double *g)
{
    static const int shape[2] = {300, 200};
    enum { N = 300 * 200 };
    double *x = malloc(N * sizeof *x), *cot = malloc(N * sizeof *cot);
    double *ro = malloc(N * sizeof *ro), *rg = malloc(N * sizeof *rg);
    double *lse = malloc(N * sizeof *lse);
    long *am = malloc(N * sizeof *am);
    gc_random(x, N, 7, -3, 3);
    gc_random(cot, N, 8, -1, 1);
    omp_set_num_threads(threads);
    da_ctx *ctx = da_ctx_new();
    da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 2, shape, x);
    t->requires_grad = 1;
    da_tensor *out = apply(ctx, op, t, axis, 0);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(da_backward_from(ctx, out, cot), DA_OK);
    da_tensor_copy_to(out, o);
    for (long i = 0; i < N; i++)
        g[i] = da_get_grad(t, i);
    const int ax = axis == DA_ALL_AXES ? -1 : (axis + 2) % 2;
    reference(op, 2, shape, ax, x, ro, lse, am);
    reference_grad(op, 2, shape, ax, x, cot, rg);
    mismatch mo = {0}, mg = {0};
    for (long i = 0; i < out->size; i++)
        expect_near(&mo, i, o[i], ro[i], 1e-12 * fmax(1, fabs(ro[i])));
    for (long i = 0; i < N; i++)
        expect_near(&mg, i, g[i], rg[i], 1e-12);
    ASSERT_NO_MISMATCH(mo, op_name[op]);
    ASSERT_NO_MISMATCH(mg, op_name[op]);
    omp_set_num_threads(2);
    da_ctx_free(ctx);
    free(x);
    free(cot);
    free(ro);
    free(rg);
    free(lse);
    free(am);
}

START_TEST(test_large_and_deterministic)
{
    enum { N = 300 * 200 };
    static const int axes[3] = {0, -1, DA_ALL_AXES};
    double *o1 = malloc(N * sizeof *o1), *o2 = malloc(N * sizeof *o2);
    double *g1 = malloc(N * sizeof *g1), *g2 = malloc(N * sizeof *g2);
    for (int op = 0; op < N_OPS; op++)
        for (int k = 0; k < 3; k++) {
            long n_out = is_softmax(op) ? N : axes[k] == DA_ALL_AXES ? 1 : axes[k] == 0 ? 200 : 300;
            large_case(op, axes[k], 1, o1, g1);
            large_case(op, axes[k], 2, o2, g2);
            ck_assert_msg(memcmp(o1, o2, n_out * sizeof *o1) == 0, "%s axis %d", op_name[op],
                          axes[k]);
            ck_assert_msg(memcmp(g1, g2, N * sizeof *g1) == 0, "%s axis %d", op_name[op], axes[k]);
        }
    free(o1);
    free(o2);
    free(g1);
    free(g2);
}
END_TEST

/* a long sum in both dtypes (double accumulation) against a careful sum */
START_TEST(test_long_sum)
{
    enum { N = 100003 };
    int shape[1] = {N};
    double *x = malloc(N * sizeof *x);
    gc_random(x, N, 9, 0, 1);
    long double ref = 0;
    for (long i = 0; i < N; i++)
        ref += x[i];
    da_ctx *ctx = da_ctx_new();
    for (int dt = 0; dt < 2; dt++) {
        da_tensor *t = da_ctx_tensor_from(ctx, (da_dtype)dt, 1, shape, x);
        da_tensor *s = da_sum(ctx, t, DA_ALL_AXES, 0), *m = da_mean(ctx, t, 0, 1);
        ck_assert_int_eq(s->ndim, 0);
        ck_assert_int_eq(m->ndim, 1);
        /* F32: the inputs round (~6e-8 each), the double accumulation does not drift */
        double tol = dt == DA_F64 ? 1e-13 : 1e-7;
        ck_assert_double_eq_tol(da_get(s, 0), (double)ref, tol * (double)ref);
        ck_assert_double_eq_tol(da_get(m, 0), (double)ref / N, tol * (double)ref / N);
    }
    free(x);
    da_ctx_free(ctx);
}
END_TEST

START_TEST(test_first_max_and_stability)
{
    da_ctx *ctx = da_ctx_new();
    /* ties: the whole gradient goes to the first maximum */
    int s4[1] = {4}, s22[2] = {2, 2};
    double v[4] = {1, 3, 3, 2}, ones[4] = {1, 1, 1, 1}, c2[2] = {1, 1};
    da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 1, s4, v);
    t->requires_grad = 1;
    ck_assert_int_eq(da_backward(ctx, da_max(ctx, t, 0, 0)), DA_OK);
    double want[4] = {0, 1, 0, 0};
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq(da_get_grad(t, i), want[i]);
    da_ctx_reset(ctx);
    double m22[4] = {3, 1, 3, 2}; /* along axis 0: column 0 ties, column 1 has max 2 */
    t = da_ctx_tensor_from(ctx, DA_F64, 2, s22, m22);
    t->requires_grad = 1;
    ck_assert_int_eq(da_backward_from(ctx, da_max(ctx, t, -2, 0), c2), DA_OK);
    double want22[4] = {1, 0, 0, 1};
    for (int i = 0; i < 4; i++)
        ck_assert_double_eq(da_get_grad(t, i), want22[i]);
    /* large inputs: no overflow */
    da_ctx_reset(ctx);
    double big[4] = {1000, 1000, -1000, 0};
    for (int dt = 0; dt < 2; dt++) {
        da_tensor *b = da_ctx_tensor_from(ctx, (da_dtype)dt, 2, s22, big);
        b->requires_grad = 1;
        da_tensor *l = da_logsumexp(ctx, b, 1, 1), *p = da_softmax(ctx, b, -1);
        da_tensor *lp = da_log_softmax(ctx, b, 1);
        ck_assert_ptr_nonnull(l);
        ck_assert_ptr_nonnull(p);
        ck_assert_ptr_nonnull(lp);
        double tol = dt == DA_F64 ? 1e-12 : 1e-4;
        ck_assert_double_eq_tol(da_get(l, 0), 1000 + log(2.0), tol);
        ck_assert_double_eq_tol(da_get(l, 1), 0, tol);
        ck_assert_double_eq_tol(da_get(p, 0), 0.5, tol);
        ck_assert_double_eq(da_get(p, 2), 0);
        ck_assert_double_eq(da_get(p, 3), 1);
        ck_assert_double_eq_tol(da_get(lp, 2), -1000, tol);
        ck_assert_double_eq_tol(da_get(lp, 3), 0, tol);
        ck_assert_int_eq(da_backward_from(ctx, lp, ones), DA_OK);
        for (int i = 0; i < 4; i++)
            ck_assert(isfinite(da_get_grad(b, i)));
        ck_assert_double_eq_tol(da_get_grad(b, 0), 0, tol); /* 1 - 2 * 0.5 */
        ck_assert_double_eq_tol(da_get_grad(b, 2), 1, tol); /* 1 - 2 * 0 */
        da_ctx_reset(ctx);
    }
    /* logsumexp of -inf entries: -inf is a value, not an error; [-inf, 0] -> 0 */
    double ninf[4] = {-INFINITY, -INFINITY, -INFINITY, 0};
    t = da_ctx_tensor_from(ctx, DA_F64, 2, s22, ninf);
    da_tensor *l = da_logsumexp(ctx, t, 1, 0);
    ck_assert_ptr_nonnull(l);
    ck_assert(isinf(da_get(l, 0)) && da_get(l, 0) < 0);
    ck_assert_double_eq(da_get(l, 1), 0);
    /* softmax of a row of -inf has no value: DA_ENAN */
    ck_assert_ptr_null(da_softmax(ctx, t, 1));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert(strstr(da_last_error(), "da_softmax") != NULL);
    da_ctx_free(ctx);
}
END_TEST

START_TEST(test_errors)
{
    da_ctx *ctx = da_ctx_new();
    int s234[3] = {2, 3, 4};
    da_tensor *t = da_ctx_tensor(ctx, DA_F64, 3, s234), *sc = da_scalar(ctx, DA_F64, 2);
    double nanv[3] = {1, NAN, 2};
    int s3[1] = {3};
    da_tensor *tn = da_ctx_tensor_from(ctx, DA_F32, 1, s3, nanv);
    for (int op = 0; op < N_OPS; op++) {
        da_clear_error();
        ck_assert_ptr_null(apply(ctx, op, NULL, 0, 0));
        ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
        ck_assert_ptr_null(apply(NULL, op, t, 0, 0));
        ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
        ck_assert_ptr_null(apply(ctx, op, t, 3, 0));
        ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
        ck_assert_ptr_null(apply(ctx, op, t, -4, 1));
        ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
        ck_assert(strstr(da_last_error(), "axis -4") != NULL);
        ck_assert_ptr_null(apply(ctx, op, sc, 0, 0)); /* a 0-d tensor has no axis 0 */
        ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
        da_tensor *all = apply(ctx, op, sc, DA_ALL_AXES, 0);
        ck_assert_ptr_nonnull(all);
        ck_assert_double_eq(da_get(all, 0), op == OP_SOFTMAX ? 1 : op == OP_LOG_SOFTMAX ? 0 : 2);
        ck_assert_ptr_null(apply(ctx, op, tn, 0, 0));
        ck_assert_int_eq(da_last_error_code(), DA_ENAN);
        /* a failed op upstream keeps its error */
        ck_assert_ptr_null(apply(ctx, op, da_slice(ctx, t, 0, 1, 9), 0, 0));
        ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
        ck_assert(strstr(da_last_error(), "da_slice") != NULL);
    }
    da_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops_reduce");
    TCase *tc = tcase_create("ops_reduce");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gradients_and_forward);
    tcase_add_test(tc, test_large_and_deterministic);
    tcase_add_test(tc, test_long_sum);
    tcase_add_test(tc, test_first_max_and_stability);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
