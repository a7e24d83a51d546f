/* test_ops_elem.c - broadcasting binary ops, da_where, unary ops, da_cast: gradients by
 * finite differences (F64) and against F64 (F32), forward values and gradients against
 * direct computations (small and OpenMP-sized), tie conventions, error paths. */
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

#define MAXN 64

/* flat index into an input of shape (ndim, shape) of output element oi (NumPy rules,
 * written independently of the library: peel output coordinates from the last one) */
static long bcast_index(int ondim, const int *oshape, long oi, int ndim, const int *shape)
{
    long idx = 0, stride = 1;
    for (int d = ondim - 1; d >= 0; d--) {
        long coord = oi % oshape[d];
        oi /= oshape[d];
        int j = d - (ondim - ndim);
        if (j < 0)
            continue;
        if (shape[j] != 1)
            idx += coord * stride;
        stride *= shape[j];
    }
    return idx;
}

/* ---- binary cases ---- */

static double f_add(double a, double b) { return a + b; }
static double f_sub(double a, double b) { return a - b; }
static double f_mul(double a, double b) { return a * b; }
static double f_div(double a, double b) { return a / b; }
static double f_pow(double a, double b) { return pow(a, b); }
static double f_min(double a, double b) { return a <= b ? a : b; }
static double f_max(double a, double b) { return a >= b ? a : b; }
static double one(double a, double b) { return 1; }
static double minus_one(double a, double b) { return -1; }
static double ret_b(double a, double b) { return b; }
static double ret_a(double a, double b) { return a; }
static double div_da(double a, double b) { return 1 / b; }
static double div_db(double a, double b) { return -a / (b * b); }
static double pow_da(double a, double b) { return b * pow(a, b - 1); }
static double pow_db(double a, double b) { return a > 0 ? pow(a, b) * log(a) : 0; }
static double min_da(double a, double b) { return a <= b; }
static double min_db(double a, double b) { return !(a <= b); }
static double max_da(double a, double b) { return a >= b; }
static double max_db(double a, double b) { return !(a >= b); }

typedef struct {
    const char *name;
    da_tensor *(*fn)(da_ctx *, da_tensor *, da_tensor *);
    double (*f)(double, double), (*da)(double, double), (*db)(double, double);
    double alo, ahi, blo, bhi;
    int separate; /* a and b on disjoint grids: no min/max ties, even under FD steps */
} bin_case;

static const bin_case bin_cases[] = {
    {"add", da_add, f_add, one, one, -2, 2, -2, 2, 0},
    {"sub", da_sub, f_sub, one, minus_one, -2, 2, -2, 2, 0},
    {"mul", da_mul, f_mul, ret_b, ret_a, -2, 2, -2, 2, 0},
    {"div", da_div, f_div, div_da, div_db, -2, 2, 0.5, 2, 0},
    {"pow", da_pow, f_pow, pow_da, pow_db, 0.5, 2, -1.5, 1.5, 0},
    {"minimum", da_minimum, f_min, min_da, min_db, -1, 1, -1, 1, 1},
    {"maximum", da_maximum, f_max, max_da, max_db, -1, 1, -1, 1, 1},
};
#define N_BIN_CASES (int)(sizeof bin_cases / sizeof bin_cases[0])

static void bin_values(const bin_case *c, int which, double *x, long n, unsigned long seed)
{
    gc_random(x, n, seed, which ? c->blo : c->alo, which ? c->bhi : c->ahi);
    if (c->separate) /* a on -0.95, -0.85, ...; b on -1.0, -0.9, ...: gaps >= 0.05 */
        for (long i = 0; i < n; i++)
            x[i] = -1 + 0.1 * floor((x[i] + 1) * 10) + (which ? 0 : 0.05);
}

/* broadcasting shape pairs and the expected output shape */
typedef struct {
    int na, sa[4], nb, sb[4], no, so[4];
} shape_pair;

