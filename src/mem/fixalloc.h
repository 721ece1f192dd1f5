/*
 * fixalloc.h — Go's fixalloc: a free list of fixed-size records.
 *
 * The allocator's own metadata (mspan and mcache structures) must never
 * come from malloc, or malloc would recurse into itself.  A fixalloc carves
 * records out of chunks mapped straight from the OS and recycles freed
 * records through a free list; chunks are never returned, so a stale
 * pointer to a freed record still points at readable memory (the page map
 * relies on that).  Callers serialise access with their own lock.
 */
#ifndef GORT_FIXALLOC_H
#define GORT_FIXALLOC_H

#include <stddef.h>
#include <stdint.h>

struct fixalloc {
    size_t size;        /* bytes per record */
    void *list;         /* freed records */
    char *chunk;        /* unused tail of the current chunk */
    size_t nchunk;      /* bytes left in it */
    uint64_t inuse;     /* bytes handed out */
    uint64_t sys;       /* bytes obtained from the OS */
};

/* Counters change under the caller's lock but statistics read them without
 * it, so updates are atomic stores. */
static inline void fixalloc_stat(uint64_t *field, int64_t delta)
{
    __atomic_store_n(field, *field + (uint64_t)delta, __ATOMIC_RELAXED);
}

void fixalloc_init(struct fixalloc *f, size_t size);
/* A zeroed record. */
void *fixalloc_alloc(struct fixalloc *f);
void fixalloc_free(struct fixalloc *f, void *p);

/* Metadata that lives for ever (arena records): bump-allocated from the OS,
 * zeroed.  Counts into *sys. */
void *persistentalloc(size_t size, uint64_t *sys);

#endif
