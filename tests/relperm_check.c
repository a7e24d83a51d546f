/* relperm_check.c - the checks declared in relperm_check.h. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "diffalg.h"
#include "gradcheck.h"
#include "ranking_metrics.h"
#include "refs.h"
#include "relperm_check.h"
#include "softsort.h"
#include "suite_run.h"

static double *alloc_doubles(long n)
{
    double *p = calloc((size_t)n, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static double max_abs(const double *a, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

/* max|a - b| / max(max|a|, max|b|) */
static double sym_rel_err(const double *a, const double *b, long n)
{
    double d = 0;
    for (long i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i]));
    return d / fmax(fmax(max_abs(a, n), max_abs(b, n)), 1e-300);
}

static double dot(const double *a, const double *b, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static int all_finite(const double *a, long n)
{
    for (long i = 0; i < n; i++)
        if (!isfinite(a[i]))
            return 0;
    return 1;
}

/* ---- reference vectors ---- */

static void check_one_ref(const rp_ops *ops, const char *path)
{
    const char *err = NULL;
    ref_file *r = ref_load(path, &err);
    ck_assert_msg(r != NULL, "%s", err);
    int n = (int)ref_param_num(r, "n", -1), batch = (int)ref_param_num(r, "batch", -1);
    double tau = ref_param_num(r, "tau", NAN);
    const ref_tensor *x = ref_get(r, "x"), *Pr = ref_get(r, "P"), *Wr = ref_get(r, "W");
    const ref_tensor *L = ref_get(r, "loss"), *G = ref_get(r, "grad_x");
    ck_assert(x && Pr && Wr && L && G && n >= 2 && batch >= 1);
    long nn = (long)batch * n * n;
    ck_assert_int_eq(Pr->size, nn);
    ck_assert_int_eq(x->size, (long)batch * n);
    ck_assert_str_eq(ref_param(r, "orientation"), ops->ref_desc_rows
                                                      ? "row_is_position_descending"
                                                      : "col_is_position_ascending");
    double *Pref = alloc_doubles(nn), *W = alloc_doubles(nn), *P = alloc_doubles(nn);
    double *g = alloc_doubles((long)batch * n);
    if (ops->ref_desc_rows) {
        ck_assert_int_eq(da_perm_desc_rows_to_diffalg(batch, n, Pr->data, Pref), DA_OK);
        ck_assert_int_eq(da_perm_desc_rows_to_diffalg(batch, n, Wr->data, W), DA_OK);
    } else {
        memcpy(Pref, Pr->data, (size_t)nn * sizeof *Pref);
        memcpy(W, Wr->data, (size_t)nn * sizeof *W);
    }
    ck_assert_int_eq(ops->apply(n, tau, batch, x->data, P, W, g), DA_OK);
    double loss = dot(P, W, nn);
    ck_assert_msg(ref_err(P, Pref, nn) < 1e-9, "%s: P err %g", path, ref_err(P, Pref, nn));
    ck_assert_msg(ref_err(&loss, L->data, 1) < 1e-6, "%s: loss %.17g", path, loss);
    ck_assert_msg(ref_err(g, G->data, G->size) < 1e-6, "%s: grad err %g", path,
                  ref_err(g, G->data, G->size));

    /* the same through the tensor face of the operator */
    da_ctx *ctx = da_ctx_new();
    int shape[2] = {batch, n};
    da_tensor *s = da_ctx_tensor_from(ctx, DA_F64, 2, shape, x->data);
    s->requires_grad = 1;
    da_tensor *Pt = ops->perm_op(ctx, s, n, tau);
    ck_assert_ptr_nonnull(Pt);
    ck_assert_int_eq(Pt->ndim, 3);
    ck_assert_int_eq(da_backward_from(ctx, Pt, W), DA_OK);
    ck_assert(ref_err(Pt->data, Pref, nn) < 1e-9);
    ck_assert(ref_err(s->grad, G->data, G->size) < 1e-6);
    da_ctx_free(ctx);
    free(Pref);
    free(W);
    free(P);
    free(g);
    ref_free(r);
}

void rp_check_refs(const rp_ops *ops)
{
    char **paths;
    int count = ref_list(ops->ref_kind, &paths);
    ck_assert_int_gt(count, 0);
    for (int f = 0; f < count; f++)
        check_one_ref(ops, paths[f]);
    ref_list_free(paths, count);
}

/* ---- operator: stochasticity and VJP ---- */

static double contracted(const rp_ops *ops, int n, double tau, int batch, const double *x,
                         const double *W, double *P)
{
    ck_assert_int_eq(ops->apply(n, tau, batch, x, P, NULL, NULL), DA_OK);
    return dot(P, W, (long)batch * n * n);
}

void rp_check_vjp_fd(const rp_ops *ops, int n, double tau, int batch)
{
    long m = (long)batch * n, nn = m * n;
    double *x = alloc_doubles(m), *W = alloc_doubles(nn), *P = alloc_doubles(nn);
    double *g = alloc_doubles(m), *fd = alloc_doubles(m);
    gc_random(x, m, 100 + n, -2, 2);
    gc_random(W, nn, 200 + n, -1, 1);
    ck_assert_int_eq(ops->apply(n, tau, batch, x, P, W, g), DA_OK);
    for (int b = 0; b < batch; b++)
        for (int j = 0; j < n; j++) {
            double col = 0;
            for (int i = 0; i < n; i++) {
                double p = P[(long)b * n * n + (long)i * n + j];
                ck_assert(p >= 0 && p <= 1);
                col += p;
            }
            ck_assert_double_eq_tol(col, 1.0, 1e-12);
        }
    double h = 1e-5 * tau;
    for (long k = 0; k < m; k++) {
        double x0 = x[k];
        x[k] = x0 + h;
        double fp = contracted(ops, n, tau, batch, x, W, P);
        x[k] = x0 - h;
        double fm = contracted(ops, n, tau, batch, x, W, P);
        x[k] = x0;
        fd[k] = (fp - fm) / (2 * h);
    }
    ck_assert_msg(sym_rel_err(g, fd, m) < 1e-6, "%s n=%d tau=%g: VJP vs FD %g", ops->name, n,
                  tau, sym_rel_err(g, fd, m));
    /* grad only, no P */
    double *g2 = alloc_doubles(m);
    ck_assert_int_eq(ops->apply(n, tau, batch, x, NULL, W, g2), DA_OK);
    ck_assert_int_eq(memcmp(g, g2, (size_t)m * sizeof *g), 0);
    free(g2);
    free(x);
    free(W);
    free(P);
    free(g);
    free(fd);
}

/* ---- the ranking loss ---- */

static double loss_at(const rp_ops *ops, int n, double tau, int batch, const double *x,
                      const double *t)
{
    double l;
    ck_assert_int_eq(ops->loss(n, tau, batch, x, t, &l, NULL), DA_OK);
    return l;
}

/* -(1/(batch n)) sum_b sum_j log P[b][t_j][j], from the operator's P */
static double ce_from_P(const rp_ops *ops, int n, double tau, int batch, const double *x,
                        const double *t)
{
    long nn = (long)n * n;
    double *P = alloc_doubles(batch * nn), s = 0;
    int *order = malloc(2 * (size_t)n * sizeof *order);
    ck_assert_ptr_nonnull(order);
    ck_assert_int_eq(ops->apply(n, tau, batch, x, P, NULL, NULL), DA_OK);
    for (int b = 0; b < batch; b++) {
        da_rank_argsort(n, t + (long)b * n, order, order + n);
        for (int j = 0; j < n; j++)
            s -= log(P[b * nn + (long)order[j] * n + j]);
    }
    free(P);
    free(order);
    return s / ((double)batch * n);
}

void rp_check_loss(const rp_ops *ops, int n, double tau, int batch)
{
    long m = (long)batch * n;
    double *x = alloc_doubles(m), *t = alloc_doubles(m), *g = alloc_doubles(m);
    double *fd = alloc_doubles(m), loss;
    gc_random(x, m, 300 + n, -2, 2);
    gc_random(t, m, 400 + n, 0, 1);
    ck_assert_int_eq(ops->loss(n, tau, batch, x, t, &loss, g), DA_OK);
    double ce = ce_from_P(ops, n, tau, batch, x, t);
    ck_assert_msg(fabs(loss - ce) <= 1e-10 * fmax(1, fabs(ce)), "loss %.17g vs CE %.17g",
                  loss, ce);
    ck_assert_double_eq(loss_at(ops, n, tau, batch, x, t), loss);
    double h = 1e-5 * tau;
    for (long k = 0; k < m; k++) {
        double x0 = x[k];
        x[k] = x0 + h;
        double fp = loss_at(ops, n, tau, batch, x, t);
        x[k] = x0 - h;
        double fm = loss_at(ops, n, tau, batch, x, t);
        x[k] = x0;
        fd[k] = (fp - fm) / (2 * h);
    }
    ck_assert_msg(sym_rel_err(g, fd, m) < 1e-6, "%s n=%d tau=%g: loss grad vs FD %g",
                  ops->name, n, tau, sym_rel_err(g, fd, m));
    /* scores in the target order (gaps >= 1): the relaxation is nearly hard at small tau */
    ck_assert_int_ne(n % 7, 0);
    for (long k = 0; k < m; k++) {
        t[k] = (double)((k * 7) % n);
        x[k] = 0.5 * t[k];
    }
    double good = loss_at(ops, n, 0.01, batch, x, t);
    ck_assert_msg(good < 1e-12, "ordered scores: loss %g", good);
    for (long k = 0; k < m; k++)
        x[k] = -x[k];
    ck_assert_double_gt(loss_at(ops, n, 0.01, batch, x, t), 1.0);
    free(x);
    free(t);
    free(g);
    free(fd);
}

/* the fused loss against the operator: the column CE of P, and the VJP of
 * cot = -Q / (batch n P), whose column-softmax VJP is (P - Q) / (batch n), i.e. the loss
 * gradient built from P. Targets are x plus noise of size `mix` (so P at the true
 * positions stays far from underflow even where P is nearly hard), and two elements of
 * every sample are tied. */
void rp_check_loss_vs_operator(const rp_ops *ops, int n, double tau, int batch, double mix)
{
    long m = (long)batch * n, nn = (long)n * n;
    double *x = alloc_doubles(m), *t = alloc_doubles(m), *g = alloc_doubles(m);
    double *gop = alloc_doubles(m), *P = alloc_doubles(batch * nn);
    double *cot = alloc_doubles(batch * nn);
    int *order = malloc(2 * (size_t)n * sizeof *order);
    ck_assert_ptr_nonnull(order);
    gc_random(x, m, 500 + n, -2, 2);
    gc_random(t, m, 600 + n, -mix, mix);
    for (int b = 0; b < batch; b++)
        x[(long)b * n + 3 % n] = x[(long)b * n + 1];
    for (long k = 0; k < m; k++)
        t[k] += x[k];
    double loss, ce = 0;
    ck_assert_int_eq(ops->loss(n, tau, batch, x, t, &loss, g), DA_OK);
    ck_assert_int_eq(ops->apply(n, tau, batch, x, P, NULL, NULL), DA_OK);
    for (int b = 0; b < batch; b++) {
        da_rank_argsort(n, t + (long)b * n, order, order + n);
        for (int j = 0; j < n; j++) {
            long at = b * nn + (long)order[j] * n + j;
            ck_assert_double_gt(P[at], 1e-300);
            ce -= log(P[at]);
            cot[at] = -1.0 / ((double)batch * n * P[at]);
        }
    }
    ce /= (double)batch * n;
    ck_assert_msg(fabs(loss - ce) <= 1e-11 * fmax(1, fabs(ce)), "%s n=%d tau=%g: loss %.17g "
                  "vs CE of P %.17g", ops->name, n, tau, loss, ce);
    ck_assert_int_eq(ops->apply(n, tau, batch, x, NULL, cot, gop), DA_OK);
    ck_assert_msg(sym_rel_err(g, gop, m) < 1e-11, "%s n=%d tau=%g: loss grad vs VJP %g",
                  ops->name, n, tau, sym_rel_err(g, gop, m));
    free(x);
    free(t);
    free(g);
    free(gop);
    free(P);
    free(cot);
    free(order);
}

/* ---- second order ---- */
typedef struct {
    const rp_ops *ops;
    int n;
    double tau;
    const double *targets;
} face_user;

static da_tensor *loss_of_z(da_ctx *ctx, da_tensor *z, void *user)
{
    const face_user *u = user;
    return u->ops->loss_op(ctx, z, u->targets, u->n, u->tau);
}

static int copy_fwd(da_custom_args *a, double *out)
{
    memcpy(out, a->in_data[0], (size_t)a->in[0]->size * sizeof *out);
    return DA_OK;
}

static int copy_bwd(da_custom_args *a, const double *og, double *const *ig)
{
    for (long i = 0; i < a->in[0]->size; i++)
        ig[0][i] += og[i];
    return DA_OK;
}

/* the loss behind an identity node without hvp: da_hessian must use finite differences */
static da_tensor *loss_of_copy(da_ctx *ctx, da_tensor *z, void *user)
{
    da_tensor *c = da_op_custom(ctx, "copy", &z, 1, z->ndim, z->shape, copy_fwd, copy_bwd,
                                NULL, NULL);
    return loss_of_z(ctx, c, user);
}

/* H [batch][n][n] (plain) against the full m x m Hessian of da_hessian */
static void compare_blocks(const double *H, const double *Hfull, int n, int batch, double tol)
{
    long m = (long)batch * n;
    double scale = max_abs(H, m * n);
    for (long r = 0; r < m; r++)
        for (long c = 0; c < m; c++) {
            double want = r / n == c / n ? H[(r / n) * n * n + (r % n) * n + c % n] : 0.0;
            ck_assert_msg(fabs(Hfull[r * m + c] - want) <= tol * scale,
                          "H[%ld][%ld] %.17g vs %.17g", r, c, Hfull[r * m + c], want);
        }
}

void rp_check_hessian(const rp_ops *ops, int n, double tau, int batch)
{
    long m = (long)batch * n;
    double *x = alloc_doubles(m), *t = alloc_doubles(m), *H = alloc_doubles(m * n);
    double *gp = alloc_doubles(m), *gm = alloc_doubles(m), *Hfd = alloc_doubles(m * n);
    double *Hfull = alloc_doubles(m * m), loss;
    gc_random(x, m, 500 + n, -2, 2);
    gc_random(t, m, 600 + n, 0, 1);
    ck_assert_int_eq(ops->hessian(n, tau, batch, x, t, H), DA_OK);
    double h = 1e-5 * tau;
    for (int b = 0; b < batch; b++)
        for (int c = 0; c < n; c++) {
            long k = (long)b * n + c;
            double x0 = x[k];
            x[k] = x0 + h;
            ck_assert_int_eq(ops->loss(n, tau, batch, x, t, &loss, gp), DA_OK);
            x[k] = x0 - h;
            ck_assert_int_eq(ops->loss(n, tau, batch, x, t, &loss, gm), DA_OK);
            x[k] = x0;
            for (long r = 0; r < m; r++) {
                if (r / n != b) { /* other samples do not depend on x[b] */
                    ck_assert_double_eq(gp[r], gm[r]);
                    continue;
                }
                Hfd[(long)b * n * n + (r % n) * n + c] = (gp[r] - gm[r]) / (2 * h);
            }
        }
    ck_assert_msg(sym_rel_err(H, Hfd, m * n) < 1e-6, "%s n=%d tau=%g: Hessian vs FD %g",
                  ops->name, n, tau, sym_rel_err(H, Hfd, m * n));
    double scale = max_abs(H, m * n), v[64];
    ck_assert_int_le(n, 64);
    for (int b = 0; b < batch; b++) {
        const double *Hb = H + (long)b * n * n;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                ck_assert(fabs(Hb[i * n + j] - Hb[j * n + i]) <= 1e-12 * scale);
        gc_random(v, n, 700 + b, -1, 1); /* positive semi-definite */
        double q = 0;
        for (int i = 0; i < n; i++)
            q += v[i] * dot(Hb + i * n, v, n);
        ck_assert(q >= -1e-12 * scale);
    }
    /* da_hessian on the tensor face, flattened batch: exact path and FD path */
    face_user u = {ops, n, tau, t};
    da_ctx *ctx = da_ctx_new();
    da_hessian_method method;
    ck_assert_int_eq(da_hessian(ctx, loss_of_z, &u, (int)m, x, Hfull, &method), DA_OK);
    ck_assert_int_eq(method, DA_HESSIAN_EXACT);
    compare_blocks(H, Hfull, n, batch, 1e-12);
    ck_assert_int_eq(da_hessian(ctx, loss_of_copy, &u, (int)m, x, Hfull, &method), DA_OK);
    ck_assert_int_eq(method, DA_HESSIAN_FINITE_DIFF);
    compare_blocks(H, Hfull, n, batch, 1e-6);
    da_ctx_free(ctx);
    free(x);
    free(t);
    free(H);
    free(gp);
    free(gm);
    free(Hfd);
    free(Hfull);
}

/* ---- tensor faces through the gradcheck helper ---- */

static da_tensor *loss_face(da_ctx *ctx, da_tensor **in, void *user)
{
    return loss_of_z(ctx, in[0], user);
}

static da_tensor *perm_face(da_ctx *ctx, da_tensor **in, void *user)
{
    const face_user *u = user;
    return u->ops->perm_op(ctx, in[0], u->n, u->tau);
}

void rp_check_tensor_faces(const rp_ops *ops, int n, double tau, int batch)
{
    long m = (long)batch * n;
    double *x = alloc_doubles(m), *t = alloc_doubles(m);
    gc_random(x, m, 800 + n, -2, 2);
    gc_random(t, m, 900 + n, 0, 1);
    face_user u = {ops, n, tau, t};
    gc_input in2 = {2, {batch, n}, x, 1}, in1 = {1, {(int)m}, x, 1};
    double e;
    ck_assert_msg((e = gc_check(loss_face, 1, &in2, &u, 1e-6)) < 1e-6, "loss face %g", e);
    ck_assert_msg((e = gc_check(loss_face, 1, &in1, &u, 1e-6)) < 1e-6, "1-D loss face %g", e);
    ck_assert_msg((e = gc_check(perm_face, 1, &in2, &u, 1e-6)) < 1e-6, "perm face %g", e);
    ck_assert_msg((e = gc_check_f32(loss_face, 1, &in2, &u)) < 1e-4, "f32 loss face %g", e);
    ck_assert_msg((e = gc_check_f32(perm_face, 1, &in2, &u)) < 1e-4, "f32 perm face %g", e);
    free(x);
    free(t);
}

/* ---- determinism across thread counts ---- */

static void run_all(const rp_ops *ops, int n, double tau, int batch, const double *x,
                    const double *t, const double *W, double *out)
{
    long m = (long)batch * n, nn = m * n;
    /* out: P [nn], VJP [m], loss [1], loss grad [m], Hessian [nn] */
    ck_assert_int_eq(ops->apply(n, tau, batch, x, out, W, out + nn), DA_OK);
    ck_assert_int_eq(ops->loss(n, tau, batch, x, t, out + nn + m, out + nn + m + 1), DA_OK);
    ck_assert_int_eq(ops->hessian(n, tau, batch, x, t, out + nn + 2 * m + 1), DA_OK);
}

void rp_check_batch_consistency(const rp_ops *ops, int n, double tau, int batch)
{
    long m = (long)batch * n, nn = m * n, total = 2 * nn + 2 * m + 1;
    double *x = alloc_doubles(m), *t = alloc_doubles(m), *W = alloc_doubles(nn);
    double *one = alloc_doubles(total), *two = alloc_doubles(total);
    gc_random(x, m, 1000 + n, -3, 3);
    gc_random(t, m, 1100 + n, 0, 1);
    gc_random(W, nn, 1200 + n, -1, 1);
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    run_all(ops, n, tau, batch, x, t, W, one);
    omp_set_num_threads(3);
    run_all(ops, n, tau, batch, x, t, W, two);
    omp_set_num_threads(saved);
#else
    run_all(ops, n, tau, batch, x, t, W, one);
    run_all(ops, n, tau, batch, x, t, W, two);
#endif
    ck_assert_int_eq(memcmp(one, two, (size_t)total * sizeof *one), 0);
    /* sample b alone gives the same P and VJP bit for bit */
    double *P1 = alloc_doubles((long)n * n), *g1 = alloc_doubles(n);
    for (int b = 0; b < batch; b += 7) {
        ck_assert_int_eq(ops->apply(n, tau, 1, x + (long)b * n, P1, W + (long)b * n * n, g1),
                         DA_OK);
        ck_assert_int_eq(memcmp(P1, one + (long)b * n * n, (size_t)n * n * sizeof *P1), 0);
        ck_assert_int_eq(memcmp(g1, one + nn + (long)b * n, (size_t)n * sizeof *g1), 0);
    }
    free(P1);
    free(g1);
    free(x);
    free(t);
    free(W);
    free(one);
    free(two);
}

/* ---- ties ---- */

void rp_check_ties(const rp_ops *ops)
{
    enum { N = 5 };
    double x[N] = {0.3, 0.3, -1.0, 0.3, 2.0}, t[N] = {1, 2, 3, 4, 5};
    double W[N * N], P[N * N], g[N], H[N * N], loss;
    gc_random(W, N * N, 1300, -1, 1);
    for (double tau = 0.05; tau < 2; tau *= 4) {
        ck_assert_int_eq(ops->apply(N, tau, 1, x, P, W, g), DA_OK);
        ck_assert(all_finite(P, N * N) && all_finite(g, N));
        ck_assert_int_eq(ops->loss(N, tau, 1, x, t, &loss, g), DA_OK);
        ck_assert(isfinite(loss) && all_finite(g, N));
        ck_assert_int_eq(ops->hessian(N, tau, 1, x, t, H), DA_OK);
        ck_assert(all_finite(H, N * N));
    }
    /* all equal: every column is uniform and the loss is log n */
    double c[4] = {1.5, 1.5, 1.5, 1.5}, tc[4] = {3, 1, 2, 0}, Pc[16], gc[4], Hc[16];
    ck_assert_int_eq(ops->apply(4, 0.1, 1, c, Pc, NULL, NULL), DA_OK);
    for (int i = 0; i < 16; i++)
        ck_assert_double_eq_tol(Pc[i], 0.25, 1e-15);
    ck_assert_int_eq(ops->loss(4, 0.1, 1, c, tc, &loss, gc), DA_OK);
    ck_assert_double_eq_tol(loss, log(4.0), 1e-12);
    ck_assert(all_finite(gc, 4));
    ck_assert_int_eq(ops->hessian(4, 0.1, 1, c, tc, Hc), DA_OK);
    ck_assert(all_finite(Hc, 16));
}

/* ---- error paths ---- */

static void expect_error(int rc, int code, const rp_ops *ops)
{
    ck_assert_int_eq(rc, code);
    ck_assert_int_eq(da_last_error_code(), code);
    ck_assert_msg(strstr(da_last_error(), ops->name) != NULL, "message '%s'", da_last_error());
    da_clear_error();
}

static void expect_null(const da_tensor *t, int code, const rp_ops *ops)
{
    ck_assert_ptr_null(t);
    expect_error(da_last_error_code(), code, ops);
}

void rp_check_errors(const rp_ops *ops)
{
    double x[6] = {0.1, -0.4, 0.7, 1.2, -2, 0.3}, t[6] = {1, 2, 3, 4, 5, 6};
    double P[72], W[72] = {0}, g[6], H[72], loss;
    /* temperature */
    expect_error(ops->apply(3, 0.0, 2, x, P, NULL, NULL), DA_ERANGE, ops);
    expect_error(ops->apply(3, -1.0, 2, x, P, NULL, NULL), DA_ERANGE, ops);
    expect_error(ops->apply(3, INFINITY, 2, x, P, NULL, NULL), DA_ERANGE, ops);
    expect_error(ops->loss(3, NAN, 2, x, t, &loss, g), DA_ENAN, ops);
    expect_error(ops->hessian(3, -0.5, 2, x, t, H), DA_ERANGE, ops);
    /* sizes */
    expect_error(ops->apply(1, 1.0, 2, x, P, NULL, NULL), DA_ERANGE, ops);
    expect_error(ops->loss(ops->max_n + 1, 1.0, 1, x, t, &loss, g), DA_ERANGE, ops);
    expect_error(ops->apply(3, 1.0, 0, x, P, NULL, NULL), DA_ERANGE, ops);
    /* NULLs and missing outputs */
    expect_error(ops->apply(3, 1.0, 2, NULL, P, NULL, NULL), DA_EINVAL, ops);
    expect_error(ops->apply(3, 1.0, 2, x, NULL, NULL, NULL), DA_EINVAL, ops);
    expect_error(ops->apply(3, 1.0, 2, x, P, W, NULL), DA_EINVAL, ops);
    expect_error(ops->loss(3, 1.0, 2, x, NULL, &loss, g), DA_EINVAL, ops);
    expect_error(ops->loss(3, 1.0, 2, x, t, NULL, g), DA_EINVAL, ops);
    expect_error(ops->hessian(3, 1.0, 2, x, t, NULL), DA_EINVAL, ops);
    /* NaN / Inf inputs, and logits that would overflow */
    double bad[6] = {0.1, NAN, 0.7, 1.2, -2, 0.3};
    expect_error(ops->apply(3, 1.0, 2, bad, P, NULL, NULL), DA_ENAN, ops);
    bad[1] = INFINITY;
    expect_error(ops->loss(3, 1.0, 2, bad, t, &loss, g), DA_ENAN, ops);
    expect_error(ops->loss(3, 1.0, 2, x, bad, &loss, g), DA_ENAN, ops);
    W[5] = NAN;
    expect_error(ops->apply(3, 1.0, 2, x, P, W, g), DA_ENAN, ops);
    double huge[3] = {1e300, -1e300, 0};
    expect_error(ops->apply(3, 1e-3, 1, huge, P, NULL, NULL), DA_ERANGE, ops);
    /* tensor faces */
    da_ctx *ctx = da_ctx_new();
    int shape[2] = {2, 3}, wrong[2] = {3, 2};
    da_tensor *s = da_ctx_tensor_from(ctx, DA_F64, 2, shape, x);
    da_tensor *sw = da_ctx_tensor_from(ctx, DA_F64, 2, wrong, x);
    expect_null(ops->loss_op(NULL, s, t, 3, 1.0), DA_EINVAL, ops);
    expect_null(ops->loss_op(ctx, NULL, t, 3, 1.0), DA_EINVAL, ops);
    expect_null(ops->loss_op(ctx, s, NULL, 3, 1.0), DA_EINVAL, ops);
    expect_null(ops->perm_op(ctx, sw, 3, 1.0), DA_ESHAPE, ops);
    expect_null(ops->perm_op(ctx, s, 0, 1.0), DA_ERANGE, ops);
    expect_null(ops->loss_op(ctx, s, t, 3, 0.0), DA_ERANGE, ops);
    da_tensor *sn = da_ctx_tensor_from(ctx, DA_F32, 2, shape, bad);
    expect_null(ops->perm_op(ctx, sn, 3, 1.0), DA_ENAN, ops);
    da_ctx_free(ctx);
}

/* ---- the suite both test programs run ---- */

static const rp_ops *suite_ops; /* set by rp_run_suite before the tests run */

START_TEST(std_refs)
{
    rp_check_refs(suite_ops);
}
END_TEST

START_TEST(std_vjp_fd)
{
    rp_check_vjp_fd(suite_ops, 2, 1.0, 3);
    rp_check_vjp_fd(suite_ops, 5, 0.1, 3);
    rp_check_vjp_fd(suite_ops, 8, 0.5, 2);
    rp_check_vjp_fd(suite_ops, 16, 2.0, 2);
}
END_TEST

START_TEST(std_loss)
{
    rp_check_loss(suite_ops, 5, 0.1, 3);
    rp_check_loss(suite_ops, 8, 1.0, 2);
    rp_check_loss(suite_ops, 16, 0.5, 2);
    /* one block of columns (n span / tau <= 150), a few blocks, one column per block */
    static const int ns[] = {2, 3, 7, 64, 64, 64, 200, 300};
    static const double taus[] = {1.0, 0.05, 0.3, 2.0, 0.2, 0.01, 1.0, 3.0};
    for (int c = 0; c < 8; c++)
        rp_check_loss_vs_operator(suite_ops, ns[c], taus[c], 3, 0.3);
}
END_TEST

START_TEST(std_hessian)
{
    rp_check_hessian(suite_ops, 5, 1.0, 3);
    rp_check_hessian(suite_ops, 8, 0.7, 2);
    rp_check_hessian(suite_ops, 4, 0.2, 1);
}
END_TEST

START_TEST(std_tensor_faces)
{
    rp_check_tensor_faces(suite_ops, 5, 1.0, 3);
    rp_check_tensor_faces(suite_ops, 8, 0.3, 2);
}
END_TEST

START_TEST(std_batch_consistency)
{
    rp_check_batch_consistency(suite_ops, 12, 0.5, 40);
}
END_TEST

START_TEST(std_ties)
{
    rp_check_ties(suite_ops);
}
END_TEST

START_TEST(std_errors)
{
    rp_check_errors(suite_ops);
}
END_TEST

int rp_run_suite(const rp_ops *ops, const TTest *const *own, int n_own)
{
    suite_ops = ops;
    Suite *s = suite_create(ops->ref_kind);
    TCase *tc = tcase_create(ops->ref_kind);
    tcase_set_timeout(tc, 60);
    const TTest *std[] = {std_refs,         std_vjp_fd,            std_loss,  std_hessian,
                          std_tensor_faces, std_batch_consistency, std_ties, std_errors};
    for (size_t i = 0; i < sizeof std / sizeof std[0]; i++)
        tcase_add_test(tc, std[i]);
    for (int i = 0; i < n_own; i++)
        tcase_add_test(tc, own[i]);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
