/* fuzz_ranking_spec.c - libFuzzer target: the method spec parser of losses/ranking.h.
 * The first input byte picks n in [2, 9], the rest is the spec (NUL bytes end it early,
 * as in any C string). A parsed method must print a canonical spec that parses to the
 * same spec again, and must evaluate a small loss and gradient to finite values. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ranking.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int n = 2 + data[0] % 8;
    char *spec = malloc(size);
    FUZZ_CHECK(spec);
    memcpy(spec, data + 1, size - 1);
    spec[size - 1] = '\0';

    da_ranking *r = da_ranking_new(spec, n);
    free(spec);
    if (!r) {
        fuzz_check_error(da_last_error_code());
        FUZZ_CHECK(da_last_error_code() == DA_EINVAL || da_last_error_code() == DA_ERANGE);
        return 0;
    }
    FUZZ_CHECK(da_ranking_n(r) == n);
    da_ranking *again = da_ranking_new(da_ranking_spec(r), n);
    FUZZ_CHECK(again && !strcmp(da_ranking_spec(again), da_ranking_spec(r)));
    FUZZ_CHECK(da_ranking_family_of(again) == da_ranking_family_of(r));
    da_ranking_free(again);

    double x[9], t[9], grad[9], loss = NAN;
    for (int i = 0; i < n; i++) {
        x[i] = sin(1.0 + i * 2.3);
        t[i] = (i * 5) % n;
    }
    int rc = da_ranking_loss(r, 1, x, t, &loss, grad);
    if (rc)
        fuzz_check_error(rc);
    else
        FUZZ_CHECK(isfinite(loss) && da_all_finite(grad, n));
    da_ranking_free(r);
    return 0;
}
