/*
 * test_chan.c — channels: hand-off and buffering under many senders and
 * receivers, close semantics, the try forms, zero-size and large elements,
 * ping-pong, NULL channels, sends from a plain thread, and the fatal errors.
 * gort-test: tsan (goroutine switches are told to TSan as fibers)
 *
 * main() is a driver: it re-executes this binary with GORT_TEST_MODE set,
 * once per GOMAXPROCS (1 and 2) for the functional tests, and once per
 * fatal case with stderr in a pipe, checking the child died of SIGABRT
 * with Go's message.  Each child has an alarm, so a deadlock fails fast.
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
#include "sched/chan.h"

/* ---- Helpers ------------------------------------------------------------- */

/* Waiters queued on c (peeks at the internals, under the channel's lock). */
static int waiters(gort_chan *c, bool recv)
{
    int n = 0;
    spin_lock(&c->lock);
    for (struct sudog *sg = recv ? c->recvq.first : c->sendq.first; sg; sg = sg->next)
        n++;
    spin_unlock(&c->lock);
    return n;
}

/* Yields until n goroutines wait on c (bounded, so a bug fails the check). */
static void await_waiters(gort_chan *c, bool recv, int n)
{
    for (long i = 0; i < 10000000 && waiters(c, recv) < n; i++)
        gort_yield();
    CHECKF(waiters(c, recv) == n, "waiters %d want %d", waiters(c, recv), n);
}

/* ---- Many senders, many receivers ------------------------------------------ */

enum { NSEND = 8, NRECV = 8, PER = 20000, TOTAL = NSEND * PER };

struct mpmc {
    gort_chan *c;           /* the channel under test: uint32_t values */
    gort_chan *done;        /* senders report here */
    gort_chan *results;     /* receivers report {count, sum} here */
    uint8_t *seen;
    int id;
};

static struct mpmc mp_args[NSEND > NRECV ? NSEND : NRECV];

static void mp_sender(void *arg)
{
    struct mpmc *a = arg;
    for (uint32_t i = 0; i < PER; i++) {
        uint32_t v = (uint32_t)a->id * PER + i;
        gort_chan_send(a->c, &v);
    }
    int one = 1;
    gort_chan_send(a->done, &one);
}

static void mp_receiver(void *arg)
{
    struct mpmc *a = arg;
    uint64_t r[2] = {0, 0};
    uint32_t v;
    while (gort_chan_recv(a->c, &v)) {
        CHECKF(v < TOTAL, "value %u out of range", v);
        __atomic_fetch_add(&a->seen[v], 1, __ATOMIC_RELAXED);
        r[0]++;
        r[1] += v;
    }
    CHECK(v == 0);    /* zeroed by the closed receive */
    gort_chan_send(a->results, r);
}

static void test_mpmc(size_t cap)
{
    gort_chan *c = gort_chan_make(sizeof(uint32_t), cap);
    gort_chan *done = gort_chan_make(sizeof(int), 0);
    gort_chan *results = gort_chan_make(2 * sizeof(uint64_t), NRECV);
    uint8_t *seen = calloc(TOTAL, 1);
    CHECK(seen != NULL);
    for (int i = 0; i < NRECV; i++) {
        mp_args[i] = (struct mpmc){c, done, results, seen, i};
        gort_go(mp_receiver, &mp_args[i]);
    }
    static struct mpmc sargs[NSEND];
    for (int i = 0; i < NSEND; i++) {
        sargs[i] = (struct mpmc){c, done, results, seen, i};
        gort_go(mp_sender, &sargs[i]);
    }
    for (int i = 0; i < NSEND; i++) {
        int one = 0;
        CHECK(gort_chan_recv(done, &one));
        CHECK(one == 1);
    }
    gort_chan_close(c);
    uint64_t count = 0, sum = 0;
    for (int i = 0; i < NRECV; i++) {
        uint64_t r[2];
        CHECK(gort_chan_recv(results, r));
        count += r[0];
        sum += r[1];
    }
    CHECKF(count == TOTAL, "cap %zu: received %llu values, want %d", cap,
           (unsigned long long)count, TOTAL);
    CHECK(sum == (uint64_t)TOTAL * (TOTAL - 1) / 2);
    for (uint32_t v = 0; v < TOTAL; v++)
        CHECKF(seen[v] == 1, "cap %zu: value %u seen %u times", cap, v, seen[v]);
    CHECK(gort_chan_len(c) == 0);
    free(seen);
    gort_chan_free(c);
    gort_chan_free(done);
    gort_chan_free(results);
}

