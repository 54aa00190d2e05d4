"""deploy/ end to end (issue #9): the example region configs and the
`cmake --install` layout.

- every config in deploy/regions/ is complete and consistent with the others
  and with the systemd units (regions, node ids, origin address, SigV4
  region, store directories);
- every config runs: meshcdn-origin from origin.ini and, region by region,
  the tier and both edges from their files, with only the addresses, paths
  and secrets overridden by flags to loopback and temporary ones (the daemons
  refuse unknown keys and bad values, so a start proves the file parses);
  each node then serves an object (miss, then hit) under its own node id,
  the edges' misses going through their region's tier (the parent and the
  secondary origin overridden to loopback);
- every system call the daemons make (under strace, through a miss, a hit, a
  range, a PUT, metrics and a SIGTERM) is allowed by the units'
  SystemCallFilter= (@system-service minus @privileged @resources, expanded
  by systemd-analyze): a call outside it would be EPERM in production;
- `cmake --install` puts binaries, units, examples and docs where the README
  says, with the units pointing at the installed binaries.
"""

import configparser
import filecmp
import glob
import os
import re
import shutil
import signal
import subprocess
import unittest
import urllib.parse

import mcharness as h

TOP = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
REGIONS_DIR = os.path.join(TOP, "deploy", "regions")
REGIONS = ("us-east-1", "eu-central-1", "ap-northeast-1")
ROLES = ("tier", "edge-a", "edge-b")
AK, SECRET = "AKIDDEPLOYEDGE", "deploy-edge-secret-0123456789"
OP, OPSECRET = "AKIDDEPLOYOPS", "deploy-operator-secret-0123456789"


def read_ini(path):
    # The same reading as inih: ';' and '#' start comment lines, '=' splits,
    # no interpolation; key case kept (behavior prefixes are paths).
    cp = configparser.ConfigParser(interpolation=None, delimiters=("=",),
                                   comment_prefixes=(";", "#"), inline_comment_prefixes=None,
                                   strict=False)
    cp.optionxform = str
    with open(path) as f:
        cp.read_file(f, path)
    return cp


def slurp(path):
    with open(path) as f:
        return f.read()


def node_files():
    return [(r, role, os.path.join(REGIONS_DIR, r, f"{role}.ini")) for r in REGIONS for role in ROLES]


class ConfigsConsistent(unittest.TestCase):
    def test_every_region_has_a_tier_and_two_edges(self):
        self.assertTrue(os.path.isfile(os.path.join(REGIONS_DIR, "origin.ini")))
        for region, role, path in node_files():
            self.assertTrue(os.path.isfile(path), f"missing {path}")
        found = sorted(os.path.relpath(p, REGIONS_DIR) for p in glob.glob(f"{REGIONS_DIR}/*/*.ini"))
        self.assertEqual(found, sorted(f"{r}/{role}.ini" for r in REGIONS for role in ROLES))

    def test_nodes_agree_with_origin_and_units(self):
        origin = read_ini(os.path.join(REGIONS_DIR, "origin.ini"))
        s3_port = origin["origin"]["listen"].rpartition(":")[2]
        control_port = origin["control"]["listen"].rpartition(":")[2]
        ids = set()
        for region, role, path in node_files():
            with self.subTest(path=os.path.relpath(path, TOP)):
                c = read_ini(path)
                self.assertEqual(c["edge"]["region"], region)
                node = c["edge"]["node_id"]
                self.assertNotIn(node, ids, "node ids must be unique in the fleet")
                ids.add(node)
                u = urllib.parse.urlsplit(c["origin"]["url"])
                self.assertEqual(str(u.port), s3_port, "origin.url must reach origin.ini's listener")
                self.assertEqual(u.path.strip("/"), "assets")
                self.assertEqual(c["origin"]["region"], origin["origin"]["region"],
                                 "edges sign for the region the origin verifies")
                self.assertEqual(urllib.parse.urlsplit(c["edge"]["control"]).port, int(control_port))
                self.assertEqual(urllib.parse.urlsplit(c["edge"]["control"]).hostname, u.hostname)
                # meshcdn-edge@NAME.service: /etc/meshcdn/NAME.ini, StateDirectory meshcdn/NAME
                self.assertEqual(c["store"]["dir"], f"/var/lib/meshcdn/{role}")
                for k in ("credentials",):
                    self.assertTrue(c["origin"][k].startswith("/etc/meshcdn/"))
                # no capabilities in the unit: unprivileged ports only
                for k in ("listen", "admin"):
                    self.assertGreaterEqual(int(c["edge"][k].rpartition(":")[2]), 1024)
        for region in REGIONS:   # the three nodes of a region can share a host
            ports = []
            for role in ROLES:
                c = read_ini(os.path.join(REGIONS_DIR, region, f"{role}.ini"))
                ports += [c["edge"]["listen"].rpartition(":")[2], c["edge"]["admin"].rpartition(":")[2]]
            self.assertEqual(len(ports), len(set(ports)), f"{region}: ports collide")

    def test_tier_block_is_marked_and_live(self):
        # Each edge's parents are its region's tier, at the tier's own
        # listener and admin ports; every node has the origin group.
        for region, role, path in node_files():
            text = slurp(path)
            m = re.search(r"^; ---- tiers .*?^; ---- end of tiers ----$", text, re.S | re.M)
            self.assertIsNotNone(m, f"{path}: no marked tiers block")
            c = read_ini(path)
            self.assertTrue(c["origin"]["secondary_url"].endswith("/assets"), path)
            if role == "tier":
                self.assertFalse(c.has_section("parents"), f"{path}: a tier has no parents")
                continue
            tier = read_ini(os.path.join(REGIONS_DIR, region, "tier.ini"))["edge"]
            lport, aport = tier["listen"].rpartition(":")[2], tier["admin"].rpartition(":")[2]
            self.assertEqual(c["parents"]["tier"],
                             f"http://tier.{region}.meshcdn.example:{lport} "
                             f"health=http://tier.{region}.meshcdn.example:{aport}/healthz", path)


