/* tensor.h - tensors, the per-step arena (da_ctx), the define-by-run graph and
 * reverse-mode autodiff (DESIGN.md §3).
 *
 * Ownership:
 *  - da_tensor_new() allocates a tensor outside any ctx (a parameter or a data
 *    buffer); the caller frees it with da_tensor_free(), which also frees its grad.
 *  - Every tensor made by an op, and every graph node, lives in the da_ctx passed to
 *    the op; da_ctx_reset() releases them all at once, da_ctx_free() ends the ctx.
 *    Never da_tensor_free() a ctx tensor.
 *  - The grad of a ctx tensor lives in the ctx; the grad of a parameter is malloc'd on
 *    first use and freed with the parameter. Parameter grads accumulate (+=) across
 *    backward passes until da_tensor_zero_grad().
 *
 * Ops return NULL on error (with da_last_error() set) and accept NULL inputs by
 * returning NULL, so a chain of ops can be checked once at the end. */
#ifndef DA_TENSOR_H
#define DA_TENSOR_H

#include <stddef.h>

#include "error.h"

#define DA_MAX_DIMS 4
#define DA_MAX_INPUTS 8

typedef enum { DA_F32 = 0, DA_F64 = 1 } da_dtype;

typedef struct da_ctx da_ctx;
typedef struct da_node da_node;

typedef struct da_tensor {
    da_dtype dtype;
    int ndim;                /* 0 (scalar) .. DA_MAX_DIMS */
    int shape[DA_MAX_DIMS];  /* unused trailing entries are 1 */
    long size;               /* number of elements */
    void *data;              /* [size] float or double, contiguous row-major */
    void *grad;              /* [size] same dtype, NULL until a gradient arrives */
    int requires_grad;       /* leaf: set by the user; op output: any input requires */
    da_node *node;           /* the op that produced it, NULL for leaves */
    da_ctx *ctx;             /* owning arena, NULL for tensors from da_tensor_new */
} da_tensor;

/* Backward of a node: read out->grad, accumulate (+=) into the grads of the inputs
 * that require a gradient (allocate them with da_tensor_grad()). Return DA_OK or an
 * error code (with da_set_error). */
typedef int (*da_backward_fn)(da_node *node);

struct da_node {
    const char *name;               /* op name, for error messages */
    da_tensor *out;
    da_tensor *in[DA_MAX_INPUTS];
    int n_in;
    da_backward_fn backward;
    void *saved;                    /* op-specific data, allocated in the ctx */
    double fparam[4];               /* op-specific scalars */
    int iparam[8];
    da_node *prev;                  /* previous node on the tape */
};

/* ---- dtype dispatch: one kernel source compiled for float and double ---- */
#define DA_DISPATCH(dtype, T, ...)                                                      \
    do {                                                                                \
        if ((dtype) == DA_F32) {                                                        \
            typedef float T;                                                            \
            __VA_ARGS__                                                                 \
        } else {                                                                        \
            typedef double T;                                                           \
            __VA_ARGS__                                                                 \
        }                                                                               \
    } while (0)

size_t da_dtype_size(da_dtype dtype);

/* ---- tensors outside any ctx (parameters, data) ---- */
/* Zero-filled tensor; shape has ndim entries, each >= 1. NULL on error. */
da_tensor *da_tensor_new(da_dtype dtype, int ndim, const int *shape);
void da_tensor_free(da_tensor *t);                       /* NULL is a no-op */
/* Zero the grad of t (if allocated). */
void da_tensor_zero_grad(da_tensor *t);

/* ---- element access (slow; for tests, I/O and small loops) ---- */
double da_get(const da_tensor *t, long i);
void da_set(da_tensor *t, long i, double v);
double da_get_grad(const da_tensor *t, long i);         /* 0 if no grad */
/* Copy n = t->size values from/to double arrays, converting the dtype. */
void da_tensor_fill_from(da_tensor *t, const double *src);
void da_tensor_copy_to(const da_tensor *t, double *dst);
/* 1 if shapes (ndim and dims) are equal. */
int da_same_shape(const da_tensor *a, const da_tensor *b);
/* 0 if every element of data is finite, else DA_ENAN with a message naming what. */
int da_check_finite(const da_tensor *t, const char *what);

/* ---- the per-step arena ---- */
da_ctx *da_ctx_new(void);
/* Release every tensor and node of the step; memory is kept for the next step (after
 * the first steps, a reset-and-rebuild loop allocates nothing). */
void da_ctx_reset(da_ctx *ctx);
void da_ctx_free(da_ctx *ctx);                           /* NULL is a no-op */
/* Bytes in use / reserved (for tests and benchmarks). */
size_t da_ctx_used(const da_ctx *ctx);
size_t da_ctx_reserved(const da_ctx *ctx);
/* Raw arena allocation, 64-byte aligned, zero-filled; NULL (DA_ENOMEM) on failure. */
void *da_ctx_alloc(da_ctx *ctx, size_t bytes);
/* A zero-filled tensor in the arena, no node, requires_grad 0. */
da_tensor *da_ctx_tensor(da_ctx *ctx, da_dtype dtype, int ndim, const int *shape);
/* A ctx tensor holding a copy of n doubles (converted to dtype). */
da_tensor *da_ctx_tensor_from(da_ctx *ctx, da_dtype dtype, int ndim, const int *shape,
                              const double *values);
