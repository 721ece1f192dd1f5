/*
 * netpoll.c — goroutine-aware I/O on epoll (Go's runtime/netpoll.go and
 * netpoll_epoll.go, with the fd-side loops of internal/poll).
 *
 * Every fd gort_read & co. see gets a pollDesc, in a table indexed by fd
 * (chunks mapped from the OS on demand, never freed, so a pollDesc address
 * stays valid and the poller can use it without a lock).  On first use the
 * fd is registered with one epoll instance, edge-triggered for reading and
 * writing at once, and made non-blocking.  A call tries its system call
 * first; on EAGAIN the goroutine parks and the scheduler's netpoll(), which
 * it calls when idle (blocking until the next timer) and now and then when
 * busy, makes it runnable again when epoll reports the edge.
 *
 * Each direction has one word, rg or wg, with Go's states:
 *   0         nothing
 *   pdReady   an edge arrived that no one has consumed yet
 *   pdWait    a goroutine is about to park
 *   a G       that goroutine is parked
 * A waiter turns pdReady into 0 (and retries the syscall at once) or 0 into
 * pdWait, then parks; gopark's commit step turns pdWait into the G, failing
 * if an edge, a deadline or a close got there first.  The waker swaps in
 * pdReady (I/O) or 0 (deadline, close) and readies any G it took out.  So
 * no edge is lost, and no lock is held between the poller and the waiters.
 * One goroutine at a time waits per direction: callers are serialised per
 * direction with a gort_mutex, as Go's fdMutex does.
 *
 * Deadlines are absolute nanotimes with a runtime timer per direction; the
 * timer's seq, compared with the pollDesc's under its lock, discards a
 * timer armed for an earlier deadline.  An expired deadline is kept as -1
 * and fails every call with ETIMEDOUT until a new deadline is set.  fdseq
 * counts the lives of an fd number (bumped by gort_close and by accept),
 * so that neither an old epoll event nor an old waiter acts on a new fd.
 *
 * netpollBreak writes an eventfd registered level-triggered, with a flag
 * so that only one wake-up is pending at a time.  Timed waits use
 * epoll_pwait2 for nanosecond timeouts (epoll_wait would round a 50 µs
 * sleep up to a millisecond), falling back to epoll_wait where the kernel
 * lacks it.
 *
 * fds that epoll refuses (EPERM: regular files, directories) are served by
 * plain blocking calls between gort_syscall_enter and gort_syscall_exit.
 */
#define _GNU_SOURCE
#include "gc/mgc.h"
#include "sched/netpoll.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gort.h"
#include "os/os.h"
#include "runtime/print.h"
#include "sched/runtime2.h"
#include "sched/time.h"

enum {
    pdNil = 0,
    pdReady = 1,
    pdWait = 2,
};

/* pollDesc.state */
enum {
    pdUnregistered = 0,
    pdPollable = 1,              /* in epoll, O_NONBLOCK */
    pdBlocking = 2,              /* epoll refused it: blocking calls */
};

struct pollDesc {
    rtmutex lock;                /* deadlines, registration, close */
    uint32_t state;              /* atomic */
    uint32_t fdseq;              /* atomic: the fd number's current life */
    uint32_t closing;            /* atomic: gort_close ran in this life */
    uintptr_t rg, wg;            /* atomic: pdNil, pdReady, pdWait or a G */
    int64_t rd, wd;              /* atomic: deadlines, 0 none, -1 expired */
    uintptr_t rseq, wseq;        /* current deadline timers' seq */
    struct timer rt, wt;         /* deadline timers */
    gort_mutex rmu, wmu;         /* one reader / one writer in the runtime */
};

#define PD_CHUNK_SHIFT 10
#define PD_CHUNK (1 << PD_CHUNK_SHIFT)
#define PD_MAXCHUNKS 4096
#define PD_MAXFD (PD_CHUNK * PD_MAXCHUNKS)

static struct pollDesc *pdtab[PD_MAXCHUNKS];
static rtmutex pdtabLock;

static int epfd = -1;
static int breakfd = -1;
static uint32_t netpollInited;   /* atomic */
static rtmutex netpollInitLock;
static uint32_t netpollWakeSig;  /* atomic: a break is pending */
static uint32_t noPwait2;        /* atomic: epoll_pwait2 unavailable */

