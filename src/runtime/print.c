/*
 * print.c — allocation-free formatting to stderr (see print.h).
 */
#include "runtime/print.h"
#include "os/os.h"

#include <stdlib.h>
#include <string.h>

static void pb_putc(printbuf *b, char c)
{
    if (b->len == sizeof b->buf)
        pb_flush(b);
    b->buf[b->len++] = c;
}

void pb_str(printbuf *b, const char *s)
{
    while (*s)
        pb_putc(b, *s++);
}

void pb_u64(printbuf *b, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        pb_putc(b, tmp[--n]);
}

void pb_u64w(printbuf *b, uint64_t v, int width)
{
    int digits = 1;
    for (uint64_t t = v; t >= 10; t /= 10)
        digits++;
    for (; width > digits; width--)
        pb_putc(b, ' ');
    pb_u64(b, v);
}

void pb_i64(printbuf *b, int64_t v)
{
    if (v < 0) {
        pb_str(b, "-");
        pb_u64(b, (uint64_t)0 - (uint64_t)v);
        return;
    }
    pb_u64(b, (uint64_t)v);
}

void pb_hex(printbuf *b, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    pb_str(b, "0x");
    while (n)
        pb_putc(b, tmp[--n]);
}

void pb_pad(printbuf *b, size_t start, size_t width)
{
    while (b->len < sizeof b->buf && b->len - start < width)
        pb_putc(b, ' ');
}

void pb_flush(printbuf *b)
{
    os_write_stderr(b->buf, b->len);
    b->len = 0;
}

void throw_ptr(const char *what, uintptr_t addr)
{
    throw_bad_pointer(NULL, what, addr);
}

void throw_bad_pointer(const char *fn, const char *what, uintptr_t addr)
{
    printbuf b = {.len = 0};
    pb_str(&b, "gort: ");
    if (fn) {
        pb_str(&b, fn);
        pb_str(&b, ": ");
    }
    pb_str(&b, what);
    pb_str(&b, " ");
    pb_hex(&b, addr);
    pb_str(&b, "\n");
    pb_flush(&b);
    abort();
}

void throw(const char *msg)
{
    printbuf b = {.len = 0};
    pb_str(&b, "gort: fatal error: ");
    pb_str(&b, msg);
    pb_str(&b, "\n");
    pb_flush(&b);
    abort();
}
