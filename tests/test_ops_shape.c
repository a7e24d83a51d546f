/* test_ops_shape.c - da_reshape, da_permute, da_transpose, da_slice, da_concat,
 * da_index_select: finite-difference (F64) and F32-vs-F64 gradient checks, forward values
 * against direct coordinate arithmetic (small and OpenMP-sized), gradient accumulation
 * for repeated indices, concat of more inputs than a node holds, error paths. */
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

/* ---- coordinates ---- */

static void unravel(int ndim, const int *shape, long flat, int *c)
{
    for (int d = ndim - 1; d >= 0; d--) {
        c[d] = (int)(flat % shape[d]);
        flat /= shape[d];
    }
}

static long ravel(int ndim, const int *shape, const int *c)
{
    long flat = 0;
    for (int d = 0; d < ndim; d++)
        flat = flat * shape[d] + c[d];
    return flat;
}

static da_tensor *leaf(da_ctx *ctx, da_dtype dt, int ndim, const int *shape, unsigned long seed,
                       int requires_grad)
{
    double x[4096];
    long n = shape_size(ndim, shape);
    ck_assert_int_le(n, 4096);
    gc_random(x, n, seed, -1, 1);
    da_tensor *t = da_ctx_tensor_from(ctx, dt, ndim, shape, x);
    t->requires_grad = requires_grad;
    return t;
}

/* ---- reshape ---- */

typedef struct {
    int ndim, shape[4];
} shape_arg;

static da_tensor *call_reshape(da_ctx *ctx, da_tensor **in, void *user)
{
    const shape_arg *s = user;
    /* square first so the check sees a non-linear map through the reshape */
    return da_reshape(ctx, da_mul(ctx, in[0], in[0]), s->ndim, s->shape);
}

START_TEST(test_reshape)
{
    static const struct {
        int ndim, shape[4];
        shape_arg to;
        int want[4];
    } cases[] = {
        {3, {2, 3, 4}, {2, {4, -1}}, {4, 6}},
        {3, {2, 3, 4}, {1, {-1}}, {24}},
        {3, {2, 3, 4}, {4, {2, 1, -1, 3}}, {2, 1, 4, 3}},
        {1, {1}, {0, {0}}, {0}},
        {0, {0}, {2, {1, -1}}, {1, 1}},
        {2, {6, 1}, {2, {2, 3}}, {2, 3}},
    };
    da_ctx *ctx = da_ctx_new();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double x[24];
        long n = shape_size(cases[k].ndim, cases[k].shape);
        gc_random(x, n, 200 + k, -1, 1);
        gc_input in = {cases[k].ndim, {0}, x, 1};
        memcpy(in.shape, cases[k].shape, sizeof in.shape);
        check_grads(call_reshape, 1, &in, (void *)&cases[k].to, "reshape");
        da_ctx_reset(ctx);
        da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, in.ndim, in.shape, x);
        da_tensor *o = da_reshape(ctx, t, cases[k].to.ndim, cases[k].to.shape);
        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(o->ndim, cases[k].to.ndim);
        for (int d = 0; d < o->ndim; d++)
            ck_assert_int_eq(o->shape[d], cases[k].want[d]);
        ck_assert(memcmp(o->data, x, n * sizeof(double)) == 0);
        ck_assert_ptr_ne(o->data, t->data); /* a copy, never an alias */
    }
    /* errors */
    int s234[3] = {2, 3, 4};
    da_tensor *t = leaf(ctx, DA_F64, 3, s234, 1, 0);
    static const struct {
        int ndim, shape[5], code;
    } bad[] = {
        {2, {-1, -1}, DA_ESHAPE}, {2, {0, 24}, DA_ESHAPE}, {2, {5, -1}, DA_ESHAPE},
        {2, {5, 5}, DA_ESHAPE},   {2, {-2, 12}, DA_ESHAPE}, {5, {1, 2, 3, 4, 1}, DA_ERANGE},
        {0, {0}, DA_ESHAPE},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ck_assert_ptr_null(da_reshape(ctx, t, bad[k].ndim, bad[k].shape));
        ck_assert_int_eq(da_last_error_code(), bad[k].code);
        ck_assert(strstr(da_last_error(), "da_reshape") != NULL);
    }
    ck_assert_ptr_null(da_reshape(ctx, t, 2, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_clear_error();
    ck_assert_ptr_null(da_reshape(ctx, NULL, 1, s234));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
}
END_TEST

/* ---- permute, transpose ---- */

static da_tensor *call_permute(da_ctx *ctx, da_tensor **in, void *user)
{
    return da_permute(ctx, da_mul(ctx, in[0], in[0]), user);
}

/* out[c] = a[c permuted back], by coordinates */
static void check_permuted(const da_tensor *a, const da_tensor *o, const int *perm)
{
    int c[4], src[4];
    mismatch m = {0};
    ck_assert_int_eq(o->ndim, a->ndim);
    for (int i = 0; i < a->ndim; i++)
        ck_assert_int_eq(o->shape[i], a->shape[perm[i]]);
    for (long i = 0; i < o->size; i++) {
        unravel(o->ndim, o->shape, i, c);
        for (int d = 0; d < o->ndim; d++)
            src[perm[d]] = c[d];
        expect_near(&m, i, da_get(o, i), da_get(a, ravel(a->ndim, a->shape, src)), 0);
    }
    ASSERT_NO_MISMATCH(m, "permute");
}

START_TEST(test_permute_all_4d)
{
    int shape[4] = {2, 3, 1, 4}, perm[4], n_perm = 0;
    double x[24];
    gc_random(x, 24, 300, -1, 1);
    da_ctx *ctx = da_ctx_new();
    for (int p = 0; p < 256; p++) { /* every permutation of 4 axes */
        for (int i = 0; i < 4; i++)
            perm[i] = (p >> (2 * i)) & 3;
        int used = 0;
        for (int i = 0; i < 4; i++)
            used |= 1 << perm[i];
        if (used != 15)
            continue;
        n_perm++;
        gc_input in = {4, {2, 3, 1, 4}, x, 1};
        check_grads(call_permute, 1, &in, perm, "permute");
        da_ctx_reset(ctx);
        da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 4, shape, x);
        check_permuted(t, da_permute(ctx, t, perm), perm);
    }
    ck_assert_int_eq(n_perm, 24);
    da_ctx_free(ctx);
}
END_TEST

