/*
 * select.c — Go's select over channel cases (select.go's selectgo).
 *
 * Three passes, all under the locks of every channel involved:
 *
 *   pass 1  visit the cases in a random order (the poll order, so that no
 *           case is favoured) and run the first that can proceed now.
 *   pass 2  none can: queue one sudog (isSelect) per case on its channel
 *           and park.  The sudogs are chained on g->waiting in lock order.
 *   pass 3  woken by the waker that won g->selectDone: relock, learn the
 *           winning sudog from g->param, and unlink all the other sudogs.
 *
 * The channels are locked in address order (the lock order, heapsorted so
 * that the stack use stays bounded), a channel named by several cases only
 * once, so two selects over the same channels cannot deadlock.  NULL
 * channels take part in neither order: such a case is never ready.
 */
#include "gort.h"
#include "runtime/print.h"
#include "sched/chan.h"
#include "sched/runtime2.h"

/* Order arrays for this many cases live on the stack; more are malloc'd. */
#define SELECT_STACK_CASES 16

static inline uintptr_t caseaddr(gort_select_case *cases, int i)
{
    return (uintptr_t)cases[i].c;
}

/* Sorts order[0..n) by channel address (heapsort: no recursion, no
 * allocation, O(n log n)). */
static void sortlockorder(gort_select_case *cases, int *order, int n)
{
    /* Build a max-heap by sifting each new element up. */
    for (int i = 1; i < n; i++) {
        int j = i, v = order[i];
        uintptr_t key = caseaddr(cases, v);
        while (j > 0) {
            int parent = (j - 1) / 2;
            if (caseaddr(cases, order[parent]) >= key)
                break;
            order[j] = order[parent];
            j = parent;
        }
        order[j] = v;
    }
    /* Repeatedly move the maximum to the end and sift the root down. */
    for (int end = n - 1; end > 0; end--) {
        int v = order[end];
        uintptr_t key = caseaddr(cases, v);
        order[end] = order[0];
        int j = 0;
        for (;;) {
            int k = 2 * j + 1;
            if (k >= end)
                break;
            if (k + 1 < end && caseaddr(cases, order[k + 1]) > caseaddr(cases, order[k]))
                k++;
            if (caseaddr(cases, order[k]) <= key)
                break;
            order[j] = order[k];
            j = k;
        }
        order[j] = v;
    }
}

static void sellock(gort_select_case *cases, const int *lockorder, int n)
{
    struct hchan *last = NULL;
    for (int i = 0; i < n; i++) {
        struct hchan *c = cases[lockorder[i]].c;
        if (c != last) {
            last = c;
            spin_lock(&c->lock);
        }
    }
}

static void selunlock(gort_select_case *cases, const int *lockorder, int n)
{
    /* Duplicates are adjacent in lock order: unlock each channel at its
     * last occurrence. */
    for (int i = 0; i < n; i++) {
        struct hchan *c = cases[lockorder[i]].c;
        if (i + 1 < n && cases[lockorder[i + 1]].c == c)
            continue;
        spin_unlock(&c->lock);
    }
}

/* gopark's unlock for pass 2: drops every lock, walking g->waiting (which
 * is in lock order).  Once a lock is dropped the goroutine may be woken and
 * start pass 3 on another thread, but pass 3 must take every lock first, so
 * the list stays intact until the last lock is released; nothing is read
 * after that. */
static bool selparkcommit(struct g *gp, void *unused)
{
    struct hchan *lastc = NULL;
    for (struct sudog *sg = gp->waiting; sg != NULL; sg = sg->waitlink) {
        if (sg->c != lastc && lastc != NULL)
            spin_unlock(&lastc->lock);
        lastc = sg->c;
    }
    if (lastc != NULL)
        spin_unlock(&lastc->lock);
    return true;
}

