/* test_alloc_fail.c - allocation-failure injection (issue 10): for representative calls
 * of every layer of the library, count the allocations N of the call (da_alloc_count),
 * then make each of them fail in turn (da_alloc_fail_after(k), k = 0 .. N-1). Every such
 * run must return DA_ENOMEM (or NULL with da_last_error_code() == DA_ENOMEM) with a
 * message, must not crash, and must free what it allocated (the sanitizer build and
 * scripts/valgrind-check find the leaks); after da_alloc_fail_after(-1) the call works
 * again. A "call" here is a small program: it builds what it needs through the library
 * (models, networks, rngs, ctx), runs, frees everything on every path, and returns the
 * first error code. This file: (a) MLP / CNN + ranking loss graphs with backward, (b)
 * optimizer steps, (c) checkpoint and logic-net files, (d) the plain-array faces (sorting
 * networks, top-k, Sinkhorn, PAV, ranking losses, shortest paths, smoothing), da_hessian
 * and Newton steps; alloc_fail_faces.c: tensor faces and large batches. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc_fail.h"
#include "suite_run.h"

char af_dir[sizeof AF_DIR_TEMPLATE] = AF_DIR_TEMPLATE;

static const char *code_name(int rc)
{
    return rc == NO_CODE ? "NULL without code" : da_status_name(rc);
}

long sweep(const char *name, call_fn call, const void *arg)
{
    da_alloc_fail_after(-1);
    da_clear_error();
    long before = da_alloc_count();
    int rc = call(arg);
    long n = da_alloc_count() - before;
    ck_assert_msg(rc == DA_OK, "%s fails without injection: %s", name, da_last_error());
    ck_assert_msg(n > 0, "%s made no allocation", name);
    long bad = 0;
    for (long k = 0; k < n; k++) {
        da_clear_error();
        da_alloc_fail_after(k);
        rc = call(arg);
        da_alloc_fail_after(-1);
        int ok = rc == DA_ENOMEM && da_last_error_code() == DA_ENOMEM && da_last_error()[0];
        if (!ok && bad++ < 8)
            fprintf(stderr, "%s: allocation %ld of %ld failing: returned %s, recorded %s '%s'\n",
                    name, k, n, code_name(rc), code_name(da_last_error_code()),
                    da_last_error());
    }
    da_clear_error();
    rc = call(arg);
    ck_assert_msg(rc == DA_OK, "%s fails after the hook was reset: %s", name, da_last_error());
    ck_assert_msg(bad == 0, "%s: %ld of %ld failing allocations were not reported as "
                            "DA_ENOMEM with a message (see stderr)", name, bad, n);
    printf("alloc_fail: %-46s N = %ld\n", name, n);
    return n;
}

void fill(double *x, long n, double seed)
{
    for (long i = 0; i < n; i++)
        x[i] = sin(1.7 * (double)i + seed);
}

/* ---------------------------------------------------------------- (a) graphs */
enum { NB = 3, NI = 4 }; /* batch and items of the ranking losses */

typedef struct {
    const char *spec;
    int cnn;
} graph_arg;

static int graph_call(const void *p)
{
    const graph_arg *a = p;
    int rc = DA_OK;
    da_rng *rng = NULL;
    da_model *m = NULL;
    da_ranking *r = NULL;
    da_ctx *ctx = NULL;
    da_tensor *x, *y, *loss;
    double xv[NB * 64], tgt[NB * NI];
    fill(xv, NB * 64, 0.3);
    fill(tgt, NB * NI, 1.1);
    CHECK_PTR(rng = da_rng_new(1));
    if (a->cnn) {
        int ch[1] = {2}, fc[1] = {NI};
        CHECK_PTR(m = da_model_cnn(DA_F64, 1, 8, 8, 1, ch, 3, 0, 1, fc, rng));
    } else {
        int sizes[3] = {6, 8, NI};
        CHECK_PTR(m = da_model_mlp(DA_F64, 3, sizes, rng));
    }
    CHECK_PTR(r = da_ranking_new(a->spec, NI));
    CHECK_PTR(ctx = da_ctx_new());
    int img[4] = {NB, 1, 8, 8}, vec[2] = {NB, 6};
    CHECK_PTR(x = da_ctx_tensor_from(ctx, DA_F64, a->cnn ? 4 : 2, a->cnn ? img : vec, xv));
    CHECK_PTR(y = da_model_forward(ctx, m, x));
    CHECK_PTR(loss = da_ranking_loss_op(ctx, r, y, tgt));
    CHECK(da_backward(ctx, loss));
done:
    da_ctx_free(ctx);
    da_ranking_free(r);
    da_model_free(m);
    da_rng_free(rng);
    return rc;
}

