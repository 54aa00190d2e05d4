"""RFC 9111 behaviour of meshcdn-edge in front of a scripted HTTP origin
(--origin-sign none): storability, heuristic freshness, revalidation,
stale-while-revalidate, stale-if-error, must-revalidate, request directives."""

import time
import unittest

import mcharness as h
from scriptorigin import ScriptOrigin

PAST = "Mon, 01 Jan 2024 00:00:00 GMT"


def fixed(status, headers, body=b"mesh-bytes"):
    return lambda req: (status, headers, body)


class CachingCase(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.origin = ScriptOrigin()
        self.addCleanup(self.origin.stop)
        self.edge = self.start_edge()

    def start_edge(self, *extra):
        d = h.Daemon("meshcdn-edge", ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                      "--origin", self.origin.url, "--origin-sign", "none",
                                      "--store", f"{self.tmp}/store", "--store-size", "64M",
                                      "--workers", "2", "--node-id", "c1",
                                      "--origin.connect_timeout", "1s"] + list(extra),
                     listeners=("http", "admin"))
        self.addCleanup(d.stop)
        return d

    def get(self, path, headers=None, edge=None):
        return h.http("GET", *(edge or self.edge).addr["http"], path, headers or {}, timeout=30)

    def get_settled(self, path, headers=None):
        """GET, then give the store writer a moment to publish."""
        r = self.get(path, headers)
        time.sleep(0.15)
        return r

    def assertStatus(self, resp, xcache, cache_status_part=None, status=200):
        s, hd, b, c = resp
        self.assertEqual(s, status, (hd, b[:200]))
        self.assertTrue(c)
        self.assertEqual(hd.get("x-cache"), [f"{xcache} from meshcdn"], hd.get("cache-status"))
        if cache_status_part:
            self.assertIn(cache_status_part, hd["cache-status"][0])


class TestStorability(CachingCase):
    def test_heuristic_freshness_from_last_modified(self):
        self.origin.route("/h.glb", fixed(200, {"Last-Modified": PAST}))
        self.assertStatus(self.get_settled("/h.glb"), "Miss", "stored")
        s, hd, b, c = self.get("/h.glb")
        self.assertStatus((s, hd, b, c), "Hit")
        ttl = int(hd["cache-status"][0].split("ttl=")[1].split(";")[0])
        self.assertGreater(ttl, 86000)   # 10% of the age, capped at one day
        self.assertEqual(self.origin.count("/h.glb"), 1)

    def test_uncacheable_statuses_and_directives_are_not_stored(self):
        cases = {
            "/302": (302, {"Location": "/x"}),                       # needs explicit freshness
            "/nostore": (200, {"Cache-Control": "no-store, max-age=60"}),
            "/private": (200, {"Cache-Control": "private, max-age=60"}),
            "/cookie": (200, {"Cache-Control": "max-age=60", "Set-Cookie": "s=1"}),
            "/nothing": (200, {}),                                   # no freshness, no validator
        }
        for path, (st, hdrs) in cases.items():
            self.origin.route(path, fixed(st, hdrs))
            self.get_settled(path)
            s, hd, b, c = self.get(path)
            self.assertEqual(hd["x-cache"], ["Miss from meshcdn"], path)
            self.assertEqual(self.origin.count(path), 2, path)

    def test_404_with_max_age_is_cached(self):
        self.origin.route("/gone.glb", fixed(404, {"Cache-Control": "max-age=60"}, b"nope"))
        self.get_settled("/gone.glb")
        self.assertStatus(self.get("/gone.glb"), "Hit", status=404)
        self.assertEqual(self.origin.count("/gone.glb"), 1)

    def test_set_cookie_strip_policy_stores_without_the_cookie(self):
        edge = self.start_edge("--cache.set_cookie", "strip", "--store", f"{self.tmp}/store2")
        self.origin.route("/c.glb", fixed(200, {"Cache-Control": "max-age=60", "Set-Cookie": "s=1"}))
        r1 = self.get("/c.glb", edge=edge)
        time.sleep(0.15)
        r2 = self.get("/c.glb", edge=edge)
        self.assertNotIn("set-cookie", r1[1])
        self.assertEqual(r2[1]["x-cache"], ["Hit from meshcdn"])
        self.assertNotIn("set-cookie", r2[1])