static int selectgo(gort_select_case *cases, int n, bool block,
                    int *pollorder, int *lockorder)
{
    /* A random permutation of the live cases (inside-out Fisher-Yates). */
    int norder = 0;
    for (int i = 0; i < n; i++) {
        if (cases[i].dir != GORT_SEND && cases[i].dir != GORT_RECV)
            throw("gort_select: case direction is neither GORT_SEND nor GORT_RECV");
        if (cases[i].c == NULL)
            continue;
        int j = (int)fastrandn((uint32_t)norder + 1);
        pollorder[norder] = pollorder[j];
        pollorder[j] = i;
        norder++;
    }
    for (int i = 0; i < norder; i++)
        lockorder[i] = pollorder[i];
    sortlockorder(cases, lockorder, norder);

    sellock(cases, lockorder, norder);

    /* Pass 1: the first ready case in poll order. */
    for (int i = 0; i < norder; i++) {
        int casi = pollorder[i];
        gort_select_case *cas = &cases[casi];
        struct hchan *c = cas->c;
        struct sudog *sg;
        if (cas->dir == GORT_RECV) {
            if ((sg = waitq_dequeue(&c->sendq)) != NULL) {
                struct g *gp = chan_recv_direct(c, sg, cas->elem);
                selunlock(cases, lockorder, norder);
                goready(gp);
                cas->ok = true;
                return casi;
            }
            if (c->qcount > 0) {
                chan_buf_take(c, cas->elem);
                selunlock(cases, lockorder, norder);
                cas->ok = true;
                return casi;
            }
            if (c->closed != 0) {
                chan_zero(c, cas->elem);   /* before unlocking: c may be freed after */
                selunlock(cases, lockorder, norder);
                cas->ok = false;
                return casi;
            }
        } else {
            if (c->closed != 0) {
                selunlock(cases, lockorder, norder);
                throw("send on closed channel");
            }
            if ((sg = waitq_dequeue(&c->recvq)) != NULL) {
                struct g *gp = chan_send_direct(c, sg, cas->elem);
                selunlock(cases, lockorder, norder);
                goready(gp);
                return casi;
            }
            if (c->qcount < c->dataqsiz) {
                chan_buf_put(c, cas->elem);
                selunlock(cases, lockorder, norder);
                return casi;
            }
        }
    }

    if (!block) {
        selunlock(cases, lockorder, norder);
        return -1;
    }

    /* Pass 2: wait on every channel at once. */
    struct g *gp = getg();
    if (gp->waiting != NULL)
        throw("gort_select: g->waiting != NULL");
    struct sudog **nextp = &gp->waiting;
    for (int i = 0; i < norder; i++) {
        int casi = lockorder[i];
        gort_select_case *cas = &cases[casi];
        struct sudog *sg = acquireSudog();
        sg->g = gp;
        sg->isSelect = true;
        sg->success = false;
        sg->elem = cas->elem;
        sg->c = cas->c;
        sg->waitlink = NULL;
        *nextp = sg;
        nextp = &sg->waitlink;
        waitq_enqueue(cas->dir == GORT_SEND ? &cas->c->sendq : &cas->c->recvq, sg);
        cas->c->selects++;
    }
    gp->param = NULL;
    gopark(selparkcommit, NULL, waitReasonSelect);

    /* Pass 3: find the winner, unlink the others. */
    sellock(cases, lockorder, norder);
    __atomic_store_n(&gp->selectDone, 0, __ATOMIC_RELAXED);
    struct sudog *won = gp->param;
    gp->param = NULL;
    struct sudog *sglist = gp->waiting;
    gp->waiting = NULL;
    int casi = -1;
    bool success = false;
    for (int i = 0; i < norder; i++) {
        int k = lockorder[i];
        gort_select_case *cas = &cases[k];
        if (sglist == won) {
            casi = k;
            success = sglist->success;
        } else {
            waitq_remove(cas->dir == GORT_SEND ? &cas->c->sendq : &cas->c->recvq, sglist);
        }
        cas->c->selects--;
        struct sudog *next = sglist->waitlink;
        sglist->waitlink = NULL;
        sglist->elem = NULL;
        sglist->c = NULL;
        releaseSudog(sglist);
        sglist = next;
    }
    if (casi < 0)
        throw("gort_select: bad wakeup");
    selunlock(cases, lockorder, norder);

    if (cases[casi].dir == GORT_SEND) {
        if (!success)
            throw("send on closed channel");
    } else {
        /* Woken by a sender (value already in elem) or by close (elem was
         * zeroed by closechan). */
        cases[casi].ok = success;
    }
    return casi;
}

GORT_API int gort_select(gort_select_case *cases, int n, bool block)
{
    if (n < 0)
        throw("gort_select: negative number of cases");
    if (block) {
        requireg("gort_select");
        preemptcheck();
        if (n == 0) {
            gopark(NULL, NULL, waitReasonSelectNoCases);
            throw("unreachable");
        }
    } else {
        preemptcheck();
        if (n == 0)
            return -1;
    }

    int stackorder[2 * SELECT_STACK_CASES];
    int *order = stackorder;
    if (n > SELECT_STACK_CASES) {
        if ((size_t)n > SIZE_MAX / (2 * sizeof(int)))
            throw("gort_select: too many cases");
        order = gort_malloc(2 * (size_t)n * sizeof(int));
        if (order == NULL)
            throw("gort_select: out of memory");
    }
    int r = selectgo(cases, n, block, order, order + n);
    if (order != stackorder)
        gort_free(order);
    return r;
}
