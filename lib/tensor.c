/* tensor.c - tensors and the per-step arena (DESIGN.md §3).
 *
 * The arena is a list of blocks. Allocation bumps an offset in the current block and
 * opens a larger block when it is full. da_ctx_reset() keeps one block of the total
 * size seen so far, so a loop that rebuilds the same graph every step stops
 * allocating after its first step. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"
#include "alloc.h"

#define DA_ARENA_ALIGN 64
#define DA_ARENA_MIN_BLOCK (1u << 20)

typedef struct da_block {
    struct da_block *next;
    size_t cap, used;
    unsigned char *mem; /* [cap], aligned */
} da_block;

struct da_ctx {
    da_block *blocks;  /* current block first */
    size_t high_water; /* largest total use seen in one step */
    da_node *tape;     /* last recorded node (graph.c) */
};

size_t da_dtype_size(da_dtype dtype) { return dtype == DA_F32 ? sizeof(float) : sizeof(double); }

/* ---- shapes ---- */

static int shape_size(int ndim, const int *shape, long *size, const char *who)
{
    long n = 1;
    if (ndim < 0 || ndim > DA_MAX_DIMS)
        return da_set_error(DA_ERANGE, "%s: ndim %d outside [0, %d]", who, ndim, DA_MAX_DIMS);
    if (ndim > 0 && !shape)
        return da_set_error(DA_EINVAL, "%s: shape is NULL", who);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return da_set_error(DA_ESHAPE, "%s: dimension %d has size %d (< 1)", who, i,
                                shape[i]);
        if (n > (1L << 40) / shape[i])
            return da_set_error(DA_ERANGE, "%s: tensor too large", who);
        n *= shape[i];
    }
    *size = n;
    return DA_OK;
}

static void init_header(da_tensor *t, da_dtype dtype, int ndim, const int *shape, long size)
{
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < DA_MAX_DIMS; i++)
        t->shape[i] = i < ndim ? shape[i] : 1;
    t->size = size;
}

int da_same_shape(const da_tensor *a, const da_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

/* ---- tensors outside any ctx ---- */

da_tensor *da_tensor_new(da_dtype dtype, int ndim, const int *shape)
{
    long size;
    if (dtype != DA_F32 && dtype != DA_F64) {
        da_set_error(DA_EDTYPE, "da_tensor_new: unknown dtype %d", (int)dtype);
        return NULL;
    }
    if (shape_size(ndim, shape, &size, "da_tensor_new"))
        return NULL;
    da_tensor *t = da_malloc(sizeof *t);
    void *data = da_calloc((size_t)size, da_dtype_size(dtype));
    if (!t || !data) {
        da_free(t);
        da_free(data);
        da_set_error(DA_ENOMEM, "da_tensor_new: out of memory for %ld elements", size);
        return NULL;
    }
    init_header(t, dtype, ndim, shape, size);
    t->data = data;
    return t;
}

void da_tensor_free(da_tensor *t)
{
    if (!t || t->ctx)
        return;
    da_free(t->data);
    da_free(t->grad);
    da_free(t);
}

void da_tensor_zero_grad(da_tensor *t)
{
    if (t && t->grad)
        memset(t->grad, 0, (size_t)t->size * da_dtype_size(t->dtype));
}

/* ---- element access ---- */

double da_get(const da_tensor *t, long i)
{
    return t->dtype == DA_F32 ? (double)((const float *)t->data)[i]
                              : ((const double *)t->data)[i];
}

void da_set(da_tensor *t, long i, double v)
{
    if (t->dtype == DA_F32)
        ((float *)t->data)[i] = (float)v;
    else
        ((double *)t->data)[i] = v;
}

double da_get_grad(const da_tensor *t, long i)
{
    if (!t->grad)
        return 0.0;
    return t->dtype == DA_F32 ? (double)((const float *)t->grad)[i]
                              : ((const double *)t->grad)[i];
}

void da_tensor_fill_from(da_tensor *t, const double *src)
{
    DA_DISPATCH(t->dtype, T, {
        T *d = t->data;
        for (long i = 0; i < t->size; i++)
            d[i] = (T)src[i];
    });
}

void da_tensor_copy_to(const da_tensor *t, double *dst)
{
    DA_DISPATCH(t->dtype, T, {
        const T *d = t->data;
        for (long i = 0; i < t->size; i++)
            dst[i] = (double)d[i];
    });
}

int da_check_finite(const da_tensor *t, const char *what)
{
    if (!t)
        return da_set_error(DA_EINVAL, "%s: tensor is NULL", what ? what : "da_check_finite");
    int ok = t->dtype == DA_F32 ? da_all_finite_f32(t->data, t->size)
                                : da_all_finite(t->data, t->size);
    if (!ok)
        return da_set_error(DA_ENAN, "%s: NaN or Inf in input", what);
    return DA_OK;
}

/* ---- the arena ---- */

static da_block *block_new(size_t cap)
{
    da_block *b = da_malloc(sizeof *b);
    if (!b)
        return NULL;
    b->mem = da_aligned_alloc(DA_ARENA_ALIGN, cap);
    if (!b->mem) {
        da_free(b);
        return NULL;
    }
    b->cap = cap;
    b->used = 0;
    b->next = NULL;
    return b;
}

static void blocks_free(da_block *b)
{
    while (b) {
        da_block *next = b->next;
        da_free(b->mem);
        da_free(b);
        b = next;
    }
}

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

da_ctx *da_ctx_new(void)
{
    da_ctx *ctx = da_calloc(1, sizeof *ctx);
    if (!ctx)
        da_set_error(DA_ENOMEM, "da_ctx_new: out of memory");
    return ctx;
}

size_t da_ctx_used(const da_ctx *ctx)
{
    size_t n = 0;
    for (const da_block *b = ctx->blocks; b; b = b->next)
        n += b->used;
    return n;
}

size_t da_ctx_reserved(const da_ctx *ctx)
{
    size_t n = 0;
    for (const da_block *b = ctx->blocks; b; b = b->next)
        n += b->cap;
    return n;
}

void da_ctx_reset(da_ctx *ctx)
{
    if (!ctx)
        return;
    size_t used = da_ctx_used(ctx);
    if (used > ctx->high_water)
        ctx->high_water = used;
    if (ctx->blocks && ctx->blocks->next) {
        /* several blocks: replace them by one that holds a whole step */
        size_t cap = round_up(ctx->high_water + ctx->high_water / 8, DA_ARENA_ALIGN);
        blocks_free(ctx->blocks);
        ctx->blocks = block_new(cap); /* NULL is fine: the next alloc retries */
    } else if (ctx->blocks) {
        ctx->blocks->used = 0;
    }
    ctx->tape = NULL;
}

void da_ctx_free(da_ctx *ctx)
{
    if (!ctx)
        return;
    blocks_free(ctx->blocks);
    da_free(ctx);
}

/* For ops that overwrite every byte (lib/ops_nn.c): arena memory and tensors that are
 * not zero-filled. Internal, like da_ctx_tape. */
void *da_ctx_alloc_uninit(da_ctx *ctx, size_t bytes);
da_tensor *da_ctx_tensor_uninit(da_ctx *ctx, da_dtype dtype, int ndim, const int *shape);

void *da_ctx_alloc_uninit(da_ctx *ctx, size_t bytes)
{
    if (!ctx) {
        da_set_error(DA_EINVAL, "da_ctx_alloc: ctx is NULL");
        return NULL;
    }
    if (bytes > SIZE_MAX / 4) { /* round_up and the block doubling below would wrap */
        da_set_error(DA_ENOMEM, "da_ctx_alloc: %zu bytes", bytes);
        return NULL;
    }
    bytes = round_up(bytes ? bytes : 1, DA_ARENA_ALIGN);
    da_block *b = ctx->blocks;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = b ? 2 * b->cap : DA_ARENA_MIN_BLOCK;
        if (cap < bytes)
            cap = round_up(bytes, DA_ARENA_ALIGN);
        da_block *nb = block_new(cap);
        if (!nb) {
            da_set_error(DA_ENOMEM, "da_ctx_alloc: out of memory for %zu bytes", bytes);
            return NULL;
        }
        nb->next = b;
        ctx->blocks = nb;
        b = nb;
    }
    void *p = b->mem + b->used;
    b->used += bytes;
    return p;
}

