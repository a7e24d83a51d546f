/* relperm.c - column-softmax relaxed permutations: forward, VJP, cross-entropy ranking
 * loss, exact Hessian-vector products and Hessians, tensor faces (see relperm.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "relperm.h"

/* ---- stable ascending argsort (ties by index, as da_rank_argsort) ---- */
typedef struct {
    double v;
    int i;
} keyed;

/* a sorts before b */
static int keyed_before(keyed a, keyed b)
{
    return a.v < b.v || (a.v == b.v && a.i < b.i);
}

/* up to this size an insertion sort (about n^2/4 moves, one mispredicted branch per
 * element) beats a merge sort; above it, runs of RUN_LENGTH are sorted so, then merged */
#define INSERTION_SORT_MAX 32
#define RUN_LENGTH 16

/* order [n] by insertion into a sorted prefix; equal values keep index order */
static void insertion_argsort(int n, const double *x, int *order)
{
    double v[INSERTION_SORT_MAX]; /* [n] x along order */
    for (int i = 0; i < n; i++) {
        int k = i;
        for (; k > 0 && v[k - 1] > x[i]; k--) {
            v[k] = v[k - 1];
            order[k] = order[k - 1];
        }
        v[k] = x[i];
        order[k] = i;
    }
}

/* dst = the runs of src of length width merged in pairs; branch-free merges (random
 * scores defeat branch prediction) */
static void merge_runs(int n, int width, const keyed *src, keyed *dst)
{
    for (int lo = 0; lo < n; lo += 2 * width) {
        int mid = lo + width < n ? lo + width : n;
        int hi = lo + 2 * width < n ? lo + 2 * width : n;
        int i = lo, j = mid, k = lo;
        while (i < mid && j < hi) {
            int right = keyed_before(src[j], src[i]);
            dst[k++] = right ? src[j] : src[i];
            j += right;
            i += !right;
        }
        while (i < mid)
            dst[k++] = src[i++];
        while (j < hi)
            dst[k++] = src[j++];
    }
}

/* order [n]: stable ascending argsort; keys: 2n scratch pairs. Bottom-up merge sort of
 * (value, index) pairs from insertion-sorted runs */
static void argsort(int n, const double *x, int *order, keyed *keys)
{
    if (n <= INSERTION_SORT_MAX) {
        insertion_argsort(n, x, order);
        return;
    }
    keyed *src = keys, *dst = keys + n;
    for (int lo = 0; lo < n; lo += RUN_LENGTH) {
        int hi = lo + RUN_LENGTH < n ? lo + RUN_LENGTH : n;
        for (int i = lo; i < hi; i++) {
            int k = i;
            for (; k > lo && src[k - 1].v > x[i]; k--)
                src[k] = src[k - 1];
            src[k] = (keyed){x[i], i};
        }
    }
    for (int width = RUN_LENGTH; width < n; width *= 2) {
        merge_runs(n, width, src, dst);
        keyed *t = src;
        src = dst;
        dst = t;
    }
    for (int i = 0; i < n; i++)
        order[i] = src[i].i;
}

/* ---- per-thread workspace: one allocation, carved into buffers ---- */
typedef struct {
    double *Z;     /* [n][n] logits, then cotangents of the logits */
    double *P;     /* [n][n] the softmax when the caller keeps no P */
    double *U;     /* [n][n] tangent J v (Hessian products) */
    double *lse;   /* [n] column log-sum-exp */
    double *tmp;   /* [2n] scratch of the engine */
    double *vec;   /* [n] */
    double *ktmp;  /* [DA_RELPERM_KIND_TMP n] scratch of the kind's callbacks */
    int *order;    /* [n] ascending argsort of x */
    int *target;   /* [n] ascending argsort of the targets */
    keyed *keys;   /* [2n] argsort scratch */
    int *kitmp;    /* [DA_RELPERM_KIND_ITMP n] int scratch of the kind's callbacks */
} workspace;

