/* test_logic_compile.c - compiled inference of logic gate networks
 * (lib/logic_compile.h): the bit-parallel evaluator against the hard mode
 * (da_logicnet_predict) on random networks and on a trained MONK-1 network (all 432
 * rows), 64-sample class counts against the hard logits, constant folding / merging /
 * dead-gate elimination on a hand-built network, the exported C compiled with the
 * system compiler (cc) and run, and the Verilog export simulated with iverilog when
 * iverilog is installed; a convolutional network (logic tree convolutions, OR pooling)
 * trained on synthetic bar images: it learns the task, and its unrolled circuit, the
 * exported C and the Verilog predict exactly as the hard mode on a test set. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diffalg.h"
#include "gradcheck.h"
#include "suite_run.h"

static da_logicnet *random_net(int n_inputs, int n_thr, int layers, int width, int k,
                               unsigned long seed)
{
    da_logicnet_cfg c = da_logicnet_default_cfg(n_inputs, layers, width, k);
    c.n_thresholds = n_thr;
    c.tau = 3;
    c.seed = seed;
    da_logicnet *net = da_logicnet_new(&c);
    ck_assert_msg(net != NULL, "%s", da_last_error());
    return net;
}

static float *random_inputs(int n, int n_inputs, unsigned long seed)
{
    double *d = malloc((size_t)n * n_inputs * sizeof *d);
    float *x = malloc((size_t)n * n_inputs * sizeof *x);
    gc_random(d, (long)n * n_inputs, seed, 0, 1);
    for (long i = 0; i < (long)n * n_inputs; i++)
        x[i] = (float)d[i];
    free(d);
    return x;
}

/* compiled predictions equal the hard mode's on x [n][n_inputs] */
static void expect_same_predictions(const da_logicnet *net, const da_logic_circuit *circ,
                                    int n, const float *x)
{
    int *hard = malloc((size_t)n * sizeof *hard), *comp = malloc((size_t)n * sizeof *comp);
    ck_assert_int_eq(da_logicnet_predict(net, n, x, hard, NULL), DA_OK);
    ck_assert_int_eq(da_logic_circuit_predict(circ, n, x, comp), DA_OK);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(comp[i], hard[i]);
    free(hard);
    free(comp);
}

START_TEST(test_random_networks)
{
    /* inputs: below 8, 32-wide blocks, 8-wide blocks and a scalar tail */
    static const int cfg[][5] = {/* inputs, thresholds, layers, width, classes */
                                 {6, 2, 3, 12, 3}, {20, 1, 4, 60, 5}, {9, 3, 2, 30, 2},
                                 {30, 2, 5, 200, 10}, {45, 3, 3, 90, 3}, {100, 2, 2, 200, 4}};
    for (int t = 0; t < 6; t++) {
        const int *c = cfg[t];
        da_logicnet *net = random_net(c[0], c[1], c[2], c[3], c[4], 100 + t);
        da_logic_circuit *circ = da_logic_circuit_new(net);
        ck_assert_msg(circ != NULL, "%s", da_last_error());
        da_logic_circuit_stats st = da_logic_circuit_get_stats(circ);
        ck_assert_int_eq(st.gates_before, c[2] * c[3]);
        ck_assert_int_le(st.gates_after, st.gates_before);
        ck_assert_int_eq(st.n_and + st.n_andnot + st.n_xor + st.n_or, st.gates_after);
        int n = 333; /* several 256-sample passes and a partial word */
        float *x = random_inputs(n, c[0], 7 + t);
        expect_same_predictions(net, circ, n, x);
        /* class counts of the first 64 samples = hard logits * tau */
        double *bits = malloc((size_t)64 * net->n_bits * sizeof *bits);
        double *z = malloc((size_t)64 * c[4] * sizeof *z);
        uint64_t *in = calloc((size_t)net->n_bits, sizeof *in);
        int *counts = malloc((size_t)64 * c[4] * sizeof *counts);
        ck_assert_int_eq(da_logicnet_binarize(net, 64, x, bits), DA_OK);
        for (int s = 0; s < 64; s++)
            for (int i = 0; i < net->n_bits; i++)
                in[i] |= (uint64_t)(bits[s * net->n_bits + i] != 0) << s;
        da_logicnet *mut = (da_logicnet *)net;
        ck_assert_int_eq(da_logicnet_forward(mut, 64, bits, 1, z), DA_OK);
        ck_assert_int_eq(da_logic_circuit_counts64(circ, in, counts), DA_OK);
        for (int i = 0; i < 64 * c[4]; i++)
            ck_assert_double_eq_tol(counts[i], z[i] * net->tau, 1e-9);
        free(bits);
        free(z);
        free(in);
        free(counts);
        free(x);
        da_logic_circuit_free(circ);
        da_logicnet_free(net);
    }
}
END_TEST