class ConfigsRun(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.root = f"{self.tmp}/root"
        os.makedirs(f"{self.root}/assets/models/chair")
        self.body = b"glTF-deploy-test" * 1000
        with open(f"{self.root}/assets/models/chair/chair.glb", "wb") as f:
            f.write(self.body)
        h.write_keys(f"{self.tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/cred", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/ops", [(OP, OPSECRET)])
        self.origin = h.Daemon("meshcdn-origin", [
            "--config", os.path.join(REGIONS_DIR, "origin.ini"),
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
            "--root", self.root, "--keys", f"{self.tmp}/keys",
            "--control.db", f"{self.tmp}/control", "--control.operator_keys", f"{self.tmp}/ops"])
        self.addCleanup(self.origin.stop)

    def start_node(self, region, role, tier=None):
        host, port = self.origin.addr["s3"]
        chost, cport = self.origin.addr["control"]
        # the file's parent (its region's tier) and secondary origin, on loopback
        loopback = ["--origin-secondary", f"http://{host}:{port}/assets"]
        if tier:
            loopback += ["--parents.tier", "http://%s:%d health=http://%s:%d/healthz"
                         % (tier.addr["http"] + tier.addr["admin"])]
        d = h.Daemon("meshcdn-edge", [
            "--config", os.path.join(REGIONS_DIR, region, f"{role}.ini"),
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--store", f"{self.tmp}/store-{region}-{role}", "--store-size", "64M",
            "--workers", "1", "--credentials", f"{self.tmp}/cred",
            "--admin.keys", f"{self.tmp}/ops",
            "--origin", f"http://{host}:{port}/assets",
            "--control", f"http://{chost}:{cport}"] + loopback, listeners=("http", "admin"))
        self.addCleanup(d.stop)
        return d

    def test_origin_config_is_used(self):
        status, hdrs, _, _ = h.http("GET", *self.origin.addr["control"], "/healthz")
        self.assertEqual(status, 200)
        # the [cache-control] rule of origin.ini for /assets/models/
        hh = h.sign("HEAD", f"{self.origin.url()}/assets/models/chair/chair.glb", {}, AK, SECRET)
        status, hdrs, _, _ = h.http("HEAD", *self.origin.addr["s3"], "/assets/models/chair/chair.glb", hh)
        self.assertEqual(status, 200)
        self.assertIn("stale-if-error=86400", hdrs["cache-control"][0])

    def test_every_node_config_serves(self):
        path = "/models/chair/chair.glb"
        for region in REGIONS:
            nodes = {"tier": self.start_node(region, "tier")}
            for role in ROLES[1:]:
                nodes[role] = self.start_node(region, role, tier=nodes["tier"])
            for role, d in nodes.items():
                with self.subTest(region=region, role=role):
                    node = read_ini(os.path.join(REGIONS_DIR, region, f"{role}.ini"))["edge"]["node_id"]
                    d.wait_log(rf"msg=ready node={re.escape(node)} region={re.escape(region)} ")
                    s1, h1, b1, c1 = h.http("GET", *d.addr["http"], path)
                    s2, h2, b2, c2 = h.http("GET", *d.addr["http"], path)
                    self.assertEqual((s1, s2), (200, 200))
                    self.assertTrue(c1 and c2)
                    self.assertEqual((b1, b2), (self.body, self.body))
                    self.assertEqual(h1["x-cache"], ["Miss from meshcdn"])
                    self.assertEqual(h2["x-cache"], ["Hit from meshcdn"])
                    self.assertTrue(h2["cache-status"][0].startswith(f"meshcdn-{node}; hit"),
                                    h2["cache-status"])
                    status, _, _, _ = h.http("GET", *d.addr["admin"], "/healthz")
                    self.assertEqual(status, 200)
            # the edges' misses went through the tier: one origin fetch in all
            up = 'meshcdn_edge_upstream_requests_total{upstream="%s",code="200"}'
            self.assertEqual(h.metrics(*nodes["tier"].addr["admin"]).get(up % "origin"), 1)
            for role in ROLES[1:]:
                m = h.metrics(*nodes[role].addr["admin"])
                self.assertEqual((m.get(up % "tier"), m.get(up % "origin", 0)), (1, 0), role)
            for d in nodes.values():
                d.stop()


def syscall_group(name, cache={}):
    """The system calls of a SystemCallFilter= group, nested groups expanded."""
    if name not in cache:
        out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True,
                             text=True, check=True).stdout
        calls = set()
        for line in out.splitlines()[1:]:
            line = line.strip()
            if line and not line.startswith("#"):
                calls |= syscall_group(line) if line.startswith("@") else {line}
        cache[name] = calls
    return cache[name]


def unit_filter(unit_path):
    """The set SystemCallFilter= lines of a unit allow (an allow list, then ~deny lists)."""
    allowed = None
    for line in slurp(unit_path).splitlines():
        if not line.startswith("SystemCallFilter="):
            continue
        value = line.partition("=")[2]
        deny = value.startswith("~")
        calls = set()
        for item in value.lstrip("~").split():
            calls |= syscall_group(item) if item.startswith("@") else {item}
        if deny:
            allowed -= calls
        else:
            allowed = calls if allowed is None else allowed | calls
    return allowed


def traced_calls(path):
    calls = set()
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"^\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()", line)
            if m:
                calls.add(m.group(1) or m.group(2))
    return calls


