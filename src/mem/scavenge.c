/*
 * scavenge.c — releasing free pages to the OS (see scavenge.h).
 */
#define _GNU_SOURCE 1
#include "mem/scavenge.h"
#include "mem/arena.h"
#include "mem/mheap.h"
#include "os/os.h"
#include "runtime/godebug.h"

#include <pthread.h>
#include <signal.h>

uint64_t scavenge_nreleased;

/* Background thread state. */
static uint32_t scav_started;      /* 0 never, 1 running, 2 failed to start */
static uint32_t scav_wakeup;       /* futex word: bumped to wake the thread */
static uint32_t scav_parked;       /* thread sleeps with nothing pending */
static uint64_t scav_lastrun;      /* synchronous mode: last pass (ns) */

/* The thread starts only once this many free pages are still backed. */
#define SCAV_START_PAGES ((4u << 20) >> _PageShift)

#define SCAV_BATCH 64

int scavenge_releases_zero(void)
{
    return debug.madvdontneed;
}

/* The collector's bound on memory kept backed (bytes; UINT64_MAX: none). */
static uint64_t scav_retain_goal = UINT64_MAX;

uint64_t scavenge_release(uint64_t cutoff, uint64_t *next_due, uint64_t limit)
{
    uint64_t total = 0, next = UINT64_MAX;
    while (total < limit) {
        struct mspan *batch[SCAV_BATCH];
        int n = 0;
        uint64_t taken = 0;
        next = UINT64_MAX;
        gort_lock(&mheap_.lock);
        for (int fl = 0; fl < HEAP_FL_COUNT && n < SCAV_BATCH; fl++) {
            if (!(mheap_.dirty.fl_bitmap & ((uint64_t)1 << fl)))
                continue;
            for (int sl = 0; sl < HEAP_SL_COUNT && n < SCAV_BATCH; sl++) {
                struct mspan *s = mheap_.dirty.free[fl][sl], *nx;
                for (; s && n < SCAV_BATCH && total + taken < limit; s = nx) {
                    nx = s->next;   /* (the dirty index holds no released run) */
                    if (s->freeSince > cutoff) {
                        if (s->freeSince < next)
                            next = s->freeSince;
                        continue;
                    }
                    mheap_index_remove(s);
                    s->state = mSpanScavenging;
                    heap_stat(&mheap_.pagesScavenging, (int64_t)s->npages);
                    batch[n++] = s;
                    taken += s->npages;
                }
            }
        }
        gort_unlock(&mheap_.lock);
        if (n == 0)
            break;

        /* The runs are out of the index and marked: nobody else touches
         * them while the lock is dropped for the system calls. */
        for (int i = 0; i < n; i++)
            os_release((void *)batch[i]->startAddr,
                       batch[i]->npages << _PageShift, debug.madvdontneed);

        gort_lock(&mheap_.lock);
        for (int i = 0; i < n; i++) {
            struct mspan *s = batch[i];
            uintptr_t fresh = s->npages - arena_countReleased(s->startAddr, s->npages);
            arena_setReleased(s->startAddr, s->npages, 1);
            heap_stat(&mheap_.pagesReleased, (int64_t)(fresh));
            total += fresh;
            heap_stat(&mheap_.pagesScavenging, -(int64_t)s->npages);
            s->scavenged = 1;
            mheap_insert_free(s);
        }
        __atomic_fetch_add(&scavenge_nreleased, (uint64_t)n, __ATOMIC_RELAXED);
        gort_unlock(&mheap_.lock);
        if (n < SCAV_BATCH)
            break;
    }
    if (next_due)
        *next_due = next;
    return total;
}

/* Pages backed beyond the collector's goal, released whatever their age. */
static uint64_t over_retain_goal(void)
{
    uint64_t goal = __atomic_load_n(&scav_retain_goal, __ATOMIC_RELAXED);
    if (goal == UINT64_MAX)
        return 0;
    uint64_t backed = __atomic_load_n(&mheap_.pagesInUse, __ATOMIC_RELAXED) +
                      __atomic_load_n(&mheap_.pagesManual, __ATOMIC_RELAXED) +
                      __atomic_load_n(&mheap_.pagesFree, __ATOMIC_RELAXED) -
                      __atomic_load_n(&mheap_.pagesReleased, __ATOMIC_RELAXED);
    goal >>= _PageShift;
    return backed > goal ? backed - goal : 0;
}

