#!/bin/bash
# test_preload.sh — real programs under LD_PRELOAD=libgort.so.
#
# Each program runs twice, once as it is and once with gort preloaded; exit
# status, stdout and stderr must be the same byte for byte (under the preload,
# stderr may only gain gort's GODEBUG=memstats=1 report at its end).  That gort
# was really in use is checked twice over: the dynamic linker must bind the
# program's malloc to libgort.so (LD_DEBUG=bindings), and, for programs that
# keep stderr open until exit, gort's memstats report must appear.
#
#   bash tests/test_preload.sh BUILD        (BUILD holds libgort.so)
set -u -o pipefail

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
lib=$(cd "$build" 2>/dev/null && pwd)/libgort.so
if [ ! -f "$lib" ]; then
    echo "FAIL: $build/libgort.so not found (build it with make lib)"
    exit 1
fi

tmp=$(mktemp -d /tmp/gort-preload.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export LC_ALL=C TZ=UTC PYTHONHASHSEED=0
unset GODEBUG LD_PRELOAD MALLOC_CONF

# What memstats.c prints, once it is known; HeapAlloc (Go's name) in any case.
stats_words=(HeapAlloc)
if [ -f "$root/src/mem/memstats.c" ] && grep -q 'gort' "$root/src/mem/memstats.c"; then
    stats_words+=(gort)
fi

failures=0
fail() {
    echo "FAIL $*"
    failures=$((failures + 1))
}

# has_stats FILE: gort's memstats report is in FILE.
has_stats() {
    local w
    for w in "${stats_words[@]}"; do
        grep -q -- "$w" "$1" || return 1
    done
}

# bound_to_gort PROGRAM: the dynamic linker binds PROGRAM's malloc and free
# to libgort.so when it is preloaded.
bound_to_gort() {
    local prog=$1 d=$tmp/lddebug
    rm -rf "$d"; mkdir -p "$d"
    LD_PRELOAD=$lib LD_DEBUG=bindings LD_DEBUG_OUTPUT=$d/out \
        "$prog" --version </dev/null >/dev/null 2>&1
    grep -hq "to $lib .*symbol \`malloc'" "$d"/out.* 2>/dev/null &&
        grep -hq "to $lib .*symbol \`free'" "$d"/out.* 2>/dev/null
}

# compare NAME STATS PROGRAM ARGS...: runs the command plainly and under gort
# and compares.  STATS=required: the preloaded run must end with gort's
# memstats report; STATS=optional: programs that close stderr before exit
# (coreutils do) can't show it, the LD_DEBUG check has to do.
compare() {
    local f=$tmp/run.${1//[^A-Za-z0-9]/_}
    compare_in "$f" "$@"
    rm -f "$f".*  # the sort outputs are 50 MB each
}
compare_in() {
    local f=$1 name=$2 stats=$3; shift 3
    local t0=$(date +%s.%N)
    timeout 120 "$@" </dev/null >"$f.ref.out" 2>"$f.ref.err"
    local rc_ref=$?
    timeout 120 env GODEBUG=memstats=1 LD_PRELOAD="$lib" "$@" \
        </dev/null >"$f.gort.out" 2>"$f.gort.err"
    local rc_gort=$?
    local t1=$(date +%s.%N)
    local secs=$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")
    local bytes=$(wc -c <"$f.ref.out")

    if [ "$rc_gort" -eq 124 ] && [ "$rc_ref" -ne 124 ]; then
        fail "$name: still running after 120 s under gort (hang?); killed"
        return
    fi
    if [ "$rc_ref" -ne "$rc_gort" ]; then
        fail "$name: exit status $rc_ref plain, $rc_gort under gort"
        sed 's/^/    gort stderr | /' "$f.gort.err" | head -n 20
        return
    fi
    if [ "$rc_ref" -ne 0 ]; then
        fail "$name: exits $rc_ref even without gort (the test itself is broken)"
        sed 's/^/    stderr | /' "$f.ref.err" | head -n 20
        return
    fi
    if [ ! -s "$f.ref.out" ]; then
        fail "$name: no output at all (the test itself is broken)"
        return
    fi
    if ! cmp -s "$f.ref.out" "$f.gort.out"; then
        fail "$name: stdout differs under gort ($bytes bytes plain, $(wc -c <"$f.gort.out") under gort)"
        diff "$f.ref.out" "$f.gort.out" | head -n 20 | sed 's/^/    | /'
        return
    fi
    # stderr: the plain run's, then (optionally) gort's report.
    local nerr=$(wc -c <"$f.ref.err")
    if ! cmp -s "$f.ref.err" <(head -c "$nerr" "$f.gort.err"); then
        fail "$name: stderr differs under gort"
        diff "$f.ref.err" "$f.gort.err" | head -n 20 | sed 's/^/    | /'
        return
    fi
    tail -c +"$((nerr + 1))" "$f.gort.err" >"$f.extra"
    if [ -s "$f.extra" ] && ! grep -q HeapAlloc "$f.extra"; then
        fail "$name: stderr under gort has more than gort's report:"
        head -n 20 "$f.extra" | sed 's/^/    | /'
        return
    fi
    local how
    if has_stats "$f.extra"; then
        how="gort memstats seen"
    elif [ "$stats" = required ]; then
        fail "$name: no gort memstats report (${stats_words[*]}) on stderr with GODEBUG=memstats=1"
        sed 's/^/    gort stderr | /' "$f.gort.err" | tail -n 10
        return
    else
        how="no memstats shown (stderr closed early?)"
    fi
    printf "ok   %-34s %10s bytes identical, %5ss, %s\n" "$name" "$bytes" "$secs" "$how"
}

# check_bound PROGRAM...: every named program binds malloc to gort.
check_bound() {
    local p path ok=()
    for p in "$@"; do
        path=$(command -v "$p") || { fail "$p: not installed"; continue; }
        if bound_to_gort "$path"; then
            ok+=("$p")
        else
            fail "$p: malloc/free not bound to $lib under LD_PRELOAD (LD_DEBUG=bindings)"
        fi
    done
    [ ${#ok[@]} -eq 0 ] || echo "ok   malloc/free bound to libgort.so (LD_DEBUG=bindings): ${ok[*]}"
}

# ---- (a) python3 ----------------------------------------------------------
cat >"$tmp/work.py" <<'EOF'
import hashlib, json, random, threading, collections

rng = random.Random(12345)

def h(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]

# dicts, lists, strings
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 12)))
         for _ in range(50000)]
