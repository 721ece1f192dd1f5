/*
 * mgc.c — the collection cycle, its pacing and what it reports.
 *
 * A cycle, in Go's phase names:
 *   sweep termination  finish sweeping the last cycle's spans (no span may
 *                      be half swept when marking starts), gather the data
 *                      and bss ranges, take the locks the stopped world
 *                      must not hold, and stop the world (stw.c);
 *   mark               mark from the roots on GOMAXPROCS workers
 *                      (mgcmark.c); with gccheckmark, mark again and check;
 *   mark termination   clear weak handles and queue finalizers (mfinal.c),
 *                      empty every cache, bump sweepgen (which makes every
 *                      span unswept at once), set the next goal, restart;
 *   sweep              lazily, by allocation and the background sweeper
 *                      (mgcsweep.c).
 * Everything from the stop to the restart is the pause.  That is the
 * stop-the-world mode, safe for any C code.  The concurrent mode (Go's,
 * for programs that use gort_store; the default once they call it) stops
 * twice: once to copy the roots, once to finish, with the mark between the
 * two running beside the program on a controller thread, helped by mark
 * assists (collect_concurrent below; mgcmark.c).
 *
 * The pacer is Go's: after a cycle that found `live` bytes reachable, the
 * next starts when collected objects reach
 *     goal = live + (live + stacks + globals) * GOGC / 100
 * (at least 4 MiB * GOGC/100), except that `live` discounts a one-off
 * spike of objects allocated black during the mark (goal_live).
 * GOMEMLIMIT lowers the goal so that all memory gort holds stays under it,
 * but never below marked + marked/16 + 256 KiB, so a heap that does not fit
 * cannot make collection take all the CPU.
 */
#include "gc/mgc.h"
#include "gc/stw.h"
#include "mem/mcache.h"
#include "mem/mheap.h"
#include "mem/scavenge.h"
#include "os/os.h"
#include "runtime/godebug.h"
#include "runtime/print.h"
#include "sched/proc.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

rtmutex gcLock;
bool gcInited;

#define heapMinimum ((uint64_t)4 << 20)

static struct {
    uint32_t numgc, numforced;
    uint64_t pauseTotal;
    uint64_t pauseNs[256], pauseEnd[256];
    uint64_t lastGC;
    uint64_t gcCPU;            /* ns of CPU the collector used (pause x workers) */
} stats;

/* Figures only: not a root. */
__attribute__((constructor)) static void noscan_stats(void)
{
    gc_noscan_static(&stats, sizeof stats);
}

static uint64_t processStart;

__attribute__((constructor)) static void gc_stamp_start(void)
{
    processStart = os_nanotime();
}

static uint64_t walltime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- Parameters -------------------------------------------------------- */

/* GOMEMLIMIT: a byte count with an optional B, KiB, MiB, GiB or TiB
 * suffix, or "off"; -1 when malformed. */
static int64_t parse_memlimit(const char *s)
{
    if (strcmp(s, "off") == 0)
        return INT64_MAX;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno)
        return -1;
    static const struct { const char *suffix; int shift; } units[] = {
        {"", 0}, {"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > (unsigned long long)INT64_MAX >> units[i].shift)
                return INT64_MAX;
            return (int64_t)(v << units[i].shift);
        }
    }
    return -1;
}

static void bad_env(const char *name, const char *value)
{
    printbuf b = {.len = 0};
    pb_str(&b, "gort: ignoring bad ");
    pb_str(&b, name);
    pb_str(&b, "=");
    pb_str(&b, value);
    pb_str(&b, "\n");
    pb_flush(&b);
}

static void set_goal(void);

/* fork: no lock of the collector's may be held by a thread that the
 * child will not have; the child then has no helpers, no sweeper and no
 * finalizer thread, and starts them again when it needs them. */
