/*
 * test_stack.c — goroutine stacks: an overflow stops the program with
 * "fatal error: stack overflow" under each guard (GODEBUG=stackguard=
 * madvise, canary, mprotect), in a goroutine on the first thread or on
 * another one, and in main; GODEBUG=stacksize makes room for a deeper
 * recursion; stacks used to the bottom and recycled raise no false alarm;
 * and gort_memstats' stack_inuse follows the parked goroutines up and back
 * down.
 *
 * main() is a driver: each case runs in a child (this binary re-executed
 * with GORT_TEST_MODE, GOMAXPROCS and GODEBUG set), with stderr in a pipe
 * and a time limit; the parent checks how the child ended and what it said.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include "sched/runtime2.h"

/* ---- Child side ------------------------------------------------------------------ */

static const char *mode;

/* Stops recursing where a frame's array lies below this address (0: never). */
static uintptr_t rec_floor;
static int rec_max = 1 << 30;
static uintptr_t rec_bottom;   /* the deepest frame's array, last seen */

/* Each frame holds a 512-byte volatile array, all of it written, and reads
 * it after the inner call, so no frame can be folded away. */
static __attribute__((noinline)) uint64_t recurse(int depth)
{
    volatile unsigned char buf[512];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)((depth + (int)i) | 1);
    if ((uintptr_t)buf < rec_floor) {
        /* Canary mode: the bottom line is dirty now; the next switch away
         * must notice. */
        for (int i = 0; i < 100; i++)
            gort_yield();
        return buf[0];
    }
    if (depth >= rec_max) {
        __atomic_store_n(&rec_bottom, (uintptr_t)buf, __ATOMIC_RELAXED);
        return buf[3];
    }
    return recurse(depth + 1) + buf[7];
}

/* What recurse(0) returns with rec_max = depth and no floor. */
static uint64_t recurse_expect(int depth)
{
    uint64_t sum = (unsigned char)(depth + 3) | 1;
    for (int d = depth - 1; d >= 0; d--)
        sum += (unsigned char)(d + 7) | 1;
    return sum;
}

static void spinner(void *arg)
{
    (void)arg;
    for (;;)
        gort_yield();
}

static int overflow_started;

static void overflower(void *arg)
{
    (void)arg;
    fprintf(stderr, "overflowing goroutine %lld on thread %d\n", (long long)gort_goid(), gettid());
    __atomic_store_n(&overflow_started, 1, __ATOMIC_RELEASE);
    const char *guard = getenv("GUARD");
    if (guard && strcmp(guard, "canary") == 0)
        rec_floor = getg()->stack.lo + 64;
    recurse(0);
    fprintf(stderr, "recursion returned: overflow not detected\n");
    exit(0);
}

/* A goroutine recurses without end.  With OTHER_THREAD, main spins without
 * calling gort, so the goroutine is stolen and overflows on another M (whose
 * signal stack the fault report needs). */
static int mode_overflow(void)
{
    if (getenv("OTHER_THREAD")) {
        fprintf(stderr, "main on thread %d\n", gettid());
        gort_go(overflower, NULL);
        for (;;)
            __asm__ volatile("" ::: "memory");
    }
    gort_go(spinner, NULL);
    gort_go(overflower, NULL);
    gort_waitgroup wg = GORT_WAITGROUP_INIT;
    gort_waitgroup_add(&wg, 1);
    gort_waitgroup_wait(&wg);   /* never done: the child dies first */
    return 0;
}

static int mode_overflow_main(void)
{
    fprintf(stderr, "overflowing goroutine %lld\n", (long long)gort_goid());
    recurse(0);
    fprintf(stderr, "recursion returned: overflow not detected\n");
    return 0;
}

/* About 130 KiB of frames: needs a stack bigger than the default 64 KiB. */
enum { DEEP = 240 };
static uint64_t deep_result;
static gort_waitgroup deep_wg;

static void deep_worker(void *arg)
{
    (void)arg;
    deep_result = recurse(0);
    gort_waitgroup_done(&deep_wg);
}

static int mode_deep(void)
{
    rec_max = DEEP;
    gort_waitgroup_add(&deep_wg, 1);
    gort_go(deep_worker, NULL);
    gort_waitgroup_wait(&deep_wg);
    CHECK(deep_result == recurse_expect(DEEP));
    CHECK(recurse(0) == recurse_expect(DEEP));   /* main too */
    printf("     %d frames of 512 bytes in a goroutine and in main\n", DEEP);
    return 0;
}

/* Stacks used almost to the bottom, recycled through dead Gs, P caches and
 * the pool, raise no false alarm in any guard mode. */
enum { REUSE_G = 2000, REUSE_BATCH = 50 };
static uint64_t reuse_bad;
static gort_waitgroup reuse_wg;

static void reuse_worker(void *arg)
{
    int depth = (int)(intptr_t)arg;
    uint64_t r = recurse(0);
    if (r != recurse_expect(depth))
        __atomic_fetch_add(&reuse_bad, 1, __ATOMIC_RELAXED);
    gort_yield();
    gort_waitgroup_done(&reuse_wg);
}

