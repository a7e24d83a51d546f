/* test_logicnet.c - logic gate networks (lib/logicnet.h) and the MONK generator
 * (lib/monk.h): gc_check (double, < 1e-6) and gc_check_f32 through a whole network on
 * the tensor face; the feature-major training driver against the tensor face (logits,
 * gradients of logits and bits, grad_factor, 1 and 2 threads), its float kernels
 * against its double ones (dense and convolutional, repeatable bit for bit), and
 * against its own central differences of the cross-entropy; hard mode; connection
 * schemes; residual initialization; the file format (round trip, every corrupted byte, truncation,
 * out-of-range indices under a valid CRC); MONK facts from the literature; errors. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "suite_run.h"

/* a small network: 5 inputs x 2 thresholds = 10 bits, 3 layers of 12, 3 classes */
static da_logicnet *small_net(int connections, double grad_factor, unsigned long seed)
{
    static const double thr[2] = {0.3, 0.6};
    da_logicnet_cfg c = da_logicnet_default_cfg(5, 3, 12, 3);
    c.n_thresholds = 2;
    c.thresholds = thr;
    c.tau = 2;
    c.connections = connections;
    c.grad_factor = grad_factor;
    c.seed = seed;
    da_logicnet *net = da_logicnet_new(&c);
    ck_assert_msg(net != NULL, "%s", da_last_error());
    return net;
}

static da_tensor *net_fn(da_ctx *ctx, da_tensor **in, void *user)
{
    return da_logicnet_op(ctx, user, in[0], in + 1, 0);
}

/* the tensor face: logits, and for the cotangent g the gradients of bits and w */
static void tensor_face(const da_logicnet *net, int batch, const double *bits, const double *g,
                        double *logits, double *gbits, double **gw)
{
    da_ctx *ctx = da_ctx_new();
    int shape[2] = {batch, net->n_bits}, ws[2] = {net->width, 16};
    da_tensor *X = da_ctx_tensor_from(ctx, DA_F64, 2, shape, bits), *W[3];
    X->requires_grad = 1;
    for (int l = 0; l < net->n_layers; l++) {
        W[l] = da_ctx_tensor_from(ctx, DA_F64, 2, ws, net->w[l]->data);
        W[l]->requires_grad = 1;
    }
    da_tensor *Y = da_logicnet_op(ctx, net, X, W, 0);
    ck_assert_msg(Y != NULL, "%s", da_last_error());
    da_tensor_copy_to(Y, logits);
    ck_assert_int_eq(da_backward_from(ctx, Y, g), DA_OK);
    for (long i = 0; i < X->size; i++)
        gbits[i] = da_get_grad(X, i);
    for (int l = 0; l < net->n_layers; l++)
        for (long i = 0; i < W[l]->size; i++)
            gw[l][i] = da_get_grad(W[l], i);
    da_ctx_free(ctx);
}

static double max_rel(const double *a, const double *b, long n)
{
    double d = 0, m = 1e-300;
    for (long i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        m = fmax(m, fmax(fabs(a[i]), fabs(b[i])));
    }
    return d / m;
}

START_TEST(test_gradcheck_network)
{
    da_logicnet *net = small_net(DA_LOGIC_RANDOM, 1.0, 5);
    double bits[4 * 10];
    gc_random(bits, 40, 11, 0.05, 0.95);
    gc_input in[4] = {{2, {4, 10}, bits, 1}};
    for (int l = 0; l < 3; l++)
        in[1 + l] = (gc_input){2, {12, 16}, net->w[l]->data, 1};
    ck_assert_double_lt(gc_check(net_fn, 4, in, net, 1e-6), 1e-6);
    ck_assert_double_lt(gc_check_f32(net_fn, 4, in, net), 1e-4);
    da_logicnet_free(net);
}
END_TEST

/* with w = NULL the op reads the net's own logits, which are parameters: their grads
 * receive what explicit logit tensors would */
