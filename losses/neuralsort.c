/* neuralsort.c - NeuralSort (Grover et al., ICLR 2019): the logits of eq. 5 in diffalg's
 * orientation and their exact Jacobian products; the softmax, the loss, the Hessian and
 * the tensor faces come from the shared engine (relperm.c). */
#include <math.h>

#include "neuralsort.h"
#include "relperm.h"

_Static_assert(DA_NEURALSORT_MAX_N == DA_RELPERM_MAX_N, "size limit of the engine");

/* c_j = 2j + 1 - n: the paper's (n + 1 - 2r) for descending position r = n - j, applied
 * to -x */
static double coef(int n, int j)
{
    return (double)(2 * j + 1 - n);
}

/* out[m] = sum_i w_i sign(x_m - x_i): the sum of w over the elements strictly below x_m
 * minus the sum over those strictly above, in O(n) along the ascending order (tied
 * elements form one group). out may be w: a group's w is read before it is written. */
static void signed_sums(int n, const double *x, const int *order, const double *w, double *out)
{
    double total = 0.0, below = 0.0;
    for (int i = 0; i < n; i++)
        total += w[i];
    for (int r = 0; r < n;) {
        int e = r + 1;
        while (e < n && x[order[e]] == x[order[r]])
            e++;
        double group = 0.0;
        for (int k = r; k < e; k++)
            group += w[order[k]];
        double above = total - below - group;
        for (int k = r; k < e; k++)
            out[order[k]] = below - above;
        below += group;
        r = e;
    }
}

/* cnt[m] = #{x_i < x_m} - #{x_i > x_m} = sum_i sign(x_m - x_i) */
static void sign_counts(int n, const double *x, const int *order, double *cnt)
{
    for (int i = 0; i < n; i++)
        cnt[i] = 1.0;
    signed_sums(n, x, order, cnt, cnt);
}

/* Z[i][j] = (c_j x_i - B_i) / tau with B_i = sum_k |x_i - x_k| (row i of A_x 1)
 *         = (x_i - m) cnt_i - sum_k (x_k - m) sign(x_i - x_k), m the median (any m is
 * exact; the median keeps the sums small). tmp: [3][n] */
static void ns_logits(int n, double tau, const double *x, const int *order, double *Z,
                      double *tmp)
{
    double *xc = tmp, *cnt = tmp + n, *sx = tmp + 2 * n, mid = x[order[n / 2]];
    double inv = 1.0 / tau;
    for (int i = 0; i < n; i++)
        xc[i] = x[i] - mid;
    sign_counts(n, x, order, cnt);
    signed_sums(n, x, order, xc, sx);
    for (int i = 0; i < n; i++) {
        double B = xc[i] * cnt[i] - sx[i];
        for (int j = 0; j < n; j++)
            Z[i * n + j] = (coef(n, j) * x[i] - B) * inv;
    }
}

/* dZ[i][j] = (c_j v_i - dB_i) / tau,  dB_i = sum_k sign(x_i - x_k) (v_i - v_k)
 *                                           = v_i cnt_i - sum_k v_k sign(x_i - x_k) */
static void ns_jvp(int n, double tau, const double *x, const int *order, const double *v,
                   double *dZ, double *tmp)
{
    double *cnt = tmp, *sv = tmp + n, inv = 1.0 / tau;
    sign_counts(n, x, order, cnt);
    signed_sums(n, x, order, v, sv);
    for (int i = 0; i < n; i++) {
        double dB = v[i] * cnt[i] - sv[i];
        for (int j = 0; j < n; j++)
            dZ[i * n + j] = (coef(n, j) * v[i] - dB) * inv;
    }
}

/* With a_m = sum_j c_j G[m][j] and r_m = sum_j G[m][j]:
 * gx_m = (a_m - sum_i (r_m + r_i) sign(x_m - x_i)) / tau
 *      = (a_m - r_m cnt_m - sum_i r_i sign(x_m - x_i)) / tau */
static void ns_vjp(int n, double tau, const double *x, const int *order, const double *G,
                   double *gx, double *tmp)
{
    double *r = tmp, *cnt = tmp + n, *sr = tmp + 2 * n;
    for (int i = 0; i < n; i++) {
        double a = 0.0, s = 0.0;
        for (int j = 0; j < n; j++) {
            a += coef(n, j) * G[i * n + j];
            s += G[i * n + j];
        }
        gx[i] = a;
        r[i] = s;
    }
    sign_counts(n, x, order, cnt);
    signed_sums(n, x, order, r, sr);
    for (int m = 0; m < n; m++)
        gx[m] = (gx[m] - r[m] * cnt[m] - sr[m]) / tau;
}

static const da_relperm_kind neuralsort_kind = {"da_neuralsort", ns_logits, ns_jvp, ns_vjp};

static int no_cfg(const char *fn)
{
    return da_set_error(DA_EINVAL, "%s: cfg is NULL", fn);
}

int da_neuralsort_apply(const da_neuralsort_cfg *cfg, int batch, const double *x, double *P,
                        const double *cot, double *grad_x)
{
    if (!cfg)
        return no_cfg("da_neuralsort_apply");
    return da_relperm_apply(&neuralsort_kind, cfg->n, cfg->tau, batch, x, P, cot, grad_x);
}

int da_neuralsort_loss(const da_neuralsort_cfg *cfg, int batch, const double *scores,
                       const double *targets, double *loss, double *grad)
{
    if (!cfg)
        return no_cfg("da_neuralsort_loss");
    return da_relperm_loss(&neuralsort_kind, cfg->n, cfg->tau, batch, scores, targets, loss,
                           grad);
}

int da_neuralsort_hessian(const da_neuralsort_cfg *cfg, int batch, const double *scores,
                          const double *targets, double *H)
{
    if (!cfg)
        return no_cfg("da_neuralsort_hessian");
    return da_relperm_hessian(&neuralsort_kind, cfg->n, cfg->tau, batch, scores, targets, H);
}

da_tensor *da_neuralsort(da_ctx *ctx, da_tensor *scores, const double *targets,
                         const da_neuralsort_cfg *cfg)
{
    if (!cfg) {
        no_cfg("da_neuralsort");
        return NULL;
    }
    return da_relperm_loss_op(ctx, &neuralsort_kind, cfg->n, cfg->tau, scores, targets);
}

da_tensor *da_neuralsort_perm(da_ctx *ctx, da_tensor *scores, const da_neuralsort_cfg *cfg)
{
    if (!cfg) {
        no_cfg("da_neuralsort_perm");
        return NULL;
    }
    return da_relperm_perm_op(ctx, &neuralsort_kind, cfg->n, cfg->tau, scores);
}
