/*
 * gort.h — the public interface of gort, the Go runtime's memory manager
 * and goroutine scheduler (and, in a later part, its collector) as a C
 * library.
 *
 * The allocator
 * -------------
 * gort serves the whole C allocation API.  Linked with -lgort, or loaded with
 * LD_PRELOAD=libgort.so, the plain names (malloc, free, calloc, realloc, ...)
 * are gort's, so existing programs need no change.  Every entry point is also
 * exported with a gort_ prefix, which is what a program that wants gort next
 * to another allocator calls.
 *
 * Behaviour follows glibc where the C standard leaves room:
 *   - malloc(0) returns a unique pointer that can be freed.
 *   - Every block is aligned to 16 bytes, except blocks of at most 8 bytes and
 *     blocks of 17..24 bytes, which are 8-aligned (no C type of those sizes
 *     needs more).
 *   - A size that cannot be served returns NULL with errno = ENOMEM; calloc
 *     and reallocarray detect multiplication overflow.
 *   - realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL.
 *   - free(NULL) does nothing; free of a pointer gort never handed out, or of
 *     an interior pointer, prints "gort: free(): invalid pointer 0x..." and
 *     aborts; a double free is reported and aborts.
 *   - free keeps errno.
 *
 * Environment (read once at start-up; bad values are reported and ignored):
 *   GODEBUG=madvdontneed=1   give memory back with MADV_DONTNEED (default; RSS
 *                            drops at once); 0 uses MADV_FREE.
 *   GODEBUG=scavengedelay=MS free pages are given back to the OS after they
 *                            have stayed free this many milliseconds
 *                            (default 1000; 0 gives back at once).
 *   GODEBUG=scavenger=0      no background release thread: memory goes back
 *                            only from allocator calls and malloc_trim.
 *   GODEBUG=memstats=1       print gort's memory statistics at exit.
 *   GOMAXPROCS=N             Ps for goroutines (default: usable CPUs, capped
 *                            by a cgroup CPU quota).
 *   GODEBUG=stacksize=BYTES  goroutine stack size, a power of two >= 16384
 *                            (default 65536).
 *   GODEBUG=stackguard=X     how stack overflow is caught: madvise (a guard
 *                            page with no mapping; default where the kernel
 *                            has MADV_GUARD_INSTALL, Linux 6.13+), canary (a
 *                            zero line checked at each switch; the fallback)
 *                            or mprotect (a PROT_NONE page per stack, which
 *                            costs a kernel mapping each).
 *   GODEBUG=schedtrace=MS    print Go's "SCHED ..." line every MS ms;
 *                            scheddetail=1 adds every P, M and G.
 *   GODEBUG=asyncpreempt=1   preempt a goroutine that runs 10 ms without
 *                            calling gort, by signal (libgort.so only; see
 *                            the limits in src/sched/signal.c).
 *   GODEBUG=trace=FILE       write an execution trace of the run to FILE
 *                            (Chrome trace-event JSON; see "Execution trace").
 *   GODEBUG=memprofilerate=N heap profile sampling: one sample per N bytes
 *                            allocated on average (default 524288; 0 off;
 *                            1 every allocation).  See "Heap profile".
 *   GORT_HEAPPROFILE=path    write a heap profile (pprof format) to path at
 *                            exit; GORT_HEAPPROFILE_INTERVAL=S also every S
 *                            seconds, from a thread that blocks all signals.
 * Several settings are separated by commas, as in Go.
 */
#ifndef GORT_H
#define GORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/socket.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GORT_API __attribute__((visibility("default")))
#define GORT_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define GORT_API
#define GORT_MALLOC_ATTR
#endif

/* ---- The C allocation API, under gort's own names ----------------------- */

GORT_API GORT_MALLOC_ATTR void *gort_malloc(size_t size);
GORT_API void gort_free(void *ptr);
GORT_API GORT_MALLOC_ATTR void *gort_calloc(size_t nmemb, size_t size);
GORT_API void *gort_realloc(void *ptr, size_t size);
GORT_API void *gort_reallocarray(void *ptr, size_t nmemb, size_t size);
/* Returns 0, EINVAL (alignment not a power of two multiple of sizeof(void*))
 * or ENOMEM; errno is left alone, as POSIX asks. */
