"""3D-asset rules of meshcdn-edge (issue #11): Content-Type fixed at fill time
for 3D formats the origin labels application/octet-stream (or not at all);
CORS answered by the edge per behavior (preflights, Access-Control-Allow-Origin
computed per request, Vary: Origin not splitting the cache); glTF/GLB
validation before a body becomes the cached copy (pass, refuse, off);
compression (gzip and brotli), each encoding stored once from one origin
fetch."""

import gzip
import json
import shutil
import struct
import subprocess
import threading
import time
import unittest

try:
    import brotli          # Debian's python3-brotli, when this is Debian's python3
except ImportError:
    brotli = None

import mcharness as h
from scriptorigin import ScriptOrigin

CACHED = {"Cache-Control": "max-age=600"}


def glb(doc=None, bin_bytes=b"\0" * 16):
    """A GLB 2.0: a JSON chunk (space padded) and a BIN chunk."""
    doc = doc or {"asset": {"version": "2.0"}, "buffers": [{"byteLength": len(bin_bytes)}]}
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    bb = bin_bytes + b"\0" * (-len(bin_bytes) % 4)
    body = struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(bb), 0x004E4942) + bb
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def unbrotli(data):
    """Decode a br body with the brotli module, else Debian's brotli CLI."""
    if brotli:
        return brotli.decompress(data)
    if not shutil.which("brotli"):
        raise unittest.SkipTest("no brotli decoder (deploy/deps.sh --test installs python3-brotli, brotli)")
    return subprocess.run(["brotli", "-dc"], input=data, capture_output=True, check=True).stdout


def enbrotli(data):
    if brotli:
        return brotli.compress(data)
    return subprocess.run(["brotli", "-c"], input=data, capture_output=True, check=True).stdout


GLTF = json.dumps({"asset": {"version": "2.0"}, "buffers": [{"uri": "a.bin", "byteLength": 16}]}).encode()


class MeshCase(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.origin = ScriptOrigin()
        self.addCleanup(self.origin.stop)

    def start_edge(self, ini=None, validation="pass", workers="2"):
        # (mcharness turns the validation off unless it is named)
        extra = (["--config", ini] if ini else []) + ["--cache.mesh_validation", validation]
        self.nedges = getattr(self, "nedges", 0) + 1
        store = f"{self.tmp}/store-{validation}" + (f"-{self.nedges}" if self.nedges > 1 else "")
        d = h.Daemon("meshcdn-edge", ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                      "--origin", self.origin.url, "--origin-sign", "none",
                                      "--store", store, "--store-size", "64M",
                                      "--workers", workers, "--node-id", "m1"] + extra,
                     listeners=("http", "admin"))
        self.addCleanup(d.stop)
        return d

    def ini(self, text):
        path = f"{self.tmp}/edge-{abs(hash(text))}.ini"
        with open(path, "w") as f:
            f.write(text)
        return path

    def get(self, edge, path, headers=None, method="GET"):
        return h.http(method, *edge.addr["http"], path, headers or {}, timeout=30)

    def stored(self, edge, path, headers=None):
        """GET twice: True when the second answer is a hit."""
        self.get(edge, path, headers)
        time.sleep(0.15)
        return self.get(edge, path, headers)[1]["x-cache"][0].startswith("Hit")

    def invalid(self, edge, fmt):
        return h.metrics(*edge.addr["admin"]).get(f'meshcdn_edge_mesh_invalid_total{{format="{fmt}"}}', 0)


