/* data.h - image classification data sets from IDX files (DESIGN.md §7): an IDX
 * reader (unsigned-byte images idx3 and labels idx1, plain or gzip'd), a dataset
 * struct, seeded train/test splits, and the MNIST / Fashion-MNIST loaders.
 *
 * IDX (LeCun et al., the MNIST distribution format): a big-endian header of a 4-byte
 * magic (0, 0, type 0x08 = unsigned byte, number of dimensions) and one 4-byte size per
 * dimension, then the bytes in row-major order. Files are read through zlib's gzread,
 * which reads gzip'd and plain files alike. Readers check the magic, the dimensions and
 * the exact length: DA_EFORMAT on any mismatch (wrong magic or type, zero or huge
 * dimensions, truncated data, trailing bytes, corrupt gzip stream), DA_EIO when the
 * file cannot be opened.
 *
 * Ownership: da_idx_read_* return heap arrays the caller frees with free() (or da_free);
 * da_dataset_* / da_mnist_load / da_fashion_mnist_load return a dataset freed with
 * da_dataset_free; da_split_new returns a split freed with da_split_free (NULL no-op). */
#ifndef DA_DATA_H
#define DA_DATA_H

#include "rng.h"
#include "tensor.h"

/* Gray levels of images are byte / 255 (floats in [0, 1]). */
typedef struct {
    int n, rows, cols;
    int n_classes;  /* 1 + the largest label */
    float *images;  /* [n][rows][cols] */
    int *labels;    /* [n] */
} da_dataset;

/* idx3 unsigned-byte images: *images = [n][rows][cols] gray levels byte / 255. */
int da_idx_read_images(const char *path, int *n, int *rows, int *cols, float **images);
/* idx1 unsigned-byte labels: *labels = [n] values 0..255. */
int da_idx_read_labels(const char *path, int *n, int **labels);

/* Images and labels of the same count (DA_EFORMAT otherwise). NULL on error. */
da_dataset *da_dataset_load_idx(const char *images_path, const char *labels_path);
void da_dataset_free(da_dataset *ds);

/* The MNIST digits converted by scripts/setup: mnist-images-idx3-ubyte.gz and
 * mnist-labels-idx1-ubyte.gz (28 x 28, labels 0..9; DA_EFORMAT otherwise) in dir; dir
 * NULL means env DA_DATA_DIR if set and not empty, else "data" (relative to the
 * working directory). NULL on error. */
da_dataset *da_mnist_load(const char *dir);
#define DA_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
/* Fashion-MNIST (Debian package dataset-fashion-mnist): train = 1 for the 60,000
 * training images (train-*), 0 for the 10,000 test images (t10k-*); dir NULL means
 * DA_FASHION_MNIST_DIR. NULL on error. */
da_dataset *da_fashion_mnist_load(const char *dir, int train);

/* Copy the examples idx[0..count-1] (each in [0, n)) into x [count][rows][cols] and
 * y [count] (y may be NULL). */
int da_dataset_gather(const da_dataset *ds, const int *idx, int count, float *x, int *y);
/* The same as a ctx tensor of dtype: ndim 2 gives [count][rows*cols], ndim 4 gives
 * [count][1][rows][cols]; labels (may be NULL) receives the count labels. NULL on
 * error. */
da_tensor *da_dataset_batch(da_ctx *ctx, const da_dataset *ds, const int *idx, int count,
                            da_dtype dtype, int ndim, int *labels);

/* A seeded split of 0..n-1 into disjoint index sets: one da_rng_shuffle of 0..n-1,
 * train = its first n_train entries, test = the next n_test; each set is then sorted
 * ascending. Needs n_train, n_test >= 0 and n_train + n_test <= n. */
typedef struct {
    int n_train, n_test;
    int *train; /* [n_train] */
    int *test;  /* [n_test] */
} da_split;

da_split *da_split_new(int n, int n_train, int n_test, da_rng *rng);
void da_split_free(da_split *split);

#endif
