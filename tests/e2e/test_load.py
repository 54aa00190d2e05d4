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
        self.check_optimum(report, html)

    def check_optimum(self, report, html):
        """The run's requests replayed at the edge's store size (from
        --metrics): 256 MiB holds the whole catalog, so every policy only
        misses each object's first request, and the edge cannot beat that
        (it can only lose the requests that joined an in-flight fill)."""
        t, opt = report["total"], report["optimum"]
        self.assertEqual(report["targets"][0]["optimum"], opt)
        self.assertEqual(opt["cache_size_source"], "metrics")
        self.assertEqual(opt["store_size"], 256 << 20)
        self.assertEqual(opt["evict_percent"], 80)
        self.assertEqual(opt["cache_size"], (256 << 20) // 100 * 80)
        self.assertEqual(opt["full_store"]["cache_size"], 256 << 20)
        self.assertEqual(opt["measured"]["hit_ratio"], t["hit_ratio"])
        self.assertEqual(opt["measured"]["byte_hit_ratio"], t["byte_hit_ratio"])
        pol = opt["policies"]
        self.assertEqual(sorted(pol), ["belady", "lru", "s3fifo", "sieve"])
        for name, r in pol.items():
            # no errors: the simulated measured requests are the run's responses
            self.assertEqual(r["requests"], t["requests"], name)
            self.assertEqual(r["bytes"], t["bytes"], name)
            self.assertEqual(r["hits"], pol["belady"]["hits"], name)   # all fits: compulsory misses only
            self.assertEqual(opt["full_store"]["policies"][name]["hits"], r["hits"], name)
        self.assertLessEqual(t["hits"], pol["belady"]["hits"])
        self.assertGreater(pol["belady"]["hit_ratio"], 0.5)
        self.assertIn("Belady", html)

    def test_closed_loop_report_matches_edge_metrics(self):
        report, html, delta, out = self.load_run("--duration", "2s", "--connections", "4", "--zipf", "0.9")
        self.assertEqual(report["config"]["mode"], "closed")
        self.check_report(report, html, delta)
        self.assertIn("hit ratio", out)
        self.assertRegex(out, r"(?m)^  hit ratio +\d+\.\d\d%  \(same sequence, 204\.8 MiB cache: Belady \d+\.\d\d%, "
                              r"S3-FIFO \d+\.\d\d%, SIEVE \d+\.\d\d%, LRU \d+\.\d\d%\)$")
        self.assertIn("80% of the edge's 256 MiB store", out)

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
        # (the scrape at the boundary takes a moment; on a loaded machine a
        # few dozen requests land on the wrong side of it, while counting
        # the warm-up by mistake would put all 100 on the wrong side)
        self.assertLessEqual(abs(t["edge"]["requests"] - t["requests"]), 30)
        # the warm-up requests fill the simulated cache but are not counted
        opt = report["optimum"]
        self.assertEqual(opt["warmup_requests"], 100)
        self.assertEqual(opt["requests"], 300)
        self.assertEqual(opt["policies"]["belady"]["requests"], 200)

    def test_optimum_is_simulate_on_the_sequence_sent(self):
        """--cache-size: run's optimum is what `simulate` computes for the
        same index, Zipf, seed and request count (one target, closed loop,
        no warm-up: the sequence sent is the generator's), hit for hit."""
        report, _, _, out = self.load_run("--requests", "200", "--connections", "4", "--zipf", "0.9",
                                          "--seed", "3", "--cache-size", "600k")
        opt = report["optimum"]
        self.assertEqual(opt["cache_size_source"], "option")
        self.assertEqual(opt["cache_size"], 600 * 1024)
        self.assertIsNone(opt["full_store"])
        self.assertEqual((opt["requests"], opt["warmup_requests"]), (200, 0))
        sim_json = f"{self.tmp}/s.json"
        p = h.run("meshcdn-load", ["simulate", "--cache-size", "600k", "--index", self.index, "--zipf", "0.9",
                                    "--seed", "3", "--requests", "200", "--json", sim_json])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(sim_json) as f:
            sim = json.load(f)["policies"]
        for name, r in opt["policies"].items():
            for k in ("requests", "hits", "bytes", "hit_bytes"):
                self.assertEqual(r[k], sim[name][k], (name, k))
        # a cache smaller than the catalog: the policies part, the optimum leads
        pol = opt["policies"]
        self.assertGreater(pol["belady"]["hits"], pol["lru"]["hits"])
        for name in ("s3fifo", "sieve", "lru"):
            self.assertGreaterEqual(pol["belady"]["hit_ratio"], pol[name]["hit_ratio"], name)
        self.assertIn("(same sequence, 600 KiB cache: Belady", out)

    def test_optimum_per_target_and_summed(self):
        """Two edges: each is simulated on the requests it was sent, as its
        own cache; the total sums them."""
        host, port = self.origin.addr["s3"]
        edge2 = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", f"http://{host}:{port}/{BUCKET}", "--credentials", f"{self.tmp}/cred",
            "--store", f"{self.tmp}/store2", "--store-size", "16M", "--workers", "1"], listeners=("http", "admin"))
        self.addCleanup(edge2.stop)
        json_path, html_path = f"{self.tmp}/two.json", f"{self.tmp}/two.html"
        p = h.run("meshcdn-load", ["run", "--target", self.edge.url("http"), "--target", edge2.url("http"),
                                    "--metrics", self.edge.url("admin") + "/metrics",
                                    "--metrics", edge2.url("admin") + "/metrics",
                                    "--index", self.index, "--requests", "200", "--rate", "200",
                                    "--json", json_path, "--html", html_path], timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(json_path) as f:
            report = json.load(f)
        with open(html_path) as f:
            html = f.read()
        opts = [t["optimum"] for t in report["targets"]]
        self.assertEqual([o["store_size"] for o in opts], [256 << 20, 16 << 20])
        self.assertEqual([o["cache_size"] for o in opts], [(256 << 20) // 100 * 80, (16 << 20) // 100 * 80])
        total = report["optimum"]
        self.assertIsNone(total["cache_size"])              # the edges differ
        self.assertEqual(total["requests"], sum(o["requests"] for o in opts))
        for name in ("belady", "s3fifo", "sieve", "lru"):
            for k in ("requests", "hits", "bytes", "hit_bytes"):
                self.assertEqual(total["policies"][name][k], sum(o["policies"][name][k] for o in opts), (name, k))
        for t, o in zip(report["targets"], opts):
            self.assertGreater(o["policies"]["belady"]["requests"], 0)
            self.assertEqual(o["policies"]["belady"]["requests"], t["requests"])
            self.assertLessEqual(t["hits"], o["policies"]["belady"]["hits"])
        self.assertEqual(report["total"]["requests"], 200)
        self.assertIn("each target's cache", p.stdout)
        self.assertIsNone(re.search(r"https?://", html))
        self.assertEqual(html.count("<td>hit ratio</td>"), 3)

    def test_optimum_of_a_trace_without_sizes(self):
        """--trace lines without SIZE: the simulation takes each object's
        size from the 200 answers of the run."""
        with open(self.index) as f:
            objs = json.load(f)["objects"][:4]
        trace = f"{self.tmp}/t.trace"
        with open(trace, "w") as f:
            for k in range(24):
                f.write("/" + objs[(k * k) % 4]["path"].lstrip("/") + "\n")
        json_path = f"{self.tmp}/t.json"
        p = h.run("meshcdn-load", ["run", "--target", self.edge.url("http"), "--trace", trace,
                                    "--requests", "24", "--connections", "1", "--cache-size", "100M",
                                    "--json", json_path], timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(json_path) as f:
            report = json.load(f)
        t, opt = report["total"], report["optimum"]
        self.assertEqual(t["requests"], 24)
        distinct = len({(k * k) % 4 for k in range(24)})
        for name, r in opt["policies"].items():
            self.assertEqual(r["hits"], 24 - distinct, name)   # everything fits: first requests miss
            self.assertEqual(r["bytes"], t["bytes"], name)      # the sizes are the bodies served

    def test_unreachable_target_counts_connect_errors(self):
        self.edge.stop()
        json_path = f"{self.tmp}/e.json"
        p = h.run("meshcdn-load", ["run", "--target", self.edge.url("http"), "--index", self.index,
                                    "--requests", "5", "--connections", "1", "--json", json_path])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(json_path) as f:
            report = json.load(f)
        t = report["total"]
        self.assertEqual(t["requests"], 0)
        self.assertEqual(t["errors"]["connect"], 5)
        # neither --cache-size nor --metrics: no optimum, and the output says how to get one
        self.assertIsNone(report["optimum"])
        self.assertIn("--cache-size", report["optimum_note"])
        self.assertIn("optimum: not simulated", p.stdout)
        p = h.run("meshcdn-load", ["run", "--target", self.edge.url("http"), "--index", self.index,
                                    "--requests", "5", "--connections", "1", "--json", json_path, "--no-optimum"])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(json_path) as f:
            self.assertNotIn("optimum", json.load(f))
        self.assertNotIn("optimum", p.stdout)
        p = h.run("meshcdn-load", ["run", "--index", self.index, "--cache-size", "0"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("--cache-size", p.stderr)


class OptimumEvictingEdgeTest(unittest.TestCase):
    """An edge whose store (16 MiB, the smallest) is smaller than the
    catalog, so it evicts: the run's hit ratio stays under the simulated
    optimum for its effective size (80%, where it evicts)."""

    def test_measured_below_the_optimum(self):
        tmp = h.tempdir(self)
        p = h.run("meshcdn-load", ["catalog", "--out", f"{tmp}/root/{BUCKET}", "--count", "30", "--seed", "9",
                                    "--sizes", "lognormal:median=600k,max=2M", "--gltf-count", "4"])
        self.assertEqual(p.returncode, 0, p.stderr)
        h.write_keys(f"{tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{tmp}/cred", [(AK, SECRET)])
        origin = h.Daemon("meshcdn-origin", [
            "--root", f"{tmp}/root", "--keys", f"{tmp}/keys",
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        self.addCleanup(origin.stop)
        host, port = origin.addr["s3"]
        edge = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", f"http://{host}:{port}/{BUCKET}", "--credentials", f"{tmp}/cred",
            "--store", f"{tmp}/store", "--store-size", "16M", "--workers", "1"], listeners=("http", "admin"))
        self.addCleanup(edge.stop)
        p = h.run("meshcdn-load", ["run", "--target", edge.url("http"), "--metrics", edge.url("admin") + "/metrics",
                                    "--index", f"{tmp}/root/{BUCKET}/index.json", "--requests", "150",
                                    "--connections", "4", "--zipf", "0.7", "--seed", "2", "--json", f"{tmp}/r.json"],
                  timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(f"{tmp}/r.json") as f:
            report = json.load(f)
        t, opt = report["total"], report["optimum"]
        self.assertEqual(sum(t["errors"].values()), 0, t["errors"])
        self.assertEqual(opt["cache_size"], (16 << 20) // 100 * 80)
        pol, full = opt["policies"], opt["full_store"]["policies"]
        # the sequence is fixed (seed, count, one target): the simulated
        # numbers are too, whatever the timing
        self.assertEqual(pol["belady"]["requests"], 150)
        for name in ("s3fifo", "sieve", "lru"):
            self.assertGreater(pol["belady"]["hit_ratio"], pol[name]["hit_ratio"], name)
        self.assertGreaterEqual(full["belady"]["hit_ratio"], pol["belady"]["hit_ratio"])
        # the catalog (20 MB) does not fit in 12.8 MiB: LRU evicted and lost hits
        self.assertGreater(pol["lru"]["evictions"], 0)
        self.assertLess(pol["lru"]["hits"], full["belady"]["hits"])
        # the edge (SIEVE, evicting from 80% down to 70%, collapsed requests
        # counted as misses) cannot do better than the offline reference
        self.assertLessEqual(t["hit_ratio"], pol["belady"]["hit_ratio"] + 0.02)
        self.assertIn("the edge's 16 MiB store", p.stdout)


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
