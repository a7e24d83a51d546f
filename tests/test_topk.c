/* test_topk.c - difftopk (losses/topk.h): every `topk` and `topk_ce` reference file,
 * agreement of the top-k columns and their VJP with the full sorting network, finite
 * differences of every gradient, the tensor faces (gc_check, F32 against F64), ties,
 * the top-m selection and the error paths. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "refs.h"
#include "suite_run.h"

static const ref_tensor *need(const ref_file *r, const char *name)
{
    const ref_tensor *t = ref_get(r, name);
    ck_assert_msg(t != NULL, "%s: no tensor %s", r->path, name);
    return t;
}

static da_sortnet *net_of(const ref_file *r, int n, double steepness)
{
    const char *dist = ref_param(r, "distribution"), *network = ref_param(r, "network");
    ck_assert(dist && network);
    ck_assert(!strcmp(dist, "cauchy") || !strcmp(dist, "logistic_phi"));
    ck_assert(!strcmp(network, "odd_even") || !strcmp(network, "bitonic"));
    da_sortnet *net = da_sortnet_new(!strcmp(network, "bitonic") ? DA_SORTNET_BITONIC
                                                                 : DA_SORTNET_ODD_EVEN,
                                     n, !strcmp(dist, "cauchy") ? DA_SIGMOID_CAUCHY
                                                                : DA_SIGMOID_LOGISTIC_PHI,
                                     steepness, ref_param_num(r, "art_lambda", 0.25));
    ck_assert_msg(net != NULL, "%s", da_last_error());
    return net;
}

START_TEST(test_topk_refs)
{
    char **paths;
    int count = ref_list("topk", &paths);
    ck_assert_int_gt(count, 0);
    for (int f = 0; f < count; f++) {
        const char *err;
        ref_file *r = ref_load(paths[f], &err);
        ck_assert_msg(r != NULL, "%s", err);
        int n = (int)ref_param_num(r, "n", 0), k = (int)ref_param_num(r, "k", 0);
        int B = (int)ref_param_num(r, "batch", 0);
        da_sortnet *net = net_of(r, n, ref_param_num(r, "steepness", 0));
        const double *x = need(r, "x")->data, *W = need(r, "W")->data;
        double *X = malloc(sizeof(double) * B * n * k), *g = malloc(sizeof(double) * B * n);
        ck_assert_int_eq(da_topk(net, k, B, x, X, W, g), DA_OK);
        double loss = 0;
        for (long i = 0; i < (long)B * n * k; i++)
            loss += X[i] * W[i];
        double eX = ref_err(X, need(r, "X")->data, (long)B * n * k);
        double eL = ref_err(&loss, need(r, "loss")->data, 1);
        double eg = ref_err(g, need(r, "grad_x")->data, (long)B * n);
        ck_assert_msg(eX < 1e-9 && eL < 1e-6 && eg < 1e-6, "%s: X %g loss %g grad %g", r->path,
                      eX, eL, eg);
        free(X);
        free(g);
        da_sortnet_free(net);
        ref_free(r);
    }
    ref_list_free(paths, count);
}
END_TEST

static da_top1_mode mode_of(const char *s)
{
    ck_assert_ptr_nonnull(s);
    if (!strcmp(s, "sm"))
        return DA_TOP1_SM;
    if (!strcmp(s, "smce"))
        return DA_TOP1_SMCE;
    ck_assert_str_eq(s, "sort");
    return DA_TOP1_SORT;
}

START_TEST(test_topk_ce_refs)
{
    char **paths;
    int count = ref_list("topk_ce", &paths);
    ck_assert_int_gt(count, 0);
    for (int f = 0; f < count; f++) {
        const char *err;
        ref_file *r = ref_load(paths[f], &err);
        ck_assert_msg(r != NULL, "%s", err);
        int n = (int)ref_param_num(r, "n", 0), B = (int)ref_param_num(r, "batch", 0), K = 0;
        double p_k[16];
        char buf[256];
        snprintf(buf, sizeof buf, "%s", ref_param(r, "p_k"));
        for (char *tok = strtok(buf, ","); tok && K < 16; tok = strtok(NULL, ","))
            p_k[K++] = atof(tok);
        const char *m_str = ref_param(r, "m");
        int m = m_str && strcmp(m_str, "None") ? atoi(m_str) : 0;
        da_sortnet *net = net_of(r, m ? m : n, ref_param_num(r, "inverse_temperature", 0));
        da_topk_ce_cfg cfg = {net, n, m, K, p_k, mode_of(ref_param(r, "top1_mode"))};
        const ref_tensor *lt = need(r, "labels");
        int labels[16];
        for (int b = 0; b < B; b++)
            labels[b] = (int)lt->data[b];
        double loss, *g = malloc(sizeof(double) * B * n);
        ck_assert_int_eq(da_topk_ce_loss(&cfg, B, need(r, "logits")->data, labels, &loss, g),
                         DA_OK);
        double eL = ref_err(&loss, need(r, "loss")->data, 1);
        double eg = ref_err(g, need(r, "grad_logits")->data, (long)B * n);
        ck_assert_msg(eL < 1e-6 && eg < 1e-6, "%s: loss %g grad %g", r->path, eL, eg);
        free(g);
        da_sortnet_free(net);
        ref_free(r);
    }
    ref_list_free(paths, count);
}
END_TEST

/* X equals the last k columns of P, and the VJP equals P's VJP with the cotangent in
 * those columns; n = 300, k = 200 runs several column blocks */
