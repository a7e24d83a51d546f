/* ops_shape.c - reshape, permute/transpose, slice, concat, index_select
 * (DESIGN.md §3, ops.h).
 *
 * Every op copies into a new contiguous ctx tensor (no views): outputs never alias their
 * inputs. Around an axis a tensor is [outer][n][inner]; slice, concat and index_select
 * move contiguous runs of rows, and their backward adds the output gradient back into
 * the same runs. Indices are checked, never wrapped: slice needs
 * 0 <= start < end <= shape[axis], index_select needs 0 <= index[k] < shape[axis].
 * da_concat of more than DA_MAX_INPUTS tensors concatenates groups first. */
#include <limits.h>
#include <string.h>

#include "ops.h"
#include "ops_util.h"

/* p + off elements of dtype dt */
static void *elem_at(void *p, long off, da_dtype dt)
{
    return (char *)p + off * (long)da_dtype_size(dt);
}

/* dst[i*dst_ld + j] = src[i*src_ld + j] for i < outer, j < len */
static void rows_copy(da_dtype dt, void *dst, long dst_ld, const void *src, long src_ld,
                      long outer, long len)
{
    const size_t es = da_dtype_size(dt);
    const int par = outer > 1 && outer * len >= OPS_PAR_MIN;
    OPS_PRAGMA(omp parallel for if(par))
    for (long i = 0; i < outer; i++)
        memcpy((char *)dst + (size_t)(i * dst_ld) * es,
               (const char *)src + (size_t)(i * src_ld) * es, (size_t)len * es);
}

/* dst[i*dst_ld + j] += src[i*src_ld + j] for i < outer, j < len */
static void rows_add(da_dtype dt, void *dst, long dst_ld, const void *src, long src_ld,
                     long outer, long len)
{
    const int par = outer * len >= OPS_PAR_MIN;
    DA_DISPATCH(dt, T, {
        T *d = dst;
        const T *s = src;
        OPS_PRAGMA(omp parallel for simd collapse(2) if(parallel: par))
        for (long i = 0; i < outer; i++)
            for (long j = 0; j < len; j++)
                d[i * dst_ld + j] += s[i * src_ld + j];
    });
}

/* ---- reshape ---- */

static int reshape_backward(da_node *nd)
{
    void *gx = da_tensor_grad(nd->in[0]);
    if (!gx)
        return DA_ENOMEM;
    rows_add(nd->out->dtype, gx, 0, nd->out->grad, 0, 1, nd->out->size);
    return DA_OK;
}

/* the target shape with the -1 entry inferred */
static int reshape_shape(const da_tensor *a, int ndim, const int *shape, int *out)
{
    char buf[64];
    long known = 1;
    int infer = -1;
    if (ndim < 0 || ndim > DA_MAX_DIMS)
        return da_set_error(DA_ERANGE, "da_reshape: ndim %d outside [0, %d]", ndim, DA_MAX_DIMS);
    if (ndim > 0 && !shape)
        return da_set_error(DA_EINVAL, "da_reshape: shape is NULL");
    for (int d = 0; d < ndim; d++) {
        out[d] = shape[d];
        if (shape[d] == -1 && infer < 0)
            infer = d;
        else if (shape[d] >= 1)
            known *= shape[d];
        else
            return da_set_error(DA_ESHAPE, "da_reshape: entry %d is %d (need >= 1, or one -1)",
                                d, shape[d]);
    }
    if (infer >= 0) {
        if (a->size % known)
            return da_set_error(DA_ESHAPE, "da_reshape: cannot infer entry %d: %ld elements "
                                "of %s are not a multiple of %ld", infer, a->size,
                                ops_shape_str(a, buf, sizeof buf), known);
        out[infer] = (int)(a->size / known);
        known = a->size;
    }
    if (known != a->size)
        return da_set_error(DA_ESHAPE, "da_reshape: %ld elements of %s do not fill %ld", a->size,
                            ops_shape_str(a, buf, sizeof buf), known);
    return DA_OK;
}

