/* smoothing_variance.c - the variance benchmark of stochastic smoothing (Petersen et al.,
 * "Generalizing Stochastic Smoothing for Differentiation and Gradient Estimation",
 * arXiv 2410.08125, §5 / Tables 1-2): mean squared error of the Jacobian estimate of a
 * smoothed non-differentiable algorithm, for each distribution x variance-reduction
 * strategy, against a high-sample ground truth.
 *
 * Settings (f: R^n -> R^m, smoothed at a fixed x with scale eps):
 *   sort3, sort5  f(x) = the hard ascending permutation matrix of x (m = n^2), x ~ N(0, I)
 *   sp8, sp12     f(c) = the 0/1 vertex indicator of Dijkstra's shortest path on a k x k
 *                 grid (losses/shortest_path.h), costs c ~ U[1, 5) (perturbed costs are
 *                 clipped at 0, as Dijkstra needs them non-negative)
 * Strategies: sampling {mc, latin (cell centres, QMC), rlatin (randomized), cartesian}
 * x baseline {none, fx, loo} x antithetic {off, on}: 24 (antithetic only for symmetric
 * distributions; Cartesian only where k = floor(s^(1/n)) >= 2; others are "-").
 * MSE = mean over --reps independent estimates of ||J - J*||_F^2, with J* the mean of
 * --gt-reps randomized-Latin + LOO estimates of --gt-samples samples each.
 * Output: RESULTS/<setting>.md (rows = distributions, columns = strategies, and each
 * row's best strategy), RESULTS/<setting>.png (gnuplot heatmap of log10 MSE relative to
 * plain MC), and one JSON line per (setting, distribution, strategy) in --out. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "diffalg.h"

typedef struct {
    const char *name;
    int n, m, grid; /* grid > 0: shortest path on grid x grid */
} setting;

static const setting settings[] = {
    {"sort3", 3, 9, 0}, {"sort5", 5, 25, 0}, {"sp8", 64, 64, 8}, {"sp12", 144, 144, 12}};
#define N_SETTINGS 4

typedef struct {
    const char *out, *results, *only;
    int samples, reps, gt_samples, gt_reps, threads;
    double eps;
    unsigned long seed;
} config;

static void usage(FILE *f)
{
    fputs("usage: smoothing_variance [--setting sort3|sort5|sp8|sp12|all] [--samples S]\n"
          "                          [--reps R] [--gt-samples G] [--gt-reps GR] [--eps E]\n"
          "                          [--seed S] [--results DIR] [--out FILE.jsonl]\n"
          "                          [--threads T]\n"
          "MSE of smoothed-Jacobian estimates for every distribution x strategy.\n"
          "  --setting     which algorithm (default all)\n"
          "  --samples     samples per estimate (default 1024; Cartesian uses k^n <= S)\n"
          "  --reps        estimates per strategy for the MSE (default 64)\n"
          "  --gt-samples  samples per ground-truth estimate (default 16384)\n"
          "  --gt-reps     ground-truth estimates averaged (default 64)\n"
          "  --eps         smoothing scale (default 0.5)\n"
          "  --results     directory of the tables and heatmaps (default\n"
          "                results/smoothing_variance)\n", f);
}

static config parse_args(int argc, char **argv)
{
    config c = {.results = "results/smoothing_variance", .only = "all", .samples = 1024,
                .reps = 64, .gt_samples = 16384, .gt_reps = 64, .eps = 0.5};
    const ex_option opts[] = {
        EX_OPT_STRING("setting", &c.only),
        EX_OPT_INT("samples", &c.samples, 4, 1 << 22),
        EX_OPT_INT("reps", &c.reps, 2, 1000000),
        EX_OPT_INT("gt-samples", &c.gt_samples, 4, 1 << 22),
        EX_OPT_INT("gt-reps", &c.gt_reps, 1, 1000000),
        EX_OPT_DOUBLE("eps", &c.eps, 1e-9, 1e9),
        EX_OPT_SEED("seed", &c.seed),
        EX_OPT_STRING("results", &c.results),
        EX_OPT_STRING("out", &c.out),
        EX_OPT_THREADS(&c.threads),
    };
    ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
    return c;
}

/* ---- the black boxes ---- */

