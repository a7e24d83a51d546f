/* sinkhorn.c - optimal-transport soft sort / soft rank (Cuturi et al. NeurIPS 2019) with
 * reverse-mode differentiation through the unrolled iterations: batch drivers (OpenMP
 * over rows), checks, tensor faces and the BCE ranking loss. One row's iterations, in the
 * log or the scaling domain, are in sinkhorn_row.c. Conventions and formulas:
 * sinkhorn.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sinkhorn.h"
#include "sinkhorn_impl.h"
#include "alloc.h"

typedef enum { OUT_P, OUT_SORTED, OUT_RANKS } sk_output;

static int worth_threads(int batch, int n) { return batch > 1 && (long)batch * n * n >= 4096; }

/* ---- batch drivers ---- */

typedef struct {
    double *P, *sorted, *ranks;            /* outputs or NULL */
    const double *cP, *cs, *cr;            /* cotangents or NULL */
    double *grad;                          /* J^T cot or NULL */
    double *U, *V;                         /* kept potentials [batch][iters+1][n] or NULL */
} sk_io;

static int sk_run(const da_sk_problem *pb, int batch, const double *x, const sk_io *io)
{
    int n = pb->n, failed = 0;
    long pot = (long)(pb->iters + 1) * n, nn = (long)n * n;
#pragma omp parallel if (worth_threads(batch, n))
    {
        da_sk_ws ws;
        int ok = da_sk_ws_alloc(&ws, pb, !io->U, 0) == DA_OK;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < batch; b++) {
            if (!ok)
                continue;
            long o = (long)b * n;
            double *U = io->U ? io->U + b * pot : ws.U, *V = io->V ? io->V + b * pot : ws.V;
            da_sk_prepare_row(pb, &ws, x + o);
            da_sk_iterate(pb, &ws, U, V);
            da_sk_outputs(pb, &ws, x + o, U + pb->iters * (long)n, V + pb->iters * (long)n,
                       io->P ? io->P + b * nn : NULL, io->sorted ? io->sorted + o : NULL,
                       io->ranks ? io->ranks + o : NULL);
            if (io->grad)
                da_sk_backward_row(pb, &ws, x + o, U, V, io->cP ? io->cP + b * nn : NULL,
                                io->cs ? io->cs + o : NULL, io->cr ? io->cr + o : NULL,
                                io->grad + o, 0);
        }
        if (ok)
            da_sk_ws_free(&ws);
    }
    return failed ? da_set_error(DA_ENOMEM, "sinkhorn: out of memory for scratch (n = %d, "
                                            "iterations = %d)", n, pb->iters)
                  : DA_OK;
}

/* ---- checks ---- */

static int check_cfg(const char *fn, const da_sinkhorn_cfg *cfg, int batch)
{
    if (!cfg)
        return da_set_error(DA_EINVAL, "%s: cfg is NULL", fn);
    if (batch < 1)
        return da_set_error(DA_ERANGE, "%s: batch %d < 1", fn, batch);
    if (cfg->n < 2 || cfg->n > DA_SINKHORN_MAX_N)
        return da_set_error(DA_ERANGE, "%s: n = %d outside [2, %d]", fn, cfg->n,
                            DA_SINKHORN_MAX_N);
    if (cfg->iterations < 1 || cfg->iterations > DA_SINKHORN_MAX_ITER)
        return da_set_error(DA_ERANGE, "%s: iterations = %d outside [1, %d]", fn,
                            cfg->iterations, DA_SINKHORN_MAX_ITER);
    if (isnan(cfg->epsilon))
        return da_set_error(DA_ENAN, "%s: epsilon is NaN", fn);
    if (!(cfg->epsilon >= DA_SINKHORN_MIN_EPS) || isinf(cfg->epsilon))
        return da_set_error(DA_ERANGE, "%s: epsilon %g is not in [%g, inf)", fn, cfg->epsilon,
                            DA_SINKHORN_MIN_EPS);
    return DA_OK;
}

static int check_finite(const char *fn, const double *a, long count, const char *what)
{
    if (a && !da_all_finite(a, count))
        return da_set_error(DA_ENAN, "%s: %s has a NaN or Inf", fn, what);
    return DA_OK;
}

static da_sk_problem make_problem(const da_sinkhorn_cfg *cfg)
{
    return (da_sk_problem){cfg->n, cfg->iterations, 1.0 / cfg->epsilon, 0};
}

