"""meshcdn-edge against hostile viewers: a slowloris client dribbling its
request head is cut after [edge] header_timeout while others are served; the
node-wide [edge] max_connections cap closes the connection beyond it at once
and serves again when one closes; malformed requests (NUL bytes, huge heads,
bad chunked framing, conflicting Content-Length, obs-fold, smuggling) each get
a clean 4xx/5xx on a closed connection and the node keeps serving."""

import os
import socket
import threading
import time
import unittest

import mcharness as h

AK, SECRET = "AKIDHOSTILETEST", "hostile-test-secret-0123456789"
BUCKET = "assets"
BODY = b"hello from the origin\n" * 100


class HostileCase(unittest.TestCase):
    """A signed origin with one object, and an edge with small limits."""

    def setUp(self):
        self.tmp = h.tempdir(self)
        os.makedirs(f"{self.tmp}/root/{BUCKET}")
        with open(f"{self.tmp}/root/{BUCKET}/a.txt", "wb") as f:
            f.write(BODY)
        h.write_keys(f"{self.tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/cred", [(AK, SECRET)])
        self.origin = h.Daemon("meshcdn-origin", [
            "--root", f"{self.tmp}/root", "--keys", f"{self.tmp}/keys",
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        self.addCleanup(self.origin.stop)

    def edge(self, header_timeout="10s", max_connections=10000, **more):
        ini = f"{self.tmp}/edge.ini"
        with open(ini, "w") as f:
            f.write(f"[edge]\nheader_timeout = {header_timeout}\nmax_connections = {max_connections}\n")
            for k, v in more.items():
                f.write(f"{k} = {v}\n")
        host, port = self.origin.addr["s3"]
        d = h.Daemon("meshcdn-edge", [
            "--config", ini, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", f"http://{host}:{port}/{BUCKET}", "--credentials", f"{self.tmp}/cred",
            "--store", f"{self.tmp}/store", "--store-size", "64M", "--workers", "2",
            "--node-id", "t1"], listeners=("http", "admin"))
        self.addCleanup(d.stop)
        return d

    def served(self, e):
        s, _, b, complete = h.http("GET", *e.addr["http"], "/a.txt", timeout=20)
        return s == 200 and b == BODY and complete

    def metric(self, e, name):
        return h.metrics(*e.addr["admin"]).get(name, 0)


def read_until_close(sock, timeout):
    """Everything the server sends until it closes (b"" on a reset); raises
    socket.timeout when it is still open after timeout seconds."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return buf
        if not chunk:
            return buf
        buf += chunk


def status_of(resp):
    line = resp.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/1.") else None


def keepalive_get(sock, path="/a.txt"):
    """One keep-alive GET on an open socket; returns the status."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        n, _, v = line.partition(b":")
        if n.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return status_of(head)


class TestSlowloris(HostileCase):
    def test_dribbling_client_is_cut_after_header_timeout(self):
        e = self.edge(header_timeout="2s")
        host, port = e.addr["http"]
        dribble = b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 200
        result = {}

        def dribbler():
            s = socket.create_connection((host, port), timeout=30)
            t0 = time.monotonic()
            got = b""
            try:
                s.settimeout(0.3)
                for b in dribble:           # one byte every 0.3 s: 60 s of head
                    try:
                        s.send(bytes([b]))
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    try:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        got += chunk
                    except socket.timeout:
                        pass
                    except ConnectionResetError:
                        break
                    if time.monotonic() - t0 > 15:
                        break
                result["elapsed"] = time.monotonic() - t0
                result["resp"] = got
            finally:
                s.close()

        t = threading.Thread(target=dribbler)
        t.start()
        time.sleep(0.5)
        self.assertTrue(self.served(e))    # a normal client is served meanwhile
        t.join(30)
        self.assertFalse(t.is_alive())
        # cut about header_timeout after the first byte, not held for the
        # idle timeout that every byte restarts
        self.assertGreaterEqual(result["elapsed"], 1.8)
        self.assertLess(result["elapsed"], 6.0, result)
        self.assertEqual(status_of(result["resp"]), 408, result["resp"][:200])
        self.assertEqual(self.metric(e, "meshcdn_edge_header_timeouts_total"), 1)
        self.assertTrue(self.served(e))

    def test_keepalive_idle_is_not_a_head_timeout(self):
        # the clock starts at a head's first byte, not when the connection
        # opened or the last response ended
        e = self.edge(header_timeout="1s")
        with socket.create_connection(e.addr["http"], timeout=10) as s:
            self.assertEqual(keepalive_get(s), 200)
            time.sleep(1.5)
            self.assertEqual(keepalive_get(s), 200)
        self.assertEqual(self.metric(e, "meshcdn_edge_header_timeouts_total"), 0)


REFUSED_TOTAL = 'meshcdn_edge_connections_refused_total{listener="viewer",reason="total"}'
REFUSED_PER_CLIENT = 'meshcdn_edge_connections_refused_total{listener="viewer",reason="per_client"}'
REFUSED_ADMIN = 'meshcdn_edge_connections_refused_total{listener="admin",reason="total"}'


def refused_at_once(addr, source=None):
    """Connect (from source), send a request; True when the server closed
    without an answer."""
    extra = socket.create_connection(addr, timeout=10, source_address=source)
    try:
        try:
            extra.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_close(extra, 5) == b""
    finally:
        extra.close()


def until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return True
        except (ConnectionError, AssertionError, socket.timeout):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


class TestPerClientCap(HostileCase):
    def test_one_client_is_capped_others_are_not(self):
        e = self.edge(max_connections_per_client=3)
        addr = e.addr["http"]
        held = []
        try:
            for _ in range(3):
                s = socket.create_connection(addr, timeout=10, source_address=("127.0.0.1", 0))
                self.assertEqual(keepalive_get(s), 200)
                held.append(s)
            # the fourth from the same address is closed at accept...
            self.assertTrue(refused_at_once(addr, ("127.0.0.1", 0)))
            self.assertEqual(self.metric(e, REFUSED_PER_CLIENT), 1)
            self.assertEqual(self.metric(e, REFUSED_TOTAL), 0)
            # ...while other clients (another loopback address) are served,
            # several at once
            others = [socket.create_connection(addr, timeout=10, source_address=("127.0.0.2", 0))
                      for _ in range(3)]
            try:
                for o in others:
                    self.assertEqual(keepalive_get(o), 200)
            finally:
                for o in others:
                    o.close()
            for s in held:                  # the held ones still work
                self.assertEqual(keepalive_get(s), 200)
            held.pop().close()              # one closes: the client may connect again
            self.assertTrue(until(lambda: keepalive_get(
                socket.create_connection(addr, timeout=5, source_address=("127.0.0.1", 0))) == 200))
        finally:
            for s in held:
                s.close()

    def test_count_is_shared_by_workers_and_returned_on_close(self):
        # 2 workers accept from one SO_REUSEPORT group: the count is node-wide,
        # and connections that closed (also refused ones) give their unit back
        e = self.edge(max_connections_per_client=2)
        addr = e.addr["http"]
        for _ in range(5):
            a = socket.create_connection(addr, timeout=10)
            b = socket.create_connection(addr, timeout=10)
            try:
                self.assertEqual(keepalive_get(a), 200)
                self.assertEqual(keepalive_get(b), 200)
                self.assertTrue(refused_at_once(addr))
            finally:
                a.close()
                b.close()
            self.assertTrue(until(lambda: self.served(e)))
            # every close (a, b and served()'s own) has landed before the next
            # round takes two units again: a client can see the end of an
            # answer before the edge has closed its side (the gauge counts
            # this scrape's own admin connection)
            self.assertTrue(until(lambda: self.metric(e, "meshcdn_edge_connections") <= 1))
        # (a retry of served() may itself be refused before the closes land)
        self.assertGreaterEqual(self.metric(e, REFUSED_PER_CLIENT), 5)


class TestAdminListener(HostileCase):
    def test_admin_connection_cap(self):
        e = self.edge(admin_max_connections=2)
        addr = e.addr["admin"]
        held = [socket.create_connection(addr, timeout=10) for _ in range(2)]
        try:
            for s in held:
                self.assertEqual(keepalive_get(s, "/healthz"), 200)
            self.assertTrue(refused_at_once(addr))
            held.pop().close()
            # (a metrics fetch may itself be refused before the close lands)
            self.assertTrue(until(lambda: self.metric(e, REFUSED_ADMIN) >= 1))
            self.assertEqual(self.metric(e, REFUSED_TOTAL), 0)
            self.assertTrue(self.served(e))   # the viewer port is not affected
        finally:
            for s in held:
                s.close()

    def test_admin_slowloris_gets_408(self):
        e = self.edge(header_timeout="1s")
        with socket.create_connection(e.addr["admin"], timeout=10) as s:
            t0 = time.monotonic()
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            s.settimeout(0.3)
            resp = b""
            while time.monotonic() - t0 < 8:
                try:
                    s.sendall(b"X")             # a byte at a time, never a whole head
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    resp += chunk
                except socket.timeout:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
            self.assertEqual(status_of(resp), 408, resp[:200])
            self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(self.metric(e, "meshcdn_edge_header_timeouts_total"), 1)


class TestConnectionCap(HostileCase):
    def test_cap_refuses_the_next_connection_until_one_closes(self):
        e = self.edge(max_connections=3)
        host, port = e.addr["http"]
        held = []
        for _ in range(3):
            s = socket.create_connection((host, port), timeout=10)
            self.assertEqual(keepalive_get(s), 200)   # accepted and counted
            held.append(s)
        try:
            extra = socket.create_connection((host, port), timeout=10)
            try:
                extra.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertEqual(read_until_close(extra, 5), b"")   # closed, no answer
            extra.close()
            self.assertEqual(self.metric(e, REFUSED_TOTAL), 1)
            self.assertEqual(self.metric(e, REFUSED_PER_CLIENT), 0)
            for s in held:                  # the held ones still work
                self.assertEqual(keepalive_get(s), 200)
            held.pop().close()
            deadline = time.monotonic() + 5
            while True:                     # the server sees the close soon
                try:
                    if self.served(e):
                        break
                except (ConnectionError, AssertionError):
                    pass
                self.assertLess(time.monotonic(), deadline, "not served after a connection closed")
                time.sleep(0.1)
        finally:
            for s in held:
                s.close()


# (name, raw request, acceptable statuses). Every one must be answered and
# the connection closed: the framing is in doubt.
VIEWER_CASES = [
    ("nul-in-header", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", {400}),
    ("nul-in-target", b"GET /a\x00.txt HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    ("ctl-in-value", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", {400}),
    ("huge-header", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", {431}),
    ("many-headers", b"GET /a.txt HTTP/1.1\r\nHost: x\r\n"
     + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n", {431}),
    ("long-target", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {414}),
    ("obs-fold", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n", {400}),
    ("space-before-colon", b"GET /a.txt HTTP/1.1\r\nHost : x\r\n\r\n", {400}),
    ("no-host", b"GET /a.txt HTTP/1.1\r\n\r\n", {400}),
    ("two-hosts", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", {400}),
    ("bad-version", b"GET /a.txt HTTP/2.0\r\nHost: x\r\n\r\n", {505}),
    ("garbage-line", b"GET  /a.txt HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    ("conflicting-cl", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", {400}),
    ("list-cl", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", {400}),
    ("negative-cl", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", {400}),
    ("huge-cl", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", {413}),
    ("cl-and-te", b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    ("te-gzip", b"POST /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", {501}),
    ("te-chunked-not-last", b"POST /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", {400}),
    ("te-twice", b"POST /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", {400}),
    ("te-http10", b"POST /a.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("fragment", b"GET /a.txt#frag HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    # the viewer port reads a body by its framing and passes the request to
    # the origin (edge/pass.c): what the body holds is never read as a second
    # request; bad chunked framing is 400 and the connection closes
    ("smuggle-in-body", b"POST /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 35\r\n\r\n"
     b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", {400, 403, 404, 405, 501}),
    ("bad-chunks-viewer", b"POST /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
]

# the admin port reads request bodies: bad chunked framing is caught there
ADMIN_CASES = [
    ("bad-chunk-size", b"POST /purge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", {400}),
    ("chunk-size-overflow", b"POST /purge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"ffffffffffffffffffff\r\n", {400, 413}),
    ("chunk-size-0x", b"POST /purge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0x2\r\nab\r\n0\r\n\r\n", {400}),
    ("chunk-size-sign", b"POST /purge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"+2\r\nab\r\n0\r\n\r\n", {400}),
    ("chunk-without-crlf", b"POST /purge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"2\r\nabXY0\r\n\r\n", {400}),
    ("endless-chunk-line", b"POST /purge HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"1" * 5000, {400, 413}),
    ("body-too-large", b"POST /purge HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", {413}),
]


class TestMalformed(HostileCase):
    def exchange(self, addr, raw):
        with socket.create_connection(addr, timeout=10) as s:
            try:
                s.sendall(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return read_until_close(s, 10)   # socket.timeout: the server kept it open

    def check(self, addr, cases, e):
        for name, raw, want in cases:
            with self.subTest(name):
                resp = self.exchange(addr, raw)
                self.assertIn(status_of(resp), want, resp[:300])
                self.assertEqual(resp.count(b"HTTP/1.1 "), 1, resp[:300])   # one answer only
                self.assertTrue(self.served(e))                              # the node keeps serving

    def test_viewer_port_refuses_each_cleanly(self):
        e = self.edge()
        before = h.metrics(*self.origin.addr["control"])
        self.check(e.addr["http"], VIEWER_CASES, e)
        after = h.metrics(*self.origin.addr["control"])
        gets = [k for k in after if k.startswith("meshcdn_origin_requests_total") and 'method="GET"' in k]
        # only /a.txt went upstream (once: then it was a hit): nothing smuggled through
        self.assertEqual(sum(after[k] - before.get(k, 0) for k in gets), 1)

    def test_admin_port_refuses_bad_bodies_cleanly(self):
        e = self.edge()
        self.check(e.addr["admin"], ADMIN_CASES, e)


if __name__ == "__main__":
    unittest.main()
