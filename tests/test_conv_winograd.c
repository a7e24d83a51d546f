/* test_conv_winograd.c - Winograd convolution (lib/ops_winograd.c) and the algorithm switch
 * (da_conv_set_algorithm): the built transforms against direct correlation in double; the
 * F32 Winograd conv2d, conv2d+relu and conv2d+relu+maxpool (values and the grads of x, w,
 * b) against the F64 im2col result and against F32 im2col, on ragged tile edges, pads 0-2,
 * 3x3 and 5x5; which convolutions the switch sends to Winograd; bitwise thread-count
 * independence; allocation failures. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "diffalg.h"
#include "gradcheck.h"
#include "ops_conv_impl.h"
#include "suite_run.h"

#define F32_TOL 1e-4

/* max|a - b| / max|ref| */
static double rel_err(const double *a, const double *ref, long n)
{
    double d = 0, s = 0;
    for (long i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - ref[i]));
        s = fmax(s, fabs(ref[i]));
    }
    return d / (s > 0 ? s : 1);
}

/* ---- the transforms ---- */

/* 1-D: A^T [(G g) .* (B^T d)] against y[i] = sum_k g[k] d[i+k]; 2-D: A^T [(G w G^T) .*
 * (B^T d B)] A against Y[i][j] = sum_kl w[k][l] d[i+k][j+l] */
static void check_identity(int m, int r)
{
    enum { MT = WINO_MAX_T };
    int t = m + r - 1;
    double AT[MT * MT], G[MT * MT], BT[MT * MT];
    ck_assert_int_eq(da_winograd_matrices(m, r, AT, G, BT), DA_OK);
    double g[MT * MT], d[MT * MT], U[MT * MT], V[MT * MT], X[MT * MT], Y[MT * MT], ref[MT * MT];
    gc_random(g, r * r, 100 + m, -1, 1);
    gc_random(d, t * t, 200 + m, -1, 1);
    for (int xi = 0; xi < t; xi++) { /* 1-D on the first rows */
        double u = 0, v = 0;
        for (int k = 0; k < r; k++)
            u += G[xi * r + k] * g[k];
        for (int j = 0; j < t; j++)
            v += BT[xi * t + j] * d[j];
        X[xi] = u * v;
    }
    for (int i = 0; i < m; i++) {
        Y[i] = ref[i] = 0;
        for (int xi = 0; xi < t; xi++)
            Y[i] += AT[i * t + xi] * X[xi];
        for (int k = 0; k < r; k++)
            ref[i] += g[k] * d[i + k];
    }
    ck_assert_msg(rel_err(Y, ref, m) < 1e-12, "F(%d,%d) 1-D: %g", m, r, rel_err(Y, ref, m));
    for (int xi = 0; xi < t; xi++) /* 2-D */
        for (int xj = 0; xj < t; xj++) {
            double u = 0, v = 0;
            for (int k = 0; k < r; k++)
                for (int l = 0; l < r; l++)
                    u += G[xi * r + k] * g[k * r + l] * G[xj * r + l];
            for (int i = 0; i < t; i++)
                for (int j = 0; j < t; j++)
                    v += BT[xi * t + i] * d[i * t + j] * BT[xj * t + j];
            U[xi * t + xj] = u;
            V[xi * t + xj] = v;
        }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            double y = 0, s = 0;
            for (int xi = 0; xi < t; xi++)
                for (int xj = 0; xj < t; xj++)
                    y += AT[i * t + xi] * U[xi * t + xj] * V[xi * t + xj] * AT[j * t + xj];
            for (int k = 0; k < r; k++)
                for (int l = 0; l < r; l++)
                    s += g[k * r + l] * d[(i + k) * t + j + l];
            Y[i * m + j] = y;
            ref[i * m + j] = s;
        }
    double e = rel_err(Y, ref, m * m);
    ck_assert_msg(e < 1e-12, "F(%dx%d, %dx%d) 2-D: %g", m, m, r, r, e);
}

