/*
 * mcentral.c — central span lists and the remote-free protocol (see
 * mcentral.h).
 */
#include "mem/mcentral.h"
#include "mem/mheap.h"
#include "runtime/print.h"

#include <errno.h>

struct mcentral mcentrals[numSpanClasses];

void mcentral_init(void)
{
    for (int i = 0; i < numSpanClasses; i++)
        mcentrals[i].spanclass = (spanClass)i;
}

static void list_push(struct mspan **head, struct mspan *s, uint8_t which)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
    s->inList = which;
}

static void list_remove(struct mcentral *c, struct mspan *s)
{
    struct mspan **head = s->inList == inListFull ? &c->full : &c->partial;
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->inList = inListNone;
}

static inline void set_owner(struct mspan *s, struct mcache *owner)
{
    __atomic_store_n(&s->owner, owner, __ATOMIC_RELAXED);
}

struct mspan *mcentral_cacheSpan(struct mcentral *c, struct mcache *owner)
{
    gort_lock(&c->lock);
    struct mspan *s = c->partial;
    if (s) {
        list_remove(c, s);
        __atomic_store_n(&s->parkedIn, 0, __ATOMIC_RELAXED);
        /* Taking the stack also clears PARKED: freers now just push. */
        uintptr_t w = __atomic_exchange_n(&s->xfree, 0, __ATOMIC_ACQ_REL);
        set_owner(s, owner);
        gort_unlock(&c->lock);
        span_collect(s, w);
        s->needzero = 1;
        s->freeindex = 0;
        span_nextFreeIndex(s);
        return s;
    }
    gort_unlock(&c->lock);

    s = mheap_alloc(class_to_allocnpages[spanClass_sizeclass(c->spanclass)], 0,
                    c->spanclass);
    if (!s)
        return NULL;
    span_init_small(s, c->spanclass);
    set_owner(s, owner);
    return s;
}

