/* alloc_fail_faces.c - allocation-failure injection, part 2 (see test_alloc_fail.c): the
 * tensor faces of the sorting and path losses with their backward, TrAct/ISAAC, logic
 * networks, data sets, and large batches for the OpenMP paths. */
#include <stdlib.h>
#include <string.h>

#include "alloc_fail.h"

/* ---------------------------------------------------------------- parallel batches */
/* batches large enough for the OpenMP paths: a failing allocation in a worker thread must
 * still give DA_ENOMEM and a message on the calling thread */
enum { PB = 128, PN = 16, PS = 4, PG = 32, PR = 8 };

static int parallel_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    static double x[PB * PN], t[PB * PN], g[PB * PN], out[PB * PN], P[PB * PN * PN];
    static double cost[PS * PG * PG], path[PS * PG * PG], gc[PS * PG * PG];
    double loss;
    fill(x, PB * PN, 0.1);
    fill(t, PB * PN, 1.1);
    for (int i = 0; i < PS * PG * PG; i++)
        cost[i] = 1.5 + sin(0.9 * i);
    da_sortnet *net = NULL;
    da_ranking *ns = NULL;
    CHECK_PTR(net = da_sortnet_new(DA_SORTNET_ODD_EVEN, PN, DA_SIGMOID_CAUCHY, 10, 0.25));
    CHECK(da_sortnet_loss(net, PB, x, t, &loss, g));
    CHECK(da_sortnet_apply(net, PB, x, NULL, P));
    CHECK(da_soft_rank(PB, PN, x, DA_ASCENDING, DA_REG_L2, 1.0, out, t, g));
    da_sinkhorn_cfg sk = {PN, 0.1, 3};
    CHECK(da_sinkhorn_loss(&sk, PB, x, t, &loss, g));
    CHECK_PTR(ns = da_ranking_new("neuralsort", PN));
    CHECK(da_ranking_loss(ns, PB, x, t, &loss, g));
    CHECK(da_sp_dijkstra(PS, PG, PG, cost, path, NULL));
    CHECK(da_sp_blackbox_grad(PS, PG, PG, cost, path, 10, gc));
    da_sp_relaxed_cfg rel = da_sp_relaxed_default(PR, PR);
    CHECK(da_sp_relaxed_loss(&rel, PS, PR, PR, cost, path, &loss, gc));
done:
    da_ranking_free(ns);
    da_sortnet_free(net);
    return rc;
}

START_TEST(parallel_batches)
{
    sweep("parallel batches (sort + paths)", parallel_call, NULL);
}
END_TEST

/* ---------------------------------------------------------------- tensor faces */
/* acc += sum(t) (acc NULL: acc = sum(t)) */
static da_tensor *add_sum(da_ctx *ctx, da_tensor *acc, da_tensor *t)
{
    da_tensor *s = da_sum(ctx, t, DA_ALL_AXES, 0);
    return acc && s ? da_add(ctx, acc, s) : s;
}

#define ACCUMULATE(expr) CHECK_PTR(total = add_sum(ctx, total, (expr)))

static int sort_faces_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    int shape[2] = {B, N};
    double xv[B * N], t[B * N];
    fill(xv, B * N, 0.3);
    fill(t, B * N, 1.3);
    da_ctx *ctx = NULL;
    da_sortnet *net = NULL;
    da_tensor *x, *total = NULL;
    CHECK_PTR(ctx = da_ctx_new());
    CHECK_PTR(net = da_sortnet_new(DA_SORTNET_ODD_EVEN, N, DA_SIGMOID_LOGISTIC, 5, 0.25));
    CHECK_PTR(x = da_ctx_tensor_from(ctx, DA_F32, 2, shape, xv));
    x->requires_grad = 1;
    da_sinkhorn_cfg sk = {N, 0.1, 5};
    da_neuralsort_cfg ns = {N, 1.0};
    da_softsort_cfg ss = {N, 1.0};
    ACCUMULATE(da_sortnet_op(ctx, net, x, DA_SORTNET_OUT_P));
    ACCUMULATE(da_topk_op(ctx, net, 2, x));
    ACCUMULATE(da_sinkhorn_soft_rank(ctx, x, &sk));
    ACCUMULATE(da_soft_rank_op(ctx, x, DA_ASCENDING, DA_REG_KL, 1.0));
    ACCUMULATE(da_neuralsort_perm(ctx, x, &ns));
    ACCUMULATE(da_softsort(ctx, x, t, &ss));
    ACCUMULATE(da_inject_fisher(ctx, x, 0.5));
    CHECK(da_backward(ctx, total));
done:
    da_sortnet_free(net);
    da_ctx_free(ctx);
    return rc;
}

