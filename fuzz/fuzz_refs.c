/* fuzz_refs.c - libFuzzer target: the .ref parser of tests/refs.c (FORMAT.md of
 * shared/refs). A parsed file must be self-consistent: every tensor's size is the
 * product of its dimensions, every getter finds what the parser stored. */
#include <stdint.h>

#include "fuzz.h"
#include "refs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *err = NULL;
    ref_file *r = ref_load(fuzz_write_file(data, size), &err);
    if (!r) {
        FUZZ_CHECK(err && err[0]);
        return 0;
    }
    FUZZ_CHECK(r->kind[0]);
    for (int i = 0; i < r->n_tensors; i++) {
        const ref_tensor *t = &r->tensors[i];
        long count = 1;
        for (int d = 0; d < t->ndim; d++)
            count *= t->shape[d];
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= 8 && t->size == count && t->data);
        FUZZ_CHECK(ref_get(r, t->name) != NULL);
        volatile double sink = ref_err(t->data, t->data, t->size);
        (void)sink;
    }
    for (int i = 0; i < r->n_params; i++) {
        FUZZ_CHECK(ref_param(r, r->keys[i]) != NULL);
        volatile double v = ref_param_num(r, r->keys[i], 0);
        (void)v;
    }
    ref_free(r);
    return 0;
}
