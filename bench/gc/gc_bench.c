/*
 * gc_bench.c — the collector benchmarks in C: built as is for gort's
 * collector, and with -DUSE_BOEHM for the Boehm GC (libgc), so both run the
 * very same code.  go/main.go is the same programs in Go; bench/gc/run.py
 * builds the three and compares them.
 *
 *   gc_bench binarytrees N [untyped]   benchmarks-game binary-trees, max
 *                                      depth N, single-threaded
 *   gc_bench gcbench [untyped]         Hans Boehm's GCBench
 *   gc_bench latency WINDOW COUNT      Go's gc_latency: COUNT 1 KiB messages
 *                                      through a ring of WINDOW
 *
 * gort's nodes come from gort_new_typed (a pointer map naming the two child
 * fields) unless "untyped" asks for gort_new (every word scanned); Boehm's
 * from GC_MALLOC.  Pointer stores into collected objects go through
 * gort_store, as gort.h asks of code that may run while marking.
 *
 * Every figure is printed as a "key value" line for the runner: "check_*"
 * lines (which the Go and Boehm builds must print identically), "ms" (wall
 * time of the benchmark itself), "live_bytes" (the most data the program
 * holds at once, from its object sizes), and the collector's own account:
 * num_gc, pause_total_ns and the max / p50 / p99 of the recorded pauses.
 * gort's pauses come from gort_memstats (its last 256, as Go's); Boehm's
 * are timed here from its collection events, stop-world to start-world.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef USE_BOEHM
#define GC_THREADS /* libgc is built threaded: declares its parallel-mark calls */
#include <gc.h>
#else
#include <gort.h>
#endif

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "gc_bench: %s\n", what);
    exit(1);
}

/* ---- The collector under test -------------------------------------------- */

/* A tree node: two pointers (binary-trees) or two pointers and two ints
 * (GCBench), as the original programs have them. */
struct node {
    struct node *left, *right;
};
struct gnode {
    struct gnode *left, *right;
    int i, j;
};

static bool untyped; /* gort: gort_new instead of gort_new_typed */

#ifdef USE_BOEHM

#define IMPL "boehm"

/* Boehm stops the world inside each collection; its event callback (run by
 * the collecting thread) times both the stop-world stretch and the whole
 * collection.  The mutator is single-threaded, so it waits for the whole
 * collection; the stop-world part is what compares with gort's and Go's
 * stop-the-world pauses. */
#define MAX_GCS 65536
static int64_t ev_start, ev_stop;
static int64_t stw_ns[MAX_GCS], coll_ns[MAX_GCS];
static int64_t stw_cur;
static uint64_t gcs, gcs_with_stw;

static void GC_CALLBACK on_gc_event(GC_EventType e)
{
    int64_t t = now_ns();
    switch (e) {
    case GC_EVENT_START:
        ev_start = t;
        stw_cur = 0;
        break;
    case GC_EVENT_PRE_STOP_WORLD:
        ev_stop = t;
        break;
    case GC_EVENT_POST_START_WORLD:
        stw_cur += t - ev_stop;
        gcs_with_stw++;
        break;
    case GC_EVENT_END:
        if (gcs < MAX_GCS) {
            stw_ns[gcs] = stw_cur;
            coll_ns[gcs] = t - ev_start;
        }
        gcs++;
        break;
    default:
        break;
    }
}

/* Debian's libgc has parallel marking compiled in, but starts the marker
 * threads only with a program's second thread or on request: request them,
 * GC_MARKERS of them in all (the runner sets it to GOMAXPROCS). */
static void gc_setup(void)
{
    GC_INIT();
    GC_start_mark_threads();
    GC_set_on_collection_event(on_gc_event);
}

static struct node *new_node(void)
{
    struct node *n = GC_MALLOC(sizeof *n);
    if (n == NULL)
        die("out of memory");
    return n;
}

static struct gnode *new_gnode(void)
{
    struct gnode *n = GC_MALLOC(sizeof *n);
    if (n == NULL)
        die("out of memory");
    return n;
}

static void *new_scan(size_t size)
{
    void *p = GC_MALLOC(size);
    if (p == NULL)
        die("out of memory");
    return p;
}

