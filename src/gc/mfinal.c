/*
 * mfinal.c — specials: finalizers, cleanups and weak handles, and the
 * goroutine that runs finalizers.
 *
 * Go hangs "specials" off a span; gort keeps them in one hash table keyed
 * by the object's address, in malloc'd records the collector never scans,
 * so a special does not keep its object alive.  The collector (mgc.c)
 * holds specialsLock across the stop and uses the table twice:
 *   - as roots (specials_markroots): the contents of every object with a
 *     finalizer, but not the object, so what it points to survives until
 *     the finalizer has run (Go's order: if A points to B and both have
 *     finalizers, A's runs first and B's a cycle later); every finalizer's
 *     and cleanup's argument; everything queued to run;
 *   - after marking (specials_process): each unmarked object's weak
 *     handles are cleared, its cleanups queued, and its finalizer queued
 *     and the object marked again, so it lives until the finalizer ran.
 * Records move to the run queue as they are: nothing is allocated while
 * the world is stopped.
 *
 * Finalizers run one at a time on the finalizer goroutine (or, in a
 * program without gort_main, a registered thread).
 */
#include "gc/mgc.h"
#include "gc/stw.h"
#include "mem/arena.h"
#include "os/os.h"
#include "runtime/print.h"
#include "sched/proc.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

enum { specialFinalizer = 1, specialCleanup = 2, specialWeak = 3 };

struct special {
    struct special *next;
    uintptr_t obj;                /* the object's start */
    int kind;
    gort_finalizer fin;
    gort_func cleanup;
    void *arg;
    struct gort_weak *weak;
};

struct gort_weak {
    uintptr_t obj;                /* atomic; 0 once the object died */
    uintptr_t ptr;                /* what gort_weak_make was given */
    struct special *sp;           /* its record while the object lives */
};

rtmutex specialsLock, finLock;
static struct special **buckets;
static size_t nbuckets, nspecials;

static struct special *finq, *finqTail;   /* under finLock */
static struct special *deadSpecials;      /* freed once the world runs */
static uint32_t finWake;                   /* futex: the runner's */
static bool runnerStarted;
static gort_chan *finTokens;               /* wakes the finalizer goroutine */

static size_t bucket_of(uintptr_t obj)
{
    uint64_t h = (uint64_t)obj * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32) & (nbuckets - 1);
}

/* Inserts sp (specialsLock held); false when out of memory. */
static bool special_insert(struct special *sp)
{
    if (nspecials >= nbuckets) {
        size_t n = nbuckets ? nbuckets * 2 : 256;
        struct special **nb = gort_calloc(n, sizeof *nb);
        if (!nb)
            return false;
        size_t old = nbuckets;
        struct special **ob = buckets;
        buckets = nb;
        nbuckets = n;
        for (size_t i = 0; i < old; i++) {
            while (ob[i]) {
                struct special *x = ob[i];
                ob[i] = x->next;
                size_t b = bucket_of(x->obj);
                x->next = buckets[b];
                buckets[b] = x;
            }
        }
        gort_free(ob);
    }
    size_t b = bucket_of(sp->obj);
    sp->next = buckets[b];
    buckets[b] = sp;
    nspecials++;
    return true;
}

/* The start of the collected object holding p, or 0. */
static uintptr_t object_of(const void *p)
{
    struct mspan *s;
    unsigned idx;
    if (!p || !__atomic_load_n(&gcInited, __ATOMIC_ACQUIRE))
        return 0;
    return gc_find_object((uintptr_t)p, &s, &idx);
}

static struct special *special_new(uintptr_t obj, int kind)
{
    struct special *sp = gort_malloc(sizeof *sp);
    if (!sp)
        return NULL;
    memset(sp, 0, sizeof *sp);
    sp->obj = obj;
    sp->kind = kind;
    return sp;
}

