/*
 * cache_scratch.c — passive false sharing, in the style of cache-scratch.
 * The main thread allocates a few small objects for each worker thread,
 * interleaved (worker 0's, worker 1's, worker 0's, ...), so objects of
 * different workers are neighbours in the same cache lines.  Each worker
 * frees the objects it was given, then repeatedly allocates a few objects
 * of the same size, updates them many times, and frees them.  If the
 * allocator hands the freed neighbour back to the worker (or otherwise
 * gives different threads objects in the same cache line), the workers'
 * writes keep stealing the line from one another and the run is slow;
 * an allocator that keeps each thread's objects apart runs it at the speed
 * of the cache.  The total work is split among the threads.
 *
 * The updates are relaxed atomic increments, like a reference count or a
 * statistics counter kept in a small object.  Plain stores to one address
 * in a tight loop are absorbed by the store buffer on current x86 cores
 * and barely show the sharing; a read-modify-write has to own the line.
 *
 *   cache_scratch [threads=2] [scale=1.0]
 *
 * Prints "checksum: N", computed from the values the workers wrote.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BENCH_NAME "cache_scratch"
#include "bench.h"

#define OBJSIZE 8
#define NOBJ 4 /* objects each thread holds at a time */
#define ITERATIONS_PER_SCALE 3000.0 /* malloc/write/free cycles in all */
#define REPETITIONS 50000           /* updates of the object per cycle */

struct worker {
    pthread_t tid;
    int id;
    long iterations;
    uint64_t *given[NOBJ]; /* allocated by the main thread */
    uint64_t sum;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    uint64_t sum = 0, *p[NOBJ];
    for (int j = 0; j < NOBJ; j++)
        free(w->given[j]);
    for (long i = 0; i < w->iterations; i++) {
        for (int j = 0; j < NOBJ; j++) {
            p[j] = malloc(OBJSIZE);
            if (!p[j])
                die("malloc failed");
            *p[j] = (uint64_t)(w->id + i + j) << 32;
        }
        for (int r = 0; r < REPETITIONS; r++)
            __atomic_fetch_add(p[r % NOBJ], 1 + (r & 4), __ATOMIC_RELAXED);
        for (int j = 0; j < NOBJ; j++) {
            sum += __atomic_load_n(p[j], __ATOMIC_RELAXED) * (uint64_t)(j + 1);
            free(p[j]);
        }
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 2;
    double scale = 1.0;
    bench_args(argc, argv, &threads, 1024, "threads", &scale);
    long total = (long)(ITERATIONS_PER_SCALE * scale + 0.5);
    if (total < threads)
        total = threads;

    struct worker *w = calloc((size_t)threads, sizeof *w);
    if (!w)
        die("calloc failed");
    for (int i = 0; i < threads; i++) {
        w[i].id = i;
        w[i].iterations = total / threads + (i < total % threads);
    }
    /* neighbouring objects, interleaved between the threads */
    for (int j = 0; j < NOBJ; j++)
        for (int i = 0; i < threads; i++)
            if (!(w[i].given[j] = malloc(OBJSIZE)))
                die("malloc failed");
    for (int i = 0; i < threads; i++)
        bench_start(&w[i].tid, work, &w[i]);
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++)
        sum += bench_join(w[i].tid, &w[i].sum);
    free(w);
    printf("checksum: %llu\n", (unsigned long long)sum);
    return 0;
}
