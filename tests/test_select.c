/*
 * test_select.c — select: default, fairness among ready cases, send and
 * receive cases together, NULL channel cases, wake-up by a value and by
 * close (and the losing cases' cleanup), the same channel in several cases,
 * many cases, many selects racing for the same senders, and the fatal send
 * on a closed channel.
 * gort-test: tsan
 *
 * As in test_chan.c, main() re-executes this binary per GOMAXPROCS (1, 2)
 * and per fatal case, with an alarm against deadlocks.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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

static void await_waiters(gort_chan *c, bool recv, int n)
{
    for (long i = 0; i < 10000000 && waiters(c, recv) < n; i++)
        gort_yield();
    CHECKF(waiters(c, recv) == n, "waiters %d want %d", waiters(c, recv), n);
}

static gort_select_case rcase(gort_chan *c, void *elem)
{
    return (gort_select_case){.c = c, .dir = GORT_RECV, .elem = elem};
}

static gort_select_case scase(gort_chan *c, void *elem)
{
    return (gort_select_case){.c = c, .dir = GORT_SEND, .elem = elem};
}

/* ---- default ----------------------------------------------------------------- */

static void test_default(void)
{
    CHECK(gort_select(NULL, 0, false) == -1);

    gort_chan *a = gort_chan_make(sizeof(int), 1);
    gort_chan *b = gort_chan_make(sizeof(int), 0);
    int va = -1, vb = -1;
    gort_select_case cs[2] = {rcase(a, &va), rcase(b, &vb)};
    CHECK(gort_select(cs, 2, false) == -1);
    CHECK(va == -1 && vb == -1);

    int x = 9;
    gort_chan_send(a, &x);
    cs[0].ok = false;
    CHECK(gort_select(cs, 2, false) == 0);
    CHECK(cs[0].ok && va == 9);
    CHECK(gort_select(cs, 2, false) == -1);

    /* Send cases: a has room, b (unbuffered) has no receiver. */
    x = 5;
    gort_select_case ss[2] = {scase(b, &x), scase(a, &x)};
    CHECK(gort_select(ss, 2, false) == 1);
    CHECK(gort_chan_len(a) == 1);
    CHECK(gort_select(ss, 2, false) == -1);    /* a full now */

    /* Only NULL channels: never ready. */
    gort_select_case ns[2] = {rcase(NULL, &va), scase(NULL, &x)};
    CHECK(gort_select(ns, 2, false) == -1);

    /* A NULL case next to a ready one. */
    gort_select_case mix[2] = {rcase(NULL, &vb), rcase(a, &va)};
    va = 0;
    CHECK(gort_select(mix, 2, false) == 1);
    CHECK(mix[1].ok && va == 5);

    /* A closed channel is ready to receive: zero, ok false. */
    gort_chan_close(a);
    va = 33;
    cs[0].ok = true;
    CHECK(gort_select(cs, 2, false) == 0);
    CHECK(!cs[0].ok && va == 0);
    CHECK(gort_select(cs, 2, true) == 0);      /* blocking too */
    gort_chan_free(a);
    gort_chan_free(b);
}

/* ---- fairness ------------------------------------------------------------------ */

enum { FAIR_N = 20000 };

static void test_fairness(void)
{
    gort_chan *a = gort_chan_make(sizeof(int), 1);
    gort_chan *b = gort_chan_make(sizeof(int), 1);
    int one = 1, v;
    gort_chan_send(a, &one);
    gort_chan_send(b, &one);
    gort_select_case cs[2] = {rcase(a, &v), rcase(b, &v)};
    int count[2] = {0, 0};
    for (int i = 0; i < FAIR_N; i++) {
        int k = gort_select(cs, 2, true);
        CHECK(k == 0 || k == 1);
        count[k]++;
        gort_chan_send(cs[k].c, &one);    /* keep both always ready */
    }
    for (int k = 0; k < 2; k++)
        CHECKF(count[k] > FAIR_N * 2 / 5 && count[k] < FAIR_N * 3 / 5,
               "case %d chosen %d of %d times", k, count[k], FAIR_N);

    /* Three ready cases, one of them a send. */
    gort_chan *c = gort_chan_make(sizeof(int), FAIR_N);
    gort_select_case c3[3] = {rcase(a, &v), rcase(b, &v), scase(c, &one)};
    int count3[3] = {0, 0, 0};
    for (int i = 0; i < FAIR_N; i++) {
        int k = gort_select(c3, 3, false);
        CHECK(k >= 0 && k < 3);
        count3[k]++;
        if (k < 2)
            gort_chan_send(c3[k].c, &one);
    }
    for (int k = 0; k < 3; k++)
        CHECKF(count3[k] > FAIR_N * 4 / 15 && count3[k] < FAIR_N * 6 / 15,
               "3 cases: case %d chosen %d of %d times", k, count3[k], FAIR_N);
    CHECK(gort_chan_len(c) == (size_t)count3[2]);
    gort_chan_free(a);
    gort_chan_free(b);
    gort_chan_free(c);
}