counts = collections.Counter(words)
d = {}
for i, w in enumerate(words):
    d.setdefault(w[:2], []).append(i)
big = "-".join(words)
print("words", len(words), "distinct", len(counts), "prefixes", len(d),
      "top", counts.most_common(3), "big", len(big), h(big.upper().split("-")[::7]))
lists = [[j * i for j in range(i % 50)] for i in range(20000)]
print("lists", sum(map(len, lists)), sum(map(sum, lists)))
s = "".join(str(i) for i in range(100000))
print("string", len(s), s.count("77"), h(s.replace("1", "one")[:100000]))

# json round trip
doc = {"items": [{"id": i, "name": words[i], "tags": words[i:i + 5],
                  "score": (i * 7919) % 1000 / 7.0, "ok": i % 3 == 0, "none": None}
                 for i in range(20000)],
       "meta": {"n": 20000, "nested": [[[i] * 3] for i in range(1000)]}}
text = json.dumps(doc, sort_keys=True)
back = json.loads(text)
assert back == doc
text2 = json.dumps(back, indent=1, sort_keys=True)
print("json", len(text), len(text2), h(text2))

# sorting 200k items
items = [(rng.random(), rng.randint(0, 10**9), rng.choice(words)) for _ in range(200000)]
items.sort()
by_word = sorted(items, key=lambda t: (t[2], -t[1]))
print("sort", len(items), h(items[::1000]), h(by_word[::1000]))

# a small class hierarchy
class Shape:
    def __init__(self, name): self.name = name
    def area(self): raise NotImplementedError
    def __repr__(self): return f"{type(self).__name__}({self.name}, {self.area():.3f})"
class Rect(Shape):
    def __init__(self, name, w, h): super().__init__(name); self.w, self.h = w, h
    def area(self): return self.w * self.h
class Square(Rect):
    def __init__(self, name, a): super().__init__(name, a, a)
class Circle(Shape):
    __slots__ = ("r",)
    def __init__(self, name, r): super().__init__(name); self.r = r
    def area(self): return 3.141592653589793 * self.r * self.r
shapes = []
for i in range(40000):
    k = i % 3
    shapes.append(Rect(f"r{i}", i % 17, i % 13) if k == 0 else
                  Square(f"s{i}", i % 11) if k == 1 else Circle(f"c{i}", (i % 7) / 3))
total = sum(sh.area() for sh in shapes)
print("shapes", len(shapes), f"{total:.3f}", collections.Counter(type(x).__name__ for x in shapes).most_common(), shapes[-3:])

# threading with 4 threads
results = [None] * 4
def worker(t):
    r = random.Random(t)
    acc = {}
    for i in range(40000):
        k = r.randint(0, 5000)
        acc[k] = acc.get(k, "") + chr(97 + (i % 26))
        if len(acc[k]) > 64:
            del acc[k]
    blob = json.dumps(acc, sort_keys=True)
    results[t] = (len(acc), len(blob), h(blob))
threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("threads", results)
EOF
compare "python3" required python3 "$tmp/work.py"
compare "python3 PYTHONMALLOC=malloc" required env PYTHONMALLOC=malloc python3 "$tmp/work.py"