START_TEST(test_own_logits_grad)
{
    enum { B = 4 };
    double bits[B * 10], g[B * 3], z[B * 3], gb[B * 10], gw[3][192];
    double *pw[3] = {gw[0], gw[1], gw[2]};
    da_logicnet *net = small_net(DA_LOGIC_RANDOM, 1.3, 7);
    gc_random(bits, B * 10, 5, 0, 1);
    gc_random(g, B * 3, 6, -1, 1);
    tensor_face(net, B, bits, g, z, gb, pw);
    da_ctx *ctx = da_ctx_new();
    int shape[2] = {B, 10};
    da_tensor *X = da_ctx_tensor_from(ctx, DA_F64, 2, shape, bits);
    da_tensor *Y = da_logicnet_op(ctx, net, X, NULL, 0);
    ck_assert_msg(Y != NULL, "%s", da_last_error());
    ck_assert_int_eq(da_backward_from(ctx, Y, g), DA_OK);
    for (int l = 0; l < 3; l++) {
        ck_assert(net->w[l]->requires_grad);
        double own[192];
        for (int i = 0; i < 192; i++)
            own[i] = da_get_grad(net->w[l], i);
        ck_assert_double_lt(max_rel(own, gw[l], 192), 1e-15);
        ck_assert_double_gt(fabs(own[0]) + fabs(own[100]) + fabs(own[191]), 0);
    }
    da_ctx_free(ctx);
    da_logicnet_free(net);
}
END_TEST

/* grad_factor f scales the gradient reaching layer l's logits by f^(L-1-l) and the
 * bits by f^L (difflogic's GradFactor before every layer); the forward is unchanged */
START_TEST(test_grad_factor)
{
    enum { B = 5 };
    double f = 1.7, bits[B * 10], g[B * 3], z1[B * 3], zf[B * 3], gb1[B * 10], gbf[B * 10];
    double gw1[3][192], gwf[3][192], *p1[3] = {gw1[0], gw1[1], gw1[2]};
    double *pf[3] = {gwf[0], gwf[1], gwf[2]};
    da_logicnet *plain = small_net(DA_LOGIC_RANDOM, 1.0, 6), *scaled = small_net(DA_LOGIC_RANDOM, f, 6);
    gc_random(bits, B * 10, 3, 0, 1);
    gc_random(g, B * 3, 4, -1, 1);
    tensor_face(plain, B, bits, g, z1, gb1, p1);
    tensor_face(scaled, B, bits, g, zf, gbf, pf);
    ck_assert_int_eq(memcmp(z1, zf, sizeof z1), 0);
    for (int i = 0; i < B * 10; i++)
        gb1[i] *= f * f * f;
    ck_assert_double_lt(max_rel(gbf, gb1, B * 10), 1e-14);
    for (int l = 0; l < 3; l++) {
        for (int i = 0; i < 192; i++)
            gw1[l][i] *= pow(f, 2 - l);
        ck_assert_double_lt(max_rel(gwf[l], gw1[l], 192), 1e-14);
    }
    da_logicnet_free(plain);
    da_logicnet_free(scaled);
}
END_TEST

START_TEST(test_driver_against_tensor_face)
{
    enum { B = 37 };
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        da_logicnet *net = small_net(DA_LOGIC_UNIQUE, 1.3, 9);
        double bits[B * 10], g[B * 3], z[B * 3], zt[B * 3], gb[B * 10], gbt[B * 10];
        double gwt[3][12 * 16], *gwp[3] = {gwt[0], gwt[1], gwt[2]};
        gc_random(bits, B * 10, 21, 0, 1);
        gc_random(g, B * 3, 22, -1, 1);
        tensor_face(net, B, bits, g, zt, gbt, gwp);
        ck_assert_int_eq(da_logicnet_forward(net, B, bits, 0, z), DA_OK);
        ck_assert_double_lt(max_rel(z, zt, B * 3), 1e-13);
        ck_assert_int_eq(da_logicnet_backward(net, g, gb), DA_OK);
        ck_assert_double_lt(max_rel(gb, gbt, B * 10), 1e-12);
        for (int l = 0; l < 3; l++)
            ck_assert_double_lt(max_rel(net->w[l]->grad, gwt[l], 12 * 16), 1e-12);
        /* a second backward accumulates */
        ck_assert_int_eq(da_logicnet_backward(net, g, NULL), DA_OK);
        for (int l = 0; l < 3; l++)
            for (int i = 0; i < 12 * 16; i++)
                ck_assert_double_lt(fabs(((double *)net->w[l]->grad)[i] - 2 * gwt[l][i]),
                                    1e-12 * (1 + fabs(gwt[l][i])));
        da_logicnet_free(net);
    }
    omp_set_num_threads(2);
}
END_TEST

