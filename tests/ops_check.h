/* ops_check.h - small assertions shared by the core ops' test programs
 * (tests/test_ops_elem.c, test_ops_reduce.c, test_ops_shape.c); static, header only. */
#ifndef DA_TEST_OPS_CHECK_H
#define DA_TEST_OPS_CHECK_H

#include <check.h>
#include <math.h>

#include "gradcheck.h"

/* F64 finite-difference check (< 1e-6) and F32 against F64 (< 1e-4) */
static inline void check_grads(gc_fn f, int n_in, const gc_input *in, void *user, const char *what)
{
    double e64 = gc_check(f, n_in, in, user, 1e-6);
    ck_assert_msg(e64 < 1e-6, "%s: F64 gradient error %g (%s)", what, e64, da_last_error());
    double e32 = gc_check_f32(f, n_in, in, user);
    ck_assert_msg(e32 < 1e-4, "%s: F32 vs F64 error %g (%s)", what, e32, da_last_error());
}

/* Loops over elements note the first mismatch and assert once at the end (check writes
 * a message to a pipe for every assertion, which would dominate the run time). */
typedef struct {
    long bad, at;
    double got, want;
} mismatch;

static inline void expect_near(mismatch *m, long i, double got, double want, double tol)
{
    if (fabs(got - want) <= tol || (got == want))
        return;
    if (!m->bad++) {
        m->at = i;
        m->got = got;
        m->want = want;
    }
}

#define ASSERT_NO_MISMATCH(m, what)                                                     \
    ck_assert_msg((m).bad == 0, "%s: %ld mismatches, first at %ld: %.17g vs %.17g", what, \
                  (m).bad, (m).at, (m).got, (m).want)

static inline long shape_size(int ndim, const int *shape)
{
    long n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    return n;
}

#endif
