/*
 * proc.c — Go's GMP scheduler for C.
 *
 * Goroutines (G) run on threads (M) that hold one of GOMAXPROCS processors
 * (P).  The design and the names are Go's (proc.go); what follows is how
 * gort arranges it and why.
 *
 * Finding work.  Each P has a 256-slot lock-free ring of runnable Gs plus a
 * runnext slot: a G readied by the running one (a channel partner, a new
 * goroutine) goes to runnext and runs next on the same P, inheriting the
 * time slice, so a producer/consumer pair ping-pongs on one P without
 * touching another thread.  An overflowing ring moves half of itself to the
 * global queue, which every P checks once per 61 schedules so nothing
 * starves.  A P with nothing to run steals half of another P's ring (the
 * victims visited in random order, four rounds, runnext only on the last),
 * then polls the network, then gives up its P and parks its M on a futex.
 *
 * Waking threads without a herd.  Making work runnable calls wakep(), which
 * starts an M only if a P is idle and no M is already spinning (looking for
 * work).  A spinning M that finds work wakes the next one (resetspinning),
 * so work fans out one thread at a time; an M that stops spinning rechecks
 * every queue after publishing itself idle, so a wake-up is never lost.
 *
 * Switching.  gogo (asm_*.S) saves callee-saved registers on the stack and
 * swaps stack pointers: a switch costs a few nanoseconds and no system call.
 * A G that blocks or yields switches straight to the next G of its P when
 * one is queued, without passing through the scheduler's own context (g0):
 * one switch instead of two.  What must happen only once the old G is off
 * its stack (releasing the lock that guards its wait, putting a yielded G
 * back on a queue, freeing a dead G) is recorded in the M (switchop) and
 * done by whoever runs next (afterswitch).  Everything that may sleep
 * (stopping the M, handing the P over) runs on g0.
 *
 * System calls.  gort_syscall_enter leaves the P in _Psyscall, still
 * attached; gort_syscall_exit takes it back with one CAS if nobody took it.
 * sysmon (a thread without a P) retakes a P that has sat in a system call
 * for a tick while work waits, and hands it to another M.  It also flags a
 * G that has run for more than 10 ms without yielding; the flag is honoured
 * at its next call into gort (preemptcheck), or by a signal with
 * GODEBUG=asyncpreempt=1 (signal.c).
 *
 * Memory.  Each P owns an mcache: a goroutine allocates from its P's cache
 * with no lock, exactly as Go does; an M without a P (in a system call,
 * idle) uses its thread's own.  Stacks come from gort's heap (stack.c), are
 * given to a G only when it first runs and go back to the P's cache when it
 * ends, so a burst of new goroutines that run one after another reuses a
 * few warm stacks.
 */
#define _GNU_SOURCE 1
#include "sched/runtime2.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "gort.h"
#include "gc/stw.h"
#include "mem/mcache.h"
#include "os/os.h"
#include "runtime/godebug.h"
#include "runtime/print.h"
#include "sched/preempt.h"
#include "sched/proc.h"
#include "trace/trace.h"
#include "sched/stack.h"

/* Valgrind must be told where goroutine stacks are, or it takes every
 * switch for a wild stack-pointer change.  Its client requests are inline
 * no-ops when the program does not run under it. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define GORT_VALGRIND 1
#endif
#endif
#ifndef GORT_VALGRIND
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#define RUNNING_ON_VALGRIND 0
#endif
/* Asked once (schedinit): the requests cost a few instructions each, on
 * every goroutine start and end. */
static bool onValgrind;

/* ThreadSanitizer must be told of every stack switch (its fibers), or it
 * takes one goroutine's frames for another's. */
#ifdef GORT_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

struct schedt sched;
struct p **allp;
int32_t gomaxprocs;
struct m *allm;
struct m m0;
struct g g0_m0;
int64_t runtimeInitTime;
__thread struct g *g_tls __attribute__((tls_model("initial-exec")));

static bool runtimeStarted;
static sigset_t initSigmask;           /* the program's mask, for new Ms */
static bool mainGoexited;              /* main called gort_goexit */
static uint32_t mainStarted;           /* atomic */
static int32_t ncpu;
/* Live goroutines: started minus ended, counted per P by its owner (no
 * locked instruction on the spawn path), plus an atomic count for those
 * started from threads without a P.  Only the sum means anything. */
static int64_t goroutineCountNoP;

static void countGoroutine(struct p *pp, int64_t delta)
{
    if (pp)
        __atomic_store_n(&pp->ngoroutine, pp->ngoroutine + delta, __ATOMIC_RELAXED);
    else
        __atomic_fetch_add(&goroutineCountNoP, delta, __ATOMIC_RELAXED);
}

static int64_t goroutineCount(void)
{
    int64_t n = __atomic_load_n(&goroutineCountNoP, __ATOMIC_RELAXED);
    for (int32_t i = 0; i < gomaxprocs; i++)
        n += __atomic_load_n(&allp[i]->ngoroutine, __ATOMIC_RELAXED);
    return n;
}
static uint64_t goidgen;               /* atomic */
int32_t mcount;                        /* Ms made, under sched.lock */

/* Every G ever made, for dumps (Gs are recycled, never freed, as in Go). */
rtmutex allglock;
struct g **allgs;
size_t allglen;
static size_t allgcap;

const char *const waitReasonStrings[waitReasonCount] = {
    [waitReasonZero] = "",
    [waitReasonChanReceiveNilChan] = "chan receive (nil chan)",
    [waitReasonChanSendNilChan] = "chan send (nil chan)",
    [waitReasonSelectNoCases] = "select (no cases)",
    [waitReasonSelect] = "select",
    [waitReasonChanReceive] = "chan receive",
    [waitReasonChanSend] = "chan send",
    [waitReasonSleep] = "sleep",
    [waitReasonIOWait] = "IO wait",
    [waitReasonSemacquire] = "semacquire",
    [waitReasonSyncCondWait] = "sync.Cond.Wait",
    [waitReasonSyncMutexLock] = "sync.Mutex.Lock",
    [waitReasonSyncRWMutexRLock] = "sync.RWMutex.RLock",
    [waitReasonSyncRWMutexLock] = "sync.RWMutex.Lock",
    [waitReasonTimerGoroutineIdle] = "timer goroutine (idle)",
    [waitReasonPreempted] = "preempted",
    [waitReasonLockOSThread] = "locked to thread",
};

/* What the next context does with the G a switch left (m->switchop). */
enum {
    switchNone,
    switchPark,          /* run waitunlockf; undo the park if it says so */
    switchDead,          /* put the dead G on the free list */
    switchYieldLocal,    /* runnable again: back of this P's queue */
    switchYieldGlobal,   /* runnable again: global queue (preempted) */
    switchExitSyscall,   /* g0 only: find a P for the G or queue it */
};

static void runtime_main(void *arg);
static void schedule(void);
static void execute(struct g *gp, bool inheritTime);
static void stopm(void);
static void startm(struct p *pp, bool spinning);
void handoffp(struct p *pp);
static void newm(void (*fn)(void), struct p *pp, bool spinning);

#if !defined(__x86_64__)
__attribute__((noinline)) struct g *getg_slow(void)
{
    __asm__ volatile("" ::: "memory");
    return g_tls;
}
#endif

/* Like getg, setg must not reuse a thread-local address computed before a
 * switch. */
static inline void setg(struct g *gp)
{
#if defined(__x86_64__)
    __asm__ volatile("movq g_tls@gottpoff(%%rip), %%rax\n\tmovq %0, %%fs:(%%rax)"
                     : : "r"(gp) : "rax", "memory");
#else
    __asm__ volatile("" ::: "memory");
    g_tls = gp;
    __asm__ volatile("" ::: "memory");
#endif
}

int64_t nanotime(void)
{
    return (int64_t)os_nanotime();
}

/* ---- Random numbers (wyrand, per thread) -------------------------------- */

static __thread uint64_t fastrand_state;

uint32_t fastrand(void)
{
    uint64_t s = fastrand_state;
    if (__builtin_expect(s == 0, 0))
        s = (uint64_t)os_nanotime() ^ ((uint64_t)(uintptr_t)&fastrand_state << 16) ^ 1;
    s += 0xa0761d6478bd642fULL;
    fastrand_state = s;
    __uint128_t t = (__uint128_t)s * (s ^ 0xe7037ed1a0b428dbULL);
    return (uint32_t)((uint64_t)(t >> 64) ^ (uint64_t)t);
}

/* ---- Notes: one-shot futex events for parking Ms ------------------------- */

static void *notesleep_blocked(void *n)
{
    while (__atomic_load_n((uint32_t *)n, __ATOMIC_ACQUIRE) == 0)
        os_futex_wait(n, 0, -1);
    return NULL;
}

/* A sleeping M is stopped already as far as the collector cares. */
static void notesleep(uint32_t *n)
{
    gc_do_blocking(notesleep_blocked, n);
}

