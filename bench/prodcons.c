/*
 * prodcons.c — producer/consumer in the style of xmalloc-test: producer
 * threads allocate blocks of mixed small sizes and hand them through a
 * bounded queue to consumer threads, which free them.  Every free is a
 * cross-thread free.
 *   prodcons [pairs=1] [blocks=10000000]
 * Prints the wall time; run under each allocator with LD_PRELOAD.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QCAP 4096
#define BATCH 64

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t nonempty, nonfull;
    void **ring[QCAP];
    size_t head, tail;
    int done;
};

static long nblocks;

static void *producer(void *arg)
{
    struct queue *q = arg;
    unsigned x = 12345;
    for (long i = 0; i < nblocks; i += BATCH) {
        void **batch = malloc(BATCH * sizeof *batch);
        for (int k = 0; k < BATCH; k++) {
            x = x * 1103515245u + 12345u;
            size_t n = 8 + (x >> 16) % 256;
            batch[k] = malloc(n);
            memset(batch[k], k, 8);
        }
        pthread_mutex_lock(&q->mu);
        while (q->tail - q->head == QCAP)
            pthread_cond_wait(&q->nonfull, &q->mu);
        q->ring[q->tail++ % QCAP] = batch;
        pthread_cond_signal(&q->nonempty);
        pthread_mutex_unlock(&q->mu);
    }
    pthread_mutex_lock(&q->mu);
    q->done = 1;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static void *consumer(void *arg)
{
    struct queue *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (q->head == q->tail && !q->done)
            pthread_cond_wait(&q->nonempty, &q->mu);
        if (q->head == q->tail) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        void **batch = q->ring[q->head++ % QCAP];
        pthread_cond_signal(&q->nonfull);
        pthread_mutex_unlock(&q->mu);
        for (int k = 0; k < BATCH; k++)
            free(batch[k]);
        free(batch);
    }
}

int main(int argc, char **argv)
{
    int pairs = argc > 1 ? atoi(argv[1]) : 1;
    nblocks = argc > 2 ? atol(argv[2]) : 10000000;
    struct queue *qs = calloc((size_t)pairs, sizeof *qs);
    pthread_t *t = calloc((size_t)pairs * 2, sizeof *t);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < pairs; i++) {
        pthread_mutex_init(&qs[i].mu, NULL);
        pthread_cond_init(&qs[i].nonempty, NULL);
        pthread_cond_init(&qs[i].nonfull, NULL);
        pthread_create(&t[2 * i], NULL, producer, &qs[i]);
        pthread_create(&t[2 * i + 1], NULL, consumer, &qs[i]);
    }
    for (int i = 0; i < 2 * pairs; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%d pair(s), %ld blocks each: %.3f s\n", pairs, nblocks,
           (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
