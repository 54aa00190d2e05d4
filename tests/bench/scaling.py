#!/usr/bin/env python3
"""scaling.py — issue 10's "two workers on two cores serve at least 1.7x one
worker's hits", measured as honestly as a 2-core machine allows.

The machine has two cores and the load generator needs CPU too, so "2 workers
on 2 cores, clients elsewhere" cannot be run here. What can be measured:

 (a) Hits per edge CPU-second. The edge runs with --workers 1 and with
     --workers 2, both unpinned, driven by the same unpinned wrk (-t2), the
     two configurations interleaved over rounds. Each run counts wrk's
     requests and the edge's CPU time (utime + stime of all its threads,
     /proc/PID/stat). efficiency = (hits per edge CPU-second, 2 workers) /
     (same, 1 worker); if each of two workers had a core of its own, two
     workers would serve 2 x efficiency times one worker's hits (the
     projection assumes the per-request cost measured here holds when each
     worker has a whole core; it cannot see memory-bandwidth or cache
     limits of two busy cores). The raw req/s of both, and of the
     compare.py placement (1 worker on core 1, wrk -t1 on core 0), are
     printed too, with the CPU wrk used.
 (b) No shared lock on the hit path: perf counts futex calls per thread
     (syscalls:sys_enter_futex) over each 2-worker run; they are divided by
     the requests. A mutex that is contended shows up as futex calls; an
     uncontended one does not, so perf record's symbols for the 2-worker
     edge are listed too (--perf-record: any pthread_mutex / rwlock / lll_lock
     / atomic-heavy function above 0.5%).
 (c) Balance: per worker thread, accepted connections (accept4 calls: how
     SO_REUSEPORT spread wrk's connections) and requests (recvfrom calls:
     the edge reads each keep-alive request with one recv), from the same
     perf stat --per-thread run. The edge has no per-worker metrics.

    tests/bench/scaling.sh [--sizes 4k,64k] [--seconds 5] [--rounds 3] [--perf-record] [--mutex-probe] [--run-dir DIR]

Reuses compare.py's helpers (origin, objects, process handling). stdlib only.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
EVENTS = ["syscalls:sys_enter_accept4", "syscalls:sys_enter_recvfrom", "syscalls:sys_enter_writev",
          "syscalls:sys_enter_futex", "syscalls:sys_enter_epoll_wait", "raw_syscalls:sys_enter", "task-clock"]


def cpu_s(pid):
    """utime + stime of a process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / TICK


def start_edge(a, d, oport, workers, core):
    """meshcdn-edge with W workers; core None = unpinned (both cores)."""
    os.makedirs(d)
    port, admin = C.free_port(), C.free_port()
    argv = [f"{a.exe}/mcb-edge", "--origin", f"http://127.0.0.1:{oport}/assets", "--origin-sign", "none",
            "--store", f"{d}/store", "--store-size", str(1 << 30), "--workers", str(workers),
            "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}", "--node-id", "bench",
            "--log-level", "warn", "--cache.mesh_validation", "off"]
    p = C.start(f"edge-{workers}", argv, f"{d}/edge.log", core if core is not None else "0,1")
    C.wait_port(port, p, "meshcdn-edge")
    return C.Target("meshcdn", port, p, d, admin)


def wrk_run(url, conns, secs, threads, core):
    """(requests, req/s, p99 ms, errors, wrk CPU seconds)."""
    argv = ["taskset", "-c", core, "wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency",
            "--timeout", "10s", url]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = status
    n = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = C.ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    err = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    err += int(m.group(1)) if m else 0
    return n, rps, p99, err, ru.ru_utime + ru.ru_stime


