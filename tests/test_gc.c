/*
 * test_gc.c — the collector's torture suite, in the spirit of the Boehm
 * GC's gctest: lists and trees built and dropped across many cycles with
 * every live object's contents checked; interior pointers; typed, untyped
 * and pointer-free objects; finalizers (once, in Go's order, resurrecting),
 * cleanups and weak handles; roots in globals, registered ranges and
 * uncollectable blocks; plain threads and goroutines allocating and
 * mutating while cycles run; fork with the collector busy; requests that
 * must fail cleanly; false retention from random stack words; the pacer's
 * bound on the heap; the gctrace line.
 *
 * main() is a driver: every case runs in a child (this binary re-executed
 * with GORT_TEST_MODE): plainly; under GODEBUG=gccheckmark=1, which
 * re-marks each heap stopped and aborts on anything the first mark missed;
 * and with concurrent marking (gcconcurrent=1), under gccheckmark too.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gort.h"
#include "child.h"
#include "gc/stw.h"

static const char *mode;

/* ---- Helpers ------------------------------------------------------------ */

static void collect(void)
{
    scrub_stack();
    gort_gc();
}

static struct gort_memstats ms;
static void stats(void) { gort_memstats(&ms); }

typedef struct node {
    struct node *next;
    long val;
    long check;          /* val * 3 + 1 */
    char *payload;       /* pointer-free bytes: payload[i] == (char)(val + i) */
    long plen;
} node;

static const uint64_t node_ptrs[] = {GORT_PTRBIT(node, next) | GORT_PTRBIT(node, payload)};
static const gort_type node_type = {sizeof(node), node_ptrs, "node"};

static node *make_node(long val, node *next, int typed)
{
    node *n = typed ? gort_new_typed(&node_type) : gort_new(sizeof(node));
    CHECK(n != NULL);
    CHECK(n->next == NULL && n->val == 0 && n->payload == NULL);   /* zeroed */
    n->val = val;
    n->check = val * 3 + 1;
    n->plen = val % 37;
    n->payload = gort_new_noscan((size_t)n->plen + 1);
    CHECK(n->payload != NULL);
    for (long i = 0; i <= n->plen; i++) {
        CHECK(n->payload[i] == 0);
        n->payload[i] = (char)(val + i);
    }
    gort_store((void **)&n->next, next);
    return n;
}

static void check_node(const node *n, long val)
{
    CHECKF(n->val == val && n->check == val * 3 + 1, "node %ld holds %ld/%ld", val, n->val,
           n->check);
    CHECK(n->plen == val % 37);
    for (long i = 0; i <= n->plen; i++)
        CHECKF(n->payload[i] == (char)(val + i), "payload of %ld corrupt at %ld", val, i);
}

static node *make_list(long n, int typed)
{
    node *head = NULL;
    for (long i = 0; i < n; i++)
        head = make_node(i, head, typed);
    return head;
}

static void check_list(const node *head, long n)
{
    long i = n - 1;
    for (const node *p = head; p; p = p->next, i--)
        check_node(p, i);
    CHECKF(i == -1, "list ended early at %ld", i);
}

/* ---- Trees -------------------------------------------------------------- */

typedef struct tree {
    struct tree *left, *right;
    long depth;
} tree;
static const uint64_t tree_ptrs[] = {GORT_PTRBIT(tree, left) | GORT_PTRBIT(tree, right)};
static const gort_type tree_type = {sizeof(tree), tree_ptrs, "tree"};

static tree *make_tree(int depth)
{
    tree *t = gort_new_typed(&tree_type);
    CHECK(t != NULL);
    t->depth = depth;
    if (depth > 0) {
        gort_store((void **)&t->left, make_tree(depth - 1));
        gort_store((void **)&t->right, make_tree(depth - 1));
    }
    return t;
}

static long check_tree(const tree *t, int depth)
{
    CHECKF(t->depth == depth, "tree node depth %ld, want %d", t->depth, depth);
    if (depth == 0) {
        CHECK(t->left == NULL && t->right == NULL);
        return 1;
    }
    return 1 + check_tree(t->left, depth - 1) + check_tree(t->right, depth - 1);
}

/* ---- Cases ------------------------------------------------------------- */

/* Globals are roots. */
static node *global_list;

static int mode_lists(void)
{
    global_list = make_list(2000, 1);
    node *kept[8] = {0};
    char *interior = NULL;
    for (int round = 0; round < 60; round++) {
        node *l = make_list(20000, round & 1);
        check_list(l, 20000);
        if (round % 8 == 3)
            kept[round / 8] = l;
        /* An interior pointer alone keeps a node (and what it reaches). */
        if (round == 5)
            interior = (char *)make_list(100, 1) + offsetof(node, check);
    }
    collect();
    for (int i = 0; i < 8; i++)
        if (kept[i])
            check_list(kept[i], 20000);
    check_list((node *)(interior - offsetof(node, check)), 100);
    check_list(global_list, 2000);
    stats();
    CHECKF(ms.num_gc >= 3, "only %u cycles", ms.num_gc);
    /* Live: 8 lists of 20000 + small ones, each node 48 B + payload <= 48 B. */
    CHECKF(ms.gc_heap_marked < 20u << 20, "marked %lu bytes", (unsigned long)ms.gc_heap_marked);
    printf("lists: %u cycles, %lu KiB marked, pause total %lu us\n", ms.num_gc,
           (unsigned long)(ms.gc_heap_marked >> 10), (unsigned long)(ms.pause_total_ns / 1000));
    return 0;
}

static int mode_trees(void)
{
    tree *longlived = make_tree(16);
    long total = 0;
    for (int round = 0; round < 12; round++) {
        for (int d = 4; d <= 14; d += 2) {
            tree *t = make_tree(d);
            total += check_tree(t, d);
        }
        CHECK(check_tree(longlived, 16) == (1L << 17) - 1);
    }
    /* Big arrays of pointers (large objects, scanned in oblets). */
    tree **arr = gort_new(sizeof(tree *) * 100000);
    CHECK(arr != NULL);
    for (int i = 0; i < 100000; i++)
        gort_store((void **)&arr[i], make_tree(1));
    collect();
    for (int i = 0; i < 100000; i++)
        CHECK(check_tree(arr[i], 1) == 3);
    /* A typed array: element pointers kept, the counter word not followed. */
    tree *tarr = gort_new_array(&tree_type, 50000);
    CHECK(tarr != NULL);
    for (int i = 0; i < 50000; i++) {
        gort_store((void **)&tarr[i].left, make_tree(0));
        tarr[i].depth = i;
    }
    collect();
    for (int i = 0; i < 50000; i++)
        CHECK(tarr[i].left->depth == 0 && tarr[i].depth == i);
    stats();
    printf("trees: %ld nodes checked, %u cycles\n", total, ms.num_gc);
    return 0;
}