@unittest.skipUnless(shutil.which("strace") and shutil.which("systemd-analyze"),
                     "needs strace and systemd-analyze")
class SyscallFilter(unittest.TestCase):
    # LeakSanitizer cannot run under ptrace; everything else stays on.
    ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:halt_on_error=1"}

    def traced(self, name, args, listeners):
        trace = f"{self.tmp}/{name}.strace"
        d = h.Daemon(shutil.which("strace"), ["-f", "-qq", "-o", trace, "--", h.binary(name)] + args,
                     listeners=listeners, env=self.ENV, timeout=30)
        return d, trace

    def stop_traced(self, d):
        # strace ignores SIGTERM: the daemon itself gets it, and strace
        # exits with its status.
        with open(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children") as f:
            child = int(f.read().split()[0])
        os.kill(child, signal.SIGTERM)
        d.proc.wait(20)
        self.assertEqual(d.stop(), 0, d.log()[-2000:])

    def setUp(self):
        self.tmp = h.tempdir(self)
        self.root = f"{self.tmp}/root"
        os.makedirs(f"{self.root}/assets/models/chair")
        self.body = os.urandom(600_000)
        with open(f"{self.root}/assets/models/chair/chair.glb", "wb") as f:
            f.write(self.body)
        h.write_keys(f"{self.tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/cred", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/ops", [(OP, OPSECRET)])

    def test_daemons_stay_inside_the_units_filter(self):
        self.origin, otrace = self.traced("meshcdn-origin", [
            "--config", os.path.join(REGIONS_DIR, "origin.ini"),
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
            "--root", self.root, "--keys", f"{self.tmp}/keys",
            "--control.db", f"{self.tmp}/control", "--control.operator_keys", f"{self.tmp}/ops"],
            ("s3", "control"))
        self.addCleanup(self.origin.kill9)
        host, port = self.origin.addr["s3"]
        chost, cport = self.origin.addr["control"]
        edge, etrace = self.traced("meshcdn-edge", [
            "--config", os.path.join(REGIONS_DIR, "us-east-1", "edge-a.ini"),
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--store", f"{self.tmp}/store", "--store-size", "64M", "--workers", "2",
            "--credentials", f"{self.tmp}/cred", "--admin.keys", f"{self.tmp}/ops",
            "--origin", f"http://{host}:{port}/assets", "--control", f"http://{chost}:{cport}"],
            ("http", "admin"))
        self.addCleanup(edge.kill9)
        path = "/models/chair/chair.glb"
        for want in (200, 200):
            status, _, body, _ = h.http("GET", *edge.addr["http"], path)
            self.assertEqual((status, body), (want, self.body))
        status, _, body, _ = h.http("GET", *edge.addr["http"], path, {"Range": "bytes=0-9"})
        self.assertEqual((status, body), (206, self.body[:10]))
        for p in ("/metrics", "/readyz", "/healthz"):
            h.http("GET", *edge.addr["admin"], p)
        put = b"new object" * 100
        hdrs = h.sign("PUT", f"{self.origin.url()}/assets/models/new.glb", {}, AK, SECRET,
                      payload_hash=None, body=put)
        status, _, _, _ = h.http("PUT", host, port, "/assets/models/new.glb", hdrs, body=put)
        self.assertEqual(status, 200)
        h.http("GET", chost, cport, "/metrics")
        self.stop_traced(edge)
        self.stop_traced(self.origin)

        units = os.path.join(TOP, "deploy", "systemd")
        for trace, unit in ((etrace, "meshcdn-edge@.service"), (otrace, "meshcdn-origin.service")):
            allowed = unit_filter(os.path.join(units, unit))
            self.assertGreater(len(allowed), 200)
            used = traced_calls(trace)
            self.assertIn("epoll_wait", used)     # the trace is real
            # execve is strace starting the daemon: systemd does it before the filter applies
            outside = sorted(used - allowed - {"execve"})
            self.assertEqual(outside, [], f"{unit}: calls its SystemCallFilter= refuses")


class InstallLayout(unittest.TestCase):
    def test_cmake_install(self):
        prefix = h.tempdir(self)
        p = subprocess.run(["cmake", "--install", h.BUILD, "--prefix", prefix],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        for b in ("meshcdn-edge", "meshcdn-origin", "meshcdnctl", "meshcdn-load"):
            self.assertTrue(os.access(f"{prefix}/bin/{b}", os.X_OK), b)
        units = f"{prefix}/lib/systemd/system"
        edge_unit = slurp(f"{units}/meshcdn-edge@.service")
        origin_unit = slurp(f"{units}/meshcdn-origin.service")
        self.assertIn(f"ExecStart={prefix}/bin/meshcdn-edge --config /etc/meshcdn/%i.ini\n", edge_unit)
        self.assertIn(f"ExecStart={prefix}/bin/meshcdn-origin --config /etc/meshcdn/origin.ini\n",
                      origin_unit)
        for unit in (edge_unit, origin_unit):
            for want in ("User=meshcdn", "NoNewPrivileges=yes", "ProtectSystem=strict",
                         "ProtectHome=yes", "PrivateTmp=yes", "LimitNOFILE=1048576",
                         "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service",
                         "RestrictAddressFamilies=", "ExecReload=/bin/kill -HUP $MAINPID"):
                self.assertIn(want, unit)
        self.assertIn("StateDirectory=meshcdn/%i", edge_unit)
        examples = f"{prefix}/share/meshcdn/examples"
        cmp = filecmp.dircmp(REGIONS_DIR, examples)
        self.assertEqual(sorted(cmp.left_only + cmp.right_only + cmp.diff_files), [])
        for region in REGIONS:
            sub = filecmp.dircmp(f"{REGIONS_DIR}/{region}", f"{examples}/{region}")
            self.assertEqual(sorted(sub.left_only + sub.right_only + sub.diff_files), [], region)
        for doc in ("README.md", "DESIGN.md", "origin.md", "load.md"):
            self.assertTrue(os.path.isfile(f"{prefix}/share/doc/meshcdn/{doc}"), doc)


if __name__ == "__main__":
    unittest.main()
