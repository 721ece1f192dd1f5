/*
 * malloc.h — what the allocator's API file shares with statistics.
 */
#ifndef GORT_MALLOC_H
#define GORT_MALLOC_H

#include <stdint.h>

#include "gort.h"
#include "mem/sizeclasses.h"

/* Adds the counters of allocations made by threads past their exit flush. */
void malloc_exited_counts(uint64_t *nmalloc, uint64_t *nfree,
                          uint64_t *largeAlloc, uint64_t *largeFree);

/* Allocations the calling thread makes between begin and end are the
 * runtime's own (libc's records for gort's scavenger thread) and are left
 * out of the statistics, so Mallocs - Frees counts the program's objects. */
struct internal_allocs {
    uint64_t nmalloc[_NumSizeClasses], nfree[_NumSizeClasses];
};
void memstats_internal_begin(struct internal_allocs *snap);
void memstats_internal_end(struct internal_allocs *snap);

/* A large object changed size in place by delta bytes. */
void memstats_large_resized(int64_t delta);

#endif