START_TEST(graphs)
{
    static const graph_arg args[] = {
        {"odd_even:cauchy", 0}, {"neuralsort", 0}, {"odd_even:cauchy", 1}, {"neuralsort", 1},
        {"bitonic:logistic", 0}, {"softsort", 0}, {"sinkhorn:iterations=5", 0},
        {"fast_soft_rank:kl", 0}};
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s + %s", args[i].cnn ? "cnn" : "mlp", args[i].spec);
        sweep(name, graph_call, &args[i]);
    }
}
END_TEST

/* ---------------------------------------------------------------- (b) optimizers */
static int optim_call(const void *p)
{
    const da_optim_cfg *cfg = p;
    int rc = DA_OK;
    int s2[2] = {3, 4}, s1[1] = {4};
    da_tensor *w = NULL, *b = NULL;
    da_optim *opt = NULL;
    void *state = NULL;
    CHECK_PTR(w = da_tensor_new(DA_F32, 2, s2));
    CHECK_PTR(b = da_tensor_new(DA_F64, 1, s1));
    CHECK_PTR(da_tensor_grad(w));
    CHECK_PTR(da_tensor_grad(b));
    for (long i = 0; i < w->size; i++)
        ((float *)w->grad)[i] = (float)(0.1 * (double)i - 0.3);
    for (long i = 0; i < b->size; i++)
        ((double *)b->grad)[i] = 0.2 * (double)i - 0.1;
    da_tensor *params[2] = {w, b};
    CHECK_PTR(opt = da_optim_new(params, 2, cfg));
    CHECK(da_optim_step(opt));
    CHECK(da_optim_step(opt));
    size_t size = da_optim_state_size(opt);
    state = malloc(size);
    ck_assert_ptr_nonnull(state);
    CHECK(da_optim_state_save(opt, state, size));
    CHECK(da_optim_state_load(opt, state, size));
    double total;
    CHECK(da_clip_grad_norm(params, 2, 1.0, 2.0, &total));
done:
    free(state);
    da_optim_free(opt);
    da_tensor_free(w);
    da_tensor_free(b);
    return rc;
}

START_TEST(optimizers)
{
    da_optim_cfg adam = da_adam_cfg(1e-3), adamw = da_adamw_cfg(1e-3), sgd = da_sgd_cfg(0.1, 0.9);
    adamw.amsgrad = 1;
    sweep("adam step", optim_call, &adam);
    sweep("adamw amsgrad step", optim_call, &adamw);
    sweep("sgd momentum step", optim_call, &sgd);
}
END_TEST

