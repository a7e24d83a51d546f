/* bad_inputs_losses.c - the bad-input matrix (see test_bad_inputs.c) over the losses,
 * the relaxations, Newton losses, preconditioning and the logic gate networks. */
#include <stdlib.h>

#include "bad_inputs.h"

Suite *bad_inputs_losses_suite(void);

#define N 4
#define B 2

static const double x_ok[B * N] = {0.3, -1.2, 2.5, 0.7, 1.1, -0.4, 0.05, 3.0};
static const double t_ok[B * N] = {1, 0, 3, 2, 2, 0, 1, 3};
static double x_nan[B * N], x_inf[B * N];

static void setup(void)
{
    memcpy(x_nan, x_ok, sizeof x_ok);
    memcpy(x_inf, x_ok, sizeof x_ok);
    x_nan[1] = NAN;
    x_inf[2] = -INFINITY;
}

/* ---------------------------------------------------------------- ranking losses */
/* the plain-array loss contract shared by every ranking loss: (batch, scores, targets,
 * loss, grad) with scores and targets [B][N] */
typedef int (*loss_face)(const void *cfg, int batch, const double *x, const double *t,
                         double *loss, double *grad);

static void check_loss_face(const char *name, loss_face f, const void *cfg)
{
    double loss = SENTINEL, grad[B * N];
    fill_sentinel(grad, B * N);
    int rc[9] = {f(cfg, 0, x_ok, t_ok, &loss, grad), f(cfg, -3, x_ok, t_ok, &loss, grad),
                 f(NULL, B, x_ok, t_ok, &loss, grad), f(cfg, B, NULL, t_ok, &loss, grad),
                 f(cfg, B, x_ok, NULL, &loss, grad), f(cfg, B, x_ok, t_ok, NULL, grad),
                 f(cfg, B, x_nan, t_ok, &loss, grad), f(cfg, B, x_inf, t_ok, &loss, grad),
                 f(cfg, B, x_ok, x_nan, &loss, grad)};
    int want[9] = {DA_ERANGE, DA_ERANGE, DA_EINVAL, DA_EINVAL, DA_EINVAL,
                   DA_EINVAL, DA_ENAN,   DA_ENAN,   DA_ENAN};
    for (int i = 0; i < 9; i++)
        ck_assert_msg(rc[i] == want[i], "%s case %d: %s, expected %s", name, i,
                      da_status_name(rc[i]), da_status_name(want[i]));
    ck_assert_msg(loss == SENTINEL && untouched(grad, B * N), "%s wrote outputs on failure", name);
    ck_assert_int_eq(f(cfg, B, x_ok, t_ok, &loss, grad), DA_OK);
    ck_assert(isfinite(loss) && da_all_finite(grad, B * N));
}

static int ranking_face(const void *cfg, int batch, const double *x, const double *t,
                        double *loss, double *grad)
{
    return da_ranking_loss(cfg, batch, x, t, loss, grad);
}

#define FACE(fn, type)                                                                   \
    static int fn##_face(const void *cfg, int batch, const double *x, const double *t,   \
                         double *loss, double *grad)                                     \
    {                                                                                    \
        return fn((const type *)cfg, batch, x, t, loss, grad);                           \
    }
FACE(da_sortnet_loss, da_sortnet)
FACE(da_neuralsort_loss, da_neuralsort_cfg)
FACE(da_softsort_loss, da_softsort_cfg)
FACE(da_sinkhorn_loss, da_sinkhorn_cfg)
FACE(da_fast_soft_rank_loss, da_fast_soft_rank_cfg)

static const char *const specs[] = {"odd_even",   "bitonic:logistic_phi", "neuralsort",
                                    "softsort",   "sinkhorn:iterations=5", "fast_soft_rank",
                                    "fast_soft_rank:kl"};

START_TEST(ranking_losses)
{
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        da_ranking *r = da_ranking_new(specs[i], N);
        ck_assert_msg(r != NULL, "%s: %s", specs[i], da_last_error());
        check_loss_face(specs[i], ranking_face, r);
        double H[B * N * N];
        fill_sentinel(H, B * N * N);
        FAILS(DA_EINVAL, da_ranking_hessian(r, B, NULL, t_ok, H, NULL));
        FAILS(DA_EINVAL, da_ranking_hessian(r, B, x_ok, NULL, H, NULL));
        FAILS(DA_EINVAL, da_ranking_hessian(r, B, x_ok, t_ok, NULL, NULL));
        FAILS(DA_ERANGE, da_ranking_hessian(r, 0, x_ok, t_ok, H, NULL));
        FAILS(DA_ERANGE, da_ranking_hessian(r, -1, x_ok, t_ok, H, NULL));
        FAILS(DA_ENAN, da_ranking_hessian(r, B, x_nan, t_ok, H, NULL));
        UNTOUCHED(H, B * N * N);
        da_ctx *ctx = da_ctx_new();
        int s23[2] = {2, 3};
        da_tensor *wrong = da_ctx_tensor(ctx, DA_F64, 2, s23);
        FAILS_NULL(DA_EINVAL, da_ranking_loss_op(ctx, r, NULL, t_ok));
        FAILS_NULL(DA_EINVAL, da_ranking_loss_op(NULL, r, wrong, t_ok));
        FAILS_NULL(DA_ESHAPE, da_ranking_loss_op(ctx, r, wrong, t_ok));
        da_ctx_free(ctx);
        da_ranking_free(r);
    }
    da_ranking_free(NULL);
    FAILS(DA_EINVAL, da_ranking_loss(NULL, B, x_ok, t_ok, NULL, NULL));
    FAILS_NULL(DA_EINVAL, da_ranking_new(NULL, N));
    FAILS_NULL(DA_ERANGE, da_ranking_new("neuralsort", 1));
    FAILS_NULL(DA_ERANGE, da_ranking_new("neuralsort", -5));
    FAILS_NULL(DA_EINVAL, da_ranking_new("", N));
    FAILS_NULL(DA_EINVAL, da_ranking_new("quicksort", N));
    FAILS_NULL(DA_EINVAL, da_ranking_new("neuralsort:temperature=1", N));
    FAILS_NULL(DA_EINVAL, da_ranking_new("odd_even:a:b:c:d:e:f:g:h:i", N));
    const char *bad_values[] = {"neuralsort:tau=0", "neuralsort:tau=-1", "softsort:tau=nan",
                                "softsort:tau=inf", "sinkhorn:iterations=0",
                                "sinkhorn:epsilon=1e-300", "fast_soft_rank:strength=",
                                "odd_even:steepness=abc", "bitonic:steepness=1e400"};
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++)
        FAILS_NULL(DA_ERANGE, da_ranking_new(bad_values[i], N));
    char long_spec[400];
    memset(long_spec, 'a', sizeof long_spec - 1);
    long_spec[sizeof long_spec - 1] = '\0';
    FAILS_NULL(DA_ERANGE, da_ranking_new(long_spec, N));
}
END_TEST

