/*
 * fixalloc.c — fixed-size metadata records (see fixalloc.h).
 */
#include "mem/fixalloc.h"
#include "os/os.h"
#include "runtime/print.h"

#include <string.h>

#define FIXALLOC_CHUNK (64 << 10)

void fixalloc_init(struct fixalloc *f, size_t size)
{
    memset(f, 0, sizeof *f);
    /* Whole cache lines: records of different threads' spans and caches
     * must not share one (false sharing on every allocation). */
    f->size = (size + 63) & ~(size_t)63;
}

void *fixalloc_alloc(struct fixalloc *f)
{
    void *p;
    if (f->list) {
        p = f->list;
        f->list = *(void **)p;
        memset(p, 0, f->size);
    } else {
        if (f->nchunk < f->size) {
            f->chunk = os_alloc(FIXALLOC_CHUNK);
            if (!f->chunk)
                throw("out of memory allocating allocator metadata");
            f->nchunk = FIXALLOC_CHUNK;
            fixalloc_stat(&f->sys, FIXALLOC_CHUNK);
        }
        p = f->chunk;              /* fresh from the OS: already zero */
        f->chunk += f->size;
        f->nchunk -= f->size;
    }
    fixalloc_stat(&f->inuse, (int64_t)f->size);
    return p;
}

void fixalloc_free(struct fixalloc *f, void *p)
{
    *(void **)p = f->list;
    f->list = p;
    fixalloc_stat(&f->inuse, -(int64_t)f->size);
}

void *persistentalloc(size_t size, uint64_t *sys)
{
    size_t pg = os_pagesize();
    size = (size + pg - 1) & ~(pg - 1);
    void *p = os_alloc(size);
    if (p && sys)
        __atomic_fetch_add(sys, size, __ATOMIC_RELAXED);
    return p;
}
