#!/usr/bin/env python3
"""bench/gc/run.py — gort's garbage collector against Go's and the Boehm GC.

    python3 bench/gc/run.py            # full run (make bench-gc), ~20 min:
                                       #   docs/bench/GC.md and gc.png
    python3 bench/gc/run.py --quick    # about a minute: BUILD/bench-gc/quick/

Three programs: binary-trees (the benchmarks game's, single-threaded),
Hans Boehm's GCBench and Go's gc_latency (a ring of 200,000 1 KiB messages
churned by new ones).  Each is written once in C (gc_bench.c), built twice:
against BUILD/libgort.a, and with -DUSE_BOEHM against Debian's libgc; and
once in Go (go/main.go, built with `go build`).  golang-go, libgc-dev and
gnuplot are installed with apt-get when missing and running as root.

For every benchmark and GOMAXPROCS (GC_MARKERS for Boehm: its marker
threads) the programs run alternately, gort, Go, Boehm (and for
binary-trees gort again with gort_new instead of gort_new_typed), after one
warm-up round that is not counted, --runs times each in fresh processes;
each cell is the median.  Times and pauses come from the programs; peak RSS
is the child's ru_maxrss from wait4.  The programs' check lines must agree
with each other and with the values computed here.  The table gives every
figure, the ratios gort/Go and gort/Boehm (lower is better) and the target
gort is held to.  The exit status is non-zero when a run failed, timed out
or disagreed; what was measured is written out all the same.  Python 3
standard library only.
"""
import argparse
import datetime
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GORT_MODE = "default"   # --gort-mode
ROOT = os.path.dirname(os.path.dirname(HERE))
MIB = 1024 * 1024


def row(rid, key, unit, scale=1.0, target=None, chart=None, gort="gort"):
    """A table row: key is what the programs print (or rss_kb, heap_ratio,
    added here), scaled into unit; target ("go", x): gort/Go <= x,
    ("boehm", x): gort/Boehm <= x, ("abs", x): gort's figure <= x; chart:
    "time" or "rss" puts its ratios in the chart; gort: which gort build
    fills the gort column."""
    return dict(rid=rid, key=key, unit=unit, scale=scale, target=target, chart=chart, gort=gort)


def gc_rows(prefix):
    """Every program's collector account: cycles, longest and total pause."""
    return [row(prefix + "-gcs", "num_gc", "collections"),
            row(prefix + "-pause-max", "pause_max_ns", "µs longest pause", 1e-3),
            row(prefix + "-pause-total", "pause_total_ns", "ms of pauses in all", 1e-6)]


def heap_row(prefix):
    return row(prefix + "-heap", "heap_ratio", "peak RSS / (2×live + 4 MiB)", 1, ("abs", 1.0))


# The benchmarks.  full / quick: the programs' arguments; procs: the
# GOMAXPROCS values (full, quick); untyped: binary-trees also runs gort with
# gort_new for its nodes.
BENCHES = [
    dict(id="binary-trees", title="binary-trees (benchmarks game), single-threaded",
         full=["binarytrees", "21"], quick=["binarytrees", "16"], procs=([1, 2], [1, 2]), untyped=True,
         rows=[row("binary-trees", "ms", "ms", 1, ("go", 0.8), "time"),
               row("binary-trees-rss", "rss_kb", "MiB peak RSS", 1 / 1024, ("go", 1.0), "rss"),
               heap_row("binary-trees"),
               row("binary-trees/gort_new", "ms", "ms", 1, ("go", 0.8), "time", gort="gort-untyped"),
               row("binary-trees-rss/gort_new", "rss_kb", "MiB peak RSS", 1 / 1024, ("go", 1.0), "rss",
                   gort="gort-untyped")] + gc_rows("binary-trees")),
    dict(id="gcbench", title="GCBench (Hans Boehm)",
         full=["gcbench"], quick=["gcbench"], procs=([1, 2], [1, 2]),
         rows=[row("gcbench", "ms", "ms", 1, ("boehm", 1.2), "time"),
               row("gcbench-rss", "rss_kb", "MiB peak RSS", 1 / 1024, ("boehm", 1.0), "rss"),
               heap_row("gcbench")] + gc_rows("gcbench")),
    dict(id="gc-latency", title="gc_latency: 1 KiB messages through a ring of 200,000",
         full=["latency", "200000", "2000000"], quick=["latency", "200000", "500000"], procs=([1, 2], [1, 2]),
         rows=[row("gc-latency-step-max", "step_max_ns", "µs worst step", 1e-3),
               row("gc-latency-step-p99", "step_p99_ns", "µs p99 step", 1e-3),
               row("gc-latency-pause-p50", "pause_p50_ns", "µs p50 pause", 1e-3),
               row("gc-latency-pause-p99", "pause_p99_ns", "µs p99 pause", 1e-3, ("abs", 100)),
               row("gc-latency-pause-max", "pause_max_ns", "µs longest pause", 1e-3, ("abs", 500)),
               row("gc-latency-gcs", "num_gc", "collections"),
               row("gc-latency-pause-total", "pause_total_ns", "ms of pauses in all", 1e-6),
               row("gc-latency", "ms", "ms (whole churn)", 1, None, "time"),
               row("gc-latency-rss", "rss_kb", "MiB peak RSS", 1 / 1024, None, "rss"),
               heap_row("gc-latency")]),
]

