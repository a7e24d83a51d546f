/* test_ops_nn.c - matmul, bmm, linear, conv2d, pooling and the losses (lib/ops_nn.c):
 * forward values against naive loops, gradients against central differences in F64,
 * F32 against F64, thread-count independence, and the error paths. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "suite_run.h"

#define GC_TOL 1e-6
#define F32_TOL 1e-4

/* ---- graph builders for gc_check ---- */

static da_tensor *f_matmul(da_ctx *ctx, da_tensor **in, void *u) { return da_matmul(ctx, in[0], in[1]); }
static da_tensor *f_bmm(da_ctx *ctx, da_tensor **in, void *u) { return da_bmm(ctx, in[0], in[1]); }
static da_tensor *f_linear(da_ctx *ctx, da_tensor **in, void *u) { return da_linear(ctx, in[0], in[1], in[2]); }
static da_tensor *f_linear_nob(da_ctx *ctx, da_tensor **in, void *u) { return da_linear(ctx, in[0], in[1], NULL); }
static da_tensor *f_linear_relu(da_ctx *ctx, da_tensor **in, void *u) { return da_linear_relu(ctx, in[0], in[1], in[2]); }

typedef struct {
    int N, C, H, W, O, kh, kw, stride, pad, bias, relu, pool_k, pool_s;
} conv_cfg;

static da_tensor *f_conv(da_ctx *ctx, da_tensor **in, void *u)
{
    const conv_cfg *c = u;
    da_tensor *b = c->bias ? in[2] : NULL;
    if (c->pool_k)
        return da_conv2d_relu_maxpool(ctx, in[0], in[1], b, c->stride, c->pad, c->pool_k,
                                      c->pool_s);
    return c->relu ? da_conv2d_relu(ctx, in[0], in[1], b, c->stride, c->pad)
                   : da_conv2d(ctx, in[0], in[1], b, c->stride, c->pad);
}

typedef struct {
    int k, s, is_max;
} pool_cfg;

static void pool_naive(const pool_cfg *p, int N, int C, int H, int W, const double *x, double *y);

static da_tensor *f_pool(da_ctx *ctx, da_tensor **in, void *u)
{
    const pool_cfg *p = u;
    return p->is_max ? da_maxpool2d(ctx, in[0], p->k, p->s) : da_avgpool2d(ctx, in[0], p->k, p->s);
}

static da_tensor *f_ce(da_ctx *ctx, da_tensor **in, void *u) { return da_cross_entropy(ctx, in[0], u); }
static da_tensor *f_bce(da_ctx *ctx, da_tensor **in, void *u) { return da_bce(ctx, in[0], in[1]); }
static da_tensor *f_mse(da_ctx *ctx, da_tensor **in, void *u) { return da_mse(ctx, in[0], in[1]); }

/* F64 forward of f on the given inputs, values copied to out (returns the size) */
static long forward64(gc_fn f, int n_in, const gc_input *in, void *user, double *out)
{
    da_ctx *ctx = da_ctx_new();
    da_tensor *t[DA_MAX_INPUTS];
    for (int i = 0; i < n_in; i++)
        t[i] = da_ctx_tensor_from(ctx, DA_F64, in[i].ndim, in[i].shape, in[i].data);
    da_tensor *y = f(ctx, t, user);
    ck_assert_msg(y != NULL, "%s", da_last_error());
    long n = y->size;
    da_tensor_copy_to(y, out);
    da_ctx_free(ctx);
    return n;
}

