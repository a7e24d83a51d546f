/* test_newton.c - Newton Losses: Hessian and Fisher steps, the tensor faces. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "suite_run.h"

/* x := A^-1 x by Gaussian elimination with partial pivoting (independent of LAPACK) */
static void naive_solve(int m, const double *A_in, double *x)
{
    double A[64 * 64];
    memcpy(A, A_in, (size_t)m * m * sizeof *A);
    for (int c = 0; c < m; c++) {
        int p = c;
        for (int r = c + 1; r < m; r++)
            if (fabs(A[r * m + c]) > fabs(A[p * m + c]))
                p = r;
        for (int k = 0; k < m; k++) {
            double t = A[c * m + k];
            A[c * m + k] = A[p * m + k];
            A[p * m + k] = t;
        }
        double t = x[c];
        x[c] = x[p];
        x[p] = t;
        for (int r = c + 1; r < m; r++) {
            double f = A[r * m + c] / A[c * m + c];
            for (int k = c; k < m; k++)
                A[r * m + k] -= f * A[c * m + k];
            x[r] -= f * x[c];
        }
    }
    for (int c = m - 1; c >= 0; c--) {
        for (int k = c + 1; k < m; k++)
            x[c] -= A[c * m + k] * x[k];
        x[c] /= A[c * m + c];
    }
}

/* a random symmetric positive definite matrix M M^T + 0.5 I */
static void random_spd(int m, unsigned long seed, double *A)
{
    double M[64 * 64];
    gc_random(M, (long)m * m, seed, -1, 1);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            double s = i == j ? 0.5 : 0;
            for (int k = 0; k < m; k++)
                s += M[i * m + k] * M[j * m + k];
            A[i * m + j] = s;
        }
}

START_TEST(test_quadratic_minimizer)
{
    enum { B = 3, m = 4 };
    double z[B * m], a[B * m], H[B * m * m], g[B * m], zs[B * m], grad[B * m];
    gc_random(z, B * m, 1, -2, 2);
    gc_random(a, B * m, 2, -2, 2);
    for (int i = 0; i < B; i++) {
        random_spd(m, 10 + i, H + i * m * m);
        for (int r = 0; r < m; r++) { /* g = A (z - a) */
            double s = 0;
            for (int c = 0; c < m; c++)
                s += H[i * m * m + r * m + c] * (z[i * m + c] - a[i * m + c]);
            g[i * m + r] = s;
        }
    }
    int fb = -1;
    ck_assert_int_eq(da_newton_hessian_step(B, m, z, g, H, 0.0, zs, grad, &fb), DA_OK);
    ck_assert_int_eq(fb, 0);
    for (int k = 0; k < B * m; k++) {
        ck_assert_double_eq_tol(zs[k], a[k], 1e-10);
        ck_assert_double_eq_tol(grad[k], (z[k] - a[k]) / B, 1e-10);
    }
}
END_TEST

static void fisher_closed_form(int B, int m, const double *g, double lambda, double *d)
{
    double F[64 * 64];
    for (int a = 0; a < m; a++)
        for (int b = 0; b < m; b++) {
            double s = a == b ? lambda : 0;
            for (int i = 0; i < B; i++)
                s += g[i * m + a] * g[i * m + b] / B;
            F[a * m + b] = s;
        }
    for (int i = 0; i < B; i++) {
        for (int k = 0; k < m; k++)
            d[i * m + k] = g[i * m + k] / B;
        naive_solve(m, F, d + i * m);
    }
}

START_TEST(test_fisher_closed_form)
{
    /* m <= B (direct m x m solve) and m > B (Woodbury) */
    const int cases[3][2] = {{8, 3}, {5, 5}, {3, 12}};
    for (int c = 0; c < 3; c++) {
        int B = cases[c][0], m = cases[c][1];
        double z[64], g[64], zs[64], grad[64], d[64];
        gc_random(z, B * m, 3 + c, -1, 1);
        gc_random(g, B * m, 7 + c, -1, 1);
        for (int li = 0; li < 3; li++) {
            double lambda = (double[]){0.01, 1.0, 100.0}[li];
            ck_assert_int_eq(da_newton_fisher_step(B, m, z, g, lambda, zs, grad, NULL), DA_OK);
            fisher_closed_form(B, m, g, lambda, d);
            double scale = 0;
            for (int k = 0; k < B * m; k++)
                scale = fmax(scale, fabs(d[k]));
            for (int k = 0; k < B * m; k++) {
                ck_assert_double_eq_tol(grad[k], d[k], 1e-9 * scale);
                ck_assert_double_eq_tol(zs[k], z[k] - B * d[k], 1e-9 * fmax(1, B * scale));
            }
        }
    }
}
END_TEST

START_TEST(test_large_lambda)
{
    enum { B = 4, m = 3 };
    double z[B * m], g[B * m], H[B * m * m], grad[B * m];
    gc_random(z, B * m, 1, -1, 1);
    gc_random(g, B * m, 2, -1, 1);
    for (int i = 0; i < B; i++)
        random_spd(m, 20 + i, H + i * m * m);
    const double lambda = 1e8;
    ck_assert_int_eq(da_newton_hessian_step(B, m, z, g, H, lambda, NULL, grad, NULL), DA_OK);
    for (int k = 0; k < B * m; k++)
        ck_assert_double_eq_tol(lambda * grad[k], g[k] / B, 1e-6);
    ck_assert_int_eq(da_newton_fisher_step(B, m, z, g, lambda, NULL, grad, NULL), DA_OK);
    for (int k = 0; k < B * m; k++)
        ck_assert_double_eq_tol(lambda * grad[k], g[k] / B, 1e-6);
}
END_TEST

