/*
 * mprof.c — the heap profiler's recording side (Go's runtime/mprof.go).
 *
 * malloc counts bytes down in each mcache and calls mprof_malloc for the
 * allocation that crosses the sample point; mprof_nextSample draws the next
 * distance from an exponential distribution of mean MemProfileRate, so every
 * byte is equally likely to be sampled (Go's fastexprand).
 *
 * A sample's call stack is walked by unwind.c from the DWARF call-frame
 * information, which needs no frame pointers, so a program built -O2 and
 * loaded with LD_PRELOAD profiles as well as one built for it; it does not
 * allocate (glibc's backtrace() would dlopen libgcc_s on first use).  The
 * frames up to mprof_malloc are dropped there; the allocator's own frames
 * above it are dropped by the writer, which knows symbol names.
 *
 * Everything here runs inside malloc and free, so nothing comes from the
 * heap: buckets and the hash tables are carved from os_alloc memory, and
 * locks are rtmutexes.  A thread-local guard keeps the profiler from
 * sampling an allocation made while it is itself running (by the unwinder,
 * or by the writer in pprof.c).
 *
 * Buckets: one per distinct stack and block size (as in Go: the unbiasing
 * assumes one size per bucket), in a hash table under buck_lock, never
 * freed; their counters are atomics, so a free only needs the address table.
 * The address table maps a sampled block to its bucket and size, so its
 * free can be matched: 16 shards, each a chained hash table with its own
 * lock, grown by doubling.
 */
#include "prof/mprof.h"
#include "gc/mgc.h"
#include "prof/pprof.h"
#include "prof/unwind.h"
#include "mem/mcache.h"
#include "os/lock.h"
#include "os/os.h"
#include "runtime/godebug.h"
#include "runtime/print.h"
#include "gort.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

int64_t MemProfileRate = 512 * 1024;
uint32_t mprof_any;

static __thread int prof_guard;
static __thread uint64_t prof_rand;

int mprof_guard(int on)
{
    int old = prof_guard;
    prof_guard = on;
    return old;
}

/* ---- Sampling distances ------------------------------------------------ */

static uint64_t rand64(void)
{
    uint64_t x = prof_rand;
    if (x == 0) {
        /* splitmix64 of the clock, the thread and this slot's address. */
        x = os_nanotime() ^ ((uint64_t)os_gettid() << 32) ^ (uint64_t)(uintptr_t)&prof_rand;
        x += 0x9e3779b97f4a7c15ull;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        x ^= x >> 31;
        if (x == 0)
            x = 1;
    }
    /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    prof_rand = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#define LN2 0.69314718055994530942

/* Natural logarithm of x > 0 (normal): x = m * 2^e with m in [sqrt(1/2),
 * sqrt(2)), then the atanh series in t = (m-1)/(m+1), |t| < 0.172.  The
 * library does not link libm. */
static double ln(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.41421356237309504880) {
        m *= 0.5;
        e++;
    }
    double t = (m - 1) / (m + 1), t2 = t * t;
    double s = 1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9 + t2 * (1.0 / 11)))));
    return e * LN2 + 2 * t * s;
}

/* e^-a for a >= 0: a = k ln2 + r, e^-r by its Taylor series, times 2^-k. */
static double expneg(double a)
{
    if (!(a < 700))
        return 0;
    int k = (int)(a / LN2);
    double r = a - k * LN2, term = 1, sum = 1;
    for (int i = 1; i < 18; i++) {
        term *= -r / i;
        sum += term;
    }
    uint64_t bits = (uint64_t)(1023 - k) << 52;
    double p2;
    memcpy(&p2, &bits, sizeof p2);
    return sum * p2;
}

int64_t mprof_nextSample(void)
{
    int64_t rate = __atomic_load_n(&MemProfileRate, __ATOMIC_RELAXED);
    if (rate <= 0)
        return INT64_MAX;
    if (rate == 1)
        return 0;
    /* u uniform in (0, 1]; -ln(u) * rate is exponential with mean rate. */
    double u = (double)((rand64() >> 11) + 1) * (1.0 / 9007199254740992.0);
    double d = -ln(u) * (double)rate;
    if (d >= 4.0e18)
        return (int64_t)4e18;
    return (int64_t)d;
}

