/* shortest_path_relaxed.c - relaxed Bellman-Ford shortest paths of AlgoVision (Petersen
 * et al., "Learning with Algorithmic Supervision via Continuous Relaxations", NeurIPS
 * 2021): softmin relaxation of the Bellman-Ford update, soft predecessors, a relaxed path
 * traced back from the goal with a t-conorm, in a For or a relaxed While loop. The
 * equations are in shortest_path.h. One fused kernel per sample: forward recursion with
 * its history kept in a per-thread workspace, then an exact hand-written reverse pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shortest_path.h"
#include "alloc.h"
#include "shortest_path_impl.h"

/* neighbour k of (i,j) is (i + DI[k], j + DJ[k]): AlgoVision's order (3x3 unfold, no centre) */
static const int DI[8] = {-1, -1, -1, 0, 0, 1, 1, 1};
static const int DJ[8] = {-1, 0, 1, -1, 1, -1, 0, 1};

typedef struct {
    int V, n_iter, K, cap;
    int *nbr;       /* [V][8] neighbour vertex, -1 outside the grid */
    double *d;      /* [n_iter][V] distances d^0 .. d^{n_iter-1} */
    double *wts;    /* [n_iter][V][8] softmin weights p^t at row t-1 (unused for s when t < n) */
    double *P;      /* = row n_iter-1 of wts: the soft predecessors [V][8] */
    double *T, *q;  /* [cap][V] trace: T^0..T^K and q^0..q^K */
    double *c, *p;  /* [cap] While: condition c_k, continuation probability p_k */
    double *gpk, *gck; /* [cap] While backward: d/dp_k, d/dT^k_s through c_k */
    double *out;    /* [V] relaxed path */
    double *g;      /* [V] cotangent of out */
    double *gT, *gTp, *gq, *gqp, *gd, *gdp; /* [V] reverse-pass buffers */
    double *gP;     /* [V][8] */
} relax_work;

static void relax_release(relax_work *ws)
{
    void *bufs[] = {ws->nbr, ws->d, ws->wts, ws->T, ws->q, ws->c, ws->p, ws->gpk, ws->gck,
                    ws->out, ws->g, ws->gT, ws->gTp, ws->gq, ws->gqp, ws->gd, ws->gdp, ws->gP};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        da_free(bufs[i]);
    memset(ws, 0, sizeof *ws);
}

/* grow the trace history to hold `rows` steps */
static int relax_reserve(relax_work *ws, int rows)
{
    if (rows <= ws->cap)
        return DA_OK;
    int cap = ws->cap ? ws->cap : 16;
    while (cap < rows)
        cap *= 2;
    double **per_row[] = {&ws->T, &ws->q}, **per_step[] = {&ws->c, &ws->p, &ws->gpk, &ws->gck};
    for (int i = 0; i < 2; i++) {
        double *t = da_realloc(*per_row[i], (size_t)cap * ws->V * sizeof *t);
        if (!t)
            return DA_ENOMEM;
        *per_row[i] = t;
    }
    for (int i = 0; i < 4; i++) {
        double *t = da_realloc(*per_step[i], (size_t)cap * sizeof *t);
        if (!t)
            return DA_ENOMEM;
        *per_step[i] = t;
    }
    ws->cap = cap;
    return DA_OK;
}

