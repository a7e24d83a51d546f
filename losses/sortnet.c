/* sortnet.c - differentiable sorting networks (diffsort, ICML'21 / ICLR'22): the
 * networks, the sigmoids, the fused per-layer kernels (see sortnet_impl.h), the
 * forward (values and P), the vector-Jacobian product and the operator's tensor face.
 * The ranking loss lives in sortnet_loss.c. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sortnet_impl.h"
#include "alloc.h"

#define ART_EPS 1e-10     /* diffsort's |a - b| + 1e-10 in logistic_phi */
#define OPTIMAL_EPS 1e-10 /* diffsort's s_best: 1/16/(|x| + 1e-10) */
#define BLOCK_BYTES (4u << 20)

/* ---- networks ---- */

/* the caller sized net->comp for at most N/2 comparators per layer */
static void add_comp(da_sortnet *net, int a, int b, int flip)
{
    net->comp[net->n_comp++] = (da_sortnet_comp){a, b, flip};
}

/* n layers; layer l compares (i, i+1) for i = l % 2, l % 2 + 2, ... (diffsort
 * odd_even_network; its identity comparators are not stored) */
static void build_odd_even(da_sortnet *net)
{
    int n = net->n;
    for (int l = 0; l < n; l++) {
        net->layer_start[l] = net->n_comp;
        for (int i = l % 2; i + 1 < n; i += 2)
            add_comp(net, i, i + 1, 0);
    }
}

/* bitonic on N = 2^ceil(log2 n) wires; the lowest N - n wires are dropped and a
 * comparator touching one of them becomes an identity (diffsort bitonic_network) */
static void build_bitonic(da_sortnet *net, int blocks)
{
    int N = 1 << blocks, off = N - net->n, l = 0;
    for (int blk = 0; blk < blocks; blk++)
        for (int layer = 0; layer <= blk; layer++, l++) {
            int m = 1 << (blk - layer);
            net->layer_start[l] = net->n_comp;
            for (int i = 0; i < N; i += 2 * m)
                for (int j = 0; j < m; j++) {
                    int a = i + j, b = a + m;
                    if (a >= off && b >= off)
                        add_comp(net, a - off, b - off, (a >> (blk + 1)) & 1);
                }
        }
}

static int check_params(da_sortnet_kind kind, int n, da_sigmoid sigmoid,
                        double steepness, double art_lambda)
{
    if (kind != DA_SORTNET_ODD_EVEN && kind != DA_SORTNET_BITONIC)
        return da_set_error(DA_EINVAL, "da_sortnet_new: unknown network kind %d", (int)kind);
    if ((int)sigmoid < DA_SIGMOID_LOGISTIC || (int)sigmoid > DA_SIGMOID_OPTIMAL)
        return da_set_error(DA_EINVAL, "da_sortnet_new: unknown sigmoid %d", (int)sigmoid);
    if (n < 2 || n > DA_SORTNET_MAX_N)
        return da_set_error(DA_ERANGE, "da_sortnet_new: n = %d outside [2, %d]", n,
                            DA_SORTNET_MAX_N);
    if (!isfinite(steepness))
        return da_set_error(DA_ENAN, "da_sortnet_new: steepness is NaN or Inf");
    if (steepness <= 0)
        return da_set_error(DA_ERANGE, "da_sortnet_new: steepness %g <= 0", steepness);
    if (sigmoid == DA_SIGMOID_LOGISTIC_PHI) {
        if (!isfinite(art_lambda))
            return da_set_error(DA_ENAN, "da_sortnet_new: art_lambda is NaN or Inf");
        if (art_lambda < 0 || art_lambda > 1)
            return da_set_error(DA_ERANGE, "da_sortnet_new: art_lambda %g outside [0, 1]",
                                art_lambda);
    }
    return DA_OK;
}

