/* precond.c - TrAct / ISAAC weight-gradient preconditioning (see precond.h).
 *
 * TrAct (arXiv 2410.23970, Sec. 3): grad_W = G^T X (X^T X / N + lambda I)^{-1};
 * ISAAC (ICLR 2023, input-side term): the same times lambda_a. One kernel
 * (right_solve) right-multiplies B = G^T X by (X^T X / N + lambda I)^{-1}, either by
 * a Cholesky of that in x in matrix or, through the Woodbury identity, of the N x N
 * matrix X X^T + N lambda I. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "alloc.h"
#include "precond.h"

/* workspace limit: 2^31 doubles per buffer */
#define PRECOND_MAX_ELEMS (1L << 31)

static int check_common(const char *who, da_precond_kind kind, da_precond_regime regime,
                        double lambda)
{
    if (kind != DA_PRECOND_TRACT && kind != DA_PRECOND_ISAAC)
        return da_set_error(DA_EINVAL, "%s: unknown kind %d", who, (int)kind);
    if (regime != DA_PRECOND_AUTO && regime != DA_PRECOND_DXD && regime != DA_PRECOND_NXN)
        return da_set_error(DA_EINVAL, "%s: unknown regime %d", who, (int)regime);
    if (!isfinite(lambda))
        return da_set_error(DA_ENAN, "%s: lambda is NaN or Inf", who);
    if (lambda <= 0)
        return da_set_error(DA_ERANGE, "%s: lambda = %g must be > 0", who, lambda);
    return DA_OK;
}

static int check_sizes(const char *who, long N, long in, long out)
{
    if (N < 1 || in < 1 || out < 1)
        return da_set_error(DA_ERANGE, "%s: N = %ld, in = %ld, out = %ld must all be >= 1",
                            who, N, in, out);
    if (N * in >= PRECOND_MAX_ELEMS || N * out >= PRECOND_MAX_ELEMS ||
        in * in >= PRECOND_MAX_ELEMS || in * out >= PRECOND_MAX_ELEMS)
        return da_set_error(DA_ERANGE, "%s: N = %ld, in = %ld, out = %ld too large", who, N,
                            in, out);
    return DA_OK;
}

/* flop counts of the two regimes (syrk n^2 k, gemm 2 m n k, potrf n^3 / 3,
 * potrs 2 n^2 nrhs) */
da_precond_regime da_precond_choose(int N, int in, int out)
{
    double n = N, d = in, o = out;
    double dxd = n * d * d + d * d * d / 3 + 2 * d * d * o;
    double nxn = n * n * d + n * n * n / 3 + 4 * n * d * o + 2 * n * n * o;
    return nxn < dxd ? DA_PRECOND_NXN : DA_PRECOND_DXD;
}

/* Cholesky factor of the n x n column-major matrix A (lower triangle used) */
static int cholesky(const char *who, int n, double *A)
{
    lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, A, n);
    if (info != 0)
        return da_set_error(DA_ENUMERIC, "%s: Cholesky factorisation failed (info %d)", who,
                            (int)info);
    return DA_OK;
}

/* B [out][in] <- B (X^T X / N + lambda I)^{-1} through the in x in matrix.
 * Row-major B [out][in] is column-major B^T [in][out], so B^T <- M^{-1} B^T is one
 * dpotrs with out right-hand sides. */
static int solve_dxd(const char *who, int N, int in, int out, const double *X,
                     double lambda, double *B)
{
    double *M = da_malloc((size_t)in * in * sizeof *M); /* [in][in], lower triangle */
    if (!M)
        return da_set_error(DA_ENOMEM, "%s: out of memory", who);
    /* row-major X [N][in] is column-major X^T [in][N]: M = X^T (X^T)^T / N */
    cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, in, N, 1.0 / N, X, in, 0.0, M, in);
    for (int i = 0; i < in; i++)
        M[(size_t)i * in + i] += lambda;
    int rc = cholesky(who, in, M);
    if (!rc && LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', in, out, M, in, B, in) != 0)
        rc = da_set_error(DA_ENUMERIC, "%s: Cholesky solve failed", who);
    da_free(M);
    return rc;
}

