/* smooth.c - stochastic smoothing estimators (see smooth.h for the equations). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <gsl/gsl_qrng.h>
#include <lapacke.h>

#include "smooth.h"
#include "alloc.h"

typedef struct {
    da_sampling sampling;
    int s;          /* total samples */
    int s_base;     /* samples before antithetic mirroring */
    int k;          /* Cartesian grid side */
    int group;      /* 2 with antithetic pairs, else 1 (LOO leaves out a group) */
} plan;

/* Scratch of one estimate. */
typedef struct {
    double *U;    /* [s][n] uniforms, then z */
    double *C;    /* [s][m] f(x + L z_k) - b_k */
    double *W;    /* [s][n] L^-T s(z_k) */
    double *Dp;   /* [s][n] s'(z_k), second order only */
    double *xs;   /* [n] x + L z */
    double *fx;   /* [m] baseline / sums */
    double *Linv; /* [n][n] inverse of cfg->L, or NULL */
} work;

static const char *const sampling_names[] = {"default", "mc",        "latin", "rlatin",
                                             "cartesian", "sobol", "halton"};

const char *da_sampling_name(da_sampling s)
{
    return (s >= DA_SAMPLE_DEFAULT && s <= DA_SAMPLE_HALTON) ? sampling_names[s] : NULL;
}

int da_sampling_parse(const char *name, da_sampling *s)
{
    for (int i = 0; name && i <= DA_SAMPLE_HALTON; i++)
        if (!strcmp(name, sampling_names[i])) {
            *s = (da_sampling)i;
            return DA_OK;
        }
    return da_set_error(DA_EINVAL, "unknown sampling '%s' (default, mc, latin, rlatin, "
                                   "cartesian, sobol, halton)", name ? name : "(null)");
}

void da_smooth_cfg_default(da_smooth_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->dist = DA_DIST_GAUSSIAN;
    cfg->sampling = DA_SAMPLE_DEFAULT;
    cfg->cv = DA_CV_LOO;
    cfg->samples = 64;
    cfg->eps = 1.0;
}

/* largest k with k^n <= s (0 if that would overflow an int) */
static int grid_side(int s, int n)
{
    int k = (int)floor(pow((double)s, 1.0 / n) + 1e-9);
    while (k > 1 && pow((double)k, n) > s)
        k--;
    return k;
}

static int make_plan(const da_smooth_cfg *cfg, int n, plan *p)
{
    if (!cfg)
        return da_set_error(DA_EINVAL, "smooth: cfg is NULL");
    if (cfg->dist < 0 || cfg->dist >= DA_DIST_COUNT)
        return da_set_error(DA_EINVAL, "smooth: unknown distribution %d", (int)cfg->dist);
    if (cfg->sampling < DA_SAMPLE_DEFAULT || cfg->sampling > DA_SAMPLE_HALTON)
        return da_set_error(DA_EINVAL, "smooth: unknown sampling %d", (int)cfg->sampling);
    if (cfg->cv < DA_CV_NONE || cfg->cv > DA_CV_LOO)
        return da_set_error(DA_EINVAL, "smooth: unknown control variate %d", (int)cfg->cv);
    if (n < 1 || n > DA_SMOOTH_MAX_DIM)
        return da_set_error(DA_ERANGE, "smooth: dimension %d outside [1, %d]", n,
                            DA_SMOOTH_MAX_DIM);
    if (cfg->samples < 1 || cfg->samples > DA_SMOOTH_MAX_SAMPLES)
        return da_set_error(DA_ERANGE, "smooth: samples %d outside [1, %d]", cfg->samples,
                            DA_SMOOTH_MAX_SAMPLES);
    if (cfg->antithetic && !da_dist_symmetric(cfg->dist))
        return da_set_error(DA_EINVAL, "smooth: antithetic pairs need a symmetric "
                                       "distribution (%s is not)", da_dist_name(cfg->dist));
    if (cfg->antithetic && cfg->samples % 2)
        return da_set_error(DA_EINVAL, "smooth: antithetic sampling needs an even sample "
                                       "count (got %d)", cfg->samples);
    if (!cfg->L && !cfg->eps_vec && isnan(cfg->eps))
        return da_set_error(DA_ENAN, "smooth: eps is NaN");
    if (!cfg->L && !cfg->eps_vec && !(cfg->eps > 0 && isfinite(cfg->eps)))
        return da_set_error(DA_ERANGE, "smooth: eps must be finite and > 0 (got %g)", cfg->eps);
    p->group = cfg->antithetic ? 2 : 1;
    p->s_base = cfg->samples / p->group;
    p->sampling = cfg->sampling;
    p->k = grid_side(p->s_base, n);
    if (p->sampling == DA_SAMPLE_DEFAULT)
        p->sampling = (p->k >= 2 && cfg->dist != DA_DIST_TRIANGULAR) ? DA_SAMPLE_CARTESIAN
                                                                      : DA_SAMPLE_RLATIN;
    if (p->sampling == DA_SAMPLE_CARTESIAN) {
        if (p->k < 2)
            return da_set_error(DA_ERANGE, "smooth: a Cartesian grid needs k >= 2 cells per "
                                           "axis, i.e. >= 2^%d samples (got %d)", n, p->s_base);
        p->s_base = (int)lround(pow((double)p->k, n));
    }
    if (p->sampling == DA_SAMPLE_SOBOL && n > 40)
        return da_set_error(DA_ERANGE, "smooth: Sobol points need n <= 40 (got %d)", n);
    if (p->sampling == DA_SAMPLE_HALTON && n > 1229)
        return da_set_error(DA_ERANGE, "smooth: Halton points need n <= 1229 (got %d)", n);
    p->s = p->s_base * p->group;
    if (cfg->cv == DA_CV_LOO && p->s / p->group < 2)
        return da_set_error(DA_ERANGE, "smooth: the leave-one-out baseline needs >= 2 "
                                       "independent groups of samples");
    return DA_OK;
}

