/* newton.c - Newton Losses: Hessian and empirical-Fisher steps (see newton.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "newton.h"
#include "alloc.h"

/* X := (A + lambda I)^-1 X for symmetric A [m][m] and nrhs vectors X [nrhs][m] (each
 * contiguous, i.e. column-major m x nrhs). Cholesky, else the clipped
 * eigen-decomposition (*fell_back = 1). work: m*m + m + m*nrhs doubles. */
static int solve_regularised(int m, const double *A, double lambda, double *X, int nrhs,
                             double *work, int *fell_back)
{
    *fell_back = 0;
    memcpy(work, A, (size_t)m * m * sizeof *work);
    for (int i = 0; i < m; i++)
        work[i * m + i] += lambda;
    if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', m, work, m) == 0)
        return LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', m, nrhs, work, m, X, m) == 0
                   ? DA_OK
                   : da_set_error(DA_ENUMERIC, "newton: dpotrs failed");
    /* not positive definite: A = Q diag(e) Q^T, divide by max(e + lambda, floor) */
    *fell_back = 1;
    double *e = work + (size_t)m * m, *T = e + m;
    memcpy(work, A, (size_t)m * m * sizeof *work);
    lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'L', m, work, m, e);
    if (info == LAPACK_WORK_MEMORY_ERROR)
        return da_set_error(DA_ENOMEM, "newton: out of memory for dsyevd's workspace");
    if (info != 0)
        return da_set_error(DA_ENUMERIC, "newton: eigen-decomposition failed");
    double floor_ = fmax(lambda, 1e-12);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, m, nrhs, m, 1.0, work, m, X, m, 0.0,
                T, m);
    for (int j = 0; j < nrhs; j++)
        for (int i = 0; i < m; i++)
            T[(size_t)j * m + i] /= fmax(e[i] + lambda, floor_);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, nrhs, m, 1.0, work, m, T, m, 0.0,
                X, m);
    return DA_OK;
}

static int check_args(int B, int m, const double *z, const double *g, double lambda,
                      const char *who)
{
    if (!z || !g)
        return da_set_error(DA_EINVAL, "%s: NULL z or g", who);
    if (B < 1 || m < 1 || m > 65536)
        return da_set_error(DA_ERANGE, "%s: B = %d, m = %d (need B >= 1, 1 <= m <= 65536)",
                            who, B, m);
    if (isnan(lambda))
        return da_set_error(DA_ENAN, "%s: lambda is NaN", who);
    if (!(lambda >= 0) || !isfinite(lambda))
        return da_set_error(DA_ERANGE, "%s: lambda %g must be finite and >= 0", who, lambda);
    if (!da_all_finite(z, (long)B * m) || !da_all_finite(g, (long)B * m))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in z or g", who);
    return DA_OK;
}

/* zstar = z - B * d, grad = d (d already holds (C + lambda I)^-1 g / B) */
static void write_outputs(int B, int m, const double *z, const double *d, double *zstar,
                          double *grad)
{
    for (long k = 0; k < (long)B * m; k++) {
        if (zstar)
            zstar[k] = z[k] - B * d[k];
        if (grad)
            grad[k] = d[k];
    }
}

/* the step d [B][m] (and z - B d) must be finite: a lambda too small for the scale of the
 * gradients overflows the solve */
static int check_step(int B, int m, const double *z, const double *d, const char *who)
{
    for (long k = 0; k < (long)B * m; k++)
        if (!isfinite(d[k]) || !isfinite(z[k] - B * d[k]))
            return da_set_error(DA_ENUMERIC, "%s: the Newton step overflowed (lambda too small "
                                             "for the scale of g)", who);
    return DA_OK;
}

