/*
 * mgcmark.c — marking: from the roots, shade every reachable collected
 * object, in parallel, while the world is stopped.
 *
 * Tri-colour, as in Go: an object is white until its bit in gcmarkBits is
 * set (grey: queued to be scanned), and black once scanned.  The queue is
 * Go's gcWork: each worker has a buffer of work items; full buffers go to a
 * global list other workers take from, and a worker that runs dry waits
 * until every worker has (then marking is done) or work appears.
 *
 * A work item is (p, n):
 *   n == 0        the object at p: scanned with its span's pointer map
 *                 (small scan spans) or its type (large ones); a large
 *                 object is split into 32 KiB oblets so no worker is stuck
 *                 with one huge object while the others idle;
 *   p & 1         an oblet: n bytes of the large object at p & ~1;
 *   otherwise     n bytes at p scanned conservatively (roots).
 *
 * Roots, all conservative: every stopped thread's stack from its saved
 * stack pointer (registers are saved above it), every goroutine's stack
 * from its saved context, data and bss of every loaded object (found with
 * dl_iterate_phdr before the stop, as the loader's lock may be held by a
 * stopped thread), gort_add_roots ranges, uncollectable malloc blocks (G
 * records, channel buffers, timers among them), and what finalizers keep
 * (mfinal.c).
 *
 * A word is a pointer candidate when it falls in the heap's address range;
 * then span_of finds its span, and it keeps the object it points into if
 * the span is a collected one in use and the object is allocated.
 *
 * In a concurrent cycle the roots are copied at the first stop (their
 * contents as of that instant: the snapshot) and the copies scanned after
 * the restart, beside the program.  Allocating threads help with mark
 * assists in proportion to what they allocate (gc_assist_alloc).
 *
 * GODEBUG=gccheckmark=1 marks everything a second time into separate bits
 * and aborts on any object the second mark reached that the first missed.
 */
#define _GNU_SOURCE
#include "gc/mgc.h"
#include "gc/stw.h"
#include "mem/arena.h"
#include "mem/mcache.h"
#include "mem/mcentral.h"
#include "mem/mheap.h"
#include "os/os.h"
#include "runtime/print.h"
#include "sched/proc.h"
#include "sched/stack.h"

#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>

#define WORKBUF_N   500
#define OBLET_BYTES (32 * 1024)
#define ROOT_CHUNK  (64 * 1024)
#define MAX_WORKERS 16

struct workitem {
    uintptr_t p, n;
};

struct workbuf {
    struct workbuf *next;
    uintptr_t n;
    struct workitem items[WORKBUF_N];
};

/* A worker's state (Go's gcWork). */
struct gcw {
    struct workbuf *buf;
    uint64_t bytesMarked;
    uint64_t scanned;             /* scan work not yet added to work.scanDone */
} __attribute__((aligned(64)));

static struct {
    rtmutex lock;                 /* full, empty */
    struct workbuf *full, *empty;
    uint32_t nfull;               /* atomic */
    uint32_t nwait;               /* atomic: workers out of work */
    uint32_t assistHungry;        /* atomic: an assist owed work and found none */
    uint32_t nassisting;          /* atomic: mark assists holding work */
    uint32_t nworkers;
    uint32_t phase;               /* futex: helpers start a mark on a change */
    uint32_t ndone;               /* futex: helpers finished */
    uintptr_t heapMin, heapMax;   /* address range of the heap's arenas */
    bool checkmark;               /* the verification pass */
    bool leak;                    /* the leak checker's pass */
    bool rootsNow;                /* scan root ranges at once (concurrent start) */
    bool concurrentCheck;         /* checkmark at the end of a concurrent cycle */
    uint64_t shadeMarked;         /* atomic: bytes marked by gc_shade and assists */
    uint64_t scanDone;            /* atomic: scan work (bytes scanned) this mark */
    uint64_t scanExpected;        /* the assists' estimate of a whole mark's scan work */
    struct gcw gcw[MAX_WORKERS];
} work;

rtmutex rootsLock;
static struct workitem *roots;    /* gort_add_roots */
static size_t nroots, caproots;

/* gccheckmark's bits, per arena (made on first use). */
static struct {
    uintptr_t base;
    uint64_t *bits;
} ckArenas[4096];

/* Data and bss ranges, gathered before each stop. */
#define MAX_GLOBALS 256
static struct workitem globals[MAX_GLOBALS];
static size_t nglobals;

/* ---- Work buffers ------------------------------------------------------ */

static struct workbuf *getempty(void)
{
    gort_lock(&work.lock);
    struct workbuf *b = work.empty;
    if (b)
        work.empty = b->next;
    gort_unlock(&work.lock);
    if (!b) {
        /* mmap, not malloc: the world is stopped and a stopped thread may
         * hold the heap's locks. */
        b = os_alloc(sizeof *b);
        if (!b)
            throw("gc: out of memory for mark work buffers");
    }
    b->n = 0;
    b->next = NULL;
    return b;
}

static void putfull(struct workbuf *b)
{
    gort_lock(&work.lock);
    b->next = work.full;
    work.full = b;
    __atomic_add_fetch(&work.nfull, 1, __ATOMIC_RELEASE);
    gort_unlock(&work.lock);
}

static void putempty(struct workbuf *b)
{
    gort_lock(&work.lock);
    b->next = work.empty;
    work.empty = b;
    gort_unlock(&work.lock);
}

static struct workbuf *getfull(void)
{
    if (__atomic_load_n(&work.nfull, __ATOMIC_ACQUIRE) == 0)
        return NULL;
    gort_lock(&work.lock);
    struct workbuf *b = work.full;
    if (b) {
        work.full = b->next;
        __atomic_sub_fetch(&work.nfull, 1, __ATOMIC_RELEASE);
    }
    gort_unlock(&work.lock);
    return b;
}

static inline void gcw_put(struct gcw *w, uintptr_t p, uintptr_t n)
{
    if (__builtin_expect(w->buf->n == WORKBUF_N, 0)) {
        putfull(w->buf);
        w->buf = getempty();
    }
    w->buf->items[w->buf->n++] = (struct workitem){p, n};
}

static inline bool gcw_get(struct gcw *w, struct workitem *it)
{
    if (__builtin_expect(w->buf->n == 0, 0)) {
        struct workbuf *b = getfull();
        if (!b)
            return false;
        putempty(w->buf);
        w->buf = b;
    }
    *it = w->buf->items[--w->buf->n];
    return true;
}

