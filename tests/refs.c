/* refs.c - parser for the .ref reference vector files (../shared/refs/FORMAT.md). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refs.h"

/* largest tensor accepted (elements) */
#define REF_MAX_SIZE (1L << 40)

static char err_buf[600];

static ref_file *fail(ref_file *r, FILE *f, const char **err, const char *msg, const char *path)
{
    snprintf(err_buf, sizeof err_buf, "%s: %s", path, msg);
    if (err)
        *err = err_buf;
    if (f)
        fclose(f);
    ref_free(r);
    return NULL;
}

static int grow(void **p, int n, size_t elem)
{
    if ((n & (n - 1)) != 0 && n != 0)
        return 0;
    void *q = realloc(*p, (size_t)(n ? 2 * n : 4) * elem);
    if (!q)
        return -1;
    *p = q;
    return 0;
}

/* the t->size numbers of a tensor into t->data: 0, 1 if truncated, -1 if out of memory.
 * The buffer grows with the numbers read, so that dimensions announced by a corrupt
 * file cannot force a huge allocation. */
static int read_values(FILE *f, ref_tensor *t)
{
    long cap = t->size < 1024 ? (t->size ? t->size : 1) : 1024;
    if (!(t->data = malloc((size_t)cap * sizeof *t->data)))
        return -1;
    for (long i = 0; i < t->size; i++) {
        if (i == cap) {
            cap = cap > t->size / 2 ? t->size : 2 * cap;
            double *grown = realloc(t->data, (size_t)cap * sizeof *grown);
            if (!grown)
                return -1;
            t->data = grown;
        }
        if (fscanf(f, "%lf", &t->data[i]) != 1)
            return 1;
    }
    return 0;
}

ref_file *ref_load(const char *path, const char **err)
{
    FILE *f = fopen(path, "r");
    ref_file *r = calloc(1, sizeof *r);
    char tok[256];
    if (!r)
        return fail(r, f, err, "out of memory", path);
    if (!f)
        return fail(r, f, err, strerror(errno), path);
    snprintf(r->path, sizeof r->path, "%s", path);
    while (fscanf(f, "%255s", tok) == 1) {
        if (tok[0] == '#') {
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
        } else if (!strcmp(tok, "kind")) {
            if (fscanf(f, "%63s", r->kind) != 1)
                return fail(r, f, err, "truncated kind line", path);
        } else if (!strcmp(tok, "param")) {
            if (grow((void **)&r->keys, r->n_params, sizeof *r->keys) ||
                grow((void **)&r->vals, r->n_params, sizeof *r->vals))
                return fail(r, f, err, "out of memory", path);
            if (fscanf(f, "%63s %255s", r->keys[r->n_params], r->vals[r->n_params]) != 2)
                return fail(r, f, err, "truncated param line", path);
            r->n_params++;
        } else if (!strcmp(tok, "tensor") || !strcmp(tok, "scalar")) {
            if (grow((void **)&r->tensors, r->n_tensors, sizeof *r->tensors))
                return fail(r, f, err, "out of memory", path);
            ref_tensor *t = &r->tensors[r->n_tensors];
            memset(t, 0, sizeof *t);
            r->n_tensors++;
            if (fscanf(f, "%63s", t->name) != 1)
                return fail(r, f, err, "truncated tensor header", path);
            t->size = 1;
            if (!strcmp(tok, "tensor")) {
                /* dims run to the end of the line */
                int c;
                while ((c = fgetc(f)) != EOF && c != '\n') {
                    if (c == ' ' || c == '\t' || c == '\r')
                        continue;
                    ungetc(c, f);
                    int d;
                    if (t->ndim >= 8 || fscanf(f, "%d", &d) != 1 || d < 0 ||
                        (d > 0 && t->size > REF_MAX_SIZE / d))
                        return fail(r, f, err, "bad tensor dimensions", path);
                    t->shape[t->ndim++] = d;
                    t->size *= d;
                }
            }
            int rc = read_values(f, t);
            if (rc)
                return fail(r, f, err, rc < 0 ? "out of memory" : "truncated tensor data", path);
        } else {
            return fail(r, f, err, "unknown line", path);
        }
    }
    fclose(f);
    if (!r->kind[0])
        return fail(r, NULL, err, "no kind line", path);
    return r;
}

void ref_free(ref_file *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_tensors; i++)
        free(r->tensors[i].data);
    free(r->tensors);
    free(r->keys);
    free(r->vals);
    free(r);
}

const ref_tensor *ref_get(const ref_file *r, const char *name)
{
    for (int i = 0; i < r->n_tensors; i++)
        if (!strcmp(r->tensors[i].name, name))
            return &r->tensors[i];
    return NULL;
}

const char *ref_param(const ref_file *r, const char *key)
{
    for (int i = 0; i < r->n_params; i++)
        if (!strcmp(r->keys[i], key))
            return r->vals[i];
    return NULL;
}

double ref_param_num(const ref_file *r, const char *key, double dflt)
{
    const char *v = ref_param(r, key);
    return v ? strtod(v, NULL) : dflt;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ref_list(const char *kind, char ***paths)
{
    const char *root = getenv("DA_REFS_DIR");
    char dir[512];
    int n = 0;
    *paths = NULL;
    snprintf(dir, sizeof dir, "%s/%s", root ? root : "../shared/refs", kind);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".ref"))
            continue;
        if (grow((void **)paths, n, sizeof **paths))
            break;
        size_t sz = strlen(dir) + len + 2;
        (*paths)[n] = malloc(sz);
        if (!(*paths)[n])
            break;
        snprintf((*paths)[n], sz, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(*paths, (size_t)n, sizeof **paths, cmp_str);
    return n;
}

void ref_list_free(char **paths, int n)
{
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

double ref_err(const double *a, const double *ref, long n)
{
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]);
        if (!(d <= num)) /* also catches NaN */
            num = isnan(d) ? INFINITY : d;
        if (fabs(ref[i]) > den)
            den = fabs(ref[i]);
    }
    return den > 0 ? num / den : num;
}
