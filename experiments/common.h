/* common.h - what every experiment program shares (DESIGN.md §8): a progress bar on
 * stderr (plain log lines when stderr is not a terminal), a JSON-lines writer, a final
 * summary table, option parsing helpers for getopt_long, timing and thread control.
 *
 * These are program utilities, not library code: they print, and ex_die exits. */
#ifndef EX_COMMON_H
#define EX_COMMON_H

#include <stdio.h>

#include "data.h"
#include "io.h"
#include "layers.h"
#include "optim.h"

/* ---- time and threads ---- */
double ex_now(void); /* monotonic seconds */
/* OpenMP and OpenBLAS threads; t <= 0 keeps the current OpenMP default. Returns the
 * thread count in use. */
int ex_set_threads(int t);
/* Print "PROGRAM: message" on stderr and exit(status). */
void ex_die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void ex_set_program_name(const char *name);

/* ---- progress: a bar on a terminal, a log line every ~10% (and the last) otherwise ---- */
typedef struct {
    const char *label;
    long total;
    double t0, last_draw;
    int tty;
    int last_decile; /* last 10% mark logged (plain mode) */
} ex_progress;

void ex_progress_start(ex_progress *p, const char *label, long total);
/* step in 1..total; metrics is a short text ("loss 0.123 acc 0.97") or NULL. On a
 * terminal redraws at most 10 times a second. */
void ex_progress_update(ex_progress *p, long step, const char *metrics);
/* Finish the bar line (terminal) so that the next output starts on its own line. */
void ex_progress_end(ex_progress *p);
/* A log line on stderr that does not collide with the bar. */
void ex_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- JSON lines: one object per line, flushed at the end of each line ---- */
typedef struct ex_json ex_json;

/* path NULL: a writer that discards everything (no --out given); append = 1 adds to
 * an existing file (a resumed run). NULL if the file cannot be opened (message
 * printed). */
ex_json *ex_json_open(const char *path, int append);
void ex_json_close(ex_json *j); /* NULL is a no-op */
void ex_json_begin(ex_json *j);
void ex_json_str(ex_json *j, const char *key, const char *value);
void ex_json_int(ex_json *j, const char *key, long value);
void ex_json_num(ex_json *j, const char *key, double value); /* NaN/Inf as null */
void ex_json_end(ex_json *j);
/* The data split of the first line: split_seed, split_n_train, split_n_test and the
 * CRC-32 of the train and test index arrays (int32, host order). */
void ex_json_split(ex_json *j, const da_split *split, unsigned long seed);

/* ---- final summary: a two-column Markdown table on stdout ---- */
#define EX_SUMMARY_ROWS 32
typedef struct {
    int n;
    char key[EX_SUMMARY_ROWS][48];
    char value[EX_SUMMARY_ROWS][96];
} ex_summary;

