/* test_threads.c — many short-lived threads; their caches must not leak.  gort-test: tsan
 *
 * 2000 threads are created and joined in waves of 50.  Each allocates a few
 * hundred blocks of mixed sizes, waits until the whole wave is alive, frees
 * most of its blocks, hands a few to the main thread and exits.  The main
 * thread frees the handed blocks after the owners are dead.
 *
 * Checked with gort_memstats: mallocs - frees equals the objects the test
 * holds; once everything is freed, heap_inuse is within what the main
 * thread's own lists can keep, and once the main thread flushes its cache
 * (gort_malloc_trim) within 1 MiB of where it started (dead threads' caches
 * were flushed); and the per-thread cache memory was given back.
 *
 * Only the gort_* names are used for the blocks under test (under TSan the
 * plain names belong to the sanitizer).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "gort.h"
#include "check.h"
#include "mem/mcache.h"
#include "mem/sizeclasses.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

enum {
    NTHREADS = 2000,
    WAVE = 50,
    PER_THREAD = 300,
    HANDED = 3, /* blocks each thread gives to the main thread */
};


/* The most heap the main thread's own cache can keep in use: each class's
 * list grows from frees alone to FREELIST_FREE_GROWTH objects, each of which
 * may keep a different span of its class in use, and the cache holds one
 * span per class it allocates from. */
static uint64_t own_cache_bound(void)
{
    uint64_t spans = 0;
    for (unsigned k = 1; k < _NumSizeClasses; k++)
        spans += (uint64_t)class_to_allocnpages[k] * _PageSize;
    return (FREELIST_FREE_GROWTH + 1) * spans;
}

static size_t rnd_size(uint64_t *s)
{
    uint64_t r = rnd(s) % 100;
    if (r < 85)
        return 1 + (size_t)(rnd(s) % 1024);
    if (r < 98)
        return 1025 + (size_t)(rnd(s) % (32 * KiB - 1024));
    return 32 * KiB + 1 + (size_t)(rnd(s) % (300 * KiB));
}

/* Tag bytes: the whole block when small, else 64 bytes at each end. */
static unsigned char tag_byte(uint32_t owner, size_t i)
{
    return (unsigned char)(owner * 7u + i * 13u + 1u);
}

static void tag(unsigned char *p, size_t n, uint32_t owner)
{
    if (n <= 1024) {
        for (size_t i = 0; i < n; i++)
            p[i] = tag_byte(owner, i);
        return;
    }
    for (size_t i = 0; i < 64; i++) {
        p[i] = tag_byte(owner, i);
        p[n - 1 - i] = tag_byte(owner, n - 1 - i);
    }
}

static int tag_ok(const unsigned char *p, size_t n, uint32_t owner)
{
    if (n <= 1024) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != tag_byte(owner, i))
                return 0;
        return 1;
    }
    for (size_t i = 0; i < 64; i++)
        if (p[i] != tag_byte(owner, i) || p[n - 1 - i] != tag_byte(owner, n - 1 - i))
            return 0;
    return 1;
}

static size_t natural_align(size_t n)
{
    return (n <= 8 || (n >= 17 && n <= 24)) ? 8 : 16;
}

struct handed {
    unsigned char *p;
    size_t n;
    uint32_t owner;
};

static pthread_mutex_t hand_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handed handed[NTHREADS * HANDED];
static int nhanded;

static pthread_barrier_t wave_barrier;

struct worker {
    pthread_t th;
    uint32_t id;
    int failed;
};

static struct worker workers[WAVE];

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rs = 0x9E3779B97F4A7C15ULL * (w->id + 1);
    unsigned char *p[PER_THREAD];
    size_t n[PER_THREAD];

    for (int i = 0; i < PER_THREAD; i++) {
        n[i] = rnd_size(&rs);
        if (i % 10 == 9)
            p[i] = gort_calloc(1, n[i]);
        else
            p[i] = gort_malloc(n[i]);
        if (!p[i] || (uintptr_t)p[i] % natural_align(n[i]) != 0) {
            w->failed = 1;
            n[i] = 0;
            continue;
        }
        tag(p[i], n[i], w->id);
    }

    /* The whole wave is alive, each thread with a warm cache; the main
     * thread takes its statistics before anyone goes on. */
    pthread_barrier_wait(&wave_barrier);
    pthread_barrier_wait(&wave_barrier);

    int handed_here = 0;
    for (int k = 0; k < PER_THREAD; k++) {
        /* Free in a scrambled order. */
        int i = (int)(((unsigned)k * 7919u) % PER_THREAD);
        if (!p[i])
            continue;
        if (!tag_ok(p[i], n[i], w->id))
            w->failed = 1;
        if (handed_here < HANDED && i % 50 == 7) {
            pthread_mutex_lock(&hand_lock);
            handed[nhanded].p = p[i];
            handed[nhanded].n = n[i];
            handed[nhanded].owner = w->id;
            nhanded++;
            pthread_mutex_unlock(&hand_lock);
            handed_here++;
        } else {
            gort_free(p[i]);
        }
    }
    if (handed_here != HANDED)
        w->failed = 1;
    return NULL;
}

static void stats(struct gort_memstats *st)
{
    gort_memstats(st);
}

static int64_t live(const struct gort_memstats *st)
{
    return (int64_t)(st->mallocs - st->frees);
}

/* Threads run on stacks of our own: glibc then frees each thread's TLS
 * vector (allocated with the program's calloc, which is gort's in the plain
 * build) when the thread is joined, rather than keeping it in its stack
 * cache, so the live-object count can be compared exactly. */
