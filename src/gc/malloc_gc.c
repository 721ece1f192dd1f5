/*
 * malloc_gc.c — allocating collected objects: gort_new and its kin, Go's
 * mallocgc over gort's heap.
 *
 * Collected objects share everything with malloc below the per-P cache:
 * the same mheap gives spans, the same mcache (one per P, or per plain
 * thread) holds them.  What differs:
 *   - their own span classes: a size class and a noscan bit, 136 of them,
 *     in gcheap.central rather than malloc's mcentrals, because their spans
 *     live by sweeping, not by free();
 *   - no free lists: an object is found free only by the collector, so the
 *     fast path is Go's nextFreeFast on the cached span;
 *   - a scan span knows which words of its objects are pointers: while
 *     every object in it is of one kind (one type, or conservative: all
 *     words) it names that kind (span->ptrtype) and needs no map; once it
 *     mixes kinds it gets a bit per word (span->ptrbits);
 *   - pointer-free objects under 16 bytes share 16-byte blocks (Go's tiny
 *     allocator), bumping an offset in the cache's current block.
 * Everything that touches the cache's slots or a cached span runs inside a
 * nosuspend section (stw.h): the collector empties every cache while the
 * world is stopped, and must not find one half-changed.  Getting a span
 * (locks, sweeping, the heap) happens outside sections.
 */
#include "gc/mgc.h"
#include "gc/stw.h"
#include "mem/arena.h"
#include "mem/fixalloc.h"
#include "mem/malloc.h"
#include "mem/mcache.h"
#include "mem/mheap.h"
#include "runtime/print.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

struct gcheap gcheap;

#define maxGCAlloc ((size_t)1 << 46)
#define tinySize 16
#define tinyClass 2          /* the 16-byte size class */

/* mspan.ptrtype's name for the map of a conservative object (all words):
 * only its address is used. */
const gort_type gc_ptrtype_all = {0};

/* ---- Start-up --------------------------------------------------------- */

static pthread_once_t gcOnce = PTHREAD_ONCE_INIT;

static void gcinit(void)
{
    gort_free(gort_malloc(1));   /* the heap first */
    /* Start at 4 so sweepgen - 2 never wraps below zero. */
    gcheap.sweepgen = 4;
    gc_params_init();
    __atomic_store_n(&gcInited, true, __ATOMIC_RELEASE);
}

void gcinit_once(void)
{
    if (__builtin_expect(!__atomic_load_n(&gcInited, __ATOMIC_ACQUIRE), 0))
        pthread_once(&gcOnce, gcinit);
}

/* ---- gcentral lists ---------------------------------------------------- */

static inline uint32_t sweepgen_now(void)
{
    return __atomic_load_n(&gcheap.sweepgen, __ATOMIC_ACQUIRE);
}

/* Lock holders run inside nosuspend sections, so the collector, which
 * takes these locks with the world stopped, never waits on a stopped
 * thread. */
static void central_lock(rtmutex *l)
{
    gcnosuspend_enter();
    gort_lock(l);
}

static void central_unlock(rtmutex *l)
{
    gort_unlock(l);
    gcnosuspend_exit();
}

/* Puts span s on its class's list (lock held; sg read under it).  A span
 * swept before the last cycle ended (held by a thread across the stop) is
 * unswept again: its gcmarkBits hold that cycle's marks. */
static void place_locked(struct gcentral *c, struct mspan *s, uint32_t sg)
{
    unsigned i = sweptIndex(sg);
    if (s->sweepgen != sg) {
        s->sweepgen = sg - 2;
        i ^= 1;
    }
    spanlist_push(s->allocCount < s->nelems ? &c->partial[i] : &c->full[i], s);
}

void gcentral_place(struct mspan *s)
{
    struct gcentral *c = gcentral_of(s);
    central_lock(&c->lock);
    place_locked(c, s, sweepgen_now());
    central_unlock(&c->lock);
}

void gclarge_place(struct mspan *s)
{
    central_lock(&gcheap.largeLock);
    uint32_t sg = sweepgen_now();
    unsigned i = sweptIndex(sg);
    if (s->sweepgen != sg) {
        s->sweepgen = sg - 2;
        i ^= 1;
    }
    spanlist_push(&gcheap.large[i], s);
    central_unlock(&gcheap.largeLock);
}

/* ---- Spans for the cache ----------------------------------------------- */

static void bits_set(uint64_t *bits, uintptr_t from, uintptr_t n, bool one)
{
    while (n > 0) {
        unsigned shift = (unsigned)(from & 63);
        uintptr_t take = 64 - shift < n ? 64 - shift : n;
        uint64_t mask = (take == 64 ? ~(uint64_t)0 : (((uint64_t)1 << take) - 1)) << shift;
        if (one)
            bits[from >> 6] |= mask;
        else
            bits[from >> 6] &= ~mask;
        from += take;
        n -= take;
    }
}

