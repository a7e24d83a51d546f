/* pav.c - soft sort / soft rank by projection onto the permutahedron, solved by
 * isotonic regression with pool-adjacent-violators (Blondel et al. ICML 2020; see
 * pav.h for the conventions).
 *
 * Per row, with the input sorted so that the key sign * x is decreasing (s = sorted
 * keys, position i = 0..n-1) and w_i = n - i:
 *   rank, L2: v = iso(s/eps - w),                      r_perm(i) = s_i/eps - v_i
 *   rank, KL: v_B = LSE(s_B/eps) - log sum_B w,         r_perm(i) = exp(s_i/eps - v_i)
 *   sort, L2: v = iso(w/eps - s),                       sorted_i = sign (w_i/eps - v_i)
 *   sort, KL: v_B = LSE(w_B/eps) - LSE(s_B),            sorted_i = sign (w_i/eps - v_i)
 * where iso is the decreasing isotonic regression (paper Prop. 3 with eq. 9/10 of the
 * PAV blocks B). Derivatives (Prop. 4): d v_B / d(its input)_i = 1/|B| (L2) or the
 * softmax of the exponentiated inputs inside B (KL). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pav.h"
#include "alloc.h"

typedef enum { KIND_RANK, KIND_SORT } pav_kind;

typedef struct {
    pav_kind kind;
    da_regularization reg;
    double sign;     /* rows are sorted by decreasing sign * x */
    double strength;
    int n;
} pav_problem;

/* what the VJP of one row needs, indexed by sorted position; [n] each */
typedef struct {
    int *perm;   /* sorted position -> input index */
    int *bend;   /* at a block's first position: one past its last position */
    double *wgt; /* d(block value) / d(member): 1/|B| (L2) or softmax in the block (KL) */
    double *fac; /* soft rank: d rank / d primal, 1 (L2) or the rank itself (KL) */
} pav_row;

typedef struct {
    double key;
    int idx;
} keyed;

/* per-thread scratch, [n] each */
typedef struct {
    keyed *kv, *kv_tmp;        /* sort buffers */
    double *s;                 /* sorted keys (scaled for ranks) */
    double *a, *b;             /* isotonic inputs per position */
    int *st_start;             /* PAV stack: first position of each block */
    double *st_val, *st_a, *st_b; /* block value and statistics (sum or LSEs) */
    pav_row row;               /* used when the caller keeps no row state */
    double *ranks, *diff;      /* loss only: true ranks, soft ranks / cotangent */
} pav_ws;

/* ---- sorting: decreasing key, ties by increasing index ----
 * A stable sort (insertion-sorted runs, then bottom-up merges) of pairs that start in
 * index order, comparing keys only: equal keys keep their index order. */

static void sort_keyed(keyed *a, keyed *tmp, int n)
{
    enum { RUN = 16 };
    for (int lo = 0; lo < n; lo += RUN) {
        int hi = lo + RUN < n ? lo + RUN : n;
        for (int i = lo + 1; i < hi; i++) {
            keyed v = a[i];
            int j = i;
            for (; j > lo && v.key > a[j - 1].key; j--)
                a[j] = a[j - 1];
            a[j] = v;
        }
    }
    keyed *src = a, *dst = tmp;
    for (long width = RUN; width < n; width *= 2) {
        for (long lo = 0; lo < n; lo += 2 * width) {
            long mid = lo + width < n ? lo + width : n;
            long hi = lo + 2 * width < n ? lo + 2 * width : n;
            long i = lo, j = mid, k = lo;
            while (i < mid && j < hi) { /* branch-free: select a pointer */
                int take_j = src[j].key > src[i].key;
                const keyed *p = take_j ? &src[j] : &src[i];
                dst[k++] = *p;
                j += take_j;
                i += 1 - take_j;
            }
            while (i < mid)
                dst[k++] = src[i++];
            while (j < hi)
                dst[k++] = src[j++];
        }
        keyed *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, (size_t)n * sizeof *a);
}

/* ---- PAV ---- */

static double log_add_exp(double p, double q)
{
    double hi = p > q ? p : q, lo = p > q ? q : p;
    return hi + log1p(exp(lo - hi));
}

