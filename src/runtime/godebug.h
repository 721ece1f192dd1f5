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
    int64_t stacksize;       /* goroutine stack bytes (0: default 64 KiB) */
    int stackguard;          /* 0 madvise, 1 canary, 2 mprotect (stack.h) */
    int64_t schedtrace;      /* ms between scheduler trace lines (0: off) */
    int scheddetail;         /* 1: per-P, per-M and per-G detail in the trace */
    int asyncpreempt;        /* 1: preempt long-running goroutines by signal */
    int64_t memprofilerate;  /* heap profile sampling rate in bytes (-1: unset) */
    int gctrace;             /* 1: a line per collection on stderr */
    int gccheckmark;         /* 1: verify each mark with a second, stopped one */
    int leakcheck;           /* 1: report unreachable malloc blocks at exit */
    int gcconcurrent;        /* 1: mark concurrently, 0: stopped; -1: unset (gort_set_gc_concurrent) */
    char trace[1024];        /* trace=FILE: execution trace written there ("": off) */
};

extern struct godebug debug;

/* Reads GODEBUG; called once from mallocinit. */
void godebug_parse(void);

#endif
