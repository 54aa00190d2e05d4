"""Issue #4's coalescing criterion: 1,000 concurrent requests for one cold
32 MiB object make exactly one origin request, and every client gets the
identical body.

The clients are raw non-blocking sockets on one selector (no thread per
client): each sends its GET at once, then the bodies are read as they come
and each is checked by length and CRC-32 against the origin's bytes (CRC-32
runs at memory speed in zlib; a cryptographic hash of 32 GiB would dominate
the run). MESHCDN_COALESCE_CLIENTS and MESHCDN_COALESCE_MIB set the size of
the run: the defaults (1,000 clients, 1 MiB: 1 GiB to deliver) keep the
suite's run short on a 2-core machine; the issue's own figure is

    MESHCDN_COALESCE_MIB=32 ctest -R coalesce --output-on-failure -V

(32 GiB to deliver; README "Coalescing" has the time it took).
"""

import collections
import os
import resource
import selectors
import socket
import time
import unittest
import zlib

import mcharness as h
from scriptorigin import ScriptOrigin

CLIENTS = int(os.environ.get("MESHCDN_COALESCE_CLIENTS", "1000"))
MIB = int(os.environ.get("MESHCDN_COALESCE_MIB", "1"))


class Client:
    def __init__(self, addr, path):
        self.sock = socket.create_connection(addr, timeout=30)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n".encode())
        self.sock.setblocking(False)
        self.head = b""
        self.status = None
        self.headers = {}
        self.length = None
        self.got = 0
        self.crc = 0
        self.done = False

    def feed(self, data):
        if self.status is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, data = self.head.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            self.length = int(self.headers.get("content-length", "-1"))
        self.got += len(data)
        self.crc = zlib.crc32(data, self.crc)


class TestCoalescing(unittest.TestCase):
    def test_concurrent_cold_requests_make_one_origin_request(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 2 * CLIENTS + 256            # this process's sockets, and the edge's (it inherits the limit)
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        body = os.urandom(MIB << 20)
        want_crc = zlib.crc32(body)
        tmp = h.tempdir(self)
        origin = ScriptOrigin()
        self.addCleanup(origin.stop)

        def handler(req):
            time.sleep(1.0)                 # every client is in before the first byte
            return 200, {"Cache-Control": "max-age=600", "Content-Type": "model/gltf-binary"}, body
        origin.route("/cold.glb", handler)
        edge = h.Daemon("meshcdn-edge", ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                         "--origin", origin.url, "--origin-sign", "none",
                                         "--store", f"{tmp}/store", "--store-size", f"{4 * MIB + 64}M",
                                         "--workers", "2", "--node-id", "co1", "--log-level", os.environ.get("MC_LOG", "info"),
                                         "--edge.client_timeout", "120s", "--store.stall_timeout", "60s"],
                        listeners=("http", "admin"), timeout=30)
        self.addCleanup(edge.stop)

        t0 = time.monotonic()
        clients = [Client(edge.addr["http"], "/cold.glb") for _ in range(CLIENTS)]
        t_sent = time.monotonic() - t0
        sel = selectors.DefaultSelector()
        for c in clients:
            sel.register(c.sock, selectors.EVENT_READ, c)
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        left = len(clients)
        deadline = time.monotonic() + 600
        while left and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=5):
                c = key.data
                try:
                    n = c.sock.recv_into(buf)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionError:
                    n = 0
                if n:
                    c.feed(view[:n])
                    if c.length is not None and c.got >= c.length:
                        n = 0
                if not n:
                    sel.unregister(c.sock)
                    c.sock.close()
                    c.done = True
                    c.t_done = time.monotonic() - t0
                    left -= 1
        elapsed = time.monotonic() - t0
        sel.close()
        for c in clients:
            if not c.done:
                c.sock.close()
        self.assertEqual(left, 0, "clients still waiting at the deadline")
        results = collections.Counter(c.headers.get("x-cache", "?") for c in clients)
        bad = [(c.status, c.got, c.length) for c in clients
               if (c.status, c.got, c.length, c.crc) != (200, len(body), len(body), want_crc)]
        self.assertEqual(bad, [], f"{len(bad)} clients got another body")
        self.assertEqual(origin.count("/cold.glb"), 1)
        m = h.metrics(*edge.addr["admin"])
        self.assertEqual(m['meshcdn_edge_upstream_requests_total{upstream="origin",code="200"}'], 1)
        for kind in results:
            ts = sorted(c.t_done for c in clients if c.headers.get("x-cache", "?") == kind)
            print(f"\n{kind}: first done {ts[0]:.2f} s, median {ts[len(ts) // 2]:.2f} s, last {ts[-1]:.2f} s")
        print(f"\n{CLIENTS} clients x {MIB} MiB: sent in {t_sent:.2f} s, all bodies in {elapsed:.1f} s "
              f"({CLIENTS * len(body) / elapsed / 1e9:.2f} GB/s); X-Cache {dict(results)}")


if __name__ == "__main__":
    unittest.main()