/* Decreasing isotonic regression of ws->a (L2: min 0.5 |v - a|^2, block value mean a_B)
 * or of the KL problem min <e^{a - v}, 1> + <e^b, v> (block value LSE a_B - LSE b_B).
 * Adjacent blocks are pooled while they violate v_prev > v_next. Returns the number of
 * blocks; block k starts at ws->st_start[k]. */
static int pav_blocks(pav_ws *ws, int n, int kl)
{
    int top = -1;
    for (int i = 0; i < n; i++) {
        top++;
        ws->st_start[top] = i;
        ws->st_a[top] = ws->a[i];
        ws->st_b[top] = kl ? ws->b[i] : 0;
        ws->st_val[top] = kl ? ws->a[i] - ws->b[i] : ws->a[i];
        while (top > 0 && ws->st_val[top - 1] <= ws->st_val[top]) {
            int k = top - 1;
            if (kl) {
                ws->st_a[k] = log_add_exp(ws->st_a[k], ws->st_a[top]);
                ws->st_b[k] = log_add_exp(ws->st_b[k], ws->st_b[top]);
                ws->st_val[k] = ws->st_a[k] - ws->st_b[k];
            } else {
                ws->st_a[k] += ws->st_a[top];
                ws->st_val[k] = ws->st_a[k] / (i + 1 - ws->st_start[k]);
            }
            top = k;
        }
    }
    return top + 1;
}

/* ---- one row: forward and VJP ---- */

/* isotonic inputs of position i (sorted key s_i); for ranks, b = log w is constant and
 * set once by ws_alloc */
static void iso_inputs(const pav_problem *pb, double s, int i, double *a, double *b)
{
    double w = pb->n - i;
    if (pb->kind == KIND_RANK) {
        *a = pb->reg == DA_REG_KL ? s : s - w;
    } else {
        w /= pb->strength;
        *a = pb->reg == DA_REG_KL ? w : w - s;
        *b = s;
    }
}

/* out [n] (or NULL): soft ranks in input order / soft-sorted values; fills r */
static void pav_forward_row(const pav_problem *pb, pav_ws *ws, const pav_row *r,
                            const double *x, double *out)
{
    int n = pb->n, kl = pb->reg == DA_REG_KL;
    double key_scale = pb->kind == KIND_RANK ? 1.0 / pb->strength : 1.0;
    for (int i = 0; i < n; i++)
        ws->kv[i] = (keyed){pb->sign * x[i], i};
    sort_keyed(ws->kv, ws->kv_tmp, n);
    for (int i = 0; i < n; i++) {
        r->perm[i] = ws->kv[i].idx;
        ws->s[i] = ws->kv[i].key * key_scale;
        iso_inputs(pb, ws->s[i], i, &ws->a[i], &ws->b[i]);
    }
    int nb = pav_blocks(ws, n, kl);
    for (int k = 0; k < nb; k++) {
        int start = ws->st_start[k], end = k + 1 < nb ? ws->st_start[k + 1] : n;
        double v = ws->st_val[k], block_w = kl ? exp(ws->st_b[k]) : 0;
        r->bend[start] = end;
        for (int i = start; i < end; i++) {
            double s = ws->s[i];
            if (pb->kind == KIND_RANK) {
                /* KL: exp(s - v) = softmax(s_B)_i sum_B w */
                r->wgt[i] = kl ? exp(s - ws->st_a[k]) : 1.0 / (end - start);
                double o = kl ? r->wgt[i] * block_w : s - v;
                r->fac[i] = kl ? o : 1.0;
                if (out)
                    out[r->perm[i]] = o;
            } else {
                r->wgt[i] = kl ? exp(s - ws->st_b[k]) : 1.0 / (end - start);
                if (out)
                    out[i] = pb->sign * ((n - i) / pb->strength - v);
            }
        }
    }
}

/* grad [n] (+)= J^T cot for the row state r */
static void pav_vjp_row(const pav_problem *pb, const pav_row *r, const double *cot,
                        double *grad, int accumulate)
{
    int n = pb->n;
    double rank_scale = pb->sign / pb->strength;
    for (int start = 0, end; start < n; start = end) {
        end = r->bend[start];
        double sum = 0;
        for (int i = start; i < end; i++)
            sum += pb->kind == KIND_RANK ? r->fac[i] * cot[r->perm[i]] : cot[i];
        for (int i = start; i < end; i++) {
            int k = r->perm[i];
            double g = pb->kind == KIND_RANK
                           ? rank_scale * (r->fac[i] * cot[k] - r->wgt[i] * sum)
                           : r->wgt[i] * sum;
            grad[k] = accumulate ? grad[k] + g : g;
        }
    }
}

