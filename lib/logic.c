/* logic.c - difflogic's relaxed logic gates, logic layers and GroupSum (see logic.h).
 *
 * Paper: Petersen et al., "Deep Differentiable Logic Gate Networks", NeurIPS 2022,
 * Table 1 (real-valued gates) and eq. (3) (softmax mixture of the 16 gates per neuron).
 * A neuron's mixture sum_g p_g gate_g(a,b) is the bilinear form C0 + C1 a + C2 b + C3 ab
 * with C_k = sum_g p_g coef[g][k], so forward and backward are one pass over
 * [batch][out] with four coefficients per neuron. The gradient with respect to the
 * logits needs, per neuron, the four sums S_k = sum_b gy[b] phi_k(a_b, b_b) with
 * phi = (1, a, b, ab): then dL/dp_g = sum_k coef[g][k] S_k and the softmax backward
 * gives dL/dw_g = p_g (dL/dp_g - sum_k C_k S_k). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "logic.h"
#include "alloc.h"
#include "simd.h"

/* gate_g(a, b) = c0 + c1 a + c2 b + c3 ab, difflogic's order: gate_coef[k][g] = c_k of
 * gate g (false, and, a&!b, a, !a&b, b, xor, or, nor, xnor, !b, b=>a, !a, a=>b, nand,
 * true) */
static const double gate_coef[4][DA_LOGIC_N_GATES] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
    {0, 0, 1, 1, 0, 0, 1, 1, -1, -1, 0, 0, -1, -1, 0, 0},
    {0, 0, 0, 0, 1, 1, 1, 1, -1, -1, -1, -1, 0, 0, 0, 0},
    {0, 1, -1, 0, -1, 0, -2, -1, 1, 2, 0, 1, 0, 1, -1, 0},
};

/* below this many neuron evaluations a loop runs on one thread */
#define LOGIC_PAR_MIN 32768L

double da_logic_gate(int gate, double a, double b)
{
    if (gate < 0 || gate >= DA_LOGIC_N_GATES) {
        da_set_error(DA_ERANGE, "da_logic_gate: gate %d outside [0, 16)", gate);
        return NAN;
    }
    return gate_coef[0][gate] + gate_coef[1][gate] * a + gate_coef[2][gate] * b +
           gate_coef[3][gate] * a * b;
}

int da_logic_gate_coeffs(int gate, double c[4])
{
    if (!c)
        return da_set_error(DA_EINVAL, "da_logic_gate_coeffs: NULL c");
    if (gate < 0 || gate >= DA_LOGIC_N_GATES)
        return da_set_error(DA_ERANGE, "da_logic_gate_coeffs: gate %d outside [0, 16)", gate);
    for (int k = 0; k < 4; k++)
        c[k] = gate_coef[k][gate];
    return DA_OK;
}

/* ---- per-neuron coefficients ---- */

/* four doubles (GCC vector extension: SSE2 pairs, or AVX in an AVX2 clone) */
typedef double v4d __attribute__((vector_size(32)));
typedef long long v4i __attribute__((vector_size(32)));

/* x [16] = e^x for x <= 0 (below -708: e^-708) to ~2e-16 relative: x = k ln2 + r with
 * |r| <= ln2 / 2 (k rounded by the 1.5 2^52 trick, whose low bits then hold k), e^r by
 * its Taylor series to r^13 (four interleaved Horner chains), and 2^k assembled in the
 * exponent bits. */
static inline void exp_nonpos16(v4d x[4])
{
    const double shift = 0x1.8p52, ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33;
    static const double inv_fact[14] = {1.0 / 6227020800, 1.0 / 479001600, 1.0 / 39916800,
                                        1.0 / 3628800, 1.0 / 362880, 1.0 / 40320,
                                        1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24,
                                        1.0 / 6, 0.5, 1, 1};
    v4d t[4], r[4], p[4]; /* fully unrolled, so that they stay in registers */
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        v4i low = x[q] < -708.0;
        v4d xq = (v4d)(((v4i)x[q] & ~low) | ((v4i)(x[q] * 0 - 708.0) & low));
        t[q] = xq * 0x1.71547652b82fep0 + shift;
        v4d k = t[q] - shift;
        r[q] = (xq - k * ln2_hi) - k * ln2_lo;
        p[q] = r[q] * 0 + inv_fact[0];
    }
#pragma GCC unroll 14
    for (int i = 1; i < 14; i++)
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++)
            p[q] = p[q] * r[q] + inv_fact[i];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++)
        x[q] = p[q] * (v4d)(((v4i)t[q] + 1023) << 52);
}