da_sortnet *da_sortnet_new(da_sortnet_kind kind, int n, da_sigmoid sigmoid,
                           double steepness, double art_lambda)
{
    if (check_params(kind, n, sigmoid, steepness, art_lambda))
        return NULL;
    int blocks = 0;
    while ((1 << blocks) < n)
        blocks++;
    int layers = kind == DA_SORTNET_ODD_EVEN ? n : blocks * (blocks + 1) / 2;
    int cap = layers * ((1 << blocks) / 2); /* at most N/2 comparators per layer */
    da_sortnet *net = da_calloc(1, sizeof *net);
    if (!net) {
        da_set_error(DA_ENOMEM, "da_sortnet_new: out of memory");
        return NULL;
    }
    *net = (da_sortnet){.kind = kind,
                        .sigmoid = sigmoid,
                        .n = n,
                        .steepness = steepness,
                        .art_lambda = art_lambda,
                        .n_layers = layers};
    net->layer_start = da_malloc((size_t)(layers + 1) * sizeof *net->layer_start);
    net->comp = da_malloc((size_t)cap * sizeof *net->comp);
    if (!net->layer_start || !net->comp) {
        da_sortnet_free(net);
        da_set_error(DA_ENOMEM, "da_sortnet_new: out of memory");
        return NULL;
    }
    if (kind == DA_SORTNET_ODD_EVEN)
        build_odd_even(net);
    else
        build_bitonic(net, blocks);
    net->layer_start[layers] = net->n_comp;
    return net;
}

void da_sortnet_free(da_sortnet *net)
{
    if (!net)
        return;
    da_free(net->layer_start);
    da_free(net->comp);
    da_free(net);
}

int da_sortnet_size(const da_sortnet *net) { return net ? net->n : 0; }
int da_sortnet_layers(const da_sortnet *net) { return net ? net->n_layers : 0; }

/* ---- sigmoids: alpha = f(v), v = x[b] - x[a], with f'(v) and f''(v) ----
 * Each second derivative is d1 times bounded factors times s (in that order), so that for a
 * large steepness (s^2 overflowing) a vanishing factor gives 0, not Inf * 0. */

static double logistic(double t) { return 1.0 / (1.0 + exp(-t)); }

static double sign_of(double v) { return (v > 0) - (v < 0); }

static double sigmoid_eval(const da_sortnet *net, double v, double *d1, double *d2)
{
    /* b - a and s v may overflow (steepness 1e12 on inputs of 1e300): clamped to +-DBL_MAX,
     * where every sigmoid below is saturated and its derivatives are 0 (Inf would give
     * Inf / Inf = NaN) */
    v = fmin(fmax(v, -DBL_MAX), DBL_MAX);
    double s = net->steepness, t = fmin(fmax(s * v, -DBL_MAX), DBL_MAX), al;
    switch (net->sigmoid) {
    case DA_SIGMOID_LOGISTIC: {
        al = logistic(t);
        double g = al * (1 - al);
        *d1 = s * g;
        *d2 = *d1 * (1 - 2 * al) * s;
        return al;
    }
    case DA_SIGMOID_LOGISTIC_PHI: {
        /* u = s v (|v| + eps)^-lambda; u' = s (|v|+eps)^(-lambda-1) ((1-lambda)|v| + eps);
         * u'' = -s sgn(v) (|v|+eps)^(-lambda-2) (lambda (1-lambda) |v| + 2 lambda eps) */
        double lam = net->art_lambda, r = fabs(v) + ART_EPS, den = pow(r, lam);
        double u = v * s / den;
        double u1 = s / den / r * ((1 - lam) * fabs(v) + ART_EPS);
        double u2 = -s * sign_of(v) / den / (r * r) * (lam * (1 - lam) * fabs(v) + 2 * lam * ART_EPS);
        al = logistic(u);
        double g = al * (1 - al);
        *d1 = g * u1;
        *d2 = g * (1 - 2 * al) * u1 * u1 + g * u2;
        return al;
    }
    case DA_SIGMOID_GAUSSIAN: {
        double z = t; /* v / sigma with sigma = 1 / s */
        al = 0.5 + 0.5 * erf(z / M_SQRT2);
        *d1 = s / sqrt(2 * M_PI) * exp(-0.5 * z * z);
        *d2 = -*d1 * z * s;
        return al;
    }
    case DA_SIGMOID_RECIPROCAL: {
        double q = 2 + fabs(t);
        al = 0.5 * (t / q + 1);
        *d1 = s / q / q;
        *d2 = -2 * sign_of(t) * (*d1 / q) * s;
        return al;
    }
    case DA_SIGMOID_CAUCHY: {
        double q = 1 + t * t;
        al = 1 / M_PI * atan(t) + .5;
        *d1 = s / (M_PI * q);
        *d2 = -2 * (*d1 * (t / q)) * s;
        return al;
    }
    case DA_SIGMOID_OPTIMAL:
    default: {
        double side = (t > 0.25) - (t < -0.25), r = fabs(t) + OPTIMAL_EPS;
        al = fmin(fmax(t, -0.25), 0.25) + .5 + side * (0.25 - 1.0 / 16 / r);
        *d1 = side != 0 ? s / 16 / (r * r) : s;
        *d2 = side != 0 ? -2 * side * (*d1 / r) * s : 0;
        return al;
    }
    }
}

