/* data.c - IDX reader (plain or gzip'd through zlib), datasets, seeded splits, the
 * MNIST and Fashion-MNIST loaders (data.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "data.h"
#include "alloc.h"

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_DIM (1 << 30)
#define IDX_MAX_BYTES ((size_t)1 << 36)
#define READ_CHUNK ((size_t)1 << 20)

/* ---- IDX ---- */

static int read_header(gzFile f, const char *path, int ndim, int *dims)
{
    unsigned char h[4 + 4 * 3];
    int want = 4 + 4 * ndim;
    int got = gzread(f, h, 4);
    if (got == 4 && (h[0] != 0 || h[1] != 0 || h[2] != IDX_TYPE_UBYTE || h[3] != ndim))
        return da_set_error(DA_EFORMAT, "%s: bad IDX magic %02x %02x %02x %02x (expected "
                                        "00 00 08 %02x: unsigned bytes, %d dimensions)",
                            path, h[0], h[1], h[2], h[3], ndim, ndim);
    if (got == 4)
        got += gzread(f, h + 4, (unsigned)(want - 4));
    if (got != want)
        return da_set_error(DA_EFORMAT, "%s: truncated IDX header (%d of %d bytes)", path,
                            got < 0 ? 0 : got, want);
    for (int d = 0; d < ndim; d++) {
        const unsigned char *b = h + 4 + 4 * d;
        uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (v < 1 || v > IDX_MAX_DIM)
            return da_set_error(DA_EFORMAT, "%s: IDX dimension %d is %u (need 1..%d)", path,
                                d, v, IDX_MAX_DIM);
        dims[d] = (int)v;
    }
    return DA_OK;
}

/* the rest of the stream, which must hold exactly `expect` bytes; the buffer grows
 * with the data read, so a corrupt header cannot force a huge allocation */
static int read_body(gzFile f, const char *path, size_t expect, unsigned char **out)
{
    size_t cap = expect < READ_CHUNK ? expect : READ_CHUNK, len = 0;
    unsigned char *buf = da_malloc(cap), *grown;
    int errnum;
    if (!buf)
        return da_set_error(DA_ENOMEM, "%s: out of memory", path);
    while (len < expect) {
        if (len == cap) {
            cap = 2 * cap < expect ? 2 * cap : expect;
            if (!(grown = da_realloc(buf, cap))) {
                da_free(buf);
                return da_set_error(DA_ENOMEM, "%s: out of memory", path);
            }
            buf = grown;
        }
        size_t want = cap - len < READ_CHUNK ? cap - len : READ_CHUNK;
        int got = gzread(f, buf + len, (unsigned)want);
        if (got <= 0) {
            const char *msg = got < 0 ? gzerror(f, &errnum) : "end of file";
            da_free(buf);
            return da_set_error(DA_EFORMAT, "%s: truncated or corrupt IDX data (%zu of %zu "
                                            "bytes: %s)", path, len, expect, msg);
        }
        len += (size_t)got;
    }
    unsigned char extra;
    int more = gzread(f, &extra, 1);
    if (more != 0) {
        da_free(buf);
        return da_set_error(DA_EFORMAT, "%s: %s after the %zu bytes of IDX data", path,
                            more > 0 ? "trailing bytes" : gzerror(f, &errnum), expect);
    }
    *out = buf;
    return DA_OK;
}

/* open path, read an IDX file of ndim unsigned-byte dimensions */
static int read_idx(const char *path, int ndim, int *dims, unsigned char **bytes)
{
    if (!path)
        return da_set_error(DA_EINVAL, "IDX reader: path is NULL");
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return da_set_error(DA_EIO, "%s: cannot open: %s", path,
                            errno ? strerror(errno) : "out of memory");
    int rc = read_header(f, path, ndim, dims);
    size_t count = 1;
    for (int d = 0; d < ndim && !rc; d++) {
        count *= (size_t)dims[d];
        if (count > IDX_MAX_BYTES)
            rc = da_set_error(DA_EFORMAT, "%s: IDX data of more than %zu bytes", path,
                              IDX_MAX_BYTES);
    }
    if (!rc)
        rc = read_body(f, path, count, bytes);
    gzclose(f);
    return rc;
}

