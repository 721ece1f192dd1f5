/*
 * test_time.c — timers: sleep accuracy, firing order, Stop, Reset, tickers,
 * time.After in a select, AfterFunc, and many goroutines asleep at once.
 * gort-test: tsan
 *
 * main() is a driver: it re-executes this binary with GORT_TEST_MODE=run,
 * under GOMAXPROCS=2 and GOMAXPROCS=1, each child with an alarm so that a
 * lost wake-up fails fast instead of hanging.  The child prints the median
 * of 200 sleeps of 50 µs, which must stay under 1 ms (Go's time.Sleep,
 * whose netpoller waits in whole milliseconds, takes about 1.09 ms here).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gort.h"
#include "check.h"
#include "child.h"
#include "sched/time.h"

#define MS 1000000LL
#define US 1000LL

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- Sleep accuracy -------------------------------------------------------- */

static void test_sleep_accuracy(void)
{
    enum { N = 200 };
    static int64_t d[N];
    for (int i = 0; i < N; i++) {
        int64_t t0 = gort_nanotime();
        gort_sleep(50 * US);
        d[i] = gort_nanotime() - t0;
        CHECKF(d[i] >= 50 * US, "sleep(50us) returned after %lld ns", (long long)d[i]);
    }
    qsort(d, N, sizeof d[0], cmp_i64);
    int64_t med = d[N / 2];
    printf("sleep(50us): median %.1f us, min %.1f us, p90 %.1f us (GOMAXPROCS=%d)\n",
           med / 1e3, d[0] / 1e3, d[N * 9 / 10] / 1e3, gort_gomaxprocs());
    CHECKF(med < 1 * MS, "median sleep(50us) = %lld ns, want < 1 ms", (long long)med);

    /* Non-positive durations return at once. */
    int64_t t0 = gort_nanotime();
    gort_sleep(0);
    gort_sleep(-5 * MS);
    CHECK(gort_nanotime() - t0 < 5 * MS);
}

/* ---- Timers fire in order ---------------------------------------------------- */

/* The runtime timers themselves (sched/time.h), whose callbacks run in the
 * scheduler one after another: an AfterFunc's goroutines may run in any
 * order when two fire in one pass (Go's too). */
enum { NORDER = 100 };
static struct timer order_t[NORDER];
static int order_log[NORDER];
static uint32_t order_n;        /* slots claimed */
static uint32_t order_done;     /* slots written: the reader waits for this */
static int64_t order_late[NORDER];

static void order_cb(void *arg, uintptr_t seq, int64_t delta)
{
    (void)arg;
    int i = (int)seq;
    int64_t now = gort_nanotime();
    order_late[i] = now - order_t[i].when;
    CHECK(delta >= 0);
    uint32_t k = __atomic_fetch_add(&order_n, 1, __ATOMIC_SEQ_CST);
    order_log[k] = i;
    __atomic_fetch_add(&order_done, 1, __ATOMIC_RELEASE);
}

