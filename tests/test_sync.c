/*
 * test_sync.c — Go's sync package on goroutines: Mutex (contention, TryLock,
 * starvation mode), RWMutex (concurrent readers, writer exclusion, a waiting
 * writer holding off new readers), WaitGroup, Once, Cond (Signal wakes one,
 * Broadcast wakes all, a producer/consumer queue), and the fatal misuses,
 * each checked in a forked child (SIGABRT and the message on stderr).
 *
 * The process started by run.sh re-runs itself twice, under GOMAXPROCS=1
 * and GOMAXPROCS=2, and passes only if both runs pass.  gort-test: tsan
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gort.h"
#include "check.h"

#define MS ((int64_t)1000000)

/* sync.c's mutexStarving bit, observed from outside. */
#define MUTEX_STARVING 4

static int ld(int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void inc(int *p) { __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST); }
static void dec(int *p) { __atomic_sub_fetch(p, 1, __ATOMIC_SEQ_CST); }
static void st(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }

/* Yields until *p == want or 2 s pass; returns whether it got there. */
static bool await_eq(int *p, int want)
{
    int64_t deadline = gort_nanotime() + 2000 * MS;
    while (ld(p) != want) {
        if (gort_nanotime() > deadline)
            return false;
        gort_yield();
    }
    return true;
}

/* ---- Mutex under contention ---------------------------------------------- */

enum { NWORK = 8, NITER = 20000 };
static gort_mutex mu = GORT_MUTEX_INIT;
static long counter;                     /* plain: only ever touched under mu */

static void incr_worker(void *arg)
{
    gort_waitgroup *wg = arg;
    uint64_t seed = (uint64_t)gort_goid() * 7919 + 1;
    for (int i = 0; i < NITER; i++) {
        gort_mutex_lock(&mu);
        long v = counter;
        if ((rnd(&seed) & 127) == 0)
            gort_yield();                /* hold the lock across a switch */
        counter = v + 1;
        gort_mutex_unlock(&mu);
    }
    gort_waitgroup_done(wg);
}

static void test_mutex_contention(void)
{
    gort_waitgroup wg = GORT_WAITGROUP_INIT;
    int64_t t0 = gort_nanotime();
    counter = 0;
    gort_waitgroup_add(&wg, NWORK);
    for (int i = 0; i < NWORK; i++)
        gort_go(incr_worker, &wg);
    gort_waitgroup_wait(&wg);
    gort_mutex_lock(&mu);
    CHECKF(counter == (long)NWORK * NITER, "counter %ld", counter);
    gort_mutex_unlock(&mu);
    CHECKF(mu.state == 0, "state %d after all unlocked", mu.state);
    printf("  mutex: %d x %d increments exact (%.1f ms)\n", NWORK, NITER,
           (double)(gort_nanotime() - t0) / 1e6);
}

/* ---- TryLock ------------------------------------------------------------- */

static int try_result;

static void try_other(void *arg)
{
    st(&try_result, gort_mutex_trylock(arg) ? 1 : 0);
}

static void test_trylock(void)
{
    gort_mutex m = GORT_MUTEX_INIT;
    CHECK(gort_mutex_trylock(&m));
    CHECK(!gort_mutex_trylock(&m));
    st(&try_result, -1);
    gort_go(try_other, &m);
    CHECK(await_eq(&try_result, 0));     /* held by us: fails there too */
    gort_mutex_unlock(&m);
    st(&try_result, -1);
    gort_go(try_other, &m);
    CHECK(await_eq(&try_result, 1));     /* free: the other goroutine takes it */
    CHECK(!gort_mutex_trylock(&m));
    gort_mutex_unlock(&m);
    CHECK(m.state == 0);
    printf("  trylock: ok\n");
}

/* ---- Starvation mode ------------------------------------------------------ */

static gort_mutex smu = GORT_MUTEX_INIT;
static int waiter_got;

