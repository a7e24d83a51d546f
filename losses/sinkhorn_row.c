/* sinkhorn_row.c - one row of the Sinkhorn soft sort (Cuturi et al. NeurIPS 2019; the
 * drivers, checks, faces and the loss are in sinkhorn.c): squashing, the unrolled
 * iterations, the outputs and the reverse pass through the iterations, in two domains
 * that compute the same numbers (sinkhorn_impl.h):
 *
 * log domain (paper eq. 4 in log form), with M_ij = -C_ij / eps, potentials u, v and
 * dL/dlog P_ij = H_ij = P_ij dL/dP_ij in the reverse pass:
 *   ubar = rowsum H, vbar = colsum H, dM = H; then for t = T..1
 *     column update v^t = -log n - LSE_i(u^t + M):   S_ij = n exp(u^t_i + v^t_j + M_ij)
 *         ubar_i -= sum_j S_ij vbar_j,     dM_ij -= S_ij vbar_j
 *     row update u^t = -log n - LSE_j(v^{t-1} + M):  S_ij = n exp(u^t_i + v^{t-1}_j + M_ij)
 *         vbar_j  = -sum_i S_ij ubar_i,    dM_ij -= S_ij ubar_i,   ubar = 0
 *   dxt_i = sum_j dM_ij (-2 (xt_i - y_j) / eps), then through the sigmoid and the
 *   standardisation. dM is never stored: it is contracted into dxt on the fly.
 *
 * scaling domain: the same iterations on exp(u), exp(v) with K = exp(M) formed once per
 * row, u = (1/n) / (K v), v = (1/n) / (K^T u): every sum over S above is a product with
 * K or K^T (CBLAS), so a row costs 4 T matrix-vector products and n^2 exponentials
 * instead of 4 T n^2 exponentials. Used when every C_ij / eps <= SCALING_MAX: then
 * K >= exp(-100), and since the map v^{t-1} -> v^t is monotone and homogeneous, every
 * v^t stays within a factor exp(+-100) of the fixed point's range (u^t within about
 * exp(+-200) / n^2), far from overflow and underflow. The log and the scaling domain
 * agree to rounding (tests: 1e-12 relative). */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "alloc.h"
#include "sinkhorn_impl.h"

#define SQUASH_DELTA 1e-12
/* a row runs in the scaling domain when every C_ij / eps <= SCALING_MAX (sinkhorn.h) */
#define SCALING_MAX 100.0
/* below this n, plain loops beat the call overhead of CBLAS */
#define BLAS_MIN_N 16

/* ---- products with K [n][n] (scaling domain) ---- */

/* out[c][i] = sum_j K[i][j] in[c][j] for the cols right-hand sides in [cols][n] (one
 * dgemv each: a dgemm would repack K at every call) */
static void kernel_apply(int n, const double *K, int cols, const double *in, double *out)
{
    for (int c = 0; c < cols; c++) {
        if (n >= BLAS_MIN_N) {
            cblas_dgemv(CblasRowMajor, CblasNoTrans, n, n, 1.0, K, n, in + c * n, 1, 0.0,
                        out + c * n, 1);
            continue;
        }
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < n; j++)
                s += K[i * n + j] * in[c * n + j];
            out[c * n + i] = s;
        }
    }
}

/* out[j] = sum_i K[i][j] in[i] */
static void kernel_apply_t(int n, const double *K, const double *in, double *out)
{
    if (n >= BLAS_MIN_N) {
        cblas_dgemv(CblasRowMajor, CblasTrans, n, n, 1.0, K, n, in, 1, 0.0, out, 1);
        return;
    }
    for (int j = 0; j < n; j++)
        out[j] = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            out[j] += in[i] * K[i * n + j];
}

/* ---- forward ---- */

static double squash(int n, const double *x, double *z, double *xt)
{
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++)
        mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    double sd = sqrt(var / n + SQUASH_DELTA);
    for (int i = 0; i < n; i++) {
        z[i] = (x[i] - mean) / sd;
        xt[i] = 1.0 / (1.0 + exp(-z[i]));
    }
    return sd;
}

