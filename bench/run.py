#!/usr/bin/env python3
"""bench/run.py — gort side by side with glibc, jemalloc, tcmalloc and mimalloc.

    python3 bench/run.py            # full run (make bench): docs/bench/
    python3 bench/run.py --quick    # about two minutes (make run): build/bench-quick/

Every workload runs under every allocator (LD_PRELOAD), alternating
allocator by allocator (A B C D E, A B C D E, ...): one warm-up round that is
not counted, then --runs counted rounds.  Cells are medians: wall time (or
requests/s for redis) and peak RSS (the child's ru_maxrss from wait4; for
redis the server's VmHWM).  Every allocator's checksum must equal glibc's.
The exit status is non-zero when a run failed, timed out or disagreed; what
was measured is written out all the same.  Python 3 standard library only.
See docs/bench/README-runner.md.
"""
import argparse
import datetime
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = ["glibc", "jemalloc", "tcmalloc", "mimalloc"]
ALLOCATORS = ["gort"] + PEERS
# Debian package and the shared object it ships (found with dpkg -L).
PEER_PKG = {
    "jemalloc": ("libjemalloc2", r"/libjemalloc\.so\.2$"),
    "tcmalloc": ("libtcmalloc-minimal4", r"/libtcmalloc_minimal\.so\.4$"),
    "mimalloc": ("libmimalloc2.0", r"/libmimalloc\.so\.2(\.0)?$"),
}
VERSION_PKGS = ["libc6", "libjemalloc2", "libtcmalloc-minimal4", "libmimalloc2.0",
                "redis-server", "redis-tools", "sqlite3", "python3", "gcc", "valgrind"]

# The rows.  num 1-9 are the allocator workloads (the geometric means are
# over them); a-c are real programs; d is a small program, for the fixed
# overhead (its RSS less glibc's).  args: (threads, scale) for bench/*.c
# workloads; full and quick give the scale (binary_trees: the depth).
ROWS = [
    dict(id="churn",          num="1", kind="c", src="churn",          threads=1, full=1.0, quick=0.1),
    dict(id="sizes-1t",       num="2", kind="c", src="sizes",          threads=1, full=1.0, quick=0.1),
    dict(id="sizes-2t",       num="2", kind="c", src="sizes",          threads=2, full=1.0, quick=0.1),
    dict(id="larson-2t",      num="3", kind="c", src="larson",         threads=2, full=1.0, quick=0.1),
    dict(id="xmalloc-2t",     num="4", kind="c", src="xmalloc",        threads=2, full=1.0, quick=0.1),
    dict(id="cache_scratch-2t", num="5", kind="c", src="cache_scratch", threads=2, full=1.0, quick=0.1),
    dict(id="large",          num="6", kind="c", src="large",          threads=1, full=1.0, quick=0.1),
    dict(id="realloc_growth", num="7", kind="c", src="realloc_growth", threads=1, full=1.0, quick=0.1),
    dict(id="thread_churn-2t", num="8", kind="c", src="thread_churn",  threads=2, full=1.0, quick=0.1),
    dict(id="binary_trees",   num="9", kind="bt", src="binary_trees",  full=21, quick=16),
    dict(id="redis",          num="a", kind="redis", full=1.0, quick=0.1),
    dict(id="python3",        num="b", kind="python", full=1.0, quick=0.125),
    dict(id="sqlite3",        num="c", kind="sqlite", full=1000000, quick=200000),
    dict(id="small",          num="d", kind="c", src="small",          threads=1, full=1.0, quick=1.0),
]

# The row whose peak RSS, less glibc's, is each allocator's fixed overhead.
SMALL_ROW = "small"
SMALL_TARGET_KIB = 1024

# Redis: keys made with DEBUG POPULATE before the benchmark, and requests per
# redis-benchmark test, at scale 1.0.
REDIS_KEYS = 300000
REDIS_REQUESTS = 500000
REDIS_TESTS = "set,get,lpush,lpop"

SQLITE_SQL = """\
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, name TEXT, v REAL);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < {rows})
INSERT INTO t SELECT i, (i*7919) % 100003, printf('name-%d-%x', i % 50000, i % 977), (i % 1000) / 7.0 FROM c;
CREATE INDEX t_k ON t(k);
SELECT count(*), sum(k) FROM t;
SELECT k % 100 AS b, count(*), round(avg(v), 3) FROM t GROUP BY b ORDER BY b LIMIT 3;
SELECT name, count(*) FROM t GROUP BY name ORDER BY count(*) DESC, name LIMIT 3;
SELECT count(*) FROM t a JOIN t b ON a.k = b.id WHERE a.id % 10 = 0;
UPDATE t SET name = name || '-x' WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(length(name)) FROM t;
"""

