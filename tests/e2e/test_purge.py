"""POST /purge on the edge admin API, end to end: a real meshcdn-edge in front
of a scripted origin (--origin-sign none); the purge requests are SigV4-signed
with service "meshcdn" (curl --aws-sigv4 where it matters that a stock client
works, mcharness.sign otherwise)."""

import json
import shutil
import socket
import subprocess
import threading
import time
import unittest

import mcharness as h
from scriptorigin import ScriptOrigin

OP, OPSECRET = "AKIDOPERATOR", "operator-secret-0123456789"


def body_of(tag, cc="max-age=600", keys=None):
    hdrs = {"Cache-Control": cc, "ETag": f'"{tag}"'}
    if keys:
        hdrs["Surrogate-Key"] = keys
    return lambda req: (200, hdrs, tag.encode())


class PurgeCase(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        h.write_keys(f"{self.tmp}/ops", [(OP, OPSECRET)])
        self.origin = ScriptOrigin()
        self.addCleanup(self.origin.stop)
        self.edge = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", self.origin.url, "--origin-sign", "none",
            "--store", f"{self.tmp}/store", "--store-size", "64M",
            "--workers", "2", "--node-id", "p1", "--admin-keys", f"{self.tmp}/ops"],
            listeners=("http", "admin"))
        self.addCleanup(self.edge.stop)

    def get(self, path):
        s, hd, b, c = h.http("GET", *self.edge.addr["http"], path, {}, timeout=30)
        self.assertTrue(c)
        return s, (hd.get("x-cache") or ["?"])[0].split()[0], b

    def warm(self, *paths):
        for p in paths:
            self.get(p)
        time.sleep(0.2)   # let the writer publish
        for p in paths:
            self.assertEqual(self.get(p)[1], "Hit", p)

    def purge(self, body=None, key=OP, secret=OPSECRET, signed=True, raw=None, headers=None):
        host, port = self.edge.addr["admin"]
        data = raw if raw is not None else json.dumps(body).encode()
        hdrs = dict(headers or {})
        if signed:
            hdrs = h.sign("POST", f"http://{host}:{port}/purge", hdrs, key, secret,
                          service="meshcdn", payload_hash=None, body=data)
        s, hd, b, c = h.http("POST", host, port, "/purge", hdrs, body=data, timeout=30)
        self.assertTrue(c)
        return s, json.loads(b) if b else None


