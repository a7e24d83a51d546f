/* test_sinkhorn.c - optimal-transport soft sort / rank (losses/sinkhorn.*): finite
 * differences of every VJP and of the loss, tensor faces, marginals, the hard limit,
 * ties, consistency of the outputs, error paths. (There are no upstream reference
 * files for this kind.) */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "refs.h"
#include "sinkhorn.h"
#include "sinkhorn_impl.h"
#include "suite_run.h"

enum { W_P, W_SORTED, W_RANKS };

/* forward of one output kind into out */
static int forward_one(const da_sinkhorn_cfg *cfg, int batch, const double *x, int which,
                       double *out)
{
    return da_sinkhorn_sort(cfg, batch, x, which == W_P ? out : NULL,
                            which == W_SORTED ? out : NULL, which == W_RANKS ? out : NULL,
                            NULL, NULL, NULL, NULL);
}

/* symmetric relative error of the VJP of output `which` against central differences */
static double fd_error(const da_sinkhorn_cfg *cfg, int batch, const double *x0, int which)
{
    int n = cfg->n;
    long m = (long)batch * n, mo = which == W_P ? m * n : m;
    double *x = malloc(m * sizeof(double)), *c = malloc(mo * sizeof(double));
    double *o = malloc(mo * sizeof(double)), *g = malloc(m * sizeof(double));
    memcpy(x, x0, m * sizeof(double));
    gc_random(c, mo, 5 + which, -1, 1);
    ck_assert_int_eq(da_sinkhorn_sort(cfg, batch, x, NULL, NULL, NULL, which == W_P ? c : NULL,
                                      which == W_SORTED ? c : NULL,
                                      which == W_RANKS ? c : NULL, g),
                     DA_OK);
    double num = 0, den = 1e-300, h = 1e-6;
    for (long k = 0; k < m; k++) {
        double lp = 0, lm = 0;
        x[k] = x0[k] + h;
        ck_assert_int_eq(forward_one(cfg, batch, x, which, o), DA_OK);
        for (long i = 0; i < mo; i++)
            lp += o[i] * c[i];
        x[k] = x0[k] - h;
        ck_assert_int_eq(forward_one(cfg, batch, x, which, o), DA_OK);
        for (long i = 0; i < mo; i++)
            lm += o[i] * c[i];
        x[k] = x0[k];
        double fd = (lp - lm) / (2 * h);
        num = fmax(num, fabs(fd - g[k]));
        den = fmax(den, fmax(fabs(fd), fabs(g[k])));
    }
    free(x);
    free(c);
    free(o);
    free(g);
    return num / den;
}

START_TEST(test_vjp_finite_differences)
{
    /* (n = 2 is left out: the standardised pair is always (-1, +1), so P and the ranks
     * do not depend on x there and a relative error of two zeros is meaningless) */
    static const int ns[] = {3, 4, 6};
    static const double eps[] = {0.3, 0.05};
    static const int iters[] = {1, 4, 25};
    for (int ni = 0; ni < 3; ni++)
        for (int ei = 0; ei < 2; ei++)
            for (int ti = 0; ti < 3; ti++)
                for (int which = 0; which < 3; which++) {
                    da_sinkhorn_cfg cfg = {ns[ni], eps[ei], iters[ti]};
                    double x[2 * 6];
                    gc_random(x, 2 * ns[ni], 40 + ni, -2, 2);
                    double e = fd_error(&cfg, 2, x, which);
                    ck_assert_msg(e < 1e-6, "n=%d eps=%g iters=%d out=%d: fd error %g", ns[ni],
                                  eps[ei], iters[ti], which, e);
                }
}
END_TEST

/* all cotangents at once give the sum of the single VJPs; P, sorted and ranks agree;
 * a batch (large enough to run on several threads) equals its rows one by one */
