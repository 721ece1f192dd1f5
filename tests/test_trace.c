/*
 * test_trace.c — the execution tracer on a scripted program.
 *
 * With one P, so that the schedule is fixed: two goroutines ping-pong K
 * times over unbuffered channels, then one sleeps, then one sits 50 ms in a
 * blocking system call.  The trace is read back (the writer puts one event
 * on a line) and each goroutine's instant events, in time order, must be
 * exactly what the script implies:
 *   ping, pong  GoCreate GoStart (GoBlock[chan] GoUnblock GoStart) x K GoEnd
 *   sleeper     GoCreate GoStart GoBlock[sleep] GoUnblock GoStart GoEnd
 *   syscaller   GoCreate GoStart GoSysCall GoSysExit GoStart GoEnd, with the
 *               P taken from it (GoSysBlock) while it is in the call.
 * Also: per lane the instants are in time order, P0 has running slices for
 * them, the heap counter is there, the API's errors, and a second trace
 * holds nothing from before its start.  GORT_TRACE_TEST_OUT=path keeps the
 * first trace there (tests/test_trace.sh renders it).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gort.h"
#include "check.h"

#define K 5

static gort_chan *c1, *c2;
static gort_waitgroup wg;
static int64_t gping, gpong, gsleep, gsys, gmain;

static void ping(void *arg)
{
    (void)arg;
    gping = gort_goid();
    for (int i = 0; i < K; i++) {
        int v = i;
        gort_chan_send(c1, &v);
        CHECK(gort_chan_recv(c2, &v) && v == i + 100);
    }
    gort_waitgroup_done(&wg);
}

static void pong(void *arg)
{
    (void)arg;
    gpong = gort_goid();
    for (int i = 0; i < K; i++) {
        int v;
        CHECK(gort_chan_recv(c1, &v) && v == i);
        v += 100;
        gort_chan_send(c2, &v);
    }
    gort_waitgroup_done(&wg);
}

static void sleeper(void *arg)
{
    (void)arg;
    gsleep = gort_goid();
    gort_sleep(2 * 1000000);
    gort_waitgroup_done(&wg);
}

static void syscaller(void *arg)
{
    (void)arg;
    gsys = gort_goid();
    gort_syscall_enter();
    usleep(50 * 1000);
    gort_syscall_exit();
    gort_waitgroup_done(&wg);
}

/* ---- Reading the trace back ---------------------------------------------- */

struct ev {
    char name[32];
    char ph;
    int64_t ts;           /* ns */
    long tid;
    int64_t g;            /* args.g, or -1 */
    int64_t p;            /* args.p, or -1 */
    char reason[40];
    int64_t dur;          /* X: ns */
};

static struct ev *evs;
static int nev;

static int64_t num_after(const char *line, const char *key, int64_t dflt)
{
    const char *s = strstr(line, key);
    return s ? strtoll(s + strlen(key), NULL, 10) : dflt;
}

static int64_t us_after(const char *line, const char *key)
{
    const char *s = strstr(line, key);
    return s ? (int64_t)llround(strtod(s + strlen(key), NULL) * 1000.0) : -1;
}

static void str_after(const char *line, const char *key, char *out, size_t n)
{
    out[0] = 0;
    const char *s = strstr(line, key);
    if (!s)
        return;
    s += strlen(key);
    size_t i = 0;
    while (s[i] && s[i] != '"' && i + 1 < n) {
        out[i] = s[i];
        i++;
    }
    out[i] = 0;
}

static void load(const char *path)
{
    FILE *f = fopen(path, "r");
    CHECKF(f != NULL, "%s: %s", path, strerror(errno));
    static char line[4096];
    free(evs);
    evs = NULL;
    nev = 0;
    int cap = 0;
    bool head = false, tail = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "{\"displayTimeUnit\"", 18) == 0)
            head = true;
        if (strcmp(line, "]}\n") == 0)
            tail = true;
        if (strncmp(line, "{\"name\":\"", 9) != 0)
            continue;
        if (nev == cap) {
            cap = cap ? cap * 2 : 1024;
            evs = realloc(evs, (size_t)cap * sizeof *evs);
            CHECK(evs != NULL);
        }
        struct ev *e = &evs[nev++];
        memset(e, 0, sizeof *e);
        str_after(line, "{\"name\":\"", e->name, sizeof e->name);
        char ph[4];
        str_after(line, "\"ph\":\"", ph, sizeof ph);
        e->ph = ph[0];
        e->ts = us_after(line, "\"ts\":");
        e->tid = (long)num_after(line, "\"tid\":", -1);
        e->g = num_after(line, "\"g\":", -1);
        e->p = num_after(line, "\"p\":", -1);
        e->dur = us_after(line, "\"dur\":");
        str_after(line, "\"reason\":\"", e->reason, sizeof e->reason);
    }
    fclose(f);
    CHECKF(head && tail, "%s: not a whole trace (head %d, tail %d)", path, head, tail);
}

