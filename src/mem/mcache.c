/*
 * mcache.c — per-thread caches: creation, refill, flush at thread exit.
 */
#include "mem/mcache.h"
#include "prof/mprof.h"
#include "mem/mcentral.h"
#include "mem/mheap.h"
#include "os/lock.h"
#include "os/os.h"
#include "mem/arena.h"
#include "runtime/print.h"

#include <pthread.h>

__thread struct mcache *tls_mcache __attribute__((tls_model("initial-exec"))) =
    &mcache_bootstrap;
/* Valid before any initialisation: other libraries' constructors may
 * allocate before gort's own runs. */
struct mcache mcache_bootstrap = {.alloc = {[0 ... numSpanClasses - 1] = &emptymspan},
                                  .gcalloc = {[0 ... 2 * _NumSizeClasses - 1] = &emptymspan},
                                  .next_sample = INT64_MAX};
struct mcache mcache_exited = {.alloc = {[0 ... numSpanClasses - 1] = &emptymspan},
                               .gcalloc = {[0 ... 2 * _NumSizeClasses - 1] = &emptymspan},
                               .next_sample = INT64_MAX};
struct mcache *allmcaches;
struct mcache *mcache_shared;

static rtmutex mcaches_lock;     /* allmcaches, the free list, cachealloc */
static rtmutex shared_lock;      /* mcache_shared */
static struct mcache *freemcaches;
static pthread_key_t mcache_key;
static int key_ready;

uintptr_t freelist_key;

/* A list's bound starts at FREELIST_START and doubles each time a malloc
 * finds the list empty, up to 4 MiB of objects (128 to 262144 of them): a
 * thread that mostly frees (a consumer, or the main thread reaping its
 * workers' blocks) keeps short lists and pins few spans, while one that
 * allocates what it frees earns long ones.  Frees alone grow a list only to
 * FREELIST_FREE_GROWTH.  TCMalloc sizes its thread caches the same way
 * ("slow start").
 *
 * Long lists pay: an object that overflows its list is flushed back to its
 * span's bitmap and later batched out again, a second and third touch, so
 * a program that frees a large structure and builds it again runs fastest
 * when the whole structure fits (binary-trees at depth 16: 2.13 G
 * instructions with 64 KiB lists, 1.87 G with 1 MiB).  What the lists hold
 * is memory the thread had in use anyway, but it can serve no other size:
 * the sum of a thread's bounds is kept within FREELIST_BUDGET.  Which
 * classes share it is first come, first served (larson's two widest
 * classes take a megabyte between them and leave 8-16 objects to the
 * rest), so the budget is what sets how often a many-sized program flushes
 * and refills: 4 MiB, against 2 MiB, takes larson from 336.8 to 321.6 M
 * instructions and sizes-1t from 234.1 to 230.7 M, for peak RSS 8.6 ->
 * 8.9 MiB and 15.0 -> 15.7 MiB.  binary-trees needs one class's worth,
 * and its trees of 2^17 nodes overflowed 1 MiB lists: one class may take
 * the whole budget (4 MiB a class, was 1), and binary-trees 21 runs 3.90
 * -> 3.78 s (three alternating runs).  A larger budget as well pays
 * elsewhere and costs more than it pays: 16 MiB took larson from 280 to
 * 260 ms but the python3 workload from 2.58 to 2.87 s of CPU (five
 * alternating runs, repeated; 8 MiB: 2.75 s), its many classes' lists
 * then holding long-freed objects that a refill from the spans would
 * have handed out in address order.  (16 MiB a class and 64 in all took
 * binary-trees 19 from 810 to 700 ms: its flush and refill are
 * per-object work, 10 % of its time at 4 MiB.)
 *
 * First come, first served left larson's narrow classes at 8-16 objects,
 * flushing 7 objects at a time (in 5 per-span runs, each a lock) every few
 * dozen of their operations.  So the first objects of every list, up to
 * FREELIST_FLOOR_OBJECTS or FREELIST_FLOOR_BYTES of them, are not counted
 * against the budget: each class may grow that far whatever the others
 * took.  At most 16 KiB a class, about 1 MiB a thread if every class is
 * used; larson 326.0 -> 313.7 M instructions, sizes-1t 457.2 -> 452.9 M
 * (callgrind; 64 objects or 32 KiB gave 308.4 M on larson, but the
 * python3 workload 1 % slower, within its noise).  The 2 objects every
 * list starts with are under the floor too: charged to the budget, the
 * largest classes' (2 x 32 KiB ...) took 470 KiB of it before anything
 * ran, and a class that had 2 MiB could not double to the 4 MiB meant
 * for it (binary-trees 17: 3274 -> 3150 M instructions once it can; a
 * class growing by what is left of the budget instead of doubling cost
 * larson 1.7 %). */
