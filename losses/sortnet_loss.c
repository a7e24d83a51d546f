/* sortnet_loss.c - the ranking loss of a differentiable sorting network (diffsort
 * experiments/main.py: BCE between P and the true permutation matrix, ICML'21 §5),
 * its exact gradient, Hessian-vector products (forward-mode tangents through the
 * network and the reverse pass: forward over reverse), per-sample Hessians, and the
 * loss's tensor face. Conventions in sortnet.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sortnet_impl.h"
#include "alloc.h"

#define LOG_CLAMP (-100.0) /* torch BCELoss clamps log at -100 */

/* -[q log p + (1-q) log(1-p)] with the clamp; d1, d2: first and second derivative in p
 * (0 where clamped, including 1 - p rounding below 0) */
static double bce_term(double p, int q, double *d1, double *d2)
{
    double arg = q ? p : 1.0 - p, lg = log(arg);
    if (!(lg >= LOG_CLAMP)) {
        *d1 = *d2 = 0.0;
        return -LOG_CLAMP;
    }
    *d1 = q ? -1.0 / p : 1.0 / arg;
    *d2 = 1.0 / (arg * arg);
    return -lg;
}

typedef struct {
    double v;
    int i;
} keyed;

static int cmp_keyed(const void *pa, const void *pb)
{
    const keyed *a = pa, *b = pb;
    if (a->v != b->v)
        return a->v < b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* rank[i] = ascending position of targets[i] (ties by index) */
static void target_ranks(int n, const double *targets, keyed *tmp, int *rank)
{
    for (int i = 0; i < n; i++)
        tmp[i] = (keyed){targets[i], i};
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_keyed);
    for (int j = 0; j < n; j++)
        rank[tmp[j].i] = j;
}

/* per-thread scratch of one sample's evaluation */
typedef struct {
    double *buf;
    int *rank;
    keyed *keys;
    int R; /* rows of P per block */
} sample_ws;

static size_t ws_doubles(const da_sortnet *net, int R)
{
    size_t m = (size_t)net->n_comp, n = (size_t)net->n;
    return 8 * m + 2 * n + 2 * (size_t)R * (n + m);
}

static int ws_alloc(const da_sortnet *net, int R, sample_ws *ws)
{
    ws->R = R;
    ws->buf = da_malloc(ws_doubles(net, R) * sizeof(double));
    ws->rank = da_malloc((size_t)net->n * sizeof *ws->rank);
    ws->keys = da_malloc((size_t)net->n * sizeof *ws->keys);
    return ws->buf && ws->rank && ws->keys ? DA_OK : DA_ENOMEM;
}

static void ws_free(sample_ws *ws)
{
    da_free(ws->buf);
    da_free(ws->rank);
    da_free(ws->keys);
}

/* Loss of one sample, summed over its n*n entries. grad (or NULL): scale * d/dx.
 * v (or NULL): direction, hv = scale * (d^2 / dx^2) v. */
static double sample_eval(const da_sortnet *net, const double *x, const double *targets,
                          double scale, double *grad, const double *v, double *hv,
                          sample_ws *ws)
{
    int n = net->n, back = grad || v, R = ws->R;
    size_t m = (size_t)net->n_comp;
    da_sortnet_tape tape;
    da_sortnet_tape_init(net, &tape, ws->buf, v != NULL);
    double *g_alpha = ws->buf + 6 * m, *g_alpha_t = g_alpha + m, *scratch = g_alpha_t + m;
    double *S = scratch + 2 * n, *St = S + (size_t)n * R, *D = St + (size_t)n * R,
           *Dt = D + m * R;
    target_ranks(n, targets, ws->keys, ws->rank);
    da_sortnet_values_forward(net, x, v, scratch, &tape, NULL);
    memset(g_alpha, 0, 2 * m * sizeof *g_alpha);
    double loss = 0;
    for (int i0 = 0; i0 < n; i0 += R) {
        int Rb = n - i0 < R ? n - i0 : R;
        da_sortnet_identity_block(n, i0, Rb, S);
        if (v)
            memset(St, 0, (size_t)n * Rb * sizeof *St);
        da_sortnet_sweep(net, &tape, 0, Rb, S, back ? D : NULL, v ? St : NULL, v ? Dt : NULL);
        /* S becomes the cotangent of P, St its tangent */
        for (int w = 0; w < n; w++)
            for (int r = 0; r < Rb; r++) {
                size_t k = (size_t)w * Rb + r;
                double d1, d2;
                loss += bce_term(S[k], ws->rank[i0 + r] == w, &d1, &d2);
                S[k] = scale * d1;
                if (v)
                    St[k] = scale * d2 * St[k];
            }
        if (back)
            da_sortnet_sweep_back(net, &tape, 0, Rb, S, D, g_alpha, v ? St : NULL,
                                  v ? Dt : NULL, v ? g_alpha_t : NULL);
    }
    if (back) {
        double *g = grad ? grad : S; /* S is free scratch by now */
        da_sortnet_values_backward(net, &tape, NULL, g_alpha, NULL, v ? g_alpha_t : NULL,
                                   scratch, g, v ? hv : NULL);
    }
    return loss;
}

/* One driver for the loss, HVPs and Hessians: per sample b (in parallel),
 *   losses[b] and grad (if losses), hv (if v), H (if H). */
typedef struct {
    const char *fn;
    const da_sortnet *net;
    int batch;
    const double *x, *targets, *v;
    double *losses, *grad, *hv, *H;
} batch_job;

