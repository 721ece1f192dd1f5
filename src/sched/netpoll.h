/*
 * netpoll.h — the netpoller's internal interface (Go's runtime/netpoll.go).
 *
 * The scheduler's hooks (netpoll, netpollBreak, netpollinited,
 * netpollWaiters) are declared in runtime2.h; these are for time.c.
 */
#ifndef GORT_NETPOLL_H
#define GORT_NETPOLL_H

#include <stdint.h>

/* Creates the epoll instance and its wake-up eventfd, once.  time.c calls
 * it before arming any timer, so that a scheduler with timers pending can
 * always sleep in netpoll(delay). */
void netpollGenericInit(void);

/* A timer now fires at `when`, earlier than anything its P had: make sure
 * some M notices.  An M blocked in netpoll past `when` is interrupted;
 * otherwise an idle P is woken (Go's wakeNetPoller).  Relies on the
 * scheduler keeping sched.lastpoll == 0 and sched.pollUntil set while an M
 * blocks in netpoll. */
void wakeNetPoller(int64_t when);

#endif
