/*
 * test_deadlock.c — the deadlock check: when every goroutine is blocked
 * for good, the program stops with Go's "fatal error: all goroutines are
 * asleep - deadlock!", exit status 2 and a goroutine list ("goroutine 1
 * [chan receive]:"); waits that something will end (a sleep, a timer, a
 * blocking system call, I/O that a plain thread will satisfy) are not
 * deadlocks.
 *
 * main() is a driver: each case runs in a child (this binary re-executed
 * with GORT_TEST_MODE and GOMAXPROCS set, 1 and 2), with stderr in a pipe
 * and a time limit, so a missed deadlock fails as a time-out.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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

/* ---- Child side: the deadlocks ---------------------------------------------------- */

static const char *mode;

/* main waits on a channel nobody will ever send on. */
static int dl_chanrecv(void)
{
    gort_chan *c = gort_chan_make(sizeof(int), 0);
    int v;
    gort_chan_recv(c, &v);
    return 0;
}

/* Two goroutines each wait for the other; main waits for both. */
static gort_chan *pair_a, *pair_b;
static gort_waitgroup pair_wg;

static void pair_left(void *arg)
{
    (void)arg;
    int v = 1;
    gort_chan_recv(pair_a, &v);
    gort_chan_send(pair_b, &v);
    gort_waitgroup_done(&pair_wg);
}

static void pair_right(void *arg)
{
    (void)arg;
    int v = 2;
    gort_chan_recv(pair_b, &v);
    gort_chan_send(pair_a, &v);
    gort_waitgroup_done(&pair_wg);
}

static int dl_pair(void)
{
    pair_a = gort_chan_make(sizeof(int), 0);
    pair_b = gort_chan_make(sizeof(int), 0);
    gort_waitgroup_add(&pair_wg, 2);
    gort_go(pair_left, NULL);
    gort_go(pair_right, NULL);
    gort_waitgroup_wait(&pair_wg);
    return 0;
}

/* After real work on every P (spinning Ms, stealing, idle Ms), main blocks
 * on a nil channel. */
static gort_chan *aw_ch;
static gort_waitgroup aw_wg;

static void aw_echo(void *arg)
{
    (void)arg;
    int v;
    while (gort_chan_recv(aw_ch, &v))
        ;
    gort_waitgroup_done(&aw_wg);
}

static int dl_afterwork(void)
{
    aw_ch = gort_chan_make(sizeof(int), 4);
    gort_waitgroup_add(&aw_wg, 100);
    for (int i = 0; i < 100; i++)
        gort_go(aw_echo, NULL);
    for (int i = 0; i < 100000; i++)
        gort_chan_send(aw_ch, &i);
    gort_chan_close(aw_ch);
    gort_waitgroup_wait(&aw_wg);
    gort_sleep(5000000);
    gort_chan_recv(NULL, NULL);
    return 0;
}

static int dl_selectnone(void)
{
    gort_select(NULL, 0, true);
    return 0;
}

/* A thread-locked main blocks: its M sleeps wired to it. */
static int dl_locked(void)
{
    gort_lock_os_thread();
    gort_chan *c = gort_chan_make(0, 0);
    gort_chan_recv(c, NULL);
    return 0;
}

static int dl_mutex(void)
{
    gort_mutex mu = GORT_MUTEX_INIT;
    gort_mutex_lock(&mu);
    gort_mutex_lock(&mu);
    return 0;
}

/* A timer that was stopped is no reason to wait. */
static int dl_stoppedtimer(void)
{
    gort_timer *t = gort_timer_new(60 * 1000000000LL);
    CHECK(gort_timer_stop(t));
    gort_chan *c = gort_chan_make(0, 0);
    gort_chan_recv(c, NULL);
    return 0;
}

/* main ends itself with Goexit; once the other goroutine is done, nothing
 * is left to run: Go reports "no goroutines (main called runtime.Goexit)". */
static void short_sleeper(void *arg)
{
    (void)arg;
    gort_sleep(20000000);
}

