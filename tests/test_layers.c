/* test_layers.c - layers, initialisers and the sequential model (lib/layers.c): builder
 * structure, init distributions, fused forward against the unfused ops, a whole-network
 * directional-derivative check, grad accumulation, a short training run, error paths. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "suite_run.h"

/* mean cross entropy of the model on x [shape] with labels; grads added to the params
 * when backward != 0. Returns the loss (NAN on error). */
static double model_loss(da_model *m, da_dtype dt, int ndim, const int *shape, const double *x,
                         const int *labels, int backward)
{
    da_ctx *ctx = da_ctx_new();
    da_tensor *xt = da_ctx_tensor_from(ctx, dt, ndim, shape, x);
    da_tensor *l = da_cross_entropy(ctx, da_model_forward(ctx, m, xt), labels);
    ck_assert_msg(l != NULL, "%s", da_last_error());
    if (backward)
        ck_assert_int_eq(da_backward(ctx, l), DA_OK);
    double v = da_get(l, 0);
    da_ctx_free(ctx);
    return v;
}

/* add s * v to the parameters (v in the order of da_model_params) */
static void params_axpy(da_model *m, double s, const double *v)
{
    da_tensor **p = da_model_params(m);
    long k = 0;
    for (int i = 0; i < da_model_n_params(m); i++)
        for (long j = 0; j < p[i]->size; j++, k++)
            da_set(p[i], j, da_get(p[i], j) + s * v[k]);
}

/* (L(theta + h v) - L(theta - h v)) / 2h against <grad L, v>: relative error */
static double directional_check(da_model *m, int ndim, const int *shape, const double *x,
                                const int *labels, unsigned long seed)
{
    long n = da_model_n_weights(m);
    double *v = malloc(n * sizeof *v), h = 1e-5;
    gc_random(v, n, seed, -1, 1);
    da_model_zero_grad(m);
    model_loss(m, DA_F64, ndim, shape, x, labels, 1);
    double an = 0;
    da_tensor **p = da_model_params(m);
    long k = 0;
    for (int i = 0; i < da_model_n_params(m); i++)
        for (long j = 0; j < p[i]->size; j++)
            an += da_get_grad(p[i], j) * v[k++];
    params_axpy(m, h, v);
    double lp = model_loss(m, DA_F64, ndim, shape, x, labels, 0);
    params_axpy(m, -2 * h, v);
    double lm = model_loss(m, DA_F64, ndim, shape, x, labels, 0);
    params_axpy(m, h, v);
    double fd = (lp - lm) / (2 * h);
    free(v);
    return fabs(fd - an) / fmax(fabs(fd), fabs(an));
}

