"""meshcdn-edge and TLS: viewers over HTTPS (versions, ALPN, resumption, a
certificate swapped on SIGHUP under an open download), origins over HTTPS
(verified against the configured CA, refused otherwise), and temporary
credentials replaced while the edge runs.

Every key and certificate is made at test time with the openssl CLI in a
temporary directory: a test CA, leaves for 127.0.0.1 with serials 0x1001 and
0x2002, a leaf with the wrong name, and a second CA nobody trusts."""

import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

import mcharness as h

AK, SECRET = "AKIDTLSTEST", "tls-test-secret-0123456789"
BUCKET = "assets"
OPENSSL = shutil.which("openssl")


class PKI:
    """The throwaway CA and certificates, shared by the module's tests."""
    dir = None

    @classmethod
    def make(cls):
        cls.dir = h.tempdir(None, "meshcdn-e2e-pki-")
        d = cls.dir

        def ossl(*args):
            p = subprocess.run([OPENSSL] + list(args), cwd=d, capture_output=True, text=True)
            assert p.returncode == 0, f"openssl {' '.join(args)}: {p.stderr}"

        def ca(name):
            ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                 "-subj", f"/CN=meshcdn test {name}")

        def leaf(name, ca_name, serial, san):
            with open(os.path.join(d, f"{name}.ext"), "w") as f:
                f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
            ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
            ossl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca_name}.pem", "-CAkey",
                 f"{ca_name}.key", "-set_serial", str(serial), "-days", "2",
                 "-extfile", f"{name}.ext", "-out", f"{name}.pem")

        ca("ca")
        ca("rogue")
        leaf("one", "ca", 0x1001, "IP:127.0.0.1,DNS:localhost")
        leaf("two", "ca", 0x2002, "IP:127.0.0.1,DNS:localhost")
        leaf("wrongname", "ca", 0x3003, "DNS:wrong.example")
        leaf("rogueleaf", "rogue", 0x4004, "IP:127.0.0.1,DNS:localhost")

    @classmethod
    def path(cls, name):
        return os.path.join(cls.dir, name)


def setUpModule():
    if not OPENSSL:
        raise unittest.SkipTest("the openssl CLI is not installed (deploy/deps.sh --test)")
    PKI.make()