static int sort_checked(const char *fn, const da_sinkhorn_cfg *cfg, int log_only, int batch,
                        const double *x, double *P, double *sorted, double *ranks,
                        const double *cot_P, const double *cot_sorted, const double *cot_ranks,
                        double *grad_x)
{
    int rc = check_cfg(fn, cfg, batch);
    if (rc)
        return rc;
    int any_cot = cot_P || cot_sorted || cot_ranks;
    if (!x || (!P && !sorted && !ranks && !grad_x) || (any_cot != !!grad_x))
        return da_set_error(DA_EINVAL,
                            "%s: x is NULL, nothing requested, or grad_x without any "
                            "cotangent (or a cotangent without grad_x)",
                            fn);
    long count = (long)batch * cfg->n;
    if ((rc = check_finite(fn, x, count, "x")) ||
        (rc = check_finite(fn, cot_P, count * cfg->n, "cot_P")) ||
        (rc = check_finite(fn, cot_sorted, count, "cot_sorted")) ||
        (rc = check_finite(fn, cot_ranks, count, "cot_ranks")))
        return rc;
    da_sk_problem pb = make_problem(cfg);
    pb.log_only = log_only;
    sk_io io = {P, sorted, ranks, cot_P, cot_sorted, cot_ranks, grad_x, NULL, NULL};
    return sk_run(&pb, batch, x, &io);
}

int da_sinkhorn_sort(const da_sinkhorn_cfg *cfg, int batch, const double *x, double *P,
                     double *sorted, double *ranks, const double *cot_P,
                     const double *cot_sorted, const double *cot_ranks, double *grad_x)
{
    return sort_checked("da_sinkhorn_sort", cfg, 0, batch, x, P, sorted, ranks, cot_P,
                        cot_sorted, cot_ranks, grad_x);
}

int da_sinkhorn_sort_log_domain(const da_sinkhorn_cfg *cfg, int batch, const double *x,
                                double *P, double *sorted, double *ranks, const double *cot_P,
                                const double *cot_sorted, const double *cot_ranks,
                                double *grad_x)
{
    return sort_checked("da_sinkhorn_sort_log_domain", cfg, 1, batch, x, P, sorted, ranks,
                        cot_P, cot_sorted, cot_ranks, grad_x);
}

/* ---- tensor faces of P / sorted / ranks ---- */

typedef struct {
    da_sk_problem pb;
    sk_output what;
    int batch;
    double *U, *V; /* [batch][iters+1][n] in the ctx, when a gradient is needed */
} sk_op_state;

static int sk_op_forward(da_custom_args *args, double *out)
{
    sk_op_state *st = args->state;
    long count = (long)st->batch * st->pb.n, pot = count * (st->pb.iters + 1);
    int rc = check_finite("da_sinkhorn", args->in_data[0], count, "x");
    if (rc)
        return rc;
    if (args->in[0]->requires_grad) {
        st->U = da_ctx_alloc(args->ctx, (size_t)pot * sizeof(double));
        st->V = da_ctx_alloc(args->ctx, (size_t)pot * sizeof(double));
        if (!st->U || !st->V)
            return DA_ENOMEM;
    }
    sk_io io = {st->what == OUT_P ? out : NULL, st->what == OUT_SORTED ? out : NULL,
                st->what == OUT_RANKS ? out : NULL, NULL, NULL, NULL, NULL, st->U, st->V};
    return sk_run(&st->pb, st->batch, args->in_data[0], &io);
}

static int sk_op_backward(da_custom_args *args, const double *og, double *const *ig)
{
    const sk_op_state *st = args->state;
    int n = st->pb.n, failed = 0;
    long pot = (long)(st->pb.iters + 1) * n, nn = (long)n * n;
    if (!ig[0])
        return DA_OK;
    if (!st->U)
        return da_set_error(DA_ESTATE, "da_sinkhorn: backward without a recorded forward");
#pragma omp parallel if (worth_threads(st->batch, n))
    {
        da_sk_ws ws;
        int ok = da_sk_ws_alloc(&ws, &st->pb, 0, 0) == DA_OK;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < st->batch; b++) {
            if (!ok)
                continue;
            long o = (long)b * n;
            da_sk_prepare_row(&st->pb, &ws, args->in_data[0] + o);
            da_sk_backward_row(&st->pb, &ws, args->in_data[0] + o, st->U + b * pot,
                            st->V + b * pot, st->what == OUT_P ? og + b * nn : NULL,
                            st->what == OUT_SORTED ? og + o : NULL,
                            st->what == OUT_RANKS ? og + o : NULL, ig[0] + o, 1);
        }
        if (ok)
            da_sk_ws_free(&ws);
    }
    return failed ? da_set_error(DA_ENOMEM, "da_sinkhorn: out of memory in backward") : DA_OK;
}