/* ---- Close, len, cap, try forms ---------------------------------------------- */

static void test_close_semantics(void)
{
    gort_chan *c = gort_chan_make(sizeof(int64_t), 4);
    CHECK(gort_chan_cap(c) == 4);
    CHECK(gort_chan_len(c) == 0);

    int64_t v = 77;
    bool ok = true;
    CHECK(!gort_chan_tryrecv(c, &v, &ok));    /* empty, open */
    CHECK(v == 77);
    for (int64_t i = 1; i <= 4; i++) {
        CHECK(gort_chan_trysend(c, &i));
        CHECK(gort_chan_len(c) == (size_t)i);
    }
    int64_t x = 5;
    CHECK(!gort_chan_trysend(c, &x));         /* full */
    CHECK(gort_chan_len(c) == 4);

    /* FIFO, through the ring's wrap-around. */
    CHECK(gort_chan_tryrecv(c, &v, &ok) && ok && v == 1);
    CHECK(gort_chan_trysend(c, &x));
    for (int64_t want = 2; want <= 5; want++) {
        CHECK(gort_chan_recv(c, &v));
        CHECK(v == want);
    }

    x = 10;
    gort_chan_send(c, &x);
    x = 11;
    gort_chan_send(c, &x);
    gort_chan_close(c);
    CHECK(gort_chan_len(c) == 2);
    CHECK(gort_chan_cap(c) == 4);
    /* A closed channel drains its buffer first. */
    CHECK(gort_chan_recv(c, &v) && v == 10);
    ok = false;
    CHECK(gort_chan_tryrecv(c, &v, &ok) && ok && v == 11);
    CHECK(gort_chan_len(c) == 0);
    /* Then gives zero values and ok = false, as often as asked. */
    for (int i = 0; i < 3; i++) {
        v = -1;
        CHECK(!gort_chan_recv(c, &v));
        CHECK(v == 0);
        v = -1;
        ok = true;
        CHECK(gort_chan_tryrecv(c, &v, &ok));
        CHECK(!ok && v == 0);
    }
    CHECK(!gort_chan_recv(c, NULL));
    CHECK(gort_chan_tryrecv(c, NULL, NULL));
    gort_chan_free(c);

    /* Unbuffered: nobody waiting, so neither try form can proceed. */
    c = gort_chan_make(sizeof(int64_t), 0);
    CHECK(gort_chan_cap(c) == 0 && gort_chan_len(c) == 0);
    CHECK(!gort_chan_trysend(c, &x));
    CHECK(!gort_chan_tryrecv(c, &v, &ok));
    gort_chan_close(c);
    ok = true;
    v = 3;
    CHECK(gort_chan_tryrecv(c, &v, &ok) && !ok && v == 0);
    gort_chan_free(c);
}

/* Receivers and senders parked on the channel when it closes. */
struct closearg {
    gort_chan *c, *out;
};

static void close_receiver(void *arg)
{
    struct closearg *a = arg;
    int64_t v = -1;
    bool ok = gort_chan_recv(a->c, &v);
    int64_t r = ok ? 1000 : v;    /* 0 expected */
    gort_chan_send(a->out, &r);
}

