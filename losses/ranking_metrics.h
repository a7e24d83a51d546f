/* ranking_metrics.h - evaluation metrics for ranking and classification.
 *
 * All arrays are plain row-major doubles, [batch][n]. Every metric is the mean over the
 * batch of a per-sample value, returned through an out pointer; the functions allocate
 * their own scratch and free it before returning (nothing to free for the caller).
 *
 * Orders are stable ascending argsorts: equal values keep their index order. So
 * tied scores are ranked by position, which makes every metric deterministic (diffsort
 * uses torch.argsort, whose order on ties is unspecified).
 *
 * Errors: DA_EINVAL (NULL pointer), DA_ERANGE (batch < 1, n out of range, k or a label
 * out of range), DA_ENAN (NaN/Inf in scores, targets or logits), DA_ENOMEM. */
#ifndef DA_RANKING_METRICS_H
#define DA_RANKING_METRICS_H

/* Stable ascending argsort: order[r] = index of the element of rank r (r = 0 is the
 * smallest; ties by index). scratch holds n ints. x must be free of NaN (not checked:
 * this is a building block; the public metrics check their inputs). n >= 1. */
void da_rank_argsort(int n, const double *x, int *order, int *scratch);

/* diffsort's ranking accuracies (Petersen et al. 2021, experiments/main.py), with
 * o(v) the ascending argsort of v:
 *   em  = fraction of samples with o(scores) == o(targets) at all n ranks (exact match);
 *   ew  = fraction of all batch*n ranks r with o(scores)[r] == o(targets)[r];
 *   em5 = exact match of the first m = min(5, n) ELEMENTS: the samples whose first m
 *         scores are in the same relative order as their first m targets. This is
 *         diffsort's definition (it restricts both arrays to [:, :5] before argsorting),
 *         which makes em5 comparable across n; it is not "the 5 smallest ranks right".
 * n in [1, 1<<24]. */
typedef struct {
    double em, ew, em5;
} da_ranking_acc;

int da_ranking_accuracy(int batch, int n, const double *scores, const double *targets,
                        da_ranking_acc *acc);

/* Spearman's rank correlation, mean over the batch. Per sample: the Pearson correlation
 * of the ranks of a[b] and b[b], with tied values given their average rank (so it is
 * 1 - 6 sum d^2 / (n (n^2 - 1)) when there are no ties). A sample in which a or b is
 * constant has no defined correlation and counts as 0. n in [2, 1<<24]. */
int da_spearman(int batch, int n, const double *a, const double *b, double *rho);

/* Kendall's tau-b, mean over the batch. Per sample, over the pairs i < j with
 * s_a = sign(a_i - a_j), s_b = sign(b_i - b_j):
 *   tau_b = sum s_a s_b / sqrt(#{s_a != 0} #{s_b != 0})
 * (tau-a when there are no ties). A sample in which a or b is constant counts as 0.
 * O(n^2) per sample; n in [2, 1<<16]. */
int da_kendall_tau(int batch, int n, const double *a, const double *b, double *tau);

/* Top-k classification accuracy: the fraction of samples whose label is among the k
 * largest of its `classes` logits. Ties are broken by class index, lower index first
 * (as a stable descending sort): the label's rank is
 *   #{c : l_c > l_y} + #{c < y : l_c == l_y},
 * and the sample is a hit iff that rank < k. logits [batch][classes], labels [batch] in
 * [0, classes), k in [1, classes]. */
int da_topk_accuracy(int batch, int classes, const double *logits, const int *labels, int k,
                     double *acc);

#endif
