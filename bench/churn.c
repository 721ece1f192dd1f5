/*
 * churn.c — single-threaded small-object churn in the style of cfrac and
 * espresso: a long stream of short-lived objects of mixed small sizes
 * (8–300 B, most under 64 B).  Live objects sit in a sliding window (each
 * new object replaces the oldest), a smaller pool holds longer-lived
 * objects replaced at random, and every so often a burst allocates a few
 * thousand objects at once and then frees them all in a scrambled order.
 *
 *   churn [threads=1 (ignored)] [scale=1.0]
 *
 * Prints "checksum: N", computed from the bytes written into the objects.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_NAME "churn"
#include "bench.h"

#define WINDOW 4096     /* sliding window of short-lived objects */
#define POOL 1024       /* longer-lived objects, replaced at random */
#define BURST_MAX 20000 /* largest burst */
#define OPS_PER_SCALE 25000000.0

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* Skewed small sizes: half 8–32 B, a third 33–64 B, the rest up to 300 B. */
static inline size_t pick_size(void)
{
    uint64_t r = rnd(&rng_state);
    unsigned bucket = (unsigned)(r % 100);
    r >>= 8;
    if (bucket < 50)
        return 8 + r % 25;
    if (bucket < 80)
        return 33 + r % 32;
    if (bucket < 93)
        return 65 + r % 64;
    return 129 + r % 172;
}

/* Layout: first byte = size & 0xff, then a tag byte pattern, last byte. */
static inline unsigned char *obj_new(size_t n, uint64_t tag)
{
    unsigned char *p = malloc(n);
    if (!p)
        die("malloc failed");
    size_t m = n < 16 ? n : 16;
    for (size_t i = 0; i < m; i++)
        p[i] = (unsigned char)(tag >> ((i & 7) * 8));
    p[n - 1] = (unsigned char)n;
    return p;
}

static inline uint64_t obj_sum(const unsigned char *p, size_t n)
{
    return (uint64_t)p[0] * 3 + (uint64_t)p[n - 1] * 5 + (n >= 8 ? p[7] : 0);
}

static size_t gcd(size_t a, size_t b)
{
    while (b) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static unsigned char *win[WINDOW];
static size_t winsz[WINDOW];
static unsigned char *pool[POOL];
static size_t poolsz[POOL];
static unsigned char *burst[BURST_MAX];
static size_t burstsz[BURST_MAX];

int main(int argc, char **argv)
{
    double scale = 1.0;
    bench_args(argc, argv, NULL, 0, NULL, &scale);
    long ops = (long)(OPS_PER_SCALE * scale);
    uint64_t sum = 0;
    long next_burst = 20000 + (long)(rnd(&rng_state) % 60000);

    for (long i = 0; i < ops; i++) {
        /* sliding window: replace the oldest object */
        size_t w = (size_t)i % WINDOW;
        if (win[w])
            sum += obj_sum(win[w], winsz[w]);
        if (win[w] && (rnd(&rng_state) & 15) == 0)
            free(win[w]), win[w] = NULL; /* occasionally leave a hole */
        else {
            free(win[w]);
            winsz[w] = pick_size();
            win[w] = obj_new(winsz[w], (uint64_t)i);
        }

        /* one op in 32 replaces a random longer-lived object */
        if ((i & 31) == 0) {
            size_t k = (size_t)(rnd(&rng_state) % POOL);
            if (pool[k]) {
                sum += obj_sum(pool[k], poolsz[k]);
                free(pool[k]);
            }
            poolsz[k] = pick_size();
            pool[k] = obj_new(poolsz[k], (uint64_t)i * 7);
        }

        /* bursts: many objects at once, all freed shortly after */
        if (i == next_burst) {
            size_t nb = 2000 + (size_t)(rnd(&rng_state) % (BURST_MAX - 2000));
            for (size_t k = 0; k < nb; k++) {
                burstsz[k] = pick_size();
                burst[k] = obj_new(burstsz[k], k);
            }
            /* free in a scrambled order: stride coprime with nb */
            size_t stride = 7919;
            while (gcd(stride, nb) != 1)
                stride++;
            for (size_t k = 0, j = 0; k < nb; k++, j = (j + stride) % nb) {
                sum += obj_sum(burst[j], burstsz[j]);
                free(burst[j]);
            }
            next_burst = i + 20000 + (long)(rnd(&rng_state) % 60000);
        }
    }
    for (size_t w = 0; w < WINDOW; w++)
        if (win[w]) {
            sum += obj_sum(win[w], winsz[w]);
            free(win[w]);
        }
    for (size_t k = 0; k < POOL; k++)
        if (pool[k]) {
            sum += obj_sum(pool[k], poolsz[k]);
            free(pool[k]);
        }
    printf("checksum: %llu\n", (unsigned long long)sum);
    return 0;
}