/* ---- Pointer maps ---------------------------------------------------------- */

/* Typed objects of 1..8 words with their one pointer in each position,
 * first in runs of one type (spans laid out for it whole), then round-robin
 * with each other and with conservative objects of the same sizes (spans of
 * mixed maps).  Every pointer word must keep its payload; every other word
 * holds the address of a bait object, which must not be kept: the map is
 * the type's, not all words. */
#define PM_WORDS 8
#define PM_RUN 600
static uint64_t pm_masks[PM_WORDS + 1][PM_WORDS];
static gort_type pm_types[PM_WORDS + 1][PM_WORDS];

typedef struct pm_obj {
    uintptr_t w[PM_WORDS];
} pm_obj;

static pm_obj *pm_make(int words, int pos, long tag, gort_weak **bait)
{
    pm_obj *o = gort_new_typed(&pm_types[words][pos]);
    CHECK(o != NULL);
    for (int i = 0; i < words; i++)
        CHECK(o->w[i] == 0);
    char *payload = gort_new_noscan(24);
    CHECK(payload != NULL);
    snprintf(payload, 24, "pm %ld", tag);
    o->w[pos] = (uintptr_t)payload;
    *bait = NULL;
    if (words > 1) {
        void *b = gort_new_noscan(64);
        CHECK(b != NULL);
        *bait = gort_weak_make(b);
        CHECK(*bait != NULL);
        for (int i = 0; i < words; i++)
            if (i != pos)
                o->w[i] = (uintptr_t)b;
    }
    return o;
}

struct pm_set {
    pm_obj **objs;
    gort_weak **baits;
    unsigned char *words, *pos;
    long n;
};

static void pm_add(struct pm_set *set, int words, int pos)
{
    long i = set->n++;
    set->words[i] = (unsigned char)words;
    set->pos[i] = (unsigned char)pos;
    gort_store((void **)&set->objs[i], pm_make(words, pos, i, &set->baits[i]));
}

static __attribute__((noinline)) void pm_fill(struct pm_set *set, bool roundrobin)
{
    if (!roundrobin) {
        for (int words = 1; words <= PM_WORDS; words++)
            for (int pos = 0; pos < words; pos++)
                for (int k = 0; k < PM_RUN; k++)
                    pm_add(set, words, pos);
        return;
    }
    for (int k = 0; k < PM_RUN; k++)
        for (int words = 1; words <= PM_WORDS; words++)
            for (int pos = 0; pos < words; pos++) {
                pm_add(set, words, pos);
                /* A conservative neighbour of the same size. */
                CHECK(gort_new(sizeof(uintptr_t) * (size_t)words) != NULL);
            }
}

static int mode_ptrmaps(void)
{
    for (int words = 1; words <= PM_WORDS; words++)
        for (int pos = 0; pos < words; pos++) {
            pm_masks[words][pos] = (uint64_t)1 << pos;
            pm_types[words][pos] = (gort_type){(size_t)words * sizeof(uintptr_t),
                                               &pm_masks[words][pos], "pm"};
        }
    long total = 2L * PM_RUN * (PM_WORDS * (PM_WORDS + 1) / 2);
    struct pm_set set = {gort_new(sizeof(pm_obj *) * (size_t)total),
                         calloc((size_t)total, sizeof(gort_weak *)), malloc((size_t)total),
                         malloc((size_t)total), 0};
    CHECK(set.objs != NULL && set.baits != NULL && set.words != NULL && set.pos != NULL);
    pm_fill(&set, false);
    pm_fill(&set, true);
    CHECK(set.n == total);
    for (int round = 0; round < 3; round++)
        collect();
    /* Reuse whatever was wrongly freed, so that a lost payload shows. */
    for (long i = 0; i < 2 * total; i++)
        memset(gort_new_noscan(24), 'X', 24);
    long nbaits = 0, kept = 0;
    for (long i = 0; i < set.n; i++) {
        const pm_obj *o = set.objs[i];
        int words = set.words[i], pos = set.pos[i];
        char want[24];
        snprintf(want, sizeof want, "pm %ld", i);
        CHECKF(strcmp((const char *)o->w[pos], want) == 0,
               "object %ld (%d words, pointer at %d): payload corrupt", i, words, pos);
        if (!set.baits[i])
            continue;
        nbaits++;
        kept += gort_weak_get(set.baits[i]) != NULL;
        gort_weak_free(set.baits[i]);
    }
    /* Conservative stack words may keep a few baits; a map of all words
     * would keep every one. */
    CHECKF(kept * 10 < nbaits, "%ld of %ld baits kept by non-pointer words", kept, nbaits);
    printf("ptrmaps: %ld objects, %ld of %ld baits kept\n", set.n, kept, nbaits);
    free(set.baits);
    free(set.words);
    free(set.pos);
    return 0;
}

/* A weak handle to a fresh object, made in a frame that then dies. */
static __attribute__((noinline)) gort_weak *orphan(size_t size, int noscan)
{
    void *p = noscan ? gort_new_noscan(size) : gort_new(size);
    CHECK(p != NULL);
    gort_weak *w = gort_weak_make(p);
    CHECK(w != NULL);
    return w;
}

/* A fresh object stored only where `how` says, in a frame that then dies
 * (so no stale copy stays behind in the caller). */
enum { inScanned, inNoscan, inTypedWord, inRoots, inUncollectable, inPlainMalloc };
static __attribute__((noinline)) gort_weak *weak_stored(int how, void *container)
{
    void *p = gort_new(100);
    CHECK(p != NULL);
    switch (how) {
    case inScanned:
    case inRoots:
    case inUncollectable:
    case inPlainMalloc:
        ((void **)container)[1] = p;
        break;
    case inNoscan:
        memcpy((char *)container + 8, &p, sizeof p);
        break;
    case inTypedWord:
        ((tree *)container)->depth = (long)(uintptr_t)p;   /* an address in a non-pointer word */
        break;
    }
    gort_weak *w = gort_weak_make(p);
    CHECK(w != NULL);
    return w;
}

/* Whether w still names container[1].  Out of line, so that the object's
 * address is never loaded in mode_weak's own frame or registers, where a
 * stale copy would keep it alive after container[1] is cleared. */
static __attribute__((noinline)) bool weak_holds(gort_weak *w, void **container)
{
    return gort_weak_get(w) == container[1];
}