/* B [out][in] <- (B - (B X^T)(X X^T + N lambda I)^{-1} X) / lambda (Woodbury) */
static int solve_nxn(const char *who, int N, int in, int out, const double *X,
                     double lambda, double *B)
{
    double *K = da_malloc((size_t)N * N * sizeof *K);   /* [N][N], lower triangle */
    double *C = da_malloc((size_t)out * N * sizeof *C); /* [out][N] */
    int rc = DA_OK;
    if (!K || !C) {
        rc = da_set_error(DA_ENOMEM, "%s: out of memory", who);
        goto done;
    }
    /* row-major X [N][in] = column-major X^T [in][N]: K = X X^T = (X^T)^T X^T */
    cblas_dsyrk(CblasColMajor, CblasLower, CblasTrans, N, in, 1.0, X, in, 0.0, K, N);
    for (int i = 0; i < N; i++)
        K[(size_t)i * N + i] += (double)N * lambda;
    if ((rc = cholesky(who, N, K)))
        goto done;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, out, N, in, 1.0, B, in, X, in, 0.0,
                C, N);
    /* row-major C [out][N] = column-major C^T [N][out]: C^T <- K^{-1} C^T */
    if (LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', N, out, K, N, C, N) != 0) {
        rc = da_set_error(DA_ENUMERIC, "%s: Cholesky solve failed", who);
        goto done;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, N, -1.0 / lambda, C, N,
                X, in, 1.0 / lambda, B, in);
done:
    da_free(K);
    da_free(C);
    return rc;
}

/* the shared kernel: B <- scale B (X^T X / N + lambda I)^{-1}, arguments checked */
static int right_solve(const char *who, da_precond_kind kind, da_precond_regime regime,
                       int N, int in, int out, const double *X, double lambda, double *B)
{
    if (regime == DA_PRECOND_AUTO)
        regime = da_precond_choose(N, in, out);
    int rc = regime == DA_PRECOND_NXN ? solve_nxn(who, N, in, out, X, lambda, B)
                                      : solve_dxd(who, N, in, out, X, lambda, B);
    if (rc)
        return rc;
    if (kind == DA_PRECOND_ISAAC)
        cblas_dscal(out * in, lambda, B, 1);
    if (!da_all_finite(B, (long)out * in))
        return da_set_error(DA_ENUMERIC, "%s: non-finite result (overflow in X^T X?)", who);
    return DA_OK;
}

int da_precond_apply(da_precond_kind kind, da_precond_regime regime, int N, int in, int out,
                     const double *X, double lambda, double *grad_W)
{
    static const char who[] = "da_precond_apply";
    int rc = check_common(who, kind, regime, lambda);
    if (!rc)
        rc = check_sizes(who, N, in, out);
    if (rc)
        return rc;
    if (!X || !grad_W)
        return da_set_error(DA_EINVAL, "%s: NULL X or grad_W", who);
    if (!da_all_finite(X, (long)N * in) || !da_all_finite(grad_W, (long)out * in))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in X or grad_W", who);
    return right_solve(who, kind, regime, N, in, out, X, lambda, grad_W);
}

int da_precond_linear_grad(da_precond_kind kind, da_precond_regime regime, int N, int in,
                           int out, const double *X, const double *G, double lambda,
                           double *grad_W)
{
    static const char who[] = "da_precond_linear_grad";
    int rc = check_common(who, kind, regime, lambda);
    if (!rc)
        rc = check_sizes(who, N, in, out);
    if (rc)
        return rc;
    if (!X || !G || !grad_W)
        return da_set_error(DA_EINVAL, "%s: NULL X, G or grad_W", who);
    if (!da_all_finite(X, (long)N * in) || !da_all_finite(G, (long)N * out))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in X or G", who);
    /* grad_W [out][in] = G^T X */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0, G, out, X, in, 0.0,
                grad_W, in);
    return right_solve(who, kind, regime, N, in, out, X, lambda, grad_W);
}