static int cmp_ts(const void *a, const void *b)
{
    const struct ev *x = *(struct ev *const *)a, *y = *(struct ev *const *)b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x < y ? -1 : x > y;   /* file order: a lane's own order */
}

/* The goroutine's instant events in time order, as "GoCreate GoStart ...",
 * with the block reason in brackets. */
static void sequence(int64_t g, char *out, size_t n)
{
    struct ev **v = malloc((size_t)nev * sizeof *v);
    CHECK(v != NULL);
    int k = 0;
    for (int i = 0; i < nev; i++)
        if (evs[i].ph == 'i' && evs[i].g == g && strncmp(evs[i].name, "Go", 2) == 0)
            v[k++] = &evs[i];
    qsort(v, (size_t)k, sizeof *v, cmp_ts);
    out[0] = 0;
    for (int i = 0; i < k; i++) {
        char w[96];
        if (strcmp(v[i]->name, "GoBlock") == 0)
            snprintf(w, sizeof w, "%sGoBlock[%s]", i ? " " : "", v[i]->reason);
        else
            snprintf(w, sizeof w, "%s%s", i ? " " : "", v[i]->name);
        CHECK(strlen(out) + strlen(w) < n);
        strcat(out, w);
    }
    free(v);
}

static const struct ev *find(const char *name, int64_t g)
{
    for (int i = 0; i < nev; i++)
        if (evs[i].ph == 'i' && strcmp(evs[i].name, name) == 0 && (g < 0 || evs[i].g == g))
            return &evs[i];
    return NULL;
}

static int count(const char *name, char ph)
{
    int c = 0;
    for (int i = 0; i < nev; i++)
        c += strcmp(evs[i].name, name) == 0 && evs[i].ph == ph;
    return c;
}

static void check_first(const char *path)
{
    load(path);
    CHECKF(nev > 20, "only %d events", nev);
    char seq[2048], want[2048];

    /* Each of ping and pong blocks once per round trip, whichever starts. */
    for (int w = 0; w < 2; w++) {
        int64_t g = w ? gpong : gping;
        sequence(g, seq, sizeof seq);
        const char *s = seq;
        CHECKF(strncmp(s, "GoCreate GoStart ", 17) == 0, "G%lld: %s", (long long)g, seq);
        s += 17;
        for (int i = 0; i < K; i++) {
            const char *a = "GoBlock[chan receive] GoUnblock GoStart ";
            const char *b = "GoBlock[chan send] GoUnblock GoStart ";
            if (strncmp(s, a, strlen(a)) == 0)
                s += strlen(a);
            else if (strncmp(s, b, strlen(b)) == 0)
                s += strlen(b);
            else
                CHECKF(0, "G%lld round %d: %s", (long long)g, i, seq);
        }
        CHECKF(strcmp(s, "GoEnd") == 0, "G%lld: %s", (long long)g, seq);
    }

    sequence(gsleep, seq, sizeof seq);
    snprintf(want, sizeof want, "GoCreate GoStart GoBlock[sleep] GoUnblock GoStart GoEnd");
    CHECKF(strcmp(seq, want) == 0, "sleeper G%lld: %s", (long long)gsleep, seq);
    const struct ev *b = find("GoBlock", gsleep), *u = find("GoUnblock", gsleep);
    CHECKF(u->ts - b->ts >= 1900000, "slept %lld ns", (long long)(u->ts - b->ts));

    sequence(gsys, seq, sizeof seq);
    snprintf(want, sizeof want, "GoCreate GoStart GoSysCall GoSysExit GoStart GoEnd");
    CHECKF(strcmp(seq, want) == 0, "syscaller G%lld: %s", (long long)gsys, seq);
    const struct ev *sc = find("GoSysCall", gsys), *sx = find("GoSysExit", gsys);
    CHECKF(sx->ts - sc->ts >= 45000000, "system call took %lld ns", (long long)(sx->ts - sc->ts));
    /* sysmon took P0 from it during the call: exactly one hand-off. */
    CHECKF(count("GoSysBlock", 'i') == 1, "%d GoSysBlock", count("GoSysBlock", 'i'));
    const struct ev *sb = find("GoSysBlock", -1);
    CHECK(sb->p == 0 && sb->tid == 0);
    CHECK(sb->ts > sc->ts && sb->ts < sx->ts);

    /* main: created before the trace, it blocks on the WaitGroup. */
    CHECK(find("GoBlock", gmain) != NULL);
    CHECK(find("GoCreate", gmain) == NULL);

    /* Per lane, instants in time order; slices have a length. */
    long tids[8];
    int64_t last[8];
    int ntid = 0;
    for (int i = 0; i < nev; i++) {
        const struct ev *e = &evs[i];
        if (e->ph == 'X')
            CHECKF(e->dur >= 0, "%s: dur %lld", e->name, (long long)e->dur);
        if (e->ph != 'i')
            continue;
        int j = 0;
        while (j < ntid && tids[j] != e->tid)
            j++;
        if (j == ntid) {
            CHECK(ntid < 8);
            tids[ntid] = e->tid;
            last[ntid++] = e->ts;
        }
        CHECKF(e->ts >= last[j], "tid %ld: %s at %lld after %lld", e->tid, e->name,
               (long long)e->ts, (long long)last[j]);
        last[j] = e->ts;
    }
    /* One P: only lane 0 and the no-P lane (100000) have events. */
    for (int j = 0; j < ntid; j++)
        CHECKF(tids[j] == 0 || tids[j] == 100000, "tid %ld", tids[j]);

    /* Running slices on P0 for ping and pong: K+1 stretches each. */
    char name[32];
    for (int w = 0; w < 2; w++) {
        snprintf(name, sizeof name, "G%lld", (long long)(w ? gpong : gping));
        CHECKF(count(name, 'X') == K + 1, "%s: %d slices", name, count(name, 'X'));
    }
    snprintf(name, sizeof name, "G%lld syscall", (long long)gsys);
    CHECKF(count(name, 'X') == 1, "%s: %d slices", name, count(name, 'X'));
    CHECKF(count("HeapAlloc", 'C') >= 2, "%d heap samples", count("HeapAlloc", 'C'));
    CHECK(count("thread_name", 'M') == 2);
    CHECK(count("Steal", 'i') == 0);
}

