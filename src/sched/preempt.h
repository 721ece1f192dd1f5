/*
 * preempt.h — asynchronous preemption by signal (signal.c).
 */
#ifndef GORT_PREEMPT_H
#define GORT_PREEMPT_H

#include <stdbool.h>

struct m;

/* Installs the SIGURG handler if gort can tell its code from the program's. */
void preempt_signals_init(void);
/* Interrupts mp so its goroutine yields now (if asyncpreempt is on). */
void preemptM(struct m *mp);
extern bool asyncPreemptOn;

#endif