static uintptr_t probe_lo, probe_hi;
static void probe_worker(void *arg)
{
    (void)arg;
    probe_lo = getg()->stack.lo;
    probe_hi = getg()->stack.hi;
    recurse(0);
    gort_waitgroup_done(&reuse_wg);
}

static int mode_reuse(void)
{
    /* Measure a frame, then go to within 1.5 KiB of the usable bottom
     * (the canary line, when there is one, stays clean).  Offsets are from
     * each probe's own stack top: the two probes may get different stacks. */
    rec_max = 10;
    gort_waitgroup_add(&reuse_wg, 1);
    gort_go(probe_worker, NULL);
    gort_waitgroup_wait(&reuse_wg);
    uintptr_t off10 = probe_hi - rec_bottom;
    rec_max = 20;
    gort_waitgroup_add(&reuse_wg, 1);
    gort_go(probe_worker, NULL);
    gort_waitgroup_wait(&reuse_wg);
    uintptr_t off20 = probe_hi - rec_bottom;
    uintptr_t frame = (off20 - off10) / 10;
    CHECKF(frame >= 512 && frame < 1024, "frame %zu", (size_t)frame);
    uintptr_t size = probe_hi - probe_lo;
    int depth = 20 + (int)((size - off20 - 1536) / frame);
    size_t margin = (size_t)(size - off20) - (size_t)(depth - 20) * frame;
    rec_max = depth;
    int64_t t0 = gort_nanotime();
    for (int b = 0; b < REUSE_G / REUSE_BATCH; b++) {
        gort_waitgroup_add(&reuse_wg, REUSE_BATCH);
        for (int i = 0; i < REUSE_BATCH; i++)
            gort_go(reuse_worker, (void *)(intptr_t)depth);
        gort_waitgroup_wait(&reuse_wg);
    }
    CHECK(reuse_bad == 0);
    printf("     %d goroutines each %d frames of %zu bytes deep, %zu bytes above the bottom of "
           "%zu, in %lld ms\n",
           REUSE_G, depth, (size_t)frame, margin,
           (size_t)size, (long long)((gort_nanotime() - t0) / 1000000));
    return 0;
}

/* stack_inuse follows the parked goroutines up and back down. */
static gort_chan *ms_gate;
static gort_waitgroup ms_wg;

static void ms_parker(void *arg)
{
    (void)arg;
    gort_chan_recv(ms_gate, NULL);
    gort_waitgroup_done(&ms_wg);
}

static int mode_memstats(void)
{
    enum { N = 8000 };
    const uint64_t ssz = 64 << 10;
    struct gort_memstats s0, s1, s2;
    gort_memstats(&s0);
    ms_gate = gort_chan_make(0, 0);
    gort_waitgroup_add(&ms_wg, N);
    for (int i = 0; i < N; i++)
        gort_go(ms_parker, NULL);
    /* Wait until (nearly) every goroutine has its stack: main's chunk was
     * counted before. */
    const uint64_t want = s0.stack_inuse + (uint64_t)N * ssz - (1 << 20);
    for (int i = 0; i < 5000; i++) {
        gort_memstats(&s1);
        if (s1.stack_inuse >= want)
            break;
        gort_sleep(1000000);
    }
    gort_memstats(&s1);
    CHECKF(s1.stack_inuse >= want, "stack_inuse %llu -> %llu with %d goroutines parked",
           (unsigned long long)s0.stack_inuse, (unsigned long long)s1.stack_inuse, N);
    CHECK(s1.stack_sys >= s1.stack_inuse);
    gort_chan_close(ms_gate);
    gort_waitgroup_wait(&ms_wg);
    for (int i = 0; i < 1000 && gort_numgoroutine() > 1; i++)
        gort_sleep(1000000);
    CHECK(gort_numgoroutine() == 1);
    gort_sleep(10000000);
    gort_memstats(&s2);
    /* Dead Gs keep their stacks up to 1024 per P on the global free list,
     * plus 64 on each P's own list, plus each P's 16 cached stacks, plus
     * one empty 1 MiB chunk; a chunk goes back only when all its stacks
     * are free (a quarter more for that).  The rest must have gone back to
     * the heap. */
    uint64_t procs = (uint64_t)gort_gomaxprocs();
    uint64_t kept = (1024 * procs + 64 * procs + 16 * procs) * ssz * 5 / 4 + (2 << 20);
    CHECK(kept < s1.stack_inuse - s0.stack_inuse);
    printf("     stack_inuse: %.1f MB idle, %.1f MB with %d parked, %.1f MB after they exit "
           "(allowed %.1f MB kept)\n",
           (double)s0.stack_inuse / 1e6, (double)s1.stack_inuse / 1e6, N,
           (double)s2.stack_inuse / 1e6, (double)kept / 1e6);
    CHECKF(s2.stack_inuse <= s0.stack_inuse + kept, "stacks not given back: %llu bytes in use",
           (unsigned long long)s2.stack_inuse);
    gort_chan_free(ms_gate);
    return 0;
}

