/*
 * time.c — timers, sleep, tickers and time.After (Go's runtime/time.go).
 *
 * Each P keeps its pending timers in a 4-ary min-heap ordered by `when`,
 * under p->timersLock, and publishes the earliest `when` in p->timer0When
 * so that the scheduler can see without a lock whether anything is due.
 * A timer is added to the heap of the P that arms it (the sleeping
 * goroutine's P is the one that will look for work next), and stays there
 * until it fires or is stopped.
 *
 * The scheduler runs due timers with checkTimers() while it holds the P,
 * and sleeps in netpoll() until the earliest `when` of all Ps
 * (timeSleepUntil) when it has nothing else to do.  So a timer that becomes
 * the earliest of its P calls wakeNetPoller(), which interrupts a blocked
 * netpoll or wakes an idle P, as Go does.
 *
 * Locking: a timer's own operations take t->mu, then the P's lock; the
 * scheduler's checkTimers takes only the P's lock.  Whoever holds the P's
 * lock of t->pp may change t.  checkTimers runs callbacks with no lock held
 * and counts them in t->inflight, so that a timer (and the channel its
 * callback sends on) is freed only after the callback returned.
 *
 * Heap arrays are mapped from the OS, never malloc'd: heaps grow inside
 * gopark's unlock step and the scheduler, where gort's malloc must not be
 * re-entered.
 */
#include "sched/time.h"

#include <sched.h>
#include <string.h>

#include "gort.h"
#include "os/os.h"
#include "runtime/print.h"
#include "sched/chan.h"
#include "sched/netpoll.h"
#include "sched/runtime2.h"

/* ---- the 4-ary heap (pp->timersLock held) -------------------------------- */

static void siftupTimer(struct timer **h, int32_t i)
{
    struct timer *t = h[i];
    int64_t when = t->when;
    while (i > 0) {
        int32_t parent = (i - 1) / 4;
        if (when >= h[parent]->when)
            break;
        h[i] = h[parent];
        h[i]->idx = i;
        i = parent;
    }
    h[i] = t;
    t->idx = i;
}

static void siftdownTimer(struct timer **h, int32_t n, int32_t i)
{
    struct timer *t = h[i];
    int64_t when = t->when;
    for (;;) {
        int32_t c = 4 * i + 1;
        if (c >= n)
            break;
        int32_t best = c;
        int64_t w = h[c]->when;
        for (int32_t k = c + 1; k < c + 4 && k < n; k++) {
            if (h[k]->when < w) {
                w = h[k]->when;
                best = k;
            }
        }
        if (w >= when)
            break;
        h[i] = h[best];
        h[i]->idx = i;
        i = best;
    }
    h[i] = t;
    t->idx = i;
}

/* Restores the heap after h[i]'s when changed either way. */
static void fixTimer(struct p *pp, int32_t i)
{
    struct timer *t = pp->timers[i];
    siftupTimer(pp->timers, i);
    if (t->idx == i)
        siftdownTimer(pp->timers, pp->ntimers, i);
}

static void updateTimer0When(struct p *pp)
{
    int64_t w = pp->ntimers > 0 ? pp->timers[0]->when : 0;
    __atomic_store_n(&pp->timer0When, w, __ATOMIC_SEQ_CST);
}

static void heapRemove(struct p *pp, int32_t i)
{
    struct timer **h = pp->timers;
    int32_t last = --pp->ntimers;
    if (i != last) {
        h[i] = h[last];
        h[i]->idx = i;
        h[last] = NULL;
        fixTimer(pp, i);
    } else {
        h[last] = NULL;
    }
}

/* Locks pp's timers with room for one more.  The heap array is replaced
 * with the lock dropped, since mapping memory is slow. */