static const shape_pair pairs[] = {
    {2, {2, 3}, 2, {2, 3}, 2, {2, 3}},                   /* equal shapes */
    {3, {3, 1, 4}, 2, {2, 1}, 3, {3, 2, 4}},             /* NumPy's example */
    {0, {0}, 4, {2, 3, 2, 2}, 4, {2, 3, 2, 2}},          /* scalar with 4-D */
    {4, {2, 1, 3, 1}, 0, {0}, 4, {2, 1, 3, 1}},          /* 4-D with scalar */
    {4, {1, 3, 1, 2}, 4, {2, 1, 2, 1}, 4, {2, 3, 2, 2}}, /* size-1 dims on both sides */
    {1, {4}, 3, {2, 3, 4}, 3, {2, 3, 4}},                /* bias-like */
    {1, {1}, 2, {3, 1}, 2, {3, 1}},
    {0, {0}, 0, {0}, 0, {0}},                            /* two scalars */
};
#define N_PAIRS (int)(sizeof pairs / sizeof pairs[0])

static da_tensor *call_bin(da_ctx *ctx, da_tensor **in, void *user)
{
    const bin_case *c = user;
    return c->fn(ctx, in[0], in[1]);
}

START_TEST(test_binary_gradients)
{
    double a[MAXN], b[MAXN];
    for (int k = 0; k < N_BIN_CASES; k++)
        for (int p = 0; p < N_PAIRS; p++) {
            const bin_case *c = &bin_cases[k];
            const shape_pair *s = &pairs[p];
            bin_values(c, 0, a, shape_size(s->na, s->sa), 10 + p);
            bin_values(c, 1, b, shape_size(s->nb, s->sb), 20 + p);
            gc_input in[2] = {{s->na, {s->sa[0], s->sa[1], s->sa[2], s->sa[3]}, a, 1},
                              {s->nb, {s->sb[0], s->sb[1], s->sb[2], s->sb[3]}, b, 1}};
            char what[64];
            snprintf(what, sizeof what, "%s, shape pair %d", c->name, p);
            check_grads(call_bin, 2, in, (void *)c, what);
            in[1].requires_grad = 0; /* only a */
            ck_assert_double_lt(gc_check(call_bin, 2, in, (void *)c, 1e-6), 1e-6);
        }
}
END_TEST

START_TEST(test_binary_forward)
{
    da_ctx *ctx = da_ctx_new();
    double a[MAXN], b[MAXN];
    for (int k = 0; k < N_BIN_CASES; k++)
        for (int p = 0; p < N_PAIRS; p++) {
            const bin_case *c = &bin_cases[k];
            const shape_pair *s = &pairs[p];
            bin_values(c, 0, a, shape_size(s->na, s->sa), 30 + p);
            bin_values(c, 1, b, shape_size(s->nb, s->sb), 40 + p);
            da_ctx_reset(ctx);
            da_tensor *ta = da_ctx_tensor_from(ctx, DA_F64, s->na, s->sa, a);
            da_tensor *tb = da_ctx_tensor_from(ctx, DA_F64, s->nb, s->sb, b);
            da_tensor *o = c->fn(ctx, ta, tb);
            ck_assert_ptr_nonnull(o);
            ck_assert_int_eq(o->ndim, s->no);
            for (int d = 0; d < s->no; d++)
                ck_assert_int_eq(o->shape[d], s->so[d]);
            ck_assert_int_eq(o->requires_grad, 0);
            ck_assert_ptr_null(o->node);
            mismatch m = {0};
            for (long i = 0; i < o->size; i++) {
                double want = c->f(a[bcast_index(s->no, s->so, i, s->na, s->sa)],
                                   b[bcast_index(s->no, s->so, i, s->nb, s->sb)]);
                expect_near(&m, i, da_get(o, i), want, 1e-14 * fmax(1, fabs(want)));
            }
            ASSERT_NO_MISMATCH(m, c->name);
        }
    da_ctx_free(ctx);
}
END_TEST

/* OpenMP-sized operands (above the 32768 threshold): forward and gradients against the
 * direct formulas, for equal shapes and a broadcast bias; bitwise equal on 1 and 2
 * threads */