/* ---- A pump: send and receive cases in one select, NULL to disable -------------- */

enum { PUMP_N = 20000 };

struct pumparg {
    gort_chan *in, *out;
};

static void producer(void *arg)
{
    struct pumparg *a = arg;
    for (int i = 0; i < PUMP_N; i++)
        gort_chan_send(a->in, &i);
    gort_chan_close(a->in);
}

/* Moves values from in to out through a private queue, with one select
 * that receives (while in is open) and sends (while the queue has one). */
static void pump(void *arg)
{
    struct pumparg *a = arg;
    static int q[PUMP_N];
    int head = 0, tail = 0, inv = 0, outv = 0;
    gort_chan *in = a->in;
    for (;;) {
        bool have = head < tail;
        if (in == NULL && !have)
            break;
        if (have)
            outv = q[head];
        gort_select_case cs[2] = {
            rcase(in, &inv),
            scase(have ? a->out : NULL, &outv),
        };
        int k = gort_select(cs, 2, true);
        if (k == 0) {
            if (cs[0].ok)
                q[tail++] = inv;
            else
                in = NULL;      /* closed: stop receiving */
        } else {
            CHECK(k == 1);
            head++;
        }
    }
    gort_chan_close(a->out);
}

static void test_pump(void)
{
    size_t caps[2] = {0, 16};
    for (int t = 0; t < 2; t++) {
        static struct pumparg a;
        a.in = gort_chan_make(sizeof(int), caps[t]);
        a.out = gort_chan_make(sizeof(int), caps[t]);
        gort_go(producer, &a);
        gort_go(pump, &a);
        int v, want = 0;
        while (gort_chan_recv(a.out, &v)) {
            CHECKF(v == want, "pump: got %d want %d", v, want);
            want++;
        }
        CHECK(want == PUMP_N);
        gort_chan_free(a.in);
        gort_chan_free(a.out);
    }
}

/* ---- Parked selects woken by a value, by close; losers cleaned up ---------------- */

struct waitarg {
    gort_chan *c[3];
    gort_chan *result;
    int dir;
};

/* Selects (blocking) on three channels and reports {index, ok, value}. */
static void selector(void *arg)
{
    struct waitarg *a = arg;
    int v[3] = {-1, -1, -1}, sv = 77;
    gort_select_case cs[3];
    for (int i = 0; i < 3; i++)
        cs[i] = a->dir == GORT_RECV ? rcase(a->c[i], &v[i]) : scase(a->c[i], &sv);
    int k = gort_select(cs, 3, true);
    int r[3] = {k, cs[k].ok, a->dir == GORT_RECV ? v[k] : 0};
    gort_chan_send(a->result, r);
}