static int relax_init(relax_work *ws, const da_sp_relaxed_cfg *cfg, int H, int W)
{
    int V = H * W;
    memset(ws, 0, sizeof *ws);
    ws->V = V;
    ws->n_iter = cfg->n_iter;
    ws->nbr = da_malloc((size_t)V * 8 * sizeof *ws->nbr);
    ws->d = da_malloc((size_t)cfg->n_iter * V * sizeof *ws->d);
    ws->wts = da_malloc((size_t)cfg->n_iter * V * 8 * sizeof *ws->wts);
    ws->P = ws->wts ? ws->wts + (size_t)(cfg->n_iter - 1) * V * 8 : NULL;
    ws->gP = da_malloc((size_t)V * 8 * sizeof *ws->gP);
    double **vbufs[] = {&ws->out, &ws->g, &ws->gT, &ws->gTp, &ws->gq, &ws->gqp, &ws->gd, &ws->gdp};
    int ok = ws->nbr && ws->d && ws->wts && ws->gP;
    for (size_t i = 0; i < sizeof vbufs / sizeof vbufs[0]; i++)
        ok = (*vbufs[i] = da_malloc((size_t)V * sizeof(double))) != NULL && ok;
    int rows = cfg->loop == DA_SP_LOOP_FOR ? cfg->n_iter + 1
                                           : (cfg->max_iter < 2 * cfg->n_iter + 64 ? cfg->max_iter
                                                                                  : 2 * cfg->n_iter + 64) + 1;
    if (!ok || relax_reserve(ws, rows)) {
        relax_release(ws);
        return DA_ENOMEM;
    }
    for (int v = 0; v < V; v++)
        for (int k = 0; k < 8; k++) {
            int ni = v / W + DI[k], nj = v % W + DJ[k];
            ws->nbr[8 * v + k] = (ni >= 0 && ni < H && nj >= 0 && nj < W) ? ni * W + nj : -1;
        }
    return DA_OK;
}

/* Softmin weights w[8] = softmax(-beta d) over v's reached neighbours (0 elsewhere) and their
 * weighted mean; returns 0 (all w = 0) if no neighbour is reached. */
static int softmin8(const int *nb, const double *d, double beta, double *w, double *mean)
{
    double dmin = INFINITY, z = 0, m = 0;
    for (int k = 0; k < 8; k++)
        if (nb[k] >= 0 && d[nb[k]] < dmin)
            dmin = d[nb[k]];
    if (isinf(dmin)) {
        memset(w, 0, 8 * sizeof *w);
        return 0;
    }
    for (int k = 0; k < 8; k++) {
        if (nb[k] >= 0 && !isinf(d[nb[k]])) {
            w[k] = exp(-beta * (d[nb[k]] - dmin));
            z += w[k];
            m += w[k] * d[nb[k]];
        } else {
            w[k] = 0.0;
        }
    }
    z = 1 / z;
    for (int k = 0; k < 8; k++)
        w[k] *= z;
    *mean = m * z;
    return 1;
}

/* t-conorm S(a, b) and its partial derivatives */
static inline double tconorm(const da_sp_relaxed_cfg *cfg, double a, double b, double *sa, double *sb)
{
    switch (cfg->tconorm) {
    case DA_SP_TCONORM_HAMACHER: {
        double p = cfg->hamacher_p, num = a + b + (p - 2) * a * b, den = 1 + (p - 1) * a * b;
        *sa = ((1 + (p - 2) * b) * den - num * (p - 1) * b) / (den * den);
        *sb = ((1 + (p - 2) * a) * den - num * (p - 1) * a) / (den * den);
        return num / den;
    }
    case DA_SP_TCONORM_YAGER:
        *sa = *sb = a + b < 1 ? 1.0 : 0.0;
        return a + b < 1 ? a + b : 1.0;
    default:
        *sa = 1 - b;
        *sb = 1 - a;
        return a + b - a * b;
    }
}

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

