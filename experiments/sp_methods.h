/* sp_methods.h - the shortest-path training losses of experiments/shortest_path by name,
 * on a vertex-cost grid (losses/shortest_path.h: Dijkstra) or on any black-box linear
 * solver over n costs (the PyEPO edge-cost grid). Program code: errors exit.
 *
 * A method spec is a family and ':'-separated options, bare words or key=value (as
 * losses/ranking.h; defaults in brackets):
 *   blackbox[:lambda=L][:raw]                   Vlastelica et al., Hamming loss [20]; on a
 *                                               grid the costs are normalised per map
 *                                               (da_sp_blackbox_normalized: without it
 *                                               the costs drift to 0), raw: as the paper
 *   relaxed_for[:beta=B][:n_iter=N][:l1|l2][:stop_at_source]
 *   relaxed_while[:beta=B][:l1|l2][:epsilon=E][:max_iter=M]
 *                                               AlgoVision's relaxed Bellman-Ford
 *                                               (defaults: da_sp_relaxed_default)
 *   perturbed[:gaussian|gumbel][:sigma=S][:samples=M]
 *                                               Hamming loss of the perturbed optimizer's
 *                                               mean path (Berthet et al.) [gaussian, 1, 10]
 *   fy[:gaussian|gumbel][:sigma=S][:samples=M]  Fenchel-Young loss [gaussian, 1, 10]
 *   smooth_solver[:dist=D][:samples=S][:eps=E][:cv=none|fx|loo][:sampling=X][:antithetic]
 *                                               Hamming loss of the smoothed solver
 *   smooth_loss[...the same options]            the smoothed Hamming loss itself
 *                                               [gaussian, 10, 1, loo, default]
 * Every loss is a mean over the batch of a per-sample loss against the true path.
 * On a generic solver: relaxed_* are unavailable (they are vertex-grid algorithms);
 * perturbed is the smoothing estimator with MC samples and no baseline, which is exactly
 * Berthet et al.'s estimator (score z for the Gaussian, 1 - e^-z for the Gumbel); the
 * blackbox and FY estimators are the same formulas as the library's, without the clip at
 * 0 (a DAG solver takes costs of any sign). */
#ifndef SP_METHODS_H
#define SP_METHODS_H

#include "diffalg.h"

typedef enum {
    SP_BLACKBOX = 0,
    SP_RELAXED_FOR,
    SP_RELAXED_WHILE,
    SP_PERTURBED,
    SP_FY,
    SP_SMOOTH_SOLVER,
    SP_SMOOTH_LOSS
} sp_family;

typedef struct {
    sp_family family;
    char spec[256]; /* canonical spec, every parameter spelled out */
    da_sp_blackbox_cfg blackbox;
    int blackbox_raw; /* 1: the paper's form on a grid (no per-map normalisation) */
    da_sp_relaxed_cfg relaxed;
    da_sp_perturbed_cfg perturbed;
    da_smooth_cfg smooth;
} sp_method;

/* The problem the costs describe: a vertex grid H x W (solve == NULL) or n costs of a
 * generic solver. */
typedef struct {
    int H, W, n;
    da_sp_solver_fn solve;
    void *user;
} sp_problem;

/* Parse spec (exits with status 2 and a message on a bad spec). */
void sp_method_parse(const char *spec, const sp_problem *p, sp_method *m);

/* The method's loss of cost (F32/F64, [B][H][W] for a grid, [B][n] for a solver) against
 * target [B][n] (0/1 true paths), a scalar node. NULL on error (da_last_error). */
da_tensor *sp_method_loss(da_ctx *ctx, const sp_method *m, const sp_problem *p,
                          da_tensor *cost, const double *target, da_rng *rng);

/* smooth_loss only: value, gradient [B][n] and Hessians [B][n][n] of the batch mean. */
int sp_method_hessian(const sp_method *m, const sp_problem *p, da_rng *rng, int B,
                      const double *cost, const double *target, double *loss, double *grad,
                      double *hess);

#endif
