/* logic_conv.h - convolutional differentiable logic gate networks (Petersen et al.,
 * "Convolutional Differentiable Logic Gate Networks", NeurIPS 2024, arXiv 2411.04732,
 * Sections 3.1-3.3): logic tree convolutions and logical OR pooling.
 *
 * Activations are images [C][H][W] (row-major, flattened per sample); a batch is
 * [batch][C * H * W].
 *
 * Logic tree convolution (DA_LOGIC_CONV_TREE): out_c kernels; kernel k is a complete
 * binary tree of depth d of learnable gates (2^d - 1 gates, each a softmax mixture of the
 * 16 relaxed gates of logic.h). Its 2^d leaves read inputs of the size x size receptive
 * field from at most 2 input channels (two channels drawn per kernel, as the paper's
 * c_m = 2): leaf i of kernel k is (channel, dy, dx) = leaf[(k * 2^d + i) * 3 + 0..2],
 * and at output position (oy, ox) it reads x[channel][oy stride - pad + dy][ox stride -
 * pad + dx], 0 outside the image (zero padding). The gates are shared across positions:
 * out_h = (in_h + 2 pad - size) / stride + 1 (floor), likewise out_w. Gates are numbered
 * level by level from the leaves: with n0 = 2^(d-1), gate g < n0 reads leaves 2g and
 * 2g + 1 (operands a, b); a gate of a higher level with index i inside its level reads the
 * gates 2i, 2i + 1 of the level below; the last gate (the root) is the kernel's output at
 * that position. Gate logits w [out_c * (2^d - 1)][16] (kernel-major).
 *
 * Logical OR pooling (DA_LOGIC_CONV_OR_POOL): size x size windows with the given stride
 * (no padding), per channel; relaxed by the maximum (as the paper), which on bits is
 * exactly OR. The backward sends a window's cotangent to its first maximal input.
 *
 * Hard mode (hard = 1, difflogic's eval mode): every gate is its argmax gate (first
 * maximal logit); on 0/1 inputs all outputs are exact bits.
 * Initialization: leaves drawn at random (the two operands of a leaf gate distinct
 * whenever the receptive field of the kernel's channels has two inputs); logits N(0, 1),
 * or with residual_init (Section 3.3) the logit of gate 3 ("a") set to
 * DA_LOGIC_RESIDUAL_LOGIT and the others 0.
 *
 * Errors: DA_EINVAL (NULLs, unknown kind), DA_ERANGE (sizes out of range, leaves outside
 * the receptive field or the channels), DA_ENAN (NaN/Inf in x, w or gy), DA_ENOMEM.
 * The kernels run in parallel with OpenMP over the batch (thread-private gradient sums
 * reduced in thread order: deterministic for a given thread count); outputs and
 * gradients are written, not accumulated.
 * Ownership: da_logic_conv_new allocates (leaves zero, logits zero), da_logic_conv_free
 * frees (NULL no-op); w is an F64 parameter tensor owned by the stage. */
#ifndef DA_LOGIC_CONV_H
#define DA_LOGIC_CONV_H

#include "logic.h"
#include "rng.h"
#include "tensor.h"

#define DA_LOGIC_CONV_MAX_DEPTH 8
#define DA_LOGIC_CONV_MAX_SIZE 15
#define DA_LOGIC_CONV_MAX_DIM 4096     /* channels, height, width */
#define DA_LOGIC_CONV_MAX_UNITS (1L << 26) /* C * H * W of any image, gates per sample */
#define DA_LOGIC_RESIDUAL_LOGIT 5.0

typedef enum { DA_LOGIC_CONV_TREE = 0, DA_LOGIC_CONV_OR_POOL = 1 } da_logic_conv_kind;

typedef struct {
    da_logic_conv_kind kind;
    int in_c, in_h, in_w; /* input image */
    int out_c;            /* tree: kernels; pool: ignored (= in_c) */
    int depth;            /* tree: 1 .. DA_LOGIC_CONV_MAX_DEPTH; pool: ignored */
    int size;             /* receptive field / window: size x size, 1 .. MAX_SIZE */
    int stride;           /* >= 1 */
    int pad;              /* tree: 0 .. size - 1; pool: must be 0 */
} da_logic_conv_spec;

typedef struct {
    da_logic_conv_spec spec;
    int out_c, out_h, out_w;
    int n_leaves, n_gates; /* per kernel: 2^depth, 2^depth - 1 (pool: 0, 0) */
    int *leaf;             /* [out_c][n_leaves][3]: channel, dy, dx (pool: NULL) */
    da_tensor *w;          /* [out_c * n_gates][16] F64 gate logits (pool: NULL) */
} da_logic_conv;

/* Checks a spec (DA_EINVAL, DA_ERANGE as da_logic_conv_new) and gives the output image
 * out_c x out_h x out_w (any pointer may be NULL). */
int da_logic_conv_shape(const da_logic_conv_spec *spec, int *out_c, int *out_h, int *out_w);
/* NULL on error (spec out of range, output smaller than 1 x 1). */
da_logic_conv *da_logic_conv_new(const da_logic_conv_spec *spec);
void da_logic_conv_free(da_logic_conv *L);
/* Random leaves and logits (see above); a no-op for a pool. */
int da_logic_conv_init(da_logic_conv *L, da_rng *rng, int residual_init);
/* DA_OK if every leaf lies in the receptive field and the input channels (DA_ERANGE). */
int da_logic_conv_check_leaves(const da_logic_conv *L);
/* Sizes of one sample's input and output (C * H * W). */
long da_logic_conv_in_size(const da_logic_conv *L);
long da_logic_conv_out_size(const da_logic_conv *L);

/* y [batch][out] of x [batch][in]; w [out_c * n_gates][16] (NULL: the stage's own;
 * ignored by a pool). */
int da_logic_conv_forward(const da_logic_conv *L, const double *w, int batch, const double *x,
                          int hard, double *y);
/* Vector-Jacobian products for the cotangent gy [batch][out]: gx [batch][in] and gw
 * [out_c * n_gates][16] (through the softmax; zero when hard = 1). Either may be NULL. */
int da_logic_conv_backward(const da_logic_conv *L, const double *w, int batch,
                           const double *x, int hard, const double *gy, double *gx,
                           double *gw);

/* Tensor face: x [batch][in] -> [batch][out]; w [out_c * n_gates][16] of x's dtype for a
 * tree (NULL: the stage's own, as a constant), ignored for a pool. The stage must outlive
 * the graph. NULL on error. */
da_tensor *da_logic_conv_op(da_ctx *ctx, const da_logic_conv *L, da_tensor *x, da_tensor *w,
                            int hard);

#endif
