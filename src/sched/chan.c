/*
 * chan.c — Go's channels: make, send, receive, close, and the waiter queues
 * that select.c shares.
 *
 * A channel is one gort_malloc block: the hchan header followed by a ring of
 * dataqsiz element slots.  All state changes happen under c->lock.  The
 * operations, as in Go's chan.go:
 *
 *   send     a receiver is waiting: copy the value straight into its elem
 *            and goready it (the buffer is bypassed; unbuffered channels
 *            only ever work this way).  Else room in the ring: enqueue.
 *            Else park on sendq with a sudog pointing at the value.
 *   receive  a sender is waiting: for an unbuffered channel take its value;
 *            for a full buffered one take the head of the ring and move the
 *            sender's value into the freed tail slot, keeping FIFO order.
 *            Else a value in the ring: take it.  Else closed: zero, !ok.
 *            Else park on recvq.
 *   close    mark closed and wake every waiter with success = false:
 *            receivers get a zero value, senders die with "send on closed
 *            channel".
 *
 * The non-blocking forms peek without the lock first (an empty open channel
 * cannot receive, a full open one cannot send), which is what makes polling
 * loops and select-with-default cheap.  A waiter that is part of a select
 * may be queued on several channels at once; whoever wakes it must first win
 * the CAS on g->selectDone, else the sudog is stale and is dropped
 * (waitq_dequeue).  The waker sets sg->success and g->param = sg, then drops
 * the lock and calls goready; the woken goroutine reads its result from its
 * own sudog.
 */
#include <sched.h>
#include <string.h>

#include "gort.h"
#include "runtime/print.h"
#include "sched/chan.h"
#include "sched/runtime2.h"

/* The ring starts 16-byte aligned after the header, as malloc would. */
#define HCHAN_SIZE ((sizeof(struct hchan) + 15) & ~(size_t)15)

/* ---- Atomic field access (fast paths read these without the lock) ------- */

/* Acquire, so that the non-blocking receive's two looks (empty, then
 * closed) cannot be reordered by the CPU (arm64 may reorder a plain load
 * after a later acquire load). */
static inline size_t ld_qcount(struct hchan *c)
{
    return __atomic_load_n(&c->qcount, __ATOMIC_ACQUIRE);
}
static inline void st_qcount(struct hchan *c, size_t v)
{
    __atomic_store_n(&c->qcount, v, __ATOMIC_RELAXED);
}
static inline uint32_t ld_closed(struct hchan *c)
{
    return __atomic_load_n(&c->closed, __ATOMIC_ACQUIRE);
}
static inline struct sudog *ld_first(struct waitq *q)
{
    return __atomic_load_n(&q->first, __ATOMIC_ACQUIRE);
}
static inline void st_first(struct waitq *q, struct sudog *sg)
{
    __atomic_store_n(&q->first, sg, __ATOMIC_RELAXED);
}

/* Go's empty(): a receive cannot proceed without blocking (ignoring close). */
static inline bool chan_empty(struct hchan *c)
{
    if (c->dataqsiz == 0)
        return ld_first(&c->sendq) == NULL;
    return ld_qcount(c) == 0;
}

/* Go's full(): a send cannot proceed without blocking (ignoring close). */
static inline bool chan_full(struct hchan *c)
{
    if (c->dataqsiz == 0)
        return ld_first(&c->recvq) == NULL;
    return ld_qcount(c) == c->dataqsiz;
}

/* ---- Elements ------------------------------------------------------------ */

void chan_zero(struct hchan *c, void *dst)
{
    if (c->elemsize != 0 && dst != NULL)
        memset(dst, 0, c->elemsize);
}

void chan_buf_put(struct hchan *c, const void *elem)
{
    chan_copy(c, chanbuf(c, c->sendx), elem);
    if (++c->sendx == c->dataqsiz)
        c->sendx = 0;
    st_qcount(c, c->qcount + 1);
}

void chan_buf_take(struct hchan *c, void *elem)
{
    void *qp = chanbuf(c, c->recvx);
    chan_copy(c, elem, qp);
    chan_zero(c, qp);    /* a conservative scan must not see a dead value */
    if (++c->recvx == c->dataqsiz)
        c->recvx = 0;
    st_qcount(c, c->qcount - 1);
}

/* ---- Wait queues ---------------------------------------------------------- */

void waitq_enqueue(struct waitq *q, struct sudog *sg)
{
    sg->next = NULL;
    sg->prev = q->last;
    if (q->last == NULL)
        st_first(q, sg);
    else
        q->last->next = sg;
    q->last = sg;
}