void *da_ctx_alloc(da_ctx *ctx, size_t bytes)
{
    void *p = da_ctx_alloc_uninit(ctx, bytes);
    if (p)
        memset(p, 0, bytes ? bytes : 1);
    return p;
}

da_tensor *da_ctx_tensor_uninit(da_ctx *ctx, da_dtype dtype, int ndim, const int *shape)
{
    long size;
    if (!ctx) {
        da_set_error(DA_EINVAL, "da_ctx_tensor: ctx is NULL");
        return NULL;
    }
    if (dtype != DA_F32 && dtype != DA_F64) {
        da_set_error(DA_EDTYPE, "da_ctx_tensor: unknown dtype %d", (int)dtype);
        return NULL;
    }
    if (shape_size(ndim, shape, &size, "da_ctx_tensor"))
        return NULL;
    da_tensor *t = da_ctx_alloc(ctx, sizeof *t);
    void *data = t ? da_ctx_alloc_uninit(ctx, (size_t)size * da_dtype_size(dtype)) : NULL;
    if (!data)
        return NULL;
    init_header(t, dtype, ndim, shape, size);
    t->data = data;
    t->ctx = ctx;
    return t;
}

da_tensor *da_ctx_tensor(da_ctx *ctx, da_dtype dtype, int ndim, const int *shape)
{
    da_tensor *t = da_ctx_tensor_uninit(ctx, dtype, ndim, shape);
    if (t)
        memset(t->data, 0, (size_t)t->size * da_dtype_size(dtype));
    return t;
}

da_tensor *da_ctx_tensor_from(da_ctx *ctx, da_dtype dtype, int ndim, const int *shape,
                              const double *values)
{
    if (!values) {
        da_set_error(DA_EINVAL, "da_ctx_tensor_from: values is NULL");
        return NULL;
    }
    da_tensor *t = da_ctx_tensor(ctx, dtype, ndim, shape);
    if (t)
        da_tensor_fill_from(t, values);
    return t;
}

da_tensor *da_scalar(da_ctx *ctx, da_dtype dtype, double value)
{
    return da_ctx_tensor_from(ctx, dtype, 0, NULL, &value);
}

void *da_tensor_grad(da_tensor *t)
{
    if (t->grad)
        return t->grad;
    size_t bytes = (size_t)t->size * da_dtype_size(t->dtype);
    if (t->ctx) {
        t->grad = da_ctx_alloc(t->ctx, bytes);
    } else {
        t->grad = da_calloc((size_t)t->size, da_dtype_size(t->dtype));
        if (!t->grad)
            da_set_error(DA_ENOMEM, "da_tensor_grad: out of memory");
    }
    return t->grad;
}

/* graph.c keeps the tape in the ctx */
da_node **da_ctx_tape(da_ctx *ctx);
da_node **da_ctx_tape(da_ctx *ctx) { return &ctx->tape; }