/* NULL-input handling and shape checks shared by the tensor faces */
static int check_tensor(const char *fn, da_ctx *ctx, const da_tensor *x,
                        const da_sinkhorn_cfg *cfg)
{
    if (!ctx || !x) {
        if (!ctx || !da_last_error_code()) /* keep the error of the op that gave NULL x */
            da_set_error(DA_EINVAL, "%s: NULL ctx or x", fn);
        return DA_EINVAL;
    }
    if (x->ndim != 2)
        return da_set_error(DA_ESHAPE, "%s: x must be [batch][n], got ndim %d", fn, x->ndim);
    int rc = check_cfg(fn, cfg, x->shape[0]);
    if (rc)
        return rc;
    if (x->shape[1] != cfg->n)
        return da_set_error(DA_ESHAPE, "%s: x has %d columns, cfg->n = %d", fn, x->shape[1],
                            cfg->n);
    return DA_OK;
}

static da_tensor *sk_op(const char *fn, sk_output what, da_ctx *ctx, da_tensor *x,
                        const da_sinkhorn_cfg *cfg)
{
    if (check_tensor(fn, ctx, x, cfg))
        return NULL;
    sk_op_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st)
        return NULL;
    *st = (sk_op_state){make_problem(cfg), what, x->shape[0], NULL, NULL};
    int shape[3] = {x->shape[0], cfg->n, cfg->n};
    return da_op_custom(ctx, fn, &x, 1, what == OUT_P ? 3 : 2, shape, sk_op_forward,
                        sk_op_backward, NULL, st);
}

da_tensor *da_sinkhorn_P(da_ctx *ctx, da_tensor *x, const da_sinkhorn_cfg *cfg)
{
    return sk_op("da_sinkhorn_P", OUT_P, ctx, x, cfg);
}

da_tensor *da_sinkhorn_soft_sort(da_ctx *ctx, da_tensor *x, const da_sinkhorn_cfg *cfg)
{
    return sk_op("da_sinkhorn_soft_sort", OUT_SORTED, ctx, x, cfg);
}

da_tensor *da_sinkhorn_soft_rank(da_ctx *ctx, da_tensor *x, const da_sinkhorn_cfg *cfg)
{
    return sk_op("da_sinkhorn_soft_rank", OUT_RANKS, ctx, x, cfg);
}

/* ---- the BCE ranking loss ---- */

/* ascending rank of every input of t [n] (ties by index) into rank_of [n] */
static void true_ranks(int n, const double *t, int *rank_of)
{
    for (int i = 0; i < n; i++) {
        int r = 0;
        for (int j = 0; j < n; j++)
            r += t[j] < t[i] || (t[j] == t[i] && j < i);
        rank_of[i] = r;
    }
}

/* clamped BCE term -log(q) and its derivative in q (0 when clamped) */
static double neg_log_clamped(double q, double *dq)
{
    double l = q > 0 ? log(q) : -INFINITY;
    if (l < -100) {
        *dq = 0;
        return 100;
    }
    *dq = -1 / q;
    return -l;
}

/* BCE of row P [n][n] against the permutation rank_of; P is overwritten with
 * scale * d BCE / d P. Returns the sum of the row's terms. */
static double bce_row(int n, double *P, const int *rank_of, double scale)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double p = P[(long)i * n + j], d;
            if (rank_of[i] == j) {
                sum += neg_log_clamped(p, &d);
            } else {
                sum += neg_log_clamped(1 - p, &d);
                d = -d;
            }
            P[(long)i * n + j] = scale * d;
        }
    return sum;
}