GORT_API int gort_posix_memalign(void **out, size_t alignment, size_t size);
GORT_API GORT_MALLOC_ATTR void *gort_aligned_alloc(size_t alignment, size_t size);
GORT_API GORT_MALLOC_ATTR void *gort_memalign(size_t alignment, size_t size);
GORT_API GORT_MALLOC_ATTR void *gort_valloc(size_t size);
GORT_API GORT_MALLOC_ATTR void *gort_pvalloc(size_t size);
/* The bytes actually usable at ptr: at least what was asked for. */
GORT_API size_t gort_malloc_usable_size(void *ptr);
/* Gives every free page back to the OS now, after handing the calling
 * thread's cached blocks back to the heap (other threads keep theirs).
 * pad is accepted for glibc compatibility and ignored.  Returns 1 if any
 * memory was released. */
GORT_API int gort_malloc_trim(size_t pad);
/* Prints the statistics below to stderr, in the layout of GODEBUG=memstats=1. */
GORT_API void gort_malloc_stats(void);
#if defined(__GLIBC__)
/* glibc's summaries: arena = HeapSys, uordblks = HeapAlloc, fordblks =
 * HeapSys - HeapAlloc, hblkhd = bytes in large objects, ordblks = free page
 * runs, keepcost = idle bytes not yet released. */
GORT_API struct mallinfo2 gort_mallinfo2(void);
GORT_API struct mallinfo gort_mallinfo(void);
#endif

/* ---- Statistics, shaped like Go's runtime.MemStats ---------------------- */

#define GORT_NUM_SIZE_CLASSES 68   /* Go's 67 size classes plus class 0 (large) */

struct gort_memstats {
    /* General. */
    uint64_t alloc;          /* Alloc: bytes of allocated heap objects (= heap_alloc) */
    uint64_t total_alloc;    /* TotalAlloc: cumulative bytes allocated */
    uint64_t sys;            /* Sys: bytes obtained from the OS, all kinds */
    uint64_t mallocs;        /* Mallocs: cumulative count of objects allocated */
    uint64_t frees;          /* Frees: cumulative count of objects freed */

    /* The heap. */
    uint64_t heap_alloc;     /* HeapAlloc: bytes of live objects */
    uint64_t heap_sys;       /* HeapSys: bytes of heap address space reserved */
    uint64_t heap_idle;      /* HeapIdle: bytes in free page runs */
    uint64_t heap_inuse;     /* HeapInuse: bytes in spans holding objects */
    uint64_t heap_released;  /* HeapReleased: idle bytes given back to the OS */
    uint64_t heap_objects;   /* HeapObjects: live objects */

    /* Goroutine stacks (taken from the heap's pages, counted apart). */
    uint64_t stack_inuse;    /* StackInuse: bytes in stack spans */
    uint64_t stack_sys;      /* StackSys: bytes of stack memory from the OS */

    /* The allocator's own metadata (never from malloc). */
    uint64_t mspan_inuse;    /* MSpanInuse: bytes of mspan structures in use */
    uint64_t mspan_sys;      /* MSpanSys: bytes reserved for mspan structures */
    uint64_t mcache_inuse;   /* MCacheInuse: bytes of per-thread caches in use */
    uint64_t mcache_sys;     /* MCacheSys: bytes reserved for them */
    uint64_t other_sys;      /* OtherSys: arena index, page map, collector pointer maps */

    /* Release of memory to the OS. */
    uint64_t num_released;   /* madvise calls made to give pages back */

    /* BySize: per size class.  Index 0 is large objects (> 32 KiB). */
    struct {
        uint32_t size;       /* the class's object size (0 for large) */
        uint64_t mallocs;    /* cumulative objects allocated in this class */
        uint64_t frees;      /* cumulative objects freed in this class */
    } by_size[GORT_NUM_SIZE_CLASSES];

