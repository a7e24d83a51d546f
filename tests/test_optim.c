/* test_optim.c - SGD, Adam, AdamW, clip_grad_norm and the lr schedules against the
 * published update equations, written out here in double (not by calling the
 * library); state save/load; error paths. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "suite_run.h"

#define N 6
#define STEPS 7

/* the gradient fed to the optimizer at step t for parameter values p: the gradient of
 * sum_i a_i (p_i - c_i)^2 plus a step-dependent drift, so that momentum and the
 * second-moment estimates see changing gradients of both signs */
static const double A[N] = {0.5, 2.0, 1.0, 3.0, 0.25, 1.5};
static const double C[N] = {1.0, -0.5, 0.3, 0.0, 2.0, -1.2};
static const double P0[N] = {0.2, 0.7, -1.1, 0.4, -0.3, 0.9};

static double grad_at(int i, double p, int t) { return 2 * A[i] * (p - C[i]) + 0.1 * cos(t + i); }

static void set_grad(da_tensor *p, int t)
{
    ck_assert_ptr_nonnull(da_tensor_grad(p));
    for (int i = 0; i < N; i++) {
        double g = grad_at(i, da_get(p, i), t);
        if (p->dtype == DA_F32)
            ((float *)p->grad)[i] = (float)g;
        else
            ((double *)p->grad)[i] = g;
    }
}

static da_tensor *param(da_dtype dt)
{
    int shape[1] = {N};
    da_tensor *p = da_tensor_new(dt, 1, shape);
    ck_assert_ptr_nonnull(p);
    da_tensor_fill_from(p, P0);
    return p;
}

/* run STEPS steps of the library optimizer on a fresh parameter; return it */
static da_tensor *run_lib(const da_optim_cfg *cfg, da_dtype dt, int steps)
{
    da_tensor *p = param(dt);
    da_optim *o = da_optim_new(&p, 1, cfg);
    ck_assert_msg(o != NULL, "%s", da_last_error());
    for (int t = 1; t <= steps; t++) {
        set_grad(p, t);
        ck_assert_int_eq(da_optim_step(o), DA_OK);
    }
    ck_assert_int_eq(da_optim_steps(o), steps);
    da_optim_free(o);
    return p;
}

/* ---- the reference equations in double ---- */

/* SGD with momentum (Sutskever et al. 2013, PyTorch form): v_1 = g_1,
 * v_t = mu v_{t-1} + (1 - dampening) g_t; Nesterov uses g_t + mu v_t */
static void ref_sgd(double lr, double mu, double damp, double wd, int nesterov, double *p)
{
    double v[N] = {0};
    for (int t = 1; t <= STEPS; t++)
        for (int i = 0; i < N; i++) {
            double g = grad_at(i, p[i], t) + wd * p[i];
            if (mu != 0) {
                v[i] = t == 1 ? g : mu * v[i] + (1 - damp) * g;
                g = nesterov ? g + mu * v[i] : v[i];
            }
            p[i] = p[i] - lr * g;
        }
}

/* Adam (Kingma & Ba 2015, Alg. 1, eps outside the root) with L2 (adamw = 0) or
 * decoupled weight decay (adamw = 1, Loshchilov & Hutter 2019); amsgrad keeps the max */