static void starve_waiter(void *arg)
{
    gort_waitgroup *wg = arg;
    gort_mutex_lock(&smu);
    st(&waiter_got, 1);
    gort_mutex_unlock(&smu);
    gort_waitgroup_done(wg);
}

/* We hold smu for 1.5 ms at a time (yielding, so the waiter runs and
 * queues), unlock and at once lock again.  In normal mode the woken waiter
 * loses that race (always, on one P); after 1 ms of waiting it must switch
 * the mutex to starvation mode, and our next unlock hands it the lock.
 * Returns the rounds it took, and whether we saw mutexStarving while
 * holding the lock. */
static int starve_once(bool *saw)
{
    gort_waitgroup wg = GORT_WAITGROUP_INIT;
    int rounds = 0;
    *saw = false;
    st(&waiter_got, 0);
    gort_mutex_lock(&smu);
    gort_waitgroup_add(&wg, 1);
    gort_go(starve_waiter, &wg);
    while (!ld(&waiter_got) && rounds < 100) {
        int64_t until = gort_nanotime() + 1500000;
        while (gort_nanotime() < until) {
            if (__atomic_load_n(&smu.state, __ATOMIC_SEQ_CST) & MUTEX_STARVING)
                *saw = true;
            gort_yield();
        }
        gort_mutex_unlock(&smu);
        gort_mutex_lock(&smu);
        rounds++;
    }
    gort_mutex_unlock(&smu);
    gort_waitgroup_wait(&wg);
    CHECK(ld(&waiter_got));
    return rounds;
}

/* Many goroutines, each taking the lock again as soon as it lets go and
 * holding it 300 us (yielding meanwhile, so that the others run and queue
 * up).  A woken waiter has to beat a goroutine that is already running;
 * it soon loses after more than 1 ms of waiting, and some holder must see
 * mutexStarving.  Without starvation mode the holder would keep the lock
 * for all its rounds in a row. */
enum { NSTARVE = 6, STARVE_ROUNDS = 20 };
static int starve_seen, starve_count;

static void starve_worker(void *arg)
{
    gort_waitgroup *wg = arg;
    for (int i = 0; i < STARVE_ROUNDS; i++) {
        gort_mutex_lock(&smu);
        int64_t until = gort_nanotime() + 300000;
        while (gort_nanotime() < until) {
            if (__atomic_load_n(&smu.state, __ATOMIC_SEQ_CST) & MUTEX_STARVING)
                st(&starve_seen, 1);
            gort_yield();
        }
        starve_count++;
        gort_mutex_unlock(&smu);
    }
    gort_waitgroup_done(wg);
}

static void test_starvation(void)
{
    /* One waiter against one barging holder.  Under GOMAXPROCS=1 the
     * woken waiter always loses the race and must starve the mutex; on
     * more Ps an idle P may run it at once and it may win honestly.
     * Either way it gets the lock within a few rounds. */
    bool saw = false;
    int rounds = starve_once(&saw);
    CHECKF(rounds <= 10, "waiter starved for %d rounds of 1.5 ms", rounds);
    if (gort_gomaxprocs() == 1)
        CHECKF(saw, "no mutexStarving after %d rounds", rounds);

    gort_waitgroup wg = GORT_WAITGROUP_INIT;
    int64_t t0 = gort_nanotime();
    gort_waitgroup_add(&wg, NSTARVE);
    for (int i = 0; i < NSTARVE; i++)
        gort_go(starve_worker, &wg);
    gort_waitgroup_wait(&wg);
    CHECK(starve_count == NSTARVE * STARVE_ROUNDS);
    CHECKF(ld(&starve_seen), "never saw mutexStarving");
    CHECKF(smu.state == 0, "state %d", smu.state);
    printf("  starvation: one waiter served in %d rounds%s; mutexStarving among %d holders "
           "(%.1f ms)\n", rounds, saw ? " by starvation" : "", NSTARVE,
           (double)(gort_nanotime() - t0) / 1e6);
}

/* ---- RWMutex --------------------------------------------------------------- */