static void test_close_wakes(void)
{
    for (size_t cap = 0; cap <= 2; cap += 2) {
        static struct closearg a;
        a.c = gort_chan_make(sizeof(int64_t), cap);
        a.out = gort_chan_make(sizeof(int64_t), 8);
        for (int i = 0; i < 5; i++)
            gort_go(close_receiver, &a);
        await_waiters(a.c, true, 5);
        gort_chan_close(a.c);
        for (int i = 0; i < 5; i++) {
            int64_t r = -1;
            CHECK(gort_chan_recv(a.out, &r));
            CHECKF(r == 0, "woken receiver got %lld", (long long)r);
        }
        CHECK(waiters(a.c, true) == 0);
        gort_chan_free(a.c);
        gort_chan_free(a.out);
    }
}

/* ---- A full buffer with a parked sender keeps FIFO order ------------------- */

struct orderarg {
    gort_chan *c, *done;
    int n;
};

static void order_sender(void *arg)
{
    struct orderarg *a = arg;
    for (int i = 0; i < a->n; i++)
        gort_chan_send(a->c, &i);
    gort_chan_close(a->c);
}

static void test_full_buffer_order(void)
{
    static struct orderarg a;
    a.c = gort_chan_make(sizeof(int), 3);
    a.n = 3000;
    gort_go(order_sender, &a);
    int v, want = 0;
    /* Let the sender fill the ring and park, so receives take the head and
     * move the parked sender's value into the tail. */
    await_waiters(a.c, false, 1);
    CHECK(gort_chan_len(a.c) == 3);
    while (gort_chan_recv(a.c, &v)) {
        CHECKF(v == want, "got %d want %d", v, want);
        want++;
        if (want % 7 == 0)
            gort_yield();
    }
    CHECK(want == a.n);
    gort_chan_free(a.c);
}

/* ---- Zero-size and large elements ------------------------------------------ */

static void zero_sender(void *arg)
{
    gort_chan *c = arg;
    for (int i = 0; i < 1000; i++)
        gort_chan_send(c, NULL);
    gort_chan_close(c);
}

static void test_zero_size(void)
{
    gort_chan *c = gort_chan_make(0, 3);
    CHECK(gort_chan_cap(c) == 3);
    CHECK(gort_chan_trysend(c, NULL));
    char dummy = 'x';
    CHECK(gort_chan_trysend(c, &dummy));     /* elem is ignored */
    gort_chan_send(c, NULL);
    CHECK(gort_chan_len(c) == 3);
    CHECK(!gort_chan_trysend(c, NULL));
    bool ok = false;
    CHECK(gort_chan_tryrecv(c, &dummy, &ok) && ok && dummy == 'x');
    CHECK(gort_chan_recv(c, NULL));
    CHECK(gort_chan_recv(c, NULL));
    CHECK(gort_chan_len(c) == 0);
    gort_chan_free(c);

    for (size_t cap = 0; cap <= 5; cap += 5) {
        c = gort_chan_make(0, cap);
        gort_go(zero_sender, c);
        int n = 0;
        while (gort_chan_recv(c, NULL))
            n++;
        CHECK(n == 1000);
        gort_chan_free(c);
    }
}

struct big {
    uint64_t seq;
    uint8_t bytes[248];
};

static void fill_big(struct big *b, uint64_t seq)
{
    b->seq = seq;
    for (int i = 0; i < (int)sizeof b->bytes; i++)
        b->bytes[i] = (uint8_t)(seq * 31 + (uint64_t)i);
}

static bool good_big(const struct big *b, uint64_t seq)
{
    if (b->seq != seq)
        return false;
    for (int i = 0; i < (int)sizeof b->bytes; i++)
        if (b->bytes[i] != (uint8_t)(seq * 31 + (uint64_t)i))
            return false;
    return true;
}

static void big_sender(void *arg)
{
    gort_chan *c = arg;
    struct big b;
    for (uint64_t i = 0; i < 5000; i++) {
        fill_big(&b, i);
        gort_chan_send(c, &b);
        memset(&b, 0xee, sizeof b);   /* the value was copied out */
    }
    gort_chan_close(c);
}

