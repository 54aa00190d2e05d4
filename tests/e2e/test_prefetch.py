"""glTF prefetch (issue #11, edge/prefetch.h): after one viewer GET of a
.gltf, the edge fills its buffers and images itself, so the viewer's next
requests are hits; data:, absolute and directory-escaping URIs are never
fetched; the per-document and per-worker limits hold; a behavior with
prefetch=off prefetches nothing; a viewer asking for a dependency while its
prefetch runs joins it (one origin request)."""

import json
import socket
import threading
import time
import unittest

import mcharness as h
from scriptorigin import ScriptOrigin

CACHED = {"Cache-Control": "max-age=600"}
GLTF_TYPE = dict(CACHED, **{"Content-Type": "model/gltf+json"})


def gltf(buffers=(), images=()):
    return json.dumps({"asset": {"version": "2.0"},
                       "buffers": [{"uri": u, "byteLength": 8} for u in buffers],
                       "images": [{"uri": u} for u in images]}).encode()


class PrefetchCase(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.origin = ScriptOrigin()
        self.addCleanup(self.origin.stop)

    def start_edge(self, conf="[cache]\nprefetch = on\n", workers=2):
        path = f"{self.tmp}/edge.ini"
        with open(path, "w") as f:
            f.write(conf)
        d = h.Daemon("meshcdn-edge", ["--config", path, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                      "--origin", self.origin.url, "--origin-sign", "none",
                                      "--store", f"{self.tmp}/store", "--store-size", "64M",
                                      "--workers", str(workers), "--node-id", "p1",
                                      "--cache.mesh_validation", "pass"],
                     listeners=("http", "admin"))
        self.addCleanup(d.stop)
        return d

    def get(self, edge, path, headers=None):
        return h.http("GET", *edge.addr["http"], path, headers or {}, timeout=30)

    def metric(self, edge, name, labels=""):
        return h.metrics(*edge.addr["admin"]).get(f"meshcdn_edge_prefetch_{name}{labels}", 0)

    def settle(self, edge, ended, timeout=10.0):
        """Wait until `ended` prefetch fills have ended (stored, failed or given up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = h.metrics(*edge.addr["admin"])
            done = (m.get("meshcdn_edge_prefetch_completed_total", 0) + m.get("meshcdn_edge_prefetch_failed_total", 0)
                    + m.get('meshcdn_edge_prefetch_skipped_total{reason="bytes"}', 0))
            if done >= ended and m.get("meshcdn_edge_fills_inflight", 0) == 0:
                return m
            time.sleep(0.05)
        self.fail(f"prefetch did not settle at {ended} ended fills: {m}")

    def route_bytes(self, path, body, headers=None):
        self.origin.route(path, lambda r: (200, headers or CACHED, body))


class TestPrefetch(PrefetchCase):
    def test_dependencies_become_hits_without_viewer_requests(self):
        deps = {"/m/chair/chair.bin": b"B" * 4096, "/m/chair/tex/wood grain.png": b"P" * 3000,
                "/m/chair/tex/metal.jpg": b"J" * 2000, "/m/chair/tex/n.ktx2": b"K" * 1000}
        for p, body in deps.items():
            self.route_bytes(p.replace(" ", "%20"), body)
        self.route_bytes("/m/secret.bin", b"S")             # reachable only by escaping
        self.route_bytes("/m/other/x.png", b"X")
        self.origin.route("/m/chair/chair.gltf", lambda r: (200, GLTF_TYPE, gltf(
            buffers=["chair.bin", "data:application/octet-stream;base64,AAAAAAAAAAA=",
                     f"http://127.0.0.1:{self.origin.port}/b/m/other/x.png"],
            images=["tex/wood%20grain.png", "./tex/metal.jpg", "tex/n.ktx2?", "../secret.bin",
                    "%2e%2e/other/x.png", f"//127.0.0.1:{self.origin.port}/b/m/other/x.png",
                    "data:image/png;base64,iVBORw0KGgo=", "chair.bin"])))
        edge = self.start_edge()
        s, rh, body, complete = self.get(edge, "/m/chair/chair.gltf")
        self.assertEqual((s, complete), (200, True))
        self.assertTrue(rh["x-cache"][0].startswith("Miss"))
        m = self.settle(edge, 4)
        self.assertEqual(m["meshcdn_edge_prefetch_started_total"], 4)
        self.assertEqual(m["meshcdn_edge_prefetch_completed_total"], 4)
        self.assertEqual(m['meshcdn_edge_prefetch_skipped_total{reason="data"}'], 2)
        self.assertEqual(m['meshcdn_edge_prefetch_skipped_total{reason="absolute"}'], 2)
        self.assertEqual(m['meshcdn_edge_prefetch_skipped_total{reason="outside"}'], 2)
        self.assertEqual(m["meshcdn_edge_prefetch_bytes_total"], sum(len(b) for b in deps.values()))
        # the edge fetched each dependency once, on its own; nothing else
        for p in deps:
            self.assertEqual(self.origin.count(p.replace(" ", "%20")), 1, p)
        self.assertEqual(self.origin.count("/m/secret.bin"), 0)
        self.assertEqual(self.origin.count("/m/other/x.png"), 0)
        # the viewer's requests (as a browser spells them) are hits
        for p, want in deps.items():
            s, rh, body, complete = self.get(edge, p.replace(" ", "%20"))
            self.assertEqual((s, body), (200, want), p)
            self.assertTrue(rh["x-cache"][0].startswith("Hit"), (p, rh["x-cache"]))
            self.assertTrue(rh["cache-status"][0].split(";")[1].strip().startswith("hit"), rh["cache-status"])
            self.assertEqual(self.origin.count(p.replace(" ", "%20")), 1, p)

    def test_stored_dependencies_are_not_fetched_again(self):
        self.route_bytes("/m/a.bin", b"A" * 100)
        self.route_bytes("/m/b.png", b"B" * 100)
        self.origin.route("/m/a.gltf", lambda r: (200, GLTF_TYPE, gltf(["a.bin"], ["b.png"])))
        edge = self.start_edge()
        self.get(edge, "/m/a.bin")                    # a viewer got it first: stored
        time.sleep(0.2)
        self.get(edge, "/m/a.gltf")
        m = self.settle(edge, 1)
        self.assertEqual(m['meshcdn_edge_prefetch_skipped_total{reason="stored"}'], 1)
        self.assertEqual((self.origin.count("/m/a.bin"), self.origin.count("/m/b.png")), (1, 1))

    def test_behavior_off_prefetches_nothing(self):
        self.route_bytes("/off/a.bin", b"A" * 100)
        self.origin.route("/off/a.gltf", lambda r: (200, GLTF_TYPE, gltf(["a.bin"])))
        self.route_bytes("/on/a.bin", b"A" * 100)
        self.origin.route("/on/a.gltf", lambda r: (200, GLTF_TYPE, gltf(["a.bin"])))
        edge = self.start_edge("[cache]\nprefetch = on\n[behavior]\n/off/ = prefetch=off\n")
        self.assertEqual(self.get(edge, "/off/a.gltf")[0], 200)
        self.assertEqual(self.get(edge, "/on/a.gltf")[0], 200)
        self.settle(edge, 1)
        time.sleep(0.3)
        self.assertEqual(self.metric(edge, "started_total"), 1)
        self.assertEqual(self.origin.count("/off/a.bin"), 0)
        self.assertEqual(self.origin.count("/on/a.bin"), 1)
        s, rh, _, _ = self.get(edge, "/off/a.bin")
        self.assertTrue(rh["x-cache"][0].startswith("Miss"))

    def test_default_is_off_and_invalid_gltf_prefetches_nothing(self):
        self.route_bytes("/m/a.bin", b"A" * 100)
        self.origin.route("/m/a.gltf", lambda r: (200, GLTF_TYPE, gltf(["a.bin"])))
        self.origin.route("/v/bad.gltf", lambda r: (200, GLTF_TYPE, b'{"buffers":[{"uri":"a.bin"}]}'))
        self.route_bytes("/v/a.bin", b"A" * 100)
        edge = self.start_edge("[behavior]\n/v/ = prefetch=on\n")
        self.get(edge, "/m/a.gltf")                   # default behavior: off
        self.get(edge, "/v/bad.gltf")                 # no asset.version: not stored, so not read
        time.sleep(0.5)
        self.assertEqual(self.metric(edge, "started_total"), 0)
        self.assertEqual((self.origin.count("/m/a.bin"), self.origin.count("/v/a.bin")), (0, 0))


class TestLimits(PrefetchCase):
    def test_max_refs_per_gltf(self):
        names = [f"t{i}.png" for i in range(6)]
        for n in names:
            self.route_bytes(f"/m/{n}", b"x" * 10)
        self.origin.route("/m/a.gltf", lambda r: (200, GLTF_TYPE, gltf([], names)))
        edge = self.start_edge("[cache]\nprefetch = on\n[prefetch]\nmax_refs = 2\n")
        self.get(edge, "/m/a.gltf")
        m = self.settle(edge, 2)
        self.assertEqual(m["meshcdn_edge_prefetch_started_total"], 2)
        self.assertEqual(m['meshcdn_edge_prefetch_skipped_total{reason="limit"}'], 4)
        self.assertEqual([self.origin.count(f"/m/{n}") for n in names], [1, 1, 0, 0, 0, 0])

    def test_byte_budget_per_gltf(self):
        # 600 + 600 + 100 against 1000: the second big one is given up at its head
        self.route_bytes("/m/big1.bin", b"1" * 600)
        self.route_bytes("/m/big2.bin", b"2" * 600)
        self.route_bytes("/m/small.png", b"s" * 100)
        self.origin.route("/m/nolen.png", lambda r: (200, CACHED, [b"n" * 50]))   # chunked: length unknown
        self.origin.route("/m/a.gltf", lambda r: (200, GLTF_TYPE, gltf(["big1.bin", "big2.bin"],
                                                                        ["small.png", "nolen.png"])))
        edge = self.start_edge("[cache]\nprefetch = on\n[prefetch]\nmax_bytes = 1000\nconcurrency = 1\n")
        self.get(edge, "/m/a.gltf")
        m = self.settle(edge, 4)
        self.assertEqual(m["meshcdn_edge_prefetch_completed_total"], 2)
        self.assertEqual(m['meshcdn_edge_prefetch_skipped_total{reason="bytes"}'], 2)
        self.assertEqual(m["meshcdn_edge_prefetch_bytes_total"], 700)
        self.assertEqual(m.get("meshcdn_edge_prefetch_failed_total", 0), 0)
        # what was given up is not stored: the viewer's request is a miss
        for p, hit in (("/m/big1.bin", True), ("/m/big2.bin", False), ("/m/small.png", True),
                       ("/m/nolen.png", False)):
            s, rh, body, _ = self.get(edge, p)
            self.assertEqual(rh["x-cache"][0].startswith("Hit"), hit, p)

    def test_concurrency_and_queue_per_worker(self):
        gate = threading.Event()
        self.addCleanup(gate.set)

        def slow(r):
            gate.wait(10)
            return 200, CACHED, b"z" * 10
        names = [f"t{i}.png" for i in range(5)]
        for n in names:
            self.origin.route(f"/m/{n}", slow)
        self.origin.route("/m/a.gltf", lambda r: (200, GLTF_TYPE, gltf([], names)))
        edge = self.start_edge("[cache]\nprefetch = on\n[prefetch]\nconcurrency = 2\nqueue = 1\n", workers=1)
        self.get(edge, "/m/a.gltf")
        time.sleep(0.5)
        m = h.metrics(*edge.addr["admin"])
        self.assertEqual(m["meshcdn_edge_prefetch_started_total"], 2)      # two at once
        self.assertEqual(m["meshcdn_edge_prefetch_queued"], 1)             # one waits
        self.assertEqual(m["meshcdn_edge_prefetch_dropped_total"], 2)      # the rest: dropped
        self.assertEqual(sum(self.origin.count(f"/m/{n}") for n in names), 2)
        gate.set()
        m = self.settle(edge, 3)
        self.assertEqual(m["meshcdn_edge_prefetch_completed_total"], 3)
        self.assertEqual(m["meshcdn_edge_prefetch_queued"], 0)
        self.assertEqual([self.origin.count(f"/m/{n}") for n in names], [1, 1, 1, 0, 0])


class TestShutdown(PrefetchCase):
    def test_stop_with_prefetches_running_and_queued(self):
        gate = threading.Event()
        self.addCleanup(gate.set)

        def slow(r):
            gate.wait(10)
            return 200, CACHED, b"q" * 10
        names = [f"t{i}.png" for i in range(4)]
        for n in names:
            self.origin.route(f"/m/{n}", slow)
        self.origin.route("/m/a.gltf", lambda r: (200, GLTF_TYPE, gltf([], names)))
        edge = self.start_edge("[cache]\nprefetch = on\n[prefetch]\nconcurrency = 1\n", workers=1)
        self.get(edge, "/m/a.gltf")
        time.sleep(0.3)
        self.assertEqual(self.metric(edge, "queued"), 3)
        # one fill waits at the origin, three references wait in the queue:
        # a clean stop (exit 0, no sanitizer report, nothing leaked)
        self.assertEqual(edge.stop(), 0)


class TestCoalescing(PrefetchCase):
    def test_viewer_during_prefetch_makes_one_origin_request(self):
        gate = threading.Event()
        self.addCleanup(gate.set)

        def slow(r):
            gate.wait(10)
            return 200, CACHED, b"D" * 50000
        for n in ("a.bin", "b.png"):
            self.origin.route(f"/m/{n}", slow)
        self.origin.route("/m/a.gltf", lambda r: (200, GLTF_TYPE, gltf(["a.bin"], ["b.png"])))
        edge = self.start_edge(workers=2)
        self.get(edge, "/m/a.gltf")
        deadline = time.monotonic() + 5
        while self.origin.count("/m/a.bin") + self.origin.count("/m/b.png") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        # viewers (several connections, so both workers) ask while the prefetches wait at the origin
        results = []

        def viewer(p):
            results.append((p, self.get(edge, p)))
        threads = [threading.Thread(target=viewer, args=(p,)) for p in ["/m/a.bin", "/m/b.png"] * 3]
        for t in threads:
            t.start()
        time.sleep(0.4)
        gate.set()
        for t in threads:
            t.join(30)
        self.assertEqual(len(results), 6)
        for p, (s, rh, body, complete) in results:
            self.assertEqual((s, len(body), complete), (200, 50000, True), p)
        self.assertEqual((self.origin.count("/m/a.bin"), self.origin.count("/m/b.png")), (1, 1))
        m = self.settle(edge, 2)
        self.assertEqual(m["meshcdn_edge_prefetch_completed_total"], 2)


if __name__ == "__main__":
    unittest.main()


class TestPreconnect(PrefetchCase):
    """[prefetch] preconnect: a .gltf fill on a prefetching behavior opens TCP
    connections to its upstream while its request is on the way; the prefetch
    fills that follow are handed them (edge/upstream.h mc_upstream_preconnect)."""

    def up(self, edge, result):
        return h.metrics(*edge.addr["admin"]).get(f'meshcdn_edge_upstream_preconnects_total{{result="{result}"}}', 0)

    def opened(self, edge):
        return h.metrics(*edge.addr["admin"]).get("meshcdn_edge_upstream_preconnects_opened_total", 0)

    def slow_gltf(self, path, doc, delay=0.4):
        def answer(r):
            time.sleep(delay)   # the .gltf's answer takes a while: the preconnects complete meanwhile
            return 200, GLTF_TYPE, doc
        self.origin.route(path, answer)

    def wait_accepted(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.origin.accepted < n:
            time.sleep(0.02)
        return self.origin.accepted

    def test_gltf_fill_preconnects_and_dependencies_use_them(self):
        names = ["a.bin", "b.png", "c.png", "d.png"]
        for n in names:
            self.route_bytes(f"/m/{n}", n.encode() * 1000)
        self.slow_gltf("/m/a.gltf", gltf(names[:1], names[1:]))
        edge = self.start_edge("[cache]\nprefetch = on\n[prefetch]\npreconnect = 3\npreconnect_idle = 10s\n",
                               workers=1)
        t = threading.Thread(target=self.get, args=(edge, "/m/a.gltf"))
        t.start()
        # while the .gltf's answer is delayed: its own connection and three more
        self.assertEqual(self.wait_accepted(4), 4)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.origin.count("/m/a.gltf") < 1:
            time.sleep(0.02)
        self.assertEqual(self.origin.count("/m/a.gltf"), 1)
        self.assertEqual(sum(self.origin.count(f"/m/{n}") for n in names), 0)
        t.join(10)
        m = self.settle(edge, 4)
        self.assertEqual(m["meshcdn_edge_prefetch_completed_total"], 4)
        self.assertEqual(m["meshcdn_edge_upstream_preconnects_opened_total"], 3)
        # the dependency fills were handed the preconnected sockets (one of the four may
        # reuse the .gltf's kept-alive connection instead)
        self.assertGreaterEqual(m['meshcdn_edge_upstream_preconnects_total{result="used"}'], 2)
        self.assertLessEqual(self.origin.accepted, 5)
        self.assertEqual(m['meshcdn_edge_upstream_preconnects_total{result="failed"}'], 0)
        for n in names:   # and they answered right
            s, rh, body, _ = self.get(edge, f"/m/{n}")
            self.assertEqual((s, body), (200, n.encode() * 1000))
            self.assertTrue(rh["x-cache"][0].startswith("Hit"), rh["x-cache"])

    def test_prefetch_off_or_preconnect_0_or_not_gltf_opens_none(self):
        for d in ("off", "zero", "on"):
            self.route_bytes(f"/{d}/a.bin", b"A" * 100)
            self.slow_gltf(f"/{d}/a.gltf", gltf(["a.bin"]), delay=0.2)
        self.route_bytes("/on/x.bin", b"X" * 100)
        edge = self.start_edge("[cache]\nprefetch = on\n[behavior]\n/off/ = prefetch=off\n", workers=1)
        self.assertEqual(self.get(edge, "/off/a.gltf")[0], 200)
        self.assertEqual(self.get(edge, "/on/x.bin")[0], 200)          # not a .gltf
        time.sleep(0.3)
        self.assertEqual(self.opened(edge), 0)
        self.assertEqual(self.origin.accepted, 1)                        # the fills' one kept-alive connection
        edge.stop()
        zero = self.start_edge("[cache]\nprefetch = on\n[prefetch]\npreconnect = 0\n", workers=1)
        before = self.origin.accepted
        self.assertEqual(self.get(zero, "/zero/a.gltf")[0], 200)
        self.settle(zero, 1)
        self.assertEqual(self.opened(zero), 0)
        self.assertEqual(self.origin.accepted - before, 1)               # the dependency reused the .gltf's
        zero.stop()
        on = self.start_edge("[cache]\nprefetch = on\n", workers=1)    # the default: on, 4
        self.assertEqual(self.get(on, "/on/a.gltf")[0], 200)
        self.settle(on, 1)
        self.assertEqual(self.opened(on), 4)

    def test_idle_preconnects_are_closed(self):
        self.slow_gltf("/m/a.gltf", gltf([], ["data:image/png;base64,iVBORw0KGgo="]), delay=0.1)
        edge = self.start_edge("[cache]\nprefetch = on\n[prefetch]\npreconnect = 3\npreconnect_idle = 300ms\n",
                               workers=1)
        self.assertEqual(self.get(edge, "/m/a.gltf")[0], 200)
        self.assertEqual(self.wait_accepted(4), 4)
        self.assertEqual(self.opened(edge), 3)
        self.assertEqual(self.up(edge, "used"), 0)                      # nothing to prefetch
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.up(edge, "expired") < 3:
            time.sleep(0.05)
        self.assertEqual(self.up(edge, "expired"), 3)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(self.origin.conns) > 1:
            time.sleep(0.05)
        self.assertLessEqual(len(self.origin.conns), 1)                  # only curl's kept-alive one is left

    def test_preconnect_to_a_dead_port_fails_cleanly(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        s.close()                                                        # nothing listens there now
        path = f"{self.tmp}/edge.ini"
        with open(path, "w") as f:
            f.write("[cache]\nprefetch = on\n[prefetch]\npreconnect = 3\n")
        edge = h.Daemon("meshcdn-edge", ["--config", path, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                         "--origin", f"http://127.0.0.1:{dead}/b", "--origin-sign", "none",
                                         "--store", f"{self.tmp}/store", "--store-size", "64M",
                                         "--workers", "1", "--node-id", "p1"],
                        listeners=("http", "admin"))
        self.addCleanup(edge.stop)
        for _ in range(2):
            s, _, _, _ = self.get(edge, "/m/a.gltf")
            self.assertIn(s, (502, 504))                                 # the fill errors as it always did
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.up(edge, "failed") < 3:
            time.sleep(0.05)
        self.assertGreaterEqual(self.up(edge, "failed"), 3)
        self.assertEqual(self.up(edge, "used"), 0)
        self.assertEqual(edge.stop(), 0)                                 # nothing leaked (ASan)


OP, OPSECRET = "AKIDPREFETCHOPS00001", "prefetchopssecretprefetchopssecret0001"


class TestPrefetchOnHit(PrefetchCase):
    """A .gltf served as a hit whose dependencies were removed from the store
    since its references were last checked gets them prefetched again
    (prefetch.h mc_prefetch_hit); while nothing was removed, hits cost no
    re-read."""

    def purge(self, edge, paths):
        host, port = edge.addr["admin"]
        data = json.dumps({"paths": paths}).encode()
        hdrs = h.sign("POST", f"http://{host}:{port}/purge", {}, OP, OPSECRET,
                      service="meshcdn", payload_hash=None, body=data)
        s, _, b, _ = h.http("POST", host, port, "/purge", hdrs, body=data, timeout=30)
        self.assertEqual(s, 200, b)
        return json.loads(b)["purged"]

    def test_purged_dependency_is_prefetched_again_on_a_gltf_hit(self):
        h.write_keys(f"{self.tmp}/ops", [(OP, OPSECRET)])
        self.route_bytes("/m/a.bin", b"A" * 5000)
        self.route_bytes("/m/b.png", b"B" * 3000)
        self.origin.route("/m/a.gltf", lambda r: (200, GLTF_TYPE, gltf(["a.bin"], ["b.png"])))
        edge = self.start_edge(f"[cache]\nprefetch = on\n[admin]\nkeys = {self.tmp}/ops\n", workers=1)
        self.assertEqual(self.get(edge, "/m/a.gltf")[0], 200)
        self.settle(edge, 2)
        # hits while nothing was removed: the document is not read again
        for _ in range(3):
            s, rh, _, _ = self.get(edge, "/m/a.gltf")
            self.assertTrue(rh["x-cache"][0].startswith("Hit"), rh["x-cache"])
        self.assertEqual(self.metric(edge, "hit_checks_total"), 0)
        self.assertEqual(self.purge(edge, ["/m/a.bin"]), 1)
        time.sleep(1.1)                                  # at most one check per document per second
        s, rh, _, _ = self.get(edge, "/m/a.gltf")
        self.assertTrue(rh["x-cache"][0].startswith("Hit"), rh["x-cache"])
        m = self.settle(edge, 3)
        self.assertEqual(m["meshcdn_edge_prefetch_hit_checks_total"], 1)
        self.assertEqual(m["meshcdn_edge_prefetch_completed_total"], 3)
        self.assertEqual(self.origin.count("/m/a.bin"), 2)     # refilled by the edge itself
        self.assertEqual(self.origin.count("/m/b.png"), 1)     # still stored: not fetched
        s, rh, body, _ = self.get(edge, "/m/a.bin")
        self.assertEqual((s, body), (200, b"A" * 5000))
        self.assertTrue(rh["x-cache"][0].startswith("Hit"), rh["x-cache"])
        self.assertEqual(self.origin.count("/m/a.bin"), 2)
        # checked again: further hits are free until the next removal
        self.get(edge, "/m/a.gltf")
        time.sleep(1.1)
        self.get(edge, "/m/a.gltf")
        self.assertEqual(self.metric(edge, "hit_checks_total"), 1)

    def test_only_prefetching_behaviors_refill_on_hit(self):
        h.write_keys(f"{self.tmp}/ops", [(OP, OPSECRET)])
        for d in ("off", "on"):
            self.route_bytes(f"/{d}/a.bin", b"A" * 100)
            self.origin.route(f"/{d}/a.gltf", lambda r: (200, GLTF_TYPE, gltf(["a.bin"])))
        edge = self.start_edge(f"[admin]\nkeys = {self.tmp}/ops\n[behavior]\n/on/ = prefetch=on\n", workers=1)
        self.get(edge, "/off/a.gltf")
        self.get(edge, "/off/a.bin")
        self.get(edge, "/on/a.gltf")
        self.settle(edge, 1)
        self.assertEqual(self.purge(edge, ["/off/a.bin", "/on/a.bin"]), 2)
        time.sleep(1.1)
        self.get(edge, "/off/a.gltf")
        self.get(edge, "/on/a.gltf")
        self.settle(edge, 2)
        self.assertEqual(self.metric(edge, "hit_checks_total"), 1)
        self.assertEqual(self.origin.count("/off/a.bin"), 1)   # prefetch=off: as before, nothing
        self.assertEqual(self.origin.count("/on/a.bin"), 2)