# A tiny launcher: python's own RSS would otherwise be counted in the child's
# ru_maxrss (the kernel folds the pre-exec address space into it, and the
# child starts as a copy of the runner).  The launcher is small, so the
# workload it forks starts from a copy of almost nothing.
MAXRSS_C = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    if (argc < 3)
        return 127;
    pid_t pid = fork();
    if (pid < 0)
        return 127;
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0)
        return 127;
    FILE *f = fopen(argv[1], "w");
    if (f) {
        fprintf(f, "%ld\n", ru.ru_maxrss);
        fclose(f);
    }
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        kill(getpid(), WTERMSIG(status));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}
"""

MAXRSS_EXE = None


def build_maxrss(build):
    """Compiles the launcher into build/bench/maxrss; None if that fails."""
    exe = os.path.join(build, "bench", "maxrss")
    src = exe + ".c"
    try:
        os.makedirs(os.path.dirname(exe), exist_ok=True)
        old = open(src).read() if os.path.exists(src) else None
        if old != MAXRSS_C or not os.path.exists(exe):
            with open(src, "w") as f:
                f.write(MAXRSS_C)
            r = subprocess.run(["gcc", "-O2", "-o", exe, src], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=60)
            if r.returncode:
                log("bench: cannot build the RSS launcher:\n" + r.stdout)
                return None
        return exe
    except (OSError, subprocess.SubprocessError) as e:
        log("bench: cannot build the RSS launcher: %s" % e)
        return None


# Children that must not outlive the runner (redis-server).  Killed by PID.
_live_children = set()


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(argv, timeout=60):
    """Output of a helper command, or '' when it is missing or fails."""
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


# ---------------------------------------------------------------- processes

class Result:
    def __init__(self, ok, secs=None, rss_kib=None, checksum=None, err="", thr=None):
        self.ok, self.secs, self.rss_kib = ok, secs, rss_kib
        self.checksum, self.err, self.thr = checksum, err, thr


def run_proc(argv, env, timeout, stdin_path=None):
    """Runs argv; returns (exit code or None on time-out, seconds, ru_maxrss KiB,
    stdout, stderr).  The child gets its own session so that a time-out kills
    all it started."""
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    rssfile = None
    if MAXRSS_EXE:
        fd, rssfile = tempfile.mkstemp(prefix="gort-rss-")
        os.close(fd)
        argv = [MAXRSS_EXE, rssfile] + list(argv)
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, env=env, stdin=stdin, stdout=out, stderr=err,
                             start_new_session=True)
        fired = []

        def expire():
            fired.append(1)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
        timer = threading.Timer(timeout, expire)
        timer.start()
        reaped = False
        try:
            _, status, ru = os.wait4(p.pid, 0)
            reaped = True
        finally:
            timer.cancel()
            if not reaped:            # interrupted: leave nothing behind
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                    os.waitpid(p.pid, 0)
                except OSError:
                    pass
        secs = time.perf_counter() - t0
        p.returncode = code = os.waitstatus_to_exitcode(status)
        maxrss = ru.ru_maxrss
        if rssfile:
            try:
                with open(rssfile) as f:
                    maxrss = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                maxrss = None
        out.seek(0)
        err.seek(0)
        return (None if fired else code), secs, maxrss, \
            out.read().decode(errors="replace"), err.read().decode(errors="replace")
    finally:
        out.close()
        err.close()
        if rssfile:
            os.unlink(rssfile)
        if stdin_path:
            stdin.close()


def env_for(preload, extra=None):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(extra or {})
    return env


CHECK_RE = re.compile(r"^checksum:\s*(\S+)", re.M)


def checked(code, secs, rss, out, err, hashed=False):
    if code is None:
        return Result(False, err="timed out")
    if code != 0:
        tail = (err.strip().splitlines() or [""])[-1][:120]
        if code < 0:
            try:
                what = "killed by %s" % signal.Signals(-code).name
            except ValueError:
                what = "killed by signal %d" % -code
        else:
            what = "exit %d" % code
        return Result(False, err=("%s %s" % (what, tail)).strip())
    if hashed:
        import hashlib
        cs = hashlib.sha1(out.encode()).hexdigest()[:12]
    else:
        m = CHECK_RE.search(out)
        if not m:
            return Result(False, err="no 'checksum:' line")
        cs = m.group(1)
    return Result(True, secs, rss, cs)


# -------------------------------------------------------------------- redis

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_cmd(port, *args, timeout=30):
    """One command over RESP; returns the decoded reply line (simple replies)."""
    req = "*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a.encode()), a) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.encode())
        buf = b""
        while not buf.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return buf.decode(errors="replace").strip()


def vm_hwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def stop(p, grace=10):
    """Stops a child by its PID: SIGTERM, then SIGKILL; always reaps it."""
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait(timeout=grace)
    _live_children.discard(p)


def run_redis(preload, scale, tools, tmp, timeout):
    keys = max(1000, int(REDIS_KEYS * scale))
    requests = max(10000, int(REDIS_REQUESTS * scale))
    last_err = "did not start"
    for _attempt in range(3):            # the free port may be taken before redis binds it
        port = free_port()
        logpath = os.path.join(tmp, "redis-%d.log" % port)
        argv = [tools["redis-server"], "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--protected-mode", "yes", "--dir", tmp, "--logfile", "",
                "--enable-debug-command", "local"]
        with open(logpath, "wb") as logf:
            p = subprocess.Popen(argv, env=env_for(preload), stdin=subprocess.DEVNULL,
                                 stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        _live_children.add(p)
        try:
            up = False
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and p.poll() is None:
                try:
                    if redis_cmd(port, "PING", timeout=2) == "+PONG":
                        up = True
                        break
                except OSError:
                    time.sleep(0.05)
            if not up:
                with open(logpath, errors="replace") as f:
                    last_err = "redis did not start: " + (f.read().strip().splitlines() or [""])[-1][:100]
                continue
            r = redis_cmd(port, "DEBUG", "POPULATE", str(keys), "key", "100", timeout=timeout)
            if not r.startswith("+OK"):
                return Result(False, err="DEBUG POPULATE: " + r[:80])
            bench = [tools["redis-benchmark"], "-h", "127.0.0.1", "-p", str(port), "-q",
                     "-n", str(requests), "-P", "16", "-t", REDIS_TESTS]
            code, secs, _, out, err = run_proc(bench, env_for(None), timeout)
            if code is None:
                return Result(False, err="redis-benchmark timed out")
            rates = [float(x) for x in re.findall(r"([\d.]+) requests per second", out)]
            if code != 0 or len(rates) != len(REDIS_TESTS.split(",")):
                return Result(False, err="redis-benchmark exit %s: %s" % (code, (err or out).strip()[-100:]))
            hwm = vm_hwm_kib(p.pid)
            # The checksum: the key count and list length left, the same under every allocator.
            dbsize = redis_cmd(port, "DBSIZE")
            llen = redis_cmd(port, "LLEN", "mylist")
            if p.poll() is not None:
                return Result(False, err="redis-server died (exit %s)" % p.returncode)
            return Result(True, secs, hwm, "%s/%s" % (dbsize.lstrip(":"), llen.lstrip(":")),
                          thr=statistics.mean(rates))
        except OSError as e:
            return Result(False, err="redis: %s" % e)
        finally:
            stop(p)
    return Result(False, err=last_err)


# ------------------------------------------------------------------- set-up

def find_peer(name, install, state):
    pkg, pattern = PEER_PKG[name]
    def look():
        for line in sh(["dpkg", "-L", pkg]).splitlines():
            if re.search(pattern, line) and os.path.exists(line):
                return line
        return None
    path = look()
    if path is None and install:
        apt_install([pkg], state)
        path = look()
    return path


def apt_install(pkgs, state):
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = env_for(None, {"DEBIAN_FRONTEND": "noninteractive"})
    if not state.get("apt_updated"):
        log("bench: apt-get update")
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=600)
        state["apt_updated"] = True
    log("bench: installing %s" % " ".join(pkgs))
    subprocess.run(["apt-get", "install", "-y", "-q", "-o", "Dpkg::Use-Pty=0",
                    "--no-install-recommends"] + pkgs, env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)


def find_tool(cmd, pkg, install, state):
    path = shutil.which(cmd)
    if path is None and install:
        apt_install([pkg], state)
        path = shutil.which(cmd)
    return path


def build_workloads(build, rows):
    """gcc -O2 -pthread each bench/<src>.c that exists into build/bench/."""
    outdir = os.path.join(build, "bench")
    os.makedirs(outdir, exist_ok=True)
    status = {}
    for src in sorted({r["src"] for r in rows if r["kind"] in ("c", "bt")}):
        c = os.path.join(ROOT, "bench", src + ".c")
        exe = os.path.join(outdir, src)
        if not os.path.exists(c):
            status[src] = "not written yet"
            continue
        if os.path.exists(exe) and os.path.getmtime(exe) >= os.path.getmtime(c):
            status[src] = None
            continue
        try:
            r = subprocess.run(["gcc", "-O2", "-pthread", "-o", exe, c, "-lm"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
            status[src] = None if r.returncode == 0 else "build failed"
            if r.returncode:
                log("bench: %s does not build:\n%s" % (c, r.stdout[-2000:]))
        except (OSError, subprocess.SubprocessError) as e:
            status[src] = "build failed"
            log("bench: %s: %s" % (c, e))
    return status


# ------------------------------------------------------------------ running

def run_once(row, alloc, preload, ctx):
    mode = "quick" if ctx["quick"] else "full"
    scale = row[mode]
    if row["kind"] in ("c",):
        scale = scale * ctx["scale"]
    timeout = ctx["timeout"]
    if row["kind"] == "c":
        exe = os.path.join(ctx["build"], "bench", row["src"])
        return checked(*run_proc([exe, str(row["threads"]), "%g" % scale], env_for(preload), timeout))
    if row["kind"] == "bt":
        exe = os.path.join(ctx["build"], "bench", row["src"])
        return checked(*run_proc([exe, str(scale)], env_for(preload), timeout), hashed=True)
    if row["kind"] == "python":
        env = env_for(preload, {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0",
                                "PYTHONDONTWRITEBYTECODE": "1"})
        return checked(*run_proc([ctx["tools"]["python3"], os.path.join(ROOT, "bench", "pywork.py"),
                                  "%g" % (scale * ctx["scale"])], env, timeout))
    if row["kind"] == "sqlite":
        rows = max(1000, int(scale * ctx["scale"]))
        sql = os.path.join(ctx["tmp"], "sqlite-%d.sql" % rows)
        if not os.path.exists(sql):
            with open(sql, "w") as f:
                f.write(SQLITE_SQL.format(rows=rows))
        return checked(*run_proc([ctx["tools"]["sqlite3"], ":memory:"], env_for(preload), timeout,
                                 stdin_path=sql), hashed=True)
    if row["kind"] == "redis":
        # redis-server links libjemalloc itself, so with no preload it would run on
        # jemalloc: for the glibc column libc.so.6 is preloaded ahead of it.
        if preload is None:
            preload = ctx["libc"]
        return run_redis(preload, scale * ctx["scale"], ctx["tools"], ctx["tmp"], timeout)
    raise ValueError(row["kind"])


def row_unavailable(row, ctx):
    if row["kind"] in ("c", "bt"):
        return ctx["build_status"].get(row["src"])
    need = {"redis": ["redis-server", "redis-benchmark"], "python": ["python3"],
            "sqlite": ["sqlite3"]}[row["kind"]]
    missing = [t for t in need if not ctx["tools"].get(t)]
    return ("not installed: " + ", ".join(missing)) if missing else None


def measure_row(row, allocs, ctx):
    """Alternates the allocators run by run; returns {alloc: cell}."""
    cells = {a: {"times": [], "rss": [], "thr": [], "checksums": [], "err": None} for a in allocs}
    rounds = ctx["warmup"] + ctx["runs"]
    for rnd in range(rounds):
        for a in allocs:
            c = cells[a]
            if c["err"]:
                continue                  # failed once: not run again on this row
            res = run_once(row, a, ctx["preload"][a], ctx)
            if not res.ok:
                c["err"] = res.err
                log("bench:   %-16s %-9s FAILED: %s" % (row["id"], a, res.err))
                continue
            if rnd >= ctx["warmup"]:
                c["times"].append(res.secs)
                if res.rss_kib is not None:
                    c["rss"].append(res.rss_kib)
                if res.thr is not None:
                    c["thr"].append(res.thr)
            c["checksums"].append(res.checksum)
    out = {}
    for a in allocs:
        c = cells[a]
        cell = {"err": c["err"], "checksum": None, "n": len(c["times"])}
        if c["times"]:
            cell["time"] = statistics.median(c["times"])
            cell["times"] = c["times"]
            cell["rss_kib"] = statistics.median(c["rss"]) if c["rss"] else None
            cell["thr"] = statistics.median(c["thr"]) if c["thr"] else None
        sums = set(c["checksums"])
        if len(sums) > 1:
            cell["err"] = cell["err"] or "checksum differs between runs: %s" % sorted(sums)
        if c["checksums"]:
            cell["checksum"] = c["checksums"][0]
        out[a] = cell
    # every allocator's checksum against glibc's
    ref = out.get("glibc", {}).get("checksum")
    if ref is None:
        got = [out[a]["checksum"] for a in allocs if out[a]["checksum"]]
        ref = max(set(got), key=got.count) if got else None
    for a in allocs:
        cs = out[a]["checksum"]
        if ref is not None and cs is not None and cs != ref:
            out[a]["mismatch"] = "checksum %s != glibc %s" % (cs, ref)
    return out


# ------------------------------------------------------------------ reports

def is_ok(cell):
    return cell and not cell.get("err") and not cell.get("mismatch") and "time" in cell


def score(row, cell):
    """Bigger is worse: seconds, or 1/throughput for redis."""
    if row["kind"] == "redis":
        return 1.0 / cell["thr"] if cell.get("thr") else None
    return cell["time"]


def ratios(rows, results, allocs):
    """time ratio to best peer and RSS ratio to jemalloc, per row per allocator."""
    tr, rr = {}, {}
    for row in rows:
        res = results.get(row["id"])
        if not res or res.get("skipped"):
            continue
        cells = res["cells"]
        peers = [score(row, cells[p]) for p in PEERS if p in cells and is_ok(cells[p])]
        best = min(peers) if peers else None
        je = cells.get("jemalloc")
        je_rss = je.get("rss_kib") if is_ok(je) else None
        for a in allocs:
            c = cells.get(a)
            if not is_ok(c):
                continue
            if best:
                tr[(row["id"], a)] = score(row, c) / best
            if je_rss and c.get("rss_kib"):
                rr[(row["id"], a)] = c["rss_kib"] / je_rss
    return tr, rr


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def fmt_time(row, c):
    if row["kind"] == "redis":
        return "%.0fk req/s" % (c["thr"] / 1000)
    return "%.2f s" % c["time"] if c["time"] >= 0.1 else "%.0f ms" % (c["time"] * 1000)


def fail_text(c):
    if c is None:
        return "-"
    if c.get("mismatch"):
        return "**MISMATCH** (%s)" % c["mismatch"]
    if c.get("err"):
        return "**FAIL** (%s)" % c["err"][:60]
    return "-"


def tables(rows, results, allocs, avail):
    tr, rr = ratios(rows, results, allocs)
    head = "| # | workload | " + " | ".join(allocs) + " |\n|---|---|" + "---|" * len(allocs) + "\n"
    t_lines, r_lines = [head], [head]
    for row in rows:
        res = results.get(row["id"])
        if res is None:
            continue
        name = row["id"]
        if res.get("skipped"):
            line = "| %s | %s | %s |\n" % (row["num"], name, " | ".join(
                ["(%s)" % res["skipped"]] + [""] * (len(allocs) - 1)))
            t_lines.append(line)
            r_lines.append(line)
            continue
        tc, rc = [], []
        for a in allocs:
            if not avail[a]:
                tc.append("not installed")
                rc.append("not installed")
                continue
            c = res["cells"].get(a)
            if not is_ok(c):
                tc.append(fail_text(c))
                rc.append(fail_text(c))
                continue
            x = tr.get((row["id"], a))
            tc.append("%s (%s)" % (fmt_time(row, c), "%.2f" % x if x else "?"))
            y = rr.get((row["id"], a))
            rss = c.get("rss_kib")
            rc.append("%.1f MiB (%s)" % (rss / 1024, "%.2f" % y if y else "?") if rss else "?")
        t_lines.append("| %s | %s | %s |\n" % (row["num"], name, " | ".join(tc)))
        r_lines.append("| %s | %s | %s |\n" % (row["num"], name, " | ".join(rc)))
    core = [r["id"] for r in rows if r["num"].isdigit() and r["id"] in results
            and not results[r["id"]].get("skipped")]
    gt, gr = [], []
    for a in allocs:
        xs = [tr[(w, a)] for w in core if (w, a) in tr]
        ys = [rr[(w, a)] for w in core if (w, a) in rr]
        note = lambda v: "" if len(v) == len(core) else " [%d of %d]" % (len(v), len(core))
        gt.append(("%.2f" % geomean(xs) + note(xs)) if xs else "-")
        gr.append(("%.2f" % geomean(ys) + note(ys)) if ys else "-")
    t_lines.append("| | **geomean 1-9** (time / best peer) | %s |\n" % " | ".join("**%s**" % g for g in gt))
    r_lines.append("| | **geomean 1-9** (RSS / jemalloc) | %s |\n" % " | ".join("**%s**" % g for g in gr))
    return "".join(t_lines), "".join(r_lines), tr, rr, dict(zip(allocs, gt)), dict(zip(allocs, gr))


def chart(path, title, ylabel, rows, results, allocs, values, gnuplot, tmp, log_y=False):
    """A clustered bar chart, one group per workload, one bar per allocator."""
    names = [r for r in rows if r["id"] in results and not results[r["id"]].get("skipped")]
    if not names or not gnuplot:
        return False
    dat = os.path.join(tmp, os.path.basename(path) + ".dat")
    with open(dat, "w") as f:
        f.write("# workload " + " ".join(allocs) + "\n")
        for r in names:
            vals = [values.get((r["id"], a)) for a in allocs]
            f.write('"%s %s" ' % (r["num"], r["id"]) + " ".join("%.4f" % v if v else "NaN" for v in vals) + "\n")
    present = [v for v in values.values() if v]
    lo = 2.0 ** math.floor(math.log2(min(present + [1.0]) / 1.2))
    colours = ["#d62728", "#7f7f7f", "#1f77b4", "#2ca02c", "#ff7f0e"]
    plot = ", ".join("'%s' using %d:xtic(1) title '%s' lc rgb '%s'" % (dat, i + 2, a, colours[i % 5])
                     for i, a in enumerate(allocs))
    script = """
