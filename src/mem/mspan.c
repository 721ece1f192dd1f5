/*
 * mspan.c — span bitmaps: refilling allocCache and collecting remote frees.
 */
#include "mem/mspan.h"
#include "runtime/print.h"

#include <string.h>

static uint64_t emptybits[2];
struct mspan emptymspan = {.allocBits = &emptybits[0], .gcmarkBits = &emptybits[1], .bitwords = 1};

void span_init_small(struct mspan *s, spanClass sc)
{
    uint8_t c = spanClass_sizeclass(sc);
    __atomic_store_n(&s->spanclass, sc, __ATOMIC_RELAXED);
    s->sizeclass = c;
    s->elemsize = class_to_size[c];
    s->divMul = class_to_divmagic[c];
    s->nelems = (uint16_t)((s->npages << _PageShift) / s->elemsize);
    s->freeindex = 0;
    s->allocCount = 0;
    if (span_bitwords_for(s->nelems) > s->bitwords)
        throw("span_init_small: span record too small for its class");
    memset(s->allocBits, 0, span_bitbytes(s));
    /* All free, but only the first nelems bits exist. */
    s->allocCache = s->nelems >= 64 ? ~(uint64_t)0
                                    : (((uint64_t)1 << s->nelems) - 1);
}

unsigned span_nextFreeIndex(struct mspan *s)
{
    unsigned idx = s->freeindex;
    unsigned n = s->nelems;
    while (idx < n) {
        unsigned word = idx >> 6;
        uint64_t free = ~s->allocBits[word] >> (idx & 63);
        if (free) {
            unsigned found = idx + (unsigned)__builtin_ctzll(free);
            if (found >= n)
                break;
            __atomic_store_n(&s->freeindex, (uint16_t)found, __ATOMIC_RELAXED);
            s->allocCache = free >> (found - idx);
            /* Bits past nelems in the last word must not look free. */
            unsigned left = n - found;
            if (left < 64)
                s->allocCache &= ((uint64_t)1 << left) - 1;
            return found;
        }
        idx = (word + 1) << 6;
    }
    __atomic_store_n(&s->freeindex, (uint16_t)n, __ATOMIC_RELAXED);
    s->allocCache = 0;
    return n;
}

unsigned span_nextFreeBatch(struct mspan *s, unsigned max, uintptr_t key, void **headp)
{
    uint64_t cache = s->allocCache, taken = 0;
    unsigned base = s->freeindex, n = 0;
    void *head = NULL, **link = &head;
    while (cache && n < max) {
        unsigned bit = (unsigned)__builtin_ctzll(cache);
        char *obj = (char *)s->startAddr + (uintptr_t)(base + bit) * s->elemsize;
        *link = obj;
        link = (void **)obj;
        ((uintptr_t *)obj)[1] = key;
        taken |= (uint64_t)1 << bit;
        cache &= cache - 1;
        n++;
    }
    *link = NULL;
    /* allocCache never reaches past the end of freeindex's word. */
    s->allocBits[base >> 6] |= taken << (base & 63);
    s->allocCache = cache;
    span_setAllocCount(s, s->allocCount + n);
    *headp = head;
    return n;
}

void span_collect(struct mspan *s, uintptr_t w)
{
    unsigned n = 0;
    for (void *obj = xfree_head(w); obj; obj = *(void **)obj) {
        long idx = span_objIndex(s, (uintptr_t)obj);
        if (idx < 0)
            throw_ptr("free(): invalid pointer", (uintptr_t)obj);
        uint64_t bit = (uint64_t)1 << (idx & 63);
        if (!(s->allocBits[idx >> 6] & bit))
            throw_ptr("free(): double free detected", (uintptr_t)obj);
        s->allocBits[idx >> 6] &= ~bit;
        n++;
    }
    if (n) {
        span_setAllocCount(s, s->allocCount - n);
        s->needzero = 1;
    }
}

void span_foldFreeindex(struct mspan *s)
{
    unsigned n = s->freeindex;
    for (unsigned w = 0; w < n / 64; w++)
        s->allocBits[w] = ~(uint64_t)0;
    if (n & 63)
        s->allocBits[n / 64] |= ((uint64_t)1 << (n & 63)) - 1;
}

void span_recount(struct mspan *s)
{
    unsigned n = 0;
    for (unsigned w = 0; w < (s->nelems + 63u) / 64u; w++)
        n += (unsigned)__builtin_popcountll(s->allocBits[w]);
    span_setAllocCount(s, n);
}
