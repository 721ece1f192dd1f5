/*
 * test_netpoll.c — goroutine I/O through the netpoller.
 * gort-test: tsan
 *
 *   - a TCP echo server on 127.0.0.1 (port 0) with 300 client goroutines
 *     sending 20 messages each, every echo compared byte for byte;
 *   - a read deadline that expires with ETIMEDOUT at about the right time,
 *     a deadline already past, one moved later while a reader waits, and a
 *     write deadline on a full pipe;
 *   - gort_close waking a goroutine blocked in gort_read (EBADF);
 *   - 1 MiB through a pipe (64 KiB of buffer) between two goroutines, so
 *     both sides park on EAGAIN many times;
 *   - connect to a closed port (ECONNREFUSED), and a regular file, which
 *     epoll refuses, served by plain blocking calls.
 *
 * main() re-executes this binary under GOMAXPROCS=2 and GOMAXPROCS=1, each
 * child with an alarm so that a lost wake-up fails fast.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gort.h"
#include "check.h"
#include "child.h"
#include "sched/runtime2.h"

#define MS 1000000LL

/* errno is thread-local and glibc declares __errno_location const, so the
 * compiler may reuse one &errno across a gort call that parked the goroutine
 * and resumed it on another thread.  The test reads errno through this
 * opaque helper. */
static __attribute__((noinline)) int gerr(void)
{
    __asm__ volatile("" ::: "memory");
    return errno;
}

/* ---- Echo server ------------------------------------------------------------ */

enum { NCLIENTS = 300, NMSG = 20, MAXMSG = 8192 };

static gort_waitgroup conn_wg;   /* server-side connection goroutines */
static uint32_t conns_served;

static void echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = gort_read(fd, buf, sizeof buf);
        CHECKF(n >= 0, "server read: %s", strerror(gerr()));
        if (n == 0)
            break;
        CHECKF(gort_write(fd, buf, (size_t)n) == n, "server write: %s", strerror(gerr()));
    }
    CHECK(gort_close(fd) == 0);
    __atomic_add_fetch(&conns_served, 1, __ATOMIC_SEQ_CST);
    gort_waitgroup_done(&conn_wg);
}

static int listen_fd;
static gort_waitgroup accept_wg;
static int accept_errno;

static void acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int fd = gort_accept(listen_fd, (struct sockaddr *)&peer, &len);
        if (fd < 0) {
            accept_errno = gerr();
            break;
        }
        CHECK(len == sizeof peer && peer.sin_family == AF_INET);
        int fl = fcntl(fd, F_GETFL);
        CHECK(fl & O_NONBLOCK);
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        gort_waitgroup_add(&conn_wg, 1);
        gort_go(echo_conn, (void *)(intptr_t)fd);
    }
    gort_waitgroup_done(&accept_wg);
}

static struct sockaddr_in server_addr;
static gort_waitgroup client_wg;
static uint32_t echoes_ok;

static void fill(char *p, size_t n, int client, int msg)
{
    uint64_t s = (uint64_t)client * 1000003u + (uint64_t)msg * 7919u + 1;
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(rnd(&s) >> 56);
}

static void client(void *arg)
{
    int id = (int)(intptr_t)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    CHECKF(gort_connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) == 0,
           "connect: %s", strerror(gerr()));
    char *out = malloc(MAXMSG), *in = malloc(MAXMSG);
    CHECK(out != NULL && in != NULL);
    for (int m = 0; m < NMSG; m++) {
        /* Mostly small messages; every client sends one of 8 KiB. */
        size_t n = m == id % NMSG ? MAXMSG : 1 + (size_t)((id * 31 + m * 17) % 200);
        fill(out, n, id, m);
        CHECKF(gort_write(fd, out, n) == (ssize_t)n, "client write: %s", strerror(gerr()));
        size_t got = 0;
        while (got < n) {
            ssize_t r = gort_read(fd, in + got, n - got);
            CHECKF(r > 0, "client read: %zd %s", r, strerror(gerr()));
            got += (size_t)r;
        }
        CHECKF(memcmp(in, out, n) == 0, "client %d message %d echoed wrong", id, m);
        __atomic_add_fetch(&echoes_ok, 1, __ATOMIC_SEQ_CST);
    }
    free(out);
    free(in);
    CHECK(gort_close(fd) == 0);
    gort_waitgroup_done(&client_wg);
}