typedef struct {
    int a0, a1;
} axes_arg;

static da_tensor *call_transpose(da_ctx *ctx, da_tensor **in, void *user)
{
    const axes_arg *ax = user;
    return da_transpose(ctx, da_mul(ctx, in[0], in[0]), ax->a0, ax->a1);
}

START_TEST(test_transpose_and_errors)
{
    static const struct {
        int ndim, shape[4];
        axes_arg ax;
        int perm[4];
    } cases[] = {
        {2, {3, 4}, {0, 1}, {1, 0}},        {2, {3, 4}, {-1, -2}, {1, 0}},
        {3, {2, 3, 4}, {0, 2}, {2, 1, 0}},  {3, {2, 3, 4}, {1, 1}, {0, 1, 2}},
        {4, {2, 1, 3, 2}, {-3, 3}, {0, 3, 2, 1}},
    };
    da_ctx *ctx = da_ctx_new();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double x[24];
        gc_random(x, shape_size(cases[k].ndim, cases[k].shape), 400 + k, -1, 1);
        gc_input in = {cases[k].ndim, {0}, x, 1};
        memcpy(in.shape, cases[k].shape, sizeof in.shape);
        check_grads(call_transpose, 1, &in, (void *)&cases[k].ax, "transpose");
        da_ctx_reset(ctx);
        da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, in.ndim, in.shape, x);
        check_permuted(t, da_transpose(ctx, t, cases[k].ax.a0, cases[k].ax.a1), cases[k].perm);
    }
    int s23[2] = {2, 3};
    da_tensor *t = leaf(ctx, DA_F64, 2, s23, 2, 0);
    ck_assert_ptr_null(da_transpose(ctx, t, 0, 2));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_transpose(ctx, t, -3, 0));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    int rep[2] = {0, 0}, out_of[2] = {0, 2}, neg[2] = {-1, 0};
    ck_assert_ptr_null(da_permute(ctx, t, rep));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_permute(ctx, t, out_of));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_permute(ctx, t, neg));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_permute(ctx, t, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_clear_error();
    ck_assert_ptr_null(da_permute(ctx, NULL, rep));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_clear_error();
    ck_assert_ptr_null(da_transpose(ctx, NULL, 0, 1));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
}
END_TEST

