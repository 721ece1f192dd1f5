/*
 * trace.c — the execution tracer (GODEBUG=trace=FILE, gort_trace_start).
 *
 * Recording.  Each event is 32 bytes: a nanotime stamp, two arguments, the
 * M and the event type.  Events go into 64 KiB chunks.  A P owns its
 * current chunk (p->tracebuf) and only the M holding the P appends to it,
 * so the hot path takes no lock: write the record, then publish the new
 * count with a release store.  A full chunk is replaced first and then
 * pushed on a lock-free list of full chunks.  Threads without a P (sysmon,
 * a goroutine in a system call, plain threads) append to one global chunk
 * under a lock.  Chunks come from os_alloc in batches and are recycled
 * through a small locked pool; nothing here calls malloc, so events may be
 * recorded under any runtime lock.
 *
 * Writing.  A background thread (all signals blocked) wakes every 20 ms,
 * takes the full list, and also copies out what the current chunks hold so
 * far (each chunk remembers how far it was written).  Chunks carry a
 * per-lane sequence number so a lane's events are always written in
 * order.  The writer turns events into Chrome trace-event JSON: one "tid"
 * lane per P plus "no P" and "GC", an instant event per recorded event, a
 * complete ("X") slice "G<goid>" for each stretch a goroutine ran on a P
 * (and "G<goid> syscall" for the part spent in a system call), "X" slices
 * for GC cycles and a "HeapAlloc" counter.  Perfetto and Chromium's viewer
 * open the file; tools/gort-trace-html draws it as one HTML page.
 *
 * Stopping clears trace_on, stops the thread, writes what is left and
 * closes the file.  A thread that read trace_on just before may still
 * append one event afterwards; it stays in its chunk and is discarded at
 * the next start (events older than the start are never written).
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gc/mgc.h"
#include "gort.h"
#include "os/lock.h"
#include "os/os.h"
#include "runtime/godebug.h"
#include "sched/runtime2.h"
#include "trace/trace.h"

bool trace_on;

struct traceRec {
    int64_t ts;                  /* nanotime */
    uint64_t a, b;
    int32_t mid;                 /* the recording M, -1 for a plain thread */
    uint16_t ev;
    uint16_t pad;
};

#define CHUNK_BYTES (64 << 10)
#define CHUNK_BATCH 16               /* chunks per os_alloc */
#define MAXLANES 1024                /* Ps: schedinit caps GOMAXPROCS at 1024 */
#define LANE_NOP MAXLANES            /* events from threads without a P */
#define LANE_GC (MAXLANES + 1)       /* GC cycles (output only) */
#define TID_NOP 100000               /* their "tid" in the JSON */
#define TID_GC 100001

struct traceChunk {
    struct traceChunk *next;     /* full list or pool */
    uint64_t seq;                /* within its lane */
    uint32_t n;                  /* atomic: records written (release) */
    uint32_t flushed;            /* the writer's: records already written out */
    int32_t lane;
    uint32_t pad;
    struct traceRec ev[];
};
#define CHUNK_NEV ((uint32_t)((CHUNK_BYTES - sizeof(struct traceChunk)) / sizeof(struct traceRec)))

/* ---- Recording ------------------------------------------------------------ */

static struct traceChunk *fullList;       /* atomic: pushed by recorders */
static rtmutex poolLock = RTMUTEX_INIT;
static struct traceChunk *pool;
static rtmutex globLock = RTMUTEX_INIT;   /* the no-P chunk's appenders */
static struct traceChunk *globCur;        /* atomic */
static struct p *tracedP[MAXLANES];       /* atomic: Ps that have a chunk */
static uint64_t dropped;                  /* atomic: events lost to no memory */

static struct traceChunk *chunkGet(void)
{
    gort_lock(&poolLock);
    struct traceChunk *c = pool;
    if (c) {
        pool = c->next;
    } else {
        char *mem = os_alloc((size_t)CHUNK_BYTES * CHUNK_BATCH);
        if (mem) {
            for (int i = 1; i < CHUNK_BATCH; i++) {
                struct traceChunk *x = (struct traceChunk *)(mem + (size_t)i * CHUNK_BYTES);
                x->next = pool;
                pool = x;
            }
            c = (struct traceChunk *)mem;
        }
    }
    gort_unlock(&poolLock);
    return c;
}

