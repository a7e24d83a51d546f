/* test_logic_conv.c - logic tree convolutions and OR pooling (lib/logic_conv.h) and
 * convolutional logic gate networks (lib/logicnet.h with n_conv > 0): the fused kernels
 * against a tree evaluation written out here (16-gate sums, recursive levels, explicit
 * padding) in soft and hard mode on both faces; gc_check (double, < 1e-6) and
 * gc_check_f32 on the stages and on a whole convolutional network; the plain-array
 * backward against the tensor face; thread-count agreement; hard mode bits; the
 * training driver against the tensor face; initialization (two channels per kernel,
 * distinct operands, residual logits); the saved format (round trip, corruption,
 * version 1 files read, unknown versions rejected); error paths; every allocation of a
 * convolutional network's life (build, train step, predict, save/load, compile, tensor
 * face) failing in turn gives DA_ENOMEM (leaks: the sanitizer build). */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "alloc.h"
#include "diffalg.h"
#include "gradcheck.h"
#include "suite_run.h"

/* ---- reference evaluation ---- */

static double ref_mix(const double *w, int hard, double a, double b)
{
    int arg = 0;
    for (int g = 1; g < 16; g++)
        if (w[g] > w[arg])
            arg = g;
    if (hard)
        return da_logic_gate(arg, a, b);
    double z = 0, y = 0;
    for (int g = 0; g < 16; g++)
        z += exp(w[g] - w[arg]);
    for (int g = 0; g < 16; g++)
        y += exp(w[g] - w[arg]) / z * da_logic_gate(g, a, b);
    return y;
}

/* output of kernel k at (oy, ox) for one sample x [in_c][in_h][in_w] */
static double ref_tree(const da_logic_conv *L, const double *w, const double *x, int k, int oy,
                       int ox, int hard)
{
    const da_logic_conv_spec *s = &L->spec;
    double cur[256], next[128];
    for (int i = 0; i < L->n_leaves; i++) {
        const int *f = L->leaf + ((size_t)k * L->n_leaves + i) * 3;
        int y = oy * s->stride - s->pad + f[1], xx = ox * s->stride - s->pad + f[2];
        int in = y >= 0 && y < s->in_h && xx >= 0 && xx < s->in_w;
        cur[i] = in ? x[((size_t)f[0] * s->in_h + y) * s->in_w + xx] : 0;
    }
    int g = 0;
    for (int n = L->n_leaves; n > 1; n /= 2) {
        for (int i = 0; i < n / 2; i++, g++)
            next[i] = ref_mix(w + ((size_t)k * L->n_gates + g) * 16, hard, cur[2 * i],
                              cur[2 * i + 1]);
        memcpy(cur, next, (size_t)(n / 2) * sizeof *cur);
    }
    return cur[0];
}

static double ref_pool(const da_logic_conv *L, const double *x, int c, int oy, int ox)
{
    const da_logic_conv_spec *s = &L->spec;
    double m = -INFINITY;
    for (int dy = 0; dy < s->size; dy++)
        for (int dx = 0; dx < s->size; dx++) {
            double v = x[((size_t)c * s->in_h + oy * s->stride + dy) * s->in_w + ox * s->stride + dx];
            m = v > m ? v : m;
        }
    return m;
}

static void ref_stage(const da_logic_conv *L, const double *w, int batch, const double *x,
                      int hard, double *y)
{
    long in = da_logic_conv_in_size(L), out = da_logic_conv_out_size(L);
    for (int b = 0; b < batch; b++)
        for (int k = 0; k < L->out_c; k++)
            for (int oy = 0; oy < L->out_h; oy++)
                for (int ox = 0; ox < L->out_w; ox++)
                    y[b * out + (k * L->out_h + oy) * L->out_w + ox] =
                        L->w ? ref_tree(L, w, x + b * in, k, oy, ox, hard)
                             : ref_pool(L, x + b * in, k, oy, ox);
}

static da_logic_conv *tree_stage(int in_c, int in_h, int in_w, int out_c, int depth, int size,
                                 int stride, int pad, unsigned long seed, int residual)
{
    da_logic_conv_spec s = {DA_LOGIC_CONV_TREE, in_c, in_h, in_w, out_c, depth, size, stride, pad};
    da_logic_conv *L = da_logic_conv_new(&s);
    ck_assert_msg(L != NULL, "%s", da_last_error());
    da_rng *r = da_rng_new(seed);
    ck_assert_int_eq(da_logic_conv_init(L, r, residual), DA_OK);
    da_rng_free(r);
    return L;
}

