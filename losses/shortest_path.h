/* shortest_path.h - differentiable shortest paths on grid graphs (DESIGN.md §4, §5b).
 *
 * The problem (Warcraft convention, Vlastelica et al. ICLR 2020): an H x W grid of vertex
 * costs c [batch][H][W] (row-major, vertex v = i*W + j), 8-neighbour moves, a path from
 * s = (0,0) to g = (H-1,W-1) whose cost is the sum of the costs of ALL its vertices, both
 * end vertices included. A path is given by its 0/1 vertex indicator y [batch][H][W].
 * 1 <= H, W <= DA_SP_MAX_SIDE; batch >= 1. Every function validates its inputs (NULL:
 * DA_EINVAL, sizes and parameters out of range, Inf included: DA_ERANGE, NaN/Inf in arrays
 * and NaN parameters (lambda, beta, sigma, ...): DA_ENAN) and never aborts or prints.
 * Reduction: every loss is the MEAN over the batch of a per-sample SUM over the H*W cells.
 * All plain-array outputs are written (not accumulated); the caller owns every array.
 * Loops over the batch run in parallel with OpenMP; results do not depend on the thread
 * count (random numbers are drawn serially, see the perturbed section).
 *
 * 1. Dijkstra (exact solver) and the blackbox gradient (Vlastelica et al. 2020):
 *    y(c) = argmin_paths <c, y>; lazy binary heap ordered by (distance, row, col), strict
 *    '<' relaxation, neighbours visited in the order (di,dj) in (-1,0,1)x(-1,0,1): the
 *    same path as blackbox-backprop's dijkstra() whenever its tie-breaking is well defined.
 *    grad_c = -(y(c) - y(c')) / lambda,  c' = max(c + lambda * dL/dy, 0).
 *    Hamming loss (their Warcraft loss): L = mean_b sum_v y(1-t) + (1-y)t.
 *
 * 2. Relaxed Bellman-Ford (AlgoVision; Petersen et al. NeurIPS 2021, shortest-path
 *    example of the algovision repository). With beta the inverse temperature and
 *    N(v) the in-grid 8-neighbours of v (in the order above):
 *      d^0_s = 0, d^0_v = +inf (v != s)
 *      p^t_{v,k} = softmax_k(-beta d^{t-1}_{N(v)_k}) over the reached (finite) neighbours,
 *      d^t_v = sum_k p^t_{v,k} d^{t-1}_{N(v)_k} + c_v,   then d^t_s = 0      (t = 1..n_iter)
 *      P_v = p^{n_iter}_v (soft predecessors, kept for s too: AlgoVision does not reset them)
 *    Trace back from the goal with a t-conorm S (probabilistic a+b-ab, Hamacher
 *    (a+b+(p-2)ab)/(1+(p-1)ab), Yager-1 min(1,a+b)):
 *      T^0 = 0, q^0 = e_g;  T^k = S(T^{k-1}, q^{k-1}),  q^k_u = sum_{v,k': N(v)_k' = u} q^{k-1}_v P_{v,k'}
 *    "For":   out = T^{n_iter}.
 *    "While": the relaxed loop While(tracked_path[s] <= 1) of AlgoVision: with
 *      c_k = sigmoid(beta (1 - T^k_s)), p_0 = c_0, p_k = p_{k-1} c_k, stop at the first K
 *      with p_K <= epsilon (or K = max_iter),
 *      out = sum_{k=1}^{K-1} (p_{k-1} - p_k) T^k + p_{K-1} T^K.
 *    Losses against the true path t: L1 mean_b sum_v |out - t|, squared L2 mean_b sum_v
 *    (out - t)^2. The backward is an exact hand-written reverse pass over the stored
 *    iterations (one fused kernel per sample; the loop count K and the set of reached
 *    vertices are piecewise constant and treated as such, like autograd does).
 *    Departures from the algovision code, both exact up to underflow: unreached vertices
 *    hold +inf instead of 1e12 (exp(-beta 1e12) is 0 in double for beta > 1e-9), and the
 *    While loop stops per sample instead of when the whole batch is below epsilon (results
 *    do not depend on the batch composition; the difference is O(epsilon)).
 *    Option stop_at_source = 1 (not in AlgoVision) sets P_s = 0: the traced mass stops at
 *    s instead of bouncing between s and its soft-cheapest neighbour, so that for
 *    beta -> inf the output is exactly the hard path; 0 reproduces AlgoVision.
 *    n_iter >= max(H, W) - 1 is required (else the goal is never reached), and
 *    n_iter * H * W <= DA_SP_RELAXED_MAX_WORK.
 *
 * 3. Perturbed optimizers and the Fenchel-Young loss (Berthet et al. NeurIPS 2020) for the
 *    MINIMISATION solver y*(c) = argmin <c, y>, with M samples Z_m (Gaussian N(0,1), or
 *    standard Gumbel -log(-log U), not centred, as their code) and u_m = max(c + sigma Z_m, 0)
 *    (clipping at 0 only happens when c_v + sigma Z_v < 0; Dijkstra needs c >= 0):
 *      yhat(c) = E[y*(c + sigma Z)]  ~  1/M sum_m y*(u_m)
 *      J^T v   = E[y*(c + sigma Z) <grad nu(Z), .>]/sigma: grad_c = 1/(sigma M) sum_m
 *                <y*(u_m), v> grad nu(Z_m),  grad nu(z) = z (Gaussian), 1 - e^{-z} (Gumbel)
 *      F(c) = E[min_y <c + sigma Z, y>] (concave), FY loss for a target path t:
 *      L(c; t) = <c, t> - F(c) - F^*(t) = E[<c + sigma Z, t> - min_y <c + sigma Z, y>] >= 0,
 *      (F^*(t) = -sigma E<Z, t> for a vertex t of the path polytope), estimated by
 *      1/M sum_m (<u_m, t> - <u_m, y*(u_m)>), and
 *      dL/dc = t - yhat(c).
 *    Sign convention: this is the gradient with respect to the COSTS c of a minimisation
 *    problem. Berthet et al. write the maximisation form with theta = -c, where the same
 *    quantity reads dL/dtheta = yhat - t; a gradient step on c lowers the costs on the
 *    target path and raises them on the predicted one.
 *
 * 4. Stochastic smoothing of the solver and of its loss (relax/smooth.h; Petersen et al.,
 *    "Generalizing Stochastic Smoothing for Differentiation and Gradient Estimation",
 *    arXiv 2410.08125, Eqs. 3-6), with any smoothing distribution, scale and variance
 *    reduction of a da_smooth_cfg (n = H*W, isotropic eps or a per-vertex eps_vec/L):
 *      (a) the solver:  f(c) = y*(max(c, 0)) in {0,1}^{H*W},   yhat = E[f(c + L z)],
 *          J^T cot = E[<f(c + L z) - b, cot> L^-T s(z)]   (m = H*W outputs);
 *      (b) the loss:    f(c) = Hamming(y*(max(c, 0)), t) = sum_v y(1-t) + (1-y)t   (m = 1),
 *          L = mean_b E[f_b(c_b + L z)], its gradient and, for Newton losses, its
 *          Hessian by the second-order estimator (da_smooth_hessian; C^2 densities only).
 *    Costs may have any sign: like the perturbed optimizer, perturbed costs are clipped at
 *    0 before Dijkstra (the clip is part of the black box, so the estimates stay
 *    unbiased for the function smoothed). Random numbers are drawn serially, row after
 *    row, so results depend only on the seed. The same functions exist for any
 *    black-box linear solver y = argmin <c, y> on vectors of n entries (da_sp_solver_fn),
 *    e.g. an edge-cost graph; the Dijkstra ones call them.
 *
 * Ownership: no function keeps a pointer to its arguments after returning, except that
 * tensor ops keep cfg, target and rng until the backward pass (they must outlive it). */
