"""The control API's log and membership on etcd (issue 12), end to end.

A real three-member etcd cluster (Debian's etcd-server) on loopback ephemeral
ports in a temporary directory, two meshcdn-origin control APIs on it
([control] backend = etcd) and fake edges that sign /log and /ack like
test_control.py's. Pins: both origins show the same ids and status; an
invalidation created on one is Completed on the other once every edge acked;
concurrent creates through both get unique, contiguous ids; a long poll
parked on one origin wakes when the other appends (the watch); killing the
etcd leader loses nothing; with two members of three down a create answers
503 Unavailable (meshcdnctl exits 1 with it), an edge's poll fails with a
clean JSON 503 and S3 is still served; with the
members back, it works again and no id is reused; with one origin killed,
the other carries on and its edges move over. Compaction deletes only
entries every registered edge has acknowledged (beyond `keep`).

Skipped (with the reason) only when etcd is not installed
(deploy/deps.sh --test installs etcd-server).
"""

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import unittest
import urllib.request

import mcharness as h

EDGE_AK, EDGE_SECRET = "AKIDEDGEFLEET", "edge/fleet+secret"
OP_AK, OP_SECRET = "AKIDOPERATOR", "operator/secret+KEY"
ETCD = shutil.which("etcd")


def free_ports(n):
    """n distinct loopback ports the kernel just handed out (etcd wants them
    on its command line; the race with another process is negligible)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def etcd_post(url, path, body, timeout=2.0):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


class EtcdCluster:
    """Three etcd members; member i can be killed and restarted on its data."""

    def __init__(self, tmp):
        self.tmp = tmp
        ports = free_ports(6)
        self.client = [f"http://127.0.0.1:{p}" for p in ports[:3]]
        self.peer = [f"http://127.0.0.1:{p}" for p in ports[3:]]
        self.names = [f"m{i}" for i in range(3)]
        self.cluster = ",".join(f"{n}={p}" for n, p in zip(self.names, self.peer))
        self.procs = [None] * 3

    def start(self, i):
        log = open(os.path.join(self.tmp, f"etcd-{i}.log"), "ab")
        # Short heartbeat/election: a lost leader is replaced in well under a second.
        args = [ETCD, "--name", self.names[i], "--data-dir", os.path.join(self.tmp, f"m{i}"),
                "--listen-client-urls", self.client[i], "--advertise-client-urls", self.client[i],
                "--listen-peer-urls", self.peer[i], "--initial-advertise-peer-urls", self.peer[i],
                "--initial-cluster", self.cluster, "--initial-cluster-token", "meshcdn-test",
                "--initial-cluster-state", "new", "--heartbeat-interval", "50",
                "--election-timeout", "500", "--logger", "zap", "--log-level", "warn"]
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        log.close()

    def kill(self, i):
        p = self.procs[i]
        if p and p.poll() is None:
            p.kill()
            p.wait()
        self.procs[i] = None

    def stop(self):
        for i in range(3):
            self.kill(i)

    def healthy(self, i, timeout=10.0):
        """Wait until member i answers a linearizable read (it has a leader)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                etcd_post(self.client[i], "/v3/kv/range", {"key": "aGVhbHRo"}, timeout=1.0)
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"etcd member {i} not healthy after {timeout} s")

    def leader(self):
        """Index of the current leader."""
        for i in range(3):
            if self.procs[i] is None:
                continue
            try:
                st = etcd_post(self.client[i], "/v3/maintenance/status", {})
            except OSError:
                continue
            if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                return i
        raise AssertionError("no etcd leader")