/* ---- scratch and row state ---- */

static void ws_free(pav_ws *ws)
{
    da_free(ws->kv);
    da_free(ws->kv_tmp);
    da_free(ws->s);
    da_free(ws->a);
    da_free(ws->b);
    da_free(ws->st_start);
    da_free(ws->st_val);
    da_free(ws->st_a);
    da_free(ws->st_b);
    da_free(ws->row.perm);
    da_free(ws->row.bend);
    da_free(ws->row.wgt);
    da_free(ws->row.fac);
    da_free(ws->ranks);
    da_free(ws->diff);
}

static int ws_alloc(pav_ws *ws, const pav_problem *pb, int for_loss)
{
    int n = pb->n;
    size_t d = (size_t)n * sizeof(double), k = (size_t)n * sizeof(keyed);
    size_t m = (size_t)n * sizeof(int);
    memset(ws, 0, sizeof *ws);
    ws->kv = da_malloc(k);
    ws->kv_tmp = da_malloc(k);
    ws->s = da_malloc(d);
    ws->a = da_malloc(d);
    ws->b = da_malloc(d);
    ws->st_start = da_malloc(m);
    ws->st_val = da_malloc(d);
    ws->st_a = da_malloc(d);
    ws->st_b = da_malloc(d);
    ws->row.perm = da_malloc(m);
    ws->row.bend = da_malloc(m);
    ws->row.wgt = da_malloc(d);
    ws->row.fac = da_malloc(d);
    if (for_loss) {
        ws->ranks = da_malloc(d);
        ws->diff = da_malloc(d);
    }
    int ok = ws->kv && ws->kv_tmp && ws->s && ws->a && ws->b && ws->st_start &&
             ws->st_val && ws->st_a && ws->st_b && ws->row.perm && ws->row.bend &&
             ws->row.wgt && ws->row.fac && (!for_loss || (ws->ranks && ws->diff));
    if (!ok) {
        ws_free(ws);
        return DA_ENOMEM;
    }
    for (int i = 0; i < n && pb->kind == KIND_RANK; i++)
        ws->b[i] = log((double)(n - i));
    return DA_OK;
}

/* row b of a kept state [batch][n] */
static pav_row row_slice(const pav_row *keep, int b, int n)
{
    long o = (long)b * n;
    return (pav_row){keep->perm + o, keep->bend + o, keep->wgt + o, keep->fac + o};
}

static int worth_threads(int batch, int n)
{
    return batch > 1 && (long)batch * n >= 2048;
}

/* Forward of every row (out [batch][n] or NULL), optionally J^T cot into grad, and
 * optionally keeping the row states in keep (arrays [batch][n]) for a later VJP. */
static int pav_run(const pav_problem *pb, int batch, const double *x, double *out,
                   const double *cot, double *grad, const pav_row *keep)
{
    int n = pb->n, failed = 0;
#pragma omp parallel if (worth_threads(batch, n))
    {
        pav_ws ws;
        int ok = ws_alloc(&ws, pb, 0) == DA_OK;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < batch; b++) {
            if (!ok)
                continue;
            long o = (long)b * n;
            pav_row r = keep ? row_slice(keep, b, n) : ws.row;
            pav_forward_row(pb, &ws, &r, x + o, out ? out + o : NULL);
            if (cot)
                pav_vjp_row(pb, &r, cot + o, grad + o, 0);
        }
        if (ok)
            ws_free(&ws);
    }
    return failed ? da_set_error(DA_ENOMEM, "pav: out of memory for scratch of n = %d", n)
                  : DA_OK;
}

/* ---- argument checks ---- */

static int check_problem(const char *fn, int batch, int n, da_direction dir,
                         da_regularization reg, double strength)
{
    if (dir != DA_ASCENDING && dir != DA_DESCENDING)
        return da_set_error(DA_EINVAL, "%s: direction %d is not DA_ASCENDING/DA_DESCENDING",
                            fn, (int)dir);
    if (reg != DA_REG_L2 && reg != DA_REG_KL)
        return da_set_error(DA_EINVAL, "%s: regularization %d is not DA_REG_L2/DA_REG_KL",
                            fn, (int)reg);
    if (batch < 1)
        return da_set_error(DA_ERANGE, "%s: batch %d < 1", fn, batch);
    if (n < 2 || n > DA_PAV_MAX_N)
        return da_set_error(DA_ERANGE, "%s: n = %d outside [2, %d]", fn, n, DA_PAV_MAX_N);
    if (isnan(strength))
        return da_set_error(DA_ENAN, "%s: regularization strength is NaN", fn);
    if (!(strength > 0) || isinf(strength) || isinf(n / strength))
        return da_set_error(DA_ERANGE, "%s: regularization strength %g is not in (0, inf)",
                            fn, strength);
    return DA_OK;
}

