#!/usr/bin/env python3
"""bench/sched/run.py — gort's goroutine scheduler against Go's.

    python3 bench/sched/run.py            # full run (make bench-sched), ~3 min:
                                          #   docs/bench/SCHED.md and sched.png
    python3 bench/sched/run.py --quick    # under a minute: BUILD/bench-sched/quick/

Each benchmark is one C program on gort (gort_bench.c) and the same program
in Go (go/main.go), built here: the C one with cc -O2 against BUILD/libgort.a,
the Go one with `go build` (golang-go is installed with apt-get when missing
and running as root).  For every benchmark and GOMAXPROCS the two run
alternately, gort then Go, --runs times each in fresh processes, and each
cell is the median.  The table gives gort, Go, the ratio gort/Go (every
figure is a time or a size: lower is better) and the target gort is held to.
The exit status is non-zero when a run failed or timed out; what was
measured is written out all the same.  Python 3 standard library only.
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
ROOT = os.path.dirname(os.path.dirname(HERE))

# The benchmarks.  cmd: arguments for both programs (full, quick); procs: the
# GOMAXPROCS values it runs at (full, quick); rows: (row id, key printed by
# the programs, unit, scale applied to the printed figure, target).
# A target is ("abs", x): gort's figure <= x, or ("ratio", x): gort/Go <= x.
BENCHES = [
    dict(id="yield", title="Gosched switch, 2 goroutines yielding",
         full=["yield", "1000000"], quick=["yield", "200000"], procs=([1], [1]),
         rows=[("yield", "ns_per_op", "ns/switch", 1, ("abs", 30))]),
    dict(id="pingpong", title="unbuffered channel ping-pong",
         full=["pingpong", "500000"], quick=["pingpong", "100000"], procs=([1, 2], [1, 2]),
         rows=[("pingpong", "ns_per_op", "ns one way", 1, ("abs", 60))]),
    dict(id="chanbuf", title="buffered channel (cap 128), producer -> consumer",
         full=["chanbuf", "2000000"], quick=["chanbuf", "500000"], procs=([1, 2], [1, 2]),
         rows=[("chanbuf", "ns_per_op", "ns send+recv", 1, None)]),
    dict(id="spawn", title="spawn + join, one at a time",
         full=["spawn", "1000000"], quick=["spawn", "200000"], procs=([1, 2], [1, 2]),
         rows=[("spawn", "ns_per_op", "ns each", 1, ("abs", 150))]),
    dict(id="burst", title="spawn a burst, then WaitGroup.Wait",
         full=["burst", "1000000"], quick=["burst", "200000"], procs=([1, 2], [1, 2]),
         rows=[("burst", "ns_per_op", "ns per goroutine", 1, ("abs", 500))]),
    dict(id="skynet", title="skynet, 1,111,111 goroutines",
         full=["skynet"], quick=["skynet"], procs=([1, 2], [1, 2]), check=("result", 499999500000),
         rows=[("skynet", "ms", "ms", 1, ("ratio", 0.5)),
               ("skynet-rss", "peak_rss_kb", "MiB peak RSS", 1 / 1024, ("ratio", 1.0))]),
    dict(id="sleep", title="Sleep(50 us): median actual",
         full=["sleep", "1000", "50"], quick=["sleep", "200", "50"], procs=([1, 2], [1]),
         rows=[("sleep", "us", "us", 1, ("abs", 100))]),
    dict(id="handoff", title="P hand-off after a blocking syscall (20 ms)",
         full=["handoff", "30"], quick=["handoff", "10"], procs=([1], [1]),
         rows=[("handoff", "us", "us (median)", 1, ("abs", 100))]),
    dict(id="parked", title="memory per parked goroutine (100k parked)",
         full=["parked", "100000"], quick=["parked", "100000"], procs=([1], [1]),
         rows=[("parked", "kb", "KiB per goroutine", 1, ("abs", 4.5))]),
    dict(id="parked1m", title="1M goroutines parked at once",
         full=["parked", "1000000"], quick=None, procs=([1], []),
         rows=[("parked1m", "kb", "KiB per goroutine", 1, ("abs", 4.5)),
               ("parked1m-start", "start_ms", "ms to start them", 1, None)]),
]

# Shown in the report: which counts each benchmark used.
COUNTS_NOTE = {
    "yield": "N switches: 2 x {1} yields",
    "pingpong": "{1} round trips",
    "chanbuf": "{1} values",
    "spawn": "{1} goroutines",
    "burst": "{1} goroutines at once",
    "skynet": "1M leaves, 10 children per node",
    "sleep": "{1} sleeps of {2} us",
    "handoff": "{1} hand-offs",
    "parked": "{1} goroutines",
    "parked1m": "{1} goroutines",
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# The allocator benchmark's runner, for its apt-get and gnuplot helpers.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def build(build_dir, go):
    """Builds gort_bench and gobench into BUILD/bench-sched/; returns their paths."""
    out = os.path.join(build_dir, "bench-sched")
    os.makedirs(out, exist_ok=True)
    lib = os.path.join(build_dir, "libgort.a")
    if not os.path.exists(lib):
        sys.exit("bench-sched: %s is missing: run make first" % lib)
    cexe = os.path.join(out, "gort_bench")
    cc = os.environ.get("CC", "cc")
    cmd = [cc, "-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pthread",
           "-I" + os.path.join(ROOT, "include"), os.path.join(HERE, "gort_bench.c"),
           "-o", cexe, lib, "-lm"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        sys.exit("bench-sched: gort_bench does not build:\n%s" % r.stdout)
    goexe = None
    if go:
        goexe = os.path.join(out, "gobench")
        env = dict(os.environ, GO111MODULE="on", GOFLAGS="", GOTOOLCHAIN="local", CGO_ENABLED="0")
        env.setdefault("GOCACHE", os.path.join(os.path.abspath(out), "go-cache"))
        env.setdefault("GOPATH", os.path.join(os.path.abspath(out), "gopath"))
        r = subprocess.run([go, "build", "-o", os.path.abspath(goexe), "."], cwd=os.path.join(HERE, "go"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        if r.returncode:
            log("bench-sched: the Go program does not build:\n%s" % r.stdout)
            goexe = None
    return cexe, goexe


def run_once(exe, args, procs, timeout):
    """Runs one benchmark process; returns ({key: float}, error or None)."""
    env = dict(os.environ, GOMAXPROCS=str(procs))
    try:
        r = subprocess.run([exe] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {}, "timed out after %d s" % timeout
    vals = {}
    for line in r.stdout.splitlines():
        p = line.split()
        if len(p) == 2:
            try:
                vals[p[0]] = float(p[1])
            except ValueError:
                pass
    if r.returncode:
        why = "exit status %d" % r.returncode if r.returncode > 0 else "killed by signal %d" % -r.returncode
        return vals, "%s: %s" % (why, r.stdout.strip()[-300:])
    return vals, None


def target_text(t):
    if t is None:
        return "—"
    kind, x = t
    return "≤ %g" % x if kind == "abs" else "≤ %g× Go" % x


def target_met(t, gort, ratio):
    if t is None or gort is None:
        return ""
    kind, x = t
    if kind == "abs":
        return "yes" if gort <= x else "no"
    if ratio is None:
        return "?"
    return "yes" if ratio <= x else "no"


def chart(path, rows, gnuplot, tmp):
    """Bar chart of gort/Go per benchmark, one bar per GOMAXPROCS, log scale."""
    ids, byid = [], {}
    for r in rows:
        if r["ratio"] is None:
            continue
        if r["id"] not in byid:
            ids.append(r["id"])
            byid[r["id"]] = {}
        byid[r["id"]][r["procs"]] = r["ratio"]
    if not ids or not gnuplot:
        return False
    dat = os.path.join(tmp, "sched.dat")
    with open(dat, "w") as f:
        f.write("# benchmark P=1 P=2\n")
        for i in ids:
            f.write('"%s" %s\n' % (i, " ".join("%.4f" % byid[i][p] if p in byid[i] else "NaN" for p in (1, 2))))
    present = [v for d in byid.values() for v in d.values() if v > 0]
    lo = 2.0 ** math.floor(math.log2(min(present + [1.0]) / 1.2))
    hi = 2.0 ** math.ceil(math.log2(max(present + [1.0]) * 1.2))
    script = """