static void lockTimersWithRoom(struct p *pp)
{
    gort_lock(&pp->timersLock);
    while (pp->ntimers == pp->captimers) {
        int32_t oldcap = pp->captimers;
        int32_t ncap = oldcap > 0 ? oldcap * 2 : 512;
        gort_unlock(&pp->timersLock);
        struct timer **nh = os_alloc((size_t)ncap * sizeof *nh);
        if (nh == NULL)
            throw("out of memory growing a timer heap");
        struct timer **old = NULL;
        gort_lock(&pp->timersLock);
        if (pp->captimers == oldcap) {
            if (pp->ntimers > 0)
                memcpy(nh, pp->timers, (size_t)pp->ntimers * sizeof *nh);
            old = pp->timers;
            pp->timers = nh;
            pp->captimers = ncap;
            nh = NULL;
        }
        if (old != NULL || nh != NULL) {
            gort_unlock(&pp->timersLock);
            if (old != NULL)
                os_unmap(old, (size_t)oldcap * sizeof *old);
            if (nh != NULL)
                os_unmap(nh, (size_t)ncap * sizeof *nh);
            gort_lock(&pp->timersLock);
        }
    }
}

/* ---- timer operations ----------------------------------------------------- */

int64_t whenAfter(int64_t now, int64_t ns)
{
    int64_t when;
    if (__builtin_add_overflow(now, ns, &when))
        when = ns > 0 ? INT64_MAX : 1;
    return when > 0 ? when : 1;
}

/* The P a new timer goes to: the caller's, or P0 from a plain thread. */
static struct p *timerP(void)
{
    struct g *gp = getg();
    if (gp != NULL && gp->m != NULL && gp->m->p != NULL)
        return gp->m->p;
    if (allp == NULL || allp[0] == NULL)
        throw("timer used before the scheduler started");
    return allp[0];
}

/* With t->mu held: locks and returns the P whose heap holds t, or NULL if
 * t is not pending.  Only checkTimers can change t->pp meanwhile, and only
 * to NULL, so one recheck under the P's lock settles it. */
static struct p *lockTimerP(struct timer *t)
{
    for (;;) {
        struct p *pp = __atomic_load_n(&t->pp, __ATOMIC_ACQUIRE);
        if (pp == NULL)
            return NULL;
        gort_lock(&pp->timersLock);
        if (__atomic_load_n(&t->pp, __ATOMIC_RELAXED) == pp)
            return pp;
        gort_unlock(&pp->timersLock);
    }
}

bool deltimer(struct timer *t)
{
    gort_lock(&t->mu);
    struct p *pp = lockTimerP(t);
    if (pp != NULL) {
        heapRemove(pp, t->idx);
        t->status = timerNoStatus;
        __atomic_store_n(&t->pp, NULL, __ATOMIC_RELEASE);
        updateTimer0When(pp);
        gort_unlock(&pp->timersLock);
    }
    gort_unlock(&t->mu);
    return pp != NULL;
}

bool modtimer(struct timer *t, int64_t when, int64_t period, timerFunc f,
              void *arg, uintptr_t seq)
{
    if (when <= 0)
        when = 1;
    /* The scheduler sleeps in netpoll until the next timer: have one. */
    netpollGenericInit();

    gort_lock(&t->mu);
    struct p *pp = lockTimerP(t);
    bool pending = pp != NULL;
    if (pp == NULL) {
        pp = timerP();
        lockTimersWithRoom(pp);
    }
    int64_t old0 = pp->ntimers > 0 ? pp->timers[0]->when : 0;
    t->when = when;
    t->period = period;
    t->f = f;
    t->arg = arg;
    t->seq = seq;
    if (pending) {
        fixTimer(pp, t->idx);
    } else {
        t->status = timerWaiting;
        t->idx = pp->ntimers;
        pp->timers[pp->ntimers++] = t;
        siftupTimer(pp->timers, t->idx);
        __atomic_store_n(&t->pp, pp, __ATOMIC_RELEASE);
    }
    updateTimer0When(pp);
    bool earliest = pp->timers[0] == t && (old0 == 0 || when < old0);
    gort_unlock(&pp->timersLock);
    gort_unlock(&t->mu);
    if (earliest)
        wakeNetPoller(when);
    return pending;
}