static int hard_sort(void *user, int n, const double *x, int m, double *y)
{
    int order[64];
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort of the indices, ties by index */
        for (int j = i; j > 0 && x[order[j]] < x[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    memset(y, 0, (size_t)m * sizeof *y);
    for (int j = 0; j < n; j++)
        y[order[j] * n + j] = 1; /* P[i][j]: input i at ascending position j */
    return DA_OK;
}

static int dijkstra_path(void *user, int n, const double *c, int m, double *y)
{
    const setting *s = user;
    double clipped[256];
    for (int i = 0; i < n; i++)
        clipped[i] = c[i] > 0 ? c[i] : 0;
    return da_sp_dijkstra(1, s->grid, s->grid, clipped, y, NULL);
}

/* ---- strategies ---- */

typedef struct {
    da_sampling sampling;
    da_control_variate cv;
    int antithetic;
    char label[24];
} strategy;

static int strategies(strategy *st)
{
    static const da_sampling samp[] = {DA_SAMPLE_MC, DA_SAMPLE_LATIN, DA_SAMPLE_RLATIN,
                                       DA_SAMPLE_CARTESIAN};
    static const char *const cv_names[] = {"none", "fx", "loo"};
    int k = 0;
    for (int s = 0; s < 4; s++)
        for (int cv = 0; cv < 3; cv++)
            for (int a = 0; a <= 1; a++, k++) {
                st[k] = (strategy){.sampling = samp[s], .cv = (da_control_variate)cv,
                                   .antithetic = a};
                snprintf(st[k].label, sizeof st[k].label, "%s.%s%s", da_sampling_name(samp[s]),
                         cv_names[cv], a ? ".a" : "");
            }
    return k;
}

static da_blackbox_fn blackbox(const setting *s) { return s->grid ? dijkstra_path : hard_sort; }

/* mean of reps estimates (J_mean) or their MSE against J_ref; NAN if the strategy does
 * not apply. Reps run in parallel, each with its own generator seeded by its index. */
static double run_estimates(const setting *s, const da_smooth_cfg *cfg, const double *x,
                            int reps, unsigned long seed, const double *J_ref, double *J_mean)
{
    int nm = s->n * s->m;
    da_sampling used;
    int samples;
    if (da_smooth_plan(cfg, s->n, &used, &samples) || used != cfg->sampling)
        return NAN;
    double total = 0;
    int failed = 0;
    if (J_mean)
        memset(J_mean, 0, (size_t)nm * sizeof *J_mean);
#pragma omp parallel reduction(+ : total, failed)
    {
        double *J = malloc((size_t)nm * sizeof *J);
        da_rng *rng = da_rng_new(0);
#pragma omp for schedule(dynamic)
        for (int r = 0; r < reps; r++) {
            da_rng_seed(rng, seed * 1000003UL + (unsigned long)r);
            if (!J || !rng ||
                da_smooth_jacobian(cfg, blackbox(s), (void *)s, s->n, s->m, x, rng, NULL, J)) {
                failed++;
                continue;
            }
            if (J_ref) {
                double e = 0;
                for (int k = 0; k < nm; k++)
                    e += (J[k] - J_ref[k]) * (J[k] - J_ref[k]);
                total += e;
            }
            if (J_mean) {
#pragma omp critical
                for (int k = 0; k < nm; k++)
                    J_mean[k] += J[k] / reps;
            }
        }
        free(J);
        da_rng_free(rng);
    }
    if (failed)
        ex_die(1, "%s: %d estimates failed: %s", s->name, failed, da_last_error());
    return total / reps;
}

/* ---- output ---- */

static void write_table(const config *c, const setting *s, const strategy *st, int n_st,
                        const double *mse /* [dist][strategy] */)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.md", c->results, s->name);
    FILE *f = fopen(path, "w");
    if (!f)
        ex_die(1, "cannot write %s", path);
    fprintf(f, "# Smoothing variance: %s (n = %d inputs, m = %d outputs)\n\n"
               "MSE of the Jacobian estimate (%d samples, mean over %d estimates; ground truth "
               "%d x %d randomized-Latin + LOO samples), eps = %g. `-`: not applicable.\n\n",
            s->name, s->n, s->m, c->samples, c->reps, c->gt_reps, c->gt_samples, c->eps);
    fprintf(f, "| distribution |");
    for (int k = 0; k < n_st; k++)
        fprintf(f, " %s |", st[k].label);
    fprintf(f, " best |\n|---|");
    for (int k = 0; k <= n_st; k++)
        fprintf(f, "---|");
    fprintf(f, "\n");
    for (int d = 0; d < DA_DIST_COUNT; d++) {
        int best = -1;
        fprintf(f, "| %s |", da_dist_name((da_dist)d));
        for (int k = 0; k < n_st; k++) {
            double v = mse[d * n_st + k];
            if (isnan(v)) {
                fprintf(f, " - |");
                continue;
            }
            fprintf(f, " %.3g |", v);
            if (best < 0 || v < mse[d * n_st + best])
                best = k;
        }
        fprintf(f, " %s |\n", best >= 0 ? st[best].label : "-");
    }
    fclose(f);
    ex_log("wrote %s", path);
}

static void write_heatmap(const config *c, const setting *s, const strategy *st, int n_st,
                          const double *mse)
{
    char dat[512], png[512];
    snprintf(dat, sizeof dat, "%s/%s.dat", c->results, s->name);
    snprintf(png, sizeof png, "%s/%s.png", c->results, s->name);
    FILE *f = fopen(dat, "w");
    if (!f)
        ex_die(1, "cannot write %s", dat);
    for (int d = 0; d < DA_DIST_COUNT; d++) {
        for (int k = 0; k < n_st; k++) {
            double v = mse[d * n_st + k], mc = mse[d * n_st];
            if (isnan(v))
                fprintf(f, "NaN ");
            else
                fprintf(f, "%.4f ", log10(v / mc));
        }
        fprintf(f, "\n");
    }
    fclose(f);
    FILE *g = popen("gnuplot", "w");
    if (!g) {
        ex_log("no gnuplot: skipped %s", png);
        return;
    }
    fprintf(g, "set terminal pngcairo size 1400,420\nset output '%s'\n", png);
    fprintf(g, "set title 'log10(MSE / MSE of plain MC): %s, %d samples'\n", s->name, c->samples);
    fprintf(g, "set palette defined (-1 'blue', 0 'white', 1 'red')\nset cbrange [-1:1]\n");
    fprintf(g, "set xtics rotate by 60 right font ',8'\nset ytics (");
    for (int d = 0; d < DA_DIST_COUNT; d++)
        fprintf(g, "%s'%s' %d", d ? ", " : "", da_dist_name((da_dist)d), d);
    fprintf(g, ")\nset xtics (");
    for (int k = 0; k < n_st; k++)
        fprintf(g, "%s'%s' %d", k ? ", " : "", st[k].label, k);
    fprintf(g, ")\nset yrange [-0.5:%d.5]\nset xrange [-0.5:%d.5]\n", DA_DIST_COUNT - 1,
            n_st - 1);
    fprintf(g, "plot '%s' matrix with image notitle\n", dat);
    if (pclose(g) != 0)
        ex_log("gnuplot failed for %s", png);
    else
        ex_log("wrote %s", png);
}

static void run_setting(const config *c, const setting *s, ex_json *j)
{
    strategy st[24];
    int n_st = strategies(st);
    double *x = malloc((size_t)s->n * sizeof *x), *gt = malloc((size_t)s->n * s->m * sizeof *gt);
    double *mse = malloc((size_t)DA_DIST_COUNT * n_st * sizeof *mse);
    da_rng *rng = da_rng_new(c->seed + 17);
    if (!x || !gt || !mse || !rng)
        ex_die(1, "out of memory");
    for (int i = 0; i < s->n; i++)
        x[i] = s->grid ? 1 + 4 * da_rng_uniform(rng) : da_rng_normal(rng);
    ex_progress bar;
    ex_progress_start(&bar, s->name, (long)DA_DIST_COUNT * (n_st + 1));
    long done = 0;
    for (int d = 0; d < DA_DIST_COUNT; d++) {
        da_smooth_cfg cfg;
        da_smooth_cfg_default(&cfg);
        cfg.dist = (da_dist)d;
        cfg.eps = c->eps;
        cfg.sampling = DA_SAMPLE_RLATIN;
        cfg.cv = DA_CV_LOO;
        cfg.samples = c->gt_samples;
        run_estimates(s, &cfg, x, c->gt_reps, c->seed + 1000, NULL, gt);
        ex_progress_update(&bar, ++done, da_dist_name(cfg.dist));
        cfg.samples = c->samples;
        for (int k = 0; k < n_st; k++) {
            cfg.sampling = st[k].sampling;
            cfg.cv = st[k].cv;
            cfg.antithetic = st[k].antithetic;
            mse[d * n_st + k] = run_estimates(s, &cfg, x, c->reps, c->seed, gt, NULL);
            ex_json_begin(j);
            ex_json_str(j, "setting", s->name);
            ex_json_str(j, "distribution", da_dist_name(cfg.dist));
            ex_json_str(j, "strategy", st[k].label);
            ex_json_num(j, "mse", mse[d * n_st + k]);
            ex_json_end(j);
            ex_progress_update(&bar, ++done, da_dist_name(cfg.dist));
        }
    }
    ex_progress_end(&bar);
    write_table(c, s, st, n_st, mse);
    write_heatmap(c, s, st, n_st, mse);
    free(x);
    free(gt);
    free(mse);
    da_rng_free(rng);
}

int main(int argc, char **argv)
{
    ex_set_program_name(argv[0]);
    config c = parse_args(argc, argv);
    int threads = ex_set_threads(c.threads), ran = 0;
    mkdir("results", 0777);
    if (mkdir(c.results, 0777) && access(c.results, W_OK))
        ex_die(1, "cannot create %s", c.results);
    ex_json *j = ex_json_open(c.out, 0);
    if (!j)
        exit(1);
    ex_json_begin(j);
    ex_json_str(j, "program", "smoothing_variance");
    ex_json_str(j, "setting", c.only);
    ex_json_int(j, "samples", c.samples);
    ex_json_int(j, "reps", c.reps);
    ex_json_int(j, "gt_samples", c.gt_samples);
    ex_json_int(j, "gt_reps", c.gt_reps);
    ex_json_num(j, "eps", c.eps);
    ex_json_int(j, "seed", (long)c.seed);
    ex_json_int(j, "threads", threads);
    ex_json_end(j);
    double t0 = ex_now();
    for (int i = 0; i < N_SETTINGS; i++)
        if (!strcmp(c.only, "all") || !strcmp(c.only, settings[i].name)) {
            run_setting(&c, &settings[i], j);
            ran++;
        }
    if (!ran)
        ex_die(2, "unknown --setting '%s' (sort3, sort5, sp8, sp12, all)", c.only);
    ex_json_close(j);
    ex_log("done in %.1f s on %d threads", ex_now() - t0, threads);
    return 0;
}
