/* test_precond.c - TrAct / ISAAC weight-gradient preconditioning (optim/precond.h):
 * every `tract` and `isaac` reference file (plain-array and tensor faces), both regimes
 * against each other, the defining equation grad_W (X^T X/N + lambda I) = s G^T X
 * checked with CBLAS here, lambda -> infinity, conv2d against an explicit im2col built
 * here, F32 against F64, error paths. */
#include <cblas.h>
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "precond.h"
#include "refs.h"
#include "suite_run.h"

static const double *tget(const ref_file *r, const char *name, long size)
{
    const ref_tensor *t = ref_get(r, name);
    ck_assert_msg(t != NULL, "%s: no tensor %s", r->path, name);
    ck_assert_int_eq(t->size, size);
    return t->data;
}

static int iparam(const ref_file *r, const char *key)
{
    const char *v = ref_param(r, key);
    ck_assert_msg(v != NULL, "%s: no param %s", r->path, key);
    return atoi(v);
}

static da_tensor *param_from(da_dtype dt, int ndim, const int *shape, const double *v)
{
    da_tensor *t = da_tensor_new(dt, ndim, shape);
    ck_assert_ptr_nonnull(t);
    da_tensor_fill_from(t, v);
    t->requires_grad = 1;
    return t;
}

static void check_grad(const da_tensor *t, const double *ref, double tol, const char *what,
                       const char *path)
{
    double *g = malloc((size_t)t->size * sizeof *g);
    for (long i = 0; i < t->size; i++)
        g[i] = da_get_grad(t, i);
    double e = ref_err(g, ref, t->size);
    ck_assert_msg(e < tol, "%s: %s error %g", path, what, e);
    free(g);
}

/* Forward through da_precond_layer_forward (da_linear / da_conv2d with a preconditioned
 * weight), backward from G; checks Y, grad_W (modified), grad_b and grad_X (ordinary). */
static void check_layer_face(const ref_file *r, da_precond_kind kind, double lambda, int conv)
{
    const ref_tensor *Wr = ref_get(r, "W"), *Xr = ref_get(r, "X"), *Yr = ref_get(r, "Y");
    ck_assert_ptr_nonnull(Wr);
    ck_assert_ptr_nonnull(Xr);
    ck_assert_ptr_nonnull(Yr);
    int out = Wr->shape[0];
    da_tensor *W = param_from(DA_F64, Wr->ndim, Wr->shape, Wr->data);
    da_tensor *b = param_from(DA_F64, 1, &out, tget(r, "b", out));
    da_ctx *ctx = da_ctx_new();
    da_tensor *X = da_ctx_tensor_from(ctx, DA_F64, Xr->ndim, Xr->shape, Xr->data);
    X->requires_grad = 1;
    da_layer layer = {.kind = conv ? DA_LAYER_CONV2D : DA_LAYER_LINEAR, .W = W, .b = b,
                      .k = conv ? Wr->shape[2] : 0, .stride = conv ? iparam(r, "stride") : 0,
                      .pad = conv ? iparam(r, "padding") : 0};
    da_tensor *Y = da_precond_layer_forward(ctx, &layer, X, kind, lambda);
    ck_assert_msg(Y != NULL, "%s", da_last_error());
    ck_assert_int_eq(Y->size, Yr->size);
    double *y = malloc((size_t)Y->size * sizeof *y);
    da_tensor_copy_to(Y, y);
    ck_assert_double_lt(ref_err(y, Yr->data, Y->size), 1e-9);
    ck_assert_int_eq(da_backward_from(ctx, Y, tget(r, "G", Y->size)), DA_OK);
    check_grad(W, tget(r, "grad_W", W->size), 1e-6, "tensor grad_W", r->path);
    check_grad(b, tget(r, "grad_b", out), 1e-6, "tensor grad_b", r->path);
    check_grad(X, tget(r, "grad_X", X->size), 1e-6, "tensor grad_X", r->path);
    free(y);
    da_ctx_free(ctx);
    da_tensor_free(W);
    da_tensor_free(b);
}

