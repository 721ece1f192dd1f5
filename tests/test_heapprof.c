/*
 * test_heapprof.c — the heap profiler (src/prof): sampling distances,
 * Go's unbiasing, exact counts at rate 1 from several threads at once (which
 * also proves the profiler never recurses into malloc: every allocation it
 * might make would be sampled too), a statistical comparison with
 * gort_memstats at a sampling rate, rate 0 recording nothing, and the
 * written file (gzip framing, CRC, names; GORT_HEAPPROFILE at exit and every
 * N seconds).  Phases that need a fresh process re-run this binary with an
 * argument and a different environment.
 */
#include "gort.h"
#include "mem/arena.h"
#include "mem/mspan.h"
#include "prof/mprof.h"
#include "prof/pprof.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define NTHREADS 4
#define PER_THREAD 20000

static void *volatile sink;

/* Two allocation sites; noinline, and the result is stored, so neither
 * call to malloc is a tail call and each keeps its own frame. */
__attribute__((noinline)) static void *site_a(void)
{
    void *p = malloc(48);
    sink = p;
    return p;
}

__attribute__((noinline)) static void *site_b(size_t n)
{
    void *p = NULL;
    switch (n % 3) {
    case 0: p = calloc(1, 40000); break;          /* large: 5 pages */
    case 1: CHECK(posix_memalign(&p, 64, 40000) == 0); break;
    case 2: p = realloc(NULL, 40000); break;
    }
    sink = p;
    return p;
}

static void *worker(void *arg)
{
    (void)arg;
    void **keep = gort_malloc(PER_THREAD * sizeof *keep);
    for (int i = 0; i < PER_THREAD; i++)
        keep[i] = site_a();
    for (int i = 0; i < PER_THREAD; i += 2)
        free(keep[i]);
    for (int i = 0; i < 300; i++)
        free(site_b((size_t)i));
    gort_free(keep);
    return NULL;
}

static void check_distances(void)
{
    int64_t saved = gort_memprofile_rate();
    gort_set_memprofile_rate(0);
    CHECK(mprof_nextSample() == INT64_MAX);
    gort_set_memprofile_rate(1);
    CHECK(mprof_nextSample() == 0);
    gort_set_memprofile_rate(4096);
    double sum = 0, sum2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double d = (double)mprof_nextSample();
        CHECK(d >= 0);
        sum += d;
        sum2 += d * d;
    }
    double mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
    /* Exponential: mean = sd = rate; the mean's own sd is 0.22% here. */
    CHECKF(fabs(mean - 4096) < 4096 * 0.015, "mean %.1f", mean);
    CHECKF(fabs(sd - 4096) < 4096 * 0.03, "sd %.1f", sd);
    gort_set_memprofile_rate(saved);

    /* Go's scaling: a bucket whose average block equals the rate was
     * sampled with probability 1 - 1/e. */
    double c, b;
    mprof_scale(10, 10 * 524288, 524288, &c, &b);
    CHECKF(fabs(c - 10 / (1 - exp(-1.0))) < 1e-9, "%.12f", c);
    mprof_scale(3, 48, 524288, &c, &b);
    CHECKF(fabs(b / 48 - 1 / (1 - exp(-16.0 / 524288))) < 1e-6 * b / 48, "%.6f", b);
    mprof_scale(3, 48, 1, &c, &b);
    CHECK(c == 3 && b == 48);
    mprof_scale(0, 0, 4096, &c, &b);
    CHECK(c == 0 && b == 0);
}

/* Decodes our gzip member (stored blocks only) and returns the data. */
static unsigned char *gunzip_stored(const unsigned char *gz, size_t n, size_t *outlen)
{
    CHECK(n >= 18 && gz[0] == 0x1f && gz[1] == 0x8b && gz[2] == 8);
    unsigned char *out = malloc(n);
    size_t k = 10, o = 0;
    for (;;) {
        CHECK(k + 5 <= n);
        int final = gz[k] & 1;
        CHECK((gz[k] >> 1) == 0);                  /* stored */
        size_t len = gz[k + 1] | (size_t)gz[k + 2] << 8;
        size_t nlen = gz[k + 3] | (size_t)gz[k + 4] << 8;
        CHECK((len ^ nlen) == 0xffff);
        k += 5;
        CHECK(k + len <= n);
        memcpy(out + o, gz + k, len);
        o += len;
        k += len;
        if (final)
            break;
    }
    CHECK(k + 8 == n);
    uint32_t crc = gz[k] | gz[k + 1] << 8 | gz[k + 2] << 16 | (uint32_t)gz[k + 3] << 24;
    uint32_t isize = gz[k + 4] | gz[k + 5] << 8 | gz[k + 6] << 16 | (uint32_t)gz[k + 7] << 24;
    CHECK(crc == pprof_crc32(out, o));
    CHECK(isize == (uint32_t)o);
    *outlen = o;
    return out;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    CHECKF(f != NULL, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    unsigned char *p = malloc(cap);
    for (size_t k; (k = fread(p + len, 1, cap - len, f)) > 0;) {
        len += k;
        if (len == cap)
            p = realloc(p, cap *= 2);
    }
    fclose(f);
    *n = len;
    return p;
}

static bool contains(const unsigned char *p, size_t n, const char *s)
{
    size_t m = strlen(s);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(p + i, s, m) == 0)
            return true;
    return false;
}

