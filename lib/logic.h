/* logic.h - differentiable logic gate networks (difflogic; Petersen et al., NeurIPS 2022).
 *
 * The 16 two-input gates relaxed to real inputs a, b in [0,1] (the probabilistic view,
 * Table 1 of the paper), in difflogic's order:
 *   0 false   1 and    2 a&!b   3 a     4 !a&b   5 b       6 xor     7 or
 *   8 nor     9 xnor  10 !b    11 b=>a 12 !a    13 a=>b   14 nand   15 true
 * Every gate is a bilinear form gate_g(a,b) = c0 + c1 a + c2 b + c3 ab, so a neuron's
 * softmax mixture over the gates (eq. 3 of the paper) is one bilinear form whose four
 * coefficients are the softmax-weighted sums of the gates' coefficients.
 *
 * A layer with in_dim inputs and out_dim neurons: neuron j reads x[b][ia[j]] and
 * x[b][ib[j]] and has 16 gate logits w[j][0..15]:
 *   y[b][j] = sum_g softmax(w[j])_g gate_g(x[b][ia[j]], x[b][ib[j]])        (hard = 0)
 *   y[b][j] = gate_{argmax_g w[j][g]}(x[b][ia[j]], x[b][ib[j]])             (hard = 1)
 * (hard = difflogic's eval mode; the first maximal logit wins ties). GroupSum (k groups,
 * temperature tau) sums each of k contiguous groups of n / k outputs and divides by tau.
 *
 * Plain-array functions return DA_OK or an error code with da_last_error() set:
 * DA_EINVAL (NULL arrays), DA_ERANGE (sizes < 1, indices outside [0, in_dim), n not a
 * multiple of k, tau <= 0), DA_ENAN (NaN/Inf in w, x, gy or tau, or a non-finite
 * output), DA_ENOMEM. Outputs and gradients are written (not accumulated); they use
 * malloc'd workspace that is freed before returning. Loops run in parallel with OpenMP;
 * results are deterministic for a given thread count. */
#ifndef DA_LOGIC_H
#define DA_LOGIC_H

#include "rng.h"
#include "tensor.h"

#define DA_LOGIC_N_GATES 16

/* DESIGN.md §5b. Gate in [0, 16); for another gate: NaN and da_last_error() set
 * (DA_ERANGE). */
double da_logic_gate(int gate, double a, double b);

/* The bilinear coefficients c[0..3] of a gate (gate_g = c0 + c1 a + c2 b + c3 ab). */
int da_logic_gate_coeffs(int gate, double c[4]);

/* DESIGN.md §5b. ia, ib [out_dim] in [0, in_dim), w [out_dim][16], x [batch][in_dim],
 * y [batch][out_dim]. */
int da_logic_layer_forward(int batch, int in_dim, int out_dim, const int *ia, const int *ib,
                           const double *w /* [out][16] */, const double *x /* [batch][in] */,
                           int hard, double *y /* [batch][out] */);

/* Vector-Jacobian products of the layer for the cotangent gy [batch][out_dim]:
 * gx [batch][in_dim] = d(sum gy*y)/dx and gw [out_dim][16] = d(sum gy*y)/dw (through the
 * softmax; zero when hard = 1, since the argmax is piecewise constant). Either output may
 * be NULL. */
int da_logic_layer_backward(int batch, int in_dim, int out_dim, const int *ia, const int *ib,
                            const double *w, const double *x, int hard, const double *gy,
                            double *gx /* [batch][in] or NULL */,
                            double *gw /* [out][16] or NULL */);

/* GroupSum: x [batch][n] -> y [batch][k], y[b][g] = sum_{i < n/k} x[b][g n/k + i] / tau;
 * backward gx [batch][n] = gy[b][i / (n/k)] / tau. */
int da_logic_group_sum(int batch, int n, int k, double tau, const double *x, double *y);
int da_logic_group_sum_backward(int batch, int n, int k, double tau, const double *gy,
                                double *gx);

