/* layers.c - layers, initialisers and the sequential model builder (see layers.h).
 *
 * Initialisers: PyTorch's default for nn.Linear / nn.Conv2d (kaiming_uniform_ with
 * a = sqrt(5), He et al. 2015 eq. 16 with gain sqrt(2 / (1 + a^2)), which gives the
 * bound 1/sqrt(fan_in); bias with the same bound), He et al. 2015 (ReLU gain sqrt(2))
 * and Glorot & Bengio 2010 (eq. 16). */
#include <math.h>
#include <stdlib.h>

#include "layers.h"
#include "alloc.h"
#include "precond.h"

struct da_model {
    da_dtype dtype;
    int n_layers, cap_layers;
    da_layer *layers;   /* [cap_layers] */
    int n_params;
    da_tensor **params; /* [n_params], borrowed pointers to the layers' W and b */
};

da_model *da_model_new(da_dtype dtype)
{
    if (dtype != DA_F32 && dtype != DA_F64) {
        da_set_error(DA_EDTYPE, "da_model_new: unknown dtype %d", (int)dtype);
        return NULL;
    }
    da_model *m = da_calloc(1, sizeof *m);
    if (!m) {
        da_set_error(DA_ENOMEM, "da_model_new: out of memory");
        return NULL;
    }
    m->dtype = dtype;
    return m;
}

void da_model_free(da_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_layers; i++) {
        da_tensor_free(m->layers[i].W);
        da_tensor_free(m->layers[i].b);
    }
    da_free(m->layers);
    da_free(m->params);
    da_free(m);
}

/* append a layer (copied) and register its parameters */
static int push_layer(da_model *m, const da_layer *l)
{
    if (m->n_layers == m->cap_layers) {
        int cap = m->cap_layers ? 2 * m->cap_layers : 8;
        da_layer *nl = da_realloc(m->layers, (size_t)cap * sizeof *nl);
        if (!nl)
            return da_set_error(DA_ENOMEM, "da_model: out of memory");
        m->layers = nl;
        m->cap_layers = cap;
    }
    int np = m->n_params + (l->W != NULL) + (l->b != NULL);
    if (np > m->n_params) {
        da_tensor **p = da_realloc(m->params, (size_t)np * sizeof *p);
        if (!p)
            return da_set_error(DA_ENOMEM, "da_model: out of memory");
        m->params = p;
        if (l->W)
            m->params[m->n_params++] = l->W;
        if (l->b)
            m->params[m->n_params++] = l->b;
    }
    m->layers[m->n_layers++] = *l;
    return DA_OK;
}

/* fill W (fan_in, fan_out) and b by the rule of init */
static void init_params(da_tensor *W, da_tensor *b, int fan_in, int fan_out, da_init init,
                        da_rng *rng)
{
    double bound = 0, std = 0, b_bound = 0;
    switch (init) {
    case DA_INIT_TORCH_DEFAULT: bound = b_bound = 1 / sqrt(fan_in); break;
    case DA_INIT_KAIMING_UNIFORM: bound = sqrt(6.0 / fan_in); break;
    case DA_INIT_KAIMING_NORMAL: std = sqrt(2.0 / fan_in); break;
    case DA_INIT_XAVIER_UNIFORM: bound = sqrt(6.0 / (fan_in + fan_out)); break;
    case DA_INIT_XAVIER_NORMAL: std = sqrt(2.0 / (fan_in + fan_out)); break;
    }
    for (long i = 0; i < W->size; i++)
        da_set(W, i, std > 0 ? std * da_rng_normal(rng)
                             : bound * (2 * da_rng_uniform(rng) - 1));
    for (long i = 0; i < b->size; i++)
        da_set(b, i, b_bound * (2 * da_rng_uniform(rng) - 1));
}

/* a layer with parameters W [wshape] and b [out] */
static int add_param_layer(da_model *m, const char *who, da_layer l, int wndim,
                           const int *wshape, int fan_in, int fan_out, da_init init,
                           da_rng *rng)
{
    if (init < DA_INIT_TORCH_DEFAULT || init > DA_INIT_XAVIER_NORMAL)
        return da_set_error(DA_EINVAL, "%s: unknown init %d", who, (int)init);
    l.W = da_tensor_new(m->dtype, wndim, wshape);
    l.b = da_tensor_new(m->dtype, 1, &l.out);
    if (!l.W || !l.b) {
        da_tensor_free(l.W);
        da_tensor_free(l.b);
        return da_last_error_code();
    }
    l.W->requires_grad = l.b->requires_grad = 1;
    init_params(l.W, l.b, fan_in, fan_out, init, rng);
    int rc = push_layer(m, &l);
    if (rc) {
        da_tensor_free(l.W);
        da_tensor_free(l.b);
    }
    return rc;
}

int da_model_add_linear(da_model *m, int in, int out, da_init init, da_rng *rng)
{
    const char *who = "da_model_add_linear";
    if (!m || !rng)
        return da_set_error(DA_EINVAL, "%s: NULL model or rng", who);
    if (in < 1 || out < 1)
        return da_set_error(DA_ERANGE, "%s: in %d and out %d must be >= 1", who, in, out);
    da_layer l = {.kind = DA_LAYER_LINEAR, .in = in, .out = out};
    int wshape[2] = {out, in};
    return add_param_layer(m, who, l, 2, wshape, in, out, init, rng);
}