set terminal pngcairo size 1200,550 font ',11'
set output '%s'
set title "gort / Go, per benchmark (lower is better: below the dashed line gort is faster or smaller)"
set ylabel "gort / Go (log scale)"
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
plot '%s' using 2:xtic(1) title 'GOMAXPROCS=1' lc rgb '#d62728', '' using 3 title 'GOMAXPROCS=2' lc rgb '#1f77b4'
""" % (path, lo, hi, len(ids) - 0.4, dat)
    return benchrun.run_gnuplot(gnuplot, script, os.path.join(tmp, "sched.gp"), "bench-sched")


def table(rows):
    head = "| benchmark | GOMAXPROCS | unit | gort | Go | gort/Go | target | met |\n" \
           "|---|---|---|---|---|---|---|---|\n"
    lines = []
    for r in rows:
        lines.append("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
            r["id"], r["procs"], r["unit"], r["gort_text"], r["go_text"],
            "%.2f" % r["ratio"] if r["ratio"] is not None else "—", target_text(r["target"]), r["met"]))
    return head + "\n".join(lines) + "\n"


def text_table(rows):
    cols = ["benchmark", "P", "unit", "gort", "Go", "gort/Go", "target", "met"]
    data = [[r["id"], str(r["procs"]), r["unit"], r["gort_text"], r["go_text"],
             "%.2f" % r["ratio"] if r["ratio"] is not None else "—", target_text(r["target"]), r["met"]]
            for r in rows]
    w = [max(len(c), *(len(d[i]) for d in data)) if data else len(c) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w[i]) for i, c in enumerate(cols))]
    out += ["  ".join(d[i].ljust(w[i]) for i in range(len(cols))) for d in data]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="the build directory holding libgort.a (default build)")
    ap.add_argument("--quick", action="store_true", help="smaller counts, 3 runs: under a minute")
    ap.add_argument("--runs", type=int, help="runs of each program per cell (default 5, quick 3)")
    ap.add_argument("--only", help="comma-separated benchmark ids (%s)" % ",".join(b["id"] for b in BENCHES))
    ap.add_argument("--out", help="where SCHED.md and sched.png go (default docs/bench, quick: BUILD/bench-sched/quick)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per process (default 120)")
    ap.add_argument("--no-install", action="store_true", help="never apt-get install golang-go or gnuplot")
    ap.add_argument("--via", default="", help="the make target that started this, for the report")
    args = ap.parse_args()

    os.chdir(ROOT)
    runs = args.runs or (3 if args.quick else 5)
    out = args.out or (os.path.join(args.build, "bench-sched", "quick") if args.quick
                       else os.path.join("docs", "bench"))
    benches = BENCHES
    if args.only:
        want = set(args.only.split(","))
        benches = [b for b in BENCHES if b["id"] in want]
    install = not args.no_install
    go = find_go(install)
    if go is None:
        log("bench-sched: no Go toolchain (apt-get install golang-go): the Go column stays empty")
    gnuplot = find_gnuplot(install)
    goversion = ""
    if go:
        goversion = subprocess.run([go, "version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    cexe, goexe = build(args.build, go)
    impls = [("gort", cexe)] + ([("go", goexe)] if goexe else [])

    t_start = time.monotonic()
    load_start = benchrun.loadavg()
    log("bench-sched: %s mode, %d runs each, alternating gort and Go%s" % (
        "quick" if args.quick else "full", runs, "" if goexe else " (no Go)"))
    rows, raw, problems = [], [], []
    for b in benches:
        cmd = b["quick"] if args.quick else b["full"]
        procs_list = b["procs"][1] if args.quick else b["procs"][0]
        if not cmd or not procs_list:
            continue
        for procs in procs_list:
            vals = {name: [] for name, _ in impls}
            for i in range(runs):
                for name, exe in impls:
                    v, err = run_once(exe, cmd, procs, args.timeout)
                    chk = b.get("check")
                    if err is None and chk and v.get(chk[0]) != chk[1]:
                        err = "%s = %s, want %s" % (chk[0], v.get(chk[0]), chk[1])
                    if err:
                        problems.append("%s GOMAXPROCS=%d %s run %d: %s" % (b["id"], procs, name, i + 1, err))
                        log("bench-sched: " + problems[-1])
                        continue
                    vals[name].append(v)
            for rid, key, unit, scale, target in b["rows"]:
                med = {}
                for name, _ in impls:
                    xs = [v[key] * scale for v in vals[name] if key in v]
                    med[name] = statistics.median(xs) if xs else None
                    raw.append((rid, procs, name, xs))
                g, o = med.get("gort"), med.get("go")
                ratio = g / o if g is not None and o else None
                fails = sum(1 for p in problems if p.startswith("%s GOMAXPROCS=%d gort" % (b["id"], procs)))
                rows.append(dict(id=rid, procs=procs, unit=unit, gort=g, go=o, ratio=ratio, target=target,
                                 gort_text=benchrun.fmt_figure(g) if g is not None else "FAILED",
                                 go_text=benchrun.fmt_figure(o) if o is not None else ("FAILED" if goexe else "no Go"),
                                 met=target_met(target, g, ratio) if not fails else "no (%d failed)" % fails,
                                 title=b["title"], cmd=cmd))
            log("bench-sched: %-9s GOMAXPROCS=%d  %s" % (b["id"], procs, "  ".join(
                "%s: gort %s Go %s" % (r["id"], r["gort_text"], r["go_text"])
                for r in rows if r["procs"] == procs and r["cmd"] is cmd)))
    elapsed = time.monotonic() - t_start

    print(text_table(rows))
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="gort-bench-sched-")
    png = os.path.join(out, "sched.png")
    have_chart = chart(png, rows, gnuplot, tmp)
    shutil.rmtree(tmp, ignore_errors=True)

    command = " ".join(shlex.quote(a) for a in ["python3", "bench/sched/run.py"] + sys.argv[1:])
    md = []
    md.append("# Scheduler benchmarks: gort against Go\n")
    md.append("Written by `bench/sched/run.py`%s. Each benchmark is a C program on gort "
              "(`bench/sched/gort_bench.c`) and the same program in Go (`bench/sched/go/main.go`); "
              "the two run alternately, gort then Go, %d times each in fresh processes, and each cell "
              "is the median. Every figure is a time or a size, so **lower is better**, and gort/Go "
              "below 1 means gort is faster or smaller.\n" % (" (`%s`)" % args.via if args.via else "", runs))
    md.append("- Date: %s" % datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
    md.append("- Machine: %s" % benchrun.machine_line())
    md.append("- Go: %s" % (goversion or "not installed"))
    md.append("- Command: `%s`%s" % (command, " (via `%s`)" % args.via if args.via else ""))
    md.append("- Mode: %s, %.0f s of benchmarking" % ("quick (smaller counts)" if args.quick else "full", elapsed))
    md.append("- Load average (1, 5, 15 min) before: %s, after: %s (other work on the machine makes the "
              "figures noisier; see every run below)\n" % (load_start, benchrun.loadavg()))
    md.append(table(rows))
    if have_chart:
        md.append("![gort/Go per benchmark](sched.png)\n")
    md.append("## What each row measures\n")
    for b in benches:
        cmd = b["quick"] if args.quick else b["full"]
        if not any(r["cmd"] is cmd for r in rows):
            continue
        note = COUNTS_NOTE.get(b["id"], "").format(*cmd)
        md.append("- **%s**: %s; %s (`gort_bench %s`); rows %s." % (
            b["id"], b["title"], note, " ".join(cmd), ", ".join("%s in %s" % (rr[0], rr[2]) for rr in b["rows"])))
    md.append("""
