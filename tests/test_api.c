/*
 * test_api.c — conformance of the C allocation API as gort serves it.
 *
 * The test binary links libgort.a, so the plain libc names (malloc, free,
 * calloc, ...) are gort's; every check below goes through the plain names
 * and, where gort exports one, through the gort_* name as well.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gort.h"
#include "check.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* Values the compiler cannot see through: keeps it from folding or warning
 * about deliberately absurd sizes, and from eliding malloc/free pairs. */
static size_t hide(size_t x)
{
    __asm__ volatile("" : "+r"(x));
    return x;
}

static void *hidep(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void *volatile sink;

static void escape(void *p)
{
    sink = p;
}

/* The alignment gort documents for a block of n bytes. */
static size_t natural_align(size_t n)
{
    if (n <= 8 || (n >= 17 && n <= 24))
        return 8;
    return 16;
}

static uint64_t mallocs_now(void)
{
    struct gort_memstats st;
    gort_memstats(&st);
    return st.mallocs;
}

static uint64_t frees_now(void)
{
    struct gort_memstats st;
    gort_memstats(&st);
    return st.frees;
}

static unsigned char pat(size_t i, unsigned seed)
{
    return (unsigned char)((i * 131u) ^ (i >> 8) ^ (seed * 29u) ^ 0x5a);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pat(i, seed);
}

/* Index of the first byte that does not match, or n. */
static size_t verify(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(i, seed))
            return i;
    return n;
}

static size_t first_nonzero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return i;
    return n;
}

/* ---- plain names are gort's --------------------------------------------- */

static void test_identity(void)
{
    uint64_t m0 = mallocs_now();
    void *p = malloc(hide(100));
    CHECK(p != NULL);
    escape(p);
    uint64_t m1 = mallocs_now();
    CHECKF(m1 >= m0 + 1, "plain malloc not counted by gort_memstats: %llu -> %llu",
           (unsigned long long)m0, (unsigned long long)m1);

    uint64_t f0 = frees_now();
    free(p);
    uint64_t f1 = frees_now();
    CHECKF(f1 >= f0 + 1, "plain free not counted by gort_memstats: %llu -> %llu",
           (unsigned long long)f0, (unsigned long long)f1);

    m0 = mallocs_now();
    p = gort_malloc(hide(100));
    CHECK(p != NULL);
    escape(p);
    CHECK(mallocs_now() >= m0 + 1);

    /* One allocator: blocks cross freely between the two sets of names. */
    memset(p, 1, 100);
    free(p);
    p = malloc(hide(3000));
    CHECK(p != NULL);
    memset(p, 2, 3000);
    gort_free(p);
    p = gort_calloc(10, 10);
    CHECK(p != NULL);
    p = realloc(p, 5000);
    CHECK(p != NULL);
    p = gort_realloc(p, 100 * KiB);
    CHECK(p != NULL);
    CHECK(malloc_usable_size(p) == gort_malloc_usable_size(p));
    free(p);

    /* A block shrunk to half its size or more stays where it is, small or
     * large (a buffer halving as it drains pays no copy); below half it
     * moves to a smaller class.  The contents survive either way. */
    {
        size_t sizes[] = {1024, 64 * KiB};
        for (int i = 0; i < 2; i++) {
            size_t n = sizes[i];
            unsigned char *b = malloc(hide(n));
            CHECK(b != NULL);
            for (size_t k = 0; k < n; k++)
                b[k] = (unsigned char)(k * 7);
            unsigned char *h = realloc(b, hide(n / 2));
            CHECKF(h == b, "realloc(%zu -> %zu) moved", n, n / 2);
            unsigned char *q = realloc(h, hide(n / 8));
            CHECK(q != NULL && q != h);
            for (size_t k = 0; k < n / 8; k++)
                CHECK(q[k] == (unsigned char)(k * 7));
            free(q);
        }
    }

    m0 = mallocs_now();
    p = calloc(hide(3), 7);
    CHECK(p != NULL);
    escape(p);
    CHECK(mallocs_now() >= m0 + 1);
    free(p);
}

/* ---- alignment of every size -------------------------------------------- */

