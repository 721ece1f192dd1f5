/*
 * pipeline.c — a three-stage pipeline: generate -> square -> sum.
 *
 *   pipeline [N [SQUARERS]]      (defaults: N = 100000, 4 squarers)
 *
 * Each stage is a goroutine (the middle one a small fan-out of SQUARERS
 * goroutines) connected to the next by a channel.  The generator sends
 * 1..N and closes its channel; each squarer ranges over that channel until
 * it is closed and drained, and the last squarer to finish closes the
 * squares channel (a WaitGroup tells when all are done); the summing
 * stage ranges over squares and reports its total on a result channel.
 * Closing is how "no more values" travels down the pipeline, as in Go:
 * no stage is told the count.
 *
 * The sum of squares 1..N is N(N+1)(2N+1)/6, which the program checks.
 */
#include <gort.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct stages {
    int64_t n;
    gort_chan *nums;      /* generate -> square */
    gort_chan *squares;   /* square -> sum */
    gort_chan *result;    /* sum -> main, one value */
    gort_waitgroup squarers;
};

static void generate(void *arg)
{
    struct stages *s = arg;
    for (int64_t i = 1; i <= s->n; i++)
        gort_chan_send(s->nums, &i);
    gort_chan_close(s->nums);             /* tells the squarers to stop */
}

static void square(void *arg)
{
    struct stages *s = arg;
    int64_t v;
    while (gort_chan_recv(s->nums, &v)) { /* until nums is closed and drained */
        int64_t sq = v * v;
        gort_chan_send(s->squares, &sq);
    }
    gort_waitgroup_done(&s->squarers);
}

/* Closes squares once no squarer can send on it any more. */
static void close_squares(void *arg)
{
    struct stages *s = arg;
    gort_waitgroup_wait(&s->squarers);
    gort_chan_close(s->squares);
}

static void sum(void *arg)
{
    struct stages *s = arg;
    int64_t total = 0, v;
    while (gort_chan_recv(s->squares, &v))
        total += v;
    gort_chan_send(s->result, &total);
}

static int app_main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 100000;
    int nsq = argc > 2 ? atoi(argv[2]) : 4;
    if (n < 0 || n > 1000000 || nsq < 1) {   /* keeps the sum inside int64 */
        fprintf(stderr, "usage: pipeline [0 <= N <= 1000000 [SQUARERS > 0]]\n");
        return 2;
    }
    struct stages s = { n, gort_chan_make(sizeof(int64_t), 16), gort_chan_make(sizeof(int64_t), 16),
                        gort_chan_make(sizeof(int64_t), 0), GORT_WAITGROUP_INIT };
    int64_t t0 = gort_nanotime();
    gort_waitgroup_add(&s.squarers, nsq);
    gort_go(generate, &s);
    for (int i = 0; i < nsq; i++)
        gort_go(square, &s);
    gort_go(close_squares, &s);
    gort_go(sum, &s);

    int64_t total = 0;
    gort_chan_recv(s.result, &total);
    int64_t el = gort_nanotime() - t0;

    int64_t want = n * (n + 1) * (2 * n + 1) / 6;
    printf("pipeline: sum of squares 1..%" PRId64 " = %" PRId64 " (expected %" PRId64 "), "
           "%d squarers, %.1f ms, %.0f ns per value\n",
           n, total, want, nsq, el / 1e6, n ? (double)el / (double)n : 0.0);
    bool ok = total == want;
    printf("%s\n", ok ? "ok" : "MISMATCH");
    gort_chan_free(s.nums);
    gort_chan_free(s.squares);
    gort_chan_free(s.result);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    return gort_main(app_main, argc, argv);
}
