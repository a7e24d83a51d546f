/* logicnet_train.c - the training forward and backward of difflogic networks
 * (logicnet.h: da_logicnet_forward, da_logicnet_backward, da_logicnet_set_precision):
 * the fused per-neuron kernels of eq. (3) of Petersen et al., NeurIPS 2022 (a neuron is
 * the bilinear form c0 + c1 a + c2 b + c3 ab of its two inputs, coefficients from
 * logic.h), GroupSum (Section 3.2) and its backward, on a workspace inside the net;
 * and the fused training step da_logicnet_adam_step: the backward, then per neuron the
 * logit gradient (softmax Jacobian of the four coefficient sums), Adam (Kingma & Ba
 * 2015, PyTorch's form, optim.h) and the coefficients of the new logits in one pass
 * (da_logic_adam_* of logic.c), so that the next forward needs no softmax pass. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "logicnet_impl.h"
#include "alloc.h"
#include "simd.h"

/* ---- training forward / backward ----
 * The driver keeps activations feature-major, act[l] [dims[l]][batch], so that a
 * neuron's forward and backward are streams over the batch (vectorized) instead of
 * gathers inside a row; they are float or double (train_f32), the interface double.
 * Forward and backward split the batch into one contiguous range per thread, which
 * runs every layer on its range (no synchronization between layers); the per-neuron
 * batch sums are reduced in thread order: deterministic for a given thread count. */

#define PAR_MIN 32768L

static size_t elem_size(const da_logicnet *net)
{
    return net->train_f32 ? sizeof(float) : sizeof(double);
}

static void *act(const da_logicnet *net, int l)
{
    size_t row = (size_t)net->ws_batch * da_logicnet_max_dim(net);
    return (char *)net->ws + (size_t)l * row * elem_size(net);
}

/* threads for a training pass over a batch of B: one for small work, else the OpenMP
 * default, at most the workspace's thread count */
static int team_size(const da_logicnet *net, int B)
{
    if ((long)B * net->width * net->n_layers <= PAR_MIN)
        return 1;
    int nt = omp_get_max_threads();
    return nt < net->ws_threads ? nt : net->ws_threads;
}

void da_logicnet_free_workspace(da_logicnet *net)
{
    da_free(net->ws);
    da_free(net->ws_grad[0]);
    da_free(net->ws_grad[1]);
    da_free(net->ws_coef);
    da_free(net->ws_probs);
    da_free(net->ws_part);
    da_free(net->ws_conv);
    da_free(net->ws_conv_grad[0]);
    da_free(net->ws_conv_grad[1]);
    da_free(net->ws_conv_gw);
    net->ws = net->ws_grad[0] = net->ws_grad[1] = NULL;
    net->ws_coef = net->ws_probs = net->ws_part = NULL;
    net->ws_conv = net->ws_conv_grad[0] = net->ws_conv_grad[1] = net->ws_conv_gw = NULL;
    net->ws_batch = net->ws_valid = 0;
    net->ws_coef_fresh = net->ws_probs_valid = 0;
}

int da_logicnet_set_precision(da_logicnet *net, da_dtype dtype)
{
    if (!net || (dtype != DA_F32 && dtype != DA_F64))
        return da_set_error(DA_EINVAL, "da_logicnet_set_precision: NULL net or dtype %d not "
                                       "DA_F32 / DA_F64", (int)dtype);
    net->train_f32 = dtype == DA_F32;
    net->ws_valid = net->ws_coef_fresh = 0;
    return DA_OK;
}

/* a buffer that is read at random rows: from 2 MiB on, 2 MiB aligned and, where the
 * system allows, in huge pages (fewer TLB misses) */
static void *big_alloc(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge)
        return da_malloc(bytes);
    bytes = (bytes + huge - 1) / huge * huge;
    void *p = da_aligned_alloc(huge, bytes);
#ifdef MADV_HUGEPAGE
    if (p)
        madvise(p, bytes, MADV_HUGEPAGE); /* advice only: failure changes nothing */
#endif
    return p;
}

