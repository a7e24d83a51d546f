/* test_logicnet_adam.c - the fused training step da_logicnet_adam_step (lib/logicnet.h):
 * in double it takes the same steps as da_logicnet_backward + da_optim (Adam with L2,
 * AdamW; dense with 1 and 2 threads, convolutional), in float it stays close to them;
 * the coefficients it leaves for the next forward are those the forward computes itself
 * (a resumed run - net file + optimizer state - continues bit for bit), runs repeat bit
 * for bit, gbits as da_logicnet_backward's; errors; every allocation failure. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "diffalg.h"
#include "gradcheck.h"
#include "suite_run.h"

/* 20 inputs x 2 thresholds = 40 bits, 3 layers of 30 neurons (not a multiple of the
 * 8-neuron blocks of the float kernel), 3 classes; or a convolutional net over 4 x 4 */
static da_logicnet *make_net(int conv, da_dtype precision)
{
    static const double thr[2] = {0.35, 0.65};
    static const da_logic_conv_spec st[2] = {{DA_LOGIC_CONV_TREE, 0, 0, 0, 3, 2, 3, 1, 1},
                                             {DA_LOGIC_CONV_OR_POOL, 0, 0, 0, 0, 0, 2, 2, 0}};
    da_logicnet_cfg c = da_logicnet_default_cfg(20, 3, 30, 3);
    c.n_thresholds = 2;
    c.thresholds = thr;
    c.tau = 3;
    c.grad_factor = 1.5;
    c.seed = 7;
    if (conv) {
        c = da_logicnet_default_cfg(16, 2, 12, 2);
        c.n_conv = 2, c.conv = st, c.image_h = c.image_w = 4, c.grad_factor = 1.5, c.seed = 3;
    }
    da_logicnet *net = da_logicnet_new(&c);
    ck_assert_msg(net != NULL, "%s", da_last_error());
    ck_assert_int_eq(da_logicnet_set_precision(net, precision), DA_OK);
    return net;
}

typedef struct {
    int batch;
    double *bits;
    int *labels;
    double *logits, *glogits;
} data;

static data make_data(const da_logicnet *net, int batch, unsigned long seed)
{
    data d = {batch, malloc((size_t)batch * net->n_bits * sizeof(double)),
              malloc((size_t)batch * sizeof(int)),
              malloc((size_t)batch * net->n_classes * sizeof(double)),
              malloc((size_t)batch * net->n_classes * sizeof(double))};
    da_rng *rng = da_rng_new(seed);
    for (long i = 0; i < (long)batch * net->n_bits; i++)
        d.bits[i] = da_rng_uniform(rng) < 0.5;
    for (int b = 0; b < batch; b++) { /* learnable: from two of the bits */
        const double *x = d.bits + (size_t)b * net->n_bits;
        d.labels[b] = (int)(x[0] + x[3]) % net->n_classes;
    }
    da_rng_free(rng);
    return d;
}

static void free_data(data *d)
{
    free(d->bits);
    free(d->labels);
    free(d->logits);
    free(d->glogits);
}

/* one training step, fused (opt) or generic (gopt); returns the loss */
static double train_step(da_logicnet *net, da_logicnet_adam *opt, da_optim *gopt, data *d)
{
    double loss;
    if (gopt)
        da_optim_zero_grad(gopt);
    ck_assert_int_eq(da_logicnet_forward(net, d->batch, d->bits, 0, d->logits), DA_OK);
    ck_assert_int_eq(da_logicnet_cross_entropy(d->batch, net->n_classes, d->logits, d->labels,
                                               &loss, d->glogits), DA_OK);
    if (opt) {
        ck_assert_int_eq(da_logicnet_adam_step(opt, d->glogits, NULL), DA_OK);
    } else {
        ck_assert_int_eq(da_logicnet_backward(net, d->glogits, NULL), DA_OK);
        ck_assert_int_eq(da_optim_step(gopt), DA_OK);
    }
    return loss;
}

/* max |a - b| over every logit of the two nets / max |b - b0| (the distance trained) */
static double param_err(const da_logicnet *a, const da_logicnet *b, double *const *b0)
{
    double d = 0, moved = 1e-300;
    for (int p = 0; p < a->n_params; p++) {
        const double *x = a->params[p]->data, *y = b->params[p]->data;
        for (long i = 0; i < a->params[p]->size; i++) {
            d = fmax(d, fabs(x[i] - y[i]));
            moved = fmax(moved, fabs(y[i] - b0[p][i]));
        }
    }
    return d / moved;
}

