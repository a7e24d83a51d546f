/* bench_compiled.c - end-to-end speed of a compiled logic gate network (issue 9: >= 1e6
 * MNIST images/s on one core): raw float32 pixels in, predictions out, on the calling
 * thread, in images per CPU second of the process (robust to other load).
 *  - the library evaluator da_logic_circuit_predict (binarization by the thresholds,
 *    gates, GroupSum popcount, argmax; its input check and scratch allocation included);
 *  - with --cc: the exported standalone C (da_logic_circuit_export_c) compiled with each
 *    given flag set and run in its --bench mode on the same images.
 * Predictions of both are checked against the hard mode (da_logicnet_predict) first.
 *
 * usage: bench_compiled --net NET [--dataset mnist|fashion] [--data DIR] [--n N]
 *                       [--rounds R] [--seconds S] [--cc "FLAGS"]... [--keep DIR] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "diffalg.h"

#define MAX_CC 8

static const char *const DATASETS[] = {"mnist", "fashion"};

typedef struct {
    const char *net, *data, *cc[MAX_CC], *keep;
    int dataset, n, rounds, n_cc;
    double seconds;
} bench_cfg;

static void usage(FILE *f)
{
    fputs("usage: bench_compiled --net NET [--dataset mnist|fashion] [--data DIR] [--n N]\n"
          "                      [--rounds R] [--seconds S] [--cc FLAGS]... [--keep DIR]\n"
          "Images per CPU second of the compiled evaluator (raw float pixels in,\n"
          "predictions out, one thread), and of the exported C built with each --cc.\n"
          "  --net      a saved network (experiments/logic --save)\n"
          "  --dataset  mnist (default; the 10,000 digits of DIR) or fashion (the 10,000\n"
          "             test images)\n"
          "  --data     data directory (default $DA_DATA_DIR or data/; fashion: the\n"
          "             Debian package's)\n"
          "  --n        images (default: all of the set)\n"
          "  --rounds   measurements, the best is reported (default 5)\n"
          "  --seconds  CPU seconds per measurement (default 1)\n"
          "  --cc       compiler flags for the exported C, e.g. \"-O2\" or\n"
          "             \"-O3 -march=native\" (repeatable, at most 8)\n"
          "  --keep     write the exported C and the images (x.f32) to DIR and keep them\n",
          f);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* images per CPU second of da_logic_circuit_predict: the best of c->rounds */
static double time_library(const bench_cfg *c, const da_logic_circuit *circ, const float *x,
                           int *pred)
{
    double best = 0;
    for (int r = 0; r < c->rounds; r++) {
        long reps = 0;
        double t0 = cpu_now(), dt;
        do {
            if (da_logic_circuit_predict(circ, c->n, x, pred))
                ex_die(1, "da_logic_circuit_predict: %s", da_last_error());
            reps++;
            dt = cpu_now() - t0;
        } while (dt < c->seconds);
        double rate = (double)c->n * reps / dt;
        best = rate > best ? rate : best;
    }
    return best;
}

static void write_file(const char *path, const void *p, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, size, f) != size || fclose(f))
        ex_die(1, "writing %s failed", path);
}

/* run cmd; its output lines as integers into out [n]; the number read */
static long read_ints(const char *cmd, long n, int *out)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        ex_die(1, "cannot run %s", cmd);
    char line[128];
    long count = 0;
    while (fgets(line, sizeof line, p))
        if (count < n && sscanf(line, "%d", &out[count]) == 1)
            count++;
    if (pclose(p))
        ex_die(1, "%s failed", cmd);
    return count;
}

/* the exported C built with flags: its predictions must equal hard [n]; images/s of
 * its --bench mode, the best of c->rounds */
static double time_exported(const bench_cfg *c, const char *dir, const char *flags,
                            const int *hard, int *pred)
{
    char cmd[1024], line[128];
    snprintf(cmd, sizeof cmd, "cc -std=c99 %s -DLOGICNET_MAIN -o %s/net %s/net.c", flags, dir,
             dir);
    if (system(cmd))
        ex_die(1, "%s failed", cmd);
    snprintf(cmd, sizeof cmd, "%s/net < %s/x.f32", dir, dir);
    if (read_ints(cmd, c->n, pred) != c->n || memcmp(pred, hard, (size_t)c->n * sizeof *pred))
        ex_die(1, "the exported C (%s) predicts differently from the hard mode", flags);
    snprintf(cmd, sizeof cmd, "%s/net --bench < %s/x.f32", dir, dir);
    double best = 0;
    for (int r = 0; r < c->rounds; r++) {
        FILE *p = popen(cmd, "r");
        double rate = 0;
        if (!p)
            ex_die(1, "cannot run %s", cmd);
        while (fgets(line, sizeof line, p))
            sscanf(line, "samples_per_s %lf", &rate);
        if (pclose(p) || rate <= 0)
            ex_die(1, "%s failed", cmd);
        best = rate > best ? rate : best;
    }
    return best;
}