/* The plain-array face in all three regimes. */
static void check_plain(const ref_file *r, da_precond_kind kind, double lambda, int conv)
{
    const ref_tensor *Wr = ref_get(r, "W"), *Xr = ref_get(r, "X"), *Gr = ref_get(r, "G");
    ck_assert_ptr_nonnull(Wr);
    ck_assert_ptr_nonnull(Xr);
    ck_assert_ptr_nonnull(Gr);
    int out = Wr->shape[0], in = (int)(Wr->size / out), N = Xr->shape[0];
    ck_assert_int_eq(N, iparam(r, "N"));
    const double *ref = tget(r, "grad_W", Wr->size);
    double *gw = malloc((size_t)Wr->size * sizeof *gw);
    da_precond_regime regimes[3] = {DA_PRECOND_AUTO, DA_PRECOND_DXD, DA_PRECOND_NXN};
    for (int k = 0; k < 3; k++) {
        int rc;
        if (conv)
            rc = da_precond_conv2d_grad(kind, regimes[k], N, Xr->shape[1], Xr->shape[2],
                                        Xr->shape[3], out, Wr->shape[2], iparam(r, "stride"),
                                        iparam(r, "padding"), Xr->data, Gr->data, lambda, gw);
        else if (regimes[k] == DA_PRECOND_AUTO)
            rc = kind == DA_PRECOND_TRACT
                     ? da_tract_linear_grad(N, in, out, Xr->data, Gr->data, lambda, gw)
                     : da_isaac_linear_grad(N, in, out, Xr->data, Gr->data, lambda, gw);
        else
            rc = da_precond_linear_grad(kind, regimes[k], N, in, out, Xr->data, Gr->data,
                                        lambda, gw);
        ck_assert_msg(rc == DA_OK, "%s", da_last_error());
        double e = ref_err(gw, ref, Wr->size);
        ck_assert_msg(e < 1e-6, "%s: regime %d grad_W error %g", r->path, k, e);
    }
    /* the regime AUTO takes is upstream's branch */
    int rows = conv ? (int)(Gr->size / out) : N;
    da_precond_regime want = strcmp(ref_param(r, "branch"), "NxN") ? DA_PRECOND_DXD
                                                                     : DA_PRECOND_NXN;
    ck_assert_int_eq(da_precond_choose(rows, in, out), want);
    free(gw);
}

/* da_precond_wrap: one call on a layer of a da_model, then da_model_forward + backward
 * give the reference grad_W (and the ordinary grad_b) */
static void check_wrapped_model(const ref_file *r, da_precond_kind kind, double lambda, int conv)
{
    const ref_tensor *Wr = ref_get(r, "W"), *Xr = ref_get(r, "X");
    ck_assert_ptr_nonnull(Wr);
    ck_assert_ptr_nonnull(Xr);
    int out = Wr->shape[0];
    da_model *m = da_model_new(DA_F64);
    da_rng *rng = da_rng_new(1); /* the initial weights are overwritten below */
    int rc = conv ? da_model_add_conv2d(m, Wr->shape[1], out, Wr->shape[2], iparam(r, "stride"),
                                        iparam(r, "padding"), DA_INIT_TORCH_DEFAULT, rng)
                  : da_model_add_linear(m, Wr->shape[1], out, DA_INIT_TORCH_DEFAULT, rng);
    ck_assert_msg(rc == DA_OK, "%s", da_last_error());
    da_layer *layer = da_model_layer(m, 0);
    da_tensor_fill_from(layer->W, Wr->data);
    da_tensor_fill_from(layer->b, tget(r, "b", out));
    ck_assert_int_eq(da_precond_wrap(layer, kind, lambda), DA_OK);
    da_ctx *ctx = da_ctx_new();
    da_tensor *X = da_ctx_tensor_from(ctx, DA_F64, Xr->ndim, Xr->shape, Xr->data);
    da_tensor *Y = da_model_forward(ctx, m, X);
    ck_assert_msg(Y != NULL, "%s", da_last_error());
    ck_assert_int_eq(da_backward_from(ctx, Y, tget(r, "G", Y->size)), DA_OK);
    check_grad(layer->W, tget(r, "grad_W", layer->W->size), 1e-6, "wrapped grad_W", r->path);
    check_grad(layer->b, tget(r, "grad_b", out), 1e-6, "wrapped grad_b", r->path);
    /* unwrapping restores the ordinary gradient G^T X, which differs from the reference */
    ck_assert_int_eq(da_precond_wrap(layer, 0, 0), DA_OK);
    ck_assert_int_eq(layer->precond_kind, 0);
    da_ctx_free(ctx);
    da_model_free(m);
    da_rng_free(rng);
}

