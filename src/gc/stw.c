/*
 * stw.c — the thread registry and the stop-the-world signal (stw.h).
 *
 * A stop is numbered (epoch).  The collector sends SIGPWR to every
 * registered thread, then waits on a futex until each has acknowledged.
 * A thread acknowledges from the signal handler, whose frame holds the
 * interrupted registers (the kernel saved them there), so a scan from the
 * handler's stack pointer to the top of the stack covers registers and
 * frames alike.  It then sleeps until the collector publishes the epoch as
 * released.  Waiting on the epoch rather than a "running" flag lets a
 * thread that wakes late from one stop never miss the next.
 *
 * A thread that is about to sleep (an idle M, a thread waiting for the
 * collector) goes through gc_do_blocking, which publishes its stack pointer
 * with its registers spilled above it and marks it blocked: a stop then
 * claims it with one CAS instead of a signal, and the thread, on waking,
 * waits for that stop to end.  Signalling a sleeping thread costs a wake-up
 * (tens of microseconds on a virtual machine) inside the pause.
 *
 * A thread that is running is asked first (stwPending): one that reaches
 * a safe point within STW_ASK_NS stops itself there, without the signal's
 * round trip (a kernel IPI, itself a hypervisor exit on a virtual machine:
 * 10-30 µs of every pause here).  Only the threads still running after
 * that are signalled.  Each thread acknowledges an epoch once, whichever
 * way it stops (ack_and_wait claims it).
 *
 * The collector spins briefly for acknowledgements before it sleeps on
 * them: a running thread answers within microseconds, and a futex sleep
 * would add the collector's own wake-up to every pause.
 */
#define _GNU_SOURCE
#include "gc/stw.h"
#include "mem/mcache.h"
#include "gort.h"
#include "os/lock.h"
#include "os/os.h"
#include "runtime/print.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SIG_SUSPEND SIGPWR

__thread struct gctls gctls __attribute__((tls_model("initial-exec")));
struct gcthread *gcthreads;

static rtmutex regLock;
static pthread_key_t regKey;
static pthread_once_t regOnce = PTHREAD_ONCE_INIT;

static struct {
    uint32_t epoch;      /* the current or last stop */
    uint32_t released;   /* the last stop that has ended (futex word) */
    uint32_t acks;       /* threads stopped in this epoch (futex word) */
    uint32_t sleepers;   /* stopped threads asleep on released */
    uint32_t spinNs;     /* how long a stopped thread spins before sleeping */
} stw;

/* A stopped thread spins a little before it sleeps: the pauses of the
 * concurrent mode end sooner, and then the restart needs no futex wake (a
 * system call that can cost the collector its CPU to the thread it wakes,
 * and the woken thread its wake-up latency).  Long stops (marking with the
 * world stopped) spin only briefly: the CPU is the mark's. */
#define SPIN_BRIEF_NS (250 * 1000)
#define SPIN_LONG_NS (20 * 1000)

/* How long a stop waits for running threads to reach a safe point before
 * it signals them: a thread that allocates collected memory refills a span
 * every few microseconds. */
#ifndef STW_ASK_NS
#define STW_ASK_NS (10 * 1000)
#endif

uint32_t stwPending;
uint64_t stw_nasked, stw_nsignalled;

/* One round of a wait that spins: a pause at first, then sched_yield,
 * so that a spinner never keeps the thread it waits for off a shared CPU. */
