"""SIGTERM drains meshcdn-edge (issue #9): no new connections, /readyz says
draining, idle keep-alive connections close at once, a download in progress
finishes intact, then the process exits 0; SIGINT (or drain_timeout) stops at
once."""

import signal
import socket
import time
import unittest

import mcharness as h
from scriptorigin import ScriptOrigin

BIG = bytes(range(256)) * (32 << 12)   # 32 MiB


class Drain(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.origin = ScriptOrigin()
        self.addCleanup(self.origin.stop)
        self.origin.route("/big.bin", lambda req: (200, {"Cache-Control": "max-age=600"}, BIG))
        self.origin.route("/small.glb", lambda req: (200, {"Cache-Control": "max-age=600"}, b"small"))

    def edge(self, *extra):
        d = h.Daemon("meshcdn-edge", ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                      "--origin", self.origin.url, "--origin-sign", "none",
                                      "--store", f"{self.tmp}/store", "--store-size", "256M",
                                      "--workers", "2"] + list(extra), listeners=("http", "admin"))
        self.addCleanup(d.stop)
        return d

    def slow_download(self, d):
        """Start a GET of /big.bin read slowly; returns the socket."""
        host, port = d.addr["http"]
        s = socket.create_connection((host, port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        s.sendall(f"GET /big.bin HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        return s

    def read_all(self, s):
        data = bytearray()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data.extend(chunk)
        return bytes(data)

    def test_sigterm_lets_a_download_finish_and_refuses_new_work(self):
        d = self.edge()
        self.assertEqual(h.http("GET", *d.addr["http"], "/big.bin", timeout=30)[2], BIG)   # stored: a hit now
        host, port = d.addr["http"]
        idle = socket.create_connection((host, port), timeout=10)   # keep-alive, between requests
        idle.sendall(f"GET /small.glb HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        self.assertEqual(h.read_response(idle)[2:], (b"small", True))   # head and body may come apart
        dl = self.slow_download(d)
        first = dl.recv(65536)          # the download is under way
        self.assertTrue(first.startswith(b"HTTP/1.1 200"))
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertIsNone(d.proc.poll(), "exited before the download finished")
        s, hd, b, c = h.http("GET", *d.addr["admin"], "/readyz")
        self.assertEqual((s, b), (503, b"not ready: draining\n"))
        self.assertEqual(idle.recv(65536), b"")                 # the idle one was closed
        with self.assertRaises(OSError):                        # no new connections
            h.http("GET", host, port, "/small.glb", timeout=2)
        body = first + self.read_all(dl)      # ends at EOF: closed once complete
        head, _, rest = body.partition(b"\r\n\r\n")
        self.assertEqual(rest, BIG)
        self.assertEqual(d.proc.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 10)
        dl.close()
        idle.close()

    def test_drain_timeout_bounds_the_wait(self):
        d = self.edge("--edge.drain_timeout", "1s")
        h.http("GET", *d.addr["http"], "/big.bin", timeout=30)
        dl = self.slow_download(d)
        dl.recv(65536)
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)       # the viewer never reads again
        self.assertEqual(d.proc.wait(10), 0)
        self.assertLess(time.monotonic() - t0, 5)
        dl.close()

    def test_sigint_stops_at_once(self):
        d = self.edge()
        h.http("GET", *d.addr["http"], "/big.bin", timeout=30)
        dl = self.slow_download(d)
        dl.recv(65536)
        t0 = time.monotonic()
        self.assertEqual(d.stop(sig=signal.SIGINT), 0)
        self.assertLess(time.monotonic() - t0, 3)
        dl.close()


if __name__ == "__main__":
    unittest.main()