static void gc_fork_prepare(void)
{
    gort_lock(&gcLock);
    gort_lock(&rootsLock);
    gort_lock(&specialsLock);
    gort_lock(&finLock);
    for (unsigned i = 0; i < numGCClasses; i++)
        gort_lock(&gcheap.central[i].lock);
    gort_lock(&gcheap.largeLock);
    ptrbits_fork_prepare();   /* after gcLock: no stop is under way */
    stw_fork_prepare();
}

static void gc_fork_parent(void)
{
    stw_fork_parent();
    ptrbits_fork_parent();
    gort_unlock(&gcheap.largeLock);
    for (unsigned i = 0; i < numGCClasses; i++)
        gort_unlock(&gcheap.central[i].lock);
    gort_unlock(&finLock);
    gort_unlock(&specialsLock);
    gort_unlock(&rootsLock);
    gort_unlock(&gcLock);
}

/* Called by malloc's child handler before it empties the other threads'
 * caches (which hands collected spans back under these locks); handlers
 * of the child run in the order they were registered, malloc's first. */
void gc_fork_child_locks(void)
{
    ptrbits_fork_child();
    gort_lock_reinit(&gcheap.largeLock);
    for (unsigned i = 0; i < numGCClasses; i++)
        gort_lock_reinit(&gcheap.central[i].lock);
    gort_lock_reinit(&finLock);
    gort_lock_reinit(&specialsLock);
    gort_lock_reinit(&rootsLock);
    gort_lock_reinit(&gcLock);
}

static void gc_fork_child(void)
{
    /* Sweeps the parent's other threads had claimed will never finish
     * here (their spans are simply lost to the child); finishsweep must not
     * wait for them. */
    __atomic_store_n(&gcheap.nsweeping, 0, __ATOMIC_RELEASE);
    gcmark_after_fork_child();
    gc_controller_after_fork_child();
    sweeper_after_fork_child();
    finq_after_fork_child();
}

void gc_params_init(void)
{
    pthread_atfork(gc_fork_prepare, gc_fork_parent, gc_fork_child);
    gcheap.gcpercent = 100;
    gcheap.memoryLimit = INT64_MAX;
    const char *v = getenv("GOGC");
    if (v && *v) {
        char *end;
        long n = strtol(v, &end, 10);
        if (strcmp(v, "off") == 0)
            gcheap.gcpercent = -1;
        else if (*end == 0 && end != v && n >= -1 && n <= 1000000)
            gcheap.gcpercent = (int32_t)n;
        else
            bad_env("GOGC", v);
    }
    v = getenv("GOMEMLIMIT");
    if (v && *v) {
        int64_t lim = parse_memlimit(v);
        if (lim < 0)
            bad_env("GOMEMLIMIT", v);
        else
            gcheap.memoryLimit = lim;
    }
    gcConcurrent = debug.gcconcurrent == 1;
    gcModeChosen = debug.gcconcurrent >= 0;
    set_goal();
}

/* Memory gort holds in use: the heap's pages in spans, and stacks. */
static uint64_t memory_in_use(void)
{
    return (__atomic_load_n(&mheap_.pagesInUse, __ATOMIC_RELAXED) +
            __atomic_load_n(&mheap_.pagesManual, __ATOMIC_RELAXED)) << _PageShift;
}

/* The part of it not in collected spans (malloc's blocks, stacks). */
static uint64_t memory_besides_collected(void)
{
    uint64_t all = memory_in_use();
    uint64_t gc = __atomic_load_n(&gcheap.pagesInUse, __ATOMIC_RELAXED) << _PageShift;
    return all > gc ? all - gc : 0;
}

/* The goal and the trigger, from goalLive (GOGC's part) and heapMarked
 * (what the heap holds now). */
