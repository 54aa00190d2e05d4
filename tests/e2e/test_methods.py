"""Unsafe methods (RFC 9111 4.4): POST, PUT, PATCH, DELETE, OPTIONS and unknown
methods pass through meshcdn-edge to the origin with their body, are never
stored, and a non-error answer invalidates the target URI and the same-host
Location / Content-Location URIs. Also the request-body limit, read-only
behaviors, and a PUT through the edge to the real signed origin (the edge
signs the real payload hash)."""

import hashlib
import http.client
import os
import time
import unittest

import mcharness as h
from scriptorigin import ScriptOrigin

CACHED = {"Cache-Control": "max-age=600"}


class MethodsCase(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.origin = ScriptOrigin()
        self.addCleanup(self.origin.stop)
        self.edge = self.start_edge()
        self.versions = {}

    def start_edge(self, *extra, store="store"):
        d = h.Daemon("meshcdn-edge", ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                      "--origin", self.origin.url, "--origin-sign", "none",
                                      "--store", f"{self.tmp}/{store}", "--store-size", "64M",
                                      "--workers", "2", "--node-id", "m1",
                                      "--origin.connect_timeout", "1s"] + list(extra),
                     listeners=("http", "admin"))
        self.addCleanup(d.stop)
        return d

    def req(self, method, path, headers=None, body=None, edge=None):
        return h.http(method, *(edge or self.edge).addr["http"], path, headers or {}, body=body, timeout=30)

    def chunked(self, method, path, parts, edge=None):
        """A request whose body is sent chunked (no Content-Length): (status, body)."""
        conn = http.client.HTTPConnection(*(edge or self.edge).addr["http"], timeout=30)
        try:
            conn.request(method, path, body=iter(parts), encode_chunked=True)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def versioned(self, path, extra=None):
        """A cacheable resource whose body changes on every origin request."""
        def handler(req):
            if req.method != "GET":
                return 200, dict(extra or {}), b"ok"
            self.versions[path] = self.versions.get(path, 0) + 1
            return 200, CACHED, b"%s v%d" % (path.encode(), self.versions[path])
        self.origin.route(path.split("?")[0], handler)

    def cache(self, path, edge=None):
        """GET until stored, and check the second GET is a hit."""
        self.req("GET", path, edge=edge)
        time.sleep(0.15)
        s, hd, b, c = self.req("GET", path, edge=edge)
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"], path)
        return b

    def xcache(self, path, edge=None):
        return self.req("GET", path, edge=edge)[1]["x-cache"][0].split()[0]


