/*
 * lock.c — the contended halves of rtmutex and spinlock (see lock.h).
 */
#include "os/lock.h"
#include "os/os.h"

#include <sched.h>

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void gort_lock_slow(rtmutex *m)
{
    /* Spin a little first: the allocator's critical sections are short. */
    for (int i = 0; i < 100; i++) {
        uint32_t expected = 0;
        if (__atomic_load_n(&m->state, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&m->state, &expected, 1, 0,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        cpu_relax();
    }
    /* Announce a sleeper (state 2) and sleep until the holder wakes us. */
    while (__atomic_exchange_n(&m->state, 2, __ATOMIC_ACQUIRE) != 0)
        os_futex_wait(&m->state, 2, -1);
}

void gort_unlock_slow(rtmutex *m)
{
    os_futex_wake(&m->state, 1);
}

/* Spins this many rounds before yielding the thread: a holder that is
 * running finishes its section well within them. */
#define SPIN_ROUNDS 200

void spin_lock_slow(spinlock *l)
{
    for (int round = 0;; round++) {
        if (__atomic_load_n(&l->held, __ATOMIC_RELAXED) == 0 &&
            __atomic_exchange_n(&l->held, 1, __ATOMIC_ACQUIRE) == 0)
            return;
        if (round < SPIN_ROUNDS)
            cpu_relax();
        else
            sched_yield();   /* the holder is likely off its CPU */
    }
}