int da_tract_linear_grad(int N, int in, int out, const double *X, const double *G,
                         double lambda, double *grad_W)
{
    return da_precond_linear_grad(DA_PRECOND_TRACT, DA_PRECOND_AUTO, N, in, out, X, G,
                                  lambda, grad_W);
}

int da_isaac_linear_grad(int N, int in, int out, const double *X, const double *G,
                         double lambda_a, double *grad_W)
{
    return da_precond_linear_grad(DA_PRECOND_ISAAC, DA_PRECOND_AUTO, N, in, out, X, G,
                                  lambda_a, grad_W);
}

/* ---- conv2d ---- */

typedef struct {
    int N, C, H, W, kh, kw, stride, pad, Ho, Wo;
} conv_geom;

/* im2col: P [N*Ho*Wo][C*kh*kw], rows (n, oh, ow), columns (c, i, j), zero padding */
static void im2col(const conv_geom *g, const double *x, double *P)
{
    int cols = g->C * g->kh * g->kw;
#pragma omp parallel for schedule(static) if ((long)g->N * g->Ho * g->Wo * cols > 100000)
    for (int r = 0; r < g->N * g->Ho; r++) {
        int n = r / g->Ho, oh = r % g->Ho;
        for (int ow = 0; ow < g->Wo; ow++) {
            double *row = P + ((size_t)r * g->Wo + ow) * cols;
            for (int c = 0; c < g->C; c++)
                for (int i = 0; i < g->kh; i++) {
                    int h = oh * g->stride - g->pad + i;
                    for (int j = 0; j < g->kw; j++) {
                        int w = ow * g->stride - g->pad + j;
                        int inside = h >= 0 && h < g->H && w >= 0 && w < g->W;
                        *row++ = inside ? x[(((size_t)n * g->C + c) * g->H + h) * g->W + w]
                                        : 0.0;
                    }
                }
        }
    }
}

static int conv_geometry(const char *who, conv_geom *g)
{
    if (g->N < 1 || g->C < 1 || g->H < 1 || g->W < 1 || g->kh < 1 || g->kw < 1 ||
        g->stride < 1 || g->pad < 0)
        return da_set_error(DA_ERANGE, "%s: sizes must be >= 1 (pad >= 0)", who);
    g->Ho = (g->H + 2 * g->pad - g->kh) / g->stride + 1;
    g->Wo = (g->W + 2 * g->pad - g->kw) / g->stride + 1;
    if (g->H + 2 * g->pad < g->kh || g->W + 2 * g->pad < g->kw)
        return da_set_error(DA_ERANGE, "%s: kernel larger than the padded input", who);
    return DA_OK;
}

/* B [out][cols] <- preconditioned gradient of a conv2d layer from the ordinary one */
static int conv_right_solve(const char *who, da_precond_kind kind, da_precond_regime regime,
                            const conv_geom *g, int out, const double *x, double lambda,
                            const double *G, double *B)
{
    long rows = (long)g->N * g->Ho * g->Wo, cols = (long)g->C * g->kh * g->kw;
    int rc = check_sizes(who, rows, cols, out);
    if (rc)
        return rc;
    double *P = da_malloc((size_t)rows * cols * sizeof *P);
    if (!P)
        return da_set_error(DA_ENOMEM, "%s: out of memory", who);
    im2col(g, x, P);
    if (G) { /* B = sum_n G_n [out][Ho*Wo] P_n [Ho*Wo][cols] */
        int hw = g->Ho * g->Wo;
        for (int n = 0; n < g->N; n++)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, (int)cols, hw, 1.0,
                        G + (size_t)n * out * hw, hw, P + (size_t)n * hw * cols, (int)cols,
                        n ? 1.0 : 0.0, B, (int)cols);
    }
    rc = right_solve(who, kind, regime, (int)rows, (int)cols, out, P, lambda, B);
    da_free(P);
    return rc;
}

