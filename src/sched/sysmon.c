/*
 * sysmon.c — the monitor thread, and the scheduler trace it prints.
 *
 * sysmon is an M without a P, so it runs whatever the goroutines do.  It
 * sleeps 20 µs at a time, doubling after 1 ms with nothing to do, up to
 * 10 ms, and sleeps until woken when every P is idle.  Each tick it
 *  - retakes a P that has been in a system call for a tick while work
 *    waits for it, and hands it to another M (retake, handoffp);
 *  - flags a goroutine that has run 10 ms without yielding, which yields
 *    at its next call into gort, or at once by signal with
 *    GODEBUG=asyncpreempt=1 (preemptone);
 *  - wakes an idle P for work queued behind a goroutine that never yields;
 *  - polls the network if nobody has for 10 ms;
 *  - prints GODEBUG=schedtrace lines, in Go 1.19's format.
 */
#define _GNU_SOURCE 1
#include <pthread.h>
#include <signal.h>

#include "os/os.h"
#include "runtime/godebug.h"
#include "runtime/print.h"
#include "sched/preempt.h"
#include "sched/proc.h"
#include "trace/trace.h"
#include "gort.h"

uint32_t sysmonDelayUs;



void sysmonwake(void)
{
    __atomic_store_n(&sched.sysmonwait, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&sched.sysmonnote, 1, __ATOMIC_RELEASE);
    os_futex_wake(&sched.sysmonnote, 1);
}

static void preemptone(struct p *pp)
{
    struct m *mp = __atomic_load_n(&pp->m, __ATOMIC_ACQUIRE);
    if (!mp)
        return;
    struct g *gp = __atomic_load_n(&mp->curg, __ATOMIC_ACQUIRE);
    if (!gp || gp == mp->g0)
        return;
    __atomic_store_n(&gp->preempt, true, __ATOMIC_RELEASE);
    if (debug.asyncpreempt)
        preemptM(mp);
}

#define forcePreemptNS (10 * 1000000LL)

/* Retakes Ps blocked in system calls and flags long-running Gs.  Returns
 * how many Ps it took. */
