"""meshcdn-origin against hostile clients (origin/guard.h): ambiguous framing,
malformed heads and oversize requests each get their status on a closed
connection, in order after the requests before them on the same connection,
and the stored objects are unaffected; a slowloris head gets 408 after
[origin] header_timeout while others are served; the per-client and total
connection caps answer 503 and close; the control listener has the same
defences; and what the guard lets through still works (pipelining,
keep-alive, chunked bodies, large downloads on Connection: close, HTTP/1.0).

libevent's evhttp alone answered 200 or 403 to most of VIEWER_CASES below
(duplicate and signed Content-Length, obs-fold, NUL and CTL bytes in values,
invalid names, no or two Host headers, HTTP/1.9, unknown methods, "0x" chunk
sizes) and held a dribbling client for its whole read timeout."""

import os
import re
import socket
import threading
import time
import unittest

import mcharness as h
from test_hostile import read_until_close, status_of, until

AK, SECRET = "AKIDORIGINHOSTILE", "origin-hostile-secret-0123456789"
BUCKET = "assets"
BODY = b"origin object bytes\n" * 200
BIG = os.urandom(3 << 20)

G = b"GET /assets/a.txt HTTP/1.1\r\nHost: x\r\n"
PUT = b"PUT /assets/evil.txt HTTP/1.1\r\nHost: x\r\n"