/* c [4] = sum_g p_g coef[.][g] for p [16] in four vectors */
static inline void mixture_coeffs(const v4d p[4], double *c)
{
    for (int k = 0; k < 4; k++) {
        v4d acc = {0, 0, 0, 0}, cq;
        for (int q = 0; q < 4; q++) {
            memcpy(&cq, gate_coef[k] + 4 * q, sizeof cq);
            acc += p[q] * cq;
        }
        c[k] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
}

/* p [16] = softmax(w) (hard: one-hot of the first argmax); c [4] = sum_g p_g coef[.][g].
 * Returns 1 if some w is NaN or Inf (p and c are then meaningless), else 0. */
SIMD_CLONES static int gate_mixture(const double *w, int hard, double *restrict p,
                                    double *restrict c)
{
    if (hard) {
        for (int g = 0; g < DA_LOGIC_N_GATES; g++)
            if (!isfinite(w[g]))
                return 1;
        int arg = 0;
        for (int g = 1; g < DA_LOGIC_N_GATES; g++)
            if (w[g] > w[arg])
                arg = g;
        for (int g = 0; g < DA_LOGIC_N_GATES; g++)
            p[g] = g == arg;
        for (int k = 0; k < 4; k++)
            c[k] = gate_coef[k][arg];
        return 0;
    }
    v4d e[4];
    for (int q = 0; q < 4; q++)
        memcpy(&e[q], w + 4 * q, sizeof e[q]);
    v4i bad = (e[0] * 0 != 0) | (e[1] * 0 != 0) | (e[2] * 0 != 0) | (e[3] * 0 != 0);
    if (bad[0] | bad[1] | bad[2] | bad[3])
        return 1;
    v4d m2 = (v4d)(((v4i)e[0] & (e[0] >= e[1])) | ((v4i)e[1] & (e[0] < e[1])));
    v4d m3 = (v4d)(((v4i)e[2] & (e[2] >= e[3])) | ((v4i)e[3] & (e[2] < e[3])));
    v4d m = (v4d)(((v4i)m2 & (m2 >= m3)) | ((v4i)m3 & (m2 < m3))); /* lane-wise max */
    double top = m[0];
    for (int l = 1; l < 4; l++)
        top = m[l] > top ? m[l] : top;
    for (int q = 0; q < 4; q++)
        e[q] -= top;
    exp_nonpos16(e);
    v4d sum = (e[0] + e[1]) + (e[2] + e[3]);
    double inv = 1 / ((sum[0] + sum[1]) + (sum[2] + sum[3]));
    for (int q = 0; q < 4; q++) {
        e[q] *= inv;
        memcpy(p + 4 * q, &e[q], sizeof e[q]);
    }
    mixture_coeffs(e, c);
    return 0;
}

/* coef [out][4]: the bilinear form of each neuron's gate mixture; probs [out][16]
 * (may be NULL) receives the gate probabilities. Returns 1 if some w is NaN or Inf. */
static int neuron_coeffs(int out_dim, const double *w, int hard, double *coef, double *probs)
{
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (out_dim * 16L > LOGIC_PAR_MIN)
    for (int j = 0; j < out_dim; j++) {
        double mine[DA_LOGIC_N_GATES];
        bad |= gate_mixture(w + 16L * j, hard, probs ? probs + 16L * j : mine, coef + 4L * j);
    }
    return bad;
}

int da_logic_coeffs(int out_dim, const double *w, int hard, double *coef, double *probs)
{
    return neuron_coeffs(out_dim, w, hard, coef, probs);
}

/* ---- the fused kernels ---- */

typedef struct {
    int batch, in_dim, out_dim;
    const int *ia, *ib;   /* [out] */
    const double *coef;   /* [out][4] */
} layer_plan;

/* y [batch][out]; returns 1 if some output is not finite */
static int layer_forward(const layer_plan *L, const double *x, double *y)
{
    int bad = 0;
    long work = (long)L->batch * L->out_dim;
#pragma omp parallel for schedule(static) reduction(| : bad) if (work > LOGIC_PAR_MIN)
    for (int b = 0; b < L->batch; b++) {
        const double *xb = x + (size_t)b * L->in_dim;
        double *yb = y + (size_t)b * L->out_dim;
        for (int j = 0; j < L->out_dim; j++) {
            const double *c = L->coef + 4L * j;
            double xa = xb[L->ia[j]], xbv = xb[L->ib[j]];
            yb[j] = c[0] + c[1] * xa + (c[2] + c[3] * xa) * xbv;
        }
        for (int j = 0; j < L->out_dim; j++)
            bad |= !isfinite(yb[j]);
    }
    return bad;
}

/* One pass over the batch: gx [batch][in] += d/dx (may be NULL), and S [out][4] = the
 * sums over the batch of gy * (1, a, b, ab) (may be NULL). Threads own rows of gx and
 * keep private partial sums, reduced in thread order (deterministic per thread count). */
static int layer_backward(const layer_plan *L, const double *x, const double *gy, double *gx,
                          double *S)
{
    long work = (long)L->batch * L->out_dim;
    int nt = work > LOGIC_PAR_MIN ? omp_get_max_threads() : 1;
    double *part = NULL; /* [nt][out][4] */
    if (S && !(part = da_calloc((size_t)nt * L->out_dim * 4, sizeof *part)))
        return da_set_error(DA_ENOMEM, "logic layer backward: out of memory");
#pragma omp parallel num_threads(nt)
    {
        int used = omp_get_num_threads();
        double *mine = part ? part + (size_t)omp_get_thread_num() * L->out_dim * 4 : NULL;
#pragma omp for schedule(static)
        for (int b = 0; b < L->batch; b++) {
            const double *xb = x + (size_t)b * L->in_dim, *gb = gy + (size_t)b * L->out_dim;
            double *gxb = gx ? gx + (size_t)b * L->in_dim : NULL;
            for (int j = 0; j < L->out_dim; j++) {
                const double *c = L->coef + 4L * j;
                double xa = xb[L->ia[j]], xbv = xb[L->ib[j]], g = gb[j];
                if (gxb) {
                    gxb[L->ia[j]] += g * (c[1] + c[3] * xbv);
                    gxb[L->ib[j]] += g * (c[2] + c[3] * xa);
                }
                if (mine) {
                    double *s = mine + 4L * j;
                    s[0] += g;
                    s[1] += g * xa;
                    s[2] += g * xbv;
                    s[3] += g * xa * xbv;
                }
            }
        }
        if (S) {
#pragma omp for schedule(static)
            for (long i = 0; i < 4L * L->out_dim; i++) {
                double s = 0;
                for (int t = 0; t < used; t++)
                    s += part[(size_t)t * L->out_dim * 4 + i];
                S[i] = s;
            }
        }
    }
    da_free(part);
    return DA_OK;
}

/* gw [out][16] += softmax backward of dL/dp_g = sum_k coef[g][k] S_k; the softmax
 * probabilities are probs [out][16], or recomputed from w when probs is NULL */
static void logits_grad(int out_dim, const double *w, const double *probs, const double *coef,
                        const double *S, double *gw)
{
#pragma omp parallel for schedule(static) if (out_dim * 64L > LOGIC_PAR_MIN)
    for (int j = 0; j < out_dim; j++) {
        const double *s = S + 4L * j, *c = coef + 4L * j;
        double mine[DA_LOGIC_N_GATES], cm[4];
        const double *p = probs ? probs + 16L * j : mine;
        if (!probs)
            gate_mixture(w + 16L * j, 0, mine, cm);
        double dot = c[0] * s[0] + c[1] * s[1] + c[2] * s[2] + c[3] * s[3];
        double *gwj = gw + 16L * j;
#pragma omp simd
        for (int g = 0; g < DA_LOGIC_N_GATES; g++) {
            double dp = gate_coef[0][g] * s[0] + gate_coef[1][g] * s[1] +
                        gate_coef[2][g] * s[2] + gate_coef[3][g] * s[3];
            gwj[g] += p[g] * (dp - dot);
        }
    }
}

void da_logic_logits_grad(int out_dim, const double *probs, const double *coef,
                          const double *S, double *gw)
{
    logits_grad(out_dim, NULL, probs, coef, S, gw);
}

/* ---- fused Adam step of the gate logits (driver building block) ----
 * Per neuron, in the state's precision T: p = softmax(w); dL/dp_g = sum_k coef[g][k] S_k
 * and dL/dw_g = p_g (dL/dp_g - sum_h p_h dL/dp_h) (the softmax Jacobian, as
 * logits_grad); Adam (optim.h) on w; then the coefficients of softmax(new w). */

#define ALWAYS_INLINE __attribute__((always_inline))

/* x [n] = sqrt(x) (x >= 0, n a multiple of 4) in SSE registers: sqrtf / sqrt do not
 * vectorize while they may set errno */
static inline ALWAYS_INLINE void sqrt_f32(float *x, int n)
{
#ifdef __SSE2__
    for (int i = 0; i < n; i += 4)
        _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#else
    for (int i = 0; i < n; i++)
        x[i] = sqrtf(x[i]);
#endif
}

static inline ALWAYS_INLINE void sqrt_f64(double *x, int n)
{
#ifdef __SSE2__
    for (int i = 0; i < n; i += 2)
        _mm_storeu_pd(x + i, _mm_sqrt_pd(_mm_loadu_pd(x + i)));
#else
    for (int i = 0; i < n; i++)
        x[i] = sqrt(x[i]);
#endif
}

/* x [16] = e^x for x <= 0 in float to ~1e-7 relative, as exp_nonpos16 (below -87:
 * e^-87; e^r by its Taylor series to r^7) */
typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

static inline ALWAYS_INLINE void exp16_f32(v8f x[2])
{
    static const float inv_fact[8] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24,
                                      1.0f / 6, 0.5f, 1, 1};
    v8f t[2], r[2], p[2];
#pragma GCC unroll 2
    for (int q = 0; q < 2; q++) {
        v8i low = x[q] < -87.0f;
        v8f xq = (v8f)(((v8i)x[q] & ~low) | ((v8i)(x[q] * 0 - 87.0f) & low));
        t[q] = xq * 0x1.715476p0f + 0x1.8p23f;
        v8f k = t[q] - 0x1.8p23f;
        r[q] = (xq - k * 0x1.62e4p-1f) - k * 0x1.7f7d1cp-20f;
        p[q] = r[q] * 0 + inv_fact[0];
    }
#pragma GCC unroll 8
    for (int i = 1; i < 8; i++)
#pragma GCC unroll 2
        for (int q = 0; q < 2; q++)
            p[q] = p[q] * r[q] + inv_fact[i];
#pragma GCC unroll 2
    for (int q = 0; q < 2; q++)
        x[q] = p[q] * (v8f)(((v8i)t[q] + 127) << 23);
}

