/*
 * test_errors.c — misuse of free/realloc is reported and aborts.
 *
 * Each case runs in a fork()ed child whose stderr goes into a pipe.  The
 * child writes "PTR=0x..." (the pointer it is about to misuse) and then
 * misuses it; the parent checks that the child died of SIGABRT and that
 * stderr holds the expected report, including the pointer's address as
 * "0x%lx".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gort.h"
#include "check.h"

/* Keeps the compiler from seeing (and warning about, or optimising) the
 * deliberate misuse. */
static void *hidep(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void *volatile sink;

/* Announces the pointer about to be misused, on stderr (fd 2 is the pipe). */
static void announce(void *p)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "PTR=0x%lx\n", (unsigned long)(uintptr_t)p);
    ssize_t w = write(2, buf, (size_t)n);
    (void)w;
}

/* ---- the cases, each run in a child ------------------------------------- */

static void case_valid(void)
{
    /* Control: correct use exits normally. */
    void *p = malloc(64);
    announce(p);
    free(hidep(p));
    p = malloc(1 << 20);
    free(hidep(p));
    free(NULL);
}

static void case_stack(void)
{
    char buf[64];
    memset(buf, 1, sizeof buf);
    sink = buf;
    announce(buf);
    free(hidep(buf));
}

static void case_stack_gort_free(void)
{
    long x = 5;
    sink = &x;
    announce(&x);
    gort_free(hidep(&x));
}

static void case_static(void)
{
    static char data[256];
    announce(data + 16);
    free(hidep(data + 16));
}

static void case_low_address(void)
{
    void *p = (void *)(uintptr_t)0x1000;
    announce(p);
    free(hidep(p));
}

static void case_mmap(void)
{
    char *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(3);
    p[0] = 1;
    announce(p);
    free(hidep(p));
}

static void case_mmap_inner(void)
{
    char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(3);
    announce(p + 8192 + 16);
    free(hidep(p + 8192 + 16));
}

static void case_interior_small(void)
{
    /* Some neighbours in the same class, so the span is surely in use. */
    for (int i = 0; i < 10; i++)
        sink = malloc(64);
    char *p = malloc(64);
    for (int i = 0; i < 10; i++)
        sink = malloc(64);
    announce(p + 8);
    free(hidep(p + 8));
}

static void case_interior_small_gort(void)
{
    char *p = gort_malloc(64);
    sink = gort_malloc(64);
    announce(p + 16);
    gort_free(hidep(p + 16));
}

static void case_interior_large(void)
{
    char *p = malloc(1 << 20);
    memset(p, 1, 1 << 20);
    announce(p + 4096);
    free(hidep(p + 4096));
}

static void case_realloc_stack(void)
{
    char buf[128];
    memset(buf, 1, sizeof buf);
    sink = buf;
    announce(buf);
    sink = realloc(hidep(buf), 100);
}

static void case_realloc_interior(void)
{
    char *p = malloc(256);
    sink = malloc(256);
    announce(p + 32);
    sink = realloc(hidep(p + 32), 1000);
}

static void case_realloc_interior_large(void)
{
    char *p = malloc(200000);
    announce(p + 8192);
    sink = gort_realloc(hidep(p + 8192), 10);
}

/* Announces p, then frees it twice (the second time through hidep, so the
 * compiler cannot see the double free). */
static void free_twice(void *p)
{
    announce(p);
    void *again = hidep(p);
    free(p);
    free(again);
}

static void case_double_free_small(void)
{
    void *keep[8];
    for (int i = 0; i < 8; i++)
        keep[i] = malloc(64);
    void *p = malloc(64);
    void *keep2 = malloc(64);
    sink = keep[0];
    sink = keep2;
    free_twice(p);
}

/* An object of size bytes from alloc, with a neighbour allocated on
 * either side of it. */
static void *alloc_between(void *(*alloc)(size_t), size_t size)
{
    void *a = alloc(size);
    void *p = alloc(size);
    void *b = alloc(size);
    sink = a;
    sink = b;
    return p;
}