/* ---- slice ---- */

typedef struct {
    int axis, start, end;
} slice_arg;

static da_tensor *call_slice(da_ctx *ctx, da_tensor **in, void *user)
{
    const slice_arg *s = user;
    return da_slice(ctx, da_mul(ctx, in[0], in[0]), s->axis, s->start, s->end);
}

START_TEST(test_slice)
{
    int shape[3] = {4, 5, 3};
    static const slice_arg cases[] = {{1, 1, 4}, {-1, 0, 1}, {0, 3, 4}, {0, 0, 4}, {-3, 1, 3}};
    double x[60];
    gc_random(x, 60, 500, -1, 1);
    da_ctx *ctx = da_ctx_new();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        gc_input in = {3, {4, 5, 3}, x, 1};
        check_grads(call_slice, 1, &in, (void *)&cases[k], "slice");
        da_ctx_reset(ctx);
        da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 3, shape, x);
        da_tensor *o = da_slice(ctx, t, cases[k].axis, cases[k].start, cases[k].end);
        ck_assert_ptr_nonnull(o);
        int ax = (cases[k].axis + 3) % 3, c[3];
        ck_assert_int_eq(o->shape[ax], cases[k].end - cases[k].start);
        mismatch m = {0};
        for (long i = 0; i < o->size; i++) {
            unravel(3, o->shape, i, c);
            c[ax] += cases[k].start;
            expect_near(&m, i, da_get(o, i), x[ravel(3, shape, c)], 0);
        }
        ASSERT_NO_MISMATCH(m, "slice");
    }
    da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 3, shape, x);
    static const slice_arg bad[] = {{1, -1, 2}, {1, 0, 6}, {1, 3, 3}, {1, 4, 2}, {3, 0, 1},
                                    {-4, 0, 1}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ck_assert_ptr_null(da_slice(ctx, t, bad[k].axis, bad[k].start, bad[k].end));
        ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
        ck_assert(strstr(da_last_error(), "da_slice") != NULL);
    }
    da_clear_error();
    ck_assert_ptr_null(da_slice(ctx, NULL, 0, 0, 1));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
}
END_TEST

/* ---- concat ---- */

typedef struct {
    int n, axis;
} concat_arg;

static da_tensor *call_concat(da_ctx *ctx, da_tensor **in, void *user)
{
    const concat_arg *c = user;
    da_tensor *sq[8];
    for (int i = 0; i < c->n; i++)
        sq[i] = da_mul(ctx, in[i], in[i]);
    return da_concat(ctx, sq, c->n, c->axis);
}

