/* logic.c - differentiable logic gate networks (difflogic, Petersen et al. NeurIPS 2022)
 * on MONK-1/2/3, MNIST (the 10,000 digits of data/, a seeded 8,000 / 2,000 split) and
 * Fashion-MNIST (60,000 train / 10,000 test): binarized inputs, n_layers x width logic
 * layers, GroupSum(classes, tau), softmax cross-entropy, Adam (difflogic's setup);
 * on the images optionally convolutional stages first (--arch conv:..., logic tree
 * convolutions and OR pooling of the NeurIPS 2024 paper) and shift augmentation.
 *
 * Output: progress on stderr; JSON lines (first the configuration and the data split,
 * then per evaluation: epoch, seconds, train_loss, test_acc_soft (training-mode
 * relaxation), test_acc_hard (argmax gates, difflogic's eval mode)); a summary table
 * with the training throughput and the compiled (bit-parallel) evaluator on stdout.
 * --checkpoint writes the state after every epoch atomically; --resume continues a
 * killed run bit-exactly; --save writes the trained network (lib/logicnet.h format). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "diffalg.h"
#include "logic_compile.h"

enum { DS_MONK1, DS_MONK2, DS_MONK3, DS_MNIST, DS_FASHION };
static const char *const dataset_names[] = {"monk1", "monk2", "monk3", "mnist", "fashion"};
static const char *const conn_names[] = {"random", "unique"};
static const char *const precision_names[] = {"f64", "f32"};

typedef struct {
    int dataset, layers, width, thresholds, epochs, batch, threads, resume, connections;
    int residual_init, eval_every, shift, f32;
    double tau, lr, grad_factor;
    unsigned long seed, split_seed;
    const char *out, *data_dir, *checkpoint, *save, *arch, *export_c, *export_v, *load;
    int n_conv;
    da_logic_conv_spec conv[DA_LOGICNET_MAX_CONV];
} config;

/* per-dataset defaults (0 / NULL in config = take these) */
static const struct {
    const char *arch;
    double tau, lr, grad_factor;
    int epochs, batch, thresholds, shift;
} defaults[] = {
    [DS_MONK1] = {"dense:L=4,W=128", 2, 0.01, 1, 600, 32, 1, 0},
    [DS_MONK2] = {"dense:L=4,W=128", 2, 0.01, 1, 600, 32, 1, 0},
    [DS_MONK3] = {"dense:L=4,W=128", 2, 0.01, 1, 600, 32, 1, 0},
    [DS_MNIST] = {"dense:L=6,W=8000", 10, 0.03, 2, 30, 100, 3, 1},
    [DS_FASHION] = {"dense:L=6,W=8000", 10, 0.03, 2, 30, 100, 7, 0},
};

