/* test_tract_smoke.c - one training step of the experiments/tract path equals the
 * manual computation.
 *
 * experiments/tract wraps the first layers of a da_model with da_precond_wrap and trains
 * through da_model_forward (which then runs the preconditioning node on their weights
 * before the fused ops da_conv2d_relu_maxpool / da_linear_relu), cross-entropy and an
 * optimizer step. Here a tiny CNN (TrAct on its conv layer) and a tiny MLP (ISAAC on its
 * first two layers) take one SGD step that way; the expected step is computed by hand
 * from an unfused forward on copies of the parameters: the pre-activation gradient G of
 * each preconditioned layer goes through the plain-array face (da_precond_conv2d_grad /
 * da_isaac_linear_grad), the other parameters keep their ordinary gradient, and
 * p <- p - lr grad. Double precision. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "suite_run.h"

#define LR 0.3
#define BATCH 5

/* a copy of the parameter p (a leaf that requires a gradient) */
static da_tensor *clone(const da_tensor *p)
{
    da_tensor *t = da_tensor_new(DA_F64, p->ndim, p->shape);
    ck_assert_ptr_nonnull(t);
    memcpy(t->data, p->data, (size_t)p->size * sizeof(double));
    t->requires_grad = 1;
    return t;
}

/* copies of a model's parameters: p0 (before the step) and pb (the manual path) */
static void clone_params(da_model *m, da_tensor **p0, da_tensor **pb)
{
    da_tensor **ps = da_model_params(m);
    for (int i = 0; i < da_model_n_params(m); i++) {
        p0[i] = clone(ps[i]);
        pb[i] = clone(ps[i]);
    }
}

static void free_params(da_tensor **p, int n)
{
    for (int i = 0; i < n; i++)
        da_tensor_free(p[i]);
}

/* one SGD step on params[0..n-1] */
static void sgd_step(da_tensor **params, int n)
{
    da_optim_cfg cfg = da_sgd_cfg(LR, 0);
    da_optim *opt = da_optim_new(params, n, &cfg);
    ck_assert_ptr_nonnull(opt);
    ck_assert_int_eq(da_optim_step(opt), DA_OK);
    da_optim_free(opt);
}

/* max |got - (p0 - LR g)| / max |LR g| */
static double step_error(const da_tensor *got, const da_tensor *p0, const double *g)
{
    const double *w = got->data, *w0 = p0->data;
    double err = 0, scale = 0;
    for (long i = 0; i < got->size; i++) {
        err = fmax(err, fabs(w[i] - (w0[i] - LR * g[i])));
        scale = fmax(scale, fabs(LR * g[i]));
    }
    ck_assert_double_gt(scale, 0);
    return err / scale;
}

