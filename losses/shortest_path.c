/* shortest_path.c - grid Dijkstra, the blackbox gradient of Vlastelica et al. (ICLR 2020:
 * grad = -(y(w) - y(w'))/lambda, w' = max(w + lambda dL/dy, 0)), the Hamming loss,
 * their tensor faces and the path metrics. Conventions in shortest_path.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shortest_path.h"
#include "alloc.h"
#include "ops.h"
#include "shortest_path_impl.h"

/* ---------------------------------------------------------------- checks */

int da_sp_check_grid(const char *who, int batch, int H, int W)
{
    if (batch < 1)
        return da_set_error(DA_ERANGE, "%s: batch %d < 1", who, batch);
    if (H < 1 || W < 1 || H > DA_SP_MAX_SIDE || W > DA_SP_MAX_SIDE)
        return da_set_error(DA_ERANGE, "%s: grid %d x %d outside [1, %d]^2", who, H, W,
                            DA_SP_MAX_SIDE);
    return DA_OK;
}

int da_sp_check_values(const char *who, const char *name, const double *x, long n, int nonneg)
{
    if (!x)
        return da_set_error(DA_EINVAL, "%s: %s is NULL", who, name);
    if (!da_all_finite(x, n))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in %s", who, name);
    if (nonneg)
        for (long i = 0; i < n; i++)
            if (x[i] < 0)
                return da_set_error(DA_ERANGE, "%s: %s[%ld] = %g < 0 (Dijkstra needs "
                                               "non-negative vertex costs)", who, name, i, x[i]);
    return DA_OK;
}

int da_sp_check_tensor(const char *who, const da_tensor *cost, int *batch, int *H, int *W)
{
    if (!cost) {
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "%s: cost tensor is NULL", who);
        return da_last_error_code();
    }
    if (cost->ndim != 3)
        return da_set_error(DA_ESHAPE, "%s: cost has %d dims, need [batch][H][W]", who,
                            cost->ndim);
    *batch = cost->shape[0];
    *H = cost->shape[1];
    *W = cost->shape[2];
    return da_sp_check_grid(who, *batch, *H, *W);
}

/* ---------------------------------------------------------------- Dijkstra */

int da_sp_work_init(da_sp_work *ws, int H, int W)
{
    size_t V = (size_t)H * W, cap = 8 * V + 1;
    memset(ws, 0, sizeof *ws);
    ws->H = H;
    ws->W = W;
    ws->dist = da_malloc(V * sizeof *ws->dist);
    ws->pred = da_malloc(V * sizeof *ws->pred);
    ws->done = da_malloc(V);
    ws->heap_key = da_malloc(cap * sizeof *ws->heap_key);
    ws->heap_v = da_malloc(cap * sizeof *ws->heap_v);
    ws->buf = da_malloc(V * sizeof *ws->buf);
    ws->path = da_malloc(V * sizeof *ws->path);
    ws->path2 = da_malloc(V * sizeof *ws->path2);
    if (!ws->dist || !ws->pred || !ws->done || !ws->heap_key || !ws->heap_v || !ws->buf ||
        !ws->path || !ws->path2) {
        da_sp_work_release(ws);
        return DA_ENOMEM;
    }
    return DA_OK;
}

void da_sp_work_release(da_sp_work *ws)
{
    da_free(ws->dist);
    da_free(ws->pred);
    da_free(ws->done);
    da_free(ws->heap_key);
    da_free(ws->heap_v);
    da_free(ws->buf);
    da_free(ws->path);
    da_free(ws->path2);
    memset(ws, 0, sizeof *ws);
}

/* heap order (distance, vertex): vertex = row*W + col, so ties go by (row, col) */
static int heap_less(const da_sp_work *ws, int a, int b)
{
    double ka = ws->heap_key[a], kb = ws->heap_key[b];
    return ka < kb || (ka == kb && ws->heap_v[a] < ws->heap_v[b]);
}

static void heap_swap(da_sp_work *ws, int a, int b)
{
    double k = ws->heap_key[a];
    int v = ws->heap_v[a];
    ws->heap_key[a] = ws->heap_key[b];
    ws->heap_v[a] = ws->heap_v[b];
    ws->heap_key[b] = k;
    ws->heap_v[b] = v;
}