class TestContentTypes(MeshCase):
    def test_3d_types_replace_octet_stream_or_none(self):
        edge = self.start_edge()
        want = {"a.glb": "model/gltf-binary", "a.gltf": "model/gltf+json", "a.obj": "model/obj",
                "a.mtl": "model/mtl", "a.stl": "model/stl", "a.ply": "application/ply",
                "a.usdz": "model/vnd.usdz+zip", "a.ktx2": "image/ktx2", "viewer.mjs": "text/javascript"}
        bodies = {"a.glb": glb(), "a.gltf": GLTF}
        for i, (name, ctype) in enumerate(sorted(want.items())):
            hd = dict(CACHED)
            if i % 2:
                hd["Content-Type"] = "application/octet-stream"    # else none at all
            self.origin.route(f"/m/{name}", lambda r, hd=hd, b=bodies.get(name, b"data"): (200, hd, b))
            s, rh, b, c = self.get(edge, f"/m/{name}?v=1")
            self.assertEqual((s, rh.get("content-type")), (200, [ctype]), name)
            time.sleep(0.1)
            s, rh, b, c = self.get(edge, f"/m/{name}?v=1")      # the stored copy has it too
            self.assertEqual((rh["x-cache"][0].split()[0], rh.get("content-type")), ("Hit", [ctype]), name)

    def test_an_explicit_type_and_unknown_extensions_are_kept(self):
        edge = self.start_edge()
        self.origin.route("/m/x.glb", lambda r: (200, dict(CACHED, **{"Content-Type": "text/plain"}), b"hello"))
        self.origin.route("/m/x.bin", lambda r: (200, CACHED, b"\0" * 8))
        self.origin.route("/m/missing.glb", lambda r: (404, {}, b"no"))
        self.assertEqual(self.get(edge, "/m/x.glb")[1]["content-type"], ["text/plain"])
        self.assertNotIn("content-type", self.get(edge, "/m/x.bin")[1])    # nothing better known
        self.assertNotIn("content-type", self.get(edge, "/m/missing.glb")[1])   # an error is not a model


class TestCors(MeshCase):
    CONF = ("[cache]\ncors_origins = https://shop.example, https://b.example\ncors_max_age = 10m\n"
            "[behavior]\n/open/ = cors_origins=*\n/ro/ = methods=read\n/plain/ = cors_origins=\n")

    def setUp(self):
        super().setUp()
        self.edge = self.start_edge(self.ini(self.CONF))
        for p in ("/m/a.glb", "/open/a.glb", "/ro/a.glb", "/plain/a.glb"):
            self.origin.route(p, lambda r: (200, dict(CACHED, **{"Vary": "Origin, Accept-Encoding",
                                                               "Access-Control-Allow-Origin": "https://wrong.example"}),
                                            glb()))

    def preflight(self, path, origin="https://shop.example", method="GET", hdrs=None):
        rh = {"Origin": origin, "Access-Control-Request-Method": method}
        if hdrs:
            rh["Access-Control-Request-Headers"] = hdrs
        return self.get(self.edge, path, rh, method="OPTIONS")

    def test_preflight_is_answered_at_the_edge(self):
        s, rh, b, c = self.preflight("/m/a.glb", hdrs="range")
        self.assertEqual(s, 204)
        self.assertEqual(rh["access-control-allow-origin"], ["https://shop.example"])
        self.assertEqual(rh["access-control-allow-methods"], ["GET, HEAD, OPTIONS"])
        self.assertEqual(rh["access-control-allow-headers"], ["range"])
        self.assertEqual(rh["access-control-max-age"], ["600"])
        # methods=read would refuse OPTIONS: the configured preflight comes first
        self.assertEqual(self.preflight("/ro/a.glb")[0], 204)
        # not allowed: answered, without the allow headers
        for args in (("/m/a.glb", "https://evil.example"), ("/m/a.glb", "https://shop.example", "DELETE")):
            s, rh, b, c = self.preflight(*args)
            self.assertEqual(s, 204)
            self.assertNotIn("access-control-allow-origin", rh)
        self.assertEqual(self.origin.requests, [])
        # a behavior without CORS passes OPTIONS to the origin, as before
        s, rh, b, c = self.preflight("/plain/a.glb")
        self.assertEqual([r.method for r in self.origin.requests], ["OPTIONS"])

    def test_actual_responses_are_not_split_per_origin(self):
        seen = []
        for origin in ("https://shop.example", "https://b.example", "https://evil.example", None):
            s, rh, b, c = self.get(self.edge, "/m/a.glb", {"Origin": origin} if origin else {})
            self.assertEqual((s, b), (200, glb()))
            seen.append(rh["x-cache"][0].split()[0])
            acao = rh.get("access-control-allow-origin")
            if origin in ("https://shop.example", "https://b.example"):
                self.assertEqual(acao, [origin])
                expose = rh["access-control-expose-headers"][0]
                for name in ("Cache-Status", "X-Cache", "Age", "Content-Length", "ETag"):
                    self.assertIn(name, expose)
            else:
                self.assertIsNone(acao)   # the origin's own header is never replayed
            # the answer depends on Origin for the browser's cache; the stored Vary lost it
            self.assertIn("Origin", ",".join(rh["vary"]))
            self.assertIn("Accept-Encoding", ",".join(rh["vary"]))
            time.sleep(0.1)
        self.assertEqual(seen, ["Miss", "Hit", "Hit", "Hit"])
        self.assertEqual(self.origin.count("/m/a.glb"), 1)
        self.assertNotIn("origin", self.origin.last("/m/a.glb").headers)   # not forwarded

    def test_star_and_no_cors_behaviors(self):
        s, rh, b, c = self.get(self.edge, "/open/a.glb", {"Origin": "https://any.example"})
        self.assertEqual(rh["access-control-allow-origin"], ["*"])
        self.assertNotIn("Origin", ",".join(rh["vary"]))
        # without CORS the origin's answer (and its Vary: Origin) is kept
        s, rh, b, c = self.get(self.edge, "/plain/a.glb", {"Origin": "https://shop.example"})
        self.assertEqual(rh["access-control-allow-origin"], ["https://wrong.example"])
        self.assertEqual(self.origin.last("/plain/a.glb").headers.get("origin"), "https://shop.example")