START_TEST(test_concat)
{
    static const struct {
        int n, axis, ndim, shapes[3][3];
    } cases[] = {
        {3, 1, 3, {{2, 1, 3}, {2, 4, 3}, {2, 2, 3}}},
        {2, 0, 2, {{1, 3}, {2, 3}}},
        {3, -1, 2, {{2, 1}, {2, 3}, {2, 2}}},
        {1, 0, 1, {{5}}},
    };
    da_ctx *ctx = da_ctx_new();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double x[3][24];
        gc_input in[3];
        da_tensor *t[3];
        concat_arg arg = {cases[k].n, cases[k].axis};
        for (int i = 0; i < cases[k].n; i++) {
            in[i].ndim = cases[k].ndim;
            memcpy(in[i].shape, cases[k].shapes[i], sizeof cases[k].shapes[i]);
            gc_random(x[i], shape_size(in[i].ndim, in[i].shape), 600 + 3 * k + i, -1, 1);
            in[i].data = x[i];
            in[i].requires_grad = 1;
        }
        check_grads(call_concat, cases[k].n, in, &arg, "concat");
        in[0].requires_grad = 0; /* a constant among the inputs */
        if (cases[k].n > 1)
            ck_assert_double_lt(gc_check(call_concat, cases[k].n, in, &arg, 1e-6), 1e-6);
        da_ctx_reset(ctx);
        for (int i = 0; i < cases[k].n; i++)
            t[i] = da_ctx_tensor_from(ctx, DA_F64, in[i].ndim, in[i].shape, x[i]);
        da_tensor *o = da_concat(ctx, t, cases[k].n, cases[k].axis);
        ck_assert_ptr_nonnull(o);
        const int nd = cases[k].ndim, ax = (cases[k].axis + nd) % nd;
        int c[3];
        mismatch m = {0};
        for (long i = 0; i < o->size; i++) {
            unravel(nd, o->shape, i, c);
            int j = 0;
            while (c[ax] >= t[j]->shape[ax])
                c[ax] -= t[j++]->shape[ax];
            expect_near(&m, i, da_get(o, i), x[j][ravel(nd, t[j]->shape, c)], 0);
        }
        ASSERT_NO_MISMATCH(m, "concat");
    }
    da_ctx_free(ctx);
}
END_TEST

/* more inputs than a graph node holds: 11 slices of one leaf, concatenated in reverse */
static da_tensor *call_reverse_pieces(da_ctx *ctx, da_tensor **in, void *user)
{
    const int n = in[0]->shape[1];
    da_tensor *pieces[16];
    for (int i = 0; i < n; i++)
        pieces[n - 1 - i] = da_slice(ctx, da_mul(ctx, in[0], in[0]), 1, i, i + 1);
    return da_concat(ctx, pieces, n, 1);
}

START_TEST(test_concat_many)
{
    double x[22];
    gc_random(x, 22, 700, -1, 1);
    gc_input in = {2, {2, 11}, x, 1};
    check_grads(call_reverse_pieces, 1, &in, NULL, "concat of 11");
    da_ctx *ctx = da_ctx_new();
    da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 2, in.shape, x);
    da_tensor *o = call_reverse_pieces(ctx, &t, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(o->shape[1], 11);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 11; i++)
            ck_assert_double_eq(da_get(o, r * 11 + i), x[r * 11 + 10 - i] * x[r * 11 + 10 - i]);
    /* 70 inputs: two levels of groups */
    int s1[1] = {1};
    da_tensor *many[70];
    for (int i = 0; i < 70; i++) {
        many[i] = da_scalar(ctx, DA_F64, i);
        many[i] = da_reshape(ctx, many[i], 1, s1);
    }
    many[5]->requires_grad = 1;
    o = da_concat(ctx, many, 70, 0);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(o->size, 70);
    for (int i = 0; i < 70; i++)
        ck_assert_double_eq(da_get(o, i), i);
    double cot[70];
    for (int i = 0; i < 70; i++)
        cot[i] = i + 0.5;
    ck_assert_int_eq(da_backward_from(ctx, o, cot), DA_OK);
    ck_assert_double_eq(da_get_grad(many[5], 0), 5.5);
    da_ctx_free(ctx);
}
END_TEST

START_TEST(test_concat_errors)
{
    da_ctx *ctx = da_ctx_new();
    int s23[2] = {2, 3}, s33[2] = {3, 3}, s3[1] = {3};
    da_tensor *a = leaf(ctx, DA_F64, 2, s23, 1, 0), *b = leaf(ctx, DA_F64, 2, s33, 2, 0);
    da_tensor *c1 = leaf(ctx, DA_F64, 1, s3, 3, 0), *f = leaf(ctx, DA_F32, 2, s23, 4, 0);
    da_tensor *ab[2] = {a, b}, *ac[2] = {a, c1}, *af[2] = {a, f}, *an[2] = {a, NULL};
    ck_assert_ptr_nonnull(da_concat(ctx, ab, 2, 0));
    ck_assert_ptr_null(da_concat(ctx, ab, 2, 1)); /* rows differ outside axis 1 */
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert(strstr(da_last_error(), "[3,3]") != NULL);
    ck_assert_ptr_null(da_concat(ctx, ac, 2, 0)); /* ndim differs */
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_concat(ctx, af, 2, 0));
    ck_assert_int_eq(da_last_error_code(), DA_EDTYPE);
    ck_assert_ptr_null(da_concat(ctx, ab, 2, 2));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_concat(ctx, ab, 0, 0));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_concat(ctx, NULL, 2, 0));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_concat(NULL, ab, 2, 0));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_clear_error();
    ck_assert_ptr_null(da_concat(ctx, an, 2, 0));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
}
END_TEST