/* the float training kernels against the double ones (1 and 2 threads), repeatable */
START_TEST(test_driver_f32)
{
    enum { B = 37 };
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        da_logicnet *net = small_net(DA_LOGIC_RANDOM, 1.3, 9);
        double bits[B * 10], g[B * 3], z[2][B * 3] = {{0}}, gb[2][B * 10] = {{0}};
        double gw[2][3][12 * 16];
        gc_random(bits, B * 10, 31, 0, 1);
        gc_random(g, B * 3, 32, -1, 1);
        for (int run = 0; run < 3; run++) { /* F64, F32, F32 again */
            ck_assert_int_eq(da_logicnet_set_precision(net, run ? DA_F32 : DA_F64), DA_OK);
            ck_assert_int_eq(da_logicnet_backward(net, g, NULL), DA_ESTATE);
            int r = run > 0;
            for (int l = 0; l < 3; l++)
                if (net->w[l]->grad)
                    memset(net->w[l]->grad, 0, 12 * 16 * sizeof(double));
            double zr[B * 3], gbr[B * 10]; /* the previous F32 run's */
            memcpy(zr, z[r], sizeof zr);
            memcpy(gbr, gb[r], sizeof gbr);
            ck_assert_int_eq(da_logicnet_forward(net, B, bits, 0, z[r]), DA_OK);
            ck_assert_int_eq(da_logicnet_backward(net, g, gb[r]), DA_OK);
            for (int l = 0; l < 3; l++) {
                if (run == 2) /* bit-identical repeat */
                    ck_assert_int_eq(memcmp(gw[1][l], net->w[l]->grad, sizeof gw[1][l]), 0);
                memcpy(gw[r][l], net->w[l]->grad, sizeof gw[r][l]);
            }
            if (run == 2) {
                ck_assert_int_eq(memcmp(zr, z[1], sizeof zr), 0);
                ck_assert_int_eq(memcmp(gbr, gb[1], sizeof gbr), 0);
            }
        }
        ck_assert_double_lt(max_rel(z[1], z[0], B * 3), 1e-6);
        ck_assert_double_lt(max_rel(gb[1], gb[0], B * 10), 1e-5);
        for (int l = 0; l < 3; l++)
            ck_assert_double_lt(max_rel(gw[1][l], gw[0][l], 12 * 16), 1e-5);
        ck_assert_double_gt(max_rel(gb[1], gb[0], B * 10), 0); /* really float */
        ck_assert_int_eq(da_logicnet_set_precision(net, (da_dtype)7), DA_EINVAL);
        ck_assert_int_eq(da_logicnet_set_precision(NULL, DA_F32), DA_EINVAL);
        da_logicnet_free(net);
    }
    omp_set_num_threads(2);
}
END_TEST

/* the same through convolutional stages (their gradient enters them in double) */
START_TEST(test_driver_f32_conv)
{
    enum { B = 5 };
    static const da_logic_conv_spec st[2] = {{DA_LOGIC_CONV_TREE, 0, 0, 0, 3, 2, 3, 1, 1},
                                             {DA_LOGIC_CONV_OR_POOL, 0, 0, 0, 0, 0, 2, 2, 0}};
    da_logicnet_cfg c = da_logicnet_default_cfg(16, 2, 12, 2);
    c.n_conv = 2, c.conv = st, c.image_h = c.image_w = 4, c.grad_factor = 1.5, c.seed = 3;
    da_logicnet *net = da_logicnet_new(&c);
    ck_assert_msg(net != NULL, "%s", da_last_error());
    double bits[B * 16], g[B * 2], z[2][B * 2], gb[2][B * 16], *gw[2][3];
    gc_random(bits, B * 16, 41, 0, 1);
    gc_random(g, B * 2, 42, -1, 1);
    ck_assert_int_eq(net->n_params, 3);
    for (int r = 0; r < 2; r++) {
        ck_assert_int_eq(da_logicnet_set_precision(net, r ? DA_F32 : DA_F64), DA_OK);
        for (int p = 0; p < 3; p++)
            if (net->params[p]->grad)
                memset(net->params[p]->grad, 0, net->params[p]->size * sizeof(double));
        ck_assert_int_eq(da_logicnet_forward(net, B, bits, 0, z[r]), DA_OK);
        ck_assert_int_eq(da_logicnet_backward(net, g, gb[r]), DA_OK);
        for (int p = 0; p < 3; p++) {
            gw[r][p] = malloc(net->params[p]->size * sizeof(double));
            memcpy(gw[r][p], net->params[p]->grad, net->params[p]->size * sizeof(double));
        }
    }
    ck_assert_double_lt(max_rel(z[1], z[0], B * 2), 1e-6);
    ck_assert_double_lt(max_rel(gb[1], gb[0], B * 16), 1e-5);
    double big = 0;
    for (int i = 0; i < B * 16; i++)
        big = fmax(big, fabs(gb[0][i]));
    ck_assert_double_gt(big, 1e-3);                         /* a gradient reaches the bits */
    ck_assert_double_gt(max_rel(gb[1], gb[0], B * 16), 0); /* really float */
    for (int p = 0; p < 3; p++) {
        ck_assert_double_lt(max_rel(gw[1][p], gw[0][p], net->params[p]->size), 1e-5);
        free(gw[0][p]);
        free(gw[1][p]);
    }
    da_logicnet_free(net);
}
END_TEST