static inline ALWAYS_INLINE void exp16_f64(v4d x[4])
{
    exp_nonpos16(x);
}

#define GATE_COEF_ROWS                                                                    \
    {{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},                                   \
     {0, 0, 1, 1, 0, 0, 1, 1, -1, -1, 0, 0, -1, -1, 0, 0},                               \
     {0, 0, 0, 0, 1, 1, 1, 1, -1, -1, -1, -1, 0, 0, 0, 0},                               \
     {0, 1, -1, 0, -1, 0, -2, -1, 1, 2, 0, 1, 0, 1, -1, 0}}

/* The kernels for T in vectors VT (integer lanes VI) of 16 / Q lanes, a neuron per
 * lane (the 16 logits of a block of 16 / Q neurons in 16 vectors, one per gate):
 * softmax_lanes: e [16] = the softmax over the gates of every lane;
 * da_logic_soft_coeffs_SUF, da_logic_adam_SUF: see logic.h (m and v: blocks
 * [16][16 / Q]) */
#define FUSED_ADAM(T, VT, VI, Q, SUF)                                                     \
    static const T gate_coef_##SUF[4][DA_LOGIC_N_GATES] = GATE_COEF_ROWS;                \
                                                                                          \
    static inline ALWAYS_INLINE void softmax_lanes_##SUF(VT e[16])                       \
    {                                                                                     \
        VT t[8];                                                                          \
        for (int g = 0; g < 8; g++) {                                                     \
            VI gt = e[g + 8] > e[g];                                                      \
            t[g] = (VT)(((VI)e[g + 8] & gt) | ((VI)e[g] & ~gt));                          \
        }                                                                                 \
        for (int h = 4; h >= 1; h /= 2)                                                   \
            for (int g = 0; g < h; g++) {                                                 \
                VI gt = t[g + h] > t[g];                                                  \
                t[g] = (VT)(((VI)t[g + h] & gt) | ((VI)t[g] & ~gt));                      \
            }                                                                             \
        for (int g = 0; g < 16; g++)                                                      \
            e[g] -= t[0];                                                                 \
        for (int g = 0; g < 16; g += Q)                                                   \
            exp16_##SUF(e + g);                                                           \
        for (int g = 0; g < 8; g++)                                                       \
            t[g] = e[g] + e[g + 8];                                                       \
        for (int h = 4; h >= 1; h /= 2)                                                   \
            for (int g = 0; g < h; g++)                                                   \
                t[g] += t[g + h];                                                         \
        t[0] = 1 / t[0];                                                                  \
        for (int g = 0; g < 16; g++)                                                      \
            e[g] *= t[0];                                                                 \
    }                                                                                     \
                                                                                          \
    /* xs [16][N] = the logits w [n][16] (n <= N neurons; the other lanes 0) */          \
    static inline ALWAYS_INLINE void load_block_##SUF(const double *w, int n,             \
                                                      T xs[16][16 / Q])                   \
    {                                                                                     \
        memset(xs, 0, 16 * sizeof *xs);                                                   \
        for (int l = 0; l < n; l++)                                                       \
            for (int g = 0; g < 16; g++)                                                  \
                xs[g][l] = (T)w[16L * l + g];                                             \
    }                                                                                     \
                                                                                          \
    /* coef [n][4] (and probs [n][16], may be NULL) of the probabilities p [16] */        \
    static inline ALWAYS_INLINE void store_mixture_##SUF(const VT p[16], int n,           \
                                                         double *coef, double *probs)     \
    {                                                                                     \
        T cs[4][16 / Q], ps[16][16 / Q];                                                  \
        for (int k = 0; k < 4; k++) {                                                     \
            VT c = gate_coef_##SUF[k][0] * p[0];                                          \
            for (int g = 1; g < 16; g++)                                                  \
                c += gate_coef_##SUF[k][g] * p[g];                                        \
            memcpy(cs[k], &c, sizeof c);                                                  \
        }                                                                                 \
        memcpy(ps, p, sizeof ps);                                                         \
        for (int l = 0; l < n; l++) {                                                     \
            for (int k = 0; k < 4; k++)                                                   \
                coef[4L * l + k] = cs[k][l];                                              \
            for (int g = 0; probs && g < 16; g++)                                         \
                probs[16L * l + g] = ps[g][l];                                            \
        }                                                                                 \
    }                                                                                     \
                                                                                          \
    SIMD_CLONES static void soft_coeffs_##SUF(int out_dim, const double *w, double *coef, \
                                              double *probs)                              \
    {                                                                                     \
        for (int j0 = 0; j0 < out_dim; j0 += 16 / Q) {                                    \
            int n = out_dim - j0 < 16 / Q ? out_dim - j0 : 16 / Q;                        \
            T xs[16][16 / Q];                                                             \
            VT p[16];                                                                     \
            load_block_##SUF(w + 16L * j0, n, xs);                                        \
            memcpy(p, xs, sizeof p);                                                      \
            softmax_lanes_##SUF(p);                                                       \
            store_mixture_##SUF(p, n, coef + 4L * j0, probs ? probs + 16L * j0 : NULL);   \
        }                                                                                 \
    }                                                                                     \
                                                                                          \
    SIMD_CLONES static void adam_##SUF(int out_dim, const da_logic_adam_hp *hp, int parts, \
                                       size_t stride, const double *S, double *w, T *m,   \
                                       T *v, double *coef)                                \
    {                                                                                     \
        enum { N = 16 / Q };                                                              \
        const T a1 = (T)(1 - hp->beta1), b2 = (T)hp->beta2, a2 = (T)(1 - hp->beta2);      \
        const T step = (T)hp->step_size, inv_bc2 = (T)(1 / hp->bc2_sqrt);                 \
        const T eps = (T)hp->eps, l2 = (T)hp->l2, decay = (T)hp->decay;                   \
        const T(*cf)[DA_LOGIC_N_GATES] = gate_coef_##SUF;                                 \
        for (int j0 = 0; j0 < out_dim; j0 += N) {                                         \
            int n = out_dim - j0 < N ? out_dim - j0 : N;                                  \
            T xs[16][N], ss[4][N], den[16][N];                                            \
            load_block_##SUF(w + 16L * j0, n, xs);                                        \
            memset(ss, 0, sizeof ss);                                                     \
            for (int l = 0; l < n; l++)                                                   \
                for (int k = 0; k < 4; k++) {                                             \
                    double sum = 0;                                                       \
                    for (int u = 0; u < parts; u++)                                       \
                        sum += S[u * stride + 4L * (j0 + l) + k];                         \
                    ss[k][l] = (T)sum;                                                    \
                }                                                                         \
            VT x[16], p[16], dp[16], mv[16], vv[16], sv[4], dot;                          \
            memcpy(x, xs, sizeof x);                                                      \
            memcpy(p, xs, sizeof p);                                                      \
            memcpy(sv, ss, sizeof sv);                                                    \
            memcpy(mv, m + 16L * j0, sizeof mv);                                          \
            memcpy(vv, v + 16L * j0, sizeof vv);                                          \
            softmax_lanes_##SUF(p);                                                       \
            for (int g = 0; g < 16; g++) {                                                \
                dp[g] = cf[0][g] * sv[0] + cf[1][g] * sv[1] + cf[2][g] * sv[2] +          \
                        cf[3][g] * sv[3];                                                 \
                dot = g ? dot + p[g] * dp[g] : p[g] * dp[g];                              \
            }                                                                             \
            for (int g = 0; g < 16; g++) {                                                \
                VT grad = p[g] * (dp[g] - dot) + l2 * x[g];                               \
                mv[g] += a1 * (grad - mv[g]);                                             \
                vv[g] = b2 * vv[g] + a2 * grad * grad;                                    \
            }                                                                             \
            memcpy(den, vv, sizeof den);                                                  \
            sqrt_##SUF(&den[0][0], 16 * N);                                               \
            memcpy(dp, den, sizeof dp);                                                   \
            for (int g = 0; g < 16; g++)                                                  \
                x[g] = x[g] * decay - step * mv[g] / (dp[g] * inv_bc2 + eps);             \
            memcpy(m + 16L * j0, mv, sizeof mv);                                          \
            memcpy(v + 16L * j0, vv, sizeof vv);                                          \
            memcpy(xs, x, sizeof xs);                                                     \
            for (int l = 0; l < n; l++)                                                   \
                for (int g = 0; g < 16; g++)                                              \
                    w[16L * (j0 + l) + g] = xs[g][l];                                     \
            softmax_lanes_##SUF(x);                                                       \
            store_mixture_##SUF(x, n, coef + 4L * j0, NULL);                              \
        }                                                                                 \
    }