START_TEST(test_consistency)
{
    enum { B = 8, N = 24 };
    da_sinkhorn_cfg cfg = {N, 0.05, 20};
    double x[B * N], P[B * N * N], s[B * N], r[B * N], cP[B * N * N], cs[B * N], cr[B * N];
    double g[B * N], g1[B * N], g2[B * N], g3[B * N], s1[N];
    gc_random(x, B * N, 1, -1, 1);
    gc_random(cP, B * N * N, 2, -1, 1);
    gc_random(cs, B * N, 3, -1, 1);
    gc_random(cr, B * N, 4, -1, 1);
    ck_assert_int_eq(da_sinkhorn_sort(&cfg, B, x, P, s, r, cP, cs, cr, g), DA_OK);
    ck_assert_int_eq(da_sinkhorn_sort(&cfg, B, x, NULL, NULL, NULL, cP, NULL, NULL, g1), 0);
    ck_assert_int_eq(da_sinkhorn_sort(&cfg, B, x, NULL, NULL, NULL, NULL, cs, NULL, g2), 0);
    ck_assert_int_eq(da_sinkhorn_sort(&cfg, B, x, NULL, NULL, NULL, NULL, NULL, cr, g3), 0);
    for (int k = 0; k < B * N; k++)
        ck_assert_double_eq_tol(g[k], g1[k] + g2[k] + g3[k], 1e-12 * (1 + fabs(g[k])));
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < N; i++) {
            double rr = 0;
            for (int j = 0; j < N; j++)
                rr += P[(b * N + i) * N + j] * (j + 1);
            ck_assert_double_eq_tol(r[b * N + i], rr, 1e-12);
        }
        for (int j = 0; j < N; j++) {
            double ss = 0;
            for (int i = 0; i < N; i++)
                ss += P[(b * N + i) * N + j] * x[b * N + i];
            ck_assert_double_eq_tol(s[b * N + j], ss, 1e-12);
        }
        ck_assert_int_eq(forward_one(&cfg, 1, x + b * N, W_SORTED, s1), DA_OK);
        for (int j = 0; j < N; j++)
            ck_assert_double_eq(s1[j], s[b * N + j]);
    }
}
END_TEST

/* columns sum to 1 after every iteration count; rows converge to 1 */
START_TEST(test_marginals)
{
    enum { N = 9 };
    double x[N], P[N * N];
    gc_random(x, N, 8, -3, 3);
    static const int iters[] = {1, 3, 400};
    for (int t = 0; t < 3; t++) {
        da_sinkhorn_cfg cfg = {N, 0.05, iters[t]};
        ck_assert_int_eq(forward_one(&cfg, 1, x, W_P, P), DA_OK);
        double worst_row = 0;
        for (int j = 0; j < N; j++) {
            double col = 0, row = 0;
            for (int i = 0; i < N; i++) {
                col += P[i * N + j];
                row += P[j * N + i];
                ck_assert(P[i * N + j] > 0 && P[i * N + j] <= 1 + 1e-15);
            }
            ck_assert_double_eq_tol(col, 1, 1e-12);
            worst_row = fmax(worst_row, fabs(row - 1));
        }
        if (iters[t] == 400)
            ck_assert_double_lt(worst_row, 1e-9);
    }
}
END_TEST

/* small epsilon, many iterations: the hard permutation, sort and ranks */
START_TEST(test_hard_limit)
{
    enum { N = 6 };
    double x[N] = {0.3, -1.2, 2.0, 0.9, -0.4, 1.4}, P[N * N], s[N], r[N];
    int rank[N];
    for (int i = 0; i < N; i++) {
        rank[i] = 0;
        for (int j = 0; j < N; j++)
            rank[i] += x[j] < x[i];
    }
    da_sinkhorn_cfg cfg = {N, 2e-4, 3000};
    ck_assert_int_eq(da_sinkhorn_sort(&cfg, 1, x, P, s, r, NULL, NULL, NULL, NULL), DA_OK);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++)
            ck_assert_double_eq_tol(P[i * N + j], rank[i] == j, 1e-3);
        ck_assert_double_eq_tol(r[i], rank[i] + 1, 1e-2);
        ck_assert_double_eq_tol(s[rank[i]], x[i], 1e-2);
    }
}
END_TEST

/* ---- the loss ---- */

