/* gradcheck.c - finite-difference gradient checks (see gradcheck.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "refs.h"
#include "rng.h"

void gc_random(double *x, long n, unsigned long seed, double lo, double hi)
{
    da_rng *r = da_rng_new(seed);
    for (long i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * da_rng_uniform(r);
    da_rng_free(r);
}

static long input_size(const gc_input *in)
{
    long n = 1;
    for (int d = 0; d < in->ndim; d++)
        n *= in->shape[d];
    return n;
}

/* Build leaves of dtype (values from vals[i] or in[i].data), run f. */
static da_tensor *run(da_ctx *ctx, gc_fn f, int n_in, const gc_input *in, double **vals,
                      da_dtype dtype, void *user, da_tensor **leaves)
{
    da_ctx_reset(ctx);
    for (int i = 0; i < n_in; i++) {
        leaves[i] = da_ctx_tensor_from(ctx, dtype, in[i].ndim, in[i].shape,
                                       vals ? vals[i] : in[i].data);
        if (!leaves[i])
            return NULL;
        leaves[i]->requires_grad = in[i].requires_grad;
    }
    return f(ctx, leaves, user);
}

static double contract(const da_tensor *out, const double *c)
{
    double s = 0;
    for (long i = 0; i < out->size; i++)
        s += da_get(out, i) * c[i];
    return s;
}

double gc_check(gc_fn f, int n_in, const gc_input *in, void *user, double eps)
{
    da_ctx *ctx = da_ctx_new();
    da_tensor *leaves[DA_MAX_INPUTS];
    double *vals[DA_MAX_INPUTS] = {0}, *grads[DA_MAX_INPUTS] = {0}, *c = NULL;
    double worst = INFINITY;
    if (!ctx || n_in > DA_MAX_INPUTS)
        goto done;
    for (int i = 0; i < n_in; i++) {
        long n = input_size(&in[i]);
        vals[i] = malloc((size_t)n * sizeof(double));
        grads[i] = malloc((size_t)n * sizeof(double));
        memcpy(vals[i], in[i].data, (size_t)n * sizeof(double));
    }
    da_tensor *out = run(ctx, f, n_in, in, vals, DA_F64, user, leaves);
    if (!out)
        goto done;
    c = malloc((size_t)out->size * sizeof(double));
    gc_random(c, out->size, 12345, -1.0, 1.0);
    if (da_backward_from(ctx, out, c))
        goto done;
    for (int i = 0; i < n_in; i++)
        for (long k = 0; k < leaves[i]->size; k++)
            grads[i][k] = da_get_grad(leaves[i], k);
    worst = 0;
    for (int i = 0; i < n_in; i++) {
        if (!in[i].requires_grad)
            continue;
        long n = input_size(&in[i]);
        double num = 0, den = 1e-300;
        for (long k = 0; k < n; k++) {
            double x0 = vals[i][k];
            vals[i][k] = x0 + eps;
            da_tensor *op = run(ctx, f, n_in, in, vals, DA_F64, user, leaves);
            double lp = op ? contract(op, c) : NAN;
            vals[i][k] = x0 - eps;
            da_tensor *om = run(ctx, f, n_in, in, vals, DA_F64, user, leaves);
            double lm = om ? contract(om, c) : NAN;
            vals[i][k] = x0;
            double fd = (lp - lm) / (2 * eps);
            double d = fabs(fd - grads[i][k]);
            if (!(d <= num))
                num = isnan(d) ? INFINITY : d;
            den = fmax(den, fmax(fabs(fd), fabs(grads[i][k])));
        }
        worst = fmax(worst, num / den);
    }
done:
    for (int i = 0; i < n_in && i < DA_MAX_INPUTS; i++) {
        free(vals[i]);
        free(grads[i]);
    }
    free(c);
    da_ctx_free(ctx);
    return worst;
}

double gc_check_f32(gc_fn f, int n_in, const gc_input *in, void *user)
{
    da_ctx *c64 = da_ctx_new(), *c32 = da_ctx_new();
    da_tensor *l64[DA_MAX_INPUTS], *l32[DA_MAX_INPUTS];
    double worst = INFINITY, *cot = NULL, *a = NULL, *b = NULL;
    da_tensor *o64 = run(c64, f, n_in, in, NULL, DA_F64, user, l64);
    da_tensor *o32 = run(c32, f, n_in, in, NULL, DA_F32, user, l32);
    if (!o64 || !o32 || o64->size != o32->size || o32->dtype != DA_F32)
        goto done;
    cot = malloc((size_t)o64->size * sizeof(double));
    gc_random(cot, o64->size, 12345, -1.0, 1.0);
    if (da_backward_from(c64, o64, cot) || da_backward_from(c32, o32, cot))
        goto done;
    a = malloc((size_t)o64->size * sizeof(double));
    b = malloc((size_t)o64->size * sizeof(double));
    da_tensor_copy_to(o64, a);
    da_tensor_copy_to(o32, b);
    worst = ref_err(b, a, o64->size);
    for (int i = 0; i < n_in; i++) {
        if (!in[i].requires_grad)
            continue;
        long n = l64[i]->size;
        double *ga = malloc((size_t)n * sizeof(double)), *gb = malloc((size_t)n * sizeof(double));
        for (long k = 0; k < n; k++) {
            ga[k] = da_get_grad(l64[i], k);
            gb[k] = da_get_grad(l32[i], k);
        }
        worst = fmax(worst, ref_err(gb, ga, n));
        free(ga);
        free(gb);
    }
done:
    free(cot);
    free(a);
    free(b);
    da_ctx_free(c64);
    da_ctx_free(c32);
    return worst;
}