static void *bgscavenge(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t gen = __atomic_load_n(&scav_wakeup, __ATOMIC_ACQUIRE);
        uint64_t over = over_retain_goal();
        if (over)
            scavenge_release(UINT64_MAX, NULL, over);
        uint64_t now = os_nanotime();
        uint64_t delay = (uint64_t)debug.scavengedelay;
        uint64_t next;
        scavenge_release(now > delay ? now - delay : 0, &next, UINT64_MAX);
        if (next == UINT64_MAX) {
            __atomic_store_n(&scav_parked, 1, __ATOMIC_SEQ_CST);
            os_futex_wait(&scav_wakeup, gen, -1);
            __atomic_store_n(&scav_parked, 0, __ATOMIC_RELAXED);
        } else {
            uint64_t due = next + delay;
            now = os_nanotime();
            if (due > now)
                os_futex_wait(&scav_wakeup, gen, (int64_t)(due - now) + 1000000);
        }
    }
    return NULL;
}

static void start_background(void)
{
    uint32_t expected = 0;
    if (!__atomic_compare_exchange_n(&scav_started, &expected, 1, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return;
    /* The thread must never take the program's signals. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 << 10);
    pthread_t t;
    int err = pthread_create(&t, &attr, bgscavenge, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        __atomic_store_n(&scav_started, 2, __ATOMIC_RELEASE);
    else
        pthread_setname_np(t, "gort-scavenger");
}

void scavenge_kick(void)
{
    uint32_t started = __atomic_load_n(&scav_started, __ATOMIC_ACQUIRE);
    if (started == 1) {
        if (__atomic_load_n(&scav_parked, __ATOMIC_SEQ_CST)) {
            __atomic_store_n(&scav_parked, 0, __ATOMIC_RELAXED);
            __atomic_fetch_add(&scav_wakeup, 1, __ATOMIC_RELEASE);
            os_futex_wake(&scav_wakeup, 1);
        }
        return;
    }
    uint64_t dirty = __atomic_load_n(&mheap_.pagesFree, __ATOMIC_RELAXED) -
                     __atomic_load_n(&mheap_.pagesReleased, __ATOMIC_RELAXED);
    if (started == 0 && debug.scavenger) {
        if (dirty >= SCAV_START_PAGES)
            start_background();
        return;
    }
    /* No background thread: release from here, at most every delay/4. */
    uint64_t now = os_nanotime();
    uint64_t delay = (uint64_t)debug.scavengedelay;
    uint64_t last = __atomic_load_n(&scav_lastrun, __ATOMIC_RELAXED);
    if (dirty == 0 || now - last < delay / 4)
        return;
    if (!__atomic_compare_exchange_n(&scav_lastrun, &last, now, 0,
                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    scavenge_release(now > delay ? now - delay : 0, NULL, UINT64_MAX);
}

void scavenge_retain_check(void)
{
    if (over_retain_goal() == 0)
        return;
    if (__atomic_load_n(&scav_started, __ATOMIC_ACQUIRE) == 0 && debug.scavenger)
        start_background();
    if (__atomic_load_n(&scav_started, __ATOMIC_ACQUIRE) == 1) {
        /* Asleep or parked, the thread wakes on this word. */
        __atomic_store_n(&scav_parked, 0, __ATOMIC_RELAXED);
        __atomic_fetch_add(&scav_wakeup, 1, __ATOMIC_RELEASE);
        os_futex_wake(&scav_wakeup, 1);
    } else {
        scavenge_release(UINT64_MAX, NULL, over_retain_goal());
    }
}

void scavenge_set_retain_goal(uint64_t bytes)
{
    __atomic_store_n(&scav_retain_goal, bytes, __ATOMIC_RELAXED);
    scavenge_retain_check();
}

void scavenge_after_fork_child(void)
{
    scav_started = 0;
    scav_parked = 0;
    /* Runs the parent's scavenger held at the fork are lost to the child;
     * nobody will hand them back, so allocation must not wait for them. */
    mheap_.pagesScavenging = 0;
}
