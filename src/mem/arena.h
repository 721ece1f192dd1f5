/*
 * arena.h — heap arenas and the map from any address to its span.
 *
 * The heap's address space comes in 64 MiB heap arenas.  Each arena has a
 * heapArena record holding, for each of its 8192 pages, the mspan that
 * covers the page, and a bitmap of pages that are not backed by memory
 * (fresh, or given back to the OS), which therefore read as zero.
 *
 * mheap_arenas is the second level of Go's two-level arena index: on a
 * 48-bit address space the first level has one entry, so the lookup is
 *     arena  = mheap_arenas[addr >> 26]
 *     span   = arena->spans[(addr >> 13) & 8191]
 * two dependent loads from any pointer, interior ones included.  The table
 * is 32 MiB of zero-initialised address space of which only the few pages
 * that index live arenas are ever touched.
 */
#ifndef GORT_ARENA_H
#define GORT_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "mem/sizeclasses.h"

struct mspan;

#define logHeapArenaBytes  26
#define heapArenaBytes     ((uintptr_t)1 << logHeapArenaBytes)   /* 64 MiB */
#define pagesPerArena      (heapArenaBytes / _PageSize)          /* 8192 */
#define heapAddrBits       48
#define arenaL2Bits        (heapAddrBits - logHeapArenaBytes)    /* 22 */

struct heapArena {
    struct mspan *spans[pagesPerArena];
    uint64_t released[pagesPerArena / 64];   /* 1 = page not backed (reads 0) */
    /* For a page of an in-use small-object span: its size class (bits
     * 5-11), PAGEINFO_SAMPLED (bit 12), its offset in the span in bytes
     * (bits 13-23: pages) and its count of heap-profile samples (bits
     * 24-30); 0 for every other page.  free() validates and classifies a
     * pointer from this dense table and the class tables alone, without
     * touching the mspan.  The class sits 5 bits up because free() indexes
     * two tables of 32-byte records by it, and the offset needs no shift. */
    uint32_t pageinfo[pagesPerArena];
    /* First pages of malloc spans whose blocks are roots for the collector
     * (gort_malloc_uncollectable), so it finds them without walking every
     * span.  Atomic bit operations; a stale bit is checked against the
     * span and ignored. */
    uint64_t rootpages[pagesPerArena / 64];
    uintptr_t base;                /* the arena's first byte */
    struct heapArena *next;        /* allarenas */
};

extern struct heapArena *mheap_arenas[(size_t)1 << arenaL2Bits];
/* Every arena, newest first (the collector walks their spans). */
extern struct heapArena *allarenas;

static inline struct heapArena *arena_of(uintptr_t p)
{
    if (p >> heapAddrBits)
        return NULL;
    return __atomic_load_n(&mheap_arenas[p >> logHeapArenaBytes], __ATOMIC_ACQUIRE);
}

static inline size_t arena_pageIndex(uintptr_t p)
{
    return (p >> _PageShift) & (pagesPerArena - 1);
}

/* spanOf: the span covering p, or NULL if p is not in gort's heap.  For a
 * page inside a free run the answer may be stale, and a page no span ever
 * covered gives emptymspan; callers check state and bounds. */
static inline struct mspan *span_of(uintptr_t p)
{
    struct heapArena *ha = arena_of(p);
    return ha ? ha->spans[arena_pageIndex(p)] : NULL;
}

/* The arena record for free()'s fast path: the index is masked rather
 * than range-checked, so an address past 48 bits aliases some arena; the
 * caller must then prove p lies in the span it finds there (span_objIndex
 * does).  Every page of an arena maps to a span (emptymspan if none). */
static inline struct heapArena *arena_of_unchecked(uintptr_t p)
{
    return __atomic_load_n(
        &mheap_arenas[(p >> logHeapArenaBytes) & (((uintptr_t)1 << arenaL2Bits) - 1)],
        __ATOMIC_ACQUIRE);
}