int da_newton_hessian_step(int B, int m, const double *z, const double *g, const double *H,
                           double lambda, double *zstar, double *grad, int *fallbacks)
{
    int rc = check_args(B, m, z, g, lambda, "da_newton_hessian_step");
    if (rc)
        return rc;
    if (!H)
        return da_set_error(DA_EINVAL, "da_newton_hessian_step: H is NULL");
    if (!da_all_finite(H, (long)B * m * m))
        return da_set_error(DA_ENAN, "da_newton_hessian_step: NaN or Inf in H");
    double *d = da_malloc((size_t)B * m * sizeof *d);
    double *work = da_malloc(((size_t)m * m + 2 * (size_t)m) * sizeof *work);
    int n_fb = 0;
    /* each sample has its own H_i: one solve per sample */
    if (!d || !work) {
        rc = da_set_error(DA_ENOMEM, "da_newton_hessian_step: out of memory");
        goto done;
    }
    for (int i = 0; i < B && !rc; i++) {
        double *di = d + (size_t)i * m;
        int fb;
        for (int k = 0; k < m; k++)
            di[k] = g[(size_t)i * m + k] / B;
        rc = solve_regularised(m, H + (size_t)i * m * m, lambda, di, 1, work, &fb);
        n_fb += fb;
    }
    if (!rc)
        rc = check_step(B, m, z, d, "da_newton_hessian_step");
    if (!rc)
        write_outputs(B, m, z, d, zstar, grad);
    if (fallbacks)
        *fallbacks = n_fb;
done:
    da_free(d);
    da_free(work);
    return rc;
}

/* d [B][m] = (lambda I + G^T G / B)^-1 g_i / B through the B x B Woodbury system */
static int fisher_woodbury(int B, int m, const double *g, double lambda, double *d, int *fb)
{
    /* K [B][B], R [B][B], then solve_regularised's work: B*B + B + B*B */
    double *K = da_malloc((4 * (size_t)B * B + (size_t)B) * sizeof *K);
    if (!K)
        return da_set_error(DA_ENOMEM, "da_newton_fisher_step: out of memory");
    double *R = K + (size_t)B * B, *work = R + (size_t)B * B;
    /* K = G G^T; R = [G g_1, ..., G g_B] = K; R := (lambda B I + K)^-1 R */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, B, m, 1.0, g, m, g, m, 0.0, K, B);
    memcpy(R, K, (size_t)B * B * sizeof *R);
    int rc = solve_regularised(B, K, lambda * B, R, B, work, fb);
    if (!rc) {
        /* d_i = (g_i - G^T r_i) / (lambda B) */
        memcpy(d, g, (size_t)B * m * sizeof *d);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, m, B, -1.0, R, B, g, m, 1.0,
                    d, m);
        cblas_dscal(B * m, 1.0 / (lambda * B), d, 1);
    }
    da_free(K);
    return rc;
}

int da_newton_fisher_step(int B, int m, const double *z, const double *g, double lambda,
                          double *zstar, double *grad, int *fallbacks)
{
    int rc = check_args(B, m, z, g, lambda, "da_newton_fisher_step");
    if (rc)
        return rc;
    if (!(lambda > 0))
        return da_set_error(DA_ERANGE, "da_newton_fisher_step: lambda must be > 0 (F has "
                                       "rank <= B)");
    double *d = da_malloc((size_t)B * m * sizeof *d);
    int fb = 0;
    if (!d)
        return da_set_error(DA_ENOMEM, "da_newton_fisher_step: out of memory");
    if (m > B) {
        rc = fisher_woodbury(B, m, g, lambda, d, &fb);
    } else {
        double *F = da_malloc(((size_t)m * m * 2 + (size_t)m + (size_t)m * B) * sizeof *F);
        if (!F) {
            da_free(d);
            return da_set_error(DA_ENOMEM, "da_newton_fisher_step: out of memory");
        }
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, m, B, 1.0 / B, g, m, 0.0, F, m);
        for (int a = 0; a < m; a++) /* symmetrise the lower triangle */
            for (int b = a + 1; b < m; b++)
                F[a * m + b] = F[b * m + a];
        for (long k = 0; k < (long)B * m; k++)
            d[k] = g[k] / B;
        rc = solve_regularised(m, F, lambda, d, B, F + (size_t)m * m, &fb);
        da_free(F);
    }
    if (!rc)
        rc = check_step(B, m, z, d, "da_newton_fisher_step");
    if (!rc)
        write_outputs(B, m, z, d, zstar, grad);
    if (fallbacks)
        *fallbacks = fb;
    da_free(d);
    return rc;
}

/* ---- tensor faces ---- */

static int shape_bm(const da_tensor *z, int *B, int *m, const char *who)
{
    if (z->ndim != 1 && z->ndim != 2)
        return da_set_error(DA_ESHAPE, "%s: z must be [B][m] or [m] (ndim %d)", who, z->ndim);
    *B = z->ndim == 2 ? z->shape[0] : 1;
    *m = z->shape[z->ndim - 1];
    return DA_OK;
}