int da_precond_conv2d_grad(da_precond_kind kind, da_precond_regime regime, int N, int C,
                           int H, int W, int out, int k, int stride, int pad,
                           const double *x, const double *G, double lambda,
                           double *grad_W)
{
    static const char who[] = "da_precond_conv2d_grad";
    conv_geom g = {.N = N, .C = C, .H = H, .W = W, .kh = k, .kw = k, .stride = stride,
                   .pad = pad};
    int rc = check_common(who, kind, regime, lambda);
    if (!rc)
        rc = conv_geometry(who, &g);
    if (!rc && out < 1)
        rc = da_set_error(DA_ERANGE, "%s: out = %d must be >= 1", who, out);
    if (rc)
        return rc;
    if (!x || !G || !grad_W)
        return da_set_error(DA_EINVAL, "%s: NULL x, G or grad_W", who);
    if (!da_all_finite(x, (long)N * C * H * W) ||
        !da_all_finite(G, (long)N * out * g.Ho * g.Wo))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in x or G", who);
    return conv_right_solve(who, kind, regime, &g, out, x, lambda, G, grad_W);
}

/* ---- tensor face: an identity node on W whose backward preconditions ---- */

typedef struct {
    da_precond_cfg cfg;
    conv_geom geom; /* conv2d weights; geom.N = 0 for linear */
} weight_state;

static int weight_forward(da_custom_args *args, double *out)
{
    memcpy(out, args->in_data[0], (size_t)args->out->size * sizeof *out);
    return DA_OK;
}

static int weight_backward(da_custom_args *args, const double *og, double *const *ig)
{
    static const char who[] = "da_precond_weight";
    const weight_state *st = args->state;
    const da_tensor *W = args->in[0], *x = args->in[1];
    if (!ig[0])
        return DA_OK;
    if (!da_all_finite(og, W->size))
        return da_set_error(DA_ENAN, "%s: NaN or Inf in the weight gradient", who);
    int out = W->shape[0], in = (int)(W->size / out);
    double *B = da_ctx_alloc(args->ctx, (size_t)W->size * sizeof *B);
    if (!B)
        return DA_ENOMEM;
    memcpy(B, og, (size_t)W->size * sizeof *B);
    int rc = st->geom.N ? conv_right_solve(who, st->cfg.kind, st->cfg.regime, &st->geom, out,
                                           args->in_data[1], st->cfg.lambda, NULL, B)
                        : right_solve(who, st->cfg.kind, st->cfg.regime, x->shape[0], in, out,
                                      args->in_data[1], st->cfg.lambda, B);
    if (rc)
        return rc;
    for (long i = 0; i < W->size; i++)
        ig[0][i] += B[i];
    return DA_OK;
}

static int weight_state_init(const char *who, const da_tensor *W, const da_tensor *x,
                             const da_precond_cfg *cfg, weight_state *st)
{
    st->cfg = *cfg;
    int rc = check_common(who, cfg->kind, cfg->regime, cfg->lambda);
    if (rc)
        return rc;
    if (W->ndim == 2) {
        if (x->ndim != 2 || x->shape[1] != W->shape[1])
            return da_set_error(DA_ESHAPE, "%s: linear W [%d][%d] needs x [N][%d]", who,
                                W->shape[0], W->shape[1], W->shape[1]);
        return check_sizes(who, x->shape[0], W->shape[1], W->shape[0]);
    }
    if (W->ndim != 4 || x->ndim != 4 || x->shape[1] != W->shape[1])
        return da_set_error(DA_ESHAPE, "%s: W must be [out][in] with x [N][in], or "
                                       "[out][C][kh][kw] with x [N][C][H][W]", who);
    st->geom = (conv_geom){.N = x->shape[0], .C = x->shape[1], .H = x->shape[2],
                           .W = x->shape[3], .kh = W->shape[2], .kw = W->shape[3],
                           .stride = cfg->stride, .pad = cfg->pad};
    rc = conv_geometry(who, &st->geom);
    return rc ? rc : check_sizes(who, (long)st->geom.N * st->geom.Ho * st->geom.Wo,
                                 (long)W->shape[1] * W->shape[2] * W->shape[3], W->shape[0]);
}

