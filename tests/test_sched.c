/*
 * test_sched.c — the scheduler core: many goroutines, goroutine ids and
 * counts, Gosched fairness, work stealing, hand-off of a P blocked in a
 * system call, timers and the poller while the P is busy, cooperative (and
 * asynchronous) preemption, the signal mask of the threads that run
 * goroutines, LockOSThread, a million parked goroutines, malloc from
 * goroutines, schedtrace, the exit status, gort_go from a plain thread, and
 * the goroutine-only calls made from one.
 *
 * main() is a driver: it re-executes this binary with GORT_TEST_MODE naming
 * one case, GOMAXPROCS and GODEBUG set for it, stderr in a pipe and a time
 * limit, and checks the exit status and what the child wrote.  Timing
 * checks (stealing, preemption) exit with TIMING_FAIL and are retried once,
 * since the machine may be busy; a CHECK failure exits 1 and is not.  A
 * failed case is reported and the next one runs; the driver exits 1 if any
 * failed.  GORT_TEST_ONLY=<mode> runs one case.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gort.h"
#include "check.h"
#include "child.h"

#define TIMING_FAIL 3

/* Runs mode and requires exit status 0, passing the child's stderr through
 * (a retry on TIMING_FAIL when retry is set; the retry has
 * GORT_TEST_RETRIED=1). */
static void expect_ok(const char *mode, const char *const *env, int limit, bool retry)
{
    struct child ch;
    if (!selected(mode))
        return;
    const char *renv[8];
    int nr = 0;
    for (int i = 0; env && env[i] && nr < 6; i++)
        renv[nr++] = env[i];
    renv[nr] = NULL;
    for (int attempt = 0;; attempt++) {
        if (attempt == 1) {
            renv[nr] = "GORT_TEST_RETRIED=1";
            renv[nr + 1] = NULL;
        }
        run_child(&ch, mode, renv, limit);
        if (retry && attempt == 0 && exited(&ch, TIMING_FAIL)) {
            show_child(mode, &ch);
            printf("note %s: timing check missed, retrying once\n", mode);
            free(ch.err);
            continue;
        }
        break;
    }
    if (!exited(&ch, 0)) {
        show_child(mode, &ch);
        FAIL("mode %s, %s", mode, env && env[0] ? env[0] : "");
        free(ch.err);
        return;
    }
    if (ch.errlen)
        fputs(ch.err, stderr);
    free(ch.err);
    printf("ok   %-12s", mode);
    for (int i = 0; env && env[i]; i++)
        printf(" %s", env[i]);
    printf("  (%.2fs)\n", ch.secs);
}

/* ---- Child-side helpers --------------------------------------------------- */

static int64_t ms_since(int64_t t0)
{
    return (gort_nanotime() - t0) / 1000000;
}

/* Fixed CPU work that the compiler cannot drop or shorten. */
static uint64_t spin(uint64_t n)
{
    uint64_t x = 1;
    for (uint64_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + i;
        __asm__ volatile("" : "+r"(x));
    }
    return x;
}

/* Iterations of spin() that take about ns here and now. */
static uint64_t calibrate(int64_t ns)
{
    uint64_t n = 1 << 16;
    for (;;) {
        int64_t t0 = gort_nanotime();
        spin(n);
        int64_t dt = gort_nanotime() - t0;
        if (dt > 5000000 || n > ((uint64_t)1 << 40))
            return (uint64_t)((double)n * (double)ns / (double)dt) + 1;
        n *= 2;
    }
}

/* Sleeps 100 us at a time until cond holds; fails after 10 s. */
#define WAIT_UNTIL(cond)                                                   \
    do {                                                                   \
        int64_t wu_t0 = gort_nanotime();                                   \
        while (!(cond) && gort_nanotime() - wu_t0 < 10000000000LL)         \
            gort_sleep(100000);                                            \
        CHECKF((cond), "timed out waiting");                               \
    } while (0)

/* ---- Many goroutines, ids and counts --------------------------------------- */

enum { NMANY = 10000 };
static int64_t many_goid[NMANY];
static uint64_t many_result[NMANY];
static gort_waitgroup many_wg;

static uint64_t many_work(int i)
{
    uint64_t h = (uint64_t)i + 1;
    for (int k = 0; k < 500; k++)
        h = h * 6364136223846793005ULL + 1442695040888963407ULL + (uint64_t)k;
    return h;
}