#ifndef DA_SHORTEST_PATH_H
#define DA_SHORTEST_PATH_H

#include "rng.h"
#include "smooth.h"
#include "tensor.h"

/* largest grid side */
#define DA_SP_MAX_SIDE 256
/* relaxed Bellman-Ford: n_iter * H * W <= 2^24 (its forward keeps the distances and the
 * softmin weights of every iteration: 72 bytes per vertex and iteration, per thread) */
#define DA_SP_RELAXED_MAX_WORK 16777216.0

/* ---------------------------------------------------------------- exact solver */
/* Shortest paths of cost [batch][H][W] (finite, >= 0): path [batch][H][W] receives the 0/1
 * indicator, path_cost [batch] (or NULL) the cost of the path, both end vertices counted. */
int da_sp_dijkstra(int batch, int H, int W, const double *cost,
                   double *path /* 0/1 */, double *path_cost /* [batch] or NULL */);

/* ---------------------------------------------------------------- blackbox (Vlastelica) */
/* grad_cost = -(y(cost) - y(max(cost + lambda grad_path, 0))) / lambda; lambda > 0 and
 * finite, cost finite and >= 0, grad_path finite. Two solver calls per sample. */
int da_sp_blackbox_grad(int batch, int H, int W, const double *cost,
                        const double *grad_path, double lambda, double *grad_cost);

