/*
 * sizes.c — random allocation and free over a size distribution shaped
 * like real programs' traces, in the style of alloc-test: mostly 16–64 B
 * (small structs, list and tree nodes, short strings), a fair share of
 * 100–1000 B (buffers, larger records) and a few blocks of 4–64 KiB.
 * Each thread keeps a working set of slots; every step frees the block in
 * a random slot and allocates a new one there.  Threads are independent
 * (no sharing); each does the same amount of work.
 *
 *   sizes [threads=1] [scale=1.0]
 *
 * Prints "checksum: N", computed from the bytes written into the blocks.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_NAME "sizes"
#include "bench.h"

#define SLOTS 20000                 /* working set per thread */
#define OPS_PER_SCALE 24000000.0    /* steps per thread at scale 1 */
#define LUT_BITS 12

/* (size, weight): weights are per mille, roughly as seen in traces. */
static const struct {
    unsigned size, weight;
} table[] = {
    {16, 150},  {24, 140},  {32, 130},   {40, 80},    {48, 90},   {56, 45},
    {64, 70},   {72, 20},   {80, 30},    {96, 30},    {112, 18},  {128, 30},
    {144, 10},  {160, 12},  {192, 12},   {224, 8},    {256, 20},  {320, 10},
    {384, 8},   {448, 5},   {512, 14},   {640, 6},    {768, 5},   {1000, 6},
    {1024, 8},  {1536, 3},  {2048, 5},   {3072, 2},   {4096, 4},  {8192, 3},
    {12288, 1}, {16384, 2}, {32768, 1},  {65536, 1},
};
#define NTABLE (sizeof table / sizeof table[0])

static unsigned char lut[1u << LUT_BITS]; /* uniform index -> table row */
static long ops_per_thread;

static void build_lut(void)
{
    unsigned total = 0;
    for (size_t i = 0; i < NTABLE; i++)
        total += table[i].weight;
    size_t row = 0;
    unsigned acc = table[0].weight;
    for (unsigned k = 0; k < (1u << LUT_BITS); k++) {
        /* the point k+0.5 of [0, 2^LUT_BITS) mapped onto [0, total) */
        double x = (k + 0.5) * total / (double)(1u << LUT_BITS);
        while (x >= acc && row + 1 < NTABLE)
            acc += table[++row].weight;
        lut[k] = (unsigned char)row;
    }
}

/* Exact sizes half the time (struct sizes), otherwise anywhere in the bin. */
static inline size_t pick_size(uint64_t *s)
{
    uint64_t r = rnd(s);
    unsigned row = lut[r & ((1u << LUT_BITS) - 1)];
    size_t hi = table[row].size;
    if ((r >> 20) & 1)
        return hi;
    size_t lo = row ? table[row - 1].size + 1 : 8;
    return lo + (r >> 24) % (hi - lo + 1);
}

struct worker {
    pthread_t tid;
    uint64_t seed, sum;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    uint64_t s = w->seed, sum = 0;
    unsigned char **slot = calloc(SLOTS, sizeof *slot);
    uint32_t *len = calloc(SLOTS, sizeof *len);
    if (!slot || !len)
        die("calloc failed");
    for (long i = 0; i < ops_per_thread; i++) {
        uint64_t r = rnd(&s);
        size_t k = (size_t)(r % SLOTS);
        unsigned char *p = slot[k];
        if (p) {
            size_t n = len[k];
            sum += p[0] + (uint64_t)p[n - 1] * 7 + (uint64_t)p[n / 2] * 13;
            free(p);
        }
        size_t n = pick_size(&s);
        p = malloc(n);
        if (!p)
            die("malloc failed");
        /* touch the head like a constructor would, and the tail */
        memset(p, (int)(i & 0xff), n < 32 ? n : 32);
        p[n / 2] = (unsigned char)(r >> 40);
        p[n - 1] = (unsigned char)n;
        slot[k] = p;
        len[k] = (uint32_t)n;
    }
    for (size_t k = 0; k < SLOTS; k++)
        if (slot[k]) {
            size_t n = len[k];
            sum += slot[k][0] + (uint64_t)slot[k][n - 1] * 7 +
                   (uint64_t)slot[k][n / 2] * 13;
            free(slot[k]);
        }
    free(slot);
    free(len);
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 1;
    double scale = 1.0;
    bench_args(argc, argv, &threads, 1024, "threads", &scale);
    ops_per_thread = (long)(OPS_PER_SCALE * scale);
    build_lut();

    struct worker *w = calloc((size_t)threads, sizeof *w);
    if (!w)
        die("calloc failed");
    for (int i = 0; i < threads; i++) {
        w[i].seed = bench_seed(0x243f6a8885a308d3ull, (uint64_t)(i + 1));
        bench_start(&w[i].tid, work, &w[i]);
    }
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++)
        sum += bench_join(w[i].tid, &w[i].sum);
    free(w);
    printf("checksum: %llu\n", (unsigned long long)sum);
    return 0;
}
