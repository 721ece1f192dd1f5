/*
 * mheap.c — the page heap (see mheap.h for the design).
 */
#include "mem/mheap.h"
#include "mem/arena.h"
#include "mem/scavenge.h"
#include "os/os.h"
#include "runtime/print.h"

#include <sched.h>
#include <string.h>

struct mheap mheap_;

void mheap_init(void)
{
    for (unsigned i = 0; i < SPAN_RECORD_SIZES; i++)
        fixalloc_init(&mheap_.spanalloc[i],
                      sizeof(struct mspan) + 2 * ((size_t)1 << i) * sizeof(uint64_t));
}

/* ---- Span records ------------------------------------------------------ */

/* A zeroed record whose bitmaps hold words words each (a power of two).
 * Records come in sizes so that a span of large objects does not carry
 * the bitmaps of one of 8-byte objects: Go keeps them apart (gcBits
 * arenas) for the same reason.  Heap lock held. */
static struct mspan *span_record(unsigned words)
{
    unsigned i = (unsigned)__builtin_ctz(words);
    struct mspan *s = fixalloc_alloc(&mheap_.spanalloc[i]);
    s->bitwords = (uint8_t)words;
    s->allocBits = s->bits;
    s->gcmarkBits = s->bits + words;
    return s;
}

/* Gives back the record of a span that is gone (merged into a neighbour,
 * or moved to a record of another size).  Chunks are never returned, so a
 * stale pointer to it still reads a record. */
static void span_record_free(struct mspan *t)
{
    t->state = mSpanDead;
    __atomic_store_n(&t->spanclass, 0, __ATOMIC_RELAXED);
    t->sizeclass = 0;
    fixalloc_free(&mheap_.spanalloc[__builtin_ctz(t->bitwords)], t);
}

uint64_t mheap_records_inuse(uint64_t *sys)
{
    uint64_t inuse = 0;
    *sys = 0;
    for (unsigned i = 0; i < SPAN_RECORD_SIZES; i++) {
        inuse += __atomic_load_n(&mheap_.spanalloc[i].inuse, __ATOMIC_RELAXED);
        *sys += __atomic_load_n(&mheap_.spanalloc[i].sys, __ATOMIC_RELAXED);
    }
    return inuse;
}

/* ---- The segregated free-run index ----------------------------------- */

static inline int log2_floor(uintptr_t n)
{
    return 63 - __builtin_clzll(n);
}

/* The (first, second) level holding runs of exactly n pages. */
static inline void index_of(uintptr_t n, int *fl, int *sl)
{
    if (n < HEAP_SL_COUNT) {
        *fl = 0;
        *sl = (int)n;
    } else {
        int l = log2_floor(n);
        *fl = l - HEAP_SL_LOG + 1;
        *sl = (int)((n >> (l - HEAP_SL_LOG)) - HEAP_SL_COUNT);
    }
}

static inline struct runindex *index_for(const struct mspan *s)
{
    return s->scavenged ? &mheap_.clean : &mheap_.dirty;
}

static void index_insert(struct mspan *s)
{
    struct runindex *ix = index_for(s);
    int fl, sl;
    index_of(s->npages, &fl, &sl);
    s->prev = NULL;
    s->next = ix->free[fl][sl];
    if (s->next)
        s->next->prev = s;
    ix->free[fl][sl] = s;
    ix->fl_bitmap |= (uint64_t)1 << fl;
    ix->sl_bitmap[fl] |= (uint16_t)(1u << sl);
    s->inList = inListHeap;
    heap_stat(&mheap_.freeRuns, 1);
}

/* (A run's scavenged flag does not change while it is in the index, so it
 * names the index it is in.) */
void mheap_index_remove(struct mspan *s)
{
    struct runindex *ix = index_for(s);
    int fl, sl;
    index_of(s->npages, &fl, &sl);
    if (s->prev)
        s->prev->next = s->next;
    else
        ix->free[fl][sl] = s->next;
    if (s->next)
        s->next->prev = s->prev;
    if (!ix->free[fl][sl]) {
        ix->sl_bitmap[fl] &= (uint16_t)~(1u << sl);
        if (!ix->sl_bitmap[fl])
            ix->fl_bitmap &= ~((uint64_t)1 << fl);
    }
    s->next = s->prev = NULL;
    s->inList = inListNone;
    heap_stat(&mheap_.freeRuns, -1);
}

