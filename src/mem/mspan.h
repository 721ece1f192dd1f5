/*
 * mspan.h — a span: a run of pages, the unit the heap hands around.
 *
 * A span either sits free in the page heap (mheap), or holds objects: many
 * small objects of one size class, or one large object.  The fields are
 * Go's: startAddr and npages place it; nelems objects of elemsize bytes
 * start at startAddr; allocBits has a bit per object (1 = allocated);
 * freeindex is where the next search for a free object starts, and
 * allocCache holds the complement of the 64 allocBits from freeindex on, so
 * the next free object is one count-trailing-zeros away (nextFreeFast).
 *
 * Go frees objects only by sweeping; C frees them one by one, and gort
 * keeps Go's bitmap as the single truth for both.  (Most frees first land
 * on the mcache's object lists, mcache.h; these are the ways objects come
 * back to their span, from there or directly:)
 *   - a free by the thread whose mcache holds the span clears the object's
 *     bit directly (no lock, no atomic read-modify-write); the slot is found
 *     again when allocation next passes over it;
 *   - a free by any other thread pushes the object on the span's xfree
 *     stack with one compare-and-swap; whoever next owns the span collects
 *     the stack and clears the bits (span_collect).
 * The xfree word packs the stack head (bits 3..47), its length (bits
 * 48..63) and two flags that tell a remote freer what the span is doing
 * while no mcache holds it (mcentral.c has the protocol).
 */
#ifndef GORT_MSPAN_H
#define GORT_MSPAN_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#include "mem/sizeclasses.h"

struct mcache;

/* Span states (Go's mSpanState). */
enum {
    mSpanDead = 0,        /* a recycled or never-used record */
    mSpanInUse = 1,       /* holds objects */
    mSpanFree = 2,        /* free pages in the page heap */
    mSpanScavenging = 3,  /* free pages being given back, out of the heap's index */
    mSpanManual = 4,      /* managed by its user (goroutine stacks), not by malloc */
};

/* Which list a span is on (so it can be unlinked in O(1)). */
enum {
    inListNone = 0,
    inListPartial = 1,    /* mcentral: has free objects */
    inListFull = 2,       /* mcentral: no free objects */
    inListHeap = 3,       /* mheap: a free run in the page index */
};

/* xfree word layout. */
#define XFREE_PARKED   ((uintptr_t)1)   /* span is in its mcentral, unowned */
#define XFREE_NOTIFY   ((uintptr_t)2)   /* parked full: first freer moves it */
#define XFREE_FLAGS    ((uintptr_t)7)
#define XFREE_PTRMASK  ((((uintptr_t)1 << 48) - 1) & ~XFREE_FLAGS)
#define XFREE_COUNT1   ((uintptr_t)1 << 48)
static inline void *xfree_head(uintptr_t w) { return (void *)(w & XFREE_PTRMASK); }
static inline unsigned xfree_count(uintptr_t w) { return (unsigned)(w >> 48); }

#define SPAN_SAMPLED_KEPT 0xffu

struct mspan {
    struct mspan *next;       /* list links: mcentral lists, mheap free index */
    struct mspan *prev;
    uintptr_t startAddr;
    uintptr_t npages;

    /* Allocation state: touched only by the span's owner. */
    uint64_t allocCache;      /* ~allocBits from freeindex, shifted down */
    uint16_t freeindex;
    uint16_t nelems;
    uint16_t allocCount;      /* objects allocated (read by remote freers) */
    spanClass spanclass;
    uint8_t needzero;         /* 1 unless every free object is known zero */
    uint32_t elemsize;        /* object size; npages*8K for a large span */
    uint32_t divMul;          /* class_to_divmagic of the class */

    uint8_t state;            /* mSpan* */
    uint8_t inList;           /* inList* */
    uint8_t scavenged;        /* free run: every page already released */
    uint8_t sizeclass;        /* spanclass >> 1, kept apart for free's fast path */
    uint32_t sweepgen;        /* kept for the collector */