static void many_worker(void *arg)
{
    int i = (int)(intptr_t)arg;
    uint64_t h = many_work(i);
    if (i % 7 == 0)
        gort_yield();
    many_goid[i] = gort_goid();
    many_result[i] = h;
    gort_waitgroup_done(&many_wg);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static gort_chan *park_ch;
static gort_waitgroup park_wg;
static void parker(void *arg)
{
    (void)arg;
    gort_chan_recv(park_ch, NULL);
    gort_waitgroup_done(&park_wg);
}

static void *goid_from_thread(void *arg)
{
    *(int64_t *)arg = gort_goid();
    return NULL;
}

static int mode_many(void)
{
    CHECK(gort_goid() == 1);
    CHECKF(gort_numgoroutine() == 1, "numgoroutine %d at start", gort_numgoroutine());
    const char *env = getenv("GOMAXPROCS");
    CHECK(env && gort_gomaxprocs() == atoi(env));

    int64_t t0 = gort_nanotime();
    gort_waitgroup_add(&many_wg, NMANY);
    for (int i = 0; i < NMANY; i++)
        gort_go(many_worker, (void *)(intptr_t)i);
    gort_waitgroup_wait(&many_wg);
    int64_t dt = gort_nanotime() - t0;
    for (int i = 0; i < NMANY; i++)
        CHECKF(many_result[i] == many_work(i), "goroutine %d: wrong result", i);
    int64_t *ids = malloc(sizeof many_goid);
    CHECK(ids != NULL);
    memcpy(ids, many_goid, sizeof many_goid);
    qsort(ids, NMANY, sizeof *ids, cmp_i64);
    CHECKF(ids[0] > 1, "smallest goid %lld", (long long)ids[0]);
    for (int i = 1; i < NMANY; i++)
        CHECKF(ids[i] != ids[i - 1], "goid %lld given twice", (long long)ids[i]);
    free(ids);
    WAIT_UNTIL(gort_numgoroutine() == 1);
    printf("     %d goroutines spawned and joined in %.1f ms (%.0f ns each)\n", NMANY,
           (double)dt / 1e6, (double)dt / NMANY);

    /* Parked goroutines count; finished ones stop counting. */
    park_ch = gort_chan_make(0, 0);
    gort_waitgroup_add(&park_wg, 100);
    for (int i = 0; i < 100; i++)
        gort_go(parker, NULL);
    CHECKF(gort_numgoroutine() == 101, "numgoroutine %d, want 101", gort_numgoroutine());
    for (int i = 0; i < 100; i++)
        gort_yield();
    CHECKF(gort_numgoroutine() == 101, "numgoroutine %d, want 101", gort_numgoroutine());
    gort_chan_close(park_ch);
    gort_waitgroup_wait(&park_wg);
    WAIT_UNTIL(gort_numgoroutine() == 1);
    gort_chan_free(park_ch);

    /* A plain thread has no goroutine id. */
    int64_t tid_goid = -1;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, goid_from_thread, &tid_goid) == 0);
    gort_syscall_enter();
    pthread_join(th, NULL);
    gort_syscall_exit();
    CHECKF(tid_goid == 0, "goid on a plain thread: %lld", (long long)tid_goid);
    CHECK(gort_goid() == 1);
    return 0;
}

/* ---- malloc and free from many goroutines ------------------------------------ */

enum { NMALLOCG = 1000, NALLOCS = 1000, NSLOTS = 32 };
static gort_waitgroup malloc_wg;
static long malloc_bad;

static size_t rand_size(uint64_t *s)
{
    uint64_t r = rnd(s);
    switch (r % 100) {
    case 0: return 32768 + (size_t)((r >> 8) % 100000);    /* large */
    case 1: case 2: case 3: case 4: return 1024 + (size_t)((r >> 8) % 31000);
    default: return 1 + (size_t)((r >> 8) % 1024);
    }
}

/* Fills (or checks) a block: every byte for small ones, the ends of big ones. */
static bool pattern(unsigned char *p, size_t n, uint64_t tag, bool check)
{
    size_t lim = n <= 4096 ? n : 256;
    for (int pass = 0; pass < (n <= 4096 ? 1 : 2); pass++) {
        size_t base = pass == 0 ? 0 : n - 256;
        for (size_t i = 0; i < lim; i++) {
            unsigned char want = (unsigned char)(tag * 31 + (base + i) * 7);
            if (check && p[base + i] != want)
                return false;
            if (!check)
                p[base + i] = want;
        }
    }
    return true;
}

static void malloc_worker(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
    unsigned char *slot[NSLOTS] = {0};
    size_t size[NSLOTS] = {0};
    uint64_t tag[NSLOTS] = {0};
    for (int i = 0; i < NALLOCS; i++) {
        int k = (int)(rnd(&seed) % NSLOTS);
        if (slot[k]) {
            if (!pattern(slot[k], size[k], tag[k], true))
                __atomic_fetch_add(&malloc_bad, 1, __ATOMIC_RELAXED);
            free(slot[k]);
        }
        size[k] = rand_size(&seed);
        tag[k] = rnd(&seed);
        if (i % 10 == 0) {
            slot[k] = calloc(1, size[k]);
            if (slot[k])
                for (size_t j = 0; j < size[k]; j += 61)
                    if (slot[k][j] != 0)
                        __atomic_fetch_add(&malloc_bad, 1, __ATOMIC_RELAXED);
        } else {
            slot[k] = malloc(size[k]);
        }
        if (!slot[k]) {
            __atomic_fetch_add(&malloc_bad, 1000000, __ATOMIC_RELAXED);
            break;
        }
        pattern(slot[k], size[k], tag[k], false);
        if (i % 16 == 0)
            gort_yield();   /* other goroutines share this P's mcache */
    }
    for (int k = 0; k < NSLOTS; k++)
        if (slot[k]) {
            if (!pattern(slot[k], size[k], tag[k], true))
                __atomic_fetch_add(&malloc_bad, 1, __ATOMIC_RELAXED);
            free(slot[k]);
        }
    gort_waitgroup_done(&malloc_wg);
}

static int mode_malloc(void)
{
    int64_t t0 = gort_nanotime();
    gort_waitgroup_add(&malloc_wg, NMALLOCG);
    for (int i = 0; i < NMALLOCG; i++)
        gort_go(malloc_worker, (void *)(intptr_t)(i + 1));
    gort_waitgroup_wait(&malloc_wg);
    CHECKF(malloc_bad == 0, "%ld corrupted or failed allocations", malloc_bad);
    printf("     %d goroutines x %d allocations checked in %lld ms\n", NMALLOCG, NALLOCS,
           (long long)ms_since(t0));
    return 0;
}

/* ---- gort_yield fairness on one P --------------------------------------------- */

enum { NFAIR = 100000 };
static long fair_cnt[2];
static int fair_done[2];
static long fair_maxdiff;
static gort_waitgroup fair_wg;

