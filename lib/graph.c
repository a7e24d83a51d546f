/* graph.c - define-by-run tape, reverse mode, custom fused ops and da_hessian
 * (DESIGN.md §3).
 *
 * The tape is a singly linked list of nodes in creation order (newest first), held in
 * the ctx. Since every op is recorded after its inputs exist, walking the list from the
 * newest node visits each node after every node that consumes its output, which is a
 * valid reverse topological order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"
#include "alloc.h"

da_node **da_ctx_tape(da_ctx *ctx); /* tensor.c */

int da_graph_record(da_ctx *ctx, const char *name, da_tensor *out, da_tensor **in, int n_in,
                    da_backward_fn backward, da_node **node)
{
    int needs = 0;
    *node = NULL;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad)
            needs = 1;
    out->requires_grad = needs;
    if (!needs)
        return DA_OK;
    if (n_in > DA_MAX_INPUTS)
        return da_set_error(DA_ERANGE, "%s: %d inputs (max %d)", name, n_in, DA_MAX_INPUTS);
    da_node *nd = da_ctx_alloc(ctx, sizeof *nd);
    if (!nd)
        return DA_ENOMEM;
    nd->name = name;
    nd->out = out;
    for (int i = 0; i < n_in; i++)
        nd->in[i] = in[i];
    nd->n_in = n_in;
    nd->backward = backward;
    da_node **tape = da_ctx_tape(ctx);
    nd->prev = *tape;
    *tape = nd;
    out->node = nd;
    *node = nd;
    return DA_OK;
}

static int run_tape(da_ctx *ctx)
{
    for (da_node *nd = *da_ctx_tape(ctx); nd; nd = nd->prev) {
        if (!nd->out->grad)
            continue;
        int rc = nd->backward(nd);
        if (rc)
            return rc;
    }
    return DA_OK;
}

static int seed_grad(da_tensor *out, const double *cot, const char *who)
{
    if (!out->requires_grad)
        return da_set_error(DA_ESTATE, "%s: output does not depend on any tensor that "
                                       "requires a gradient", who);
    if (!da_tensor_grad(out))
        return DA_ENOMEM;
    DA_DISPATCH(out->dtype, T, {
        T *g = out->grad;
        for (long i = 0; i < out->size; i++)
            g[i] += (T)(cot ? cot[i] : 1.0);
    });
    return DA_OK;
}

int da_backward(da_ctx *ctx, da_tensor *loss)
{
    if (!ctx || !loss)
        return da_set_error(DA_EINVAL, "da_backward: NULL ctx or loss");
    if (loss->size != 1)
        return da_set_error(DA_ESHAPE, "da_backward: loss has %ld elements (need a scalar; "
                                       "use da_backward_from)", loss->size);
    int rc = seed_grad(loss, NULL, "da_backward");
    return rc ? rc : run_tape(ctx);
}

int da_backward_from(da_ctx *ctx, da_tensor *out, const double *cotangent)
{
    if (!ctx || !out || !cotangent)
        return da_set_error(DA_EINVAL, "da_backward_from: NULL argument");
    if (!da_all_finite(cotangent, out->size))
        return da_set_error(DA_ENAN, "da_backward_from: NaN or Inf in cotangent");
    int rc = seed_grad(out, cotangent, "da_backward_from");
    return rc ? rc : run_tape(ctx);
}

da_tensor *da_detach(da_ctx *ctx, da_tensor *t)
{
    if (!t) { /* keep the error of the op that failed to make t */
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "da_detach: t is NULL");
        return NULL;
    }
    da_tensor *c = da_ctx_tensor(ctx, t->dtype, t->ndim, t->shape);
    if (c)
        memcpy(c->data, t->data, (size_t)t->size * da_dtype_size(t->dtype));
    return c;
}

/* ---- custom ops ---- */

typedef struct {
    da_custom_args args;
    da_custom_backward backward;
    da_custom_hvp hvp;
} custom_saved;

/* t's values as double: t->data itself for F64, a ctx copy for F32 */
static double *as_double(da_ctx *ctx, const da_tensor *t)
{
    if (t->dtype == DA_F64)
        return t->data;
    double *d = da_ctx_alloc(ctx, (size_t)t->size * sizeof(double));
    if (d)
        da_tensor_copy_to(t, d);
    return d;
}