static double **copy_params(const da_logicnet *net)
{
    double **c = malloc((size_t)net->n_params * sizeof *c);
    for (int p = 0; p < net->n_params; p++) {
        c[p] = malloc((size_t)net->params[p]->size * sizeof(double));
        memcpy(c[p], net->params[p]->data, (size_t)net->params[p]->size * sizeof(double));
    }
    return c;
}

static void free_params(double **c, int n)
{
    for (int p = 0; p < n; p++)
        free(c[p]);
    free(c);
}

/* the fused step against da_logicnet_backward + da_optim for `steps` steps; returns the
 * parameter error (param_err) and checks the losses to tol */
static double against_generic(int conv, da_dtype precision, da_optim_cfg cfg, int batch,
                              int steps, double loss_tol)
{
    da_logicnet *a = make_net(conv, precision), *b = make_net(conv, DA_F64);
    double **b0 = copy_params(b);
    da_logicnet_adam *opt = da_logicnet_adam_new(a, &cfg);
    da_optim *gopt = da_optim_new(b->params, b->n_params, &cfg);
    ck_assert_msg(opt && gopt, "%s", da_last_error());
    data d = make_data(a, batch, 11);
    for (int s = 0; s < steps; s++) {
        double la = train_step(a, opt, NULL, &d), lb = train_step(b, NULL, gopt, &d);
        ck_assert_double_lt(fabs(la - lb), loss_tol * fabs(lb));
    }
    ck_assert_int_eq(da_logicnet_adam_steps(opt), steps);
    double err = param_err(a, b, b0);
    free_data(&d);
    free_params(b0, b->n_params);
    da_optim_free(gopt);
    da_logicnet_adam_free(opt);
    da_logicnet_free(a);
    da_logicnet_free(b);
    return err;
}

START_TEST(test_double_matches_generic)
{
    da_optim_cfg adam = da_adam_cfg(0.05), adamw = da_adamw_cfg(0.05);
    adam.weight_decay = 0.01;
    adamw.weight_decay = 0.1;
    /* batch 8: one thread; batch 400: two threads, the batch sums in two parts */
    for (int batch = 8; batch <= 400; batch += 392) {
        double e1 = against_generic(0, DA_F64, adam, batch, 5, 1e-12);
        double e2 = against_generic(0, DA_F64, adamw, batch, 5, 1e-12);
        ck_assert_msg(e1 < 1e-10 && e2 < 1e-10, "batch %d: %g %g", batch, e1, e2);
    }
    ck_assert_double_lt(against_generic(1, DA_F64, adam, 6, 4, 1e-12), 1e-10);
}
END_TEST

START_TEST(test_float_close_to_generic)
{
    da_optim_cfg adam = da_adam_cfg(0.05);
    double e = against_generic(0, DA_F32, adam, 400, 5, 1e-4);
    ck_assert_msg(e < 1e-3 && e > 0, "%g", e); /* close, and really float */
    ck_assert_double_lt(against_generic(1, DA_F32, adam, 6, 4, 1e-4), 1e-3);
}
END_TEST

/* 3 steps, a checkpoint (net file + optimizer state), 3 more steps; the run resumed from
 * the checkpoint in a new net and optimizer takes the same 3 steps bit for bit, and so
 * does a repeated run */
static void resume_exact(da_dtype precision)
{
    da_optim_cfg cfg = da_adamw_cfg(0.05);
    da_logicnet *net = make_net(0, precision);
    da_logicnet_adam *opt = da_logicnet_adam_new(net, &cfg);
    data d = make_data(net, 300, 5);
    for (int s = 0; s < 3; s++)
        train_step(net, opt, NULL, &d);
    void *file;
    size_t file_size, n = da_logicnet_adam_state_size(opt);
    unsigned char *state = malloc(n);
    ck_assert_int_eq(da_logicnet_serialize(net, &file, &file_size), DA_OK);
    ck_assert_int_eq(da_logicnet_adam_state_save(opt, state, n), DA_OK);
    double loss[2][3];
    for (int s = 0; s < 3; s++)
        loss[0][s] = train_step(net, opt, NULL, &d);
    da_logicnet *again = da_logicnet_deserialize(file, file_size);
    ck_assert_ptr_nonnull(again);
    ck_assert_int_eq(da_logicnet_set_precision(again, precision), DA_OK);
    da_logicnet_adam *opt2 = da_logicnet_adam_new(again, &cfg);
    ck_assert_int_eq(da_logicnet_adam_state_load(opt2, state, n), DA_OK);
    ck_assert_int_eq(da_logicnet_adam_steps(opt2), 3);
    for (int s = 0; s < 3; s++)
        loss[1][s] = train_step(again, opt2, NULL, &d);
    ck_assert_mem_eq(loss[0], loss[1], sizeof loss[0]);
    for (int l = 0; l < net->n_layers; l++)
        ck_assert_mem_eq(net->w[l]->data, again->w[l]->data,
                         (size_t)net->w[l]->size * sizeof(double));
    ck_assert_double_lt(loss[0][2], loss[0][0]); /* and it learns */
    free(file);
    free(state);
    free_data(&d);
    da_logicnet_adam_free(opt);
    da_logicnet_adam_free(opt2);
    da_logicnet_free(net);
    da_logicnet_free(again);
}

