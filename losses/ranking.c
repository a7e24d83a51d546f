/* ranking.c - ranking losses by name (see ranking.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neuralsort.h"
#include "alloc.h"
#include "pav.h"
#include "ranking.h"
#include "sinkhorn.h"
#include "softsort.h"
#include "sortnet.h"

struct da_ranking {
    da_ranking_family family;
    int n;
    char spec[160];
    da_sortnet *net;
    da_neuralsort_cfg neuralsort;
    da_softsort_cfg softsort;
    da_sinkhorn_cfg sinkhorn;
    da_fast_soft_rank_cfg fsr;
};

static const char *const sigmoid_names[] = {"logistic",   "logistic_phi", "gaussian",
                                            "reciprocal", "cauchy",       "optimal"};

/* the options of a spec, split in place */
typedef struct {
    int count;
    char *key[8];
    char *value[8]; /* NULL for a bare word */
} options;

static int split_options(char *rest, options *o)
{
    o->count = 0;
    for (char *tok = strtok(rest, ":"); tok; tok = strtok(NULL, ":")) {
        if (o->count == 8)
            return da_set_error(DA_EINVAL, "ranking: too many options");
        char *eq = strchr(tok, '=');
        if (eq)
            *eq = '\0';
        o->key[o->count] = tok;
        o->value[o->count] = eq ? eq + 1 : NULL;
        o->count++;
    }
    return DA_OK;
}

static int parse_number(const char *key, const char *text, double lo, double hi, double *out)
{
    char *end;
    double v = text ? strtod(text, &end) : NAN;
    if (!text || end == text || *end || !(v >= lo && v <= hi))
        return da_set_error(DA_ERANGE, "ranking: option %s=%s must be a number in [%g, %g]",
                            key, text ? text : "", lo, hi);
    *out = v;
    return DA_OK;
}

static int parse_sortnet(da_ranking *r, const char *name, const options *o)
{
    int sigmoid = 4; /* cauchy */
    double steepness = 10, art_lambda = 0.25;
    for (int i = 0; i < o->count; i++) {
        int rc = DA_OK, known = 0;
        for (int s = 0; s < 6 && !o->value[i]; s++)
            if (!strcmp(o->key[i], sigmoid_names[s])) {
                sigmoid = s;
                known = 1;
            }
        if (!known && o->value[i] && !strcmp(o->key[i], "steepness"))
            rc = parse_number("steepness", o->value[i], 1e-12, 1e12, &steepness), known = 1;
        else if (!known && o->value[i] && !strcmp(o->key[i], "art_lambda"))
            rc = parse_number("art_lambda", o->value[i], 0, 1e3, &art_lambda), known = 1;
        if (rc)
            return rc;
        if (!known)
            return da_set_error(DA_EINVAL, "ranking: unknown option '%s' for %s", o->key[i], name);
    }
    r->net = da_sortnet_new(!strcmp(name, "bitonic") ? DA_SORTNET_BITONIC : DA_SORTNET_ODD_EVEN,
                            r->n, (da_sigmoid)sigmoid, steepness, art_lambda);
    if (!r->net)
        return da_last_error_code();
    snprintf(r->spec, sizeof r->spec, "%s:%s:steepness=%g:art_lambda=%g", name,
             sigmoid_names[sigmoid], steepness, art_lambda);
    return DA_OK;
}

/* key=value options of the other families: each known key fills one double */
typedef struct {
    const char *key;
    double lo, hi;
    double *value;
} number_option;

static int parse_numbers(const char *name, const options *o, const number_option *known,
                         int n_known, const char *const *words, int n_words, int *word)
{
    for (int i = 0; i < o->count; i++) {
        int matched = 0;
        for (int w = 0; w < n_words && !o->value[i]; w++)
            if (!strcmp(o->key[i], words[w])) {
                *word = w;
                matched = 1;
            }
        for (int k = 0; k < n_known && !matched; k++)
            if (!strcmp(o->key[i], known[k].key)) {
                int rc = parse_number(known[k].key, o->value[i], known[k].lo, known[k].hi,
                                      known[k].value);
                if (rc)
                    return rc;
                matched = 1;
            }
        if (!matched)
            return da_set_error(DA_EINVAL, "ranking: unknown option '%s' for %s", o->key[i], name);
    }
    return DA_OK;
}