START_TEST(ranking_family_configs)
{
    da_sortnet *net = da_sortnet_new(DA_SORTNET_ODD_EVEN, N, DA_SIGMOID_CAUCHY, 10, 0.25);
    da_neuralsort_cfg ns = {N, 1};
    da_softsort_cfg ss = {N, 1};
    da_sinkhorn_cfg sk = {N, 0.1, 10};
    da_fast_soft_rank_cfg fsr = {N, DA_REG_L2, 1};
    check_loss_face("sortnet", da_sortnet_loss_face, net);
    check_loss_face("neuralsort", da_neuralsort_loss_face, &ns);
    check_loss_face("softsort", da_softsort_loss_face, &ss);
    check_loss_face("sinkhorn", da_sinkhorn_loss_face, &sk);
    check_loss_face("fast_soft_rank", da_fast_soft_rank_loss_face, &fsr);
    double loss = SENTINEL;
    const double bad_tau[4] = {0, -1, INFINITY, NAN}, bad_codes[4] = {DA_ERANGE, DA_ERANGE,
                                                                      DA_ERANGE, DA_ENAN};
    for (int i = 0; i < 4; i++) {
        da_neuralsort_cfg bns = {N, bad_tau[i]};
        da_softsort_cfg bss = {N, bad_tau[i]};
        da_fast_soft_rank_cfg bfsr = {N, DA_REG_L2, bad_tau[i]};
        da_sinkhorn_cfg bsk = {N, bad_tau[i], 10};
        FAILS((int)bad_codes[i], da_neuralsort_loss(&bns, B, x_ok, t_ok, &loss, NULL));
        FAILS((int)bad_codes[i], da_softsort_loss(&bss, B, x_ok, t_ok, &loss, NULL));
        FAILS((int)bad_codes[i], da_fast_soft_rank_loss(&bfsr, B, x_ok, t_ok, &loss, NULL));
        FAILS((int)bad_codes[i], da_sinkhorn_loss(&bsk, B, x_ok, t_ok, &loss, NULL));
        FAILS_NULL(isfinite(bad_tau[i]) ? DA_ERANGE : DA_ENAN, /* sortnet.h: Inf is DA_ENAN */
                   da_sortnet_new(DA_SORTNET_ODD_EVEN, N, DA_SIGMOID_LOGISTIC, bad_tau[i], 0));
    }
    ck_assert(loss == SENTINEL);
    da_neuralsort_cfg big_ns = {DA_NEURALSORT_MAX_N + 1, 1}, one_ns = {1, 1};
    da_sinkhorn_cfg zero_iter = {N, 0.1, 0}, tiny_eps = {N, 1e-13, 5};
    FAILS(DA_ERANGE, da_neuralsort_loss(&big_ns, 1, x_ok, t_ok, &loss, NULL));
    FAILS(DA_ERANGE, da_neuralsort_loss(&one_ns, 1, x_ok, t_ok, &loss, NULL));
    FAILS(DA_ERANGE, da_sinkhorn_loss(&zero_iter, 1, x_ok, t_ok, &loss, NULL));
    FAILS(DA_ERANGE, da_sinkhorn_loss(&tiny_eps, 1, x_ok, t_ok, &loss, NULL));
    FAILS_NULL(DA_ERANGE, da_sortnet_new(DA_SORTNET_BITONIC, 1, DA_SIGMOID_CAUCHY, 1, 0));
    FAILS_NULL(DA_ERANGE, da_sortnet_new(DA_SORTNET_BITONIC, DA_SORTNET_MAX_N + 1,
                                         DA_SIGMOID_CAUCHY, 1, 0));
    FAILS_NULL(DA_EINVAL, da_sortnet_new((da_sortnet_kind)5, N, DA_SIGMOID_CAUCHY, 1, 0));
    FAILS_NULL(DA_EINVAL, da_sortnet_new(DA_SORTNET_BITONIC, N, (da_sigmoid)17, 1, 0));
    FAILS_NULL(DA_ERANGE, da_sortnet_new(DA_SORTNET_BITONIC, N, DA_SIGMOID_LOGISTIC_PHI, 1, 2));
    FAILS_NULL(DA_ENAN, da_sortnet_new(DA_SORTNET_BITONIC, N, DA_SIGMOID_LOGISTIC_PHI, 1, NAN));
    da_sortnet_free(NULL);

    /* operators */
    double P[B * N * N], out[B * N], H[B * N * N], grad[B * N];
    fill_sentinel(P, B * N * N);
    fill_sentinel(out, B * N);
    fill_sentinel(H, B * N * N);
    fill_sentinel(grad, B * N);
    FAILS(DA_EINVAL, da_sortnet_apply(NULL, B, x_ok, out, P));
    FAILS(DA_EINVAL, da_sortnet_apply(net, B, x_ok, NULL, NULL));
    FAILS(DA_ENAN, da_sortnet_apply(net, B, x_inf, out, P));
    FAILS(DA_ERANGE, da_sortnet_apply(net, 0, x_ok, out, P));
    FAILS(DA_EINVAL, da_sortnet_vjp(net, B, x_ok, NULL, NULL, grad));
    FAILS(DA_ENAN, da_sortnet_vjp(net, B, x_ok, x_nan, NULL, grad));
    FAILS(DA_ENAN, da_sortnet_loss_hessian(net, B, x_nan, t_ok, H));
    FAILS(DA_EINVAL, da_sortnet_loss_hvp(net, B, x_ok, t_ok, NULL, grad));
    FAILS(DA_EINVAL, da_neuralsort_apply(&ns, B, x_ok, NULL, NULL, NULL));
    FAILS(DA_EINVAL, da_neuralsort_apply(&ns, B, x_ok, P, P, NULL));
    FAILS(DA_ENAN, da_neuralsort_apply(&ns, B, x_nan, P, NULL, NULL));
    FAILS(DA_ENAN, da_neuralsort_hessian(&ns, B, x_inf, t_ok, H));
    FAILS(DA_ENAN, da_softsort_apply(&ss, B, x_inf, P, NULL, NULL));
    FAILS(DA_ERANGE, da_softsort_hessian(&ss, -1, x_ok, t_ok, H));
    FAILS(DA_EINVAL, da_perm_desc_rows_to_diffalg(B, N, NULL, P));
    FAILS(DA_EINVAL, da_perm_diffalg_to_desc_rows(B, N, P, P));
    FAILS(DA_ERANGE, da_perm_diffalg_to_desc_rows(B, 0, x_ok, P));
    FAILS(DA_EINVAL, da_sinkhorn_sort(&sk, B, x_ok, NULL, NULL, NULL, NULL, NULL, NULL, NULL));
    FAILS(DA_EINVAL, da_sinkhorn_sort(&sk, B, x_ok, NULL, NULL, NULL, NULL, NULL, NULL, grad));
    FAILS(DA_ENAN, da_sinkhorn_sort(&sk, B, x_nan, P, NULL, NULL, NULL, NULL, NULL, NULL));
    FAILS(DA_ENAN, da_sinkhorn_sort(&sk, B, x_ok, NULL, out, NULL, NULL, x_nan, NULL, grad));
    for (int dir = 0; dir < 2; dir++) {
        typeof(da_soft_rank) *f = dir ? da_soft_sort : da_soft_rank;
        FAILS(DA_EINVAL, f(B, N, NULL, DA_ASCENDING, DA_REG_L2, 1, out, NULL, NULL));
        FAILS(DA_EINVAL, f(B, N, x_ok, DA_ASCENDING, DA_REG_L2, 1, NULL, NULL, NULL));
        FAILS(DA_EINVAL, f(B, N, x_ok, DA_ASCENDING, DA_REG_L2, 1, out, x_ok, NULL));
        FAILS(DA_EINVAL, f(B, N, x_ok, (da_direction)7, DA_REG_L2, 1, out, NULL, NULL));
        FAILS(DA_EINVAL, f(B, N, x_ok, DA_ASCENDING, (da_regularization)7, 1, out, NULL, NULL));
        FAILS(DA_ERANGE, f(0, N, x_ok, DA_ASCENDING, DA_REG_L2, 1, out, NULL, NULL));
        FAILS(DA_ERANGE, f(B, 1, x_ok, DA_ASCENDING, DA_REG_L2, 1, out, NULL, NULL));
        FAILS(DA_ERANGE, f(B, N, x_ok, DA_ASCENDING, DA_REG_L2, 0, out, NULL, NULL));
        FAILS(DA_ERANGE, f(B, N, x_ok, DA_ASCENDING, DA_REG_KL, INFINITY, out, NULL, NULL));
        FAILS(DA_ENAN, f(B, N, x_ok, DA_ASCENDING, DA_REG_L2, NAN, out, NULL, NULL));
        FAILS(DA_ENAN, f(B, N, x_inf, DA_ASCENDING, DA_REG_L2, 1, out, NULL, NULL));
        FAILS(DA_ENAN, f(B, N, x_ok, DA_ASCENDING, DA_REG_L2, 1, NULL, x_nan, grad));
        FAILS(DA_ERANGE, f(B, N, x_ok, DA_DESCENDING, DA_REG_KL, 1e-310, out, NULL, NULL));
    }
    UNTOUCHED(P, B * N * N);
    UNTOUCHED(out, B * N);
    UNTOUCHED(H, B * N * N);
    UNTOUCHED(grad, B * N);
    da_sortnet_free(net);
}
END_TEST