/* 8-byte objects have no room for the list key: their span's bit shows it. */
static void case_double_free_tiny(void)
{
    free_twice(alloc_between(malloc, 8));
}

static void case_double_free_small_gort(void)
{
    void *p = alloc_between(gort_malloc, 48);
    announce(p);
    void *again = hidep(p);
    gort_free(p);
    gort_free(again);
}

static void case_double_free_large(void)
{
    void *p = malloc(1 << 20);
    memset(p, 1, 1 << 20);
    free_twice(p);
}

static void case_double_free_large_kept(void)
{
    /* Another large block after it, so the freed pages stay between
     * allocated ones. */
    void *p = malloc(300000);
    void *q = malloc(300000);
    sink = q;
    free_twice(p);
}

/* Every allocation sampled: the first ones lie on pages of their own. */
static void case_double_free_sampled(void)
{
    gort_set_memprofile_rate(1);
    void *p = malloc(40);
    free_twice(p);
}

/* Its span is kept for the next sample: still a freed block. */
static void case_realloc_freed_sampled(void)
{
    gort_set_memprofile_rate(1);
    void *p = malloc(40);
    announce(p);
    void *again = hidep(p);
    free(p);
    sink = realloc(again, 100);
}

static void case_interior_sampled(void)
{
    gort_set_memprofile_rate(1);
    char *p = malloc(40);
    announce(p + 16);
    free(hidep(p + 16));
}

/* ---- the harness -------------------------------------------------------- */

enum expect {
    EXPECT_EXIT0,         /* no complaint, exit status 0 */
    EXPECT_INVALID_FREE,  /* "gort: free(): invalid pointer 0x<p>" */
    EXPECT_INVALID_REALLOC, /* "realloc(): invalid pointer 0x<p>" */
    EXPECT_DOUBLE_FREE,   /* "double free" */
    EXPECT_DOUBLE_OR_INVALID, /* "double free" or "invalid pointer" */
};

static int failures;

static void run_case(const char *name, void (*fn)(void), enum expect want)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (dup2(fds[1], 2) != 2)
            _exit(4);
        close(fds[1]);
        struct rlimit nocore = { 0, 0 };
        setrlimit(RLIMIT_CORE, &nocore);
        alarm(20);
        fn();
        _exit(0);
    }
    close(fds[1]);

    char out[8192];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fds[0], out + len, sizeof out - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == sizeof out - 1)
            break;
    }
    out[len] = 0;
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        CHECK(errno == EINTR);

    char why[256] = "";
    if (want == EXPECT_EXIT0) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            snprintf(why, sizeof why, "child did not exit 0 (status %#x)", status);
    } else if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
        if (WIFSIGNALED(status))
            snprintf(why, sizeof why, "child died of signal %d, want SIGABRT", WTERMSIG(status));
        else
            snprintf(why, sizeof why, "child exited with status %d, want SIGABRT",
                     WEXITSTATUS(status));
    }

    unsigned long ptr = 0;
    const char *tag = strstr(out, "PTR=0x");
    if (!why[0] && (tag == NULL || sscanf(tag + 6, "%lx", &ptr) != 1))
        snprintf(why, sizeof why, "child did not announce its pointer");

    char want_text[128] = "";
    if (!why[0]) {
        /* Skip the announcement so it cannot itself match. */
        const char *rest = strchr(tag, '\n');
        rest = rest ? rest + 1 : tag + strlen(tag);
        switch (want) {
        case EXPECT_EXIT0:
            break;
        case EXPECT_INVALID_FREE:
            snprintf(want_text, sizeof want_text, "gort: free(): invalid pointer 0x%lx", ptr);
            if (!strstr(rest, want_text))
                snprintf(why, sizeof why, "stderr lacks \"%s\"", want_text);
            else {
                /* The address must end there: no extra hex digits. */
                const char *at = strstr(rest, want_text) + strlen(want_text);
                if ((*at >= '0' && *at <= '9') || (*at >= 'a' && *at <= 'f') ||
                    (*at >= 'A' && *at <= 'F'))
                    snprintf(why, sizeof why, "address after \"%s\" goes on", want_text);
            }
            break;
        case EXPECT_INVALID_REALLOC:
            snprintf(want_text, sizeof want_text, "realloc(): invalid pointer 0x%lx", ptr);
            if (!strstr(rest, want_text))
                snprintf(why, sizeof why, "stderr lacks \"%s\"", want_text);
            else {
                const char *at = strstr(rest, want_text) + strlen(want_text);
                if ((*at >= '0' && *at <= '9') || (*at >= 'a' && *at <= 'f') ||
                    (*at >= 'A' && *at <= 'F'))
                    snprintf(why, sizeof why, "address after \"%s\" goes on", want_text);
            }
            break;
        case EXPECT_DOUBLE_FREE:
            if (!strstr(rest, "double free"))
                snprintf(why, sizeof why, "stderr lacks \"double free\"");
            break;
        case EXPECT_DOUBLE_OR_INVALID:
            if (!strstr(rest, "double free") && !strstr(rest, "invalid pointer"))
                snprintf(why, sizeof why, "stderr lacks \"double free\" and \"invalid pointer\"");
            break;
        }
    }

    if (why[0]) {
        failures++;
        fprintf(stderr, "FAIL %s: %s\n  child stderr: <<%s>>\n", name, why, out);
    }
}