static int nl_forward(da_custom_args *a, double *out)
{
    const double *z = a->in_data[0], *zs = a->state;
    int B = a->in[0]->ndim == 2 ? a->in[0]->shape[0] : 1;
    double s = 0;
    for (long k = 0; k < a->in[0]->size; k++)
        s += 0.5 * (z[k] - zs[k]) * (z[k] - zs[k]);
    out[0] = s / B;
    return DA_OK;
}

static int nl_backward(da_custom_args *a, const double *og, double *const *ig)
{
    const double *z = a->in_data[0], *zs = a->state;
    int B = a->in[0]->ndim == 2 ? a->in[0]->shape[0] : 1;
    if (ig[0])
        for (long k = 0; k < a->in[0]->size; k++)
            ig[0][k] += og[0] * (z[k] - zs[k]) / B;
    return DA_OK;
}

static int nl_hvp(da_custom_args *a, const double *v, double *hv)
{
    int B = a->in[0]->ndim == 2 ? a->in[0]->shape[0] : 1;
    for (long k = 0; k < a->in[0]->size; k++)
        hv[k] = v[k] / B;
    return DA_OK;
}

da_tensor *da_newton_loss(da_ctx *ctx, da_tensor *z, const double *zstar)
{
    int B, m;
    if (!z) { /* keep the error of the op that failed to make z */
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "da_newton_loss: z is NULL");
        return NULL;
    }
    if (!ctx || !zstar) {
        da_set_error(DA_EINVAL, "da_newton_loss: NULL ctx or zstar");
        return NULL;
    }
    if (shape_bm(z, &B, &m, "da_newton_loss"))
        return NULL;
    if (!da_all_finite(zstar, z->size)) {
        da_set_error(DA_ENAN, "da_newton_loss: NaN or Inf in zstar");
        return NULL;
    }
    double *copy = da_ctx_alloc(ctx, (size_t)z->size * sizeof *copy);
    if (!copy)
        return NULL;
    memcpy(copy, zstar, (size_t)z->size * sizeof *copy);
    return da_op_custom(ctx, "da_newton_loss", &z, 1, 0, NULL, nl_forward, nl_backward,
                        nl_hvp, copy);
}

static int if_forward(da_custom_args *a, double *out)
{
    memcpy(out, a->in_data[0], (size_t)a->in[0]->size * sizeof *out);
    return DA_OK;
}

static int if_backward(da_custom_args *a, const double *og, double *const *ig)
{
    const double *lambda = a->state;
    int B = a->in[0]->ndim == 2 ? a->in[0]->shape[0] : 1, m = a->in[0]->shape[a->in[0]->ndim - 1];
    long n = a->in[0]->size;
    if (!ig[0])
        return DA_OK;
    double *g = da_ctx_alloc(a->ctx, 2 * (size_t)n * sizeof *g), *d = g ? g + n : NULL;
    if (!g)
        return DA_ENOMEM;
    for (long k = 0; k < n; k++)
        g[k] = B * og[k];
    int rc = da_newton_fisher_step(B, m, a->in_data[0], g, *lambda, NULL, d, NULL);
    for (long k = 0; k < n && !rc; k++)
        ig[0][k] += d[k];
    return rc;
}

da_tensor *da_inject_fisher(da_ctx *ctx, da_tensor *z, double lambda)
{
    int B, m;
    if (!z) { /* keep the error of the op that failed to make z */
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "da_inject_fisher: z is NULL");
        return NULL;
    }
    if (!ctx) {
        da_set_error(DA_EINVAL, "da_inject_fisher: ctx is NULL");
        return NULL;
    }
    if (shape_bm(z, &B, &m, "da_inject_fisher"))
        return NULL;
    if (!(lambda > 0) || !isfinite(lambda)) {
        da_set_error(DA_ERANGE, "da_inject_fisher: lambda %g must be finite and > 0", lambda);
        return NULL;
    }
    double *lam = da_ctx_alloc(ctx, sizeof *lam);
    if (!lam)
        return NULL;
    *lam = lambda;
    return da_op_custom(ctx, "da_inject_fisher", &z, 1, z->ndim, z->shape, if_forward,
                        if_backward, NULL, lam);
}
