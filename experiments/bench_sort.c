/* bench_sort.c - forward + backward time of differentiable ranking losses at a batch of
 * scores (default 128 rows of n), against PyTorch.
 *
 * Each method row computes the mean loss over the batch and d loss / d scores on the
 * same inputs as experiments/bench_sort_torch.py (a shared 64-bit LCG: scores from seed
 * 1000 + n, targets from seed 2000 + n, uniform in [-1, 1)). Times are medians over
 * repeated runs after one warm-up run. With --torch FILE (the JSON lines written by
 * bench_sort_torch.py --out FILE) the table gets the PyTorch times and the ratios
 * torch / diffalg; the losses printed by both sides agree (same inputs, same math).
 *
 * Methods: the sorting network ranking loss (diffsort: odd-even and bitonic, cauchy
 * sigmoid, BCE against the true permutation matrix). Other ranking losses add a row
 * to METHODS below (setup / loss / teardown). */
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "diffalg.h"

/* ---- methods ---- */

typedef struct {
    const char *name;    /* JSON "method", as in bench_sort_torch.py */
    int max_n;           /* practical limit of one forward+backward at batch 128 */
    void *(*setup)(int n, double steepness);
    int (*loss)(void *state, int batch, const double *x, const double *targets,
                double *loss, double *grad);
    void (*teardown)(void *state);
} bench_method;

static void *setup_odd_even(int n, double s)
{
    return da_sortnet_new(DA_SORTNET_ODD_EVEN, n, DA_SIGMOID_CAUCHY, s, 0.25);
}

static void *setup_bitonic(int n, double s)
{
    return da_sortnet_new(DA_SORTNET_BITONIC, n, DA_SIGMOID_CAUCHY, s, 0.25);
}

static int loss_sortnet(void *state, int batch, const double *x, const double *targets,
                        double *loss, double *grad)
{
    return da_sortnet_loss(state, batch, x, targets, loss, grad);
}

static void teardown_sortnet(void *state) { da_sortnet_free(state); }

/* NeuralSort / SoftSort column cross-entropy (losses/neuralsort.h, softsort.h), tau = 1
 * (steepness unused); no PyTorch counterpart in bench_sort_torch.py */
static void *setup_neuralsort(int n, double s)
{
    da_neuralsort_cfg *cfg = malloc(sizeof *cfg);
    if (cfg)
        *cfg = (da_neuralsort_cfg){n, 1.0};
    return cfg;
}

static void *setup_softsort(int n, double s)
{
    da_softsort_cfg *cfg = malloc(sizeof *cfg);
    if (cfg)
        *cfg = (da_softsort_cfg){n, 1.0};
    return cfg;
}

static int loss_neuralsort(void *state, int batch, const double *x, const double *targets,
                           double *loss, double *grad)
{
    return da_neuralsort_loss(state, batch, x, targets, loss, grad);
}

static int loss_softsort(void *state, int batch, const double *x, const double *targets,
                         double *loss, double *grad)
{
    return da_softsort_loss(state, batch, x, targets, loss, grad);
}

static void teardown_free(void *state) { free(state); }

static const bench_method METHODS[] = {
    {"diffsort_odd_even", 256, setup_odd_even, loss_sortnet, teardown_sortnet},
    {"diffsort_bitonic", 1024, setup_bitonic, loss_sortnet, teardown_sortnet},
    {"neuralsort_tau1", 1024, setup_neuralsort, loss_neuralsort, teardown_free},
    {"softsort_tau1", 1024, setup_softsort, loss_softsort, teardown_free},
};
#define N_METHODS ((int)(sizeof METHODS / sizeof METHODS[0]))

/* ---- inputs shared with bench_sort_torch.py ---- */

static void lcg_uniform(uint64_t seed, long count, double *out)
{
    uint64_t state = seed;
    for (long i = 0; i < count; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        out[i] = 2.0 * ((double)(state >> 11) * (1.0 / 9007199254740992.0)) - 1.0;
    }
}

/* ---- PyTorch results (flat JSON lines from bench_sort_torch.py) ---- */