#define FREELIST_START 2
#ifndef FREELIST_CAP_BYTES
#define FREELIST_CAP_BYTES (4u << 20)
#endif
#ifndef FREELIST_CAP_OBJECTS
#define FREELIST_CAP_OBJECTS 262144u
#endif

static uint32_t freelist_cap(unsigned cls)
{
    uint32_t n = FREELIST_CAP_BYTES / class_to_size[cls];
    return n < 4 ? 4 : n > FREELIST_CAP_OBJECTS ? FREELIST_CAP_OBJECTS : n;
}

/* The bytes of a list bounded at max objects that count against the
 * budget: those past its floor. */
static uint64_t freelist_budgetBytes(unsigned cls, uint32_t max)
{
    uint32_t floor = freelist_floor(cls);
    return max > floor ? (uint64_t)(max - floor) * class_to_size[cls] : 0;
}

static void mcache_resetLists(struct mcache *c)
{
    /* Class 1 (8 bytes) has no room for the key: it never lists objects. */
    c->listBytes = 0;
    for (unsigned k = 2; k < _NumSizeClasses; k++) {
        c->free[k].max = c->free[k].room = FREELIST_START;
        c->listBytes += freelist_budgetBytes(k, FREELIST_START);
    }
}

void mcache_growList(struct mcache *c, unsigned cls, uint32_t limit)
{
    struct freelist *fl = &c->free[cls];
    uint32_t cap = freelist_cap(cls);
    if (cap > limit)
        cap = limit;
    if (fl->max == 0 || fl->max >= cap)
        return;
    uint32_t grown = fl->max * 2 > cap ? cap : fl->max * 2;
    uint64_t bytes = freelist_budgetBytes(cls, grown) - freelist_budgetBytes(cls, fl->max);
    if (c->listBytes + bytes > FREELIST_BUDGET)
        return;
    c->listBytes += bytes;
    fl->room += grown - fl->max;
    fl->max = grown;
}

static void mcache_setEmpty(struct mcache *c)
{
    for (int i = 0; i < numSpanClasses; i++)
        c->alloc[i] = &emptymspan;
    for (int i = 0; i < 2 * _NumSizeClasses; i++)
        c->gcalloc[i] = &emptymspan;
    mcache_resetLists(c);
    c->key = freelist_key;
}

void freelist_initKey(void)
{
    /* splitmix64 over whatever differs between runs: the clock and where
     * the stack and the library were placed. */
    int local;
    uint64_t x = os_nanotime() ^ (uint64_t)(uintptr_t)&local ^
                 ((uint64_t)(uintptr_t)&freelist_key << 17);
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    freelist_key = (uintptr_t)(x | 1);
}

static struct mcache *mcache_new(void)
{
    gort_lock(&mcaches_lock);
    struct mcache *c = freemcaches;
    if (c) {
        freemcaches = c->freenext;
        mcache_resetLists(c);
        fixalloc_stat(&mheap_.cachealloc.inuse, (int64_t)mheap_.cachealloc.size);
    } else {
        c = fixalloc_alloc(&mheap_.cachealloc);
        mcache_setEmpty(c);
        c->allnext = allmcaches;
        __atomic_store_n(&allmcaches, c, __ATOMIC_RELEASE);
    }
    c->inuse = 1;
    gort_unlock(&mcaches_lock);
    c->next_sample = mprof_nextSample();
    return c;
}

static void mcache_recycle(struct mcache *c)
{
    gort_lock(&mcaches_lock);
    c->inuse = 0;
    c->freenext = freemcaches;
    freemcaches = c;
    fixalloc_stat(&mheap_.cachealloc.inuse, -(int64_t)mheap_.cachealloc.size);   /* MCacheInuse: live caches only */
    gort_unlock(&mcaches_lock);
}

static void mcache_threadExit(void *arg)
{
    struct mcache *c = arg;
    tls_mcache = &mcache_exited;
    mcache_releaseAll(c);
    mcache_recycle(c);
}

struct mcache *mcache_alloc(void)
{
    return mcache_new();
}

void mcache_free(struct mcache *c)
{
    mcache_releaseAll(c);
    mcache_recycle(c);
}

