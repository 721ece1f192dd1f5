#!/bin/bash
# Instructions per malloc+free pair on gort's fast path (callgrind counts
# instructions, so the figure is exact and independent of machine noise).
#   bench/hotpath.sh [BUILD]   — needs valgrind
set -eu
build=${1:-build}
cc -O2 -o "$build/bench/hotpath" bench/hotpath.c "$build/libgort.a" -lpthread
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$build/bench/hotpath" "$1" "$2" 2>&1 |
        awk '/Collected/ {print $4}'
}
for size in 16 32 256 1024; do
    a=$(count 100000 $size); b=$(count 1100000 $size)
    echo "size $size: $(( (b - a) / 1000000 )) instructions per malloc+free pair (loop included)"
done