int da_model_add_conv2d(da_model *m, int in_ch, int out_ch, int k, int stride, int pad,
                        da_init init, da_rng *rng)
{
    const char *who = "da_model_add_conv2d";
    if (!m || !rng)
        return da_set_error(DA_EINVAL, "%s: NULL model or rng", who);
    if (in_ch < 1 || out_ch < 1 || k < 1 || stride < 1 || pad < 0)
        return da_set_error(DA_ERANGE, "%s: channels %d -> %d, k %d, stride %d, pad %d out "
                                       "of range", who, in_ch, out_ch, k, stride, pad);
    da_layer l = {.kind = DA_LAYER_CONV2D, .in = in_ch, .out = out_ch, .k = k,
                  .stride = stride, .pad = pad};
    int wshape[4] = {out_ch, in_ch, k, k};
    return add_param_layer(m, who, l, 4, wshape, in_ch * k * k, out_ch * k * k, init, rng);
}

static int add_plain_layer(da_model *m, const char *who, da_layer_kind kind, int k, int s)
{
    if (!m)
        return da_set_error(DA_EINVAL, "%s: model is NULL", who);
    if (k < 1 || s < 1)
        return da_set_error(DA_ERANGE, "%s: window %d and stride %d must be >= 1", who, k, s);
    da_layer l = {.kind = kind, .k = k, .stride = s};
    return push_layer(m, &l);
}

int da_model_add_relu(da_model *m)
{
    return add_plain_layer(m, "da_model_add_relu", DA_LAYER_RELU, 1, 1);
}

int da_model_add_maxpool(da_model *m, int k, int stride)
{
    return add_plain_layer(m, "da_model_add_maxpool", DA_LAYER_MAXPOOL, k, stride);
}

int da_model_add_avgpool(da_model *m, int k, int stride)
{
    return add_plain_layer(m, "da_model_add_avgpool", DA_LAYER_AVGPOOL, k, stride);
}

int da_model_add_flatten(da_model *m)
{
    return add_plain_layer(m, "da_model_add_flatten", DA_LAYER_FLATTEN, 1, 1);
}

/* the weight a linear/conv2d layer uses on x: W itself, or W behind the TrAct/ISAAC
 * preconditioning node when the layer is wrapped (da_precond_wrap) */
static da_tensor *layer_weight(da_ctx *ctx, const da_layer *l, da_tensor *x)
{
    if (!l->precond_kind || !x)
        return l->W;
    da_precond_cfg cfg = {.kind = (da_precond_kind)l->precond_kind,
                          .lambda = l->precond_lambda,
                          .regime = DA_PRECOND_AUTO,
                          .stride = l->stride,
                          .pad = l->pad};
    return da_precond_weight(ctx, l->W, x, &cfg);
}

/* layers l[0..n_fused-1] on x: a single layer, or a fused sequence (see layers.h) */
static da_tensor *layer_forward(da_ctx *ctx, const da_layer *l, int n_fused, da_tensor *x)
{
    da_tensor *W = l->W ? layer_weight(ctx, l, x) : NULL;
    switch (l->kind) {
    case DA_LAYER_LINEAR:
        return n_fused > 1 ? da_linear_relu(ctx, x, W, l->b) : da_linear(ctx, x, W, l->b);
    case DA_LAYER_CONV2D:
        if (n_fused == 3)
            return da_conv2d_relu_maxpool(ctx, x, W, l->b, l->stride, l->pad, l[2].k,
                                          l[2].stride);
        return n_fused == 2 ? da_conv2d_relu(ctx, x, W, l->b, l->stride, l->pad)
                            : da_conv2d(ctx, x, W, l->b, l->stride, l->pad);
    case DA_LAYER_RELU: return da_relu(ctx, x);
    case DA_LAYER_MAXPOOL: return da_maxpool2d(ctx, x, l->k, l->stride);
    case DA_LAYER_AVGPOOL: return da_avgpool2d(ctx, x, l->k, l->stride);
    case DA_LAYER_FLATTEN: {
        int shape[2] = {x->shape[0], -1};
        return da_reshape(ctx, x, 2, shape);
    }
    }
    da_set_error(DA_EINVAL, "da_model_forward: unknown layer kind %d", (int)l->kind);
    return NULL;
}

/* how many layers from i on run as one node: linear-relu, conv2d-relu(-maxpool) */
static int fusable(const da_model *m, int i)
{
    const da_layer *l = &m->layers[i];
    int left = m->n_layers - i;
    if ((l->kind != DA_LAYER_LINEAR && l->kind != DA_LAYER_CONV2D) || left < 2 ||
        l[1].kind != DA_LAYER_RELU)
        return 1;
    if (l->kind == DA_LAYER_CONV2D && left >= 3 && l[2].kind == DA_LAYER_MAXPOOL)
        return 3;
    return 2;
}