START_TEST(test_cnn_structure)
{
    da_rng *rng = da_rng_new(1);
    int ch[2] = {32, 64}, fc[2] = {64, 10};
    da_model *m = da_model_cnn(DA_F32, 1, 28, 28, 2, ch, 5, 0, 2, fc, rng);
    ck_assert_ptr_nonnull(m);
    da_layer_kind kinds[10] = {DA_LAYER_CONV2D, DA_LAYER_RELU,    DA_LAYER_MAXPOOL, DA_LAYER_CONV2D,
                               DA_LAYER_RELU,   DA_LAYER_MAXPOOL, DA_LAYER_FLATTEN, DA_LAYER_LINEAR,
                               DA_LAYER_RELU,   DA_LAYER_LINEAR};
    ck_assert_int_eq(da_model_n_layers(m), 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(da_model_layer(m, i)->kind, kinds[i]);
    da_layer *c2 = da_model_layer(m, 3), *f1 = da_model_layer(m, 7);
    ck_assert_int_eq(c2->in, 32);
    ck_assert_int_eq(c2->out, 64);
    ck_assert_int_eq(c2->k, 5);
    ck_assert_int_eq(c2->W->shape[1], 32);
    ck_assert_int_eq(f1->in, 1024);
    ck_assert_int_eq(f1->out, 64);
    ck_assert_int_eq(da_model_layer(m, 2)->k, 2);
    ck_assert_int_eq(da_model_layer(m, 2)->stride, 2);
    ck_assert_ptr_null(da_model_layer(m, 1)->W);
    ck_assert_int_eq(da_model_n_params(m), 8);
    ck_assert_int_eq(da_model_n_weights(m), 32 * 25 + 32 + 64 * 800 + 64 + 1024 * 64 + 64 + 640 + 10);
    /* padding 2 (diffsort's multi-digit CNN on 4 digits, 28 x 112): 7 x 28 x 64 features */
    int one_fc[2] = {64, 1};
    da_model *padded = da_model_cnn(DA_F32, 1, 28, 112, 2, ch, 5, 2, 2, one_fc, rng);
    ck_assert_ptr_nonnull(padded);
    ck_assert_int_eq(da_model_layer(padded, 0)->pad, 2);
    ck_assert_int_eq(da_model_layer(padded, 7)->in, 4 * 7 * 7 * 64);
    ck_assert_int_eq(da_model_n_weights(padded), 832 + 51264 + 12544 * 64 + 64 + 65);
    da_model_free(padded);
    da_tensor **p = da_model_params(m);
    for (int i = 0; i < 8; i++) {
        ck_assert(p[i]->requires_grad);
        ck_assert_ptr_null(p[i]->ctx);
        ck_assert_int_eq(p[i]->dtype, DA_F32);
    }
    ck_assert_ptr_eq(p[0], da_model_layer(m, 0)->W);
    ck_assert_ptr_eq(p[7], da_model_layer(m, 9)->b);
    /* the output of a batch is [N][10] */
    int xs[4] = {3, 1, 28, 28};
    da_ctx *ctx = da_ctx_new();
    da_tensor *y = da_model_forward(ctx, m, da_ctx_tensor(ctx, DA_F32, 4, xs));
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->ndim, 2);
    ck_assert_int_eq(y->shape[0], 3);
    ck_assert_int_eq(y->shape[1], 10);
    da_ctx_free(ctx);
    da_model_free(m);
    int sizes[3] = {5, 7, 3};
    m = da_model_mlp(DA_F64, 3, sizes, rng);
    ck_assert_int_eq(da_model_n_layers(m), 3);
    ck_assert_int_eq(da_model_layer(m, 1)->kind, DA_LAYER_RELU);
    ck_assert_int_eq(da_model_n_weights(m), 5 * 7 + 7 + 7 * 3 + 3);
    da_model_free(m);
    da_model_free(NULL);
    da_rng_free(rng);
}
END_TEST

/* sample moments of W and b for one init */
static void init_stats(da_init init, int in, int out, double *maxw, double *stdw, double *maxb)
{
    da_rng *rng = da_rng_new(7);
    da_model *m = da_model_new(DA_F64);
    ck_assert_int_eq(da_model_add_linear(m, in, out, init, rng), DA_OK);
    da_layer *l = da_model_layer(m, 0);
    double s = 0, s2 = 0;
    *maxw = *maxb = 0;
    for (long i = 0; i < l->W->size; i++) {
        double w = da_get(l->W, i);
        s += w;
        s2 += w * w;
        *maxw = fmax(*maxw, fabs(w));
    }
    for (long i = 0; i < l->b->size; i++)
        *maxb = fmax(*maxb, fabs(da_get(l->b, i)));
    long n = l->W->size;
    *stdw = sqrt(s2 / n - (s / n) * (s / n));
    da_model_free(m);
    da_rng_free(rng);
}