set terminal pngcairo size 1400,600 font ',11'
set output '%s'
set title "%s"
set ylabel "%s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set boxwidth 0.9
set key outside top center horizontal noenhanced
set termoption noenhanced
set grid ytics
set xtics rotate by -30 nomirror
set datafile missing 'NaN'
set xrange [-0.6:%g]
%s
set arrow from graph 0, first 1 to graph 1, first 1 nohead lc rgb 'black' dt 2
plot %s
""" % (path, title, ylabel, len(names) - 0.4, ("set logscale y 2\nset yrange [%g:*]" % lo if log_y else "set yrange [0:*]"), plot)
    return run_gnuplot(gnuplot, script, os.path.join(tmp, os.path.basename(path) + ".gp"), "bench")


def run_gnuplot(gnuplot, script, script_path, tag):
    """Writes script to script_path and runs gnuplot on it; True on success."""
    with open(script_path, "w") as f:
        f.write(script)
    try:
        r = subprocess.run([gnuplot, script_path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        log("%s: gnuplot: %s" % (tag, e))
        return False
    if r.returncode:
        log("%s: gnuplot failed: %s" % (tag, r.stdout[-500:]))
    return r.returncode == 0


def hotpath(build, preload, timeout=600):
    """gort's pair from bench/hotpath.sh, then every allocator's (preload:
    name -> shared library, None for glibc) in the same dynamic harness."""
    if not shutil.which("valgrind"):
        return None, "valgrind not installed"
    pairs = ["%s=%s" % (name, lib or "") for name, lib in preload.items()]
    try:
        r = subprocess.run(["bash", os.path.join(ROOT, "bench", "hotpath.sh"), build] + pairs, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return None, str(e)
    lines = [l for l in r.stdout.splitlines() if "instructions per" in l]
    if r.returncode or not lines:
        return None, "hotpath.sh failed: " + r.stdout.strip()[-200:]
    return lines, None


def fmt_figure(v):
    """A figure with three or four significant digits; — for none."""
    if v is None:
        return "—"
    if v >= 1000:
        return "%.0f" % v
    if v >= 100:
        return "%.1f" % v
    if v >= 10:
        return "%.2f" % v
    return "%.3f" % v


def machine_line():
    """The CPU model, CPUs and kernel, in one line (bench/gc, bench/sched)."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs (nproc), kernel %s" % (model or "unknown CPU", len(os.sched_getaffinity(0)),
                                               os.uname().release)


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine():
    model = ""
    for line in sh(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kib / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass
    vers = {}
    for line in sh(["dpkg-query", "-W", "-f=${Package} ${Version}\\n"] + VERSION_PKGS).splitlines():
        p = line.split()
        if len(p) == 2:
            vers[p[0]] = p[1]
    return {"cpu": model, "nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "memory": mem, "kernel": os.uname().release, "versions": vers}


def fixed_overhead(results):
    """{allocator: median peak RSS of the small row less glibc's, KiB}, or
    None when the row or glibc's cell is missing."""
    res = results.get(SMALL_ROW)
    cells = res.get("cells") if res else None
    base = cells.get("glibc") if cells else None
    if not is_ok(base) or not base.get("rss_kib"):
        return None
    return {a: int(round(c["rss_kib"] - base["rss_kib"])) for a, c in cells.items()
            if is_ok(c) and c.get("rss_kib")}


def write_report(outdir, ctx, rows, results, allocs, avail, hot, charts, over, interrupted):
    ttab, rtab, tr, rr, gt, gr = tables(rows, results, allocs, avail)
    m = ctx["machine"]
    problems = ctx["problems"]
    md = []
    md.append("# gort benchmark results\n\n")
    if ctx["label"]:
        md.append("> **%s**\n\n" % ctx["label"])
    if interrupted:
        md.append("> **Interrupted: only the rows below were measured.**\n\n")
    md.append("Produced by `bench/run.py` (see [README-runner.md](README-runner.md)) on %s.\n\n"
              % ctx["date"])
    md.append("Command: `%s`%s\n\n" % (ctx["command"], " (via `%s`)" % ctx["via"] if ctx["via"] else ""))
    md.append("Machine: %s, %s CPUs (nproc), %s memory, Linux %s.\n\n"
              % (m["cpu"] or "unknown CPU", m["affinity"], m["memory"], m["kernel"]))
    md.append("Versions: " + ", ".join("%s %s" % kv for kv in sorted(m["versions"].items())) + ".\n\n")
    md.append("Method: %d warm-up round (not counted), then %d counted rounds; in each round the "
              "allocators run one after another (%s). Cells are medians. Every allocator's "
              "checksum is compared with glibc's.\n\n"
              % (ctx["warmup"], ctx["runs"], ", ".join(allocs)))
    md.append("## Time\n\nMedian wall time (redis: mean requests/s over %s, median of runs), and in "
              "brackets the ratio to the best peer on that row (best of glibc, jemalloc, tcmalloc, "
              "mimalloc; below 1 is faster than every peer; for redis the inverse throughput ratio).\n\n"
              % REDIS_TESTS)
    md.append(ttab + "\n")
    md.append("## Peak RSS\n\nMedian peak RSS (ru_maxrss of the child; redis: the server's VmHWM), "
              "and in brackets the ratio to jemalloc.\n\n")
    md.append(rtab + "\n")
    if charts.get("time"):
        md.append("![time ratio to best peer](time.png)\n\n")
    if charts.get("rss"):
        md.append("![peak RSS relative to jemalloc](rss.png)\n\n")
    md.append("## Fixed overhead\n\n")
    if over:
        md.append("Peak RSS of `bench/small.c` (a program that needs 250 KiB) less its peak RSS "
                  "under glibc: what the allocator adds to a small program (target for gort: "
                  "under %d KiB).\n\n" % SMALL_TARGET_KIB +
                  "".join("- %s: %+d KiB\n" % (a, over[a]) for a in allocs if a in over) + "\n")
    else:
        md.append("not measured (the small row did not run under both gort and glibc)\n\n")
    md.append("## Fast path\n\n")
    if hot[0]:
        md.append("From `bench/hotpath.sh` (callgrind): gort linked in, then every allocator "
                  "under `LD_PRELOAD` running the same loop:\n\n" +
                  "".join("- %s\n" % l for l in hot[0]) + "\n")
    else:
        md.append("not measured: %s\n\n" % hot[1])
    md.append("## Workloads\n\n| # | workload | what runs |\n|---|---|---|\n")
    for row in rows:
        md.append("| %s | %s | %s |\n" % (row["num"], row["id"], describe(row, ctx)))
    md.append("\n")
    if problems:
        md.append("## Problems\n\n" + "".join("- %s\n" % p for p in problems) + "\n")
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "RESULTS.md"), "w") as f:
        f.write("".join(md))
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"machine": m, "date": ctx["date"], "command": ctx["command"],
                   "label": ctx["label"], "runs": ctx["runs"], "warmup": ctx["warmup"],
                   "results": results, "hotpath": hot[0], "problems": problems}, f, indent=1)
    return ttab, rtab, gt, gr