/* Hamming loss of a path against a target (both [batch][H][W]): mean over the batch of
 * sum_v path(1-target) + (1-path)target; grad_path (or NULL) = (1 - 2 target) / batch. */
int da_sp_hamming_loss(int batch, int H, int W, const double *path, const double *target,
                       double *loss, double *grad_path /* or NULL */);

typedef struct {
    double lambda; /* interpolation strength, > 0 (the paper uses 20 for Warcraft) */
} da_sp_blackbox_cfg;

/* Plain-array face: loss = Hamming(y(cost), target), grad_cost (or NULL) its blackbox
 * gradient (mean over the batch).
 * The _normalized variants (not in Vlastelica et al.) solve on n = cost / mean_v(cost) per
 * sample (the mean must be > 0, else DA_ERANGE, or DA_ENAN in the tensor face): the path is invariant to the
 * scale of a sample's costs, but the blackbox gradient is not orthogonal to it (<grad, c>
 * = (|y'| - |y|)/lambda per sample, nonzero whenever the two paths have different vertex
 * counts). A model with a free output scale then drifts along it: the costs shrink to 0
 * while the path does not change (the terrain benchmark's per-cell CNN + softplus, whose
 * loss rose). Normalised, the blackbox gradient is taken with respect to n and chained
 * through the normalisation,
 *   grad_c = (grad_n - <grad_n, n> / V) / mean(c),   so <grad_c, c> = 0 exactly. */
int da_sp_blackbox_loss(const da_sp_blackbox_cfg *cfg, int batch, int H, int W,
                        const double *cost, const double *target, double *loss,
                        double *grad_cost /* or NULL */);
int da_sp_blackbox_normalized_loss(const da_sp_blackbox_cfg *cfg, int batch, int H, int W,
                                   const double *cost, const double *target, double *loss,
                                   double *grad_cost /* or NULL */);
/* Tensor faces (da_op_custom). cost is [batch][H][W], F32 or F64.
 * da_sp_blackbox_path: out = y(cost) [batch][H][W], backward = blackbox gradient.
 * da_sp_hamming: scalar Hamming loss of path [batch][H][W] against target (borrowed).
 * da_sp_blackbox: scalar = da_sp_hamming(da_sp_blackbox_path(cost, lambda), target). */
da_tensor *da_sp_blackbox_path(da_ctx *ctx, da_tensor *cost, double lambda);
da_tensor *da_sp_hamming(da_ctx *ctx, da_tensor *path, const double *target);
da_tensor *da_sp_blackbox(da_ctx *ctx, da_tensor *cost, const double *target,
                          const da_sp_blackbox_cfg *cfg);
/* da_sp_blackbox of cost / mean_v(cost) per sample, composed with the core's ops. */
da_tensor *da_sp_blackbox_normalized(da_ctx *ctx, da_tensor *cost, const double *target,
                                     const da_sp_blackbox_cfg *cfg);

/* ---------------------------------------------------------------- relaxed Bellman-Ford */
typedef enum { DA_SP_LOOP_FOR = 0, DA_SP_LOOP_WHILE = 1 } da_sp_loop;
typedef enum {
    DA_SP_TCONORM_PROBABILISTIC = 0, /* a + b - ab (AlgoVision's default) */
    DA_SP_TCONORM_HAMACHER = 1,      /* (a + b + (p-2)ab) / (1 + (p-1)ab), p >= 0 */
    DA_SP_TCONORM_YAGER = 2          /* min(1, a + b) */
} da_sp_tconorm;
typedef enum { DA_SP_NORM_L1 = 0, DA_SP_NORM_L2SQ = 1 } da_sp_norm;