static void usage(FILE *f)
{
    fputs("usage: logic --dataset monk1|monk2|monk3|mnist|fashion [--arch dense:L=6,W=8000]\n"
          "             [--tau T] [--epochs E] [--batch B] [--lr LR] [--seed S]\n"
          "             [--split-seed S] [--thresholds N] [--connections random|unique]\n"
          "             [--grad-factor F] [--residual-init] [--shift S] [--eval-every E]\n"
          "             [--out FILE.jsonl]\n"
          "             [--checkpoint FILE [--resume]] [--save NET] [--threads T]\n"
          "             [--export-c FILE.c] [--export-verilog FILE.v] [--load NET]\n"
          "             [--precision f64|f32] [--data DIR] [--help]\n"
          "Trains a differentiable logic gate network (Adam, softmax cross-entropy) and\n"
          "reports soft and hard (argmax gate) test accuracy.\n"
          "  --dataset     monk1..3: 124/169/122 training rows drawn by --split-seed (MONK-3\n"
          "                with 5% label noise), all 432 rows as test; mnist: the 10,000\n"
          "                digits of DIR (default $DA_DATA_DIR or data/), 8,000 train / 2,000\n"
          "                test by --split-seed; fashion: Fashion-MNIST 60,000 / 10,000\n"
          "  --arch        dense:L=<layers>,W=<neurons per layer> (defaults: monk\n"
          "                dense:L=4,W=128; mnist, fashion dense:L=6,W=8000), or for mnist\n"
          "                and fashion conv:<stage>-<stage>-...,L=<layers>,W=<neurons>:\n"
          "                stages on the image (one channel per threshold), then dense\n"
          "                layers; a stage is tree<K>[x<size>][d<depth>][s<stride>][p<pad>]\n"
          "                (logic tree convolution, K kernels, defaults size 3, depth 3,\n"
          "                stride 1, pad (size-1)/2) or or[<size>] (OR pooling, window =\n"
          "                stride = size, default 2); e.g. conv:tree16-or-tree32-or,L=2,W=4000\n"
          "  --tau         GroupSum temperature (default 2 monk, 10 mnist/fashion)\n"
          "  --epochs      passes over the training set (default 600 monk, 30 mnist,\n"
          "                30 fashion)\n"
          "  --batch       minibatch size (default 32 monk, 100 otherwise)\n"
          "  --lr          Adam learning rate (default 0.01 monk, 0.03 mnist, fashion)\n"
          "  --thresholds  input bits per feature: x > (t+1)/(N+1), t < N (default 1;\n"
          "                mnist 3, fashion 7)\n"
          "  --connections random (default) or unique\n"
          "  --grad-factor gradient scale at every layer input (default 1 monk, 2 mnist,\n"
          "                fashion)\n"
          "  --residual-init  gate 'a' logit 5, others 0 (default: N(0,1) logits)\n"
          "  --shift       augment: move every training image by a random (dy, dx) in\n"
          "                [-S, S]^2 pixels each time it is drawn (default 1 mnist,\n"
          "                0 otherwise)\n"
          "  --eval-every  evaluate every E epochs and at the end (default: monk 100, else 1)\n"
          "  --seed        connections, initialization, batch order (default 1)\n"
          "  --split-seed  the data split (default 0)\n"
          "  --out         JSON lines: configuration, then one line per evaluation\n"
          "  --checkpoint  write the training state to FILE after every epoch\n"
          "  --resume      continue from FILE (from FILE.prev if FILE is damaged)\n"
          "  --save        write the trained network to NET\n"
          "  --export-c    write the compiled network as standalone C (cc -O2\n"
          "                -DLOGICNET_MAIN FILE.c gives a program; see logic_compile.h)\n"
          "  --export-verilog  write it as a combinational Verilog module 'logicnet'\n"
          "  --load        evaluate (and export) a saved network instead of training\n"
          "  --threads     OpenMP threads (default: OMP_NUM_THREADS or all)\n"
          "  --precision   f32 (default) or f64: the training kernels' activations and\n"
          "                gradients (f64: half the throughput)\n", f);
}

/* a number after *p (advanced), in [0, 100000] */
static int arch_number(const config *c, const char **p)
{
    char *end;
    long v = strtol(*p, &end, 10);
    if (end == *p || !isdigit((unsigned char)**p) || v > 100000)
        ex_die(2, "--arch '%s': expected a number at '%s'", c->arch, *p);
    *p = end;
    return (int)v;
}

/* the stages of conv:<stage>-...; returns the rest (",L=..,W=..") */
static const char *parse_stages(config *c, const char *p)
{
    for (c->n_conv = 0;; p++) {
        if (c->n_conv == DA_LOGICNET_MAX_CONV)
            ex_die(2, "--arch '%s': at most %d stages", c->arch, DA_LOGICNET_MAX_CONV);
        da_logic_conv_spec *sp = &c->conv[c->n_conv++];
        *sp = (da_logic_conv_spec){.kind = DA_LOGIC_CONV_TREE, .depth = 3, .size = 3,
                                   .stride = 1, .pad = -1};
        if (!strncmp(p, "tree", 4)) {
            p += 4;
            sp->out_c = arch_number(c, &p);
            for (char key; (key = *p) && strchr("xdsp", key);) {
                p++;
                int v = arch_number(c, &p);
                *(key == 'x' ? &sp->size : key == 'd' ? &sp->depth : key == 's' ? &sp->stride
                                                                             : &sp->pad) = v;
            }
            if (sp->pad < 0)
                sp->pad = (sp->size - 1) / 2;
        } else if (!strncmp(p, "or", 2)) {
            p += 2;
            sp->kind = DA_LOGIC_CONV_OR_POOL;
            sp->size = sp->stride = isdigit((unsigned char)*p) ? arch_number(c, &p) : 2;
            sp->pad = 0;
        } else {
            ex_die(2, "--arch '%s': expected a stage tree<K>... or or<size> at '%s'", c->arch, p);
        }
        if (*p != '-')
            return p;
    }
}

