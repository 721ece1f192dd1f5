/* Unit test: the arena index maps every address, interior pointers
 * included, to its span in O(1); arenas sit at Go's hints. */
#include "check.h"
#include "gort.h"
#include "mem/arena.h"
#include "mem/mspan.h"

#include <stdint.h>

int main(void)
{
    /* A sampled small object lies on a page of its own (malloc.c):
     * test_heapprof checks those; here every object lies in its class. */
    gort_set_memprofile_rate(0);
    size_t sizes[] = {1, 8, 24, 100, 1000, 4096, 20000, 32768, 32769, 100000, 5 << 20, 70 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = gort_malloc(sizes[i]);
        CHECK(p);
        struct mspan *s = span_of((uintptr_t)p);
        CHECKF(s && s->state == mSpanInUse, "size %zu", sizes[i]);
        CHECK((uintptr_t)p >= s->startAddr &&
              (uintptr_t)p < s->startAddr + (s->npages << _PageShift));
        /* Every byte of the object, sampled per 512 bytes, finds the span. */
        for (size_t off = 0; off < sizes[i]; off += 512)
            CHECKF(span_of((uintptr_t)p + off) == s, "size %zu off %zu", sizes[i], off);
        CHECK(span_of((uintptr_t)p + sizes[i] - 1) == s);
        uint32_t info = arena_pageInfo(arena_of((uintptr_t)p), (uintptr_t)p);
        if (sizes[i] > 32768) {
            CHECK(s->spanclass == 0 && (uintptr_t)p == s->startAddr);
            CHECK(info == 0);                       /* large pages: no class */
        } else {
            CHECK(s->spanclass != 0 && s->elemsize >= sizes[i]);
            /* pageinfo: the class, and the page's offset in its span. */
            CHECK((info & PAGEINFO_CLASS_MASK) >> PAGEINFO_CLASS_SHIFT == s->sizeclass);
            CHECK((info & PAGEINFO_OFFSET_MASK) == (((uintptr_t)p - s->startAddr) & ~_PageMask));
        }
        gort_free(p);
    }
    /* Addresses outside the heap map to nothing. */
    int local;
    CHECK(span_of((uintptr_t)&local) == NULL);
    CHECK(span_of((uintptr_t)&sizes) == NULL);
    CHECK(span_of((uintptr_t)1 << 50) == NULL);
    CHECK(span_of(UINTPTR_MAX) == NULL);
    CHECK(span_of(0) == NULL);
    /* The first arena is at Go's first hint unless something lives there. */
    void *q = gort_malloc(64);
    printf("heap starts at %p\n", q);
    CHECK(((uintptr_t)q >> 40) <= 0x7f);
    if (((uintptr_t)q & ~(heapArenaBytes - 1)) != 0x00c000000000ull)
        printf("note: first hint was taken by something else\n");
    gort_free(q);
    return 0;
}