static void ref_adam(double lr, double b1, double b2, double eps, double wd, int adamw,
                     int amsgrad, int steps, int first_t, double *p)
{
    double m[N] = {0}, v[N] = {0}, vmax[N] = {0};
    for (int k = 0; k < steps; k++) {
        int t = first_t + k;   /* gradient index */
        int tt = k + 1;        /* the parameter's own step count */
        for (int i = 0; i < N; i++) {
            double g = grad_at(i, p[i], t);
            if (adamw)
                p[i] = p[i] - lr * wd * p[i];
            else
                g = g + wd * p[i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            vmax[i] = fmax(vmax[i], v[i]);
            double mhat = m[i] / (1 - pow(b1, tt));
            double vhat = (amsgrad ? vmax[i] : v[i]) / (1 - pow(b2, tt));
            p[i] = p[i] - lr * mhat / (sqrt(vhat) + eps);
        }
    }
}

static double max_rel(const da_tensor *p, const double *ref)
{
    double num = 0, den = 0;
    for (int i = 0; i < N; i++) {
        num = fmax(num, fabs(da_get(p, i) - ref[i]));
        den = fmax(den, fabs(ref[i]));
    }
    return num / den;
}

START_TEST(test_sgd_variants)
{
    struct { double lr, mu, damp, wd; int nesterov; } cases[] = {
        {0.1, 0.0, 0.0, 0.0, 0},   {0.05, 0.9, 0.0, 0.0, 0}, {0.05, 0.9, 0.3, 0.01, 0},
        {0.05, 0.8, 0.0, 0.02, 1}, {0.2, 0.0, 0.0, 0.1, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        da_optim_cfg cfg = da_sgd_cfg(cases[c].lr, cases[c].mu);
        cfg.dampening = cases[c].damp;
        cfg.weight_decay = cases[c].wd;
        cfg.nesterov = cases[c].nesterov;
        double ref[N];
        memcpy(ref, P0, sizeof ref);
        ref_sgd(cases[c].lr, cases[c].mu, cases[c].damp, cases[c].wd, cases[c].nesterov, ref);
        da_tensor *p64 = run_lib(&cfg, DA_F64, STEPS), *p32 = run_lib(&cfg, DA_F32, STEPS);
        ck_assert_msg(max_rel(p64, ref) < 1e-13, "case %zu: %g", c, max_rel(p64, ref));
        ck_assert_msg(max_rel(p32, ref) < 1e-5, "case %zu f32: %g", c, max_rel(p32, ref));
        /* the parameters moved: a no-op optimizer would fail above, but be explicit */
        ck_assert_double_gt(fabs(da_get(p64, 0) - P0[0]), 1e-3);
        da_tensor_free(p64);
        da_tensor_free(p32);
    }
}
END_TEST

START_TEST(test_adam_variants)
{
    struct { da_optim_kind kind; double lr, b1, b2, eps, wd; int amsgrad; } cases[] = {
        {DA_OPTIM_ADAM, 0.01, 0.9, 0.999, 1e-8, 0.0, 0},
        {DA_OPTIM_ADAM, 0.05, 0.8, 0.99, 1e-3, 0.1, 0},
        {DA_OPTIM_ADAM, 0.05, 0.9, 0.95, 1e-6, 0.0, 1},
        {DA_OPTIM_ADAMW, 0.05, 0.9, 0.999, 1e-8, 0.1, 0},
        {DA_OPTIM_ADAMW, 0.02, 0.5, 0.9, 1e-2, 0.5, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        da_optim_cfg cfg = da_adam_cfg(cases[c].lr);
        cfg.kind = cases[c].kind;
        cfg.beta1 = cases[c].b1;
        cfg.beta2 = cases[c].b2;
        cfg.eps = cases[c].eps;
        cfg.weight_decay = cases[c].wd;
        cfg.amsgrad = cases[c].amsgrad;
        double ref[N];
        memcpy(ref, P0, sizeof ref);
        ref_adam(cases[c].lr, cases[c].b1, cases[c].b2, cases[c].eps, cases[c].wd,
                 cases[c].kind == DA_OPTIM_ADAMW, cases[c].amsgrad, STEPS, 1, ref);
        da_tensor *p64 = run_lib(&cfg, DA_F64, STEPS), *p32 = run_lib(&cfg, DA_F32, STEPS);
        ck_assert_msg(max_rel(p64, ref) < 1e-13, "case %zu: %g", c, max_rel(p64, ref));
        ck_assert_msg(max_rel(p32, ref) < 1e-5, "case %zu f32: %g", c, max_rel(p32, ref));
        da_tensor_free(p64);
        da_tensor_free(p32);
    }
}
END_TEST

/* the first Adam step moves every coordinate by lr (times sign(g)) when eps is tiny:
 * m^/sqrt(v^) = g/|g|, an independent closed form */
START_TEST(test_adam_first_step_closed_form)
{
    da_optim_cfg cfg = da_adam_cfg(0.01);
    cfg.eps = 0;
    da_tensor *p = run_lib(&cfg, DA_F64, 1);
    for (int i = 0; i < N; i++) {
        double g = grad_at(i, P0[i], 1);
        ck_assert_double_eq_tol(da_get(p, i), P0[i] - 0.01 * (g > 0 ? 1 : -1), 1e-15);
    }
    da_tensor_free(p);
}
END_TEST

/* a parameter without grad is skipped and keeps its step count (bias correction) */
START_TEST(test_skip_without_grad)
{
    da_tensor *a = param(DA_F64), *b = param(DA_F64);
    da_tensor *ps[2] = {a, b};
    da_optim_cfg cfg = da_adam_cfg(0.03);
    da_optim *o = da_optim_new(ps, 2, &cfg);
    ck_assert_ptr_nonnull(o);
    for (int t = 1; t <= 5; t++) {
        set_grad(a, t);
        if (t >= 3)
            set_grad(b, t);
        ck_assert_int_eq(da_optim_step(o), DA_OK);
        if (t == 2)
            for (int i = 0; i < N; i++) /* untouched until it has a grad */
                ck_assert_double_eq(da_get(b, i), P0[i]);
    }
    double ra[N], rb[N];
    memcpy(ra, P0, sizeof ra);
    memcpy(rb, P0, sizeof rb);
    ref_adam(0.03, 0.9, 0.999, 1e-8, 0, 0, 0, 5, 1, ra);
    ref_adam(0.03, 0.9, 0.999, 1e-8, 0, 0, 0, 3, 3, rb); /* own steps 1..3, grads 3..5 */
    ck_assert_double_lt(max_rel(a, ra), 1e-13);
    ck_assert_double_lt(max_rel(b, rb), 1e-13);
    da_optim_zero_grad(o);
    ck_assert_double_eq(da_get_grad(a, 2), 0.0);
    da_optim_free(o);
    da_tensor_free(a);
    da_tensor_free(b);
}
END_TEST

/* save after k steps, continue; a second optimizer loaded from the state continues
 * bit-exactly */
START_TEST(test_state_roundtrip)
{
    da_optim_cfg cfgs[3] = {da_sgd_cfg(0.05, 0.9), da_adam_cfg(0.01), da_adamw_cfg(0.01)};
    cfgs[2].amsgrad = 1;
    for (int c = 0; c < 3; c++) {
        da_tensor *p = param(DA_F32), *q = param(DA_F32);
        da_optim *o = da_optim_new(&p, 1, &cfgs[c]), *o2 = da_optim_new(&q, 1, &cfgs[c]);
        ck_assert_ptr_nonnull(o);
        ck_assert_ptr_nonnull(o2);
        for (int t = 1; t <= 3; t++) {
            set_grad(p, t);
            da_optim_step(o);
        }
        size_t size = da_optim_state_size(o);
        unsigned char *buf = malloc(size);
        ck_assert_int_eq(da_optim_state_save(o, buf, size), DA_OK);
        ck_assert_int_eq(da_optim_state_load(o2, buf, size), DA_OK);
        ck_assert_int_eq(da_optim_steps(o2), 3);
        memcpy(q->data, p->data, N * sizeof(float));
        for (int t = 4; t <= 6; t++) {
            set_grad(p, t);
            set_grad(q, t);
            da_optim_step(o);
            da_optim_step(o2);
        }
        ck_assert_int_eq(memcmp(p->data, q->data, N * sizeof(float)), 0);
        /* wrong size, wrong magic, another optimizer kind */
        ck_assert_int_eq(da_optim_state_load(o2, buf, size - 1), DA_EFORMAT);
        buf[0] ^= 1;
        ck_assert_int_eq(da_optim_state_load(o2, buf, size), DA_EFORMAT);
        buf[0] ^= 1;
        da_optim *other = da_optim_new(&q, 1, &cfgs[(c + 1) % 3]);
        ck_assert_int_eq(da_optim_state_load(other, buf, size), DA_EFORMAT);
        ck_assert_int_eq(da_optim_state_save(o, buf, size + 1), DA_ERANGE);
        da_optim_free(other);
        free(buf);
        da_optim_free(o);
        da_optim_free(o2);
        da_tensor_free(p);
        da_tensor_free(q);
    }
}
END_TEST

START_TEST(test_clip_grad_norm)
{
    int s2[1] = {2}, s1[1] = {1};
    da_tensor *a = da_tensor_new(DA_F64, 1, s2), *b = da_tensor_new(DA_F32, 1, s1);
    da_tensor *c = da_tensor_new(DA_F64, 1, s1); /* no grad: ignored */
    da_tensor *ps[3] = {a, b, c};
    double *ga = da_tensor_grad(a);
    float *gb = da_tensor_grad(b);
    ga[0] = 3, ga[1] = -4, gb[0] = 12; /* 2-norm 13, 1-norm 19, inf-norm 12 */
    double total;
    ck_assert_int_eq(da_clip_grad_norm(ps, 3, 100, 2, &total), DA_OK);
    ck_assert_double_eq_tol(total, 13, 1e-12);
    ck_assert_double_eq(ga[0], 3); /* below the threshold: unchanged */
    ck_assert_int_eq(da_clip_grad_norm(ps, 3, 6.5, 2, &total), DA_OK);
    double k = 6.5 / (13 + 1e-6);
    ck_assert_double_eq_tol(ga[0], 3 * k, 1e-15);
    ck_assert_double_eq_tol(ga[1], -4 * k, 1e-15);
    ck_assert_double_eq_tol(gb[0], 12 * k, 1e-6);
    ga[0] = 3, ga[1] = -4, gb[0] = 12;
    ck_assert_int_eq(da_clip_grad_norm(ps, 3, 1, 1, &total), DA_OK);
    ck_assert_double_eq_tol(total, 19, 1e-12);
    ck_assert_double_eq_tol(ga[1], -4 / (19 + 1e-6), 1e-15);
    ga[0] = 3, ga[1] = -4, gb[0] = 12;
    ck_assert_int_eq(da_clip_grad_norm(ps, 3, 2, INFINITY, &total), DA_OK);
    ck_assert_double_eq_tol(total, 12, 1e-12);
    ck_assert_double_eq_tol(ga[0], 3 * 2 / (12 + 1e-6), 1e-15);
    /* non-finite: error, grads untouched */
    ga[0] = NAN;
    ga[1] = 5;
    ck_assert_int_eq(da_clip_grad_norm(ps, 3, 1, 2, &total), DA_ENAN);
    ck_assert_double_eq(ga[1], 5);
    ck_assert_int_eq(da_clip_grad_norm(ps, 3, -1, 2, NULL), DA_ERANGE);
    ck_assert_int_eq(da_clip_grad_norm(ps, 3, 1, 0, NULL), DA_ERANGE);
    ck_assert_int_eq(da_clip_grad_norm(NULL, 3, 1, 2, NULL), DA_EINVAL);
    da_tensor_free(a);
    da_tensor_free(b);
    da_tensor_free(c);
}
END_TEST

START_TEST(test_schedules)
{
    double lr;
    /* warmup 10, total 110: linear ramp then half a cosine from 1.0 to 0.1 */
    ck_assert_int_eq(da_lr_cosine(1.0, 0.1, 10, 110, 0, &lr), DA_OK);
    ck_assert_double_eq_tol(lr, 0.1, 1e-15);
    da_lr_cosine(1.0, 0.1, 10, 110, 4, &lr);
    ck_assert_double_eq_tol(lr, 0.5, 1e-15);
    da_lr_cosine(1.0, 0.1, 10, 110, 9, &lr);
    ck_assert_double_eq_tol(lr, 1.0, 1e-15);
    da_lr_cosine(1.0, 0.1, 10, 110, 10, &lr);
    ck_assert_double_eq_tol(lr, 1.0, 1e-15);
    da_lr_cosine(1.0, 0.1, 10, 110, 60, &lr); /* half way: the mean */
    ck_assert_double_eq_tol(lr, 0.55, 1e-15);
    da_lr_cosine(1.0, 0.1, 10, 110, 35, &lr); /* a quarter: cos(pi/4) */
    ck_assert_double_eq_tol(lr, 0.1 + 0.9 * 0.5 * (1 + sqrt(0.5)), 1e-15);
    da_lr_cosine(1.0, 0.1, 10, 110, 110, &lr);
    ck_assert_double_eq(lr, 0.1);
    da_lr_cosine(1.0, 0.1, 10, 110, 5000, &lr);
    ck_assert_double_eq(lr, 0.1);
    /* no warmup: CosineAnnealingLR, T_max 4, eta_min 0: 1, .8536, .5, .1464, 0 */
    da_lr_cosine(1.0, 0.0, 0, 4, 1, &lr);
    ck_assert_double_eq_tol(lr, (1 + sqrt(0.5)) / 2, 1e-15);
    da_lr_cosine(1.0, 0.0, 0, 4, 3, &lr);
    ck_assert_double_eq_tol(lr, (1 - sqrt(0.5)) / 2, 1e-15);
    /* StepLR(step_size 3, gamma 0.5) */
    double expect[8] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025};
    for (int s = 0; s < 8; s++) {
        ck_assert_int_eq(da_lr_step(0.1, 0.5, 3, s, &lr), DA_OK);
        ck_assert_double_eq_tol(lr, expect[s], 1e-17);
    }
    /* errors */
    ck_assert_int_eq(da_lr_cosine(1.0, 2.0, 0, 10, 0, &lr), DA_ERANGE);
    ck_assert_int_eq(da_lr_cosine(1.0, 0.0, 10, 10, 0, &lr), DA_ERANGE);
    ck_assert_int_eq(da_lr_cosine(1.0, 0.0, 0, 10, -1, &lr), DA_ERANGE);
    ck_assert_int_eq(da_lr_cosine(NAN, 0.0, 0, 10, 0, &lr), DA_ERANGE);
    ck_assert_int_eq(da_lr_cosine(1.0, 0.0, 0, 10, 0, NULL), DA_EINVAL);
    ck_assert_int_eq(da_lr_step(0.1, 0.5, 0, 1, &lr), DA_ERANGE);
    ck_assert_int_eq(da_lr_step(0.1, -0.5, 1, 1, &lr), DA_ERANGE);
    ck_assert_int_eq(da_lr_step(0.1, 0.5, 1, 1, NULL), DA_EINVAL);
}
END_TEST

START_TEST(test_errors)
{
    da_tensor *p = param(DA_F64);
    da_tensor *two[2] = {p, p};
    da_optim_cfg cfg = da_sgd_cfg(0.1, 0.9);
    ck_assert_ptr_null(da_optim_new(NULL, 1, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_optim_new(&p, 1, NULL));
    ck_assert_ptr_null(da_optim_new(two, 2, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    cfg.lr = -1;
    ck_assert_ptr_null(da_optim_new(&p, 1, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    cfg = da_sgd_cfg(0.1, 0.0);
    cfg.nesterov = 1;
    ck_assert_ptr_null(da_optim_new(&p, 1, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert(strstr(da_last_error(), "Nesterov") != NULL);
    cfg = da_adam_cfg(0.1);
    cfg.beta1 = 1.0;
    ck_assert_ptr_null(da_optim_new(&p, 1, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    cfg = da_adam_cfg(0.1);
    cfg.eps = NAN;
    ck_assert_ptr_null(da_optim_new(&p, 1, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    cfg.eps = 1e-8;
    cfg.kind = (da_optim_kind)9;
    ck_assert_ptr_null(da_optim_new(&p, 1, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    /* a NaN gradient: DA_ENAN and no parameter changes */
    cfg = da_adam_cfg(0.1);
    da_tensor *q = param(DA_F32);
    da_tensor *ps[2] = {p, q};
    da_optim *o = da_optim_new(ps, 2, &cfg);
    ck_assert_ptr_nonnull(o);
    set_grad(p, 1);
    set_grad(q, 1);
    ((float *)q->grad)[3] = INFINITY;
    ck_assert_int_eq(da_optim_step(o), DA_ENAN);
    for (int i = 0; i < N; i++)
        ck_assert_double_eq(da_get(p, i), P0[i]);
    ck_assert_int_eq(da_optim_steps(o), 0);
    ck_assert_int_eq(da_optim_set_lr(o, -0.1), DA_ERANGE);
    ck_assert_int_eq(da_optim_set_lr(o, 0.25), DA_OK);
    ck_assert_double_eq(da_optim_get_lr(o), 0.25);
    ck_assert_int_eq(da_optim_step(NULL), DA_EINVAL);
    da_optim_free(o);
    da_optim_free(NULL);
    da_tensor_free(p);
    da_tensor_free(q);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sgd_variants);
    tcase_add_test(tc, test_adam_variants);
    tcase_add_test(tc, test_adam_first_step_closed_form);
    tcase_add_test(tc, test_skip_without_grad);
    tcase_add_test(tc, test_state_roundtrip);
    tcase_add_test(tc, test_clip_grad_norm);
    tcase_add_test(tc, test_schedules);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
