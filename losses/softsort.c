/* softsort.c - SoftSort (Prillo & Eisenschlos, ICML 2020, eq. 1 with |.|, pow = 1): the
 * logits in diffalg's orientation and their exact Jacobian products, through the
 * hard-sorted values too, and the ranking loss fused in O(n log n); softmax, Hessian and
 * tensor faces come from the shared engine (relperm.c). Also the orientation conversion
 * to/from the paper's layout. */
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

/* ---- the fused loss in O(n) after the sort ----
 * Column j of P is exp(-|x_i - a_j| / tau) / S_j: along the ascending values a, every
 * kernel sum over the elements below (or above) a_k follows from the one of the previous
 * (next) distinct value times exp(-gap / tau), so S_j and the row and column sums of the
 * gradient take O(n) products and n - 1 exponentials. */

/* a gap of more than GAP_FLUSH tau contributes exp(-gap / tau) < 1e-260: taken as 0 */
#define GAP_FLUSH 600.0

/* along the ascending values a [n] (tied values form one group), with f[k] =
 * exp(-(a[k+1] - a[k]) / tau) and weights w (NULL: all 1):
 *   lo[k] = sum_{j : a_j < a_k} w_j exp(-(a_k - a_j) / tau),
 *   hi[k] = sum_{j : a_j > a_k} w_j exp(-(a_j - a_k) / tau),
 *   same[k] = sum_{j : a_j = a_k} w_j (or NULL) */
static void kernel_sums(int n, const double *a, const double *f, const double *w, double *lo,
                        double *hi, double *same)
{
    double carry = 0.0;
    for (int r = 0, e; r < n; r = e) {
        double group = 0.0;
        for (e = r; e < n && a[e] == a[r]; e++)
            group += w ? w[e] : 1.0;
        for (int k = r; k < e; k++) {
            lo[k] = carry;
            if (same)
                same[k] = group;
        }
        carry = e < n ? f[e - 1] * (carry + group) : 0.0;
    }
    carry = 0.0;
    for (int e = n, r; e > 0; e = r) {
        double group = 0.0;
        for (r = e; r > 0 && a[r - 1] == a[e - 1]; r--)
            group += w ? w[r - 1] : 1.0;
        for (int k = r; k < e; k++)
            hi[k] = carry;
        carry = r > 0 ? f[r - 1] * (carry + group) : 0.0;
    }
}

/* l_b = (1/n) sum_j (log S_j + |x_{t_j} - a_j| / tau); with rowP_k = lo_w - hi_w (w =
 * 1/S) and colP_j = w_j (hi - lo), the VJP (ss_vjp) of G = (P - Q)/n is
 *   gx_m = (-rowP_k + colP_k + sign(x_m - a_{rank_t(m)}) - sign(x_{t_k} - a_k)) / (n tau)
 * for the input m at ascending position k. tmp: [7][n]; itmp: [2][n] */
static double ss_loss(int n, double tau, const double *x, const int *order, const int *target,
                      double *gx, double *tmp, int *itmp)
{
    double *a = tmp, *f = tmp + n, *lo = tmp + 2 * n, *hi = tmp + 3 * n, *S = tmp + 4 * n;
    double *lo_w = tmp + 5 * n, *hi_w = tmp + 6 * n, inv = 1.0 / tau, l = 0.0;
    int *pos = itmp, *rank_t = itmp + n;
    for (int k = 0; k < n; k++)
        a[k] = x[order[k]];
    for (int k = 0; k + 1 < n; k++) {
        double gap = (a[k + 1] - a[k]) * inv;
        f[k] = gap < GAP_FLUSH ? exp(-gap) : 0.0;
    }
    kernel_sums(n, a, f, NULL, lo, hi, S);
    for (int j = 0; j < n; j++) {
        S[j] += lo[j] + hi[j];
        l += fabs(x[target[j]] - a[j]) * inv;
    }
    l = (l + da_relperm_sum_log(n, S)) / n;
    if (!gx)
        return l;
    for (int j = 0; j < n; j++) {
        S[j] = 1.0 / S[j]; /* now w */
        pos[order[j]] = j;
        rank_t[target[j]] = j;
    }
    kernel_sums(n, a, f, S, lo_w, hi_w, NULL);
    double scale = inv / n;
    for (int m = 0; m < n; m++) {
        int k = pos[m];
        double row = lo_w[k] - hi_w[k], col = S[k] * (hi[k] - lo[k]);
        double q = da_relperm_sign(x[m] - a[rank_t[m]]) - da_relperm_sign(x[target[k]] - a[k]);
        gx[m] = (col - row + q) * scale;
    }
    return l;
}

static const da_relperm_kind softsort_kind = {"da_softsort", ss_logits, ss_jvp, ss_vjp,
                                              ss_loss};

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
