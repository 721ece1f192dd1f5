/*
 * stack.h — goroutine stacks: fixed-size, lazily touched, guarded, cached
 * per P.  See stack.c.
 */
#ifndef GORT_STACK_H
#define GORT_STACK_H

#include <stdbool.h>
#include <stdint.h>

#include "sched/runtime2.h"

/* How an overflow is caught (GODEBUG=stackguard=madvise|canary|mprotect). */
enum {
    stackGuardMadvise,   /* MADV_GUARD_INSTALL page below the stack (Linux 6.13+) */
    stackGuardCanary,    /* a zero cache line at the bottom, checked at each switch */
    stackGuardMprotect,  /* a PROT_NONE page: one mapping each (vm.max_map_count) */
};

extern uintptr_t stackSize;      /* bytes per stack, guard included */
extern int stackGuard;

/* Reads GODEBUG's stacksize and stackguard; probes the kernel. */
void stackinit(void);
/* A stack from pp's cache (refilled from the pool); aborts when out of memory. */
struct stack stackalloc(struct p *pp);
/* Gives a stack back to pp's cache (pp may be NULL: straight to the pool). */
void stackfree(struct p *pp, struct stack stk);
/* The top (hi) of the goroutine stack holding sp, or 0 if sp lies in
 * none (the collector, for a thread stopped on a goroutine's stack). */
uintptr_t stack_top_of(uintptr_t sp);
/* Empties pp's cache into the pool. */
void stackcache_clear(struct p *pp);
/* Writes gp's first frame so that switching to gp->sched calls
 * goroutine_start on a fresh stack. */
void gostartframe(struct g *gp);

/* Canary mode: aborts with "stack overflow" if gp's canary line is dirty. */
__attribute__((noreturn, cold)) void stackcheck_failed(struct g *gp);
static inline void stackcheck(struct g *gp)
{
    if (stackGuard == stackGuardCanary) {
        const uint64_t *w = (const uint64_t *)gp->stack.lo;
        if (__builtin_expect((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0, 0))
            stackcheck_failed(gp);
    }
}

/* Installs the SIGSEGV/SIGBUS handler that reports a guard-page hit as a
 * stack overflow (once), and gives the calling M its signal stack. */
void stack_signals_init(void);
void stack_minit(struct m *mp);

#endif