/* Scalar constant. */
da_tensor *da_scalar(da_ctx *ctx, da_dtype dtype, double value);

/* ---- the graph ---- */
/* Grad buffer of t, allocated (zero-filled) on first call: in t's ctx for ctx
 * tensors, with malloc for parameters. NULL on allocation failure. */
void *da_tensor_grad(da_tensor *t);
/* Record a node producing out from in[0..n_in-1]: sets out->requires_grad if any
 * input requires a gradient and, if so, appends a node with the given backward and
 * stores it in *node (else *node = NULL). Returns DA_OK or DA_ENOMEM. Used by op
 * implementations; they fill node->saved / fparam / iparam afterwards. */
int da_graph_record(da_ctx *ctx, const char *name, da_tensor *out, da_tensor **in, int n_in,
                    da_backward_fn backward, da_node **node);
/* Reverse mode from a scalar loss: seeds d loss = 1 (added to any existing grad) and
 * runs the tape backwards, skipping nodes whose output received no gradient. Run it
 * once per graph: a second call would add the intermediate gradients again. */
int da_backward(da_ctx *ctx, da_tensor *loss);
/* Reverse mode from any output with a given cotangent (same size as out, double). */
int da_backward_from(da_ctx *ctx, da_tensor *out, const double *cotangent);
/* Cut t from the graph: a ctx copy of t's data with no node and no grad. */
da_tensor *da_detach(da_ctx *ctx, da_tensor *t);

/* ---- custom fused ops (DESIGN.md §3) ----
 * Data passed to the callbacks is always double: the core converts F32 inputs to
 * double before forward and converts the results back, so one double implementation
 * serves both dtypes. in_shapes/in_data describe the inputs. */
typedef struct {
    int n_in;
    const da_tensor *const *in;   /* the input tensors (shapes, sizes) */
    const double *const *in_data; /* [n_in] input values as double */
    const da_tensor *out;         /* shape of the output */
    void *state;                  /* the state pointer given to da_op_custom */
    void *saved;                  /* forward may store here (allocate with da_ctx_alloc) */
    da_ctx *ctx;
} da_custom_args;

/* forward: write out->size doubles to out_data. */
typedef int (*da_custom_forward)(da_custom_args *args, double *out_data);
/* backward: given out_grad (cotangent of the output), ACCUMULATE J_i^T out_grad into
 * in_grad[i] for every i with in_grad[i] != NULL. */
typedef int (*da_custom_backward)(da_custom_args *args, const double *out_grad,
                                  double *const *in_grad);
/* Hessian-vector product for a scalar output, with respect to input 0 only:
 * hv = (d^2 out / d in0^2) v, with v and hv of in[0]->size doubles. */
typedef int (*da_custom_hvp)(da_custom_args *args, const double *v, double *hv);

/* One graph node computing out (out_ndim/out_shape, dtype of in[0]) from the inputs.
 * hvp may be NULL. state is borrowed and must outlive the backward pass. */
da_tensor *da_op_custom(da_ctx *ctx, const char *name, da_tensor **in, int n_in,
                        int out_ndim, const int *out_shape, da_custom_forward forward,
                        da_custom_backward backward, da_custom_hvp hvp, void *state);

/* ---- fused scalar losses: the gradient comes with the value ----
 * loss writes the scalar to *value and, when grad is not NULL (input 0 requires a
 * gradient), d value / d in[0] to grad (in[0]->size doubles, zeroed). The node keeps
 * that gradient; its backward adds out_grad * grad to input 0's gradient (the other
 * inputs are constants: they get none). args->state is the state given here; hvp as for
 * da_op_custom (may be NULL). The output is a scalar tensor of in[0]'s dtype. */
typedef int (*da_loss_fn)(da_custom_args *args, double *value, double *grad);
da_tensor *da_op_loss(da_ctx *ctx, const char *name, da_tensor **in, int n_in, da_loss_fn loss,
                      da_custom_hvp hvp, void *state);

/* ---- second order (DESIGN.md §3) ----
 * f builds a scalar from z inside ctx (z is an F64 leaf of m elements). */
typedef da_tensor *(*da_scalar_fn)(da_ctx *ctx, da_tensor *z, void *user);

typedef enum {
    DA_HESSIAN_EXACT = 0,       /* from the hvp of the (single, custom) op on z's path */
    DA_HESSIAN_FINITE_DIFF = 1  /* central differences of the exact gradient, double */
} da_hessian_method;

/* H [m][m] = d^2 f / dz^2 at z (m doubles). Uses the exact path when f's graph is one
 * custom op with an hvp applied to z (possibly through no other op); otherwise central
 * differences of the exact gradient with step h = 1e-4 * max(1, |z_i|), symmetrised.
 * *method (may be NULL) reports which. ctx is reset by this function. */
int da_hessian(da_ctx *ctx, da_scalar_fn f, void *user, int m, const double *z, double *H,
               da_hessian_method *method);

#endif
