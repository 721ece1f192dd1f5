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

#include <string.h>

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
 * (and dropped) when its goroutine already won another case.  Inline for
 * the common case, a lone plain waiter (every unbuffered hand-off). */
struct sudog *waitq_dequeue_slow(struct waitq *q);
static inline struct sudog *waitq_dequeue(struct waitq *q)
{
    struct sudog *sg = q->first;
    if (sg == NULL)
        return NULL;
    if (__builtin_expect(sg->next != NULL || sg->isSelect, 0))
        return waitq_dequeue_slow(q);
    __atomic_store_n(&q->first, NULL, __ATOMIC_RELAXED);   /* read unlocked */
    q->last = NULL;
    return sg;
}
void waitq_enqueue(struct waitq *q, struct sudog *sg);
/* Unlinks sg if it is still queued (select's losing cases). */
void waitq_remove(struct waitq *q, struct sudog *sg);
/* The buffer slot i, and copies of one element (no-ops for size 0 or NULL). */
static inline void *chanbuf(struct hchan *c, size_t i)
{
    return (char *)c->buf + i * c->elemsize;
}
static inline void chan_copy(struct hchan *c, void *dst, const void *src)
{
    if (dst == NULL || src == NULL)
        return;
    /* Word-sized elements, the common case, without a call to memcpy. */
    switch (c->elemsize) {
    case 0: break;
    case 4: __builtin_memcpy(dst, src, 4); break;
    case 8: __builtin_memcpy(dst, src, 8); break;
    case 16: __builtin_memcpy(dst, src, 16); break;
    default: memcpy(dst, src, c->elemsize); break;
    }
}
void chan_zero(struct hchan *c, void *dst);

/* Hand-offs to a waiter taken off a queue: the value moves, the waiter is
 * marked successful and returned, to be goready()d by the caller once it
 * has dropped its channel locks. */
static inline struct g *chan_handed(struct sudog *sg)
{
    sg->elem = NULL;
    sg->success = true;
    struct g *gp = sg->g;
    gp->param = sg;
    return gp;
}

static inline struct g *chan_send_direct(struct hchan *c, struct sudog *sg, const void *elem)
{
    chan_copy(c, sg->elem, elem);
    return chan_handed(sg);
}

static inline struct g *chan_recv_direct(struct hchan *c, struct sudog *sg, void *elem)
{
    if (c->dataqsiz == 0) {
        chan_copy(c, elem, sg->elem);
    } else {
        /* The ring is full (a sender waits): take its head, put the
         * sender's value in the slot just freed, which is now the tail. */
        void *qp = chanbuf(c, c->recvx);
        chan_copy(c, elem, qp);
        chan_copy(c, qp, sg->elem);
        if (++c->recvx == c->dataqsiz)
            c->recvx = 0;
        c->sendx = c->recvx;
    }
    return chan_handed(sg);
}
/* The buffer ring, under c->lock: put at sendx / take at recvx. */
void chan_buf_put(struct hchan *c, const void *elem);
void chan_buf_take(struct hchan *c, void *elem);

#endif