/* Gives half of a long local buffer to idle workers, and to assists that
 * owe work: without it a worker that keeps its grey objects to itself
 * leaves the program allocating at full speed through the whole mark, and
 * every byte it allocates then is marked (black) and doubled into the
 * next goal (binary-trees' peak RSS fell from 306 to 243 MiB). */
static void gcw_balance(struct gcw *w)
{
    struct workbuf *b = w->buf;
    if (b->n < 8 ||
        (__atomic_load_n(&work.nwait, __ATOMIC_RELAXED) == 0 &&
         __atomic_load_n(&work.assistHungry, __ATOMIC_RELAXED) == 0) ||
        __atomic_load_n(&work.nfull, __ATOMIC_RELAXED) != 0)
        return;
    struct workbuf *half = getempty();
    uintptr_t k = b->n / 2;
    memcpy(half->items, b->items + (b->n - k), k * sizeof(struct workitem));
    half->n = k;
    b->n -= k;
    putfull(half);
}

/* ---- Greying and scanning ---------------------------------------------- */

/* The item each worker is scanning, for gccheckmark's report. */
static __thread struct workitem scanning;

/* The object p points into, if it is an allocated collected object:
 * its start, its span and slot.  Inlined into the mark's inner loop. */
static inline __attribute__((always_inline)) uintptr_t find_object(uintptr_t p, struct mspan **sp,
                                                                  unsigned *idxp)
{
    struct heapArena *ha = arena_of(p);
    if (!ha)
        return 0;
    struct mspan *s = ha->spans[arena_pageIndex(p)];
    if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) != mSpanInUse ||
        __atomic_load_n(&s->gc, __ATOMIC_ACQUIRE) == 0)
        return 0;
    uintptr_t off = p - s->startAddr;
    if (off >= (s->npages << _PageShift))
        return 0;
    unsigned idx;
    uintptr_t base;
    if (s->sizeclass == 0) {
        if (off >= s->largeSize && off != 0)
            return 0;
        idx = 0;
        base = s->startAddr;
    } else {
        idx = (unsigned)(((uint64_t)off * s->divMul) >> 32);
        if (idx >= s->nelems)
            return 0;
        base = s->startAddr + (uintptr_t)idx * s->elemsize;
    }
    if (!span_allocatedGC(s, idx))
        return 0;
    *sp = s;
    *idxp = idx;
    return base;
}

uintptr_t gc_find_object(uintptr_t p, struct mspan **sp, unsigned *idxp)
{
    return find_object(p, sp, idxp);
}

static uint64_t *checkbits_of(struct mspan *s);

/* The leak checker's mark also follows malloc'd blocks, scanned whole. */
static __attribute__((noinline)) void grey_malloc_block(struct gcw *w, uintptr_t p)
{
    struct mspan *s;
    unsigned idx;
    uintptr_t size;
    uintptr_t base = malloc_block_of(p, &s, &idx, &size);
    if (!base)
        return;
    uint64_t bit = (uint64_t)1 << (idx & 63);
    if (__atomic_fetch_or(&s->gcmarkBits[idx >> 6], bit, __ATOMIC_RELAXED) & bit)
        return;
    gcw_put(w, base, size);
}

/* A work item for a small object whose span is known: (base | ITEM_SMALL,
 * span), so that scanning it need not look the span up again.  Objects
 * and root ranges are 8-byte aligned, oblets are tagged with bit 0. */
#define ITEM_SMALL 2

/* Marks the object greyobject found, into mark bits (or, for gccheckmark,
 * the check bits), and queues it if it holds pointers. */
static inline __attribute__((always_inline)) void mark_found(struct gcw *w, struct mspan *s,
                                                            unsigned idx, uintptr_t base,
                                                            uint64_t *word)
{
    uint64_t bit = (uint64_t)1 << (idx & 63);
    if (__atomic_load_n(word, __ATOMIC_RELAXED) & bit)
        return;
    if (__atomic_fetch_or(word, bit, __ATOMIC_RELAXED) & bit)
        return;
    if (s->sizeclass) {
        w->bytesMarked += s->elemsize;
        if (s->gc == GCSPAN_SCAN)
            gcw_put(w, base | ITEM_SMALL, (uintptr_t)s);
    } else {
        w->bytesMarked += s->npages << _PageShift;
        if (s->gc == GCSPAN_SCAN)
            gcw_put(w, base, 0);
    }
}

/* gccheckmark's pass: every object it reaches must have been marked. */
static __attribute__((noinline)) void greyobject_check(struct gcw *w, struct mspan *s, unsigned idx,
                                                       uintptr_t base)
{
    if (!gc_isMarked(s, idx)) {
        printbuf b = {.len = 0};
        pb_str(&b, "gort: fatal error: gccheckmark: object ");
        pb_hex(&b, base);
        pb_str(&b, " (");
        pb_u64(&b, s->sizeclass ? s->elemsize : s->largeSize);
        pb_str(&b, " bytes) is reachable but was not marked; found scanning ");
        uintptr_t from = scanning.p & ~(uintptr_t)(ITEM_SMALL | 1);
        struct mspan *fs = span_of(from);
        pb_str(&b, fs && fs->gc ? "the object at " : "the root range at ");
        pb_hex(&b, from);
        pb_str(&b, "\n");
        pb_flush(&b);
        abort();
    }
    mark_found(w, s, idx, base, &checkbits_of(s)[idx >> 6]);
}

static inline __attribute__((always_inline)) void greyobject(struct gcw *w, uintptr_t p)
{
    struct mspan *s;
    unsigned idx;
    uintptr_t base = find_object(p, &s, &idx);
    if (!base) {
        if (__builtin_expect(work.leak, 0))
            grey_malloc_block(w, p);
        return;
    }
    if (__builtin_expect(work.checkmark, 0)) {
        greyobject_check(w, s, idx, base);
        return;
    }
    mark_found(w, s, idx, base, &s->gcmarkBits[idx >> 6]);
}

/* The heap's address range, read once per object or range scanned: a
 * word outside it is no pointer to a collected object. */
struct heaprange {
    uintptr_t lo, len;
};

static inline struct heaprange heaprange_now(void)
{
    return (struct heaprange){work.heapMin, work.heapMax - work.heapMin};
}