int main(void)
{
    /* The parent itself is untouched by the children's misuse. */
    void *mine = malloc(100);
    CHECK(mine != NULL);
    memset(mine, 7, 100);

    run_case("valid use", case_valid, EXPECT_EXIT0);
    run_case("free(stack)", case_stack, EXPECT_INVALID_FREE);
    run_case("gort_free(stack)", case_stack_gort_free, EXPECT_INVALID_FREE);
    run_case("free(static data)", case_static, EXPECT_INVALID_FREE);
    run_case("free(0x1000)", case_low_address, EXPECT_INVALID_FREE);
    run_case("free(foreign mmap)", case_mmap, EXPECT_INVALID_FREE);
    run_case("free(inside foreign mmap)", case_mmap_inner, EXPECT_INVALID_FREE);
    run_case("free(small + 8)", case_interior_small, EXPECT_INVALID_FREE);
    run_case("gort_free(small + 16)", case_interior_small_gort, EXPECT_INVALID_FREE);
    run_case("free(large + 4096)", case_interior_large, EXPECT_INVALID_FREE);
    run_case("realloc(stack)", case_realloc_stack, EXPECT_INVALID_REALLOC);
    run_case("realloc(small + 32)", case_realloc_interior, EXPECT_INVALID_REALLOC);
    run_case("gort_realloc(large + 8192)", case_realloc_interior_large, EXPECT_INVALID_REALLOC);
    run_case("double free small", case_double_free_small, EXPECT_DOUBLE_FREE);
    run_case("gort double free small", case_double_free_small_gort, EXPECT_DOUBLE_FREE);
    run_case("double free 8 bytes", case_double_free_tiny, EXPECT_DOUBLE_FREE);
    run_case("double free large", case_double_free_large, EXPECT_DOUBLE_OR_INVALID);
    run_case("double free large, neighbour kept", case_double_free_large_kept,
             EXPECT_DOUBLE_OR_INVALID);
    run_case("double free sampled small", case_double_free_sampled, EXPECT_DOUBLE_FREE);
    run_case("free(sampled small + 16)", case_interior_sampled, EXPECT_INVALID_FREE);
    run_case("realloc(freed sampled small)", case_realloc_freed_sampled, EXPECT_DOUBLE_OR_INVALID);

    CHECKF(failures == 0, "%d error case(s) failed", failures);
    for (int i = 0; i < 100; i++)
        CHECK(((unsigned char *)mine)[i] == 7);
    free(mine);
    printf("test_errors: ok (21 cases)\n");
    return 0;
}