/* ---- index_select ---- */

typedef struct {
    int axis, n;
    const int *index;
} select_arg;

static da_tensor *call_select(da_ctx *ctx, da_tensor **in, void *user)
{
    const select_arg *s = user;
    return da_index_select(ctx, da_mul(ctx, in[0], in[0]), s->axis, s->index, s->n);
}

START_TEST(test_index_select)
{
    static const int rows[5] = {3, 0, 3, 1, 3}, last[4] = {3, 3, 0, 2}, one[1] = {1};
    static const struct {
        int ndim, shape[3];
        select_arg s;
    } cases[] = {
        {2, {4, 3}, {0, 5, rows}},
        {3, {2, 3, 4}, {-1, 4, last}},
        {3, {2, 3, 4}, {1, 1, one}},
        {1, {4}, {0, 5, rows}},
    };
    da_ctx *ctx = da_ctx_new();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double x[24];
        const int nd = cases[k].ndim;
        gc_random(x, shape_size(nd, cases[k].shape), 800 + k, -1, 1);
        gc_input in = {nd, {0}, x, 1};
        memcpy(in.shape, cases[k].shape, sizeof cases[k].shape);
        check_grads(call_select, 1, &in, (void *)&cases[k].s, "index_select");
        da_ctx_reset(ctx);
        da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, nd, in.shape, x);
        t->requires_grad = 1;
        da_tensor *o = da_index_select(ctx, t, cases[k].s.axis, cases[k].s.index, cases[k].s.n);
        ck_assert_ptr_nonnull(o);
        const int ax = (cases[k].s.axis + nd) % nd;
        ck_assert_int_eq(o->shape[ax], cases[k].s.n);
        int c[3];
        mismatch m = {0};
        double ones[64], count[24] = {0};
        for (long i = 0; i < o->size; i++) {
            unravel(nd, o->shape, i, c);
            c[ax] = cases[k].s.index[c[ax]];
            long src = ravel(nd, in.shape, c);
            expect_near(&m, i, da_get(o, i), x[src], 0);
            ones[i] = 1;
            count[src] += 1;
        }
        ASSERT_NO_MISMATCH(m, "index_select");
        /* repeated indices: each source element gets one gradient per copy */
        ck_assert_int_eq(da_backward_from(ctx, o, ones), DA_OK);
        for (long i = 0; i < t->size; i++)
            expect_near(&m, i, da_get_grad(t, i), count[i], 0);
        ASSERT_NO_MISMATCH(m, "index_select counts");
    }
    int s43[2] = {4, 3}, bad_hi[2] = {0, 4}, bad_lo[2] = {-1, 0};
    da_tensor *t = leaf(ctx, DA_F64, 2, s43, 5, 0);
    ck_assert_ptr_null(da_index_select(ctx, t, 0, bad_hi, 2));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert(strstr(da_last_error(), "index[1] = 4") != NULL);
    ck_assert_ptr_null(da_index_select(ctx, t, 0, bad_lo, 2));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_index_select(ctx, t, 1, bad_hi, 2)); /* 4 >= 3 along axis 1 */
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_index_select(ctx, t, 2, rows, 2));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_index_select(ctx, t, 0, rows, 0));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_index_select(ctx, t, 0, NULL, 2));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_clear_error();
    ck_assert_ptr_null(da_index_select(ctx, NULL, 0, rows, 2));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
}
END_TEST

/* ---- OpenMP-sized tensors ---- */

/* index_select along the last axis of [300][200] with repeats: values, gradient against
 * a direct accumulation, same bits on 1 and 2 threads */
