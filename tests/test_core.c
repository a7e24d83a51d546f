/* test_core.c - tensors, the arena, the tape, custom ops, da_hessian, the refs loader. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "refs.h"
#include "suite_run.h"

/* ---- a custom op: f(z) = sum_i w_i z_i^3 + prod-free cross term a * z_0 * z_1 ---- */
typedef struct {
    double a;
} cubic_state;

static int cubic_forward(da_custom_args *args, double *out)
{
    const double *z = args->in_data[0], *w = args->in_data[1];
    const cubic_state *st = args->state;
    long n = args->in[0]->size;
    double s = st->a * z[0] * z[1];
    for (long i = 0; i < n; i++)
        s += w[i] * z[i] * z[i] * z[i];
    out[0] = s;
    return DA_OK;
}

static int cubic_backward(da_custom_args *args, const double *og, double *const *ig)
{
    const double *z = args->in_data[0], *w = args->in_data[1];
    const cubic_state *st = args->state;
    long n = args->in[0]->size;
    if (ig[0]) {
        for (long i = 0; i < n; i++)
            ig[0][i] += og[0] * 3 * w[i] * z[i] * z[i];
        ig[0][0] += og[0] * st->a * z[1];
        ig[0][1] += og[0] * st->a * z[0];
    }
    if (ig[1])
        for (long i = 0; i < n; i++)
            ig[1][i] += og[0] * z[i] * z[i] * z[i];
    return DA_OK;
}

static int cubic_hvp(da_custom_args *args, const double *v, double *hv)
{
    const double *z = args->in_data[0], *w = args->in_data[1];
    const cubic_state *st = args->state;
    long n = args->in[0]->size;
    for (long i = 0; i < n; i++)
        hv[i] = 6 * w[i] * z[i] * v[i];
    hv[0] += st->a * v[1];
    hv[1] += st->a * v[0];
    return DA_OK;
}

static da_tensor *cubic_graph(da_ctx *ctx, da_tensor **in, void *user)
{
    int one = 1;
    return da_op_custom(ctx, "cubic", in, 2, 0, &one, cubic_forward, cubic_backward,
                        cubic_hvp, user);
}

/* the same function as a fused loss (da_op_loss): value and gradient in one callback,
 * w a constant input */
static int cubic_value(da_custom_args *args, double *out, double *grad)
{
    int rc = cubic_forward(args, out);
    long n = args->in[0]->size;
    double *ig[2] = {grad, NULL}, one = 1;
    if (grad)
        for (long i = 0; i < n; i++)
            grad[i] = 0;
    return rc || !grad ? rc : cubic_backward(args, &one, ig);
}

static da_tensor *cubic_loss_graph(da_ctx *ctx, da_tensor **in, void *user)
{
    return da_op_loss(ctx, "cubic_loss", in, 2, cubic_value, cubic_hvp, user);
}

START_TEST(test_tensor_basics)
{
    int shape[3] = {2, 3, 4};
    da_tensor *t = da_tensor_new(DA_F32, 3, shape);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->size, 24);
    ck_assert_ptr_null(t->ctx);
    da_set(t, 5, 2.5);
    ck_assert_double_eq(da_get(t, 5), 2.5);
    ck_assert_ptr_nonnull(da_tensor_grad(t));
    da_tensor_free(t);
    da_tensor_free(NULL);
    int bad[2] = {2, 0};
    ck_assert_ptr_null(da_tensor_new(DA_F64, 2, bad));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_tensor_new(DA_F64, 5, shape));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_tensor_new((da_dtype)7, 1, shape));
    ck_assert_int_eq(da_last_error_code(), DA_EDTYPE);
    ck_assert(strstr(da_last_error(), "dtype") != NULL);
}
END_TEST

START_TEST(test_arena_reuse)
{
    da_ctx *ctx = da_ctx_new();
    int shape[1] = {100000};
    for (int step = 0; step < 4; step++) {
        for (int k = 0; k < 20; k++)
            ck_assert_ptr_nonnull(da_ctx_tensor(ctx, DA_F64, 1, shape));
        size_t reserved = da_ctx_reserved(ctx);
        da_ctx_reset(ctx);
        ck_assert_int_eq(da_ctx_used(ctx), 0);
        if (step >= 2) /* after the first reset, one block holds the whole step */
            ck_assert_int_eq(da_ctx_reserved(ctx), reserved);
    }
    da_ctx_free(ctx);
    da_ctx_free(NULL);
}
END_TEST

