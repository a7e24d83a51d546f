/* test_sortnet.c - differentiable sorting networks (losses/sortnet.h): every `sortnet`
 * reference file (P, sorted, loss, exact gradient, exact Hessian), finite differences
 * of the gradient, both VJPs, the HVP and the Hessian, the tensor faces (gc_check,
 * F32 against F64, da_hessian's exact path), ties and the error paths. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "refs.h"
#include "suite_run.h"

static const char *const SIGMOID_NAMES[] = {"logistic", "logistic_phi", "gaussian",
                                            "reciprocal", "cauchy", "optimal"};

static da_sigmoid sigmoid_of(const char *name)
{
    for (int i = 0; i < 6; i++)
        if (!strcmp(name, SIGMOID_NAMES[i]))
            return (da_sigmoid)i;
    ck_abort_msg("unknown distribution %s", name);
    return DA_SIGMOID_CAUCHY;
}

static da_sortnet_kind kind_of(const char *name)
{
    ck_assert_msg(!strcmp(name, "odd_even") || !strcmp(name, "bitonic"), "network %s", name);
    return !strcmp(name, "bitonic") ? DA_SORTNET_BITONIC : DA_SORTNET_ODD_EVEN;
}

static const ref_tensor *need(const ref_file *r, const char *name)
{
    const ref_tensor *t = ref_get(r, name);
    ck_assert_msg(t != NULL, "%s: no tensor %s", r->path, name);
    return t;
}

START_TEST(test_refs)
{
    char **paths;
    int count = ref_list("sortnet", &paths), with_hessian = 0;
    ck_assert_int_gt(count, 0);
    for (int f = 0; f < count; f++) {
        const char *err;
        ref_file *r = ref_load(paths[f], &err);
        ck_assert_msg(r != NULL, "%s", err);
        int n = (int)ref_param_num(r, "n", 0), batch = (int)ref_param_num(r, "batch", 0);
        da_sortnet *net = da_sortnet_new(kind_of(ref_param(r, "network")), n,
                                         sigmoid_of(ref_param(r, "distribution")),
                                         ref_param_num(r, "steepness", 0),
                                         ref_param_num(r, "art_lambda", 0));
        ck_assert_msg(net != NULL, "%s: %s", r->path, da_last_error());
        const double *x = need(r, "x")->data, *targets = need(r, "targets")->data;
        double *sorted = malloc(sizeof(double) * batch * n);
        double *P = malloc(sizeof(double) * batch * n * n);
        double *g = malloc(sizeof(double) * batch * n), *H = malloc(sizeof(double) * batch * n * n);
        double loss;
        ck_assert_int_eq(da_sortnet_apply(net, batch, x, sorted, P), DA_OK);
        double e_sorted = ref_err(sorted, need(r, "sorted")->data, (long)batch * n);
        double e_P = ref_err(P, need(r, "P")->data, (long)batch * n * n);
        ck_assert_msg(e_sorted < 1e-9 && e_P < 1e-9, "%s: sorted %g P %g", r->path, e_sorted, e_P);
        ck_assert_int_eq(da_sortnet_loss(net, batch, x, targets, &loss, g), DA_OK);
        double e_loss = ref_err(&loss, need(r, "loss")->data, 1);
        double e_g = ref_err(g, need(r, "grad_x_exact")->data, (long)batch * n);
        ck_assert_msg(e_loss < 1e-6 && e_g < 1e-6, "%s: loss %g grad %g", r->path, e_loss, e_g);
        if (ref_param_num(r, "saturated", 1) == 0) /* torch's BCE backward agrees here */
            ck_assert_msg(ref_err(g, need(r, "grad_x")->data, (long)batch * n) < 1e-6, "%s",
                          r->path);
        const ref_tensor *he = ref_get(r, "hessian_exact");
        if (he) {
            with_hessian++;
            ck_assert_int_eq(da_sortnet_loss_hessian(net, batch, x, targets, H), DA_OK);
            double e_H = ref_err(H, he->data, he->size);
            ck_assert_msg(e_H < 1e-6, "%s: hessian %g", r->path, e_H);
        }
        free(sorted);
        free(P);
        free(g);
        free(H);
        da_sortnet_free(net);
        ref_free(r);
    }
    ck_assert_int_gt(with_hessian, 0);
    ref_list_free(paths, count);
}
END_TEST