    /* The collector (its objects are also counted in the fields above). */
    uint64_t gc_heap_live;   /* bytes of collected objects not yet found dead */
    uint64_t gc_heap_marked; /* live bytes the last cycle marked */
    uint64_t gc_objects;     /* collected objects allocated, not yet swept */
    uint64_t next_gc;        /* NextGC: heap goal of the next cycle, bytes */
    uint64_t last_gc;        /* LastGC: end of the last cycle, ns since the epoch */
    uint64_t pause_total_ns; /* PauseTotalNs: every stop-the-world pause */
    uint64_t pause_ns[256];  /* PauseNs: recent pauses, the last at [(num_gc+255)%256] */
    uint64_t pause_end[256]; /* PauseEnd: when they ended, ns since the epoch */
    uint32_t num_gc;         /* NumGC: completed cycles */
    uint32_t num_forced_gc;  /* NumForcedGC: cycles run by gort_gc */
    double gc_cpu_fraction;  /* GCCPUFraction: share of CPU time spent collecting */
};

/* Fills *out with a consistent-enough snapshot (counters of other threads
 * are read without stopping them, so they may lag by in-flight calls). */
GORT_API void gort_memstats(struct gort_memstats *out);


/* ==== Goroutines: Go's GMP scheduler ======================================
 *
 * A program hands its main function to gort_main, which starts the runtime
 * in Go's order (osinit, schedinit, the main goroutine, mstart) and runs it
 * as goroutine 1 on GOMAXPROCS Ps; when it returns, the process exits with
 * its status and every other goroutine is abandoned, as in Go.  The calls
 * below that block (channel operations, sleeps, locks, I/O) must be made from
 * a goroutine: from a plain thread they fail with a clear fatal error.
 * Non-blocking calls (gort_go, the try forms, close, timers) work from any
 * thread.  Deadlock detection sees only goroutines: a goroutine waiting for
 * a plain thread to send, with nothing else running, is reported as
 * deadlocked.
 *
 * Fatal errors are Go's: "all goroutines are asleep - deadlock!" (exit
 * status 2, with a goroutine dump), "send on closed channel", "close of
 * closed channel", "sync: unlock of unlocked mutex", "sync: negative
 * WaitGroup counter", "stack overflow" (these abort).  A goroutine may
 * resume on another thread after any call that blocks; see gort_errno.
 *
 * Goroutine stacks are fixed in size (GODEBUG=stacksize=N bytes, default
 * 64 KiB; C cannot move a stack to grow it), lazily touched, and guarded:
 * an overflow stops the program with "fatal error: stack overflow".
 */

typedef void (*gort_func)(void *arg);

/* Runs main_fn(argc, argv) as the main goroutine and exits the process with
 * its return value (never returns). */
GORT_API __attribute__((noreturn)) int gort_main(int (*main_fn)(int, char **), int argc, char **argv);
/* go fn(arg): starts a goroutine.  Aborts if memory runs out, like Go. */
GORT_API void gort_go(gort_func fn, void *arg);
/* runtime.Gosched: lets other goroutines run. */
GORT_API void gort_yield(void);
/* runtime.Goexit: ends the calling goroutine. */
GORT_API __attribute__((noreturn)) void gort_goexit(void);
/* runtime.GOMAXPROCS(0): the number of Ps (fixed at start-up from the
 * GOMAXPROCS environment variable, else the usable CPUs). */
GORT_API int gort_gomaxprocs(void);
/* runtime.NumGoroutine. */
GORT_API int gort_numgoroutine(void);
/* The calling goroutine's id (1 for main), 0 outside a goroutine. */
GORT_API int64_t gort_goid(void);
/* errno as the calling goroutine left it.  Read errno through this after a
 * call that may block: the goroutine may resume on another thread, and
 * compilers keep errno's address across calls (glibc declares it a const
 * function), so a plain `errno` there may read another thread's copy. */