static int fixed_solver(void *user, int n, const double *cost, double *y)
{
    (void)user;
    int best = 0;
    for (int i = 0; i < n; i++) {
        best = cost[i] < cost[best] ? i : best;
        y[i] = 0;
    }
    y[best] = 1;
    return DA_OK;
}

static int path_faces_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    int shape[3] = {B, SH, SW};
    double cv[B * SH * SW], target[B * SH * SW];
    for (int i = 0; i < B * SH * SW; i++)
        cv[i] = 1.5 + sin(0.9 * i);
    da_ctx *ctx = NULL;
    da_rng *rng = NULL;
    da_tensor *c, *flat, *total = NULL;
    CHECK(da_sp_dijkstra(B, SH, SW, cv, target, NULL));
    CHECK_PTR(ctx = da_ctx_new());
    CHECK_PTR(rng = da_rng_new(2));
    CHECK_PTR(c = da_ctx_tensor_from(ctx, DA_F64, 3, shape, cv));
    c->requires_grad = 1;
    da_sp_blackbox_cfg bb = {20};
    da_sp_relaxed_cfg rel = da_sp_relaxed_default(SH, SW);
    da_sp_perturbed_cfg pert = {DA_SP_NOISE_GUMBEL, 0.5, 2};
    da_smooth_cfg sm;
    da_smooth_cfg_default(&sm);
    sm.samples = 4;
    int fshape[2] = {B, SH * SW};
    ACCUMULATE(da_sp_blackbox(ctx, c, target, &bb));
    ACCUMULATE(da_sp_blackbox_normalized(ctx, c, target, &bb));
    ACCUMULATE(da_sp_relaxed(ctx, c, target, &rel));
    ACCUMULATE(da_sp_relaxed_path_op(ctx, c, &rel));
    ACCUMULATE(da_sp_fy(ctx, c, target, &pert, rng));
    ACCUMULATE(da_sp_smooth_path_op(ctx, c, &sm, rng));
    ACCUMULATE(da_sp_smooth_loss_op(ctx, c, target, &sm, rng));
    CHECK_PTR(flat = da_reshape(ctx, c, 2, fshape));
    ACCUMULATE(da_sp_smooth_solver_op(ctx, flat, fixed_solver, NULL, &sm, rng));
    ACCUMULATE(da_sp_smooth_solver_loss_op(ctx, flat, target, fixed_solver, NULL, &sm, rng));
    ACCUMULATE(da_smooth_op(ctx, flat, 2, blackbox, NULL, &sm, rng));
    CHECK(da_backward(ctx, total));
done:
    da_rng_free(rng);
    da_ctx_free(ctx);
    return rc;
}

/* a TrAct-wrapped linear layer and an ISAAC-wrapped conv layer, trained one step */
static int precond_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    int ch[1] = {2}, fc[1] = {3}, shape[4] = {B, 1, 6, 6};
    double xv[B * 36], G[B * 3], X[B * 5], gW[3 * 5];
    fill(xv, B * 36, 0.5);
    fill(X, B * 5, 0.7);
    fill(G, B * 3, 0.9);
    da_rng *rng = NULL;
    da_model *m = NULL;
    da_ctx *ctx = NULL;
    da_tensor *x, *y;
    CHECK(da_tract_linear_grad(B, 5, 3, X, G, 0.1, gW));
    CHECK(da_isaac_linear_grad(B, 5, 3, X, G, 0.1, gW));
    CHECK_PTR(rng = da_rng_new(4));
    CHECK_PTR(m = da_model_cnn(DA_F64, 1, 6, 6, 1, ch, 3, 0, 1, fc, rng));
    for (int i = 0; i < da_model_n_layers(m); i++) {
        da_layer *l = da_model_layer(m, i);
        if (l->kind == DA_LAYER_CONV2D)
            CHECK(da_precond_wrap(l, DA_PRECOND_ISAAC, 0.1));
        if (l->kind == DA_LAYER_LINEAR)
            CHECK(da_precond_wrap(l, DA_PRECOND_TRACT, 0.1));
    }
    CHECK_PTR(ctx = da_ctx_new());
    CHECK_PTR(x = da_ctx_tensor_from(ctx, DA_F64, 4, shape, xv));
    CHECK_PTR(y = da_model_forward(ctx, m, x));
    CHECK_PTR(y = da_sum(ctx, da_mul(ctx, y, y), DA_ALL_AXES, 0));
    CHECK(da_backward(ctx, y));
done:
    da_ctx_free(ctx);
    da_model_free(m);
    da_rng_free(rng);
    return rc;
}

