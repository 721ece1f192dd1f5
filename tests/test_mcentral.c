/* Unit test: mcentral hands spans out and takes them back whole; remote
 * frees move parked spans from full to partial and return empty spans to
 * mheap (the PARKED/NOTIFY protocol).  gort-test: tsan */
#include "check.h"
#include "gort.h"
#include "mem/mcache.h"
#include "mem/mcentral.h"
#include "mem/mheap.h"

#include <pthread.h>

static struct mcache owner;   /* a stand-in thread cache */

static unsigned fill(struct mspan *s, void **objs)
{
    unsigned n = 0;
    for (;;) {
        void *p = span_nextFreeFast(s);
        if (!p && span_nextFreeIndex(s) < s->nelems)
            p = span_nextFreeFast(s);
        if (!p)
            return n;
        objs[n++] = p;
    }
}

struct half {
    struct mspan *s;
    void **objs;
    unsigned from, n;
};

static void *free_half(void *arg)
{
    struct half *h = arg;
    for (unsigned i = h->from; i < h->n; i += 2)
        mcentral_remoteFree(h->s, h->objs[i]);
    return NULL;
}

/* Frees objs[from..to) of s as a list flush does: straight into the bitmap
 * if s is parked (returns 1), or nothing if an mcache owns it (returns 0).
 * The lock stays held in f until mcentral_parkedEnd. */
static int free_parkedIn(struct parkedFlush *f, struct mspan *s, void **objs,
                         unsigned from, unsigned to)
{
    if (!mcentral_parkedBegin(f, s))
        return 0;
    for (unsigned i = from; i < to; i++) {
        long idx = span_objIndex(s, (uintptr_t)objs[i]);
        s->allocBits[idx >> 6] &= ~((uint64_t)1 << (idx & 63));
    }
    mcentral_parkedDone(f, s, to - from);
    return 1;
}

static int free_parked(struct mspan *s, void **objs, unsigned from, unsigned to)
{
    struct parkedFlush f = {0};
    int parked = free_parkedIn(&f, s, objs, from, to);
    mcentral_parkedEnd(&f);
    return parked;
}

