/*
 * malloc.c — gort's allocator: the C allocation API over Go's heap.
 *
 * The design
 * ----------
 * gort's heap is Go's, which is TCMalloc's: memory is managed in 8 KiB
 * pages, small requests are rounded up to one of 67 size classes, and three
 * layers of caches sit between a request and the operating system:
 *
 *   mcache   one per thread (per P once the scheduler lands).  For each
 *            size class, a bounded list of freed objects (TCMalloc's
 *            ThreadCache, from which Go's mcache descends); for each span
 *            class, one span it allocates from without a lock: the span's
 *            allocCache names free objects by count-trailing-zeros.
 *   mcentral one per span class, locked.  When an mcache's span is spent,
 *            the span is parked here and the mcache takes one that has
 *            free objects, or a fresh one.
 *   mheap    one, locked.  Runs of pages in a segregated free index; it
 *            cuts spans for mcentral and for large objects, merges free
 *            neighbours, grows by 64 MiB arenas, and lets scavenge.c give
 *            pages that stayed free a while back to the OS.
 *
 * A pointer is classified through the arena index: the page's pageinfo
 * word gives its size class and offset in the span (arena.h), which is how
 * free learns an object's size without touching the span record.
 *
 * The path of a malloc:
 *   1. size <= 32 KiB: size_to_class8/128 gives the class (times 32, to
 *      index the lists and class_info without a shift); the object is
 *      popped from the mcache's list for it.  No lock, no atomic.
 *   2. the list is empty: it is refilled in one batch from the span's
 *      allocCache word (mcache_refillList).
 *   3. allocCache spent: mcache_nextFree searches the span's bitmap; at
 *      the span's end it gathers remote frees and either makes another pass
 *      or trades the span at mcentral (lock) for a partial or fresh one.
 *   4. mcentral has none: mheap_alloc (lock) cuts a span from a free run,
 *      growing the heap by an arena if it must (mmap).
 *   5. > 32 KiB: mheap_alloc directly, a span of whole pages.
 *
 * The path of a free (which Go does not have: its collector frees):
 *   1. small_object_class(p) proves p an object boundary of an in-use
 *      small span; the object is pushed on the mcache's list for its
 *      class, word 1 set to the key that catches a second free.  No lock,
 *      no atomic.
 *   2. the list is full: half of it goes back to the spans in per-span
 *      chains (mcache_flushList): bits cleared in the thread's own span,
 *      under the mcentral lock in a parked span, or pushed on another
 *      thread's span's xfree stack with one CAS.  A parked span that
 *      empties goes back to mheap at once (mcentral.h).
 *   3. 8-byte objects have no room for the key and free into the bitmap
 *      directly; large objects go straight back to mheap (lock), merging
 *      with free neighbours; after scavengedelay the scavenger madvises
 *      them away.
 *
 * Invalid frees are caught where Go's structures make it cheap: a pointer
 * outside the heap, inside a free run, not at an object boundary, or whose
 * object is already free (allocBits bit clear, or the list key in word 1)
 * aborts with glibc-style messages.
 *
 * Everything here is also exported under the libc names (bottom of file)
 * unless GORT_NO_LIBC_NAMES is defined (sanitizer builds, where the
 * sanitizer owns malloc).
 */
#include "mem/malloc.h"
#include "gc/mgc.h"
#include "prof/mprof.h"
#include "prof/unwind.h"
#include "mem/arena.h"
#include "mem/mcache.h"
#include "mem/mcentral.h"
#include "mem/mheap.h"
#include "mem/scavenge.h"
#include "os/os.h"
#include "runtime/godebug.h"
#include "runtime/print.h"

#include <errno.h>
#include <stdbool.h>
#include <malloc.h>
#include <pthread.h>
#include <string.h>

/* Larger requests fail with ENOMEM before any arithmetic can wrap. */
#define maxAlloc ((size_t)1 << 46)

/* ---- Start-up --------------------------------------------------------- */

static uint32_t init_state;   /* 0 none, 1 in progress, 2 done */
static rtmutex sampledLock;   /* sampled objects' kept spans (below) */

