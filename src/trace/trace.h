/*
 * trace.h — the execution tracer's interface to the scheduler.
 *
 * The scheduler calls TRACE(ev, a, b) at each event.  While tracing is off
 * that is one load and one branch the compiler lays out as not taken; while
 * it is on, trace_event stamps the event with nanotime and appends it to the
 * buffer of the P the caller holds (no lock: only the P's owner appends),
 * or to a locked global buffer from a thread without a P.  A background
 * thread turns the buffers into Chrome trace-event JSON (trace.c).
 *
 * Arguments, per event:
 *   ProcStart(pid, mid)  ProcStop(pid, mid)  GoCreate(newgoid, creator goid)
 *   GoStart(goid, pid)   GoEnd(goid, 0)      GoBlock(goid, enum waitReason)
 *   GoUnblock(goid, waker goid or 0)         GoSysCall(goid, 0)
 *   GoSysExit(goid, 0)   GoSysBlock(pid, 0): emitted by the thread that has
 *                        just taken the P from the system call (it owns it)
 *   Steal(victim pid, count)  HeapAlloc(bytes, 0)  GCStart(0,0)  GCDone(0,0)
 */
#ifndef GORT_TRACE_H
#define GORT_TRACE_H

#include <stdbool.h>
#include <stdint.h>

extern bool trace_on;   /* read at every hook */

enum traceEv {
    traceEvProcStart, traceEvProcStop, traceEvGoCreate, traceEvGoStart, traceEvGoEnd,
    traceEvGoBlock, traceEvGoUnblock, traceEvGoSysCall, traceEvGoSysExit, traceEvGoSysBlock,
    traceEvSteal, traceEvHeapAlloc, traceEvGCStart, traceEvGCDone, traceEvCount
};

/* Records ev now (nanotime), on the current P's buffer (getg()->m->p;
 * lock-free, only its owner appends), or the locked global one without a
 * P.  Never calls malloc: buffers come from os_alloc. */
void trace_event(int ev, uint64_t a, uint64_t b);

/* A relaxed atomic load is a plain load on every target gort runs on; it
 * keeps ThreadSanitizer quiet about start and stop flipping the flag. */
#define TRACE(ev, a, b)                                                        \
    do {                                                                       \
        if (__builtin_expect(__atomic_load_n(&trace_on, __ATOMIC_RELAXED), 0)) \
            trace_event((ev), (a), (b));                                       \
    } while (0)

/* From schedinit (after GODEBUG is read): starts tracing if
 * GODEBUG=trace=FILE, and stops it at exit. */
void trace_init(void);

#endif
