#!/usr/bin/env python3
"""memory.py — issue 10's two memory marks for meshcdn-edge (one worker):

  idle:  RSS per idle keep-alive connection. 10,000 connections each make one
         request (a 4 KiB hit) and then stay open, idle; the edge's RSS and
         anonymous RSS after, minus before, over the count.
  index: in-memory index bytes per stored object. The edge starts on a store
         of N objects filled by mc-populate, and on an empty store of the same
         size; the difference in anonymous RSS (heap: the eviction index and
         whatever else grows with the objects; the LMDB map is file-backed and
         not counted) over N.

    tests/bench/memory.sh [--conns 10000] [--objects 1000000] [--only idle,index] [--store-dir DIR]

Run through memory.sh (it raises `ulimit -n` and builds in Release). stdlib only.
"""

import argparse
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) * 1024
    return out


def start_edge(a, store, size, extra=()):
    port, admin = C.free_port(), C.free_port()
    p = C.start("meshcdn", [f"{a.exe}/mcb-edge", "--origin", f"http://127.0.0.1:{a.oport}/assets",
                            "--origin-sign", "none", "--store", store, "--store-size", size,
                            "--workers", "1", "--listen", f"127.0.0.1:{port}", "--admin",
                            f"127.0.0.1:{admin}", "--node-id", "bench", "--log-level", "warn",
                            "--cache.mesh_validation", "off", *extra], f"{a.run}/edge.log", 1)
    C.wait_port(port, p, "meshcdn-edge", timeout=120)
    return p, port


def settle(pid, secs=1.0):
    time.sleep(secs)
    return status(pid)


def idle(a, path):
    p, port = start_edge(a, f"{a.run}/store-idle", "1G",
                         ["--edge.max_connections", str(a.conns + 100), "--edge.client_timeout", "600s"])
    for _ in range(3):
        C.get(port, path)
    # a few warm-up connections so the loop's own buffers are already there
    before = settle(p.pid)
    req = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    socks = []
    t0 = time.time()
    for i in range(a.conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
        if len(socks) % 500 == 0:       # read the answers in batches: keeps the backlog small
            drain(socks[-500:])
    drain(socks[len(socks) - len(socks) % 500:])
    after = settle(p.pid, 2.0)
    alive = sum(1 for s in socks if alive_sock(s))
    res = {k: (after[k] - before[k]) / a.conns for k in after}
    print(f"idle keep-alive connections: {a.conns} opened in {time.time() - t0:.1f} s, {alive} still open; "
          f"edge RSS {before['VmRSS'] / 2**20:.1f} -> {after['VmRSS'] / 2**20:.1f} MiB, "
          f"anonymous {before['RssAnon'] / 2**20:.1f} -> {after['RssAnon'] / 2**20:.1f} MiB")
    print(f"per idle connection: {res['VmRSS']:.0f} bytes RSS, {res['RssAnon']:.0f} bytes anonymous")
    for s in socks:
        s.close()
    C.stop(p)


def drain(socks):
    """Read each socket's answer (headers and Content-Length body)."""
    for s in socks:
        buf = b""
        s.settimeout(30)
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, _, body = buf.partition(b"\r\n\r\n")
        n = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
        while len(body) < n:
            body += s.recv(65536)


def alive_sock(s):
    p = select.poll()
    p.register(s, select.POLLIN)
    return not p.poll(0)   # readable with nothing sent means EOF: closed by the edge


def index(a):
    n = a.objects
    # warm-restart.sh's sizing: the eviction index has one slot per 32 KiB of store
    size_g = (n + 32767) // 32768
    pow2 = 8
    while pow2 < size_g:
        pow2 *= 2
    size = f"{pow2}G"
    store = a.store_dir or f"{a.run}/store-{n}"
    if not os.path.exists(f"{store}/data.mdb"):
        t0 = time.time()
        subprocess.run([f"{a.bin}/mc-populate", "--store", store, "--store-size", size, "--count", str(n)],
                       check=True)
        C.log(f"populated {n} objects in {time.time() - t0:.0f} s")
    res = {}
    for label, st in (("empty", f"{a.run}/store-empty"), ("full", store)):
        p, _ = start_edge(a, st, size)
        res[label] = settle(p.pid, 5.0)   # the index is rebuilt from the store at start
        C.stop(p)
    d = {k: res["full"][k] - res["empty"][k] for k in res["full"]}
    print(f"store of {n} objects ({size} map): edge anonymous RSS {res['empty']['RssAnon'] / 2**20:.1f} MiB "
          f"empty, {res['full']['RssAnon'] / 2**20:.1f} MiB full; RSS {res['empty']['VmRSS'] / 2**20:.1f} -> "
          f"{res['full']['VmRSS'] / 2**20:.1f} MiB (file-backed map pages: {res['full']['RssFile'] / 2**20:.1f} MiB)")
    print(f"in-memory index per stored object: {d['RssAnon'] / n:.1f} bytes (anonymous RSS difference / objects)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--objects", type=int, default=1000000)
    ap.add_argument("--only", default="idle,index")
    ap.add_argument("--store-dir", help="populated store to reuse (index)")
    ap.add_argument("--run-dir")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    a.run = a.run_dir or tempfile.mkdtemp(prefix="mcmem-")
    a.exe = f"{a.run}/bin"
    os.makedirs(a.exe, exist_ok=True)
    for src, dst in (("meshcdn-origin", "mcb-origin"), ("meshcdn-edge", "mcb-edge")):
        if not os.path.lexists(f"{a.exe}/{dst}"):
            os.symlink(f"{a.bin}/{src}", f"{a.exe}/{dst}")
    try:
        subprocess.run([f"{a.bin}/meshcdn-load", "catalog", "--out", f"{a.run}/root/assets", "--count", "1",
                        "--seed", "3", "--sizes", "fixed:4k", "--gltf-count", "0", "--prefix", "hot/4k/"],
                       check=True, stderr=subprocess.DEVNULL)
        import json
        with open(f"{a.run}/root/assets/index.json") as f:
            path = json.load(f)["objects"][0]["path"]
        origin = C.Origin(a, a.run)
        a.oport = origin.port
        print(f"load average: {C.loadavg()}")
        if "idle" in a.only:
            idle(a, path)
        if "index" in a.only:
            index(a)
    finally:
        C.stop_all()
        if not a.run_dir:
            shutil.rmtree(a.run, ignore_errors=True)


if __name__ == "__main__":
    main()
