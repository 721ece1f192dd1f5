/*
 * mcache.h — the per-thread cache: one span per span class, no locks.
 *
 * Go gives each P an mcache; until gort's scheduler exists, each thread has
 * one, found through an initial-exec TLS slot (one instruction, and no
 * __tls_get_addr, which could itself call malloc).  A thread starts with
 * the shared, empty mcache_bootstrap, whose every slot is emptymspan, so
 * its first allocation lands on the slow path, which gives it a real mcache.
 *
 * In front of the spans sit per-class lists of freed objects, as in
 * TCMalloc's ThreadCache from which Go's mcache descends: a free by this
 * thread pushes the object on its class's list and the next malloc of the
 * class pops it, with no lock, no atomic and no bitmap work.  Objects on a
 * list still count as allocated in their span; when a list grows past its
 * bound, its newer half (from the head) goes back to the spans in per-span
 * chains (mcache_flushList).  Word 1 of a listed object holds freelist_key,
 * so a second free of it is caught (8-byte objects have no word 1: class 1
 * always frees into the span bitmap).
 *
 * The cache is bounded: one span per span class, and lists of at most
 * 4 MiB or 262144 objects per class and FREELIST_BUDGET in all (past each
 * list's first 16 KiB), which start at 2 objects and grow only as mallocs
 * find them empty (mcache.c).  When the
 * thread exits, a pthread key destructor hands
 * every span back to mcentral and recycles the mcache; allocations the
 * thread still makes after that (from later destructors) go through a
 * shared, locked mcache.
 */
#ifndef GORT_MCACHE_H
#define GORT_MCACHE_H

#include <stdint.h>

#include "mem/mspan.h"
#include "os/os.h"

/* One size class's list, with the class's counters beside it so the fast
 * paths touch one cache line. */
struct freelist {
    void *head;             /* objects linked through word 0 */
    uint32_t room;          /* pushes left before the list is full */
    uint32_t max;           /* its bound; 0: never lists (classes 0, 1, bootstrap) */
    /* Counters only the owning thread writes (statistics read them). */
    uint64_t nmalloc;       /* [0]: large objects */
    uint64_t nfree;
};

struct mcache {
    struct freelist free[_NumSizeClasses]; /* freed objects, per size class */
    uintptr_t key;                         /* freelist_key, or 0 (bootstrap) */
    uint64_t listBytes;                    /* sum over classes of max * size */
    /* Bytes to allocate before the next heap-profile sample (Go's
     * nextSample): malloc subtracts each object's size and samples when it
     * goes negative.  INT64_MAX in the static caches and with profiling off. */
    int64_t next_sample;
    struct mspan *alloc[numSpanClasses];   /* the span each class allocates from */
    uint64_t largeAllocBytes;
    uint64_t largeFreeBytes;
    /* The collector's (src/gc/malloc_gc.c): a span per collected class,
     * Go's tiny block, and counters only the owner writes. */
    struct mspan *gcalloc[2 * _NumSizeClasses];
    uintptr_t tiny;                        /* 16-byte noscan block, or 0 */
    uintptr_t tinyoffset;                  /* bytes of it handed out */
    uint64_t gcnmalloc;                    /* collected objects allocated */
    uint64_t gcbytes;                      /* their bytes (small: class sizes) */
    uint64_t gcblack;                      /* bytes allocated black this mark */
    uint32_t wbufn;                        /* write-barrier buffer: pointers */
    uintptr_t wbuf[256];                   /* to shade (concurrent mark) */
    struct mcache *allnext;                /* every mcache ever made */
    struct mcache *freenext;               /* recycled ones */
    int inuse;
};

/* Marks listed objects (word 1); random, set once at start-up. */
extern uintptr_t freelist_key;

extern __thread struct mcache *tls_mcache __attribute__((tls_model("initial-exec")));
extern struct mcache mcache_bootstrap;      /* a thread that has no mcache yet */
extern struct mcache mcache_exited;         /* a thread whose mcache was flushed */
extern struct mcache *allmcaches;           /* list head, for statistics */

void mcache_init(void);

/* A P's mcache (the scheduler's): a fresh real mcache not tied to any
 * thread; mcache_free hands its contents back and recycles it. */