START_TEST(test_topk_matches_sortnet)
{
    int cases[4][3] = {{DA_SORTNET_ODD_EVEN, 9, 4}, {DA_SORTNET_BITONIC, 13, 13},
                       {DA_SORTNET_BITONIC, 300, 200}, {DA_SORTNET_ODD_EVEN, 40, 1}};
    for (int c = 0; c < 4; c++) {
        int n = cases[c][1], k = cases[c][2], B = 2;
        da_sortnet *net = da_sortnet_new((da_sortnet_kind)cases[c][0], n,
                                         DA_SIGMOID_LOGISTIC_PHI, 5.0, 0.25);
        double *x = malloc(sizeof(double) * B * n), *P = malloc(sizeof(double) * B * n * n);
        double *X = malloc(sizeof(double) * B * n * k), *cot = malloc(sizeof(double) * B * n * k);
        double *cotP = calloc((size_t)B * n * n, sizeof(double));
        double *g1 = malloc(sizeof(double) * B * n), *g2 = malloc(sizeof(double) * B * n);
        gc_random(x, B * n, 50 + c, -2, 2);
        gc_random(cot, B * n * k, 60 + c, -1, 1);
        ck_assert_int_eq(da_sortnet_apply(net, B, x, NULL, P), DA_OK);
        ck_assert_int_eq(da_topk(net, k, B, x, X, cot, g1), DA_OK);
        double err = 0;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < k; j++) {
                    long ix = ((long)b * n + i) * k + j, ip = ((long)b * n + i) * n + n - k + j;
                    err = fmax(err, fabs(X[ix] - P[ip]));
                    cotP[ip] = cot[ix];
                }
        ck_assert_msg(err < 1e-12, "case %d: X vs P %g", c, err);
        ck_assert_int_eq(da_sortnet_vjp(net, B, x, NULL, cotP, g2), DA_OK);
        ck_assert_msg(ref_err(g1, g2, B * n) < 1e-10, "case %d: vjp", c);
        free(x), free(P), free(X), free(cot), free(cotP), free(g1), free(g2);
        da_sortnet_free(net);
    }
}
END_TEST

/* ---- finite differences (double, central) ---- */

typedef struct {
    const da_sortnet *net;
    int k;
    const double *cot;           /* top-k: scalar = <cot, X> */
    const da_topk_ce_cfg *cfg;   /* or the top-k CE loss */
    const int *labels;
    int batch, len;
} fd_ctx;