/* the driver's cross-entropy gradient against its own central differences */
START_TEST(test_driver_finite_differences)
{
    enum { B = 6 };
    da_logicnet *net = small_net(DA_LOGIC_RANDOM, 1.0, 4);
    double bits[B * 10], z[B * 3], gz[B * 3], loss, lp, lm;
    int labels[B] = {0, 1, 2, 2, 1, 0};
    gc_random(bits, B * 10, 8, 0, 1);
    ck_assert_int_eq(da_logicnet_forward(net, B, bits, 0, z), DA_OK);
    ck_assert_int_eq(da_logicnet_cross_entropy(B, 3, z, labels, &loss, gz), DA_OK);
    ck_assert_int_eq(da_logicnet_backward(net, gz, NULL), DA_OK);
    double err = 0, scale = 1e-300, h = 1e-6;
    for (int l = 0; l < 3; l++) {
        double *w = net->w[l]->data, *gw = net->w[l]->grad;
        for (int i = 0; i < 12 * 16; i++) {
            double w0 = w[i];
            w[i] = w0 + h;
            ck_assert_int_eq(da_logicnet_forward(net, B, bits, 0, z), DA_OK);
            da_logicnet_cross_entropy(B, 3, z, labels, &lp, NULL);
            w[i] = w0 - h;
            ck_assert_int_eq(da_logicnet_forward(net, B, bits, 0, z), DA_OK);
            da_logicnet_cross_entropy(B, 3, z, labels, &lm, NULL);
            w[i] = w0;
            double fd = (lp - lm) / (2 * h);
            err = fmax(err, fabs(fd - gw[i]));
            scale = fmax(scale, fmax(fabs(fd), fabs(gw[i])));
        }
    }
    ck_assert_double_lt(err / scale, 1e-6);
    da_logicnet_free(net);
}
END_TEST

START_TEST(test_hard_mode)
{
    enum { N = 300 };
    da_logicnet *net = small_net(DA_LOGIC_RANDOM, 1.0, 12);
    float x[N * 5];
    double bits[N * 10], z[N * 3], zp[N * 3];
    int pred[N];
    for (int i = 0; i < N * 5; i++)
        x[i] = (float)((i * 7919 % 1000) / 1000.0);
    ck_assert_int_eq(da_logicnet_binarize(net, N, x, bits), DA_OK);
    for (int i = 0; i < N; i++) /* bit t * 5 + f is x[f] > threshold t */
        for (int t = 0; t < 2; t++)
            for (int f = 0; f < 5; f++)
                ck_assert(bits[i * 10 + t * 5 + f] == (x[i * 5 + f] > net->thresholds[t]));
    ck_assert_int_eq(da_logicnet_forward(net, N, bits, 1, z), DA_OK);
    ck_assert_int_eq(da_logicnet_predict(net, N, x, pred, zp), DA_OK);
    for (int i = 0; i < N * 3; i++) { /* counts of true outputs over tau = 2 */
        ck_assert(z[i] == zp[i]);
        ck_assert(z[i] * 2 == floor(z[i] * 2) && z[i] >= 0 && z[i] * 2 <= 4);
    }
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int k = 1; k < 3; k++)
            best = z[i * 3 + k] > z[i * 3 + best] ? k : best;
        ck_assert_int_eq(pred[i], best);
    }
    /* a hard forward leaves no training state behind */
    ck_assert_int_eq(da_logicnet_backward(net, z, NULL), DA_ESTATE);
    da_logicnet_free(net);
}
END_TEST

