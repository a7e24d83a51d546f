/* logicnet.c - difflogic networks: construction, binarization, cross-entropy, hard
 * predictions through the kernels of logic.c, tensor face (logicnet.h); the training
 * forward and backward are in logicnet_train.c. Paper: Petersen et al., NeurIPS 2022:
 * eq. (3) for a neuron, Section 3.2 for GroupSum, Section 3.3 / the public code for the
 * connection schemes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "logicnet_impl.h"
#include "alloc.h"
#include "rng.h"

/* residual initialization: the logit of gate 3 ("a") */
#define RESIDUAL_LOGIT 5.0
#define PREDICT_CHUNK 256

da_logicnet_cfg da_logicnet_default_cfg(int n_inputs, int n_layers, int width, int n_classes)
{
    return (da_logicnet_cfg){.n_inputs = n_inputs, .n_thresholds = 1, .thresholds = NULL,
                             .n_layers = n_layers, .width = width, .n_classes = n_classes,
                             .tau = 1, .connections = DA_LOGIC_RANDOM, .grad_factor = 1,
                             .residual_init = 0, .seed = 0};
}

static int check_cfg(const da_logicnet_cfg *c)
{
    static const char who[] = "da_logicnet_new";
    if (c->n_inputs < 1 || c->n_layers < 1 || c->n_layers > DA_LOGICNET_MAX_LAYERS ||
        c->n_thresholds < 1 || c->n_thresholds > DA_LOGICNET_MAX_THRESHOLDS ||
        c->n_classes < 1 || c->width < 1 || c->width > DA_LOGICNET_MAX_WIDTH)
        return da_set_error(DA_ERANGE, "%s: n_inputs %d, n_thresholds %d, n_layers %d, width "
                            "%d or n_classes %d out of range", who, c->n_inputs,
                            c->n_thresholds, c->n_layers, c->width, c->n_classes);
    long n_bits = (long)c->n_inputs * c->n_thresholds;
    if (n_bits > DA_LOGICNET_MAX_BITS)
        return da_set_error(DA_ERANGE, "%s: %ld input bits (at most %d)", who, n_bits,
                            DA_LOGICNET_MAX_BITS);
    if (c->n_conv < 0 || c->n_conv > DA_LOGICNET_MAX_CONV)
        return da_set_error(DA_ERANGE, "%s: n_conv = %d outside [0, %d]", who, c->n_conv,
                            DA_LOGICNET_MAX_CONV);
    if (c->n_conv && !c->conv)
        return da_set_error(DA_EINVAL, "%s: NULL conv with n_conv = %d", who, c->n_conv);
    if (c->n_conv && ((long)c->image_h * c->image_w != c->n_inputs || c->image_h < 1))
        return da_set_error(DA_ERANGE, "%s: image %d x %d for %d inputs", who, c->image_h,
                            c->image_w, c->n_inputs);
    int rc = c->n_conv ? da_logicnet_conv_chain(c->n_conv, c->conv, c->n_thresholds,
                                                c->image_h, c->image_w, NULL, &n_bits) : DA_OK;
    if (rc)
        return rc;
    if (n_bits > DA_LOGICNET_MAX_BITS)
        return da_set_error(DA_ERANGE, "%s: %ld convolutional outputs (at most %d)", who,
                            n_bits, DA_LOGICNET_MAX_BITS);
    if (c->width % c->n_classes)
        return da_set_error(DA_ERANGE, "%s: width %d is not a multiple of n_classes %d", who,
                            c->width, c->n_classes);
    if (2L * c->width < n_bits)
        return da_set_error(DA_ERANGE, "%s: width %d < half the %ld input bits (some bits "
                            "would be unused)", who, c->width, n_bits);
    if (c->connections != DA_LOGIC_RANDOM && c->connections != DA_LOGIC_UNIQUE)
        return da_set_error(DA_EINVAL, "%s: unknown connection scheme %d", who, c->connections);
    if (c->connections == DA_LOGIC_UNIQUE &&
        (c->width > n_bits * (n_bits - 1) / 2 ||
         (c->n_layers > 1 && c->width > (long)c->width * (c->width - 1) / 2)))
        return da_set_error(DA_ERANGE, "%s: not enough distinct input pairs for %d unique "
                            "connections", who, c->width);
    if (!isfinite(c->tau) || !isfinite(c->grad_factor))
        return da_set_error(DA_ENAN, "%s: tau or grad_factor is NaN or Inf", who);
    if (c->tau <= 0 || c->grad_factor <= 0)
        return da_set_error(DA_ERANGE, "%s: tau = %g and grad_factor = %g must be > 0", who,
                            c->tau, c->grad_factor);
    if (c->thresholds && !da_all_finite(c->thresholds, c->n_thresholds))
        return da_set_error(DA_ENAN, "%s: NaN or Inf threshold", who);
    return DA_OK;
}