static void test_large(void)
{
    _Static_assert(sizeof(struct big) == 256, "256-byte element");
    size_t caps[] = {0, 1, 8};
    for (size_t k = 0; k < 3; k++) {
        gort_chan *c = gort_chan_make(sizeof(struct big), caps[k]);
        gort_go(big_sender, c);
        struct big b;
        uint64_t n = 0;
        while (gort_chan_recv(c, &b)) {
            CHECKF(good_big(&b, n), "cap %zu: element %llu corrupt", caps[k],
                   (unsigned long long)n);
            n++;
        }
        CHECK(n == 5000);
        for (size_t i = 0; i < sizeof b; i++)
            CHECK(((uint8_t *)&b)[i] == 0);
        gort_chan_free(c);
    }
}

/* ---- Ping-pong -------------------------------------------------------------- */

enum { ROUNDS = 100000 };

struct pingarg {
    gort_chan *ping, *pong;
};

static void ponger(void *arg)
{
    struct pingarg *a = arg;
    int64_t v;
    while (gort_chan_recv(a->ping, &v)) {
        v++;
        gort_chan_send(a->pong, &v);
    }
}

static void test_pingpong(void)
{
    static struct pingarg a;
    a.ping = gort_chan_make(sizeof(int64_t), 0);
    a.pong = gort_chan_make(sizeof(int64_t), 0);
    gort_go(ponger, &a);
    int64_t v = 0;
    int64_t t0 = gort_nanotime();
    for (int i = 0; i < ROUNDS; i++) {
        gort_chan_send(a.ping, &v);
        CHECK(gort_chan_recv(a.pong, &v));
    }
    int64_t t1 = gort_nanotime();
    CHECK(v == ROUNDS);
    gort_chan_close(a.ping);
    fprintf(stderr, "  GOMAXPROCS=%d ping-pong: %.0f ns per round trip\n",
            gort_gomaxprocs(), (double)(t1 - t0) / ROUNDS);
}

/* ---- NULL channels, onfree, a plain thread ------------------------------------ */

static int nil_progress;

static void nil_blocker(void *arg)
{
    int v = 0;
    if (arg)
        gort_chan_send(NULL, &v);
    else
        gort_chan_recv(NULL, &v);
    __atomic_store_n(&nil_progress, 1, __ATOMIC_RELAXED);
}

static int onfree_calls;
static void count_onfree(struct hchan *c, void *arg)
{
    CHECK(arg == &onfree_calls);
    CHECK(c->onfree == NULL);    /* cleared, so it runs once */
    onfree_calls++;
}

static void *plain_thread_send(void *arg)
{
    /* A thread that is no goroutine (like a timer firing from the
     * scheduler) may use the non-blocking forms. */
    gort_chan *c = arg;
    int64_t v = 4242;
    while (!gort_chan_trysend(c, &v))
        usleep(100);
    return NULL;
}

/* Keeps one goroutine runnable while main waits on a plain thread, which
 * the deadlock check cannot know about. */
static int spin_stop;
static void spinner(void *arg)
{
    while (!__atomic_load_n(&spin_stop, __ATOMIC_RELAXED))
        gort_yield();
}