/* squashing, the row's domain and, in the scaling domain, K */
void da_sk_prepare_row(const da_sk_problem *pb, da_sk_ws *ws, const double *x)
{
    int n = pb->n;
    double cmax = 0;
    ws->sd = squash(n, x, ws->z, ws->xt);
    for (int i = 0; i < n; i++) /* the targets span [0, 1] */
        cmax = fmax(cmax, fmax(ws->xt[i] * ws->xt[i], (1 - ws->xt[i]) * (1 - ws->xt[i])));
    ws->scaling = !pb->log_only && cmax * pb->inv_eps <= SCALING_MAX;
    for (int i = 0; ws->scaling && i < n; i++)
        for (int j = 0; j < n; j++) {
            double m = ws->xt[i] - ws->y[j];
            ws->K[(long)i * n + j] = exp(-m * m * pb->inv_eps);
        }
}

/* log sum_k exp(buf[k]) */
static double lse(const double *buf, int n)
{
    double mx = buf[0], s = 0;
    for (int k = 1; k < n; k++)
        mx = buf[k] > mx ? buf[k] : mx;
    for (int k = 0; k < n; k++)
        s += exp(buf[k] - mx);
    return mx + log(s);
}

/* U, V [iters + 1][n]: u^t, v^t for t = 0..T, log potentials (u^0 = v^0 = 0) */
static void log_iterate(const da_sk_problem *pb, da_sk_ws *ws, double *U, double *V)
{
    int n = pb->n;
    double log_a = -log((double)n), ie = pb->inv_eps;
    const double *xt = ws->xt, *y = ws->y;
    memset(U, 0, (size_t)n * sizeof(double));
    memset(V, 0, (size_t)n * sizeof(double));
    for (int t = 1; t <= pb->iters; t++) {
        double *u = U + (long)t * n, *v = V + (long)t * n;
        const double *vp = V + (long)(t - 1) * n;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                double m = xt[i] - y[j];
                ws->buf[j] = vp[j] - m * m * ie;
            }
            u[i] = log_a - lse(ws->buf, n);
        }
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < n; i++) {
                double m = xt[i] - y[j];
                ws->buf[i] = u[i] - m * m * ie;
            }
            v[j] = log_a - lse(ws->buf, n);
        }
    }
}

/* the same iterations on the scalings exp(u^t), exp(v^t) (U^0 = V^0 = 1):
 * u^t = (1/n) / (K v^{t-1}),  v^t = (1/n) / (K^T u^t) */
static void scaling_iterate(const da_sk_problem *pb, da_sk_ws *ws, double *U, double *V)
{
    int n = pb->n;
    double a = 1.0 / n;
    for (int i = 0; i < n; i++)
        U[i] = V[i] = 1.0;
    for (int t = 1; t <= pb->iters; t++) {
        double *u = U + (long)t * n, *v = V + (long)t * n;
        kernel_apply(n, ws->K, 1, V + (long)(t - 1) * n, u);
        for (int i = 0; i < n; i++)
            u[i] = a / u[i];
        kernel_apply_t(n, ws->K, u, v);
        for (int j = 0; j < n; j++)
            v[j] = a / v[j];
    }
}

void da_sk_iterate(const da_sk_problem *pb, da_sk_ws *ws, double *U, double *V)
{
    (ws->scaling ? scaling_iterate : log_iterate)(pb, ws, U, V);
}

/* p [n] = row i of P from the last potentials u, v (either domain) */
static void row_P(const da_sk_problem *pb, const da_sk_ws *ws, const double *u, const double *v,
                  int i, double *p)
{
    int n = pb->n;
    if (ws->scaling) {
        double s = n * u[i];
        for (int j = 0; j < n; j++)
            p[j] = s * ws->K[(long)i * n + j] * v[j];
        return;
    }
    for (int j = 0; j < n; j++) {
        double m = ws->xt[i] - ws->y[j];
        p[j] = n * exp(u[i] + v[j] - m * m * pb->inv_eps);
    }
}