START_TEST(test_loss)
{
    enum { B = 3, N = 5 };
    da_sinkhorn_cfg cfg = {N, 0.1, 15};
    double x[B * N], t[B * N], g[B * N], P[B * N * N], loss, lp, lm, h = 1e-6;
    gc_random(x, B * N, 61, -2, 2);
    gc_random(t, B * N, 62, -2, 2);
    ck_assert_int_eq(da_sinkhorn_loss(&cfg, B, x, t, &loss, g), DA_OK);
    /* the definition: mean BCE between P and the true permutation matrix */
    ck_assert_int_eq(forward_one(&cfg, B, x, W_P, P), DA_OK);
    double direct = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++) {
            int rank = 0;
            for (int j = 0; j < N; j++)
                rank += t[b * N + j] < t[b * N + i];
            for (int j = 0; j < N; j++) {
                double p = P[(b * N + i) * N + j];
                direct -= (rank == j ? log(p) : log(1 - p)) / (B * N * N);
            }
        }
    ck_assert_double_eq_tol(loss, direct, 1e-12 * direct);
    double num = 0, den = 1e-300;
    for (int k = 0; k < B * N; k++) {
        double x0 = x[k];
        x[k] = x0 + h;
        ck_assert_int_eq(da_sinkhorn_loss(&cfg, B, x, t, &lp, NULL), DA_OK);
        x[k] = x0 - h;
        ck_assert_int_eq(da_sinkhorn_loss(&cfg, B, x, t, &lm, NULL), DA_OK);
        x[k] = x0;
        double fd = (lp - lm) / (2 * h);
        num = fmax(num, fabs(fd - g[k]));
        den = fmax(den, fmax(fabs(fd), fabs(g[k])));
    }
    ck_assert_double_lt(num / den, 1e-6);
    /* a saturated P (log clamped at -100) stays finite with a finite gradient */
    da_sinkhorn_cfg sharp = {N, 1e-5, 50};
    ck_assert_int_eq(da_sinkhorn_loss(&sharp, B, x, t, &loss, g), DA_OK);
    ck_assert(isfinite(loss) && da_all_finite(g, B * N));
}
END_TEST

/* ---- tensor faces ---- */

typedef struct {
    int which; /* W_P, W_SORTED, W_RANKS, or 3 for the loss */
    da_sinkhorn_cfg cfg;
    const double *targets;
} face_cfg;

static da_tensor *face_graph(da_ctx *ctx, da_tensor **in, void *user)
{
    const face_cfg *c = user;
    switch (c->which) {
    case W_P:
        return da_sinkhorn_P(ctx, in[0], &c->cfg);
    case W_SORTED:
        return da_sinkhorn_soft_sort(ctx, in[0], &c->cfg);
    case W_RANKS:
        return da_sinkhorn_soft_rank(ctx, in[0], &c->cfg);
    default:
        return da_sinkhorn(ctx, in[0], c->targets, &c->cfg);
    }
}

START_TEST(test_tensor_faces)
{
    enum { B = 2, N = 5 };
    double x[B * N], t[B * N];
    gc_random(x, B * N, 71, -2, 2);
    gc_random(t, B * N, 72, -2, 2);
    for (int which = 0; which < 4; which++) {
        face_cfg c = {which, {N, 0.1, 10}, t};
        gc_input in = {2, {B, N}, x, 1};
        ck_assert_double_lt(gc_check(face_graph, 1, &in, &c, 1e-6), 1e-6);
        ck_assert_double_lt(gc_check_f32(face_graph, 1, &in, &c), 1e-4);
    }
    /* the tensor faces give the plain-array values */
    da_ctx *ctx = da_ctx_new();
    int shape[2] = {B, N};
    da_sinkhorn_cfg cfg = {N, 0.1, 10};
    double P[B * N * N], r[B * N], loss;
    da_tensor *xt = da_ctx_tensor_from(ctx, DA_F64, 2, shape, x);
    da_tensor *Pt = da_sinkhorn_P(ctx, xt, &cfg), *rt = da_sinkhorn_soft_rank(ctx, xt, &cfg);
    da_tensor *lt = da_sinkhorn(ctx, xt, t, &cfg);
    ck_assert(Pt && rt && lt);
    ck_assert_int_eq(Pt->ndim, 3);
    ck_assert_int_eq(da_sinkhorn_sort(&cfg, B, x, P, NULL, r, NULL, NULL, NULL, NULL), 0);
    ck_assert_int_eq(da_sinkhorn_loss(&cfg, B, x, t, &loss, NULL), 0);
    for (int k = 0; k < B * N * N; k++)
        ck_assert_double_eq(da_get(Pt, k), P[k]);
    for (int k = 0; k < B * N; k++)
        ck_assert_double_eq(da_get(rt, k), r[k]);
    ck_assert_double_eq(da_get(lt, 0), loss);
    da_ctx_free(ctx);
}
END_TEST