/* ---- tape and values pass ---- */

void da_sortnet_tape_init(const da_sortnet *net, da_sortnet_tape *tape, double *buf,
                          int with_tangent)
{
    long m = net->n_comp;
    tape->alpha = buf;
    tape->d1 = buf + m;
    tape->d2 = buf + 2 * m;
    tape->diff = buf + 3 * m;
    tape->alpha_t = with_tangent ? buf + 4 * m : NULL;
    tape->diff_t = with_tangent ? buf + 5 * m : NULL;
}

/* the two coefficients of comparator c and the sign of d c1 / d alpha */
static void coeffs(const da_sortnet_comp *cp, double al, double *c1, double *c2, double *sg)
{
    double om = 1.0 - al;
    *c1 = cp->flip ? om : al;
    *c2 = cp->flip ? al : om;
    *sg = cp->flip ? -1.0 : 1.0;
}

void da_sortnet_values_forward(const da_sortnet *net, const double *x, const double *xt,
                               double *scratch, da_sortnet_tape *tape, double *sorted)
{
    int n = net->n;
    double *v = scratch, *vt = scratch + n;
    memcpy(v, x, (size_t)n * sizeof *v);
    if (xt)
        memcpy(vt, xt, (size_t)n * sizeof *vt);
    for (int c = 0; c < net->n_comp; c++) {
        const da_sortnet_comp *cp = &net->comp[c];
        double a = v[cp->a], b = v[cp->b], c1, c2, sg;
        double al = sigmoid_eval(net, b - a, &tape->d1[c], &tape->d2[c]);
        coeffs(cp, al, &c1, &c2, &sg);
        tape->alpha[c] = al;
        tape->diff[c] = a - b;
        v[cp->a] = c1 * a + c2 * b;
        v[cp->b] = c2 * a + c1 * b;
        if (!xt)
            continue;
        double at = vt[cp->a], bt = vt[cp->b];
        double alt = tape->d1[c] * (bt - at), mixt = sg * alt * (a - b);
        tape->alpha_t[c] = alt;
        tape->diff_t[c] = at - bt;
        vt[cp->a] = c1 * at + c2 * bt + mixt;
        vt[cp->b] = c2 * at + c1 * bt - mixt;
    }
    if (sorted)
        memcpy(sorted, v, (size_t)n * sizeof *v);
}