da_tensor *da_model_forward(da_ctx *ctx, da_model *m, da_tensor *x)
{
    if (!ctx || !m || !x) {
        da_set_error(DA_EINVAL, "da_model_forward: NULL ctx, model or input");
        return NULL;
    }
    if (x->dtype != m->dtype) {
        da_set_error(DA_EDTYPE, "da_model_forward: input dtype differs from the model's");
        return NULL;
    }
    if (m->n_layers == 0) {
        da_set_error(DA_ESTATE, "da_model_forward: the model has no layers");
        return NULL;
    }
    for (int i = 0; i < m->n_layers && x;) {
        int n = fusable(m, i);
        x = layer_forward(ctx, &m->layers[i], n, x);
        i += n;
    }
    return x;
}

int da_model_n_layers(const da_model *m) { return m ? m->n_layers : 0; }

da_layer *da_model_layer(da_model *m, int i)
{
    if (!m || i < 0 || i >= m->n_layers) {
        da_set_error(DA_ERANGE, "da_model_layer: index %d out of range", i);
        return NULL;
    }
    return &m->layers[i];
}

int da_model_n_params(const da_model *m) { return m ? m->n_params : 0; }

da_tensor **da_model_params(da_model *m) { return m ? m->params : NULL; }

long da_model_n_weights(const da_model *m)
{
    long n = 0;
    for (int i = 0; m && i < m->n_params; i++)
        n += m->params[i]->size;
    return n;
}

void da_model_zero_grad(da_model *m)
{
    for (int i = 0; m && i < m->n_params; i++)
        da_tensor_zero_grad(m->params[i]);
}

/* linear layers sizes[0] -> ... -> sizes[n-1] with relu between */
static int add_fc_stack(da_model *m, int n_sizes, const int *sizes, da_rng *rng)
{
    for (int i = 0; i + 1 < n_sizes; i++) {
        int rc = da_model_add_linear(m, sizes[i], sizes[i + 1], DA_INIT_TORCH_DEFAULT, rng);
        if (!rc && i + 2 < n_sizes)
            rc = da_model_add_relu(m);
        if (rc)
            return rc;
    }
    return DA_OK;
}

da_model *da_model_mlp(da_dtype dtype, int n_sizes, const int *sizes, da_rng *rng)
{
    if (!sizes || !rng || n_sizes < 2) {
        da_set_error(DA_EINVAL, "da_model_mlp: NULL sizes/rng or fewer than 2 sizes");
        return NULL;
    }
    da_model *m = da_model_new(dtype);
    if (m && add_fc_stack(m, n_sizes, sizes, rng)) {
        da_model_free(m);
        return NULL;
    }
    return m;
}

da_model *da_model_cnn(da_dtype dtype, int in_ch, int H, int W, int n_conv,
                       const int *channels, int k, int pad, int n_fc, const int *fc,
                       da_rng *rng)
{
    const char *who = "da_model_cnn";
    if (!rng || (n_conv > 0 && !channels) || (n_fc > 0 && !fc) || n_conv < 0 || n_fc < 0 ||
        n_fc > 1000) {
        da_set_error(DA_EINVAL, "%s: NULL channels/fc/rng or negative counts", who);
        return NULL;
    }
    if (in_ch < 1 || H < 1 || W < 1 || k < 1 || pad < 0 || pad >= k) {
        da_set_error(DA_ERANGE, "%s: in_ch %d, H %d, W %d, k %d must be >= 1, pad %d in [0, k)",
                     who, in_ch, H, W, k, pad);
        return NULL;
    }
    da_model *m = da_model_new(dtype);
    int ch = in_ch, rc = m ? DA_OK : DA_ENOMEM;
    for (int i = 0; i < n_conv && !rc; i++) {
        H = (H + 2 * pad - k + 1) / 2; /* conv k x k, then maxpool 2 */
        W = (W + 2 * pad - k + 1) / 2;
        if (H < 1 || W < 1) {
            rc = da_set_error(DA_ESHAPE, "%s: the image vanishes after conv block %d", who, i);
            break;
        }
        rc = da_model_add_conv2d(m, ch, channels[i], k, 1, pad, DA_INIT_TORCH_DEFAULT, rng);
        if (!rc)
            rc = da_model_add_relu(m);
        if (!rc)
            rc = da_model_add_maxpool(m, 2, 2);
        ch = channels[i];
    }
    if (!rc)
        rc = da_model_add_flatten(m);
    if (!rc && n_fc > 0) {
        int *sizes = da_malloc((size_t)(n_fc + 1) * sizeof *sizes);
        if (!sizes) {
            rc = da_set_error(DA_ENOMEM, "%s: out of memory", who);
        } else {
            sizes[0] = ch * H * W;
            for (int i = 0; i < n_fc; i++)
                sizes[i + 1] = fc[i];
            rc = add_fc_stack(m, n_fc + 1, sizes, rng);
            da_free(sizes);
        }
    }
    if (rc) {
        da_model_free(m);
        return NULL;
    }
    return m;
}
