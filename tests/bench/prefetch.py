#!/usr/bin/env python3
"""prefetch.py — a cold product view through a cold edge, with and without glTF prefetch.

A product is a .gltf, its .bin and three textures on a real meshcdn-origin
(SigV4-signed by the edge). Between the edge and the origin sits a delaying
TCP proxy that makes the origin `--rtt` ms away: every byte takes rtt/2 each
way, and no byte of a new connection leaves before the connection is one
round trip old (the TCP handshake a real link costs: a connection opened
ahead of its first request, as the edge's preconnect does, has paid it). An optional second proxy puts the viewer
`--viewer-rtt` ms from the edge the same way (0: the viewer is on loopback).

The viewer does what a web viewer does: GET the .gltf, parse it, then GET
its buffers and images in parallel (one on the .gltf's keep-alive
connection, the others on new ones, like a browser over HTTP/1.1). Each
round starts a fresh edge on an empty store (cold cache, no upstream
connections), views the product once and stops the edge; rounds alternate
prefetch=off and prefetch=on. Prints the median wall time of each and the
ratio on/off, plus how the dependencies were served.

    tests/bench/prefetch.py [--rtt 80] [--viewer-rtt 0] [--rounds 7] [--preconnect N]
                            [--bin-size 1M] [--texture-size 256K] [--build build-rel]

Loopback only (127.0.0.1, ephemeral ports); stdlib only.
"""

import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def size_arg(s):
    m = re.fullmatch(r"(\d+)([KMG]?)", s.upper())
    if not m:
        raise argparse.ArgumentTypeError(f"{s!r} is not a size (1M, 256K, 1000)")
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


# ---------- the delaying proxy (its own thread and asyncio loop) ----------

class DelayProxy:
    """127.0.0.1:port -> target, each direction delayed by rtt/2; no client
    byte leaves before its connection is one rtt old (the handshake)."""

    def __init__(self, target_port, rtt_s):
        self.target_port = target_port
        self.half = rtt_s / 2
        self.rtt = rtt_s
        self.accepted = 0
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self):
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self):
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _pipe(self, reader, writer, open_at):
        """Forward reader -> writer, each chunk rtt/2 later. open_at: this is the
        client side and its connection was accepted then: no byte of it leaves
        before open_at + rtt (the handshake: SYN out, SYN-ACK back), so a
        connection opened ahead of use (preconnect) has paid it when it is used."""
        loop = asyncio.get_running_loop()
        last = 0.0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                at = max(loop.time() + self.half, last)   # keep order
                if open_at is not None:
                    at = max(at, open_at + self.rtt + self.half)
                last = at
                loop.call_at(at, writer.write, data)
            at = max(loop.time() + self.half, last)
            loop.call_at(at, writer.close)
        except (ConnectionError, OSError):
            writer.close()

    async def _conn(self, creader, cwriter):
        opened = asyncio.get_running_loop().time()
        self.accepted += 1
        try:
            oreader, owriter = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cwriter.close()
            return
        try:
            await asyncio.gather(self._pipe(creader, owriter, opened), self._pipe(oreader, cwriter, None))
        except asyncio.CancelledError:   # stop(): the proxy goes away with its connections
            owriter.close()
            cwriter.close()

    def stop(self):
        def shutdown():
            self.server.close()
            for t in asyncio.all_tasks(self.loop):
                t.cancel()
            self.loop.call_later(0.05, self.loop.stop)
        self.loop.call_soon_threadsafe(shutdown)
        self.thread.join(5)


# ---------- processes ----------

def start(cmd, log, pattern, timeout=10):
    f = open(log, "ab")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    found = {}
    while time.monotonic() < deadline:
        with open(log, errors="replace") as r:
            for m in re.finditer(r"msg=listening listener=(\S+) addr=127\.0\.0\.1:(\d+)", r.read()):
                found[m.group(1)] = int(m.group(2))
        if all(k in found for k in pattern):
            return p, found
        if p.poll() is not None:
            break
        time.sleep(0.02)
    p.kill()
    sys.exit(f"{cmd[0]} did not start; see {log}")