START_TEST(test_wrap_model_layers)
{
    const char *kinds[2] = {"tract", "isaac"};
    int total = 0;
    for (int k = 0; k < 2; k++) {
        char **paths;
        int n = ref_list(kinds[k], &paths);
        ck_assert_int_gt(n, 0);
        for (int i = 0; i < n; i++) {
            const char *err;
            ref_file *r = ref_load(paths[i], &err);
            ck_assert_msg(r != NULL, "%s", err);
            const char *layer = ref_param(r, "layer");
            int conv = layer && !strcmp(layer, "conv2d");
            double lambda = ref_param_num(r, k ? "la" : "l", NAN);
            check_wrapped_model(r, k ? DA_PRECOND_ISAAC : DA_PRECOND_TRACT, lambda, conv);
            ref_free(r);
            total++;
        }
        ref_list_free(paths, n);
    }
    ck_assert_int_gt(total, 0);
    da_layer relu = {.kind = DA_LAYER_RELU};
    ck_assert_int_eq(da_precond_wrap(&relu, DA_PRECOND_TRACT, 0.1), DA_EINVAL);
    da_layer lin = {.kind = DA_LAYER_LINEAR};
    ck_assert_int_eq(da_precond_wrap(&lin, DA_PRECOND_TRACT, -1), DA_ERANGE);
    ck_assert_int_eq(da_precond_wrap(&lin, DA_PRECOND_TRACT, NAN), DA_ENAN);
    ck_assert_int_eq(da_precond_wrap(&lin, 7, 0.1), DA_EINVAL);
    ck_assert_int_eq(da_precond_wrap(NULL, DA_PRECOND_TRACT, 0.1), DA_EINVAL);
}
END_TEST

START_TEST(test_refs_tract)
{
    char **paths;
    int n = ref_list("tract", &paths);
    ck_assert_int_gt(n, 0);
    int n_conv = 0;
    for (int i = 0; i < n; i++) {
        const char *err;
        ref_file *r = ref_load(paths[i], &err);
        ck_assert_msg(r != NULL, "%s", err);
        int conv = !strcmp(ref_param(r, "layer"), "conv2d");
        n_conv += conv;
        double lambda = ref_param_num(r, "l", NAN);
        check_plain(r, DA_PRECOND_TRACT, lambda, conv);
        check_layer_face(r, DA_PRECOND_TRACT, lambda, conv);
        ref_free(r);
    }
    ck_assert_int_gt(n_conv, 0);
    ck_assert_int_gt(n - n_conv, 0);
    ref_list_free(paths, n);
}
END_TEST

START_TEST(test_refs_isaac)
{
    char **paths;
    int n = ref_list("isaac", &paths);
    ck_assert_int_gt(n, 0);
    for (int i = 0; i < n; i++) {
        const char *err;
        ref_file *r = ref_load(paths[i], &err);
        ck_assert_msg(r != NULL, "%s", err);
        double la = ref_param_num(r, "la", NAN);
        check_plain(r, DA_PRECOND_ISAAC, la, 0);
        check_layer_face(r, DA_PRECOND_ISAAC, la, 0);
        ref_free(r);
    }
    ref_list_free(paths, n);
}
END_TEST

