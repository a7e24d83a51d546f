/* topk.c - difftopk (ICML 2022): the top-k columns of a sorting network's relaxed
 * permutation matrix by backward propagation (paper §3.2), their VJP, and the top-k
 * cross-entropy loss (paper eq. 8, losses.py). Conventions in topk.h; the per-layer
 * kernels are those of sortnet_impl.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sortnet_impl.h"
#include "alloc.h"
#include "topk.h"

#define CE_SCALE (1 - 2e-7) /* difftopk: log(dist * (1 - 2e-7) + 1e-7) */
#define CE_SHIFT 1e-7

/* ---- the top-k operator ---- */

/* One sample: X [n][k] and, with cot, grad_x [n]. ws: 5 n_comp + 2 n + R (n + n_comp). */
static void sample_topk(const da_sortnet *net, int k, const double *x, double *X,
                        const double *cot, double *grad_x, double *ws, int R)
{
    int n = net->n;
    size_t m = (size_t)net->n_comp;
    da_sortnet_tape tape;
    da_sortnet_tape_init(net, &tape, ws, 0);
    double *g_alpha = ws + 4 * m, *scratch = g_alpha + m, *Y = scratch + 2 * n,
           *D = Y + (size_t)n * R;
    da_sortnet_values_forward(net, x, NULL, scratch, &tape, NULL);
    memset(g_alpha, 0, m * sizeof *g_alpha);
    for (int j0 = 0; j0 < k; j0 += R) {
        int Rb = k - j0 < R ? k - j0 : R;
        /* columns n-k+j0 .. of the identity, propagated from the output side */
        da_sortnet_identity_block(n, n - k + j0, Rb, Y);
        da_sortnet_sweep(net, &tape, 1, Rb, Y, cot ? D : NULL, NULL, NULL);
        for (int i = 0; X && i < n; i++)
            for (int j = 0; j < Rb; j++)
                X[(size_t)i * k + j0 + j] = Y[(size_t)i * Rb + j];
        if (!cot)
            continue;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < Rb; j++)
                Y[(size_t)i * Rb + j] = cot[(size_t)i * k + j0 + j];
        da_sortnet_sweep_back(net, &tape, 1, Rb, Y, D, g_alpha, NULL, NULL, NULL);
    }
    if (cot)
        da_sortnet_values_backward(net, &tape, NULL, g_alpha, NULL, NULL, scratch, grad_x,
                                   NULL);
}

int da_topk(const da_sortnet *net, int k, int batch, const double *x, double *X,
            const double *cot, double *grad_x)
{
    const char *fn = "da_topk";
    int rc = da_sortnet_check_input(fn, net, batch, x, net ? (long)batch * net->n : 0);
    if (rc)
        return rc;
    int n = net->n, nomem = 0;
    if (k < 1 || k > n)
        return da_set_error(DA_ERANGE, "%s: k = %d outside [1, %d]", fn, k, n);
    if (!X && !cot)
        return da_set_error(DA_EINVAL, "%s: nothing to compute (X and cot NULL)", fn);
    if (!cot != !grad_x)
        return da_set_error(DA_EINVAL, "%s: cot and grad_x must both be set or both NULL", fn);
    if (cot && !da_all_finite(cot, (long)batch * n * k))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in the cotangent", fn);
    int R = da_sortnet_block_lanes(net, k, 1);
    size_t ws_len = 5 * (size_t)net->n_comp + 2 * (size_t)n +
                    (size_t)R * ((size_t)n + (size_t)net->n_comp);
#pragma omp parallel if (da_sortnet_parallel(net, batch, k))
    {
        double *ws = da_malloc(ws_len * sizeof *ws);
        if (!ws) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < batch; b++)
            if (ws)
                sample_topk(net, k, x + (size_t)b * n, X ? X + (size_t)b * n * k : NULL,
                            cot ? cot + (size_t)b * n * k : NULL,
                            grad_x ? grad_x + (size_t)b * n : NULL, ws, R);
        da_free(ws);
    }
    return nomem ? da_set_error(DA_ENOMEM, "%s: out of memory", fn) : DA_OK;
}