static da_logic_conv *pool_stage(int c, int h, int w, int size, int stride)
{
    da_logic_conv_spec s = {DA_LOGIC_CONV_OR_POOL, c, h, w, 0, 0, size, stride, 0};
    da_logic_conv *L = da_logic_conv_new(&s);
    ck_assert_msg(L != NULL, "%s", da_last_error());
    return L;
}

static double max_diff(const double *a, const double *b, long n)
{
    double m = 0;
    for (long i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* the tensor face: y, and for the cotangent gy the gradients of x and w (F64) */
static void tensor_stage(const da_logic_conv *L, int batch, const double *x, int hard,
                         const double *gy, double *y, double *gx, double *gw)
{
    da_ctx *ctx = da_ctx_new();
    int xs[2] = {batch, (int)da_logic_conv_in_size(L)}, ws[2] = {L->w ? (int)L->w->size / 16 : 1, 16};
    da_tensor *X = da_ctx_tensor_from(ctx, DA_F64, 2, xs, x), *W = NULL;
    X->requires_grad = 1;
    if (L->w) {
        W = da_ctx_tensor_from(ctx, DA_F64, 2, ws, L->w->data);
        W->requires_grad = 1;
    }
    da_tensor *Y = da_logic_conv_op(ctx, L, X, W, hard);
    ck_assert_msg(Y != NULL, "%s", da_last_error());
    da_tensor_copy_to(Y, y);
    ck_assert_int_eq(da_backward_from(ctx, Y, gy), DA_OK);
    for (long i = 0; i < X->size; i++)
        gx[i] = da_get_grad(X, i);
    for (long i = 0; W && i < W->size; i++)
        gw[i] = da_get_grad(W, i);
    da_ctx_free(ctx);
}

/* ---- stages ---- */

START_TEST(test_against_reference)
{
    /* (in_c, h, w, out_c, depth, size, stride, pad) */
    static const int cases[][8] = {{3, 5, 6, 2, 2, 3, 1, 1}, {2, 7, 5, 3, 3, 3, 2, 0},
                                   {1, 4, 4, 2, 1, 2, 1, 1}, {4, 6, 6, 2, 4, 3, 1, 2}};
    for (int t = 0; t < 4; t++) {
        const int *p = cases[t];
        da_logic_conv *L = tree_stage(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], 10 + t, 0);
        int batch = 3;
        long in = da_logic_conv_in_size(L), out = da_logic_conv_out_size(L);
        double *x = malloc(batch * in * sizeof *x), *y = malloc(batch * out * sizeof *y);
        double *r = malloc(batch * out * sizeof *r);
        gc_random(x, batch * in, 20 + t, 0, 1);
        for (int hard = 0; hard < 2; hard++) {
            if (hard) /* bits in, bits out */
                for (long i = 0; i < batch * in; i++)
                    x[i] = x[i] > 0.5;
            ck_assert_int_eq(da_logic_conv_forward(L, NULL, batch, x, hard, y), DA_OK);
            ref_stage(L, L->w->data, batch, x, hard, r);
            ck_assert_double_lt(max_diff(y, r, batch * out), 1e-13);
            for (long i = 0; hard && i < batch * out; i++)
                ck_assert(y[i] == 0 || y[i] == 1);
        }
        free(x);
        free(y);
        free(r);
        da_logic_conv_free(L);
    }
    da_logic_conv *P = pool_stage(2, 5, 6, 2, 2); /* floor: 2 x 3 outputs */
    ck_assert_int_eq(P->out_h, 2);
    ck_assert_int_eq(P->out_w, 3);
    double x[2 * 60], y[2 * 12], r[2 * 12];
    gc_random(x, 120, 3, 0, 1);
    ck_assert_int_eq(da_logic_conv_forward(P, NULL, 2, x, 0, y), DA_OK);
    ref_stage(P, NULL, 2, x, 0, r);
    ck_assert_double_eq(max_diff(y, r, 24), 0);
    da_logic_conv_free(P);
}
END_TEST

static da_tensor *stage_fn(da_ctx *ctx, da_tensor **in, void *user)
{
    const da_logic_conv *L = user;
    return da_logic_conv_op(ctx, L, in[0], L->w ? in[1] : NULL, 0);
}

START_TEST(test_gradcheck_stages)
{
    da_logic_conv *T[3] = {tree_stage(2, 5, 5, 2, 2, 3, 1, 1, 1, 0),
                           tree_stage(3, 6, 5, 2, 3, 3, 2, 0, 2, 0), pool_stage(2, 5, 6, 2, 2)};
    for (int t = 0; t < 3; t++) {
        da_logic_conv *L = T[t];
        int batch = 2;
        long in = da_logic_conv_in_size(L);
        double *x = malloc(batch * in * sizeof *x), w[16 * 21];
        gc_random(x, batch * in, 30 + t, 0, 1);
        if (L->w)
            gc_random(w, L->w->size, 40 + t, -2, 2);
        gc_input inp[2] = {{2, {batch, (int)in}, x, 1},
                           {2, {L->w ? (int)L->w->size / 16 : 1, 16}, w, 1}};
        if (L->w)
            memcpy(L->w->data, w, L->w->size * sizeof *w);
        double e = gc_check(stage_fn, L->w ? 2 : 1, inp, L, 1e-6);
        ck_assert_msg(e < 1e-6, "stage %d: gradcheck error %g", t, e);
        double f = gc_check_f32(stage_fn, L->w ? 2 : 1, inp, L);
        ck_assert_msg(f < 1e-4, "stage %d: f32 vs f64 error %g", t, f);
        free(x);
        da_logic_conv_free(L);
    }
}
END_TEST

START_TEST(test_plain_backward_and_threads)
{
    da_logic_conv *L = tree_stage(3, 12, 11, 8, 3, 3, 1, 1, 5, 0);
    int batch = 24;
    long in = da_logic_conv_in_size(L), out = da_logic_conv_out_size(L), nw = L->w->size;
    double *x = malloc(batch * in * sizeof *x), *gy = malloc(batch * out * sizeof *gy);
    double *y[2], *gx[3], *gw[3];
    for (int i = 0; i < 3; i++) {
        gx[i] = malloc(batch * in * sizeof *gx[i]);
        gw[i] = malloc(nw * sizeof *gw[i]);
        if (i < 2)
            y[i] = malloc(batch * out * sizeof *y[i]);
    }
    gc_random(x, batch * in, 1, 0, 1);
    gc_random(gy, batch * out, 2, -1, 1);
    /* plain arrays on 1 and 2 threads (the batch is large enough to split) */
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        ck_assert_int_eq(da_logic_conv_forward(L, NULL, batch, x, 0, y[t]), DA_OK);
        ck_assert_int_eq(da_logic_conv_backward(L, NULL, batch, x, 0, gy, gx[t], gw[t]), DA_OK);
    }
    omp_set_num_threads(2);
    ck_assert_double_eq(max_diff(y[0], y[1], batch * out), 0);
    ck_assert_double_eq(max_diff(gx[0], gx[1], batch * in), 0); /* per-sample: exact */
    ck_assert_double_lt(max_diff(gw[0], gw[1], nw), 1e-9);
    /* the tensor face gives the same gradients */
    tensor_stage(L, batch, x, 0, gy, y[1], gx[2], gw[2]);
    ck_assert_double_lt(max_diff(y[0], y[1], batch * out), 1e-14);
    ck_assert_double_lt(max_diff(gx[0], gx[2], batch * in), 1e-12);
    ck_assert_double_lt(max_diff(gw[0], gw[2], nw), 1e-9);
    /* hard mode: the logit gradient is zero, the input gradient that of the argmax gates */
    ck_assert_int_eq(da_logic_conv_backward(L, NULL, batch, x, 1, gy, gx[1], gw[1]), DA_OK);
    for (long i = 0; i < nw; i++)
        ck_assert_double_eq(gw[1][i], 0);
    ck_assert_double_gt(max_diff(gx[1], gx[0], batch * in), 1e-6);
    for (int i = 0; i < 3; i++) {
        free(gx[i]);
        free(gw[i]);
        if (i < 2)
            free(y[i]);
    }
    free(x);
    free(gy);
    da_logic_conv_free(L);
}
END_TEST