class TestPassThrough(MethodsCase):
    def test_post_goes_to_the_origin_with_its_body_and_is_never_stored(self):
        self.origin.route("/api/echo", lambda r: (200, {"Cache-Control": "max-age=600", "X-Got": r.method},
                                                  b"echo:" + r.body))
        body = bytes(range(256)) * 40
        for i in range(2):
            s, hd, b, c = self.req("POST", "/api/echo?x=1", {"Content-Type": "application/octet-stream",
                                                              "X-Custom": "yes", "Cookie": "sid=1"}, body)
            self.assertEqual((s, c, b), (200, True, b"echo:" + body))
            self.assertEqual(hd["x-got"], ["POST"])
            self.assertIn("fwd=method; fwd-status=200", hd["cache-status"][0])
            self.assertNotIn("stored", hd["cache-status"][0])
        self.assertEqual(self.origin.count("/api/echo"), 2)   # a POST answer is never a hit
        got = self.origin.last("/api/echo")
        self.assertEqual((got.method, got.path, got.body), ("POST", "/api/echo?x=1", body))
        self.assertEqual(got.headers["content-type"], "application/octet-stream")
        self.assertEqual((got.headers["x-custom"], got.headers["cookie"]), ("yes", "sid=1"))
        self.assertIn("meshcdn-m1", got.headers["cdn-loop"])
        self.assertIn("meshcdn-m1", got.headers["via"])
        # a GET of the same URL was not answered from the POST's response
        self.assertEqual(self.req("GET", "/api/echo?x=1")[2], b"echo:")

    def test_every_unsafe_and_unknown_method_passes_with_its_body(self):
        self.origin.route("/any", lambda r: (200, {}, b"%s:%s" % (r.method.encode(), r.body)))
        for m in ("POST", "PUT", "PATCH", "DELETE", "FROBNICATE"):
            s, hd, b, c = self.req(m, "/any", {"Content-Type": "text/plain"}, b"payload-" + m.encode())
            self.assertEqual((s, b), (200, b"%s:payload-%s" % (m.encode(), m.encode())), m)
        s, hd, b, c = self.req("DELETE", "/any")          # no body at all
        self.assertEqual((s, b), (200, b"DELETE:"))
        self.assertNotIn("content-type", self.origin.last("/any").headers)   # none invented
        s, hd, b, c = self.req("OPTIONS", "/any", {"Origin": "https://shop.example"})
        self.assertEqual((s, b), (200, b"OPTIONS:"))
        self.assertEqual([r.method for r in self.origin.requests],
                         ["POST", "PUT", "PATCH", "DELETE", "FROBNICATE", "DELETE", "OPTIONS"])

    def test_chunked_request_body_is_passed_on(self):
        self.origin.route("/up", lambda r: (201, {}, b"%d" % len(r.body)))
        self.assertEqual(self.chunked("PUT", "/up", [b"chunk-1", b"chunk-22"]), (201, b"15"))
        self.assertEqual(self.origin.last("/up").body, b"chunk-1chunk-22")

    def test_origin_errors_are_relayed_and_a_dead_origin_gives_502(self):
        self.origin.route("/bad", lambda r: (409, {"Content-Type": "application/json"}, b'{"error":"conflict"}'))
        s, hd, b, c = self.req("PUT", "/bad", body=b"x")
        self.assertEqual((s, b, hd["content-type"]), (409, b'{"error":"conflict"}', ["application/json"]))
        self.origin.stop()
        s, hd, b, c = self.req("POST", "/bad", body=b"x")
        self.assertEqual(s, 502)
        self.assertIn("fwd=method", hd["cache-status"][0])

    def test_large_streamed_answer_to_a_post(self):
        big = os.urandom(1 << 20) * 12
        self.origin.route("/export", lambda r: (200, {}, [big[i:i + (1 << 20)] for i in range(0, len(big), 1 << 20)]))
        s, hd, b, c = self.req("POST", "/export", body=b"q")
        self.assertEqual((s, c, hashlib.sha256(b).digest()), (200, True, hashlib.sha256(big).digest()))


