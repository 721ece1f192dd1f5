/*
 * sizeclasses.c — the table of Go's size classes and its lookup tables.
 */
#include "mem/sizeclasses.h"

const uint16_t class_to_size[_NumSizeClasses] = {
    0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208,
    224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704,
    768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072,
    3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728,
    10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760,
    24576, 27264, 28672, 32768,
};

const uint8_t class_to_allocnpages[_NumSizeClasses] = {
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3,
    2, 3, 4, 5, 6, 1, 7, 10, 5, 4, 3, 5, 7, 2, 9, 7, 5, 8, 3, 10, 7, 4,
};

uint32_t class_to_divmagic[_NumSizeClasses];
uint16_t class_to_nelems[_NumSizeClasses];
struct classinfo class_info[256];
uint16_t size_to_class8[smallSizeMax / smallSizeDiv + 1];
uint16_t size_to_class128[(_MaxSmallSize - smallSizeMax) / largeSizeDiv + 1];

void sizeclasses_init(void)
{
    int c = 1;
    for (size_t i = 0; i < sizeof size_to_class8 / sizeof size_to_class8[0]; i++) {
        size_t size = i * smallSizeDiv;
        while (class_to_size[c] < size)
            c++;
        size_to_class8[i] = (uint16_t)(c << CLASS_SCALE_SHIFT);
    }
    for (size_t i = 0; i < sizeof size_to_class128 / sizeof size_to_class128[0]; i++) {
        size_t size = smallSizeMax + i * largeSizeDiv;
        while (class_to_size[c] < size)
            c++;
        size_to_class128[i] = (uint16_t)(c << CLASS_SCALE_SHIFT);
    }
    for (int k = 1; k < _NumSizeClasses; k++) {
        class_to_divmagic[k] = (uint32_t)(UINT32_MAX / class_to_size[k] + 1);
        class_to_nelems[k] = (uint16_t)(class_to_allocnpages[k] * _PageSize / class_to_size[k]);
        uint64_t divtest = UINT64_MAX / class_to_size[k] + 1;
        if (divtest * class_to_size[k] == 0)
            divtest++;          /* a power of two: e would be 0 */
        class_info[k] = (struct classinfo){
            .divtest = divtest,
            .below = (uint64_t)class_to_nelems[k] * (divtest * class_to_size[k]),
            .size = class_to_size[k],
        };
    }
}
