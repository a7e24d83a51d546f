/* ranking_metrics.c - exact match / element-wise ranking accuracy (diffsort), Spearman,
 * Kendall tau-b and top-k accuracy. See ranking_metrics.h for the definitions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "alloc.h"
#include "ranking_metrics.h"

#define MAX_N (1 << 24)
#define MAX_N_KENDALL (1 << 16)

void da_rank_argsort(int n, const double *x, int *order, int *scratch)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    int *src = order, *dst = scratch;
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n;
            int hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) /* take the left run on ties: stable */
                dst[k++] = x[src[j]] < x[src[i]] ? src[j++] : src[i++];
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        int *t = src;
        src = dst;
        dst = t;
    }
    if (src != order)
        memcpy(order, src, (size_t)n * sizeof *order);
}

static int check_values(const char *fn, const char *what, const double *x, long count)
{
    if (!x)
        return da_set_error(DA_EINVAL, "%s: %s is NULL", fn, what);
    if (!da_all_finite(x, count))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in %s", fn, what);
    return DA_OK;
}

/* batch >= 1, n in [n_min, n_max], both arrays present and finite */
static int check_pair(const char *fn, int batch, int n, int n_min, int n_max, const double *a,
                      const char *a_name, const double *b, const char *b_name, const void *out)
{
    if (!out)
        return da_set_error(DA_EINVAL, "%s: NULL output", fn);
    if (batch < 1)
        return da_set_error(DA_ERANGE, "%s: batch %d < 1", fn, batch);
    if (n < n_min || n > n_max)
        return da_set_error(DA_ERANGE, "%s: n %d outside [%d, %d]", fn, n, n_min, n_max);
    int rc = check_values(fn, a_name, a, (long)batch * n);
    return rc ? rc : check_values(fn, b_name, b, (long)batch * n);
}

/* 1 if the stable argsorts of a[0..m) and b[0..m) agree at every rank; counts the
 * agreeing ranks into *hits when hits != NULL. ws holds 3 m ints. */
static int same_order(int m, const double *a, const double *b, int *ws, long *hits)
{
    int *oa = ws, *ob = ws + m, *scratch = ws + 2 * m;
    da_rank_argsort(m, a, oa, scratch);
    da_rank_argsort(m, b, ob, scratch);
    int all = 1;
    for (int r = 0; r < m; r++) {
        int ok = oa[r] == ob[r];
        all &= ok;
        if (hits)
            *hits += ok;
    }
    return all;
}

int da_ranking_accuracy(int batch, int n, const double *scores, const double *targets,
                        da_ranking_acc *acc)
{
    const char *fn = "da_ranking_accuracy";
    int rc = check_pair(fn, batch, n, 1, MAX_N, scores, "scores", targets, "targets", acc);
    if (rc)
        return rc;
    int *ws = da_malloc((size_t)3 * n * sizeof *ws);
    if (!ws)
        return da_set_error(DA_ENOMEM, "%s: out of memory", fn);
    int m5 = n < 5 ? n : 5;
    long em = 0, em5 = 0, hits = 0;
    for (int b = 0; b < batch; b++) {
        const double *s = scores + (long)b * n, *t = targets + (long)b * n;
        em += same_order(n, s, t, ws, &hits);
        em5 += same_order(m5, s, t, ws, NULL);
    }
    da_free(ws);
    acc->em = (double)em / batch;
    acc->ew = (double)hits / ((double)batch * n);
    acc->em5 = (double)em5 / batch;
    return DA_OK;
}

/* rank[i] = 0-based ascending rank of x[i], ties get the mean of their ranks */
static void average_ranks(int n, const double *x, int *order, int *scratch, double *rank)
{
    da_rank_argsort(n, x, order, scratch);
    for (int r = 0; r < n;) {
        int e = r + 1;
        while (e < n && x[order[e]] == x[order[r]])
            e++;
        double avg = 0.5 * (r + e - 1);
        for (int k = r; k < e; k++)
            rank[order[k]] = avg;
        r = e;
    }
}

