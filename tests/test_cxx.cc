/*
 * test_cxx.cc — C++ on top of gort: the standard containers, shared_ptr,
 * over-aligned new (alignas(64), alignas(4096)), sized delete, new[]/delete[],
 * bad_alloc, and four threads that build containers and hand them to each
 * other through a mutex-protected queue, so most objects are freed by a
 * thread other than the one that allocated them.
 *
 * Two builds of this file exist:
 *   - the Makefile's: linked with libgort.a, so gort_memstats is there and
 *     operator new (libstdc++) reaches gort's malloc;
 *   - tests/test_preload.sh's: built with -DGORT_TEST_DYNAMIC and no gort at
 *     all, then run once plainly and once under LD_PRELOAD=libgort.so.  Its
 *     stdout must be the same both times, so everything printed on stdout is
 *     allocator-independent; gort's own checks report on stderr only.  Here
 *     gort_memstats is looked up with dlsym(RTLD_DEFAULT): found under the
 *     preload, absent in the plain run (then those checks are skipped, unless
 *     GORT_TEST_REQUIRE_GORT=1 says gort must be there).
 */
#include <gort.h>

#include "check.h"

#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

typedef void (*memstats_fn)(struct gort_memstats *);

#ifndef GORT_TEST_DYNAMIC
/* Linked with libgort.a: take every C allocation entry point from it (an
 * archive member is only linked when something names it; libstdc++, which
 * calls these, comes later on the link line). */
void *volatile gort_test_keep[] = {
    (void *)&malloc,         (void *)&free,
    (void *)&calloc,         (void *)&realloc,
    (void *)&aligned_alloc,  (void *)&posix_memalign,
    (void *)&memalign,       (void *)&malloc_usable_size,
    (void *)&gort_memstats,
};
#endif

static memstats_fn find_memstats(void)
{
#ifdef GORT_TEST_DYNAMIC
    return (memstats_fn)dlsym(RTLD_DEFAULT, "gort_memstats");
#else
    return &gort_memstats;
#endif
}

