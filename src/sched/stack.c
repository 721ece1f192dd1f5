/*
 * stack.c — goroutine stacks.
 *
 * C cannot move a stack, so unlike Go's growable stacks a goroutine's stack
 * has a fixed size (GODEBUG=stacksize, default 64 KiB).  What keeps a parked
 * goroutine small is that stacks are only address space until touched: a
 * goroutine that blocks a few frames deep has one resident 4 KiB page.
 *
 * Where stacks come from.  Stacks are carved out of 1 MiB chunks that are
 * spans of gort's own heap (mheap_allocManual, state mSpanManual, counted as
 * StackInuse), as Go carves small stacks out of stack spans: no mmap per
 * stack (~17 µs each here) and no mapping per stack, so a million live
 * goroutines need no vm.max_map_count change.  Each chunk keeps its free
 * stacks on its own list (manualFreeList, linked through each stack's top
 * word, a page the stack has already touched) and hands never-used stacks
 * out in order (freeindex), so a fresh chunk is never written to.  Chunks
 * with free stacks sit on the pool list under one lock; a chunk whose
 * stacks are all free goes back to mheap (one empty chunk is kept), where
 * the scavenger returns its pages to the OS.  In front of the pool, each P
 * caches up to STACK_CACHE stacks, refilled and flushed half at a time, so
 * the pool lock is taken once per eight goroutine starts at most.
 *
 * Overflow.  Below each stack sits a guard:
 *  - madvise (default when the kernel has it, Linux 6.13+): a
 *    MADV_GUARD_INSTALL page, which faults like PROT_NONE but creates no
 *    mapping.  The SIGSEGV handler (on a per-M signal stack) recognises a
 *    fault in the running goroutine's guard page and reports
 *    "stack overflow".
 *  - canary: the bottom cache line of the stack must stay zero; it is
 *    checked at every switch away from a goroutine.  Fresh pages read as
 *    zero, so the canary costs no resident memory until a stack is reused
 *    on recycled pages.  It catches overflows late (at the next switch) and
 *    only those that write the line.
 *  - mprotect (GODEBUG=stackguard=mprotect): a PROT_NONE page per stack, at
 *    the price of one kernel mapping each.
 */
#define _GNU_SOURCE 1
#include "sched/stack.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "mem/arena.h"
#include "mem/mheap.h"
#include "os/lock.h"
#include "os/os.h"
#include "runtime/godebug.h"
#include "runtime/print.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif

#define STACK_CHUNK ((uintptr_t)1 << 20)
#define GUARD_SIZE ((uintptr_t)4096)
#define CANARY_SIZE 64

/* TSan's instrumentation needs several times the stack of plain code. */
#if defined(__SANITIZE_THREAD__)
#define STACK_DEFAULT ((uintptr_t)512 << 10)
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STACK_DEFAULT ((uintptr_t)512 << 10)
#endif
#endif
#ifndef STACK_DEFAULT
#define STACK_DEFAULT ((uintptr_t)64 << 10)
#endif

uintptr_t stackSize = STACK_DEFAULT;
int stackGuard = stackGuardMadvise;

static struct {
    rtmutex lock;
    struct mspan *head;       /* chunks with a free stack */
    int nempty;               /* chunks on the list with every stack free */
} stackpool;

static uintptr_t chunkBytes, stacksPerChunk;

void stackinit(void)
{
    if (debug.stacksize) {
        uintptr_t n = (uintptr_t)debug.stacksize;
        if (n < 16384 || (n & (n - 1)) != 0)
            throw("GODEBUG=stacksize must be a power of two of at least 16384");
        stackSize = n;
    }
    chunkBytes = stackSize > STACK_CHUNK ? stackSize : STACK_CHUNK;
    stacksPerChunk = chunkBytes / stackSize;
    stackGuard = debug.stackguard;
    if (stackGuard == stackGuardMadvise) {
        /* Probe: older kernels answer EINVAL. */
        char *p = mmap(NULL, 2 * GUARD_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || madvise(p, GUARD_SIZE, MADV_GUARD_INSTALL) != 0)
            stackGuard = stackGuardCanary;
        if (p != MAP_FAILED)
            munmap(p, 2 * GUARD_SIZE);
    }
}

