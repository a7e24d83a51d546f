/* test_io.c - atomic writes and checkpoints: bit-exact round trip, every corrupted
 * byte and every truncation rejected with DA_EFORMAT, the fallback to the previous
 * checkpoint, no temporary files left. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "diffalg.h"
#include "suite_run.h"

static char g_dir[256];

static void make_dir(void)
{
    strcpy(g_dir, "/tmp/da_io_XXXXXX");
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

/* number of entries in g_dir (besides . and ..); with `only`, fail on any other name */
static int dir_entries(const char *only)
{
    DIR *d = opendir(g_dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (only)
            ck_assert_msg(!strcmp(e->d_name, only), "unexpected file %s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static void write_raw(const char *path, const unsigned char *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(buf, 1, n, f), n);
    fclose(f);
}

/* a checkpoint with two parameter tensors, an optimizer state, an RNG and a step */
typedef struct {
    da_tensor *w, *b;
    da_optim *opt;
    da_rng *rng;
} model;

static model make_model(unsigned long seed)
{
    model m;
    int sw[2] = {3, 4}, sb[1] = {3};
    m.w = da_tensor_new(DA_F32, 2, sw);
    m.b = da_tensor_new(DA_F64, 1, sb);
    m.rng = da_rng_new(seed);
    for (long i = 0; i < m.w->size; i++)
        da_set(m.w, i, da_rng_normal(m.rng));
    for (long i = 0; i < m.b->size; i++)
        da_set(m.b, i, da_rng_normal(m.rng));
    da_tensor *ps[2] = {m.w, m.b};
    da_optim_cfg cfg = da_adam_cfg(0.01);
    m.opt = da_optim_new(ps, 2, &cfg);
    ck_assert_ptr_nonnull(m.opt);
    return m;
}

static void train_steps(model *m, int steps)
{
    for (int s = 0; s < steps; s++) {
        float *gw = da_tensor_grad(m->w);
        double *gb = da_tensor_grad(m->b);
        for (long i = 0; i < m->w->size; i++)
            gw[i] = (float)da_rng_normal(m->rng);
        for (long i = 0; i < m->b->size; i++)
            gb[i] = da_rng_normal(m->rng);
        ck_assert_int_eq(da_optim_step(m->opt), DA_OK);
    }
}

static void free_model(model *m)
{
    da_optim_free(m->opt);
    da_tensor_free(m->w);
    da_tensor_free(m->b);
    da_rng_free(m->rng);
}

static int save_model(const model *m, long step, const char *path)
{
    da_checkpoint *ck = da_checkpoint_new();
    size_t n = da_optim_state_size(m->opt);
    ck_assert_int_eq(da_checkpoint_put_tensor(ck, "w", m->w), DA_OK);
    ck_assert_int_eq(da_checkpoint_put_tensor(ck, "b", m->b), DA_OK);
    ck_assert_int_eq(da_optim_state_save(m->opt, da_checkpoint_put_alloc(ck, "optim", n), n),
                     DA_OK);
    ck_assert_int_eq(da_checkpoint_put_rng(ck, "rng", m->rng), DA_OK);
    ck_assert_int_eq(da_checkpoint_put_long(ck, "step", step), DA_OK);
    int rc = da_checkpoint_save(ck, path);
    da_checkpoint_free(ck);
    return rc;
}

/* restore m and *step from ck, then free ck */
static void restore_model(model *m, long *step, da_checkpoint *ck)
{
    ck_assert_int_eq(da_checkpoint_count(ck), 5);
    ck_assert_str_eq(da_checkpoint_name(ck, 2), "optim");
    size_t n;
    const void *st = da_checkpoint_get(ck, "optim", &n);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(da_checkpoint_get_tensor(ck, "w", m->w), DA_OK);
    ck_assert_int_eq(da_checkpoint_get_tensor(ck, "b", m->b), DA_OK);
    ck_assert_int_eq(da_optim_state_load(m->opt, st, n), DA_OK);
    ck_assert_int_eq(da_checkpoint_get_rng(ck, "rng", m->rng), DA_OK);
    ck_assert_int_eq(da_checkpoint_get_long(ck, "step", step), DA_OK);
    da_checkpoint_free(ck);
}

static void load_model(model *m, long *step, const char *path)
{
    da_checkpoint *ck;
    ck_assert_int_eq(da_checkpoint_load(path, &ck), DA_OK);
    restore_model(m, step, ck);
}

/* da_checkpoint_load_latest of path into m; why receives the rejection message */
static void load_model_latest(model *m, long *step, const char *path, char *why, size_t n)
{
    da_checkpoint *ck;
    int rc = da_checkpoint_load_latest(path, &ck, why, n);
    ck_assert_msg(rc == DA_OK, "load_latest: %s", da_last_error());
    restore_model(m, step, ck);
}

/* run 5 steps, checkpoint, 5 more; a resumed model from another seed matches bit for bit */
START_TEST(test_checkpoint_resume_bit_exact)
{
    make_dir();
    model a = make_model(1), b = make_model(99);
    train_steps(&a, 5);
    ck_assert_int_eq(save_model(&a, 5, path_of("ck")), DA_OK);
    ck_assert_int_eq(dir_entries("ck"), 1);
    train_steps(&a, 5);
    long step = 0;
    load_model(&b, &step, path_of("ck"));
    ck_assert_int_eq(step, 5);
    train_steps(&b, 5);
    ck_assert_int_eq(memcmp(a.w->data, b.w->data, (size_t)a.w->size * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(a.b->data, b.b->data, (size_t)a.b->size * sizeof(double)), 0);
    ck_assert_int_eq(da_optim_steps(b.opt), 10);
    ck_assert_double_eq(da_rng_uniform(a.rng), da_rng_uniform(b.rng));
    /* overwrite in place: the new file and the one it replaced, no temporary left */
    ck_assert_int_eq(save_model(&b, 10, path_of("ck")), DA_OK);
    ck_assert_int_eq(dir_entries(NULL), 2);
    struct stat st;
    ck_assert_int_eq(stat(path_of("ck" DA_CHECKPOINT_PREV_SUFFIX), &st), 0);
    load_model(&a, &step, path_of("ck"));
    ck_assert_int_eq(step, 10);
    free_model(&a);
    free_model(&b);
    remove_dir();
}
END_TEST

/* the newest checkpoint truncated, bit-flipped or missing: da_checkpoint_load_latest
 * rejects it with a message naming why and restores the previous state (ck.prev, kept by
 * da_checkpoint_save); a damaged newest file never replaces a good ck.prev */
START_TEST(test_checkpoint_fallback)
{
    make_dir();
    model a = make_model(1), b = make_model(99);
    const char *ck = path_of("ck");
    float w3[12];
    char why[512];
    long step;
    train_steps(&a, 3);
    ck_assert_int_eq(save_model(&a, 3, ck), DA_OK);
    ck_assert_int_eq(dir_entries("ck"), 1); /* nothing to keep on the first save */
    memcpy(w3, a.w->data, sizeof w3);
    train_steps(&a, 2);
    ck_assert_int_eq(save_model(&a, 5, ck), DA_OK);
    load_model_latest(&b, &step, ck, why, sizeof why);
    ck_assert_int_eq(step, 5);
    ck_assert_str_eq(why, "");
    void *raw;
    size_t size;
    ck_assert_int_eq(da_file_read(ck, &raw, &size), DA_OK);
    unsigned char *buf = raw;
    /* truncated newest */
    write_raw(ck, buf, size - 7);
    load_model_latest(&b, &step, ck, why, sizeof why);
    ck_assert_int_eq(step, 3);
    ck_assert_int_eq(memcmp(b.w->data, w3, sizeof w3), 0);
    ck_assert_msg(strstr(why, "DA_EFORMAT") && strstr(why, ck) && strstr(why, "truncated"),
                  "rejection message: '%s'", why);
    /* one flipped bit in the newest */
    buf[size / 2] ^= 0x04;
    write_raw(ck, buf, size);
    load_model_latest(&b, &step, ck, why, sizeof why);
    ck_assert_int_eq(step, 3);
    ck_assert_msg(strstr(why, "CRC"), "rejection message: '%s'", why);
    /* saving over the damaged newest keeps the good ck.prev (step 3) */
    ck_assert_int_eq(save_model(&a, 5, ck), DA_OK);
    write_raw(ck, buf, size);
    load_model_latest(&b, &step, ck, why, sizeof why);
    ck_assert_int_eq(step, 3);
    /* newest missing (a kill between the two renames of a save) */
    ck_assert_int_eq(remove(ck), 0);
    load_model_latest(&b, &step, ck, why, sizeof why);
    ck_assert_int_eq(step, 3);
    ck_assert_msg(strstr(why, "cannot open"), "rejection message: '%s'", why);
    /* both damaged: DA_EFORMAT naming both; neither present: DA_EIO */
    write_raw(ck, buf, size);
    write_raw(path_of("ck" DA_CHECKPOINT_PREV_SUFFIX), buf, size - 1);
    da_checkpoint *c = (da_checkpoint *)1;
    ck_assert_int_eq(da_checkpoint_load_latest(ck, &c, why, sizeof why), DA_EFORMAT);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(why, "");
    ck_assert_msg(strstr(da_last_error(), "CRC") && strstr(da_last_error(), "previous") &&
                      strstr(da_last_error(), "truncated"),
                  "message: '%s'", da_last_error());
    ck_assert_int_eq(da_checkpoint_load_latest(path_of("none"), &c, NULL, 0), DA_EIO);
    ck_assert_int_eq(da_checkpoint_load_latest(NULL, &c, NULL, 0), DA_EINVAL);
    ck_assert_int_eq(da_checkpoint_load_latest(ck, NULL, NULL, 0), DA_EINVAL);
    free(raw);
    free_model(&a);
    free_model(&b);
    remove_dir();
}
END_TEST

START_TEST(test_checkpoint_every_corruption)
{
    make_dir();
    da_checkpoint *ck = da_checkpoint_new();
    double v[5] = {1.5, -2.25, 3e-300, 1e300, 0.0};
    ck_assert_int_eq(da_checkpoint_put(ck, "values", v, sizeof v), DA_OK);
    ck_assert_int_eq(da_checkpoint_put_long(ck, "step", 123456789012L), DA_OK);
    ck_assert_int_eq(da_checkpoint_put(ck, "empty", NULL, 0), DA_OK);
    ck_assert_int_eq(da_checkpoint_save(ck, path_of("ck")), DA_OK);
    da_checkpoint_free(ck);
    void *raw;
    size_t size;
    ck_assert_int_eq(da_file_read(path_of("ck"), &raw, &size), DA_OK);
    ck_assert_int_eq(size, 24 + (4 + 6 + 8 + 40) + (4 + 4 + 8 + 8) + (4 + 5 + 8) + 4);
    unsigned char *buf = raw;
    ck_assert_int_eq(memcmp(buf, "DACKPT\r\n", 8), 0);
    da_checkpoint *back;
    ck_assert_int_eq(da_checkpoint_load(path_of("ck"), &back), DA_OK);
    size_t n;
    const double *got = da_checkpoint_get(back, "values", &n);
    ck_assert_int_eq(n, sizeof v);
    ck_assert_int_eq(memcmp(got, v, sizeof v), 0);
    long step;
    ck_assert_int_eq(da_checkpoint_get_long(back, "step", &step), DA_OK);
    ck_assert_int_eq(step, 123456789012L);
    ck_assert_ptr_nonnull(da_checkpoint_get(back, "empty", &n));
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_null(da_checkpoint_get(back, "absent", &n));
    ck_assert_int_eq(da_last_error_code(), DA_EFORMAT);
    ck_assert_int_eq(da_checkpoint_get_long(back, "values", &step), DA_EFORMAT);
    da_checkpoint_free(back);
    /* flip each bit position in turn: every corrupted byte is caught */
    for (size_t i = 0; i < size; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            buf[i] ^= (unsigned char)(1 << bit);
            write_raw(path_of("bad"), buf, size);
            buf[i] ^= (unsigned char)(1 << bit);
            da_checkpoint *c = (da_checkpoint *)1;
            ck_assert_msg(da_checkpoint_load(path_of("bad"), &c) == DA_EFORMAT,
                          "byte %zu bit %d accepted", i, bit);
            ck_assert_ptr_null(c);
        }
    }
    /* every truncation, and an extra byte */
    for (size_t len = 0; len < size; len++) {
        write_raw(path_of("bad"), buf, len);
        da_checkpoint *c;
        ck_assert_msg(da_checkpoint_load(path_of("bad"), &c) == DA_EFORMAT,
                      "truncation to %zu accepted", len);
    }
    unsigned char *longer = malloc(size + 1);
    memcpy(longer, buf, size);
    longer[size] = 0;
    write_raw(path_of("bad"), longer, size + 1);
    ck_assert_int_eq(da_checkpoint_load(path_of("bad"), &back), DA_EFORMAT);
    /* specific messages: magic, version, CRC */
    memcpy(longer, buf, size);
    longer[0] = 'X';
    write_raw(path_of("bad"), longer, size);
    ck_assert_int_eq(da_checkpoint_load(path_of("bad"), &back), DA_EFORMAT);
    ck_assert(strstr(da_last_error(), "magic") != NULL);
    memcpy(longer, buf, size);
    longer[8] = 2;
    write_raw(path_of("bad"), longer, size);
    ck_assert_int_eq(da_checkpoint_load(path_of("bad"), &back), DA_EFORMAT);
    ck_assert(strstr(da_last_error(), "version") != NULL);
    memcpy(longer, buf, size);
    longer[40] ^= 0x10;
    write_raw(path_of("bad"), longer, size);
    ck_assert_int_eq(da_checkpoint_load(path_of("bad"), &back), DA_EFORMAT);
    ck_assert(strstr(da_last_error(), "CRC") != NULL);
    free(longer);
    free(raw);
    ck_assert_int_eq(da_checkpoint_load(path_of("missing"), &back), DA_EIO);
    remove_dir();
}
END_TEST

START_TEST(test_tensor_blob_mismatch)
{
    int s1[2] = {2, 3}, s2[2] = {3, 2};
    da_tensor *a = da_tensor_new(DA_F64, 2, s1), *b = da_tensor_new(DA_F64, 2, s2);
    da_tensor *c = da_tensor_new(DA_F32, 2, s1);
    da_checkpoint *ck = da_checkpoint_new();
    ck_assert_int_eq(da_checkpoint_put_tensor(ck, "t", a), DA_OK);
    ck_assert_int_eq(da_checkpoint_get_tensor(ck, "t", b), DA_EFORMAT); /* shape */
    ck_assert_int_eq(da_checkpoint_get_tensor(ck, "t", c), DA_EFORMAT); /* dtype */
    ck_assert_int_eq(da_checkpoint_get_tensor(ck, "u", a), DA_EFORMAT); /* absent */
    /* replacing a blob keeps one entry */
    ck_assert_int_eq(da_checkpoint_put_tensor(ck, "t", c), DA_OK);
    ck_assert_int_eq(da_checkpoint_count(ck), 1);
    ck_assert_int_eq(da_checkpoint_get_tensor(ck, "t", c), DA_OK);
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[299] = '\0';
    ck_assert_int_eq(da_checkpoint_put(ck, long_name, "x", 1), DA_ERANGE);
    ck_assert_int_eq(da_checkpoint_put(ck, "", "x", 1), DA_ERANGE);
    ck_assert_int_eq(da_checkpoint_put(ck, "x", NULL, 1), DA_EINVAL);
    ck_assert_int_eq(da_checkpoint_put(NULL, "x", "x", 1), DA_EINVAL);
    da_rng *r = da_rng_new(1);
    ck_assert_int_eq(da_checkpoint_get_rng(ck, "t", r), DA_EFORMAT);
    da_rng_free(r);
    da_checkpoint_free(ck);
    da_checkpoint_free(NULL);
    da_tensor_free(a);
    da_tensor_free(b);
    da_tensor_free(c);
}
END_TEST

START_TEST(test_atomic_write_failures)
{
    make_dir();
    const char msg[] = "hello";
    ck_assert_int_eq(da_file_write_atomic(path_of("f"), msg, 5), DA_OK);
    void *data;
    size_t n;
    ck_assert_int_eq(da_file_read(path_of("f"), &data, &n), DA_OK);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(memcmp(data, msg, 5), 0);
    free(data);
    struct stat st;
    ck_assert_int_eq(stat(path_of("f"), &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);
    /* rename onto a non-empty directory fails: error, old state kept, temp removed */
    ck_assert_int_eq(mkdir(path_of("d"), 0755), 0);
    ck_assert_int_eq(da_file_write_atomic(path_of("d/x"), msg, 5), DA_OK);
    ck_assert_int_eq(da_file_write_atomic(path_of("d"), msg, 5), DA_EIO);
    ck_assert(strstr(da_last_error(), "rename") != NULL);
    ck_assert_int_eq(dir_entries(NULL), 2); /* f and d only */
    /* a directory that does not exist */
    ck_assert_int_eq(da_file_write_atomic(path_of("no/such/f"), msg, 5), DA_EIO);
    ck_assert_int_eq(da_file_write_atomic(NULL, msg, 5), DA_EINVAL);
    ck_assert_int_eq(da_file_read(path_of("d"), &data, &n), DA_EIO);
    ck_assert_int_eq(da_file_read(path_of("nothing"), &data, &n), DA_EIO);
    da_checkpoint *ck = da_checkpoint_new();
    ck_assert_int_eq(da_checkpoint_save(ck, path_of("no/such/ck")), DA_EIO);
    /* an empty checkpoint is valid */
    ck_assert_int_eq(da_checkpoint_save(ck, path_of("empty")), DA_OK);
    da_checkpoint_free(ck);
    ck_assert_int_eq(da_checkpoint_load(path_of("empty"), &ck), DA_OK);
    ck_assert_int_eq(da_checkpoint_count(ck), 0);
    da_checkpoint_free(ck);
    remove_dir();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_checkpoint_resume_bit_exact);
    tcase_add_test(tc, test_checkpoint_every_corruption);
    tcase_add_test(tc, test_checkpoint_fallback);
    tcase_add_test(tc, test_tensor_blob_mismatch);
    tcase_add_test(tc, test_atomic_write_failures);
    suite_add_tcase(s, tc);
    return suite_run(s);
}