/* P [n][n], sorted [n], ranks [n], each optional, from the last potentials */
void da_sk_outputs(const da_sk_problem *pb, da_sk_ws *ws, const double *x, const double *u,
                       const double *v, double *P, double *sorted, double *ranks)
{
    int n = pb->n;
    if (sorted)
        memset(sorted, 0, (size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        double r = 0;
        row_P(pb, ws, u, v, i, ws->buf);
        for (int j = 0; j < n; j++) {
            double p = ws->buf[j];
            if (P)
                P[(long)i * n + j] = p;
            if (sorted)
                sorted[j] += p * x[i];
            r += p * (j + 1);
        }
        if (ranks)
            ranks[i] = r;
    }
}

/* ---- reverse pass ---- */

/* seed from dL/dP (cot_P), dL/dsorted, dL/dranks: ubar, vbar, dxt and the direct
 * gradient of sorted with respect to x */
static void seed_reverse(const da_sk_problem *pb, da_sk_ws *ws, const double *x, const double *u,
                         const double *v, const double *cP, const double *cs,
                         const double *cr)
{
    int n = pb->n;
    double ie = pb->inv_eps;
    memset(ws->vbar, 0, (size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        double ub = 0, dx = 0, direct = 0;
        row_P(pb, ws, u, v, i, ws->buf);
        for (int j = 0; j < n; j++) {
            double m = ws->xt[i] - ws->y[j], p = ws->buf[j];
            double g = (cP ? cP[(long)i * n + j] : 0) + (cs ? x[i] * cs[j] : 0) +
                       (cr ? (j + 1) * cr[i] : 0);
            double h = p * g;
            ub += h;
            ws->vbar[j] += h;
            dx -= 2 * ie * h * m;
            direct += cs ? p * cs[j] : 0;
        }
        ws->ubar[i] = ub;
        ws->dxt[i] = dx;
        ws->direct[i] = direct;
    }
}

/* one unrolled iteration t backwards (log domain): consumes vbar (of v^t), ubar (of
 * u^t), leaves vbar of v^{t-1} */
static void log_reverse_step(const da_sk_problem *pb, da_sk_ws *ws, const double *u,
                             const double *v, const double *vp)
{
    int n = pb->n;
    double ie = pb->inv_eps;
    for (int i = 0; i < n; i++) {
        double acc = 0, accm = 0;
        for (int j = 0; j < n; j++) {
            double m = ws->xt[i] - ws->y[j];
            double w = n * exp(u[i] + v[j] - m * m * ie) * ws->vbar[j];
            acc += w;
            accm += w * m;
        }
        ws->ubar[i] -= acc;
        ws->dxt[i] += 2 * ie * accm;
    }
    memset(ws->vbar_next, 0, (size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        double accm = 0, ub = ws->ubar[i];
        for (int j = 0; j < n; j++) {
            double m = ws->xt[i] - ws->y[j];
            double w = n * exp(u[i] + vp[j] - m * m * ie) * ub;
            ws->vbar_next[j] -= w;
            accm += w * m;
        }
        ws->dxt[i] += 2 * ie * accm;
    }
}

/* the same step on the scalings: with S_ij = n u_i K_ij v_j, beta = n vbar v and
 * alpha = n ubar u (after the column step),
 *   sum_j S_ij vbar_j = u_i (K beta)_i,  sum_i S'_ij ubar_i = vp_j (K^T alpha)_j,
 *   sum_j S_ij vbar_j m_ij = u_i (xt_i (K beta)_i - (K (y beta))_i),
 *   sum_j S'_ij ubar_i m_ij = ubar_i xt_i - alpha_i (K (y vp))_i   (K vp = 1 / (n u)) */
static void scaling_reverse_step(const da_sk_problem *pb, da_sk_ws *ws, const double *u,
                                 const double *v, const double *vp)
{
    int n = pb->n;
    double ie2 = 2 * pb->inv_eps, *beta = ws->cols, *kb = ws->prod;
    for (int j = 0; j < n; j++) {
        beta[j] = n * ws->vbar[j] * v[j];
        ws->cols[n + j] = ws->y[j] * beta[j];
        ws->cols[2 * n + j] = ws->y[j] * vp[j];
    }
    kernel_apply(n, ws->K, 3, ws->cols, ws->prod);
    for (int i = 0; i < n; i++) {
        double xt = ws->xt[i];
        ws->dxt[i] += ie2 * u[i] * (xt * kb[i] - kb[n + i]);
        ws->ubar[i] -= u[i] * kb[i];
        ws->buf[i] = n * ws->ubar[i] * u[i]; /* alpha */
        ws->dxt[i] += ie2 * (ws->ubar[i] * xt - ws->buf[i] * kb[2 * n + i]);
    }
    kernel_apply_t(n, ws->K, ws->buf, ws->vbar_next);
    for (int j = 0; j < n; j++)
        ws->vbar_next[j] *= -vp[j];
}

/* grad [n] (+)= J^T (cot_P, cot_sorted, cot_ranks) for one prepared row */
void da_sk_backward_row(const da_sk_problem *pb, da_sk_ws *ws, const double *x,
                            const double *U, const double *V, const double *cP,
                            const double *cs, const double *cr, double *grad,
                            int accumulate)
{
    int n = pb->n, T = pb->iters;
    seed_reverse(pb, ws, x, U + (long)T * n, V + (long)T * n, cP, cs, cr);
    for (int t = T; t >= 1; t--) {
        (ws->scaling ? scaling_reverse_step : log_reverse_step)(
            pb, ws, U + (long)t * n, V + (long)t * n, V + (long)(t - 1) * n);
        double *swap = ws->vbar;
        ws->vbar = ws->vbar_next;
        ws->vbar_next = swap;
        memset(ws->ubar, 0, (size_t)n * sizeof(double));
    }
    double mdz = 0, mdzz = 0;
    for (int i = 0; i < n; i++) {
        ws->dxt[i] *= ws->xt[i] * (1 - ws->xt[i]); /* now d/dz */
        mdz += ws->dxt[i] / n;
        mdzz += ws->dxt[i] * ws->z[i] / n;
    }
    for (int i = 0; i < n; i++) {
        double g = ws->direct[i] + (ws->dxt[i] - mdz - ws->z[i] * mdzz) / ws->sd;
        grad[i] = accumulate ? grad[i] + g : g;
    }
}

/* ---- scratch ---- */

void da_sk_ws_free(da_sk_ws *ws)
{
    double **bufs[] = {&ws->y,    &ws->z,         &ws->xt,  &ws->buf, &ws->ubar, &ws->vbar,
                       &ws->vbar_next, &ws->dxt, &ws->direct, &ws->cols, &ws->prod, &ws->K,
                       &ws->U, &ws->V, &ws->P};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) {
        da_free(*bufs[k]);
        *bufs[k] = NULL;
    }
}

/* own_potentials: allocate U, V here; with_P: the [n][n] loss buffer */
int da_sk_ws_alloc(da_sk_ws *ws, const da_sk_problem *pb, int own_potentials, int with_P)
{
    size_t d = (size_t)pb->n * sizeof(double);
    size_t pot = (size_t)(pb->iters + 1) * d;
    memset(ws, 0, sizeof *ws);
    double **vecs[] = {&ws->y,    &ws->z,         &ws->xt,  &ws->buf,
                       &ws->ubar, &ws->vbar,      &ws->vbar_next, &ws->dxt, &ws->direct};
    int ok = 1;
    for (size_t k = 0; k < sizeof vecs / sizeof vecs[0]; k++)
        ok &= (*vecs[k] = da_malloc(d)) != NULL;
    ok &= (ws->cols = da_malloc(3 * d)) != NULL;
    ok &= (ws->prod = da_malloc(3 * d)) != NULL;
    ok &= (ws->K = da_malloc(d * (size_t)pb->n)) != NULL;
    if (own_potentials) {
        ok &= (ws->U = da_malloc(pot)) != NULL;
        ok &= (ws->V = da_malloc(pot)) != NULL;
    }
    if (with_P)
        ok &= (ws->P = da_malloc(d * (size_t)pb->n)) != NULL;
    if (!ok) {
        da_sk_ws_free(ws);
        return DA_ENOMEM;
    }
    for (int j = 0; j < pb->n; j++)
        ws->y[j] = (double)j / (pb->n - 1);
    return DA_OK;
}