#define MAX_TORCH 256
typedef struct {
    char method[48], dtype[16];
    int n;
    double ms;
} torch_row;

static int json_field(const char *line, const char *key, char *buf, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    size_t i = 0;
    if (*p == '"')
        p++;
    while (*p && *p != '"' && *p != ',' && *p != '}' && i + 1 < len)
        buf[i++] = *p++;
    buf[i] = 0;
    return i > 0;
}

static int read_torch(const char *path, torch_row *rows)
{
    FILE *f = fopen(path, "r");
    if (!f)
        ex_die(1, "cannot open %s", path);
    char line[1024], num[64];
    int count = 0;
    while (count < MAX_TORCH && fgets(line, sizeof line, f)) {
        torch_row *r = &rows[count];
        if (!json_field(line, "method", r->method, sizeof r->method) ||
            !json_field(line, "dtype", r->dtype, sizeof r->dtype) ||
            !json_field(line, "n", num, sizeof num))
            continue;
        r->n = atoi(num);
        if (!json_field(line, "ms", num, sizeof num))
            continue;
        r->ms = atof(num);
        count++;
    }
    fclose(f);
    return count;
}

static double torch_ms(const torch_row *rows, int count, const char *method, int n,
                       const char *dtype)
{
    for (int i = 0; i < count; i++)
        if (rows[i].n == n && !strcmp(rows[i].method, method) && !strcmp(rows[i].dtype, dtype))
            return rows[i].ms;
    return 0;
}

/* ---- timing ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median ms of forward+backward over up to `runs` timed runs (one warm-up first; stop
 * once max_seconds have passed) */
static double time_case(const bench_method *m, void *state, int batch, const double *x,
                        const double *t, double *grad, int runs, double max_seconds,
                        double *loss, int *done)
{
    double *ms = malloc((size_t)runs * sizeof *ms), start = ex_now();
    if (!ms || m->loss(state, batch, x, t, loss, grad))
        ex_die(1, "%s: %s", m->name, da_last_error());
    *done = 0;
    while (*done < runs && (*done == 0 || ex_now() - start < max_seconds)) {
        double t0 = ex_now();
        if (m->loss(state, batch, x, t, loss, grad))
            ex_die(1, "%s: %s", m->name, da_last_error());
        ms[(*done)++] = 1e3 * (ex_now() - t0);
    }
    qsort(ms, (size_t)*done, sizeof *ms, cmp_double);
    double med = *done % 2 ? ms[*done / 2] : 0.5 * (ms[*done / 2 - 1] + ms[*done / 2]);
    free(ms);
    return med;
}

static void usage(FILE *f)
{
    fputs("usage: bench_sort [--threads T] [--batch B] [--sizes 4,8,16,32,64,256,1024]\n"
          "                  [--steepness S] [--runs N] [--max-seconds S] [--max-n N]\n"
          "                  [--torch FILE.jsonl] [--out FILE.jsonl] [--help]\n"
          "  forward+backward of each ranking loss (mean over the batch, gradient wrt the\n"
          "  scores), median of N runs (11) or fewer once a case has taken S seconds (10).\n"
          "  Sizes above a method's practical limit (odd-even 256, bitonic 1024) or above\n"
          "  --max-n are skipped. --torch: results of bench_sort_torch.py --out FILE.\n", f);
}