static void parse(int argc, char **argv, bench_cfg *c)
{
    const char *cc = NULL;
    *c = (bench_cfg){.rounds = 5, .seconds = 1};
    const ex_option opts[] = {
        EX_OPT_STRING("net", &c->net),          EX_OPT_CHOICE("dataset", &c->dataset, DATASETS),
        EX_OPT_STRING("data", &c->data),        EX_OPT_INT("n", &c->n, 1, 1 << 24),
        EX_OPT_INT("rounds", &c->rounds, 1, 100), EX_OPT_DOUBLE("seconds", &c->seconds, 0.01, 60),
        EX_OPT_STRING("cc", &cc),               EX_OPT_STRING("keep", &c->keep)};
    /* --cc repeats: collect every occurrence before the table parser keeps the last */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--cc") && c->n_cc < MAX_CC)
            c->cc[c->n_cc++] = argv[++i];
    ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
    if (!c->net)
        ex_die(2, "--net NET is required");
    if (!c->data)
        c->data = c->dataset ? NULL : getenv("DA_DATA_DIR") ? getenv("DA_DATA_DIR") : "data";
}

int main(int argc, char **argv)
{
    ex_set_program_name(argv[0]);
    bench_cfg c;
    parse(argc, argv, &c);
    ex_set_threads(1);
    da_dataset *ds = c.dataset ? da_fashion_mnist_load(c.data, 0) : da_mnist_load(c.data);
    da_logicnet *net = da_logicnet_load(c.net);
    if (!ds || !net)
        ex_die(1, "%s", da_last_error());
    int n_in = ds->rows * ds->cols;
    if (net->n_inputs != n_in)
        ex_die(1, "%s has %d inputs, the images %d", c.net, net->n_inputs, n_in);
    if (!c.n || c.n > ds->n)
        c.n = ds->n;
    const float *x = ds->images;
    int *hard = malloc((size_t)c.n * sizeof *hard), *pred = malloc((size_t)c.n * sizeof *pred);
    da_logic_circuit *circ = da_logic_circuit_new(net);
    if (!hard || !pred || !circ)
        ex_die(1, "%s", circ ? "out of memory" : da_last_error());
    if (da_logicnet_predict(net, c.n, x, hard, NULL) || da_logic_circuit_predict(circ, c.n, x, pred))
        ex_die(1, "predicting: %s", da_last_error());
    if (memcmp(pred, hard, (size_t)c.n * sizeof *pred))
        ex_die(1, "the compiled evaluator predicts differently from the hard mode");
    da_logic_circuit_stats st = da_logic_circuit_get_stats(circ);
    printf("network   %s: %d inputs x %d thresholds, %d layers x %d, %d classes\n", c.net,
           net->n_inputs, net->n_thresholds, net->n_layers, net->width, net->n_classes);
    printf("circuit   %ld gates of %ld (and %ld, andnot %ld, xor %ld, or %ld)\n",
           st.gates_after, st.gates_before, st.n_and, st.n_andnot, st.n_xor, st.n_or);
    printf("images    %d (%s), predictions equal to the hard mode\n", c.n, DATASETS[c.dataset]);
    printf("library   %.4g images per CPU second (best of %d x %.2g s)\n",
           time_library(&c, circ, x, pred), c.rounds, c.seconds);
    if (c.n_cc) {
        char tmp[] = "/tmp/bench_compiled.XXXXXX", path[600];
        const char *dir = c.keep ? c.keep : mkdtemp(tmp);
        if (!dir)
            ex_die(1, "cannot create a temporary directory");
        snprintf(path, sizeof path, "%s/net.c", dir);
        if (da_logic_circuit_export_c(circ, path))
            ex_die(1, "exporting C: %s", da_last_error());
        snprintf(path, sizeof path, "%s/x.f32", dir);
        write_file(path, x, (size_t)c.n * n_in * sizeof *x);
        for (int k = 0; k < c.n_cc; k++)
            printf("exported  %.4g images per CPU second (cc %s, best of %d)\n",
                   time_exported(&c, dir, c.cc[k], hard, pred), c.cc[k], c.rounds);
        if (!c.keep) {
            const char *names[] = {"net.c", "net", "x.f32"};
            for (int i = 0; i < 3; i++) {
                snprintf(path, sizeof path, "%s/%s", dir, names[i]);
                unlink(path);
            }
            rmdir(dir);
        }
    }
    da_logic_circuit_free(circ);
    da_logicnet_free(net);
    da_dataset_free(ds);
    free(hard);
    free(pred);
    return 0;
}