static int mode_weak(void)
{
    /* Unreachable objects are found dead, small and large. */
    gort_weak *w1 = orphan(64, 0), *w2 = orphan(1 << 20, 0), *w3 = orphan(8, 1);
    collect();
    CHECK(gort_weak_get(w1) == NULL);
    CHECK(gort_weak_get(w2) == NULL);
    CHECK(gort_weak_get(w3) == NULL);

    /* A scanned object keeps its referent; a noscan one does not; a typed
     * object's non-pointer word does not.  Roots: a registered range in
     * malloc'd memory and an uncollectable block keep; plain malloc'd
     * memory does not. */
    void **holder = gort_new(sizeof(void *) * 4);
    char *nsholder = gort_new_noscan(64);
    tree *typed = gort_new_typed(&tree_type);
    void **plain = malloc(4 * sizeof(void *));
    void **plain2 = malloc(4 * sizeof(void *));
    void **unc = gort_malloc_uncollectable(4 * sizeof(void *));
    CHECK(holder && nsholder && typed && plain && plain2 && unc);
    CHECK(unc[0] == NULL && unc[3] == NULL);
    CHECK(gort_add_roots(plain, plain + 4) == 0);
    gort_weak *wk = weak_stored(inScanned, holder);
    gort_weak *wn = weak_stored(inNoscan, nsholder);
    gort_weak *wt = weak_stored(inTypedWord, typed);
    gort_weak *wr = weak_stored(inRoots, plain);
    gort_weak *wu = weak_stored(inUncollectable, unc);
    gort_weak *wp = weak_stored(inPlainMalloc, plain2);
    collect();
    CHECK(weak_holds(wk, holder));
    CHECK(gort_weak_get(wn) == NULL);
    CHECK(gort_weak_get(wt) == NULL);
    CHECK(weak_holds(wr, plain));
    CHECK(weak_holds(wu, unc));
    CHECK(gort_weak_get(wp) == NULL);
    /* Dropping the references lets them go. */
    CHECK(gort_remove_roots(plain, plain + 4) == 0);
    holder[1] = NULL;
    unc[1] = NULL;
    collect();
    CHECK(gort_weak_get(wk) == NULL);
    CHECK(gort_weak_get(wr) == NULL);
    CHECK(gort_weak_get(wu) == NULL);
    gort_weak *all[] = {w1, w2, w3, wk, wn, wt, wr, wu, wp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        gort_weak_free(all[i]);
    free(plain);
    free(plain2);
    gort_free(unc);
    gort_keepalive(holder);
    gort_keepalive(nsholder);
    gort_keepalive(typed);
    printf("weak: reachability through every kind of root and object holds\n");
    return 0;
}

/* ---- Finalizers --------------------------------------------------------- */

static atomic_int finA, finB, cleanups;
static atomic_long finOrder;          /* A then B: 12 */
static void *resurrected;
static gort_weak *resurrectedWeak;

static void fin_a(void *obj, void *arg)
{
    CHECK(arg == (void *)0xa);
    node *n = obj;
    check_node(n, 7);
    /* What A points to (B) is still intact while A's finalizer runs. */
    check_node(n->next, 8);
    atomic_fetch_add(&finA, 1);
    atomic_store(&finOrder, atomic_load(&finOrder) * 10 + 1);
    resurrected = obj;   /* brought back to life */
}

static void fin_b(void *obj, void *arg)
{
    (void)arg;
    check_node(obj, 8);
    atomic_fetch_add(&finB, 1);
    atomic_store(&finOrder, atomic_load(&finOrder) * 10 + 2);
}

static void on_cleanup(void *arg)
{
    CHECK(arg == (void *)0xc1ea);
    atomic_fetch_add(&cleanups, 1);
}

static __attribute__((noinline)) gort_weak *setup_finalizers(void)
{
    node *b = make_node(8, NULL, 1);
    node *a = make_node(7, b, 1);
    CHECK(gort_set_finalizer(a, fin_a, (void *)0xa) == 0);
    CHECK(gort_set_finalizer(b, fin_b, NULL) == 0);
    CHECK(gort_set_finalizer(a, fin_a, NULL) == -1 && errno == EEXIST);
    /* A removed finalizer never runs. */
    node *c = make_node(9, NULL, 1);
    CHECK(gort_set_finalizer(c, fin_b, NULL) == 0);
    CHECK(gort_set_finalizer(c, NULL, NULL) == 0);
    /* A cleanup runs and its object is freed at once. */
    node *d = make_node(10, NULL, 0);
    CHECK(gort_add_cleanup(d, on_cleanup, (void *)0xc1ea) == 0);
    resurrectedWeak = gort_weak_make(a);
    return gort_weak_make(d);
}

#define wait_for(v, want) wait_for_(v, want, #v)
static void wait_for_(atomic_int *v, int want, const char *name)
{
    for (int i = 0; i < 2000 && atomic_load(v) < want; i++) {
        collect();
        usleep(1000);
    }
    CHECKF(atomic_load(v) >= want, "waited for %s >= %d, have %d", name, want, atomic_load(v));
}

static int mode_final(void)
{
    gort_weak *wd = setup_finalizers();
    wait_for(&finA, 1);
    wait_for(&cleanups, 1);
    collect();
    CHECK(gort_weak_get(wd) == NULL);
    /* Weak handles are cleared when the object is first found dead, even
     * though its finalizer brought it back. */
    CHECK(gort_weak_get(resurrectedWeak) == NULL);
    CHECK(atomic_load(&finB) == 0);       /* B waits for A's finalizer */
    check_node(resurrected, 7);
    check_node(((node *)resurrected)->next, 8);
    resurrected = NULL;
    wait_for(&finB, 1);
    for (int i = 0; i < 5; i++)
        collect();
    usleep(20000);
    CHECK(atomic_load(&finA) == 1 && atomic_load(&finB) == 1 && atomic_load(&cleanups) == 1);
    CHECKF(atomic_load(&finOrder) == 12, "finalizer order %ld", atomic_load(&finOrder));
    gort_weak_free(wd);
    gort_weak_free(resurrectedWeak);
    printf("final: finalizers once, A before B, resurrection, cleanup\n");
    return 0;
}

/* ---- Threads ------------------------------------------------------------ */

static atomic_int stop_threads;

static void *mutator(void *arg)
{
    long id = (long)arg;
    long rounds = 0;
    node *keep = make_list(500, 1);
    while (!atomic_load(&stop_threads) || rounds < 20) {
        node *l = make_list(2000 + id * 10, rounds & 1);
        check_list(l, 2000 + id * 10);
        /* Mutate: splice a fresh node in, with the barrier. */
        node *fresh = make_node(499, NULL, 1);
        gort_store((void **)&fresh->next, keep->next);
        gort_store((void **)&keep->next, fresh);
        gort_store((void **)&keep->next, fresh->next);
        check_list(keep, 500);
        rounds++;
    }
    return (void *)rounds;
}

static void *sleeper(void *arg)
{
    (void)arg;
    gort_register_thread();
    node *mine = make_list(1000, 0);
    /* Blocked in the kernel while cycles run: its stack still holds mine. */
    for (int i = 0; i < 20; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    check_list(mine, 1000);
    gort_unregister_thread();
    return NULL;
}

static int mode_threads(void)
{
    enum { N = 4 };
    pthread_t t[N + 1];
    for (long i = 0; i < N; i++)
        CHECK(pthread_create(&t[i], NULL, mutator, (void *)i) == 0);
    CHECK(pthread_create(&t[N], NULL, sleeper, NULL) == 0);
    for (int i = 0; i < 30; i++) {
        gort_gc();
        usleep(2000);
    }
    atomic_store(&stop_threads, 1);
    long rounds = 0;
    for (int i = 0; i < N; i++) {
        void *r;
        CHECK(pthread_join(t[i], &r) == 0);
        rounds += (long)r;
    }
    CHECK(pthread_join(t[N], NULL) == 0);
    stats();
    CHECK(ms.num_gc >= 30);
    printf("threads: %d mutators, %ld rounds, %u cycles\n", N, rounds, ms.num_gc);
    return 0;
}

/* ---- Goroutines --------------------------------------------------------- */

static gort_chan *results;

static void worker(void *arg)
{
    gort_chan *in = arg;
    node *l;
    /* The only reference to each list sits in the channel's buffer while
     * the sender moves on. */
    while (gort_chan_recv(in, &l)) {
        check_list(l, 3000);
        long ok = 1;
        gort_chan_send(results, &ok);
    }
}

static atomic_int finalizerOnGoroutine;
static void fin_goroutine(void *obj, void *arg)
{
    (void)obj;
    (void)arg;
    atomic_store(&finalizerOnGoroutine, gort_goid() > 0 ? 1 : -1);
}

static __attribute__((noinline)) void finalizable(void)
{
    CHECK(gort_set_finalizer(gort_new(32), fin_goroutine, NULL) == 0);
}

static int goroutines_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    enum { W = 8, PER = 40 };
    gort_chan *in = gort_chan_make(sizeof(node *), 64);
    results = gort_chan_make(sizeof(long), W * PER);
    for (int i = 0; i < W; i++)
        gort_go(worker, in);
    for (int i = 0; i < W * PER; i++) {
        node *l = make_list(3000, i & 1);
        gort_chan_send(in, &l);
        l = NULL;
        if (i % 50 == 0)
            gort_gc();
    }
    for (int i = 0; i < W * PER; i++) {
        long ok;
        CHECK(gort_chan_recv(results, &ok) && ok == 1);
    }
    gort_chan_close(in);
    finalizable();
    for (int i = 0; i < 1000 && atomic_load(&finalizerOnGoroutine) == 0; i++) {
        collect();
        gort_sleep(1000000);
    }
    CHECK(atomic_load(&finalizerOnGoroutine) == 1);
    stats();
    printf("goroutines: %d lists through channels, %u cycles, numgoroutine %d\n", W * PER,
           ms.num_gc, gort_numgoroutine());
    return 0;
}

/* ---- Fork ---------------------------------------------------------------- */

static int mode_fork(void)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, mutator, (void *)1) == 0);
    node *mine = make_list(5000, 1);
    for (int k = 0; k < 5; k++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            /* The child has one thread; the collector works on. */
            node *l = make_list(20000, 0);
            collect();
            check_list(l, 20000);
            check_list(mine, 5000);
            _exit(0);
        }
        int st;
        CHECK(waitpid(pid, &st, 0) == pid);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child status 0x%x", st);
        gort_gc();
    }
    atomic_store(&stop_threads, 1);
    CHECK(pthread_join(t, NULL) == 0);
    check_list(mine, 5000);
    printf("fork: 5 children collected and checked their heaps\n");
    return 0;
}