static void test_alignment_all_sizes(void)
{
    void *keep[4] = { 0 };
    for (size_t n = 0; n <= 70000; n++) {
        size_t a = natural_align(n);
        unsigned char *p = malloc(hide(n));
        CHECKF(p != NULL, "malloc(%zu) returned NULL", n);
        CHECKF((uintptr_t)p % a == 0, "malloc(%zu) = %p not %zu-aligned", n, (void *)p, a);
        CHECKF(malloc_usable_size(p) >= n, "malloc_usable_size(malloc(%zu)) = %zu", n,
               malloc_usable_size(p));
        if (n > 0) {
            p[0] = 0x11;
            p[n - 1] = 0x22;
        }
        unsigned char *q = gort_malloc(hide(n));
        CHECKF(q != NULL, "gort_malloc(%zu) returned NULL", n);
        CHECKF((uintptr_t)q % a == 0, "gort_malloc(%zu) = %p not %zu-aligned", n, (void *)q, a);
        CHECK(q != p);
        if (n > 0) {
            q[0] = 0x33;
            q[n - 1] = 0x44;
            CHECK(p[0] == (n == 1 ? 0x22 : 0x11) && p[n - 1] == 0x22);
        }
        unsigned char *c = calloc(1, hide(n));
        CHECKF(c != NULL, "calloc(1, %zu) returned NULL", n);
        CHECKF((uintptr_t)c % a == 0, "calloc(1, %zu) = %p not %zu-aligned", n, (void *)c, a);
        if (n > 0)
            CHECK(c[0] == 0 && c[n - 1] == 0);
        /* Keep a few blocks alive so consecutive sizes do not always land in
         * the slot just freed. */
        size_t k = n % 4;
        free(keep[k]);
        keep[k] = p;
        gort_free(q);
        free(c);
    }
    for (int i = 0; i < 4; i++)
        free(keep[i]);
}

/* ---- requested alignments ----------------------------------------------- */

static void check_aligned_block(const char *fn, void *p, size_t align, size_t size)
{
    CHECKF(p != NULL, "%s(align %zu, size %zu) returned NULL", fn, align, size);
    CHECKF((uintptr_t)p % align == 0, "%s(align %zu, size %zu) = %p misaligned", fn, align,
           size, p);
    size_t us = malloc_usable_size(p);
    CHECKF(us >= size, "%s(align %zu, size %zu): usable %zu", fn, align, size, us);
    memset(p, 0xc5, size);
}

static void test_requested_alignment(void)
{
    for (size_t align = 1; align <= 8 * MiB; align *= 2) {
        size_t sizes[] = { 1, align - 1, align, align + 1, 3 * align, 40000, 200000 };
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t size = sizes[s];
            if (size == 0)
                continue;
            void *p;

            /* memalign takes any power of two. */
            p = memalign(hide(align), hide(size));
            check_aligned_block("memalign", p, align, size);
            void *p2 = gort_memalign(hide(align), hide(size));
            check_aligned_block("gort_memalign", p2, align, size);
            CHECK(p != p2);
            free(p);
            gort_free(p2);

            if (align < sizeof(void *))
                continue;

            p = NULL;
            int r = posix_memalign(&p, hide(align), hide(size));
            CHECKF(r == 0, "posix_memalign(align %zu, size %zu) = %d", align, size, r);
            check_aligned_block("posix_memalign", p, align, size);
            p2 = NULL;
            r = gort_posix_memalign(&p2, hide(align), hide(size));
            CHECKF(r == 0, "gort_posix_memalign(align %zu, size %zu) = %d", align, size, r);
            check_aligned_block("gort_posix_memalign", p2, align, size);
            free(p);
            gort_free(p2);

            p = aligned_alloc(hide(align), hide(size));
            check_aligned_block("aligned_alloc", p, align, size);
            p2 = gort_aligned_alloc(hide(align), hide(size));
            check_aligned_block("gort_aligned_alloc", p2, align, size);
            free(p2);
            gort_free(p);
        }
    }

    /* Many live aligned blocks at once must not overlap. */
    enum { N = 64 };
    void *blk[N];
    for (int i = 0; i < N; i++) {
        size_t align = (size_t)1 << (3 + i % 14);
        size_t size = 24 + (size_t)i * 97;
        CHECK(posix_memalign(&blk[i], align, size) == 0);
        CHECK((uintptr_t)blk[i] % align == 0);
        fill(blk[i], size, (unsigned)i);
    }
    for (int i = 0; i < N; i++) {
        size_t size = 24 + (size_t)i * 97;
        CHECKF(verify(blk[i], size, (unsigned)i) == size, "aligned block %d overwritten", i);
        free(blk[i]);
    }
}