/* First non-empty list of ix at or after (fl, sl). */
static struct mspan *index_search_from(struct runindex *ix, int fl, int sl)
{
    if (fl >= HEAP_FL_COUNT)
        return NULL;
    uint32_t sls = ix->sl_bitmap[fl] & (uint32_t)(~0u << sl);
    if (!sls) {
        uint64_t fls = fl + 1 < 64 ? ix->fl_bitmap & (~(uint64_t)0 << (fl + 1)) : 0;
        if (!fls)
            return NULL;
        fl = __builtin_ctzll(fls);
        sls = ix->sl_bitmap[fl];
    }
    return ix->free[fl][__builtin_ctz(sls)];
}

/* A run of ix of at least n pages: good fit in O(1). */
static struct mspan *index_find_in(struct runindex *ix, uintptr_t n)
{
    int fl, sl;
    index_of(n, &fl, &sl);
    /* Every run in a later list is long enough; the list for n itself mixes
     * lengths from n's slice, so look there only if nothing larger exists. */
    struct mspan *s = NULL;
    if (sl + 1 < HEAP_SL_COUNT)
        s = index_search_from(ix, fl, sl + 1);
    else
        s = index_search_from(ix, fl + 1, 0);
    if (s)
        return s;
    for (s = ix->free[fl][sl]; s; s = s->next)
        if (s->npages >= n)
            return s;
    return NULL;
}

/* A free run of at least n pages, dirty if one is long enough. */
static struct mspan *index_find(uintptr_t n)
{
    struct mspan *s = index_find_in(&mheap_.dirty, n);
    return s ? s : index_find_in(&mheap_.clean, n);
}

/* ---- Free runs ------------------------------------------------------- */

static struct mspan *span_new(uintptr_t base, uintptr_t npages)
{
    struct mspan *s = span_record(1);
    s->startAddr = base;
    s->npages = npages;
    return s;
}

/* A free run's page map only needs its first and last page: neighbours
 * look there to merge. */
static void set_free_bounds(struct mspan *s)
{
    arena_setSpans(s->startAddr, 1, s);
    arena_setSpans(s->startAddr + ((s->npages - 1) << _PageShift), 1, s);
}

static struct mspan *free_neighbour(uintptr_t addr)
{
    struct mspan *t = span_of(addr);
    if (t && t->state == mSpanFree && addr >= t->startAddr &&
        addr < t->startAddr + (t->npages << _PageShift))
        return t;
    return NULL;
}

/* Merges free run t (adjacent to s, out of the index after this) into s. */
static void absorb(struct mspan *s, struct mspan *t)
{
    mheap_index_remove(t);
    if (t->startAddr < s->startAddr)
        s->startAddr = t->startAddr;
    s->npages += t->npages;
    s->scavenged &= t->scavenged;
    if (t->freeSince > s->freeSince)
        s->freeSince = t->freeSince;
    span_record_free(t);
}

void mheap_insert_free(struct mspan *s)
{
    s->state = mSpanFree;
    struct mspan *before = free_neighbour(s->startAddr - _PageSize);
    if (before)
        absorb(s, before);
    struct mspan *after = free_neighbour(s->startAddr + (s->npages << _PageShift));
    if (after)
        absorb(s, after);
    set_free_bounds(s);
    index_insert(s);
}

/* Cuts the first npages off free run s (out of the index); the rest goes
 * back to the index as its own run. */
static void split_front(struct mspan *s, uintptr_t npages)
{
    if (s->npages == npages)
        return;
    struct mspan *rest = span_new(s->startAddr + (npages << _PageShift),
                                  s->npages - npages);
    rest->freeSince = s->freeSince;
    rest->scavenged = s->scavenged;
    rest->state = mSpanFree;
    s->npages = npages;
    set_free_bounds(rest);
    index_insert(rest);
}

static int mheap_grow(uintptr_t npages)
{
    size_t bytes = (npages << _PageShift);
    if (bytes / _PageSize != npages || bytes > ((size_t)1 << 46))
        return 0;
    bytes = (bytes + heapArenaBytes - 1) & ~(heapArenaBytes - 1);
    void *p = arena_reserve(bytes);
    if (!p)
        return 0;
    uintptr_t pages = bytes >> _PageShift;
    struct mspan *s = span_new((uintptr_t)p, pages);
    s->scavenged = 1;
    s->freeSince = 0;
    heap_stat(&mheap_.pagesSys, (int64_t)(pages));
    heap_stat(&mheap_.pagesReleased, (int64_t)(pages));
    heap_stat(&mheap_.pagesFree, (int64_t)(pages));
    mheap_insert_free(s);
    return 1;
}