static void large_binary(const bin_case *c, int bias, int threads, double *out, double *ga,
                         double *gb)
{
    enum { R = 256, C = 160 };
    int sa[2] = {R, C}, sb[2] = {R, C};
    const int nb = bias ? 1 : 2;
    if (bias)
        sb[0] = C;
    double *a = malloc(R * C * sizeof *a), *b = malloc(R * C * sizeof *b);
    double *cot = malloc(R * C * sizeof *cot);
    bin_values(c, 0, a, R * C, 1);
    bin_values(c, 1, b, R * C, 2);
    gc_random(cot, R * C, 3, -1, 1);
    omp_set_num_threads(threads);
    da_ctx *ctx = da_ctx_new();
    da_tensor *ta = da_ctx_tensor_from(ctx, DA_F64, 2, sa, a);
    da_tensor *tb = da_ctx_tensor_from(ctx, DA_F64, nb, sb, b);
    ta->requires_grad = tb->requires_grad = 1;
    da_tensor *o = c->fn(ctx, ta, tb);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(da_backward_from(ctx, o, cot), DA_OK);
    da_tensor_copy_to(o, out);
    for (long i = 0; i < ta->size; i++)
        ga[i] = da_get_grad(ta, i);
    for (long i = 0; i < tb->size; i++)
        gb[i] = da_get_grad(tb, i);
    /* direct */
    double *gbd = calloc(R * C, sizeof *gbd);
    mismatch mo = {0}, ma = {0}, mb = {0};
    for (long i = 0; i < R * C; i++) {
        double x = a[i], y = b[bias ? i % C : i];
        expect_near(&mo, i, out[i], c->f(x, y), 1e-14 * fmax(1, fabs(out[i])));
        expect_near(&ma, i, ga[i], cot[i] * c->da(x, y), 1e-13);
        gbd[bias ? i % C : i] += cot[i] * c->db(x, y);
    }
    for (long i = 0; i < tb->size; i++)
        expect_near(&mb, i, gb[i], gbd[i], 1e-12);
    ASSERT_NO_MISMATCH(mo, c->name);
    ASSERT_NO_MISMATCH(ma, c->name);
    ASSERT_NO_MISMATCH(mb, c->name);
    omp_set_num_threads(2);
    da_ctx_free(ctx);
    free(a);
    free(b);
    free(cot);
    free(gbd);
}

START_TEST(test_binary_large)
{
    enum { N = 256 * 160 };
    double *o1 = malloc(N * sizeof(double)), *o2 = malloc(N * sizeof(double));
    double *a1 = malloc(N * sizeof(double)), *a2 = malloc(N * sizeof(double));
    double *b1 = malloc(N * sizeof(double)), *b2 = malloc(N * sizeof(double));
    for (int k = 0; k < N_BIN_CASES; k++)
        for (int bias = 0; bias < 2; bias++) {
            large_binary(&bin_cases[k], bias, 1, o1, a1, b1);
            large_binary(&bin_cases[k], bias, 2, o2, a2, b2);
            ck_assert(memcmp(o1, o2, N * sizeof(double)) == 0);
            ck_assert(memcmp(a1, a2, N * sizeof(double)) == 0);
            ck_assert(memcmp(b1, b2, (bias ? 160 : N) * sizeof(double)) == 0);
        }
    free(o1);
    free(o2);
    free(a1);
    free(a2);
    free(b1);
    free(b2);
}
END_TEST