/* ---- errors ------------------------------------------------------------- */

static void test_posix_memalign_errors(void)
{
    size_t bad[] = { 0, 3, 24, sizeof(void *) / 2 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *p = (void *)&bad[0];
        errno = 4321;
        int r = posix_memalign(&p, hide(bad[i]), 64);
        CHECKF(r == EINVAL, "posix_memalign(align %zu) = %d, want EINVAL", bad[i], r);
        CHECKF(errno == 4321, "posix_memalign changed errno to %d", errno);
        r = gort_posix_memalign(&p, hide(bad[i]), 64);
        CHECKF(r == EINVAL, "gort_posix_memalign(align %zu) = %d, want EINVAL", bad[i], r);
    }
    size_t aligns[] = { 8, 16, 64, 4096, 1 * MiB };
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        void *p = NULL;
        errno = 4321;
        int r = posix_memalign(&p, hide(aligns[i]), hide(SIZE_MAX));
        CHECKF(r == ENOMEM, "posix_memalign(%zu, SIZE_MAX) = %d, want ENOMEM", aligns[i], r);
        CHECKF(errno == 4321, "posix_memalign changed errno to %d", errno);
        r = gort_posix_memalign(&p, hide(aligns[i]), hide(SIZE_MAX - aligns[i]));
        CHECKF(r == ENOMEM, "gort_posix_memalign(%zu, SIZE_MAX-align) = %d, want ENOMEM",
               aligns[i], r);
        r = posix_memalign(&p, hide(aligns[i]), hide(SIZE_MAX / 2));
        CHECKF(r == ENOMEM, "posix_memalign(%zu, SIZE_MAX/2) = %d, want ENOMEM", aligns[i], r);
    }
}

static void expect_enomem(const char *what, void *p)
{
    int e = errno;
    CHECKF(p == NULL, "%s returned %p, want NULL", what, p);
    CHECKF(e == ENOMEM, "%s: errno = %d, want ENOMEM", what, e);
}