GORT_API int gort_errno(void);
/* runtime.LockOSThread / UnlockOSThread (nesting counted). */
GORT_API void gort_lock_os_thread(void);
GORT_API void gort_unlock_os_thread(void);
/* Wrap a system call (or any C call) that may block for long:
 * gort_syscall_enter() lets another thread take the P so other goroutines
 * keep running; gort_syscall_exit() gets a P back before returning
 * (runtime.entersyscall / exitsyscall). */
GORT_API void gort_syscall_enter(void);
GORT_API void gort_syscall_exit(void);

/* ---- Channels (Go's chan) ------------------------------------------------ */

typedef struct hchan gort_chan;

/* make(chan T, cap) with sizeof(T) == elemsize (0 allowed). */
GORT_API gort_chan *gort_chan_make(size_t elemsize, size_t cap);
/* Frees a channel nobody uses any more (Go's GC does this): no goroutine
 * or thread may still be in, or about to make, a call on it.  Aborts if
 * goroutines still wait on it; waits for a select that was woken by close
 * to finish with it.  Freeing a timer's channel (gort_after,
 * gort_timer_chan) stops and frees the timer too. */
GORT_API void gort_chan_free(gort_chan *c);
/* c <- *elem.  Sending on a closed channel is fatal ("send on closed
 * channel"); on NULL, blocks for ever. */
GORT_API void gort_chan_send(gort_chan *c, const void *elem);
/* *elem, ok = <-c (elem may be NULL).  Returns ok: false when the channel
 * is closed and drained, and *elem is then zeroed. */
GORT_API bool gort_chan_recv(gort_chan *c, void *elem);
/* select { case c <- *elem: return true; default: return false } */
GORT_API bool gort_chan_trysend(gort_chan *c, const void *elem);
/* select { case *elem, *ok = <-c: return true; default: return false }
 * (ok may be NULL). */
GORT_API bool gort_chan_tryrecv(gort_chan *c, void *elem, bool *ok);
/* close(c): closing twice or a NULL channel is fatal. */
GORT_API void gort_chan_close(gort_chan *c);
GORT_API size_t gort_chan_len(gort_chan *c);
GORT_API size_t gort_chan_cap(gort_chan *c);

/* ---- select -------------------------------------------------------------- */

enum { GORT_SEND = 1, GORT_RECV = 2 };

typedef struct gort_select_case {
    gort_chan *c;      /* NULL: the case is never ready (a nil channel) */
    int dir;           /* GORT_SEND or GORT_RECV */
    void *elem;        /* the value to send, or where to receive (may be NULL) */
    bool ok;           /* set for the chosen receive: false if closed */
} gort_select_case;

/* select over n cases: returns the index of the case that ran, chosen
 * uniformly at random among the ready ones.  With block false this is a
 * select with a default case and returns -1 when none is ready; with block
 * true and no cases it blocks for ever (select {}). */
GORT_API int gort_select(gort_select_case *cases, int n, bool block);

/* ---- Time ---------------------------------------------------------------- */

/* Monotonic nanoseconds. */
GORT_API int64_t gort_nanotime(void);
/* time.Sleep(ns). */
GORT_API void gort_sleep(int64_t ns);

typedef struct gort_timer gort_timer;
/* time.NewTimer(ns): t's channel (gort_timer_chan) receives an int64_t,
 * the gort_nanotime at which it fired, once. */
GORT_API gort_timer *gort_timer_new(int64_t ns);
/* time.NewTicker(ns): fires every ns (ns > 0); drops ticks a slow receiver
 * misses, as Go's does. */
GORT_API gort_timer *gort_ticker_new(int64_t ns);
GORT_API gort_chan *gort_timer_chan(gort_timer *t);
/* Timer.Stop: true if the call stopped a pending timer. */
GORT_API bool gort_timer_stop(gort_timer *t);
/* Timer.Reset(ns) / Ticker.Reset(ns): true if the timer had been pending. */
GORT_API bool gort_timer_reset(gort_timer *t, int64_t ns);
/* Stops t and frees it with its channel. */
GORT_API void gort_timer_free(gort_timer *t);
/* time.After(ns): a timer's channel.  Free it with gort_chan_free when done
 * (fired or not): that stops and frees the timer too. */