START_TEST(test_ties_and_conventions)
{
    da_ctx *ctx = da_ctx_new();
    int s3[1] = {3};
    double a[3] = {1, 2, 3}, b[3] = {1, 0, 3}, ones[3] = {1, 1, 1};
    /* minimum/maximum: ties send the whole gradient to a */
    for (int op = 0; op < 2; op++) {
        da_ctx_reset(ctx);
        da_tensor *ta = da_ctx_tensor_from(ctx, DA_F64, 1, s3, a);
        da_tensor *tb = da_ctx_tensor_from(ctx, DA_F64, 1, s3, b);
        ta->requires_grad = tb->requires_grad = 1;
        da_tensor *o = op ? da_maximum(ctx, ta, tb) : da_minimum(ctx, ta, tb);
        ck_assert_int_eq(da_backward_from(ctx, o, ones), DA_OK);
        double want_a[2][3] = {{1, 0, 1}, {1, 1, 1}}, want_b[2][3] = {{0, 1, 0}, {0, 0, 0}};
        for (int i = 0; i < 3; i++) {
            ck_assert_double_eq(da_get(o, i), op ? fmax(a[i], b[i]) : fmin(a[i], b[i]));
            ck_assert_double_eq(da_get_grad(ta, i), want_a[op][i]);
            ck_assert_double_eq(da_get_grad(tb, i), want_b[op][i]);
        }
    }
    /* relu and abs: gradient 0 at 0 */
    double x[3] = {-1, 0, 2};
    da_ctx_reset(ctx);
    da_tensor *tx = da_ctx_tensor_from(ctx, DA_F64, 1, s3, x);
    tx->requires_grad = 1;
    ck_assert_int_eq(da_backward_from(ctx, da_relu(ctx, tx), ones), DA_OK);
    ck_assert_double_eq(da_get_grad(tx, 0), 0);
    ck_assert_double_eq(da_get_grad(tx, 1), 0);
    ck_assert_double_eq(da_get_grad(tx, 2), 1);
    da_ctx_reset(ctx); /* one backward per graph */
    tx = da_ctx_tensor_from(ctx, DA_F64, 1, s3, x);
    tx->requires_grad = 1;
    ck_assert_int_eq(da_backward_from(ctx, da_abs(ctx, tx), ones), DA_OK);
    ck_assert_double_eq(da_get_grad(tx, 0), -1);
    ck_assert_double_eq(da_get_grad(tx, 1), 0);
    ck_assert_double_eq(da_get_grad(tx, 2), 1);
    /* pow: d/db is 0 where a <= 0; d/da = b a^(b-1) */
    double pa[3] = {0, -2, 4}, pb[3] = {2, 3, 0.5};
    da_ctx_reset(ctx);
    da_tensor *ta = da_ctx_tensor_from(ctx, DA_F64, 1, s3, pa);
    da_tensor *tb = da_ctx_tensor_from(ctx, DA_F64, 1, s3, pb);
    ta->requires_grad = tb->requires_grad = 1;
    da_tensor *o = da_pow(ctx, ta, tb);
    ck_assert_int_eq(da_backward_from(ctx, o, ones), DA_OK);
    ck_assert_double_eq(da_get(o, 1), -8);
    ck_assert_double_eq(da_get_grad(ta, 0), 0);
    ck_assert_double_eq(da_get_grad(ta, 1), 12);
    ck_assert_double_eq_tol(da_get_grad(ta, 2), 0.25, 1e-15);
    ck_assert_double_eq(da_get_grad(tb, 0), 0);
    ck_assert_double_eq(da_get_grad(tb, 1), 0);
    ck_assert_double_eq_tol(da_get_grad(tb, 2), 2 * log(4.0), 1e-15);
    /* a broadcast input's gradient is the sum over the stretched dims */
    int s23[2] = {2, 3}, s1[1] = {1};
    double v6[6] = {1, 2, 3, 4, 5, 6}, one1[1] = {0};
    da_ctx_reset(ctx);
    da_tensor *big = da_ctx_tensor_from(ctx, DA_F64, 2, s23, v6);
    da_tensor *sc = da_ctx_tensor_from(ctx, DA_F64, 1, s1, one1);
    sc->requires_grad = 1;
    ck_assert_int_eq(da_backward_from(ctx, da_mul(ctx, big, sc), v6), DA_OK);
    ck_assert_double_eq(da_get_grad(sc, 0), 1 + 4 + 9 + 16 + 25 + 36);
    ck_assert_ptr_null(big->grad); /* no gradient for a constant */
    da_ctx_free(ctx);
}
END_TEST

/* ---- da_where ---- */

static da_tensor *call_where(da_ctx *ctx, da_tensor **in, void *user)
{
    return da_where(ctx, in[0], in[1], in[2]);
}