START_TEST(topk_and_metrics)
{
    da_sortnet *net = da_sortnet_new(DA_SORTNET_BITONIC, N, DA_SIGMOID_LOGISTIC, 4, 0);
    double X[B * N * 2], grad[B * N], p_k[2] = {0.5, 0.5}, p_bad[2] = {0.5, 0.6};
    double p_nan[2] = {NAN, 1}, loss = SENTINEL, v = SENTINEL;
    int labels[B] = {1, 3}, bad_labels[B] = {1, N}, neg_labels[B] = {-1, 0};
    da_topk_ce_cfg cfg = {net, N, 0, 2, p_k, DA_TOP1_SORT};
    fill_sentinel(X, B * N * 2);
    fill_sentinel(grad, B * N);
    FAILS(DA_EINVAL, da_topk(NULL, 2, B, x_ok, X, NULL, NULL));
    FAILS(DA_ERANGE, da_topk(net, 0, B, x_ok, X, NULL, NULL));
    FAILS(DA_ERANGE, da_topk(net, N + 1, B, x_ok, X, NULL, NULL));
    FAILS(DA_ERANGE, da_topk(net, 2, 0, x_ok, X, NULL, NULL));
    FAILS(DA_ENAN, da_topk(net, 2, B, x_nan, X, NULL, NULL));
    FAILS(DA_EINVAL, da_topk_ce_loss(NULL, B, x_ok, labels, &loss, grad));
    FAILS(DA_EINVAL, da_topk_ce_loss(&cfg, B, NULL, labels, &loss, grad));
    FAILS(DA_EINVAL, da_topk_ce_loss(&cfg, B, x_ok, NULL, &loss, grad));
    FAILS(DA_ERANGE, da_topk_ce_loss(&cfg, B, x_ok, bad_labels, &loss, grad));
    FAILS(DA_ERANGE, da_topk_ce_loss(&cfg, B, x_ok, neg_labels, &loss, grad));
    FAILS(DA_ENAN, da_topk_ce_loss(&cfg, B, x_inf, labels, &loss, grad));
    cfg.p_k = p_bad;
    FAILS(DA_ERANGE, da_topk_ce_loss(&cfg, B, x_ok, labels, &loss, grad));
    cfg.p_k = p_nan;
    FAILS(DA_ENAN, da_topk_ce_loss(&cfg, B, x_ok, labels, &loss, grad));
    cfg.p_k = p_k;
    cfg.top1_mode = (da_top1_mode)9;
    FAILS(DA_EINVAL, da_topk_ce_loss(&cfg, B, x_ok, labels, &loss, grad));
    cfg.top1_mode = DA_TOP1_SM;
    cfg.m = N + 3;
    FAILS(DA_ERANGE, da_topk_ce_loss(&cfg, B, x_ok, labels, &loss, grad));
    UNTOUCHED(X, B * N * 2);
    UNTOUCHED(grad, B * N);
    ck_assert(loss == SENTINEL);
    da_sortnet_free(net);

    da_ranking_acc acc = {SENTINEL, SENTINEL, SENTINEL};
    FAILS(DA_EINVAL, da_ranking_accuracy(B, N, NULL, t_ok, &acc));
    FAILS(DA_EINVAL, da_ranking_accuracy(B, N, x_ok, t_ok, NULL));
    FAILS(DA_ERANGE, da_ranking_accuracy(0, N, x_ok, t_ok, &acc));
    FAILS(DA_ERANGE, da_ranking_accuracy(B, 0, x_ok, t_ok, &acc));
    FAILS(DA_ENAN, da_ranking_accuracy(B, N, x_nan, t_ok, &acc));
    ck_assert(acc.em == SENTINEL && acc.ew == SENTINEL);
    FAILS(DA_ERANGE, da_spearman(B, 1, x_ok, t_ok, &v));
    FAILS(DA_ENAN, da_spearman(B, N, x_ok, x_inf, &v));
    FAILS(DA_EINVAL, da_spearman(B, N, x_ok, t_ok, NULL));
    FAILS(DA_ERANGE, da_kendall_tau(B, (1 << 16) + 1, x_ok, t_ok, &v));
    FAILS(DA_ENAN, da_kendall_tau(B, N, x_nan, t_ok, &v));
    FAILS(DA_ERANGE, da_topk_accuracy(B, N, x_ok, labels, 0, &v));
    FAILS(DA_ERANGE, da_topk_accuracy(B, N, x_ok, labels, N + 1, &v));
    FAILS(DA_ERANGE, da_topk_accuracy(B, N, x_ok, bad_labels, 1, &v));
    FAILS(DA_ENAN, da_topk_accuracy(B, N, x_nan, labels, 1, &v));
    FAILS(DA_EINVAL, da_topk_accuracy(B, N, x_ok, NULL, 1, &v));
    ck_assert(v == SENTINEL);
}
END_TEST