/* x finite, and x / strength representable */
static int check_values(const char *fn, long count, const double *x, const char *what,
                        double strength)
{
    double big = 0;
    for (long i = 0; i < count; i++) {
        if (!isfinite(x[i]))
            return da_set_error(DA_ENAN, "%s: %s[%ld] = %g is not finite", fn, what, i, x[i]);
        big = fabs(x[i]) > big ? fabs(x[i]) : big;
    }
    if (isinf(big / strength))
        return da_set_error(DA_ERANGE, "%s: %s / strength overflows (max |%s| = %g)", fn,
                            what, what, big);
    return DA_OK;
}

static pav_problem make_problem(pav_kind kind, int n, da_direction dir,
                                da_regularization reg, double strength)
{
    /* ranks: ascending = largest key gets rank n; sort: ascending = keys -x */
    double up = dir == DA_ASCENDING ? 1.0 : -1.0;
    return (pav_problem){kind, reg, kind == KIND_RANK ? up : -up, strength, n};
}

static int soft_op(pav_kind kind, const char *fn, int batch, int n, const double *x,
                   da_direction dir, da_regularization reg, double strength, double *out,
                   const double *cot, double *grad_x)
{
    int rc = check_problem(fn, batch, n, dir, reg, strength);
    if (rc)
        return rc;
    if (!x || (!out && !grad_x) || (!cot != !grad_x))
        return da_set_error(DA_EINVAL,
                            "%s: x is NULL, or out and grad_x are both NULL, or only one "
                            "of cot/grad_x is NULL",
                            fn);
    long count = (long)batch * n;
    if ((rc = check_values(fn, count, x, "x", strength)))
        return rc;
    if (cot && !da_all_finite(cot, count))
        return da_set_error(DA_ENAN, "%s: cot has a NaN or Inf", fn);
    pav_problem pb = make_problem(kind, n, dir, reg, strength);
    return pav_run(&pb, batch, x, out, cot, grad_x, NULL);
}

int da_soft_rank(int batch, int n, const double *x, da_direction dir,
                 da_regularization reg, double strength, double *out,
                 const double *cot, double *grad_x)
{
    return soft_op(KIND_RANK, "da_soft_rank", batch, n, x, dir, reg, strength, out, cot,
                   grad_x);
}

int da_soft_sort(int batch, int n, const double *x, da_direction dir,
                 da_regularization reg, double strength, double *out,
                 const double *cot, double *grad_x)
{
    return soft_op(KIND_SORT, "da_soft_sort", batch, n, x, dir, reg, strength, out, cot,
                   grad_x);
}

/* ---- tensor faces of soft rank / soft sort ---- */

typedef struct {
    pav_problem pb;
    const char *fn;
    int batch;
    pav_row keep; /* [batch][n] each, in the ctx; set when a gradient is needed */
} pav_op_state;

static int alloc_keep(da_ctx *ctx, pav_row *keep, long count)
{
    keep->perm = da_ctx_alloc(ctx, (size_t)count * sizeof(int));
    keep->bend = da_ctx_alloc(ctx, (size_t)count * sizeof(int));
    keep->wgt = da_ctx_alloc(ctx, (size_t)count * sizeof(double));
    keep->fac = da_ctx_alloc(ctx, (size_t)count * sizeof(double));
    return keep->perm && keep->bend && keep->wgt && keep->fac ? DA_OK : DA_ENOMEM;
}

static int pav_op_forward(da_custom_args *args, double *out)
{
    pav_op_state *st = args->state;
    long count = (long)st->batch * st->pb.n;
    int rc = check_values(st->fn, count, args->in_data[0], "x", st->pb.strength);
    if (rc)
        return rc;
    int keep = args->in[0]->requires_grad;
    if (keep && alloc_keep(args->ctx, &st->keep, count))
        return DA_ENOMEM;
    return pav_run(&st->pb, st->batch, args->in_data[0], out, NULL, NULL,
                   keep ? &st->keep : NULL);
}