def measured(t, url, conns, secs, threads, core, per_thread):
    """One wrk run against t, with the edge's CPU time and (per_thread) perf stat per thread."""
    perf = None
    if per_thread:
        perf = subprocess.Popen(["perf", "stat", "--per-thread", "-x,", "-e", ",".join(EVENTS), "-p", str(t.p.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
    c0 = cpu_s(t.p.pid)
    n, rps, p99, err, wcpu = wrk_run(url, conns, secs, threads, core)
    cpu = cpu_s(t.p.pid) - c0
    threads_ = {}
    if perf:
        perf.send_signal(signal.SIGINT)
        for line in perf.communicate()[1].splitlines():
            f = line.split(",")
            if len(f) > 3 and f[1] and f[1][0].isdigit():
                threads_.setdefault(f[0], {})[f[3]] = float(f[1])
    return {"n": n, "rps": rps, "p99": p99, "errors": err, "cpu": cpu, "wrk_cpu": wcpu, "threads": threads_}


def mutex_probe(t, paths, sizes, a, run):
    """Every pthread_mutex_lock of the 2-worker edge under hits, by thread and mutex address: a lock
    shared by the workers is an address both worker threads take."""
    libc = re.search(r"(/\S+/libc\.so\.6)", subprocess.run(["ldd", f"{a.bin}/meshcdn-edge"], capture_output=True,
                                                            text=True).stdout).group(1)
    subprocess.run(["perf", "probe", "-q", "-x", libc, "-a", "mcscale_mutex=pthread_mutex_lock mutex=%di:u64"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print("\n(b) pthread_mutex_lock calls of the 2-worker edge (uprobe on libc), by thread and mutex:\n")
    print("| size | requests | thread | mutex (address) | locks | locks per request |")
    print("|---|---|---|---|---|---|")
    for label, _ in sizes:
        data = f"{run}/mutex-{label}.data"
        p = subprocess.Popen(["perf", "record", "-e", "probe_libc:mcscale_mutex", "-o", data, "-p", str(t.p.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        n = wrk_run(f"http://127.0.0.1:{t.port}{paths[label]}", C.CONNS[label], 3, 2, "0,1")[0]
        p.send_signal(signal.SIGINT)
        p.wait()
        out = subprocess.run(["perf", "script", "-i", data, "-F", "tid,trace"], capture_output=True, text=True).stdout
        count = {}
        for line in out.splitlines():
            m = re.match(r"\s*(\d+)\s+.*mutex=(\S+)", line)
            if m:
                count[(m.group(1), m.group(2))] = count.get((m.group(1), m.group(2)), 0) + 1
        owners = {}
        for (tid, mx) in count:
            owners.setdefault(mx, set()).add(tid)
        for (tid, mx), c in sorted(count.items(), key=lambda kv: -kv[1]):
            shared = " (shared: also " + ",".join(sorted(owners[mx] - {tid})) + ")" if len(owners[mx]) > 1 else ""
            print(f"| {label} | {n:,} | {tid} | {int(mx, 0):#x}{shared} | {c:,} | {c / n:.2f} |")
        print(f"| {label} | | | mutexes taken by more than one thread: "
              f"{sum(1 for o in owners.values() if len(o) > 1)} | | |", flush=True)


def main():
    ap = argparse.ArgumentParser(description="one edge worker vs two: hits per CPU-second, futexes, balance")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sizes", default="4k,64k")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--perf-record", action="store_true", help="perf record -g the 2-worker edge at each size")
    ap.add_argument("--mutex-probe", action="store_true",
                    help="uprobe libc's pthread_mutex_lock in the 2-worker edge: which mutexes each thread takes")
    ap.add_argument("--run-dir")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    sizes = [s for s in C.SIZES if s[0] in a.sizes.split(",")]
    run = a.run_dir or tempfile.mkdtemp(prefix="mcscale-")
    os.makedirs(run, exist_ok=True)
    C.bench_exe(a, run)
    try:
        paths = C.hot_objects(a, run, [label for label, _ in sizes])
        origin = C.Origin(a, run)
        # "pinned": compare.py's placement; "w1"/"w2": unpinned edge, unpinned wrk -t2
        edges = {"pinned": start_edge(a, f"{run}/pinned", origin.port, 1, 1),
                 "w1": start_edge(a, f"{run}/w1", origin.port, 1, None),
                 "w2": start_edge(a, f"{run}/w2", origin.port, 2, None)}
        for t in edges.values():
            for label, size in sizes:
                for _ in range(3):
                    st, h, n = C.get(t.port, paths[label])
                if st != 200 or n != size or not C.is_hit("meshcdn", h):
                    raise SystemExit(f"{label}: not a hit after warming")
        print(f"meshcdn scaling — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
              f"{os.cpu_count()} cores, {C.platform_line()}")
        print(f"load average at start: {C.loadavg()}", flush=True)
        res = {}
        for rnd in range(a.rounds):
            for label, _ in sizes:
                conns = C.CONNS[label]
                for key, threads, core in (("pinned", 1, "0"), ("w1", 2, "0,1"), ("w2", 2, "0,1")):
                    t = edges[key]
                    r = measured(t, f"http://127.0.0.1:{t.port}{paths[label]}", conns, a.seconds, threads, core,
                                 per_thread=key == "w2")
                    res.setdefault((label, key), []).append(r)
                    C.log(f"round {rnd + 1} {label} {key}: {r['rps']:,.0f} req/s, edge CPU {r['cpu']:.2f} s, "
                          f"{r['n'] / max(r['cpu'], 1e-9):,.0f} hits per edge CPU-s, wrk CPU {r['wrk_cpu']:.2f} s, "
                          f"errors {r['errors']}")
        print(f"load average at end: {C.loadavg()}\n")
        print(f"(a) {a.rounds} rounds of {a.seconds} s, interleaved; medians. pinned = compare.py's placement "
              "(1 worker on core 1, wrk -t1 on core 0); 1w / 2w = edge --workers 1 / 2 and wrk -t2, all unpinned.\n")
        print("| size | conns | edge | req/s | edge CPU-s per s | hits per edge CPU-s | wrk CPU-s per s | p99 ms | errors |")
        print("|---|---|---|---|---|---|---|---|---|")
        summary = []
        for label, _ in sizes:
            per = {}
            for key, name in (("pinned", "1 worker, pinned"), ("w1", "1 worker"), ("w2", "2 workers")):
                rs = res[(label, key)]
                rps = statistics.median(r["rps"] for r in rs)
                eff = statistics.median(r["n"] / r["cpu"] for r in rs if r["cpu"] > 0)
                ecpu = statistics.median(r["cpu"] / a.seconds for r in rs)
                wcpu = statistics.median(r["wrk_cpu"] / a.seconds for r in rs)
                p99 = statistics.median(r["p99"] for r in rs)
                errs = sum(r["errors"] for r in rs)
                per[key] = (rps, eff)
                print(f"| {label} | {C.CONNS[label]} | {name} | {rps:,.0f} | {ecpu:.2f} | {eff:,.0f} | {wcpu:.2f} | "
                      f"{p99:.2f} | {errs} |")
            effr = per["w2"][1] / per["w1"][1]
            summary.append(f"| {label} | {effr:.2f} | {2 * effr:.2f} | {per['w2'][0] / per['w1'][0]:.2f} | "
                           f"{per['w2'][0] / per['pinned'][0]:.2f} |")
        print("\n| size | efficiency (hits per CPU-s, 2w / 1w) | projected 2 workers on 2 free cores (× one) "
              "| measured 2w / 1w req/s (clients share the cores) | measured 2w / pinned 1w req/s |")
        print("|---|---|---|---|---|")
        print("\n".join(summary))

        print("\n(b), (c) 2 workers, per thread (perf stat --per-thread, summed over the rounds; threads with "
              "no syscalls left out):\n")
        print("| size | thread | accept4 (connections) | recvfrom (≈ requests) | share of recvfrom | writev | "
              "futex | futex per 1,000 requests | epoll_wait per request | syscalls per request | CPU ms |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for label, _ in sizes:
            rs = res[(label, "w2")]
            n = sum(r["n"] for r in rs)
            agg = {}
            for r in rs:
                for th, ev in r["threads"].items():
                    d = agg.setdefault(th, {})
                    for k, v in ev.items():
                        d[k] = d.get(k, 0) + v
            total_recv = sum(d.get("syscalls:sys_enter_recvfrom", 0) for d in agg.values()) or 1
            futex_total = 0
            for th, d in sorted(agg.items(), key=lambda kv: -kv[1].get("syscalls:sys_enter_recvfrom", 0)):
                if not d.get("raw_syscalls:sys_enter"):
                    continue
                rv = d.get("syscalls:sys_enter_recvfrom", 0)
                fx = d.get("syscalls:sys_enter_futex", 0)
                futex_total += fx
                print(f"| {label} | {th} | {d.get('syscalls:sys_enter_accept4', 0):.0f} | {rv:,.0f} | "
                      f"{rv / total_recv:.2f} | {d.get('syscalls:sys_enter_writev', 0):,.0f} | {fx:.0f} | "
                      f"{1000 * fx / max(rv, 1):.2f} | {d.get('syscalls:sys_enter_epoll_wait', 0) / max(rv, 1):.3f} | "
                      f"{d.get('raw_syscalls:sys_enter', 0) / max(rv, 1):.2f} | {d.get('task-clock', 0):,.0f} |")
            print(f"| {label} | all | | {n:,} wrk requests | | | {futex_total:.0f} | "
                  f"{1000 * futex_total / n:.2f} | | | |")
        if a.perf_record:
            t = edges["w2"]
            for label, _ in sizes:
                data = f"{run}/perf-w2-{label}.data"
                p = subprocess.Popen(["perf", "record", "-F", "5000", "-g", "-o", data, "-p", str(t.p.pid)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
                wrk_run(f"http://127.0.0.1:{t.port}{paths[label]}", C.CONNS[label], a.seconds, 2, "0,1")
                p.send_signal(signal.SIGINT)
                p.wait()
                rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none",
                                      "--sort", "symbol", "--percent-limit", "0.05"],
                                     capture_output=True, text=True).stdout
                with open(f"{run}/perf-w2-{label}.txt", "w") as f:
                    f.write(rep)
                locks = [ln.strip() for ln in rep.splitlines()
                         if re.search(r"mutex|rwlock|lll_lock|futex|spin_lock|mc_stats|mc_counter", ln)
                         and re.match(r"\s*[\d.]+%", ln)]
                top = [ln.strip() for ln in rep.splitlines() if re.match(r"\s*[\d.]+%", ln)][:8]
                print(f"\nperf record -g, 2 workers, {label} ({run}/perf-w2-{label}.txt): top symbols")
                print("```\n" + "\n".join(top) + "\n```")
                print("lock/futex/shared-counter symbols:")
                print("```\n" + ("\n".join(locks) if locks else "(none above 0.05%)") + "\n```")
        if a.mutex_probe:
            mutex_probe(edges["w2"], paths, sizes, a, run)
    finally:
        C.stop_all()
        if a.mutex_probe:
            subprocess.run(["perf", "probe", "-q", "-d", "probe_libc:mcscale_mutex"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if not a.run_dir:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
