/* alloc.c - allocation wrappers with the fail-after-k test hook (see alloc.h). */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long alloc_budget = -1; /* successful allocations left; < 0: unlimited */
static atomic_long alloc_attempts = 0;

void da_alloc_fail_after(long k) { atomic_store(&alloc_budget, k < 0 ? -1 : k); }

long da_alloc_count(void) { return atomic_load(&alloc_attempts); }

/* 1 if this allocation may proceed, 0 if the hook makes it fail. */
static int alloc_permitted(void) {
    atomic_fetch_add(&alloc_attempts, 1);
    long left = atomic_load(&alloc_budget);
    while (left >= 0) {
        if (left == 0) return 0;
        if (atomic_compare_exchange_weak(&alloc_budget, &left, left - 1)) return 1;
    }
    return 1;
}

void *da_malloc(size_t size) { return alloc_permitted() ? malloc(size) : NULL; }

void *da_calloc(size_t count, size_t size) {
    return alloc_permitted() ? calloc(count, size) : NULL;
}

void *da_realloc(void *ptr, size_t size) {
    return alloc_permitted() ? realloc(ptr, size) : NULL;
}

void *da_aligned_alloc(size_t alignment, size_t size) {
    return alloc_permitted() ? aligned_alloc(alignment, size) : NULL;
}

char *da_strndup(const char *s, size_t n) {
    size_t len = strnlen(s, n);
    char *copy = da_malloc(len + 1);
    if (!copy) return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

void da_free(void *ptr) { free(ptr); }