static void parse_arch(config *c)
{
    int L, W, used = 0;
    const char *rest = c->arch;
    if (!strncmp(c->arch, "conv:", 5)) {
        if (c->dataset <= DS_MONK3)
            ex_die(2, "--arch conv:... needs an image data set (mnist or fashion)");
        rest = parse_stages(c, c->arch + 5);
        if (sscanf(rest, ",L=%d,W=%d%n", &L, &W, &used) != 2)
            used = 0;
    } else if (sscanf(c->arch, "dense:L=%d,W=%d%n", &L, &W, &used) != 2) {
        used = 0;
    }
    if (!used || rest[used] ||
        L < 1 || L > DA_LOGICNET_MAX_LAYERS || W < 1 || W > DA_LOGICNET_MAX_WIDTH)
        ex_die(2, "--arch '%s': expected dense:L=<1..%d>,W=<neurons> or conv:<stages>,L=..,W=.."
               " (see --help)", c->arch, DA_LOGICNET_MAX_LAYERS);
    c->layers = L;
    c->width = W;
}

static config parse_args(int argc, char **argv)
{
    config c = {.dataset = -1, .seed = 1, .shift = -1, .f32 = 1};
    const ex_option opts[] = {
        EX_OPT_CHOICE("dataset", &c.dataset, dataset_names),
        EX_OPT_STRING("arch", &c.arch),
        EX_OPT_DOUBLE("tau", &c.tau, 1e-6, 1e9),
        EX_OPT_INT("epochs", &c.epochs, 1, 1000000),
        EX_OPT_INT("batch", &c.batch, 1, 100000),
        EX_OPT_DOUBLE("lr", &c.lr, 0, 10),
        EX_OPT_SEED("seed", &c.seed),
        EX_OPT_SEED("split-seed", &c.split_seed),
        EX_OPT_INT("thresholds", &c.thresholds, 1, DA_LOGICNET_MAX_THRESHOLDS),
        EX_OPT_CHOICE("connections", &c.connections, conn_names),
        EX_OPT_DOUBLE("grad-factor", &c.grad_factor, 1e-6, 1e6),
        EX_OPT_FLAG("residual-init", &c.residual_init),
        EX_OPT_INT("eval-every", &c.eval_every, 1, 1000000),
        EX_OPT_STRING("out", &c.out),
        EX_OPT_INT("shift", &c.shift, 0, 8),
        EX_OPT_STRING("checkpoint", &c.checkpoint),
        EX_OPT_FLAG("resume", &c.resume),
        EX_OPT_STRING("save", &c.save),
        EX_OPT_THREADS(&c.threads),
        EX_OPT_STRING("data", &c.data_dir),
        EX_OPT_STRING("export-c", &c.export_c),
        EX_OPT_STRING("export-verilog", &c.export_v),
        EX_OPT_STRING("load", &c.load),
        EX_OPT_CHOICE("precision", &c.f32, precision_names),
    };
    ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
    if (c.dataset < 0)
        ex_die(2, "--dataset is required (see --help)");
    ex_check_resume(c.resume, c.checkpoint);
    if (c.load && (c.resume || c.checkpoint))
        ex_die(2, "--load evaluates a saved network: no --checkpoint / --resume");
    if (!c.arch)
        c.arch = defaults[c.dataset].arch;
    parse_arch(&c);
    if (!c.tau)
        c.tau = defaults[c.dataset].tau;
    if (!c.lr)
        c.lr = defaults[c.dataset].lr;
    if (!c.grad_factor)
        c.grad_factor = defaults[c.dataset].grad_factor;
    if (c.shift < 0)
        c.shift = defaults[c.dataset].shift;
    if (c.shift && c.dataset <= DS_MONK3)
        ex_die(2, "--shift moves images: mnist or fashion only");
    if (!c.epochs)
        c.epochs = defaults[c.dataset].epochs;
    if (c.load)
        c.epochs = 0;
    if (!c.batch)
        c.batch = defaults[c.dataset].batch;
    if (!c.thresholds)
        c.thresholds = defaults[c.dataset].thresholds;
    if (!c.eval_every)
        c.eval_every = c.dataset <= DS_MONK3 ? 100 : 1;
    return c;
}

/* ---- data: a view is a float matrix and the rows of it that belong to a set ---- */

typedef struct {
    const float *x; /* [*][n_inputs] */
    const int *y;   /* [*] */
    int *idx;       /* [n] rows of x */
    int n;
} view;

