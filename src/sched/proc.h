/*
 * proc.h — what proc.c shares with sysmon.c: the scheduler's internals
 * that the monitor thread reads and the calls it makes.
 */
#ifndef GORT_PROC_H
#define GORT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sched/runtime2.h"

extern int32_t mcount;            /* Ms made, under sched.lock */
extern rtmutex allglock;          /* guards allgs */
extern struct g **allgs;          /* every G ever made */
extern size_t allglen;

bool runqempty(struct p *pp);
uint32_t runqsize(struct p *pp);
uint32_t readgstatus(struct g *gp);
/* A P whose M is gone finds a new M if there is work for it; else it goes
 * idle. */
void handoffp(struct p *pp);
/* With sched.lock held: reports a deadlock and exits if no M runs, no
 * goroutine can run and nothing (timer, network) can wake one. */
void checkdead(void);

/* Whether gort_main has started the scheduler. */
bool sched_running(void);
/* newproc for the runtime's own goroutines (the finalizer goroutine): not
 * counted by gort_numgoroutine. */
void newproc_system(void (*fn)(void *), void *arg);

/* sysmon.c */
extern uint32_t sysmonDelayUs;    /* atomic: sysmon's current sleep, in µs */
#define sysmonTickNS (20 * 1000LL)
/* The monitor thread's body (an M without a P). */
void sysmon(void);
/* Wakes sysmon from a long sleep. */
void sysmonwake(void);

#endif
