#!/usr/bin/env python3
"""stalled-viewers.py — what do viewers that stop reading a large hit cost the
edge in memory? (issue 10: "no allocation per request beyond a pooled
connection buffer"; hit bodies go from the LMDB map to the socket and are
never copied into user space, see edge/lookup.h.)

Starts meshcdn-edge (one worker) in front of meshcdn-origin over one GLB of
SIZE, warms it (a hit from then on), opens N connections with small receive
buffers that each GET it and never read, and prints the edge's RssAnon
before and after (the kernel's socket buffers are not in it). With --bin2 the
same run for a second build, side by side.

    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench -j2
    python3 tests/bench/stalled-viewers.py --bin build-bench [--viewers 200] [--size 16M] [--bin2 OTHER]

Reuses compare.py's helpers. stdlib only.
"""

import argparse
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C  # noqa: E402


def rss_anon_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("RssAnon:")))


def one(a, run, label, path):
    t = C.start_meshcdn(a, f"{run}/edge-{label}", a.origin.port, 1 << 30)
    try:
        for _ in range(2):
            C.get(t.port, path)
        st, h, n = C.get(t.port, path)
        if st != 200 or not C.is_hit("meshcdn", h):
            raise SystemExit(f"{label}: not a hit after warming ({st})")
        before = rss_anon_kib(t.p.pid)
        socks = []
        for _ in range(a.viewers):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
            s.connect(("127.0.0.1", t.port))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            socks.append(s)
        time.sleep(a.settle)
        after = rss_anon_kib(t.p.pid)
        for s in socks:
            s.close()
        return before, after
    finally:
        C.stop(t.p)


def main():
    ap = argparse.ArgumentParser(description="edge memory with viewers stalled on a large hit")
    ap.add_argument("--bin", required=True, help="build directory with the meshcdn binaries")
    ap.add_argument("--bin2", help="a second build to run side by side (e.g. an older commit)")
    ap.add_argument("--viewers", type=int, default=200)
    ap.add_argument("--size", default="16M", choices=[s for s, _ in C.SIZES])
    ap.add_argument("--settle", type=float, default=3.0, help="seconds before RssAnon is read")
    a = ap.parse_args()
    run = tempfile.mkdtemp(prefix="mcstall-")
    builds = [("bin", os.path.abspath(a.bin))] + ([("bin2", os.path.abspath(a.bin2))] if a.bin2 else [])
    print(f"| build | viewers stalled on a {a.size} hit | edge RssAnon before (MiB) | after (MiB) |")
    print("|---|---|---|---|")
    try:
        a.bin = builds[0][1]
        C.bench_exe(a, run)
        path = C.hot_objects(a, run, [a.size])[a.size]
        a.origin = C.Origin(a, run)
        for label, b in builds:
            os.symlink(f"{b}/meshcdn-edge", f"{run}/bin/mcb-edge-{label}")
            os.replace(f"{run}/bin/mcb-edge-{label}", f"{run}/bin/mcb-edge")
            before, after = one(a, run, label, path)
            print(f"| {b} | {a.viewers} | {before / 1024:.1f} | {after / 1024:.1f} |", flush=True)
    finally:
        C.stop_all()


if __name__ == "__main__":
    main()