static void set_goal(void)
{
    uint64_t live = gcheap.goalLive, marked = gcheap.heapMarked;
    uint64_t goal = UINT64_MAX;
    if (gcheap.gcpercent >= 0) {
        uint64_t pct = (uint64_t)gcheap.gcpercent;
        uint64_t scan = live + gcheap.stacksScan + gcheap.globalsScan;
        goal = live + scan * pct / 100;
        /* At least half the usual runway over what is marked now, so that
         * a goal set from a smaller live figure never starts the next
         * cycle at once. */
        uint64_t least = marked + marked * pct / 200;
        if (goal < least)
            goal = least;
        uint64_t min = heapMinimum * pct / 100;
        if (goal < min)
            goal = min;
    }
    if (gcheap.memoryLimit != INT64_MAX) {
        uint64_t other = memory_in_use();
        other = other > marked ? other - marked : 0;
        uint64_t lim = (uint64_t)gcheap.memoryLimit;
        uint64_t byLimit = lim > other ? lim - other : 0;
        uint64_t floor = marked + marked / 16 + (256 << 10);
        if (byLimit < floor)
            byLimit = floor;
        if (byLimit < goal)
            goal = byLimit;
    }
    gcheap.goal = goal;
    /* A concurrent mark needs runway: start it 70 % of the way to the
     * goal, so that it finishes before the heap gets there. */
    uint64_t trigger = goal;
    if (gcConcurrent && goal != UINT64_MAX && goal > marked)
        trigger = marked + (goal - marked) / 10 * 7;
    __atomic_store_n(&gcheap.trigger, trigger, __ATOMIC_RELEASE);
}

GORT_API int gort_set_gc_percent(int percent)
{
    gcinit_once();
    gort_lock(&gcLock);
    int old = gcheap.gcpercent;
    gcheap.gcpercent = percent < 0 ? -1 : percent;
    set_goal();
    gort_unlock(&gcLock);
    gc_maybe_start();
    return old;
}

/* Sets the marking mode and returns the old one; !explicit_ (the program's
 * first gort_store) only while the program has not chosen.  The trigger
 * moves with the mode. */
bool gc_set_mode(bool concurrent, bool explicit_)
{
    gcinit_once();
    gort_lock(&gcLock);
    bool old = gcConcurrent;
    if (explicit_ || !gcModeChosen) {
        __atomic_store_n(&gcModeChosen, true, __ATOMIC_RELAXED);
        __atomic_store_n(&gcConcurrent, concurrent, __ATOMIC_RELEASE);
        set_goal();
    }
    gort_unlock(&gcLock);
    return old;
}

GORT_API bool gort_set_gc_concurrent(bool on)
{
    return gc_set_mode(on, true);
}

GORT_API int64_t gort_set_memory_limit(int64_t bytes)
{
    gcinit_once();
    gort_lock(&gcLock);
    int64_t old = gcheap.memoryLimit;
    if (bytes >= 0) {
        gcheap.memoryLimit = bytes;
        set_goal();
    }
    gort_unlock(&gcLock);
    if (bytes >= 0)
        gc_maybe_start();
    return old;
}

/* ---- gctrace ---------------------------------------------------------- */

/* Go's format for a duration in ms: whole ms from 10 ms up, else two
 * significant digits with at most three decimals. */
static void pb_ms(printbuf *b, uint64_t ns)
{
    if (ns >= 10000000) {
        pb_u64(b, ns / 1000000);
        return;
    }
    uint64_t x = ns / 1000;   /* µs */
    if (x == 0) {
        pb_str(b, "0");
        return;
    }
    int dec = 3;
    while (x >= 100) {
        x /= 10;
        dec--;
    }
    uint64_t div = 1;
    for (int i = 0; i < dec; i++)
        div *= 10;
    pb_u64(b, x / div);
    if (dec > 0) {
        pb_str(b, ".");
        uint64_t frac = x % div;
        for (uint64_t d = div / 10; d > 0; d /= 10) {
            char digit[2] = {(char)('0' + frac / d % 10), 0};
            pb_str(b, digit);
        }
    }
}

/* One cycle's clock times: the first stop (sweep termination), the mark
 * and the second stop (mark termination); markCPU is the mark's CPU. */
struct cycletimes {
    uint64_t start, stw1, mark, stw2, markCPU, assistCPU;
    uint64_t goal;         /* the heap goal this cycle ran against (gctrace's) */
};

