/* ops_loss.c - the losses of lib/ops.h (scalar results, means over the batch or the
 * elements):
 *   cross entropy  l = mean_i (logsumexp(z_i) - z_i[y_i]),  dz = (softmax(z) - onehot)/N
 *                  (log-sum-exp shifted by the row max, so large logits are safe);
 *   BCE            l = mean -(t max(log p, -100) + (1-t) max(log(1-p), -100)), as
 *                  torch.nn.BCELoss; a clamped log contributes no derivative;
 *                  d/dt = -(max(log p, -100) - max(log(1-p), -100)) / n;
 *   MSE            l = mean (a - b)^2.
 * Inputs with NaN or Inf are rejected with DA_ENAN. */
#include <math.h>
#include <string.h>

#include "ops.h"
#include "ops_util.h"

/* 0 if t (already checked non-NULL) has ndim dimensions */
static int check_ndim(const char *who, const da_tensor *t, int ndim)
{
    if (t->ndim != ndim)
        return da_set_error(DA_ESHAPE, "%s: input has %d dimensions (need %d)", who, t->ndim,
                            ndim);
    return DA_OK;
}

/* a scalar loss tensor holding v, recorded with backward; NULL on error */
static da_tensor *loss_node(da_ctx *ctx, const char *who, double v, da_tensor **in, int n_in,
                            da_backward_fn backward, void *saved)
{
    da_tensor *l = da_scalar(ctx, in[0]->dtype, v);
    da_node *nd;
    if (!l || da_graph_record(ctx, who, l, in, n_in, backward, &nd))
        return NULL;
    if (nd)
        nd->saved = saved;
    return l;
}

static double loss_grad(const da_node *nd)
{
    return da_get_grad(nd->out, 0);
}

typedef struct {
    int *labels;  /* [N] copy */
    double *lse;  /* [N] logsumexp of each row */
} ce_saved;

static int ce_backward(da_node *nd)
{
    da_tensor *z = nd->in[0];
    const ce_saved *cs = nd->saved;
    int N = z->shape[0], C = z->shape[1];
    double scale = loss_grad(nd) / N;
    void *gz = da_tensor_grad(z);
    if (!gz)
        return DA_ENOMEM;
    DA_DISPATCH(z->dtype, T, {
        const T *zv = z->data;
        T *g = gz;
        for (int i = 0; i < N; i++)
            for (int c = 0; c < C; c++) {
                long at = (long)i * C + c;
                double p = exp((double)zv[at] - cs->lse[i]);
                g[at] += (T)(scale * (p - (c == cs->labels[i])));
            }
    });
    return DA_OK;
}

da_tensor *da_cross_entropy(da_ctx *ctx, da_tensor *logits, const int *labels)
{
    const char *who = "da_cross_entropy";
    if (ops_check_inputs(ctx, who, &logits, 1) || check_ndim(who, logits, 2))
        return NULL;
    if (!labels) {
        da_set_error(DA_EINVAL, "%s: labels is NULL", who);
        return NULL;
    }
    int N = logits->shape[0], C = logits->shape[1];
    for (int i = 0; i < N; i++)
        if (labels[i] < 0 || labels[i] >= C) {
            da_set_error(DA_ERANGE, "%s: label %d of sample %d outside [0, %d)", who,
                         labels[i], i, C);
            return NULL;
        }
    if (da_check_finite(logits, who))
        return NULL;
    ce_saved *cs = da_ctx_alloc(ctx, sizeof *cs);
    if (!cs || !(cs->labels = da_ctx_alloc(ctx, (size_t)N * sizeof(int))) ||
        !(cs->lse = da_ctx_alloc(ctx, (size_t)N * sizeof(double))))
        return NULL;
    memcpy(cs->labels, labels, (size_t)N * sizeof(int));
    double total = 0;
    DA_DISPATCH(logits->dtype, T, {
        const T *z = logits->data;
        for (int i = 0; i < N; i++) {
            const T *row = z + (long)i * C;
            double m = row[0], s = 0;
            for (int c = 1; c < C; c++)
                m = row[c] > m ? row[c] : m;
            for (int c = 0; c < C; c++)
                s += exp((double)row[c] - m);
            cs->lse[i] = m + log(s);
            total += cs->lse[i] - (double)row[labels[i]];
        }
    });
    return loss_node(ctx, who, total / N, &logits, 1, ce_backward, cs);
}