static void *new_noscan(size_t size)
{
    void *p = GC_MALLOC_ATOMIC(size);
    if (p == NULL)
        die("out of memory");
    return p;
}

#define STORE(slot, val) (*(slot) = (val))
/* Keeps p in a register or stack slot up to here (gort_keepalive's asm). */
#define KEEPALIVE(p) __asm__ volatile("" : : "r"(p) : "memory")

#else /* gort */

#define IMPL "gort"

static const uint64_t node_ptrs[] = {GORT_PTRBIT(struct node, left) | GORT_PTRBIT(struct node, right)};
static const gort_type node_type = {sizeof(struct node), node_ptrs, "node"};
static const uint64_t gnode_ptrs[] = {GORT_PTRBIT(struct gnode, left) | GORT_PTRBIT(struct gnode, right)};
static const gort_type gnode_type = {sizeof(struct gnode), gnode_ptrs, "gnode"};

/* The programs store pointers through gort_store everywhere, so they ask
 * for concurrent marking before their first allocation (otherwise their
 * first gort_store would select it, after a few cycles with the world
 * stopped), unless GODEBUG=gcconcurrent chooses for the runner. */
static void gc_setup(void)
{
    const char *dbg = getenv("GODEBUG");
    if (!dbg || !strstr(dbg, "gcconcurrent="))
        gort_set_gc_concurrent(true);
}

static struct node *new_node(void)
{
    struct node *n = untyped ? gort_new(sizeof *n) : gort_new_typed(&node_type);
    if (n == NULL)
        die("out of memory");
    return n;
}

static struct gnode *new_gnode(void)
{
    struct gnode *n = untyped ? gort_new(sizeof *n) : gort_new_typed(&gnode_type);
    if (n == NULL)
        die("out of memory");
    return n;
}

static void *new_scan(size_t size)
{
    void *p = gort_new(size);
    if (p == NULL)
        die("out of memory");
    return p;
}

static void *new_noscan(size_t size)
{
    void *p = gort_new_noscan(size);
    if (p == NULL)
        die("out of memory");
    return p;
}

#define STORE(slot, val) gort_store((void **)(slot), (val))
#define KEEPALIVE(p) gort_keepalive(p)

#endif

/* ---- Statistics ------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The nearest rank (1-based) of percentile p among n sorted values. */
static size_t rank_of(size_t n, double p)
{
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    return rank < 1 ? 1 : rank > n ? n : rank;
}

/* Percentile p of v[0..n), which it sorts; 0 when empty. */
static int64_t percentile(int64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_i64);
    return v[rank_of(n, p) - 1];
}

static void print_pauses(const char *prefix, int64_t *v, size_t n)
{
    int64_t max = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] > max)
            max = v[i];
    printf("%s_max_ns %" PRId64 "\n", prefix, max);
    printf("%s_p50_ns %" PRId64 "\n", prefix, percentile(v, n, 50));
    printf("%s_p99_ns %" PRId64 "\n", prefix, percentile(v, n, 99));
}

/* Prints the collector's counts and pauses since the start. */
static void print_gc_stats(void)
{
#ifdef USE_BOEHM
    size_t n = gcs < MAX_GCS ? (size_t)gcs : MAX_GCS;
    int64_t total = 0, coll_total = 0;
    for (size_t i = 0; i < n; i++) {
        total += stw_ns[i];
        coll_total += coll_ns[i];
    }
    printf("num_gc %" PRIu64 "\n", gcs);
    printf("pauses_seen %zu\n", n);
    printf("pause_total_ns %" PRId64 "\n", total);
    print_pauses("pause", stw_ns, n);
    /* The whole collection, which the single mutator thread waits for. */
    printf("collection_total_ns %" PRId64 "\n", coll_total);
    print_pauses("collection", coll_ns, n);
    printf("stw_events %" PRIu64 "\n", gcs_with_stw);
    printf("markers %d\n", GC_get_parallel() + 1);
    printf("heap_size_bytes %zu\n", GC_get_heap_size());
#else
    static struct gort_memstats ms;
    static int64_t p[256];
    gort_memstats(&ms);
    size_t n = ms.num_gc < 256 ? ms.num_gc : 256;
    for (size_t i = 0; i < n; i++)
        p[i] = (int64_t)ms.pause_ns[(ms.num_gc + 255 - i) % 256];
    printf("num_gc %" PRIu32 "\n", ms.num_gc);
    printf("pauses_seen %zu\n", n);
    printf("pause_total_ns %" PRIu64 "\n", ms.pause_total_ns);
    print_pauses("pause", p, n);
    printf("next_gc_bytes %" PRIu64 "\n", ms.next_gc);
    printf("gc_cpu_fraction %.4f\n", ms.gc_cpu_fraction);
    printf("gomaxprocs %d\n", gort_gomaxprocs());
#endif
}