int da_smooth_plan(const da_smooth_cfg *cfg, int n, da_sampling *sampling, int *samples)
{
    plan p;
    int rc = make_plan(cfg, n, &p);
    if (!rc) {
        if (sampling)
            *sampling = p.sampling;
        if (samples)
            *samples = p.s;
    }
    return rc;
}

/* ---- uniforms ---- */

static double clamp_open(double u)
{
    return fmin(fmax(u, 1e-16), 1.0 - 1e-16);
}

/* The generator is assembled from gsl_qrng's public fields, as gsl_qrng_alloc does,
 * with its state from da_malloc: gsl_qrng_alloc reports a failed allocation (and a
 * dimension above the type's maximum, excluded by make_plan) to GSL's error handler,
 * which aborts by default; the library never aborts (DESIGN.md §2). */
static int qrng_uniforms(const plan *p, int n, da_rng *rng, double *U)
{
    const gsl_qrng_type *type = p->sampling == DA_SAMPLE_SOBOL ? gsl_qrng_sobol
                                                               : gsl_qrng_halton;
    gsl_qrng qr = {type, (unsigned)n, type->state_size((unsigned)n), NULL}, *q = &qr;
    qr.state = da_malloc(qr.state_size);
    double *shift = da_malloc((size_t)n * sizeof *shift);
    if (!qr.state || !shift) {
        da_free(qr.state);
        da_free(shift);
        return da_set_error(DA_ENOMEM, "smooth: out of memory for quasi-random points");
    }
    gsl_qrng_init(q);
    for (int d = 0; d < n; d++)
        shift[d] = da_rng_uniform(rng);
    for (int k = 0; k < p->s_base; k++) {
        gsl_qrng_get(q, U + (size_t)k * n);
        for (int d = 0; d < n; d++) {
            double u = U[(size_t)k * n + d] + shift[d];
            U[(size_t)k * n + d] = u - floor(u);
        }
    }
    da_free(qr.state);
    da_free(shift);
    return DA_OK;
}

static int latin_uniforms(const plan *p, int n, da_rng *rng, double *U, int randomized)
{
    int s = p->s_base;
    int *perm = da_malloc((size_t)s * sizeof *perm);
    if (!perm)
        return da_set_error(DA_ENOMEM, "smooth: out of memory");
    for (int d = 0; d < n; d++) {
        for (int k = 0; k < s; k++)
            perm[k] = k;
        da_rng_shuffle(rng, perm, s);
        for (int k = 0; k < s; k++)
            U[(size_t)k * n + d] = (perm[k] + (randomized ? da_rng_uniform(rng) : 0.5)) / s;
    }
    da_free(perm);
    return DA_OK;
}