void mprof_scale(uint64_t count, uint64_t bytes, int64_t rate, double *scount, double *sbytes)
{
    if (count == 0 || bytes == 0) {
        *scount = *sbytes = 0;
        return;
    }
    double scale = 1;
    if (rate > 1) {
        double avg = (double)bytes / (double)count;
        scale = 1 / (1 - expneg(avg / (double)rate));
    }
    *scount = (double)count * scale;
    *sbytes = (double)bytes * scale;
}

/* ---- Buckets ----------------------------------------------------------- */

/* Chains for 16 K buckets in 128 KiB (a program with many sites and sizes
 * lengthens its chains rather than every program's RSS: at 64 K heads and
 * 64 shards the profiler added 1.1 MiB to sizes' peak RSS, now 0.5). */
#define BUCKHASH (1 << 14)

static rtmutex buck_lock;
static struct mprof_bucket **buckhash;
static struct mprof_bucket *allbuckets;
static char *buck_chunk;
static size_t buck_nchunk;

struct mprof_bucket *mprof_buckets(void)
{
    return __atomic_load_n(&allbuckets, __ATOMIC_ACQUIRE);
}

static uint64_t hash_stack(const uintptr_t *stk, int n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++) {
        h ^= stk[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

/* Bump allocation from OS chunks; buck_lock held. */
static void *buck_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (buck_nchunk < n) {
        size_t sz = 256 << 10;
        buck_chunk = os_alloc(sz);
        if (!buck_chunk) {
            buck_nchunk = 0;
            return NULL;
        }
        buck_nchunk = sz;
    }
    void *p = buck_chunk;
    buck_chunk += n;
    buck_nchunk -= n;
    return p;
}

/* The bucket of this stack, made if new; NULL only when out of memory. */
static struct mprof_bucket *stkbucket(const uintptr_t *stk, int n, uint64_t size)
{
    uint64_t h = hash_stack(stk, n) ^ (size * 0x9e3779b97f4a7c15ull);
    gort_lock(&buck_lock);
    if (!buckhash) {
        buckhash = os_alloc(BUCKHASH * sizeof *buckhash);
        if (!buckhash) {
            gort_unlock(&buck_lock);
            return NULL;
        }
    }
    struct mprof_bucket **slot = &buckhash[h & (BUCKHASH - 1)], *b;
    for (b = *slot; b; b = b->next)
        if (b->hash == h && b->size == size && b->nstk == (uint32_t)n &&
            memcmp(b->stk, stk, (size_t)n * sizeof *stk) == 0)
            break;
    if (!b) {
        b = buck_alloc(sizeof *b + (size_t)n * sizeof *stk);
        if (b) {
            b->hash = h;
            b->size = size;
            b->nstk = (uint32_t)n;
            memcpy(b->stk, stk, (size_t)n * sizeof *stk);
            b->next = *slot;
            *slot = b;
            b->allnext = allbuckets;
            __atomic_store_n(&allbuckets, b, __ATOMIC_RELEASE);
        }
    }
    gort_unlock(&buck_lock);
    return b;
}

/* ---- Sampled addresses ------------------------------------------------- */

/* Samples are rare (one per 512 KiB allocated), so a few locks suffice. */
#define NSHARD_BITS 4
#define NSHARD (1 << NSHARD_BITS)

struct addrnode {
    struct addrnode *next;
    uintptr_t p;
    struct mprof_bucket *b;
    uint64_t size;
};

struct shard {
    rtmutex lock;
    uint32_t mask;               /* table size - 1; 0: no table yet */
    uint64_t count;
    struct addrnode **tab;
    struct addrnode *free;       /* recycled nodes */
    char *chunk;                 /* fresh nodes */
    size_t nchunk;
} __attribute__((aligned(64)));

static struct shard shards[NSHARD];

/* Its tables live outside the collected heap: not a root. */
__attribute__((constructor)) static void noscan_shards(void)
{
    gc_noscan_static(shards, sizeof shards);
}

/* A counting filter in front of the table: free() of a block on a sampled
 * page reaches mprof_free, and most such blocks were not sampled; one
 * relaxed load of a zero counter answers them without a lock.  Counters
 * change under the shard lock of their address (the filter index is taken
 * from the same hash bits as the shard, so one shard owns each counter); a
 * counter that reaches 255 stays there. */
#define FILTER_BITS 16
static uint8_t *filter;

static inline uint8_t *filter_slot(uint64_t h)
{
    /* (Set once, by a compare-and-swap that others may be racing.) */
    return &__atomic_load_n(&filter, __ATOMIC_ACQUIRE)[h >> (64 - FILTER_BITS)];
}

static inline uint64_t addr_hash(uintptr_t p)
{
    return ((uint64_t)p >> 3) * 0x9e3779b97f4a7c15ull;
}

static inline struct shard *shard_of(uint64_t h)
{
    return &shards[h >> (64 - NSHARD_BITS)];
}

/* Doubles the shard's table (or makes its first); lock held. */
static void shard_grow(struct shard *s)
{
    uint32_t n = s->mask ? (s->mask + 1) * 2 : 512;
    struct addrnode **tab = os_alloc(n * sizeof *tab);
    if (!tab)
        return;   /* keep the old, longer chains */
    for (uint32_t i = 0; s->mask && i <= s->mask; i++)
        for (struct addrnode *a = s->tab[i], *next; a; a = next) {
            next = a->next;
            uint32_t j = (uint32_t)addr_hash(a->p) & (n - 1);
            a->next = tab[j];
            tab[j] = a;
        }
    if (s->mask)
        os_unmap(s->tab, (s->mask + 1) * sizeof *s->tab);
    s->tab = tab;
    s->mask = n - 1;
}

static void account_free(struct mprof_bucket *b, uint64_t size)
{
    __atomic_fetch_add(&b->frees, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&b->free_bytes, size, __ATOMIC_RELAXED);
}

static void addr_insert(uintptr_t p, struct mprof_bucket *b, uint64_t size)
{
    uint64_t h = addr_hash(p);
    struct shard *s = shard_of(h);
    if (!__atomic_load_n(&filter, __ATOMIC_ACQUIRE)) {
        uint8_t *f = os_alloc((size_t)1 << FILTER_BITS), *none = NULL;
        if (!f)
            return;
        if (!__atomic_compare_exchange_n(&filter, &none, f, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            os_unmap(f, (size_t)1 << FILTER_BITS);
    }
    gort_lock(&s->lock);
    if (s->mask == 0 || s->count > 2 * (uint64_t)(s->mask + 1))
        shard_grow(s);
    if (s->mask == 0) {
        gort_unlock(&s->lock);
        return;
    }
    struct addrnode **slot = &s->tab[h & s->mask];
    for (struct addrnode *a = *slot; a; a = a->next)
        if (a->p == p) {
            /* Freed without our hearing of it (resized in place and
             * reused): count the old one freed. */
            account_free(a->b, a->size);
            a->b = b;
            a->size = size;
            gort_unlock(&s->lock);
            return;
        }
    struct addrnode *a = s->free;
    if (a) {
        s->free = a->next;
    } else {
        if (s->nchunk < sizeof *a) {
            s->chunk = os_alloc(64 << 10);
            s->nchunk = s->chunk ? 64 << 10 : 0;
        }
        if (s->nchunk < sizeof *a) {
            gort_unlock(&s->lock);
            return;
        }
        a = (struct addrnode *)s->chunk;
        s->chunk += sizeof *a;
        s->nchunk -= sizeof *a;
    }
    a->p = p;
    a->b = b;
    a->size = size;
    a->next = *slot;
    *slot = a;
    s->count++;
    uint8_t *fc = filter_slot(h);
    if (*fc != 255)
        __atomic_store_n(fc, (uint8_t)(*fc + 1), __ATOMIC_RELAXED);
    gort_unlock(&s->lock);
}

bool mprof_free(void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    uint64_t h = addr_hash(p);
    struct shard *s = shard_of(h);
    uint8_t *f = __atomic_load_n(&filter, __ATOMIC_ACQUIRE);
    /* Zero: p is not in the table, nor being added (its mprof_malloc
     * returned before anyone could free it). */
    if (!f || __atomic_load_n(&f[h >> (64 - FILTER_BITS)], __ATOMIC_RELAXED) == 0)
        return false;
    gort_lock(&s->lock);
    if (s->mask == 0) {
        gort_unlock(&s->lock);
        return false;
    }
    for (struct addrnode **pp = &s->tab[h & s->mask], *a; (a = *pp) != NULL; pp = &a->next)
        if (a->p == p) {
            *pp = a->next;
            s->count--;
            uint8_t *fc = filter_slot(h);
            if (*fc != 255)
                __atomic_store_n(fc, (uint8_t)(*fc - 1), __ATOMIC_RELAXED);
            account_free(a->b, a->size);
            a->next = s->free;
            s->free = a;
            gort_unlock(&s->lock);
            return true;
        }
    gort_unlock(&s->lock);
    return false;
}

void mprof_malloc(void *p, size_t size)
{
    if (prof_guard || !p)
        return;
    prof_guard = 1;
    uintptr_t stk[MPROF_MAXSTACK];
    int n = unwind_stack(stk, MPROF_MAXSTACK);   /* from our caller's caller up */
    struct mprof_bucket *b = stkbucket(stk, n, size);
    if (b) {
        __atomic_fetch_add(&b->allocs, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&b->alloc_bytes, (uint64_t)size, __ATOMIC_RELAXED);
        if (!__atomic_load_n(&mprof_any, __ATOMIC_RELAXED))
            __atomic_store_n(&mprof_any, 1, __ATOMIC_RELEASE);
        addr_insert((uintptr_t)p, b, size);
    }
    prof_guard = 0;
}

void mprof_totals(const void *fn, struct mprof_totals *out)
{
    memset(out, 0, sizeof *out);
    int64_t rate = __atomic_load_n(&MemProfileRate, __ATOMIC_RELAXED);
    for (struct mprof_bucket *b = mprof_buckets(); b; b = b->allnext) {
        if (fn) {
            uint32_t i;
            for (i = 0; i < b->nstk; i++)
                if (_Unwind_FindEnclosingFunction((void *)(b->stk[i] - 1)) == fn)
                    break;
            if (i == b->nstk)
                continue;
        }
        uint64_t na = __atomic_load_n(&b->allocs, __ATOMIC_RELAXED);
        uint64_t ba = __atomic_load_n(&b->alloc_bytes, __ATOMIC_RELAXED);
        uint64_t nf = __atomic_load_n(&b->frees, __ATOMIC_RELAXED);
        uint64_t bf = __atomic_load_n(&b->free_bytes, __ATOMIC_RELAXED);
        double c, s;
        mprof_scale(na, ba, rate, &c, &s);
        out->alloc_objects += c;
        out->alloc_bytes += s;
        mprof_scale(na - nf, ba - bf, rate, &c, &s);
        out->inuse_objects += c;
        out->inuse_bytes += s;
        out->raw_allocs += na;
        out->raw_frees += nf;
    }
}

/* ---- Knobs, and the writer at exit and every N seconds ----------------- */

static const char *profile_path;     /* GORT_HEAPPROFILE */
static int64_t profile_interval;     /* GORT_HEAPPROFILE_INTERVAL, seconds */
static pid_t profile_pid;            /* a forked child does not write */
static rtmutex write_lock;           /* one file writer at a time */

static void read_env(void)
{
    const char *p = getenv("GORT_HEAPPROFILE");
    profile_path = p && *p ? p : NULL;
    const char *iv = getenv("GORT_HEAPPROFILE_INTERVAL");
    profile_interval = 0;
    if (iv && *iv) {
        int64_t v = 0;
        const char *s = iv;
        for (; *s >= '0' && *s <= '9' && v < 100000000; s++)
            v = v * 10 + (*s - '0');
        if (*s || v == 0) {
            printbuf b = {.len = 0};
            pb_str(&b, "gort: GORT_HEAPPROFILE_INTERVAL: want whole seconds > 0, ignored\n");
            pb_flush(&b);
        } else {
            profile_interval = v;
        }
    }
}

struct mprof_bucket *mprof_lookup(uintptr_t p)
{
    uint64_t h = addr_hash(p);
    struct shard *s = shard_of(h);
    struct mprof_bucket *b = NULL;
    gort_lock(&s->lock);
    if (s->mask != 0)
        for (struct addrnode *a = s->tab[h & s->mask]; a; a = a->next)
            if (a->p == p) {
                b = a->b;
                break;
            }
    gort_unlock(&s->lock);
    return b;
}

void mprof_init(void)
{
    /* The leak checker names the site of every block. */
    if (debug.leakcheck && debug.memprofilerate < 0)
        debug.memprofilerate = 1;
    if (debug.memprofilerate >= 0)
        __atomic_store_n(&MemProfileRate, debug.memprofilerate, __ATOMIC_RELAXED);
    read_env();
}

/* Writes the profile to profile_path through a temporary name, so a reader
 * never sees half a file. */
static void write_profile_file(void)
{
    if (!profile_path || getpid() != profile_pid)
        return;
    char tmp[4096];
    size_t n = strlen(profile_path);
    if (n + 24 > sizeof tmp)
        return;
    memcpy(tmp, profile_path, n);
    memcpy(tmp + n, ".tmp", 5);
    int saved = errno;
    gort_lock(&write_lock);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        int err = gort_heap_profile_write(fd);
        if (close(fd) == 0 && err == 0)
            rename(tmp, profile_path);
        else
            unlink(tmp);
    }
    gort_unlock(&write_lock);
    errno = saved;
}

static void *profile_loop(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts = {.tv_sec = (time_t)profile_interval, .tv_nsec = 0};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        write_profile_file();
    }
    return NULL;
}

/* fork: called from malloc's handlers (malloc.c), which order them
 * against the heap's locks: the child's own handler allocates, and a
 * sampled allocation there needs these locks working again first. */
void mprof_fork_prepare(void)
{
    gort_lock(&buck_lock);
    for (int i = 0; i < NSHARD; i++)
        gort_lock(&shards[i].lock);
}

void mprof_fork_parent(void)
{
    for (int i = NSHARD - 1; i >= 0; i--)
        gort_unlock(&shards[i].lock);
    gort_unlock(&buck_lock);
}

void mprof_fork_child(void)
{
    for (int i = 0; i < NSHARD; i++)
        gort_lock_reinit(&shards[i].lock);
    gort_lock_reinit(&buck_lock);
    gort_lock_reinit(&write_lock);
}

/* Runs as the library loads (malloc works by then, or starts on demand):
 * what needs the heap — atexit, a thread — cannot go in mprof_init, which
 * runs inside mallocinit. */
__attribute__((constructor)) static void mprof_start(void)
{
    read_env();
    profile_pid = getpid();
    if (!profile_path)
        return;
    atexit(write_profile_file);
    if (profile_interval > 0) {
        /* The writer thread blocks every signal: it must never run a
         * program's handler. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_t t;
        if (pthread_create(&t, NULL, profile_loop, NULL) == 0)
            pthread_detach(t);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
}

/* ---- Public API -------------------------------------------------------- */

GORT_API int gort_heap_profile_write(int fd)
{
    int old = mprof_guard(1);
    int r = pprof_write_heap(fd);
    int err = errno;
    mprof_guard(old);
    errno = err;
    return r;
}

GORT_API void gort_set_memprofile_rate(int64_t bytes)
{
    if (bytes < 0)
        bytes = 0;
    __atomic_store_n(&MemProfileRate, bytes, __ATOMIC_RELAXED);
    /* Each cache counts down to a point drawn at the old rate (never, when
     * it was off): draw them afresh.  The owner may race with this store
     * and keep its old countdown; it then switches at its next sample. */
    for (struct mcache *c = __atomic_load_n(&allmcaches, __ATOMIC_ACQUIRE); c; c = c->allnext)
        __atomic_store_n(&c->next_sample, mprof_nextSample(), __ATOMIC_RELAXED);
}

GORT_API int64_t gort_memprofile_rate(void)
{
    return __atomic_load_n(&MemProfileRate, __ATOMIC_RELAXED);
}