    struct mcache *owner;     /* mcache holding it as an alloc span, or NULL */
    /* spanclass + 1 while parked in that class's mcentral, else 0; written
     * only under that mcentral's lock, so a thread holding the lock can
     * trust it even for a record being recycled meanwhile. */
    uint8_t parkedIn;
    uintptr_t xfree;          /* remote-free stack word (atomic) */
    uint64_t freeSince;       /* free run: nanotime it last gained dirty pages */
    void *manualFreeList;     /* mSpanManual: free stacks in the span (stack.c) */

    /* A bit per object, in the record's tail (bits[]), sized for the
     * span's class: bitwords words each. */
    uint64_t *allocBits;
    uint64_t *gcmarkBits;     /* the collector's */
    uint8_t bitwords;

    /* The collector's, for spans of collected objects (gc != 0; src/gc/). */
    uint8_t gc;               /* 0: malloc's; GCSPAN_SCAN or GCSPAN_NOSCAN */
    uint8_t roots;            /* malloc's, holding gort_malloc_uncollectable
                                 blocks: every allocated block is a root.  The
                                 small ones are malloc's odd span classes. */
    uint16_t gcclass;         /* index of its gcentral (sizeclass*2 + noscan) */
    /* Allocated black in advance: during a mark, its first allocation from
     * a cache marked every slot then free after it (malloc_gc.c); the
     * sweep drops the marks of slots never handed out. */
    uint8_t premarked;
    /* malloc's large span that holds one sampled small object of this
     * class (malloc.c, malloc_sample), SPAN_SAMPLED_KEPT while it is kept
     * free for the next, else 0. */
    uint8_t sampledClass;
    uintptr_t largeSize;      /* large object: the bytes asked for (scan limit) */
    const struct gort_type *largeType;  /* large typed object: its type */
    /* Small scan span: the one kind of object all its slots hold (a type,
     * or gc_ptrtype_all: every word is scanned), so it needs no map and
     * allocating another writes none; NULL once the span mixes kinds,
     * when ptrbits (a bit per word, 1 = pointer) holds every slot's map. */
    const struct gort_type *ptrtype;
    uint64_t *ptrbits;
    uint64_t bits[];          /* allocBits, then gcmarkBits */
};

/* Words per bitmap for a span of nelems objects: a power of two, so that
 * records come in a few sizes (mheap.c keeps a fixalloc for each). */
static inline unsigned span_bitwords_for(unsigned nelems)
{
    unsigned w = 1;
    while (w * 64 < nelems)
        w *= 2;
    return w;
}

static inline size_t span_bitbytes(const struct mspan *s)
{
    return (size_t)s->bitwords * sizeof(uint64_t);
}

#define GCSPAN_SCAN   1
#define GCSPAN_NOSCAN 2

/* The sentinel every empty mcache slot points at: allocCache 0, so the fast
 * path always falls through to refill without a NULL test. */
extern struct mspan emptymspan;

/* Sets up a fresh span (from mheap) for objects of class sc. */
void span_init_small(struct mspan *s, spanClass sc);

/* Refills allocCache at freeindex (rounded down to 64) and returns the
 * index of the next free object at or after freeindex, nelems if none.
 * On return freeindex is that index and allocCache is positioned on it. */
unsigned span_nextFreeIndex(struct mspan *s);

/* Takes up to max free objects named by allocCache (they all lie in one
 * allocBits word), marks them allocated with one OR, and links them through
 * word 0 with key in word 1 (an mcache list's shape).  Returns how many;
 * *headp gets the first.  0 when allocCache is spent. */
unsigned span_nextFreeBatch(struct mspan *s, unsigned max, uintptr_t key, void **headp);

/* Collects the remote-free stack taken from the xfree word w: clears each
 * object's bit and drops allocCount; aborts on a double free. */
void span_collect(struct mspan *s, uintptr_t w);

/* Sets allocCount from the bitmap, the single truth (used in a fork child,
 * whose other threads may have stopped between setting a bit and counting). */