START_TEST(test_custom_op_grad_and_f32)
{
    double z[5], w[5];
    gc_random(z, 5, 1, -1, 1);
    gc_random(w, 5, 2, -1, 1);
    cubic_state st = {0.7};
    gc_input in[2] = {{1, {5}, z, 1}, {1, {5}, w, 1}};
    ck_assert_double_lt(gc_check(cubic_graph, 2, in, &st, 1e-6), 1e-6);
    ck_assert_double_lt(gc_check_f32(cubic_graph, 2, in, &st), 1e-5);
}
END_TEST

static double g_w[4] = {0.3, -0.5, 1.1, 0.2};

static da_tensor *cubic_of_z(da_ctx *ctx, da_tensor *z, void *user)
{
    int shape[1] = {4};
    da_tensor *in[2] = {z, da_ctx_tensor_from(ctx, DA_F64, 1, shape, g_w)};
    return cubic_graph(ctx, in, user);
}

/* the same function through a second op (a custom identity-like scale node) forces the
 * finite-difference path */
static int scale_fwd(da_custom_args *a, double *o)
{
    for (long i = 0; i < a->in[0]->size; i++)
        o[i] = 2 * a->in_data[0][i];
    return DA_OK;
}
static int scale_bwd(da_custom_args *a, const double *og, double *const *ig)
{
    for (long i = 0; i < a->in[0]->size; i++)
        ig[0][i] += 2 * og[i];
    return DA_OK;
}
static da_tensor *cubic_of_2z(da_ctx *ctx, da_tensor *z, void *user)
{
    da_tensor *z2 = da_op_custom(ctx, "scale", &z, 1, 1, z->shape, scale_fwd, scale_bwd,
                                 NULL, NULL);
    return cubic_of_z(ctx, z2, user);
}

START_TEST(test_hessian_paths)
{
    double z[4] = {0.5, -1.0, 0.25, 2.0}, H[16], H2[16];
    cubic_state st = {0.7};
    da_ctx *ctx = da_ctx_new();
    da_hessian_method m;
    ck_assert_int_eq(da_hessian(ctx, cubic_of_z, &st, 4, z, H, &m), DA_OK);
    ck_assert_int_eq(m, DA_HESSIAN_EXACT);
    ck_assert_int_eq(da_hessian(ctx, cubic_of_2z, &st, 4, z, H2, &m), DA_OK);
    ck_assert_int_eq(m, DA_HESSIAN_FINITE_DIFF);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double exact = (i == j ? 6 * g_w[i] * z[i] : 0) + ((i + j == 1) ? st.a : 0);
            double exact2 = (i == j ? 8 * 6 * g_w[i] * z[i] : 0) + ((i + j == 1) ? 4 * st.a : 0);
            ck_assert_double_eq_tol(H[i * 4 + j], exact, 1e-12);
            ck_assert_double_eq_tol(H2[i * 4 + j], exact2, 1e-6);
        }
    double bad[4] = {0, NAN, 0, 0};
    ck_assert_int_eq(da_hessian(ctx, cubic_of_z, &st, 4, bad, H, &m), DA_ENAN);
    ck_assert_int_eq(da_hessian(ctx, NULL, &st, 4, z, H, &m), DA_EINVAL);
    da_ctx_free(ctx);
}
END_TEST

