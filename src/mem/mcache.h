/*
 * mcache.h — the per-thread cache: one span per span class, no locks.
 *
 * Go gives each P an mcache; until gort's scheduler exists, each thread has
 * one, found through an initial-exec TLS slot (one instruction, and no
 * __tls_get_addr, which could itself call malloc).  A thread starts with
 * the shared, empty mcache_bootstrap, whose every slot is emptymspan, so
 * its first allocation lands on the slow path, which gives it a real mcache.
 *
 * The cache is bounded: it holds at most one span per span class and
 * nothing else.  When the thread exits, a pthread key destructor hands
 * every span back to mcentral and recycles the mcache; allocations the
 * thread still makes after that (from later destructors) go through a
 * shared, locked mcache.
 */
#ifndef GORT_MCACHE_H
#define GORT_MCACHE_H

#include <stdint.h>

#include "mem/mspan.h"

struct mcache {
    struct mspan *alloc[numSpanClasses];   /* the span each class allocates from */
    /* Counters only the owning thread writes (statistics read them). */
    uint64_t nmalloc[_NumSizeClasses];     /* [0]: large objects */
    uint64_t nfree[_NumSizeClasses];
    uint64_t largeAllocBytes;
    uint64_t largeFreeBytes;
    struct mcache *allnext;                /* every mcache ever made */
    struct mcache *freenext;               /* recycled ones */
    int inuse;
};

extern __thread struct mcache *tls_mcache __attribute__((tls_model("initial-exec")));
extern struct mcache mcache_bootstrap;      /* a thread that has no mcache yet */
extern struct mcache mcache_exited;         /* a thread whose mcache was flushed */
extern struct mcache *allmcaches;           /* list head, for statistics */

void mcache_init(void);

/* This thread's real mcache (making one if needed), or NULL for a thread
 * that has passed its exit-time flush; then callers use mcache_shared under
 * mcache_shared_lock. */
struct mcache *mcache_current(void);
extern struct mcache *mcache_shared;
void mcache_shared_lock(void);
void mcache_shared_unlock(void);

/* The slow half of allocation from c's span of class spc: refill from
 * mcentral when the span is spent.  NULL when out of memory. */
void *mcache_nextFree(struct mcache *c, spanClass spc);

/* Hands every cached span back to mcentral. */
void mcache_releaseAll(struct mcache *c);

/* Counter bump that statistics may read concurrently: atomic, but a plain
 * load/add/store since only the owner writes. */
static inline void mcache_count(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, *counter + n, __ATOMIC_RELAXED);
}

/* Fork support. */
void mcache_lock_all(void);
void mcache_unlock_all(void);
void mcache_after_fork_child(void);

#endif
