/*
 * mprof.h — the heap profiler (Go's runtime/mprof.go memory profile).
 *
 * malloc keeps a per-mcache countdown of bytes (next_sample); the
 * allocation that takes it below zero is handed to mprof_malloc, which
 * records its call stack and size in a bucket (one per distinct stack).
 * Sampled addresses are remembered, so their frees are matched and the
 * profile shows in-use as well as cumulative allocation.  The distance
 * between samples is exponential with mean MemProfileRate bytes, so the
 * sampling is a Poisson process over allocated bytes, and the writer
 * unbiases each bucket with Go's formula.
 *
 * mprof_malloc and mprof_free run inside malloc and free: they never
 * allocate from the heap, and an allocation made while a thread is inside
 * the profiler is never sampled.
 */
#ifndef GORT_MPROF_H
#define GORT_MPROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

extern int64_t MemProfileRate;   /* bytes; 0 off; 1 every allocation; default 512*1024 */
extern uint32_t mprof_any;       /* atomic: nonzero once any sample was recorded */

/* Bytes to the next sample: exponential with mean MemProfileRate;
 * INT64_MAX when off; 0 when the rate is 1. */
int64_t mprof_nextSample(void);
/* A sampled allocation of size bytes at p. */
void mprof_malloc(void *p, size_t size);
/* p is being freed: if it was sampled, count the free and forget p. */
bool mprof_free(void *p);
/* Called once from mallocinit, after GODEBUG is read. */
void mprof_init(void);

/* ---- For the writer (pprof.c) and tests ------------------------------ */

#define MPROF_MAXSTACK 40

/* The counts of one call stack and block size.  Buckets live for ever (never freed), so a
 * pointer to one stays valid; the counters are updated atomically. */
struct mprof_bucket {
    struct mprof_bucket *next;      /* hash chain */
    struct mprof_bucket *allnext;   /* every bucket, newest first */
    uint64_t hash;
    uint64_t size;                  /* block size */
    uint64_t allocs, frees;         /* sampled objects */
    uint64_t alloc_bytes, free_bytes;
    uint32_t nstk;
    uintptr_t stk[];                /* return addresses, innermost first */
};

/* The newest bucket; follow allnext for the others. */
struct mprof_bucket *mprof_buckets(void);

/* Go's unbiasing of a bucket's (count, bytes) sampled at rate. */
void mprof_scale(uint64_t count, uint64_t bytes, int64_t rate, double *scount, double *sbytes);

/* Sums of the unbiased counts over every bucket (fn NULL) or over the
 * buckets whose stack passes through the function starting at fn. */
struct mprof_totals {
    double alloc_objects, alloc_bytes, inuse_objects, inuse_bytes;
    uint64_t raw_allocs, raw_frees;   /* samples, unscaled */
};
void mprof_totals(const void *fn, struct mprof_totals *out);

/* The bucket of the sampled block at p, or NULL (takes a shard lock). */
struct mprof_bucket *mprof_lookup(uintptr_t p);

/* The calling thread's recursion guard: while set, its allocations are
 * not sampled.  Returns the previous value. */
int mprof_guard(int on);

/* fork (from malloc's handlers, in their order): the profile's locks
 * taken before the fork, released in the parent, made anew in the child. */
void mprof_fork_prepare(void);
void mprof_fork_parent(void);
void mprof_fork_child(void);

#endif
