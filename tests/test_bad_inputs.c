/* test_bad_inputs.c - the bad-input matrix (issue 10): every public entry point of
 * lib/diffalg.h called with NULL pointers, zero / negative / huge sizes, NaN and Inf
 * values and mismatched shapes must fail with the documented code (DA_EINVAL, DA_ERANGE,
 * DA_ENAN, DA_ESHAPE, ...; bad_inputs.h), leave a message, never crash or abort, leave
 * the caller's outputs unwritten, and leak nothing (run it under the sanitizer build).
 * This file: the core (tensors, ctx, graph, ops), rng, data, io, optimizers, and the
 * regression tests of the crashes found by fuzzing (fuzz/). The losses, relaxations,
 * Newton, preconditioning and logic networks are in bad_inputs_losses.c. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bad_inputs.h"
#include "refs.h"

Suite *bad_inputs_losses_suite(void);

static da_ctx *ctx;
/* F64 [2][3], [3][2], [1][2][3], F32 [2][3], F64 [2][3] with a NaN, [1] */
static da_tensor *a23, *b32, *c123, *f23, *nan23, *s1;

static void setup(void)
{
    static const double v[6] = {0.5, -1, 2, 0.25, 3, -0.75};
    int s23[2] = {2, 3}, s32[2] = {3, 2}, s123[3] = {1, 2, 3}, one[1] = {1};
    ctx = da_ctx_new();
    a23 = da_ctx_tensor_from(ctx, DA_F64, 2, s23, v);
    b32 = da_ctx_tensor_from(ctx, DA_F64, 2, s32, v);
    f23 = da_ctx_tensor_from(ctx, DA_F32, 2, s23, v);
    c123 = da_ctx_tensor_from(ctx, DA_F64, 3, s123, v);
    nan23 = da_ctx_tensor_from(ctx, DA_F64, 2, s23, v);
    s1 = da_ctx_tensor_from(ctx, DA_F64, 1, one, v);
    ck_assert(ctx && a23 && b32 && c123 && f23 && nan23 && s1);
    da_set(nan23, 4, NAN);
}

static void teardown(void) { da_ctx_free(ctx); }

/* ---------------------------------------------------------------- tensors, ctx, graph */
static int fwd_copy(da_custom_args *args, double *out)
{
    memcpy(out, args->in_data[0], (size_t)args->out->size * sizeof *out);
    return DA_OK;
}

static int bwd_copy(da_custom_args *args, const double *og, double *const *ig)
{
    for (long i = 0; ig[0] && i < args->out->size; i++)
        ig[0][i] += og[i];
    return DA_OK;
}

static da_tensor *sum_fn(da_ctx *c, da_tensor *z, void *user)
{
    return da_sum(c, z, DA_ALL_AXES, 0);
}