START_TEST(test_init)
{
    for (int residual = 0; residual < 2; residual++) {
        da_logic_conv *L = tree_stage(5, 6, 6, 40, 3, 3, 1, 1, 9 + residual, residual);
        ck_assert_int_eq(L->n_leaves, 8);
        ck_assert_int_eq(L->n_gates, 7);
        ck_assert_int_eq(da_logic_conv_check_leaves(L), DA_OK);
        int used[5] = {0};
        for (int k = 0; k < L->out_c; k++) {
            int ch[2] = {-1, -1}, n = 0;
            for (int i = 0; i < 8; i++) {
                const int *f = L->leaf + (k * 8 + i) * 3;
                used[f[0]] = 1;
                if (f[0] != ch[0] && f[0] != ch[1]) {
                    ck_assert_int_lt(n, 2); /* at most two channels per kernel */
                    ch[n++] = f[0];
                }
                if (i % 2) /* the operands of a leaf gate differ */
                    ck_assert(memcmp(f, f - 3, 3 * sizeof *f) != 0);
            }
        }
        for (int c = 0; c < 5; c++)
            ck_assert(used[c]);
        const double *w = L->w->data;
        double mean = 0;
        for (long i = 0; i < L->w->size; i++) {
            if (residual)
                ck_assert_double_eq(w[i], i % 16 == 3 ? DA_LOGIC_RESIDUAL_LOGIT : 0);
            mean += w[i] / L->w->size;
        }
        if (!residual)
            ck_assert_double_lt(fabs(mean), 0.1);
        da_logic_conv_free(L);
    }
}
END_TEST