/* ---------------------------------------------------------------- (c) files */
static int checkpoint_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    int s2[2] = {3, 4};
    char path[sizeof af_dir + 16], prev[sizeof af_dir + 16], name[16], why[256];
    snprintf(path, sizeof path, "%s/ck", af_dir);
    snprintf(prev, sizeof prev, "%s/ck" DA_CHECKPOINT_PREV_SUFFIX, af_dir);
    remove(path); /* the same allocations in every run: two saves from scratch */
    remove(prev);
    da_tensor *t = NULL;
    da_rng *rng = NULL;
    da_checkpoint *ck = NULL, *back = NULL, *latest = NULL;
    long step;
    CHECK_PTR(t = da_tensor_new(DA_F64, 2, s2));
    CHECK_PTR(rng = da_rng_new(5));
    CHECK_PTR(ck = da_checkpoint_new());
    for (int i = 0; i < 9; i++) { /* more blobs than the first capacity */
        snprintf(name, sizeof name, "p%d", i);
        CHECK(da_checkpoint_put_tensor(ck, name, t));
    }
    CHECK(da_checkpoint_put_rng(ck, "rng", rng));
    CHECK(da_checkpoint_put_long(ck, "step", 7));
    CHECK(da_checkpoint_save(ck, path));
    CHECK(da_checkpoint_save(ck, path)); /* keeps the first as ck.prev */
    CHECK(da_checkpoint_load(path, &back));
    CHECK(da_checkpoint_get_tensor(back, "p8", t));
    CHECK(da_checkpoint_get_rng(back, "rng", rng));
    CHECK(da_checkpoint_get_long(back, "step", &step));
    ck_assert_int_eq(truncate(path, 100), 0);
    CHECK(da_checkpoint_load_latest(path, &latest, why, sizeof why));
    ck_assert(why[0] != '\0');
done:
    da_checkpoint_free(latest);
    da_checkpoint_free(back);
    da_checkpoint_free(ck);
    da_rng_free(rng);
    da_tensor_free(t);
    return rc;
}

static int logicnet_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    char path[sizeof af_dir + 16];
    snprintf(path, sizeof path, "%s/net", af_dir);
    enum { LNB = 4 }; /* samples */
    da_logicnet_cfg cfg = da_logicnet_default_cfg(5, 2, 6, 3);
    cfg.connections = DA_LOGIC_UNIQUE;
    da_logicnet *net = NULL, *back = NULL;
    void *bytes = NULL;
    size_t size;
    float x[LNB * 5];
    double bits[LNB * 5], logits[LNB * 3], gl[LNB * 3];
    int pred[LNB];
    for (int i = 0; i < LNB * 5; i++)
        x[i] = (float)(0.5 + 0.45 * sin(1.3 * i));
    fill(gl, LNB * 3, 0.7);
    CHECK_PTR(net = da_logicnet_new(&cfg));
    CHECK(da_logicnet_save(net, path));
    CHECK_PTR(back = da_logicnet_load(path));
    CHECK(da_logicnet_binarize(back, LNB, x, bits));
    CHECK(da_logicnet_forward(back, LNB, bits, 0, logits));
    CHECK(da_logicnet_backward(back, gl, NULL));
    CHECK(da_logicnet_predict(back, LNB, x, pred, logits));
    CHECK(da_logicnet_serialize(back, &bytes, &size));
done:
    free(bytes);
    da_logicnet_free(back);
    da_logicnet_free(net);
    return rc;
}

/* no temporary file (NAME.tmp.XXXXXX) survives the failed atomic writes */
static void assert_no_temporaries(void)
{
    DIR *d = opendir(af_dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)))
        ck_assert_msg(!strstr(e->d_name, ".tmp."), "temporary file %s left", e->d_name);
    closedir(d);
}

START_TEST(files)
{
    sweep("checkpoint save + load", checkpoint_call, NULL);
    sweep("logicnet save + load + train", logicnet_call, NULL);
    assert_no_temporaries();
}
END_TEST

/* ---------------------------------------------------------------- (d) plain arrays */
static int sortnet_call(const void *p)
{
    const da_sigmoid *sig = p;
    int rc = DA_OK;
    double x[B * N], t[B * N], grad[B * N], sorted[B * N], P[B * N * N], H[B * N * N], loss;
    fill(x, B * N, 0.1);
    fill(t, B * N, 2.0);
    da_sortnet *odd = NULL, *bit = NULL;
    CHECK_PTR(odd = da_sortnet_new(DA_SORTNET_ODD_EVEN, N, *sig, 10, 0.25));
    CHECK_PTR(bit = da_sortnet_new(DA_SORTNET_BITONIC, N, *sig, 10, 0.25));
    CHECK(da_sortnet_apply(odd, B, x, sorted, P));
    CHECK(da_sortnet_loss(odd, B, x, t, &loss, grad));
    CHECK(da_sortnet_vjp(bit, B, x, sorted, P, grad));
    CHECK(da_sortnet_loss_hessian(bit, B, x, t, H));
done:
    da_sortnet_free(odd);
    da_sortnet_free(bit);
    return rc;
}

