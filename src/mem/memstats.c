/*
 * memstats.c — gort_memstats (Go's runtime.ReadMemStats), mallinfo2,
 * malloc_stats and GODEBUG=memstats=1.
 *
 * Object counts live in each thread's mcache, written only by that thread;
 * a snapshot sums them over every mcache ever made (caches of exited
 * threads are recycled with their counters, so nothing is lost).  Page
 * counts come from mheap.
 */
#include "gc/mgc.h"
#include "mem/arena.h"
#include "mem/malloc.h"
#include "mem/mcache.h"
#include "mem/mcentral.h"
#include "mem/mheap.h"
#include "mem/scavenge.h"
#include "runtime/godebug.h"
#include "runtime/print.h"

#include <malloc.h>
#include <string.h>

static inline uint64_t rd(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static int64_t large_resized;

void memstats_large_resized(int64_t delta)
{
    __atomic_fetch_add(&large_resized, delta, __ATOMIC_RELAXED);
}

void gort_memstats(struct gort_memstats *m)
{
    uint64_t nmalloc[_NumSizeClasses] = {0}, nfree[_NumSizeClasses] = {0};
    uint64_t largeAlloc = 0, largeFree = 0;
    memset(m, 0, sizeof *m);
    for (struct mcache *c = __atomic_load_n(&allmcaches, __ATOMIC_ACQUIRE); c;
         c = c->allnext) {
        for (int i = 0; i < _NumSizeClasses; i++) {
            nmalloc[i] += rd(&c->free[i].nmalloc);
            nfree[i] += rd(&c->free[i].nfree);
        }
        largeAlloc += rd(&c->largeAllocBytes);
        largeFree += rd(&c->largeFreeBytes);
    }
    malloc_exited_counts(nmalloc, nfree, &largeAlloc, &largeFree);
    int64_t resized = __atomic_load_n(&large_resized, __ATOMIC_RELAXED);
    if (resized > 0)
        largeAlloc += (uint64_t)resized;
    else
        largeFree += (uint64_t)-resized;

    for (int i = 0; i < _NumSizeClasses; i++) {
        m->by_size[i].size = class_to_size[i];
        m->by_size[i].mallocs = nmalloc[i];
        m->by_size[i].frees = nfree[i];
        m->mallocs += nmalloc[i];
        m->frees += nfree[i];
        m->total_alloc += nmalloc[i] * class_to_size[i];
        m->heap_alloc += (nmalloc[i] - nfree[i]) * class_to_size[i];
    }
    m->total_alloc += largeAlloc;
    m->heap_alloc += largeAlloc - largeFree;
    m->alloc = m->heap_alloc;
    m->heap_objects = m->mallocs - m->frees;

    /* Goroutine stacks come from the heap's pages but count apart. */
    m->stack_inuse = rd(&mheap_.pagesManual) << _PageShift;
    m->stack_sys = m->stack_inuse;
    m->heap_sys = (rd(&mheap_.pagesSys) << _PageShift) - m->stack_inuse;
    m->heap_inuse = rd(&mheap_.pagesInUse) << _PageShift;
    m->heap_idle = m->heap_sys - m->heap_inuse;
    m->heap_released = rd(&mheap_.pagesReleased) << _PageShift;
    m->mspan_inuse = mheap_records_inuse(&m->mspan_sys);
    m->mcache_inuse = rd(&mheap_.cachealloc.inuse);
    m->mcache_sys = rd(&mheap_.cachealloc.sys);
    m->other_sys = rd(&arena_metadata_sys) + sizeof mcentrals + gc_ptrbits_sys();
    m->num_released = rd(&scavenge_nreleased);
    m->sys = m->heap_sys + m->stack_sys + m->mspan_sys + m->mcache_sys + m->other_sys;
    gc_fill_memstats(m);   /* collected objects, and the collector's fields */
}

struct mallinfo2 gort_mallinfo2(void)
{
    struct gort_memstats m;
    struct mallinfo2 mi;
    gort_memstats(&m);
    memset(&mi, 0, sizeof mi);
    mi.arena = m.heap_sys;
    mi.ordblks = rd(&mheap_.freeRuns);
    mi.hblks = 0;
    mi.hblkhd = rd(&mheap_.largeInUse) << _PageShift;
    mi.uordblks = m.heap_alloc;
    mi.fordblks = m.heap_sys - m.heap_alloc;
    mi.keepcost = m.heap_idle - m.heap_released;
    return mi;
}

struct mallinfo gort_mallinfo(void)
{
    struct mallinfo2 m2 = gort_mallinfo2();
    struct mallinfo m;
    m.arena = (int)m2.arena;
    m.ordblks = (int)m2.ordblks;
    m.smblks = (int)m2.smblks;
    m.hblks = (int)m2.hblks;
    m.hblkhd = (int)m2.hblkhd;
    m.usmblks = (int)m2.usmblks;
    m.fsmblks = (int)m2.fsmblks;
    m.uordblks = (int)m2.uordblks;
    m.fordblks = (int)m2.fordblks;
    m.keepcost = (int)m2.keepcost;
    return m;
}

static void line(printbuf *b, const char *name, uint64_t v, const char *what)
{
    size_t start = b->len;
    pb_str(b, name);
    pb_pad(b, start, 14);
    pb_u64(b, v);
    pb_pad(b, start, 30);
    pb_str(b, what);
    pb_str(b, "\n");
}

void gort_malloc_stats(void)
{
    struct gort_memstats m;
    gort_memstats(&m);
    printbuf b = {.len = 0};
    pb_str(&b, "gort: memory statistics (Go MemStats names)\n");
    line(&b, "HeapAlloc", m.heap_alloc, "bytes in live objects");
    line(&b, "TotalAlloc", m.total_alloc, "bytes allocated, cumulative");
    line(&b, "Sys", m.sys, "bytes obtained from the OS");
    line(&b, "Mallocs", m.mallocs, "objects allocated, cumulative");
    line(&b, "Frees", m.frees, "objects freed, cumulative");
    line(&b, "HeapObjects", m.heap_objects, "live objects");
    line(&b, "HeapSys", m.heap_sys, "heap bytes reserved");
    line(&b, "HeapInuse", m.heap_inuse, "bytes in spans with objects");
    line(&b, "HeapIdle", m.heap_idle, "bytes in free page runs");
    line(&b, "HeapReleased", m.heap_released, "idle bytes given back to the OS");
    line(&b, "MSpanInuse", m.mspan_inuse, "bytes of span records");
    line(&b, "MSpanSys", m.mspan_sys, "");
    line(&b, "MCacheInuse", m.mcache_inuse, "bytes of thread caches");
    line(&b, "MCacheSys", m.mcache_sys, "");
    line(&b, "OtherSys", m.other_sys, "arena records, central lists, pointer maps");
    line(&b, "NumReleased", m.num_released, "madvise calls");
    pb_flush(&b);
    pb_str(&b, "BySize: class   size      mallocs        frees\n");
    for (int i = 0; i < GORT_NUM_SIZE_CLASSES; i++) {
        if (!m.by_size[i].mallocs)
            continue;
        pb_u64w(&b, (uint64_t)i, 13);
        if (i == 0)
            pb_str(&b, "  large");
        else
            pb_u64w(&b, m.by_size[i].size, 7);
        pb_u64w(&b, m.by_size[i].mallocs, 13);
        pb_u64w(&b, m.by_size[i].frees, 13);
        pb_str(&b, "\n");
    }
    pb_flush(&b);
}

__attribute__((destructor)) static void memstats_at_exit(void)
{
    if (debug.memstats)
        gort_malloc_stats();
}

#ifndef GORT_NO_LIBC_NAMES
struct mallinfo2 mallinfo2(void) __attribute__((alias("gort_mallinfo2"), visibility("default")));
struct mallinfo mallinfo(void) __attribute__((alias("gort_mallinfo"), visibility("default")));
void malloc_stats(void) __attribute__((alias("gort_malloc_stats"), visibility("default")));
#endif