static int parse_family(da_ranking *r, const char *name, const options *o)
{
    if (!strcmp(name, "odd_even") || !strcmp(name, "bitonic")) {
        r->family = DA_RANK_SORTNET;
        return parse_sortnet(r, name, o);
    }
    double tau = 1, eps = 0.1, iters = 50, strength = 1;
    int word = 0, rc;
    if (!strcmp(name, "neuralsort") || !strcmp(name, "softsort")) {
        number_option opt[] = {{"tau", 1e-12, 1e12, &tau}};
        if ((rc = parse_numbers(name, o, opt, 1, NULL, 0, &word)))
            return rc;
        r->family = name[0] == 'n' ? DA_RANK_NEURALSORT : DA_RANK_SOFTSORT;
        r->neuralsort = (da_neuralsort_cfg){.n = r->n, .tau = tau};
        r->softsort = (da_softsort_cfg){.n = r->n, .tau = tau};
        snprintf(r->spec, sizeof r->spec, "%s:tau=%g", name, tau);
        return DA_OK;
    }
    if (!strcmp(name, "sinkhorn")) {
        number_option opt[] = {{"epsilon", 1e-12, 1e12, &eps},
                               {"iterations", 1, DA_SINKHORN_MAX_ITER, &iters}};
        if ((rc = parse_numbers(name, o, opt, 2, NULL, 0, &word)))
            return rc;
        r->family = DA_RANK_SINKHORN;
        r->sinkhorn = (da_sinkhorn_cfg){.n = r->n, .epsilon = eps, .iterations = (int)iters};
        snprintf(r->spec, sizeof r->spec, "sinkhorn:epsilon=%g:iterations=%d", eps, (int)iters);
        return DA_OK;
    }
    if (!strcmp(name, "fast_soft_rank")) {
        static const char *const regs[] = {"l2", "kl"};
        number_option opt[] = {{"strength", 1e-12, 1e12, &strength}};
        if ((rc = parse_numbers(name, o, opt, 1, regs, 2, &word)))
            return rc;
        r->family = DA_RANK_FAST_SOFT_RANK;
        r->fsr = (da_fast_soft_rank_cfg){.n = r->n, .reg = word ? DA_REG_KL : DA_REG_L2,
                                         .strength = strength};
        snprintf(r->spec, sizeof r->spec, "fast_soft_rank:%s:strength=%g", regs[word], strength);
        return DA_OK;
    }
    return da_set_error(DA_EINVAL, "ranking: unknown method '%s' (odd_even, bitonic, neuralsort, "
                                   "softsort, sinkhorn, fast_soft_rank)", name);
}

da_ranking *da_ranking_new(const char *spec, int n)
{
    char buf[256];
    options o;
    if (!spec) {
        da_set_error(DA_EINVAL, "da_ranking_new: spec is NULL");
        return NULL;
    }
    if (strlen(spec) >= sizeof buf) {
        da_set_error(DA_ERANGE, "da_ranking_new: spec longer than %zu characters", sizeof buf);
        return NULL;
    }
    if (n < 2) {
        da_set_error(DA_ERANGE, "da_ranking_new: n = %d (need >= 2)", n);
        return NULL;
    }
    da_ranking *r = da_calloc(1, sizeof *r);
    if (!r) {
        da_set_error(DA_ENOMEM, "da_ranking_new: out of memory");
        return NULL;
    }
    r->n = n;
    strcpy(buf, spec);
    char *colon = strchr(buf, ':');
    if (colon)
        *colon = '\0';
    if (split_options(colon ? colon + 1 : buf + strlen(buf), &o) || parse_family(r, buf, &o)) {
        da_ranking_free(r);
        return NULL;
    }
    return r;
}

void da_ranking_free(da_ranking *r)
{
    if (!r)
        return;
    da_sortnet_free(r->net);
    da_free(r);
}

da_ranking_family da_ranking_family_of(const da_ranking *r) { return r->family; }

int da_ranking_n(const da_ranking *r) { return r->n; }

const char *da_ranking_spec(const da_ranking *r) { return r->spec; }

int da_ranking_loss(const da_ranking *r, int batch, const double *scores,
                    const double *targets, double *loss, double *grad)
{
    if (!r)
        return da_set_error(DA_EINVAL, "da_ranking_loss: method is NULL");
    switch (r->family) {
    case DA_RANK_SORTNET: return da_sortnet_loss(r->net, batch, scores, targets, loss, grad);
    case DA_RANK_NEURALSORT:
        return da_neuralsort_loss(&r->neuralsort, batch, scores, targets, loss, grad);
    case DA_RANK_SOFTSORT:
        return da_softsort_loss(&r->softsort, batch, scores, targets, loss, grad);
    case DA_RANK_SINKHORN:
        return da_sinkhorn_loss(&r->sinkhorn, batch, scores, targets, loss, grad);
    default: return da_fast_soft_rank_loss(&r->fsr, batch, scores, targets, loss, grad);
    }
}