static int topk_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    enum { K = 2 };
    double x[B * N], X[B * N * K], cot[B * N * K], grad[B * N], pk[K] = {0.5, 0.5}, loss;
    int labels[B] = {1, 4};
    fill(x, B * N, 0.4);
    fill(cot, B * N * K, 0.9);
    da_sortnet *net = NULL;
    CHECK_PTR(net = da_sortnet_new(DA_SORTNET_BITONIC, N, DA_SIGMOID_CAUCHY, 10, 0.25));
    CHECK(da_topk(net, K, B, x, X, cot, grad));
    da_topk_ce_cfg cfg = {net, N, 0, K, pk, DA_TOP1_SM};
    CHECK(da_topk_ce_loss(&cfg, B, x, labels, &loss, grad));
done:
    da_sortnet_free(net);
    return rc;
}

static int sinkhorn_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    double x[B * N], t[B * N], grad[B * N], P[B * N * N], sorted[B * N], ranks[B * N], loss;
    double cot[B * N];
    fill(x, B * N, 0.2);
    fill(t, B * N, 1.2);
    fill(cot, B * N, 2.2);
    da_sinkhorn_cfg cfg = {N, 0.1, 10};
    CHECK(da_sinkhorn_loss(&cfg, B, x, t, &loss, grad));
    CHECK(da_sinkhorn_sort(&cfg, B, x, P, sorted, ranks, NULL, cot, cot, grad));
done:
    return rc;
}

static int pav_call(const void *p)
{
    const da_regularization *reg = p;
    int rc = DA_OK;
    double x[B * N], out[B * N], cot[B * N], grad[B * N], t[B * N], loss;
    fill(x, B * N, 0.6);
    fill(cot, B * N, 1.6);
    fill(t, B * N, 2.6);
    CHECK(da_soft_rank(B, N, x, DA_ASCENDING, *reg, 1.0, out, cot, grad));
    CHECK(da_soft_sort(B, N, x, DA_DESCENDING, *reg, 0.5, out, cot, grad));
    da_fast_soft_rank_cfg cfg = {N, *reg, 1.0};
    CHECK(da_fast_soft_rank_loss(&cfg, B, x, t, &loss, grad));
done:
    return rc;
}

/* one sample of 4 items: the finite-difference Hessians (sinkhorn, fast_soft_rank) call
 * the loss 2 n times, and the sweep repeats the call once per allocation */
static int ranking_call(const void *p)
{
    enum { RN = 4 };
    const char *spec = p;
    int rc = DA_OK;
    double x[RN], t[RN], grad[RN], H[RN * RN], loss;
    int exact;
    fill(x, RN, 0.8);
    fill(t, RN, 1.8);
    da_ranking *r = NULL;
    CHECK_PTR(r = da_ranking_new(spec, RN));
    CHECK(da_ranking_loss(r, 1, x, t, &loss, grad));
    CHECK(da_ranking_hessian(r, 1, x, t, H, &exact));
done:
    da_ranking_free(r);
    return rc;
}

