/*
 * test_fork.c — fork() while other threads are inside the allocator.
 *
 * Four threads hammer gort_malloc/gort_free (small and large blocks) while
 * the main thread forks 20 times.  Each child allocates and frees a lot,
 * small and large, through both sets of names, starts a thread that
 * allocates, then _exit(0)s.  A child that deadlocks (a lock held by a thread
 * that does not exist in the child) is caught by a 10 s alarm in the parent.
 * The heap profiler samples often meanwhile (GODEBUG=memprofilerate=4096),
 * and two busy threads make the hammers get preempted mid-call.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gort.h"
#include "check.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

enum { NHAMMER = 4, NSPIN = 2, NFORK = 20, HSLOTS = 256 };

static atomic_int stop;
static atomic_long hammer_ops;


static size_t rnd_size(uint64_t *s)
{
    uint64_t r = rnd(s) % 1000;
    if (r < 900)
        return (size_t)(rnd(s) % 600);
    if (r < 995)
        return 600 + (size_t)(rnd(s) % (32 * KiB));
    return 32 * KiB + (size_t)(rnd(s) % (2 * MiB));
}

struct hblock {
    unsigned char *p;
    size_t n;
    unsigned char v;
};

static void *hammer(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t rs = 0x1234567ULL * (id + 1) + 99;
    struct hblock b[HSLOTS];
    memset(b, 0, sizeof b);
    long ops = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        struct hblock *h = &b[rnd(&rs) % HSLOTS];
        if (h->p) {
            size_t probe = h->n < 64 ? h->n : 64;
            for (size_t i = 0; i < probe; i++)
                CHECKF(h->p[i] == h->v, "hammer %u: block of %zu bytes overwritten at %zu",
                       (unsigned)id, h->n, i);
            if (h->n > 64)
                CHECK(h->p[h->n - 1] == h->v);
            if (rnd(&rs) & 1) {
                gort_free(h->p);
                h->p = NULL;
            } else {
                size_t n = rnd_size(&rs);
                h->p = gort_realloc(h->p, n + 1);
                CHECK(h->p != NULL);
                h->n = n + 1;
                memset(h->p, h->v, h->n);
            }
        } else {
            h->n = rnd_size(&rs) + 1;
            h->v = (unsigned char)(rnd(&rs) | 1);
            h->p = (ops & 7) ? gort_malloc(h->n) : gort_calloc(1, h->n);
            CHECK(h->p != NULL);
            memset(h->p, h->v, h->n);
        }
        ops++;
    }
    for (int i = 0; i < HSLOTS; i++)
        gort_free(b[i].p);
    atomic_fetch_add(&hammer_ops, ops);
    return NULL;
}

/* Busy threads, so that the hammers are preempted now and then in the
 * middle of a call (a stack walk among them) when the fork comes. */
static void *spinner(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed))
        ;
    return NULL;
}

/* ---- in the child --------------------------------------------------------- */

/* Reports and leaves without running the parent's atexit handlers or
 * flushing its stdio buffers. */
#define CCHECK(cond)                                                                    \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            char msg_[256];                                                             \
            int len_ = snprintf(msg_, sizeof msg_, "%s:%d: child CHECK failed: %s\n",   \
                                __FILE__, __LINE__, #cond);                             \
            ssize_t w_ = write(2, msg_, (size_t)len_);                                  \
            (void)w_;                                                                   \
            _exit(2);                                                                   \
        }                                                                               \
    } while (0)

static void *child_thread(void *arg)
{
    uint64_t rs = (uintptr_t)arg;
    void *keep[100];
    for (int i = 0; i < 2000; i++) {
        size_t n = rnd_size(&rs);
        unsigned char *p = gort_malloc(n + 1);
        if (!p)
            return (void *)1;
        memset(p, 0x3c, n + 1);
        if (i < 100)
            keep[i] = p;
        else
            gort_free(p);
    }
    unsigned char *big = malloc(3 * MiB);
    if (!big)
        return (void *)1;
    memset(big, 1, 3 * MiB);
    free(big);
    for (int i = 0; i < 99; i++)
        gort_free(keep[i]);
    /* Hand a block back to the main thread of the child. */
    return keep[99];
}