/* ---- networks ---- */

/* 2 thresholds of an 8 x 7 image -> tree(4 kernels, d 2, 3x3, pad 1) -> OR pool 2 ->
 * tree(6, depth2, 3x3, stride 1, pad 1) -> `layers` dense layers of 36 -> 3 classes */
static da_logicnet *conv_net_of(int depth2, int layers, double grad_factor, int residual,
                                unsigned long seed)
{
    static const double thr[2] = {0.35, 0.65};
    da_logic_conv_spec st[3] = {
        {DA_LOGIC_CONV_TREE, 0, 0, 0, 4, 2, 3, 1, 1},
        {DA_LOGIC_CONV_OR_POOL, 0, 0, 0, 0, 0, 2, 2, 0},
        {DA_LOGIC_CONV_TREE, 0, 0, 0, 6, depth2, 3, 1, 1}};
    da_logicnet_cfg c = da_logicnet_default_cfg(56, layers, 36, 3);
    c.n_thresholds = 2;
    c.thresholds = thr;
    c.tau = 2;
    c.grad_factor = grad_factor;
    c.residual_init = residual;
    c.seed = seed;
    c.n_conv = 3;
    c.conv = st;
    c.image_h = 8;
    c.image_w = 7;
    da_logicnet *net = da_logicnet_new(&c);
    ck_assert_msg(net != NULL, "%s", da_last_error());
    return net;
}

static da_logicnet *conv_net(double grad_factor, int residual, unsigned long seed)
{
    return conv_net_of(3, 2, grad_factor, residual, seed);
}

static da_tensor *net_fn(da_ctx *ctx, da_tensor **in, void *user)
{
    return da_logicnet_op(ctx, user, in[0], in + 1, 0);
}

START_TEST(test_network_gradcheck)
{
    /* grad_factor 1: the true gradient. A shallow net (second tree of depth 1, one dense
     * layer) and step 1e-5: through deeper stacks of soft gates the gradients shrink to
     * ~1e-4 of the loss, and central differences at 1e-6 are dominated by rounding (the
     * kernels are checked stage by stage at 1e-6 above, and the driver equals this face) */
    da_logicnet *net = conv_net_of(1, 1, 1, 0, 3);
    ck_assert_int_eq(net->n_conv, 3);
    ck_assert_int_eq(net->n_params, 3);
    ck_assert_int_eq(net->dims[0], 6 * 4 * 3);
    ck_assert_ptr_eq(net->params[1], net->conv[2]->w);
    ck_assert_ptr_eq(net->params[2], net->w[0]);
    int batch = 2;
    double *bits = malloc(batch * net->n_bits * sizeof *bits);
    gc_random(bits, batch * net->n_bits, 4, 0, 1);
    gc_input in[4] = {{2, {batch, net->n_bits}, bits, 1}};
    for (int p = 0; p < net->n_params; p++) {
        gc_random(net->params[p]->data, net->params[p]->size, 50 + p, -2, 2);
        in[1 + p] = (gc_input){2, {(int)net->params[p]->size / 16, 16}, net->params[p]->data, 1};
    }
    double e = gc_check(net_fn, 4, in, net, 1e-5);
    ck_assert_msg(e < 1e-6, "conv network gradcheck %g", e);
    ck_assert_double_lt(gc_check_f32(net_fn, 4, in, net), 1e-4);
    free(bits);
    da_logicnet_free(net);
}
END_TEST

