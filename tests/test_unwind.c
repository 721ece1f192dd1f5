/*
 * test_unwind.c — the heap profiler's stack walker (src/prof/unwind.c)
 * gives exactly libgcc's frames: through -O2 frames, frame-pointer frames
 * (a variable-length array), a thread's outermost frame, a goroutine's, and
 * across a signal frame (which it hands to libgcc); and it handles the
 * ordinary frames itself, from its cache the second time.
 */
#include "check.h"
#include "gort.h"
#include "prof/unwind.h"

#include <pthread.h>
#include <signal.h>

#define MAXF 64

struct walk {
    uintptr_t fast[MAXF], slow[MAXF];
    int nfast, nslow;
};

/* Both walks from one frame, so both start where this one returns to. */
static __attribute__((noinline)) void walk_here(struct walk *w)
{
    w->nfast = unwind_stack(w->fast, MAXF);
    w->nslow = unwind_stack_libgcc(w->slow, MAXF);
    __asm__ volatile("" ::: "memory");
}

static void check_same(const struct walk *w, int atleast, const char *what)
{
    CHECKF(w->nfast == w->nslow, "%s: %d frames against libgcc's %d", what, w->nfast, w->nslow);
    for (int i = 0; i < w->nfast; i++)
        CHECKF(w->fast[i] == w->slow[i], "%s: frame %d is %#lx, libgcc says %#lx", what, i,
               (unsigned long)w->fast[i], (unsigned long)w->slow[i]);
    CHECKF(w->nfast >= atleast, "%s: only %d frames", what, w->nfast);
}

/* Recursion whose frames keep locals on the stack (the stack pointer
 * moves), and every third one a variable-length array (the CFA is then
 * kept in the frame pointer). */
static volatile int sink;

static __attribute__((noinline)) int descend(struct walk *w, int depth)
{
    volatile int locals[8];
    for (int i = 0; i < 8; i++)
        locals[i] = depth + i;
    int r;
    if (depth == 0) {
        walk_here(w);
        r = 0;
    } else if (depth % 3 == 0) {
        volatile char vla[depth * 16 + sink];
        vla[0] = (char)depth;
        r = descend(w, depth - 1) + vla[0];
    } else {
        r = descend(w, depth - 1);
    }
    __asm__ volatile("" ::: "memory");
    return r + locals[depth % 8];
}

static void check_recursion(const char *what)
{
    struct walk w;
    uint64_t before = __atomic_load_n(&unwind_fallbacks, __ATOMIC_RELAXED);
    descend(&w, 20);
    check_same(&w, 21, what);
    /* Again, now from the cache. */
    struct walk w2;
    descend(&w2, 20);
    check_same(&w2, 21, what);
    /* (The frames below check_recursion differ: two call sites.) */
    CHECK(memcmp(w.fast, w2.fast, sizeof(uintptr_t) * 21) == 0);
    CHECKF(__atomic_load_n(&unwind_fallbacks, __ATOMIC_RELAXED) == before,
           "%s: ordinary frames went to libgcc", what);
}

static void *thread_main(void *arg)
{
    (void)arg;
    check_recursion("thread");
    return NULL;
}

/* A walk from a signal handler crosses the kernel's signal frame, which
 * only libgcc follows. */
static struct walk sigwalk;

static void on_signal(int sig)
{
    (void)sig;
    walk_here(&sigwalk);
}

static __attribute__((noinline)) void raise_here(void)
{
    raise(SIGUSR1);
    __asm__ volatile("" ::: "memory");
}

static int ran_in_goroutine;

static void goroutine(void *arg)
{
    check_recursion("goroutine");
    ran_in_goroutine = 1;
    gort_waitgroup_done(arg);
}

static int app_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    gort_waitgroup wg = {0};
    gort_waitgroup_add(&wg, 1);
    gort_go(goroutine, &wg);
    gort_waitgroup_wait(&wg);
    CHECK(ran_in_goroutine);
    check_recursion("main goroutine");
    puts("ok");
    return 0;
}

int main(int argc, char **argv)
{
    check_recursion("main thread");

    pthread_t t;
    CHECK(pthread_create(&t, NULL, thread_main, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);

    uint64_t before = __atomic_load_n(&unwind_fallbacks, __ATOMIC_RELAXED);
    signal(SIGUSR1, on_signal);
    raise_here();
    check_same(&sigwalk, 3, "signal handler");
    CHECK(__atomic_load_n(&unwind_fallbacks, __ATOMIC_RELAXED) > before);

    return gort_main(app_main, argc, argv);
}