void da_sortnet_values_backward(const da_sortnet *net, const da_sortnet_tape *tape,
                                const double *g_sorted, const double *g_alpha,
                                const double *g_sorted_t, const double *g_alpha_t,
                                double *scratch, double *grad_x, double *grad_x_t)
{
    int n = net->n;
    double *g = scratch, *gt = scratch + n;
    for (int i = 0; i < n; i++) {
        g[i] = g_sorted ? g_sorted[i] : 0.0;
        gt[i] = g_sorted_t ? g_sorted_t[i] : 0.0;
    }
    for (int c = net->n_comp - 1; c >= 0; c--) {
        const da_sortnet_comp *cp = &net->comp[c];
        double c1, c2, sg, ga = g[cp->a], gb = g[cp->b], e = ga - gb;
        coeffs(cp, tape->alpha[c], &c1, &c2, &sg);
        double gal = (g_alpha ? g_alpha[c] : 0.0) + sg * e * tape->diff[c];
        double gv = gal * tape->d1[c];
        g[cp->a] = c1 * ga + c2 * gb - gv;
        g[cp->b] = c2 * ga + c1 * gb + gv;
        if (!grad_x_t)
            continue;
        double gta = gt[cp->a], gtb = gt[cp->b], et = gta - gtb;
        double galt = (g_alpha_t ? g_alpha_t[c] : 0.0) +
                      sg * (et * tape->diff[c] + e * tape->diff_t[c]);
        double gvt = galt * tape->d1[c] - gal * tape->d2[c] * tape->diff_t[c];
        double mixt = sg * tape->alpha_t[c] * e;
        gt[cp->a] = c1 * gta + c2 * gtb + mixt - gvt;
        gt[cp->b] = c2 * gta + c1 * gtb - mixt + gvt;
    }
    memcpy(grad_x, g, (size_t)n * sizeof *g);
    if (grad_x_t)
        memcpy(grad_x_t, gt, (size_t)n * sizeof *gt);
}

/* ---- the fused lane kernels ---- */

static void mix_lanes(int R, double c1, double c2, double *restrict u, double *restrict w,
                      double *restrict d)
{
    if (d) {
#pragma omp simd
        for (int r = 0; r < R; r++) {
            double uu = u[r], ww = w[r];
            d[r] = uu - ww;
            u[r] = c1 * uu + c2 * ww;
            w[r] = c2 * uu + c1 * ww;
        }
    } else {
#pragma omp simd
        for (int r = 0; r < R; r++) {
            double uu = u[r], ww = w[r];
            u[r] = c1 * uu + c2 * ww;
            w[r] = c2 * uu + c1 * ww;
        }
    }
}

/* tangent lanes: (ut, wt) <- mix(ut, wt) + sa (u - w) (+, -), with u, w before the mix */
static void mix_lanes_t(int R, double c1, double c2, double sa, double *restrict u,
                        double *restrict w, double *restrict ut, double *restrict wt,
                        double *restrict d, double *restrict dt)
{
    for (int r = 0; r < R; r++) {
        double uu = u[r], ww = w[r], tu = ut[r], tw = wt[r];
        if (d)
            d[r] = uu - ww;
        if (dt)
            dt[r] = tu - tw;
        u[r] = c1 * uu + c2 * ww;
        w[r] = c2 * uu + c1 * ww;
        ut[r] = c1 * tu + c2 * tw + sa * (uu - ww);
        wt[r] = c2 * tu + c1 * tw - sa * (uu - ww);
    }
}

static int comp_index(const da_sortnet *net, int descending, int k)
{
    return descending ? net->n_comp - 1 - k : k;
}

void da_sortnet_sweep(const da_sortnet *net, const da_sortnet_tape *tape, int descending,
                      int R, double *S, double *D, double *St, double *Dt)
{
    for (int k = 0; k < net->n_comp; k++) {
        int c = comp_index(net, descending, k);
        const da_sortnet_comp *cp = &net->comp[c];
        double c1, c2, sg;
        coeffs(cp, tape->alpha[c], &c1, &c2, &sg);
        double *u = S + (size_t)cp->a * R, *w = S + (size_t)cp->b * R;
        double *d = D ? D + (size_t)c * R : NULL;
        if (St)
            mix_lanes_t(R, c1, c2, sg * tape->alpha_t[c], u, w, St + (size_t)cp->a * R,
                        St + (size_t)cp->b * R, d, Dt ? Dt + (size_t)c * R : NULL);
        else
            mix_lanes(R, c1, c2, u, w, d);
    }
}