class TestPurge(PurgeCase):
    def test_exact_path_with_variants_then_refetch(self):
        self.origin.route("/a.glb", body_of("v1"))
        self.origin.route("/a.glbx", body_of("x"))
        self.warm("/a.glb", "/a.glb?v=2", "/a.glbx")
        self.origin.route("/a.glb", body_of("v2"))
        s, out = self.purge({"paths": ["/a.glb"]})
        self.assertEqual((s, out), (200, {"purged": 2, "soft": False}))
        self.assertEqual(self.get("/a.glb"), (200, "Miss", b"v2"))
        self.assertEqual(self.get("/a.glb?v=2")[1:], ("Miss", b"v2"))
        self.assertEqual(self.get("/a.glbx")[1], "Hit")
        m = h.metrics(*self.edge.addr["admin"])
        self.assertEqual(m["meshcdn_edge_purged_objects_total"], 2)

    def test_prefix_and_surrogate_keys_and_all(self):
        for p, keys in (("/m/chair/1.glb", "chair sku-1"), ("/m/chair/2.glb", "chair"),
                        ("/m/table/1.glb", "table"), ("/z.glb", "sku-9 chair")):
            self.origin.route(p, body_of(p, keys=keys))
        paths = ["/m/chair/1.glb", "/m/chair/2.glb", "/m/table/1.glb", "/z.glb"]
        self.warm(*paths)
        # the Surrogate-Key header stays between the edge and its origin
        self.assertNotIn("surrogate-key", h.http("GET", *self.edge.addr["http"], "/z.glb")[1])
        self.assertEqual(self.purge({"paths": ["/m/table/*"]}), (200, {"purged": 1, "soft": False}))
        self.assertEqual([self.get(p)[1] for p in paths], ["Hit", "Hit", "Miss", "Hit"])
        time.sleep(0.2)
        self.assertEqual(self.purge({"surrogate_keys": ["chair"]}), (200, {"purged": 3, "soft": False}))
        self.assertEqual([self.get(p)[1] for p in paths], ["Miss", "Miss", "Hit", "Miss"])
        time.sleep(0.2)
        self.assertEqual(self.purge({"all": True}), (200, {"purged": 4, "soft": False}))
        self.assertEqual([self.get(p)[1] for p in paths], ["Miss"] * 4)
        time.sleep(0.3)
        self.assertEqual(h.metrics(*self.edge.addr["admin"])["meshcdn_edge_store_objects"], 4)

    def test_soft_purge_revalidates_and_still_serves_stale_on_error(self):
        cc = "max-age=600, stale-if-error=600, stale-while-revalidate=600"
        self.origin.route("/s.glb", body_of("v1", cc=cc))
        self.warm("/s.glb")
        self.assertEqual(self.purge({"paths": ["/s.glb"], "soft": True}), (200, {"purged": 1, "soft": True}))
        n = len(self.origin.requests)
        # revalidated before use (not served under stale-while-revalidate): a 304 refreshes it
        self.origin.route("/s.glb", lambda req: (304, {"ETag": '"v1"', "Cache-Control": cc}, b"")
                          if req.headers.get("if-none-match") == '"v1"' else (200, {"ETag": '"v1"'}, b"v1"))
        self.assertEqual(self.get("/s.glb"), (200, "RefreshHit", b"v1"))
        self.assertEqual(self.origin.requests[n].headers.get("if-none-match"), '"v1"')
        time.sleep(0.2)
        self.assertEqual(self.get("/s.glb")[1], "Hit")   # the mark went with the refresh
        # soft again, and now the origin fails: stale-if-error still serves it
        self.assertEqual(self.purge({"paths": ["/s.glb"], "soft": True})[0], 200)
        self.origin.route("/s.glb", lambda req: (503, {"Cache-Control": "no-store"}, b"down"))
        s, xc, b = self.get("/s.glb")
        self.assertEqual((s, b), (200, b"v1"))

    def test_purge_beats_a_fill_in_flight(self):
        release = threading.Event()
        calls = []

        def slow_then_new(req):
            calls.append(1)
            if len(calls) == 1:
                release.wait(20)
                return 200, {"Cache-Control": "max-age=600"}, b"old"
            return 200, {"Cache-Control": "max-age=600"}, b"new"

        self.origin.route("/f.glb", slow_then_new)
        first = {}
        t = threading.Thread(target=lambda: first.setdefault("r", self.get("/f.glb")))
        t.start()
        deadline = time.time() + 10
        while not calls and time.time() < deadline:
            time.sleep(0.01)
        self.assertEqual(self.purge({"paths": ["/f.glb"]}), (200, {"purged": 0, "soft": False}))
        # a viewer arriving after the purge never gets the old body
        self.assertEqual(self.get("/f.glb")[2], b"new")
        release.set()
        t.join(30)
        self.assertEqual(first["r"][2], b"old")   # it began before the purge
        time.sleep(0.3)
        for _ in range(3):
            self.assertEqual(self.get("/f.glb")[2], b"new")

    def test_curl_aws_sigv4_and_chunked_body(self):
        if not shutil.which("curl"):
            self.skipTest("curl not installed")
        self.origin.route("/c.glb", body_of("c"))
        self.warm("/c.glb")
        host, port = self.edge.addr["admin"]
        p = subprocess.run(["curl", "-sS", "-X", "POST", "--aws-sigv4", "aws:amz:us-east-1:meshcdn",
                            "--user", f"{OP}:{OPSECRET}", "-H", "Content-Type: application/json",
                            "-d", '{"paths":["/c.glb"]}', f"http://{host}:{port}/purge"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), {"purged": 1, "soft": False})
        # a chunked request body is read whole before the signature is checked
        self.warm("/c.glb")
        data = b'{"paths":["/c.glb"]}'
        hdrs = h.sign("POST", f"http://{host}:{port}/purge", {"Transfer-Encoding": "chunked"}, OP, OPSECRET,
                      service="meshcdn", payload_hash=None, body=data)
        chunked = b"5\r\n" + data[:5] + b"\r\n" + format(len(data) - 5, "x").encode() + b"\r\n" + data[5:] + b"\r\n0\r\n\r\n"
        head = "POST /purge HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "Connection: close\r\n\r\n"
        with socket.create_connection((host, port), timeout=10) as sk:
            sk.sendall(head.encode() + chunked)
            answer = b""
            while True:
                got = sk.recv(65536)
                if not got:
                    break
                answer += got
        status_line, _, rest = answer.partition(b"\r\n")
        self.assertIn(b" 200 ", status_line)
        self.assertEqual(json.loads(rest.split(b"\r\n\r\n", 1)[1]), {"purged": 1, "soft": False})


