/*
 * workerpool.c — a pool of worker goroutines fed by a jobs channel.
 *
 *   workerpool [WORKERS [JOBS]]      (defaults: 8 workers, 10000 jobs)
 *
 * The classic Go shape: a sender goroutine puts job numbers on a buffered
 * jobs channel and closes it; WORKERS goroutines range over that channel
 * (receive until it is closed and drained), each sending one result per job
 * on a results channel and calling Done on a WaitGroup when the jobs run
 * out; one more goroutine waits on the WaitGroup and then closes results,
 * so the main goroutine can simply range over results until it closes.
 *
 * A job is the length of the Collatz sequence of its number — a little
 * arithmetic of uneven length, so the workers finish at different times.
 * The program checks the total against a plain loop and says which worker
 * did how much.
 */
#include <gort.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct result {
    int64_t job, steps;
    int worker;
};

struct pool {
    gort_chan *jobs, *results;
    gort_waitgroup wg;
};

struct worker {
    struct pool *pool;
    int id;
};

/* Steps for n to reach 1 by n -> n/2 or 3n+1. */
static int64_t collatz(int64_t n)
{
    int64_t steps = 0;
    for (; n != 1; steps++)
        n = n % 2 ? 3 * n + 1 : n / 2;
    return steps;
}

static void work(void *arg)
{
    struct worker *w = arg;
    int64_t job;
    /* for job := range jobs */
    while (gort_chan_recv(w->pool->jobs, &job)) {
        struct result r = { job, collatz(job), w->id };
        gort_chan_send(w->pool->results, &r);
    }
    gort_waitgroup_done(&w->pool->wg);
}

/* Closes results once every worker has finished. */
static void closer(void *arg)
{
    struct pool *p = arg;
    gort_waitgroup_wait(&p->wg);
    gort_chan_close(p->results);
}

struct sender {
    gort_chan *jobs;
    int64_t n;
};

/* Sends jobs 1..n, then closes the channel: no more work. */
static void send_jobs(void *arg)
{
    struct sender *s = arg;
    for (int64_t j = 1; j <= s->n; j++)
        gort_chan_send(s->jobs, &j);
    gort_chan_close(s->jobs);
}

static int app_main(int argc, char **argv)
{
    int nworkers = argc > 1 ? atoi(argv[1]) : 8;
    int64_t njobs = argc > 2 ? atoll(argv[2]) : 10000;
    if (nworkers < 1 || njobs < 0) {
        fprintf(stderr, "usage: workerpool [WORKERS > 0 [JOBS >= 0]]\n");
        return 2;
    }

    struct pool p = { gort_chan_make(sizeof(int64_t), 100),
                      gort_chan_make(sizeof(struct result), 100), GORT_WAITGROUP_INIT };
    struct worker *ws = calloc((size_t)nworkers, sizeof *ws);
    int64_t *done_by = calloc((size_t)nworkers, sizeof *done_by);
    if (!ws || !done_by) {
        perror("calloc");
        return 1;
    }
    gort_waitgroup_add(&p.wg, nworkers);
    for (int i = 0; i < nworkers; i++) {
        ws[i] = (struct worker){ &p, i };
        gort_go(work, &ws[i]);
    }
    gort_go(closer, &p);

    /* Send the jobs from a goroutine of their own: the jobs channel holds
     * only 100, and the main goroutine must be free to drain results or
     * the workers would block on a full results channel. */
    struct sender s = { p.jobs, njobs };
    gort_go(send_jobs, &s);

    int64_t total = 0, count = 0;
    struct result r;
    while (gort_chan_recv(p.results, &r)) {   /* for r := range results */
        total += r.steps;
        count++;
        done_by[r.worker]++;
    }

    int64_t want = 0;
    for (int64_t j = 1; j <= njobs; j++)
        want += collatz(j);
    printf("workerpool: %d workers, %" PRId64 " jobs, %" PRId64 " results, total steps %" PRId64
           " (expected %" PRId64 ")\n", nworkers, njobs, count, total, want);
    printf("jobs per worker:");
    for (int i = 0; i < nworkers; i++)
        printf(" %" PRId64, done_by[i]);
    printf("\n");
    bool ok = count == njobs && total == want;
    printf("%s\n", ok ? "ok" : "MISMATCH");

    gort_chan_free(p.jobs);
    gort_chan_free(p.results);
    free(ws);
    free(done_by);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    return gort_main(app_main, argc, argv);
}