static int dl_goexitmain(void)
{
    gort_go(short_sleeper, NULL);
    gort_goexit();
}

/* ---- Child side: waits that are not deadlocks ------------------------------------- */

static int ok_sleep(void)
{
    int64_t t0 = gort_nanotime();
    gort_sleep(100000000);
    int64_t dt = gort_nanotime() - t0;
    CHECKF(dt >= 100000000, "slept %lld ns", (long long)dt);
    return 0;
}

static gort_chan *sg_ch;
static void sleepy_sender(void *arg)
{
    (void)arg;
    gort_sleep(100000000);
    int v = 7;
    gort_chan_send(sg_ch, &v);
}

/* main waits on a channel; the only other goroutine sleeps, then sends. */
static int ok_sleepsend(void)
{
    sg_ch = gort_chan_make(sizeof(int), 0);
    gort_go(sleepy_sender, NULL);
    int v = 0;
    CHECK(gort_chan_recv(sg_ch, &v) && v == 7);
    return 0;
}

static void *late_writer(void *arg)
{
    int fd = *(int *)arg;
    usleep(100000);
    CHECK(write(fd, "hello", 5) == 5);
    return NULL;
}

/* main waits in gort_read on a pipe that a plain thread writes after
 * 100 ms. */
static int ok_pipe(void)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, late_writer, &fds[1]) == 0);
    char buf[16];
    int64_t t0 = gort_nanotime();
    ssize_t n = gort_read(fds[0], buf, sizeof buf);
    CHECKF(n == 5 && memcmp(buf, "hello", 5) == 0, "read %zd", n);
    CHECK(gort_nanotime() - t0 >= 90000000);
    gort_syscall_enter();
    pthread_join(th, NULL);
    gort_syscall_exit();
    return 0;
}

static gort_chan *sc_ch;
static void syscall_sender(void *arg)
{
    (void)arg;
    gort_syscall_enter();
    usleep(100000);
    gort_syscall_exit();
    int v = 9;
    gort_chan_send(sc_ch, &v);
}

/* main waits on a channel; the only other goroutine is in a blocking
 * system call. */
static int ok_syscall(void)
{
    sc_ch = gort_chan_make(sizeof(int), 0);
    gort_go(syscall_sender, NULL);
    int v = 0;
    CHECK(gort_chan_recv(sc_ch, &v) && v == 9);
    return 0;
}

static void timer_fn(void *arg)
{
    int v = 11;
    gort_chan_send(arg, &v);
}

/* main waits on a channel that an AfterFunc goroutine will send on. */
static int ok_afterfunc(void)
{
    gort_chan *c = gort_chan_make(sizeof(int), 0);
    gort_timer *t = gort_after_func(100000000, timer_fn, c);
    int v = 0;
    CHECK(gort_chan_recv(c, &v) && v == 11);
    gort_timer_free(t);
    return 0;
}

static int app_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static const struct {
        const char *name;
        int (*fn)(void);
    } modes[] = {
        {"chanrecv", dl_chanrecv},   {"pair", dl_pair},         {"afterwork", dl_afterwork},
        {"selectnone", dl_selectnone}, {"locked", dl_locked},   {"mutex", dl_mutex},
        {"stoppedtimer", dl_stoppedtimer}, {"goexitmain", dl_goexitmain},
        {"sleep", ok_sleep},         {"sleepsend", ok_sleepsend}, {"pipe", ok_pipe},
        {"syscall", ok_syscall},     {"afterfunc", ok_afterfunc},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(mode, modes[i].name) == 0)
            return modes[i].fn();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 1;
}

/* ---- The driver ---------------------------------------------------------------------- */

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static const char deadmsg[] = "fatal error: all goroutines are asleep - deadlock!";

/* The child must exit with status 2, stderr starting with Go's message and
 * containing each of want[] (NULL-terminated) the given number of times. */