static void test_echo(void)
{
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(listen_fd >= 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&server_addr, 0, sizeof server_addr);
    server_addr.sin_family = AF_INET;
    server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    server_addr.sin_port = 0;
    CHECK(bind(listen_fd, (struct sockaddr *)&server_addr, sizeof server_addr) == 0);
    CHECK(listen(listen_fd, 1024) == 0);
    socklen_t len = sizeof server_addr;
    CHECK(getsockname(listen_fd, (struct sockaddr *)&server_addr, &len) == 0);

    conns_served = echoes_ok = 0;
    gort_waitgroup_add(&accept_wg, 1);
    gort_go(acceptor, NULL);
    int64_t t0 = gort_nanotime();
    gort_waitgroup_add(&client_wg, NCLIENTS);
    for (int i = 0; i < NCLIENTS; i++)
        gort_go(client, (void *)(intptr_t)i);
    gort_waitgroup_wait(&client_wg);
    int64_t el = gort_nanotime() - t0;
    CHECK(echoes_ok == NCLIENTS * NMSG);
    gort_waitgroup_wait(&conn_wg);
    CHECK(conns_served == NCLIENTS);
    /* Closing the listener wakes the acceptor parked in gort_accept. */
    CHECK(gort_close(listen_fd) == 0);
    gort_waitgroup_wait(&accept_wg);
    CHECKF(accept_errno == EBADF, "accept after close: %s", strerror(accept_errno));
    printf("echo: %d clients x %d messages in %.1f ms (%.1f us per round trip), GOMAXPROCS=%d\n",
           NCLIENTS, NMSG, el / 1e6, el / 1e3 / (NCLIENTS * NMSG), gort_gomaxprocs());
}

/* ---- Deadlines ---------------------------------------------------------------- */

static int dl_fd;

static void move_deadline(void *arg)
{
    (void)arg;
    gort_sleep(10 * MS);
    CHECK(gort_fd_set_deadline(dl_fd, gort_nanotime() + 90 * MS, 0) == 0);
}

static void test_deadlines(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    char c;

    /* Expires with ETIMEDOUT, about on time. */
    int64_t t0 = gort_nanotime();
    CHECK(gort_fd_set_deadline(sv[0], t0 + 50 * MS, 0) == 0);
    ssize_t r = gort_read(sv[0], &c, 1);
    int64_t el = gort_nanotime() - t0;
    CHECKF(r == -1 && gerr() == ETIMEDOUT, "r=%zd gerr()=%s", r, strerror(gerr()));
    printf("read deadline of 50 ms expired after %.2f ms\n", el / 1e6);
    CHECKF(el >= 50 * MS && el < 550 * MS, "deadline expired after %lld ns", (long long)el);

    /* Still expired: fails at once, even with data there (as Go). */
    CHECK(write(sv[1], "x", 1) == 1);
    r = gort_read(sv[0], &c, 1);
    CHECK(r == -1 && gerr() == ETIMEDOUT);
    /* Cleared: the byte is read. */
    CHECK(gort_fd_set_deadline(sv[0], 0, 0) == 0);
    CHECK(gort_read(sv[0], &c, 1) == 1 && c == 'x');

    /* A deadline in the past. */
    CHECK(gort_fd_set_deadline(sv[0], gort_nanotime() - 1, 0) == 0);
    t0 = gort_nanotime();
    CHECK(gort_read(sv[0], &c, 1) == -1 && gerr() == ETIMEDOUT);
    CHECK(gort_nanotime() - t0 < 20 * MS);

    /* Moved from 20 ms to 100 ms while the reader waits. */
    dl_fd = sv[0];
    t0 = gort_nanotime();
    CHECK(gort_fd_set_deadline(sv[0], t0 + 20 * MS, 0) == 0);
    gort_go(move_deadline, NULL);
    r = gort_read(sv[0], &c, 1);
    el = gort_nanotime() - t0;
    CHECK(r == -1 && gerr() == ETIMEDOUT);
    CHECKF(el >= 100 * MS && el < 600 * MS, "moved deadline expired after %lld ns", (long long)el);
    CHECK(gort_fd_set_deadline(sv[0], 0, 0) == 0);

    /* A write deadline: fill the socket until the write parks. */
    static char big[1 << 20];
    CHECK(gort_fd_set_deadline(sv[1], 0, gort_nanotime() + 30 * MS) == 0);
    t0 = gort_nanotime();
    r = gort_write(sv[1], big, sizeof big);
    el = gort_nanotime() - t0;
    CHECKF(r > 0 && r < (ssize_t)sizeof big && gerr() == ETIMEDOUT,
           "write with deadline: %zd, %s", r, strerror(gerr()));
    CHECK(el >= 30 * MS);
    CHECK(gort_close(sv[0]) == 0);
    CHECK(gort_close(sv[1]) == 0);
}

/* ---- gort_close wakes a blocked reader ------------------------------------------ */

static int close_fd;
static int close_result, close_errno;
static gort_waitgroup close_wg;

static void blocked_reader(void *arg)
{
    (void)arg;
    char c;
    close_result = (int)gort_read(close_fd, &c, 1);
    close_errno = gerr();
    gort_waitgroup_done(&close_wg);
}

