"""SIGHUP reloads meshcdn-edge's configuration without dropping connections
(issue #9): behaviors, upstreams (origin, parents), log level; a request in
flight keeps the configuration it started with; an invalid file is refused
and the old configuration stays; restart-only keys are reported. /readyz
follows the upstreams' health. meshcdn-origin reloads its key files and log
level. The access log carries upstream time and range."""

import os
import re
import signal
import socket
import threading
import time
import unittest

import mcharness as h
from scriptorigin import ScriptOrigin

BIG = bytes(range(256)) * (24 << 12)   # 24 MiB


def ttl_of(hd):
    return int(hd["cache-status"][0].split("ttl=")[1].split(";")[0])


class Reload(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.origin = ScriptOrigin()
        self.addCleanup(self.origin.stop)
        self.origin.route("/big.bin", lambda req: (200, {"Cache-Control": "max-age=600"}, BIG))
        for name in ("a", "b", "c", "d"):
            self.origin.route(f"/m/{name}.bin", lambda req: (200, {"Cache-Control": "max-age=600"}, b"mesh"))
        self.conf = f"{self.tmp}/edge.ini"

    def write_conf(self, body):
        with open(self.conf + ".new", "w") as f:
            f.write(body)
        os.replace(self.conf + ".new", self.conf)

    def base_conf(self, behavior="/m/ = max_ttl=100s", log_level="info", extra=""):
        return (f"[edge]\nlog_level = {log_level}\n[origin]\nurl = {self.origin.url}\nsign = none\n"
                f"[behavior]\n{behavior}\n{extra}")

    def edge(self, *extra):
        d = h.Daemon("meshcdn-edge", ["--config", self.conf, "--listen", "127.0.0.1:0",
                                      "--admin", "127.0.0.1:0", "--store", f"{self.tmp}/store",
                                      "--store-size", "256M", "--workers", "2"] + list(extra),
                     listeners=("http", "admin"))
        self.addCleanup(d.stop)
        return d

    def hup(self, d, expect=r"configuration reloaded"):
        """SIGHUP and wait for the next line matching expect; returns it."""
        before = len(re.findall(expect, d.log()))
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = re.findall(r"[^\n]*(?:%s)[^\n]*" % expect, d.log())
            if len(found) > before:
                return found[-1]
            time.sleep(0.02)
        self.fail(f"no {expect!r} after SIGHUP:\n{d.log()[-3000:]}")

    def get(self, d, path, headers=None):
        return h.http("GET", *d.addr["http"], path, headers)

    def test_new_ttl_for_new_requests_while_a_download_goes_on(self):
        self.write_conf(self.base_conf("/m/ = max_ttl=100s\n/big.bin = max_ttl=100s"))
        d = self.edge()
        s, hd, b, _ = self.get(d, "/m/a.bin")
        self.assertEqual((s, b), (200, b"mesh"))
        self.assertTrue(95 <= ttl_of(hd) <= 100, hd["cache-status"])
        # a slow download (a miss: fill, upstream and viewer all under way) on
        # a keep-alive connection, begun before the reload
        host, port = d.addr["http"]
        dl = socket.create_connection((host, port), timeout=30)
        dl.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        dl.sendall(f"GET /big.bin HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        first = dl.recv(65536)
        self.assertTrue(first.startswith(b"HTTP/1.1 200"), first[:100])
        self.write_conf(self.base_conf("/m/ = max_ttl=300s\n/big.bin = max_ttl=300s"))
        line = self.hup(d)
        self.assertIn("behavior:/m/", line)
        self.assertIn("behavior:/big.bin", line)
        s, hd, b, _ = self.get(d, "/m/b.bin")          # a new request: the new TTL
        self.assertEqual((s, b), (200, b"mesh"))
        self.assertTrue(295 <= ttl_of(hd) <= 300, hd["cache-status"])
        s, hd, _, _ = self.get(d, "/m/a.bin")          # stored before: as it was stored
        self.assertLessEqual(ttl_of(hd), 100)
        # the download finishes intact, under the configuration it began with
        buf = bytearray(first)
        while b"\r\n\r\n" not in buf:
            buf.extend(dl.recv(65536))
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        self.assertIn(b"ttl=100", head)
        body = bytearray(rest)
        while len(body) < len(BIG):
            chunk = dl.recv(1 << 20)
            self.assertTrue(chunk, f"connection closed after {len(body)} bytes")
            body.extend(chunk)
        self.assertEqual(bytes(body), BIG)
        # the same keep-alive connection goes on under the new configuration
        dl.sendall(f"GET /m/c.bin HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        s, hd, b, _ = h.read_response(dl)
        self.assertEqual((s, b), (200, b"mesh"))
        self.assertTrue(295 <= ttl_of(hd) <= 300, hd["cache-status"])
        dl.close()
        self.assertEqual(self.origin.count("/big.bin"), 1)

    def test_reloads_under_load_drop_nothing(self):
        """Keep-alive viewers fetch hits and misses while the behaviors and the
        parents list flip on every SIGHUP: no error, no wrong byte."""
        for i in range(200):
            self.origin.route(f"/m/n{i}.bin", lambda req, i=i: (200, {"Cache-Control": "max-age=600"},
                                                               b"%d" % i * 1000))
        confs = [self.base_conf("/m/ = max_ttl=100s"),
                 self.base_conf("/m/ = max_ttl=200s query=none", extra="[tier]\nfail_threshold = 4\n")]
        self.write_conf(confs[0])
        d = self.edge()
        host, port = d.addr["http"]
        errors, done = [], [0]
        stop = threading.Event()

        def viewer(k):
            try:
                s = socket.create_connection((host, port), timeout=10)
                n = 0
                while not stop.is_set():
                    i = (n * 7 + k) % 200
                    s.sendall(f"GET /m/n{i}.bin HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                    st, _, body, complete = h.read_response(s)
                    if st != 200 or body != b"%d" % i * 1000 or not complete:
                        errors.append((i, st, len(body)))
                    n += 1
                done[0] += n
                s.close()
            except OSError as e:
                errors.append(repr(e))

        threads = [threading.Thread(target=viewer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for r in range(10):
            self.write_conf(confs[(r + 1) % 2])
            self.hup(d)
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(20)
        self.assertEqual(errors, [])
        self.assertGreater(done[0], 20)
        self.assertEqual(len(re.findall(r"configuration reloaded", d.log())), 10)

    def test_invalid_file_is_refused_and_the_old_one_stays(self):
        self.write_conf(self.base_conf())
        d = self.edge()
        self.write_conf(self.base_conf("/m/ = max_ttl=lots"))
        line = self.hup(d, r"configuration reload refused")
        self.assertIn("level=error", line)
        self.assertIn("behavior./m/", line)             # names the key
        self.assertIsNone(d.proc.poll())
        s, hd, b, _ = self.get(d, "/m/a.bin")
        self.assertEqual((s, b), (200, b"mesh"))
        self.assertTrue(95 <= ttl_of(hd) <= 100, hd["cache-status"])
        self.write_conf("[edge]\nlog_level = info\n[origin]\nsign = none\n")   # origin.url missing
        self.assertIn("origin.url", self.hup(d, r"configuration reload refused"))
        self.assertEqual(self.get(d, "/m/b.bin")[0], 200)
        # restart-only keys: reported, not applied; the rest is applied
        self.write_conf(f"[edge]\nlog_level = info\nregion = mars-1\nworkers = 3\n[origin]\nurl = {self.origin.url}\n"
                        "sign = none\n[behavior]\n/m/ = max_ttl=200s\n")
        restart = self.hup(d, r"need a restart")
        self.assertIn("edge.region", restart)
        self.assertNotIn("edge.workers", restart)        # the flag wins over the file: unchanged
        self.assertIn("behavior:/m/", d.wait_log(r"configuration reloaded[^\n]*generation=2[^\n]*").group(0))
        s, hd, _, _ = self.get(d, "/m/c.bin")
        self.assertTrue(195 <= ttl_of(hd) <= 200, hd["cache-status"])
        info = [k for k in h.metrics(*d.addr["admin"]) if k.startswith("meshcdn_edge_info{")]
        self.assertIn('region="local"', info[0])

    def test_log_level_and_access_log_fields(self):
        self.write_conf(self.base_conf())
        d = self.edge()
        self.get(d, "/m/a.bin")
        self.get(d, "/m/a.bin", {"Range": "bytes=0-1"})
        lines = [l for l in d.log().splitlines() if "mod=access" in l]
        self.assertEqual(len(lines), 2, lines)
        field = re.compile(r'^ts=\S+ level=info mod=access node=\S+ client=127\.0\.0\.1:\d+ method=GET '
                           r'path="/m/a\.bin" range="(.*)" status=(\d+) bytes=(\d+) result=(\w+) '
                           r'ms=[\d.]+ upstream_ms=(\S+)$')
        miss, hit = field.match(lines[0]), field.match(lines[1])
        self.assertTrue(miss and hit, lines)
        self.assertEqual(miss.groups()[:4], ("-", "200", "4", "miss"))
        float(miss.group(5))                             # a miss waited on the origin
        self.assertEqual(hit.groups(), ("bytes=0-1", "206", "2", "hit", "-"))
        self.write_conf(self.base_conf(log_level="warn"))
        self.assertIn('changed="edge.log_level"', self.hup(d))
        self.get(d, "/m/b.bin")
        time.sleep(0.2)
        self.assertEqual(len([l for l in d.log().splitlines() if "mod=access" in l]), 2)   # quiet now
        self.write_conf(self.base_conf(log_level="debug"))
        d.proc.send_signal(signal.SIGHUP)   # at warn the reload line itself is not written
        deadline = time.monotonic() + 10
        while 'path="/m/c.bin"' not in d.log():
            self.assertLess(time.monotonic(), deadline, "access lines never came back")
            self.get(d, "/m/c.bin")
            time.sleep(0.05)

    def test_parents_list_change_applied(self):
        # a parent tier in front of the same origin
        p = h.Daemon("meshcdn-edge", ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                      "--origin", self.origin.url, "--origin-sign", "none",
                                      "--store", f"{self.tmp}/pstore", "--store-size", "64M",
                                      "--workers", "1", "--node-id", "tier1"], listeners=("http", "admin"))
        self.addCleanup(p.stop)
        ph, pp = p.addr["http"]
        self.write_conf(self.base_conf())
        d = self.edge("--node-id", "child")
        self.get(d, "/m/a.bin")
        self.assertNotIn("meshcdn-tier1", self.origin.last("/m/a.bin").headers.get("cdn-loop", ""))
        self.write_conf(self.base_conf(extra=f"[parents]\ntier1 = http://{ph}:{pp}\n"))
        self.assertIn("parents", self.hup(d))
        s, hd, b, _ = self.get(d, "/m/b.bin")
        self.assertEqual((s, b), (200, b"mesh"))
        self.assertIn("meshcdn-tier1", self.origin.last("/m/b.bin").headers.get("cdn-loop", ""))
        m = h.metrics(*d.addr["admin"])
        self.assertEqual(m.get('meshcdn_edge_parent_healthy{parent="tier1"}'), 1.0)
        self.write_conf(self.base_conf())                  # the parent goes again
        self.assertIn("parents", self.hup(d))
        self.get(d, "/m/c.bin")
        self.assertNotIn("meshcdn-tier1", self.origin.last("/m/c.bin").headers.get("cdn-loop", ""))
        self.assertEqual(self.origin.count("/m/c.bin"), 1)

    def test_readyz_follows_the_upstreams(self):
        self.write_conf(self.base_conf(extra="[tier]\nfail_threshold = 2\nhealth_interval = 200ms\n"))
        d = self.edge()
        admin = d.addr["admin"]
        self.assertEqual(h.http("GET", *admin, "/readyz")[:3:2], (200, b"ready\n"))
        port = self.origin.port
        self.origin.stop()
        for name in ("a", "b", "c"):
            self.assertEqual(self.get(d, f"/m/{name}.bin")[0], 502)
        s, _, b, _ = h.http("GET", *admin, "/readyz")
        self.assertEqual(s, 503)
        self.assertTrue(b.startswith(b"not ready: no upstream healthy"), b)
        self.assertIn(b"origin", b)
        self.assertEqual(h.metrics(*admin).get('meshcdn_edge_origin_healthy{origin="primary"}'), 0.0)
        # the origin comes back on its address: the probe sees it
        back = ScriptOrigin(port=port)
        self.addCleanup(back.stop)
        back.route("/m/d.bin", lambda req: (200, {"Cache-Control": "max-age=600"}, b"back"))
        deadline = time.monotonic() + 10
        while h.http("GET", *admin, "/readyz")[0] != 200:
            self.assertLess(time.monotonic(), deadline, "never ready again")
            time.sleep(0.1)
        self.assertEqual(self.get(d, "/m/d.bin")[2], b"back")
        d.wait_log(r"origin healthy again")


class OriginReload(unittest.TestCase):
    def test_sighup_reloads_the_key_file(self):
        tmp = h.tempdir(self)
        os.makedirs(f"{tmp}/root/bkt")
        with open(f"{tmp}/root/bkt/k.glb", "wb") as f:
            f.write(b"glb")
        keys = h.write_keys(f"{tmp}/keys", [("AK1", "secret-one")])
        with open(f"{tmp}/origin.ini", "w") as f:
            f.write(f"[origin]\nkeys = {keys}\nlog_level = info\n")
        with h.Daemon("meshcdn-origin", ["--config", f"{tmp}/origin.ini", "--root", f"{tmp}/root",
                                         "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
                                         "--control.db", f"{tmp}/ctl"]) as o:
            host, port = o.addr["s3"]

            def get(ak, secret):
                hd = h.sign("GET", f"http://{host}:{port}/bkt/k.glb", {}, ak, secret)
                return h.http("GET", host, port, "/bkt/k.glb", hd)[0]

            self.assertEqual(get("AK1", "secret-one"), 200)
            self.assertEqual(get("AK2", "secret-two"), 403)
            h.write_keys(f"{keys}.new", [("AK2", "secret-two")])
            os.replace(f"{keys}.new", keys)
            o.proc.send_signal(signal.SIGHUP)
            o.wait_log(r"configuration reloaded[^\n]*origin\.keys=1")
            self.assertEqual(get("AK2", "secret-two"), 200)     # the new key works
            self.assertEqual(get("AK1", "secret-one"), 403)     # the removed one is refused
            # a key file that does not load (group-readable) keeps the keys in use
            h.write_keys(f"{keys}.new", [("AK3", "secret-three")], mode=0o644)
            os.replace(f"{keys}.new", keys)
            o.proc.send_signal(signal.SIGHUP)
            o.wait_log(r"configuration reload refused")
            self.assertEqual(get("AK2", "secret-two"), 200)
            self.assertEqual(get("AK3", "secret-three"), 403)
            # log level: warn silences the info access lines
            h.write_keys(keys + ".new", [("AK2", "secret-two")])
            os.replace(keys + ".new", keys)
            with open(f"{tmp}/origin.ini", "w") as f:
                f.write(f"[origin]\nkeys = {keys}\nlog_level = warn\n")
            o.proc.send_signal(signal.SIGHUP)
            o.wait_log(r"configuration reloaded[^\n]*log_level=warn")
            n = o.log().count("\n")
            self.assertEqual(get("AK2", "secret-two"), 200)
            time.sleep(0.2)
            self.assertEqual(o.log().count("\n"), n)


if __name__ == "__main__":
    unittest.main()