void mcache_init(void)
{
    fixalloc_init(&mheap_.cachealloc, sizeof(struct mcache));
    mcache_shared = mcache_new();
}

/* Called once the allocator works: the key may allocate (glibc keeps keys
 * past the first 32 in a calloc'd block). */
static void mcache_initKey(void)
{
    static rtmutex keylock;
    gort_lock(&keylock);
    if (!key_ready) {
        if (pthread_key_create(&mcache_key, mcache_threadExit) != 0)
            throw("cannot create the thread-exit key for mcaches");
        __atomic_store_n(&key_ready, 1, __ATOMIC_RELEASE);
    }
    gort_unlock(&keylock);
}

struct mcache *mcache_current(void)
{
    struct mcache *c = tls_mcache;
    if (c == &mcache_exited)
        return NULL;
    if (c != &mcache_bootstrap)
        return c;
    c = mcache_new();
    tls_mcache = c;
    if (!__atomic_load_n(&key_ready, __ATOMIC_ACQUIRE))
        mcache_initKey();
    pthread_setspecific(mcache_key, c);
    return c;
}

void mcache_shared_lock(void)
{
    gort_lock(&shared_lock);
}

void mcache_shared_unlock(void)
{
    gort_unlock(&shared_lock);
}

void *mcache_nextFree(struct mcache *c, spanClass spc)
{
    struct mspan *s = c->alloc[spc];
    if (s != &emptymspan) {
        if (span_nextFreeIndex(s) < s->nelems)
            return span_nextFreeFast(s);
        /* This pass over the span is done.  Gather what other threads
         * freed; start another pass if at least an eighth is free, else
         * trade the span for one with more room. */
        uintptr_t w = __atomic_exchange_n(&s->xfree, 0, __ATOMIC_ACQUIRE);
        if (w)
            span_collect(s, w);
        unsigned nfree = s->nelems - s->allocCount;
        if (nfree && (nfree * 8 >= s->nelems || s->nelems < 8)) {
            s->freeindex = 0;
            s->needzero = 1;
            span_nextFreeIndex(s);
            return span_nextFreeFast(s);
        }
        c->alloc[spc] = &emptymspan;
        mcentral_uncacheSpan(&mcentrals[spc], s);
    }
    s = mcentral_cacheSpan(&mcentrals[spc], c);
    if (!s)
        return NULL;
    c->alloc[spc] = s;
    return span_nextFreeFast(s);
}

void *mcache_refillList(struct mcache *c, unsigned cls)
{
    struct freelist *fl = &c->free[cls];
    spanClass spc = makeSpanClass((uint8_t)cls, 0);
    struct mspan *s = c->alloc[spc];
    mcache_growList(c, cls, UINT32_MAX);
    if (s->allocCache == 0 && (s == &emptymspan || span_nextFreeIndex(s) >= s->nelems))
        return mcache_nextFree(c, spc);     /* a new span (or pass); batch next time */
    /* One object for the caller, the rest of the batch onto the list, which
     * is filled half way: a class whose mallocs and frees alternate at
     * random would, from a full list, send its next frees to the slow path
     * (larson: 59 k slow frees in 2 M, 44 k this way). */
    void *head;
    unsigned n = span_nextFreeBatch(s, fl->room / 2 + 1, c->key, &head);
    void *p = head;
    fl->head = *(void **)p;
    fl->room -= n - 1;
    ((uintptr_t *)p)[1] = 0;
    return p;
}

/* Set while a fork child hands back the caches of threads that did not
 * survive the fork (the child has one thread).  Such a thread may have
 * stopped anywhere in its own list operations, half-way through clearing
 * a run's bits for instance: its objects are not checked for double
 * frees. */
static bool releasingOrphans;

/* Unlinks from the head of fl the run of objects that lie in span s, at
 * most want of them, clearing each one's list key; returns how many, and
 * the last in *tail.  With clear set the caller owns s's bitmap (s is its
 * own, or parked and locked) and each object's bit is cleared on the way,
 * one pass over the objects; *cleared counts the bits cleared (all of
 * them, but for an orphan's half-finished flush). */