/* random problem: X [N][in], G [N][out] */
typedef struct {
    int N, in, out;
    double *X, *G;
} problem;

static problem problem_new(int N, int in, int out, unsigned long seed)
{
    problem p = {N, in, out, malloc((size_t)N * in * sizeof(double)),
                 malloc((size_t)N * out * sizeof(double))};
    gc_random(p.X, (long)N * in, seed, -2, 2);
    gc_random(p.G, (long)N * out, seed + 1, -1, 1);
    return p;
}

static void problem_free(problem *p)
{
    free(p->X);
    free(p->G);
}

static double *grad_of(const problem *p, da_precond_kind kind, da_precond_regime regime,
                       double lambda)
{
    double *gw = malloc((size_t)p->out * p->in * sizeof *gw);
    int rc = da_precond_linear_grad(kind, regime, p->N, p->in, p->out, p->X, p->G, lambda, gw);
    ck_assert_msg(rc == DA_OK, "%s", da_last_error());
    return gw;
}

START_TEST(test_regimes_agree)
{
    const int sizes[][3] = {{3, 17, 5}, {17, 3, 5}, {8, 8, 8}, {1, 40, 2}, {60, 12, 30},
                            {12, 25, 1}};
    const double lambdas[] = {1e-3, 0.1, 1, 30};
    for (unsigned s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int l = 0; l < 4; l++)
            for (int kind = DA_PRECOND_TRACT; kind <= DA_PRECOND_ISAAC; kind++) {
                problem p = problem_new(sizes[s][0], sizes[s][1], sizes[s][2], 10 + s);
                double *a = grad_of(&p, kind, DA_PRECOND_DXD, lambdas[l]);
                double *b = grad_of(&p, kind, DA_PRECOND_NXN, lambdas[l]);
                double e = ref_err(b, a, (long)p.out * p.in);
                ck_assert_msg(e < 1e-9, "N %d in %d out %d lambda %g: regimes differ by %g",
                              p.N, p.in, p.out, lambdas[l], e);
                free(a);
                free(b);
                problem_free(&p);
            }
}
END_TEST

/* grad_W (X^T X / N + lambda I) must equal s G^T X (s = 1 TrAct, lambda ISAAC) */
START_TEST(test_defining_equation)
{
    const int sizes[][3] = {{5, 9, 4}, {30, 7, 3}};
    for (int s = 0; s < 2; s++)
        for (int kind = DA_PRECOND_TRACT; kind <= DA_PRECOND_ISAAC; kind++) {
            problem p = problem_new(sizes[s][0], sizes[s][1], sizes[s][2], 40 + s);
            double lambda = 0.05, scale = kind == DA_PRECOND_ISAAC ? lambda : 1;
            double *gw = grad_of(&p, kind, DA_PRECOND_AUTO, lambda);
            int N = p.N, in = p.in, out = p.out;
            double *M = malloc((size_t)in * in * sizeof *M), *lhs = malloc((size_t)out * in * 8),
                   *rhs = malloc((size_t)out * in * 8);
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, in, N, 1.0 / N, p.X, in,
                        p.X, in, 0.0, M, in);
            for (int i = 0; i < in; i++)
                M[i * in + i] += lambda;
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, in, 1.0, gw, in, M,
                        in, 0.0, lhs, in);
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, scale, p.G, out,
                        p.X, in, 0.0, rhs, in);
            ck_assert_double_lt(ref_err(lhs, rhs, (long)out * in), 1e-10);
            free(M);
            free(lhs);
            free(rhs);
            free(gw);
            problem_free(&p);
        }
}
END_TEST