typedef struct {
    int n_inputs, n_classes, image_h, image_w; /* image_h = 0: not images (MONK) */
    view train, test;
    da_monk *monk;
    da_dataset *ds[2];
    da_split *split;
    char desc[160];
} data;

static int *iota_new(int n)
{
    int *a = malloc((size_t)n * sizeof *a);
    if (!a)
        ex_die(1, "out of memory");
    for (int i = 0; i < n; i++)
        a[i] = i;
    return a;
}

static void load_data(const config *c, data *d)
{
    memset(d, 0, sizeof *d);
    if (c->dataset <= DS_MONK3) {
        if (!(d->monk = da_monk_new(c->dataset + 1, c->split_seed)))
            ex_die(1, "MONK: %s", da_last_error());
        d->n_inputs = DA_MONK_N_INPUTS;
        d->n_classes = 2;
        d->train = (view){d->monk->train.x, d->monk->train.y, iota_new(d->monk->train.n),
                          d->monk->train.n};
        d->test = (view){d->monk->test.x, d->monk->test.y, iota_new(DA_MONK_N_ALL),
                         DA_MONK_N_ALL};
        snprintf(d->desc, sizeof d->desc, "MONK-%d from its rules, %d train (split seed %lu%s) "
                 "/ all 432 test", c->dataset + 1, d->train.n, c->split_seed,
                 c->dataset == DS_MONK3 ? ", 6 labels flipped" : "");
        return;
    }
    if (c->dataset == DS_MNIST) {
        d->ds[0] = da_mnist_load(c->data_dir);
        if (!d->ds[0])
            ex_die(1, "%s (run scripts/setup to fetch the digits)", da_last_error());
        da_rng *r = da_rng_new(c->split_seed);
        d->split = r ? da_split_new(d->ds[0]->n, 8000, 2000, r) : NULL;
        da_rng_free(r);
        if (!d->split)
            ex_die(1, "split: %s", da_last_error());
        d->train = (view){d->ds[0]->images, d->ds[0]->labels, d->split->train, 8000};
        d->test = (view){d->ds[0]->images, d->ds[0]->labels, d->split->test, 2000};
        snprintf(d->desc, sizeof d->desc, "MNIST digits, 8000 train / 2000 test, split seed %lu",
                 c->split_seed);
    } else {
        for (int t = 0; t < 2; t++)
            if (!(d->ds[t] = da_fashion_mnist_load(c->data_dir, 1 - t)))
                ex_die(1, "Fashion-MNIST: %s (Debian package dataset-fashion-mnist)",
                       da_last_error());
        d->train = (view){d->ds[0]->images, d->ds[0]->labels, iota_new(d->ds[0]->n), d->ds[0]->n};
        d->test = (view){d->ds[1]->images, d->ds[1]->labels, iota_new(d->ds[1]->n), d->ds[1]->n};
        snprintf(d->desc, sizeof d->desc, "Fashion-MNIST, %d train / %d test (fixed)",
                 d->train.n, d->test.n);
    }
    d->n_inputs = d->ds[0]->rows * d->ds[0]->cols;
    d->image_h = d->ds[0]->rows;
    d->image_w = d->ds[0]->cols;
    d->n_classes = 10;
}

static void free_data(data *d)
{
    if (!d->split) {
        free(d->train.idx);
        free(d->test.idx);
    }
    da_split_free(d->split);
    da_monk_free(d->monk);
    da_dataset_free(d->ds[0]);
    da_dataset_free(d->ds[1]);
}

/* x [count][n_inputs] and y [count] of rows idx[0..count-1] of v */
static void gather(const view *v, int n_inputs, const int *idx, int count, float *x, int *y)
{
    for (int i = 0; i < count; i++) {
        memcpy(x + (size_t)i * n_inputs, v->x + (size_t)idx[i] * n_inputs,
               (size_t)n_inputs * sizeof *x);
        y[i] = v->y[idx[i]];
    }
}

/* ---- training and evaluation ---- */

typedef struct {
    float *x;       /* [batch][n_inputs] */
    float *shifted; /* [n_inputs] scratch of --shift */
    int *y;         /* [batch] */
    double *bits;   /* [batch][n_bits] */
    double *logits; /* [batch][k] */
    double *glogits;
    int *pred;
} buffers;

/* data augmentation: every image of x [count][h][w] moved by a random (dy, dx) in
 * [-s, s]^2, zero fill; tmp [h][w] scratch */
