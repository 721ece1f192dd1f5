#!/bin/bash
# make run: the main job, in two parts.
#  1. The allocator: gort side by side with glibc, jemalloc, tcmalloc and
#     mimalloc on the benchmark workloads and real programs (redis, python3,
#     sqlite3), in bench/run.py's quick mode (about two minutes): a table of
#     times and peak RSS, the report and charts in build/bench-quick/.
#  2. Goroutines: gort's scheduler against Go's on the same machine,
#     bench/sched/run.py --quick (under a minute): a table of times and
#     ratios, the report in build/bench-sched/quick/.
# `make bench` and `make bench-sched` are the full runs that write docs/bench/.
#   examples/run.sh BUILD
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
status=0
python3 bench/run.py --quick --build "$build" --via "make run" || status=$?
echo
python3 bench/sched/run.py --quick --build "$build" --via "make run" || status=$?
exit $status