typedef struct {
    const da_sortnet *net;
    int k;
} topk_state;

static int topk_forward(da_custom_args *args, double *out)
{
    const topk_state *st = args->state;
    return da_topk(st->net, st->k, (int)(args->in[0]->size / st->net->n), args->in_data[0],
                   out, NULL, NULL);
}

static int topk_backward(da_custom_args *args, const double *og, double *const *ig)
{
    const topk_state *st = args->state;
    long len = args->in[0]->size;
    if (!ig[0])
        return DA_OK;
    double *g = da_ctx_alloc(args->ctx, (size_t)len * sizeof *g);
    if (!g)
        return DA_ENOMEM;
    int rc = da_topk(st->net, st->k, (int)(len / st->net->n), args->in_data[0], NULL, og, g);
    for (long i = 0; !rc && i < len; i++)
        ig[0][i] += g[i];
    return rc;
}

da_tensor *da_topk_op(da_ctx *ctx, const da_sortnet *net, int k, da_tensor *x)
{
    if (!ctx || !net || !x) {
        da_set_error(DA_EINVAL, "da_topk_op: NULL ctx, network or input");
        return NULL;
    }
    int n = net->n;
    if ((x->ndim != 1 && x->ndim != 2) || x->shape[x->ndim - 1] != n) {
        da_set_error(DA_ESHAPE, "da_topk_op: input must be [%d] or [batch][%d]", n, n);
        return NULL;
    }
    if (k < 1 || k > n) {
        da_set_error(DA_ERANGE, "da_topk_op: k = %d outside [1, %d]", k, n);
        return NULL;
    }
    topk_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st)
        return NULL;
    *st = (topk_state){net, k};
    int shape[3] = {x->shape[0], n, k};
    if (x->ndim == 1)
        shape[0] = n, shape[1] = k;
    return da_op_custom(ctx, "topk", &x, 1, x->ndim + 1, shape, topk_forward, topk_backward,
                        NULL, st);
}

/* ---- top-k cross-entropy ---- */

static int check_ce(const char *fn, const da_topk_ce_cfg *cfg, int batch, const double *logits,
                    const int *labels)
{
    if (!cfg || !cfg->net || !cfg->p_k || !logits || !labels)
        return da_set_error(DA_EINVAL, "%s: NULL cfg, network, p_k, logits or labels", fn);
    if (cfg->top1_mode != DA_TOP1_SM && cfg->top1_mode != DA_TOP1_SMCE &&
        cfg->top1_mode != DA_TOP1_SORT)
        return da_set_error(DA_EINVAL, "%s: unknown top1_mode %d", fn, (int)cfg->top1_mode);
    int wires = cfg->m ? cfg->m : cfg->n_classes;
    if (batch < 1 || cfg->n_classes < 2)
        return da_set_error(DA_ERANGE, "%s: batch %d or n_classes %d too small", fn, batch,
                            cfg->n_classes);
    if (cfg->m && !(cfg->k < cfg->m && cfg->m < cfg->n_classes))
        return da_set_error(DA_ERANGE, "%s: need k < m < n_classes (k %d, m %d, n %d)", fn,
                            cfg->k, cfg->m, cfg->n_classes);
    if (cfg->net->n != wires)
        return da_set_error(DA_ESHAPE, "%s: the network has %d wires, the loss needs %d", fn,
                            cfg->net->n, wires);
    if (cfg->k < 1 || cfg->k > wires)
        return da_set_error(DA_ERANGE, "%s: k = %d outside [1, %d]", fn, cfg->k, wires);
    if (!da_all_finite(cfg->p_k, cfg->k))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in p_k", fn);
    double sum = 0;
    for (int j = 0; j < cfg->k; j++) {
        if (cfg->p_k[j] < 0)
            return da_set_error(DA_ERANGE, "%s: p_k[%d] = %g < 0", fn, j, cfg->p_k[j]);
        sum += cfg->p_k[j];
    }
    if (fabs(sum - 1) > 1e-4)
        return da_set_error(DA_ERANGE, "%s: p_k sums to %g, not 1", fn, sum);
    if (!da_all_finite(logits, (long)batch * cfg->n_classes))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in logits", fn);
    for (int b = 0; b < batch; b++)
        if (labels[b] < 0 || labels[b] >= cfg->n_classes)
            return da_set_error(DA_ERANGE, "%s: label %d of sample %d outside [0, %d)", fn,
                                labels[b], b, cfg->n_classes);
    return DA_OK;
}