START_TEST(test_connections_and_init)
{
    da_logicnet_cfg c = da_logicnet_default_cfg(16, 2, 40, 4);
    c.connections = DA_LOGIC_UNIQUE;
    c.residual_init = 1;
    c.seed = 3;
    da_logicnet *net = da_logicnet_new(&c), *again = da_logicnet_new(&c);
    c.seed = 4;
    da_logicnet *other = da_logicnet_new(&c);
    ck_assert(net && again && other);
    int differs = 0, gate[40];
    for (int l = 0; l < 2; l++) {
        int in = net->dims[l], used[40] = {0};
        for (int j = 0; j < 40; j++) {
            int a = net->ia[l][j], b = net->ib[l][j];
            ck_assert(a >= 0 && a < in && b >= 0 && b < in && a != b);
            used[a] = used[b] = 1;
            for (int k = 0; k < j; k++) /* distinct unordered pairs */
                ck_assert(!((net->ia[l][k] == a && net->ib[l][k] == b) ||
                            (net->ia[l][k] == b && net->ib[l][k] == a)));
            ck_assert_int_eq(a, again->ia[l][j]);
            differs += a != other->ia[l][j];
        }
        for (int i = 0; i < in; i++)
            ck_assert(used[i]);
        ck_assert_int_eq(da_logicnet_gates(net, l, gate), DA_OK);
        for (int j = 0; j < 40; j++)
            ck_assert_int_eq(gate[j], 3);
    }
    ck_assert_int_gt(differs, 0);
    /* residual network in hard mode: every neuron passes its first input through */
    float x[16];
    double bits[16], z[4], y1[40];
    for (int i = 0; i < 16; i++)
        x[i] = (float)(i % 3) / 2;
    ck_assert_int_eq(da_logicnet_binarize(net, 1, x, bits), DA_OK);
    ck_assert_int_eq(da_logicnet_forward(net, 1, bits, 1, z), DA_OK);
    for (int j = 0; j < 40; j++)
        y1[j] = bits[net->ia[0][j]];
    for (int k = 0; k < 4; k++) {
        double s = 0;
        for (int j = 0; j < 10; j++)
            s += y1[net->ia[1][k * 10 + j]];
        ck_assert_double_eq(z[k], s);
    }
    /* random connections use every input */
    c.connections = DA_LOGIC_RANDOM;
    da_logicnet *rnd = da_logicnet_new(&c);
    int used[16] = {0};
    for (int j = 0; j < 40; j++)
        used[rnd->ia[0][j]] = used[rnd->ib[0][j]] = 1;
    for (int i = 0; i < 16; i++)
        ck_assert(used[i]);
    da_logicnet_free(rnd);
    da_logicnet_free(net);
    da_logicnet_free(again);
    da_logicnet_free(other);
}
END_TEST

/* ---- file format ---- */

static int same_net(const da_logicnet *a, const da_logicnet *b)
{
    if (a->n_inputs != b->n_inputs || a->n_thresholds != b->n_thresholds ||
        a->n_layers != b->n_layers || a->width != b->width || a->n_classes != b->n_classes ||
        a->tau != b->tau || a->grad_factor != b->grad_factor || a->connections != b->connections)
        return 0;
    if (memcmp(a->thresholds, b->thresholds, (size_t)a->n_thresholds * sizeof(double)))
        return 0;
    for (int l = 0; l < a->n_layers; l++)
        if (memcmp(a->ia[l], b->ia[l], (size_t)a->width * sizeof(int)) ||
            memcmp(a->ib[l], b->ib[l], (size_t)a->width * sizeof(int)) ||
            memcmp(a->w[l]->data, b->w[l]->data, (size_t)a->width * 16 * sizeof(double)))
            return 0;
    return 1;
}

