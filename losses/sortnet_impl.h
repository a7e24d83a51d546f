/* sortnet_impl.h - internals of the sorting networks shared by sortnet.c,
 * sortnet_loss.c and topk.c. Not installed; not part of the public API.
 *
 * Every comparator c on wires a < b mixes two rows of a state with the symmetric
 * matrix [[c1, c2], [c2, c1]]:
 *     u' = c1 u + c2 w,  w' = c2 u + c1 w       (u = row a, w = row b),
 * c1 = alpha, c2 = 1 - alpha, or swapped (c1 = 1 - alpha) when the comparator writes
 * its min to b (flip). With sign = +1 (or -1 when flipped), d c1 / d alpha = sign and
 * d c2 / d alpha = -sign. The same mix serves
 *   - the values (one lane), the rows of P (lanes = rows of P, layers ascending), and
 *     the top-k columns of P (lanes = columns, layers descending, DiffTopk's backward
 *     propagation), because the matrix is its own transpose;
 *   - the reverse pass: (g_u, g_w) <- mix(g_u', g_w') and
 *     d L / d alpha += sign * sum_lanes (g_u' - g_w') (u - w).
 * A sweep records D[c][lane] = u - w (before the mix) for the reverse pass. Tangent
 * (forward-mode) versions carry the directional derivatives for Hessian-vector
 * products (forward over reverse). */
#ifndef DA_SORTNET_IMPL_H
#define DA_SORTNET_IMPL_H

#include "sortnet.h"

typedef struct {
    int a, b; /* wires, a < b; alpha = f(x[b] - x[a]) */
    int flip; /* 0: min to a, max to b; 1: min to b, max to a */
} da_sortnet_comp;

struct da_sortnet {
    da_sortnet_kind kind;
    da_sigmoid sigmoid;
    int n;
    double steepness, art_lambda;
    int n_layers;
    int n_comp;
    int *layer_start;      /* [n_layers + 1] first comparator of each layer */
    da_sortnet_comp *comp; /* [n_comp] layer by layer */
};

/* Per-sample record of the values pass, arrays of n_comp doubles. */
typedef struct {
    double *alpha;   /* alpha_c */
    double *d1, *d2; /* f'(v), f''(v), v = x[b] - x[a] */
    double *diff;    /* x[a] - x[b] before the comparator */
    double *alpha_t; /* tangents of alpha and diff (NULL without a tangent) */
    double *diff_t;
} da_sortnet_tape;

/* Point tape's arrays into buf (4 n_comp doubles, 6 with tangents). */
void da_sortnet_tape_init(const da_sortnet *net, da_sortnet_tape *tape, double *buf,
                          int with_tangent);

/* Values pass over one sample: x [n] (xt [n] its tangent, or NULL), scratch [2n].
 * Fills the tape; sorted [n] (or NULL) gets the ascending soft-sorted values. */
void da_sortnet_values_forward(const da_sortnet *net, const double *x, const double *xt,
                               double *scratch, da_sortnet_tape *tape, double *sorted);

/* Reverse of the values pass: g_sorted [n] (or NULL = 0) and g_alpha [n_comp] (extra
 * d L / d alpha from the mixed rows, or NULL) -> grad_x [n] (overwritten). With a
 * tangent tape, g_sorted_t / g_alpha_t (or NULL) give grad_x_t [n], the tangent of
 * grad_x. scratch [2n]. */
void da_sortnet_values_backward(const da_sortnet *net, const da_sortnet_tape *tape,
                                const double *g_sorted, const double *g_alpha,
                                const double *g_sorted_t, const double *g_alpha_t,
                                double *scratch, double *grad_x, double *grad_x_t);

/* Sweep of a state S [n][R] through the network: layers ascending (descending = 0)
 * or descending (descending = 1). D [n_comp][R] (or NULL) records u - w at each
 * comparator. With St (tangent state, may be NULL) also Dt. */
void da_sortnet_sweep(const da_sortnet *net, const da_sortnet_tape *tape, int descending,
                      int R, double *S, double *D, double *St, double *Dt);

/* Reverse of a sweep (layers in the opposite order of that sweep): G [n][R] holds the
 * cotangent of the swept state; accumulates d L / d alpha into g_alpha [n_comp].
 * The cotangent of the initial state is not needed (it is a constant) and is not
 * formed, so G is left partly propagated. With Gt / Dt / g_alpha_t (or NULL) the
 * tangents. */
void da_sortnet_sweep_back(const da_sortnet *net, const da_sortnet_tape *tape,
                           int descending, int R, double *G, const double *D,
                           double *g_alpha, double *Gt, const double *Dt,
                           double *g_alpha_t);

/* Rows [i0, i0 + R) of the identity as lanes: S[w][r] = (w == i0 + r), S [n][R]. */
void da_sortnet_identity_block(int n, int i0, int R, double *S);

/* Shared argument checks: 0 or an error code with message (fn = caller's name). */
int da_sortnet_check_input(const char *fn, const da_sortnet *net, int batch,
                           const double *x, long len);

/* 1 if a batch is worth an OpenMP team: at least two samples and about 2^16 lane
 * operations (lanes = state width per comparator, e.g. n for P, k for top-k). */
int da_sortnet_parallel(const da_sortnet *net, int batch, int lanes);

/* Lanes per block so that the D records of a block take about 4 MB (1 <= R <= lanes),
 * with `records` arrays of n_comp * R doubles. */
int da_sortnet_block_lanes(const da_sortnet *net, int lanes, int records);

#endif