/* max(log v, -100) and its derivative 1/v (0 where clamped) */
static double clamped_log(double v, double *d)
{
    double l = log(v);
    if (!(l >= -100)) {
        *d = 0;
        return -100;
    }
    *d = 1 / v;
    return l;
}

static int bce_backward(da_node *nd)
{
    da_tensor *p = nd->in[0], *t = nd->in[1];
    double scale = loss_grad(nd) / p->size;
    void *gp = p->requires_grad ? da_tensor_grad(p) : NULL;
    void *gt = t->requires_grad ? da_tensor_grad(t) : NULL;
    if ((p->requires_grad && !gp) || (t->requires_grad && !gt))
        return DA_ENOMEM;
    DA_DISPATCH(p->dtype, T, {
        const T *pv = p->data, *tv = t->data;
        for (long i = 0; i < p->size; i++) {
            double d1, d0, pi = pv[i], ti = tv[i];
            double l1 = clamped_log(pi, &d1), l0 = clamped_log(1 - pi, &d0);
            if (gp)
                ((T *)gp)[i] += (T)(-scale * (ti * d1 - (1 - ti) * d0));
            if (gt)
                ((T *)gt)[i] += (T)(-scale * (l1 - l0));
        }
    });
    return DA_OK;
}

da_tensor *da_bce(da_ctx *ctx, da_tensor *p, da_tensor *target)
{
    const char *who = "da_bce";
    da_tensor *in[2] = {p, target};
    if (ops_check_inputs(ctx, who, in, 2))
        return NULL;
    if (!da_same_shape(p, target)) {
        da_set_error(DA_ESHAPE, "%s: p and target have different shapes", who);
        return NULL;
    }
    if (da_check_finite(p, who) || da_check_finite(target, who))
        return NULL;
    double total = 0;
    int bad = 0;
    DA_DISPATCH(p->dtype, T, {
        const T *pv = p->data, *tv = target->data;
        for (long i = 0; i < p->size && !bad; i++) {
            double d, pi = pv[i], ti = tv[i];
            bad = !(pi >= 0 && pi <= 1);
            total -= ti * clamped_log(pi, &d) + (1 - ti) * clamped_log(1 - pi, &d);
        }
    });
    if (bad) {
        da_set_error(DA_ERANGE, "%s: p has values outside [0, 1]", who);
        return NULL;
    }
    return loss_node(ctx, who, total / p->size, in, 2, bce_backward, NULL);
}

static int mse_backward(da_node *nd)
{
    da_tensor *a = nd->in[0], *b = nd->in[1];
    double scale = 2 * loss_grad(nd) / a->size;
    void *ga = a->requires_grad ? da_tensor_grad(a) : NULL;
    void *gb = b->requires_grad ? da_tensor_grad(b) : NULL;
    if ((a->requires_grad && !ga) || (b->requires_grad && !gb))
        return DA_ENOMEM;
    DA_DISPATCH(a->dtype, T, {
        const T *av = a->data, *bv = b->data;
        for (long i = 0; i < a->size; i++) {
            T d = (T)(scale * ((double)av[i] - (double)bv[i]));
            if (ga)
                ((T *)ga)[i] += d;
            if (gb)
                ((T *)gb)[i] -= d;
        }
    });
    return DA_OK;
}

da_tensor *da_mse(da_ctx *ctx, da_tensor *a, da_tensor *b)
{
    const char *who = "da_mse";
    da_tensor *in[2] = {a, b};
    if (ops_check_inputs(ctx, who, in, 2))
        return NULL;
    if (!da_same_shape(a, b)) {
        da_set_error(DA_ESHAPE, "%s: a and b have different shapes", who);
        return NULL;
    }
    if (da_check_finite(a, who) || da_check_finite(b, who))
        return NULL;
    double total = 0;
    DA_DISPATCH(a->dtype, T, {
        const T *av = a->data, *bv = b->data;
        for (long i = 0; i < a->size; i++) {
            double d = (double)av[i] - (double)bv[i];
            total += d * d;
        }
    });
    return loss_node(ctx, who, total / a->size, in, 2, mse_backward, NULL);
}