/* ---- finite differences on the plain-array faces (double, central) ---- */

typedef struct {
    const da_sortnet *net;
    int batch;
    const double *targets;
    const double *cot_sorted, *cot_P; /* for the operator */
} fd_ctx;

/* the scalar whose gradient is checked: the loss, or <cot, (sorted, P)> */
static double scalar_of(const fd_ctx *c, const double *x)
{
    int n = da_sortnet_size(c->net), B = c->batch;
    if (c->targets) {
        double loss;
        ck_assert_int_eq(da_sortnet_loss(c->net, B, x, c->targets, &loss, NULL), DA_OK);
        return loss;
    }
    double *s = malloc(sizeof(double) * B * n), *P = malloc(sizeof(double) * B * n * n), v = 0;
    ck_assert_int_eq(da_sortnet_apply(c->net, B, x, s, P), DA_OK);
    for (long i = 0; c->cot_sorted && i < (long)B * n; i++)
        v += c->cot_sorted[i] * s[i];
    for (long i = 0; c->cot_P && i < (long)B * n * n; i++)
        v += c->cot_P[i] * P[i];
    free(s);
    free(P);
    return v;
}

/* symmetric relative error of g against central differences of scalar_of */
static double fd_error(const fd_ctx *c, const double *x0, const double *g)
{
    long m = (long)c->batch * da_sortnet_size(c->net);
    double *x = malloc(sizeof(double) * m), num = 0, den = 1e-300, h = 1e-6;
    memcpy(x, x0, sizeof(double) * m);
    for (long i = 0; i < m; i++) {
        x[i] = x0[i] + h;
        double fp = scalar_of(c, x);
        x[i] = x0[i] - h;
        double fm = scalar_of(c, x);
        x[i] = x0[i];
        double fd = (fp - fm) / (2 * h);
        num = fmax(num, fabs(fd - g[i]));
        den = fmax(den, fmax(fabs(fd), fabs(g[i])));
    }
    free(x);
    return num / den;
}

/* every network kind and sigmoid, small steepness (away from saturation) */
#define N_CASES 12
static da_sortnet *case_net(int k, int n)
{
    return da_sortnet_new(k % 2 ? DA_SORTNET_BITONIC : DA_SORTNET_ODD_EVEN, n,
                          (da_sigmoid)(k / 2), 2.0, 0.25);
}

START_TEST(test_fd_loss_gradient)
{
    int B = 2;
    for (int k = 0; k < N_CASES; k++)
        for (int n = 3; n <= 6; n += 3) {
            da_sortnet *net = case_net(k, n);
            double x[12], t[12], g[12], loss;
            gc_random(x, B * n, 100 + k, -1, 1);
            gc_random(t, B * n, 200 + k, -1, 1);
            ck_assert_int_eq(da_sortnet_loss(net, B, x, t, &loss, g), DA_OK);
            fd_ctx c = {net, B, t, NULL, NULL};
            double e = fd_error(&c, x, g);
            ck_assert_msg(e < 1e-6, "case %d n %d: gradient fd error %g", k, n, e);
            da_sortnet_free(net);
        }
}
END_TEST

START_TEST(test_fd_vjp)
{
    int B = 2, n = 5;
    double x[10], cs[10], cP[50], g[10];
    gc_random(cs, B * n, 7, -1, 1);
    gc_random(cP, B * n * n, 8, -1, 1);
    for (int k = 0; k < N_CASES; k++) {
        da_sortnet *net = case_net(k, n);
        gc_random(x, B * n, 300 + k, -1, 1);
        for (int which = 0; which < 3; which++) {
            const double *a = which != 1 ? cs : NULL, *b = which != 0 ? cP : NULL;
            ck_assert_int_eq(da_sortnet_vjp(net, B, x, a, b, g), DA_OK);
            fd_ctx c = {net, B, NULL, a, b};
            double e = fd_error(&c, x, g);
            ck_assert_msg(e < 1e-6, "case %d cot %d: vjp fd error %g", k, which, e);
        }
        da_sortnet_free(net);
    }
}
END_TEST

