/*
 * test_memreturn.c — freed memory goes back to the OS.
 *
 * RSS is read from /proc/self/statm.  With gort's defaults (madvdontneed=1,
 * scavengedelay=1000, background scavenger on):
 *   A. 1 GiB of small blocks (16..4096 bytes), every byte touched, then all
 *      freed: RSS must fall below baseline + 128 MiB within 3 s, by the
 *      background scavenger alone.
 *   B. The same with large blocks (64 KiB..16 MiB).
 *   C. 512 MiB of blocks (small and large), all freed, then malloc_trim(0)
 *      at once: RSS must be below baseline + 64 MiB right after the call.
 * Plain malloc/free/malloc_trim: the binary links libgort.a, so they are
 * gort's (checked with gort_memstats).
 */
#define _GNU_SOURCE
#include <gort.h>

#include "check.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

static size_t page_size;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mib(size_t b) { return (double)b / (double)MiB; }

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

#define MAX_BLOCKS ((size_t)1 << 20)
static void **blocks;
static size_t nblocks;

/* Allocates blocks of lo..hi bytes until total bytes are asked for, touching
 * every byte. */
static size_t fill(size_t total, size_t lo, size_t hi)
{
    size_t got = 0;
    while (got < total) {
        CHECK(nblocks < MAX_BLOCKS);
        size_t n = lo + (size_t)(rnd(&rng_state) % (hi - lo + 1));
        if (n > total - got && total - got >= lo)
            n = total - got;
        void *p = malloc(n);
        CHECKF(p != NULL, "malloc(%zu) failed after %zu bytes", n, got);
        memset(p, (int)(nblocks & 0xff) | 1, n);
        blocks[nblocks++] = p;
        got += n;
    }
    return got;
}

/* Frees every block, in a shuffled order. */
static void free_all(void)
{
    for (size_t i = nblocks; i > 1; i--) {
        size_t j = (size_t)(rnd(&rng_state) % i);
        void *t = blocks[i - 1];
        blocks[i - 1] = blocks[j];
        blocks[j] = t;
    }
    for (size_t i = 0; i < nblocks; i++) {
        /* The pattern must still be there (first byte of each block). */
        CHECK(*(unsigned char *)blocks[i] & 1);
        free(blocks[i]);
        blocks[i] = NULL;
    }
    nblocks = 0;
}

static void show_stats(const char *when)
{
    struct gort_memstats st;
    gort_memstats(&st);
    printf("  [%s] HeapAlloc %.1f MiB, HeapInuse %.1f MiB, HeapIdle %.1f MiB, "
           "HeapReleased %.1f MiB, HeapSys %.1f MiB, madvise calls %llu\n",
           when, mib(st.heap_alloc), mib(st.heap_inuse), mib(st.heap_idle),
           mib(st.heap_released), mib(st.heap_sys), (unsigned long long)st.num_released);
    CHECKF(st.heap_released <= st.heap_idle, "HeapReleased %llu > HeapIdle %llu",
           (unsigned long long)st.heap_released, (unsigned long long)st.heap_idle);
}

/* Phases A and B: allocate, free, and wait for the background scavenger. */
static void phase_background(const char *name, size_t baseline, size_t lo, size_t hi)
{
    struct gort_memstats s0, s1;
    gort_memstats(&s0);
    double t0 = now();
    size_t asked = fill(GiB, lo, hi);
    gort_memstats(&s1);
    size_t full = rss_bytes();
    printf("%s: %zu blocks of %zu..%zu bytes, %.1f MiB asked, RSS %.1f MiB "
           "(baseline %.1f MiB) after %.2f s\n",
           name, nblocks, lo, hi, mib(asked), mib(full), mib(baseline), now() - t0);
    CHECKF(s1.mallocs - s0.mallocs >= nblocks,
           "gort counted %llu mallocs for %zu blocks: is malloc gort's?",
           (unsigned long long)(s1.mallocs - s0.mallocs), nblocks);
    CHECKF(full >= baseline + GiB - 32 * MiB,
           "RSS %.1f MiB with 1 GiB touched (baseline %.1f MiB): memory not resident?",
           mib(full), mib(baseline));
    show_stats("allocated");

    free_all();
    double tf = now();
    size_t limit = baseline + 128 * MiB;
    size_t rss = rss_bytes();
    printf("%s: freed; RSS %.1f MiB at once, limit %.1f MiB within 3 s\n", name,
           mib(rss), mib(limit));
    while (rss >= limit && now() - tf < 3.0) {
        usleep(100 * 1000);
        rss = rss_bytes();
    }
    double waited = now() - tf;
    printf("%s: RSS %.1f MiB after %.2f s\n", name, mib(rss), waited);
    show_stats("freed");
    CHECKF(rss < limit,
           "%s: RSS still %.1f MiB %.1f s after freeing 1 GiB (baseline %.1f MiB, "
           "peak %.1f MiB, limit %.1f MiB)",
           name, mib(rss), waited, mib(baseline), mib(full), mib(limit));
}

int main(int argc, char **argv)
{
    (void)argc;
    /* The limits below assume gort's default settings. */
    if (getenv("GODEBUG")) {
        unsetenv("GODEBUG");
        execv("/proc/self/exe", argv);
        perror("execv /proc/self/exe");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    page_size = (size_t)sysconf(_SC_PAGESIZE);

    /* The block table lives outside the allocator, resident from the start. */
    blocks = mmap(NULL, MAX_BLOCKS * sizeof *blocks, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    CHECK(blocks != MAP_FAILED);
    /* Warm up: one round of each kind, so gort's metadata for them exists. */
    for (int i = 0; i < 100; i++)
        free(malloc((size_t)(16 + i * 40)));
    free(malloc(MiB));
    size_t baseline = rss_bytes();
    printf("baseline RSS %.1f MiB, page size %zu\n", mib(baseline), page_size);

    phase_background("A (small)", baseline, 16, 4096);
    phase_background("B (large)", baseline, 64 * KiB, 16 * MiB);

    /* C: malloc_trim gives everything back at once. */
    size_t asked = fill(256 * MiB, 16, 4096);
    asked += fill(256 * MiB, 64 * KiB, 16 * MiB);
    size_t full = rss_bytes();
    printf("C (trim): %zu blocks, %.1f MiB asked, RSS %.1f MiB\n", nblocks, mib(asked),
           mib(full));
    CHECKF(full >= baseline + 512 * MiB - 32 * MiB,
           "RSS %.1f MiB with 512 MiB touched (baseline %.1f MiB)", mib(full),
           mib(baseline));
    free_all();
    double t0 = now();
    int released = malloc_trim(0);
    double dt = now() - t0;
    size_t rss = rss_bytes();
    size_t limit = baseline + 64 * MiB;
    printf("C (trim): malloc_trim(0) = %d in %.3f s; RSS %.1f MiB right after "
           "(limit %.1f MiB)\n",
           released, dt, mib(rss), mib(limit));
    show_stats("trimmed");
    CHECKF(released == 1, "malloc_trim(0) returned %d after freeing 512 MiB", released);
    CHECKF(rss < limit,
           "RSS %.1f MiB right after malloc_trim(0) (baseline %.1f MiB, peak %.1f MiB, "
           "limit %.1f MiB)",
           mib(rss), mib(baseline), mib(full), mib(limit));

    /* The heap still works after all that. */
    size_t again = fill(64 * MiB, 16, 100000);
    CHECK(again >= 64 * MiB);
    free_all();
    munmap(blocks, MAX_BLOCKS * sizeof *blocks);
    printf("test_memreturn: ok\n");
    return 0;
}
