"""Tiered caching and origin groups (issue #9), with real nodes on loopback:
an origin (scriptorigin, which records every request it gets, or
meshcdn-origin where signing matters), two parent edges in front of it and a
child edge with both parents."""

import os
import signal
import socket
import time
import unittest

import mcharness as h
from scriptorigin import ScriptOrigin

AK, SECRET = "AKIDTIERSEDGE", "tiers-edge-secret-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body_of(path):
    return (b"asset " + path.encode()) * 50


class Tiers(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.origin = ScriptOrigin()
        self.addCleanup(self.origin.stop)
        self.paths = [f"/m/obj{i}.glb" for i in range(40)]
        for p in self.paths:
            self.origin.route(p, lambda req, p=p: (200, {"Cache-Control": "max-age=600"}, body_of(p)))

    def edge(self, name, origin_url, extra=(), listen="127.0.0.1:0"):
        d = h.Daemon("meshcdn-edge", [
            "--listen", listen, "--admin", "127.0.0.1:0", "--origin", origin_url,
            "--origin-sign", "none", "--store", f"{self.tmp}/store-{name}", "--store-size", "64M",
            "--workers", "2", "--node-id", name, "--origin.connect_timeout", "1s"] + list(extra),
            listeners=("http", "admin"))
        self.addCleanup(d.stop)
        return d

    def url(self, d):
        return "http://%s:%d" % d.addr["http"]

    def get(self, d, path):
        return h.http("GET", *d.addr["http"], path, {}, timeout=20)

    def up(self, d, name, code="200"):
        """An upstream request count once it has settled: a transfer is
        counted when it ends, which may be just after its viewer had the
        last byte (the value must hold for 0.2 s, 3 s at most)."""
        key = f'meshcdn_edge_upstream_requests_total{{upstream="{name}",code="{code}"}}'
        last, same, deadline = None, 0, time.monotonic() + 3
        while same < 2 and time.monotonic() < deadline:
            v = h.metrics(*d.addr["admin"]).get(key, 0)
            same = same + 1 if v == last else 0
            last = v
            time.sleep(0.1)
        return last

    def origin_gets(self):
        return len([r for r in self.origin.requests if r.method == "GET"])

    def start_tiers(self, extra=()):
        self.p1 = self.edge("p1", self.origin.url)
        self.p2 = self.edge("p2", self.origin.url)
        a1 = "http://%s:%d/healthz" % self.p1.addr["admin"]
        a2 = "http://%s:%d/healthz" % self.p2.addr["admin"]
        self.child = self.edge("child", self.origin.url, [
            "--parents.p1", f"{self.url(self.p1)} health={a1}",
            "--parents.p2", f"{self.url(self.p2)} health={a2}",
            "--tier.fail_threshold", "2", "--tier.eject_time", "30s",
            "--tier.health_interval", "300ms"] + list(extra))

    def test_miss_goes_to_one_parent_once(self):
        self.start_tiers()
        for p in self.paths:
            s, _, b, c = self.get(self.child, p)
            self.assertEqual((s, c), (200, True), p)
            self.assertEqual(b, body_of(p))
        # every miss reached the origin exactly once, through a parent
        self.assertEqual(self.origin_gets(), len(self.paths))
        n1, n2 = self.up(self.child, "p1"), self.up(self.child, "p2")
        self.assertEqual(n1 + n2, len(self.paths))
        self.assertEqual(self.up(self.child, "origin"), 0)
        # each parent fetched exactly its rendezvous share from the origin
        self.assertEqual(self.up(self.p1, "origin"), n1)
        self.assertEqual(self.up(self.p2, "origin"), n2)
        self.assertGreater(n1, 5)
        self.assertGreater(n2, 5)
        m = h.metrics(*self.child.addr["admin"])
        self.assertEqual(m['meshcdn_edge_parent_healthy{parent="p1"}'], 1)
        # CDN-Loop grows hop by hop (RFC 8586): the origin sees child, then parent
        loops = {r.headers.get("cdn-loop") for r in self.origin.requests}
        self.assertEqual(loops, {"meshcdn-child, meshcdn-p1", "meshcdn-child, meshcdn-p2"})
        # a second child with the same parents picks the same parent per key:
        # all hits at the parents, nothing more at the origin
        child2 = self.edge("child2", self.origin.url, [
            "--parents.p2", self.url(self.p2), "--parents.p1", self.url(self.p1)])
        for p in self.paths:
            s, _, b, _ = self.get(child2, p)
            self.assertEqual(s, 200)
        self.assertEqual(self.origin_gets(), len(self.paths))
        self.assertEqual(self.up(child2, "p1"), n1)

    def test_parent_failover_and_ejection(self):
        self.start_tiers(["--tier.health_interval", "60s"])   # passive health only matters here
        for p in self.paths[:20]:
            self.assertEqual(self.get(self.child, p)[0], 200)
        on_p1 = self.up(self.child, "p1")
        self.assertGreater(on_p1, 0)
        self.p1.kill9()
        # new keys: those picked by p1 fail over to p2 and are still served
        served_before = self.up(self.child, "p2")
        for p in self.paths[20:]:
            s, _, b, c = self.get(self.child, p)
            self.assertEqual((s, c, b), (200, True, body_of(p)), p)
        errs = self.up(self.child, "p1", "error")
        self.assertGreaterEqual(errs, 2)              # p1 was tried until ejected ...
        self.assertLess(errs, len(self.paths[20:]) // 2)   # ... and then no more
        m = h.metrics(*self.child.addr["admin"])
        self.assertEqual(m['meshcdn_edge_parent_healthy{parent="p1"}'], 0)
        self.assertEqual(m['meshcdn_edge_parent_healthy{parent="p2"}'], 1)
        self.assertEqual(self.up(self.child, "p2") - served_before, len(self.paths[20:]))
        self.assertEqual(self.up(self.child, "origin"), 0)
        self.child.wait_log(r"parent ejected.*parent=p1")

    def test_active_check_marks_parent_down(self):
        self.start_tiers()
        self.p2.kill9()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m = h.metrics(*self.child.addr["admin"])
            if m['meshcdn_edge_parent_healthy{parent="p2"}'] == 0:
                break
            time.sleep(0.1)
        self.assertEqual(m['meshcdn_edge_parent_healthy{parent="p2"}'], 0)
        for p in self.paths[:10]:
            self.assertEqual(self.get(self.child, p)[0], 200)
        # p2 was never tried: the check had taken it out
        self.assertEqual(self.up(self.child, "p2", "error"), 0)
        self.assertEqual(self.up(self.child, "p1"), 10)

    def test_hung_parent_times_out_to_the_next(self):
        self.start_tiers(["--tier.response_timeout", "700ms", "--tier.health_interval", "60s"])
        os.kill(self.p1.proc.pid, signal.SIGSTOP)   # accepts (the kernel does) but never answers
        self.addCleanup(os.kill, self.p1.proc.pid, signal.SIGCONT)
        t0 = time.monotonic()
        for p in self.paths[:8]:
            s, _, b, c = self.get(self.child, p)
            self.assertEqual((s, c, b), (200, True, body_of(p)), p)
        took = time.monotonic() - t0
        os.kill(self.p1.proc.pid, signal.SIGCONT)
        self.assertEqual(self.up(self.child, "p1", "error"), 2)   # then ejected
        self.assertEqual(self.up(self.child, "p2"), 8)
        self.assertLess(took, 8 * 0.7)

    def test_all_parents_dead_goes_to_origin(self):
        self.start_tiers()
        self.p1.kill9()
        self.p2.kill9()
        for p in self.paths[:6]:
            s, _, b, c = self.get(self.child, p)
            self.assertEqual((s, c, b), (200, True, body_of(p)), p)
        self.assertEqual(self.up(self.child, "origin"), 6)
        self.assertEqual(self.origin_gets(), 6)

    def test_parent_5xx_fails_over_before_body(self):
        self.origin.route("/bad.glb", lambda req: (503, {"Cache-Control": "no-store"}, b"down"))
        self.start_tiers()
        s, _, b, _ = self.get(self.child, "/bad.glb")
        # both parents answered 503 (their origin's); then the origin itself
        self.assertEqual(s, 503)
        self.assertEqual(self.up(self.child, "p1", "503") + self.up(self.child, "p2", "503"), 2)
        self.assertEqual(self.up(self.child, "origin", "503"), 1)

    def test_self_as_parent_is_a_detected_loop(self):
        port = free_port()
        me = self.edge("loopy", self.origin.url, ["--parents.me", f"http://127.0.0.1:{port}"],
                       listen=f"127.0.0.1:{port}")
        s, _, _, _ = self.get(me, self.paths[0])
        self.assertIn(s, (508, 502))
        m = h.metrics(*me.addr["admin"])
        self.assertGreaterEqual(m.get("meshcdn_edge_loops_detected_total", 0), 1)
        self.assertEqual(self.origin_gets(), 0)

    def test_mutual_parents_are_a_detected_loop(self):
        pa, pb = free_port(), free_port()
        a = self.edge("ea", self.origin.url, ["--parents.eb", f"http://127.0.0.1:{pb}"], listen=f"127.0.0.1:{pa}")
        b = self.edge("eb", self.origin.url, ["--parents.ea", f"http://127.0.0.1:{pa}"], listen=f"127.0.0.1:{pb}")
        s, _, _, _ = self.get(a, self.paths[0])
        self.assertIn(s, (508, 502))
        self.assertEqual(self.origin_gets(), 0)
        ma = h.metrics(*a.addr["admin"])
        self.assertGreaterEqual(ma.get("meshcdn_edge_loops_detected_total", 0), 1)
        del b


class OriginGroups(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)

    def edge(self, args):
        d = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--store", f"{self.tmp}/store",
            "--store-size", "64M", "--workers", "2", "--node-id", "og",
            "--origin.connect_timeout", "1s"] + args, listeners=("http", "admin"))
        self.addCleanup(d.stop)
        return d

    def test_status_failover_to_secondary(self):
        primary, secondary = ScriptOrigin(), ScriptOrigin()
        self.addCleanup(primary.stop)
        self.addCleanup(secondary.stop)
        primary.route("/a.glb", lambda req: (503, {}, b"primary down"))
        primary.route("/nf.glb", lambda req: (404, {}, b"no"))
        secondary.route("/a.glb", lambda req: (200, {"Cache-Control": "max-age=60"}, b"from secondary"))
        secondary.route("/nf.glb", lambda req: (200, {}, b"should not be asked"))
        d = self.edge(["--origin", primary.url, "--origin-sign", "none", "--origin-secondary", secondary.url])
        s, _, b, _ = h.http("GET", *d.addr["http"], "/a.glb", {})
        self.assertEqual((s, b), (200, b"from secondary"))
        self.assertEqual(primary.count("/a.glb"), 1)
        # 404 is not a failover status: the primary's answer stands
        s, _, _, _ = h.http("GET", *d.addr["http"], "/nf.glb", {})
        self.assertEqual(s, 404)
        self.assertEqual(secondary.count("/nf.glb"), 0)
        m = h.metrics(*d.addr["admin"])
        self.assertEqual(m['meshcdn_edge_upstream_requests_total{upstream="origin",code="503"}'], 1)
        self.assertEqual(m['meshcdn_edge_upstream_requests_total{upstream="origin-secondary",code="200"}'], 1)

    def test_primary_down_secondary_signed(self):
        root = f"{self.tmp}/root"
        import os
        os.makedirs(f"{root}/assets/m")
        with open(f"{root}/assets/m/x.glb", "wb") as f:
            f.write(b"signed secondary body")
        h.write_keys(f"{self.tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/cred", [(AK, SECRET)])
        origins = []
        for _ in range(2):
            o = h.Daemon("meshcdn-origin", ["--root", root, "--keys", f"{self.tmp}/keys",
                                            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            self.addCleanup(o.stop)
            origins.append(o)
        p, s2 = origins
        d = self.edge(["--origin", p.url() + "/assets", "--credentials", f"{self.tmp}/cred",
                       "--origin-secondary", s2.url() + "/assets"])
        st, _, b, _ = h.http("GET", *d.addr["http"], "/m/x.glb", {})
        self.assertEqual((st, b), (200, b"signed secondary body"))   # the primary, while up
        p.kill9()
        st, _, b, _ = h.http("GET", *d.addr["http"], "/m/x.glb?v=2", {})
        self.assertEqual((st, b), (200, b"signed secondary body"))
        # an upstream transfer is counted when it ends, which may be just
        # after the viewer has its last byte: wait for the count
        want = 'meshcdn_edge_upstream_requests_total{upstream="origin-secondary",code="200"}'
        deadline = time.monotonic() + 5
        while want not in (m := h.metrics(*d.addr["admin"])) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(m['meshcdn_edge_upstream_requests_total{upstream="origin",code="error"}'], 1)
        self.assertEqual(m[want], 1)


if __name__ == "__main__":
    unittest.main()