/* difflogic's "unique" scheme (see logicnet.h) */
static int connections_unique(da_rng *rng, int in_dim, int out_dim, int *ia, int *ib)
{
    int n = 0;
    for (int start = 0; start < 2 && n < out_dim; start++) /* offset 1: even, then odd */
        for (int i = start; i + 1 < in_dim && n < out_dim; i += 2, n++)
            ia[n] = i, ib[n] = i + 1;
    for (int d = 2; d < in_dim && n < out_dim; d++)
        for (int i = 0; i + d < in_dim && n < out_dim; i++, n++)
            ia[n] = i, ib[n] = i + d;
    int *perm = da_malloc((size_t)out_dim * sizeof *perm), *tmp = da_malloc((size_t)out_dim * sizeof *tmp);
    int rc = perm && tmp ? DA_OK : da_set_error(DA_ENOMEM, "da_logicnet_new: out of memory");
    if (!rc) { /* a random order of the neurons */
        for (int j = 0; j < out_dim; j++)
            perm[j] = j;
        da_rng_shuffle(rng, perm, out_dim);
        for (int j = 0; j < out_dim; j++)
            tmp[j] = ia[perm[j]];
        memcpy(ia, tmp, (size_t)out_dim * sizeof *tmp);
        for (int j = 0; j < out_dim; j++)
            tmp[j] = ib[perm[j]];
        memcpy(ib, tmp, (size_t)out_dim * sizeof *tmp);
    }
    da_free(perm);
    da_free(tmp);
    return rc;
}

/* the stages of a convolutional net and the params list (conv NULL: none) */
static int alloc_conv(da_logicnet *net, int n_conv, const da_logic_conv_spec *conv)
{
    da_logic_conv_spec filled[DA_LOGICNET_MAX_CONV];
    long out = 0;
    int rc = n_conv ? da_logicnet_conv_chain(n_conv, conv, net->n_thresholds, net->image_h,
                                             net->image_w, filled, &out) : DA_OK;
    if (rc)
        return rc;
    if (n_conv && !(net->conv = da_calloc((size_t)n_conv, sizeof *net->conv)))
        return da_set_error(DA_ENOMEM, "da_logicnet: out of memory");
    for (int s = 0; s < n_conv; s++) {
        if (!(net->conv[s] = da_logic_conv_new(&filled[s])))
            return da_last_error_code();
        net->n_conv = s + 1;
        net->n_params += net->conv[s]->w != NULL;
    }
    if (n_conv)
        net->dims[0] = (int)out;
    net->n_params += net->n_layers;
    if (!(net->params = da_malloc((size_t)net->n_params * sizeof *net->params)))
        return da_set_error(DA_ENOMEM, "da_logicnet: out of memory");
    int p = 0;
    for (int s = 0; s < n_conv; s++)
        if (net->conv[s]->w)
            net->params[p++] = net->conv[s]->w;
    for (int l = 0; l < net->n_layers; l++)
        net->params[p++] = net->w[l];
    return DA_OK;
}