START_TEST(tensor_entry_points)
{
    int bad[4] = {2, 0, 3, 1}, neg[2] = {2, -3}, huge[4] = {1 << 20, 1 << 20, 1 << 20, 1 << 20};
    int ok[2] = {2, 3};
    double H[4], z[2] = {1, 2};
    FAILS_NULL(BAD_ANY, da_tensor_new(DA_F64, 2, NULL));
    FAILS_NULL(BAD_ANY, da_tensor_new(DA_F64, -1, ok));
    FAILS_NULL(BAD_ANY, da_tensor_new(DA_F64, DA_MAX_DIMS + 1, huge));
    FAILS_NULL(BAD_ANY, da_tensor_new(DA_F64, 4, bad));
    FAILS_NULL(BAD_ANY, da_tensor_new(DA_F64, 2, neg));
    FAILS_NULL(BAD_ANY, da_tensor_new(DA_F64, 4, huge));
    FAILS_NULL(BAD_ANY, da_tensor_new((da_dtype)7, 2, ok));
    da_tensor_free(NULL);
    da_ctx_free(NULL);
    FAILS_NULL(BAD_ANY, da_ctx_tensor(NULL, DA_F64, 2, ok));
    FAILS_NULL(BAD_ANY, da_ctx_tensor(ctx, DA_F64, 2, neg));
    FAILS_NULL(BAD_ANY, da_ctx_tensor(ctx, DA_F64, 4, huge));
    FAILS_NULL(BAD_ANY, da_ctx_tensor_from(ctx, DA_F64, 2, ok, NULL));
    FAILS_NULL(BAD_ANY, da_scalar(NULL, DA_F64, 1));
    FAILS_NULL(BAD_ANY, da_ctx_alloc(NULL, 8));
    FAILS_NULL(BAD_ANY, da_ctx_alloc(ctx, (size_t)1 << 62));
    FAILS(DA_ENAN, da_check_finite(nan23, "x"));
    FAILS(BAD_ANY, da_check_finite(NULL, "x"));
    FAILS(BAD_ANY, da_backward(ctx, NULL));
    FAILS(BAD_ANY, da_backward(NULL, a23));
    FAILS(BAD_ANY, da_backward(ctx, a23)); /* not a scalar */
    FAILS(BAD_ANY, da_backward_from(ctx, a23, NULL));
    FAILS_NULL(BAD_ANY, da_detach(ctx, NULL));
    FAILS_NULL(BAD_ANY, da_detach(NULL, a23));
    da_tensor *in[1] = {a23};
    FAILS_NULL(BAD_ANY, da_op_custom(NULL, "t", in, 1, 2, ok, fwd_copy, bwd_copy, NULL, NULL));
    FAILS_NULL(BAD_ANY, da_op_custom(ctx, "t", in, 1, 2, ok, NULL, bwd_copy, NULL, NULL));
    FAILS_NULL(BAD_ANY, da_op_custom(ctx, "t", NULL, 1, 2, ok, fwd_copy, bwd_copy, NULL, NULL));
    FAILS_NULL(BAD_ANY, da_op_custom(ctx, "t", in, 0, 2, ok, fwd_copy, bwd_copy, NULL, NULL));
    FAILS_NULL(BAD_ANY, da_op_custom(ctx, "t", in, DA_MAX_INPUTS + 1, 2, ok, fwd_copy,
                                     bwd_copy, NULL, NULL));
    FAILS_NULL(BAD_ANY, da_op_custom(ctx, "t", in, 1, DA_MAX_DIMS + 1, ok, fwd_copy, bwd_copy,
                                     NULL, NULL));
    FAILS_NULL(BAD_ANY, da_op_custom(ctx, "t", in, 1, 2, neg, fwd_copy, bwd_copy, NULL, NULL));
    fill_sentinel(H, 4);
    FAILS(BAD_ANY, da_hessian(ctx, NULL, NULL, 2, z, H, NULL));
    FAILS(BAD_ANY, da_hessian(ctx, sum_fn, NULL, 0, z, H, NULL));
    FAILS(BAD_ANY, da_hessian(ctx, sum_fn, NULL, -2, z, H, NULL));
    FAILS(BAD_ANY, da_hessian(ctx, sum_fn, NULL, 2, NULL, H, NULL));
    FAILS(BAD_ANY, da_hessian(ctx, sum_fn, NULL, 2, z, NULL, NULL));
    FAILS(BAD_ANY, da_hessian(NULL, sum_fn, NULL, 2, z, H, NULL));
    UNTOUCHED(H, 4);
}
END_TEST

/* ---------------------------------------------------------------- ops */
typedef da_tensor *(*binary_op)(da_ctx *, da_tensor *, da_tensor *);
typedef da_tensor *(*unary_op)(da_ctx *, da_tensor *);