FUSED_ADAM(float, v8f, v8i, 2, f32)
FUSED_ADAM(double, v4d, v4i, 4, f64)

/* The entry points of logic.h are plain functions around the cloned kernels: a
 * target_clones function called from another file needs the attribute on every
 * declaration with clang (GCC resolves it through the symbol). */
#define FUSED_ADAM_ENTRY(T, SUF)                                                          \
    void da_logic_soft_coeffs_##SUF(int out_dim, const double *w, double *coef,           \
                                    double *probs)                                        \
    {                                                                                     \
        soft_coeffs_##SUF(out_dim, w, coef, probs);                                       \
    }                                                                                     \
    void da_logic_adam_##SUF(int out_dim, const da_logic_adam_hp *hp, int parts,          \
                             size_t stride, const double *S, double *w, T *m, T *v,       \
                             double *coef)                                                \
    {                                                                                     \
        adam_##SUF(out_dim, hp, parts, stride, S, w, m, v, coef);                         \
    }

FUSED_ADAM_ENTRY(float, f32)
FUSED_ADAM_ENTRY(double, f64)

/* ---- argument checks ---- */

static int check_layer(const char *who, int batch, int in_dim, int out_dim, const int *ia,
                       const int *ib, const double *w)
{
    if (batch < 1 || in_dim < 1 || out_dim < 1)
        return da_set_error(DA_ERANGE, "%s: batch = %d, in_dim = %d, out_dim = %d must be "
                                       ">= 1", who, batch, in_dim, out_dim);
    if (!ia || !ib || !w)
        return da_set_error(DA_EINVAL, "%s: NULL ia, ib or w", who);
    for (int j = 0; j < out_dim; j++)
        if (ia[j] < 0 || ia[j] >= in_dim || ib[j] < 0 || ib[j] >= in_dim)
            return da_set_error(DA_ERANGE, "%s: neuron %d reads inputs %d, %d outside "
                                           "[0, %d)", who, j, ia[j], ib[j], in_dim);
    if (!da_all_finite(w, 16L * out_dim))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in the gate logits w", who);
    return DA_OK;
}