static int app_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int r;
    if (strcmp(mode, "overflow") == 0)
        r = mode_overflow();
    else if (strcmp(mode, "overflow_main") == 0)
        r = mode_overflow_main();
    else if (strcmp(mode, "deep") == 0)
        r = mode_deep();
    else if (strcmp(mode, "reuse") == 0)
        r = mode_reuse();
    else if (strcmp(mode, "memstats") == 0)
        r = mode_memstats();
    else if (strcmp(mode, "badsize") == 0)
        r = 0;
    else
        r = 1;
    fflush(stdout);
    return r;
}

/* ---- The driver --------------------------------------------------------------------- */

static void expect_ok(const char *what, const char *m, const char *const *env)
{
    struct child ch;
    run_child(&ch, m, env, 20);
    if (!exited(&ch, 0)) {
        show_child(what, &ch);
        FAIL("%s", what);
    } else {
        printf("ok   %s (%.2fs)\n", what, ch.secs);
    }
    free(ch.err);
}

/* The child must die of SIGABRT having printed "fatal error: stack overflow"
 * for the goroutine that overflowed. */
static void expect_overflow(const char *what, const char *m, const char *const *env)
{
    struct child ch;
    run_child(&ch, m, env, 20);
    bool ok = !ch.timed_out && WIFSIGNALED(ch.status) && WTERMSIG(ch.status) == SIGABRT &&
              strstr(ch.err, "fatal error: stack overflow") != NULL;
    const char *g = strstr(ch.err, "overflowing goroutine ");
    if (ok && g) {
        char want[64];
        snprintf(want, sizeof want, "goroutine %lld:", atoll(g + strlen("overflowing goroutine ")));
        ok = strstr(ch.err, want) != NULL;
    }
    if (!ok) {
        show_child(what, &ch);
        FAIL("%s: want SIGABRT and \"fatal error: stack overflow\" naming the goroutine", what);
    } else {
        printf("ok   %s (%.2fs)\n", what, ch.secs);
    }
    free(ch.err);
}

int main(int argc, char **argv)
{
    mode = getenv("GORT_TEST_MODE");
    if (mode)
        return gort_main(app_main, argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0);

    static const char *const guards[] = {"madvise", "canary", "mprotect"};
    for (int i = 0; i < 3; i++) {
        char gd[64], gv[64], what[96];
        snprintf(gd, sizeof gd, "GODEBUG=stackguard=%s", guards[i]);
        snprintf(gv, sizeof gv, "GUARD=%s", guards[i]);
        if (selected("overflow")) {
            const char *env[] = {"GOMAXPROCS=1", gd, gv, NULL};
            snprintf(what, sizeof what, "overflow in a goroutine, stackguard=%s", guards[i]);
            expect_overflow(what, "overflow", env);
        }
        if (selected("overflow") && i != 1) {
            /* (canary mode notices at a switch, which a lone spinning
             * thread never makes) */
            const char *env[] = {"GOMAXPROCS=2", gd, gv, "OTHER_THREAD=1", NULL};
            snprintf(what, sizeof what, "overflow on another thread, stackguard=%s", guards[i]);
            expect_overflow(what, "overflow", env);
        }
        if (selected("reuse")) {
            const char *env[] = {"GOMAXPROCS=2", gd, NULL};
            snprintf(what, sizeof what, "deep stacks reused, stackguard=%s", guards[i]);
            expect_ok(what, "reuse", env);
        }
    }
    if (selected("overflow")) {
        const char *env[] = {"GOMAXPROCS=1", NULL};
        expect_overflow("overflow in main, default guard", "overflow_main", env);
    }
    if (selected("deep")) {
        const char *big[] = {"GOMAXPROCS=2", "GODEBUG=stacksize=262144", NULL};
        expect_ok("130 KiB of recursion with GODEBUG=stacksize=262144", "deep", big);
        const char *dflt[] = {"GOMAXPROCS=2", NULL};
        struct child ch;
        run_child(&ch, "deep", dflt, 20);
        if (ch.timed_out || !WIFSIGNALED(ch.status) ||
            !strstr(ch.err, "fatal error: stack overflow")) {
            show_child("deep, default size", &ch);
            FAIL("130 KiB of recursion must overflow the default 64 KiB stack");
        } else {
            printf("ok   the same recursion overflows the default 64 KiB stack\n");
        }
        free(ch.err);

        const char *bad[] = {"GODEBUG=stacksize=20000", NULL};
        run_child(&ch, "badsize", bad, 20);
        if (ch.timed_out || !WIFSIGNALED(ch.status) || !strstr(ch.err, "stacksize")) {
            show_child("badsize", &ch);
            FAIL("GODEBUG=stacksize=20000 must be refused");
        } else {
            printf("ok   GODEBUG=stacksize=20000 refused\n");
        }
        free(ch.err);
    }
    if (selected("memstats")) {
        const char *p1[] = {"GOMAXPROCS=1", NULL};
        const char *p2[] = {"GOMAXPROCS=2", NULL};
        expect_ok("stack_inuse up and down, GOMAXPROCS=1", "memstats", p1);
        expect_ok("stack_inuse up and down, GOMAXPROCS=2", "memstats", p2);
    }
    if (failures)
        fprintf(stderr, "%d case(s) failed\n", failures);
    return failures != 0;
}
