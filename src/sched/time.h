/*
 * time.h — runtime timers (Go's runtime/time.go): one 4-ary heap per P.
 *
 * A timer runs f(arg, seq, delta) on some M's scheduler context once its
 * `when` has passed (delta: how late it ran).  A periodic timer then moves
 * on by whole periods.  Callbacks run with no lock held but must not block:
 * they make goroutines runnable (goready), send without blocking
 * (chansend), or start goroutines (newproc).
 *
 * A zeroed struct timer is a valid stopped timer.
 */
#ifndef GORT_TIME_H
#define GORT_TIME_H

#include <stdbool.h>
#include <stdint.h>

#include "os/lock.h"

struct p;

typedef void (*timerFunc)(void *arg, uintptr_t seq, int64_t delta);

struct timer {
    /* The P whose heap holds the timer, NULL while it is not pending.
     * While non-NULL, the fields below change only under pp->timersLock. */
    struct p *pp;                /* atomic */
    int64_t when;                /* nanotime to fire at */
    int64_t period;              /* > 0: fire again every period ns */
    timerFunc f;
    void *arg;
    uintptr_t seq;               /* passed to f (netpoll: stale-timer check) */
    int32_t idx;                 /* position in pp->timers while pending */
    uint32_t status;             /* timerNoStatus or timerWaiting */
    /* Serialises the timer's own operations (add, delete, modify) with
     * each other; the heap code itself only takes the P's lock. */
    rtmutex mu;
    /* Callbacks of this timer running now (atomic); a timer may be freed
     * once it is stopped and this is 0. */
    uint32_t inflight;
};

enum {
    timerNoStatus = 0,           /* in no heap */
    timerWaiting = 1,            /* in pp's heap */
};

/* Stops t; true if it was pending (so its f will not run for this arming).
 * A callback already running is not waited for: see timerWait. */
bool deltimer(struct timer *t);
/* Sets t's when, period, f, arg and seq and makes it pending (in place if
 * it already is, else on the calling M's P).  Returns whether it was
 * pending before. */
bool modtimer(struct timer *t, int64_t when, int64_t period, timerFunc f,
              void *arg, uintptr_t seq);
/* modtimer keeping period, f, arg and seq. */
bool resettimer(struct timer *t, int64_t when);
/* Waits until no callback of t is running.  With t stopped, t may then be
 * freed. */
void timerWait(struct timer *t);

/* now + ns without overflow, and never <= 0 (0 means "no timer"). */
int64_t whenAfter(int64_t now, int64_t ns);

#endif
