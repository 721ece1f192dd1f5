/* test_stress.c — randomized malloc/free/realloc with content checks.  gort-test: tsan
 *
 * Every block is filled with a pattern derived from its id and position, and
 * checked when it is freed or reallocated, so overlapping blocks, lost
 * realloc contents and recycled-but-live memory show up as mismatches.
 *
 * Phase 1: one thread, ~2M operations, sizes skewed small (most <= 512 B,
 * some up to 32 KiB, a few up to 1 MiB), all entry points.
 * Phase 2: 4 threads passing blocks through a mutex-protected shared pool,
 * so most frees happen on a thread other than the one that allocated.
 *
 * Only the gort_* names are used for the blocks under test: under TSan the
 * plain names belong to the sanitizer.  GORT_TEST_SCALE (a float, default 1;
 * 0.1 under TSan) scales the operation counts.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "gort.h"
#include "check.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ---- random numbers ------------------------------------------------------ */


/* Log-uniform in [lo, hi]. */
static size_t rnd_log(uint64_t *s, size_t lo, size_t hi)
{
    int lb = 63 - __builtin_clzll(lo), hb = 63 - __builtin_clzll(hi);
    int b = lb + (int)(rnd(s) % (uint64_t)(hb - lb + 1));
    size_t base = (size_t)1 << b;
    size_t v = base + (size_t)(rnd(s) % base);
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return v;
}

static size_t rnd_size(uint64_t *s)
{
    uint64_t r = rnd(s) % 1000;
    if (r < 850)
        return (size_t)(rnd(s) % 513);            /* 0..512 */
    if (r < 997)
        return rnd_log(s, 513, 32 * KiB);         /* up to 32 KiB */
    return rnd_log(s, 32 * KiB + 1, 1 * MiB);     /* a few up to 1 MiB */
}

/* ---- content patterns ---------------------------------------------------- */

static uint64_t word_at(uint64_t seed, size_t k)
{
    return seed + (uint64_t)k * 0x9E3779B97F4A7C15ULL;
}

static unsigned char byte_at(uint64_t seed, size_t i)
{
    return (unsigned char)(word_at(seed, i >> 3) >> ((i & 7) * 8));
}

static void fill_range(unsigned char *p, size_t from, size_t to, uint64_t seed)
{
    size_t i = from;
    while (i < to && (i & 7))
        p[i] = byte_at(seed, i), i++;
    size_t kend = to >> 3;
    for (size_t k = i >> 3; k < kend; k++) {
        uint64_t w = word_at(seed, k);
        memcpy(p + 8 * k, &w, 8);
    }
    if (kend * 8 > i)
        i = kend * 8;
    for (; i < to; i++)
        p[i] = byte_at(seed, i);
}

/* Index of the first wrong byte in [0, n), or n. */
static size_t verify_all(const unsigned char *p, size_t n, uint64_t seed)
{
    size_t kend = n >> 3;
    for (size_t k = 0; k < kend; k++) {
        uint64_t w;
        memcpy(&w, p + 8 * k, 8);
        if (w != word_at(seed, k)) {
            for (size_t i = 8 * k;; i++)
                if (p[i] != byte_at(seed, i))
                    return i;
        }
    }
    for (size_t i = kend * 8; i < n; i++)
        if (p[i] != byte_at(seed, i))
            return i;
    return n;
}

static size_t natural_align(size_t n)
{
    if (n <= 8 || (n >= 17 && n <= 24))
        return 8;
    return 16;
}

/* ---- blocks -------------------------------------------------------------- */

struct block {
    unsigned char *p;
    size_t n;
    uint64_t seed;
    int owner;
};