static inline __attribute__((always_inline)) void scan_word(struct gcw *w, struct heaprange h,
                                                           uintptr_t v)
{
    if (v - h.lo < h.len)
        greyobject(w, v);
}

/* Conservative: every aligned word in [p, p + n). */
static void scanblock(struct gcw *w, uintptr_t p, uintptr_t n)
{
    struct heaprange h = heaprange_now();
    uintptr_t a = (p + 7) & ~(uintptr_t)7, end = p + n;
    for (; a + 8 <= end; a += 8)
        scan_word(w, h, *(const uintptr_t *)a);
    w->scanned += n;
}

/* The words of a bitmap's chunk (bit k: word[k]) that point into the heap. */
static inline __attribute__((always_inline)) void scan_masked(struct gcw *w, struct heaprange h,
                                                             const uintptr_t *word, uint64_t chunk)
{
    while (chunk) {
        unsigned k = (unsigned)__builtin_ctzll(chunk);
        chunk &= chunk - 1;
        scan_word(w, h, word[k]);
    }
}

/* Words j .. j+63 of t's mask, cut at the type's tw words. */
static inline uint64_t type_mask_chunk(const gort_type *t, uintptr_t j, uintptr_t tw)
{
    uint64_t chunk = t->ptrmask[j >> 6];
    if (tw - j < 64)
        chunk &= ((uint64_t)1 << (tw - j)) - 1;
    return chunk;
}

/* An object of type t in a slot of nw words: the words t's mask names. */
static void scan_typed(struct gcw *w, const uintptr_t *word, const gort_type *t, uintptr_t nw)
{
    struct heaprange h = heaprange_now();
    uintptr_t tw = t->size / sizeof(void *);
    if (tw > nw)
        tw = nw;
    if (!t->ptrmask)
        return;
    for (uintptr_t j = 0; j < tw; j += 64)
        scan_masked(w, h, word + j, type_mask_chunk(t, j, tw));
}

/* n bytes from a in large object s, with its type's pointer map. */
static void scan_large_piece(struct gcw *w, struct mspan *s, uintptr_t a, uintptr_t n)
{
    const gort_type *t = s->largeType;
    if (!t) {
        scanblock(w, a, n);
        return;
    }
    struct heaprange h = heaprange_now();
    uintptr_t tw = t->size / sizeof(void *);
    uintptr_t k = (a - s->startAddr) / sizeof(void *) % tw;
    const uintptr_t *word = (const uintptr_t *)a;
    for (uintptr_t i = 0; i < n / sizeof(void *); i++) {
        if ((t->ptrmask[k >> 6] >> (k & 63)) & 1)
            scan_word(w, h, word[i]);
        if (++k == tw)
            k = 0;
    }
    w->scanned += n;
}

/* A small object of span s with the span's per-word map. */
static void scan_mapped(struct gcw *w, uintptr_t p, struct mspan *s, const uint64_t *bits)
{
    struct heaprange h = heaprange_now();
    uintptr_t nw = s->elemsize / sizeof(void *);
    const uintptr_t *word = (const uintptr_t *)p;
    uintptr_t w0 = (p - s->startAddr) / sizeof(void *);
    for (uintptr_t i = 0; i < nw;) {
        uintptr_t b = w0 + i;
        uint64_t chunk = bits[b >> 6] >> (b & 63);
        uintptr_t avail = 64 - (b & 63);
        if (avail > nw - i)
            avail = nw - i;
        if (avail < 64)
            chunk &= ((uint64_t)1 << avail) - 1;
        scan_masked(w, h, word + i, chunk);
        i += avail;
    }
}

/* A small object p of span s.  The common case inline: every object of
 * the span has one type of at most 64 words, whose mask's first word is
 * the whole map. */
static inline __attribute__((always_inline)) void scan_small(struct gcw *w, uintptr_t p,
                                                            struct mspan *s)
{
    /* The kind every object of the span has, or (read second: a span gets
     * its map before it stops naming one kind) its map. */
    const gort_type *kind = __atomic_load_n(&s->ptrtype, __ATOMIC_ACQUIRE);
    const uint64_t *bits = __atomic_load_n(&s->ptrbits, __ATOMIC_ACQUIRE);
    if (__builtin_expect(!bits && kind != &gc_ptrtype_all && kind->size <= 64 * sizeof(void *), 1)) {
        /* scan_typed's one pass, without its loop (a loop here cost the
         * mark 18 % more instructions on GCBench). */
        uintptr_t tw = kind->size / sizeof(void *);
        uint64_t chunk = kind->ptrmask ? type_mask_chunk(kind, 0, tw) : 0;
        scan_masked(w, heaprange_now(), (const uintptr_t *)p, chunk);
    } else if (kind == &gc_ptrtype_all) {
        scanblock(w, p, s->elemsize);   /* (counts its own scan work) */
        return;
    } else if (bits) {
        scan_mapped(w, p, s, bits);
    } else {
        scan_typed(w, (const uintptr_t *)p, kind, s->elemsize / sizeof(void *));
    }
    w->scanned += s->elemsize;
}

/* An object queued without its span: a large one is split into oblets. */
static void scanobject(struct gcw *w, uintptr_t p)
{
    struct mspan *s = span_of(p);
    if (s->sizeclass != 0) {
        scan_small(w, p, s);
        return;
    }
    uintptr_t size = s->largeSize;
    if (size > OBLET_BYTES) {
        for (uintptr_t off = 0; off < size; off += OBLET_BYTES)
            gcw_put(w, (p + off) | 1, size - off < OBLET_BYTES ? size - off : OBLET_BYTES);
        return;
    }
    scan_large_piece(w, s, p, size);
}

static inline __attribute__((always_inline)) void scanitem(struct gcw *w, struct workitem it)
{
    if (__builtin_expect(work.checkmark, 0))
        scanning = it;   /* (only gccheckmark's report reads it) */
    if (__builtin_expect(it.p & ITEM_SMALL, 1))
        scan_small(w, it.p & ~(uintptr_t)ITEM_SMALL, (struct mspan *)it.n);
    else if (it.n == 0)
        scanobject(w, it.p);
    else if (it.p & 1)
        scan_large_piece(w, span_of(it.p & ~(uintptr_t)1), it.p & ~(uintptr_t)1, it.n);
    else
        scanblock(w, it.p, it.n);
}

/* ---- Workers ------------------------------------------------------------ */

uint64_t gcLastScanWork;

