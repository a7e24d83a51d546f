/* fuzz_checkpoint.c - libFuzzer target: the checkpoint loader of lib/io.h.
 * Every input is loaded twice: as given, and "repaired" (payload length and CRC-32
 * rewritten to match the bytes), so that mutations reach the blob parser behind the
 * CRC check. A loaded checkpoint is read back through every typed getter, saved and
 * loaded again: the second load must give the same blobs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "fuzz.h"
#include "io.h"

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* the typed getters on every blob: they may fail (wrong size), never crash */
static void read_back(const da_checkpoint *ck)
{
    da_rng *rng = da_rng_new(1);
    int shape[2] = {2, 3};
    da_tensor *t = da_tensor_new(DA_F64, 2, shape);
    FUZZ_CHECK(rng && t);
    for (int i = 0; i < da_checkpoint_count(ck); i++) {
        const char *name = da_checkpoint_name(ck, i);
        size_t size = 0;
        long v;
        FUZZ_CHECK(name && da_checkpoint_get(ck, name, &size));
        int rc = da_checkpoint_get_long(ck, name, &v);
        FUZZ_CHECK(rc == DA_OK || rc == DA_EFORMAT);
        rc = da_checkpoint_get_tensor(ck, name, t);
        FUZZ_CHECK(rc == DA_OK || rc == DA_EFORMAT);
        rc = da_checkpoint_get_rng(ck, name, rng);
        FUZZ_CHECK(rc == DA_OK || rc == DA_EFORMAT);
        if (rc == DA_OK) /* a restored generator must still draw in range */
            for (int k = 0; k < 700; k++) {
                double u = da_rng_uniform(rng);
                FUZZ_CHECK(u >= 0 && u < 1);
            }
    }
    da_tensor_free(t);
    da_rng_free(rng);
}

static void round_trip(const da_checkpoint *ck, const char *path)
{
    da_checkpoint *again = NULL;
    FUZZ_CHECK(da_checkpoint_save(ck, path) == DA_OK);
    FUZZ_CHECK(da_checkpoint_load(path, &again) == DA_OK);
    FUZZ_CHECK(da_checkpoint_count(again) == da_checkpoint_count(ck));
    for (int i = 0; i < da_checkpoint_count(ck); i++) {
        const char *name = da_checkpoint_name(ck, i);
        size_t s1, s2;
        const void *b1 = da_checkpoint_get(ck, name, &s1);
        const void *b2 = da_checkpoint_get(again, name, &s2);
        FUZZ_CHECK(b1 && b2 && s1 == s2 && !memcmp(b1, b2, s1));
    }
    da_checkpoint_free(again);
}

static void load(const uint8_t *data, size_t size)
{
    da_checkpoint *ck = (da_checkpoint *)1;
    const char *path = fuzz_write_file(data, size);
    int rc = da_checkpoint_load(path, &ck);
    if (rc) {
        fuzz_check_error(rc);
        FUZZ_CHECK(ck == NULL);
        return;
    }
    read_back(ck);
    round_trip(ck, path);
    da_checkpoint_free(ck);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load(data, size);
    if (size < 28)
        return 0;
    uint8_t *fixed = malloc(size);
    FUZZ_CHECK(fixed);
    memcpy(fixed, data, size);
    put_le(fixed + 16, size - 28, 8);
    put_le(fixed + size - 4, crc32_z(crc32_z(0L, Z_NULL, 0), fixed, size - 4), 4);
    load(fixed, size);
    free(fixed);
    return 0;
}