class TestInvalidation(MethodsCase):
    def test_success_invalidates_the_target_uri(self):
        for m in ("POST", "PUT", "PATCH", "DELETE", "FROBNICATE"):
            path = f"/obj-{m.lower()}.glb"
            self.versioned(path)
            self.assertEqual(self.cache(path), path.encode() + b" v1")
            self.assertEqual(self.req(m, path, body=b"new")[0], 200)
            s, hd, b, c = self.req("GET", path)              # at once: no sleep
            self.assertEqual((hd["x-cache"], b), (["Miss from meshcdn"], path.encode() + b" v2"), m)

    def test_invalidation_covers_vary_variants_and_only_the_exact_query(self):
        def handler(req):
            if req.method != "GET":
                return 204, {}, b""
            self.versions["v"] = self.versions.get("v", 0) + 1
            return 200, dict(CACHED, Vary="Accept-Language"), b"v%d" % self.versions["v"]
        self.origin.route("/cat", handler)
        self.origin.route("/other", handler)
        for lang in ("en", "fr"):
            self.req("GET", "/cat?p=1", {"Accept-Language": lang})
        self.req("GET", "/cat?p=2")
        time.sleep(0.15)
        self.assertEqual(self.req("GET", "/cat?p=1", {"Accept-Language": "fr"})[1]["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(self.req("POST", "/cat?p=1", body=b"")[0], 204)
        for lang in ("en", "fr"):
            self.assertEqual(self.req("GET", "/cat?p=1", {"Accept-Language": lang})[1]["x-cache"],
                             ["Miss from meshcdn"], lang)
        self.assertEqual(self.xcache("/cat?p=2"), "Hit")     # another URI: kept

    def test_errors_and_options_do_not_invalidate(self):
        self.versioned("/keep.glb")
        self.cache("/keep.glb")
        self.origin.route("/keep.glb", lambda r: (500, {}, b"broken") if r.method == "POST" else (200, CACHED, b"x"))
        self.assertEqual(self.req("POST", "/keep.glb", body=b"1")[0], 500)
        self.origin.route("/keep.glb", lambda r: (404, {}, b"no") if r.method == "DELETE" else (200, {}, b""))
        self.assertEqual(self.req("DELETE", "/keep.glb")[0], 404)
        self.assertEqual(self.req("OPTIONS", "/keep.glb")[0], 200)
        self.assertEqual(self.xcache("/keep.glb"), "Hit")

    def test_location_and_content_location_on_the_same_host(self):
        host = "%s:%d" % tuple(self.edge.addr["http"])
        for p in ("/items/a.glb", "/items/b.glb", "/items/c.glb?x=1", "/items/d.glb", "/items/e.glb"):
            self.versioned(p)
            self.cache(p)
        answers = iter([
            (201, {"Location": "/items/a.glb", "Content-Location": f"http://{host}/items/c.glb?x=1"}),
            (200, {"Location": "http://elsewhere.example/items/b.glb"}),        # another host: never
            (303, {"Location": "d.glb"}),                                        # relative to /items/
            (200, {"Content-Location": f"{self.origin.url}/items/e.glb"}),       # the origin's own URL
            (200, {"Content-Location": "?page=2"}),                              # the target, another query
        ])
        self.origin.route("/items/new", lambda r: (200, CACHED, b"list") if r.method == "GET"
                          else next(answers) + (b"",))
        self.cache("/items/new?page=2")
        self.cache("/items/new?page=3")
        for _ in range(5):   # the target has a query: it covers no other query of /items/new
            self.assertLess(self.req("POST", "/items/new?op=add", body=b"{}")[0], 400)
        paths = ("/items/a.glb", "/items/b.glb", "/items/c.glb?x=1", "/items/d.glb", "/items/e.glb",
                 "/items/new?page=2", "/items/new?page=3")
        self.assertEqual({p: self.xcache(p) for p in paths},
                         {"/items/a.glb": "Miss", "/items/b.glb": "Hit", "/items/c.glb?x=1": "Miss",
                          "/items/d.glb": "Miss", "/items/e.glb": "Miss", "/items/new?page=2": "Miss",
                          "/items/new?page=3": "Hit"})

    def test_a_fill_in_flight_does_not_store_the_old_body_after_a_put(self):
        state = {"body": b"old"}

        def handler(req):
            if req.method == "PUT":
                state["body"] = req.body
                return 200, {}, b""
            body = state["body"]
            time.sleep(0.6)          # the GET's answer is on its way while the PUT lands
            return 200, CACHED, body
        self.origin.route("/race.glb", handler)
        import threading
        got = {}
        t = threading.Thread(target=lambda: got.setdefault("b", self.req("GET", "/race.glb")[2]))
        t.start()
        time.sleep(0.2)
        self.assertEqual(self.req("PUT", "/race.glb", body=b"new")[0], 200)
        t.join()
        self.assertEqual(got["b"], b"old")
        time.sleep(0.15)
        self.assertEqual(self.req("GET", "/race.glb")[2], b"new")


class TestLimitsAndBehaviors(MethodsCase):
    def test_body_over_the_limit_gets_413_and_never_reaches_the_origin(self):
        edge = self.start_edge("--edge.max_request_body", "1K", store="s-413")
        self.origin.route("/u", lambda r: (200, {}, b"ok"))
        self.assertEqual(self.req("POST", "/u", body=b"x" * 1024, edge=edge)[0], 200)
        self.assertEqual(self.req("POST", "/u", body=b"x" * 1025, edge=edge)[0], 413)
        self.assertEqual(self.chunked("PUT", "/u", [b"y" * 1024, b"z"], edge=edge)[0], 413)
        self.assertEqual(self.origin.count("/u"), 1)

    def test_read_only_behavior_answers_405(self):
        ini = f"{self.tmp}/edge.ini"
        with open(ini, "w") as f:
            f.write("[behavior]\n/static/ = methods=read default_ttl=60s\n")
        edge = self.start_edge("--config", ini, store="s-ro")
        self.origin.route("/static/a.glb", lambda r: (200, {}, b"a"))
        self.origin.route("/api/a", lambda r: (200, {}, b"a"))
        s, hd, b, c = self.req("POST", "/static/a.glb", body=b"1", edge=edge)
        self.assertEqual((s, hd["allow"]), (405, ["GET, HEAD"]))
        self.assertEqual(self.req("POST", "/api/a", body=b"1", edge=edge)[0], 200)
        self.assertEqual(self.origin.count("/static/a.glb"), 0)
        edge2 = self.start_edge("--cache.methods", "read", store="s-ro2")
        self.assertEqual(self.req("DELETE", "/api/a", edge=edge2)[0], 405)
        p = h.run("meshcdn-edge", ["--config", ini, "--origin", self.origin.url, "--origin-sign", "none",
                                   "--behavior./x/", "methods=some"])
        self.assertEqual(p.returncode, 2)
        self.assertIn('"methods" is not one of', p.stderr)

    def test_connect_trace_and_options_star(self):
        for m in ("CONNECT", "TRACE"):
            self.assertEqual(self.req(m, "/x")[0], 405, m)
        s, hd, b, c = self.req("OPTIONS", "*")
        self.assertEqual(s, 200)
        self.assertIn("POST", hd["allow"][0])
        self.assertEqual(self.origin.requests, [])


class TestVariantCap(MethodsCase):
    """[cache] max_variants: a URL keeps at most N Vary variants; a new one
    beyond replaces an expired variant, else the oldest stored."""

    def setUp(self):
        super().setUp()
        self.edge = self.start_edge("--cache.max_variants", "3", store="s-var")

        def handler(req):
            lang = req.headers.get("accept-language", "-")
            ttl = "1" if lang == "short" else "600"
            return 200, {"Cache-Control": f"max-age={ttl}", "Vary": "Accept-Language"}, lang.encode()
        self.origin.route("/v.glb", handler)

    def lang(self, value):
        s, hd, b, c = self.req("GET", "/v.glb", {"Accept-Language": value})
        self.assertEqual(b, value.encode())
        return hd["x-cache"][0].split()[0]

    def store_all(self, *values):
        for v in values:
            self.assertEqual(self.lang(v), "Miss", v)
            time.sleep(0.15)

    def test_a_new_variant_beyond_the_cap_replaces_the_oldest(self):
        self.store_all("a", "b", "c")
        self.assertEqual([self.lang(v) for v in ("a", "b", "c")], ["Hit"] * 3)
        self.store_all("d")                                   # served, stored, "a" goes
        self.assertEqual([self.lang(v) for v in ("b", "c", "d")], ["Hit"] * 3)
        self.assertEqual(self.lang("a"), "Miss")
        time.sleep(0.15)
        m = h.metrics(*self.edge.addr["admin"])
        self.assertEqual(m["meshcdn_edge_vary_variants_replaced_total"], 2)   # "a" for "d", then "b" for "a"
        self.assertEqual(m["meshcdn_edge_store_objects"], 3)

    def test_an_expired_variant_goes_first(self):
        self.store_all("a", "short", "c")
        time.sleep(1.2)                                       # "short" (max-age=1) expires
        self.store_all("d")
        self.assertEqual([self.lang(v) for v in ("a", "c", "d")], ["Hit"] * 3)   # "a", the oldest, kept
        self.assertEqual(h.metrics(*self.edge.addr["admin"])["meshcdn_edge_vary_variants_replaced_total"], 1)


class TestSignedOrigin(unittest.TestCase):
    AK, SECRET = "AKIDMETHODS", "methods-test-secret-0123456789"

    def test_put_through_the_edge_is_signed_with_the_payload_hash(self):
        tmp = h.tempdir(self)
        os.makedirs(f"{tmp}/root/assets/m")
        with open(f"{tmp}/root/assets/m/chair.glb", "wb") as f:
            f.write(b"chair-v1")
        h.write_keys(f"{tmp}/keys", [(self.AK, self.SECRET)])
        origin = h.Daemon("meshcdn-origin", ["--root", f"{tmp}/root", "--keys", f"{tmp}/keys",
                                             "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        self.addCleanup(origin.stop)
        host, port = origin.addr["s3"]
        edge = h.Daemon("meshcdn-edge", ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                         "--origin", f"http://{host}:{port}/assets", "--credentials", f"{tmp}/keys",
                                         "--store", f"{tmp}/store", "--store-size", "64M", "--workers", "2",
                                         "--node-id", "m2"], listeners=("http", "admin"))
        self.addCleanup(edge.stop)
        get = lambda: h.http("GET", *edge.addr["http"], "/m/chair.glb")
        self.assertEqual(get()[2], b"chair-v1")
        time.sleep(0.15)
        self.assertEqual(get()[1]["x-cache"], ["Hit from meshcdn"])
        body = os.urandom(300000)
        s, hd, b, c = h.http("PUT", *edge.addr["http"], "/m/chair.glb", {"Content-Type": "model/gltf-binary"},
                             body=body)
        self.assertEqual(s, 200, b)          # the origin checked x-amz-content-sha256 against the body
        with open(f"{tmp}/root/assets/m/chair.glb", "rb") as f:
            self.assertEqual(f.read(), body)
        s, hd, b, c = get()
        self.assertEqual((hd["x-cache"], b == body), (["Miss from meshcdn"], True))
        s, hd, b, c = h.http("DELETE", *edge.addr["http"], "/m/chair.glb")
        self.assertEqual(s, 204)
        self.assertEqual(get()[0], 404)


if __name__ == "__main__":
    unittest.main()