static void gctrace_line(const struct cycletimes *ct, int nproc, uint64_t heap0, uint64_t heap1,
                         uint64_t live, bool forced)
{
    uint64_t stw1 = ct->stw1, mark = ct->mark, stw2 = ct->stw2;
    uint64_t elapsed = os_nanotime() - processStart;
    uint64_t util = elapsed ? stats.gcCPU * 100 / (elapsed * (uint64_t)nproc) : 0;
    uint64_t start = ct->start;
    printbuf b = {.len = 0};
    pb_str(&b, "gc ");
    pb_u64(&b, stats.numgc);
    pb_str(&b, " @");
    uint64_t at = (start - processStart) / 1000000;
    pb_u64(&b, at / 1000);
    pb_str(&b, ".");
    pb_u64w(&b, at % 1000 / 100, 1);
    pb_u64w(&b, at % 100 / 10, 1);
    pb_u64w(&b, at % 10, 1);
    pb_str(&b, "s ");
    pb_u64(&b, util);
    pb_str(&b, "%: ");
    pb_ms(&b, stw1);
    pb_str(&b, "+");
    pb_ms(&b, mark);
    pb_str(&b, "+");
    pb_ms(&b, stw2);
    pb_str(&b, " ms clock, ");
    pb_ms(&b, stw1 * (uint64_t)nproc);
    pb_str(&b, "+");
    pb_ms(&b, ct->assistCPU);
    pb_str(&b, "/");
    pb_ms(&b, ct->markCPU);
    pb_str(&b, "/0+");
    pb_ms(&b, stw2 * (uint64_t)nproc);
    pb_str(&b, " ms cpu, ");
    pb_u64(&b, heap0 >> 20);
    pb_str(&b, "->");
    pb_u64(&b, heap1 >> 20);
    pb_str(&b, "->");
    pb_u64(&b, live >> 20);
    pb_str(&b, " MB, ");
    pb_u64(&b, ct->goal >> 20);
    pb_str(&b, " MB goal, ");
    pb_u64(&b, gcheap.stacksScan >> 20);
    pb_str(&b, " MB stacks, ");
    pb_u64(&b, gcheap.globalsScan >> 20);
    pb_str(&b, " MB globals, ");
    pb_u64(&b, (uint64_t)nproc);
    pb_str(&b, " P");
    if (forced)
        pb_str(&b, " (forced)");
    pb_str(&b, "\n");
    pb_flush(&b);
}

/* ---- The cycle -------------------------------------------------------- */

uint32_t gcphase;
bool gcConcurrent;
bool gcModeChosen;

/* ---- Pieces both modes share ------------------------------------------ */

/* Locks the stopped world must not be holding (taken before a stop). */
static void lock_world(void)
{
    gort_lock(&rootsLock);
    gort_lock(&specialsLock);
    gort_lock(&finLock);
    gort_lock(&allglock);
}

static void unlock_world(void)
{
    gort_unlock(&allglock);
    gort_unlock(&finLock);
    gort_unlock(&specialsLock);
    gort_unlock(&rootsLock);
}

/* The live heap the next goal is set from.  Go's is the heap this mark
 * marked, which includes everything the program allocated (black) during
 * the mark: when that was a structure the program dropped soon after
 * (GCBench builds and drops trees, and a mark of a few milliseconds takes
 * in one or two), the goal doubles garbage, and the heap's peak follows
 * the goal.  So the figure is the smaller of this mark and the last, since
 * such a spike rarely comes twice running while lasting growth shows in
 * both (a step up is followed one cycle late), but never less than what
 * this mark reached by scanning, without the black bytes. */
static uint64_t goal_live(uint64_t marked, uint64_t black)
{
    uint64_t prev = gcheap.heapMarked;
    uint64_t live = prev != 0 && prev < marked ? prev : marked;
    uint64_t found = marked > black ? marked - black : 0;
    return live > found ? live : found;
}

