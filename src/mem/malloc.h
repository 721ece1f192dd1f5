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

/* A large object changed size in place by delta bytes. */
void memstats_large_resized(int64_t delta);

#endif