static void heap_push(da_sp_work *ws, int *n, double key, int v)
{
    int i = (*n)++;
    ws->heap_key[i] = key;
    ws->heap_v[i] = v;
    while (i > 0 && heap_less(ws, i, (i - 1) / 2)) {
        heap_swap(ws, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static int heap_pop(da_sp_work *ws, int *n)
{
    int top = ws->heap_v[0], i = 0;
    (*n)--;
    ws->heap_key[0] = ws->heap_key[*n];
    ws->heap_v[0] = ws->heap_v[*n];
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && heap_less(ws, l, m))
            m = l;
        if (r < *n && heap_less(ws, r, m))
            m = r;
        if (m == i)
            return top;
        heap_swap(ws, i, m);
        i = m;
    }
}

double da_sp_solve(da_sp_work *ws, const double *cost, double *path)
{
    const int H = ws->H, W = ws->W, V = H * W, goal = V - 1;
    int n = 0;
    for (int v = 0; v < V; v++) {
        ws->dist[v] = INFINITY;
        ws->pred[v] = -1;
        ws->done[v] = 0;
    }
    ws->dist[0] = cost[0];
    heap_push(ws, &n, cost[0], 0);
    while (n > 0) {
        int v = heap_pop(ws, &n);
        if (ws->done[v])
            continue; /* stale entry */
        ws->done[v] = 1;
        if (v == goal)
            break; /* the path's vertices are all settled: nothing on it can change */
        int i = v / W, j = v % W;
        for (int di = -1; di <= 1; di++)
            for (int dj = -1; dj <= 1; dj++) {
                int ni = i + di, nj = j + dj;
                if ((di == 0 && dj == 0) || ni < 0 || ni >= H || nj < 0 || nj >= W)
                    continue;
                int u = ni * W + nj;
                double nd = cost[u] + ws->dist[v];
                if (!ws->done[u] && nd < ws->dist[u]) {
                    ws->dist[u] = nd;
                    ws->pred[u] = v;
                    heap_push(ws, &n, nd, u);
                }
            }
    }
    memset(path, 0, (size_t)V * sizeof *path);
    for (int v = goal; v >= 0; v = ws->pred[v])
        path[v] = 1.0;
    return ws->dist[goal];
}

int da_sp_dijkstra(int batch, int H, int W, const double *cost, double *path,
                   double *path_cost)
{
    const char *who = "da_sp_dijkstra";
    int rc = da_sp_check_grid(who, batch, H, W);
    if (!rc)
        rc = da_sp_check_values(who, "cost", cost, (long)batch * H * W, 1);
    if (rc)
        return rc;
    if (!path)
        return da_set_error(DA_EINVAL, "%s: path is NULL", who);
    const long V = (long)H * W;
    int err = DA_OK, overflow = 0;
#pragma omp parallel if (DA_SP_PARALLEL(batch, 16.0 * batch * H * W))
    {
        da_sp_work ws;
        if (da_sp_work_init(&ws, H, W)) {
#pragma omp atomic write
            err = DA_ENOMEM;
        }
#pragma omp for schedule(dynamic)
        for (int b = 0; b < batch; b++) {
            if (!ws.dist)
                continue;
            double pc = da_sp_solve(&ws, cost + b * V, path + b * V);
            if (path_cost)
                path_cost[b] = pc;
            if (!isfinite(pc)) {
#pragma omp atomic write
                overflow = 1;
            }
        }
        da_sp_work_release(&ws);
    }
    if (err)
        return da_set_error(err, "%s: out of memory", who);
    if (overflow)
        return da_set_error(DA_ERANGE, "%s: a path cost overflows a double", who);
    return DA_OK;
}

/* ---------------------------------------------------------------- blackbox */

/* grad (accumulate ? += : =) -(y - y(max(cost + lambda g, 0))) / lambda for every sample;
 * y [batch][V] is the solution at cost, or NULL to compute it here. */
static int blackbox_batch(const char *who, int batch, int H, int W, const double *cost,
                          const double *y, const double *g, double lambda, double *grad,
                          int accumulate)
{
    const long V = (long)H * W;
    int err = DA_OK, bad = 0;
#pragma omp parallel if (DA_SP_PARALLEL(batch, 16.0 * batch * H * W))
    {
        da_sp_work ws;
        if (da_sp_work_init(&ws, H, W)) {
#pragma omp atomic write
            err = DA_ENOMEM;
        }
#pragma omp for schedule(dynamic)
        for (int b = 0; b < batch; b++) {
            if (!ws.dist)
                continue;
            const double *w = cost + b * V, *gb = g + b * V, *yb = y ? y + b * V : ws.path;
            double *gr = grad + b * V;
            if (!y)
                da_sp_solve(&ws, w, ws.path);
            for (long v = 0; v < V; v++)
                ws.buf[v] = fmax(w[v] + lambda * gb[v], 0.0);
            if (!da_all_finite(ws.buf, V) || !isfinite(da_sp_solve(&ws, ws.buf, ws.path2))) {
#pragma omp atomic write
                bad = 1;
                continue;
            }
            for (long v = 0; v < V; v++) {
                double d = -(yb[v] - ws.path2[v]) / lambda;
                gr[v] = accumulate ? gr[v] + d : d;
            }
        }
        da_sp_work_release(&ws);
    }
    if (err)
        return da_set_error(err, "%s: out of memory", who);
    if (bad)
        return da_set_error(DA_ERANGE, "%s: perturbed costs cost + lambda*grad overflow",
                            who);
    return DA_OK;
}

static int check_lambda(const char *who, double lambda)
{
    if (isnan(lambda))
        return da_set_error(DA_ENAN, "%s: lambda is NaN", who);
    if (!(lambda > 0) || !isfinite(lambda))
        return da_set_error(DA_ERANGE, "%s: lambda = %g must be finite and > 0", who, lambda);
    return DA_OK;
}

int da_sp_blackbox_grad(int batch, int H, int W, const double *cost, const double *grad_path,
                        double lambda, double *grad_cost)
{
    const char *who = "da_sp_blackbox_grad";
    long n = (long)batch * H * W;
    int rc = da_sp_check_grid(who, batch, H, W);
    if (!rc)
        rc = check_lambda(who, lambda);
    if (!rc)
        rc = da_sp_check_values(who, "cost", cost, n, 1);
    if (!rc)
        rc = da_sp_check_values(who, "grad_path", grad_path, n, 0);
    if (!rc && !grad_cost)
        rc = da_set_error(DA_EINVAL, "%s: grad_cost is NULL", who);
    return rc ? rc : blackbox_batch(who, batch, H, W, cost, NULL, grad_path, lambda, grad_cost, 0);
}

/* ---------------------------------------------------------------- Hamming */

static double hamming_value(long n, int batch, const double *path, const double *target)
{
    double s = 0;
    for (long i = 0; i < n; i++)
        s += path[i] * (1 - target[i]) + (1 - path[i]) * target[i];
    return s / batch;
}

int da_sp_hamming_loss(int batch, int H, int W, const double *path, const double *target,
                       double *loss, double *grad_path)
{
    const char *who = "da_sp_hamming_loss";
    long n = (long)batch * H * W;
    int rc = da_sp_check_grid(who, batch, H, W);
    if (!rc)
        rc = da_sp_check_values(who, "path", path, n, 0);
    if (!rc)
        rc = da_sp_check_values(who, "target", target, n, 0);
    if (!rc && !loss)
        rc = da_set_error(DA_EINVAL, "%s: loss is NULL", who);
    if (rc)
        return rc;
    *loss = hamming_value(n, batch, path, target);
    if (grad_path)
        for (long i = 0; i < n; i++)
            grad_path[i] = (1 - 2 * target[i]) / batch;
    return DA_OK;
}

/* n [batch][V] = cost / mean_v(cost) per sample, scale [batch] = 1 / mean */
static int normalize_costs(const char *who, int batch, long V, const double *cost, double *n,
                           double *scale)
{
    for (int b = 0; b < batch; b++) {
        double m = 0;
        for (long v = 0; v < V; v++)
            m += cost[b * V + v];
        m /= V;
        if (!(m > 0))
            return da_set_error(DA_ERANGE, "%s: sample %d: normalize needs a positive mean "
                                           "cost (got %g)", who, b, m);
        scale[b] = 1 / m;
        for (long v = 0; v < V; v++)
            n[b * V + v] = cost[b * V + v] / m;
    }
    return DA_OK;
}

/* grad (in place) from d/dn to d/dc of n = c / mean(c): (g - <g, n> / V) * scale */
static void chain_normalize(int batch, long V, const double *n, const double *scale,
                            double *grad)
{
    for (int b = 0; b < batch; b++) {
        double gn = 0;
        for (long v = 0; v < V; v++)
            gn += grad[b * V + v] * n[b * V + v];
        for (long v = 0; v < V; v++)
            grad[b * V + v] = (grad[b * V + v] - gn / V) * scale[b];
    }
}

static int blackbox_loss(const char *who, const da_sp_blackbox_cfg *cfg, int normalize,
                         int batch, int H, int W, const double *cost, const double *target,
                         double *loss, double *grad_cost)
{
    if (!cfg || !loss)
        return da_set_error(DA_EINVAL, "%s: NULL cfg or loss", who);
    long n = (long)batch * H * W;
    int rc = da_sp_check_grid(who, batch, H, W);
    if (!rc)
        rc = check_lambda(who, cfg->lambda);
    if (!rc)
        rc = da_sp_check_values(who, "target", target, n, 0);
    if (rc)
        return rc;
    rc = da_sp_check_values(who, "cost", cost, n, 1);
    if (rc)
        return rc;
    double *y = da_malloc((size_t)n * sizeof *y), *g = da_malloc((size_t)n * sizeof *g);
    double *nc = normalize ? da_malloc((size_t)(n + batch) * sizeof *nc) : NULL;
    const double *c = cost;
    if (!y || !g || (normalize && !nc)) {
        rc = da_set_error(DA_ENOMEM, "%s: out of memory", who);
        goto done;
    }
    if (normalize) { /* nc: [batch][V] normalised costs, then [batch] scales */
        rc = normalize_costs(who, batch, (long)H * W, cost, nc, nc + n);
        c = nc;
    }
    if (!rc)
        rc = da_sp_dijkstra(batch, H, W, c, y, NULL);
    if (!rc)
        rc = da_sp_hamming_loss(batch, H, W, y, target, loss, g);
    if (!rc && grad_cost)
        rc = blackbox_batch(who, batch, H, W, c, y, g, cfg->lambda, grad_cost, 0);
    if (!rc && grad_cost && normalize)
        chain_normalize(batch, (long)H * W, nc, nc + n, grad_cost);
done:
    da_free(y);
    da_free(g);
    da_free(nc);
    return rc;
}

int da_sp_blackbox_loss(const da_sp_blackbox_cfg *cfg, int batch, int H, int W,
                        const double *cost, const double *target, double *loss,
                        double *grad_cost)
{
    return blackbox_loss("da_sp_blackbox_loss", cfg, 0, batch, H, W, cost, target, loss,
                         grad_cost);
}

int da_sp_blackbox_normalized_loss(const da_sp_blackbox_cfg *cfg, int batch, int H, int W,
                                   const double *cost, const double *target, double *loss,
                                   double *grad_cost)
{
    return blackbox_loss("da_sp_blackbox_normalized_loss", cfg, 1, batch, H, W, cost, target,
                         loss, grad_cost);
}

/* ---------------------------------------------------------------- tensor faces */

typedef struct {
    double lambda;
    double *path; /* [batch][V] forward solution */
} bb_saved;

static int bb_forward(da_custom_args *a, double *out)
{
    const da_tensor *c = a->in[0];
    bb_saved *st = a->state;
    int rc = da_sp_dijkstra(c->shape[0], c->shape[1], c->shape[2], a->in_data[0], out, NULL);
    if (rc)
        return rc;
    st->path = da_ctx_alloc(a->ctx, (size_t)c->size * sizeof(double));
    if (!st->path)
        return DA_ENOMEM;
    memcpy(st->path, out, (size_t)c->size * sizeof(double));
    return DA_OK;
}

static int bb_backward(da_custom_args *a, const double *og, double *const *ig)
{
    const da_tensor *c = a->in[0];
    const bb_saved *st = a->state;
    const char *who = "da_sp_blackbox_path (backward)";
    if (!ig[0])
        return DA_OK;
    int rc = da_sp_check_values(who, "output gradient", og, c->size, 0);
    return rc ? rc : blackbox_batch(who, c->shape[0], c->shape[1], c->shape[2], a->in_data[0],
                                    st->path, og, st->lambda, ig[0], 1);
}

da_tensor *da_sp_blackbox_path(da_ctx *ctx, da_tensor *cost, double lambda)
{
    const char *who = "da_sp_blackbox_path";
    int batch, H, W;
    if (!ctx) {
        da_set_error(DA_EINVAL, "%s: NULL ctx", who);
        return NULL;
    }
    if (da_sp_check_tensor(who, cost, &batch, &H, &W) || check_lambda(who, lambda))
        return NULL;
    bb_saved *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st)
        return NULL;
    st->lambda = lambda;
    return da_op_custom(ctx, who, &cost, 1, 3, cost->shape, bb_forward, bb_backward, NULL, st);
}