START_TEST(test_where)
{
    static const int shapes[][3][5] = {
        /* ndim, dims for cond, a, b */
        {{3, 3, 1, 4}, {2, 2, 1}, {0}},
        {{2, 2, 3}, {2, 2, 3}, {2, 2, 3}},
        {{0}, {4, 2, 1, 3, 1}, {1, 2}},
        {{4, 1, 1, 1, 2}, {2, 3, 1}, {3, 2, 1, 1}},
    };
    da_ctx *ctx = da_ctx_new();
    for (size_t p = 0; p < sizeof shapes / sizeof shapes[0]; p++) {
        double v[3][MAXN];
        gc_input in[3];
        for (int k = 0; k < 3; k++) {
            in[k].ndim = shapes[p][k][0];
            for (int d = 0; d < in[k].ndim; d++)
                in[k].shape[d] = shapes[p][k][d + 1];
            long n = shape_size(in[k].ndim, in[k].shape);
            gc_random(v[k], n, 50 + 3 * p + k, -1, 1);
            if (k == 0)
                for (long i = 0; i < n; i++)
                    v[0][i] = v[0][i] > 0 ? (i % 2 ? 1 : 3) : 0;
            in[k].data = v[k];
            in[k].requires_grad = k > 0;
        }
        check_grads(call_where, 3, in, NULL, "where");
        /* forward */
        da_ctx_reset(ctx);
        da_tensor *t[3];
        for (int k = 0; k < 3; k++)
            t[k] = da_ctx_tensor_from(ctx, DA_F64, in[k].ndim, in[k].shape, v[k]);
        da_tensor *o = da_where(ctx, t[0], t[1], t[2]);
        ck_assert_ptr_nonnull(o);
        mismatch m = {0};
        for (long i = 0; i < o->size; i++) {
            double c = v[0][bcast_index(o->ndim, o->shape, i, in[0].ndim, in[0].shape)];
            double want = c != 0 ? v[1][bcast_index(o->ndim, o->shape, i, in[1].ndim, in[1].shape)]
                                 : v[2][bcast_index(o->ndim, o->shape, i, in[2].ndim, in[2].shape)];
            expect_near(&m, i, da_get(o, i), want, 0);
        }
        ASSERT_NO_MISMATCH(m, "where");
    }
    /* the condition never receives a gradient, even when it requires one */
    int s2[1] = {2};
    double c2[2] = {1, 0}, x2[2] = {5, 6}, ones[2] = {1, 1};
    da_ctx_reset(ctx);
    da_tensor *tc = da_ctx_tensor_from(ctx, DA_F64, 1, s2, c2);
    da_tensor *tx = da_ctx_tensor_from(ctx, DA_F64, 1, s2, x2);
    tc->requires_grad = tx->requires_grad = 1;
    ck_assert_int_eq(da_backward_from(ctx, da_where(ctx, tc, tx, tx), ones), DA_OK);
    ck_assert_double_eq(da_get_grad(tx, 0), 1);
    ck_assert_double_eq(da_get_grad(tx, 1), 1);
    ck_assert_ptr_null(tc->grad);
    da_ctx_free(ctx);
}
END_TEST

/* ---- unary ops ---- */

static double u_neg(double x, double s) { return -x; }
static double u_exp(double x, double s) { return exp(x); }
static double u_log(double x, double s) { return log(x); }
static double u_sigmoid(double x, double s) { return 1 / (1 + exp(-x)); }
static double u_tanh(double x, double s) { return tanh(x); }
static double u_relu(double x, double s) { return x > 0 ? x : 0; }
static double u_softplus(double x, double s) { return log(1 + exp(x)); }
static double u_abs(double x, double s) { return fabs(x); }
static double u_sqrt(double x, double s) { return sqrt(x); }
static double u_adds(double x, double s) { return x + s; }
static double u_muls(double x, double s) { return x * s; }
static double u_pows(double x, double s) { return pow(x, s); }
static double d_neg(double x, double s) { return -1; }
static double d_log(double x, double s) { return 1 / x; }
static double d_sigmoid(double x, double s) { return u_sigmoid(x, 0) * (1 - u_sigmoid(x, 0)); }
static double d_tanh(double x, double s) { return 1 - tanh(x) * tanh(x); }
static double d_relu(double x, double s) { return x > 0; }
static double d_abs(double x, double s) { return x > 0 ? 1 : -1; }
static double d_sqrt(double x, double s) { return 0.5 / sqrt(x); }
static double d_one(double x, double s) { return 1; }
static double d_muls(double x, double s) { return s; }
static double d_pows(double x, double s) { return s * pow(x, s - 1); }

typedef struct {
    const char *name;
    da_tensor *(*fn)(da_ctx *, da_tensor *);
    da_tensor *(*fns)(da_ctx *, da_tensor *, double); /* scalar-parameter ops */
    double s;
    double (*f)(double, double), (*df)(double, double);
    double lo, hi;
    int off_zero; /* keep |x| >= 0.1 (kinks at 0) */
} un_case;