da_tensor *da_reshape(da_ctx *ctx, da_tensor *a, int ndim, const int *shape)
{
    int target[DA_MAX_DIMS];
    if (ops_check_inputs(ctx, "da_reshape", &a, 1) || reshape_shape(a, ndim, shape, target))
        return NULL;
    da_tensor *out = da_ctx_tensor(ctx, a->dtype, ndim, target);
    if (!out)
        return NULL;
    memcpy(out->data, a->data, (size_t)a->size * da_dtype_size(a->dtype));
    da_node *nd;
    if (da_graph_record(ctx, "da_reshape", out, &a, 1, reshape_backward, &nd))
        return NULL;
    return out;
}

/* ---- permute, transpose ---- */

/* walk over the output of a permuted by perm; operand 0 = a */
static void permute_walk(ops_walk *w, const da_tensor *a, const int *perm)
{
    int shape[DA_MAX_DIMS];
    long stride[DA_MAX_DIMS];
    const int pad = DA_MAX_DIMS - a->ndim;
    long s = 1;
    for (int d = a->ndim - 1; d >= 0; d--) {
        stride[d] = s;
        s *= a->shape[d];
    }
    for (int i = 0; i < a->ndim; i++)
        shape[i] = a->shape[perm[i]];
    ops_walk_init(w, a->ndim, shape);
    w->flat = 1;
    for (int i = 0; i < a->ndim; i++) {
        w->st[0][pad + i] = stride[perm[i]];
        if (perm[i] != i)
            w->flat = 0;
    }
}

static int permute_backward(da_node *nd)
{
    da_tensor *a = nd->in[0];
    ops_walk w;
    void *gx_v = da_tensor_grad(nd->in[0]);
    if (!gx_v)
        return DA_ENOMEM;
    permute_walk(&w, a, nd->iparam);
    const int par = w.size >= OPS_PAR_MIN;
    DA_DISPATCH(a->dtype, T, {
        T *gx = gx_v;
        const T *g = nd->out->grad;
        OPS_WALK(&w, if(parallel: par), gx[k0] += g[oi];);
    });
    return DA_OK;
}

static da_tensor *permute(da_ctx *ctx, const char *name, da_tensor *a, const int *perm)
{
    int seen[DA_MAX_DIMS] = {0}, shape[DA_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= a->ndim || seen[perm[i]]++) {
            da_set_error(DA_ERANGE, "%s: perm[%d] = %d repeats or is outside [0, %d)", name, i,
                         perm[i], a->ndim);
            return NULL;
        }
        shape[i] = a->shape[perm[i]];
    }
    da_tensor *out = da_ctx_tensor(ctx, a->dtype, a->ndim, shape);
    if (!out)
        return NULL;
    ops_walk w;
    permute_walk(&w, a, perm);
    const int par = w.size >= OPS_PAR_MIN;
    DA_DISPATCH(a->dtype, T, {
        const T *x = a->data;
        T *o = out->data;
        OPS_WALK(&w, if(parallel: par), o[oi] = x[k0];);
    });
    da_node *nd;
    if (da_graph_record(ctx, name, out, &a, 1, permute_backward, &nd))
        return NULL;
    for (int i = 0; nd && i < a->ndim; i++)
        nd->iparam[i] = perm[i];
    return out;
}

da_tensor *da_permute(da_ctx *ctx, da_tensor *a, const int *perm)
{
    if (ops_check_inputs(ctx, "da_permute", &a, 1))
        return NULL;
    if (a->ndim > 0 && !perm) {
        da_set_error(DA_EINVAL, "da_permute: perm is NULL");
        return NULL;
    }
    return permute(ctx, "da_permute", a, perm);
}

da_tensor *da_transpose(da_ctx *ctx, da_tensor *a, int axis0, int axis1)
{
    int perm[DA_MAX_DIMS], ax0, ax1;
    if (ops_check_inputs(ctx, "da_transpose", &a, 1) ||
        ops_axis("da_transpose", a->ndim, axis0, &ax0) ||
        ops_axis("da_transpose", a->ndim, axis1, &ax1))
        return NULL;
    for (int i = 0; i < a->ndim; i++)
        perm[i] = i;
    perm[ax0] = ax1;
    perm[ax1] = ax0;
    return permute(ctx, "da_transpose", a, perm);
}

/* ---- slice ---- */