START_TEST(ops_entry_points)
{
    static const binary_op bin[] = {da_add, da_sub, da_mul, da_div, da_pow, da_minimum,
                                    da_maximum, da_matmul, da_bmm, da_mse, da_bce};
    static const unary_op un[] = {da_neg, da_exp, da_log, da_logistic, da_tanh, da_relu,
                                  da_softplus, da_abs, da_sqrt};
    for (size_t i = 0; i < sizeof bin / sizeof bin[0]; i++) {
        da_tensor *ok = bin[i] == da_bmm ? c123 : a23;
        FAILS_NULL(DA_EINVAL, bin[i](NULL, ok, ok));
        FAILS_NULL(DA_EINVAL, bin[i](ctx, NULL, ok));
        FAILS_NULL(DA_EINVAL, bin[i](ctx, ok, NULL));
        FAILS_NULL(DA_EDTYPE, bin[i](ctx, ok, da_cast(ctx, ok, DA_F32)));
        FAILS_NULL(DA_ESHAPE, bin[i](ctx, ok, bin[i] == da_matmul || bin[i] == da_bmm ? ok : b32));
    }
    for (size_t i = 0; i < sizeof un / sizeof un[0]; i++) {
        FAILS_NULL(DA_EINVAL, un[i](NULL, a23));
        FAILS_NULL(DA_EINVAL, un[i](ctx, NULL));
        FAILS_NULL(DA_ENAN, un[i](ctx, nan23));
    }
    FAILS_NULL(DA_ENAN, da_log(ctx, da_mul_scalar(ctx, s1, -1)));
    FAILS_NULL(DA_ENAN, da_sqrt(ctx, da_mul_scalar(ctx, s1, -1)));
    FAILS_NULL(DA_ENAN, da_add_scalar(ctx, a23, NAN));
    FAILS_NULL(DA_ENAN, da_mul_scalar(ctx, a23, NAN));
    FAILS_NULL(DA_EINVAL, da_pow_scalar(ctx, NULL, 2));
    FAILS_NULL(DA_EINVAL, da_where(ctx, NULL, a23, a23));
    FAILS_NULL(DA_ESHAPE, da_where(ctx, a23, a23, b32));
    FAILS_NULL(BAD_ANY, da_cast(ctx, a23, (da_dtype)9));
    for (int axis = -3; axis <= 2; axis += 5) {
        FAILS_NULL(DA_ERANGE, da_sum(ctx, a23, axis, 0));
        FAILS_NULL(DA_ERANGE, da_mean(ctx, a23, axis, 1));
        FAILS_NULL(DA_ERANGE, da_max(ctx, a23, axis, 0));
        FAILS_NULL(DA_ERANGE, da_logsumexp(ctx, a23, axis, 0));
        FAILS_NULL(DA_ERANGE, da_softmax(ctx, a23, axis));
        FAILS_NULL(DA_ERANGE, da_log_softmax(ctx, a23, axis));
    }
    FAILS_NULL(DA_ENAN, da_softmax(ctx, nan23, -1));
    FAILS_NULL(DA_ENAN, da_sum(ctx, nan23, DA_ALL_AXES, 0));
    int s5[2] = {5, 1}, s2neg[2] = {-1, -1}, perm_dup[2] = {0, 0}, perm_out[2] = {0, 2};
    int index[2] = {0, 3};
    FAILS_NULL(BAD_ANY, da_reshape(ctx, a23, 2, s5));
    FAILS_NULL(BAD_ANY, da_reshape(ctx, a23, 2, s2neg));
    FAILS_NULL(BAD_ANY, da_reshape(ctx, a23, 2, NULL));
    FAILS_NULL(BAD_ANY, da_reshape(ctx, a23, DA_MAX_DIMS + 1, s5));
    FAILS_NULL(BAD_ANY, da_permute(ctx, a23, perm_dup));
    FAILS_NULL(BAD_ANY, da_permute(ctx, a23, perm_out));
    FAILS_NULL(BAD_ANY, da_permute(ctx, a23, NULL));
    FAILS_NULL(BAD_ANY, da_transpose(ctx, a23, 0, 2));
    FAILS_NULL(BAD_ANY, da_slice(ctx, a23, 1, 2, 1));
    FAILS_NULL(BAD_ANY, da_slice(ctx, a23, 1, -1, 2));
    FAILS_NULL(BAD_ANY, da_slice(ctx, a23, 1, 0, 4));
    FAILS_NULL(BAD_ANY, da_slice(ctx, a23, 2, 0, 1));
    da_tensor *two[2] = {a23, b32}, *mixed[2] = {a23, f23}, *with_null[2] = {a23, NULL};
    FAILS_NULL(BAD_ANY, da_concat(ctx, two, 2, 0));
    FAILS_NULL(BAD_ANY, da_concat(ctx, mixed, 2, 0));
    FAILS_NULL(BAD_ANY, da_concat(ctx, with_null, 2, 0));
    FAILS_NULL(BAD_ANY, da_concat(ctx, two, 0, 0));
    FAILS_NULL(BAD_ANY, da_concat(ctx, NULL, 2, 0));
    FAILS_NULL(BAD_ANY, da_index_select(ctx, a23, 1, index, 2));
    FAILS_NULL(BAD_ANY, da_index_select(ctx, a23, 1, NULL, 2));
    FAILS_NULL(BAD_ANY, da_index_select(ctx, a23, 1, index, -1));
}
END_TEST

