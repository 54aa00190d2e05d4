#!/usr/bin/env python3
"""prefetch-hit-instr.py — what glTF prefetch costs a hit: user-space
instructions inside mc_prefetch_hit (prefetch.h), counted exactly with
valgrind callgrind (--toggle-collect=mc_prefetch_hit), per hit of a stored
.gltf and of another object, with [cache] prefetch on and off.

    tests/bench/prefetch-hit-instr.py [--build build-rel] [--hits 1000]

Each figure is (Ir over 2N hits - Ir over N hits) / N: start-up and the
first hits (the .gltf's references checked once on its fill) cancel out.
Loopback only (127.0.0.1, ephemeral ports); stdlib + valgrind.
"""

import argparse
import functools
import glob
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(a, run_dir, origin_port, mode, path, n):
    """Ir inside mc_prefetch_hit over n hits of path (after a miss and one hit)."""
    out = os.path.join(run_dir, f"cg-{mode}-{n}-{os.path.basename(path)}")
    store = os.path.join(run_dir, "store")
    shutil.rmtree(store, ignore_errors=True)
    port, admin = free_port(), free_port()
    p = subprocess.Popen(["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=mc_prefetch_hit",
                          f"--callgrind-out-file={out}", os.path.join(a.build, "meshcdn-edge"),
                          "--origin", f"http://127.0.0.1:{origin_port}/b", "--origin-sign", "none",
                          "--store", store, "--store-size", "64M", "--workers", "1",
                          "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
                          "--log-level", "warn", "--cache.default_ttl", "1h", "--cache.prefetch", mode],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                c.connect()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        def get(p_):
            c.request("GET", p_)
            r = c.getresponse()
            r.read()
            return r.getheader("X-Cache", "")
        get(path)
        time.sleep(1)   # the prefetches of a .gltf's references end
        for _ in range(n):
            if not get(path).startswith("Hit"):
                raise SystemExit(f"{path} is not a hit")
    finally:
        p.terminate()
        p.wait(60)
    ir = 0
    for fn in glob.glob(out + "*"):
        with open(fn) as f:
            for line in f:
                m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                if m:
                    ir += int(m.group(1))
                    break
    return ir


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-rel"))
    ap.add_argument("--hits", type=int, default=1000)
    a = ap.parse_args()
    run_dir = tempfile.mkdtemp(prefix="meshcdn-prefetch-instr-")
    try:
        root = os.path.join(run_dir, "root", "b", "m")
        os.makedirs(root)
        with open(os.path.join(root, "a.gltf"), "w") as f:
            json.dump({"asset": {"version": "2.0"}, "buffers": [{"uri": "a.bin", "byteLength": 1000}],
                       "images": [{"uri": "t.png"}]}, f)
        for name in ("a.bin", "t.png"):
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"x" * 1000)
        srv = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Quiet, directory=os.path.join(run_dir, "root")))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        n = a.hits
        print(f"user-space instructions inside mc_prefetch_hit per hit ({n} vs {2 * n} hits, callgrind):")
        for mode in ("off", "on"):
            for path, what in (("/m/a.gltf", ".gltf"), ("/m/a.bin", "other object")):
                one = run(a, run_dir, srv.server_address[1], mode, path, n)
                two = run(a, run_dir, srv.server_address[1], mode, path, 2 * n)
                print(f"  prefetch={mode:3}  {what:13} {(two - one) / n:6.1f}")
        srv.shutdown()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