static void test_close_wakes(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    close_fd = sv[0];
    gort_waitgroup_add(&close_wg, 1);
    gort_go(blocked_reader, NULL);
    /* Wait until it is parked on the fd. */
    for (int i = 0; i < 1000 && __atomic_load_n(&netpollWaiters, __ATOMIC_SEQ_CST) == 0; i++)
        gort_sleep(1 * MS);
    CHECK(netpollWaiters == 1);
    int64_t t0 = gort_nanotime();
    CHECK(gort_close(sv[0]) == 0);
    gort_waitgroup_wait(&close_wg);
    CHECK(close_result == -1 && close_errno == EBADF);
    CHECK(gort_nanotime() - t0 < 500 * MS);
    CHECK(netpollWaiters == 0);
    /* The closed number: EBADF. */
    char c;
    CHECK(gort_read(sv[0], &c, 1) == -1 && gerr() == EBADF);
    CHECK(gort_close(sv[1]) == 0);
}

/* ---- Pipe between goroutines ----------------------------------------------------- */

enum { PIPE_BYTES = 1 << 20 };
static int pipe_fds[2];
static gort_waitgroup pipe_wg;
static char pipe_out[PIPE_BYTES], pipe_in[PIPE_BYTES + 1];

static void pipe_writer(void *arg)
{
    (void)arg;
    CHECK(gort_write(pipe_fds[1], pipe_out, PIPE_BYTES) == PIPE_BYTES);
    CHECK(gort_close(pipe_fds[1]) == 0);
    gort_waitgroup_done(&pipe_wg);
}

static void pipe_reader(void *arg)
{
    (void)arg;
    size_t got = 0;
    for (;;) {
        /* Odd-sized reads, so the writer keeps refilling a full pipe. */
        ssize_t r = gort_read(pipe_fds[0], pipe_in + got, got + 7777 < PIPE_BYTES ? 7777 : PIPE_BYTES - got + 1);
        CHECK(r >= 0);
        if (r == 0)
            break;
        got += (size_t)r;
        CHECK(got <= PIPE_BYTES);
        if (got % 3 == 0)
            gort_yield();
    }
    CHECK(got == PIPE_BYTES);
    CHECK(memcmp(pipe_in, pipe_out, PIPE_BYTES) == 0);
    CHECK(gort_close(pipe_fds[0]) == 0);
    gort_waitgroup_done(&pipe_wg);
}

static void test_pipe(void)
{
    CHECK(pipe2(pipe_fds, O_CLOEXEC) == 0);
    fill(pipe_out, PIPE_BYTES, 7, 7);
    memset(pipe_in, 0, sizeof pipe_in);
    gort_waitgroup_add(&pipe_wg, 2);
    int64_t t0 = gort_nanotime();
    gort_go(pipe_reader, NULL);
    gort_go(pipe_writer, NULL);
    gort_waitgroup_wait(&pipe_wg);
    printf("pipe: 1 MiB between two goroutines in %.2f ms\n", (gort_nanotime() - t0) / 1e6);
}

/* ---- Connect errors, regular files ------------------------------------------------ */

static void test_misc(void)
{
    /* A port nobody listens on. */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(s, (struct sockaddr *)&a, &len) == 0);
    CHECK(close(s) == 0);
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(gort_connect(s, (struct sockaddr *)&a, sizeof a) == -1);
    CHECKF(gerr() == ECONNREFUSED, "connect to a closed port: %s", strerror(gerr()));
    CHECK(gort_close(s) == 0);

    /* A regular file: epoll says EPERM, the calls block plainly. */
    char path[] = "/tmp/gort_netpoll_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    CHECK(gort_write(fd, "hello, file", 11) == 11);
    CHECK(lseek(fd, 0, SEEK_SET) == 0);
    char buf[32];
    CHECK(gort_read(fd, buf, sizeof buf) == 11 && memcmp(buf, "hello, file", 11) == 0);
    CHECK(gort_read(fd, buf, sizeof buf) == 0);
    CHECK(gort_fd_set_deadline(fd, gort_nanotime() + MS, 0) == -1 && gerr() == EPERM);
    CHECK(gort_close(fd) == 0);

    /* Bad fds. */
    CHECK(gort_read(-1, buf, 1) == -1 && gerr() == EBADF);
    CHECK(gort_write(1 << 30, buf, 1) == -1 && gerr() == EBADF);
}

/* ---- Driver ----------------------------------------------------------------------- */

static int app_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_echo();
    test_deadlines();
    test_close_wakes();
    test_pipe();
    test_misc();
    CHECKF(netpollWaiters == 0, "netpollWaiters %u at the end", netpollWaiters);
    printf("ok   netpoll tests, GOMAXPROCS=%d\n", gort_gomaxprocs());
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = getenv("GORT_TEST_MODE");
    if (mode != NULL && strcmp(mode, "run") == 0)
        return gort_main(app_main, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    const char *procs[] = {"2", "1"};
    for (int i = 0; i < 2; i++) {
        expect_run("run", procs[i], 60);
    }
    return 0;
}
