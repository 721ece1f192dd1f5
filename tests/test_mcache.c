/* Unit test: the mcache's per-class object lists — LIFO reuse, slow-start
 * growth, overflow flushed back to spans, the key that catches a second
 * free (also from another thread), and the flush at thread exit. */
#include "check.h"
#include "gort.h"
#include "mem/mcache.h"
#include "mem/mheap.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void *other_free(void *p)
{
    gort_free(p);
    return NULL;
}

static int dies_with_abort(void (*fn)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void double_free_other_thread(void)
{
    void *p = gort_malloc(100);
    gort_free(p);              /* now on this thread's list */
    pthread_t t;
    pthread_create(&t, NULL, other_free, p);
    pthread_join(t, NULL);
}

static void double_free_same_thread(void)
{
    void *p = gort_malloc(200);
    void *q = gort_malloc(200);
    gort_free(p);
    gort_free(q);
    gort_free(p);
}

static void *exiting_thread(void *arg)
{
    (void)arg;
    void *v[100];
    for (int i = 0; i < 100; i++)
        v[i] = gort_malloc(48);
    for (int i = 0; i < 100; i++)
        gort_free(v[i]);
    return NULL;
}

/* Churns class k until its list stops growing. */
static void churn_class(struct mcache *c, unsigned k, size_t n)
{
    void **w = malloc(n * sizeof *w);
    CHECK(w != NULL);
    for (uint32_t last = 0; last != c->free[k].max;) {
        last = c->free[k].max;
        for (int round = 0; round < 2; round++) {
            for (size_t i = 0; i < n; i++)
                w[i] = gort_malloc(class_to_size[k]);
            for (size_t i = 0; i < n; i++)
                gort_free(w[i]);
        }
    }
    free(w);
}

/* One class may take the whole budget (the 2 objects every list starts
 * with are not charged to it); with the budget spent, a class still grows
 * to its floor, and no further. */
static void *floor_thread(void *arg)
{
    (void)arg;
    struct mcache *c = mcache_current();
    CHECK(c->listBytes == 0);
    churn_class(c, 2, 262144);
    CHECKF(c->free[2].max == 262144, "16-byte list bound %u, budget used %lu", c->free[2].max,
           (unsigned long)c->listBytes);
    c->listBytes = FREELIST_BUDGET;
    churn_class(c, 5, 256);
    CHECKF(c->free[5].max == freelist_floor(5), "48-byte list bound %u, floor %u", c->free[5].max,
           freelist_floor(5));
    CHECK(c->listBytes == FREELIST_BUDGET);
    return NULL;
}

int main(void)
{
    gort_free(gort_malloc(8 << 20));   /* start the scavenger up front */
    struct mcache *c = tls_mcache;
    unsigned cls = size_to_class(64);
    struct freelist *fl = &c->free[cls];

    /* LIFO: a freed object is the next one handed out. */
    void *a = gort_malloc(64);
    gort_free(a);
    CHECK(fl->head == a && ((uintptr_t *)a)[1] == c->key);
    CHECK(gort_malloc(64) == a);
    CHECK(((uintptr_t *)a)[1] == 0);      /* the key does not leak to users */
    gort_free(a);

    /* Second frees are caught, on this thread's list or another's. */
    CHECK(dies_with_abort(double_free_same_thread));
    CHECK(dies_with_abort(double_free_other_thread));

    /* Slow start: the bound grows as allocation outruns the list, to at
     * most 4 MiB of objects per class. */
    enum { N = 100000 };
    uint32_t max0 = fl->max;
    void **v = malloc(N * sizeof *v);
    CHECK(v != NULL);
    for (int i = 0; i < N; i++)
        v[i] = gort_malloc(64);
    CHECK(fl->max > max0 && fl->max * 64 <= (4u << 20));
    /* Overflow: freeing far more than the bound keeps the list bounded and
     * the rest goes back to spans (live count still exact). */
    struct gort_memstats m0, m1;
    gort_memstats(&m0);
    for (int i = 0; i < N; i++)
        gort_free(v[i]);
    CHECK(freelist_len(fl) <= fl->max && freelist_len(fl) < N);
    gort_memstats(&m1);
    CHECK(m1.frees - m0.frees == N);
    CHECK(m1.heap_objects == m0.heap_objects - N);

    /* The bounds of all a thread's lists add up to at most FREELIST_BUDGET,
     * however many classes grow: churn 4 MiB through each of a dozen
     * classes (each may reach 4 MiB). */
    for (unsigned k = 20; k < 32; k++) {
        size_t size = class_to_size[k], n = (4u << 20) / size;
        void **w = malloc(n * sizeof *w);
        CHECK(w != NULL);
        for (int round = 0; round < 2; round++) {
            for (size_t i = 0; i < n; i++)
                w[i] = gort_malloc(size);
            for (size_t i = 0; i < n; i++)
                gort_free(w[i]);
        }
        free(w);
    }
    uint64_t bound = 0;
    for (unsigned k = 2; k < _NumSizeClasses; k++) {
        uint32_t floor = freelist_floor(k);
        if (c->free[k].max > floor)
            bound += (uint64_t)(c->free[k].max - floor) * class_to_size[k];
    }
    CHECK(bound == c->listBytes && bound <= FREELIST_BUDGET && bound > FREELIST_BUDGET / 2);
    {
        pthread_t t;
        pthread_create(&t, NULL, floor_thread, NULL);
        pthread_join(t, NULL);
    }
    free(v);

    /* calloc never takes a dirty listed object without clearing it. */
    for (int i = 0; i < 64; i++) {
        unsigned char *p = gort_malloc(64);
        memset(p, 0xab, 64);
        gort_free(p);
        unsigned char *z = gort_calloc(1, 64);
        for (int k = 0; k < 64; k++)
            CHECK(z[k] == 0);
        gort_free(z);
    }

    /* A thread's lists go back to spans when it exits. */
    uint64_t inuse = mheap_.pagesInUse;
    for (int i = 0; i < 50; i++) {
        pthread_t t;
        pthread_create(&t, NULL, exiting_thread, NULL);
        pthread_join(t, NULL);
    }
    CHECK(mheap_.pagesInUse <= inuse + 4);

    /* And with the budget spent (above), where the 200-byte class's list
     * stays at 2 objects and the first object goes back to its span as the
     * second comes: caught by its allocation bit. */
    CHECK(dies_with_abort(double_free_same_thread));
    CHECK(dies_with_abort(double_free_other_thread));

    printf("mcache lists ok (max %u of class %u)\n", fl->max, cls);
    return 0;
}