START_TEST(sorting)
{
    static const da_sigmoid sigs[] = {DA_SIGMOID_CAUCHY, DA_SIGMOID_LOGISTIC_PHI,
                                      DA_SIGMOID_OPTIMAL};
    static const da_regularization regs[] = {DA_REG_L2, DA_REG_KL};
    static const char *const specs[] = {"odd_even:gaussian", "neuralsort", "softsort",
                                        "sinkhorn:iterations=5", "fast_soft_rank:l2"};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "sortnet apply/loss/vjp/hessian (sigmoid %d)", (int)sigs[i]);
        sweep(name, sortnet_call, &sigs[i]);
    }
    sweep("topk + topk_ce", topk_call, NULL);
    sweep("sinkhorn loss + sort", sinkhorn_call, NULL);
    for (size_t i = 0; i < 2; i++)
        sweep(i ? "pav (kl) rank/sort/loss" : "pav (l2) rank/sort/loss", pav_call, &regs[i]);
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "ranking loss + hessian %s", specs[i]);
        sweep(name, ranking_call, specs[i]);
    }
}
END_TEST

static int path_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    double cost[B * SH * SW], path[B * SH * SW], target[B * SH * SW], grad[B * SH * SW];
    double pc[B], loss;
    for (int i = 0; i < B * SH * SW; i++)
        cost[i] = 1.5 + sin(0.9 * i);
    da_rng *rng = NULL;
    CHECK(da_sp_dijkstra(B, SH, SW, cost, target, pc));
    for (int i = 0; i < B * SH * SW; i++)
        cost[i] = 1.5 + cos(0.7 * i);
    CHECK(da_sp_dijkstra(B, SH, SW, cost, path, pc));
    da_sp_blackbox_cfg bb = {20};
    CHECK(da_sp_blackbox_loss(&bb, B, SH, SW, cost, target, &loss, grad));
    da_sp_relaxed_cfg rel = da_sp_relaxed_default(SH, SW);
    CHECK(da_sp_relaxed_loss(&rel, B, SH, SW, cost, target, &loss, grad));
    rel.loop = DA_SP_LOOP_WHILE;
    CHECK(da_sp_relaxed_path(&rel, B, SH, SW, cost, path, target, grad));
    CHECK_PTR(rng = da_rng_new(3));
    da_sp_perturbed_cfg pert = {DA_SP_NOISE_GAUSSIAN, 0.5, 3};
    CHECK(da_sp_fy_loss(&pert, rng, B, SH, SW, cost, target, &loss, grad));
done:
    da_rng_free(rng);
    return rc;
}

int blackbox(void *user, int n, const double *x, int m, double *y)
{
    (void)user;
    for (int j = 0; j < m; j++)
        y[j] = 0;
    for (int i = 0; i + 1 < n; i++)
        y[m == 1 ? 0 : i % m] += sin(x[i]) * x[i + 1];
    return DA_OK;
}

typedef struct {
    da_sampling sampling;
    int full_L; /* a full scale matrix for the smoothing of blackbox */
} smooth_arg;

static int smooth_call(const void *p)
{
    const smooth_arg *a = p;
    int rc = DA_OK;
    enum { n = 4, m = 2 };
    double x[n] = {0.3, -0.2, 0.5, 1.0}, value[m], J[m * n], H[n * n];
    double L[n * n] = {1, 0.2, 0, 0, 0, 0.8, 0.1, 0, 0.3, 0, 1.2, 0, 0, 0, 0.1, 0.9};
    double cost[B * SH * SW], target[B * SH * SW], grad[B * SH * SW], loss;
    for (int i = 0; i < B * SH * SW; i++)
        cost[i] = 1.5 + sin(0.9 * i);
    da_rng *rng = NULL;
    da_smooth_cfg cfg;
    da_smooth_cfg_default(&cfg);
    cfg.sampling = a->sampling;
    cfg.samples = 16;
    cfg.L = a->full_L ? L : NULL;
    CHECK_PTR(rng = da_rng_new(9));
    CHECK(da_smooth_jacobian(&cfg, blackbox, NULL, n, m, x, rng, value, J));
    CHECK(da_smooth_hessian(&cfg, blackbox, NULL, n, x, rng, value, J, H));
    cfg.L = NULL;
    CHECK(da_sp_dijkstra(B, SH, SW, cost, target, NULL));
    CHECK(da_sp_smooth_loss(&cfg, rng, B, SH, SW, cost, target, &loss, grad, NULL));
done:
    da_rng_free(rng);
    return rc;
}

