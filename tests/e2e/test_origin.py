"""meshcdn-origin end to end: the real binary on ephemeral loopback ports.

Pins the S3 object API over a directory (issue 3, part 2): signed GET/HEAD with
S3's headers, ranges, conditionals, S3 error XML for auth failures and missing
keys, containment, the control listener's metrics, and start-up errors.
"""

import datetime
import email.utils
import hashlib
import os
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
        self.assert_s3_error(self.req("GET", "/assets/"), 501, "NotImplemented")
        self.assert_s3_error(self.req("GET", "/"), 501, "NotImplemented")
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
        self.assertEqual(resp[1]["allow"], ["GET, HEAD"])

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

if __name__ == "__main__":
    unittest.main()
