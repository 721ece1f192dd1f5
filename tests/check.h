/*
 * check.h — the few assertions gort's tests use.  A failed CHECK prints where
 * and what, then exits 1, so tests/run.sh counts the test as failed.
 */
#ifndef GORT_TEST_CHECK_H
#define GORT_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

#define CHECKF(cond, ...)                                                  \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__,         \
                    __LINE__, #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

/* The process's resident bytes, from /proc/self/statm. */
static inline size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    unsigned long size = 0, resident = 0;
    CHECK(fscanf(f, "%lu %lu", &size, &resident) == 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* xorshift64*: a fast deterministic generator for randomized tests. */
static inline uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Zeroes 32 KiB of the dead stack below the caller and the registers a
 * call may leave stale, so that dead pointers do not keep objects (a
 * conservative collector would rightly see them).  Inline, and on x86-64
 * from the caller's own stack pointer down, with the caller-saved
 * registers cleared: a thread that a stop interrupts (SIGPWR) has every
 * register saved on its stack, dead or not, and a pointer left in one by
 * the last call kept a weak test's object alive in about one run in ten. */
static inline __attribute__((always_inline)) void scrub_stack(void)
{
#if defined(__x86_64__)
    void *dst;
    unsigned long n;
    __asm__ volatile("lea -32768(%%rsp), %0\n\t"
                     "mov $4096, %1\n\t"
                     "rep stosq"
                     : "=&D"(dst), "=&c"(n)
                     : "a"(0UL)
                     : "memory");
    /* And the registers a call may leave stale: a thread that a stop
     * interrupts has every register saved on its stack, dead or not. */
    __asm__ volatile("xor %%edx, %%edx\n\t"
                     "xor %%esi, %%esi\n\t"
                     "xor %%r8d, %%r8d\n\t"
                     "xor %%r9d, %%r9d\n\t"
                     "xor %%r10d, %%r10d\n\t"
                     "xor %%r11d, %%r11d\n\t"
                     "pxor %%xmm0, %%xmm0\n\t"
                     "pxor %%xmm1, %%xmm1\n\t"
                     "pxor %%xmm2, %%xmm2\n\t"
                     "pxor %%xmm3, %%xmm3\n\t"
                     "pxor %%xmm4, %%xmm4\n\t"
                     "pxor %%xmm5, %%xmm5\n\t"
                     "pxor %%xmm6, %%xmm6\n\t"
                     "pxor %%xmm7, %%xmm7\n\t"
                     "pxor %%xmm8, %%xmm8\n\t"
                     "pxor %%xmm9, %%xmm9\n\t"
                     "pxor %%xmm10, %%xmm10\n\t"
                     "pxor %%xmm11, %%xmm11\n\t"
                     "pxor %%xmm12, %%xmm12\n\t"
                     "pxor %%xmm13, %%xmm13\n\t"
                     "pxor %%xmm14, %%xmm14\n\t"
                     "pxor %%xmm15, %%xmm15"
                     :
                     :
                     : "rdx", "rsi", "r8", "r9", "r10", "r11", "xmm0", "xmm1", "xmm2", "xmm3",
                       "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                       "xmm12", "xmm13", "xmm14", "xmm15");
#else
    volatile char buf[32768];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
#endif
}

#endif
