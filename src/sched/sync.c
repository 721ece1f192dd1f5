/*
 * sync.c — Go's sync package: Mutex, RWMutex, WaitGroup, Once and Cond, on
 * top of the runtime semaphores and notify lists of sema.c.
 *
 * Mutex is one int32 of state and one semaphore.  The state holds
 * mutexLocked, mutexWoken (a waiter is awake and trying, so Unlock need not
 * wake another), mutexStarving, and the number of waiters above those three
 * bits.  Lock is one CAS when free; otherwise lockSlow:
 *
 *   normal mode     a woken waiter competes with goroutines that have just
 *                   arrived, and usually loses to them (they are running);
 *                   that is fast, since the lock passes without a switch.
 *                   When other Ps are running and this P has nothing else to
 *                   do, a newcomer first spins a little (a few rounds of
 *                   pause) hoping the holder is about to let go.
 *   starvation mode a waiter that has waited over 1 ms sets mutexStarving.
 *                   Then Unlock hands the lock straight to the first waiter
 *                   (a semaphore handoff: it runs next), newcomers neither
 *                   take the lock nor spin but queue at the tail.  The last
 *                   waiter, or one that waited under 1 ms, switches back to
 *                   normal mode.  A waiter that was woken and lost requeues
 *                   at the head (lifo), keeping its place.
 *
 * RWMutex is Go's: readerCount counts readers, and a writer subtracts
 * rwmutexMaxReaders from it to announce itself, so later readers see a
 * negative count and sleep; readerWait counts the readers the writer still
 * waits for.  WaitGroup keeps its counter and the number of waiters in one
 * 64-bit word so that "counter reached zero with waiters" is one atomic
 * observation.  Once is an atomic flag plus a Mutex for the slow path.
 *
 * Misuse is fatal (Go's fatal errors): "sync: unlock of unlocked mutex",
 * "sync: RUnlock of unlocked RWMutex", "sync: negative WaitGroup counter",
 * and so on.  The fast paths work from any thread; a call that must sleep
 * needs a goroutine and says so (requireg) when it gets that far.
 */
#include "gort.h"
#include "runtime/print.h"
#include "sched/runtime2.h"
#include "sched/sema.h"

enum {
    mutexLocked = 1,
    mutexWoken = 2,
    mutexStarving = 4,
    mutexWaiterShift = 3,
};

#define starvationThresholdNs ((int64_t)1000000)
#define activeSpin 4             /* spin rounds before sleeping */
#define activeSpinCnt 30         /* pauses per round */

#define rwmutexMaxReaders (1 << 30)

/* ---- Spinning ----------------------------------------------------------- */

static inline void procyield(int n)
{
    for (int i = 0; i < n; i++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield" ::: "memory");
#else
        __asm__ __volatile__("" ::: "memory");
#endif
    }
}

/* Go's sync_runtime_canSpin: spinning pays only briefly, with other Ps
 * running (one of them may be the holder, about to unlock) and nothing
 * else queued on this P that could use the time. */
static bool canSpin(int iter)
{
    if (iter >= activeSpin || gomaxprocs <= 1)
        return false;
    uint32_t idle = __atomic_load_n(&sched.npidle, __ATOMIC_RELAXED) +
                    __atomic_load_n(&sched.nmspinning, __ATOMIC_RELAXED);
    if ((int64_t)gomaxprocs <= (int64_t)idle + 1)
        return false;
    struct g *gp = getg();
    struct p *pp = gp->m != NULL ? gp->m->p : NULL;
    if (pp == NULL)
        return false;
    if (__atomic_load_n(&pp->runqhead, __ATOMIC_RELAXED) !=
            __atomic_load_n(&pp->runqtail, __ATOMIC_RELAXED) ||
        __atomic_load_n(&pp->runnext, __ATOMIC_RELAXED) != NULL)
        return false;
    return true;
}

/* ---- Mutex -------------------------------------------------------------- */

static inline int32_t mutexLoad(gort_mutex *m)
{
    return __atomic_load_n(&m->state, __ATOMIC_RELAXED);
}

static inline bool mutexCAS(gort_mutex *m, int32_t *old, int32_t nu)
{
    return __atomic_compare_exchange_n(&m->state, old, nu, false, __ATOMIC_ACQ_REL,
                                       __ATOMIC_RELAXED);
}