START_TEST(test_transforms)
{
    check_identity(2, 5); /* the two the convolutions use, t = 6 */
    check_identity(4, 3);
    check_identity(2, 3); /* the construction is general */
    check_identity(3, 2);
    check_identity(1, 4);
    check_identity(4, 5); /* t = 8, points up to +-3 */
    double AT[64], G[64], BT[64];
    ck_assert_int_eq(da_winograd_matrices(0, 3, AT, G, BT), DA_ERANGE);
    ck_assert_int_eq(da_winograd_matrices(5, 5, AT, G, BT), DA_ERANGE); /* t = 9 */
    ck_assert_str_ne(da_last_error(), "");
    /* the F(4, 3) of the paper up to row scaling: B^T's first row is 4, 0, -5, 0, 1, 0 */
    ck_assert_int_eq(da_winograd_matrices(4, 3, AT, G, BT), DA_OK);
    const double bt0[6] = {4, 0, -5, 0, 1, 0};
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq(BT[i], bt0[i]);
}
END_TEST

/* ---- convolutions ---- */

typedef struct {
    int N, C, H, W, O, k, pad, bias, kind; /* kind: 0 conv, 1 + relu, 2 + relu + maxpool 2 */
} wcase;

typedef struct {
    long ny, nx, nw, nb;
    double *y, *gx, *gw, *gb; /* one allocation, y first */
} result;

static void result_free(result *r) { free(r->y); }

/* forward, and backward from the cotangent cos(0.7 i) of the output, in dtype under algo */
static result run(const wcase *c, da_dtype dt, da_conv_algorithm algo, int stride)
{
    ck_assert_int_eq(da_conv_set_algorithm(algo), DA_OK);
    int xs[4] = {c->N, c->C, c->H, c->W}, ws[4] = {c->O, c->C, c->k, c->k}, bs[1] = {c->O};
    long nx = (long)c->N * c->C * c->H * c->W, nw = (long)c->O * c->C * c->k * c->k;
    double *vx = malloc(nx * sizeof *vx), *vw = malloc(nw * sizeof *vw), *vb = malloc(c->O * sizeof *vb);
    gc_random(vx, nx, 1 + c->H, -1, 1);
    gc_random(vw, nw, 2 + c->W, -0.3, 0.3);
    gc_random(vb, c->O, 3, -0.2, 0.2);
    da_ctx *ctx = da_ctx_new();
    da_tensor *x = da_ctx_tensor_from(ctx, dt, 4, xs, vx);
    da_tensor *w = da_ctx_tensor_from(ctx, dt, 4, ws, vw);
    da_tensor *b = c->bias ? da_ctx_tensor_from(ctx, dt, 1, bs, vb) : NULL;
    x->requires_grad = w->requires_grad = 1;
    if (b)
        b->requires_grad = 1;
    da_tensor *y = c->kind == 2 ? da_conv2d_relu_maxpool(ctx, x, w, b, stride, c->pad, 2, 2)
                 : c->kind == 1 ? da_conv2d_relu(ctx, x, w, b, stride, c->pad)
                                : da_conv2d(ctx, x, w, b, stride, c->pad);
    ck_assert_msg(y != NULL, "%s", da_last_error());
    result r = {.ny = y->size, .nx = nx, .nw = nw, .nb = c->O};
    r.y = malloc((r.ny + nx + nw + c->O) * sizeof(double));
    r.gx = r.y + r.ny, r.gw = r.gx + nx, r.gb = r.gw + nw;
    double *cot = malloc(r.ny * sizeof *cot);
    for (long i = 0; i < r.ny; i++)
        cot[i] = cos(0.7 * (double)i);
    ck_assert_int_eq(da_backward_from(ctx, y, cot), DA_OK);
    free(cot);
    da_tensor_copy_to(y, r.y);
    for (long i = 0; i < nx; i++)
        r.gx[i] = da_get_grad(x, i);
    for (long i = 0; i < nw; i++)
        r.gw[i] = da_get_grad(w, i);
    for (long i = 0; i < c->O; i++)
        r.gb[i] = b ? da_get_grad(b, i) : 0;
    da_ctx_free(ctx);
    free(vx);
    free(vw);
    free(vb);
    return r;
}