/* matrices = 0: no Z, P, U (a kind's fused loss needs none) */
static workspace *workspace_new(int n, int matrices)
{
    size_t nn = matrices ? (size_t)n * n : 0;
    size_t doubles = 3 * nn + (4 + DA_RELPERM_KIND_TMP) * (size_t)n;
    size_t ints = (2 + DA_RELPERM_KIND_ITMP) * (size_t)n;
    workspace *w = da_malloc(sizeof *w + 2 * (size_t)n * sizeof(keyed) +
                             doubles * sizeof(double) + ints * sizeof(int));
    if (!w)
        return NULL;
    w->keys = (keyed *)(w + 1);
    double *d = (double *)(w->keys + 2 * n);
    w->Z = matrices ? d : NULL;
    w->P = matrices ? d + nn : NULL;
    w->U = matrices ? d + 2 * nn : NULL;
    w->lse = d + 3 * nn;
    w->tmp = w->lse + n;
    w->vec = w->tmp + 2 * n;
    w->ktmp = w->vec + n;
    w->order = (int *)(w->ktmp + DA_RELPERM_KIND_TMP * n);
    w->target = w->order + n;
    w->kitmp = w->target + n;
    return w;
}

double da_relperm_sum_log(int n, const double *s)
{
    double sum = 0.0;
    for (int j0 = 0; j0 < n; j0 += 64) {
        double prod = 1.0;
        for (int j = j0; j < n && j < j0 + 64; j++)
            prod *= s[j];
        sum += log(prod);
    }
    return sum;
}

/* ---- the column softmax and its VJP ---- */

/* below this, exp() is subnormal or 0 (and glibc takes a slow path): counted as 0, which
 * changes a column sum (>= 1) by less than 1e-307 relative */
#define EXP_FLUSH (-708.0)

