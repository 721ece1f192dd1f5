/*
 * sieve.c — the concurrent prime sieve from Go's tour, on gort goroutines.
 *
 *   sieve [N]        prints the first N primes (default 100), one a line
 *
 * A generator goroutine sends 2, 3, 4, ... down an unbuffered channel.  The
 * main goroutine takes the first number that comes out of the chain (a
 * prime, since no filter before it divided it) and appends a filter
 * goroutine for that prime: it passes on only what the prime does not
 * divide.  After N primes there are N filters in a chain, each a goroutine
 * parked on its input channel most of the time; every number is handed
 * from goroutine to goroutine through unbuffered channels, so the program
 * is almost nothing but channel operations and goroutine switches.
 *
 * The generator and filters never end: gort_main exits the process when
 * the main goroutine returns, as a Go program does, so they are not
 * stopped or freed.
 */
#include <gort.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The generator: 2, 3, 4, ... for ever. */
static void generate(void *arg)
{
    gort_chan *out = arg;
    for (int64_t i = 2;; i++)
        gort_chan_send(out, &i);
}

struct filter {
    gort_chan *in, *out;
    int64_t prime;
};

/* One link of the chain: drops the multiples of its prime. */
static void filter(void *arg)
{
    struct filter f = *(struct filter *)arg;
    free(arg);
    for (;;) {
        int64_t i;
        gort_chan_recv(f.in, &i);
        if (i % f.prime != 0)
            gort_chan_send(f.out, &i);
    }
}

static int app_main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
    if (n < 1) {
        fprintf(stderr, "usage: sieve [N > 0]\n");
        return 2;
    }
    gort_chan *ch = gort_chan_make(sizeof(int64_t), 0);
    gort_go(generate, ch);
    for (long k = 0; k < n; k++) {
        int64_t prime;
        gort_chan_recv(ch, &prime);
        printf("%" PRId64 "\n", prime);
        /* The next filter reads what this chain lets through so far. */
        struct filter *f = malloc(sizeof *f);
        if (!f) {
            perror("malloc");
            return 1;
        }
        f->in = ch;
        f->out = gort_chan_make(sizeof(int64_t), 0);
        f->prime = prime;
        ch = f->out;
        gort_go(filter, f);
    }
    return 0;
}

int main(int argc, char **argv)
{
    return gort_main(app_main, argc, argv);
}