static int ham_forward(da_custom_args *a, double *out)
{
    const da_tensor *p = a->in[0];
    out[0] = hamming_value(p->size, p->shape[0], a->in_data[0], a->state);
    return da_all_finite(out, 1) ? DA_OK
                                 : da_set_error(DA_ENAN, "da_sp_hamming: NaN or Inf in path");
}

static int ham_backward(da_custom_args *a, const double *og, double *const *ig)
{
    const da_tensor *p = a->in[0];
    const double *t = a->state;
    if (ig[0])
        for (long i = 0; i < p->size; i++)
            ig[0][i] += og[0] * (1 - 2 * t[i]) / p->shape[0];
    return DA_OK;
}

da_tensor *da_sp_hamming(da_ctx *ctx, da_tensor *path, const double *target)
{
    const char *who = "da_sp_hamming";
    int batch, H, W, one = 1;
    if (!ctx) {
        da_set_error(DA_EINVAL, "%s: NULL ctx", who);
        return NULL;
    }
    if (da_sp_check_tensor(who, path, &batch, &H, &W) ||
        da_sp_check_values(who, "target", target, path->size, 0))
        return NULL;
    return da_op_custom(ctx, who, &path, 1, 0, &one, ham_forward, ham_backward, NULL,
                        (void *)target);
}

