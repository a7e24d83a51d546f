/* bench_sort.c - forward + backward time of every ranking loss of losses/ranking.h at a
 * batch of scores (default 128 rows of n), against the PyTorch / numpy references of
 * experiments/bench_sort_torch.py.
 *
 * Each case (method, n, threads) computes the batch-mean loss and d loss / d scores
 * through da_ranking_new(spec, n) + da_ranking_loss on inputs shared with the Python
 * script (a 64-bit LCG: scores from seed 1000 + n, targets from seed 2000 + n, uniform
 * in [-1, 1)). Times are the minimum wall time and the minimum process CPU time (all
 * threads) over the timed runs of every round, after one warm-up run in the first
 * round: on a loaded machine the minimum is the least disturbed run.
 *
 * With --torch SCRIPT the program starts `PYTHON SCRIPT --serve` (once per thread count,
 * with OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set to it) and, for every case,
 * alternates rounds of its own runs with rounds of the reference's runs (C first in even
 * rounds, PyTorch first in odd ones), so both sides see the same load. The table gets
 * the reference's times and the ratios reference / diffalg (wall and CPU). CPU time
 * undercounts the other threads of short multi-threaded runs (the kernel adds a running
 * thread's time at ticks and switches): at 2 threads trust the wall column.
 * Both sides report the loss and grad_check = sum_k grad_k u_k (u: LCG seed 3000 + n);
 * in float64 they must agree to 1e-8 (relative to max(1, |loss|), and to sum_k |grad_k|):
 * a disagreement is reported on stderr, marked in the table, and the exit status is 1. */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "diffalg.h"

/* ---- methods ---- */

typedef struct {
    const char *name;    /* JSON "method", as in bench_sort_torch.py */
    const char *options; /* the rest of the ranking spec (steepness added from --steepness) */
    int max_n;           /* practical limit of one forward+backward at batch 128 */
} bench_method;