enum { NREADERS = 4 };
static gort_rwmutex rw = GORT_RWMUTEX_INIT;
static int readers_in, readers_max, writers_in, rw_errors;
static long rw_value;

static void concurrent_reader(void *arg)
{
    gort_waitgroup *wg = arg;
    gort_rwmutex_rlock(&rw);
    int n = __atomic_add_fetch(&readers_in, 1, __ATOMIC_SEQ_CST);
    int m = ld(&readers_max);
    while (n > m && !__atomic_compare_exchange_n(&readers_max, &m, n, false, __ATOMIC_SEQ_CST,
                                                 __ATOMIC_SEQ_CST))
        ;
    await_eq(&readers_max, NREADERS);    /* everyone inside at once */
    gort_yield();
    dec(&readers_in);
    gort_rwmutex_runlock(&rw);
    gort_waitgroup_done(wg);
}

enum { RW_ITERS = 3000, RW_WRITERS = 2 };

static void mixed_reader(void *arg)
{
    gort_waitgroup *wg = arg;
    uint64_t seed = (uint64_t)gort_goid() + 17;
    for (int i = 0; i < RW_ITERS; i++) {
        gort_rwmutex_rlock(&rw);
        inc(&readers_in);
        long before = rw_value;
        if (ld(&writers_in) != 0)
            inc(&rw_errors);
        if ((rnd(&seed) & 31) == 0)
            gort_yield();
        if (rw_value != before || ld(&writers_in) != 0)
            inc(&rw_errors);
        dec(&readers_in);
        gort_rwmutex_runlock(&rw);
    }
    gort_waitgroup_done(wg);
}

static void mixed_writer(void *arg)
{
    gort_waitgroup *wg = arg;
    uint64_t seed = (uint64_t)gort_goid() + 29;
    for (int i = 0; i < RW_ITERS; i++) {
        gort_rwmutex_lock(&rw);
        if (__atomic_add_fetch(&writers_in, 1, __ATOMIC_SEQ_CST) != 1 || ld(&readers_in) != 0)
            inc(&rw_errors);
        long v = rw_value;
        if ((rnd(&seed) & 31) == 0)
            gort_yield();
        rw_value = v + 1;
        if (ld(&readers_in) != 0)
            inc(&rw_errors);
        dec(&writers_in);
        gort_rwmutex_unlock(&rw);
        if ((i & 7) == 0)
            gort_yield();                /* let readers in between */
    }
    gort_waitgroup_done(wg);
}

static char order[8];
static int norder;

static void pending_writer(void *arg)
{
    gort_waitgroup *wg = arg;
    gort_rwmutex_lock(&rw);
    order[__atomic_fetch_add(&norder, 1, __ATOMIC_SEQ_CST)] = 'W';
    for (int i = 0; i < 20; i++)
        gort_yield();                    /* the late reader must stay out */
    gort_rwmutex_unlock(&rw);
    gort_waitgroup_done(wg);
}

static void late_reader(void *arg)
{
    gort_waitgroup *wg = arg;
    gort_rwmutex_rlock(&rw);
    order[__atomic_fetch_add(&norder, 1, __ATOMIC_SEQ_CST)] = 'R';
    gort_rwmutex_runlock(&rw);
    gort_waitgroup_done(wg);
}

