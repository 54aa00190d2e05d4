"""A large hit is written straight from the store's map as far as the
viewer's socket takes it, then waits for the socket (issue 10): a viewer
that stops reading is closed after [edge] client_timeout and counted as an
abort, the worker goes on serving others meanwhile, and viewers reading at
any pace (stalling, resuming, pipelining a second request) get exact
bodies, on one worker and across keep-alive."""

import hashlib
import socket
import threading
import time
import unittest

import mcharness as h
from scriptorigin import ScriptOrigin

BIG = hashlib.sha256(b"seed").digest() * (3 << 15)   # 3 MiB, not periodic in 256 KiB
HUGE = hashlib.sha256(b"huge").digest() * (1 << 20)  # 32 MiB: more than the socket buffers hold
SMALL = b"x" * 5000


class HitStream(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.origin = ScriptOrigin()
        self.addCleanup(self.origin.stop)
        self.origin.route("/big.bin", lambda req: (200, {"Cache-Control": "max-age=600"}, BIG))
        self.origin.route("/huge.bin", lambda req: (200, {"Cache-Control": "max-age=600"}, HUGE))
        self.origin.route("/small.glb", lambda req: (200, {"Cache-Control": "max-age=600"}, SMALL))
        self.d = h.Daemon("meshcdn-edge", ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                           "--origin", self.origin.url, "--origin-sign", "none",
                                           "--store", f"{self.tmp}/store", "--store-size", "256M",
                                           "--workers", "1", "--edge.client_timeout", "2s"],
                          listeners=("http", "admin"))
        self.addCleanup(self.d.stop)
        host, port = self.d.addr["http"]
        for path, body in (("/big.bin", BIG), ("/huge.bin", HUGE), ("/small.glb", SMALL)):
            for _ in range(2):                                   # stored, then a hit
                s, hd, b, _ = h.http("GET", host, port, path, timeout=30)
                self.assertEqual((s, b), (200, body))
        self.assertEqual(hd.get("x-cache"), ["Hit from meshcdn"])

    def connect(self, rcvbuf=32 << 10):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)   # before connect: a small window
        s.settimeout(30)
        s.connect(self.d.addr["http"])
        return s

    def hits(self):
        return sum(v for k, v in h.metrics(*self.d.addr["admin"]).items()
                   if k.startswith("meshcdn_edge_requests_total{") and 'result="hit"' in k)

    def aborts(self):
        return h.metrics(*self.d.addr["admin"]).get("meshcdn_edge_client_aborts_total", 0)

    def test_a_viewer_that_stops_reading_is_closed_after_the_client_timeout(self):
        before = self.aborts()
        s = self.connect()
        s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(1024)
        self.assertTrue(first.startswith(b"HTTP/1.1 200"), first[:40])
        t0 = time.monotonic()
        # the worker is not held by the stalled viewer: others are served at once
        for _ in range(5):
            t1 = time.monotonic()
            self.assertEqual(h.http("GET", *self.d.addr["http"], "/small.glb", timeout=5)[2], SMALL)
            self.assertLess(time.monotonic() - t1, 1.0)
        deadline = time.monotonic() + 10
        while self.aborts() == before and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.aborts(), before + 1, "the stalled viewer was not cut")
        self.assertGreater(time.monotonic() - t0, 1.8)             # not before the timeout
        s.settimeout(5)
        got = len(first) + h.count_until_close(s)                  # what was queued, then the close
        self.assertLess(got, len(HUGE))                            # cut: never a complete-looking body
        s.close()

    def test_an_answer_whose_tail_waits_for_the_socket_is_counted_once(self):
        # a 4 KiB receive buffer read slowly: the socket takes the last chunk
        # in pieces, so its tail is offered more than once
        before = self.hits()
        for _ in range(10):
            s = self.connect(rcvbuf=4096)
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = bytearray()
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data.extend(chunk)
                time.sleep(0.0005)
            s.close()
            self.assertTrue(data.endswith(BIG) and len(data) - len(BIG) < 1024, len(data))
        self.assertEqual(self.hits() - before, 10)

    def test_slow_and_stalling_viewers_get_exact_bodies(self):
        results = {}

        def viewer(i):
            s = self.connect(rcvbuf=(16 << 10) * (i + 1))
            try:
                # two requests pipelined on one connection: both hits, in order
                s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                bodies = []
                for _ in range(2):
                    head, body = None, bytearray()
                    buf = bytearray()
                    while b"\r\n\r\n" not in buf:
                        buf.extend(s.recv(1))
                    head = buf.decode("latin-1")
                    n = int([ln.split(":", 1)[1] for ln in head.split("\r\n")
                             if ln.lower().startswith("content-length")][0])
                    stalls = 0
                    while len(body) < n:
                        chunk = s.recv(min(n - len(body), 24 << 10))
                        if not chunk:
                            break
                        body.extend(chunk)
                        if i % 2 and len(body) >> 19 > stalls:
                            stalls += 1
                            time.sleep(0.3)                        # stall every 512 KiB (below the timeout)
                    bodies.append((head.split("\r\n")[0], bytes(body)))
                results[i] = bodies
            finally:
                s.close()

        before = self.hits()
        threads = [threading.Thread(target=viewer, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(sorted(results), list(range(6)))
        for i, bodies in results.items():
            for status, body in bodies:
                self.assertEqual(status, "HTTP/1.1 200 OK", i)
                self.assertEqual(len(body), len(BIG), i)
                self.assertTrue(body == BIG, f"viewer {i}: body differs")
        self.assertEqual(self.origin.count("/big.bin"), 1)
        # each answer counted once, though its last bytes were offered again after a stall
        self.assertEqual(self.hits() - before, 12)


if __name__ == "__main__":
    unittest.main()