/* set neuron j of layer l to gate g on inputs a, b */
static void set_neuron(da_logicnet *net, int l, int j, int g, int a, int b)
{
    double *w = (double *)net->w[l]->data + 16L * j;
    for (int i = 0; i < 16; i++)
        w[i] = i == g ? 1 : 0;
    net->ia[l][j] = a;
    net->ib[l][j] = b;
}

START_TEST(test_folding_and_dead_gates)
{
    /* 4 bits; layer 0: false, true, a, not a, and, nand (same inputs), xor(x, x),
     * or; layer 1 reads only neurons 0..5 of layer 0 */
    da_logicnet *net = random_net(4, 1, 2, 8, 2, 1);
    set_neuron(net, 0, 0, 0, 0, 1);
    set_neuron(net, 0, 1, 15, 0, 1);
    set_neuron(net, 0, 2, 3, 2, 1);
    set_neuron(net, 0, 3, 12, 3, 0);
    set_neuron(net, 0, 4, 1, 0, 1);
    set_neuron(net, 0, 5, 14, 1, 0);
    set_neuron(net, 0, 6, 6, 2, 2);
    set_neuron(net, 0, 7, 7, 2, 3); /* dead: nobody reads neuron 7 */
    for (int j = 0; j < 8; j++)     /* layer 1: "a" of neurons 0..5, twice over */
        set_neuron(net, 1, j, 3, j % 6, 7);
    da_logic_circuit *circ = da_logic_circuit_new(net);
    da_logic_circuit_stats st = da_logic_circuit_get_stats(circ);
    ck_assert_int_eq(st.gates_before, 16);
    ck_assert_int_eq(st.gates_after, 1); /* the AND shared by and / nand */
    ck_assert_int_eq(st.n_and, 1);
    ck_assert_int_eq(st.n_const_outputs, 4); /* false, true, false, true */
    float *x = random_inputs(100, 4, 3);
    expect_same_predictions(net, circ, 100, x);
    free(x);
    da_logic_circuit_free(circ);
    da_logicnet_free(net);
}
END_TEST

/* a MONK-1 network trained briefly with the driver and Adam */
static da_logicnet *trained_monk(const da_monk *m)
{
    da_logicnet_cfg c = da_logicnet_default_cfg(17, 2, 64, 2);
    c.seed = 2;
    da_logicnet *net = da_logicnet_new(&c);
    da_optim_cfg oc = da_adam_cfg(0.05);
    da_optim *opt = da_optim_new(net->w, 2, &oc);
    double bits[124 * 17], z[124 * 2], gz[124 * 2], loss;
    ck_assert_int_eq(da_logicnet_binarize(net, 124, m->train.x, bits), DA_OK);
    for (int step = 0; step < 150; step++) {
        da_optim_zero_grad(opt);
        ck_assert_int_eq(da_logicnet_forward(net, 124, bits, 0, z), DA_OK);
        ck_assert_int_eq(da_logicnet_cross_entropy(124, 2, z, m->train.y, &loss, gz), DA_OK);
        ck_assert_int_eq(da_logicnet_backward(net, gz, NULL), DA_OK);
        ck_assert_int_eq(da_optim_step(opt), DA_OK);
    }
    da_optim_free(opt);
    return net;
}

/* run a shell command; its stdout lines that are integers into pred[0..n-1] */
static void run_predictions(const char *cmd, int n, int *pred)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char line[256];
    int count = 0, v;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "%d", &v) == 1 && count < n)
            pred[count++] = v;
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_int_eq(count, n);
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, size, f), size);
    ck_assert_int_eq(fclose(f), 0);
}