static void shift_images(const data *d, int s, int count, float *x, float *tmp, da_rng *rng)
{
    int h = d->image_h, w = d->image_w;
    for (int i = 0; i < count; i++) {
        float *im = x + (size_t)i * h * w;
        int dy = (int)da_rng_int(rng, 2UL * s + 1) - s, dx = (int)da_rng_int(rng, 2UL * s + 1) - s;
        for (int y = 0; y < h; y++)
            for (int z = 0; z < w; z++) {
                int sy = y - dy, sz = z - dx;
                tmp[y * w + z] = sy >= 0 && sy < h && sz >= 0 && sz < w ? im[sy * w + sz] : 0;
            }
        memcpy(im, tmp, (size_t)h * w * sizeof *im);
    }
}

static double train_epoch(const config *c, const data *d, da_logicnet *net,
                          da_logicnet_adam *opt, buffers *B, int *order, da_rng *rng,
                          ex_progress *bar, long *step, double *train_seconds)
{
    double sum = 0, t0 = ex_now();
    int batches = 0;
    char metrics[64];
    memcpy(order, d->train.idx, (size_t)d->train.n * sizeof *order);
    da_rng_shuffle(rng, order, d->train.n);
    for (int off = 0; off < d->train.n; off += c->batch) {
        int count = d->train.n - off < c->batch ? d->train.n - off : c->batch;
        double loss;
        gather(&d->train, d->n_inputs, order + off, count, B->x, B->y);
        if (c->shift > 0)
            shift_images(d, c->shift, count, B->x, B->shifted, rng);
        if (da_logicnet_binarize(net, count, B->x, B->bits) ||
            da_logicnet_forward(net, count, B->bits, 0, B->logits) ||
            da_logicnet_cross_entropy(count, d->n_classes, B->logits, B->y, &loss, B->glogits) ||
            da_logicnet_adam_step(opt, B->glogits, NULL))
            ex_die(1, "step %ld: %s", *step + 1, da_last_error());
        sum += loss;
        batches++;
        ++*step;
        snprintf(metrics, sizeof metrics, "loss %.4f", sum / batches);
        ex_progress_update(bar, *step, metrics);
    }
    *train_seconds += ex_now() - t0;
    return sum / batches;
}

/* test accuracy in training mode (soft) and hard mode (argmax gates) */
static void evaluate(const config *c, const data *d, da_logicnet *net, buffers *B,
                     double *acc_soft, double *acc_hard)
{
    long soft = 0, hard = 0;
    for (int off = 0; off < d->test.n; off += c->batch) {
        int count = d->test.n - off < c->batch ? d->test.n - off : c->batch;
        gather(&d->test, d->n_inputs, d->test.idx + off, count, B->x, B->y);
        if (da_logicnet_binarize(net, count, B->x, B->bits) ||
            da_logicnet_forward(net, count, B->bits, 0, B->logits) ||
            da_logicnet_predict(net, count, B->x, B->pred, NULL))
            ex_die(1, "evaluation: %s", da_last_error());
        for (int i = 0; i < count; i++) {
            const double *z = B->logits + (size_t)i * d->n_classes;
            int best = 0;
            for (int k = 1; k < d->n_classes; k++)
                if (z[k] > z[best])
                    best = k;
            soft += best == B->y[i];
            hard += B->pred[i] == B->y[i];
        }
    }
    *acc_soft = (double)soft / d->test.n;
    *acc_hard = (double)hard / d->test.n;
}

/* ---- checkpoints: gate logits (w0, w1, ...), optimizer state, rng, epoch, times ---- */

static ex_run_state run_state(da_logicnet *net, void *optim, size_t optim_size, da_rng *rng,
                              int epoch, double times[2])
{
    return (ex_run_state){.params = net->params, .n_params = net->n_params, .prefix = "w",
                          .optim = optim, .optim_size = optim_size, .rng = rng,
                          .counter = "epoch", .value = epoch, .clock = "times",
                          .seconds = times, .n_clock = 2};
}

static void save_state(const char *path, da_logicnet *net, const da_logicnet_adam *opt,
                       da_rng *rng, int epoch, double times[2])
{
    size_t n = da_logicnet_adam_state_size(opt);
    void *st = malloc(n);
    if (!st || da_logicnet_adam_state_save(opt, st, n))
        ex_die(1, "writing the checkpoint: %s", st ? da_last_error() : "out of memory");
    ex_run_state s = run_state(net, st, n, rng, epoch, times);
    ex_run_state_save(path, &s);
    free(st);
}

