/*
 * mheap.h — the page heap: runs of 8 KiB pages, found, split, coalesced,
 * grown from the OS and given back to it.
 *
 * Every page of every arena belongs to exactly one span: in use (holding
 * objects) or free.  Free runs are indexed by length in a two-level
 * segregated fit (first level: the power of two, second level: 16 slices of
 * it) with a bitmap per level, so finding a run at least n pages long is a
 * couple of count-trailing-zeros — O(1) — and freeing merges the run with
 * free neighbours found through the page map, also O(1).
 *
 * All of it is under one lock (mheap_.lock).  Releasing pages to the OS
 * (scavenge.c) takes runs out of the index, drops the lock for madvise, and
 * puts them back.
 */
#ifndef GORT_MHEAP_H
#define GORT_MHEAP_H

#include <stddef.h>
#include <stdint.h>

#include "mem/fixalloc.h"
#include "mem/mspan.h"
#include "os/lock.h"

#define HEAP_FL_COUNT 40          /* first level: up to 2^42 pages */
#define HEAP_SL_LOG   4
#define HEAP_SL_COUNT (1 << HEAP_SL_LOG)

/* A segregated index of free runs by length (two levels of bitmaps). */
struct runindex {
    uint64_t fl_bitmap;                 /* first levels with a free run */
    uint16_t sl_bitmap[HEAP_FL_COUNT];  /* slices with a free run */
    struct mspan *free[HEAP_FL_COUNT][HEAP_SL_COUNT];
};

#define SPAN_RECORD_SIZES 5   /* bitmaps of 1 .. _MaxSpanElems / 64 words */

struct mheap {
    rtmutex lock;
    /* mspan records, by the words of their bitmaps: 1, 2, 4 ... 16 */
    struct fixalloc spanalloc[SPAN_RECORD_SIZES];
    struct fixalloc cachealloc;         /* mcache records */

    /* Free runs with pages still backed (dirty), and runs the scavenger
     * released whole (clean).  Allocation takes a dirty run first: reusing
     * backed pages costs no page fault and lets RSS follow the heap, where
     * a clean run would be faulted in while dirty pages wait for the
     * scavenger. */
    struct runindex dirty, clean;

    /* Page accounting, in pages, under lock (read racily by statistics). */
    uint64_t pagesInUse;    /* pages in mSpanInUse spans */
    uint64_t pagesSys;      /* pages of heap address space reserved */
    uint64_t pagesReleased; /* free pages not backed by memory */
    uint64_t pagesFree;     /* pages in free runs (incl. being scavenged) */
    uint64_t pagesScavenging; /* of those, out of the index with the scavenger */
    uint64_t freeRuns;      /* free runs in the index */
    uint64_t largeInUse;    /* pages of large-object spans */
    uint64_t pagesManual;   /* pages in mSpanManual spans (goroutine stacks) */
};

extern struct mheap mheap_;

/* Updates a page counter under the heap lock; statistics read them without
 * it, so the store is atomic (and costs the same as a plain one). */
static inline void heap_stat(uint64_t *field, int64_t delta)
{
    __atomic_store_n(field, *field + (uint64_t)delta, __ATOMIC_RELAXED);
}

void mheap_init(void);

/* Bytes of span records in use; *sys gets those taken from the OS. */
uint64_t mheap_records_inuse(uint64_t *sys);

/* A span of npages pages whose base is a multiple of align bytes (align is
 * a power of two; <= 8 KiB means no constraint), in state mSpanInUse with
 * its page map entries set and span class sc (0: one large object), or
 * NULL when the OS refuses memory.  s->needzero tells whether the pages may
 * hold old data. */
struct mspan *mheap_alloc(uintptr_t npages, uintptr_t align, spanClass sc);

/* A span of npages for its caller to manage (goroutine stacks): state
 * mSpanManual, which free() and realloc() reject, counted as StackInuse. */
struct mspan *mheap_allocManual(uintptr_t npages);

/* A span for collected objects (src/gc/): like mheap_alloc, but its pages
 * keep pageinfo 0 so that free() never takes its objects for malloc's.
 * The caller sets s->gc. */
struct mspan *mheap_allocGC(uintptr_t npages, spanClass sc);

/* Returns an in-use or manual span's pages to the heap. */
void mheap_free(struct mspan *s);

/* Grows or shrinks an in-use large span in place to npages: shrinking
 * gives back the tail; growing takes the free run right after it if it is
 * long enough.  Returns 1 on success. */
int mheap_resize(struct mspan *s, uintptr_t npages);

/* The free-run index, for the scavenger (lock held). */
void mheap_index_remove(struct mspan *s);
/* Puts a free run back (lock held), merging it with free neighbours. */
void mheap_insert_free(struct mspan *s);

/* Fork support: the child re-initialises the lock. */
void mheap_lock_all(void);
void mheap_unlock_all(void);
void mheap_reinit_locks(void);

#endif