struct mcache *mcache_alloc(void);
void mcache_free(struct mcache *c);

/* Pushes obj (a small object of class >= 2, free to take) on list fl of
 * an mcache whose key is key; the caller checked fl->room. */
static inline void freelist_push(struct freelist *fl, void *obj, uintptr_t key)
{
    ((void **)obj)[0] = fl->head;
    ((uintptr_t *)obj)[1] = key;
    fl->head = obj;
    fl->room--;
}

/* Pops an object or returns NULL. */
static inline void *freelist_pop(struct freelist *fl)
{
    void *p = fl->head;
    if (__builtin_expect(p != NULL, 1)) {
        fl->head = ((void **)p)[0];
        ((uintptr_t *)p)[1] = 0;
        fl->room++;
    }
    return p;
}

static inline uint32_t freelist_len(const struct freelist *fl)
{
    return fl->max - fl->room;
}

/* This thread's real mcache (making one if needed), or NULL for a thread
 * that has passed its exit-time flush; then callers use mcache_shared under
 * mcache_shared_lock. */
struct mcache *mcache_current(void);
extern struct mcache *mcache_shared;
void mcache_shared_lock(void);
void mcache_shared_unlock(void);

/* The slow half of allocation from c's span of class spc: refill from
 * mcentral when the span is spent.  NULL when out of memory. */
void *mcache_nextFree(struct mcache *c, spanClass spc);

/* Hands every listed object and cached span back (collected ones too). */
void mcache_releaseAll(struct mcache *c);
/* The same for malloc's lists and spans only (malloc_trim). */
void mcache_releaseMalloc(struct mcache *c);
/* Hands c's collected spans back to their gcentral (src/gc/malloc_gc.c). */
void gccache_release(struct mcache *c);

/* Class cls's list ran empty (a malloc) or full (a free): let it grow, to
 * at most limit objects (and the class's cap). */
void mcache_growList(struct mcache *c, unsigned cls, uint32_t limit);

/* The most a thread's list bounds add up to, in bytes (mcache.c says why
 * this much). */
#ifndef FREELIST_BUDGET
#define FREELIST_BUDGET ((uint64_t)4 << 20)
#endif

/* Each list's first objects, up to FREELIST_FLOOR_OBJECTS or
 * FREELIST_FLOOR_BYTES of them but never fewer than the 2 every list
 * starts with, are outside the budget (mcache.c says why). */
#define FREELIST_FLOOR_OBJECTS 32u
#define FREELIST_FLOOR_BYTES (16u << 10)
static inline uint32_t freelist_floor(unsigned cls)
{
    uint32_t n = FREELIST_FLOOR_BYTES / class_to_size[cls];
    return n > FREELIST_FLOOR_OBJECTS ? FREELIST_FLOOR_OBJECTS : n < 2 ? 2 : n;
}

/* How far a list grows from frees alone: enough that a thread which only
 * frees (a consumer) hands objects back in per-span chains, not one CAS per
 * object, yet few enough that it pins few spans. */
#define FREELIST_FREE_GROWTH 8u

/* Class cls's list (cls >= 2) is empty: returns one object and refills the
 * list with a batch from the span; NULL when out of memory. */
void *mcache_refillList(struct mcache *c, unsigned cls);

/* Returns the objects of class cls's list beyond the first keep to their
 * spans. */
void mcache_flushList(struct mcache *c, unsigned cls, unsigned keep);

void freelist_initKey(void);

/* Counter bump that statistics may read concurrently.  Only the owner
 * writes, so no locked instruction is needed, only a store that is never
 * torn: on x86-64 one add to memory (an aligned 8-byte store is atomic
 * there; C would spell it as an atomic load, add and store, three
 * instructions on malloc's and free's fast paths), elsewhere and under
 * ThreadSanitizer (which must see the access) exactly that. */
static inline void mcache_count(uint64_t *counter, uint64_t n)
{
#if defined(__x86_64__) && !defined(GORT_TSAN)
    __asm__("addq %1, %0" : "+m"(*counter) : "er"(n));
#else
    __atomic_store_n(counter, *counter + n, __ATOMIC_RELAXED);
#endif
}

/* Fork support. */
void mcache_lock_all(void);
void mcache_unlock_all(void);
void mcache_after_fork_child(void);

#endif
