/* optim.c - the optimizer object shared by SGD and Adam(W): parameter list, state
 * buffers, step dispatch, checkpoint state, and clip_grad_norm (optim.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "alloc.h"

#define MAX_BUFS 3
#define STATE_MAGIC 0x44414f50u /* "DAOP" */
#define STATE_VERSION 1u

struct da_optim {
    da_optim_cfg cfg;
    int n;               /* number of parameters */
    da_tensor **params;  /* [n] borrowed */
    long *step;          /* [n] per-parameter step counts */
    int n_bufs;          /* state buffers per parameter */
    void **bufs;         /* [n][n_bufs], each params[i]->size elements of its dtype */
    long steps;          /* successful da_optim_step calls */
};

/* the state blob: header, one record per parameter, then the buffers in order */
typedef struct {
    uint32_t magic, version, kind, n_params, n_bufs, reserved;
    int64_t steps;
} state_header;

typedef struct {
    int32_t dtype, reserved;
    int64_t size, step;
} state_param;

da_optim_cfg da_sgd_cfg(double lr, double momentum)
{
    return (da_optim_cfg){.kind = DA_OPTIM_SGD, .lr = lr, .momentum = momentum};
}

da_optim_cfg da_adam_cfg(double lr)
{
    return (da_optim_cfg){
        .kind = DA_OPTIM_ADAM, .lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

da_optim_cfg da_adamw_cfg(double lr)
{
    da_optim_cfg c = da_adam_cfg(lr);
    c.kind = DA_OPTIM_ADAMW;
    c.weight_decay = 1e-2;
    return c;
}

static int check_range(double x, double lo, double hi, int hi_open, const char *name)
{
    if (!isfinite(x) || x < lo || x > hi || (hi_open && x == hi))
        return da_set_error(DA_ERANGE, "da_optim_new: %s = %g outside [%g, %g%s", name, x, lo,
                            hi, hi_open ? ")" : "]");
    return DA_OK;
}

static int check_cfg(const da_optim_cfg *c)
{
    int rc;
    if (c->kind != DA_OPTIM_SGD && c->kind != DA_OPTIM_ADAM && c->kind != DA_OPTIM_ADAMW)
        return da_set_error(DA_EINVAL, "da_optim_new: unknown optimizer kind %d", (int)c->kind);
    if ((rc = check_range(c->lr, 0, HUGE_VAL, 0, "lr")) ||
        (rc = check_range(c->weight_decay, 0, HUGE_VAL, 0, "weight_decay")))
        return rc;
    if (c->kind == DA_OPTIM_SGD) {
        if ((rc = check_range(c->momentum, 0, HUGE_VAL, 0, "momentum")) ||
            (rc = check_range(c->dampening, 0, 1, 0, "dampening")))
            return rc;
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return da_set_error(DA_EINVAL, "da_optim_new: Nesterov momentum requires a "
                                           "momentum > 0 and zero dampening");
        return DA_OK;
    }
    if ((rc = check_range(c->beta1, 0, 1, 1, "beta1")) ||
        (rc = check_range(c->beta2, 0, 1, 1, "beta2")) ||
        (rc = check_range(c->eps, 0, HUGE_VAL, 0, "eps")))
        return rc;
    return DA_OK;
}

static int check_params(da_tensor **params, int n)
{
    if (!params || n < 1)
        return da_set_error(DA_EINVAL, "da_optim_new: no parameters (params NULL or n < 1)");
    for (int i = 0; i < n; i++) {
        if (!params[i])
            return da_set_error(DA_EINVAL, "da_optim_new: parameter %d is NULL", i);
        if (params[i]->dtype != DA_F32 && params[i]->dtype != DA_F64)
            return da_set_error(DA_EDTYPE, "da_optim_new: parameter %d has dtype %d", i,
                                (int)params[i]->dtype);
        for (int j = 0; j < i; j++)
            if (params[j] == params[i])
                return da_set_error(DA_EINVAL, "da_optim_new: parameter %d repeats %d", i, j);
    }
    return DA_OK;
}

static int buffers_for(const da_optim_cfg *c)
{
    if (c->kind == DA_OPTIM_SGD)
        return c->momentum != 0.0 ? 1 : 0;
    return c->amsgrad ? 3 : 2;
}

da_optim *da_optim_new(da_tensor **params, int n_params, const da_optim_cfg *cfg)
{
    if (!cfg) {
        da_set_error(DA_EINVAL, "da_optim_new: cfg is NULL");
        return NULL;
    }
    if (check_params(params, n_params) || check_cfg(cfg))
        return NULL;
    da_optim *o = da_calloc(1, sizeof *o);
    if (!o)
        goto oom;
    o->cfg = *cfg;
    o->n = n_params;
    o->n_bufs = buffers_for(cfg);
    o->params = da_malloc((size_t)n_params * sizeof *o->params);
    o->step = da_calloc((size_t)n_params, sizeof *o->step);
    o->bufs = da_calloc((size_t)n_params * MAX_BUFS, sizeof *o->bufs);
    if (!o->params || !o->step || !o->bufs)
        goto oom;
    for (int i = 0; i < n_params; i++) {
        o->params[i] = params[i];
        for (int k = 0; k < o->n_bufs; k++) {
            o->bufs[i * MAX_BUFS + k] = da_calloc((size_t)params[i]->size,
                                               da_dtype_size(params[i]->dtype));
            if (!o->bufs[i * MAX_BUFS + k])
                goto oom;
        }
    }
    return o;
oom:
    da_optim_free(o);
    da_set_error(DA_ENOMEM, "da_optim_new: out of memory");
    return NULL;
}

void da_optim_free(da_optim *opt)
{
    if (!opt)
        return;
    if (opt->bufs)
        for (int i = 0; i < opt->n * MAX_BUFS; i++)
            da_free(opt->bufs[i]);
    da_free(opt->bufs);
    da_free(opt->step);
    da_free(opt->params);
    da_free(opt);
}

int da_optim_step(da_optim *opt)
{
    if (!opt)
        return da_set_error(DA_EINVAL, "da_optim_step: opt is NULL");
    for (int i = 0; i < opt->n; i++) {
        const da_tensor *p = opt->params[i];
        if (!p->grad)
            continue;
        int ok = p->dtype == DA_F32 ? da_all_finite_f32(p->grad, p->size)
                                    : da_all_finite(p->grad, p->size);
        if (!ok)
            return da_set_error(DA_ENAN, "da_optim_step: NaN or Inf in the gradient of "
                                         "parameter %d (no parameter updated)", i);
    }
    for (int i = 0; i < opt->n; i++) {
        da_tensor *p = opt->params[i];
        void **b = opt->bufs + (size_t)i * MAX_BUFS;
        if (!p->grad)
            continue;
        long t = ++opt->step[i];
        if (opt->cfg.kind == DA_OPTIM_SGD)
            da_sgd_update(&opt->cfg, p, b[0], t);
        else
            da_adam_update(&opt->cfg, p, b[0], b[1], b[2], t);
    }
    opt->steps++;
    return DA_OK;
}

void da_optim_zero_grad(da_optim *opt)
{
    if (!opt)
        return;
    for (int i = 0; i < opt->n; i++)
        da_tensor_zero_grad(opt->params[i]);
}

int da_optim_set_lr(da_optim *opt, double lr)
{
    if (!opt)
        return da_set_error(DA_EINVAL, "da_optim_set_lr: opt is NULL");
    if (!isfinite(lr) || lr < 0)
        return da_set_error(DA_ERANGE, "da_optim_set_lr: lr = %g (need finite, >= 0)", lr);
    opt->cfg.lr = lr;
    return DA_OK;
}

double da_optim_get_lr(const da_optim *opt) { return opt->cfg.lr; }

long da_optim_steps(const da_optim *opt) { return opt->steps; }

const da_optim_cfg *da_optim_get_cfg(const da_optim *opt) { return &opt->cfg; }

/* ---- checkpoint state ---- */

static size_t buffer_bytes(const da_optim *o, int i)
{
    return (size_t)o->params[i]->size * da_dtype_size(o->params[i]->dtype);
}

size_t da_optim_state_size(const da_optim *opt)
{
    size_t n = sizeof(state_header) + (size_t)opt->n * sizeof(state_param);
    for (int i = 0; i < opt->n; i++)
        n += (size_t)opt->n_bufs * buffer_bytes(opt, i);
    return n;
}

int da_optim_state_save(const da_optim *opt, void *buf, size_t size)
{
    if (!opt || !buf)
        return da_set_error(DA_EINVAL, "da_optim_state_save: NULL argument");
    if (size != da_optim_state_size(opt))
        return da_set_error(DA_ERANGE, "da_optim_state_save: buffer of %zu bytes, need %zu",
                            size, da_optim_state_size(opt));
    unsigned char *out = buf;
    state_header h = {STATE_MAGIC, STATE_VERSION, (uint32_t)opt->cfg.kind,
                      (uint32_t)opt->n, (uint32_t)opt->n_bufs, 0, opt->steps};
    memcpy(out, &h, sizeof h);
    out += sizeof h;
    for (int i = 0; i < opt->n; i++) {
        state_param r = {(int32_t)opt->params[i]->dtype, 0, opt->params[i]->size,
                         opt->step[i]};
        memcpy(out, &r, sizeof r);
        out += sizeof r;
    }
    for (int i = 0; i < opt->n; i++)
        for (int k = 0; k < opt->n_bufs; k++) {
            memcpy(out, opt->bufs[i * MAX_BUFS + k], buffer_bytes(opt, i));
            out += buffer_bytes(opt, i);
        }
    return DA_OK;
}

int da_optim_state_load(da_optim *opt, const void *buf, size_t size)
{
    if (!opt || !buf)
        return da_set_error(DA_EINVAL, "da_optim_state_load: NULL argument");
    if (size != da_optim_state_size(opt))
        return da_set_error(DA_EFORMAT, "da_optim_state_load: state of %zu bytes, this "
                                        "optimizer needs %zu", size, da_optim_state_size(opt));
    const unsigned char *in = buf;
    state_header h;
    memcpy(&h, in, sizeof h);
    if (h.magic != STATE_MAGIC || h.version != STATE_VERSION)
        return da_set_error(DA_EFORMAT, "da_optim_state_load: bad magic or version");
    if (h.kind != (uint32_t)opt->cfg.kind || h.n_params != (uint32_t)opt->n ||
        h.n_bufs != (uint32_t)opt->n_bufs || h.steps < 0)
        return da_set_error(DA_EFORMAT, "da_optim_state_load: state of another optimizer "
                                        "(kind %u, %u parameters, %u buffers)",
                            h.kind, h.n_params, h.n_bufs);
    const unsigned char *rec = in + sizeof h;
    for (int i = 0; i < opt->n; i++) {
        state_param r;
        memcpy(&r, rec + (size_t)i * sizeof r, sizeof r);
        if (r.dtype != (int32_t)opt->params[i]->dtype || r.size != opt->params[i]->size ||
            r.step < 0)
            return da_set_error(DA_EFORMAT, "da_optim_state_load: parameter %d does not "
                                            "match the saved state", i);
    }
    opt->steps = h.steps;
    for (int i = 0; i < opt->n; i++) {
        state_param r;
        memcpy(&r, rec + (size_t)i * sizeof r, sizeof r);
        opt->step[i] = r.step;
    }
    in = rec + (size_t)opt->n * sizeof(state_param);
    for (int i = 0; i < opt->n; i++)
        for (int k = 0; k < opt->n_bufs; k++) {
            memcpy(opt->bufs[i * MAX_BUFS + k], in, buffer_bytes(opt, i));
            in += buffer_bytes(opt, i);
        }
    return DA_OK;
}

/* ---- clip_grad_norm ---- */

/* sum |g|^q over the grad of p (q finite) or max |g| (q infinite) */
static double grad_norm_part(const da_tensor *p, double q)
{
    double acc = 0;
    DA_DISPATCH(p->dtype, T, {
        const T *g = p->grad;
        for (long i = 0; i < p->size; i++) {
            double a = fabs((double)g[i]);
            if (isinf(q))
                acc = a > acc || isnan(a) ? a : acc;
            else
                acc += q == 2.0 ? a * a : pow(a, q);
        }
    });
    return acc;
}

int da_clip_grad_norm(da_tensor **params, int n_params, double max_norm, double norm_type,
                      double *total_norm)
{
    if (!params || n_params < 0)
        return da_set_error(DA_EINVAL, "da_clip_grad_norm: params NULL or n < 0");
    if (!(max_norm >= 0) || !(norm_type > 0))
        return da_set_error(DA_ERANGE, "da_clip_grad_norm: max_norm = %g, norm_type = %g "
                                       "(need max_norm >= 0, norm_type > 0)",
                            max_norm, norm_type);
    double acc = 0;
    for (int i = 0; i < n_params; i++) {
        if (!params[i])
            return da_set_error(DA_EINVAL, "da_clip_grad_norm: parameter %d is NULL", i);
        if (!params[i]->grad)
            continue;
        double part = grad_norm_part(params[i], norm_type);
        acc = isinf(norm_type) ? (part > acc || isnan(part) ? part : acc) : acc + part;
    }
    double total = isinf(norm_type) ? acc : pow(acc, 1.0 / norm_type);
    if (total_norm)
        *total_norm = total;
    if (!isfinite(total))
        return da_set_error(DA_ENAN, "da_clip_grad_norm: the gradient norm is %g", total);
    double coef = max_norm / (total + 1e-6);
    if (coef > 1.0)
        coef = 1.0;
    for (int i = 0; i < n_params; i++) {
        da_tensor *p = params[i];
        if (!p->grad)
            continue;
        DA_DISPATCH(p->dtype, T, {
            T *g = p->grad;
            const T c = (T)coef;
            for (long k = 0; k < p->size; k++)
                g[k] *= c;
        });
    }
    return DA_OK;
}
