/*
 * scavenge.h — giving free pages back to the OS (Go's scavenger).
 *
 * A free run whose pages have stayed free longer than the delay
 * (GODEBUG=scavengedelay, 1 s by default) is released with madvise: the
 * memory leaves RSS, the address space stays reserved, and a later
 * allocation there faults fresh zero pages in.  The delay keeps a program
 * that frees and reallocates in a loop from paying a page fault per page
 * per cycle (~1.8 us here).
 *
 * A background thread does the work once the heap first holds 4 MiB of
 * free, unreleased pages (libc allocates a few records for any new thread,
 * so from then on the statistics count those as live objects); it sleeps exactly until the next run falls due
 * and parks on a futex when nothing is pending.  With GODEBUG=scavenger=0
 * (or if the thread cannot be started) the same work runs from the heap's
 * free path instead.  malloc_trim(0) releases everything at once.
 *
 * A program that collects also has a goal: after each cycle the collector
 * says how much memory it expects to need (its heap goal and a tenth, plus
 * what else is in use), and free pages backed beyond that are released
 * without waiting for the delay, as Go's scavenger keeps retained memory
 * near the heap goal.
 */
#ifndef GORT_SCAVENGE_H
#define GORT_SCAVENGE_H

#include <stdint.h>

/* Releases free runs that have been free since before cutoff (ns on the
 * monotonic clock; UINT64_MAX: all), about limit pages at most (UINT64_MAX:
 * no limit).  Returns the pages released; *next_due (if not NULL) gets the
 * earliest freeSince of the dirty runs left. */
uint64_t scavenge_release(uint64_t cutoff, uint64_t *next_due, uint64_t limit);

/* The collector's bound on the memory to keep backed (heap in use, stacks,
 * free pages not yet released), set after each cycle: the background
 * scavenger releases free pages above it at once, whatever their age (Go's
 * scavenger goal: the heap goal and a tenth). */
void scavenge_set_retain_goal(uint64_t bytes);
/* Wakes the scavenger if memory backed is over that goal (the background
 * sweeper calls it once a round of sweeping has freed spans). */
void scavenge_retain_check(void);

/* After pages were freed: start or wake the background scavenger. */
void scavenge_kick(void);

/* Whether released pages read back as zero (MADV_DONTNEED). */
int scavenge_releases_zero(void);

/* madvise calls made so far. */
extern uint64_t scavenge_nreleased;

/* Fork: the child has no scavenger thread. */
void scavenge_after_fork_child(void);

#endif