class TestForwarding(CachingCase):
    def test_path_and_query_forwarded_as_received(self):
        self.origin.route("/q.glb", fixed(200, {"Cache-Control": "max-age=60"}))
        self.get("/q.glb?b=2&a=%41")
        self.assertEqual(self.origin.last("/q.glb").path, "/q.glb?b=2&a=%41")
        self.origin.route("/sp%20ace.glb", fixed(200, {"Cache-Control": "max-age=60"}))
        self.get("/sp%20ace.glb")
        self.assertEqual(self.origin.count("/sp%20ace.glb"), 1)

    def test_hop_by_hop_headers_are_not_forwarded(self):
        self.origin.route("/hop.glb", fixed(200, [("Cache-Control", "max-age=60"), ("Connection", "X-Secret"),
                                                  ("X-Secret", "1"), ("Keep-Alive", "timeout=5")]))
        s, hd, b, c = self.get("/hop.glb")
        self.assertNotIn("x-secret", hd)
        self.assertNotIn("keep-alive", hd)
        self.assertIn("via", hd)
        self.assertIn("meshcdn-c1", self.origin.last("/hop.glb").headers.get("cdn-loop", ""))


class TestBehaviors(CachingCase):
    def test_ttls_and_query_modes_by_path_prefix(self):
        ini = f"{self.tmp}/edge.ini"
        with open(ini, "w") as f:
            f.write("[cache]\nmax_ttl = 10s\n"
                    "[behavior]\n"
                    "/models/ = default_ttl=60s query=none negative_ttl=30s\n"
                    "/api/ = query=list:v,lang\n"
                    "/sorted/ = query=sorted\n")
        edge = self.start_edge("--config", ini, "--store", f"{self.tmp}/store-b")
        ok = fixed(200, {})
        for p in ("/models/a.glb", "/api/x", "/sorted/y", "/capped.glb"):
            self.origin.route(p, ok)
        self.origin.route("/capped.glb", fixed(200, {"Cache-Control": "max-age=86400"}))
        self.origin.route("/models/missing.glb", fixed(404, {}))
        g = lambda p: self.get(p, edge=edge)
        # default_ttl makes a response without freshness cacheable; query=none drops the query
        g("/models/a.glb?v=1")
        time.sleep(0.15)
        s, hd, b, c = g("/models/a.glb?v=2")
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(self.origin.last("/models/a.glb").path, "/models/a.glb")
        # negative_ttl caches a 404 without freshness
        g("/models/missing.glb")
        time.sleep(0.15)
        self.assertEqual(g("/models/missing.glb")[1]["x-cache"], ["Hit from meshcdn"])
        # query=list keys (and forwards) only the listed names
        self.origin.route("/api/x", fixed(200, {"Cache-Control": "max-age=60"}))
        g("/api/x?v=1&utm=a&lang=fr")
        time.sleep(0.15)
        self.assertEqual(self.origin.last("/api/x").path, "/api/x?v=1&lang=fr")
        self.assertEqual(g("/api/x?v=1&utm=c&lang=fr")[1]["x-cache"], ["Hit from meshcdn"])
        time.sleep(0.15)
        self.assertEqual(g("/api/x?lang=fr&utm=b&v=1")[1]["x-cache"], ["Miss from meshcdn"])  # order kept
        # query=sorted: one key for any order, the origin sees it as sent
        self.origin.route("/sorted/y", fixed(200, {"Cache-Control": "max-age=60"}))
        g("/sorted/y?b=2&a=1")
        time.sleep(0.15)
        self.assertEqual(g("/sorted/y?a=1&b=2")[1]["x-cache"], ["Hit from meshcdn"])
        # max_ttl caps explicit freshness
        g("/capped.glb")
        time.sleep(0.15)
        s, hd, b, c = g("/capped.glb")
        ttl = int(hd["cache-status"][0].split("ttl=")[1].split(";")[0])
        self.assertLessEqual(ttl, 10)

    def test_bad_behavior_names_the_line(self):
        ini = f"{self.tmp}/bad.ini"
        with open(ini, "w") as f:
            f.write("[origin]\nurl = http://127.0.0.1:1/b\nsign = none\n[behavior]\n/m/ = ttl=5\n")
        p = h.run("meshcdn-edge", ["--config", ini])
        self.assertEqual(p.returncode, 2)
        self.assertIn(f'{ini}:5: behavior./m/: "ttl" is not one of', p.stderr)