GORT_API gort_chan *gort_after(int64_t ns);
/* time.AfterFunc(ns, fn): runs fn(arg) on its own goroutine after ns. */
GORT_API gort_timer *gort_after_func(int64_t ns, gort_func fn, void *arg);

/* ---- sync ---------------------------------------------------------------- */

/* sync.Mutex, with Go's normal and starvation modes.  Zero is unlocked. */
typedef struct gort_mutex { int32_t state; uint32_t sema; } gort_mutex;
#define GORT_MUTEX_INIT {0, 0}
GORT_API void gort_mutex_lock(gort_mutex *m);
GORT_API bool gort_mutex_trylock(gort_mutex *m);
GORT_API void gort_mutex_unlock(gort_mutex *m);   /* fatal if unlocked */

/* sync.RWMutex.  Zero is unlocked. */
typedef struct gort_rwmutex {
    gort_mutex w;
    uint32_t writerSem, readerSem;
    int32_t readerCount, readerWait;
} gort_rwmutex;
#define GORT_RWMUTEX_INIT {GORT_MUTEX_INIT, 0, 0, 0, 0}
GORT_API void gort_rwmutex_lock(gort_rwmutex *rw);
GORT_API void gort_rwmutex_unlock(gort_rwmutex *rw);
GORT_API void gort_rwmutex_rlock(gort_rwmutex *rw);
GORT_API void gort_rwmutex_runlock(gort_rwmutex *rw);

/* sync.WaitGroup.  Zero is ready. */
typedef struct gort_waitgroup { uint64_t state; uint32_t sema; } gort_waitgroup;
#define GORT_WAITGROUP_INIT {0, 0}
GORT_API void gort_waitgroup_add(gort_waitgroup *wg, int delta); /* fatal below 0 */
GORT_API void gort_waitgroup_done(gort_waitgroup *wg);
GORT_API void gort_waitgroup_wait(gort_waitgroup *wg);

/* sync.Once. */
typedef struct gort_once { uint32_t done; gort_mutex m; } gort_once;
#define GORT_ONCE_INIT {0, GORT_MUTEX_INIT}
GORT_API void gort_once_do(gort_once *o, gort_func fn, void *arg);

/* sync.Cond with L = a gort_mutex.  Zero is ready. */
typedef struct gort_cond {
    uint32_t wait, notify;        /* ticket numbers (Go's notifyList) */
    void *head, *tail;            /* sleeping waiters; their lock is hashed */
} gort_cond;
#define GORT_COND_INIT {0, 0, 0, 0}
GORT_API void gort_cond_wait(gort_cond *c, gort_mutex *m);
GORT_API void gort_cond_signal(gort_cond *c);
GORT_API void gort_cond_broadcast(gort_cond *c);

/* ---- Goroutine-aware I/O (the netpoller) --------------------------------- */

/* Each call blocks only the calling goroutine: the fd is made non-blocking
 * (O_NONBLOCK is visible to other processes sharing it) and registered with
 * the netpoller (epoll, edge-triggered) on first use.  Errors are -1 with
 * errno, as the system calls'; read it with gort_errno().  A passed
 * deadline gives ETIMEDOUT.  Close such fds with gort_close: a plain close
 * leaves gort's registration behind for the next fd of that number.
 * Regular files, which epoll refuses, are read and written with blocking
 * calls inside gort_syscall_enter/exit. */
GORT_API ssize_t gort_read(int fd, void *buf, size_t n);
/* Writes all n bytes unless an error stops it: then the count written so
 * far if any (errno says why), else -1. */
GORT_API ssize_t gort_write(int fd, const void *buf, size_t n);
GORT_API int gort_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);
GORT_API int gort_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
/* SetReadDeadline / SetWriteDeadline: absolute gort_nanotime values, 0 for
 * none.  A goroutine blocked on fd wakes with ETIMEDOUT when it passes; an
 * expired deadline stays expired until a new one is set.  -1/EPERM for a
 * regular file. */
GORT_API int gort_fd_set_deadline(int fd, int64_t read_deadline, int64_t write_deadline);
/* Unregisters fd (waking its waiters with EBADF) and closes it. */
GORT_API int gort_close(int fd);