/* export C, compile it with cc (GCC's vector types, and -DLN_PORTABLE: plain C99
 * words), run it on x: the same predictions as the hard mode; a row with a NaN makes
 * the program fail */
static void check_exported_c(const da_logicnet *net, const da_logic_circuit *circ,
                             const char *dir, int n, const float *x)
{
    char src[128], bin[128], in[128], cmd[512];
    snprintf(src, sizeof src, "%s/net.c", dir);
    snprintf(bin, sizeof bin, "%s/net", dir);
    snprintf(in, sizeof in, "%s/x.bin", dir);
    ck_assert_int_eq(da_logic_circuit_export_c(circ, src), DA_OK);
    int *hard = malloc((size_t)n * sizeof *hard), *got = malloc((size_t)n * sizeof *got);
    ck_assert_int_eq(da_logicnet_predict(net, n, x, hard, NULL), DA_OK);
    for (int portable = 0; portable < 2; portable++) {
        snprintf(cmd, sizeof cmd, "cc -std=c99 -O1 -Wall -Wextra -Werror -DLOGICNET_MAIN %s "
                 "-o %s %s", portable ? "-DLN_PORTABLE" : "", bin, src);
        ck_assert_int_eq(system(cmd), 0);
        write_file(in, x, (size_t)n * net->n_inputs * sizeof *x);
        snprintf(cmd, sizeof cmd, "%s < %s", bin, in);
        run_predictions(cmd, n, got);
        for (int i = 0; i < n; i++)
            ck_assert_int_eq(got[i], hard[i]);
        float *bad = malloc((size_t)n * net->n_inputs * sizeof *bad);
        memcpy(bad, x, (size_t)n * net->n_inputs * sizeof *bad);
        bad[(size_t)(n - 1) * net->n_inputs] = NAN; /* in the last row */
        write_file(in, bad, (size_t)n * net->n_inputs * sizeof *bad);
        snprintf(cmd, sizeof cmd, "%s < %s > /dev/null 2>&1", bin, in);
        ck_assert_int_ne(system(cmd), 0);
        free(bad);
    }
    unlink(src);
    unlink(bin);
    unlink(in);
    free(hard);
    free(got);
}

START_TEST(test_trained_monk_and_c_export)
{
    char dir[] = "/tmp/test_logic_compile.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    da_monk *m = da_monk_new(1, 0);
    da_logicnet *net = trained_monk(m);
    int pred[432], correct = 0;
    ck_assert_int_eq(da_logicnet_predict(net, 432, m->test.x, pred, NULL), DA_OK);
    for (int i = 0; i < 432; i++)
        correct += pred[i] == m->test.y[i];
    ck_assert_int_gt(correct, 0.75 * 432); /* trained well beyond chance (216) */
    da_logic_circuit *circ = da_logic_circuit_new(net);
    expect_same_predictions(net, circ, 432, m->test.x);
    check_exported_c(net, circ, dir, 432, m->test.x);
    da_logic_circuit_free(circ);
    /* a random network with several thresholds and classes */
    da_logicnet *rnd = random_net(12, 3, 3, 40, 4, 77);
    float *x = random_inputs(150, 12, 5);
    circ = da_logic_circuit_new(rnd);
    check_exported_c(rnd, circ, dir, 150, x);
    da_logic_circuit_free(circ);
    free(x);
    da_logicnet_free(rnd);
    da_logicnet_free(net);
    da_monk_free(m);
    rmdir(dir);
}
END_TEST

/* inputs at and next to thresholds 1/3 and 2/3 (not floats) and 0.5: the evaluator and
 * the exported C compare floats with the float just below a threshold, which must give
 * the hard mode's double comparison. The network predicts the number of thresholds
 * exceeded: class 0 counts !b0 twice, class 1 b0 and !b1, class 2 b1 twice. */