static double max_abs_diff(const double *a, const double *b, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

static void check_grads(gc_fn f, int n_in, const gc_input *in, void *user)
{
    double e64 = gc_check(f, n_in, in, user, 1e-6);
    ck_assert_msg(e64 < GC_TOL, "F64 gradient error %g (%s)", e64, da_last_error());
    double e32 = gc_check_f32(f, n_in, in, user);
    ck_assert_msg(e32 < F32_TOL, "F32 vs F64 error %g (%s)", e32, da_last_error());
}

/* ---- matmul, bmm, linear ---- */

START_TEST(test_matmul)
{
    int m = 3, k = 5, n = 4;
    double a[15], b[20], y[12], ref[12];
    gc_random(a, 15, 1, -1, 1);
    gc_random(b, 20, 2, -1, 1);
    gc_input in[2] = {{2, {m, k}, a, 1}, {2, {k, n}, b, 1}};
    ck_assert_int_eq(forward64(f_matmul, 2, in, NULL, y), m * n);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            ref[i * n + j] = 0;
            for (int l = 0; l < k; l++)
                ref[i * n + j] += a[i * k + l] * b[l * n + j];
        }
    ck_assert_double_lt(max_abs_diff(y, ref, 12), 1e-14);
    check_grads(f_matmul, 2, in, NULL);
}
END_TEST

START_TEST(test_bmm)
{
    int B = 3, m = 2, k = 4, n = 5;
    double a[24], b[60], y[30];
    gc_random(a, 24, 3, -1, 1);
    gc_random(b, 60, 4, -1, 1);
    gc_input in[2] = {{3, {B, m, k}, a, 1}, {3, {B, k, n}, b, 1}};
    ck_assert_int_eq(forward64(f_bmm, 2, in, NULL, y), B * m * n);
    for (int s = 0; s < B; s++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double r = 0;
                for (int l = 0; l < k; l++)
                    r += a[(s * m + i) * k + l] * b[(s * k + l) * n + j];
                ck_assert_double_eq_tol(y[(s * m + i) * n + j], r, 1e-14);
            }
    check_grads(f_bmm, 2, in, NULL);
}
END_TEST

START_TEST(test_linear)
{
    int N = 4, I = 6, O = 3;
    double x[24], W[18], b[3], y[12];
    gc_random(x, 24, 5, -1, 1);
    gc_random(W, 18, 6, -1, 1);
    gc_random(b, 3, 7, -1, 1);
    gc_input in[3] = {{2, {N, I}, x, 1}, {2, {O, I}, W, 1}, {1, {O}, b, 1}};
    for (int variant = 0; variant < 3; variant++) {
        gc_fn f = variant == 0 ? f_linear : variant == 1 ? f_linear_nob : f_linear_relu;
        int n_in = variant == 1 ? 2 : 3;
        forward64(f, n_in, in, NULL, y);
        for (int r = 0; r < N; r++)
            for (int o = 0; o < O; o++) {
                double v = variant == 1 ? 0 : b[o];
                for (int i = 0; i < I; i++)
                    v += x[r * I + i] * W[o * I + i];
                if (variant == 2)
                    v = fmax(v, 0);
                ck_assert_double_eq_tol(y[r * O + o], v, 1e-14);
            }
        check_grads(f, n_in, in, NULL);
    }
}
END_TEST

/* ---- conv2d ---- */

static void conv_naive(const conv_cfg *c, const double *x, const double *w, const double *b,
                       double *y)
{
    int Ho = (c->H + 2 * c->pad - c->kh) / c->stride + 1;
    int Wo = (c->W + 2 * c->pad - c->kw) / c->stride + 1;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->O; o++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double v = c->bias ? b[o] : 0;
                    for (int ch = 0; ch < c->C; ch++)
                        for (int i = 0; i < c->kh; i++)
                            for (int j = 0; j < c->kw; j++) {
                                int ih = oh * c->stride + i - c->pad;
                                int iw = ow * c->stride + j - c->pad;
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W)
                                    continue;
                                v += w[((o * c->C + ch) * c->kh + i) * c->kw + j] *
                                     x[((n * c->C + ch) * c->H + ih) * c->W + iw];
                            }
                    if (c->relu)
                        v = fmax(v, 0);
                    y[((n * c->O + o) * Ho + oh) * Wo + ow] = v;
                }
}