def tearDownModule():
    if PKI.dir and os.environ.get("MESHCDN_KEEP_TMP") != "1":
        shutil.rmtree(PKI.dir, True)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def client_ctx(version=None, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(PKI.path("ca.pem"))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def read_response(s, head_only=False):
    """(status, {lower name: value}, body) of one response framed by Content-Length."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the end of the head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for line in lines[1:]:
        n, _, v = line.partition(":")
        hdrs[n.strip().lower()] = v.strip()
    if head_only:
        return status, hdrs, body
    want = int(hdrs.get("content-length", "0"))
    while len(body) < want:
        chunk = s.recv(min(1 << 20, want - len(body)))
        if not chunk:
            break
        body += chunk
    return status, hdrs, body


def connect(port, ctx, session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)


class TLSInfo:
    """What a closed TLS connection negotiated."""

    def __init__(self, s):
        self.version = s.version()
        self.cipher = s.cipher()[0]
        self.alpn = s.selected_alpn_protocol()
        self.session = s.session
        self.session_reused = s.session_reused
        self.serial = serial(s)


def https_get(port, path, ctx, session=None):
    """One GET over a fresh TLS connection: (status, headers, body, TLSInfo)."""
    s = connect(port, ctx, session)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    status, hdrs, body = read_response(s)
    info = TLSInfo(s)   # the session (and its TLS 1.3 ticket) is known by now
    s.close()
    return status, hdrs, body, info


def serial(sslsock):
    return int(sslsock.getpeercert()["serialNumber"], 16)


def s_client(port, *args, stdin=b""):
    p = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", "localhost"] + list(args),
                       input=stdin, capture_output=True, timeout=20)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


class ViewerTLS(unittest.TestCase):
    """A signed meshcdn-origin and an edge with HTTP and HTTPS listeners."""

    def setUp(self):
        self.tmp = h.tempdir(self)
        root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(root, BUCKET))
        self.small = os.urandom(300 * 1024)
        self.big = os.urandom(24 << 20)
        with open(os.path.join(root, BUCKET, "small.glb"), "wb") as f:
            f.write(self.small)
        with open(os.path.join(root, BUCKET, "big.glb"), "wb") as f:
            f.write(self.big)
        h.write_keys(f"{self.tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/cred", [(AK, SECRET)])
        self.origin = h.Daemon("meshcdn-origin", ["--root", root, "--keys", f"{self.tmp}/keys",
                                                  "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
                               timeout=30)
        self.addCleanup(self.origin.stop)
        # the edge reads the certificate from these paths; tests swap their contents
        self.cert, self.key = f"{self.tmp}/edge.pem", f"{self.tmp}/edge.key"
        shutil.copy(PKI.path("one.pem"), self.cert)
        shutil.copy(PKI.path("one.key"), self.key)
        self.edge = h.Daemon("meshcdn-edge", [
            "--origin", self.origin.url("s3") + "/" + BUCKET, "--credentials", f"{self.tmp}/cred",
            "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--store", f"{self.tmp}/store", "--store-size", "256M", "--workers", "2",
            "--node-id", "tls-e2e", f"--tls.cert={self.cert}", f"--tls.key={self.key}"],
            listeners=("http", "https", "admin"), timeout=30)
        self.addCleanup(self.edge.stop)
        self.port = self.edge.addr["https"][1]

    def metric(self, name):
        return h.metrics(*self.edge.addr["admin"]).get(name, 0)

    def test_https_miss_then_hit_over_tls13_and_tls12_same_cache_headers_as_http(self):
        st, hd, body, s = https_get(self.port, "/small.glb", client_ctx(ssl.TLSVersion.TLSv1_3))
        self.assertEqual(st, 200)
        self.assertEqual(s.version, "TLSv1.3")
        self.assertEqual(sha256(body), sha256(self.small))
        self.assertEqual(hd["x-cache"], "Miss from meshcdn")
        self.assertIn("fwd=miss", hd["cache-status"])
        st, hd, body, s = https_get(self.port, "/small.glb", client_ctx(ssl.TLSVersion.TLSv1_2))
        self.assertEqual((st, s.version), (200, "TLSv1.2"))
        self.assertIn("ECDHE", s.cipher)            # forward secrecy
        self.assertRegex(s.cipher, "GCM|CHACHA20")   # AEAD only
        self.assertEqual(sha256(body), sha256(self.small))
        self.assertEqual(hd["x-cache"], "Hit from meshcdn")
        tls_status = re.sub(r"ttl=\d+", "ttl=N", hd["cache-status"])
        # the same object over plain HTTP carries the same cache headers
        host, port = self.edge.addr["http"]
        st2, hd2, body2, _ = h.http("GET", host, port, "/small.glb")
        self.assertEqual(st2, 200)
        self.assertEqual(hd2["x-cache"][0], hd["x-cache"])
        self.assertEqual(re.sub(r"ttl=\d+", "ttl=N", hd2["cache-status"][0]), tls_status)
        self.assertEqual(body2, body)
        # keep-alive over TLS: two requests on one connection
        s = connect(self.port, client_ctx())
        for _ in range(2):
            s.sendall(b"GET /small.glb HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            st, hd, body = read_response(s)
            self.assertEqual((st, hd["x-cache"], len(body)), (200, "Hit from meshcdn", len(self.small)))
        s.close()

    def test_tls11_and_tls10_refused_by_the_server(self):
        for flag in ("-tls1_1", "-tls1"):
            # SECLEVEL=0 lets this client offer the old versions; the refusal
            # must come from the edge as a protocol_version alert
            rc, out = s_client(self.port, flag, "-cipher", "DEFAULT@SECLEVEL=0")
            self.assertNotEqual(rc, 0, out)
            self.assertIn("alert protocol version", out)
        rc, out = s_client(self.port, "-tls1_2", "-CAfile", PKI.path("ca.pem"))
        self.assertEqual(rc, 0, out)
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertEqual(self.metric("meshcdn_edge_tls_handshake_failures_total"), 2)

    def test_alpn_http11_negotiated_and_h2_only_refused(self):
        st, _, _, s = https_get(self.port, "/small.glb", client_ctx(alpn=["h2", "http/1.1"]))
        self.assertEqual((st, s.alpn), (200, "http/1.1"))
        st, _, _, s = https_get(self.port, "/small.glb", client_ctx())
        self.assertEqual((st, s.alpn), (200, None))
        with self.assertRaisesRegex(ssl.SSLError, "(?i)no.application.protocol"):
            https_get(self.port, "/small.glb", client_ctx(alpn=["h2"]))

    def test_session_resumption_tls13_and_tls12(self):
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx = client_ctx(version)
            _, _, _, s1 = https_get(self.port, "/small.glb", ctx)
            self.assertFalse(s1.session_reused)
            self.assertIsNotNone(s1.session)
            st, _, body, s2 = https_get(self.port, "/small.glb", ctx, session=s1.session)
            self.assertEqual(st, 200)
            self.assertTrue(s2.session_reused, f"{version}: not resumed")
            self.assertEqual(len(body), len(self.small))
        # and as the openssl CLI sees it: a saved TLS 1.3 session is resumed
        sess = f"{self.tmp}/sess.pem"
        req = b"GET /small.glb HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        rc, out = s_client(self.port, "-CAfile", PKI.path("ca.pem"), "-ign_eof", "-sess_out", sess, stdin=req)
        self.assertEqual(rc, 0, out)
        self.assertIn("New, TLSv1.3", out)
        rc, out = s_client(self.port, "-CAfile", PKI.path("ca.pem"), "-ign_eof", "-sess_in", sess, stdin=req)
        self.assertEqual(rc, 0, out)
        self.assertIn("Reused, TLSv1.3", out)
        # TLS 1.2 by the session cache (session ids) too
        rc, out = s_client(self.port, "-CAfile", PKI.path("ca.pem"), "-tls1_2", "-no_ticket", "-reconnect")
        self.assertIn("Reused, TLSv1.2", out)
        # operators see the same in /metrics
        self.assertGreaterEqual(self.metric('meshcdn_edge_tls_handshakes_total{resumed="yes"}'), 4)
        self.assertGreaterEqual(self.metric('meshcdn_edge_tls_handshakes_total{resumed="no"}'), 4)

    def test_sighup_swaps_certificate_and_open_download_completes(self):
        host, port = self.edge.addr["http"]
        st, _, body, _ = h.http("GET", host, port, "/big.glb")   # stored: the download is a hit
        self.assertEqual((st, len(body)), (200, len(self.big)))
        ctx = client_ctx()
        old = connect(self.port, ctx)
        self.assertEqual(serial(old), 0x1001)
        old.sendall(b"GET /big.glb HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        st, hd, got = read_response(old, head_only=True)
        self.assertEqual(st, 200)
        while len(got) < (1 << 20):
            got += old.recv(65536)
        # the client stops reading; the edge holds the rest in its buffers
        shutil.copy(PKI.path("two.pem"), self.cert)
        shutil.copy(PKI.path("two.key"), self.key)
        self.edge.proc.send_signal(signal.SIGHUP)
        self.edge.wait_log(r'msg="TLS certificate reloaded".*generation=1')
        st, hd2, body, new = https_get(self.port, "/small.glb", ctx)
        self.assertEqual(new.serial, 0x2002)
        self.assertEqual((st, hd2["x-cache"]), (200, "Miss from meshcdn"))
        # a broken certificate file on the next SIGHUP keeps the current one
        with open(self.cert, "w") as f:
            f.write("not a certificate\n")
        self.edge.proc.send_signal(signal.SIGHUP)
        self.edge.wait_log(r"TLS reload failed; the previous certificate stays in use")
        _, _, _, again = https_get(self.port, "/small.glb", ctx)
        self.assertEqual(again.serial, 0x2002)
        self.assertEqual(self.metric("meshcdn_edge_tls_reloads_total"), 1)
        # the download begun before the swap finishes intact, slowly
        self.assertEqual(serial(old), 0x1001)
        want = int(hd["content-length"])
        while len(got) < want:
            chunk = old.recv(256 * 1024)
            if not chunk:
                break
            got += chunk
            time.sleep(0.002)
        old.close()
        self.assertEqual(len(got), len(self.big))
        self.assertEqual(sha256(got), sha256(self.big))


# ---- origins over HTTPS ---------------------------------------------------------

class _OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.seen.append({k.lower(): v for k, v in self.headers.items()} | {":path": self.path})
        body = srv.objects.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        ext = self.path.rsplit(".", 1)[-1]
        self.send_header("Content-Type", {"gltf": "model/gltf+json", "glb": "model/gltf-binary"}
                         .get(ext, "application/octet-stream"))
        self.send_header("Cache-Control", "max-age=600")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class PyOrigin:
    """A plain HTTP origin in this process, optionally behind TLS with the
    given certificate; records every request's headers."""

    def __init__(self, test, cert=None):
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OriginHandler)
        self.srv.daemon_threads = True
        self.srv.lock = threading.Lock()
        self.srv.seen = []
        self.srv.objects = {}
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(PKI.path(f"{cert}.pem"), PKI.path(f"{cert}.key"))
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()
        test.addCleanup(self.stop)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()

    def put(self, path, body):
        self.srv.objects[path] = body

    @property
    def seen(self):
        with self.srv.lock:
            return list(self.srv.seen)