/* forward recursion and trace for one sample; fills ws->out */
static int relax_forward(const da_sp_relaxed_cfg *cfg, relax_work *ws, const double *cost)
{
    const int V = ws->V, n = cfg->n_iter;
    const double beta = cfg->beta;
    double m;
    for (int v = 0; v < V; v++)
        ws->d[v] = INFINITY;
    ws->d[0] = 0;
    for (int t = 1; t < n; t++) {
        const double *prev = ws->d + (size_t)(t - 1) * V;
        double *cur = ws->d + (size_t)t * V, *wt = ws->wts + (size_t)(t - 1) * V * 8;
        cur[0] = 0; /* the source is reset after every update */
        for (int v = 1; v < V; v++)
            cur[v] = softmin8(ws->nbr + 8 * v, prev, beta, wt + 8 * v, &m) ? m + cost[v]
                                                                             : INFINITY;
    }
    const double *last = ws->d + (size_t)(n - 1) * V;
    for (int v = 0; v < V; v++)
        softmin8(ws->nbr + 8 * v, last, beta, ws->P + 8 * v, &m);
    if (cfg->stop_at_source)
        memset(ws->P, 0, 8 * sizeof *ws->P);
    /* trace back from the goal */
    memset(ws->T, 0, (size_t)V * sizeof *ws->T);
    memset(ws->q, 0, (size_t)V * sizeof *ws->q);
    ws->q[V - 1] = 1;
    const int is_while = cfg->loop == DA_SP_LOOP_WHILE;
    if (is_while)
        ws->c[0] = ws->p[0] = sigmoid(beta);
    for (int k = 1;; k++) {
        if (relax_reserve(ws, k + 1))
            return DA_ENOMEM;
        const double *Tp = ws->T + (size_t)(k - 1) * V, *qp = ws->q + (size_t)(k - 1) * V;
        double *Tk = ws->T + (size_t)k * V, *qk = ws->q + (size_t)k * V, sa, sb;
        for (int v = 0; v < V; v++)
            Tk[v] = tconorm(cfg, Tp[v], qp[v], &sa, &sb);
        int stop;
        if (is_while) {
            ws->c[k] = sigmoid(beta * (1 - Tk[0]));
            ws->p[k] = ws->p[k - 1] * ws->c[k];
            stop = ws->p[k] <= cfg->epsilon || k >= cfg->max_iter;
        } else {
            stop = k >= n;
        }
        if (stop) {
            ws->K = k;
            break;
        }
        memset(qk, 0, (size_t)V * sizeof *qk);
        for (int v = 0; v < V; v++) {
            if (qp[v] == 0)
                continue;
            for (int j = 0; j < 8; j++)
                if (ws->P[8 * v + j] > 0)
                    qk[ws->nbr[8 * v + j]] += qp[v] * ws->P[8 * v + j];
        }
    }
    const int K = ws->K;
    const double *TK = ws->T + (size_t)K * V;
    if (!is_while) {
        memcpy(ws->out, TK, (size_t)V * sizeof *ws->out);
        return DA_OK;
    }
    for (int v = 0; v < V; v++)
        ws->out[v] = ws->p[K - 1] * TK[v];
    for (int k = 1; k < K; k++) {
        double a = ws->p[k - 1] - ws->p[k];
        const double *Tk = ws->T + (size_t)k * V;
        for (int v = 0; v < V; v++)
            ws->out[v] += a * Tk[v];
    }
    return DA_OK;
}

/* While: weight a_k of T^k in out, and the gradients through the continuation
 * probabilities (ws->gck[k] = d L / d T^k_s through c_k) for the cotangent g */
static double while_weight(const relax_work *ws, int k)
{
    return k < ws->K ? ws->p[k - 1] - ws->p[k] : ws->p[ws->K - 1];
}

static void while_backward(const da_sp_relaxed_cfg *cfg, relax_work *ws, const double *g)
{
    const int V = ws->V, K = ws->K;
    /* gpk[k] = dL/dp_k (k < K) from the weights: p_k enters a_{k+1} (+) and a_k (-) */
    for (int k = 0; k < K; k++)
        ws->gpk[k] = 0;
    for (int k = 1; k <= K; k++) {
        const double *Tk = ws->T + (size_t)k * V;
        double ga = 0;
        for (int v = 0; v < V; v++)
            ga += g[v] * Tk[v];
        ws->gpk[k - 1] += ga;
        if (k < K)
            ws->gpk[k] -= ga;
    }
    /* p_k = p_{k-1} c_k, c_k = sigmoid(beta (1 - T^k_s)); p_0 is a constant */
    for (int k = K - 1; k >= 1; k--) {
        double c = ws->c[k];
        ws->gck[k] = ws->gpk[k] * ws->p[k - 1] * (-cfg->beta) * c * (1 - c);
        ws->gpk[k - 1] += ws->gpk[k] * c;
    }
}

