/* shortest_path_smooth.c - stochastic smoothing (relax/smooth.h, Petersen et al. arXiv
 * 2410.08125, Eqs. 3-6) of a shortest-path solver and of its Hamming loss: section 4 of
 * shortest_path.h. The smoothing itself (samples, scores, baselines) is relax/'s; this
 * file turns the solver and the loss into black boxes f: R^n -> R^m for it. */
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "alloc.h"
#include "shortest_path.h"
#include "shortest_path_impl.h"

/* ---------------------------------------------------------------- black boxes */

typedef struct {
    da_sp_solver_fn solve;
    void *user;
    const double *target; /* [n] the current row's target (loss only) */
    double *y;            /* [n] scratch: the solver's output (loss only) */
} box;

/* f(c) = y*(c) */
static int path_box(void *u, int n, const double *x, int m, double *y)
{
    const box *b = u;
    return b->solve(b->user, n, x, y);
}

/* f(c) = Hamming(y*(c), target) */
static int loss_box(void *u, int n, const double *x, int m, double *y)
{
    const box *b = u;
    int rc = b->solve(b->user, n, x, b->y);
    if (rc)
        return rc;
    double l = 0;
    for (int v = 0; v < n; v++)
        l += b->y[v] * (1.0 - b->target[v]) + (1.0 - b->y[v]) * b->target[v];
    y[0] = l;
    return DA_OK;
}

/* Dijkstra on max(c, 0); user is a da_sp_work (its buf holds the clipped costs) */
static int dijkstra_box(void *u, int n, const double *cost, double *y)
{
    da_sp_work *ws = u;
    for (int v = 0; v < n; v++)
        ws->buf[v] = cost[v] > 0 ? cost[v] : 0.0;
    da_sp_solve(ws, ws->buf, y);
    return DA_OK;
}

/* a Dijkstra workspace in the ctx (lives until the ctx is reset) */
static da_sp_work *work_in_ctx(da_ctx *ctx, int H, int W)
{
    size_t V = (size_t)H * W, cap = 8 * V + 1;
    da_sp_work *ws = da_ctx_alloc(ctx, sizeof *ws);
    if (!ws)
        return NULL;
    ws->H = H;
    ws->W = W;
    ws->dist = da_ctx_alloc(ctx, V * sizeof *ws->dist);
    ws->pred = da_ctx_alloc(ctx, V * sizeof *ws->pred);
    ws->done = da_ctx_alloc(ctx, V);
    ws->heap_key = da_ctx_alloc(ctx, cap * sizeof *ws->heap_key);
    ws->heap_v = da_ctx_alloc(ctx, cap * sizeof *ws->heap_v);
    ws->buf = da_ctx_alloc(ctx, V * sizeof *ws->buf);
    if (!ws->dist || !ws->pred || !ws->done || !ws->heap_key || !ws->heap_v || !ws->buf)
        return NULL;
    return ws;
}

/* ---------------------------------------------------------------- checks */

static int check_common(const char *who, const da_smooth_cfg *cfg, da_rng *rng, int n,
                        const void *solve)
{
    if (!cfg || !rng || !solve)
        return da_set_error(DA_EINVAL, "%s: NULL cfg, rng or solver", who);
    if (n < 1 || n > DA_SMOOTH_MAX_DIM)
        return da_set_error(DA_ERANGE, "%s: %d costs per sample outside [1, %d]", who, n,
                            DA_SMOOTH_MAX_DIM);
    return da_smooth_plan(cfg, n, NULL, NULL);
}

static int check_loss_args(const char *who, const da_smooth_cfg *cfg, da_rng *rng, int batch,
                           int n, const void *solve, const double *cost, const double *target,
                           const double *loss, const double *hess)
{
    int rc = check_common(who, cfg, rng, n, solve);
    if (!rc && batch < 1)
        rc = da_set_error(DA_ERANGE, "%s: batch %d < 1", who, batch);
    if (!rc && !loss)
        rc = da_set_error(DA_EINVAL, "%s: loss is NULL", who);
    if (!rc && hess && !da_dist_smooth2(cfg->dist))
        rc = da_set_error(DA_EINVAL, "%s: the Hessian needs a C^2 smoothing density (%s is "
                                     "not)", who, da_dist_name(cfg->dist));
    if (!rc)
        rc = da_sp_check_values(who, "cost", cost, (long)batch * n, 0);
    if (!rc)
        rc = da_sp_check_values(who, "target", target, (long)batch * n, 0);
    return rc;
}

/* ---------------------------------------------------------------- (a) the solver */