class OriginTLS(unittest.TestCase):

    def setUp(self):
        self.tmp = h.tempdir(self)
        self.n = 0

    def edge(self, origin_url, *extra):
        self.n += 1
        d = h.Daemon("meshcdn-edge", [
            "--origin", origin_url, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--store", f"{self.tmp}/store{self.n}", "--store-size", "64M", "--workers", "1",
            "--node-id", "tls-e2e"] + list(extra), listeners=("http", "admin"), timeout=30)
        self.addCleanup(d.stop)
        return d.addr["http"], d

    def test_https_origin_verified_with_the_configured_ca(self):
        o = PyOrigin(self, cert="one")
        body = os.urandom(200 * 1024)
        o.put(f"/{BUCKET}/m.glb", body)
        (host, port), _ = self.edge(f"https://127.0.0.1:{o.port}/{BUCKET}", "--origin-sign", "none",
                                    f"--origin.ca_file={PKI.path('ca.pem')}")
        st, hd, got, _ = h.http("GET", host, port, "/m.glb")
        self.assertEqual((st, hd["x-cache"][0]), (200, "Miss from meshcdn"))
        self.assertEqual(sha256(got), sha256(body))
        st, hd, got, _ = h.http("GET", host, port, "/m.glb")
        self.assertEqual((st, hd["x-cache"][0], len(got)), (200, "Hit from meshcdn", len(body)))
        self.assertEqual(len(o.seen), 1)
        # a CA directory (hashed names, as c_rehash makes) works the same
        cadir = f"{self.tmp}/cadir"
        os.mkdir(cadir)
        p = subprocess.run([OPENSSL, "x509", "-hash", "-noout", "-in", PKI.path("ca.pem")],
                           capture_output=True, text=True, check=True)
        shutil.copy(PKI.path("ca.pem"), f"{cadir}/{p.stdout.strip()}.0")
        (host, port), _ = self.edge(f"https://127.0.0.1:{o.port}/{BUCKET}", "--origin-sign", "none",
                                    f"--origin.ca_file={PKI.path('rogue.pem')}",
                                    f"--origin.ca_dir={cadir}")
        st, _, got, _ = h.http("GET", host, port, "/m.glb")
        self.assertEqual((st, len(got)), (200, len(body)))

    def test_https_origin_preconnects_for_gltf_prefetch(self):
        """[prefetch] preconnect pre-opens TCP only: curl does TLS (verified) on
        the sockets it is handed, and the dependencies arrive intact."""
        o = PyOrigin(self, cert="one")
        deps = {"a.bin": os.urandom(40000), "b.png": os.urandom(20000), "c.png": os.urandom(30000)}
        for n, b in deps.items():
            o.put(f"/{BUCKET}/m/{n}", b)
        o.put(f"/{BUCKET}/m/a.gltf", json.dumps({"asset": {"version": "2.0"},
                                                 "buffers": [{"uri": "a.bin", "byteLength": 40000}],
                                                 "images": [{"uri": "b.png"}, {"uri": "c.png"}]}).encode())
        (host, port), d = self.edge(f"https://127.0.0.1:{o.port}/{BUCKET}", "--origin-sign", "none",
                                    f"--origin.ca_file={PKI.path('ca.pem')}", "--cache.prefetch", "on",
                                    "--prefetch.preconnect", "2", "--cache.mesh_validation", "off")
        st, _, _, _ = h.http("GET", host, port, "/m/a.gltf")
        self.assertEqual(st, 200)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = h.metrics(*d.addr["admin"])
            if m.get("meshcdn_edge_prefetch_completed_total", 0) >= 3 and m.get("meshcdn_edge_fills_inflight", 1) == 0:
                break
            time.sleep(0.05)
        self.assertEqual(m["meshcdn_edge_prefetch_completed_total"], 3)
        self.assertGreaterEqual(m['meshcdn_edge_upstream_preconnects_total{result="used"}'], 1)
        self.assertEqual(m['meshcdn_edge_upstream_preconnects_total{result="failed"}'], 0)
        for n, b in deps.items():
            st, hd, got, _ = h.http("GET", host, port, f"/m/{n}")
            self.assertEqual((st, hd["x-cache"][0]), (200, "Hit from meshcdn"), n)
            self.assertEqual(sha256(got), sha256(b), n)
        self.assertEqual(len(o.seen), 4)

    def test_https_origin_with_unknown_ca_or_wrong_name_refused(self):
        body = os.urandom(50 * 1024)
        for cert, why in (("rogueleaf", "unknown CA"), ("wrongname", "wrong host name")):
            with self.subTest(why):
                o = PyOrigin(self, cert=cert)
                o.put(f"/{BUCKET}/m.glb", body)
                (host, port), d = self.edge(f"https://127.0.0.1:{o.port}/{BUCKET}", "--origin-sign", "none",
                                            f"--origin.ca_file={PKI.path('ca.pem')}")
                st, _, got, _ = h.http("GET", host, port, "/m.glb")
                self.assertEqual(st, 502)
                self.assertNotEqual(got, body)
                self.assertEqual(o.seen, [])              # no request reached it
                d.wait_log(r'mod=upstream msg="fetch failed".*error="(SSL peer certificate|SSL: no alternative)')
        # verification is on by default (the system's CAs do not know ours)
        o = PyOrigin(self, cert="one")
        o.put(f"/{BUCKET}/m.glb", body)
        (host, port), _ = self.edge(f"https://127.0.0.1:{o.port}/{BUCKET}", "--origin-sign", "none")
        self.assertEqual(h.http("GET", host, port, "/m.glb")[0], 502)
        # and is off only when asked for, by name
        (host, port), d = self.edge(f"https://127.0.0.1:{o.port}/{BUCKET}", "--origin-sign", "none",
                                    "--origin.insecure=true")
        st, _, got, _ = h.http("GET", host, port, "/m.glb")
        self.assertEqual((st, got), (200, body))
        self.assertIn("origin.insecure: the origin's TLS certificate is NOT verified", d.log())

    def test_temporary_credentials_replaced_while_running(self):
        o = PyOrigin(self)
        for k in ("a", "b", "c"):
            o.put(f"/{BUCKET}/{k}.glb", os.urandom(10 * 1024))
        cred = f"{self.tmp}/cred"

        def write_cred(text, mode=0o600):
            tmp = cred + ".new"
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, mode)
            os.rename(tmp, cred)   # what a credentials agent does

        write_cred("AKIDTEMPONE secret-one token/one+==\n")
        (host, port), d = self.edge(f"http://127.0.0.1:{o.port}/{BUCKET}", "--credentials", cred,
                                    "--origin.region=eu-west-1")

        def check_signed(req, ak, secret, token):
            self.assertEqual(req.get("x-amz-security-token"), token)
            signed = {"Host": req["host"], "X-Amz-Date": req["x-amz-date"],
                      "X-Amz-Content-Sha256": req["x-amz-content-sha256"]}
            if token:
                signed["X-Amz-Security-Token"] = token
            want = h.sign("GET", f"http://{req['host']}{req[':path']}", signed, ak, secret,
                          region="eu-west-1", amz_date=req["x-amz-date"])
            self.assertEqual(req["authorization"], want["Authorization"])

        self.assertEqual(h.http("GET", host, port, "/a.glb")[0], 200)
        check_signed(o.seen[-1], "AKIDTEMPONE", "secret-one", "token/one+==")
        write_cred("AKIDTEMPTWO secret-two token-two\n")
        time.sleep(1.2)   # checked at most once a second
        self.assertEqual(h.http("GET", host, port, "/b.glb")[0], 200)
        check_signed(o.seen[-1], "AKIDTEMPTWO", "secret-two", "token-two")
        d.wait_log(r'msg="credentials reloaded" access_key=AKIDTEMPTWO session_token=yes')
        # a replacement that is not private is refused; the current pair stays
        write_cred("AKIDTEMPBAD secret-bad token-bad\n", 0o644)
        time.sleep(1.2)
        self.assertEqual(h.http("GET", host, port, "/c.glb")[0], 200)
        check_signed(o.seen[-1], "AKIDTEMPTWO", "secret-two", "token-two")
        d.wait_log(r"credentials not reloaded; the previous ones stay in use")
        self.assertNotIn("secret-two", d.log())
        self.assertNotIn("token-two", d.log())


if __name__ == "__main__":
    unittest.main()
