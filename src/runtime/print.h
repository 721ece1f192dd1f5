/*
 * print.h — printing from inside the allocator.
 *
 * stdio may allocate, so gort formats into a fixed buffer on the stack and
 * writes it to stderr with one write(2).  throw() is Go's: report a fatal
 * error and abort, used for corrupted or invalid input such as a bad free.
 */
#ifndef GORT_PRINT_H
#define GORT_PRINT_H

#include <stddef.h>
#include <stdint.h>

typedef struct printbuf {
    char buf[1024];
    size_t len;
} printbuf;

void pb_str(printbuf *b, const char *s);
void pb_u64(printbuf *b, uint64_t v);
void pb_i64(printbuf *b, int64_t v);
void pb_hex(printbuf *b, uint64_t v);          /* 0x-prefixed, lowercase */
void pb_u64w(printbuf *b, uint64_t v, int width); /* right-aligned in width */
void pb_pad(printbuf *b, size_t start, size_t width); /* space-pad since start */
void pb_flush(printbuf *b);                    /* write to stderr, empty b */

/* "gort: <what> 0x<addr>\n", then abort(). */
__attribute__((noreturn, cold)) void throw_ptr(const char *what, uintptr_t addr);
/* "gort: <fn>: <what> 0x<addr>\n", then abort(): glibc's shape, e.g.
 * "gort: free(): invalid pointer 0x7ffc...". */
__attribute__((noreturn, cold)) void throw_bad_pointer(const char *fn, const char *what,
                                                       uintptr_t addr);
/* "gort: fatal error: <msg>\n", then abort(). */
__attribute__((noreturn, cold)) void throw(const char *msg);

#endif
