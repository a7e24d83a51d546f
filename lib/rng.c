/* rng.c - da_rng over gsl_rng_mt19937. */
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "error.h"
#include "alloc.h"
#include "rng.h"

struct da_rng {
    gsl_rng *r;
};

/* The generator is assembled here from gsl_rng's public fields, as gsl_rng_alloc does
 * (the struct, a zeroed state of type->size bytes, then gsl_rng_set), instead of calling
 * gsl_rng_alloc: that one reports a failed allocation to GSL's error handler, which
 * aborts by default (the library never aborts, DESIGN.md §2), and its malloc would escape
 * the allocation hook of alloc.h. da_rng_free releases both blocks. */
da_rng *da_rng_new(unsigned long seed)
{
    const gsl_rng_type *type = gsl_rng_mt19937;
    da_rng *rng = da_malloc(sizeof *rng);
    gsl_rng *r = da_malloc(sizeof *r);
    void *state = da_calloc(1, type->size);
    if (!rng || !r || !state) {
        da_free(state);
        da_free(r);
        da_free(rng);
        da_set_error(DA_ENOMEM, "da_rng_new: out of memory");
        return NULL;
    }
    r->type = type;
    r->state = state;
    gsl_rng_set(r, seed);
    rng->r = r;
    return rng;
}

void da_rng_free(da_rng *rng)
{
    if (!rng)
        return;
    da_free(rng->r->state);
    da_free(rng->r);
    da_free(rng);
}

void da_rng_seed(da_rng *rng, unsigned long seed) { gsl_rng_set(rng->r, seed); }

double da_rng_uniform(da_rng *rng) { return gsl_rng_uniform(rng->r); }

double da_rng_uniform_pos(da_rng *rng) { return gsl_rng_uniform_pos(rng->r); }

double da_rng_normal(da_rng *rng) { return gsl_ran_gaussian_ziggurat(rng->r, 1.0); }

unsigned long da_rng_int(da_rng *rng, unsigned long n)
{
    /* gsl_rng_uniform_int aborts (GSL's default error handler) outside this range */
    if (n < 1 || n > gsl_rng_max(rng->r) - gsl_rng_min(rng->r)) {
        da_set_error(DA_ERANGE, "da_rng_int: n = %lu outside [1, %lu]", n,
                     gsl_rng_max(rng->r) - gsl_rng_min(rng->r));
        return 0;
    }
    return gsl_rng_uniform_int(rng->r, n);
}

void da_rng_shuffle(da_rng *rng, int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)gsl_rng_uniform_int(rng->r, (unsigned long)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void *da_rng_gsl(da_rng *rng) { return rng->r; }

size_t da_rng_state_size(const da_rng *rng) { return gsl_rng_size(rng->r); }

void da_rng_state_save(const da_rng *rng, void *buf)
{
    memcpy(buf, gsl_rng_state(rng->r), gsl_rng_size(rng->r));
}

/* gsl's mt19937 state is { unsigned long mt[624]; int mti; }: 32-bit words and the
 * index of the next one to draw (624: regenerate first). A state with other values would
 * draw outside the generator's range or index outside mt. */
#define MT_N 624

int da_rng_state_load(da_rng *rng, const void *buf)
{
    if (!rng || !buf)
        return da_set_error(DA_EINVAL, "da_rng_state_load: NULL rng or buffer");
    const unsigned char *p = buf;
    unsigned long word;
    int mti;
    for (int i = 0; i < MT_N; i++) {
        memcpy(&word, p + i * sizeof word, sizeof word);
        if (word > 0xffffffffUL)
            return da_set_error(DA_EFORMAT, "da_rng_state_load: corrupt mt19937 state (word "
                                            "%d is %lu)", i, word);
    }
    memcpy(&mti, p + MT_N * sizeof word, sizeof mti);
    if (mti < 0 || mti > MT_N)
        return da_set_error(DA_EFORMAT, "da_rng_state_load: corrupt mt19937 state (position "
                                        "%d)", mti);
    memcpy(gsl_rng_state(rng->r), buf, gsl_rng_size(rng->r));
    return DA_OK;
}