static void run_sample(const batch_job *job, int b, double scale, double *col,
                       sample_ws *ws)
{
    int n = job->net->n;
    const double *x = job->x + (size_t)b * n, *t = job->targets + (size_t)b * n;
    if (job->losses)
        job->losses[b] = sample_eval(job->net, x, t, scale,
                                     job->grad ? job->grad + (size_t)b * n : NULL, NULL,
                                     NULL, ws);
    if (job->v)
        sample_eval(job->net, x, t, scale, NULL, job->v + (size_t)b * n,
                    job->hv + (size_t)b * n, ws);
    for (int j = 0; job->H && j < n; j++) {
        double *e = col + n;
        memset(e, 0, (size_t)n * sizeof *e);
        e[j] = 1.0;
        sample_eval(job->net, x, t, scale, NULL, e, col, ws);
        for (int i = 0; i < n; i++)
            job->H[((size_t)b * n + i) * n + j] = col[i];
    }
}

static int run_batch(const batch_job *job)
{
    const da_sortnet *net = job->net;
    int rc = da_sortnet_check_input(job->fn, net, job->batch, job->x,
                                    net ? (long)job->batch * net->n : 0);
    if (rc)
        return rc;
    int n = net->n, nomem = 0;
    if (!job->targets)
        return da_set_error(DA_EINVAL, "%s: NULL targets", job->fn);
    if (!da_all_finite(job->targets, (long)job->batch * n))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in targets", job->fn);
    if (job->v && !da_all_finite(job->v, (long)job->batch * n))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in the direction v", job->fn);
    int R = da_sortnet_block_lanes(net, n, job->v || job->H ? 2 : 1);
    double scale = 1.0 / ((double)job->batch * n * n);
#pragma omp parallel if (da_sortnet_parallel(net, job->batch, job->H ? n * n : n))
    {
        sample_ws ws;
        double *col = da_malloc(2 * (size_t)n * sizeof *col);
        int ok = !ws_alloc(net, R, &ws) && col;
        if (!ok) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < job->batch; b++)
            if (ok)
                run_sample(job, b, scale, col, &ws);
        ws_free(&ws);
        da_free(col);
    }
    return nomem ? da_set_error(DA_ENOMEM, "%s: out of memory", job->fn) : DA_OK;
}

int da_sortnet_loss(const da_sortnet *net, int batch, const double *x,
                    const double *targets, double *loss, double *grad_x)
{
    const char *fn = "da_sortnet_loss";
    if (!loss)
        return da_set_error(DA_EINVAL, "%s: NULL loss", fn);
    if (batch < 1)
        return da_set_error(DA_ERANGE, "%s: batch %d < 1", fn, batch);
    double *losses = da_malloc((size_t)batch * sizeof *losses);
    if (!losses)
        return da_set_error(DA_ENOMEM, "%s: out of memory", fn);
    batch_job job = {.fn = fn, .net = net, .batch = batch, .x = x, .targets = targets,
                     .losses = losses, .grad = grad_x};
    int rc = run_batch(&job);
    if (!rc) {
        double sum = 0;
        for (int b = 0; b < batch; b++)
            sum += losses[b];
        *loss = sum / ((double)batch * net->n * net->n);
    }
    da_free(losses);
    return rc;
}

int da_sortnet_loss_hvp(const da_sortnet *net, int batch, const double *x,
                        const double *targets, const double *v, double *hv)
{
    if (!v || !hv)
        return da_set_error(DA_EINVAL, "da_sortnet_loss_hvp: NULL v or hv");
    batch_job job = {.fn = "da_sortnet_loss_hvp", .net = net, .batch = batch, .x = x,
                     .targets = targets, .v = v, .hv = hv};
    return run_batch(&job);
}

int da_sortnet_loss_hessian(const da_sortnet *net, int batch, const double *x,
                            const double *targets, double *H)
{
    if (!H)
        return da_set_error(DA_EINVAL, "da_sortnet_loss_hessian: NULL H");
    batch_job job = {.fn = "da_sortnet_loss_hessian", .net = net, .batch = batch, .x = x,
                     .targets = targets, .H = H};
    return run_batch(&job);
}

/* ---- tensor face: one custom node with gradient and exact HVP ---- */

static int loss_value(da_custom_args *args, double *out, double *grad)
{
    const da_sortnet *net = args->state;
    return da_sortnet_loss(net, (int)(args->in[0]->size / net->n), args->in_data[0],
                           args->in_data[1], out, grad);
}

static int loss_hvp(da_custom_args *args, const double *v, double *hv)
{
    const da_sortnet *net = args->state;
    return da_sortnet_loss_hvp(net, (int)(args->in[0]->size / net->n), args->in_data[0],
                               args->in_data[1], v, hv);
}

da_tensor *da_sortnet_ranking_loss(da_ctx *ctx, const da_sortnet *net, da_tensor *scores,
                                   da_tensor *targets)
{
    if (!ctx || !net || !scores || !targets) {
        da_set_error(DA_EINVAL, "da_sortnet_ranking_loss: NULL ctx, network or tensor");
        return NULL;
    }
    int n = net->n;
    if ((scores->ndim != 1 && scores->ndim != 2) || scores->shape[scores->ndim - 1] != n ||
        !da_same_shape(scores, targets)) {
        da_set_error(DA_ESHAPE,
                     "da_sortnet_ranking_loss: scores and targets must both be [%d] or "
                     "[batch][%d]", n, n);
        return NULL;
    }
    da_tensor *in[2] = {scores, targets};
    return da_op_loss(ctx, "sortnet_ranking_loss", in, 2, loss_value, loss_hvp, (void *)net);
}