static const bench_method METHODS[] = {
    {"odd_even:cauchy", ":steepness=%g", 256},
    {"bitonic:cauchy", ":steepness=%g", 1024},
    {"neuralsort", ":tau=1", 1024},
    {"softsort", ":tau=1", 1024},
    {"sinkhorn", ":epsilon=0.1:iterations=50", 128},
    {"fast_soft_rank:l2", ":strength=1", 1024},
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

/* ---- one side's result of a case ---- */

typedef struct {
    double wall_ms, cpu_ms; /* minima over every timed run; 0 = not measured */
    double loss, grad_check;
    int runs;
} side_result;

static void side_merge(side_result *acc, const side_result *r)
{
    if (!acc->runs || r->wall_ms < acc->wall_ms)
        acc->wall_ms = r->wall_ms;
    if (!acc->runs || r->cpu_ms < acc->cpu_ms)
        acc->cpu_ms = r->cpu_ms;
    acc->loss = r->loss, acc->grad_check = r->grad_check;
    acc->runs += r->runs;
}

/* ---- the PyTorch co-process (bench_sort_torch.py --serve) ---- */

typedef struct {
    FILE *to, *from;
    pid_t pid;
} coprocess;

/* the reference for one thread count: OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set
 * for the child, since torch.set_num_threads does not reach the OpenBLAS that torch's
 * matmuls call */
static void torch_start(coprocess *c, const char *python, const char *script, int batch,
                        double steepness, int threads)
{
    int in[2], out[2];
    char b[32], s[32], t[32];
    snprintf(b, sizeof b, "%d", batch);
    snprintf(t, sizeof t, "%d", threads);
    snprintf(s, sizeof s, "%.17g", steepness);
    if (pipe(in) || pipe(out))
        ex_die(1, "pipe failed");
    signal(SIGPIPE, SIG_IGN); /* a dead child shows as EOF on its output, reported there */
    fflush(NULL);
    c->pid = fork();
    if (c->pid < 0)
        ex_die(1, "fork failed");
    if (c->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        setenv("OMP_NUM_THREADS", t, 1);
        setenv("OPENBLAS_NUM_THREADS", t, 1);
        execl(python, python, script, "--serve", "--batch", b, "--steepness", s, (char *)NULL);
        fprintf(stderr, "bench_sort: cannot run %s %s\n", python, script);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    c->to = fdopen(in[1], "w");
    c->from = fdopen(out[0], "r");
    if (!c->to || !c->from)
        ex_die(1, "fdopen failed");
}

static void torch_stop(coprocess *c)
{
    fclose(c->to);
    fclose(c->from);
    waitpid(c->pid, NULL, 0);
}

/* value of "key": in one flat JSON line (strings without quotes), 0 when absent */
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

static double json_num(const char *line, const char *key)
{
    char buf[64];
    if (!json_field(line, key, buf, sizeof buf))
        ex_die(1, "torch reply without \"%s\": %s", key, line);
    return atof(buf);
}

/* one round of the reference's runs; 0 when it skips the case (message in why) */
static int torch_round(coprocess *c, const char *method, int n, int threads, const char *dtype,
                       int runs, double min_seconds, double max_seconds, side_result *r,
                       char *why, size_t len)
{
    char line[4096];
    fprintf(c->to, "%s %d %d %s %d %g %g\n", method, n, threads, dtype, runs, min_seconds,
            max_seconds);
    fflush(c->to);
    if (!fgets(line, sizeof line, c->from))
        ex_die(1, "the PyTorch script stopped answering (%s n=%d)", method, n);
    if (json_field(line, "error", why, len))
        ex_die(1, "PyTorch %s n=%d: %s", method, n, why);
    if (json_field(line, "skipped", why, len))
        return 0;
    *r = (side_result){json_num(line, "wall_ms"), json_num(line, "cpu_ms"),
                       json_num(line, "loss"), json_num(line, "grad_check"),
                       (int)json_num(line, "runs")};
    return 1;
}

/* ---- diffalg's side ---- */

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const da_ranking *method;
    int batch;
    const double *x, *t, *u; /* [batch][n] scores, targets, grad_check weights */
    double *grad;
} c_case;

static void c_run(const c_case *cs, double *loss)
{
    if (da_ranking_loss(cs->method, cs->batch, cs->x, cs->t, loss, cs->grad))
        ex_die(1, "%s: %s", da_ranking_spec(cs->method), da_last_error());
}

/* one round: a warm-up run if asked, then timed runs until there are `runs` of them and
 * min_seconds have passed, but no new run once max_seconds have passed (at least one) */
static void c_round(const c_case *cs, int warm_up, int runs, double min_seconds,
                    double max_seconds, side_result *r)
{
    double loss, start = ex_now();
    if (warm_up)
        c_run(cs, &loss);
    *r = (side_result){0};
    while ((r->runs < runs || ex_now() - start < min_seconds) &&
           (r->runs == 0 || ex_now() - start < max_seconds)) {
        double w0 = ex_now(), c0 = cpu_now();
        c_run(cs, &loss);
        double cpu = 1e3 * (cpu_now() - c0), wall = 1e3 * (ex_now() - w0);
        if (!r->runs || wall < r->wall_ms)
            r->wall_ms = wall;
        if (!r->runs || cpu < r->cpu_ms)
            r->cpu_ms = cpu;
        r->runs++;
    }
    long count = (long)cs->batch * da_ranking_n(cs->method);
    r->loss = loss, r->grad_check = 0;
    for (long k = 0; k < count; k++)
        r->grad_check += cs->grad[k] * cs->u[k];
}

/* float64 agreement of the two sides (see the header comment) */
static int agree(const side_result *c, const side_result *t, const double *grad, long count)
{
    double l1 = 0;
    for (long k = 0; k < count; k++)
        l1 += fabs(grad[k]);
    return fabs(c->loss - t->loss) <= 1e-8 * fmax(1, fabs(c->loss)) &&
           fabs(c->grad_check - t->grad_check) <= 1e-8 * fmax(l1, 1e-300);
}

/* ---- options ---- */

typedef struct {
    int batch, runs, rounds, max_n, f32;
    int threads[8], n_threads, sizes[32], n_sizes;
    double steepness, min_seconds, max_seconds;
    const char *methods, *torch, *python, *out;
} bench_opts;

static int parse_list(const char *opt, const char *text, int *vals, int max, long lo, long hi)
{
    char buf[256];
    int count = 0;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (count == max)
            ex_die(2, "--%s: at most %d values", opt, max);
        vals[count++] = (int)ex_parse_long(opt, tok, lo, hi);
    }
    if (!count)
        ex_die(2, "--%s: empty list", opt);
    return count;
}