static int logic_extras_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    enum { LB = 3 };
    char path[sizeof af_dir + 16];
    da_logicnet_cfg cfg = da_logicnet_default_cfg(4, 2, 6, 2);
    cfg.grad_factor = 2;
    da_logicnet *net = NULL;
    da_logic_circuit *circ = NULL;
    da_monk *monk = NULL;
    da_ctx *ctx = NULL;
    da_tensor *bits, *logits;
    double bv[LB * 4];
    float x[LB * 4];
    int pred[LB], shape[2] = {LB, 4};
    for (int i = 0; i < LB * 4; i++) {
        bv[i] = i % 3 == 0;
        x[i] = (float)bv[i];
    }
    CHECK_PTR(net = da_logicnet_new(&cfg));
    CHECK_PTR(ctx = da_ctx_new());
    CHECK_PTR(bits = da_ctx_tensor_from(ctx, DA_F64, 2, shape, bv));
    bits->requires_grad = 1;
    CHECK_PTR(logits = da_logicnet_op(ctx, net, bits, NULL, 0));
    CHECK(da_backward(ctx, da_sum(ctx, logits, DA_ALL_AXES, 0)));
    CHECK_PTR(circ = da_logic_circuit_new(net));
    CHECK(da_logic_circuit_predict(circ, LB, x, pred));
    snprintf(path, sizeof path, "%s/net.c", af_dir);
    CHECK(da_logic_circuit_export_c(circ, path));
    snprintf(path, sizeof path, "%s/net.v", af_dir);
    CHECK(da_logic_circuit_export_verilog(circ, "net", path));
    CHECK_PTR(monk = da_monk_new(2, 1));
done:
    da_monk_free(monk);
    da_logic_circuit_free(circ);
    da_ctx_free(ctx);
    da_logicnet_free(net);
    return rc;
}

/* big-endian IDX files of 5 images 3 x 2 and their labels */
static void write_idx(void)
{
    static const unsigned char img[16] = {0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 2};
    static const unsigned char lab[8] = {0, 0, 8, 1, 0, 0, 0, 5};
    char path[sizeof af_dir + 16];
    unsigned char body[30];
    for (int i = 0; i < 30; i++)
        body[i] = (unsigned char)(7 * i);
    snprintf(path, sizeof path, "%s/img", af_dir);
    FILE *f = fopen(path, "wb");
    ck_assert(f && fwrite(img, 1, 16, f) == 16 && fwrite(body, 1, 30, f) == 30);
    fclose(f);
    snprintf(path, sizeof path, "%s/lab", af_dir);
    f = fopen(path, "wb");
    ck_assert(f && fwrite(lab, 1, 8, f) == 8 && fwrite("\1\0\2\1\3", 1, 5, f) == 5);
    fclose(f);
}

static int data_call(const void *p)
{
    (void)p;
    int rc = DA_OK;
    char img[sizeof af_dir + 16], lab[sizeof af_dir + 16];
    snprintf(img, sizeof img, "%s/img", af_dir);
    snprintf(lab, sizeof lab, "%s/lab", af_dir);
    da_dataset *ds = NULL;
    da_rng *rng = NULL;
    da_split *split = NULL;
    da_ctx *ctx = NULL;
    int labels[2];
    CHECK_PTR(ds = da_dataset_load_idx(img, lab));
    CHECK_PTR(rng = da_rng_new(6));
    CHECK_PTR(split = da_split_new(ds->n, 3, 2, rng));
    CHECK_PTR(ctx = da_ctx_new());
    CHECK_PTR(da_dataset_batch(ctx, ds, split->test, 2, DA_F32, 4, labels));
done:
    da_ctx_free(ctx);
    da_split_free(split);
    da_rng_free(rng);
    da_dataset_free(ds);
    return rc;
}

START_TEST(tensor_faces_and_more)
{
    write_idx();
    sweep("sorting tensor faces + backward", sort_faces_call, NULL);
    sweep("path/smoothing tensor faces + backward", path_faces_call, NULL);
    sweep("tract/isaac wrapped cnn step", precond_call, NULL);
    sweep("logicnet op + circuit + export + monk", logic_extras_call, NULL);
    sweep("idx dataset + split + batch", data_call, NULL);
}
END_TEST

TCase *alloc_fail_faces_tcase(void)
{
    TCase *tc = tcase_create("faces");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, tensor_faces_and_more);
    return tc;
}

/* tagged: scripts/valgrind-check leaves it out (one thread there, and slow) */
TCase *alloc_fail_parallel_tcase(void)
{
    TCase *tc = tcase_create("parallel");
    tcase_set_tags(tc, "parallel");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, parallel_batches);
    return tc;
}
