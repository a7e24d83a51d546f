/* softsort.c - SoftSort (Prillo & Eisenschlos, ICML 2020, eq. 1 with |.|, pow = 1): the
 * logits in diffalg's orientation and their exact Jacobian products, through the
 * hard-sorted values too; softmax, loss, Hessian and tensor faces come from the shared
 * engine (relperm.c). Also the orientation conversion to/from the paper's layout. */
#include <math.h>

#include "relperm.h"
#include "softsort.h"

_Static_assert(DA_SOFTSORT_MAX_N == DA_RELPERM_MAX_N, "size limit of the engine");

/* Z[i][j] = -|x_i - a_j| / tau,  a_j = x[order[j]] the j-th smallest */
static void ss_logits(int n, double tau, const double *x, const int *order, double *Z,
                      double *tmp)
{
    double inv = 1.0 / tau;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            Z[i * n + j] = -fabs(x[i] - x[order[j]]) * inv;
}

/* dZ[i][j] = -sign(x_i - a_j) (v_i - v_{order[j]}) / tau */
static void ss_jvp(int n, double tau, const double *x, const int *order, const double *v,
                   double *dZ, double *tmp)
{
    double inv = 1.0 / tau;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            dZ[i * n + j] = -da_relperm_sign(x[i] - x[order[j]]) * (v[i] - v[order[j]]) * inv;
}

/* With t_ij = G[i][j] sign(x_i - a_j):
 * gx_m = (-sum_j t_mj + sum_{j : order[j] = m} sum_i t_ij) / tau */
static void ss_vjp(int n, double tau, const double *x, const int *order, const double *G,
                   double *gx, double *tmp)
{
    double *col = tmp;
    for (int j = 0; j < n; j++)
        col[j] = 0.0;
    for (int i = 0; i < n; i++) {
        double row = 0.0;
        for (int j = 0; j < n; j++) {
            double t = G[i * n + j] * da_relperm_sign(x[i] - x[order[j]]);
            row += t;
            col[j] += t;
        }
        gx[i] = -row;
    }
    for (int j = 0; j < n; j++)
        gx[order[j]] += col[j];
    for (int i = 0; i < n; i++)
        gx[i] /= tau;
}

static const da_relperm_kind softsort_kind = {"da_softsort", ss_logits, ss_jvp, ss_vjp};

static int no_cfg(const char *fn)
{
    return da_set_error(DA_EINVAL, "%s: cfg is NULL", fn);
}

int da_softsort_apply(const da_softsort_cfg *cfg, int batch, const double *x, double *P,
                      const double *cot, double *grad_x)
{
    if (!cfg)
        return no_cfg("da_softsort_apply");
    return da_relperm_apply(&softsort_kind, cfg->n, cfg->tau, batch, x, P, cot, grad_x);
}

int da_softsort_loss(const da_softsort_cfg *cfg, int batch, const double *scores,
                     const double *targets, double *loss, double *grad)
{
    if (!cfg)
        return no_cfg("da_softsort_loss");
    return da_relperm_loss(&softsort_kind, cfg->n, cfg->tau, batch, scores, targets, loss,
                           grad);
}

int da_softsort_hessian(const da_softsort_cfg *cfg, int batch, const double *scores,
                        const double *targets, double *H)
{
    if (!cfg)
        return no_cfg("da_softsort_hessian");
    return da_relperm_hessian(&softsort_kind, cfg->n, cfg->tau, batch, scores, targets, H);
}

da_tensor *da_softsort(da_ctx *ctx, da_tensor *scores, const double *targets,
                       const da_softsort_cfg *cfg)
{
    if (!cfg) {
        no_cfg("da_softsort");
        return NULL;
    }
    return da_relperm_loss_op(ctx, &softsort_kind, cfg->n, cfg->tau, scores, targets);
}

da_tensor *da_softsort_perm(da_ctx *ctx, da_tensor *scores, const da_softsort_cfg *cfg)
{
    if (!cfg) {
        no_cfg("da_softsort_perm");
        return NULL;
    }
    return da_relperm_perm_op(ctx, &softsort_kind, cfg->n, cfg->tau, scores);
}

/* ---- orientation conversion ---- */

static int check_convert(const char *fn, int batch, int n, const double *in, const double *out)
{
    if (!in || !out || in == out)
        return da_set_error(DA_EINVAL, "%s: NULL or identical in/out", fn);
    if (batch < 1 || n < 1)
        return da_set_error(DA_ERANGE, "%s: batch %d or n %d < 1", fn, batch, n);
    return DA_OK;
}

int da_perm_desc_rows_to_diffalg(int batch, int n, const double *in, double *out)
{
    int rc = check_convert("da_perm_desc_rows_to_diffalg", batch, n, in, out);
    if (rc)
        return rc;
    long nn = (long)n * n;
    for (long b = 0; b < batch; b++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                out[b * nn + (long)i * n + j] = in[b * nn + (long)(n - 1 - j) * n + i];
    return DA_OK;
}

int da_perm_diffalg_to_desc_rows(int batch, int n, const double *in, double *out)
{
    int rc = check_convert("da_perm_diffalg_to_desc_rows", batch, n, in, out);
    if (rc)
        return rc;
    long nn = (long)n * n;
    for (long b = 0; b < batch; b++)
        for (int r = 0; r < n; r++)
            for (int c = 0; c < n; c++)
                out[b * nn + (long)r * n + c] = in[b * nn + (long)c * n + (n - 1 - r)];
    return DA_OK;
}
