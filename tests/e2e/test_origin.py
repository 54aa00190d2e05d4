"""meshcdn-origin end to end: the real binary on ephemeral loopback ports.

Pins the S3 object API over a directory (issue 3, part 2): signed GET/HEAD with
S3's headers, ranges, conditionals, S3 error XML for auth failures and missing
keys, containment, the control listener's metrics, and start-up errors; and
(issue 7) the write side: PUT with body checks, DELETE, bucket listings and
multipart uploads, signed with the harness's own signer.
"""

import datetime
import email.utils
import hashlib
import os
import time
import re
import shutil
import socket
import subprocess
import unittest
import xml.etree.ElementTree as ET

import mcharness as h

AK, SECRET = "AKIDORIGINTEST", "origin/test+secret/KEY"
AK2, SECRET2 = "AKIDSECOND", "second-secret"
ORIGIN = "meshcdn-origin"


def xml_error(body):
    """(Code, Message, Resource, RequestId) of an S3 error document."""
    root = ET.fromstring(body)
    assert root.tag == "Error", body
    return tuple(root.findtext(t) for t in ("Code", "Message", "Resource", "RequestId"))


def build_root(tmp):
    """A small object tree; returns {key path: bytes}."""
    files = {
        "/assets/models/chair.glb": os.urandom(3 * 1024 * 1024 + 123),
        "/assets/models/chair.gltf": b'{"asset": {"version": "2.0"}}\n',
        "/assets/buffers/chair.bin": os.urandom(4096),
        "/assets/textures/wood.png": b"\x89PNG\r\n\x1a\n" + os.urandom(500),
        "/assets/textures/wood.jpg": b"\xff\xd8\xff" + os.urandom(300),
        "/assets/textures/wood.ktx2": b"\xabKTX 20\xbb\r\n\x1a\n" + os.urandom(200),
        "/assets/docs/read me.txt": b"a key with a space\n",
        "/assets/empty.bin": b"",
    }
    for key, data in files.items():
        path = os.path.join(tmp, "root") + key
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    os.makedirs(os.path.join(tmp, "outside"))
    with open(os.path.join(tmp, "outside", "secret.txt"), "wb") as f:
        f.write(b"TOP-SECRET-outside-the-root\n")
    os.symlink("../../outside/secret.txt", os.path.join(tmp, "root", "assets", "evil"))
    os.symlink("models/chair.gltf", os.path.join(tmp, "root", "assets", "alias.gltf"))
    return files


CONFIG = """# origin test config
[origin]
region = us-east-1

[cache-control]
/assets/textures/ = public, max-age=604800, immutable

[surrogate-keys]
/assets/ = assets
/assets/models/ = models chair
"""