static double *coeffs_new(const char *who, int out_dim, const double *w, int hard)
{
    double *coef = da_malloc((size_t)out_dim * 4 * sizeof *coef);
    if (!coef)
        da_set_error(DA_ENOMEM, "%s: out of memory", who);
    else
        neuron_coeffs(out_dim, w, hard, coef, NULL);
    return coef;
}

/* ---- plain-array faces ---- */

int da_logic_layer_forward(int batch, int in_dim, int out_dim, const int *ia, const int *ib,
                           const double *w, const double *x, int hard, double *y)
{
    static const char who[] = "da_logic_layer_forward";
    int rc = check_layer(who, batch, in_dim, out_dim, ia, ib, w);
    if (rc)
        return rc;
    if (!x || !y)
        return da_set_error(DA_EINVAL, "%s: NULL x or y", who);
    double *coef = coeffs_new(who, out_dim, w, hard);
    if (!coef)
        return DA_ENOMEM;
    layer_plan L = {batch, in_dim, out_dim, ia, ib, coef};
    if (layer_forward(&L, x, y))
        rc = da_set_error(DA_ENAN, "%s: non-finite output (NaN or Inf in x)", who);
    da_free(coef);
    return rc;
}

int da_logic_layer_backward(int batch, int in_dim, int out_dim, const int *ia, const int *ib,
                            const double *w, const double *x, int hard, const double *gy,
                            double *gx, double *gw)
{
    static const char who[] = "da_logic_layer_backward";
    int rc = check_layer(who, batch, in_dim, out_dim, ia, ib, w);
    if (rc)
        return rc;
    if (!x || !gy)
        return da_set_error(DA_EINVAL, "%s: NULL x or gy", who);
    if (!da_all_finite(x, (long)batch * in_dim) || !da_all_finite(gy, (long)batch * out_dim))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in x or gy", who);
    if (gx)
        memset(gx, 0, (size_t)batch * in_dim * sizeof *gx);
    if (gw)
        memset(gw, 0, (size_t)out_dim * 16 * sizeof *gw);
    if (!gx && (!gw || hard))
        return DA_OK;
    double *coef = coeffs_new(who, out_dim, w, hard);
    double *S = gw && !hard ? da_malloc((size_t)out_dim * 4 * sizeof *S) : NULL;
    if (!coef || (gw && !hard && !S)) {
        rc = da_set_error(DA_ENOMEM, "%s: out of memory", who);
    } else {
        layer_plan L = {batch, in_dim, out_dim, ia, ib, coef};
        rc = layer_backward(&L, x, gy, gx, S);
        if (!rc && S)
            logits_grad(out_dim, w, NULL, coef, S, gw);
    }
    da_free(coef);
    da_free(S);
    return rc;
}

