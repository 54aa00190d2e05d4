"""Issue #4, late joiners: a viewer that asks for a key while its fill runs
(on another worker, or on the fill's own worker after its first byte went
out) streams the body from the running fill as it arrives (its committed
chunks, read from the store), from byte 0, instead of waiting for the
publish; a fill that fails ends every late joiner short.

The origin here is a deliberately slow one (a few MiB over a few seconds),
so "as it arrives" shows as timing with wide margins: a joiner's first byte
within 1.5 s of asking while the whole body takes 3 s or more. The edge runs
4 workers and each test sends several joiners, so some land on workers other
than the fill's (the kernel spreads connections by their ports); the edge's
meshcdn_edge_fill_late_joins_total{worker="other"} shows they did.
"""

import os
import selectors
import socket
import socketserver
import threading
import time
import unittest

import mcharness as h

MIB = 1 << 20


class SlowOrigin:
    """An HTTP origin serving one body slowly: `pieces` writes of equal size,
    `gap` seconds apart, with Content-Length (or chunked). `cut_after` (bytes)
    makes it close the connection after that many body bytes, a truncated
    fill. Counts the GETs per path."""

    def __init__(self, body, pieces, gap, chunked=False, cut_after=None):
        self.body, self.pieces, self.gap = body, pieces, gap
        self.chunked, self.cut_after = chunked, cut_after
        self.gets = {}
        self.lock = threading.Lock()
        origin = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data = b""
                while b"\r\n\r\n" not in data:
                    more = self.request.recv(4096)
                    if not more:
                        return
                    data += more
                line = data.split(b"\r\n", 1)[0].decode()
                method, path = line.split()[:2]
                with origin.lock:
                    origin.gets[path] = origin.gets.get(path, 0) + 1
                origin.serve(self.request, method)

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/b"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, sock, method):
        head = ("HTTP/1.1 200 OK\r\nContent-Type: model/gltf-binary\r\nCache-Control: max-age=600\r\n"
                'ETag: "v1"\r\nConnection: close\r\n')
        head += "Transfer-Encoding: chunked\r\n" if self.chunked else f"Content-Length: {len(self.body)}\r\n"
        sock.sendall((head + "\r\n").encode())
        if method == "HEAD":
            return
        step = len(self.body) // self.pieces
        sent = 0
        try:
            for i in range(self.pieces):
                part = self.body[i * step:(i + 1) * step if i < self.pieces - 1 else len(self.body)]
                if self.cut_after is not None and sent + len(part) > self.cut_after:
                    part = part[:self.cut_after - sent]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if self.chunked and part else part)
                sent += len(part)
                if self.cut_after is not None and sent >= self.cut_after:
                    sock.shutdown(socket.SHUT_RDWR)   # cut mid-body: no last chunk, short of the length
                    return
                time.sleep(self.gap)
            if self.chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass

    def count(self, path):
        with self.lock:
            return self.gets.get(path, 0)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Viewer:
    """One GET on its own socket, read on a thread: when its head and first
    body byte came, what it got, and whether the body was complete (the
    Content-Length reached, or chunked with its last chunk)."""

    def __init__(self, addr, path, headers=None, rate=None):
        self.addr, self.path, self.headers, self.rate = addr, path, headers or {}, rate
        self.status, self.hdrs, self.body, self.complete = None, {}, b"", False
        self.t_first = self.t_end = None
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t_ask = time.monotonic()
        self.thread.start()
        return self

    def join(self, timeout=60):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"viewer of {self.path} still reading"

    def _run(self):
        try:
            s = socket.create_connection(self.addr, timeout=30)
            if self.rate:   # a slow reader: a small receive buffer, read at rate bytes/s
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
            s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: edge\r\n{extra}Connection: close\r\n\r\n".encode())
            raw = b""
            while b"\r\n\r\n" not in raw:
                more = s.recv(65536)
                if not more:
                    raise ConnectionError("closed before the head")
                raw += more
            head, _, raw = raw.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                self.hdrs[k.strip().lower()] = v.strip()
            chunked = "chunked" in self.hdrs.get("transfer-encoding", "")
            length = int(self.hdrs.get("content-length", "-1"))
            while True:
                if raw and self.t_first is None:
                    self.t_first = time.monotonic()
                if not chunked and length >= 0 and len(raw) >= length:
                    break
                if chunked and raw.endswith(b"\r\n0\r\n\r\n"):
                    break
                try:
                    more = s.recv(16 << 10 if self.rate else 1 << 20)
                except ConnectionResetError:
                    more = b""
                if not more:
                    break
                raw += more
                if self.rate:
                    time.sleep(len(more) / self.rate)
            self.t_end = time.monotonic()
            s.close()
            if chunked:
                self.body, self.complete = _dechunk(raw)
            else:
                self.body, self.complete = raw[:max(length, 0)], length >= 0 and len(raw) >= length
        except Exception as e:   # reported by the test
            self.error = e