static void test_wakeups(void)
{
    static struct waitarg a;
    for (int i = 0; i < 3; i++)
        a.c[i] = gort_chan_make(sizeof(int), i == 2 ? 1 : 0);
    a.result = gort_chan_make(3 * sizeof(int), 1);
    int r[3];

    /* Woken by a send on the middle channel. */
    a.dir = GORT_RECV;
    gort_go(selector, &a);
    for (int i = 0; i < 3; i++)
        await_waiters(a.c[i], true, 1);
    int x = 123;
    gort_chan_send(a.c[1], &x);
    CHECK(gort_chan_recv(a.result, r));
    CHECK(r[0] == 1 && r[1] == 1 && r[2] == 123);
    for (int i = 0; i < 3; i++)
        CHECKF(waiters(a.c[i], true) == 0, "stale sudog on channel %d", i);

    /* Woken by close. */
    gort_go(selector, &a);
    for (int i = 0; i < 3; i++)
        await_waiters(a.c[i], true, 1);
    gort_chan_close(a.c[0]);
    CHECK(gort_chan_recv(a.result, r));
    CHECK(r[0] == 0 && r[1] == 0 && r[2] == 0);
    for (int i = 0; i < 3; i++)
        CHECK(waiters(a.c[i], true) == 0);
    gort_chan_free(a.c[0]);

    /* Send cases woken by a receiver; c[0] replaced by a NULL case, c[2]'s
     * buffer filled first so that it cannot take the value. */
    a.c[0] = NULL;
    x = 1;
    gort_chan_send(a.c[2], &x);
    a.dir = GORT_SEND;
    gort_go(selector, &a);
    await_waiters(a.c[1], false, 1);
    await_waiters(a.c[2], false, 1);
    int got = 0;
    CHECK(gort_chan_recv(a.c[1], &got));
    CHECK(got == 77);
    CHECK(gort_chan_recv(a.result, r));
    CHECK(r[0] == 1);
    CHECK(waiters(a.c[1], false) == 0 && waiters(a.c[2], false) == 0);
    CHECK(gort_chan_len(a.c[2]) == 1);

    /* A receive from c[2]'s full buffer lets the parked select's send in
     * (the sender's value moves into the ring's tail). */
    gort_go(selector, &a);
    await_waiters(a.c[2], false, 1);
    CHECK(gort_chan_recv(a.c[2], &got) && got == 1);
    CHECK(gort_chan_recv(a.result, r));
    CHECK(r[0] == 2);
    CHECK(gort_chan_len(a.c[2]) == 1);
    CHECK(gort_chan_recv(a.c[2], &got) && got == 77);
    CHECK(waiters(a.c[1], false) == 0);

    gort_chan_free(a.c[1]);
    gort_chan_free(a.c[2]);
    gort_chan_free(a.result);
}

/* ---- Many selecting receivers racing for many senders ---------------------------- */

enum { RACE_SEND = 4, RACE_RECV = 4, RACE_PER = 10000,
       RACE_TOTAL = RACE_SEND * RACE_PER };

struct racearg {
    gort_chan *c[3];
    gort_chan *done;
    uint8_t *seen;
    int id;
};

static void race_sender(void *arg)
{
    struct racearg *a = arg;
    uint64_t s = (uint64_t)a->id * 7919 + 1;
    for (int i = 0; i < RACE_PER; i++) {
        int v = a->id * RACE_PER + i;
        gort_chan_send(a->c[rnd(&s) % 3], &v);
    }
    int64_t r = -1;
    gort_chan_send(a->done, &r);
}

static void race_receiver(void *arg)
{
    struct racearg *a = arg;
    int v[3];
    gort_select_case cs[3] = {rcase(a->c[0], &v[0]), rcase(a->c[1], &v[1]),
                              rcase(a->c[2], &v[2])};
    int64_t n = 0;
    int open = 3;
    while (open > 0) {
        int k = gort_select(cs, 3, true);
        if (!cs[k].ok) {
            cs[k].c = NULL;     /* closed: a NULL case is never chosen */
            open--;
            continue;
        }
        CHECK(v[k] >= 0 && v[k] < RACE_TOTAL);
        __atomic_fetch_add(&a->seen[v[k]], 1, __ATOMIC_RELAXED);
        n++;
    }
    gort_chan_send(a->done, &n);
}