static void fair_worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (long i = 1; i <= NFAIR; i++) {
        __atomic_store_n(&fair_cnt[me], i, __ATOMIC_RELAXED);
        if (!__atomic_load_n(&fair_done[1 - me], __ATOMIC_RELAXED)) {
            long d = i - __atomic_load_n(&fair_cnt[1 - me], __ATOMIC_RELAXED);
            if (d < 0)
                d = -d;
            if (d > fair_maxdiff)
                fair_maxdiff = d;
        }
        gort_yield();
    }
    __atomic_store_n(&fair_done[me], 1, __ATOMIC_RELAXED);
    gort_waitgroup_done(&fair_wg);
}

static int mode_fair(void)
{
    CHECK(gort_gomaxprocs() == 1);
    int64_t t0 = gort_nanotime();
    gort_waitgroup_add(&fair_wg, 2);
    gort_go(fair_worker, (void *)0);
    gort_go(fair_worker, (void *)1);
    gort_waitgroup_wait(&fair_wg);
    int64_t dt = gort_nanotime() - t0;
    CHECK(fair_cnt[0] == NFAIR && fair_cnt[1] == NFAIR);
    CHECKF(fair_maxdiff <= 2, "yield fairness: counters %ld apart", fair_maxdiff);
    printf("     %d yields each, max difference %ld, %.0f ns per yield\n", NFAIR, fair_maxdiff,
           (double)dt / (2.0 * NFAIR));
    return 0;
}

/* ---- Work stealing ------------------------------------------------------------- */

enum { NSTEAL = 100 };
static pid_t steal_tid[NSTEAL];
static uint64_t steal_iters, steal_sink;
static gort_waitgroup steal_wg;

static void steal_job(void *arg)
{
    int i = (int)(intptr_t)arg;
    steal_tid[i] = gettid();
    __atomic_fetch_add(&steal_sink, spin(steal_iters), __ATOMIC_RELAXED);
    gort_waitgroup_done(&steal_wg);
}

static void steal_spawner(void *arg)
{
    (void)arg;
    for (int i = 0; i < NSTEAL; i++)
        gort_go(steal_job, (void *)(intptr_t)i);
    gort_waitgroup_done(&steal_wg);
}

/* Idle and total jiffies of the whole machine, from /proc/stat. */
static void cpu_jiffies(unsigned long long *idle, unsigned long long *total)
{
    unsigned long long v[10] = {0};
    *idle = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++)
            *total += v[i];
        *idle = v[3] + v[4];
    }
    fclose(f);
}

static int mode_steal(void)
{
    CHECK(gort_gomaxprocs() == 2);
    steal_iters = calibrate(2000000);
    int64_t t0 = gort_nanotime();
    for (int i = 0; i < NSTEAL; i++)
        steal_sink += spin(steal_iters);
    int64_t serial = gort_nanotime() - t0;

    unsigned long long idle0, total0, idle1, total1;
    cpu_jiffies(&idle0, &total0);
    t0 = gort_nanotime();
    gort_waitgroup_add(&steal_wg, NSTEAL + 1);
    gort_go(steal_spawner, NULL);
    gort_waitgroup_wait(&steal_wg);
    int64_t par = gort_nanotime() - t0;
    cpu_jiffies(&idle1, &total1);
    double idlefrac = total1 > total0 ? (double)(idle1 - idle0) / (double)(total1 - total0) : 1;

    pid_t tids[NSTEAL];
    int ntids = 0;
    for (int i = 0; i < NSTEAL; i++) {
        int j = 0;
        while (j < ntids && tids[j] != steal_tid[i])
            j++;
        if (j == ntids)
            tids[ntids++] = steal_tid[i];
    }
    int per[NSTEAL] = {0};
    for (int i = 0; i < NSTEAL; i++)
        for (int j = 0; j < ntids; j++)
            if (steal_tid[i] == tids[j])
                per[j]++;
    double ratio = (double)par / (double)serial;
    printf("     100 x 2 ms jobs: serial %.1f ms, parallel %.1f ms (%.2fx), machine idle %.0f%%, "
           "%d threads:",
           (double)serial / 1e6, (double)par / 1e6, ratio, idlefrac * 100, ntids);
    for (int j = 0; j < ntids; j++)
        printf(" %d", per[j]);
    printf(" jobs\n");
    CHECKF(ntids >= 2, "all 100 jobs ran on one thread: nothing was stolen");
    if (ratio >= 0.8) {
        /* Our two threads ran one at a time.  That is the scheduler's fault
         * only if the machine had a core to spare meanwhile. */
        if (idlefrac < 0.2 && getenv("GORT_TEST_RETRIED")) {
            printf("     SKIPPED the timing check: the machine had no idle core "
                   "(other processes' load)\n");
            return 0;
        }
        fprintf(stderr, "stealing: parallel/serial %.2f (want < 0.8), machine idle %.0f%%\n",
                ratio, idlefrac * 100);
        return TIMING_FAIL;
    }
    return 0;
}

/* ---- A blocking system call hands its P over ------------------------------------ */

static int sys_in, sys_returned, sys_bdone_early;
static int64_t sys_t0, sys_latency;
static gort_waitgroup sys_wg;

static void sys_sleeper(void *arg)
{
    (void)arg;
    __atomic_store_n(&sys_t0, gort_nanotime(), __ATOMIC_RELAXED);
    __atomic_store_n(&sys_in, 1, __ATOMIC_RELEASE);
    gort_syscall_enter();
    usleep(200000);
    gort_syscall_exit();
    __atomic_store_n(&sys_returned, 1, __ATOMIC_RELEASE);
    gort_waitgroup_done(&sys_wg);
}

