/*
 * chan.h — Go's channel record (hchan) and the internal channel interface
 * shared by chan.c, select.c and time.c.
 *
 * Fields read outside c->lock by the lock-free fast paths (qcount, closed,
 * recvq.first, sendq.first) are always written with atomic stores, so the
 * unlocked reads are not data races.  Everything else is under c->lock.
 */
#ifndef GORT_CHAN_H
#define GORT_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "os/lock.h"
#include "sched/runtime2.h"

/* A FIFO of sudogs (goroutines waiting to send or to receive). */
struct waitq {
    struct sudog *first;         /* written atomically: fast paths peek at it */
    struct sudog *last;
};

struct hchan {
    size_t qcount;               /* values in buf; written atomically */
    size_t dataqsiz;             /* capacity of buf (0: unbuffered) */
    void *buf;                   /* ring of dataqsiz slots, after the header */
    size_t elemsize;
    uint32_t closed;             /* written atomically (release) */
    size_t sendx, recvx;         /* ring indices */
    struct waitq recvq;          /* blocked receivers */
    struct waitq sendq;          /* blocked senders */
    spinlock lock;               /* never held across anything that blocks */
    /* Select sudogs enqueued here whose select has not yet cleaned up
     * (pass 3 relocks c); gort_chan_free waits for 0.  Under lock. */
    uint32_t selects;
    /* Called first by gort_chan_free (time.c: a timer's channel stops and
     * frees its timer).  It must not free c itself. */
    void (*onfree)(struct hchan *c, void *arg);
    void *onfreearg;
};

/* c <- *elem.  With block false it never parks and returns false when the
 * send cannot proceed at once; safe then from g0 (timers) with no user G.
 * Sending on a closed channel is fatal either way. */
bool chansend(struct hchan *c, const void *elem, bool block);
/* *elem = <-c (elem may be NULL).  Returns whether a receive happened
 * (false only when !block and nothing was ready); *received is false when
 * the channel was closed and drained, and *elem is then zeroed. */
bool chanrecv(struct hchan *c, void *elem, bool block, bool *received);
void closechan(struct hchan *c);

/* ---- For select.c ---------------------------------------------------------
 * The caller holds c->lock for all of these. */

/* Pops the first waiter that can be woken; a select's sudog is skipped
 * (and dropped) when its goroutine already won another case. */
struct sudog *waitq_dequeue(struct waitq *q);
void waitq_enqueue(struct waitq *q, struct sudog *sg);
/* Unlinks sg if it is still queued (select's losing cases). */
void waitq_remove(struct waitq *q, struct sudog *sg);
/* Hand-offs to a waiter taken off a queue: the value moves, the waiter is
 * marked successful and returned, to be goready()d by the caller once it
 * has dropped its channel locks. */
struct g *chan_send_direct(struct hchan *c, struct sudog *sg, const void *elem);
struct g *chan_recv_direct(struct hchan *c, struct sudog *sg, void *elem);
/* The buffer slot i, and copies of one element (no-ops for size 0 or NULL). */
static inline void *chanbuf(struct hchan *c, size_t i)
{
    return (char *)c->buf + i * c->elemsize;
}
void chan_copy(struct hchan *c, void *dst, const void *src);
void chan_zero(struct hchan *c, void *dst);
/* The buffer ring, under c->lock: put at sendx / take at recvx. */
void chan_buf_put(struct hchan *c, const void *elem);
void chan_buf_take(struct hchan *c, void *elem);

#endif