static void test_order(void)
{
    int perm[NORDER];
    uint64_t s = 12345;
    for (int i = 0; i < NORDER; i++)
        perm[i] = i;
    for (int i = NORDER - 1; i > 0; i--) {
        int j = (int)(rnd(&s) % (uint64_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    /* Timer i fires at 5 ms + 1 ms * i; they are armed in shuffled order. */
    int64_t base = gort_nanotime();
    for (int k = 0; k < NORDER; k++) {
        int i = perm[k];
        CHECK(!modtimer(&order_t[i], base + 5 * MS + MS * i, 0, order_cb, NULL, (uintptr_t)i));
    }
    for (int i = 0; i < 5000 && __atomic_load_n(&order_done, __ATOMIC_ACQUIRE) < NORDER; i++)
        gort_sleep(1 * MS);
    CHECK(__atomic_load_n(&order_done, __ATOMIC_ACQUIRE) == NORDER);
    int64_t maxlate = 0;
    for (int k = 0; k < NORDER; k++) {
        CHECKF(order_log[k] == k, "position %d fired timer %d", k, order_log[k]);
        CHECKF(order_late[k] >= 0, "timer %d fired %lld ns early", k, (long long)-order_late[k]);
        if (order_late[k] > maxlate)
            maxlate = order_late[k];
        CHECK(!deltimer(&order_t[k]));  /* fired already */
    }
    printf("100 timers in order, latest by %.1f us\n", maxlate / 1e3);
}

/* ---- Stop and Reset --------------------------------------------------------- */

static void test_stop_reset(void)
{
    int64_t v;

    /* Stop before it fires: true, and nothing ever arrives. */
    gort_timer *t = gort_timer_new(30 * MS);
    CHECK(gort_timer_stop(t));
    CHECK(!gort_timer_stop(t));
    gort_sleep(60 * MS);
    CHECK(!gort_chan_tryrecv(gort_timer_chan(t), &v, NULL));
    CHECK(gort_chan_len(gort_timer_chan(t)) == 0);

    /* Reset of a stopped timer: false, and it fires after the new time. */
    int64_t t0 = gort_nanotime();
    CHECK(!gort_timer_reset(t, 10 * MS));
    CHECK(gort_chan_recv(gort_timer_chan(t), &v));
    int64_t el = gort_nanotime() - t0;
    CHECKF(el >= 10 * MS && el < 500 * MS, "reset(10ms) fired after %lld ns", (long long)el);
    CHECKF(v >= t0 + 10 * MS && v <= gort_nanotime(), "value %lld", (long long)v);

    /* Reset of a pending timer: true, and the new time wins (earlier). */
    CHECK(!gort_timer_reset(t, 10 * 1000 * MS));
    t0 = gort_nanotime();
    CHECK(gort_timer_reset(t, 15 * MS));
    CHECK(gort_chan_recv(gort_timer_chan(t), &v));
    el = gort_nanotime() - t0;
    CHECKF(el >= 15 * MS && el < 500 * MS, "reset(15ms) fired after %lld ns", (long long)el);

    /* ... and later. */
    CHECK(!gort_timer_reset(t, 5 * MS));
    t0 = gort_nanotime();
    CHECK(gort_timer_reset(t, 40 * MS));
    gort_sleep(20 * MS);
    CHECK(!gort_chan_tryrecv(gort_timer_chan(t), &v, NULL));
    CHECK(gort_chan_recv(gort_timer_chan(t), &v));
    el = gort_nanotime() - t0;
    CHECKF(el >= 40 * MS, "reset(40ms) fired after %lld ns", (long long)el);

    /* Fired but not received: Stop discards the value (no stale time after
     * Stop, as Go 1.23) and reports true. */
    CHECK(!gort_timer_reset(t, 1 * MS));
    gort_sleep(20 * MS);
    CHECK(gort_chan_len(gort_timer_chan(t)) == 1);
    CHECK(gort_timer_stop(t));
    CHECK(gort_chan_len(gort_timer_chan(t)) == 0);
    gort_timer_free(t);

    /* A freed pending timer never fires (and gort_chan_free of an After
     * channel frees its timer: run under ASan/valgrind to see no leak). */
    gort_chan *c = gort_after(5 * MS);
    gort_chan_free(c);
    t = gort_timer_new(5 * MS);
    gort_timer_free(t);
    gort_sleep(20 * MS);
}

/* ---- Tickers ------------------------------------------------------------------ */

static void test_ticker(void)
{
    enum { N = 20 };
    const int64_t period = 5 * MS;
    gort_timer *tk = gort_ticker_new(period);
    int64_t t0 = gort_nanotime(), prev = 0;
    for (int i = 0; i < N; i++) {
        int64_t v;
        CHECK(gort_chan_recv(gort_timer_chan(tk), &v));
        CHECKF(v > prev, "tick %d not after the previous one", i);
        prev = v;
    }
    int64_t el = gort_nanotime() - t0;
    printf("ticker: %d ticks of 5 ms in %.1f ms\n", N, el / 1e6);
    CHECKF(el >= (N - 1) * period && el < 20 * N * period,
           "%d ticks took %lld ns", N, (long long)el);

    /* A slow receiver: ticks are dropped, the channel holds one. */
    gort_sleep(30 * MS);
    CHECK(gort_chan_len(gort_timer_chan(tk)) == 1);

    /* Reset changes the period. */
    gort_timer_reset(tk, 20 * MS);
    CHECK(gort_chan_len(gort_timer_chan(tk)) == 0);
    t0 = gort_nanotime();
    int64_t v;
    for (int i = 0; i < 3; i++)
        CHECK(gort_chan_recv(gort_timer_chan(tk), &v));
    el = gort_nanotime() - t0;
    CHECKF(el >= 60 * MS && el < 2000 * MS, "3 ticks of 20 ms in %lld ns", (long long)el);

    /* Stopped: no more ticks. */
    gort_timer_stop(tk);
    gort_sleep(50 * MS);
    CHECK(gort_chan_len(gort_timer_chan(tk)) == 0);
    gort_timer_free(tk);
}

/* ---- time.After in a select --------------------------------------------------- */

static void send_later(void *arg)
{
    gort_sleep(2 * MS);
    int v = 42;
    gort_chan_send(arg, &v);
}

static void test_after_select(void)
{
    /* The other channel wins. */
    gort_chan *c = gort_chan_make(sizeof(int), 0);
    gort_chan *after = gort_after(2000 * MS);
    gort_go(send_later, c);
    int got = 0;
    int64_t when = 0;
    gort_select_case cases[2] = {
        {.c = c, .dir = GORT_RECV, .elem = &got},
        {.c = after, .dir = GORT_RECV, .elem = &when},
    };
    int64_t t0 = gort_nanotime();
    int k = gort_select(cases, 2, true);
    CHECK(k == 0 && got == 42);
    CHECK(gort_nanotime() - t0 < 1000 * MS);
    gort_chan_free(after);

    /* The timeout wins. */
    t0 = gort_nanotime();
    after = gort_after(10 * MS);
    cases[1].c = after;
    k = gort_select(cases, 2, true);
    int64_t el = gort_nanotime() - t0;
    CHECK(k == 1 && cases[1].ok);
    CHECKF(el >= 10 * MS && el < 1000 * MS, "after(10ms) took %lld ns", (long long)el);
    CHECK(when >= t0 + 10 * MS);
    gort_chan_free(after);
    gort_chan_free(c);
}

/* ---- AfterFunc ---------------------------------------------------------------- */

static uint32_t func_ran;
static int64_t func_goid;

static void after_fn(void *arg)
{
    func_goid = gort_goid();
    __atomic_store_n((uint32_t *)arg, 1, __ATOMIC_SEQ_CST);
}

static void never_fn(void *arg)
{
    (void)arg;
    fprintf(stderr, "a stopped AfterFunc ran\n");
    exit(1);
}

static void test_after_func(void)
{
    int64_t t0 = gort_nanotime();
    gort_timer *t = gort_after_func(5 * MS, after_fn, &func_ran);
    gort_timer *never = gort_after_func(10 * MS, never_fn, NULL);
    CHECK(gort_timer_chan(t) == NULL);
    CHECK(gort_timer_stop(never));
    for (int i = 0; i < 2000 && !__atomic_load_n(&func_ran, __ATOMIC_SEQ_CST); i++)
        gort_sleep(1 * MS);
    CHECK(func_ran);
    CHECK(gort_nanotime() - t0 >= 5 * MS);
    CHECK(func_goid != 0 && func_goid != gort_goid());  /* its own goroutine */
    gort_sleep(20 * MS);
    gort_timer_free(t);
    gort_timer_free(never);
}

/* ---- A timer armed from a plain thread ---------------------------------------- */

static gort_timer *thread_timer;

static void *arm_from_thread(void *arg)
{
    (void)arg;
    __atomic_store_n(&thread_timer, gort_timer_new(5 * MS), __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_plain_thread(void)
{
    pthread_t th;
    int64_t t0 = gort_nanotime();
    CHECK(pthread_create(&th, NULL, arm_from_thread, NULL) == 0);
    gort_timer *t;
    for (int i = 0; i < 5000 && !(t = __atomic_load_n(&thread_timer, __ATOMIC_SEQ_CST)); i++)
        gort_sleep(100 * 1000);
    CHECK(t != NULL);
    int64_t v;
    CHECK(gort_chan_recv(gort_timer_chan(t), &v));
    CHECK(v - t0 >= 5 * MS);
    gort_syscall_enter();
    pthread_join(th, NULL);
    gort_syscall_exit();
    gort_timer_free(t);
}

/* ---- Many sleepers ------------------------------------------------------------ */

enum { NSLEEP = 10000 };
static gort_waitgroup sleep_wg;
static uint32_t sleep_early;
static int64_t sleep_dur[NSLEEP];

static void sleeper(void *arg)
{
    int i = (int)(intptr_t)arg;
    int64_t t0 = gort_nanotime();
    gort_sleep(sleep_dur[i]);
    if (gort_nanotime() - t0 < sleep_dur[i])
        __atomic_add_fetch(&sleep_early, 1, __ATOMIC_SEQ_CST);
    gort_waitgroup_done(&sleep_wg);
}

static void test_many_sleepers(void)
{
    uint64_t s = 99;
    for (int i = 0; i < NSLEEP; i++)
        sleep_dur[i] = (int64_t)(rnd(&s) % (5 * MS + 1));
    gort_waitgroup_add(&sleep_wg, NSLEEP);
    int64_t t0 = gort_nanotime();
    for (int i = 0; i < NSLEEP; i++)
        gort_go(sleeper, (void *)(intptr_t)i);
    gort_waitgroup_wait(&sleep_wg);
    int64_t el = gort_nanotime() - t0;
    printf("%d goroutines slept 0-5 ms each: all awake after %.1f ms\n", NSLEEP, el / 1e6);
    CHECK(sleep_early == 0);
}

/* ---- Driver ------------------------------------------------------------------- */

static int app_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_sleep_accuracy();
    test_order();
    test_stop_reset();
    test_ticker();
    test_after_select();
    test_after_func();
    test_plain_thread();
    test_many_sleepers();
    printf("ok   time tests, GOMAXPROCS=%d\n", gort_gomaxprocs());
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = getenv("GORT_TEST_MODE");
    if (mode != NULL && strcmp(mode, "run") == 0)
        return gort_main(app_main, argc, argv);
    const char *procs[] = {"2", "1"};
    for (int i = 0; i < 2; i++) {
        expect_run("run", procs[i], 60);
    }
    return 0;
}
