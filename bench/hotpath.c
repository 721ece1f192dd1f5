/*
 * hotpath.c — the malloc+free pair on the fast path, for counting
 * instructions: run under callgrind with two loop counts and divide the
 * difference (bench/hotpath.sh does exactly that).
 *   hotpath N [size=32]
 *
 * Each step frees the oldest of 64 live blocks and allocates a new one, so
 * every allocator runs in its steady state.  (Freeing and allocating one
 * block over and over would empty its page or span at each free, and some
 * allocators then retire the page every time: mimalloc's pair costs 115
 * instructions that way, 56 in this loop.)
 */
#include <stdio.h>
#include <stdlib.h>

#define LIVE 64

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 32;
    void *live[LIVE];
    for (int i = 0; i < LIVE; i++)
        if (!(live[i] = malloc(size)))
            return 1;
    for (long i = 0; i < n; i++) {
        unsigned k = (unsigned)i % LIVE;
        free(live[k]);
        if (!(live[k] = malloc(size)))
            return 1;
    }
    for (int i = 0; i < LIVE; i++)
        free(live[i]);
    return 0;
}