/* reverse pass for cotangent g of out: grad += J^T g */
static void relax_backward(const da_sp_relaxed_cfg *cfg, relax_work *ws, const double *g,
                           double *grad)
{
    const int V = ws->V, K = ws->K, n = cfg->n_iter, is_while = cfg->loop == DA_SP_LOOP_WHILE;
    const double beta = cfg->beta;
    if (is_while)
        while_backward(cfg, ws, g);
    double a = is_while ? while_weight(ws, K) : 1.0;
    for (int v = 0; v < V; v++) {
        ws->gT[v] = a * g[v];
        ws->gq[v] = 0; /* q^K is not used */
    }
    memset(ws->gP, 0, (size_t)V * 8 * sizeof *ws->gP);
    for (int k = K; k >= 1; k--) {
        const double *Tp = ws->T + (size_t)(k - 1) * V, *qp = ws->q + (size_t)(k - 1) * V;
        double sa, sb;
        for (int v = 0; v < V; v++) {
            tconorm(cfg, Tp[v], qp[v], &sa, &sb);
            ws->gTp[v] = sa * ws->gT[v];
            ws->gqp[v] = sb * ws->gT[v];
        }
        if (k < K) /* q^k = transport(q^{k-1}, P) */
            for (int v = 0; v < V; v++) {
                const double *pv = ws->P + 8 * v;
                const int *nb = ws->nbr + 8 * v;
                double *gpv = ws->gP + 8 * v, acc = 0;
                for (int j = 0; j < 8; j++)
                    if (pv[j] > 0) {
                        double gu = ws->gq[nb[j]];
                        gpv[j] += qp[v] * gu;
                        acc += pv[j] * gu;
                    }
                ws->gqp[v] += acc;
            }
        if (is_while && k - 1 >= 1) {
            double ak = while_weight(ws, k - 1);
            for (int v = 0; v < V; v++)
                ws->gTp[v] += ak * g[v];
            ws->gTp[0] += ws->gck[k - 1];
        }
        double *t = ws->gT;
        ws->gT = ws->gTp;
        ws->gTp = t;
        t = ws->gq;
        ws->gq = ws->gqp;
        ws->gqp = t;
    }
    /* P_v = softmax(-beta d^{n-1}_{N(v)}) */
    memset(ws->gd, 0, (size_t)V * sizeof *ws->gd);
    for (int v = 0; v < V; v++) {
        const double *pv = ws->P + 8 * v, *gpv = ws->gP + 8 * v;
        double s = 0;
        for (int j = 0; j < 8; j++)
            s += pv[j] * gpv[j];
        for (int j = 0; j < 8; j++)
            if (pv[j] > 0)
                ws->gd[ws->nbr[8 * v + j]] += -beta * pv[j] * (gpv[j] - s);
    }
    /* d^t_v = sum_k p_k d^{t-1}_k + c_v (v != s); d(mean)/d d_j = p_j (1 - beta (d_j - mean)) */
    for (int t = n - 1; t >= 1; t--) {
        const double *prev = ws->d + (size_t)(t - 1) * V, *cur = ws->d + (size_t)t * V;
        const double *wt = ws->wts + (size_t)(t - 1) * V * 8;
        memset(ws->gdp, 0, (size_t)V * sizeof *ws->gdp);
        for (int v = 1; v < V; v++) {
            double gv = ws->gd[v], m = 0;
            const double *w = wt + 8 * v;
            const int *nb = ws->nbr + 8 * v;
            if (gv == 0 || isinf(cur[v]))
                continue;
            grad[v] += gv;
            for (int j = 0; j < 8; j++)
                if (w[j] > 0)
                    m += w[j] * prev[nb[j]];
            for (int j = 0; j < 8; j++)
                if (w[j] > 0)
                    ws->gdp[nb[j]] += gv * w[j] * (1 - beta * (prev[nb[j]] - m));
        }
        double *tmp = ws->gd;
        ws->gd = ws->gdp;
        ws->gdp = tmp;
    }
}

