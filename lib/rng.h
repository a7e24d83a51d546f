/* rng.h - the one random number generator of diffalg: a GSL generator
 * (gsl_rng_mt19937), seeded explicitly (DESIGN.md §3). Every stochastic function
 * takes a da_rng *. Ownership: da_rng_new allocates, da_rng_free frees.
 *
 * GSL's error handler (abort() by default) is left as the application set it: the
 * library never calls a GSL function in a way that reaches it. Generators are assembled
 * from GSL's public structs with da_malloc instead of gsl_rng_alloc / gsl_qrng_alloc
 * (whose failed allocations go to the handler), gsl_rng_uniform_int gets only checked
 * ranges (da_rng_int), quasi-random dimensions are checked against the type's maximum
 * (relax/smooth.c), and the special functions used (gsl_cdf_ugaussian_P/Pinv) report
 * no errors. */
#ifndef DA_RNG_H
#define DA_RNG_H

#include <stddef.h>

typedef struct da_rng da_rng;

da_rng *da_rng_new(unsigned long seed);
void da_rng_free(da_rng *rng);                 /* NULL is a no-op */
void da_rng_seed(da_rng *rng, unsigned long seed);
double da_rng_uniform(da_rng *rng);            /* [0, 1) */
double da_rng_uniform_pos(da_rng *rng);        /* (0, 1) */
double da_rng_normal(da_rng *rng);             /* standard normal */
/* uniform in [0, n) for 1 <= n <= 2^32 - 1; otherwise 0 with da_last_error() set
 * (DA_ERANGE; GSL itself would abort) */
unsigned long da_rng_int(da_rng *rng, unsigned long n);
void da_rng_shuffle(da_rng *rng, int *a, int n);        /* Fisher-Yates */
/* The underlying gsl_rng * (for GSL's distribution functions). */
void *da_rng_gsl(da_rng *rng);
/* Generator state as bytes (for checkpoints): size, then save/restore. */
size_t da_rng_state_size(const da_rng *rng);
void da_rng_state_save(const da_rng *rng, void *buf);
/* DA_EFORMAT (generator unchanged) for bytes that are not a valid mt19937 state. */
int da_rng_state_load(da_rng *rng, const void *buf);

#endif