static void publish_scan(struct gcw *w)
{
    if (w->scanned) {
        __atomic_add_fetch(&work.scanDone, w->scanned, __ATOMIC_RELAXED);
        w->scanned = 0;
    }
}

static void drain(struct gcw *w)
{
    struct workitem it;
    for (;;) {
        unsigned k = 0;
        while (gcw_get(w, &it)) {
            scanitem(w, it);
            if ((++k & 31) == 0) {
                gcw_balance(w);
                publish_scan(w);
            }
        }
        publish_scan(w);
        __atomic_add_fetch(&work.nwait, 1, __ATOMIC_ACQ_REL);
        for (int spins = 0;; spins++) {
            if (__atomic_load_n(&work.nfull, __ATOMIC_ACQUIRE) != 0) {
                __atomic_sub_fetch(&work.nwait, 1, __ATOMIC_ACQ_REL);
                break;
            }
            /* Done when every worker is out of work and no assist holds
             * some (it would hand back what it did not finish). */
            if (__atomic_load_n(&work.nwait, __ATOMIC_SEQ_CST) == work.nworkers &&
                __atomic_load_n(&work.nassisting, __ATOMIC_SEQ_CST) == 0 &&
                __atomic_load_n(&work.nfull, __ATOMIC_SEQ_CST) == 0)
                return;
            if (spins > 50)
                sched_yield();
#if defined(__x86_64__)
            else
                __builtin_ia32_pause();
#endif
        }
    }
}

static uint32_t helperStartPhase;   /* the phase when a helper was made */

static void *mark_worker(void *arg)
{
    struct gcw *w = arg;
    uint32_t seen = __atomic_load_n(&helperStartPhase, __ATOMIC_ACQUIRE);
    for (;;) {
        uint32_t ph;
        while ((ph = __atomic_load_n(&work.phase, __ATOMIC_ACQUIRE)) == seen)
            os_futex_wait(&work.phase, seen, -1);
        seen = ph;
        /* Each phase says how many take part. */
        if ((size_t)(w - work.gcw) < work.nworkers)
            drain(w);
        __atomic_add_fetch(&work.ndone, 1, __ATOMIC_ACQ_REL);
        os_futex_wake(&work.ndone, 1);
    }
    return NULL;
}

static uint32_t nhelpers;   /* helper threads started */

static void start_helpers(uint32_t want)
{
    sigset_t old;
    gc_block_signals(&old);
    __atomic_store_n(&helperStartPhase, __atomic_load_n(&work.phase, __ATOMIC_ACQUIRE),
                     __ATOMIC_RELEASE);
    while (nhelpers < want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (!work.gcw[nhelpers + 1].buf)
            work.gcw[nhelpers + 1].buf = getempty();
        if (pthread_create(&t, &attr, mark_worker, &work.gcw[nhelpers + 1]) != 0) {
            pthread_attr_destroy(&attr);
            break;
        }
        pthread_attr_destroy(&attr);
        nhelpers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The helper threads did not follow into a fork child. */
void gcmark_after_fork_child(void)
{
    gort_lock_reinit(&work.lock);
    for (uint32_t i = 1; i <= nhelpers; i++)
        work.gcw[i].buf = NULL;   /* (their buffers are simply dropped) */
    nhelpers = 0;
}

/* ---- Roots ------------------------------------------------------------- */

/* A concurrent cycle needs the roots' contents as of its first stop, but
 * scanning them there would put the whole root scan inside the pause.
 * Copying is several times faster than scanning: the stop copies every
 * root range into snapshot chunks (mmap'd, kept from cycle to cycle), and
 * the copies are scanned as ordinary work once the world runs again. */
struct snapchunk {
    struct snapchunk *next;
    size_t used, cap;             /* bytes of data after the header */
};
static struct snapchunk *snapChunks;   /* all of them */
static size_t snapLastUsed;            /* bytes the last snapshot took */
#define SNAP_CHUNK (1u << 20)
/* Past this, roots are scanned in the stop as before the copy: a program
 * with very many goroutines would otherwise need as much again for their
 * stacks' copies. */
#define SNAP_MAX ((size_t)64 << 20)

static struct snapchunk *snap_newchunk(size_t cap)
{
    struct snapchunk *c = os_alloc(sizeof *c + cap);
    if (!c)
        return NULL;
    c->cap = cap;
    c->used = 0;
    c->next = snapChunks;
    snapChunks = c;
    return c;
}

static void snap_reset(void)
{
    for (struct snapchunk *c = snapChunks; c; c = c->next)
        c->used = 0;
}

/* Before the stop: room for the coming snapshot, the last one's size and a
 * quarter (or the globals and 64 KiB, the first time), touched now so that its page
 * faults do not land in the pause.  The roots are warmed too: every line
 * of the globals is read (a never-touched bss page would otherwise take
 * its first page fault inside the stop: the first cycle's stop was up to
 * 1 ms) and the room the copy will fill is written, so that the copy in
 * the stop runs from cache to cache (the globals' copy took 20 µs cold). */
void gc_snapshot_prepare(void)
{
    size_t need = snapLastUsed + snapLastUsed / 4;
    if (need > SNAP_MAX)
        need = SNAP_MAX;
    if (need == 0) {
        for (size_t i = 0; i < nglobals; i++)
            need += globals[i].n;
        need += 64u << 10;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < nglobals; i++)
        for (uintptr_t a = globals[i].p & ~(uintptr_t)63; a < globals[i].p + globals[i].n; a += 64)
            sum += *(volatile const uint64_t *)(a < globals[i].p ? globals[i].p : a);
    __asm__ volatile("" : : "r"(sum));
    size_t have = 0;
    for (struct snapchunk *c = snapChunks; c; c = c->next) {
        size_t warm = need - have < c->cap ? need - have : c->cap;
        memset(c + 1, 0, warm);
        have += c->cap;
        if (have >= need)
            return;
    }
    size_t cap = need - have > SNAP_CHUNK ? (need - have + 0xffff) & ~(size_t)0xffff : SNAP_CHUNK;
    struct snapchunk *c = snap_newchunk(cap);
    if (c)
        memset(c + 1, 0, need - have);   /* the room wanted, not the whole chunk (1 MiB resident) */
}

/* Room for n bytes (8-aligned), or NULL when memory is short (then the
 * range is scanned at once, as before). */
static uintptr_t snap_alloc(size_t n)
{
    struct snapchunk *c;
    for (c = snapChunks; c; c = c->next)
        if (c->cap - c->used >= n)
            break;
    if (!c && snapLastUsed + n <= SNAP_MAX)
        c = snap_newchunk(n > SNAP_CHUNK ? (n + 0xffff) & ~(size_t)0xffff : SNAP_CHUNK);
    if (!c)
        return 0;
    uintptr_t p = (uintptr_t)(c + 1) + c->used;
    c->used += n;
    snapLastUsed += n;
    return p;
}

static void put_range(struct gcw *w, uintptr_t lo, uintptr_t hi)
{
    lo = (lo + 7) & ~(uintptr_t)7;
    hi &= ~(uintptr_t)7;
    if (hi <= lo)
        return;
    if (work.rootsNow) {
        /* Their contents as of this stop: the world will change them. */
        uintptr_t copy = snap_alloc(hi - lo);
        if (!copy) {
            scanblock(w, lo, hi - lo);
            return;
        }
        memcpy((void *)copy, (const void *)lo, hi - lo);
        hi = copy + (hi - lo);
        lo = copy;
    }
    while (lo < hi) {
        uintptr_t n = hi - lo < ROOT_CHUNK ? hi - lo : ROOT_CHUNK;
        gcw_put(w, lo, n);
        lo += n;
    }
}

/* gort's own large static tables, which hold no pointers to collected
 * objects: left out of the data and bss scanned at every cycle (the arena
 * index alone is 32 MiB). */
#define MAX_NOSCAN 32
static struct workitem noscan[MAX_NOSCAN];   /* sorted by address */
static size_t nnoscan;

void gc_noscan_static(const void *p, size_t n)
{
    if (nnoscan == MAX_NOSCAN)
        return;   /* only a cost: the table stays a root */
    size_t i = nnoscan++;
    for (; i > 0 && noscan[i - 1].p > (uintptr_t)p; i--)
        noscan[i] = noscan[i - 1];
    noscan[i] = (struct workitem){(uintptr_t)p, n};
}

/* Adds [lo, hi) minus the noscan ranges (sorted by address) to globals. */
static void add_global(uintptr_t lo, uintptr_t hi)
{
    for (size_t i = 0; i < nnoscan && lo < hi; i++) {
        uintptr_t xlo = noscan[i].p, xhi = xlo + noscan[i].n;
        if (xhi <= lo || xlo >= hi)
            continue;
        if (xlo > lo && nglobals < MAX_GLOBALS)
            globals[nglobals++] = (struct workitem){lo, xlo - lo};
        lo = xhi;
    }
    if (hi > lo && nglobals < MAX_GLOBALS)
        globals[nglobals++] = (struct workitem){lo, hi - lo};
}

/* A module's writable segments, less its RELRO range: the dynamic linker
 * makes that read-only once it has relocated the module, before any of its
 * code runs, so it holds only addresses fixed at load time and never a
 * collected object's (about 20 KiB of libc and ld.so that the first stop
 * no longer copies). */
static int globals_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    uintptr_t rlo = 0, rhi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_GNU_RELRO) {
            rlo = info->dlpi_addr + ph->p_vaddr;
            rhi = rlo + ph->p_memsz;
        }
    }
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (rhi <= lo || rlo >= hi) {
            add_global(lo, hi);
            continue;
        }
        if (rlo > lo)
            add_global(lo, rlo);
        if (rhi < hi)
            add_global(rhi, hi);
    }
    return 0;
}