/* difflogic's "random" connections: the 2 out_dim operand slots take every input
 * index ceil or floor (2 out_dim / in_dim) times, in a random order (needs
 * 2 out_dim >= in_dim so that every input is used). Writes ia, ib [out_dim]. */
int da_logic_connections_random(da_rng *rng, int in_dim, int out_dim, int *ia, int *ib);

/* ---- building blocks for network drivers that keep their own activations
 * (lib/logicnet.c); no argument checks ----
 * coef [out][4]: the bilinear coefficients (c0, c1, c2, c3) of every neuron's gate
 * mixture softmax(w[j]) (hard = 1: of its argmax gate); probs [out][16] (may be NULL)
 * receives the gate probabilities. Returns 1 if some logit is NaN or Inf (coef and probs
 * then undefined), else 0. */
int da_logic_coeffs(int out_dim, const double *w, int hard, double *coef, double *probs);
/* gw [out][16] += the logit gradient of every neuron given S [out][4] = the sums over
 * the batch of gy * (1, a, b, ab) (a, b the neuron's inputs, gy its cotangent), the
 * probabilities probs [out][16] and coefficients coef [out][4] of da_logic_coeffs. */
void da_logic_logits_grad(int out_dim, const double *probs, const double *coef,
                          const double *S, double *gw);

/* Adam (optim.h, PyTorch semantics) of one step, bias corrections folded in */
typedef struct {
    double step_size;   /* lr / (1 - beta1^t) */
    double bc2_sqrt;    /* sqrt(1 - beta2^t) */
    double beta1, beta2, eps;
    double l2;          /* Adam: weight_decay (added to the gradient); AdamW: 0 */
    double decay;       /* AdamW: 1 - lr weight_decay; Adam: 1 */
} da_logic_adam_hp;
/* The soft coefficients coef [out][4] (and probabilities probs [out][16], may be NULL)
 * of the logits w [out][16] as da_logic_coeffs, computed in float (_f32, softmax to
 * ~1e-7) or double (_f64) exactly as da_logic_adam_* computes them for the updated
 * logits. No checks: w finite. */
void da_logic_soft_coeffs_f32(int out_dim, const double *w, double *coef, double *probs);
void da_logic_soft_coeffs_f64(int out_dim, const double *w, double *coef, double *probs);
/* One fused step of out_dim neurons: the logit gradient from the batch sums
 * S [parts][stride] (the parts' [out][4] sums, added in part order) and softmax(w), the
 * Adam update of w [out][16] with the state m, v (float in _f32, where the arithmetic is
 * float too; double in _f64), and coef [out][4] (as da_logic_soft_coeffs_*) of the
 * updated logits. m and v hold blocks of N neurons (N = 8 for _f32, 4 for _f64), each
 * [16][N] (gate-major), ceil(out_dim / N) blocks. No checks: S finite, w finite. */
void da_logic_adam_f32(int out_dim, const da_logic_adam_hp *hp, int parts, size_t stride,
                       const double *S, double *w, float *m, float *v, double *coef);
void da_logic_adam_f64(int out_dim, const da_logic_adam_hp *hp, int parts, size_t stride,
                       const double *S, double *w, double *m, double *v, double *coef);

/* ---- tensor faces (one custom node each; F32 or F64) ----
 * x [batch][in_dim], w [out_dim][16] (same dtype) -> [batch][out_dim]; gradients to x and
 * w (w gets none when hard = 1). ia and ib [out_dim] are copied into ctx. F32 tensors are
 * converted to double around the kernels by da_op_custom. NULL on error. */
da_tensor *da_logic_layer(da_ctx *ctx, da_tensor *x, da_tensor *w, const int *ia,
                          const int *ib, int hard);
/* x [batch][n] -> [batch][k] */
da_tensor *da_logic_group_sum_op(da_ctx *ctx, da_tensor *x, int k, double tau);

#endif