static const conv_cfg conv_cases[] = {
    /* N C  H  W  O kh kw s p bias relu pool_k pool_s (pool: relu + maxpool fused) */
    {2, 2, 5, 6, 3, 3, 3, 1, 0, 1, 0, 0, 0},
    {2, 3, 7, 5, 2, 3, 2, 2, 1, 1, 0, 0, 0},
    {1, 2, 6, 7, 3, 2, 3, 1, 2, 0, 0, 0, 0},
    {2, 1, 8, 6, 2, 5, 4, 2, 2, 1, 0, 0, 0},
    {3, 2, 6, 5, 2, 3, 3, 2, 0, 1, 1, 0, 0},
    {1, 1, 1, 1, 2, 3, 3, 1, 1, 1, 0, 0, 0}, /* 1x1 image, every tap but the centre padded */
    {2, 2, 4, 9, 3, 4, 2, 3, 1, 0, 1, 0, 0},
    {2, 2, 9, 8, 3, 3, 3, 1, 0, 1, 1, 2, 2},
    {2, 3, 10, 9, 2, 3, 2, 1, 1, 1, 1, 3, 2},
    {1, 2, 11, 7, 4, 2, 3, 2, 2, 0, 1, 2, 1},
};

START_TEST(test_conv2d)
{
    const conv_cfg *c = &conv_cases[_i];
    int nx = c->N * c->C * c->H * c->W, nw = c->O * c->C * c->kh * c->kw;
    double *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), b[8];
    gc_random(x, nx, 10 + _i, -1, 1);
    gc_random(w, nw, 20 + _i, -1, 1);
    gc_random(b, c->O, 30 + _i, -0.5, 0.5);
    int Ho = (c->H + 2 * c->pad - c->kh) / c->stride + 1;
    int Wo = (c->W + 2 * c->pad - c->kw) / c->stride + 1;
    long ny = (long)c->N * c->O * Ho * Wo;
    double *y = malloc(ny * sizeof *y), *ref = malloc(ny * sizeof *ref);
    double *pooled = malloc(ny * sizeof *pooled);
    gc_input in[3] = {{4, {c->N, c->C, c->H, c->W}, x, 1},
                      {4, {c->O, c->C, c->kh, c->kw}, w, 1},
                      {1, {c->O}, b, 1}};
    int n_in = c->bias ? 3 : 2;
    long n_out = forward64(f_conv, n_in, in, (void *)c, y);
    conv_naive(c, x, w, b, ref);
    if (c->pool_k) {
        pool_cfg p = {c->pool_k, c->pool_s, 1};
        pool_naive(&p, c->N, c->O, Ho, Wo, ref, pooled);
        memcpy(ref, pooled, ny * sizeof *ref);
        ny = (long)c->N * c->O * ((Ho - p.k) / p.s + 1) * ((Wo - p.k) / p.s + 1);
    }
    ck_assert_int_eq(n_out, ny);
    ck_assert_double_lt(max_abs_diff(y, ref, ny), 1e-13);
    check_grads(f_conv, n_in, in, (void *)c);
    free(x);
    free(w);
    free(y);
    free(ref);
    free(pooled);
}
END_TEST

/* im2col/col2im and the pooling run on OpenMP threads over the batch: results must not
 * depend on the thread count (bitwise). Sizes are above the threshold for threading. */
START_TEST(test_conv2d_threads)
{
    int xs[4] = {16, 3, 20, 18}, ws[4] = {8, 3, 3, 3}, bs[1] = {8};
    long nx = 16 * 3 * 20 * 18, cap = nx + 300;
    double *res[2], *vx = malloc(nx * sizeof *vx), vw[216], vb[8];
    long len[2];
    gc_random(vx, nx, 40, -1, 1);
    gc_random(vw, 216, 41, -1, 1);
    gc_random(vb, 8, 43, -1, 1);
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        da_ctx *ctx = da_ctx_new();
        da_tensor *x = da_ctx_tensor_from(ctx, DA_F32, 4, xs, vx);
        da_tensor *w = da_ctx_tensor_from(ctx, DA_F32, 4, ws, vw);
        da_tensor *b = da_ctx_tensor_from(ctx, DA_F32, 1, bs, vb);
        x->requires_grad = w->requires_grad = b->requires_grad = 1;
        da_tensor *y1 = da_maxpool2d(ctx, da_conv2d(ctx, x, w, b, 1, 1), 4, 2); /* 9x8 */
        da_tensor *y2 = da_conv2d_relu_maxpool(ctx, x, w, b, 1, 0, 2, 2);      /* 9x8 */
        da_tensor *l = da_mse(ctx, y1, y2);
        ck_assert_msg(l != NULL, "%s", da_last_error());
        ck_assert_int_eq(da_backward(ctx, l), DA_OK);
        res[t] = malloc(cap * sizeof(double));
        long k = 0;
        res[t][k++] = da_get(l, 0);
        for (long i = 0; i < x->size; i++)
            res[t][k++] = da_get_grad(x, i);
        for (long i = 0; i < w->size; i++)
            res[t][k++] = da_get_grad(w, i);
        for (long i = 0; i < b->size; i++)
            res[t][k++] = da_get_grad(b, i);
        len[t] = k;
        da_ctx_free(ctx);
    }
    omp_set_num_threads(2);
    ck_assert_int_eq(len[0], len[1]);
    ck_assert(memcmp(res[0], res[1], (size_t)len[0] * sizeof(double)) == 0);
    free(res[0]);
    free(res[1]);
    free(vx);
}
END_TEST