static void run_script(void)
{
    gort_waitgroup_add(&wg, 2);
    gort_go(ping, NULL);
    gort_go(pong, NULL);
    gort_waitgroup_wait(&wg);
    gort_waitgroup_add(&wg, 1);
    gort_go(sleeper, NULL);
    gort_waitgroup_wait(&wg);
    gort_waitgroup_add(&wg, 1);
    gort_go(syscaller, NULL);
    gort_waitgroup_wait(&wg);
}

static void quick(void *arg)
{
    *(int64_t *)arg = gort_goid();
    gort_waitgroup_done(&wg);
}

static int app_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    CHECK(gort_gomaxprocs() == 1);
    gmain = gort_goid();
    const char *keep = getenv("GORT_TRACE_TEST_OUT");
    char path[256], path2[256];
    if (keep)
        snprintf(path, sizeof path, "%s", keep);
    else
        snprintf(path, sizeof path, "/tmp/gort_test_trace.%d.json", (int)getpid());
    snprintf(path2, sizeof path2, "/tmp/gort_test_trace2.%d.json", (int)getpid());

    /* The API's errors. */
    errno = 0;
    CHECK(gort_trace_stop() == -1 && errno == EINVAL);
    CHECK(gort_trace_start("/nonexistent-dir/x.json") == -1 && errno == ENOENT);
    CHECK(gort_trace_start(NULL) == -1 && errno == EINVAL);

    c1 = gort_chan_make(sizeof(int), 0);
    c2 = gort_chan_make(sizeof(int), 0);
    CHECK(gort_trace_start(path) == 0);
    CHECK(gort_trace_start(path2) == -1 && errno == EBUSY);
    run_script();
    CHECK(gort_trace_stop() == 0);
    check_first(path);

    /* A second trace: only what happens after its start. */
    int64_t g2 = 0;
    CHECK(gort_trace_start(path2) == 0);
    gort_waitgroup_add(&wg, 1);
    gort_go(quick, &g2);
    gort_waitgroup_wait(&wg);
    CHECK(gort_trace_stop() == 0);
    load(path2);
    char seq[256];
    sequence(g2, seq, sizeof seq);
    CHECKF(strcmp(seq, "GoCreate GoStart GoEnd") == 0, "G%lld: %s", (long long)g2, seq);
    for (int i = 0; i < nev; i++)
        CHECKF(evs[i].g != gping && evs[i].g != gpong && evs[i].g != gsys && evs[i].g != gsleep,
               "second trace has %s of G%lld", evs[i].name, (long long)evs[i].g);

    if (!keep)
        unlink(path);
    unlink(path2);
    gort_chan_free(c1);
    gort_chan_free(c2);
    printf("trace: ok (ping G%lld, pong G%lld, sleeper G%lld, syscaller G%lld)\n",
           (long long)gping, (long long)gpong, (long long)gsleep, (long long)gsys);
    return 0;
}

int main(int argc, char **argv)
{
    setenv("GOMAXPROCS", "1", 1);
    return gort_main(app_main, argc, argv);
}