/* Takes npages (aligned to align bytes) from the free run s, which is out
 * of the index and long enough; leftovers go back. */
static void carve(struct mspan *s, uintptr_t npages, uintptr_t align)
{
    if (align > _PageSize) {
        uintptr_t base = (s->startAddr + align - 1) & ~(align - 1);
        uintptr_t head = (base - s->startAddr) >> _PageShift;
        if (head) {
            struct mspan *h = span_new(s->startAddr, head);
            h->freeSince = s->freeSince;
            h->scavenged = s->scavenged;
            h->state = mSpanFree;
            set_free_bounds(h);
            index_insert(h);
            s->startAddr = base;
            s->npages -= head;
        }
    }
    split_front(s, npages);
}

/* The work of mheap_alloc; manual: a span for stacks (mSpanManual),
 * counted as StackInuse rather than heap. */
enum { spanMalloc, spanManual, spanGC };

static struct mspan *mheap_allocSpan(uintptr_t npages, uintptr_t align, spanClass sc,
                                     int kind)
{
    int manual = kind == spanManual;
    uintptr_t want = npages;
    if (align > _PageSize) {
        uintptr_t extra = (align >> _PageShift) - 1;
        if (npages + extra < npages)
            return NULL;
        want = npages + extra;
    }
    gort_lock(&mheap_.lock);
    struct mspan *s = index_find(want);
    /* The runs the scavenger holds while it releases them (a coalesced
     * run can be most of the free heap) come back in a moment: growing
     * the heap by an arena instead would fault in fresh pages for
     * nothing.  A bounded wait, so a scavenger that is slow for any
     * reason only costs that much. */
    for (int tries = 0; !s && mheap_.pagesScavenging >= want && tries < 1000; tries++) {
        gort_unlock(&mheap_.lock);
        sched_yield();
        gort_lock(&mheap_.lock);
        s = index_find(want);
    }
    if (!s) {
        if (!mheap_grow(want)) {
            gort_unlock(&mheap_.lock);
            return NULL;
        }
        s = index_find(want);
    }
    mheap_index_remove(s);
    carve(s, npages, align);
    /* The run's record becomes the span's if its bitmaps fit the class
     * exactly, else the span gets a record of its size. */
    unsigned words = sc == 0 ? 1
                   : span_bitwords_for(class_to_nelems[spanClass_sizeclass(sc)]);
    if (s->bitwords != words) {
        struct mspan *t = span_record(words);
        t->startAddr = s->startAddr;
        t->npages = s->npages;
        span_record_free(s);
        s = t;
    }

    uintptr_t released = arena_countReleased(s->startAddr, npages);
    if (released)
        arena_setReleased(s->startAddr, npages, 0);
    /* Pages the kernel gives back zeroed are those released with
     * MADV_DONTNEED (or never touched). */
    s->needzero = released != npages || !scavenge_releases_zero();
    heap_stat(&mheap_.pagesReleased, -(int64_t)(released));
    heap_stat(&mheap_.pagesFree, -(int64_t)(npages));
    heap_stat(manual ? &mheap_.pagesManual : &mheap_.pagesInUse, (int64_t)(npages));

    s->state = manual ? mSpanManual : mSpanInUse;
    s->inList = inListNone;
    s->scavenged = 0;
    s->owner = NULL;
    /* Remote freers of an earlier life of this record may still look at
     * these two (mcentral_parkedFree): atomic stores. */
    __atomic_store_n(&s->xfree, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->parkedIn, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->spanclass, sc, __ATOMIC_RELAXED);
    s->sizeclass = spanClass_sizeclass(sc);
    s->sweepgen = 0;
    s->gc = 0;
    s->sampledClass = 0;
    __atomic_store_n(&s->roots, (uint8_t)(kind == spanMalloc && spanClass_noscan(sc)), __ATOMIC_RELAXED);
    if (s->roots)
        arena_setRootPage(s->startAddr, 1);
    s->ptrbits = NULL;
    s->ptrtype = NULL;
    s->premarked = 0;
    s->largeType = NULL;
    if (sc == 0) {
        if (!manual)
            heap_stat(&mheap_.largeInUse, (int64_t)(npages));
        s->nelems = 1;
        s->elemsize = 0;   /* a large object's size is npages pages */
    }
    arena_setSpans(s->startAddr, npages, s);
    /* Collected objects' pages keep pageinfo 0, so free()'s fast path never
     * takes one; its slow path reports the mistake. */
    if (sc != 0 && kind != spanGC)
        arena_setPageInfo(s->startAddr, npages, spanClass_sizeclass(sc));
    gort_unlock(&mheap_.lock);
    return s;
}