/* The heap profiler's walks first (one under way may be inside the
 * loader's lock, which fork does not take: unwind.h), then its locks, then
 * the heap's.  The child makes the profiler's anew before anything else:
 * mcache_after_fork_child allocates, and that allocation may be sampled. */
static void atfork_prepare(void)
{
    unwind_fork_prepare();
    mprof_fork_prepare();
    gort_lock(&sampledLock);
    mcache_lock_all();
    mcentral_lock_all();
    mheap_lock_all();
}

static void atfork_parent(void)
{
    mheap_unlock_all();
    mcentral_unlock_all();
    mcache_unlock_all();
    gort_unlock(&sampledLock);
    mprof_fork_parent();
    unwind_fork_parent();
}

static void atfork_child(void)
{
    unwind_fork_child();
    mprof_fork_child();
    gort_lock_reinit(&sampledLock);
    mheap_reinit_locks();
    mcentral_reinit_locks();
    gc_fork_child_locks();
    scavenge_after_fork_child();
    mcache_after_fork_child();
}

/* mallocinit, in Go's order: size classes, the heap, the central lists,
 * the caches.  Runs on the first allocation of the process. */
static void mallocinit(void)
{
    uint32_t expected = 0;
    if (!__atomic_compare_exchange_n(&init_state, &expected, 1, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != 2)
            ;
        return;
    }
    sizeclasses_init();
    godebug_parse();
    mheap_init();
    mcentral_init();
    freelist_initKey();
    mcache_init();
    __atomic_store_n(&init_state, 2, __ATOMIC_RELEASE);
    /* May allocate: only now that the heap works. */
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    mprof_init();
}

static inline int malloc_ready(void)
{
    return __atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == 2;
}

__attribute__((constructor)) static void gort_constructor(void)
{
    if (!malloc_ready())
        mallocinit();
}

/* ---- Statistics helpers ----------------------------------------------- */

static uint64_t exited_nmalloc[_NumSizeClasses], exited_nfree[_NumSizeClasses];
static uint64_t exited_largeAlloc, exited_largeFree;

/* Counts an allocation (large: bytes > 0) against c, or globally for a
 * thread past its exit flush (c == NULL). */
static void count_alloc(struct mcache *c, unsigned cls, uint64_t bytes)
{
    if (c) {
        mcache_count(&c->free[cls].nmalloc, 1);
        if (bytes)
            mcache_count(&c->largeAllocBytes, bytes);
    } else {
        __atomic_fetch_add(&exited_nmalloc[cls], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&exited_largeAlloc, bytes, __ATOMIC_RELAXED);
    }
}

static void count_free(struct mcache *c, unsigned cls, uint64_t bytes)
{
    if (c) {
        mcache_count(&c->free[cls].nfree, 1);
        if (bytes)
            mcache_count(&c->largeFreeBytes, bytes);
    } else {
        __atomic_fetch_add(&exited_nfree[cls], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&exited_largeFree, bytes, __ATOMIC_RELAXED);
    }
}

void malloc_exited_counts(uint64_t *nmalloc, uint64_t *nfree,
                          uint64_t *largeAlloc, uint64_t *largeFree)
{
    for (int i = 0; i < _NumSizeClasses; i++) {
        nmalloc[i] += __atomic_load_n(&exited_nmalloc[i], __ATOMIC_RELAXED);
        nfree[i] += __atomic_load_n(&exited_nfree[i], __ATOMIC_RELAXED);
    }
    *largeAlloc += __atomic_load_n(&exited_largeAlloc, __ATOMIC_RELAXED);
    *largeFree += __atomic_load_n(&exited_largeFree, __ATOMIC_RELAXED);
}

/* ---- Allocation ------------------------------------------------------- */

/* The heap profiler's sampling point (prof/mprof.c): every path subtracts
 * the object's size from c->next_sample, and the allocation that takes it
 * below zero is recorded.  A sampled small object's page is marked so
 * that its free reaches free_slow, which tells the profiler. */
/* next_sample is the owner's, but gort_set_memprofile_rate redraws every
 * cache's from another thread: the owner's update is a plain load and store
 * that is never torn (on x86-64 one subtract from memory, its sign flag
 * the answer), which makes that race benign; a lost update only delays the
 * new rate to the next sample.  Returns whether the count went below 0. */
