/*
 * pprof.h — writing the heap profile in pprof's format: profile.proto,
 * gzipped (see pprof.c).
 */
#ifndef GORT_PPROF_H
#define GORT_PPROF_H

#include <stddef.h>
#include <stdint.h>

/* Writes the current heap profile to fd.  Allocates from the heap (with
 * the profiler's guard set), so it must not run inside malloc.  Returns 0,
 * or -1 with errno set. */
int pprof_write_heap(int fd);

/* The whole of a gzip member holding n bytes of data in stored deflate
 * blocks, into out (of room pprof_gzip_bound(n)); returns its length. */
size_t pprof_gzip_bound(size_t n);
size_t pprof_gzip(const uint8_t *data, size_t n, uint8_t *out);
uint32_t pprof_crc32(const uint8_t *p, size_t n);

/* Prints the n return addresses of a stack on stderr, one "#i pc function
 * (object)" line each, leaving out the allocator's own frames on top. */
void pprof_print_stack(const uintptr_t *pcs, size_t n);

#endif
