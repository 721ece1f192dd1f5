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
/* Freeing straight into a parked span's bitmap, so that nothing is left
 * on its stack to collect later: if s is parked, lockParked returns its
 * mcentral locked (the bitmap is then the caller's to clear), else NULL
 * with nothing held (an mcache owns s).  unlockParked accounts for the n
 * objects cleared, settles the span (to partial, or to mheap if it is now
 * empty) and releases the lock. */
struct mcentral *mcentral_lockParked(struct mspan *s);
void mcentral_unlockParked(struct mcentral *c, struct mspan *s, unsigned n);

/* Pushes n objects of s, linked through word 0 from head to tail, at once. */
void mcentral_remoteFreeChain(struct mspan *s, void *head, void *tail, unsigned n);

void mcentral_lock_all(void);
void mcentral_unlock_all(void);
void mcentral_reinit_locks(void);

#endif
