"""meshcdnctl end to end: the real binary against ctlpeer, a stand-in control API
and edge admin that verifies every request's SigV4 signature (spec-written and,
when installed, botocore's) and answers per the purge/invalidation spec.

Run: cd build-dbg && ctest -R e2e_test_ctl --output-on-failure
"""

import json
import os
import re
import shutil
import subprocess
import time
import unittest

import ctlpeer
import mcharness as h
from ctlpeer import CtlPeer, Edge

AK, SECRET = "AKOPS", "ops-secret"


class CtlCase(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.creds = h.write_keys(os.path.join(self.tmp, "ops.cred"), [(AK, SECRET)])

    def peer(self, keys=None, **kw):
        p = CtlPeer(keys=keys or {AK: SECRET}, **kw)
        self.addCleanup(p.stop)
        return p

    def ctl(self, *args, peer=None, creds=True, env=None, timeout=30):
        """Run meshcdnctl; --control PEER and --credentials FILE first unless told not to."""
        pre = []
        if peer is not None:
            pre += ["--control", peer.url]
        if creds:
            pre += ["--credentials", self.creds]
        e = {"MESHCDN_CONTROL": "", "MESHCDN_CREDENTIALS": "", "AWS_ACCESS_KEY_ID": "",
             "AWS_SECRET_ACCESS_KEY": "", "MESHCDN_REGION": ""}
        e.update(env or {})
        return h.run("meshcdnctl", pre + list(args), env=e, timeout=timeout)

    def assertExit(self, p, code):
        self.assertEqual(p.returncode, code, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")


class Basics(CtlCase):
    def test_help_and_version(self):
        p = self.ctl("--help", creds=False)
        self.assertExit(p, 0)
        for cmd in ("invalidate", "status", "list", "edges", "purge", "--json"):
            self.assertIn(cmd, p.stdout)
        p = self.ctl("invalidate", "--help", creds=False)
        self.assertExit(p, 0)
        self.assertIn("--wait", p.stdout)
        p = self.ctl("--version", creds=False)
        self.assertExit(p, 0)
        self.assertRegex(p.stdout, r"^meshcdnctl \d+\.\d+\.\d+\n$")

    def test_usage_errors_exit_2_and_send_nothing(self):
        peer = self.peer()
        # a sample: tests/unit/test_ctl.c goes through every rule
        cases = [
            ([], "no command"),
            (["frobnicate"], "unknown command"),
            (["invalidate", "a.glb"], "start with '/'"),
            (["invalidate", "/models/*/chair"], "'*'"),
            (["invalidate", "/a", "--timeout", "5s"], "add --wait"),
            (["status", "X12"], "not an invalidation id"),
            (["purge", "/a.glb"], "--edge URL is required"),
        ]
        for args, why in cases:
            with self.subTest(args=args):
                p = self.ctl(*args, peer=peer)
                self.assertExit(p, 2)
                self.assertIn(why, p.stderr)
                self.assertEqual(p.stdout, "")
        self.assertEqual(peer.requests, [], "a usage error must not reach the server")

    def test_too_many_paths_refused_before_sending(self):
        peer = self.peer()
        paths = [f"/p/{i}.glb" for i in range(3001)]
        p = self.ctl("invalidate", *paths, peer=peer)
        self.assertExit(p, 2)
        self.assertIn("3000", p.stderr)
        self.assertEqual(peer.requests, [])

    def test_unreachable_server_exits_1(self):
        peer = self.peer()
        url = peer.url
        peer.stop()
        p = h.run("meshcdnctl", ["--control", url, "--credentials", self.creds, "edges"])
        self.assertExit(p, 1)
        self.assertIn("cannot reach", p.stderr)
        self.assertIn(url, p.stderr)

    def test_bad_control_url_is_a_usage_error(self):
        p = self.ctl("--control", "ftp://127.0.0.1:21", "edges")
        self.assertExit(p, 2)
        self.assertIn("http://", p.stderr)


class Credentials(CtlCase):
    def test_group_readable_file_refused(self):
        peer = self.peer()
        loose = h.write_keys(os.path.join(self.tmp, "loose.cred"), [(AK, SECRET)], mode=0o644)
        p = self.ctl("--credentials", loose, "edges", peer=peer, creds=False)
        self.assertExit(p, 2)
        self.assertIn("loose.cred", p.stderr)
        self.assertIn("chmod 600", p.stderr)
        self.assertNotIn(SECRET, p.stderr)
        self.assertEqual(peer.requests, [])

    def test_file_with_two_pairs_refused(self):
        two = h.write_keys(os.path.join(self.tmp, "two.cred"), [(AK, SECRET), ("AK2", "s2")])
        p = self.ctl("--credentials", two, "edges", creds=False)
        self.assertExit(p, 2)
        self.assertIn("exactly one", p.stderr)

    def test_no_credentials_at_all(self):
        p = self.ctl("edges", creds=False)
        self.assertExit(p, 2)
        self.assertIn("no credentials", p.stderr)

    def test_environment_sources(self):
        peer = self.peer()
        p = self.ctl("edges", peer=peer, creds=False,
                     env={"MESHCDN_CREDENTIALS": self.creds})
        self.assertExit(p, 0)
        p = self.ctl("edges", peer=peer, creds=False,
                     env={"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SECRET})
        self.assertExit(p, 0)
        self.assertEqual([r.key for r in peer.requests], [AK, AK])
        # --credentials beats the environment
        wrong = h.write_keys(os.path.join(self.tmp, "wrong.cred"), [(AK, "not-the-secret")])
        p = self.ctl("--credentials", wrong, "edges", peer=peer, creds=False,
                     env={"MESHCDN_CREDENTIALS": self.creds})
        self.assertExit(p, 1)

    def test_wrong_secret_and_unknown_key_show_the_servers_message(self):
        peer = self.peer()
        wrong = h.write_keys(os.path.join(self.tmp, "wrong.cred"), [(AK, "not-the-secret")])
        p = self.ctl("--credentials", wrong, "invalidate", "/a.glb", peer=peer, creds=False)
        self.assertExit(p, 1)
        self.assertIn("403 SignatureDoesNotMatch", p.stderr)
        self.assertIn("does not match", p.stderr)
        other = h.write_keys(os.path.join(self.tmp, "other.cred"), [("AKNOBODY", SECRET)])
        p = self.ctl("--credentials", other, "list", peer=peer, creds=False)
        self.assertExit(p, 1)
        self.assertIn("403 InvalidAccessKeyId", p.stderr)
        self.assertEqual(peer.invalidations, [])

    def test_region_is_signed(self):
        peer = self.peer(region="eu-west-1")
        p = self.ctl("edges", peer=peer)
        self.assertExit(p, 1)
        self.assertIn("403 SignatureDoesNotMatch", p.stderr)
        self.assertIn("eu-west-1", p.stderr)
        p = self.ctl("--region", "eu-west-1", "edges", peer=peer)
        self.assertExit(p, 0)
        p = self.ctl("edges", peer=peer, env={"MESHCDN_REGION": "eu-west-1"})
        self.assertExit(p, 0)

    def test_control_url_from_environment_and_config_file(self):
        peer = self.peer()
        p = self.ctl("edges", env={"MESHCDN_CONTROL": peer.url})
        self.assertExit(p, 0)
        self.assertEqual(len(peer.requests), 1)
        ini = os.path.join(self.tmp, "ctl.ini")
        with open(ini, "w") as f:
            f.write(f"[ctl]\ncontrol = {peer.url}\ncredentials = {self.creds}\n")
        p = self.ctl("--config", ini, "edges", creds=False)
        self.assertExit(p, 0)
        self.assertEqual(len(peer.requests), 2)
        with open(ini, "w") as f:
            f.write("[ctl]\ncontroll = http://127.0.0.1:1\n")
        p = self.ctl("--config", ini, "edges")
        self.assertExit(p, 2)
        self.assertIn("ctl.ini", p.stderr)


class Invalidate(CtlCase):
    def test_body_signature_and_readable_answer(self):
        peer = self.peer(edges=[Edge("edge-a", delay=30)])
        p = self.ctl("invalidate", "/a.glb", "/models/chair/*", "--tag", "chair",
                     "--tag=sku-123", "--soft", peer=peer)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, "I1  InProgress  2 paths, 2 keys, soft\n")
        (r,) = peer.requests
        self.assertEqual((r.method, r.path, r.status, r.key), ("POST", "/invalidations", 201, AK))
        self.assertEqual(json.loads(r.body), {"paths": ["/a.glb", "/models/chair/*"],
                                              "surrogate_keys": ["chair", "sku-123"],
                                              "soft": True})
        # signed like curl --aws-sigv4 for a non-s3 service: no content-sha256 header
        self.assertNotIn("x-amz-content-sha256", r.headers)
        self.assertIn("/meshcdn/aws4_request", r.headers["authorization"])
        self.assertEqual(r.headers["content-type"], "application/json")

    def test_all_and_json_prints_the_answer_as_is(self):
        peer = self.peer(edges=[Edge("edge-a", delay=30)])
        p = self.ctl("--json", "invalidate", "--all", peer=peer)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.encode(), peer.answers[0])
        self.assertEqual(json.loads(peer.requests[0].body), {"all": True})
        self.assertEqual(json.loads(p.stdout)["id"], "I1")

    def test_wait_polls_until_completed(self):
        peer = self.peer(edges=[Edge("edge-a", delay=0.2), Edge("edge-b", "eu-west-1", 0.5),
                                Edge("edge-c", silent=True)])
        t0 = time.monotonic()
        p = self.ctl("invalidate", "/models/*", "--wait", peer=peer)
        took = time.monotonic() - t0
        self.assertExit(p, 0)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "I1  InProgress  1 path")
        m = re.fullmatch(r"I1  Completed in (\d+\.\d+) s  \(2 edges applied, 1 unreachable\)",
                         lines[1])
        self.assertTrue(m, p.stdout)
        self.assertGreaterEqual(float(m.group(1)), 0.45)
        self.assertLess(took, 5)
        polls = [r for r in peer.requests if r.method == "GET"]
        self.assertTrue(all(r.path == "/invalidations/I1" and r.key == AK for r in polls))
        # every 100 ms: not a busy loop (a slow machine only spreads them further)
        self.assertGreaterEqual(len(polls), 2, len(polls))
        gaps = [b.t - a.t for a, b in zip(polls, polls[1:])]
        self.assertGreaterEqual(min(gaps), 0.05, gaps)
        self.assertGreaterEqual(sum(gaps) / len(gaps), 0.09, gaps)
        self.assertLess(sum(gaps) / len(gaps), 0.5, gaps)

    def test_wait_json_prints_the_final_status(self):
        peer = self.peer(edges=[Edge("edge-a", delay=0.1)])
        p = self.ctl("invalidate", "/a.glb", "--wait", "--json", peer=peer)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.encode(), peer.answers[-1])
        doc = json.loads(p.stdout)
        self.assertEqual(doc["status"], "Completed")
        self.assertEqual(doc["edges"][0]["state"], "applied")

    def test_wait_timeout_exits_1_naming_the_pending_edge(self):
        peer = self.peer(edges=[Edge("edge-a", delay=0), Edge("edge-stuck", delay=None)])
        t0 = time.monotonic()
        p = self.ctl("invalidate", "/a.glb", "--wait", "--timeout", "600ms", peer=peer)
        took = time.monotonic() - t0
        self.assertExit(p, 1)
        self.assertIn("I1 still InProgress after 0.6 s", p.stderr)
        self.assertIn("pending: edge-stuck", p.stderr)
        self.assertIn("edge-stuck  us-east-1  pending", p.stdout)
        self.assertGreaterEqual(took, 0.55)
        self.assertLess(took, 5)

    def test_wait_rides_out_a_503(self):
        peer = self.peer(edges=[Edge("edge-a", delay=0.3)])
        p = self.ctl("invalidate", "/a.glb", peer=peer)
        self.assertExit(p, 0)
        peer.fail_next.append((503, "Unavailable", "control log busy"))
        p = self.ctl("status", "I1", "--wait", peer=peer)
        self.assertExit(p, 0)
        self.assertIn("Completed in", p.stdout)
        self.assertIn(503, [r.status for r in peer.requests])

    def test_server_refusal_shows_its_message(self):
        peer = self.peer()
        peer.fail_next.append((400, "InvalidPath", "path /x is not allowed here"))
        p = self.ctl("invalidate", "/x", peer=peer)
        self.assertExit(p, 1)
        self.assertIn("400 InvalidPath: path /x is not allowed here", p.stderr)
        self.assertEqual(p.stdout, "")
        peer.fail_next.append((503, "Unavailable", "the log is read-only"))
        p = self.ctl("--json", "invalidate", "/x", peer=peer)
        self.assertExit(p, 1)
        self.assertIn("503 Unavailable: the log is read-only", p.stderr)
        self.assertEqual(json.loads(p.stdout)["error"], "Unavailable")