START_TEST(test_threshold_edges)
{
    char dir[] = "/tmp/test_logic_compile.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    da_logicnet *net = random_net(1, 2, 1, 6, 3, 4);
    ck_assert_double_eq(net->thresholds[0], 1.0 / 3);
    static const int gate[6] = {12, 12, 3, 12, 3, 3}, bit[6] = {0, 0, 0, 1, 1, 1};
    for (int j = 0; j < 6; j++)
        set_neuron(net, 0, j, gate[j], bit[j], bit[j]);
    enum { N = 9 };
    float x[N], f1 = (float)(1.0 / 3), f2 = (float)(2.0 / 3);
    float around[3][3] = {{nextafterf(f1, 0), f1, nextafterf(f1, 1)},
                          {nextafterf(f2, 0), f2, nextafterf(f2, 1)},
                          {nextafterf(0.5f, 0), 0.5f, nextafterf(0.5f, 1)}};
    memcpy(x, around, sizeof x);
    int pred[N];
    da_logic_circuit *circ = da_logic_circuit_new(net);
    ck_assert_int_eq(da_logic_circuit_predict(circ, N, x, pred), DA_OK);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pred[i], ((double)x[i] > 1.0 / 3) + ((double)x[i] > 2.0 / 3));
    expect_same_predictions(net, circ, N, x);
    check_exported_c(net, circ, dir, N, x);
    da_logic_circuit_free(circ);
    da_logicnet_free(net);
    rmdir(dir);
}
END_TEST

static int have_iverilog(void)
{
    return system("command -v iverilog >/dev/null 2>&1 && command -v vvp >/dev/null 2>&1") == 0;
}

/* simulate the Verilog export on x and compare with the hard mode */
static void check_verilog(const da_logicnet *net, const char *dir, int n, const float *x)
{
    char v[128], tb[128], vec[128], sim[128], cmd[700];
    snprintf(v, sizeof v, "%s/net.v", dir);
    snprintf(tb, sizeof tb, "%s/tb.v", dir);
    snprintf(vec, sizeof vec, "%s/in.txt", dir);
    snprintf(sim, sizeof sim, "%s/sim", dir);
    da_logic_circuit *circ = da_logic_circuit_new(net);
    ck_assert_int_eq(da_logic_circuit_export_verilog(circ, "logicnet", v), DA_OK);
    int nb = net->n_bits, yw = 1;
    while ((1 << yw) < net->n_classes)
        yw++;
    double *bits = malloc((size_t)n * nb * sizeof *bits);
    ck_assert_int_eq(da_logicnet_binarize(net, n, x, bits), DA_OK);
    FILE *f = fopen(vec, "w");
    for (int s = 0; s < n; s++) { /* $readmemb: most significant bit first */
        for (int i = nb - 1; i >= 0; i--)
            fputc(bits[(size_t)s * nb + i] != 0 ? '1' : '0', f);
        fputc('\n', f);
    }
    fclose(f);
    f = fopen(tb, "w");
    fprintf(f, "module tb;\n  reg [%d:0] mem [0:%d];\n  reg [%d:0] x;\n  wire [%d:0] y;\n"
               "  integer i;\n  logicnet dut(.x(x), .y(y));\n  initial begin\n"
               "    $readmemb(\"%s\", mem);\n    for (i = 0; i < %d; i = i + 1) begin\n"
               "      x = mem[i];\n      #1 $display(\"%%0d\", y);\n    end\n"
               "    $finish;\n  end\nendmodule\n", nb - 1, n - 1, nb - 1, yw - 1, vec, n);
    fclose(f);
    snprintf(cmd, sizeof cmd, "iverilog -Wall -o %s %s %s", sim, tb, v);
    ck_assert_int_eq(system(cmd), 0);
    int *hard = malloc((size_t)n * sizeof *hard), *got = malloc((size_t)n * sizeof *got);
    ck_assert_int_eq(da_logicnet_predict(net, n, x, hard, NULL), DA_OK);
    snprintf(cmd, sizeof cmd, "vvp -n %s", sim);
    run_predictions(cmd, n, got);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(got[i], hard[i]);
    unlink(v);
    unlink(tb);
    unlink(vec);
    unlink(sim);
    free(bits);
    free(hard);
    free(got);
    da_logic_circuit_free(circ);
}

