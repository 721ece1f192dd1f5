#!/bin/bash
# Instructions per malloc+free pair on gort's fast path (callgrind counts
# instructions, so the figure is exact and independent of machine noise).
# Then, given NAME=LIBRARY pairs (an empty LIBRARY for glibc's own malloc),
# the same loop in a dynamically linked binary under each one's LD_PRELOAD,
# so gort's shared library is compared with the peers in one harness (the
# PLT call adds a few instructions to every row alike).
#   bench/hotpath.sh [BUILD [NAME=LIBRARY ...]]   — needs valgrind
set -eu
build=${1:-build}
shift || true
mkdir -p "$build/bench"
cc -O2 -o "$build/bench/hotpath" bench/hotpath.c "$build/libgort.a" -lpthread
cc -O2 -o "$build/bench/hotpath-dyn" bench/hotpath.c
count() {   # count PRELOAD BINARY N SIZE
    LD_PRELOAD=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$2" "$3" "$4" 2>&1 |
        awk '/Collected/ {print $4}'
}
pair() {    # pair PRELOAD BINARY SIZE: instructions of one pair
    local a b
    a=$(count "$1" "$2" 100000 "$3"); b=$(count "$1" "$2" 1100000 "$3")
    echo $(( (b - a) / 1000000 ))
}
for size in 16 32 256 1024; do
    echo "size $size: $(pair "" "$build/bench/hotpath" $size) instructions per malloc+free pair (loop included)"
done
for spec in "$@"; do
    name=${spec%%=*}
    lib=${spec#*=}
    echo "$name under LD_PRELOAD, size 32: $(pair "$lib" "$build/bench/hotpath-dyn" 32) instructions per malloc+free pair (loop and PLT included)"
done