da_logicnet *da_logicnet_alloc(int n_inputs, int n_thresholds, int n_layers, int width,
                               int n_classes, int n_conv, const da_logic_conv_spec *conv,
                               int image_h, int image_w)
{
    da_logicnet *net = da_calloc(1, sizeof *net);
    if (!net) {
        da_set_error(DA_ENOMEM, "da_logicnet: out of memory");
        return NULL;
    }
    net->n_inputs = n_inputs;
    net->n_thresholds = n_thresholds;
    net->n_bits = n_inputs * n_thresholds;
    net->n_layers = n_layers;
    net->width = width;
    net->n_classes = n_classes;
    net->thresholds = da_malloc((size_t)n_thresholds * sizeof *net->thresholds);
    net->dims = da_malloc((size_t)(n_layers + 1) * sizeof *net->dims);
    net->ia = da_calloc((size_t)n_layers, sizeof *net->ia);
    net->ib = da_calloc((size_t)n_layers, sizeof *net->ib);
    net->w = da_calloc((size_t)n_layers, sizeof *net->w);
    int ok = net->thresholds && net->dims && net->ia && net->ib && net->w;
    int wshape[2] = {width, DA_LOGIC_N_GATES};
    for (int l = 0; ok && l < n_layers; l++) {
        net->ia[l] = da_malloc((size_t)width * sizeof **net->ia);
        net->ib[l] = da_malloc((size_t)width * sizeof **net->ib);
        net->w[l] = da_tensor_new(DA_F64, 2, wshape);
        ok = net->ia[l] && net->ib[l] && net->w[l];
        if (ok)
            net->w[l]->requires_grad = 1; /* a parameter: da_logicnet_op(w = NULL) trains it */
    }
    if (!ok) {
        da_logicnet_free(net);
        da_set_error(DA_ENOMEM, "da_logicnet: out of memory");
        return NULL;
    }
    net->tau = net->grad_factor = 1;
    net->dims[0] = net->n_bits;
    for (int l = 1; l <= n_layers; l++)
        net->dims[l] = width;
    net->image_h = image_h;
    net->image_w = image_w;
    if (alloc_conv(net, n_conv, conv)) {
        da_logicnet_free(net);
        return NULL;
    }
    return net;
}

da_logicnet *da_logicnet_new(const da_logicnet_cfg *cfg)
{
    if (!cfg) {
        da_set_error(DA_EINVAL, "da_logicnet_new: NULL cfg");
        return NULL;
    }
    if (check_cfg(cfg))
        return NULL;
    da_logicnet *net = da_logicnet_alloc(cfg->n_inputs, cfg->n_thresholds, cfg->n_layers,
                                         cfg->width, cfg->n_classes, cfg->n_conv, cfg->conv,
                                         cfg->image_h, cfg->image_w);
    da_rng *rng = net ? da_rng_new(cfg->seed) : NULL;
    if (!rng) {
        da_logicnet_free(net);
        return NULL;
    }
    net->tau = cfg->tau;
    net->grad_factor = cfg->grad_factor;
    net->connections = cfg->connections;
    for (int t = 0; t < cfg->n_thresholds; t++)
        net->thresholds[t] = cfg->thresholds ? cfg->thresholds[t]
                                             : (t + 1.0) / (cfg->n_thresholds + 1.0);
    int rc = DA_OK;
    for (int s = 0; s < net->n_conv && !rc; s++)
        rc = da_logic_conv_init(net->conv[s], rng, cfg->residual_init);
    for (int l = 0; l < net->n_layers && !rc; l++) {
        if (cfg->connections == DA_LOGIC_UNIQUE)
            rc = connections_unique(rng, net->dims[l], net->width, net->ia[l], net->ib[l]);
        else
            rc = da_logic_connections_random(rng, net->dims[l], net->width, net->ia[l],
                                             net->ib[l]);
        double *w = net->w[l]->data;
        for (long i = 0; i < net->w[l]->size; i++)
            w[i] = cfg->residual_init ? (i % DA_LOGIC_N_GATES == 3) * RESIDUAL_LOGIT
                                      : da_rng_normal(rng);
    }
    da_rng_free(rng);
    if (rc) {
        da_logicnet_free(net);
        return NULL;
    }
    return net;
}

void da_logicnet_free(da_logicnet *net)
{
    if (!net)
        return;
    for (int l = 0; l < net->n_layers; l++) {
        if (net->ia)
            da_free(net->ia[l]);
        if (net->ib)
            da_free(net->ib[l]);
        if (net->w)
            da_tensor_free(net->w[l]);
    }
    da_free(net->ia);
    da_free(net->ib);
    da_free(net->w);
    for (int s = 0; s < net->n_conv; s++)
        da_logic_conv_free(net->conv[s]);
    da_free(net->conv);
    da_free(net->params);
    da_free(net->thresholds);
    da_free(net->dims);
    da_logicnet_free_workspace(net);
    da_free(net);
}

int da_logicnet_max_dim(const da_logicnet *net)
{
    int m = net->n_bits > net->width ? net->n_bits : net->width;
    return net->dims[0] > m ? net->dims[0] : m;
}

