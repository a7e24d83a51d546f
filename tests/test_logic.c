/* test_logic.c - difflogic gates, logic layers and GroupSum (lib/logic.h): every
 * `logic_gates` and `logic_layer` reference file on the plain-array and tensor faces,
 * the fused bilinear layer against a 16-gate sum written out here, central finite
 * differences in double, gc_check / gc_check_f32 on the tensor faces, thread-count
 * agreement, random connections, error paths. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "logic.h"
#include "refs.h"
#include "suite_run.h"

static const double *tget(const ref_file *r, const char *name, long size)
{
    const ref_tensor *t = ref_get(r, name);
    ck_assert_msg(t != NULL, "%s: no tensor %s", r->path, name);
    ck_assert_int_eq(t->size, size);
    return t->data;
}

static void expect_close(const double *a, const double *ref, long n, double tol,
                         const char *what, const char *path)
{
    double e = ref_err(a, ref, n);
    ck_assert_msg(e < tol, "%s: %s error %g", path, what, e);
}

/* tensor face of one layer: y and, for the cotangent gy, the gradients (F64) */
static void tensor_layer(int batch, int in_dim, int out_dim, const int *ia, const int *ib,
                         const double *w, const double *x, int hard, const double *gy,
                         double *y, double *gx, double *gw)
{
    da_ctx *ctx = da_ctx_new();
    int xs[2] = {batch, in_dim}, ws[2] = {out_dim, 16};
    da_tensor *X = da_ctx_tensor_from(ctx, DA_F64, 2, xs, x);
    da_tensor *W = da_ctx_tensor_from(ctx, DA_F64, 2, ws, w);
    X->requires_grad = W->requires_grad = 1;
    da_tensor *Y = da_logic_layer(ctx, X, W, ia, ib, hard);
    ck_assert_msg(Y != NULL, "%s", da_last_error());
    da_tensor_copy_to(Y, y);
    ck_assert_int_eq(da_backward_from(ctx, Y, gy), DA_OK);
    for (long i = 0; i < X->size; i++)
        gx[i] = da_get_grad(X, i);
    for (long i = 0; i < W->size; i++)
        gw[i] = da_get_grad(W, i);
    da_ctx_free(ctx);
}

START_TEST(test_refs_gates)
{
    char **paths;
    int n = ref_list("logic_gates", &paths);
    ck_assert_int_gt(n, 0);
    for (int f = 0; f < n; f++) {
        const char *err;
        ref_file *r = ref_load(paths[f], &err);
        ck_assert_msg(r != NULL, "%s", err);
        int m = (int)ref_param_num(r, "m", 0);
        ck_assert_int_gt(m, 0);
        const double *a = tget(r, "a", m), *b = tget(r, "b", m), *out = tget(r, "out", 16L * m);
        const double *w = tget(r, "w", 16), *c = tget(r, "c", m);
        double *v = malloc(16 * (size_t)m * sizeof *v);
        for (int g = 0; g < 16; g++)
            for (int i = 0; i < m; i++)
                v[g * m + i] = da_logic_gate(g, a[i], b[i]);
        expect_close(v, out, 16L * m, 1e-9, "gates", r->path);
        /* the mixture as a layer of one neuron over the inputs (a, b) */
        double *x = malloc(2 * (size_t)m * sizeof *x), *y = malloc((size_t)m * sizeof *y);
        double *gx = malloc(2 * (size_t)m * sizeof *gx), gw[16];
        double *da = malloc((size_t)m * sizeof *da), *db = malloc((size_t)m * sizeof *db);
        for (int i = 0; i < m; i++)
            x[2 * i] = a[i], x[2 * i + 1] = b[i];
        int ia = 0, ib = 1;
        for (int face = 0; face < 2; face++) {
            if (face == 0) {
                ck_assert_int_eq(da_logic_layer_forward(m, 2, 1, &ia, &ib, w, x, 0, y), DA_OK);
                ck_assert_int_eq(da_logic_layer_backward(m, 2, 1, &ia, &ib, w, x, 0, c, gx, gw),
                                 DA_OK);
            } else {
                tensor_layer(m, 2, 1, &ia, &ib, w, x, 0, c, y, gx, gw);
            }
            expect_close(y, tget(r, "y", m), m, 1e-9, "y", r->path);
            double loss = 0;
            for (int i = 0; i < m; i++)
                loss += y[i] * c[i];
            expect_close(&loss, tget(r, "loss", 1), 1, 1e-6, "loss", r->path);
            for (int i = 0; i < m; i++)
                da[i] = gx[2 * i], db[i] = gx[2 * i + 1];
            expect_close(da, tget(r, "dy_da", m), m, 1e-6, "dy_da", r->path);
            expect_close(db, tget(r, "dy_db", m), m, 1e-6, "dy_db", r->path);
            expect_close(gw, tget(r, "dy_dw", 16), 16, 1e-6, "dy_dw", r->path);
        }
        free(v), free(x), free(y), free(gx), free(da), free(db);
        ref_free(r);
    }
    ref_list_free(paths, n);
}
END_TEST

