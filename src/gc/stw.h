/*
 * stw.h — stopping the world: the registry of threads whose stacks are
 * roots, and the signal that parks them while the collector marks.
 *
 * Go stops the world at safe points its compiler plants everywhere; C has
 * none, so gort does what the Boehm GC does: it sends each registered
 * thread a signal (SIGPWR) whose handler saves the registers on the stack,
 * reports the stack pointer and waits until the world restarts.  Every
 * gort M registers itself; a plain thread registers at its first gort_new
 * or with gort_register_thread.
 *
 * A thread stopped anywhere might be half-way through changing something
 * the collector reads or writes while the world is stopped: a span it is
 * allocating from, its cache's slots.  Such code runs inside a nosuspend
 * section (gcnosuspend_enter/exit, two plain thread-local increments): a
 * signal that lands inside one only sets a flag, and the thread stops
 * itself as it leaves the section.  Inside a section a thread must not
 * wait for a lock that code outside sections takes (the heap's), or the
 * world would wait for it forever.
 */
#ifndef GORT_GC_STW_H
#define GORT_GC_STW_H

#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

struct gcthread {
    struct gcthread *next, *prev;
    pid_t tid;
    uintptr_t stacklo, stackhi;   /* the thread's own stack */
    uintptr_t stoppedsp;          /* its stack pointer at the stop (registers below it are saved) */
    uint32_t stopped;             /* stop epoch it acknowledged */
    bool explicit_;               /* gort_register_thread, not automatic */
    void **g0sp;                  /* a gort M: its g0's saved stack pointer */
    uintptr_t scansp;             /* concurrent mode: where the first stop scanned from */
    uint32_t scangen;             /* ... in that cycle (mgcmark.c's markGen) */
    uint32_t blocked;             /* atomic: gcRunning, gcBlocked or gcBlockedHeld */
    uintptr_t blockedsp;          /* its stack pointer while blocked */
    int *pending;                 /* its gctls.pending, which a stop sets to ask it */
};

/* gcthread.blocked: a thread inside gc_do_blocking is stopped already as
 * far as the collector cares, so a stop takes it (gcBlocked ->
 * gcBlockedHeld) instead of signalling it, and the thread waits for that
 * stop to end before it runs again. */
enum { gcRunning = 0, gcBlocked = 1, gcBlockedHeld = 2 };

struct gctls {
    int nosuspend;                /* > 0: inside a nosuspend section */
    int pending;                  /* atomic: a stop asks this thread to stop */
    struct gcthread *self;        /* registration, or NULL */
};
extern __thread struct gctls gctls __attribute__((tls_model("initial-exec")));

/* Registered threads, walked by the collector while the world is stopped. */
extern struct gcthread *gcthreads;

void gcsuspend_deferred(void);

static inline void gcnosuspend_enter(void)
{
    gctls.nosuspend++;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* How a stop asks: it sets the pending flag of every running thread, which
 * the thread reads as it leaves a nosuspend section (every collected
 * allocation and every gort_store), and stwPending, which it reads at the
 * other safe points (a mark assist between slices, an M's search for
 * work: stw_poll).  Either way it stops itself there, which spares the
 * stop a signal (a round trip of tens of microseconds on a virtual
 * machine, and now and then hundreds).  Threads that do not come in time
 * are signalled. */
extern uint32_t stwPending;
/* Threads that stopped themselves when asked, and threads signalled, over
 * all stops (for tests and tuning). */
extern uint64_t stw_nasked, stw_nsignalled;
void stw_poll_slow(void);
static inline void stw_poll(void)
{
    if (__builtin_expect(__atomic_load_n(&stwPending, __ATOMIC_ACQUIRE), 0))
        stw_poll_slow();
}

/* Leaves a nosuspend section; true when that leaves the thread outside
 * every section with a stop asking for it: the caller then calls
 * gcsuspend_deferred (itself, or after a tail call of its own). */
static inline bool gcnosuspend_leave(void)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    return --gctls.nosuspend == 0 &&
           __builtin_expect(__atomic_load_n(&gctls.pending, __ATOMIC_RELAXED), 0);
}

static inline void gcnosuspend_exit(void)
{
    if (gcnosuspend_leave())
        gcsuspend_deferred();
}

/* Runs fn(arg), which blocks (a parked M's sleep, a wait for the
 * collector), with the caller counted as stopped: a stop neither signals
 * nor waits for it, which saves waking a sleeping thread for each stop.
 * fn must not touch collected objects or gort's caches.  Outside nosuspend
 * sections only (inside one, fn simply runs). */
void *gc_do_blocking(void *(*fn)(void *), void *arg);

/* Registers the calling thread (idempotent). */
void gcthread_register(bool explicit_);
/* A gort M registers with its g0's saved stack pointer: when the M is
 * stopped on a goroutine's stack, its own stack is live from there up. */
void gcthread_register_m(void **g0sp);
void gcthread_unregister(void);

/* Stops every registered thread but the caller (who is recorded as stopped
 * at its own stack pointer, sp), and restarts them.  brief: the stop is
 * expected to last well under a millisecond (the stopped threads spin
 * rather than sleep).  stw_stop takes the registry lock; stw_start drops
 * it. */
void stw_stop(uintptr_t sp, bool brief);
/* Blocks every signal but the stop's in the calling thread (*old: the mask
 * it had), around pthread_create: the new thread starts with that mask, so
 * no program signal lands on it before it is ready, while the creating
 * thread can still be stopped (thread creation takes long enough to show
 * in a pause; a new thread is registered only later, and the stop's
 * handler ignores unregistered threads). */
void gc_block_signals(sigset_t *old);
/* Starts one of the collector's own threads (controller, sweeper), detached
 * and with every signal but the stop's blocked: it is not a mutator and is
 * never stopped.
 * Aborts with "gort: fatal error: <what>" if the thread cannot be made. */
void gc_start_thread(void *(*fn)(void *), void *arg, const char *what);

/* fork: called by the collector's prepare and parent handlers. */
void stw_fork_prepare(void);
void stw_fork_parent(void);
void stw_start(void);

/* The stack pointer of the caller's frame, with the callee-saved registers
 * forced onto the stack first (so a conservative scan from it sees them). */
#define gc_spill_registers() __builtin_unwind_init()
static inline __attribute__((always_inline)) uintptr_t gc_current_sp(void)
{
#if defined(__x86_64__)
    uintptr_t sp;
    __asm__ volatile("movq %%rsp, %0" : "=r"(sp));
    return sp;
#elif defined(__aarch64__)
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
#else
    volatile char here;
    return (uintptr_t)&here - 256;
#endif
}

#endif