def describe(row, ctx):
    mode = "quick" if ctx["quick"] else "full"
    s = row[mode]
    if row["kind"] == "c":
        return "`bench/%s.c`, %d thread%s, scale %g" % (row["src"], row["threads"],
                                                         "s" if row["threads"] > 1 else "", s * ctx["scale"])
    if row["kind"] == "bt":
        return "`bench/binary_trees.c`, depth %d" % s
    if row["kind"] == "redis":
        k = ctx["scale"] * s
        return ("redis-server on 127.0.0.1 (`--save \"\" --appendonly no`), DEBUG POPULATE %d keys, then "
                "`redis-benchmark -q -n %d -P 16 -t %s`" % (max(1000, int(REDIS_KEYS * k)),
                                                            max(10000, int(REDIS_REQUESTS * k)), REDIS_TESTS))
    if row["kind"] == "python":
        return "`PYTHONMALLOC=malloc python3 bench/pywork.py %g`" % (s * ctx["scale"])
    if row["kind"] == "sqlite":
        return "`sqlite3 :memory:`, a %d-row table built, indexed, grouped, joined, updated" % max(1000, int(s * ctx["scale"]))
    return ""


# --------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, 3 runs, output in build/bench-quick/")
    ap.add_argument("--runs", type=int, help="counted rounds (default 5; quick 3)")
    ap.add_argument("--warmup", type=int, default=1, help="uncounted warm-up rounds (default 1)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies every workload's size (not binary_trees' depth)")
    ap.add_argument("--only", help="comma-separated row ids or numbers, e.g. 1,2,redis")
    ap.add_argument("--allocators", help="comma-separated subset of " + ",".join(ALLOCATORS))
    ap.add_argument("--build", default="build", help="gort's build directory (default build)")
    ap.add_argument("--out", help="report directory (default docs/bench, quick build/bench-quick)")
    ap.add_argument("--label", default="", help="a line put at the top of RESULTS.md")
    ap.add_argument("--timeout", type=float, help="seconds per run (default 300; quick 60)")
    ap.add_argument("--no-install", action="store_true", help="never apt-get missing packages")
    ap.add_argument("--no-hotpath", action="store_true", help="skip bench/hotpath.sh (valgrind)")
    ap.add_argument("--via", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()

    build = os.path.abspath(os.path.join(ROOT, args.build))
    outdir = os.path.abspath(args.out or os.path.join(ROOT, "build/bench-quick" if args.quick else "docs/bench"))
    runs = args.runs or (3 if args.quick else 5)
    allocs = args.allocators.split(",") if args.allocators else list(ALLOCATORS)
    for a in allocs:
        if a not in ALLOCATORS:
            ap.error("unknown allocator %r" % a)
    rows = ROWS
    if args.only:
        want = set(args.only.split(","))
        rows = [r for r in ROWS if r["id"] in want or r["num"] in want or r.get("src") in want]
        if not rows:
            ap.error("--only matches no row")

    gort = os.path.join(build, "libgort.so")
    if not os.path.exists(gort):
        log("bench: %s is missing: run make first" % gort)
        return 2
    install = os.geteuid() == 0 and not args.no_install
    state = {}
    preload = {"gort": gort, "glibc": None}
    avail = {"gort": True, "glibc": True}
    for p in PEERS[1:]:
        if p in allocs:
            preload[p] = find_peer(p, install, state)
            avail[p] = preload[p] is not None
            if not avail[p]:
                log("bench: %s is not installed (%s)" % (p, PEER_PKG[p][0]))
    tools = {
        "redis-server": find_tool("redis-server", "redis-server", install, state),
        "redis-benchmark": find_tool("redis-benchmark", "redis-tools", install, state),
        "sqlite3": find_tool("sqlite3", "sqlite3", install, state),
        "gnuplot": find_tool("gnuplot", "gnuplot-nox", install, state),
        "python3": "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3"),
    }
    if not args.no_hotpath:
        find_tool("valgrind", "valgrind", install, state)
    libc = None
    for line in sh(["ldd", tools["redis-server"] or "/bin/true"]).splitlines():
        m = re.search(r"libc\.so\.6 => (\S+)", line)
        if m:
            libc = m.group(1)
    run_allocs = [a for a in allocs if avail[a]]

    tmp = tempfile.mkdtemp(prefix="gort-bench-")
    ctx = {"quick": args.quick, "scale": args.scale, "runs": runs, "warmup": args.warmup,
           "timeout": args.timeout or (60 if args.quick else 300), "build": build, "tmp": tmp,
           "tools": tools, "preload": preload, "libc": libc, "problems": [], "label": args.label,
           "via": args.via, "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
           "command": " ".join(shlex.quote(a) for a in ["python3", "bench/run.py"] + sys.argv[1:]),
           "machine": machine()}
    ctx["build_status"] = build_workloads(build, rows)
    global MAXRSS_EXE
    MAXRSS_EXE = build_maxrss(build)
    if not MAXRSS_EXE:
        ctx["problems"].append("RSS launcher did not build: peak RSS includes the runner's own")

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    results = {}
    interrupted = False
    t_start = time.monotonic()
    log("bench: %s mode, %d+%d rounds, allocators %s%s" % (
        "quick" if args.quick else "full", args.warmup, runs, " ".join(run_allocs),
        "" if len(run_allocs) == len(allocs) else " (not installed: %s)" %
        " ".join(a for a in allocs if not avail[a])))
    try:
        for row in rows:
            why = row_unavailable(row, ctx)
            if why:
                results[row["id"]] = {"skipped": why}
                log("bench: %-16s skipped (%s)" % (row["id"], why))
                if why != "not written yet" and not why.startswith("not installed"):
                    ctx["problems"].append("%s: %s" % (row["id"], why))
                continue
            t0 = time.monotonic()
            cells = measure_row(row, run_allocs, ctx)
            results[row["id"]] = {"cells": cells}
            for a, c in cells.items():
                if c.get("err"):
                    ctx["problems"].append("%s under %s: %s" % (row["id"], a, c["err"]))
                if c.get("mismatch"):
                    ctx["problems"].append("%s under %s: CHECKSUM MISMATCH: %s" % (row["id"], a, c["mismatch"]))
            summary = "  ".join("%s %s" % (a, fmt_time(row, c) if is_ok(c) else "FAIL")
                                for a, c in cells.items())
            log("bench: %-16s %5.1f s  %s" % (row["id"], time.monotonic() - t0, summary))
    except KeyboardInterrupt:
        interrupted = True
        ctx["problems"].append("interrupted")
        log("bench: interrupted; writing what was measured")
    finally:
        for p in list(_live_children):
            stop(p)

    hot = (None, "skipped (--no-hotpath)")
    if not args.no_hotpath and not interrupted:
        hot = hotpath(build, {a: preload[a] for a in ALLOCATORS if avail.get(a)})
        if hot[0] is None:
            log("bench: hot path: %s" % hot[1])

    tr, rr = ratios(rows, results, allocs)
    os.makedirs(outdir, exist_ok=True)
    charts = {}
    charts["time"] = chart(os.path.join(outdir, "time.png"),
                           "Wall time relative to the best peer (lower is better; redis: inverse throughput; log scale)",
                           "time / best of glibc, jemalloc, tcmalloc, mimalloc",
                           rows, results, run_allocs, tr, tools["gnuplot"], tmp, log_y=True)
    charts["rss"] = chart(os.path.join(outdir, "rss.png"),
                          "Peak RSS relative to jemalloc (lower is better; log scale)",
                          "peak RSS / jemalloc's", rows, results, run_allocs, rr, tools["gnuplot"], tmp,
                          log_y=True)
    if not tools["gnuplot"]:
        log("bench: gnuplot not installed: no charts")
    over = fixed_overhead(results)
    ttab, rtab, gt, gr = write_report(outdir, ctx, rows, results, allocs, avail, hot, charts, over,
                                      interrupted)
    shutil.rmtree(tmp, ignore_errors=True)

    print("== Time: median, (ratio to the best peer; < 1 beats every peer) ==")
    print(ttab)
    print("== Peak RSS: median, (ratio to jemalloc) ==")
    print(rtab)
    if hot[0]:
        print("== fast path (bench/hotpath.sh, callgrind) ==")
        print("\n".join("  " + l for l in hot[0]))
    else:
        print("== gort fast path: %s ==" % hot[1])
    if over:
        print("== fixed overhead: peak RSS of bench/small.c less glibc's ==")
        print("  " + "  ".join("%s %+d KiB" % (a, v) for a, v in over.items()))
    print()
    print("gort geomean over workloads 1-9: time %s x best peer, RSS %s x jemalloc" % (gt.get("gort"), gr.get("gort")))
    print("report: %s  (%.0f s)" % (os.path.join(outdir, "RESULTS.md"), time.monotonic() - t_start))
    bad = [p for p in ctx["problems"]]
    if bad:
        print()
        print("!!! %d problem%s:" % (len(bad), "s" if len(bad) > 1 else ""))
        for p in bad:
            print("!!!   " + p)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