static void *populate_span(void *s)
{
    os_populate((void *)((struct mspan *)s)->startAddr, ((struct mspan *)s)->npages << _PageShift);
    return NULL;
}

/* A fresh span of collected class gcc from the heap, or NULL.
 *
 * Pages the OS has not backed yet (needzero clear: never touched, or
 * released zeroed) are faulted in here, as blocked: otherwise the
 * program's first stores into the new objects fault one page at a time,
 * and a stop must wait out each fault under way (the signal lands only
 * when the fault is over), which on a virtual machine now and then takes
 * hundreds of microseconds.  Blocked, the thread is no stop's concern. */
static struct mspan *span_fresh(unsigned gcc)
{
    unsigned cls = gcc / 2;
    bool noscan = gcc & 1;
    uintptr_t npages = class_to_allocnpages[cls];
    struct mspan *s = mheap_allocGC(npages, makeSpanClass((uint8_t)cls, 0));
    if (!s)
        return NULL;
    if (!s->needzero)
        gc_do_blocking(populate_span, s);
    __atomic_add_fetch(&gcheap.pagesInUse, npages, __ATOMIC_RELAXED);
    span_init_small(s, makeSpanClass((uint8_t)cls, 0));
    memset(s->gcmarkBits, 0, span_bitbytes(s));
    s->ptrbits = NULL;   /* no map while its objects are all of one kind */
    s->ptrtype = noscan ? NULL : &gc_ptrtype_all;
    s->gcclass = (uint16_t)gcc;
    s->sweepgen = sweepgen_now();
    __atomic_store_n(&s->gc, noscan ? GCSPAN_NOSCAN : GCSPAN_SCAN, __ATOMIC_RELEASE);
    return s;
}

/* A span of class gcc with a free object, swept (Go's mcentral.cacheSpan):
 * a swept partial span, else sweep unswept ones until one has room, else a
 * fresh one.  NULL when out of memory.
 *
 * The span comes *held*: counted in gcheap.nsweeping, as a sweeper counts
 * the span it claimed, until the caller has cached or placed it
 * (sweep_release).  No cycle can start meanwhile (finishsweep waits), so a
 * span held privately misses at most the one cycle that was already under
 * way: were it to miss two, the second mark would find the first one's
 * marks still in its bitmap, take them for its own, and never scan those
 * objects. */
static struct mspan *gcentral_cacheSpan(unsigned gcc)
{
    struct gcentral *c = &gcheap.central[gcc];
    for (int budget = 100; budget > 0; budget--) {
        central_lock(&c->lock);
        /* Read under the lock: sweepgen moves only while no nosuspend
         * section runs. */
        uint32_t sg = sweepgen_now();
        struct mspan *s = spanlist_pop(&c->partial[sweptIndex(sg)]);
        bool swept = s != NULL;
        if (swept) {
            __atomic_add_fetch(&gcheap.nsweeping, 1, __ATOMIC_ACQ_REL);
        } else if (!gc_marking()) {
            s = spanlist_pop(&c->partial[sweptIndex(sg) ^ 1]);
            if (!s)
                s = spanlist_pop(&c->full[sweptIndex(sg) ^ 1]);
            if (s && !span_claim(s, sg))
                throw("gc: unswept list holds a span in the wrong sweep state");
        }
        central_unlock(&c->lock);
        if (!s)
            break;
        if (swept)
            return s;
        if (!span_sweep(s)) {
            sweep_release();              /* emptied: back to the heap */
            continue;
        }
        if (s->allocCount < s->nelems)
            return s;
        gcentral_place(s);
        sweep_release();
    }
    __atomic_add_fetch(&gcheap.nsweeping, 1, __ATOMIC_ACQ_REL);
    struct mspan *s = span_fresh(gcc);
    if (!s)
        sweep_release();
    return s;
}

/* Allocate black, a span at a time.  The first object a cache takes from
 * s during a mark marks itself and every slot still free after it: a span
 * is allocated from only there during a cycle, so every object it hands
 * out until the mark ends is born black with no atomic of its own (one
 * each, Go's way, was a locked instruction per allocation while marking).
 * The slots marked but never handed out lose their marks when the span is
 * swept (sweep_bits keeps only allocated slots' marks), so the stop that
 * ends the mark has nothing to undo.  Only free slots gain marks here, and
 * marking never marks a free slot: the atomics guard the words' other bits. */