static int check_group_sum(const char *who, int batch, int n, int k, double tau)
{
    if (batch < 1 || n < 1 || k < 1 || n % k)
        return da_set_error(DA_ERANGE, "%s: batch = %d, n = %d, k = %d (need >= 1 and k "
                                       "dividing n)", who, batch, n, k);
    if (!isfinite(tau))
        return da_set_error(DA_ENAN, "%s: tau is NaN or Inf", who);
    if (tau <= 0)
        return da_set_error(DA_ERANGE, "%s: tau = %g must be > 0", who, tau);
    return DA_OK;
}

/* y [batch][k] (+)= group sums of x [batch][n] / tau */
static void group_sum(int batch, int n, int k, double tau, const double *x, double *y)
{
    int m = n / k;
#pragma omp parallel for schedule(static) if ((long)batch * n > LOGIC_PAR_MIN)
    for (int b = 0; b < batch; b++)
        for (int g = 0; g < k; g++) {
            const double *xg = x + (size_t)b * n + (size_t)g * m;
            double s = 0;
            for (int i = 0; i < m; i++)
                s += xg[i];
            y[(size_t)b * k + g] += s / tau;
        }
}

/* gx [batch][n] += gy [batch][k] / tau spread over each group */
static void group_sum_backward(int batch, int n, int k, double tau, const double *gy,
                               double *gx)
{
    int m = n / k;
#pragma omp parallel for schedule(static) if ((long)batch * n > LOGIC_PAR_MIN)
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < n; i++)
            gx[(size_t)b * n + i] += gy[(size_t)b * k + i / m] / tau;
}

