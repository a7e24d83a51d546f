/* layers.h - layers and a small sequential model builder on top of lib/ops.h.
 *
 * A da_model is a sequence of layers (linear, conv2d, relu, max/avg pool, flatten).
 * Parameters are allocated outside any ctx (da_tensor_new) with requires_grad = 1 and
 * are owned by the model: da_model_free() frees them. Tensors returned by
 * da_model_forward() live in the ctx given to it.
 *
 * Shapes: a linear layer takes x [N][in] and gives [N][out]; a conv2d layer takes
 * x [N][C][H][W]; flatten turns [N][C][H][W] into [N][C*H*W]. Weights follow PyTorch:
 * linear W [out][in], b [out]; conv2d W [out_ch][in_ch][k][k], b [out_ch].
 *
 * Initialisation (drawn from the da_rng, so a seed fixes the model):
 *  - DA_INIT_TORCH_DEFAULT: PyTorch's nn.Linear / nn.Conv2d default, kaiming_uniform
 *    with a = sqrt(5), i.e. W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), b with the same
 *    bound;
 *  - DA_INIT_KAIMING_UNIFORM / _NORMAL: He et al. 2015 for ReLU (gain sqrt(2), fan_in),
 *    W ~ U(-sqrt(6/fan_in), sqrt(6/fan_in)) or N(0, 2/fan_in), b = 0;
 *  - DA_INIT_XAVIER_UNIFORM / _NORMAL: Glorot & Bengio 2010,
 *    W ~ U(-sqrt(6/(fan_in+fan_out)), +) or N(0, 2/(fan_in+fan_out)), b = 0.
 * fan_in = in (linear) or in_ch*k*k (conv); fan_out = out or out_ch*k*k.
 *
 * Functions returning int give DA_OK or an error code (da_last_error() set); functions
 * returning pointers give NULL on error. */
#ifndef DA_LAYERS_H
#define DA_LAYERS_H

#include "ops.h"
#include "rng.h"
#include "tensor.h"

typedef enum {
    DA_INIT_TORCH_DEFAULT,
    DA_INIT_KAIMING_UNIFORM,
    DA_INIT_KAIMING_NORMAL,
    DA_INIT_XAVIER_UNIFORM,
    DA_INIT_XAVIER_NORMAL
} da_init;

typedef enum {
    DA_LAYER_LINEAR,
    DA_LAYER_CONV2D,
    DA_LAYER_RELU,
    DA_LAYER_MAXPOOL,
    DA_LAYER_AVGPOOL,
    DA_LAYER_FLATTEN
} da_layer_kind;

typedef struct {
    da_layer_kind kind;
    da_tensor *W, *b; /* NULL for parameter-free layers; owned by the model */
    int in, out;      /* linear: features; conv2d: channels; 0 otherwise */
    int k, stride, pad; /* conv2d and pooling: window, stride, padding (pool: pad 0) */
    int precond_kind;     /* linear/conv2d: 0, or a da_precond_kind set by da_precond_wrap
                             (optim/precond.h): the weight gradient is preconditioned */
    double precond_lambda;
} da_layer;

typedef struct da_model da_model; /* a sequence of layers; owns its parameters */

/* Fused ops (lib/ops_nn.c), one graph node each, same arguments, shapes and errors as
 * the ops they combine: relu(x W^T + b), relu(conv2d(x, w, b)) and
 * maxpool2d(relu(conv2d(x, w, b)), pool_k, pool_stride). da_model_forward uses them for
 * the layer sequences linear-relu, conv2d-relu and conv2d-relu-maxpool. */
da_tensor *da_linear_relu(da_ctx *ctx, da_tensor *x, da_tensor *W, da_tensor *b);
da_tensor *da_conv2d_relu(da_ctx *ctx, da_tensor *x, da_tensor *w, da_tensor *b, int stride,
                          int pad);
da_tensor *da_conv2d_relu_maxpool(da_ctx *ctx, da_tensor *x, da_tensor *w, da_tensor *b,
                                  int stride, int pad, int pool_k, int pool_stride);

/* An empty model whose parameters will have the given dtype. */
da_model *da_model_new(da_dtype dtype);
void da_model_free(da_model *m); /* frees the parameters too; NULL is a no-op */

/* Append a layer. in/out, channels, k >= 1, stride >= 1, pad >= 0. */
int da_model_add_linear(da_model *m, int in, int out, da_init init, da_rng *rng);
int da_model_add_conv2d(da_model *m, int in_ch, int out_ch, int k, int stride, int pad,
                        da_init init, da_rng *rng);
int da_model_add_relu(da_model *m);
int da_model_add_maxpool(da_model *m, int k, int stride);
int da_model_add_avgpool(da_model *m, int k, int stride);
int da_model_add_flatten(da_model *m);

/* Run the layers on x (in ctx; x must have the model's dtype). The sequences
 * linear-relu, conv2d-relu and conv2d-relu-maxpool run as one fused node each. */
da_tensor *da_model_forward(da_ctx *ctx, da_model *m, da_tensor *x);

int da_model_n_layers(const da_model *m);
da_layer *da_model_layer(da_model *m, int i); /* borrowed; NULL if i out of range */
int da_model_n_params(const da_model *m);
/* Borrowed array of the n_params parameter tensors, in layer order (W then b);
 * valid until the next da_model_add_* or da_model_free. */
da_tensor **da_model_params(da_model *m);
long da_model_n_weights(const da_model *m); /* total scalar count of the parameters */
void da_model_zero_grad(da_model *m);

/* Builders (DA_INIT_TORCH_DEFAULT init).
 * MLP: sizes[0] -> sizes[1] -> ... -> sizes[n_sizes-1], linear layers with ReLU
 * between them (none after the last); n_sizes >= 2.
 * CNN ("the papers' CNN"): for each of the n_conv entries of channels, conv k x k
 * (stride 1, zero padding pad) -> relu -> maxpool 2 (stride 2); then flatten and fully connected
 * layers in_features -> fc[0] -> ... -> fc[n_fc-1] with ReLU between (none after the
 * last). Input x [N][in_ch][H][W]; H and W must stay >= 1 through the stack. */
da_model *da_model_mlp(da_dtype dtype, int n_sizes, const int *sizes, da_rng *rng);
da_model *da_model_cnn(da_dtype dtype, int in_ch, int H, int W, int n_conv,
                       const int *channels, int k, int pad, int n_fc, const int *fc,
                       da_rng *rng);

#endif
