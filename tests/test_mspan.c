/* Unit test: span bitmaps, allocCache + ctz, passes over a span, object
 * indexes and remote-free collection. */
#include "check.h"
#include "gort.h"
#include "mem/mheap.h"
#include "mem/mspan.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void *alloc_one(struct mspan *s)
{
    void *p = span_nextFreeFast(s);
    if (!p && span_nextFreeIndex(s) < s->nelems)
        p = span_nextFreeFast(s);
    return p;
}

static void owner_free(struct mspan *s, void *p)
{
    long idx = span_objIndex(s, (uintptr_t)p);
    CHECK(idx >= 0 && span_isAllocated(s, (unsigned)idx));
    s->allocBits[idx >> 6] &= ~((uint64_t)1 << (idx & 63));
    span_setAllocCount(s, s->allocCount - 1u);
}

static void check_class(int cls)
{
    spanClass spc = makeSpanClass((uint8_t)cls, 0);
    struct mspan *s = mheap_alloc(class_to_allocnpages[cls], 0, spc);
    CHECK(s);
    span_init_small(s, spc);
    unsigned n = s->nelems;
    CHECK(n == class_to_allocnpages[cls] * _PageSize / class_to_size[cls]);

    /* A fresh span hands out every object once, in address order. */
    for (unsigned i = 0; i < n; i++) {
        char *p = alloc_one(s);
        CHECKF(p == (char *)s->startAddr + (size_t)i * s->elemsize, "class %d obj %u", cls, i);
        CHECK(span_isAllocated(s, i));
    }
    CHECK(alloc_one(s) == NULL);
    CHECK(s->allocCount == n && s->freeindex == n && s->allocCache == 0);

    /* Free every third object; a new pass finds exactly those. */
    unsigned freed = 0;
    for (unsigned i = 0; i < n; i += 3, freed++)
        owner_free(s, (char *)s->startAddr + (size_t)i * s->elemsize);
    CHECK(s->allocCount == n - freed);
    s->freeindex = 0;
    span_nextFreeIndex(s);
    for (unsigned i = 0; i < n; i += 3)
        CHECK(alloc_one(s) == (char *)s->startAddr + (size_t)i * s->elemsize);
    CHECK(alloc_one(s) == NULL);

    /* Object indexes: interior pointers and the tail past nelems are not
     * objects. */
    CHECK(span_objIndex(s, s->startAddr) == 0);
    CHECK(span_objIndex(s, s->startAddr + s->elemsize * (n - 1)) == (long)n - 1);
    if (s->elemsize > 8)
        CHECK(span_objIndex(s, s->startAddr + 8) == -1);
    if ((size_t)n * s->elemsize < s->npages * _PageSize)
        CHECK(span_objIndex(s, s->startAddr + (uintptr_t)n * s->elemsize) == -1);

    /* Remote frees: a pushed list is collected into the bitmap. */
    uintptr_t w = 0;
    unsigned pushed = 0;
    for (unsigned i = 1; i < n; i += 2, pushed++) {
        void *obj = (char *)s->startAddr + (size_t)i * s->elemsize;
        *(void **)obj = xfree_head(w);
        w = (uintptr_t)obj | (((uintptr_t)xfree_count(w) + 1) << 48);
    }
    CHECK(xfree_count(w) == pushed);
    span_collect(s, w);
    CHECK(s->allocCount == n - pushed);
    for (unsigned i = 1; i < n; i += 2)
        CHECK(!span_isAllocated(s, i));
    CHECK(s->needzero == 1 || pushed == 0);
    s->allocCount = 0;
    mheap_free(s);
}

int main(void)
{
    gort_free(gort_malloc(1));
    int classes[] = {1, 2, 3, 5, 9, 26, 35, 40, 50, 53, 66, 67};
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
        check_class(classes[i]);

    /* A remote double free is caught when the stack is collected. */
    pid_t pid = fork();
    if (pid == 0) {
        spanClass spc = makeSpanClass(4, 0);
        struct mspan *s = mheap_alloc(1, 0, spc);
        span_init_small(s, spc);
        void *a = alloc_one(s);
        alloc_one(s);
        *(void **)a = a;   /* a pushed twice: a -> a */
        span_collect(s, (uintptr_t)a | ((uintptr_t)2 << 48));
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    printf("span bitmaps ok\n");
    return 0;
}