static void test_race(void)
{
    static struct racearg args[RACE_SEND + RACE_RECV];
    gort_chan *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = gort_chan_make(sizeof(int), i == 0 ? 0 : (size_t)i * 4);
    gort_chan *done = gort_chan_make(sizeof(int64_t), 0);
    uint8_t *seen = calloc(RACE_TOTAL, 1);
    CHECK(seen != NULL);
    for (int i = 0; i < RACE_SEND + RACE_RECV; i++) {
        args[i] = (struct racearg){{c[0], c[1], c[2]}, done, seen,
                                   i < RACE_RECV ? i : i - RACE_RECV};
        gort_go(i < RACE_RECV ? race_receiver : race_sender, &args[i]);
    }
    for (int i = 0; i < RACE_SEND; i++) {
        int64_t r;
        CHECK(gort_chan_recv(done, &r) && r == -1);
    }
    for (int i = 0; i < 3; i++)
        gort_chan_close(c[i]);
    int64_t total = 0;
    for (int i = 0; i < RACE_RECV; i++) {
        int64_t r;
        CHECK(gort_chan_recv(done, &r) && r >= 0);
        total += r;
    }
    CHECK(total == RACE_TOTAL);
    for (int v = 0; v < RACE_TOTAL; v++)
        CHECKF(seen[v] == 1, "value %d seen %u times", v, seen[v]);
    for (int i = 0; i < 3; i++) {
        CHECK(waiters(c[i], true) == 0 && waiters(c[i], false) == 0);
        gort_chan_free(c[i]);
    }
    gort_chan_free(done);
    free(seen);
}

/* ---- One channel, both directions, two selecting goroutines ---------------------- */

enum { BOTH_N = 20000 };

struct botharg {
    gort_chan *c, *done;
    int id;
};

static void both_dirs(void *arg)
{
    struct botharg *a = arg;
    int sent = 0, rcvd = 0, in = 0, out = a->id;
    for (int i = 0; i < BOTH_N; i++) {
        /* The same channel twice, plus a NULL case: locked once. */
        gort_select_case cs[3] = {scase(a->c, &out), rcase(NULL, &in), rcase(a->c, &in)};
        int k = gort_select(cs, 3, true);
        if (k == 0) {
            sent++;
        } else {
            CHECK(k == 2 && cs[2].ok);
            CHECK(in == 1 - a->id);    /* from the other goroutine */
            rcvd++;
        }
    }
    int64_t r = (int64_t)sent << 32 | (uint32_t)rcvd;
    gort_chan_send(a->done, &r);
}

static void test_both_dirs(void)
{
    static struct botharg a[2];
    gort_chan *c = gort_chan_make(sizeof(int), 0);
    gort_chan *done = gort_chan_make(sizeof(int64_t), 2);
    for (int i = 0; i < 2; i++) {
        a[i] = (struct botharg){c, done, i};
        gort_go(both_dirs, &a[i]);
    }
    int64_t r[2];
    CHECK(gort_chan_recv(done, &r[0]) && gort_chan_recv(done, &r[1]));
    /* Every send met the other's receive. */
    CHECK((r[0] >> 32) == (r[1] & 0xffffffff));
    CHECK((r[1] >> 32) == (r[0] & 0xffffffff));
    CHECK((r[0] >> 32) + (r[0] & 0xffffffff) == BOTH_N);
    gort_chan_free(c);
    gort_chan_free(done);
}

/* ---- Many cases (order arrays on the heap), duplicates ---------------------------- */

static void test_many_cases(void)
{
    enum { NC = 40, NCH = 10 };
    gort_chan *ch[NCH];
    for (int i = 0; i < NCH; i++)
        ch[i] = gort_chan_make(sizeof(int), 4);
    int v[NC];
    gort_select_case cs[NC];
    for (int i = 0; i < NC; i++)
        cs[i] = rcase(i % 7 == 3 ? NULL : ch[i % NCH], &v[i]);
    CHECK(gort_select(cs, NC, false) == -1);
    int hits[NC] = {0};
    for (int round = 0; round < 2000; round++) {
        int which = round % NCH;
        gort_chan_send(ch[which], &round);
        int k = gort_select(cs, NC, true);
        CHECK(k >= 0 && k < NC && cs[k].c == ch[which]);
        CHECK(v[k] == round && cs[k].ok);
        hits[k]++;
    }
    /* Every non-NULL case got its turn (ch[i] appears in 4 cases). */
    for (int i = 0; i < NC; i++)
        CHECKF((i % 7 == 3) == (hits[i] == 0), "case %d hit %d times", i, hits[i]);
    for (int i = 0; i < NCH; i++)
        gort_chan_free(ch[i]);
}

/* ---- select {} and an all-NULL blocking select never return -------------------- */

static int forever_returned;

static void forever(void *arg)
{
    if (arg) {
        gort_select_case cs[1] = {rcase(NULL, NULL)};
        gort_select(cs, 1, true);
    } else {
        gort_select(NULL, 0, true);
    }
    __atomic_store_n(&forever_returned, 1, __ATOMIC_RELAXED);
}

