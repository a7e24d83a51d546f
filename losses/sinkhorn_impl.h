/* sinkhorn_impl.h - internal (not installed): the row computations shared by
 * sinkhorn.c (drivers, faces, loss) and sinkhorn_row.c (one row in the log or the
 * scaling domain), and the entry points with every row in the log domain:
 * da_sinkhorn_sort and da_sinkhorn_loss iterate a row on the scalings exp(u), exp(v)
 * when its kernel exp(-C / eps) stays far from underflow (sinkhorn.h); the *_log_domain
 * versions run the log-domain iterations for every row, the reference that the tests
 * hold the scaling domain to. Same arguments, checks and errors as the public ones. */
#ifndef DA_SINKHORN_IMPL_H
#define DA_SINKHORN_IMPL_H

#include "sinkhorn.h"

typedef struct {
    int n, iters;
    double inv_eps;
    int log_only; /* every row in the log domain (sinkhorn_impl.h) */
} da_sk_problem;

/* per-thread scratch */
typedef struct {
    double *y;              /* [n] targets j / (n - 1) */
    double *z, *xt;         /* [n] standardised and squashed inputs */
    double *buf;            /* [n] LSE arguments, a row of P, reverse-pass weights */
    double *ubar, *vbar, *vbar_next, *dxt, *direct; /* [n] reverse pass */
    double *cols, *prod;    /* [3][n] right-hand sides of K and their products with K */
    double *K;              /* [n][n] exp(-C / eps), scaling domain */
    double *U, *V;          /* [iters + 1][n] potentials, when the caller keeps none */
    double *P;              /* [n][n] loss only: P, then d loss / d P */
    double sd;              /* the row's standard deviation (squashing) */
    int scaling;            /* the row runs in the scaling domain */
} da_sk_ws;

/* squashing, the row's domain (ws->scaling) and, in the scaling domain, K */
void da_sk_prepare_row(const da_sk_problem *pb, da_sk_ws *ws, const double *x);
/* U, V [iters + 1][n]: the potentials of every iteration t = 0..T of the prepared row
 * (log potentials, or their exponentials in the scaling domain) */
void da_sk_iterate(const da_sk_problem *pb, da_sk_ws *ws, double *U, double *V);
/* P [n][n], sorted [n], ranks [n], each optional, from the last potentials u, v */
void da_sk_outputs(const da_sk_problem *pb, da_sk_ws *ws, const double *x, const double *u,
                   const double *v, double *P, double *sorted, double *ranks);
/* grad [n] (+)= J^T (cot_P, cot_sorted, cot_ranks) of the prepared row (cotangents may
 * be NULL); U, V from da_sk_iterate */
void da_sk_backward_row(const da_sk_problem *pb, da_sk_ws *ws, const double *x,
                        const double *U, const double *V, const double *cP, const double *cs,
                        const double *cr, double *grad, int accumulate);
/* scratch of one thread; own_potentials: U, V here; with_P: the [n][n] loss buffer.
 * DA_ENOMEM (ws all NULL) or DA_OK; da_sk_ws_free releases it */
int da_sk_ws_alloc(da_sk_ws *ws, const da_sk_problem *pb, int own_potentials, int with_P);
void da_sk_ws_free(da_sk_ws *ws);

/* the public entry points with every row in the log domain */
int da_sinkhorn_sort_log_domain(const da_sinkhorn_cfg *cfg, int batch, const double *x,
                                double *P, double *sorted, double *ranks, const double *cot_P,
                                const double *cot_sorted, const double *cot_ranks,
                                double *grad_x);
int da_sinkhorn_loss_log_domain(const da_sinkhorn_cfg *cfg, int batch, const double *scores,
                                const double *targets, double *loss, double *grad);

#endif