static int ensure_workspace(da_logicnet *net, int batch)
{
    int nt = omp_get_max_threads();
    if (net->ws && net->ws_batch >= batch && net->ws_threads >= nt)
        return DA_OK;
    da_logicnet_free_workspace(net);
    size_t per = (size_t)batch * da_logicnet_max_dim(net);
    size_t L = (size_t)net->n_layers, W = (size_t)net->width;
    net->ws = big_alloc(L * per * sizeof(double)); /* the inputs of every layer */
    net->ws_grad[0] = big_alloc(per * sizeof(double));
    net->ws_grad[1] = big_alloc(per * sizeof(double));
    net->ws_coef = da_malloc(L * W * 4 * sizeof *net->ws_coef);
    net->ws_probs = da_malloc(L * W * DA_LOGIC_N_GATES * sizeof *net->ws_probs);
    net->ws_part = da_malloc((size_t)nt * L * W * 4 * sizeof *net->ws_part);
    int conv_ok = 1;
    if (net->n_conv) {
        long acts, largest, max_w;
        da_logicnet_conv_sizes(net, &acts, &largest, &max_w);
        net->ws_conv = da_malloc((size_t)batch * acts * sizeof *net->ws_conv);
        net->ws_conv_grad[0] = da_malloc((size_t)batch * largest * sizeof(double));
        net->ws_conv_grad[1] = da_malloc((size_t)batch * largest * sizeof(double));
        net->ws_conv_gw = da_malloc((size_t)(max_w ? max_w : 1) * sizeof *net->ws_conv_gw);
        conv_ok = net->ws_conv && net->ws_conv_grad[0] && net->ws_conv_grad[1] &&
                  net->ws_conv_gw;
    }
    if (!net->ws || !net->ws_grad[0] || !net->ws_grad[1] || !net->ws_coef || !net->ws_probs ||
        !net->ws_part || !conv_ok) {
        da_logicnet_free_workspace(net);
        return da_set_error(DA_ENOMEM, "da_logicnet: out of memory for a batch of %d", batch);
    }
    net->ws_batch = batch;
    net->ws_threads = nt;
    return DA_OK;
}

/* The per-neuron streams are vectorized (omp simd, SIMD_CLONES of simd.h). */
/* the rows of a neuron PREFETCH_AHEAD neurons on are fetched into the cache while this
 * one is computed (the rows are gathered at random) */
#define PREFETCH_AHEAD 6

static inline void prefetch_row(const void *p, size_t bytes)
{
    for (size_t o = 0; o < bytes; o += 64)
        __builtin_prefetch((const char *)p + o);
}

/* The layer kernels for activations of type T (suffix SUF). Every thread owns the
 * batch columns [s0, s1) of every activation and gradient row, so that a thread runs
 * all the layers of the forward, and of the backward, on its columns without waiting
 * for the others; the per-neuron batch sums of the backward are kept per thread
 * (ws_part) and reduced in thread order afterwards (logit_grads).
 * neuron_forward: y [n] = c0 + c1 a + (c2 + c3 a) b;
 * neuron_backward: m [4] = sums of g * (1, a, b, ab) over n samples; ga, gb (may be
 *   NULL; the same row when a neuron reads one input twice) += g (c1 + c3 b) f,
 *   g (c2 + c3 a) f with f the grad_factor;
 * neuron_sum: r [n] (double) += the outputs (as neuron_forward);
 * forward_layers: act[0] = in [B][dims[0]] transposed, act[l + 1] from act[l] for the
 *   layers below the last, and the class sums of the last layer's outputs, rows [k][B]
 *   of doubles in ws_grad[0] (act[n_layers] is not written);
 * backward_layers: from the class cotangents [k][B] in ws_grad[0] down to the first
 *   layer (its input gradient only if want_gx0); returns the gradient of act[0] (in a
 *   ws_grad buffer) and sets *used to the number of threads that wrote ws_part. */