static void sys_counter(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&sys_in, __ATOMIC_ACQUIRE))
        gort_yield();
    sys_latency = gort_nanotime() - __atomic_load_n(&sys_t0, __ATOMIC_RELAXED);
    for (int i = 0; i < 100; i++)
        gort_yield();
    sys_bdone_early = !__atomic_load_n(&sys_returned, __ATOMIC_ACQUIRE);
    gort_waitgroup_done(&sys_wg);
}

static int mode_syscall(void)
{
    CHECK(gort_gomaxprocs() == 1);
    int64_t lat[3];
    for (int r = 0; r < 3; r++) {
        sys_in = sys_returned = sys_bdone_early = 0;
        gort_waitgroup_add(&sys_wg, 2);
        gort_go(sys_counter, NULL);
        gort_go(sys_sleeper, NULL);   /* runnext: runs first */
        int64_t t0 = gort_nanotime();
        gort_waitgroup_wait(&sys_wg);
        int64_t total = gort_nanotime() - t0;
        CHECKF(sys_bdone_early, "round %d: B made no progress while A was in a system call", r);
        CHECKF(total >= 190000000, "round %d: took %lld ns", r, (long long)total);
        lat[r] = sys_latency;
    }
    printf("     P hand-off latency from a blocking call: %.1f, %.1f, %.1f us\n",
           (double)lat[0] / 1e3, (double)lat[1] / 1e3, (double)lat[2] / 1e3);
    for (int r = 0; r < 3; r++)
        CHECKF(lat[r] < 100000000, "hand-off took %lld ns", (long long)lat[r]);
    return 0;
}

/* ---- Timers and the poller while every P is busy ----------------------------------- */

static int busy_stop;
static void yielder(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&busy_stop, __ATOMIC_ACQUIRE))
        gort_yield();
}

static void *late_write(void *arg)
{
    usleep(20000);
    if (write(*(int *)arg, "x", 1) != 1)
        abort();
    return NULL;
}

/* A sleep and a read end on time although a goroutine yields in a loop on
 * the only P (which therefore never goes idle to poll). */
static int mode_busytimers(void)
{
    CHECK(gort_gomaxprocs() == 1);
    gort_go(yielder, NULL);
    gort_yield();
    int64_t worst_sleep = 0;
    for (int i = 0; i < 5; i++) {
        int64_t t0 = gort_nanotime();
        gort_sleep(10000000);
        int64_t late = gort_nanotime() - t0 - 10000000;
        CHECK(late >= 0);
        if (late > worst_sleep)
            worst_sleep = late;
    }
    int fds[2];
    CHECK(pipe(fds) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, late_write, &fds[1]) == 0);
    int64_t t0 = gort_nanotime();
    char c;
    CHECK(gort_read(fds[0], &c, 1) == 1 && c == 'x');
    int64_t readlat = gort_nanotime() - t0 - 20000000;
    gort_syscall_enter();
    pthread_join(th, NULL);
    gort_syscall_exit();
    __atomic_store_n(&busy_stop, 1, __ATOMIC_RELEASE);
    printf("     with the P busy: sleeps late by at most %.2f ms, a read woke %.2f ms after the "
           "write\n",
           (double)worst_sleep / 1e6, (double)readlat / 1e6);
    CHECKF(worst_sleep < 100000000, "a 10 ms sleep ended %lld ns late", (long long)worst_sleep);
    CHECKF(readlat < 200000000, "a read woke %lld ns after the write", (long long)readlat);
    return 0;
}

/* ---- Cooperative preemption at gort calls --------------------------------------- */

static int pre_looping, pre_ran_during;
static int64_t pre_loop_t0, pre_latency;
static gort_waitgroup pre_wg;

static void pre_waiter(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&pre_looping, __ATOMIC_ACQUIRE))
        gort_yield();
    pre_latency = gort_nanotime() - __atomic_load_n(&pre_loop_t0, __ATOMIC_RELAXED);
    __atomic_store_n(&pre_ran_during, 1, __ATOMIC_RELEASE);
    gort_waitgroup_done(&pre_wg);
}

/* Polls an empty channel (a cheap gort call that is a preemption point) in
 * a tight loop for up to 1 s, or until the waiter got to run. */
static void pre_looper(void *arg)
{
    gort_chan *c = arg;
    __atomic_store_n(&pre_loop_t0, gort_nanotime(), __ATOMIC_RELAXED);
    __atomic_store_n(&pre_looping, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&pre_ran_during, __ATOMIC_ACQUIRE) &&
           gort_nanotime() - pre_loop_t0 < 1000000000)
        (void)gort_chan_tryrecv(c, NULL, NULL);
    __atomic_store_n(&pre_looping, 0, __ATOMIC_RELEASE);
    gort_waitgroup_done(&pre_wg);
}

static int mode_preempt(void)
{
    CHECK(gort_gomaxprocs() == 1);
    gort_chan *c = gort_chan_make(sizeof(int), 1);
    gort_waitgroup_add(&pre_wg, 2);
    gort_go(pre_waiter, NULL);
    gort_go(pre_looper, c);
    gort_waitgroup_wait(&pre_wg);
    CHECKF(pre_ran_during, "a goroutine looping on gort calls was never preempted in 1 s");
    printf("     preempted after %.1f ms of looping\n", (double)pre_latency / 1e6);
    gort_chan_free(c);
    return pre_latency < 50000000 ? 0 : TIMING_FAIL;
}

/* ---- Asynchronous preemption (only with libgort.so) ----------------------------- */

static int app_main(int argc, char **argv);