IMPL_NAMES = {"gort": "gort", "gort-untyped": "gort (gort_new)", "go": "Go", "boehm": "Boehm"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# The allocator benchmark's runner, for its apt-get, process and gnuplot helpers.
sys.path.insert(0, os.path.dirname(HERE))
import run as benchrun  # noqa: E402

APT_STATE = {}


def find_go(install):
    def look():
        for p in [shutil.which("go"), "/usr/lib/go-1.19/bin/go", "/usr/lib/go/bin/go"]:
            if p and os.access(p, os.X_OK):
                return p
        return None
    go = look()
    if go is None and install:
        benchrun.apt_install(["golang-go"], APT_STATE)
        go = look()
    return go


def find_gnuplot(install):
    return benchrun.find_tool("gnuplot", "gnuplot-nox", install, APT_STATE)


CFLAGS = ["-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes",
          "-Wmissing-prototypes", "-pthread"]


def cc_build(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.returncode == 0, r.stdout


def build(build_dir, go, install, problems):
    """Builds the three programs into BUILD/bench-gc/; returns {impl: path},
    with no entry for one that does not build (the reason goes to problems)."""
    out = os.path.join(build_dir, "bench-gc")
    os.makedirs(out, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    src = os.path.join(HERE, "gc_bench.c")
    exes = {}

    lib = os.path.join(build_dir, "libgort.a")
    cexe = os.path.join(out, "gort_gc_bench")
    if not os.path.exists(lib):
        problems.append("gort: %s is missing: run make first" % lib)
    else:
        ok, msg = cc_build([cc] + CFLAGS + ["-I" + os.path.join(ROOT, "include"), src, "-o", cexe, lib, "-lm"])
        if ok:
            exes["gort"] = exes["gort-untyped"] = cexe
        else:
            problems.append("gort: gc_bench.c does not build against %s: %s" % (lib, msg.strip()[-1500:]))

    bexe = os.path.join(out, "boehm_gc_bench")
    bcmd = [cc] + CFLAGS + ["-DUSE_BOEHM", src, "-o", bexe, "-lgc"]
    ok, msg = cc_build(bcmd)
    if not ok and install:
        benchrun.apt_install(["libgc-dev"], APT_STATE)
        ok, msg = cc_build(bcmd)
    if ok:
        exes["boehm"] = bexe
    else:
        problems.append("boehm: gc_bench.c -DUSE_BOEHM does not build (apt-get install libgc-dev): %s"
                        % msg.strip()[-1500:])

    if go:
        goexe = os.path.join(out, "gobench")
        env = dict(os.environ, GO111MODULE="on", GOFLAGS="", GOTOOLCHAIN="local", CGO_ENABLED="0")
        env.setdefault("GOCACHE", os.path.join(os.path.abspath(out), "go-cache"))
        env.setdefault("GOPATH", os.path.join(os.path.abspath(out), "gopath"))
        r = subprocess.run([go, "build", "-o", os.path.abspath(goexe), "."], cwd=os.path.join(HERE, "go"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        if r.returncode:
            problems.append("go: the Go program does not build: %s" % r.stdout.strip()[-1500:])
        else:
            exes["go"] = goexe
    else:
        problems.append("go: no Go toolchain (apt-get install golang-go)")
    return exes


def expected_checks(cmd):
    """The check lines every program must print for these arguments."""
    if cmd[0] == "binarytrees":
        n = max(int(cmd[1]), 6)
        want = {"check_stretch": (2 << (n + 1)) - 1, "check_longlived": (2 << n) - 1}
        for d in range(4, n + 1, 2):
            want["check_depth%d" % d] = (1 << (n - d + 4)) * ((2 << d) - 1)
        return want
    if cmd[0] == "gcbench":
        return {"check_longlived": (2 << 16) - 1, "check_array": 1}
    if cmd[0] == "latency":
        window, count = int(cmd[1]), int(cmd[2])
        # Slot k holds the last message numbered k mod window, filled with
        # its number's low byte (count >= window: every slot is filled).
        total = sum((k + window * ((count - 1 - k) // window)) & 0xff for k in range(window))
        return {"check_ring": total}
    return {}


def run_once(impl, exe, cmd, procs, timeout):
    """Runs one benchmark process; returns ({key: float}, error or None)."""
    args = list(cmd) + (["untyped"] if impl == "gort-untyped" else [])
    env = dict(os.environ, GOMAXPROCS=str(procs), GC_MARKERS=str(procs), GOGC="100")
    if impl.startswith("gort") and GORT_MODE != "default":
        # By default the programs' first gort_store selects concurrent
        # marking; the other modes force one.
        env["GODEBUG"] = "gcconcurrent=%d" % (GORT_MODE == "concurrent")
    code, secs, maxrss, out, err = benchrun.run_proc([exe] + args, env, timeout)
    text = out + err
    vals = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) == 2:
            try:
                vals[p[0]] = float(p[1])
            except ValueError:
                pass
    if maxrss:
        vals["rss_kb"] = float(maxrss)
        if vals.get("live_bytes"):
            vals["heap_ratio"] = maxrss * 1024.0 / (2 * vals["live_bytes"] + 4 * MIB)
    if code is None:
        return vals, "timed out after %d s: %s" % (timeout, text.strip()[-300:])
    if code:
        why = "exit status %d" % code if code > 0 else "killed by signal %d" % -code
        return vals, "%s: %s" % (why, text.strip()[-600:])
    want = expected_checks(cmd)
    bad = ["%s = %s, want %d" % (k, "%d" % vals[k] if k in vals else "missing", v)
           for k, v in want.items() if vals.get(k) != v]
    if bad:
        return vals, "wrong result: " + "; ".join(bad)
    return vals, None


def pkg_version(pkg):
    return benchrun.sh(["dpkg-query", "-W", "-f", "${Version}", pkg]).strip()


def target_text(t):
    if t is None:
        return "—"
    kind, x = t
    return {"abs": "≤ %g", "go": "≤ %g× Go", "boehm": "≤ %g× Boehm"}[kind] % x


def target_met(t, r):
    if t is None or r["gort"] is None:
        return ""
    kind, x = t
    v = r["gort"] if kind == "abs" else r["r_go"] if kind == "go" else r["r_boehm"]
    if v is None:
        return "?"
    return "yes" if v <= x else "no"


def chart(path, rows, gnuplot, tmp):
    """Bars of gort/Go and gort/Boehm for time and peak RSS, per benchmark
    and GOMAXPROCS, log scale."""
    cats, data = [], {}
    for r in rows:
        if not r["chart"]:
            continue
        name = r["rid"].replace("-rss", "") + " P%d" % r["procs"]
        if name not in data:
            cats.append(name)
            data[name] = {}
        data[name][r["chart"] + "/go"] = r["r_go"]
        data[name][r["chart"] + "/boehm"] = r["r_boehm"]
    series = ["time/go", "time/boehm", "rss/go", "rss/boehm"]
    present = [v for d in data.values() for v in d.values() if v]
    if not present or not gnuplot:
        return False
    dat = os.path.join(tmp, "gc.dat")
    with open(dat, "w") as f:
        f.write("# benchmark %s\n" % " ".join(series))
        for c in cats:
            f.write('"%s" %s\n' % (c, " ".join("%.4f" % data[c][s] if data[c].get(s) else "NaN"
                                               for s in series)))
    lo = 2.0 ** math.floor(math.log2(min(present + [1.0]) / 1.2))
    hi = 2.0 ** math.ceil(math.log2(max(present + [1.0]) * 1.2))
    script = """
set terminal pngcairo size 1200,550 font ',11'
set output '%s'
set title "gort / Go and gort / Boehm: time and peak RSS (lower is better: below the dashed line gort wins)"
set ylabel "ratio (log scale)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set key outside top center horizontal noenhanced width 4
set termoption noenhanced
set grid ytics
set xtics rotate by -30 nomirror
set datafile missing 'NaN'
set logscale y 2
set yrange [%g:%g]
set xrange [-0.6:%g]
set arrow from graph 0, first 1 to graph 1, first 1 nohead lc rgb 'black' dt 2
plot '%s' using 2:xtic(1) title 'time gort/Go' lc rgb '#d62728', \\
     '' using 3 title 'time gort/Boehm' lc rgb '#ff9896', \\
     '' using 4 title 'RSS gort/Go' lc rgb '#1f77b4', \\
     '' using 5 title 'RSS gort/Boehm' lc rgb '#aec7e8'
""" % (path, lo, hi, len(cats) - 0.4, dat)
    return benchrun.run_gnuplot(gnuplot, script, os.path.join(tmp, "gc.gp"), "bench-gc")


def ratio_text(x):
    return "%.2f" % x if x is not None else "—"


def row_cells(r):
    return [r["rid"], str(r["procs"]), r["unit"], r["gort_text"], r["go_text"], r["boehm_text"],
            ratio_text(r["r_go"]), ratio_text(r["r_boehm"]), target_text(r["target"]), r["met"]]


COLS = ["benchmark", "GOMAXPROCS", "unit", "gort", "Go", "Boehm", "gort/Go", "gort/Boehm", "target", "met"]


def table(rows):
    out = ["| " + " | ".join(COLS) + " |", "|" + "---|" * len(COLS)]
    out += ["| " + " | ".join(row_cells(r)) + " |" for r in rows]
    return "\n".join(out) + "\n"


def text_table(rows):
    cols = ["benchmark", "P"] + COLS[2:]
    data = [row_cells(r) for r in rows]
    w = [max(len(c), *(len(d[i]) for d in data)) if data else len(c) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w[i]) for i, c in enumerate(cols))]
    out += ["  ".join(d[i].ljust(w[i]) for i in range(len(cols))) for d in data]
    return "\n".join(out)


def measure(b, cmd, procs, impls, runs, timeout, problems, hung):
    """The warm-up round, then runs rounds of every implementation in turn;
    returns ({impl: [vals of each good counted run]}, {impl: failures}).
    An implementation that failed twice in a cell is not run again there,
    and one that timed out (in hung) is not run again at all."""
    vals = {name: [] for name, _ in impls}
    fails = {name: 0 for name, _ in impls}
    for i in range(runs + 1):
        for name, exe in impls:
            if name in hung:
                fails[name] = max(fails[name], 1)
                continue
            if fails[name] >= 2:
                continue
            v, err = run_once(name, exe, cmd, procs, timeout)
            if err:
                fails[name] += 1
                if err.startswith("timed out"):
                    hung.add(name)
                    err += " (not run again)"
                problems.append("%s GOMAXPROCS=%d %s %s: `%s %s`: %s" % (
                    b["id"], procs, name, "warm-up" if i == 0 else "run %d" % i, os.path.basename(exe),
                    " ".join(cmd + (["untyped"] if name == "gort-untyped" else [])), err))
                log("bench-gc: " + problems[-1])
                continue
            if i > 0:
                vals[name].append(v)
    return vals, fails


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="the build directory holding libgort.a (default build)")
    ap.add_argument("--quick", action="store_true", help="smaller counts, 3 runs: about a minute")
    ap.add_argument("--runs", type=int, help="counted runs of each program per cell (default 5, quick 3)")
    ap.add_argument("--only", help="comma-separated benchmark ids (%s)" % ",".join(b["id"] for b in BENCHES))
    ap.add_argument("--out", help="where GC.md and gc.png go (default docs/bench, quick: BUILD/bench-gc/quick)")
    ap.add_argument("--timeout", type=int, help="seconds per process (default 300, quick 60)")
    ap.add_argument("--no-install", action="store_true",
                    help="never apt-get install golang-go, libgc-dev or gnuplot")
    ap.add_argument("--via", default="", help="the make target that started this, for the report")
    ap.add_argument("--gort-mode", choices=("default", "concurrent", "stw"), default="default",
                    help="how gort marks: as it chooses (default: concurrently, since the programs "
                         "use gort_store), concurrently (GODEBUG=gcconcurrent=1) or with the world "
                         "stopped (GODEBUG=gcconcurrent=0)")
    args = ap.parse_args()
    global GORT_MODE
    GORT_MODE = args.gort_mode

    os.chdir(ROOT)
    runs = args.runs or (3 if args.quick else 5)
    out = args.out or (os.path.join(args.build, "bench-gc", "quick") if args.quick
                       else os.path.join("docs", "bench"))
    benches = BENCHES
    if args.only:
        want = set(args.only.split(","))
        benches = [b for b in BENCHES if b["id"] in want]
    install = not args.no_install
    problems = []
    go = find_go(install)
    gnuplot = find_gnuplot(install)
    goversion = subprocess.run([go, "version"], stdout=subprocess.PIPE, text=True).stdout.strip() if go else ""
    exes = build(args.build, go, install, problems)
    # ru_maxrss through bench/run.py's small launcher: a child forked from
    # this Python process would count the runner's pages as its own.
    benchrun.MAXRSS_EXE = benchrun.build_maxrss(args.build)
    if not benchrun.MAXRSS_EXE:
        problems.append("the RSS launcher does not build: peak RSS would include the runner's")
    for p in problems:
        log("bench-gc: " + p)
    gcversion = pkg_version("libgc-dev") if "boehm" in exes else ""

    t_start = time.monotonic()
    load_start = benchrun.loadavg()
    log("bench-gc: %s mode, %d runs each after a warm-up, alternating %s" % (
        "quick" if args.quick else "full", runs, ", ".join(IMPL_NAMES[n] for n in IMPL_NAMES if n in exes)))
    rows, raw, notes = [], [], {}
    hung = set()
    timeout = args.timeout or (60 if args.quick else 300)
    for b in benches:
        cmd = b["quick"] if args.quick else b["full"]
        procs_list = b["procs"][1] if args.quick else b["procs"][0]
        impls = [(n, exes[n]) for n in ("gort", "gort-untyped", "go", "boehm")
                 if n in exes and (n != "gort-untyped" or b.get("untyped"))]
        for procs in procs_list:
            vals, fails = measure(b, cmd, procs, impls, runs, timeout, problems, hung)
            meds = {}
            for r in b["rows"]:
                med = {}
                for name, _ in impls:
                    xs = [v[r["key"]] * r["scale"] for v in vals[name] if r["key"] in v]
                    med[name] = statistics.median(xs) if xs else None
                    if name == r["gort"]:
                        raw.append((r["rid"], procs, "gort", xs))
                    elif name in ("go", "boehm") and r["gort"] == "gort":
                        raw.append((r["rid"], procs, name, xs))   # once, under the typed row
                g, o, bo = med.get(r["gort"]), med.get("go"), med.get("boehm")
                res = dict(r, procs=procs, gort=g, go=o, boehm=bo, bench=b["id"], cmd=cmd,
                           r_go=g / o if g is not None and o else None,
                           r_boehm=g / bo if g is not None and bo else None)

                def text(name, v):
                    if v is not None:
                        return benchrun.fmt_figure(v)
                    return "FAILED" if fails.get(name) or name in exes else "not built"
                res["gort_text"] = text(r["gort"], g)
                res["go_text"] = text("go", o)
                res["boehm_text"] = text("boehm", bo)
                nf = fails.get(r["gort"], 0)
                res["met"] = target_met(r["target"], res) if not nf else \
                    "no (%d failed)" % nf if r["target"] else ""
                if r["target"] and r["gort"] not in exes:
                    res["met"] = "no (not built)"
                rows.append(res)
                meds[r["rid"]] = res
            live = [v["live_bytes"] for vs in vals.values() for v in vs if "live_bytes" in v]
            markers = sorted({int(v["markers"]) for v in vals.get("boehm", []) if "markers" in v})
            notes[(b["id"], procs)] = dict(live=live[0] if live else None, markers=markers)
            log("bench-gc: %-12s GOMAXPROCS=%d  %s" % (b["id"], procs, "  ".join(
                "%s: gort %s Go %s Boehm %s" % (rid, r["gort_text"], r["go_text"], r["boehm_text"])
                for rid, r in meds.items() if r["chart"] == "time")))
    elapsed = time.monotonic() - t_start

    print(text_table(rows))
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="gort-bench-gc-")
    png = os.path.join(out, "gc.png")
    have_chart = chart(png, rows, gnuplot, tmp)
    shutil.rmtree(tmp, ignore_errors=True)

    command = " ".join(shlex.quote(a) for a in ["python3", "bench/gc/run.py"] + sys.argv[1:])
    md = []
    md.append("# Collector benchmarks: gort against Go and the Boehm GC\n")
    md.append("Written by `bench/gc/run.py`%s. Each benchmark is one C program (`bench/gc/gc_bench.c`) "
              "built against gort's collector and, with `-DUSE_BOEHM`, against the Boehm GC, and the same "
              "program in Go (`bench/gc/go/main.go`). After one warm-up round that is not counted, they run "
              "alternately, gort, Go, Boehm, %d times each in fresh processes, and each cell is the median. "
              "Every figure is a time, a size or a count, so **lower is better**, and a ratio below 1 means "
              "gort is faster or smaller.\n" % (" (`%s`)" % args.via if args.via else "", runs))
    md.append("- Date: %s" % datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    md.append("- Machine: %s" % benchrun.machine_line())
    md.append("- Go: %s" % (goversion or "not installed"))
    md.append("- Boehm GC: %s" % ("Debian libgc-dev %s" % gcversion if gcversion else
                                  "built" if "boehm" in exes else "not built"))
    md.append("- Command: `%s`%s" % (command, " (via `%s`)" % args.via if args.via else ""))
    md.append("- Mode: %s, %.0f s of benchmarking" % ("quick (smaller counts)" if args.quick else "full", elapsed))
    md.append("- Environment of every run: GOMAXPROCS=P, GC_MARKERS=P (Boehm's marker threads), GOGC=100")
    md.append("- gort's marking: %s" % {
        "default": "gort's default: concurrent, selected by the programs' use of gort_store",
        "concurrent": "concurrent (GODEBUG=gcconcurrent=1)",
        "stw": "stop-the-world (GODEBUG=gcconcurrent=0)"}[GORT_MODE])
    md.append("- Load average (1, 5, 15 min) before: %s, after: %s (other work on the machine makes the "
              "figures noisier; see every run below)\n" % (load_start, benchrun.loadavg()))
    md.append(table(rows))
    if have_chart:
        md.append("![gort/Go and gort/Boehm, time and peak RSS](gc.png)\n")
    md.append("## What each row measures\n")
    for b in benches:
        cmd = b["quick"] if args.quick else b["full"]
        seen = [(p, n) for (i, p), n in notes.items() if i == b["id"]]
        lives = ", ".join("%.1f MiB" % (n["live"] / MIB) for p, n in seen[:1] if n["live"])
        md.append("- **%s**: %s (`gc_bench %s`); live data at most %s, so the heap target is %s." % (
            b["id"], b["title"], " ".join(cmd), lives or "?",
            "≤ %.1f MiB" % ((2 * seen[0][1]["live"] + 4 * MIB) / MIB) if seen and seen[0][1]["live"] else "?"))
    md.append("""
Details. *binary-trees* is the benchmarks game's program without its
goroutines: a stretch tree of depth N+1, a long-lived tree of depth N,
then for depths 4, 6, ..., N, 2^(N-d+4) trees of depth d built bottom-up
and walked; every node is two pointers (16 bytes). gort's nodes come from
`gort_new_typed` with a pointer map of the two fields; the
*/gort_new* rows are the same program with `gort_new` (every word scanned).
Go uses `&Node{}`, Boehm `GC_MALLOC`. Its live data is the long-lived tree
and one tree of depth N (the stretch tree is as big and comes alone).
*gcbench* is Hans Boehm's GCBench: a stretch tree of depth 18, a long-lived
tree of depth 16 and an array of 500,000 doubles, then for depths 4..16
step 2 as many trees built top-down and bottom-up as make twice the stretch
tree's nodes; nodes are two pointers and two ints (24 bytes).
*gc-latency* is Go's gc_latency: a table of 200,000 message pointers (itself
a collected object, stores through `gort_store` in gort), and 1 KiB
pointer-free messages (`gort_new_noscan`, `GC_MALLOC_ATOMIC`, `new([1024]byte)`)
filled with a byte and put in the ring in turn, each creation step timed
with the monotonic clock (the C programs fill with memset, Go with its
byte loop, as Go's gc_latency does). Its live data is the ring's messages,
the table and the step times (kept in the collected heap by all three).

The collector rows: *collections* is the number of cycles; pauses are
stop-the-world times (gort: `gort_memstats` pause_ns, Go: MemStats.PauseNs,
each one cycle's total; both keep the last 256, the longest is over those;
Boehm: timed by the program from its collection events, stop-world to
start-world; the whole collection, which the single mutator thread also
waits for, is printed as collection_* by the program). *peak RSS / (2×live
+ 4 MiB)* holds the collector to Go's pacing promise at GOGC=100 with the
process's whole peak RSS (ru_maxrss from wait4), runtime and program text
included. Boehm's GC_MALLOC adds a byte to each request (interior
pointers are on by default), so its 16- and 24-byte nodes take 32 bytes.
Boehm's parallel marking: Debian's libgc has it compiled in but starts its
marker threads only with a second thread; the program asks for them
(GC_start_mark_threads), GC_MARKERS of them.
""")
    mk = ["GOMAXPROCS=%d: %s" % (p, ",".join(map(str, n["markers"])) or "?")
          for (i, p), n in sorted(notes.items()) if n["markers"] and i == benches[0]["id"]]
    if mk:
        md.append("Boehm marker threads seen (%s): %s.\n" % (benches[0]["id"], "; ".join(mk)))
    md.append("## Every run\n")
    md.append("Per row and GOMAXPROCS, each implementation's figures in run order.\n")
    md.append("| row | P | gort | Go | Boehm |\n|---|---|---|---|---|")
    byk = {}
    for rid, procs, name, xs in raw:
        byk.setdefault((rid, procs), {})[name] = xs
    for (rid, procs), d in byk.items():
        cells = [" ".join(benchrun.fmt_figure(x) for x in d.get(impl, []))
                 for impl in ("gort", "go", "boehm")]
        md.append("| %s | %d | %s | %s | %s |" % (rid, procs, *cells))
    md.append("")
    if problems:
        md.append("## Problems\n")
        md += ["- " + p.replace("\n", " ") for p in problems]
        md.append("")
    path = os.path.join(out, "GC.md")
    with open(path, "w") as f:
        f.write("\n".join(md))
    log("bench-gc: wrote %s%s (%.0f s)" % (path, " and " + png if have_chart else "", elapsed))
    if problems:
        log("bench-gc: %d problem(s)" % len(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