static void guard_install(uintptr_t base)
{
    int r = 0;
    if (stackGuard == stackGuardMadvise)
        r = madvise((void *)base, GUARD_SIZE, MADV_GUARD_INSTALL);
    else if (stackGuard == stackGuardMprotect)
        r = mprotect((void *)base, GUARD_SIZE, PROT_NONE);
    if (r != 0)
        throw(errno == ENOMEM ? "stack guard: out of kernel mappings (vm.max_map_count); "
                                "use GODEBUG=stackguard=madvise or canary"
                              : "stack guard: madvise/mprotect failed");
}

/* The usable stack of the stack at base. */
static struct stack stack_at(uintptr_t base)
{
    struct stack stk = {base, base + stackSize};
    if (stackGuard != stackGuardCanary)
        stk.lo += GUARD_SIZE;
    return stk;
}

static void **stack_link(uintptr_t base)
{
    return (void **)(base + stackSize - sizeof(void *));
}

static void pool_insert(struct mspan *s)
{
    s->prev = NULL;
    s->next = stackpool.head;
    if (s->next)
        s->next->prev = s;
    stackpool.head = s;
    s->inList = 1;
}

static void pool_remove(struct mspan *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        stackpool.head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->inList = 0;
}

static struct mspan *chunk_new(void)
{
    struct mspan *s = mheap_allocManual(chunkBytes >> _PageShift);
    if (!s)
        return NULL;
    s->manualFreeList = NULL;
    s->freeindex = 0;
    s->allocCount = 0;
    s->nelems = (uint16_t)stacksPerChunk;
    return s;
}

static void chunk_release(struct mspan *s)
{
    if (stackGuard == stackGuardMadvise)
        madvise((void *)s->startAddr, s->npages << _PageShift, MADV_GUARD_REMOVE);
    else if (stackGuard == stackGuardMprotect)
        mprotect((void *)s->startAddr, s->npages << _PageShift, PROT_READ | PROT_WRITE);
    mheap_free(s);
}

/* One stack's base from the pool (lock held), or 0 when out of memory. */
static uintptr_t pool_get(void)
{
    struct mspan *s = stackpool.head;
    if (!s) {
        s = chunk_new();
        if (!s)
            return 0;
        pool_insert(s);
        stackpool.nempty++;
    }
    if (s->allocCount == 0)
        stackpool.nempty--;
    uintptr_t base;
    if (s->manualFreeList) {
        base = (uintptr_t)s->manualFreeList;
        s->manualFreeList = *stack_link(base);
    } else {
        base = s->startAddr + s->freeindex * stackSize;
        s->freeindex++;
        guard_install(base);
        if (stackGuard == stackGuardCanary && s->needzero)
            memset((void *)base, 0, CANARY_SIZE);
    }
    s->allocCount++;
    if (!s->manualFreeList && s->freeindex == s->nelems)
        pool_remove(s);
    return base;
}

static void pool_put(uintptr_t base)
{
    struct mspan *s = span_of(base);
    if (!s || s->state != mSpanManual)
        throw_ptr("stackfree: not a stack", base);
    *stack_link(base) = s->manualFreeList;
    s->manualFreeList = (void *)base;
    if (!s->inList)
        pool_insert(s);
    if (--s->allocCount == 0) {
        if (stackpool.nempty >= 1) {
            pool_remove(s);
            chunk_release(s);
        } else {
            stackpool.nempty++;
        }
    }
}

struct stack stackalloc(struct p *pp)
{
    uintptr_t base = 0;
    if (pp && pp->nstack > 0) {
        base = pp->stackcache[--pp->nstack];
    } else {
        gort_lock(&stackpool.lock);
        base = pool_get();
        /* Refill half the cache while the lock is held. */
        while (pp && base && pp->nstack < STACK_CACHE / 2) {
            uintptr_t more = pool_get();
            if (!more)
                break;
            pp->stackcache[pp->nstack++] = more;
        }
        gort_unlock(&stackpool.lock);
    }
    if (!base)
        throw("out of memory allocating a goroutine stack");
    return stack_at(base);
}