/* The profile in path names the given functions. */
static void check_profile_file(const char *path, const char *const *names, int nnames)
{
    size_t n, plen;
    unsigned char *gz = read_file(path, &n);
    unsigned char *prof = gunzip_stored(gz, n, &plen);
    CHECK(contains(prof, plen, "inuse_space") && contains(prof, plen, "alloc_objects"));
    for (int i = 0; i < nnames; i++)
        CHECKF(contains(prof, plen, names[i]), "%s not in %s", names[i], path);
    free(gz);
    free(prof);
}

static void check_gzip_framing(void)
{
    /* More than one stored block, and an empty input. */
    size_t n = 200000;
    unsigned char *data = malloc(n), *gz = malloc(pprof_gzip_bound(n));
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 7 + (i >> 9));
    size_t len, back;
    len = pprof_gzip(data, n, gz);
    unsigned char *out = gunzip_stored(gz, len, &back);
    CHECK(back == n && memcmp(out, data, n) == 0);
    free(out);
    len = pprof_gzip(data, 0, gz);
    out = gunzip_stored(gz, len, &back);
    CHECK(back == 0);
    free(out);
    /* The CRC-32 check value. */
    CHECK(pprof_crc32((const unsigned char *)"123456789", 9) == 0xcbf43926u);
    free(data);
    free(gz);
}

/* Rate 1, several threads: every allocation recorded, exactly. */
static void check_exact(const char *tmpdir)
{
    gort_set_memprofile_rate(1);
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&t[i], NULL, worker, NULL) == 0);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(mprof_any != 0);

    struct mprof_totals a, b;
    mprof_totals((const void *)site_a, &a);
    mprof_totals((const void *)site_b, &b);
    uint64_t na = (uint64_t)NTHREADS * PER_THREAD, nb = NTHREADS * 300;
    CHECKF(a.raw_allocs == na && a.raw_frees == na / 2, "%lu %lu",
           (unsigned long)a.raw_allocs, (unsigned long)a.raw_frees);
    CHECK(a.alloc_objects == (double)na && a.alloc_bytes == 48.0 * (double)na);
    CHECK(a.inuse_objects == (double)(na / 2) && a.inuse_bytes == 48.0 * (double)(na / 2));
    CHECKF(b.raw_allocs == nb && b.raw_frees == nb, "%lu %lu",
           (unsigned long)b.raw_allocs, (unsigned long)b.raw_frees);
    CHECK(b.alloc_bytes == 40960.0 * (double)nb && b.inuse_bytes == 0);

    /* Not every free is of a sampled block. */
    void *p = malloc(100);
    CHECK(mprof_free(p) == true);          /* sampled at rate 1 ... */
    CHECK(mprof_free(p) == false);         /* ... and now forgotten */
    gort_set_memprofile_rate(0);
    free(p);

    char path[512];
    snprintf(path, sizeof path, "%s/rate1.pb.gz", tmpdir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(gort_heap_profile_write(fd) == 0);
    close(fd);
    const char *names[] = {"site_a", "site_b", "worker"};
    check_profile_file(path, names, 3);
    CHECK(gort_heap_profile_write(-1) == -1 && errno == EBADF);
}

/* A mixed workload at a fixed rate (set by the parent in GODEBUG): the
 * unbiased totals match what memstats counted and what the test kept. */
