/* common.c - progress bar, JSON lines, summary table and option parsing shared by the
 * experiment programs (common.h). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <omp.h>
#include <zlib.h>

#include "common.h"

static const char *program = "experiment";
static int bar_on_screen; /* a progress bar occupies the current stderr line */

/* ---- time, threads, errors ---- */

double ex_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ex_set_threads(int t)
{
    if (t > 0)
        omp_set_num_threads(t);
    int n = omp_get_max_threads();
    openblas_set_num_threads(n);
    return n;
}

void ex_set_program_name(const char *name)
{
    const char *slash = strrchr(name, '/');
    program = slash ? slash + 1 : name;
}

static void clear_bar(void)
{
    if (bar_on_screen) {
        fputs("\r\033[K", stderr);
        bar_on_screen = 0;
    }
}

void ex_die(int status, const char *fmt, ...)
{
    va_list ap;
    clear_bar();
    fprintf(stderr, "%s: ", program);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

void ex_log(const char *fmt, ...)
{
    va_list ap;
    clear_bar();
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* ---- progress ---- */

static void format_duration(char *buf, size_t size, double s)
{
    long t = s > 0 && isfinite(s) ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

void ex_progress_start(ex_progress *p, const char *label, long total)
{
    p->label = label;
    p->total = total > 0 ? total : 1;
    p->t0 = ex_now();
    p->last_draw = 0;
    p->tty = isatty(STDERR_FILENO);
    p->last_decile = 0;
}

void ex_progress_update(ex_progress *p, long step, const char *metrics)
{
    double now = ex_now(), elapsed = now - p->t0;
    int done = step >= p->total;
    int decile = (int)(10 * step / p->total);
    if (p->tty ? (!done && now - p->last_draw < 0.1) : (!done && decile <= p->last_decile))
        return;
    p->last_draw = now;
    p->last_decile = decile;
    double rate = elapsed > 0 ? (double)step / elapsed : 0;
    char eta[32], spent[32];
    format_duration(eta, sizeof eta, rate > 0 ? (double)(p->total - step) / rate : 0);
    format_duration(spent, sizeof spent, elapsed);
    if (p->tty) {
        enum { WIDTH = 24 };
        char bar[WIDTH + 1];
        int fill = (int)(WIDTH * step / p->total);
        for (int i = 0; i < WIDTH; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[WIDTH] = '\0';
        fprintf(stderr, "\r\033[K%s [%s] %ld/%ld  %s  %.1f it/s  %s %s", p->label, bar, step,
                p->total, metrics ? metrics : "", rate, done ? "took" : "ETA",
                done ? spent : eta);
        bar_on_screen = 1;
    } else {
        fprintf(stderr, "%s %ld/%ld (%d%%)  %s  %.1f it/s  %s %s\n", p->label, step, p->total,
                (int)(100 * step / p->total), metrics ? metrics : "", rate,
                done ? "took" : "ETA", done ? spent : eta);
    }
    fflush(stderr);
}

void ex_progress_end(ex_progress *p)
{
    if (p->tty && bar_on_screen) {
        fputc('\n', stderr);
        bar_on_screen = 0;
    }
}

/* ---- JSON lines ---- */

struct ex_json {
    FILE *f;    /* NULL: discard */
    int fields; /* fields written in the current object */
};

ex_json *ex_json_open(const char *path, int append)
{
    ex_json *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    if (path && !(j->f = fopen(path, append ? "a" : "w"))) {
        fprintf(stderr, "%s: cannot open %s: %s\n", program, path, strerror(errno));
        free(j);
        return NULL;
    }
    return j;
}

void ex_json_close(ex_json *j)
{
    if (!j)
        return;
    if (j->f)
        fclose(j->f);
    free(j);
}

void ex_json_begin(ex_json *j)
{
    j->fields = 0;
    if (j->f)
        fputc('{', j->f);
}

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

static void put_key(ex_json *j, const char *key)
{
    if (j->fields++)
        fputs(", ", j->f);
    put_string(j->f, key);
    fputs(": ", j->f);
}

void ex_json_str(ex_json *j, const char *key, const char *value)
{
    if (!j->f)
        return;
    put_key(j, key);
    put_string(j->f, value ? value : "");
}

void ex_json_int(ex_json *j, const char *key, long value)
{
    if (!j->f)
        return;
    put_key(j, key);
    fprintf(j->f, "%ld", value);
}

void ex_json_num(ex_json *j, const char *key, double value)
{
    if (!j->f)
        return;
    put_key(j, key);
    if (isfinite(value))
        fprintf(j->f, "%.10g", value);
    else
        fputs("null", j->f);
}

void ex_json_end(ex_json *j)
{
    if (!j->f)
        return;
    fputs("}\n", j->f);
    fflush(j->f);
}

void ex_json_split(ex_json *j, const da_split *split, unsigned long seed)
{
    char crc[16];
    ex_json_int(j, "split_seed", (long)seed);
    ex_json_int(j, "split_n_train", split->n_train);
    ex_json_int(j, "split_n_test", split->n_test);
    snprintf(crc, sizeof crc, "%08lx",
             crc32(0L, (const Bytef *)split->train, (uInt)split->n_train * sizeof(int)));
    ex_json_str(j, "split_train_crc32", crc);
    snprintf(crc, sizeof crc, "%08lx",
             crc32(0L, (const Bytef *)split->test, (uInt)split->n_test * sizeof(int)));
    ex_json_str(j, "split_test_crc32", crc);
}

/* ---- summary ---- */

void ex_summary_add(ex_summary *s, const char *key, const char *fmt, ...)
{
    if (s->n >= EX_SUMMARY_ROWS)
        return;
    va_list ap;
    snprintf(s->key[s->n], sizeof s->key[0], "%s", key);
    va_start(ap, fmt);
    vsnprintf(s->value[s->n], sizeof s->value[0], fmt, ap);
    va_end(ap);
    s->n++;
}

void ex_summary_print(const ex_summary *s, FILE *f)
{
    int wk = 3, wv = 5;
    for (int i = 0; i < s->n; i++) {
        int lk = (int)strlen(s->key[i]), lv = (int)strlen(s->value[i]);
        wk = lk > wk ? lk : wk;
        wv = lv > wv ? lv : wv;
    }
    fprintf(f, "| %-*s | %-*s |\n|", wk, "key", wv, "value");
    for (int i = 0; i < wk + 2; i++)
        fputc('-', f);
    fputc('|', f);
    for (int i = 0; i < wv + 2; i++)
        fputc('-', f);
    fputs("|\n", f);
    for (int i = 0; i < s->n; i++)
        fprintf(f, "| %-*s | %-*s |\n", wk, s->key[i], wv, s->value[i]);
    fflush(f);
}

/* ---- option parsing ---- */

long ex_parse_long(const char *opt, const char *arg, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi)
        ex_die(2, "--%s: '%s' is not an integer in [%ld, %ld]", opt, arg, lo, hi);
    return v;
}

double ex_parse_double(const char *opt, const char *arg, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v) || v < lo || v > hi)
        ex_die(2, "--%s: '%s' is not a number in [%g, %g]", opt, arg, lo, hi);
    return v;
}

int ex_parse_choice(const char *opt, const char *arg, const char *const *choices, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(arg, choices[i]))
            return i;
    char list[256] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
        if (i + 1 < n)
            strncat(list, "|", sizeof list - strlen(list) - 1);
    }
    ex_die(2, "--%s: '%s' is not one of %s", opt, arg, list);
}

