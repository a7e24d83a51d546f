/* logicnet_impl.h - internals of the logic gate networks shared by logicnet.c and
 * logicnet_io.c. Not installed; not part of the public API. */
#ifndef DA_LOGICNET_IMPL_H
#define DA_LOGICNET_IMPL_H

#include "logicnet.h"

/* A network of the given sizes (assumed in range) with zero parameters, unset
 * connections, tau and grad_factor 1; with n_conv > 0 also its stages (conv [n_conv]:
 * kind, out_c, depth, size, stride, pad; leaves zero; geometry checked, DA_ERANGE).
 * NULL on failure. */
da_logicnet *da_logicnet_alloc(int n_inputs, int n_thresholds, int n_layers, int width,
                               int n_classes, int n_conv, const da_logic_conv_spec *conv,
                               int image_h, int image_w);

/* The largest activation row count: max(n_bits, width, dims[0]). */
int da_logicnet_max_dim(const da_logicnet *net);
/* Frees the training workspace (logicnet_train.c) and marks it empty. */
void da_logicnet_free_workspace(da_logicnet *net);

/* ---- convolutional stages (logicnet_conv.c) ---- */

/* Checks the chain of stages over an image of `channels` x image_h x image_w and fills
 * filled [n_conv] (may be NULL) with the specs including their input sizes; *out_size
 * = C * H * W of the last stage's output. DA_ERANGE / DA_EINVAL on a bad chain. */
int da_logicnet_conv_chain(int n_conv, const da_logic_conv_spec *conv, int channels,
                           int image_h, int image_w, da_logic_conv_spec *filled,
                           long *out_size);
/* Workspace sizes per sample: the stage inputs and the output together, and the largest
 * stage input or output; the largest tree logit tensor (doubles). */
void da_logicnet_conv_sizes(const da_logicnet *net, long *acts, long *largest, long *max_w);
/* Training-mode or hard forward of the stages from bits [batch][n_bits] through the
 * workspace; *out = the last stage's output [batch][dims[0]] inside it. */
int da_logicnet_conv_forward(da_logicnet *net, int batch, const double *bits, int hard,
                             const double **out);
/* Backward of the stages for the cotangent g [dims[0]][batch] (feature-major) of their
 * output: accumulates into the trees' w grads; gbits [batch][n_bits] (may be NULL)
 * receives the gradient of the bits. */
int da_logicnet_conv_backward(da_logicnet *net, int batch, const double *g, double *gbits);
/* The stages in hard mode on buf[0] = bits [batch][n_bits], ping-pong between buf[0] and
 * buf[1] ([batch][largest] each); *out = the output inside one of them. */
int da_logicnet_conv_run(const da_logicnet *net, int batch, double *const buf[2],
                         const double **out);

#endif
