/*
 * gort_bench.c — the scheduler micro-benchmarks, gort's side.  go/main.go
 * is the same program in Go; bench/sched/run.py runs both and compares.
 *
 *   gort_bench BENCH [N]
 *
 * Each benchmark runs once per process (GOMAXPROCS comes from the
 * environment) and prints "key value" lines: the measured figure under
 * the key the runner reads, plus anything worth a look.
 *
 *   yield N      two goroutines call gort_yield N times each: ns per switch
 *   pingpong N   N round trips over two unbuffered channels: ns one way
 *   chanbuf N    N values through a channel of capacity 128 from one
 *                goroutine to another: ns per send+receive
 *   spawn N      go f(); wg.Wait(), N times in a row: ns each
 *   burst N      start N goroutines, then one wg.Wait(): ns per goroutine
 *   skynet       1,111,111 goroutines in a tree of ten: ms and peak RSS
 *   sleep N US   N sleeps of US µs each: median µs actually slept
 *   handoff N    GOMAXPROCS=1: goroutine A blocks 20 ms in a system call
 *                while B is runnable; µs from A's entry to B running (median)
 *   parked N     N goroutines parked on one channel receive: resident bytes
 *                per goroutine (/proc/self/statm, before and after)
 */
#include <gort.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int64_t arg_or(int argc, char **argv, int i, int64_t dflt)
{
    return argc > i ? atoll(argv[i]) : dflt;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t median(int64_t *v, int64_t n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Resident bytes now, from /proc/self/statm (pages). */
static int64_t rss_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (int64_t)res * sysconf(_SC_PAGESIZE);
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* ---- yield ------------------------------------------------------------------ */

static int64_t yield_n;
static gort_waitgroup yield_wg;

static void yielder(void *arg)
{
    (void)arg;
    for (int64_t i = 0; i < yield_n; i++)
        gort_yield();
    gort_waitgroup_done(&yield_wg);
}

static void bench_yield(int64_t n)
{
    yield_n = n;
    gort_waitgroup_add(&yield_wg, 1);
    gort_go(yielder, NULL);
    int64_t t0 = gort_nanotime();
    for (int64_t i = 0; i < n; i++)
        gort_yield();
    gort_waitgroup_wait(&yield_wg);
    int64_t el = gort_nanotime() - t0;
    printf("ns_per_op %.2f\n", (double)el / (double)(2 * n));
}

/* ---- channel ping-pong ------------------------------------------------------ */

struct pp {
    gort_chan *ping, *pong;
    int64_t n;
};

static void ponger(void *arg)
{
    struct pp *p = arg;
    int64_t v;
    for (int64_t i = 0; i < p->n; i++) {
        gort_chan_recv(p->ping, &v);
        gort_chan_send(p->pong, &v);
    }
}

static void bench_pingpong(int64_t n)
{
    struct pp p = { gort_chan_make(sizeof(int64_t), 0), gort_chan_make(sizeof(int64_t), 0), n };
    gort_go(ponger, &p);
    int64_t t0 = gort_nanotime();
    for (int64_t i = 0; i < n; i++) {
        int64_t v = i;
        gort_chan_send(p.ping, &v);
        gort_chan_recv(p.pong, &v);
        if (v != i)
            abort();
    }
    int64_t el = gort_nanotime() - t0;
    printf("ns_per_op %.2f\n", (double)el / (double)(2 * n));
}

/* ---- buffered channel ------------------------------------------------------- */

static void producer(void *arg)
{
    struct pp *p = arg;
    for (int64_t i = 0; i < p->n; i++)
        gort_chan_send(p->ping, &i);
}

static void bench_chanbuf(int64_t n)
{
    struct pp p = { gort_chan_make(sizeof(int64_t), 128), NULL, n };
    gort_go(producer, &p);
    int64_t t0 = gort_nanotime(), sum = 0, v;
    for (int64_t i = 0; i < n; i++) {
        gort_chan_recv(p.ping, &v);
        sum += v;
    }
    int64_t el = gort_nanotime() - t0;
    if (sum != n * (n - 1) / 2)
        abort();
    printf("ns_per_op %.2f\n", (double)el / (double)n);
}

/* ---- spawn ------------------------------------------------------------------ */

static void done(void *arg)
{
    gort_waitgroup_done(arg);
}

static void bench_spawn(int64_t n)
{
    gort_waitgroup wg = GORT_WAITGROUP_INIT;
    int64_t t0 = gort_nanotime();
    for (int64_t i = 0; i < n; i++) {
        gort_waitgroup_add(&wg, 1);
        gort_go(done, &wg);
        gort_waitgroup_wait(&wg);
    }
    int64_t el = gort_nanotime() - t0;
    printf("ns_per_op %.2f\n", (double)el / (double)n);
}

static void bench_burst(int64_t n)
{
    gort_waitgroup wg = GORT_WAITGROUP_INIT;
    int64_t t0 = gort_nanotime();
    gort_waitgroup_add(&wg, (int)n);
    for (int64_t i = 0; i < n; i++)
        gort_go(done, &wg);
    gort_waitgroup_wait(&wg);
    int64_t el = gort_nanotime() - t0;
    printf("ns_per_op %.2f\n", (double)el / (double)n);
    printf("peak_rss_kb %ld\n", peak_rss_kb());
}

/* ---- skynet ----------------------------------------------------------------- */

/* A node of the tree: sends num if it is a leaf, else starts ten children
 * over its range and sends the sum of their answers.  The children's
 * arguments live on the parent's stack: the parent cannot return before
 * every child has answered, and a child copies them before anything else. */
struct sky {
    gort_chan *c;
    int64_t num, size;
};

static void skynet(void *arg)
{
    struct sky a = *(struct sky *)arg;
    if (a.size == 1) {
        gort_chan_send(a.c, &a.num);
        return;
    }
    struct sky kids[10];
    gort_chan *rc = gort_chan_make(sizeof(int64_t), 0);
    int64_t step = a.size / 10;
    for (int i = 0; i < 10; i++) {
        kids[i] = (struct sky){ rc, a.num + i * step, step };
        gort_go(skynet, &kids[i]);
    }
    int64_t sum = 0, v;
    for (int i = 0; i < 10; i++) {
        gort_chan_recv(rc, &v);
        sum += v;
    }
    gort_chan_free(rc);
    gort_chan_send(a.c, &sum);
}

static void bench_skynet(void)
{
    struct sky root = { gort_chan_make(sizeof(int64_t), 0), 0, 1000000 };
    int64_t t0 = gort_nanotime(), sum;
    gort_go(skynet, &root);
    gort_chan_recv(root.c, &sum);
    int64_t el = gort_nanotime() - t0;
    printf("result %" PRId64 "\n", sum);
    printf("ms %.2f\n", el / 1e6);
    printf("peak_rss_kb %ld\n", peak_rss_kb());
    if (sum != 499999500000)
        exit(1);
}

/* ---- sleep ------------------------------------------------------------------ */

static void bench_sleep(int64_t n, int64_t us)
{
    int64_t *v = malloc((size_t)n * sizeof *v);
    if (!v)
        abort();
    for (int64_t i = 0; i < n; i++) {
        int64_t t0 = gort_nanotime();
        gort_sleep(us * 1000);
        v[i] = gort_nanotime() - t0;
    }
    int64_t med = median(v, n);
    printf("us %.2f\n", med / 1e3);
    printf("p90_us %.2f\n", v[n * 9 / 10] / 1e3);
    printf("min_us %.2f\n", v[0] / 1e3);
    free(v);
}

/* ---- P hand-off after a blocking system call --------------------------------- */

static void handoff_b(void *arg)
{
    int64_t t1 = gort_nanotime();
    gort_chan_send(arg, &t1);
}

static void bench_handoff(int64_t n)
{
    int64_t *v = malloc((size_t)n * sizeof *v);
    gort_chan *done_c = gort_chan_make(sizeof(int64_t), 1);
    if (!v)
        abort();
    for (int64_t i = 0; i < n; i++) {
        gort_go(handoff_b, done_c);   /* runnable, not running: this G holds the only P */
        int64_t t0 = gort_nanotime();
        gort_syscall_enter();
        usleep(20000);
        gort_syscall_exit();
        int64_t t1;
        gort_chan_recv(done_c, &t1);
        v[i] = t1 - t0;
    }
    int64_t med = median(v, n);
    printf("us %.2f\n", med / 1e3);
    printf("max_us %.2f\n", v[n - 1] / 1e3);
    free(v);
}

/* ---- parked goroutines -------------------------------------------------------- */

struct park {
    gort_chan *c;
    gort_waitgroup started, finished;
};

static void parker(void *arg)
{
    struct park *p = arg;
    gort_waitgroup_done(&p->started);
    gort_chan_recv(p->c, NULL);       /* parks until the channel is closed */
    gort_waitgroup_done(&p->finished);
}

static void bench_parked(int64_t n)
{
    struct park p = { gort_chan_make(0, 0), GORT_WAITGROUP_INIT, GORT_WAITGROUP_INIT };
    gort_waitgroup_add(&p.started, (int)n);
    gort_waitgroup_add(&p.finished, (int)n);
    int64_t before = rss_now(), t0 = gort_nanotime();
    for (int64_t i = 0; i < n; i++)
        gort_go(parker, &p);
    gort_waitgroup_wait(&p.started);
    gort_sleep(20 * 1000 * 1000);     /* let the last ones reach their receive */
    int64_t after = rss_now(), t1 = gort_nanotime();
    printf("goroutines %d\n", gort_numgoroutine());
    gort_chan_close(p.c);
    gort_waitgroup_wait(&p.finished);
    int64_t t2 = gort_nanotime();
    printf("kb %.3f\n", (double)(after - before) / (double)n / 1024.0);
    printf("start_ms %.1f\n", (t1 - t0) / 1e6);
    printf("release_ms %.1f\n", (t2 - t1) / 1e6);
    printf("peak_rss_kb %ld\n", peak_rss_kb());
}

static int app_main(int argc, char **argv)
{
    const char *b = argc > 1 ? argv[1] : "";
    if (strcmp(b, "yield") == 0)
        bench_yield(arg_or(argc, argv, 2, 1000000));
    else if (strcmp(b, "pingpong") == 0)
        bench_pingpong(arg_or(argc, argv, 2, 500000));
    else if (strcmp(b, "chanbuf") == 0)
        bench_chanbuf(arg_or(argc, argv, 2, 2000000));
    else if (strcmp(b, "spawn") == 0)
        bench_spawn(arg_or(argc, argv, 2, 1000000));
    else if (strcmp(b, "burst") == 0)
        bench_burst(arg_or(argc, argv, 2, 1000000));
    else if (strcmp(b, "skynet") == 0)
        bench_skynet();
    else if (strcmp(b, "sleep") == 0)
        bench_sleep(arg_or(argc, argv, 2, 1000), arg_or(argc, argv, 3, 50));
    else if (strcmp(b, "handoff") == 0)
        bench_handoff(arg_or(argc, argv, 2, 30));
    else if (strcmp(b, "parked") == 0)
        bench_parked(arg_or(argc, argv, 2, 100000));
    else {
        fprintf(stderr, "usage: gort_bench yield|pingpong|chanbuf|spawn|burst|skynet|sleep|handoff|parked [N]\n");
        return 2;
    }
    printf("gomaxprocs %d\n", gort_gomaxprocs());
    return 0;
}

int main(int argc, char **argv)
{
    return gort_main(app_main, argc, argv);
}