uint32_t netpollWaiters;

#define BREAK_TAG UINT64_MAX

/* ---- setup ---------------------------------------------------------------- */

void netpollGenericInit(void)
{
    if (__atomic_load_n(&netpollInited, __ATOMIC_ACQUIRE))
        return;
    gort_lock(&netpollInitLock);
    if (!netpollInited) {
        epfd = epoll_create1(EPOLL_CLOEXEC);
        if (epfd < 0)
            throw("netpollinit: epoll_create1 failed");
        breakfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (breakfd < 0)
            throw("netpollinit: eventfd failed");
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = BREAK_TAG};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, breakfd, &ev) != 0)
            throw("netpollinit: cannot register the wake-up eventfd");
        __atomic_store_n(&netpollInited, 1, __ATOMIC_RELEASE);
    }
    gort_unlock(&netpollInitLock);
}

bool netpollinited(void)
{
    return __atomic_load_n(&netpollInited, __ATOMIC_ACQUIRE) != 0;
}

static struct pollDesc *pdLookup(int fd, bool create)
{
    if (fd < 0 || fd >= PD_MAXFD)
        return NULL;
    struct pollDesc **slot = &pdtab[fd >> PD_CHUNK_SHIFT];
    struct pollDesc *chunk = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (chunk == NULL) {
        if (!create)
            return NULL;
        gort_lock(&pdtabLock);
        chunk = *slot;
        if (chunk == NULL) {
            chunk = os_alloc(PD_CHUNK * sizeof *chunk);
            if (chunk == NULL)
                throw("out of memory allocating poll descriptors");
            __atomic_store_n(slot, chunk, __ATOMIC_RELEASE);
        }
        gort_unlock(&pdtabLock);
    }
    return &chunk[fd & (PD_CHUNK - 1)];
}

static uint64_t pdTag(int fd, uint32_t seq)
{
    return (uint64_t)seq << 32 | (uint32_t)fd;
}

/* The fd's pollDesc, registered with epoll if it was not yet.  NULL with
 * errno set if fd is not an open fd. */
static struct pollDesc *pdOpen(int fd)
{
    struct pollDesc *pd = pdLookup(fd, true);
    if (pd == NULL) {
        errno = EBADF;
        return NULL;
    }
    if (__atomic_load_n(&pd->state, __ATOMIC_ACQUIRE) != pdUnregistered)
        return pd;
    netpollGenericInit();
    int err = 0;
    gort_lock(&pd->lock);
    if (pd->state == pdUnregistered) {
        /* A new life: nothing from a previous one applies. */
        __atomic_store_n(&pd->closing, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&pd->rd, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&pd->wd, 0, __ATOMIC_RELAXED);
        pd->rseq++;
        pd->wseq++;
        struct epoll_event ev = {
            .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
            .data.u64 = pdTag(fd, pd->fdseq),
        };
        uint32_t state = pdPollable;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0 &&
            !(errno == EEXIST && epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == 0)) {
            if (errno == EPERM)
                state = pdBlocking;
            else
                err = errno;
        }
        if (state == pdPollable && err == 0) {
            int fl = fcntl(fd, F_GETFL);
            if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
                err = errno;
                epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
            }
        }
        if (err == 0)
            __atomic_store_n(&pd->state, state, __ATOMIC_RELEASE);
    }
    gort_unlock(&pd->lock);
    if (err != 0) {
        errno = err;
        return NULL;
    }
    return pd;
}

/* ---- the state machine ---------------------------------------------------- */

static uintptr_t *pdSlot(struct pollDesc *pd, int mode)
{
    return mode == 'r' ? &pd->rg : &pd->wg;
}

/* 0, or why a wait in mode must end: EBADF once the fd was closed (in
 * this life or since), ETIMEDOUT once its deadline passed. */
static int netpollcheckerr(struct pollDesc *pd, int mode, uint32_t seq)
{
    if (__atomic_load_n(&pd->closing, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&pd->fdseq, __ATOMIC_SEQ_CST) != seq)
        return EBADF;
    int64_t d = __atomic_load_n(mode == 'r' ? &pd->rd : &pd->wd, __ATOMIC_SEQ_CST);
    return d < 0 ? ETIMEDOUT : 0;
}

