/* Unit test: Go's size classes, their lookup tables and reciprocals. */
#include "check.h"
#include "mem/sizeclasses.h"

int main(void)
{
    sizeclasses_init();
    CHECK(class_to_size[0] == 0 && class_info[0].below == 0);
    CHECK(class_to_size[_NumSizeClasses - 1] == _MaxSmallSize);
    for (int c = 1; c < _NumSizeClasses; c++) {
        size_t size = class_to_size[c];
        size_t span = (size_t)class_to_allocnpages[c] * _PageSize;
        CHECKF(size > class_to_size[c - 1], "class %d not increasing", c);
        CHECKF(size % 8 == 0, "class %d size %zu not 8-aligned", c, size);
        /* 16-byte alignment for every class above 16 bytes except 24. */
        if (size >= 16 && size != 24)
            CHECKF(size % 16 == 0, "class %d size %zu not 16-aligned", c, size);
        /* Go's rule: the tail left in the span wastes at most 1/8 of it. */
        CHECKF(span % size <= span / 8, "class %d tail waste %zu of %zu", c,
               span % size, span);
        CHECKF(span / size <= _MaxSpanElems, "class %d too many objects", c);
        CHECK(class_to_nelems[c] == span / size);
        /* Reciprocal division is exact over the whole span. */
        for (size_t off = 0; off < span; off++) {
            size_t q = (size_t)(((uint64_t)off * class_to_divmagic[c]) >> 32);
            if (q != off / size)
                CHECKF(0, "divmagic class %d off %zu: %zu != %zu", c, off, q, off / size);
            /* free()'s boundary test: an object's start and nothing else,
             * over the span and well past it (pageinfo offsets reach 2^29). */
            const struct classinfo *ci = &class_info[c];
            for (uint64_t o = off; o < ((uint64_t)1 << 29); o += span) {
                int boundary = o * ci->divtest < ci->below;
                if (boundary != (o % size == 0 && o / size < class_to_nelems[c]))
                    CHECKF(0, "boundary test class %d off %llu: %d", c, (unsigned long long)o, boundary);
                if (o > 4 * span)
                    o += 997 * span;   /* sample the rest */
            }
        }
    }
    /* Every size maps to the smallest class that fits it. */
    for (size_t n = 0; n <= _MaxSmallSize; n++) {
        int c = size_to_class(n);
        CHECKF(c >= 1 && c < _NumSizeClasses, "size %zu class %d", n, c);
        CHECKF(class_to_size[c] >= n, "size %zu class %d too small", n, c);
        CHECKF(c == 1 || class_to_size[c - 1] < n, "size %zu: class %d not smallest", n, c);
    }
    printf("68 classes ok\n");
    return 0;
}