/* P[:, j] = softmax_i Z[:, j] and lse[j] = log sum_i exp Z[i][j]; sum: n doubles */
static void column_softmax(int n, const double *Z, double *P, double *lse, double *sum)
{
    for (int j = 0; j < n; j++) {
        lse[j] = -INFINITY; /* the column max for now */
        sum[j] = 0.0;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            lse[j] = Z[i * n + j] > lse[j] ? Z[i * n + j] : lse[j];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double d = Z[i * n + j] - lse[j];
            double e = d > EXP_FLUSH ? exp(d) : 0.0;
            P[i * n + j] = e;
            sum[j] += e;
        }
    for (int j = 0; j < n; j++) {
        lse[j] += log(sum[j]);
        sum[j] = 1.0 / sum[j];
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            P[i * n + j] *= sum[j];
}

/* out[i][j] = P[i][j] (G[i][j] - sum_k P[k][j] G[k][j]); out may be G; dot: n doubles.
 * The softmax Jacobian is symmetric, so this is also its forward product. */
static void softmax_vjp(int n, const double *P, const double *G, double *out, double *dot)
{
    for (int j = 0; j < n; j++)
        dot[j] = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            dot[j] += P[i * n + j] * G[i * n + j];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            out[i * n + j] = P[i * n + j] * (G[i * n + j] - dot[j]);
}

/* ---- one batch call: shared arguments and a per-sample job ---- */
typedef struct {
    const da_relperm_kind *k;
    int n, batch;
    double tau;
    const double *x;       /* [batch][n] */
    const double *targets; /* [batch][n] or NULL */
    const double *in;      /* cot [batch][n][n] (apply) or v [batch][n] (hvp) */
    double *P;             /* [batch][n][n] or NULL */
    double *out;           /* grad_x, per-sample losses, hv or H */
    double *grad;          /* loss gradient or NULL */
    int fused;             /* the kind's fused loss: no [n][n] workspace */
} job;

typedef void (*sample_fn)(const job *jb, int b, workspace *w);

static int run_batch(const job *jb, sample_fn f)
{
    int n = jb->n, fail = 0;
    /* worth a second thread from about 20 us of work (the fused loss is O(n) or a light
     * O(n^2) per sample, the matrix paths n^2 exponentials) */
    long work = jb->fused ? 16L * jb->batch * n : (long)jb->batch * n * n;
#pragma omp parallel if (jb->batch > 1 && work >= 4096)
    {
        workspace *w = workspace_new(n, !jb->fused);
#pragma omp for schedule(static)
        for (int b = 0; b < jb->batch; b++) {
            if (!w) {
#pragma omp atomic write
                fail = 1;
                continue;
            }
            f(jb, b, w);
        }
        da_free(w);
    }
    return fail ? da_set_error(DA_ENOMEM, "%s: out of memory", jb->k->name) : DA_OK;
}

/* logits and column softmax of sample b into P (Grover et al. 2019 eq. 5; Prillo and
 * Eisenschlos 2020 eq. 1; one softmax per sorted position) */
static void forward_one(const job *jb, int b, workspace *w, double *P)
{
    const double *x = jb->x + (long)b * jb->n;
    argsort(jb->n, x, w->order, w->keys);
    jb->k->logits(jb->n, jb->tau, x, w->order, w->Z, w->ktmp);
    column_softmax(jb->n, w->Z, P, w->lse, w->tmp);
}

static void apply_sample(const job *jb, int b, workspace *w)
{
    long nn = (long)jb->n * jb->n;
    double *P = jb->P ? jb->P + b * nn : w->P;
    forward_one(jb, b, w, P);
    if (!jb->in)
        return;
    softmax_vjp(jb->n, P, jb->in + b * nn, w->Z, w->tmp);
    jb->k->vjp(jb->n, jb->tau, jb->x + (long)b * jb->n, w->order, w->Z,
               jb->out + (long)b * jb->n, w->ktmp);
}

/* l_b = (1/n) sum_j (lse_j - Z[t_j][j]); dl_b/dZ = (P - Q)/n; grad = (1/batch) J^T dZ */
/* the kind's fused l_b and (1/batch) dl_b/dx: no [n][n] matrix is formed */
static void loss_sample(const job *jb, int b, workspace *w)
{
    int n = jb->n;
    const double *x = jb->x + (long)b * n;
    double *g = jb->grad ? jb->grad + (long)b * n : NULL;
    argsort(n, jb->targets + (long)b * n, w->target, w->keys);
    argsort(n, x, w->order, w->keys);
    jb->out[b] = jb->k->loss(n, jb->tau, x, w->order, w->target, g, w->ktmp, w->kitmp);
    for (int i = 0; g && i < n; i++)
        g[i] /= jb->batch;
}

/* hv = (1/(n batch)) J^T softmax_jac(P) J v for one sample's v (U in, hv out) */
static void hvp_one(const job *jb, int b, workspace *w, const double *v, double *hv)
{
    int n = jb->n;
    const double *x = jb->x + (long)b * n;
    jb->k->jvp(n, jb->tau, x, w->order, v, w->U, w->ktmp);
    softmax_vjp(n, w->P, w->U, w->U, w->tmp);
    jb->k->vjp(n, jb->tau, x, w->order, w->U, hv, w->ktmp);
    double scale = 1.0 / ((double)n * jb->batch);
    for (int i = 0; i < n; i++)
        hv[i] *= scale;
}

static void hvp_sample(const job *jb, int b, workspace *w)
{
    forward_one(jb, b, w, w->P);
    hvp_one(jb, b, w, jb->in + (long)b * jb->n, jb->out + (long)b * jb->n);
}

static void hessian_sample(const job *jb, int b, workspace *w)
{
    int n = jb->n;
    double *H = jb->out + (long)b * n * n, *col = w->tmp + n;
    forward_one(jb, b, w, w->P);
    for (int i = 0; i < n; i++)
        w->vec[i] = 0.0;
    for (int m = 0; m < n; m++) {
        w->vec[m] = 1.0;
        hvp_one(jb, b, w, w->vec, col);
        w->vec[m] = 0.0;
        for (int i = 0; i < n; i++)
            H[(long)i * n + m] = col[i];
    }
}

/* ---- validation ---- */

static int check_finite(const da_relperm_kind *k, const char *entry, const char *what,
                        const double *a, long count)
{
    if (!a)
        return da_set_error(DA_EINVAL, "%s%s: %s is NULL", k->name, entry, what);
    if (!da_all_finite(a, count))
        return da_set_error(DA_ENAN, "%s%s: NaN or Inf in %s", k->name, entry, what);
    return DA_OK;
}

static int check_common(const da_relperm_kind *k, const char *entry, int n, double tau,
                        int batch, const double *x)
{
    if (batch < 1)
        return da_set_error(DA_ERANGE, "%s%s: batch %d < 1", k->name, entry, batch);
    if (n < 2 || n > DA_RELPERM_MAX_N)
        return da_set_error(DA_ERANGE, "%s%s: n %d outside [2, %d]", k->name, entry, n,
                            DA_RELPERM_MAX_N);
    if (isnan(tau))
        return da_set_error(DA_ENAN, "%s%s: tau is NaN", k->name, entry);
    if (!(tau > 0) || isinf(tau))
        return da_set_error(DA_ERANGE, "%s%s: tau %g must be > 0 and finite", k->name, entry,
                            tau);
    int rc = check_finite(k, entry, "x", x, (long)batch * n);
    if (rc)
        return rc;
    double xmax = 0.0;
    for (long i = 0; i < (long)batch * n; i++)
        xmax = fabs(x[i]) > xmax ? fabs(x[i]) : xmax;
    if (3.0 * n * xmax / tau > 1e300)
        return da_set_error(DA_ERANGE, "%s%s: max|x| %g / tau %g overflows the logits",
                            k->name, entry, xmax, tau);
    return DA_OK;
}

/* ---- plain-array entry points ---- */

int da_relperm_apply(const da_relperm_kind *k, int n, double tau, int batch, const double *x,
                     double *P, const double *cot, double *grad_x)
{
    int rc = check_common(k, "_apply", n, tau, batch, x);
    if (rc)
        return rc;
    if ((!P && !grad_x) || !cot != !grad_x)
        return da_set_error(DA_EINVAL, "%s_apply: need P or grad_x, and cot with grad_x",
                            k->name);
    if (cot && (rc = check_finite(k, "_apply", "cot", cot, (long)batch * n * n)))
        return rc;
    job jb = {.k = k, .n = n, .batch = batch, .tau = tau, .x = x, .in = cot, .P = P,
              .out = grad_x};
    return run_batch(&jb, apply_sample);
}

int da_relperm_loss(const da_relperm_kind *k, int n, double tau, int batch, const double *x,
                    const double *targets, double *loss, double *grad)
{
    int rc = check_common(k, "_loss", n, tau, batch, x);
    if (!rc)
        rc = check_finite(k, "_loss", "targets", targets, (long)batch * n);
    if (rc)
        return rc;
    if (!loss)
        return da_set_error(DA_EINVAL, "%s_loss: loss is NULL", k->name);
    double *per_sample = da_malloc((size_t)batch * sizeof *per_sample);
    if (!per_sample)
        return da_set_error(DA_ENOMEM, "%s_loss: out of memory", k->name);
    job jb = {.k = k, .n = n, .batch = batch, .tau = tau, .x = x, .targets = targets,
              .out = per_sample, .grad = grad, .fused = 1};
    rc = run_batch(&jb, loss_sample);
    if (!rc) {
        double sum = 0.0;
        for (int b = 0; b < batch; b++)
            sum += per_sample[b];
        *loss = sum / batch;
    }
    da_free(per_sample);
    return rc;
}

int da_relperm_hvp(const da_relperm_kind *k, int n, double tau, int batch, const double *x,
                   const double *targets, const double *v, double *hv)
{
    int rc = check_common(k, "_hvp", n, tau, batch, x);
    if (!rc)
        rc = check_finite(k, "_hvp", "targets", targets, (long)batch * n);
    if (!rc)
        rc = check_finite(k, "_hvp", "v", v, (long)batch * n);
    if (rc)
        return rc;
    if (!hv)
        return da_set_error(DA_EINVAL, "%s_hvp: hv is NULL", k->name);
    job jb = {.k = k, .n = n, .batch = batch, .tau = tau, .x = x, .targets = targets, .in = v,
              .out = hv};
    return run_batch(&jb, hvp_sample);
}

int da_relperm_hessian(const da_relperm_kind *k, int n, double tau, int batch,
                       const double *x, const double *targets, double *H)
{
    int rc = check_common(k, "_hessian", n, tau, batch, x);
    if (!rc)
        rc = check_finite(k, "_hessian", "targets", targets, (long)batch * n);
    if (rc)
        return rc;
    if (!H)
        return da_set_error(DA_EINVAL, "%s_hessian: H is NULL", k->name);
    job jb = {.k = k, .n = n, .batch = batch, .tau = tau, .x = x, .targets = targets,
              .out = H};
    return run_batch(&jb, hessian_sample);
}

/* ---- tensor faces ---- */
typedef struct {
    const da_relperm_kind *k;
    int n, batch;
    double tau;
    const double *targets; /* [batch][n] ctx copy, NULL for the perm op */
} op_state;

static int loss_value(da_custom_args *a, double *out, double *grad)
{
    const op_state *st = a->state;
    return da_relperm_loss(st->k, st->n, st->tau, st->batch, a->in_data[0], st->targets, out,
                           grad);
}

static int loss_hvp(da_custom_args *a, const double *v, double *hv)
{
    const op_state *st = a->state;
    return da_relperm_hvp(st->k, st->n, st->tau, st->batch, a->in_data[0], st->targets, v, hv);
}

static int perm_forward(da_custom_args *a, double *out)
{
    const op_state *st = a->state;
    return da_relperm_apply(st->k, st->n, st->tau, st->batch, a->in_data[0], out, NULL, NULL);
}

static int perm_backward(da_custom_args *a, const double *og, double *const *ig)
{
    const op_state *st = a->state;
    long m = a->in[0]->size;
    if (!ig[0])
        return DA_OK;
    double *g = da_ctx_alloc(a->ctx, (size_t)m * sizeof *g);
    if (!g)
        return DA_ENOMEM;
    int rc = da_relperm_apply(st->k, st->n, st->tau, st->batch, a->in_data[0], NULL, og, g);
    for (long i = 0; i < m && !rc; i++)
        ig[0][i] += g[i];
    return rc;
}

/* a ctx state for scores of shape [batch][n] or [batch*n]; NULL on error */
static op_state *op_state_new(da_ctx *ctx, const char *entry, const da_relperm_kind *k, int n,
                              double tau, const da_tensor *scores)
{
    if (!ctx || !scores) {
        da_set_error(DA_EINVAL, "%s%s: NULL ctx or scores", k->name, entry);
        return NULL;
    }
    if (n < 2 || n > DA_RELPERM_MAX_N) {
        da_set_error(DA_ERANGE, "%s%s: n %d outside [2, %d]", k->name, entry, n,
                     DA_RELPERM_MAX_N);
        return NULL;
    }
    int ok2d = scores->ndim == 2 && scores->shape[1] == n;
    int ok1d = scores->ndim == 1 && scores->size % n == 0;
    if (!ok2d && !ok1d) {
        da_set_error(DA_ESHAPE, "%s%s: scores must be [batch][%d] or [batch*%d]", k->name,
                     entry, n, n);
        return NULL;
    }
    op_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (st)
        *st = (op_state){.k = k, .n = n, .batch = (int)(scores->size / n), .tau = tau};
    return st;
}

da_tensor *da_relperm_loss_op(da_ctx *ctx, const da_relperm_kind *k, int n, double tau,
                              da_tensor *scores, const double *targets)
{
    op_state *st = op_state_new(ctx, "", k, n, tau, scores);
    if (!st)
        return NULL;
    if (!targets) {
        da_set_error(DA_EINVAL, "%s: targets is NULL", k->name);
        return NULL;
    }
    double *copy = da_ctx_alloc(ctx, (size_t)scores->size * sizeof *copy);
    if (!copy)
        return NULL;
    memcpy(copy, targets, (size_t)scores->size * sizeof *copy);
    st->targets = copy;
    return da_op_loss(ctx, k->name, &scores, 1, loss_value, loss_hvp, st);
}

da_tensor *da_relperm_perm_op(da_ctx *ctx, const da_relperm_kind *k, int n, double tau,
                              da_tensor *scores)
{
    op_state *st = op_state_new(ctx, "_perm", k, n, tau, scores);
    if (!st)
        return NULL;
    int shape[3] = {st->batch, n, n};
    return da_op_custom(ctx, k->name, &scores, 1, 3, shape, perm_forward,
                        perm_backward, NULL, st);
}