/* n 8 x 8 images of noise in [0, 0.45) with a bar of 5 pixels in [0.6, 1): label 0 a
 * horizontal bar, label 1 a vertical one, at a random place */
static void bar_images(da_rng *r, int n, float *x, int *y)
{
    for (int s = 0; s < n; s++) {
        float *im = x + (size_t)s * 64;
        for (int i = 0; i < 64; i++)
            im[i] = (float)(0.45 * da_rng_uniform(r));
        y[s] = (int)da_rng_int(r, 2);
        int line = (int)da_rng_int(r, 8), start = (int)da_rng_int(r, 4);
        for (int i = 0; i < 5; i++) {
            int row = y[s] ? start + i : line, col = y[s] ? line : start + i;
            im[row * 8 + col] = (float)(0.6 + 0.4 * da_rng_uniform(r));
        }
    }
}

/* tree(8 kernels, depth 2, 3 x 3, pad 1) -> OR pool 2 -> tree(8, depth 2, 3 x 3, pad 1)
 * -> 2 dense layers of 64 -> 2 classes, trained with Adam on 256 images */
static da_logicnet *trained_conv(da_rng *r)
{
    static const da_logic_conv_spec st[3] = {{DA_LOGIC_CONV_TREE, 0, 0, 0, 8, 2, 3, 1, 1},
                                             {DA_LOGIC_CONV_OR_POOL, 0, 0, 0, 0, 0, 2, 2, 0},
                                             {DA_LOGIC_CONV_TREE, 0, 0, 0, 8, 2, 3, 1, 1}};
    da_logicnet_cfg c = da_logicnet_default_cfg(64, 2, 64, 2);
    c.tau = 4;
    c.seed = 3;
    c.n_conv = 3;
    c.conv = st;
    c.image_h = c.image_w = 8;
    c.residual_init = 1;
    da_logicnet *net = da_logicnet_new(&c);
    ck_assert_msg(net != NULL, "%s", da_last_error());
    da_optim_cfg oc = da_adam_cfg(0.05);
    da_optim *opt = da_optim_new(net->params, net->n_params, &oc);
    enum { N = 256, B = 32 };
    float x[N * 64];
    int y[N];
    double bits[B * 64], z[B * 2], gz[B * 2], loss;
    bar_images(r, N, x, y);
    for (int step = 0; step < 160; step++) {
        int off = step % (N / B) * B;
        da_optim_zero_grad(opt);
        ck_assert_int_eq(da_logicnet_binarize(net, B, x + off * 64, bits), DA_OK);
        ck_assert_int_eq(da_logicnet_forward(net, B, bits, 0, z), DA_OK);
        ck_assert_int_eq(da_logicnet_cross_entropy(B, 2, z, y + off, &loss, gz), DA_OK);
        ck_assert_int_eq(da_logicnet_backward(net, gz, NULL), DA_OK);
        ck_assert_int_eq(da_optim_step(opt), DA_OK);
    }
    da_optim_free(opt);
    return net;
}

static void check_verilog(const da_logicnet *net, const char *dir, int n, const float *x);
static int have_iverilog(void);

START_TEST(test_conv_network)
{
    char dir[] = "/tmp/test_logic_compile.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    da_rng *r = da_rng_new(12);
    da_logicnet *net = trained_conv(r);
    enum { N = 300 };
    float *x = malloc(N * 64 * sizeof *x);
    int y[N], pred[N], correct = 0;
    bar_images(r, N, x, y);
    ck_assert_int_eq(da_logicnet_predict(net, N, x, pred, NULL), DA_OK);
    for (int i = 0; i < N; i++)
        correct += pred[i] == y[i];
    ck_assert_int_gt(correct, 0.85 * N); /* chance: 150 */
    da_logic_circuit *circ = da_logic_circuit_new(net);
    ck_assert_msg(circ != NULL, "%s", da_last_error());
    da_logic_circuit_stats st = da_logic_circuit_get_stats(circ);
    /* unrolled: 8 x 64 x 3 + 8 x 16 x 3 tree gates, 8 x 16 x 3 OR gates, 128 neurons */
    ck_assert_int_eq(st.gates_before, 8 * 64 * 3 + 8 * 16 * 3 + 8 * 16 * 3 + 128);
    ck_assert_int_gt(st.gates_after, 0);
    ck_assert_int_lt(st.gates_after, st.gates_before);
    expect_same_predictions(net, circ, N, x);
    check_exported_c(net, circ, dir, N, x);
    if (have_iverilog())
        check_verilog(net, dir, 64, x);
    da_logic_circuit_free(circ);
    free(x);
    da_logicnet_free(net);
    da_rng_free(r);
    rmdir(dir);
}
END_TEST