class TestValidation(MeshCase):
    def broken(self):
        good = glb(bin_bytes=bytes(range(64)))
        bad_version = bytearray(good)
        bad_version[4] = 1
        overflow = bytearray(good)
        overflow[12:16] = struct.pack("<I", 0xFFFFFFF8)
        no_bin = glb()[:12 + 8 + struct.unpack("<I", glb()[12:16])[0]]
        no_bin = no_bin[:8] + struct.pack("<I", len(no_bin)) + no_bin[12:]
        return {"/m/trunc.glb": good[:-20],            # a cut copy, sent with its own length
                "/m/version.glb": bytes(bad_version), "/m/overflow.glb": bytes(overflow),
                "/m/nobin.glb": no_bin, "/m/garbage.glb": b"<html>oops</html>"}

    def route_all(self):
        for p, body in self.broken().items():
            self.origin.route(p, lambda r, body=body: (200, CACHED, body))
        self.origin.route("/m/good.glb", lambda r: (200, dict(CACHED, **{"Content-Type": "model/gltf-binary"}),
                                                    glb(bin_bytes=bytes(range(64)))))
        self.origin.route("/m/cut.gltf", lambda r: (200, CACHED, GLTF[:-7]))
        self.origin.route("/m/noversion.gltf", lambda r: (200, CACHED, b'{"asset": {}}'))
        self.origin.route("/m/good.gltf", lambda r: (200, dict(CACHED, **{"Content-Type": "application/octet-stream"}),
                                                     GLTF))
        self.origin.route("/m/chunked.glb", lambda r: (200, CACHED, [glb()[:10], glb()[10:-4]]))

    def test_pass_serves_invalid_meshes_but_never_stores_them(self):
        self.route_all()
        edge = self.start_edge()
        for p, body in self.broken().items():
            s, rh, b, c = self.get(edge, p)
            self.assertEqual((s, b, c), (200, body, True), p)   # served as fetched
            self.assertFalse(self.stored(edge, p), p)
            self.assertEqual(self.origin.count(p), 3, p)
        self.assertFalse(self.stored(edge, "/m/chunked.glb"))
        self.assertFalse(self.stored(edge, "/m/cut.gltf"))
        self.assertFalse(self.stored(edge, "/m/noversion.gltf"))
        # every fetch of a broken one is counted: 5 x 3 GETs, the chunked one 2
        self.assertEqual(self.invalid(edge, "glb"), 5 * 3 + 2)
        self.assertEqual(self.invalid(edge, "gltf"), 2 * 2)
        edge.wait_log(r'msg="invalid mesh" format=glb why="[^"]+" bytes=\d+ action=pass')
        self.assertTrue(self.stored(edge, "/m/good.glb"))
        self.assertTrue(self.stored(edge, "/m/good.gltf"))
        self.assertEqual(self.get(edge, "/m/good.gltf")[1]["content-type"], ["model/gltf+json"])
        self.assertEqual(self.invalid(edge, "glb"), 5 * 3 + 2)     # valid ones counted nowhere

    def test_refuse_answers_502_and_valid_meshes_are_served_from_the_store(self):
        self.route_all()
        edge = self.start_edge(self.ini("[cache]\ncors_origins = *\n[behavior]\n/lax/ = mesh_validation=off\n"),
                               "refuse")
        for p in list(self.broken()) + ["/m/cut.gltf", "/m/chunked.glb"]:
            s, rh, b, c = self.get(edge, p)
            self.assertEqual(s, 502, p)
            self.assertIn("detail=mesh-invalid", rh["cache-status"][0], p)
        s, rh, b, c = self.get(edge, "/m/trunc.glb", {"Origin": "https://shop.example"})
        self.assertEqual((s, rh.get("access-control-allow-origin")), (502, ["*"]))   # the page sees the 502
        # several viewers at once on a valid GLB: all get it, one origin fetch
        out = []
        ts = [threading.Thread(target=lambda: out.append(self.get(edge, "/m/good.glb"))) for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        self.assertEqual([(s, b) for s, _, b, _ in out], [(200, glb(bin_bytes=bytes(range(64))))] * 4)
        self.assertEqual(self.origin.count("/m/good.glb"), 1)
        self.assertTrue(self.stored(edge, "/m/good.gltf"))
        self.assertEqual(self.invalid(edge, "glb"), 6 + 1)   # + the fetch with Origin
        # a behavior may turn it off: the cut copy is stored as it came
        self.origin.route("/lax/trunc.glb", lambda r: (200, CACHED, self.broken()["/m/trunc.glb"]))
        self.assertTrue(self.stored(edge, "/lax/trunc.glb"))

    def test_off_stores_without_checking(self):
        self.route_all()
        edge = self.start_edge(validation="off")
        self.assertTrue(self.stored(edge, "/m/trunc.glb"))
        self.assertTrue(self.stored(edge, "/m/cut.gltf"))
        self.assertEqual(self.invalid(edge, "glb") + self.invalid(edge, "gltf"), 0)


class TestGzip(MeshCase):
    BIG = json.dumps({"asset": {"version": "2.0"},
                      "nodes": [{"name": f"node-{i}", "mesh": i % 7} for i in range(3000)]}).encode()

    def setUp(self):
        super().setUp()
        self.edge = self.start_edge(self.ini("[cache]\ncompress = gzip\n"))
        self.origin.route("/m/scene.gltf", lambda r: (200, dict(CACHED, ETag='"v1"'), self.BIG))

    def test_each_encoding_is_stored_once_and_served_to_every_spelling(self):
        s, rh, gz, c = self.get(self.edge, "/m/scene.gltf", {"Accept-Encoding": "gzip, deflate, br"})
        self.assertEqual((s, c, rh.get("content-encoding")), (200, True, ["gzip"]))
        self.assertEqual(gzip.decompress(gz), self.BIG)          # the origin's bytes
        self.assertLess(len(gz), len(self.BIG) // 4)
        self.assertIn("Accept-Encoding", ",".join(rh["vary"]))
        self.assertEqual(rh["etag"], ['W/"v1"'])                   # not the identity's strong tag
        self.assertEqual(rh["content-type"], ["model/gltf+json"])
        time.sleep(0.15)
        for spelling in ("gzip", "br;q=1.0, GZIP", "deflate, gzip;q=0.5", "*"):
            s, rh, b, c = self.get(self.edge, "/m/scene.gltf", {"Accept-Encoding": spelling})
            self.assertEqual((rh["x-cache"][0].split()[0], rh.get("content-encoding"), b),
                             ("Hit", ["gzip"], gz), spelling)
        s, rh, b, c = self.get(self.edge, "/m/scene.gltf")      # no Accept-Encoding: identity
        self.assertEqual((rh["x-cache"][0].split()[0], b, rh.get("content-encoding")), ("Hit", self.BIG, None))
        self.assertEqual(rh["etag"], ['"v1"'])
        for spelling in (None, "identity", "gzip;q=0, br", "br"):
            s, rh, b, c = self.get(self.edge, "/m/scene.gltf", {"Accept-Encoding": spelling} if spelling else {})
            self.assertEqual((rh["x-cache"][0].split()[0], b, rh.get("content-encoding")), ("Hit", self.BIG, None),
                             spelling)
        self.assertEqual(self.origin.count("/m/scene.gltf"), 1)   # one fill stored both encodings
        self.assertTrue(all("accept-encoding" not in r.headers for r in self.origin.requests))
        # ranges over the stored gzip variant are ranges of the encoded bytes
        s, rh, b, c = self.get(self.edge, "/m/scene.gltf", {"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
        self.assertEqual((s, b, rh["content-range"]), (206, gz[:10], [f"bytes 0-9/{len(gz)}"]))
        s, rh, b, c = self.get(self.edge, "/m/scene.gltf", {"Accept-Encoding": "gzip", "If-None-Match": '"v1"'})
        self.assertEqual(s, 304)

    def test_binary_and_origin_encoded_bodies_are_left_alone(self):
        self.origin.route("/m/a.glb", lambda r: (200, CACHED, glb()))
        pre = gzip.compress(b'{"already": "gzipped"}')
        self.origin.route("/m/pre.json", lambda r: (200, dict(CACHED, **{"Content-Encoding": "gzip",
                                                                        "Content-Type": "application/json"}), pre))
        s, rh, b, c = self.get(self.edge, "/m/a.glb", {"Accept-Encoding": "gzip"})
        self.assertEqual((b, rh.get("content-encoding")), (glb(), None))
        s, rh, b, c = self.get(self.edge, "/m/pre.json", {"Accept-Encoding": "gzip"})
        self.assertEqual((b, rh.get("content-encoding")), (pre, ["gzip"]))   # not twice


class TestBrotli(MeshCase):
    """compress = br gzip: br for viewers that accept it, else gzip, else
    identity; the three stored from one origin fetch."""
    BIG = TestGzip.BIG

    def setUp(self):
        super().setUp()
        self.edge = self.start_edge(self.ini("[cache]\ncompress = br gzip\n[behavior]\n/g/ = compress=gzip\n"))
        for p in ("/m/scene.gltf", "/g/scene.gltf", "/m/slow.gltf"):
            self.origin.route(p, lambda r, p=p: (time.sleep(0.5) if "slow" in p else None,
                                                 (200, dict(CACHED, ETag='"v1"', **{"Content-Type": "model/gltf+json"}),
                                                  self.BIG))[1])

    def kind(self, rh):
        return rh["x-cache"][0].split()[0]

    def test_br_gzip_identity_from_one_origin_fetch(self):
        s, rh, br, c = self.get(self.edge, "/m/scene.gltf", {"Accept-Encoding": "gzip, deflate, br"})
        self.assertEqual((s, self.kind(rh), rh.get("content-encoding")), (200, "Miss", ["br"]))
        self.assertEqual(unbrotli(br), self.BIG)                  # the origin's bytes
        self.assertIn("Accept-Encoding", ",".join(rh["vary"]))
        self.assertEqual(rh["etag"], ['W/"v1"'])
        time.sleep(0.15)
        s, rh, gz, c = self.get(self.edge, "/m/scene.gltf", {"Accept-Encoding": "gzip"})   # a gzip-only viewer
        self.assertEqual((s, self.kind(rh), rh.get("content-encoding")), (200, "Hit", ["gzip"]))
        self.assertEqual(gzip.decompress(gz), self.BIG)
        self.assertEqual(rh["etag"], ['W/"v1"'])
        self.assertEqual(rh["content-length"], [str(len(gz))])
        s, rh, b, c = self.get(self.edge, "/m/scene.gltf")        # identity
        self.assertEqual((s, self.kind(rh), rh.get("content-encoding"), b), (200, "Hit", None, self.BIG))
        self.assertEqual(rh["etag"], ['"v1"'])
        self.assertEqual(self.origin.count("/m/scene.gltf"), 1)
        self.assertTrue(all("accept-encoding" not in r.headers for r in self.origin.requests))
        self.assertLess(len(br), len(gz))                          # br is the smaller
        # every spelling is served one of the three stored copies
        for spelling, want in (("br", br), ("BR;q=0.5", br), ("*", br), ("identity;q=0, *", br),
                               ("br;q=0, gzip", gz), ("br ; q=0.000 ,\tGZIP", gz), ("br;q=0, *", gz),
                               ("x-gzip", gz), ("identity;q=0", self.BIG), ("*;q=0", self.BIG),
                               ("deflate", self.BIG), ("br;q=0, gzip;q=0", self.BIG)):
            s, rh, b, c = self.get(self.edge, "/m/scene.gltf", {"Accept-Encoding": spelling})
            self.assertEqual((self.kind(rh), b), ("Hit", want), spelling)
        self.assertEqual(self.origin.count("/m/scene.gltf"), 1)
        # ranges over the br variant are ranges of the encoded bytes (RFC 9110 14.1.1)
        s, rh, b, c = self.get(self.edge, "/m/scene.gltf", {"Accept-Encoding": "br", "Range": "bytes=0-9"})
        self.assertEqual((s, b, rh["content-range"], rh.get("content-encoding")),
                         (206, br[:10], [f"bytes 0-9/{len(br)}"], ["br"]))
        s, rh, b, c = self.get(self.edge, "/m/scene.gltf", {"Accept-Encoding": "br", "Range": "bytes=-7"})
        self.assertEqual((s, b, rh["content-range"]), (206, br[-7:], [f"bytes {len(br) - 7}-{len(br) - 1}/{len(br)}"]))
        s, rh, b, c = self.get(self.edge, "/m/scene.gltf", {"Accept-Encoding": "br", "If-None-Match": 'W/"v1"'})
        self.assertEqual(s, 304)

    def test_concurrent_viewers_of_three_encodings_share_one_fetch(self):
        out = {}

        def fetch(ae):
            out[ae] = self.get(self.edge, "/m/slow.gltf", {"Accept-Encoding": ae} if ae else {})

        ts = [threading.Thread(target=fetch, args=(ae,)) for ae in ("br", "gzip", "")]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(unbrotli(out["br"][2]), self.BIG)
        self.assertEqual(out["br"][1].get("content-encoding"), ["br"])
        self.assertEqual(gzip.decompress(out["gzip"][2]), self.BIG)
        self.assertEqual(out["gzip"][1].get("content-encoding"), ["gzip"])
        self.assertEqual((out[""][2], out[""][1].get("content-encoding")), (self.BIG, None))
        self.assertEqual(self.origin.count("/m/slow.gltf"), 1)

    def test_a_viewer_joining_after_the_headers_gets_its_own_encoding(self):
        # headers at once, the body after a pause: a gzip viewer that arrives
        # in between must not stream along with the br fill (one worker: the
        # same fill table)
        edge = self.start_edge(self.ini("[cache]\ncompress = br gzip\n"), workers="1")
        half = len(self.BIG) // 2
        self.origin.route("/m/late.gltf", lambda r: (200, dict(CACHED, **{"Content-Type": "model/gltf+json"}),
                                                     [1.0, self.BIG[:half], self.BIG[half:]]))
        out = {}

        def fetch(ae):
            out[ae] = self.get(edge, "/m/late.gltf", {"Accept-Encoding": ae})

        first = threading.Thread(target=fetch, args=("br",))
        first.start()
        time.sleep(0.4)
        fetch("gzip")
        first.join()
        self.assertEqual((out["br"][1].get("content-encoding"), unbrotli(out["br"][2])), (["br"], self.BIG))
        self.assertEqual((out["gzip"][1].get("content-encoding"), gzip.decompress(out["gzip"][2])),
                         (["gzip"], self.BIG))
        self.assertEqual(self.origin.count("/m/late.gltf"), 1)

    def test_compress_gzip_behavior_never_sends_br(self):
        s, rh, gz, c = self.get(self.edge, "/g/scene.gltf", {"Accept-Encoding": "br, gzip"})
        self.assertEqual((rh.get("content-encoding"), gzip.decompress(gz)), (["gzip"], self.BIG))
        time.sleep(0.15)
        s, rh, b, c = self.get(self.edge, "/g/scene.gltf", {"Accept-Encoding": "br"})
        self.assertEqual((self.kind(rh), rh.get("content-encoding"), b), ("Hit", None, self.BIG))
        self.assertEqual(self.origin.count("/g/scene.gltf"), 1)

    def test_origin_encoded_br_is_stored_as_sent(self):
        pre = enbrotli(GLTF)
        self.origin.route("/m/pre.gltf", lambda r: (200, dict(CACHED, **{"Content-Encoding": "br",
                                                                         "Content-Type": "model/gltf+json"}), pre))
        for i in range(2):
            s, rh, b, c = self.get(self.edge, "/m/pre.gltf", {"Accept-Encoding": "br, gzip"})
            self.assertEqual((b, rh.get("content-encoding")), (pre, ["br"]))   # not encoded twice
            self.assertEqual(unbrotli(b), GLTF)
            time.sleep(0.15)
        self.assertEqual(self.kind(rh), "Hit")


if __name__ == "__main__":
    unittest.main()
