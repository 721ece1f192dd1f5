/*
 * arena.c — reserving heap arenas and keeping their page records.
 *
 * Go reserves the heap at "arena hints" 0x00c000000000, 0x01c000000000, ...
 * so heap addresses are easy to recognise in a crash dump and the heap grows
 * contiguously; gort does the same and, where the kernel refuses every
 * hint, takes any 64 MiB-aligned range it can get.
 */
#include "mem/arena.h"
#include "mem/fixalloc.h"
#include "mem/mspan.h"
#include "os/os.h"

struct heapArena *mheap_arenas[(size_t)1 << arenaL2Bits];
uint64_t arena_metadata_sys;
struct heapArena *allarenas;

static uintptr_t arena_hint = 0x00c000000000ull;
static int hints_exhausted;

static void *reserve_aligned_anywhere(size_t n)
{
    /* Over-reserve by one arena and trim to alignment. */
    uintptr_t p = (uintptr_t)os_reserve(NULL, n + heapArenaBytes);
    if (!p)
        return NULL;
    uintptr_t aligned = (p + heapArenaBytes - 1) & ~(heapArenaBytes - 1);
    if (aligned > p)
        os_unmap((void *)p, aligned - p);
    uintptr_t end = p + n + heapArenaBytes;
    if (end > aligned + n)
        os_unmap((void *)(aligned + n), end - (aligned + n));
    return (void *)aligned;
}

static void *reserve_at_hints(size_t n)
{
    while (!hints_exhausted) {
        uintptr_t hint = arena_hint;
        if (hint + n >= ((uintptr_t)1 << 47)) {
            hints_exhausted = 1;
            break;
        }
        void *p = os_reserve((void *)hint, n);
        if ((uintptr_t)p == hint) {
            arena_hint = hint + n;
            return p;
        }
        if (p)
            os_unmap(p, n);
        /* Something lives there: try the next hint, Go-style, 4 TiB on. */
        arena_hint = (hint & ~(((uintptr_t)1 << 40) - 1)) + ((uintptr_t)1 << 40) +
                     0x00c000000000ull % ((uintptr_t)1 << 40);
    }
    return NULL;
}

void *arena_reserve(size_t n)
{
    void *p = reserve_at_hints(n);
    if (!p)
        p = reserve_aligned_anywhere(n);
    if (!p || ((uintptr_t)p + n) >> heapAddrBits) {
        if (p)
            os_unmap(p, n);
        return NULL;
    }
    for (uintptr_t a = (uintptr_t)p; a < (uintptr_t)p + n; a += heapArenaBytes) {
        struct heapArena *ha = persistentalloc(sizeof *ha, &arena_metadata_sys);
        if (!ha) {
            /* Arenas registered so far stay registered (and unused). */
            return NULL;
        }
        for (size_t i = 0; i < pagesPerArena / 64; i++)
            ha->released[i] = ~(uint64_t)0;
        /* A page no span covers maps to emptymspan (nelems 0: no object
         * index ever matches), so free() needs no NULL test per page. */
        for (size_t i = 0; i < pagesPerArena; i++)
            ha->spans[i] = &emptymspan;
        ha->base = a;
        ha->next = allarenas;
        __atomic_store_n(&allarenas, ha, __ATOMIC_RELEASE);
        __atomic_store_n(&mheap_arenas[a >> logHeapArenaBytes], ha, __ATOMIC_RELEASE);
    }
    return p;
}

void arena_setSpans(uintptr_t base, uintptr_t npages, struct mspan *s)
{
    uintptr_t p = base, end = base + (npages << _PageShift);
    while (p < end) {
        struct heapArena *ha = arena_of(p);
        size_t i = arena_pageIndex(p);
        for (; i < pagesPerArena && p < end; i++, p += _PageSize)
            ha->spans[i] = s;
    }
}

void arena_setPageInfo(uintptr_t base, uintptr_t npages, unsigned sizeclass)
{
    for (uintptr_t i = 0; i < npages; i++) {
        uintptr_t p = base + (i << _PageShift);
        uint32_t info = sizeclass ? (uint32_t)sizeclass << PAGEINFO_CLASS_SHIFT |
                                        (uint32_t)(i << _PageShift)
                                  : 0;
        __atomic_store_n(&arena_of(p)->pageinfo[arena_pageIndex(p)], info, __ATOMIC_RELAXED);
    }
}

/* Calls fn on each arena-local word range of the bitmap for [base, +npages). */
#define FOR_RELEASED_BITS(base, npages, WORD, MASK, BODY)                    \
    do {                                                                     \
        uintptr_t p_ = (base), left_ = (npages);                             \
        while (left_ > 0) {                                                  \
            struct heapArena *ha_ = arena_of(p_);                            \
            size_t i_ = arena_pageIndex(p_);                                 \
            size_t n_ = 64 - (i_ & 63);                                      \
            if (n_ > left_)                                                  \
                n_ = left_;                                                  \
            uint64_t MASK = (n_ == 64 ? ~(uint64_t)0                         \
                                      : (((uint64_t)1 << n_) - 1)) << (i_ & 63); \
            uint64_t *WORD = &ha_->released[i_ >> 6];                        \
            BODY;                                                            \
            p_ += n_ << _PageShift;                                          \
            left_ -= n_;                                                     \
        }                                                                    \
    } while (0)

uintptr_t arena_countReleased(uintptr_t base, uintptr_t npages)
{
    uintptr_t count = 0;
    FOR_RELEASED_BITS(base, npages, w, m, count += (uintptr_t)__builtin_popcountll(*w & m));
    return count;
}

void arena_setReleased(uintptr_t base, uintptr_t npages, int released)
{
    if (released)
        FOR_RELEASED_BITS(base, npages, w, m, *w |= m);
    else
        FOR_RELEASED_BITS(base, npages, w, m, *w &= ~m);
}
