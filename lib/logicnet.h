/* logicnet.h - differentiable logic gate networks end to end (difflogic; Petersen et al.,
 * "Deep Differentiable Logic Gate Networks", NeurIPS 2022, Sections 3.1-3.3).
 *
 * A network: input binarization by thresholds -> n_layers logic layers (lib/logic.h)
 * of `width` neurons each -> GroupSum(n_classes, tau). The logits of a sample are
 *   logits[c] = (sum of the outputs of the c-th group of width / n_classes neurons) / tau.
 *
 * Binarization: input feature i (of n_inputs, real-valued) and threshold t (of
 * n_thresholds) give the bit  bits[t * n_inputs + i] = (x[i] > thresholds[t]),  so
 * n_bits = n_thresholds * n_inputs; the first layer reads these bits.
 *
 * Training mode (hard = 0) relaxes every neuron to the softmax mixture of the 16 gates
 * (eq. 3); hard mode (difflogic's eval mode) keeps each neuron's argmax gate (the
 * first maximal logit), so its outputs are exact 0/1 bits.
 * Connections (seeded): DA_LOGIC_RANDOM is difflogic's "random" scheme
 * (da_logic_connections_random); DA_LOGIC_UNIQUE is its "unique" scheme: the pairs
 * (i, i + d) of inputs, taken for offsets d = 1, 2, ... in the order (0,1), (2,3), ...
 * then (1,2), (3,4), ... for d = 1 and i = 0, 1, ... for d >= 2, the first out_dim of
 * them in a random order, so that no two neurons of a layer read the same pair
 * (needs out_dim <= in_dim (in_dim - 1) / 2 and 2 out_dim >= in_dim).
 * Initialization: gate logits N(0, 1) as difflogic, or with residual_init (the
 * convolutional difflogic paper, NeurIPS 2024, Section 3.3) logit 5 for gate 3
 * ("a", pass-through) and 0 for the others.
 * grad_factor (difflogic's GradFactor): the gradient flowing into the input of every
 * layer (and of every logic tree convolution) is multiplied by grad_factor (1 = plain
 * backprop; ~2 helps deep networks).
 *
 * Convolutional networks (n_conv > 0; NeurIPS 2024 paper, lib/logic_conv.h): the inputs
 * are an image_h x image_w image (n_inputs = image_h * image_w, row-major) and the bits
 * are its n_thresholds binarized copies, read as an image of n_thresholds channels
 * [t][y][x]. The stages (logic tree convolutions and OR pools) run in order; the first
 * dense layer reads the flattened output [C][H][W] of the last stage (dims[0]). The
 * parameters are then the tree stages' logits followed by the dense layers' (params).
 *
 * Saved-network file (da_logicnet_save / da_logicnet_load), all fields little-endian:
 *   offset 0  8 bytes  magic "DALOGIC\n"
 *          8  u32      version (2; version 1 files, which have 0 at offset 36 and no
 *                      convolutional stages, are read as well)
 *         12  u32      n_inputs, n_thresholds, n_layers, width, n_classes (5 x u32)
 *         32  u32      connections (0 random, 1 unique; informative)
 *         36  u32      n_conv (version 1: reserved, 0)
 *         40  f64      tau, grad_factor
 *         56  f64      thresholds [n_thresholds]
 *             if n_conv > 0: u32 image_h, image_w; per stage: u32 kind, out_c, depth,
 *             size, stride, pad (6 x u32); then per tree stage: i32 leaf
 *             [out_c][2^depth][3], f64 w [out_c (2^depth - 1)][16]
 *             then per layer l: i32 ia [width], i32 ib [width], f64 w [width][16]
 *    size - 4 u32      CRC-32 (zlib) of every byte before it
 * The file is written atomically (da_file_write_atomic). The loader checks the magic,
 * the version (another one: DA_EFORMAT "unsupported version"), the sizes and stage
 * geometries (in range, file length exactly as implied), the CRC, the connection
 * indices and leaves and the finiteness of tau, grad_factor, thresholds and logits:
 * DA_EFORMAT on any mismatch, DA_EIO if the file cannot be read.
 *
 * Errors as everywhere (DESIGN.md §2): DA_EINVAL for NULLs, DA_ERANGE for sizes or
 * hyperparameters out of range, DA_ENAN for NaN/Inf inputs, DA_ESTATE for a backward
 * without a training-mode forward before it, DA_ENOMEM.
 *
 * Ownership: da_logicnet_new / da_logicnet_load allocate, da_logicnet_free frees (NULL
 * is a no-op). The parameters (params: w[l] and the tree stages' w) are F64 tensors owned
 * by the net (hand params to da_optim_new; their grads accumulate with +=, as every
 * parameter's).
 * The plain-array training functions (forward, backward) keep their activations in a
 * workspace inside the net: one training stream per net at a time. */
#ifndef DA_LOGICNET_H
#define DA_LOGICNET_H

#include "logic.h"
#include "logic_conv.h"
#include "optim.h"
#include "tensor.h"

