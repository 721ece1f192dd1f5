/*
 * sema.c — Go's runtime semaphores (sema.go): the sleep and wakeup under
 * sync.Mutex, RWMutex and WaitGroup, and the notifyList under sync.Cond.
 *
 * semacquire first tries to take the count with a CAS (cansemacquire).  Only
 * when the count is zero does it go to the semaRoot its address hashes to
 * (251 roots, each an rtmutex, a waiter count nwait and a treap): it counts
 * itself in nwait, tries the count once more under the lock, queues a sudog
 * and parks; gopark drops the root lock once the goroutine is off its stack.
 * semrelease adds to the count and only when nwait says someone may wait
 * does it lock the root and wake the first waiter on that address.  Both
 * sides do "write mine, then read theirs" with sequentially consistent
 * atomics (nwait then the count; the count then nwait), so a release never
 * misses a waiter that is about to sleep.
 *
 * The treap (a search tree on the address, a min-heap on a random priority
 * kept in the sudog's ticket) holds one sudog per distinct address; further
 * sudogs on the same address hang off it in a FIFO list through waitlink,
 * with the list's tail in the tree node's waittail.  prev and next are the
 * tree's left and right children.  Queue and dequeue cost O(log n) in the
 * number of distinct addresses sharing a root, however many goroutines wait
 * on each.
 *
 * Handoff: a woken waiter normally competes for the count again and may
 * lose it to a goroutine that is running, then queue again.  With handoff
 * the releaser takes the count on the waiter's behalf, tells it so through
 * the sudog's ticket, and yields so that it runs at once (it sits in the
 * P's runnext).  Mutex's starvation mode is built on this.
 *
 * notifyList: tickets instead of a count.  A Cond waiter takes the next
 * wait ticket while it still holds the Cond's Mutex, unlocks it, and then
 * sleeps unless notify has already passed its ticket.  Signal wakes the
 * waiter holding the notify ticket (it may not have queued yet: it will see
 * the ticket passed and not sleep); Broadcast moves notify up to wait and
 * wakes every queued waiter.  The gort_cond struct is public and zero-ready,
 * so its list lock is not in it: the root lock its address hashes to serves.
 */
#include "gc/mgc.h"
#include "runtime/print.h"
#include "sched/runtime2.h"
#include "sched/sema.h"

#define SEMTABSZ 251

struct semaRoot {
    rtmutex lock;
    uint32_t nwait;              /* sudogs in the treap; atomic, read unlocked */
    struct sudog *treap;
} __attribute__((aligned(64)));  /* one cache line each: roots are hot */

static struct semaRoot semtable[SEMTABSZ];

static struct semaRoot *semroot(const void *addr)
{
    return &semtable[((uintptr_t)addr >> 3) % SEMTABSZ];
}