static int slice_backward(da_node *nd)
{
    da_tensor *a = nd->in[0];
    long outer, n, inner;
    const long start = nd->iparam[1], len = nd->out->shape[nd->iparam[0]];
    void *gx = da_tensor_grad(nd->in[0]);
    if (!gx)
        return DA_ENOMEM;
    ops_split(a, nd->iparam[0], &outer, &n, &inner);
    rows_add(a->dtype, elem_at(gx, start * inner, a->dtype), n * inner, nd->out->grad,
             len * inner, outer, len * inner);
    return DA_OK;
}

da_tensor *da_slice(da_ctx *ctx, da_tensor *a, int axis, int start, int end)
{
    int ax;
    long outer, n, inner;
    if (ops_check_inputs(ctx, "da_slice", &a, 1) || ops_axis("da_slice", a->ndim, axis, &ax))
        return NULL;
    if (start < 0 || end > a->shape[ax] || start >= end) {
        da_set_error(DA_ERANGE, "da_slice: [%d, %d) is not a non-empty range of [0, %d)", start,
                     end, a->shape[ax]);
        return NULL;
    }
    int shape[DA_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[ax] = end - start;
    da_tensor *out = da_ctx_tensor(ctx, a->dtype, a->ndim, shape);
    if (!out)
        return NULL;
    ops_split(a, ax, &outer, &n, &inner);
    const long len = end - start;
    rows_copy(a->dtype, out->data, len * inner, elem_at(a->data, start * inner, a->dtype),
              n * inner, outer, len * inner);
    da_node *nd;
    if (da_graph_record(ctx, "da_slice", out, &a, 1, slice_backward, &nd))
        return NULL;
    if (nd) {
        nd->iparam[0] = ax;
        nd->iparam[1] = start;
    }
    return out;
}

/* ---- concat ---- */

static int concat_backward(da_node *nd)
{
    const int ax = nd->iparam[0];
    long outer, total, inner, off = 0;
    ops_split(nd->out, ax, &outer, &total, &inner);
    for (int t = 0; t < nd->n_in; t++) {
        da_tensor *x = nd->in[t];
        const long len = x->shape[ax];
        if (x->requires_grad) {
            void *gx = da_tensor_grad(nd->in[t]);
            if (!gx)
                return DA_ENOMEM;
            rows_add(x->dtype, gx, len * inner, elem_at(nd->out->grad, off * inner, x->dtype),
                     total * inner, outer, len * inner);
        }
        off += len;
    }
    return DA_OK;
}

/* shapes agree except along ax; *total = sum of the sizes along ax */
static int concat_check(da_tensor **ts, int n, int ax, long *total)
{
    char b0[64], b1[64];
    *total = 0;
    for (int t = 0; t < n; t++) {
        int same = ts[t]->ndim == ts[0]->ndim;
        for (int d = 0; same && d < ts[0]->ndim; d++)
            same = d == ax || ts[t]->shape[d] == ts[0]->shape[d];
        if (!same)
            return da_set_error(DA_ESHAPE, "da_concat: input %d %s does not match input 0 %s "
                                "outside axis %d", t, ops_shape_str(ts[t], b0, sizeof b0),
                                ops_shape_str(ts[0], b1, sizeof b1), ax);
        *total += ts[t]->shape[ax];
    }
    if (*total > INT_MAX)
        return da_set_error(DA_ERANGE, "da_concat: %ld elements along axis %d", *total, ax);
    return DA_OK;
}

da_tensor *da_concat(da_ctx *ctx, da_tensor **ts, int n, int axis)
{
    int ax;
    long total, outer, n0, inner;
    if (!ctx || !ts || n < 1) {
        da_set_error(DA_EINVAL, "da_concat: NULL ctx or list, or n = %d < 1", n);
        return NULL;
    }
    if (ops_check_inputs(ctx, "da_concat", ts, n) ||
        ops_axis("da_concat", ts[0]->ndim, axis, &ax) || concat_check(ts, n, ax, &total))
        return NULL;
    if (n > DA_MAX_INPUTS) {
        /* a graph node has at most DA_MAX_INPUTS inputs: concatenate groups first */
        da_tensor *groups[DA_MAX_INPUTS];
        const int per = (n + DA_MAX_INPUTS - 1) / DA_MAX_INPUTS;
        int ng = 0;
        for (int s = 0; s < n; s += per)
            if (!(groups[ng++] = da_concat(ctx, ts + s, n - s < per ? n - s : per, ax)))
                return NULL;
        return da_concat(ctx, groups, ng, ax);
    }
    int shape[DA_MAX_DIMS];
    memcpy(shape, ts[0]->shape, sizeof shape);
    shape[ax] = (int)total;
    da_tensor *out = da_ctx_tensor(ctx, ts[0]->dtype, ts[0]->ndim, shape);
    if (!out)
        return NULL;
    ops_split(out, ax, &outer, &n0, &inner);
    for (int t = 0, off = 0; t < n; off += ts[t]->shape[ax], t++)
        rows_copy(out->dtype, elem_at(out->data, off * inner, out->dtype), total * inner,
                  ts[t]->data, ts[t]->shape[ax] * inner, outer, ts[t]->shape[ax] * inner);
    da_node *nd;
    if (da_graph_record(ctx, "da_concat", out, ts, n, concat_backward, &nd))
        return NULL;
    if (nd)
        nd->iparam[0] = ax;
    return out;
}

/* ---- index_select ---- */

static int index_select_backward(da_node *nd)
{
    da_tensor *a = nd->in[0];
    const int ax = nd->iparam[0], *index = nd->saved;
    long outer, dim, inner;
    const long m = nd->out->shape[ax];
    void *gx_v = da_tensor_grad(nd->in[0]);
    if (!gx_v)
        return DA_ENOMEM;
    ops_split(a, ax, &outer, &dim, &inner);
    const int par = outer > 1 && nd->out->size >= OPS_PAR_MIN;
    DA_DISPATCH(a->dtype, T, {
        T *gx = gx_v;
        const T *g = nd->out->grad;
        /* parallel over i only: repeated indices add into the same rows */
        OPS_PRAGMA(omp parallel for if(par))
        for (long i = 0; i < outer; i++)
            for (long k = 0; k < m; k++)
                for (long j = 0; j < inner; j++)
                    gx[(i * dim + index[k]) * inner + j] += g[(i * m + k) * inner + j];
    });
    return DA_OK;
}

da_tensor *da_index_select(da_ctx *ctx, da_tensor *a, int axis, const int *index, int n)
{
    int ax;
    long outer, dim, inner;
    if (ops_check_inputs(ctx, "da_index_select", &a, 1) ||
        ops_axis("da_index_select", a->ndim, axis, &ax))
        return NULL;
    if (!index || n < 1) {
        da_set_error(n < 1 ? DA_ERANGE : DA_EINVAL, "da_index_select: %s",
                     n < 1 ? "n < 1" : "index is NULL");
        return NULL;
    }
    for (int k = 0; k < n; k++)
        if (index[k] < 0 || index[k] >= a->shape[ax]) {
            da_set_error(DA_ERANGE, "da_index_select: index[%d] = %d outside [0, %d)", k,
                         index[k], a->shape[ax]);
            return NULL;
        }
    int shape[DA_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[ax] = n;
    da_tensor *out = da_ctx_tensor(ctx, a->dtype, a->ndim, shape);
    int *saved = da_ctx_alloc(ctx, (size_t)n * sizeof *saved);
    if (!out || !saved)
        return NULL;
    memcpy(saved, index, (size_t)n * sizeof *saved);
    ops_split(a, ax, &outer, &dim, &inner);
    const int par = out->size >= OPS_PAR_MIN;
    DA_DISPATCH(a->dtype, T, {
        const T *x = a->data;
        T *o = out->data;
        OPS_PRAGMA(omp parallel for collapse(2) if(par))
        for (long i = 0; i < outer; i++)
            for (long k = 0; k < n; k++)
                for (long j = 0; j < inner; j++)
                    o[(i * n + k) * inner + j] = x[(i * dim + saved[k]) * inner + j];
    });
    da_node *nd;
    if (da_graph_record(ctx, "da_index_select", out, &a, 1, index_select_backward, &nd))
        return NULL;
    if (nd) {
        nd->iparam[0] = ax;
        nd->saved = saved;
    }
    return out;
}