static void test_rwmutex(void)
{
    gort_waitgroup wg = GORT_WAITGROUP_INIT;

    /* Readers share. */
    gort_waitgroup_add(&wg, NREADERS);
    for (int i = 0; i < NREADERS; i++)
        gort_go(concurrent_reader, &wg);
    gort_waitgroup_wait(&wg);
    CHECKF(ld(&readers_max) == NREADERS, "at most %d readers in at once", ld(&readers_max));

    /* Writers exclude readers and each other. */
    int64_t t0 = gort_nanotime();
    gort_waitgroup_add(&wg, NREADERS + RW_WRITERS);
    for (int i = 0; i < NREADERS; i++)
        gort_go(mixed_reader, &wg);
    for (int i = 0; i < RW_WRITERS; i++)
        gort_go(mixed_writer, &wg);
    gort_waitgroup_wait(&wg);
    CHECKF(ld(&rw_errors) == 0, "%d exclusion violations", ld(&rw_errors));
    CHECKF(rw_value == (long)RW_WRITERS * RW_ITERS, "value %ld", rw_value);

    /* A writer waiting for a reader keeps later readers out (no writer
     * starvation): the order must be W then R. */
    norder = 0;
    gort_rwmutex_rlock(&rw);
    gort_waitgroup_add(&wg, 2);
    gort_go(pending_writer, &wg);
    int64_t deadline = gort_nanotime() + 2000 * MS;
    while (__atomic_load_n(&rw.readerCount, __ATOMIC_SEQ_CST) >= 0) {
        CHECK(gort_nanotime() < deadline);
        gort_yield();
    }
    gort_go(late_reader, &wg);
    for (int i = 0; i < 50; i++)
        gort_yield();
    CHECKF(ld(&norder) == 0, "someone got in while a reader held it");
    gort_rwmutex_runlock(&rw);
    gort_waitgroup_wait(&wg);
    CHECKF(norder == 2 && order[0] == 'W' && order[1] == 'R', "order %.2s", order);
    CHECK(rw.readerCount == 0 && rw.readerWait == 0 && rw.w.state == 0);
    printf("  rwmutex: %d readers at once, %d+%d mixed exact, writer first (%.1f ms)\n",
           NREADERS, NREADERS, RW_WRITERS, (double)(gort_nanotime() - t0) / 1e6);
}

/* ---- WaitGroup ------------------------------------------------------------ */

enum { NG = 1000, NWAITERS = 5 };
static int wg_count, wg_released;

static void wg_worker(void *arg)
{
    if (gort_goid() & 1)
        gort_yield();
    inc(&wg_count);
    gort_waitgroup_done(arg);
}

static gort_waitgroup gate = GORT_WAITGROUP_INIT;

static void gate_waiter(void *arg)
{
    gort_waitgroup_wait(&gate);
    inc(&wg_released);
    gort_waitgroup_done(arg);
}

static void test_waitgroup(void)
{
    gort_waitgroup wg = GORT_WAITGROUP_INIT;
    gort_waitgroup_add(&wg, NG);
    for (int i = 0; i < NG; i++)
        gort_go(wg_worker, &wg);
    gort_waitgroup_wait(&wg);
    CHECKF(ld(&wg_count) == NG, "wait returned with %d of %d done", ld(&wg_count), NG);
    CHECK(wg.state == 0);

    /* Several waiters on one group are all released by the last Done, and
     * not before.  The group is reused, as Go allows after Wait returns. */
    gort_waitgroup_add(&gate, 1);
    gort_waitgroup_add(&wg, NWAITERS);
    for (int i = 0; i < NWAITERS; i++)
        gort_go(gate_waiter, &wg);
    int64_t deadline = gort_nanotime() + 2000 * MS;
    while ((uint32_t)__atomic_load_n(&gate.state, __ATOMIC_SEQ_CST) != NWAITERS) {
        CHECK(gort_nanotime() < deadline);
        gort_yield();
    }
    CHECK(ld(&wg_released) == 0);
    gort_waitgroup_done(&gate);
    gort_waitgroup_wait(&wg);
    CHECK(ld(&wg_released) == NWAITERS);
    gort_waitgroup_wait(&gate);          /* zero: returns at once */
    printf("  waitgroup: %d goroutines, %d waiters released together\n", NG, NWAITERS);
}

/* ---- Once ------------------------------------------------------------------ */

enum { NONCE = 100 };
static gort_once once = GORT_ONCE_INIT;
static int once_calls, once_ready, once_early;

static void once_fn(void *arg)
{
    (void)arg;
    inc(&once_calls);
    for (int i = 0; i < 10; i++)
        gort_yield();                    /* others arrive meanwhile */
    st(&once_ready, 1);
}

