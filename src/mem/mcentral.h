/*
 * mcentral.h — the central list of spans for one span class.
 *
 * An mcache that runs out of free objects in its span hands the span back
 * here (uncacheSpan) and takes another (cacheSpan): one with free objects
 * from the partial list, or a fresh one from mheap.  Spans move whole, as
 * in Go; the lock is per span class, so threads allocating different sizes
 * never meet.
 *
 * Remote frees and parked spans.  A span sitting here has no owner, yet
 * other threads keep freeing its objects with a lock-free push on its
 * xfree stack (mspan.h).  Two flags in that word make sure such frees are
 * not lost:
 *   PARKED  the span is on one of this mcentral's lists.  A freer that
 *           finds the stack now holds as many objects as the span has
 *           allocated knows the span is empty and hands it to mheap.
 *   NOTIFY  the span is parked on the full list, where nobody looks for
 *           free objects; the first freer clears the flag (in the same
 *           compare-and-swap as its push) and moves the span to partial.
 * So a lock is taken once per span per trip, never per free.
 */
#ifndef GORT_MCENTRAL_H
#define GORT_MCENTRAL_H

#include "mem/mspan.h"
#include "os/lock.h"

struct mcache;

struct mcentral {
    rtmutex lock;
    spanClass spanclass;
    struct mspan *partial;     /* parked spans with free objects */
    struct mspan *full;        /* parked spans without */
} __attribute__((aligned(64)));

extern struct mcentral mcentrals[numSpanClasses];

void mcentral_init(void);

/* A span of class c->spanclass with at least one free object, positioned
 * for nextFreeFast and owned by owner; NULL when out of memory. */
struct mspan *mcentral_cacheSpan(struct mcentral *c, struct mcache *owner);

/* The owner is done with s: collect its remote frees, then park it here or,
 * if it is empty, give it back to mheap. */
void mcentral_uncacheSpan(struct mcentral *c, struct mspan *s);

/* A remote freer pushed onto parked span s (of class cls at the time) and
 * the flags it saw ask for attention (see above). */
void mcentral_parkedFree(struct mspan *s, spanClass cls);

/* Pushes obj (an object of in-use small span s) on s's remote-free stack. */
void mcentral_remoteFree(struct mspan *s, void *obj);
/* Freeing straight into parked spans' bitmaps, so that nothing is left on
 * their stacks to collect later.  A list flush meets many spans of one
 * class, often for a run of one or two objects each, so the class's lock
 * is held across them rather than taken once a span:
 *     struct parkedFlush f = {0};
 *     for each span s met:
 *         if (mcentral_parkedBegin(&f, s)) {
 *             clear the bits of s's n objects;
 *             mcentral_parkedDone(&f, s, n);
 *         }
 *     mcentral_parkedEnd(&f);
 * parkedBegin returns whether s is parked; then the lock is held and the
 * bitmap is the caller's.  If not (an mcache owns s) nothing is held, so
 * the caller may push the objects on s's stack.  parkedDone accounts for
 * the n objects and settles the span: to partial, or off the lists if it
 * is now empty, for parkedEnd to hand to mheap once the lock is dropped. */
struct parkedFlush {
    struct mcentral *held;     /* the locked mcentral, or NULL */
    struct mspan *emptied;     /* spans to hand to mheap, linked by next */
    unsigned settled;          /* spans settled under this hold */
};
bool mcentral_parkedBegin(struct parkedFlush *f, struct mspan *s);
void mcentral_parkedDone(struct parkedFlush *f, struct mspan *s, unsigned n);
void mcentral_parkedEnd(struct parkedFlush *f);

/* Pushes n objects of s, linked through word 0 from head to tail, at once. */
void mcentral_remoteFreeChain(struct mspan *s, void *head, void *tail, unsigned n);

void mcentral_lock_all(void);
void mcentral_unlock_all(void);
void mcentral_reinit_locks(void);

#endif