static void child_main(int round)
{
    uint64_t rs = 0xABCDEFULL + (uint64_t)round;
    enum { N = 512 };
    unsigned char *p[N];
    size_t n[N];
    memset(p, 0, sizeof p);
    for (int iter = 0; iter < 40000; iter++) {
        int i = (int)(rnd(&rs) % N);
        if (p[i]) {
            CCHECK(p[i][0] == (unsigned char)i && p[i][n[i] - 1] == (unsigned char)i);
            if (iter & 1)
                gort_free(p[i]);
            else
                free(p[i]);
            p[i] = NULL;
        } else {
            n[i] = rnd_size(&rs) + 1;
            p[i] = (iter & 2) ? gort_malloc(n[i]) : malloc(n[i]);
            CCHECK(p[i] != NULL);
            memset(p[i], i, n[i]);
        }
    }
    /* Large blocks, zeroed memory and a trim, which takes the heap lock and
     * talks to the scavenger. */
    for (int k = 0; k < 8; k++) {
        unsigned char *c = gort_calloc(1, 4 * MiB);
        CCHECK(c != NULL);
        CCHECK(c[0] == 0 && c[4 * MiB - 1] == 0 && c[2 * MiB + 12345] == 0);
        memset(c, 0xee, 4 * MiB);
        gort_free(c);
    }
    int r = gort_malloc_trim(0);
    CCHECK(r == 0 || r == 1);

    pthread_t th;
    CCHECK(pthread_create(&th, NULL, child_thread, (void *)(uintptr_t)(round + 1)) == 0);
    void *ret = NULL;
    CCHECK(pthread_join(th, &ret) == 0);
    CCHECK(ret != NULL && ret != (void *)1);
    CCHECK(((unsigned char *)ret)[0] == 0x3c);
    gort_free(ret);

    for (int i = 0; i < N; i++)
        free(p[i]);

    struct gort_memstats st;
    gort_memstats(&st);
    CCHECK(st.mallocs >= st.frees);
    _exit(0);
}

/* ---- in the parent -------------------------------------------------------- */

static void on_alarm(int sig)
{
    (void)sig;
}

int main(int argc, char **argv)
{
    (void)argc;
    /* Heap-profile samples every few allocations, so that a fork often
     * lands while another thread walks its stack: a walk may hold the
     * loader's lock, which the child must not inherit held (unwind.c).
     * GODEBUG is read at start-up, hence the exec. */
    if (!getenv("GODEBUG")) {
        setenv("GODEBUG", "memprofilerate=4096", 1);
        execv("/proc/self/exe", argv);
        perror("test_fork: execv");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: waitpid returns EINTR */
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);

    pthread_t th[NHAMMER], sp[NSPIN];
    for (uintptr_t i = 0; i < NHAMMER; i++)
        CHECK(pthread_create(&th[i], NULL, hammer, (void *)i) == 0);
    for (int i = 0; i < NSPIN; i++)
        CHECK(pthread_create(&sp[i], NULL, spinner, NULL) == 0);

    int failed = 0;
    for (int round = 0; round < NFORK; round++) {
        /* Let the hammers get going (and be mid-call) before each fork. */
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        void *mine = gort_malloc(1000);
        CHECK(mine != NULL);
        memset(mine, 0x42, 1000);

        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(0);
            /* The parent's block is still there, and freeable here. */
            CCHECK(((unsigned char *)mine)[999] == 0x42);
            gort_free(mine);
            child_main(round);
        }

        alarm(10);
        int status;
        pid_t w;
        while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
            /* The alarm went off: the child hangs. */
            fprintf(stderr, "fork round %d: child %d did not finish in 10 s (deadlock?)\n",
                    round, (int)pid);
            kill(pid, SIGKILL);
            alarm(0);
        }
        alarm(0);
        CHECK(w == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fork round %d: child status %#x (%s %d)\n", round, status,
                    WIFSIGNALED(status) ? "signal" : "exit",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            failed++;
        }
        CHECK(((unsigned char *)mine)[0] == 0x42);
        gort_free(mine);
    }

    atomic_store(&stop, 1);
    for (int i = 0; i < NSPIN; i++)
        CHECK(pthread_join(sp[i], NULL) == 0);
    for (int i = 0; i < NHAMMER; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    CHECKF(failed == 0, "%d of %d children failed", failed, NFORK);
    CHECK(atomic_load(&hammer_ops) > 0);
    printf("test_fork: ok (%d forks, %ld hammer ops)\n", NFORK, atomic_load(&hammer_ops));
    return 0;
}