/* name is one of the comma-separated entries of list */
static int method_selected(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += len)
        if ((p == list || p[-1] == ',') && (p[len] == ',' || !p[len]))
            return 1;
    return 0;
}

static void check_methods(const char *list)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int known = 0;
        for (int m = 0; m < N_METHODS; m++)
            known |= !strcmp(tok, METHODS[m].name);
        if (!known)
            ex_die(2, "--methods: unknown method '%s' (see --help)", tok);
    }
}

static void usage(FILE *f)
{
    fputs("usage: bench_sort [--threads 1,2] [--batch B] [--sizes 4,8,16,32,64,256,1024]\n"
          "                  [--methods LIST] [--steepness S] [--runs N] [--rounds R]\n"
          "                  [--min-seconds S0] [--max-seconds S] [--max-n N]\n"
          "                  [--torch SCRIPT [--torch-f32]]\n"
          "                  [--python PYTHON] [--out FILE.jsonl] [--help]\n"
          "  forward+backward of each ranking loss (batch mean, gradient wrt the scores),\n"
          "  through da_ranking_new(spec, n) + da_ranking_loss. Methods (default all):\n"
          "  odd_even:cauchy, bitonic:cauchy (steepness S, 10), neuralsort, softsort (tau 1),\n"
          "  sinkhorn (epsilon 0.1, 50 iterations), fast_soft_rank:l2 (strength 1).\n"
          "  Per case and thread count: one warm-up run, then R rounds (3) of timed runs, a\n"
          "  round running until it has N runs (5) and S0 seconds (0.5) have passed, but\n"
          "  starting no run after S seconds (5); a case without reference stops after S\n"
          "  seconds too. Minimum wall and CPU ms over all timed runs.\n"
          "  Sizes above a method's practical limit (odd_even 256, sinkhorn 128, others\n"
          "  1024) or above --max-n are skipped.\n"
          "  --torch SCRIPT: experiments/bench_sort_torch.py, run as PYTHON SCRIPT --serve\n"
          "  (PYTHON /usr/bin/python3), its rounds interleaved with ours; ratio = reference /\n"
          "  diffalg; losses and gradients must agree to 1e-8 in float64 (exit status 1 if\n"
          "  not). --torch-f32 also times PyTorch in float32.\n", f);
}

static void parse_options(int argc, char **argv, bench_opts *o)
{
    const char *threads = "1,2", *sizes = "4,8,16,32,64,256,1024";
    *o = (bench_opts){.batch = 128, .runs = 5, .rounds = 3, .max_n = 1 << 30,
                      .steepness = 10, .min_seconds = 0.5, .max_seconds = 5, .python = "/usr/bin/python3",
                      .methods = NULL};
    const ex_option opts[] = {
        EX_OPT_STRING("threads", &threads),
        EX_OPT_INT("batch", &o->batch, 1, 1 << 20),
        EX_OPT_STRING("sizes", &sizes),
        EX_OPT_STRING("methods", &o->methods),
        EX_OPT_DOUBLE("steepness", &o->steepness, 1e-6, 1e6),
        EX_OPT_INT("runs", &o->runs, 1, 100000),
        EX_OPT_INT("rounds", &o->rounds, 1, 1000),
        EX_OPT_DOUBLE("max-seconds", &o->max_seconds, 0, 1e6),
        EX_OPT_DOUBLE("min-seconds", &o->min_seconds, 0, 1e6),
        EX_OPT_INT("max-n", &o->max_n, 2, DA_SORTNET_MAX_N),
        EX_OPT_STRING("torch", &o->torch),
        EX_OPT_FLAG("torch-f32", &o->f32),
        EX_OPT_STRING("python", &o->python),
        EX_OPT_STRING("out", &o->out),
    };
    ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
    o->n_threads = parse_list("threads", threads, o->threads, 8, 1, 1024);
    o->n_sizes = parse_list("sizes", sizes, o->sizes, 32, 2, DA_SORTNET_MAX_N);
    if (o->methods)
        check_methods(o->methods);
}

