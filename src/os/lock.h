/*
 * lock.h — gort's two locks: rtmutex (a futex behind it) and spinlock.
 *
 * The allocator cannot use pthread_mutex under every caller (it must work
 * before libc is fully up and across fork), so it has its own: 0 unlocked,
 * 1 locked, 2 locked with sleepers.  Uncontended lock and unlock are one
 * atomic each; contended waiters spin briefly, then sleep on the futex.
 *
 * A spinlock never sleeps in the kernel, so its unlock is a plain release
 * store, not an atomic exchange: one locked instruction per critical
 * section instead of two (~6 ns here).  It is for sections of a few dozen
 * instructions that never block, which callers take far more often than
 * they contend on: a channel's lock, taken twice for every hand-off.  A
 * waiter spins, then yields its thread to the holder (which the kernel may
 * have descheduled) until the lock is free.
 */
#ifndef GORT_LOCK_H
#define GORT_LOCK_H

#include <stdint.h>

typedef struct rtmutex {
    uint32_t state;
} rtmutex;

#define RTMUTEX_INIT {0}

void gort_lock_slow(rtmutex *m);
void gort_unlock_slow(rtmutex *m);

static inline void gort_lock(rtmutex *m)
{
    uint32_t expected = 0;
    if (!__atomic_compare_exchange_n(&m->state, &expected, 1, 0,
                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        gort_lock_slow(m);
}

static inline void gort_unlock(rtmutex *m)
{
    if (__atomic_exchange_n(&m->state, 0, __ATOMIC_RELEASE) == 2)
        gort_unlock_slow(m);
}

typedef struct spinlock {
    uint32_t held;
} spinlock;

void spin_lock_slow(spinlock *l);

static inline void spin_lock(spinlock *l)
{
    if (__builtin_expect(__atomic_exchange_n(&l->held, 1, __ATOMIC_ACQUIRE) != 0, 0))
        spin_lock_slow(l);
}

static inline void spin_unlock(spinlock *l)
{
    __atomic_store_n(&l->held, 0, __ATOMIC_RELEASE);
}

/* After fork the child is single-threaded: a lock held by the parent's
 * other threads (or by the atfork prepare handler) is simply reset. */
static inline void gort_lock_reinit(rtmutex *m)
{
    m->state = 0;
}

#endif