static void cartesian_uniforms(const plan *p, int n, da_rng *rng, double *U)
{
    for (int k = 0; k < p->s_base; k++) {
        int cell = k;
        for (int d = 0; d < n; d++) {
            U[(size_t)k * n + d] = (cell % p->k + da_rng_uniform(rng)) / p->k;
            cell /= p->k;
        }
    }
}

/* U [s][n]: the base points of the scheme, then their antithetic mirrors */
static int make_uniforms(const plan *p, int n, da_rng *rng, double *U)
{
    int rc = DA_OK;
    size_t base = (size_t)p->s_base * n;
    switch (p->sampling) {
    case DA_SAMPLE_LATIN: rc = latin_uniforms(p, n, rng, U, 0); break;
    case DA_SAMPLE_RLATIN: rc = latin_uniforms(p, n, rng, U, 1); break;
    case DA_SAMPLE_CARTESIAN: cartesian_uniforms(p, n, rng, U); break;
    case DA_SAMPLE_SOBOL:
    case DA_SAMPLE_HALTON: rc = qrng_uniforms(p, n, rng, U); break;
    default:
        for (size_t i = 0; i < base; i++)
            U[i] = da_rng_uniform_pos(rng);
    }
    if (rc)
        return rc;
    for (size_t i = 0; i < base; i++)
        U[i] = clamp_open(U[i]);
    if (p->group == 2)
        for (size_t i = 0; i < base; i++)
            U[base + i] = 1.0 - U[i];
    return rc;
}

/* ---- the scale L ---- */

static double scale_of(const da_smooth_cfg *cfg, int j)
{
    return cfg->eps_vec ? cfg->eps_vec[j] : cfg->eps;
}

static int check_scale(const da_smooth_cfg *cfg, int n, work *w)
{
    if (cfg->L) {
        if (!da_all_finite(cfg->L, (long)n * n))
            return da_set_error(DA_ENAN, "smooth: NaN or Inf in L");
        w->Linv = da_malloc((size_t)n * n * sizeof *w->Linv);
        lapack_int *ipiv = da_malloc((size_t)n * sizeof *ipiv);
        if (!w->Linv || !ipiv) {
            da_free(ipiv);
            return da_set_error(DA_ENOMEM, "smooth: out of memory");
        }
        memcpy(w->Linv, cfg->L, (size_t)n * n * sizeof *w->Linv);
        int info = LAPACKE_dgetrf(LAPACK_ROW_MAJOR, n, n, w->Linv, n, ipiv);
        if (info == 0)
            info = LAPACKE_dgetri(LAPACK_ROW_MAJOR, n, w->Linv, n, ipiv);
        da_free(ipiv);
        if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
            return da_set_error(DA_ENOMEM, "smooth: out of memory in LAPACKE (inverting L)");
        if (info != 0)
            return da_set_error(DA_ENUMERIC, "smooth: the scale matrix L is singular");
        return DA_OK;
    }
    for (int j = 0; j < n; j++)
        if (!(scale_of(cfg, j) > 0 && isfinite(scale_of(cfg, j))))
            return da_set_error(DA_ERANGE, "smooth: scale %d is %g (need finite > 0)", j,
                                scale_of(cfg, j));
    return DA_OK;
}

/* xs = x + L z */
static void perturb(const da_smooth_cfg *cfg, int n, const double *x, const double *z,
                    double *xs)
{
    if (cfg->L) {
        memcpy(xs, x, (size_t)n * sizeof *xs);
        cblas_dgemv(CblasRowMajor, CblasNoTrans, n, n, 1.0, cfg->L, n, z, 1, 1.0, xs, 1);
    } else {
        for (int j = 0; j < n; j++)
            xs[j] = x[j] + scale_of(cfg, j) * z[j];
    }
}

/* wk = L^-T s (in place on a row of scores) */
static void unscale_scores(const da_smooth_cfg *cfg, const work *w, int n, double *wk,
                           double *tmp)
{
    if (cfg->L) {
        memcpy(tmp, wk, (size_t)n * sizeof *tmp);
        cblas_dgemv(CblasRowMajor, CblasTrans, n, n, 1.0, w->Linv, n, tmp, 1, 0.0, wk, 1);
    } else {
        for (int j = 0; j < n; j++)
            wk[j] /= scale_of(cfg, j);
    }
}