/* Close then free a channel while a select on it is being woken: the
 * select relocks every channel it named once more (pass 3), so the free
 * must wait for it rather than hand the memory back under it. */
static gort_chan *cf_done, *cf_other;
static int cf_stage;

static void cf_selector(void *arg)
{
    (void)arg;
    gort_select_case cs[2] = {
        {.c = cf_done, .dir = GORT_RECV},
        {.c = cf_other, .dir = GORT_RECV},
    };
    int k = gort_select(cs, 2, true);
    CHECK(k == 0 && !cs[0].ok);
    __atomic_store_n(&cf_stage, 2, __ATOMIC_SEQ_CST);
}

static void test_close_free(void)
{
    for (int round = 0; round < 200; round++) {
        cf_done = gort_chan_make(0, 0);
        cf_other = gort_chan_make(0, 0);
        __atomic_store_n(&cf_stage, 0, __ATOMIC_SEQ_CST);
        gort_go(cf_selector, NULL);
        /* Until the select is parked on both channels (pass 2): freeing
         * a channel a goroutine is still about to use is the caller's
         * error, as in C generally. */
        for (;;) {
            spin_lock(&cf_done->lock);
            uint32_t parked = cf_done->selects;
            spin_unlock(&cf_done->lock);
            if (parked)
                break;
            gort_yield();
        }
        for (int i = 0; i < round % 4; i++)
            gort_yield();
        gort_chan_close(cf_done);
        size_t sz = gort_malloc_usable_size(cf_done);
        gort_chan_free(cf_done);
        /* Reuse the memory at once, filled with junk, as a program would. */
        unsigned char *junk = gort_malloc(sz);
        memset(junk, 0xff, sz);
        while (__atomic_load_n(&cf_stage, __ATOMIC_SEQ_CST) != 2)
            gort_yield();
        gort_free(junk);
        gort_chan_free(cf_other);
    }
}

static void test_forever(void)
{
    gort_go(forever, NULL);
    gort_go(forever, &forever_returned);
    for (int i = 0; i < 1000; i++)
        gort_yield();
    CHECK(__atomic_load_n(&forever_returned, __ATOMIC_RELAXED) == 0);
}

static int app_main(int argc, char **argv)
{
    test_default();
    test_fairness();
    test_pump();
    test_wakeups();
    test_race();
    test_both_dirs();
    test_many_cases();
    test_close_free();
    test_forever();
    return 0;
}

/* ---- Fatal cases ---------------------------------------------------------------- */

static void parked_sender(void *arg)
{
    int v = 1;
    gort_select_case cs[2] = {scase(arg, &v), rcase(NULL, NULL)};
    gort_select(cs, 2, true);
}

static int fatal_main(int argc, char **argv)
{
    const char *mode = getenv("GORT_TEST_MODE");
    gort_chan *c = gort_chan_make(sizeof(int), 0);
    int v = 1;
    if (strcmp(mode, "sendclosed") == 0) {
        gort_chan_close(c);
        gort_select_case cs[1] = {scase(c, &v)};
        gort_select(cs, 1, false);
    } else if (strcmp(mode, "sendparked") == 0) {
        gort_go(parked_sender, c);
        await_waiters(c, false, 1);
        gort_chan_close(c);
        for (;;)
            gort_yield();
    } else if (strcmp(mode, "baddir") == 0) {
        gort_select_case cs[1] = {{.c = c, .dir = 3, .elem = &v}};
        gort_select(cs, 1, false);
    }
    return 0;
}

/* ---- The driver ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    const char *mode = getenv("GORT_TEST_MODE");
    if (mode != NULL && strcmp(mode, "run") == 0)
        return gort_main(app_main, argc, argv);
    if (mode != NULL)
        return gort_main(fatal_main, argc, argv);

    const char *procs[] = {"1", "2"};
    for (int i = 0; i < 2; i++) {
        expect_run("run", procs[i], 60);
        printf("ok   select tests, GOMAXPROCS=%s\n", procs[i]);
    }
    expect_fatal("sendclosed", "fatal error: send on closed channel");
    expect_fatal("sendparked", "fatal error: send on closed channel");
    expect_fatal("baddir", "gort_select: case direction");
    return 0;
}