# ---- (b) sqlite3 ----------------------------------------------------------
cat >"$tmp/work.sql" <<'EOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, grp INTEGER, name TEXT, payload BLOB);
WITH RECURSIVE seq(i, x) AS (
    SELECT 1, 12345
    UNION ALL
    SELECT i + 1, (x * 1103515245 + 12345) % 2147483648 FROM seq WHERE i < 200000
)
INSERT INTO t SELECT i, x, x % 97, 'n' || (x % 5000) || '-' || i, zeroblob(x % 200) FROM seq;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_grp_name ON t(grp, name);
CREATE TABLE g(grp INTEGER PRIMARY KEY, label TEXT);
WITH RECURSIVE s(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM s WHERE j < 96)
INSERT INTO g SELECT j, printf('group-%03d', j) FROM s;
SELECT count(*), sum(k), min(k), max(k), sum(length(payload)) FROM t;
SELECT grp, count(*), avg(k), max(name) FROM t GROUP BY grp ORDER BY count(*) DESC, grp LIMIT 10;
SELECT count(*) FROM t WHERE k BETWEEN 1000000 AND 500000000;
SELECT g.label, count(*), sum(t.k % 1000)
  FROM t JOIN g ON t.grp = g.grp
 WHERE t.name LIKE 'n1%'
 GROUP BY g.label ORDER BY g.label LIMIT 12;
SELECT a.id, b.id FROM t a JOIN t b ON a.k = b.k AND a.id < b.id ORDER BY a.id LIMIT 5;
SELECT name, k FROM t ORDER BY name DESC, id LIMIT 5;
SELECT count(DISTINCT name), group_concat(DISTINCT grp) IS NOT NULL FROM t;
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
SELECT count(*), sum(k) FROM t;
EOF
compare "sqlite3 200k rows" required sh -c "sqlite3 :memory: <'$tmp/work.sql'"

# ---- (c) sort on ~50 MB --------------------------------------------------------
awk 'BEGIN {
    srand(42);
    for (j = 0; j < 65536; j++) pool = pool sprintf("%c", 97 + int(rand() * 26));
    for (i = 0; i < 1050000; i++) {
        n = int(rand() * 1000000000);
        w = substr(pool, 1 + int(rand() * 65000), 5 + int(rand() * 30));
        v = substr(pool, 1 + int(rand() * 65000), 1 + int(rand() * 20));
        printf "%s %d %09d %s %s\n", w, n % 1000, n, v, (i % 7 == 0 ? "seven" : "x");
    }
}' >"$tmp/big.txt"
size=$(wc -c <"$tmp/big.txt")
if [ "$size" -lt 40000000 ]; then fail "sort input is only $size bytes"; fi
mkdir -p "$tmp/sorttmp"
compare "sort (~$((size / 1000000)) MB)" optional sort "$tmp/big.txt"
compare "sort --parallel=2 -S 100M" optional sort --parallel=2 -S 100M "$tmp/big.txt"
compare "sort -k2,2n -k1 -S 8M (merge)" optional sort -k2,2n -k1,1 -S 8M -T "$tmp/sorttmp" "$tmp/big.txt"

# ---- (d) C++ and common tools ------------------------------------------------
if g++ -std=gnu++17 -O2 -pthread -I"$root/include" -DGORT_TEST_DYNAMIC \
        "$here/test_cxx.cc" -o "$tmp/test_cxx" -ldl 2>"$tmp/cxx.log"; then
    # Under the preload the program itself must find gort_memstats.
    compare "test_cxx (C++ program)" required \
        sh -c "GORT_TEST_REQUIRE_GORT=\${LD_PRELOAD:+1} exec '$tmp/test_cxx'"
else
    fail "test_cxx.cc does not build without gort:"; sed 's/^/    | /' "$tmp/cxx.log"
fi
compare "ls -la /usr/lib" optional ls -la /usr/lib
compare "ls -laR /usr/include" optional ls -laR /usr/include
compare "grep -rn malloc /usr/include" optional grep -rn malloc /usr/include
compare "gzip | gunzip roundtrip" optional \
    sh -c "head -c 12000000 '$tmp/big.txt' >'$tmp/gz.in'; gzip -c '$tmp/gz.in' | gunzip -c | cksum; gzip -1c '$tmp/gz.in' | gunzip -c | cksum"
compare "tar c | tar t" optional \
    sh -c "tar -cf - -C /usr include/linux | tar -tvf - | sort; tar -cf - -C /usr include/linux | tar -xOf - | cksum"
compare "awk word count" optional \
    sh -c "awk '{c[\$2]++; s += length(\$1)} END {n = 0; for (k in c) n++; print n, s}' '$tmp/big.txt'"

check_bound python3 sqlite3 sort ls grep gzip tar awk sh

if [ "$failures" -ne 0 ]; then
    echo "test_preload: $failures FAILED"
    exit 1
fi
echo "test_preload: all programs gave the same output with and without gort"
