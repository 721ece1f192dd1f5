/*
 * mgc.h — the collector's shared state and its internal interface.
 *
 * The files of src/gc/, in the order a cycle uses them:
 *   malloc_gc.c  gort_new and its kin (Go's mallocgc): per-P cache slots,
 *                the tiny allocator, gcentral (the collected spans of one
 *                class, swept and unswept), large objects.
 *   mgc.c        the cycle (Go's gcStart / gcMarkTermination), the pacer,
 *                GOGC / GOMEMLIMIT, gctrace, statistics.
 *   stw.c        the thread registry and stopping the world.
 *   mgcmark.c    roots, the mark work queue, parallel mark workers,
 *                checkmark.
 *   mgcsweep.c   sweeping spans (Go's sweepgen protocol) and the
 *                background sweeper.
 *   mfinal.c     specials: finalizers, cleanups, weak handles; the
 *                finalizer goroutine.
 *
 * sweepgen, as Go's mheap comment defines it (sg = gcheap.sweepgen, which
 * grows by 2 each cycle):
 *   s->sweepgen == sg - 2   the span needs sweeping
 *   s->sweepgen == sg - 1   it is being swept
 *   s->sweepgen == sg       swept, ready to use
 *   s->sweepgen == sg + 1   cached before sweeping began, needs sweeping
 *   s->sweepgen == sg + 3   swept and then cached
 * gort flushes every cache while the world is stopped, so sg + 1 never
 * outlives a stop.  sweepgen moves only at mark termination and every span
 * is swept before a cycle begins (finishsweep), so nothing is swept while
 * a concurrent mark runs.  A span a thread held across a stop is found
 * stale when placed (place_locked) and goes back unswept; the stop moves
 * such spans along before the bump (sweep_before_bump).
 */
#ifndef GORT_GC_MGC_H
#define GORT_GC_MGC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gort.h"
#include "mem/mspan.h"
#include "os/lock.h"

struct mcache;

/* Collected span classes: a size class and a noscan bit. */
#define numGCClasses (_NumSizeClasses * 2)
static inline unsigned gcclass_of(unsigned sizeclass, bool noscan)
{
    return sizeclass * 2 + (noscan ? 1u : 0u);
}

/* The spans of one collected class that no cache holds, on two pairs of
 * lists: [sweepgen/2 % 2] swept, the other unswept. */
struct gcentral {
    rtmutex lock;
    struct mspan *partial[2];    /* with free objects */
    struct mspan *full[2];       /* without */
} __attribute__((aligned(64)));

struct gcheap {
    uint32_t sweepgen;           /* atomic */
    struct gcentral central[numGCClasses];
    rtmutex largeLock;           /* large collected spans */
    struct mspan *large[2];
    uint32_t nsweeping;          /* atomic: spans claimed and not yet placed */
    uint32_t sweepWake;          /* futex: the background sweeper's */

    /* Pacing (bytes).  heapLive: collected bytes allocated (whole free
     * slots of cached spans count, as in Go) since the last mark found
     * heapMarked live. */
    uint64_t heapLive;           /* atomic */
    uint64_t pagesInUse;         /* atomic: pages of collected spans, small and large */
    uint64_t heapMarked;
    uint64_t goalLive;           /* the live heap the goal is set from (mgc.c) */
    uint64_t trigger;            /* atomic: start a cycle at this heapLive */
    uint64_t goal;
    int32_t gcpercent;           /* GOGC; < 0: off */
    int64_t memoryLimit;         /* GOMEMLIMIT */
    uint64_t globalsScan;        /* bytes of data/bss scanned by the last cycle */
    uint64_t stacksScan;

    /* Counters for statistics (allocations are counted per cache). */
    uint64_t nfreed;             /* atomic: objects swept away */
    uint64_t freedBytes;         /* atomic: their bytes */
};
extern struct gcheap gcheap;

/* gcphase: _GCmark from the first stop of a concurrent cycle to the
 * second, when allocation is black and gort_store shades.  Changed only
 * while the world is stopped, so a nosuspend section sees one value. */
