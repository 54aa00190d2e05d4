"""meshcdn-edge end to end: the real edge in front of the real, signed origin
(or a deliberately broken one), on ephemeral loopback ports."""

import hashlib
import json
import os
import socket
import socketserver
import threading
import time
import unittest

import mcharness as h

AK, SECRET = "AKIDEDGETEST", "edge-test-secret-0123456789"
BUCKET = "assets"


def origin_gets(origin):
    m = h.metrics(*origin.addr["control"])
    return sum(v for k, v in m.items()
               if k.startswith("meshcdn_origin_requests_total") and 'method="GET"' in k)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


class Catalog:
    """One generated catalog shared by the tests of this module."""
    root = None
    index = None
    big = None

    @classmethod
    def make(cls):
        if cls.root:
            return
        cls.root = h.tempdir(None, "meshcdn-e2e-catalog-")
        out = os.path.join(cls.root, BUCKET)
        p = h.run("meshcdn-load", ["catalog", "--out", out, "--count", "8", "--seed", "3",
                                    "--sizes", "lognormal:median=300k,max=3M", "--gltf-count", "1"])
        assert p.returncode == 0, p.stderr
        with open(os.path.join(out, "index.json")) as f:
            cls.index = json.load(f)["objects"]
        big = os.path.join(cls.root, "big")
        p = h.run("meshcdn-load", ["catalog", "--out", big, "--count", "1", "--seed", "9",
                                    "--sizes", "fixed:64M", "--gltf-count", "0"], timeout=120)
        assert p.returncode == 0, p.stderr
        with open(os.path.join(big, "index.json")) as f:
            rel = json.load(f)["objects"][0]["path"]
        os.makedirs(os.path.join(out, "big"), exist_ok=True)
        os.rename(os.path.join(big, rel.lstrip("/")), os.path.join(out, "big", "mesh.glb"))
        cls.big = "/big/mesh.glb"

    @classmethod
    def glbs(cls):
        return [o["path"] for o in cls.index if o["path"].endswith(".glb")]

    @classmethod
    def file(cls, path):
        with open(os.path.join(cls.root, BUCKET, path.lstrip("/")), "rb") as f:
            return f.read()


def setUpModule():
    Catalog.make()


def tearDownModule():
    import shutil
    if Catalog.root and os.environ.get("MESHCDN_KEEP_TMP") != "1":
        shutil.rmtree(Catalog.root, True)