typedef struct {
    double beta;           /* inverse temperature of the softmin and the While condition, > 0 */
    int n_iter;            /* Bellman-Ford iterations (and For trace steps), >= max(H,W)-1, >= 1 */
    da_sp_loop loop;       /* trace back with a fixed (For) or relaxed (While) loop */
    da_sp_tconorm tconorm; /* how the trace is accumulated */
    double hamacher_p;     /* parameter of the Hamacher t-conorm */
    int max_iter;          /* While: largest number of trace steps (AlgoVision: 1024) */
    double epsilon;        /* While: stop once the continuation probability <= epsilon */
    int stop_at_source;    /* 1: the source absorbs the traced mass (see above) */
    da_sp_norm norm;       /* loss against the true path: L1 or squared L2 */
} da_sp_relaxed_cfg;

/* Defaults: AlgoVision's Algorithm (beta 10, max_iter 1024, epsilon 1e-5), For loop,
 * probabilistic t-conorm, hamacher_p 5 (its example), stop_at_source 0, squared L2, and
 * n_iter = 2 max(H, W) (our choice; its example uses 25 for a 12 x 10 grid). */
da_sp_relaxed_cfg da_sp_relaxed_default(int H, int W);

/* Operator face: the relaxed path indicator out [batch][H][W] (or NULL) of cost
 * [batch][H][W] (finite, any sign), and grad_cost = J^T cot (both or neither NULL). */
int da_sp_relaxed_path(const da_sp_relaxed_cfg *cfg, int batch, int H, int W,
                       const double *cost, double *out, const double *cot,
                       double *grad_cost);
/* Loss face: L1 or squared-L2 loss (cfg->norm) of the relaxed path against target
 * [batch][H][W], mean over the batch; grad_cost (or NULL). */
int da_sp_relaxed_loss(const da_sp_relaxed_cfg *cfg, int batch, int H, int W,
                       const double *cost, const double *target, double *loss,
                       double *grad_cost /* or NULL */);
/* Tensor faces: the relaxed path [batch][H][W] (backward re-runs the forward recursion
 * per sample instead of storing it), and the scalar loss (gradient computed with the
 * forward pass, fused). cfg and target are borrowed until the backward pass. */
da_tensor *da_sp_relaxed_path_op(da_ctx *ctx, da_tensor *cost, const da_sp_relaxed_cfg *cfg);
da_tensor *da_sp_relaxed(da_ctx *ctx, da_tensor *cost, const double *target,
                         const da_sp_relaxed_cfg *cfg);

/* ---------------------------------------------------------------- perturbed / FY */
typedef enum { DA_SP_NOISE_GAUSSIAN = 0, DA_SP_NOISE_GUMBEL = 1 } da_sp_noise;

typedef struct {
    da_sp_noise noise;
    double sigma;  /* noise scale, > 0 */
    int n_samples; /* M >= 1 solver calls per sample (per call) */
} da_sp_perturbed_cfg;

/* Noise Z is drawn from rng serially in the order (sample m, batch b, vertex v), so results
 * depend only on the seed. cost finite (any sign; perturbed costs are clipped at 0).
 * Perturbed optimizer: path_mean [batch][H][W] = yhat(cost) (or NULL), and grad_cost =
 * the Monte-Carlo J^T cot (both or neither NULL). */
int da_sp_perturbed(const da_sp_perturbed_cfg *cfg, da_rng *rng, int batch, int H, int W,
                    const double *cost, double *path_mean, const double *cot,
                    double *grad_cost);
/* Fenchel-Young loss (mean over the batch) against target paths [batch][H][W] and its
 * gradient (target - yhat) / batch (or NULL). The value is the FY loss when each target is
 * a path indicator (a vertex of the path polytope); for other targets it differs from it
 * by a constant independent of cost. */