static void store_option(const ex_option *o, const char *arg)
{
    switch (o->kind) {
    case EX_KIND_INT: *(int *)o->field = (int)ex_parse_long(o->name, arg, o->lo, o->hi); break;
    case EX_KIND_LONG: *(long *)o->field = ex_parse_long(o->name, arg, o->lo, o->hi); break;
    case EX_KIND_ULONG:
        *(unsigned long *)o->field = (unsigned long)ex_parse_long(o->name, arg, o->lo, o->hi);
        break;
    case EX_KIND_DOUBLE:
        *(double *)o->field = ex_parse_double(o->name, arg, o->dlo, o->dhi);
        break;
    case EX_KIND_STRING: *(const char **)o->field = arg; break;
    case EX_KIND_FLAG: *(int *)o->field = 1; break;
    case EX_KIND_CHOICE:
        *(int *)o->field = ex_parse_choice(o->name, arg, o->choices, o->n_choices);
        break;
    }
}

#define EX_MAX_OPTIONS 64
#define EX_OPTION_VAL 256 /* getopt_long returns EX_OPTION_VAL + i for opts[i] */

void ex_parse_options(int argc, char **argv, const ex_option *opts, int n,
                      void (*usage)(FILE *f))
{
    struct option longopts[EX_MAX_OPTIONS + 2] = {{0}};
    if (n > EX_MAX_OPTIONS)
        ex_die(1, "ex_parse_options: %d options, at most %d", n, EX_MAX_OPTIONS);
    for (int i = 0; i < n; i++)
        longopts[i] = (struct option){opts[i].name,
                                      opts[i].kind == EX_KIND_FLAG ? no_argument
                                                                   : required_argument,
                                      NULL, EX_OPTION_VAL + i};
    longopts[n] = (struct option){"help", no_argument, NULL, 'h'};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            exit(0);
        }
        if (ch < EX_OPTION_VAL || ch >= EX_OPTION_VAL + n) {
            usage(stderr);
            exit(2);
        }
        store_option(&opts[ch - EX_OPTION_VAL], optarg);
    }
    if (optind < argc)
        ex_die(2, "unexpected argument '%s' (see --help)", argv[optind]);
}

void ex_check_resume(int resume, const char *checkpoint)
{
    if (resume && !checkpoint)
        ex_die(2, "--resume needs --checkpoint FILE");
}