int main(void)
{
    gort_free(gort_malloc(1));
    static void *objs[_MaxSpanElems];
    /* Class 50 (6912 B, 6 pages) is not used by anything else here. */
    spanClass spc = makeSpanClass(50, 0);
    struct mcentral *c = &mcentrals[spc];

    struct mspan *s = mcentral_cacheSpan(c, &owner);
    CHECK(s && s->owner == &owner && s->spanclass == spc);
    unsigned n = fill(s, objs);
    CHECK(n == s->nelems && n == 7);

    /* Spent span parks on the full list, flagged for notification. */
    mcentral_uncacheSpan(c, s);
    CHECK(s->owner == NULL && s->inList == inListFull && c->full == s);
    CHECK(s->xfree == (XFREE_PARKED | XFREE_NOTIFY));

    /* The first remote free moves it to partial. */
    mcentral_remoteFree(s, objs[3]);
    CHECK(s->inList == inListPartial && c->partial == s);
    CHECK((s->xfree & XFREE_FLAGS) == XFREE_PARKED && xfree_count(s->xfree) == 1);

    /* cacheSpan takes it back, collects the free and hands out the slot. */
    struct mspan *t = mcentral_cacheSpan(c, &owner);
    CHECK(t == s && s->xfree == 0 && s->allocCount == n - 1);
    CHECK(span_nextFreeFast(s) == objs[3]);

    /* Parked full again; remote frees of every object return it to mheap. */
    mcentral_uncacheSpan(c, s);
    uint64_t inuse = mheap_.pagesInUse;
    uintptr_t npages = s->npages;
    for (unsigned i = 0; i < n; i++)
        mcentral_remoteFree(s, objs[i]);
    CHECK(s->state != mSpanInUse);
    CHECK(mheap_.pagesInUse == inuse - npages);
    CHECK(c->partial != s && c->full != s);

    /* An empty span handed back goes straight to mheap. */
    s = mcentral_cacheSpan(c, &owner);
    void *one = span_nextFreeFast(s);
    CHECK(one);
    s->allocBits[0] = 0;
    span_setAllocCount(s, 0);
    inuse = mheap_.pagesInUse;
    mcentral_uncacheSpan(c, s);
    CHECK(mheap_.pagesInUse == inuse - s->npages || s->state != mSpanInUse);

    /* A flushed chain into a parked span clears its bits under the lock:
     * no stack is left to collect, the span moves to partial, and the last
     * chain hands it back to mheap. */
    s = mcentral_cacheSpan(c, &owner);
    n = fill(s, objs);
    mcentral_uncacheSpan(c, s);
    CHECK(s->inList == inListFull);
    CHECK(free_parked(s, objs, 0, 2));
    CHECK(s->allocCount == n - 2 && s->inList == inListPartial);
    CHECK(xfree_count(s->xfree) == 0 && !span_isAllocated(s, 0) && !span_isAllocated(s, 1));
    mcentral_remoteFree(s, objs[2]);              /* one on the stack */
    inuse = mheap_.pagesInUse;
    CHECK(free_parked(s, objs, 3, n));
    CHECK(s->state != mSpanInUse && mheap_.pagesInUse == inuse - 6);
    /* An owned span is left to the CAS path. */
    s = mcentral_cacheSpan(c, &owner);
    void *o = span_nextFreeFast(s);
    CHECK(free_parked(s, &o, 0, 1) == 0 && span_isAllocated(s, (unsigned)span_objIndex(s, (uintptr_t)o)));
    mcentral_uncacheSpan(c, s);
    CHECK(free_parked(s, &o, 0, 1) && s->state != mSpanInUse);

    /* One hold of the lock serves several spans: the first emptied waits
     * off the lists, still in use, until parkedEnd drops the lock. */
    static void *objs2[_MaxSpanElems];
    s = mcentral_cacheSpan(c, &owner);
    n = fill(s, objs);
    mcentral_uncacheSpan(c, s);
    struct mspan *s2 = mcentral_cacheSpan(c, &owner);
    unsigned n2 = fill(s2, objs2);
    mcentral_uncacheSpan(c, s2);
    CHECK(s != s2 && s->inList == inListFull && s2->inList == inListFull);
    struct parkedFlush f = {0};
    CHECK(free_parkedIn(&f, s, objs, 0, n));
    CHECK(f.held == c && c->lock.state != 0);
    CHECK(s->state == mSpanInUse && s->inList == inListNone && f.emptied == s);
    CHECK(free_parkedIn(&f, s2, objs2, 0, 1));
    CHECK(s2->inList == inListPartial && s2->allocCount == n2 - 1);
    inuse = mheap_.pagesInUse;
    mcentral_parkedEnd(&f);
    CHECK(f.held == NULL && c->lock.state == 0 && f.emptied == NULL);
    CHECK(s->state != mSpanInUse && mheap_.pagesInUse == inuse - 6);
    CHECK(free_parked(s2, objs2, 1, n2));
    CHECK(s2->state != mSpanInUse);

    /* Two threads racing to free a parked span's objects: it goes back to
     * mheap exactly once. */
    spc = makeSpanClass(5, 0);   /* 48 B, 170 objects */
    c = &mcentrals[spc];
    for (int round = 0; round < 200; round++) {
        s = mcentral_cacheSpan(c, &owner);
        n = fill(s, objs);
        CHECK(n > 0);
        mcentral_uncacheSpan(c, s);
        pthread_t a, b;
        struct half ha = {s, objs, 0, n}, hb = {s, objs, 1, n};
        pthread_create(&a, NULL, free_half, &ha);
        pthread_create(&b, NULL, free_half, &hb);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        CHECK(c->partial != s && c->full != s);
    }
    printf("mcentral ok\n");
    return 0;
}