class TestVary(CachingCase):
    def test_variants_by_accept_encoding_share_normalised_spellings(self):
        def handler(req):
            ae = req.headers.get("accept-encoding", "none")
            return 200, {"Cache-Control": "max-age=60", "Vary": "Accept-Encoding"}, f"body-for-{ae}".encode()
        self.origin.route("/v.gltf", handler)
        g = lambda ae: self.get_settled("/v.gltf", {"Accept-Encoding": ae})
        s, hd, b, c = g("gzip, br")
        self.assertEqual((hd["x-cache"], b), (["Miss from meshcdn"], b"body-for-gzip, br"))
        s, hd, b, c = g("br,gzip")                 # same members, other order and spacing
        self.assertEqual((hd["x-cache"], b), (["Hit from meshcdn"], b"body-for-gzip, br"))
        s, hd, b, c = g("identity")
        self.assertEqual((hd["x-cache"], b), (["Miss from meshcdn"], b"body-for-identity"))
        s, hd, b, c = g("identity")
        self.assertEqual((hd["x-cache"], b), (["Hit from meshcdn"], b"body-for-identity"))
        s, hd, b, c = g("GZIP,  br")               # case-insensitive field
        self.assertEqual((hd["x-cache"], b), (["Hit from meshcdn"], b"body-for-gzip, br"))
        self.assertEqual(self.origin.count("/v.gltf"), 2)

    def test_vary_star_is_never_served_from_cache(self):
        self.origin.route("/star", fixed(200, {"Cache-Control": "max-age=60", "Vary": "*"}))
        self.get_settled("/star")
        self.assertEqual(self.get("/star")[1]["x-cache"], ["Miss from meshcdn"])
        self.assertEqual(self.origin.count("/star"), 2)

    def test_concurrent_viewers_of_different_variants_get_their_own(self):
        import threading

        def handler(req):
            time.sleep(0.2)   # keep the first fill open while the others arrive
            return 200, {"Cache-Control": "max-age=60", "Vary": "Origin"}, req.headers.get("origin", "-").encode()
        self.origin.route("/cors.glb", handler)
        out = {}

        def fetch(o):
            out[o] = self.get("/cors.glb", {"Origin": o})[2]
        ts = [threading.Thread(target=fetch, args=(o,)) for o in ("https://a.example", "https://b.example")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(out, {o: o.encode() for o in out})


class TestRobustness(CachingCase):
    def test_chunked_body_over_the_object_limit_is_not_stored(self):
        edge = self.start_edge("--store.max_object_size", "1M", "--store", f"{self.tmp}/s-big")
        self.origin.route("/big.bin", fixed(200, {"Cache-Control": "max-age=60"}, [b"x" * 65536] * 40))
        self.origin.route("/small.bin", fixed(200, {"Cache-Control": "max-age=60"}, [b"y" * 1000] * 3))
        for p, size in (("/big.bin", 40 * 65536), ("/small.bin", 3000)):
            s, hd, b, c = self.get(p, edge=edge)
            self.assertEqual((s, len(b), c), (200, size, True))
            time.sleep(0.15)
        self.assertEqual(self.get("/big.bin", edge=edge)[1]["x-cache"], ["Miss from meshcdn"])
        self.assertEqual(self.get("/small.bin", edge=edge)[1]["x-cache"], ["Hit from meshcdn"])

    def test_close_delimited_body_is_never_stored(self):
        self.origin.route("/cd.bin", fixed(200, {"Cache-Control": "max-age=60"}, ("close", b"z" * 300000)))
        s, hd, b, c = self.get_settled("/cd.bin")
        self.assertEqual(len(b), 300000)
        self.assertEqual(self.get("/cd.bin")[1]["x-cache"], ["Miss from meshcdn"])
        self.assertEqual(self.origin.count("/cd.bin"), 2)

    def slow_reader(self, edge, path):
        import socket
        s = socket.create_connection(edge.addr["http"], timeout=30)
        self.addCleanup(s.close)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        return s

    def test_a_slow_viewer_is_cut_off_instead_of_stalling_the_others(self):
        edge = self.start_edge("--store.stall_timeout", "1s", "--workers", "1", "--store", f"{self.tmp}/s-slow")

        def handler(req):
            time.sleep(0.5)   # both viewers attach before the first byte
            return 200, {"Cache-Control": "max-age=60"}, b"m" * (24 << 20)
        self.origin.route("/slow.glb", handler)
        slow = self.slow_reader(edge, "/slow.glb")
        time.sleep(0.1)
        t0 = time.monotonic()
        s, hd, b, c = self.get("/slow.glb", edge=edge)
        self.assertEqual((s, c, len(b)), (200, True, 24 << 20))
        self.assertLess(time.monotonic() - t0, 8)
        got = 0
        try:
            while True:
                chunk = slow.recv(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        self.assertLess(got, 24 << 20)
        self.assertEqual(self.origin.count("/slow.glb"), 1)

    def test_uncacheable_response_does_not_make_others_wait(self):
        edge = self.start_edge("--workers", "1", "--store", f"{self.tmp}/s-pass")
        self.origin.route("/ns.glb", fixed(200, {"Cache-Control": "no-store"}, b"n" * (24 << 20)))
        self.slow_reader(edge, "/ns.glb")      # holds its (uncacheable) fill paused
        time.sleep(0.5)
        t0 = time.monotonic()
        s, hd, b, c = self.get("/ns.glb", edge=edge)
        self.assertEqual((s, c, len(b)), (200, True, 24 << 20))
        self.assertLess(time.monotonic() - t0, 5)   # well before the 10 s stall limit
        self.assertEqual(self.origin.count("/ns.glb"), 2)


class TestEviction(CachingCase):
    def test_store_stays_under_its_bound_and_keeps_hot_objects(self):
        edge = self.start_edge("--store-size", "16M", "--store", f"{self.tmp}/s-evict", "--workers", "1")
        for i in range(40):
            self.origin.route(f"/o{i}.bin", fixed(200, {"Cache-Control": "max-age=600"}, bytes([i]) * (1 << 20)))
        hot = "/o0.bin"
        for i in range(40):
            s, hd, b, c = self.get(f"/o{i}.bin", edge=edge)
            self.assertEqual((s, len(b), c), (200, 1 << 20, True))
            time.sleep(0.05)
            self.get(hot, edge=edge)                # a hit marks it visited each round
        m = h.metrics(*edge.addr["admin"])
        self.assertLessEqual(m["meshcdn_edge_store_bytes"], 16 * (1 << 20) * 0.80)
        self.assertGreater(m["meshcdn_edge_evictions_total"], 20)
        self.assertEqual(m["meshcdn_edge_store_write_failures_total"], 0)
        self.assertEqual(self.get(hot, edge=edge)[1]["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(self.origin.count(hot), 1)     # SIEVE kept the hot object

    def test_restart_rebuilds_the_index_and_evicts_to_a_smaller_size(self):
        store = f"{self.tmp}/s-shrink"
        edge = self.start_edge("--store-size", "32M", "--store", store, "--workers", "1")
        for i in range(12):
            self.origin.route(f"/r{i}.bin", fixed(200, {"Cache-Control": "max-age=600"}, bytes([i]) * (1 << 20)))
            self.get(f"/r{i}.bin", edge=edge)
        time.sleep(0.3)
        self.assertEqual(h.metrics(*edge.addr["admin"])["meshcdn_edge_store_objects"], 12)
        edge.stop()
        edge = self.start_edge("--store-size", "16M", "--store", store, "--workers", "1")
        for _ in range(50):
            m = h.metrics(*edge.addr["admin"])
            if m["meshcdn_edge_store_bytes"] <= 16 * (1 << 20) * 0.80:
                break
            time.sleep(0.05)
        self.assertLessEqual(m["meshcdn_edge_store_bytes"], 16 * (1 << 20) * 0.80)
        self.assertEqual(self.get("/r11.bin", edge=edge)[1]["x-cache"], ["Hit from meshcdn"])  # newest kept


class TestRevalidation(CachingCase):
    def test_304_refreshes_the_stored_copy_without_the_body(self):
        state = {"etag": '"v1"'}

        def handler(req):
            if req.headers.get("if-none-match") == state["etag"]:
                return 304, {"ETag": state["etag"], "Cache-Control": "max-age=60"}, b""
            return 200, {"ETag": state["etag"], "Cache-Control": "max-age=1"}, b"version-1"
        self.origin.route("/r.glb", handler)
        self.assertStatus(self.get_settled("/r.glb"), "Miss")
        time.sleep(1.2)
        s, hd, b, c = self.get_settled("/r.glb")
        self.assertStatus((s, hd, b, c), "RefreshHit", "fwd=stale; fwd-status=304")
        self.assertEqual(b, b"version-1")
        self.assertEqual(self.origin.last("/r.glb").headers.get("if-none-match"), '"v1"')
        s, hd, b, c = self.get("/r.glb")
        self.assertStatus((s, hd, b, c), "Hit")          # the 304's max-age=60 now applies
        self.assertIn("Cache-Control: max-age=60".split(": ")[1], hd["cache-control"][0])
        self.assertEqual(self.origin.count("/r.glb"), 2)

    def test_304_with_the_representation_content_length_has_no_body(self):
        """A 304's Content-Length is the stored representation's (RFC 9110 8.6):
        no body follows (cache-tests 304-etag-update-response-Content-Length)."""
        def handler(req):
            if req.headers.get("if-none-match") == '"v1"':
                return 304, [("ETag", '"v1"'), ("Cache-Control", "max-age=60"), ("Content-Length", "9")], b""
            return 200, {"ETag": '"v1"', "Cache-Control": "max-age=1"}, b"version-1"
        self.origin.route("/cl.glb", handler)
        self.assertStatus(self.get_settled("/cl.glb"), "Miss")
        time.sleep(1.2)
        s, hd, b, c = self.get_settled("/cl.glb")
        self.assertStatus((s, hd, b, c), "RefreshHit", "fwd=stale; fwd-status=304")
        self.assertEqual((b, hd["content-length"]), (b"version-1", ["9"]))
        self.assertStatus(self.get("/cl.glb"), "Hit")
        self.assertEqual(self.origin.count("/cl.glb"), 2)

    def test_304_does_not_replace_the_fields_describing_the_stored_body(self):
        """cache-tests 304-etag-update-response-{ETag,Content-MD5,Content-Encoding}:
        the 304's other fields replace the stored ones (RFC 9111 3.2)."""
        def handler(req):
            if req.headers.get("if-none-match") == '"v1"':
                return 304, {"ETag": '"v2"', "Content-MD5": "N7UdGUp1E+RbVvZSTy1R8g==",
                             "Content-Encoding": "x-other", "X-Meta": "b", "Cache-Control": "max-age=60"}, b""
            return 200, {"ETag": '"v1"', "Content-MD5": "rL0Y20zC+Fzt72VPzMSk2A==", "Content-Encoding": "x-one",
                         "X-Meta": "a", "Cache-Control": "max-age=1"}, b"version-1"
        self.origin.route("/m304.glb", handler)
        self.assertStatus(self.get_settled("/m304.glb"), "Miss")
        time.sleep(1.2)
        for xcache in ("RefreshHit", "Hit"):
            s, hd, b, c = self.get_settled("/m304.glb")
            self.assertStatus((s, hd, b, c), xcache)
            self.assertEqual((hd["etag"], hd["content-md5"], hd["content-encoding"], hd["x-meta"]),
                             (['"v1"'], ["rL0Y20zC+Fzt72VPzMSk2A=="], ["x-one"], ["b"]))
            self.assertEqual(b, b"version-1")

    def test_200_on_revalidation_replaces_the_body(self):
        bodies = [b"old-body", b"new-body"]

        def handler(req):
            body = bodies[0] if self.origin.count("/v.glb") <= 1 else bodies[1]
            return 200, {"ETag": '"%d"' % len(self.origin.requests), "Cache-Control": "max-age=1",
                         "Last-Modified": PAST}, body
        self.origin.route("/v.glb", handler)
        self.assertEqual(self.get_settled("/v.glb")[2], b"old-body")
        time.sleep(1.2)
        s, hd, b, c = self.get_settled("/v.glb")
        self.assertEqual(b, b"new-body")
        self.assertIn("fwd=stale", hd["cache-status"][0])
        self.assertIn("if-modified-since", self.origin.last("/v.glb").headers)
        self.assertEqual(self.get("/v.glb")[2], b"new-body")

    def test_viewer_no_cache_and_max_age_0_revalidate(self):
        def handler(req):
            if req.headers.get("if-none-match") == '"e"':
                return 304, {"ETag": '"e"', "Cache-Control": "max-age=600"}, b""
            return 200, {"ETag": '"e"', "Cache-Control": "max-age=600"}, b"body"
        self.origin.route("/n.glb", handler)
        self.get_settled("/n.glb")
        self.assertStatus(self.get_settled("/n.glb", {"Cache-Control": "no-cache"}), "RefreshHit")
        self.assertStatus(self.get("/n.glb", {"Cache-Control": "max-age=5"}), "Hit")
        time.sleep(1.1)   # max-age=0 accepts a copy of age 0 (whole seconds): let it age
        self.assertStatus(self.get_settled("/n.glb", {"Cache-Control": "max-age=0"}), "RefreshHit")
        self.assertStatus(self.get("/n.glb"), "Hit")
        self.assertEqual(self.origin.count("/n.glb"), 3)

    def test_stored_no_cache_response_is_validated_before_each_use(self):
        def handler(req):
            if req.headers.get("if-none-match") == '"nc"':
                return 304, {"ETag": '"nc"', "Cache-Control": "no-cache, max-age=600"}, b""
            return 200, {"ETag": '"nc"', "Cache-Control": "no-cache, max-age=600"}, b"nc-body"
        self.origin.route("/nc.glb", handler)
        self.assertStatus(self.get_settled("/nc.glb"), "Miss", "stored")
        for _ in range(2):
            s, hd, b, c = self.get_settled("/nc.glb")
            self.assertStatus((s, hd, b, c), "RefreshHit")
            self.assertEqual(b, b"nc-body")
        self.assertEqual(self.origin.count("/nc.glb"), 3)

    def test_only_if_cached(self):
        self.origin.route("/o.glb", fixed(200, {"Cache-Control": "max-age=60"}))
        s, hd, b, c = self.get("/o.glb", {"Cache-Control": "only-if-cached"})
        self.assertEqual(s, 504)
        self.assertIn("detail=only-if-cached", hd["cache-status"][0])
        self.assertEqual(self.origin.count("/o.glb"), 0)
        self.get_settled("/o.glb")
        self.assertStatus(self.get("/o.glb", {"Cache-Control": "only-if-cached"}), "Hit")


class TestStale(CachingCase):
    def test_stale_while_revalidate_serves_stale_and_refreshes_in_background(self):
        n = {"v": 0}

        def handler(req):
            n["v"] += 1
            return 200, {"Cache-Control": "max-age=1, stale-while-revalidate=30"}, b"v%d" % n["v"]
        self.origin.route("/s.glb", handler)
        self.assertEqual(self.get_settled("/s.glb")[2], b"v1")
        time.sleep(2.1)
        s, hd, b, c = self.get("/s.glb")
        self.assertStatus((s, hd, b, c), "Hit", "detail=stale-while-revalidate")
        self.assertEqual(b, b"v1")
        self.assertIn("ttl=-", hd["cache-status"][0])
        for _ in range(50):                     # the background refresh lands
            time.sleep(0.05)
            s, hd, b, c = self.get("/s.glb")
            if b == b"v2":
                break
        self.assertEqual(b, b"v2")
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(self.origin.count("/s.glb"), 2)

    def test_stale_if_error_on_5xx_and_on_a_dead_origin(self):
        mode = {"fail": False}

        def handler(req):
            if mode["fail"]:
                return 503, {}, b"down"
            return 200, {"Cache-Control": "max-age=1, stale-if-error=60"}, b"good"
        self.origin.route("/e.glb", handler)
        self.get_settled("/e.glb")
        time.sleep(1.2)
        mode["fail"] = True
        s, hd, b, c = self.get("/e.glb")
        self.assertStatus((s, hd, b, c), "Hit", "detail=stale-if-error")
        self.assertEqual(b, b"good")
        self.origin.stop()
        s, hd, b, c = self.get("/e.glb")
        self.assertStatus((s, hd, b, c), "Hit", "detail=stale-if-error")
        self.assertEqual(b, b"good")

    def test_must_revalidate_gets_504_when_the_origin_is_down(self):
        self.origin.route("/m.glb", fixed(200, {"Cache-Control": "max-age=1, must-revalidate, stale-if-error=60"}))
        self.origin.route("/p.glb", fixed(200, {"Cache-Control": "max-age=1"}))
        self.get_settled("/m.glb")
        self.get_settled("/p.glb")
        time.sleep(1.2)
        self.origin.stop()
        s, hd, b, c = self.get("/m.glb")
        self.assertEqual(s, 504)
        self.assertIn("fwd=stale; detail=stale-forbidden", hd["cache-status"][0])
        # no stale-if-error at all: the stale copy is not served either
        s, hd, b, c = self.get("/p.glb")
        self.assertEqual(s, 504)

    def test_configured_stale_if_error_default(self):
        edge = self.start_edge("--cache.stale_if_error", "1h", "--store", f"{self.tmp}/store3")
        self.origin.route("/d.glb", fixed(200, {"Cache-Control": "max-age=1"}, b"kept"))
        self.get("/d.glb", edge=edge)
        time.sleep(1.3)
        self.origin.stop()
        s, hd, b, c = self.get("/d.glb", edge=edge)
        self.assertStatus((s, hd, b, c), "Hit", "detail=stale-if-error")
        self.assertEqual(b, b"kept")


class TestAge(CachingCase):
    """The upstream's Age counts in the corrected initial age (RFC 9111 4.2.3;
    cache-tests freshness-max-age-age, other-age-update-*, age-parse-*)."""

    def test_upstream_age_counts_towards_staleness_and_the_age_sent(self):
        self.origin.route("/old.glb", fixed(200, {"Cache-Control": "max-age=3600", "Age": "7200"}))
        self.origin.route("/aged.glb", fixed(200, {"Cache-Control": "max-age=600", "Age": "30"}))
        s, hd, b, c = self.get_settled("/old.glb")
        self.assertEqual(hd["age"], ["7200"])          # as received: a fast fetch adds nothing
        self.assertStatus(self.get("/old.glb"), "Miss")  # older than its max-age: stale
        self.assertEqual(self.origin.count("/old.glb"), 2)
        s, hd, b, c = self.get_settled("/aged.glb")
        self.assertEqual(hd["age"], ["30"])
        s, hd, b, c = self.get("/aged.glb")
        self.assertStatus((s, hd, b, c), "Hit")
        self.assertGreaterEqual(int(hd["age"][0]), 30)
        self.assertIn("ttl=5", hd["cache-status"][0])   # 570 left, not 600

    def test_an_invalid_age_makes_the_response_stale(self):
        cases = {"/abc": [("Age", "abc")], "/neg": [("Age", "-7200")], "/float": [("Age", "7200.0")],
                 "/list": [("Age", "0, 0")], "/param": [("Age", "7200;foo=bar")],
                 "/twolines": [("Age", "0"), ("Age", "0")]}
        for path, age in cases.items():
            self.origin.route(path, fixed(200, [("Cache-Control", "max-age=3600")] + age))
            self.get_settled(path)
            s, hd, b, c = self.get(path)
            self.assertEqual(hd["x-cache"], ["Miss from meshcdn"], path)
            self.assertEqual(self.origin.count(path), 2, path)
        self.origin.route("/ok", fixed(200, [("Cache-Control", "max-age=3600"), ("Age", " 5 ")]))
        self.get_settled("/ok")
        self.assertStatus(self.get("/ok"), "Hit")


class TestMustUnderstand(CachingCase):
    """RFC 9111 5.2.2.3 (cache-tests status-599-must-understand)."""

    def test_unknown_status_is_not_stored_and_a_known_one_ignores_no_store(self):
        self.origin.route("/599", fixed(599, {"Cache-Control": "max-age=3600, must-understand"}))
        self.origin.route("/599plain", fixed(599, {"Cache-Control": "max-age=3600"}))
        self.origin.route("/200", fixed(200, {"Cache-Control": "max-age=3600, must-understand, no-store"}))
        for path in ("/599", "/599plain", "/200"):
            self.get_settled(path)
        s, hd, b, c = self.get("/599")
        self.assertEqual((s, hd["x-cache"]), (599, ["Miss from meshcdn"]))
        self.assertEqual(self.origin.count("/599"), 2)
        s, hd, b, c = self.get("/599plain")   # explicit freshness alone: stored
        self.assertEqual((s, hd["x-cache"]), (599, ["Hit from meshcdn"]))
        self.assertStatus(self.get("/200"), "Hit")
        self.assertEqual(self.origin.count("/200"), 1)


class TestAuthorization(CachingCase):
    """RFC 9111 3.5 (cache-tests other-authorization): with an unsigned
    origin a viewer's credentials go upstream and the answer is neither
    stored nor taken from the store."""

    def test_credentialed_requests_pass_and_are_not_stored(self):
        self.origin.route("/a.json", fixed(200, {"Cache-Control": "max-age=3600"}, b"secret"))
        s, hd, b, c = self.get_settled("/a.json", {"Authorization": "Bearer alice"})
        self.assertEqual((s, b, c), (200, b"secret", True))
        self.assertIn("fwd=bypass", hd["cache-status"][0])
        self.assertEqual(self.origin.last("/a.json").headers.get("authorization"), "Bearer alice")
        # not stored: an anonymous viewer goes to the origin
        self.assertStatus(self.get_settled("/a.json"), "Miss", "stored")
        self.assertEqual(self.origin.count("/a.json"), 2)
        self.assertStatus(self.get("/a.json"), "Hit")
        # and a stored copy is not what a credentialed viewer gets
        s, hd, b, c = self.get("/a.json", {"Authorization": "Bearer bob"})
        self.assertIn("fwd=bypass", hd["cache-status"][0])
        self.assertEqual(self.origin.count("/a.json"), 3)
        self.assertStatus(self.get("/a.json"), "Hit")   # nothing invalidated


if __name__ == "__main__":
    unittest.main()