def _dechunk(raw):
    body, pos = b"", 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            return body, False
        size = int(raw[pos:end].split(b";")[0] or b"0", 16)
        pos = end + 2
        if size == 0:
            return body, True
        if pos + size > len(raw):
            return body + raw[pos:], False
        body += raw[pos:pos + size]
        pos += size + 2


class LateJoinCase(unittest.TestCase):
    def start(self, origin, workers=4, extra=()):
        self.tmp = h.tempdir(self)
        self.addCleanup(origin.stop)
        edge = h.Daemon("meshcdn-edge", ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                         "--origin", origin.url, "--origin-sign", "none",
                                         "--store", f"{self.tmp}/store", "--store-size", "256M",
                                         "--workers", str(workers), "--node-id", "lj1",
                                         "--log-level", os.environ.get("MC_LOG", "info"),
                                         "--edge.client_timeout", "60s"] + list(extra),
                        listeners=("http", "admin"), timeout=30)
        self.addCleanup(edge.stop)
        return edge

    def first_viewer(self, edge, path, settle=0.8):
        """The viewer that starts the fill; returns once the fill has been
        streaming for `settle` seconds (bytes delivered)."""
        v = Viewer(edge.addr["http"], path).start()
        deadline = time.monotonic() + 10
        while v.t_first is None and v.error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIsNotNone(v.t_first, f"the first viewer got no body byte: {v.error}")
        time.sleep(settle)
        return v

    def late_joins(self, edge):
        m = h.metrics(*edge.addr["admin"])
        return (m.get('meshcdn_edge_fill_late_joins_total{worker="same"}', 0),
                m.get('meshcdn_edge_fill_late_joins_total{worker="other"}', 0))

    def stored_objects(self, edge):
        return h.metrics(*edge.addr["admin"])["meshcdn_edge_store_objects"]