/* the feature-major training driver equals the tensor face */
START_TEST(test_driver_against_tensor_face)
{
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        da_logicnet *net = conv_net(2, 0, 6);
        int B = 5, k = 3;
        double *bits = malloc(B * net->n_bits * sizeof *bits), g[15], z[15], zt[15];
        double *gb = malloc(B * net->n_bits * sizeof *gb), *gbt = malloc(B * net->n_bits * sizeof *gbt);
        gc_random(bits, B * net->n_bits, 7, 0, 1);
        gc_random(g, B * k, 8, -1, 1);
        ck_assert_int_eq(da_logicnet_forward(net, B, bits, 0, z), DA_OK);
        ck_assert_int_eq(da_logicnet_backward(net, g, gb), DA_OK);
        da_ctx *ctx = da_ctx_new();
        int bs[2] = {B, net->n_bits};
        da_tensor *X = da_ctx_tensor_from(ctx, DA_F64, 2, bs, bits), *W[4];
        X->requires_grad = 1;
        for (int p = 0; p < net->n_params; p++) {
            int ws[2] = {(int)net->params[p]->size / 16, 16};
            W[p] = da_ctx_tensor_from(ctx, DA_F64, 2, ws, net->params[p]->data);
            W[p]->requires_grad = 1;
        }
        da_tensor *Y = da_logicnet_op(ctx, net, X, W, 0);
        ck_assert_msg(Y != NULL, "%s", da_last_error());
        da_tensor_copy_to(Y, zt);
        ck_assert_int_eq(da_backward_from(ctx, Y, g), DA_OK);
        ck_assert_double_lt(max_diff(z, zt, B * k), 1e-13);
        for (long i = 0; i < X->size; i++)
            gbt[i] = da_get_grad(X, i);
        ck_assert_double_lt(max_diff(gb, gbt, X->size), 1e-12);
        for (int p = 0; p < net->n_params; p++)
            for (long i = 0; i < W[p]->size; i++)
                ck_assert_double_lt(fabs(((double *)net->params[p]->grad)[i] - da_get_grad(W[p], i)), 1e-12);
        /* hard logits: the predict path and the driver in hard mode agree */
        float *x = malloc(B * 56 * sizeof *x);
        double zh[15], zp[15];
        int pred[5];
        for (int i = 0; i < B * 56; i++)
            x[i] = (float)((i * 37) % 101) / 100.0f;
        ck_assert_int_eq(da_logicnet_binarize(net, B, x, bits), DA_OK);
        ck_assert_int_eq(da_logicnet_forward(net, B, bits, 1, zh), DA_OK);
        ck_assert_int_eq(da_logicnet_predict(net, B, x, pred, zp), DA_OK);
        ck_assert_double_eq(max_diff(zh, zp, B * k), 0);
        ck_assert_int_eq(da_logicnet_backward(net, g, NULL), DA_ESTATE); /* hard: no backward */
        free(x);
        da_ctx_free(ctx);
        free(bits);
        free(gb);
        free(gbt);
        da_logicnet_free(net);
    }
}
END_TEST

START_TEST(test_residual_network)
{
    da_logicnet *net = conv_net(1, 1, 2);
    for (int p = 0; p < net->n_params; p++)
        for (long i = 0; i < net->params[p]->size; i++)
            ck_assert_double_eq(((double *)net->params[p]->data)[i],
                                i % 16 == 3 ? DA_LOGIC_RESIDUAL_LOGIT : 0);
    da_logicnet_free(net);
}
END_TEST

/* ---- the saved format ---- */

static void fix_crc(unsigned char *p, size_t n)
{
    uint32_t crc = (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), p, n - 4);
    for (int i = 0; i < 4; i++)
        p[n - 4 + i] = (unsigned char)(crc >> (8 * i));
}