START_TEST(test_indefinite_fallback)
{
    enum { m = 3 };
    /* eigenvalues 2, -1, 0.5 along the axes: H + 0.1 I is not PD */
    double H[m * m] = {2, 0, 0, 0, -1, 0, 0, 0, 0.5}, z[m] = {0}, g[m] = {1, 1, 1}, grad[m];
    int fb = 0;
    ck_assert_int_eq(da_newton_hessian_step(1, m, z, g, H, 0.1, NULL, grad, &fb), DA_OK);
    ck_assert_int_eq(fb, 1);
    ck_assert_double_eq_tol(grad[0], 1 / 2.1, 1e-12);
    ck_assert_double_eq_tol(grad[1], 1 / 0.1, 1e-9); /* -0.9 clipped to lambda */
    ck_assert_double_eq_tol(grad[2], 1 / 0.6, 1e-12);
}
END_TEST

static double g_zstar[6];

static da_tensor *newton_loss_graph(da_ctx *ctx, da_tensor **in, void *user)
{
    return da_newton_loss(ctx, in[0], g_zstar);
}

static double g_lambda = 0.5;

static da_tensor *inject_graph(da_ctx *ctx, da_tensor **in, void *user)
{
    return da_inject_fisher(ctx, in[0], g_lambda);
}

static da_tensor *newton_loss_of_z(da_ctx *ctx, da_tensor *z, void *user)
{
    return da_newton_loss(ctx, z, g_zstar); /* z [m]: one sample */
}

START_TEST(test_tensor_faces)
{
    double z[6];
    gc_random(z, 6, 5, -1, 1);
    gc_random(g_zstar, 6, 6, -1, 1);
    gc_input in = {2, {2, 3}, z, 1};
    ck_assert_double_lt(gc_check(newton_loss_graph, 1, &in, NULL, 1e-6), 1e-6);
    ck_assert_double_lt(gc_check_f32(newton_loss_graph, 1, &in, NULL), 1e-5);
    /* InjectFisher: forward is the identity, backward the Fisher-Newton direction of
       g_i = B * incoming_i */
    da_ctx *ctx = da_ctx_new();
    int shape[2] = {2, 3};
    da_tensor *zt = da_ctx_tensor_from(ctx, DA_F64, 2, shape, z);
    zt->requires_grad = 1;
    da_tensor *y = inject_graph(ctx, &zt, NULL);
    ck_assert_ptr_nonnull(y);
    for (int k = 0; k < 6; k++)
        ck_assert_double_eq(da_get(y, k), z[k]);
    double cot[6], g[6], d[6];
    gc_random(cot, 6, 9, -1, 1);
    ck_assert_int_eq(da_backward_from(ctx, y, cot), DA_OK);
    for (int k = 0; k < 6; k++)
        g[k] = 2 * cot[k];
    fisher_closed_form(2, 3, g, g_lambda, d);
    for (int k = 0; k < 6; k++)
        ck_assert_double_eq_tol(da_get_grad(zt, k), d[k], 1e-12);
    /* the Newton loss of one sample has Hessian I, through the exact path */
    double H[36];
    da_hessian_method method;
    ck_assert_int_eq(da_hessian(ctx, newton_loss_of_z, NULL, 6, z, H, &method), DA_OK);
    ck_assert_int_eq(method, DA_HESSIAN_EXACT);
    for (int k = 0; k < 36; k++)
        ck_assert_double_eq(H[k], k % 7 == 0 ? 1.0 : 0.0);
    /* errors */
    zt = da_ctx_tensor_from(ctx, DA_F64, 2, shape, z);
    ck_assert_ptr_null(da_inject_fisher(ctx, zt, 0.0));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_newton_loss(ctx, zt, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
}
END_TEST

START_TEST(test_errors)
{
    double z[4] = {0}, g[4] = {1, 2, 3, NAN}, H[8] = {1, 0, 0, 1, 1, 0, 0, 1}, out[4];
    ck_assert_int_eq(da_newton_hessian_step(2, 2, z, g, H, 0.1, out, NULL, NULL), DA_ENAN);
    g[3] = 1;
    ck_assert_int_eq(da_newton_hessian_step(2, 2, z, g, NULL, 0.1, out, NULL, NULL), DA_EINVAL);
    ck_assert_int_eq(da_newton_hessian_step(0, 2, z, g, H, 0.1, out, NULL, NULL), DA_ERANGE);
    ck_assert_int_eq(da_newton_hessian_step(2, 2, z, g, H, -1, out, NULL, NULL), DA_ERANGE);
    ck_assert_int_eq(da_newton_fisher_step(2, 2, z, g, 0.0, out, NULL, NULL), DA_ERANGE);
    ck_assert_int_eq(da_newton_fisher_step(2, 2, NULL, g, 1.0, out, NULL, NULL), DA_EINVAL);
    H[1] = NAN;
    ck_assert_int_eq(da_newton_hessian_step(2, 2, z, g, H, 0.1, out, NULL, NULL), DA_ENAN);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("newton");
    TCase *tc = tcase_create("newton");
    tcase_add_test(tc, test_quadratic_minimizer);
    tcase_add_test(tc, test_fisher_closed_form);
    tcase_add_test(tc, test_large_lambda);
    tcase_add_test(tc, test_indefinite_fallback);
    tcase_add_test(tc, test_tensor_faces);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