/* idx[0] = label, idx[1..m-1] = the m-1 largest other classes, descending (ties: lower
 * index first) */
static void select_top_m(int nc, const double *lg, int label, int m, int *idx)
{
    int cnt = 1;
    idx[0] = label;
    for (int c = 0; c < nc; c++) {
        if (c == label || (cnt == m && !(lg[c] > lg[idx[m - 1]])))
            continue;
        int pos = cnt < m ? cnt++ : m - 1;
        while (pos > 1 && lg[c] > lg[idx[pos - 1]]) {
            idx[pos] = idx[pos - 1];
            pos--;
        }
        idx[pos] = c;
    }
}

/* softmax of z [n] into s; returns log-sum-exp */
static double softmax(int n, const double *z, double *s)
{
    double mx = z[0], sum = 0;
    for (int i = 1; i < n; i++)
        mx = fmax(mx, z[i]);
    for (int i = 0; i < n; i++)
        sum += s[i] = exp(z[i] - mx);
    for (int i = 0; i < n; i++)
        s[i] /= sum;
    return mx + log(sum);
}

/* One sample's loss; with grad, adds scale * d loss / d logits into grad [n_classes]
 * (zeroed by the caller). ws: 6 n_comp + 8 n doubles, idx [n]. */
static double sample_ce(const da_topk_ce_cfg *cfg, const double *logits, int label,
                        double scale, double *grad, double *ws, int *idx)
{
    const da_sortnet *net = cfg->net;
    int n = net->n, K = cfg->k, lab = cfg->m ? 0 : label;
    size_t m = (size_t)net->n_comp;
    da_sortnet_tape tape;
    da_sortnet_tape_init(net, &tape, ws, 0);
    double *g_alpha = ws + 4 * m, *D = g_alpha + m, *scratch = D + m, *z = scratch + 2 * n,
           *S = z + n, *gz = S + n, *s = gz + n, *wt = s + n;
    if (cfg->m)
        select_top_m(cfg->n_classes, logits, label, n, idx);
    for (int i = 0; i < n; i++)
        z[i] = logits[cfg->m ? idx[i] : i];
    da_sortnet_values_forward(net, z, NULL, scratch, &tape, NULL);
    /* the label's row of P, propagated forward (one lane) */
    da_sortnet_identity_block(n, lab, 1, S);
    da_sortnet_sweep(net, &tape, 0, 1, S, grad ? D : NULL, NULL, NULL);
    int first = cfg->top1_mode == DA_TOP1_SORT ? 0 : 1;
    double dist = 0, lse = 0, p_tail = 0;
    for (int j = 0; j < K; j++) { /* position n-K+j is in the top k' iff k' >= K - j */
        wt[j] = 0;
        for (int q = (K - 1 - j > first ? K - 1 - j : first); q < K; q++)
            wt[j] += cfg->p_k[q];
        dist += wt[j] * S[n - K + j];
    }
    for (int q = 1; q < K; q++)
        p_tail += cfg->p_k[q];
    if (cfg->top1_mode != DA_TOP1_SORT)
        lse = softmax(n, z, s);
    if (cfg->top1_mode == DA_TOP1_SM)
        dist += cfg->p_k[0] * s[lab];
    double arg = dist * CE_SCALE + CE_SHIFT, loss = -log(arg);
    double coef = cfg->top1_mode == DA_TOP1_SMCE ? p_tail : 1.0, dl = -CE_SCALE / arg;
    if (cfg->top1_mode == DA_TOP1_SMCE)
        loss = cfg->p_k[0] * (lse - z[lab]) + p_tail * loss;
    if (!grad)
        return loss;
    memset(S, 0, (size_t)n * sizeof *S); /* cotangent of the row */
    for (int j = 0; j < K; j++)
        S[n - K + j] = scale * coef * dl * wt[j];
    memset(g_alpha, 0, m * sizeof *g_alpha);
    da_sortnet_sweep_back(net, &tape, 0, 1, S, D, g_alpha, NULL, NULL, NULL);
    da_sortnet_values_backward(net, &tape, NULL, g_alpha, NULL, NULL, scratch, gz, NULL);
    for (int i = 0; i < n; i++) {
        double onehot = i == lab;
        if (cfg->top1_mode == DA_TOP1_SM)
            gz[i] += scale * dl * cfg->p_k[0] * s[lab] * (onehot - s[i]);
        if (cfg->top1_mode == DA_TOP1_SMCE)
            gz[i] += scale * cfg->p_k[0] * (s[i] - onehot);
        grad[cfg->m ? idx[i] : i] += gz[i];
    }
    return loss;
}

