/* alloc_fail.h - the allocation-failure sweep of tests/test_alloc_fail.c and
 * tests/alloc_fail_faces.c (one program): a "call" builds what it needs through the
 * library, runs, frees everything on every path and returns its first error code; sweep()
 * fails each of its allocations in turn (see test_alloc_fail.c). */
#ifndef DA_TEST_ALLOC_FAIL_H
#define DA_TEST_ALLOC_FAIL_H

#include <check.h>
#include <math.h>
#include <stdio.h>

#include "alloc.h"
#include "diffalg.h"

#define NO_CODE 1000 /* a NULL result without a recorded error code */

typedef int (*call_fn)(const void *arg);

static inline int ptr_code(const void *p)
{
    if (p)
        return DA_OK;
    return da_last_error_code() ? da_last_error_code() : NO_CODE;
}

/* inside a call with `int rc` and a `done:` label that frees everything */
#define CHECK(expr)                                                                     \
    do {                                                                                \
        if ((rc = (expr)))                                                              \
            goto done;                                                                  \
    } while (0)
#define CHECK_PTR(expr) CHECK(ptr_code(expr))

/* sizes shared by the calls: batch and items of the plain-array faces, grid of the paths */
enum { B = 2, N = 6, SH = 4, SW = 5 };

/* the scratch directory of the files the calls write (created by main) */
#define AF_DIR_TEMPLATE "/tmp/da_alloc_fail_XXXXXX"
extern char af_dir[sizeof AF_DIR_TEMPLATE];

/* Run call once to count its allocations N, then once with each of them failing; N. */
long sweep(const char *name, call_fn call, const void *arg);
/* deterministic inputs: x[i] = sin(1.7 i + seed) */
void fill(double *x, long n, double seed);
/* a smooth black box for the smoothing estimators: f(x) = sum_i sin(x_i) x_{i+1} (m = 1)
 * or its terms spread over m outputs */
int blackbox(void *user, int n, const double *x, int m, double *y);

/* the test cases of alloc_fail_faces.c: tensor faces and more modules; large batches
 * (tagged "parallel") */
TCase *alloc_fail_faces_tcase(void);
TCase *alloc_fail_parallel_tcase(void);

#endif
