/*
 * xmalloc.c — producer/consumer in the style of xmalloc-test.  Producer
 * threads allocate blocks of mixed small sizes, fill in a header, and put
 * them in batches on one shared bounded queue; consumer threads take
 * batches off the queue, read the blocks and free them.  Every block (and
 * every batch array) is freed by a thread other than the one that
 * allocated it, so this measures the cost of remote frees and of memory
 * flowing steadily from one set of threads to another.  Each producer
 * makes the same number of blocks.
 *
 *   xmalloc [threads=1 (producer/consumer pairs)] [scale=1.0]
 *
 * Prints "checksum: N", computed from the values written into the blocks.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_NAME "xmalloc"
#include "bench.h"

#define QCAP 256                    /* batches the queue can hold */
#define BATCH 128                   /* blocks per batch */
#define BLOCKS_PER_SCALE 12000000.0 /* blocks per producer at scale 1 */

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t nonempty, nonfull;
    uint64_t **ring[QCAP];
    size_t head, tail;
    int producers_left;
};

static struct queue q = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .nonempty = PTHREAD_COND_INITIALIZER,
    .nonfull = PTHREAD_COND_INITIALIZER,
};
static long nbatches; /* per producer */

struct worker {
    pthread_t tid;
    uint64_t seed, sum;
};

/* Mostly 8–64 B, some up to 256 B, a few up to 1 KiB. */
static inline size_t pick_size(uint64_t r)
{
    unsigned b = (unsigned)(r & 15);
    r >>= 8;
    if (b < 10)
        return 8 + r % 57;
    if (b < 15)
        return 65 + r % 192;
    return 257 + r % 768;
}

static void *producer(void *arg)
{
    struct worker *w = arg;
    uint64_t s = w->seed;
    for (long i = 0; i < nbatches; i++) {
        uint64_t **batch = malloc(BATCH * sizeof *batch);
        if (!batch)
            die("malloc failed");
        for (int k = 0; k < BATCH; k++) {
            uint64_t r = rnd(&s);
            size_t n = pick_size(r);
            uint64_t *b = malloc(n);
            if (!b)
                die("malloc failed");
            b[0] = r; /* n >= 8; the size is re-derived from r */
            if (n > 8)
                ((unsigned char *)b)[n - 1] = (unsigned char)n;
            batch[k] = b;
        }
        pthread_mutex_lock(&q.mu);
        while (q.tail - q.head == QCAP)
            pthread_cond_wait(&q.nonfull, &q.mu);
        q.ring[q.tail++ % QCAP] = batch;
        pthread_cond_signal(&q.nonempty);
        pthread_mutex_unlock(&q.mu);
    }
    pthread_mutex_lock(&q.mu);
    q.producers_left--;
    pthread_cond_broadcast(&q.nonempty);
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

static void *consumer(void *arg)
{
    struct worker *w = arg;
    uint64_t sum = 0;
    for (;;) {
        pthread_mutex_lock(&q.mu);
        while (q.head == q.tail && q.producers_left > 0)
            pthread_cond_wait(&q.nonempty, &q.mu);
        if (q.head == q.tail) {
            pthread_mutex_unlock(&q.mu);
            break;
        }
        uint64_t **batch = q.ring[q.head++ % QCAP];
        pthread_cond_signal(&q.nonfull);
        pthread_mutex_unlock(&q.mu);
        for (int k = 0; k < BATCH; k++) {
            uint64_t *b = batch[k];
            size_t n = pick_size(b[0]);
            sum += (b[0] >> 16) + (n > 8 ? ((unsigned char *)b)[n - 1] : 0);
            free(b);
        }
        free(batch);
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int pairs = 1;
    double scale = 1.0;
    bench_args(argc, argv, &pairs, 512, "threads (pairs)", &scale);
    nbatches = (long)(BLOCKS_PER_SCALE * scale / BATCH + 0.5);
    if (nbatches < 1)
        nbatches = 1;
    q.producers_left = pairs;

    struct worker *w = calloc((size_t)pairs * 2, sizeof *w);
    if (!w)
        die("calloc failed");
    for (int i = 0; i < pairs; i++) {
        w[i].seed = bench_seed(0xa54ff53a5f1d36f1ull, (uint64_t)(i + 1));
        bench_start(&w[i].tid, producer, &w[i]);
        bench_start(&w[pairs + i].tid, consumer, &w[pairs + i]);
    }
    uint64_t sum = 0;
    for (int i = 0; i < 2 * pairs; i++)
        sum += bench_join(w[i].tid, &w[i].sum);
    free(w);
    printf("checksum: %llu\n", (unsigned long long)sum);
    return 0;
}