static void chunkPut(struct traceChunk *c)
{
    gort_lock(&poolLock);
    c->next = pool;
    pool = c;
    gort_unlock(&poolLock);
}

static void fullPush(struct traceChunk *c)
{
    struct traceChunk *old = __atomic_load_n(&fullList, __ATOMIC_RELAXED);
    do
        c->next = old;
    while (!__atomic_compare_exchange_n(&fullList, &old, c, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
}

/* Appends to the chunk in *slot, which only the caller writes (the P's
 * owner, or a holder of globLock).  The successor of a full chunk is
 * published before the full one is pushed: the writer thread must never
 * find a chunk it already recycled still installed as current. */
static void append(void **slot, int32_t lane, const struct traceRec *r)
{
    struct traceChunk *c = __atomic_load_n(slot, __ATOMIC_RELAXED);
    uint32_t n = c ? __atomic_load_n(&c->n, __ATOMIC_RELAXED) : CHUNK_NEV;
    if (n == CHUNK_NEV) {
        struct traceChunk *nc = chunkGet();
        if (!nc) {
            __atomic_add_fetch(&dropped, 1, __ATOMIC_RELAXED);
            return;
        }
        nc->seq = c ? c->seq + 1 : 0;
        nc->flushed = 0;
        nc->lane = lane;
        __atomic_store_n(&nc->n, 0, __ATOMIC_RELAXED);
        __atomic_store_n(slot, (void *)nc, __ATOMIC_RELEASE);
        if (c)
            fullPush(c);
        c = nc;
        n = 0;
    }
    c->ev[n] = *r;
    __atomic_store_n(&c->n, n + 1, __ATOMIC_RELEASE);
}

static void appendP(struct p *pp, const struct traceRec *r)
{
    if (pp->id < 0 || pp->id >= MAXLANES)
        return;
    bool first = __atomic_load_n(&pp->tracebuf, __ATOMIC_RELAXED) == NULL;
    append(&pp->tracebuf, pp->id, r);
    if (first)
        __atomic_store_n(&tracedP[pp->id], pp, __ATOMIC_RELEASE);
}

void trace_event(int ev, uint64_t a, uint64_t b)
{
    if (ev < 0 || ev >= traceEvCount)
        return;
    struct g *gp = getg();
    struct m *mp = gp ? gp->m : NULL;
    struct p *pp = mp ? mp->p : NULL;
    struct traceRec r = {.ts = nanotime(), .a = a, .b = b,
                         .mid = mp ? (int32_t)mp->id : -1, .ev = (uint16_t)ev};
    /* Events that name their P come from the P's holder even where the
     * thread's own records say otherwise: GoStart while the switch is half
     * done (the leaving G has no M any more), GoSysBlock from sysmon, which
     * has just won the P from the system call and owns it until the
     * hand-off.  They go on that P's lane. */
    if (!pp && allp) {
        uint64_t pid = ev == traceEvGoStart ? b : a;
        if ((ev == traceEvGoStart || ev == traceEvGoSysBlock) && pid < (uint64_t)gomaxprocs) {
            struct p *owner = allp[pid];
            if (r.mid < 0 && ev == traceEvGoStart) {
                struct m *holder = __atomic_load_n(&owner->m, __ATOMIC_RELAXED);
                r.mid = holder ? (int32_t)holder->id : -1;
            }
            appendP(owner, &r);
            return;
        }
    }
    if (pp) {
        appendP(pp, &r);
        /* A goroutine that takes a P on its way out of a system call keeps
         * running without passing through execute: record its start. */
        if (ev == traceEvProcStart && gp != mp->g0 && gp->goid > 0) {
            struct traceRec s = {.ts = r.ts, .a = (uint64_t)gp->goid, .b = (uint64_t)pp->id,
                                 .mid = r.mid, .ev = traceEvGoStart};
            appendP(pp, &s);
        }
        return;
    }
    gort_lock(&globLock);
    append((void **)&globCur, LANE_NOP, &r);
    gort_unlock(&globLock);
}

/* ---- Writing JSON ---------------------------------------------------------- */

/* The writer's state, under flushLock (the writer thread, start and stop). */
struct lane {
    bool known;                  /* next is valid for this trace */
    bool named;                  /* thread_name written */
    bool open;                   /* a goroutine slice is running */
    uint64_t next;               /* the chunk seq to write next */
    int64_t g, start, sys;       /* the open slice: goid, start, syscall start or -1 */
    int32_t mid;
};

static rtmutex startLock = RTMUTEX_INIT;  /* start and stop */
static bool tracing;                      /* under startLock */
static rtmutex flushLock = RTMUTEX_INIT;
static struct lane lanes[MAXLANES + 2];
static int traceFd = -1;
static int64_t t0;
static bool writeErr, firstOut;
static int64_t gcStart = -1;
static char obuf[1 << 18];
static size_t olen;

static pthread_t flusherThread;
static uint32_t flusherQuit;              /* futex word */

static const char *const evNames[traceEvCount] = {
    "ProcStart", "ProcStop", "GoCreate", "GoStart", "GoEnd", "GoBlock", "GoUnblock",
    "GoSysCall", "GoSysExit", "GoSysBlock", "Steal", "HeapAlloc", "GCStart", "GCDone",
};

static void o_flush(void)
{
    size_t off = 0;
    while (off < olen && !writeErr) {
        ssize_t w = write(traceFd, obuf + off, olen - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            writeErr = true;
        else
            off += (size_t)w;
    }
    olen = 0;
}

/* Inlined so that the length of a literal is folded at compile time. */
static inline __attribute__((always_inline)) void o_str(const char *s)
{
    size_t n = strlen(s);
    if (olen + n > sizeof obuf)
        o_flush();
    memcpy(obuf + olen, s, n);
    olen += n;
}

static void o_u64(uint64_t v)
{
    char tmp[24];
    int i = 23;
    tmp[i] = 0;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    o_str(tmp + i);
}

static void o_i64(int64_t v)
{
    if (v < 0) {
        o_str("-");
        o_u64((uint64_t)0 - (uint64_t)v);
    } else {
        o_u64((uint64_t)v);
    }
}

/* Nanoseconds as microseconds with three decimals, the format's unit. */
static void o_us(int64_t ns)
{
    if (ns < 0)
        ns = 0;
    o_u64((uint64_t)ns / 1000);
    char frac[5] = {'.', (char)('0' + ns / 100 % 10), (char)('0' + ns / 10 % 10),
                    (char)('0' + ns % 10), 0};
    o_str(frac);
}

/* A JSON string body: the names gort writes need no escaping but a quote
 * or control character in a wait reason must not break the file. */
static void o_esc(const char *s)
{
    for (; *s; s++) {
        if (olen + 1 > sizeof obuf)
            o_flush();
        bool bad = *s == '"' || *s == '\\' || (unsigned char)*s < 0x20;
        obuf[olen++] = bad ? '?' : *s;
    }
}

static int64_t laneTid(int lane)
{
    return lane == LANE_NOP ? TID_NOP : lane == LANE_GC ? TID_GC : lane;
}

/* Opens one event: {"name":NAME,"ph":PH,"ts":T,"pid":1,"tid":TID */
static void o_head(const char *name, int64_t g, const char *ph, int64_t ts, int lane)
{
    o_str(firstOut ? "\n{\"name\":\"" : ",\n{\"name\":\"");
    firstOut = false;
    if (g >= 0) {
        o_str("G");
        o_i64(g);
    }
    o_esc(name);
    o_str("\",\"ph\":\"");
    o_str(ph);
    o_str("\",\"ts\":");
    o_us(ts - t0);
    o_str(",\"pid\":1,\"tid\":");
    o_i64(laneTid(lane));
}

static void nameLane(int lane)
{
    struct lane *l = &lanes[lane];
    if (l->named)
        return;
    l->named = true;
    o_str(firstOut ? "\n" : ",\n");
    firstOut = false;
    o_str("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":");
    o_i64(laneTid(lane));
    o_str(",\"args\":{\"name\":\"");
    if (lane == LANE_NOP) {
        o_str("no P");
    } else if (lane == LANE_GC) {
        o_str("GC");
    } else {
        o_str("P");
        o_i64(lane);
    }
    o_str("\"}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":1,\"tid\":");
    o_i64(laneTid(lane));
    o_str(",\"args\":{\"sort_index\":");
    o_i64(lane == LANE_GC ? -1 : lane);
    o_str("}}");
}

static void o_slice(const char *name, const char *cat, int64_t g, int lane, int64_t from,
                    int64_t to, int32_t mid, const char *why)
{
    o_head(name, g, "X", from, lane);
    o_str(",\"dur\":");
    o_us(to - from);
    o_str(",\"cat\":\"");
    o_str(cat);
    o_str("\",\"args\":{");
    if (g >= 0) {
        o_str("\"g\":");
        o_i64(g);
        o_str(",\"m\":");
        o_i64(mid);
        o_str(",");
    }
    o_str("\"end\":\"");
    o_str(why);
    o_str("\"}}");
}

/* Ends the lane's running slice at ts: the run, then the system call if
 * the goroutine entered one. */
static void closeSlice(int lane, int64_t ts, const char *why)
{
    struct lane *l = &lanes[lane];
    if (!l->open)
        return;
    l->open = false;
    int64_t runEnd = l->sys >= 0 ? l->sys : ts;
    o_slice("", "running", l->g, lane, l->start, runEnd, l->mid, l->sys >= 0 ? "GoSysCall" : why);
    if (l->sys >= 0)
        o_slice(" syscall", "syscall", l->g, lane, l->sys, ts, l->mid, why);
}

static void writeRec(int lane, const struct traceRec *r)
{
    if (r->ts < t0)
        return;                      /* left over from before this trace */
    nameLane(lane);
    struct lane *l = &lanes[lane];
    int ev = r->ev;
    if (ev == traceEvHeapAlloc) {
        o_head("HeapAlloc", -1, "C", r->ts, lane);
        o_str(",\"args\":{\"bytes\":");
        o_u64(r->a);
        o_str("}}");
        return;
    }
    /* The running slices, from the P's own sequence of events. */
    if (lane != LANE_NOP) {
        switch (ev) {
        case traceEvGoStart:
            closeSlice(lane, r->ts, "GoSched");
            l->open = true;
            l->g = (int64_t)r->a;
            l->start = r->ts;
            l->sys = -1;
            l->mid = r->mid;
            break;
        case traceEvGoSysCall:
            if (l->open && l->sys < 0)
                l->sys = r->ts;
            break;
        case traceEvGoEnd:
        case traceEvGoBlock:
        case traceEvGoSysBlock:
        case traceEvProcStop:
        case traceEvProcStart:
            closeSlice(lane, r->ts, evNames[ev]);
            break;
        default:
            break;
        }
    }
    if (ev == traceEvGCStart || ev == traceEvGCDone) {
        nameLane(LANE_GC);
        if (ev == traceEvGCStart)
            gcStart = r->ts;
        else if (gcStart >= 0) {
            o_slice("GC", "gc", -1, LANE_GC, gcStart, r->ts, 0, "GCDone");
            gcStart = -1;
        }
        lane = LANE_GC;
    }
    o_head(evNames[ev], -1, "i", r->ts, lane);
    o_str(",\"s\":\"t\",\"args\":{");
    /* Each event's two arguments, by name; NULL: unused.  GoBlock's second
     * is a wait reason, written as its string. */
    static const char *const argNames[traceEvCount][2] = {
        [traceEvProcStart] = {"p", "m"},      [traceEvProcStop] = {"p", "m"},
        [traceEvGoCreate] = {"g", "parent"},  [traceEvGoStart] = {"g", "p"},
        [traceEvGoEnd] = {"g", NULL},         [traceEvGoBlock] = {"g", "reason"},
        [traceEvGoUnblock] = {"g", "by"},     [traceEvGoSysCall] = {"g", NULL},
        [traceEvGoSysExit] = {"g", NULL},     [traceEvGoSysBlock] = {"p", NULL},
        [traceEvSteal] = {"victim", "n"},     [traceEvHeapAlloc] = {"bytes", NULL},
        [traceEvGCStart] = {"a", NULL},       [traceEvGCDone] = {"a", NULL},
    };
    o_str("\"");
    o_str(argNames[ev][0]);
    o_str("\":");
    o_u64(r->a);
    if (argNames[ev][1]) {
        o_str(",\"");
        o_str(argNames[ev][1]);
        o_str("\":");
        if (ev == traceEvGoBlock) {
            o_str("\"");
            o_esc(r->b < waitReasonCount && waitReasonStrings[r->b] ? waitReasonStrings[r->b] : "?");
            o_str("\"");
        } else {
            o_u64(r->b);
        }
    }
    o_str(",\"mid\":");
    o_i64(r->mid);
    o_str("}}");
}

static void writeRange(struct traceChunk *c, uint32_t from, uint32_t to)
{
    for (uint32_t i = from; i < to; i++)
        writeRec(c->lane, &c->ev[i]);
}

/* Writes what the current chunk of a lane holds beyond what is written,
 * unless an earlier chunk of the lane is still on its way to the full
 * list. */
static void flushCurrent(struct traceChunk *c)
{
    if (!c)
        return;
    struct lane *l = &lanes[c->lane];
    if (!l->known) {
        l->known = true;
        l->next = 0;
    }
    if (c->seq != l->next)
        return;
    uint32_t n = __atomic_load_n(&c->n, __ATOMIC_ACQUIRE);
    writeRange(c, c->flushed, n);
    c->flushed = n;
}

/* One pass of the writer: the full chunks, oldest first, then the current
 * ones.  Under flushLock. */
static void flushPass(void)
{
    struct traceChunk *list = __atomic_exchange_n(&fullList, NULL, __ATOMIC_ACQUIRE), *rev = NULL;
    while (list) {
        struct traceChunk *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev) {
        struct traceChunk *next = rev->next;
        struct lane *l = &lanes[rev->lane];
        if (!l->known) {
            l->known = true;
            l->next = 0;
        }
        if (rev->seq >= l->next) {
            writeRange(rev, rev->flushed, __atomic_load_n(&rev->n, __ATOMIC_ACQUIRE));
            l->next = rev->seq + 1;
        }
        chunkPut(rev);
        rev = next;
    }
    for (int i = 0; i < MAXLANES; i++) {
        struct p *pp = __atomic_load_n(&tracedP[i], __ATOMIC_ACQUIRE);
        if (pp)
            flushCurrent(__atomic_load_n((struct traceChunk **)&pp->tracebuf, __ATOMIC_ACQUIRE));
    }
    flushCurrent(__atomic_load_n(&globCur, __ATOMIC_ACQUIRE));
    o_flush();
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&flusherQuit, __ATOMIC_ACQUIRE)) {
        os_futex_wait(&flusherQuit, 0, 20 * 1000000LL);
        gort_lock(&flushLock);
        flushPass();
        gort_unlock(&flushLock);
    }
    return NULL;
}

static uint64_t heapAlloc(void)
{
    struct gort_memstats ms;
    gort_memstats(&ms);
    return ms.heap_alloc;
}

/* ---- Start and stop ---------------------------------------------------------- */

/* Makes a lane's current chunk look fully written: what it holds is older
 * than the new trace. */
static void skipCurrent(struct traceChunk *c)
{
    if (!c)
        return;
    lanes[c->lane].known = true;
    lanes[c->lane].next = c->seq;
    c->flushed = __atomic_load_n(&c->n, __ATOMIC_ACQUIRE);
}

static void traceAtExit(void);

GORT_API int gort_trace_start(const char *path)
{
    if (!path || !*path) {
        errno = EINVAL;
        return -1;
    }
    gort_lock(&startLock);
    if (tracing) {
        gort_unlock(&startLock);
        errno = EBUSY;
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        gort_unlock(&startLock);
        errno = e;
        return -1;
    }
    gort_lock(&flushLock);
    struct traceChunk *list = __atomic_exchange_n(&fullList, NULL, __ATOMIC_ACQUIRE);
    while (list) {
        struct traceChunk *next = list->next;
        chunkPut(list);
        list = next;
    }
    memset(lanes, 0, sizeof lanes);
    for (int i = 0; i < MAXLANES; i++) {
        struct p *pp = __atomic_load_n(&tracedP[i], __ATOMIC_ACQUIRE);
        if (pp)
            skipCurrent(__atomic_load_n((struct traceChunk **)&pp->tracebuf, __ATOMIC_ACQUIRE));
    }
    skipCurrent(__atomic_load_n(&globCur, __ATOMIC_ACQUIRE));
    traceFd = fd;
    writeErr = false;
    firstOut = true;
    gcStart = -1;
    olen = 0;
    o_str("{\"displayTimeUnit\":\"ns\",\"otherData\":{\"producer\":\"gort\"},\"traceEvents\":[");
    o_str(firstOut ? "\n" : ",\n");
    firstOut = false;
    o_str("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"args\":{\"name\":\"gort\"}}");
    t0 = nanotime();
    gort_unlock(&flushLock);

    __atomic_store_n(&flusherQuit, 0, __ATOMIC_RELEASE);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&flusherThread, NULL, flusher, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        close(fd);
        traceFd = -1;
        gort_unlock(&startLock);
        errno = err;
        return -1;
    }
    tracing = true;
    static bool atexitDone;
    if (!atexitDone) {
        atexitDone = true;
        atexit(traceAtExit);
    }
    __atomic_store_n(&trace_on, true, __ATOMIC_SEQ_CST);
    trace_event(traceEvHeapAlloc, heapAlloc(), 0);
    gort_unlock(&startLock);
    return 0;
}

GORT_API int gort_trace_stop(void)
{
    gort_lock(&startLock);
    if (!tracing) {
        gort_unlock(&startLock);
        errno = EINVAL;
        return -1;
    }
    trace_event(traceEvHeapAlloc, heapAlloc(), 0);
    __atomic_store_n(&trace_on, false, __ATOMIC_SEQ_CST);
    __atomic_store_n(&flusherQuit, 1, __ATOMIC_RELEASE);
    os_futex_wake(&flusherQuit, 1);
    pthread_join(flusherThread, NULL);
    gort_lock(&flushLock);
    flushPass();
    flushPass();     /* chunks pushed during the first */
    int64_t end = nanotime();
    for (int i = 0; i < MAXLANES; i++)
        closeSlice(i, end, "TraceStop");
    if (gcStart >= 0)
        o_slice("GC", "gc", -1, LANE_GC, gcStart, end, 0, "TraceStop");
    o_str("\n]}\n");
    o_flush();
    int rc = writeErr ? -1 : 0;
    if (close(traceFd) != 0)
        rc = -1;
    traceFd = -1;
    gort_unlock(&flushLock);
    tracing = false;
    gort_unlock(&startLock);
    if (rc != 0)
        errno = EIO;
    return rc;
}

/* A trace still on at exit is finished, so the file is whole JSON. */
static void traceAtExit(void)
{
    gort_lock(&startLock);
    bool on = tracing;
    gort_unlock(&startLock);
    if (on)
        gort_trace_stop();
}

void trace_init(void)
{
    if (!debug.trace[0])
        return;
    if (gort_trace_start(debug.trace) != 0) {
        static const char msg[] = "gort: GODEBUG=trace: cannot open the trace file\n";
        os_write_stderr(msg, sizeof msg - 1);
        return;
    }
}

/* Not roots for the collector: these tables hold no collected pointers. */
__attribute__((constructor)) static void noscan_tables(void)
{
    gc_noscan_static(obuf, sizeof obuf);
    gc_noscan_static(lanes, sizeof lanes);
    gc_noscan_static(tracedP, sizeof tracedP);
}
