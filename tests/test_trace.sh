#!/bin/bash
# The execution trace end to end: the scripted program's trace (test_trace)
# and a GODEBUG=trace=FILE run of an example parse as JSON; the HTML
# timeline tools/gort-trace-html makes of the first renders in headless
# Chromium, and the screenshot is not blank (checked pixel by pixel).
# Chromium is installed with apt-get when missing and run as root; without
# it the test fails, it does not skip.
#   tests/test_trace.sh BUILD
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/gort_trace_sh.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_trace.sh: FAIL: $*" >&2; exit 1; }

[ -x "$build/tests/test_trace" ] || make --no-print-directory "$build/tests/test_trace" >/dev/null
[ -x "$build/examples/pipeline" ] || make --no-print-directory "$build/examples/pipeline" >/dev/null

# 1. The scripted program's trace, kept, valid JSON.
GORT_TRACE_TEST_OUT=$tmp/script.json "$build/tests/test_trace" || fail "test_trace"
python3 -m json.tool "$tmp/script.json" >/dev/null || fail "script.json is not JSON"

# 2. GODEBUG=trace=FILE on an example: a whole trace at exit, with goroutines.
GODEBUG=trace=$tmp/pipeline.json "$build/examples/pipeline" >/dev/null || fail "pipeline"
python3 - "$tmp/pipeline.json" <<'EOF' || fail "pipeline.json"
import json, sys
evs = json.load(open(sys.argv[1]))["traceEvents"]
names = {e["name"] for e in evs}
for want in ("GoCreate", "GoStart", "GoEnd", "GoBlock", "GoUnblock", "HeapAlloc", "thread_name"):
    assert want in names, "no %s event" % want
assert any(e["ph"] == "X" and e["name"].startswith("G") for e in evs), "no running slice"
print("pipeline.json: %d events, %d goroutines" % (len(evs),
      len({e["args"]["g"] for e in evs if e["ph"] == "i" and "g" in e.get("args", {})})))
EOF

# 3. The HTML timeline, rendered by headless Chromium.
tools/gort-trace-html "$tmp/script.json" -o "$tmp/script.html" || fail "gort-trace-html"
grep -q "<canvas" "$tmp/script.html" || fail "no canvas in the page"
! grep -qE '(src|href)="https?:' "$tmp/script.html" || fail "the page loads something from the network"
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$chrome" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test_trace.sh: installing chromium"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
        </dev/null >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
        </dev/null >/dev/null 2>&1; } || true
    chrome=$(command -v chromium || true)
fi
[ -n "$chrome" ] || fail "no Chromium to render the timeline with (apt-get install chromium)"
timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$tmp/profile" --window-size=1400,700 \
    --screenshot="$tmp/shot.png" "file://$tmp/script.html" >"$tmp/chrome.log" 2>&1 ||
    { tail -5 "$tmp/chrome.log" >&2; fail "chromium did not run"; }
[ -s "$tmp/shot.png" ] || fail "no screenshot"
python3 - "$tmp/shot.png" <<'EOF' || fail "the screenshot is blank"
# A PNG decoder just big enough for Chromium's screenshots (8-bit RGB/RGBA).
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
assert depth == 8 and ctype in (2, 6), "unexpected PNG format %d/%d" % (depth, ctype)
bpp = 3 if ctype == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
prev, rows, i = bytearray(stride), [], 0
for y in range(h):
    f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
    i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line))
    prev = line
colours, counts = set(), {}
for line in rows:
    for x in range(0, stride, bpp):
        px = line[x:x + 3]
        counts[px] = counts.get(px, 0) + 1
bg = max(counts, key=counts.get)
other = sum(counts.values()) - counts[bg]
# The page has a dark header, lanes, green/red/grey goroutine states and a
# blue heap graph: many colours and a good share of non-background pixels.
def has(pred): return any(pred(*p) for p in counts)
print("screenshot %dx%d: %d colours, %.1f%% not background" % (w, h, len(counts), 100.0 * other / (w * h)))
assert len(counts) >= 16, "only %d colours" % len(counts)
assert other >= 0.05 * w * h, "almost all background"
assert has(lambda r, g, b: g > 120 and r < 100 and b < 100), "no green (running) pixels"
assert has(lambda r, g, b: r > 200 and g < 90 and b < 90), "no red (syscall) pixels"
assert has(lambda r, g, b: b > 200 and r < 60), "no blue (heap) pixels"
EOF
echo "test_trace.sh: ok"
