/* test_shortest_path_blackbox.c - the normalised blackbox loss (da_sp_blackbox_normalized*,
 * shortest_path.h): the paper's gradient has a component along the cost scale (the drift
 * that made the terrain benchmark's loss rise), the normalised one none; the chain rule
 * against the un-normalised gradient, both faces, the zero-mean error. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "suite_run.h"

enum { B = 6, H = 7, W = 7, V = H * W, K = 5 }; /* K digit classes */

/* a nearly uniform cost map: the predicted path is a short diagonal, the targets longer */
static void setup(double *c, double *t, int *cls)
{
    double truth[B * V];
    da_rng *rng = da_rng_new(3);
    for (int i = 0; i < B * V; i++) {
        cls[i] = (int)da_rng_int(rng, K);
        truth[i] = cls[i] + 1;
        c[i] = 0.6 + 0.05 * da_rng_uniform(rng);
    }
    da_rng_free(rng);
    ck_assert_int_eq(da_sp_dijkstra(B, H, W, truth, t, NULL), DA_OK);
}

static double dot_scale(const double *g, const double *c, int b)
{
    double s = 0;
    for (int v = 0; v < V; v++)
        s += g[b * V + v] * c[b * V + v];
    return s;
}

START_TEST(test_scale_component)
{
    double c[B * V], t[B * V], n[B * V], gn[B * V], g0[B * V], g1[B * V], l0, l1, gh[B * V];
    double y[B * V];
    int cls[B * V];
    setup(c, t, cls);
    da_sp_blackbox_cfg cfg = {.lambda = 20};
    ck_assert_int_eq(da_sp_blackbox_loss(&cfg, B, H, W, c, t, &l0, g0), DA_OK);
    ck_assert_int_eq(da_sp_blackbox_normalized_loss(&cfg, B, H, W, c, t, &l1, g1), DA_OK);
    ck_assert_double_eq(l0, l1); /* the path does not depend on the scale */
    /* the paper's gradient has a component along c (it shrinks the costs), ours none */
    double along = 0;
    for (int b = 0; b < B; b++) {
        along += dot_scale(g0, c, b);
        ck_assert_double_lt(fabs(dot_scale(g1, c, b)), 1e-12);
    }
    ck_assert_double_gt(along, 0.1);
    /* chain rule: g1 = (gn - <gn, n>/V) / mean(c), gn the blackbox gradient at n */
    ck_assert_int_eq(da_sp_dijkstra(B, H, W, c, y, NULL), DA_OK);
    ck_assert_int_eq(da_sp_hamming_loss(B, H, W, y, t, &l0, gh), DA_OK);
    for (int b = 0; b < B; b++) {
        double m = 0;
        for (int v = 0; v < V; v++)
            m += c[b * V + v] / V;
        for (int v = 0; v < V; v++)
            n[b * V + v] = c[b * V + v] / m;
    }
    ck_assert_int_eq(da_sp_blackbox_grad(B, H, W, n, gh, 20, gn), DA_OK);
    for (int b = 0; b < B; b++) {
        double m = 0, s = dot_scale(gn, n, b) / V;
        for (int v = 0; v < V; v++)
            m += c[b * V + v] / V;
        for (int v = 0; v < V; v++)
            ck_assert_double_eq_tol(g1[b * V + v], (gn[b * V + v] - s) / m, 1e-14);
    }
    /* the tensor face, F64 and F32, equals the plain face */
    for (int dt = 0; dt < 2; dt++) {
        da_ctx *ctx = da_ctx_new();
        int shape[3] = {B, H, W};
        da_tensor *ct = da_ctx_tensor_from(ctx, dt ? DA_F32 : DA_F64, 3, shape, c);
        ct->requires_grad = 1;
        da_tensor *l = da_sp_blackbox_normalized(ctx, ct, t, &cfg);
        ck_assert_ptr_nonnull(l);
        ck_assert_double_eq_tol(da_get(l, 0), l1, 1e-6);
        ck_assert_int_eq(da_backward(ctx, l), DA_OK);
        for (int i = 0; i < B * V; i++)
            ck_assert_double_eq_tol(da_get_grad(ct, i), g1[i], dt ? 1e-5 : 1e-12);
        da_ctx_free(ctx);
    }
    /* a zero-mean map cannot be normalised: a clear error, also in the tensor face */
    double z[B * V] = {0};
    ck_assert_int_eq(da_sp_blackbox_normalized_loss(&cfg, B, H, W, z, t, &l1, g1), DA_ERANGE);
    ck_assert_int_eq(da_sp_blackbox_loss(&cfg, B, H, W, z, t, &l1, g1), DA_OK);
    da_ctx *ctx = da_ctx_new();
    int shape[3] = {B, H, W};
    ck_assert_ptr_null(da_sp_blackbox_normalized(ctx, da_ctx_tensor_from(ctx, DA_F64, 3, shape, z), t, &cfg));
    ck_assert_int_ne(da_last_error_code(), DA_OK);
    da_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shortest_path_blackbox");
    TCase *tc = tcase_create("shortest_path_blackbox");
    tcase_add_test(tc, test_scale_component);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