/* ---------------------------------------------------------------- rng, data, io */
START_TEST(rng_entry_points)
{
    da_rng *rng = da_rng_new(3);
    da_rng_free(NULL);
    da_clear_error();
    ck_assert_uint_eq(da_rng_int(rng, 0), 0);
    bad_check(DA_ERANGE, da_last_error_code(), "da_rng_int(rng, 0)", __LINE__);
    da_clear_error();
    ck_assert_uint_eq(da_rng_int(rng, 1UL << 32), 0);
    bad_check(DA_ERANGE, da_last_error_code(), "da_rng_int(rng, 2^32)", __LINE__);
    ck_assert_uint_lt(da_rng_int(rng, (1UL << 32) - 1), (1UL << 32) - 1);
    FAILS(DA_EINVAL, da_rng_state_load(rng, NULL));
    FAILS(DA_EINVAL, da_rng_state_load(NULL, &rng));
    da_rng_free(rng);
}
END_TEST

/* a file in the working directory holding size bytes; the caller unlinks it */
static const char *temp_file(const char *name, const void *data, size_t size)
{
    FILE *f = fopen(name, "wb");
    ck_assert(f && (!size || fwrite(data, 1, size, f) == size) && !fclose(f));
    return name;
}

START_TEST(data_entry_points)
{
    static const unsigned char img[16 + 4] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2,
                                              0, 0, 0, 2, 1, 2, 3, 4};
    static const unsigned char lab[8 + 1] = {0, 0, 8, 1, 0, 0, 0, 1, 7};
    const char *ip = temp_file("bad_inputs_img.idx", img, sizeof img);
    const char *lp = temp_file("bad_inputs_lab.idx", lab, sizeof lab);
    int n = -7, rows = -7, cols = -7, *labels = NULL, idx[2] = {0, 1}, y[2] = {-7, -7};
    float *images = NULL, x[8] = {0};
    FAILS(DA_EINVAL, da_idx_read_images(NULL, &n, &rows, &cols, &images));
    FAILS(DA_EINVAL, da_idx_read_images(ip, NULL, &rows, &cols, &images));
    FAILS(DA_EINVAL, da_idx_read_images(ip, &n, &rows, &cols, NULL));
    FAILS(DA_EIO, da_idx_read_images("/nonexistent/x.idx", &n, &rows, &cols, &images));
    FAILS(DA_EFORMAT, da_idx_read_images(lp, &n, &rows, &cols, &images));
    FAILS(DA_EINVAL, da_idx_read_labels(NULL, &n, &labels));
    FAILS(DA_EINVAL, da_idx_read_labels(lp, NULL, &labels));
    FAILS(DA_EFORMAT, da_idx_read_labels(ip, &n, &labels));
    ck_assert(n == -7 && rows == -7 && cols == -7 && !images && !labels);
    FAILS_NULL(BAD_ANY, da_dataset_load_idx(NULL, lp));
    FAILS_NULL(BAD_ANY, da_dataset_load_idx(ip, NULL));
    FAILS_NULL(DA_EFORMAT, da_dataset_load_idx(lp, ip));
    FAILS_NULL(BAD_ANY, da_mnist_load("/nonexistent"));
    FAILS_NULL(BAD_ANY, da_fashion_mnist_load("/nonexistent", 1));
    da_dataset_free(NULL);
    da_dataset *ds = da_dataset_load_idx(ip, lp);
    ck_assert_msg(ds != NULL, "%s", da_last_error());
    int out_of_range[2] = {0, 1}, negative[1] = {-1};
    FAILS(BAD_ANY, da_dataset_gather(NULL, idx, 1, x, y));
    FAILS(BAD_ANY, da_dataset_gather(ds, NULL, 1, x, y));
    FAILS(BAD_ANY, da_dataset_gather(ds, idx, 1, NULL, y));
    FAILS(BAD_ANY, da_dataset_gather(ds, out_of_range, 2, x, y));
    FAILS(BAD_ANY, da_dataset_gather(ds, negative, 1, x, y));
    FAILS(BAD_ANY, da_dataset_gather(ds, idx, -1, x, y));
    ck_assert(y[0] == -7 && y[1] == -7);
    FAILS_NULL(BAD_ANY, da_dataset_batch(NULL, ds, idx, 1, DA_F64, 2, NULL));
    FAILS_NULL(BAD_ANY, da_dataset_batch(ctx, NULL, idx, 1, DA_F64, 2, NULL));
    FAILS_NULL(BAD_ANY, da_dataset_batch(ctx, ds, negative, 1, DA_F64, 2, NULL));
    FAILS_NULL(BAD_ANY, da_dataset_batch(ctx, ds, idx, 1, DA_F64, 3, NULL));
    FAILS_NULL(BAD_ANY, da_dataset_batch(ctx, ds, idx, 0, DA_F64, 2, NULL));
    da_dataset_free(ds);
    da_rng *rng = da_rng_new(1);
    FAILS_NULL(BAD_ANY, da_split_new(10, 8, 3, rng));
    FAILS_NULL(BAD_ANY, da_split_new(10, -1, 3, rng));
    FAILS_NULL(BAD_ANY, da_split_new(-5, 0, 0, rng));
    FAILS_NULL(BAD_ANY, da_split_new(10, 2, 3, NULL));
    da_split_free(NULL);
    da_rng_free(rng);
    unlink(ip);
    unlink(lp);
}
END_TEST