/* sum_r (gu - gw) d */
static double diff_dot(int R, const double *gu, const double *gw, const double *d)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int r = 0; r < R; r++)
        s += (gu[r] - gw[r]) * d[r];
    return s;
}

/* reverse of a mix on lanes: returns sum_r (gu - gw) d and, if mix, (gu, gw) <- mix */
static double mix_back_lanes(int R, double c1, double c2, double *restrict gu,
                             double *restrict gw, const double *restrict d, int mix)
{
    if (!mix)
        return diff_dot(R, gu, gw, d);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int r = 0; r < R; r++) {
        double a = gu[r], b = gw[r];
        s += (a - b) * d[r];
        gu[r] = c1 * a + c2 * b;
        gw[r] = c2 * a + c1 * b;
    }
    return s;
}

void da_sortnet_sweep_back(const da_sortnet *net, const da_sortnet_tape *tape,
                           int descending, int R, double *G, const double *D,
                           double *g_alpha, double *Gt, const double *Dt,
                           double *g_alpha_t)
{
    /* comparators of the layer the sweep started with: their mix would only form the
     * (unused) cotangent of the initial state */
    int first_lo = descending ? net->layer_start[net->n_layers - 1] : 0;
    int first_hi = descending ? net->n_comp : net->layer_start[1];
    for (int k = 0; k < net->n_comp; k++) {
        int c = comp_index(net, !descending, k);
        const da_sortnet_comp *cp = &net->comp[c];
        double c1, c2, sg;
        coeffs(cp, tape->alpha[c], &c1, &c2, &sg);
        double *gu = G + (size_t)cp->a * R, *gw = G + (size_t)cp->b * R;
        const double *d = D + (size_t)c * R;
        int last = c >= first_lo && c < first_hi;
        if (!Gt) {
            g_alpha[c] += sg * mix_back_lanes(R, c1, c2, gu, gw, d, !last);
            continue;
        }
        double *tu = Gt + (size_t)cp->a * R, *tw = Gt + (size_t)cp->b * R;
        const double *dt = Dt + (size_t)c * R;
        g_alpha[c] += sg * diff_dot(R, gu, gw, d);
        g_alpha_t[c] += sg * (diff_dot(R, tu, tw, d) + diff_dot(R, gu, gw, dt));
        if (!last)
            mix_lanes_t(R, c1, c2, sg * tape->alpha_t[c], gu, gw, tu, tw, NULL, NULL);
    }
}

int da_sortnet_block_lanes(const da_sortnet *net, int lanes, int records)
{
    size_t per_lane = (size_t)records * ((size_t)net->n_comp + (size_t)net->n) * sizeof(double);
    size_t R = BLOCK_BYTES / (per_lane ? per_lane : 1);
    if (R < 1)
        R = 1;
    return R < (size_t)lanes ? (int)R : lanes;
}

int da_sortnet_parallel(const da_sortnet *net, int batch, int lanes)
{
    return batch > 1 && (double)batch * net->n_comp * (lanes + 4) >= 65536.0;
}

int da_sortnet_check_input(const char *fn, const da_sortnet *net, int batch,
                           const double *x, long len)
{
    if (!net || !x)
        return da_set_error(DA_EINVAL, "%s: NULL network or input", fn);
    if (batch < 1)
        return da_set_error(DA_ERANGE, "%s: batch %d < 1", fn, batch);
    if (!da_all_finite(x, len))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in the input", fn);
    return DA_OK;
}