bool resettimer(struct timer *t, int64_t when)
{
    /* f, arg, seq and period change only under t->mu; reading them here
     * races only with the caller's own concurrent modtimer. */
    gort_lock(&t->mu);
    int64_t period = t->period;
    timerFunc f = t->f;
    void *arg = t->arg;
    uintptr_t seq = t->seq;
    gort_unlock(&t->mu);
    return modtimer(t, when, period, f, arg, seq);
}

void timerWait(struct timer *t)
{
    while (__atomic_load_n(&t->inflight, __ATOMIC_ACQUIRE) != 0)
        sched_yield();
}

/* ---- the scheduler's side ------------------------------------------------- */

int64_t checkTimers(struct p *pp, int64_t now, bool *ran)
{
    int64_t next = __atomic_load_n(&pp->timer0When, __ATOMIC_ACQUIRE);
    if (next == 0)
        return 0;
    if (now == 0)
        now = nanotime();
    if (now < next)
        return next;

    gort_lock(&pp->timersLock);
    while (pp->ntimers > 0) {
        struct timer *t = pp->timers[0];
        if (t->when > now)
            break;
        timerFunc f = t->f;
        void *arg = t->arg;
        uintptr_t seq = t->seq;
        int64_t delta = now - t->when;
        if (t->period > 0) {
            /* A ticker: the next period after now; missed ones are dropped. */
            int64_t skip = 1 + delta / t->period;
            int64_t step;
            if (__builtin_mul_overflow(skip, t->period, &step) ||
                __builtin_add_overflow(t->when, step, &t->when))
                t->when = INT64_MAX;
            siftdownTimer(pp->timers, pp->ntimers, 0);
        } else {
            heapRemove(pp, 0);
            t->status = timerNoStatus;
        }
        __atomic_add_fetch(&t->inflight, 1, __ATOMIC_SEQ_CST);
        if (t->period <= 0)
            __atomic_store_n(&t->pp, NULL, __ATOMIC_RELEASE);
        updateTimer0When(pp);
        gort_unlock(&pp->timersLock);

        f(arg, seq, delta);
        /* The last touch of t: once inflight is 0 it may be freed. */
        __atomic_sub_fetch(&t->inflight, 1, __ATOMIC_RELEASE);
        if (ran != NULL)
            *ran = true;
        gort_lock(&pp->timersLock);
    }
    next = pp->ntimers > 0 ? pp->timers[0]->when : 0;
    gort_unlock(&pp->timersLock);
    return next;
}

int64_t timeSleepUntil(void)
{
    int64_t next = 0;
    if (allp == NULL)
        return 0;
    for (int32_t i = 0; i < gomaxprocs; i++) {
        struct p *pp = allp[i];
        if (pp == NULL)
            continue;
        int64_t w = __atomic_load_n(&pp->timer0When, __ATOMIC_ACQUIRE);
        if (w != 0 && (next == 0 || w < next))
            next = w;
    }
    return next;
}

/* ---- time.Sleep ----------------------------------------------------------- */

static void goroutineReady(void *arg, uintptr_t seq, int64_t delta)
{
    (void)seq;
    (void)delta;
    goready(arg);
}

/* gopark's unlock step: the timer is armed only once the G is off its
 * stack, so its goready cannot come too early. */
static bool resetForSleep(struct g *gp, void *whenp)
{
    modtimer(gp->timer, *(int64_t *)whenp, 0, goroutineReady, gp, 0);
    return true;
}

GORT_API int64_t gort_nanotime(void)
{
    return nanotime();
}

GORT_API void gort_sleep(int64_t ns)
{
    requireg("gort_sleep");
    if (ns <= 0)
        return;
    struct g *gp = getg();
    if (gp->timer == NULL) {
        struct timer *t = gort_malloc(sizeof *t);
        if (t == NULL)
            throw("out of memory allocating a sleep timer");
        memset(t, 0, sizeof *t);
        gp->timer = t;
    }
    int64_t when = whenAfter(nanotime(), ns);
    gopark(resetForSleep, &when, waitReasonSleep);
}

/* ---- time.Timer, time.Ticker, time.After, time.AfterFunc ------------------ */