class EdgeCase(unittest.TestCase):
    """Starts a signed origin per test; edges are started by the tests."""

    def setUp(self):
        self.tmp = h.tempdir(self)
        h.write_keys(f"{self.tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/cred", [(AK, SECRET)])
        self.origin = h.Daemon("meshcdn-origin", [
            "--root", Catalog.root, "--keys", f"{self.tmp}/keys",
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        self.addCleanup(self.origin.stop)

    def edge(self, *extra, store=None, origin_url=None, workers="2", cred=None):
        host, port = self.origin.addr["s3"]
        args = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--origin", origin_url or f"http://{host}:{port}/{BUCKET}",
                "--credentials", cred or f"{self.tmp}/cred",
                "--store", store or f"{self.tmp}/store", "--store-size", "512M",
                "--workers", workers, "--node-id", "t1", "--log-level", os.environ.get("MC_LOG", "info")] + list(extra)
        d = h.Daemon("meshcdn-edge", args, listeners=("http", "admin"))
        self.addCleanup(d.stop)
        return d

    def get(self, edge, path, headers=None, method="GET"):
        return h.http(method, *edge.addr["http"], path, headers or {}, timeout=60)


class TestMissHit(EdgeCase):
    def test_miss_then_hit_counts_one_origin_request(self):
        e = self.edge()
        path = Catalog.glbs()[0]
        s1, h1, b1, c1 = self.get(e, path)
        s2, h2, b2, c2 = self.get(e, path)
        self.assertEqual((s1, s2), (200, 200))
        self.assertTrue(c1 and c2)
        self.assertEqual(h1["x-cache"], ["Miss from meshcdn"])
        self.assertEqual(h2["x-cache"], ["Hit from meshcdn"])
        self.assertIn("fwd=miss", h1["cache-status"][0])
        self.assertIn("stored", h1["cache-status"][0])
        self.assertTrue(h2["cache-status"][0].startswith("meshcdn-t1; hit; ttl="))
        self.assertIn("age", h2)
        self.assertEqual(h2["content-type"], ["model/gltf-binary"])
        self.assertEqual(b1, Catalog.file(path))
        self.assertEqual(b2, b1)
        self.assertEqual(origin_gets(self.origin), 1)
        m = h.metrics(*e.addr["admin"])
        self.assertEqual(m['meshcdn_edge_requests_total{result="hit",code="200"}'], 1)
        self.assertEqual(m['meshcdn_edge_requests_total{result="miss",code="200"}'], 1)
        self.assertEqual(m['meshcdn_edge_upstream_requests_total{upstream="origin",code="200"}'], 1)
        self.assertEqual(m["meshcdn_edge_store_objects"], 1)
        self.assertEqual(m["meshcdn_edge_store_bytes"], len(b1))
        self.assertGreaterEqual(m["meshcdn_edge_bytes_sent_total"], 2 * len(b1))
        self.assertEqual(m['meshcdn_edge_upstream_seconds_count{upstream="origin"}'], 1)

    def test_64mib_glb_is_byte_identical_on_miss_and_hit(self):
        e = self.edge()
        want = sha256(Catalog.file(Catalog.big))
        for expect in ("Miss", "Hit"):
            s, hd, b, c = self.get(e, Catalog.big)
            self.assertEqual(s, 200)
            self.assertTrue(c)
            self.assertEqual(len(b), 64 << 20)
            self.assertEqual(sha256(b), want)
            self.assertEqual(hd["x-cache"], [f"{expect} from meshcdn"])
        self.assertEqual(origin_gets(self.origin), 1)

    def test_head_on_miss_and_hit(self):
        e = self.edge()
        path = Catalog.glbs()[1]
        size = len(Catalog.file(path))
        s, hd, b, c = self.get(e, path, method="HEAD")
        self.assertEqual((s, b), (200, b""))
        self.assertEqual(hd["content-length"], [str(size)])
        self.assertIn("etag", hd)
        # the HEAD's fill went on and stored the body
        for _ in range(100):
            s, hd, b, c = self.get(e, path, method="HEAD")
            if hd["x-cache"] == ["Hit from meshcdn"]:
                break
            time.sleep(0.05)
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(hd["content-length"], [str(size)])
        s, hd, b, c = self.get(e, path)
        self.assertEqual(b, Catalog.file(path))

    def test_ranges_on_miss_and_hit(self):
        e = self.edge()
        path = Catalog.glbs()[2]
        full = Catalog.file(path)
        s, hd, b, c = self.get(e, path, {"Range": "bytes=100-199"})
        self.assertEqual(s, 206)
        self.assertEqual(hd["content-range"], [f"bytes 100-199/{len(full)}"])
        self.assertEqual(b, full[100:200])
        time.sleep(0.2)
        s, hd, b, c = self.get(e, path, {"Range": "bytes=-16"})
        self.assertEqual((s, hd["x-cache"]), (206, ["Hit from meshcdn"]))
        self.assertEqual(b, full[-16:])
        s, hd, b, c = self.get(e, path, {"Range": f"bytes={len(full)}-"})
        self.assertEqual(s, 416)
        self.assertEqual(hd["content-range"], [f"bytes */{len(full)}"])
        s, hd, b, c = self.get(e, path, {"Range": "bytes=5-2"})   # invalid: ignored
        self.assertEqual((s, b), (200, full))
        s, hd, b, c = self.get(e, path, {"Range": "bytes=0-9,300000-300009,-5"})
        self.assertEqual(s, 206)
        ctype = hd["content-type"][0]
        self.assertTrue(ctype.startswith("multipart/byteranges; boundary="))
        boundary = ctype.split("boundary=")[1].encode()
        self.assertEqual(int(hd["content-length"][0]), len(b))
        parts = [p for p in b.split(b"--" + boundary) if p.strip(b"\r\n") not in (b"", b"--")]
        self.assertEqual(len(parts), 3)
        want = [(0, 9), (300000, 300009), (len(full) - 5, len(full) - 1)]
        for part, (a, z) in zip(parts, want):
            head, _, data = part.partition(b"\r\n\r\n")
            self.assertIn(f"Content-Range: bytes {a}-{z}/{len(full)}".encode(), head)
            self.assertIn(b"Content-Type: model/gltf-binary", head)
            self.assertEqual(data[:z - a + 1], full[a:z + 1])
            self.assertEqual(data[z - a + 1:], b"\r\n")   # the CRLF before the next boundary
        s, hd, b, c = self.get(e, path, {"Range": "bytes=10-19,0-5"})   # out of order: whole body
        self.assertEqual((s, b), (200, full))
        self.assertEqual(origin_gets(self.origin), 1)

    def test_conditional_requests_get_304(self):
        e = self.edge()
        path = Catalog.glbs()[3]
        s, hd, b, c = self.get(e, path)
        etag, lm = hd["etag"][0], hd["last-modified"][0]
        time.sleep(0.2)
        s, hd, b, c = self.get(e, path, {"If-None-Match": etag})
        self.assertEqual((s, b), (304, b""))
        self.assertEqual(hd["etag"], [etag])
        s, hd, b, c = self.get(e, path, {"If-None-Match": '"other"'})
        self.assertEqual(s, 200)
        s, hd, b, c = self.get(e, path, {"If-Modified-Since": lm})
        self.assertEqual(s, 304)
        # a conditional request on a miss is answered from the fill
        s, hd, b, c = self.get(e, Catalog.glbs()[4], {"If-None-Match": "*"})
        self.assertEqual(s, 304)

    def test_gltf_with_bin_and_png(self):
        e = self.edge()
        for o in Catalog.index:
            if o["path"].endswith((".gltf", ".bin", ".png")):
                s, hd, b, c = self.get(e, o["path"])
                self.assertEqual(s, 200)
                self.assertEqual(b, Catalog.file(o["path"]))
                self.assertEqual(hd["content-type"][0], o["type"])

    def test_not_found_is_passed_through_not_stored(self):
        e = self.edge()
        for _ in range(2):
            s, hd, b, c = self.get(e, "/models/none.glb")
            self.assertEqual(s, 404)
            self.assertIn(b"NoSuchKey", b)
            self.assertEqual(hd["x-cache"], ["Miss from meshcdn"])
        self.assertEqual(origin_gets(self.origin), 2)

    def test_concurrent_misses_collapse_into_one_fetch(self):
        # 16 viewers on 4 workers: the same worker's viewers stream with the
        # fill, the other workers' wait for its publish; one origin fetch
        e = self.edge(workers="4")
        path = Catalog.glbs()[5]
        results = []

        def fetch():
            results.append(self.get(e, path))
        ts = [threading.Thread(target=fetch) for _ in range(16)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(len(results), 16)
        for s, hd, b, c in results:
            self.assertEqual((s, c), (200, True))
            self.assertEqual(b, Catalog.file(path))
        self.assertEqual(origin_gets(self.origin), 1)


class TestRestart(EdgeCase):
    def test_restart_keeps_the_cache(self):
        store = f"{self.tmp}/store"
        e = self.edge(store=store)
        path = Catalog.glbs()[0]
        s, hd, b, c = self.get(e, path)
        self.assertEqual(hd["x-cache"], ["Miss from meshcdn"])
        e.stop()
        self.origin.stop()   # a hit must not need the origin at all
        e2 = self.edge(store=store)
        s, hd, b2, c = self.get(e2, path)
        self.assertEqual((s, c), (200, True))
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(b2, Catalog.file(path))

    def test_kill9_then_restart_serves_old_cache(self):
        store = f"{self.tmp}/store"
        e = self.edge(store=store)
        path = Catalog.glbs()[1]
        self.get(e, path)
        time.sleep(0.3)   # the publish commits
        e.expect_exit = -9
        e.kill9()
        e2 = self.edge(store=store)
        s, hd, b, c = self.get(e2, path)
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(b, Catalog.file(path))

    def test_second_edge_on_same_store_is_refused(self):
        store = f"{self.tmp}/store"
        self.edge(store=store)
        host, port = self.origin.addr["s3"]
        p = h.run("meshcdn-edge", ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                   "--origin", f"http://{host}:{port}/{BUCKET}",
                                   "--credentials", f"{self.tmp}/cred", "--store", store],
                  timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("in use", p.stderr)


class TestSigning(EdgeCase):
    def test_edge_signs_and_origin_refuses_unsigned(self):
        e = self.edge()
        path = Catalog.glbs()[0]
        self.assertEqual(self.get(e, path)[0], 200)
        s, hd, b, c = h.http("GET", *self.origin.addr["s3"], f"/{BUCKET}{path}")
        self.assertEqual(s, 403)
        self.assertIn(b"<Code>AccessDenied</Code>", b)

    def test_wrong_secret_gets_signature_mismatch_not_cached(self):
        h.write_keys(f"{self.tmp}/bad", [(AK, "not-the-secret")])
        e = self.edge(cred=f"{self.tmp}/bad")
        for _ in range(2):
            s, hd, b, c = self.get(e, Catalog.glbs()[0])
            self.assertEqual(s, 403)
            self.assertIn(b"SignatureDoesNotMatch", b)
            self.assertEqual(hd["x-cache"], ["Miss from meshcdn"])

    def test_odd_characters_in_keys_sign_and_fetch(self):
        # a key with a space, a plus and UTF-8: the edge signs what it sends
        d = os.path.join(Catalog.root, BUCKET, "odd")
        os.makedirs(d, exist_ok=True)
        name = "a b+c\u00e9(1).glb"
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"glTF-odd-bytes" * 100)
        e = self.edge()
        s, hd, b, c = self.get(e, "/odd/a%20b+c%C3%A9(1).glb")
        self.assertEqual(s, 200, b)
        self.assertEqual(b, b"glTF-odd-bytes" * 100)
        # the same object spelled with lower-case escapes and an encoded unreserved
        # character (RFC 3986 6.2.2); "+" and "%2B" are not equivalent there
        s, hd, b, c = self.get(e, "/odd/a%20b+c%c3%a9(1).gl%62")
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])


