#!/usr/bin/env python3
"""segment-swr.py — time to serve a stale segmented object while the origin
takes --delay seconds to answer its revalidation.

A 1 MiB object on a scripted origin (tests/e2e/test_segments.py's
RangeObject: 206 to ranges, 304 to a matching If-None-Match), cached in
256 KiB segments (threshold 512K), `Cache-Control: max-age=1,
stale-while-revalidate=60`. Each round lets the head go stale, then times one
GET of a 300 KB range: with stale-while-revalidate it is served from the
stored segments at once while the revalidation runs in the background;
without it (an edge before issue #4) the viewer waits for the 304.

    tests/bench/segment-swr.py [--build build-rel] [--delay 1.0] [--rounds 5]
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.environ.get("MESHCDN_BUILD", os.path.join(HERE, "..", "..", "build-rel")))
ap.add_argument("--delay", type=float, default=1.0)
ap.add_argument("--rounds", type=int, default=5)
args = ap.parse_args()
os.environ["MESHCDN_BUILD"] = os.path.abspath(args.build)

import mcharness as h                      # noqa: E402 (after MESHCDN_BUILD)
from scriptorigin import ScriptOrigin      # noqa: E402
from test_segments import SIZE, RangeObject  # noqa: E402

tmp = h.tempdir()
origin = ScriptOrigin()
obj = RangeObject(os.urandom(SIZE))
obj.cc = "max-age=1, stale-while-revalidate=60"
origin.route("/big.glb", obj)
edge = h.Daemon("meshcdn-edge", [
    "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--origin", origin.url, "--origin-sign", "none",
    "--store", f"{tmp}/store", "--store-size", "64M", "--workers", "1", "--node-id", "bench",
    "--cache.mesh_validation", "off", "--edge.segment_threshold", "512K", "--edge.segment_size", "256K"],
    listeners=("http", "admin"))
try:
    h.http("GET", *edge.addr["http"], "/big.glb", {}, timeout=30)   # stored as head + 4 segments
    ms = []
    for _ in range(args.rounds):
        obj.delay = 0.0
        time.sleep(2.2)                    # stale
        obj.delay = args.delay
        t = time.monotonic()
        s, hd, body, complete = h.http("GET", *edge.addr["http"], "/big.glb", {"Range": "bytes=300000-600000"},
                                       timeout=30)
        ms.append((time.monotonic() - t) * 1000)
        print(f"{ms[-1]:8.1f} ms  {s}  {hd.get('cache-status', [''])[0]}")
        time.sleep(args.delay + 0.3)       # let the revalidation land
    print(f"median {statistics.median(ms):.1f} ms over {args.rounds} rounds (origin delay {args.delay} s)")
finally:
    edge.stop()
    origin.stop()