START_TEST(test_refs_layer)
{
    char **paths;
    int n = ref_list("logic_layer", &paths);
    ck_assert_int_gt(n, 0);
    for (int f = 0; f < n; f++) {
        const char *err;
        ref_file *r = ref_load(paths[f], &err);
        ck_assert_msg(r != NULL, "%s", err);
        int in = (int)ref_param_num(r, "in_dim", 0), out = (int)ref_param_num(r, "out_dim", 0);
        int B = (int)ref_param_num(r, "batch", 0), k = (int)ref_param_num(r, "group_k", 0);
        double tau = ref_param_num(r, "group_tau", NAN);
        ck_assert(in > 0 && out > 0 && B > 0 && k > 0);
        const double *iaf = tget(r, "ia", out), *ibf = tget(r, "ib", out);
        const double *w = tget(r, "weights", 16L * out), *x = tget(r, "x", (long)B * in);
        const double *C = tget(r, "C", (long)B * out);
        int *ia = malloc((size_t)out * sizeof *ia), *ib = malloc((size_t)out * sizeof *ib);
        for (int j = 0; j < out; j++)
            ia[j] = (int)iaf[j], ib[j] = (int)ibf[j];
        double *y = malloc((size_t)B * out * sizeof *y), *gs = malloc((size_t)B * k * sizeof *gs);
        double *gx = malloc((size_t)B * in * sizeof *gx), *gw = malloc(16 * (size_t)out * 8);
        ck_assert_int_eq(da_logic_layer_forward(B, in, out, ia, ib, w, x, 1, y), DA_OK);
        expect_close(y, tget(r, "y_eval", (long)B * out), (long)B * out, 1e-9, "y_eval", r->path);
        for (int face = 0; face < 2; face++) {
            if (face == 0) {
                ck_assert_int_eq(da_logic_layer_forward(B, in, out, ia, ib, w, x, 0, y), DA_OK);
                ck_assert_int_eq(
                    da_logic_layer_backward(B, in, out, ia, ib, w, x, 0, C, gx, gw), DA_OK);
            } else {
                tensor_layer(B, in, out, ia, ib, w, x, 0, C, y, gx, gw);
            }
            expect_close(y, tget(r, "y_train", (long)B * out), (long)B * out, 1e-9, "y_train",
                         r->path);
            double loss = 0;
            for (long i = 0; i < (long)B * out; i++)
                loss += y[i] * C[i];
            expect_close(&loss, tget(r, "loss", 1), 1, 1e-6, "loss", r->path);
            expect_close(gx, tget(r, "grad_x", (long)B * in), (long)B * in, 1e-6, "grad_x",
                         r->path);
            expect_close(gw, tget(r, "grad_weights", 16L * out), 16L * out, 1e-6,
                         "grad_weights", r->path);
        }
        ck_assert_int_eq(da_logic_group_sum(B, out, k, tau, y, gs), DA_OK);
        expect_close(gs, tget(r, "group_sum", (long)B * k), (long)B * k, 1e-9, "group_sum",
                     r->path);
        free(ia), free(ib), free(y), free(gs), free(gx), free(gw);
        ref_free(r);
    }
    ref_list_free(paths, n);
}
END_TEST

