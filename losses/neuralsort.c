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

/* x has tied values */
static int has_ties(int n, const double *x, const int *order)
{
    int ties = 0;
    for (int k = 1; k < n; k++)
        ties |= x[order[k - 1]] == x[order[k]];
    return ties;
}

/* In ascending order: out[k] = sum_i w[i] sign(x_{order[k]} - x_{order[i]}), the sum of w
 * over the elements strictly below the k-th smallest minus the sum over those strictly
 * above, in O(n) (tied elements form one group; ties = has_ties()). out may be w: a
 * group's w is read before it is written. */
static void sorted_signed_sums(int n, const double *x, const int *order, int ties,
                               const double *w, double *out)
{
    double total = 0.0, below = 0.0;
    for (int k = 0; k < n; k++)
        total += w[k];
    for (int k = 0; !ties && k < n; k++) { /* groups of one */
        double group = w[k];
        out[k] = below - (total - below - group);
        below += group;
    }
    for (int r = 0; ties && r < n;) {
        int e = r + 1;
        while (e < n && x[order[e]] == x[order[r]])
            e++;
        double group = 0.0;
        for (int k = r; k < e; k++)
            group += w[k];
        double above = total - below - group;
        for (int k = r; k < e; k++)
            out[k] = below - above;
        below += group;
        r = e;
    }
}

/* cnt[k] = #{x_i < x_{order[k]}} - #{x_i > x_{order[k]}}, in ascending order */
static void sorted_sign_counts(int n, const double *x, const int *order, int ties,
                               double *cnt)
{
    for (int k = 0; k < n; k++)
        cnt[k] = 1.0;
    sorted_signed_sums(n, x, order, ties, cnt, cnt);
}

/* out[m] = sum_i w_i sign(x_m - x_i) in input order; out may be w; tmp: [n] */
static void signed_sums(int n, const double *x, const int *order, const double *w, double *out,
                        double *tmp)
{
    for (int k = 0; k < n; k++)
        tmp[k] = w[order[k]];
    sorted_signed_sums(n, x, order, has_ties(n, x, order), tmp, tmp);
    for (int k = 0; k < n; k++)
        out[order[k]] = tmp[k];
}

/* cnt[m] = #{x_i < x_m} - #{x_i > x_m} = sum_i sign(x_m - x_i); tmp: [n] */
static void sign_counts(int n, const double *x, const int *order, double *cnt, double *tmp)
{
    sorted_sign_counts(n, x, order, has_ties(n, x, order), tmp);
    for (int k = 0; k < n; k++)
        cnt[order[k]] = tmp[k];
}

/* Z[i][j] = (c_j x_i - B_i) / tau with B_i = sum_k |x_i - x_k| (row i of A_x 1)
 *         = (x_i - m) cnt_i - sum_k (x_k - m) sign(x_i - x_k), m the median (any m is
 * exact; the median keeps the sums small). tmp: [4][n] */
static void ns_logits(int n, double tau, const double *x, const int *order, double *Z,
                      double *tmp)
{
    double *xc = tmp, *cnt = tmp + n, *sx = tmp + 2 * n, mid = x[order[n / 2]];
    double inv = 1.0 / tau;
    for (int i = 0; i < n; i++)
        xc[i] = x[i] - mid;
    sign_counts(n, x, order, cnt, tmp + 3 * n);
    signed_sums(n, x, order, xc, sx, tmp + 3 * n);
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
    sign_counts(n, x, order, cnt, tmp + 2 * n);
    signed_sums(n, x, order, v, sv, tmp + 2 * n);
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
    sign_counts(n, x, order, cnt, tmp + 3 * n);
    signed_sums(n, x, order, r, sr, tmp + 3 * n);
    for (int m = 0; m < n; m++)
        gx[m] = (gx[m] - r[m] * cnt[m] - sr[m]) / tau;
}