static void mutexLockSlow(gort_mutex *m, const char *fn)
{
    int64_t waitStartTime = 0;
    bool starving = false, awoke = false;
    int iter = 0;
    int32_t old = mutexLoad(m);

    requireg(fn);
    for (;;) {
        /* Locked in normal mode: spin a little if that may pay.  Setting
         * mutexWoken tells Unlock not to wake a sleeper meanwhile. */
        if ((old & (mutexLocked | mutexStarving)) == mutexLocked && canSpin(iter)) {
            if (!awoke && (old & mutexWoken) == 0 && (old >> mutexWaiterShift) != 0 &&
                mutexCAS(m, &old, old | mutexWoken))
                awoke = true;
            procyield(activeSpinCnt);
            iter++;
            old = mutexLoad(m);
            continue;
        }
        int32_t nu = old;
        if ((old & mutexStarving) == 0)
            nu |= mutexLocked;                   /* starving: it is not ours to take */
        if ((old & (mutexLocked | mutexStarving)) != 0)
            nu += 1 << mutexWaiterShift;         /* we will sleep */
        if (starving && (old & mutexLocked) != 0)
            nu |= mutexStarving;
        if (awoke) {
            if ((nu & mutexWoken) == 0)
                throw("sync: inconsistent mutex state");
            nu &= ~mutexWoken;
        }
        if (!mutexCAS(m, &old, nu))
            continue;                            /* old has been reloaded */
        if ((old & (mutexLocked | mutexStarving)) == 0)
            break;                               /* took it */

        bool queueLifo = waitStartTime != 0;
        if (waitStartTime == 0)
            waitStartTime = nanotime();
        semacquire(&m->sema, queueLifo, waitReasonSyncMutexLock);
        starving = starving || nanotime() - waitStartTime > starvationThresholdNs;
        old = mutexLoad(m);
        if ((old & mutexStarving) != 0) {
            /* Handed to us: the lock bit is clear and we are still counted
             * as a waiter.  Take it, and leave starvation mode if we are
             * the last waiter or did not wait long. */
            if ((old & (mutexLocked | mutexWoken)) != 0 || (old >> mutexWaiterShift) == 0)
                throw("sync: inconsistent mutex state");
            int32_t delta = mutexLocked - (1 << mutexWaiterShift);
            if (!starving || (old >> mutexWaiterShift) == 1)
                delta -= mutexStarving;
            __atomic_add_fetch(&m->state, delta, __ATOMIC_ACQ_REL);
            break;
        }
        awoke = true;
        iter = 0;
    }
}

