/*
 * runtime2.h — the scheduler's records: G, M, P, sched and sudog, with Go's
 * names (Go keeps them in runtime2.go, hence the file name).
 *
 *   G  a goroutine: its saved stack pointer, its stack and its state.
 *   M  an OS thread.  Each M has a g0, a goroutine-less context on the
 *      thread's own stack in which the scheduler runs when no G can.
 *   P  a processor: the right to run Go-style code.  GOMAXPROCS of them;
 *      an M must hold one to run a G.  A P owns a run queue, a cache of free
 *      Gs, sudogs and stacks, a timer heap and an mcache, so that the common
 *      operations take no lock.
 *
 * The interface the rest of the runtime uses (channels, sync, timers, the
 * netpoller) is at the bottom: getg, gopark, goready, sudogs, fastrand.
 */
#ifndef GORT_RUNTIME2_H
#define GORT_RUNTIME2_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "os/lock.h"

/* G status (Go's numbering). */
enum {
    _Gidle = 0,      /* just allocated */
    _Grunnable = 1,  /* on a run queue */
    _Grunning = 2,   /* running on an M with a P */
    _Gsyscall = 3,   /* in a system call (gort_syscall_enter), M but maybe no P */
    _Gwaiting = 4,   /* parked: a channel, lock, timer or fd will ready it */
    _Gdead = 6,      /* finished, on a free list */
};

/* P status. */
enum {
    _Pidle = 0,
    _Prunning = 1,
    _Psyscall = 2,   /* its M is in a system call; sysmon may retake it */
    _Pdead = 4,
};

/* Why a goroutine waits, printed in goroutine dumps as Go prints them. */
enum waitReason {
    waitReasonZero,
    waitReasonChanReceiveNilChan,
    waitReasonChanSendNilChan,
    waitReasonSelectNoCases,
    waitReasonSelect,
    waitReasonChanReceive,
    waitReasonChanSend,
    waitReasonSleep,
    waitReasonIOWait,
    waitReasonSemacquire,
    waitReasonSyncCondWait,
    waitReasonSyncMutexLock,
    waitReasonSyncRWMutexRLock,
    waitReasonSyncRWMutexLock,
    waitReasonTimerGoroutineIdle,
    waitReasonPreempted,
    waitReasonLockOSThread,
    waitReasonCount
};
extern const char *const waitReasonStrings[waitReasonCount];

struct stack {
    uintptr_t lo, hi;            /* [lo, hi), hi is the initial stack pointer */
};

/* What a switch saves: the stack pointer.  Everything else a switch must
 * keep (callee-saved registers, FP control words, the return address) is
 * pushed on the stack itself by gogo (asm_*.S). */
struct gobuf {
    void *sp;
};

struct sudog;
struct timer;
struct m;
struct p;

struct g;
struct hchan;

/* A waiting goroutine in a wait queue (channels, semaphores, select). */
struct sudog {
    struct g *g;
    struct sudog *next, *prev;   /* wait queue */
    void *elem;                  /* data element */
    int64_t acquiretime, releasetime;
    uint32_t ticket;
    bool isSelect;               /* g is in a select: claim with g->selectDone */
    bool success;                /* channels: woken by a value, not by close */
    struct sudog *parent;        /* semaRoot tree (sema.c) */
    struct sudog *waitlink;      /* g->waiting list */
    struct sudog *waittail;      /* semaRoot */
    struct hchan *c;             /* channel */
};
struct g {
    struct gobuf sched;          /* saved context while not running */
    struct stack stack;          /* {0,0} until the G first runs */
    uint32_t atomicstatus;       /* _G*; atomic */
    uint8_t waitreason;          /* enum waitReason, while _Gwaiting */
    bool preempt;                /* asked to yield at its next runtime call */
    uint32_t selectDone;         /* select: a case already won (atomic CAS) */
    int64_t goid;
    struct m *m;                 /* the M running it, or NULL */
    struct g *schedlink;         /* run queue and free list link */
    void (*fn)(void *);          /* entry point and its argument */
    void *arg;
    struct sudog *waiting;       /* sudogs of this G's current wait (select) */
    void *param;                 /* passed by the waker (channels: the sudog that completed) */
    struct m *lockedm;           /* LockOSThread */
    int64_t waitsince;           /* nanotime the wait began */
    struct timer *timer;         /* cached for gort_sleep */
    unsigned stackid;            /* Valgrind's id for the stack */
    void *tsanFiber;             /* ThreadSanitizer's fiber, in TSan builds */
    uintptr_t gcscansp;          /* concurrent mark: where its stack was scanned from */
    uint32_t gcscangen;          /* ... in that cycle */
    bool gsudogBusy;             /* gsudog is in use */
    struct sudog gsudog;         /* the sudog of most waits (acquireSudog) */
};