/* ---- ties and equal inputs ---- */

START_TEST(test_ties)
{
    enum { N = 5 };
    double tied[N] = {0.5, -1, 0.5, 2, -1}, same[N] = {1.5, 1.5, 1.5, 1.5, 1.5};
    double P[N * N], s[N], r[N], cP[N * N], cs[N], cr[N], g[N];
    gc_random(cP, N * N, 81, -1, 1);
    gc_random(cs, N, 82, -1, 1);
    gc_random(cr, N, 83, -1, 1);
    da_sinkhorn_cfg cfg = {N, 0.01, 50};
    const double *inputs[2] = {tied, same};
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(da_sinkhorn_sort(&cfg, 1, inputs[k], P, s, r, cP, cs, cr, g), DA_OK);
        ck_assert(da_all_finite(P, N * N) && da_all_finite(s, N) && da_all_finite(r, N));
        ck_assert(da_all_finite(g, N));
    }
    /* equal inputs: equal rows of P, every rank the mean rank, sorted values = input */
    for (int i = 0; i < N; i++) {
        ck_assert_double_eq_tol(r[i], (N + 1) / 2.0, 1e-9);
        ck_assert_double_eq_tol(s[i], 1.5, 1e-12);
    }
    ck_assert_int_eq(da_sinkhorn_sort(&cfg, 1, tied, NULL, NULL, r, NULL, NULL, NULL, NULL), 0);
    ck_assert_double_eq_tol(r[0], r[2], 1e-12);
    ck_assert_double_eq_tol(r[1], r[4], 1e-12);
}
END_TEST

/* ---- the scaling domain against the log domain ---- */

static double rel_err(const double *a, const double *b, long n)
{
    double d = 0, m = 1e-300;
    for (long i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        m = fmax(m, fmax(fabs(a[i]), fabs(b[i])));
    }
    return d / m;
}

/* every output, VJP, loss and loss gradient of the public entry points (scaling domain
 * where safe) equals the log-domain computation to 1e-12 (normwise relative); rows with
 * an outlier at small epsilon stay in the log domain (bitwise equal) */