START_TEST(test_init)
{
    int in = 400, out = 300;
    double maxw, stdw, maxb, a = 1 / sqrt(in);
    init_stats(DA_INIT_TORCH_DEFAULT, in, out, &maxw, &stdw, &maxb);
    ck_assert_double_le(maxw, a);
    ck_assert_double_gt(maxw, 0.99 * a);
    ck_assert_double_le(maxb, a);
    ck_assert_double_gt(maxb, 0.5 * a);
    ck_assert_double_eq_tol(stdw, a / sqrt(3), 0.02 * a / sqrt(3));
    init_stats(DA_INIT_KAIMING_UNIFORM, in, out, &maxw, &stdw, &maxb);
    ck_assert_double_le(maxw, sqrt(6.0 / in));
    ck_assert_double_eq_tol(stdw, sqrt(2.0 / in), 0.02 * sqrt(2.0 / in));
    ck_assert_double_eq(maxb, 0);
    init_stats(DA_INIT_KAIMING_NORMAL, in, out, &maxw, &stdw, &maxb);
    ck_assert_double_gt(maxw, 3 * sqrt(2.0 / in)); /* normal tails */
    ck_assert_double_eq_tol(stdw, sqrt(2.0 / in), 0.02 * sqrt(2.0 / in));
    init_stats(DA_INIT_XAVIER_UNIFORM, in, out, &maxw, &stdw, &maxb);
    ck_assert_double_le(maxw, sqrt(6.0 / (in + out)));
    ck_assert_double_eq_tol(stdw, sqrt(2.0 / (in + out)), 0.02 * sqrt(2.0 / (in + out)));
    init_stats(DA_INIT_XAVIER_NORMAL, in, out, &maxw, &stdw, &maxb);
    ck_assert_double_eq_tol(stdw, sqrt(2.0 / (in + out)), 0.02 * sqrt(2.0 / (in + out)));
    /* conv fan_in = in_ch * k * k; the same seed gives the same weights */
    da_rng *r1 = da_rng_new(3), *r2 = da_rng_new(3);
    da_model *m1 = da_model_new(DA_F32), *m2 = da_model_new(DA_F32);
    ck_assert_int_eq(da_model_add_conv2d(m1, 4, 6, 3, 1, 1, DA_INIT_TORCH_DEFAULT, r1), DA_OK);
    ck_assert_int_eq(da_model_add_conv2d(m2, 4, 6, 3, 1, 1, DA_INIT_TORCH_DEFAULT, r2), DA_OK);
    da_tensor *w1 = da_model_layer(m1, 0)->W, *w2 = da_model_layer(m2, 0)->W;
    ck_assert_int_eq(w1->size, 6 * 4 * 9);
    ck_assert(memcmp(w1->data, w2->data, w1->size * sizeof(float)) == 0);
    for (long i = 0; i < w1->size; i++)
        ck_assert_double_le(fabs(da_get(w1, i)), 1 / 6.0);
    da_model_free(m1);
    da_model_free(m2);
    da_rng_free(r1);
    da_rng_free(r2);
}
END_TEST

/* the model's fused conv+relu / linear+relu nodes equal the unfused op chain, values and
 * gradients */
START_TEST(test_forward_matches_ops)
{
    da_rng *rng = da_rng_new(11);
    int ch[2] = {3, 4}, fc[2] = {5, 3};
    da_model *m = da_model_cnn(DA_F64, 2, 12, 13, 2, ch, 3, 1, 2, fc, rng);
    ck_assert_ptr_nonnull(m);
    int xs[4] = {4, 2, 12, 13};
    double x[4 * 2 * 12 * 13];
    gc_random(x, 4 * 2 * 12 * 13, 12, 0, 1);
    da_ctx *ctx = da_ctx_new();
    da_tensor *xt = da_ctx_tensor_from(ctx, DA_F64, 4, xs, x);
    xt->requires_grad = 1;
    da_tensor *y = da_model_forward(ctx, m, xt);
    double cot[12];
    gc_random(cot, 12, 13, -1, 1);
    ck_assert_int_eq(da_backward_from(ctx, y, cot), DA_OK);
    double ym[12], gx[4 * 2 * 12 * 13];
    da_tensor_copy_to(y, ym);
    for (long i = 0; i < xt->size; i++)
        gx[i] = da_get_grad(xt, i);
    da_ctx_reset(ctx);
    xt = da_ctx_tensor_from(ctx, DA_F64, 4, xs, x);
    xt->requires_grad = 1;
    da_layer *L = da_model_layer(m, 0);
    da_tensor *h = da_maxpool2d(ctx, da_relu(ctx, da_conv2d(ctx, xt, L[0].W, L[0].b, 1, 1)), 2, 2);
    h = da_maxpool2d(ctx, da_relu(ctx, da_conv2d(ctx, h, L[3].W, L[3].b, 1, 1)), 2, 2);
    h = da_reshape(ctx, h, 2, (int[]){4, -1});
    h = da_linear(ctx, da_relu(ctx, da_linear(ctx, h, L[7].W, L[7].b)), L[9].W, L[9].b);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(da_backward_from(ctx, h, cot), DA_OK);
    for (int i = 0; i < 12; i++)
        ck_assert_double_eq_tol(da_get(h, i), ym[i], 1e-14);
    for (long i = 0; i < xt->size; i++)
        ck_assert_double_eq_tol(da_get_grad(xt, i), gx[i], 1e-14);
    da_ctx_free(ctx);
    da_model_free(m);
    da_rng_free(rng);
}
END_TEST