static int pav_op_backward(da_custom_args *args, const double *og, double *const *ig)
{
    const pav_op_state *st = args->state;
    int n = st->pb.n;
    if (!ig[0])
        return DA_OK;
    if (!st->keep.perm)
        return da_set_error(DA_ESTATE, "%s: backward without a recorded forward", st->fn);
#pragma omp parallel for schedule(static) if (worth_threads(st->batch, n))
    for (int b = 0; b < st->batch; b++) {
        long o = (long)b * n;
        pav_row r = row_slice(&st->keep, b, n);
        pav_vjp_row(&st->pb, &r, og + o, ig[0] + o, 1);
    }
    return DA_OK;
}

/* batch and n of a [n] or [batch][n] tensor */
static int rows_of(const char *fn, const da_tensor *x, int *batch, int *n)
{
    if (x->ndim != 1 && x->ndim != 2)
        return da_set_error(DA_ESHAPE, "%s: x must be [n] or [batch][n], got ndim %d", fn,
                            x->ndim);
    *batch = x->ndim == 2 ? x->shape[0] : 1;
    *n = x->shape[x->ndim - 1];
    return DA_OK;
}

static da_tensor *soft_op_tensor(pav_kind kind, const char *fn, da_ctx *ctx, da_tensor *x,
                                 da_direction dir, da_regularization reg, double strength)
{
    int batch = 0, n = 0;
    if (!ctx || !x) {
        if (!ctx || !da_last_error_code()) /* keep the error of the op that gave NULL x */
            da_set_error(DA_EINVAL, "%s: NULL ctx or x", fn);
        return NULL;
    }
    if (rows_of(fn, x, &batch, &n) || check_problem(fn, batch, n, dir, reg, strength))
        return NULL;
    pav_op_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st)
        return NULL;
    st->pb = make_problem(kind, n, dir, reg, strength);
    st->fn = fn;
    st->batch = batch;
    return da_op_custom(ctx, fn, &x, 1, x->ndim, x->shape, pav_op_forward, pav_op_backward,
                        NULL, st);
}

da_tensor *da_soft_rank_op(da_ctx *ctx, da_tensor *x, da_direction dir,
                           da_regularization reg, double strength)
{
    return soft_op_tensor(KIND_RANK, "da_soft_rank_op", ctx, x, dir, reg, strength);
}

da_tensor *da_soft_sort_op(da_ctx *ctx, da_tensor *x, da_direction dir,
                           da_regularization reg, double strength)
{
    return soft_op_tensor(KIND_SORT, "da_soft_sort_op", ctx, x, dir, reg, strength);
}

/* ---- the fast_soft_rank ranking loss ---- */

/* true 1-based ascending ranks of t [n] into ranks (ties by index) */
static void true_ranks(pav_ws *ws, int n, const double *t, double *ranks)
{
    for (int i = 0; i < n; i++)
        ws->kv[i] = (keyed){-t[i], i};
    sort_keyed(ws->kv, ws->kv_tmp, n);
    for (int j = 0; j < n; j++)
        ranks[ws->kv[j].idx] = j + 1;
}

/* per-row sums of squared errors into row_loss [batch]; grad [batch][n] or NULL */
static int rank_loss_run(const pav_problem *pb, int batch, const double *scores,
                         const double *targets, double *row_loss, double *grad)
{
    int n = pb->n, failed = 0;
    double g_scale = 2.0 / ((double)batch * n);
#pragma omp parallel if (worth_threads(batch, n))
    {
        pav_ws ws;
        int ok = ws_alloc(&ws, pb, 1) == DA_OK;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int b = 0; b < batch; b++) {
            if (!ok)
                continue;
            long o = (long)b * n;
            true_ranks(&ws, n, targets + o, ws.ranks);
            pav_forward_row(pb, &ws, &ws.row, scores + o, ws.diff);
            double sse = 0;
            for (int i = 0; i < n; i++) {
                double e = ws.diff[i] - ws.ranks[i];
                sse += e * e;
                ws.diff[i] = g_scale * e;
            }
            row_loss[b] = sse;
            if (grad)
                pav_vjp_row(pb, &ws.row, ws.diff, grad + o, 0);
        }
        if (ok)
            ws_free(&ws);
    }
    return failed ? da_set_error(DA_ENOMEM, "pav: out of memory for scratch of n = %d", n)
                  : DA_OK;
}