START_TEST(test_file_format)
{
    da_logicnet *net = conv_net(1.25, 0, 11);
    void *data;
    size_t size;
    ck_assert_int_eq(da_logicnet_serialize(net, &data, &size), DA_OK);
    unsigned char *p = data;
    ck_assert_int_eq(p[8], 2); /* version 2 */
    ck_assert_int_eq(p[36], 3); /* n_conv */
    da_logicnet *back = da_logicnet_deserialize(data, size);
    ck_assert_msg(back != NULL, "%s", da_last_error());
    ck_assert_int_eq(back->n_conv, 3);
    ck_assert_int_eq(back->image_h, 8);
    ck_assert_int_eq(back->dims[0], net->dims[0]);
    void *again;
    size_t size2;
    ck_assert_int_eq(da_logicnet_serialize(back, &again, &size2), DA_OK);
    ck_assert_uint_eq(size2, size);
    ck_assert(!memcmp(again, data, size));
    free(again);
    float x[20 * 56];
    int pa[20], pb[20];
    for (int i = 0; i < 20 * 56; i++)
        x[i] = (float)((i * 13) % 29) / 28.0f;
    ck_assert_int_eq(da_logicnet_predict(net, 20, x, pa, NULL), DA_OK);
    ck_assert_int_eq(da_logicnet_predict(back, 20, x, pb, NULL), DA_OK);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(pa[i], pb[i]);
    da_logicnet_free(back);
    /* every single corrupted byte is rejected (the CRC), truncation too */
    unsigned char *q = malloc(size);
    for (size_t i = 0; i < size; i += 7) {
        memcpy(q, p, size);
        q[i] ^= 0x5a;
        ck_assert_ptr_null(da_logicnet_deserialize(q, size));
        ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
    }
    ck_assert_ptr_null(da_logicnet_deserialize(p, size - 1));
    ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
    /* a leaf outside the receptive field under a valid CRC: the first leaf's dy */
    size_t leaf0 = 56 + 8 * 2 + 8 + 24 * 3 + 4;
    memcpy(q, p, size);
    q[leaf0] = 3;
    fix_crc(q, size);
    ck_assert_ptr_null(da_logicnet_deserialize(q, size));
    ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
    /* a stage that does not fit the image under a valid CRC: first stage size 15 */
    memcpy(q, p, size);
    q[56 + 16 + 8 + 12] = 15;
    fix_crc(q, size);
    ck_assert_ptr_null(da_logicnet_deserialize(q, size));
    ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
    /* a pool whose out_c is not its in_c (not as written) under a valid CRC */
    memcpy(q, p, size);
    q[56 + 16 + 8 + 24 + 4] = 5;
    fix_crc(q, size);
    ck_assert_ptr_null(da_logicnet_deserialize(q, size));
    ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
    /* version 1 with stages, and version 3: rejected clearly */
    for (int v = 1; v <= 3; v += 2) {
        memcpy(q, p, size);
        q[8] = (unsigned char)v;
        fix_crc(q, size);
        ck_assert_ptr_null(da_logicnet_deserialize(q, size));
        ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
        if (v == 3)
            ck_assert(strstr(da_last_error(), "unsupported version") != NULL);
    }
    free(q);
    free(data);
    da_logicnet_free(net);
    /* a version 1 file of a dense network (version field 1, offset 36 zero) loads */
    da_logicnet_cfg c = da_logicnet_default_cfg(5, 2, 10, 2);
    c.seed = 4;
    net = da_logicnet_new(&c);
    ck_assert_int_eq(da_logicnet_serialize(net, &data, &size), DA_OK);
    p = data;
    ck_assert_int_eq(p[36], 0);
    p[8] = 1;
    fix_crc(p, size);
    back = da_logicnet_deserialize(p, size);
    ck_assert_msg(back != NULL, "%s", da_last_error());
    ck_assert_int_eq(back->n_conv, 0);
    ck_assert_int_eq(back->n_params, 2);
    for (int l = 0; l < 2; l++)
        ck_assert(!memcmp(back->w[l]->data, net->w[l]->data, net->w[l]->size * sizeof(double)));
    da_logicnet_free(back);
    free(data);
    da_logicnet_free(net);
}
END_TEST