static int custom_backward(da_node *nd)
{
    custom_saved *cs = nd->saved;
    da_ctx *ctx = cs->args.ctx;
    double *in_grad[DA_MAX_INPUTS] = {0};
    const double *og;
    if (nd->out->dtype == DA_F64) {
        og = nd->out->grad;
    } else {
        double *tmp = da_ctx_alloc(ctx, (size_t)nd->out->size * sizeof(double));
        if (!tmp)
            return DA_ENOMEM;
        const float *g = nd->out->grad;
        for (long i = 0; i < nd->out->size; i++)
            tmp[i] = g[i];
        og = tmp;
    }
    for (int i = 0; i < nd->n_in; i++) {
        da_tensor *t = nd->in[i];
        if (!t->requires_grad)
            continue;
        if (t->dtype == DA_F64)
            in_grad[i] = da_tensor_grad(t);
        else
            in_grad[i] = da_ctx_alloc(ctx, (size_t)t->size * sizeof(double));
        if (!in_grad[i])
            return DA_ENOMEM;
    }
    int rc = cs->backward(&cs->args, og, in_grad);
    if (rc)
        return rc;
    for (int i = 0; i < nd->n_in; i++) {
        da_tensor *t = nd->in[i];
        if (!in_grad[i] || t->dtype == DA_F64)
            continue;
        float *g = da_tensor_grad(t);
        if (!g)
            return DA_ENOMEM;
        for (long k = 0; k < t->size; k++)
            g[k] += (float)in_grad[i][k];
    }
    return DA_OK;
}

da_tensor *da_op_custom(da_ctx *ctx, const char *name, da_tensor **in, int n_in,
                        int out_ndim, const int *out_shape, da_custom_forward forward,
                        da_custom_backward backward, da_custom_hvp hvp, void *state)
{
    if (!name)
        name = "da_op_custom";
    if (!ctx || !in || !forward || !backward || n_in < 1 || n_in > DA_MAX_INPUTS) {
        da_set_error(DA_EINVAL, "%s: NULL ctx/inputs/callbacks or n_in %d outside [1, %d]",
                     name, n_in, DA_MAX_INPUTS);
        return NULL;
    }
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) {
            if (!da_last_error_code())
                da_set_error(DA_EINVAL, "%s: input %d is NULL", name, i);
            return NULL;
        }
        if (in[i]->dtype != in[0]->dtype) {
            da_set_error(DA_EDTYPE, "%s: input %d has another dtype than input 0", name, i);
            return NULL;
        }
    }
    da_tensor *out = da_ctx_tensor(ctx, in[0]->dtype, out_ndim, out_shape);
    custom_saved *cs = da_ctx_alloc(ctx, sizeof *cs);
    const double **in_data = da_ctx_alloc(ctx, (size_t)n_in * sizeof *in_data);
    if (!out || !cs || !in_data)
        return NULL;
    for (int i = 0; i < n_in; i++)
        if (!(in_data[i] = as_double(ctx, in[i])))
            return NULL;
    cs->args = (da_custom_args){.n_in = n_in,
                                .in = (const da_tensor *const *)in,
                                .in_data = in_data,
                                .out = out,
                                .state = state,
                                .ctx = ctx};
    cs->backward = backward;
    cs->hvp = hvp;
    double *od = out->dtype == DA_F64 ? out->data
                                      : da_ctx_alloc(ctx, (size_t)out->size * sizeof(double));
    if (!od)
        return NULL;
    if (forward(&cs->args, od))
        return NULL;
    if (out->dtype == DA_F32)
        da_tensor_fill_from(out, od);
    da_node *nd;
    if (da_graph_record(ctx, name, out, in, n_in, custom_backward, &nd))
        return NULL;
    if (nd) {
        /* the args keep pointers to the inputs: copy the array into the node */
        cs->args.in = (const da_tensor *const *)nd->in;
        nd->saved = cs;
    }
    return out;
}

/* ---- fused scalar losses ---- */

typedef struct {
    da_loss_fn loss;
    da_custom_hvp hvp;
    void *state;  /* the caller's */
    double *grad; /* [in[0]->size] from the forward; NULL when in[0] needs no gradient */
} loss_saved;

/* the args as the caller's callbacks see them: with the caller's state */
static da_custom_args caller_args(const da_custom_args *a)
{
    da_custom_args c = *a;
    c.state = ((const loss_saved *)a->state)->state;
    return c;
}

static int loss_forward(da_custom_args *a, double *out)
{
    loss_saved *ls = a->state;
    const da_tensor *x = a->in[0];
    if (x->requires_grad &&
        !(ls->grad = da_ctx_alloc(a->ctx, (size_t)x->size * sizeof *ls->grad)))
        return DA_ENOMEM;
    da_custom_args c = caller_args(a);
    return ls->loss(&c, out, ls->grad);
}

static int loss_backward(da_custom_args *a, const double *og, double *const *ig)
{
    const loss_saved *ls = a->state;
    if (!ig[0])
        return DA_OK;
    if (!ls->grad)
        return da_set_error(DA_ESTATE, "loss: input 0 needed no gradient at the forward");
    for (long i = 0; i < a->in[0]->size; i++)
        ig[0][i] += og[0] * ls->grad[i];
    return DA_OK;
}

static int loss_hvp(da_custom_args *a, const double *v, double *hv)
{
    da_custom_args c = caller_args(a);
    return ((const loss_saved *)a->state)->hvp(&c, v, hv);
}