enum { _GCoff = 0, _GCmark = 1 };
extern uint32_t gcphase;
static inline bool gc_marking(void)
{
    return __atomic_load_n(&gcphase, __ATOMIC_RELAXED) == _GCmark;
}
extern bool gcConcurrent;        /* concurrent mode (gort_set_gc_concurrent) */
/* The program chose the mode (GODEBUG=gcconcurrent, gort_set_gc_concurrent);
 * until it does, its first gort_store selects the concurrent mode. */
extern bool gcModeChosen;
bool gc_set_mode(bool concurrent, bool explicit_);

extern rtmutex gcLock;           /* one cycle at a time */
extern bool gcInited;

/* Pointer maps of scan spans (malloc_gc.c).  While every object of a span
 * is of one kind, mspan.ptrtype names it (a type, or gc_ptrtype_all: every
 * word, a conservative object's) and the span has no map; the first object
 * of another kind gives it a bit per word (mspan.ptrbits). */
extern const gort_type gc_ptrtype_all;
void span_free_ptrbits(struct mspan *s);
uint64_t gc_ptrbits_sys(void);          /* bytes the maps took from the OS */
void ptrbits_fork_prepare(void);
void ptrbits_fork_parent(void);
void ptrbits_fork_child(void);

/* Span lists (gcentral, large): doubly linked through next/prev. */
static inline void spanlist_push(struct mspan **head, struct mspan *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
}

static inline struct mspan *spanlist_pop(struct mspan **head)
{
    struct mspan *s = *head;
    if (s) {
        *head = s->next;
        if (*head)
            (*head)->prev = NULL;
        s->next = s->prev = NULL;
    }
    return s;
}

/* ---- malloc_gc.c ---- */
void gcinit_once(void);
/* Every cache's collected spans go back to their gcentral (world
 * stopped). */
void gcflush_caches(void);
static inline struct gcentral *gcentral_of(struct mspan *s) { return &gcheap.central[s->gcclass]; }
static inline unsigned sweptIndex(uint32_t sg) { return (sg >> 1) & 1; }
/* Puts a swept span that is not cached on its list (world running:
 * takes the list's lock inside a nosuspend section). */
void gcentral_place(struct mspan *s);
void gclarge_place(struct mspan *s);

/* ---- mgc.c ---- */
/* Reads GOGC and GOMEMLIMIT; sets the first goal. */
void gc_params_init(void);
void gc_fork_child_locks(void);
void gc_controller_after_fork_child(void);
/* Starts a cycle if heapLive has passed the trigger (outside nosuspend). */
void gc_maybe_start(void);
/* An allocation's slow path took bytes (a span's free slots, a large
 * object): while marking, pays for them with a mark assist; then
 * gc_maybe_start. */
void gc_alloc_slow(uint64_t bytes);
/* Returns once no concurrent mark is running (outside nosuspend). */
void gc_wait_mark_done(void);
void gc_collect(bool forced);
extern int gcDebugTrace, gcDebugCheckmark;

/* ---- mgcmark.c ---- */
/* Starts the mark helper threads a cycle will want (world running). */
void gc_prepare_workers(int nworkers);
/* Marks the heap from every root; world stopped.  Returns bytes marked. */
uint64_t gc_mark(int nworkers, bool checkmark);
/* Collects the data/bss ranges to scan (before the world stops: the
 * loader's lock). */
void gc_collect_globals(void);
/* Marks obj as reachable (world stopped, outside the workers). */
void gc_mark_and_scan(uintptr_t obj);
/* The object that contains p, and its span, or 0. */
uintptr_t gc_find_object(uintptr_t p, struct mspan **sp, unsigned *idxp);
static inline bool gc_isMarked(const struct mspan *s, unsigned idx)
{
    return (__atomic_load_n(&s->gcmarkBits[idx >> 6], __ATOMIC_RELAXED) >> (idx & 63)) & 1;
}
/* The leak checker (leakcheck.c): marks malloc'd blocks too, in their
 * spans' gcmarkBits (world stopped, bits cleared by the caller). */