void gc_collect_globals(void)
{
    static bool registered;
    if (!registered) {
        gc_noscan_static(mheap_arenas, sizeof mheap_arenas);
        gc_noscan_static(ckArenas, sizeof ckArenas);
        gc_noscan_static(mcentrals, sizeof mcentrals);
        gc_noscan_static(&mheap_, sizeof mheap_);
        gc_noscan_static(&gcheap, sizeof gcheap);
        gc_noscan_static(&mcache_bootstrap, sizeof mcache_bootstrap);
        gc_noscan_static(&mcache_exited, sizeof mcache_exited);
        gc_noscan_static(class_info, sizeof class_info);
        gc_noscan_static(globals, sizeof globals);
        registered = true;
    }
    nglobals = 0;
    dl_iterate_phdr(globals_cb, NULL);
}

/* A stopped thread: its stack from where it stopped, and when it stopped
 * on a goroutine's stack, that stack too plus its own from its g0's sp. */
/* The stack to verify from in a concurrent cycle's checkmark: frames
 * pushed since the first stop may hold stale words that were never live
 * pointers (a conservative scan cannot tell), so only the part of the
 * stack that existed at the first stop is a root for the check.  Anything
 * a live frame below it holds was reachable then or is new, and so is
 * marked (the snapshot invariant the barrier keeps). */
static uint32_t markGen;   /* concurrent cycles begun */

static uintptr_t check_from(uintptr_t sp, uintptr_t scansp, uint32_t gen, uintptr_t lo,
                            uintptr_t hi)
{
    if (!work.concurrentCheck)
        return sp;
    /* A stack that did not exist at the first stop holds only what was
     * reachable then or is new, and maybe stale words of a stack's earlier
     * life: not a root for the check. */
    if (gen != markGen || scansp < lo || scansp >= hi)
        return hi;
    return scansp > sp ? scansp : sp;
}

static uint64_t mark_thread(struct gcw *w, struct gcthread *t)
{
    uintptr_t sp = t->stoppedsp;
    if (!sp)
        return 0;
    if (work.rootsNow) {
        t->scansp = sp;
        t->scangen = markGen;
    }
    if (sp >= t->stacklo && sp < t->stackhi) {
        sp = check_from(sp, t->scansp, t->scangen, t->stacklo, t->stackhi);
        put_range(w, sp, t->stackhi);
        return t->stackhi - sp;
    }
    /* Stopped on a goroutine's stack: for a concurrent cycle's check, the
     * goroutine's own record (mark_goroutines) says what existed at the
     * first stop, and the M's own stack holds only the scheduler. */
    if (work.concurrentCheck)
        return 0;
    uint64_t n = 0;
    uintptr_t top = stack_top_of(sp);
    if (top) {
        put_range(w, sp, top);
        n += top - sp;
    }
    if (t->g0sp) {
        uintptr_t g0 = (uintptr_t)*t->g0sp;
        if (g0 >= t->stacklo && g0 < t->stackhi) {
            put_range(w, g0, t->stackhi);
            n += t->stackhi - g0;
        }
    }
    return n;
}