static __attribute__((noinline)) void span_premark(struct mspan *s, uintptr_t p)
{
    unsigned idx = (unsigned)(((uint64_t)(p - s->startAddr) * s->divMul) >> 32);
    unsigned words = (s->nelems + 63u) / 64u;
    for (unsigned w = idx >> 6; w < words; w++) {
        uint64_t bits = ~s->allocBits[w];
        if (w == idx >> 6)
            bits = (bits & (~(uint64_t)0 << (idx & 63))) | (uint64_t)1 << (idx & 63);
        if (w == words - 1 && (s->nelems & 63) != 0)
            bits &= ((uint64_t)1 << (s->nelems & 63)) - 1;
        if (bits)
            __atomic_fetch_or(&s->gcmarkBits[w], bits, __ATOMIC_RELAXED);
    }
    s->premarked = 1;
}

/* Installs s in slot gcc of c (inside a nosuspend section).  A cycle may
 * have run since s was swept; then it is swept again first. */
static bool install_span(struct mcache *c, unsigned gcc, struct mspan *s, uint64_t *got)
{
    uint32_t sg = sweepgen_now();
    if (s->sweepgen != sg)
        return false;
    c->gcalloc[gcc] = s;
    s->sweepgen = sg + 3;
    /* Go's accounting: a cached span's free slots count as allocated. */
    *got = (uint64_t)(s->nelems - s->allocCount) * s->elemsize;
    __atomic_add_fetch(&gcheap.heapLive, *got, __ATOMIC_RELAXED);
    return true;
}

/* A held span that a cycle overtook between sweeping and installing (one
 * already past its finishsweep when the span was taken): if it holds
 * nothing, it only needs its marks cleared; else a sweep.  Returns s still
 * held, or NULL when it had no room left (placed) or was freed (released
 * either way). */
static struct mspan *span_refresh(struct mspan *s)
{
    if (s->allocCount == 0) {
        /* Nothing in it: only stale marks to clear (none can be made in a
         * span without objects). */
        gcnosuspend_enter();
        memset(s->gcmarkBits, 0, span_bitbytes(s));
        s->premarked = 0;
        s->sweepgen = sweepgen_now();
        gcnosuspend_exit();
        return s;
    }
    /* (span_sweep waits if that cycle's concurrent mark still runs.) */
    uint32_t sg = sweepgen_now();
    s->sweepgen = sg - 1;
    bool kept = span_sweep(s);
    if (kept && s->allocCount == s->nelems) {
        gcentral_place(s);
        kept = false;
    }
    if (!kept)
        sweep_release();
    return kept ? s : NULL;
}

/* Hands c's span of class gcc back (nosuspend section held). */
static void uncache_span(struct mcache *c, unsigned gcc, uint32_t sg)
{
    struct mspan *s = c->gcalloc[gcc];
    c->gcalloc[gcc] = &emptymspan;
    /* The objects handed out from it go into its bitmap now, and its
     * count, not kept while cached, is taken from the bitmap (mspan.h). */
    span_foldFreeindex(s);
    span_recount(s);
    /* With no free slot at or after freeindex the span is full for
     * allocation, or it would be taken again for ever. */
    if (s->allocCount < s->nelems && span_nextFreeIndex(s) >= s->nelems)
        span_setAllocCount(s, s->nelems);
    uint64_t unused = (uint64_t)(s->nelems - s->allocCount) * s->elemsize;
    __atomic_sub_fetch(&gcheap.heapLive, unused, __ATOMIC_RELAXED);
    s->sweepgen = sg;
    struct gcentral *cen = &gcheap.central[gcc];
    gort_lock(&cen->lock);
    place_locked(cen, s, sg);
    gort_unlock(&cen->lock);
}

/* Slot gcc of c is spent: trade its span for one with room (of *got free
 * bytes).  Runs outside nosuspend sections; false when out of memory. */
static bool gc_refill(struct mcache *c, unsigned gcc, uint64_t *got)
{
    gcnosuspend_enter();
    if (c->gcalloc[gcc] != &emptymspan)
        uncache_span(c, gcc, sweepgen_now());
    gcnosuspend_exit();
    for (;;) {
        struct mspan *s = gcentral_cacheSpan(gcc);   /* held */
        if (!s)
            return false;
        while (s) {
            gcnosuspend_enter();
            bool ok = install_span(c, gcc, s, got);
            gcnosuspend_exit();
            if (ok) {
                sweep_release();
                return true;
            }
            s = span_refresh(s);
        }
    }
}

void gccache_release(struct mcache *c)
{
    if (!__atomic_load_n(&gcInited, __ATOMIC_ACQUIRE))
        return;
    gcnosuspend_enter();
    uint32_t sg = sweepgen_now();
    for (unsigned i = 0; i < numGCClasses; i++)
        if (c->gcalloc[i] != &emptymspan)
            uncache_span(c, i, sg);
    c->tiny = 0;
    c->tinyoffset = 0;
    gcnosuspend_exit();
}

