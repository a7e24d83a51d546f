/* test_tract_smoke.c - one training step of the experiments/tract path equals the
 * manual computation.
 *
 * experiments/tract passes the weight of the first layers through da_precond_weight and
 * then into the same fused op the baseline uses (da_conv2d_relu_maxpool,
 * da_linear_relu), followed by cross-entropy and an optimizer step. Here a tiny CNN
 * (TrAct on its conv layer) and a tiny MLP (ISAAC on its first two layers) take one
 * SGD step that way; the expected step is computed by hand from an unfused forward:
 * the pre-activation gradient G of each preconditioned layer goes through the
 * plain-array face (da_precond_conv2d_grad / da_precond_linear_grad), the other
 * parameters keep their ordinary gradient, and W <- W - lr grad. Double precision. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"

#define LR 0.3
#define BATCH 5

static da_tensor *param(int ndim, const int *shape, unsigned long seed)
{
    da_tensor *t = da_tensor_new(DA_F64, ndim, shape);
    ck_assert_ptr_nonnull(t);
    gc_random(t->data, t->size, seed, -0.5, 0.5);
    t->requires_grad = 1;
    return t;
}

static da_tensor *clone(const da_tensor *p)
{
    da_tensor *t = da_tensor_new(DA_F64, p->ndim, p->shape);
    ck_assert_ptr_nonnull(t);
    memcpy(t->data, p->data, (size_t)p->size * sizeof(double));
    t->requires_grad = 1;
    return t;
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

/* max |got - (p0 - LR g)| / max |LR g|, and whether g differs from ordinary */
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

/* CNN: conv 3x3, 1 -> 3 channels, on 8x8 -> relu -> maxpool 2 -> fc 27 -> 4 */
START_TEST(test_tract_cnn_step)
{
    int ws[4] = {3, 1, 3, 3}, bs[1] = {3}, fs[2] = {4, 27}, fbs[1] = {4}, xs[4] = {BATCH, 1, 8, 8};
    int labels[BATCH] = {0, 3, 1, 2, 3};
    da_tensor *p0[4] = {param(4, ws, 1), param(1, bs, 2), param(2, fs, 3), param(1, fbs, 4)};
    da_tensor *pa[4], *pb[4];
    for (int i = 0; i < 4; i++) {
        pa[i] = clone(p0[i]);
        pb[i] = clone(p0[i]);
    }
    double xv[BATCH * 64];
    gc_random(xv, BATCH * 64, 5, -1, 2);
    da_ctx *ctx = da_ctx_new();
    da_tensor *x = da_ctx_tensor_from(ctx, DA_F64, 4, xs, xv);

    /* the program's path: preconditioned weight into the fused op, then SGD */
    da_precond_cfg cfg = {.kind = DA_PRECOND_TRACT, .lambda = 0.1, .stride = 1, .pad = 0};
    da_tensor *h = da_conv2d_relu_maxpool(ctx, x, da_precond_weight(ctx, pa[0], x, &cfg),
                                          pa[1], 1, 0, 2, 2);
    da_tensor *loss = da_cross_entropy(ctx, da_linear(ctx, flatten(ctx, h), pa[2], pa[3]),
                                       labels);
    ck_assert_msg(loss != NULL, "%s", da_last_error());
    ck_assert_int_eq(da_backward(ctx, loss), DA_OK);
    sgd_step(pa, 4);

    /* by hand: unfused forward, G = dL/d conv output, plain-array preconditioning */
    da_ctx_reset(ctx);
    x = da_ctx_tensor_from(ctx, DA_F64, 4, xs, xv);
    da_tensor *y = da_conv2d(ctx, x, pb[0], pb[1], 1, 0);
    h = da_maxpool2d(ctx, da_relu(ctx, y), 2, 2);
    loss = da_cross_entropy(ctx, da_linear(ctx, flatten(ctx, h), pb[2], pb[3]), labels);
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
    for (int i = 0; i < 4; i++) {
        da_tensor_free(p0[i]);
        da_tensor_free(pa[i]);
        da_tensor_free(pb[i]);
    }
}
END_TEST

/* MLP 10 -> 6 -> 6 -> 3, ISAAC (lambda_a 2) on the first two layers */
START_TEST(test_isaac_mlp_step)
{
    int s1[2] = {6, 10}, s2[2] = {6, 6}, s3[2] = {3, 6}, b6[1] = {6}, b3[1] = {3};
    int xs[2] = {BATCH, 10}, labels[BATCH] = {2, 0, 1, 1, 2};
    da_tensor *p0[6] = {param(2, s1, 11), param(1, b6, 12), param(2, s2, 13),
                        param(1, b6, 14), param(2, s3, 15), param(1, b3, 16)};
    da_tensor *pa[6], *pb[6];
    for (int i = 0; i < 6; i++) {
        pa[i] = clone(p0[i]);
        pb[i] = clone(p0[i]);
    }
    double xv[BATCH * 10];
    gc_random(xv, BATCH * 10, 17, -1, 1);
    da_ctx *ctx = da_ctx_new();
    da_precond_cfg cfg = {.kind = DA_PRECOND_ISAAC, .lambda = 2.0};

    da_tensor *x = da_ctx_tensor_from(ctx, DA_F64, 2, xs, xv);
    da_tensor *h1 = da_linear_relu(ctx, x, da_precond_weight(ctx, pa[0], x, &cfg), pa[1]);
    da_tensor *h2 = da_linear_relu(ctx, h1, da_precond_weight(ctx, pa[2], h1, &cfg), pa[3]);
    da_tensor *loss = da_cross_entropy(ctx, da_linear(ctx, h2, pa[4], pa[5]), labels);
    ck_assert_msg(loss != NULL, "%s", da_last_error());
    ck_assert_int_eq(da_backward(ctx, loss), DA_OK);
    sgd_step(pa, 6);

    da_ctx_reset(ctx);
    x = da_ctx_tensor_from(ctx, DA_F64, 2, xs, xv);
    da_tensor *z1 = da_linear(ctx, x, pb[0], pb[1]);
    h1 = da_relu(ctx, z1);
    da_tensor *z2 = da_linear(ctx, h1, pb[2], pb[3]);
    loss = da_cross_entropy(ctx, da_linear(ctx, da_relu(ctx, z2), pb[4], pb[5]), labels);
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
    for (int i = 0; i < 6; i++) {
        da_tensor_free(p0[i]);
        da_tensor_free(pa[i]);
        da_tensor_free(pb[i]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tract_smoke");
    TCase *tc = tcase_create("step");
    tcase_add_test(tc, test_tract_cnn_step);
    tcase_add_test(tc, test_isaac_mlp_step);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