/* Pearson correlation of u and v; 0 if either is constant */
static double pearson(int n, const double *u, const double *v)
{
    double mu = 0, mv = 0;
    for (int i = 0; i < n; i++) {
        mu += u[i];
        mv += v[i];
    }
    mu /= n;
    mv /= n;
    double suv = 0, suu = 0, svv = 0;
    for (int i = 0; i < n; i++) {
        suv += (u[i] - mu) * (v[i] - mv);
        suu += (u[i] - mu) * (u[i] - mu);
        svv += (v[i] - mv) * (v[i] - mv);
    }
    return suu > 0 && svv > 0 ? suv / sqrt(suu * svv) : 0.0;
}

int da_spearman(int batch, int n, const double *a, const double *b, double *rho)
{
    const char *fn = "da_spearman";
    int rc = check_pair(fn, batch, n, 2, MAX_N, a, "a", b, "b", rho);
    if (rc)
        return rc;
    int *iws = da_malloc((size_t)2 * n * sizeof *iws);
    double *ranks = da_malloc((size_t)2 * n * sizeof *ranks); /* [2][n] */
    if (!iws || !ranks) {
        da_free(iws);
        da_free(ranks);
        return da_set_error(DA_ENOMEM, "%s: out of memory", fn);
    }
    double sum = 0;
    for (int s = 0; s < batch; s++) {
        average_ranks(n, a + (long)s * n, iws, iws + n, ranks);
        average_ranks(n, b + (long)s * n, iws, iws + n, ranks + n);
        sum += pearson(n, ranks, ranks + n);
    }
    da_free(iws);
    da_free(ranks);
    *rho = sum / batch;
    return DA_OK;
}

static int sign_of(double d)
{
    return (d > 0) - (d < 0);
}

static double kendall_one(int n, const double *a, const double *b)
{
    long concord = 0, untied_a = 0, untied_b = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            int sa = sign_of(a[i] - a[j]), sb = sign_of(b[i] - b[j]);
            concord += sa * sb;
            untied_a += sa != 0;
            untied_b += sb != 0;
        }
    if (!untied_a || !untied_b)
        return 0.0;
    return (double)concord / sqrt((double)untied_a * (double)untied_b);
}

int da_kendall_tau(int batch, int n, const double *a, const double *b, double *tau)
{
    int rc = check_pair("da_kendall_tau", batch, n, 2, MAX_N_KENDALL, a, "a", b, "b", tau);
    if (rc)
        return rc;
    double sum = 0;
    for (int s = 0; s < batch; s++)
        sum += kendall_one(n, a + (long)s * n, b + (long)s * n);
    *tau = sum / batch;
    return DA_OK;
}

int da_topk_accuracy(int batch, int classes, const double *logits, const int *labels, int k,
                     double *acc)
{
    const char *fn = "da_topk_accuracy";
    if (!labels || !acc)
        return da_set_error(DA_EINVAL, "%s: NULL labels or output", fn);
    if (batch < 1 || classes < 1 || classes > MAX_N)
        return da_set_error(DA_ERANGE, "%s: batch %d or classes %d out of range", fn, batch,
                            classes);
    if (k < 1 || k > classes)
        return da_set_error(DA_ERANGE, "%s: k %d outside [1, %d]", fn, k, classes);
    int rc = check_values(fn, "logits", logits, (long)batch * classes);
    if (rc)
        return rc;
    for (int s = 0; s < batch; s++)
        if (labels[s] < 0 || labels[s] >= classes)
            return da_set_error(DA_ERANGE, "%s: label %d of sample %d outside [0, %d)", fn,
                                labels[s], s, classes);
    long hits = 0;
    for (int s = 0; s < batch; s++) {
        const double *l = logits + (long)s * classes;
        int y = labels[s], rank = 0;
        for (int c = 0; c < classes; c++)
            rank += l[c] > l[y] || (c < y && l[c] == l[y]);
        hits += rank < k;
    }
    *acc = (double)hits / batch;
    return DA_OK;
}