int main(int argc, char **argv)
{
    ex_set_program_name(argv[0]);
    int threads = 2, batch = 128, runs = 11, max_n = 1 << 30, sizes[32], n_sizes = 0, ch;
    double steepness = 10, max_seconds = 10;
    const char *out = NULL, *torch = NULL, *size_list = "4,8,16,32,64,256,1024";
    static const struct option opts[] = {
        {"threads", required_argument, 0, 't'}, {"batch", required_argument, 0, 'b'},
        {"sizes", required_argument, 0, 'n'},   {"steepness", required_argument, 0, 's'},
        {"runs", required_argument, 0, 'r'},    {"max-seconds", required_argument, 0, 'S'},
        {"max-n", required_argument, 0, 'm'},   {"torch", required_argument, 0, 'T'},
        {"out", required_argument, 0, 'o'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 't': threads = (int)ex_parse_long("threads", optarg, 1, 1024); break;
        case 'b': batch = (int)ex_parse_long("batch", optarg, 1, 1 << 20); break;
        case 'n': size_list = optarg; break;
        case 's': steepness = ex_parse_double("steepness", optarg, 1e-6, 1e6); break;
        case 'r': runs = (int)ex_parse_long("runs", optarg, 1, 100000); break;
        case 'S': max_seconds = ex_parse_double("max-seconds", optarg, 0, 1e6); break;
        case 'm': max_n = (int)ex_parse_long("max-n", optarg, 2, DA_SORTNET_MAX_N); break;
        case 'T': torch = optarg; break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    char list[256];
    snprintf(list, sizeof list, "%s", size_list);
    for (char *tok = strtok(list, ","); tok && n_sizes < 32; tok = strtok(NULL, ","))
        sizes[n_sizes++] = (int)ex_parse_long("sizes", tok, 2, DA_SORTNET_MAX_N);
    threads = ex_set_threads(threads);
    torch_row *rows = calloc(MAX_TORCH, sizeof *rows);
    int n_torch = torch && rows ? read_torch(torch, rows) : 0;
    ex_json *j = ex_json_open(out, 0);
    if (!j || !rows)
        return 1;
    ex_json_begin(j);
    ex_json_str(j, "program", "bench_sort");
    ex_json_int(j, "threads", threads);
    ex_json_int(j, "batch", batch);
    ex_json_num(j, "steepness", steepness);
    ex_json_str(j, "sigmoid", "cauchy");
    ex_json_str(j, "inputs", "lcg seeds 1000+n (scores), 2000+n (targets), uniform [-1,1)");
    ex_json_end(j);
    printf("diffalg, %d threads, batch %d, cauchy, steepness %g; ratio = torch / diffalg\n",
           threads, batch, steepness);
    printf("| method | n | diffalg ms | loss | torch f64 ms | ratio f64 | torch f32 ms | "
           "ratio f32 | runs |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int mi = 0; mi < N_METHODS; mi++)
        for (int si = 0; si < n_sizes; si++) {
            const bench_method *m = &METHODS[mi];
            int n = sizes[si], done;
            if (n > m->max_n || n > max_n)
                continue;
            double *x = malloc(sizeof(double) * batch * n), *t = malloc(sizeof(double) * batch * n);
            double *g = malloc(sizeof(double) * batch * n), loss;
            void *state = m->setup(n, steepness);
            if (!x || !t || !g || !state)
                ex_die(1, "%s n=%d: %s", m->name, n, da_last_error());
            lcg_uniform(1000 + (uint64_t)n, (long)batch * n, x);
            lcg_uniform(2000 + (uint64_t)n, (long)batch * n, t);
            double ms = time_case(m, state, batch, x, t, g, runs, max_seconds, &loss, &done);
            double t64 = torch_ms(rows, n_torch, m->name, n, "float64");
            double t32 = torch_ms(rows, n_torch, m->name, n, "float32");
            printf("| %s | %d | %.3f | %.12g | ", m->name, n, ms, loss);
            printf(t64 > 0 ? "%.3f | %.1f | " : "- | - | ", t64, t64 / ms);
            printf(t32 > 0 ? "%.3f | %.1f | " : "- | - | ", t32, t32 / ms);
            printf("%d |\n", done);
            fflush(stdout);
            ex_json_begin(j);
            ex_json_str(j, "method", m->name);
            ex_json_int(j, "n", n);
            ex_json_num(j, "ms", ms);
            ex_json_num(j, "loss", loss);
            ex_json_int(j, "runs", done);
            if (t64 > 0)
                ex_json_num(j, "torch_f64_ms", t64), ex_json_num(j, "ratio_f64", t64 / ms);
            if (t32 > 0)
                ex_json_num(j, "torch_f32_ms", t32), ex_json_num(j, "ratio_f32", t32 / ms);
            ex_json_end(j);
            m->teardown(state);
            free(x), free(t), free(g);
        }
    ex_json_close(j);
    free(rows);
    return 0;
}