static void test_enomem(void)
{
    size_t huge[] = { SIZE_MAX, SIZE_MAX / 2, (size_t)1 << 62, SIZE_MAX - 4096,
                      SIZE_MAX - 16, (size_t)1 << 48 };
    char what[128];
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        snprintf(what, sizeof what, "malloc(%#zx)", huge[i]);
        expect_enomem(what, malloc(hide(huge[i])));
        errno = 0;
        snprintf(what, sizeof what, "gort_malloc(%#zx)", huge[i]);
        expect_enomem(what, gort_malloc(hide(huge[i])));
        errno = 0;
        snprintf(what, sizeof what, "calloc(1, %#zx)", huge[i]);
        expect_enomem(what, calloc(1, hide(huge[i])));
        errno = 0;
        snprintf(what, sizeof what, "realloc(NULL, %#zx)", huge[i]);
        expect_enomem(what, realloc(NULL, hide(huge[i])));
        errno = 0;
        snprintf(what, sizeof what, "aligned_alloc(64, %#zx)", huge[i]);
        expect_enomem(what, aligned_alloc(64, hide(huge[i])));
        errno = 0;
        snprintf(what, sizeof what, "memalign(4096, %#zx)", huge[i]);
        expect_enomem(what, memalign(4096, hide(huge[i])));
        errno = 0;
        snprintf(what, sizeof what, "valloc(%#zx)", huge[i]);
        expect_enomem(what, valloc(hide(huge[i])));
    }

    /* Multiplication overflow. */
    errno = 0;
    expect_enomem("calloc(SIZE_MAX/2, 3)", calloc(hide(SIZE_MAX / 2), hide(3)));
    errno = 0;
    expect_enomem("gort_calloc(SIZE_MAX/2, 3)", gort_calloc(hide(SIZE_MAX / 2), hide(3)));
    errno = 0;
    expect_enomem("calloc(1<<32, 1<<32)", calloc(hide((size_t)1 << 32), hide((size_t)1 << 32)));
    errno = 0;
    expect_enomem("calloc(3, SIZE_MAX/2)", calloc(hide(3), hide(SIZE_MAX / 2)));
    /* The product wraps to a small number: must not be served. */
    errno = 0;
    expect_enomem("calloc((SIZE_MAX/16)+2, 16)", calloc(hide(SIZE_MAX / 16 + 2), hide(16)));

    /* reallocarray overflow leaves the old block alone. */
    unsigned char *p = malloc(200);
    CHECK(p != NULL);
    fill(p, 200, 7);
    errno = 0;
    expect_enomem("reallocarray(p, SIZE_MAX/2, 3)",
                  reallocarray(hidep(p), hide(SIZE_MAX / 2), hide(3)));
    CHECK(verify(p, 200, 7) == 200);
    errno = 0;
    expect_enomem("gort_reallocarray(p, 1<<33, 1<<33)",
                  gort_reallocarray(hidep(p), hide((size_t)1 << 33), hide((size_t)1 << 33)));
    CHECK(verify(p, 200, 7) == 200);
    errno = 0;
    expect_enomem("reallocarray(p, SIZE_MAX/16+2, 16)",
                  reallocarray(hidep(p), hide(SIZE_MAX / 16 + 2), hide(16)));
    CHECK(verify(p, 200, 7) == 200);
    /* realloc to an impossible size fails the same way. */
    errno = 0;
    expect_enomem("realloc(p, SIZE_MAX)", realloc(hidep(p), hide(SIZE_MAX)));
    CHECK(verify(p, 200, 7) == 200);
    errno = 0;
    expect_enomem("realloc(p, 1<<62)", realloc(hidep(p), hide((size_t)1 << 62)));
    CHECK(verify(p, 200, 7) == 200);
    /* The block is still a good block. */
    p = reallocarray(p, 100, 20);
    CHECK(p != NULL);
    CHECK(verify(p, 200, 7) == 200);
    free(p);

    /* Same for a large block. */
    p = malloc(300 * KiB);
    CHECK(p != NULL);
    fill(p, 300 * KiB, 8);
    errno = 0;
    expect_enomem("reallocarray(large, SIZE_MAX/2, 3)",
                  reallocarray(hidep(p), hide(SIZE_MAX / 2), hide(3)));
    errno = 0;
    expect_enomem("realloc(large, SIZE_MAX/2)", realloc(hidep(p), hide(SIZE_MAX / 2)));
    CHECK(verify(p, 300 * KiB, 8) == 300 * KiB);
    free(p);

    /* reallocarray that does not overflow works. */
    p = reallocarray(NULL, 10, 10);
    CHECK(p != NULL);
    fill(p, 100, 9);
    p = gort_reallocarray(p, 1000, 10);
    CHECK(p != NULL);
    CHECK(verify(p, 100, 9) == 100);
    free(p);

    /* After all those failures, the allocator still works. */
    p = malloc(1000);
    CHECK(p != NULL);
    free(p);
}

/* ---- usable size -------------------------------------------------------- */

static void test_usable_size(void)
{
    CHECK(malloc_usable_size(NULL) == 0);
    CHECK(gort_malloc_usable_size(NULL) == 0);

    enum { NB = 6 };
    size_t sizes[200];
    size_t ns = 0;
    for (size_t n = 0; n <= 1100; n += 7)
        if (ns < 160)
            sizes[ns++] = n;
    size_t more[] = { 2047, 2048, 2049, 4095, 4096, 8191, 8192, 8193, 16000, 27264, 28000,
                      32767, 32768, 32769, 40000, 65536, 100000, 1 * MiB - 1, 1 * MiB + 1,
                      5 * MiB + 3 };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        sizes[ns++] = more[i];

    for (size_t s = 0; s < ns; s++) {
        size_t n = sizes[s];
        unsigned char *b[NB];
        size_t us[NB];
        for (int i = 0; i < NB; i++) {
            b[i] = malloc(hide(n));
            CHECK(b[i] != NULL);
            us[i] = malloc_usable_size(b[i]);
            CHECKF(us[i] >= n, "usable %zu < requested %zu", us[i], n);
            CHECK(gort_malloc_usable_size(b[i]) == us[i]);
            fill(b[i], us[i], (unsigned)(s * NB + (size_t)i));
        }
        /* Writing the whole usable size of each must not touch another. */
        for (int i = 0; i < NB; i++) {
            size_t bad = verify(b[i], us[i], (unsigned)(s * NB + (size_t)i));
            CHECKF(bad == us[i], "size %zu block %d: byte %zu of %zu usable overwritten", n, i,
                   bad, us[i]);
            CHECK(malloc_usable_size(b[i]) == us[i]);
            free(b[i]);
        }
    }
}