/* ---------------------------------------------------------------- shortest paths */
/* a black-box solver for the smoothing ops: picks the first entry */
static int sp_first(void *user, int n, const double *cost, double *y)
{
    for (int i = 0; i < n; i++)
        y[i] = i == 0;
    return DA_OK;
}

START_TEST(shortest_paths)
{
    enum { H = 3, W = 3, C = B * H * W };
    double cost[C], neg[C], nan_cost[C], target[C], path[C], grad[C], loss = SENTINEL;
    for (int i = 0; i < C; i++) {
        cost[i] = 1 + (i * 7) % 5;
        neg[i] = nan_cost[i] = cost[i];
        target[i] = i % 4 == 0;
    }
    neg[4] = -1;
    nan_cost[3] = NAN;
    fill_sentinel(path, C);
    fill_sentinel(grad, C);
    FAILS(DA_EINVAL, da_sp_dijkstra(B, H, W, NULL, path, NULL));
    FAILS(DA_EINVAL, da_sp_dijkstra(B, H, W, cost, NULL, NULL));
    FAILS(DA_ERANGE, da_sp_dijkstra(0, H, W, cost, path, NULL));
    FAILS(DA_ERANGE, da_sp_dijkstra(B, 0, W, cost, path, NULL));
    FAILS(DA_ERANGE, da_sp_dijkstra(B, H, DA_SP_MAX_SIDE + 1, cost, path, NULL));
    FAILS(DA_ENAN, da_sp_dijkstra(B, H, W, nan_cost, path, NULL));
    FAILS(DA_ERANGE, da_sp_dijkstra(B, H, W, neg, path, NULL));
    FAILS(DA_ERANGE, da_sp_blackbox_grad(B, H, W, cost, target, 0, grad));
    /* NaN parameters (lambda, beta, sigma, ...) are DA_ENAN, Inf ones DA_ERANGE */
    FAILS(DA_ENAN, da_sp_blackbox_grad(B, H, W, cost, target, NAN, grad));
    FAILS(DA_ERANGE, da_sp_blackbox_grad(B, H, W, cost, target, INFINITY, grad));
    FAILS(DA_ENAN, da_sp_blackbox_grad(B, H, W, cost, nan_cost, 1, grad));
    FAILS(DA_EINVAL, da_sp_blackbox_grad(B, H, W, cost, NULL, 1, grad));
    FAILS(DA_EINVAL, da_sp_hamming_loss(B, H, W, NULL, target, &loss, NULL));
    FAILS(DA_ENAN, da_sp_hamming_loss(B, H, W, nan_cost, target, &loss, NULL));
    da_sp_blackbox_cfg bb = {0};
    FAILS(DA_ERANGE, da_sp_blackbox_loss(&bb, B, H, W, cost, target, &loss, grad));
    bb.lambda = NAN;
    FAILS(DA_ENAN, da_sp_blackbox_loss(&bb, B, H, W, cost, target, &loss, grad));
    FAILS(DA_ENAN, da_sp_blackbox_normalized_loss(&bb, B, H, W, cost, target, &loss, grad));
    FAILS(DA_EINVAL, da_sp_blackbox_loss(NULL, B, H, W, cost, target, &loss, grad));
    da_sp_relaxed_cfg rc = da_sp_relaxed_default(H, W), bad = rc;
    FAILS(DA_EINVAL, da_sp_relaxed_path(NULL, B, H, W, cost, path, NULL, NULL));
    FAILS(DA_EINVAL, da_sp_relaxed_path(&rc, B, H, W, cost, path, target, NULL));
    FAILS(DA_ENAN, da_sp_relaxed_path(&rc, B, H, W, nan_cost, path, NULL, NULL));
    bad.beta = 0;
    FAILS(DA_ERANGE, da_sp_relaxed_path(&bad, B, H, W, cost, path, NULL, NULL));
    bad = rc;
    bad.beta = NAN;
    FAILS(DA_ENAN, da_sp_relaxed_loss(&bad, B, H, W, cost, target, &loss, grad));
    FAILS(DA_ENAN, da_sp_relaxed_path(&bad, B, H, W, cost, path, NULL, NULL));
    bad.beta = INFINITY;
    FAILS(DA_ERANGE, da_sp_relaxed_loss(&bad, B, H, W, cost, target, &loss, grad));
    bad = rc;
    bad.tconorm = DA_SP_TCONORM_HAMACHER;
    bad.hamacher_p = NAN;
    FAILS(DA_ENAN, da_sp_relaxed_loss(&bad, B, H, W, cost, target, &loss, grad));
    bad = rc;
    bad.loop = DA_SP_LOOP_WHILE;
    bad.epsilon = NAN;
    FAILS(DA_ENAN, da_sp_relaxed_loss(&bad, B, H, W, cost, target, &loss, grad));
    bad = rc;
    bad.n_iter = 1;
    FAILS(DA_ERANGE, da_sp_relaxed_loss(&bad, B, H, W, cost, target, &loss, grad));
    bad = rc;
    bad.tconorm = (da_sp_tconorm)8;
    FAILS(DA_EINVAL, da_sp_relaxed_loss(&bad, B, H, W, cost, target, &loss, grad));
    bad = rc;
    bad.loop = DA_SP_LOOP_WHILE;
    bad.max_iter = 0;
    FAILS(DA_ERANGE, da_sp_relaxed_loss(&bad, B, H, W, cost, target, &loss, grad));
    da_rng *rng = da_rng_new(1);
    da_sp_perturbed_cfg pc = {DA_SP_NOISE_GAUSSIAN, 1, 4}, pbad = pc;
    FAILS(DA_EINVAL, da_sp_perturbed(&pc, NULL, B, H, W, cost, path, NULL, NULL));
    FAILS(DA_EINVAL, da_sp_perturbed(&pc, rng, B, H, W, cost, path, target, NULL));
    FAILS(DA_ENAN, da_sp_fy_loss(&pc, rng, B, H, W, nan_cost, target, &loss, grad));
    pbad.sigma = 0;
    FAILS(DA_ERANGE, da_sp_fy_loss(&pbad, rng, B, H, W, cost, target, &loss, grad));
    pbad.sigma = NAN;
    FAILS(DA_ENAN, da_sp_fy_loss(&pbad, rng, B, H, W, cost, target, &loss, grad));
    FAILS(DA_ENAN, da_sp_perturbed(&pbad, rng, B, H, W, cost, path, NULL, NULL));
    pbad.sigma = INFINITY;
    FAILS(DA_ERANGE, da_sp_fy_loss(&pbad, rng, B, H, W, cost, target, &loss, grad));
    pbad = pc;
    pbad.n_samples = 0;
    FAILS(DA_ERANGE, da_sp_fy_loss(&pbad, rng, B, H, W, cost, target, &loss, grad));
    pbad = pc;
    pbad.noise = (da_sp_noise)5;
    FAILS(DA_EINVAL, da_sp_fy_loss(&pbad, rng, B, H, W, cost, target, &loss, grad));
    da_smooth_cfg sc;
    da_smooth_cfg_default(&sc);
    sc.samples = 8;
    FAILS(DA_EINVAL, da_sp_smooth_path(&sc, NULL, B, H, W, cost, path, NULL, NULL));
    FAILS(DA_ENAN, da_sp_smooth_path(&sc, rng, B, H, W, nan_cost, path, NULL, NULL));
    FAILS(DA_EINVAL, da_sp_smooth_loss(NULL, rng, B, H, W, cost, target, &loss, grad, NULL));
    FAILS(DA_ENAN, da_sp_smooth_loss(&sc, rng, B, H, W, cost, nan_cost, &loss, grad, NULL));
    /* the tensor faces: NULL cost (with no earlier error) is DA_EINVAL with a message, NaN
     * parameters DA_ENAN */
    da_ctx *c = da_ctx_new();
    int s3[3] = {B, H, W}, s2[2] = {B, H * W};
    da_tensor *ct = da_ctx_tensor_from(c, DA_F64, 3, s3, cost);
    da_tensor *ct2 = da_ctx_tensor_from(c, DA_F64, 2, s2, cost);
    ck_assert(c && ct && ct2);
    FAILS_NULL(DA_EINVAL, da_sp_smooth_solver_op(c, NULL, sp_first, NULL, &sc, rng));
    FAILS_NULL(DA_EINVAL, da_sp_smooth_solver_loss_op(c, NULL, target, sp_first, NULL, &sc, rng));
    FAILS_NULL(DA_EINVAL, da_sp_smooth_loss_op(c, NULL, target, &sc, rng));
    FAILS_NULL(DA_EINVAL, da_sp_smooth_path_op(c, NULL, &sc, rng));
    FAILS_NULL(DA_EINVAL, da_sp_smooth_solver_op(NULL, ct2, sp_first, NULL, &sc, rng));
    FAILS_NULL(DA_EINVAL, da_sp_smooth_loss_op(c, ct, NULL, &sc, rng));
    FAILS_NULL(DA_ENAN, da_sp_blackbox_path(c, ct, NAN));
    FAILS_NULL(DA_ENAN, da_sp_blackbox(c, ct, target, &bb));
    bad = rc;
    bad.beta = NAN;
    FAILS_NULL(DA_ENAN, da_sp_relaxed(c, ct, target, &bad));
    FAILS_NULL(DA_ENAN, da_sp_relaxed_path_op(c, ct, &bad));
    pbad = pc;
    pbad.sigma = NAN;
    FAILS_NULL(DA_ENAN, da_sp_fy(c, ct, target, &pbad, rng));
    da_ctx_free(c);
    da_sp_metrics m = {SENTINEL, SENTINEL, SENTINEL};
    FAILS(DA_EINVAL, da_sp_metrics_eval(B, H, W, NULL, target, cost, &m));
    FAILS(DA_ENAN, da_sp_metrics_eval(B, H, W, target, target, nan_cost, &m));
    FAILS(DA_EINVAL, da_sp_metrics_eval(B, H, W, target, target, cost, NULL));
    ck_assert(m.exact_match == SENTINEL);
    UNTOUCHED(path, C);
    UNTOUCHED(grad, C);
    ck_assert(loss == SENTINEL);
    da_rng_free(rng);
}
END_TEST

