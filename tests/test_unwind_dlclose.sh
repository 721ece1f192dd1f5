#!/bin/bash
# test_unwind_dlclose.sh — the heap profiler's stack walker (unwind.c) keeps
# the frame rules it worked out per return address; code loaded where
# unloaded code was must not inherit them.  Two builds of one plugin whose
# only difference is the size of a frame (same instructions, same
# addresses, different CFA offset) are loaded one after the other, usually
# at the same address, and a walk through each must match libgcc's.
#
#   bash tests/test_unwind_dlclose.sh BUILD
set -u -o pipefail

build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
archive=$(cd "$build" 2>/dev/null && pwd)/libgort.a
if [ ! -f "$archive" ]; then
    echo "FAIL: $build/libgort.a not found (make lib)"
    exit 1
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

cat > "$dir/plugin.c" <<'EOF2'
/* FRAME 256 or 2048: the same encodings (above 127, below the stack
 * probing threshold), so the same addresses. */
__attribute__((noinline)) void plugin_call(void (*cb)(void))
{
    volatile char buf[FRAME];
    buf[0] = 1;
    cb();
    __asm__ volatile("" ::: "memory");
    buf[FRAME - 1] = buf[0];
}
EOF2

cat > "$dir/main.c" <<'EOF2'
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include "prof/unwind.h"

static uintptr_t fast[64], slow[64];
static int nfast, nslow;

static __attribute__((noinline)) void walk(void)
{
    nfast = unwind_stack(fast, 64);
    nslow = unwind_stack_libgcc(slow, 64);
    __asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
    void *where[2];
    for (int i = 0; i < 2; i++) {
        void *h = dlopen(argv[1 + i], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "FAIL: dlopen %s: %s\n", argv[1 + i], dlerror());
            return 1;
        }
        void (*call)(void (*)(void)) = (void (*)(void (*)(void)))dlsym(h, "plugin_call");
        where[i] = (void *)call;
        uint64_t before = unwind_fallbacks;
        call(walk);
        /* Ordinary frames: never handed to libgcc (a stale rule reads a
         * wrong return address, which then has no FDE). */
        if (unwind_fallbacks != before) {
            fprintf(stderr, "FAIL: plugin %d: the walk went to libgcc\n", i);
            return 1;
        }
        if (nfast != nslow || nfast < 3) {
            fprintf(stderr, "FAIL: plugin %d: %d frames, libgcc %d\n", i, nfast, nslow);
            return 1;
        }
        for (int k = 0; k < nfast; k++)
            if (fast[k] != slow[k]) {
                fprintf(stderr, "FAIL: plugin %d frame %d: %#lx, libgcc %#lx\n", i, k,
                        (unsigned long)fast[k], (unsigned long)slow[k]);
                return 1;
            }
        dlclose(h);
    }
    (void)argc;
    printf("ok (%s address)\n", where[0] == where[1] ? "same" : "a different");
    return 0;
}
EOF2

cc -O2 -fPIC -shared -DFRAME=256 "$dir/plugin.c" -o "$dir/plugin_a.so" &&
cc -O2 -fPIC -shared -DFRAME=2048 "$dir/plugin.c" -o "$dir/plugin_b.so" &&
cc -std=gnu11 -O2 -I"$top/include" -I"$top/src" "$dir/main.c" "$archive" -ldl -lm -pthread \
    -o "$dir/main" || { echo "FAIL: build"; exit 1; }
"$dir/main" "$dir/plugin_a.so" "$dir/plugin_b.so"