static void large_select(int threads, double *grad)
{
    enum { R = 300, C = 200, M = 250 };
    int shape[2] = {R, C}, index[M];
    double *x = malloc(R * C * sizeof *x), *cot = malloc(R * M * sizeof *cot);
    double *want = calloc(R * C, sizeof *want);
    for (int k = 0; k < M; k++)
        index[k] = (k * 37) % C; /* 250 picks from 200 columns: repeats */
    gc_random(x, R * C, 900, -1, 1);
    gc_random(cot, R * M, 901, -1, 1);
    omp_set_num_threads(threads);
    da_ctx *ctx = da_ctx_new();
    da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 2, shape, x);
    t->requires_grad = 1;
    da_tensor *o = da_index_select(ctx, t, 1, index, M);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(da_backward_from(ctx, o, cot), DA_OK);
    mismatch m = {0};
    for (long r = 0; r < R; r++)
        for (int k = 0; k < M; k++) {
            expect_near(&m, r * M + k, da_get(o, r * M + k), x[r * C + index[k]], 0);
            want[r * C + index[k]] += cot[r * M + k];
        }
    for (long i = 0; i < R * C; i++) {
        grad[i] = da_get_grad(t, i);
        expect_near(&m, i, grad[i], want[i], 1e-14);
    }
    ASSERT_NO_MISMATCH(m, "large index_select");
    omp_set_num_threads(2);
    da_ctx_free(ctx);
    free(x);
    free(cot);
    free(want);
}

START_TEST(test_large)
{
    double *g1 = malloc(60000 * sizeof *g1), *g2 = malloc(60000 * sizeof *g2);
    large_select(1, g1);
    large_select(2, g2);
    ck_assert(memcmp(g1, g2, 60000 * sizeof *g1) == 0);
    free(g1);
    free(g2);
    /* permute [64][32][24] by (2, 0, 1), slice, concat and reshape of it; the gradient
     * of a permutation puts every cotangent back at its source */
    int shape[3] = {64, 32, 24}, perm[3] = {2, 0, 1};
    const long n = 64 * 32 * 24;
    double *x = malloc(n * sizeof *x), *cot = malloc(n * sizeof *cot);
    gc_random(x, n, 902, -1, 1);
    gc_random(cot, n, 903, -1, 1);
    da_ctx *ctx = da_ctx_new();
    da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 3, shape, x);
    t->requires_grad = 1;
    da_tensor *p = da_permute(ctx, t, perm);
    check_permuted(t, p, perm);
    da_tensor *halves[2] = {da_slice(ctx, p, 1, 32, 64), da_slice(ctx, p, 1, 0, 32)};
    da_tensor *swapped = da_concat(ctx, halves, 2, 1); /* rows 32..63 then 0..31 */
    int flat[1] = {-1};
    da_tensor *o = da_reshape(ctx, swapped, 1, flat);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(da_backward_from(ctx, o, cot), DA_OK);
    int c[3], src[3];
    mismatch m = {0};
    for (long i = 0; i < n; i++) { /* o[i] = p[c with c[1] shifted by 32] */
        unravel(3, p->shape, i, c);
        c[1] = (c[1] + 32) % 64;
        for (int d = 0; d < 3; d++)
            src[perm[d]] = c[d];
        long s = ravel(3, shape, src);
        expect_near(&m, i, da_get(o, i), x[s], 0);
        expect_near(&m, i, da_get_grad(t, s), cot[i], 0);
    }
    ASSERT_NO_MISMATCH(m, "large permute/slice/concat/reshape");
    da_ctx_free(ctx);
    free(x);
    free(cot);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops_shape");
    TCase *tc = tcase_create("ops_shape");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reshape);
    tcase_add_test(tc, test_permute_all_4d);
    tcase_add_test(tc, test_transpose_and_errors);
    tcase_add_test(tc, test_slice);
    tcase_add_test(tc, test_concat);
    tcase_add_test(tc, test_concat_many);
    tcase_add_test(tc, test_concat_errors);
    tcase_add_test(tc, test_index_select);
    tcase_add_test(tc, test_large);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
