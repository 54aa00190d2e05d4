"""meshcdn-origin's Control API end to end (issue 6): the fleet invalidation log.

The real binary on ephemeral loopback ports; operators and fake edges sign with
SigV4 service "meshcdn" (the harness's signer, and curl --aws-sigv4 where the
installed curl has it). Pins: create/list/detail JSON, per-edge status from
signed /log polls and /ack, unreachable edges not blocking completion, the
long-poll waking on a create, a parked poll whose client hangs up being freed,
bad requests refused with a clear JSON error and nothing appended, the log and
membership surviving a restart, and invalidate_on_write.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import unittest

import mcharness as h

EDGE_AK, EDGE_SECRET = "AKIDEDGEFLEET", "edge/fleet+secret"
OP_AK, OP_SECRET = "AKIDOPERATOR", "operator/secret+KEY"
ORIGIN = "meshcdn-origin"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def curl_has_sigv4():
    path = shutil.which("curl")
    if not path:
        return False
    out = subprocess.run([path, "--help", "all"], capture_output=True, text=True).stdout
    return "--aws-sigv4" in out


class ControlBase(unittest.TestCase):
    """One origin per test (most tests restart or reconfigure it)."""

    def setUp(self):
        self.tmp = h.tempdir(self, prefix="meshcdn-control-")
        self.root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(self.root, "assets"))
        h.write_keys(os.path.join(self.tmp, "keys"), [(EDGE_AK, EDGE_SECRET)])
        h.write_keys(os.path.join(self.tmp, "opkeys"), [(OP_AK, OP_SECRET)])
        self.origin = None

    def start(self, *extra):
        args = ["--root", self.root, "--keys", os.path.join(self.tmp, "keys"),
                "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
                "--control.operator_keys=" + os.path.join(self.tmp, "opkeys")] + list(extra)
        self.origin = h.Daemon(ORIGIN, args)
        self.addCleanup(self.origin.stop)
        self.host, self.port = self.origin.addr["control"]
        return self.origin

    # ---- requests ---------------------------------------------------------

    def call(self, method, path, body=None, key=(OP_AK, OP_SECRET), signed=True, timeout=10.0):
        """One request to the control listener; returns (status, headers, parsed JSON or
        raw bytes)."""
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if signed:
            headers = h.sign(method, f"http://{self.host}:{self.port}{path}", headers, key[0],
                             key[1], service="meshcdn", payload_hash=None, body=data or b"")
        status, rh, raw, _ = h.http(method, self.host, self.port, path, headers, data,
                                    timeout=timeout)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return status, rh, parsed

    def create(self, body):
        status, _, doc = self.call("POST", "/invalidations", body)
        self.assertEqual(status, 201, doc)
        return doc

    def poll(self, node, after=0, wait=0, region="us-east-1", timeout=10.0):
        q = f"after={after}&node={node}&region={region}&wait={wait}"
        status, _, doc = self.call("GET", f"/log?{q}", key=(EDGE_AK, EDGE_SECRET),
                                   timeout=timeout)
        self.assertEqual(status, 200, doc)
        return doc

    def ack(self, node, seq):
        status, _, doc = self.call("POST", "/ack", {"node": node, "seq": seq},
                                   key=(EDGE_AK, EDGE_SECRET))
        self.assertEqual((status, doc), (200, {"ok": True}))

    def detail(self, ident):
        status, _, doc = self.call("GET", f"/invalidations/{ident}")
        self.assertEqual(status, 200, doc)
        return doc

    def states(self, ident):
        d = self.detail(ident)
        return d["status"], {e["node"]: e["state"] for e in d["edges"]}

    def metric(self, name):
        return h.metrics(self.host, self.port).get(name)


class ControlApiTest(ControlBase):

    def test_create_list_and_detail_json(self):
        self.start()
        body = {"paths": ["/a.glb", "/models/chair/*"], "surrogate_keys": ["chair", "sku-123"],
                "all": False, "soft": True}
        status, rh, doc = self.call("POST", "/invalidations", body)
        self.assertEqual(status, 201, doc)
        self.assertEqual(set(doc), {"id", "seq", "created", "status"})
        self.assertEqual((doc["id"], doc["seq"]), ("I1", 1))
        self.assertRegex(doc["created"], ISO)
        self.assertEqual(doc["status"], "Completed")   # no edge registered: nothing pending
        self.assertEqual(rh["location"], ["/invalidations/I1"])
        self.assertEqual(rh["content-type"], ["application/json"])
        self.assertEqual(self.create({"all": True})["seq"], 2)

        status, _, lst = self.call("GET", "/invalidations")
        self.assertEqual(status, 200)
        self.assertEqual([i["id"] for i in lst["invalidations"]], ["I2", "I1"])   # newest first
        first = lst["invalidations"][1]
        self.assertEqual(set(first), {"id", "seq", "created", "status", "paths", "surrogate_keys",
                                      "all", "soft"})
        self.assertEqual(first["paths"], body["paths"])
        self.assertEqual(first["surrogate_keys"], body["surrogate_keys"])
        self.assertEqual((first["all"], first["soft"]), (False, True))
        status, _, lst = self.call("GET", "/invalidations?limit=1")
        self.assertEqual([i["id"] for i in lst["invalidations"]], ["I2"])

        for ident in ("I1", "1"):
            d = self.detail(ident)
            self.assertEqual((d["id"], d["seq"], d["paths"], d["edges"]), ("I1", 1, body["paths"],
                                                                           []))
            self.assertEqual(d["status"], "Completed")
        for ident in ("I3", "0", "x", "I1x", "99999999999999999999999"):
            status, _, doc = self.call("GET", f"/invalidations/{ident}")
            self.assertEqual((status, doc["error"]), (404, "NoSuchInvalidation"), ident)
        self.assertEqual(self.metric('meshcdn_origin_invalidations_total{source="api"}'), 2)
        self.assertEqual(self.metric("meshcdn_origin_control_log_last_seq"), 2)

    @unittest.skipUnless(curl_has_sigv4(), "curl without --aws-sigv4")
    def test_curl_aws_sigv4_creates_and_reads(self):
        self.start()
        base = f"http://{self.host}:{self.port}"
        sig = ["--aws-sigv4", "aws:amz:us-east-1:meshcdn", "--user", f"{OP_AK}:{OP_SECRET}"]
        p = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *sig, "-H",
                            "Content-Type: application/json", "-d",
                            '{"paths":["/models/chair/*"],"soft":true}',
                            f"{base}/invalidations"], capture_output=True, text=True, timeout=20)
        body, _, code = p.stdout.rpartition("\n")
        self.assertEqual(code, "201", p.stdout + p.stderr)
        self.assertEqual(json.loads(body)["id"], "I1")
        p = subprocess.run(["curl", "-sS", *sig, f"{base}/invalidations/I1"],
                           capture_output=True, text=True, timeout=20)
        d = json.loads(p.stdout)
        self.assertEqual((d["paths"], d["soft"]), (["/models/chair/*"], True))
        # curl 7.88 signs the query as written, so give it sorted (what SigV4 canonicalises)
        p = subprocess.run(["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:meshcdn", "--user",
                            f"{EDGE_AK}:{EDGE_SECRET}",
                            f"{base}/log?after=0&node=curl-edge&region=us-east-1&wait=0"],
                           capture_output=True, text=True, timeout=20)
        log = json.loads(p.stdout)
        self.assertEqual(([e["id"] for e in log["entries"]], log["last"]), (["I1"], 1))
        # a wrong secret through curl is refused the same way
        p = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", "--aws-sigv4",
                            "aws:amz:us-east-1:meshcdn", "--user", f"{OP_AK}:wrong",
                            "-d", '{"all":true}', f"{base}/invalidations"],
                           capture_output=True, text=True, timeout=20)
        body, _, code = p.stdout.rpartition("\n")
        self.assertEqual((code, json.loads(body)["error"]), ("403", "SignatureDoesNotMatch"))

    def test_status_follows_edge_acks(self):
        self.start()
        self.assertEqual(self.poll("edge-a")["entries"], [])          # registers
        self.assertEqual(self.poll("edge-b", region="eu-west-1")["last"], 0)
        inv = self.create({"paths": ["/a.glb"]})
        self.assertEqual(inv["status"], "InProgress")
        self.assertEqual(self.states("I1"), ("InProgress", {"edge-a": "pending",
                                                            "edge-b": "pending"}))
        log = self.poll("edge-a")
        self.assertEqual(log["last"], 1)
        self.assertEqual(log["entries"], [{"seq": 1, "id": "I1", "created": inv["created"],
                                           "paths": ["/a.glb"], "surrogate_keys": [],
                                           "all": False, "soft": False}])
        self.ack("edge-a", 1)
        self.assertEqual(self.states("I1"), ("InProgress", {"edge-a": "applied",
                                                            "edge-b": "pending"}))
        self.ack("edge-b", 1)
        self.ack("edge-b", 0)   # cumulative: never goes backwards
        self.assertEqual(self.states("I1"), ("Completed", {"edge-a": "applied",
                                                           "edge-b": "applied"}))
        d = self.detail("I1")
        b = [e for e in d["edges"] if e["node"] == "edge-b"][0]
        self.assertEqual((b["region"], b["acked"]), ("eu-west-1", 1))
        self.assertRegex(b["last_seen"], ISO)

        # a second invalidation: the poll's `after` is the edge's cursor, an ack too
        self.create({"surrogate_keys": ["chair"]})
        self.assertEqual(self.states("I2")[0], "InProgress")
        self.poll("edge-a", after=2)
        self.ack("edge-b", 2)
        self.assertEqual(self.states("I2"), ("Completed", {"edge-a": "applied",
                                                           "edge-b": "applied"}))
        status, _, edges = self.call("GET", "/edges")
        self.assertEqual(status, 200)
        self.assertEqual([(e["node"], e["region"], e["acked"], e["state"]) for e in edges["edges"]],
                         [("edge-a", "us-east-1", 2, "live"), ("edge-b", "eu-west-1", 2, "live")])
        self.assertEqual(set(edges["edges"][0]), {"node", "region", "acked", "last_seen", "state"})
        self.assertEqual(self.metric('meshcdn_origin_control_edges{state="live"}'), 2)
        # heartbeat registers without polling
        status, _, doc = self.call("POST", "/heartbeat", {"node": "edge-c", "region": "ap-1"},
                                   key=(EDGE_AK, EDGE_SECRET))
        self.assertEqual((status, doc), (200, {"ok": True}))
        self.assertEqual(self.states("I2"), ("InProgress", {"edge-a": "applied",
                                                            "edge-b": "applied",
                                                            "edge-c": "pending"}))
        # a cursor beyond the log (another log's) acknowledges nothing
        self.assertEqual(self.poll("edge-c", after=99)["last"], 2)
        self.assertEqual(self.states("I2")[1]["edge-c"], "pending")

    def test_unreachable_edge_does_not_block_and_catches_up(self):
        self.start("--control.unreachable_after=1s")
        self.poll("edge-a")
        self.poll("edge-b")
        self.create({"paths": ["/models/*"]})
        self.ack("edge-a", 1)
        self.assertEqual(self.states("I1"), ("InProgress", {"edge-a": "applied",
                                                            "edge-b": "pending"}))
        time.sleep(2.2)   # edge-b silent for > 1 s (whole seconds)
        self.assertEqual(self.states("I1"), ("Completed", {"edge-a": "applied",
                                                           "edge-b": "unreachable"}))
        status, _, edges = self.call("GET", "/edges")
        self.assertEqual({e["node"]: e["state"] for e in edges["edges"]},
                         {"edge-a": "unreachable", "edge-b": "unreachable"})
        self.assertEqual(self.metric('meshcdn_origin_control_edges{state="unreachable"}'), 2)
        # edge-b returns: it gets what it missed, is pending until it acks
        log = self.poll("edge-b")
        self.assertEqual([e["seq"] for e in log["entries"]], [1])
        self.assertEqual(self.states("I1")[1]["edge-b"], "pending")
        self.ack("edge-b", 1)
        self.assertEqual(self.states("I1")[1]["edge-b"], "applied")

    def test_long_poll_wakes_on_create_and_times_out_empty(self):
        self.start()
        result = {}

        def waiter():
            t0 = time.monotonic()
            result["doc"] = self.poll("edge-a", after=0, wait=20, timeout=30)
            result["at"] = time.monotonic()
            result["took"] = result["at"] - t0

        th = threading.Thread(target=waiter)
        th.start()
        deadline = time.monotonic() + 5
        while self.metric("meshcdn_origin_control_polls_parked") != 1:
            self.assertLess(time.monotonic(), deadline, "the poll was never parked")
            time.sleep(0.02)
        t_create = time.monotonic()
        inv = self.create({"paths": ["/woken.glb"]})
        th.join(10)
        self.assertFalse(th.is_alive())
        self.assertEqual([e["id"] for e in result["doc"]["entries"]], [inv["id"]])
        latency = result["at"] - t_create
        print(f"\nlong-poll answered {latency * 1000:.1f} ms after the create was sent")
        self.assertLess(latency, 0.25)   # ~100 ms, with slack for a sanitized build on 2 cores
        self.assertEqual(self.metric("meshcdn_origin_control_polls_parked"), 0)

        t0 = time.monotonic()
        doc = self.poll("edge-a", after=1, wait=1)
        took = time.monotonic() - t0
        self.assertEqual(doc, {"entries": [], "last": 1})
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 3)
        # wait=0 and an entry already there: answered at once
        self.assertEqual(len(self.poll("edge-a", after=0, wait=30, timeout=2)["entries"]), 1)

    def test_parked_poll_of_a_client_that_hangs_up_is_freed(self):
        self.start()
        path = "/log?after=0&node=edge-gone&region=us-east-1&wait=30"
        hdrs = h.sign("GET", f"http://{self.host}:{self.port}{path}", {}, EDGE_AK, EDGE_SECRET,
                      service="meshcdn", payload_hash=None, body=b"")
        hdrs["Host"] = f"{self.host}:{self.port}"
        socks = []
        for _ in range(3):
            s = socket.create_connection((self.host, self.port))
            s.sendall((f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n"
                                                             for k, v in hdrs.items())
                       + "\r\n").encode())
            socks.append(s)
        deadline = time.monotonic() + 5
        while self.metric("meshcdn_origin_control_polls_parked") != 3:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        for s in socks:
            s.close()
        deadline = time.monotonic() + 2
        while self.metric("meshcdn_origin_control_polls_parked") != 0:
            self.assertLess(time.monotonic(), deadline, "hung-up polls still parked")
            time.sleep(0.02)
        # the listener still works, and an append after the hang-ups harms nothing
        self.create({"all": True})
        self.assertEqual(self.poll("edge-x")["last"], 1)
        # one left parked at shutdown is answered and freed (the stop checks for leaks)
        s = socket.create_connection((self.host, self.port))
        path2 = "/log?after=1&node=edge-late&region=us-east-1&wait=30"
        hdrs = h.sign("GET", f"http://{self.host}:{self.port}{path2}", {}, EDGE_AK, EDGE_SECRET,
                      service="meshcdn", payload_hash=None, body=b"")
        s.sendall((f"GET {path2} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
                   + "\r\n").encode())
        deadline = time.monotonic() + 5
        while self.metric("meshcdn_origin_control_polls_parked") != 1:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        self.assertEqual(self.origin.stop(), 0)
        s.close()

    def test_keep_alive_connection_after_a_long_poll(self):
        # the parked poll hands its connection back (close callback and timeout
        # restored): the next request on it works, and closing it later is clean
        self.start()
        s = socket.create_connection((self.host, self.port), timeout=10)
        self.addCleanup(s.close)
        buf = b""
        for wait in (1, 0, 1):
            path = f"/log?after=0&node=edge-ka&region=us-east-1&wait={wait}"
            hdrs = h.sign("GET", f"http://{self.host}:{self.port}{path}", {}, EDGE_AK,
                          EDGE_SECRET, service="meshcdn", payload_hash=None, body=b"")
            s.sendall((f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n"
                                                            for k, v in hdrs.items())
                       + "\r\n").encode())
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                self.assertTrue(chunk, "connection closed")
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            self.assertIn(b" 200 ", head.split(b"\r\n")[0])
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(buf) < length:
                buf += s.recv(65536)
            body, buf = buf[:length], buf[length:]
            self.assertEqual(json.loads(body), {"entries": [], "last": 0})
        s.close()
        self.create({"all": True})   # would touch a stale close callback if one were left
        self.assertEqual(self.metric("meshcdn_origin_control_polls_parked"), 0)

    def test_bad_requests_are_refused_and_change_nothing(self):
        self.start()
        self.create({"paths": ["/keep.glb"]})
        op, edge = (OP_AK, OP_SECRET), (EDGE_AK, EDGE_SECRET)
        cases = [
            # (method, path, body, key, signed, status, code, message or None)
            ("POST", "/invalidations", b'{"paths": ["/a"', op, True, 400, "MalformedJSON", None),
            ("POST", "/invalidations", b"", op, True, 400, "MalformedJSON", None),
            ("POST", "/invalidations", b'["/a"]', op, True, 400, "MalformedJSON",
             "The body must be a JSON object."),
            ("POST", "/invalidations", {"paths": ["/a"], "purge": True}, op, True, 400,
             "UnknownField", 'Unknown field "purge"; expected paths, surrogate_keys, all, soft.'),
            ("POST", "/invalidations", {}, op, True, 400, "EmptyInvalidation",
             'Nothing to invalidate: give at least one path, one surrogate key, or "all": true.'),
            ("POST", "/invalidations", {"paths": [], "surrogate_keys": []}, op, True, 400,
             "EmptyInvalidation", None),
            ("POST", "/invalidations", {"paths": ["a.glb"]}, op, True, 400, "InvalidPath",
             "Path \"a.glb\" does not start with '/'."),
            ("POST", "/invalidations", {"paths": ["/ok", "/a*b"]}, op, True, 400, "InvalidPath",
             "Path \"/a*b\": '*' is only allowed as the last character (a prefix)."),
            ("POST", "/invalidations", {"surrogate_keys": ["two words"]}, op, True, 400,
             "BadRequest", None),
            ("POST", "/invalidations", {"paths": "/a"}, op, True, 400, "BadRequest",
             '"paths" must be an array of strings.'),
            ("POST", "/invalidations", {"all": True}, op, False, 401, "MissingAuthentication",
             None),
            ("POST", "/invalidations", {"all": True}, ("AKIDNOBODY", "x"), True, 403,
             "InvalidAccessKeyId", None),
            ("POST", "/invalidations", {"all": True}, (OP_AK, "wrong"), True, 403,
             "SignatureDoesNotMatch", None),
            ("POST", "/invalidations", {"all": True}, edge, True, 403, "InvalidAccessKeyId",
             None),   # an edge key is not an operator key
            ("GET", "/invalidations", None, op, False, 401, "MissingAuthentication", None),
            ("GET", "/invalidations?limit=0", None, op, True, 400, "BadRequest", None),
            ("GET", "/edges", None, edge, True, 403, "InvalidAccessKeyId", None),
            ("GET", "/log?after=0&node=e1&wait=0", None, op, True, 403, "InvalidAccessKeyId",
             None),
            ("GET", "/log?after=0&node=e1&wait=0", None, op, False, 401,
             "MissingAuthentication", None),
            ("GET", "/log?after=x&node=e1", None, edge, True, 400, "BadRequest", None),
            ("GET", "/log?after=0", None, edge, True, 400, "BadRequest", None),
            ("POST", "/ack", {"node": "e1", "seq": 5}, edge, True, 400, "BadRequest",
             '"seq" 5 is beyond the last entry of the log (1).'),
            ("POST", "/ack", {"node": "e1", "seq": 1, "x": 1}, edge, True, 400, "UnknownField",
             None),
            ("POST", "/ack", {"node": "e1"}, edge, True, 400, "BadRequest", None),
            ("POST", "/ack", {"node": "e1", "seq": 1}, op, True, 403, "InvalidAccessKeyId",
             None),
            ("POST", "/heartbeat", {"node": "has space"}, edge, True, 400, "BadRequest", None),
            ("PUT", "/invalidations", None, op, True, 405, "MethodNotAllowed", None),
            ("DELETE", "/invalidations/I1", None, op, True, 405, "MethodNotAllowed", None),
        ]
        for method, path, body, key, signed, status, code, message in cases:
            with self.subTest(method=method, path=path, body=body, code=code):
                got, rh, doc = self.call(method, path, body, key=key, signed=signed)
                self.assertEqual(got, status, doc)
                self.assertIsInstance(doc, dict, doc)
                self.assertEqual(doc["error"], code, doc)
                self.assertTrue(doc["message"], doc)
                if message:
                    self.assertEqual(doc["message"], message)
                self.assertEqual(rh["content-type"], ["application/json"])
        m = h.metrics(self.host, self.port)
        self.assertEqual(m['meshcdn_origin_control_auth_failures_total{reason="missing"}'], 3)
        self.assertEqual(m['meshcdn_origin_control_auth_failures_total{reason="unknown_key"}'], 5)
        self.assertEqual(m['meshcdn_origin_control_auth_failures_total{reason="mismatch"}'], 1)
        # nothing appended, nobody registered
        status, _, lst = self.call("GET", "/invalidations")
        self.assertEqual([i["id"] for i in lst["invalidations"]], ["I1"])
        self.assertEqual(self.metric("meshcdn_origin_control_log_last_seq"), 1)
        status, _, edges = self.call("GET", "/edges")
        self.assertEqual(edges, {"edges": []})

    def test_edge_routes_refused_without_edge_keys(self):
        # no origin keys (anonymous reads only) and no edge_keys: nobody is an edge
        os.remove(os.path.join(self.tmp, "keys"))
        self.origin = h.Daemon(ORIGIN, ["--root", self.root, "--anonymous-read",
                                        "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        self.addCleanup(self.origin.stop)
        self.host, self.port = self.origin.addr["control"]
        status, _, doc = self.call("GET", "/log?after=0&node=e1&wait=0", key=(EDGE_AK, EDGE_SECRET))
        self.assertEqual((status, doc["error"]), (403, "AccessDenied"))
        self.assertIn("edge_keys", doc["message"])
        status, _, doc = self.call("POST", "/invalidations", {"all": True})
        self.assertEqual((status, doc["error"]), (403, "AccessDenied"))
        self.assertIn("operator_keys", doc["message"])

    def test_origin_without_a_usable_default_log_still_serves(self):
        # the default db path is taken by a file (as a read-only root would refuse it)
        with open(os.path.join(self.root, ".meshcdn-control"), "w") as f:
            f.write("not a directory\n")
        with open(os.path.join(self.root, "assets", "a.txt"), "wb") as f:
            f.write(b"still served\n")
        self.start()
        self.origin.wait_log(r"control API disabled")
        host, port = self.origin.addr["s3"]
        hdrs = h.sign("GET", f"http://{host}:{port}/assets/a.txt", {}, EDGE_AK, EDGE_SECRET)
        status, _, body, _ = h.http("GET", host, port, "/assets/a.txt", hdrs)
        self.assertEqual((status, body), (200, b"still served\n"))
        status, _, doc = self.call("POST", "/invalidations", {"all": True})
        self.assertEqual((status, doc["error"]), (503, "Unavailable"))
        status, _, doc = self.call("POST", "/invalidations", {"all": True}, signed=False)
        self.assertEqual(status, 401)
        # an explicitly configured db that cannot be opened stops the start
        self.origin.stop()
        p = h.run(ORIGIN, ["--root", self.root, "--keys", os.path.join(self.tmp, "keys"),
                           "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
                           "--control.db=" + os.path.join(self.root, ".meshcdn-control")])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("control.db", p.stderr)

    def test_restart_keeps_log_and_membership(self):
        self.start()
        self.poll("edge-a", region="us-east-1")
        self.create({"paths": ["/one"]})
        self.create({"surrogate_keys": ["two"]})
        self.ack("edge-a", 1)
        before = self.detail("I2")
        self.origin.stop()
        self.start()
        after = self.detail("I2")
        self.assertEqual({k: after[k] for k in ("id", "seq", "created", "paths", "surrogate_keys")},
                         {k: before[k] for k in ("id", "seq", "created", "paths", "surrogate_keys")})
        self.assertEqual([(e["node"], e["region"], e["acked"], e["state"]) for e in after["edges"]],
                         [("edge-a", "us-east-1", 1, "pending")])
        self.assertEqual(self.states("I1"), ("Completed", {"edge-a": "applied"}))
        self.assertEqual(self.create({"all": True})["seq"], 3)   # never reuses a seq
        self.assertTrue(os.path.isfile(os.path.join(self.root, ".meshcdn-control", "data.mdb")))
        # and a configured db directory is used instead
        db = os.path.join(self.tmp, "ctl-db")
        self.origin.stop()
        self.start(f"--control.db={db}")
        status, _, lst = self.call("GET", "/invalidations")
        self.assertEqual(lst, {"invalidations": []})
        self.assertTrue(os.path.isfile(os.path.join(db, "data.mdb")))


class FleetTest(ControlBase):

    def test_six_edges_complete_fifty_invalidations_quickly(self):
        """Six fake edges follow the log (long-poll, ack); the time from each
        create's answer to its status reading Completed is printed (p50/p99)."""
        self.start()
        stop = threading.Event()
        errors = []

        def edge(node):
            cursor = 0
            try:
                while not stop.is_set():
                    doc = self.poll(node, after=cursor, wait=1, timeout=10)
                    if doc["entries"]:
                        cursor = doc["entries"][-1]["seq"]
                        self.ack(node, cursor)
            except Exception as e:   # reported by the main thread
                errors.append(f"{node}: {e!r}")

        threads = [threading.Thread(target=edge, args=(f"edge-{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        self.addCleanup(lambda: [t.join(5) for t in threads])
        self.addCleanup(stop.set)
        deadline = time.monotonic() + 10
        while len(self.call("GET", "/edges")[2]["edges"]) < 6:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        took = []
        for i in range(50):
            inv = self.create({"paths": [f"/models/m{i}/*"]})
            t0 = time.monotonic()
            while self.detail(inv["id"])["status"] != "Completed":
                self.assertLess(time.monotonic() - t0, 10, errors)
                time.sleep(0.002)
            took.append(time.monotonic() - t0)
        stop.set()
        self.assertEqual(errors, [])
        took.sort()
        p50, p99 = took[len(took) // 2], took[min(len(took) - 1, int(len(took) * 0.99))]
        print(f"\n6 fake edges, 50 invalidations: create answered -> Completed "
              f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms")
        self.assertLess(p99, 1.0)


class InvalidateOnWriteTest(ControlBase):

    def s3(self, method, path, body=None, secret=EDGE_SECRET):
        host, port = self.origin.addr["s3"]
        hdrs = h.sign(method, f"http://{host}:{port}{path}", {}, EDGE_AK, secret,
                      payload_hash=None, body=body or b"")
        status, _, raw, _ = h.http(method, host, port, path, hdrs, body)
        return status, raw

    def entries(self):
        return self.poll("watcher", after=0)["entries"]

    def test_put_and_delete_append_an_invalidation(self):
        self.start("--control.invalidate_on_write=true")
        self.assertEqual(self.s3("PUT", "/assets/models/chair.glb", b"v2")[0], 200)
        self.assertEqual([e["paths"] for e in self.entries()], [["/models/chair.glb"]])
        self.assertEqual(self.s3("DELETE", "/assets/models/chair.glb")[0], 204)
        self.assertEqual(self.s3("PUT", "/assets/read%20me.txt", b"x")[0], 200)
        # refused writes append nothing
        self.assertEqual(self.s3("PUT", "/assets/x.glb", b"x", secret="wrong")[0], 403)
        self.assertEqual(self.s3("PUT", "/nobucket/x.glb", b"x")[0], 404)
        got = self.entries()
        self.assertEqual([e["paths"] for e in got],
                         [["/models/chair.glb"], ["/models/chair.glb"], ["/read%20me.txt"]])
        self.assertTrue(all(not e["soft"] and not e["all"] and e["surrogate_keys"] == []
                            for e in got))
        self.assertEqual(self.metric('meshcdn_origin_invalidations_total{source="write"}'), 3)
        # a multipart upload invalidates once, when it completes
        status, raw = self.s3("POST", "/assets/big.bin?uploads")
        self.assertEqual(status, 200, raw)
        upload_id = re.search(rb"<UploadId>([^<]+)</UploadId>", raw).group(1).decode()
        status, _ = self.s3("PUT", f"/assets/big.bin?partNumber=1&uploadId={upload_id}", b"p1")
        self.assertEqual(status, 200)
        self.assertEqual(len(self.entries()), 3)
        etag = '"' + __import__("hashlib").md5(b"p1").hexdigest() + '"'
        done = (f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag>"
                "</Part></CompleteMultipartUpload>").encode()
        status, raw = self.s3("POST", f"/assets/big.bin?uploadId={upload_id}", done)
        self.assertEqual(status, 200, raw)
        self.assertEqual(self.entries()[-1]["paths"], ["/big.bin"])

    def test_off_by_default(self):
        self.start()
        self.assertEqual(self.s3("PUT", "/assets/a.glb", b"v1")[0], 200)
        self.assertEqual(self.s3("DELETE", "/assets/a.glb")[0], 204)
        self.assertEqual(self.entries(), [])


if __name__ == "__main__":
    unittest.main()