void mcentral_uncacheSpan(struct mcentral *c, struct mspan *s)
{
    set_owner(s, NULL);
    for (;;) {
        uintptr_t w = __atomic_exchange_n(&s->xfree, 0, __ATOMIC_ACQUIRE);
        if (w)
            span_collect(s, w);
        if (s->allocCount == 0) {
            mheap_free(s);
            return;
        }
        gort_lock(&c->lock);
        int full = s->allocCount == s->nelems;
        uintptr_t expected = 0;
        uintptr_t parked = XFREE_PARKED | (full ? XFREE_NOTIFY : 0);
        if (__atomic_compare_exchange_n(&s->xfree, &expected, parked, 0,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
            list_push(full ? &c->full : &c->partial, s,
                      full ? inListFull : inListPartial);
            __atomic_store_n(&s->parkedIn, (uint8_t)(c->spanclass + 1), __ATOMIC_RELAXED);
            gort_unlock(&c->lock);
            return;
        }
        /* A remote free slipped in: collect it and try again. */
        gort_unlock(&c->lock);
    }
}

/* Parked span s, in c (whose lock is held), may have changed: w is its
 * xfree word as last seen.  If every allocated object is now on the stack
 * the span is empty: it leaves the lists, its stack is collected, and it
 * is returned for the caller to hand to mheap once the lock is dropped.
 * Otherwise, if it has free objects (hasfree) but sits on the full list,
 * it moves to partial, and NULL is returned. */
static struct mspan *parked_settle(struct mcentral *c, struct mspan *s, uintptr_t w,
                                   int hasfree)
{
    if (xfree_count(w) == s->allocCount) {
        w = __atomic_exchange_n(&s->xfree, 0, __ATOMIC_ACQ_REL);
        list_remove(c, s);
        __atomic_store_n(&s->parkedIn, 0, __ATOMIC_RELAXED);
        span_collect(s, w);
        return s;
    }
    if (s->inList == inListFull && hasfree) {
        __atomic_fetch_and(&s->xfree, ~XFREE_NOTIFY, __ATOMIC_RELAXED);
        list_remove(c, s);
        list_push(&c->partial, s, inListPartial);
    }
    return NULL;
}

/* Hands spans that parked_settle emptied (linked by next) to mheap. */
static void parked_freeEmptied(struct mspan *s)
{
    int saved_errno = errno;   /* free keeps errno */
    while (s) {
        struct mspan *next = s->next;
        s->next = NULL;
        mheap_free(s);
        s = next;
    }
    errno = saved_errno;
}

/* Called by a remote freer after its push.  The push may have made the
 * span collectable, so by now another thread may have cached it, emptied
 * it, given it back to mheap, even re-used the record for another class.
 * Everything is therefore re-checked under the lock of cls, the class the
 * span had while the freed object still pinned it: only a holder of that
 * lock parks a span in mcentrals[cls] or unparks it (parkedIn), and every
 * action taken is justified by the state seen here alone. */
void mcentral_parkedFree(struct mspan *s, spanClass cls)
{
    struct mcentral *c = &mcentrals[cls];
    gort_lock(&c->lock);
    if (__atomic_load_n(&s->parkedIn, __ATOMIC_RELAXED) != cls + 1) {
        /* An mcache holds it now (it will collect the frees), or it is gone. */
        gort_unlock(&c->lock);
        return;
    }
    /* Parked here, and it stays so while we hold the lock. */
    uintptr_t w = __atomic_load_n(&s->xfree, __ATOMIC_ACQUIRE);
    struct mspan *emptied = parked_settle(c, s, w, xfree_count(w) > 0);
    gort_unlock(&c->lock);
    parked_freeEmptied(emptied);
}

/* How many spans a flush settles under one hold of the lock: enough to
 * make the lock's cost per span small, few enough that a thread wanting
 * the class's lock does not wait long. */
#define PARKED_HOLD_SPANS 64

bool mcentral_parkedBegin(struct parkedFlush *f, struct mspan *s)
{
    /* The caller's objects are still allocated: s keeps its class. */
    struct mcentral *c = &mcentrals[s->spanclass];
    if (f->held != c) {
        mcentral_parkedEnd(f);
        gort_lock(&c->lock);
        f->held = c;
    }
    if (__atomic_load_n(&s->xfree, __ATOMIC_ACQUIRE) & XFREE_PARKED)
        return true;
    /* The caller will push on s's stack, which may need this lock. */
    mcentral_parkedEnd(f);
    return false;
}

void mcentral_parkedDone(struct parkedFlush *f, struct mspan *s, unsigned n)
{
    span_setAllocCount(s, s->allocCount - n);
    s->needzero = 1;
    struct mspan *emptied =
        parked_settle(f->held, s, __atomic_load_n(&s->xfree, __ATOMIC_ACQUIRE), 1);
    if (emptied) {
        emptied->next = f->emptied;
        f->emptied = emptied;
    }
    if (++f->settled == PARKED_HOLD_SPANS)
        mcentral_parkedEnd(f);
}

void mcentral_parkedEnd(struct parkedFlush *f)
{
    if (f->held) {
        gort_unlock(&f->held->lock);
        f->held = NULL;
    }
    f->settled = 0;
    parked_freeEmptied(f->emptied);
    f->emptied = NULL;
}

void mcentral_remoteFreeChain(struct mspan *s, void *head, void *tail, unsigned n)
{
    /* The objects are still allocated, so s cannot change class until the
     * push. */
    spanClass cls = s->spanclass;
    uintptr_t old = __atomic_load_n(&s->xfree, __ATOMIC_RELAXED), w;
    do {
        *(void **)tail = xfree_head(old);
        w = (uintptr_t)head | (old & XFREE_PARKED) |
            (((uintptr_t)xfree_count(old) + n) << 48);
    } while (!__atomic_compare_exchange_n(&s->xfree, &old, w, 1,
                                          __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    /* From here on s may be recycled: only hints are read before the lock. */
    if ((old & XFREE_PARKED) &&
        ((old & XFREE_NOTIFY) || xfree_count(w) == span_allocCount(s)))
        mcentral_parkedFree(s, cls);
}

void mcentral_remoteFree(struct mspan *s, void *obj)
{
    mcentral_remoteFreeChain(s, obj, obj, 1);
}

void mcentral_lock_all(void)
{
    for (int i = 0; i < numSpanClasses; i++)
        gort_lock(&mcentrals[i].lock);
}

void mcentral_unlock_all(void)
{
    for (int i = numSpanClasses - 1; i >= 0; i--)
        gort_unlock(&mcentrals[i].lock);
}

void mcentral_reinit_locks(void)
{
    for (int i = 0; i < numSpanClasses; i++)
        gort_lock_reinit(&mcentrals[i].lock);
}