/* ---- pooling ---- */

static void pool_naive(const pool_cfg *p, int N, int C, int H, int W, const double *x, double *y)
{
    int Ho = (H - p->k) / p->s + 1, Wo = (W - p->k) / p->s + 1;
    for (int q = 0; q < N * C; q++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                double m = -INFINITY, s = 0;
                for (int i = 0; i < p->k; i++)
                    for (int j = 0; j < p->k; j++) {
                        double v = x[(q * H + oh * p->s + i) * W + ow * p->s + j];
                        m = fmax(m, v);
                        s += v;
                    }
                y[(q * Ho + oh) * Wo + ow] = p->is_max ? m : s / (p->k * p->k);
            }
}

static const pool_cfg pool_cases[] = {
    {2, 2, 1}, {2, 1, 1}, {3, 2, 1}, {2, 3, 1}, {2, 2, 0}, {3, 1, 0}, {2, 3, 0}, {3, 2, 0},
};

START_TEST(test_pool)
{
    const pool_cfg *p = &pool_cases[_i];
    int N = 2, C = 3, H = 7, W = 8;
    double x[2 * 3 * 7 * 8], y[2 * 3 * 7 * 8], ref[2 * 3 * 7 * 8];
    gc_random(x, N * C * H * W, 50 + _i, -1, 1);
    gc_input in[1] = {{4, {N, C, H, W}, x, 1}};
    long n = forward64(f_pool, 1, in, (void *)p, y);
    ck_assert_int_eq(n, N * C * ((H - p->k) / p->s + 1) * ((W - p->k) / p->s + 1));
    pool_naive(p, N, C, H, W, x, ref);
    ck_assert_double_lt(max_abs_diff(y, ref, n), 1e-15);
    check_grads(f_pool, 1, in, (void *)p);
}
END_TEST

/* a NaN in a window is the max (it propagates like torch), not silently dropped */
START_TEST(test_maxpool_nan)
{
    da_ctx *ctx = da_ctx_new();
    int shape[4] = {1, 1, 2, 2};
    double v[4] = {1, NAN, 3, 2};
    da_tensor *x = da_ctx_tensor_from(ctx, DA_F64, 4, shape, v);
    da_tensor *y = da_maxpool2d(ctx, x, 2, 2);
    ck_assert_ptr_nonnull(y);
    ck_assert(isnan(da_get(y, 0)));
    da_ctx_free(ctx);
}
END_TEST

/* ---- losses ---- */