START_TEST(io_entry_points)
{
    da_checkpoint *ck = da_checkpoint_new(), *out = (da_checkpoint *)&ck;
    char long_name[DA_CHECKPOINT_MAX_NAME + 2];
    long v = -7;
    int shape[1] = {3};
    da_tensor *t = da_tensor_new(DA_F64, 1, shape);
    void *data = NULL;
    size_t size = 0;
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    FAILS(DA_EINVAL, da_file_write_atomic(NULL, "x", 1));
    FAILS(DA_EINVAL, da_file_write_atomic("", "x", 1));
    FAILS(DA_EINVAL, da_file_write_atomic("bad_inputs.out", NULL, 1));
    FAILS(DA_EIO, da_file_write_atomic("/nonexistent/dir/file", "x", 1));
    ck_assert_int_ne(access("bad_inputs.out", F_OK), 0);
    FAILS(DA_EINVAL, da_file_read(NULL, &data, &size));
    FAILS(DA_EINVAL, da_file_read("x", NULL, &size));
    FAILS(DA_EIO, da_file_read("/nonexistent", &data, &size));
    FAILS(DA_EIO, da_file_read("/", &data, &size));
    ck_assert(data == NULL && size == 0);
    da_checkpoint_free(NULL);
    FAILS(DA_EINVAL, da_checkpoint_put(NULL, "a", "x", 1));
    FAILS(DA_EINVAL, da_checkpoint_put(ck, NULL, "x", 1));
    FAILS(DA_EINVAL, da_checkpoint_put(ck, "a", NULL, 1));
    FAILS(DA_ERANGE, da_checkpoint_put(ck, "", "x", 1));
    FAILS(DA_ERANGE, da_checkpoint_put(ck, long_name, "x", 1));
    FAILS_NULL(DA_EINVAL, da_checkpoint_put_alloc(NULL, "a", 4));
    ck_assert_int_eq(da_checkpoint_count(ck), 0);
    ck_assert_int_eq(da_checkpoint_count(NULL), 0);
    ck_assert_ptr_null(da_checkpoint_name(ck, 0));
    ck_assert_ptr_null(da_checkpoint_name(NULL, -1));
    FAILS_NULL(DA_EINVAL, da_checkpoint_get(NULL, "a", NULL));
    FAILS_NULL(DA_EINVAL, da_checkpoint_get(ck, NULL, NULL));
    FAILS_NULL(DA_EFORMAT, da_checkpoint_get(ck, "absent", NULL));
    FAILS(DA_EINVAL, da_checkpoint_put_tensor(ck, "t", NULL));
    FAILS(DA_EINVAL, da_checkpoint_put_rng(ck, "r", NULL));
    ck_assert_int_eq(da_checkpoint_put_long(ck, "n", 5), DA_OK);
    FAILS(DA_EINVAL, da_checkpoint_get_long(ck, "n", NULL));
    FAILS(DA_EFORMAT, da_checkpoint_get_tensor(ck, "n", t));
    FAILS(DA_EINVAL, da_checkpoint_get_tensor(ck, "n", NULL));
    FAILS(DA_EINVAL, da_checkpoint_get_rng(ck, "n", NULL));
    FAILS(DA_EFORMAT, da_checkpoint_get_long(ck, "absent", &v));
    ck_assert_int_eq(v, -7);
    FAILS(DA_EINVAL, da_checkpoint_save(NULL, "bad_inputs.ckpt"));
    FAILS(DA_EINVAL, da_checkpoint_save(ck, NULL));
    FAILS(DA_EIO, da_checkpoint_save(ck, "/nonexistent/dir/ck"));
    FAILS(DA_EINVAL, da_checkpoint_load(NULL, &out));
    FAILS(DA_EINVAL, da_checkpoint_load("x", NULL));
    FAILS(DA_EIO, da_checkpoint_load("/nonexistent", &out));
    ck_assert_ptr_null(out);
    da_tensor_free(t);
    da_checkpoint_free(ck);
}
END_TEST

