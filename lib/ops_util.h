/* ops_util.h - helpers shared by the core ops (lib/ops_elem.c, lib/ops_reduce.c,
 * lib/ops_shape.c). Internal: not installed, every function static inline.
 *
 * OPS_WALK visits a (broadcast or permuted) 4-D index space in row-major order and
 * gives, for up to three operands, the flat offset of each element. */
#ifndef DA_OPS_UTIL_H
#define DA_OPS_UTIL_H

#include <stdio.h>

#include "tensor.h"

/* element count from which a loop runs on OpenMP threads */
#define OPS_PAR_MIN 32768L

#define OPS_PRAGMA(x) _Pragma(#x)

/* NULL ctx or input, or inputs of different dtypes. A NULL input keeps the error of the
 * failed op that produced it (a chain of ops is checked once, at its end). */
static inline int ops_check_inputs(da_ctx *ctx, const char *name, da_tensor *const *t, int n)
{
    if (!ctx)
        return da_set_error(DA_EINVAL, "%s: ctx is NULL", name);
    for (int i = 0; i < n; i++)
        if (!t[i])
            return da_last_error_code() ? da_last_error_code()
                                        : da_set_error(DA_EINVAL, "%s: input %d is NULL",
                                                       name, i);
    for (int i = 1; i < n; i++)
        if (t[i]->dtype != t[0]->dtype)
            return da_set_error(DA_EDTYPE, "%s: input %d is %s but input 0 is %s (use da_cast)",
                                name, i, t[i]->dtype == DA_F32 ? "F32" : "F64",
                                t[0]->dtype == DA_F32 ? "F32" : "F64");
    return DA_OK;
}

/* "[2,3,4]" into buf (for messages) */
static inline const char *ops_shape_str(const da_tensor *t, char *buf, size_t len)
{
    int k = snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && k > 0 && (size_t)k < len; i++)
        k += snprintf(buf + k, len - (size_t)k, i ? ",%d" : "%d", t->shape[i]);
    if (k > 0 && (size_t)k < len)
        snprintf(buf + k, len - (size_t)k, "]");
    return buf;
}

/* axis in [-ndim, ndim) to [0, ndim) */
static inline int ops_axis(const char *name, int ndim, int axis, int *ax)
{
    if (axis < -ndim || axis >= ndim) {
        da_set_error(DA_ERANGE, "%s: axis %d outside [%d, %d)", name, axis, -ndim, ndim);
        return DA_ERANGE;
    }
    *ax = axis < 0 ? axis + ndim : axis;
    return DA_OK;
}

/* t viewed as [outer][n][inner] around axis ax */
static inline void ops_split(const da_tensor *t, int ax, long *outer, long *n, long *inner)
{
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < ax; d++)
        *outer *= t->shape[d];
    for (int d = ax + 1; d < t->ndim; d++)
        *inner *= t->shape[d];
    *n = t->shape[ax];
}

/* 1 (with DA_ENAN set) if the forward of `name` produced NaN values */
static inline int ops_nan_result(const char *name, long nbad)
{
    if (!nbad)
        return 0;
    da_set_error(DA_ENAN, "%s: %ld NaN value(s) in the result (NaN input or a value outside "
                 "the domain)", name, nbad);
    return 1;
}

/* ---- strided walks ---- */
typedef struct {
    long dim[DA_MAX_DIMS];         /* index space, padded with leading ones */
    long st[3][DA_MAX_DIMS];       /* operand k moves by st[k][d] when index d grows */
    long size;                     /* prod(dim) */
    int flat;                      /* every operand is contiguous like the index space */
} ops_walk;

/* index space of ndim dims (leading ones padded), all strides 0 */
static inline void ops_walk_init(ops_walk *w, int ndim, const int *shape)
{
    w->size = 1;
    for (int d = 0; d < DA_MAX_DIMS; d++) {
        int j = d - (DA_MAX_DIMS - ndim);
        w->dim[d] = j >= 0 ? shape[j] : 1;
        w->size *= w->dim[d];
        w->st[0][d] = w->st[1][d] = w->st[2][d] = 0;
    }
    w->flat = 0;
}

/* Visit every index (in row-major order, in parallel under the OpenMP CLAUSES, e.g.
 * `if(parallel: par) reduction(+:nbad)`). The body sees oi (flat index of the index
 * space) and k0, k1, k2 (flat offsets of the operands). The flat case is also a simd
 * loop: every operand offset is oi, so iterations are independent. */
#define OPS_WALK(w, CLAUSES, ...)                                                       \
    do {                                                                                \
        const ops_walk *ow_ = (w);                                                      \
        if (ow_->flat) {                                                                \
            const long n_ = ow_->size;                                                  \
            OPS_PRAGMA(omp parallel for simd CLAUSES)                                        \
            for (long oi = 0; oi < n_; oi++) {                                          \
                const long k0 = oi, k1 = oi, k2 = oi;                                   \
                (void)k0;                                                               \
                (void)k1;                                                               \
                (void)k2;                                                               \
                __VA_ARGS__                                                             \
            }                                                                           \
        } else {                                                                        \
            const long d0_ = ow_->dim[0], d1_ = ow_->dim[1], d2_ = ow_->dim[2],         \
                       d3_ = ow_->dim[3];                                               \
            const long *s0_ = ow_->st[0], *s1_ = ow_->st[1], *s2_ = ow_->st[2];         \
            OPS_PRAGMA(omp parallel for collapse(3) CLAUSES)                            \
            for (long i0_ = 0; i0_ < d0_; i0_++)                                        \
                for (long i1_ = 0; i1_ < d1_; i1_++)                                    \
                    for (long i2_ = 0; i2_ < d2_; i2_++) {                              \
                        const long ob_ = ((i0_ * d1_ + i1_) * d2_ + i2_) * d3_;         \
                        const long b0_ = i0_ * s0_[0] + i1_ * s0_[1] + i2_ * s0_[2];    \
                        const long b1_ = i0_ * s1_[0] + i1_ * s1_[1] + i2_ * s1_[2];    \
                        const long b2_ = i0_ * s2_[0] + i1_ * s2_[1] + i2_ * s2_[2];    \
                        for (long i3_ = 0; i3_ < d3_; i3_++) {                          \
                            const long oi = ob_ + i3_, k0 = b0_ + i3_ * s0_[3],         \
                                       k1 = b1_ + i3_ * s1_[3], k2 = b2_ + i3_ * s2_[3]; \
                            (void)k0;                                                   \
                            (void)k1;                                                   \
                            (void)k2;                                                   \
                            __VA_ARGS__                                                 \
                        }                                                               \
                    }                                                                   \
        }                                                                               \
    } while (0)

#endif