START_TEST(test_cnn_directional_derivative)
{
    da_rng *rng = da_rng_new(21);
    int ch[2] = {3, 4}, fc[2] = {5, 3}, labels[4] = {0, 2, 1, 2};
    da_model *m = da_model_cnn(DA_F64, 2, 12, 13, 2, ch, 3, 0, 2, fc, rng);
    int xs[4] = {4, 2, 12, 13};
    double x[4 * 2 * 12 * 13];
    gc_random(x, 4 * 2 * 12 * 13, 22, 0, 1);
    for (unsigned long seed = 0; seed < 3; seed++) {
        double e = directional_check(m, 4, xs, x, labels, 100 + seed);
        ck_assert_msg(e < 1e-6, "directional derivative error %g", e);
    }
    da_model_free(m);
    da_rng_free(rng);
}
END_TEST

/* plain relu, avgpool and flatten layers (not fused) in a hand-built model */
START_TEST(test_plain_layers_directional)
{
    da_rng *rng = da_rng_new(31);
    da_model *m = da_model_new(DA_F64);
    ck_assert_int_eq(da_model_add_conv2d(m, 2, 3, 3, 2, 1, DA_INIT_KAIMING_NORMAL, rng), DA_OK);
    ck_assert_int_eq(da_model_add_avgpool(m, 2, 1), DA_OK);
    ck_assert_int_eq(da_model_add_relu(m), DA_OK);
    ck_assert_int_eq(da_model_add_flatten(m), DA_OK);
    ck_assert_int_eq(da_model_add_relu(m), DA_OK);
    ck_assert_int_eq(da_model_add_linear(m, 3 * 3 * 2, 4, DA_INIT_XAVIER_UNIFORM, rng), DA_OK);
    int xs[4] = {3, 2, 7, 5}, labels[3] = {3, 0, 1};
    double x[3 * 2 * 7 * 5];
    gc_random(x, 3 * 2 * 7 * 5, 32, -1, 1);
    for (unsigned long seed = 0; seed < 3; seed++) {
        double e = directional_check(m, 4, xs, x, labels, 200 + seed);
        ck_assert_msg(e < 1e-6, "directional derivative error %g", e);
    }
    da_model_free(m);
    da_rng_free(rng);
}
END_TEST

START_TEST(test_grad_accumulation)
{
    da_rng *rng = da_rng_new(41);
    int sizes[3] = {4, 6, 3}, xs[2] = {5, 4}, labels[5] = {0, 1, 2, 1, 0};
    da_model *m = da_model_mlp(DA_F32, 3, sizes, rng);
    double x[20];
    gc_random(x, 20, 42, -1, 1);
    model_loss(m, DA_F32, 2, xs, x, labels, 1);
    da_tensor *W = da_model_params(m)[0];
    double g1 = da_get_grad(W, 5);
    ck_assert_double_ne(g1, 0);
    model_loss(m, DA_F32, 2, xs, x, labels, 1);
    ck_assert_double_eq_tol(da_get_grad(W, 5), 2 * g1, 1e-6 * fabs(g1));
    da_model_zero_grad(m);
    for (int i = 0; i < da_model_n_params(m); i++)
        for (long j = 0; j < da_model_params(m)[i]->size; j++)
            ck_assert_double_eq(da_get_grad(da_model_params(m)[i], j), 0);
    da_model_free(m);
    da_rng_free(rng);
}
END_TEST