START_TEST(test_resume_bit_exact)
{
    resume_exact(DA_F32);
    resume_exact(DA_F64);
}
END_TEST

/* gbits of the fused step = those of da_logicnet_backward after the same forward */
START_TEST(test_gbits)
{
    for (int conv = 0; conv < 2; conv++) {
        da_logicnet *net = make_net(conv, DA_F64);
        da_optim_cfg cfg = da_adam_cfg(0.01);
        da_logicnet_adam *opt = da_logicnet_adam_new(net, &cfg);
        data d = make_data(net, 7, 9);
        double *g[2] = {malloc(7 * net->n_bits * sizeof(double)),
                        malloc(7 * net->n_bits * sizeof(double))}, loss;
        for (int r = 0; r < 2; r++) {
            ck_assert_int_eq(da_logicnet_forward(net, 7, d.bits, 0, d.logits), DA_OK);
            ck_assert_int_eq(da_logicnet_cross_entropy(7, net->n_classes, d.logits, d.labels,
                                                       &loss, d.glogits), DA_OK);
            if (r)
                ck_assert_int_eq(da_logicnet_adam_step(opt, d.glogits, g[1]), DA_OK);
            else
                ck_assert_int_eq(da_logicnet_backward(net, d.glogits, g[0]), DA_OK);
        }
        double big = 0;
        for (long i = 0; i < 7L * net->n_bits; i++)
            big = fmax(big, fabs(g[0][i]));
        ck_assert_double_gt(big, 1e-4);
        ck_assert_mem_eq(g[0], g[1], 7 * net->n_bits * sizeof(double));
        free(g[0]);
        free(g[1]);
        free_data(&d);
        da_logicnet_adam_free(opt);
        da_logicnet_free(net);
    }
}
END_TEST