void span_recount(struct mspan *s);

/* Index of the object at p, or -1 if p is not the start of an object. */
static inline long span_objIndex(const struct mspan *s, uintptr_t p)
{
    uintptr_t off = p - s->startAddr;
    uintptr_t idx = (uintptr_t)(((uint64_t)off * s->divMul) >> 32);
    if (idx * s->elemsize != off || idx >= s->nelems)
        return -1;
    return (long)idx;
}

static inline int span_isAllocated(const struct mspan *s, unsigned idx)
{
    return (s->allocBits[idx >> 6] >> (idx & 63)) & 1;
}

static inline void span_setAllocCount(struct mspan *s, unsigned n)
{
    __atomic_store_n(&s->allocCount, (uint16_t)n, __ATOMIC_RELAXED);
}

/* The block of a malloc span of class 0: the whole span, or the sampled
 * small object it holds. */
static inline uintptr_t span_largeBytes(const struct mspan *s)
{
    return s->sampledClass ? class_to_size[s->sampledClass] : s->npages << _PageShift;
}

/* Frees object idx of s, a span the caller's cache owns. */
static inline void span_freeOwned(struct mspan *s, unsigned idx)
{
    s->allocBits[idx >> 6] &= ~((uint64_t)1 << (idx & 63));
    span_setAllocCount(s, s->allocCount - 1u);
    s->needzero = 1;
}

static inline unsigned span_allocCount(const struct mspan *s)
{
    return __atomic_load_n(&s->allocCount, __ATOMIC_RELAXED);
}

/* nextFreeFast: the allocation fast path, Go's name and shape.  Returns the
 * object, or NULL when allocCache is spent and span_nextFreeIndex must
 * search the bitmap.  recorded: the object is also set in allocBits and
 * counted, as malloc's spans need (their frees clear bits one by one).
 *
 * Collected spans (src/gc/) allocate as Go does, unrecorded: the objects a
 * cache hands out are implied by freeindex, since every slot below it is
 * allocated (the search only ever moves freeindex onto a free slot, and
 * nothing frees into a cached collected span), and allocCount stays what
 * it was when the span was cached.  That spares each allocation two
 * read-modify-writes of the span.  The bits are folded in and recounted
 * when the span leaves its cache (span_foldFreeindex, span_recount),
 * before anything else reads allocBits or allocCount as the whole truth;
 * until then span_allocatedGC is the test.  freeindex is stored and read
 * atomically, for the markers that test another cache's span. */
static inline __attribute__((always_inline)) void *span_takeNext(struct mspan *s, bool recorded)
{
    uint64_t cache = s->allocCache;
    if (__builtin_expect(cache != 0, 1)) {
        unsigned bit = (unsigned)__builtin_ctzll(cache);
        unsigned idx = s->freeindex + bit;
        if (__builtin_expect(idx < s->nelems, 1)) {
            s->allocCache = (cache >> bit) >> 1;
            __atomic_store_n(&s->freeindex, (uint16_t)(idx + 1), __ATOMIC_RELAXED);
            if (recorded) {
                s->allocBits[idx >> 6] |= (uint64_t)1 << (idx & 63);
                span_setAllocCount(s, s->allocCount + 1u);
            }
            return (void *)(s->startAddr + (uintptr_t)idx * s->elemsize);
        }
    }
    return NULL;
}

static inline void *span_nextFreeFast(struct mspan *s)
{
    return span_takeNext(s, true);
}

static inline void *span_nextFreeFastGC(struct mspan *s)
{
    return span_takeNext(s, false);
}

/* Whether object idx of collected span s is allocated. */
static inline int span_allocatedGC(const struct mspan *s, unsigned idx)
{
    return idx < __atomic_load_n(&s->freeindex, __ATOMIC_RELAXED) || span_isAllocated(s, idx);
}

/* Records in allocBits the objects below freeindex. */
void span_foldFreeindex(struct mspan *s);

#endif