static unsigned freelist_takeRun(struct freelist *fl, struct mspan *s, unsigned want,
                                 int clear, void **tail, unsigned *cleared)
{
    uintptr_t base = s->startAddr, bytes = s->npages << _PageShift;
    uint64_t divMul = s->divMul;
    void *obj = fl->head, *last = NULL;
    unsigned n = 0, nclear = 0;
    /* The bitmap word being cleared stays in a register until the run
     * moves to another word: consecutive objects share one. */
    size_t wi = SIZE_MAX;
    uint64_t word = 0;
    /* Listed objects are valid objects of this class: being inside s's
     * pages is enough to be s's. */
    while (n < want && obj && (uintptr_t)obj - base < bytes) {
        if (clear) {
            size_t idx = (size_t)(((uint64_t)((uintptr_t)obj - base) * divMul) >> 32);
            if (idx >> 6 != wi) {
                if (wi != SIZE_MAX)
                    s->allocBits[wi] = word;
                wi = idx >> 6;
                word = s->allocBits[wi];
            }
            uint64_t bit = (uint64_t)1 << (idx & 63);
            if (word & bit) {
                word &= ~bit;
                nclear++;
            } else if (!releasingOrphans) {
                s->allocBits[wi] = word;
                throw_ptr("free(): double free detected", (uintptr_t)obj);
            }
        }
        ((uintptr_t *)obj)[1] = 0;
        last = obj;
        obj = *(void **)obj;
        n++;
    }
    if (wi != SIZE_MAX)
        s->allocBits[wi] = word;
    fl->head = obj;
    fl->room += n;
    *tail = last;
    *cleared = nclear;
    return n;
}

void mcache_flushList(struct mcache *c, unsigned cls, unsigned keep)
{
    struct freelist *fl = &c->free[cls];
    struct parkedFlush parked = {0};
    while (freelist_len(fl) > keep) {
        void *head = fl->head, *tail;
        if (!head) {            /* a fork child's list may be short */
            fl->room = fl->max;
            break;
        }
        /* The longest run of objects from one span goes back in one go. */
        struct mspan *s = span_of((uintptr_t)head);
        unsigned want = freelist_len(fl) - keep, n;
        if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) == c) {
            freelist_takeRun(fl, s, want, 1, &tail, &n);
            span_setAllocCount(s, s->allocCount - n);
            s->needzero = 1;    /* those slots may be handed out again now */
        } else if ((__atomic_load_n(&s->xfree, __ATOMIC_RELAXED) & XFREE_PARKED) &&
                   mcentral_parkedBegin(&parked, s)) {
            freelist_takeRun(fl, s, want, 1, &tail, &n);
            mcentral_parkedDone(&parked, s, n);
        } else {
            unsigned none;
            mcentral_parkedEnd(&parked);
            n = freelist_takeRun(fl, s, want, 0, &tail, &none);
            mcentral_remoteFreeChain(s, head, tail, n);
        }
    }
    mcentral_parkedEnd(&parked);
}

void mcache_releaseMalloc(struct mcache *c)
{
    for (unsigned k = 2; k < _NumSizeClasses; k++)
        mcache_flushList(c, k, 0);
    for (int i = 0; i < numSpanClasses; i++) {
        struct mspan *s = c->alloc[i];
        if (s != &emptymspan) {
            c->alloc[i] = &emptymspan;
            mcentral_uncacheSpan(&mcentrals[i], s);
        }
    }
}

void mcache_releaseAll(struct mcache *c)
{
    mcache_releaseMalloc(c);
    gccache_release(c);
}

void mcache_lock_all(void)
{
    gort_lock(&shared_lock);
    gort_lock(&mcaches_lock);
}

void mcache_unlock_all(void)
{
    gort_unlock(&mcaches_lock);
    gort_unlock(&shared_lock);
}

void mcache_after_fork_child(void)
{
    gort_lock_reinit(&mcaches_lock);
    gort_lock_reinit(&shared_lock);
    /* Only the forking thread lives on: every other thread's cache is
     * orphaned, so give its spans back.  Those threads may have stopped
     * anywhere in an allocation or free: recount each span from its bitmap
     * (an object allocated but not yet returned is simply leaked; a span a
     * thread was trading at mcentral at that instant is leaked too). */
    releasingOrphans = true;
    for (struct mcache *c = allmcaches; c; c = c->allnext) {
        if (c->inuse && c != tls_mcache && c != mcache_shared) {
            for (int i = 0; i < numSpanClasses; i++)
                if (c->alloc[i] != &emptymspan)
                    span_recount(c->alloc[i]);
            mcache_releaseAll(c);
            c->inuse = 0;
            c->freenext = freemcaches;
            freemcaches = c;
            fixalloc_stat(&mheap_.cachealloc.inuse, -(int64_t)mheap_.cachealloc.size);
        }
    }
    releasingOrphans = false;
}