int da_logicnet_binarize(const da_logicnet *net, int batch, const float *x, double *bits)
{
    static const char who[] = "da_logicnet_binarize";
    if (!net || !x || !bits)
        return da_set_error(DA_EINVAL, "%s: NULL net, x or bits", who);
    if (batch < 1)
        return da_set_error(DA_ERANGE, "%s: batch = %d must be >= 1", who, batch);
    int n = net->n_inputs;
    if (!da_all_finite_f32(x, (long)batch * n))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in x", who);
    for (int b = 0; b < batch; b++)
        for (int t = 0; t < net->n_thresholds; t++)
            for (int i = 0; i < n; i++)
                bits[(size_t)b * net->n_bits + (size_t)t * n + i] =
                    x[(size_t)b * n + i] > net->thresholds[t];
    return DA_OK;
}

int da_logicnet_cross_entropy(int batch, int k, const double *logits, const int *labels,
                              double *loss, double *glogits)
{
    static const char who[] = "da_logicnet_cross_entropy";
    if (!logits || !labels || !loss)
        return da_set_error(DA_EINVAL, "%s: NULL logits, labels or loss", who);
    if (batch < 1 || k < 1)
        return da_set_error(DA_ERANGE, "%s: batch = %d, k = %d must be >= 1", who, batch, k);
    if (!da_all_finite(logits, (long)batch * k))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in logits", who);
    for (int b = 0; b < batch; b++)
        if (labels[b] < 0 || labels[b] >= k)
            return da_set_error(DA_ERANGE, "%s: label %d of sample %d outside [0, %d)", who,
                                labels[b], b, k);
    double sum = 0;
    for (int b = 0; b < batch; b++) {
        const double *z = logits + (size_t)b * k;
        double m = z[0], s = 0;
        for (int c = 1; c < k; c++)
            m = z[c] > m ? z[c] : m;
        for (int c = 0; c < k; c++)
            s += exp(z[c] - m);
        sum += m + log(s) - z[labels[b]];
        if (glogits)
            for (int c = 0; c < k; c++)
                glogits[(size_t)b * k + c] = (exp(z[c] - m) / s - (c == labels[b])) / batch;
    }
    *loss = sum / batch;
    return DA_OK;
}

/* ---- hard predictions (through the batch-major kernels of logic.c) ---- */

/* logits [batch][k] of x0 [batch][n_bits], layer outputs alternating in buf[0..1] */
static int run_layers(const da_logicnet *net, int batch, int hard, double *const buf[2],
                      double *logits)
{
    for (int l = 0; l < net->n_layers; l++) {
        int rc = da_logic_layer_forward(batch, net->dims[l], net->width, net->ia[l], net->ib[l],
                                        net->w[l]->data, buf[l & 1], hard, buf[(l + 1) & 1]);
        if (rc)
            return rc;
    }
    return da_logic_group_sum(batch, net->width, net->n_classes, net->tau,
                              buf[net->n_layers & 1], logits);
}

int da_logicnet_predict(const da_logicnet *net, int batch, const float *x, int *pred,
                        double *logits)
{
    static const char who[] = "da_logicnet_predict";
    if (!net || !x || !pred)
        return da_set_error(DA_EINVAL, "%s: NULL net, x or pred", who);
    if (batch < 1)
        return da_set_error(DA_ERANGE, "%s: batch = %d must be >= 1", who, batch);
    int k = net->n_classes, rc = DA_OK;
    long acts = 0, largest = 0, max_w;
    if (net->n_conv)
        da_logicnet_conv_sizes(net, &acts, &largest, &max_w);
    size_t per = (size_t)PREDICT_CHUNK * da_logicnet_max_dim(net);
    size_t cper = (size_t)PREDICT_CHUNK * largest;
    double *buf[2] = {da_malloc(per * sizeof(double)), da_malloc(per * sizeof(double))};
    double *cbuf[2] = {NULL, NULL};
    if (net->n_conv) {
        cbuf[0] = da_malloc(cper * sizeof(double));
        cbuf[1] = da_malloc(cper * sizeof(double));
    }
    double *z = da_malloc((size_t)PREDICT_CHUNK * k * sizeof *z);
    if (!buf[0] || !buf[1] || !z || (net->n_conv && (!cbuf[0] || !cbuf[1])))
        rc = da_set_error(DA_ENOMEM, "%s: out of memory", who);
    for (int off = 0; off < batch && !rc; off += PREDICT_CHUNK) {
        int n = batch - off < PREDICT_CHUNK ? batch - off : PREDICT_CHUNK;
        const double *feat;
        rc = da_logicnet_binarize(net, n, x + (size_t)off * net->n_inputs,
                                  net->n_conv ? cbuf[0] : buf[0]);
        if (!rc && net->n_conv && !(rc = da_logicnet_conv_run(net, n, cbuf, &feat)))
            memcpy(buf[0], feat, (size_t)n * net->dims[0] * sizeof *feat);
        if (!rc)
            rc = run_layers(net, n, 1, buf, z);
        for (int b = 0; b < n && !rc; b++) {
            const double *zb = z + (size_t)b * k;
            int best = 0;
            for (int c = 1; c < k; c++)
                if (zb[c] > zb[best])
                    best = c;
            pred[off + b] = best;
        }
        if (!rc && logits)
            memcpy(logits + (size_t)off * k, z, (size_t)n * k * sizeof *z);
    }
    da_free(buf[0]);
    da_free(buf[1]);
    da_free(cbuf[0]);
    da_free(cbuf[1]);
    da_free(z);
    return rc;
}