static int rank_loss_compute(const char *fn, const da_fast_soft_rank_cfg *cfg, int batch,
                             const double *scores, const double *targets, double *row_loss,
                             double *loss, double *grad)
{
    long count = (long)batch * cfg->n;
    int rc = check_values(fn, count, scores, "scores", cfg->strength);
    if (rc)
        return rc;
    if (!da_all_finite(targets, count))
        return da_set_error(DA_ENAN, "%s: targets have a NaN or Inf", fn);
    pav_problem pb = make_problem(KIND_RANK, cfg->n, DA_ASCENDING, cfg->reg, cfg->strength);
    if ((rc = rank_loss_run(&pb, batch, scores, targets, row_loss, grad)))
        return rc;
    double total = 0;
    for (int b = 0; b < batch; b++)
        total += row_loss[b];
    *loss = total / ((double)batch * cfg->n);
    return DA_OK;
}

static int check_loss_cfg(const char *fn, const da_fast_soft_rank_cfg *cfg, int batch)
{
    if (!cfg)
        return da_set_error(DA_EINVAL, "%s: cfg is NULL", fn);
    return check_problem(fn, batch, cfg->n, DA_ASCENDING, cfg->reg, cfg->strength);
}

int da_fast_soft_rank_loss(const da_fast_soft_rank_cfg *cfg, int batch,
                           const double *scores, const double *targets, double *loss,
                           double *grad)
{
    const char *fn = "da_fast_soft_rank_loss";
    int rc = check_loss_cfg(fn, cfg, batch);
    if (rc)
        return rc;
    if (!scores || !targets || !loss)
        return da_set_error(DA_EINVAL, "%s: scores, targets or loss is NULL", fn);
    double *row_loss = da_malloc((size_t)batch * sizeof(double));
    if (!row_loss)
        return da_set_error(DA_ENOMEM, "%s: out of memory", fn);
    rc = rank_loss_compute(fn, cfg, batch, scores, targets, row_loss, loss, grad);
    da_free(row_loss);
    return rc;
}

typedef struct {
    da_fast_soft_rank_cfg cfg;
    int batch;
    const double *targets; /* [batch][n], ctx copy */
} rank_loss_state;

static int rank_loss_value(da_custom_args *args, double *out, double *grad)
{
    const rank_loss_state *st = args->state;
    double *row_loss = da_ctx_alloc(args->ctx, (size_t)st->batch * sizeof(double));
    if (!row_loss)
        return DA_ENOMEM;
    return rank_loss_compute("da_fast_soft_rank", &st->cfg, st->batch, args->in_data[0],
                             st->targets, row_loss, out, grad);
}

da_tensor *da_fast_soft_rank(da_ctx *ctx, da_tensor *scores, const double *targets,
                             const da_fast_soft_rank_cfg *cfg)
{
    const char *fn = "da_fast_soft_rank";
    if (!ctx || !scores || !targets) {
        if (!ctx || !targets || !da_last_error_code())
            da_set_error(DA_EINVAL, "%s: NULL ctx, scores or targets", fn);
        return NULL;
    }
    if (scores->ndim != 2) {
        da_set_error(DA_ESHAPE, "%s: scores must be [batch][n], got ndim %d", fn,
                     scores->ndim);
        return NULL;
    }
    int batch = scores->shape[0];
    if (check_loss_cfg(fn, cfg, batch))
        return NULL;
    if (scores->shape[1] != cfg->n) {
        da_set_error(DA_ESHAPE, "%s: scores has %d columns, cfg->n = %d", fn,
                     scores->shape[1], cfg->n);
        return NULL;
    }
    rank_loss_state *st = da_ctx_alloc(ctx, sizeof *st);
    long count = (long)batch * cfg->n;
    double *tcopy = da_ctx_alloc(ctx, (size_t)count * sizeof(double));
    if (!st || !tcopy)
        return NULL;
    memcpy(tcopy, targets, (size_t)count * sizeof(double));
    *st = (rank_loss_state){*cfg, batch, tcopy};
    return da_op_loss(ctx, fn, &scores, 1, rank_loss_value, NULL, st);
}