static inline uint32_t arena_pageInfo(const struct heapArena *ha, uintptr_t p)
{
    /* The byte offset of p's entry, formed so that the table's place in the
     * record folds into the load's displacement. */
    uintptr_t at = (p >> (_PageShift - 2)) & ((pagesPerArena - 1) * sizeof(uint32_t));
    return __atomic_load_n((const uint32_t *)((const char *)ha->pageinfo + at), __ATOMIC_RELAXED);
}

/* A page's pageinfo fields (see struct heapArena). */
#define PAGEINFO_CLASS_SHIFT 5
#define PAGEINFO_CLASS_MASK (0xffu << PAGEINFO_CLASS_SHIFT)   /* with SAMPLED */
#define PAGEINFO_OFFSET_MASK 0x00ffe000u

/* The top bit of a page's class field: the page holds objects sampled by the
 * heap profiler where they lay (most get a span of their own: malloc.c,
 * malloc_sample), how many in bits 24-30 (saturating at 127).  No class has
 * that bit, so free()'s fast path finds no class for an object of a marked
 * page and takes the slow path, which tells the profiler of the free and
 * unmarks the page with its last sampled object (or the page's hot,
 * recycled objects would all stay on the slow path).  A span's pageinfo is
 * rewritten when it is freed or reused. */
#define PAGEINFO_SAMPLED (0x80u << PAGEINFO_CLASS_SHIFT)
#define PAGEINFO_SAMPLE1 (1u << 24)
#define PAGEINFO_SAMPLEMAX 127u

static inline void arena_markSampled(uintptr_t p)
{
    uint32_t *w = &arena_of_unchecked(p)->pageinfo[arena_pageIndex(p)];
    uint32_t old = __atomic_load_n(w, __ATOMIC_RELAXED), new;
    do {
        uint32_t n = old >> 24;
        new = (n < PAGEINFO_SAMPLEMAX ? old + PAGEINFO_SAMPLE1 : old) | PAGEINFO_SAMPLED;
    } while (!__atomic_compare_exchange_n(w, &old, new, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

static inline void arena_unmarkSampled(uintptr_t p)
{
    uint32_t *w = &arena_of_unchecked(p)->pageinfo[arena_pageIndex(p)];
    uint32_t old = __atomic_load_n(w, __ATOMIC_RELAXED), new;
    do {
        uint32_t n = old >> 24;
        if (n == 0 || n == PAGEINFO_SAMPLEMAX)
            return;   /* not counted, or saturated: stays marked */
        new = old - PAGEINFO_SAMPLE1;
        if (n == 1)
            new &= ~PAGEINFO_SAMPLED;
    } while (!__atomic_compare_exchange_n(w, &old, new, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

static inline void arena_setRootPage(uintptr_t p, int on)
{
    struct heapArena *ha = arena_of(p);
    size_t i = arena_pageIndex(p);
    uint64_t bit = (uint64_t)1 << (i & 63);
    if (on)
        __atomic_fetch_or(&ha->rootpages[i >> 6], bit, __ATOMIC_RELAXED);
    else if (__atomic_load_n(&ha->rootpages[i >> 6], __ATOMIC_RELAXED) & bit)
        __atomic_fetch_and(&ha->rootpages[i >> 6], ~bit, __ATOMIC_RELAXED);
}

/* Sets pageinfo of the npages pages from base for a small span of size
 * class sizeclass, or clears it (sizeclass 0).  Heap lock held. */
void arena_setPageInfo(uintptr_t base, uintptr_t npages, unsigned sizeclass);

/* Records s as the span of the npages pages from base. */
void arena_setSpans(uintptr_t base, uintptr_t npages, struct mspan *s);

/* Reserves at least n bytes (a multiple of heapArenaBytes) of new, aligned
 * heap address space, registers its arenas with every page marked
 * released, and returns its base (NULL when the OS refuses).  Tries Go's
 * arena hints from 0x00c000000000 upward first.  Caller holds the heap lock. */
void *arena_reserve(size_t n);

/* Released-page bitmap over [base, base + npages pages). */
uintptr_t arena_countReleased(uintptr_t base, uintptr_t npages);
void arena_setReleased(uintptr_t base, uintptr_t npages, int released);

/* Bytes of arena index records (for OtherSys). */
extern uint64_t arena_metadata_sys;

#endif
