"""Fleet invalidation end to end (issue #6): one meshcdn-origin with its
control API, three meshcdn-edge nodes following its log, meshcdnctl as the
operator. Everything real, on ephemeral loopback ports."""

import json
import os
import subprocess
import time
import unittest

import mcharness as h

AK, SECRET = "AKIDFLEETEDGE", "fleet-edge-secret-0123456789"
OP, OPSECRET = "AKIDFLEETOPS", "fleet-operator-secret-0123456789"
BUCKET = "assets"


class Fleet(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.root = f"{self.tmp}/root"
        os.makedirs(f"{self.root}/{BUCKET}/models/chair")
        os.makedirs(f"{self.root}/{BUCKET}/models/table")
        self.files = ["/models/chair/a.glb", "/models/chair/b.glb", "/models/table/c.glb"]
        for p in self.files:
            self.write(p, b"v1:" + p.encode())
        h.write_keys(f"{self.tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/cred", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/ops", [(OP, OPSECRET)])
        self.origin = h.Daemon("meshcdn-origin", [
            "--root", self.root, "--keys", f"{self.tmp}/keys",
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
            "--control.operator_keys", f"{self.tmp}/ops",
            "--control.unreachable_after", "60s"])
        self.addCleanup(self.origin.stop)
        self.edges = {}
        for name in ("e1", "e2", "e3"):
            self.start_edge(name)

    def write(self, path, data):
        with open(f"{self.root}/{BUCKET}{path}", "wb") as f:
            f.write(data)

    def start_edge(self, name, startup_wait="5s"):
        host, port = self.origin.addr["s3"]
        chost, cport = self.origin.addr["control"]
        d = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", f"http://{host}:{port}/{BUCKET}", "--credentials", f"{self.tmp}/cred",
            "--store", f"{self.tmp}/store-{name}", "--store-size", "64M", "--workers", "2",
            "--node-id", name, "--region", "us-east-1",
            "--control", f"http://{chost}:{cport}", "--control.startup_wait", startup_wait,
            "--control.poll_wait", "5s"], listeners=("http", "admin"))
        self.addCleanup(d.stop)
        self.edges[name] = d
        return d

    def ctl(self, *args, check=True):
        chost, cport = self.origin.addr["control"]
        p = h.run("meshcdnctl", ["--control", f"http://{chost}:{cport}", "--credentials",
                                 f"{self.tmp}/ops"] + list(args), timeout=60)
        if check:
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p

    def get(self, name, path):
        s, hd, b, c = h.http("GET", *self.edges[name].addr["http"], path, {}, timeout=30)
        self.assertTrue(c)
        self.assertEqual(s, 200, b[:200])
        return hd["x-cache"][0].split()[0], b

    def warm(self):
        for name in self.edges:
            for p in self.files:
                self.get(name, p)
        time.sleep(0.3)
        for name in self.edges:
            for p in self.files:
                self.assertEqual(self.get(name, p)[0], "Hit", (name, p))

    def status(self, inv_id):
        return json.loads(self.ctl("--json", "status", inv_id).stdout)

    def test_prefix_invalidation_reaches_every_edge(self):
        self.warm()
        for p in self.files[:2]:
            self.write(p, b"v2:" + p.encode())
        p = self.ctl("--json", "invalidate", "--wait", "--timeout", "20", "/models/chair/*")
        inv = json.loads(p.stdout.splitlines()[0])
        st = self.status(inv["id"])
        self.assertEqual(st["status"], "Completed")
        self.assertEqual(sorted(e["node"] for e in st["edges"]), ["e1", "e2", "e3"])
        self.assertTrue(all(e["state"] == "applied" for e in st["edges"]), st)
        for name in self.edges:
            self.assertEqual(self.get(name, "/models/chair/a.glb"), ("Miss", b"v2:/models/chair/a.glb"))
            self.assertEqual(self.get(name, "/models/chair/b.glb")[1], b"v2:/models/chair/b.glb")
            self.assertEqual(self.get(name, "/models/table/c.glb"), ("Hit", b"v1:/models/table/c.glb"))
            m = h.metrics(*self.edges[name].addr["admin"])
            self.assertEqual(m["meshcdn_edge_invalidation_cursor"], inv["seq"])
        listing = self.ctl("list").stdout
        self.assertIn(inv["id"], listing)
        self.assertIn("Completed", listing)

    def test_edge_down_stays_pending_then_catches_up_before_serving(self):
        self.warm()
        self.edges["e3"].stop()
        self.write("/models/table/c.glb", b"v2:table")
        p = self.ctl("--json", "invalidate", "/models/table/c.glb")
        inv = json.loads(p.stdout)
        deadline = time.time() + 10
        while time.time() < deadline:
            st = self.status(inv["id"])
            states = {e["node"]: e["state"] for e in st["edges"]}
            if states.get("e1") == "applied" and states.get("e2") == "applied":
                break
            time.sleep(0.05)
        self.assertEqual(st["status"], "InProgress", st)
        self.assertEqual(states, {"e1": "applied", "e2": "applied", "e3": "pending"})
        # --wait gives up and says so with a non-zero exit
        w = self.ctl("status", inv["id"], "--wait", "--timeout", "1", check=False)
        self.assertNotEqual(w.returncode, 0)
        # restarted on its old store, e3 never serves the purged version
        self.start_edge("e3")
        self.assertEqual(self.get("e3", "/models/table/c.glb"), ("Miss", b"v2:table"))
        self.assertEqual(self.get("e3", "/models/chair/a.glb")[0], "Hit")   # the rest of its cache survives
        self.ctl("status", inv["id"], "--wait", "--timeout", "20")
        self.assertEqual(self.status(inv["id"])["status"], "Completed")

    def test_edge_that_cannot_reach_the_control_api_is_not_ready(self):
        self.warm()
        self.edges["e2"].stop()
        self.origin.stop()
        d = self.start_edge("e2", startup_wait="500ms")
        s, hd, b, c = h.http("GET", *d.addr["admin"], "/readyz", {})
        self.assertEqual(s, 503)
        self.assertIn(b"not caught up", b)

    def test_a_new_control_database_is_followed_from_its_start(self):
        self.warm()
        for i in range(2):
            self.ctl("invalidate", "--wait", "--timeout", "20", f"/nothing-{i}.glb")
        # the origin comes back on the same ports with an empty log (a new
        # database): its entry 1 must be applied although the edges' cursors are at 2
        shost, sport = self.origin.addr["s3"]
        chost, cport = self.origin.addr["control"]
        self.origin.stop()
        self.origin = h.Daemon("meshcdn-origin", [
            "--root", self.root, "--keys", f"{self.tmp}/keys",
            "--listen", f"{shost}:{sport}", "--control", f"{chost}:{cport}",
            "--control.operator_keys", f"{self.tmp}/ops", "--control.db", f"{self.tmp}/newdb"])
        self.addCleanup(self.origin.stop)
        self.write("/models/chair/a.glb", b"v3")
        p = self.ctl("--json", "invalidate", "--wait", "--timeout", "30", "/models/chair/a.glb")
        self.assertEqual(json.loads(p.stdout.splitlines()[0])["seq"], 1)
        # (a new database knows no edges yet, so the status completes at
        # once; what matters is that each edge applies the entry)
        deadline = time.time() + 15
        for name, d in self.edges.items():
            while h.metrics(*d.addr["admin"]).get("meshcdn_edge_invalidation_cursor") != 1:
                self.assertLess(time.time(), deadline, f"{name} did not apply entry 1 of the new log")
                time.sleep(0.05)
        for name in self.edges:
            self.assertEqual(self.get(name, "/models/chair/a.glb"), ("Miss", b"v3"))

    def test_origin_restart_keeps_the_log(self):
        p = self.ctl("--json", "invalidate", "--wait", "--timeout", "20", "--tag", "chair", "/models/x.glb")
        inv = json.loads(p.stdout.splitlines()[0])
        self.origin.stop()
        self.origin = h.Daemon("meshcdn-origin", self.origin.args)
        self.addCleanup(self.origin.stop)
        st = self.status(inv["id"])
        self.assertEqual((st["paths"], st["surrogate_keys"]), (["/models/x.glb"], ["chair"]))
        # the edges' membership survived too; their polls re-register them anyway
        self.assertEqual(sorted(e["node"] for e in st["edges"]), ["e1", "e2", "e3"])


if __name__ == "__main__":
    unittest.main()