/* ---- realloc ------------------------------------------------------------ */

static unsigned realloc_seed;

static void realloc_pair(size_t from, size_t to)
{
    unsigned seed = ++realloc_seed;
    unsigned char *p = malloc(hide(from));
    CHECK(p != NULL);
    fill(p, from, seed);
    unsigned char *q = realloc(hidep(p), hide(to));
    CHECKF(q != NULL, "realloc(%zu -> %zu) returned NULL", from, to);
    CHECKF((uintptr_t)q % natural_align(to) == 0, "realloc(%zu -> %zu) misaligned %p", from, to,
           (void *)q);
    CHECK(malloc_usable_size(q) >= to);
    size_t keep = from < to ? from : to;
    size_t bad = verify(q, keep, seed);
    CHECKF(bad == keep, "realloc(%zu -> %zu) lost byte %zu", from, to, bad);
    memset(q, 0x77, to);
    /* And with the gort_ name. */
    unsigned char *r = gort_realloc(q, hide(from));
    CHECK(r != NULL);
    for (size_t i = 0; i < keep; i++)
        CHECKF(r[i] == 0x77, "gort_realloc(%zu -> %zu) lost byte %zu", to, from, i);
    gort_free(r);
}

static void test_realloc(void)
{
    static const size_t sizes[] = {
        1, 8, 16, 24, 48, 100, 512, 1000, 1024, 4000, 8192, 20000, 32768, /* small */
        32769, 40000, 100000, 1 * MiB, 5 * MiB + 7, 20 * MiB,             /* large */
    };
    size_t n = sizeof sizes / sizeof sizes[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            realloc_pair(sizes[i], sizes[j]);

    /* A small block aligned past the page size is a span of one page or
     * two: grown to a size that is still "small", it must not stay there
     * unless it fits. */
    for (size_t i = 0; i < n && sizes[i] <= 32768; i++) {
        void *a = NULL;
        CHECK(posix_memalign(&a, hide(16384), hide(sizes[i])) == 0);
        memset(a, 0x5a, sizes[i]);
        for (size_t to = 4096; to <= 32768; to += 4096) {
            unsigned char *b = realloc(hidep(a), hide(to));
            CHECK(b != NULL);
            CHECKF(malloc_usable_size(b) >= to, "aligned %zu realloc'd to %zu: usable %zu",
                   sizes[i], to, malloc_usable_size(b));
            memset(b, 0x5a, to);
            a = b;
        }
        free(a);
    }

    /* Keep live neighbours around so in-place growth cannot be taken for
     * granted, then grow one block step by step to 8 MiB and shrink it back,
     * checking every byte each time. */
    void *nb[32];
    for (int i = 0; i < 32; i++) {
        nb[i] = malloc((size_t)16 << (i % 12));
        CHECK(nb[i] != NULL);
    }
    size_t size = 1;
    unsigned char *p = malloc(size);
    CHECK(p != NULL);
    fill(p, size, 99);
    while (size < 8 * MiB) {
        size_t next = size + size / 3 + 5;
        p = realloc(p, next);
        CHECK(p != NULL);
        size_t bad = verify(p, size, 99);
        CHECKF(bad == size, "grow %zu -> %zu lost byte %zu", size, next, bad);
        fill(p, next, 99);
        size = next;
    }
    while (size > 1) {
        size_t next = size / 2;
        p = realloc(p, next);
        CHECK(p != NULL);
        size_t bad = verify(p, next, 99);
        CHECKF(bad == next, "shrink %zu -> %zu lost byte %zu", size, next, bad);
        size = next;
    }
    free(p);
    for (int i = 0; i < 32; i++)
        free(nb[i]);

    /* realloc(NULL, n) is malloc(n). */
    for (size_t i = 0; i < n; i++) {
        uint64_t m0 = mallocs_now();
        unsigned char *q = realloc(NULL, hide(sizes[i]));
        CHECK(q != NULL);
        CHECK(mallocs_now() >= m0 + 1);
        CHECK((uintptr_t)q % natural_align(sizes[i]) == 0);
        CHECK(malloc_usable_size(q) >= sizes[i]);
        memset(q, 1, sizes[i]);
        free(q);
        q = gort_realloc(NULL, hide(sizes[i]));
        CHECK(q != NULL);
        memset(q, 1, sizes[i]);
        gort_free(q);
    }
    unsigned char *z = realloc(NULL, 0);
    CHECK(z != NULL);
    free(z);

    /* realloc(p, 0) frees p and returns NULL. */
    for (size_t i = 0; i < n; i++) {
        void *q = malloc(hide(sizes[i]));
        CHECK(q != NULL);
        escape(q);
        uint64_t f0 = frees_now();
        void *r = realloc(q, hide(0));
        CHECKF(r == NULL, "realloc(p of %zu, 0) = %p, want NULL", sizes[i], r);
        CHECKF(frees_now() >= f0 + 1, "realloc(p of %zu, 0) did not free", sizes[i]);
        q = gort_malloc(hide(sizes[i]));
        CHECK(q != NULL);
        escape(q);
        r = gort_realloc(q, hide(0));
        CHECK(r == NULL);
    }
    /* The balance of live objects is back where it was: every realloc(p, 0)
     * above really freed. */
    struct gort_memstats a, b;
    gort_memstats(&a);
    for (size_t i = 0; i < n; i++) {
        void *q = malloc(hide(sizes[i]));
        CHECK(q != NULL);
        escape(q);
        CHECK(realloc(q, hide(0)) == NULL);
    }
    gort_memstats(&b);
    CHECKF(b.mallocs - b.frees == a.mallocs - a.frees,
           "realloc(p, 0) leaked: live objects %llu -> %llu",
           (unsigned long long)(a.mallocs - a.frees), (unsigned long long)(b.mallocs - b.frees));
}

/* ---- calloc zeroes recycled memory -------------------------------------- */

static void test_calloc_zeroes(void)
{
    static const size_t sizes[] = { 1,   7,    8,    16,    24,     48,      100,    256,
                                    1000, 3000, 4096, 10000, 32768, 32769, 100000, 3 * MiB };
    enum { MAXN = 400 };
    static unsigned char *blk[MAXN];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t size = sizes[s];
        int n = size >= MiB ? 6 : size >= 32 * KiB ? 40 : MAXN;
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < n; i++) {
                blk[i] = malloc(hide(size));
                CHECK(blk[i] != NULL);
                memset(blk[i], 0xab, malloc_usable_size(blk[i]));
            }
            for (int i = 0; i < n; i++)
                free(blk[i]);
            for (int i = 0; i < n; i++) {
                blk[i] = (i & 1) ? gort_calloc(1, hide(size)) : calloc(hide(size), 1);
                CHECK(blk[i] != NULL);
                size_t bad = first_nonzero(blk[i], size);
                CHECKF(bad == size, "calloc(%zu) round %d block %d: byte %zu is %#x", size,
                       round, i, bad, blk[i][bad]);
                memset(blk[i], 0xab, size);
            }
            for (int i = 0; i < n; i++)
                free(blk[i]);
        }
    }

    /* Dirty large blocks, freed, then carved up by small callocs. */
    unsigned char *big[16];
    for (int i = 0; i < 16; i++) {
        big[i] = malloc(1 * MiB);
        CHECK(big[i] != NULL);
        memset(big[i], 0xab, 1 * MiB);
    }
    for (int i = 0; i < 16; i++)
        free(big[i]);
    enum { NSMALL = 60000 };
    unsigned char **small = malloc(NSMALL * sizeof *small);
    CHECK(small != NULL);
    for (int i = 0; i < NSMALL; i++) {
        size_t size = 16 + (size_t)(i % 40) * 16;
        small[i] = calloc(1, size);
        CHECK(small[i] != NULL);
        size_t bad = first_nonzero(small[i], size);
        CHECKF(bad == size, "calloc(%zu) #%d over freed large memory: byte %zu nonzero", size,
               i, bad);
        small[i][0] = 0xab;
    }
    for (int i = 0; i < NSMALL; i++)
        free(small[i]);
    free(small);

    /* Dirty small blocks everywhere, then large callocs. */
    for (int i = 0; i < 20000; i++) {
        void *q = malloc(500);
        CHECK(q != NULL);
        memset(q, 0xab, 500);
        free(q);
    }
    for (int i = 0; i < 8; i++) {
        unsigned char *q = calloc(3 * MiB, 1);
        CHECK(q != NULL);
        size_t bad = first_nonzero(q, 3 * MiB);
        CHECKF(bad == 3 * MiB, "calloc(3 MiB) byte %zu nonzero", bad);
        memset(q, 0xab, 3 * MiB);
        free(q);
    }

    /* calloc with a zero count or size gives a unique freeable block. */
    void *a = calloc(0, 10), *b = calloc(10, 0), *c = calloc(0, 0);
    CHECK(a != NULL && b != NULL && c != NULL);
    CHECK(a != b && b != c && a != c);
    free(a);
    free(b);
    free(c);
}