da_tensor *da_sp_smooth_solver_op(da_ctx *ctx, da_tensor *cost, da_sp_solver_fn solve,
                                  void *user, const da_smooth_cfg *cfg, da_rng *rng)
{
    const char *who = "da_sp_smooth_solver_op";
    if (!cost) {
        if (!da_last_error_code()) /* else keep the error of the op that gave NULL */
            da_set_error(DA_EINVAL, "%s: cost tensor is NULL", who);
        return NULL;
    }
    if (!ctx) {
        da_set_error(DA_EINVAL, "%s: NULL ctx", who);
        return NULL;
    }
    if (cost->ndim != 1 && cost->ndim != 2) {
        da_set_error(DA_ESHAPE, "%s: cost must be [n] or [batch][n] (ndim %d)", who, cost->ndim);
        return NULL;
    }
    int n = cost->shape[cost->ndim - 1];
    if (check_common(who, cfg, rng, n, (const void *)solve))
        return NULL;
    box *b = da_ctx_alloc(ctx, sizeof *b);
    if (!b)
        return NULL;
    *b = (box){.solve = solve, .user = user};
    return da_smooth_op(ctx, cost, n, path_box, b, cfg, rng);
}

da_tensor *da_sp_smooth_path_op(da_ctx *ctx, da_tensor *cost, const da_smooth_cfg *cfg,
                                da_rng *rng)
{
    const char *who = "da_sp_smooth_path_op";
    int batch, H, W;
    if (!ctx) {
        da_set_error(DA_EINVAL, "%s: NULL ctx", who);
        return NULL;
    }
    if (da_sp_check_tensor(who, cost, &batch, &H, &W))
        return NULL;
    int flat[2] = {batch, H * W};
    da_sp_work *ws = work_in_ctx(ctx, H, W);
    da_tensor *y = ws ? da_sp_smooth_solver_op(ctx, da_reshape(ctx, cost, 2, flat),
                                               dijkstra_box, ws, cfg, rng)
                      : NULL;
    return y ? da_reshape(ctx, y, 3, cost->shape) : NULL;
}

int da_sp_smooth_path(const da_smooth_cfg *cfg, da_rng *rng, int batch, int H, int W,
                      const double *cost, double *path_mean, const double *cot,
                      double *grad_cost)
{
    const char *who = "da_sp_smooth_path";
    int rc = da_sp_check_grid(who, batch, H, W);
    long size = (long)batch * H * W;
    if (!rc)
        rc = da_sp_check_values(who, "cost", cost, size, 0);
    if (!rc && !cot != !grad_cost)
        rc = da_set_error(DA_EINVAL, "%s: give both cot and grad_cost or neither", who);
    if (!rc && !path_mean && !grad_cost)
        rc = da_set_error(DA_EINVAL, "%s: no output requested", who);
    if (!rc && cot)
        rc = da_sp_check_values(who, "cot", cot, size, 0);
    if (rc)
        return rc;
    /* one implementation: the tensor face on a private ctx */
    da_ctx *ctx = da_ctx_new();
    int shape[3] = {batch, H, W};
    da_tensor *c = ctx ? da_ctx_tensor_from(ctx, DA_F64, 3, shape, cost) : NULL;
    if (c)
        c->requires_grad = cot != NULL;
    da_tensor *y = da_sp_smooth_path_op(ctx, c, cfg, rng);
    rc = y ? DA_OK : (da_last_error_code() ? da_last_error_code() : DA_ENOMEM);
    if (!rc && path_mean)
        da_tensor_copy_to(y, path_mean);
    if (!rc && cot)
        rc = da_backward_from(ctx, y, cot);
    if (!rc && cot)
        memcpy(grad_cost, c->grad, (size_t)size * sizeof *grad_cost);
    da_ctx_free(ctx);
    return rc;
}

/* ---------------------------------------------------------------- (b) the loss */