int da_topk_ce_loss(const da_topk_ce_cfg *cfg, int batch, const double *logits,
                    const int *labels, double *loss, double *grad)
{
    const char *fn = "da_topk_ce_loss";
    int rc = check_ce(fn, cfg, batch, logits, labels);
    if (rc)
        return rc;
    if (!loss)
        return da_set_error(DA_EINVAL, "%s: NULL loss", fn);
    int n = cfg->net->n, nc = cfg->n_classes, nomem = 0;
    double *losses = da_malloc((size_t)batch * sizeof *losses);
    if (!losses)
        return da_set_error(DA_ENOMEM, "%s: out of memory", fn);
    if (grad)
        memset(grad, 0, (size_t)batch * nc * sizeof *grad);
    size_t ws_len = 6 * (size_t)cfg->net->n_comp + 8 * (size_t)n;
#pragma omp parallel if (da_sortnet_parallel(cfg->net, batch, 1))
    {
        double *ws = da_malloc(ws_len * sizeof *ws);
        int *idx = da_malloc((size_t)n * sizeof *idx);
        if (!ws || !idx) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < batch; b++)
            if (ws && idx)
                losses[b] = sample_ce(cfg, logits + (size_t)b * nc, labels[b], 1.0 / batch,
                                      grad ? grad + (size_t)b * nc : NULL, ws, idx);
        da_free(ws);
        da_free(idx);
    }
    if (!nomem) {
        double sum = 0;
        for (int b = 0; b < batch; b++)
            sum += losses[b];
        *loss = sum / batch;
    }
    da_free(losses);
    return nomem ? da_set_error(DA_ENOMEM, "%s: out of memory", fn) : DA_OK;
}

typedef struct {
    da_topk_ce_cfg cfg;
    int *labels; /* [batch], a copy in the ctx */
} ce_state;

static int ce_value(da_custom_args *args, double *out, double *grad)
{
    const ce_state *st = args->state;
    return da_topk_ce_loss(&st->cfg, (int)(args->in[0]->size / st->cfg.n_classes),
                           args->in_data[0], st->labels, out, grad);
}

da_tensor *da_topk_ce(da_ctx *ctx, da_tensor *logits, const int *labels,
                      const da_topk_ce_cfg *cfg)
{
    if (!ctx || !logits || !labels || !cfg) {
        da_set_error(DA_EINVAL, "da_topk_ce: NULL ctx, logits, labels or cfg");
        return NULL;
    }
    if (logits->ndim != 2 || logits->shape[1] != cfg->n_classes) {
        da_set_error(DA_ESHAPE, "da_topk_ce: logits must be [batch][%d]", cfg->n_classes);
        return NULL;
    }
    int batch = logits->shape[0];
    ce_state *st = da_ctx_alloc(ctx, sizeof *st);
    int *lab = da_ctx_alloc(ctx, (size_t)batch * sizeof *lab);
    if (!st || !lab)
        return NULL;
    memcpy(lab, labels, (size_t)batch * sizeof *lab);
    *st = (ce_state){*cfg, lab};
    return da_op_loss(ctx, "topk_ce", &logits, 1, ce_value, NULL, st);
}
