/*
 * realloc_growth.c — growing and shrinking buffers with realloc, as
 * dynamic arrays and string builders do.  Many buffers are live at once;
 * each step picks one at random and advances it:
 *   - a "vector" appends eight-byte elements and doubles its capacity
 *     with realloc when full (amortised growth);
 *   - a "string" appends bytes and reallocs to the exact new length every
 *     time (naive append: many small reallocs, most of which an allocator
 *     can serve in place);
 * Small buffers append a few bytes at a time, large ones bigger chunks
 * (up to about 1/64 of the target), so every buffer reaches its target in
 * at most a few hundred steps.
 * Once a buffer reaches its target length (16 B to 64 KiB, spread on a
 * log scale) it shrinks, halving with realloc a few times, and is then freed
 * and started again.  The contents are checked after every move, so a
 * realloc that loses data fails the run.
 *
 *   realloc_growth [threads=1 (ignored)] [scale=1.0]
 *
 * Prints "checksum: N", computed from the buffers' contents.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_NAME "realloc_growth"
#include "bench.h"

#define NBUF 2000
#define STEPS_PER_SCALE 4000000.0

static uint64_t rng_state = 0x510e527fade682d1ull;

struct buf {
    unsigned char *p;
    size_t len, cap; /* cap: bytes asked of the allocator */
    size_t target;   /* grow until len >= target */
    int kind;        /* 0 vector, 1 string */
    int shrinks;     /* halvings left once grown; -1 while growing */
    unsigned gen;    /* content seed */
};

static struct buf bufs[NBUF];

/* Byte i of a buffer with seed g. */
static inline unsigned char content(unsigned g, size_t i)
{
    return (unsigned char)(g + i * 7);
}

static void start(struct buf *b, unsigned gen)
{
    uint64_t r = rnd(&rng_state);
    /* target: a random octave from 2^4 to 2^15, uniform inside it */
    unsigned e = 4 + (unsigned)(r % 12);
    b->target = ((size_t)1 << e) + (size_t)((r >> 8) % ((uint64_t)1 << e));
    b->kind = (int)((r >> 40) & 1);
    b->shrinks = -1;
    b->len = 0;
    b->cap = 0;
    b->p = NULL;
    b->gen = gen;
}

/* Check the bytes around a point, the first and the last. */
static uint64_t check(const struct buf *b, size_t at)
{
    if (b->len == 0)
        return 0;
    size_t i0 = at < 4 ? 0 : at - 4, i1 = at + 4 < b->len ? at + 4 : b->len;
    uint64_t s = 0;
    for (size_t i = i0; i < i1; i++) {
        if (b->p[i] != content(b->gen, i))
            die("buffer contents lost across realloc");
        s += b->p[i];
    }
    if (b->p[0] != content(b->gen, 0) ||
        b->p[b->len - 1] != content(b->gen, b->len - 1))
        die("buffer contents lost across realloc");
    return s + b->p[b->len - 1];
}

static void resize(struct buf *b, size_t cap)
{
    unsigned char *q = realloc(b->p, cap);
    if (!q)
        die("realloc failed");
    b->p = q;
    b->cap = cap;
}

static uint64_t step(struct buf *b, unsigned *gen)
{
    uint64_t r = rnd(&rng_state), sum = 0;
    if (b->shrinks < 0) {
        /* bigger buffers take bigger appends, so each one reaches its
         * target within a few hundred steps */
        size_t span = b->target / 256 > 8 ? b->target / 256 : 8;
        size_t add = b->kind == 0 ? 8 * (1 + (r >> 24) % span)
                                  : 1 + (r >> 24) % (4 * span);
        size_t need = b->len + add;
        if (b->kind == 0) {
            if (need > b->cap) {
                size_t cap = b->cap ? b->cap : 64;
                while (cap < need)
                    cap *= 2;
                resize(b, cap);
                sum += check(b, b->len / 2);
            }
        } else {
            resize(b, need);
            sum += check(b, (size_t)(r >> 8) % (b->len + 1));
        }
        for (size_t i = b->len; i < need; i++)
            b->p[i] = content(b->gen, i);
        b->len = need;
        if (b->len >= b->target)
            b->shrinks = 1 + (int)((r >> 16) % 4);
    } else if (b->shrinks > 0 && b->len > 16) {
        b->len /= 2;
        resize(b, b->len);
        sum += check(b, (size_t)(r >> 8) % b->len);
        b->shrinks--;
    } else {
        sum += b->len + check(b, b->len / 3);
        free(b->p);
        start(b, ++*gen);
    }
    return sum;
}

int main(int argc, char **argv)
{
    double scale = 1.0;
    bench_args(argc, argv, NULL, 0, NULL, &scale);
    long steps = (long)(STEPS_PER_SCALE * scale);
    unsigned gen = 0;
    uint64_t sum = 0;
    for (size_t k = 0; k < NBUF; k++)
        start(&bufs[k], ++gen);
    for (long i = 0; i < steps; i++)
        sum += step(&bufs[rnd(&rng_state) % NBUF], &gen);
    for (size_t k = 0; k < NBUF; k++) {
        sum += bufs[k].len + check(&bufs[k], bufs[k].len / 2);
        free(bufs[k].p);
    }
    printf("checksum: %llu\n", (unsigned long long)sum);
    return 0;
}