void gcflush_caches(void)
{
    uint32_t sg = gcheap.sweepgen;
    for (struct mcache *c = allmcaches; c; c = c->allnext) {
        for (unsigned i = 0; i < numGCClasses; i++)
            if (c->gcalloc[i] != &emptymspan)
                uncache_span(c, i, sg);
        c->tiny = 0;
        c->tinyoffset = 0;
    }
}

/* ---- Allocation ------------------------------------------------------- */

/* Writes the n (1..64) low bits of v into bits at bit from. */
static inline void bits_put(uint64_t *bits, uintptr_t from, unsigned n, uint64_t v)
{
    unsigned sh = (unsigned)(from & 63);
    uint64_t *w = &bits[from >> 6];
    uint64_t m = ((uint64_t)2 << (n - 1)) - 1;   /* n low bits, n = 64 included */
    v &= m;
    w[0] = (w[0] & ~(m << sh)) | (v << sh);
    if (sh + n > 64) {
        unsigned k = 64 - sh;   /* bits that went into w[0] */
        w[1] = (w[1] & ~(m >> k)) | (v >> k);
    }
}

/* The pointer map of one slot (words w0 .. w0+nw) of small scan span s:
 * all words for a conservative object (t NULL), else the bits of nelem
 * elements of t, zero after them (nosuspend section held).  Written a word
 * of the type's mask at a time. */
static void write_slot_ptrbits(uint64_t *bits, uintptr_t w0, uintptr_t nw, const gort_type *t,
                               size_t nelem)
{
    if (nw <= 64) {
        if (!t) {
            bits_put(bits, w0, (unsigned)nw, ~(uint64_t)0);
            return;
        }
        if (nelem == 1 && t->ptrmask && t->size == nw * sizeof(void *)) {
            bits_put(bits, w0, (unsigned)nw, t->ptrmask[0]);
            return;
        }
    }
    if (!t) {
        bits_set(bits, w0, nw, true);
        return;
    }
    uintptr_t tw = t->size / sizeof(void *);
    uintptr_t done = 0;
    if (t->ptrmask && tw != 0) {
        for (size_t e = 0; e < nelem; e++) {
            for (uintptr_t j = 0; j < tw; j += 64) {
                unsigned n = tw - j < 64 ? (unsigned)(tw - j) : 64;
                bits_put(bits, w0 + done + j, n, t->ptrmask[j >> 6]);
            }
            done += tw;
        }
    }
    if (nw > done)
        bits_set(bits, w0 + done, nw - done, false);
}

/* The maps of mixed spans: a bit per word, so npages * 128 bytes, from a
 * fixalloc per span length.  Their own lock, taken only inside nosuspend
 * sections (or by fork's handler, which holds gcLock so that no stop can
 * be under way): a holder is never stopped, so waiting for it inside a
 * section is safe, where malloc's heap lock would not be. */
#define PTRBITS_MAXPAGES 10   /* the longest small span (class_to_allocnpages) */
static spinlock ptrbitsLock;
static struct fixalloc ptrbitsAlloc[PTRBITS_MAXPAGES + 1];

static size_t ptrbits_words(uintptr_t npages)
{
    return (npages << _PageShift) / sizeof(void *) / 64;
}

static uint64_t *ptrbits_alloc(uintptr_t npages)
{
    spin_lock(&ptrbitsLock);
    struct fixalloc *f = &ptrbitsAlloc[npages];
    if (f->size == 0)
        fixalloc_init(f, ptrbits_words(npages) * sizeof(uint64_t));
    uint64_t *bits = fixalloc_alloc(f);
    spin_unlock(&ptrbitsLock);
    return bits;
}

void span_free_ptrbits(struct mspan *s)
{
    if (!s->ptrbits)
        return;
    gcnosuspend_enter();
    spin_lock(&ptrbitsLock);
    fixalloc_free(&ptrbitsAlloc[s->npages], s->ptrbits);
    spin_unlock(&ptrbitsLock);
    gcnosuspend_exit();
    s->ptrbits = NULL;
}

uint64_t gc_ptrbits_sys(void)
{
    uint64_t sys = 0;
    for (int i = 0; i <= PTRBITS_MAXPAGES; i++)
        sys += __atomic_load_n(&ptrbitsAlloc[i].sys, __ATOMIC_RELAXED);
    return sys;
}

void ptrbits_fork_prepare(void) { spin_lock(&ptrbitsLock); }
void ptrbits_fork_parent(void) { spin_unlock(&ptrbitsLock); }
void ptrbits_fork_child(void) { ptrbitsLock = (spinlock){0}; }

/* Lays a map of every slot (nw words each) of s into bits, for one object
 * of type t in each (all words when t is NULL).  The map is periodic, nw
 * bits per slot, so for slots of up to 64 words each word of it is 64
 * bits of that period taken at the right phase: a few instructions a word,
 * not a write per slot. */