START_TEST(test_fd_hessian_and_hvp)
{
    int B = 2, n = 6;
    for (int k = 0; k < N_CASES; k++) {
        da_sortnet *net = case_net(k, n);
        double x[12], t[12], v[12], hv[12], H[72], gp[12], gm[12], xx[12], loss;
        gc_random(x, B * n, 400 + k, -1, 1);
        gc_random(t, B * n, 500 + k, -1, 1);
        gc_random(v, B * n, 600 + k, -1, 1);
        ck_assert_int_eq(da_sortnet_loss_hessian(net, B, x, t, H), DA_OK);
        double num = 0, den = 1e-300, h = 1e-6, asym = 0;
        for (int j = 0; j < B * n; j++) { /* column j of the block-diagonal Hessian */
            memcpy(xx, x, sizeof xx);
            xx[j] += h;
            ck_assert_int_eq(da_sortnet_loss(net, B, xx, t, &loss, gp), DA_OK);
            xx[j] -= 2 * h;
            ck_assert_int_eq(da_sortnet_loss(net, B, xx, t, &loss, gm), DA_OK);
            int b = j / n, jj = j % n;
            for (int i = 0; i < B * n; i++) {
                double fd = (gp[i] - gm[i]) / (2 * h);
                double an = i / n == b ? H[(b * n + i % n) * n + jj] : 0.0;
                num = fmax(num, fabs(fd - an));
                den = fmax(den, fmax(fabs(fd), fabs(an)));
                if (i / n == b)
                    asym = fmax(asym, fabs(an - H[(b * n + jj) * n + i % n]));
            }
        }
        ck_assert_msg(num / den < 1e-6, "case %d: hessian fd error %g", k, num / den);
        ck_assert_msg(asym <= 1e-12 * den, "case %d: hessian not symmetric", k);
        ck_assert_int_eq(da_sortnet_loss_hvp(net, B, x, t, v, hv), DA_OK);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < n; i++) {
                double s = 0;
                for (int j = 0; j < n; j++)
                    s += H[(b * n + i) * n + j] * v[b * n + j];
                ck_assert_double_eq_tol(hv[b * n + i], s, 1e-12 * den);
            }
        da_sortnet_free(net);
    }
}
END_TEST

/* large non-power-of-two network: the row blocks of the reverse pass are smaller than
 * n here; check the gradient and the HVP along random directions */
START_TEST(test_large_blocked)
{
    int n = 300;
    da_sortnet *net = da_sortnet_new(DA_SORTNET_BITONIC, n, DA_SIGMOID_CAUCHY, 3.0, 0.25);
    ck_assert_ptr_nonnull(net);
    double *x = malloc(sizeof(double) * n), *t = malloc(sizeof(double) * n);
    double *g = malloc(sizeof(double) * n), *gp = malloc(sizeof(double) * n);
    double *gm = malloc(sizeof(double) * n), *v = malloc(sizeof(double) * n);
    double *hv = malloc(sizeof(double) * n), *xx = malloc(sizeof(double) * n), loss, lp, lm;
    gc_random(x, n, 11, -2, 2);
    gc_random(t, n, 12, -2, 2);
    gc_random(v, n, 13, -1, 1);
    ck_assert_int_eq(da_sortnet_loss(net, 1, x, t, &loss, g), DA_OK);
    double h = 1e-5, num = 0, den = 1e-300;
    /* directional derivative of the loss and of the gradient along v */
    for (int i = 0; i < n; i++)
        xx[i] = x[i] + h * v[i];
    ck_assert_int_eq(da_sortnet_loss(net, 1, xx, t, &lp, gp), DA_OK);
    for (int i = 0; i < n; i++)
        xx[i] = x[i] - h * v[i];
    ck_assert_int_eq(da_sortnet_loss(net, 1, xx, t, &lm, gm), DA_OK);
    double dir = 0;
    for (int i = 0; i < n; i++)
        dir += g[i] * v[i];
    ck_assert_double_eq_tol(dir, (lp - lm) / (2 * h), 1e-6 * fabs(dir));
    ck_assert_int_eq(da_sortnet_loss_hvp(net, 1, x, t, v, hv), DA_OK);
    for (int i = 0; i < n; i++) {
        double fd = (gp[i] - gm[i]) / (2 * h);
        num = fmax(num, fabs(fd - hv[i]));
        den = fmax(den, fmax(fabs(fd), fabs(hv[i])));
    }
    ck_assert_msg(num / den < 1e-6, "hvp fd error %g", num / den);
    /* the P-VJP with the loss's own dL/dP reproduces the loss gradient */
    double *P = malloc(sizeof(double) * n * n), *gvjp = malloc(sizeof(double) * n);
    int *rank = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        rank[i] = 0;
        for (int j = 0; j < n; j++)
            rank[i] += t[j] < t[i];
    }
    ck_assert_int_eq(da_sortnet_apply(net, 1, x, NULL, P), DA_OK);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double p = P[i * n + j];
            P[i * n + j] = (rank[i] == j ? -1 / p : 1 / (1 - p)) / ((double)n * n);
        }
    ck_assert_int_eq(da_sortnet_vjp(net, 1, x, NULL, P, gvjp), DA_OK);
    ck_assert_double_lt(ref_err(gvjp, g, n), 1e-9);
    free(P);
    free(gvjp);
    free(rank);
    free(x), free(t), free(g), free(gp), free(gm), free(v), free(hv), free(xx);
    da_sortnet_free(net);
}
END_TEST