/* ---- one estimate: samples, f values, baselines, scores ---- */

static void work_free(work *w)
{
    da_free(w->U);
    da_free(w->C);
    da_free(w->W);
    da_free(w->Dp);
    da_free(w->xs);
    da_free(w->fx);
    da_free(w->Linv);
}

static int work_alloc(work *w, const plan *p, int n, int m, int second_order)
{
    memset(w, 0, sizeof *w);
    w->U = da_malloc((size_t)p->s * n * sizeof(double));
    w->C = da_malloc((size_t)p->s * m * sizeof(double));
    w->W = da_malloc((size_t)p->s * n * sizeof(double));
    w->Dp = second_order ? da_malloc((size_t)p->s * n * sizeof(double)) : NULL;
    w->xs = da_malloc((size_t)2 * n * sizeof(double));
    w->fx = da_malloc((size_t)2 * m * sizeof(double));
    if (!w->U || !w->C || !w->W || (second_order && !w->Dp) || !w->xs || !w->fx) {
        work_free(w);
        return da_set_error(DA_ENOMEM, "smooth: out of memory for %d samples", p->s);
    }
    return DA_OK;
}

static int call_f(da_blackbox_fn f, void *user, int n, const double *x, int m, double *y)
{
    int rc = f(user, n, x, m, y);
    if (rc)
        return da_last_error_code() == rc ? rc
                                          : da_set_error(rc, "smooth: the black box failed");
    if (!da_all_finite(y, m))
        return da_set_error(DA_ENAN, "smooth: the black box returned NaN or Inf");
    return DA_OK;
}

/* Fills w->C (centred values), w->W (scaled scores), w->Dp (if allocated) and value
 * (sample mean, may be NULL). */
static int estimate(const da_smooth_cfg *cfg, const plan *p, da_blackbox_fn f, void *user,
                    int n, int m, const double *x, da_rng *rng, work *w, double *value)
{
    int rc = make_uniforms(p, n, rng, w->U);
    if (rc)
        return rc;
    double *sum = w->fx + m; /* [m] */
    memset(sum, 0, (size_t)m * sizeof *sum);
    for (int k = 0; k < p->s && !rc; k++) {
        double *z = w->U + (size_t)k * n, *wk = w->W + (size_t)k * n, *ck = w->C + (size_t)k * m;
        for (int j = 0; j < n; j++) {
            z[j] = da_dist_icdf(cfg->dist, z[j]);
            wk[j] = da_dist_score(cfg->dist, z[j]);
            if (w->Dp)
                w->Dp[(size_t)k * n + j] = da_dist_score_deriv(cfg->dist, z[j]);
        }
        unscale_scores(cfg, w, n, wk, w->xs + n);
        perturb(cfg, n, x, z, w->xs);
        rc = call_f(f, user, n, w->xs, m, ck);
        for (int i = 0; i < m && !rc; i++)
            sum[i] += ck[i];
    }
    if (rc)
        return rc;
    if (value)
        for (int i = 0; i < m; i++)
            value[i] = sum[i] / p->s;
    if (cfg->cv == DA_CV_FX) {
        if ((rc = call_f(f, user, n, x, m, w->fx)))
            return rc;
        for (int k = 0; k < p->s; k++)
            for (int i = 0; i < m; i++)
                w->C[(size_t)k * m + i] -= w->fx[i];
    } else if (cfg->cv == DA_CV_LOO) {
        /* sample k of group g = k mod s_base: baseline = mean over the other groups */
        int others = p->s - p->group;
        for (int g = 0; g < p->s_base; g++) {
            for (int i = 0; i < m; i++) {
                double grp = 0;
                for (int h = 0; h < p->group; h++)
                    grp += w->C[((size_t)g + (size_t)h * p->s_base) * m + i];
                w->fx[i] = (sum[i] - grp) / others;
            }
            for (int h = 0; h < p->group; h++)
                for (int i = 0; i < m; i++)
                    w->C[((size_t)g + (size_t)h * p->s_base) * m + i] -= w->fx[i];
        }
    }
    return DA_OK;
}