/* ---- binary-trees ------------------------------------------------------------ */

/* A full tree of the given depth, children first, parent last. */
static struct node *bottom_up(int depth)
{
    struct node *n;
    if (depth <= 0)
        return new_node();
    struct node *l = bottom_up(depth - 1);
    struct node *r = bottom_up(depth - 1);
    n = new_node();
    STORE(&n->left, l);
    STORE(&n->right, r);
    return n;
}

static int64_t check(const struct node *n)
{
    if (n->left == NULL)
        return 1;
    return 1 + check(n->left) + check(n->right);
}

static void binarytrees(int max_depth)
{
    const int min_depth = 4;
    if (max_depth < min_depth + 2)
        max_depth = min_depth + 2;
    int64_t t0 = now_ns();

    struct node *stretch = bottom_up(max_depth + 1);
    printf("check_stretch %" PRId64 "\n", check(stretch));
    stretch = NULL;

    struct node *long_lived = bottom_up(max_depth);
    for (int d = min_depth; d <= max_depth; d += 2) {
        int64_t iters = (int64_t)1 << (max_depth - d + min_depth), sum = 0;
        for (int64_t i = 0; i < iters; i++)
            sum += check(bottom_up(d));
        printf("check_depth%d %" PRId64 "\n", d, sum);
    }
    printf("check_longlived %" PRId64 "\n", check(long_lived));
    KEEPALIVE(long_lived);

    printf("ms %.3f\n", (double)(now_ns() - t0) / 1e6);
    /* At most the long-lived tree and one tree of max depth at once (the
     * stretch tree, one deeper, is the same size and comes alone). */
    int64_t tree = ((int64_t)2 << max_depth) - 1;
    printf("live_bytes %" PRId64 "\n", 2 * tree * (int64_t)sizeof(struct node));
}

/* ---- GCBench ------------------------------------------------------------------ */

enum {
    stretch_depth = 18,
    long_lived_depth = 16,
    array_size = 500000,
    gb_min_depth = 4,
    gb_max_depth = 16,
};

static int64_t tree_size(int depth)
{
    return ((int64_t)2 << depth) - 1;
}

/* Top-down: fills in the children of an existing node. */
static void populate(int depth, struct gnode *n)
{
    if (depth <= 0)
        return;
    STORE(&n->left, new_gnode());
    STORE(&n->right, new_gnode());
    populate(depth - 1, n->left);
    populate(depth - 1, n->right);
}

/* Bottom-up: children first, then their parent. */
static struct gnode *make_tree(int depth)
{
    if (depth <= 0)
        return new_gnode();
    struct gnode *l = make_tree(depth - 1);
    struct gnode *r = make_tree(depth - 1);
    struct gnode *n = new_gnode();
    STORE(&n->left, l);
    STORE(&n->right, r);
    return n;
}

static int64_t gcheck(const struct gnode *n)
{
    if (n->left == NULL)
        return 1;
    return 1 + gcheck(n->left) + gcheck(n->right);
}

