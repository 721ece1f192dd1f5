/*
 * sizeclasses.h — Go's size classes.
 *
 * Small objects (<= 32 KiB) are rounded up to one of 67 sizes; class 0
 * means "large", served by whole pages.  Each class has a span size (in
 * 8 KiB pages) chosen by Go's rule: the tail left over after packing
 * objects into the span wastes at most 1/8 of it.  The table is Go's (the
 * sizes and page counts are facts; tests re-derive the waste bound).
 *
 * size -> class is O(1) through two tables as in Go: size_to_class8 by
 * 8-byte steps up to 1024 bytes, size_to_class128 by 128-byte steps above.
 */
#ifndef GORT_SIZECLASSES_H
#define GORT_SIZECLASSES_H

#include <stddef.h>
#include <stdint.h>

#define _PageShift        13
#define _PageSize         ((size_t)1 << _PageShift)       /* 8 KiB */
#define _PageMask         (_PageSize - 1)
#define _NumSizeClasses   68
#define _MaxSmallSize     32768
#define smallSizeDiv      8
#define smallSizeMax      1024
#define largeSizeDiv      128
#define _MaxSpanElems     1024  /* class 1: 8192 / 8 */

/* A span class is a size class and a noscan bit (objects hold no pointers,
 * so the collector need not look inside). */
#define numSpanClasses    (_NumSizeClasses << 1)
typedef uint8_t spanClass;
static inline spanClass makeSpanClass(uint8_t sizeclass, int noscan)
{
    return (spanClass)((sizeclass << 1) | (noscan ? 1 : 0));
}
static inline uint8_t spanClass_sizeclass(spanClass sc) { return sc >> 1; }
static inline int spanClass_noscan(spanClass sc) { return sc & 1; }

extern const uint16_t class_to_size[_NumSizeClasses];
extern const uint8_t class_to_allocnpages[_NumSizeClasses];
/* Reciprocals: (off * class_to_divmagic[c]) >> 32 == off / size for every
 * offset inside a span, so finding an object's index needs no division. */
extern uint32_t class_to_divmagic[_NumSizeClasses];
/* Objects per span of each class (0 for class 0). */
extern uint16_t class_to_nelems[_NumSizeClasses];

/* What free()'s fast path needs of a class, in one record: an
 * offset off inside a span (off < 2^29) is the start of one of its objects
 * exactly when off * divtest (mod 2^64) < below.  With divtest * size =
 * 2^64 + e (e >= 1: divtest is ceil(2^64 / size), one more for a power of
 * two), the k-th object's offset k * size maps to k * e, small and growing
 * with k, while any offset r bytes past a boundary (0 < r < size) maps to
 * at least divtest, far above (Lemire, Kaser and Kurz, "Faster remainder
 * by direct computation", 2019, for the divisibility half).  below =
 * nelems * e then also rejects the span's tail: one multiply and one
 * compare, no division. */
struct classinfo {
    uint64_t divtest;
    uint64_t below;
    uint64_t size;      /* class_to_size, beside malloc's other lookups */
    uint64_t pad;       /* 32 bytes, as struct freelist: one scaled index */
};
/* Indexed by a page's class (arena pageinfo): entries past the last
 * class are zero, so a page marked PAGEINFO_SAMPLED matches no class. */
extern struct classinfo class_info[256];
/* size -> class times 32 (malloc indexes class_info and its lists by it). */
extern uint16_t size_to_class8[smallSizeMax / smallSizeDiv + 1];
extern uint16_t size_to_class128[(_MaxSmallSize - smallSizeMax) / largeSizeDiv + 1];
#define CLASS_SCALE_SHIFT 5

/* Fills the lookup tables; idempotent. */
void sizeclasses_init(void);

/* The class of a small size (size <= _MaxSmallSize). */
static inline uint8_t size_to_class(size_t size)
{
    if (size <= smallSizeMax - 8)
        return (uint8_t)(size_to_class8[(size + smallSizeDiv - 1) / smallSizeDiv] >>
                         CLASS_SCALE_SHIFT);
    return (uint8_t)(size_to_class128[(size - smallSizeMax + largeSizeDiv - 1) / largeSizeDiv] >>
                     CLASS_SCALE_SHIFT);
}

/* class_info[cls32 / 32]. */
static inline const struct classinfo *class_info_scaled(uintptr_t cls32)
{
    return (const struct classinfo *)((const char *)class_info + cls32);
}

#endif
