#!/bin/bash
# make run: the main job, in four parts.
#  1. The allocator: gort side by side with glibc, jemalloc, tcmalloc and
#     mimalloc on the benchmark workloads and real programs (redis, python3,
#     sqlite3), in bench/run.py's quick mode (about two minutes): a table of
#     times and peak RSS, the report and charts in build/bench-quick/.
#  2. Goroutines: gort's scheduler against Go's on the same machine,
#     bench/sched/run.py --quick (under a minute): a table of times and
#     ratios, the report in build/bench-sched/quick/.
#  3. The collector against Go's and the Boehm GC, bench/gc/run.py --quick
#     (about a minute): binary-trees, GCBench, gc_latency pauses, in
#     build/bench-gc/quick/.
#  4. An execution trace of examples/pipeline (GODEBUG=trace=), rendered by
#     tools/gort-trace-html into a timeline a browser opens.
# `make bench`, `make bench-sched` and `make bench-gc` are the full runs that
# write docs/bench/.
#   examples/run.sh BUILD
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
status=0
python3 bench/run.py --quick --build "$build" --via "make run" || status=$?
echo
python3 bench/sched/run.py --quick --build "$build" --via "make run" || status=$?
echo
python3 bench/gc/run.py --quick --build "$build" --via "make run" || status=$?
echo
# An execution trace of an example, and its timeline.
trace=$build/trace-pipeline
if GODEBUG=trace=$trace.json "$build/examples/pipeline" >/dev/null &&
   tools/gort-trace-html "$trace.json" -o "$trace.html"; then
    echo "trace of examples/pipeline: open $trace.html in a browser"
    echo "  (or load $trace.json in Perfetto, https://ui.perfetto.dev, or chrome://tracing)"
else
    echo "trace of examples/pipeline: failed" >&2
    status=1
fi
exit $status