/* ---- allocation failures (lib/alloc.h hook) ---- */

#define TRY(expr)                                                                          \
    do {                                                                                   \
        if (!rc && (expr))                                                                 \
            rc = da_last_error_code() ? da_last_error_code() : -1;                         \
    } while (0)

/* a convolutional network through every entry point; the first error code */
static int conv_program(void)
{
    static const da_logic_conv_spec st[2] = {{DA_LOGIC_CONV_TREE, 0, 0, 0, 3, 2, 3, 1, 1},
                                             {DA_LOGIC_CONV_OR_POOL, 0, 0, 0, 0, 0, 2, 2, 0}};
    da_logicnet_cfg c = da_logicnet_default_cfg(16, 1, 12, 2);
    c.n_conv = 2, c.conv = st, c.image_h = c.image_w = 4;
    float x[3 * 16];
    double bits[3 * 16], z[6], g[6] = {1, -1, 0.5, 0.25, -0.5, 2}, gb[3 * 16];
    int pred[3], rc = 0;
    for (int i = 0; i < 48; i++)
        x[i] = (float)((i * 7) % 10) / 10.0f;
    void *data = NULL;
    size_t size;
    da_logicnet *net = da_logicnet_new(&c), *back = NULL;
    da_logic_circuit *circ = NULL;
    da_ctx *ctx = NULL;
    TRY(!net);
    TRY(da_logicnet_binarize(net, 3, x, bits));
    TRY(da_logicnet_forward(net, 3, bits, 0, z));
    TRY(da_logicnet_backward(net, g, gb));
    TRY(da_logicnet_predict(net, 3, x, pred, NULL));
    TRY(da_logicnet_serialize(net, &data, &size));
    TRY(!(back = da_logicnet_deserialize(data, size)));
    TRY(!(circ = da_logic_circuit_new(net)));
    TRY(da_logic_circuit_predict(circ, 3, x, pred));
    TRY(!(ctx = da_ctx_new()));
    if (!rc) {
        int shape[2] = {3, 16};
        da_tensor *X = da_ctx_tensor_from(ctx, DA_F64, 2, shape, bits);
        if (X)
            X->requires_grad = 1;
        da_tensor *Y = X ? da_logicnet_op(ctx, net, X, NULL, 0) : NULL;
        TRY(!Y);
        TRY(da_backward_from(ctx, Y, g));
    }
    da_ctx_free(ctx);
    da_logic_circuit_free(circ);
    da_logicnet_free(back);
    da_logicnet_free(net);
    free(data);
    return rc;
}

START_TEST(test_alloc_failures)
{
    omp_set_num_threads(1);
    da_alloc_fail_after(-1);
    long before = da_alloc_count();
    int rc0 = conv_program();
    ck_assert_msg(rc0 == DA_OK, "%s", da_last_error());
    long n = da_alloc_count() - before;
    ck_assert_int_gt(n, 20);
    for (long k = 0; k < n; k++) {
        da_clear_error();
        da_alloc_fail_after(k);
        int rc = conv_program();
        da_alloc_fail_after(-1);
        ck_assert_msg(rc == DA_ENOMEM && da_last_error()[0], "allocation %ld of %ld: %d %s", k,
                      n, rc, da_last_error());
    }
    ck_assert_int_eq(conv_program(), DA_OK);
    omp_set_num_threads(2);
}
END_TEST

