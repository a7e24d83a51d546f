/* fuzz.h - helpers of the libFuzzer targets (the fuzz_TARGET.c files, built by
 * scripts/fuzz): invariant checks and, for readers that take a path, one temporary file
 * per process that holds the current input. */
#ifndef DA_FUZZ_H
#define DA_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

/* a failed invariant: abort so that libFuzzer records the input */
#define FUZZ_CHECK(cond)                                                                \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static char fuzz_path[64];

/* the input file, and the PATH.prev that da_checkpoint_save keeps when saving over it */
static void fuzz_remove_file(void)
{
    char prev[sizeof fuzz_path + 8];
    snprintf(prev, sizeof prev, "%s.prev", fuzz_path);
    unlink(fuzz_path);
    unlink(prev);
}

/* path of a file holding exactly data[0..size); aborts (a harness failure, not a
 * finding) if the temporary file cannot be written */
static const char *fuzz_write_file(const unsigned char *data, size_t size)
{
    if (!fuzz_path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(fuzz_path, sizeof fuzz_path, "%s/da-fuzz.XXXXXX", dir && dir[0] ? dir : "/tmp");
        int fd = mkstemp(fuzz_path);
        if (fd < 0)
            abort();
        close(fd);
        atexit(fuzz_remove_file);
    }
    FILE *f = fopen(fuzz_path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f))
        abort();
    return fuzz_path;
}

/* a failing call must leave a non-empty message and the code it returned */
static void fuzz_check_error(int rc)
{
    FUZZ_CHECK(rc > DA_OK && rc <= DA_ESTATE);
    FUZZ_CHECK(da_last_error_code() == rc);
    FUZZ_CHECK(da_last_error()[0] != '\0');
}

#endif