da_tensor *da_op_loss(da_ctx *ctx, const char *name, da_tensor **in, int n_in, da_loss_fn loss,
                      da_custom_hvp hvp, void *state)
{
    if (!ctx || !loss) {
        da_set_error(DA_EINVAL, "%s: NULL ctx or loss callback", name ? name : "da_op_loss");
        return NULL;
    }
    loss_saved *ls = da_ctx_alloc(ctx, sizeof *ls);
    if (!ls)
        return NULL;
    *ls = (loss_saved){.loss = loss, .hvp = hvp, .state = state};
    int one = 1;
    return da_op_custom(ctx, name ? name : "da_op_loss", in, n_in, 0, &one, loss_forward,
                        loss_backward, hvp ? loss_hvp : NULL, ls);
}

/* ---- second order ---- */

/* gradient of f at z into g; returns the output tensor's node through *root */
static int eval_grad(da_ctx *ctx, da_scalar_fn f, void *user, int m, const double *z,
                     double *g, da_node **root, da_tensor **zt)
{
    da_ctx_reset(ctx);
    int shape[1] = {m};
    da_tensor *t = da_ctx_tensor_from(ctx, DA_F64, 1, shape, z);
    if (!t)
        return da_last_error_code();
    t->requires_grad = 1;
    da_tensor *y = f(ctx, t, user);
    if (!y)
        return da_last_error_code() ? da_last_error_code()
                                    : da_set_error(DA_EINVAL, "da_hessian: f returned NULL");
    if (y->size != 1)
        return da_set_error(DA_ESHAPE, "da_hessian: f returned %ld elements, not a scalar",
                            y->size);
    int rc = da_backward(ctx, y);
    if (rc)
        return rc;
    if (g)
        for (int i = 0; i < m; i++)
            g[i] = da_get_grad(t, i);
    if (root)
        *root = y->node;
    if (zt)
        *zt = t;
    return DA_OK;
}

/* the exact path: y = custom_op(z, constants...) with an hvp */
static int exact_hessian(da_node *root, int m, double *H)
{
    custom_saved *cs = root->saved;
    double *e = da_calloc((size_t)m, sizeof *e), *hv = da_malloc((size_t)m * sizeof *hv);
    int rc = DA_OK;
    if (!e || !hv) {
        rc = da_set_error(DA_ENOMEM, "da_hessian: out of memory");
        goto done;
    }
    for (int j = 0; j < m && !rc; j++) {
        e[j] = 1.0;
        rc = cs->hvp(&cs->args, e, hv);
        e[j] = 0.0;
        for (int i = 0; i < m; i++)
            H[i * m + j] = hv[i];
    }
done:
    da_free(e);
    da_free(hv);
    return rc;
}

static int is_exact_path(const da_node *root, const da_tensor *z)
{
    if (!root || root->backward != custom_backward || root->in[0] != z)
        return 0;
    const custom_saved *cs = root->saved;
    if (!cs->hvp)
        return 0;
    for (int i = 1; i < root->n_in; i++)
        if (root->in[i]->requires_grad)
            return 0;
    return 1;
}

int da_hessian(da_ctx *ctx, da_scalar_fn f, void *user, int m, const double *z, double *H,
               da_hessian_method *method)
{
    if (!ctx || !f || !z || !H || m < 1)
        return da_set_error(DA_EINVAL, "da_hessian: NULL argument or m < 1");
    if (!da_all_finite(z, m))
        return da_set_error(DA_ENAN, "da_hessian: NaN or Inf in z");
    da_node *root;
    da_tensor *zt;
    int rc = eval_grad(ctx, f, user, m, z, NULL, &root, &zt);
    if (rc)
        return rc;
    if (is_exact_path(root, zt)) {
        if (method)
            *method = DA_HESSIAN_EXACT;
        rc = exact_hessian(root, m, H);
        da_ctx_reset(ctx);
        return rc;
    }
    if (method)
        *method = DA_HESSIAN_FINITE_DIFF;
    double *zz = da_malloc((size_t)m * sizeof *zz);
    double *gp = da_malloc((size_t)m * sizeof *gp), *gm = da_malloc((size_t)m * sizeof *gm);
    if (!zz || !gp || !gm) {
        rc = da_set_error(DA_ENOMEM, "da_hessian: out of memory");
        goto done;
    }
    memcpy(zz, z, (size_t)m * sizeof *zz);
    for (int j = 0; j < m && !rc; j++) {
        double h = 1e-4 * fmax(1.0, fabs(z[j]));
        zz[j] = z[j] + h;
        rc = eval_grad(ctx, f, user, m, zz, gp, NULL, NULL);
        zz[j] = z[j] - h;
        if (!rc)
            rc = eval_grad(ctx, f, user, m, zz, gm, NULL, NULL);
        zz[j] = z[j];
        for (int i = 0; i < m && !rc; i++)
            H[i * m + j] = (gp[i] - gm[i]) / (2 * h);
    }
    for (int i = 0; i < m && !rc; i++)
        for (int j = 0; j < i; j++) {
            double s = 0.5 * (H[i * m + j] + H[j * m + i]);
            H[i * m + j] = H[j * m + i] = s;
        }
done:
    da_free(zz);
    da_free(gp);
    da_free(gm);
    da_ctx_reset(ctx);
    return rc;
}
