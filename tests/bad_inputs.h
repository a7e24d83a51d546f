/* bad_inputs.h - assertions of the bad-input matrix (tests/test_bad_inputs*.c): a call on
 * bad input fails with the documented code, leaves a non-empty da_last_error(), and
 * leaves the caller's output arrays as they were. */
#ifndef DA_TEST_BAD_INPUTS_H
#define DA_TEST_BAD_INPUTS_H

#include <check.h>
#include <math.h>
#include <string.h>

#include "diffalg.h"

/* any failure code: for entry points whose header documents failure (NULL or an int)
 * but not which code */
#define BAD_ANY (-1)

/* marks output arrays; a failing call must leave every element equal to it */
#define SENTINEL 12345.0

static inline void bad_check(int want, int got, const char *call, int line)
{
    if (want == BAD_ANY)
        ck_assert_msg(got != DA_OK, "line %d: %s succeeded on bad input", line, call);
    else
        ck_assert_msg(got == want, "line %d: %s returned %s, expected %s (%s)", line, call,
                      da_status_name(got), da_status_name(want), da_last_error());
    ck_assert_msg(da_last_error_code() == got, "line %d: %s returned %s but recorded %s", line,
                  call, da_status_name(got), da_status_name(da_last_error_code()));
    ck_assert_msg(da_last_error()[0] != '\0', "line %d: %s left no error message", line, call);
}

/* an int-returning call fails with code want */
#define FAILS(want, call)                                                               \
    do {                                                                                \
        da_clear_error();                                                               \
        int got_ = (call);                                                              \
        bad_check((want), got_, #call, __LINE__);                                       \
    } while (0)

/* a pointer-returning call gives NULL with code want */
#define FAILS_NULL(want, call)                                                          \
    do {                                                                                \
        da_clear_error();                                                               \
        const void *p_ = (call);                                                        \
        ck_assert_msg(p_ == NULL, "line %d: %s did not return NULL", __LINE__, #call);   \
        bad_check((want), da_last_error_code() ? da_last_error_code() : DA_OK, #call,   \
                  __LINE__);                                                            \
    } while (0)

static inline void fill_sentinel(double *a, long n)
{
    for (long i = 0; i < n; i++)
        a[i] = SENTINEL;
}

/* 1 if every element still holds SENTINEL */
static inline int untouched(const double *a, long n)
{
    for (long i = 0; i < n; i++)
        if (a[i] != SENTINEL)
            return 0;
    return 1;
}

#define UNTOUCHED(a, n)                                                                 \
    ck_assert_msg(untouched((a), (n)), "line %d: %s was written by a failing call", __LINE__, #a)

#endif