static void fill_span_ptrbits(uint64_t *bits, const struct mspan *s, uintptr_t nw,
                              const gort_type *t)
{
    size_t nwords = ptrbits_words(s->npages);
    if (!t) {
        memset(bits, 0xff, nwords * sizeof(uint64_t));
        return;
    }
    if (nw > 64) {
        for (unsigned i = 0; i < s->nelems; i++)
            write_slot_ptrbits(bits, (uintptr_t)i * nw, nw, t, 1);
        return;
    }
    /* One slot's bits: the type's words, zero after them. */
    uintptr_t tw = t->size / sizeof(void *);
    uint64_t lown = nw == 64 ? ~(uint64_t)0 : ((uint64_t)1 << nw) - 1;
    uint64_t slot = tw >= 64 ? t->ptrmask[0] : t->ptrmask[0] & (((uint64_t)1 << tw) - 1);
    slot &= lown;
    /* The period repeated over 128 bits, from phase 0. */
    uint64_t rep[3] = {0, 0, 0};
    for (unsigned pos = 0; pos < 128; pos += (unsigned)nw) {
        rep[pos >> 6] |= slot << (pos & 63);
        if ((pos & 63) != 0 && (pos & 63) + nw > 64)
            rep[(pos >> 6) + 1] |= slot >> (64 - (pos & 63));
    }
    unsigned phase = 0, step = (unsigned)(64 % nw);
    for (size_t k = 0; k < nwords; k++) {
        bits[k] = phase == 0 ? rep[0] : (rep[0] >> phase) | (rep[1] << (64 - phase));
        phase += step;
        if (phase >= nw)
            phase -= (unsigned)nw;
    }
}

/* The object at p differs in kind from the rest of s, which has no map
 * yet: s gets one, laid out for the kind all its slots had, published
 * before mspan.ptrtype stops naming that kind (scanobject reads them in
 * the other order).  (Like span records, maps come from the OS directly;
 * running out of memory for them is fatal.) */
static uint64_t *span_make_ptrbits(struct mspan *s, uintptr_t nw)
{
    if (s->npages > PTRBITS_MAXPAGES)
        throw("span_make_ptrbits: span longer than any small class");
    uint64_t *bits = ptrbits_alloc(s->npages);
    const gort_type *kind = s->ptrtype;
    fill_span_ptrbits(bits, s, nw, kind == &gc_ptrtype_all ? NULL : kind);
    __atomic_store_n(&s->ptrbits, bits, __ATOMIC_RELEASE);
    return bits;
}

/* The map of the object at p differs from what its slot holds.  When it is
 * the span's only object (in practice: the first in a fresh span), the
 * span takes its kind, so that the rest of the span's objects of that kind
 * write nothing: a span mostly holds one type.  Otherwise the span is
 * mixed: the slot's own bits in the span's map. */
static __attribute__((noinline)) void write_ptrbits_slow(struct mspan *s, uintptr_t p,
                                                        const gort_type *t, size_t nelem,
                                                        const gort_type *kind)
{
    uintptr_t nw = s->elemsize / sizeof(void *);
    /* (A cached span's allocCount is what it held when cached, mspan.h: an
     * empty span's first object is at slot 0.) */
    if (kind && s->allocCount == 0 && __atomic_load_n(&s->freeindex, __ATOMIC_RELAXED) == 1) {
        if (s->ptrbits)   /* mixed once: the map stays, laid out anew */
            fill_span_ptrbits(s->ptrbits, s, nw, t);
        __atomic_store_n(&s->ptrtype, kind, __ATOMIC_RELEASE);
        return;
    }
    uint64_t *bits = s->ptrbits ? s->ptrbits : span_make_ptrbits(s, nw);
    write_slot_ptrbits(bits, (p - s->startAddr) / sizeof(void *), nw, t, nelem);
    __atomic_store_n(&s->ptrtype, NULL, __ATOMIC_RELEASE);
}

/* The kind of map an object has, as mspan.ptrtype names it: all words for
 * a conservative object, t's for one element of t, none (NULL) for an
 * array, whose map depends on its length. */
static inline const gort_type *ptrmap_kind(const gort_type *t, size_t nelem)
{
    return t == NULL ? &gc_ptrtype_all : nelem == 1 ? t : NULL;
}

/* This runs at every scan allocation: nothing to write when the span's
 * slots all hold the map of this kind of object already. */
static inline __attribute__((always_inline)) void write_ptrbits(struct mspan *s, uintptr_t p,
                                                          const gort_type *t, size_t nelem)
{
    const gort_type *kind = ptrmap_kind(t, nelem);
    if (__builtin_expect(kind != NULL && s->ptrtype == kind, 1))
        return;
    write_ptrbits_slow(s, p, t, nelem, kind);
}