@unittest.skipUnless(ETCD, "etcd is not installed (deploy/deps.sh --test installs etcd-server)")
class EtcdBackendTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tempdir(prefix="meshcdn-etcd-")
        cls.etcd = EtcdCluster(cls.tmp)
        for i in range(3):
            cls.etcd.start(i)
        for i in range(3):
            cls.etcd.healthy(i)
        root = os.path.join(cls.tmp, "root")
        os.makedirs(os.path.join(root, "assets"))
        with open(os.path.join(root, "assets", "obj.bin"), "wb") as f:
            f.write(b"still served")
        h.write_keys(os.path.join(cls.tmp, "keys"), [(EDGE_AK, EDGE_SECRET)])
        h.write_keys(os.path.join(cls.tmp, "opkeys"), [(OP_AK, OP_SECRET)])

    @classmethod
    def tearDownClass(cls):
        cls.etcd.stop()
        if os.environ.get("MESHCDN_KEEP_TMP") != "1":
            shutil.rmtree(cls.tmp, True)

    def start_origins(self, prefix, *extra):
        """Two origins on the cluster, on their own key prefix (one log per test)."""
        self.origins, self.s3, self.daemons = [], [], []
        for k in range(2):
            # each origin lists the members in another order: both are used
            eps = self.etcd.client[k:] + self.etcd.client[:k]
            d = h.Daemon("meshcdn-origin", [
                "--root", os.path.join(self.tmp, "root"),
                "--keys", os.path.join(self.tmp, "keys"),
                "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
                "--control.operator_keys=" + os.path.join(self.tmp, "opkeys"),
                "--control.backend=etcd", "--control.endpoints=" + ",".join(eps),
                "--control.prefix=" + prefix, "--control.etcd_timeout=1s"] + list(extra))
            self.addCleanup(d.stop)
            self.origins.append(d.addr["control"])
            self.s3.append(d.addr["s3"])
            self.daemons.append(d)

    # ---- requests (as test_control.py) -------------------------------------

    def call(self, k, method, path, body=None, key=(OP_AK, OP_SECRET), timeout=10.0):
        host, port = self.origins[k]
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        headers = h.sign(method, f"http://{host}:{port}{path}", headers, key[0], key[1],
                         service="meshcdn", payload_hash=None, body=data or b"")
        status, _, raw, _ = h.http(method, host, port, path, headers, data, timeout=timeout)
        return status, json.loads(raw) if raw else None

    def create(self, k, path):
        status, doc = self.call(k, "POST", "/invalidations", {"paths": [path]})
        self.assertEqual(status, 201, doc)
        return doc

    def poll(self, k, node, after, wait=0, expect=200):
        status, doc = self.call(k, "GET", f"/log?node={node}&region=r{k}&after={after}"
                                f"&wait={wait}", key=(EDGE_AK, EDGE_SECRET), timeout=wait + 10)
        self.assertEqual(status, expect, doc)
        return doc

    def ack(self, k, node, seq):
        status, doc = self.call(k, "POST", "/ack", {"node": node, "seq": seq},
                                key=(EDGE_AK, EDGE_SECRET))
        self.assertEqual((status, doc), (200, {"ok": True}))

    def listing(self, k):
        status, doc = self.call(k, "GET", "/invalidations?limit=1000")
        self.assertEqual(status, 200, doc)
        return [(i["id"], i["status"], i["paths"]) for i in doc["invalidations"]]

    def detail(self, k, ident):
        status, doc = self.call(k, "GET", f"/invalidations/{ident}")
        self.assertEqual(status, 200, doc)
        return doc

    def edges_apply(self, last):
        """e1 follows origin 0, e2 origin 1: poll then ack up to last."""
        for k, node in ((0, "e1"), (1, "e2")):
            doc = self.poll(k, node, 0)
            self.assertEqual(doc["last"], last)
            self.assertEqual([e["seq"] for e in doc["entries"]], list(range(1, last + 1)))
            self.ack(k, node, last)

    # ---- the test -------------------------------------------------------------

    def test_compaction_waits_for_every_edge(self):
        self.start_origins("/compaction/", "--control.keep=2")
        self.poll(0, "e1", 0)
        self.poll(1, "e2", 0)
        for j in range(6):
            self.create(j % 2, f"/k{j}")
        self.ack(0, "e1", 6)
        time.sleep(1.1)   # compaction runs at most once a second per origin
        self.ack(0, "e2", 3)
        # e2 has applied 3: 1..3 go (keep 2 would allow 1..4)
        for k in range(2):
            self.assertEqual([i[0] for i in self.listing(k)], ["I6", "I5", "I4"])
            self.assertEqual(self.call(k, "GET", "/invalidations/I3")[0], 404)
        time.sleep(1.1)
        self.ack(1, "e2", 6)
        # everyone has applied 6: only the newest keep=2 remain
        self.assertEqual([i[0] for i in self.listing(0)], ["I6", "I5"])
        doc = self.poll(1, "e3", 0)   # a new edge starts from what is left
        self.assertEqual(([e["seq"] for e in doc["entries"]], doc["last"]), ([5, 6], 6))
        self.assertEqual(self.create(1, "/next")["id"], "I7")   # ids never reused

    def test_six_edges_on_two_origins_complete_fifty_invalidations(self):
        """Six fake edges (three per origin: long-poll, ack); each invalidation is
        created on one origin and watched on the other until Completed. Prints
        p50/p99 of create answered -> Completed (compare test_control.FleetTest,
        the embedded backend)."""
        self.start_origins("/fleet/")
        stop = threading.Event()
        errors = []

        def edge(k, node):
            cursor = 0
            try:
                while not stop.is_set():
                    doc = self.poll(k, node, cursor, wait=1)
                    if doc["entries"]:
                        cursor = doc["entries"][-1]["seq"]
                        self.ack(k, node, cursor)
            except Exception as e:   # reported by the main thread
                errors.append(f"{node}: {e!r}")

        threads = [threading.Thread(target=edge, args=(i % 2, f"edge-{i}")) for i in range(6)]
        for t in threads:
            t.start()
        self.addCleanup(lambda: [t.join(5) for t in threads])
        self.addCleanup(stop.set)
        deadline = time.monotonic() + 10
        while len(self.call(0, "GET", "/edges")[1]["edges"]) < 6:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        took = []
        for i in range(50):
            inv = self.create(i % 2, f"/models/m{i}/*")
            t0 = time.monotonic()
            while self.detail(1 - i % 2, inv["id"])["status"] != "Completed":
                self.assertLess(time.monotonic() - t0, 10, errors)
                time.sleep(0.002)
            took.append(time.monotonic() - t0)
        stop.set()
        self.assertEqual(errors, [])
        took.sort()
        p50, p99 = took[len(took) // 2], took[min(len(took) - 1, int(len(took) * 0.99))]
        print(f"\netcd, 2 origins, 6 fake edges, 50 invalidations: create answered -> "
              f"Completed p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
              f"max {took[-1] * 1000:.1f} ms")
        self.assertLess(p99, 2.0)

    def test_real_edges_never_serve_a_purged_body_through_leader_and_origin_loss(self):
        """Issue #12's fault test with real meshcdn-edge nodes: invalidations
        created through both control APIs while the etcd leader and then one
        control API die; each edge lists both control APIs and moves to the
        other when one fails; every invalidation completes, ids are unique and
        ordered, and no edge serves a purged body afterwards."""
        self.start_origins("/meshcdn-real/")
        cred = os.path.join(self.tmp, "edge.cred")
        h.write_keys(cred, [(EDGE_AK, EDGE_SECRET)])
        body = os.path.join(self.tmp, "root", "assets", "fleet.bin")
        with open(body, "wb") as f:
            f.write(b"v1")
        shost, sport = self.s3[1]            # origin 1 survives: the edges' S3 origin
        urls = [f"http://{hst}:{prt}" for hst, prt in self.origins]
        edges = []
        for i in range(3):
            order = urls if i % 2 == 0 else urls[::-1]   # split across the two control APIs
            d = h.Daemon("meshcdn-edge", [
                "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--origin", f"http://{shost}:{sport}/assets", "--credentials", cred,
                "--store", os.path.join(self.tmp, f"store-real-{i}"), "--store-size", "32M",
                "--workers", "1", "--node-id", f"real{i}",
                "--control", ",".join(order), "--control.poll_wait", "2s"],
                listeners=("http", "admin"))
            self.addCleanup(d.stop)
            edges.append(d)

        def get(d):
            s, hd, b, c = h.http("GET", *d.addr["http"], "/fleet.bin", {}, timeout=20)
            self.assertEqual(s, 200, b)
            return b

        for d in edges:
            get(d)
        time.sleep(0.3)
        self.assertTrue(all(get(d) == b"v1" for d in edges))
        seqs = []
        for j in range(4):
            seqs.append(self.create(j % 2, f"/noise-{j}.glb")["seq"])
        dead = self.etcd.leader()
        self.etcd.kill(dead)                           # the leader dies mid-stream

        def revive():                                  # the next test gets three members
            self.etcd.start(dead)
            self.etcd.healthy(dead)
        self.addCleanup(revive)
        deadline = time.time() + 20
        while True:
            try:
                seqs.append(self.create(1, "/noise-after-leader.glb")["seq"])
                break
            except AssertionError:
                self.assertLess(time.time(), deadline, "no write after the election")
                time.sleep(0.3)
        self.daemons[0].stop()                         # one control API dies
        with open(body, "wb") as f:
            f.write(b"v2")
        purge = self.create(1, "/fleet.bin")
        seqs.append(purge["seq"])
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(len(set(seqs)), len(seqs))
        deadline = time.time() + 30
        while self.detail(1, purge["id"])["status"] != "Completed":
            self.assertLess(time.time(), deadline, self.detail(1, purge["id"]))
            time.sleep(0.2)
        states = {e["node"]: e["state"] for e in self.detail(1, purge["id"])["edges"]
                  if e["node"].startswith("real")}
        self.assertEqual(states, {"real0": "applied", "real1": "applied", "real2": "applied"})
        for d in edges:
            self.assertEqual(get(d), b"v2")

    def test_two_origins_one_log_through_member_failures(self):
        t0 = time.monotonic()
        self.start_origins("/meshcdn/")
        # edges register through either origin; both origins see both
        self.poll(0, "e1", 0)
        self.poll(1, "e2", 0)
        for k in range(2):
            status, doc = self.call(k, "GET", "/edges")
            self.assertEqual(sorted(e["node"] for e in doc["edges"]), ["e1", "e2"])

        # creates through both, concurrently: unique, contiguous, ordered ids
        got, errors = [], []

        def creator(k):
            try:
                for j in range(6):
                    got.append(self.create(k, f"/c{k}-{j}.glb")["seq"])
            except AssertionError as e:   # pragma: no cover - reported below
                errors.append(e)
        threads = [threading.Thread(target=creator, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(sorted(got), list(range(1, 13)))
        self.assertEqual(self.listing(0), self.listing(1))
        self.assertEqual([i[0] for i in self.listing(0)], [f"I{n}" for n in range(12, 0, -1)])
        self.assertTrue(all(i[1] == "InProgress" for i in self.listing(1)))

        # a poll parked on origin 1 wakes when origin 0 appends (etcd watch)
        res = {}

        def parked():
            t = time.monotonic()
            res["doc"] = self.poll(1, "e2", 12, wait=20)
            res["s"] = time.monotonic() - t
        th = threading.Thread(target=parked)
        th.start()
        time.sleep(0.5)
        self.assertEqual(self.create(0, "/woken.glb")["id"], "I13")
        th.join()
        self.assertEqual([e["seq"] for e in res["doc"]["entries"]], [13])
        self.assertLess(res["s"], 5.0)

        # acks through both origins: Completed on both
        self.edges_apply(13)
        for k in range(2):
            d = self.detail(k, "I13")
            self.assertEqual(d["status"], "Completed", d)
            self.assertEqual({e["node"]: e["state"] for e in d["edges"]},
                             {"e1": "applied", "e2": "applied"})
        self.assertEqual(self.listing(0), self.listing(1))

        # the leader dies: nothing lost, writes go on after the election
        before = self.listing(0)
        lead = self.etcd.leader()
        self.etcd.kill(lead)
        deadline = time.monotonic() + 10
        while True:   # one election (~0.5 s here); a 503 meanwhile is allowed
            status, doc = self.call(0, "POST", "/invalidations", {"paths": ["/after-leader"]})
            if status == 201 or time.monotonic() > deadline:
                break
            self.assertEqual(status, 503, doc)
            time.sleep(0.2)
        self.assertEqual((status, doc["id"]), (201, "I14"), doc)
        self.assertEqual(self.create(1, "/after-leader-2")["id"], "I15")
        self.assertEqual(self.listing(1)[2:], before)
        self.edges_apply(15)
        self.assertEqual(self.detail(1, "I14")["status"], "Completed")
        self.assertEqual(self.detail(0, "I15")["status"], "Completed")

        # a second member down: no quorum, a create is refused, never dropped
        other = next(i for i in range(3) if self.etcd.procs[i] is not None)
        self.etcd.kill(other)
        time.sleep(1.0)   # the survivor steps down (check-quorum, one election timeout)
        for k in range(2):
            t = time.monotonic()
            status, doc = self.call(k, "POST", "/invalidations", {"paths": ["/no-quorum"]})
            self.assertEqual((status, doc["error"]), (503, "Unavailable"), doc)
            self.assertLess(time.monotonic() - t, 5.0)
            doc = self.poll(k, f"e{k + 1}", 15, expect=503)
            self.assertEqual(doc["error"], "Unavailable")
        # meshcdnctl says why and exits 1; the origin still serves S3 meanwhile
        host, port = self.origins[0]
        p = h.run("meshcdnctl", ["--control", f"http://{host}:{port}", "--credentials",
                                 os.path.join(self.tmp, "opkeys"), "invalidate", "/ctl.glb"])
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("503 Unavailable", p.stderr)
        s3host, s3port = self.s3[0]
        path = "/assets/obj.bin"
        hdrs = h.sign("GET", f"http://{s3host}:{s3port}{path}", {}, EDGE_AK, EDGE_SECRET)
        t = time.monotonic()
        status, _, body, _ = h.http("GET", s3host, s3port, path, hdrs)
        self.assertEqual((status, body), (200, b"still served"))
        self.assertLess(time.monotonic() - t, 1.5)

        # back up: the same log, and the next id is the next one
        for i in range(3):
            if self.etcd.procs[i] is None:
                self.etcd.start(i)
        for i in range(3):
            self.etcd.healthy(i)
        deadline = time.monotonic() + 10
        while True:   # an origin that saw a timeout fails fast for 2 s more
            status, doc = self.call(1, "POST", "/invalidations", {"paths": ["/back"]})
            if status == 201 or time.monotonic() > deadline:
                break
            self.assertEqual(status, 503, doc)
            time.sleep(0.2)
        self.assertEqual((status, doc["id"]), (201, "I16"), doc)
        self.assertEqual(self.listing(0), self.listing(1))
        ids = [i[0] for i in self.listing(0)]
        self.assertEqual(ids, [f"I{n}" for n in range(16, 0, -1)])
        self.assertNotIn("/no-quorum", [p for i in self.listing(0) for p in i[2]])   # refused
        self.edges_apply(16)
        self.assertEqual(self.detail(0, "I16")["status"], "Completed")

        # one control API dies: the other carries on, its edges move over
        self.daemons[0].kill9()
        self.assertEqual(self.create(1, "/survivor")["id"], "I17")
        for node in ("e1", "e2"):
            doc = self.poll(1, node, 16)
            self.assertEqual([e["seq"] for e in doc["entries"]], [17])
            self.ack(1, node, 17)
        d = self.detail(1, "I17")
        self.assertEqual((d["status"], len(d["edges"])), ("Completed", 2), d)
        self.assertLess(time.monotonic() - t0, 50)


if __name__ == "__main__":
    unittest.main()