/* a random layer; neuron 0 reads the same input twice */
typedef struct {
    int batch, in, out;
    int *ia, *ib;
    double *w, *x, *gy;
} layer_case;

static layer_case case_new(int batch, int in, int out, unsigned long seed)
{
    layer_case c = {batch, in, out, malloc((size_t)out * sizeof(int)),
                    malloc((size_t)out * sizeof(int)), malloc(16 * (size_t)out * 8),
                    malloc((size_t)batch * in * 8), malloc((size_t)batch * out * 8)};
    da_rng *rng = da_rng_new(seed);
    ck_assert_int_eq(da_logic_connections_random(rng, in, out, c.ia, c.ib), DA_OK);
    c.ib[0] = c.ia[0];
    for (int i = 0; i < 16 * out; i++)
        c.w[i] = 1.5 * da_rng_normal(rng);
    da_rng_free(rng);
    gc_random(c.x, (long)batch * in, seed + 1, 0, 1);
    gc_random(c.gy, (long)batch * out, seed + 2, -1, 1);
    return c;
}

static void case_free(layer_case *c)
{
    free(c->ia), free(c->ib), free(c->w), free(c->x), free(c->gy);
}

static double objective(const layer_case *c, int hard)
{
    double *y = malloc((size_t)c->batch * c->out * sizeof *y), s = 0;
    ck_assert_int_eq(
        da_logic_layer_forward(c->batch, c->in, c->out, c->ia, c->ib, c->w, c->x, hard, y),
        DA_OK);
    for (long i = 0; i < (long)c->batch * c->out; i++)
        s += c->gy[i] * y[i];
    free(y);
    return s;
}

/* central differences of sum(gy * y) for every entry of v (a field of c) */
static double fd_error(layer_case *c, double *v, long n, const double *g, int hard)
{
    double *fd = malloc((size_t)n * sizeof *fd), num = 0, den = 1e-300;
    for (long i = 0; i < n; i++) {
        double v0 = v[i], h = 1e-6;
        v[i] = v0 + h;
        double fp = objective(c, hard);
        v[i] = v0 - h;
        double fm = objective(c, hard);
        v[i] = v0;
        fd[i] = (fp - fm) / (2 * h);
    }
    for (long i = 0; i < n; i++) {
        num = fmax(num, fabs(g[i] - fd[i]));
        den = fmax(den, fmax(fabs(g[i]), fabs(fd[i])));
    }
    free(fd);
    return num / den;
}

START_TEST(test_finite_differences)
{
    layer_case c = case_new(5, 7, 9, 11);
    double *gx = malloc((size_t)c.batch * c.in * 8), *gw = malloc(16 * (size_t)c.out * 8);
    for (int hard = 0; hard <= 1; hard++) {
        ck_assert_int_eq(da_logic_layer_backward(c.batch, c.in, c.out, c.ia, c.ib, c.w, c.x,
                                                 hard, c.gy, gx, gw), DA_OK);
        ck_assert_double_lt(fd_error(&c, c.x, (long)c.batch * c.in, gx, hard), 1e-6);
        if (!hard)
            ck_assert_double_lt(fd_error(&c, c.w, 16L * c.out, gw, 0), 1e-6);
        else
            for (int i = 0; i < 16 * c.out; i++)
                ck_assert_double_eq(gw[i], 0.0);
    }
    /* either output may be NULL */
    double *gx2 = malloc((size_t)c.batch * c.in * 8);
    ck_assert_int_eq(da_logic_layer_backward(c.batch, c.in, c.out, c.ia, c.ib, c.w, c.x, 0,
                                             c.gy, gx2, NULL), DA_OK);
    ck_assert_int_eq(da_logic_layer_backward(c.batch, c.in, c.out, c.ia, c.ib, c.w, c.x, 1,
                                             c.gy, gx, NULL), DA_OK);
    ck_assert_double_gt(ref_err(gx, gx2, (long)c.batch * c.in), 1e-3); /* hard != soft */
    /* GroupSum backward against its definition */
    double gy[10], gs[5 * 20];
    gc_random(gy, 10, 5, -1, 1);
    ck_assert_int_eq(da_logic_group_sum_backward(5, 20, 2, 0.5, gy, gs), DA_OK);
    for (int b = 0; b < 5; b++)
        for (int i = 0; i < 20; i++)
            ck_assert_double_eq_tol(gs[b * 20 + i], gy[b * 2 + i / 10] / 0.5, 1e-15);
    free(gx), free(gx2), free(gw);
    case_free(&c);
}
END_TEST