__attribute__((noinline)) static void churn(void)
{
    enum { LIVE = 32768 };
    static void *live[LIVE];
    uint64_t seed = 12345;
    struct gort_memstats m0, m1;
    struct mprof_totals t0, t1, tc;
    gort_memstats(&m0);
    mprof_totals(NULL, &t0);
    for (int i = 0; i < 1500000; i++) {
        uint64_t r = rnd(&seed);
        size_t sz = r % 64 == 0 ? 20000 + r % 50000 : 16 + (r >> 8) % 2000;
        size_t j = (r >> 32) % LIVE;
        free(live[j]);
        live[j] = malloc(sz);
        sink = live[j];
    }
    gort_memstats(&m1);
    mprof_totals(NULL, &t1);
    mprof_totals((const void *)churn, &tc);
    double allocated = (double)(m1.total_alloc - m0.total_alloc);
    double objects = (double)(m1.mallocs - m0.mallocs);
    double est = t1.alloc_bytes - t0.alloc_bytes, esto = t1.alloc_objects - t0.alloc_objects;
    uint64_t samples = t1.raw_allocs - t0.raw_allocs;
    double kept = 0;
    for (int j = 0; j < LIVE; j++)
        kept += (double)(live[j] ? malloc_usable_size(live[j]) : 0);
    printf("rate %ld: %lu samples; bytes %.0f est %.0f (%+.2f%%); objects %.0f est %.0f "
           "(%+.2f%%); in use %.0f est %.0f (%+.2f%%)\n",
           (long)gort_memprofile_rate(), (unsigned long)samples, allocated, est,
           100 * (est / allocated - 1), objects, esto, 100 * (esto / objects - 1), kept,
           tc.inuse_bytes, 100 * (tc.inuse_bytes / kept - 1));
    /* Each estimate is a sum over ~samples Poisson points: its relative
     * error is about 1/sqrt(samples) (2% here); allow five of those. */
    double tol = 5 / sqrt((double)samples);
    CHECK(samples > 1000);
    CHECKF(fabs(est / allocated - 1) < tol, "bytes off by more than %.1f%%", 100 * tol);
    CHECKF(fabs(esto / objects - 1) < 2 * tol, "objects off by more than %.1f%%", 200 * tol);
    /* In use: the same bound over the samples still live. */
    uint64_t live_samples = tc.raw_allocs - tc.raw_frees;
    CHECK(live_samples > 300);
    CHECKF(fabs(tc.inuse_bytes / kept - 1) < 5 / sqrt((double)live_samples),
           "in-use bytes off by more than %.1f%%", 500 / sqrt((double)live_samples));
}

/* GODEBUG=memprofilerate=1: a sampled small object is put on a page of its
 * own (so that frees of its neighbours stay on the fast path), while at
 * most 64 such pages are alive; the rest are sampled where they lie.
 * Either way the object behaves as any other of its class. */
static int on_own_page(const void *p)
{
    const struct mspan *s = span_of((uintptr_t)p);
    return s->spanclass == 0 && s->sampledClass != 0 && (uintptr_t)p == s->startAddr;
}

static int run_pages(void)
{
    CHECK(gort_memprofile_rate() == 1);
    enum { N = 200 };
    static unsigned char *p[N];
    /* Resized in place within its class, moved past it; and past the
     * small sizes (its page is no large block to grow in place). */
    unsigned char *q = malloc(24);
    CHECK(q != NULL && on_own_page(q));
    memset(q, 9, 24);
    unsigned char *r = realloc(q, 20);
    CHECK(r == q);
    r = realloc(r, 5000);
    CHECK(r != NULL && r != q && r[19] == 9);
    free(r);
    q = malloc(24);
    CHECK(q != NULL && on_own_page(q));
    memset(q, 9, 24);
    r = realloc(q, 40000);
    CHECKF(r != NULL && malloc_usable_size(r) >= 40000, "realloc(sampled 24 -> 40000): usable %zu",
           r ? malloc_usable_size(r) : 0);
    CHECK(r[23] == 9);
    memset(r, 1, 40000);
    free(r);

    struct gort_memstats before, during, after;
    gort_memstats(&before);
    int own = 0;
    for (int i = 0; i < N; i++) {
        p[i] = malloc(24);
        CHECK(p[i] != NULL);
        memset(p[i], i, 24);
        own += on_own_page(p[i]);
        CHECKF(malloc_usable_size(p[i]) == 24, "object %d (%p): usable size %zu", i,
               (void *)p[i], malloc_usable_size(p[i]));
        CHECK(mprof_lookup((uintptr_t)p[i]) != NULL);
    }
    /* The program's own earlier samples (stdio, the loader) may hold some. */
    CHECKF(own >= 32 && own <= 64, "%d of %d sampled objects on pages of their own", own, N);
    gort_memstats(&during);
    CHECKF(during.by_size[3].mallocs - before.by_size[3].mallocs == N, "24-byte mallocs %lu",
           (unsigned long)(during.by_size[3].mallocs - before.by_size[3].mallocs));
    CHECK(during.by_size[0].mallocs == before.by_size[0].mallocs);
    for (int i = 0; i < N; i++) {
        CHECK(p[i][0] == (unsigned char)i && p[i][23] == (unsigned char)i);
        free(p[i]);
    }
    gort_memstats(&after);
    CHECKF(after.by_size[3].frees - before.by_size[3].frees ==
               after.by_size[3].mallocs - before.by_size[3].mallocs,
           "24-byte objects: %lu allocated, %lu freed",
           (unsigned long)(after.by_size[3].mallocs - before.by_size[3].mallocs),
           (unsigned long)(after.by_size[3].frees - before.by_size[3].frees));
    CHECK(after.by_size[0].frees - before.by_size[0].frees ==
          after.by_size[0].mallocs - before.by_size[0].mallocs);
    /* The pages are used again by the next samples. */
    own = 0;
    for (int i = 0; i < N; i++) {
        p[i] = calloc(1, 24);
        CHECK(p[i] != NULL && p[i][0] == 0 && p[i][23] == 0);
        own += on_own_page(p[i]);
    }
    CHECK(own >= 32);
    for (int i = 0; i < N; i++)
        free(p[i]);
    CHECK(malloc_trim(0) >= 0);
    return 0;
}