struct m {
    struct g *g0;                /* scheduler context on the thread's own stack */
    struct g *curg;              /* the user G running, or NULL */
    struct p *p;                 /* held P, or NULL */
    struct p *nextp;             /* P handed over by whoever woke this M */
    struct p *oldp;              /* P held before a system call */
    int64_t id;
    bool spinning;               /* looking for work with nothing to run */
    bool blocked;                /* parked on its note */
    uint32_t park;               /* note: futex word, 1 when woken */
    struct m *schedlink;         /* idle list */
    struct m *alllink;           /* allm */
    struct g *lockedg;           /* LockOSThread: the G wired to this M */
    uint32_t lockedExt, lockedInt;
    int32_t locks;               /* > 0: do not preempt (runtime critical section) */
    uint64_t fastrand;
    /* Run on the next context after a switch, before anything else:
     * gopark's unlock of the lock that protects the parked G. */
    bool (*waitunlockf)(struct g *gp, void *lock);
    void *waitlock;
    struct g *switchg;           /* the G a switch is leaving ... */
    int switchop;                /* ... and what to do with it (proc.c) */
    struct g *nextg;             /* a G for schedule() to run first */
    struct mcache *threadcache;  /* the thread's own mcache, while the P's is in use */
    int32_t tid;
    pthread_t thread;
    void (*mstartfn)(void);      /* run first on a new M (sysmon) */
    void *altstack;              /* signal stack (stack overflow reports) */
};

#define RUNQ_SIZE 256

/* What sysmon last saw of a P, to tell how long it has been running or in
 * a system call. */
struct sysmontick {
    uint32_t schedtick;
    int64_t schedwhen;
};

#define SUDOG_CACHE 64
#define STACK_CACHE 16

struct p {
    int32_t id;
    uint32_t status;             /* _P*; atomic */
    struct p *link;              /* idle list */
    uint64_t goidcache, goidcacheend; /* goids handed out in batches */
    int64_t ngoroutine;          /* goroutines started minus ended here (owner writes) */
    uint32_t schedtick;          /* each schedule() */
    uint32_t syscalltick;        /* each system call */
    int64_t syscallstart;        /* atomic: nanotime the current system call began */
    struct sysmontick sysmontick;
    struct m *m;                 /* holder, or NULL */
    struct mcache *mcache;

    /* Run queue: a lock-free ring written only by the owner at the tail,
     * and consumed by the owner and by thieves at the head. */
    uint32_t runqhead;           /* atomic */
    uint32_t runqtail;           /* atomic */
    struct g *runq[RUNQ_SIZE];
    struct g *runnext;           /* atomic: runs next, inheriting the time slice */

    /* Free Gs (without stacks), sudogs and stacks, for this P alone. */
    struct g *gFree;
    int32_t gFreeCount;
    struct sudog *sudogcache[SUDOG_CACHE];
    int32_t nsudog;
    uintptr_t stackcache[STACK_CACHE];
    int32_t nstack;

    /* Timers (time.c): a 4-ary heap on when, under timersLock. */
    rtmutex timersLock;
    struct timer **timers;
    int32_t ntimers, captimers;
    int64_t timer0When;          /* atomic: the earliest when, 0 if none */

    void *tracebuf;              /* execution trace events (trace.c), or NULL */
};