/* ---- forward and VJP ---- */

void da_sortnet_identity_block(int n, int i0, int R, double *S)
{
    memset(S, 0, (size_t)n * R * sizeof *S);
    for (int r = 0; r < R; r++)
        S[(size_t)(i0 + r) * R + r] = 1.0;
}

static void sample_apply(const da_sortnet *net, const double *x, double *sorted, double *P,
                         double *ws)
{
    int n = net->n;
    da_sortnet_tape tape;
    da_sortnet_tape_init(net, &tape, ws, 0);
    double *scratch = ws + 4 * (size_t)net->n_comp, *S = scratch + 2 * n;
    da_sortnet_values_forward(net, x, NULL, scratch, &tape, sorted);
    if (!P)
        return;
    da_sortnet_identity_block(n, 0, n, S);
    da_sortnet_sweep(net, &tape, 0, n, S, NULL, NULL, NULL);
    for (int i = 0; i < n; i++)
        for (int w = 0; w < n; w++)
            P[(size_t)i * n + w] = S[(size_t)w * n + i];
}

int da_sortnet_apply(const da_sortnet *net, int batch, const double *x, double *sorted,
                     double *P)
{
    int rc = da_sortnet_check_input("da_sortnet_apply", net, batch, x,
                                    net ? (long)batch * net->n : 0);
    if (rc)
        return rc;
    if (!sorted && !P)
        return da_set_error(DA_EINVAL, "da_sortnet_apply: both outputs are NULL");
    int n = net->n, nomem = 0;
    size_t ws_len = 4 * (size_t)net->n_comp + 2 * (size_t)n + (P ? (size_t)n * n : 0);
#pragma omp parallel if (da_sortnet_parallel(net, batch, P ? n : 1))
    {
        double *ws = da_malloc(ws_len * sizeof *ws);
        if (!ws) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < batch; b++)
            if (ws)
                sample_apply(net, x + (size_t)b * n, sorted ? sorted + (size_t)b * n : NULL,
                             P ? P + (size_t)b * n * n : NULL, ws);
        da_free(ws);
    }
    return nomem ? da_set_error(DA_ENOMEM, "da_sortnet_apply: out of memory") : DA_OK;
}

static void sample_vjp(const da_sortnet *net, const double *x, const double *cot_sorted,
                       const double *cot_P, double *grad_x, double *ws, int R)
{
    int n = net->n;
    size_t m = (size_t)net->n_comp;
    da_sortnet_tape tape;
    da_sortnet_tape_init(net, &tape, ws, 0);
    double *g_alpha = ws + 4 * m, *scratch = g_alpha + m, *S = scratch + 2 * n,
           *D = S + (size_t)n * R;
    da_sortnet_values_forward(net, x, NULL, scratch, &tape, NULL);
    memset(g_alpha, 0, m * sizeof *g_alpha);
    for (int i0 = 0; cot_P && i0 < n; i0 += R) {
        int Rb = n - i0 < R ? n - i0 : R;
        da_sortnet_identity_block(n, i0, Rb, S);
        da_sortnet_sweep(net, &tape, 0, Rb, S, D, NULL, NULL);
        for (int w = 0; w < n; w++)
            for (int r = 0; r < Rb; r++)
                S[(size_t)w * Rb + r] = cot_P[(size_t)(i0 + r) * n + w];
        da_sortnet_sweep_back(net, &tape, 0, Rb, S, D, g_alpha, NULL, NULL, NULL);
    }
    da_sortnet_values_backward(net, &tape, cot_sorted, g_alpha, NULL, NULL, scratch, grad_x,
                               NULL);
}

