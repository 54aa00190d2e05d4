#!/usr/bin/env python3
"""syscalls.py — the hit path's cost per request, measured in ways a loaded
machine does not move much: system calls per request (perf's
raw_syscalls:sys_enter, and strace -c for which ones) and CPU time per request
(perf's task-clock: the server's own user + system time), for meshcdn-edge,
nginx proxy_cache and Varnish, each with one worker on core 1 and wrk on core 0
(the placement of compare.py, whose helpers it uses).

    tests/bench/syscalls.sh [--sizes 4k,64k] [--seconds 5] [--no-strace] [--perf-record]

Counts are over every request wrk completed in the window (keep-alive, the
connections of compare.py: 64 at 4 KiB, 32 at 64 KiB); a wrk run's requests
divide the server's syscalls and CPU time counted over the same run. stdlib only.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace")


def serving_pid(t):
    """The process that answers the requests: meshcdn's (one worker thread),
    nginx's worker, Varnish's cache child."""
    if t.name == "meshcdn":
        return t.p.pid
    # t.p is taskset, which execs the server: same pid
    kids = children(t.p.pid)
    if t.name.startswith("nginx"):
        kids = [k for k in kids if "worker process" in cmdline(k)]
    return kids[0]


def wrk_count(url, conns, secs):
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--timeout", "10s",
                          url], capture_output=True, text=True, check=True).stdout
    n = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad or "Socket errors" in out:
        C.log(f"  warning: wrk saw errors:\n{out}")
    return n, float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def perf_stat(pid, url, conns, secs):
    """(requests, syscalls, task-clock ms, req/s) over one wrk run."""
    p = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter,task-clock", "-p", str(pid)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    n, rps = wrk_count(url, conns, secs)
    p.send_signal(signal.SIGINT)
    err = p.communicate()[1]
    vals = {}
    for line in err.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[0] and f[0][0].isdigit():
            vals[f[2]] = float(f[0])
    return n, vals.get("raw_syscalls:sys_enter", 0), vals.get("task-clock", 0), rps


def strace_top(pid, url, conns, secs, out):
    """Per-request count of each syscall (strace -c -f), over one wrk run."""
    p = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    n, _ = wrk_count(url, conns, secs)
    p.send_signal(signal.SIGINT)
    p.wait()
    calls = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m:
                calls[m.group(2)] = int(m.group(1))
    return {k: v / n for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}


def main():
    ap = argparse.ArgumentParser(description="syscalls and CPU time per hit: meshcdn vs nginx vs Varnish")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sizes", default="4k,64k")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--targets", default="meshcdn,nginx-cache,varnish")
    ap.add_argument("--no-strace", dest="strace", action="store_false")
    ap.add_argument("--perf-record", action="store_true", help="also perf record -g meshcdn at each size")
    ap.add_argument("--run-dir")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    sizes = [s for s in C.SIZES if s[0] in a.sizes.split(",")]
    run = a.run_dir or tempfile.mkdtemp(prefix="mcsys-")
    os.makedirs(run, exist_ok=True)
    C.bench_exe(a, run)
    try:
        paths = C.hot_objects(a, run, [label for label, _ in sizes])
        origin = C.Origin(a, run)
        targets = [t for t in C.start_caches(a, run, "sys", origin.port, 4 << 30)
                   if t.name in a.targets.split(",")]
        for t in targets:
            for label, size in sizes:
                for _ in range(3):
                    st, h, n = C.get(t.port, paths[label])
                if st != 200 or n != size or not C.is_hit(t.name, h):
                    raise SystemExit(f"{t.name} {label}: not a hit after warming")
        print(f"load average at start: {C.loadavg()}")
        print("| size | conns | target | requests | syscalls/req | CPU µs/req | req/s (noisy) | top syscalls per request (strace -c) |")
        print("|---|---|---|---|---|---|---|---|")
        for label, _ in sizes:
            conns = C.CONNS[label]
            for t in targets:
                pid = serving_pid(t)
                url = f"http://127.0.0.1:{t.port}{paths[label]}"
                n, sc, tc, rps = perf_stat(pid, url, conns, a.seconds)
                top = ""
                if a.strace:
                    per = strace_top(pid, url, conns, min(a.seconds, 3), f"{run}/strace-{t.name}-{label}.txt")
                    top = ", ".join(f"{k} {v:.2f}" for k, v in list(per.items())[:7])
                print(f"| {label} | {conns} | {t.name} | {n} | {sc / n:.2f} | {tc * 1000 / n:.1f} | {rps:,.0f} | {top} |",
                      flush=True)
                if a.perf_record and t.name == "meshcdn":
                    data = f"{run}/perf-{label}.data"
                    p = subprocess.Popen(["perf", "record", "-F", "20000", "-g", "-o", data, "-p", str(pid)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(0.3)
                    wrk_count(url, conns, a.seconds)
                    p.send_signal(signal.SIGINT)
                    p.wait()
                    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--percent-limit", "1.5",
                                          "--stdio", "-g", "none", "--sort", "symbol"],
                                         capture_output=True, text=True).stdout
                    with open(f"{run}/perf-{label}.txt", "w") as f:
                        f.write(rep)
                    C.log(f"perf report: {run}/perf-{label}.txt")
        print(f"load average at end: {C.loadavg()}")
    finally:
        C.stop_all()
        if not a.run_dir:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
