#!/bin/bash
# Installs the Debian packages a make target needs, if any are missing.
#   scripts/deps.sh build|test|run|bench
# As root it runs apt-get; otherwise it names what to install and stops.
set -eu
want=(gcc:gcc make:make cc:gcc)
case "${1:-build}" in
test) want+=(g++:g++ clang:clang python3:python3 sqlite3:sqlite3 gawk:gawk
             pkg-config:pkg-config gzip:gzip tar:tar chromium:chromium go:golang-go) ;;
run|bench)
      want+=(python3:python3 /usr/bin/time:time sqlite3:sqlite3 redis-server:redis-server
             redis-benchmark:redis-tools gnuplot:gnuplot-nox valgrind:valgrind) ;;
esac
missing=()
for w in "${want[@]}"; do
    cmd=${w%%:*} pkg=${w#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
# The sanitizer runtimes clang needs for the TSan flavour.
if [ "${1:-}" = test ] && ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.tsan-x86_64.a >/dev/null 2>&1 &&
   [ "$(uname -m)" = x86_64 ]; then
    missing+=(libclang-rt-14-dev)
fi
# The peer allocators bench/run.py compares with. Without root they are not
# demanded: the runner shows "not installed" in their columns.
if { [ "${1:-}" = run ] || [ "${1:-}" = bench ]; } && [ "$(id -u)" = 0 ]; then
    for w in libjemalloc.so.2:libjemalloc2 libtcmalloc_minimal.so.4:libtcmalloc-minimal4 \
             libmimalloc.so.2:libmimalloc2.0; do
        /sbin/ldconfig -p 2>/dev/null | grep -q "${w%%:*}" || missing+=("${w#*:}")
    done
fi
[ ${#missing[@]} -eq 0 ] && exit 0
readarray -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
    echo "gort: please install: ${missing[*]}  (apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "gort: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" </dev/null >/dev/null