/* Whether gort lives in another object than this program (libgort.so). */
static bool gort_is_shared(void)
{
    Dl_info a, b;
    if (!dladdr((void *)(uintptr_t)gort_main, &a) || !dladdr((void *)(uintptr_t)app_main, &b))
        return false;
    return a.dli_fbase != b.dli_fbase;
}

static volatile int async_flag;
static int64_t async_t0, async_latency;
static gort_waitgroup async_wg;

static void async_waiter(void *arg)
{
    (void)arg;
    async_latency = gort_nanotime() - async_t0;
    async_flag = 1;
    gort_waitgroup_done(&async_wg);
}

/* Pure C: no call into gort or libc inside the loop. */
static void async_looper(void *arg)
{
    (void)arg;
    uint64_t x = 0;
    while (!async_flag) {
        x++;
        __asm__ volatile("" : "+r"(x));
        if ((x & 0xfffff) == 0 && x > ((uint64_t)1 << 34))
            break;   /* ~10+ s: give up, checked below */
    }
    gort_waitgroup_done(&async_wg);
}

static int mode_async(void)
{
    if (!gort_is_shared()) {
        /* The setting is refused (see the parent's check); goroutines still
         * run, cooperatively. */
        gort_waitgroup_add(&async_wg, 1);
        gort_go(async_waiter, NULL);
        gort_waitgroup_wait(&async_wg);
        CHECK(async_flag == 1);
        return 0;
    }
    CHECK(gort_gomaxprocs() == 1);
    gort_waitgroup_add(&async_wg, 2);
    async_t0 = gort_nanotime();
    gort_go(async_waiter, NULL);
    gort_go(async_looper, NULL);   /* runnext: runs first and never yields */
    gort_waitgroup_wait(&async_wg);
    CHECKF(async_flag == 1, "a pure C loop was never preempted by signal");
    printf("     async preemption of a pure C loop after %.1f ms\n", (double)async_latency / 1e6);
    return 0;
}

/* ---- Signal masks of the threads that run goroutines ------------------------------ */

static pid_t sm_tid;
static int sm_blocked_segv, sm_blocked_urg, sm_blocked_int;

static void sm_worker(void *arg)
{
    (void)arg;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    sm_blocked_segv = sigismember(&cur, SIGSEGV);
    sm_blocked_urg = sigismember(&cur, SIGURG);
    sm_blocked_int = sigismember(&cur, SIGINT);
    __atomic_store_n(&sm_tid, gettid(), __ATOMIC_RELEASE);
}

/* main spins without calling gort, so the goroutine must run on a second
 * M; that thread must take signals as the creating thread does (the stack
 * overflow report needs SIGSEGV, async preemption SIGURG). */
static int mode_sigmask(void)
{
    CHECK(gort_gomaxprocs() == 2);
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    CHECK(!sigismember(&cur, SIGSEGV) && !sigismember(&cur, SIGURG) && !sigismember(&cur, SIGINT));
    gort_go(sm_worker, NULL);
    int64_t t0 = gort_nanotime();
    while (!__atomic_load_n(&sm_tid, __ATOMIC_ACQUIRE) && gort_nanotime() - t0 < 5000000000LL)
        __asm__ volatile("" ::: "memory");
    CHECKF(sm_tid != 0, "the goroutine never ran on a second thread");
    CHECK(sm_tid != gettid());
    CHECKF(!sm_blocked_segv && !sm_blocked_urg && !sm_blocked_int,
           "an M that runs goroutines blocks SIGSEGV %d, SIGURG %d, SIGINT %d", sm_blocked_segv,
           sm_blocked_urg, sm_blocked_int);
    return 0;
}

/* The same for an M that sysmon starts, to take the P of a goroutine
 * stuck in a system call (sysmon itself blocks every signal). */
static int sm2_in;
static pid_t sm2_sleeper_tid;
static gort_waitgroup sm2_wg;

static void sm2_sleeper(void *arg)
{
    (void)arg;
    sm2_sleeper_tid = gettid();
    __atomic_store_n(&sm2_in, 1, __ATOMIC_RELEASE);
    gort_syscall_enter();
    usleep(200000);
    gort_syscall_exit();
    gort_waitgroup_done(&sm2_wg);
}

static void sm2_checker(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&sm2_in, __ATOMIC_ACQUIRE))
        gort_yield();
    sm_worker(NULL);
    gort_waitgroup_done(&sm2_wg);
}

static int mode_sigmask_sysmon(void)
{
    CHECK(gort_gomaxprocs() == 1);
    gort_waitgroup_add(&sm2_wg, 2);
    gort_go(sm2_checker, NULL);
    gort_go(sm2_sleeper, NULL);
    gort_waitgroup_wait(&sm2_wg);
    CHECK(sm_tid != 0 && sm_tid != sm2_sleeper_tid);
    CHECKF(!sm_blocked_segv && !sm_blocked_urg && !sm_blocked_int,
           "an M started by sysmon blocks SIGSEGV %d, SIGURG %d, SIGINT %d", sm_blocked_segv,
           sm_blocked_urg, sm_blocked_int);
    return 0;
}

/* ---- LockOSThread ------------------------------------------------------------------ */

enum { NLOCKED = 100 };
static gort_chan *lk_ch;
static pid_t lk_tid;
static int lk_stop, lk_bad_tid, lk_foreign;
static long lk_progress, lk_stalls;
static gort_waitgroup lk_wg;