int da_logicnet_gates(const da_logicnet *net, int layer, int *gate)
{
    if (!net || !gate)
        return da_set_error(DA_EINVAL, "da_logicnet_gates: NULL net or gate");
    if (layer < 0 || layer >= net->n_layers)
        return da_set_error(DA_ERANGE, "da_logicnet_gates: layer %d outside [0, %d)", layer,
                            net->n_layers);
    const double *w = net->w[layer]->data;
    for (int j = 0; j < net->width; j++) {
        const double *wj = w + (size_t)j * DA_LOGIC_N_GATES;
        int arg = 0;
        for (int g = 1; g < DA_LOGIC_N_GATES; g++)
            if (wj[g] > wj[arg])
                arg = g;
        gate[j] = arg;
    }
    return DA_OK;
}

/* ---- tensor face ---- */

static int grad_factor_forward(da_custom_args *args, double *y)
{
    memcpy(y, args->in_data[0], (size_t)args->out->size * sizeof *y);
    return DA_OK;
}

static int grad_factor_backward(da_custom_args *args, const double *gy, double *const *ig)
{
    const double f = *(const double *)args->state;
    if (ig[0])
        for (long i = 0; i < args->out->size; i++)
            ig[0][i] += f * gy[i];
    return DA_OK;
}

da_tensor *da_logicnet_op(da_ctx *ctx, const da_logicnet *net, da_tensor *bits,
                          da_tensor *const *w, int hard)
{
    static const char who[] = "da_logicnet_op";
    if (!ctx || !net || !bits) {
        if (!bits && da_last_error_code())
            return NULL;
        da_set_error(DA_EINVAL, "%s: NULL ctx, net or bits", who);
        return NULL;
    }
    if (bits->ndim != 2 || bits->shape[1] != net->n_bits) {
        da_set_error(DA_ESHAPE, "%s: bits must be [batch][%d]", who, net->n_bits);
        return NULL;
    }
    da_tensor *x = bits;
    int p = 0; /* index into params / w */
    for (int s = 0; s < net->n_conv && x; s++) {
        const da_logic_conv *L = net->conv[s];
        if (L->w && net->grad_factor != 1)
            x = da_op_custom(ctx, "logic_grad_factor", &x, 1, 2, x->shape, grad_factor_forward,
                             grad_factor_backward, NULL, (void *)&net->grad_factor);
        if (x)
            x = da_logic_conv_op(ctx, L, x, L->w ? (w ? w[p++] : L->w) : NULL, hard);
    }
    for (int l = 0; l < net->n_layers && x; l++, p++) {
        if (net->grad_factor != 1)
            x = da_op_custom(ctx, "logic_grad_factor", &x, 1, 2, x->shape, grad_factor_forward,
                             grad_factor_backward, NULL, (void *)&net->grad_factor);
        if (x)
            x = da_logic_layer(ctx, x, w ? w[p] : net->w[l], net->ia[l], net->ib[l], hard);
    }
    return da_logic_group_sum_op(ctx, x, net->n_classes, net->tau);
}