/* the largest network: the loss alone and with its gradient agree, sorted is sorted */
START_TEST(test_max_n)
{
    int n = DA_SORTNET_MAX_N;
    da_sortnet *net = da_sortnet_new(DA_SORTNET_BITONIC, n, DA_SIGMOID_LOGISTIC, 1e6, 0.25);
    ck_assert_ptr_nonnull(net);
    double *x = malloc(sizeof(double) * n), *t = malloc(sizeof(double) * n);
    double *g = malloc(sizeof(double) * n), *s = malloc(sizeof(double) * n), l1, l2;
    gc_random(x, n, 14, -1, 1);
    gc_random(t, n, 15, -1, 1);
    ck_assert_int_eq(da_sortnet_loss(net, 1, x, t, &l1, NULL), DA_OK);
    ck_assert_int_eq(da_sortnet_loss(net, 1, x, t, &l2, g), DA_OK);
    ck_assert_double_eq_tol(l1, l2, 1e-12 * l1);
    ck_assert(da_all_finite(g, n));
    ck_assert_int_eq(da_sortnet_apply(net, 1, x, s, NULL), DA_OK);
    for (int i = 1; i < n; i++)
        ck_assert(s[i - 1] <= s[i] + 1e-9);
    free(x), free(t), free(g), free(s);
    da_sortnet_free(net);
}
END_TEST

/* P is doubly stochastic, sorted = x P, and a steep network sorts */
START_TEST(test_properties)
{
    int sizes[3] = {2, 37, 64};
    for (int k = 0; k < N_CASES; k++)
        for (int s = 0; s < 3; s++) {
            int n = sizes[s];
            da_sortnet *net = case_net(k, n);
            double *x = malloc(sizeof(double) * n), *sorted = malloc(sizeof(double) * n);
            double *P = malloc(sizeof(double) * n * n);
            gc_random(x, n, 700 + k, -3, 3);
            ck_assert_int_eq(da_sortnet_apply(net, 1, x, sorted, P), DA_OK);
            for (int i = 0; i < n; i++) {
                double row = 0, col = 0, xp = 0;
                for (int j = 0; j < n; j++) {
                    row += P[i * n + j];
                    col += P[j * n + i];
                    xp += x[j] * P[j * n + i];
                }
                ck_assert_double_eq_tol(row, 1, 1e-12);
                ck_assert_double_eq_tol(col, 1, 1e-12);
                ck_assert_double_eq_tol(xp, sorted[i], 1e-12);
            }
            free(x), free(sorted), free(P);
            da_sortnet_free(net);
        }
    for (int kind = 0; kind < 2; kind++) {
        int n = 100;
        da_sortnet *net = da_sortnet_new((da_sortnet_kind)kind, n, DA_SIGMOID_LOGISTIC, 1e6, 0);
        double x[100], sorted[100], ref[100];
        gc_random(x, n, 99, -1, 1);
        memcpy(ref, x, sizeof ref);
        for (int i = 1; i < n; i++) /* insertion sort */
            for (int j = i; j > 0 && ref[j - 1] > ref[j]; j--) {
                double tmp = ref[j];
                ref[j] = ref[j - 1];
                ref[j - 1] = tmp;
            }
        ck_assert_int_eq(da_sortnet_apply(net, 1, x, sorted, NULL), DA_OK);
        ck_assert_double_lt(ref_err(sorted, ref, n), 1e-9);
        da_sortnet_free(net);
    }
}
END_TEST

