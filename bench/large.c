/*
 * large.c — large blocks, in the style of malloc-large: blocks of 64 KiB
 * to 16 MiB with sizes spread about evenly on a log scale (a random
 * octave, then uniform within it), each written once per 4 KiB page (as a
 * program filling a buffer would), kept in a small FIFO window of live
 * blocks; each new block replaces the oldest.  It measures
 * how the allocator gets large blocks from the OS and gives them back:
 * mmap/munmap per block, reusing freed memory, and the page faults and
 * zeroing that follow from each choice.
 *
 *   large [threads=1 (ignored)] [scale=1.0]
 *
 * Prints "checksum: N", computed from bytes read back from the blocks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BENCH_NAME "large"
#include "bench.h"

#define WINDOW 20
#define BLOCKS_PER_SCALE 3000.0
#define MINLOG 16 /* 64 KiB */
#define MAXLOG 24 /* 16 MiB */
#define PAGE 4096

static uint64_t rng_state = 0xbb67ae8584caa73bull;

struct block {
    unsigned char *p;
    size_t n;
};

static uint64_t block_sum(const struct block *b)
{
    /* read back a few pages spread over the block, and the last byte */
    uint64_t s = b->n;
    size_t pages = (b->n + PAGE - 1) / PAGE;
    for (size_t k = 0; k < pages; k += 1 + pages / 8)
        s += (uint64_t)b->p[k * PAGE] * (k + 1);
    return s + b->p[b->n - 1];
}

int main(int argc, char **argv)
{
    double scale = 1.0;
    bench_args(argc, argv, NULL, 0, NULL, &scale);
    long nblocks = (long)(BLOCKS_PER_SCALE * scale + 0.5);
    struct block win[WINDOW] = {{0}};
    uint64_t sum = 0;

    for (long i = 0; i < nblocks; i++) {
        struct block *b = &win[i % WINDOW];
        if (b->p) {
            sum += block_sum(b);
            free(b->p);
        }
        /* about uniform in log(size): a random octave, uniform inside it */
        uint64_t r = rnd(&rng_state);
        unsigned e = MINLOG + (unsigned)(r % (MAXLOG - MINLOG));
        size_t n = ((size_t)1 << e) + (size_t)((r >> 8) % ((uint64_t)1 << e));
        n &= ~(size_t)15;
        b->n = n;
        b->p = malloc(n);
        if (!b->p)
            die("malloc failed");
        for (size_t off = 0; off < n; off += PAGE)
            b->p[off] = (unsigned char)(i + (off >> 12));
        b->p[n - 1] = (unsigned char)(n >> 4);
    }
    for (int k = 0; k < WINDOW; k++)
        if (win[k].p) {
            sum += block_sum(&win[k]);
            free(win[k].p);
        }
    printf("checksum: %llu\n", (unsigned long long)sum);
    return 0;
}