static uint64_t mark_goroutines(struct gcw *w)
{
    uint64_t n = 0;
    for (size_t i = 0; i < allglen; i++) {
        struct g *gp = allgs[i];
        if (__atomic_load_n(&gp->atomicstatus, __ATOMIC_RELAXED) == _Gdead || gp->stack.hi == 0)
            continue;
        uintptr_t sp = (uintptr_t)gp->sched.sp;
        if (sp < gp->stack.lo || sp > gp->stack.hi)
            sp = gp->stack.lo;
        if (work.rootsNow) {
            gp->gcscansp = sp;
            gp->gcscangen = markGen;
        }
        sp = check_from(sp, gp->gcscansp, gp->gcscangen, gp->stack.lo, gp->stack.hi);
        put_range(w, sp, gp->stack.hi);
        n += gp->stack.hi - sp;
    }
    return n;
}

/* Uncollectable malloc blocks: every allocated block of malloc's root
 * spans, found through the arenas' rootpages bitmaps. */
static void mark_uncollectable(struct gcw *w)
{
    for (struct heapArena *ha = allarenas; ha; ha = ha->next) {
        for (size_t wi = 0; wi < pagesPerArena / 64; wi++) {
            uint64_t bits = __atomic_load_n(&ha->rootpages[wi], __ATOMIC_RELAXED);
            while (bits) {
                size_t i = wi * 64 + (size_t)__builtin_ctzll(bits);
                bits &= bits - 1;
                struct mspan *s = ha->spans[i];
                if (s == &emptymspan || s->startAddr != ha->base + (i << _PageShift) ||
                    s->state != mSpanInUse || s->gc || !s->roots)
                    continue;
                if (s->sizeclass == 0) {
                    put_range(w, s->startAddr, s->startAddr + (s->npages << _PageShift));
                    continue;
                }
                for (unsigned k = 0; k < s->nelems; k++)
                    if (span_isAllocated(s, k))
                        put_range(w, s->startAddr + (uintptr_t)k * s->elemsize,
                                  s->startAddr + (uintptr_t)(k + 1) * s->elemsize);
            }
        }
    }
}

static uint64_t markroots(struct gcw *w)
{
    uint64_t stacks = 0;
    for (struct gcthread *t = gcthreads; t; t = t->next)
        stacks += mark_thread(w, t);
    stacks += mark_goroutines(w);
    uint64_t globalBytes = 0;
    for (size_t i = 0; i < nglobals; i++) {
        put_range(w, globals[i].p, globals[i].p + globals[i].n);
        globalBytes += globals[i].n;
    }
    for (size_t i = 0; i < nroots; i++)
        put_range(w, roots[i].p, roots[i].p + roots[i].n);
    mark_uncollectable(w);
    gcheap.stacksScan = stacks;
    gcheap.globalsScan = globalBytes;
    return stacks;
}

/* The collector's own worker (index 0) during root marking and after. */
static struct gcw *gcw0(void) { return &work.gcw[0]; }

void gc_push_scan(uintptr_t p, uintptr_t n)
{
    if (n == 0) {
        gcw_put(gcw0(), p, 0);
    } else {
        put_range(gcw0(), p, p + n);
    }
}

void gc_mark_and_scan(uintptr_t obj)
{
    struct gcw *w = gcw0();
    greyobject(w, obj);
    work.nworkers = 1;
    work.nwait = 0;
    drain(w);
}

/* ---- checkmark storage ------------------------------------------------- */

static size_t nck;

static uint64_t *checkbits_of(struct mspan *s)
{
    struct heapArena *ha = arena_of(s->startAddr);
    for (size_t i = 0; i < nck; i++)
        if (ckArenas[i].base == ha->base)
            return ckArenas[i].bits + arena_pageIndex(s->startAddr) * 16;
    throw("gccheckmark: arena without check bits");
}

static void checkmark_prepare(void)
{
    for (struct heapArena *ha = allarenas; ha; ha = ha->next) {
        size_t i;
        for (i = 0; i < nck; i++)
            if (ckArenas[i].base == ha->base)
                break;
        if (i == nck) {
            if (nck == sizeof ckArenas / sizeof ckArenas[0])
                throw("gccheckmark: too many arenas");
            ckArenas[nck].base = ha->base;
            ckArenas[nck].bits = os_alloc(pagesPerArena * 128);
            if (!ckArenas[nck].bits)
                throw("gccheckmark: out of memory");
            nck++;
        } else {
            memset(ckArenas[i].bits, 0, pagesPerArena * 128);
        }
    }
}

/* ---- The mark ---------------------------------------------------------- */

static void heap_range(void)
{
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (struct heapArena *ha = allarenas; ha; ha = ha->next) {
        if (ha->base < lo)
            lo = ha->base;
        if (ha->base + heapArenaBytes > hi)
            hi = ha->base + heapArenaBytes;
    }
    work.heapMin = lo;
    work.heapMax = hi > lo ? hi : lo;
}

static void reset_workers(uint32_t nworkers)
{
    for (uint32_t i = 0; i < nworkers; i++) {
        if (!work.gcw[i].buf)
            work.gcw[i].buf = getempty();
        work.gcw[i].bytesMarked = 0;
        work.gcw[i].scanned = 0;
    }
}

/* Queues (or, with rootsNow, scans) every root and shares them out. */
static void queue_roots(void)
{
    markroots(gcw0());
    specials_markroots();
    if (gcw0()->buf->n) {
        putfull(gcw0()->buf);
        gcw0()->buf = getempty();
    }
}

/* Drains the queue on nworkers (this thread and helpers); returns the
 * bytes they marked. */
static uint64_t mark_drain(uint32_t nworkers)
{
    work.nworkers = nworkers;
    work.nwait = 0;
    __atomic_store_n(&work.ndone, 0, __ATOMIC_RELEASE);
    if (nworkers > 1) {
        __atomic_add_fetch(&work.phase, 1, __ATOMIC_RELEASE);
        os_futex_wake(&work.phase, INT32_MAX);
    }
    drain(gcw0());
    /* Every helper thread acknowledges each phase, taking part or not. */
    if (nworkers > 1) {
        uint32_t d;
        while ((d = __atomic_load_n(&work.ndone, __ATOMIC_ACQUIRE)) < nhelpers)
            os_futex_wait(&work.ndone, d, -1);
    }
    uint64_t marked = 0;
    for (uint32_t i = 0; i < nworkers; i++) {
        marked += work.gcw[i].bytesMarked;
        work.gcw[i].bytesMarked = 0;
    }
    return marked;
}