/* H[b] by central differences of the batch-mean gradient: perturbing row b of scores
 * changes only row b of the gradient, so one perturbation per column serves all rows */
static int hessian_by_differences(const da_ranking *r, int batch, const double *scores,
                                  const double *targets, double *H)
{
    int n = r->n;
    double loss;
    int rc = da_ranking_loss(r, batch, scores, targets, &loss, NULL); /* checks the inputs */
    if (rc)
        return rc;
    size_t len = (size_t)batch * n;
    double *x = da_malloc(len * sizeof *x), *gp = da_malloc(len * sizeof *gp);
    double *gm = da_malloc(len * sizeof *gm);
    if (!x || !gp || !gm) {
        rc = da_set_error(DA_ENOMEM, "da_ranking_hessian: out of memory");
        goto done;
    }
    memcpy(x, scores, len * sizeof *x);
    for (int j = 0; j < n && !rc; j++) {
        for (int b = 0; b < batch; b++)
            x[b * n + j] = scores[b * n + j] + 1e-5 * fmax(1, fabs(scores[b * n + j]));
        rc = da_ranking_loss(r, batch, x, targets, &loss, gp);
        for (int b = 0; b < batch; b++)
            x[b * n + j] = scores[b * n + j] - 1e-5 * fmax(1, fabs(scores[b * n + j]));
        if (!rc)
            rc = da_ranking_loss(r, batch, x, targets, &loss, gm);
        for (int b = 0; b < batch && !rc; b++) {
            double h = 1e-5 * fmax(1, fabs(scores[b * n + j]));
            x[b * n + j] = scores[b * n + j];
            for (int i = 0; i < n; i++)
                H[((size_t)b * n + i) * n + j] = (gp[b * n + i] - gm[b * n + i]) / (2 * h);
        }
    }
    for (int b = 0; b < batch && !rc; b++) /* symmetrise */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) {
                double *hij = &H[((size_t)b * n + i) * n + j], *hji = &H[((size_t)b * n + j) * n + i];
                *hij = *hji = 0.5 * (*hij + *hji);
            }
done:
    da_free(x);
    da_free(gp);
    da_free(gm);
    return rc;
}

int da_ranking_hessian(const da_ranking *r, int batch, const double *scores,
                       const double *targets, double *H, int *exact)
{
    if (!r || !H)
        return da_set_error(DA_EINVAL, "da_ranking_hessian: NULL method or H");
    if (exact)
        *exact = r->family <= DA_RANK_SOFTSORT;
    switch (r->family) {
    case DA_RANK_SORTNET: return da_sortnet_loss_hessian(r->net, batch, scores, targets, H);
    case DA_RANK_NEURALSORT:
        return da_neuralsort_hessian(&r->neuralsort, batch, scores, targets, H);
    case DA_RANK_SOFTSORT: return da_softsort_hessian(&r->softsort, batch, scores, targets, H);
    default: return hessian_by_differences(r, batch, scores, targets, H);
    }
}

da_tensor *da_ranking_loss_op(da_ctx *ctx, const da_ranking *r, da_tensor *scores,
                              const double *targets)
{
    if (!scores) { /* keep the error of the op that failed to make scores */
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "da_ranking_loss_op: scores is NULL");
        return NULL;
    }
    if (!ctx || !r || !targets) {
        da_set_error(DA_EINVAL, "da_ranking_loss_op: NULL ctx, method or targets");
        return NULL;
    }
    switch (r->family) {
    case DA_RANK_SORTNET: {
        da_tensor *t = da_ctx_tensor_from(ctx, scores->dtype, scores->ndim, scores->shape, targets);
        return t ? da_sortnet_ranking_loss(ctx, r->net, scores, t) : NULL;
    }
    case DA_RANK_NEURALSORT: return da_neuralsort(ctx, scores, targets, &r->neuralsort);
    case DA_RANK_SOFTSORT: return da_softsort(ctx, scores, targets, &r->softsort);
    case DA_RANK_SINKHORN: return da_sinkhorn(ctx, scores, targets, &r->sinkhorn);
    default: return da_fast_soft_rank(ctx, scores, targets, &r->fsr);
    }
}