#define LAYER_KERNELS(T, SUF)                                                              \
    SIMD_CLONES static void neuron_forward_##SUF(int n, const T *a, const T *b,            \
                                                 const double *c, T *restrict y)           \
    {                                                                                      \
        T c0 = (T)c[0], c1 = (T)c[1], c2 = (T)c[2], c3 = (T)c[3];                          \
        _Pragma("omp simd") for (int s = 0; s < n; s++)                                    \
            y[s] = c0 + c1 * a[s] + (c2 + c3 * a[s]) * b[s];                               \
    }                                                                                      \
                                                                                           \
    SIMD_CLONES static void neuron_sum_##SUF(int n, const T *a, const T *b,                \
                                             const double *c, double *restrict r)          \
    {                                                                                      \
        T c0 = (T)c[0], c1 = (T)c[1], c2 = (T)c[2], c3 = (T)c[3];                          \
        _Pragma("omp simd") for (int s = 0; s < n; s++)                                    \
            r[s] += (T)(c0 + c1 * a[s] + (c2 + c3 * a[s]) * b[s]);                         \
    }                                                                                      \
                                                                                           \
    SIMD_CLONES static void neuron_backward_##SUF(int n, const T *a, const T *b,           \
                                                  const T *g, const double *c, double f,   \
                                                  T *ga, T *gb, double *m)                 \
    {                                                                                      \
        T m0 = 0, m1 = 0, m2 = 0, m3 = 0;                                                  \
        T c1 = (T)(f * c[1]), c2 = (T)(f * c[2]), c3 = (T)(f * c[3]);                      \
        if (!ga) {                                                                         \
            _Pragma("omp simd reduction(+ : m0, m1, m2, m3)")                              \
            for (int s = 0; s < n; s++) {                                                  \
                T gbv = g[s] * b[s];                                                       \
                m0 += g[s];                                                                \
                m1 += g[s] * a[s];                                                         \
                m2 += gbv;                                                                 \
                m3 += gbv * a[s];                                                          \
            }                                                                              \
        } else {                                                                           \
            _Pragma("omp simd reduction(+ : m0, m1, m2, m3)")                              \
            for (int s = 0; s < n; s++) {                                                  \
                T as = a[s], bs = b[s], gs = g[s], gbv = gs * bs;                          \
                m0 += gs;                                                                  \
                m1 += gs * as;                                                             \
                m2 += gbv;                                                                 \
                m3 += gbv * as;                                                            \
                ga[s] += gs * (c1 + c3 * bs);                                              \
                gb[s] += gs * (c2 + c3 * as);                                              \
            }                                                                              \
        }                                                                                  \
        m[0] = m0, m[1] = m1, m[2] = m2, m[3] = m3;                                        \
    }                                                                                      \
                                                                                           \
    static void forward_layers_##SUF(const da_logicnet *net, int B, const double *in)      \
    {                                                                                      \
        int L = net->n_layers, W = net->width, m = W / net->n_classes;                     \
        int nt = team_size(net, B);                                                        \
        _Pragma("omp parallel num_threads(nt)")                                            \
        {                                                                                  \
            int used = omp_get_num_threads(), t = omp_get_thread_num();                    \
            int s0 = (int)((long)B * t / used), s1 = (int)((long)B * (t + 1) / used);      \
            size_t n = (size_t)(s1 - s0);                                                  \
            T *x0 = act(net, 0);                                                           \
            for (int s = s0; s < s1; s++)                                                  \
                for (int i = 0; i < net->dims[0]; i++)                                     \
                    x0[(size_t)i * B + s] = (T)in[(size_t)s * net->dims[0] + i];           \
            for (int l = 0; l < L; l++) {                                                  \
                const T *x = act(net, l);                                                  \
                T *y = act(net, l + 1);                                                    \
                const int *ia = net->ia[l], *ib = net->ib[l];                              \
                const double *coef = net->ws_coef + (size_t)l * W * 4;                     \
                double *r = NULL;                                                          \
                for (int j = 0; j < W; j++) {                                              \
                    if (j + PREFETCH_AHEAD < W) {                                          \
                        prefetch_row(x + (size_t)ia[j + PREFETCH_AHEAD] * B + s0, n * sizeof(T)); \
                        prefetch_row(x + (size_t)ib[j + PREFETCH_AHEAD] * B + s0, n * sizeof(T)); \
                    }                                                                      \
                    const T *a = x + (size_t)ia[j] * B + s0, *b = x + (size_t)ib[j] * B + s0; \
                    if (l < L - 1) {                                                       \
                        neuron_forward_##SUF((int)n, a, b, coef + 4L * j,                  \
                                             y + (size_t)j * B + s0);                      \
                        continue;                                                          \
                    }                                                                      \
                    if (j % m == 0) { /* the last layer: straight into the class sums */   \
                        r = (double *)net->ws_grad[0] + (size_t)(j / m) * B + s0;          \
                        memset(r, 0, n * sizeof *r);                                       \
                    }                                                                      \
                    neuron_sum_##SUF((int)n, a, b, coef + 4L * j, r);                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    static void *backward_layers_##SUF(const da_logicnet *net, int B, int want_gx0,        \
                                       int *used_out)                                      \
    {                                                                                      \
        int L = net->n_layers, W = net->width, m = W / net->n_classes;                     \
        int nt = team_size(net, B);                                                        \
        double f = net->grad_factor;                                                       \
        _Pragma("omp parallel num_threads(nt)")                                            \
        {                                                                                  \
            int used = omp_get_num_threads(), t = omp_get_thread_num();                    \
            int s0 = (int)((long)B * t / used), s1 = (int)((long)B * (t + 1) / used);      \
            size_t n = (size_t)(s1 - s0);                                                  \
            if (t == 0)                                                                    \
                *used_out = used;                                                          \
            T *gy = net->ws_grad[0], *gx = net->ws_grad[1];                                \
            for (int l = L - 1; l >= 0; l--) {                                             \
                const T *x = act(net, l);                                                  \
                const int *ia = net->ia[l], *ib = net->ib[l];                              \
                const double *coef = net->ws_coef + (size_t)l * W * 4;                     \
                double *mine = net->ws_part + ((size_t)t * L + l) * W * 4;                 \
                int group = l == L - 1 ? m : 1;                                            \
                T *g_in = l > 0 || want_gx0 ? gx : NULL;                                   \
                for (int i = 0; g_in && i < net->dims[l]; i++)                             \
                    memset(g_in + (size_t)i * B + s0, 0, n * sizeof(T));                   \
                for (int j = 0; j < W; j++) {                                              \
                    size_t ra = (size_t)ia[j] * B + s0, rb = (size_t)ib[j] * B + s0;       \
                    if (j + PREFETCH_AHEAD < W) {                                          \
                        size_t pa = (size_t)ia[j + PREFETCH_AHEAD] * B + s0;               \
                        size_t pb = (size_t)ib[j + PREFETCH_AHEAD] * B + s0;               \
                        prefetch_row(x + pa, n * sizeof(T));                               \
                        prefetch_row(x + pb, n * sizeof(T));                               \
                        if (g_in) {                                                        \
                            prefetch_row(g_in + pa, n * sizeof(T));                        \
                            prefetch_row(g_in + pb, n * sizeof(T));                        \
                        }                                                                  \
                    }                                                                      \
                    neuron_backward_##SUF((int)n, x + ra, x + rb,                          \
                                          gy + (size_t)(j / group) * B + s0,               \
                                          coef + 4L * j, f, g_in ? g_in + ra : NULL,       \
                                          g_in ? g_in + rb : NULL, mine + 4L * j);         \
                }                                                                          \
                T *swap = gy;                                                              \
                gy = gx;                                                                   \
                gx = swap;                                                                 \
            }                                                                              \
        }                                                                                  \
        return net->ws_grad[L % 2];                                                        \
    }

LAYER_KERNELS(float, f32)
LAYER_KERNELS(double, f64)

/* neurons per work item of the per-neuron loops (coefficients, logit gradients) */
#define GRAD_CHUNK 64

/* logits [B][k] = GroupSum: the class sums [k][B] that forward_layers left in
 * ws_grad[0], transposed and divided by tau */
static void group_sum_out(const da_logicnet *net, int B, double *logits)
{
    int k = net->n_classes;
    const double *rows = net->ws_grad[0];
    for (int s = 0; s < B; s++)
        for (int c = 0; c < k; c++)
            logits[(size_t)s * k + c] = rows[(size_t)c * B + s] / net->tau;
}

/* ws_coef and ws_probs of every layer, in one parallel loop over chunks of neurons (the
 * soft ones as da_logicnet_adam_step computes them, in the training precision);
 * returns the first layer with a NaN or Inf logit, or -1 */
static int all_coeffs(da_logicnet *net, int hard)
{
    int L = net->n_layers, W = net->width, bad = L;
    long per = (W + GRAD_CHUNK - 1) / GRAD_CHUNK;
#pragma omp parallel for schedule(static) reduction(min : bad) if ((long)L * W > GRAD_CHUNK)
    for (long q = 0; q < L * per; q++) {
        int l = (int)(q / per), j0 = (int)(q % per) * GRAD_CHUNK;
        int n = W - j0 < GRAD_CHUNK ? W - j0 : GRAD_CHUNK;
        size_t at = (size_t)l * W + j0;
        const double *w = (const double *)net->w[l]->data + (size_t)j0 * DA_LOGIC_N_GATES;
        double *coef = net->ws_coef + at * 4, *probs = net->ws_probs + at * DA_LOGIC_N_GATES;
        if (hard) {
            if (da_logic_coeffs(n, w, hard, coef, probs))
                bad = bad < l ? bad : l;
        } else if (!da_all_finite(w, (long)n * DA_LOGIC_N_GATES)) {
            bad = bad < l ? bad : l;
        } else if (net->train_f32) {
            da_logic_soft_coeffs_f32(n, w, coef, probs);
        } else {
            da_logic_soft_coeffs_f64(n, w, coef, probs);
        }
    }
    return bad < L ? bad : -1;
}

int da_logicnet_forward(da_logicnet *net, int batch, const double *bits, int hard,
                        double *logits)
{
    static const char who[] = "da_logicnet_forward";
    if (!net || !bits || !logits)
        return da_set_error(DA_EINVAL, "%s: NULL net, bits or logits", who);
    if (batch < 1)
        return da_set_error(DA_ERANGE, "%s: batch = %d must be >= 1", who, batch);
    if (!da_all_finite(bits, (long)batch * net->n_bits))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in bits", who);
    int rc = ensure_workspace(net, batch);
    if (rc)
        return rc;
    net->ws_valid = 0;
    const double *in0 = bits; /* [batch][dims[0]] */
    if (net->n_conv && (rc = da_logicnet_conv_forward(net, batch, bits, hard, &in0)))
        return rc;
    if (hard || !net->ws_coef_fresh) { /* else the last fused step left them */
        net->ws_coef_fresh = 0;
        int bad = all_coeffs(net, hard);
        if (bad >= 0)
            return da_set_error(DA_ENAN, "%s: NaN or Inf in the gate logits of layer %d", who,
                                bad);
    }
    net->ws_probs_valid = !net->ws_coef_fresh;
    if (net->train_f32)
        forward_layers_f32(net, batch, in0);
    else
        forward_layers_f64(net, batch, in0);
    group_sum_out(net, batch, logits);
    if (!da_all_finite(logits, (long)batch * net->n_classes))
        return da_set_error(DA_ENAN, "%s: non-finite logits", who);
    if (!hard)
        net->ws_valid = batch;
    return DA_OK;
}

/* gy [k][B] (T) = glogits [B][k] / tau: the cotangent of every neuron of class c's
 * group (GroupSum backward; the last layer's backward reads row j / (W / k)) */
static void class_cotangents(const da_logicnet *net, int B, const double *glogits, void *gy)
{
    int k = net->n_classes;
    DA_DISPATCH(net->train_f32 ? DA_F32 : DA_F64, T, {
        T *g = gy;
        for (int c = 0; c < k; c++)
            for (int s = 0; s < B; s++)
                g[(size_t)c * B + s] = (T)(glogits[(size_t)s * k + c] / net->tau);
    });
}

/* gw[l] += the logit gradients of every layer from the per-thread batch sums
 * ws_part [used][L][W][4], summed in thread order (chunks of GRAD_CHUNK neurons) */
static void logit_grads(const da_logicnet *net, int used, double *const *gw)
{
    int L = net->n_layers, W = net->width;
    long per = (W + GRAD_CHUNK - 1) / GRAD_CHUNK;
#pragma omp parallel for schedule(static) if (used > 1)
    for (long q = 0; q < L * per; q++) {
        int l = (int)(q / per), j0 = (int)(q % per) * GRAD_CHUNK;
        int n = W - j0 < GRAD_CHUNK ? W - j0 : GRAD_CHUNK;
        double S[GRAD_CHUNK * 4];
        for (int i = 0; i < 4 * n; i++) {
            double sum = 0;
            for (int u = 0; u < used; u++)
                sum += net->ws_part[(((size_t)u * L + l) * W + j0) * 4 + i];
            S[i] = sum;
        }
        size_t at = (size_t)l * W + j0;
        da_logic_logits_grad(n, net->ws_probs + at * DA_LOGIC_N_GATES, net->ws_coef + at * 4,
                             S, gw[l] + (size_t)j0 * DA_LOGIC_N_GATES);
    }
}

/* out [n] (double) = g [n] (T) */
static void grad_to_double(const da_logicnet *net, long n, const void *g, double *out)
{
    DA_DISPATCH(net->train_f32 ? DA_F32 : DA_F64, T, {
        const T *src = g;
        for (long i = 0; i < n; i++)
            out[i] = src[i];
    });
}

/* The backward streams of the last training forward for glogits: the per-thread batch
 * sums in ws_part (*used threads), gbits (may be NULL) and the tree stages' grads */
static int backward_streams(da_logicnet *net, const char *who, const double *glogits,
                            double *gbits, int *used)
{
    if (!net->ws_valid)
        return da_set_error(DA_ESTATE, "%s: no training-mode forward before", who);
    int B = net->ws_valid;
    if (!da_all_finite(glogits, (long)B * net->n_classes))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in glogits", who);
    class_cotangents(net, B, glogits, net->ws_grad[0]);
    int want_gx0 = gbits || net->n_conv;
    void *gy = net->train_f32 ? backward_layers_f32(net, B, want_gx0, used)
                              : backward_layers_f64(net, B, want_gx0, used);
    /* gy: the gradient of the bits (or of the stages' output), feature-major */
    const double *g = gy;
    if (want_gx0 && net->train_f32) {
        double *other = gy == net->ws_grad[0] ? net->ws_grad[1] : net->ws_grad[0];
        grad_to_double(net, (long)net->dims[0] * B, gy, other);
        g = other;
    }
    if (net->n_conv)
        return da_logicnet_conv_backward(net, B, g, gbits);
    if (gbits)
        for (int s = 0; s < B; s++)
            for (int i = 0; i < net->n_bits; i++)
                gbits[(size_t)s * net->n_bits + i] = g[(size_t)i * B + s];
    return DA_OK;
}

int da_logicnet_backward(da_logicnet *net, const double *glogits, double *gbits)
{
    static const char who[] = "da_logicnet_backward";
    if (!net || !glogits)
        return da_set_error(DA_EINVAL, "%s: NULL net or glogits", who);
    double *gw[DA_LOGICNET_MAX_LAYERS];
    for (int l = 0; l < net->n_layers; l++)
        if (!(gw[l] = da_tensor_grad(net->w[l])))
            return da_set_error(DA_ENOMEM, "%s: out of memory", who);
    int used = 1, rc = backward_streams(net, who, glogits, gbits, &used);
    if (rc)
        return rc;
    if (!net->ws_probs_valid) /* the forward used a fused step's coefficients */
        all_coeffs(net, 0);
    logit_grads(net, used, gw);
    net->ws_coef_fresh = 0; /* the caller's optimizer changes the logits next */
    return DA_OK;
}

/* ---- fused training step: backward + Adam (logicnet.h) ---- */

struct da_logicnet_adam {
    da_logicnet *net;   /* borrowed */
    da_optim_cfg cfg;
    long steps;
    int f32;            /* state of the dense layers in float */
    int wpad;           /* width rounded up to a multiple of ADAM_BLOCK */
    size_t dense;       /* n_layers * wpad * 16 */
    void *m, *v;        /* [n_layers][wpad / ADAM_BLOCK][16][ADAM_BLOCK] (float) or
                           [n_layers][wpad / 4][16][4] (double): da_logic_adam_* blocks */
    int n_tree;         /* tree stages with logits: params[0 .. n_tree - 1] */
    double **tm, **tv;  /* [n_tree] their state, params[i]->size doubles each */
};

#define ADAM_MAGIC 0x4144414cu /* "LADA" */
#define ADAM_BLOCK 8 /* neurons per block of da_logic_adam_f32 (f64: 4, which divides it) */

typedef struct {
    uint32_t magic, f32, n_layers, width, n_tree, reserved;
    int64_t steps;
} adam_header;

static int adam_check_cfg(const da_optim_cfg *c)
{
    static const char who[] = "da_logicnet_adam_new";
    if ((c->kind != DA_OPTIM_ADAM && c->kind != DA_OPTIM_ADAMW) || c->amsgrad)
        return da_set_error(DA_EINVAL, "%s: kind %d (need DA_OPTIM_ADAM or DA_OPTIM_ADAMW, "
                                       "no amsgrad)", who, (int)c->kind);
    if (!(c->lr >= 0 && c->lr < HUGE_VAL && c->weight_decay >= 0 && c->weight_decay < HUGE_VAL &&
          c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1 && c->eps >= 0 &&
          c->eps < HUGE_VAL))
        return da_set_error(DA_ERANGE, "%s: lr %g, weight_decay %g, betas (%g, %g) or eps %g "
                            "out of range", who, c->lr, c->weight_decay, c->beta1, c->beta2,
                            c->eps);
    return DA_OK;
}

da_logicnet_adam *da_logicnet_adam_new(da_logicnet *net, const da_optim_cfg *cfg)
{
    if (!net || !cfg) {
        da_set_error(DA_EINVAL, "da_logicnet_adam_new: NULL net or cfg");
        return NULL;
    }
    if (adam_check_cfg(cfg))
        return NULL;
    da_logicnet_adam *o = da_calloc(1, sizeof *o);
    if (!o) {
        da_set_error(DA_ENOMEM, "da_logicnet_adam_new: out of memory");
        return NULL;
    }
    o->net = net;
    o->cfg = *cfg;
    o->f32 = net->train_f32;
    o->wpad = (net->width + ADAM_BLOCK - 1) / ADAM_BLOCK * ADAM_BLOCK;
    o->dense = (size_t)net->n_layers * o->wpad * DA_LOGIC_N_GATES;
    size_t es = o->f32 ? sizeof(float) : sizeof(double);
    o->m = da_calloc(o->dense, es);
    o->v = da_calloc(o->dense, es);
    o->n_tree = net->n_params - net->n_layers;
    o->tm = da_calloc(o->n_tree ? (size_t)o->n_tree : 1, sizeof *o->tm);
    o->tv = da_calloc(o->n_tree ? (size_t)o->n_tree : 1, sizeof *o->tv);
    int ok = o->m && o->v && o->tm && o->tv;
    for (int i = 0; ok && i < o->n_tree; i++) {
        o->tm[i] = da_calloc((size_t)net->params[i]->size, sizeof **o->tm);
        o->tv[i] = da_calloc((size_t)net->params[i]->size, sizeof **o->tv);
        ok = o->tm[i] && o->tv[i];
    }
    if (!ok) {
        da_logicnet_adam_free(o);
        da_set_error(DA_ENOMEM, "da_logicnet_adam_new: out of memory");
        return NULL;
    }
    return o;
}

void da_logicnet_adam_free(da_logicnet_adam *opt)
{
    if (!opt)
        return;
    for (int i = 0; opt->tm && opt->tv && i < opt->n_tree; i++) {
        da_free(opt->tm[i]);
        da_free(opt->tv[i]);
    }
    da_free(opt->tm);
    da_free(opt->tv);
    da_free(opt->m);
    da_free(opt->v);
    da_free(opt);
}

int da_logicnet_adam_set_lr(da_logicnet_adam *opt, double lr)
{
    if (!opt)
        return da_set_error(DA_EINVAL, "da_logicnet_adam_set_lr: NULL opt");
    if (!(lr >= 0 && lr < HUGE_VAL))
        return da_set_error(DA_ERANGE, "da_logicnet_adam_set_lr: lr = %g", lr);
    opt->cfg.lr = lr;
    return DA_OK;
}

long da_logicnet_adam_steps(const da_logicnet_adam *opt)
{
    return opt ? opt->steps : 0;
}

/* the dense layers' update, fused per neuron (da_logic_adam_*), in parallel over chunks
 * of GRAD_CHUNK neurons, if all the batch sums (ws_part, `used` parts) are finite (else
 * returns 0, nothing updated); leaves the new coefficients in ws_coef */
static int dense_adam(da_logicnet_adam *o, const da_logic_adam_hp *hp, int used)
{
    da_logicnet *net = o->net;
    int L = net->n_layers, W = net->width, ok = 1;
    long per = (W + GRAD_CHUNK - 1) / GRAD_CHUNK;
    size_t stride = (size_t)L * W * 4;
#pragma omp parallel if ((long)L * W > 4 * GRAD_CHUNK)
    {
#pragma omp for schedule(static) reduction(&& : ok)
        for (long q = 0; q < L * per; q++) {
            int l = (int)(q / per), j0 = (int)(q % per) * GRAD_CHUNK;
            int n = W - j0 < GRAD_CHUNK ? W - j0 : GRAD_CHUNK;
            for (int u = 0; u < used; u++)
                ok = ok && da_all_finite(net->ws_part + u * stride + ((size_t)l * W + j0) * 4,
                                         4L * n);
        }
#pragma omp for schedule(static)
        for (long q = 0; q < (ok ? L * per : 0); q++) {
            int l = (int)(q / per), j0 = (int)(q % per) * GRAD_CHUNK;
            int n = W - j0 < GRAD_CHUNK ? W - j0 : GRAD_CHUNK;
            size_t at = (size_t)l * W + j0, g = ((size_t)l * o->wpad + j0) * DA_LOGIC_N_GATES;
            double *w = (double *)net->w[l]->data + (size_t)j0 * DA_LOGIC_N_GATES;
            if (o->f32)
                da_logic_adam_f32(n, hp, used, stride, net->ws_part + at * 4, w,
                                  (float *)o->m + g, (float *)o->v + g, net->ws_coef + at * 4);
            else
                da_logic_adam_f64(n, hp, used, stride, net->ws_part + at * 4, w,
                                  (double *)o->m + g, (double *)o->v + g, net->ws_coef + at * 4);
        }
    }
    return ok;
}

int da_logicnet_adam_step(da_logicnet_adam *opt, const double *glogits, double *gbits)
{
    static const char who[] = "da_logicnet_adam_step";
    if (!opt || !glogits)
        return da_set_error(DA_EINVAL, "%s: NULL opt or glogits", who);
    da_logicnet *net = opt->net;
    for (int i = 0; i < opt->n_tree; i++) {
        if (!da_tensor_grad(net->params[i]))
            return da_set_error(DA_ENOMEM, "%s: out of memory", who);
        da_tensor_zero_grad(net->params[i]);
    }
    int used = 1, rc = backward_streams(net, who, glogits, gbits, &used);
    if (rc)
        return rc;
    int ok = 1;
    for (int i = 0; ok && i < opt->n_tree; i++)
        ok = da_all_finite(net->params[i]->grad, net->params[i]->size);
    const da_optim_cfg *c = &opt->cfg;
    long t = opt->steps + 1;
    int decoupled = c->kind == DA_OPTIM_ADAMW;
    da_logic_adam_hp hp = {.step_size = c->lr / (1.0 - pow(c->beta1, (double)t)),
                           .bc2_sqrt = sqrt(1.0 - pow(c->beta2, (double)t)),
                           .beta1 = c->beta1, .beta2 = c->beta2, .eps = c->eps,
                           .l2 = decoupled ? 0 : c->weight_decay,
                           .decay = decoupled ? 1.0 - c->lr * c->weight_decay : 1};
    if (!ok || !dense_adam(opt, &hp, used))
        return da_set_error(DA_ENAN, "%s: non-finite gradient", who);
    for (int i = 0; i < opt->n_tree; i++)
        da_adam_update(c, net->params[i], opt->tm[i], opt->tv[i], NULL, t);
    opt->steps = t;
    net->ws_valid = 0;
    net->ws_coef_fresh = 1;
    return DA_OK;
}

size_t da_logicnet_adam_state_size(const da_logicnet_adam *opt)
{
    if (!opt)
        return 0;
    size_t n = sizeof(adam_header) + 2 * opt->dense * (opt->f32 ? sizeof(float) : sizeof(double));
    for (int i = 0; i < opt->n_tree; i++)
        n += 2 * (size_t)opt->net->params[i]->size * sizeof(double);
    return n;
}

/* copies the state to (save = 1) or from the blob after the header */
static void adam_state_copy(const da_logicnet_adam *o, unsigned char *blob, int save)
{
    size_t at = sizeof(adam_header), dense = o->dense * (o->f32 ? sizeof(float) : sizeof(double));
    void *bufs[2] = {o->m, o->v};
    for (int b = 0; b < 2; b++, at += dense)
        save ? memcpy(blob + at, bufs[b], dense) : memcpy(bufs[b], blob + at, dense);
    for (int i = 0; i < o->n_tree; i++) {
        size_t n = (size_t)o->net->params[i]->size * sizeof(double);
        double *tb[2] = {o->tm[i], o->tv[i]};
        for (int b = 0; b < 2; b++, at += n)
            save ? memcpy(blob + at, tb[b], n) : memcpy(tb[b], blob + at, n);
    }
}

static adam_header adam_header_of(const da_logicnet_adam *o)
{
    return (adam_header){ADAM_MAGIC, (uint32_t)o->f32, (uint32_t)o->net->n_layers,
                         (uint32_t)o->net->width, (uint32_t)o->n_tree, 0, o->steps};
}

int da_logicnet_adam_state_save(const da_logicnet_adam *opt, void *buf, size_t size)
{
    if (!opt || !buf)
        return da_set_error(DA_EINVAL, "da_logicnet_adam_state_save: NULL opt or buf");
    if (size != da_logicnet_adam_state_size(opt))
        return da_set_error(DA_ERANGE, "da_logicnet_adam_state_save: buffer of %zu bytes, "
                            "the state has %zu", size, da_logicnet_adam_state_size(opt));
    adam_header h = adam_header_of(opt);
    memcpy(buf, &h, sizeof h);
    adam_state_copy(opt, buf, 1);
    return DA_OK;
}

int da_logicnet_adam_state_load(da_logicnet_adam *opt, const void *buf, size_t size)
{
    static const char who[] = "da_logicnet_adam_state_load";
    if (!opt || !buf)
        return da_set_error(DA_EINVAL, "%s: NULL opt or buf", who);
    adam_header h, want = adam_header_of(opt);
    if (size != da_logicnet_adam_state_size(opt))
        return da_set_error(DA_EFORMAT, "%s: state of %zu bytes, this optimizer needs %zu", who,
                            size, da_logicnet_adam_state_size(opt));
    memcpy(&h, buf, sizeof h);
    if (h.magic != want.magic || h.f32 != want.f32 || h.n_layers != want.n_layers ||
        h.width != want.width || h.n_tree != want.n_tree || h.steps < 0)
        return da_set_error(DA_EFORMAT, "%s: the state is of another optimizer or net", who);
    adam_state_copy(opt, (unsigned char *)buf, 0);
    opt->steps = h.steps;
    return DA_OK;
}