/* gopark's commit: publish the G unless a waker already came. */
static bool netpollblockcommit(struct g *gp, void *slot)
{
    uintptr_t expect = pdWait;
    __atomic_add_fetch(&netpollWaiters, 1, __ATOMIC_SEQ_CST);
    if (__atomic_compare_exchange_n((uintptr_t *)slot, &expect, (uintptr_t)gp, false,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return true;
    __atomic_sub_fetch(&netpollWaiters, 1, __ATOMIC_SEQ_CST);
    return false;
}

/* Waits for an edge in mode; true if I/O is ready, false if woken for
 * another reason (deadline, close) which netpollcheckerr then tells. */
static bool netpollblock(struct pollDesc *pd, int mode, uint32_t seq)
{
    uintptr_t *slot = pdSlot(pd, mode);
    for (;;) {
        uintptr_t old = pdReady;
        if (__atomic_compare_exchange_n(slot, &old, pdNil, false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return true;
        old = pdNil;
        if (__atomic_compare_exchange_n(slot, &old, pdWait, false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            break;
        if (old != pdReady)
            throw("netpollblock: double wait");
    }
    /* A close or deadline that came before pdWait was published found
     * nothing to wake: look for it now. */
    if (netpollcheckerr(pd, mode, seq) == 0)
        gopark(netpollblockcommit, slot, waitReasonIOWait);
    uintptr_t old = __atomic_exchange_n(slot, pdNil, __ATOMIC_SEQ_CST);
    if (old > pdWait)
        throw("netpollblock: corrupted state");
    return old == pdReady;
}

/* Wakes mode's waiter: with ioready the edge is recorded for it (or for the
 * next waiter); without, only a parked G is taken out.  Returns the G to
 * ready, if any. */
static struct g *netpollunblock(struct pollDesc *pd, int mode, bool ioready)
{
    uintptr_t *slot = pdSlot(pd, mode);
    uintptr_t old = __atomic_load_n(slot, __ATOMIC_SEQ_CST);
    for (;;) {
        if (old == pdReady)
            return NULL;
        if (old == pdNil && !ioready)
            return NULL;
        uintptr_t nv = ioready ? pdReady : pdNil;
        if (__atomic_compare_exchange_n(slot, &old, nv, false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            break;
    }
    if (old == pdNil || old == pdWait)
        return NULL;
    __atomic_sub_fetch(&netpollWaiters, 1, __ATOMIC_SEQ_CST);
    return (struct g *)old;
}

/* 0 once mode is ready (retry the call), else the errno to fail with. */
static int pollWait(struct pollDesc *pd, int mode, uint32_t seq)
{
    int err = netpollcheckerr(pd, mode, seq);
    if (err != 0)
        return err;
    while (!netpollblock(pd, mode, seq)) {
        err = netpollcheckerr(pd, mode, seq);
        if (err != 0)
            return err;
    }
    return 0;
}

/* ---- the scheduler's side ------------------------------------------------- */

static int epollWait(struct epoll_event *ev, int n, int64_t delay)
{
    if (delay < 0)
        return epoll_wait(epfd, ev, n, -1);
    if (delay == 0)
        return epoll_wait(epfd, ev, n, 0);
    if (!__atomic_load_n(&noPwait2, __ATOMIC_RELAXED)) {
#ifdef SYS_epoll_pwait2
        struct timespec ts = {.tv_sec = delay / 1000000000,
                              .tv_nsec = delay % 1000000000};
        long r = syscall(SYS_epoll_pwait2, epfd, ev, n, &ts, NULL, 0);
        if (r >= 0 || (errno != ENOSYS && errno != EPERM))
            return (int)r;
#endif
        __atomic_store_n(&noPwait2, 1, __ATOMIC_RELAXED);
    }
    int64_t ms = delay / 1000000 + (delay % 1000000 != 0);
    return epoll_wait(epfd, ev, n, ms > INT_MAX ? INT_MAX : (int)ms);
}

struct g *netpoll(int64_t delay)
{
    if (!netpollinited())
        return NULL;
    struct epoll_event events[128];
    int n;
    for (;;) {
        n = epollWait(events, 128, delay);
        if (n >= 0)
            break;
        if (errno != EINTR)
            throw("netpoll: epoll_wait failed");
        if (delay > 0)
            return NULL;   /* the caller recomputes how long to wait */
    }
    struct g *list = NULL;
    for (int i = 0; i < n; i++) {
        uint64_t tag = events[i].data.u64;
        uint32_t ev = events[i].events;
        if (tag == BREAK_TAG) {
            /* A non-blocking poll leaves the break for the blocking one. */
            if (delay != 0) {
                uint64_t v;
                ssize_t r = read(breakfd, &v, sizeof v);
                (void)r;
                __atomic_store_n(&netpollWakeSig, 0, __ATOMIC_SEQ_CST);
            }
            continue;
        }
        struct pollDesc *pd = pdLookup((int)(uint32_t)tag, false);
        if (pd == NULL || __atomic_load_n(&pd->fdseq, __ATOMIC_ACQUIRE) != (uint32_t)(tag >> 32))
            continue;      /* an event of an fd's earlier life */
        struct g *gp;
        if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
            (gp = netpollunblock(pd, 'r', true)) != NULL) {
            gp->schedlink = list;
            list = gp;
        }
        if ((ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) &&
            (gp = netpollunblock(pd, 'w', true)) != NULL) {
            gp->schedlink = list;
            list = gp;
        }
    }
    return list;
}

void netpollBreak(void)
{
    if (!netpollinited())
        return;
    uint32_t expect = 0;
    if (!__atomic_compare_exchange_n(&netpollWakeSig, &expect, 1, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return;
    uint64_t one = 1;
    for (;;) {
        ssize_t r = write(breakfd, &one, sizeof one);
        if (r == (ssize_t)sizeof one || (r < 0 && errno == EAGAIN))
            return;    /* EAGAIN: the counter is full, so it is readable */
        if (r < 0 && errno == EINTR)
            continue;
        throw("netpollBreak: write to the eventfd failed");
    }
}

void wakeNetPoller(int64_t when)
{
    if (__atomic_load_n(&sched.lastpoll, __ATOMIC_SEQ_CST) == 0) {
        /* An M is blocked in netpoll: interrupt it if it would sleep past
         * the new timer. */
        int64_t until = __atomic_load_n(&sched.pollUntil, __ATOMIC_SEQ_CST);
        if (until == 0 || until > when)
            netpollBreak();
    } else {
        wakep();
    }
}

/* ---- deadlines ------------------------------------------------------------ */

static void netpollDeadline(struct pollDesc *pd, uintptr_t seq, int mode)
{
    struct g *gp = NULL;
    gort_lock(&pd->lock);
    uintptr_t cur = mode == 'r' ? pd->rseq : pd->wseq;
    int64_t *d = mode == 'r' ? &pd->rd : &pd->wd;
    if (seq == cur && __atomic_load_n(d, __ATOMIC_RELAXED) > 0) {
        __atomic_store_n(d, -1, __ATOMIC_SEQ_CST);
        gp = netpollunblock(pd, mode, false);
    }
    gort_unlock(&pd->lock);
    if (gp != NULL)
        goready(gp);
}

static void netpollReadDeadline(void *arg, uintptr_t seq, int64_t delta)
{
    (void)delta;
    netpollDeadline(arg, seq, 'r');
}

static void netpollWriteDeadline(void *arg, uintptr_t seq, int64_t delta)
{
    (void)delta;
    netpollDeadline(arg, seq, 'w');
}

/* Sets one direction's deadline (pd->lock held); returns a G to ready if
 * the deadline has already passed. */
static struct g *setDeadline(struct pollDesc *pd, int mode, int64_t d, int64_t now)
{
    int64_t *dp = mode == 'r' ? &pd->rd : &pd->wd;
    uintptr_t *seqp = mode == 'r' ? &pd->rseq : &pd->wseq;
    struct timer *t = mode == 'r' ? &pd->rt : &pd->wt;
    if (d > 0 && d <= now)
        d = -1;
    (*seqp)++;
    __atomic_store_n(dp, d < 0 ? -1 : d, __ATOMIC_SEQ_CST);
    if (d > 0)
        modtimer(t, d, 0, mode == 'r' ? netpollReadDeadline : netpollWriteDeadline,
                 pd, *seqp);
    else
        deltimer(t);
    return d < 0 ? netpollunblock(pd, mode, false) : NULL;
}

GORT_API int gort_fd_set_deadline(int fd, int64_t read_deadline, int64_t write_deadline)
{
    struct pollDesc *pd = pdOpen(fd);
    if (pd == NULL)
        return -1;
    if (__atomic_load_n(&pd->state, __ATOMIC_ACQUIRE) == pdBlocking) {
        errno = EPERM;     /* Go's ErrNoDeadline: the fd cannot be polled */
        return -1;
    }
    int64_t now = nanotime();
    gort_lock(&pd->lock);
    struct g *rg = setDeadline(pd, 'r', read_deadline, now);
    struct g *wg = setDeadline(pd, 'w', write_deadline, now);
    gort_unlock(&pd->lock);
    if (rg != NULL)
        goready(rg);
    if (wg != NULL)
        goready(wg);
    return 0;
}

/* ---- the calls ------------------------------------------------------------ */

/* Runs a blocking call on an fd that epoll refused, letting another M run
 * this P's goroutines meanwhile (the goroutine may come back on another
 * thread: errno is taken before). */
#define BLOCKING_CALL(type, expr)                                            \
    ({                                                                       \
        type r_;                                                             \
        int e_;                                                              \
        gort_syscall_enter();                                                \
        do {                                                                 \
            r_ = (expr);                                                     \
            e_ = r_ < 0 ? gort_errno() : 0;                                    \
        } while (e_ == EINTR);                                               \
        gort_syscall_exit();                                                 \
        if (r_ < 0)                                                          \
            errno_set(e_);                                                    \
        r_;                                                                  \
    })

GORT_API ssize_t gort_read(int fd, void *buf, size_t n)
{
    requireg("gort_read");
    struct pollDesc *pd = pdOpen(fd);
    if (pd == NULL)
        return -1;
    if (__atomic_load_n(&pd->state, __ATOMIC_ACQUIRE) == pdBlocking)
        return BLOCKING_CALL(ssize_t, read(fd, buf, n));
    gort_mutex_lock(&pd->rmu);
    uint32_t seq = __atomic_load_n(&pd->fdseq, __ATOMIC_ACQUIRE);
    ssize_t r = -1;
    int err = netpollcheckerr(pd, 'r', seq);
    while (err == 0) {
        r = read(fd, buf, n);
        if (r >= 0)
            break;
        err = gort_errno();
        if (err == EINTR)
            err = 0;
        else if (err == EAGAIN)
            err = pollWait(pd, 'r', seq);
    }
    gort_mutex_unlock(&pd->rmu);
    if (err != 0) {
        errno_set(err);
        return -1;
    }
    return r;
}

GORT_API ssize_t gort_write(int fd, const void *buf, size_t n)
{
    requireg("gort_write");
    struct pollDesc *pd = pdOpen(fd);
    if (pd == NULL)
        return -1;
    const char *p = buf;
    size_t done = 0;
    int err = 0;
    if (__atomic_load_n(&pd->state, __ATOMIC_ACQUIRE) == pdBlocking) {
        do {
            ssize_t r = BLOCKING_CALL(ssize_t, write(fd, p + done, n - done));
            if (r <= 0) {
                err = r == 0 ? EIO : gort_errno();
                break;
            }
            done += (size_t)r;
        } while (done < n);
    } else {
        gort_mutex_lock(&pd->wmu);
        uint32_t seq = __atomic_load_n(&pd->fdseq, __ATOMIC_ACQUIRE);
        err = netpollcheckerr(pd, 'w', seq);
        while (err == 0) {
            ssize_t r = write(fd, p + done, n - done);
            if (r > 0 || (r == 0 && n == 0)) {
                done += (size_t)r;
                if (done == n)
                    break;
                continue;
            }
            err = r == 0 ? EIO : gort_errno();   /* EIO: no progress, do not spin */
            if (err == EINTR)
                err = 0;
            else if (err == EAGAIN)
                err = pollWait(pd, 'w', seq);
        }
        gort_mutex_unlock(&pd->wmu);
    }
    if (err == 0)
        return (ssize_t)done;
    /* Like write(2): a partial count if some went out (errno tells why it
     * stopped), -1 if nothing did. */
    errno_set(err);
    return done > 0 ? (ssize_t)done : -1;
}

/* A number accept just handed out starts a new life: whatever gort knew of
 * an fd of the same number (closed with plain close) is forgotten. */
static void pdFresh(int fd)
{
    struct pollDesc *pd = pdLookup(fd, true);
    if (pd == NULL || __atomic_load_n(&pd->state, __ATOMIC_ACQUIRE) == pdUnregistered)
        return;
    gort_lock(&pd->lock);
    if (pd->state != pdUnregistered) {
        deltimer(&pd->rt);
        deltimer(&pd->wt);
        __atomic_add_fetch(&pd->fdseq, 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&pd->state, pdUnregistered, __ATOMIC_RELEASE);
    }
    gort_unlock(&pd->lock);
}

GORT_API int gort_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    requireg("gort_accept");
    struct pollDesc *pd = pdOpen(fd);
    if (pd == NULL)
        return -1;
    const int flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    if (__atomic_load_n(&pd->state, __ATOMIC_ACQUIRE) == pdBlocking)
        return BLOCKING_CALL(int, accept4(fd, addr, addrlen, flags));
    gort_mutex_lock(&pd->rmu);
    uint32_t seq = __atomic_load_n(&pd->fdseq, __ATOMIC_ACQUIRE);
    int nfd = -1;
    int err = netpollcheckerr(pd, 'r', seq);
    while (err == 0) {
        nfd = accept4(fd, addr, addrlen, flags);
        if (nfd >= 0)
            break;
        err = gort_errno();
        if (err == EINTR || err == ECONNABORTED)
            err = 0;
        else if (err == EAGAIN)
            err = pollWait(pd, 'r', seq);
    }
    gort_mutex_unlock(&pd->rmu);
    if (err != 0) {
        errno_set(err);
        return -1;
    }
    pdFresh(nfd);
    return nfd;
}

/* Waits for a non-blocking connect to finish: 0 or the errno. */
static int connectWait(struct pollDesc *pd, int fd, uint32_t seq)
{
    for (;;) {
        int err = pollWait(pd, 'w', seq);
        if (err != 0)
            return err;
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
            return gort_errno();
        if (soerr == EINPROGRESS || soerr == EALREADY || soerr == EINTR)
            continue;
        if (soerr != 0 && soerr != EISCONN)
            return soerr;
        /* Writability can be spurious (an unconnected socket reports
         * EPOLLOUT|EPOLLHUP when registered): connected only if it has a
         * peer. */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
            return 0;
    }
}

GORT_API int gort_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    requireg("gort_connect");
    struct pollDesc *pd = pdOpen(fd);
    if (pd == NULL)
        return -1;
    if (__atomic_load_n(&pd->state, __ATOMIC_ACQUIRE) == pdBlocking)
        return BLOCKING_CALL(int, connect(fd, addr, addrlen));
    gort_mutex_lock(&pd->wmu);
    uint32_t seq = __atomic_load_n(&pd->fdseq, __ATOMIC_ACQUIRE);
    int err = netpollcheckerr(pd, 'w', seq);
    if (err == 0 && connect(fd, addr, addrlen) != 0) {
        err = gort_errno();
        /* EINTR too means the connection goes on in the background. */
        if (err == EINPROGRESS || err == EALREADY || err == EINTR)
            err = connectWait(pd, fd, seq);
    }
    gort_mutex_unlock(&pd->wmu);
    if (err != 0) {
        errno_set(err);
        return -1;
    }
    return 0;
}

GORT_API int gort_close(int fd)
{
    struct pollDesc *pd = pdLookup(fd, false);
    if (pd != NULL && __atomic_load_n(&pd->state, __ATOMIC_ACQUIRE) != pdUnregistered) {
        struct g *rg = NULL, *wg = NULL;
        gort_lock(&pd->lock);
        if (pd->state == pdPollable)
            epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
        __atomic_store_n(&pd->closing, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&pd->fdseq, 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&pd->state, pdUnregistered, __ATOMIC_RELEASE);
        pd->rseq++;
        pd->wseq++;
        deltimer(&pd->rt);
        deltimer(&pd->wt);
        rg = netpollunblock(pd, 'r', false);
        wg = netpollunblock(pd, 'w', false);
        gort_unlock(&pd->lock);
        if (rg != NULL)
            goready(rg);
        if (wg != NULL)
            goready(wg);
    }
    return close(fd);
}

/* Not roots for the collector: these tables hold no collected pointers. */
__attribute__((constructor)) static void noscan_tables(void)
{
    gc_noscan_static(pdtab, sizeof pdtab);
}