static void test_nil_and_misc(void)
{
    int v = 5;
    bool ok = true;
    CHECK(!gort_chan_trysend(NULL, &v));
    CHECK(!gort_chan_tryrecv(NULL, &v, &ok));
    CHECK(gort_chan_len(NULL) == 0 && gort_chan_cap(NULL) == 0);
    gort_chan_free(NULL);

    gort_go(nil_blocker, NULL);
    gort_go(nil_blocker, &v);
    for (int i = 0; i < 1000; i++)
        gort_yield();
    CHECK(__atomic_load_n(&nil_progress, __ATOMIC_RELAXED) == 0);

    gort_chan *c = gort_chan_make(4, 1);
    c->onfree = count_onfree;
    c->onfreearg = &onfree_calls;
    gort_chan_free(c);
    CHECK(onfree_calls == 1);

    /* A plain thread's trysend hands off to a parked goroutine. */
    c = gort_chan_make(sizeof(int64_t), 0);
    gort_go(spinner, NULL);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, plain_thread_send, c) == 0);
    int64_t got = 0;
    CHECK(gort_chan_recv(c, &got));
    CHECK(got == 4242);
    __atomic_store_n(&spin_stop, 1, __ATOMIC_RELAXED);
    gort_syscall_enter();
    pthread_join(th, NULL);
    gort_syscall_exit();
    gort_chan_free(c);
}

/* ---- The goroutine programs ---------------------------------------------------- */

static int app_main(int argc, char **argv)
{
    test_close_semantics();
    test_close_wakes();
    test_full_buffer_order();
    test_zero_size();
    test_large();
    test_nil_and_misc();
    test_pingpong();
    test_mpmc(0);
    test_mpmc(1);
    test_mpmc(64);
    return 0;
}

static void sender_on_closed(void *arg)
{
    int v = 1;
    gort_chan_send(arg, &v);
}

static int fatal_main(int argc, char **argv)
{
    const char *mode = getenv("GORT_TEST_MODE");
    gort_chan *c = gort_chan_make(sizeof(int), 1);
    int v = 1;
    if (strcmp(mode, "closeclose") == 0) {
        gort_chan_close(c);
        gort_chan_close(c);
    } else if (strcmp(mode, "closenil") == 0) {
        gort_chan_close(NULL);
    } else if (strcmp(mode, "sendclosed") == 0) {
        gort_chan_close(c);
        gort_chan_send(c, &v);
    } else if (strcmp(mode, "trysendclosed") == 0) {
        gort_chan_close(c);
        gort_chan_trysend(c, &v);
    } else if (strcmp(mode, "sendparked") == 0) {
        /* A sender parked on a full channel dies when it is closed. */
        gort_chan_send(c, &v);
        gort_go(sender_on_closed, c);
        await_waiters(c, false, 1);
        gort_chan_close(c);
        for (;;)
            gort_yield();
    } else if (strcmp(mode, "freebusy") == 0) {
        gort_go(sender_on_closed, NULL);   /* parks on nil: not c's waiter */
        gort_chan_send(c, &v);
        gort_go(sender_on_closed, c);
        await_waiters(c, false, 1);
        gort_chan_free(c);
    }
    return 0;
}

/* ---- The driver ------------------------------------------------------------------ */

static void *plain_recv(void *arg)
{
    gort_chan_recv(arg, NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = getenv("GORT_TEST_MODE");
    if (mode != NULL && strcmp(mode, "run") == 0)
        return gort_main(app_main, argc, argv);
    if (mode != NULL && strcmp(mode, "plainrecv") == 0) {
        /* A blocking receive from a thread that is no goroutine. */
        pthread_t th;
        pthread_create(&th, NULL, plain_recv, gort_chan_make(1, 0));
        pthread_join(th, NULL);
        return 0;
    }
    if (mode != NULL)
        return gort_main(fatal_main, argc, argv);

    const char *procs[] = {"1", "2"};
    for (int i = 0; i < 2; i++) {
        expect_run("run", procs[i], 60);
        printf("ok   functional tests, GOMAXPROCS=%s\n", procs[i]);
    }
    expect_fatal("closeclose", "fatal error: close of closed channel");
    expect_fatal("closenil", "fatal error: close of nil channel");
    expect_fatal("sendclosed", "fatal error: send on closed channel");
    expect_fatal("trysendclosed", "fatal error: send on closed channel");
    expect_fatal("sendparked", "fatal error: send on closed channel");
    expect_fatal("freebusy", "channel in use");
    expect_fatal("plainrecv", "gort_chan_recv: not called from a goroutine");
    return 0;
}
