/*
 * unwind.h — call stacks for the heap profiler, cheaply and without frame
 * pointers.
 */
#ifndef GORT_PROF_UNWIND_H
#define GORT_PROF_UNWIND_H

#include <stdint.h>

/* Fills out with the return addresses of unwind_stack's caller's callers,
 * innermost first: out[0] is where the caller returns to.  Returns how
 * many (at most max).  Never allocates. */
int unwind_stack(uintptr_t *out, int max);

/* libgcc's walk of the same frames (what unwind_stack falls back to where
 * it cannot follow a frame itself), for the tests to compare against. */
int unwind_stack_libgcc(uintptr_t *out, int max);

/* fork: the prepare handler waits for walks under way (they may hold the
 * loader's lock, which fork does not take), and walks that start before
 * the parent or child handler runs record no frames. */
void unwind_fork_prepare(void);
void unwind_fork_parent(void);
void unwind_fork_child(void);

/* Walks that unwind_stack handed to libgcc (a frame its rule could not
 * express); for the tests. */
extern uint64_t unwind_fallbacks;

#endif