class BrokenOrigin(socketserver.ThreadingTCPServer):
    """An HTTP origin that announces a length and sends only part of it, then
    closes, until told to behave."""
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, body):
        self.body = body
        self.truncate = True
        self.requests = 0
        super().__init__(("127.0.0.1", 0), BrokenHandler)


class BrokenHandler(socketserver.BaseRequestHandler):
    def handle(self):
        srv = self.server
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            data += chunk
        srv.requests += 1
        body = srv.body
        head = (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: public, max-age=600\r\nContent-Type: model/gltf-binary\r\n"
                "Connection: close\r\n\r\n").encode()
        if srv.truncate:
            self.request.sendall(head + body[:len(body) // 2])
            time.sleep(0.1)
            self.request.shutdown(socket.SHUT_RDWR)
        else:
            self.request.sendall(head + body)


class TestTruncatedUpstream(EdgeCase):
    def test_origin_dying_mid_body_caches_nothing_and_aborts_client(self):
        body = os.urandom(3 << 20)
        srv = BrokenOrigin(body)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        url = f"http://127.0.0.1:{srv.server_address[1]}/b"
        e = self.edge("--origin-sign", "none", origin_url=url)
        s, hd, b, c = self.get(e, "/x.glb")
        self.assertEqual(s, 200)
        self.assertFalse(c, "a truncated body must not look complete")
        self.assertLess(len(b), len(body))
        s, hd, b, c = self.get(e, "/x.glb")
        self.assertFalse(c)
        self.assertEqual(hd["x-cache"], ["Miss from meshcdn"])
        self.assertEqual(srv.requests, 2)
        m = h.metrics(*e.addr["admin"])
        self.assertEqual(m["meshcdn_edge_store_objects"], 0)
        self.assertGreaterEqual(m["meshcdn_edge_fills_failed_total"], 2)
        srv.truncate = False
        s, hd, b, c = self.get(e, "/x.glb")
        self.assertTrue(c)
        self.assertEqual(b, body)
        time.sleep(0.3)
        s, hd, b, c = self.get(e, "/x.glb")
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(b, body)
        self.assertEqual(srv.requests, 3)

    def test_killed_origin_mid_body_leaves_nothing_cached(self):
        e = self.edge("--store.fill_buffer", "1M", workers="1")
        host, port = e.addr["http"]
        sock = socket.create_connection((host, port), timeout=30)
        self.addCleanup(sock.close)
        sock.sendall(f"GET {Catalog.big} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1024)
        self.assertIn(b"200 OK", head)
        time.sleep(0.5)          # the slow viewer pauses the fill mid-body
        self.origin.expect_exit = -9
        self.origin.kill9()
        got = len(head.partition(b"\r\n\r\n")[2]) + h.count_until_close(sock)
        self.assertLess(got, 64 << 20, "the viewer must see an aborted transfer")
        m = h.metrics(*e.addr["admin"])
        self.assertEqual(m["meshcdn_edge_store_objects"], 0)


class TestProtocol(EdgeCase):
    def test_methods_other_than_get_head_get_405_when_read_only(self):
        e = self.edge("--cache.methods", "read")   # the default passes them through (test_methods)
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            s, hd, b, c = self.get(e, "/x", method=method)
            self.assertEqual(s, 405)
            self.assertEqual(hd["allow"], ["GET, HEAD"])

    def test_malformed_requests_get_clear_errors(self):
        e = self.edge()
        host, port = e.addr["http"]
        cases = [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET /x HTTP/1.1\r\n\r\n", 400),                           # no Host
            (b"GET /x HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"GET /x HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400),
            (b"GET /x HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
            (b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /x HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
            (b"GET /x HTTP/1.1\r\nHost: a\r\nCDN-Loop: other, meshcdn-t1\r\n\r\n", 508),
        ]
        for raw, want in cases:
            with socket.create_connection((host, port), timeout=10) as s:
                s.sendall(raw)
                resp = s.recv(4096)
                self.assertTrue(resp.startswith(f"HTTP/1.1 {want} ".encode()), (raw[:60], resp[:80]))
        s, hd, b, c = self.get(e, "/healthz-is-not-here")   # the edge still serves
        self.assertIn(s, (403, 404))

    def test_errors_after_a_keep_alive_exchange_have_their_own_framing(self):
        # a HEAD, then a head that never ends: the 431 must not inherit the
        # HEAD's "no body" (nor crash a debug build on its assertion)
        e = self.edge()
        path = Catalog.glbs()[0]
        with socket.create_connection(e.addr["http"], timeout=10) as s:
            s.sendall(f"HEAD {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
            time.sleep(0.3)
            s.sendall(b"GET /x HTTP/1.1\r\nX: " + b"a" * 20000)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, rest = data.rpartition(b"HTTP/1.1 431 ")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "))
        length = int(rest.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        self.assertEqual(len(rest.split(b"\r\n\r\n", 1)[1]), length)

    def test_nul_in_a_header_is_refused(self):
        e = self.edge()
        with socket.create_connection(e.addr["http"], timeout=10) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\x00\r\nContent-Length: 5\r\n\r\nGET /")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 400 "))

    def test_keep_alive_and_pipelining(self):
        e = self.edge()
        path = Catalog.glbs()[0]
        size = len(Catalog.file(path))
        host, port = e.addr["http"]
        with socket.create_connection((host, port), timeout=30) as s:
            req = f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
            s.sendall(req + req + f"HEAD {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        self.assertEqual(data.count(b"HTTP/1.1 200 OK"), 3)
        self.assertEqual(len(data) > 2 * size, True)
        self.assertIn(b"Connection: close", data)

    def test_admin_endpoints(self):
        e = self.edge()
        a = e.addr["admin"]
        self.assertEqual(h.http("GET", *a, "/healthz")[0], 200)
        self.assertEqual(h.http("GET", *a, "/readyz")[0], 200)
        self.assertEqual(h.http("GET", *a, "/nope")[0], 404)
        self.assertEqual(h.http("POST", *a, "/metrics")[0], 405)
        s, hd, body, c = h.http("GET", *a, "/metrics")
        text = body.decode()
        for name in ("meshcdn_edge_requests_total", "meshcdn_edge_upstream_requests_total",
                     "meshcdn_edge_upstream_seconds", "meshcdn_edge_bytes_sent_total",
                     "meshcdn_edge_store_bytes", "meshcdn_edge_store_objects",
                     "meshcdn_edge_evictions_total"):
            self.assertIn(f"# TYPE {name} ", text)


class TestConfig(unittest.TestCase):
    def test_help_and_version(self):
        p = h.run("meshcdn-edge", ["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("--origin", p.stdout)
        p = h.run("meshcdn-edge", ["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith("meshcdn-edge "))

    def test_bad_flag_and_file_values_name_where(self):
        tmp = h.tempdir(self)
        p = h.run("meshcdn-edge", ["--store-size", "8X", "--origin", "http://127.0.0.1:1/b",
                                   "--origin-sign", "none"])
        self.assertEqual(p.returncode, 2)
        self.assertIn('--store-size: store.size: "8X" is not a size', p.stderr)
        ini = f"{tmp}/edge.ini"
        with open(ini, "w") as f:
            f.write("[origin]\nurl = http://127.0.0.1:1/b\nsign = none\n[store]\nsize = 8X\n")
        p = h.run("meshcdn-edge", ["--config", ini])
        self.assertEqual(p.returncode, 2)
        self.assertIn(f'{ini}:5: store.size: "8X" is not a size', p.stderr)
        with open(ini, "w") as f:
            f.write("[origin]\nurl = http://127.0.0.1:1/b\nsigning = none\n")
        p = h.run("meshcdn-edge", ["--config", ini])
        self.assertIn(f"{ini}:3: origin.signing: unknown key", p.stderr)
        p = h.run("meshcdn-edge", ["--no-such-flag"])
        self.assertIn("--no-such-flag: unknown option", p.stderr)
        p = h.run("meshcdn-edge", ["--origin", "ftp://x/b", "--origin-sign", "none"])
        self.assertIn("--origin: origin.url:", p.stderr)

    def test_secrets_come_from_private_files(self):
        tmp = h.tempdir(self)
        h.write_keys(f"{tmp}/cred", [(AK, SECRET)], mode=0o644)
        p = h.run("meshcdn-edge", ["--origin", "http://127.0.0.1:1/b", "--credentials", f"{tmp}/cred",
                                   "--store", f"{tmp}/s"])
        self.assertEqual(p.returncode, 2)
        self.assertIn(f"{tmp}/cred", p.stderr)
        p = h.run("meshcdn-edge", ["--origin", "http://127.0.0.1:1/b", "--store", f"{tmp}/s"])
        self.assertIn("credentials", p.stderr)


if __name__ == "__main__":
    unittest.main()