static int load_state(const char *path, da_logicnet *net, da_logicnet_adam *opt, da_rng *rng,
                      double times[2])
{
    size_t n = da_logicnet_adam_state_size(opt);
    void *st = malloc(n);
    if (!st)
        ex_die(1, "resuming: out of memory");
    ex_run_state s = run_state(net, st, n, rng, 0, times);
    ex_run_state_load(path, &s);
    if (da_logicnet_adam_state_load(opt, st, n))
        ex_die(1, "resuming: %s", da_last_error());
    free(st);
    return (int)s.value;
}

/* gate evaluations per sample: tree gates at every position, dense neurons */
static long gates_per_sample(const da_logicnet *net)
{
    long n = (long)net->n_layers * net->width;
    for (int s = 0; s < net->n_conv; s++)
        n += da_logic_conv_out_size(net->conv[s]) * net->conv[s]->n_gates;
    return n;
}

/* the --arch string of a loaded network */
static void describe_arch(const da_logicnet *net, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s", net->n_conv ? "conv:" : "dense:L=");
    for (int s = 0; s < net->n_conv; s++) {
        const da_logic_conv_spec *sp = &net->conv[s]->spec;
        if (sp->kind == DA_LOGIC_CONV_TREE)
            n += snprintf(buf + n, size - n, "%stree%dx%dd%ds%dp%d", s ? "-" : "", sp->out_c,
                          sp->size, sp->depth, sp->stride, sp->pad);
        else
            n += snprintf(buf + n, size - n, "%sor%d", s ? "-" : "", sp->size);
    }
    snprintf(buf + n, size - n, "%s%d,W=%d", net->n_conv ? ",L=" : "", net->n_layers,
             net->width);
}

static void write_config(ex_json *j, const config *c, const data *d, const da_logicnet *net,
                         int threads, int resume_epoch)
{
    ex_json_begin(j);
    ex_json_str(j, "program", "logic");
    ex_json_str(j, "dataset", dataset_names[c->dataset]);
    ex_json_str(j, "data", d->desc);
    ex_json_str(j, "arch", c->arch);
    ex_json_int(j, "n_bits", net->n_bits);
    ex_json_int(j, "thresholds", c->thresholds);
    ex_json_int(j, "neurons", (long)net->n_layers * net->width);
    ex_json_int(j, "gates_per_sample", gates_per_sample(net));
    ex_json_str(j, "connections", conn_names[c->connections]);
    ex_json_num(j, "tau", c->tau);
    ex_json_num(j, "grad_factor", c->grad_factor);
    ex_json_int(j, "residual_init", c->residual_init);
    ex_json_int(j, "shift", c->shift);
    ex_json_int(j, "epochs", c->epochs);
    ex_json_int(j, "batch", c->batch);
    ex_json_str(j, "optimizer", "adam");
    ex_json_num(j, "lr", c->lr);
    ex_json_str(j, "dtype", precision_names[c->f32]);
    ex_json_int(j, "seed", (long)c->seed);
    ex_json_int(j, "threads", threads);
    if (d->split) {
        ex_json_split(j, d->split, c->split_seed);
    } else {
        ex_json_int(j, "split_seed", (long)c->split_seed);
        ex_json_int(j, "split_n_train", d->train.n);
        ex_json_int(j, "split_n_test", d->test.n);
    }
    if (resume_epoch)
        ex_json_int(j, "resumed_after_epoch", resume_epoch);
    ex_json_end(j);
}

/* the compiled bit-parallel evaluator on the test set: gate counts, agreement with the
 * hard mode, images per second on the calling thread; the last JSON line (the final
 * result) repeats the final metrics next to the compiled ones */