enum { STACK = 512 * 1024 };

int main(void)
{
    struct gort_memstats base, peak, held, end, trimmed;
    /* Warm the main thread up, then take the baseline.  Freeing 8 MiB
     * starts gort's scavenger thread now (libc allocates a record for it),
     * so later counts hold only this test's objects. */
    void *warm = gort_malloc(100);
    CHECK(warm != NULL);
    gort_free(warm);
    gort_free(gort_malloc(8 << 20));
    stats(&base);

    char *stacks = mmap(NULL, (size_t)STACK * WAVE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(stacks != MAP_FAILED);
    CHECK(pthread_barrier_init(&wave_barrier, NULL, WAVE + 1) == 0);

    memset(&peak, 0, sizeof peak);
    for (int wave = 0; wave < NTHREADS / WAVE; wave++) {
        for (int i = 0; i < WAVE; i++) {
            workers[i].id = (uint32_t)(wave * WAVE + i);
            workers[i].failed = 0;
            pthread_attr_t attr;
            CHECK(pthread_attr_init(&attr) == 0);
            CHECK(pthread_attr_setstack(&attr, stacks + (size_t)i * STACK, STACK) == 0);
            CHECK(pthread_create(&workers[i].th, &attr, worker_main, &workers[i]) == 0);
            pthread_attr_destroy(&attr);
        }
        pthread_barrier_wait(&wave_barrier);
        if (wave == 0)
            stats(&peak);
        pthread_barrier_wait(&wave_barrier);
        for (int i = 0; i < WAVE; i++) {
            CHECK(pthread_join(workers[i].th, NULL) == 0);
            CHECKF(!workers[i].failed, "thread %u: bad block (NULL, misaligned or overwritten)",
                   workers[i].id);
        }
    }
    CHECK(nhanded == NTHREADS * HANDED);

    /* Every owner is dead; the main thread holds the handed blocks. */
    stats(&held);
    int64_t d = live(&held) - live(&base);
    CHECKF(d == nhanded, "mallocs - frees grew by %lld, the test holds %d objects", (long long)d,
           nhanded);
    d = (int64_t)held.heap_objects - (int64_t)base.heap_objects;
    CHECKF(d == nhanded, "heap_objects grew by %lld, the test holds %d objects", (long long)d,
           nhanded);

    for (int i = 0; i < nhanded; i++) {
        CHECKF(tag_ok(handed[i].p, handed[i].n, handed[i].owner),
               "handed block %d (%zu bytes from thread %u) overwritten", i, handed[i].n,
               handed[i].owner);
        gort_free(handed[i].p);
    }

    stats(&end);
    d = live(&end) - live(&base);
    CHECKF(d == 0, "after freeing everything mallocs - frees is %lld above the start",
           (long long)d);
    CHECKF(end.heap_objects == base.heap_objects, "heap_objects %llu at the end, %llu at start",
           (unsigned long long)end.heap_objects, (unsigned long long)base.heap_objects);
    CHECKF(end.heap_alloc <= base.heap_alloc + 64 * KiB, "heap_alloc %llu at the end, %llu at start",
           (unsigned long long)end.heap_alloc, (unsigned long long)base.heap_alloc);
    /* The main thread's lists hold some of the blocks it freed, and their
     * spans: a bounded amount.  Once it hands its own cache back, only a
     * dead thread's cache could keep a span in use. */
    CHECKF(end.heap_inuse < base.heap_inuse + own_cache_bound(),
           "heap_inuse %llu at the end, %llu at start: more than the main thread's cache can hold",
           (unsigned long long)end.heap_inuse, (unsigned long long)base.heap_inuse);
    gort_malloc_trim(0);
    stats(&trimmed);
    CHECKF(trimmed.heap_inuse <= base.heap_inuse + 1 * MiB,
           "heap_inuse %llu once the main thread's cache is flushed, %llu at start: dead threads' "
           "caches kept spans", (unsigned long long)trimmed.heap_inuse,
           (unsigned long long)base.heap_inuse);
    CHECK(end.mallocs >= base.mallocs + (uint64_t)NTHREADS * PER_THREAD);

    /* The caches of dead threads are given back: MCacheInuse counts the
     * caches of live threads only, so it is where it started. */
    CHECKF(peak.mcache_inuse >= base.mcache_inuse + WAVE * 64,
           "mcache_inuse %llu with %d threads alive, %llu at start",
           (unsigned long long)peak.mcache_inuse, WAVE, (unsigned long long)base.mcache_inuse);
    CHECKF(end.mcache_inuse == base.mcache_inuse,
           "mcache_inuse %llu at the end, %llu at start, %llu with %d threads alive",
           (unsigned long long)end.mcache_inuse, (unsigned long long)base.mcache_inuse,
           (unsigned long long)peak.mcache_inuse, WAVE);

    pthread_barrier_destroy(&wave_barrier);
    munmap(stacks, (size_t)STACK * WAVE);
    printf("test_threads: ok (%d threads; heap_inuse %llu KiB at start, %llu KiB at the end "
           "(bound %llu KiB), %llu KiB after the trim, %llu KiB with a wave alive)\n",
           NTHREADS, (unsigned long long)(base.heap_inuse / 1024),
           (unsigned long long)(end.heap_inuse / 1024),
           (unsigned long long)(own_cache_bound() / 1024),
           (unsigned long long)(trimmed.heap_inuse / 1024),
           (unsigned long long)(peak.heap_inuse / 1024));
    return 0;
}