/* full-batch gradient descent on XOR with a 2-16-2 MLP reaches a small loss */
START_TEST(test_training_xor)
{
    da_rng *rng = da_rng_new(51);
    int sizes[3] = {2, 16, 2}, xs[2] = {4, 2}, labels[4] = {0, 1, 1, 0};
    double x[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    da_model *m = da_model_mlp(DA_F64, 3, sizes, rng);
    double first = model_loss(m, DA_F64, 2, xs, x, labels, 0), last = first;
    for (int step = 0; step < 500; step++) {
        da_model_zero_grad(m);
        last = model_loss(m, DA_F64, 2, xs, x, labels, 1);
        for (int i = 0; i < da_model_n_params(m); i++) {
            da_tensor *p = da_model_params(m)[i];
            for (long j = 0; j < p->size; j++)
                da_set(p, j, da_get(p, j) - 0.5 * da_get_grad(p, j));
        }
    }
    ck_assert_double_gt(first, 0.5);
    ck_assert_msg(last < 0.05, "loss %g after training (from %g)", last, first);
    da_model_free(m);
    da_rng_free(rng);
}
END_TEST

START_TEST(test_errors)
{
    da_rng *rng = da_rng_new(61);
    da_model *m = da_model_new(DA_F64);
    da_ctx *ctx = da_ctx_new();
    int xs[4] = {2, 3, 8, 8};
    da_tensor *x = da_ctx_tensor(ctx, DA_F64, 4, xs), *xf = da_ctx_tensor(ctx, DA_F32, 4, xs);
    ck_assert_ptr_null(da_model_forward(ctx, m, x));
    ck_assert_int_eq(da_last_error_code(), DA_ESTATE);
    ck_assert_int_eq(da_model_add_linear(m, 0, 3, DA_INIT_TORCH_DEFAULT, rng), DA_ERANGE);
    ck_assert_int_eq(da_model_add_linear(m, 3, 3, DA_INIT_TORCH_DEFAULT, NULL), DA_EINVAL);
    ck_assert_int_eq(da_model_add_linear(m, 3, 3, (da_init)9, rng), DA_EINVAL);
    ck_assert_int_eq(da_model_add_linear(NULL, 3, 3, DA_INIT_TORCH_DEFAULT, rng), DA_EINVAL);
    ck_assert_int_eq(da_model_add_conv2d(m, 3, 4, 3, 0, 0, DA_INIT_TORCH_DEFAULT, rng), DA_ERANGE);
    ck_assert_int_eq(da_model_add_conv2d(m, 3, 4, 3, 1, -1, DA_INIT_TORCH_DEFAULT, rng), DA_ERANGE);
    ck_assert_int_eq(da_model_add_maxpool(m, 0, 2), DA_ERANGE);
    ck_assert_int_eq(da_model_add_avgpool(m, 2, 0), DA_ERANGE);
    ck_assert_int_eq(da_model_add_relu(NULL), DA_EINVAL);
    ck_assert_int_eq(da_model_n_layers(m), 0);
    ck_assert_int_eq(da_model_n_params(m), 0);
    ck_assert_int_eq(da_model_add_conv2d(m, 4, 4, 3, 1, 0, DA_INIT_TORCH_DEFAULT, rng), DA_OK);
    /* 3 channels into a 4-channel conv; F32 input into an F64 model; NULL input */
    ck_assert_ptr_null(da_model_forward(ctx, m, x));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_model_forward(ctx, m, xf));
    ck_assert_int_eq(da_last_error_code(), DA_EDTYPE);
    ck_assert_ptr_null(da_model_forward(ctx, m, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_model_layer(m, 1));
    ck_assert_ptr_null(da_model_layer(m, -1));
    ck_assert_ptr_null(da_model_new((da_dtype)5));
    ck_assert_int_eq(da_last_error_code(), DA_EDTYPE);
    /* builders */
    int ch[2] = {4, 4}, fc[1] = {3}, one[1] = {3};
    ck_assert_ptr_null(da_model_cnn(DA_F64, 1, 10, 10, 2, ch, 5, 0, 1, fc, rng));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_model_cnn(DA_F64, 1, 10, 10, 2, NULL, 5, 0, 1, fc, rng));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_model_cnn(DA_F64, 0, 10, 10, 1, ch, 3, 0, 1, fc, rng));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_model_cnn(DA_F64, 1, 10, 10, 1, ch, 3, 3, 1, fc, rng));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_model_mlp(DA_F64, 1, one, rng));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    int badsizes[3] = {3, 0, 2};
    ck_assert_ptr_null(da_model_mlp(DA_F64, 3, badsizes, rng));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    da_ctx_free(ctx);
    da_model_free(m);
    da_rng_free(rng);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cnn_structure);
    tcase_add_test(tc, test_init);
    tcase_add_test(tc, test_forward_matches_ops);
    tcase_add_test(tc, test_cnn_directional_derivative);
    tcase_add_test(tc, test_plain_layers_directional);
    tcase_add_test(tc, test_grad_accumulation);
    tcase_add_test(tc, test_training_xor);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