/* ---- small things ------------------------------------------------------- */

static int cmp_ptr(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t)*(void *const *)x, b = (uintptr_t)*(void *const *)y;
    return a < b ? -1 : a > b;
}

static void test_malloc_zero_and_free_null(void)
{
    free(NULL);
    gort_free(NULL);

    enum { N = 2000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = (i & 1) ? gort_malloc(hide(0)) : malloc(hide(0));
        CHECK(p[i] != NULL);
        CHECK((uintptr_t)p[i] % 8 == 0);
    }
    qsort(p, N, sizeof p[0], cmp_ptr);
    for (int i = 1; i < N; i++)
        CHECKF(p[i] != p[i - 1], "malloc(0) returned %p twice", p[i]);
    for (int i = 0; i < N; i++)
        free(p[i]);
}

static void test_valloc_pvalloc(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t sizes[] = { 1, 100, page - 1, page, page + 1, 3 * page + 5, 100000, 2 * MiB + 1 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = valloc(hide(n));
        CHECK(p != NULL);
        CHECKF((uintptr_t)p % page == 0, "valloc(%zu) = %p not page-aligned", n, (void *)p);
        CHECK(malloc_usable_size(p) >= n);
        memset(p, 0x5c, n);
        unsigned char *q = gort_valloc(hide(n));
        CHECK(q != NULL);
        CHECK((uintptr_t)q % page == 0);
        memset(q, 0x5d, n);

        size_t rounded = (n + page - 1) / page * page;
        unsigned char *r = pvalloc(hide(n));
        CHECK(r != NULL);
        CHECKF((uintptr_t)r % page == 0, "pvalloc(%zu) = %p not page-aligned", n, (void *)r);
        CHECKF(malloc_usable_size(r) >= rounded, "pvalloc(%zu): usable %zu < %zu", n,
               malloc_usable_size(r), rounded);
        memset(r, 0x5e, rounded);
        unsigned char *s = gort_pvalloc(hide(n));
        CHECK(s != NULL);
        CHECK((uintptr_t)s % page == 0);
        CHECK(gort_malloc_usable_size(s) >= rounded);
        memset(s, 0x5f, rounded);

        for (size_t k = 0; k < n; k++)
            CHECK(p[k] == 0x5c && q[k] == 0x5d);
        for (size_t k = 0; k < rounded; k++)
            CHECK(r[k] == 0x5e && s[k] == 0x5f);
        free(p);
        free(q);
        free(r);
        gort_free(s);
    }
}

