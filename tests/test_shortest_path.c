/* test_shortest_path.c - Dijkstra (refs of blackbox-backprop, Bellman-Ford brute force,
 * tie-breaking), the blackbox gradient and Hamming loss, the relaxed Bellman-Ford of
 * AlgoVision (finite differences, tensor faces, hard limit), perturbed optimizers and the
 * Fenchel-Young loss (closed forms on an enumerable grid), metrics and error paths. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "refs.h"
#include "suite_run.h"

/* ---------------------------------------------------------------- helpers */

/* vertex-weighted Bellman-Ford from src (cost of src included): brute-force reference */
static void bf_dist(int H, int W, const double *c, int src, double *d)
{
    int V = H * W, changed = 1;
    for (int v = 0; v < V; v++)
        d[v] = INFINITY;
    d[src] = c[src];
    while (changed) {
        changed = 0;
        for (int v = 0; v < V; v++) {
            if (isinf(d[v]))
                continue;
            for (int di = -1; di <= 1; di++)
                for (int dj = -1; dj <= 1; dj++) {
                    int i = v / W + di, j = v % W + dj;
                    if ((di || dj) && i >= 0 && i < H && j >= 0 && j < W &&
                        d[v] + c[i * W + j] < d[i * W + j]) {
                        d[i * W + j] = d[v] + c[i * W + j];
                        changed = 1;
                    }
                }
        }
    }
}

/* 1 if the on-path vertices (y > 0.5) connect (0,0) to (H-1,W-1) */
static int is_path(int H, int W, const double *y)
{
    int V = H * W, *stack = malloc(V * sizeof *stack), n = 0, found = 0;
    char *seen = calloc(V, 1);
    if (y[0] > 0.5) {
        stack[n++] = 0;
        seen[0] = 1;
    }
    while (n > 0) {
        int v = stack[--n];
        found |= v == V - 1;
        for (int di = -1; di <= 1; di++)
            for (int dj = -1; dj <= 1; dj++) {
                int i = v / W + di, j = v % W + dj, u = i * W + j;
                if (i >= 0 && i < H && j >= 0 && j < W && !seen[u] && y[u] > 0.5) {
                    seen[u] = 1;
                    stack[n++] = u;
                }
            }
    }
    free(stack);
    free(seen);
    return found;
}