/* Mark termination, world stopped: finalizers and weak handles, every
 * cache emptied, every span made unswept, the next goal.  black: the bytes
 * allocated black during a concurrent mark (counted in marked). */
static void mark_termination(uint64_t marked, uint64_t black)
{
    specials_process();
    marked += gc_mark_extra();
    gcflush_caches();
    sweep_before_bump();
    __atomic_store_n(&gcheap.sweepgen, gcheap.sweepgen + 2, __ATOMIC_RELEASE);
    gcheap.goalLive = goal_live(marked, black);
    gcheap.heapMarked = marked;
    __atomic_store_n(&gcheap.heapLive, marked, __ATOMIC_RELAXED);
    set_goal();
}

/* Statistics, then what runs with the world going again. */
static void cycle_done(const struct cycletimes *ct, uint64_t pause, uint64_t cpu, int nproc,
                       uint64_t heap0, uint64_t heap1, bool forced)
{
    stats.pauseNs[stats.numgc % 256] = pause;
    stats.lastGC = walltime();
    stats.pauseEnd[stats.numgc % 256] = stats.lastGC;
    stats.pauseTotal += pause;
    stats.gcCPU += cpu;
    __atomic_store_n(&stats.numgc, stats.numgc + 1, __ATOMIC_RELEASE);
    if (forced)
        stats.numforced++;
    specials_after_start();
    /* Keep backed what the next cycle's heap will need and a tenth, beside
     * everything else in use; the scavenger releases the rest.  "Else" is
     * what is not in collected spans: those still hold this cycle's
     * garbage until they are swept, and counting it kept every page the
     * heap ever touched backed (binary-trees peaked with 100 MiB of free
     * pages resident). */
    uint64_t goal = gcheap.goal, other = memory_besides_collected();
    scavenge_set_retain_goal(goal == UINT64_MAX ? UINT64_MAX : other + goal + goal / 10);
    sweeper_kick();
    finq_wake();
    if (debug.gctrace)
        gctrace_line(ct, nproc, heap0, heap1, gcheap.heapMarked, forced);
}

/* ---- Stop-the-world cycles -------------------------------------------- */

/* The stop, the mark and the restart, with the collector's own registers
 * spilled on its stack so its frames are scanned like any thread's. */
static __attribute__((noinline)) void stopped_phase(int nworkers, uint64_t *tStop,
                                                    uint64_t *tMark)
{
    gc_spill_registers();
    stw_stop(gc_current_sp(), false);
    *tStop = os_nanotime();
    uint64_t marked = gc_mark(nworkers, debug.gccheckmark != 0);
    *tMark = os_nanotime();
    mark_termination(marked, 0);
    stw_start();
}

/* Takes gcLock for a cycle; false (lock dropped) when an unforced one is
 * no longer due: the trigger moved since it was requested (GOGC turned
 * off, a limit raised) or another cycle already ran. */
static bool cycle_begin(bool forced)
{
    gort_lock(&gcLock);
    if (!forced && __atomic_load_n(&gcheap.heapLive, __ATOMIC_RELAXED) <
                       __atomic_load_n(&gcheap.trigger, __ATOMIC_ACQUIRE)) {
        gort_unlock(&gcLock);
        return false;
    }
    return true;
}

static void collect_stw(bool forced)
{
    if (!cycle_begin(forced))
        return;
    uint64_t start = os_nanotime(), goal = gcheap.goal;
    finishsweep();
    uint64_t heap0 = __atomic_load_n(&gcheap.heapLive, __ATOMIC_RELAXED);
    gc_collect_globals();
    int nproc = gort_gomaxprocs();
    gc_prepare_workers(nproc);
    lock_world();
    uint64_t tStop, tMark;
    uint64_t t0 = os_nanotime();
    stopped_phase(nproc, &tStop, &tMark);
    uint64_t tEnd = os_nanotime();
    unlock_world();
    /* gctrace's first figure is the stop itself, as Go's sweep-termination
     * pause; the sweeping and set-up before it run with the world going. */
    struct cycletimes ct = {start, tStop - t0, tMark - tStop, tEnd - tMark,
                            (tMark - tStop) * (uint64_t)nproc, 0, goal};
    uint64_t cpu = (tStop - t0 + tEnd - tMark) * (uint64_t)nproc + ct.markCPU + (t0 - start);
    cycle_done(&ct, tEnd - t0, cpu, nproc, heap0, heap0, forced);
    gort_unlock(&gcLock);
}

