/*
 * thread_churn.c — waves of short-lived threads, in the style of mstress
 * and mleak.  Each wave starts a few threads at once; each thread
 * allocates a few thousand blocks of mixed sizes (mostly small, some up to
 * a few KiB, rarely tens of KiB), frees most of them in a scrambled order,
 * and exits leaving about a tenth of them alive.  A thread of the next
 * wave frees the survivors of a thread of the previous one, so memory
 * outlives the thread that allocated it and is freed by a thread that
 * did not exist when it was allocated.  This measures per-thread set-up
 * and tear-down in the allocator (thread caches created and flushed) and
 * the handling of blocks whose owner thread has gone.
 *
 *   thread_churn [threads=2 (threads per wave)] [scale=1.0]
 *
 * Prints "checksum: N", computed from the tags written into the blocks.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_NAME "thread_churn"
#include "bench.h"

#define BLOCKS 4000    /* blocks each thread allocates */
#define KEEP 400       /* of which survive the thread */
#define LIVE 1000      /* most a thread holds at once besides survivors */
#define WAVES_PER_SCALE 6000.0

struct task {
    pthread_t tid;
    uint64_t seed, sum;
    uint64_t **inherit; /* survivors of a thread of the previous wave */
    uint64_t **keep;    /* this thread's survivors (KEEP entries) */
};

/* 8–128 B mostly, some up to 2 KiB, 1 in 256 up to 32 KiB. */
static inline size_t pick_size(uint64_t r)
{
    unsigned b = (unsigned)(r & 255);
    r >>= 8;
    if (b < 200)
        return 8 + r % 121;
    if (b < 255)
        return 129 + r % 1920;
    return 2049 + r % 30720;
}

static inline uint64_t *block_new(uint64_t r)
{
    size_t n = pick_size(r);
    uint64_t *b = malloc(n);
    if (!b)
        die("malloc failed");
    b[0] = r;
    if (n >= 16)
        ((unsigned char *)b)[n - 1] = (unsigned char)(r >> 56);
    return b;
}

static inline uint64_t block_sum(uint64_t *b)
{
    uint64_t r = b[0];
    size_t n = pick_size(r);
    return (r >> 8) + (n >= 16 ? ((unsigned char *)b)[n - 1] : 0);
}

static void *work(void *arg)
{
    struct task *t = arg;
    uint64_t s = t->seed, sum = 0;
    uint64_t *live[LIVE];
    size_t nlive = 0, nkeep = 0;

    /* first the survivors handed down from the previous wave */
    if (t->inherit) {
        for (size_t k = 0; k < KEEP; k++) {
            sum += block_sum(t->inherit[k]);
            free(t->inherit[k]);
        }
        free(t->inherit);
    }
    t->keep = malloc(KEEP * sizeof *t->keep);
    if (!t->keep)
        die("malloc failed");
    for (size_t i = 0; i < BLOCKS; i++) {
        uint64_t r = rnd(&s);
        uint64_t *b = block_new(r);
        if (nkeep < KEEP && (r >> 60) < 2 && BLOCKS - i > KEEP - nkeep) {
            t->keep[nkeep++] = b;
        } else if (BLOCKS - i <= KEEP - nkeep) {
            t->keep[nkeep++] = b; /* make up the count at the end */
        } else if (nlive < LIVE) {
            live[nlive++] = b;
        } else {
            /* full: free a random live block, in a scrambled order */
            size_t k = (size_t)((r >> 32) % LIVE);
            sum += block_sum(live[k]);
            free(live[k]);
            live[k] = b;
        }
    }
    for (size_t k = 0; k < nlive; k++) {
        sum += block_sum(live[k]);
        free(live[k]);
    }
    t->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 2;
    double scale = 1.0;
    bench_args(argc, argv, &threads, 256, "threads", &scale);
    long waves = (long)(WAVES_PER_SCALE * scale / threads + 0.5);
    if (waves < 1)
        waves = 1;

    struct task *cur = calloc((size_t)threads, sizeof *cur);
    uint64_t ***handed = calloc((size_t)threads, sizeof *handed);
    if (!cur || !handed)
        die("calloc failed");
    uint64_t sum = 0;
    for (long w = 0; w < waves; w++) {
        for (int i = 0; i < threads; i++) {
            cur[i].seed = bench_seed(0x1f83d9abfb41bd6bull,
                                     (uint64_t)(w * threads + i + 1));
            /* thread i takes over the survivors of thread i+1 */
            cur[i].inherit = handed[(i + 1) % threads];
            cur[i].keep = NULL;
        }
        for (int i = 0; i < threads; i++)
            bench_start(&cur[i].tid, work, &cur[i]);
        for (int i = 0; i < threads; i++) {
            sum += bench_join(cur[i].tid, &cur[i].sum);
            handed[i] = cur[i].keep;
        }
    }
    for (int i = 0; i < threads; i++) {
        for (size_t k = 0; k < KEEP; k++) {
            sum += block_sum(handed[i][k]);
            free(handed[i][k]);
        }
        free(handed[i]);
    }
    free(handed);
    free(cur);
    printf("checksum: %llu\n", (unsigned long long)sum);
    return 0;
}
