/* alloc.h - the library's allocator, with a fault-injection hook for tests.
 *
 * Every heap allocation of libdiffalg goes through these wrappers, so a test can make
 * the k-th allocation fail (DESIGN.md §2: a failed allocation returns DA_ENOMEM, never
 * crashes or leaks). Semantics are those of the C library functions they wrap;
 * memory from any of them is released with da_free. */
#ifndef DA_ALLOC_H
#define DA_ALLOC_H

#include <stddef.h>

void *da_malloc(size_t size);
void *da_calloc(size_t count, size_t size);
void *da_realloc(void *ptr, size_t size);
void *da_aligned_alloc(size_t alignment, size_t size);
/* A copy of the first at most n bytes of s, NUL-terminated (strndup). */
char *da_strndup(const char *s, size_t n);
void da_free(void *ptr);

/* Test hook: after `k` more successful allocations, every allocation fails (returns
 * NULL) until the hook is reset with k < 0 (the default: never fail). Thread-safe. */
void da_alloc_fail_after(long k);
/* Number of allocations attempted since the process started (for sizing a sweep
 * over k: count the allocations of a call, then fail each one in turn). */
long da_alloc_count(void);

#endif