/* GODEBUG=memprofilerate=0: nothing is ever recorded. */
static int run_rate0(void)
{
    CHECK(gort_memprofile_rate() == 0);
    for (int i = 0; i < 200000; i++) {
        void *p = malloc((size_t)(i % 5000) * 16 + 1);
        sink = p;
        free(p);
        if (i % 1000 == 0)
            free(malloc(100000));
    }
    CHECK(mprof_any == 0);
    CHECK(mprof_buckets() == NULL);
    struct mprof_totals t;
    mprof_totals(NULL, &t);
    CHECK(t.raw_allocs == 0 && t.alloc_bytes == 0);
    return 0;
}

/* GORT_HEAPPROFILE=path with an interval of 1 s: the file appears while
 * the program runs, and is rewritten at exit. */
static int run_envwriter(const char *path)
{
    CHECK(gort_memprofile_rate() == 1024);
    for (int i = 0; i < 10000; i++)
        sink = site_a();
    struct stat st;
    for (int i = 0; i < 40 && stat(path, &st) != 0; i++)
        usleep(100000);
    CHECKF(stat(path, &st) == 0, "no periodic profile after 4 s");
    return 0;
}

static int run_child(const char *self, const char *arg, const char *env[])
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        for (int i = 0; env[i]; i++)
            putenv((char *)env[i]);
        execl(self, self, arg, (char *)NULL);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "rate0") == 0)
        return run_rate0();
    if (argc > 1 && strcmp(argv[1], "pages") == 0)
        return run_pages();
    if (argc > 1 && strcmp(argv[1], "churn") == 0) {
        churn();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "env") == 0)
        return run_envwriter(getenv("GORT_HEAPPROFILE"));

    char tmpdir[] = "/tmp/gort-heapprof.XXXXXX";
    CHECK(mkdtemp(tmpdir) != NULL);
    CHECK(gort_memprofile_rate() == 512 * 1024 || getenv("GODEBUG") != NULL);

    check_distances();
    check_gzip_framing();
    check_exact(tmpdir);

    const char *self = "/proc/self/exe";
    char selfpath[4096];
    ssize_t k = readlink(self, selfpath, sizeof selfpath - 1);
    CHECK(k > 0);
    selfpath[k] = 0;

    const char *env0[] = {"GODEBUG=memprofilerate=0", NULL};
    CHECKF(run_child(selfpath, "rate0", env0) == 0, "rate 0 child failed");
    const char *env1[] = {"GODEBUG=memprofilerate=1", NULL};
    CHECKF(run_child(selfpath, "pages", env1) == 0, "sampled pages child failed");
    const char *envc[] = {"GODEBUG=memprofilerate=65536", NULL};
    CHECKF(run_child(selfpath, "churn", envc) == 0, "churn child failed");

    static char penv[600];
    snprintf(penv, sizeof penv, "GORT_HEAPPROFILE=%s/env.pb.gz", tmpdir);
    const char *envw[] = {"GODEBUG=memprofilerate=1024", penv, "GORT_HEAPPROFILE_INTERVAL=1", NULL};
    CHECKF(run_child(selfpath, "env", envw) == 0, "GORT_HEAPPROFILE child failed");
    char path[600];
    snprintf(path, sizeof path, "%s/env.pb.gz", tmpdir);
    const char *names[] = {"site_a", "main"};
    check_profile_file(path, names, 2);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    CHECK(system(cmd) == 0);
    printf("ok\n");
    return 0;
}
