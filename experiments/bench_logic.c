/* bench_logic.c - training throughput of a dense difflogic network (issue 9): full
 * training steps (binarized inputs -> forward -> GroupSum + softmax cross-entropy ->
 * backward -> Adam) of an L x W network at batch B on random binary inputs (784 bits,
 * 10 classes, tau 10, grad_factor 2: the MNIST setup), timed at 1 and 2 threads.
 * Prints one line per thread count and precision: milliseconds per step, samples/s and
 * neuron-samples/s (batch x L x W per step), also per CPU-second of the process (a
 * fairer figure on a shared machine; difflogic's own CPU implementation does 13.5e6 for
 * 6 x 8000 at batch 128 on 2 threads). On a machine shared with other login sessions,
 * Linux's autogroup scheduling gives the whole process one session's share of the CPUs,
 * so that 2 threads time-share a fraction of a core and wait at every OpenMP barrier
 * (2 threads then look slower than 1): measure on an idle machine or from a session of
 * its own with a higher autogroup priority (setsid; echo -15 > /proc/self/autogroup).
 *
 * usage: bench_logic [--layers L] [--width W] [--batch B] [--steps N] [--threads T]
 *                    [--precision f32|f64] [--optim fused|generic]
 *   --threads T: only T threads (default: 1 then 2)
 *   --precision: the training kernels' precision (default: both, f64 then f32)
 *   --optim: fused = da_logicnet_adam_step (backward and Adam in one call, the default);
 *            generic = da_logicnet_backward + da_optim_step */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "diffalg.h"

#define N_BITS 784
#define N_CLASSES 10

typedef struct {
    int layers, width, batch, steps, threads;
    da_dtype precision;
    int fused;
} bench_cfg;

/* CPU seconds of the process (all threads) */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* seconds per training step at the current thread count; *cpu_out: CPU seconds per step */
static double time_steps(const bench_cfg *c, double *loss_out, double *cpu_out)
{
    da_logicnet_cfg cfg = da_logicnet_default_cfg(N_BITS, c->layers, c->width, N_CLASSES);
    cfg.tau = 10;
    cfg.grad_factor = 2;
    cfg.seed = 1;
    da_logicnet *net = da_logicnet_new(&cfg);
    if (!net || da_logicnet_set_precision(net, c->precision))
        ex_die(1, "da_logicnet_new: %s", da_last_error());
    da_optim_cfg ocfg = da_adam_cfg(0.03);
    da_optim *opt = c->fused ? NULL : da_optim_new(net->params, net->n_params, &ocfg);
    da_logicnet_adam *fused = c->fused ? da_logicnet_adam_new(net, &ocfg) : NULL;
    double *bits = malloc((size_t)c->batch * N_BITS * sizeof *bits);
    double *logits = malloc((size_t)c->batch * N_CLASSES * sizeof *logits);
    double *glogits = malloc((size_t)c->batch * N_CLASSES * sizeof *glogits);
    int *labels = malloc((size_t)c->batch * sizeof *labels);
    da_rng *rng = da_rng_new(2);
    if ((!opt && !fused) || !bits || !logits || !glogits || !labels || !rng)
        ex_die(1, "out of memory");
    for (long i = 0; i < (long)c->batch * N_BITS; i++)
        bits[i] = da_rng_uniform(rng) < 0.5;
    for (int b = 0; b < c->batch; b++)
        labels[b] = (int)(da_rng_uniform(rng) * N_CLASSES);
    double t0 = 0, c0 = 0, loss = 0;
    for (int step = -2; step < c->steps; step++) { /* two warm-up steps */
        if (step == 0) {
            t0 = ex_now();
            c0 = cpu_now();
        }
        if (opt)
            da_optim_zero_grad(opt);
        if (da_logicnet_forward(net, c->batch, bits, 0, logits) ||
            da_logicnet_cross_entropy(c->batch, N_CLASSES, logits, labels, &loss, glogits) ||
            (fused ? da_logicnet_adam_step(fused, glogits, NULL)
                   : da_logicnet_backward(net, glogits, NULL) || da_optim_step(opt)))
            ex_die(1, "training step: %s", da_last_error());
    }
    double dt = (ex_now() - t0) / c->steps;
    *cpu_out = (cpu_now() - c0) / c->steps;
    *loss_out = loss;
    da_rng_free(rng);
    free(bits);
    free(logits);
    free(glogits);
    free(labels);
    da_optim_free(opt);
    da_logicnet_adam_free(fused);
    da_logicnet_free(net);
    return dt;
}

static void usage(FILE *f)
{
    fputs("usage: bench_logic [--layers L] [--width W] [--batch B] [--steps N] "
          "[--threads T] [--precision f32|f64] [--optim fused|generic]\n", f);
}

int main(int argc, char **argv)
{
    ex_set_program_name("bench_logic");
    bench_cfg c = {6, 8000, 128, 20, 0, DA_F32, 1};
    const char *precision = NULL, *optim = "fused";
    const ex_option opts[] = {
        EX_OPT_INT("layers", &c.layers, 1, 64),
        EX_OPT_INT("width", &c.width, 10, 1000000),
        EX_OPT_INT("batch", &c.batch, 1, 100000),
        EX_OPT_INT("steps", &c.steps, 1, 1000000),
        EX_OPT_INT("threads", &c.threads, 1, 256),
        EX_OPT_STRING("precision", &precision),
        EX_OPT_STRING("optim", &optim),
    };
    ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
    int both = !precision;
    if (precision && strcmp(precision, "f32") && strcmp(precision, "f64"))
        ex_die(2, "--precision: f32 or f64");
    if (strcmp(optim, "fused") && strcmp(optim, "generic"))
        ex_die(2, "--optim: fused or generic");
    c.fused = !strcmp(optim, "fused");
    if (precision)
        c.precision = strcmp(precision, "f32") ? DA_F64 : DA_F32;
    if (c.width % N_CLASSES)
        ex_die(2, "--width must be a multiple of %d", N_CLASSES);
    for (int t = c.threads ? c.threads : 1; t <= (c.threads ? c.threads : 2); t++)
        for (int p = 0; p < 1 + both; p++) {
            if (both)
                c.precision = p ? DA_F32 : DA_F64;
            int used = ex_set_threads(t);
            double loss, cpu, dt = time_steps(&c, &loss, &cpu);
            double per_step = (double)c.batch * c.layers * c.width;
            printf("threads %d  %s  %s  %d x %d  batch %d  %.2f ms/step  %.0f samples/s  %.3g "
                   "neuron-samples/s  (%.3g per CPU-second; last loss %.4f)\n", used,
                   c.precision == DA_F32 ? "f32" : "f64", c.fused ? "fused" : "generic",
                   c.layers, c.width, c.batch, 1e3 * dt, c.batch / dt, per_step / dt,
                   per_step / cpu, loss);
            fflush(stdout);
        }
    return 0;
}