/* ---- the fused loss: products instead of exponentials ----
 * Along the ascending order (y_k the k-th smallest centred x, Bs_k its B), column j of
 * the logits is D_k(j) = (c_j y_k - Bs_k) / tau, concave in y_k with its maximum M_j at
 * k = j (between y_k and y_{k+1} the slope is 2 (j - k) - 1). E_k(j) = exp(D_k(j) - M_j)
 * <= 1 goes from column j - 1 to j by the factor
 *   exp((2 (y_k - y_j) + y_j - y_{j-1}) / tau) = rho_k sigma_j,
 *   rho_k = 1 / u_k^2,  sigma_j = u_j u_{j-1},  u_k = exp((y_{j0} - y_k) / tau),
 * so a column costs n products. Columns run in blocks of m <= BLOCK_RANGE tau / (2 span)
 * (span = y_{n-1} - y_0; one block for all columns when n span / tau <= 150), each
 * started from exact exponentials at its first column j0; no E falls by more than
 * exp(-BLOCK_RANGE) inside a block, so starting values below exp(START_FLUSH) are taken as
 * 0 and nothing turns subnormal; each dropped term changes a column sum S_j >= 1 by less
 * than 1e-97 relative. A block of two or more columns has span <= BLOCK_RANGE tau / 4, so
 * every u_k lies in [exp(-75), exp(75)]. */
#define BLOCK_RANGE 300.0
#define START_FLUSH (-400.0)

/* columns per block (see above) */
static int block_columns(int n, double span, double tau)
{
    double m = BLOCK_RANGE * tau / (2.0 * span);
    return span == 0.0 || m >= n ? n : m < 1.0 ? 1 : (int)m;
}

/* E [n] of column j0, exact; when the block has more columns, u [n] and rho [n] = 1/u^2
 * for the products */
static void block_start(int n, double tau, int j0, int more, const double *y,
                        const double *Bs, double *E, double *u, double *rho)
{
    double inv = 1.0 / tau, c = coef(n, j0);
    for (int k = 0; k < n; k++) {
        /* <= 0 exactly; rounding of the large terms (tiny tau) may not be */
        double d = (c * (y[k] - y[j0]) - (Bs[k] - Bs[j0])) * inv;
        E[k] = d > START_FLUSH ? exp(d < 0.0 ? d : 0.0) : 0.0;
    }
    if (!more)
        return;
    for (int k = 0; k < n; k++)
        u[k] = exp((y[j0] - y[k]) * inv);
#pragma omp simd
    for (int k = 0; k < n; k++)
        rho[k] = 1.0 / (u[k] * u[k]);
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

/* The running state of a block: E [n] holds column j, whose weight w = 1/S_j (and
 * cw = c_j w) is known; its terms join rr, ra when E moves on. */
typedef struct {
    int n, j;
    double w, cw;
    double *E, *rr, *ra, *S;
    double *u, *rho;
} column_walk;

/* one column: S_{j+1}; column j into rr, ra (one pass, while the sum of the next column
 * forms); f: the factor sigma_{j+1} */
static void next_column(column_walk *wk, double f)
{
    int n = wk->n;
    double s = 0.0, w = wk->w, cw = wk->cw, *E = wk->E, *rr = wk->rr, *ra = wk->ra;
    const double *rho = wk->rho;
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < n; k++) {
        rr[k] += w * E[k];
        ra[k] += cw * E[k];
        E[k] *= rho[k] * f;
        s += E[k];
    }
    wk->j++;
    wk->S[wk->j] = s;
    wk->w = 1.0 / s;
    wk->cw = coef(n, wk->j) * wk->w;
}

/* four columns: S_{j+1..j+4} in a first pass (four independent sums), then columns
 * j..j+3 into rr, ra in a second pass that recomputes the same products; f: sigma_{j+1..j+4} */
static void next_four_columns(column_walk *wk, const double f[4])
{
    int n = wk->n, j = wk->j;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, *E = wk->E, *rr = wk->rr, *ra = wk->ra;
    double f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3];
    const double *rho = wk->rho;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int k = 0; k < n; k++) {
        double e0 = E[k] * (rho[k] * f0), e1 = e0 * (rho[k] * f1);
        double e2 = e1 * (rho[k] * f2), e3 = e2 * (rho[k] * f3);
        s0 += e0;
        s1 += e1;
        s2 += e2;
        s3 += e3;
    }
    double w[4] = {wk->w, 1.0 / s0, 1.0 / s1, 1.0 / s2}, c[4];
    for (int i = 0; i < 4; i++)
        c[i] = coef(n, j + i) * w[i];