START_TEST(test_ties)
{
    int n = 6;
    double same[6] = {0.3, 0.3, 0.3, 0.3, 0.3, 0.3}, pair[6] = {0.1, -0.4, 0.1, 2.0, 0.7, 2.0};
    double t[6] = {1, 0, 1, 2, 3, 2}; /* tied targets too */
    for (int k = 0; k < N_CASES; k++) {
        da_sortnet *net = case_net(k, n);
        for (int which = 0; which < 2; which++) {
            const double *x = which ? pair : same;
            double sorted[6], P[36], g[6], H[36], cot[6] = {1, -1, 2, 0, 1, 3}, loss, sum = 0;
            ck_assert_int_eq(da_sortnet_apply(net, 1, x, sorted, P), DA_OK);
            ck_assert_int_eq(da_sortnet_loss(net, 1, x, t, &loss, g), DA_OK);
            ck_assert_int_eq(da_sortnet_loss_hessian(net, 1, x, t, H), DA_OK);
            ck_assert(isfinite(loss));
            ck_assert(da_all_finite(sorted, n) && da_all_finite(P, n * n));
            ck_assert(da_all_finite(g, n) && da_all_finite(H, n * n));
            for (int i = 0; i < n; i++) /* the loss is invariant to x + c */
                sum += g[i];
            ck_assert_double_eq_tol(sum, 0, 1e-12);
            /* sorted(x + c 1) = sorted(x) + c 1, so the VJP preserves the sum */
            ck_assert_int_eq(da_sortnet_vjp(net, 1, x, cot, NULL, g), DA_OK);
            ck_assert(da_all_finite(g, n));
            sum = 0;
            for (int i = 0; i < n; i++)
                sum += g[i];
            ck_assert_double_eq_tol(sum, 6, 1e-9);
            for (int i = 0; !which && i < n; i++)
                ck_assert_double_eq_tol(sorted[i], 0.3, 1e-15);
        }
        da_sortnet_free(net);
    }
}
END_TEST

/* ---- tensor faces ---- */

typedef struct {
    const da_sortnet *net;
    da_sortnet_output what;
    const double *targets;
    int n;
} face_user;

static da_tensor *face_op(da_ctx *ctx, da_tensor **in, void *user)
{
    const face_user *u = user;
    return da_sortnet_op(ctx, u->net, in[0], u->what);
}

static da_tensor *face_loss(da_ctx *ctx, da_tensor **in, void *user)
{
    const face_user *u = user;
    return da_sortnet_ranking_loss(ctx, u->net, in[0], in[1]);
}

START_TEST(test_tensor_faces)
{
    int B = 3, n = 5;
    double x[15], t[15];
    gc_random(x, B * n, 21, -1, 1);
    gc_random(t, B * n, 22, -1, 1);
    for (int k = 0; k < N_CASES; k++) {
        da_sortnet *net = case_net(k, n);
        for (int what = 0; what < 2; what++) {
            face_user u = {net, (da_sortnet_output)what, NULL, n};
            gc_input in1[1] = {{2, {B, n}, x, 1}};
            double e = gc_check(face_op, 1, in1, &u, 1e-6);
            ck_assert_msg(e < 1e-6, "case %d what %d: gc %g", k, what, e);
            ck_assert_double_lt(gc_check_f32(face_op, 1, in1, &u), 1e-4);
            gc_input in0[1] = {{1, {n}, x, 1}}; /* one sample, 1-D */
            ck_assert_double_lt(gc_check(face_op, 1, in0, &u, 1e-6), 1e-6);
        }
        face_user u = {net, DA_SORTNET_OUT_P, NULL, n};
        gc_input in2[2] = {{2, {B, n}, x, 1}, {2, {B, n}, t, 0}};
        double e = gc_check(face_loss, 2, in2, &u, 1e-6);
        ck_assert_msg(e < 1e-6, "case %d: loss gc %g", k, e);
        ck_assert_double_lt(gc_check_f32(face_loss, 2, in2, &u), 1e-4);
        da_sortnet_free(net);
    }
}
END_TEST

static da_tensor *loss_of_z(da_ctx *ctx, da_tensor *z, void *user)
{
    const face_user *u = user;
    da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 1, z->shape, u->targets);
    return da_sortnet_ranking_loss(ctx, u->net, z, t);
}