/* the fused bilinear layer against sum_g softmax(w)_g gate_g(a, b), and thread counts */
START_TEST(test_against_gate_sum_and_threads)
{
    layer_case c = case_new(64, 300, 1000, 21); /* large enough for the parallel paths */
    long ny = (long)c.batch * c.out, nx = (long)c.batch * c.in;
    double *y = malloc((size_t)ny * 8), *ref = malloc((size_t)ny * 8);
    ck_assert_int_eq(da_logic_layer_forward(c.batch, c.in, c.out, c.ia, c.ib, c.w, c.x, 0, y),
                     DA_OK);
    for (int j = 0; j < c.out; j++) {
        double p[16], mx = c.w[16 * j], s = 0;
        for (int g = 0; g < 16; g++)
            mx = fmax(mx, c.w[16 * j + g]);
        for (int g = 0; g < 16; g++)
            s += p[g] = exp(c.w[16 * j + g] - mx);
        for (int b = 0; b < c.batch; b++) {
            double a = c.x[b * c.in + c.ia[j]], bb = c.x[b * c.in + c.ib[j]], v = 0;
            for (int g = 0; g < 16; g++)
                v += p[g] / s * da_logic_gate(g, a, bb);
            ref[b * c.out + j] = v;
        }
    }
    ck_assert_double_lt(ref_err(y, ref, ny), 1e-12);
    double *gx[3], *gw[3];
    int threads[3] = {1, 2, 2};
    int saved = omp_get_max_threads();
    for (int t = 0; t < 3; t++) {
        gx[t] = malloc((size_t)nx * 8), gw[t] = malloc(16 * (size_t)c.out * 8);
        omp_set_num_threads(threads[t]);
        ck_assert_int_eq(da_logic_layer_backward(c.batch, c.in, c.out, c.ia, c.ib, c.w, c.x, 0,
                                                 c.gy, gx[t], gw[t]), DA_OK);
    }
    omp_set_num_threads(saved);
    ck_assert_double_lt(ref_err(gx[1], gx[0], nx), 1e-13);
    ck_assert_double_lt(ref_err(gw[1], gw[0], 16L * c.out), 1e-12);
    ck_assert_int_eq(memcmp(gx[1], gx[2], (size_t)nx * 8), 0);
    ck_assert_int_eq(memcmp(gw[1], gw[2], 16 * (size_t)c.out * 8), 0);
    for (int t = 0; t < 3; t++)
        free(gx[t]), free(gw[t]);
    free(y), free(ref);
    case_free(&c);
}
END_TEST

/* ---- tensor faces under gc_check ---- */
typedef struct {
    int ia1[6], ib1[6], ia2[4], ib2[4];
} net_conn;

/* x [3][5] -> logic 6 -> logic 4 -> GroupSum(k = 2, tau = 1.5) */
static da_tensor *net(da_ctx *ctx, da_tensor **in, void *user)
{
    const net_conn *c = user;
    da_tensor *h = da_logic_layer(ctx, in[0], in[1], c->ia1, c->ib1, 0);
    h = da_logic_layer(ctx, h, in[2], c->ia2, c->ib2, 0);
    return da_logic_group_sum_op(ctx, h, 2, 1.5);
}

