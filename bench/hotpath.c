/*
 * hotpath.c — the malloc+free pair on the fast path, for counting
 * instructions: run under callgrind with two loop counts and divide the
 * difference (bench/hotpath.sh does exactly that).
 *   hotpath N [size=32]
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 32;
    void *volatile sink;
    for (long i = 0; i < n; i++) {
        void *p = malloc(size);
        sink = p;
        free(p);
    }
    (void)sink;
    return 0;
}
