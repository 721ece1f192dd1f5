/*
 * test_leakcheck.c — GODEBUG=leakcheck=1: at exit, malloc'd blocks that
 * nothing reaches are reported by allocation site and the process exits
 * with status 1; blocks reachable from globals, through other malloc'd
 * blocks or through collected objects, blocks freed (on this thread's
 * free lists or by another thread) and uncollectable blocks are not.  A
 * program without leaks exits normally and prints nothing.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gort.h"
#include "child.h"

struct chain {
    struct chain *next;
    char data[120];
};
static struct chain *reachable;          /* a malloc'd list from a global */
static void **collected_holder;          /* a collected object holding a malloc'd block */
void *keep_unc;                          /* an uncollectable block */
void *keep_large;                        /* a large block from a global */

static __attribute__((noinline)) void leak_here(void)
{
    for (int i = 0; i < 10; i++) {
        char *p = malloc(4096);
        memset(p, i, 4096);
        __asm__ volatile("" : : "r"(p) : "memory");
    }
}

static __attribute__((noinline)) void leak_large(void)
{
    char *p = malloc(100000);
    memset(p, 1, 100000);
    /* (The compiler may drop a malloc whose block is never read.) */
    __asm__ volatile("" : : "r"(p) : "memory");
}

static void *free_remotely(void *arg)
{
    free(arg);
    return NULL;
}

static __attribute__((noinline)) void keep_and_free(void)
{
    for (int i = 0; i < 100; i++) {
        struct chain *c = malloc(sizeof *c);
        c->next = reachable;
        reachable = c;
    }
    collected_holder = gort_new(4 * sizeof(void *));
    collected_holder[2] = malloc(777);
    void *unc = gort_malloc_uncollectable(64);
    ((void **)unc)[0] = malloc(333);       /* reachable through an uncollectable root */
    keep_unc = unc;
    keep_large = malloc(100000);
    ((void **)keep_large)[100] = malloc(99);   /* reachable through it */
    for (int i = 0; i < 50; i++)
        free(malloc(64));
    pthread_t t;
    void *p = malloc(48);
    pthread_create(&t, NULL, free_remotely, p);
    pthread_join(t, NULL);
}

int main(void)
{
    const char *mode = getenv("GORT_TEST_MODE");
    if (mode && strcmp(mode, "leaky") == 0) {
        keep_and_free();
        leak_here();
        leak_large();
        scrub_stack();
        printf("leaky done\n");
        return 0;
    }
    if (mode && strcmp(mode, "clean") == 0) {
        keep_and_free();
        scrub_stack();
        printf("clean done\n");
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *env[] = {"GODEBUG=leakcheck=1", NULL};
    struct child ch;
    run_child(&ch, "leaky", env, 60);
    if (!exited(&ch, 1) || !strstr(ch.err, "gort: leakcheck: 11 blocks (") ||
        !strstr(ch.err, "from 2 allocation sites") || !strstr(ch.err, "10 blocks, 40960 bytes") ||
        !strstr(ch.err, "leak_here") || !strstr(ch.err, "leak_large") ||
        strstr(ch.err, "keep_and_free")) {
        show_child("leaky", &ch);
        FAIL("the leaks were not reported as expected");
    } else {
        printf("ok   leaks reported by site:\n%s", ch.err);
    }
    free(ch.err);
    run_child(&ch, "clean", env, 60);
    if (!exited(&ch, 0) || strstr(ch.err, "leakcheck")) {
        show_child("clean", &ch);
        FAIL("a program without leaks was reported");
    } else {
        printf("ok   no leaks, no report\n");
    }
    free(ch.err);
    return failures ? 1 : 0;
}
