/*
 * larson.c — server simulation in the style of Larson and Krishnan's
 * benchmark.  Each thread owns an array of slots holding blocks of
 * 8–1000 B and repeatedly frees the block in a random slot and allocates a
 * new one of random size in its place.  The work runs in rounds; between
 * rounds every thread hands a quarter of its slots to the next thread
 * (round-robin), so blocks are regularly freed by a thread other than the
 * one that allocated them, as when a server passes a request's objects
 * from one worker to another.  Each thread does the same amount of work.
 *
 *   larson [threads=2] [scale=1.0]
 *
 * Prints "checksum: N", computed from the tags written into the blocks.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_NAME "larson"
#include "bench.h"

#define SLOTS 4000              /* slots per thread */
#define HANDOFF (SLOTS / 4)     /* slots handed on after each round */
#define ROUND_OPS 100000        /* steps per thread per round */
#define OPS_PER_SCALE 20000000.0 /* steps per thread at scale 1 */
#define MINSZ 8
#define MAXSZ 1000

struct block {
    uint64_t tag;
    uint32_t size;
};

struct worker {
    pthread_t tid;
    int id;
    uint64_t seed, sum;
    struct block **slot;            /* SLOTS entries */
    struct block *incoming[HANDOFF];
};

static int nthreads;
static long rounds;
static struct worker *workers;
static pthread_barrier_t barrier;

static inline struct block *block_new(uint64_t r)
{
    uint32_t n = MINSZ + (uint32_t)((r >> 32) % (MAXSZ - MINSZ + 1));
    struct block *b = malloc(n);
    if (!b)
        die("malloc failed");
    if (n >= sizeof *b) {
        b->tag = r;
        b->size = n;
        ((unsigned char *)b)[n - 1] = (unsigned char)r;
    } else {
        /* 8..15 B: room for the tag only */
        memcpy(b, &r, 8);
    }
    return b;
}

static inline uint64_t block_sum(const struct block *b)
{
    uint64_t tag;
    memcpy(&tag, b, 8);
    /* the size is implied by the tag; re-derive it to read the last byte */
    uint32_t n = MINSZ + (uint32_t)((tag >> 32) % (MAXSZ - MINSZ + 1));
    if (n >= sizeof *b)
        return (tag ^ b->size) + ((const unsigned char *)b)[n - 1];
    return tag;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    uint64_t s = w->seed, sum = 0;
    struct block **slot = w->slot;
    for (size_t k = 0; k < SLOTS; k++)
        slot[k] = block_new(rnd(&s));
    pthread_barrier_wait(&barrier);
    for (long round = 0; round < rounds; round++) {
        for (long i = 0; i < ROUND_OPS; i++) {
            uint64_t r = rnd(&s);
            size_t k = (size_t)(r % SLOTS);
            sum += block_sum(slot[k]);
            free(slot[k]);
            slot[k] = block_new(rnd(&s));
        }
        /* hand slots [off, off+HANDOFF) to the next thread */
        size_t off = (size_t)(round % (SLOTS / HANDOFF)) * HANDOFF;
        struct worker *prev = &workers[(w->id + nthreads - 1) % nthreads];
        pthread_barrier_wait(&barrier);
        memcpy(w->incoming, prev->slot + off, sizeof w->incoming);
        pthread_barrier_wait(&barrier);
        memcpy(slot + off, w->incoming, sizeof w->incoming);
        pthread_barrier_wait(&barrier);
    }
    for (size_t k = 0; k < SLOTS; k++) {
        sum += block_sum(slot[k]);
        free(slot[k]);
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    double scale = 1.0;
    nthreads = 2;
    bench_args(argc, argv, &nthreads, 1024, "threads", &scale);
    rounds = (long)(OPS_PER_SCALE * scale / ROUND_OPS + 0.5);
    if (rounds < 1)
        rounds = 1;

    workers = calloc((size_t)nthreads, sizeof *workers);
    if (!workers || pthread_barrier_init(&barrier, NULL, (unsigned)nthreads))
        die("setup failed");
    for (int i = 0; i < nthreads; i++) {
        workers[i].id = i;
        workers[i].seed = bench_seed(0x3c6ef372fe94f82bull, (uint64_t)(i + 1));
        workers[i].slot = calloc(SLOTS, sizeof *workers[i].slot);
        if (!workers[i].slot)
            die("calloc failed");
    }
    for (int i = 0; i < nthreads; i++)
        bench_start(&workers[i].tid, work, &workers[i]);
    uint64_t sum = 0;
    for (int i = 0; i < nthreads; i++)
        sum += bench_join(workers[i].tid, &workers[i].sum);
    for (int i = 0; i < nthreads; i++)
        free(workers[i].slot);
    free(workers);
    pthread_barrier_destroy(&barrier);
    printf("checksum: %llu\n", (unsigned long long)sum);
    return 0;
}