struct gort_timer {
    struct timer t;
    struct hchan *c;             /* capacity 1; NULL for an AfterFunc timer */
    gort_func fn;                /* AfterFunc */
    void *fnarg;
};

/* A channel timer fired: offer the time, dropping it if the last one is
 * still unread (Go's sendTime). */
static void sendTime(void *arg, uintptr_t seq, int64_t delta)
{
    (void)seq;
    (void)delta;
    struct gort_timer *gt = arg;
    int64_t now = nanotime();
    chansend(gt->c, &now, false);
}

static void goFunc(void *arg, uintptr_t seq, int64_t delta)
{
    (void)seq;
    (void)delta;
    struct gort_timer *gt = arg;
    newproc(gt->fn, gt->fnarg);
}

/* gort_chan_free on a timer's channel: the timer goes with it. */
static void timerChanFreed(struct hchan *c, void *arg)
{
    (void)c;
    struct gort_timer *gt = arg;
    deltimer(&gt->t);
    timerWait(&gt->t);
    gort_free(gt);
}

static struct gort_timer *newChanTimer(int64_t ns, int64_t period)
{
    struct gort_timer *gt = gort_malloc(sizeof *gt);
    if (gt == NULL)
        throw("out of memory allocating a timer");
    memset(gt, 0, sizeof *gt);
    gt->c = gort_chan_make(sizeof(int64_t), 1);
    gt->c->onfree = timerChanFreed;
    gt->c->onfreearg = gt;
    modtimer(&gt->t, whenAfter(nanotime(), ns), period, sendTime, gt, 0);
    return gt;
}

GORT_API gort_timer *gort_timer_new(int64_t ns)
{
    return newChanTimer(ns, 0);
}

GORT_API gort_timer *gort_ticker_new(int64_t ns)
{
    if (ns <= 0)
        throw("non-positive interval for gort_ticker_new");
    return newChanTimer(ns, ns);
}

GORT_API gort_chan *gort_timer_chan(gort_timer *t)
{
    return t->c;
}

/* Stops the timer and, for a channel timer, discards a value sent but not
 * yet received, so that no stale time is read after Stop or Reset (Go
 * 1.23's guarantee).  Such a value counts as the timer still pending: the
 * common `if (!stop) recv` then does not block for ever. */
static bool stopTimer(struct gort_timer *gt)
{
    bool pending = deltimer(&gt->t);
    if (gt->c != NULL) {
        int64_t stale;
        timerWait(&gt->t);
        if (gort_chan_tryrecv(gt->c, &stale, NULL))
            pending = true;
    }
    return pending;
}

GORT_API bool gort_timer_stop(gort_timer *t)
{
    return stopTimer(t);
}

GORT_API bool gort_timer_reset(gort_timer *t, int64_t ns)
{
    int64_t period = t->t.period;
    if (period > 0) {
        if (ns <= 0)
            throw("non-positive interval for gort_timer_reset of a ticker");
        period = ns;
    }
    int64_t when = whenAfter(nanotime(), ns);
    if (t->c == NULL)
        return modtimer(&t->t, when, period, goFunc, t, 0);
    bool pending = stopTimer(t);
    modtimer(&t->t, when, period, sendTime, t, 0);
    return pending;
}

GORT_API void gort_timer_free(gort_timer *t)
{
    if (t->c != NULL) {
        gort_chan_free(t->c);        /* timerChanFreed frees t */
        return;
    }
    deltimer(&t->t);
    timerWait(&t->t);
    gort_free(t);
}

GORT_API gort_chan *gort_after(int64_t ns)
{
    return newChanTimer(ns, 0)->c;
}

GORT_API gort_timer *gort_after_func(int64_t ns, gort_func fn, void *arg)
{
    /* Uncollectable: fn's argument is a root for the collector. */
    struct gort_timer *gt = gort_malloc_uncollectable(sizeof *gt);
    if (gt == NULL)
        throw("out of memory allocating a timer");
    gt->fn = fn;
    gt->fnarg = arg;
    modtimer(&gt->t, whenAfter(nanotime(), ns), 0, goFunc, gt, 0);
    return gt;
}