class OriginTest(unittest.TestCase):
    """One origin for the whole class; each test names the behaviour it pins."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tempdir(prefix="meshcdn-origin-")
        cls.files = build_root(cls.tmp)
        cls.keys = h.write_keys(os.path.join(cls.tmp, "keys"), [(AK, SECRET), (AK2, SECRET2)])
        cls.ini = os.path.join(cls.tmp, "origin.ini")
        with open(cls.ini, "w") as f:
            f.write(CONFIG)
        cls.d = h.Daemon(ORIGIN, ["--config", cls.ini, "--root", os.path.join(cls.tmp, "root"),
                                  "--keys", cls.keys, "--listen", "127.0.0.1:0",
                                  "--control", "127.0.0.1:0"])
        cls.host, cls.port = cls.d.addr["s3"]

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, True)

    # -- helpers --

    def req(self, method, path, headers=None, signed=True, ak=AK, secret=SECRET, **kw):
        hdrs = dict(headers or {})
        if signed:
            hdrs = h.sign(method, f"http://{self.host}:{self.port}{path}", hdrs, ak, secret, **kw)
        return h.http(method, self.host, self.port, path, hdrs)

    def assert_s3_error(self, resp, status, code):
        st, hd, body, _ = resp
        self.assertEqual(st, status, body)
        self.assertEqual(hd["content-type"], ["application/xml"])
        got_code, _, _, reqid = xml_error(body)
        self.assertEqual(got_code, code)
        self.assertEqual(hd["x-amz-request-id"], [reqid])
        return body

    def mtime(self, key):
        return int(os.stat(os.path.join(self.tmp, "root") + key).st_mtime)

    # -- GET / HEAD --

    def test_signed_get_returns_body_and_s3_headers(self):
        key = "/assets/models/chair.glb"
        st, hd, body, complete = self.req("GET", key)
        self.assertEqual(st, 200)
        self.assertTrue(complete)
        self.assertEqual(body, self.files[key])
        self.assertEqual(hd["etag"], ['"%s"' % hashlib.md5(self.files[key]).hexdigest()])
        self.assertEqual(hd["content-length"], [str(len(self.files[key]))])
        self.assertEqual(hd["content-type"], ["model/gltf-binary"])
        self.assertEqual(hd["cache-control"], ["public, max-age=86400"])
        self.assertEqual(hd["accept-ranges"], ["bytes"])
        self.assertRegex(hd["x-amz-request-id"][0], r"^[0-9A-F]{16}$")
        lm = email.utils.parsedate_to_datetime(hd["last-modified"][0])
        self.assertEqual(int(lm.timestamp()), self.mtime(key))

    def test_content_type_follows_extension(self):
        want = {
            "/assets/models/chair.glb": "model/gltf-binary",
            "/assets/models/chair.gltf": "model/gltf+json",
            "/assets/buffers/chair.bin": "application/octet-stream",
            "/assets/textures/wood.png": "image/png",
            "/assets/textures/wood.jpg": "image/jpeg",
            "/assets/textures/wood.ktx2": "image/ktx2",
        }
        for key, ctype in want.items():
            with self.subTest(key=key):
                st, hd, _, _ = self.req("HEAD", key)
                self.assertEqual(st, 200)
                self.assertEqual(hd["content-type"], [ctype])

    def test_cache_control_and_surrogate_keys_follow_prefix_rules(self):
        st, hd, _, _ = self.req("GET", "/assets/textures/wood.png")
        self.assertEqual(st, 200)
        self.assertEqual(hd["cache-control"], ["public, max-age=604800, immutable"])
        self.assertEqual(hd["surrogate-key"], ["assets"])
        st, hd, _, _ = self.req("GET", "/assets/models/chair.gltf")
        self.assertEqual(hd["cache-control"], ["public, max-age=86400"])
        self.assertEqual(hd["surrogate-key"], ["assets models chair"])

    def test_key_with_space_and_empty_object(self):
        st, _, body, _ = self.req("GET", "/assets/docs/read%20me.txt")
        self.assertEqual((st, body), (200, self.files["/assets/docs/read me.txt"]))
        st, hd, body, complete = self.req("GET", "/assets/empty.bin")
        self.assertEqual((st, body, complete), (200, b"", True))
        self.assertEqual(hd["etag"], ['"d41d8cd98f00b204e9800998ecf8427e"'])

    def test_symlink_inside_root_is_followed(self):
        st, _, body, _ = self.req("GET", "/assets/alias.gltf")
        self.assertEqual((st, body), (200, self.files["/assets/models/chair.gltf"]))

    def test_head_has_get_headers_and_no_body(self):
        key = "/assets/models/chair.glb"
        st, hd, body, _ = self.req("HEAD", key)
        self.assertEqual(st, 200)
        self.assertEqual(body, b"")
        self.assertEqual(hd["content-length"], [str(len(self.files[key]))])
        self.assertEqual(hd["etag"], ['"%s"' % hashlib.md5(self.files[key]).hexdigest()])

    # -- ranges --

    def test_single_range_gives_206_with_exact_bytes(self):
        key = "/assets/models/chair.glb"
        data, size = self.files[key], len(self.files[key])
        for rng, lo, hi in (("bytes=100-199", 100, 199), ("bytes=-10", size - 10, size - 1),
                            (f"bytes={size - 5}-", size - 5, size - 1),
                            ("bytes=1048576-2097151", 1048576, 2097151)):
            with self.subTest(range=rng):
                st, hd, body, complete = self.req("GET", key, {"Range": rng})
                self.assertEqual(st, 206)
                self.assertTrue(complete)
                self.assertEqual(hd["content-range"], [f"bytes {lo}-{hi}/{size}"])
                self.assertEqual(body, data[lo:hi + 1])

    def test_unsatisfiable_range_is_416_invalid_range(self):
        key = "/assets/textures/wood.png"
        size = len(self.files[key])
        resp = self.req("GET", key, {"Range": f"bytes={size}-"})
        self.assert_s3_error(resp, 416, "InvalidRange")
        self.assertEqual(resp[1]["content-range"], [f"bytes */{size}"])

    def test_invalid_or_multiple_ranges_give_the_whole_object(self):
        key = "/assets/textures/wood.png"
        for rng in ("bytes=abc", "bytes=5-1", "bytes=0-1,10-20"):
            with self.subTest(range=rng):
                st, _, body, _ = self.req("GET", key, {"Range": rng})
                self.assertEqual((st, body), (200, self.files[key]))

    # -- conditionals --

    def test_if_none_match_gives_304_with_validators(self):
        key = "/assets/models/chair.gltf"
        etag = self.req("HEAD", key)[1]["etag"][0]
        for inm in (etag, "W/" + etag, f'"nope", {etag}', "*"):
            with self.subTest(inm=inm):
                st, hd, body, _ = self.req("GET", key, {"If-None-Match": inm})
                self.assertEqual((st, body), (304, b""))
                self.assertEqual(hd["etag"], [etag])
                self.assertIn("cache-control", hd)
                self.assertIn("last-modified", hd)
        st, _, _, _ = self.req("GET", key, {"If-None-Match": '"other"'})
        self.assertEqual(st, 200)

    def test_if_modified_since_gives_304_only_when_not_modified(self):
        key = "/assets/models/chair.gltf"
        lm = self.req("HEAD", key)[1]["last-modified"][0]
        self.assertEqual(self.req("GET", key, {"If-Modified-Since": lm})[0], 304)
        st = self.req("GET", key, {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})[0]
        self.assertEqual(st, 200)
        # If-None-Match that fails wins over a matching If-Modified-Since
        st = self.req("GET", key, {"If-Modified-Since": lm, "If-None-Match": '"other"'})[0]
        self.assertEqual(st, 200)

    def test_if_match_mismatch_is_412(self):
        resp = self.req("GET", "/assets/models/chair.gltf", {"If-Match": '"other"'})
        self.assert_s3_error(resp, 412, "PreconditionFailed")

    # -- authentication --

    def test_unsigned_request_is_403_access_denied(self):
        body = self.assert_s3_error(self.req("GET", "/assets/models/chair.gltf", signed=False),
                                    403, "AccessDenied")
        _, _, resource, _ = xml_error(body)
        self.assertEqual(resource, "/assets/models/chair.gltf")

    def test_tampered_signature_is_403_signature_does_not_match(self):
        path = "/assets/models/chair.gltf"
        hdrs = h.sign("GET", f"http://{self.host}:{self.port}{path}", {}, AK, SECRET)
        sig = hdrs["Authorization"][-1]
        hdrs["Authorization"] = hdrs["Authorization"][:-1] + ("0" if sig != "0" else "1")
        resp = h.http("GET", self.host, self.port, path, hdrs)
        self.assert_s3_error(resp, 403, "SignatureDoesNotMatch")
        # and a signature for another path does not open this one
        hdrs = h.sign("GET", f"http://{self.host}:{self.port}/assets/empty.bin", {}, AK, SECRET)
        self.assert_s3_error(h.http("GET", self.host, self.port, path, hdrs), 403,
                             "SignatureDoesNotMatch")

    def test_wrong_secret_is_403_signature_does_not_match(self):
        self.assert_s3_error(self.req("GET", "/assets/empty.bin", secret="not-the-secret"),
                             403, "SignatureDoesNotMatch")

    def test_date_20_minutes_off_is_403_request_time_too_skewed(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        for delta in (-20, 20):
            with self.subTest(minutes=delta):
                resp = self.req("GET", "/assets/empty.bin",
                                amz_date=now + datetime.timedelta(minutes=delta))
                self.assert_s3_error(resp, 403, "RequestTimeTooSkewed")
        self.assertEqual(self.req("GET", "/assets/empty.bin",
                                  amz_date=now - datetime.timedelta(minutes=10))[0], 200)

    def test_unknown_access_key_is_403_invalid_access_key_id(self):
        self.assert_s3_error(self.req("GET", "/assets/empty.bin", ak="AKIDNOBODY"), 403,
                             "InvalidAccessKeyId")

    def test_second_key_in_key_file_works(self):
        self.assertEqual(self.req("GET", "/assets/empty.bin", ak=AK2, secret=SECRET2)[0], 200)

    def test_garbled_authorization_is_400_malformed(self):
        resp = h.http("GET", self.host, self.port, "/assets/empty.bin",
                      {"Authorization": "AWS4-HMAC-SHA256 garbage", "X-Amz-Date": "20240101T000000Z"})
        self.assert_s3_error(resp, 400, "AuthorizationHeaderMalformed")

    # -- not found, containment, methods --

    def test_missing_key_is_404_no_such_key(self):
        body = self.assert_s3_error(self.req("GET", "/assets/models/nope.glb"), 404, "NoSuchKey")
        self.assertEqual(xml_error(body)[2], "/assets/models/nope.glb")
        self.assert_s3_error(self.req("GET", "/assets/models/"), 404, "NoSuchKey")
        self.assert_s3_error(self.req("GET", "/assets/models"), 404, "NoSuchKey")
        self.assert_s3_error(self.req("GET", "/Bad_Bucket/x"), 400, "InvalidBucketName")
        self.assert_s3_error(self.req("GET", "/no-such-bucket/x"), 404, "NoSuchBucket")

    def test_traversal_never_reaches_outside_the_root(self):
        secret = b"TOP-SECRET"
        for path in ("/assets/../../outside/secret.txt",
                     "/../outside/secret.txt",
                     "/assets/%2e%2e/%2e%2e/outside/secret.txt",
                     "/assets/%2E%2e%2F%2e%2E%2Foutside%2Fsecret.txt",
                     "/%2e%2e/outside/secret.txt",
                     "/assets/evil",
                     "/assets//../../outside/secret.txt",
                     "//outside/secret.txt"):
            with self.subTest(path=path):
                st, _, body, _ = self.req("GET", path)
                self.assertIn(st, (400, 404), body)
                self.assertNotIn(secret, body)
                self.assertIn(b"<Error>", body)

    def test_post_is_405_method_not_allowed(self):
        resp = self.req("POST", "/assets/empty.bin")
        self.assert_s3_error(resp, 405, "MethodNotAllowed")
        self.assertEqual(resp[1]["allow"], ["GET, HEAD, PUT, DELETE"])

    def test_error_xml_escapes_the_resource(self):
        path = '/assets/<script>&x".txt'
        st, _, body, _ = self.req("GET", path)
        self.assertEqual(st, 404, body)
        self.assertNotIn(b"<script>", body)
        self.assertEqual(xml_error(body)[2], path)

    # -- control listener, logs --

    def test_healthz_and_metrics_on_control_listener(self):
        chost, cport = self.d.addr["control"]
        st, _, body, _ = h.http("GET", chost, cport, "/healthz")
        self.assertEqual((st, body), (200, b"ok\n"))
        self.assertEqual(h.http("GET", chost, cport, "/nope")[0], 404)
        self.assertEqual(h.http("POST", chost, cport, "/metrics")[0], 405)

    def test_metrics_count_requests_and_auth_failures(self):
        chost, cport = self.d.addr["control"]
        ok = 'meshcdn_origin_requests_total{method="GET",code="200"}'
        missing = 'meshcdn_origin_auth_failures_total{reason="missing"}'
        before = h.metrics(chost, cport)
        for _ in range(3):
            self.assertEqual(self.req("GET", "/assets/models/chair.gltf")[0], 200)
        self.req("GET", "/assets/models/chair.gltf", signed=False)
        after = h.metrics(chost, cport)
        self.assertEqual(after[ok] - before.get(ok, 0), 3)
        self.assertEqual(after[missing] - before[missing], 1)
        size = len(self.files["/assets/models/chair.gltf"])
        self.assertGreaterEqual(after["meshcdn_origin_bytes_sent_total"]
                                - before["meshcdn_origin_bytes_sent_total"], 3 * size)

    def test_access_log_has_one_line_per_request_and_no_signature(self):
        path = "/assets/textures/wood.jpg?probe=access-log"
        hdrs = h.sign("GET", f"http://{self.host}:{self.port}{path}", {}, AK, SECRET)
        self.assertEqual(h.http("GET", self.host, self.port, path, hdrs)[0], 200)
        m = self.d.wait_log(r"mod=access method=GET path=/assets/textures/wood\.jpg status=200 "
                            r"bytes=\d+ key=" + AK)
        self.assertTrue(m)
        signature = hdrs["Authorization"].rsplit("=", 1)[1]
        self.assertNotIn(signature, self.d.log())
        self.assertNotIn(SECRET, self.d.log())

    @unittest.skipUnless(shutil.which("curl"), "curl not installed")
    def test_curl_aws_sigv4_is_accepted(self):
        key = "/assets/models/chair.gltf"
        p = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}",
                            "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{AK}:{SECRET}",
                            f"http://{self.host}:{self.port}{key}"],
                           capture_output=True, timeout=30)
        body, _, code = p.stdout.rpartition(b"\n")
        self.assertEqual(code, b"200", p.stdout + p.stderr)
        self.assertEqual(body, self.files[key])


class OriginStartupTest(unittest.TestCase):
    """Start-up paths: each test runs its own origin (or fails to)."""

    def setUp(self):
        self.tmp = h.tempdir(self)
        self.root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(self.root, "bucket"))
        with open(os.path.join(self.root, "bucket", "k.txt"), "wb") as f:
            f.write(b"anon\n")

    def test_help_and_version_exit_0(self):
        p = h.run(ORIGIN, ["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("--anonymous-read", p.stdout)
        self.assertIn("--listen", p.stdout)
        p = h.run(ORIGIN, ["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"^meshcdn-origin \d+\.\d+\.\d+")

    def test_a_slow_but_steady_download_outlasts_the_timeout(self):
        # libevent's read timeout used to cut a reply after `timeout` in all,
        # however steadily it flowed: 4 GiB meshes need minutes
        data = os.urandom(24 << 20)
        with open(os.path.join(self.root, "bucket", "big.bin"), "wb") as f:
            f.write(data)
        with h.Daemon(ORIGIN, ["--root", self.root, "--anonymous-read", "--origin.timeout", "2s",
                               "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"]) as d:
            host, port = d.addr["s3"]
            with socket.create_connection((host, port)) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
                s.sendall(f"GET /bucket/big.bin HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                got, t0 = bytearray(), time.time()
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    got.extend(chunk)
                    time.sleep(0.01)   # 64 KiB per 10 ms: about 4 s in all
            self.assertGreater(time.time() - t0, 2.5)
            body = bytes(got).split(b"\r\n\r\n", 1)[1]
            self.assertEqual(len(body), len(data), f"{len(body)} of {len(data)} bytes in {time.time() - t0:.1f} s")
            self.assertEqual(body, data)
            # a reader that stops altogether is still cut off after the timeout
            with socket.create_connection((host, port)) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
                s.sendall(f"GET /bucket/big.bin HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                time.sleep(5)
                s.settimeout(10)
                n = 0
                try:
                    while True:
                        chunk = s.recv(1 << 20)
                        if not chunk:
                            break
                        n += len(chunk)
                except (ConnectionResetError, socket.timeout):
                    pass
            self.assertLess(n, len(data))

    def test_anonymous_read_without_keys_serves_unsigned_get(self):
        with h.Daemon(ORIGIN, ["--root", self.root, "--anonymous-read",
                               "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"]) as d:
            host, port = d.addr["s3"]
            st, _, body, _ = h.http("GET", host, port, "/bucket/k.txt")
            self.assertEqual((st, body), (200, b"anon\n"))
            signed = h.sign("GET", f"http://{host}:{port}/bucket/k.txt", {}, AK, SECRET)
            self.assertEqual(h.http("GET", host, port, "/bucket/k.txt", signed)[0], 403)

    def test_anonymous_read_allows_unsigned_get_but_verifies_signed(self):
        keys = h.write_keys(os.path.join(self.tmp, "keys"), [(AK, SECRET)])
        with h.Daemon(ORIGIN, ["--root", self.root, "--keys", keys, "--anonymous-read",
                               "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"]) as d:
            host, port = d.addr["s3"]
            st, _, body, _ = h.http("GET", host, port, "/bucket/k.txt")
            self.assertEqual((st, body), (200, b"anon\n"))
            self.assertEqual(h.http("HEAD", host, port, "/bucket/k.txt")[0], 200)
            self.assertEqual(h.http("POST", host, port, "/bucket/k.txt")[0], 403)
            bad = h.sign("GET", f"http://{host}:{port}/bucket/k.txt", {}, AK, "wrong")
            self.assertEqual(h.http("GET", host, port, "/bucket/k.txt", bad)[0], 403)

    def test_group_readable_key_file_is_refused_naming_the_file(self):
        keys = h.write_keys(os.path.join(self.tmp, "keys"), [(AK, SECRET)], mode=0o640)
        p = h.run(ORIGIN, ["--root", self.root, "--keys", keys, "--listen", "127.0.0.1:0",
                           "--control", "127.0.0.1:0"])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(keys, p.stderr)
        self.assertNotIn("msg=listening", p.stderr)

    def test_bad_config_value_names_file_line_and_key(self):
        ini = os.path.join(self.tmp, "origin.ini")
        with open(ini, "w") as f:
            f.write("[origin]\nregion = us-east-1\netag_cache_entries = lots\n")
        p = h.run(ORIGIN, ["--config", ini, "--root", self.root, "--anonymous-read"])
        self.assertEqual(p.returncode, 2)
        self.assertIn(f"{ini}:3", p.stderr)
        self.assertIn("etag_cache_entries", p.stderr)

    def test_bad_cache_control_rule_names_file_line_and_key(self):
        ini = os.path.join(self.tmp, "origin.ini")
        with open(ini, "w") as f:
            f.write("[cache-control]\n\nassets/ = public\n")
        p = h.run(ORIGIN, ["--config", ini, "--root", self.root, "--anonymous-read"])
        self.assertEqual(p.returncode, 2)
        self.assertIn(f"{ini}:3", p.stderr)
        self.assertIn("cache-control.assets/", p.stderr)

    def test_no_keys_without_anonymous_read_is_refused(self):
        p = h.run(ORIGIN, ["--root", self.root])
        self.assertEqual(p.returncode, 2)
        self.assertIn("--keys", p.stderr)

    def test_missing_root_is_refused(self):
        p = h.run(ORIGIN, ["--root", os.path.join(self.tmp, "nope"), "--anonymous-read"])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("nope", p.stderr)

    def test_sigterm_during_a_large_transfer_exits_cleanly(self):
        with open(os.path.join(self.root, "bucket", "big.glb"), "wb") as f:
            f.write(os.urandom(16 << 20))
        with h.Daemon(ORIGIN, ["--root", self.root, "--anonymous-read",
                               "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"]) as d:
            host, port = d.addr["s3"]
            with socket.create_connection((host, port)) as s:
                s.sendall(b"GET /bucket/big.glb HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(s.recv(1024).startswith(b"HTTP/1.1 200"))
                d.wait_log(r"mod=access method=GET path=/bucket/big\.glb status=200")
                # the client stalls mid-body; SIGTERM must still exit 0 with no leak
                self.assertEqual(d.stop(), 0)

S3NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def md5_b64(data):
    import base64
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def tree(path):
    """Every file name under path (relative), to prove nothing else was written."""
    out = set()
    for d, _, files in os.walk(path):
        for f in files:
            out.add(os.path.relpath(os.path.join(d, f), path))
    return out


class OriginWriteTest(unittest.TestCase):
    """PUT / DELETE / listings / multipart (issue 7). The origin runs with keys
    AND --anonymous-read, so every write test also shows that anonymity never
    covers a write; max_put_size is 1 MiB so the 413 is cheap to reach."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tempdir(prefix="meshcdn-write-")
        cls.root = os.path.join(cls.tmp, "root")
        os.makedirs(os.path.join(cls.root, "bkt"))
        os.makedirs(os.path.join(cls.root, "other-bucket"))
        os.makedirs(os.path.join(cls.tmp, "outside"))
        with open(os.path.join(cls.tmp, "outside", "secret.txt"), "wb") as f:
            f.write(b"TOP-SECRET\n")
        os.symlink("../../outside", os.path.join(cls.root, "bkt", "escape"))
        os.symlink("../../outside/secret.txt", os.path.join(cls.root, "bkt", "leak.txt"))
        with open(os.path.join(cls.root, "bkt", ".meshcdn-tmp-0123456789abcdef"), "wb") as f:
            f.write(b"half-written")
        keys = h.write_keys(os.path.join(cls.tmp, "keys"), [(AK, SECRET)])
        cls.d = h.Daemon(ORIGIN, ["--root", cls.root, "--keys", keys, "--anonymous-read",
                                  "--origin.max_put_size=1M", "--listen", "127.0.0.1:0",
                                  "--control", "127.0.0.1:0"])
        cls.host, cls.port = cls.d.addr["s3"]

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            shutil.rmtree(cls.tmp, True)

    def req(self, method, path, body=None, headers=None, signed=True, payload_hash=None):
        hdrs = dict(headers or {})
        if signed:
            hdrs = h.sign(method, f"http://{self.host}:{self.port}{path}", hdrs, AK, SECRET,
                          payload_hash=payload_hash, body=body)
        return h.http(method, self.host, self.port, path, hdrs, body=body)

    def assert_error(self, resp, status, code):
        st, hd, body, _ = resp
        self.assertEqual(st, status, body)
        self.assertEqual(xml_error(body)[0], code, body)

    def put(self, key, data, **kw):
        st, hd, body, _ = self.req("PUT", f"/bkt/{key}", body=data, **kw)
        self.assertEqual(st, 200, body)
        return hd

    def file(self, key):
        with open(os.path.join(self.root, "bkt", key), "rb") as f:
            return f.read()

    def list_v2(self, query):
        st, _, body, _ = self.req("GET", "/bkt?" + query)
        self.assertEqual(st, 200, body)
        root = ET.fromstring(body)
        keys = [c.findtext(S3NS + "Key") for c in root.findall(S3NS + "Contents")]
        prefixes = [c.findtext(S3NS + "Prefix") for c in root.findall(S3NS + "CommonPrefixes")]
        return root, keys, prefixes

    # -- PUT / DELETE --

    def test_put_then_get_round_trip_with_md5_etag(self):
        data = os.urandom(300 * 1024)
        hd = self.put("rt/deep/model.glb", data)
        self.assertEqual(hd["etag"], [f'"{hashlib.md5(data).hexdigest()}"'])
        st, gh, body, _ = self.req("GET", "/bkt/rt/deep/model.glb")
        self.assertEqual((st, body), (200, data))
        self.assertEqual(gh["etag"], hd["etag"])
        self.assertEqual(self.file("rt/deep/model.glb"), data)
        self.put("rt/deep/model.glb", b"v2", payload_hash="UNSIGNED-PAYLOAD")
        self.assertEqual(self.req("GET", "/bkt/rt/deep/model.glb")[2], b"v2")
        self.assertFalse([f for f in tree(self.root) if ".meshcdn-tmp" in f and "0123" not in f])

    def test_bad_body_hash_is_400_and_nothing_is_written(self):
        # signed correctly, but for another body's hash
        self.assert_error(self.req("PUT", "/bkt/badhash.bin", body=b"body",
                                   payload_hash=hashlib.sha256(b"other").hexdigest()),
                          400, "XAmzContentSHA256Mismatch")
        self.assertFalse(os.path.exists(os.path.join(self.root, "bkt", "badhash.bin")))

    def test_content_md5_is_checked(self):
        self.assert_error(self.req("PUT", "/bkt/md5.bin", body=b"abc",
                                   headers={"Content-MD5": md5_b64(b"abd")}), 400, "BadDigest")
        self.assert_error(self.req("PUT", "/bkt/md5.bin", body=b"abc",
                                   headers={"Content-MD5": "not-base64"}), 400, "InvalidDigest")
        self.assertFalse(os.path.exists(os.path.join(self.root, "bkt", "md5.bin")))
        self.put("md5.bin", b"abc", headers={"Content-MD5": md5_b64(b"abc")})

    def test_unsigned_writes_are_refused_even_with_anonymous_read(self):
        self.assert_error(self.req("PUT", "/bkt/anon.bin", body=b"x", signed=False),
                          403, "AccessDenied")
        self.assertFalse(os.path.exists(os.path.join(self.root, "bkt", "anon.bin")))
        self.put("anon-del.bin", b"keep")
        self.assert_error(self.req("DELETE", "/bkt/anon-del.bin", signed=False), 403,
                          "AccessDenied")
        self.assert_error(self.req("POST", "/bkt/anon.bin?uploads", signed=False), 403,
                          "AccessDenied")
        self.assertEqual(self.file("anon-del.bin"), b"keep")

    def test_streaming_payload_is_501_not_implemented(self):
        self.assert_error(self.req("PUT", "/bkt/chunked.bin", body=b"0;chunk-signature=x\r\n\r\n",
                                   payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
                          501, "NotImplemented")

    def test_body_over_max_put_size_is_413_and_not_written(self):
        # As clients do: headers with Expect: 100-continue, the body only after a 100.
        # The origin answers 413 at once, so no body is ever sent (or read).
        body = b"x" * (2 << 20)
        hdrs = h.sign("PUT", f"http://{self.host}:{self.port}/bkt/huge.bin",
                      {"Expect": "100-continue", "Content-Length": str(len(body))}, AK, SECRET,
                      payload_hash=hashlib.sha256(body).hexdigest())
        head = "PUT /bkt/huge.bin HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        with socket.create_connection((self.host, self.port), timeout=10) as sock:
            sock.sendall(head.encode() + b"\r\n")
            reply = sock.recv(4096)
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply)
        self.assertFalse(os.path.exists(os.path.join(self.root, "bkt", "huge.bin")))

    def test_traversal_keys_on_put_are_refused_and_nothing_lands_outside(self):
        before = tree(self.tmp)
        for path in ("/bkt/../outside/x.txt", "/bkt/%2e%2e/%2e%2e/outside/x.txt",
                     "/bkt/a/../../outside/x.txt", "/bkt/escape/x.txt", "/bkt/escape/new/x.txt",
                     "/bkt//x.txt", "/bkt/.meshcdn-tmp-1/x", "/bkt/a/%2E%2E%2F%2E%2E%2Fx.txt",
                     "/../x.txt", "/bkt/leak.txt/x"):
            with self.subTest(path=path):
                st, _, body, _ = self.req("PUT", path, body=b"EVIL")
                self.assertIn(st, (400, 404), body)
                self.assertIn(b"<Error>", body)
        self.assertEqual(tree(self.tmp), before)
        with open(os.path.join(self.tmp, "outside", "secret.txt"), "rb") as f:
            self.assertEqual(f.read(), b"TOP-SECRET\n")

    def test_put_to_missing_bucket_is_404_no_such_bucket(self):
        self.assert_error(self.req("PUT", "/no-such-bucket/x", body=b"x"), 404, "NoSuchBucket")
        self.assertFalse(os.path.exists(os.path.join(self.root, "no-such-bucket")))

    def test_delete_is_204_and_idempotent(self):
        self.put("del/me.txt", b"bye")
        for _ in range(2):
            st, _, body, _ = self.req("DELETE", "/bkt/del/me.txt")
            self.assertEqual(st, 204, body)
        self.assertFalse(os.path.exists(os.path.join(self.root, "bkt", "del", "me.txt")))
        self.assertEqual(self.req("DELETE", "/bkt/never/was/here")[0], 204)
        self.assert_error(self.req("GET", "/bkt/del/me.txt"), 404, "NoSuchKey")
        self.assert_error(self.req("DELETE", "/no-such-bucket/x"), 404, "NoSuchBucket")
        self.assertEqual(self.req("DELETE", "/bkt/leak.txt")[0], 204)   # the link, not its target
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "outside", "secret.txt")))
        os.symlink("../../outside/secret.txt", os.path.join(self.root, "bkt", "leak.txt"))

    # -- bucket level --

    def test_list_buckets_head_bucket_and_location(self):
        st, _, body, _ = self.req("GET", "/")
        self.assertEqual(st, 200, body)
        names = [b.findtext(S3NS + "Name") for b in ET.fromstring(body).iter(S3NS + "Bucket")]
        self.assertEqual(names, ["bkt", "other-bucket"])
        self.assertEqual(self.req("HEAD", "/bkt")[0], 200)
        self.assertEqual(self.req("HEAD", "/nope-bucket")[0], 404)
        st, _, body, _ = self.req("GET", "/bkt?location")
        self.assertEqual(st, 200, body)
        self.assertIn(b"LocationConstraint", body)
        self.assert_error(self.req("GET", "/bkt?acl"), 501, "NotImplemented")

    def test_list_v2_prefix_delimiter_and_pagination(self):
        for k in ("ls/a.txt", "ls/b/1.txt", "ls/b/2.txt", "ls/c d.txt", "ls/d/x/y.txt",
                  "ls/e.txt", "lsx.txt"):
            # a space in a request target is invalid HTTP (RFC 9112 3.2): sent encoded
            self.put(k.replace(" ", "%20"), k.encode())
        root, keys, prefixes = self.list_v2("list-type=2&prefix=ls%2F&delimiter=%2F")
        self.assertEqual(keys, ["ls/a.txt", "ls/c d.txt", "ls/e.txt"])
        self.assertEqual(prefixes, ["ls/b/", "ls/d/"])
        self.assertEqual(root.findtext(S3NS + "KeyCount"), "5")
        self.assertEqual(root.findtext(S3NS + "IsTruncated"), "false")
        c = root.find(S3NS + "Contents")
        self.assertEqual(c.findtext(S3NS + "Size"), "8")
        self.assertEqual(c.findtext(S3NS + "ETag"), f'"{hashlib.md5(b"ls/a.txt").hexdigest()}"')
        self.assertEqual(c.findtext(S3NS + "StorageClass"), "STANDARD")
        _, keys, _ = self.list_v2("list-type=2&prefix=ls%2F")
        self.assertEqual(keys, ["ls/a.txt", "ls/b/1.txt", "ls/b/2.txt", "ls/c d.txt",
                                "ls/d/x/y.txt", "ls/e.txt"])
        seen, token = [], None
        for _ in range(10):
            q = "list-type=2&prefix=ls%2F&delimiter=%2F&max-keys=2"
            if token:
                q += "&continuation-token=" + token
            root, keys, prefixes = self.list_v2(q)
            seen += sorted(keys + prefixes)
            token = root.findtext(S3NS + "NextContinuationToken")
            if root.findtext(S3NS + "IsTruncated") == "false":
                break
        self.assertEqual(seen, ["ls/a.txt", "ls/b/", "ls/c d.txt", "ls/d/", "ls/e.txt"])
        _, keys, _ = self.list_v2("list-type=2&prefix=ls%2F&start-after=ls%2Fc%20d.txt")
        self.assertEqual(keys, ["ls/d/x/y.txt", "ls/e.txt"])
        root, keys, prefixes = self.list_v2("list-type=2&prefix=nothing-here%2F")
        self.assertEqual((keys, prefixes, root.findtext(S3NS + "KeyCount")), ([], [], "0"))

    def test_list_never_shows_temporaries_symlinks_or_the_upload_area(self):
        st, _, body, _ = self.req("POST", "/bkt/hidden.bin?uploads")
        self.assertEqual(st, 200, body)
        _, keys, prefixes = self.list_v2("list-type=2")
        self.assertFalse([k for k in keys if "meshcdn" in k or k.startswith("leak")
                          or k.startswith("escape")], keys)
        self.assertEqual(prefixes, [])
        st, _, body, _ = self.req("GET", "/")
        self.assertNotIn(b".meshcdn-", body)
        self.assert_error(self.req("GET", "/bkt/.meshcdn-tmp-0123456789abcdef"), 404, "NoSuchKey")

    def test_list_v1_marker_and_url_encoding(self):
        for k in ("v1/a+b.txt", "v1/b.txt", "v1/c.txt"):
            self.put(k, b"x")
        st, _, body, _ = self.req("GET", "/bkt?prefix=v1%2F&max-keys=1")
        root = ET.fromstring(body)
        self.assertEqual(root.findtext(S3NS + "IsTruncated"), "true")
        self.assertEqual([c.findtext(S3NS + "Key") for c in root.iter(S3NS + "Contents")],
                         ["v1/a+b.txt"])
        st, _, body, _ = self.req("GET", "/bkt?prefix=v1%2F&marker=v1%2Fa%2Bb.txt")
        self.assertEqual([c.findtext(S3NS + "Key") for c in ET.fromstring(body).iter(S3NS + "Contents")],
                         ["v1/b.txt", "v1/c.txt"])
        _, keys, _ = self.list_v2("list-type=2&prefix=v1%2F&encoding-type=url&max-keys=1")
        self.assertEqual(keys, ["v1/a%2Bb.txt"])

    # -- multipart --

    def mpu(self, key):
        st, _, body, _ = self.req("POST", f"/bkt/{key}?uploads")
        self.assertEqual(st, 200, body)
        return ET.fromstring(body).findtext(S3NS + "UploadId")

    def part(self, key, uid, n, data):
        st, hd, body, _ = self.req("PUT", f"/bkt/{key}?partNumber={n}&uploadId={uid}", body=data)
        self.assertEqual(st, 200, body)
        return hd["etag"][0]

    @staticmethod
    def complete_xml(parts):
        return ("<CompleteMultipartUpload>" + "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in parts)
            + "</CompleteMultipartUpload>").encode()

    def test_multipart_upload_assembles_parts_with_s3_etag(self):
        p1, p2 = os.urandom(700 * 1024), os.urandom(100 * 1024)
        uid = self.mpu("mp/big.glb")
        e2 = self.part("mp/big.glb", uid, 2, p2)
        e1 = self.part("mp/big.glb", uid, 1, p1)
        self.assertFalse(os.path.exists(os.path.join(self.root, "bkt", "mp", "big.glb")))
        body = self.complete_xml([(1, e1), (2, e2.replace('"', "&quot;"))])
        st, _, rb, _ = self.req("POST", f"/bkt/mp/big.glb?uploadId={uid}", body=body)
        self.assertEqual(st, 200, rb)
        want = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest()
        self.assertEqual(ET.fromstring(rb).findtext(S3NS + "ETag"), f'"{want}-2"')
        self.assertEqual(self.req("GET", "/bkt/mp/big.glb")[2], p1 + p2)
        self.assertFalse(os.listdir(os.path.join(self.root, ".meshcdn-uploads")) and
                         uid in os.listdir(os.path.join(self.root, ".meshcdn-uploads")))

    def test_multipart_errors(self):
        uid = self.mpu("mp/err.bin")
        e1 = self.part("mp/err.bin", uid, 1, b"one")
        e2 = self.part("mp/err.bin", uid, 2, b"two")
        path = f"/bkt/mp/err.bin?uploadId={uid}"
        self.assert_error(self.req("POST", path, body=self.complete_xml([(2, e2), (1, e1)])),
                          400, "InvalidPartOrder")
        self.assert_error(self.req("POST", path, body=self.complete_xml([(1, e2), (2, e2)])),
                          400, "InvalidPart")
        self.assert_error(self.req("POST", path, body=self.complete_xml([(1, e1), (3, e2)])),
                          400, "InvalidPart")
        self.assert_error(self.req("POST", path, body=b"<nope/>"), 400, "MalformedXML")
        self.assert_error(self.req("POST", f"/bkt/mp/other.bin?uploadId={uid}",
                                   body=self.complete_xml([(1, e1)])), 404, "NoSuchUpload")
        self.assert_error(self.req("PUT", "/bkt/mp/err.bin?partNumber=1&uploadId=../../bkt",
                                   body=b"x"), 404, "NoSuchUpload")
        self.assert_error(self.req("PUT", f"/bkt/mp/err.bin?partNumber=0&uploadId={uid}",
                                   body=b"x"), 400, "InvalidArgument")
        self.assertFalse(os.path.exists(os.path.join(self.root, "bkt", "mp", "err.bin")))
        self.assertEqual(self.req("DELETE", path)[0], 204)
        self.assert_error(self.req("PUT", f"/bkt/mp/err.bin?partNumber=1&uploadId={uid}",
                                   body=b"x"), 404, "NoSuchUpload")
        self.assert_error(self.req("DELETE", path), 404, "NoSuchUpload")