da_tensor *da_sp_blackbox(da_ctx *ctx, da_tensor *cost, const double *target,
                          const da_sp_blackbox_cfg *cfg)
{
    if (!cfg) {
        da_set_error(DA_EINVAL, "da_sp_blackbox: NULL cfg");
        return NULL;
    }
    return da_sp_hamming(ctx, da_sp_blackbox_path(ctx, cost, cfg->lambda), target);
}

da_tensor *da_sp_blackbox_normalized(da_ctx *ctx, da_tensor *cost, const double *target,
                                     const da_sp_blackbox_cfg *cfg)
{
    int batch, H, W;
    if (da_sp_check_tensor("da_sp_blackbox_normalized", cost, &batch, &H, &W))
        return NULL;
    /* cost / mean per sample through the core's ops (their backward is the chain rule of
     * chain_normalize); a zero mean fails in da_div with DA_ENAN */
    int flat[2] = {batch, H * W};
    da_tensor *f = da_reshape(ctx, cost, 2, flat);
    return da_sp_blackbox(ctx, da_reshape(ctx, da_div(ctx, f, da_mean(ctx, f, 1, 1)), 3,
                                          cost->shape), target, cfg);
}

/* ---------------------------------------------------------------- metrics */

int da_sp_metrics_eval(int batch, int H, int W, const double *pred, const double *target,
                       const double *true_cost, da_sp_metrics *m)
{
    const char *who = "da_sp_metrics_eval";
    const long V = (long)H * W;
    int rc = da_sp_check_grid(who, batch, H, W);
    if (!rc)
        rc = da_sp_check_values(who, "pred", pred, batch * V, 0);
    if (!rc)
        rc = da_sp_check_values(who, "target", target, batch * V, 0);
    if (!rc)
        rc = da_sp_check_values(who, "true_cost", true_cost, batch * V, 1);
    if (!rc && !m)
        rc = da_set_error(DA_EINVAL, "%s: m is NULL", who);
    if (rc)
        return rc;
    double match = 0, ratio = 0, ham = 0;
    for (int b = 0; b < batch; b++) {
        const double *p = pred + b * V, *t = target + b * V, *c = true_cost + b * V;
        double cp = 0, ct = 0, diff = 0;
        for (long v = 0; v < V; v++) {
            int on_p = p[v] > 0.5, on_t = t[v] > 0.5;
            cp += on_p * c[v];
            ct += on_t * c[v];
            diff += on_p != on_t;
        }
        if (!(ct > 0))
            return da_set_error(DA_ERANGE, "%s: sample %d: target path has cost %g (need > 0)",
                                who, b, ct);
        match += diff == 0;
        ratio += cp / ct;
        ham += diff;
    }
    m->exact_match = match / batch;
    m->cost_ratio = ratio / batch;
    m->hamming = ham / batch;
    return DA_OK;
}
