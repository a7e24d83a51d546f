/* shortest_path_perturbed.c - perturbed shortest paths and the Fenchel-Young loss of
 * Berthet et al., "Learning with Differentiable Perturbed Optimizers", NeurIPS 2020:
 * yhat(c) = E[y*(c + sigma Z)] for a minimisation solver, its Jacobian estimator
 * J^T v = E[<y*, v> grad nu(Z)] / sigma, and the FY loss
 * E[<c + sigma Z, t> - min_y <c + sigma Z, y>] with gradient t - yhat (their maximisation
 * form with theta = -c). Sign conventions and the clipping of perturbed costs at 0 are in
 * shortest_path.h. One Monte-Carlo sample is one Dijkstra call per batch element. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "shortest_path.h"
#include "alloc.h"
#include "shortest_path_impl.h"

static int check_cfg(const char *who, const da_sp_perturbed_cfg *cfg, const da_rng *rng)
{
    if (!cfg || !rng)
        return da_set_error(DA_EINVAL, "%s: NULL cfg or rng", who);
    if (cfg->noise != DA_SP_NOISE_GAUSSIAN && cfg->noise != DA_SP_NOISE_GUMBEL)
        return da_set_error(DA_EINVAL, "%s: unknown noise %d", who, (int)cfg->noise);
    if (isnan(cfg->sigma))
        return da_set_error(DA_ENAN, "%s: sigma is NaN", who);
    if (!(cfg->sigma > 0) || !isfinite(cfg->sigma))
        return da_set_error(DA_ERANGE, "%s: sigma = %g must be finite and > 0", who, cfg->sigma);
    if (cfg->n_samples < 1 || cfg->n_samples > 10000000)
        return da_set_error(DA_ERANGE, "%s: n_samples = %d outside [1, 1e7]", who,
                            cfg->n_samples);
    return DA_OK;
}

static double draw_noise(da_rng *rng, da_sp_noise noise)
{
    if (noise == DA_SP_NOISE_GUMBEL)
        return -log(-log(da_rng_uniform_pos(rng)));
    return da_rng_normal(rng);
}

/* grad nu(z) = -d log density / dz */
static double noise_score(da_sp_noise noise, double z)
{
    return noise == DA_SP_NOISE_GUMBEL ? 1 - exp(-z) : z;
}

/* one Monte-Carlo sample for batch element b: u = max(c + sigma z, 0), y = y*(u) */
static int sample_one(const da_sp_perturbed_cfg *cfg, da_sp_work *w, long V, const double *c,
                      const double *z, const double *cot, const double *target, double *ymean,
                      double *vjp, double *fy)
{
    const int M = cfg->n_samples;
    double *u = w->buf, *y = w->path, s = 0, tu = 0;
    for (long v = 0; v < V; v++)
        u[v] = fmax(c[v] + cfg->sigma * z[v], 0.0);
    double pc = da_sp_solve(w, u, y);
    for (long v = 0; v < V; v++) {
        ymean[v] += y[v] / M;
        if (cot)
            s += y[v] * cot[v];
        if (target)
            tu += u[v] * target[v];
    }
    if (vjp && s != 0)
        for (long v = 0; v < V; v++)
            vjp[v] += s * noise_score(cfg->noise, z[v]) / (cfg->sigma * M);
    if (fy)
        *fy += (tu - pc) / M;
    return isfinite(pc);
}

/* Monte-Carlo loop: ymean [batch][V] = mean_m y*(u_m); if cot, vjp [batch][V] = J^T cot;
 * if target, fy [batch] = mean_m <u_m, t> - <u_m, y*(u_m)>. The noise of a chunk of samples
 * is drawn serially in the order (m, b, v), then the batch is solved in parallel. */
static int perturbed_run(const char *who, const da_sp_perturbed_cfg *cfg, da_rng *rng,
                         int batch, int H, int W, const double *cost, const double *cot,
                         const double *target, double *ymean, double *vjp, double *fy)
{
    const long V = (long)H * W, n = batch * V;
    const int M = cfg->n_samples, nt = omp_get_max_threads();
    const long chunk = M < (1L << 20) / n ? M : ((1L << 20) / n > 1 ? (1L << 20) / n : 1);
    int err = DA_OK, overflow = 0;
    da_sp_work *ws = da_calloc((size_t)nt, sizeof *ws);
    double *Z = da_malloc((size_t)(chunk * n) * sizeof *Z); /* [chunk][batch][V] */
    if (!ws || !Z)
        err = DA_ENOMEM;
    for (int t = 0; t < nt && !err; t++)
        err = da_sp_work_init(&ws[t], H, W);
    if (err)
        goto done;
    memset(ymean, 0, (size_t)n * sizeof *ymean);
    if (vjp)
        memset(vjp, 0, (size_t)n * sizeof *vjp);
    if (fy)
        memset(fy, 0, (size_t)batch * sizeof *fy);
    for (long m0 = 0; m0 < M; m0 += chunk) {
        long mc = M - m0 < chunk ? M - m0 : chunk;
        for (long i = 0; i < mc * n; i++)
            Z[i] = draw_noise(rng, cfg->noise);
#pragma omp parallel for if (DA_SP_PARALLEL(batch, 16.0 * mc * n)) schedule(dynamic)
        for (int b = 0; b < batch; b++) {
            da_sp_work *w = &ws[omp_get_thread_num()];
            for (long m = 0; m < mc; m++)
                if (!sample_one(cfg, w, V, cost + b * V, Z + m * n + b * V,
                                cot ? cot + b * V : NULL, target ? target + b * V : NULL,
                                ymean + b * V, vjp ? vjp + b * V : NULL, fy ? fy + b : NULL)) {
#pragma omp atomic write
                    overflow = 1;
                }
        }
    }
done:
    for (int t = 0; ws && t < nt; t++)
        da_sp_work_release(&ws[t]);
    da_free(ws);
    da_free(Z);
    if (err)
        return da_set_error(err, "%s: out of memory", who);
    if (overflow)
        return da_set_error(DA_ERANGE, "%s: a perturbed path cost overflows a double", who);
    return DA_OK;
}