class TestLateJoin(LateJoinCase):
    def test_late_joiners_stream_from_the_running_fill(self):
        body = os.urandom(4 * MIB)
        origin = SlowOrigin(body, pieces=64, gap=4.0 / 64)          # 4 MiB over ~4 s
        edge = self.start(origin)
        first = self.first_viewer(edge, "/m.glb")
        joiners = [Viewer(edge.addr["http"], "/m.glb").start() for _ in range(8)]
        ranged = Viewer(edge.addr["http"], "/m.glb", {"Range": "bytes=1000000-2999999"}).start()
        cond = Viewer(edge.addr["http"], "/m.glb", {"If-None-Match": '"v1"'}).start()
        for v in [first, ranged, cond] + joiners:
            v.join()
            self.assertIsNone(v.error)
        total = first.t_end - first.t_ask
        self.assertGreaterEqual(total, 3.0, "the origin was not slow enough for the test to mean anything")
        self.assertEqual((first.status, first.complete, first.body == body), (200, True, True))
        for v in joiners:
            self.assertEqual((v.status, v.complete), (200, True))
            self.assertTrue(v.body == body, "a joiner got another body")
            self.assertLess(v.t_first - v.t_ask, 1.5,
                            f"a late joiner's first byte came {v.t_first - v.t_ask:.2f} s after it asked "
                            f"(the fill took {total:.2f} s): it waited for the publish")
            self.assertEqual(v.hdrs["x-cache"], "Miss from meshcdn")
            self.assertIn("fwd=miss", v.hdrs["cache-status"])
            self.assertIn("collapsed", v.hdrs["cache-status"])
            self.assertEqual(v.hdrs["content-length"], str(len(body)))
        self.assertEqual((ranged.status, ranged.complete), (206, True))
        self.assertEqual(ranged.hdrs["content-range"], f"bytes 1000000-2999999/{len(body)}")
        self.assertTrue(ranged.body == body[1000000:3000000])
        self.assertEqual(cond.status, 304)   # answered from the fill's head, at once
        self.assertLess(cond.t_end - cond.t_ask, 1.5)
        self.assertEqual(origin.count("/b/m.glb"), 1)
        same, other = self.late_joins(edge)
        self.assertEqual(same + other, 10)
        self.assertGreater(other, 0, "no joiner landed on another worker")
        time.sleep(0.3)
        s, hd, b, c = h.http("GET", *edge.addr["http"], "/m.glb")
        self.assertEqual((s, hd["x-cache"], b == body), (200, ["Hit from meshcdn"], True))
        print(f"\nfill {total:.2f} s; late joiners' first byte after "
              f"{max(v.t_first - v.t_ask for v in joiners):.2f} s at most; same/other worker {same:.0f}/{other:.0f}")

    def cut_fill(self, chunked):
        body = os.urandom(4 * MIB)
        origin = SlowOrigin(body, pieces=32, gap=2.0 / 32, chunked=chunked, cut_after=2 * MIB + 1000)
        edge = self.start(origin)
        first = self.first_viewer(edge, "/cut.glb", settle=0.3)
        joiners = [Viewer(edge.addr["http"], "/cut.glb").start() for _ in range(8)]
        for v in [first] + joiners:
            v.join()
            self.assertIsNone(v.error)
        for v in [first] + joiners:
            self.assertEqual(v.status, 200)
            self.assertFalse(v.complete, "a cut fill's body looked complete")
            self.assertLess(len(v.body), len(body))
            self.assertTrue(body.startswith(v.body), "a cut fill's viewer got wrong bytes")
        self.assertTrue(all(v.body for v in joiners), "a late joiner got no byte before the cut")
        self.assertEqual(origin.count("/b/cut.glb"), 1)
        time.sleep(0.3)
        self.assertEqual(self.stored_objects(edge), 0)
        self.assertGreater(sum(self.late_joins(edge)), 0)

    def test_a_cut_fill_ends_every_late_joiner_short(self):
        self.cut_fill(chunked=False)

    def test_a_cut_chunked_fill_never_sends_the_last_chunk_to_late_joiners(self):
        self.cut_fill(chunked=True)

    def test_a_late_joiner_slower_than_the_fill_gets_the_whole_body(self):
        # chunked from the origin: no length known until the fill's end
        body = os.urandom(4 * MIB)
        origin = SlowOrigin(body, pieces=32, gap=1.5 / 32, chunked=True)   # 4 MiB over ~1.5 s
        edge = self.start(origin)
        first = self.first_viewer(edge, "/slow.glb", settle=0.3)
        slow = [Viewer(edge.addr["http"], "/slow.glb", rate=1 * MIB).start() for _ in range(3)]
        for v in [first] + slow:
            v.join()
            self.assertIsNone(v.error)
        self.assertEqual((first.status, first.complete, first.body == body), (200, True, True))
        for v in slow:
            self.assertEqual((v.status, v.complete), (200, True))
            self.assertEqual(v.hdrs.get("transfer-encoding"), "chunked")
            self.assertTrue(v.body == body)
            self.assertLess(v.t_first - v.t_ask, 1.0)
            # the slow joiners did not hold the fill (nor its first viewer) back
            self.assertGreater(v.t_end, first.t_end + 0.5)
        self.assertEqual(origin.count("/b/slow.glb"), 1)
        self.assertEqual(sum(self.late_joins(edge)), 3)

    def test_fifty_concurrent_late_joiners_one_origin_request(self):
        body = os.urandom(4 * MIB)
        origin = SlowOrigin(body, pieces=32, gap=3.0 / 32)
        edge = self.start(origin)
        first = self.first_viewer(edge, "/many.glb", settle=0.5)
        addr = edge.addr["http"]
        socks, t_ask = [], {}
        for _ in range(50):
            s = socket.create_connection(addr, timeout=30)
            s.sendall(b"GET /many.glb HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n")
            t_ask[s] = time.monotonic()
            s.setblocking(False)
            socks.append(s)
        sel = selectors.DefaultSelector()
        got = {s: bytearray() for s in socks}
        t_first = {}
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        left = len(socks)
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=5):
                s = key.fileobj
                try:
                    data = s.recv(1 << 20)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionError:
                    data = b""
                if data:
                    got[s] += data
                    head, sep, rest = bytes(got[s][:4096]).partition(b"\r\n\r\n")
                    if sep and s not in t_first and len(got[s]) > len(head) + 4:
                        t_first[s] = time.monotonic() - t_ask[s]
                else:
                    sel.unregister(s)
                    s.close()
                    left -= 1
        sel.close()
        first.join()
        self.assertEqual(left, 0)
        for s in socks:
            head, _, rest = bytes(got[s]).partition(b"\r\n\r\n")
            self.assertIn(b" 200 ", head.split(b"\r\n")[0])
            self.assertTrue(rest == body, f"a joiner got {len(rest)} bytes, not the body")
        self.assertEqual(origin.count("/b/many.glb"), 1)
        m = h.metrics(*edge.addr["admin"])
        self.assertEqual(m['meshcdn_edge_upstream_requests_total{upstream="origin",code="200"}'], 1)
        same, other = self.late_joins(edge)
        self.assertEqual(same + other, 50)
        self.assertGreater(other, 0)
        print(f"\n50 late joiners: first bytes after {min(t_first.values()):.2f}..{max(t_first.values()):.2f} s; "
              f"same/other worker {same:.0f}/{other:.0f}")


if __name__ == "__main__":
    unittest.main()