START_TEST(test_gradcheck_tensor)
{
    net_conn c = {{0, 1, 2, 3, 4, 0}, {4, 3, 2, 1, 0, 2}, {0, 2, 4, 5}, {1, 3, 5, 1}};
    double x[15], w1[96], w2[64];
    gc_random(x, 15, 31, 0.05, 0.95);
    gc_random(w1, 96, 32, -2, 2);
    gc_random(w2, 64, 33, -2, 2);
    gc_input in[3] = {{2, {3, 5}, x, 1}, {2, {6, 16}, w1, 1}, {2, {4, 16}, w2, 1}};
    ck_assert_double_lt(gc_check(net, 3, in, &c, 1e-6), 1e-6);
    ck_assert_double_lt(gc_check_f32(net, 3, in, &c), 1e-4);
}
END_TEST

START_TEST(test_connections)
{
    int in = 10, out = 7, ia[7], ib[7], ia2[7], ib2[7], count[10] = {0};
    da_rng *rng = da_rng_new(3);
    ck_assert_int_eq(da_logic_connections_random(rng, in, out, ia, ib), DA_OK);
    for (int j = 0; j < out; j++) {
        ck_assert(ia[j] >= 0 && ia[j] < in && ib[j] >= 0 && ib[j] < in);
        count[ia[j]]++, count[ib[j]]++;
    }
    for (int i = 0; i < in; i++) /* 14 slots over 10 inputs: each used once or twice */
        ck_assert(count[i] == 1 || count[i] == 2);
    da_rng_seed(rng, 3);
    ck_assert_int_eq(da_logic_connections_random(rng, in, out, ia2, ib2), DA_OK);
    ck_assert_int_eq(memcmp(ia, ia2, sizeof ia), 0);
    ck_assert_int_eq(memcmp(ib, ib2, sizeof ib), 0);
    ck_assert_int_eq(da_logic_connections_random(rng, 15, 7, ia, ib), DA_ERANGE);
    ck_assert_int_eq(da_logic_connections_random(NULL, 10, 7, ia, ib), DA_EINVAL);
    da_rng_free(rng);
}
END_TEST