static uint64_t mark_once(uint32_t nworkers)
{
    reset_workers(nworkers);
    queue_roots();
    return mark_drain(nworkers);
}

/* Starts helper threads for nworkers in all.  Called before the world
 * stops: pthread_create allocates, and a stopped thread may hold the
 * heap's lock. */
void gc_prepare_workers(int nworkers)
{
    if (nworkers > MAX_WORKERS)
        nworkers = MAX_WORKERS;
    if (nworkers > 1 && (uint32_t)nworkers - 1 > nhelpers)
        start_helpers((uint32_t)nworkers - 1);
}

/* How many of nworkers there can be: this thread and the helpers. */
static uint32_t workers_ready(int nworkers)
{
    if (nworkers < 1)
        nworkers = 1;
    if ((uint32_t)nworkers > nhelpers + 1)
        nworkers = (int)nhelpers + 1;
    return (uint32_t)nworkers;
}

static void checkmark_pass(uint32_t nworkers)
{
    checkmark_prepare();
    work.checkmark = true;
    mark_once(nworkers);
    work.checkmark = false;
}

uint64_t gc_mark(int nworkers, bool checkmark)
{
    uint32_t n = workers_ready(nworkers);
    heap_range();
    work.checkmark = false;
    __atomic_store_n(&work.scanDone, 0, __ATOMIC_RELAXED);
    uint64_t marked = mark_once(n);
    publish_scan(gcw0());
    gcLastScanWork = __atomic_load_n(&work.scanDone, __ATOMIC_RELAXED);
    if (checkmark)
        checkmark_pass(n);
    return marked;
}

/* ---- Concurrent mark --------------------------------------------------- */

static uint64_t cycleMarked;   /* bytes marked so far this concurrent cycle */

void gc_mark_start(void)
{
    markGen++;
    heap_range();
    work.checkmark = false;
    __atomic_store_n(&work.shadeMarked, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&work.scanDone, 0, __ATOMIC_RELAXED);
    snap_reset();
    snapLastUsed = 0;
    /* What the assists pay towards: the last mark's scan work (for the
     * first cycle, the heap so far). */
    uint64_t expected = gcLastScanWork ? gcLastScanWork : gcheap.heapLive;
    work.scanExpected = expected > (256u << 10) ? expected : (256u << 10);
    reset_workers(1);
    __atomic_store_n(&work.assistHungry, 0, __ATOMIC_RELAXED);
    work.rootsNow = true;
    queue_roots();
    work.rootsNow = false;
    publish_scan(gcw0());
    cycleMarked = gcw0()->bytesMarked;
    gcw0()->bytesMarked = 0;
}

void gc_mark_concurrent(int nworkers)
{
    uint32_t n = workers_ready(nworkers);
    reset_workers(n);
    cycleMarked += mark_drain(n);
    /* Write-barrier buffers flushed while the workers finished: mark
     * that now rather than in the second stop (a few rounds at most, as in
     * Go's gcMarkDone; what the caches still buffer waits for the stop). */
    for (int round = 0; round < 4 && __atomic_load_n(&work.nfull, __ATOMIC_ACQUIRE); round++)
        cycleMarked += mark_drain(n);
}

/* Work buffers below which mark termination drains without its helpers:
 * waking them and waiting for them is a futex round trip each (tens of
 * microseconds on a virtual machine), more than the few buffers the
 * concurrent mark usually leaves. */
#define FINISH_ALONE_BUFS 8

uint64_t gc_mark_finish(int nworkers, bool checkmark)
{
    /* What the write barriers buffered. */
    for (struct mcache *c = allmcaches; c; c = c->allnext) {
        gc_shade(c->wbuf, c->wbufn);
        c->wbufn = 0;
    }
    bool alone = !checkmark && __atomic_load_n(&work.nfull, __ATOMIC_ACQUIRE) <= FINISH_ALONE_BUFS;
    uint32_t n = workers_ready(alone ? 1 : nworkers);
    reset_workers(n);
    uint64_t marked = cycleMarked + mark_drain(n) +
                      __atomic_exchange_n(&work.shadeMarked, 0, __ATOMIC_RELAXED);
    gcLastScanWork = __atomic_load_n(&work.scanDone, __ATOMIC_RELAXED);
    if (checkmark) {
        work.concurrentCheck = true;
        checkmark_pass(n);
        work.concurrentCheck = false;
    }
    return marked;
}

/* ---- Mark assists ------------------------------------------------------ */

/* Scan work this thread owes (Go keeps it per goroutine as gcAssistBytes;
 * per thread is close enough, as a goroutine pays at its next refill on
 * whatever thread it runs) and the mark it was incurred in. */
static __thread int64_t assistDebt;
static __thread uint32_t assistGen;
static uint64_t assistTime;   /* atomic: ns spent assisting, for gctrace */

uint64_t gc_assist_time_take(void)
{
    return __atomic_exchange_n(&assistTime, 0, __ATOMIC_RELAXED);
}

#define ASSIST_MIN   (64 << 10)   /* least work per assist, to amortise it (Go's gcOverAssistWork) */
#define ASSIST_SLICE (32 << 10)   /* scan work per nosuspend section */
#define ASSIST_ITEM  (4 << 10)    /* most of a range or oblet scanned between looks for a stop */

/* One slice of assist work, inside a nosuspend section so that a stop
 * never finds grey objects held privately: takes work from the global
 * list and scans until about ASSIST_SLICE bytes are done, then gives back
 * what is left.  Returns the scan work done, 0 when there was none. */