/* the largest of the normwise errors of y, gx, gw, gb */
static double result_err(const result *a, const result *ref)
{
    ck_assert_int_eq(a->ny, ref->ny);
    double e = fmax(rel_err(a->y, ref->y, a->ny), rel_err(a->gx, ref->gx, a->nx));
    return fmax(e, fmax(rel_err(a->gw, ref->gw, a->nw), rel_err(a->gb, ref->gb, a->nb)));
}

static int result_same(const result *a, const result *b)
{
    return a->ny == b->ny &&
           !memcmp(a->y, b->y, (size_t)(a->ny + a->nx + a->nw + a->nb) * sizeof(double));
}

static const wcase cases[] = {
    /* N C   H   W   O  k pad bias kind */
    {2, 8, 7, 9, 6, 5, 2, 1, 0},    /* 5x5: Ho, Wo = 7, 9, odd (ragged 2x2 tiles) */
    {3, 9, 10, 13, 5, 3, 1, 1, 0},  /* 3x3: 10 x 13, ragged 4x4 tiles */
    {2, 8, 9, 11, 4, 3, 0, 0, 1},   /* pad 0, relu, 7 x 9 */
    {2, 10, 8, 8, 7, 5, 0, 1, 2},   /* pad 0, 4 x 4, relu + maxpool */
    {2, 8, 14, 19, 6, 5, 2, 1, 2},  /* the ranking CNN's conv2 shape class, relu + maxpool */
    {1, 12, 6, 7, 3, 3, 2, 1, 1},   /* pad 2 with 3x3: 8 x 9 */
    {2, 8, 1, 1, 3, 5, 2, 1, 0},    /* 1x1 image, every tap but the centre padded */
    {2, 8, 3, 3, 4, 3, 0, 1, 0},    /* a single output */
    {1, 16, 23, 5, 9, 3, 1, 1, 2},  /* tall, ragged both ways, odd pool edge */
};

START_TEST(test_winograd_vs_double)
{
    const wcase *c = &cases[_i];
    result ref = run(c, DA_F64, DA_CONV_IM2COL, 1);
    result fi = run(c, DA_F32, DA_CONV_IM2COL, 1);
    result fw = run(c, DA_F32, DA_CONV_AUTO, 1); /* C >= 8: Winograd */
    double ew = result_err(&fw, &ref), ei = result_err(&fi, &ref), ewi = result_err(&fw, &fi);
    printf("case %d: %dx%d pad %d kind %d: winograd vs f64 %.2e, im2col f32 vs f64 %.2e, "
           "winograd vs im2col f32 %.2e\n", _i, c->k, c->k, c->pad, c->kind, ew, ei, ewi);
    ck_assert_msg(ew < F32_TOL, "winograd f32 vs f64: %g", ew);
    ck_assert_msg(ewi < F32_TOL, "winograd vs im2col f32: %g", ewi);
    ck_assert_msg(ei < F32_TOL, "im2col f32 vs f64: %g", ei);
    ck_assert_msg(!result_same(&fw, &fi), "AUTO gave the im2col result bit for bit");
    result_free(&ref);
    result_free(&fi);
    result_free(&fw);
}
END_TEST

/* AUTO sends C < 8 to im2col, WINOGRAD takes it; F64, strides != 1 and other kernels fall
 * back to im2col under WINOGRAD (the same bits); unknown values are refused */
