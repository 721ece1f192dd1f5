/*
 * os_linux.c — the Linux system calls behind os.h.
 *
 * Heap memory is mapped MAP_NORESERVE so that reserving a 64 MiB arena costs
 * address space only: the kernel commits a page when it is first touched,
 * which is the "committed lazily" half of Go's sysReserve/sysMap split
 * without a second system call per arena.
 */
#define _GNU_SOURCE 1
#include "os/os.h"
#include <fcntl.h>
#include <sched.h>

#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void *os_reserve(void *hint, size_t n)
{
    void *p = mmap(hint, n, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void os_unmap(void *p, size_t n)
{
    munmap(p, n);
}

void os_release(void *p, size_t n, int dontneed)
{
    if (dontneed || madvise(p, n, MADV_FREE) != 0)
        madvise(p, n, MADV_DONTNEED);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

bool os_populate(void *p, size_t n)
{
    static int unsupported;
    if (__atomic_load_n(&unsupported, __ATOMIC_RELAXED))
        return false;
    /* A successful allocation leaves errno alone: a populate cut short
     * (EINTR, ENOMEM) only means the pages fault in later. */
    int saved = errno;
    bool ok = madvise(p, n, MADV_POPULATE_WRITE) == 0;
    if (!ok && errno == EINVAL)
        __atomic_store_n(&unsupported, 1, __ATOMIC_RELAXED);
    errno = saved;
    return ok;
}

void *os_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

uint64_t os_nanotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void os_futex_wait(uint32_t *addr, uint32_t val, int64_t ns)
{
    struct timespec ts, *tsp = NULL;
    if (ns >= 0) {
        ts.tv_sec = ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        tsp = &ts;
    }
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
}

void os_futex_wake(uint32_t *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

void os_write_stderr(const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

size_t os_pagesize(void)
{
    static size_t pagesize;
    if (pagesize == 0)
        pagesize = (size_t)sysconf(_SC_PAGESIZE);
    return pagesize;
}

/* ---- CPUs ------------------------------------------------------------- */

/* Reads a small file into buf (NUL-terminated); returns its length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = read(fd, buf, n - 1);
    close(fd);
    if (r < 0)
        return -1;
    buf[r] = 0;
    return r;
}

static int64_t parse_i64(const char **s)
{
    int64_t v = 0;
    while (**s == ' ')
        (*s)++;
    if (**s < '0' || **s > '9')
        return -1;
    while (**s >= '0' && **s <= '9')
        v = v * 10 + (*(*s)++ - '0');
    return v;
}

/* The CPU limit a cgroup quota imposes, rounded up; 0 when unlimited.
 * cgroup v2 writes "quota period" (or "max period") to cpu.max; v1 has
 * cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us. */
static int cgroup_cpu_limit(void)
{
    char buf[128];
    int64_t quota = -1, period = -1;
    if (read_small("/sys/fs/cgroup/cpu.max", buf, sizeof buf) > 0) {
        const char *s = buf;
        quota = parse_i64(&s);     /* -1 for "max" */
        period = parse_i64(&s);
    } else if (read_small("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", buf, sizeof buf) > 0) {
        const char *s = buf;
        quota = parse_i64(&s);     /* "-1" parses as -1 */
        if (read_small("/sys/fs/cgroup/cpu/cpu.cfs_period_us", buf, sizeof buf) > 0) {
            s = buf;
            period = parse_i64(&s);
        }
    }
    if (quota <= 0 || period <= 0)
        return 0;
    return (int)((quota + period - 1) / period);
}

int os_ncpu(void)
{
    cpu_set_t set;
    int n = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    int limit = cgroup_cpu_limit();
    if (limit > 0 && limit < n)
        n = limit;
    return n > 0 ? n : 1;
}

int os_gettid(void)
{
    return (int)syscall(SYS_gettid);
}
