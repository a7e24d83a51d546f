/* ranking.h - every ranking loss of losses/ behind one name, for benchmarks, sweeps and
 * Newton losses.
 *
 * A method spec is a family name followed by ':'-separated options, either a bare word or
 * key=value (defaults in brackets):
 *   odd_even[:SIGMOID][:steepness=S][:art_lambda=A]    sorting network (sortnet.h)
 *   bitonic[:SIGMOID][:steepness=S][:art_lambda=A]     SIGMOID one of logistic,
 *                                                      logistic_phi, gaussian, reciprocal,
 *                                                      cauchy, optimal [cauchy; S 10; A 0.25]
 *   neuralsort[:tau=T]                                 NeuralSort [T 1]
 *   softsort[:tau=T]                                   SoftSort, p = 1 [T 1]
 *   sinkhorn[:epsilon=E][:iterations=I]                OT sort [E 0.1, I 50]
 *   fast_soft_rank[:l2|kl][:strength=S]                PAV soft ranks, MSE to the true
 *                                                      ranks [l2, S 1]
 * e.g. "odd_even:cauchy:steepness=10", "neuralsort:tau=0.5", "fast_soft_rank:l2".
 *
 * Every loss takes scores [batch][n] and targets [batch][n] whose ascending order is the
 * true ranking, and is the MEAN over the batch (see each family's header for its
 * per-sample loss); gradients and Hessians are those of that batch mean.
 * Ownership: da_ranking_new allocates, da_ranking_free frees (NULL is a no-op); a method
 * is immutable and may be shared between threads. */
#ifndef DA_RANKING_H
#define DA_RANKING_H

#include "tensor.h"

typedef enum {
    DA_RANK_SORTNET = 0,
    DA_RANK_NEURALSORT,
    DA_RANK_SOFTSORT,
    DA_RANK_SINKHORN,
    DA_RANK_FAST_SOFT_RANK
} da_ranking_family;

typedef struct da_ranking da_ranking;

/* Parse spec for sets of n items. NULL (DA_EINVAL unknown name/option, DA_ERANGE bad
 * value) on error. */
da_ranking *da_ranking_new(const char *spec, int n);
void da_ranking_free(da_ranking *r);
da_ranking_family da_ranking_family_of(const da_ranking *r);
int da_ranking_n(const da_ranking *r);
/* The canonical spec with every parameter spelled out, e.g.
 * "odd_even:cauchy:steepness=10:art_lambda=0.25". */
const char *da_ranking_spec(const da_ranking *r);

/* Plain-array face: batch-mean loss and its gradient [batch][n] (grad may be NULL). */
int da_ranking_loss(const da_ranking *r, int batch, const double *scores,
                    const double *targets, double *loss, double *grad);
/* Per-sample Hessians H [batch][n][n] of the batch-mean loss w.r.t. each row of scores
 * (cross-sample blocks are zero). Exact for the sorting networks, NeuralSort and
 * SoftSort; central differences of the exact gradient (step 1e-5 max(1, |x|)) for
 * Sinkhorn and fast_soft_rank. *exact (may be NULL) tells which. */
int da_ranking_hessian(const da_ranking *r, int batch, const double *scores,
                       const double *targets, double *H, int *exact);
/* Tensor face: scores [batch][n] (F32/F64) -> scalar loss; targets copied. */
da_tensor *da_ranking_loss_op(da_ctx *ctx, const da_ranking *r, da_tensor *scores,
                              const double *targets);

#endif