def stop(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()


def metrics(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    out = {}
    for line in c.getresponse().read().decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    c.close()
    return out


# ---------- the viewer ----------

def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError(f"GET {path}: {r.status}")
    return body, r.getheader("X-Cache", ""), r.getheader("Cache-Status", "")


def view(port, gltf_path):
    """The .gltf, then its buffers and images in parallel. Returns (seconds, seconds to the
    parsed .gltf, [(uri, x-cache, cache-status)])."""
    t0 = time.monotonic()
    first = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body, xc, cs = get(first, gltf_path)
    doc = json.loads(body)
    t_gltf = time.monotonic() - t0
    base = gltf_path.rsplit("/", 1)[0] + "/"
    uris = [b["uri"] for b in doc.get("buffers", [])] + [i["uri"] for i in doc.get("images", [])]
    results = [None] * len(uris)
    errors = []

    def fetch(i, conn):
        try:
            _, x, c = get(conn, base + uris[i])
            results[i] = (uris[i], x, c)
        except Exception as e:   # noqa: BLE001 — reported below
            errors.append(e)
        finally:
            conn.close()
    threads = [threading.Thread(target=fetch, args=(i, first if i == 0 else
                                                    http.client.HTTPConnection("127.0.0.1", port, timeout=30)))
               for i in range(len(uris))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    if errors:
        raise errors[0]
    return dt, t_gltf, results


# ---------- main ----------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rtt", type=float, default=80, help="edge-origin round trip, ms")
    ap.add_argument("--viewer-rtt", type=float, default=0, help="viewer-edge round trip, ms")
    ap.add_argument("--rounds", type=int, default=7, help="cold views per mode")
    ap.add_argument("--bin-size", type=size_arg, default=1 << 20)
    ap.add_argument("--texture-size", type=size_arg, default=256 << 10)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-rel"))
    ap.add_argument("--preconnect", type=int, default=None,
                    help="[prefetch] preconnect of the prefetch=on edge (default: the edge's default; 0: prefetch alone)")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    a = ap.parse_args()

    run = tempfile.mkdtemp(prefix="meshcdn-prefetch-bench-")
    try:
        root = os.path.join(run, "root", "assets", "product")
        os.makedirs(os.path.join(root, "textures"))
        uris = {"chair.bin": a.bin_size, "textures/base_color.png": a.texture_size,
                "textures/normal.png": a.texture_size, "textures/orm.jpg": a.texture_size}
        for u, n in uris.items():
            with open(os.path.join(root, u), "wb") as f:
                f.write(os.urandom(n))
        doc = {"asset": {"version": "2.0"},
               "buffers": [{"uri": "chair.bin", "byteLength": a.bin_size}],
               "images": [{"uri": u} for u in uris if u.startswith("textures/")],
               "textures": [{"source": i} for i in range(3)],
               "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0},
                                                       "metallicRoughnessTexture": {"index": 2}},
                              "normalTexture": {"index": 1}}]}
        with open(os.path.join(root, "chair.gltf"), "w") as f:
            json.dump(doc, f)
        keys = os.path.join(run, "keys")
        creds = os.path.join(run, "creds")
        for path in (keys, creds):
            with open(path, "w") as f:
                f.write("AKIDBENCHPREFETCH0001 benchsecretbenchsecretbenchsecret0001\n")
            os.chmod(path, 0o600)
        origin, oports = start([os.path.join(a.build, "meshcdn-origin"), "--root", os.path.join(run, "root"),
                                "--keys", keys, "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
                                "--control.db", os.path.join(run, "ctl")],
                               os.path.join(run, "origin.log"), ("s3",))
        oproxy = DelayProxy(oports["s3"], a.rtt / 1000)
        times = {"off": [], "on": []}
        first = {"off": [], "on": []}
        served = {"off": {}, "on": {}}
        conns = {"off": [], "on": []}
        used = []
        try:
            for rnd in range(a.rounds):
                for mode in ("off", "on") if rnd % 2 == 0 else ("on", "off"):
                    store = os.path.join(run, f"store-{mode}-{rnd}")
                    edge, eports = start([os.path.join(a.build, "meshcdn-edge"), "--listen", "127.0.0.1:0",
                                          "--admin", "127.0.0.1:0", "--workers", "2",
                                          "--origin", f"http://127.0.0.1:{oproxy.port}/assets",
                                          "--credentials", creds, "--store", store, "--store-size", "256M",
                                          "--cache.prefetch", mode]
                                         + (["--prefetch.preconnect", str(a.preconnect)]
                                            if a.preconnect is not None and mode == "on" else [])
                                         + os.environ.get("EDGE_ARGS", "").split(),
                                         os.path.join(run, f"edge-{mode}-{rnd}.log"), ("http", "admin"))
                    accepted0 = oproxy.accepted
                    vproxy = DelayProxy(eports["http"], a.viewer_rtt / 1000) if a.viewer_rtt > 0 else None
                    try:
                        dt, tg, res = view(vproxy.port if vproxy else eports["http"], "/product/chair.gltf")
                        times[mode].append(dt)
                        first[mode].append(tg)
                        for uri, xc, cs in res:
                            kind = "hit" if xc.startswith("Hit") else ("collapsed" if "collapsed" in cs else "miss")
                            served[mode][kind] = served[mode].get(kind, 0) + 1
                        m = metrics(eports["admin"])
                        conns[mode].append(oproxy.accepted - accepted0)
                        if mode == "on":
                            used.append(m.get('meshcdn_edge_upstream_preconnects_total{result="used"}', 0))
                        if mode == "on" and m.get("meshcdn_edge_prefetch_started_total", 0) < 1:
                            sys.exit("prefetch=on started no prefetch: is this build's edge the prefetching one?")
                    finally:
                        if vproxy:
                            vproxy.stop()
                        stop(edge)
                        shutil.rmtree(store, ignore_errors=True)
        finally:
            oproxy.stop()
            stop(origin)
        off, on = statistics.median(times["off"]), statistics.median(times["on"])
        print(f"cold product view: .gltf + .bin ({a.bin_size} B) + 3 textures ({a.texture_size} B each), "
              f"edge-origin RTT {a.rtt:g} ms, viewer-edge RTT {a.viewer_rtt:g} ms, {a.rounds} rounds each")
        for mode in ("off", "on"):
            t = sorted(times[mode])
            g = statistics.median(first[mode]) * 1000
            print(f"  prefetch={mode:3}  median {statistics.median(t) * 1000:7.1f} ms   "
                  f"min {t[0] * 1000:7.1f}  max {t[-1] * 1000:7.1f}   (.gltf {g:5.1f} ms, then "
                  f"dependencies {statistics.median(t) * 1000 - g:5.1f} ms)   dependencies: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(served[mode].items()))
                  + f"; upstream connections per view {statistics.median(conns[mode]):g}"
                  + (f" (preconnected and used {statistics.median(used):g})" if mode == "on" else ""))
        print(f"  ratio on/off: {on / off:.2f}  (target <= 0.60)")
        # the same model with no transfer or processing time (tests/bench/README.md): v viewer RTT, R origin RTT
        v, R = a.viewer_rtt, a.rtt
        ideal_off = 4 * v + 4 * R
        pre = a.preconnect is None or a.preconnect > 0
        ideal_on = max(4 * v + 2 * R, 2 * v + (3 if pre else 4) * R)
        print(f"  ideal model (no transfer time): off {ideal_off:g} ms, on {ideal_on:g} ms "
              f"({'with' if pre else 'without'} preconnect): {ideal_on / ideal_off:.2f}")
    finally:
        if a.keep:
            print(f"run directory kept: {run}")
        else:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