START_TEST(test_scaling_domain)
{
    enum { B = 3, MAXN = 70 };
    static const int ns[] = {2, 3, 5, 16, 17, 40, 70, 6, 9};
    static const double eps[] = {0.5, 0.1, 0.05, 0.1, 0.02, 0.01, 0.1, 0.01, 0.005};
    static const int iters[] = {3, 50, 20, 50, 30, 2000, 10, 500, 40};
    static double x[B * MAXN], t[B * MAXN], P[2][B * MAXN * MAXN], s[2][B * MAXN];
    static double r[2][B * MAXN], cP[B * MAXN * MAXN], cs[B * MAXN], cr[B * MAXN];
    static double g[2][B * MAXN], lg[2][B * MAXN];
    for (int c = 0; c < 9; c++) {
        int n = ns[c];
        long m = (long)B * n;
        da_sinkhorn_cfg cfg = {n, eps[c], iters[c]};
        gc_random(x, m, 90 + c, -2, 2);
        gc_random(t, m, 190 + c, -2, 2);
        gc_random(cP, m * n, 290 + c, -1, 1);
        gc_random(cs, m, 390 + c, -1, 1);
        gc_random(cr, m, 490 + c, -1, 1);
        x[n - 1] = 40; /* an outlier in row 0 */
        double loss[2];
        ck_assert_int_eq(da_sinkhorn_sort(&cfg, B, x, P[0], s[0], r[0], cP, cs, cr, g[0]), 0);
        ck_assert_int_eq(da_sinkhorn_sort_log_domain(&cfg, B, x, P[1], s[1], r[1], cP, cs, cr,
                                                     g[1]), 0);
        ck_assert_int_eq(da_sinkhorn_loss(&cfg, B, x, t, &loss[0], lg[0]), 0);
        ck_assert_int_eq(da_sinkhorn_loss_log_domain(&cfg, B, x, t, &loss[1], lg[1]), 0);
        /* the BCE amplifies rounding in P by 1/(1 - P): near-hard P gets 1e-9 */
        double pmax = 0;
        for (long k = 0; k < m * n; k++)
            pmax = fmax(pmax, P[1][k]);
        double ltol = pmax < 1 - 1e-3 ? 1e-12 : 1e-9;
        double e[6] = {rel_err(P[0], P[1], m * n), rel_err(s[0], s[1], m),
                       rel_err(r[0], r[1], m), rel_err(g[0], g[1], m),
                       fabs(loss[0] - loss[1]) / loss[1] / ltol * 1e-12,
                       rel_err(lg[0], lg[1], m) / ltol * 1e-12};
        if (n == 2) /* P is constant: the gradients are rounding noise of size 1e-17 */
            e[3] = e[5] = 0;
        for (int k = 0; k < 6; k++)
            ck_assert_msg(e[k] < 1e-12, "n=%d eps=%g iters=%d: output %d differs by %g", n,
                          eps[c], iters[c], k, e[k]);
        ck_assert(da_all_finite(g[0], m) && da_all_finite(lg[0], m));
        if (eps[c] == 0.005) /* every row: C / eps > 100 somewhere, the log domain */
            ck_assert_int_eq(memcmp(P[0], P[1], (size_t)m * n * sizeof(double)), 0);
    }
}
END_TEST

/* ---- errors ---- */