static uint64_t seed_for(uint64_t id)
{
    uint64_t z = id * 0xBF58476D1CE4E5B9ULL + 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Allocates b->n bytes by one of the entry points and fills the block. */
static void block_alloc(struct block *b, size_t n, uint64_t id, int owner, uint64_t *rs)
{
    uint64_t how = rnd(rs) % 100;
    size_t align = natural_align(n);
    unsigned char *p;
    if (how < 70) {
        p = gort_malloc(n);
    } else if (how < 80) {
        p = gort_calloc(1, n);
        CHECK(p != NULL);
        for (size_t i = 0; i < n; i++)
            CHECKF(p[i] == 0, "gort_calloc(1, %zu): byte %zu is %#x", n, i, p[i]);
    } else if (how < 88) {
        align = (size_t)1 << (3 + rnd(rs) % 10);
        void *q = NULL;
        int r = gort_posix_memalign(&q, align, n);
        CHECKF(r == 0, "gort_posix_memalign(%zu, %zu) = %d", align, n, r);
        p = q;
    } else if (how < 92) {
        align = (size_t)1 << (3 + rnd(rs) % 10);
        p = gort_aligned_alloc(align, n);
    } else if (how < 95) {
        align = (size_t)1 << (rnd(rs) % 13);
        p = gort_memalign(align, n);
    } else {
        p = gort_realloc(NULL, n);
    }
    CHECKF(p != NULL, "allocation of %zu bytes failed", n);
    CHECKF((uintptr_t)p % align == 0, "block %p of %zu bytes not %zu-aligned", (void *)p, n,
           align);
    if ((how & 15) == 0)
        CHECK(gort_malloc_usable_size(p) >= n);
    b->p = p;
    b->n = n;
    b->seed = seed_for(id);
    b->owner = owner;
    fill_range(p, 0, n, b->seed);
}

static void block_check(const struct block *b, const char *when)
{
    size_t bad = verify_all(b->p, b->n, b->seed);
    CHECKF(bad == b->n, "%s: block %p (%zu bytes) corrupt at byte %zu: %#x, want %#x", when,
           (void *)b->p, b->n, bad, b->p[bad], byte_at(b->seed, bad));
}

static void block_free(struct block *b, uint64_t *rs)
{
    block_check(b, "free");
    if (rnd(rs) % 20 == 0) {
        void *r = gort_realloc(b->p, 0);
        CHECK(r == NULL);
    } else {
        gort_free(b->p);
    }
    b->p = NULL;
}

/* Returns 0 if the block was freed by realloc(p, 0). */
static int block_realloc(struct block *b, size_t n, int owner)
{
    block_check(b, "realloc");
    unsigned char *p = gort_realloc(b->p, n);
    if (n == 0) {
        CHECK(p == NULL);
        b->p = NULL;
        return 0;
    }
    CHECKF(p != NULL, "gort_realloc(%zu -> %zu) failed", b->n, n);
    CHECKF((uintptr_t)p % natural_align(n) == 0, "gort_realloc(%zu -> %zu) = %p misaligned",
           b->n, n, (void *)p);
    size_t keep = b->n < n ? b->n : n;
    size_t bad = verify_all(p, keep, b->seed);
    CHECKF(bad == keep, "gort_realloc(%zu -> %zu) lost byte %zu", b->n, n, bad);
    fill_range(p, keep, n, b->seed);
    b->p = p;
    b->n = n;
    b->owner = owner;
    return 1;
}

static int64_t live_objects(void)
{
    struct gort_memstats st;
    gort_memstats(&st);
    return (int64_t)(st.mallocs - st.frees);
}

static double scale(void)
{
    double s = UNDER_TSAN ? 0.1 : 1.0;
    const char *e = getenv("GORT_TEST_SCALE");
    if (e && *e) {
        double v = strtod(e, NULL);
        if (v > 0)
            s = v;
    }
    return s;
}

/* gort starts its background scavenger thread once a few MiB of freed pages
 * are waiting; in the plain build that thread's TLS vector is a live object
 * allocated with gort's calloc.  Get it started before taking a baseline. */
static void start_scavenger(void)
{
    void *big[16];
    for (int i = 0; i < 16; i++) {
        big[i] = gort_malloc(2 * MiB);
        CHECK(big[i] != NULL);
        memset(big[i], 1, 2 * MiB);
    }
    for (int i = 0; i < 16; i++)
        gort_free(big[i]);
}

/* ---- phase 1: one thread ------------------------------------------------- */

enum { NSLOT = 8192 };
static struct block slots[NSLOT];

static void phase_single(long ops)
{
    /* Start gort's scavenger thread (freeing 8 MiB does) before counting:
     * libc allocates a record for the new thread, which is not ours. */
    gort_free(gort_malloc(8 << 20));
    uint64_t rs = 0x1234567887654321ULL;
    uint64_t next_id = 1;
    long live = 0;
    start_scavenger();
    int64_t base = live_objects();

    for (long op = 0; op < ops; op++) {
        struct block *b = &slots[rnd(&rs) % NSLOT];
        if (!b->p) {
            block_alloc(b, rnd_size(&rs), next_id++, 0, &rs);
            live++;
        } else if (rnd(&rs) % 100 < 65) {
            block_free(b, &rs);
            live--;
        } else {
            if (!block_realloc(b, rnd_size(&rs), 0))
                live--;
        }
        if (op % 250000 == 249999) {
            int64_t now = live_objects() - base;
            CHECKF(now == live, "after %ld ops: gort counts %lld live objects, test holds %ld",
                   op + 1, (long long)now, live);
            int r = gort_malloc_trim(0);
            CHECK(r == 0 || r == 1);
        }
    }
    for (int i = 0; i < NSLOT; i++)
        if (slots[i].p) {
            block_free(&slots[i], &rs);
            live--;
        }
    CHECK(live == 0);
    int64_t now = live_objects() - base;
    CHECKF(now == 0, "after phase 1: gort counts %lld live objects, want 0", (long long)now);
}

/* ---- phase 2: threads and a shared pool ---------------------------------- */

enum { NTHREAD = 4, POOL = 4096, LOCAL = 512 };

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block pool[POOL];

struct worker {
    pthread_t th;
    int id;
    long ops;
    long frees_same, frees_cross, reallocs_cross;
    struct block local[LOCAL];
};

static struct worker workers[NTHREAD];

static void dispose(struct worker *w, struct block *b, uint64_t *rs)
{
    if (b->owner == w->id)
        w->frees_same++;
    else
        w->frees_cross++;
    block_free(b, rs);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rs = 0x9E3779B97F4A7C15ULL * (uint64_t)(w->id + 1) + 77;
    uint64_t next_id = ((uint64_t)(w->id + 1) << 40) + 1;

    for (long op = 0; op < w->ops; op++) {
        uint64_t r = rnd(&rs) % 100;
        if (r < 65) {
            /* Allocate and swap into the shared pool; deal with what comes
             * out (usually another thread's block). */
            struct block nb;
            block_alloc(&nb, rnd_size(&rs), next_id++, w->id, &rs);
            size_t idx = (size_t)(rnd(&rs) % POOL);
            pthread_mutex_lock(&pool_lock);
            struct block old = pool[idx];
            pool[idx] = nb;
            pthread_mutex_unlock(&pool_lock);
            if (!old.p)
                continue;
            uint64_t what = rnd(&rs) % 100;
            struct block *l = &w->local[rnd(&rs) % LOCAL];
            if (what < 85 || l->p) {
                dispose(w, &old, &rs);
            } else if (what < 93) {
                if (old.owner != w->id)
                    w->reallocs_cross++;
                if (block_realloc(&old, rnd_size(&rs), w->id))
                    *l = old;
            } else {
                block_check(&old, "take");
                *l = old;
            }
        } else {
            struct block *l = &w->local[rnd(&rs) % LOCAL];
            if (!l->p)
                block_alloc(l, rnd_size(&rs), next_id++, w->id, &rs);
            else if (rnd(&rs) % 100 < 60)
                dispose(w, l, &rs);
            else
                block_realloc(l, rnd_size(&rs), w->id);
        }
    }
    for (int i = 0; i < LOCAL; i++)
        if (w->local[i].p)
            dispose(w, &w->local[i], &rs);
    return NULL;
}

/* Threads run on stacks of our own: glibc then frees each thread's TLS
 * vector (allocated with the program's calloc, i.e. gort's) at join, instead
 * of keeping it in its stack cache, so gort's live-object count can be
 * compared exactly. */
enum { STACK = 1 << 20 };

static long total_frees, cross_frees;

static void phase_threads(long ops_per_thread)
{
    int64_t base = live_objects();
    void *stacks = mmap(NULL, (size_t)STACK * NTHREAD, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(stacks != MAP_FAILED);
    for (int i = 0; i < NTHREAD; i++) {
        workers[i].id = i + 1;
        workers[i].ops = ops_per_thread;
        pthread_attr_t attr;
        CHECK(pthread_attr_init(&attr) == 0);
        CHECK(pthread_attr_setstack(&attr, (char *)stacks + (size_t)i * STACK, STACK) == 0);
        CHECK(pthread_create(&workers[i].th, &attr, worker_main, &workers[i]) == 0);
        pthread_attr_destroy(&attr);
    }
    long same = 0, cross = 0, rcross = 0;
    for (int i = 0; i < NTHREAD; i++) {
        CHECK(pthread_join(workers[i].th, NULL) == 0);
        same += workers[i].frees_same;
        cross += workers[i].frees_cross;
        rcross += workers[i].reallocs_cross;
    }
    /* The main thread (owner 0: nobody's) frees what is left in the pool. */
    uint64_t rs = 42;
    long left = 0;
    for (int i = 0; i < POOL; i++)
        if (pool[i].p) {
            block_free(&pool[i], &rs);
            left++;
        }
    munmap(stacks, (size_t)STACK * NTHREAD);
    /* A good share of frees are another thread's blocks: about half when
     * the threads interleave finely, less when the scheduler runs them a
     * slice at a time (each thread then meets its own blocks in the pool;
     * 49.7 % in one run on 2 CPUs). */
    CHECKF(cross * 4 > cross + same, "only %ld of %ld frees were cross-thread", cross,
           cross + same);
    CHECK(rcross > 0);
    int64_t now = live_objects() - base;
    CHECKF(now == 0, "after phase 2: gort counts %lld live objects, want 0", (long long)now);
    total_frees = same + cross + left;
    cross_frees = cross + left;
}

int main(void)
{
    double s = scale();
    long ops1 = (long)(2000000 * s);
    long ops2 = (long)(600000 * s);
    if (ops1 < 1000)
        ops1 = 1000;
    if (ops2 < 1000)
        ops2 = 1000;
    phase_single(ops1);
    phase_threads(ops2);
    printf("test_stress: ok (%ld single-thread ops; %d threads x %ld ops, %ld of %ld frees "
           "cross-thread)\n",
           ops1, NTHREAD, ops2, cross_frees, total_frees);
    return 0;
}
