/* bench_core.c - speed of the core against its floor and against PyTorch:
 *  (a) SGEMM / DGEMM through da_matmul (a ctx tensor op, graph recording on) against
 *      raw cblas_sgemm / cblas_dgemm on the same square matrices, n = 64 .. max;
 *  (b) one training step (forward + backward + Adam) of the papers' MNIST CNN
 *      (conv5x5x32-pool-conv5x5x64-pool-fc64-fc10) at batch 64, F32, on random inputs.
 * Times are medians over repeated runs; experiments/bench_core_torch.py times (b) in
 * PyTorch with the same thread count. */
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "common.h"
#include "diffalg.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void raw_gemm(da_dtype dt, int n, const void *a, const void *b, void *c)
{
    if (dt == DA_F32)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
    else
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0,
                    c, n);
}

/* median seconds of raw GEMM and of da_matmul (a and b require a gradient, so the op
 * records its node as in training) for n x n matrices */
static void bench_gemm(da_dtype dt, int n, int reps, double *t_raw, double *t_op)
{
    int shape[2] = {n, n};
    da_tensor *a = da_tensor_new(dt, 2, shape), *b = da_tensor_new(dt, 2, shape);
    da_tensor *c = da_tensor_new(dt, 2, shape);
    da_ctx *ctx = da_ctx_new();
    da_rng *rng = da_rng_new(7);
    double *tr = malloc((size_t)reps * sizeof *tr), *to = malloc((size_t)reps * sizeof *to);
    if (!a || !b || !c || !ctx || !rng || !tr || !to)
        ex_die(1, "bench_gemm: %s", da_last_error());
    for (long i = 0; i < a->size; i++) {
        da_set(a, i, da_rng_uniform(rng) - 0.5);
        da_set(b, i, da_rng_uniform(rng) - 0.5);
    }
    a->requires_grad = b->requires_grad = 1;
    raw_gemm(dt, n, a->data, b->data, c->data); /* warm up */
    for (int r = 0; r < reps; r++) {
        double t0 = ex_now();
        raw_gemm(dt, n, a->data, b->data, c->data);
        tr[r] = ex_now() - t0;
        da_ctx_reset(ctx);
        t0 = ex_now();
        if (!da_matmul(ctx, a, b))
            ex_die(1, "da_matmul: %s", da_last_error());
        to[r] = ex_now() - t0;
    }
    *t_raw = median(tr, reps);
    *t_op = median(to, reps);
    free(tr);
    free(to);
    da_rng_free(rng);
    da_ctx_free(ctx);
    da_tensor_free(a);
    da_tensor_free(b);
    da_tensor_free(c);
}

/* median seconds of one forward + backward + Adam step of the CNN at the given batch */
static double bench_cnn_step(int batch, int runs, int warmup)
{
    static const int channels[2] = {32, 64}, fc[2] = {64, 10};
    da_rng *rng = da_rng_new(1);
    da_model *m = da_model_cnn(DA_F32, 1, 28, 28, 2, channels, 5, 0, 2, fc, rng);
    da_optim_cfg cfg = da_adam_cfg(1e-3);
    da_optim *opt = m ? da_optim_new(da_model_params(m), da_model_n_params(m), &cfg) : NULL;
    da_ctx *ctx = da_ctx_new();
    int shape[4] = {batch, 1, 28, 28}, *labels = malloc((size_t)batch * sizeof *labels);
    double *x = malloc((size_t)batch * 784 * sizeof *x), *t = malloc((size_t)runs * sizeof *t);
    if (!opt || !ctx || !labels || !x || !t)
        ex_die(1, "bench_cnn_step: %s", da_last_error());
    for (long i = 0; i < (long)batch * 784; i++)
        x[i] = da_rng_uniform(rng);
    for (int i = 0; i < batch; i++)
        labels[i] = (int)da_rng_int(rng, 10);
    for (int r = -warmup; r < runs; r++) {
        double t0 = ex_now();
        da_ctx_reset(ctx);
        da_tensor *xt = da_ctx_tensor_from(ctx, DA_F32, 4, shape, x);
        da_tensor *loss = da_cross_entropy(ctx, da_model_forward(ctx, m, xt), labels);
        da_optim_zero_grad(opt);
        if (!loss || da_backward(ctx, loss) || da_optim_step(opt))
            ex_die(1, "CNN step: %s", da_last_error());
        if (r >= 0)
            t[r] = ex_now() - t0;
    }
    double med = median(t, runs);
    free(t);
    free(x);
    free(labels);
    da_ctx_free(ctx);
    da_optim_free(opt);
    da_model_free(m);
    da_rng_free(rng);
    return med;
}

static void usage(FILE *f)
{
    fputs("usage: bench_core [--threads T] [--runs N] [--max-size N] [--batch B]\n"
          "                  [--out FILE.jsonl] [--help]\n"
          "  (a) da_matmul vs raw cblas_sgemm/dgemm, square sizes 64 .. max-size (1024)\n"
          "  (b) one forward+backward+Adam step of the MNIST CNN at batch B (64),\n"
          "      median of N runs (30)\n", f);
}

int main(int argc, char **argv)
{
    ex_set_program_name(argv[0]);
    int threads = 0, runs = 30, max_size = 1024, batch = 64;
    const char *out = NULL;
    const ex_option opts[] = {
        EX_OPT_THREADS(&threads),
        EX_OPT_INT("runs", &runs, 1, 100000),
        EX_OPT_INT("max-size", &max_size, 64, 8192),
        EX_OPT_INT("batch", &batch, 1, 4096),
        EX_OPT_STRING("out", &out),
    };
    ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
    threads = ex_set_threads(threads);
    ex_json *j = ex_json_open(out, 0);
    if (!j)
        return 1;
    ex_json_begin(j);
    ex_json_str(j, "program", "bench_core");
    ex_json_int(j, "threads", threads);
    ex_json_int(j, "runs", runs);
    ex_json_int(j, "batch", batch);
    ex_json_end(j);
    printf("(a) GEMM, square n x n, median of runs, %d threads\n", threads);
    printf("| dtype | n    | cblas ms  | da_matmul ms | ratio |\n");
    printf("|-------|------|-----------|--------------|-------|\n");
    for (int d = 0; d < 2; d++) {
        da_dtype dt = d ? DA_F64 : DA_F32;
        for (int n = 64; n <= max_size; n *= 2) {
            int reps = (int)(2e9 / (2.0 * n * n * n));
            reps = reps < 5 ? 5 : reps > 200 ? 200 : reps;
            double tr, to;
            bench_gemm(dt, n, reps, &tr, &to);
            printf("| %s   | %-4d | %9.3f | %12.3f | %5.2f |\n", d ? "f64" : "f32", n,
                   1e3 * tr, 1e3 * to, to / tr);
            ex_json_begin(j);
            ex_json_str(j, "bench", d ? "dgemm" : "sgemm");
            ex_json_int(j, "n", n);
            ex_json_num(j, "cblas_ms", 1e3 * tr);
            ex_json_num(j, "da_matmul_ms", 1e3 * to);
            ex_json_num(j, "ratio", to / tr);
            ex_json_end(j);
        }
    }
    double step = bench_cnn_step(batch, runs, 3);
    printf("(b) MNIST CNN forward+backward+Adam step, batch %d, F32: %.2f ms (median of %d)\n",
           batch, 1e3 * step, runs);
    ex_json_begin(j);
    ex_json_str(j, "bench", "cnn_step");
    ex_json_num(j, "step_ms", 1e3 * step);
    ex_json_end(j);
    ex_json_close(j);
    return 0;
}