class OriginDrain(unittest.TestCase):
    """SIGTERM lets a response being written finish (an edge fetching from an
    origin that is taken out must not get a body cut short); found by
    deploy/lab (test_lab.py), where tiers' fills were cut at the origin's stop."""

    def test_sigterm_finishes_the_response_in_progress(self):
        import socket
        import signal
        tmp = h.tempdir(self)
        os.makedirs(f"{tmp}/root/bkt")
        body = os.urandom(24 << 20)            # more than the socket buffers hold
        with open(f"{tmp}/root/bkt/big.bin", "wb") as f:
            f.write(body)
        keys = h.write_keys(f"{tmp}/keys", [(AK, SECRET)])
        d = h.Daemon(ORIGIN, ["--root", f"{tmp}/root", "--keys", keys, "--listen", "127.0.0.1:0",
                              "--control", "127.0.0.1:0"])
        self.addCleanup(d.stop)
        host, port = d.addr["s3"]
        hdrs = h.sign("GET", f"http://{host}:{port}/bkt/big.bin", {}, AK, SECRET)
        s = socket.create_connection((host, port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(("GET /bkt/big.bin HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
                   + "Connection: close\r\n\r\n").encode())
        first = s.recv(65536)
        self.assertTrue(first.startswith(b"HTTP/1.1 200"), first[:100])
        d.proc.send_signal(signal.SIGTERM)
        d.wait_log(r"msg=draining")
        # new connections are refused while it drains
        with self.assertRaises(OSError):
            socket.create_connection((host, port), timeout=2).close()
        got = bytearray(first)
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        s.close()
        self.assertEqual(bytes(got).partition(b"\r\n\r\n")[2], body)
        self.assertEqual(d.proc.wait(10), 0)


if __name__ == "__main__":
    unittest.main()