static void report_compiled(const config *c, const data *d, const da_logicnet *net,
                            ex_summary *s, ex_json *j, const double final[3],
                            double train_rate)
{
    double acc_hard = final[2];
    da_logic_circuit *circ = da_logic_circuit_new(net);
    if (!circ)
        ex_die(1, "compiling the network: %s", da_last_error());
    if (c->export_c && da_logic_circuit_export_c(circ, c->export_c))
        ex_die(1, "exporting C: %s", da_last_error());
    if (c->export_v && da_logic_circuit_export_verilog(circ, "logicnet", c->export_v))
        ex_die(1, "exporting Verilog: %s", da_last_error());
    int n = d->test.n, *pred = malloc((size_t)n * sizeof *pred), *y = malloc((size_t)n * sizeof *y);
    float *x = malloc((size_t)n * d->n_inputs * sizeof *x);
    if (!pred || !y || !x)
        ex_die(1, "out of memory");
    gather(&d->test, d->n_inputs, d->test.idx, n, x, y);
    /* single-threaded: process CPU time, robust to other load on the machine */
    clock_t t0 = clock();
    int reps = 0;
    double cpu;
    do {
        if (da_logic_circuit_predict(circ, n, x, pred))
            ex_die(1, "compiled evaluation: %s", da_last_error());
        reps++;
        cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
    } while (cpu < 0.5);
    double rate = (double)n * reps / cpu;
    long correct = 0;
    for (int i = 0; i < n; i++)
        correct += pred[i] == y[i];
    da_logic_circuit_stats st = da_logic_circuit_get_stats(circ);
    ex_summary_add(s, "compiled gates", "%ld of %ld after dead-gate elimination and folding",
                   st.gates_after, st.gates_before);
    ex_summary_add(s, "compiled test_acc", "%.4f (hard mode %.4f)", (double)correct / n,
                   acc_hard);
    ex_summary_add(s, "compiled speed", "%.3g samples per CPU second, 1 thread (float pixels "
                   "to predictions)", rate);
    ex_json_begin(j);
    ex_json_int(j, "epoch", c->epochs);
    ex_json_num(j, "train_loss", final[0]);
    ex_json_num(j, "test_acc_soft", final[1]);
    ex_json_num(j, "test_acc_hard", final[2]);
    ex_json_num(j, "train_samples_per_s", train_rate);
    ex_json_int(j, "compiled_gates_before", st.gates_before);
    ex_json_int(j, "compiled_gates_after", st.gates_after);
    ex_json_num(j, "compiled_test_acc", (double)correct / n);
    ex_json_num(j, "compiled_samples_per_s", rate);
    ex_json_end(j);
    free(pred);
    free(y);
    free(x);
    da_logic_circuit_free(circ);
}

