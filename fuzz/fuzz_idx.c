/* fuzz_idx.c - libFuzzer target: the IDX readers of lib/data.h (plain and gzip'd files).
 * The input is read both as idx3 images and as idx1 labels. A success must describe
 * exactly the bytes of a plain file (16 / 8 header bytes + the data) and give gray
 * levels in [0, 1] and labels in 0..255; a failure must leave a message. */
#include <stdint.h>
#include <stdlib.h>

#include "data.h"
#include "fuzz.h"

static int is_gzip(const uint8_t *data, size_t size)
{
    return size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size);
    int n = -1, rows = -1, cols = -1, *labels = NULL;
    float *images = NULL;

    int rc = da_idx_read_images(path, &n, &rows, &cols, &images);
    if (rc) {
        fuzz_check_error(rc);
        FUZZ_CHECK(images == NULL && n == -1);
    } else {
        size_t count = (size_t)n * (size_t)rows * (size_t)cols;
        FUZZ_CHECK(n >= 1 && rows >= 1 && cols >= 1);
        FUZZ_CHECK(is_gzip(data, size) || count + 16 == size);
        for (size_t i = 0; i < count; i++)
            FUZZ_CHECK(images[i] >= 0.0f && images[i] <= 1.0f);
        free(images);
    }

    n = -1;
    rc = da_idx_read_labels(path, &n, &labels);
    if (rc) {
        fuzz_check_error(rc);
        FUZZ_CHECK(labels == NULL && n == -1);
    } else {
        FUZZ_CHECK(n >= 1);
        FUZZ_CHECK(is_gzip(data, size) || (size_t)n + 8 == size);
        for (int i = 0; i < n; i++)
            FUZZ_CHECK(labels[i] >= 0 && labels[i] <= 255);
        free(labels);
    }
    return 0;
}