/* ---------------------------------------------------------------- relax, newton, precond */
static int bb_sum(void *user, int n, const double *x, int m, double *y)
{
    y[0] = 0;
    for (int i = 0; i < n; i++)
        y[0] += x[i] > 0;
    return DA_OK;
}

START_TEST(relax_newton_precond)
{
    da_smooth_cfg sc, bad;
    da_smooth_cfg_default(&sc);
    sc.samples = 8;
    da_rng *rng = da_rng_new(2);
    double value = SENTINEL, J[N], Hm[N * N];
    da_dist d = DA_DIST_COUNT;
    da_sampling smp = DA_SAMPLE_DEFAULT;
    fill_sentinel(J, N);
    fill_sentinel(Hm, N * N);
    FAILS(DA_EINVAL, da_dist_parse(NULL, &d));
    FAILS(DA_EINVAL, da_dist_parse("normal-ish", &d));
    FAILS(DA_EINVAL, da_sampling_parse("random", &smp));
    ck_assert_ptr_null(da_dist_name(DA_DIST_COUNT));
    FAILS(DA_EINVAL, da_smooth_jacobian(NULL, bb_sum, NULL, N, 1, x_ok, rng, &value, J));
    FAILS(DA_EINVAL, da_smooth_jacobian(&sc, NULL, NULL, N, 1, x_ok, rng, &value, J));
    FAILS(DA_EINVAL, da_smooth_jacobian(&sc, bb_sum, NULL, N, 1, NULL, rng, &value, J));
    FAILS(DA_EINVAL, da_smooth_jacobian(&sc, bb_sum, NULL, N, 1, x_ok, NULL, &value, J));
    FAILS(DA_ERANGE, da_smooth_jacobian(&sc, bb_sum, NULL, 0, 1, x_ok, rng, &value, J));
    FAILS(DA_ERANGE, da_smooth_jacobian(&sc, bb_sum, NULL, DA_SMOOTH_MAX_DIM + 1, 1, x_ok, rng,
                                        &value, J));
    FAILS(DA_ERANGE, da_smooth_jacobian(&sc, bb_sum, NULL, N, 0, x_ok, rng, &value, J));
    FAILS(DA_ENAN, da_smooth_jacobian(&sc, bb_sum, NULL, N, 1, x_nan, rng, &value, J));
    bad = sc;
    bad.eps = 0;
    FAILS(DA_ERANGE, da_smooth_jacobian(&bad, bb_sum, NULL, N, 1, x_ok, rng, &value, J));
    bad.eps = NAN;
    FAILS(DA_ENAN, da_smooth_jacobian(&bad, bb_sum, NULL, N, 1, x_ok, rng, &value, J));
    bad = sc;
    bad.samples = 0;
    FAILS(DA_ERANGE, da_smooth_jacobian(&bad, bb_sum, NULL, N, 1, x_ok, rng, &value, J));
    bad.samples = DA_SMOOTH_MAX_SAMPLES + 1;
    FAILS(DA_ERANGE, da_smooth_jacobian(&bad, bb_sum, NULL, N, 1, x_ok, rng, &value, J));
    bad = sc;
    bad.dist = DA_DIST_COUNT;
    FAILS(DA_EINVAL, da_smooth_jacobian(&bad, bb_sum, NULL, N, 1, x_ok, rng, &value, J));
    bad = sc;
    bad.dist = DA_DIST_GUMBEL;
    bad.antithetic = 1;
    FAILS(DA_EINVAL, da_smooth_jacobian(&bad, bb_sum, NULL, N, 1, x_ok, rng, &value, J));
    bad = sc;
    bad.dist = DA_DIST_LAPLACE;
    FAILS(DA_EINVAL, da_smooth_hessian(&bad, bb_sum, NULL, N, x_ok, rng, &value, J, Hm));
    double Lsing[N * N] = {0};
    bad = sc;
    bad.L = Lsing;
    FAILS(BAD_ANY, da_smooth_jacobian(&bad, bb_sum, NULL, N, 1, x_ok, rng, &value, J));
    UNTOUCHED(J, N);
    UNTOUCHED(Hm, N * N);
    ck_assert(value == SENTINEL);
    da_rng_free(rng);

    double Hn[B * N * N] = {0}, zstar[B * N], gnew[B * N];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++)
            Hn[(b * N + i) * N + i] = 1;
    fill_sentinel(zstar, B * N);
    fill_sentinel(gnew, B * N);
    FAILS(DA_EINVAL, da_newton_hessian_step(B, N, NULL, x_ok, Hn, 1, zstar, gnew, NULL));
    FAILS(DA_EINVAL, da_newton_hessian_step(B, N, x_ok, x_ok, NULL, 1, zstar, gnew, NULL));
    FAILS(DA_ERANGE, da_newton_hessian_step(0, N, x_ok, x_ok, Hn, 1, zstar, gnew, NULL));
    FAILS(DA_ERANGE, da_newton_hessian_step(B, -1, x_ok, x_ok, Hn, 1, zstar, gnew, NULL));
    FAILS(DA_ERANGE, da_newton_hessian_step(B, N, x_ok, x_ok, Hn, -1, zstar, gnew, NULL));
    FAILS(DA_ENAN, da_newton_hessian_step(B, N, x_ok, x_ok, Hn, NAN, zstar, gnew, NULL));
    FAILS(DA_ENAN, da_newton_hessian_step(B, N, x_ok, x_nan, Hn, 1, zstar, gnew, NULL));
    FAILS(DA_ERANGE, da_newton_fisher_step(B, N, x_ok, x_ok, 0, zstar, gnew, NULL));
    FAILS(DA_ENAN, da_newton_fisher_step(B, N, x_inf, x_ok, 1, zstar, gnew, NULL));
    FAILS(DA_EINVAL, da_newton_fisher_step(B, N, x_ok, NULL, 1, zstar, gnew, NULL));
    UNTOUCHED(zstar, B * N);
    UNTOUCHED(gnew, B * N);
    da_ctx *ctx = da_ctx_new();
    FAILS_NULL(DA_EINVAL, da_newton_loss(ctx, NULL, x_ok));
    FAILS_NULL(DA_EINVAL, da_inject_fisher(NULL, NULL, 1));

    double gW[2 * N];
    fill_sentinel(gW, 2 * N);
    FAILS(DA_EINVAL, da_tract_linear_grad(B, N, 2, NULL, x_ok, 1, gW));
    FAILS(DA_ERANGE, da_tract_linear_grad(0, N, 2, x_ok, x_ok, 1, gW));
    FAILS(DA_ERANGE, da_tract_linear_grad(B, N, 2, x_ok, x_ok, 0, gW));
    FAILS(DA_ENAN, da_tract_linear_grad(B, N, 2, x_nan, x_ok, 1, gW));
    FAILS(DA_ENAN, da_isaac_linear_grad(B, N, 2, x_ok, x_ok, NAN, gW));
    FAILS(DA_EINVAL, da_precond_linear_grad((da_precond_kind)0, DA_PRECOND_AUTO, B, N, 2, x_ok,
                                            x_ok, 1, gW));
    FAILS(DA_EINVAL, da_precond_apply(DA_PRECOND_TRACT, (da_precond_regime)9, B, N, 2, x_ok, 1,
                                      gW));
    FAILS(DA_ERANGE, da_precond_conv2d_grad(DA_PRECOND_TRACT, DA_PRECOND_AUTO, 1, 1, 2, 2, 1,
                                            3, 1, 0, x_ok, x_ok, 1, gW));
    FAILS(DA_ERANGE, da_precond_conv2d_grad(DA_PRECOND_TRACT, DA_PRECOND_AUTO, 1, 1, 2, 2, 1,
                                            1, 0, 0, x_ok, x_ok, 1, gW));
    UNTOUCHED(gW, 2 * N);
    FAILS_NULL(DA_EINVAL, da_precond_weight(ctx, NULL, NULL, NULL));
    da_ctx_free(ctx);
}
END_TEST