uint64_t gc_mark_leaks(void);
/* The allocated, unlisted malloc'd block holding p (its span, index and
 * size), or 0. */
uintptr_t malloc_block_of(uintptr_t p, struct mspan **sp, unsigned *idxp, uintptr_t *sizep);
/* Concurrent mode.  gc_mark_start: with the world stopped, scans every
 * root now (stacks, globals, uncollectable blocks: their contents as of
 * this instant) and queues what they reach.  gc_mark_concurrent: drains
 * the queue with the world running.  gc_mark_finish: with the world
 * stopped again, shades every cache's write-barrier buffer and drains
 * what is left; returns the bytes marked over the whole cycle. */
void gc_mark_start(void);
/* Before the first stop: room for gc_mark_start's copy of the roots. */
void gc_snapshot_prepare(void);
void gc_mark_concurrent(int nworkers);
uint64_t gc_mark_finish(int nworkers, bool checkmark);
/* Mark assist (Go's gcAssistAlloc): the calling thread allocated bytes
 * while marking, and pays for them with scan work in proportion to the
 * scan work left over the heap left before the goal (outside nosuspend). */
bool gc_assist_alloc(uint64_t bytes);
/* Nanoseconds spent in mark assists since the last call (gctrace's assist
 * CPU, part of GCCPUFraction). */
uint64_t gc_assist_time_take(void);
/* Scan work (bytes scanned) of the last finished mark. */
extern uint64_t gcLastScanWork;
/* Shades n pointers (a write-barrier buffer, a weak handle's object). */
void gc_shade(const uintptr_t *ptrs, size_t n);
/* gc_shade from the last entry back, stopping once no more than keep are
 * left and *stop is set (looked at every 32 entries); returns how many
 * are left unshaded at the front. */
size_t gc_shade_until(const uintptr_t *ptrs, size_t n, size_t keep, const int *stop);
/* Marks the newly allocated object at p of span s black (nosuspend). */
void gc_mark_new(struct mspan *s, uintptr_t p);
/* Leaves a static table of gort's that holds no collected pointers out of
 * the data and bss scanned (call before the first cycle, from a
 * constructor). */
void gc_noscan_static(const void *p, size_t n);
/* Roots registered with gort_add_roots. */
extern rtmutex rootsLock;

void gcmark_after_fork_child(void);

/* ---- mgcsweep.c ---- */
/* Sweeps one unswept span; false when none is left. */
bool sweepone(void);
/* Sweeps s, which the caller claimed (sweepgen sg - 1).  Returns false
 * when s was emptied and given back to the heap. */
bool span_sweep(struct mspan *s);
bool span_claim(struct mspan *s, uint32_t sg);
/* The claimant is done with its span: placed, cached or freed. */
static inline void sweep_release(void)
{
    __atomic_sub_fetch(&gcheap.nsweeping, 1, __ATOMIC_ACQ_REL);
}
/* World stopped, just before sweepgen += 2: unswept spans left over join
 * the lists that become unswept. */
void sweep_before_bump(void);
void sweeper_kick(void);
void sweeper_after_fork_child(void);
/* Every span swept and nobody sweeping (before a cycle). */
void finishsweep(void);

/* ---- mfinal.c ---- */
extern rtmutex specialsLock, finLock;
/* Marks what finalizers and cleanups keep: the contents of objects with a
 * finalizer (not the objects), their arguments, queued work. */
void specials_markroots(void);
/* After mark: clears weak handles of dead objects, queues their
 * finalizers (marking the objects again) and cleanups. */
void specials_process(void);
/* After the world restarts: frees dropped records, wakes the runner. */
void specials_after_start(void);
void finq_wake(void);
void finq_after_fork_child(void);
/* For specials_markroots: scan the object at p (n == 0, without marking
 * it) or n bytes at p conservatively. */
void gc_push_scan(uintptr_t p, uintptr_t n);
uint64_t gc_mark_extra(void);

/* ---- statistics (mgc.c) ---- */
void gc_fill_memstats(struct gort_memstats *out);

#endif