static int check_call(const da_smooth_cfg *cfg, da_blackbox_fn f, int n, int m,
                      const double *x, da_rng *rng, plan *p)
{
    if (!f || !x || !rng)
        return da_set_error(DA_EINVAL, "smooth: NULL f, x or rng");
    if (m < 1 || m > DA_SMOOTH_MAX_DIM)
        return da_set_error(DA_ERANGE, "smooth: output dimension %d outside [1, %d]", m,
                            DA_SMOOTH_MAX_DIM);
    int rc = make_plan(cfg, n, p);
    if (rc)
        return rc;
    if (!da_all_finite(x, n))
        return da_set_error(DA_ENAN, "smooth: NaN or Inf in x");
    return DA_OK;
}

/* an estimate (or NULL) of count values must be finite: a scale so small (or large) that
 * the score L^-T s(z) or its square overflows gives Inf or NaN */
static int check_estimate(const double *v, long count, const char *what)
{
    if (v && !da_all_finite(v, count))
        return da_set_error(DA_ENUMERIC, "smooth: the %s estimate is not finite (scale too "
                                         "small or too large)", what);
    return DA_OK;
}

int da_smooth_jacobian(const da_smooth_cfg *cfg, da_blackbox_fn f, void *user, int n, int m,
                       const double *x, da_rng *rng, double *value, double *J)
{
    plan p;
    work w;
    int rc = check_call(cfg, f, n, m, x, rng, &p);
    if (rc || (rc = work_alloc(&w, &p, n, m, 0)))
        return rc;
    rc = check_scale(cfg, n, &w);
    if (!rc)
        rc = estimate(cfg, &p, f, user, n, m, x, rng, &w, value);
    if (!rc && J) /* J = C^T W / s */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, p.s, 1.0 / p.s, w.C, m,
                    w.W, n, 0.0, J, n);
    work_free(&w);
    if (!rc && !(rc = check_estimate(value, m, "value")))
        rc = check_estimate(J, (long)m * n, "Jacobian");
    return rc;
}

int da_smooth_hessian(const da_smooth_cfg *cfg, da_blackbox_fn f, void *user, int n,
                      const double *x, da_rng *rng, double *value, double *grad, double *H)
{
    plan p;
    work w;
    int rc = check_call(cfg, f, n, 1, x, rng, &p);
    if (rc)
        return rc;
    if (!da_dist_smooth2(cfg->dist))
        return da_set_error(DA_EINVAL, "smooth: the second-order estimator needs a C^2 "
                                       "density (%s is not)", da_dist_name(cfg->dist));
    if ((rc = work_alloc(&w, &p, n, 1, 1)))
        return rc;
    rc = check_scale(cfg, n, &w);
    if (!rc)
        rc = estimate(cfg, &p, f, user, n, 1, x, rng, &w, value);
    if (!rc && grad)
        cblas_dgemv(CblasRowMajor, CblasTrans, p.s, n, 1.0 / p.s, w.W, n, w.C, 1, 0.0, grad, 1);
    if (!rc && H) {
        /* H = W^T diag(c) W / s - L^-T diag(d) L^-1, d_j = sum_k c_k s'(z_kj) / s */
        double *d = w.xs; /* [n] */
        memset(d, 0, (size_t)n * sizeof *d);
        for (int k = 0; k < p.s; k++)
            for (int j = 0; j < n; j++)
                d[j] += w.C[k] * w.Dp[(size_t)k * n + j] / p.s;
        for (int k = 0; k < p.s; k++) /* Dp := c_k W_k (s' no longer needed) */
            for (int j = 0; j < n; j++)
                w.Dp[(size_t)k * n + j] = w.C[k] * w.W[(size_t)k * n + j];
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, p.s, 1.0 / p.s, w.W, n,
                    w.Dp, n, 0.0, H, n);
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                double t = 0;
                if (cfg->L)
                    for (int j = 0; j < n; j++)
                        t += w.Linv[j * n + a] * d[j] * w.Linv[j * n + b];
                else if (a == b)
                    t = d[a] / (scale_of(cfg, a) * scale_of(cfg, a));
                H[a * n + b] -= t;
            }
    }
    work_free(&w);
    if (!rc && !(rc = check_estimate(value, 1, "value")) &&
        !(rc = check_estimate(grad, n, "gradient")))
        rc = check_estimate(H, (long)n * n, "Hessian");
    return rc;
}

/* ---- tensor face ---- */

