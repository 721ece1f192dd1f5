/* Unit test: the page heap splits, coalesces, aligns, resizes and
 * releases runs of pages. */
#include "check.h"
#include "gort.h"
#include "mem/arena.h"
#include "mem/mheap.h"
#include "mem/scavenge.h"

#include <stdint.h>

static uintptr_t end_of(struct mspan *s)
{
    return s->startAddr + (s->npages << _PageShift);
}

int main(void)
{
    gort_free(gort_malloc(1));          /* mallocinit */
    uint64_t inuse0 = mheap_.pagesInUse, free0 = mheap_.pagesFree;

    /* Split: three runs cut from one free run are adjacent and disjoint. */
    struct mspan *a = mheap_alloc(3, 0, 0);
    struct mspan *b = mheap_alloc(5, 0, 0);
    struct mspan *c = mheap_alloc(7, 0, 0);
    CHECK(a && b && c);
    CHECK(a->npages == 3 && b->npages == 5 && c->npages == 7);
    CHECK(a->state == mSpanInUse && b->state == mSpanInUse);
    CHECK(mheap_.pagesInUse == inuse0 + 15);
    CHECK(end_of(a) <= b->startAddr || end_of(b) <= a->startAddr);
    CHECK(end_of(b) <= c->startAddr || end_of(c) <= b->startAddr);
    for (uintptr_t p = b->startAddr; p < end_of(b); p += _PageSize)
        CHECK(span_of(p) == b);

    /* Coalesce: after freeing all three (middle first), 15 pages from the
     * lowest address come back as one run. */
    uintptr_t lowest = a->startAddr < b->startAddr ? a->startAddr : b->startAddr;
    if (c->startAddr < lowest)
        lowest = c->startAddr;
    uint64_t runs0 = mheap_.freeRuns;
    mheap_free(b);
    mheap_free(a);
    mheap_free(c);
    CHECK(mheap_.pagesInUse == inuse0);
    CHECK(mheap_.pagesFree == free0);
    CHECK(mheap_.freeRuns <= runs0);
    struct mspan *big = mheap_alloc(15, 0, 0);
    CHECK(big && big->startAddr == lowest);
    mheap_free(big);

    /* Alignment up to 16 MiB. */
    for (uintptr_t align = 16 << 10; align <= (16 << 20); align <<= 1) {
        struct mspan *s = mheap_alloc(2, align, 0);
        CHECK(s && s->startAddr % align == 0 && s->npages == 2);
        mheap_free(s);
    }
    CHECK(mheap_.pagesInUse == inuse0);

    /* Large spans over several arenas. */
    struct mspan *huge = mheap_alloc((200 << 20) >> _PageShift, 0, 0);
    CHECK(huge && huge->npages == (200 << 20) >> _PageShift);
    CHECK(span_of(huge->startAddr + (150 << 20)) == huge);
    mheap_free(huge);

    /* Resize in place: shrink gives the tail back, grow takes it again. */
    /* (The scavenger thread may have started and allocated: re-measure.) */
    struct mspan *r = mheap_alloc(10, 0, 0);
    inuse0 = mheap_.pagesInUse - 10;
    uintptr_t rbase = r->startAddr;
    CHECK(mheap_resize(r, 4));
    CHECKF(r->npages == 4 && mheap_.pagesInUse == inuse0 + 4, "npages %lu inuse %llu inuse0 %llu", (unsigned long)r->npages, (unsigned long long)mheap_.pagesInUse, (unsigned long long)inuse0);
    CHECK(span_of(rbase + 4 * _PageSize)->state == mSpanFree);
    CHECK(mheap_resize(r, 12));
    CHECK(r->npages == 12 && r->startAddr == rbase);
    CHECK(span_of(rbase + 11 * _PageSize) == r);
    mheap_free(r);

    /* Release: afterwards every free page is released, and pages handed
     * out again are known to be zero (needzero == 0).  A limited release
     * stops near its limit (a run is released whole). */
    struct mspan *d = mheap_alloc(64, 0, 0);
    memset((void *)d->startAddr, 0xab, 64 * _PageSize);
    uintptr_t dbase = d->startAddr;
    mheap_free(d);
    CHECK(arena_countReleased(dbase, 64) == 0);
    uint64_t dirty = mheap_.pagesFree - mheap_.pagesReleased;
    CHECK(dirty >= 64);
    uint64_t some = scavenge_release(UINT64_MAX, NULL, 1);
    CHECKF(some >= 1 && mheap_.pagesFree - mheap_.pagesReleased < dirty, "released %llu",
           (unsigned long long)some);
    scavenge_release(UINT64_MAX, NULL, UINT64_MAX);
    CHECK(mheap_.pagesReleased == mheap_.pagesFree);
    CHECK(arena_countReleased(dbase, 64) == 64);
    struct mspan *e = mheap_alloc(64, 0, 0);
    CHECK(e->needzero == 0);
    for (uintptr_t p = e->startAddr; p < end_of(e); p += 4096)
        CHECK(*(volatile char *)p == 0);
    CHECK(arena_countReleased(e->startAddr, 64) == 0);
    mheap_free(e);

    /* Backed pages are reused first: with every free page released but
     * those of a 64-page run just freed, a one-page span comes from that
     * run (no page fault), not from a released run that fits closer. */
    scavenge_release(UINT64_MAX, NULL, UINT64_MAX);
    CHECK(mheap_.freeRuns == 1);   /* all free pages merged into one released run */
    struct mspan *f = mheap_alloc(64, 0, 0);
    struct mspan *pin = mheap_alloc(1, 0, 0);   /* keeps f's run apart from the rest */
    CHECK(pin->startAddr == end_of(f));
    uintptr_t fbase = f->startAddr;
    memset((void *)fbase, 0xcd, 64 * _PageSize);
    mheap_free(f);
    struct mspan *one = mheap_alloc(1, 0, 0);
    CHECKF(one->startAddr >= fbase && one->startAddr < fbase + 64 * _PageSize,
           "a released page was taken over a backed one");
    CHECK(one->needzero == 1);   /* it holds old data */
    mheap_free(one);
    mheap_free(pin);

    /* A request the OS cannot back fails cleanly. */
    CHECK(mheap_alloc((uintptr_t)1 << 40, 0, 0) == NULL);
    printf("page heap ok: %llu free runs\n", (unsigned long long)mheap_.freeRuns);
    return 0;
}
