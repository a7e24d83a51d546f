/* bench_sp.c - time per batch (forward + backward of the loss on given costs, no model) of
 * every shortest-path method of sp_methods.h on k x k vertex grids, with the number of
 * Dijkstra calls per batch (counted from the estimators' definitions: blackbox 2 per
 * sample, perturbed / FY M, smoothing the planned sample count, + 1 with the f(x)
 * baseline; the relaxed Bellman-Ford calls no solver).
 *   experiments/bench_sp [--batch 70] [--grids 12,30] [--reps 5] [--threads T]
 * Costs: uniform in [1, 10], targets: their Dijkstra paths after a perturbation. Prints
 * a Markdown table of the median time over --reps repetitions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sp_methods.h"

static const char *const specs[] = {
    "blackbox",   "relaxed_for",        "relaxed_while",      "perturbed",
    "fy",         "smooth_solver",      "smooth_loss",        "smooth_loss:cv=fx:samples=10",
};
#define N_SPECS (int)(sizeof specs / sizeof specs[0])

static long solver_calls(const sp_method *m, int B, int n)
{
    int s = 0;
    switch (m->family) {
    case SP_BLACKBOX: return 2L * B;
    case SP_RELAXED_FOR:
    case SP_RELAXED_WHILE: return 0;
    case SP_PERTURBED:
    case SP_FY: return (long)m->perturbed.n_samples * B;
    default:
        da_smooth_plan(&m->smooth, n, NULL, &s);
        return (long)(s + (m->smooth.cv == DA_CV_FX)) * B;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median seconds of one loss forward + backward (+ the Hessian path when hessian) */
static double time_method(const sp_method *m, const sp_problem *p, int B, const double *cost,
                          const double *target, int reps, int hessian)
{
    da_ctx *ctx = da_ctx_new();
    da_rng *rng = da_rng_new(1);
    int shape[3] = {B, p->H, p->W};
    double *t = malloc((size_t)reps * sizeof *t), loss;
    double *g = malloc((size_t)B * p->n * sizeof *g);
    double *H = hessian ? malloc((size_t)B * p->n * p->n * sizeof *H) : NULL;
    if (!ctx || !rng || !t || !g || (hessian && !H))
        ex_die(1, "out of memory");
    for (int r = 0; r < reps; r++) {
        double t0 = ex_now();
        if (hessian) {
            if (sp_method_hessian(m, p, rng, B, cost, target, &loss, g, H))
                ex_die(1, "%s: %s", m->spec, da_last_error());
        } else {
            da_ctx_reset(ctx);
            da_tensor *c = da_ctx_tensor_from(ctx, DA_F64, 3, shape, cost);
            c->requires_grad = 1;
            da_tensor *l = sp_method_loss(ctx, m, p, c, target, rng);
            if (!l || da_backward(ctx, l))
                ex_die(1, "%s: %s", m->spec, da_last_error());
        }
        t[r] = ex_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double median = t[reps / 2];
    free(t);
    free(g);
    free(H);
    da_rng_free(rng);
    da_ctx_free(ctx);
    return median;
}

static void usage(FILE *f)
{
    fputs("usage: bench_sp [--batch 70] [--grids 12,30] [--reps 5] [--threads T]\n", f);
}

int main(int argc, char **argv)
{
    ex_set_program_name(argv[0]);
    int B = 70, reps = 5, threads = 0, grids[8], n_grids = 0;
    const char *grid_list = "12,30";
    const ex_option opts[] = {
        EX_OPT_INT("batch", &B, 1, 4096),
        EX_OPT_STRING("grids", &grid_list),
        EX_OPT_INT("reps", &reps, 1, 1000),
        EX_OPT_THREADS(&threads),
    };
    ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
    char buf[64];
    snprintf(buf, sizeof buf, "%s", grid_list);
    for (char *tok = strtok(buf, ","); tok && n_grids < 8; tok = strtok(NULL, ","))
        grids[n_grids++] = (int)ex_parse_long("grids", tok, 2, 64);
    threads = ex_set_threads(threads);
    printf("batch %d, median of %d repetitions, %d threads; loss forward + backward on given "
           "costs (no model)\n\n| method | grid | ms / batch | Dijkstra calls / batch |\n"
           "|---|---|---|---|\n", B, reps, threads);
    da_rng *rng = da_rng_new(0);
    for (int gi = 0; gi < n_grids; gi++) {
        int k = grids[gi], n = k * k;
        sp_problem p = {.H = k, .W = k, .n = n};
        double *cost = malloc((size_t)B * n * sizeof *cost), *target = malloc((size_t)B * n * sizeof *target);
        if (!cost || !target)
            ex_die(1, "out of memory");
        for (long i = 0; i < (long)B * n; i++)
            cost[i] = 1 + 9 * da_rng_uniform(rng);
        if (da_sp_dijkstra(B, k, k, cost, target, NULL))
            ex_die(1, "%s", da_last_error());
        for (long i = 0; i < (long)B * n; i++)
            cost[i] += da_rng_uniform(rng);
        for (int s = 0; s <= N_SPECS; s++) {
            int hessian = s == N_SPECS; /* last row: smooth_loss with its Hessians */
            if (hessian && n > 400)
                continue; /* [B][n][n] Hessians: 70 x 900^2 doubles would be 450 MB */
            sp_method m;
            sp_method_parse(hessian ? "smooth_loss" : specs[s], &p, &m);
            double sec = time_method(&m, &p, B, cost, target, reps, hessian);
            printf("| %s%s | %d x %d | %.2f | %ld |\n", m.spec, hessian ? " + Hessian" : "", k, k,
                   1e3 * sec, solver_calls(&m, B, n));
            fflush(stdout);
        }
        free(cost);
        free(target);
    }
    da_rng_free(rng);
    return 0;
}