class TestPurgeRefusals(PurgeCase):
    def test_bad_requests_change_nothing(self):
        self.origin.route("/keep.glb", body_of("k"))
        self.warm("/keep.glb")
        cases = [
            (dict(raw=b'{"paths": ["/keep.glb"'), 400, "MalformedJSON"),
            (dict(body={"paths": ["/keep.glb"], "color": "red"}), 400, "UnknownField"),
            (dict(body={"paths": [], "surrogate_keys": []}), 400, "EmptyInvalidation"),
            (dict(body={"paths": ["keep.glb"]}), 400, "InvalidPath"),
            (dict(body={"paths": ["/keep.glb"]}, signed=False), 401, "MissingAuthentication"),
            (dict(body={"paths": ["/keep.glb"]}, key="AKIDNOBODY"), 403, "InvalidAccessKeyId"),
            (dict(body={"paths": ["/keep.glb"]}, secret="wrong-secret"), 403, "SignatureDoesNotMatch"),
        ]
        for kw, status, code in cases:
            s, out = self.purge(**kw)
            self.assertEqual((s, out["error"]), (status, code), (kw, out))
            self.assertTrue(out["message"])
        # a body signed for something else does not pass: the payload is signed
        host, port = self.edge.addr["admin"]
        hdrs = h.sign("POST", f"http://{host}:{port}/purge", {}, OP, OPSECRET, service="meshcdn",
                      payload_hash=None, body=b'{"paths":["/other.glb"]}')
        s, hd, b, c = h.http("POST", host, port, "/purge", hdrs, body=b'{"paths":["/keep.glb"]}')
        self.assertEqual(s, 403)
        # too large a body is refused before it is read
        s, hd, b, c = h.http("POST", host, port, "/purge", {"Content-Length": str(64 << 20)}, body=b"")
        self.assertEqual(s, 413)
        s, hd, b, c = h.http("GET", host, port, "/purge")
        self.assertEqual(s, 405)
        self.assertEqual(self.get("/keep.glb")[1], "Hit")
        self.assertEqual(h.metrics(*self.edge.addr["admin"]).get("meshcdn_edge_purged_objects_total", 0), 0)

    def test_no_keys_configured_refuses_every_purge(self):
        d = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", self.origin.url, "--origin-sign", "none",
            "--store", f"{self.tmp}/store2", "--store-size", "64M", "--workers", "1"],
            listeners=("http", "admin"))
        self.addCleanup(d.stop)
        host, port = d.addr["admin"]
        data = b'{"all":true}'
        hdrs = h.sign("POST", f"http://{host}:{port}/purge", {}, OP, OPSECRET, service="meshcdn",
                      payload_hash=None, body=data)
        s, hd, b, c = h.http("POST", host, port, "/purge", hdrs, body=data)
        self.assertEqual(s, 403)
        self.assertIn("no operator keys", json.loads(b)["message"])


if __name__ == "__main__":
    unittest.main()