/* ---- Errors -------------------------------------------------------------- */

static int mode_errors(void)
{
    errno = 0;
    CHECK(gort_new(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(gort_new_noscan(SIZE_MAX / 2) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(gort_new_array(&tree_type, SIZE_MAX / 8) == NULL && errno == ENOMEM);
    gort_type bad = {12, node_ptrs, "bad"};   /* pointer map on a size not in words */
    errno = 0;
    CHECK(gort_new_array(&bad, 1) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(gort_new_typed(NULL) == NULL && errno == EINVAL);
    int local;
    errno = 0;
    CHECK(gort_set_finalizer(&local, fin_b, NULL) == -1 && errno == EINVAL);
    node *n = gort_new(sizeof(node));
    errno = 0;
    CHECK(gort_set_finalizer((char *)n + 8, fin_b, NULL) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(gort_weak_make(&local) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(gort_add_cleanup(n, NULL, NULL) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(gort_add_roots(&local, &local) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(gort_remove_roots(&local, &local + 1) == -1 && errno == EINVAL);
    CHECK(gort_new(0) != NULL && gort_new(0) != gort_new(0));
    /* Nothing was lost: the heap still works. */
    node *l = make_list(1000, 1);
    collect();
    check_list(l, 1000);
    gort_keepalive(n);
    printf("errors: every bad request failed cleanly\n");
    return 0;
}

/* The marking mode: stopped until the program's first gort_store, then
 * concurrent, unless GODEBUG=gcconcurrent chose; an explicit choice
 * sticks.  (Run with gcconcurrent unset, 0 and 1.) */
static int mode_mode(void)
{
    const char *dbg = getenv("GODEBUG");
    int chosen = !dbg ? -1 : strstr(dbg, "gcconcurrent=1") ? 1 : strstr(dbg, "gcconcurrent=0") ? 0 : -1;
    node *a = gort_new(sizeof(node)), *b = gort_new(sizeof(node));
    collect();
    /* Before any store: GODEBUG's choice, stopped when unset.  Asking
     * chooses (explicitly, the same mode again). */
    bool before = gort_set_gc_concurrent(false);
    CHECK(before == (chosen == 1));
    gort_set_gc_concurrent(before);
    gort_store((void **)&a->next, b);
    collect();
    /* An explicit choice is not changed by a store. */
    bool after = gort_set_gc_concurrent(before);
    CHECK(after == before);
    CHECK(a->next == b);
    printf("mode: GODEBUG %s: %s\n", dbg ? dbg : "unset", after ? "concurrent" : "stopped");
    gort_keepalive(a);
    return 0;
}

/* Unchosen mode, first gort_store: concurrent from then on. */
static int mode_mode_default(void)
{
    node *a = gort_new(sizeof(node)), *b = gort_new(sizeof(node));
    collect();
    gort_store((void **)&a->next, b);
    collect();
    CHECK(a->next == b && b->next == NULL);
    bool now = gort_set_gc_concurrent(true);
    CHECK(now);
    printf("mode: the first gort_store selected concurrent marking\n");
    gort_keepalive(a);
    return 0;
}

static int mode_free_collected(void)
{
    void *p = gort_new(16);
    free(p);   /* must abort */
    return 0;
}

/* ---- False retention ----------------------------------------------------- */

static __attribute__((noinline)) void drop_lists(long total)
{
    for (long i = 0; i < total / 20000; i++)
        check_list(make_list(20000, 1), 20000);
}

static __attribute__((noinline)) uint64_t random_words_and_collect(uint64_t *seed)
{
    volatile uint64_t words[2048];
    for (int i = 0; i < 2048; i++)
        words[i] = rnd(seed);
    gort_gc();
    uint64_t sum = 0;
    for (int i = 0; i < 2048; i++)
        sum += words[i];
    return sum;
}

static int mode_retention(void)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)time(NULL);
    drop_lists(400000);
    stats();
    uint64_t dead = ms.total_alloc;
    scrub_stack();
    uint64_t sink = random_words_and_collect(&seed);
    stats();
    uint64_t kept = ms.gc_heap_marked;
    printf("retention: %lu KiB dead, %lu KiB kept after 2048 random stack words (%.4f%%)\n",
           (unsigned long)(dead >> 10), (unsigned long)(kept >> 10), 100.0 * kept / dead);
    CHECKF(kept * 1000 < dead, "kept %lu of %lu dead bytes", (unsigned long)kept,
           (unsigned long)dead);
    return sink == 1;   /* (never) */
}

/* ---- Pacing -------------------------------------------------------------- */

/* The scavenger returns what is above the goal: 64 MiB live, then dropped;
 * with scavengedelay at a minute, only the collector's retain goal can
 * release it within the two seconds allowed. */
/* Concurrent marking keeps its pauses short whatever the live heap: with
 * ~56 MiB live (a stopped mark of it takes 30 ms and more here), no
 * pause of ten cycles may reach 20 ms.  A sanity bound a loaded machine
 * meets; the figures are bench/gc's. */
static int mode_pauses(void)
{
    node *live = make_list(800000, 1);
    collect();
    stats();
    uint32_t n0 = ms.num_gc;
    for (int i = 0; i < 10; i++) {
        node *tmp = make_list(20000, 0);   /* garbage, and pointer stores */
        (void)tmp;
        gort_gc();
    }
    stats();
    CHECK(ms.num_gc >= n0 + 10);
    uint64_t worst = 0;
    for (uint32_t k = n0; k < ms.num_gc; k++)
        if (ms.pause_ns[k % 256] > worst)
            worst = ms.pause_ns[k % 256];
    check_list(live, 800000);
    printf("pauses: %u cycles over %lu MiB marked, longest %lu us\n", ms.num_gc - n0,
           (unsigned long)(ms.gc_heap_marked >> 20), (unsigned long)(worst / 1000));
    CHECKF(ms.gc_heap_marked >= (uint64_t)48 << 20, "only %lu KiB marked",
           (unsigned long)(ms.gc_heap_marked >> 10));
    CHECKF(worst < 20u * 1000 * 1000, "a pause of %lu us", (unsigned long)(worst / 1000));
    return 0;
}

/* Stops ask before they signal: a thread that allocates collected objects
 * stops itself at its next refill, while one that only computes (no safe
 * point) must still be stopped, by SIGPWR, and neither may lose objects. */
static atomic_int stops_done;
static atomic_long spun;

static void *stops_allocator(void *arg)
{
    node **keep = arg;
    long i = 0;
    while (!atomic_load(&stops_done)) {
        node *n = make_node(i, NULL, 1);
        gort_store((void **)&keep[i % 64], n);
        i++;
    }
    return NULL;
}

static node *stores_target;

/* Stores pointers and never allocates: no safe point but the end of
 * gort_store's section, which is where the ask reaches it. */
static void *stops_storer(void *arg)
{
    (void)arg;
    gort_register_thread();
    node *keep[2] = {stores_target, NULL};
    for (long i = 0; !atomic_load_explicit(&stops_done, memory_order_relaxed); i++)
        gort_store((void **)&stores_target->next, keep[i & 1]);
    return NULL;
}

static void *stops_spinner(void *arg)
{
    (void)arg;
    gort_register_thread();
    while (!atomic_load_explicit(&stops_done, memory_order_relaxed))
        atomic_fetch_add_explicit(&spun, 1, memory_order_relaxed);
    return NULL;
}

static int mode_stops(void)
{
    node **keep = gort_new(64 * sizeof *keep);
    CHECK(keep != NULL);
    gort_register_thread();
    pthread_t a, b;
    /* The allocator first, alone beside this thread and on another CPU: a
     * thread that shares the collector's CPU cannot run to answer while
     * the collector waits for it, and is signalled (the scheduler's
     * placement, not gort's, so the two are kept apart here). */
    cpu_set_t all, cpus[2];
    int ncpus = 0;
    CHECK(sched_getaffinity(0, sizeof all, &all) == 0);
    for (int cpu = 0; cpu < CPU_SETSIZE && ncpus < 2; cpu++)
        if (CPU_ISSET(cpu, &all)) {
            CPU_ZERO(&cpus[ncpus]);
            CPU_SET(cpu, &cpus[ncpus++]);
        }
    if (ncpus == 2)
        CHECK(sched_setaffinity(0, sizeof cpus[0], &cpus[0]) == 0);
    CHECK(pthread_create(&a, NULL, stops_allocator, keep) == 0);
    if (ncpus == 2)
        CHECK(pthread_setaffinity_np(a, sizeof cpus[1], &cpus[1]) == 0);
    uint64_t asked0 = stw_nasked;
    for (int i = 0; i < 20; i++)
        gort_gc();
    uint64_t asked = stw_nasked - asked0;
    if (ncpus == 2)
        CHECK(pthread_setaffinity_np(a, sizeof all, &all) == 0);
    /* Then a thread that only stores: it stops itself too. */
    atomic_store(&stops_done, 1);
    pthread_join(a, NULL);
    atomic_store(&stops_done, 0);
    stores_target = make_node(7, NULL, 1);
    CHECK(pthread_create(&a, NULL, stops_storer, NULL) == 0);
    if (ncpus == 2)
        CHECK(pthread_setaffinity_np(a, sizeof cpus[1], &cpus[1]) == 0);
    asked0 = stw_nasked;
    for (int i = 0; i < 20; i++)
        gort_gc();
    uint64_t askedStorer = stw_nasked - asked0;
    atomic_store(&stops_done, 1);
    pthread_join(a, NULL);
    atomic_store(&stops_done, 0);
    if (ncpus == 2)
        CHECK(sched_setaffinity(0, sizeof all, &all) == 0);
    CHECK(pthread_create(&a, NULL, stops_allocator, keep) == 0);
    CHECK(pthread_create(&b, NULL, stops_spinner, NULL) == 0);
    while (atomic_load(&spun) == 0)
        sched_yield();
    uint64_t signalled0 = stw_nsignalled;
    for (int i = 0; i < 20; i++)
        gort_gc();
    uint64_t signalled = stw_nsignalled - signalled0;
    atomic_store(&stops_done, 1);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    collect();
    for (int k = 0; k < 64; k++)
        if (keep[k])
            check_node(keep[k], keep[k]->val);
    printf("stops: %lu threads stopped themselves over 40 stops (a storer: %lu), then %lu "
           "signalled over 40\n",
           (unsigned long)asked, (unsigned long)askedStorer, (unsigned long)signalled);
    CHECKF(asked > 0, "no thread stopped itself when asked");
    /* Without the flag it can only be signalled (0 of 40); with it, 40 of
     * 40 on a quiet machine, and 6 in the worst of ten runs beside a CPU
     * hog that shares its CPU. */
    CHECKF(askedStorer > 0, "a thread in a gort_store loop never stopped itself (40 stops)");
    check_node(stores_target, 7);
    CHECKF(signalled >= 40, "the computing thread was signalled %lu times, not every stop",
           (unsigned long)signalled);
    return 0;
}

enum { SCAV_N = 4096, SCAV_EACH = 16 << 10 };

/* The table lives in this frame only, gone once it returns. */
static __attribute__((noinline)) uint64_t scavenge_fill(void)
{
    void **table = gort_new(SCAV_N * sizeof *table);
    CHECK(table != NULL);
    for (size_t i = 0; i < SCAV_N; i++) {
        table[i] = gort_new_noscan(SCAV_EACH);
        CHECK(table[i] != NULL);
        memset(table[i], 1, SCAV_EACH);
    }
    collect();
    stats();
    CHECK(ms.gc_heap_marked >= (uint64_t)SCAV_N * SCAV_EACH);
    gort_keepalive(table);
    return ms.heap_released;
}

static int mode_scavenge(void)
{
    uint64_t released0 = scavenge_fill();
    collect();
    collect();
    uint64_t released = 0;
    for (int i = 0; i < 200; i++) {
        stats();
        released = ms.heap_released - released0;
        if (released >= (uint64_t)48 << 20)
            break;
        usleep(10000);
    }
    printf("scavenge: %lu MiB released of 64 MiB dropped (next_gc %lu KiB)\n",
           (unsigned long)(released >> 20), (unsigned long)(ms.next_gc >> 10));
    CHECKF(released >= (uint64_t)48 << 20, "only %lu KiB released", (unsigned long)(released >> 10));
    return 0;
}

/* GOGC=100: while garbage churns, the heap stays within 2 x live + 4 MiB
 * (or the goal, which adds stacks and globals). */
static node *pacer_check_peak(int nlive, int rounds)
{
    node *live = make_list(nlive, 1);   /* ~85 bytes a node with payloads */
    collect();
    stats();
    /* The goal adds stacks and globals (large under sanitizers). */
    uint64_t liveBytes = ms.gc_heap_marked, peak = 0, goal = ms.next_gc;
    uint64_t bound = 2 * liveBytes + (4u << 20);
    if (goal > bound)
        bound = goal;
    bound += 1u << 20;   /* a span's worth of slack past the trigger */
    for (int i = 0; i < rounds; i++) {
        node *tmp = make_list(5000, 0);
        (void)tmp;
        stats();
        if (ms.gc_heap_live > peak)
            peak = ms.gc_heap_live;
    }
    check_list(live, nlive);
    printf("pacer: live %lu KiB, peak %lu KiB (bound %lu KiB), next_gc %lu KiB\n",
           (unsigned long)(liveBytes >> 10), (unsigned long)(peak >> 10),
           (unsigned long)(bound >> 10), (unsigned long)(ms.next_gc >> 10));
    CHECKF(peak <= bound, "peak %lu > bound %lu (live %lu)", (unsigned long)peak,
           (unsigned long)bound, (unsigned long)liveBytes);
    return live;
}

/* The goal's live figure (goal_live in mgc.c) may lag a step up of the
 * live heap by one cycle, never more, and the goal always leaves at least
 * half the usual runway over what is marked. */
static void pacer_check_growth(node *live, int nlive)
{
    node *more = make_list(4 * nlive, 1);
    for (int i = 0; i < 2; i++) {
        collect();
        stats();
        uint64_t marked = ms.gc_heap_marked;
        CHECKF(ms.next_gc >= marked + marked / 2, "cycle %d: goal %lu, marked %lu", i,
               (unsigned long)ms.next_gc, (unsigned long)marked);
    }
    /* Two cycles over the same live heap: the goal doubles it. */
    uint64_t marked = ms.gc_heap_marked;
    CHECKF(ms.next_gc >= 2 * marked - marked / 32, "goal %lu after two marks of %lu",
           (unsigned long)ms.next_gc, (unsigned long)marked);
    check_list(more, 4 * nlive);
    check_list(live, nlive);
    gort_keepalive(more);
}

/* No thread of the process runs at idle priority: a cycle waits for every
 * span a sweeper has claimed, and a thread the OS starves while it holds
 * one held cycles (and allocation) up for over a second on a busy machine. */
static void check_no_idle_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid <= 0)
            continue;
        int policy = sched_getscheduler(tid);
        CHECKF(policy != SCHED_IDLE, "thread %d runs at SCHED_IDLE", (int)tid);
        n++;
    }
    closedir(d);
    CHECK(n > 1);   /* the collector's threads are among them */
}

static int mode_pacer(void)
{
    node *live = pacer_check_peak(60000, 200);
    pacer_check_growth(live, 60000);
    check_no_idle_threads();

    /* GOGC off: no cycle until asked. */
    int old = gort_set_gc_percent(-1);
    CHECK(old == 100);
    stats();
    uint32_t n0 = ms.num_gc;
    for (int i = 0; i < 100; i++)
        make_list(5000, 0);
    stats();
    CHECK(ms.num_gc == n0);
    gort_gc();
    stats();
    CHECK(ms.num_gc == n0 + 1 && ms.num_forced_gc >= 1);
    CHECK(gort_set_gc_percent(100) == -1);

    /* A memory limit brings cycles forward. */
    CHECK(gort_set_memory_limit(-1) == INT64_MAX);
    gort_set_memory_limit(64 << 20);
    stats();
    uint64_t goalLimited = ms.next_gc;
    CHECK(gort_set_memory_limit(INT64_MAX) == 64 << 20);
    gort_set_gc_percent(1000);
    stats();
    CHECKF(goalLimited < ms.next_gc, "limit goal %lu, GOGC=1000 goal %lu",
           (unsigned long)goalLimited, (unsigned long)ms.next_gc);
    gort_set_gc_percent(100);
    check_list(live, 60000);
    return 0;
}

/* The same bound with every core busy in other processes, where a cycle's
 * thread may wait for a core and allocation must wait for it in turn
 * (gc_pace).  It passed before that wait too: the 7x overshoot seen on a
 * loaded machine came from the idle-priority sweeper, which
 * check_no_idle_threads covers; this keeps the bound honest under load. */
static int mode_pacer_loaded(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    pid_t hogs[64];
    int nhogs = 0;
    for (long i = 0; i < ncpu && nhogs < 64; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            /* Gone with the test, whichever way it ends. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            alarm(120);
            /* Busy, with short gaps: a thread of low priority gets to
             * run in them, and can be caught holding work when they end. */
            for (;;) {
                struct timespec t0, t1;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                do
                    clock_gettime(CLOCK_MONOTONIC, &t1);
                while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 2000000);
                usleep(50);
            }
        }
        hogs[nhogs++] = pid;
    }
    pacer_check_peak(400000, 1500);
    for (int i = 0; i < nhogs; i++) {
        kill(hogs[i], SIGKILL);
        waitpid(hogs[i], NULL, 0);
    }
    return 0;
}

/* A program that allocates faster than the background worker marks a
 * large live heap: its allocations pay with mark assists (gctrace's assist
 * CPU, checked by the parent) and every tree stays whole. */
static int mode_assists(void)
{
    tree *longlived = make_tree(19);   /* 1 M nodes, 24 MiB */
    long total = 0;
    for (int round = 0; round < 2000; round++) {
        tree *t = make_tree(12);
        total += check_tree(t, 12);
    }
    CHECK(total == 2000 * ((1L << 13) - 1));
    CHECK(check_tree(longlived, 19) == (1L << 20) - 1);
    return 0;
}

/* A fresh span of collected objects comes faulted in, so the program's
 * first stores take no page fault (a stop would wait out a fault under
 * way).  The 30000-byte class is this process's first use of it: fresh
 * pages, which without that are not resident until written. */
static int mode_populate(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *probe = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(probe != MAP_FAILED);
    bool can = madvise(probe, page, 23 /* MADV_POPULATE_WRITE */) == 0;
    munmap(probe, page);
    if (!can) {
        printf("populate: this kernel has no MADV_POPULATE_WRITE (Linux 5.14): nothing to check\n");
        return 0;
    }
    size_t pages = 0, resident = 0;
    for (int i = 0; i < 8; i++) {
        errno = 12345;
        char *p = gort_new_noscan(30000);
        CHECK(p != NULL);
        CHECK(errno == 12345);   /* a successful allocation leaves errno */
        uintptr_t lo = (uintptr_t)p & ~(page - 1);
        uintptr_t hi = ((uintptr_t)p + 30000 + page - 1) & ~(page - 1);
        unsigned char vec[64];
        CHECK((hi - lo) / page <= sizeof vec);
        CHECK(mincore((void *)lo, hi - lo, vec) == 0);
        for (size_t k = 0; k < (hi - lo) / page; k++, pages++)
            resident += vec[k] & 1;
    }
    printf("populate: %zu of %zu pages of fresh objects resident before any store\n", resident,
           pages);
    CHECKF(resident == pages, "only %zu of %zu pages resident", resident, pages);
    return 0;
}

/* A thread whose stop the signal answered keeps that stop's ask; once it
 * has left the registry (a thread's exit: its cache's collected spans go
 * back after), the next nosuspend section it leaves must not try to stop
 * (it dereferenced its gone registration). */
static void *unregistered_thread(void *arg)
{
    static void *slot;
    void **obj = gort_new(2 * sizeof(void *));
    CHECK(obj != NULL && gctls.self != NULL);
    gcthread_unregister();
    CHECK(gctls.self == NULL && gctls.pending == 0);
    __atomic_store_n(&gctls.pending, 1, __ATOMIC_RELAXED);   /* the stale ask */
    gort_store(&slot, arg);
    CHECK(gctls.pending == 0 && slot == arg);
    return NULL;
}

static int mode_unregistered(void)
{
    pthread_t t;
    static int token;
    CHECK(pthread_create(&t, NULL, unregistered_thread, &token) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    gort_gc();
    printf("unregistered: a stale ask after leaving the registry is dropped\n");
    return 0;
}

static int mode_trace(void)
{
    node *l = make_list(30000, 1);
    for (int i = 0; i < 20; i++)
        make_list(20000, 0);
    gort_gc();
    check_list(l, 30000);
    return 0;
}

static int run_mode(void)
{
    if (!strcmp(mode, "lists")) return mode_lists();
    if (!strcmp(mode, "trees")) return mode_trees();
    if (!strcmp(mode, "ptrmaps")) return mode_ptrmaps();
    if (!strcmp(mode, "weak")) return mode_weak();
    if (!strcmp(mode, "final")) return mode_final();
    if (!strcmp(mode, "threads")) return mode_threads();
    if (!strcmp(mode, "fork")) return mode_fork();
    if (!strcmp(mode, "errors")) return mode_errors();
    if (!strcmp(mode, "free_collected")) return mode_free_collected();
    if (!strcmp(mode, "mode")) return mode_mode();
    if (!strcmp(mode, "mode_default")) return mode_mode_default();
    if (!strcmp(mode, "retention")) return mode_retention();
    if (!strcmp(mode, "pacer")) return mode_pacer();
    if (!strcmp(mode, "pacer_loaded")) return mode_pacer_loaded();
    if (!strcmp(mode, "assists")) return mode_assists();
    if (!strcmp(mode, "scavenge")) return mode_scavenge();
    if (!strcmp(mode, "pauses")) return mode_pauses();
    if (!strcmp(mode, "stops")) return mode_stops();
    if (!strcmp(mode, "trace")) return mode_trace();
    if (!strcmp(mode, "populate")) return mode_populate();
    if (!strcmp(mode, "unregistered")) return mode_unregistered();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}

/* ---- The driver ------------------------------------------------------- */

static void expect_case(const char *m, const char *const *env, int limit)
{
    char what[160];
    snprintf(what, sizeof what, "%s%s%s", m, env && env[0] ? " " : "", env && env[0] ? env[0] : "");
    struct child ch;
    run_child(&ch, m, env, limit);
    if (!exited(&ch, 0)) {
        show_child(what, &ch);
        FAIL("%s", what);
    } else {
        printf("ok   %-44s %.2fs\n", what, ch.secs);
    }
    free(ch.err);
}

int main(int argc, char **argv)
{
    mode = getenv("GORT_TEST_MODE");
    if (mode) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (!strcmp(mode, "goroutines"))
            return gort_main(goroutines_main, argc, argv);
        return run_mode();
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const char *const cases[] = {"lists", "trees", "ptrmaps", "weak", "final", "threads",
                                        "fork", "errors", "retention", "pacer", "goroutines"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!selected(cases[i]))
            continue;
        /* Each mode (concurrent, forced; stopped, forced; and the default
         * for the case, concurrent once it calls gort_store), as it runs
         * and with every cycle verified by a stopped re-mark. */
        const char *conc[] = {"GODEBUG=gcconcurrent=1", "GOMAXPROCS=2", NULL};
        expect_case(cases[i], conc, 120);
        const char *conccheck[] = {"GODEBUG=gcconcurrent=1,gccheckmark=1", "GOMAXPROCS=2", NULL};
        expect_case(cases[i], conccheck, 120);
        const char *stw[] = {"GODEBUG=gcconcurrent=0", "GOMAXPROCS=2", NULL};
        expect_case(cases[i], stw, 60);
        const char *stwcheck[] = {"GODEBUG=gcconcurrent=0,gccheckmark=1", "GOMAXPROCS=2", NULL};
        expect_case(cases[i], stwcheck, 120);
        const char *plain[] = {"GOMAXPROCS=2", NULL};
        expect_case(cases[i], plain, 60);
    }
    if (selected("goroutines")) {
        const char *one[] = {"GOMAXPROCS=1", NULL};
        expect_case("goroutines", one, 60);
    }
    if (selected("pauses")) {
        const char *conc[] = {"GODEBUG=gcconcurrent=1", "GOMAXPROCS=2", NULL};
        expect_case("pauses", conc, 120);
    }
    if (selected("pacer_loaded")) {
        const char *conc[] = {"GODEBUG=gcconcurrent=1", "GOMAXPROCS=2", NULL};
        expect_case("pacer_loaded", conc, 120);
    }
    if (selected("populate")) {
        const char *conc[] = {"GODEBUG=gcconcurrent=1", NULL};
        expect_case("populate", conc, 60);
    }
    if (selected("stops")) {
        const char *conc[] = {"GODEBUG=gcconcurrent=1", "GOMAXPROCS=2", NULL};
        expect_case("stops", conc, 60);
    }
    if (selected("unregistered")) {
        const char *conc[] = {"GODEBUG=gcconcurrent=1", NULL};
        expect_case("unregistered", conc, 30);
    }
    if (selected("scavenge")) {
        const char *conc[] = {"GODEBUG=gcconcurrent=1,scavengedelay=60000", NULL};
        expect_case("scavenge", conc, 60);
        const char *stw[] = {"GODEBUG=gcconcurrent=0,scavengedelay=60000", NULL};
        expect_case("scavenge", stw, 60);
    }
    if (selected("mode")) {
        const char *unset[] = {NULL};
        expect_case("mode", unset, 60);
        const char *stw[] = {"GODEBUG=gcconcurrent=0", NULL};
        expect_case("mode", stw, 60);
        const char *conc[] = {"GODEBUG=gcconcurrent=1", NULL};
        expect_case("mode", conc, 60);
        expect_case("mode_default", unset, 60);
    }
    if (selected("free_collected"))
        expect_fatal("free_collected", "free(): pointer to a collected object");
    if (selected("assists")) {
        /* gctrace's cpu field: stop + assist/background/idle + stop. */
        const char *env[] = {"GODEBUG=gcconcurrent=1,gctrace=1", "GOMAXPROCS=2", NULL};
        struct child ch;
        run_child(&ch, "assists", env, 60);
        int lines = 0;
        double assists = 0, background = 0;
        for (char *line = strtok(ch.err, "\n"); line; line = strtok(NULL, "\n")) {
            const char *cpu = strstr(line, " ms clock, ");
            double stw1, assist, bg;
            if (strncmp(line, "gc ", 3) != 0 || !cpu)
                continue;
            lines++;
            if (sscanf(cpu, " ms clock, %lf+%lf/%lf/", &stw1, &assist, &bg) == 3) {
                assists += assist;
                background += bg;
            }
        }
        /* About 60 % here; 0.03 % when the worker kept its work to itself. */
        if (!exited(&ch, 0) || lines == 0 || assists < background / 50)
            FAIL("assists: status 0x%x, %d cycles, %.1f ms of assists, %.1f ms of background "
                 "marking:\n%s", ch.status, lines, assists, background, ch.err);
        else
            printf("ok   assists: %.1f ms of assists beside %.1f ms of background marking in %d "
                   "cycles\n", assists, background, lines);
        free(ch.err);
        /* What the assists marked, checked by a stopped re-mark each cycle. */
        const char *check[] = {"GODEBUG=gcconcurrent=1,gccheckmark=1", "GOMAXPROCS=2", NULL};
        expect_case("assists", check, 120);
    }
    if (selected("trace")) {
        /* GODEBUG=gctrace=1: Go 1.19's line, field for field. */
        const char *env[] = {"GODEBUG=gctrace=1", "GOMAXPROCS=2", NULL};
        struct child ch;
        run_child(&ch, "trace", env, 60);
        regex_t re;
        CHECK(regcomp(&re,
                      "^gc [0-9]+ @[0-9]+\\.[0-9]{3}s [0-9]+%: [0-9.]+\\+[0-9.]+\\+[0-9.]+ ms clock, "
                      "[0-9.]+\\+[0-9.]+/[0-9.]+/[0-9.]+\\+[0-9.]+ ms cpu, [0-9]+->[0-9]+->[0-9]+ MB, "
                      "[0-9]+ MB goal, [0-9]+ MB stacks, [0-9]+ MB globals, [0-9]+ P( \\(forced\\))?$",
                      REG_EXTENDED | REG_NEWLINE) == 0);
        int lines = 0, forced = 0;
        for (char *line = strtok(ch.err, "\n"); line; line = strtok(NULL, "\n")) {
            if (strncmp(line, "gc ", 3) != 0)
                continue;
            lines++;
            if (regexec(&re, line, 0, NULL, 0) != 0)
                FAIL("gctrace line does not match Go's format: %s", line);
            forced += strstr(line, "(forced)") != NULL;
            /* The goal is the one the cycle ran against: the first, started
             * by the heap's growth, had the 4 MB minimum. */
            const char *g = strstr(line, " MB, ");
            int goal = -1;
            if (lines == 1 && (!g || sscanf(g, " MB, %d MB goal", &goal) != 1 || goal != 4))
                FAIL("gctrace: first cycle's goal %d MB, want 4: %s", goal, line);
        }
        regfree(&re);
        if (!exited(&ch, 0) || lines < 2 || forced != 1)
            FAIL("gctrace: status 0x%x, %d lines, %d forced", ch.status, lines, forced);
        else
            printf("ok   gctrace: %d lines in Go's format\n", lines);
        free(ch.err);
    }
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    return 0;
}