static const un_case un_cases[] = {
    {"neg", da_neg, NULL, 0, u_neg, d_neg, -2, 2, 0},
    {"exp", da_exp, NULL, 0, u_exp, u_exp, -3, 3, 0},
    {"log", da_log, NULL, 0, u_log, d_log, 0.2, 3, 0},
    {"logistic", da_logistic, NULL, 0, u_sigmoid, d_sigmoid, -6, 6, 0},
    {"tanh", da_tanh, NULL, 0, u_tanh, d_tanh, -3, 3, 0},
    {"relu", da_relu, NULL, 0, u_relu, d_relu, -2, 2, 1},
    {"softplus", da_softplus, NULL, 0, u_softplus, u_sigmoid, -6, 6, 0},
    {"abs", da_abs, NULL, 0, u_abs, d_abs, -2, 2, 1},
    {"sqrt", da_sqrt, NULL, 0, u_sqrt, d_sqrt, 0.2, 3, 0},
    {"add_scalar", NULL, da_add_scalar, -1.5, u_adds, d_one, -2, 2, 0},
    {"mul_scalar", NULL, da_mul_scalar, -0.7, u_muls, d_muls, -2, 2, 0},
    {"pow_scalar 2.5", NULL, da_pow_scalar, 2.5, u_pows, d_pows, 0.2, 2, 0},
    {"pow_scalar 3", NULL, da_pow_scalar, 3, u_pows, d_pows, -2, 2, 0},
    {"pow_scalar -0.5", NULL, da_pow_scalar, -0.5, u_pows, d_pows, 0.2, 2, 0},
};
#define N_UN_CASES (int)(sizeof un_cases / sizeof un_cases[0])

static void un_values(const un_case *c, double *x, long n, unsigned long seed)
{
    gc_random(x, n, seed, c->lo, c->hi);
    if (c->off_zero)
        for (long i = 0; i < n; i++)
            x[i] = x[i] < 0 ? x[i] - 0.1 : x[i] + 0.1;
}

static da_tensor *un_apply(const un_case *c, da_ctx *ctx, da_tensor *x)
{
    return c->fn ? c->fn(ctx, x) : c->fns(ctx, x, c->s);
}

static da_tensor *call_un(da_ctx *ctx, da_tensor **in, void *user)
{
    return un_apply(user, ctx, in[0]);
}

START_TEST(test_unary_gradients_and_forward)
{
    static const int shapes[][5] = {{2, 2, 3}, {4, 2, 1, 3, 2}, {0}, {1, 7}};
    da_ctx *ctx = da_ctx_new();
    double x[MAXN];
    for (int k = 0; k < N_UN_CASES; k++)
        for (size_t p = 0; p < sizeof shapes / sizeof shapes[0]; p++) {
            const un_case *c = &un_cases[k];
            gc_input in = {shapes[p][0], {shapes[p][1], shapes[p][2], shapes[p][3], shapes[p][4]},
                           x, 1};
            long n = shape_size(in.ndim, in.shape);
            un_values(c, x, n, 70 + p);
            check_grads(call_un, 1, &in, (void *)c, c->name);
            da_ctx_reset(ctx);
            da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, in.ndim, in.shape, x);
            da_tensor *o = un_apply(c, ctx, t);
            ck_assert_ptr_nonnull(o);
            ck_assert(da_same_shape(o, t));
            mismatch m = {0};
            for (long i = 0; i < n; i++) {
                double want = c->f(x[i], c->s);
                expect_near(&m, i, da_get(o, i), want, 1e-14 * fmax(1, fabs(want)));
            }
            ASSERT_NO_MISMATCH(m, c->name);
        }
    da_ctx_free(ctx);
}
END_TEST

/* OpenMP-sized unary ops: values and gradients against the direct formulas */
START_TEST(test_unary_large)
{
    enum { N = 40000 };
    int shape[2] = {200, 200};
    double *x = malloc(N * sizeof *x), *cot = malloc(N * sizeof *cot);
    gc_random(cot, N, 5, -1, 1);
    da_ctx *ctx = da_ctx_new();
    for (int k = 0; k < N_UN_CASES; k++) {
        const un_case *c = &un_cases[k];
        un_values(c, x, N, 6);
        da_ctx_reset(ctx);
        da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 2, shape, x);
        t->requires_grad = 1;
        da_tensor *o = un_apply(c, ctx, t);
        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(da_backward_from(ctx, o, cot), DA_OK);
        mismatch mo = {0}, mg = {0};
        for (long i = 0; i < N; i++) {
            double want = c->f(x[i], c->s);
            expect_near(&mo, i, da_get(o, i), want, 1e-13 * fmax(1, fabs(want)));
            want = cot[i] * c->df(x[i], c->s);
            expect_near(&mg, i, da_get_grad(t, i), want, 1e-12 * fmax(1, fabs(want)));
        }
        ASSERT_NO_MISMATCH(mo, c->name);
        ASSERT_NO_MISMATCH(mg, c->name);
    }
    free(x);
    free(cot);
    da_ctx_free(ctx);
}
END_TEST