/* ---------------------------------------------------------------- checks, driver */

da_sp_relaxed_cfg da_sp_relaxed_default(int H, int W)
{
    da_sp_relaxed_cfg c = {.beta = 10.0,
                           .n_iter = 2 * (H > W ? H : W),
                           .loop = DA_SP_LOOP_FOR,
                           .tconorm = DA_SP_TCONORM_PROBABILISTIC,
                           .hamacher_p = 5.0,
                           .max_iter = 1024,
                           .epsilon = 1e-5,
                           .stop_at_source = 0,
                           .norm = DA_SP_NORM_L2SQ};
    return c;
}

static int check_cfg(const char *who, const da_sp_relaxed_cfg *c, int H, int W)
{
    int side = H > W ? H : W;
    if (!c)
        return da_set_error(DA_EINVAL, "%s: cfg is NULL", who);
    if (isnan(c->beta) || (c->tconorm == DA_SP_TCONORM_HAMACHER && isnan(c->hamacher_p)) ||
        (c->loop == DA_SP_LOOP_WHILE && isnan(c->epsilon)))
        return da_set_error(DA_ENAN, "%s: beta, hamacher_p or epsilon is NaN", who);
    if (!(c->beta > 0) || !isfinite(c->beta))
        return da_set_error(DA_ERANGE, "%s: beta = %g must be finite and > 0", who, c->beta);
    if (c->n_iter < 1 || c->n_iter < side - 1 || (double)c->n_iter * H * W > DA_SP_RELAXED_MAX_WORK)
        return da_set_error(DA_ERANGE, "%s: n_iter = %d outside [max(1, max(H,W)-1) = %d, "
                                       "2^24 / (H W)]", who, c->n_iter, side - 1 > 1 ? side - 1 : 1);
    if (c->loop != DA_SP_LOOP_FOR && c->loop != DA_SP_LOOP_WHILE)
        return da_set_error(DA_EINVAL, "%s: unknown loop type %d", who, (int)c->loop);
    if ((unsigned)c->tconorm > DA_SP_TCONORM_YAGER)
        return da_set_error(DA_EINVAL, "%s: unknown t-conorm %d", who, (int)c->tconorm);
    if (c->tconorm == DA_SP_TCONORM_HAMACHER && (!(c->hamacher_p >= 0) || !isfinite(c->hamacher_p)))
        return da_set_error(DA_ERANGE, "%s: hamacher_p = %g must be finite and >= 0", who,
                            c->hamacher_p);
    if (c->loop == DA_SP_LOOP_WHILE &&
        (c->max_iter < 1 || c->max_iter > 1000000 || !(c->epsilon >= 0 && c->epsilon < 1)))
        return da_set_error(DA_ERANGE, "%s: max_iter = %d outside [1, 1e6] or epsilon = %g "
                                       "outside [0, 1)", who, c->max_iter, c->epsilon);
    if (c->norm != DA_SP_NORM_L1 && c->norm != DA_SP_NORM_L2SQ)
        return da_set_error(DA_EINVAL, "%s: unknown norm %d", who, (int)c->norm);
    return DA_OK;
}

