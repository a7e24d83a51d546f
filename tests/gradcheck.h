/* gradcheck.h - finite-difference gradient checks shared by every test suite.
 *
 * f builds an output tensor from leaf tensors in[0..n_in-1] inside ctx. The check
 * contracts the output with a fixed random cotangent c (L = sum(out * c)), compares the
 * reverse-mode gradient of L for every input with requires_grad against central
 * differences in double, and returns the largest symmetric relative error
 * max_i |g_i - fd_i| / max(max|g|, max|fd|, 1e-300) over the inputs. */
#ifndef DA_TEST_GRADCHECK_H
#define DA_TEST_GRADCHECK_H

#include "tensor.h"

typedef da_tensor *(*gc_fn)(da_ctx *ctx, da_tensor **in, void *user);

typedef struct {
    int ndim;
    int shape[DA_MAX_DIMS];
    const double *data;  /* [prod(shape)] values */
    int requires_grad;   /* 0: a constant input (not checked) */
} gc_input;

/* Gradient check in F64 with central step eps (1e-6 is a good default). Returns the
 * error, or +INFINITY if f failed (message in da_last_error()). */
double gc_check(gc_fn f, int n_in, const gc_input *in, void *user, double eps);
/* Runs f with F32 leaves and with F64 leaves; returns the normwise relative error of
 * the F32 output and gradients against the F64 ones (expect ~1e-6 .. 1e-4). */
double gc_check_f32(gc_fn f, int n_in, const gc_input *in, void *user);
/* n values uniform in [lo, hi) from a fixed seed (reproducible across runs). */
void gc_random(double *x, long n, unsigned long seed, double lo, double hi);

#endif