static void spin_once(unsigned *round)
{
    if (++*round < 64) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

static void wait_released(uint32_t epoch)
{
    uint64_t spinUntil = os_nanotime() + __atomic_load_n(&stw.spinNs, __ATOMIC_RELAXED);
    unsigned round = 0;
    for (;;) {
        uint32_t r = __atomic_load_n(&stw.released, __ATOMIC_SEQ_CST);
        if ((int32_t)(r - epoch) >= 0)
            break;
        if (os_nanotime() < spinUntil) {
            spin_once(&round);
            continue;
        }
        /* Counted before the last look at released, so that the restart
         * either sees a sleeper or this thread sees the release. */
        __atomic_add_fetch(&stw.sleepers, 1, __ATOMIC_SEQ_CST);
        r = __atomic_load_n(&stw.released, __ATOMIC_SEQ_CST);
        if ((int32_t)(r - epoch) < 0)
            os_futex_wait(&stw.released, r, -1);
        __atomic_sub_fetch(&stw.sleepers, 1, __ATOMIC_SEQ_CST);
    }
}

static void ack_and_wait(uintptr_t sp)
{
    struct gcthread *t = gctls.self;
    uint32_t epoch = __atomic_load_n(&stw.epoch, __ATOMIC_ACQUIRE);
    /* Once per epoch: a signal that lands while this thread already waits
     * (it stopped itself at a safe point) has nothing to add. */
    if (__atomic_exchange_n(&t->stopped, epoch, __ATOMIC_ACQ_REL) == epoch)
        return;
    __atomic_store_n(&t->stoppedsp, sp, __ATOMIC_RELAXED);
    __atomic_add_fetch(&stw.acks, 1, __ATOMIC_ACQ_REL);
    os_futex_wake(&stw.acks, 1);
    wait_released(epoch);
}

static void suspend_handler(int sig, siginfo_t *info, void *uctx)
{
    int saved = errno;
    if (gctls.self == NULL) {
        errno = saved;
        return;
    }
    if (gctls.nosuspend) {
        __atomic_store_n(&gctls.pending, 1, __ATOMIC_RELAXED);
        errno = saved;
        return;
    }
    /* The signal answers this stop's ask too (a later stop's ask, set
     * after this clear, stands).  uctx (the interrupted registers) lies
     * above this frame. */
    __atomic_store_n(&gctls.pending, 0, __ATOMIC_RELAXED);
    ack_and_wait(gc_current_sp());
    errno = saved;
}

__attribute__((noinline)) void gcsuspend_deferred(void)
{
    /* (Set by a stop's ask, a release store after its new epoch.) */
    __atomic_store_n(&gctls.pending, 0, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    /* An ask that came while the thread was still registered, answered by
     * the signal instead, may be found only once the thread has left the
     * registry (a collected allocation in a late destructor): no stop
     * waits for it any more. */
    if (!gctls.self)
        return;
    gc_spill_registers();
    ack_and_wait(gc_current_sp());
    /* No tail call: the registers spilled in this frame (the caller's
     * pointers among them) must stay where the scan from our stack pointer
     * finds them until the world restarts. */
    __asm__ volatile("" : : : "memory");
}

__attribute__((noinline)) void stw_poll_slow(void)
{
    if (gctls.self && !gctls.nosuspend)
        gcsuspend_deferred();
}

__attribute__((noinline)) void *gc_do_blocking(void *(*fn)(void *), void *arg)
{
    struct gcthread *t = gctls.self;
    if (!t || gctls.nosuspend)
        return fn(arg);
    gc_spill_registers();
    __atomic_store_n(&t->blockedsp, gc_current_sp(), __ATOMIC_RELAXED);
    __atomic_store_n(&t->blocked, gcBlocked, __ATOMIC_RELEASE);
    void *r = fn(arg);
    for (;;) {
        uint32_t want = gcBlocked;
        if (__atomic_compare_exchange_n(&t->blocked, &want, gcRunning, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            break;
        /* A stop holds us: it ends at or before the current epoch. */
        wait_released(__atomic_load_n(&stw.epoch, __ATOMIC_ACQUIRE));
    }
    /* No tail call: the spilled registers stay put until we are running. */
    __asm__ volatile("" : : : "memory");
    return r;
}

static void thread_key_destructor(void *arg)
{
    (void)arg;
    gcthread_unregister();
}

/* fork: the collector's prepare handler takes the registry lock after its
 * own (the order a cycle takes them in); the child keeps one thread. */
void stw_fork_prepare(void) { gort_lock(&regLock); }
void stw_fork_parent(void) { gort_unlock(&regLock); }

/* The child has one thread: every other registration is stale. */
static void atfork_child(void)
{
    gort_lock_reinit(&regLock);
    struct gcthread *self = gctls.self;
    gcthreads = NULL;
    if (self) {
        self->tid = os_gettid();
        self->next = self->prev = NULL;
        gcthreads = self;
    }
}

static void registry_init(void)
{
    if (pthread_key_create(&regKey, thread_key_destructor) != 0)
        throw("gc: pthread_key_create failed");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = suspend_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIG_SUSPEND, &sa, NULL) != 0)
        throw("gc: sigaction(SIGPWR) failed");
    pthread_atfork(NULL, NULL, atfork_child);
}

void gcthread_register(bool explicit_)
{
    if (gctls.self) {
        if (explicit_)
            gctls.self->explicit_ = true;
        return;
    }
    pthread_once(&regOnce, registry_init);
    struct gcthread *t = gort_malloc(sizeof *t);
    if (!t)
        throw("gc: out of memory registering a thread");
    memset(t, 0, sizeof *t);
    t->tid = os_gettid();
    t->explicit_ = explicit_;
    t->pending = &gctls.pending;
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &lo, &size);
        pthread_attr_destroy(&attr);
    }
    if (!lo)
        throw("gc: cannot find the thread's stack");
    t->stacklo = (uintptr_t)lo;
    t->stackhi = (uintptr_t)lo + size;
    /* Make sure SIGPWR is not blocked here. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIG_SUSPEND);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    gort_lock(&regLock);
    t->next = gcthreads;
    if (gcthreads)
        gcthreads->prev = t;
    gcthreads = t;
    gctls.self = t;
    gort_unlock(&regLock);
    pthread_setspecific(regKey, t);
}

void gcthread_register_m(void **g0sp)
{
    gcthread_register(false);
    gctls.self->g0sp = g0sp;
}

void gcthread_unregister(void)
{
    struct gcthread *t = gctls.self;
    if (!t)
        return;
    /* Its cache's collected spans go back first, while stops still include
     * this thread: a collector empties every cache with the world stopped,
     * and must not meet one whose owner is emptying it too. */
    struct mcache *c = tls_mcache;
    if (c != &mcache_bootstrap && c != &mcache_exited)
        gccache_release(c);
    gort_lock(&regLock);
    if (t->prev)
        t->prev->next = t->next;
    else
        gcthreads = t->next;
    if (t->next)
        t->next->prev = t->prev;
    gctls.self = NULL;
    __atomic_store_n(&gctls.pending, 0, __ATOMIC_RELAXED);
    gort_unlock(&regLock);
    pthread_setspecific(regKey, NULL);
    gort_free(t);
}