static void once_caller(void *arg)
{
    gort_once_do(&once, once_fn, NULL);
    if (!ld(&once_ready))
        inc(&once_early);                /* returned before fn finished */
    gort_waitgroup_done(arg);
}

static void test_once(void)
{
    gort_waitgroup wg = GORT_WAITGROUP_INIT;
    gort_waitgroup_add(&wg, NONCE);
    for (int i = 0; i < NONCE; i++)
        gort_go(once_caller, &wg);
    gort_waitgroup_wait(&wg);
    CHECKF(ld(&once_calls) == 1, "fn ran %d times", ld(&once_calls));
    CHECKF(ld(&once_early) == 0, "%d callers returned before fn was done", ld(&once_early));
    gort_once_do(&once, once_fn, NULL);
    CHECK(ld(&once_calls) == 1);
    printf("  once: fn ran once for %d goroutines\n", NONCE);
}

/* ---- Cond ------------------------------------------------------------------ */

enum { NCW = 10 };
static gort_mutex cmu = GORT_MUTEX_INIT;
static gort_cond cond = GORT_COND_INIT;
static int tokens, nwaiting, wakeups, got;   /* under cmu (read atomically outside) */

static void cond_waiter(void *arg)
{
    gort_mutex_lock(&cmu);
    inc(&nwaiting);
    while (tokens == 0) {
        gort_cond_wait(&cond, &cmu);
        inc(&wakeups);
    }
    tokens--;
    inc(&got);
    gort_mutex_unlock(&cmu);
    gort_waitgroup_done(arg);
}

enum { QCAP = 8, NPROD = 2, NCONS = 2, NITEMS = 5000 };
static gort_cond notEmpty = GORT_COND_INIT, notFull = GORT_COND_INIT;
static int queue[QCAP], qhead, qlen, qdone;
static long consumed_sum;
static int consumed_n;

static void producer(void *arg)
{
    for (int v = 1; v <= NITEMS; v++) {
        gort_mutex_lock(&cmu);
        while (qlen == QCAP)
            gort_cond_wait(&notFull, &cmu);
        queue[(qhead + qlen) % QCAP] = v;
        qlen++;
        gort_cond_signal(&notEmpty);
        gort_mutex_unlock(&cmu);
    }
    gort_waitgroup_done(arg);
}

static void consumer(void *arg)
{
    for (;;) {
        gort_mutex_lock(&cmu);
        while (qlen == 0 && !qdone)
            gort_cond_wait(&notEmpty, &cmu);
        if (qlen == 0) {
            gort_mutex_unlock(&cmu);
            break;
        }
        int v = queue[qhead];
        qhead = (qhead + 1) % QCAP;
        qlen--;
        consumed_sum += v;
        consumed_n++;
        gort_cond_signal(&notFull);
        gort_mutex_unlock(&cmu);
    }
    gort_waitgroup_done(arg);
}