struct sudog *waitq_dequeue_slow(struct waitq *q)
{
    for (;;) {
        struct sudog *sg = q->first;
        if (sg == NULL)
            return NULL;
        struct sudog *y = sg->next;
        if (y == NULL) {
            st_first(q, NULL);
            q->last = NULL;
        } else {
            y->prev = NULL;
            st_first(q, y);
            sg->next = NULL;
        }
        /* A select waits on many channels; only the first waker may have
         * it.  A loser's sudog is simply dropped here: the select's pass 3
         * finds it unlinked (prev == next == NULL, not first). */
        if (sg->isSelect) {
            uint32_t zero = 0;
            if (!__atomic_compare_exchange_n(&sg->g->selectDone, &zero, 1, false,
                                             __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                continue;
        }
        return sg;
    }
}

void waitq_remove(struct waitq *q, struct sudog *sg)
{
    struct sudog *x = sg->prev, *y = sg->next;
    if (x != NULL) {
        if (y != NULL) {
            x->next = y;
            y->prev = x;
        } else {
            x->next = NULL;
            q->last = x;
        }
    } else if (y != NULL) {
        y->prev = NULL;
        st_first(q, y);
    } else if (q->first == sg) {
        st_first(q, NULL);
        q->last = NULL;
    }
    /* else: already taken off by a waitq_dequeue that lost the CAS. */
    sg->next = sg->prev = NULL;
}

/* ---- make / free ---------------------------------------------------------- */

GORT_API gort_chan *gort_chan_make(size_t elemsize, size_t cap)
{
    if (cap != 0 && elemsize > (SIZE_MAX / 2 - HCHAN_SIZE) / cap)
        throw("makechan: size out of range");
    /* Uncollectable: values in the buffer are roots for the collector. */
    struct hchan *c = gort_malloc_uncollectable(HCHAN_SIZE + cap * elemsize);
    if (c == NULL)
        throw("makechan: out of memory");
    memset(c, 0, sizeof *c);
    c->buf = (char *)c + HCHAN_SIZE;
    c->elemsize = elemsize;
    c->dataqsiz = cap;
    return c;
}

GORT_API void gort_chan_free(gort_chan *c)
{
    if (c == NULL)
        return;
    void (*fn)(struct hchan *, void *) = c->onfree;
    if (fn != NULL) {
        c->onfree = NULL;
        fn(c, c->onfreearg);
    }
    for (;;) {
        spin_lock(&c->lock);
        bool busy = c->recvq.first != NULL || c->sendq.first != NULL;
        uint32_t selects = c->selects;
        spin_unlock(&c->lock);
        if (busy)
            throw("gort_chan_free: channel in use (goroutines wait on it)");
        if (selects == 0)
            break;
        /* A select woken by close still has to lock c once more to clean
         * up its other cases: let it. */
        if (ingoroutine())
            goyield();
        else
            sched_yield();
    }
    gort_free(c);
}

/* gopark's unlock: c's lock is dropped only once the parked goroutine is off
 * its stack, so a partner that takes the sudog cannot ready it before. */
static bool chanparkcommit(struct g *gp, void *lock)
{
    (void)gp;
    spin_unlock(lock);
    return true;
}

/* Parks the calling goroutine on queue q of c (whose lock is held, and
 * released by the park) until a partner completes the operation through
 * elem, or close wakes it.  Returns whether a partner did (false: closed). */
static bool chan_park(struct hchan *c, struct waitq *q, void *elem, uint8_t reason)
{
    gpick next = gopark_pick();
    struct g *gp = getg();
    struct sudog *mysg = acquireSudogFor(gp);   /* zeroed */
    mysg->g = gp;
    mysg->elem = elem;
    mysg->c = c;
    gp->waiting = mysg;
    gp->param = NULL;
    waitq_enqueue(q, mysg);
    gopark_picked(next, chanparkcommit, &c->lock, reason);
    if (gp->param != mysg)
        throw("chan: bad wakeup");
    gp->waiting = NULL;
    gp->param = NULL;
    bool success = mysg->success;
    releaseSudogFor(gp, mysg);
    return success;
}

/* ---- send ----------------------------------------------------------------- */

/* The body of every send, inline so that gort_chan_send's copy is compiled
 * with block known (and its checks folded away). */
static inline __attribute__((always_inline)) bool
chansend_inline(struct hchan *c, const void *elem, bool block)
{
    if (c == NULL) {
        if (!block)
            return false;
        gopark(NULL, NULL, waitReasonChanSendNilChan);
        throw("unreachable");
    }

    /* Fast path: an open channel that is full cannot take a value.  closed
     * is read first: if it was open then and full when looked at, there was
     * a moment at which both held, so failing is a valid outcome. */
    if (!block && ld_closed(c) == 0 && chan_full(c))
        return false;

    spin_lock(&c->lock);
    if (c->closed != 0) {
        spin_unlock(&c->lock);
        throw("send on closed channel");
    }

    struct sudog *sg = waitq_dequeue(&c->recvq);
    if (sg != NULL) {
        struct g *gp = chan_send_direct(c, sg, elem);
        spin_unlock(&c->lock);
        goready(gp);
        return true;
    }

    if (c->qcount < c->dataqsiz) {
        chan_buf_put(c, elem);
        spin_unlock(&c->lock);
        return true;
    }

    if (!block) {
        spin_unlock(&c->lock);
        return false;
    }

    /* Park until a receiver takes the value straight from elem. */
    if (!chan_park(c, &c->sendq, (void *)elem, waitReasonChanSend))
        throw("send on closed channel");   /* (c may already be freed) */
    return true;
}

/* ---- receive -------------------------------------------------------------- */

static inline __attribute__((always_inline)) bool
chanrecv_inline(struct hchan *c, void *elem, bool block, bool *received)
{
    bool ok_unused;
    if (received == NULL)
        received = &ok_unused;
    *received = false;
    if (c == NULL) {
        if (!block)
            return false;
        gopark(NULL, NULL, waitReasonChanReceiveNilChan);
        throw("unreachable");
    }

    /* Fast path: nothing to receive.  If the channel is also open, fail.
     * If it is closed, look again: closed never reverts and nothing can be
     * sent after close, so still empty means drained. */
    if (!block && chan_empty(c)) {
        if (ld_closed(c) == 0)
            return false;
        if (chan_empty(c)) {
            chan_zero(c, elem);
            return true;
        }
    }

    spin_lock(&c->lock);
    if (c->closed != 0) {
        if (c->qcount == 0) {
            chan_zero(c, elem);    /* before unlocking: c may be freed after */
            spin_unlock(&c->lock);
            return true;
        }
        /* Closed but buffered values remain: drain them below. */
    } else {
        struct sudog *sg = waitq_dequeue(&c->sendq);
        if (sg != NULL) {
            struct g *gp = chan_recv_direct(c, sg, elem);
            spin_unlock(&c->lock);
            goready(gp);
            *received = true;
            return true;
        }
    }

    if (c->qcount > 0) {
        chan_buf_take(c, elem);
        spin_unlock(&c->lock);
        *received = true;
        return true;
    }

    if (!block) {
        spin_unlock(&c->lock);
        return false;
    }

    /* Park until a sender (or close) fills elem. */
    *received = chan_park(c, &c->recvq, elem, waitReasonChanReceive);
    return true;
}

bool chansend(struct hchan *c, const void *elem, bool block)
{
    return chansend_inline(c, elem, block);
}

bool chanrecv(struct hchan *c, void *elem, bool block, bool *received)
{
    return chanrecv_inline(c, elem, block, received);
}

/* ---- close ---------------------------------------------------------------- */

void closechan(struct hchan *c)
{
    if (c == NULL)
        throw("close of nil channel");
    spin_lock(&c->lock);
    if (c->closed != 0) {
        spin_unlock(&c->lock);
        throw("close of closed channel");
    }
    __atomic_store_n(&c->closed, 1, __ATOMIC_RELEASE);

    /* Collect every waiter, then ready them after the lock is dropped. */
    struct g *glist = NULL, **tail = &glist;
    struct sudog *sg;
    while ((sg = waitq_dequeue(&c->recvq)) != NULL) {
        chan_zero(c, sg->elem);
        sg->elem = NULL;
        sg->success = false;
        sg->g->param = sg;
        *tail = sg->g;
        tail = &sg->g->schedlink;
    }
    while ((sg = waitq_dequeue(&c->sendq)) != NULL) {
        sg->elem = NULL;
        sg->success = false;
        sg->g->param = sg;
        *tail = sg->g;
        tail = &sg->g->schedlink;
    }
    *tail = NULL;
    spin_unlock(&c->lock);

    while (glist != NULL) {
        struct g *gp = glist;
        glist = gp->schedlink;
        gp->schedlink = NULL;
        goready(gp);
    }
}

/* ---- The public API ------------------------------------------------------- */

GORT_API void gort_chan_send(gort_chan *c, const void *elem)
{
    requireg("gort_chan_send");
    preemptcheck();
    chansend_inline(c, elem, true);
}

GORT_API bool gort_chan_recv(gort_chan *c, void *elem)
{
    requireg("gort_chan_recv");
    preemptcheck();
    bool ok;
    chanrecv_inline(c, elem, true, &ok);
    return ok;
}

GORT_API bool gort_chan_trysend(gort_chan *c, const void *elem)
{
    /* A polling loop must still let sysmon's preemption in. */
    preemptcheck();
    return chansend(c, elem, false);
}

GORT_API bool gort_chan_tryrecv(gort_chan *c, void *elem, bool *ok)
{
    preemptcheck();
    return chanrecv(c, elem, false, ok);
}

GORT_API void gort_chan_close(gort_chan *c)
{
    closechan(c);
}

GORT_API size_t gort_chan_len(gort_chan *c)
{
    return c == NULL ? 0 : ld_qcount(c);
}

GORT_API size_t gort_chan_cap(gort_chan *c)
{
    return c == NULL ? 0 : c->dataqsiz;
}