static int sk_loss_run(const char *fn, const da_sk_problem *pb, int batch, const double *x,
                       const double *targets, double *loss, double *grad)
{
    int n = pb->n, failed = 0;
    double *row_loss = da_malloc((size_t)batch * sizeof(double));
    int *ranks = da_malloc((size_t)batch * n * sizeof(int));
    if (!row_loss || !ranks) {
        da_free(row_loss);
        da_free(ranks);
        return da_set_error(DA_ENOMEM, "%s: out of memory", fn);
    }
    double scale = 1.0 / ((double)batch * n * n);
#pragma omp parallel if (worth_threads(batch, n))
    {
        da_sk_ws ws;
        int ok = da_sk_ws_alloc(&ws, pb, 1, 1) == DA_OK;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < batch; b++) {
            if (!ok)
                continue;
            long o = (long)b * n;
            true_ranks(n, targets + o, ranks + o);
            da_sk_prepare_row(pb, &ws, x + o);
            da_sk_iterate(pb, &ws, ws.U, ws.V);
            da_sk_outputs(pb, &ws, x + o, ws.U + pb->iters * (long)n, ws.V + pb->iters * (long)n,
                       ws.P, NULL, NULL);
            row_loss[b] = bce_row(n, ws.P, ranks + o, scale);
            if (grad)
                da_sk_backward_row(pb, &ws, x + o, ws.U, ws.V, ws.P, NULL, NULL, grad + o, 0);
        }
        if (ok)
            da_sk_ws_free(&ws);
    }
    double total = 0;
    for (int b = 0; b < batch && !failed; b++)
        total += row_loss[b];
    *loss = total * scale;
    da_free(row_loss);
    da_free(ranks);
    return failed ? da_set_error(DA_ENOMEM, "%s: out of memory for scratch", fn) : DA_OK;
}

static int sk_loss_checked(const char *fn, const da_sinkhorn_cfg *cfg, int log_only,
                           int batch, const double *scores, const double *targets, double *loss,
                           double *grad)
{
    long count = (long)batch * cfg->n;
    int rc;
    if ((rc = check_finite(fn, scores, count, "scores")) ||
        (rc = check_finite(fn, targets, count, "targets")))
        return rc;
    da_sk_problem pb = make_problem(cfg);
    pb.log_only = log_only;
    return sk_loss_run(fn, &pb, batch, scores, targets, loss, grad);
}

static int loss_entry(const char *fn, const da_sinkhorn_cfg *cfg, int log_only, int batch,
                      const double *scores, const double *targets, double *loss, double *grad)
{
    int rc = check_cfg(fn, cfg, batch);
    if (rc)
        return rc;
    if (!scores || !targets || !loss)
        return da_set_error(DA_EINVAL, "%s: scores, targets or loss is NULL", fn);
    return sk_loss_checked(fn, cfg, log_only, batch, scores, targets, loss, grad);
}

int da_sinkhorn_loss(const da_sinkhorn_cfg *cfg, int batch, const double *scores,
                     const double *targets, double *loss, double *grad)
{
    return loss_entry("da_sinkhorn_loss", cfg, 0, batch, scores, targets, loss, grad);
}

int da_sinkhorn_loss_log_domain(const da_sinkhorn_cfg *cfg, int batch, const double *scores,
                                const double *targets, double *loss, double *grad)
{
    return loss_entry("da_sinkhorn_loss_log_domain", cfg, 1, batch, scores, targets, loss,
                      grad);
}

typedef struct {
    da_sinkhorn_cfg cfg;
    int batch;
    const double *targets; /* [batch][n], ctx copy */
} sk_loss_state;

static int sk_loss_value(da_custom_args *args, double *out, double *grad)
{
    const sk_loss_state *st = args->state;
    return sk_loss_checked("da_sinkhorn", &st->cfg, 0, st->batch, args->in_data[0],
                           st->targets, out, grad);
}

da_tensor *da_sinkhorn(da_ctx *ctx, da_tensor *scores, const double *targets,
                       const da_sinkhorn_cfg *cfg)
{
    const char *fn = "da_sinkhorn";
    if (!targets && ctx && scores) {
        da_set_error(DA_EINVAL, "%s: targets is NULL", fn);
        return NULL;
    }
    if (check_tensor(fn, ctx, scores, cfg))
        return NULL;
    int batch = scores->shape[0];
    long count = (long)batch * cfg->n;
    sk_loss_state *st = da_ctx_alloc(ctx, sizeof *st);
    double *tcopy = da_ctx_alloc(ctx, (size_t)count * sizeof(double));
    if (!st || !tcopy)
        return NULL;
    memcpy(tcopy, targets, (size_t)count * sizeof(double));
    *st = (sk_loss_state){*cfg, batch, tcopy};
    return da_op_loss(ctx, fn, &scores, 1, sk_loss_value, NULL, st);
}
