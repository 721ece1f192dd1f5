/*
 * sema.h — the runtime's semaphores and notify lists (sema.c), on which
 * sync.c builds Mutex, RWMutex, WaitGroup and Cond.
 *
 * A semaphore is any uint32_t in memory: its value is the count.  Waiters
 * are kept outside it, in a fixed table of roots hashed by address, so a
 * zero uint32_t is a ready semaphore and costs nothing until contended.
 */
#ifndef GORT_SEMA_H
#define GORT_SEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "gort.h"

/* Waits until *addr > 0, then decrements it.  lifo queues the caller at the
 * head of addr's waiters (a Mutex waiter that already waited once); reason
 * is the enum waitReason shown while parked.  Must be called from a
 * goroutine when it may block. */
void semacquire(uint32_t *addr, bool lifo, uint8_t reason);

/* Increments *addr and wakes one waiter, if any.  With handoff the count
 * goes straight to the woken waiter, and the caller yields so that it runs
 * now (a Mutex in starvation mode).  Callable from any thread. */
void semrelease(uint32_t *addr, bool handoff);

/* Go's notifyList, the wait queue under sync.Cond: the public gort_cond
 * holds its fields (two ticket counters and a list of sudogs).  A waiter
 * takes a ticket with notifyListAdd before it unlocks the Cond's Mutex and
 * sleeps with notifyListWait; a notify that happened in between is not
 * lost, because notify counts tickets, not sleepers. */
typedef struct gort_cond notifyList;

uint32_t notifyListAdd(notifyList *l);
void notifyListWait(notifyList *l, uint32_t t);
void notifyListNotifyOne(notifyList *l);
void notifyListNotifyAll(notifyList *l);

#endif
