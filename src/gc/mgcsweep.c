/*
 * mgcsweep.c — sweeping: after a mark, every collected span's gcmarkBits
 * become its allocBits, and spans left with no live object go back to the
 * heap.
 *
 * Sweeping is lazy, as in Go: the stop that ends marking only bumps
 * gcheap.sweepgen by 2, which turns every span on the "swept" lists into
 * an unswept one (mgc.h has the states).  Spans are then swept one at a
 * time by whoever needs them: an allocating thread looking for a span with
 * room (malloc_gc.c), the background sweeper here (a thread that yields
 * every few spans), or the next cycle, which first finishes what is left.  A
 * sweeper claims a span by moving its sweepgen from sg - 2 to sg - 1 and
 * counts itself in gcheap.nsweeping until the span is placed, cached or
 * freed, so that a cycle never starts with a sweep half done.
 */
#define _GNU_SOURCE
#include "gc/mgc.h"
#include "gc/stw.h"
#include "mem/mheap.h"
#include "mem/scavenge.h"
#include "os/os.h"
#include "runtime/print.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <signal.h>

bool span_claim(struct mspan *s, uint32_t sg)
{
    uint32_t want = sg - 2;
    if (!__atomic_compare_exchange_n(&s->sweepgen, &want, sg - 1, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return false;
    __atomic_add_fetch(&gcheap.nsweeping, 1, __ATOMIC_ACQ_REL);
    return true;
}

static void span_release_to_heap(struct mspan *s)
{
    __atomic_sub_fetch(&gcheap.pagesInUse, s->npages, __ATOMIC_RELAXED);
    __atomic_store_n(&s->gc, 0, __ATOMIC_RELEASE);
    span_free_ptrbits(s);
    s->ptrtype = NULL;
    s->largeType = NULL;
    mheap_free(s);
}

/* The bitmap half: gcmarkBits become allocBits.  Returns whether anything
 * in s survived. */
static bool sweep_bits(struct mspan *s, uint32_t sg)
{
    if (s->sizeclass == 0) {
        bool live = s->gcmarkBits[0] & 1;
        s->gcmarkBits[0] = 0;
        if (!live) {
            __atomic_add_fetch(&gcheap.nfreed, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&gcheap.freedBytes, s->npages << _PageShift, __ATOMIC_RELAXED);
        }
        __atomic_store_n(&s->sweepgen, sg, __ATOMIC_RELEASE);
        return live;
    }
    unsigned words = (s->nelems + 63u) / 64u;
    unsigned nlive = 0, nfreed = 0;
    /* A span allocated black in advance (malloc_gc.c) has marks on slots
     * it never handed out: only allocated slots keep theirs. */
    uint64_t keep = s->premarked ? 0 : ~(uint64_t)0;
    s->premarked = 0;
    for (unsigned w = 0; w < words; w++) {
        uint64_t alloc = s->allocBits[w], mark = s->gcmarkBits[w] & (alloc | keep);
        nfreed += (unsigned)__builtin_popcountll(alloc & ~mark);
        nlive += (unsigned)__builtin_popcountll(mark);
        s->allocBits[w] = mark;
        s->gcmarkBits[w] = 0;
    }
    span_setAllocCount(s, nlive);
    s->freeindex = 0;
    s->allocCache = 0;
    if (nfreed) {
        s->needzero = 1;
        __atomic_add_fetch(&gcheap.nfreed, nfreed, __ATOMIC_RELAXED);
        __atomic_add_fetch(&gcheap.freedBytes, (uint64_t)nfreed * s->elemsize, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&s->sweepgen, sg, __ATOMIC_RELEASE);
    return nlive != 0;
}

bool span_sweep(struct mspan *s)
{
    /* The bitmaps in one nosuspend section, and never while a concurrent
     * mark runs (it would clear the marks being made): a registered
     * sweeper that a cycle overtakes waits for its mark to finish. */
    bool live;
    for (;;) {
        gcnosuspend_enter();
        if (!gc_marking()) {
            live = sweep_bits(s, __atomic_load_n(&gcheap.sweepgen, __ATOMIC_ACQUIRE));
            gcnosuspend_exit();
            break;
        }
        gcnosuspend_exit();
        gc_wait_mark_done();
    }
    if (!live)
        span_release_to_heap(s);
    return live;
}

/* Pops an unswept span from lists a[] (else b[]; pairs indexed by
 * sweptIndex) and claims it.  sweepgen is read under the lock: it moves
 * only while no nosuspend section runs.  None while a concurrent mark
 * runs (there are none then: every span was swept before it began). */
static struct mspan *take_unswept(rtmutex *lock, struct mspan **a, struct mspan **b)
{
    gcnosuspend_enter();
    gort_lock(lock);
    uint32_t sg = __atomic_load_n(&gcheap.sweepgen, __ATOMIC_ACQUIRE);
    struct mspan *s = NULL;
    if (!gc_marking()) {
        unsigned u = sweptIndex(sg) ^ 1;
        s = spanlist_pop(&a[u]);
        if (!s && b)
            s = spanlist_pop(&b[u]);
        if (s && !span_claim(s, sg))
            throw("gc: unswept list holds a span in the wrong sweep state");
    }
    gort_unlock(lock);
    gcnosuspend_exit();
    return s;
}

static unsigned sweepHint;

bool sweepone(void)
{
    unsigned u = sweptIndex(__atomic_load_n(&gcheap.sweepgen, __ATOMIC_ACQUIRE)) ^ 1;
    unsigned start = __atomic_load_n(&sweepHint, __ATOMIC_RELAXED) % numGCClasses;
    for (unsigned k = 0; k < numGCClasses; k++) {
        unsigned i = (start + k) % numGCClasses;
        struct gcentral *c = &gcheap.central[i];
        /* (An unlocked glance; take_unswept decides under the lock.) */
        if (!__atomic_load_n(&c->partial[u], __ATOMIC_RELAXED) &&
            !__atomic_load_n(&c->full[u], __ATOMIC_RELAXED))
            continue;
        struct mspan *s = take_unswept(&c->lock, c->partial, c->full);
        if (!s)
            continue;
        __atomic_store_n(&sweepHint, i, __ATOMIC_RELAXED);
        if (span_sweep(s))
            gcentral_place(s);
        sweep_release();
        return true;
    }
    struct mspan *s = take_unswept(&gcheap.largeLock, gcheap.large, NULL);
    if (!s)
        return false;
    if (span_sweep(s))
        gclarge_place(s);
    sweep_release();
    return true;
}

/* With the world stopped, before sweepgen moves on: spans placed unswept
 * after the last sweep ran out (a thread held them across a stop) join the
 * lists that are about to become unswept.  Their gcmarkBits hold the marks
 * of both cycles, so sweeping them later keeps everything either found. */
static void migrate_list(struct mspan **from, struct mspan **to, uint32_t sg)
{
    struct mspan *s;
    while ((s = spanlist_pop(from)) != NULL) {
        s->sweepgen = sg;
        spanlist_push(to, s);
    }
}

void sweep_before_bump(void)
{
    uint32_t sg = gcheap.sweepgen;
    unsigned sw = sweptIndex(sg), un = sw ^ 1;
    for (unsigned i = 0; i < numGCClasses; i++) {
        struct gcentral *c = &gcheap.central[i];
        migrate_list(&c->partial[un], &c->partial[sw], sg);
        migrate_list(&c->full[un], &c->full[sw], sg);
    }
    migrate_list(&gcheap.large[un], &gcheap.large[sw], sg);
}

void finishsweep(void)
{
    while (sweepone())
        ;
    while (__atomic_load_n(&gcheap.nsweeping, __ATOMIC_ACQUIRE) != 0)
        sched_yield();
}

/* ---- The background sweeper ------------------------------------------ */

static bool sweeperStarted;   /* under gcLock, as sweeper_kick is called */

/* Spans the background sweeper sweeps between yields. */
#define BGSWEEP_BATCH 16

static void *bgsweep(void *arg)
{
    (void)arg;
    /* At the program's own priority, giving the CPU up every few spans
     * (Go's bgsweep yields after each).  Not idle priority: the next cycle
     * waits for every claimed span (finishsweep), and a thread that the
     * OS starves while it holds one held up the cycle, and with it
     * allocation, for over a second on a loaded machine. */
    for (;;) {
        uint32_t seen = __atomic_load_n(&gcheap.sweepWake, __ATOMIC_ACQUIRE);
        for (int n = 1; sweepone(); n++)
            if (n % BGSWEEP_BATCH == 0)
                sched_yield();
        scavenge_retain_check();
        os_futex_wait(&gcheap.sweepWake, seen, -1);
    }
    return NULL;
}

/* It blocks every signal: not a mutator, never stopped by a cycle (its
 * sweeps are waited for by finishsweep instead). */
static void sweeper_start(void)
{
    gc_start_thread(bgsweep, NULL, "gc: cannot start the background sweeper");
}

void sweeper_kick(void)
{
    if (!sweeperStarted) {
        sweeperStarted = true;
        sweeper_start();
    }
    __atomic_add_fetch(&gcheap.sweepWake, 1, __ATOMIC_RELEASE);
    os_futex_wake(&gcheap.sweepWake, 1);
}

void sweeper_after_fork_child(void)
{
    sweeperStarted = false;
}