typedef enum { DA_LOGIC_RANDOM = 0, DA_LOGIC_UNIQUE = 1 } da_logic_connections;

#define DA_LOGICNET_MAX_LAYERS 64
#define DA_LOGICNET_MAX_THRESHOLDS 255
#define DA_LOGICNET_MAX_WIDTH (1 << 24)
#define DA_LOGICNET_MAX_BITS (1 << 24)
#define DA_LOGICNET_MAX_CONV 16

typedef struct {
    int n_inputs;              /* real-valued features per sample, >= 1 */
    int n_thresholds;          /* 1 .. DA_LOGICNET_MAX_THRESHOLDS */
    const double *thresholds;  /* [n_thresholds], or NULL: (t + 1) / (n_thresholds + 1) */
    int n_layers;              /* 1 .. DA_LOGICNET_MAX_LAYERS */
    int width;                 /* neurons per layer, a multiple of n_classes */
    int n_classes;             /* >= 1 */
    double tau;                /* > 0 */
    da_logic_connections connections;
    double grad_factor;        /* > 0; 1 = plain backprop */
    int residual_init;         /* 1: gate "a" logit 5, others 0; 0: N(0, 1) logits */
    unsigned long seed;        /* connections and initial logits */
    int n_conv;                /* convolutional stages, 0 .. DA_LOGICNET_MAX_CONV (0: dense) */
    const da_logic_conv_spec *conv; /* [n_conv]: kind, out_c, depth, size, stride, pad (the
                                       input sizes are filled in from the image or the
                                       previous stage); residual_init applies to them */
    int image_h, image_w;      /* n_conv > 0: image_h * image_w = n_inputs */
} da_logicnet_cfg;

/* Defaults: 1 threshold (0.5), tau 1, random connections, grad_factor 1, N(0,1) init,
 * seed 0, no convolutional stages; the sizes are the arguments. */
da_logicnet_cfg da_logicnet_default_cfg(int n_inputs, int n_layers, int width, int n_classes);

typedef struct {
    int n_inputs, n_thresholds, n_bits, n_layers, width, n_classes;
    double tau, grad_factor;
    da_logic_connections connections;
    double *thresholds;  /* [n_thresholds] */
    int *dims;           /* [n_layers + 1]: dims[0] = n_bits (or the flattened output of
                            the last convolutional stage), dims[l > 0] = width */
    int **ia, **ib;      /* [n_layers][width]: inputs of each neuron in the layer below */
    da_tensor **w;       /* [n_layers] F64 parameters [width][16] (gate logits) */
    /* training workspace (see above; feature-major) */
    int ws_batch, ws_valid, ws_threads;
    int train_f32;       /* 1: the training kernels run in float (da_logicnet_set_precision) */
    void *ws;            /* [n_layers][max dim][ws_batch] layer inputs (float or double) */
    void *ws_grad[2];    /* [max dim][ws_batch] gradient ping-pong buffers (sized for double) */
    double *ws_coef;     /* [n_layers][width][4] bilinear coefficients */
    double *ws_probs;    /* [n_layers][width][16] gate probabilities */
    double *ws_part;     /* [ws_threads][n_layers][width][4] per-thread batch sums */
    int image_h, image_w, n_conv;
    da_logic_conv **conv; /* [n_conv] stages (owned) */
    int n_params;        /* tree stages + n_layers */
    da_tensor **params;  /* [n_params] the tree stages' w, then w[0 .. n_layers - 1]
                            (borrowed from the stages and w: hand them to da_optim_new) */
    double *ws_conv;     /* [n_conv + 1][ws_batch][stage size]: stage inputs, then output */
    double *ws_conv_grad[2]; /* [ws_batch][max stage size] gradient ping-pong */
    double *ws_conv_gw;  /* [largest tree w size] scratch */
    int ws_coef_fresh;   /* 1: ws_coef holds the soft coefficients of the current logits,
                            left by da_logicnet_adam_step for the next training forward */
    int ws_probs_valid;  /* 1: ws_probs holds the probabilities of the last forward */
} da_logicnet;

/* NULL on error (cfg out of range, connections impossible). */
da_logicnet *da_logicnet_new(const da_logicnet_cfg *cfg);
void da_logicnet_free(da_logicnet *net);

/* bits [batch][n_bits] (0.0 / 1.0) from x [batch][n_inputs]; DA_ENAN for NaN in x. */
int da_logicnet_binarize(const da_logicnet *net, int batch, const float *x, double *bits);

/* logits [batch][n_classes] of the binarized inputs bits [batch][n_bits] (values in
 * [0, 1]; the hard mode needs them in {0, 1} to give exact bits). hard = 0 keeps the
 * activations for da_logicnet_backward. */
int da_logicnet_forward(da_logicnet *net, int batch, const double *bits, int hard,
                        double *logits);
/* Backward of the last training-mode forward for the cotangent glogits
 * [batch][n_classes]: ACCUMULATES d(sum glogits * logits)/dw into the grad of every
 * params tensor (allocated on first use). gbits [batch][n_bits] (may be NULL) receives (overwrites) the gradient
 * with respect to the input bits (including the first layer's grad_factor). */