typedef struct {
    const da_smooth_cfg *cfg;
    da_blackbox_fn f;
    void *user;
    da_rng *rng;
    int n, m, rows;
} op_state;

typedef struct {
    int s;
    double *C; /* [rows][s][m] */
    double *W; /* [rows][s][n] */
} op_saved;

static int op_forward(da_custom_args *a, double *out)
{
    op_state *st = a->state;
    plan p;
    work w;
    int rc = make_plan(st->cfg, st->n, &p);
    if (rc || (rc = work_alloc(&w, &p, st->n, st->m, 0)))
        return rc;
    op_saved *sv = da_ctx_alloc(a->ctx, sizeof *sv);
    double *C = sv ? da_ctx_alloc(a->ctx, (size_t)st->rows * p.s * st->m * sizeof(double)) : NULL;
    double *W = C ? da_ctx_alloc(a->ctx, (size_t)st->rows * p.s * st->n * sizeof(double)) : NULL;
    rc = W ? check_scale(st->cfg, st->n, &w) : DA_ENOMEM;
    for (int r = 0; r < st->rows && !rc; r++) {
        const double *x = a->in_data[0] + (size_t)r * st->n;
        rc = estimate(st->cfg, &p, st->f, st->user, st->n, st->m, x, st->rng, &w,
                      out + (size_t)r * st->m);
        memcpy(C + (size_t)r * p.s * st->m, w.C, (size_t)p.s * st->m * sizeof(double));
        memcpy(W + (size_t)r * p.s * st->n, w.W, (size_t)p.s * st->n * sizeof(double));
    }
    work_free(&w);
    if (!rc) {
        *sv = (op_saved){.s = p.s, .C = C, .W = W};
        a->saved = sv;
    }
    return rc;
}

static int op_backward(da_custom_args *a, const double *og, double *const *ig)
{
    op_state *st = a->state;
    op_saved *sv = a->saved;
    if (!ig[0])
        return DA_OK;
    double *coef = da_ctx_alloc(a->ctx, (size_t)sv->s * sizeof(double));
    if (!coef)
        return DA_ENOMEM;
    for (int r = 0; r < st->rows; r++) {
        const double *C = sv->C + (size_t)r * sv->s * st->m;
        /* grad_x[r] += W^T (C cot) / s */
        cblas_dgemv(CblasRowMajor, CblasNoTrans, sv->s, st->m, 1.0, C, st->m,
                    og + (size_t)r * st->m, 1, 0.0, coef, 1);
        cblas_dgemv(CblasRowMajor, CblasTrans, sv->s, st->n, 1.0 / sv->s,
                    sv->W + (size_t)r * sv->s * st->n, st->n, coef, 1, 1.0,
                    ig[0] + (size_t)r * st->n, 1);
    }
    return DA_OK;
}

da_tensor *da_smooth_op(da_ctx *ctx, da_tensor *x, int m, da_blackbox_fn f, void *user,
                        const da_smooth_cfg *cfg, da_rng *rng)
{
    if (!x) { /* keep the error of the op that failed to make x */
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "da_smooth_op: x is NULL");
        return NULL;
    }
    if (!ctx || !f || !rng || !cfg) {
        da_set_error(DA_EINVAL, "da_smooth_op: NULL ctx, f, cfg or rng");
        return NULL;
    }
    if (x->ndim != 1 && x->ndim != 2) {
        da_set_error(DA_ESHAPE, "da_smooth_op: x must be [n] or [batch][n] (ndim %d)", x->ndim);
        return NULL;
    }
    if (m < 1 || m > DA_SMOOTH_MAX_DIM) {
        da_set_error(DA_ERANGE, "da_smooth_op: m = %d outside [1, %d]", m, DA_SMOOTH_MAX_DIM);
        return NULL;
    }
    if (da_check_finite(x, "da_smooth_op"))
        return NULL;
    op_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st)
        return NULL;
    *st = (op_state){.cfg = cfg, .f = f, .user = user, .rng = rng,
                     .n = x->shape[x->ndim - 1], .m = m,
                     .rows = x->ndim == 2 ? x->shape[0] : 1};
    int shape[2] = {st->rows, m};
    return da_op_custom(ctx, "da_smooth_op", &x, 1, x->ndim, x->ndim == 2 ? shape : shape + 1,
                        op_forward, op_backward, NULL, st);
}