/* ---- Concurrent cycles ------------------------------------------------- */

/* A cycle runs on the controller thread (Go's background mark worker and
 * gcMarkDone in one): it stops the world to scan the roots, marks the
 * heap beside the running program on a quarter of GOMAXPROCS (at least
 * this one thread), and stops it again to finish.  The thread is not
 * registered: it holds no program data and is never stopped. */
static struct {
    rtmutex lock;
    bool started, requested, forced;
    uint32_t request;      /* futex: bumped per request */
    uint32_t begun;        /* cycles begun */
    uint32_t marking;      /* futex: bumped when a cycle's mark begins */
    uint32_t done;         /* futex: cycles finished */
} ctl;

static void collect_concurrent(bool forced)
{
    if (!cycle_begin(forced))
        return;
    uint64_t start = os_nanotime(), goal = gcheap.goal;
    finishsweep();
    uint64_t heap0 = __atomic_load_n(&gcheap.heapLive, __ATOMIC_RELAXED);
    gc_collect_globals();
    int nproc = gort_gomaxprocs();
    int nbg = nproc / 4 > 1 ? nproc / 4 : 1;
    gc_prepare_workers(nproc);
    gc_snapshot_prepare();

    lock_world();
    uint64_t t0 = os_nanotime();
    stw_stop(0, true);
    gc_mark_start();
    __atomic_store_n(&gcphase, _GCmark, __ATOMIC_RELEASE);
    stw_start();
    uint64_t t1 = os_nanotime();
    unlock_world();
    __atomic_add_fetch(&ctl.marking, 1, __ATOMIC_RELEASE);
    os_futex_wake(&ctl.marking, INT32_MAX);

    gc_mark_concurrent(nbg);
    uint64_t t2 = os_nanotime();

    lock_world();
    uint64_t t3 = os_nanotime();
    stw_stop(0, true);
    uint64_t heap1 = __atomic_load_n(&gcheap.heapLive, __ATOMIC_RELAXED);
    uint64_t marked = gc_mark_finish(nproc, debug.gccheckmark != 0);
    uint64_t black = 0;
    for (struct mcache *c = allmcaches; c; c = c->allnext) {
        black += c->gcblack;
        c->gcblack = 0;
    }
    __atomic_store_n(&gcphase, _GCoff, __ATOMIC_RELEASE);
    mark_termination(marked + black, black);
    stw_start();
    uint64_t t4 = os_nanotime();
    unlock_world();

    struct cycletimes ct = {start, t1 - t0, t3 - t1, t4 - t3, (t2 - t1) * (uint64_t)nbg,
                            gc_assist_time_take(), goal};
    uint64_t cpu = (t1 - t0 + t4 - t3) * (uint64_t)nproc + ct.markCPU + ct.assistCPU + (t0 - start);
    cycle_done(&ct, (t1 - t0) + (t4 - t3), cpu, nproc, heap0, heap1, forced);
    gort_unlock(&gcLock);
}

static void *gc_controller(void *arg)
{
    (void)arg;
    for (;;) {
        gort_lock(&ctl.lock);
        while (!ctl.requested) {
            uint32_t seen = ctl.request;
            gort_unlock(&ctl.lock);
            os_futex_wait(&ctl.request, seen, -1);
            gort_lock(&ctl.lock);
        }
        bool forced = ctl.forced;
        ctl.requested = ctl.forced = false;
        ctl.begun++;
        gort_unlock(&ctl.lock);
        collect_concurrent(forced);
        __atomic_add_fetch(&ctl.done, 1, __ATOMIC_RELEASE);
        os_futex_wake(&ctl.done, INT32_MAX);
    }
    return NULL;
}