int da_sp_perturbed(const da_sp_perturbed_cfg *cfg, da_rng *rng, int batch, int H, int W,
                    const double *cost, double *path_mean, const double *cot, double *grad_cost)
{
    const char *who = "da_sp_perturbed";
    long n = (long)batch * H * W;
    int rc = da_sp_check_grid(who, batch, H, W);
    if (!rc)
        rc = check_cfg(who, cfg, rng);
    if (!rc)
        rc = da_sp_check_values(who, "cost", cost, n, 0);
    if (rc)
        return rc;
    if (!cot != !grad_cost)
        return da_set_error(DA_EINVAL, "%s: give both cot and grad_cost or neither", who);
    if (!path_mean && !cot)
        return da_set_error(DA_EINVAL, "%s: nothing to compute (path_mean and cot NULL)", who);
    if (cot && (rc = da_sp_check_values(who, "cot", cot, n, 0)))
        return rc;
    double *ym = path_mean ? path_mean : da_malloc((size_t)n * sizeof *ym);
    if (!ym)
        return da_set_error(DA_ENOMEM, "%s: out of memory", who);
    rc = perturbed_run(who, cfg, rng, batch, H, W, cost, cot, NULL, ym, grad_cost, NULL);
    if (ym != path_mean)
        da_free(ym);
    return rc;
}

/* FY loss value and (if grad) its gradient (target - yhat) * gscale */
static int fy_compute(const char *who, const da_sp_perturbed_cfg *cfg, da_rng *rng, int batch,
                      int H, int W, const double *cost, const double *target, double gscale,
                      double *loss, double *grad)
{
    long n = (long)batch * H * W;
    double *ym = da_malloc((size_t)n * sizeof *ym), *fy = da_malloc((size_t)batch * sizeof *fy);
    int rc = (!ym || !fy) ? da_set_error(DA_ENOMEM, "%s: out of memory", who)
                          : perturbed_run(who, cfg, rng, batch, H, W, cost, NULL, target, ym,
                                          NULL, fy);
    if (!rc) {
        double s = 0;
        for (int b = 0; b < batch; b++)
            s += fy[b];
        *loss = s / batch;
        if (grad)
            for (long i = 0; i < n; i++)
                grad[i] = (target[i] - ym[i]) * gscale;
    }
    da_free(ym);
    da_free(fy);
    return rc;
}

int da_sp_fy_loss(const da_sp_perturbed_cfg *cfg, da_rng *rng, int batch, int H, int W,
                  const double *cost, const double *target, double *loss, double *grad_cost)
{
    const char *who = "da_sp_fy_loss";
    long n = (long)batch * H * W;
    int rc = da_sp_check_grid(who, batch, H, W);
    if (!rc)
        rc = check_cfg(who, cfg, rng);
    if (!rc)
        rc = da_sp_check_values(who, "cost", cost, n, 0);
    if (!rc)
        rc = da_sp_check_values(who, "target", target, n, 0);
    if (!rc && !loss)
        rc = da_set_error(DA_EINVAL, "%s: loss is NULL", who);
    return rc ? rc : fy_compute(who, cfg, rng, batch, H, W, cost, target, 1.0 / batch, loss,
                                grad_cost);
}

/* ---------------------------------------------------------------- tensor face */

typedef struct {
    const da_sp_perturbed_cfg *cfg;
    da_rng *rng;
    const double *target;
} fy_state;

static int fy_value(da_custom_args *a, double *out, double *grad)
{
    const da_tensor *c = a->in[0];
    const fy_state *st = a->state;
    return fy_compute("da_sp_fy", st->cfg, st->rng, c->shape[0], c->shape[1], c->shape[2],
                      a->in_data[0], st->target, 1.0 / c->shape[0], out, grad);
}

da_tensor *da_sp_fy(da_ctx *ctx, da_tensor *cost, const double *target,
                    const da_sp_perturbed_cfg *cfg, da_rng *rng)
{
    const char *who = "da_sp_fy";
    int batch, H, W;
    if (!ctx) {
        da_set_error(DA_EINVAL, "%s: NULL ctx", who);
        return NULL;
    }
    if (da_sp_check_tensor(who, cost, &batch, &H, &W) || check_cfg(who, cfg, rng) ||
        da_check_finite(cost, "cost") || da_sp_check_values(who, "target", target, cost->size, 0))
        return NULL;
    fy_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st)
        return NULL;
    *st = (fy_state){.cfg = cfg, .rng = rng, .target = target};
    return da_op_loss(ctx, who, &cost, 1, fy_value, NULL, st);
}