int da_logicnet_backward(da_logicnet *net, const double *glogits, double *gbits);

/* Precision of the training kernels (forward with hard = 0 and backward): DA_F64 (the
 * default) or DA_F32: activations, gradients, the per-neuron batch sums and the gate
 * softmax in float (about twice the throughput; gradients agree with DA_F64 to ~1e-5
 * relative). The interface (bits, logits, gradients) stays double. DA_EINVAL for
 * another dtype; invalidates the last training forward and the coefficients a
 * da_logicnet_adam_step left. */
int da_logicnet_set_precision(da_logicnet *net, da_dtype dtype);

/* Mean softmax cross-entropy over the batch of logits [batch][k] and labels in [0, k);
 * glogits [batch][k] (may be NULL) receives d loss / d logits. */
int da_logicnet_cross_entropy(int batch, int k, const double *logits, const int *labels,
                              double *loss, double *glogits);

/* Hard-mode class predictions pred [batch] (argmax of the logits, the first maximum)
 * of raw inputs x [batch][n_inputs]; logits [batch][n_classes] may be NULL. Uses its
 * own workspace (does not touch the training one). */
int da_logicnet_predict(const da_logicnet *net, int batch, const float *x, int *pred,
                        double *logits);

/* The hard gate (argmax of the logits, first maximum) of every neuron of dense layer l:
 * gate [width] in [0, 16). */
int da_logicnet_gates(const da_logicnet *net, int layer, int *gate);

/* Tensor face: logits [batch][n_classes] of bits [batch][n_bits] as a chain of
 * da_logic_layer nodes (with a gradient-scaling node for grad_factor != 1) and a
 * GroupSum node (da_logic_conv_op nodes first for a convolutional net). w [n_params] are
 * the gate logit tensors to use, in params order (one dtype shared with bits), NULL for
 * the net's own. NULL on error. */
da_tensor *da_logicnet_op(da_ctx *ctx, const da_logicnet *net, da_tensor *bits,
                          da_tensor *const *w, int hard);

/* ---- fused training step: backward + Adam (issue 9) ----
 * da_logicnet_adam_step runs the backward of the last training-mode forward for the
 * cotangent glogits (as da_logicnet_backward) and one Adam / AdamW update (optim.h,
 * PyTorch semantics, t = the step count) of every parameter, fused per neuron: the
 * logit gradient from the neuron's batch sums, the update, and the mixture coefficients
 * of the new logits in one pass, which the next training forward uses instead of a
 * softmax pass of its own. The update uses this batch's gradient only: the grads of the
 * params are neither read nor written (the tree stages' grads are zeroed and used as
 * scratch). The state (m, v) is float when the net trains in DA_F32 at
 * da_logicnet_adam_new, with float arithmetic (the logits stay double in the net: each
 * step reads them, updates them in float and stores the float result, so checkpoints
 * of the logits and the state are exact), else double; tree stages: double.
 * Writing the logits yourself between a step and the next forward: call
 * da_logicnet_set_precision (which drops the coefficients) first. gbits as in
 * da_logicnet_backward. Errors: those of da_logicnet_backward, DA_ENAN (nothing
 * updated) for a non-finite gradient. cfg: kind DA_OPTIM_ADAM or DA_OPTIM_ADAMW, no
 * amsgrad (DA_EINVAL), hyperparameters in range (DA_ERANGE). Ownership: _new allocates,
 * _free frees (NULL: no-op); the net must outlive the optimizer. */
typedef struct da_logicnet_adam da_logicnet_adam;
da_logicnet_adam *da_logicnet_adam_new(da_logicnet *net, const da_optim_cfg *cfg);
void da_logicnet_adam_free(da_logicnet_adam *opt);
int da_logicnet_adam_step(da_logicnet_adam *opt, const double *glogits, double *gbits);
/* learning rate of the next steps (DA_ERANGE if < 0 or not finite); steps taken */
int da_logicnet_adam_set_lr(da_logicnet_adam *opt, double lr);
long da_logicnet_adam_steps(const da_logicnet_adam *opt);
/* The state (step count, m, v) as a blob of da_logicnet_adam_state_size() bytes (host
 * byte order); loading checks that it comes from an optimizer of the same precision
 * over a net of the same sizes (DA_EFORMAT otherwise, nothing changed). */
size_t da_logicnet_adam_state_size(const da_logicnet_adam *opt);
int da_logicnet_adam_state_save(const da_logicnet_adam *opt, void *buf, size_t size);
int da_logicnet_adam_state_load(da_logicnet_adam *opt, const void *buf, size_t size);

/* Save / load (format above). */
int da_logicnet_save(const da_logicnet *net, const char *path);
da_logicnet *da_logicnet_load(const char *path);
/* The same from / to memory: *data (heap memory, *size bytes; free() it). */
int da_logicnet_serialize(const da_logicnet *net, void **data, size_t *size);
da_logicnet *da_logicnet_deserialize(const void *data, size_t size);

#endif