int da_sp_fy_loss(const da_sp_perturbed_cfg *cfg, da_rng *rng, int batch, int H, int W,
                  const double *cost, const double *target, double *loss,
                  double *grad_cost /* or NULL */);
/* Tensor face of the FY loss: scalar; the gradient is computed in the forward pass from the
 * same samples (so the op is the exact gradient of its own Monte-Carlo value). */
da_tensor *da_sp_fy(da_ctx *ctx, da_tensor *cost, const double *target,
                    const da_sp_perturbed_cfg *cfg, da_rng *rng);

/* ---------------------------------------------------------------- stochastic smoothing */
/* A black-box linear solver: y [n] = argmin_y <cost, y> over its feasible set (0/1
 * vectors). Returns DA_OK or an error code (with da_set_error). Called serially. */
typedef int (*da_sp_solver_fn)(void *user, int n, const double *cost, double *y);

/* (a) Smoothed Dijkstra indicator: path_mean [batch][H][W] = yhat(cost) (or NULL) and
 * grad_cost = J^T cot with the same samples (cot and grad_cost both or neither NULL).
 * cfg->samples solver calls per sample (+1 for DA_CV_FX). */
int da_sp_smooth_path(const da_smooth_cfg *cfg, da_rng *rng, int batch, int H, int W,
                      const double *cost, double *path_mean, const double *cot,
                      double *grad_cost);
/* Tensor face: yhat [batch][H][W] of cost [batch][H][W] (one da_smooth_op node; its
 * backward reuses the forward's samples). cfg and rng are borrowed until the backward. */
da_tensor *da_sp_smooth_path_op(da_ctx *ctx, da_tensor *cost, const da_smooth_cfg *cfg,
                                da_rng *rng);

/* (b) Smoothed Hamming loss of the Dijkstra path against target [batch][H][W] (finite),
 * mean over the batch; grad_cost [batch][H][W] and hess [batch][H*W][H*W] (per-sample
 * blocks of the Hessian of the batch mean; cross-sample blocks are zero) may be NULL.
 * With hess, all three come from the same samples of the second-order estimator. */
int da_sp_smooth_loss(const da_smooth_cfg *cfg, da_rng *rng, int batch, int H, int W,
                      const double *cost, const double *target, double *loss,
                      double *grad_cost, double *hess);
/* Tensor face: scalar loss; the gradient is computed in the forward pass from the same
 * samples (as da_sp_fy). target is only read during this call. */
da_tensor *da_sp_smooth_loss_op(da_ctx *ctx, da_tensor *cost, const double *target,
                                const da_smooth_cfg *cfg, da_rng *rng);

/* The same for any solver, on costs [batch][n] (1 <= n <= DA_SMOOTH_MAX_DIM, any sign:
 * the solver gets the perturbed costs unclipped). solve/user are borrowed until the
 * backward pass of the ops (as in da_smooth_op), and only during the plain call. */
da_tensor *da_sp_smooth_solver_op(da_ctx *ctx, da_tensor *cost, da_sp_solver_fn solve,
                                  void *user, const da_smooth_cfg *cfg, da_rng *rng);
int da_sp_smooth_solver_loss(const da_smooth_cfg *cfg, da_rng *rng, int batch, int n,
                             da_sp_solver_fn solve, void *user, const double *cost,
                             const double *target, double *loss, double *grad_cost,
                             double *hess);
da_tensor *da_sp_smooth_solver_loss_op(da_ctx *ctx, da_tensor *cost, const double *target,
                                       da_sp_solver_fn solve, void *user,
                                       const da_smooth_cfg *cfg, da_rng *rng);

/* ---------------------------------------------------------------- metrics */
typedef struct {
    double exact_match; /* fraction of samples whose path equals the target exactly */
    double cost_ratio;  /* mean of <true_cost, pred> / <true_cost, target> */
    double hamming;     /* mean over samples of the number of differing vertices */
} da_sp_metrics;

/* Metrics of predicted paths against target paths (entries > 0.5 count as on the path),
 * true_cost [batch][H][W] finite >= 0 with <true_cost, target> > 0 per sample. */
int da_sp_metrics_eval(int batch, int H, int W, const double *pred, const double *target,
                       const double *true_cost, da_sp_metrics *m);

#endif