int da_idx_read_images(const char *path, int *n, int *rows, int *cols, float **images)
{
    if (!n || !rows || !cols || !images)
        return da_set_error(DA_EINVAL, "da_idx_read_images: NULL output");
    int dims[3];
    unsigned char *bytes;
    int rc = read_idx(path, 3, dims, &bytes);
    if (rc)
        return rc;
    size_t count = (size_t)dims[0] * (size_t)dims[1] * (size_t)dims[2];
    float *img = da_malloc(count * sizeof *img);
    if (!img) {
        da_free(bytes);
        return da_set_error(DA_ENOMEM, "%s: out of memory for %zu pixels", path, count);
    }
    for (size_t i = 0; i < count; i++)
        img[i] = (float)bytes[i] / 255.0f;
    da_free(bytes);
    *n = dims[0];
    *rows = dims[1];
    *cols = dims[2];
    *images = img;
    return DA_OK;
}

int da_idx_read_labels(const char *path, int *n, int **labels)
{
    if (!n || !labels)
        return da_set_error(DA_EINVAL, "da_idx_read_labels: NULL output");
    int dims[1];
    unsigned char *bytes;
    int rc = read_idx(path, 1, dims, &bytes);
    if (rc)
        return rc;
    int *lab = da_malloc((size_t)dims[0] * sizeof *lab);
    if (!lab) {
        da_free(bytes);
        return da_set_error(DA_ENOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < dims[0]; i++)
        lab[i] = bytes[i];
    da_free(bytes);
    *n = dims[0];
    *labels = lab;
    return DA_OK;
}

/* ---- datasets ---- */

da_dataset *da_dataset_load_idx(const char *images_path, const char *labels_path)
{
    da_dataset *ds = da_calloc(1, sizeof *ds);
    int n_labels;
    if (!ds) {
        da_set_error(DA_ENOMEM, "da_dataset_load_idx: out of memory");
        return NULL;
    }
    if (da_idx_read_images(images_path, &ds->n, &ds->rows, &ds->cols, &ds->images) ||
        da_idx_read_labels(labels_path, &n_labels, &ds->labels))
        goto fail;
    if (n_labels != ds->n) {
        da_set_error(DA_EFORMAT, "%s holds %d images but %s holds %d labels", images_path,
                     ds->n, labels_path, n_labels);
        goto fail;
    }
    for (int i = 0; i < ds->n; i++)
        if (ds->labels[i] + 1 > ds->n_classes)
            ds->n_classes = ds->labels[i] + 1;
    return ds;
fail:
    da_dataset_free(ds);
    return NULL;
}

void da_dataset_free(da_dataset *ds)
{
    if (!ds)
        return;
    da_free(ds->images);
    da_free(ds->labels);
    da_free(ds);
}

/* dir/name into buf; DA_ERANGE if it does not fit */
static int join_path(char *buf, size_t size, const char *dir, const char *name)
{
    int len = snprintf(buf, size, "%s/%s", dir, name);
    if (len < 0 || (size_t)len >= size)
        return da_set_error(DA_ERANGE, "path %s/%s is too long", dir, name);
    return DA_OK;
}

/* load images/labels from dir and check 28 x 28 images with labels below 10 */
static da_dataset *load_28x28(const char *dir, const char *images, const char *labels)
{
    char ip[4096], lp[4096];
    if (join_path(ip, sizeof ip, dir, images) || join_path(lp, sizeof lp, dir, labels))
        return NULL;
    da_dataset *ds = da_dataset_load_idx(ip, lp);
    if (!ds)
        return NULL;
    if (ds->rows != 28 || ds->cols != 28 || ds->n_classes > 10) {
        da_set_error(DA_EFORMAT, "%s: expected 28 x 28 images with labels 0..9, found "
                                 "%d x %d with labels up to %d", ip, ds->rows, ds->cols,
                     ds->n_classes - 1);
        da_dataset_free(ds);
        return NULL;
    }
    return ds;
}

da_dataset *da_mnist_load(const char *dir)
{
    if (!dir) {
        const char *env = getenv("DA_DATA_DIR");
        dir = env && env[0] ? env : "data";
    }
    return load_28x28(dir, "mnist-images-idx3-ubyte.gz", "mnist-labels-idx1-ubyte.gz");
}

da_dataset *da_fashion_mnist_load(const char *dir, int train)
{
    if (!dir)
        dir = DA_FASHION_MNIST_DIR;
    return train ? load_28x28(dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
                 : load_28x28(dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz");
}

static int check_indices(const da_dataset *ds, const int *idx, int count, const char *who)
{
    if (!ds || !idx)
        return da_set_error(DA_EINVAL, "%s: NULL dataset or indices", who);
    if (count < 1)
        return da_set_error(DA_ERANGE, "%s: count %d < 1", who, count);
    for (int i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= ds->n)
            return da_set_error(DA_ERANGE, "%s: index %d outside [0, %d)", who, idx[i], ds->n);
    return DA_OK;
}

int da_dataset_gather(const da_dataset *ds, const int *idx, int count, float *x, int *y)
{
    int rc = check_indices(ds, idx, count, "da_dataset_gather");
    if (rc)
        return rc;
    if (!x)
        return da_set_error(DA_EINVAL, "da_dataset_gather: x is NULL");
    size_t pix = (size_t)ds->rows * (size_t)ds->cols;
    for (int i = 0; i < count; i++) {
        memcpy(x + (size_t)i * pix, ds->images + (size_t)idx[i] * pix, pix * sizeof *x);
        if (y)
            y[i] = ds->labels[idx[i]];
    }
    return DA_OK;
}

da_tensor *da_dataset_batch(da_ctx *ctx, const da_dataset *ds, const int *idx, int count,
                            da_dtype dtype, int ndim, int *labels)
{
    if (check_indices(ds, idx, count, "da_dataset_batch"))
        return NULL;
    if (ndim != 2 && ndim != 4) {
        da_set_error(DA_EINVAL, "da_dataset_batch: ndim %d (need 2 or 4)", ndim);
        return NULL;
    }
    int s2[2] = {count, ds->rows * ds->cols}, s4[4] = {count, 1, ds->rows, ds->cols};
    da_tensor *t = da_ctx_tensor(ctx, dtype, ndim, ndim == 2 ? s2 : s4);
    if (!t)
        return NULL;
    size_t pix = (size_t)ds->rows * (size_t)ds->cols;
    DA_DISPATCH(dtype, T, {
        T *x = t->data; /* [count][rows * cols] */
        for (int i = 0; i < count; i++) {
            const float *src = ds->images + (size_t)idx[i] * pix;
            for (size_t k = 0; k < pix; k++)
                x[(size_t)i * pix + k] = (T)src[k];
            if (labels)
                labels[i] = ds->labels[idx[i]];
        }
    });
    return t;
}

/* ---- splits ---- */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

da_split *da_split_new(int n, int n_train, int n_test, da_rng *rng)
{
    if (!rng) {
        da_set_error(DA_EINVAL, "da_split_new: rng is NULL");
        return NULL;
    }
    if (n < 1 || n_train < 0 || n_test < 0 || n_train > n - n_test) {
        da_set_error(DA_ERANGE, "da_split_new: need n_train (%d) + n_test (%d) <= n (%d), "
                                "all >= 0", n_train, n_test, n);
        return NULL;
    }
    da_split *s = da_calloc(1, sizeof *s);
    int *perm = da_malloc((size_t)n * sizeof *perm);
    if (s) {
        s->train = da_malloc(((size_t)n_train + 1) * sizeof *s->train);
        s->test = da_malloc(((size_t)n_test + 1) * sizeof *s->test);
    }
    if (!s || !perm || !s->train || !s->test) {
        da_free(perm);
        da_split_free(s);
        da_set_error(DA_ENOMEM, "da_split_new: out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        perm[i] = i;
    da_rng_shuffle(rng, perm, n);
    s->n_train = n_train;
    s->n_test = n_test;
    memcpy(s->train, perm, (size_t)n_train * sizeof *perm);
    memcpy(s->test, perm + n_train, (size_t)n_test * sizeof *perm);
    qsort(s->train, (size_t)n_train, sizeof *perm, cmp_int);
    qsort(s->test, (size_t)n_test, sizeof *perm, cmp_int);
    da_free(perm);
    return s;
}

void da_split_free(da_split *split)
{
    if (!split)
        return;
    da_free(split->train);
    da_free(split->test);
    da_free(split);
}