static struct mcache *gc_cache(bool *shared)
{
    struct mcache *c = tls_mcache;
    *shared = false;
    if (c == &mcache_bootstrap || c == &mcache_exited) {
        c = mcache_current();
        if (!c) {
            /* A thread past its exit-time flush: the shared cache. */
            mcache_shared_lock();
            *shared = true;
            c = mcache_shared;
        }
    }
    return c;
}

/* Zeroes n bytes (8 <= n, a multiple of 8) at p: for the small objects
 * that dominate, two overlapping stores of a fixed size (which the
 * compiler emits inline), where a call to memset costs as much as the rest
 * of the allocation. */
static inline void zero_small(void *p, size_t n)   /* n <= 64 */
{
    char *c = p;
    if (n <= 16) {
        memset(c, 0, 8);
        memset(c + n - 8, 0, 8);
    } else if (n <= 32) {
        memset(c, 0, 16);
        memset(c + n - 16, 0, 16);
    } else {
        memset(c, 0, 32);
        memset(c + n - 32, 0, 32);
    }
}

static inline void zero_object(void *p, size_t n)
{
    if (n <= 64)
        zero_small(p, n);
    else
        memset(p, 0, n);
}

/* The object p just taken from cached span s, inside the nosuspend section
 * that took it: pointer map, black if marking, counts, zeroing. */
/* An allocation's counts: objects, bytes, and black bytes while marking. */
static inline void count_alloc(struct mcache *c, struct mspan *s, bool marking)
{
    if (__builtin_expect(marking, 0))
        mcache_count(&c->gcblack, s->elemsize);
    mcache_count(&c->gcnmalloc, 1);
    mcache_count(&c->gcbytes, s->elemsize);
}

static inline __attribute__((always_inline)) void finish_small(struct mcache *c, struct mspan *s, void *p, size_t size,
                                bool noscan, const gort_type *t, size_t nelem)
{
    if (!noscan)
        write_ptrbits(s, (uintptr_t)p, t, nelem);
    /* Allocate black: marking never sees the new object white. */
    bool marking = gc_marking();
    if (__builtin_expect(marking, 0) && !s->premarked)
        span_premark(s, (uintptr_t)p);
    count_alloc(c, s, marking);
    /* Zeroed before a stop can see it: a black object is not scanned, but
     * gccheckmark's re-mark would read its old contents. */
    if (s->needzero)
        zero_object(p, noscan ? (size + 7) & ~(size_t)7 : s->elemsize);
}

static __attribute__((noinline)) void *alloc_small(size_t size, unsigned cls, bool noscan,
                                                   const gort_type *t, size_t nelem)
{
    unsigned gcc = gcclass_of(cls, noscan);
    bool shared;
    struct mcache *c = gc_cache(&shared);
    void *p;
    struct mspan *s;
    for (;;) {
        gcnosuspend_enter();
        s = c->gcalloc[gcc];
        p = span_nextFreeFastGC(s);
        if (!p && s != &emptymspan && span_nextFreeIndex(s) < s->nelems)
            p = span_nextFreeFastGC(s);
        if (p) {
            finish_small(c, s, p, size, noscan, t, nelem);
            gcnosuspend_exit();
            break;
        }
        gcnosuspend_exit();
        uint64_t got;
        if (!gc_refill(c, gcc, &got)) {
            if (shared)
                mcache_shared_unlock();
            errno = ENOMEM;
            return NULL;
        }
        if (!shared)
            gc_alloc_slow(got);
    }
    if (shared)
        mcache_shared_unlock();
    return p;
}

/* Go's tiny allocator: pointer-free objects under 16 bytes are packed into
 * one 16-byte block, aligned to their size's natural alignment. */
static void *alloc_tiny(size_t size)
{
    bool shared;
    struct mcache *c = gc_cache(&shared);
    uintptr_t align = (size & 7) == 0 ? 8 : (size & 3) == 0 ? 4 : (size & 1) == 0 ? 2 : 1;
    gcnosuspend_enter();
    uintptr_t off = (c->tinyoffset + align - 1) & ~(align - 1);
    if (c->tiny && off + size <= tinySize) {
        void *p = (void *)(c->tiny + off);
        c->tinyoffset = off + size;
        /* A block from before the mark began is white: the new object in
         * it must not be. */
        if (__builtin_expect(gc_marking(), 0))
            gc_mark_new(span_of(c->tiny), c->tiny);
        gcnosuspend_exit();
        if (shared)
            mcache_shared_unlock();
        return p;   /* the block came zeroed and its bytes past off are unused */
    }
    gcnosuspend_exit();
    if (shared)
        mcache_shared_unlock();
    void *block = alloc_small(tinySize, tinyClass, true, NULL, 0);
    if (!block)
        return NULL;
    c = gc_cache(&shared);
    gcnosuspend_enter();
    /* Keep whichever block has more room left. */
    if (size < c->tinyoffset || c->tiny == 0) {
        c->tiny = (uintptr_t)block;
        c->tinyoffset = size;
    }
    gcnosuspend_exit();
    if (shared)
        mcache_shared_unlock();
    return block;
}