static inline bool sample_due(struct mcache *c, int64_t size)
{
#if defined(__x86_64__) && !defined(GORT_TSAN)
    bool negative;
    __asm__("subq %2, %0" : "+m"(c->next_sample), "=@ccs"(negative) : "er"(size));
    return negative;
#else
    int64_t left = __atomic_load_n(&c->next_sample, __ATOMIC_RELAXED) - size;
    __atomic_store_n(&c->next_sample, left, __ATOMIC_RELAXED);
    return left < 0;
#endif
}

/* A sampled small object's page sends every free on it to free's slow
 * path (arena.h), which costs a program of small objects a few per cent of
 * its frees.  So a sampled small object gets a span of its own instead, as
 * TCMalloc does, and the object taken for it goes back unused.  Such spans
 * cost a page each: past SAMPLED_SPANS_MAX of them alive (a low rate), a
 * sampled object stays where it was and its page is marked. */
#define SAMPLED_SPANS_MAX 64
static uint32_t sampledSpans;

/* Freed one-page sampled spans are kept for the next samples, up to
 * SAMPLED_KEEP of them: handed back to the page heap, each left a one-page
 * hole between class spans that needed more, and larson's peak RSS grew
 * by 1.4 MiB of pages touched once. */
#define SAMPLED_KEEP 32
static struct mspan *sampledKept[SAMPLED_KEEP];
static unsigned nsampledKept;

static struct mspan *sampled_take(void)
{
    struct mspan *s = NULL;
    gort_lock(&sampledLock);
    if (nsampledKept)
        s = sampledKept[--nsampledKept];
    gort_unlock(&sampledLock);
    return s;
}

/* Frees s, a span of one sampled object. */
static void sampled_free(struct mspan *s)
{
    __atomic_fetch_sub(&sampledSpans, 1, __ATOMIC_RELAXED);
    if (s->npages == 1) {
        gort_lock(&sampledLock);
        if (nsampledKept < SAMPLED_KEEP) {
            s->sampledClass = SPAN_SAMPLED_KEPT;
            s->needzero = 1;
            if (s->roots) {
                __atomic_store_n(&s->roots, 0, __ATOMIC_RELEASE);
                arena_setRootPage(s->startAddr, 0);
            }
            sampledKept[nsampledKept++] = s;
            s = NULL;
        }
        gort_unlock(&sampledLock);
        if (!s)
            return;
    }
    mheap_free(s);
}

/* Hands the kept spans back (malloc_trim). */
static void sampled_release(void)
{
    for (struct mspan *s; (s = sampled_take()) != NULL;)
        mheap_free(s);
}

static void mcache_putBack(struct mcache *c, spanClass spc, void *p);