static void test_cond(void)
{
    gort_waitgroup wg = GORT_WAITGROUP_INIT;

    /* NCW goroutines asleep on the Cond (each counted itself under the
     * lock, so once we hold it and see NCW, all hold tickets). */
    gort_waitgroup_add(&wg, NCW);
    for (int i = 0; i < NCW; i++)
        gort_go(cond_waiter, &wg);
    CHECK(await_eq(&nwaiting, NCW));
    gort_mutex_lock(&cmu);
    CHECK(wakeups == 0);
    tokens = 1;
    gort_cond_signal(&cond);
    gort_mutex_unlock(&cmu);
    CHECK(await_eq(&got, 1));
    int64_t until = gort_nanotime() + 5 * MS;
    while (gort_nanotime() < until)
        gort_yield();
    CHECKF(ld(&wakeups) == 1, "Signal woke %d", ld(&wakeups));
    gort_mutex_lock(&cmu);
    tokens = NCW - 1;
    gort_cond_broadcast(&cond);
    gort_mutex_unlock(&cmu);
    CHECKF(await_eq(&got, NCW), "Broadcast: %d of %d woke", ld(&got), NCW);
    gort_waitgroup_wait(&wg);
    CHECKF(ld(&wakeups) == NCW, "wakeups %d", ld(&wakeups));
    /* Nobody waits: both are no-ops. */
    gort_cond_signal(&cond);
    gort_cond_broadcast(&cond);
    CHECK(cond.head == NULL && cond.wait == cond.notify);

    /* A bounded queue with two Conds. */
    gort_waitgroup prod = GORT_WAITGROUP_INIT;
    gort_waitgroup_add(&prod, NPROD);
    gort_waitgroup_add(&wg, NCONS);
    for (int i = 0; i < NCONS; i++)
        gort_go(consumer, &wg);
    for (int i = 0; i < NPROD; i++)
        gort_go(producer, &prod);
    gort_waitgroup_wait(&prod);
    gort_mutex_lock(&cmu);
    qdone = 1;
    gort_cond_broadcast(&notEmpty);
    gort_mutex_unlock(&cmu);
    gort_waitgroup_wait(&wg);
    CHECKF(consumed_n == NPROD * NITEMS, "consumed %d", consumed_n);
    CHECK(consumed_sum == (long)NPROD * NITEMS * (NITEMS + 1) / 2);
    printf("  cond: signal woke 1, broadcast woke %d; queue passed %d items\n", NCW - 1,
           consumed_n);
}

/* ---- Fatal misuse, each in a forked child ---------------------------------- */

static void fatal_negative_wg(void)
{
    gort_waitgroup wg = GORT_WAITGROUP_INIT;
    gort_waitgroup_add(&wg, 1);
    gort_waitgroup_done(&wg);
    gort_waitgroup_done(&wg);
}

static void fatal_unlock_unlocked(void)
{
    gort_mutex m = GORT_MUTEX_INIT;
    gort_mutex_lock(&m);
    gort_mutex_unlock(&m);
    gort_mutex_unlock(&m);
}

static void fatal_runlock_unlocked(void)
{
    gort_rwmutex r = GORT_RWMUTEX_INIT;
    gort_rwmutex_rlock(&r);
    gort_rwmutex_runlock(&r);
    gort_rwmutex_runlock(&r);
}

static void fatal_wunlock_unlocked(void)
{
    gort_rwmutex r = GORT_RWMUTEX_INIT;
    gort_rwmutex_unlock(&r);
}

/* Re-executed (a fresh process: threads and fork do not mix well, under
 * TSan least of all), main() blocks on a held Mutex before gort_main: on a
 * plain thread, where it cannot park. */
static void fatal_park_from_thread(void)
{
    execl("/proc/self/exe", "test_sync", "--fatal-park", (char *)NULL);
    _exit(127);
}

static void park_from_thread(void)
{
    gort_mutex m = GORT_MUTEX_INIT;
    gort_mutex_lock(&m);                 /* uncontended: fine */
    gort_mutex_lock(&m);                 /* would have to park: fatal */
}