int da_logic_group_sum(int batch, int n, int k, double tau, const double *x, double *y)
{
    static const char who[] = "da_logic_group_sum";
    int rc = check_group_sum(who, batch, n, k, tau);
    if (rc)
        return rc;
    if (!x || !y)
        return da_set_error(DA_EINVAL, "%s: NULL x or y", who);
    if (!da_all_finite(x, (long)batch * n))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in x", who);
    memset(y, 0, (size_t)batch * k * sizeof *y);
    group_sum(batch, n, k, tau, x, y);
    return DA_OK;
}

int da_logic_group_sum_backward(int batch, int n, int k, double tau, const double *gy,
                                double *gx)
{
    static const char who[] = "da_logic_group_sum_backward";
    int rc = check_group_sum(who, batch, n, k, tau);
    if (rc)
        return rc;
    if (!gy || !gx)
        return da_set_error(DA_EINVAL, "%s: NULL gy or gx", who);
    if (!da_all_finite(gy, (long)batch * k))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in gy", who);
    memset(gx, 0, (size_t)batch * n * sizeof *gx);
    group_sum_backward(batch, n, k, tau, gy, gx);
    return DA_OK;
}

int da_logic_connections_random(da_rng *rng, int in_dim, int out_dim, int *ia, int *ib)
{
    static const char who[] = "da_logic_connections_random";
    if (!rng || !ia || !ib)
        return da_set_error(DA_EINVAL, "%s: NULL rng, ia or ib", who);
    if (in_dim < 1 || out_dim < 1 || 2L * out_dim < in_dim || out_dim > (1 << 29))
        return da_set_error(DA_ERANGE, "%s: in_dim = %d, out_dim = %d (need 1 <= in_dim <= "
                                       "2 out_dim)", who, in_dim, out_dim);
    int *slot = da_malloc((size_t)2 * out_dim * sizeof *slot); /* [2][out] */
    int *perm = da_malloc((size_t)in_dim * sizeof *perm);      /* relabelling of inputs */
    if (!slot || !perm) {
        da_free(slot);
        da_free(perm);
        return da_set_error(DA_ENOMEM, "%s: out of memory", who);
    }
    for (int i = 0; i < 2 * out_dim; i++)
        slot[i] = i % in_dim;
    for (int i = 0; i < in_dim; i++)
        perm[i] = i;
    da_rng_shuffle(rng, slot, 2 * out_dim);
    da_rng_shuffle(rng, perm, in_dim);
    for (int j = 0; j < out_dim; j++) {
        ia[j] = perm[slot[j]];
        ib[j] = perm[slot[out_dim + j]];
    }
    da_free(slot);
    da_free(perm);
    return DA_OK;
}

/* ---- tensor faces ---- */

typedef struct {
    layer_plan plan;     /* coef filled by the forward */
    int hard;
} layer_state;