static void test_trim_and_mallinfo(void)
{
    /* Free a good deal of memory, then give it back. */
    void *big[8];
    for (int i = 0; i < 8; i++) {
        big[i] = malloc(4 * MiB);
        CHECK(big[i] != NULL);
        memset(big[i], 1, 4 * MiB);
    }
    for (int i = 0; i < 8; i++)
        free(big[i]);
    int r = malloc_trim(0);
    CHECKF(r == 0 || r == 1, "malloc_trim(0) = %d", r);
    r = gort_malloc_trim(12345);
    CHECKF(r == 0 || r == 1, "gort_malloc_trim = %d", r);
    r = malloc_trim(0);
    CHECKF(r == 0 || r == 1, "malloc_trim(0) = %d", r);
    /* Trimmed memory is usable again. */
    unsigned char *p = calloc(1, 4 * MiB);
    CHECK(p != NULL);
    CHECK(first_nonzero(p, 4 * MiB) == 4 * MiB);
    free(p);

    struct mallinfo2 a = mallinfo2();
    struct gort_memstats sa;
    gort_memstats(&sa);
    unsigned char *m = malloc(10 * MiB);
    CHECK(m != NULL);
    memset(m, 3, 10 * MiB);
    void *smalls[1000];
    for (int i = 0; i < 1000; i++) {
        smalls[i] = malloc(1000);
        CHECK(smalls[i] != NULL);
    }
    struct mallinfo2 b = mallinfo2();
    struct gort_memstats sb;
    gort_memstats(&sb);
    CHECKF(b.uordblks >= a.uordblks + 10 * MiB + 1000 * 1000,
           "mallinfo2().uordblks %zu -> %zu after allocating 11 MB", a.uordblks, b.uordblks);
    CHECKF(sb.heap_alloc >= sa.heap_alloc + 10 * MiB + 1000 * 1000,
           "gort_memstats heap_alloc %llu -> %llu after allocating 11 MB",
           (unsigned long long)sa.heap_alloc, (unsigned long long)sb.heap_alloc);
    CHECK(sb.alloc == sb.heap_alloc);
    CHECK(sb.heap_objects >= sa.heap_objects + 1001);
    CHECK(sb.heap_inuse >= sb.heap_alloc);
    CHECK(sb.heap_sys >= sb.heap_inuse);
    CHECK(sb.sys >= sb.heap_sys);
    CHECK(sb.total_alloc >= sa.total_alloc + 10 * MiB);
    free(m);
    for (int i = 0; i < 1000; i++)
        free(smalls[i]);
    struct mallinfo2 c = mallinfo2();
    CHECKF(c.uordblks + 10 * MiB <= b.uordblks, "mallinfo2().uordblks %zu -> %zu after freeing",
           b.uordblks, c.uordblks);

    /* gort_malloc_stats prints something and does not crash. */
    fflush(stderr);
    FILE *tmp = tmpfile();
    CHECK(tmp != NULL);
    int saved = dup(2);
    CHECK(saved >= 0);
    CHECK(dup2(fileno(tmp), 2) == 2);
    gort_malloc_stats();
    fflush(stderr);
    CHECK(dup2(saved, 2) == 2);
    close(saved);
    long len = ftell(tmp);
    if (len <= 0) {
        fseek(tmp, 0, SEEK_END);
        len = ftell(tmp);
    }
    CHECKF(len > 0, "gort_malloc_stats printed nothing");
    fclose(tmp);
}

