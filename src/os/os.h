/*
 * os.h — everything gort asks of the operating system, in one place.
 *
 * The allocator talks to Linux through these few calls only: reserve
 * address space, give pages back, read the monotonic clock, sleep and wake
 * on a futex, write to stderr.  None of them allocates, so they are safe to
 * call from inside malloc.
 */
#ifndef GORT_OS_H
#define GORT_OS_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

/* Defined in a ThreadSanitizer build (GCC or clang). */
#if defined(__SANITIZE_THREAD__)
#define GORT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORT_TSAN 1
#endif
#endif

/* Reserves n bytes of read-write address space near hint (NULL: anywhere).
 * Pages are committed by the kernel on first touch.  Returns NULL on
 * failure.  The result may differ from hint; callers check. */
void *os_reserve(void *hint, size_t n);

/* Unmaps what os_reserve or os_alloc returned. */
void os_unmap(void *p, size_t n);

/* Returns pages to the OS.  With dontneed the range reads back as zeros and
 * RSS drops at once; otherwise MADV_FREE lets the kernel take them lazily. */
void os_release(void *p, size_t n, int dontneed);

/* Faults in n bytes at p for writing (MADV_POPULATE_WRITE), so that the
 * first stores into them take no page fault; false where the kernel
 * cannot (before Linux 5.14), and then never tried again. */
bool os_populate(void *p, size_t n);

/* Fresh zeroed memory for the allocator's own metadata, never freed. */
void *os_alloc(size_t n);

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t os_nanotime(void);

/* Sleeps while *addr == val, at most ns nanoseconds (ns < 0: no limit). */
void os_futex_wait(uint32_t *addr, uint32_t val, int64_t ns);
/* Wakes up to n sleepers on addr. */
void os_futex_wake(uint32_t *addr, int n);

/* write(2) to stderr, retrying on short writes; never allocates. */
void os_write_stderr(const char *s, size_t n);

/* The OS page size (4096 on x86-64). */
size_t os_pagesize(void);

/* CPUs this process may use: its affinity mask, capped by a cgroup CPU
 * quota rounded up (containers). */
int os_ncpu(void);
int os_gettid(void);

#endif
