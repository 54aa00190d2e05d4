"""meshcdn-load run and simulate end to end: a small generated catalog served
by the real origin, the real edge in front of it, and meshcdn-load driving
it on ephemeral loopback ports; the report is checked against the edge's own
/metrics."""

import json
import os
import re
import unittest

import mcharness as h

AK, SECRET = "AKIDLOADTEST", "load-test-secret-0123456789"
BUCKET = "assets"


def edge_counts(admin):
    m = h.metrics(*admin)
    total = sum(v for k, v in m.items() if k.startswith("meshcdn_edge_requests_total"))
    hits = sum(v for k, v in m.items()
               if k.startswith("meshcdn_edge_requests_total") and 'result="hit"' in k)
    return total, hits


class LoadCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = h.tempdir(None, "meshcdn-e2e-load-")
        cls.bucket = os.path.join(cls.root, BUCKET)
        p = h.run("meshcdn-load", ["catalog", "--out", cls.bucket, "--count", "40", "--seed", "5",
                                    "--sizes", "lognormal:median=40k,max=400k", "--gltf-count", "4"])
        assert p.returncode == 0, p.stderr
        cls.index = os.path.join(cls.bucket, "index.json")

    @classmethod
    def tearDownClass(cls):
        import shutil
        if os.environ.get("MESHCDN_KEEP_TMP") != "1":
            shutil.rmtree(cls.root, True)

    def setUp(self):
        self.tmp = h.tempdir(self)
        h.write_keys(f"{self.tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/cred", [(AK, SECRET)])
        self.origin = h.Daemon("meshcdn-origin", [
            "--root", self.root, "--keys", f"{self.tmp}/keys",
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        self.addCleanup(self.origin.stop)
        host, port = self.origin.addr["s3"]
        self.edge = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", f"http://{host}:{port}/{BUCKET}", "--credentials", f"{self.tmp}/cred",
            "--store", f"{self.tmp}/store", "--store-size", "256M", "--workers", "2",
            "--node-id", "l1"], listeners=("http", "admin"))
        self.addCleanup(self.edge.stop)

    def load_run(self, *extra):
        json_path, html_path = f"{self.tmp}/r.json", f"{self.tmp}/r.html"
        args = ["run", "--target", self.edge.url("http"),
                "--metrics", self.edge.url("admin") + "/metrics",
                "--index", self.index, "--json", json_path, "--html", html_path] + list(extra)
        before = edge_counts(self.edge.addr["admin"])
        p = h.run("meshcdn-load", args, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        after = edge_counts(self.edge.addr["admin"])
        with open(json_path) as f:
            report = json.load(f)
        with open(html_path) as f:
            html = f.read()
        return report, html, (after[0] - before[0], after[1] - before[1]), p.stdout

    def check_report(self, report, html, delta):
        t = report["total"]
        errors = sum(t["errors"].values())
        self.assertEqual(errors, 0, t["errors"])
        self.assertGreater(t["requests"], 50)
        # the tool counts exactly what the edge counted
        self.assertEqual(t["requests"], delta[0])
        self.assertEqual(t["hits"], delta[1])
        self.assertEqual(t["edge"]["requests"], delta[0])
        self.assertEqual(t["edge"]["hits"], delta[1])
        self.assertEqual(t["hits"] + t["misses"], t["requests"])
        # 40 assets (+ .bin and .png) fit in the store: after the first
        # request of each, everything hits
        self.assertGreater(t["hit_ratio"], 0.5)
        self.assertLessEqual(t["hit_ratio"], 1.0)
        self.assertGreater(t["edge"]["origin_offload"], 0.5)
        self.assertGreater(t["bytes"], 0)
        lat = t["latency_us"]
        self.assertTrue(0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"], lat)
        self.assertEqual(report["targets"][0]["requests"], t["requests"])
        self.assertGreaterEqual(len(report["series"]), 1)
        self.assertIn("<svg", html)
        self.assertIsNone(re.search(r"https?://", html), "the HTML report must reference nothing outside itself")
        self.assertNotIn("<script", html)

    def test_closed_loop_report_matches_edge_metrics(self):
        report, html, delta, out = self.load_run("--duration", "2s", "--connections", "4", "--zipf", "0.9")
        self.assertEqual(report["config"]["mode"], "closed")
        self.check_report(report, html, delta)
        self.assertIn("hit ratio", out)

    def test_open_loop_at_a_modest_rate(self):
        report, html, delta, _ = self.load_run("--duration", "2s", "--rate", "100",
                                               "--zipf", "1.1", "--seed", "4")
        self.assertEqual(report["config"]["mode"], "open")
        self.check_report(report, html, delta)
        # 100/s for 2 s: exactly 200 intended
        self.assertEqual(report["total"]["requests"], 200)

    def test_warmup_is_not_counted(self):
        report, _, delta, _ = self.load_run("--duration", "2s", "--warmup", "1s", "--rate", "100")
        t = report["total"]
        self.assertEqual(t["requests"], 200)
        # the edge also served the ~100 warm-up requests; the report's own
        # scrape covers the measured window (give or take a request in flight
        # at the boundary)
        self.assertTrue(290 <= delta[0] <= 310, delta)
        self.assertLessEqual(abs(t["edge"]["requests"] - t["requests"]), 3)

    def test_unreachable_target_counts_connect_errors(self):
        self.edge.stop()
        json_path = f"{self.tmp}/e.json"
        p = h.run("meshcdn-load", ["run", "--target", self.edge.url("http"), "--index", self.index,
                                    "--requests", "5", "--connections", "1", "--json", json_path])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(json_path) as f:
            t = json.load(f)["total"]
        self.assertEqual(t["requests"], 0)
        self.assertEqual(t["errors"]["connect"], 5)


class SimulateTest(unittest.TestCase):
    def test_simulate_prints_every_policy_and_optimum_bounds_them(self):
        tmp = h.tempdir(self)
        p = h.run("meshcdn-load", ["catalog", "--out", f"{tmp}/c", "--count", "300", "--seed", "2",
                                    "--sizes", "lognormal:median=20k,max=2M"])
        self.assertEqual(p.returncode, 0, p.stderr)
        p = h.run("meshcdn-load", ["simulate", "--cache-size", "2M", "--index", f"{tmp}/c/index.json",
                                    "--zipf", "0.9", "--requests", "50000", "--seed", "3",
                                    "--shift-at-request", "25000", "--json", f"{tmp}/s.json"])
        self.assertEqual(p.returncode, 0, p.stderr)
        for name in ("lru", "fifo", "sieve", "s3fifo", "belady"):
            self.assertRegex(p.stdout, rf"(?m)^{name}\s+0\.\d{{4}}\s+0\.\d{{4}}")
        with open(f"{tmp}/s.json") as f:
            res = json.load(f)["policies"]
        opt = res["belady"]["hit_ratio"]
        for name, r in res.items():
            self.assertLessEqual(r["hit_ratio"], opt, name)
            self.assertEqual(r["requests"], 50000)
        self.assertGreater(opt, res["fifo"]["hit_ratio"])

    def test_simulate_trace_errors_name_the_line(self):
        tmp = h.tempdir(self)
        with open(f"{tmp}/t", "w") as f:
            f.write("/a 10\n/b ten\n")
        p = h.run("meshcdn-load", ["simulate", "--cache-size", "1M", "--trace", f"{tmp}/t"])
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"{tmp}/t:2: size is not a decimal byte count", p.stderr)
        p = h.run("meshcdn-load", ["simulate", "--cache-size", "1X", "--trace", f"{tmp}/t"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("--cache-size", p.stderr)


if __name__ == "__main__":
    unittest.main()
