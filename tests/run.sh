#!/bin/bash
# Runs every test of one build flavour and appends one line per test to
# build/.results ("flavour name PASS|FAIL seconds").  C tests are the binaries
# in BUILD/tests; shell tests (tests/*.sh, run in the plain flavour only) get
# BUILD as their first argument.
#   tests/run.sh BUILD FLAVOUR
set -u
build=$1
flavour=$2
here=$(cd "$(dirname "$0")" && pwd)
results=build/.results
mkdir -p build
pass=0 fail=0
run_one() {
    local name=$1; shift
    local log=$build/tests/$name.log
    local t0=$(date +%s.%N)
    if timeout 600 "$@" >"$log" 2>&1; then
        status=PASS; pass=$((pass+1))
    else
        status=FAIL; fail=$((fail+1))
    fi
    local t1=$(date +%s.%N)
    printf "%-6s %-5s %-28s %6.1fs\n" "$flavour" "$status" "$name" "$(awk "BEGIN{print $t1 - $t0}")"
    if [ "$status" = FAIL ]; then sed 's/^/    | /' "$log" | tail -n 25; fi
    echo "$flavour $name $status" >> "$results"
}
mkdir -p "$build/tests"
for t in "$build"/tests/*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    case "$t" in *.log) continue;; esac
    run_one "$(basename "$t")" "$t"
done
if [ "$flavour" = plain ]; then
    for t in "$here"/*.sh; do
        case "$(basename "$t")" in run.sh|summary.sh) continue;; esac
        run_one "$(basename "$t" .sh)" bash "$t" "$build"
    done
fi
echo "$flavour: $pass passed, $fail failed"