static void expect_fatal(const char *name, void (*fn)(void), const char *msg)
{
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore);
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        fn();
        _exit(0);
    }
    close(pfd[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    int status = 0;
    gort_syscall_enter();
    while (n < sizeof buf - 1 && (r = read(pfd[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    pid_t w = waitpid(pid, &status, 0);
    gort_syscall_exit();
    close(pfd[0]);
    buf[n] = 0;
    CHECK(w == pid);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "%s: status 0x%x, stderr: %s",
           name, status, buf);
    CHECKF(strstr(buf, msg) != NULL, "%s: stderr lacks \"%s\": %s", name, msg, buf);
}

static void test_fatal(void)
{
    expect_fatal("negative WaitGroup", fatal_negative_wg, "sync: negative WaitGroup counter");
    expect_fatal("Unlock twice", fatal_unlock_unlocked, "sync: unlock of unlocked mutex");
    expect_fatal("RUnlock twice", fatal_runlock_unlocked, "sync: RUnlock of unlocked RWMutex");
    expect_fatal("RWMutex Unlock", fatal_wunlock_unlocked, "sync: Unlock of unlocked RWMutex");
    expect_fatal("park from a thread", fatal_park_from_thread,
                 "gort_mutex_lock: not called from a goroutine");
    printf("  fatal: 5 misuses abort with Go's messages\n");
}

/* ---- Plain threads: the fast paths need no goroutine ------------------------ */

static void once_inc(void *arg)
{
    inc(arg);
}

static void *plain_thread(void *arg)
{
    gort_mutex m = GORT_MUTEX_INIT;
    gort_waitgroup wg = GORT_WAITGROUP_INIT;
    gort_rwmutex r = GORT_RWMUTEX_INIT;
    gort_once o = GORT_ONCE_INIT;
    gort_cond c = GORT_COND_INIT;
    int *ok = arg;
    gort_mutex_lock(&m);
    bool t = gort_mutex_trylock(&m);
    gort_mutex_unlock(&m);
    gort_rwmutex_rlock(&r);
    gort_rwmutex_rlock(&r);
    gort_rwmutex_runlock(&r);
    gort_rwmutex_runlock(&r);
    gort_rwmutex_lock(&r);
    gort_rwmutex_unlock(&r);
    gort_waitgroup_add(&wg, 2);
    gort_waitgroup_done(&wg);
    gort_waitgroup_done(&wg);
    gort_waitgroup_wait(&wg);
    gort_once_do(&o, once_inc, &once_calls);
    gort_cond_signal(&c);
    gort_cond_broadcast(&c);
    *ok = !t && m.state == 0 && r.readerCount == 0 && wg.state == 0 && o.done == 1;
    return NULL;
}

static void test_plain_thread(void)
{
    int ok = 0, before = ld(&once_calls);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, plain_thread, &ok) == 0);
    gort_syscall_enter();
    pthread_join(t, NULL);
    gort_syscall_exit();
    CHECK(ok);
    CHECK(ld(&once_calls) == before + 1);
    printf("  plain thread: uncontended calls work\n");
}

/* ---- Driver ------------------------------------------------------------------ */

static int run_parts(void)
{
    const char *want = getenv("GOMAXPROCS");
    CHECKF(gort_gomaxprocs() == atoi(want), "GOMAXPROCS %d, env %s", gort_gomaxprocs(), want);
    printf("GOMAXPROCS=%d\n", gort_gomaxprocs());
    fflush(stdout);
    test_mutex_contention();
    test_trylock();
    test_starvation();
    test_rwmutex();
    test_waitgroup();
    test_once();
    test_cond();
    test_plain_thread();
    fflush(stdout);
    test_fatal();
    printf("GOMAXPROCS=%d: ok\n", gort_gomaxprocs());
    return 0;
}

extern char **environ;

static int app_main(int argc, char **argv)
{
    (void)argc;
    setvbuf(stdout, NULL, _IOLBF, 0);    /* a hung run's log shows where */
    if (getenv("TEST_SYNC_CHILD") != NULL)
        return run_parts();

    /* The children's environments are built here: after fork only execve
     * is safe in a process with several threads. */
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **envp = calloc(n + 3, sizeof *envp);
    CHECK(envp != NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "GOMAXPROCS=", 11) != 0 &&
            strncmp(environ[i], "TEST_SYNC_CHILD=", 16) != 0)
            envp[k++] = environ[i];
    envp[k + 1] = "TEST_SYNC_CHILD=1";
    static char *const procs[] = {"GOMAXPROCS=1", "GOMAXPROCS=2"};
    for (int i = 0; i < 2; i++) {
        envp[k] = procs[i];
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            execve("/proc/self/exe", argv, envp);
            _exit(127);
        }
        int status = 0;
        gort_syscall_enter();
        pid_t w = waitpid(pid, &status, 0);
        gort_syscall_exit();
        CHECK(w == pid);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s run: status 0x%x", procs[i],
               status);
    }
    free(envp);
    printf("test_sync: ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--fatal-park") == 0) {
        park_from_thread();
        return 0;
    }
    return gort_main(app_main, argc, argv);
}