int da_sp_smooth_solver_loss(const da_smooth_cfg *cfg, da_rng *rng, int batch, int n,
                             da_sp_solver_fn solve, void *user, const double *cost,
                             const double *target, double *loss, double *grad_cost,
                             double *hess)
{
    int rc = check_loss_args("da_sp_smooth_solver_loss", cfg, rng, batch, n,
                             (const void *)solve, cost, target, loss, hess);
    if (rc)
        return rc;
    box b = {.solve = solve, .user = user, .y = da_malloc((size_t)n * sizeof(double))};
    if (!b.y)
        return da_set_error(DA_ENOMEM, "da_sp_smooth_solver_loss: out of memory");
    double total = 0;
    for (int r = 0; r < batch && !rc; r++) {
        const double *x = cost + (size_t)r * n;
        double *g = grad_cost ? grad_cost + (size_t)r * n : NULL, value;
        double *h = hess ? hess + (size_t)r * n * n : NULL;
        b.target = target + (size_t)r * n;
        rc = h ? da_smooth_hessian(cfg, loss_box, &b, n, x, rng, &value, g, h)
               : da_smooth_jacobian(cfg, loss_box, &b, n, 1, x, rng, &value, g);
        total += value;
    }
    da_free(b.y);
    if (rc)
        return rc;
    *loss = total / batch;
    for (long i = 0; grad_cost && i < (long)batch * n; i++)
        grad_cost[i] /= batch;
    for (long i = 0; hess && i < (long)batch * n * n; i++)
        hess[i] /= batch;
    return DA_OK;
}

int da_sp_smooth_loss(const da_smooth_cfg *cfg, da_rng *rng, int batch, int H, int W,
                      const double *cost, const double *target, double *loss,
                      double *grad_cost, double *hess)
{
    int rc = da_sp_check_grid("da_sp_smooth_loss", batch, H, W);
    da_sp_work ws;
    if (rc)
        return rc;
    if (da_sp_work_init(&ws, H, W))
        return da_set_error(DA_ENOMEM, "da_sp_smooth_loss: out of memory");
    rc = da_sp_smooth_solver_loss(cfg, rng, batch, H * W, dijkstra_box, &ws, cost, target,
                                  loss, grad_cost, hess);
    da_sp_work_release(&ws);
    return rc;
}

typedef struct {
    const da_smooth_cfg *cfg;
    da_rng *rng;
    da_sp_solver_fn solve;
    void *user;
    const double *target;
    int batch, n;
} loss_state;

static int loss_value(da_custom_args *a, double *out, double *grad)
{
    const loss_state *st = a->state;
    return da_sp_smooth_solver_loss(st->cfg, st->rng, st->batch, st->n, st->solve, st->user,
                                    a->in_data[0], st->target, out, grad, NULL);
}

static da_tensor *loss_op(da_ctx *ctx, const char *who, da_tensor *cost, int batch, int n,
                          const double *target, da_sp_solver_fn solve, void *user,
                          const da_smooth_cfg *cfg, da_rng *rng)
{
    static const double dummy = 0; /* stands for the loss pointer the op fills */
    /* the cost tensor is checked by da_check_finite; the plain checks validate target */
    if (check_loss_args(who, cfg, rng, batch, n, (const void *)solve, target, target, &dummy,
                        NULL) ||
        da_check_finite(cost, "cost"))
        return NULL;
    loss_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st)
        return NULL;
    *st = (loss_state){.cfg = cfg, .rng = rng, .solve = solve, .user = user, .target = target,
                       .batch = batch, .n = n};
    return da_op_loss(ctx, who, &cost, 1, loss_value, NULL, st);
}

da_tensor *da_sp_smooth_solver_loss_op(da_ctx *ctx, da_tensor *cost, const double *target,
                                       da_sp_solver_fn solve, void *user,
                                       const da_smooth_cfg *cfg, da_rng *rng)
{
    const char *who = "da_sp_smooth_solver_loss_op";
    if (!cost) {
        if (!da_last_error_code()) /* else keep the error of the op that gave NULL */
            da_set_error(DA_EINVAL, "%s: cost tensor is NULL", who);
        return NULL;
    }
    if (!ctx) {
        da_set_error(DA_EINVAL, "%s: NULL ctx", who);
        return NULL;
    }
    if (cost->ndim != 1 && cost->ndim != 2) {
        da_set_error(DA_ESHAPE, "%s: cost must be [n] or [batch][n] (ndim %d)", who, cost->ndim);
        return NULL;
    }
    int n = cost->shape[cost->ndim - 1];
    return loss_op(ctx, who, cost, (int)(cost->size / n), n, target, solve, user, cfg, rng);
}

da_tensor *da_sp_smooth_loss_op(da_ctx *ctx, da_tensor *cost, const double *target,
                                const da_smooth_cfg *cfg, da_rng *rng)
{
    const char *who = "da_sp_smooth_loss_op";
    int batch, H, W;
    if (!ctx) {
        da_set_error(DA_EINVAL, "%s: NULL ctx", who);
        return NULL;
    }
    if (da_sp_check_tensor(who, cost, &batch, &H, &W))
        return NULL;
    da_sp_work *ws = work_in_ctx(ctx, H, W);
    return ws ? loss_op(ctx, who, cost, batch, H * W, target, dijkstra_box, ws, cfg, rng) : NULL;
}
