/*
 * godebug.c — parsing GODEBUG without allocating (see godebug.h).
 */
#include "runtime/godebug.h"
#include "runtime/print.h"

#include <stdlib.h>
#include <string.h>

struct godebug debug = {
    .madvdontneed = 1,
    .scavengedelay = 1000 * 1000000LL,
    .scavenger = 1,
    .memstats = 0,
    .stacksize = 0,
    .stackguard = 0,
    .schedtrace = 0,
    .scheddetail = 0,
    .asyncpreempt = 0,
    .memprofilerate = -1,
    .gcconcurrent = -1,
};

struct knob {
    const char *name;
    int64_t min, max;
    int64_t scale;       /* value is multiplied by this (ms -> ns) */
    void *field;
    int is_int;          /* field is int, else int64_t */
};

static const struct knob knobs[] = {
    {"madvdontneed", 0, 1, 1, &debug.madvdontneed, 1},
    {"scavengedelay", 0, 3600 * 1000LL, 1000000, &debug.scavengedelay, 0},
    {"scavenger", 0, 1, 1, &debug.scavenger, 1},
    {"memstats", 0, 1, 1, &debug.memstats, 1},
    {"stacksize", 16384, (int64_t)1 << 30, 1, &debug.stacksize, 0},
    {"schedtrace", 0, 3600 * 1000LL, 1, &debug.schedtrace, 0},
    {"scheddetail", 0, 1, 1, &debug.scheddetail, 1},
    {"asyncpreempt", 0, 1, 1, &debug.asyncpreempt, 1},
    {"memprofilerate", 0, (int64_t)1 << 40, 1, &debug.memprofilerate, 0},
    {"gctrace", 0, 2, 1, &debug.gctrace, 1},
    {"gccheckmark", 0, 1, 1, &debug.gccheckmark, 1},
    {"leakcheck", 0, 1, 1, &debug.leakcheck, 1},
    {"gcconcurrent", 0, 1, 1, &debug.gcconcurrent, 1},
};

/* Settings whose value is a word. */
static const char *const stackguard_names[] = {"madvise", "canary", "mprotect"};

/* Parses a decimal in [s, e); returns 0 on any junk or overflow. */
static int parse_int(const char *s, const char *e, int64_t *out)
{
    int64_t v = 0;
    if (s == e)
        return 0;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 1;
}

static void report_bad(const char *item, const char *end)
{
    printbuf b = {.len = 0};
    pb_str(&b, "gort: GODEBUG: invalid setting \"");
    for (const char *p = item; p < end && b.len < 200; p++) {
        char c[2] = {*p, 0};
        pb_str(&b, c);
    }
    pb_str(&b, "\", ignored\n");
    pb_flush(&b);
}

static void apply(const char *item, const char *end)
{
    const char *eq = memchr(item, '=', (size_t)(end - item));
    if (!eq)
        return;
    size_t namelen = (size_t)(eq - item);
    if (namelen == 10 && memcmp(item, "stackguard", 10) == 0) {
        size_t vlen = (size_t)(end - eq - 1);
        for (int i = 0; i < 3; i++)
            if (strlen(stackguard_names[i]) == vlen && memcmp(stackguard_names[i], eq + 1, vlen) == 0) {
                debug.stackguard = i;
                return;
            }
        report_bad(item, end);
        return;
    }
    if (namelen == 5 && memcmp(item, "trace", 5) == 0) {
        size_t vlen = (size_t)(end - eq - 1);
        if (vlen == 0 || vlen >= sizeof debug.trace) {
            report_bad(item, end);
            return;
        }
        memcpy(debug.trace, eq + 1, vlen);
        debug.trace[vlen] = 0;
        return;
    }
    for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
        const struct knob *k = &knobs[i];
        if (strlen(k->name) != namelen || memcmp(k->name, item, namelen) != 0)
            continue;
        int64_t v;
        if (!parse_int(eq + 1, end, &v) || v < k->min || v > k->max) {
            report_bad(item, end);
            return;
        }
        if (k->is_int)
            *(int *)k->field = (int)v;
        else
            *(int64_t *)k->field = v * k->scale;
        return;
    }
}

void godebug_parse(void)
{
    const char *s = getenv("GODEBUG");
    if (!s)
        return;
    while (*s) {
        const char *end = strchr(s, ',');
        if (!end)
            end = s + strlen(s);
        apply(s, end);
        s = *end ? end + 1 : end;
    }
}
