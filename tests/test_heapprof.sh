#!/bin/bash
# test_heapprof.sh — a heap profile read back by Go's own pprof.
#
# A plain C program with two allocation sites (site_a allocates three times
# the bytes of site_b, and frees none) runs with GORT_HEAPPROFILE set, once
# under LD_PRELOAD=libgort.so and once linked with libgort.a.  `go tool
# pprof -top prog heap.pb.gz` must name both sites, with a 3:1 ratio in
# alloc_space and in inuse_space (the default), and none of gort's own frames.
# Go comes from golang-go (installed as root when missing, as
# bench/sched/run.py does); without it and without root the test fails.
#
#   bash tests/test_heapprof.sh BUILD
set -u -o pipefail

build=${1:-build}
lib=$(cd "$build" 2>/dev/null && pwd)/libgort.so
archive=$(cd "$build" 2>/dev/null && pwd)/libgort.a
if [ ! -f "$lib" ] || [ ! -f "$archive" ]; then
    echo "FAIL: $build/libgort.so or libgort.a not found (make lib)"
    exit 1
fi

find_go() {
    for g in "$(command -v go 2>/dev/null)" /usr/lib/go-1.19/bin/go /usr/lib/go/bin/go; do
        [ -n "$g" ] && [ -x "$g" ] && { echo "$g"; return 0; }
    done
    return 1
}
go=$(find_go)
if [ -z "$go" ] && [ "$(id -u)" = 0 ]; then
    echo "installing golang-go"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-go \
        </dev/null >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-go \
              </dev/null >/dev/null 2>&1; }
    go=$(find_go)
fi
if [ -z "$go" ]; then
    echo "FAIL: no Go toolchain to read the profile with (apt-get install golang-go)"
    exit 1
fi

tmp=$(mktemp -d /tmp/gort-heapprof.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export HOME=$tmp PPROF_TMPDIR=$tmp GOCACHE=$tmp/gocache GOTOOLCHAIN=local
unset GODEBUG LD_PRELOAD GORT_HEAPPROFILE_INTERVAL

cat >"$tmp/prog.c" <<'EOF'
#include <stdlib.h>
#include <string.h>
static void *volatile keep;
/* Each site keeps its blocks (in-use) and writes them (so they are real). */
__attribute__((noinline)) static void site_a(void)
{
    for (int i = 0; i < 30000; i++) {
        char *p = malloc(1000);
        memset(p, 1, 8);
        keep = p;
    }
}
__attribute__((noinline)) void site_b(void)
{
    for (int i = 0; i < 10000; i++) {
        char *p = malloc(1000);
        memset(p, 2, 8);
        keep = p;
    }
}
int main(void)
{
    site_a();
    site_b();
    return 0;
}
EOF

failures=0
fail() {
    echo "FAIL $*"
    failures=$((failures + 1))
}

# flat BYTES of function $2 in pprof's -top output $1 (units B, kB, MB, GB).
flat_of() {
    awk -v fn="$2" '$NF == fn {
        v = $1; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v);
        m = 1; if (u == "kB") m = 1e3; else if (u == "MB") m = 1e6; else if (u == "GB") m = 1e9;
        printf "%.0f\n", v * m; exit }' "$1"
}

check_top() {   # how, sample index
    local how=$1 idx=$2 out=$tmp/top-$1-$2.txt
    if ! "$go" tool pprof -top -sample_index="$idx" "$tmp/prog-$how" "$tmp/heap-$how.pb.gz" \
            >"$out" 2>&1; then
        fail "$how: go tool pprof failed:"; sed 's/^/    /' "$out"; return
    fi
    local a b
    a=$(flat_of "$out" site_a) b=$(flat_of "$out" site_b)
    if [ -z "$a" ] || [ -z "$b" ] || [ "$b" = 0 ]; then
        fail "$how $idx: site_a / site_b not both in pprof -top:"; sed 's/^/    /' "$out"; return
    fi
    # 40 MB at 8 KiB per sample: ~4900 samples, ratio sd ~3%; allow 2.4..3.75.
    if ! awk -v a="$a" -v b="$b" 'BEGIN { r = a / b; exit !(r > 2.4 && r < 3.75) }'; then
        fail "$how $idx: site_a/site_b = $a/$b, want about 3"; sed 's/^/    /' "$out"
    fi
    if grep -Eq ' (gort_[a-z_]*|malloc|malloc_[a-z_]*|mprof_[a-z_]*)$' "$out"; then
        fail "$how $idx: gort's own frames in the profile:"; sed 's/^/    /' "$out"
    fi
    echo "$how $idx: site_a $a, site_b $b"
}

# Under LD_PRELOAD: a program that knows nothing of gort.
cc -O2 -g -o "$tmp/prog-preload" "$tmp/prog.c" || { echo "FAIL: cc"; exit 1; }
# Linked with libgort.a: gort's frames are in the program itself.
cc -O2 -g -o "$tmp/prog-static" "$tmp/prog.c" "$archive" -pthread -lm || { echo "FAIL: cc"; exit 1; }

GODEBUG=memprofilerate=8192 GORT_HEAPPROFILE=$tmp/heap-preload.pb.gz \
    LD_PRELOAD=$lib "$tmp/prog-preload" || fail "prog-preload exited $?"
GODEBUG=memprofilerate=8192 GORT_HEAPPROFILE=$tmp/heap-static.pb.gz \
    "$tmp/prog-static" || fail "prog-static exited $?"

for how in preload static; do
    if [ ! -s "$tmp/heap-$how.pb.gz" ]; then
        fail "$how: no profile written at exit"
        continue
    fi
    gzip -t "$tmp/heap-$how.pb.gz" || fail "$how: not a valid gzip file"
    check_top "$how" alloc_space
    check_top "$how" inuse_space
done

# The default sample type is inuse_space, as in Go's heap profiles.
"$go" tool pprof -top "$tmp/prog-preload" "$tmp/heap-preload.pb.gz" 2>&1 |
    grep -q '^Type: inuse_space' || fail "default sample type is not inuse_space"

if [ $failures -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "ok"