/* ---------------------------------------------------------------- optimizers */
START_TEST(optim_entry_points)
{
    int shape[1] = {3};
    da_tensor *p = da_tensor_new(DA_F64, 1, shape), *params[2] = {p, p};
    da_optim_cfg cfg = da_adam_cfg(0.1), bad;
    double lr = SENTINEL, norm = SENTINEL;
    FAILS_NULL(BAD_ANY, da_optim_new(NULL, 1, &cfg));
    FAILS_NULL(BAD_ANY, da_optim_new(params, 1, NULL));
    FAILS_NULL(BAD_ANY, da_optim_new(params, 0, &cfg));
    FAILS_NULL(BAD_ANY, da_optim_new(params, -1, &cfg));
    FAILS_NULL(BAD_ANY, da_optim_new(params, 2, &cfg)); /* duplicate */
    double bad_values[3] = {-1, NAN, INFINITY};
    for (int i = 0; i < 3; i++) {
        bad = cfg;
        bad.lr = bad_values[i];
        FAILS_NULL(DA_ERANGE, da_optim_new(params, 1, &bad));
        bad = cfg;
        bad.beta1 = i ? bad_values[i] : 1;
        FAILS_NULL(DA_ERANGE, da_optim_new(params, 1, &bad));
        bad = cfg;
        bad.eps = bad_values[i];
        FAILS_NULL(DA_ERANGE, da_optim_new(params, 1, &bad));
    }
    bad = da_sgd_cfg(0.1, 0);
    bad.nesterov = 1;
    FAILS_NULL(DA_EINVAL, da_optim_new(params, 1, &bad));
    da_optim_free(NULL);
    da_optim *opt = da_optim_new(params, 1, &cfg);
    ck_assert_ptr_nonnull(opt);
    double *g = da_tensor_grad(p), before[3];
    g[0] = 1;
    g[1] = NAN;
    da_tensor_copy_to(p, before);
    FAILS(DA_ENAN, da_optim_step(opt));
    for (int i = 0; i < 3; i++)
        ck_assert(da_get(p, i) == before[i]);
    ck_assert_int_eq(da_optim_steps(opt), 0);
    FAILS(DA_ERANGE, da_optim_set_lr(opt, -1));
    FAILS(DA_ERANGE, da_optim_set_lr(opt, NAN));
    FAILS(BAD_ANY, da_optim_step(NULL));
    ck_assert(da_optim_get_lr(opt) == 0.1);
    char buf[8];
    FAILS(BAD_ANY, da_optim_state_save(opt, buf, sizeof buf));
    FAILS(BAD_ANY, da_optim_state_save(opt, NULL, da_optim_state_size(opt)));
    FAILS(DA_EFORMAT, da_optim_state_load(opt, buf, sizeof buf));
    FAILS(BAD_ANY, da_optim_state_load(opt, NULL, 0));
    FAILS(DA_ENAN, da_clip_grad_norm(params, 1, 1, 2, &norm));
    ck_assert(isnan(g[1]) && g[0] == 1);
    g[1] = 0;
    FAILS(DA_ERANGE, da_clip_grad_norm(params, 1, -1, 2, &norm));
    FAILS(DA_ERANGE, da_clip_grad_norm(params, 1, 1, 0, &norm));
    FAILS(BAD_ANY, da_clip_grad_norm(NULL, 1, 1, 2, &norm));
    ck_assert(g[0] == 1);
    FAILS(BAD_ANY, da_lr_cosine(1, 2, 0, 10, 0, &lr));
    FAILS(BAD_ANY, da_lr_cosine(1, 0, 10, 10, 0, &lr));
    FAILS(BAD_ANY, da_lr_cosine(1, 0, 0, 10, -1, &lr));
    FAILS(BAD_ANY, da_lr_cosine(NAN, 0, 0, 10, 0, &lr));
    FAILS(BAD_ANY, da_lr_cosine(1, 0, 0, 10, 0, NULL));
    FAILS(BAD_ANY, da_lr_step(1, 0, 1, 0, &lr));
    FAILS(BAD_ANY, da_lr_step(1, 0.5, 0, 0, &lr));
    FAILS(BAD_ANY, da_lr_step(-1, 0.5, 1, 0, &lr));
    FAILS(BAD_ANY, da_lr_step(1, NAN, 1, 0, &lr));
    ck_assert(lr == SENTINEL);
    da_optim_free(opt);
    da_tensor_free(p);
}
END_TEST