/* Sleeps until cycle *want has finished (a waiting thread is blocked:
 * neither of the cycle's stops needs to wake it). */
static void *wait_cycle_done(void *want)
{
    for (;;) {
        uint32_t d = __atomic_load_n(&ctl.done, __ATOMIC_ACQUIRE);
        if ((int32_t)(d - *(uint32_t *)want) >= 0)
            return NULL;
        os_futex_wait(&ctl.done, d, -1);
    }
}

/* A cycle requested or running (ctl.lock held). */
static bool cycle_pending_locked(void)
{
    return ctl.requested || ctl.begun != __atomic_load_n(&ctl.done, __ATOMIC_ACQUIRE);
}

static bool cycle_pending(void)
{
    gort_lock(&ctl.lock);
    bool pending = cycle_pending_locked();
    gort_unlock(&ctl.lock);
    return pending;
}

/* Asks the controller for a cycle; a forced request waits for one that
 * begins after it to finish. */
static void request_concurrent(bool forced)
{
    gort_lock(&ctl.lock);
    if (!ctl.started) {
        ctl.started = true;
        gc_start_thread(gc_controller, NULL, "gc: cannot start the collector's thread");
    }
    if (!forced && cycle_pending_locked()) {
        gort_unlock(&ctl.lock);
        return;
    }
    uint32_t want = ctl.begun + 1;
    ctl.requested = true;
    ctl.forced |= forced;
    ctl.request++;
    gort_unlock(&ctl.lock);
    os_futex_wake(&ctl.request, 1);
    if (forced)
        gc_do_blocking(wait_cycle_done, &want);
}

void gc_wait_mark_done(void)
{
    while (gc_marking()) {
        uint32_t d = __atomic_load_n(&ctl.done, __ATOMIC_ACQUIRE);
        if (gc_marking())
            os_futex_wait(&ctl.done, d, 1000 * 1000);
    }
}

/* A wait of at most 1 ms for the running cycle to end (blocked: the
 * cycle's stops need not wake the waiter). */
static void *wait_mark_done_1ms(void *d)
{
    if (gc_marking())
        os_futex_wait(&ctl.done, *(uint32_t *)d, 1000 * 1000);
    return NULL;
}

/* The same, for at most ASSIST_WAIT_NS: long enough for the background
 * workers to get ahead again, short enough not to stall the program. */
#ifndef ASSIST_WAIT_NS
#define ASSIST_WAIT_NS (50 * 1000)
#endif
static void *wait_mark_progress(void *d)
{
    if (gc_marking())
        os_futex_wait(&ctl.done, *(uint32_t *)d, ASSIST_WAIT_NS);
    return NULL;
}

/* A wait of at most 1 ms for a requested cycle to begin its mark (blocked,
 * as above).  The controller thread may be waiting for a core: this one is
 * given up to it. */
static void *wait_mark_begin_1ms(void *d)
{
    if (!gc_marking() && cycle_pending())
        os_futex_wait(&ctl.marking, *(uint32_t *)d, 1000 * 1000);
    return NULL;
}

/* Starts a cycle at the trigger.  While marking: past Go's hard goal
 * (goal + 10 %) allocation waits up to 1 ms at a time for the cycle to
 * end; past the goal itself, a thread that owes assist work it could not
 * find (owed: the background workers hold all of it) waits up to 50 µs for
 * them to get ahead, as Go parks such a goroutine.  Before the mark: a
 * cycle runs on the controller thread, which the OS may not run for a
 * while when every core is busy; nothing else would hold the program back
 * then (on a loaded machine binary-trees went 7x past its goal before the
 * mark began), so past the goal allocation waits for the mark to begin. */