START_TEST(test_switch)
{
    ck_assert_int_eq(da_conv_get_algorithm(), DA_CONV_AUTO);
    ck_assert_int_eq(da_conv_set_algorithm((da_conv_algorithm)7), DA_ERANGE);
    ck_assert_int_eq(da_conv_get_algorithm(), DA_CONV_AUTO);
    const wcase few = {2, 3, 9, 10, 4, 3, 1, 1, 0}, many = {2, 8, 9, 10, 4, 3, 1, 1, 0};
    const wcase k4 = {2, 8, 9, 10, 4, 4, 1, 1, 0};
    result im = run(&few, DA_F32, DA_CONV_IM2COL, 1), au = run(&few, DA_F32, DA_CONV_AUTO, 1);
    result wi = run(&few, DA_F32, DA_CONV_WINOGRAD, 1);
    ck_assert_int_eq(da_conv_get_algorithm(), DA_CONV_WINOGRAD);
    ck_assert(result_same(&im, &au));
    ck_assert(!result_same(&im, &wi));
    ck_assert_double_lt(result_err(&wi, &im), F32_TOL);
    result_free(&im), result_free(&au), result_free(&wi);
    const wcase *fall[3] = {&many, &many, &k4}; /* F64; stride 2; a 4x4 kernel */
    for (int i = 0; i < 3; i++) {
        da_dtype dt = i == 0 ? DA_F64 : DA_F32;
        int stride = i == 1 ? 2 : 1;
        result a = run(fall[i], dt, DA_CONV_IM2COL, stride);
        result b = run(fall[i], dt, DA_CONV_WINOGRAD, stride);
        ck_assert_msg(result_same(&a, &b), "fallback %d differs from im2col", i);
        result_free(&a), result_free(&b);
    }
}
END_TEST

/* every grad (dW, db through the fixed slots; dx per image) bitwise the same for 1 and 2
 * threads, on several chunks */
START_TEST(test_threads)
{
    const wcase cs[2] = {{24, 8, 20, 21, 6, 5, 2, 1, 2}, {30, 8, 16, 18, 5, 3, 1, 1, 0}};
    for (int i = 0; i < 2; i++) {
        omp_set_num_threads(1);
        result a = run(&cs[i], DA_F32, DA_CONV_AUTO, 1);
        omp_set_num_threads(2);
        result b = run(&cs[i], DA_F32, DA_CONV_AUTO, 1);
        ck_assert_msg(result_same(&a, &b), "case %d depends on the thread count", i);
        result_free(&a), result_free(&b);
    }
}
END_TEST

/* one Winograd conv + relu + maxpool with backward; every allocation failing in turn */
static int alloc_call(void)
{
    int xs[4] = {3, 8, 9, 10}, ws[4] = {4, 8, 5, 5}, bs[1] = {4}, rc = DA_OK;
    da_ctx *ctx = da_ctx_new();
    da_tensor *x = ctx ? da_ctx_tensor(ctx, DA_F32, 4, xs) : NULL;
    da_tensor *w = x ? da_ctx_tensor(ctx, DA_F32, 4, ws) : NULL;
    da_tensor *b = w ? da_ctx_tensor(ctx, DA_F32, 1, bs) : NULL;
    if (!b) {
        rc = da_last_error_code();
        goto done;
    }
    for (long i = 0; i < x->size; i++)
        da_set(x, i, sin(0.3 * (double)i));
    for (long i = 0; i < w->size; i++)
        da_set(w, i, cos(0.2 * (double)i));
    x->requires_grad = w->requires_grad = b->requires_grad = 1;
    da_tensor *y = da_conv2d_relu_maxpool(ctx, x, w, b, 1, 2, 2, 2);
    da_tensor *l = y ? da_mse(ctx, y, da_ctx_tensor(ctx, DA_F32, 4, y->shape)) : NULL;
    rc = l ? da_backward(ctx, l) : da_last_error_code();
done:
    da_ctx_free(ctx);
    return rc;
}

START_TEST(test_alloc_fail)
{
    da_conv_set_algorithm(DA_CONV_WINOGRAD);
    long before = da_alloc_count();
    ck_assert_int_eq(alloc_call(), DA_OK);
    long n = da_alloc_count() - before;
    ck_assert_int_gt(n, 0);
    for (long k = 0; k < n; k++) {
        da_clear_error();
        da_alloc_fail_after(k);
        int rc = alloc_call();
        da_alloc_fail_after(-1);
        ck_assert_msg(rc == DA_ENOMEM && da_last_error()[0], "allocation %ld of %ld: %d '%s'",
                      k, n, rc, da_last_error());
    }
    ck_assert_int_eq(alloc_call(), DA_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv_winograd");
    TCase *tc = tcase_create("conv_winograd");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_transforms);
    tcase_add_loop_test(tc, test_winograd_vs_double, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, test_switch);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_alloc_fail);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
