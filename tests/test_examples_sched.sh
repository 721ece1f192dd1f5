#!/bin/bash
# The goroutine examples run and compute the right thing, under GOMAXPROCS=1
# and 2: sieve prints exactly the first N primes, workerpool and pipeline
# check their totals against plain loops, echo's in-process server answers
# every client byte for byte, and `echo serve` answers a client from outside
# (bash's /dev/tcp).  Each run has a time limit so a hang fails the test.
# The examples are built by `make` (make examples), not here.
#   tests/test_examples_sched.sh BUILD
set -u
build=$1
ex=$build/examples
fail=0
bad() { echo "FAIL: $*"; fail=1; }

for b in sieve workerpool pipeline echo; do
    [ -x "$ex/$b" ] || { echo "FAIL: $ex/$b is not built (run make examples)"; exit 1; }
done

# The first n primes by trial division, one a line.
primes() {
    awk -v n="$1" 'BEGIN { k = 0; for (i = 2; k < n; i++) { p = 1
        for (d = 2; d * d <= i; d++) if (i % d == 0) { p = 0; break }
        if (p) { print i; k++ } } }'
}

# run NAME GOMAXPROCS CMD...: runs with a 30 s limit; output in $out.
run() {
    local name=$1 procs=$2; shift 2
    out=$(GOMAXPROCS=$procs timeout 30 "$@" 2>&1)
    local rc=$?
    if [ $rc -ne 0 ]; then
        bad "$name (GOMAXPROCS=$procs) exited $rc$([ $rc = 124 ] && echo ' (timed out: hang?)')"
        echo "$out" | tail -n 15 | sed 's/^/    | /'
        return 1
    fi
    return 0
}

for procs in 1 2; do
    for n in 1 100 600; do
        if run "sieve $n" $procs "$ex/sieve" $n; then
            [ "$out" = "$(primes $n)" ] || bad "sieve $n (GOMAXPROCS=$procs): wrong primes: $(echo $out | head -c 200)"
        fi
    done
    run "sieve default" $procs "$ex/sieve" &&
        { [ "$(echo "$out" | wc -l)" = 100 ] && [ "$(echo "$out" | tail -1)" = 541 ] ||
          bad "sieve with no argument: not the first 100 primes"; }

    for args in "" "1 500" "16 20000" "64 7"; do
        run "workerpool $args" $procs "$ex/workerpool" $args &&
            { echo "$out" | tail -1 | grep -qx ok || bad "workerpool $args: $out"; }
    done
    # With N jobs there must be N results, and the totals agree.
    run "workerpool 5 3000" $procs "$ex/workerpool" 5 3000 &&
        { echo "$out" | grep -q "3000 jobs, 3000 results" || bad "workerpool 5 3000: $out"; }

    for args in "" "0" "1 1" "200000 8"; do
        run "pipeline $args" $procs "$ex/pipeline" $args &&
            { echo "$out" | tail -1 | grep -qx ok || bad "pipeline $args: $out"; }
    done
    run "pipeline 1000" $procs "$ex/pipeline" 1000 &&
        { echo "$out" | grep -q "= 333833500 " || bad "pipeline 1000: wrong sum: $out"; }

    for args in "" "300 5" "1 50"; do
        run "echo $args" $procs "$ex/echo" $args &&
            { echo "$out" | tail -1 | grep -qx ok || bad "echo $args: $out"; }
    done
    run "echo" $procs "$ex/echo" && echo "$out" | head -1

    # echo serve: a real server process; talk to it with bash's /dev/tcp.
    log=$(mktemp)
    GOMAXPROCS=$procs timeout 30 "$ex/echo" serve 0 >"$log" 2>&1 &
    srv=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^echo: serving on 127.0.0.1:\([0-9]*\)$/\1/p' "$log")
        [ -n "$port" ] && break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        bad "echo serve (GOMAXPROCS=$procs): no 'serving on' line: $(cat "$log")"
    else
        for i in 1 2 3; do
            reply=$(timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port
                printf 'hello %s from bash\n' $i >&3; head -n 1 <&3" 2>&1)
            [ "$reply" = "hello $i from bash" ] || bad "echo serve (GOMAXPROCS=$procs): got '$reply'"
        done
    fi
    kill "$srv" 2>/dev/null
    wait "$srv" 2>/dev/null
    rm -f "$log"
done

[ $fail = 0 ] && echo "examples ok: sieve, workerpool, pipeline, echo (GOMAXPROCS=1 and 2)"
exit $fail