void ex_summary_add(ex_summary *s, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ex_summary_print(const ex_summary *s, FILE *f);

/* ---- option parsing (exit with status 2 and a message on a bad value) ---- */
long ex_parse_long(const char *opt, const char *arg, long lo, long hi);
double ex_parse_double(const char *opt, const char *arg, double lo, double hi);
/* index of arg in choices[0..n-1] */
int ex_parse_choice(const char *opt, const char *arg, const char *const *choices, int n);

/* A program's options as one table, parsed by ex_parse_options:
 *     const ex_option opts[] = {EX_OPT_INT("batch", &c.batch, 1, 4096),
 *                               EX_OPT_STRING("out", &c.out), EX_OPT_FLAG("resume", &c.resume)};
 *     ex_parse_options(argc, argv, opts, EX_LEN(opts), usage);
 * The macros check the field's type at compile time. Integer kinds take the range
 * [lo, hi] as long, EX_OPT_DOUBLE as double; a flag sets its int to 1; a choice stores
 * the index of the value in its array of names. */
typedef enum {
    EX_KIND_INT,    /* int */
    EX_KIND_LONG,   /* long */
    EX_KIND_ULONG,  /* unsigned long, range given as long */
    EX_KIND_DOUBLE, /* double */
    EX_KIND_STRING, /* const char *, the argv string itself */
    EX_KIND_FLAG,   /* int, no argument */
    EX_KIND_CHOICE  /* int: index in choices[0..n_choices-1] */
} ex_option_kind;

typedef struct {
    const char *name; /* without the leading "--" */
    ex_option_kind kind;
    void *field;
    long lo, hi;     /* integer kinds */
    double dlo, dhi; /* EX_KIND_DOUBLE */
    const char *const *choices;
    int n_choices;
} ex_option;

#define EX_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define EX_FIELD(type, p) ((void *)(1 ? (p) : (type *)0)) /* a type mismatch is an error */
#define EX_OPT_(n_, kind_, type, p) .name = n_, .kind = kind_, .field = EX_FIELD(type, p)
#define EX_OPT_INT(n_, p, lo_, hi_) {EX_OPT_(n_, EX_KIND_INT, int, p), .lo = lo_, .hi = hi_}
#define EX_OPT_LONG(n_, p, lo_, hi_) {EX_OPT_(n_, EX_KIND_LONG, long, p), .lo = lo_, .hi = hi_}
#define EX_OPT_ULONG(n_, p, lo_, hi_) \
    {EX_OPT_(n_, EX_KIND_ULONG, unsigned long, p), .lo = lo_, .hi = hi_}
#define EX_OPT_DOUBLE(n_, p, lo_, hi_) \
    {EX_OPT_(n_, EX_KIND_DOUBLE, double, p), .dlo = lo_, .dhi = hi_}
#define EX_OPT_STRING(n_, p) {EX_OPT_(n_, EX_KIND_STRING, const char *, p)}
#define EX_OPT_FLAG(n_, p) {EX_OPT_(n_, EX_KIND_FLAG, int, p)}
#define EX_OPT_CHOICE(n_, p, names) \
    {EX_OPT_(n_, EX_KIND_CHOICE, int, p), .choices = names, .n_choices = EX_LEN(names)}
/* the options every program spells the same way */
#define EX_OPT_SEED(n_, p) EX_OPT_ULONG(n_, p, 0, 1L << 32)
#define EX_OPT_THREADS(p) EX_OPT_INT("threads", p, 1, 1024)

/* Parse argv with getopt_long against opts[0..n-1] plus --help / -h, storing each value
 * in its field. --help: usage(stdout), exit 0; an unknown option or a missing argument:
 * usage(stderr), exit 2; a bad value or a positional argument: a message, exit 2. */
void ex_parse_options(int argc, char **argv, const ex_option *opts, int n,
                      void (*usage)(FILE *f));
/* "--resume needs --checkpoint FILE" (exit 2) when resume is set without a checkpoint */
void ex_check_resume(int resume, const char *checkpoint);

/* ---- checkpoints of a training run (lib/io.h format, written atomically) ----
 * The state every training program saves: its parameter tensors (entries <prefix>0,
 * <prefix>1, ...), the optimizer state ("optim": a blob the optimizer's own state_save
 * wrote, of exactly optim_size bytes), the generator ("rng"), a counter named
 * `counter` ("epoch" or "step"), n_clock elapsed-time figures (entry `clock`), and a run
 * id (the configuration a resume must match, or NULL for none). */
typedef struct {
    da_tensor **params;
    int n_params;
    const char *prefix;
    void *optim;        /* [optim_size] bytes: saved; filled by a load */
    size_t optim_size;
    da_rng *rng;
    const char *counter;
    long value;         /* saved; set by a load */
    const char *clock;
    double *seconds;    /* [n_clock]: saved; set by a load */
    int n_clock;
    const char *run_id;
} ex_run_state;

/* On any error both print the message and exit(1). A load takes the newest intact file:
 * a damaged (truncated, corrupted) or missing checkpoint is rejected with a log line and
 * the previous one (FILE.prev, kept by every save) is used (da_checkpoint_load_latest). */
void ex_run_state_save(const char *path, const ex_run_state *s);
void ex_run_state_load(const char *path, ex_run_state *s);

/* The same for a da_model (entries param0, ...; one clock "seconds"); the load returns
 * the counter and sets *seconds. */
void ex_checkpoint_save(const char *path, da_model *m, da_optim *opt, da_rng *rng,
                        const char *counter, long value, double seconds, const char *run_id);
long ex_checkpoint_load(const char *path, da_model *m, da_optim *opt, da_rng *rng,
                        const char *counter, double *seconds, const char *run_id);

#endif