Details: *yield* is two goroutines calling gort_yield / runtime.Gosched in
turn, time over the number of switches. *pingpong* is one goroutine sending
on one unbuffered channel and receiving the answer on another, time over
twice the round trips. *chanbuf* is one goroutine sending on a channel of
capacity 128 and another receiving. *spawn* starts one goroutine and waits
on a WaitGroup for it before the next; *burst* starts them all, then waits
once. *skynet* is the well-known benchmark (each goroutine starts ten
children, down to 1,000,000 leaves, and sums their answers sent on an
unbuffered channel; the result must be 499999500000); its RSS is
getrusage's ru_maxrss. *sleep* is the median real duration of a 50 µs
sleep. *handoff*: under GOMAXPROCS=1, goroutine A starts B (runnable, not
running) and blocks in a 20 ms system call (gort: gort_syscall_enter,
usleep, gort_syscall_exit; Go: syscall.Nanosleep), and the row is the time
from A's entry to B running, which needs the P handed to another thread.
*parked*: the growth of /proc/self/statm's resident size while N goroutines
sit parked on one channel receive, divided by N; *parked1m* does it with
1,000,000 at once, and also shows the time to start them all.
""")
    md.append("## Every run\n")
    md.append("Per row and GOMAXPROCS, gort's and Go's figures in run order.\n")
    md.append("| row | P | gort | Go |\n|---|---|---|---|")
    byk = {}
    for rid, procs, name, xs in raw:
        byk.setdefault((rid, procs), {})[name] = xs
    for (rid, procs), d in byk.items():
        md.append("| %s | %d | %s | %s |" % (rid, procs, " ".join(benchrun.fmt_figure(x) for x in d.get("gort", [])),
                                             " ".join(benchrun.fmt_figure(x) for x in d.get("go", []))))
    md.append("")
    if problems:
        md.append("## Problems\n")
        md += ["- " + p.replace("\n", " ") for p in problems]
        md.append("")
    path = os.path.join(out, "SCHED.md")
    with open(path, "w") as f:
        f.write("\n".join(md))
    log("bench-sched: wrote %s%s (%.0f s)" % (path, " and " + png if have_chart else "", elapsed))
    if problems:
        log("bench-sched: %d run(s) failed" % len(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