/* A span of its own for a sampled object of span class spc, or NULL. */
static void *sampled_span(spanClass spc)
{
    if (__atomic_fetch_add(&sampledSpans, 1, __ATOMIC_RELAXED) >= SAMPLED_SPANS_MAX) {
        __atomic_fetch_sub(&sampledSpans, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    unsigned cls = spanClass_sizeclass(spc);
    uintptr_t npages = (class_to_size[cls] + _PageMask) >> _PageShift;
    struct mspan *s = npages == 1 ? sampled_take() : NULL;
    if (!s)
        s = mheap_alloc(npages, 0, 0);
    if (!s) {
        __atomic_fetch_sub(&sampledSpans, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    s->sampledClass = (uint8_t)cls;
    if (spanClass_noscan(spc)) {        /* gort_malloc_uncollectable's */
        __atomic_store_n(&s->roots, 1, __ATOMIC_RELEASE);
        arena_setRootPage(s->startAddr, 1);
    }
    return (void *)s->startAddr;
}

/* Records a sample: p (size bytes) was just taken for c's malloc, from c's
 * list or span of class spc (0: p is a large object). */
__attribute__((noinline)) static void *malloc_sample(struct mcache *c, void *p, size_t size,
                                                     spanClass spc)
{
    __atomic_store_n(&c->next_sample, mprof_nextSample(), __ATOMIC_RELAXED);
    if (spc != 0) {
        void *q = sampled_span(spc);
        if (q) {
            mcache_putBack(c, spc, p);
            p = q;
        } else {
            arena_markSampled((uintptr_t)p);
        }
    }
    mprof_malloc(p, size);
    return p;
}

/* The fast path's: p came off the list of the class whose size is size. */
__attribute__((noinline)) static void *malloc_sampleListed(struct mcache *c, void *p, size_t size)
{
    return malloc_sample(c, p, size, makeSpanClass((uint8_t)size_to_class(size), 0));
}

/* The slow paths' version of the fast path's check. */
static inline void *malloc_count_sample(void *p, size_t size, spanClass spc)
{
    struct mcache *c = tls_mcache;
    /* (The shared static caches never sample: not theirs to count.) */
    if (p && c != &mcache_bootstrap && c != &mcache_exited &&
        __builtin_expect(sample_due(c, (int64_t)size), 0))
        return malloc_sample(c, p, size, spc);
    return p;
}

static void *malloc_large(size_t size, size_t align)
{
    if (!malloc_ready())
        mallocinit();
    if (size > maxAlloc || align > maxAlloc) {
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t npages = (size + _PageMask) >> _PageShift;
    if (npages == 0)
        npages = 1;
    struct mspan *s = mheap_alloc(npages, align, 0);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    count_alloc(mcache_current(), 0, npages << _PageShift);
    return malloc_count_sample((void *)s->startAddr, npages << _PageShift, 0);
}

/* Where malloc_class takes an object from. */
enum {
    fromSpan = 0,    /* the span: calloc, as objects on the lists are dirty
                        while a span knows whether its free objects are still
                        zero from the OS (needzero) */
    fromList = 1,    /* the class's list first: plain malloc */
    fromRoots = 2,   /* a span of uncollectable blocks (the odd span classes) */
};

/* An object of size class cls (>= 1), off the fast path. */
static void *malloc_class(unsigned cls, int from)
{
    if (!malloc_ready())
        mallocinit();
    int uselist = from == fromList;
    spanClass spc = makeSpanClass((uint8_t)cls, from == fromRoots);
    struct mcache *c = mcache_current();
    void *p = NULL;
    if (c) {
        if (uselist && cls >= 2) {
            p = freelist_pop(&c->free[cls]);
            if (!p)
                p = mcache_refillList(c, cls);
        } else {
            p = span_nextFreeFast(c->alloc[spc]);
            if (!p)
                p = mcache_nextFree(c, spc);
        }
    } else {
        /* This thread's own cache is gone (we run in a late destructor). */
        mcache_shared_lock();
        p = span_nextFreeFast(mcache_shared->alloc[spc]);
        if (!p)
            p = mcache_nextFree(mcache_shared, spc);
        mcache_shared_unlock();
    }
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    count_alloc(c, cls, 0);
    return malloc_count_sample(p, class_to_size[cls], spc);
}

__attribute__((noinline)) static void *malloc_slow(size_t size)
{
    if (size > _MaxSmallSize)
        return malloc_large(size, 0);
    if (!malloc_ready())
        mallocinit();
    return malloc_class(size_to_class(size), fromList);
}

void *gort_malloc(size_t size)
{
    uintptr_t cls32;    /* the class times 32: see size_to_class8 */
    if (__builtin_expect(size <= smallSizeMax - 8, 1))
        cls32 = size_to_class8[(size + smallSizeDiv - 1) / smallSizeDiv];
    else if (size <= _MaxSmallSize)
        cls32 = size_to_class128[(size - smallSizeMax + largeSizeDiv - 1) / largeSizeDiv];
    else
        return malloc_slow(size);
    struct mcache *c = tls_mcache;
    struct freelist *fl = (struct freelist *)((char *)c->free + cls32);
    void *p = freelist_pop(fl);
    if (__builtin_expect(p != NULL, 1)) {
        mcache_count(&fl->nmalloc, 1);
        size_t csize = class_info_scaled(cls32)->size;
        if (__builtin_expect(sample_due(c, (int64_t)csize), 0))
            return malloc_sampleListed(c, p, csize);
        return p;
    }
    return malloc_slow(size);
}

/* ---- Free ------------------------------------------------------------- */

/* Whether p lies inside s. */
static inline int span_contains(const struct mspan *s, uintptr_t p)
{
    return p >= s->startAddr && p - s->startAddr < (s->npages << _PageShift);
}

/* The in-use span of p, or abort with "<fn>: invalid pointer". */
static struct mspan *span_of_checked(uintptr_t p, const char *fn)
{
    struct mspan *s = span_of(p);
    if (s && span_contains(s, p)) {
        /* (A kept sampled span is free, though its pages are not.) */
        bool freed = s->state == mSpanFree || s->sampledClass == SPAN_SAMPLED_KEPT;
        if (s->state == mSpanInUse && s->gc)
            throw_bad_pointer(fn, "pointer to a collected object (gort_new)", p);
        if (s->state == mSpanInUse && !freed) {
            if (s->spanclass == 0 ? p == s->startAddr : span_objIndex(s, p) >= 0)
                return s;
        } else if (freed && p == s->startAddr) {
            throw_bad_pointer(fn, "double free detected", p);
        }
    }
    throw_bad_pointer(fn, "invalid pointer", p);
}

/* Pushes ptr, an object of class cls >= 2 that is not listed, on c's list
 * for its class, making room first if the list is full: it may grow, else
 * half of it goes back to the spans. */
static void freelist_pushFull(struct mcache *c, unsigned cls, void *ptr)
{
    struct freelist *fl = &c->free[cls];
    if (fl->room == 0) {
        mcache_growList(c, cls, FREELIST_FREE_GROWTH);
        if (fl->room == 0)
            mcache_flushList(c, cls, fl->max / 2);
    }
    freelist_push(fl, ptr, c->key);
}

/* A second free of object idx of s (at p) that the key cannot show: the
 * object went back to its span (flushed from a list, or freed there
 * directly), so its allocation bit is clear.  Only in a span c owns:
 * another's bitmap is its owner's to read. */
static void check_ownedFreed(const struct mcache *c, const struct mspan *s, unsigned idx,
                             uintptr_t p, const char *fn)
{
    if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) == c && !span_isAllocated(s, idx))
        throw_bad_pointer(fn, "double free detected", p);
}

__attribute__((noinline)) static void free_slow(void *ptr, const char *fn)
{
    if (!ptr)
        return;
    int saved_errno = errno;
    uintptr_t p = (uintptr_t)ptr;
    struct mspan *s = span_of_checked(p, fn);
    if (__atomic_load_n(&mprof_any, __ATOMIC_RELAXED) && mprof_free(ptr) && s->spanclass != 0)
        arena_unmarkSampled(p);
    struct mcache *c = mcache_current();
    if (s->spanclass == 0) {
        if (s->sampledClass) {
            count_free(c, s->sampledClass, 0);
            sampled_free(s);
        } else {
            count_free(c, 0, s->npages << _PageShift);
            mheap_free(s);
        }
        errno = saved_errno;
        return;
    }
    unsigned cls = spanClass_sizeclass(s->spanclass);
    unsigned idx = (unsigned)span_objIndex(s, p);
    /* Only listed objects carry the key in word 1 (class 1 never lists). */
    if (cls > 1 && ((uintptr_t *)ptr)[1] == freelist_key)
        throw_bad_pointer(fn, "double free detected", p);
    if (c)
        check_ownedFreed(c, s, idx, p, fn);
    count_free(c, cls, 0);
    if (c && cls > 1) {
        freelist_pushFull(c, cls, ptr);
    } else if (c && __atomic_load_n(&s->owner, __ATOMIC_RELAXED) == c) {
        span_freeOwned(s, idx);
    } else {
        mcentral_remoteFree(s, ptr);
    }
    errno = saved_errno;
}

/* Puts p, an object c has just taken from its list or span of class spc
 * for a malloc, back unused (its malloc stays counted: for the object
 * that replaced it). */
static void mcache_putBack(struct mcache *c, spanClass spc, void *p)
{
    unsigned cls = spanClass_sizeclass(spc);
    if (cls > 1) {
        freelist_pushFull(c, cls, p);
    } else {
        /* Class 1 never lists: p came from c's span. */
        struct mspan *s = c->alloc[spc];
        span_freeOwned(s, (unsigned)span_objIndex(s, (uintptr_t)p));
    }
}

/* The class of p's page in the arena's dense pageinfo (0 for any page but
 * a small-object span's), times 32, and p's offset from its span's start,
 * p being in arena ha: free() classifies a pointer from these and the
 * packed class records, never touching the mspan.  32 is the size of a
 * class record and of an mcache's list, so free() indexes both without a
 * shift.  An address past 48 bits aliases some arena but fails the
 * boundary test. */
_Static_assert(sizeof(struct classinfo) == 1u << PAGEINFO_CLASS_SHIFT, "class record size");
_Static_assert(sizeof(struct freelist) == 1u << PAGEINFO_CLASS_SHIFT, "list record size");
_Static_assert(CLASS_SCALE_SHIFT == PAGEINFO_CLASS_SHIFT, "one scale for classes");
static inline uintptr_t page_class32(const struct heapArena *ha, uintptr_t p, uintptr_t *off)
{
    uint32_t info = arena_pageInfo(ha, p);
    /* (Below 2^29 for a page of a small-object span: the test's range.) */
    *off = (p & _PageMask) + (info & PAGEINFO_OFFSET_MASK);
    return (uintptr_t)(info & PAGEINFO_CLASS_MASK);
}

/* Whether offset off in a span of class cls32 / 32 starts one of its
 * objects (struct classinfo's one-multiply test; never for class 0). */
static inline bool class_boundary(uintptr_t cls32, uintptr_t off)
{
    const struct classinfo *ci = class_info_scaled(cls32);
    return off * ci->divtest < ci->below;
}

/* The size class of p if p is the start of an object in an in-use
 * small-object span, else 0 (large, free, interior, or not gort's). */
static inline unsigned small_object_class(uintptr_t p)
{
    const struct heapArena *ha = arena_of_unchecked(p);
    if (__builtin_expect(ha == NULL, 0))
        return 0;
    uintptr_t off;
    uintptr_t cls32 = page_class32(ha, p, &off);
    return class_boundary(cls32, off) ? cls32 >> PAGEINFO_CLASS_SHIFT : 0;
}

/* free()'s object starts an object of class cls, but its list is full (or
 * it has none).  Unless it carries the key (a second free), no profiler
 * lookup (an object of a sampled page fails the class test): room is made
 * on the list. */
__attribute__((noinline)) static void free_listFull(struct mcache *c, unsigned cls, void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    struct mspan *s = span_of(p);
    unsigned idx = (unsigned)span_objIndex(s, p);
    /* An 8-byte object has no word 1 for the key, so class 1 never lists:
     * in a span of this thread's its bit goes at once, a clear bit being
     * a second free (2 % of churn's frees, which took the slow path). */
    if (cls == 1 && __atomic_load_n(&s->owner, __ATOMIC_RELAXED) == c) {
        check_ownedFreed(c, s, idx, p, "free()");
        span_freeOwned(s, idx);
        mcache_count(&c->free[cls].nfree, 1);
        return;
    }
    /* Class 1 elsewhere, a bootstrap or exited cache; word 1 is read only
     * now that the object is known to have one (an 8-byte object's word 1
     * is its neighbour's, which another thread may be writing). */
    if (c->free[cls].max == 0 || ((uintptr_t *)ptr)[1] == c->key) {
        free_slow(ptr, "free()");
        return;
    }
    /* A list held short by a spent budget flushes an object to its span
     * as the next comes, so a second free of it finds no key: the span's
     * bit shows it.  (This path runs once per half a list otherwise.) */
    check_ownedFreed(c, s, idx, p, "free()");
    int saved_errno = errno;
    freelist_pushFull(c, cls, ptr);
    mcache_count(&c->free[cls].nfree, 1);
    errno = saved_errno;
}

void gort_free(void *ptr)
{
    struct mcache *c = tls_mcache;
    const struct heapArena *ha = arena_of_unchecked((uintptr_t)ptr);
    uintptr_t off;
    uintptr_t cls32;
    /* Not gort's, not an object's start, or an object that already carries
     * the key (a second free): the slow path, which reports or explains.
     * (Room first: class 1 has none, and its objects no word 1.) */
    if (__builtin_expect(ha != NULL, 1) && (cls32 = page_class32(ha, (uintptr_t)ptr, &off),
                                            class_boundary(cls32, off))) {
        struct freelist *fl = (struct freelist *)((char *)c->free + cls32);
        if (__builtin_expect(fl->room == 0, 0)) {
            free_listFull(c, cls32 >> PAGEINFO_CLASS_SHIFT, ptr);
            return;
        }
        if (__builtin_expect(((uintptr_t *)ptr)[1] != c->key, 1)) {
            freelist_push(fl, ptr, c->key);
            mcache_count(&fl->nfree, 1);
            return;
        }
    }
    free_slow(ptr, "free()");
}

/* ---- The rest of the API ---------------------------------------------- */

static size_t usable_size(const struct mspan *s)
{
    return s->spanclass == 0 ? span_largeBytes(s) : s->elemsize;
}

void *gort_calloc(size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    /* Small objects come from the span rather than the lists, so the span's
     * needzero tells whether the memory is still as the OS gave it. */
    if (!malloc_ready())
        mallocinit();
    void *p = n <= _MaxSmallSize ? malloc_class(size_to_class(n), fromSpan) : gort_malloc(n);
    if (p && span_of((uintptr_t)p)->needzero)
        memset(p, 0, n);
    return p;
}

void *gort_malloc_uncollectable(size_t size)
{
    if (!malloc_ready())
        mallocinit();
    void *p;
    if (size > _MaxSmallSize) {
        /* Fresh or released pages of a large span read as zero only when
         * needzero says so. */
        p = malloc_large(size, 0);
        if (p) {
            struct mspan *s = span_of((uintptr_t)p);
            if (s->needzero)
                memset(p, 0, size);
            __atomic_store_n(&s->roots, 1, __ATOMIC_RELEASE);
            arena_setRootPage(s->startAddr, 1);
        }
        return p;
    }
    p = malloc_class(size_to_class(size), fromRoots);
    if (p && span_of((uintptr_t)p)->needzero)
        memset(p, 0, size);
    return p;
}

void *gort_realloc(void *ptr, size_t size)
{
    if (!ptr)
        return gort_malloc(size);
    if (size == 0) {
        gort_free(ptr);
        return NULL;
    }
    size_t old;
    unsigned cls = small_object_class((uintptr_t)ptr);
    if (cls) {
        old = class_to_size[cls];
        /* Stay when the new size still fits, is at least half the block
         * (a buffer halved in place, as TCMalloc does, wastes no more than
         * one grown by doubling), and the block is aligned as malloc(size)
         * would be (a 24-byte object may sit at an 8-aligned address). */
        if (size <= old && (size >= old / 2 || size_to_class(size) == cls) &&
            (size <= 8 || (uintptr_t)ptr % 16 == 0))
            return ptr;
    } else {
        struct mspan *s = span_of_checked((uintptr_t)ptr, "realloc()");
        old = usable_size(s);
        /* A large block halved to a small size stays, as a small one does
         * (one from an aligned allocation may be smaller than a small size:
         * it stays only if the size fits). */
        if (s->spanclass == 0 && size <= _MaxSmallSize && size <= old && size >= old / 2)
            return ptr;
        /* (A sampled small object's span is not a large block to grow.) */
        if (s->spanclass == 0 && !s->sampledClass && size > _MaxSmallSize && size <= maxAlloc) {
            uintptr_t npages = (size + _PageMask) >> _PageShift;
            uintptr_t oldpages = s->npages;
            if (mheap_resize(s, npages)) {
                memstats_large_resized(((int64_t)npages - (int64_t)oldpages) *
                                       (int64_t)_PageSize);
                return ptr;
            }
        }
    }
    /* A block that grows by small steps (appending to a buffer) grows by at
     * least a quarter, so the steps do not each pay a copy. */
    size_t want = size;
    if (size > old && size < old + old / 4)
        want = old + old / 4;
    void *q = gort_malloc(want);
    if (!q && want != size)
        q = gort_malloc(size);
    if (!q)
        return NULL;
    memcpy(q, ptr, size < old ? size : old);
    gort_free(ptr);
    return q;
}

void *gort_reallocarray(void *ptr, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return gort_realloc(ptr, n);
}

/* A block of size bytes aligned to align (a power of two). */
static void *malloc_aligned(size_t align, size_t size)
{
    if (align <= 8)
        return gort_malloc(size);
    if (size <= _MaxSmallSize && align <= _PageSize) {
        if (!malloc_ready())
            mallocinit();
        /* Objects sit at multiples of their size from a page-aligned base:
         * a class whose size is a multiple of align gives aligned blocks. */
        unsigned cls = size_to_class(size ? size : 1);
        while (cls < _NumSizeClasses && class_to_size[cls] % align)
            cls++;
        if (cls < _NumSizeClasses)
            return malloc_class(cls, fromList);
    }
    return malloc_large(size ? size : 1, align);
}

static int is_pow2(size_t x)
{
    return x && !(x & (x - 1));
}

int gort_posix_memalign(void **out, size_t alignment, size_t size)
{
    if (!is_pow2(alignment) || alignment % sizeof(void *))
        return EINVAL;
    int saved_errno = errno;
    void *p = malloc_aligned(alignment, size);
    errno = saved_errno;
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *gort_aligned_alloc(size_t alignment, size_t size)
{
    if (!is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return malloc_aligned(alignment, size);
}

void *gort_memalign(size_t alignment, size_t size)
{
    /* glibc rounds a non-power-of-two alignment up. */
    if (alignment > maxAlloc) {
        errno = EINVAL;
        return NULL;
    }
    if (!is_pow2(alignment))
        alignment = alignment ? (size_t)1 << (64 - __builtin_clzll(alignment)) : 1;
    return malloc_aligned(alignment, size);
}

void *gort_valloc(size_t size)
{
    return malloc_aligned(os_pagesize(), size);
}

void *gort_pvalloc(size_t size)
{
    size_t pg = os_pagesize();
    size_t rounded;
    if (__builtin_add_overflow(size, pg - 1, &rounded)) {
        errno = ENOMEM;
        return NULL;
    }
    rounded &= ~(pg - 1);
    return malloc_aligned(pg, rounded ? rounded : pg);
}

size_t gort_malloc_usable_size(void *ptr)
{
    if (!ptr)
        return 0;
    return usable_size(span_of_checked((uintptr_t)ptr, "malloc_usable_size()"));
}

int gort_malloc_trim(size_t pad)
{
    (void)pad;
    if (!malloc_ready())
        return 0;
    /* This thread's lists and cached spans go back first: a listed object
     * keeps its whole span from the heap (a program that frees 512 MiB of
     * small blocks in random order keeps tens of MiB of spans behind its
     * lists).  Other threads' caches are theirs alone to touch.  Then all
     * that is free in mheap goes. */
    struct mcache *c = tls_mcache;
    if (c != &mcache_bootstrap && c != &mcache_exited)
        mcache_releaseMalloc(c);
    sampled_release();
    return scavenge_release(UINT64_MAX, NULL, UINT64_MAX) > 0;
}

/* ---- The libc names --------------------------------------------------- */

#ifndef GORT_NO_LIBC_NAMES
#define GORT_ALIAS(name) __attribute__((alias(name), visibility("default")))

void *malloc(size_t) GORT_ALIAS("gort_malloc");
void free(void *) GORT_ALIAS("gort_free");
void *calloc(size_t, size_t) GORT_ALIAS("gort_calloc");
void *realloc(void *, size_t) GORT_ALIAS("gort_realloc");
void *reallocarray(void *, size_t, size_t) GORT_ALIAS("gort_reallocarray");
int posix_memalign(void **, size_t, size_t) GORT_ALIAS("gort_posix_memalign");
void *aligned_alloc(size_t, size_t) GORT_ALIAS("gort_aligned_alloc");
void *memalign(size_t, size_t) GORT_ALIAS("gort_memalign");
void *valloc(size_t) GORT_ALIAS("gort_valloc");
void *pvalloc(size_t) GORT_ALIAS("gort_pvalloc");
size_t malloc_usable_size(void *) GORT_ALIAS("gort_malloc_usable_size");
int malloc_trim(size_t) GORT_ALIAS("gort_malloc_trim");
/* glibc's old name for free. */
void cfree(void *) GORT_ALIAS("gort_free");
#endif