/* sigmoid and softplus stay finite and exact far from 0, in both dtypes */
START_TEST(test_stable_sigmoid_softplus)
{
    int s4[1] = {4};
    double x[4] = {-800, -40, 40, 800}, ones[4] = {1, 1, 1, 1};
    da_ctx *ctx = da_ctx_new();
    for (int dt = 0; dt < 2; dt++) {
        da_ctx_reset(ctx);
        da_tensor *t = da_ctx_tensor_from(ctx, (da_dtype)dt, 1, s4, x);
        da_tensor *t2 = da_ctx_tensor_from(ctx, (da_dtype)dt, 1, s4, x);
        t->requires_grad = t2->requires_grad = 1;
        da_tensor *sg = da_logistic(ctx, t2), *sp = da_softplus(ctx, t);
        ck_assert_ptr_nonnull(sg);
        ck_assert_ptr_nonnull(sp);
        ck_assert_double_eq(da_get(sg, 0), 0);
        ck_assert_double_eq(da_get(sg, 3), 1);
        ck_assert_double_eq_tol(da_get(sg, 1), exp(-40), 1e-6 * exp(-40));
        ck_assert_double_eq(da_get(sp, 0), 0);
        ck_assert_double_eq_tol(da_get(sp, 1), exp(-40), 1e-6 * exp(-40));
        ck_assert_double_eq(da_get(sp, 2), 40);
        ck_assert_double_eq(da_get(sp, 3), 800);
        ck_assert_int_eq(da_backward_from(ctx, sp, ones), DA_OK);
        ck_assert_double_eq(da_get_grad(t, 0), 0);
        ck_assert_double_eq_tol(da_get_grad(t, 1), exp(-40), 1e-6 * exp(-40));
        ck_assert_double_eq(da_get_grad(t, 3), 1);
        da_ctx_reset(ctx); /* one backward per graph */
        t2 = da_ctx_tensor_from(ctx, (da_dtype)dt, 1, s4, x);
        t2->requires_grad = 1;
        ck_assert_int_eq(da_backward_from(ctx, da_logistic(ctx, t2), ones), DA_OK);
        for (int i = 0; i < 4; i++)
            ck_assert(isfinite(da_get_grad(t2, i)));
        ck_assert_double_eq(da_get_grad(t2, 3), 0);
        ck_assert_double_eq_tol(da_get_grad(t2, 1), exp(-40), 1e-6 * exp(-40));
    }
    da_ctx_free(ctx);
}
END_TEST

/* ---- da_cast ---- */

static da_tensor *call_cast(da_ctx *ctx, da_tensor **in, void *user)
{
    /* x (any dtype) -> F64 -> x^2 -> back to x's dtype */
    da_tensor *d = da_cast(ctx, in[0], DA_F64);
    return da_cast(ctx, da_mul(ctx, d, d), in[0]->dtype);
}

START_TEST(test_cast)
{
    double x[6];
    gc_random(x, 6, 80, -2, 2);
    gc_input in = {2, {2, 3}, x, 1};
    check_grads(call_cast, 1, &in, NULL, "cast");
    da_ctx *ctx = da_ctx_new();
    int s6[1] = {6};
    double third[6] = {1.0 / 3, 2.0 / 3, 1e300, -1e-50, 0, 7}, ones[6] = {1, 1, 1, 1, 1, 1};
    da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 1, s6, third);
    t->requires_grad = 1;
    da_tensor *f = da_cast(ctx, t, DA_F32);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->dtype, DA_F32);
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq(da_get(f, i), (double)(float)third[i]); /* 1e300 -> +inf */
    ck_assert_int_eq(da_backward_from(ctx, da_mul_scalar(ctx, f, 3), ones), DA_OK);
    ck_assert_double_eq(da_get_grad(t, 0), 3);
    ck_assert_ptr_null(da_cast(ctx, t, (da_dtype)5));
    ck_assert_int_eq(da_last_error_code(), DA_EDTYPE);
    da_ctx_free(ctx);
}
END_TEST