/* Takes one from *addr if it is positive. */
static bool cansemacquire(uint32_t *addr)
{
    uint32_t v = __atomic_load_n(addr, __ATOMIC_SEQ_CST);
    while (v != 0)
        if (__atomic_compare_exchange_n(addr, &v, v - 1, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return true;
    return false;
}

/* ---- The treap ---------------------------------------------------------- */

static inline uintptr_t semkey(const struct sudog *s)
{
    return (uintptr_t)s->elem;
}

/* Makes whatever pointed at old (its parent, or the root) point at nu. */
static void replaceChild(struct semaRoot *root, struct sudog *parent, struct sudog *old,
                         struct sudog *nu)
{
    if (parent == NULL)
        root->treap = nu;
    else if (parent->prev == old)
        parent->prev = nu;
    else
        parent->next = nu;
}

/* x's right child y takes x's place, and x becomes y's left child. */
static void rotateLeft(struct semaRoot *root, struct sudog *x)
{
    struct sudog *p = x->parent, *y = x->next, *b = y->prev;
    y->prev = x;
    x->parent = y;
    x->next = b;
    if (b != NULL)
        b->parent = x;
    y->parent = p;
    replaceChild(root, p, x, y);
}

/* y's left child x takes y's place, and y becomes x's right child. */
static void rotateRight(struct semaRoot *root, struct sudog *y)
{
    struct sudog *p = y->parent, *x = y->prev, *b = x->next;
    x->next = y;
    y->parent = x;
    y->prev = b;
    if (b != NULL)
        b->parent = y;
    x->parent = p;
    replaceChild(root, p, y, x);
}

/* Puts s (the running goroutine's sudog) in line for addr: behind the other
 * waiters on addr, or in front of them with lifo. */
static void semaQueue(struct semaRoot *root, uint32_t *addr, struct sudog *s, bool lifo)
{
    uintptr_t k = (uintptr_t)addr;
    struct sudog *last = NULL, **pt = &root->treap;

    s->g = getg();
    s->elem = addr;
    s->parent = s->prev = s->next = NULL;
    s->waitlink = NULL;
    s->waittail = s;
    for (struct sudog *t = *pt; t != NULL; t = *pt) {
        if (semkey(t) != k) {
            last = t;
            pt = k < semkey(t) ? &t->prev : &t->next;
            continue;
        }
        if (lifo) {
            /* s takes t's place in the tree, with t's list behind it. */
            s->ticket = t->ticket;
            s->parent = t->parent;
            s->prev = t->prev;
            s->next = t->next;
            if (s->prev != NULL)
                s->prev->parent = s;
            if (s->next != NULL)
                s->next->parent = s;
            *pt = s;
            s->waitlink = t;
            s->waittail = t->waittail;
            t->parent = t->prev = t->next = NULL;
            t->waittail = NULL;
        } else {
            t->waittail->waitlink = s;
            t->waittail = s;
            s->waittail = NULL;
        }
        return;
    }
    /* A new address: a leaf with a random priority, rotated up until its
     * parent's priority is no larger. */
    s->ticket = fastrand() | 1;
    s->parent = last;
    *pt = s;
    while (s->parent != NULL && s->parent->ticket > s->ticket) {
        if (s->parent->prev == s)
            rotateRight(root, s->parent);
        else
            rotateLeft(root, s->parent);
    }
}

/* Removes and returns the first waiter on addr, or NULL.  The sudog comes
 * back with its links, elem and ticket cleared. */
static struct sudog *semaDequeue(struct semaRoot *root, uint32_t *addr)
{
    uintptr_t k = (uintptr_t)addr;
    struct sudog **pt = &root->treap, *s;

    for (s = *pt; s != NULL; s = *pt) {
        if (semkey(s) == k)
            break;
        pt = k < semkey(s) ? &s->prev : &s->next;
    }
    if (s == NULL)
        return NULL;

    struct sudog *t = s->waitlink;
    if (t != NULL) {
        /* The next waiter on addr takes s's place in the tree. */
        *pt = t;
        t->ticket = s->ticket;
        t->parent = s->parent;
        t->prev = s->prev;
        t->next = s->next;
        if (t->prev != NULL)
            t->prev->parent = t;
        if (t->next != NULL)
            t->next->parent = t;
        t->waittail = s->waittail;
    } else {
        /* Rotate s down to a leaf, the child with the smaller priority
         * going up each time so the heap order holds, then cut it off. */
        while (s->prev != NULL || s->next != NULL) {
            if (s->next == NULL || (s->prev != NULL && s->prev->ticket < s->next->ticket))
                rotateRight(root, s);
            else
                rotateLeft(root, s);
        }
        replaceChild(root, s->parent, s, NULL);
    }
    s->elem = NULL;
    s->parent = s->prev = s->next = NULL;
    s->waitlink = s->waittail = NULL;
    s->ticket = 0;
    return s;
}

/* ---- Semaphores --------------------------------------------------------- */

void semacquire(uint32_t *addr, bool lifo, uint8_t reason)
{
    if (cansemacquire(addr))
        return;
    requireg("semacquire");

    struct semaRoot *root = semroot(addr);
    struct sudog *s = acquireSudog();
    s->ticket = 0;
    s->acquiretime = s->releasetime = 0;
    for (;;) {
        gort_lock(&root->lock);
        __atomic_add_fetch(&root->nwait, 1, __ATOMIC_SEQ_CST);
        if (cansemacquire(addr)) {
            __atomic_sub_fetch(&root->nwait, 1, __ATOMIC_SEQ_CST);
            gort_unlock(&root->lock);
            break;
        }
        semaQueue(root, addr, s, lifo);
        goparkunlock(&root->lock, reason);
        /* Woken by semrelease, which dequeued s: the count is ours if it
         * was handed over, else it must be won like anyone's. */
        if (s->ticket != 0 || cansemacquire(addr))
            break;
    }
    s->ticket = 0;
    s->g = NULL;
    releaseSudog(s);
}

void semrelease(uint32_t *addr, bool handoff)
{
    struct semaRoot *root = semroot(addr);

    __atomic_add_fetch(addr, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&root->nwait, __ATOMIC_SEQ_CST) == 0)
        return;

    gort_lock(&root->lock);
    if (__atomic_load_n(&root->nwait, __ATOMIC_SEQ_CST) == 0) {
        gort_unlock(&root->lock);
        return;
    }
    struct sudog *s = semaDequeue(root, addr);
    if (s != NULL)
        __atomic_sub_fetch(&root->nwait, 1, __ATOMIC_SEQ_CST);
    gort_unlock(&root->lock);
    if (s == NULL)
        return;

    /* Once goready runs, s belongs to the woken goroutine again: read what
     * is needed first. */
    bool handed = handoff && cansemacquire(addr);
    if (handed)
        s->ticket = 1;
    struct g *gp = s->g;
    goready(gp);
    if (handed && ingoroutine() && getg()->m->locks == 0)
        goyield();
}

/* ---- notifyList (sync.Cond) --------------------------------------------- */

/* a comes before b, allowing for wrap-around of the ticket counters. */
static inline bool lessTicket(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static inline rtmutex *notifyListLock(notifyList *l)
{
    return &semroot(l)->lock;
}

uint32_t notifyListAdd(notifyList *l)
{
    return __atomic_fetch_add(&l->wait, 1, __ATOMIC_SEQ_CST);
}

void notifyListWait(notifyList *l, uint32_t t)
{
    /* Taken before the lock: acquireSudog may allocate. */
    struct sudog *s = acquireSudog();
    rtmutex *lock = notifyListLock(l);

    gort_lock(lock);
    if (lessTicket(t, __atomic_load_n(&l->notify, __ATOMIC_SEQ_CST))) {
        /* Notified between notifyListAdd and here. */
        gort_unlock(lock);
        releaseSudog(s);
        return;
    }
    s->g = getg();
    s->ticket = t;
    s->next = NULL;
    s->acquiretime = s->releasetime = 0;
    struct sudog *tail = l->tail;
    if (tail == NULL)
        l->head = s;
    else
        tail->next = s;
    l->tail = s;
    goparkunlock(lock, waitReasonSyncCondWait);
    s->ticket = 0;
    s->g = NULL;
    releaseSudog(s);
}

void notifyListNotifyAll(notifyList *l)
{
    /* Nobody took a ticket since the last notify: nothing to do, no lock. */
    if (__atomic_load_n(&l->wait, __ATOMIC_SEQ_CST) ==
        __atomic_load_n(&l->notify, __ATOMIC_SEQ_CST))
        return;

    rtmutex *lock = notifyListLock(l);
    gort_lock(lock);
    struct sudog *s = l->head;
    l->head = l->tail = NULL;
    __atomic_store_n(&l->notify, __atomic_load_n(&l->wait, __ATOMIC_SEQ_CST), __ATOMIC_SEQ_CST);
    gort_unlock(lock);

    while (s != NULL) {
        struct sudog *next = s->next;
        struct g *gp = s->g;
        s->next = NULL;
        goready(gp);
        s = next;
    }
}

void notifyListNotifyOne(notifyList *l)
{
    if (__atomic_load_n(&l->wait, __ATOMIC_SEQ_CST) ==
        __atomic_load_n(&l->notify, __ATOMIC_SEQ_CST))
        return;

    rtmutex *lock = notifyListLock(l);
    gort_lock(lock);
    uint32_t t = __atomic_load_n(&l->notify, __ATOMIC_SEQ_CST);
    if (t == __atomic_load_n(&l->wait, __ATOMIC_SEQ_CST)) {
        gort_unlock(lock);
        return;
    }
    /* Ticket t is served now, whether or not its holder has queued yet. */
    __atomic_store_n(&l->notify, t + 1, __ATOMIC_SEQ_CST);
    for (struct sudog *p = NULL, *s = l->head; s != NULL; p = s, s = s->next) {
        if (s->ticket != t)
            continue;
        struct sudog *n = s->next;
        if (p != NULL)
            p->next = n;
        else
            l->head = n;
        if (l->tail == s)
            l->tail = p;
        gort_unlock(lock);
        struct g *gp = s->g;
        s->next = NULL;
        goready(gp);
        return;
    }
    gort_unlock(lock);
}

/* Not roots for the collector: these tables hold no collected pointers. */
__attribute__((constructor)) static void noscan_tables(void)
{
    gc_noscan_static(semtable, sizeof semtable);
}