static double dot(const double *a, const double *b, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* symmetric relative error of g against central differences of f at x */
typedef double (*scalar_fn)(const double *x, void *user);

static double fd_err(scalar_fn f, void *user, const double *x, long n, const double *g, double h)
{
    double *xx = malloc(n * sizeof *xx), num = 0, gmax = 0, fmax_ = 0;
    memcpy(xx, x, n * sizeof *xx);
    for (long i = 0; i < n; i++) {
        xx[i] = x[i] + h;
        double fp = f(xx, user);
        xx[i] = x[i] - h;
        double fm = f(xx, user);
        xx[i] = x[i];
        double fd = (fp - fm) / (2 * h);
        num = fmax(num, fabs(fd - g[i]));
        gmax = fmax(gmax, fabs(g[i]));
        fmax_ = fmax(fmax_, fabs(fd));
    }
    free(xx);
    return num / fmax(fmax(gmax, fmax_), 1e-300);
}

/* ---------------------------------------------------------------- refs */

/* the optimal path under c is unique (as a vertex set) and equals y */
static int unique_optimum(int H, int W, const double *c, const double *y)
{
    int V = H * W;
    double *ds = malloc(V * sizeof *ds), *dt = malloc(V * sizeof *dt);
    double *cc = malloc(V * sizeof *cc), *dx = malloc(V * sizeof *dx);
    bf_dist(H, W, c, 0, ds);
    bf_dist(H, W, c, V - 1, dt);
    double opt = ds[V - 1], tol = 1e-9 * fmax(1, opt);
    int unique = 1;
    for (int v = 0; v < V && unique; v++) {
        if (y[v] < 0.5) { /* no optimal path through an off-path vertex */
            unique = ds[v] + dt[v] - c[v] > opt + tol;
        } else if (v != 0 && v != V - 1) { /* no optimal path avoiding an on-path vertex */
            memcpy(cc, c, V * sizeof *cc);
            cc[v] = 1e6;
            bf_dist(H, W, cc, 0, dx);
            unique = dx[V - 1] > opt + tol;
        }
    }
    free(dx);
    free(ds);
    free(dt);
    free(cc);
    return unique;
}

START_TEST(test_refs_blackbox)
{
    char **paths;
    int nf = ref_list("blackbox_sp", &paths), n_clipped = 0, n_unique_clipped = 0;
    ck_assert_int_gt(nf, 0);
    for (int f = 0; f < nf; f++) {
        const char *err;
        ref_file *r = ref_load(paths[f], &err);
        ck_assert_msg(r != NULL, "%s", err);
        const ref_tensor *w = ref_get(r, "w"), *y = ref_get(r, "y"), *go = ref_get(r, "grad_out");
        const ref_tensor *wp = ref_get(r, "w_prime"), *gw = ref_get(r, "grad_w");
        ck_assert(w && y && go && wp && gw);
        int B = w->shape[0], H = w->shape[1], W = w->shape[2], V = H * W;
        double lambda = ref_param_num(r, "lambda", NAN);
        int clipped = (int)ref_param_num(r, "clipped", -1);
        ck_assert_int_eq(B, (int)ref_param_num(r, "batch", 0));
        double *ym = malloc(w->size * sizeof *ym), *g = malloc(w->size * sizeof *g);
        double *yp = malloc(w->size * sizeof *yp), *pc = malloc(B * sizeof *pc);
        ck_assert_int_eq(da_sp_dijkstra(B, H, W, w->data, ym, pc), DA_OK);
        for (long i = 0; i < w->size; i++)
            ck_assert_msg(ym[i] == y->data[i], "%s: y[%ld]", paths[f], i);
        for (int b = 0; b < B; b++)
            ck_assert_double_eq_tol(pc[b], dot(w->data + b * V, y->data + b * V, V), 1e-12);
        ck_assert_int_eq(da_sp_blackbox_grad(B, H, W, w->data, go->data, lambda, g), DA_OK);
        for (long i = 0; i < w->size; i++) /* the perturbed costs, bit for bit */
            ck_assert(fmax(w->data[i] + lambda * go->data[i], 0.0) == wp->data[i]);
        if (clipped == 0) {
            ck_assert_double_lt(ref_err(g, gw->data, w->size), 1e-6);
        } else {
            /* ties may legitimately differ: our y(w') must be optimal under w', and equal
             * to upstream's whenever the optimum is unique */
            n_clipped++;
            ck_assert_int_eq(da_sp_dijkstra(B, H, W, wp->data, yp, pc), DA_OK);
            for (int b = 0; b < B; b++) {
                const double *wb = wp->data + b * V;
                double yref[V], d[V];
                for (int v = 0; v < V; v++) {
                    yref[v] = round(y->data[b * V + v] + lambda * gw->data[b * V + v]);
                    ck_assert_double_eq_tol(g[b * V + v],
                                            -(ym[b * V + v] - yp[b * V + v]) / lambda, 1e-15);
                }
                bf_dist(H, W, wb, 0, d);
                ck_assert(is_path(H, W, yp + b * V));
                ck_assert_double_le(fabs(dot(wb, yp + b * V, V) - d[V - 1]), 1e-9);
                ck_assert_double_le(fabs(dot(wb, yref, V) - d[V - 1]), 1e-9);
                if (unique_optimum(H, W, wb, yref)) {
                    n_unique_clipped++;
                    for (int v = 0; v < V; v++)
                        ck_assert(yp[b * V + v] == yref[v]);
                    ck_assert_double_lt(ref_err(g + b * V, gw->data + b * V, V), 1e-6);
                }
            }
        }
        free(ym);
        free(g);
        free(yp);
        free(pc);
        ref_free(r);
    }
    ck_assert_int_gt(n_clipped, 0);
    ref_list_free(paths, nf);
}
END_TEST

/* ---------------------------------------------------------------- Dijkstra */

START_TEST(test_dijkstra_bruteforce)
{
    static const int shapes[][2] = {{1, 1}, {1, 7}, {6, 1}, {2, 2}, {3, 5}, {7, 7}, {12, 12},
                                    {5, 17}, {32, 32}, {DA_SP_MAX_SIDE, 2}};
    int ns = sizeof shapes / sizeof shapes[0];
    for (int s = 0; s < ns; s++) {
        int H = shapes[s][0], W = shapes[s][1], V = H * W, B = 3;
        double *c = malloc(B * V * sizeof *c), *y = malloc(B * V * sizeof *y), pc[3];
        double *d = malloc(V * sizeof *d), *y1 = malloc(V * sizeof *y1), pc1;
        gc_random(c, B * V, 100 + s, 0.0, 5.0);
        for (int i = 0; i < B * V; i += 7) /* zero-cost vertices too */
            c[i] = 0.0;
        ck_assert_int_eq(da_sp_dijkstra(B, H, W, c, y, pc), DA_OK);
        for (int b = 0; b < B; b++) {
            bf_dist(H, W, c + b * V, 0, d);
            ck_assert_double_le(fabs(pc[b] - d[V - 1]), 1e-12 * fmax(1, d[V - 1]));
            ck_assert_double_le(fabs(dot(c + b * V, y + b * V, V) - pc[b]), 1e-12 * fmax(1, pc[b]));
            ck_assert(is_path(H, W, y + b * V));
            for (int v = 0; v < V; v++)
                ck_assert(y[b * V + v] == 0.0 || y[b * V + v] == 1.0);
            /* batch independence: the same sample alone */
            ck_assert_int_eq(da_sp_dijkstra(1, H, W, c + b * V, y1, &pc1), DA_OK);
            ck_assert(pc1 == pc[b]);
            ck_assert_int_eq(memcmp(y1, y + b * V, V * sizeof *y1), 0);
        }
        free(c);
        free(y);
        free(d);
        free(y1);
    }
}
END_TEST

/* equal-cost paths: blackbox-backprop's order settles (0,1) before (1,1) (heap order
 * (cost,(row,col))), and a strict '<' keeps the first predecessor found */
START_TEST(test_dijkstra_tie_breaking)
{
    double c[6] = {1, 2, 7, 9, 2, 1}, y[6];
    ck_assert_int_eq(da_sp_dijkstra(1, 2, 3, c, y, NULL), DA_OK);
    double want[6] = {1, 1, 0, 0, 0, 1};
    for (int v = 0; v < 6; v++)
        ck_assert(y[v] == want[v]);
    /* 3x3 with a free middle row: five paths of cost 2 (e.g. 00-10-11-22, 00-11-12-22) */
    double c2[9] = {1, 1, 1, 0, 0, 0, 1, 1, 1}, y2[9], p2;
    ck_assert_int_eq(da_sp_dijkstra(1, 3, 3, c2, y2, &p2), DA_OK);
    ck_assert_double_eq(p2, 2.0);
    /* (0,0) sets (1,0) and (1,1) to 1; (1,0) is settled first but its offer to (1,1) is
     * not strictly better; (1,1) sets (2,2) to 2 before (1,2) offers 2 again */
    double want2[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    for (int v = 0; v < 9; v++)
        ck_assert(y2[v] == want2[v]);
}
END_TEST

/* ---------------------------------------------------------------- blackbox faces */

typedef struct {
    const double *target;
} ham_user;

static da_tensor *ham_graph(da_ctx *ctx, da_tensor **in, void *user)
{
    return da_sp_hamming(ctx, in[0], ((ham_user *)user)->target);
}

START_TEST(test_blackbox_faces)
{
    enum { B = 4, H = 9, W = 8, V = H * W };
    double c[B * V], t[B * V], y[B * V], g[B * V], gc_plain[B * V], g2[B * V], loss, loss2;
    gc_random(c, B * V, 7, 1.0, 5.0);
    gc_random(g, B * V, 8, 1.0, 5.0);
    ck_assert_int_eq(da_sp_dijkstra(B, H, W, g, t, NULL), DA_OK); /* target paths */
    da_sp_blackbox_cfg cfg = {20.0};
    ck_assert_int_eq(da_sp_blackbox_loss(&cfg, B, H, W, c, t, &loss, gc_plain), DA_OK);
    /* the same by composition */
    ck_assert_int_eq(da_sp_dijkstra(B, H, W, c, y, NULL), DA_OK);
    ck_assert_int_eq(da_sp_hamming_loss(B, H, W, y, t, &loss2, g), DA_OK);
    ck_assert_double_eq(loss, loss2);
    double ham = 0;
    for (int i = 0; i < B * V; i++)
        ham += fabs(y[i] - t[i]);
    ck_assert_double_eq_tol(loss, ham / B, 1e-12);
    ck_assert_int_eq(da_sp_blackbox_grad(B, H, W, c, g, cfg.lambda, g2), DA_OK);
    for (int i = 0; i < B * V; i++)
        ck_assert(g2[i] == gc_plain[i]);
    /* the gradient is a descent direction: one step with it lowers the Hamming loss */
    double c2[B * V], l3;
    for (int i = 0; i < B * V; i++)
        c2[i] = fmax(c[i] - 40.0 * gc_plain[i], 0.0);
    ck_assert_int_eq(da_sp_blackbox_loss(&cfg, B, H, W, c2, t, &l3, NULL), DA_OK);
    ck_assert_double_lt(l3, loss);
    /* tensor faces, F64 and F32 */
    for (int dt = 0; dt < 2; dt++) {
        da_ctx *ctx = da_ctx_new();
        int shape[3] = {B, H, W};
        da_tensor *ct = da_ctx_tensor_from(ctx, dt ? DA_F32 : DA_F64, 3, shape, c);
        ct->requires_grad = 1;
        da_tensor *l = da_sp_blackbox(ctx, ct, t, &cfg);
        ck_assert_ptr_nonnull(l);
        ck_assert_double_eq_tol(da_get(l, 0), loss, 1e-6);
        ck_assert_int_eq(da_backward(ctx, l), DA_OK);
        for (int i = 0; i < B * V; i++)
            ck_assert_double_eq_tol(da_get_grad(ct, i), gc_plain[i], 1e-7);
        da_ctx_free(ctx);
    }
    /* the Hamming op is linear in the path: an exact finite-difference check */
    double p[B * V];
    gc_random(p, B * V, 9, 0, 1);
    ham_user hu = {t};
    gc_input in[1] = {{3, {B, H, W}, p, 1}};
    ck_assert_double_lt(gc_check(ham_graph, 1, in, &hu, 1e-6), 1e-6);
    ck_assert_double_lt(gc_check_f32(ham_graph, 1, in, &hu), 1e-5);
}
END_TEST

/* ---------------------------------------------------------------- relaxed Bellman-Ford */

typedef struct {
    const da_sp_relaxed_cfg *cfg;
    int B, H, W;
    const double *cot, *target;
} relax_user;

static double relax_dot(const double *x, void *user)
{
    relax_user *u = user;
    long n = (long)u->B * u->H * u->W;
    double *out = malloc(n * sizeof *out);
    ck_assert_int_eq(da_sp_relaxed_path(u->cfg, u->B, u->H, u->W, x, out, NULL, NULL), DA_OK);
    double s = dot(out, u->cot, n);
    free(out);
    return s;
}

static double relax_lossval(const double *x, void *user)
{
    relax_user *u = user;
    double l;
    ck_assert_int_eq(da_sp_relaxed_loss(u->cfg, u->B, u->H, u->W, x, u->target, &l, NULL), DA_OK);
    return l;
}

START_TEST(test_relaxed_finite_differences)
{
    enum { B = 2, H = 4, W = 5, N = B * H * W };
    double c[N], cot[N], t[N], out[N], g[N], loss;
    gc_random(c, N, 21, 0.5, 2.0);
    gc_random(cot, N, 22, -1, 1);
    gc_random(g, N, 23, 1.0, 3.0);
    ck_assert_int_eq(da_sp_dijkstra(B, H, W, g, t, NULL), DA_OK);
    for (int loop = 0; loop < 2; loop++)
        for (int tc = 0; tc < 3; tc++)
            for (int stop = 0; stop < 2; stop++) {
                da_sp_relaxed_cfg cfg = da_sp_relaxed_default(H, W);
                cfg.beta = loop ? 4.0 : 2.0;
                cfg.n_iter = 7;
                cfg.loop = loop ? DA_SP_LOOP_WHILE : DA_SP_LOOP_FOR;
                cfg.tconorm = (da_sp_tconorm)tc;
                cfg.hamacher_p = 0.5;
                cfg.stop_at_source = stop;
                relax_user u = {&cfg, B, H, W, cot, t};
                ck_assert_int_eq(da_sp_relaxed_path(&cfg, B, H, W, c, out, cot, g), DA_OK);
                for (int i = 0; i < N; i++)
                    ck_assert(out[i] >= -1e-15 && out[i] <= 1 + 1e-12);
                double e = fd_err(relax_dot, &u, c, N, g, 1e-6);
                ck_assert_msg(e < 1e-6, "loop %d tconorm %d stop %d: VJP error %g", loop, tc,
                              stop, e);
                for (int norm = 0; norm < 2; norm++) {
                    cfg.norm = (da_sp_norm)norm;
                    ck_assert_int_eq(da_sp_relaxed_loss(&cfg, B, H, W, c, t, &loss, g), DA_OK);
                    double l0 = 0;
                    for (int i = 0; i < N; i++)
                        l0 += norm ? (out[i] - t[i]) * (out[i] - t[i]) : fabs(out[i] - t[i]);
                    ck_assert_double_eq_tol(loss, l0 / B, 1e-12);
                    e = fd_err(relax_lossval, &u, c, N, g, 1e-6);
                    ck_assert_msg(e < 1e-6, "loss %d loop %d: error %g", norm, loop, e);
                }
            }
}
END_TEST

static da_tensor *relax_path_graph(da_ctx *ctx, da_tensor **in, void *user)
{
    return da_sp_relaxed_path_op(ctx, in[0], ((relax_user *)user)->cfg);
}

static da_tensor *relax_loss_graph(da_ctx *ctx, da_tensor **in, void *user)
{
    relax_user *u = user;
    return da_sp_relaxed(ctx, in[0], u->target, u->cfg);
}

START_TEST(test_relaxed_tensor_faces)
{
    enum { B = 3, H = 5, W = 4, N = B * H * W };
    double c[N], t[N], w[N];
    gc_random(c, N, 31, 0.5, 2.0);
    gc_random(w, N, 32, 1.0, 3.0);
    ck_assert_int_eq(da_sp_dijkstra(B, H, W, w, t, NULL), DA_OK);
    for (int loop = 0; loop < 2; loop++) {
        da_sp_relaxed_cfg cfg = da_sp_relaxed_default(H, W);
        cfg.beta = 3.0;
        cfg.loop = (da_sp_loop)loop;
        relax_user u = {&cfg, B, H, W, NULL, t};
        gc_input in[1] = {{3, {B, H, W}, c, 1}};
        double e = gc_check(relax_path_graph, 1, in, &u, 1e-6);
        ck_assert_msg(e < 1e-6, "path op loop %d: %g", loop, e);
        ck_assert_double_lt(gc_check_f32(relax_path_graph, 1, in, &u), 1e-4);
        for (int norm = 0; norm < 2; norm++) {
            cfg.norm = (da_sp_norm)norm;
            e = gc_check(relax_loss_graph, 1, in, &u, 1e-6);
            ck_assert_msg(e < 1e-6, "loss op %d loop %d: %g", norm, loop, e);
            ck_assert_double_lt(gc_check_f32(relax_loss_graph, 1, in, &u), 1e-4);
        }
    }
}
END_TEST

/* beta -> large: the relaxed path tends to the hard one (stop_at_source = 1), and to the
 * hard path plus AlgoVision's bounce to the source's cheapest neighbour otherwise */
START_TEST(test_relaxed_hard_limit)
{
    enum { H = 6, W = 7, V = H * W };
    double c[V], y[V], d[V], out[V];
    gc_random(c, V, 41, 1.0, 9.0);
    ck_assert_int_eq(da_sp_dijkstra(1, H, W, c, y, NULL), DA_OK);
    /* precondition: every path vertex's predecessor wins its softmin by a margin */
    bf_dist(H, W, c, 0, d);
    for (int v = 0; v < V; v++)
        d[v] -= c[0]; /* AlgoVision's d excludes the source cost */
    double margin = INFINITY;
    int L = 0, cheapest = -1;
    for (int v = 0; v < V; v++) {
        if (y[v] < 0.5)
            continue;
        L++;
        double m1 = INFINITY, m2 = INFINITY;
        for (int di = -1; di <= 1; di++)
            for (int dj = -1; dj <= 1; dj++) {
                int i = v / W + di, j = v % W + dj;
                if ((di || dj) && i >= 0 && i < H && j >= 0 && j < W) {
                    double x = d[i * W + j];
                    if (x < m1) {
                        m2 = m1;
                        m1 = x;
                        if (v == 0)
                            cheapest = i * W + j;
                    } else if (x < m2) {
                        m2 = x;
                    }
                }
            }
        margin = fmin(margin, m2 - m1);
    }
    L -= 1; /* edges on the path */
    ck_assert_double_gt(margin, 0.05);
    ck_assert_int_lt(L + 2, V);
    for (int stop = 0; stop < 2; stop++)
        for (int loop = 0; loop < 2; loop++) {
            da_sp_relaxed_cfg cfg = da_sp_relaxed_default(H, W);
            cfg.beta = 2000.0;
            cfg.n_iter = V;
            cfg.loop = (da_sp_loop)loop;
            cfg.stop_at_source = stop;
            ck_assert_int_eq(da_sp_relaxed_path(&cfg, 1, H, W, c, out, NULL, NULL), DA_OK);
            for (int v = 0; v < V; v++) {
                double want = y[v];
                if (!stop && v == cheapest && y[v] < 0.5)
                    want = loop ? 0.5 : 1.0;
                ck_assert_msg(fabs(out[v] - want) < 1e-6, "stop %d loop %d v %d: %g vs %g",
                              stop, loop, v, out[v], want);
            }
        }
}
END_TEST

/* ---------------------------------------------------------------- perturbed / FY */

/* 2x3 grid: the only minimal paths are A = {00,01,12} and B = {00,11,12};
 * A is optimal iff u01 < u11 */
static const double tiny_w[6] = {3.0, 3.2, 4.0, 5.0, 3.5, 3.0};
static const double tiny_A[6] = {1, 1, 0, 0, 0, 1};

static double Phi(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }
static double phi(double x) { return exp(-0.5 * x * x) / sqrt(2 * M_PI); }

/* P(A) and the FY loss E[(u01 - u11)^+] against A in closed form */
static double tiny_pA(da_sp_noise noise, double sigma, const double *w)
{
    double delta = w[4] - w[1];
    return noise == DA_SP_NOISE_GAUSSIAN ? Phi(delta / (sigma * sqrt(2.0)))
                                         : 1 / (1 + exp(-delta / sigma));
}

static double tiny_fy(da_sp_noise noise, double sigma, const double *w)
{
    double mu = w[1] - w[4];
    if (noise == DA_SP_NOISE_GAUSSIAN) {
        double s = sigma * sqrt(2.0);
        return mu * Phi(mu / s) + s * phi(mu / s);
    }
    return sigma * log1p(exp(mu / sigma));
}

static void mean_se(const double *x, int n, int stride, double *mean, double *se)
{
    double m = 0, v = 0;
    for (int i = 0; i < n; i++)
        m += x[i * stride];
    m /= n;
    for (int i = 0; i < n; i++)
        v += (x[i * stride] - m) * (x[i * stride] - m);
    *mean = m;
    *se = sqrt(v / (n - 1) / n);
}

START_TEST(test_perturbed_statistics)
{
    enum { R = 200, V = 6 };
    double w[R * V], ym[R * V], vjp[R * V], cot[R * V], mean, se;
    for (int r = 0; r < R; r++) {
        memcpy(w + r * V, tiny_w, sizeof tiny_w);
        for (int v = 0; v < V; v++)
            cot[r * V + v] = v == 1;
    }
    da_rng *rng = da_rng_new(2024);
    for (int nz = 0; nz < 2; nz++) {
        da_sp_perturbed_cfg cfg = {(da_sp_noise)nz, 0.5, 50};
        ck_assert_int_eq(da_sp_perturbed(&cfg, rng, R, 2, 3, w, ym, cot, vjp), DA_OK);
        double pA = tiny_pA(cfg.noise, cfg.sigma, tiny_w), h = 1e-5, wp[6], wm[6];
        mean_se(ym + 1, R, V, &mean, &se);
        ck_assert_msg(fabs(mean - pA) < 4 * se, "noise %d: yhat01 %g vs %g (se %g)", nz, mean,
                      pA, se);
        mean_se(ym + 4, R, V, &mean, &se);
        ck_assert(fabs(mean - (1 - pA)) < 4 * se);
        for (int r = 0; r < R; r++) /* always on / never on an optimal path */
            ck_assert(fabs(ym[r * V] - 1) < 1e-12 && fabs(ym[r * V + 5] - 1) < 1e-12 &&
                      ym[r * V + 2] == 0.0 && ym[r * V + 3] == 0.0);
        /* Jacobian estimator: d P(A) / d w01 and d w11, from central differences of P(A) */
        for (int k = 1; k <= 4; k += 3) {
            memcpy(wp, tiny_w, sizeof wp);
            memcpy(wm, tiny_w, sizeof wm);
            wp[k] += h;
            wm[k] -= h;
            double want = (tiny_pA(cfg.noise, cfg.sigma, wp) - tiny_pA(cfg.noise, cfg.sigma, wm)) / (2 * h);
            mean_se(vjp + k, R, V, &mean, &se);
            ck_assert_msg(fabs(mean - want) < 4 * se, "noise %d: J[01][%d] %g vs %g (se %g)", nz,
                          k, mean, want, se);
            ck_assert_double_gt(fabs(want), 8 * se); /* the test has power */
        }
        /* FY loss and gradient against A */
        double fy[R], gr[R * V];
        for (int r = 0; r < R; r++)
            ck_assert_int_eq(da_sp_fy_loss(&cfg, rng, 1, 2, 3, tiny_w, tiny_A, fy + r, gr + r * V),
                             DA_OK);
        for (int r = 0; r < R; r++)
            ck_assert_double_ge(fy[r], 0.0);
        mean_se(fy, R, 1, &mean, &se);
        double L = tiny_fy(cfg.noise, cfg.sigma, tiny_w);
        ck_assert_msg(fabs(mean - L) < 4 * se, "noise %d: FY %g vs %g (se %g)", nz, mean, L, se);
        for (int k = 1; k <= 4; k += 3) {
            memcpy(wp, tiny_w, sizeof wp);
            memcpy(wm, tiny_w, sizeof wm);
            wp[k] += h;
            wm[k] -= h;
            double want = (tiny_fy(cfg.noise, cfg.sigma, wp) - tiny_fy(cfg.noise, cfg.sigma, wm)) / (2 * h);
            mean_se(gr + k, R, V, &mean, &se);
            ck_assert_msg(fabs(mean - want) < 4 * se, "noise %d: dFY/dw%d %g vs %g", nz, k, mean,
                          want);
        }
    }
    da_rng_free(rng);
}
END_TEST

typedef struct {
    const da_sp_perturbed_cfg *cfg;
    da_rng *rng;
    int B, H, W;
    const double *target;
} fy_user;

/* the Monte-Carlo FY loss with common random numbers is piecewise linear in the costs */
static double fy_value(const double *x, void *user)
{
    fy_user *u = user;
    double l;
    da_rng_seed(u->rng, 77);
    ck_assert_int_eq(da_sp_fy_loss(u->cfg, u->rng, u->B, u->H, u->W, x, u->target, &l, NULL),
                     DA_OK);
    return l;
}

static da_tensor *fy_graph(da_ctx *ctx, da_tensor **in, void *user)
{
    fy_user *u = user;
    da_rng_seed(u->rng, 77);
    return da_sp_fy(ctx, in[0], u->target, u->cfg, u->rng);
}

START_TEST(test_fy_exact_gradient_of_estimate)
{
    enum { B = 3, H = 8, W = 8, N = B * H * W };
    double c[N], t[N], g[N], loss;
    gc_random(c, N, 51, 2.0, 5.0); /* no perturbed cost is clipped at 0 */
    gc_random(g, N, 52, 1.0, 5.0);
    ck_assert_int_eq(da_sp_dijkstra(B, H, W, g, t, NULL), DA_OK);
    da_rng *rng = da_rng_new(1);
    for (int nz = 0; nz < 2; nz++) {
        da_sp_perturbed_cfg cfg = {(da_sp_noise)nz, 0.3, 20};
        fy_user u = {&cfg, rng, B, H, W, t};
        da_rng_seed(rng, 77);
        ck_assert_int_eq(da_sp_fy_loss(&cfg, rng, B, H, W, c, t, &loss, g), DA_OK);
        ck_assert_double_gt(loss, 0.0);
        ck_assert_double_lt(fd_err(fy_value, &u, c, N, g, 1e-6), 1e-6);
        gc_input in[1] = {{3, {B, H, W}, c, 1}};
        ck_assert_double_lt(gc_check(fy_graph, 1, in, &u, 1e-6), 1e-6);
        ck_assert_double_lt(gc_check_f32(fy_graph, 1, in, &u), 1e-5);
        /* same seed, same result whatever the batch split */
        double l1;
        da_rng_seed(rng, 77);
        ck_assert_int_eq(da_sp_fy_loss(&cfg, rng, B, H, W, c, t, &l1, NULL), DA_OK);
        ck_assert(l1 == loss);
        /* a target that is the solver's own path at very small sigma has ~zero loss */
        double y[N];
        da_sp_perturbed_cfg small = {(da_sp_noise)nz, 1e-9, 5};
        ck_assert_int_eq(da_sp_dijkstra(B, H, W, c, y, NULL), DA_OK);
        ck_assert_int_eq(da_sp_fy_loss(&small, rng, B, H, W, c, y, &l1, g), DA_OK);
        ck_assert_double_lt(fabs(l1), 1e-6);
        for (int i = 0; i < N; i++)
            ck_assert_double_eq_tol(g[i], 0.0, 1e-12);
    }
    da_rng_free(rng);
}
END_TEST

/* ---------------------------------------------------------------- metrics */

START_TEST(test_metrics)
{
    double c[18] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    double t[18] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1};
    double p[18] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1};
    da_sp_metrics m;
    ck_assert_int_eq(da_sp_metrics_eval(2, 3, 3, p, t, c, &m), DA_OK);
    ck_assert_double_eq(m.exact_match, 0.5);
    ck_assert_double_eq(m.hamming, 1.5);
    ck_assert_double_eq_tol(m.cost_ratio, 0.5 * (1.0 + (1 + 2 + 6 + 9) / 15.0), 1e-15);
    double z[18] = {0};
    ck_assert_int_eq(da_sp_metrics_eval(2, 3, 3, p, t, z, &m), DA_ERANGE);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(test_errors)
{
    double c[16], y[16], g[16];
    gc_random(c, 16, 61, 1, 2);
    ck_assert_int_eq(da_sp_dijkstra(1, 0, 4, c, y, NULL), DA_ERANGE);
    ck_assert_int_eq(da_sp_dijkstra(1, 4, DA_SP_MAX_SIDE + 1, c, y, NULL), DA_ERANGE);
    ck_assert_int_eq(da_sp_dijkstra(0, 4, 4, c, y, NULL), DA_ERANGE);
    ck_assert_int_eq(da_sp_dijkstra(1, 4, 4, NULL, y, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sp_dijkstra(1, 4, 4, c, NULL, NULL), DA_EINVAL);
    c[5] = -1;
    ck_assert_int_eq(da_sp_dijkstra(1, 4, 4, c, y, NULL), DA_ERANGE);
    ck_assert(strstr(da_last_error(), "non-negative") != NULL);
    c[5] = NAN;
    ck_assert_int_eq(da_sp_dijkstra(1, 4, 4, c, y, NULL), DA_ENAN);
    c[5] = INFINITY;
    ck_assert_int_eq(da_sp_dijkstra(1, 4, 4, c, y, NULL), DA_ENAN);
    c[5] = 1.0;
    c[0] = 1e308;
    c[15] = 1e308;
    ck_assert_int_eq(da_sp_dijkstra(1, 4, 4, c, y, NULL), DA_ERANGE); /* overflow */
    gc_random(c, 16, 61, 1, 2);
    gc_random(g, 16, 62, -1, 1);
    ck_assert_int_eq(da_sp_blackbox_grad(1, 4, 4, c, g, 0.0, y), DA_ERANGE);
    ck_assert_int_eq(da_sp_blackbox_grad(1, 4, 4, c, g, -1.0, y), DA_ERANGE);
    ck_assert_int_eq(da_sp_blackbox_grad(1, 4, 4, c, g, NAN, y), DA_ENAN);
    ck_assert_int_eq(da_sp_blackbox_grad(1, 4, 4, c, g, 1.0, NULL), DA_EINVAL);
    g[3] = NAN;
    ck_assert_int_eq(da_sp_blackbox_grad(1, 4, 4, c, g, 1.0, y), DA_ENAN);
    g[3] = 1e308;
    ck_assert_int_eq(da_sp_blackbox_grad(1, 4, 4, c, g, 10.0, y), DA_ERANGE);
    ck_assert_int_eq(da_sp_blackbox_loss(NULL, 1, 4, 4, c, c, y, NULL), DA_EINVAL);
    /* relaxed */
    da_sp_relaxed_cfg cfg = da_sp_relaxed_default(4, 4);
    ck_assert_int_eq(da_sp_relaxed_path(NULL, 1, 4, 4, c, y, NULL, NULL), DA_EINVAL);
    cfg.beta = 0;
    ck_assert_int_eq(da_sp_relaxed_path(&cfg, 1, 4, 4, c, y, NULL, NULL), DA_ERANGE);
    cfg = da_sp_relaxed_default(4, 4);
    cfg.n_iter = 2;
    ck_assert_int_eq(da_sp_relaxed_path(&cfg, 1, 4, 4, c, y, NULL, NULL), DA_ERANGE);
    cfg = da_sp_relaxed_default(4, 4);
    cfg.loop = (da_sp_loop)5;
    ck_assert_int_eq(da_sp_relaxed_path(&cfg, 1, 4, 4, c, y, NULL, NULL), DA_EINVAL);
    cfg = da_sp_relaxed_default(4, 4);
    cfg.tconorm = DA_SP_TCONORM_HAMACHER;
    cfg.hamacher_p = -1;
    ck_assert_int_eq(da_sp_relaxed_path(&cfg, 1, 4, 4, c, y, NULL, NULL), DA_ERANGE);
    cfg = da_sp_relaxed_default(4, 4);
    cfg.loop = DA_SP_LOOP_WHILE;
    cfg.epsilon = 1.5;
    ck_assert_int_eq(da_sp_relaxed_path(&cfg, 1, 4, 4, c, y, NULL, NULL), DA_ERANGE);
    cfg = da_sp_relaxed_default(4, 4);
    ck_assert_int_eq(da_sp_relaxed_path(&cfg, 1, 4, 4, c, y, g, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sp_relaxed_path(&cfg, 1, 4, 4, c, NULL, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_sp_relaxed_loss(&cfg, 1, 4, 4, c, NULL, y, NULL), DA_EINVAL);
    c[2] = -0.5; /* negative costs are valid for the relaxation */
    ck_assert_int_eq(da_sp_relaxed_path(&cfg, 1, 4, 4, c, y, NULL, NULL), DA_OK);
    c[2] = INFINITY;
    ck_assert_int_eq(da_sp_relaxed_path(&cfg, 1, 4, 4, c, y, NULL, NULL), DA_ENAN);
    gc_random(c, 16, 61, 1, 2);
    /* perturbed */
    da_rng *rng = da_rng_new(3);
    da_sp_perturbed_cfg pc = {DA_SP_NOISE_GAUSSIAN, 0.0, 4};
    ck_assert_int_eq(da_sp_perturbed(&pc, rng, 1, 4, 4, c, y, NULL, NULL), DA_ERANGE);
    pc.sigma = 1;
    pc.n_samples = 0;
    ck_assert_int_eq(da_sp_perturbed(&pc, rng, 1, 4, 4, c, y, NULL, NULL), DA_ERANGE);
    pc.n_samples = 4;
    ck_assert_int_eq(da_sp_perturbed(&pc, NULL, 1, 4, 4, c, y, NULL, NULL), DA_EINVAL);
    pc.noise = (da_sp_noise)9;
    ck_assert_int_eq(da_sp_fy_loss(&pc, rng, 1, 4, 4, c, c, y, NULL), DA_EINVAL);
    pc.noise = DA_SP_NOISE_GUMBEL;
    double tt[16] = {0};
    tt[7] = NAN;
    ck_assert_int_eq(da_sp_fy_loss(&pc, rng, 1, 4, 4, c, tt, y, NULL), DA_ENAN);
    /* tensor faces */
    da_ctx *ctx = da_ctx_new();
    int s2[2] = {4, 4}, s3[3] = {1, 4, 4};
    da_tensor *t2 = da_ctx_tensor_from(ctx, DA_F64, 2, s2, c);
    ck_assert_ptr_null(da_sp_relaxed_path_op(ctx, t2, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_sp_blackbox_path(ctx, t2, 1.0));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    da_tensor *t3 = da_ctx_tensor_from(ctx, DA_F64, 3, s3, c);
    ck_assert_ptr_null(da_sp_blackbox_path(ctx, t3, 0.0));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_sp_fy(ctx, t3, tt, &pc, rng));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    ck_assert_ptr_null(da_sp_relaxed(NULL, t3, c, &cfg));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_set(t3, 3, -2.0);
    ck_assert_ptr_null(da_sp_blackbox_path(ctx, t3, 1.0));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    da_ctx_free(ctx);
    da_rng_free(rng);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shortest_path");
    TCase *tc = tcase_create("shortest_path");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_refs_blackbox);
    tcase_add_test(tc, test_dijkstra_bruteforce);
    tcase_add_test(tc, test_dijkstra_tie_breaking);
    tcase_add_test(tc, test_blackbox_faces);
    tcase_add_test(tc, test_relaxed_finite_differences);
    tcase_add_test(tc, test_relaxed_tensor_faces);
    tcase_add_test(tc, test_relaxed_hard_limit);
    tcase_add_test(tc, test_perturbed_statistics);
    tcase_add_test(tc, test_fy_exact_gradient_of_estimate);
    tcase_add_test(tc, test_metrics);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