static int retake(int64_t now)
{
    int n = 0;
    for (int32_t i = 0; i < gomaxprocs; i++) {
        struct p *pp = allp[i];
        struct sysmontick *pd = &pp->sysmontick;
        uint32_t s = __atomic_load_n(&pp->status, __ATOMIC_ACQUIRE);
        bool sysretake = false;
        /* Work queued behind a G that does not yield, while a P idles. */
        if (s == _Prunning && !runqempty(pp) &&
            __atomic_load_n(&sched.npidle, __ATOMIC_ACQUIRE) > 0 &&
            __atomic_load_n(&sched.nmspinning, __ATOMIC_ACQUIRE) == 0)
            wakep();
        if (s == _Prunning || s == _Psyscall) {
            uint32_t t = __atomic_load_n(&pp->schedtick, __ATOMIC_RELAXED);
            if (pd->schedtick != t || pd->schedwhen == 0) {
                pd->schedtick = t;
                pd->schedwhen = now;
            } else if (pd->schedwhen + forcePreemptNS <= now) {
                preemptone(pp);
                sysretake = true;
            }
        }
        if (s == _Psyscall) {
            /* The call's start, stamped by gort_syscall_enter: a P is
             * retaken one sysmon tick into the call, not after two looks
             * at it (Go's way, which spares entersyscall a clock read but
             * doubles the hand-off latency). */
            int64_t start = __atomic_load_n(&pp->syscallstart, __ATOMIC_ACQUIRE);
            if (!sysretake && now - start < sysmonTickNS)
                continue;
            /* Leave it when nothing waits for it and it is young. */
            if (runqempty(pp) &&
                __atomic_load_n(&sched.nmspinning, __ATOMIC_ACQUIRE) +
                        __atomic_load_n(&sched.npidle, __ATOMIC_ACQUIRE) > 0 &&
                start + forcePreemptNS > now)
                continue;
            uint32_t want = _Psyscall;
            if (__atomic_compare_exchange_n(&pp->status, &want, _Pidle, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
                n++;
                __atomic_store_n(&pp->syscalltick, pp->syscalltick + 1, __ATOMIC_RELAXED);
                TRACE(traceEvGoSysBlock, (uint64_t)pp->id, 0);
                handoffp(pp);
            }
        }
    }
    return n;
}

static void schedtrace(bool detailed);

void sysmon(void)
{
    /* sysmon never runs Go code; it must not count for deadlock. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    int64_t lasttrace = 0, lastheap = 0;
    uint32_t idle = 0, delay = 20;
    for (;;) {
        if (idle == 0)
            delay = 20;
        else if (idle > 50)
            delay *= 2;
        if (delay > 10000)
            delay = 10000;
        __atomic_store_n(&sysmonDelayUs, delay, __ATOMIC_RELAXED);
        int64_t sleepns = (int64_t)delay * 1000;
        /* Everything idle and nothing to trace: sleep until a P wakes. */
        if (debug.schedtrace == 0 &&
            (int32_t)__atomic_load_n(&sched.npidle, __ATOMIC_ACQUIRE) == gomaxprocs) {
            gort_lock(&sched.lock);
            if ((int32_t)__atomic_load_n(&sched.npidle, __ATOMIC_ACQUIRE) == gomaxprocs) {
                __atomic_store_n(&sched.sysmonwait, 1, __ATOMIC_RELEASE);
                sleepns = 1000 * 1000000LL;
            }
            gort_unlock(&sched.lock);
        }
        if (debug.schedtrace > 0 && sleepns > debug.schedtrace * 1000000)
            sleepns = debug.schedtrace * 1000000;
        /* A P in a system call with work queued behind it: wake exactly
         * when it becomes old enough to retake. */
        int64_t t = nanotime();
        for (int32_t i = 0; i < gomaxprocs; i++) {
            struct p *pp = allp[i];
            if (__atomic_load_n(&pp->status, __ATOMIC_ACQUIRE) == _Psyscall && !runqempty(pp)) {
                int64_t wait = __atomic_load_n(&pp->syscallstart, __ATOMIC_ACQUIRE) +
                               sysmonTickNS - t;
                if (wait < sleepns)
                    sleepns = wait > 0 ? wait : 0;
            }
        }
        if (sleepns > 0)
            os_futex_wait(&sched.sysmonnote, 0, sleepns);
        if (__atomic_exchange_n(&sched.sysmonnote, 0, __ATOMIC_ACQ_REL) != 0) {
            idle = 0;      /* woken for a reason: tick fast again */
            delay = 20;
        }
        __atomic_store_n(&sched.sysmonwait, 0, __ATOMIC_RELEASE);
        int64_t now = nanotime();
        /* Poll the network if nobody has for 10 ms. */
        int64_t lastpoll = __atomic_load_n(&sched.lastpoll, __ATOMIC_ACQUIRE);
        if (netpollinited() && lastpoll != 0 && lastpoll + 10 * 1000000LL < now &&
            __atomic_compare_exchange_n(&sched.lastpoll, &lastpoll, now, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            /* The goroutines netpoll returns are no longer counted as
             * waiting on the network but are not runnable yet: count
             * sysmon as a running M meanwhile, or an M going idle could
             * report a false deadlock. */
            gort_lock(&sched.lock);
            sched.nmidlelocked--;
            gort_unlock(&sched.lock);
            struct g *list = netpoll(0);
            if (list)
                injectglist(list);
            gort_lock(&sched.lock);
            sched.nmidlelocked++;
            checkdead();
            gort_unlock(&sched.lock);
        }
        if (retake(now))
            idle = 0;
        else
            idle++;
        if (trace_on && lastheap + 10 * 1000000LL <= now) {
            lastheap = now;
            struct gort_memstats ms;
            gort_memstats(&ms);
            TRACE(traceEvHeapAlloc, ms.heap_alloc, 0);
        }
        if (debug.schedtrace > 0 && lasttrace + debug.schedtrace * 1000000 <= now) {
            lasttrace = now;
            schedtrace(debug.scheddetail != 0);
        }
    }
}

/* ---- The scheduler trace ---------------------------------------------------- */

/* "SCHED 0ms: gomaxprocs=2 idleprocs=1 threads=4 spinningthreads=0
 * idlethreads=1 runqueue=0 [0 0]", Go 1.19's line. */
static void schedtrace(bool detailed)
{
    printbuf b = {.len = 0};
    int64_t now = nanotime();
    gort_lock(&sched.lock);
    pb_str(&b, "SCHED ");
    pb_i64(&b, (now - runtimeInitTime) / 1000000);
    pb_str(&b, "ms: gomaxprocs=");
    pb_i64(&b, gomaxprocs);
    pb_str(&b, " idleprocs=");
    pb_u64(&b, sched.npidle);
    pb_str(&b, " threads=");
    pb_i64(&b, mcount);
    pb_str(&b, " spinningthreads=");
    pb_u64(&b, sched.nmspinning);
    pb_str(&b, " idlethreads=");
    pb_i64(&b, sched.nmidle);
    pb_str(&b, " runqueue=");
    pb_i64(&b, sched.runqsize);
    if (detailed) {
        pb_str(&b, " gcwaiting=0 nmidlelocked=");
        pb_i64(&b, sched.nmidlelocked);
        pb_str(&b, " stopwait=0 sysmonwait=");
        pb_u64(&b, sched.sysmonwait);
        pb_str(&b, "\n");
        pb_flush(&b);
        for (int32_t i = 0; i < gomaxprocs; i++) {
            struct p *pp = allp[i];
            struct m *mp = pp->m;
            pb_str(&b, "  P");
            pb_i64(&b, i);
            pb_str(&b, ": status=");
            pb_u64(&b, pp->status);
            pb_str(&b, " schedtick=");
            pb_u64(&b, pp->schedtick);
            pb_str(&b, " syscalltick=");
            pb_u64(&b, pp->syscalltick);
            pb_str(&b, " m=");
            pb_i64(&b, mp ? mp->id : -1);
            pb_str(&b, " runqsize=");
            pb_u64(&b, runqsize(pp));
            pb_str(&b, " gfreecnt=");
            pb_i64(&b, pp->gFreeCount);
            pb_str(&b, " timerslen=");
            pb_i64(&b, pp->ntimers);
            pb_str(&b, "\n");
            pb_flush(&b);
        }
        for (struct m *mp = allm; mp; mp = mp->alllink) {
            struct p *pp = mp->p;
            pb_str(&b, "  M");
            pb_i64(&b, mp->id);
            pb_str(&b, ": p=");
            pb_i64(&b, pp ? pp->id : -1);
            pb_str(&b, " curg=");
            pb_i64(&b, mp->curg ? mp->curg->goid : -1);
            pb_str(&b, " mallocing=0 throwing=0 preemptoff= locks=");
            pb_i64(&b, mp->locks);
            pb_str(&b, " dying=0 spinning=");
            pb_str(&b, mp->spinning ? "true" : "false");
            pb_str(&b, " blocked=");
            pb_str(&b, mp->blocked ? "true" : "false");
            pb_str(&b, " lockedg=");
            pb_i64(&b, mp->lockedg ? mp->lockedg->goid : -1);
            pb_str(&b, "\n");
            pb_flush(&b);
        }
        gort_lock(&allglock);
        for (size_t i = 0; i < allglen; i++) {
            struct g *gp = allgs[i];
            uint32_t st = readgstatus(gp);
            struct m *mp = gp->m;
            pb_str(&b, "  G");
            pb_i64(&b, gp->goid);
            pb_str(&b, ": status=");
            pb_u64(&b, st);
            pb_str(&b, "(");
            pb_str(&b, st == _Gwaiting ? waitReasonStrings[gp->waitreason] : "");
            pb_str(&b, ") m=");
            pb_i64(&b, mp ? mp->id : -1);
            pb_str(&b, " lockedm=");
            pb_i64(&b, gp->lockedm ? gp->lockedm->id : -1);
            pb_str(&b, "\n");
            pb_flush(&b);
        }
        gort_unlock(&allglock);
        gort_unlock(&sched.lock);
        return;
    }
    for (int32_t i = 0; i < gomaxprocs; i++) {
        pb_str(&b, i == 0 ? " [" : " ");
        pb_u64(&b, runqsize(allp[i]));
    }
    pb_str(&b, "]\n");
    gort_unlock(&sched.lock);
    pb_flush(&b);
}
