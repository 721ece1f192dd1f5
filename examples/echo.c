/*
 * echo.c — a TCP echo server with one goroutine per connection.
 *
 *   echo [CLIENTS [MESSAGES]]   server and clients in one process, on
 *                               127.0.0.1 with a port the kernel picks;
 *                               prints a summary (default 100 clients x 20)
 *   echo serve PORT             only the server, on 127.0.0.1:PORT, for ever
 *
 * The server is written as in Go: an accept loop that starts a goroutine
 * per connection, each a plain read-then-write loop.  The calls look
 * blocking, but gort_accept, gort_read and gort_write park only the calling
 * goroutine: the socket is made non-blocking and registered with the
 * netpoller (epoll), which readies the goroutine when the socket is ready.
 * A few threads serve thousands of connections this way.
 *
 * In the self-test mode each client goroutine connects, sends messages of
 * varying length (one of them 16 KiB, more than the server reads at once,
 * so it comes back in pieces), reads each echo back in full and compares it byte for byte.  Closing the listening socket with
 * gort_close wakes the accept loop (EBADF), which is how the server stops.
 *
 * errno: a goroutine may resume on another thread after any gort call that
 * parks, and glibc lets the compiler keep &errno across calls, so errno is
 * read through an opaque function right after the failing call.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gort.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAXMSG = 16384 };

static __attribute__((noinline)) int goerrno(void)
{
    __asm__ volatile("" ::: "memory");
    return errno;
}

/* ---- The server ----------------------------------------------------------- */

static gort_waitgroup conns;          /* connection goroutines still running */
static int64_t nconns, nbytes;        /* served so far (atomic) */

/* One connection: echo until the peer closes. */
static void serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = gort_read(fd, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0)
                fprintf(stderr, "echo: read: %s\n", strerror(goerrno()));
            break;
        }
        if (gort_write(fd, buf, (size_t)n) != n) {
            fprintf(stderr, "echo: write: %s\n", strerror(goerrno()));
            break;
        }
        __atomic_add_fetch(&nbytes, n, __ATOMIC_RELAXED);
    }
    gort_close(fd);
    __atomic_add_fetch(&nconns, 1, __ATOMIC_RELAXED);
    gort_waitgroup_done(&conns);
}

/* The accept loop: returns when the listening socket is closed. */
static void serve(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = gort_accept(lfd, NULL, NULL);
        if (fd < 0) {
            int e = goerrno();
            if (e == EBADF)
                break;                   /* the listener was closed: stop */
            if (e == EMFILE || e == ENFILE) {
                gort_sleep(10 * 1000 * 1000);   /* out of descriptors: back off */
                continue;
            }
            fprintf(stderr, "echo: accept: %s\n", strerror(e));
            break;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        gort_waitgroup_add(&conns, 1);
        gort_go(serve_conn, (void *)(intptr_t)fd);
    }
}

static int listen_on(int port, struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr->sin_port = htons((uint16_t)port);
    socklen_t len = sizeof *addr;
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- The clients ---------------------------------------------------------- */

static struct sockaddr_in server;
static int nmsgs;
static gort_waitgroup clients;
static int64_t nok, nfail;           /* messages echoed right / clients that failed */

/* Message m of client id: a length and bytes both derive from (id, m). */
static size_t message(char *p, int id, int m)
{
    size_t n = m == id % nmsgs ? MAXMSG : 1 + (size_t)((id * 31 + m * 17) % 300);
    uint32_t x = (uint32_t)id * 2654435761u + (uint32_t)m * 40503u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;   /* xorshift32 */
        p[i] = (char)x;
    }
    return n;
}

static void client(void *arg)
{
    int id = (int)(intptr_t)arg;
    char *out = malloc(MAXMSG), *in = malloc(MAXMSG);
    const char *what = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!out || !in || fd < 0) {
        what = "socket";
        goto done;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (gort_connect(fd, (struct sockaddr *)&server, sizeof server) < 0) {
        what = "connect";
        goto done;
    }
    for (int m = 0; m < nmsgs && !what; m++) {
        size_t n = message(out, id, m);
        if (gort_write(fd, out, n) != (ssize_t)n) {
            what = "write";
            break;
        }
        /* The echo may come back in pieces: read until all n are here. */
        for (size_t got = 0; got < n;) {
            ssize_t r = gort_read(fd, in + got, n - got);
            if (r <= 0) {
                what = r == 0 ? "read: early EOF" : "read";
                break;
            }
            got += (size_t)r;
        }
        if (!what && memcmp(in, out, n) != 0)
            what = "echo differs";
        if (!what)
            __atomic_add_fetch(&nok, 1, __ATOMIC_RELAXED);
    }
done:
    if (what) {
        int e = goerrno();
        fprintf(stderr, "echo: client %d: %s (%s)\n", id, what, strerror(e));
        __atomic_add_fetch(&nfail, 1, __ATOMIC_RELAXED);
    }
    if (fd >= 0)
        gort_close(fd);
    free(out);
    free(in);
    gort_waitgroup_done(&clients);
}

static int app_main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "serve") == 0) {
        int port = argc > 2 ? atoi(argv[2]) : 7777;
        int lfd = listen_on(port, &server);
        if (lfd < 0) {
            perror("echo: listen");
            return 1;
        }
        printf("echo: serving on 127.0.0.1:%d\n", ntohs(server.sin_port));
        fflush(stdout);
        serve((void *)(intptr_t)lfd);   /* the main goroutine runs the accept loop */
        return 1;
    }

    int nclients = argc > 1 ? atoi(argv[1]) : 100;
    nmsgs = argc > 2 ? atoi(argv[2]) : 20;
    if (nclients < 1 || nmsgs < 1) {
        fprintf(stderr, "usage: echo [CLIENTS > 0 [MESSAGES > 0]] | echo serve PORT\n");
        return 2;
    }
    int lfd = listen_on(0, &server);
    if (lfd < 0) {
        perror("echo: listen");
        return 1;
    }
    gort_go(serve, (void *)(intptr_t)lfd);

    int64_t t0 = gort_nanotime();
    gort_waitgroup_add(&clients, nclients);
    for (int i = 0; i < nclients; i++)
        gort_go(client, (void *)(intptr_t)i);
    gort_waitgroup_wait(&clients);
    int64_t el = gort_nanotime() - t0;

    gort_waitgroup_wait(&conns);   /* every connection saw its client close */
    gort_close(lfd);               /* wakes the accept loop with EBADF */

    int64_t want = (int64_t)nclients * nmsgs;
    bool ok = nok == want && nfail == 0 && nconns == nclients;
    printf("echo: %d clients x %d messages on 127.0.0.1:%d: %lld echoed right, %lld clients failed, "
           "%lld connections served, %lld bytes, %.1f ms, GOMAXPROCS=%d\n",
           nclients, nmsgs, ntohs(server.sin_port), (long long)nok, (long long)nfail,
           (long long)nconns, (long long)nbytes, el / 1e6, gort_gomaxprocs());
    printf("%s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    return gort_main(app_main, argc, argv);
}
