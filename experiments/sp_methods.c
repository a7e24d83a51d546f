/* sp_methods.c - shortest-path losses by name (sp_methods.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sp_methods.h"

/* ---------------------------------------------------------------- parsing */

static const char *const families[] = {"blackbox", "relaxed_for",   "relaxed_while", "perturbed",
                                       "fy",       "smooth_solver", "smooth_loss"};
static const char *const cv_names[] = {"none", "fx", "loo"};

static double number(const char *spec, const char *key, const char *text, double lo, double hi)
{
    char *end;
    double v = text ? strtod(text, &end) : NAN;
    if (!text || end == text || *end || !(v >= lo && v <= hi))
        ex_die(2, "--method %s: %s=%s must be a number in [%g, %g]", spec, key,
               text ? text : "", lo, hi);
    return v;
}

static void parse_option(const char *spec, sp_method *m, const char *key, const char *val)
{
    sp_family f = m->family;
    int relaxed = f == SP_RELAXED_FOR || f == SP_RELAXED_WHILE;
    int perturbed = f == SP_PERTURBED || f == SP_FY;
    int smooth = f == SP_SMOOTH_SOLVER || f == SP_SMOOTH_LOSS;
    if (f == SP_BLACKBOX && val && !strcmp(key, "lambda"))
        m->blackbox.lambda = number(spec, key, val, 1e-9, 1e9);
    else if (f == SP_BLACKBOX && !val && !strcmp(key, "raw"))
        m->blackbox_raw = 1;
    else if (relaxed && val && !strcmp(key, "beta"))
        m->relaxed.beta = number(spec, key, val, 1e-9, 1e9);
    else if (f == SP_RELAXED_FOR && val && !strcmp(key, "n_iter"))
        m->relaxed.n_iter = (int)number(spec, key, val, 1, 100000);
    else if (f == SP_RELAXED_WHILE && val && !strcmp(key, "epsilon"))
        m->relaxed.epsilon = number(spec, key, val, 1e-300, 1);
    else if (f == SP_RELAXED_WHILE && val && !strcmp(key, "max_iter"))
        m->relaxed.max_iter = (int)number(spec, key, val, 1, 1000000);
    else if (relaxed && !val && (!strcmp(key, "l1") || !strcmp(key, "l2")))
        m->relaxed.norm = key[1] == '1' ? DA_SP_NORM_L1 : DA_SP_NORM_L2SQ;
    else if (relaxed && !val && !strcmp(key, "stop_at_source"))
        m->relaxed.stop_at_source = 1;
    else if (perturbed && !val && (!strcmp(key, "gaussian") || !strcmp(key, "gumbel")))
        m->perturbed.noise = key[1] == 'a' ? DA_SP_NOISE_GAUSSIAN : DA_SP_NOISE_GUMBEL;
    else if (perturbed && val && !strcmp(key, "sigma"))
        m->perturbed.sigma = number(spec, key, val, 1e-9, 1e9);
    else if (perturbed && val && !strcmp(key, "samples"))
        m->perturbed.n_samples = (int)number(spec, key, val, 1, 1e6);
    else if (smooth && val && !strcmp(key, "dist")) {
        if (da_dist_parse(val, &m->smooth.dist))
            ex_die(2, "--method %s: %s", spec, da_last_error());
    } else if (smooth && val && !strcmp(key, "sampling")) {
        if (da_sampling_parse(val, &m->smooth.sampling))
            ex_die(2, "--method %s: %s", spec, da_last_error());
    } else if (smooth && val && !strcmp(key, "cv"))
        m->smooth.cv = (da_control_variate)ex_parse_choice("cv", val, cv_names, 3);
    else if (smooth && val && !strcmp(key, "samples"))
        m->smooth.samples = (int)number(spec, key, val, 1, DA_SMOOTH_MAX_SAMPLES);
    else if (smooth && val && !strcmp(key, "eps"))
        m->smooth.eps = number(spec, key, val, 1e-9, 1e9);
    else if (smooth && !val && !strcmp(key, "antithetic"))
        m->smooth.antithetic = 1;
    else
        ex_die(2, "--method %s: unknown option '%s' for %s", spec, key, families[f]);
}

