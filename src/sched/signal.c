/*
 * signal.c — asynchronous preemption (GODEBUG=asyncpreempt=1).
 *
 * By default a goroutine that computes for more than 10 ms is only asked to
 * yield: sysmon sets g->preempt and the goroutine yields at its next call
 * into gort (a channel operation, a lock, gort_yield, gort_go...).  A loop
 * that never calls gort keeps its P.
 *
 * With asyncpreempt=1, sysmon also sends the M a SIGURG (Go's choice: a
 * signal programs rarely use).  The handler preempts the goroutine on the
 * spot, from inside the signal frame: the frame stays on the goroutine's
 * stack, the goroutine goes to the global run queue, and when it is resumed
 * (maybe on another thread) the handler returns and the kernel restores its
 * registers.  That is only safe where the interrupted code holds nothing
 * another goroutine on this thread could need, so the handler declines when
 * the interrupted instruction is inside gort itself (its locks, its
 * per-thread caches), the C library, the dynamic loader or the vDSO
 * (stdio's and malloc-style locks are per thread: a second goroutine on the
 * same thread would walk into a half-done update).  The limits that remain:
 *  - the interrupted code may keep the address of a thread-local variable
 *    (errno, C11 _Thread_local) in a register, and find after resuming on
 *    another thread that it points at the old thread's copy;
 *  - other libraries with thread-owned locks (not libc's) are not
 *    recognised;
 *  - gort's code can only be told apart from the program's when gort is
 *    linked as libgort.so; with the static library the setting is refused
 *    with a message.
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "gort.h"
#include "os/os.h"
#include "runtime/godebug.h"
#include "runtime/print.h"
#include "sched/preempt.h"
#include "sched/runtime2.h"

#define MAX_RANGES 16

static struct { uintptr_t lo, hi; } noPreempt[MAX_RANGES];
static int nNoPreempt;
static uintptr_t gortBase;

static bool name_has(const char *name, const char *part)
{
    return name && strstr(name, part) != NULL;
}

static int collect(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    const char *name = info->dlpi_name;
    bool runtime = (uintptr_t)info->dlpi_addr == gortBase ||
                   name_has(name, "libc.so") || name_has(name, "ld-linux") ||
                   name_has(name, "linux-vdso") || name_has(name, "libpthread") ||
                   name_has(name, "libm.so");
    if (!runtime)
        return 0;
    for (int i = 0; i < info->dlpi_phnum && nNoPreempt < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            noPreempt[nNoPreempt].lo = info->dlpi_addr + ph->p_vaddr;
            noPreempt[nNoPreempt].hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
            nNoPreempt++;
        }
    }
    return 0;
}

static bool preemptible_pc(uintptr_t pc)
{
    for (int i = 0; i < nNoPreempt; i++)
        if (pc >= noPreempt[i].lo && pc < noPreempt[i].hi)
            return false;
    return true;
}

static uintptr_t context_pc(void *uctx)
{
    ucontext_t *uc = uctx;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#endif
}

static void sigurg_handler(int sig, siginfo_t *info, void *uctx)
{
    (void)sig;
    (void)info;
    struct g *gp = getg();
    if (!gp || !gp->m || gp == gp->m->g0 || !gp->preempt || gp->m->locks ||
        !preemptible_pc(context_pc(uctx)))
        return;
    /* errno through out-of-line calls: the goroutine may come back on
     * another thread, and a cached &errno would name the old one's. */
    int saved = gort_errno();
    /* The next goroutine on this thread must be preemptible too. */
    sigset_t urg;
    sigemptyset(&urg);
    sigaddset(&urg, SIGURG);
    pthread_sigmask(SIG_UNBLOCK, &urg, NULL);
    goschedIfPreempted();
    errno_set(saved);
}

bool asyncPreemptOn;

/* Finds the object that holds gort's code: its load address, and whether
 * it is the executable itself (gort linked statically). */
struct gortobj {
    uintptr_t pc;
    uintptr_t base;
    bool found, isExe;
    int index;
};

static int find_gort(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct gortobj *o = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && o->pc >= lo && o->pc < lo + ph->p_memsz) {
            o->base = info->dlpi_addr;
            o->found = true;
            /* The first object listed is the executable. */
            o->isExe = o->index == 0;
            return 1;
        }
    }
    o->index++;
    return 0;
}

void preempt_signals_init(void)
{
    struct gortobj o = {.pc = (uintptr_t)gort_main};
    dl_iterate_phdr(find_gort, &o);
    if (!o.found || o.isExe) {
        const char msg[] = "gort: GODEBUG=asyncpreempt=1 needs gort linked as libgort.so; "
                           "cooperative preemption only\n";
        os_write_stderr(msg, sizeof msg - 1);
        return;
    }
    gortBase = o.base;
    dl_iterate_phdr(collect, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = sigurg_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGURG, &sa, NULL);
    asyncPreemptOn = true;
}

void preemptM(struct m *mp)
{
    if (asyncPreemptOn && mp->tid)
        syscall(SYS_tgkill, getpid(), mp->tid, SIGURG);
}
