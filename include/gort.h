/*
 * gort.h — the public interface of gort, the Go runtime's memory manager
 * (and, in later parts, its collector and scheduler) as a C library.
 *
 * The allocator
 * -------------
 * gort serves the whole C allocation API.  Linked with -lgort, or loaded with
 * LD_PRELOAD=libgort.so, the plain names (malloc, free, calloc, realloc, ...)
 * are gort's, so existing programs need no change.  Every entry point is also
 * exported with a gort_ prefix, which is what a program that wants gort next
 * to another allocator calls.
 *
 * Behaviour follows glibc where the C standard leaves room:
 *   - malloc(0) returns a unique pointer that can be freed.
 *   - Every block is aligned to 16 bytes, except blocks of at most 8 bytes and
 *     blocks of 17..24 bytes, which are 8-aligned (no C type of those sizes
 *     needs more).
 *   - A size that cannot be served returns NULL with errno = ENOMEM; calloc
 *     and reallocarray detect multiplication overflow.
 *   - realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL.
 *   - free(NULL) does nothing; free of a pointer gort never handed out, or of
 *     an interior pointer, prints "gort: free(): invalid pointer 0x..." and
 *     aborts; a double free is reported and aborts.
 *   - free keeps errno.
 *
 * Environment (read once at start-up; bad values are reported and ignored):
 *   GODEBUG=madvdontneed=1   give memory back with MADV_DONTNEED (default; RSS
 *                            drops at once); 0 uses MADV_FREE.
 *   GODEBUG=scavengedelay=MS free pages are given back to the OS after they
 *                            have stayed free this many milliseconds
 *                            (default 1000; 0 gives back at once).
 *   GODEBUG=scavenger=0      no background release thread: memory goes back
 *                            only from allocator calls and malloc_trim.
 *   GODEBUG=memstats=1       print gort's memory statistics at exit.
 * Several settings are separated by commas, as in Go.
 */
#ifndef GORT_H
#define GORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GORT_API __attribute__((visibility("default")))
#define GORT_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define GORT_API
#define GORT_MALLOC_ATTR
#endif

/* ---- The C allocation API, under gort's own names ----------------------- */

GORT_API GORT_MALLOC_ATTR void *gort_malloc(size_t size);
GORT_API void gort_free(void *ptr);
GORT_API GORT_MALLOC_ATTR void *gort_calloc(size_t nmemb, size_t size);
GORT_API void *gort_realloc(void *ptr, size_t size);
GORT_API void *gort_reallocarray(void *ptr, size_t nmemb, size_t size);
/* Returns 0, EINVAL (alignment not a power of two multiple of sizeof(void*))
 * or ENOMEM; errno is left alone, as POSIX asks. */
GORT_API int gort_posix_memalign(void **out, size_t alignment, size_t size);
GORT_API GORT_MALLOC_ATTR void *gort_aligned_alloc(size_t alignment, size_t size);
GORT_API GORT_MALLOC_ATTR void *gort_memalign(size_t alignment, size_t size);
GORT_API GORT_MALLOC_ATTR void *gort_valloc(size_t size);
GORT_API GORT_MALLOC_ATTR void *gort_pvalloc(size_t size);
/* The bytes actually usable at ptr: at least what was asked for. */
GORT_API size_t gort_malloc_usable_size(void *ptr);
/* Gives every free page back to the OS now.  pad is accepted for glibc
 * compatibility and ignored.  Returns 1 if any memory was released. */
GORT_API int gort_malloc_trim(size_t pad);
/* Prints the statistics below to stderr, in the layout of GODEBUG=memstats=1. */
GORT_API void gort_malloc_stats(void);
#if defined(__GLIBC__)
/* glibc's summaries: arena = HeapSys, uordblks = HeapAlloc, fordblks =
 * HeapSys - HeapAlloc, hblkhd = bytes in large objects, ordblks = free page
 * runs, keepcost = idle bytes not yet released. */
GORT_API struct mallinfo2 gort_mallinfo2(void);
GORT_API struct mallinfo gort_mallinfo(void);
#endif

/* ---- Statistics, shaped like Go's runtime.MemStats ---------------------- */

#define GORT_NUM_SIZE_CLASSES 68   /* Go's 67 size classes plus class 0 (large) */

struct gort_memstats {
    /* General. */
    uint64_t alloc;          /* Alloc: bytes of allocated heap objects (= heap_alloc) */
    uint64_t total_alloc;    /* TotalAlloc: cumulative bytes allocated */
    uint64_t sys;            /* Sys: bytes obtained from the OS, all kinds */
    uint64_t mallocs;        /* Mallocs: cumulative count of objects allocated */
    uint64_t frees;          /* Frees: cumulative count of objects freed */

    /* The heap. */
    uint64_t heap_alloc;     /* HeapAlloc: bytes of live objects */
    uint64_t heap_sys;       /* HeapSys: bytes of heap address space reserved */
    uint64_t heap_idle;      /* HeapIdle: bytes in free page runs */
    uint64_t heap_inuse;     /* HeapInuse: bytes in spans holding objects */
    uint64_t heap_released;  /* HeapReleased: idle bytes given back to the OS */
    uint64_t heap_objects;   /* HeapObjects: live objects */

    /* The allocator's own metadata (never from malloc). */
    uint64_t mspan_inuse;    /* MSpanInuse: bytes of mspan structures in use */
    uint64_t mspan_sys;      /* MSpanSys: bytes reserved for mspan structures */
    uint64_t mcache_inuse;   /* MCacheInuse: bytes of per-thread caches in use */
    uint64_t mcache_sys;     /* MCacheSys: bytes reserved for them */
    uint64_t other_sys;      /* OtherSys: arena index, page map and the rest */

    /* Release of memory to the OS. */
    uint64_t num_released;   /* madvise calls made to give pages back */

    /* BySize: per size class.  Index 0 is large objects (> 32 KiB). */
    struct {
        uint32_t size;       /* the class's object size (0 for large) */
        uint64_t mallocs;    /* cumulative objects allocated in this class */
        uint64_t frees;      /* cumulative objects freed in this class */
    } by_size[GORT_NUM_SIZE_CLASSES];
};

/* Fills *out with a consistent-enough snapshot (counters of other threads
 * are read without stopping them, so they may lag by in-flight calls). */
GORT_API void gort_memstats(struct gort_memstats *out);

#ifdef __cplusplus
}
#endif

#endif /* GORT_H */