/* ==== Heap profile: Go's memory profile (runtime.MemProfile) ==============
 *
 * gort samples allocations as Go does: on average one per MemProfileRate
 * bytes allocated (a Poisson process over bytes, so larger blocks are more
 * likely to be picked), recording each sample's call stack and size and
 * matching its free.  The profile shows, per allocation site, the objects
 * and bytes allocated since start (alloc_objects, alloc_space) and those
 * still live (inuse_objects, inuse_space), unbiased for the sampling as Go
 * does.  It is written in pprof's format (profile.proto, gzipped) with
 * function names and mappings filled in, so `go tool pprof -top prog
 * heap.pb.gz` reads it as it reads a Go heap profile.  Call stacks come from
 * the DWARF unwind tables (no frame pointers needed) and are at most 40
 * frames deep.
 */

/* pprof.WriteHeapProfile / pprof.Lookup("heap").WriteTo: writes the heap
 * profile to fd.  Allocates (unsampled), so do not call it from a signal
 * handler.  Returns 0, or -1 with errno set. */
GORT_API int gort_heap_profile_write(int fd);
/* runtime.MemProfileRate = bytes: 0 stops sampling, 1 records every
 * allocation.  Each thread switches at its next sample point; set it early,
 * as Go advises, for a profile taken at one rate. */
GORT_API void gort_set_memprofile_rate(int64_t bytes);
/* runtime.MemProfileRate. */
GORT_API int64_t gort_memprofile_rate(void);

/* ==== The collector: Go's garbage collector for C =========================
 *
 * Objects from gort_new and its kin are collected: their memory comes back
 * once nothing reaches them.  They live in the same heap as malloc's blocks
 * (their own span classes, the same mheap and per-P caches) but are never
 * passed to free().  What reaches an object:
 *   - a word on any registered thread's stack or in its registers (every
 *     goroutine, every gort M, and every plain thread that has called
 *     gort_new or gort_register_thread);
 *   - a word in the writable data and bss of the program and of every
 *     loaded library;
 *   - a word in a range given to gort_add_roots, or in a block from
 *     gort_malloc_uncollectable;
 *   - a word inside a reachable collected object (every word, or only the
 *     words its gort_type names).
 * These are scanned conservatively: a word that points at or inside a live
 * collected object keeps it, whatever the word really is.  Blocks from plain
 * malloc are NOT scanned (as with the Boehm GC): a pointer to a collected
 * object kept only in malloc'd memory does not keep it.  Thread-local
 * variables are not scanned either.
 *
 * Two marking modes.  Concurrent marking, Go's, stops the world twice per
 * cycle for a few tens of microseconds (the roots are copied at the first
 * stop, the heap is marked while the program runs, with mark assists
 * charged to allocating threads, and the second stop finishes); it needs
 * every store that overwrites a pointer inside a collected object to go
 * through gort_store.  Stop-the-world marking stops every registered
 * thread (by signal) for the whole mark, in parallel on GOMAXPROCS
 * threads: pauses grow with the live heap, but any C code is safe.  The
 * mode is stop-the-world until the program's first gort_store, which
 * selects concurrent marking, unless the program chose
 * (gort_set_gc_concurrent, GODEBUG=gcconcurrent=0|1).  Either way memory
 * is swept lazily and by a background thread.  A stopped thread's blocking
 * system call may return EINTR (as under the Boehm GC); gort's own calls
 * retry.
 *
 * Pacing is Go's: a cycle starts when the heap has grown GOGC percent
 * (default 100) over the live heap plus stacks and globals (at least
 * 4 MiB), where a mark that counted more live only by what was allocated
 * during it yields to the mark before; GOGC=off disables it; GOMEMLIMIT=N[KiB|MiB|GiB] is a soft limit
 * that brings cycles forward.  GODEBUG=gctrace=1 prints Go's line per
 * cycle on stderr; GODEBUG=gccheckmark=1 re-marks each heap and aborts on
 * an object the first mark missed.
 *
 * Go and Boehm names: gort_new = new(T) / GC_MALLOC; gort_new_noscan =
 * GC_MALLOC_ATOMIC; gort_new_typed = new(T) with T's pointer map /
 * GC_malloc_explicitly_typed; gort_gc = runtime.GC / GC_gcollect;
 * gort_set_finalizer = runtime.SetFinalizer / GC_register_finalizer;
 * gort_add_cleanup = runtime.AddCleanup; gort_weak_* = weak.Pointer /
 * GC_general_register_disappearing_link; gort_keepalive = runtime.KeepAlive.
 */