START_TEST(test_errors)
{
    layer_case c = case_new(3, 4, 2, 41);
    double y[6], gx[12], gw[32], cf[4];
    ck_assert(isnan(da_logic_gate(16, 0.5, 0.5)));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert(isnan(da_logic_gate(-1, 0.5, 0.5)));
    ck_assert_int_eq(da_logic_gate_coeffs(6, cf), DA_OK);
    ck_assert(cf[0] == 0 && cf[1] == 1 && cf[2] == 1 && cf[3] == -2); /* xor */
    ck_assert_int_eq(da_logic_gate_coeffs(16, cf), DA_ERANGE);
    ck_assert_int_eq(da_logic_layer_forward(0, 4, 2, c.ia, c.ib, c.w, c.x, 0, y), DA_ERANGE);
    ck_assert_int_eq(da_logic_layer_forward(3, 4, 0, c.ia, c.ib, c.w, c.x, 0, y), DA_ERANGE);
    ck_assert_int_eq(da_logic_layer_forward(3, 4, 2, NULL, c.ib, c.w, c.x, 0, y), DA_EINVAL);
    ck_assert_int_eq(da_logic_layer_forward(3, 4, 2, c.ia, c.ib, c.w, NULL, 0, y), DA_EINVAL);
    ck_assert_int_eq(da_logic_layer_forward(3, 4, 2, c.ia, c.ib, c.w, c.x, 0, NULL), DA_EINVAL);
    ck_assert_int_eq(da_logic_layer_backward(3, 4, 2, c.ia, c.ib, c.w, c.x, 0, NULL, gx, gw),
                     DA_EINVAL);
    int bad[2] = {0, 4};
    ck_assert_int_eq(da_logic_layer_forward(3, 4, 2, c.ia, bad, c.w, c.x, 0, y), DA_ERANGE);
    ck_assert(strstr(da_last_error(), "outside") != NULL);
    bad[1] = -1;
    ck_assert_int_eq(da_logic_layer_backward(3, 4, 2, bad, c.ib, c.w, c.x, 0, c.gy, gx, gw),
                     DA_ERANGE);
    c.x[c.ia[1]] = NAN; /* an input some neuron reads */
    ck_assert_int_eq(da_logic_layer_forward(3, 4, 2, c.ia, c.ib, c.w, c.x, 0, y), DA_ENAN);
    ck_assert_int_eq(da_logic_layer_backward(3, 4, 2, c.ia, c.ib, c.w, c.x, 0, c.gy, gx, gw),
                     DA_ENAN);
    c.x[c.ia[1]] = 0.5;
    c.gy[1] = INFINITY;
    ck_assert_int_eq(da_logic_layer_backward(3, 4, 2, c.ia, c.ib, c.w, c.x, 0, c.gy, gx, gw),
                     DA_ENAN);
    c.w[5] = NAN;
    ck_assert_int_eq(da_logic_layer_forward(3, 4, 2, c.ia, c.ib, c.w, c.x, 1, y), DA_ENAN);
    c.w[5] = 0;
    /* GroupSum */
    ck_assert_int_eq(da_logic_group_sum(3, 4, 3, 1, c.x, y), DA_ERANGE); /* 3 does not divide 4 */
    ck_assert_int_eq(da_logic_group_sum(3, 4, 2, 0, c.x, y), DA_ERANGE);
    ck_assert_int_eq(da_logic_group_sum(3, 4, 2, NAN, c.x, y), DA_ENAN);
    ck_assert_int_eq(da_logic_group_sum(3, 4, 2, 1, NULL, y), DA_EINVAL);
    ck_assert_int_eq(da_logic_group_sum_backward(3, 4, 2, -1, c.gy, gx), DA_ERANGE);
    /* tensor faces */
    da_ctx *ctx = da_ctx_new();
    int xs[2] = {3, 4}, ws[2] = {2, 16}, w3[3] = {2, 16, 1};
    da_tensor *X = da_ctx_tensor_from(ctx, DA_F64, 2, xs, c.x);
    da_tensor *W = da_ctx_tensor_from(ctx, DA_F64, 2, ws, c.w);
    ck_assert_ptr_nonnull(da_logic_layer(ctx, X, W, c.ia, c.ib, 0));
    ck_assert_ptr_null(da_logic_layer(ctx, X, da_ctx_tensor(ctx, DA_F64, 3, w3), c.ia, c.ib, 0));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_logic_layer(ctx, X, da_ctx_tensor(ctx, DA_F32, 2, ws), c.ia, c.ib, 0));
    ck_assert_int_eq(da_last_error_code(), DA_EDTYPE);
    bad[0] = 9;
    ck_assert_ptr_null(da_logic_layer(ctx, X, W, bad, c.ib, 0));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_logic_layer(ctx, X, W, NULL, c.ib, 0));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_set(X, 0, NAN);
    da_set(X, 1, NAN);
    da_set(X, 2, NAN);
    da_set(X, 3, NAN);
    ck_assert_ptr_null(da_logic_layer(ctx, X, W, c.ia, c.ib, 0));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_logic_group_sum_op(ctx, X, 2, 1.0));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_logic_group_sum_op(ctx, W, 3, 1.0));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    da_clear_error();
    ck_assert_ptr_null(da_logic_group_sum_op(ctx, NULL, 2, 1.0));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
    case_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("logic");
    TCase *tc = tcase_create("logic");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_refs_gates);
    tcase_add_test(tc, test_refs_layer);
    tcase_add_test(tc, test_finite_differences);
    tcase_add_test(tc, test_against_gate_sum_and_threads);
    tcase_add_test(tc, test_gradcheck_tensor);
    tcase_add_test(tc, test_connections);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