static inline void mutexLock(gort_mutex *m, const char *fn)
{
    int32_t old = 0;
    if (__atomic_compare_exchange_n(&m->state, &old, mutexLocked, false, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
        return;
    mutexLockSlow(m, fn);
}

GORT_API void gort_mutex_lock(gort_mutex *m)
{
    mutexLock(m, "gort_mutex_lock");
}

GORT_API bool gort_mutex_trylock(gort_mutex *m)
{
    int32_t old = mutexLoad(m);
    if ((old & (mutexLocked | mutexStarving)) != 0)
        return false;
    return mutexCAS(m, &old, old | mutexLocked);
}

static void mutexUnlockSlow(gort_mutex *m, int32_t nu)
{
    if (((nu + mutexLocked) & mutexLocked) == 0)
        throw("sync: unlock of unlocked mutex");
    if ((nu & mutexStarving) != 0) {
        /* Hand the lock to the first waiter and let it run now.  The
         * locked bit stays clear; newcomers still see mutexStarving and
         * keep off. */
        semrelease(&m->sema, true);
        return;
    }
    int32_t old = nu;
    for (;;) {
        /* Nobody to wake, or someone already took the lock, or a waiter
         * is already awake, or starvation began: not our job. */
        if ((old >> mutexWaiterShift) == 0 ||
            (old & (mutexLocked | mutexWoken | mutexStarving)) != 0)
            return;
        nu = (old - (1 << mutexWaiterShift)) | mutexWoken;
        if (mutexCAS(m, &old, nu)) {
            semrelease(&m->sema, false);
            return;
        }
    }
}

GORT_API void gort_mutex_unlock(gort_mutex *m)
{
    int32_t nu = __atomic_add_fetch(&m->state, -mutexLocked, __ATOMIC_RELEASE);
    if (nu != 0)
        mutexUnlockSlow(m, nu);
}

/* ---- RWMutex ------------------------------------------------------------ */

GORT_API void gort_rwmutex_rlock(gort_rwmutex *rw)
{
    if (__atomic_add_fetch(&rw->readerCount, 1, __ATOMIC_ACQ_REL) < 0) {
        /* A writer holds it or waits for it. */
        requireg("gort_rwmutex_rlock");
        semacquire(&rw->readerSem, false, waitReasonSyncRWMutexRLock);
    }
}

static void rUnlockSlow(gort_rwmutex *rw, int32_t r)
{
    if (r + 1 == 0 || r + 1 == -rwmutexMaxReaders)
        throw("sync: RUnlock of unlocked RWMutex");
    /* A writer waits: the last of the readers it waits for wakes it. */
    if (__atomic_sub_fetch(&rw->readerWait, 1, __ATOMIC_ACQ_REL) == 0)
        semrelease(&rw->writerSem, false);
}

GORT_API void gort_rwmutex_runlock(gort_rwmutex *rw)
{
    int32_t r = __atomic_sub_fetch(&rw->readerCount, 1, __ATOMIC_ACQ_REL);
    if (r < 0)
        rUnlockSlow(rw, r);
}

GORT_API void gort_rwmutex_lock(gort_rwmutex *rw)
{
    /* First exclude other writers, then announce ourselves to readers. */
    mutexLock(&rw->w, "gort_rwmutex_lock");
    int32_t r = __atomic_sub_fetch(&rw->readerCount, rwmutexMaxReaders, __ATOMIC_ACQ_REL) +
                rwmutexMaxReaders;
    /* r readers were in; wait for those still there to leave. */
    if (r != 0 && __atomic_add_fetch(&rw->readerWait, r, __ATOMIC_ACQ_REL) != 0) {
        requireg("gort_rwmutex_lock");
        semacquire(&rw->writerSem, false, waitReasonSyncRWMutexLock);
    }
}

GORT_API void gort_rwmutex_unlock(gort_rwmutex *rw)
{
    /* Let readers in again, and wake those who came while we held it. */
    int32_t r = __atomic_add_fetch(&rw->readerCount, rwmutexMaxReaders, __ATOMIC_ACQ_REL);
    if (r >= rwmutexMaxReaders)
        throw("sync: Unlock of unlocked RWMutex");
    for (int32_t i = 0; i < r; i++)
        semrelease(&rw->readerSem, false);
    gort_mutex_unlock(&rw->w);
}

/* ---- WaitGroup ---------------------------------------------------------- */

GORT_API void gort_waitgroup_add(gort_waitgroup *wg, int delta)
{
    uint64_t state = __atomic_add_fetch(&wg->state, (uint64_t)(int64_t)delta << 32,
                                        __ATOMIC_SEQ_CST);
    int32_t v = (int32_t)(uint32_t)(state >> 32);  /* counter */
    uint32_t w = (uint32_t)state;                  /* waiters */
    if (v < 0)
        throw("sync: negative WaitGroup counter");
    if (w != 0 && delta > 0 && v == delta)
        throw("sync: WaitGroup misuse: Add called concurrently with Wait");
    if (v > 0 || w == 0)
        return;
    /* The counter is zero and there are waiters: nobody may change the
     * state now but us (an Add now would be misuse).  Reset it for reuse
     * and wake them all. */
    if (__atomic_load_n(&wg->state, __ATOMIC_SEQ_CST) != state)
        throw("sync: WaitGroup misuse: Add called concurrently with Wait");
    __atomic_store_n(&wg->state, 0, __ATOMIC_SEQ_CST);
    for (; w != 0; w--)
        semrelease(&wg->sema, false);
}

GORT_API void gort_waitgroup_done(gort_waitgroup *wg)
{
    gort_waitgroup_add(wg, -1);
}

GORT_API void gort_waitgroup_wait(gort_waitgroup *wg)
{
    uint64_t state = __atomic_load_n(&wg->state, __ATOMIC_SEQ_CST);
    /* Let queued goroutines run once before sleeping: the ones Wait waits
     * for are often right there (go f(); wg.Wait()), and if they finish
     * first no semaphore is needed on either side. */
    if ((uint32_t)(state >> 32) != 0 && ingoroutine()) {
        goyield();
        state = __atomic_load_n(&wg->state, __ATOMIC_SEQ_CST);
    }
    for (;;) {
        if ((uint32_t)(state >> 32) == 0)
            return;
        requireg("gort_waitgroup_wait");
        /* Count ourselves as a waiter (the low word), then sleep. */
        if (__atomic_compare_exchange_n(&wg->state, &state, state + 1, false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            semacquire(&wg->sema, false, waitReasonSemacquire);
            if (__atomic_load_n(&wg->state, __ATOMIC_SEQ_CST) != 0)
                throw("sync: WaitGroup is reused before previous Wait has returned");
            return;
        }
    }
}

/* ---- Once --------------------------------------------------------------- */

GORT_API void gort_once_do(gort_once *o, gort_func fn, void *arg)
{
    if (__atomic_load_n(&o->done, __ATOMIC_ACQUIRE) != 0)
        return;
    /* Slow path: callers that lose wait on the Mutex until fn has returned,
     * so that nobody returns before fn's effects are done. */
    mutexLock(&o->m, "gort_once_do");
    if (__atomic_load_n(&o->done, __ATOMIC_RELAXED) == 0) {
        fn(arg);
        __atomic_store_n(&o->done, 1, __ATOMIC_RELEASE);
    }
    gort_mutex_unlock(&o->m);
}

/* ---- Cond --------------------------------------------------------------- */

GORT_API void gort_cond_wait(gort_cond *c, gort_mutex *m)
{
    requireg("gort_cond_wait");
    /* The ticket is taken while m is held, so a Signal or Broadcast made
     * after we unlock m counts us even if we are not asleep yet. */
    uint32_t t = notifyListAdd(c);
    gort_mutex_unlock(m);
    notifyListWait(c, t);
    mutexLock(m, "gort_cond_wait");
}

GORT_API void gort_cond_signal(gort_cond *c)
{
    notifyListNotifyOne(c);
}

GORT_API void gort_cond_broadcast(gort_cond *c)
{
    notifyListNotifyAll(c);
}