START_TEST(paths_and_smoothing)
{
    static const smooth_arg args[] = {{DA_SAMPLE_DEFAULT, 0}, {DA_SAMPLE_MC, 1},
                                      {DA_SAMPLE_SOBOL, 0}, {DA_SAMPLE_HALTON, 1}};
    sweep("shortest paths", path_call, NULL);
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "smoothing (%s%s)", da_sampling_name(args[i].sampling),
                 args[i].full_L ? ", full L" : "");
        sweep(name, smooth_call, &args[i]);
    }
}
END_TEST

/* f(z) = sum exp(z) z through the core's ops (finite-difference Hessian path) */
static da_tensor *ops_fn(da_ctx *ctx, da_tensor *z, void *user)
{
    (void)user;
    return da_sum(ctx, da_mul(ctx, da_exp(ctx, z), z), DA_ALL_AXES, 0);
}

/* the Newton loss op: exact Hessian path */
static da_tensor *newton_fn(da_ctx *ctx, da_tensor *z, void *user)
{
    return da_newton_loss(ctx, z, user);
}

static int hessian_call(const void *p)
{
    int exact = *(const int *)p;
    int rc = DA_OK;
    double z[3] = {0.1, -0.4, 0.7}, zstar[3] = {1, 2, 3}, H[9];
    da_hessian_method method;
    da_ctx *ctx = NULL;
    CHECK_PTR(ctx = da_ctx_new());
    CHECK(da_hessian(ctx, exact ? newton_fn : ops_fn, zstar, 3, z, H, &method));
done:
    da_ctx_free(ctx);
    return rc;
}

static int newton_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    enum { NB2 = 2, m = 3 };
    double z[NB2 * m], g[NB2 * m], H[NB2 * m * m], zs[NB2 * m], grad[NB2 * m];
    int fallbacks;
    fill(z, NB2 * m, 0.5);
    fill(g, NB2 * m, 1.5);
    fill(H, NB2 * m * m, 2.5);
    for (int b = 0; b < NB2; b++) /* symmetric, the second one indefinite */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < i; j++)
                H[(b * m + j) * m + i] = H[(b * m + i) * m + j];
    CHECK(da_newton_hessian_step(NB2, m, z, g, H, 0.1, zs, grad, &fallbacks));
    CHECK(da_newton_fisher_step(NB2, m, z, g, 0.1, zs, grad, &fallbacks)); /* Woodbury */
    CHECK(da_newton_fisher_step(1, 1, z, g, 0.1, zs, grad, &fallbacks));
done:
    return rc;
}

START_TEST(second_order)
{
    static const int exact[2] = {0, 1};
    sweep("da_hessian (finite differences)", hessian_call, &exact[0]);
    sweep("da_hessian (exact hvp)", hessian_call, &exact[1]);
    sweep("newton hessian/fisher steps", newton_call, NULL);
}
END_TEST

int main(void)
{
    if (!mkdtemp(af_dir)) {
        perror("test_alloc_fail: mkdtemp");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("alloc_fail");
    TCase *tc = tcase_create("alloc_fail");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, graphs);
    tcase_add_test(tc, optimizers);
    tcase_add_test(tc, files);
    tcase_add_test(tc, sorting);
    tcase_add_test(tc, paths_and_smoothing);
    tcase_add_test(tc, second_order);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, alloc_fail_faces_tcase());
    suite_add_tcase(s, alloc_fail_parallel_tcase());
    int status = suite_run(s);
    char path[sizeof af_dir + 16];
    static const char *const made[] = {"ck", "ck" DA_CHECKPOINT_PREV_SUFFIX, "net", "net.c",
                                       "net.v", "img", "lab"};
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", af_dir, made[i]);
        remove(path);
    }
    rmdir(af_dir);
    return status;
}