class Status(CtlCase):
    def test_status_table_list_and_edges(self):
        peer = self.peer(edges=[Edge("edge-a", delay=0), Edge("edge-b", "eu-west-1", None),
                                Edge("edge-c", "ap-south-1", silent=True)])
        self.assertExit(self.ctl("invalidate", "/a.glb", "/b/*", peer=peer), 0)
        self.assertExit(self.ctl("invalidate", "--tag", "chair", "--soft", peer=peer), 0)
        p = self.ctl("status", "I1", peer=peer)
        self.assertExit(p, 0)
        lines = p.stdout.splitlines()
        self.assertRegex(lines[0], r"^I1  InProgress  created \d{4}-\d\d-\d\dT[\d:]+Z  "
                                   r"edges: 1 applied, 1 pending, 1 unreachable$")
        self.assertIn("paths: /a.glb /b/*", lines)
        header = next(i for i, l in enumerate(lines) if l.startswith("NODE"))
        self.assertRegex(lines[header], r"^NODE +REGION +STATE +ACKED +LAST SEEN$")
        rows = [l.split() for l in lines[header + 1:]]
        self.assertEqual([r[:4] for r in rows], [["edge-a", "us-east-1", "applied", "2"],
                                                 ["edge-b", "eu-west-1", "pending", "0"],
                                                 ["edge-c", "ap-south-1", "unreachable", "0"]])
        # "12" means I12; --json is the server's answer byte for byte
        p = self.ctl("status", "2", "--json", peer=peer)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.encode(), peer.answers[-1])
        self.assertEqual(peer.requests[-1].path, "/invalidations/I2")

        p = self.ctl("list", peer=peer)
        self.assertExit(p, 0)
        lines = p.stdout.splitlines()
        self.assertRegex(lines[0], r"^ID +CREATED +STATUS +WHAT$")
        self.assertTrue(lines[1].startswith("I2  "), p.stdout)
        self.assertIn("keys: chair; soft", lines[1])
        self.assertTrue(lines[2].startswith("I1  "), p.stdout)
        self.assertIn("/a.glb /b/*", lines[2])
        p = self.ctl("list", "--limit", "1", "--json", peer=peer)
        self.assertExit(p, 0)
        self.assertEqual(peer.requests[-1].query, "limit=1")
        self.assertEqual([i["id"] for i in json.loads(p.stdout)["invalidations"]], ["I2"])

        p = self.ctl("edges", peer=peer)
        self.assertExit(p, 0)
        rows = [l.split() for l in p.stdout.splitlines()]
        self.assertEqual(rows[0], ["NODE", "REGION", "STATE", "ACKED", "LAST", "SEEN"])
        self.assertEqual([r[:4] for r in rows[1:]], [["edge-a", "us-east-1", "live", "2"],
                                                     ["edge-b", "eu-west-1", "live", "0"],
                                                     ["edge-c", "ap-south-1", "unreachable", "0"]])

    def test_unknown_invalidation(self):
        peer = self.peer()
        p = self.ctl("status", "I404", peer=peer)
        self.assertExit(p, 1)
        self.assertIn("404 NoSuchInvalidation", p.stderr)

    def test_empty_fleet(self):
        peer = self.peer()
        self.assertEqual(self.ctl("list", peer=peer).stdout, "no invalidations\n")
        self.assertEqual(self.ctl("edges", peer=peer).stdout, "no registered edges\n")