static void notewakeup(uint32_t *n)
{
    __atomic_store_n(n, 1, __ATOMIC_RELEASE);
    os_futex_wake(n, 1);
}

static void noteclear(uint32_t *n)
{
    __atomic_store_n(n, 0, __ATOMIC_RELAXED);
}

/* ---- G status ------------------------------------------------------------ */

uint32_t readgstatus(struct g *gp)
{
    return __atomic_load_n(&gp->atomicstatus, __ATOMIC_ACQUIRE);
}

/* Every transition has one owner (the G's own M, the M that dequeued it,
 * or the single waker the wait protocol picked), so a checked store does
 * what Go's CAS does, without a locked instruction on each switch. */
__attribute__((noreturn, cold, noinline)) static void badgstatus(struct g *gp, uint32_t cur,
                                                                  uint32_t oldval)
{
    printbuf b = {.len = 0};
    pb_str(&b, "gort: casgstatus: goroutine ");
    pb_u64(&b, (uint64_t)gp->goid);
    pb_str(&b, " has status ");
    pb_u64(&b, cur);
    pb_str(&b, ", expected ");
    pb_u64(&b, oldval);
    pb_str(&b, "\n");
    pb_flush(&b);
    throw("casgstatus: bad incoming values");
}

static inline void casgstatus(struct g *gp, uint32_t oldval, uint32_t newval)
{
    uint32_t cur = __atomic_load_n(&gp->atomicstatus, __ATOMIC_ACQUIRE);
    if (__builtin_expect(cur != oldval, 0))
        badgstatus(gp, cur, oldval);
    __atomic_store_n(&gp->atomicstatus, newval, __ATOMIC_RELEASE);
}

void requireg_failed(const char *fn)
{
    printbuf b = {.len = 0};
    pb_str(&b, "gort: fatal error: ");
    pb_str(&b, fn);
    pb_str(&b, ": not called from a goroutine (start the runtime with gort_main)\n");
    pb_flush(&b);
    abort();
}

/* ---- mcache hand-over ----------------------------------------------------- */

/* The M takes pp's mcache for its thread; its own waits in m->threadcache. */
static void mcache_attach(struct m *mp, struct p *pp)
{
    mp->threadcache = tls_mcache;
    tls_mcache = pp->mcache;
}

static void mcache_detach(struct m *mp)
{
    tls_mcache = mp->threadcache;
}

static void acquirep(struct p *pp)
{
    struct m *mp = getg()->m;
    if (mp->p || pp->m)
        throw("acquirep: invalid p state");
    mp->p = pp;
    __atomic_store_n(&pp->m, mp, __ATOMIC_RELAXED);
    __atomic_store_n(&pp->status, _Prunning, __ATOMIC_RELEASE);
    mcache_attach(mp, pp);
    TRACE(traceEvProcStart, (uint64_t)pp->id, (uint64_t)mp->id);
}

static struct p *releasep(void)
{
    struct m *mp = getg()->m;
    struct p *pp = mp->p;
    if (!pp || pp->m != mp)
        throw("releasep: invalid p state");
    TRACE(traceEvProcStop, (uint64_t)pp->id, (uint64_t)mp->id);
    mcache_detach(mp);
    mp->p = NULL;
    __atomic_store_n(&pp->m, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&pp->status, _Pidle, __ATOMIC_RELEASE);
    return pp;
}

/* ---- Run queues ------------------------------------------------------------ */

static inline struct g *slot_load(struct p *pp, uint32_t i)
{
    return __atomic_load_n(&pp->runq[i % RUNQ_SIZE], __ATOMIC_RELAXED);
}

static inline void slot_store(struct p *pp, uint32_t i, struct g *gp)
{
    __atomic_store_n(&pp->runq[i % RUNQ_SIZE], gp, __ATOMIC_RELAXED);
}

bool runqempty(struct p *pp)
{
    /* runnext is read between two consistent looks at head and tail, as a
     * G can move from runnext to the ring meanwhile. */
    for (;;) {
        uint32_t head = __atomic_load_n(&pp->runqhead, __ATOMIC_ACQUIRE);
        uint32_t tail = __atomic_load_n(&pp->runqtail, __ATOMIC_ACQUIRE);
        struct g *next = __atomic_load_n(&pp->runnext, __ATOMIC_ACQUIRE);
        if (tail == __atomic_load_n(&pp->runqtail, __ATOMIC_ACQUIRE))
            return head == tail && next == NULL;
    }
}

uint32_t runqsize(struct p *pp)
{
    uint32_t head = __atomic_load_n(&pp->runqhead, __ATOMIC_ACQUIRE);
    uint32_t tail = __atomic_load_n(&pp->runqtail, __ATOMIC_ACQUIRE);
    uint32_t n = tail - head;
    return n > RUNQ_SIZE ? 0 : n;
}

/* sched.lock held. */
static void globrunqput(struct g *gp)
{
    gp->schedlink = NULL;
    if (sched.runq.tail)
        sched.runq.tail->schedlink = gp;
    else
        sched.runq.head = gp;
    sched.runq.tail = gp;
    __atomic_store_n(&sched.runqsize, sched.runqsize + 1, __ATOMIC_RELAXED);
}