/* ---- error paths ---- */

START_TEST(test_errors)
{
    da_ctx *ctx = da_ctx_new();
    int s23[2] = {2, 3}, s4[1] = {4}, s314[3] = {3, 1, 4}, s22[2] = {2, 2};
    da_tensor *a = da_ctx_tensor(ctx, DA_F64, 2, s23);
    da_tensor *b4 = da_ctx_tensor(ctx, DA_F64, 1, s4);
    da_tensor *a32 = da_ctx_tensor(ctx, DA_F32, 2, s23);
    da_tensor *c314 = da_ctx_tensor(ctx, DA_F64, 3, s314);
    da_tensor *c22 = da_ctx_tensor(ctx, DA_F64, 2, s22);
    for (int k = 0; k < N_BIN_CASES; k++) {
        const bin_case *c = &bin_cases[k];
        da_clear_error();
        ck_assert_ptr_null(c->fn(ctx, NULL, a));
        ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
        da_clear_error();
        ck_assert_ptr_null(c->fn(ctx, a, NULL));
        ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
        ck_assert_ptr_null(c->fn(NULL, a, a));
        ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
        ck_assert_ptr_null(c->fn(ctx, a, a32));
        ck_assert_int_eq(da_last_error_code(), DA_EDTYPE);
        ck_assert_ptr_null(c->fn(ctx, a, b4));
        ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
        ck_assert_ptr_null(c->fn(ctx, c314, c22)); /* [3,1,4] with [2,2] */
        ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
        ck_assert(strstr(da_last_error(), "[3,1,4]") != NULL);
    }
    for (int k = 0; k < N_UN_CASES; k++) {
        da_clear_error();
        ck_assert_ptr_null(un_apply(&un_cases[k], ctx, NULL));
        ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
        ck_assert_ptr_null(un_apply(&un_cases[k], NULL, a));
        ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    }
    ck_assert_ptr_null(da_where(ctx, a32, a, a));
    ck_assert_int_eq(da_last_error_code(), DA_EDTYPE);
    ck_assert_ptr_null(da_where(ctx, b4, a, a));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    da_clear_error();
    ck_assert_ptr_null(da_where(ctx, NULL, a, a));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_clear_error();
    ck_assert_ptr_null(da_cast(ctx, NULL, DA_F32));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    /* a chain of ops keeps the first error */
    ck_assert_ptr_null(da_exp(ctx, da_add(ctx, a, b4)));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert(strstr(da_last_error(), "da_add") != NULL);
    /* NaN results: NaN inputs and values outside the domain */
    int s1[1] = {1};
    double neg[1] = {-1}, zero[1] = {0}, nan1[1] = {NAN};
    da_tensor *tn = da_ctx_tensor_from(ctx, DA_F64, 1, s1, neg);
    da_tensor *tz = da_ctx_tensor_from(ctx, DA_F64, 1, s1, zero);
    da_tensor *tnan = da_ctx_tensor_from(ctx, DA_F32, 1, s1, nan1);
    ck_assert_ptr_null(da_log(ctx, tn));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert(strstr(da_last_error(), "da_log") != NULL);
    ck_assert_ptr_null(da_sqrt(ctx, tn));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_div(ctx, tz, tz));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_pow_scalar(ctx, tn, 0.5));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_exp(ctx, tnan));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_maximum(ctx, da_cast(ctx, tz, DA_F32), tnan));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_relu(ctx, tnan));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    /* log(0) = -inf is a value, not an error */
    da_tensor *l0 = da_log(ctx, tz);
    ck_assert_ptr_nonnull(l0);
    ck_assert(isinf(da_get(l0, 0)) && da_get(l0, 0) < 0);
    da_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops_elem");
    TCase *tc = tcase_create("ops_elem");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_binary_gradients);
    tcase_add_test(tc, test_binary_forward);
    tcase_add_test(tc, test_binary_large);
    tcase_add_test(tc, test_ties_and_conventions);
    tcase_add_test(tc, test_where);
    tcase_add_test(tc, test_unary_gradients_and_forward);
    tcase_add_test(tc, test_unary_large);
    tcase_add_test(tc, test_stable_sigmoid_softplus);
    tcase_add_test(tc, test_cast);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