/* ---------------------------------------------------------------- fuzz regressions */
/* fuzz checkpoint: an RNG blob with a valid CRC but a corrupt mt19937 state (words above
 * 2^32 - 1 drew uniforms >= 1; a negative position indexed outside the state) */
START_TEST(regress_checkpoint_corrupt_rng)
{
    da_rng *rng = da_rng_new(5), *ref = da_rng_new(5);
    size_t size = da_rng_state_size(rng);
    unsigned char *state = malloc(size);
    da_checkpoint *ck = da_checkpoint_new();
    ck_assert(rng && ref && state && ck);
    unsigned long word = 1UL << 40;
    int positions[3] = {-1, -1000000, 625};
    da_rng_state_save(rng, state);
    memcpy(state + 7 * sizeof word, &word, sizeof word);
    ck_assert_int_eq(da_checkpoint_put(ck, "rng", state, size), DA_OK);
    FAILS(DA_EFORMAT, da_checkpoint_get_rng(ck, "rng", rng));
    for (int i = 0; i < 3; i++) {
        da_rng_state_save(ref, state);
        memcpy(state + 624 * sizeof word, &positions[i], sizeof(int));
        ck_assert_int_eq(da_checkpoint_put(ck, "rng", state, size), DA_OK);
        FAILS(DA_EFORMAT, da_checkpoint_get_rng(ck, "rng", rng));
    }
    for (int i = 0; i < 1000; i++) /* unchanged by the failed loads */
        ck_assert(da_rng_uniform(rng) == da_rng_uniform(ref));
    da_rng_state_save(ref, state); /* a valid state still loads */
    ck_assert_int_eq(da_rng_state_load(rng, state), DA_OK);
    ck_assert(da_rng_uniform(rng) == da_rng_uniform(ref));
    da_checkpoint_free(ck);
    free(state);
    da_rng_free(rng);
    da_rng_free(ref);
}
END_TEST

/* fuzz refs: dimensions announcing 10^11 values made ref_load allocate them all up front
 * (out of memory), and 8 dimensions of 2^31 - 1 overflowed the element count */
START_TEST(regress_refs_huge_dimensions)
{
    static const char huge[] = "kind k\ntensor x 10000 10000 1000\n1 2 3\n";
    static const char overflow[] = "kind k\ntensor x 2147483647 2147483647 2147483647 "
                                   "2147483647 2147483647 2147483647 2147483647 2147483647\n1\n";
    static const char fine[] = "kind k\ntensor x 0\ntensor y 2 1\n1 2\n";
    const char *err = NULL;
    ref_file *r = ref_load(temp_file("bad_inputs.ref", huge, sizeof huge - 1), &err);
    ck_assert_ptr_null(r);
    ck_assert_msg(err && strstr(err, "truncated"), "%s", err ? err : "no message");
    r = ref_load(temp_file("bad_inputs.ref", overflow, sizeof overflow - 1), &err);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(err, "dimensions"), "%s", err);
    r = ref_load(temp_file("bad_inputs.ref", fine, sizeof fine - 1), &err);
    ck_assert_msg(r != NULL, "%s", err);
    ck_assert(ref_get(r, "x")->size == 0 && ref_get(r, "y")->data[1] == 2);
    ref_free(r);
    unlink("bad_inputs.ref");
}
END_TEST

static Suite *core_suite(void)
{
    Suite *s = suite_create("bad_inputs_core");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, tensor_entry_points);
    tcase_add_test(tc, ops_entry_points);
    tcase_add_test(tc, rng_entry_points);
    tcase_add_test(tc, data_entry_points);
    tcase_add_test(tc, io_entry_points);
    tcase_add_test(tc, optim_entry_points);
    suite_add_tcase(s, tc);
    tc = tcase_create("fuzz_regressions");
    tcase_add_test(tc, regress_checkpoint_corrupt_rng);
    tcase_add_test(tc, regress_refs_huge_dimensions);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(core_suite());
    srunner_add_suite(sr, bad_inputs_losses_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