START_TEST(test_backward_errors)
{
    da_ctx *ctx = da_ctx_new();
    int shape[1] = {3};
    da_tensor *t = da_ctx_tensor(ctx, DA_F64, 1, shape);
    ck_assert_int_eq(da_backward(ctx, t), DA_ESHAPE);
    ck_assert_int_eq(da_backward(ctx, NULL), DA_EINVAL);
    da_tensor *s = da_scalar(ctx, DA_F64, 1.0);
    ck_assert_int_eq(da_backward(ctx, s), DA_ESTATE);
    double cot[3] = {1, NAN, 0};
    t->requires_grad = 1;
    ck_assert_int_eq(da_backward_from(ctx, t, cot), DA_ENAN);
    ck_assert_ptr_null(da_op_custom(ctx, "x", NULL, 1, 1, shape, scale_fwd, scale_bwd, NULL, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
}
END_TEST

static da_tensor *cubic_loss_of_z(da_ctx *ctx, da_tensor *z, void *user)
{
    int shape[1] = {4};
    da_tensor *in[2] = {z, da_ctx_tensor_from(ctx, DA_F64, 1, shape, g_w)};
    return cubic_loss_graph(ctx, in, user);
}

START_TEST(test_op_loss)
{
    double z[5], w[5], zh[4] = {0.5, -1.0, 0.25, 2.0}, H[16], H2[16];
    gc_random(z, 5, 3, -1, 1);
    gc_random(w, 5, 4, -1, 1);
    cubic_state st = {-0.4};
    gc_input in[2] = {{1, {5}, z, 1}, {1, {5}, w, 0}};
    ck_assert_double_lt(gc_check(cubic_loss_graph, 2, in, &st, 1e-6), 1e-6);
    ck_assert_double_lt(gc_check_f32(cubic_loss_graph, 2, in, &st), 1e-5);
    da_ctx *ctx = da_ctx_new();
    da_hessian_method m;
    ck_assert_int_eq(da_hessian(ctx, cubic_loss_of_z, &st, 4, zh, H, &m), DA_OK);
    ck_assert_int_eq(m, DA_HESSIAN_EXACT); /* the caller's hvp, through the wrapper */
    ck_assert_int_eq(da_hessian(ctx, cubic_of_z, &st, 4, zh, H2, &m), DA_OK);
    for (int i = 0; i < 16; i++)
        ck_assert_double_eq_tol(H[i], H2[i], 1e-14);
    /* the gradient is kept only for an input that needed it at the forward */
    da_ctx_reset(ctx);
    int shape[1] = {5};
    da_tensor *zt = da_ctx_tensor_from(ctx, DA_F64, 1, shape, z);
    da_tensor *ins[2] = {zt, da_ctx_tensor_from(ctx, DA_F64, 1, shape, w)};
    da_tensor *y = cubic_loss_graph(ctx, ins, &st);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->size, 1);
    zt->requires_grad = 1;
    ck_assert_int_eq(da_backward(ctx, y), DA_ESTATE);
    ck_assert_ptr_null(da_op_loss(ctx, "x", ins, 2, NULL, NULL, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_ptr_null(da_op_loss(NULL, "x", ins, 2, cubic_value, NULL, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
}
END_TEST

START_TEST(test_refs_loader)
{
    char **paths;
    int n = ref_list("sortnet", &paths);
    ck_assert_int_gt(n, 0);
    const char *err = NULL;
    ref_file *r = ref_load(paths[0], &err);
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert_str_eq(r->kind, "sortnet");
    const ref_tensor *x = ref_get(r, "x");
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(x->ndim, 2);
    ck_assert_int_eq(x->size, x->shape[0] * x->shape[1]);
    ck_assert_ptr_nonnull(ref_get(r, "loss"));
    ck_assert_int_eq(ref_get(r, "loss")->ndim, 0);
    ck_assert_ptr_nonnull(ref_param(r, "network"));
    ref_free(r);
    ref_list_free(paths, n);
    /* a truncated file is an error, not a crash */
    char tmp[] = "/tmp/da_ref_XXXXXX";
    int fd = mkstemp(tmp);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("kind sortnet\ntensor x 2 3\n1 2 3\n", f);
    fclose(f);
    ck_assert_ptr_null(ref_load(tmp, &err));
    ck_assert(strstr(err, "truncated") != NULL);
    remove(tmp);
    double a[3] = {1, 2, 3}, b[3] = {1, 2, 3.3};
    ck_assert_double_eq_tol(ref_err(a, b, 3), 0.3 / 3.3, 1e-15);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tensor_basics);
    tcase_add_test(tc, test_arena_reuse);
    tcase_add_test(tc, test_custom_op_grad_and_f32);
    tcase_add_test(tc, test_hessian_paths);
    tcase_add_test(tc, test_backward_errors);
    tcase_add_test(tc, test_op_loss);
    tcase_add_test(tc, test_refs_loader);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