int main(int argc, char **argv)
{
    ex_set_program_name(argv[0]);
    config c = parse_args(argc, argv);
    int threads = ex_set_threads(c.threads);
    data d;
    load_data(&c, &d);
    da_logicnet_cfg ncfg = da_logicnet_default_cfg(d.n_inputs, c.layers, c.width, d.n_classes);
    ncfg.n_thresholds = c.thresholds;
    ncfg.tau = c.tau;
    ncfg.connections = c.connections;
    ncfg.grad_factor = c.grad_factor;
    ncfg.residual_init = c.residual_init;
    ncfg.seed = c.seed;
    ncfg.n_conv = c.n_conv;
    ncfg.conv = c.conv;
    ncfg.image_h = d.image_h;
    ncfg.image_w = d.image_w;
    da_logicnet *net = c.load ? da_logicnet_load(c.load) : da_logicnet_new(&ncfg);
    if (!net)
        ex_die(1, "%s the network: %s", c.load ? "loading" : "building", da_last_error());
    if (net->n_inputs != d.n_inputs || net->n_classes != d.n_classes)
        ex_die(1, "%s: %d inputs and %d classes, the data set has %d and %d", c.load,
               net->n_inputs, net->n_classes, d.n_inputs, d.n_classes);
    if (c.load) { /* describe the loaded network */
        static char arch[640];
        describe_arch(net, arch, sizeof arch);
        c.arch = arch;
        c.layers = net->n_layers;
        c.width = net->width;
        c.tau = net->tau;
        c.thresholds = net->n_thresholds;
    }
    if (da_logicnet_set_precision(net, c.f32 ? DA_F32 : DA_F64))
        ex_die(1, "%s", da_last_error());
    da_optim_cfg ocfg = da_adam_cfg(c.lr);
    da_logicnet_adam *opt = da_logicnet_adam_new(net, &ocfg); /* fused backward + Adam */
    da_rng *rng = da_rng_new(c.seed + 1000003UL);
    int k = d.n_classes, bmax = c.batch;
    buffers B = {malloc((size_t)bmax * d.n_inputs * sizeof(float)),
                 malloc((size_t)d.n_inputs * sizeof(float)), malloc((size_t)bmax * sizeof(int)),
                 malloc((size_t)bmax * net->n_bits * sizeof(double)),
                 malloc((size_t)bmax * k * sizeof(double)), malloc((size_t)bmax * k * sizeof(double)),
                 malloc((size_t)bmax * sizeof(int))};
    int *order = malloc((size_t)d.train.n * sizeof *order);
    if (!opt || !rng || !B.x || !B.shifted || !B.y || !B.bits || !B.logits || !B.glogits || !B.pred || !order)
        ex_die(1, "setup: %s", da_last_error());
    double times[2] = {0, 0}; /* wall seconds, training-step seconds */
    int start = c.resume ? load_state(c.checkpoint, net, opt, rng, times) : 0;
    ex_json *j = ex_json_open(c.out, c.resume);
    if (!j)
        exit(1);
    if (start < c.epochs) /* resumed at the end: the file already ends with the result */
        write_config(j, &c, &d, net, threads, start);
    long neurons = gates_per_sample(net);
    ex_log("logic: %s; %s, %d bits, %ld gates, tau %g, batch %d, Adam lr %g, %d threads%s",
           d.desc, c.arch, net->n_bits, neurons, c.tau, c.batch, c.lr, threads,
           start ? ", resumed" : "");
    long steps_per_epoch = (d.train.n + c.batch - 1) / c.batch, step = start * steps_per_epoch;
    ex_progress bar = {0};
    if (c.epochs > start)
        ex_progress_start(&bar, "train", steps_per_epoch * c.epochs);
    bar.t0 -= times[0];
    double t0 = ex_now() - times[0], train_loss = 0, acc_soft = 0, acc_hard = 0;
    for (int epoch = start + 1; epoch <= c.epochs; epoch++) {
        train_loss = train_epoch(&c, &d, net, opt, &B, order, rng, &bar, &step, &times[1]);
        times[0] = ex_now() - t0;
        if (epoch % c.eval_every == 0 || epoch == c.epochs) {
            evaluate(&c, &d, net, &B, &acc_soft, &acc_hard);
            times[0] = ex_now() - t0;
            ex_log("epoch %d/%d  train_loss %.4f  test_acc_soft %.4f  test_acc_hard %.4f  "
                   "%.1f s", epoch, c.epochs, train_loss, acc_soft, acc_hard, times[0]);
            ex_json_begin(j);
            ex_json_int(j, "epoch", epoch);
            ex_json_num(j, "seconds", times[0]);
            ex_json_num(j, "train_loss", train_loss);
            ex_json_num(j, "test_acc_soft", acc_soft);
            ex_json_num(j, "test_acc_hard", acc_hard);
            ex_json_end(j);
        }
        if (c.checkpoint)
            save_state(c.checkpoint, net, opt, rng, epoch, times);
    }
    if (c.epochs > start)
        ex_progress_end(&bar);
    if (start >= c.epochs)
        evaluate(&c, &d, net, &B, &acc_soft, &acc_hard);
    if (c.save && da_logicnet_save(net, c.save))
        ex_die(1, "saving the network: %s", da_last_error());
    long trained = (long)c.epochs * d.train.n; /* times[1] covers every epoch */
    ex_summary s = {0};
    ex_summary_add(&s, "network", "%s, %d input bits (%d thresholds), %ld gates per sample, tau %g",
                   c.arch, net->n_bits, c.thresholds, neurons, c.tau);
    ex_summary_add(&s, "data", "%s", d.desc);
    ex_summary_add(&s, "training", "%d epochs, batch %d, Adam lr %g, seed %lu", c.epochs,
                   c.batch, c.lr, c.seed);
    ex_summary_add(&s, "final train_loss", "%.4f", train_loss);
    ex_summary_add(&s, "final test_acc_soft", "%.4f", acc_soft);
    ex_summary_add(&s, "final test_acc_hard", "%.4f", acc_hard);
    double rate = times[1] > 0 ? trained / times[1] : 0, final[3] = {train_loss, acc_soft, acc_hard};
    if (rate > 0)
        ex_summary_add(&s, "training speed", "%.0f samples/s, %.3g neuron-samples/s (%d threads)",
                       rate, rate * neurons, threads);
    report_compiled(&c, &d, net, &s, j, final, rate);
    ex_summary_add(&s, "wall time", "%.1f s on %d threads", ex_now() - t0, threads);
    ex_summary_print(&s, stdout);
    ex_json_close(j);
    free(B.x);
    free(B.shifted);
    free(B.y);
    free(B.bits);
    free(B.logits);
    free(B.glogits);
    free(B.pred);
    free(order);
    da_logicnet_adam_free(opt);
    da_rng_free(rng);
    da_logicnet_free(net);
    free_data(&d);
    return 0;
}