class Purge(CtlCase):
    OBJECTS = {"/a.glb": [], "/models/chair/1.glb": ["chair"], "/models/chair/2.glb": ["chair"],
               "/models/sofa/1.glb": ["sofa", "sku-9"], "/textures/t.png": []}

    def test_purge_goes_to_the_edge_only(self):
        control = self.peer()
        edge = self.peer(role="edge", objects=self.OBJECTS)
        p = self.ctl("purge", "--edge", edge.url, "/a.glb", "/models/chair/*", peer=control)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, "purged 3 objects\n")
        self.assertEqual(control.requests, [])
        (r,) = edge.requests
        self.assertEqual((r.method, r.path, r.key), ("POST", "/purge", AK))
        self.assertEqual(json.loads(r.body), {"paths": ["/a.glb", "/models/chair/*"]})
        self.assertEqual(sorted(edge.objects), ["/models/sofa/1.glb", "/textures/t.png"])

        p = self.ctl("purge", "--edge", edge.url, "--tag", "sku-9", "--soft")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, "purged 1 object (soft: marked stale)\n")
        self.assertEqual(json.loads(edge.requests[-1].body),
                         {"surrogate_keys": ["sku-9"], "soft": True})

        p = self.ctl("--json", "purge", "--edge", edge.url, "--all")
        self.assertExit(p, 0)
        self.assertEqual(p.stdout.encode(), edge.answers[-1])
        self.assertEqual(json.loads(p.stdout), {"purged": 2, "soft": False})

    def test_edge_refusal(self):
        edge = self.peer(role="edge", keys={"AKEDGEOPS": "x"})
        p = self.ctl("purge", "--edge", edge.url, "/a.glb")
        self.assertExit(p, 1)
        self.assertIn("403 InvalidAccessKeyId", p.stderr)


class PeerSelfCheck(CtlCase):
    """The peer's verifier accepts what curl --aws-sigv4 signs and refuses a wrong
    secret, so a pass above means meshcdnctl signs the way the spec says."""

    @unittest.skipUnless(shutil.which("curl"), "curl not installed")
    def test_curl_aws_sigv4_is_accepted(self):
        peer = self.peer()
        for secret, want in ((SECRET, 201), ("wrong", 403)):
            subprocess.run(["curl", "-s", "-o", "/dev/null", "--aws-sigv4",
                            "aws:amz:us-east-1:meshcdn", "--user", f"{AK}:{secret}",
                            "-H", "Content-Type: application/json",
                            "--data", '{"paths":["/a.glb"]}', peer.url + "/invalidations"],
                           check=True, timeout=10)
            self.assertEqual(peer.requests[-1].status, want)


if __name__ == "__main__":
    unittest.main()