/* per-sample loss of out against t, and its gradient times scale into g */
static double sample_loss(const da_sp_relaxed_cfg *cfg, int V, const double *out,
                          const double *t, double scale, double *g)
{
    double s = 0;
    for (int v = 0; v < V; v++) {
        double r = out[v] - t[v];
        if (cfg->norm == DA_SP_NORM_L1) {
            s += fabs(r);
            g[v] = scale * (double)((r > 0) - (r < 0));
        } else {
            s += r * r;
            g[v] = scale * 2 * r;
        }
    }
    return s;
}

/* Run every sample: forward (out -> out), then the reverse pass with cotangent cot (if
 * non-NULL) or the loss gradient against target (if non-NULL, scaled by gscale, loss per
 * sample into losses) accumulated into grad (if non-NULL). */
static int relax_batch(const char *who, const da_sp_relaxed_cfg *cfg, int batch, int H, int W,
                       const double *cost, double *out, const double *cot,
                       const double *target, double gscale, double *losses, double *grad)
{
    const long V = (long)H * W;
    int err = DA_OK;
#pragma omp parallel if (DA_SP_PARALLEL(batch, 16.0 * batch * V * cfg->n_iter))
    {
        relax_work ws;
        if (relax_init(&ws, cfg, H, W)) {
#pragma omp atomic write
            err = DA_ENOMEM;
        }
#pragma omp for schedule(dynamic)
        for (int b = 0; b < batch; b++) {
            if (!ws.d)
                continue;
            if (relax_forward(cfg, &ws, cost + b * V)) {
#pragma omp atomic write
                err = DA_ENOMEM;
                continue;
            }
            if (out)
                memcpy(out + b * V, ws.out, (size_t)V * sizeof *out);
            const double *g = cot ? cot + b * V : NULL;
            if (target) {
                losses[b] = sample_loss(cfg, (int)V, ws.out, target + b * V, gscale, ws.g);
                g = ws.g;
            }
            if (grad && g)
                relax_backward(cfg, &ws, g, grad + b * V);
        }
        relax_release(&ws);
    }
    return err ? da_set_error(err, "%s: out of memory", who) : DA_OK;
}

static int check_common(const char *who, const da_sp_relaxed_cfg *cfg, int batch, int H, int W,
                        const double *cost)
{
    int rc = da_sp_check_grid(who, batch, H, W);
    if (!rc)
        rc = check_cfg(who, cfg, H, W);
    if (!rc)
        rc = da_sp_check_values(who, "cost", cost, (long)batch * H * W, 0);
    return rc;
}

int da_sp_relaxed_path(const da_sp_relaxed_cfg *cfg, int batch, int H, int W,
                       const double *cost, double *out, const double *cot, double *grad_cost)
{
    const char *who = "da_sp_relaxed_path";
    long n = (long)batch * H * W;
    int rc = check_common(who, cfg, batch, H, W, cost);
    if (rc)
        return rc;
    if (!cot != !grad_cost)
        return da_set_error(DA_EINVAL, "%s: give both cot and grad_cost or neither", who);
    if (!out && !cot)
        return da_set_error(DA_EINVAL, "%s: nothing to compute (out and cot NULL)", who);
    if (cot && (rc = da_sp_check_values(who, "cot", cot, n, 0)))
        return rc;
    if (grad_cost)
        memset(grad_cost, 0, (size_t)n * sizeof *grad_cost);
    return relax_batch(who, cfg, batch, H, W, cost, out, cot, NULL, 0, NULL, grad_cost);
}

int da_sp_relaxed_loss(const da_sp_relaxed_cfg *cfg, int batch, int H, int W,
                       const double *cost, const double *target, double *loss, double *grad_cost)
{
    const char *who = "da_sp_relaxed_loss";
    long n = (long)batch * H * W;
    int rc = check_common(who, cfg, batch, H, W, cost);
    if (!rc)
        rc = da_sp_check_values(who, "target", target, n, 0);
    if (!rc && !loss)
        rc = da_set_error(DA_EINVAL, "%s: loss is NULL", who);
    if (rc)
        return rc;
    double *losses = da_malloc((size_t)batch * sizeof *losses);
    if (!losses)
        return da_set_error(DA_ENOMEM, "%s: out of memory", who);
    if (grad_cost)
        memset(grad_cost, 0, (size_t)n * sizeof *grad_cost);
    rc = relax_batch(who, cfg, batch, H, W, cost, NULL, NULL, target, 1.0 / batch, losses,
                     grad_cost);
    if (!rc) {
        double s = 0;
        for (int b = 0; b < batch; b++)
            s += losses[b];
        *loss = s / batch;
    }
    da_free(losses);
    return rc;
}

