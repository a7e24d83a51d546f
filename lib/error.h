/* error.h - error codes and the thread-local last-error message (DESIGN.md §2).
 *
 * Every fallible function returns an int code (DA_OK = 0) or NULL, and records a
 * message retrievable with da_last_error(). The library never prints or aborts. */
#ifndef DA_ERROR_H
#define DA_ERROR_H

typedef enum {
    DA_OK = 0,
    DA_EINVAL,   /* invalid argument (NULL pointer, bad enum, bad option) */
    DA_ESHAPE,   /* shapes do not match or cannot broadcast */
    DA_EDTYPE,   /* dtypes do not match or are unsupported */
    DA_ERANGE,   /* a size or parameter is outside its documented range */
    DA_ENAN,     /* NaN or Inf in an input where it would propagate silently */
    DA_ENOMEM,   /* allocation failed */
    DA_EIO,      /* file could not be opened, read or written */
    DA_EFORMAT,  /* file is truncated, corrupt or has the wrong magic/version */
    DA_ENUMERIC, /* numerical failure (e.g. matrix not positive definite) */
    DA_ESTATE    /* call out of order (e.g. backward on a freed graph) */
} da_status;

/* Message of the last error on this thread ("" if none). The pointer stays valid
 * until the next failing call on the same thread. */
const char *da_last_error(void);
/* Code of the last error on this thread (DA_OK if none). */
int da_last_error_code(void);
/* Record an error (printf-style message) and return its code. For use by the
 * library's modules and by callbacks that want to report a failure. */
int da_set_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clear the error state of this thread. */
void da_clear_error(void);
/* Name of an error code ("DA_ESHAPE", ...). */
const char *da_status_name(int code);

/* 1 if all n values are finite, else 0. */
int da_all_finite(const double *x, long n);
int da_all_finite_f32(const float *x, long n);

#endif