static void canonical(sp_method *m)
{
    const char *name = families[m->family];
    const da_sp_relaxed_cfg *r = &m->relaxed;
    const da_smooth_cfg *s = &m->smooth;
    switch (m->family) {
    case SP_BLACKBOX:
        snprintf(m->spec, sizeof m->spec, "%s:lambda=%g%s", name, m->blackbox.lambda,
                 m->blackbox_raw ? ":raw" : "");
        break;
    case SP_RELAXED_FOR:
    case SP_RELAXED_WHILE:
        snprintf(m->spec, sizeof m->spec, "%s:beta=%g:n_iter=%d:%s%s:epsilon=%g:max_iter=%d",
                 name, r->beta, r->n_iter, r->norm == DA_SP_NORM_L1 ? "l1" : "l2",
                 r->stop_at_source ? ":stop_at_source" : "", r->epsilon, r->max_iter);
        break;
    case SP_PERTURBED:
    case SP_FY:
        snprintf(m->spec, sizeof m->spec, "%s:%s:sigma=%g:samples=%d", name,
                 m->perturbed.noise == DA_SP_NOISE_GAUSSIAN ? "gaussian" : "gumbel",
                 m->perturbed.sigma, m->perturbed.n_samples);
        break;
    default:
        snprintf(m->spec, sizeof m->spec, "%s:dist=%s:samples=%d:eps=%g:cv=%s:sampling=%s%s",
                 name, da_dist_name(s->dist), s->samples, s->eps, cv_names[s->cv],
                 da_sampling_name(s->sampling), s->antithetic ? ":antithetic" : "");
    }
}