static void test_free_keeps_errno(void)
{
    size_t sizes[] = { 0, 16, 1000, 32 * KiB, 100 * KiB, 4 * MiB, 64 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = malloc(hide(sizes[i]));
        CHECK(p != NULL);
        memset(p, 1, sizes[i]);
        errno = 1234;
        free(p);
        CHECKF(errno == 1234, "free of %zu-byte block changed errno to %d", sizes[i], errno);
        p = gort_malloc(hide(sizes[i]));
        CHECK(p != NULL);
        memset(p, 1, sizes[i]);
        errno = 1234;
        gort_free(p);
        CHECKF(errno == 1234, "gort_free of %zu-byte block changed errno to %d", sizes[i],
               errno);
    }
    /* Many frees, emptying whole spans. */
    enum { N = 5000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(200 + (size_t)(i % 7) * 1000);
        CHECK(p[i] != NULL);
    }
    errno = 1234;
    for (int i = 0; i < N; i++) {
        free(p[i]);
        CHECK(errno == 1234);
    }
    errno = 1234;
    free(NULL);
    CHECK(errno == 1234);
    errno = 0;
}

int main(void)
{
    test_identity();
    test_alignment_all_sizes();
    test_requested_alignment();
    test_posix_memalign_errors();
    test_enomem();
    test_usable_size();
    test_realloc();
    test_calloc_zeroes();
    test_malloc_zero_and_free_null();
    test_valloc_pvalloc();
    test_trim_and_mallinfo();
    test_free_keeps_errno();
    printf("test_api: ok\n");
    return 0;
}