static void gc_pace(bool owed)
{
    uint64_t live = __atomic_load_n(&gcheap.heapLive, __ATOMIC_RELAXED);
    if (gc_marking()) {
        uint64_t hard = gcheap.goal + gcheap.goal / 10;
        uint32_t d = __atomic_load_n(&ctl.done, __ATOMIC_ACQUIRE);
        if (live > hard)
            gc_do_blocking(wait_mark_done_1ms, &d);
        else if (owed && live > gcheap.goal)
            gc_do_blocking(wait_mark_progress, &d);
        return;
    }
    if (live < __atomic_load_n(&gcheap.trigger, __ATOMIC_ACQUIRE))
        return;
    uint32_t m = __atomic_load_n(&ctl.marking, __ATOMIC_ACQUIRE);
    gc_collect(false);
    if (live > gcheap.goal && __atomic_load_n(&gcConcurrent, __ATOMIC_ACQUIRE))
        gc_do_blocking(wait_mark_begin_1ms, &m);
}

void gc_maybe_start(void)
{
    gc_pace(false);
}

void gc_alloc_slow(uint64_t bytes)
{
    stw_poll();
    gc_pace(gc_marking() && gc_assist_alloc(bytes));
}

void gc_collect(bool forced)
{
    gcinit_once();
    if (!gctls.self)
        gcthread_register(false);
    if (__atomic_load_n(&gcConcurrent, __ATOMIC_ACQUIRE))
        request_concurrent(forced);
    else
        collect_stw(forced);
}

void gc_controller_after_fork_child(void)
{
    gort_lock_reinit(&ctl.lock);
    ctl.started = ctl.requested = ctl.forced = false;
    ctl.begun = ctl.done;
}

GORT_API void gort_gc(void)
{
    gc_collect(true);
    /* runtime.GC returns with the heap swept. */
    finishsweep();
}

GORT_API void gort_register_thread(void)
{
    gcinit_once();
    gcthread_register(true);
}

GORT_API void gort_unregister_thread(void)
{
    gcthread_unregister();
}

/* ---- Statistics ------------------------------------------------------- */

void gc_fill_memstats(struct gort_memstats *m)
{
    if (!__atomic_load_n(&gcInited, __ATOMIC_ACQUIRE))
        return;
    uint64_t nmalloc = 0, bytes = 0;
    for (struct mcache *c = __atomic_load_n(&allmcaches, __ATOMIC_ACQUIRE); c; c = c->allnext) {
        nmalloc += __atomic_load_n(&c->gcnmalloc, __ATOMIC_RELAXED);
        bytes += __atomic_load_n(&c->gcbytes, __ATOMIC_RELAXED);
    }
    uint64_t nfreed = __atomic_load_n(&gcheap.nfreed, __ATOMIC_RELAXED);
    uint64_t freedBytes = __atomic_load_n(&gcheap.freedBytes, __ATOMIC_RELAXED);
    gort_lock(&gcLock);
    m->mallocs += nmalloc;
    m->frees += nfreed;
    m->total_alloc += bytes;
    m->heap_alloc += bytes - freedBytes;
    m->alloc = m->heap_alloc;
    m->heap_objects += nmalloc - nfreed;
    m->gc_heap_live = __atomic_load_n(&gcheap.heapLive, __ATOMIC_RELAXED);
    m->gc_heap_marked = gcheap.heapMarked;
    m->gc_objects = nmalloc - nfreed;
    m->next_gc = gcheap.goal;
    m->last_gc = stats.lastGC;
    m->pause_total_ns = stats.pauseTotal;
    memcpy(m->pause_ns, stats.pauseNs, sizeof m->pause_ns);
    memcpy(m->pause_end, stats.pauseEnd, sizeof m->pause_end);
    m->num_gc = stats.numgc;
    m->num_forced_gc = stats.numforced;
    uint64_t elapsed = os_nanotime() - processStart;
    int nproc = gort_gomaxprocs();
    m->gc_cpu_fraction = elapsed ? (double)stats.gcCPU / ((double)elapsed * nproc) : 0;
    gort_unlock(&gcLock);
}