START_TEST(test_verilog_export)
{
    if (!have_iverilog()) { /* the issue asks for the simulation only where installed */
        fputs("test_verilog_export: iverilog not installed, simulation not run\n", stderr);
        return;
    }
    char dir[] = "/tmp/test_logic_verilog.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    da_monk *m = da_monk_new(1, 0);
    da_logicnet *net = trained_monk(m);
    check_verilog(net, dir, 432, m->test.x);
    da_logicnet *rnd = random_net(10, 2, 3, 30, 3, 9);
    float *x = random_inputs(100, 10, 8);
    check_verilog(rnd, dir, 100, x);
    free(x);
    da_logicnet_free(rnd);
    da_logicnet_free(net);
    da_monk_free(m);
    rmdir(dir);
}
END_TEST

START_TEST(test_errors)
{
    ck_assert_ptr_null(da_logic_circuit_new(NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_logicnet *net = random_net(4, 1, 1, 4, 2, 1);
    da_logic_circuit *circ = da_logic_circuit_new(net);
    float x[8] = {0, 1, 0, 1, NAN, 0, 0, 0};
    int pred[2];
    ck_assert_int_eq(da_logic_circuit_predict(circ, 2, x, pred), DA_ENAN);
    /* NaN or infinities anywhere, also in a later block of 256 rows */
    float *many = random_inputs(300, 4, 2);
    int *mp = malloc(300 * sizeof *mp);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++)
        for (int at = 0; at < 1200; at += 1163) {
            float keep = many[at];
            many[at] = bad[k];
            ck_assert_int_eq(da_logic_circuit_predict(circ, 300, many, mp), DA_ENAN);
            many[at] = keep;
        }
    ck_assert_int_eq(da_logic_circuit_predict(circ, 300, many, mp), DA_OK);
    free(many);
    free(mp);
    ck_assert_int_eq(da_logic_circuit_predict(circ, 0, x, pred), DA_ERANGE);
    ck_assert_int_eq(da_logic_circuit_predict(NULL, 1, x, pred), DA_EINVAL);
    ck_assert_int_eq(da_logic_circuit_counts64(circ, NULL, (int[128]){0}), DA_EINVAL);
    ck_assert_int_eq(da_logic_circuit_export_c(circ, NULL), DA_EINVAL);
    ck_assert_int_eq(da_logic_circuit_export_c(circ, "/nonexistent-dir/x/net.c"), DA_EIO);
    ck_assert_int_eq(da_logic_circuit_export_verilog(circ, "9bad", "/tmp/x.v"), DA_EINVAL);
    ck_assert_int_eq(da_logic_circuit_export_verilog(circ, "a-b", "/tmp/x.v"), DA_EINVAL);
    ck_assert_int_eq(da_logic_circuit_export_verilog(circ, NULL, "/tmp/x.v"), DA_EINVAL);
    da_logic_circuit_stats st = da_logic_circuit_get_stats(NULL);
    ck_assert_int_eq(st.gates_before, 0);
    da_logic_circuit_free(circ);
    da_logic_circuit_free(NULL);
    da_logicnet_free(net);
}
END_TEST

int main(void)
{
    omp_set_num_threads(2);
    Suite *s = suite_create("logic_compile");
    TCase *tc = tcase_create("logic_compile");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_random_networks);
    tcase_add_test(tc, test_folding_and_dead_gates);
    tcase_add_test(tc, test_trained_monk_and_c_export);
    tcase_add_test(tc, test_threshold_edges);
    tcase_add_test(tc, test_verilog_export);
    tcase_add_test(tc, test_conv_network);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