/* lambda -> infinity: TrAct's grad_W -> G^T X / lambda */
START_TEST(test_lambda_infinity)
{
    problem ps[2] = {problem_new(4, 10, 3, 70), problem_new(25, 6, 3, 72)};
    for (int i = 0; i < 2; i++) {
        problem *p = &ps[i];
        double lambda = 1e9, *plain = malloc((size_t)p->out * p->in * sizeof *plain);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->out, p->in, p->N, 1.0 / lambda,
                    p->G, p->out, p->X, p->in, 0.0, plain, p->in);
        for (int regime = DA_PRECOND_DXD; regime <= DA_PRECOND_NXN; regime++) {
            double *gw = grad_of(p, DA_PRECOND_TRACT, regime, lambda);
            ck_assert_double_lt(ref_err(gw, plain, (long)p->out * p->in), 1e-7);
            free(gw);
        }
        /* and a moderate lambda is not close to it (the test can fail) */
        double *gw = grad_of(p, DA_PRECOND_TRACT, DA_PRECOND_AUTO, 1.0);
        cblas_dscal(p->out * p->in, 1.0 / lambda, gw, 1);
        ck_assert_double_gt(ref_err(gw, plain, (long)p->out * p->in), 1e-3);
        free(gw);
        free(plain);
        problem_free(p);
    }
}
END_TEST

/* conv2d = linear on an im2col matrix written out here, with stride and padding */
START_TEST(test_conv_is_linear_on_patches)
{
    const int geo[][6] = {/* N C H W k stride pad */
                          {2, 2, 7, 5, 3, 2}, {1, 3, 6, 6, 2, 1}};
    const int pads[] = {1, 0};
    for (int t = 0; t < 2; t++) {
        int N = geo[t][0], C = geo[t][1], H = geo[t][2], W = geo[t][3], k = geo[t][4],
            s = geo[t][5], pad = pads[t], out = 3;
        int Ho = (H + 2 * pad - k) / s + 1, Wo = (W + 2 * pad - k) / s + 1;
        int rows = N * Ho * Wo, cols = C * k * k;
        double *x = malloc((size_t)N * C * H * W * 8), *G = malloc((size_t)N * out * Ho * Wo * 8);
        double *P = calloc((size_t)rows * cols, 8), *Gm = malloc((size_t)rows * out * 8);
        double *a = malloc((size_t)out * cols * 8), *b = malloc((size_t)out * cols * 8);
        gc_random(x, (long)N * C * H * W, 90 + t, -1, 1);
        gc_random(G, (long)N * out * Ho * Wo, 95 + t, -1, 1);
        for (int n = 0; n < N; n++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    int r = (n * Ho + oh) * Wo + ow;
                    for (int o = 0; o < out; o++)
                        Gm[r * out + o] = G[((n * out + o) * Ho + oh) * Wo + ow];
                    for (int c = 0; c < C; c++)
                        for (int i = 0; i < k; i++)
                            for (int j = 0; j < k; j++) {
                                int h = oh * s - pad + i, w = ow * s - pad + j;
                                if (h >= 0 && h < H && w >= 0 && w < W)
                                    P[r * cols + (c * k + i) * k + j] =
                                        x[((n * C + c) * H + h) * W + w];
                            }
                }
        for (int kind = DA_PRECOND_TRACT; kind <= DA_PRECOND_ISAAC; kind++) {
            ck_assert_int_eq(da_precond_linear_grad(kind, DA_PRECOND_AUTO, rows, cols, out, P,
                                                    Gm, 0.3, a), DA_OK);
            ck_assert_int_eq(da_precond_conv2d_grad(kind, DA_PRECOND_AUTO, N, C, H, W, out, k,
                                                    s, pad, x, G, 0.3, b), DA_OK);
            ck_assert_double_lt(ref_err(b, a, (long)out * cols), 1e-12);
        }
        free(x), free(G), free(P), free(Gm), free(a), free(b);
    }
}
END_TEST