/* ---- one case ---- */

typedef struct {
    side_result c, t64, t32;
    int have64, have32, mismatch;
} case_result;

static void run_case(const bench_opts *o, const bench_method *m, int n, int threads,
                     coprocess *torch, case_result *res)
{
    char spec[160], opt[96], why[256];
    snprintf(opt, sizeof opt, m->options, o->steepness);
    snprintf(spec, sizeof spec, "%s%s", m->name, opt);
    long count = (long)o->batch * n;
    double *buf = malloc(4 * (size_t)count * sizeof *buf);
    da_ranking *method = da_ranking_new(spec, n);
    if (!buf || !method)
        ex_die(1, "%s n=%d: %s", spec, n, buf ? da_last_error() : "out of memory");
    c_case cs = {method, o->batch, buf, buf + count, buf + 2 * count, buf + 3 * count};
    lcg_uniform(1000 + (uint64_t)n, count, buf);
    lcg_uniform(2000 + (uint64_t)n, count, buf + count);
    lcg_uniform(3000 + (uint64_t)n, count, buf + 2 * count);
    memset(res, 0, sizeof *res);
    int want64 = torch != NULL, want32 = torch && o->f32;
    double start = ex_now();
    /* without a reference to interleave with, a slow case stops after max_seconds */
    for (int round = 0; round < o->rounds &&
                        (want64 || want32 || round == 0 || ex_now() - start < o->max_seconds);
         round++) {
        side_result r;
        for (int turn = 0; turn < 2; turn++) {
            if ((turn == 0) == (round % 2 == 0)) {
                c_round(&cs, round == 0, o->runs, o->min_seconds, o->max_seconds, &r);
                side_merge(&res->c, &r);
                continue;
            }
            if (want64 && (want64 = torch_round(torch, m->name, n, threads, "float64", o->runs,
                                                o->min_seconds, o->max_seconds, &r, why,
                                                sizeof why)))
                side_merge(&res->t64, &r), res->have64 = 1;
            if (want32 && (want32 = torch_round(torch, m->name, n, threads, "float32", o->runs,
                                                o->min_seconds, o->max_seconds, &r, why,
                                                sizeof why)))
                side_merge(&res->t32, &r), res->have32 = 1;
        }
    }
    if (res->have64 && !agree(&res->c, &res->t64, cs.grad, count)) {
        res->mismatch = 1;
        fprintf(stderr, "bench_sort: %s n=%d disagrees with PyTorch: loss %.17g vs %.17g, "
                "grad_check %.17g vs %.17g\n", m->name, n, res->c.loss, res->t64.loss,
                res->c.grad_check, res->t64.grad_check);
    }
    da_ranking_free(method);
    free(buf);
}

/* ---- output ---- */

static void print_header(const bench_opts *o, int threads)
{
    printf("\n%d thread%s, batch %d (diffalg double; reference float64%s); ms = minimum over "
           "%d rounds x up to %d runs; ratio = reference / diffalg\n\n",
           threads, threads > 1 ? "s" : "", o->batch, o->f32 ? ", and float32" : "", o->rounds,
           o->runs);
    printf("| method | n | diffalg wall ms | diffalg cpu ms | ref wall ms | ref cpu ms | "
           "ratio wall | ratio cpu |%s loss |\n", o->f32 ? " ref f32 wall ms | ratio f32 wall |" : "");
    printf("|---|---|---|---|---|---|---|---|%s---|\n", o->f32 ? "---|---|" : "");
}

