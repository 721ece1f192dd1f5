#!/bin/bash
# make run: the main job.  gort side by side with glibc, jemalloc, tcmalloc
# and mimalloc on the benchmark workloads and real programs (redis, python3,
# sqlite3), in bench/run.py's quick mode: about two minutes, a table of
# times and peak RSS on stdout, the report and charts in build/bench-quick/.
# `make bench` is the full run that writes docs/bench/.
#   examples/run.sh BUILD
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
exec python3 bench/run.py --quick --build "$build" --via "make run"
