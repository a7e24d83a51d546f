/* neuralsort.c - NeuralSort (Grover et al., ICLR 2019): the logits of eq. 5 in diffalg's
 * orientation, their exact Jacobian products and the fused ranking loss; the softmax, the
 * Hessian and the tensor faces come from the shared engine (relperm.c). */
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

/* ---- the fused loss: products instead of exponentials ----
 * Along the ascending order (y_k the k-th smallest centred x, Bs_k its B), column j of
 * the logits is D_k(j) = (c_j y_k - Bs_k) / tau, concave in y_k with its maximum M_j at
 * k = j (between y_k and y_{k+1} the slope is 2 (j - k) - 1). E_k(j) = exp(D_k(j) - M_j)
 * <= 1 goes from column j - 1 to j by the factor
 *   exp((2 (y_k - y_j) + y_j - y_{j-1}) / tau) = rho_k sigma_j,
 *   rho_k = exp(2 (y_k - y_{j0}) / tau),  sigma_j = exp((y_j - y_{j-1} - 2 (y_j - y_{j0})) / tau),
 * so a column costs n products. Columns run in blocks of m <= BLOCK_RANGE tau / (2 span)
 * (span = y_{n-1} - y_0; one block for all columns when n span / tau <= 150), each
 * started from exact exponentials at its first column j0; no E falls by more than
 * exp(-BLOCK_RANGE) inside a block, so starting values below exp(START_FLUSH) are taken as
 * 0 and nothing turns subnormal; rows with |log rho_k| > 2 BLOCK_RANGE lie more than
 * 225 tau from every value of the block (E < exp(-225)) and are taken as 0 too. Each
 * dropped term changes a column sum S_j >= 1 by less than 1e-97 relative. */
#define BLOCK_RANGE 300.0
#define START_FLUSH (-400.0)

/* columns per block (see above) */
static int block_columns(int n, double span, double tau)
{
    double m = BLOCK_RANGE * tau / (2.0 * span);
    return span == 0.0 || m >= n ? n : m < 1.0 ? 1 : (int)m;
}

/* E [n] of column j0, exact; rho [n] for the products of the block (when it has more
 * than one column) */
static void block_start(int n, double tau, int j0, int more, const double *y,
                        const double *Bs, double *E, double *rho)
{
    double inv = 1.0 / tau, c = coef(n, j0);
    for (int k = 0; k < n; k++) {
        /* <= 0 exactly; rounding of the large terms (tiny tau) may not be */
        double d = fmin((c * (y[k] - y[j0]) - (Bs[k] - Bs[j0])) * inv, 0.0);
        double r = 2.0 * (y[k] - y[j0]) * inv;
        int far = more && fabs(r) > 2.0 * BLOCK_RANGE;
        E[k] = d > START_FLUSH && !far ? exp(d) : 0.0;
        if (more)
            rho[k] = far ? 0.0 : exp(r);
    }
}

/* rr += w E, ra += cw E */
static void add_column(int n, const double *E, double w, double cw, double *rr, double *ra)
{
#pragma omp simd
    for (int k = 0; k < n; k++) {
        rr[k] += w * E[k];
        ra[k] += cw * E[k];
    }
}

/* l_b = (1/n) sum_j (M_j + log S_j - D_{pos(t_j)}(j)), S_j = sum_k E_k(j); with
 * rr_k = sum_j E_k(j) / S_j and ra_k = sum_j c_j E_k(j) / S_j, the VJP (ns_vjp) of
 * G = (P - Q)/n has r_m = (rr_k - 1)/n and a_m = (ra_k - c_{rank_t(m)})/n for the input m
 * at ascending position k. tmp: [12][n]; itmp: [2][n] */
static double ns_loss(int n, double tau, const double *x, const int *order, const int *target,
                      double *gx, double *tmp, int *itmp)
{
    double *xc = tmp, *cnt = tmp + n, *sx = tmp + 2 * n, *y = tmp + 3 * n, *Bs = tmp + 4 * n;
    double *E = tmp + 5 * n, *rho = tmp + 6 * n, *rr = tmp + 7 * n, *ra = tmp + 8 * n;
    double *S = tmp + 9 * n, *r = tmp + 10 * n, *sr = tmp + 11 * n;
    int *pos = itmp, *rank_t = itmp + n;
    double inv = 1.0 / tau, mid = x[order[n / 2]], l = 0.0;
    for (int i = 0; i < n; i++)
        xc[i] = x[i] - mid;
    sign_counts(n, x, order, cnt);
    signed_sums(n, x, order, xc, sx);
    for (int k = 0; k < n; k++) {
        int i = order[k];
        y[k] = xc[i];
        Bs[k] = xc[i] * cnt[i] - sx[i];
        rr[k] = ra[k] = 0.0;
    }
    for (int j = 0; j < n; j++) { /* M_j - D(j) >= 0, also when rounded */
        int t = target[j];
        l += fmax((coef(n, j) * (y[j] - xc[t]) - (Bs[j] - (xc[t] * cnt[t] - sx[t]))) * inv, 0.0);
    }
    int m = block_columns(n, y[n - 1] - y[0], tau);
    double w = 0.0, cw = 0.0;
    for (int j = 0; j < n; j++) {
        /* E holds column j - 1, whose terms w E, c w E join rr, ra in the pass that
         * makes column j (one pass per column, the sum's latency hidden) */
        double s = 0.0;
        if (j % m == 0) {
            if (j > 0) /* E is unset before the first column */
                add_column(n, E, w, cw, rr, ra);
            block_start(n, tau, j, j + 1 < n && m > 1, y, Bs, E, rho);
#pragma omp simd reduction(+ : s)
            for (int k = 0; k < n; k++)
                s += E[k];
        } else {
            double sigma = exp((y[j] - y[j - 1] - 2.0 * (y[j] - y[j - j % m])) * inv);
#pragma omp simd reduction(+ : s)
            for (int k = 0; k < n; k++) {
                rr[k] += w * E[k];
                ra[k] += cw * E[k];
                E[k] *= rho[k] * sigma;
                s += E[k];
            }
        }
        S[j] = s;
        w = 1.0 / s;
        cw = coef(n, j) * w;
    }
    add_column(n, E, w, cw, rr, ra);
    l = (l + da_relperm_sum_log(n, S)) / n;
    if (!gx)
        return l;
    for (int j = 0; j < n; j++) {
        pos[order[j]] = j;
        rank_t[target[j]] = j;
    }
    for (int i = 0; i < n; i++) {
        r[i] = (rr[pos[i]] - 1.0) / n;
        gx[i] = (ra[pos[i]] - coef(n, rank_t[i])) / n;
    }
    signed_sums(n, x, order, r, sr);
    for (int i = 0; i < n; i++)
        gx[i] = (gx[i] - r[i] * cnt[i] - sr[i]) * inv;
    return l;
}

static const da_relperm_kind neuralsort_kind = {"da_neuralsort", ns_logits, ns_jvp, ns_vjp,
                                                ns_loss};

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