# (name, raw request, status). Each must be answered with exactly that status
# and the connection closed.
CASES = [
    ("cl-and-te", PUT + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("two-cl-different", PUT + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("two-cl-same", PUT + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("cl-list", PUT + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    ("cl-plus", PUT + b"Content-Length: +3\r\n\r\nabc", 400),
    ("cl-negative", PUT + b"Content-Length: -1\r\n\r\nabc", 400),
    ("cl-hex", PUT + b"Content-Length: 0x3\r\n\r\nabc", 400),
    ("cl-huge", PUT + b"Content-Length: 99999999999999999999999\r\n\r\n", 413),
    ("cl-over-max-put", PUT + b"Content-Length: 99999999999\r\n\r\n", 413),
    ("te-gzip", PUT + b"Transfer-Encoding: gzip\r\n\r\nabc", 501),
    ("te-chunked-and-more", PUT + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    ("te-twice", PUT + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-http10", b"PUT /assets/evil.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("chunk-size-junk", PUT + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-size-0x", PUT + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-size-negative", PUT + b"Transfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n", 400),
    ("chunk-size-overflow", PUT + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n", 400),
    ("chunk-no-crlf", PUT + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n", 400),
    ("chunk-endless-line", PUT + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 5000, 400),
    ("obs-fold", G + b"X-A: 1\r\n  folded\r\n\r\n", 400),
    ("space-before-colon", G + b"X-A : 1\r\n\r\n", 400),
    ("bad-name", G + b"X(A): 1\r\n\r\n", 400),
    ("no-colon", G + b"XA\r\n\r\n", 400),
    ("nul-in-value", G + b"X-A: a\x00b\r\n\r\n", 400),
    ("cr-in-value", G + b"X-A: a\rb\r\n\r\n", 400),
    ("ctl-in-value", G + b"X-A: a\x01b\r\n\r\n", 400),
    ("bare-lf", b"GET /assets/a.txt HTTP/1.1\nHost: x\n\n", 400),
    ("nul-in-target", b"GET /assets/a\x00.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("ctl-in-target", b"GET /assets/a\x01.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("fragment", b"GET /assets/a.txt#x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("space-in-target", b"GET /assets/a b.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("double-space", b"GET  /assets/a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("long-target", b"GET /assets/" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("long-target-no-eol", b"GET /assets/" + b"a" * 70000, 414),
    ("many-headers", G + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
    ("huge-head", G + b"X-A: " + b"a" * 70000 + b"\r\n\r\n", 431),
    ("unknown-method", b"FOO /assets/a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    ("bad-method", b"G(T /assets/a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("http-2", b"GET /assets/a.txt HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("http-1.9", b"GET /assets/a.txt HTTP/1.9\r\nHost: x\r\n\r\n", 505),
    ("junk-version", b"GET /assets/a.txt FOO\r\nHost: x\r\n\r\n", 400),
    ("no-host", b"GET /assets/a.txt HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", G + b"Host: y\r\n\r\n", 400),
    ("bad-host", b"GET /assets/a.txt HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("host-with-slash", b"GET /assets/a.txt HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ("host-with-userinfo", b"GET /assets/a.txt HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    ("host-bad-port", b"GET /assets/a.txt HTTP/1.1\r\nHost: a:12x\r\n\r\n", 400),
    ("smuggle-two-cl", b"POST /assets/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
     b"Content-Length: 40\r\n\r\nGET /assets/a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("smuggle-cl-te", b"POST /assets/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nPUT /assets/evil.txt HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 3\r\n\r\nabc", 400),
]


def exchange(addr, raw, timeout=10):
    """Send raw, return everything until the server closes (socket.timeout
    when it keeps the connection open)."""
    with socket.create_connection(addr, timeout=timeout) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_close(s, timeout)


def responses(data):
    """The status codes of the responses in data, in order (the bodies here
    never hold a status line)."""
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", data)]


class OriginCase(unittest.TestCase):
    def start(self, *extra):
        tmp = h.tempdir(self)
        os.makedirs(f"{tmp}/root/{BUCKET}")
        with open(f"{tmp}/root/{BUCKET}/a.txt", "wb") as f:
            f.write(BODY)
        with open(f"{tmp}/root/{BUCKET}/big.bin", "wb") as f:
            f.write(BIG)
        h.write_keys(f"{tmp}/keys", [(AK, SECRET)])
        self.root = f"{tmp}/root"
        d = h.Daemon("meshcdn-origin", [
            "--root", self.root, "--keys", f"{tmp}/keys", "--anonymous-read",
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"] + list(extra))
        self.addCleanup(d.stop)
        return d

    def unaffected(self, d):
        """The object reads back whole, nothing was written."""
        s, _, b, complete = h.http("GET", *d.addr["s3"], f"/{BUCKET}/a.txt")
        self.assertEqual((s, b, complete), (200, BODY, True))
        self.assertEqual(sorted(os.listdir(f"{self.root}/{BUCKET}")), ["a.txt", "big.bin"])

    def metric(self, d, name):
        return h.metrics(*d.addr["control"]).get(name, 0)


class TestMalformed(OriginCase):
    def test_each_is_refused_with_its_status_and_closed(self):
        d = self.start()
        for name, raw, want in CASES:
            with self.subTest(name):
                resp = exchange(d.addr["s3"], raw)   # socket.timeout: left open
                self.assertEqual(responses(resp), [want], resp[:300])
        self.unaffected(d)
        m = h.metrics(*d.addr["control"])
        refused = sum(v for k, v in m.items() if k.startswith("meshcdn_origin_guard_refusals_total{"))
        self.assertEqual(refused, len(CASES))

    def test_refusal_comes_after_the_answers_before_it(self):
        d = self.start()
        raw = G + b"\r\n" + G + b"\r\n" + b"GET /assets/a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n" + G + b"\r\n"
        resp = exchange(d.addr["s3"], raw)
        self.assertEqual(responses(resp), [200, 200, 400], resp[:300])
        self.assertEqual(resp.count(BODY), 2)

    def test_refused_mid_body(self):
        # a chunked PUT whose second chunk is malformed: 400 after the body
        # began, the connection closed, nothing stored
        d = self.start()
        raw = (PUT + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n" +
               b"GET /assets/a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(responses(exchange(d.addr["s3"], raw)), [400])
        self.unaffected(d)

    def test_control_listener_is_guarded(self):
        d = self.start()
        for name, raw, want in CASES[:3] + CASES[20:30]:
            with self.subTest(name):
                resp = exchange(d.addr["control"], raw)
                self.assertEqual(responses(resp), [want], resp[:300])
        self.assertEqual(h.http("GET", *d.addr["control"], "/healthz")[0], 200)


class TestPassesWhatIsValid(OriginCase):
    def test_pipelined_keepalive_and_chunked(self):
        d = self.start()
        # three pipelined GETs, then an unsigned chunked PUT (the guard passes
        # it; S3 refuses it: 403) and a GET on the same connection
        raw = (G + b"\r\n") * 3 + PUT + b"Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n" \
            + G + b"Connection: close\r\n\r\n"
        resp = exchange(d.addr["s3"], raw)
        self.assertEqual(responses(resp), [200, 200, 200, 403, 200], resp[:500])
        self.unaffected(d)

    def test_signed_put_and_large_downloads_on_close(self):
        d = self.start()
        host, port = d.addr["s3"]
        url = f"http://{host}:{port}/{BUCKET}/up.bin"
        hdrs = h.sign("PUT", url, {}, AK, SECRET, payload_hash=None, body=BIG)
        self.assertEqual(h.http("PUT", host, port, f"/{BUCKET}/up.bin", hdrs, body=BIG)[0], 200)
        # Connection: close and HTTP/1.0: the whole body arrives before the close
        for path in ("/assets/big.bin", "/assets/up.bin"):
            s, _, b, complete = h.http("GET", host, port, path)
            self.assertEqual((s, len(b), complete), (200, len(BIG), True))
            self.assertEqual(b, BIG)
        resp = exchange((host, port), b"GET /assets/big.bin HTTP/1.0\r\n\r\n")
        self.assertTrue(resp.endswith(BIG))
        self.assertEqual(responses(resp[:200]), [200])


class TestSlowloris(OriginCase):
    def test_dribbling_head_gets_408_while_others_are_served(self):
        d = self.start("--origin.header_timeout=1s")
        result = {}

        def dribbler():
            with socket.create_connection(d.addr["s3"], timeout=20) as s:
                s.settimeout(0.2)
                t0, got = time.monotonic(), b""
                for b in G + b"X-Slow: " + b"y" * 200:
                    try:
                        s.send(bytes([b]))
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        got += chunk
                    except socket.timeout:
                        continue
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    if time.monotonic() - t0 > 10:
                        break
                result["elapsed"], result["resp"] = time.monotonic() - t0, got

        t = threading.Thread(target=dribbler)
        t.start()
        time.sleep(0.3)
        self.assertEqual(h.http("GET", *d.addr["s3"], "/assets/a.txt")[0], 200)
        t.join(20)
        self.assertEqual(status_of(result["resp"]), 408, result)
        self.assertLess(result["elapsed"], 4)
        self.assertEqual(self.metric(d, 'meshcdn_origin_header_timeouts_total{listener="s3"}'), 1)

    def test_keepalive_idle_is_not_a_head_timeout(self):
        d = self.start("--origin.header_timeout=1s")
        with socket.create_connection(d.addr["s3"], timeout=10) as s:
            for _ in range(2):
                s.sendall(G + b"\r\n")
                self.assertEqual(h.read_response(s)[0], 200)
                time.sleep(1.5)


class TestConnectionCaps(OriginCase):
    def held(self, addr, n, source=None):
        socks = []
        for _ in range(n):
            s = socket.create_connection(addr, timeout=10, source_address=source)
            s.sendall(G + b"\r\n")
            self.assertEqual(h.read_response(s)[0], 200)
            socks.append(s)
        return socks

    def test_per_client_cap(self):
        d = self.start("--origin.max_connections_per_client=2")
        addr = d.addr["s3"]
        socks = self.held(addr, 2, ("127.0.0.1", 0))
        try:
            resp = exchange(addr, G + b"\r\n")
            self.assertEqual(responses(resp), [503])
            others = self.held(addr, 2, ("127.0.0.2", 0))   # another client is served
            for s in others:
                s.close()
            socks.pop().close()
            self.assertTrue(until(lambda: h.http("GET", *addr, "/assets/a.txt")[0] == 200))
        finally:
            for s in socks:
                s.close()
        self.assertGreaterEqual(self.metric(
            d, 'meshcdn_origin_connections_refused_total{listener="s3",reason="per_client"}'), 1)

    def test_total_cap(self):
        d = self.start("--origin.max_connections=3")
        addr = d.addr["s3"]
        socks = self.held(addr, 3)
        try:
            self.assertEqual(responses(exchange(addr, G + b"\r\n")), [503])
            socks.pop().close()
            self.assertTrue(until(lambda: h.http("GET", *addr, "/assets/a.txt")[0] == 200))
        finally:
            for s in socks:
                s.close()
        self.assertGreaterEqual(self.metric(
            d, 'meshcdn_origin_connections_refused_total{listener="s3",reason="total"}'), 1)


if __name__ == "__main__":
    unittest.main()
