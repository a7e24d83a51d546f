/* error.c - thread-local error state (DESIGN.md §2). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

static _Thread_local char last_message[512];
static _Thread_local int last_code;

const char *da_last_error(void) { return last_message; }

int da_last_error_code(void) { return last_code; }

int da_set_error(int code, const char *fmt, ...)
{
    va_list ap;
    int len = snprintf(last_message, sizeof last_message, "%s: ", da_status_name(code));
    if (len < 0 || len >= (int)sizeof last_message)
        len = 0;
    va_start(ap, fmt);
    vsnprintf(last_message + len, sizeof last_message - (size_t)len, fmt, ap);
    va_end(ap);
    last_code = code;
    return code;
}

void da_clear_error(void)
{
    last_message[0] = '\0';
    last_code = DA_OK;
}

const char *da_status_name(int code)
{
    static const char *const names[] = {
        "DA_OK",    "DA_EINVAL", "DA_ESHAPE", "DA_EDTYPE",   "DA_ERANGE", "DA_ENAN",
        "DA_ENOMEM", "DA_EIO",   "DA_EFORMAT", "DA_ENUMERIC", "DA_ESTATE",
    };
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0]))
        return "DA_E?";
    return names[code];
}

int da_all_finite(const double *x, long n)
{
    for (long i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

int da_all_finite_f32(const float *x, long n)
{
    for (long i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}
