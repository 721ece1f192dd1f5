/*
 * small.c — a small program, to show what an allocator costs a process
 * before it does any real work: its fixed overhead.  It makes the few
 * hundred allocations a command-line tool makes (about 1000 blocks of
 * 16–512 B, a few strings grown by realloc, one 64 KiB buffer), frees half,
 * and exits.  Its peak RSS under an allocator, less its peak RSS under
 * glibc, is that allocator's fixed overhead: the pages its library, its
 * metadata and its first spans or slabs add to a program that needs
 * 250 KiB.  The runner reports it beside the other rows.
 *
 *   small [threads=1 (ignored)] [scale=1.0 (ignored)]
 *
 * Prints "checksum: N", computed from the bytes written into the blocks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_NAME "small"
#include "bench.h"

#define NBLOCKS 1000
#define NSTRINGS 8

int main(void)
{
    static unsigned char *blocks[NBLOCKS];
    uint64_t rng = 0x2545f4914f6cdd1dull, sum = 0;
    for (int i = 0; i < NBLOCKS; i++) {
        size_t n = 16 + rnd(&rng) % 497;
        if (!(blocks[i] = malloc(n)))
            die("malloc(%zu) failed", n);
        memset(blocks[i], (int)(i & 0xff), n);
        sum += blocks[i][n - 1] + n;
    }
    /* Strings grown a character at a time, as a parser builds tokens. */
    for (int s = 0; s < NSTRINGS; s++) {
        char *str = NULL;
        size_t len = 0;
        for (int k = 0; k < 200; k++) {
            char *grown = realloc(str, len + 2);
            if (!grown)
                die("realloc(%zu) failed", len + 2);
            str = grown;
            str[len++] = (char)('a' + (s + k) % 26);
            str[len] = '\0';
        }
        for (size_t k = 0; k < len; k++)
            sum += (unsigned char)str[k];
        free(str);
    }
    unsigned char *buf = calloc(64, 1024);
    if (!buf)
        die("calloc(64, 1024) failed");
    for (size_t k = 0; k < 64 * 1024; k += 4096)
        buf[k] = (unsigned char)k;
    sum += buf[4096];
    free(buf);
    for (int i = 0; i < NBLOCKS; i += 2)
        free(blocks[i]);
    printf("checksum: %llu\n", (unsigned long long)sum);
    return 0;
}