START_TEST(test_cross_entropy)
{
    int N = 6, C = 5, labels[6] = {0, 4, 2, 2, 1, 3};
    double z[30], l;
    gc_random(z, 30, 60, -3, 3);
    gc_input in[1] = {{2, {N, C}, z, 1}};
    ck_assert_int_eq(forward64(f_ce, 1, in, labels, &l), 1);
    double ref = 0;
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int c = 0; c < C; c++)
            s += exp(z[i * C + c]);
        ref += log(s) - z[i * C + labels[i]];
    }
    ck_assert_double_eq_tol(l, ref / N, 1e-14);
    check_grads(f_ce, 1, in, labels);
    /* stability: shifting every logit by 1000 changes nothing */
    double zs[30], ls;
    for (int i = 0; i < 30; i++)
        zs[i] = z[i] + 1000;
    gc_input ins[1] = {{2, {N, C}, zs, 1}};
    forward64(f_ce, 1, ins, labels, &ls);
    ck_assert_double_eq_tol(ls, l, 1e-10);
    /* two classes, more samples */
    int lab2[9] = {0, 1, 1, 0, 1, 0, 0, 1, 1};
    double z2[18];
    gc_random(z2, 18, 61, -2, 2);
    gc_input in2[1] = {{2, {9, 2}, z2, 1}};
    check_grads(f_ce, 1, in2, lab2);
}
END_TEST

START_TEST(test_bce)
{
    double p[12], t[12], l;
    gc_random(p, 12, 70, 0.05, 0.95);
    gc_random(t, 12, 71, 0, 1);
    t[0] = 0;
    t[1] = 1;
    gc_input in[2] = {{2, {3, 4}, p, 1}, {2, {3, 4}, t, 1}};
    forward64(f_bce, 2, in, NULL, &l);
    double ref = 0;
    for (int i = 0; i < 12; i++)
        ref -= t[i] * log(p[i]) + (1 - t[i]) * log(1 - p[i]);
    ck_assert_double_eq_tol(l, ref / 12, 1e-14);
    check_grads(f_bce, 2, in, NULL);
}
END_TEST

/* clamped logs (torch.nn.BCELoss): value 100 per saturated term, zero derivative */
START_TEST(test_bce_clamped)
{
    da_ctx *ctx = da_ctx_new();
    int shape[1] = {4};
    double p[4] = {0, 1, 1e-50, 0.3}, t[4] = {1, 0, 0.5, 0.2};
    da_tensor *pt = da_ctx_tensor_from(ctx, DA_F64, 1, shape, p);
    da_tensor *tt = da_ctx_tensor_from(ctx, DA_F64, 1, shape, t);
    pt->requires_grad = tt->requires_grad = 1;
    da_tensor *l = da_bce(ctx, pt, tt);
    ck_assert_ptr_nonnull(l);
    double t3 = -(0.2 * log(0.3) + 0.8 * log(0.7));
    ck_assert_double_eq_tol(da_get(l, 0), (100 + 100 + 50 + t3) / 4, 1e-12);
    ck_assert_int_eq(da_backward(ctx, l), DA_OK);
    ck_assert_double_eq(da_get_grad(pt, 0), 0);
    ck_assert_double_eq(da_get_grad(pt, 1), 0);
    ck_assert_double_eq_tol(da_get_grad(pt, 2), 0.5 / 4, 1e-15);
    ck_assert_double_eq_tol(da_get_grad(pt, 3), -(0.2 / 0.3 - 0.8 / 0.7) / 4, 1e-15);
    /* d/dt = -(max(log p, -100) - max(log(1-p), -100)) / n */
    ck_assert_double_eq_tol(da_get_grad(tt, 0), -(-100 - 0) / 4.0, 1e-15);
    ck_assert_double_eq_tol(da_get_grad(tt, 1), -(0 + 100) / 4.0, 1e-15);
    ck_assert_double_eq_tol(da_get_grad(tt, 3), -(log(0.3) - log(0.7)) / 4, 1e-15);
    da_ctx_free(ctx);
}
END_TEST

START_TEST(test_mse)
{
    double a[10], b[10], l;
    gc_random(a, 10, 80, -2, 2);
    gc_random(b, 10, 81, -2, 2);
    gc_input in[2] = {{2, {2, 5}, a, 1}, {2, {2, 5}, b, 1}};
    forward64(f_mse, 2, in, NULL, &l);
    double ref = 0;
    for (int i = 0; i < 10; i++)
        ref += (a[i] - b[i]) * (a[i] - b[i]);
    ck_assert_double_eq_tol(l, ref / 10, 1e-14);
    check_grads(f_mse, 2, in, NULL);
}
END_TEST