/* F32 tensors through the tensor face against the F64 plain-array result */
START_TEST(test_f32_tensor_face)
{
    problem p = problem_new(9, 12, 5, 120);
    for (int kind = DA_PRECOND_TRACT; kind <= DA_PRECOND_ISAAC; kind++) {
        double *ref = grad_of(&p, kind, DA_PRECOND_AUTO, 0.2);
        int ws[2] = {p.out, p.in}, xs[2] = {p.N, p.in};
        double *w0 = malloc((size_t)p.out * p.in * 8);
        gc_random(w0, (long)p.out * p.in, 121, -1, 1);
        for (int dt = DA_F32; dt <= DA_F64; dt++) {
            da_tensor *W = param_from(dt, 2, ws, w0);
            da_ctx *ctx = da_ctx_new();
            da_tensor *X = da_ctx_tensor_from(ctx, dt, 2, xs, p.X);
            da_precond_cfg cfg = {.kind = kind, .lambda = 0.2};
            da_tensor *Y = da_linear(ctx, X, da_precond_weight(ctx, W, X, &cfg), NULL);
            ck_assert_msg(Y != NULL, "%s", da_last_error());
            ck_assert_int_eq(da_backward_from(ctx, Y, p.G), DA_OK);
            check_grad(W, ref, dt == DA_F32 ? 1e-5 : 1e-12, "F32/F64 grad_W", "random");
            /* W' is W in value */
            ck_assert_double_eq(da_get(Y, 3), da_get(da_linear(ctx, X, W, NULL), 3));
            da_ctx_free(ctx);
            da_tensor_free(W);
        }
        free(w0);
        free(ref);
    }
    problem_free(&p);
}
END_TEST