/* A zeroed collected object of size bytes, aligned as malloc's, scanned
 * conservatively.  NULL with errno = ENOMEM when it cannot be had (size 0
 * gives a unique object). */
GORT_API GORT_MALLOC_ATTR void *gort_new(size_t size);
/* A zeroed collected object that is never scanned: it must not hold the only
 * pointer to another collected object.  Under 16 bytes, objects share
 * 16-byte blocks (Go's tiny allocator). */
GORT_API GORT_MALLOC_ATTR void *gort_new_noscan(size_t size);

/* A type's pointer map: size bytes per element; bit i of ptrmask (word
 * i / 64, bit i % 64) set when word i (of sizeof(void *) bytes) may hold a
 * pointer.  ptrmask NULL means no pointers.  Only the named words are
 * scanned, so other words may hold anything without keeping objects. */
typedef struct gort_type {
    size_t size;
    const uint64_t *ptrmask;
    const char *name;        /* for messages; may be NULL */
} gort_type;
/* The ptrmask bit of a pointer field, for types of up to 64 words:
 *   static const uint64_t node_ptrs[] = { GORT_PTRBIT(node, next) }; */
#define GORT_PTRBIT(T, field) ((uint64_t)1 << (offsetof(T, field) / sizeof(void *)))

/* A zeroed object of type t, scanned with its pointer map. */
GORT_API GORT_MALLOC_ATTR void *gort_new_typed(const gort_type *t);
/* A zeroed array of n elements of type t (NULL, ENOMEM on overflow). */
GORT_API GORT_MALLOC_ATTR void *gort_new_array(const gort_type *t, size_t n);

/* A malloc'd block whose words are roots (GC_MALLOC_UNCOLLECTABLE): it
 * keeps what it points to and is freed with free()/gort_free. */
GORT_API GORT_MALLOC_ATTR void *gort_malloc_uncollectable(size_t size);

/* *slot = val with the write barrier (Go's hybrid barrier: while a
 * concurrent mark runs, the old value and the new one are shaded).  Use it
 * for every store that overwrites a pointer inside a collected object;
 * stores into stacks, globals, registered roots and uncollectable blocks,
 * and into a fresh object's still empty fields, need not.  A program's
 * first call selects concurrent marking, unless it chose a mode. */
GORT_API void gort_store(void **slot, void *val);

/* runtime.GC: runs a full collection and returns when it is swept. */
GORT_API void gort_gc(void);

/* runtime.KeepAlive: p stays reachable at least until this point. */
static inline void gort_keepalive(const void *p)
{
#if defined(__GNUC__)
    __asm__ volatile("" : : "r"(p) : "memory");
#else
    (void)p;
#endif
}

/* Extra roots: the words in [lo, hi) are scanned at every collection until
 * removed.  Ranges are removed by the same lo and hi.  Return 0, or -1 with
 * errno (EINVAL: empty or unknown range; ENOMEM). */
GORT_API int gort_add_roots(void *lo, void *hi);
GORT_API int gort_remove_roots(void *lo, void *hi);

/* Makes the calling plain thread's stack and registers roots (done
 * automatically by its first gort_new); unregister before it exits if it
 * registered explicitly (an exiting thread is unregistered anyway). */
GORT_API void gort_register_thread(void);
GORT_API void gort_unregister_thread(void);

