#!/bin/bash
# make run: the main job.  Runs a real program on gort and prints gort's
# memory statistics, then binary-trees under glibc and under gort side by
# side (time and peak RSS; the full comparison with jemalloc, tcmalloc and
# mimalloc is bench/'s job).
#   examples/run.sh BUILD
set -eu
build=${1:-build}
lib=$(cd "$build" && pwd)/libgort.so
echo "== wordfreq, linked with -lgort =="
"$build/examples/wordfreq"
echo
echo "== the same statistics from GODEBUG=memstats=1 at exit (python3 under LD_PRELOAD) =="
LD_PRELOAD=$lib GODEBUG=memstats=1 python3 -c 'print("python3 says", sum(len(str(i)) for i in range(300000)))' 2>&1 | head -24
echo
echo "== binary-trees depth 18 (malloc/free), glibc vs gort, median of 3 =="
mkdir -p "$build/bench"
cc -O2 -o "$build/bench/binary_trees" bench/binary_trees.c
for alloc in glibc gort; do
    pre=""; [ "$alloc" = gort ] && pre=$lib
    for i in 1 2 3; do
        /usr/bin/env time -f "%e %M" env LD_PRELOAD="$pre" "$build/bench/binary_trees" 18 2>&1 >/dev/null | tail -1
    done | sort -n | sed -n 2p | awk -v a="$alloc" '{printf "  %-6s %6.2f s  peak RSS %7.1f MiB\n", a, $1, $2/1024}'
done