static void print_row(const bench_opts *o, const char *method, int n, const case_result *r)
{
    printf("| %s | %d | %.3f | %.3f | ", method, n, r->c.wall_ms, r->c.cpu_ms);
    if (r->have64)
        printf("%.3f | %.3f | %.1f | %.1f | ", r->t64.wall_ms, r->t64.cpu_ms,
               r->t64.wall_ms / r->c.wall_ms, r->t64.cpu_ms / r->c.cpu_ms);
    else
        printf("- | - | - | - | ");
    if (o->f32 && r->have32)
        printf("%.3f | %.1f | ", r->t32.wall_ms, r->t32.wall_ms / r->c.wall_ms);
    else if (o->f32)
        printf("- | - | ");
    printf("%.12g%s |\n", r->c.loss, r->mismatch ? " MISMATCH" : "");
    fflush(stdout);
}

static void json_side(ex_json *j, const char *prefix, const side_result *s)
{
    char key[64];
    snprintf(key, sizeof key, "%swall_ms", prefix), ex_json_num(j, key, s->wall_ms);
    snprintf(key, sizeof key, "%scpu_ms", prefix), ex_json_num(j, key, s->cpu_ms);
    snprintf(key, sizeof key, "%sloss", prefix), ex_json_num(j, key, s->loss);
    snprintf(key, sizeof key, "%sgrad_check", prefix), ex_json_num(j, key, s->grad_check);
    snprintf(key, sizeof key, "%sruns", prefix), ex_json_int(j, key, s->runs);
}

static void json_row(ex_json *j, const char *method, int n, int threads, const case_result *r)
{
    ex_json_begin(j);
    ex_json_str(j, "method", method);
    ex_json_int(j, "n", n);
    ex_json_int(j, "threads", threads);
    json_side(j, "", &r->c);
    if (r->have64) {
        json_side(j, "torch_", &r->t64);
        ex_json_num(j, "ratio_wall", r->t64.wall_ms / r->c.wall_ms);
        ex_json_num(j, "ratio_cpu", r->t64.cpu_ms / r->c.cpu_ms);
        ex_json_int(j, "agree", !r->mismatch);
    }
    if (r->have32) {
        json_side(j, "torch_f32_", &r->t32);
        ex_json_num(j, "ratio_f32_wall", r->t32.wall_ms / r->c.wall_ms);
    }
    ex_json_end(j);
}

int main(int argc, char **argv)
{
    ex_set_program_name(argv[0]);
    bench_opts o;
    parse_options(argc, argv, &o);
    coprocess torch;
    ex_json *j = ex_json_open(o.out, 0);
    if (!j)
        return 1;
    ex_json_begin(j);
    ex_json_str(j, "program", "bench_sort");
    ex_json_int(j, "batch", o.batch);
    ex_json_num(j, "steepness", o.steepness);
    ex_json_int(j, "rounds", o.rounds);
    ex_json_int(j, "runs", o.runs);
    ex_json_num(j, "min_seconds", o.min_seconds);
    ex_json_num(j, "max_seconds", o.max_seconds);
    ex_json_str(j, "reference", o.torch ? o.torch : "none");
    ex_json_str(j, "inputs", "lcg seeds 1000+n (scores), 2000+n (targets), 3000+n "
                             "(grad_check weights), uniform [-1,1)");
    ex_json_end(j);
    int mismatches = 0;
    for (int ti = 0; ti < o.n_threads; ti++) {
        int threads = ex_set_threads(o.threads[ti]);
        if (o.torch)
            torch_start(&torch, o.python, o.torch, o.batch, o.steepness, threads);
        print_header(&o, threads);
        for (int mi = 0; mi < N_METHODS; mi++)
            for (int si = 0; si < o.n_sizes; si++) {
                const bench_method *m = &METHODS[mi];
                int n = o.sizes[si];
                if (n > m->max_n || n > o.max_n || (o.methods && !method_selected(o.methods, m->name)))
                    continue;
                case_result r;
                run_case(&o, m, n, threads, o.torch ? &torch : NULL, &r);
                mismatches += r.mismatch;
                print_row(&o, m->name, n, &r);
                json_row(j, m->name, n, threads, &r);
            }
        if (o.torch)
            torch_stop(&torch);
    }
    ex_json_close(j);
    if (mismatches)
        fprintf(stderr, "bench_sort: %d case(s) disagree with the reference\n", mismatches);
    return mismatches ? 1 : 0;
}