static uint64_t assist_slice(void)
{
    gcnosuspend_enter();
    __atomic_add_fetch(&work.nassisting, 1, __ATOMIC_SEQ_CST);
    struct workbuf *b = gc_marking() ? getfull() : NULL;
    if (!b) {
        __atomic_sub_fetch(&work.nassisting, 1, __ATOMIC_SEQ_CST);
        gcnosuspend_exit();
        return 0;
    }
    struct gcw w = {.buf = b};
    struct workitem it;
    /* A stop that asks ends the slice at the next item: the thread then
     * stops itself in gc_assist_alloc rather than hold the stop up for the
     * rest of the slice (up to 200 µs here). */
    while (w.scanned < ASSIST_SLICE && w.buf->n &&
           !__atomic_load_n(&stwPending, __ATOMIC_RELAXED)) {
        it = w.buf->items[--w.buf->n];
        /* A long range or oblet is cut, the rest put back: a stop waits
         * for the item in hand (a 32 KiB root range of pointers took
         * 100–250 µs, and held mark termination's stop up that long). */
        if (it.n > ASSIST_ITEM && !(it.p & ITEM_SMALL)) {
            gcw_put(&w, it.p + ASSIST_ITEM, it.n - ASSIST_ITEM);
            it.n = ASSIST_ITEM;
        }
        scanitem(&w, it);
    }
    if (w.buf->n)
        putfull(w.buf);
    else
        putempty(w.buf);
    uint64_t done = w.scanned;
    publish_scan(&w);
    __atomic_add_fetch(&work.shadeMarked, w.bytesMarked, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&work.nassisting, 1, __ATOMIC_SEQ_CST);
    gcnosuspend_exit();
    return done ? done : 1;
}

bool gc_assist_alloc(uint64_t bytes)
{
    uint32_t gen = __atomic_load_n(&markGen, __ATOMIC_RELAXED);
    if (assistGen != gen) {
        assistGen = gen;
        assistDebt = 0;
    }
    /* Go's assist ratio: scan work left over heap left before the hard
     * goal, recomputed at every charge so that background progress (or
     * the lack of it) shows at once. */
    uint64_t done = __atomic_load_n(&work.scanDone, __ATOMIC_RELAXED);
    uint64_t expected = work.scanExpected;
    uint64_t left = expected > done ? expected - done : expected / 16;
    uint64_t live = __atomic_load_n(&gcheap.heapLive, __ATOMIC_RELAXED);
    uint64_t hard = gcheap.goal + gcheap.goal / 10;
    uint64_t end = live < gcheap.goal ? gcheap.goal : hard;
    uint64_t runway = end > live ? end - live : 0;
    if (runway < (256u << 10))
        runway = 256u << 10;
    assistDebt += (int64_t)((double)bytes * (double)left / (double)runway);
    if (assistDebt <= 0)
        return false;
    int64_t target = assistDebt > ASSIST_MIN ? assistDebt : ASSIST_MIN;
    int64_t paid = 0;
    bool starved = false;
    uint64_t t0 = os_nanotime();
    while (paid < target) {
        uint64_t n = assist_slice();
        if (n == 0) {
            /* Nothing queued: the background workers hold it all; ask them
             * to share (gcw_balance). */
            starved = true;
            __atomic_store_n(&work.assistHungry, 1, __ATOMIC_RELAXED);
            break;
        }
        if (__atomic_load_n(&work.assistHungry, __ATOMIC_RELAXED))
            __atomic_store_n(&work.assistHungry, 0, __ATOMIC_RELAXED);
        paid += (int64_t)n;
        stw_poll();
    }
    assistDebt -= paid;
    if (paid)
        __atomic_add_fetch(&assistTime, os_nanotime() - t0, __ATOMIC_RELAXED);
    /* Unpaid debt does not pile up beyond one runway's worth: a thread
     * that could not pay waits for the background workers instead
     * (gc_pace, told by the return value). */
    if (assistDebt > (int64_t)(4u << 20))
        assistDebt = 4u << 20;
    return starved && assistDebt > 0;
}

size_t gc_shade_until(const uintptr_t *ptrs, size_t n, size_t keep, const int *stop)
{
    if (n == 0)
        return 0;
    struct gcw w = {.buf = getempty()};
    struct heaprange h = heaprange_now();
    while (n > 0) {
        scan_word(&w, h, ptrs[--n]);
        if (stop && n <= keep && (n & 31) == 0 && __atomic_load_n(stop, __ATOMIC_RELAXED))
            break;
    }
    if (w.buf->n)
        putfull(w.buf);
    else
        putempty(w.buf);
    __atomic_add_fetch(&work.shadeMarked, w.bytesMarked, __ATOMIC_RELAXED);
    return n;
}

void gc_shade(const uintptr_t *ptrs, size_t n)
{
    gc_shade_until(ptrs, n, 0, NULL);
}

void gc_mark_new(struct mspan *s, uintptr_t p)
{
    unsigned idx = s->sizeclass == 0 ? 0 : (unsigned)(((uint64_t)(p - s->startAddr) * s->divMul) >> 32);
    __atomic_fetch_or(&s->gcmarkBits[idx >> 6], (uint64_t)1 << (idx & 63), __ATOMIC_RELAXED);
}

uint64_t gc_mark_leaks(void)
{
    heap_range();
    work.leak = true;
    uint64_t marked = mark_once(1);
    work.leak = false;
    return marked;
}

/* The bytes marked by gc_mark_and_scan calls after gc_mark. */
uint64_t gc_mark_extra(void)
{
    uint64_t n = gcw0()->bytesMarked;
    gcw0()->bytesMarked = 0;
    return n;
}

/* ---- Registered roots --------------------------------------------------- */

GORT_API int gort_add_roots(void *lo, void *hi)
{
    if (!lo || (uintptr_t)hi <= (uintptr_t)lo) {
        errno = EINVAL;
        return -1;
    }
    gcinit_once();
    gort_lock(&rootsLock);
    if (nroots == caproots) {
        size_t cap = caproots ? caproots * 2 : 16;
        struct workitem *n = gort_realloc(roots, cap * sizeof *n);
        if (!n) {
            gort_unlock(&rootsLock);
            errno = ENOMEM;
            return -1;
        }
        roots = n;
        caproots = cap;
    }
    roots[nroots++] = (struct workitem){(uintptr_t)lo, (uintptr_t)hi - (uintptr_t)lo};
    gort_unlock(&rootsLock);
    return 0;
}

GORT_API int gort_remove_roots(void *lo, void *hi)
{
    gort_lock(&rootsLock);
    for (size_t i = 0; i < nroots; i++) {
        if (roots[i].p == (uintptr_t)lo && roots[i].p + roots[i].n == (uintptr_t)hi) {
            roots[i] = roots[--nroots];
            gort_unlock(&rootsLock);
            return 0;
        }
    }
    gort_unlock(&rootsLock);
    errno = EINVAL;
    return -1;
}