static double scalar_of(const fd_ctx *c, const double *x)
{
    double v = 0;
    if (c->cfg) {
        ck_assert_int_eq(da_topk_ce_loss(c->cfg, c->batch, x, c->labels, &v, NULL), DA_OK);
        return v;
    }
    int n = da_sortnet_size(c->net);
    double *X = malloc(sizeof(double) * c->batch * n * c->k);
    ck_assert_int_eq(da_topk(c->net, c->k, c->batch, x, X, NULL, NULL), DA_OK);
    for (long i = 0; i < (long)c->batch * n * c->k; i++)
        v += c->cot[i] * X[i];
    free(X);
    return v;
}

static double fd_error(const fd_ctx *c, const double *x0, const double *g)
{
    double *x = malloc(sizeof(double) * c->len), num = 0, den = 1e-300, h = 1e-6;
    memcpy(x, x0, sizeof(double) * c->len);
    for (int i = 0; i < c->len; i++) {
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

START_TEST(test_fd_topk)
{
    int B = 2;
    for (int kind = 0; kind < 2; kind++)
        for (int sig = 0; sig < 6; sig++)
            for (int n = 5; n <= 8; n += 3)
                for (int k = 1; k <= n; k += 3) {
                    da_sortnet *net = da_sortnet_new((da_sortnet_kind)kind, n,
                                                     (da_sigmoid)sig, 2.0, 0.25);
                    double x[16], cot[128], g[16];
                    gc_random(x, B * n, 70 + sig, -1, 1);
                    gc_random(cot, B * n * k, 80 + k, -1, 1);
                    ck_assert_int_eq(da_topk(net, k, B, x, NULL, cot, g), DA_OK);
                    fd_ctx c = {net, k, cot, NULL, NULL, B, B * n};
                    double e = fd_error(&c, x, g);
                    ck_assert_msg(e < 1e-6, "kind %d sig %d n %d k %d: %g", kind, sig, n, k, e);
                    da_sortnet_free(net);
                }
}
END_TEST

START_TEST(test_fd_topk_ce)
{
    int B = 3, nc = 12, labels[3] = {4, 0, 11};
    double p3[3] = {0.5, 0.2, 0.3}, p1[1] = {1.0}, logits[36], g[36], loss;
    gc_random(logits, B * nc, 90, -2, 2);
    for (int mode = 0; mode < 3; mode++)
        for (int kind = 0; kind < 2; kind++)
            for (int m = 0; m <= 7; m += 7)
                for (int pk = 0; pk < 2; pk++) {
                    int wires = m ? m : nc;
                    da_sortnet *net = da_sortnet_new((da_sortnet_kind)kind, wires,
                                                     DA_SIGMOID_CAUCHY, 3.0, 0.25);
                    da_topk_ce_cfg cfg = {net, nc, m, pk ? 3 : 1, pk ? p3 : p1,
                                          (da_top1_mode)mode};
                    ck_assert_int_eq(da_topk_ce_loss(&cfg, B, logits, labels, &loss, g), DA_OK);
                    ck_assert(isfinite(loss) && loss > 0);
                    fd_ctx c = {NULL, 0, NULL, &cfg, labels, B, B * nc};
                    double e = fd_error(&c, logits, g);
                    ck_assert_msg(e < 1e-6, "mode %d kind %d m %d pk %d: %g", mode, kind, m, pk, e);
                    if (m) /* only the label and the top m-1 others get a gradient */
                        for (int b = 0; b < B; b++) {
                            int nz = 0;
                            for (int i = 0; i < nc; i++)
                                nz += g[b * nc + i] != 0;
                            ck_assert_int_le(nz, m);
                        }
                    da_sortnet_free(net);
                }
}
END_TEST

/* with m, the loss equals the loss on the hand-selected logits */
START_TEST(test_top_m_selection)
{
    int nc = 8, m = 4;
    double lg[8] = {0.3, 2.0, -1.0, 0.9, 2.0, 0.1, 1.5, -0.2}, sel[4] = {0.1, 2.0, 2.0, 1.5};
    double p_k[2] = {0.5, 0.5}, a, b;
    int label = 5, zero = 0;
    da_sortnet *net = da_sortnet_new(DA_SORTNET_ODD_EVEN, m, DA_SIGMOID_CAUCHY, 1, 0.25);
    da_topk_ce_cfg with_m = {net, nc, m, 2, p_k, DA_TOP1_SORT};
    da_topk_ce_cfg plain = {net, m, 0, 2, p_k, DA_TOP1_SORT};
    ck_assert_int_eq(da_topk_ce_loss(&with_m, 1, lg, &label, &a, NULL), DA_OK);
    ck_assert_int_eq(da_topk_ce_loss(&plain, 1, sel, &zero, &b, NULL), DA_OK);
    ck_assert_double_eq_tol(a, b, 1e-15);
    da_sortnet_free(net);
}
END_TEST

/* ---- tensor faces ---- */

typedef struct {
    const da_sortnet *net;
    int k;
    const da_topk_ce_cfg *cfg;
    const int *labels;
} face_user;

static da_tensor *face_topk(da_ctx *ctx, da_tensor **in, void *user)
{
    const face_user *u = user;
    return da_topk_op(ctx, u->net, u->k, in[0]);
}

static da_tensor *face_ce(da_ctx *ctx, da_tensor **in, void *user)
{
    const face_user *u = user;
    return da_topk_ce(ctx, in[0], u->labels, u->cfg);
}

START_TEST(test_tensor_faces)
{
    int B = 3, n = 7, labels[3] = {2, 6, 0};
    double x[21], p_k[3] = {0.25, 0.25, 0.5};
    gc_random(x, B * n, 101, -1, 1);
    for (int kind = 0; kind < 2; kind++) {
        da_sortnet *net = da_sortnet_new((da_sortnet_kind)kind, n, DA_SIGMOID_CAUCHY, 2, 0.25);
        face_user u = {net, 3, NULL, NULL};
        gc_input in2[1] = {{2, {B, n}, x, 1}}, in1[1] = {{1, {n}, x, 1}};
        ck_assert_double_lt(gc_check(face_topk, 1, in2, &u, 1e-6), 1e-6);
        ck_assert_double_lt(gc_check(face_topk, 1, in1, &u, 1e-6), 1e-6);
        ck_assert_double_lt(gc_check_f32(face_topk, 1, in2, &u), 1e-4);
        for (int mode = 0; mode < 3; mode++) {
            da_topk_ce_cfg cfg = {net, n, 0, 3, p_k, (da_top1_mode)mode};
            face_user v = {net, 0, &cfg, labels};
            double e = gc_check(face_ce, 1, in2, &v, 1e-6);
            ck_assert_msg(e < 1e-6, "kind %d mode %d: %g", kind, mode, e);
            ck_assert_double_lt(gc_check_f32(face_ce, 1, in2, &v), 1e-4);
        }
        da_sortnet_free(net);
    }
}
END_TEST

START_TEST(test_ties)
{
    int n = 6, label = 2;
    double same[6] = {1, 1, 1, 1, 1, 1}, X[18], cot[18], g[6], loss, p_k[2] = {0.5, 0.5};
    gc_random(cot, 18, 5, -1, 1);
    for (int kind = 0; kind < 2; kind++)
        for (int sig = 0; sig < 6; sig++) {
            da_sortnet *net = da_sortnet_new((da_sortnet_kind)kind, n, (da_sigmoid)sig,
                                             10, 0.25);
            ck_assert_int_eq(da_topk(net, 3, 1, same, X, cot, g), DA_OK);
            ck_assert(da_all_finite(X, 18) && da_all_finite(g, 6));
            for (int mode = 0; mode < 3; mode++) {
                da_topk_ce_cfg cfg = {net, n, 0, 2, p_k, (da_top1_mode)mode};
                ck_assert_int_eq(da_topk_ce_loss(&cfg, 1, same, &label, &loss, g), DA_OK);
                ck_assert(isfinite(loss) && da_all_finite(g, 6));
            }
            da_sortnet_free(net);
        }
}
END_TEST

START_TEST(test_errors)
{
    int n = 5, labels[2] = {1, 3}, bad_labels[2] = {1, 5};
    da_sortnet *net = da_sortnet_new(DA_SORTNET_ODD_EVEN, n, DA_SIGMOID_CAUCHY, 1, 0.25);
    double x[10] = {0}, X[50], g[10], xnan[10] = {0, NAN}, loss;
    double p_ok[2] = {0.5, 0.5}, p_sum[2] = {0.5, 0.6}, p_neg[2] = {1.5, -0.5}, p_nan[2] = {NAN, 1};
    ck_assert_int_eq(da_topk(net, 0, 2, x, X, NULL, NULL), DA_ERANGE);
    ck_assert_int_eq(da_topk(net, 6, 2, x, X, NULL, NULL), DA_ERANGE);
    ck_assert_int_eq(da_topk(net, 2, 0, x, X, NULL, NULL), DA_ERANGE);
    ck_assert_int_eq(da_topk(NULL, 2, 2, x, X, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_topk(net, 2, 2, NULL, X, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_topk(net, 2, 2, x, NULL, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_topk(net, 2, 2, x, X, X, NULL), DA_EINVAL);
    ck_assert_int_eq(da_topk(net, 2, 2, xnan, X, NULL, NULL), DA_ENAN);
    X[3] = INFINITY;
    ck_assert_int_eq(da_topk(net, 2, 2, x, NULL, X, g), DA_ENAN);

    da_topk_ce_cfg cfg = {net, n, 0, 2, p_ok, DA_TOP1_SM};
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, x, labels, &loss, g), DA_OK);
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, x, labels, NULL, g), DA_EINVAL);
    ck_assert_int_eq(da_topk_ce_loss(NULL, 2, x, labels, &loss, g), DA_EINVAL);
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, x, NULL, &loss, g), DA_EINVAL);
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, x, bad_labels, &loss, g), DA_ERANGE);
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, xnan, labels, &loss, g), DA_ENAN);
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 0, x, labels, &loss, g), DA_ERANGE);
    cfg.p_k = p_sum;
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, x, labels, &loss, g), DA_ERANGE);
    cfg.p_k = p_neg;
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, x, labels, &loss, g), DA_ERANGE);
    cfg.p_k = p_nan;
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, x, labels, &loss, g), DA_ENAN);
    cfg.p_k = p_ok;
    cfg.top1_mode = (da_top1_mode)7;
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, x, labels, &loss, g), DA_EINVAL);
    cfg.top1_mode = DA_TOP1_SORT;
    cfg.n_classes = 6; /* the network has 5 wires */
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, x, labels, &loss, g), DA_ESHAPE);
    cfg.m = 5; /* m must be below n_classes and above k */
    cfg.n_classes = 5;
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, x, labels, &loss, g), DA_ERANGE);
    cfg.m = 0;
    cfg.k = 6;
    ck_assert_int_eq(da_topk_ce_loss(&cfg, 2, x, labels, &loss, g), DA_ERANGE);

    da_ctx *ctx = da_ctx_new();
    int s1[2] = {2, 4};
    da_tensor *bad = da_ctx_tensor(ctx, DA_F64, 2, s1);
    ck_assert_ptr_null(da_topk_op(ctx, net, 2, bad));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    cfg.k = 2;
    ck_assert_ptr_null(da_topk_ce(ctx, bad, labels, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_topk_ce(ctx, bad, NULL, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
    da_sortnet_free(net);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("topk");
    TCase *tc = tcase_create("topk");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_topk_refs);
    tcase_add_test(tc, test_topk_ce_refs);
    tcase_add_test(tc, test_topk_matches_sortnet);
    tcase_add_test(tc, test_fd_topk);
    tcase_add_test(tc, test_fd_topk_ce);
    tcase_add_test(tc, test_top_m_selection);
    tcase_add_test(tc, test_tensor_faces);
    tcase_add_test(tc, test_ties);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