static da_tensor *loss_of_z_plus(da_ctx *ctx, da_tensor *z, void *user)
{
    return da_add_scalar(ctx, loss_of_z(ctx, z, user), 1.0); /* not the exact path */
}

START_TEST(test_da_hessian_exact)
{
    int n = 7;
    /* well separated inputs: da_hessian's finite differences (h = 1e-4) stay accurate */
    double x[7] = {0.5, -2.5, 1.5, -0.5, 2.5, -1.5, 3.5}, t[7], H[49], H2[49], Hp[49];
    gc_random(t, n, 32, -1, 1);
    da_ctx *ctx = da_ctx_new();
    for (int k = 0; k < N_CASES; k++) {
        /* steepness 1: the O(h^2) error of da_hessian's difference path stays < 1e-6 */
        da_sortnet *net = da_sortnet_new(k % 2 ? DA_SORTNET_BITONIC : DA_SORTNET_ODD_EVEN, n,
                                         (da_sigmoid)(k / 2), 1.0, 0.25);
        face_user u = {net, DA_SORTNET_OUT_P, t, n};
        da_hessian_method m;
        ck_assert_int_eq(da_hessian(ctx, loss_of_z, &u, n, x, H, &m), DA_OK);
        ck_assert_int_eq(m, DA_HESSIAN_EXACT);
        ck_assert_int_eq(da_hessian(ctx, loss_of_z_plus, &u, n, x, H2, &m), DA_OK);
        ck_assert_int_eq(m, DA_HESSIAN_FINITE_DIFF);
        ck_assert_int_eq(da_sortnet_loss_hessian(net, 1, x, t, Hp), DA_OK);
        ck_assert_double_lt(ref_err(H, Hp, n * n), 1e-12);
        double e = ref_err(H2, H, n * n);
        ck_assert_msg(e < 1e-6, "case %d: exact vs finite-difference Hessian %g", k, e);
        da_sortnet_free(net);
    }
    da_ctx_free(ctx);
}
END_TEST

START_TEST(test_threads_deterministic)
{
    int B = 16, n = 24;
    double *x = malloc(sizeof(double) * B * n), *t = malloc(sizeof(double) * B * n);
    double *g1 = malloc(sizeof(double) * B * n), *g2 = malloc(sizeof(double) * B * n), l1, l2;
    gc_random(x, B * n, 41, -1, 1);
    gc_random(t, B * n, 42, -1, 1);
    da_sortnet *net = da_sortnet_new(DA_SORTNET_ODD_EVEN, n, DA_SIGMOID_LOGISTIC_PHI, 10, 0.25);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    ck_assert_int_eq(da_sortnet_loss(net, B, x, t, &l1, g1), DA_OK);
    omp_set_num_threads(3);
    ck_assert_int_eq(da_sortnet_loss(net, B, x, t, &l2, g2), DA_OK);
    omp_set_num_threads(saved);
    ck_assert(l1 == l2);
    ck_assert(memcmp(g1, g2, sizeof(double) * B * n) == 0);
    free(x), free(t), free(g1), free(g2);
    da_sortnet_free(net);
}
END_TEST

