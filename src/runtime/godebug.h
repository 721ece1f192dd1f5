/*
 * godebug.h — gort's settings from the environment, in Go's GODEBUG form
 * (GODEBUG=name=value,name=value).  Unknown names are left for other
 * programs (a Go child process reads the same variable); a known name with
 * a bad value is reported on stderr and ignored.
 */
#ifndef GORT_GODEBUG_H
#define GORT_GODEBUG_H

#include <stdint.h>

struct godebug {
    int madvdontneed;        /* 1: MADV_DONTNEED (default), 0: MADV_FREE */
    int64_t scavengedelay;   /* ns a free page waits before release (1 s) */
    int scavenger;           /* 1: background release thread (default) */
    int memstats;            /* 1: print memory statistics at exit */
};

extern struct godebug debug;

/* Reads GODEBUG; called once from mallocinit. */
void godebug_parse(void);

#endif