/* ---------------------------------------------------------------- logic gate networks */
START_TEST(logic_networks)
{
    int ia[2] = {0, 1}, ib[2] = {1, 2}, bad_ia[2] = {0, 3};
    double w[2 * 16] = {0}, w_nan[2 * 16] = {0}, y[B * 2], gx[B * 3], c[4];
    double x3[B * 3] = {0, 1, 0.5, 1, 0, 0.25};
    w_nan[7] = NAN;
    fill_sentinel(y, B * 2);
    fill_sentinel(gx, B * 3);
    da_clear_error();
    ck_assert(isnan(da_logic_gate(16, 0, 1)));
    bad_check(DA_ERANGE, da_last_error_code(), "da_logic_gate(16, 0, 1)", __LINE__);
    FAILS(DA_ERANGE, da_logic_gate_coeffs(-1, c));
    FAILS(DA_EINVAL, da_logic_layer_forward(B, 3, 2, NULL, ib, w, x3, 0, y));
    FAILS(DA_EINVAL, da_logic_layer_forward(B, 3, 2, ia, ib, w, NULL, 0, y));
    FAILS(DA_ERANGE, da_logic_layer_forward(0, 3, 2, ia, ib, w, x3, 0, y));
    FAILS(DA_ERANGE, da_logic_layer_forward(B, 3, 2, bad_ia, ib, w, x3, 0, y));
    FAILS(DA_ENAN, da_logic_layer_forward(B, 3, 2, ia, ib, w_nan, x3, 0, y));
    FAILS(DA_ENAN, da_logic_layer_backward(B, 3, 2, ia, ib, w, x3, 0, x_nan, gx, NULL));
    FAILS(DA_ERANGE, da_logic_group_sum(B, 3, 2, 1, x3, y));
    FAILS(DA_ERANGE, da_logic_group_sum(B, 4, 2, 0, x_ok, y));
    FAILS(DA_ENAN, da_logic_group_sum(B, 4, 2, NAN, x_ok, y));
    FAILS(DA_ERANGE, da_logic_group_sum_backward(B, 4, 0, 1, x_ok, gx));
    da_rng *rng = da_rng_new(1);
    FAILS(DA_ERANGE, da_logic_connections_random(rng, 10, 2, ia, ib));
    FAILS(DA_EINVAL, da_logic_connections_random(NULL, 3, 2, ia, ib));
    da_rng_free(rng);
    UNTOUCHED(y, B * 2);
    UNTOUCHED(gx, B * 3);

    da_logicnet_cfg cfg = da_logicnet_default_cfg(3, 2, 4, 2), bad;
    FAILS_NULL(DA_EINVAL, da_logicnet_new(NULL));
    bad = cfg;
    bad.width = 5; /* not a multiple of n_classes */
    FAILS_NULL(DA_ERANGE, da_logicnet_new(&bad));
    bad = cfg;
    bad.n_layers = DA_LOGICNET_MAX_LAYERS + 1;
    FAILS_NULL(DA_ERANGE, da_logicnet_new(&bad));
    bad = cfg;
    bad.tau = NAN;
    FAILS_NULL(BAD_ANY, da_logicnet_new(&bad));
    bad = cfg;
    bad.n_thresholds = 0;
    FAILS_NULL(DA_ERANGE, da_logicnet_new(&bad));
    da_logicnet_free(NULL);
    da_logicnet *net = da_logicnet_new(&cfg);
    ck_assert_ptr_nonnull(net);
    float xf[B * 3] = {0.1f, 0.9f, 0.4f, NAN, 0.2f, 0.3f};
    double bits[B * 3], logits[B * 2];
    int pred[B] = {-7, -7}, labels[B] = {0, 2};
    FAILS(DA_ENAN, da_logicnet_binarize(net, B, xf, bits));
    FAILS(DA_EINVAL, da_logicnet_binarize(net, B, NULL, bits));
    FAILS(DA_ERANGE, da_logicnet_forward(net, 0, bits, 0, logits));
    FAILS(DA_ESTATE, da_logicnet_backward(net, logits, NULL));
    FAILS(DA_ENAN, da_logicnet_predict(net, B, xf, pred, NULL));
    ck_assert(pred[0] == -7 && pred[1] == -7);
    FAILS(DA_ERANGE, da_logicnet_cross_entropy(B, 2, x_ok, labels, &y[0], NULL));
    FAILS(DA_ENAN, da_logicnet_cross_entropy(B, 2, x_nan, labels, &y[0], NULL));
    FAILS(DA_ERANGE, da_logicnet_gates(net, 2, ia));
    FAILS_NULL(DA_EINVAL, da_logicnet_deserialize(NULL, 0));
    FAILS_NULL(DA_EFORMAT, da_logicnet_deserialize("DALOGIC\n", 8));
    FAILS_NULL(DA_EIO, da_logicnet_load("/nonexistent"));
    FAILS(DA_EINVAL, da_logicnet_save(NULL, "x"));
    FAILS_NULL(DA_EINVAL, da_logic_circuit_new(NULL));
    da_logic_circuit_free(NULL);
    da_logicnet_free(net);
    da_clear_error();
    ck_assert_int_eq(da_monk_class(4, (const int[6]){1, 1, 1, 1, 1, 1}), -1);
    bad_check(DA_ERANGE, da_last_error_code(), "da_monk_class(4, ...)", __LINE__);
    da_clear_error();
    ck_assert_int_eq(da_monk_class(1, (const int[6]){1, 1, 3, 1, 1, 1}), -1);
    bad_check(DA_ERANGE, da_last_error_code(), "da_monk_class(1, a3 = 3)", __LINE__);
    FAILS_NULL(DA_ERANGE, da_monk_new(0, 1));
    da_monk_free(NULL);
}
END_TEST

Suite *bad_inputs_losses_suite(void)
{
    Suite *s = suite_create("bad_inputs_losses");
    TCase *tc = tcase_create("losses");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, ranking_losses);
    tcase_add_test(tc, ranking_family_configs);
    tcase_add_test(tc, topk_and_metrics);
    tcase_add_test(tc, shortest_paths);
    tcase_add_test(tc, relax_newton_precond);
    tcase_add_test(tc, logic_networks);
    suite_add_tcase(s, tc);
    return s;
}