void sp_method_parse(const char *spec, const sp_problem *p, sp_method *m)
{
    char buf[256];
    if (strlen(spec) >= sizeof buf)
        ex_die(2, "--method: spec too long");
    strcpy(buf, spec);
    char *save, *name = strtok_r(buf, ":", &save);
    memset(m, 0, sizeof *m);
    m->family = (sp_family)ex_parse_choice("method", name ? name : "", families, 7);
    m->blackbox.lambda = 20;
    m->relaxed = da_sp_relaxed_default(p->solve ? 1 : p->H, p->solve ? 1 : p->W);
    m->relaxed.loop = m->family == SP_RELAXED_WHILE ? DA_SP_LOOP_WHILE : DA_SP_LOOP_FOR;
    m->perturbed = (da_sp_perturbed_cfg){.noise = DA_SP_NOISE_GAUSSIAN, .sigma = 1, .n_samples = 10};
    da_smooth_cfg_default(&m->smooth);
    m->smooth.samples = 10;
    for (char *tok = strtok_r(NULL, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        char *eq = strchr(tok, '=');
        if (eq)
            *eq = '\0';
        parse_option(spec, m, tok, eq ? eq + 1 : NULL);
    }
    if ((m->family == SP_RELAXED_FOR || m->family == SP_RELAXED_WHILE) && p->solve)
        ex_die(2, "--method %s: the relaxed Bellman-Ford works on vertex-cost grids only "
                  "(task terrain)", spec);
    if (da_smooth_plan(&m->smooth, p->n, NULL, NULL))
        ex_die(2, "--method %s: %s", spec, da_last_error());
    canonical(m);
}

/* ---------------------------------------------------------------- generic-solver ops */

typedef struct {
    const sp_problem *p;
    const sp_method *m;
    const double *target;
    da_rng *rng;
    int B;
    double *y;    /* [B][n] forward solutions (blackbox) */
    double *grad; /* [B][n] gradient computed in the forward (FY) */
} op_state;

/* blackbox path: y = y*(c); backward -(y(c) - y(c + lambda g)) / lambda */
static int bb_forward(da_custom_args *a, double *out)
{
    op_state *st = a->state;
    const int n = st->p->n;
    st->y = da_ctx_alloc(a->ctx, (size_t)st->B * n * sizeof(double));
    if (!st->y)
        return DA_ENOMEM;
    for (int b = 0; b < st->B; b++) {
        int rc = st->p->solve(st->p->user, n, a->in_data[0] + (size_t)b * n, st->y + (size_t)b * n);
        if (rc)
            return rc;
    }
    memcpy(out, st->y, (size_t)st->B * n * sizeof(double));
    return DA_OK;
}

static int bb_backward(da_custom_args *a, const double *og, double *const *ig)
{
    op_state *st = a->state;
    const int n = st->p->n;
    const double lambda = st->m->blackbox.lambda;
    double *c2 = da_ctx_alloc(a->ctx, 2 * (size_t)n * sizeof(double)), *y2 = c2 + n;
    if (!c2)
        return DA_ENOMEM;
    for (int b = 0; b < st->B && ig[0]; b++) {
        const double *c = a->in_data[0] + (size_t)b * n, *g = og + (size_t)b * n;
        for (int i = 0; i < n; i++)
            c2[i] = c[i] + lambda * g[i];
        int rc = st->p->solve(st->p->user, n, c2, y2);
        if (rc)
            return rc;
        for (int i = 0; i < n; i++)
            ig[0][(size_t)b * n + i] -= (st->y[(size_t)b * n + i] - y2[i]) / lambda;
    }
    return DA_OK;
}

static double noise(da_rng *rng, da_sp_noise kind)
{
    return kind == DA_SP_NOISE_GAUSSIAN ? da_rng_normal(rng)
                                        : -log(-log(da_rng_uniform_pos(rng)));
}

/* Fenchel-Young: mean_m <u_m, t> - <u_m, y*(u_m)>, u_m = c + sigma Z_m; grad (t - yhat)/B */
static int fy_forward(da_custom_args *a, double *out)
{
    op_state *st = a->state;
    const int n = st->p->n, M = st->m->perturbed.n_samples;
    const double sigma = st->m->perturbed.sigma;
    double *u = da_ctx_alloc(a->ctx, 2 * (size_t)n * sizeof(double)), *y = u + n;
    st->grad = da_ctx_alloc(a->ctx, (size_t)st->B * n * sizeof(double));
    if (!u || !st->grad)
        return DA_ENOMEM;
    double loss = 0;
    for (int b = 0; b < st->B; b++) {
        const double *c = a->in_data[0] + (size_t)b * n, *t = st->target + (size_t)b * n;
        double *g = st->grad + (size_t)b * n;
        for (int i = 0; i < n; i++)
            g[i] = t[i] / st->B;
        for (int s = 0; s < M; s++) {
            for (int i = 0; i < n; i++)
                u[i] = c[i] + sigma * noise(st->rng, st->m->perturbed.noise);
            int rc = st->p->solve(st->p->user, n, u, y);
            if (rc)
                return rc;
            for (int i = 0; i < n; i++) {
                loss += u[i] * (t[i] - y[i]) / M;
                g[i] -= y[i] / ((double)M * st->B);
            }
        }
    }
    out[0] = loss / st->B;
    return DA_OK;
}

static int fy_backward(da_custom_args *a, const double *og, double *const *ig)
{
    const op_state *st = a->state;
    for (long i = 0; ig[0] && i < (long)st->B * st->p->n; i++)
        ig[0][i] += og[0] * st->grad[i];
    return DA_OK;
}

/* Hamming loss on the flat [B][n] layout (da_sp_hamming wants [B][H][W]) */
static da_tensor *hamming_flat(da_ctx *ctx, const sp_problem *p, da_tensor *path,
                               const double *target)
{
    int shape[3] = {path ? path->shape[0] : 1, 1, p->n};
    return da_sp_hamming(ctx, da_reshape(ctx, path, 3, shape), target);
}

static da_tensor *solver_loss(da_ctx *ctx, const sp_method *m, const sp_problem *p,
                              da_tensor *cost, const double *target, da_rng *rng)
{
    op_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st)
        return NULL;
    *st = (op_state){.p = p, .m = m, .target = target, .rng = rng, .B = cost->shape[0]};
    int one = 1;
    switch (m->family) {
    case SP_BLACKBOX:
        return hamming_flat(ctx, p, da_op_custom(ctx, "blackbox", &cost, 1, 2, cost->shape,
                                                 bb_forward, bb_backward, NULL, st), target);
    case SP_FY:
        return da_op_custom(ctx, "fy", &cost, 1, 0, &one, fy_forward, fy_backward, NULL, st);
    case SP_PERTURBED: {
        da_smooth_cfg *c = da_ctx_alloc(ctx, sizeof *c);
        if (!c)
            return NULL;
        da_smooth_cfg_default(c);
        c->dist = m->perturbed.noise == DA_SP_NOISE_GAUSSIAN ? DA_DIST_GAUSSIAN : DA_DIST_GUMBEL;
        c->sampling = DA_SAMPLE_MC;
        c->cv = DA_CV_NONE;
        c->eps = m->perturbed.sigma;
        c->samples = m->perturbed.n_samples;
        return hamming_flat(ctx, p, da_sp_smooth_solver_op(ctx, cost, p->solve, p->user, c, rng),
                            target);
    }
    case SP_SMOOTH_SOLVER:
        return hamming_flat(ctx, p, da_sp_smooth_solver_op(ctx, cost, p->solve, p->user,
                                                           &m->smooth, rng), target);
    case SP_SMOOTH_LOSS:
        return da_sp_smooth_solver_loss_op(ctx, cost, target, p->solve, p->user, &m->smooth, rng);
    default:
        da_set_error(DA_EINVAL, "%s: not available on a generic solver", m->spec);
        return NULL;
    }
}