static int layer_op_forward(da_custom_args *args, double *y)
{
    layer_state *st = args->state;
    double *coef = da_ctx_alloc(args->ctx, (size_t)st->plan.out_dim * 4 * sizeof *coef);
    if (!coef)
        return DA_ENOMEM;
    const double *w = args->in_data[1];
    if (!da_all_finite(w, 16L * st->plan.out_dim))
        return da_set_error(DA_ENAN, "da_logic_layer: NaN or Inf in the gate logits w");
    neuron_coeffs(st->plan.out_dim, w, st->hard, coef, NULL);
    st->plan.coef = coef;
    if (layer_forward(&st->plan, args->in_data[0], y))
        return da_set_error(DA_ENAN, "da_logic_layer: non-finite output (NaN or Inf in x)");
    return DA_OK;
}

static int layer_op_backward(da_custom_args *args, const double *gy, double *const *ig)
{
    const layer_state *st = args->state;
    const double *x = args->in_data[0], *w = args->in_data[1];
    int out_dim = st->plan.out_dim;
    double *S = NULL;
    if (ig[1] && !st->hard && !(S = da_ctx_alloc(args->ctx, (size_t)out_dim * 4 * sizeof *S)))
        return DA_ENOMEM;
    if (!ig[0] && !S)
        return DA_OK;
    int rc = layer_backward(&st->plan, x, gy, ig[0], S);
    if (!rc && S)
        logits_grad(out_dim, w, NULL, st->plan.coef, S, ig[1]);
    return rc;
}

da_tensor *da_logic_layer(da_ctx *ctx, da_tensor *x, da_tensor *w, const int *ia,
                          const int *ib, int hard)
{
    static const char who[] = "da_logic_layer";
    if (!ctx || !ia || !ib) {
        da_set_error(DA_EINVAL, "%s: NULL ctx, ia or ib", who);
        return NULL;
    }
    if (!x || !w) { /* keep the error of the op that gave NULL, if any */
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "%s: NULL x or w", who);
        return NULL;
    }
    if (x->ndim != 2 || w->ndim != 2 || w->shape[1] != DA_LOGIC_N_GATES) {
        da_set_error(DA_ESHAPE, "%s: need x [batch][in_dim] and w [out_dim][16]", who);
        return NULL;
    }
    int batch = x->shape[0], in_dim = x->shape[1], out_dim = w->shape[0];
    layer_state *st = da_ctx_alloc(ctx, sizeof *st);
    int *idx = da_ctx_alloc(ctx, (size_t)2 * out_dim * sizeof *idx);
    if (!st || !idx)
        return NULL;
    memcpy(idx, ia, (size_t)out_dim * sizeof *idx);
    memcpy(idx + out_dim, ib, (size_t)out_dim * sizeof *idx);
    for (int j = 0; j < out_dim; j++)
        if (ia[j] < 0 || ia[j] >= in_dim || ib[j] < 0 || ib[j] >= in_dim) {
            da_set_error(DA_ERANGE, "%s: neuron %d reads inputs %d, %d outside [0, %d)", who,
                         j, ia[j], ib[j], in_dim);
            return NULL;
        }
    st->plan = (layer_plan){batch, in_dim, out_dim, idx, idx + out_dim, NULL};
    st->hard = hard;
    int shape[2] = {batch, out_dim};
    da_tensor *in[2] = {x, w};
    return da_op_custom(ctx, "logic_layer", in, 2, 2, shape, layer_op_forward,
                        layer_op_backward, NULL, st);
}

typedef struct {
    int k;
    double tau;
} group_state;

static int group_op_forward(da_custom_args *args, double *y)
{
    const group_state *st = args->state;
    const da_tensor *x = args->in[0];
    group_sum(x->shape[0], x->shape[1], st->k, st->tau, args->in_data[0], y);
    return DA_OK;
}

static int group_op_backward(da_custom_args *args, const double *gy, double *const *ig)
{
    const group_state *st = args->state;
    const da_tensor *x = args->in[0];
    if (ig[0])
        group_sum_backward(x->shape[0], x->shape[1], st->k, st->tau, gy, ig[0]);
    return DA_OK;
}

da_tensor *da_logic_group_sum_op(da_ctx *ctx, da_tensor *x, int k, double tau)
{
    static const char who[] = "da_logic_group_sum_op";
    if (!ctx) {
        da_set_error(DA_EINVAL, "%s: NULL ctx", who);
        return NULL;
    }
    if (!x) {
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "%s: NULL x", who);
        return NULL;
    }
    if (x->ndim != 2) {
        da_set_error(DA_ESHAPE, "%s: need x [batch][n]", who);
        return NULL;
    }
    if (check_group_sum(who, x->shape[0], x->shape[1], k, tau) ||
        da_check_finite(x, "da_logic_group_sum_op: x"))
        return NULL;
    group_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st)
        return NULL;
    st->k = k;
    st->tau = tau;
    int shape[2] = {x->shape[0], k};
    return da_op_custom(ctx, "logic_group_sum", &x, 1, 2, shape, group_op_forward,
                        group_op_backward, NULL, st);
}