static void lk_locked(void *arg)
{
    (void)arg;
    gort_lock_os_thread();
    gort_lock_os_thread();   /* nesting */
    gort_unlock_os_thread();
    __atomic_store_n(&lk_tid, gettid(), __ATOMIC_RELEASE);
    long before = __atomic_load_n(&lk_progress, __ATOMIC_RELAXED);
    long stalls = 0;
    for (int i = 0; i < NLOCKED; i++) {
        int v;
        CHECK(gort_chan_recv(lk_ch, &v));
        CHECK(v == i);
        if (gettid() != lk_tid)
            lk_bad_tid++;
        long now = __atomic_load_n(&lk_progress, __ATOMIC_RELAXED);
        if (now == before)
            stalls++;
        before = now;
    }
    /* On one P, others can only have run if the locked M gave the P up
     * while this goroutine was parked.  (On two, a busy machine's OS may
     * simply not run the other thread in between: not checked.) */
    if (gort_gomaxprocs() == 1)
        CHECKF(stalls < NLOCKED / 2, "%ld of %d wake-ups saw no progress elsewhere", stalls,
               NLOCKED);
    lk_stalls = stalls;
    gort_unlock_os_thread();
    __atomic_store_n(&lk_stop, 1, __ATOMIC_RELEASE);
    gort_waitgroup_done(&lk_wg);
}

/* Other goroutines must never run on the locked thread. */
static void lk_note_thread(void)
{
    pid_t t = __atomic_load_n(&lk_tid, __ATOMIC_ACQUIRE);
    if (t != 0 && gettid() == t && !__atomic_load_n(&lk_stop, __ATOMIC_ACQUIRE))
        __atomic_fetch_add(&lk_foreign, 1, __ATOMIC_RELAXED);
}

static void lk_sender(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&lk_tid, __ATOMIC_ACQUIRE))
        gort_yield();
    for (int i = 0; i < NLOCKED; i++) {
        for (int k = 0; k < 5; k++) {
            lk_note_thread();
            gort_yield();
        }
        gort_chan_send(lk_ch, &i);
    }
    gort_waitgroup_done(&lk_wg);
}

static void lk_busy(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&lk_stop, __ATOMIC_ACQUIRE)) {
        __atomic_fetch_add(&lk_progress, 1, __ATOMIC_RELAXED);
        lk_note_thread();
        gort_yield();
    }
    gort_waitgroup_done(&lk_wg);
}

static int mode_locked(void)
{
    lk_ch = gort_chan_make(sizeof(int), 0);
    int64_t t0 = gort_nanotime();
    gort_waitgroup_add(&lk_wg, 3);
    gort_go(lk_busy, NULL);
    gort_go(lk_sender, NULL);
    gort_go(lk_locked, NULL);
    gort_waitgroup_wait(&lk_wg);
    CHECKF(lk_bad_tid == 0, "locked goroutine woke on another thread %d times", lk_bad_tid);
    CHECKF(lk_foreign == 0, "other goroutines ran on the locked thread %d times", lk_foreign);
    printf("     %d wake-ups of a locked goroutine in %lld ms, %ld steps elsewhere, %ld wake-ups "
           "without progress elsewhere\n",
           NLOCKED, (long long)ms_since(t0), lk_progress, lk_stalls);
    gort_chan_free(lk_ch);

    /* main itself locked: its blocking waits keep the thread. */
    gort_lock_os_thread();
    pid_t me = gettid();
    for (int i = 0; i < 20; i++) {
        gort_sleep(100000);
        CHECK(gettid() == me);
    }
    gort_unlock_os_thread();
    return 0;
}

/* ---- A million goroutines ------------------------------------------------------------ */

static gort_chan *mil_gate;
static long mil_started, mil_ran;
static gort_waitgroup mil_wg;

static void mil_worker(void *arg)
{
    (void)arg;
    __atomic_fetch_add(&mil_started, 1, __ATOMIC_RELAXED);
    gort_chan_recv(mil_gate, NULL);
    __atomic_fetch_add(&mil_ran, 1, __ATOMIC_RELAXED);
    gort_waitgroup_done(&mil_wg);
}

static int mode_million(void)
{
    long n = 1000000;
    const char *e = getenv("GORT_TEST_MILLION");
    if (e)
        n = atol(e);
    mil_gate = gort_chan_make(0, 0);
    long rss0 = (long)rss_bytes();
    struct gort_memstats ms0, ms1;
    gort_memstats(&ms0);
    int64_t t0 = gort_nanotime();
    gort_waitgroup_add(&mil_wg, (int)n);
    for (long i = 0; i < n; i++)
        gort_go(mil_worker, NULL);
    int64_t tspawn = gort_nanotime() - t0;
    WAIT_UNTIL(__atomic_load_n(&mil_started, __ATOMIC_RELAXED) == n);
    for (int i = 0; i < 10; i++)
        gort_yield();
    int64_t tpark = gort_nanotime() - t0;
    long rss1 = (long)rss_bytes();
    gort_memstats(&ms1);
    CHECKF(gort_numgoroutine() == n + 1, "numgoroutine %d", gort_numgoroutine());
    t0 = gort_nanotime();
    gort_chan_close(mil_gate);
    gort_waitgroup_wait(&mil_wg);
    int64_t trun = gort_nanotime() - t0;
    CHECKF(mil_ran == n, "%ld of %ld goroutines ran", mil_ran, n);
    printf("     %ld goroutines: spawn %.0f ms, all parked at %.0f ms, release+join %.0f ms\n", n,
           (double)tspawn / 1e6, (double)tpark / 1e6, (double)trun / 1e6);
    printf("     RSS %.1f MB -> %.1f MB: %.0f bytes per parked goroutine; stack_inuse %.0f MB\n",
           (double)rss0 / 1e6, (double)rss1 / 1e6, (double)(rss1 - rss0) / (double)n,
           (double)ms1.stack_inuse / 1e6);
    CHECKF(rss1 - rss0 < 16L * 1024 * n, "%.0f bytes per parked goroutine",
           (double)(rss1 - rss0) / (double)n);
    return 0;
}