da_tensor *da_precond_weight(da_ctx *ctx, da_tensor *W, da_tensor *x,
                             const da_precond_cfg *cfg)
{
    static const char who[] = "da_precond_weight";
    if (!ctx || !cfg) {
        da_set_error(DA_EINVAL, "%s: NULL ctx or cfg", who);
        return NULL;
    }
    if (!W || !x) { /* keep the error of the op that gave NULL, if any */
        if (!da_last_error_code())
            da_set_error(DA_EINVAL, "%s: NULL W or x", who);
        return NULL;
    }
    if (W->dtype != x->dtype) {
        da_set_error(DA_EDTYPE, "%s: W and x have different dtypes", who);
        return NULL;
    }
    weight_state *st = da_ctx_alloc(ctx, sizeof *st);
    if (!st || weight_state_init(who, W, x, cfg, st))
        return NULL;
    if (da_check_finite(x, "da_precond_weight: x"))
        return NULL;
    da_tensor *in[2] = {W, x};
    return da_op_custom(ctx, "precond_weight", in, 2, W->ndim, W->shape, weight_forward,
                        weight_backward, NULL, st);
}

da_tensor *da_precond_layer_forward(da_ctx *ctx, const da_layer *layer, da_tensor *x,
                                    da_precond_kind kind, double lambda)
{
    if (!layer) {
        da_set_error(DA_EINVAL, "da_precond_layer_forward: NULL layer");
        return NULL;
    }
    if (layer->kind != DA_LAYER_LINEAR && layer->kind != DA_LAYER_CONV2D) {
        da_set_error(DA_EINVAL, "da_precond_layer_forward: layer is not linear or conv2d");
        return NULL;
    }
    da_precond_cfg cfg = {.kind = kind, .lambda = lambda, .regime = DA_PRECOND_AUTO,
                          .stride = layer->stride, .pad = layer->pad};
    da_tensor *Wp = da_precond_weight(ctx, layer->W, x, &cfg);
    if (layer->kind == DA_LAYER_LINEAR)
        return da_linear(ctx, x, Wp, layer->b);
    return da_conv2d(ctx, x, Wp, layer->b, layer->stride, layer->pad);
}

int da_precond_wrap(da_layer *layer, int kind, double lambda)
{
    if (!layer)
        return da_set_error(DA_EINVAL, "da_precond_wrap: layer is NULL");
    if (layer->kind != DA_LAYER_LINEAR && layer->kind != DA_LAYER_CONV2D)
        return da_set_error(DA_EINVAL, "da_precond_wrap: only linear and conv2d layers have "
                                       "a weight to precondition");
    if (kind != 0 && kind != DA_PRECOND_TRACT && kind != DA_PRECOND_ISAAC)
        return da_set_error(DA_EINVAL, "da_precond_wrap: unknown kind %d", kind);
    if (isnan(lambda))
        return da_set_error(DA_ENAN, "da_precond_wrap: lambda is NaN");
    if (kind && !(lambda > 0 && isfinite(lambda)))
        return da_set_error(DA_ERANGE, "da_precond_wrap: lambda %g must be finite and > 0",
                            lambda);
    layer->precond_kind = kind;
    layer->precond_lambda = kind ? lambda : 0;
    return DA_OK;
}
