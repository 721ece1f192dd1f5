/*
 * leakcheck.c — GODEBUG=leakcheck=1: at exit, the malloc'd blocks nothing
 * reaches any more, grouped by where they were allocated (the idea of
 * gperftools' heap-checker, built from the collector's parts).
 *
 * With the setting on, the heap profiler samples every allocation, so each
 * block has its call stack.  At exit the world is stopped and marked from
 * the collector's roots (stacks of registered threads and goroutines, data
 * and bss, registered ranges, uncollectable blocks), following malloc'd
 * blocks as well as collected objects, every word of them conservatively.
 * Blocks that are allocated, not on a free list (cached frees carry the
 * free-list key in word 1; remote frees sit on their span's xfree stack)
 * and unmarked are leaks.  The report goes to stderr and the process exits
 * with status 1 when there are any, as a leak checker in a test run should.
 * Threads that never registered are not stopped and their stacks are not
 * scanned: let them finish first.
 */
#define _GNU_SOURCE
#include "gc/mgc.h"
#include "gc/stw.h"
#include "mem/arena.h"
#include "mem/mcache.h"
#include "mem/mheap.h"
#include "os/os.h"
#include "prof/mprof.h"
#include "prof/pprof.h"
#include "runtime/godebug.h"
#include "runtime/print.h"
#include "sched/proc.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

uintptr_t malloc_block_of(uintptr_t p, struct mspan **sp, unsigned *idxp, uintptr_t *sizep)
{
    struct mspan *s = span_of(p);
    if (!s || s->state != mSpanInUse || s->gc || p < s->startAddr ||
        p - s->startAddr >= (s->npages << _PageShift))
        return 0;
    if (s->sampledClass == SPAN_SAMPLED_KEPT)
        return 0;   /* free, kept for a sampled object */
    unsigned idx = 0;
    uintptr_t base = s->startAddr, size = span_largeBytes(s);
    if (s->spanclass != 0) {
        idx = (unsigned)(((uint64_t)(p - s->startAddr) * s->divMul) >> 32);
        if (idx >= s->nelems)
            return 0;
        base = s->startAddr + (uintptr_t)idx * s->elemsize;
        size = s->elemsize;
        if (!span_isAllocated(s, idx))
            return 0;
    }   /* (an in-use large span is one allocated block: no bit says so) */
    /* A block on a cache's free list is free. */
    if (s->sizeclass > 1 && ((const uintptr_t *)base)[1] == freelist_key)
        return 0;
    *sp = s;
    *idxp = idx;
    *sizep = size;
    return base;
}

/* Calls fn for every in-use span of malloc's (not the collector's). */
static void each_malloc_span(void (*fn)(struct mspan *s, void *arg), void *arg)
{
    for (struct heapArena *ha = allarenas; ha; ha = ha->next) {
        for (size_t i = 0; i < pagesPerArena;) {
            struct mspan *s = ha->spans[i];
            if (s == &emptymspan || s->startAddr != ha->base + (i << _PageShift) || s->npages == 0) {
                i++;
                continue;
            }
            i += s->npages;
            if (s->state == mSpanInUse && s->gc == 0)
                fn(s, arg);
        }
    }
}

/* Clears the span's marks, then marks what its remote-free stack holds:
 * freed blocks, never leaks. */
static void prepare_span(struct mspan *s, void *arg)
{
    (void)arg;
    memset(s->gcmarkBits, 0, span_bitbytes(s));
    uintptr_t w = __atomic_load_n(&s->xfree, __ATOMIC_ACQUIRE);
    void *obj = xfree_head(w);
    for (unsigned n = xfree_count(w); obj && n > 0; n--) {
        long idx = span_objIndex(s, (uintptr_t)obj);
        if (idx < 0)
            break;
        s->gcmarkBits[idx >> 6] |= (uint64_t)1 << (idx & 63);
        obj = *(void **)obj;
    }
}

/* Whether a block's stack says the dynamic loader made it: thread-local
 * storage of threads that have exited lives on in glibc's cache of thread
 * stacks, which is not a root. */
static bool from_loader(const struct mprof_bucket *b)
{
    for (uint32_t i = 0; i < b->nstk && i < 6; i++) {
        Dl_info di;
        if (dladdr((void *)(b->stk[i] - 1), &di) && di.dli_fname &&
            (strstr(di.dli_fname, "/ld-linux") || strstr(di.dli_fname, "/ld.so")))
            return true;
    }
    return false;
}

struct leak {
    uintptr_t addr, size;
};

static struct {
    struct leak *v;
    size_t n, cap;       /* os_alloc'd: no malloc while the world is stopped */
} leaks;