static void gcbench(void)
{
    int64_t t0 = now_ns();

    struct gnode *temp = make_tree(stretch_depth);
    KEEPALIVE(temp);
    temp = NULL;

    struct gnode *long_lived = new_gnode();
    populate(long_lived_depth, long_lived);

    double *array = new_noscan(array_size * sizeof(double));
    for (int i = 0; i < array_size; i++)
        array[i] = i > 0 && i < array_size / 2 ? 1.0 / i : 0.0;

    for (int d = gb_min_depth; d <= gb_max_depth; d += 2) {
        int64_t iters = 2 * tree_size(stretch_depth) / tree_size(d);
        for (int64_t i = 0; i < iters; i++) {
            temp = new_gnode();
            populate(d, temp);
            KEEPALIVE(temp);
        }
        for (int64_t i = 0; i < iters; i++) {
            temp = make_tree(d);
            KEEPALIVE(temp);
        }
    }
    temp = NULL;

    printf("check_longlived %" PRId64 "\n", gcheck(long_lived));
    printf("check_array %d\n", array[1000] == 1.0 / 1000);
    KEEPALIVE(array);
    printf("ms %.3f\n", (double)(now_ns() - t0) / 1e6);
    /* The stretch tree alone, or the long-lived tree, the array and one
     * tree of max depth together: whichever is more. */
    int64_t a = tree_size(stretch_depth) * (int64_t)sizeof(struct gnode);
    int64_t b = (tree_size(long_lived_depth) + tree_size(gb_max_depth)) * (int64_t)sizeof(struct gnode) +
                array_size * (int64_t)sizeof(double);
    printf("live_bytes %" PRId64 "\n", a > b ? a : b);
}

/* ---- gc_latency ---------------------------------------------------------------- */

enum { msg_size = 1024 };

/* Creates count 1 KiB messages (pointer-free, filled with a byte of their
 * number) into a ring of window slots held in a collected table, and times
 * every creation step: the worst and p99 step are the latency a program
 * with a large live heap sees from its collector. */
static void latency(int64_t window, int64_t count)
{
    unsigned char **table = new_scan((size_t)window * sizeof *table);
    /* Step times in the collected heap too, so all three heaps hold the
     * same live data. */
    uint32_t *steps = new_noscan((size_t)count * sizeof *steps);
    int64_t worst = 0;

    int64_t t0 = now_ns();
    for (int64_t i = 0; i < count; i++) {
        int64_t s = now_ns();
        unsigned char *m = new_noscan(msg_size);
        memset(m, (int)(i & 0xff), msg_size);
        STORE(&table[i % window], m);
        int64_t dt = now_ns() - s;
        steps[i] = dt > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
        if (dt > worst)
            worst = dt;
    }
    int64_t el = now_ns() - t0;

    /* The ring must hold the last window messages, each filled with its
     * own number's byte. */
    int64_t sum = 0;
    for (int64_t k = 0; k < window; k++)
        sum += table[k][k % msg_size];
    printf("check_ring %" PRId64 "\n", sum);

    /* Percentiles from the step times sorted in place: no new memory. */
    qsort(steps, (size_t)count, sizeof *steps, cmp_u32);
    printf("ms %.3f\n", (double)el / 1e6);
    printf("step_max_ns %" PRId64 "\n", worst);
    printf("step_p99_ns %" PRIu32 "\n", steps[rank_of((size_t)count, 99) - 1]);
    printf("step_p999_ns %" PRIu32 "\n", steps[rank_of((size_t)count, 99.9) - 1]);
    printf("step_p50_ns %" PRIu32 "\n", steps[rank_of((size_t)count, 50) - 1]);
    KEEPALIVE(table);
    KEEPALIVE(steps);
    printf("live_bytes %" PRId64 "\n", window * (msg_size + (int64_t)sizeof *table) +
                                           count * (int64_t)sizeof *steps);
}

/* ---- main ------------------------------------------------------------------------ */

static int usage(void)
{
    fprintf(stderr, "usage: gc_bench binarytrees N [untyped] | gcbench [untyped] | "
                    "latency WINDOW COUNT (COUNT >= WINDOW > 0)\n");
    return 2;
}

static int bench_main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *b = argv[1];
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "untyped") == 0)
            untyped = true;
    gc_setup();
    if (strcmp(b, "binarytrees") == 0 && argc >= 3)
        binarytrees(atoi(argv[2]));
    else if (strcmp(b, "gcbench") == 0)
        gcbench();
    else if (strcmp(b, "latency") == 0 && argc >= 4 && atoll(argv[2]) > 0 && atoll(argv[3]) >= atoll(argv[2]))
        latency(atoll(argv[2]), atoll(argv[3]));
    else
        return usage();
    print_gc_stats();
    printf("impl %s%s\n", IMPL, untyped ? "-untyped" : "");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
#ifdef USE_BOEHM
    return bench_main(argc, argv);
#else
    return gort_main(bench_main, argc, argv);
#endif
}
