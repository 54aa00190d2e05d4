#!/usr/bin/env python3
"""instr.py — user-space instructions per hit, counted exactly (valgrind
callgrind: the server's own code and its libraries, not the kernel; the VM
has no hardware counters for perf). meshcdn-edge and nginx proxy_cache each
run under callgrind (nginx with master_process off), are warmed, then
counters are zeroed, meshcdn-load sends exactly N keep-alive requests for one
object, and the dump's total over N is the figure. Varnish is not measured
this way (its child and thread pools do not run under valgrind sensibly).

    tests/bench/instr.sh [--sizes 4k,64k] [--requests 20000] [--connections 16]

Load on the machine does not change the counts (only how long it takes).
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402

VG = ["valgrind", "--tool=callgrind", "--collect-atstart=yes", "--trace-children=no"]


def ctl(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def total_ir(outdir, before):
    """Ir of the dumps written since `before` (a set of file names)."""
    ir = 0
    for fn in sorted(set(glob.glob(f"{outdir}/callgrind.out*")) - before):
        with open(fn) as f:
            for line in f:
                m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                if m:
                    ir += int(m.group(1))
                    break
    return ir


def measure(a, name, pid, port, path, outdir):
    for _ in range(3):
        C.get(port, path, timeout=60)
    # a short run first: connections, buffers and caches as in the steady state
    load(a, port, path, 500)
    ctl(pid, "-z")
    before = set(glob.glob(f"{outdir}/callgrind.out*"))
    load(a, port, path, a.requests)
    ctl(pid, "-d")
    time.sleep(1)
    return total_ir(outdir, before) / a.requests


def load(a, port, path, n):
    trace = f"{a.run}/trace"
    with open(trace, "w") as f:
        f.write(path + "\n")
    subprocess.run(["taskset", "-c", "0", f"{a.bin}/meshcdn-load", "run", "--target", f"http://127.0.0.1:{port}",
                    "--trace", trace, "--connections", str(a.connections), "--requests", str(n), "--timeout", "60s",
                    "--quiet", "--no-optimum", "--json", f"{a.run}/load.json"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(f"{a.run}/load.json") as f:
        tot = json.load(f)["total"]
    if sum(tot["errors"].values()):
        C.log(f"  warning: meshcdn-load errors {tot['errors']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sizes", default="4k,64k")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--targets", default="meshcdn,nginx-cache")
    ap.add_argument("--run-dir")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    a.run = a.run_dir or tempfile.mkdtemp(prefix="mcinstr-")
    C.bench_exe(a, a.run)
    sizes = [s for s in C.SIZES if s[0] in a.sizes.split(",")]
    try:
        paths = C.hot_objects(a, a.run, [label for label, _ in sizes])
        origin = C.Origin(a, a.run)
        print(f"| size | target | user-space instructions per request (callgrind, {a.requests} requests, "
              f"{a.connections} connections) |")
        print("|---|---|---|")
        rows = {}
        for tname in a.targets.split(","):
            d = f"{a.run}/{tname}"
            os.makedirs(d)
            port = C.free_port()
            if tname == "meshcdn":
                admin = C.free_port()
                argv = VG + [f"--callgrind-out-file={d}/callgrind.out.%p", f"{a.exe}/mcb-edge", "--origin",
                             f"http://127.0.0.1:{origin.port}/assets", "--origin-sign", "none", "--store",
                             f"{d}/store", "--store-size", "1G", "--workers", "1", "--listen",
                             f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}", "--node-id", "bench",
                             "--log-level", "warn", "--cache.mesh_validation", "off"]
            else:
                C.nginx_conf(d, C.NGINX_CACHE.format(oport=origin.port, dir=d, port=port, max_size=""), "off")
                conf = open(f"{d}/nginx.conf").read().replace("master_process on;", "master_process off;")
                open(f"{d}/nginx.conf", "w").write(conf)
                argv = VG + [f"--callgrind-out-file={d}/callgrind.out.%p", "nginx", "-p", d, "-c",
                             f"{d}/nginx.conf", "-e", f"{d}/error.log"]
            p = C.start(tname, argv, f"{d}/stdout.log", 1)
            C.wait_port(port, p, tname, timeout=120)
            pid = p.pid
            for label, _ in sizes:
                rows[(label, tname)] = measure(a, tname, pid, port, paths[label], d)
                C.log(f"{label} {tname}: {rows[(label, tname)]:,.0f} instructions per request")
            C.stop(p, timeout=60)
        for label, _ in sizes:
            for tname in a.targets.split(","):
                print(f"| {label} | {tname} | {rows[(label, tname)]:,.0f} |")
    finally:
        C.stop_all()
        if not a.run_dir:
            shutil.rmtree(a.run, ignore_errors=True)


if __name__ == "__main__":
    main()