static void leak_add(uintptr_t addr, uintptr_t size)
{
    if (leaks.n == leaks.cap) {
        size_t cap = leaks.cap ? leaks.cap * 2 : 4096;
        struct leak *v = os_alloc(cap * sizeof *v);
        if (!v)
            return;
        if (leaks.v) {
            memcpy(v, leaks.v, leaks.n * sizeof *v);
            os_unmap(leaks.v, leaks.cap * sizeof *v);
        }
        leaks.v = v;
        leaks.cap = cap;
    }
    leaks.v[leaks.n++] = (struct leak){addr, size};
}

static void collect_span(struct mspan *s, void *arg)
{
    (void)arg;
    if (s->roots || s->sampledClass == SPAN_SAMPLED_KEPT)
        return;   /* uncollectable blocks are roots, not leaks; a kept span is free */
    if (s->spanclass == 0) {
        if (!(s->gcmarkBits[0] & 1))
            leak_add(s->startAddr, span_largeBytes(s));
        return;
    }
    for (unsigned i = 0; i < s->nelems; i++) {
        uintptr_t base = s->startAddr + (uintptr_t)i * s->elemsize;
        if (!span_isAllocated(s, i) || gc_isMarked(s, i))
            continue;
        if (s->sizeclass > 1 && ((const uintptr_t *)base)[1] == freelist_key)
            continue;
        leak_add(base, s->elemsize);
    }
}

/* ---- The report ------------------------------------------------------- */

struct site {
    struct mprof_bucket *b;   /* NULL: blocks with no recorded stack */
    uint64_t count, bytes;
};

/* Prints the leaks by site; false when every unreachable block was the
 * loader's. */
static bool report(void)
{
    size_t nsites = 0, cap = 64;
    struct site *sites = gort_malloc(cap * sizeof *sites);
    uint64_t total = 0;
    size_t nleaks = 0;
    for (size_t i = 0; sites && i < leaks.n; i++) {
        struct mprof_bucket *b = mprof_lookup(leaks.v[i].addr);
        if (b && from_loader(b))
            continue;
        nleaks++;
        size_t k;
        for (k = 0; k < nsites && sites[k].b != b; k++)
            ;
        if (k == nsites) {
            if (nsites == cap) {
                struct site *ns = gort_realloc(sites, cap * 2 * sizeof *ns);
                if (!ns)
                    break;
                sites = ns;
                cap *= 2;
            }
            sites[nsites++] = (struct site){b, 0, 0};
        }
        sites[k].count++;
        sites[k].bytes += leaks.v[i].size;
        total += leaks.v[i].size;
    }
    if (nleaks == 0) {
        gort_free(sites);
        return false;
    }
    printbuf pb = {.len = 0};
    pb_str(&pb, "gort: leakcheck: ");
    pb_u64(&pb, nleaks);
    pb_str(&pb, nleaks == 1 ? " block (" : " blocks (");
    pb_u64(&pb, total);
    pb_str(&pb, " bytes) unreachable at exit, from ");
    pb_u64(&pb, nsites);
    pb_str(&pb, nsites == 1 ? " allocation site\n" : " allocation sites\n");
    pb_flush(&pb);
    /* Largest first. */
    for (size_t i = 0; i < nsites; i++)
        for (size_t j = i + 1; j < nsites; j++)
            if (sites[j].bytes > sites[i].bytes) {
                struct site t = sites[i];
                sites[i] = sites[j];
                sites[j] = t;
            }
    for (size_t i = 0; i < nsites; i++) {
        pb_str(&pb, "  ");
        pb_u64(&pb, sites[i].count);
        pb_str(&pb, sites[i].count == 1 ? " block, " : " blocks, ");
        pb_u64(&pb, sites[i].bytes);
        pb_str(&pb, sites[i].b ? " bytes, allocated at:\n" : " bytes, site not recorded\n");
        pb_flush(&pb);
        if (sites[i].b)
            pprof_print_stack(sites[i].b->stk, sites[i].b->nstk);
    }
    gort_free(sites);
    return true;
}

static __attribute__((noinline)) void check_stopped(void)
{
    gc_spill_registers();
    stw_stop(gc_current_sp(), false);
    each_malloc_span(prepare_span, NULL);
    gc_mark_leaks();
    each_malloc_span(collect_span, NULL);
    stw_start();
}

__attribute__((destructor)) static void leakcheck_at_exit(void)
{
    if (!debug.leakcheck)
        return;
    gcinit_once();
    gcthread_register(false);
    gort_lock(&gcLock);
    finishsweep();
    gc_collect_globals();
    gort_lock(&rootsLock);
    gort_lock(&specialsLock);
    gort_lock(&finLock);
    gort_lock(&allglock);
    check_stopped();
    gort_unlock(&allglock);
    gort_unlock(&finLock);
    gort_unlock(&specialsLock);
    gort_unlock(&rootsLock);
    gort_unlock(&gcLock);
    if (leaks.n == 0 || !report())
        return;
    fflush(NULL);   /* what the program printed; _exit skips stdio's own flush */
    _exit(1);
}