static void *alloc_large(size_t size, bool noscan, const gort_type *t)
{
    if (size > maxGCAlloc) {
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t npages = (size + _PageMask) >> _PageShift;
    struct mspan *s = mheap_allocGC(npages, 0);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    __atomic_add_fetch(&gcheap.pagesInUse, npages, __ATOMIC_RELAXED);
    void *p = (void *)s->startAddr;
    if (s->needzero)
        memset(p, 0, size);
    s->largeSize = size;
    s->largeType = noscan ? NULL : t;
    s->ptrbits = NULL;
    s->nelems = 1;
    s->allocBits[0] = 1;
    s->allocCount = 1;
    s->freeindex = 1;
    s->allocCache = 0;
    s->gcclass = 0;
    gcnosuspend_enter();
    memset(s->gcmarkBits, 0, span_bitbytes(s));
    bool black = gc_marking();
    if (black)
        s->gcmarkBits[0] = 1;   /* allocated black */
    s->sweepgen = sweepgen_now();
    __atomic_store_n(&s->gc, noscan ? GCSPAN_NOSCAN : GCSPAN_SCAN, __ATOMIC_RELEASE);
    uint32_t sg = s->sweepgen;
    gort_lock(&gcheap.largeLock);
    spanlist_push(&gcheap.large[sweptIndex(sg)], s);
    gort_unlock(&gcheap.largeLock);
    gcnosuspend_exit();
    __atomic_add_fetch(&gcheap.heapLive, npages << _PageShift, __ATOMIC_RELAXED);
    bool shared;
    struct mcache *c = gc_cache(&shared);
    mcache_count(&c->gcnmalloc, 1);
    mcache_count(&c->gcbytes, npages << _PageShift);
    if (black)
        mcache_count(&c->gcblack, npages << _PageShift);
    if (shared)
        mcache_shared_unlock();
    gc_alloc_slow(npages << _PageShift);
    return p;
}

/* mallocgc: size bytes; t (may be NULL: conservative) and nelem describe a
 * typed array.  The fast path, inlined into each entry point, is Go's
 * nextFreeFast on the P's cached span of the class; everything else (the
 * first call, tiny and large objects, a spent span) goes to the slow
 * path. */
static void *mallocgc_slow(size_t size, bool noscan, const gort_type *t, size_t nelem)
{
    gcinit_once();
    if (__builtin_expect(gctls.self == NULL, 0))
        gcthread_register(false);
    if (size == 0)
        size = 1;
    void *p;
    if (noscan && size < tinySize)
        p = alloc_tiny(size);
    else if (size <= _MaxSmallSize)
        p = alloc_small(size, size_to_class(size), noscan, t, nelem);
    else
        p = alloc_large(size, noscan, t);
    return p;
}

/* finish_small and the end of the section, for the fast path's less common
 * cases (a pointer map to write, marking under way, a big object to zero). */
static __attribute__((noinline)) void *finish_small_slow(struct mspan *s, void *p, size_t size,
                                                         bool noscan, const gort_type *t,
                                                         size_t nelem)
{
    finish_small(tls_mcache, s, p, size, noscan, t, nelem);
    gcnosuspend_exit();
    return p;
}

/* The cached span is spent: leave the section, then the slow path. */
static __attribute__((noinline)) void *mallocgc_refill(size_t size, bool noscan, const gort_type *t,
                                                       size_t nelem)
{
    gcnosuspend_exit();
    return mallocgc_slow(size, noscan, t, nelem);
}

static __attribute__((noinline)) void *suspend_deferred_then(void *p)
{
    gcsuspend_deferred();
    return p;
}

static inline __attribute__((always_inline)) void *mallocgc(size_t size, bool noscan,
                                                            const gort_type *t, size_t nelem)
{
    struct mcache *c = tls_mcache;
    /* A registered thread (so the collector is set up) and a small object
     * that is not tiny.  (A thread without a cache of its own has the
     * bootstrap or exited cache, whose slots all hold emptymspan, where
     * nextFreeFast finds nothing.) */
    if (__builtin_expect(gctls.self != NULL && size - tinySize <= _MaxSmallSize - tinySize, 1)) {
        unsigned gcc = gcclass_of(size_to_class(size), noscan);
        gcnosuspend_enter();
        struct mspan *s = c->gcalloc[gcc];
        void *p = span_nextFreeFastGC(s);
        if (__builtin_expect(p != NULL, 1)) {
            /* The common case inline, with no call but tail calls, so that
             * it saves no registers: the map in place already, no mark
             * under way or the span allocated black already, at most 64
             * bytes to zero. */
            const gort_type *kind = ptrmap_kind(t, nelem);
            size_t zn = noscan ? (size + 7) & ~(size_t)7 : s->elemsize;
            bool marking = gc_marking();
            if (__builtin_expect((!noscan && (kind == NULL || s->ptrtype != kind)) ||
                                 (marking && !s->premarked) ||
                                 (s->needzero && zn > 64), 0))
                return finish_small_slow(s, p, size, noscan, t, nelem);   /* (6 arguments: a tail call) */
            count_alloc(c, s, marking);
            if (s->needzero)
                zero_small(p, zn);
            if (gcnosuspend_leave())
                return suspend_deferred_then(p);
            return p;
        }
        return mallocgc_refill(size, noscan, t, nelem);
    }
    return mallocgc_slow(size, noscan, t, nelem);
}

GORT_API void *gort_new(size_t size)
{
    return mallocgc(size, false, NULL, 0);
}

GORT_API void *gort_new_noscan(size_t size)
{
    return mallocgc(size, true, NULL, 0);
}

static bool type_ok(const gort_type *t)
{
    return t && t->size != 0 && (t->size % sizeof(void *) == 0 || !t->ptrmask);
}

static __attribute__((noinline)) void *fail_einval(void)
{
    errno = EINVAL;
    return NULL;
}

GORT_API void *gort_new_array(const gort_type *t, size_t n)
{
    size_t bytes;
    if (!type_ok(t))
        return fail_einval();
    if (__builtin_mul_overflow(t->size, n, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return mallocgc(bytes, t->ptrmask == NULL, t, n);
}

GORT_API void *gort_new_typed(const gort_type *t)
{
    if (!type_ok(t))
        return fail_einval();
    return mallocgc(t->size, t->ptrmask == NULL, t, 1);
}

/* Makes room in c's full write-barrier buffer by shading its entries, the
 * newest first.  The flush runs inside the barrier's nosuspend section,
 * where a stop must wait for it (shading a whole buffer takes tens of
 * microseconds, and far more if the thread loses its CPU meanwhile), so
 * it ends early once a stop asks for this thread, the room for one pair
 * made: the rest stays buffered, and mark termination shades it. */
static void wbuf_flush(struct mcache *c)
{
    size_t room = sizeof c->wbuf / sizeof c->wbuf[0] - 2;
    c->wbufn = (uint32_t)gc_shade_until(c->wbuf, c->wbufn, room, &gctls.pending);
}

/* Go's hybrid write barrier: while marking, the old value and the new one
 * are shaded (through the cache's buffer), in the same nosuspend section
 * as the store, so a stop never falls between the check and the store. */
static __attribute__((noinline)) void store_slow(void **slot, void *val)
{
    if (__builtin_expect(!__atomic_load_n(&gcModeChosen, __ATOMIC_RELAXED), 0))
        gc_set_mode(true, false);
    gcnosuspend_enter();
    if (__builtin_expect(gc_marking(), 0)) {
        /* The old value comes from an exchange, not a load then a store: a
         * slot in a page never written yet (a fresh object the allocator
         * did not need to zero) would otherwise be mapped to the kernel's
         * zero page by the load and copied on the store, a second fault
         * whose TLB flush interrupts every other CPU running the program.
         * Shading the old value after the store is the same barrier: the
         * section keeps mark termination out until the pair is buffered. */
        uintptr_t pair[2] = {(uintptr_t)__atomic_exchange_n(slot, val, __ATOMIC_RELAXED),
                             (uintptr_t)val};
        struct mcache *c = tls_mcache;
        if (c == &mcache_bootstrap || c == &mcache_exited) {
            gc_shade(pair, 2);
        } else {
            if (c->wbufn + 2 > sizeof c->wbuf / sizeof c->wbuf[0])
                wbuf_flush(c);
            c->wbuf[c->wbufn++] = pair[0];
            c->wbuf[c->wbufn++] = pair[1];
        }
    } else {
        __atomic_store_n(slot, val, __ATOMIC_RELAXED);
    }
    gcnosuspend_exit();
}

/* Leaves the fast path's section, then the whole barrier. */
static __attribute__((noinline)) void store_slow_leave(void **slot, void *val)
{
    gcnosuspend_exit();
    store_slow(slot, val);
}

/* Every store outside a mark: the check and the store in one section, and
 * no call but tail calls, so that it saves no registers. */
GORT_API void gort_store(void **slot, void *val)
{
    gcnosuspend_enter();
    if (__builtin_expect(!__atomic_load_n(&gcModeChosen, __ATOMIC_RELAXED) || gc_marking(), 0))
        return store_slow_leave(slot, val);
    __atomic_store_n(slot, val, __ATOMIC_RELAXED);
    if (gcnosuspend_leave())
        gcsuspend_deferred();
}