struct mspan *mheap_alloc(uintptr_t npages, uintptr_t align, spanClass sc)
{
    return mheap_allocSpan(npages, align, sc, spanMalloc);
}

struct mspan *mheap_allocManual(uintptr_t npages)
{
    return mheap_allocSpan(npages, 0, 0, spanManual);
}

struct mspan *mheap_allocGC(uintptr_t npages, spanClass sc)
{
    return mheap_allocSpan(npages, 0, sc, spanGC);
}

void mheap_free(struct mspan *s)
{
    uint64_t now = os_nanotime();
    gort_lock(&mheap_.lock);
    if (s->state == mSpanManual) {
        heap_stat(&mheap_.pagesManual, -(int64_t)(s->npages));
        heap_stat(&mheap_.largeInUse, (int64_t)(s->npages));   /* undone below */
    } else if (s->state != mSpanInUse) {
        throw_ptr("free(): double free detected", s->startAddr);
    } else {
        heap_stat(&mheap_.pagesInUse, -(int64_t)(s->npages));
    }
    heap_stat(&mheap_.pagesFree, (int64_t)(s->npages));
    arena_setRootPage(s->startAddr, 0);
    if (s->spanclass == 0)
        heap_stat(&mheap_.largeInUse, -(int64_t)(s->npages));
    else
        arena_setPageInfo(s->startAddr, s->npages, 0);   /* free pages: 0 */
    /* A free run has class 0, so free()'s fast path never takes a pointer
     * into it for a small object. */
    __atomic_store_n(&s->spanclass, 0, __ATOMIC_RELAXED);
    s->sizeclass = 0;
    s->freeSince = now;
    s->scavenged = 0;
    s->owner = NULL;
    s->inList = inListNone;
    mheap_insert_free(s);
    gort_unlock(&mheap_.lock);
    scavenge_kick();
}

int mheap_resize(struct mspan *s, uintptr_t npages)
{
    int ok = 0;
    uint64_t now = os_nanotime();
    gort_lock(&mheap_.lock);
    if (npages < s->npages) {
        struct mspan *tail = span_new(s->startAddr + (npages << _PageShift),
                                      s->npages - npages);
        heap_stat(&mheap_.pagesInUse, -(int64_t)(tail->npages));
        heap_stat(&mheap_.largeInUse, -(int64_t)(tail->npages));
        heap_stat(&mheap_.pagesFree, (int64_t)(tail->npages));
        s->npages = npages;
        tail->freeSince = now;
        mheap_insert_free(tail);
        ok = 1;
    } else if (npages > s->npages) {
        uintptr_t end = s->startAddr + (s->npages << _PageShift);
        struct mspan *next = free_neighbour(end);
        uintptr_t more = npages - s->npages;
        if (next && next->startAddr == end && next->npages >= more) {
            mheap_index_remove(next);
            split_front(next, more);
            uintptr_t released = arena_countReleased(end, more);
            if (released)
                arena_setReleased(end, more, 0);
            heap_stat(&mheap_.pagesReleased, -(int64_t)(released));
            heap_stat(&mheap_.pagesFree, -(int64_t)(more));
            heap_stat(&mheap_.pagesInUse, (int64_t)(more));
            heap_stat(&mheap_.largeInUse, (int64_t)(more));
            span_record_free(next);
            s->npages = npages;
            arena_setSpans(end, more, s);
            ok = 1;
        }
    } else {
        ok = 1;
    }
    gort_unlock(&mheap_.lock);
    return ok;
}

void mheap_lock_all(void)
{
    gort_lock(&mheap_.lock);
}

void mheap_unlock_all(void)
{
    gort_unlock(&mheap_.lock);
}

void mheap_reinit_locks(void)
{
    gort_lock_reinit(&mheap_.lock);
}