static int add_special(struct special *sp)
{
    gort_lock(&specialsLock);
    bool ok = special_insert(sp);
    gort_unlock(&specialsLock);
    if (!ok) {
        gort_free(sp);
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

GORT_API int gort_set_finalizer(void *obj, gort_finalizer fn, void *arg)
{
    uintptr_t base = object_of(obj);
    if (!base || base != (uintptr_t)obj) {
        errno = EINVAL;
        return -1;
    }
    gort_lock(&specialsLock);
    struct special **link = nbuckets ? &buckets[bucket_of(base)] : NULL;
    for (; link && *link; link = &(*link)->next) {
        struct special *x = *link;
        if (x->obj != base || x->kind != specialFinalizer)
            continue;
        if (fn) {
            gort_unlock(&specialsLock);
            errno = EEXIST;
            return -1;
        }
        *link = x->next;
        nspecials--;
        gort_unlock(&specialsLock);
        gort_free(x);
        return 0;
    }
    gort_unlock(&specialsLock);
    if (!fn)
        return 0;
    struct special *sp = special_new(base, specialFinalizer);
    if (!sp) {
        errno = ENOMEM;
        return -1;
    }
    sp->fin = fn;
    sp->arg = arg;
    return add_special(sp);
}

GORT_API int gort_add_cleanup(void *obj, gort_func fn, void *arg)
{
    uintptr_t base = object_of(obj);
    if (!base || !fn) {
        errno = EINVAL;
        return -1;
    }
    struct special *sp = special_new(base, specialCleanup);
    if (!sp) {
        errno = ENOMEM;
        return -1;
    }
    sp->cleanup = fn;
    sp->arg = arg;
    return add_special(sp);
}

GORT_API gort_weak *gort_weak_make(void *obj)
{
    uintptr_t base = object_of(obj);
    if (!base) {
        errno = EINVAL;
        return NULL;
    }
    struct gort_weak *w = gort_malloc(sizeof *w);
    struct special *sp = special_new(base, specialWeak);
    if (!w || !sp) {
        gort_free(w);
        gort_free(sp);
        errno = ENOMEM;
        return NULL;
    }
    w->ptr = (uintptr_t)obj;
    w->obj = base;
    w->sp = sp;
    sp->weak = w;
    if (add_special(sp) != 0) {
        gort_free(w);
        return NULL;
    }
    return w;
}

GORT_API void *gort_weak_get(gort_weak *w)
{
    if (!w)
        return NULL;
    /* Cleared only while the world is stopped, so a non-zero value is a
     * live object, kept by the caller's copy from here on.  While a
     * concurrent mark runs, the object is shaded first: it may be reachable
     * from nothing else, and the caller's stack has already been scanned. */
    gcnosuspend_enter();
    uintptr_t obj = __atomic_load_n(&w->obj, __ATOMIC_ACQUIRE);
    if (obj && gc_marking())
        gc_shade(&obj, 1);
    gcnosuspend_exit();
    return obj ? (void *)w->ptr : NULL;
}

GORT_API void gort_weak_free(gort_weak *w)
{
    if (!w)
        return;
    gort_lock(&specialsLock);
    struct special *sp = w->sp;
    if (sp) {
        for (struct special **link = &buckets[bucket_of(sp->obj)]; *link; link = &(*link)->next) {
            if (*link == sp) {
                *link = sp->next;
                nspecials--;
                break;
            }
        }
    }
    gort_unlock(&specialsLock);
    gort_free(sp);
    gort_free(w);
}

/* ---- During a collection (world stopped, locks held) ------------------ */

void specials_markroots(void)
{
    for (size_t b = 0; b < nbuckets; b++) {
        for (struct special *sp = buckets[b]; sp; sp = sp->next) {
            if (sp->kind == specialFinalizer) {
                struct mspan *s = span_of(sp->obj);
                if (s && s->gc == GCSPAN_SCAN)
                    gc_push_scan(sp->obj, 0);
            }
            if (sp->kind != specialWeak)
                gc_push_scan((uintptr_t)&sp->arg, sizeof sp->arg);
        }
    }
    for (struct special *sp = finq; sp; sp = sp->next) {
        gc_push_scan((uintptr_t)&sp->obj, sizeof sp->obj);
        gc_push_scan((uintptr_t)&sp->arg, sizeof sp->arg);
    }
}

static bool object_marked(uintptr_t obj)
{
    struct mspan *s;
    unsigned idx;
    if (gc_find_object(obj, &s, &idx) != obj)
        return true;   /* not an object any more: leave it be */
    return gc_isMarked(s, idx);
}

static void finq_push(struct special *sp)
{
    sp->next = NULL;
    if (finqTail)
        finqTail->next = sp;
    else
        finq = sp;
    finqTail = sp;
}

void specials_process(void)
{
    /* Pass 1: weak handles and cleanups of the dead, before any finalizer
     * brings an object back. */
    struct special *fins = NULL;
    for (size_t b = 0; b < nbuckets; b++) {
        struct special **link = &buckets[b];
        while (*link) {
            struct special *sp = *link;
            if (object_marked(sp->obj)) {
                link = &sp->next;
                continue;
            }
            *link = sp->next;
            nspecials--;
            switch (sp->kind) {
            case specialWeak:
                __atomic_store_n(&sp->weak->obj, 0, __ATOMIC_RELEASE);
                sp->weak->sp = NULL;
                sp->next = deadSpecials;
                deadSpecials = sp;
                break;
            case specialCleanup:
                finq_push(sp);
                break;
            default:
                sp->next = fins;
                fins = sp;
                break;
            }
        }
    }
    /* Pass 2: finalizers; each object lives until its finalizer ran. */
    while (fins) {
        struct special *sp = fins;
        fins = sp->next;
        gc_mark_and_scan(sp->obj);
        finq_push(sp);
    }
}

/* With the world running again: frees what specials_process dropped (no
 * malloc or free while stopped: a stopped thread may hold the heap's
 * locks). */
void specials_after_start(void)
{
    struct special *list = deadSpecials;
    deadSpecials = NULL;
    while (list) {
        struct special *sp = list;
        list = sp->next;
        gort_free(sp);
    }
}

/* ---- Running them ---------------------------------------------------- */

static struct special *finq_take(void)
{
    gort_lock(&finLock);
    struct special *list = finq;
    finq = finqTail = NULL;
    gort_unlock(&finLock);
    return list;
}

static void run_list(struct special *list)
{
    while (list) {
        struct special *sp = list;
        list = sp->next;
        if (sp->kind == specialFinalizer) {
            void *obj = (void *)sp->obj;
            sp->fin(obj, sp->arg);
            gort_keepalive(obj);
        } else {
            sp->cleanup(sp->arg);
        }
        gort_free(sp);
    }
}

/* The runner's stack is scanned conservatively while it waits: clear
 * what the last finalizer left below the current frame, or the object it
 * was given could stay reachable from a dead slot. */
static __attribute__((noinline)) void scrub_stack(void)
{
    volatile char buf[8192];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

static void runfinq_goroutine(void *arg)
{
    (void)arg;
    for (;;) {
        struct special *list = finq_take();
        if (list) {
            run_list(list);
            scrub_stack();
            continue;
        }
        int64_t token;
        gort_chan_recv(finTokens, &token);
    }
}

static void *runfinq_thread(void *arg)
{
    (void)arg;
    gcthread_register(false);
    for (;;) {
        uint32_t seen = __atomic_load_n(&finWake, __ATOMIC_ACQUIRE);
        struct special *list = finq_take();
        if (list) {
            run_list(list);
            scrub_stack();
            continue;
        }
        os_futex_wait(&finWake, seen, -1);
    }
    return NULL;
}

void finq_wake(void)
{
    if (!__atomic_load_n(&finq, __ATOMIC_ACQUIRE))
        return;
    if (!runnerStarted) {
        runnerStarted = true;
        if (sched_running()) {
            finTokens = gort_chan_make(sizeof(int64_t), 1);
            newproc_system(runfinq_goroutine, NULL);
        } else {
            pthread_t t;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            if (pthread_create(&t, &attr, runfinq_thread, NULL) != 0)
                throw("gc: cannot start the finalizer thread");
            pthread_attr_destroy(&attr);
        }
    }
    if (finTokens) {
        int64_t token = 1;
        gort_chan_trysend(finTokens, &token);
    } else {
        __atomic_add_fetch(&finWake, 1, __ATOMIC_RELEASE);
        os_futex_wake(&finWake, 1);
    }
}

void finq_after_fork_child(void)
{
    /* A finalizer thread is gone; a goroutine runner belongs to a
     * scheduler that is gone too. */
    if (!finTokens)
        runnerStarted = false;
}