/* ---- error paths ---- */

static void expect_err(da_tensor *t, int code)
{
    ck_assert_ptr_null(t);
    ck_assert_int_eq(da_last_error_code(), code);
    ck_assert(strlen(da_last_error()) > 0);
    da_clear_error();
}

START_TEST(test_errors)
{
    da_ctx *ctx = da_ctx_new();
    int s23[2] = {2, 3}, s34[2] = {3, 4}, s24[2] = {2, 4}, s3[1] = {3}, s4[1] = {4};
    int x4[4] = {2, 3, 6, 6}, w4[4] = {4, 3, 3, 3}, w4b[4] = {4, 2, 3, 3};
    da_tensor *a = da_ctx_tensor(ctx, DA_F64, 2, s23), *b = da_ctx_tensor(ctx, DA_F64, 2, s34);
    da_tensor *c = da_ctx_tensor(ctx, DA_F64, 2, s24), *af = da_ctx_tensor(ctx, DA_F32, 2, s23);
    da_tensor *v3 = da_ctx_tensor(ctx, DA_F64, 1, s3), *v4 = da_ctx_tensor(ctx, DA_F64, 1, s4);
    da_tensor *x = da_ctx_tensor(ctx, DA_F64, 4, x4), *w = da_ctx_tensor(ctx, DA_F64, 4, w4);
    da_tensor *wb = da_ctx_tensor(ctx, DA_F64, 4, w4b);
    da_clear_error();
    /* matmul / bmm */
    ck_assert_ptr_nonnull(da_matmul(ctx, a, b));
    expect_err(da_matmul(ctx, a, c), DA_ESHAPE);
    expect_err(da_matmul(ctx, af, b), DA_EDTYPE);
    expect_err(da_matmul(ctx, NULL, b), DA_EINVAL);
    expect_err(da_matmul(NULL, a, b), DA_EINVAL);
    expect_err(da_bmm(ctx, a, b), DA_ESHAPE);
    expect_err(da_matmul(ctx, x, b), DA_ESHAPE);
    /* linear: W [4][3] fits x [2][3]; b must be [4] */
    da_tensor *W43 = da_ctx_tensor(ctx, DA_F64, 2, (int[]){4, 3});
    ck_assert_ptr_nonnull(da_linear(ctx, a, W43, v4));
    expect_err(da_linear(ctx, a, W43, v3), DA_ESHAPE);
    expect_err(da_linear(ctx, a, b, NULL), DA_ESHAPE);
    expect_err(da_linear(ctx, af, W43, NULL), DA_EDTYPE);
    expect_err(da_linear_relu(ctx, a, NULL, NULL), DA_EINVAL);
    /* conv2d */
    ck_assert_ptr_nonnull(da_conv2d(ctx, x, w, v4, 1, 0));
    expect_err(da_conv2d(ctx, x, wb, NULL, 1, 0), DA_ESHAPE);
    expect_err(da_conv2d(ctx, x, w, v3, 1, 0), DA_ESHAPE);
    expect_err(da_conv2d(ctx, x, w, NULL, 0, 0), DA_ERANGE);
    expect_err(da_conv2d(ctx, x, w, NULL, 1, -1), DA_ERANGE);
    expect_err(da_conv2d(ctx, a, w, NULL, 1, 0), DA_ESHAPE);
    int wbig[4] = {4, 3, 9, 3};
    expect_err(da_conv2d(ctx, x, da_ctx_tensor(ctx, DA_F64, 4, wbig), NULL, 1, 1), DA_ESHAPE);
    expect_err(da_conv2d_relu(ctx, NULL, w, NULL, 1, 0), DA_EINVAL);
    ck_assert_ptr_nonnull(da_conv2d_relu_maxpool(ctx, x, w, v4, 1, 0, 4, 1));
    expect_err(da_conv2d_relu_maxpool(ctx, x, w, v4, 1, 0, 5, 1), DA_ESHAPE);
    expect_err(da_conv2d_relu_maxpool(ctx, x, w, v4, 1, 0, 0, 1), DA_ERANGE);
    expect_err(da_conv2d_relu_maxpool(ctx, x, w, v4, 1, 0, 2, 0), DA_ERANGE);
    expect_err(da_conv2d_relu_maxpool(ctx, x, wb, v4, 1, 0, 2, 2), DA_ESHAPE);
    /* pooling */
    ck_assert_ptr_nonnull(da_maxpool2d(ctx, x, 6, 1));
    expect_err(da_maxpool2d(ctx, x, 7, 1), DA_ESHAPE);
    expect_err(da_avgpool2d(ctx, x, 0, 1), DA_ERANGE);
    expect_err(da_maxpool2d(ctx, x, 2, 0), DA_ERANGE);
    expect_err(da_avgpool2d(ctx, a, 2, 2), DA_ESHAPE);
    expect_err(da_maxpool2d(ctx, NULL, 2, 2), DA_EINVAL);
    /* cross entropy */
    int lab[2] = {0, 2}, bad[2] = {0, 3}, neg[2] = {-1, 0};
    ck_assert_ptr_nonnull(da_cross_entropy(ctx, a, lab));
    expect_err(da_cross_entropy(ctx, a, bad), DA_ERANGE);
    expect_err(da_cross_entropy(ctx, a, neg), DA_ERANGE);
    expect_err(da_cross_entropy(ctx, a, NULL), DA_EINVAL);
    expect_err(da_cross_entropy(ctx, v3, lab), DA_ESHAPE);
    da_tensor *zn = da_ctx_tensor(ctx, DA_F32, 2, s23);
    da_set(zn, 4, NAN);
    expect_err(da_cross_entropy(ctx, zn, lab), DA_ENAN);
    da_set(zn, 4, INFINITY);
    expect_err(da_cross_entropy(ctx, zn, lab), DA_ENAN);
    /* bce */
    da_tensor *p = da_ctx_tensor(ctx, DA_F64, 1, s3), *t = da_ctx_tensor(ctx, DA_F64, 1, s3);
    ck_assert_ptr_nonnull(da_bce(ctx, p, t));
    expect_err(da_bce(ctx, p, v4), DA_ESHAPE);
    da_set(p, 1, 1.5);
    expect_err(da_bce(ctx, p, t), DA_ERANGE);
    da_set(p, 1, -0.1);
    expect_err(da_bce(ctx, p, t), DA_ERANGE);
    da_set(p, 1, NAN);
    expect_err(da_bce(ctx, p, t), DA_ENAN);
    da_set(p, 1, 0.5);
    da_set(t, 0, NAN);
    expect_err(da_bce(ctx, p, t), DA_ENAN);
    expect_err(da_bce(ctx, NULL, t), DA_EINVAL);
    /* mse */
    ck_assert_ptr_nonnull(da_mse(ctx, a, a));
    expect_err(da_mse(ctx, a, c), DA_ESHAPE);
    expect_err(da_mse(ctx, a, af), DA_EDTYPE);
    da_set(c, 0, NAN);
    expect_err(da_mse(ctx, c, c), DA_ENAN);
    expect_err(da_mse(ctx, a, NULL), DA_EINVAL);
    /* a NULL input keeps the error of the op that failed first */
    da_tensor *chain = da_matmul(ctx, da_matmul(ctx, a, c), b);
    expect_err(da_mse(ctx, chain, chain), DA_ESHAPE);
    da_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops_nn");
    TCase *tc = tcase_create("ops_nn");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_matmul);
    tcase_add_test(tc, test_bmm);
    tcase_add_test(tc, test_linear);
    tcase_add_loop_test(tc, test_conv2d, 0, (int)(sizeof conv_cases / sizeof conv_cases[0]));
    tcase_add_test(tc, test_conv2d_threads);
    tcase_add_loop_test(tc, test_pool, 0, (int)(sizeof pool_cases / sizeof pool_cases[0]));
    tcase_add_test(tc, test_maxpool_nan);
    tcase_add_test(tc, test_cross_entropy);
    tcase_add_test(tc, test_bce);
    tcase_add_test(tc, test_bce_clamped);
    tcase_add_test(tc, test_mse);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