/* ---------------------------------------------------------------- grid ops */

/* perturbed: Hamming(yhat, t) with J^T cot from Berthet's estimator (one fused node: the
 * Hamming loss is linear in yhat, so its cotangent (1 - 2t)/B is known in the forward) */
static int pert_forward(da_custom_args *a, double *out)
{
    op_state *st = a->state;
    const int H = st->p->H, W = st->p->W;
    const long size = (long)st->B * H * W;
    double *yhat = da_ctx_alloc(a->ctx, 2 * (size_t)size * sizeof(double)), *cot = yhat + size;
    st->grad = da_ctx_alloc(a->ctx, (size_t)size * sizeof(double));
    if (!yhat || !st->grad)
        return DA_ENOMEM;
    for (long i = 0; i < size; i++)
        cot[i] = (1 - 2 * st->target[i]) / st->B;
    int rc = da_sp_perturbed(&st->m->perturbed, st->rng, st->B, H, W, a->in_data[0], yhat, cot,
                             st->grad);
    if (!rc)
        rc = da_sp_hamming_loss(st->B, H, W, yhat, st->target, out, NULL);
    return rc;
}

static da_tensor *grid_loss(da_ctx *ctx, const sp_method *m, const sp_problem *p,
                            da_tensor *cost, const double *target, da_rng *rng)
{
    switch (m->family) {
    case SP_BLACKBOX:
        return m->blackbox_raw ? da_sp_blackbox(ctx, cost, target, &m->blackbox)
                               : da_sp_blackbox_normalized(ctx, cost, target, &m->blackbox);
    case SP_RELAXED_FOR:
    case SP_RELAXED_WHILE:
        return da_sp_relaxed(ctx, cost, target, &m->relaxed);
    case SP_PERTURBED: {
        op_state *st = da_ctx_alloc(ctx, sizeof *st);
        int one = 1;
        if (!st)
            return NULL;
        *st = (op_state){.p = p, .m = m, .target = target, .rng = rng, .B = cost->shape[0]};
        return da_op_custom(ctx, "perturbed", &cost, 1, 0, &one, pert_forward, fy_backward, NULL,
                            st);
    }
    case SP_FY:
        return da_sp_fy(ctx, cost, target, &m->perturbed, rng);
    case SP_SMOOTH_SOLVER:
        return da_sp_hamming(ctx, da_sp_smooth_path_op(ctx, cost, &m->smooth, rng), target);
    default:
        return da_sp_smooth_loss_op(ctx, cost, target, &m->smooth, rng);
    }
}

da_tensor *sp_method_loss(da_ctx *ctx, const sp_method *m, const sp_problem *p,
                          da_tensor *cost, const double *target, da_rng *rng)
{
    if (!cost)
        return NULL;
    return p->solve ? solver_loss(ctx, m, p, cost, target, rng)
                    : grid_loss(ctx, m, p, cost, target, rng);
}

int sp_method_hessian(const sp_method *m, const sp_problem *p, da_rng *rng, int B,
                      const double *cost, const double *target, double *loss, double *grad,
                      double *hess)
{
    if (m->family != SP_SMOOTH_LOSS)
        return da_set_error(DA_EINVAL, "%s: per-sample Hessians only for smooth_loss", m->spec);
    return p->solve ? da_sp_smooth_solver_loss(&m->smooth, rng, B, p->n, p->solve, p->user, cost,
                                               target, loss, grad, hess)
                    : da_sp_smooth_loss(&m->smooth, rng, B, p->H, p->W, cost, target, loss,
                                        grad, hess);
}