/* Waits until want threads have acknowledged the current stop, spinning
 * until the clock reads spinUntil, sleeping after that when sleep is set;
 * returns whether they all did.  The short wait for the asked threads
 * (sleep unset) never yields: a yield can hand this CPU to another thread
 * for a whole time slice, and binary-trees' stops of 0.3–4 ms were spent
 * just there (its p99 pause at one P: 60–290 µs in five runs, 57–81 µs
 * without the yields; beside a CPU hog the p50 is 10 µs more).  The wait
 * after the signals yields, so that a signalled thread sharing this CPU
 * gets to run its handler. */
static bool wait_acks(uint32_t want, uint64_t spinUntil, bool sleep)
{
    unsigned round = 0;
    for (;;) {
        uint32_t n = __atomic_load_n(&stw.acks, __ATOMIC_ACQUIRE);
        if (n >= want)
            return true;
        if (os_nanotime() < spinUntil) {
            if (sleep) {
                spin_once(&round);
            } else {
#if defined(__x86_64__)
                __builtin_ia32_pause();
#endif
            }
            continue;
        }
        if (!sleep)
            return false;
        os_futex_wait(&stw.acks, n, 10 * 1000 * 1000);
    }
}

void stw_stop(uintptr_t sp, bool brief)
{
    gort_lock(&regLock);
    __atomic_store_n(&stw.spinNs, brief ? SPIN_BRIEF_NS : SPIN_LONG_NS, __ATOMIC_RELAXED);
    uint32_t epoch = __atomic_add_fetch(&stw.epoch, 1, __ATOMIC_ACQ_REL);
    __atomic_store_n(&stw.acks, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&stwPending, 1, __ATOMIC_SEQ_CST);
    uint32_t want = 0;
    for (struct gcthread *t = gcthreads; t; t = t->next) {
        if (t == gctls.self) {
            t->stoppedsp = sp;
            t->stopped = epoch;
            continue;
        }
        uint32_t blocked = gcBlocked;
        if (__atomic_compare_exchange_n(&t->blocked, &blocked, gcBlockedHeld, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            t->stoppedsp = __atomic_load_n(&t->blockedsp, __ATOMIC_RELAXED);
            t->stopped = epoch;
            continue;
        }
        /* Running: asked to stop itself, or signalled below.  (Its
         * thread-local flag is there while it is registered: a thread
         * unregisters before it exits, under regLock.) */
        __atomic_store_n(t->pending, 1, __ATOMIC_RELEASE);
        want++;
    }
    uint32_t asked = want;
    if (want && !wait_acks(want, os_nanotime() + STW_ASK_NS, false)) {
        asked = __atomic_load_n(&stw.acks, __ATOMIC_ACQUIRE);
        pid_t pid = getpid();
        uint64_t nsig = 0;
        for (struct gcthread *t = gcthreads; t; t = t->next) {
            if (__atomic_load_n(&t->stopped, __ATOMIC_ACQUIRE) == epoch)
                continue;   /* this thread, a claimed sleeper, or stopped already */
            nsig++;
            if (syscall(SYS_tgkill, pid, t->tid, SIG_SUSPEND) != 0 &&
                __atomic_exchange_n(&t->stopped, epoch, __ATOMIC_ACQ_REL) != epoch) {
                /* Gone without unregistering: nothing of it to scan. */
                t->stoppedsp = 0;
                want--;
            }
        }
        __atomic_store_n(&stw_nsignalled, stw_nsignalled + nsig, __ATOMIC_RELAXED);
        wait_acks(want, os_nanotime() + 200 * 1000, true);
    }
    __atomic_store_n(&stw_nasked, stw_nasked + asked, __ATOMIC_RELAXED);
    __atomic_store_n(&stwPending, 0, __ATOMIC_RELAXED);
}

void stw_start(void)
{
    /* Held blocked threads go back to plain blocked before the release, so
     * one that wakes and sees the release can leave. */
    for (struct gcthread *t = gcthreads; t; t = t->next) {
        uint32_t held = gcBlockedHeld;
        __atomic_compare_exchange_n(&t->blocked, &held, gcBlocked, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED);
    }
    __atomic_store_n(&stw.released, stw.epoch, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&stw.sleepers, __ATOMIC_SEQ_CST) != 0)
        os_futex_wake(&stw.released, INT32_MAX);
    gort_unlock(&regLock);
}

void gc_block_signals(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    sigdelset(&all, SIG_SUSPEND);
    pthread_sigmask(SIG_SETMASK, &all, old);
}

void gc_start_thread(void *(*fn)(void *), void *arg, const char *what)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t old;
    gc_block_signals(&old);
    int err = pthread_create(&t, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err != 0)
        throw(what);
}