/* ---- checkpoints ---- */

void ex_run_state_save(const char *path, const ex_run_state *s)
{
    da_checkpoint *ck = da_checkpoint_new();
    char name[32];
    int rc = ck ? DA_OK : DA_ENOMEM;
    for (int i = 0; i < s->n_params && !rc; i++) {
        snprintf(name, sizeof name, "%s%d", s->prefix, i);
        rc = da_checkpoint_put_tensor(ck, name, s->params[i]);
    }
    if (!rc)
        rc = da_checkpoint_put(ck, "optim", s->optim, s->optim_size);
    if (!rc)
        rc = da_checkpoint_put_rng(ck, "rng", s->rng);
    if (!rc)
        rc = da_checkpoint_put_long(ck, s->counter, s->value);
    if (!rc)
        rc = da_checkpoint_put(ck, s->clock, s->seconds, s->n_clock * sizeof *s->seconds);
    if (!rc && s->run_id)
        rc = da_checkpoint_put(ck, "run", s->run_id, strlen(s->run_id));
    if (!rc)
        rc = da_checkpoint_save(ck, path);
    da_checkpoint_free(ck);
    if (rc)
        ex_die(1, "writing the checkpoint: %s", da_last_error());
}

void ex_run_state_load(const char *path, ex_run_state *s)
{
    da_checkpoint *ck = NULL;
    char name[32], rejected[512];
    size_t n;
    int rc = da_checkpoint_load_latest(path, &ck, rejected, sizeof rejected);
    if (!rc && rejected[0])
        ex_log("resuming: %s rejected (%s); using the previous checkpoint %s%s", path,
               rejected, path, DA_CHECKPOINT_PREV_SUFFIX);
    const char *got = rc || !s->run_id ? NULL : da_checkpoint_get(ck, "run", &n);
    if (!rc && s->run_id && (!got || n != strlen(s->run_id) || memcmp(got, s->run_id, n)))
        rc = da_set_error(DA_EFORMAT, "%s was written for another run (not %s)", path,
                          s->run_id);
    for (int i = 0; i < s->n_params && !rc; i++) {
        snprintf(name, sizeof name, "%s%d", s->prefix, i);
        rc = da_checkpoint_get_tensor(ck, name, s->params[i]);
    }
    const void *st = rc ? NULL : da_checkpoint_get(ck, "optim", &n);
    if (!rc && (!st || n != s->optim_size))
        rc = da_set_error(DA_EFORMAT, "%s: no optimizer state of %zu bytes", path,
                          s->optim_size);
    if (!rc)
        memcpy(s->optim, st, n);
    if (!rc)
        rc = da_checkpoint_get_rng(ck, "rng", s->rng);
    if (!rc)
        rc = da_checkpoint_get_long(ck, s->counter, &s->value);
    const double *sec = rc ? NULL : da_checkpoint_get(ck, s->clock, &n);
    if (!rc && (!sec || n != s->n_clock * sizeof *s->seconds))
        rc = da_set_error(DA_EFORMAT, "%s: no elapsed time", path);
    if (!rc)
        memcpy(s->seconds, sec, n);
    da_checkpoint_free(ck);
    if (rc)
        ex_die(1, "resuming: %s", da_last_error());
}

static ex_run_state model_state(da_model *m, void *optim, size_t optim_size, da_rng *rng,
                                const char *counter, long value, double *seconds,
                                const char *run_id)
{
    return (ex_run_state){.params = da_model_params(m), .n_params = da_model_n_params(m),
                          .prefix = "param", .optim = optim, .optim_size = optim_size,
                          .rng = rng, .counter = counter, .value = value, .clock = "seconds",
                          .seconds = seconds, .n_clock = 1, .run_id = run_id};
}

void ex_checkpoint_save(const char *path, da_model *m, da_optim *opt, da_rng *rng,
                        const char *counter, long value, double seconds, const char *run_id)
{
    size_t n = da_optim_state_size(opt);
    void *st = malloc(n ? n : 1);
    if (!st || da_optim_state_save(opt, st, n))
        ex_die(1, "writing the checkpoint: %s", st ? da_last_error() : "out of memory");
    ex_run_state s = model_state(m, st, n, rng, counter, value, &seconds, run_id);
    ex_run_state_save(path, &s);
    free(st);
}

long ex_checkpoint_load(const char *path, da_model *m, da_optim *opt, da_rng *rng,
                        const char *counter, double *seconds, const char *run_id)
{
    size_t n = da_optim_state_size(opt);
    void *st = malloc(n ? n : 1);
    if (!st)
        ex_die(1, "resuming: out of memory");
    ex_run_state s = model_state(m, st, n, rng, counter, 0, seconds, run_id);
    ex_run_state_load(path, &s);
    if (da_optim_state_load(opt, st, n))
        ex_die(1, "resuming: %s", da_last_error());
    free(st);
    return s.value;
}
