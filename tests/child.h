/*
 * child.h — how the scheduler tests run a case: this binary re-executed in
 * a named mode (GORT_TEST_MODE) with its own environment, stderr captured
 * through a pipe, killed after a time limit.  The driver then checks the
 * exit status and the text, reports a failed case with FAIL and goes on
 * (or, with expect_run and expect_fatal, stops at the first failure).
 */
#ifndef GORT_TEST_CHILD_H
#define GORT_TEST_CHILD_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

extern char **environ;

struct child {
    int status;        /* from waitpid */
    bool timed_out;
    char *err;         /* its stderr, NUL-terminated */
    size_t errlen;
    double secs;
};

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline bool env_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* Runs this binary in mode with the extra environment entries env
 * ("NAME=VALUE", NULL-terminated; GOMAXPROCS and GODEBUG are otherwise
 * unset), collecting stderr; kills it after limit seconds. */
static inline void run_child(struct child *ch, const char *mode, const char *const *env, int limit)
{
    size_t n = 0;
    while (environ[n])
        n++;
    size_t nextra = 0;
    while (env && env[nextra])
        nextra++;
    char **envp = calloc(n + nextra + 2, sizeof *envp);
    CHECK(envp != NULL);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!env_is(environ[i], "GORT_TEST_MODE") && !env_is(environ[i], "GOMAXPROCS") &&
            !env_is(environ[i], "GODEBUG") && !env_is(environ[i], "GORT_TEST_RETRIED"))
            envp[k++] = environ[i];
    for (size_t i = 0; i < nextra; i++)
        envp[k++] = (char *)env[i];
    char modebuf[128];
    snprintf(modebuf, sizeof modebuf, "GORT_TEST_MODE=%s", mode);
    envp[k++] = modebuf;
    envp[k] = NULL;

    int fds[2];
    CHECK(pipe2(fds, O_CLOEXEC) == 0);
    fflush(stdout);
    fflush(stderr);
    double t0 = now_s();
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        char *argv[] = {(char *)"test_child", NULL};
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    close(fds[1]);
    free(envp);
    size_t cap = 4096;
    ch->err = malloc(cap);
    CHECK(ch->err != NULL);
    ch->errlen = 0;
    ch->timed_out = false;
    double deadline = t0 + limit;
    for (;;) {
        int ms = (int)((deadline - now_s()) * 1000);
        if (ms <= 0) {
            ch->timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int r = poll(&pfd, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            continue;
        if (ch->errlen + 1024 > cap) {
            cap *= 2;
            ch->err = realloc(ch->err, cap);
            CHECK(ch->err != NULL);
        }
        ssize_t got = read(fds[0], ch->err + ch->errlen, cap - ch->errlen - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        ch->errlen += (size_t)got;
    }
    ch->err[ch->errlen] = 0;
    close(fds[0]);
    CHECK(waitpid(pid, &ch->status, 0) == pid);
    ch->secs = now_s() - t0;
}

static inline void show_child(const char *what, const struct child *ch)
{
    fprintf(stderr, "---- %s: status 0x%x%s, %.2fs, stderr:\n%s----\n", what, ch->status,
            ch->timed_out ? " (timed out)" : "", ch->secs, ch->err);
}

/* A failed case in the driver: reported, counted, and the next case runs. */
static int failures __attribute__((unused));
#define FAIL(...)                                                          \
    do {                                                                   \
        fprintf(stderr, "FAIL: ");                                         \
        fprintf(stderr, __VA_ARGS__);                                      \
        fputc('\n', stderr);                                               \
        failures++;                                                        \
    } while (0)

static inline bool exited(const struct child *ch, int code)
{
    return !ch->timed_out && WIFEXITED(ch->status) && WEXITSTATUS(ch->status) == code;
}

/* GORT_TEST_ONLY=<name> runs that case alone. */
static inline bool selected(const char *name)
{
    const char *only = getenv("GORT_TEST_ONLY");
    return !only || strcmp(only, name) == 0;
}

/* Runs mode with GOMAXPROCS=procs and requires exit status 0; the child's
 * stderr is shown when it fails. */
static inline void expect_run(const char *mode, const char *procs, int limit)
{
    char gmp[64];
    snprintf(gmp, sizeof gmp, "GOMAXPROCS=%s", procs);
    const char *env[] = {gmp, NULL};
    struct child ch;
    run_child(&ch, mode, env, limit);
    if (!exited(&ch, 0))
        show_child(mode, &ch);
    CHECKF(exited(&ch, 0), "%s, GOMAXPROCS=%s: status 0x%x", mode, procs, ch.status);
    free(ch.err);
}

/* Runs mode and requires it to die of SIGABRT with msg on stderr (Go's
 * fatal errors). */
static inline void expect_fatal(const char *mode, const char *msg)
{
    struct child ch;
    run_child(&ch, mode, NULL, 60);
    CHECKF(!ch.timed_out && WIFSIGNALED(ch.status) && WTERMSIG(ch.status) == SIGABRT,
           "%s: status 0x%x, want SIGABRT; stderr:\n%s", mode, ch.status, ch.err);
    CHECKF(strstr(ch.err, msg) != NULL, "%s: stderr lacks \"%s\":\n%s", mode, msg, ch.err);
    printf("ok   fatal %-14s %s\n", mode, msg);
    free(ch.err);
}

#endif