struct gQueue {
    struct g *head, *tail;
};

struct schedt {
    rtmutex lock;
    struct m *midle;             /* idle Ms, parked on their notes */
    int32_t nmidle;
    int32_t nmidlelocked;        /* idle Ms wired to a G */
    int64_t mnext;               /* Ms made so far; the next id */
    int32_t nmsys;               /* Ms that do not count for deadlock (sysmon) */
    struct p *pidle;
    uint32_t npidle;             /* atomic */
    uint32_t nmspinning;         /* atomic */
    struct gQueue runq;          /* global run queue */
    int32_t runqsize;
    /* Free Gs beyond the Ps' own lists, under gFreeLock. */
    rtmutex gFreeLock;
    struct g *gFree;
    int32_t gFreeCount;
    /* Spare sudogs. */
    rtmutex sudoglock;
    struct sudog *sudogcache;
    int64_t lastpoll;            /* atomic: nanotime of the last netpoll, 0 while one blocks */
    int64_t pollUntil;           /* atomic: when the blocked netpoll wakes */
    uint32_t sysmonwait;         /* sysmon sleeps long; wake it on sysmonnote */
    uint32_t sysmonnote;
    int64_t ngsys;               /* system goroutines (not counted by NumGoroutine) */
};

extern struct schedt sched;
extern struct p **allp;
extern int32_t gomaxprocs;
extern struct m *allm;
extern struct m m0;
extern struct g g0_m0;
extern int64_t runtimeInitTime;

/* ---- The interface for the rest of the runtime -------------------------- */

/* The running context: a user G, or the M's g0 when the scheduler runs.
 * A goroutine may resume on another thread after any switch, so the
 * compiler must not keep the thread-local address across one: getg()
 * reads the slot afresh each time (volatile asm on x86-64, an out-of-line
 * call elsewhere). */
extern __thread struct g *g_tls __attribute__((tls_model("initial-exec")));
#if defined(__x86_64__)
static inline struct g *getg(void)
{
    struct g *gp;
    __asm__ volatile("movq g_tls@gottpoff(%%rip), %0\n\tmovq %%fs:(%0), %0" : "=r"(gp));
    return gp;
}
#else
struct g *getg_slow(void);
static inline struct g *getg(void) { return getg_slow(); }
#endif

/* Whether the caller runs as a goroutine (not a plain thread, not g0). */
static inline bool ingoroutine(void)
{
    struct g *gp = getg();
    return gp != NULL && gp->m != NULL && gp != gp->m->g0;
}
/* Aborts with "gort: fatal error: <fn>: not called from a goroutine" when
 * the caller is not a goroutine. */
__attribute__((noreturn, cold)) void requireg_failed(const char *fn);
static inline void requireg(const char *fn)
{
    if (__builtin_expect(!ingoroutine(), 0))
        requireg_failed(fn);
}

/* Parks the running goroutine in reason.  After it has left its stack,
 * unlockf(gp, lock) runs; if it returns false the G is resumed at once
 * (the wait was cancelled), else it stays _Gwaiting until goready. */
void gopark(bool (*unlockf)(struct g *gp, void *lock), void *lock, uint8_t reason);
/* gopark in two steps, for a caller that holds the lock guarding its wait
 * (a channel's): gopark_pick() first takes the G to run next off the P's
 * queue, while few stores are pending for its atomic to wait on (each
 * costs it a cycle or more), then the caller records its wait and
 * gopark_picked() parks exactly as gopark does. */
typedef struct gpick {
    struct g *g;                 /* NULL: through the scheduler on g0 */
    bool inherit;                /* g came from runnext: it inherits the time slice */
} gpick;
gpick gopark_pick(void);
void gopark_picked(gpick next, bool (*unlockf)(struct g *gp, void *lock), void *lock,
                   uint8_t reason);
/* gopark that unlocks an rtmutex. */
void goparkunlock(rtmutex *lock, uint8_t reason);
/* Makes a _Gwaiting G runnable: it goes to the current P's runnext (or the
 * global queue from a thread without a P) and an idle P is woken if one is
 * needed.  Safe from timers and the netpoller. */