START_TEST(test_errors)
{
    da_logic_conv_spec s = {DA_LOGIC_CONV_TREE, 2, 5, 5, 3, 2, 3, 1, 1};
    struct {
        int field, value, code;
    } bad[] = {{0, 7, DA_EINVAL}, {1, 0, DA_ERANGE}, {4, 0, DA_ERANGE}, {5, 0, DA_ERANGE},
               {5, 9, DA_ERANGE}, {6, 16, DA_ERANGE}, {7, 0, DA_ERANGE}, {8, 3, DA_ERANGE},
               {8, -1, DA_ERANGE}, {2, 1, DA_ERANGE}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        da_logic_conv_spec t = s;
        int *f[9] = {(int *)&t.kind, &t.in_c, &t.in_h, &t.in_w, &t.out_c, &t.depth, &t.size,
                     &t.stride, &t.pad};
        *f[bad[i].field] = bad[i].value;
        if (bad[i].field == 2) /* 1 x 5 input with a 3 x 3 window and no padding */
            t.pad = 0;
        ck_assert_ptr_null(da_logic_conv_new(&t));
        ck_assert_int_eq(da_last_error_code(), bad[i].code);
    }
    da_logic_conv_spec pool = {DA_LOGIC_CONV_OR_POOL, 2, 5, 5, 0, 0, 2, 2, 1};
    ck_assert_ptr_null(da_logic_conv_new(&pool)); /* no padding for a pool */
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_logic_conv_new(NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_logic_conv_free(NULL);
    da_logic_conv *L = tree_stage(2, 5, 5, 3, 2, 3, 1, 1, 1, 0);
    double x[50], y[75], gy[75], gx[50];
    gc_random(x, 50, 1, 0, 1);
    gc_random(gy, 75, 2, 0, 1);
    ck_assert_int_eq(da_logic_conv_forward(NULL, NULL, 1, x, 0, y), DA_EINVAL);
    ck_assert_int_eq(da_logic_conv_forward(L, NULL, 1, NULL, 0, y), DA_EINVAL);
    ck_assert_int_eq(da_logic_conv_forward(L, NULL, 0, x, 0, y), DA_ERANGE);
    x[7] = NAN;
    ck_assert_int_eq(da_logic_conv_forward(L, NULL, 1, x, 0, y), DA_ENAN);
    x[7] = 0.5;
    gy[3] = INFINITY;
    ck_assert_int_eq(da_logic_conv_backward(L, NULL, 1, x, 0, gy, gx, NULL), DA_ENAN);
    gy[3] = 0.5;
    double *lw = L->w->data;
    lw[5] = NAN;
    ck_assert_int_eq(da_logic_conv_forward(L, NULL, 1, x, 0, y), DA_ENAN);
    lw[5] = 0;
    L->leaf[4] = 3; /* dy outside the 3 x 3 field */
    ck_assert_int_eq(da_logic_conv_forward(L, NULL, 1, x, 0, y), DA_ERANGE);
    L->leaf[4] = 0;
    ck_assert_int_eq(da_logic_conv_init(NULL, NULL, 0), DA_EINVAL);
    da_ctx *ctx = da_ctx_new();
    int xs[2] = {1, 49};
    da_tensor *X = da_ctx_tensor_from(ctx, DA_F64, 2, xs, x);
    ck_assert_ptr_null(da_logic_conv_op(ctx, L, X, NULL, 0)); /* 49 != 50 inputs */
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_logic_conv_op(NULL, L, X, NULL, 0));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_ctx_free(ctx);
    da_logic_conv_free(L);
    /* network configurations */
    da_logic_conv_spec st = {DA_LOGIC_CONV_TREE, 0, 0, 0, 4, 2, 3, 1, 1};
    da_logicnet_cfg c = da_logicnet_default_cfg(36, 1, 80, 2);
    c.n_conv = 1;
    ck_assert_ptr_null(da_logicnet_new(&c)); /* NULL conv */
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    c.conv = &st;
    c.image_h = 5, c.image_w = 7; /* 35 != 36 inputs */
    ck_assert_ptr_null(da_logicnet_new(&c));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    c.image_h = 6, c.image_w = 6;
    c.width = 40; /* 2 * 40 < 4 * 36 stage outputs */
    ck_assert_ptr_null(da_logicnet_new(&c));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    c.width = 80;
    st.size = 9;
    ck_assert_ptr_null(da_logicnet_new(&c)); /* the window does not fit */
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    st.size = 3;
    c.n_conv = DA_LOGICNET_MAX_CONV + 1;
    ck_assert_ptr_null(da_logicnet_new(&c));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    c.n_conv = 1;
    da_logicnet *net = da_logicnet_new(&c);
    ck_assert_msg(net != NULL, "%s", da_last_error());
    da_logicnet_free(net);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("logic_conv");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_against_reference);
    tcase_add_test(tc, test_gradcheck_stages);
    tcase_add_test(tc, test_plain_backward_and_threads);
    tcase_add_test(tc, test_init);
    tcase_add_test(tc, test_network_gradcheck);
    tcase_add_test(tc, test_driver_against_tensor_face);
    tcase_add_test(tc, test_residual_network);
    tcase_add_test(tc, test_file_format);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_alloc_failures);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