static double rel_diff(const double *a, const double *b, long n)
{
    double d = 0, s = 0;
    for (long i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    return d / s;
}

static da_tensor *flatten(da_ctx *ctx, da_tensor *x)
{
    int shape[2] = {x->shape[0], -1};
    return da_reshape(ctx, x, 2, shape);
}

/* the program's path: one SGD step of the (wrapped) model on x */
static void model_step(da_ctx *ctx, da_model *m, da_tensor *x, const int *labels)
{
    da_tensor *loss = da_cross_entropy(ctx, da_model_forward(ctx, m, x), labels);
    ck_assert_msg(loss != NULL, "%s", da_last_error());
    ck_assert_int_eq(da_backward(ctx, loss), DA_OK);
    sgd_step(da_model_params(m), da_model_n_params(m));
}

/* CNN: conv 3x3, 1 -> 3 channels, on 8x8 -> relu -> maxpool 2 -> fc 27 -> 4;
 * TrAct (lambda 0.1) on the conv layer */
START_TEST(test_tract_cnn_step)
{
    static const int channels[1] = {3}, fc[1] = {4};
    int xs[4] = {BATCH, 1, 8, 8}, labels[BATCH] = {0, 3, 1, 2, 3};
    da_rng *rng = da_rng_new(1);
    da_model *m = da_model_cnn(DA_F64, 1, 8, 8, 1, channels, 3, 0, 1, fc, rng);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(da_model_n_params(m), 4);
    ck_assert_int_eq(da_precond_wrap(da_model_layer(m, 0), DA_PRECOND_TRACT, 0.1), DA_OK);
    da_tensor *p0[4], *pb[4], **pa = da_model_params(m);
    clone_params(m, p0, pb);
    double xv[BATCH * 64];
    gc_random(xv, BATCH * 64, 5, -1, 2);
    da_ctx *ctx = da_ctx_new();
    model_step(ctx, m, da_ctx_tensor_from(ctx, DA_F64, 4, xs, xv), labels);

    /* by hand: unfused forward, G = dL/d conv output, plain-array preconditioning */
    da_ctx_reset(ctx);
    da_tensor *x = da_ctx_tensor_from(ctx, DA_F64, 4, xs, xv);
    da_tensor *y = da_conv2d(ctx, x, pb[0], pb[1], 1, 0);
    da_tensor *h = da_maxpool2d(ctx, da_relu(ctx, y), 2, 2);
    da_tensor *loss = da_cross_entropy(ctx, da_linear(ctx, flatten(ctx, h), pb[2], pb[3]),
                                       labels);
    ck_assert_msg(loss != NULL, "%s", da_last_error());
    ck_assert_int_eq(da_backward(ctx, loss), DA_OK);
    double gw[27];
    ck_assert_int_eq(da_precond_conv2d_grad(DA_PRECOND_TRACT, DA_PRECOND_AUTO, BATCH, 1, 8, 8,
                                            3, 3, 1, 0, xv, y->grad, 0.1, gw),
                     DA_OK);
    /* the preconditioned gradient differs from the ordinary one */
    ck_assert_double_gt(rel_diff(gw, pb[0]->grad, 27), 1e-2);
    ck_assert_double_lt(step_error(pa[0], p0[0], gw), 1e-10);
    for (int i = 1; i < 4; i++)
        ck_assert_double_lt(step_error(pa[i], p0[i], pb[i]->grad), 1e-10);

    da_ctx_free(ctx);
    free_params(p0, 4);
    free_params(pb, 4);
    da_model_free(m);
    da_rng_free(rng);
}
END_TEST

/* MLP 10 -> 6 -> 6 -> 3, ISAAC (lambda_a 2) on the first two layers */
START_TEST(test_isaac_mlp_step)
{
    static const int sizes[4] = {10, 6, 6, 3};
    int xs[2] = {BATCH, 10}, labels[BATCH] = {2, 0, 1, 1, 2};
    da_rng *rng = da_rng_new(2);
    da_model *m = da_model_mlp(DA_F64, 4, sizes, rng);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(da_model_n_params(m), 6);
    /* layers: linear relu linear relu linear */
    ck_assert_int_eq(da_precond_wrap(da_model_layer(m, 0), DA_PRECOND_ISAAC, 2.0), DA_OK);
    ck_assert_int_eq(da_precond_wrap(da_model_layer(m, 2), DA_PRECOND_ISAAC, 2.0), DA_OK);
    da_tensor *p0[6], *pb[6], **pa = da_model_params(m);
    clone_params(m, p0, pb);
    double xv[BATCH * 10];
    gc_random(xv, BATCH * 10, 17, -1, 1);
    da_ctx *ctx = da_ctx_new();
    model_step(ctx, m, da_ctx_tensor_from(ctx, DA_F64, 2, xs, xv), labels);

    da_ctx_reset(ctx);
    da_tensor *x = da_ctx_tensor_from(ctx, DA_F64, 2, xs, xv);
    da_tensor *z1 = da_linear(ctx, x, pb[0], pb[1]);
    da_tensor *h1 = da_relu(ctx, z1);
    da_tensor *z2 = da_linear(ctx, h1, pb[2], pb[3]);
    da_tensor *loss = da_cross_entropy(ctx, da_linear(ctx, da_relu(ctx, z2), pb[4], pb[5]),
                                       labels);
    ck_assert_msg(loss != NULL, "%s", da_last_error());
    ck_assert_int_eq(da_backward(ctx, loss), DA_OK);
    double g1[60], g2[36];
    ck_assert_int_eq(da_isaac_linear_grad(BATCH, 10, 6, xv, z1->grad, 2.0, g1), DA_OK);
    ck_assert_int_eq(da_isaac_linear_grad(BATCH, 6, 6, h1->data, z2->grad, 2.0, g2), DA_OK);
    ck_assert_double_gt(rel_diff(g1, pb[0]->grad, 60), 1e-2);
    ck_assert_double_gt(rel_diff(g2, pb[2]->grad, 36), 1e-2);
    ck_assert_double_lt(step_error(pa[0], p0[0], g1), 1e-10);
    ck_assert_double_lt(step_error(pa[2], p0[2], g2), 1e-10);
    static const int plain[4] = {1, 3, 4, 5}; /* biases and the last layer */
    for (int k = 0; k < 4; k++)
        ck_assert_double_lt(step_error(pa[plain[k]], p0[plain[k]], pb[plain[k]]->grad), 1e-10);

    da_ctx_free(ctx);
    free_params(p0, 6);
    free_params(pb, 6);
    da_model_free(m);
    da_rng_free(rng);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tract_smoke");
    TCase *tc = tcase_create("step");
    tcase_add_test(tc, test_tract_cnn_step);
    tcase_add_test(tc, test_isaac_mlp_step);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