START_TEST(test_errors)
{
    double x[4] = {1, 2, 3, 4}, s[4], g[4], c[4] = {1, 0, 0, 0}, loss, t[4] = {1, 2, 3, 4};
    double bad[4] = {1, NAN, 3, 4}, inf[4] = {1, INFINITY, 3, 4};
    da_sinkhorn_cfg ok = {4, 0.1, 5};
    da_sinkhorn_cfg c_eps0 = {4, 0, 5}, c_epsneg = {4, -1, 5}, c_epsnan = {4, NAN, 5};
    da_sinkhorn_cfg c_it0 = {4, 0.1, 0}, c_itbig = {4, 0.1, DA_SINKHORN_MAX_ITER + 1};
    da_sinkhorn_cfg c_n1 = {1, 0.1, 5}, c_nbig = {DA_SINKHORN_MAX_N + 1, 0.1, 5};
    ck_assert_int_eq(da_sinkhorn_sort(&c_eps0, 1, x, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ERANGE);
    ck_assert(strstr(da_last_error(), "epsilon") != NULL);
    ck_assert_int_eq(da_sinkhorn_sort(&c_epsneg, 1, x, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ERANGE);
    da_sinkhorn_cfg c_epstiny = {4, DA_SINKHORN_MIN_EPS / 2, 5}, c_epsinf = {4, INFINITY, 5};
    ck_assert_int_eq(da_sinkhorn_sort(&c_epstiny, 1, x, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ERANGE);
    ck_assert_int_eq(da_sinkhorn_sort(&c_epsinf, 1, x, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ERANGE);
    ck_assert_int_eq(da_sinkhorn_sort(&c_epsnan, 1, x, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ENAN);
    ck_assert_int_eq(da_sinkhorn_sort(&c_it0, 1, x, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ERANGE);
    ck_assert(strstr(da_last_error(), "iterations") != NULL);
    ck_assert_int_eq(da_sinkhorn_sort(&c_itbig, 1, x, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ERANGE);
    ck_assert_int_eq(da_sinkhorn_sort(&c_n1, 1, x, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ERANGE);
    ck_assert_int_eq(da_sinkhorn_sort(&c_nbig, 1, x, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ERANGE);
    ck_assert_int_eq(da_sinkhorn_sort(&ok, 0, x, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ERANGE);
    ck_assert_int_eq(da_sinkhorn_sort(NULL, 1, x, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_EINVAL);
    ck_assert_int_eq(da_sinkhorn_sort(&ok, 1, NULL, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_EINVAL);
    ck_assert_int_eq(da_sinkhorn_sort(&ok, 1, x, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                     DA_EINVAL);
    ck_assert_int_eq(da_sinkhorn_sort(&ok, 1, x, NULL, s, NULL, NULL, c, NULL, NULL),
                     DA_EINVAL);
    ck_assert_int_eq(da_sinkhorn_sort(&ok, 1, x, NULL, s, NULL, NULL, NULL, NULL, g),
                     DA_EINVAL);
    ck_assert_int_eq(da_sinkhorn_sort(&ok, 1, bad, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ENAN);
    ck_assert_int_eq(da_sinkhorn_sort(&ok, 1, inf, NULL, s, NULL, NULL, NULL, NULL, NULL),
                     DA_ENAN);
    ck_assert_int_eq(da_sinkhorn_sort(&ok, 1, x, NULL, s, NULL, NULL, NULL, bad, g), DA_ENAN);
    ck_assert_int_eq(da_sinkhorn_sort(&ok, 1, x, NULL, s, NULL, NULL, c, NULL, g), DA_OK);

    ck_assert_int_eq(da_sinkhorn_loss(NULL, 1, x, t, &loss, g), DA_EINVAL);
    ck_assert_int_eq(da_sinkhorn_loss(&c_eps0, 1, x, t, &loss, g), DA_ERANGE);
    ck_assert_int_eq(da_sinkhorn_loss(&ok, 1, x, NULL, &loss, g), DA_EINVAL);
    ck_assert_int_eq(da_sinkhorn_loss(&ok, 1, x, t, NULL, g), DA_EINVAL);
    ck_assert_int_eq(da_sinkhorn_loss(&ok, 1, x, bad, &loss, g), DA_ENAN);
    ck_assert_int_eq(da_sinkhorn_loss(&ok, 1, inf, t, &loss, g), DA_ENAN);

    da_ctx *ctx = da_ctx_new();
    int s1[1] = {4}, s2[2] = {1, 4}, s2b[2] = {2, 2};
    da_tensor *x1 = da_ctx_tensor_from(ctx, DA_F64, 1, s1, x);
    da_tensor *x2 = da_ctx_tensor_from(ctx, DA_F64, 2, s2, x);
    da_tensor *x2b = da_ctx_tensor_from(ctx, DA_F64, 2, s2b, x);
    da_tensor *xn = da_ctx_tensor_from(ctx, DA_F64, 2, s2, bad);
    ck_assert_ptr_null(da_sinkhorn_P(NULL, x2, &ok));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_sinkhorn_P(ctx, x1, &ok));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_sinkhorn_soft_sort(ctx, x2b, &ok));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_sinkhorn_soft_rank(ctx, x2, &c_it0));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_sinkhorn_soft_rank(ctx, xn, &ok));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_sinkhorn(ctx, x2, NULL, &ok));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_sinkhorn(ctx, x2, t, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_nonnull(da_sinkhorn(ctx, x2, t, &ok));
    da_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sinkhorn");
    TCase *tc = tcase_create("sinkhorn");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_vjp_finite_differences);
    tcase_add_test(tc, test_consistency);
    tcase_add_test(tc, test_marginals);
    tcase_add_test(tc, test_hard_limit);
    tcase_add_test(tc, test_loss);
    tcase_add_test(tc, test_tensor_faces);
    tcase_add_test(tc, test_ties);
    tcase_add_test(tc, test_scaling_domain);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