#pragma omp simd
    for (int k = 0; k < n; k++) {
        double e0 = E[k] * (rho[k] * f0), e1 = e0 * (rho[k] * f1);
        double e2 = e1 * (rho[k] * f2);
        rr[k] += w[0] * E[k] + w[1] * e0 + w[2] * e1 + w[3] * e2;
        ra[k] += c[0] * E[k] + c[1] * e0 + c[2] * e1 + c[3] * e2;
        E[k] = e2 * (rho[k] * f3);
    }
    wk->S[j + 1] = s0;
    wk->S[j + 2] = s1;
    wk->S[j + 3] = s2;
    wk->S[j + 4] = s3;
    wk->j = j + 4;
    wk->w = 1.0 / s3;
    wk->cw = coef(n, j + 4) * wk->w;
}

/* the columns [j0, j1) of one block into S, rr, ra: four at a time, the rest one by one */
static void block_sums(column_walk *wk, double tau, int j0, int j1, const double *y,
                       const double *Bs)
{
    int n = wk->n;
    double s = 0.0, f[4];
    block_start(n, tau, j0, j1 - j0 > 1, y, Bs, wk->E, wk->u, wk->rho);
#pragma omp simd reduction(+ : s)
    for (int k = 0; k < n; k++)
        s += wk->E[k];
    wk->j = j0;
    wk->S[j0] = s;
    wk->w = 1.0 / s;
    wk->cw = coef(n, j0) * wk->w;
    while (wk->j + 1 < j1) {
        int j = wk->j, more = j + 4 < j1 ? 4 : 1;
        for (int i = 1; i <= more; i++)
            f[i - 1] = wk->u[j + i] * wk->u[j + i - 1];
        if (more == 4)
            next_four_columns(wk, f);
        else
            next_column(wk, f[0]);
    }
    add_column(n, wk->E, wk->w, wk->cw, wk->rr, wk->ra);
}

/* l_b = (1/n) sum_j (M_j + log S_j - D_{pos(t_j)}(j)), S_j = sum_k E_k(j); with
 * rr_k = sum_j E_k(j) / S_j and ra_k = sum_j c_j E_k(j) / S_j, the VJP (ns_vjp) of
 * G = (P - Q)/n has r_m = (rr_k - 1)/n and a_m = (ra_k - c_{rank_t(m)})/n for the input m
 * at ascending position k. Everything runs in ascending order. tmp: [10][n]; itmp: [n] */
static double ns_loss(int n, double tau, const double *x, const int *order, const int *target,
                      double *gx, double *tmp, int *itmp)
{
    double *y = tmp, *cnt = tmp + n, *sy = tmp + 2 * n, *Bs = tmp + 3 * n;
    double *E = tmp + 4 * n, *rho = tmp + 5 * n, *rr = tmp + 6 * n, *ra = tmp + 7 * n;
    double *S = tmp + 8 * n, *u = tmp + 9 * n;
    int *pos = itmp;
    double inv = 1.0 / tau, mid = x[order[n / 2]], l = 0.0;
    int ties = has_ties(n, x, order);
    for (int k = 0; k < n; k++) {
        y[k] = x[order[k]] - mid;
        pos[order[k]] = k;
        rr[k] = ra[k] = 0.0;
    }
    sorted_sign_counts(n, x, order, ties, cnt);
    sorted_signed_sums(n, x, order, ties, y, sy);
    for (int k = 0; k < n; k++)
        Bs[k] = y[k] * cnt[k] - sy[k];
    for (int j = 0; j < n; j++) { /* M_j - D(j) >= 0, also when rounded */
        int p = pos[target[j]];
        double d = (coef(n, j) * (y[j] - y[p]) - (Bs[j] - Bs[p])) * inv;
        l += d > 0.0 ? d : 0.0;
    }
    int m = block_columns(n, y[n - 1] - y[0], tau);
    column_walk wk = {.n = n, .E = E, .rr = rr, .ra = ra, .S = S, .u = u, .rho = rho};
    for (int j0 = 0; j0 < n; j0 += m)
        block_sums(&wk, tau, j0, j0 + m < n ? j0 + m : n, y, Bs);
    l = (l + da_relperm_sum_log(n, S)) / n;
    if (!gx)
        return l;
    for (int j = 0; j < n; j++) /* ra_k - c_{rank_t} */
        ra[pos[target[j]]] -= coef(n, j);
    for (int k = 0; k < n; k++) { /* r and a, in place */
        rr[k] = (rr[k] - 1.0) / n;
        ra[k] /= n;
    }
    sorted_signed_sums(n, x, order, ties, rr, sy); /* sy: the signed sums of r */
    for (int k = 0; k < n; k++)
        gx[order[k]] = (ra[k] - rr[k] * cnt[k] - sy[k]) * inv;
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