void goready(struct g *gp);
/* Puts a list of runnable Gs (linked by schedlink) on run queues. */
void injectglist(struct g *list);
/* gosched at the next safe point when sysmon has flagged gp. */
void goschedIfPreempted(void);
static inline void preemptcheck(void)
{
    struct g *gp = getg();
    if (__builtin_expect(gp != NULL && __atomic_load_n(&gp->preempt, __ATOMIC_RELAXED), 0))
        goschedIfPreempted();
}
/* Gosched: the running G goes to the back of its P's run queue. */
void goyield(void);
/* Starts a goroutine (works from g0 too, e.g. in a timer callback). */
void newproc(void (*fn)(void *), void *arg);
/* Wakes an idle P to run new work, if there is an idle P and no M already
 * spinning.  Inline for the usual answer, no idle P. */
void wakep_slow(void);
static inline void wakep(void)
{
    if (__atomic_load_n(&sched.npidle, __ATOMIC_ACQUIRE) != 0)
        wakep_slow();
}

/* The per-M random number generator (wyrand). */
uint32_t fastrand(void);
static inline uint32_t fastrandn(uint32_t n)
{
    return (uint32_t)(((uint64_t)fastrand() * n) >> 32);
}

int64_t nanotime(void);

/* errno as the calling goroutine sees it, read and written out of line:
 * compilers keep errno's address across calls (glibc declares
 * __errno_location const), and code that may have parked must not use an
 * address computed on another thread.  gort_errno (gort.h) reads it. */
int gort_errno(void);
void errno_set(int e);

struct sudog *acquireSudog(void);
void releaseSudog(struct sudog *s);

/* Clears a sudog for its next wait.  Field by field: a whole-struct clear
 * compiles to rep stos, which costs more than the switch it serves. */
static inline void sudog_clear(struct sudog *s)
{
    s->g = NULL;
    s->next = s->prev = s->parent = s->waitlink = s->waittail = NULL;
    s->elem = NULL;
    s->acquiretime = s->releasetime = 0;
    s->ticket = 0;
    s->isSelect = s->success = false;
    s->c = NULL;
}

/* acquireSudog for gp, the running goroutine, inline where it can use its
 * own embedded sudog (a G waits on one thing at a time outside select): a
 * channel operation that blocks pays no call and no cache for it. */
static inline struct sudog *acquireSudogFor(struct g *gp)
{
    if (__builtin_expect(!gp->gsudogBusy, 1)) {
        gp->gsudogBusy = true;
        sudog_clear(&gp->gsudog);
        return &gp->gsudog;
    }
    return acquireSudog();
}
static inline void releaseSudogFor(struct g *gp, struct sudog *s)
{
    if (__builtin_expect(s == &gp->gsudog, 1))
        gp->gsudogBusy = false;
    else
        releaseSudog(s);
}

/* ---- Hooks the scheduler calls into time.c and netpoll.c ---------------- */

/* Runs pp's expired timers (pp held by the caller); returns the earliest
 * when still pending (0: none) and sets *ran when any ran. */
int64_t checkTimers(struct p *pp, int64_t now, bool *ran);
/* The earliest timer over all Ps (0: none), and whether any P has timers. */
int64_t timeSleepUntil(void);
/* Moves a P's timers to another P when its goroutines' timers must survive
 * (not needed while GOMAXPROCS is fixed). */

bool netpollinited(void);
void netpollGenericInit(void);
/* An earlier timer was added: make sure some M wakes by when. */
void wakeNetPoller(int64_t when);
/* Polls for I/O: delay < 0 blocks, 0 does not, > 0 waits up to delay ns.
 * Returns the goroutines made ready, linked through schedlink. */
struct g *netpoll(int64_t delay);
/* Interrupts a blocked netpoll. */
void netpollBreak(void);
/* Goroutines blocked on I/O (deadlock detection ignores none of them). */
extern uint32_t netpollWaiters;

#endif