START_TEST(test_errors)
{
    problem p = problem_new(4, 5, 3, 130);
    double gw[15];
    const da_precond_kind T = DA_PRECOND_TRACT;
    ck_assert_int_eq(da_tract_linear_grad(0, 5, 3, p.X, p.G, 1, gw), DA_ERANGE);
    ck_assert_int_eq(da_tract_linear_grad(4, 0, 3, p.X, p.G, 1, gw), DA_ERANGE);
    ck_assert_int_eq(da_isaac_linear_grad(4, 5, -1, p.X, p.G, 1, gw), DA_ERANGE);
    ck_assert_int_eq(da_tract_linear_grad(4, 5, 3, p.X, p.G, 0, gw), DA_ERANGE);
    ck_assert(strstr(da_last_error(), "lambda") != NULL);
    ck_assert_int_eq(da_isaac_linear_grad(4, 5, 3, p.X, p.G, -1, gw), DA_ERANGE);
    ck_assert_int_eq(da_tract_linear_grad(4, 5, 3, p.X, p.G, NAN, gw), DA_ENAN);
    ck_assert_int_eq(da_tract_linear_grad(4, 5, 3, p.X, p.G, INFINITY, gw), DA_ENAN);
    ck_assert_int_eq(da_tract_linear_grad(4, 5, 3, NULL, p.G, 1, gw), DA_EINVAL);
    ck_assert_int_eq(da_tract_linear_grad(4, 5, 3, p.X, NULL, 1, gw), DA_EINVAL);
    ck_assert_int_eq(da_isaac_linear_grad(4, 5, 3, p.X, p.G, 1, NULL), DA_EINVAL);
    ck_assert_int_eq(da_precond_linear_grad((da_precond_kind)9, DA_PRECOND_AUTO, 4, 5, 3, p.X,
                                            p.G, 1, gw), DA_EINVAL);
    ck_assert_int_eq(da_precond_linear_grad(T, (da_precond_regime)7, 4, 5, 3, p.X, p.G, 1, gw),
                     DA_EINVAL);
    p.X[7] = NAN;
    ck_assert_int_eq(da_tract_linear_grad(4, 5, 3, p.X, p.G, 1, gw), DA_ENAN);
    ck_assert_int_eq(da_precond_apply(T, DA_PRECOND_AUTO, 4, 5, 3, p.X, 1, gw), DA_ENAN);
    p.X[7] = 0.5;
    p.G[2] = INFINITY;
    ck_assert_int_eq(da_isaac_linear_grad(4, 5, 3, p.X, p.G, 1, gw), DA_ENAN);
    p.G[2] = 0.5;
    /* overflow in X^T X: an error or a finite result, never a silent NaN */
    for (int regime = DA_PRECOND_DXD; regime <= DA_PRECOND_NXN; regime++) {
        p.X[0] = p.X[1] = p.X[6] = 1e300;
        int rc = da_precond_linear_grad(T, regime, 4, 5, 3, p.X, p.G, 1, gw);
        ck_assert(rc == DA_ENUMERIC || (rc == DA_OK && da_all_finite(gw, 15)));
        p.X[0] = p.X[1] = p.X[6] = 0.5;
    }
    ck_assert_int_eq(da_tract_linear_grad(4, 5, 3, p.X, p.G, 1, gw), DA_OK);
    /* conv geometry */
    double x[2 * 3 * 3], G[2 * 9];
    gc_random(x, 18, 1, 0, 1);
    gc_random(G, 18, 2, 0, 1);
    ck_assert_int_eq(da_precond_conv2d_grad(T, 0, 1, 2, 3, 3, 2, 5, 1, 0, x, G, 1, gw),
                     DA_ERANGE); /* kernel 5 > input 3 */
    ck_assert_int_eq(da_precond_conv2d_grad(T, 0, 1, 2, 3, 3, 2, 3, 0, 1, x, G, 1, gw),
                     DA_ERANGE); /* stride 0 */
    ck_assert_int_eq(da_precond_conv2d_grad(T, 0, 1, 2, 3, 3, 2, 3, 1, -1, x, G, 1, gw),
                     DA_ERANGE);
    ck_assert_int_eq(da_precond_conv2d_grad(T, 0, 1, 2, 3, 3, 2, 3, 1, 1, x, NULL, 1, gw),
                     DA_EINVAL);
    x[4] = NAN;
    ck_assert_int_eq(da_precond_conv2d_grad(T, 0, 1, 2, 3, 3, 2, 3, 1, 1, x, G, 1, gw),
                     DA_ENAN);
    /* tensor face */
    da_ctx *ctx = da_ctx_new();
    int ws[2] = {3, 5}, xs[2] = {4, 6}, x4[4] = {1, 5, 3, 3};
    da_tensor *W = da_ctx_tensor(ctx, DA_F64, 2, ws), *X = da_ctx_tensor(ctx, DA_F64, 2, xs);
    da_precond_cfg cfg = {.kind = T, .lambda = 1};
    ck_assert_ptr_null(da_precond_weight(ctx, W, X, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_precond_weight(ctx, W, da_ctx_tensor(ctx, DA_F64, 4, x4), &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    xs[1] = 5;
    ck_assert_ptr_null(da_precond_weight(ctx, W, da_ctx_tensor(ctx, DA_F32, 2, xs), &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_EDTYPE);
    X = da_ctx_tensor(ctx, DA_F64, 2, xs);
    ck_assert_ptr_null(da_precond_weight(ctx, W, X, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    cfg.lambda = -2;
    ck_assert_ptr_null(da_precond_weight(ctx, W, X, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    cfg.lambda = 1;
    da_set(X, 3, NAN);
    ck_assert_ptr_null(da_precond_weight(ctx, W, X, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    da_clear_error();
    ck_assert_ptr_null(da_precond_weight(ctx, NULL, X, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_layer relu = {.kind = DA_LAYER_RELU};
    ck_assert_ptr_null(da_precond_layer_forward(ctx, &relu, X, T, 1));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_precond_layer_forward(ctx, NULL, X, T, 1));
    da_ctx_free(ctx);
    problem_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("precond");
    TCase *tc = tcase_create("precond");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_refs_tract);
    tcase_add_test(tc, test_refs_isaac);
    tcase_add_test(tc, test_regimes_agree);
    tcase_add_test(tc, test_defining_equation);
    tcase_add_test(tc, test_lambda_infinity);
    tcase_add_test(tc, test_conv_is_linear_on_patches);
    tcase_add_test(tc, test_f32_tensor_face);
    tcase_add_test(tc, test_wrap_model_layers);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