/* Moves half of pp's full ring and gp to the global queue. */
static bool runqputslow(struct p *pp, struct g *gp, uint32_t head, uint32_t tail)
{
    struct g *batch[RUNQ_SIZE / 2 + 1];
    uint32_t n = (tail - head) / 2;
    if (n != RUNQ_SIZE / 2)
        throw("runqputslow: queue is not full");
    for (uint32_t i = 0; i < n; i++)
        batch[i] = slot_load(pp, head + i);
    if (!__atomic_compare_exchange_n(&pp->runqhead, &head, head + n, 0,
                                     __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        return false;
    batch[n] = gp;
    for (uint32_t i = 0; i < n; i++)
        batch[i]->schedlink = batch[i + 1];
    gort_lock(&sched.lock);
    for (uint32_t i = 0; i <= n; i++)
        globrunqput(batch[i]);
    gort_unlock(&sched.lock);
    return true;
}

/* Puts gp on pp's queue (next: in runnext, bumping the old one to the
 * ring).  Only pp's owner calls this. */
/* With one P nobody steals: the owner's queue operations need no locked
 * instructions (the P itself changes hands only through locks and
 * release/acquire pairs).  Set once by procresize. */
static bool singleP;

static inline void runqput(struct p *pp, struct g *gp, bool next)
{
    if (next) {
        /* Thieves only ever change runnext from a G to NULL, so an empty
         * slot (the usual case: a hand-off between two goroutines) is
         * filled with a plain store; a full one is swapped atomically. */
        struct g *old = __atomic_load_n(&pp->runnext, __ATOMIC_RELAXED);
        if (old == NULL || singleP)
            __atomic_store_n(&pp->runnext, gp, __ATOMIC_RELEASE);
        else
            old = __atomic_exchange_n(&pp->runnext, gp, __ATOMIC_ACQ_REL);
        if (!old)
            return;
        gp = old;
    }
    for (;;) {
        uint32_t head = __atomic_load_n(&pp->runqhead, __ATOMIC_ACQUIRE);
        uint32_t tail = pp->runqtail;
        if (tail - head < RUNQ_SIZE) {
            slot_store(pp, tail, gp);
            __atomic_store_n(&pp->runqtail, tail + 1, __ATOMIC_RELEASE);
            return;
        }
        if (runqputslow(pp, gp, head, tail))
            return;
    }
}

/* Takes a G from pp's queue; *inheritTime: it came from runnext. */
static inline struct g *runqget(struct p *pp, bool *inheritTime)
{
    struct g *next = __atomic_load_n(&pp->runnext, __ATOMIC_ACQUIRE);
    if (next && singleP) {
        __atomic_store_n(&pp->runnext, NULL, __ATOMIC_RELAXED);
        *inheritTime = true;
        return next;
    }
    if (next && __atomic_compare_exchange_n(&pp->runnext, &next, NULL, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        *inheritTime = true;
        return next;
    }
    *inheritTime = false;
    for (;;) {
        uint32_t head = __atomic_load_n(&pp->runqhead, __ATOMIC_ACQUIRE);
        uint32_t tail = pp->runqtail;
        if (tail == head)
            return NULL;
        struct g *gp = slot_load(pp, head);
        if (singleP) {
            __atomic_store_n(&pp->runqhead, head + 1, __ATOMIC_RELEASE);
            return gp;
        }
        if (__atomic_compare_exchange_n(&pp->runqhead, &head, head + 1, 0,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            return gp;
    }
}

/* Grabs half of pp's Gs into batch (a ring of RUNQ_SIZE starting at
 * batchHead); runnext too when stealRunNext.  Returns how many. */
static uint32_t runqgrab(struct p *pp, struct g **batch, uint32_t batchHead, bool stealRunNext)
{
    for (;;) {
        uint32_t head = __atomic_load_n(&pp->runqhead, __ATOMIC_ACQUIRE);
        uint32_t tail = __atomic_load_n(&pp->runqtail, __ATOMIC_ACQUIRE);
        uint32_t n = tail - head;
        n = n - n / 2;
        if (n == 0) {
            if (stealRunNext) {
                struct g *next = __atomic_load_n(&pp->runnext, __ATOMIC_ACQUIRE);
                if (next) {
                    /* pp's owner is probably about to run it: give it a
                     * moment, or producer/consumer pairs would bounce
                     * between Ps.  50 µs, not Go's 3: gort's Ms run with a
                     * 1 ns timer slack (for accurate timers), so a 3 µs
                     * sleep really is 3 µs, where Go's lasts the default
                     * 50 µs slack.  With 3 µs a buffered channel on two Ps
                     * took 80-100 ns an operation instead of 50-56. */
                    if (__atomic_load_n(&pp->status, __ATOMIC_ACQUIRE) == _Prunning)
                        usleep(50);
                    if (!__atomic_compare_exchange_n(&pp->runnext, &next, NULL, 0,
                                                     __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                        continue;
                    __atomic_store_n(&batch[batchHead % RUNQ_SIZE], next, __ATOMIC_RELAXED);
                    return 1;
                }
            }
            return 0;
        }
        if (n > RUNQ_SIZE / 2)
            continue;   /* read an inconsistent head and tail */
        for (uint32_t i = 0; i < n; i++)
            __atomic_store_n(&batch[(batchHead + i) % RUNQ_SIZE], slot_load(pp, head + i),
                             __ATOMIC_RELAXED);
        if (__atomic_compare_exchange_n(&pp->runqhead, &head, head + n, 0,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            return n;
    }
}

/* Steals half of p2's Gs into pp's ring and returns one of them. */
static struct g *runqsteal(struct p *pp, struct p *p2, bool stealRunNext)
{
    uint32_t tail = pp->runqtail;
    uint32_t n = runqgrab(p2, pp->runq, tail, stealRunNext);
    if (n == 0)
        return NULL;
    TRACE(traceEvSteal, (uint64_t)p2->id, n);
    n--;
    struct g *gp = slot_load(pp, tail + n);
    if (n == 0)
        return gp;
    uint32_t head = __atomic_load_n(&pp->runqhead, __ATOMIC_ACQUIRE);
    if (tail - head + n >= RUNQ_SIZE)
        throw("runqsteal: runq overflow");
    __atomic_store_n(&pp->runqtail, tail + n, __ATOMIC_RELEASE);
    return gp;
}

/* Takes a batch from the global queue (sched.lock held): returns one G and
 * puts up to max-1 more on pp's ring. */
static struct g *globrunqget(struct p *pp, int32_t max)
{
    if (sched.runqsize == 0)
        return NULL;
    int32_t n = sched.runqsize / gomaxprocs + 1;
    if (n > sched.runqsize)
        n = sched.runqsize;
    if (max > 0 && n > max)
        n = max;
    if (n > RUNQ_SIZE / 2)
        n = RUNQ_SIZE / 2;
    __atomic_store_n(&sched.runqsize, sched.runqsize - n, __ATOMIC_RELAXED);
    struct g *gp = sched.runq.head;
    sched.runq.head = gp->schedlink;
    n--;
    for (; n > 0; n--) {
        struct g *g1 = sched.runq.head;
        sched.runq.head = g1->schedlink;
        runqput(pp, g1, false);
    }
    if (!sched.runq.head)
        sched.runq.tail = NULL;
    return gp;
}

/* ---- Idle Ps and Ms (sched.lock held) ------------------------------------- */


static void pidleput(struct p *pp)
{
    if (!runqempty(pp))
        throw("pidleput: P has non-empty run queue");
    __atomic_store_n(&pp->status, _Pidle, __ATOMIC_RELEASE);
    pp->link = sched.pidle;
    sched.pidle = pp;
    __atomic_fetch_add(&sched.npidle, 1, __ATOMIC_ACQ_REL);
}

static struct p *pidleget(void)
{
    struct p *pp = sched.pidle;
    if (pp) {
        sched.pidle = pp->link;
        __atomic_fetch_sub(&sched.npidle, 1, __ATOMIC_ACQ_REL);
        if (__atomic_load_n(&sched.sysmonwait, __ATOMIC_ACQUIRE))
            sysmonwake();
    }
    return pp;
}

static void mput(struct m *mp)
{
    mp->schedlink = sched.midle;
    sched.midle = mp;
    sched.nmidle++;
    checkdead();
}

static struct m *mget(void)
{
    struct m *mp = sched.midle;
    if (mp) {
        sched.midle = mp->schedlink;
        sched.nmidle--;
    }
    return mp;
}

/* ---- Waking Ps ----------------------------------------------------------- */

/* Whoever queues work and then calls wakep needs a full barrier between
 * the two, against a spinning M that gives up (findrunnable): either the
 * queuer sees it spinning, or it sees the work.  runnext exchanges and
 * sched.lock's release are locked instructions; a plain ring store is
 * followed by runq_fence().  The one exception is a G stored in an empty
 * runnext (goready's hand-off, every channel wake-up): there the barrier
 * would cost a third of the hand-off, and the G is due to run next on its
 * own P anyway.  If an M going idle misses it, sysmon's next tick wakes a
 * P for it (work queued behind a running G). */
static inline void runq_fence(void)
{
    if (!singleP)
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void wakep_slow(void)
{
    uint32_t zero = 0;
    if (__atomic_load_n(&sched.nmspinning, __ATOMIC_ACQUIRE) != 0 ||
        !__atomic_compare_exchange_n(&sched.nmspinning, &zero, 1, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return;
    startm(NULL, true);
}

/* Runs pp (or an idle P) on an idle or new M. */
static void startm(struct p *pp, bool spinning)
{
    gort_lock(&sched.lock);
    if (!pp) {
        pp = pidleget();
        if (!pp) {
            gort_unlock(&sched.lock);
            if (spinning)
                __atomic_fetch_sub(&sched.nmspinning, 1, __ATOMIC_ACQ_REL);
            return;
        }
    }
    struct m *nmp = mget();
    gort_unlock(&sched.lock);
    if (!nmp) {
        newm(NULL, pp, spinning);
        return;
    }
    if (nmp->p || nmp->spinning)
        throw("startm: m has p or is spinning");
    nmp->spinning = spinning;
    nmp->nextp = pp;
    notewakeup(&nmp->park);
}

/* A P whose M is gone (system call, lock) finds a new M if there is work
 * for it; else it goes idle. */
void handoffp(struct p *pp)
{
    if (!runqempty(pp) || __atomic_load_n(&sched.runqsize, __ATOMIC_RELAXED) != 0) {
        startm(pp, false);
        return;
    }
    uint32_t zero = 0;
    if (__atomic_load_n(&sched.nmspinning, __ATOMIC_ACQUIRE) +
            __atomic_load_n(&sched.npidle, __ATOMIC_ACQUIRE) == 0 &&
        __atomic_compare_exchange_n(&sched.nmspinning, &zero, 1, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        startm(pp, true);
        return;
    }
    gort_lock(&sched.lock);
    if (sched.runqsize != 0) {
        gort_unlock(&sched.lock);
        startm(pp, false);
        return;
    }
    /* The last P going idle while someone waits on the network: an M must
     * poll it. */
    if ((int32_t)__atomic_load_n(&sched.npidle, __ATOMIC_ACQUIRE) == gomaxprocs - 1 &&
        __atomic_load_n(&sched.lastpoll, __ATOMIC_ACQUIRE) != 0 &&
        __atomic_load_n(&netpollWaiters, __ATOMIC_ACQUIRE) > 0) {
        gort_unlock(&sched.lock);
        startm(pp, false);
        return;
    }
    int64_t when = __atomic_load_n(&pp->timer0When, __ATOMIC_ACQUIRE);
    pidleput(pp);
    gort_unlock(&sched.lock);
    if (when != 0)
        wakeNetPoller(when);
}

static void resetspinning(void)
{
    struct m *mp = getg()->m;
    mp->spinning = false;
    if (__atomic_sub_fetch(&sched.nmspinning, 1, __ATOMIC_ACQ_REL) == 0)
        wakep();
}

/* ---- G records ------------------------------------------------------------ */

static struct g *malg(void)
{
    /* Uncollectable (zeroed): a G's argument is a root for the collector. */
    struct g *gp = gort_malloc_uncollectable(sizeof *gp);
    if (!gp)
        throw("out of memory allocating a goroutine");
    gp->atomicstatus = _Gdead;
#ifdef GORT_TSAN
    gp->tsanFiber = __tsan_create_fiber(0);
#endif
    gort_lock(&allglock);
    if (allglen == allgcap) {
        size_t cap = allgcap ? allgcap * 2 : 1024;
        struct g **n = gort_realloc(allgs, cap * sizeof *n);
        if (!n)
            throw("out of memory growing allgs");
        allgs = n;
        allgcap = cap;
    }
    allgs[allglen++] = gp;
    gort_unlock(&allglock);
    return gp;
}

#define GFREE_LOCAL_MAX 64

/* Dead Gs are kept for reuse (like Go, gort never frees a G record); their
 * stacks are not. */
static void gfput(struct p *pp, struct g *gp)
{
    /* The stack goes back to the P's cache now, warm, for the next G that
     * starts.  A G made by newproc may wait long before it runs, and a
     * stack taken with it at creation would be cold by then (skynet ran
     * 1.5x faster, and its peak RSS fell 3.5x, when stacks stopped
     * travelling with dead Gs). */
    if (gp->stack.lo) {
        if (onValgrind)
            VALGRIND_STACK_DEREGISTER(gp->stackid);
        stackfree(pp, gp->stack);
        gp->stack.lo = gp->stack.hi = 0;
    }
    gp->schedlink = pp->gFree;
    pp->gFree = gp;
    if (++pp->gFreeCount < GFREE_LOCAL_MAX)
        return;
    gort_lock(&sched.gFreeLock);
    while (pp->gFreeCount >= GFREE_LOCAL_MAX / 2) {
        struct g *g1 = pp->gFree;
        pp->gFree = g1->schedlink;
        pp->gFreeCount--;
        g1->schedlink = sched.gFree;
        sched.gFree = g1;
        __atomic_store_n(&sched.gFreeCount, sched.gFreeCount + 1, __ATOMIC_RELAXED);
    }
    gort_unlock(&sched.gFreeLock);
}

static struct g *gfget(struct p *pp)
{
    if (!pp->gFree && __atomic_load_n(&sched.gFreeCount, __ATOMIC_RELAXED) > 0) {
        gort_lock(&sched.gFreeLock);
        while (pp->gFreeCount < GFREE_LOCAL_MAX / 2 && sched.gFree) {
            struct g *g1 = sched.gFree;
            sched.gFree = g1->schedlink;
            __atomic_store_n(&sched.gFreeCount, sched.gFreeCount - 1, __ATOMIC_RELAXED);
            g1->schedlink = pp->gFree;
            pp->gFree = g1;
            pp->gFreeCount++;
        }
        gort_unlock(&sched.gFreeLock);
    }
    struct g *gp = pp->gFree;
    if (gp) {
        pp->gFree = gp->schedlink;
        pp->gFreeCount--;
    }
    return gp;
}

static int64_t newgoid(struct p *pp)
{
    if (!pp) 
        return (int64_t)__atomic_add_fetch(&goidgen, 1, __ATOMIC_RELAXED);
    if (pp->goidcache == pp->goidcacheend) {
        /* Batches of 16 keep the shared counter off the spawn path. */
        pp->goidcache = __atomic_fetch_add(&goidgen, 16, __ATOMIC_RELAXED) + 1;
        pp->goidcacheend = pp->goidcache + 16;
    }
    return (int64_t)pp->goidcache++;
}

void newproc(void (*fn)(void *), void *arg)
{
    if (!runtimeStarted)
        throw("gort_go: the runtime is not running (start it with gort_main)");
    struct g *cur = getg();
    struct p *pp = cur && cur->m ? cur->m->p : NULL;
    struct g *newg = pp ? gfget(pp) : NULL;
    if (!newg)
        newg = malg();
    newg->fn = fn;
    newg->arg = arg;
    newg->goid = newgoid(pp);
    newg->sched.sp = NULL;          /* start from gostartframe */
    __atomic_store_n(&newg->preempt, false, __ATOMIC_RELAXED);
    newg->lockedm = NULL;
    newg->waitreason = waitReasonZero;
    newg->param = NULL;
    newg->waiting = NULL;
    newg->selectDone = 0;
    casgstatus(newg, _Gdead, _Grunnable);
    countGoroutine(pp, 1);
    TRACE(traceEvGoCreate, (uint64_t)newg->goid,
          (uint64_t)(cur && cur->m && cur != cur->m->g0 ? cur->goid : 0));
    if (pp) {
        runqput(pp, newg, true);
    } else {
        gort_lock(&sched.lock);
        globrunqput(newg);
        gort_unlock(&sched.lock);
    }
    if (__atomic_load_n(&mainStarted, __ATOMIC_ACQUIRE))
        wakep();
}

/* ---- Switching ------------------------------------------------------------- */

extern void gogo(struct gobuf *from, struct gobuf *to);

/* afterswitch's less common cases, out of line so that the park and the
 * yield (every channel wait, every Gosched) run without a stack frame. */
static __attribute__((noinline)) void afterswitch_other(struct m *mp, struct g *gp, int op)
{
    switch (op) {
    case switchDead:
        gfput(mp->p, gp);
        break;
    case switchYieldGlobal:
        gort_lock(&sched.lock);
        globrunqput(gp);
        gort_unlock(&sched.lock);
        wakep();
        break;
    }
}

/* Runs in the context a switch lands in, before anything else there. */
static inline void afterswitch(void)
{
    struct m *mp = getg()->m;
    int op = mp->switchop;
    if (op == switchNone || op == switchExitSyscall)
        return;
    struct g *gp = mp->switchg;
    mp->switchop = switchNone;
    mp->switchg = NULL;
    if (op == switchPark) {
        bool (*f)(struct g *, void *) = mp->waitunlockf;
        void *lock = mp->waitlock;
        mp->waitunlockf = NULL;
        mp->waitlock = NULL;
        if (f && !f(gp, lock)) {
            casgstatus(gp, _Gwaiting, _Grunnable);
            runqput(mp->p, gp, true);
        }
    } else if (op == switchYieldLocal) {
        runqput(mp->p, gp, false);
        runq_fence();
        wakep();   /* an idle P may take it if the next G runs long */
    } else {
        afterswitch_other(mp, gp, op);
    }
}

/* Called by gostart on a new goroutine's stack. */
__attribute__((noreturn, used)) void goroutine_start(void);
__attribute__((noreturn, used)) void goroutine_start(void)
{
    afterswitch();
    struct g *gp = getg();
    gp->fn(gp->arg);
    gort_goexit();
}

/* Leaves cur for gp.  Returns when cur is switched to again; the caller
 * then runs afterswitch() for whoever switched to it.  Keeping that out of
 * here lets leave() end in a tail call: no frame, no registers saved twice. */
static inline void switchto(struct g *cur, struct g *gp)
{
#ifdef GORT_TSAN
    __tsan_switch_to_fiber(gp->tsanFiber, 0);
#endif
    setg(gp);
    gogo(&cur->sched, &gp->sched);
}

/* A G's first run: its stack (from the P's cache) and its first frame. */
static __attribute__((noinline)) void prepare_first_run(struct m *mp, struct g *gp)
{
    if (!gp->stack.lo) {
        gp->stack = stackalloc(mp->p);
        if (onValgrind)
            gp->stackid = VALGRIND_STACK_REGISTER(gp->stack.lo, gp->stack.hi);
    }
    gostartframe(gp);
}

/* gp (runnable) becomes the running G of mp and its P. */
static inline void make_running(struct m *mp, struct g *gp, bool inheritTime)
{
    __atomic_store_n(&mp->curg, gp, __ATOMIC_RELAXED);
    gp->m = mp;
    casgstatus(gp, _Grunnable, _Grunning);
    if (!inheritTime)
        __atomic_store_n(&mp->p->schedtick, mp->p->schedtick + 1, __ATOMIC_RELAXED);
}

/* Makes gp (runnable) the running G of the current M and P, ready to
 * switch to: traced, and given a stack and first frame if new. */
static inline void prepare(struct m *mp, struct g *gp, bool inheritTime)
{
    make_running(mp, gp, inheritTime);
    TRACE(traceEvGoStart, (uint64_t)gp->goid, (uint64_t)mp->p->id);
    if (__builtin_expect(!gp->sched.sp, 0))
        prepare_first_run(mp, gp);
}

/* On g0: run gp. Returns when g0 is switched to again. */
static void execute(struct g *gp, bool inheritTime)
{
    struct m *mp = getg()->m;
    prepare(mp, gp, inheritTime);
    switchto(mp->g0, gp);
    afterswitch();
}

/* The G that mp switches to when its G leaves: the head of its P's queue
 * (runnext first), or NULL to go through the scheduler on g0, which it must
 * when the M is locked to a G, every 61st tick (the global queue's turn)
 * or when timers are pending.  A G locked to another M is left for
 * schedule() to hand over. */
static inline gpick nextg_pick(struct m *mp)
{
    struct p *pp = mp->p;
    gpick next = {NULL, false};
    if (__builtin_expect(!mp->lockedg && pp->schedtick % 61 != 0 &&
                         __atomic_load_n(&pp->timer0When, __ATOMIC_RELAXED) == 0, 1)) {
        next.g = runqget(pp, &next.inherit);
        if (__builtin_expect(next.g && next.g->lockedm, 0)) {
            mp->nextg = next.g;    /* schedule() hands it to its M */
            next.g = NULL;
        }
    }
    return next;
}

/* leave_to's less common cases: a G's first run, tracing, or no G to go
 * to (then g0). */
static __attribute__((noinline)) void leave_to_slow(struct g *gp, struct m *mp, gpick next)
{
    if (next.g) {
        prepare(mp, next.g, next.inherit);   /* sets m->curg */
        switchto(gp, next.g);
    } else {
        __atomic_store_n(&mp->curg, NULL, __ATOMIC_RELAXED);
        switchto(gp, mp->g0);
    }
}

/* The running G (already moved out of _Grunning, with m->switchop set)
 * leaves its M for next: straight to that G, else to g0.  The caller runs
 * afterswitch() once gp runs again.  The usual case (a G that has run
 * before, no tracing) makes no call but tail calls, so it saves no
 * registers of its own. */
static void leave_to(struct g *gp, gpick next)
{
    /* Check the canary before anything else: preparing the next G may
     * write its first frame just below an overflowed stack. */
    stackcheck(gp);
    struct m *mp = gp->m;
    gp->m = NULL;
    struct g *ng = next.g;
    if (__builtin_expect(ng == NULL || ng->sched.sp == NULL ||
                         __atomic_load_n(&trace_on, __ATOMIC_RELAXED), 0)) {
        leave_to_slow(gp, mp, next);
        return;
    }
    make_running(mp, ng, next.inherit);   /* prepare's other work is not needed */
    switchto(gp, ng);
}

static void leave(struct g *gp)
{
    leave_to(gp, nextg_pick(gp->m));
}

gpick gopark_pick(void)
{
    return nextg_pick(getg()->m);
}

void gopark_picked(gpick next, bool (*unlockf)(struct g *gp, void *lock), void *lock,
                   uint8_t reason)
{
    struct g *gp = getg();
    struct m *mp = gp->m;
    if (mp->locks)
        throw("gopark: holding runtime locks");
    mp->waitunlockf = unlockf;
    mp->waitlock = lock;
    mp->switchg = gp;
    mp->switchop = switchPark;
    gp->waitreason = reason;
    casgstatus(gp, _Grunning, _Gwaiting);
    TRACE(traceEvGoBlock, (uint64_t)gp->goid, reason);
    leave_to(gp, next);
    afterswitch();
}

void gopark(bool (*unlockf)(struct g *gp, void *lock), void *lock, uint8_t reason)
{
    gopark_picked(gopark_pick(), unlockf, lock, reason);
}

static bool parkunlock(struct g *gp, void *lock)
{
    (void)gp;
    gort_unlock(lock);
    return true;
}

void goparkunlock(rtmutex *lock, uint8_t reason)
{
    gopark(parkunlock, lock, reason);
}

void goready(struct g *gp)
{
    casgstatus(gp, _Gwaiting, _Grunnable);
    struct g *cur = getg();
    TRACE(traceEvGoUnblock, (uint64_t)gp->goid,
          (uint64_t)(cur && cur->m && cur != cur->m->g0 ? cur->goid : 0));
    struct p *pp = cur && cur->m ? cur->m->p : NULL;
    if (pp) {
        runqput(pp, gp, true);
    } else {
        gort_lock(&sched.lock);
        globrunqput(gp);
        gort_unlock(&sched.lock);
    }
    wakep();
}

void injectglist(struct g *list)
{
    if (!list)
        return;
    int n = 0;
    for (struct g *gp = list; gp; gp = gp->schedlink) {
        casgstatus(gp, _Gwaiting, _Grunnable);
        TRACE(traceEvGoUnblock, (uint64_t)gp->goid, 0);
        n++;
    }
    struct g *cur = getg();
    struct p *pp = cur && cur->m ? cur->m->p : NULL;
    if (!pp) {
        gort_lock(&sched.lock);
        while (list) {
            struct g *next = list->schedlink;
            globrunqput(list);
            list = next;
        }
        gort_unlock(&sched.lock);
        for (int npidle = (int)__atomic_load_n(&sched.npidle, __ATOMIC_ACQUIRE);
             n > 0 && npidle > 0; n--, npidle--)
            startm(NULL, false);
        return;
    }
    while (list) {
        struct g *next = list->schedlink;
        runqput(pp, list, false);
        list = next;
    }
    runq_fence();
    wakep();
}

static void yield_to(int op)
{
    struct g *gp = getg();
    struct m *mp = gp->m;
    /* The next G first, as a park takes it (gopark_pick); only when there
     * is none here is it worth asking whether the yield can be skipped:
     * nothing queued here or globally, no timer due, no G handed to this
     * M (thieves only ever empty the queue further). */
    gpick next = nextg_pick(mp);
    if (next.g == NULL && op == switchYieldLocal && mp->nextg == NULL) {
        struct p *pp = mp->p;
        if (__atomic_load_n(&pp->runnext, __ATOMIC_RELAXED) == NULL &&
            __atomic_load_n(&pp->runqhead, __ATOMIC_RELAXED) == pp->runqtail &&
            __atomic_load_n(&sched.runqsize, __ATOMIC_RELAXED) == 0 &&
            __atomic_load_n(&pp->timer0When, __ATOMIC_RELAXED) == 0)
            return;   /* nothing else to run here */
    }
    mp->switchg = gp;
    mp->switchop = op;
    casgstatus(gp, _Grunning, _Grunnable);
    leave_to(gp, next);
    afterswitch();
}

void goyield(void)
{
    yield_to(switchYieldLocal);
}

void goschedIfPreempted(void)
{
    struct g *gp = getg();
    /* Not inside gort_syscall_enter/exit (no P, status _Gsyscall): the
     * flag stays set and gort_syscall_exit's check honours it. */
    if (!__atomic_load_n(&gp->preempt, __ATOMIC_RELAXED) || !gp->m || gp == gp->m->g0 ||
        gp->m->locks || !gp->m->p || readgstatus(gp) != _Grunning)
        return;
    __atomic_store_n(&gp->preempt, false, __ATOMIC_RELAXED);
    yield_to(switchYieldGlobal);
}

/* ---- Finding work ---------------------------------------------------------- */

/* Strides coprime with GOMAXPROCS: from any start, each visits every P
 * once, in an order that differs from M to M. */
static uint32_t *stealOrder;
static uint32_t nStealOrder;

static uint32_t gcd(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static void stealOrderInit(uint32_t n)
{
    stealOrder = gort_calloc(n, sizeof *stealOrder);
    if (!stealOrder)
        throw("stealOrderInit: out of memory");
    for (uint32_t i = 1; i <= n; i++)
        if (gcd(i, n) == 1)
            stealOrder[nStealOrder++] = i;
}

/* Tries every other P's queue (random order, four rounds; runnext and
 * timers on the last).  *pollUntil gets the earliest timer seen. */
static struct g *stealWork(int64_t now, int64_t *pollUntil, bool *ranTimer)
{
    struct p *pp = getg()->m->p;
    const int stealTries = 4;
    for (int i = 0; i < stealTries; i++) {
        bool last = i == stealTries - 1;
        uint32_t n = (uint32_t)gomaxprocs;
        uint32_t start = fastrandn(n);
        uint32_t inc = stealOrder[fastrandn(nStealOrder)];
        for (uint32_t k = 0, idx = start; k < n; k++, idx = (idx + inc) % n) {
            struct p *p2 = allp[idx];
            if (p2 == pp)
                continue;
            if (last && __atomic_load_n(&p2->timer0When, __ATOMIC_ACQUIRE) != 0) {
                bool ran = false;
                int64_t w = checkTimers(p2, now, &ran);
                if (w != 0 && (*pollUntil == 0 || w < *pollUntil))
                    *pollUntil = w;
                if (ran) {
                    *ranTimer = true;
                    bool inherit;
                    struct g *gp = runqget(pp, &inherit);
                    if (gp)
                        return gp;
                }
            }
            if (!runqempty(p2)) {
                struct g *gp = runqsteal(pp, p2, last);
                if (gp)
                    return gp;
            }
        }
    }
    return NULL;
}

/* Runs the due timers of Ps other than pp; whether any ran. */
static bool runOverdueTimers(struct p *pp, int64_t now)
{
    bool any = false;
    for (int32_t i = 0; i < gomaxprocs; i++) {
        struct p *p2 = allp[i];
        int64_t w = __atomic_load_n(&p2->timer0When, __ATOMIC_ACQUIRE);
        if (p2 != pp && w != 0 && w <= now) {
            bool ran = false;
            checkTimers(p2, now, &ran);
            any |= ran;
        }
    }
    return any;
}

static bool anyRunqWork(struct p **victim)
{
    for (int32_t i = 0; i < gomaxprocs; i++)
        if (!runqempty(allp[i])) {
            *victim = allp[i];
            return true;
        }
    return false;
}

/* Finds a runnable G, blocking until there is one.  Runs on g0. */
/* The blocking poll, with the M counted as stopped (it has no P and runs
 * no goroutine while it waits). */
static void *netpoll_blocked(void *delay)
{
    return netpoll(*(int64_t *)delay);
}

static struct g *findrunnable(bool *inheritTime)
{
    struct m *mp = getg()->m;
top:;
    stw_poll();   /* a safe point: a stop need not signal a searching M */
    struct p *pp = mp->p;
    int64_t now = nanotime();
    bool ran = false;
    int64_t pollUntil = checkTimers(pp, now, &ran);
    *inheritTime = false;

    struct g *gp = runqget(pp, inheritTime);
    if (gp)
        return gp;
    if (__atomic_load_n(&sched.runqsize, __ATOMIC_RELAXED) != 0) {
        gort_lock(&sched.lock);
        gp = globrunqget(pp, 0);
        gort_unlock(&sched.lock);
        if (gp)
            return gp;
    }
    /* Network, without blocking, before stealing. */
    if (netpollinited() && __atomic_load_n(&netpollWaiters, __ATOMIC_ACQUIRE) > 0 &&
        __atomic_load_n(&sched.lastpoll, __ATOMIC_ACQUIRE) != 0) {
        struct g *list = netpoll(0);
        if (list) {
            gp = list;
            list = list->schedlink;
            injectglist(list);
            casgstatus(gp, _Gwaiting, _Grunnable);
            return gp;
        }
    }
    /* Steal, unless half the busy Ps are already spinning. */
    int32_t busy = gomaxprocs - (int32_t)__atomic_load_n(&sched.npidle, __ATOMIC_ACQUIRE);
    if (mp->spinning || 2 * (int32_t)__atomic_load_n(&sched.nmspinning, __ATOMIC_ACQUIRE) < busy) {
        if (!mp->spinning) {
            mp->spinning = true;
            __atomic_fetch_add(&sched.nmspinning, 1, __ATOMIC_ACQ_REL);
        }
        bool ranTimer = false;
        gp = stealWork(now, &pollUntil, &ranTimer);
        if (gp)
            return gp;
        if (ranTimer)
            goto top;
    } else if (runOverdueTimers(pp, now)) {
        /* Too many spinners to steal, but a timer on another P is due:
         * run it rather than loop through the poller until a spinner
         * gets to it. */
        goto top;
    }

    /* Nothing: give up the P. */
    gort_lock(&sched.lock);
    if (sched.runqsize != 0) {
        gp = globrunqget(pp, 0);
        gort_unlock(&sched.lock);
        return gp;
    }
    if (releasep() != pp)
        throw("findrunnable: wrong p");
    pidleput(pp);
    gort_unlock(&sched.lock);

    /* Stop spinning only after publishing the P idle, then look again:
     * work queued in between would otherwise wait for the next wakep. */
    bool wasSpinning = mp->spinning;
    if (mp->spinning) {
        mp->spinning = false;
        /* Sequentially consistent, against wakep's fence: whoever queued
         * work either sees this M still spinning, or this M sees the
         * work below. */
        if (__atomic_sub_fetch(&sched.nmspinning, 1, __ATOMIC_SEQ_CST) > (uint32_t)gomaxprocs)
            throw("findrunnable: negative nmspinning");
        struct p *victim;
        /* The global queue too: threads without a P (gort_go from a plain
         * thread, goready from a timer thread) queue work there. */
        if (__atomic_load_n(&sched.runqsize, __ATOMIC_SEQ_CST) != 0 || anyRunqWork(&victim)) {
            gort_lock(&sched.lock);
            pp = pidleget();
            gort_unlock(&sched.lock);
            if (pp) {
                acquirep(pp);
                mp->spinning = true;
                __atomic_fetch_add(&sched.nmspinning, 1, __ATOMIC_ACQ_REL);
                goto top;
            }
        }
    }
    int64_t tsu = timeSleepUntil();
    if (tsu != 0 && (pollUntil == 0 || tsu < pollUntil))
        pollUntil = tsu;
    if (pollUntil != 0 && !netpollinited())
        netpollGenericInit();

    /* Block in the network poller until the next timer, if someone must. */
    if (netpollinited() &&
        (__atomic_load_n(&netpollWaiters, __ATOMIC_ACQUIRE) > 0 || pollUntil != 0) &&
        __atomic_exchange_n(&sched.lastpoll, 0, __ATOMIC_ACQ_REL) != 0) {
        __atomic_store_n(&sched.pollUntil, pollUntil, __ATOMIC_RELEASE);
        int64_t delay = -1;
        if (pollUntil != 0) {
            delay = pollUntil - nanotime();
            if (delay < 0)
                delay = 0;
        }
        struct g *list = gc_do_blocking(netpoll_blocked, &delay);
        now = nanotime();
        __atomic_store_n(&sched.pollUntil, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&sched.lastpoll, now, __ATOMIC_RELEASE);
        gort_lock(&sched.lock);
        pp = pidleget();
        gort_unlock(&sched.lock);
        if (!pp) {
            injectglist(list);
        } else {
            acquirep(pp);
            if (list) {
                gp = list;
                list = list->schedlink;
                injectglist(list);
                casgstatus(gp, _Gwaiting, _Grunnable);
                if (wasSpinning) {
                    mp->spinning = true;
                    __atomic_fetch_add(&sched.nmspinning, 1, __ATOMIC_ACQ_REL);
                }
                return gp;
            }
            if (wasSpinning) {
                mp->spinning = true;
                __atomic_fetch_add(&sched.nmspinning, 1, __ATOMIC_ACQ_REL);
            }
            goto top;
        }
    } else if (pollUntil != 0 && netpollinited()) {
        int64_t pu = __atomic_load_n(&sched.pollUntil, __ATOMIC_ACQUIRE);
        if (pu == 0 || pu > pollUntil)
            netpollBreak();
    }
    stopm();
    goto top;
}

/* Hands the locked G gp to its M and parks this one. */
static void startlockedm(struct g *gp)
{
    struct m *lm = gp->lockedm;
    struct p *pp = releasep();
    gort_lock(&sched.lock);
    sched.nmidlelocked--;
    gort_unlock(&sched.lock);
    lm->nextp = pp;
    lm->nextg = gp;
    notewakeup(&lm->park);
    stopm();
}

/* An M wired to a G that is not runnable gives its P away and sleeps until
 * the G is handed to it. */
static void stoplockedm(void)
{
    struct m *mp = getg()->m;
    if (mp->p)
        handoffp(releasep());
    gort_lock(&sched.lock);
    sched.nmidlelocked++;
    checkdead();
    gort_unlock(&sched.lock);
    notesleep(&mp->park);
    noteclear(&mp->park);
    acquirep(mp->nextp);
    mp->nextp = NULL;
}

/* One round of the scheduler on g0: find a G and run it. */
static void schedule(void)
{
    struct m *mp = getg()->m;
    if (mp->lockedg) {
        stoplockedm();
        struct g *gp = mp->nextg;
        mp->nextg = NULL;
        if (gp != mp->lockedg)
            throw("schedule: locked m got the wrong g");
        execute(gp, false);
        return;
    }
    struct g *gp = mp->nextg;
    bool inheritTime = false;
    mp->nextg = NULL;
    if (!gp) {
        struct p *pp = mp->p;
        bool ran;
        checkTimers(pp, nanotime(), &ran);
        if (pp->schedtick % 61 == 0 && __atomic_load_n(&sched.runqsize, __ATOMIC_RELAXED) > 0) {
            gort_lock(&sched.lock);
            gp = globrunqget(pp, 1);
            gort_unlock(&sched.lock);
        }
        if (!gp)
            gp = runqget(pp, &inheritTime);
        if (!gp)
            gp = findrunnable(&inheritTime);
    }
    if (mp->spinning)
        resetspinning();
    if (gp->lockedm && gp->lockedm != mp) {
        startlockedm(gp);
        return;
    }
    execute(gp, inheritTime);
}

/* g0's loop.  Never returns. */
static __attribute__((noreturn)) void schedloop(void)
{
    struct m *mp = getg()->m;
    for (;;) {
        if (mp->switchop == switchExitSyscall) {
            /* A G came back from a system call and found no P. */
            struct g *gp = mp->switchg;
            mp->switchop = switchNone;
            mp->switchg = NULL;
            gort_lock(&sched.lock);
            struct p *pp = pidleget();
            if (!pp)
                globrunqput(gp);
            gort_unlock(&sched.lock);
            if (pp) {
                acquirep(pp);
                execute(gp, false);
                continue;
            }
            if (mp->lockedg) {
                stoplockedm();
                gp = mp->nextg;
                mp->nextg = NULL;
                execute(gp, false);
                continue;
            }
            stopm();
        }
        if (!mp->p)
            stopm();
        schedule();
    }
}

/* Parks the M (its P already released) until startm hands it a P. */
static void stopm(void)
{
    struct m *mp = getg()->m;
    if (mp->p)
        throw("stopm holding p");
    if (mp->spinning)
        throw("stopm spinning");
    gort_lock(&sched.lock);
    mput(mp);
    gort_unlock(&sched.lock);
    mp->blocked = true;
    notesleep(&mp->park);
    noteclear(&mp->park);
    mp->blocked = false;
    acquirep(mp->nextp);
    mp->nextp = NULL;
}

/* ---- Goroutine end ---------------------------------------------------------- */

void gort_goexit(void)
{
    requireg("gort_goexit");
    struct g *gp = getg();
    struct m *mp = gp->m;
    casgstatus(gp, _Grunning, _Gdead);
    TRACE(traceEvGoEnd, (uint64_t)gp->goid, 0);
    if (gp->fn == runtime_main)
        mainGoexited = true;
    countGoroutine(mp->p, -1);
    if (gp->lockedm) {
        /* Unlike Go, the thread lives on: C threads may own resources. */
        mp->lockedg = NULL;
        mp->lockedExt = mp->lockedInt = 0;
        gp->lockedm = NULL;
    }
    gp->fn = NULL;
    gp->arg = NULL;
    gp->sched.sp = NULL;
    gp->waiting = NULL;
    gp->param = NULL;
    mp->switchg = gp;
    mp->switchop = switchDead;
    leave(gp);
    throw("goexit: dead goroutine resumed");
}

/* ---- Threads ------------------------------------------------------------------ */

static void minit(struct m *mp)
{
#ifdef GORT_TSAN
    mp->g0->tsanFiber = __tsan_get_current_fiber();
#endif
    mp->tid = os_gettid();
    /* Sleeps in the poller and on futexes wake when asked, not up to 50 µs
     * later (the default timer slack). */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    stack_minit(mp);
}

static void *mstart(void *arg)
{
    struct m *mp = arg;
    setg(mp->g0);
    minit(mp);
    /* Threads are created with every signal blocked (so none arrives
     * before minit); now take the program's mask, as the main thread has. */
    pthread_sigmask(SIG_SETMASK, &initSigmask, NULL);
    /* The collector stops Ms that run goroutines; sysmon (an mstartfn)
     * blocks every signal and holds no program data. */
    if (!mp->mstartfn)
        gcthread_register_m(&mp->g0->sched.sp);
    if (mp->mstartfn)
        mp->mstartfn();
    if (mp->nextp) {
        struct p *pp = mp->nextp;
        mp->nextp = NULL;
        acquirep(pp);
    }
    schedloop();
}

static void newm(void (*fn)(void), struct p *pp, bool spinning)
{
    struct m *mp = gort_calloc(1, sizeof *mp);
    struct g *g0 = gort_calloc(1, sizeof *g0);
    if (!mp || !g0)
        throw("newm: out of memory");
    g0->m = mp;
    g0->goid = 0;
    g0->atomicstatus = _Grunning;
    mp->g0 = g0;
    mp->mstartfn = fn;
    mp->nextp = pp;
    mp->spinning = spinning;
    mp->threadcache = &mcache_bootstrap;
    gort_lock(&sched.lock);
    mp->id = sched.mnext++;
    mcount++;
    if (fn == sysmon)
        sched.nmsys++;
    mp->alllink = allm;
    __atomic_store_n(&allm, mp, __ATOMIC_RELEASE);
    gort_unlock(&sched.lock);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 << 10);
    /* New threads start with every signal blocked until they are ready
     * (mstart then applies the program's mask); all but the collector's,
     * which an unregistered thread ignores. */
    sigset_t old;
    gc_block_signals(&old);
    int err = pthread_create(&mp->thread, &attr, mstart, mp);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err != 0)
        throw("newm: pthread_create failed");
}

/* ---- System calls ------------------------------------------------------------- */

void gort_syscall_enter(void)
{
    if (!ingoroutine())
        return;
    struct g *gp = getg();
    struct m *mp = gp->m;
    struct p *pp = mp->p;
    if (mp->locks)
        throw("gort_syscall_enter: holding runtime locks");
    casgstatus(gp, _Grunning, _Gsyscall);
    TRACE(traceEvGoSysCall, (uint64_t)gp->goid, 0);
    __atomic_store_n(&pp->syscallstart, nanotime(), __ATOMIC_RELEASE);
    mcache_detach(mp);
    __atomic_store_n(&pp->m, NULL, __ATOMIC_RELAXED);
    mp->oldp = pp;
    mp->p = NULL;
    __atomic_store_n(&pp->status, _Psyscall, __ATOMIC_RELEASE);
    /* Work is waiting behind a call the program says may block: hand the
     * P over now, as Go's entersyscallblock does, rather than one sysmon
     * tick later (sysmon's own wake-up and then the new M's: two wake-ups
     * of tens of microseconds each on a virtual machine, ~250 us in all
     * here).  The exit takes a P back as after any hand-off. */
    if (!runqempty(pp)) {
        uint32_t want = _Psyscall;
        if (__atomic_compare_exchange_n(&pp->status, &want, _Pidle, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
            __atomic_store_n(&pp->syscalltick, pp->syscalltick + 1, __ATOMIC_RELAXED);
            TRACE(traceEvGoSysBlock, (uint64_t)pp->id, 0);
            handoffp(pp);
        }
        return;
    }
    if (__atomic_load_n(&sched.sysmonwait, __ATOMIC_ACQUIRE))
        sysmonwake();
}

void gort_syscall_exit(void)
{
    if (!ingoroutine())
        return;
    struct g *gp = getg();
    struct m *mp = gp->m;
    struct p *oldp = mp->oldp;
    mp->oldp = NULL;
    TRACE(traceEvGoSysExit, (uint64_t)gp->goid, 0);
    uint32_t want = _Psyscall;
    if (oldp && __atomic_compare_exchange_n(&oldp->status, &want, _Pidle, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        acquirep(oldp);
        __atomic_store_n(&oldp->syscalltick, oldp->syscalltick + 1, __ATOMIC_RELAXED);
        casgstatus(gp, _Gsyscall, _Grunning);
        return;
    }
    if (__atomic_load_n(&sched.npidle, __ATOMIC_ACQUIRE) > 0) {
        gort_lock(&sched.lock);
        struct p *pp = pidleget();
        gort_unlock(&sched.lock);
        if (pp) {
            acquirep(pp);
            __atomic_store_n(&pp->syscalltick, pp->syscalltick + 1, __ATOMIC_RELAXED);
            casgstatus(gp, _Gsyscall, _Grunning);
            return;
        }
    }
    /* No P: queue the G from g0, once it is off its stack. */
    casgstatus(gp, _Gsyscall, _Grunnable);
    __atomic_store_n(&mp->curg, NULL, __ATOMIC_RELAXED);   /* sysmon reads it */
    gp->m = NULL;
    mp->switchg = gp;
    mp->switchop = switchExitSyscall;
    stackcheck(gp);
    switchto(gp, mp->g0);
    afterswitch();
    preemptcheck();
}

/* ---- LockOSThread -------------------------------------------------------------- */

void gort_lock_os_thread(void)
{
    requireg("gort_lock_os_thread");
    struct g *gp = getg();
    struct m *mp = gp->m;
    mp->lockedExt++;
    mp->lockedg = gp;
    gp->lockedm = mp;
}

void gort_unlock_os_thread(void)
{
    requireg("gort_unlock_os_thread");
    struct g *gp = getg();
    struct m *mp = gp->m;
    if (mp->lockedExt == 0)
        return;
    if (--mp->lockedExt == 0) {
        mp->lockedg = NULL;
        gp->lockedm = NULL;
    }
}

static const char *gstatusName(uint32_t st)
{
    switch (st) {
    case _Grunnable: return "runnable";
    case _Grunning: return "running";
    case _Gsyscall: return "syscall";
    case _Gwaiting: return "waiting";
    default: return "dead";
    }
}

/* "goroutine 1 [chan receive]:" and where it started, for each live G. */
static void goroutineDump(void)
{
    printbuf b = {.len = 0};
    for (size_t i = 0; i < allglen; i++) {
        struct g *gp = allgs[i];
        uint32_t st = readgstatus(gp);
        if (st == _Gdead || st == _Gidle)
            continue;
        pb_str(&b, "goroutine ");
        pb_i64(&b, gp->goid);
        pb_str(&b, " [");
        pb_str(&b, st == _Gwaiting ? waitReasonStrings[gp->waitreason] : gstatusName(st));
        pb_str(&b, "]:\n\t");
        Dl_info info;
        if (gp->fn == runtime_main) {
            pb_str(&b, "main() via gort_main");
        } else if (gp->fn && dladdr((void *)(uintptr_t)gp->fn, &info) && info.dli_sname) {
            pb_str(&b, info.dli_sname);
            pb_str(&b, "(");
            pb_hex(&b, (uint64_t)(uintptr_t)gp->arg);
            pb_str(&b, ")");
        } else {
            pb_str(&b, "fn=");
            pb_hex(&b, (uint64_t)(uintptr_t)gp->fn);
        }
        pb_str(&b, "\n\n");
        pb_flush(&b);
    }
}

/* Called with sched.lock held whenever an M goes idle: if no M is left
 * running, no timer is pending and nobody waits on the network, every
 * goroutine is blocked for ever. */
void checkdead(void)
{
    int32_t run = mcount - sched.nmidle - sched.nmidlelocked - sched.nmsys;
    if (run > 0)
        return;
    if (run < 0)
        throw("checkdead: inconsistent counts");
    if (goroutineCount() == 0) {
        if (!mainGoexited)
            return;
        gort_unlock(&sched.lock);
        const char msg[] = "fatal error: no goroutines (main called runtime.Goexit) - deadlock!\n";
        os_write_stderr(msg, sizeof msg - 1);
        _exit(2);
    }
    gort_lock(&allglock);
    for (size_t i = 0; i < allglen; i++) {
        uint32_t st = readgstatus(allgs[i]);
        if (st == _Grunnable || st == _Grunning || st == _Gsyscall) {
            gort_unlock(&allglock);
            return;
        }
    }
    gort_unlock(&allglock);
    for (int32_t i = 0; i < gomaxprocs; i++)
        if (__atomic_load_n(&allp[i]->timer0When, __ATOMIC_ACQUIRE) != 0)
            return;
    if (__atomic_load_n(&netpollWaiters, __ATOMIC_ACQUIRE) > 0)
        return;
    gort_unlock(&sched.lock);
    const char msg[] = "fatal error: all goroutines are asleep - deadlock!\n\n";
    os_write_stderr(msg, sizeof msg - 1);
    goroutineDump();
    _exit(2);
}

/* ---- Start-up ---------------------------------------------------------------------------- */

static void osinit(void)
{
    ncpu = os_ncpu();
}

static void procresize(int32_t nprocs)
{
    allp = gort_calloc((size_t)nprocs, sizeof *allp);
    if (!allp)
        throw("procresize: out of memory");
    for (int32_t i = 0; i < nprocs; i++) {
        struct p *pp = gort_calloc(1, sizeof *pp);
        if (!pp)
            throw("procresize: out of memory");
        pp->id = i;
        pp->status = _Pidle;
        /* Not 0: schedule() looks at the global queue first when
         * schedtick % 61 == 0, and a G inheriting its time slice does not
         * advance it. */
        pp->schedtick = 1;
        pp->mcache = mcache_alloc();
        allp[i] = pp;
    }
    gomaxprocs = nprocs;
    singleP = nprocs == 1;
    stealOrderInit((uint32_t)nprocs);
    acquirep(allp[0]);
    for (int32_t i = nprocs - 1; i > 0; i--)
        pidleput(allp[i]);
}

static int32_t envprocs(void)
{
    const char *s = getenv("GOMAXPROCS");
    if (!s || !*s)
        return 0;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 1 << 20) {
            const char msg[] = "gort: GOMAXPROCS: invalid value, ignored\n";
            os_write_stderr(msg, sizeof msg - 1);
            return 0;
        }
        v = v * 10 + (*s - '0');
    }
    return (int32_t)v;
}

static void schedinit(void)
{
    pthread_sigmask(SIG_SETMASK, NULL, &initSigmask);
    gort_free(gort_malloc(1));   /* mallocinit, godebug */
    m0.g0 = &g0_m0;
    m0.id = 0;
    m0.threadcache = tls_mcache;
    g0_m0.m = &m0;
    g0_m0.atomicstatus = _Grunning;
    setg(&g0_m0);
    sched.mnext = 1;
    mcount = 1;
    allm = &m0;
    sched.lastpoll = nanotime();
    onValgrind = RUNNING_ON_VALGRIND != 0;
    stackinit();
    stack_signals_init();
    trace_init();
    if (debug.asyncpreempt)
        preempt_signals_init();
    int32_t procs = ncpu;
    int32_t n = envprocs();
    if (n > 0)
        procs = n;
    if (procs > 1024)
        procs = 1024;
    procresize(procs);
}

struct mainargs {
    int (*fn)(int, char **);
    int argc;
    char **argv;
};
static struct mainargs mainargs;

static void runtime_main(void *arg)
{
    (void)arg;
    newm(sysmon, NULL, false);
    __atomic_store_n(&mainStarted, 1, __ATOMIC_RELEASE);
    wakep();
    int status = mainargs.fn(mainargs.argc, mainargs.argv);
    exit(status);
}

GORT_API int gort_main(int (*main_fn)(int, char **), int argc, char **argv)
{
    if (runtimeStarted)
        throw("gort_main called twice");
    osinit();
    schedinit();
    runtimeStarted = true;
    mainargs.fn = main_fn;
    mainargs.argc = argc;
    mainargs.argv = argv;
    runtimeInitTime = nanotime();
    newproc(runtime_main, NULL);
    minit(&m0);
    gcthread_register_m(&m0.g0->sched.sp);
    schedloop();
}

/* ---- The public calls ------------------------------------------------------------------------ */

bool sched_running(void)
{
    return __atomic_load_n(&runtimeStarted, __ATOMIC_ACQUIRE);
}

void newproc_system(void (*fn)(void *), void *arg)
{
    /* Not counted by gort_numgoroutine, as Go leaves out its own. */
    __atomic_fetch_add(&goroutineCountNoP, -1, __ATOMIC_RELAXED);
    newproc(fn, arg);
}

GORT_API void gort_go(gort_func fn, void *arg)
{
    if (!fn)
        throw("gort_go: nil function");
    preemptcheck();
    newproc(fn, arg);
}

GORT_API void gort_yield(void)
{
    requireg("gort_yield");
    struct g *gp = getg();
    __atomic_store_n(&gp->preempt, false, __ATOMIC_RELAXED);
    goyield();
}

GORT_API int gort_gomaxprocs(void)
{
    return runtimeStarted ? gomaxprocs : os_ncpu();
}

GORT_API int gort_numgoroutine(void)
{
    return runtimeStarted ? (int)goroutineCount() : 0;
}

GORT_API int gort_errno(void)
{
    __asm__ volatile("" ::: "memory");
    return errno;
}

__attribute__((noinline)) void errno_set(int e)
{
    __asm__ volatile("" ::: "memory");
    errno = e;
}

GORT_API int64_t gort_goid(void)
{
    return ingoroutine() ? getg()->goid : 0;
}

/* ---- Sudogs ---------------------------------------------------------------------------------- */

/* Most waits need one sudog: each G has one built in, so a channel
 * operation that blocks takes no cache or list operation for it.  Further
 * sudogs (select) come from the P's cache, then the central list, then
 * malloc.  Only the G that acquired a sudog releases it: the built-in one
 * is marked free again, others go to the releasing P's cache. */
struct sudog *acquireSudog(void)
{
    struct g *cur = getg();
    struct sudog *s;
    if (cur && !cur->gsudogBusy && cur->m && cur != cur->m->g0) {
        cur->gsudogBusy = true;
        s = &cur->gsudog;
        sudog_clear(s);
        return s;
    }
    struct p *pp = cur && cur->m ? cur->m->p : NULL;
    if (pp && pp->nsudog == 0 && __atomic_load_n(&sched.sudogcache, __ATOMIC_RELAXED)) {
        gort_lock(&sched.sudoglock);
        while (pp->nsudog < SUDOG_CACHE / 2 && sched.sudogcache) {
            struct sudog *t = sched.sudogcache;
            __atomic_store_n(&sched.sudogcache, t->next, __ATOMIC_RELAXED);
            t->next = NULL;
            pp->sudogcache[pp->nsudog++] = t;
        }
        gort_unlock(&sched.sudoglock);
    }
    if (pp && pp->nsudog > 0) {
        s = pp->sudogcache[--pp->nsudog];
    } else {
        s = gort_malloc(sizeof *s);
        if (!s)
            throw("acquireSudog: out of memory");
    }
    sudog_clear(s);
    return s;
}

static void sudogPutCentral(struct sudog *s)
{
    s->next = sched.sudogcache;
    __atomic_store_n(&sched.sudogcache, s, __ATOMIC_RELAXED);
}

void releaseSudog(struct sudog *s)
{
    struct g *cur = getg();
    if (cur && s == &cur->gsudog) {
        cur->gsudogBusy = false;
        return;
    }
    struct p *pp = cur && cur->m ? cur->m->p : NULL;
    if (!pp) {
        gort_lock(&sched.sudoglock);
        sudogPutCentral(s);
        gort_unlock(&sched.sudoglock);
        return;
    }
    if (pp->nsudog == SUDOG_CACHE) {
        gort_lock(&sched.sudoglock);
        while (pp->nsudog > SUDOG_CACHE / 2)
            sudogPutCentral(pp->sudogcache[--pp->nsudog]);
        gort_unlock(&sched.sudoglock);
    }
    pp->sudogcache[pp->nsudog++] = s;
}