START_TEST(test_file_round_trip_and_corruption)
{
    char dir[] = "/tmp/test_logicnet.XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/net.bin", dir);
    da_logicnet *net = small_net(DA_LOGIC_UNIQUE, 1.5, 2);
    ck_assert_int_eq(da_logicnet_save(net, path), DA_OK);
    da_logicnet *back = da_logicnet_load(path);
    ck_assert_msg(back != NULL, "%s", da_last_error());
    ck_assert(same_net(net, back));
    void *data;
    size_t size;
    ck_assert_int_eq(da_logicnet_serialize(net, &data, &size), DA_OK);
    ck_assert_uint_eq(size, 56 + 2 * 8 + 3 * 12 * (4 + 4 + 128) + 4);
    unsigned char *p = data;
    for (size_t i = 0; i < size; i++) { /* every single corrupted byte is caught */
        p[i] ^= 0x20;
        ck_assert_ptr_null(da_logicnet_deserialize(p, size));
        ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
        p[i] ^= 0x20;
    }
    for (size_t len = 0; len < size; len += 37) { /* truncations */
        ck_assert_ptr_null(da_logicnet_deserialize(p, len));
        ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
    }
    unsigned char *longer = malloc(size + 1);
    memcpy(longer, p, size);
    longer[size] = 0;
    ck_assert_ptr_null(da_logicnet_deserialize(longer, size + 1));
    ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
    /* a connection index out of range under a valid CRC */
    size_t ia0 = 56 + 2 * 8;
    p[ia0] = 200;
    uint32_t crc = (uint32_t)crc32(0L, p, (uInt)(size - 4));
    for (int i = 0; i < 4; i++)
        p[size - 4 + i] = (unsigned char)(crc >> (8 * i));
    ck_assert_ptr_null(da_logicnet_deserialize(p, size));
    ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
    /* a truncated file on disk */
    FILE *f = fopen(path, "wb");
    fwrite(longer, 1, size / 2, f);
    fclose(f);
    ck_assert_ptr_null(da_logicnet_load(path));
    ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
    snprintf(path, sizeof path, "%s/missing.bin", dir);
    ck_assert_ptr_null(da_logicnet_load(path));
    ck_assert_int_eq(da_last_error_code(), DA_EIO);
    snprintf(path, sizeof path, "%s/net.bin", dir);
    unlink(path);
    rmdir(dir);
    free(longer);
    free(data);
    da_logicnet_free(net);
    da_logicnet_free(back);
}
END_TEST

/* ---- MONK ---- */

START_TEST(test_monk_facts)
{
    static const int train_n[3] = {124, 169, 122}, positives[3] = {216, 142, 228};
    for (int p = 1; p <= 3; p++) {
        da_monk *m = da_monk_new(p, 7), *again = da_monk_new(p, 7), *other = da_monk_new(p, 8);
        ck_assert(m && again && other);
        ck_assert_int_eq(m->test.n, 432);
        ck_assert_int_eq(m->train.n, train_n[p - 1]);
        int pos = 0, flipped = 0, seen[432] = {0}, same = 1;
        for (int r = 0; r < 432; r++) {
            pos += m->test.y[r];
            float s = 0;
            for (int i = 0; i < 17; i++)
                s += m->test.x[r * 17 + i];
            ck_assert(s == 6);
        }
        ck_assert_int_eq(pos, positives[p - 1]); /* the literature's class balance */
        for (int r = 0; r < m->train.n; r++) {
            const int *a = m->train.attr + r * 6;
            int c = 0;
            for (int i = 0; i < 6; i++)
                c = c * da_monk_attr_values[i] + a[i] - 1;
            ck_assert(!seen[c]); /* distinct rows of the 432 */
            seen[c] = 1;
            ck_assert_int_eq(memcmp(m->train.x + r * 17, m->test.x + c * 17, 17 * sizeof(float)), 0);
            flipped += m->train.y[r] != da_monk_class(p, a);
            same &= m->train.attr[r * 6] == other->train.attr[r * 6] &&
                    m->train.attr[r * 6 + 1] == other->train.attr[r * 6 + 1];
            ck_assert_int_eq(memcmp(a, again->train.attr + r * 6, 6 * sizeof(int)), 0);
        }
        ck_assert_int_eq(flipped, p == 3 ? 6 : 0);
        ck_assert(!same);
        da_monk_free(m);
        da_monk_free(again);
        da_monk_free(other);
    }
    int a[6] = {1, 1, 1, 1, 1, 1}, bad[6] = {1, 1, 3, 1, 1, 1};
    ck_assert_int_eq(da_monk_class(1, a), 1);
    ck_assert_int_eq(da_monk_class(2, a), 0);
    ck_assert_int_eq(da_monk_class(3, a), 1);
    ck_assert_int_eq(da_monk_class(1, bad), -1);
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_int_eq(da_monk_class(4, a), -1);
    ck_assert_ptr_null(da_monk_new(0, 1));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    da_monk_free(NULL);
}
END_TEST

