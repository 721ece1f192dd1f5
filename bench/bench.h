/*
 * bench.h — helpers shared by the benchmark workload programs in bench/:
 * die() for fatal errors, the xorshift64* generator rnd(), seeding of
 * per-thread generators, starting and joining threads, and parsing of the
 * common command line "[threads] [scale]".  Header-only: every function is
 * static inline, so each program still builds from its single source file
 * (gcc -O2 -pthread bench/NAME.c).
 *
 * A program defines BENCH_NAME (its name, the prefix of its error messages)
 * before including this header.
 */
#ifndef BENCH_H
#define BENCH_H

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench.h"
#endif

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Prints "BENCH_NAME: " and the printf-style message on stderr, exits 1. */
__attribute__((noreturn, format(printf, 1, 2)))
static inline void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(BENCH_NAME ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* xorshift64*: advances *state (which must not be 0) and returns the next
 * value. */
static inline uint64_t rnd(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Seed of the k-th generator (k >= 1) of a family with base seed base. */
static inline uint64_t bench_seed(uint64_t base, uint64_t k)
{
    return base ^ (k * 0x9e3779b97f4a7c15ull);
}

/* pthread_create(tid, NULL, fn, arg), or die. */
static inline void bench_start(pthread_t *tid, void *(*fn)(void *), void *arg)
{
    if (pthread_create(tid, NULL, fn, arg))
        die("pthread_create failed");
}

/* pthread_join(tid), then the worker's result *sum (read after the join). */
static inline uint64_t bench_join(pthread_t tid, const uint64_t *sum)
{
    pthread_join(tid, NULL);
    return *sum;
}

/*
 * Parses "[threads] [scale]" from argv.  *threads and *scale hold the
 * defaults on entry and are overwritten by the arguments given.  threads
 * must be an integer in 1..max_threads (message: "<what> must be
 * 1..<max_threads>"); pass threads == NULL for a program that ignores
 * argv[1].  scale must be a number in (0, 1e6].
 */
static inline void bench_args(int argc, char **argv, int *threads,
                              int max_threads, const char *what, double *scale)
{
    char *end;
    if (argc > 1 && threads) {
        long t = strtol(argv[1], &end, 10);
        if (*end || t < 1 || t > max_threads)
            die("%s must be 1..%d", what, max_threads);
        *threads = (int)t;
    }
    if (argc > 2) {
        double s = strtod(argv[2], &end);
        if (*end || !(s > 0) || s > 1e6)
            die("scale must be a positive number");
        *scale = s;
    }
}

#endif /* BENCH_H */