int da_sortnet_vjp(const da_sortnet *net, int batch, const double *x,
                   const double *cot_sorted, const double *cot_P, double *grad_x)
{
    const char *fn = "da_sortnet_vjp";
    int rc = da_sortnet_check_input(fn, net, batch, x, net ? (long)batch * net->n : 0);
    if (rc)
        return rc;
    int n = net->n;
    if (!grad_x || (!cot_sorted && !cot_P))
        return da_set_error(DA_EINVAL, "%s: NULL grad_x or both cotangents NULL", fn);
    if ((cot_sorted && !da_all_finite(cot_sorted, (long)batch * n)) ||
        (cot_P && !da_all_finite(cot_P, (long)batch * n * n)))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in a cotangent", fn);
    int R = da_sortnet_block_lanes(net, n, 1), nomem = 0;
    size_t ws_len = 5 * (size_t)net->n_comp + 2 * (size_t)n +
                    (size_t)R * ((size_t)n + (size_t)net->n_comp);
#pragma omp parallel if (da_sortnet_parallel(net, batch, cot_P ? n : 1))
    {
        double *ws = da_malloc(ws_len * sizeof *ws);
        if (!ws) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < batch; b++)
            if (ws)
                sample_vjp(net, x + (size_t)b * n, cot_sorted ? cot_sorted + (size_t)b * n : NULL,
                           cot_P ? cot_P + (size_t)b * n * n : NULL, grad_x + (size_t)b * n, ws,
                           R);
        da_free(ws);
    }
    return nomem ? da_set_error(DA_ENOMEM, "%s: out of memory", fn) : DA_OK;
}

/* ---- tensor face of the operator ---- */

typedef struct {
    const da_sortnet *net;
    da_sortnet_output what;
} op_state;

static int op_forward(da_custom_args *args, double *out)
{
    const op_state *st = args->state;
    int batch = (int)(args->in[0]->size / st->net->n);
    return da_sortnet_apply(st->net, batch, args->in_data[0],
                            st->what == DA_SORTNET_OUT_SORTED ? out : NULL,
                            st->what == DA_SORTNET_OUT_P ? out : NULL);
}

static int op_backward(da_custom_args *args, const double *og, double *const *ig)
{
    const op_state *st = args->state;
    long len = args->in[0]->size;
    if (!ig[0])
        return DA_OK;
    double *g = da_ctx_alloc(args->ctx, (size_t)len * sizeof *g);
    if (!g)
        return DA_ENOMEM;
    int rc = da_sortnet_vjp(st->net, (int)(len / st->net->n), args->in_data[0],
                            st->what == DA_SORTNET_OUT_SORTED ? og : NULL,
                            st->what == DA_SORTNET_OUT_P ? og : NULL, g);
    for (long i = 0; !rc && i < len; i++)
        ig[0][i] += g[i];
    return rc;
}

da_tensor *da_sortnet_op(da_ctx *ctx, const da_sortnet *net, da_tensor *x,
                         da_sortnet_output what)
{
    if (!ctx || !net || !x) {
        da_set_error(DA_EINVAL, "da_sortnet_op: NULL ctx, network or input");
        return NULL;
    }
    int n = net->n;
    if ((x->ndim != 1 && x->ndim != 2) || x->shape[x->ndim - 1] != n) {
        da_set_error(DA_ESHAPE, "da_sortnet_op: input must be [%d] or [batch][%d]", n, n);
        return NULL;
    }
    if (what != DA_SORTNET_OUT_SORTED && what != DA_SORTNET_OUT_P) {
        da_set_error(DA_EINVAL, "da_sortnet_op: unknown output %d", (int)what);
        return NULL;
    }
    op_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st)
        return NULL;
    *st = (op_state){net, what};
    int shape[3] = {x->shape[0], n, n};
    int ndim = x->ndim;
    if (what == DA_SORTNET_OUT_P) {
        ndim = x->ndim + 1;
        if (x->ndim == 1)
            shape[0] = n;
    }
    return da_op_custom(ctx, what == DA_SORTNET_OUT_P ? "sortnet_P" : "sortnet_sorted", &x, 1,
                        ndim, shape, op_forward, op_backward, NULL, st);
}