uintptr_t stack_top_of(uintptr_t sp)
{
    struct mspan *s = span_of(sp);
    if (!s || s->state != mSpanManual || sp < s->startAddr ||
        sp - s->startAddr >= (s->npages << _PageShift))
        return 0;
    return s->startAddr + ((sp - s->startAddr) / stackSize + 1) * stackSize;
}

static uintptr_t stack_base(struct stack stk)
{
    return stk.hi - stackSize;
}

void stackfree(struct p *pp, struct stack stk)
{
    uintptr_t base = stack_base(stk);
    if (pp && pp->nstack < STACK_CACHE) {
        pp->stackcache[pp->nstack++] = base;
        return;
    }
    gort_lock(&stackpool.lock);
    pool_put(base);
    while (pp && pp->nstack > STACK_CACHE / 2)
        pool_put(pp->stackcache[--pp->nstack]);
    gort_unlock(&stackpool.lock);
}

void stackcache_clear(struct p *pp)
{
    gort_lock(&stackpool.lock);
    while (pp->nstack > 0)
        pool_put(pp->stackcache[--pp->nstack]);
    gort_unlock(&stackpool.lock);
}

extern void gostart(void);

void gostartframe(struct g *gp)
{
    uintptr_t top = gp->stack.hi & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* gogo pops the control words, six registers and returns to gostart
     * with the stack pointer at top. */
    uint64_t *sp = (uint64_t *)(top - 64);
    sp[0] = 0x1F80 | ((uint64_t)0x037F << 32);   /* MXCSR, x87 CW: defaults */
    for (int i = 1; i < 7; i++)
        sp[i] = 0;
    sp[7] = (uint64_t)(uintptr_t)gostart;
#elif defined(__aarch64__)
    uint64_t *sp = (uint64_t *)(top - 176);
    memset(sp, 0, 176);
    sp[11] = (uint64_t)(uintptr_t)gostart;      /* x30 */
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    sp[20] = fpcr;
#else
#error "gort's scheduler supports x86-64 and aarch64"
#endif
    gp->sched.sp = sp;
}

static void report_overflow(struct g *gp)
{
    printbuf b = {.len = 0};
    pb_str(&b, "gort: fatal error: stack overflow\n\ngoroutine ");
    pb_u64(&b, (uint64_t)gp->goid);
    pb_str(&b, ": stack [");
    pb_hex(&b, gp->stack.lo);
    pb_str(&b, ", ");
    pb_hex(&b, gp->stack.hi);
    pb_str(&b, ") exhausted; raise GODEBUG=stacksize (now ");
    pb_u64(&b, stackSize);
    pb_str(&b, ")\n");
    pb_flush(&b);
}

void stackcheck_failed(struct g *gp)
{
    report_overflow(gp);
    abort();
}

static struct sigaction old_segv, old_bus;

static uintptr_t context_sp(void *uctx)
{
    ucontext_t *uc = uctx;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.sp;
#endif
}

/* A fault is a stack overflow if it hit the guard page, or if the stack
 * pointer itself has left the stack (canary mode has no guard: a deep
 * recursion runs on until it faults somewhere below). */
static void fault_handler(int sig, siginfo_t *info, void *uctx)
{
    struct g *gp = getg();
    uintptr_t addr = (uintptr_t)info->si_addr;
    uintptr_t sp = context_sp(uctx);
    if (gp && gp->m && gp != gp->m->g0 && gp->stack.lo &&
        ((addr < gp->stack.lo && addr + GUARD_SIZE >= gp->stack.lo) ||
         sp < gp->stack.lo + CANARY_SIZE || sp > gp->stack.hi)) {
        report_overflow(gp);
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    /* Not ours: put the previous handler back; the access faults again. */
    sigaction(sig, sig == SIGSEGV ? &old_segv : &old_bus, NULL);
}

void stack_signals_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

void stack_minit(struct m *mp)
{
    size_t n = 64 << 10;
    void *p = os_alloc(n);
    if (!p)
        return;
    stack_t ss = {.ss_sp = p, .ss_size = n, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) == 0)
        mp->altstack = p;
}