START_TEST(test_errors)
{
    ck_assert_ptr_null(da_sortnet_new(DA_SORTNET_ODD_EVEN, 1, DA_SIGMOID_CAUCHY, 10, 0.25));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_sortnet_new(DA_SORTNET_BITONIC, DA_SORTNET_MAX_N + 1,
                                      DA_SIGMOID_CAUCHY, 10, 0.25));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_sortnet_new(DA_SORTNET_BITONIC, 8, DA_SIGMOID_CAUCHY, 0, 0.25));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_sortnet_new(DA_SORTNET_BITONIC, 8, DA_SIGMOID_CAUCHY, -2, 0.25));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_sortnet_new(DA_SORTNET_BITONIC, 8, DA_SIGMOID_CAUCHY, NAN, 0.25));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_sortnet_new(DA_SORTNET_BITONIC, 8, DA_SIGMOID_CAUCHY, INFINITY, 0));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_sortnet_new(DA_SORTNET_BITONIC, 8, DA_SIGMOID_LOGISTIC_PHI, 1, NAN));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_sortnet_new(DA_SORTNET_BITONIC, 8, DA_SIGMOID_LOGISTIC_PHI, 1, 1.5));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_sortnet_new((da_sortnet_kind)5, 8, DA_SIGMOID_CAUCHY, 1, 0));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_sortnet_new(DA_SORTNET_BITONIC, 8, (da_sigmoid)9, 1, 0));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_sortnet_free(NULL);
    da_sortnet *big = da_sortnet_new(DA_SORTNET_BITONIC, DA_SORTNET_MAX_N, DA_SIGMOID_CAUCHY, 1, 0);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(da_sortnet_layers(big), 66);
    da_sortnet_free(big);

    int n = 4;
    da_sortnet *net = da_sortnet_new(DA_SORTNET_ODD_EVEN, n, DA_SIGMOID_CAUCHY, 10, 0.25);
    double x[4] = {1, 2, 3, 4}, t[4] = {4, 3, 2, 1}, out[16], g[4], loss;
    double xnan[4] = {1, NAN, 3, 4}, xinf[4] = {1, 2, INFINITY, 4};
    ck_assert_int_eq(da_sortnet_apply(NULL, 1, x, out, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sortnet_apply(net, 1, NULL, out, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sortnet_apply(net, 1, x, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sortnet_apply(net, 0, x, out, NULL), DA_ERANGE);
    ck_assert_int_eq(da_sortnet_apply(net, 1, xnan, out, NULL), DA_ENAN);
    ck_assert_int_eq(da_sortnet_apply(net, 1, xinf, NULL, out), DA_ENAN);
    ck_assert(strstr(da_last_error(), "da_sortnet_apply") != NULL);
    ck_assert_int_eq(da_sortnet_loss(net, 1, x, NULL, &loss, g), DA_EINVAL);
    ck_assert_int_eq(da_sortnet_loss(net, 1, x, t, NULL, g), DA_EINVAL);
    ck_assert_int_eq(da_sortnet_loss(net, 1, xnan, t, &loss, g), DA_ENAN);
    ck_assert_int_eq(da_sortnet_loss(net, 1, x, xinf, &loss, g), DA_ENAN);
    ck_assert_int_eq(da_sortnet_loss(net, -1, x, t, &loss, g), DA_ERANGE);
    ck_assert_int_eq(da_sortnet_vjp(net, 1, x, NULL, NULL, g), DA_EINVAL);
    ck_assert_int_eq(da_sortnet_vjp(net, 1, x, xnan, NULL, g), DA_ENAN);
    ck_assert_int_eq(da_sortnet_vjp(net, 1, x, x, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sortnet_loss_hessian(net, 1, x, t, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sortnet_loss_hessian(net, 1, xinf, t, out), DA_ENAN);
    ck_assert_int_eq(da_sortnet_loss_hvp(net, 1, x, t, xnan, g), DA_ENAN);

    da_ctx *ctx = da_ctx_new();
    int s5[1] = {5}, s4[2] = {1, 4};
    da_tensor *bad = da_ctx_tensor(ctx, DA_F64, 1, s5);
    ck_assert_ptr_null(da_sortnet_op(ctx, net, bad, DA_SORTNET_OUT_P));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    da_tensor *xt = da_ctx_tensor_from(ctx, DA_F64, 2, s4, xnan);
    ck_assert_ptr_null(da_sortnet_op(ctx, net, xt, DA_SORTNET_OUT_SORTED));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_sortnet_op(ctx, net, NULL, DA_SORTNET_OUT_SORTED));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_tensor *ok = da_ctx_tensor_from(ctx, DA_F64, 2, s4, x);
    ck_assert_ptr_null(da_sortnet_ranking_loss(ctx, net, ok, bad));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_sortnet_ranking_loss(ctx, net, ok, xt));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    da_ctx_free(ctx);
    da_sortnet_free(net);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sortnet");
    TCase *tc = tcase_create("sortnet");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_refs);
    tcase_add_test(tc, test_fd_loss_gradient);
    tcase_add_test(tc, test_fd_vjp);
    tcase_add_test(tc, test_fd_hessian_and_hvp);
    tcase_add_test(tc, test_large_blocked);
    tcase_add_test(tc, test_max_n);
    tcase_add_test(tc, test_properties);
    tcase_add_test(tc, test_ties);
    tcase_add_test(tc, test_tensor_faces);
    tcase_add_test(tc, test_da_hessian_exact);
    tcase_add_test(tc, test_threads_deterministic);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