/* Keeps the compiler from eliding a new/delete pair. */
template <class T> static inline void escape(T *p)
{
    asm volatile("" : : "r"(p) : "memory");
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_str(const std::string &s, uint64_t h = 1469598103934665603ULL)
{
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

static std::string make_word(uint64_t seed)
{
    uint64_t r = mix(seed);
    size_t len = 1 + r % 40;
    std::string s;
    for (size_t i = 0; i < len; i++) {
        s.push_back((char)('a' + (r >> (i % 50)) % 26));
        if (i % 7 == 6)
            r = mix(r + i);
    }
    return s;
}

/* ---- gort underneath ------------------------------------------------------ */

static void check_gort_underneath(void)
{
    memstats_fn ms = find_memstats();
    const char *req = getenv("GORT_TEST_REQUIRE_GORT");
    if (!ms) {
        CHECKF(!(req && strcmp(req, "1") == 0),
               "gort_memstats not found, but GORT_TEST_REQUIRE_GORT=1");
        return; /* the plain run of test_preload.sh's build: nothing to check */
    }
    static struct gort_memstats a, b, c;
    ms(&a);
    int *one = new int(42);
    escape(one);
    ms(&b);
    CHECKF(b.mallocs > a.mallocs, "mallocs %llu -> %llu across new",
           (unsigned long long)a.mallocs, (unsigned long long)b.mallocs);
    CHECK(b.heap_alloc >= sizeof(int));
    delete one;
    ms(&c);
    CHECKF(c.frees > b.frees, "frees %llu -> %llu across delete",
           (unsigned long long)b.frees, (unsigned long long)c.frees);

    /* 1000 objects of 48 bytes: all in one size class, counted there. */
    struct Obj48 { char b[48]; };
    int cls = -1;
    for (int i = 1; i < GORT_NUM_SIZE_CLASSES; i++)
        if (a.by_size[i].size >= 48 && (cls < 0 || a.by_size[i].size < a.by_size[cls].size))
            cls = i;
    CHECK(cls > 0);
    std::vector<Obj48 *> objs;
    objs.reserve(1000);
    ms(&a);
    for (int i = 0; i < 1000; i++) {
        objs.push_back(new Obj48);
        escape(objs.back());
    }
    ms(&b);
    for (Obj48 *o : objs)
        delete o;
    ms(&c);
    CHECKF(b.mallocs - a.mallocs >= 1000, "mallocs +%llu for 1000 new",
           (unsigned long long)(b.mallocs - a.mallocs));
    CHECKF(b.by_size[cls].mallocs - a.by_size[cls].mallocs >= 1000,
           "class %d (size %u): mallocs +%llu for 1000 new Obj48", cls,
           (unsigned)a.by_size[cls].size,
           (unsigned long long)(b.by_size[cls].mallocs - a.by_size[cls].mallocs));
    CHECKF(c.by_size[cls].frees - b.by_size[cls].frees >= 1000,
           "class %d: frees +%llu for 1000 delete", cls,
           (unsigned long long)(c.by_size[cls].frees - b.by_size[cls].frees));
    CHECK(c.total_alloc >= b.total_alloc);
#ifndef GORT_TEST_DYNAMIC
    /* (Not in test_preload.sh's build, whose stderr must match the plain run's.) */
    fprintf(stderr, "gort: underneath (mallocs %llu, frees %llu, HeapAlloc %llu)\n",
            (unsigned long long)c.mallocs, (unsigned long long)c.frees,
            (unsigned long long)c.heap_alloc);
#endif
}

/* ---- containers ----------------------------------------------------------- */

static void test_vector_string(void)
{
    std::vector<std::string> v;
    for (uint64_t i = 0; i < 200000; i++)
        v.push_back(make_word(i));
    std::sort(v.begin(), v.end());
    CHECK(std::is_sorted(v.begin(), v.end()));
    uint64_t h = 0;
    size_t total = 0;
    for (const std::string &s : v) {
        h = hash_str(s, h ^ 0x9e3779b97f4a7c15ULL);
        total += s.size();
    }
    /* Long strings: growth by appending, copies, shrink. */
    std::string big;
    for (int i = 0; i < 100000; i++)
        big += v[(size_t)i * 2].substr(0, 3);
    std::string copy = big;
    CHECK(copy == big);
    copy.resize(10);
    copy.shrink_to_fit();
    CHECK(copy == big.substr(0, 10));
    v.erase(std::unique(v.begin(), v.end()), v.end());
    printf("vector<string>: %zu unique of 200000, %zu chars, hash %016llx, big %zu\n",
           v.size(), total, (unsigned long long)h, big.size());
}

static void test_map(void)
{
    std::map<int, std::string> m;
    for (int i = 0; i < 100000; i++)
        m[(int)(mix((uint64_t)i) % 1000000)] = make_word((uint64_t)i + 7);
    size_t before = m.size();
    for (auto it = m.begin(); it != m.end();)
        it = (it->first % 2) ? m.erase(it) : std::next(it);
    uint64_t h = 0;
    for (const auto &kv : m)
        h = hash_str(kv.second, h + (uint64_t)kv.first);
    printf("map: %zu keys, %zu even, hash %016llx\n", before, m.size(),
           (unsigned long long)h);
}

static void test_unordered_map(void)
{
    std::unordered_map<std::string, std::vector<int>> um;
    for (int i = 0; i < 60000; i++) {
        std::string k = make_word((uint64_t)i % 20000);
        um[k].push_back(i);
    }
    size_t values = 0;
    uint64_t sum = 0;
    for (const auto &kv : um) {
        values += kv.second.size();
        for (int x : kv.second)
            sum += (uint64_t)x * (kv.first.size() + 1);
    }
    CHECK(values == 60000);
    um.rehash(1 << 18);
    um.clear();
    CHECK(um.empty());
    printf("unordered_map: sum %llu\n", (unsigned long long)sum);
}

struct Node {
    static std::atomic<int> live;
    int v;
    std::shared_ptr<Node> next;
    std::weak_ptr<Node> prev;
    explicit Node(int x) : v(x) { live++; }
    ~Node() { live--; }
};
std::atomic<int> Node::live{0};

static void test_shared_ptr(void)
{
    {
        std::shared_ptr<Node> head;
        std::shared_ptr<Node> tail;
        for (int i = 0; i < 50000; i++) {
            auto n = (i % 2) ? std::make_shared<Node>(i) : std::shared_ptr<Node>(new Node(i));
            if (!head) {
                head = tail = n;
            } else {
                tail->next = n;
                n->prev = tail;
                tail = n;
            }
        }
        CHECK(Node::live == 50000);
        long sum = 0;
        for (Node *n = head.get(); n; n = n->next.get())
            sum += n->v;
        CHECK(sum == 50000L * 49999 / 2);
        std::weak_ptr<Node> w = tail;
        tail.reset();
        CHECK(!w.expired());
        /* Unlink iteratively (a recursive destructor chain of 50000 would be
         * a stack test, not an allocator test). */
        while (head)
            head = std::move(head->next);
        CHECK(w.expired());
    }
    CHECK(Node::live == 0);
    int freed = 0;
    {
        std::shared_ptr<int> p(static_cast<int *>(malloc(sizeof(int))),
                               [&freed](int *q) { freed++; free(q); });
        *p = 5;
        std::shared_ptr<int> p2 = p;
        CHECK(p.use_count() == 2);
    }
    CHECK(freed == 1);
    printf("shared_ptr: ok\n");
}

/* ---- new[], sized delete, over-aligned new ------------------------------- */

struct Counted {
    static long ctor, dtor;
    uint64_t x;
    Counted() : x(0x5a5a5a5a5a5a5a5aULL) { ctor++; }
    ~Counted() { CHECK(x == 0x5a5a5a5a5a5a5a5aULL); dtor++; }
};
long Counted::ctor = 0, Counted::dtor = 0;

struct alignas(64) A64 {
    char c[100];
};
struct alignas(4096) A4K {
    char c[5000];
};
struct alignas(64) A64D {
    int v;
    A64D() : v(7) {}
    ~A64D() { v = 0; }
};

static void test_arrays_and_sized_delete(void)
{
    static const size_t sizes[] = {0, 1, 7, 8, 16, 24, 33, 100, 1000, 4096, 8192,
                                   32768, 32769, 100000, 1 << 20, 16 << 20};
    for (size_t n : sizes) {
        char *a = new char[n];
        escape(a);
        if (n) {
            memset(a, 0xab, n);
            CHECK((unsigned char)a[n - 1] == 0xab);
        }
        delete[] a;
        Counted *c = new Counted[n % 70000 + 1];
        escape(c);
        delete[] c;
    }
    CHECK(Counted::ctor == Counted::dtor && Counted::ctor > 0);

    /* Explicit sized delete over a size spectrum, then allocation of the same
     * size again (the freed block must be reusable). */
    for (size_t n = 1; n <= 70000; n = n * 5 / 4 + 1) {
        void *p = ::operator new(n);
        escape(p);
        memset(p, 0x11, n);
        ::operator delete(p, n);
        int *q = new int[n / sizeof(int) + 1];
        escape(q);
        delete[] q;
    }
    printf("new[]/sized delete: %ld objects\n", Counted::ctor);
}

static void test_aligned_new(void)
{
    std::vector<A64 *> v64;
    std::vector<A4K *> v4k;
    for (int i = 0; i < 2000; i++) {
        A64 *p = new A64;
        CHECKF((uintptr_t)p % 64 == 0, "new A64 -> %p", (void *)p);
        memset(p->c, i & 0xff, sizeof p->c);
        v64.push_back(p);
        if (i % 10 == 0) {
            A4K *q = new A4K;
            CHECKF((uintptr_t)q % 4096 == 0, "new A4K -> %p", (void *)q);
            memset(q->c, i & 0xff, sizeof q->c);
            v4k.push_back(q);
        }
    }
    for (size_t i = 0; i < v64.size(); i++) {
        CHECK((unsigned char)v64[i]->c[99] == (i & 0xff));
        delete v64[i];
    }
    for (A4K *q : v4k)
        delete q;

    A64D *arr = new A64D[333];
    CHECKF((uintptr_t)arr % 64 == 0, "new A64D[] -> %p", (void *)arr);
    for (int i = 0; i < 333; i++)
        CHECK(arr[i].v == 7);
    delete[] arr;
    A4K *arr4 = new A4K[3];
    CHECKF((uintptr_t)arr4 % 4096 == 0, "new A4K[3] -> %p", (void *)arr4);
    delete[] arr4;

    /* Over-aligned std::vector goes through aligned operator new too. */
    std::vector<A64> vec(1000);
    CHECK((uintptr_t)vec.data() % 64 == 0);
    vec.resize(5000);
    CHECK((uintptr_t)vec.data() % 64 == 0);

    /* Raw aligned operator new / sized aligned delete, alignments 16..64K. */
    for (size_t al = 16; al <= 65536; al *= 2) {
        for (size_t n : {size_t(1), al / 2 + 1, al, 3 * al + 5}) {
            void *p = ::operator new(n, std::align_val_t(al));
            CHECKF((uintptr_t)p % al == 0, "operator new(%zu, align %zu) -> %p", n, al, p);
            memset(p, 0x77, n);
            ::operator delete(p, n, std::align_val_t(al));
        }
    }
    printf("aligned new: ok\n");
}

static void test_bad_alloc(void)
{
    bool thrown = false;
    try {
        volatile size_t huge = (size_t)1 << 62;
        char *p = new char[huge];
        escape(p);
        delete[] p;
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown);
    volatile size_t huge2 = SIZE_MAX / 4;
    char *q = new (std::nothrow) char[huge2];
    CHECK(q == nullptr);
    /* Exceptions themselves are allocated with malloc. */
    int caught = 0;
    for (int i = 0; i < 1000; i++) {
        try {
            throw std::string(200, 'x');
        } catch (const std::string &s) {
            caught += s.size() == 200;
        }
    }
    CHECK(caught == 1000);
    printf("bad_alloc: ok\n");
}

/* ---- threads exchanging containers ---------------------------------------- */

enum { NTHREADS = 4, NPARCELS = 3000 };

struct Parcel {
    int from;
    int seq;
    std::vector<uint64_t> nums;
    std::string text;
    std::map<int, std::string> tree;
    std::unordered_map<int, std::vector<char>> blobs;
    std::shared_ptr<const std::vector<int>> shared;
};

struct Inbox {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::unique_ptr<Parcel>> q;
};

static Inbox inboxes[NTHREADS];

static std::unique_ptr<Parcel> make_parcel(int from, int seq,
                                           const std::shared_ptr<const std::vector<int>> &sh)
{
    std::unique_ptr<Parcel> p(new Parcel);
    uint64_t r = mix((uint64_t)from * 1000003 + (uint64_t)seq);
    p->from = from;
    p->seq = seq;
    size_t n = r % 300;
    for (size_t i = 0; i < n; i++)
        p->nums.push_back(mix(r + i));
    p->text = make_word(r) + make_word(r + 1) + std::string(r % 3000, 'q');
    for (int i = 0; i < (int)(r % 20); i++)
        p->tree[i * 3] = make_word(r + (uint64_t)i);
    for (int i = 0; i < (int)(r % 8); i++)
        p->blobs[i].assign((size_t)(mix(r + 100 + (uint64_t)i) % 40000), (char)i);
    p->shared = sh;
    return p;
}

static uint64_t digest(const Parcel &p)
{
    uint64_t h = (uint64_t)p.from * 31 + (uint64_t)p.seq;
    for (uint64_t x : p.nums)
        h = mix(h ^ x);
    h = hash_str(p.text, h);
    for (const auto &kv : p.tree)
        h = hash_str(kv.second, h + (uint64_t)kv.first);
    for (int i = 0; i < (int)p.blobs.size(); i++) {
        auto it = p.blobs.find(i);
        CHECK(it != p.blobs.end());
        h = mix(h + it->second.size());
    }
    h = mix(h + p.shared->size());
    return h;
}

static void worker(int id, uint64_t *out_digest, long *out_count)
{
    auto shared = std::make_shared<const std::vector<int>>(1000 + id, id);
    Inbox &mine = inboxes[id];
    Inbox &next = inboxes[(id + 1) % NTHREADS];
    int from = (id + NTHREADS - 1) % NTHREADS;
    uint64_t h = 0;
    long got = 0;
    auto consume = [&](std::unique_ptr<Parcel> p) {
        CHECK(p->from == from);
        CHECK(p->seq == got);
        /* Recompute what the producer must have built, here, with this
         * thread's allocations, and compare. */
        std::unique_ptr<Parcel> expect = make_parcel(p->from, p->seq, p->shared);
        uint64_t d = digest(*p);
        CHECK(d == digest(*expect));
        h = mix(h ^ d);
        got++;
        p.reset(); /* freed on a thread other than the one that built it */
    };
    for (int seq = 0; seq < NPARCELS; seq++) {
        std::unique_ptr<Parcel> p = make_parcel(id, seq, shared);
        {
            std::lock_guard<std::mutex> lk(next.mu);
            next.q.push_back(std::move(p));
        }
        next.cv.notify_one();
        /* Drain whatever has arrived, without waiting. */
        std::deque<std::unique_ptr<Parcel>> batch;
        {
            std::lock_guard<std::mutex> lk(mine.mu);
            batch.swap(mine.q);
        }
        for (auto &bp : batch)
            consume(std::move(bp));
    }
    shared.reset(); /* the last holder of this vector may be another thread */
    while (got < NPARCELS) {
        std::deque<std::unique_ptr<Parcel>> batch;
        {
            std::unique_lock<std::mutex> lk(mine.mu);
            mine.cv.wait(lk, [&] { return !mine.q.empty(); });
            batch.swap(mine.q);
        }
        for (auto &bp : batch)
            consume(std::move(bp));
    }
    *out_digest = h;
    *out_count = got;
}

static void test_threads(void)
{
    uint64_t digests[NTHREADS];
    long counts[NTHREADS];
    std::vector<std::thread> ts;
    for (int i = 0; i < NTHREADS; i++)
        ts.emplace_back(worker, i, &digests[i], &counts[i]);
    for (auto &t : ts)
        t.join();
    for (int i = 0; i < NTHREADS; i++) {
        CHECK(counts[i] == NPARCELS);
        CHECK(inboxes[i].q.empty());
        printf("thread %d: %ld parcels from thread %d, digest %016llx\n", i, counts[i],
               (i + NTHREADS - 1) % NTHREADS, (unsigned long long)digests[i]);
    }
}

/* A few plain C calls next to new/delete: the two must share one heap. */
static void test_c_and_cxx_mix(void)
{
    char *s = static_cast<char *>(malloc(10));
    CHECK(s);
    strcpy(s, "gort");
    s = static_cast<char *>(realloc(s, 100000));
    CHECK(s && strcmp(s, "gort") == 0);
    CHECK(malloc_usable_size(s) >= 100000);
    free(s);
    void *al = aligned_alloc(256, 1024);
    CHECK(al && (uintptr_t)al % 256 == 0);
    free(al);
    int *z = static_cast<int *>(calloc(1000, sizeof(int)));
    CHECK(z);
    for (int i = 0; i < 1000; i++)
        CHECK(z[i] == 0);
    free(z);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    check_gort_underneath();
    test_c_and_cxx_mix();
    test_vector_string();
    test_map();
    test_unordered_map();
    test_shared_ptr();
    test_arrays_and_sized_delete();
    test_aligned_new();
    test_bad_alloc();
    test_threads();
    check_gort_underneath();
    printf("test_cxx: all ok\n");
    return 0;
}
