/* suite_run.h - the end of every check test program's main(): run the suite, turn the
 * failure count into the exit status. */
#ifndef DA_TEST_SUITE_RUN_H
#define DA_TEST_SUITE_RUN_H

#include <check.h>
#include <stdlib.h>

/* Runs every test of s (CK_NORMAL output), frees the runner (and s with it); returns
 * EXIT_SUCCESS when nothing failed, else EXIT_FAILURE. */
static inline int suite_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