START_TEST(test_errors)
{
    da_logicnet *net = make_net(0, DA_F32);
    da_optim_cfg ok = da_adam_cfg(0.01), bad;
    ck_assert_ptr_null(da_logicnet_adam_new(NULL, &ok));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_logicnet_adam_new(net, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    bad = da_sgd_cfg(0.1, 0.9);
    ck_assert_ptr_null(da_logicnet_adam_new(net, &bad));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    bad = ok, bad.amsgrad = 1;
    ck_assert_ptr_null(da_logicnet_adam_new(net, &bad));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    bad = ok, bad.lr = -1;
    ck_assert_ptr_null(da_logicnet_adam_new(net, &bad));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    bad = ok, bad.beta2 = 1;
    ck_assert_ptr_null(da_logicnet_adam_new(net, &bad));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    bad = ok, bad.eps = NAN;
    ck_assert_ptr_null(da_logicnet_adam_new(net, &bad));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);

    da_logicnet_adam *opt = da_logicnet_adam_new(net, &ok);
    ck_assert_ptr_nonnull(opt);
    data d = make_data(net, 4, 3);
    double loss;
    ck_assert_int_eq(da_logicnet_adam_step(NULL, d.glogits, NULL), DA_EINVAL);
    ck_assert_int_eq(da_logicnet_adam_step(opt, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_logicnet_adam_step(opt, d.glogits, NULL), DA_ESTATE); /* no forward */
    ck_assert_int_eq(da_logicnet_forward(net, 4, d.bits, 1, d.logits), DA_OK);
    ck_assert_int_eq(da_logicnet_adam_step(opt, d.glogits, NULL), DA_ESTATE); /* hard */
    ck_assert_int_eq(da_logicnet_forward(net, 4, d.bits, 0, d.logits), DA_OK);
    ck_assert_int_eq(da_logicnet_cross_entropy(4, 3, d.logits, d.labels, &loss, d.glogits), 0);
    double **before = copy_params(net);
    d.glogits[5] = NAN;
    ck_assert_int_eq(da_logicnet_adam_step(opt, d.glogits, NULL), DA_ENAN);
    for (int l = 0; l < net->n_layers; l++) /* nothing updated */
        ck_assert_mem_eq(before[l], net->w[l]->data, (size_t)net->w[l]->size * sizeof(double));
    ck_assert_int_eq(da_logicnet_adam_steps(opt), 0);
    d.glogits[5] = 0;
    ck_assert_int_eq(da_logicnet_adam_step(opt, d.glogits, NULL), DA_OK);
    ck_assert_int_eq(da_logicnet_adam_step(opt, d.glogits, NULL), DA_ESTATE); /* used up */

    ck_assert_int_eq(da_logicnet_adam_set_lr(NULL, 0.1), DA_EINVAL);
    ck_assert_int_eq(da_logicnet_adam_set_lr(opt, -0.1), DA_ERANGE);
    ck_assert_int_eq(da_logicnet_adam_set_lr(opt, INFINITY), DA_ERANGE);
    ck_assert_int_eq(da_logicnet_adam_set_lr(opt, 0.2), DA_OK);
    ck_assert_int_eq(da_logicnet_adam_steps(NULL), 0);

    size_t n = da_logicnet_adam_state_size(opt);
    ck_assert_uint_gt(n, 2 * 3 * 30 * 16 * sizeof(float));
    ck_assert_uint_eq(da_logicnet_adam_state_size(NULL), 0);
    unsigned char *st = malloc(n + 1);
    ck_assert_int_eq(da_logicnet_adam_state_save(NULL, st, n), DA_EINVAL);
    ck_assert_int_eq(da_logicnet_adam_state_save(opt, NULL, n), DA_EINVAL);
    ck_assert_int_eq(da_logicnet_adam_state_save(opt, st, n - 1), DA_ERANGE);
    ck_assert_int_eq(da_logicnet_adam_state_save(opt, st, n), DA_OK);
    ck_assert_int_eq(da_logicnet_adam_state_load(NULL, st, n), DA_EINVAL);
    ck_assert_int_eq(da_logicnet_adam_state_load(opt, NULL, n), DA_EINVAL);
    ck_assert_int_eq(da_logicnet_adam_state_load(opt, st, n + 1), DA_EFORMAT);
    st[0] ^= 1; /* the magic */
    ck_assert_int_eq(da_logicnet_adam_state_load(opt, st, n), DA_EFORMAT);
    st[0] ^= 1;
    ck_assert_int_eq(da_logicnet_adam_state_load(opt, st, n), DA_OK);
    da_logicnet *wide = make_net(0, DA_F64); /* double state: another size */
    da_logicnet_adam *opt64 = da_logicnet_adam_new(wide, &ok);
    ck_assert_int_eq(da_logicnet_adam_state_load(opt64, st, n), DA_EFORMAT);
    free(st);
    free_params(before, net->n_params);
    free_data(&d);
    da_logicnet_adam_free(opt);
    da_logicnet_adam_free(opt64);
    da_logicnet_adam_free(NULL);
    da_logicnet_free(net);
    da_logicnet_free(wide);
}
END_TEST

/* the k-th allocation of da_logicnet_adam_new and of a step fails, for every k: a clean
 * DA_ENOMEM (ASan checks that nothing leaks) */
START_TEST(test_allocation_failures)
{
    for (int conv = 0; conv < 2; conv++) {
        da_logicnet *net = make_net(conv, DA_F32);
        da_optim_cfg cfg = da_adam_cfg(0.01);
        data d = make_data(net, 5, 2);
        double loss;
        int done = 0, failures = 0;
        for (long k = 0; !done && k < 100; k++) {
            ck_assert_int_eq(da_logicnet_forward(net, 5, d.bits, 0, d.logits), DA_OK);
            ck_assert_int_eq(da_logicnet_cross_entropy(5, net->n_classes, d.logits, d.labels,
                                                       &loss, d.glogits), DA_OK);
            da_alloc_fail_after(k);
            da_logicnet_adam *opt = da_logicnet_adam_new(net, &cfg);
            int rc = opt ? da_logicnet_adam_step(opt, d.glogits, NULL) : da_last_error_code();
            da_alloc_fail_after(-1);
            if (rc == DA_OK) {
                done = 1;
            } else {
                ck_assert_int_eq(rc, DA_ENOMEM);
                failures++;
            }
            da_logicnet_adam_free(opt);
        }
        ck_assert(done);
        ck_assert_int_ge(failures, conv ? 8 : 4);
        free_data(&d);
        da_logicnet_free(net);
    }
}
END_TEST

int main(void)
{
    omp_set_num_threads(2);
    Suite *s = suite_create("logicnet_adam");
    TCase *tc = tcase_create("logicnet_adam");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_double_matches_generic);
    tcase_add_test(tc, test_float_close_to_generic);
    tcase_add_test(tc, test_resume_bit_exact);
    tcase_add_test(tc, test_gbits);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_allocation_failures);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