START_TEST(test_errors)
{
    ck_assert_ptr_null(da_logicnet_new(NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_logicnet_cfg c = da_logicnet_default_cfg(10, 2, 9, 2); /* 9 not a multiple of 2 */
    ck_assert_ptr_null(da_logicnet_new(&c));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    c.width = 4; /* fewer than half the 10 bits */
    ck_assert_ptr_null(da_logicnet_new(&c));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    c.width = 10;
    c.tau = NAN;
    ck_assert_ptr_null(da_logicnet_new(&c));
    ck_assert_int_eq(da_last_error_code(), DA_ENAN);
    c.tau = -1;
    ck_assert_ptr_null(da_logicnet_new(&c));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    c.tau = 1;
    c.connections = DA_LOGIC_UNIQUE;
    c.n_inputs = 4;
    c.width = 8; /* only 6 distinct pairs of 4 bits */
    ck_assert_ptr_null(da_logicnet_new(&c));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    c.connections = 7;
    ck_assert_ptr_null(da_logicnet_new(&c));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);

    da_logicnet *net = small_net(DA_LOGIC_RANDOM, 1, 1);
    double bits[20] = {0}, z[6], g[6] = {0};
    float x[10] = {0};
    int labels[2] = {0, 3}, pred[2];
    ck_assert_int_eq(da_logicnet_backward(net, g, NULL), DA_ESTATE);
    x[3] = NAN;
    ck_assert_int_eq(da_logicnet_binarize(net, 2, x, bits), DA_ENAN);
    ck_assert_int_eq(da_logicnet_predict(net, 2, x, pred, NULL), DA_ENAN);
    ck_assert_int_eq(da_logicnet_predict(net, 0, x, pred, NULL), DA_ERANGE);
    ck_assert_int_eq(da_logicnet_predict(NULL, 2, x, pred, NULL), DA_EINVAL);
    bits[4] = INFINITY;
    ck_assert_int_eq(da_logicnet_forward(net, 2, bits, 0, z), DA_ENAN);
    bits[4] = 0;
    ck_assert_int_eq(da_logicnet_forward(net, 2, bits, 0, NULL), DA_EINVAL);
    ck_assert_int_eq(da_logicnet_forward(net, 0, bits, 0, z), DA_ERANGE);
    ck_assert_int_eq(da_logicnet_forward(net, 2, bits, 0, z), DA_OK);
    g[2] = NAN;
    ck_assert_int_eq(da_logicnet_backward(net, g, NULL), DA_ENAN);
    ck_assert_int_eq(da_logicnet_cross_entropy(2, 3, z, labels, z, NULL), DA_ERANGE);
    ck_assert_int_eq(da_logicnet_cross_entropy(2, 3, z, NULL, z, NULL), DA_EINVAL);
    ck_assert_int_eq(da_logicnet_gates(net, 3, (int[12]){0}), DA_ERANGE);
    ((double *)net->w[1]->data)[5] = NAN;
    ck_assert_int_eq(da_logicnet_forward(net, 2, bits, 0, z), DA_ENAN);
    da_ctx *ctx = da_ctx_new();
    int shape[2] = {2, 9};
    da_tensor *X = da_ctx_tensor(ctx, DA_F64, 2, shape);
    ck_assert_ptr_null(da_logicnet_op(ctx, net, X, NULL, 0));
    ck_assert_int_eq(da_last_error_code(), DA_ESHAPE);
    ck_assert_ptr_null(da_logicnet_deserialize(NULL, 10));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    ck_assert_int_eq(da_logicnet_save(net, NULL), DA_EINVAL);
    ck_assert_int_eq(da_logicnet_save(net, "/nonexistent-dir/x/net.bin"), DA_EIO);
    da_ctx_free(ctx);
    da_logicnet_free(net);
    da_logicnet_free(NULL);
}
END_TEST

int main(void)
{
    omp_set_num_threads(2);
    Suite *s = suite_create("logicnet");
    TCase *tc = tcase_create("logicnet");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gradcheck_network);
    tcase_add_test(tc, test_own_logits_grad);
    tcase_add_test(tc, test_grad_factor);
    tcase_add_test(tc, test_driver_against_tensor_face);
    tcase_add_test(tc, test_driver_f32);
    tcase_add_test(tc, test_driver_f32_conv);
    tcase_add_test(tc, test_driver_finite_differences);
    tcase_add_test(tc, test_hard_mode);
    tcase_add_test(tc, test_connections_and_init);
    tcase_add_test(tc, test_file_round_trip_and_corruption);
    tcase_add_test(tc, test_monk_facts);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