static void expect_deadlock_msg(const char *m, const char *procs, const char *msg,
                                const char *const *want, const int *times)
{
    if (!selected(m))
        return;
    char env0[32];
    snprintf(env0, sizeof env0, "GOMAXPROCS=%s", procs);
    const char *env[] = {env0, NULL};
    struct child ch;
    run_child(&ch, m, env, 5);
    bool ok = exited(&ch, 2) && strncmp(ch.err, msg, strlen(msg)) == 0;
    for (int i = 0; ok && want[i]; i++)
        ok = count(ch.err, want[i]) == times[i];
    if (!ok) {
        show_child(m, &ch);
        FAIL("%s, GOMAXPROCS=%s: want exit status 2 and the deadlock report", m, procs);
    } else {
        printf("ok   deadlock %-12s GOMAXPROCS=%s (%.2fs)\n", m, procs, ch.secs);
    }
    free(ch.err);
}

static void expect_deadlock(const char *m, const char *procs, const char *const *want,
                            const int *times)
{
    expect_deadlock_msg(m, procs, deadmsg, want, times);
}

static void expect_fine(const char *m, const char *procs)
{
    if (!selected(m))
        return;
    char env0[32];
    snprintf(env0, sizeof env0, "GOMAXPROCS=%s", procs);
    const char *env[] = {env0, NULL};
    struct child ch;
    run_child(&ch, m, env, 5);
    if (!exited(&ch, 0) || strstr(ch.err, "deadlock")) {
        show_child(m, &ch);
        FAIL("%s, GOMAXPROCS=%s: not a deadlock, want exit status 0", m, procs);
    } else {
        printf("ok   no deadlock %-9s GOMAXPROCS=%s (%.2fs)\n", m, procs, ch.secs);
    }
    free(ch.err);
}

int main(int argc, char **argv)
{
    mode = getenv("GORT_TEST_MODE");
    if (mode)
        return gort_main(app_main, argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);

    static const char *const procs[] = {"1", "2"};
    for (int i = 0; i < 2; i++) {
        const char *p = procs[i];
        {
            const char *w[] = {"goroutine 1 [chan receive]:", "\ngoroutine ", NULL};
            const int n[] = {1, 1};
            expect_deadlock("chanrecv", p, w, n);
        }
        {
            const char *w[] = {"goroutine 1 [semacquire]:", "[chan receive]:", "\ngoroutine ",
                               NULL};
            const int n[] = {1, 2, 3};
            expect_deadlock("pair", p, w, n);
        }
        {
            const char *w[] = {"goroutine 1 [chan receive (nil chan)]:", "\ngoroutine ", NULL};
            const int n[] = {1, 1};
            expect_deadlock("afterwork", p, w, n);
        }
        {
            const char *w[] = {"goroutine 1 [select (no cases)]:", NULL};
            const int n[] = {1};
            expect_deadlock("selectnone", p, w, n);
        }
        {
            const char *w[] = {"goroutine 1 [chan receive]:", NULL};
            const int n[] = {1};
            expect_deadlock("locked", p, w, n);
        }
        {
            const char *w[] = {"goroutine 1 [sync.Mutex.Lock]:", NULL};
            const int n[] = {1};
            expect_deadlock("mutex", p, w, n);
        }
        if (i == 0) {
            /* (With two Ps an idle M may already sleep in the poller until
             * the timer's time, and the check waits for it, as Go's does.) */
            const char *w[] = {"goroutine 1 [chan receive]:", NULL};
            const int n[] = {1};
            expect_deadlock("stoppedtimer", p, w, n);
        }
        {
            const char *w[] = {NULL};
            expect_deadlock_msg("goexitmain", p,
                                "fatal error: no goroutines (main called runtime.Goexit) - deadlock!",
                                w, NULL);
        }
        expect_fine("sleep", p);
        expect_fine("sleepsend", p);
        expect_fine("pipe", p);
        expect_fine("syscall", p);
        expect_fine("afterfunc", p);
    }
    if (failures)
        fprintf(stderr, "%d case(s) failed\n", failures);
    return failures != 0;
}