/* ---- schedtrace ---------------------------------------------------------------------- */

static gort_waitgroup st_wg;
static void st_worker(void *arg)
{
    int i = (int)(intptr_t)arg;
    int64_t t0 = gort_nanotime();
    while (gort_nanotime() - t0 < 150000000) {
        if (i % 2)
            gort_sleep(3000000);
        else
            spin(20000);
        gort_yield();
    }
    gort_waitgroup_done(&st_wg);
}

static int mode_schedtrace(void)
{
    gort_waitgroup_add(&st_wg, 4);
    for (int i = 0; i < 4; i++)
        gort_go(st_worker, (void *)(intptr_t)i);
    gort_waitgroup_wait(&st_wg);
    return 0;
}

/* ---- Exit status, gort_go from a plain thread, requireg ------------------------------- */

static void forever(void *arg)
{
    (void)arg;
    for (;;)
        gort_yield();
}

static int mode_exit42(void)
{
    gort_go(forever, NULL);
    gort_go(forever, NULL);
    gort_yield();
    return 42;
}

enum { NFROMTHREAD = 1000 };
static long ft_count;
static int64_t ft_goid[NFROMTHREAD];

static void ft_worker(void *arg)
{
    int i = (int)(intptr_t)arg;
    ft_goid[i] = gort_goid();
    __atomic_fetch_add(&ft_count, 1, __ATOMIC_RELEASE);
}

static void *ft_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < NFROMTHREAD; i++) {
        gort_go(ft_worker, (void *)(intptr_t)i);
        if (i % 100 == 0)
            usleep(1000);
    }
    return NULL;
}

static int mode_fromthread(void)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, ft_thread, NULL) == 0);
    /* Sleep-polling, not a channel: a wait the deadlock check could see as
     * final while the thread is still to spawn. */
    WAIT_UNTIL(__atomic_load_n(&ft_count, __ATOMIC_ACQUIRE) == NFROMTHREAD);
    gort_syscall_enter();
    pthread_join(th, NULL);
    gort_syscall_exit();
    int64_t ids[NFROMTHREAD];
    memcpy(ids, ft_goid, sizeof ids);
    qsort(ids, NFROMTHREAD, sizeof *ids, cmp_i64);
    CHECK(ids[0] > 1);
    for (int i = 1; i < NFROMTHREAD; i++)
        CHECK(ids[i] != ids[i - 1]);
    return 0;
}

/* A plain thread starts goroutines one at a time, each waited for, with
 * every P idle in between: each lands on the global queue while Ms are
 * between spinning and sleeping.  None may be stranded there. */
static uint64_t gq_ran;

static void gq_work(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&gq_ran, 1, __ATOMIC_SEQ_CST);
}

static void *gq_thread(void *arg)
{
    (void)arg;
    uint64_t x = 1;
    for (uint64_t n = 1; n <= 200000; n++) {
        gort_go(gq_work, NULL);
        int64_t t0 = gort_nanotime();
        while (__atomic_load_n(&gq_ran, __ATOMIC_SEQ_CST) < n)
            if (gort_nanotime() - t0 > 5000000000LL) {
                fprintf(stderr, "goroutine %llu never ran: lost wake-up\n", (unsigned long long)n);
                _exit(3);
            }
        x = x * 6364136223846793005ULL + 1;    /* land anywhere in the idle path */
        for (volatile unsigned k = (unsigned)((x >> 33) % 3000); k; k--)
            ;
    }
    return NULL;
}

static int mode_globalq(void)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, gq_thread, NULL) == 0);
    gort_syscall_enter();
    pthread_join(th, NULL);
    gort_syscall_exit();
    return 0;
}

/* sysmon flags a goroutine that ran 10 ms; it then enters a system call
 * region and calls gort there (gort_go works from anywhere): the flag must
 * wait for gort_syscall_exit, not yield a goroutine that has no P. */
static void nop_fn(void *arg)
{
    (void)arg;
}

static int mode_preemptsyscall(void)
{
    for (int i = 0; i < 3; i++) {
        int64_t t0 = gort_nanotime();
        while (gort_nanotime() - t0 < 30000000LL)
            __asm__ volatile("" ::: "memory");
        gort_syscall_enter();
        gort_go(nop_fn, NULL);
        gort_syscall_exit();
    }
    return 0;
}

static void *rq_thread(void *arg)
{
    int v;
    gort_chan_recv(arg, &v);   /* fatal: not a goroutine */
    return NULL;
}

static int mode_requireg(void)
{
    gort_chan *c = gort_chan_make(sizeof(int), 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, rq_thread, c) == 0);
    gort_syscall_enter();
    pthread_join(th, NULL);
    gort_syscall_exit();
    fprintf(stderr, "requireg: the receive returned\n");
    return 0;
}

static int app_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *mode = getenv("GORT_TEST_MODE");
    static const struct {
        const char *name;
        int (*fn)(void);
    } modes[] = {
        {"many", mode_many},         {"malloc", mode_malloc},
        {"fair", mode_fair},         {"steal", mode_steal},
        {"syscall", mode_syscall},   {"preempt", mode_preempt},
        {"async", mode_async},       {"locked", mode_locked},
        {"million", mode_million},   {"schedtrace", mode_schedtrace},
        {"exit42", mode_exit42},     {"fromthread", mode_fromthread},
        {"requireg", mode_requireg},     {"sigmask", mode_sigmask},
        {"globalq", mode_globalq},       {"preemptsyscall", mode_preemptsyscall},
        {"sigmask_sysmon", mode_sigmask_sysmon}, {"busytimers", mode_busytimers},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(mode, modes[i].name) == 0) {
            int r = modes[i].fn();
            fflush(stdout);
            return r;
        }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 1;
}