/* ---------------------------------------------------------------- tensor faces */

typedef struct {
    const da_sp_relaxed_cfg *cfg;
    const double *target; /* loss op only */
} relax_op_state;

static int path_op_forward(da_custom_args *a, double *out)
{
    const da_tensor *c = a->in[0];
    const relax_op_state *st = a->state;
    return relax_batch("da_sp_relaxed_path_op", st->cfg, c->shape[0], c->shape[1], c->shape[2],
                       a->in_data[0], out, NULL, NULL, 0, NULL, NULL);
}

static int path_op_backward(da_custom_args *a, const double *og, double *const *ig)
{
    const da_tensor *c = a->in[0];
    const relax_op_state *st = a->state;
    const char *who = "da_sp_relaxed_path_op (backward)";
    if (!ig[0])
        return DA_OK;
    int rc = da_sp_check_values(who, "output gradient", og, c->size, 0);
    return rc ? rc : relax_batch(who, st->cfg, c->shape[0], c->shape[1], c->shape[2],
                                 a->in_data[0], NULL, og, NULL, 0, NULL, ig[0]);
}

static int loss_op_value(da_custom_args *a, double *out, double *grad)
{
    const da_tensor *c = a->in[0];
    const relax_op_state *st = a->state;
    int batch = c->shape[0];
    double *losses = da_ctx_alloc(a->ctx, (size_t)batch * sizeof *losses);
    if (!losses)
        return DA_ENOMEM;
    int rc = relax_batch("da_sp_relaxed", st->cfg, batch, c->shape[1], c->shape[2],
                         a->in_data[0], NULL, NULL, st->target, 1.0 / batch, losses, grad);
    double s = 0;
    for (int b = 0; b < batch && !rc; b++)
        s += losses[b];
    out[0] = s / batch;
    return rc;
}

static relax_op_state *op_state(const char *who, da_ctx *ctx, da_tensor *cost,
                                const da_sp_relaxed_cfg *cfg)
{
    int batch, H, W;
    if (!ctx) {
        da_set_error(DA_EINVAL, "%s: NULL ctx", who);
        return NULL;
    }
    if (da_sp_check_tensor(who, cost, &batch, &H, &W) || check_cfg(who, cfg, H, W) ||
        da_check_finite(cost, "cost"))
        return NULL;
    relax_op_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (st)
        st->cfg = cfg;
    return st;
}

da_tensor *da_sp_relaxed_path_op(da_ctx *ctx, da_tensor *cost, const da_sp_relaxed_cfg *cfg)
{
    const char *who = "da_sp_relaxed_path_op";
    relax_op_state *st = op_state(who, ctx, cost, cfg);
    return st ? da_op_custom(ctx, who, &cost, 1, 3, cost->shape, path_op_forward,
                             path_op_backward, NULL, st)
              : NULL;
}

da_tensor *da_sp_relaxed(da_ctx *ctx, da_tensor *cost, const double *target,
                         const da_sp_relaxed_cfg *cfg)
{
    const char *who = "da_sp_relaxed";
    relax_op_state *st = op_state(who, ctx, cost, cfg);
    if (!st || da_sp_check_values(who, "target", target, cost->size, 0))
        return NULL;
    st->target = target;
    return da_op_loss(ctx, who, &cost, 1, loss_op_value, NULL, st);
}