/* runtime.SetFinalizer: when obj (the start of a collected object) becomes
 * unreachable, fn(obj, arg) runs once on the finalizer goroutine (or
 * thread, without gort_main) and obj is freed at a later cycle unless fn
 * made it reachable again.  What obj points to is kept until fn has run.
 * fn NULL removes the finalizer.  Returns 0, or -1 with errno (EINVAL: obj
 * is not the start of a collected object; EEXIST: it has one). */
typedef void (*gort_finalizer)(void *obj, void *arg);
GORT_API int gort_set_finalizer(void *obj, gort_finalizer fn, void *arg);

/* runtime.AddCleanup: when obj becomes unreachable, fn(arg) runs once on
 * the finalizer goroutine; obj itself is freed at once, so it cannot come
 * back (arg must not point to it, or obj is never collected).  Any number
 * per object.  Returns 0, or -1 with errno (EINVAL). */
GORT_API int gort_add_cleanup(void *obj, gort_func fn, void *arg);

/* weak.Pointer: a handle that does not keep obj alive.  gort_weak_get
 * gives obj while it is reachable, NULL once it has been found unreachable
 * (cleared before finalizers run).  The handle itself is malloc'd and freed
 * with gort_weak_free.  NULL with errno (EINVAL, ENOMEM) on failure. */
typedef struct gort_weak gort_weak;
GORT_API gort_weak *gort_weak_make(void *obj);
GORT_API void *gort_weak_get(gort_weak *w);
GORT_API void gort_weak_free(gort_weak *w);

/* Chooses how the heap is marked and returns the previous mode:
 *   true: concurrently, as Go does.  The roots (stacks, registers, globals,
 *     registered ranges, uncollectable blocks) are copied with the world
 *     stopped; the heap is marked while the program runs, by a background
 *     worker and by assists that allocating threads pay in proportion to
 *     what they allocate; a second short stop finishes.  The program must
 *     make every store that overwrites a pointer inside a collected object
 *     through gort_store.
 *   false: with the world stopped, in parallel.  Safe for any C code;
 *     pauses grow with the live heap.
 * Without a choice, a program marks with the world stopped until its first
 * gort_store, which selects concurrent marking: a program written for the
 * concurrent mode should choose it before its first allocation, so that no
 * cycle before that store stops the world for long.  The choice sticks;
 * GODEBUG=gcconcurrent=1 or =0 makes it at start-up. */
GORT_API bool gort_set_gc_concurrent(bool on);

/* debug.SetGCPercent: sets GOGC (negative: off) and returns the old value. */
GORT_API int gort_set_gc_percent(int percent);
/* debug.SetMemoryLimit: sets the soft limit in bytes (INT64_MAX: none) and
 * returns the old one; a negative value only reads it. */
GORT_API int64_t gort_set_memory_limit(int64_t bytes);


/* ==== Execution trace (Go's runtime/trace) ===============================
 *
 * Records, with nanosecond stamps, what each P and M does: goroutines
 * created, started, blocked (with the reason: channel, select, sleep, I/O,
 * mutex...), unblocked and ended; system calls and P hand-offs; work
 * stealing; the heap size every 10 ms.  Events go to per-P buffers without
 * locks; a background thread (all signals blocked) writes them as Chrome
 * trace-event JSON: one lane ("tid") per P plus "no P", a slice "G<id>"
 * for each stretch a goroutine runs, instants for every event and a
 * "HeapAlloc" counter.  Open the file in https://ui.perfetto.dev or
 * chrome://tracing, or make a self-contained HTML timeline of it with
 * `tools/gort-trace-html trace.json -o trace.html`.  Off, each hook costs
 * one predictable branch.  GODEBUG=trace=FILE traces the whole run.
 */

/* runtime/trace.Start: starts writing the trace to path (created or
 * truncated).  Returns 0, or -1 with errno (EBUSY: already tracing). */
GORT_API int gort_trace_start(const char *path);
/* runtime/trace.Stop: writes out what is buffered and closes the file.
 * Done at exit for a trace still running.  Returns 0, or -1 with errno
 * (EINVAL: not tracing, EIO: the file could not be written). */
GORT_API int gort_trace_stop(void);

#ifdef __cplusplus
}
#endif

#endif /* GORT_H */