/* ---- The driver --------------------------------------------------------------------- */

static void check_schedtrace(void)
{
    if (!selected("schedtrace"))
        return;
    const char *env[] = {"GOMAXPROCS=2", "GODEBUG=schedtrace=10", NULL};
    struct child ch;
    run_child(&ch, "schedtrace", env, 20);
    if (!exited(&ch, 0)) {
        show_child("schedtrace", &ch);
        FAIL("schedtrace: the child failed");
        free(ch.err);
        return;
    }
    regex_t re;
    CHECK(regcomp(&re,
                  "^SCHED ([0-9]+)ms: gomaxprocs=2 idleprocs=[0-9]+ threads=[0-9]+ "
                  "spinningthreads=[0-9]+ idlethreads=[0-9]+ runqueue=[0-9]+ \\[[0-9]+ [0-9]+\\]$",
                  REG_EXTENDED) == 0);
    int lines = 0, bad = 0;
    long last = -1;
    for (char *line = strtok(ch.err, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "SCHED", 5) != 0)
            continue;
        regmatch_t m[2];
        if (regexec(&re, line, 2, m, 0) != 0) {
            FAIL("bad schedtrace line: \"%s\"", line);
            bad++;
            continue;
        }
        long ms = atol(line + m[1].rm_so);
        if (ms < last) {
            FAIL("schedtrace time went back: %ld after %ld", ms, last);
            bad++;
        }
        last = ms;
        lines++;
    }
    regfree(&re);
    free(ch.err);
    if (lines < 5) {
        FAIL("%d schedtrace lines in a 150 ms run", lines);
        bad++;
    }
    if (!bad)
        printf("ok   schedtrace   %d lines matching Go's format (%.2fs)\n", lines, ch.secs);

    const char *env2[] = {"GOMAXPROCS=2", "GODEBUG=schedtrace=20,scheddetail=1", NULL};
    run_child(&ch, "schedtrace", env2, 20);
    if (!exited(&ch, 0) || !strstr(ch.err, "  P1: status=") || !strstr(ch.err, "  M0: p=") ||
        !strstr(ch.err, "  G1: status=")) {
        show_child("scheddetail", &ch);
        FAIL("scheddetail: want exit 0 and P, M and G lines");
    } else {
        printf("ok   scheddetail\n");
    }
    free(ch.err);
}

static void check_async(void)
{
    if (!selected("async"))
        return;
    const char *env[] = {"GOMAXPROCS=1", "GODEBUG=asyncpreempt=1", NULL};
    if (gort_is_shared()) {
        expect_ok("async", env, 20, false);
        return;
    }
    struct child ch;
    run_child(&ch, "async", env, 20);
    if (!exited(&ch, 0) || !strstr(ch.err, "needs gort linked as libgort.so")) {
        show_child("async", &ch);
        FAIL("asyncpreempt=1 with static gort: want the refusal message and exit 0");
        free(ch.err);
        return;
    }
    free(ch.err);
    printf("ok   async        static gort: asyncpreempt=1 refused with a message; "
           "the signal path needs libgort.so (skipped)\n");
}

int main(int argc, char **argv)
{
    if (getenv("GORT_TEST_MODE"))
        return gort_main(app_main, argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);

    const char *p1[] = {"GOMAXPROCS=1", NULL};
    const char *p2[] = {"GOMAXPROCS=2", NULL};
    expect_ok("many", p1, 20, false);
    expect_ok("many", p2, 20, false);
    expect_ok("malloc", p1, 20, false);
    expect_ok("malloc", p2, 20, false);
    expect_ok("fair", p1, 20, false);
    expect_ok("steal", p2, 20, true);
    expect_ok("syscall", p1, 20, false);
    expect_ok("preempt", p1, 20, true);
    expect_ok("busytimers", p1, 20, false);
    expect_ok("sigmask", p2, 20, false);
    expect_ok("sigmask_sysmon", p1, 20, false);
    check_async();
    expect_ok("locked", p1, 20, false);
    expect_ok("locked", p2, 20, false);
    expect_ok("fromthread", p1, 20, false);
    expect_ok("fromthread", p2, 20, false);
    const char *p4[] = {"GOMAXPROCS=4", NULL};
    expect_ok("globalq", p4, 60, false);
    expect_ok("preemptsyscall", p1, 20, false);
    check_schedtrace();

    struct child ch;
    if (selected("exit42")) {
        run_child(&ch, "exit42", p2, 20);
        if (!exited(&ch, 42)) {
            show_child("exit42", &ch);
            FAIL("gort_main must exit with main's return value");
        } else {
            printf("ok   exit42       exit status is main's return value\n");
        }
        free(ch.err);
    }

    if (selected("requireg")) {
        run_child(&ch, "requireg", p2, 20);
        if (ch.timed_out || !WIFSIGNALED(ch.status) || WTERMSIG(ch.status) != SIGABRT ||
            !strstr(ch.err, "gort_chan_recv: not called from a goroutine")) {
            show_child("requireg", &ch);
            FAIL("a receive on a plain thread must abort with a clear message");
        } else {
            printf("ok   requireg     receive from a plain thread aborts with a message\n");
        }
        free(ch.err);
    }

    /* Last: the biggest. */
    expect_ok("million", p2, 30, false);
    if (failures)
        fprintf(stderr, "%d case(s) failed\n", failures);
    return failures != 0;
}
