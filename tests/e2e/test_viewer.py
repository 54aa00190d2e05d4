"""The demo's viewer page (deploy/viewer/) in Debian's headless Chromium: a
small generated catalog behind the real origin and edge, the page and its
three.js files laid into the catalog's root by deploy/viewer/install.sh (npm
packages cached in $MESHCDN_BUILD/viewer-npm), driven by viewer_drive.mjs
(playwright-core). Every model must load and render from bytes fetched through
the edge, each file showing the edge's X-Cache and Cache-Status: Miss on the
cold edge, Hit after "fetch again". The screenshot of the last round is left
at $MESHCDN_BUILD/test_viewer.png.

CrossOriginViewerPage serves the same page from another origin (a Python
http.server on another loopback port) and points it at the edge
(?edge=URL): every fetch is then a CORS request that the edge answers
([cache] cors_origins = the page's origin). Every model must load with no
CORS error in the console, each file's Cache-Status readable by the page
(exposed), and the screenshot is left at $MESHCDN_BUILD/test_viewer_cors.png.
With CORS off for /models/ (a behavior), the same page must fail to load
every model with Chromium's CORS error: the test can fail.

    cd build-dbg && ctest -R e2e_test_viewer --output-on-failure
"""

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import unittest

import mcharness as h

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
NPM_DIR = os.environ.get("MESHCDN_VIEWER_NPM") or os.path.join(h.BUILD, "viewer-npm")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
AK, SECRET = "AKIDVIEWERTEST", "viewer-test-secret-0123456789"
BUCKET = "assets"
TYPES = {".glb": "model/gltf-binary", ".gltf": "model/gltf+json", ".bin": "application/octet-stream",
         ".png": "image/png"}


needs_browser = unittest.skipUnless(
    shutil.which("node") and shutil.which("npm") and os.access(CHROMIUM, os.X_OK),
    "node, npm and Debian's chromium are needed (deploy/deps.sh --test)")


class ViewerBase(unittest.TestCase):
    PAGE_IN_BUCKET = True     # the page is laid into the catalog's root, served through the edge as /viewer/

    def setUp(self):
        self.tmp = h.tempdir(self)
        self.bucket = f"{self.tmp}/root/{BUCKET}"
        p = h.run("meshcdn-load", ["catalog", "--out", self.bucket, "--count", "8", "--seed", "11",
                                    "--sizes", "lognormal:median=60k,max=600k", "--gltf-count", "2"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.page_dir = f"{self.bucket}/viewer" if self.PAGE_IN_BUCKET else f"{self.tmp}/page"
        p = subprocess.run(["bash", f"{TOP}/deploy/viewer/install.sh", NPM_DIR, self.page_dir,
                            "--dev"], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        h.write_keys(f"{self.tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/cred", [(AK, SECRET)])
        self.origin = h.Daemon("meshcdn-origin", [
            "--root", f"{self.tmp}/root", "--keys", f"{self.tmp}/keys",
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        self.origin.__enter__()
        self.addCleanup(self.origin.stop)
        if self.PAGE_IN_BUCKET:
            self.edge = self.start_edge()

    def start_edge(self, extra=()):
        host, port = self.origin.addr["s3"]
        edge = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", f"http://{host}:{port}/{BUCKET}", "--credentials", f"{self.tmp}/cred",
            "--store", f"{self.tmp}/store", "--store-size", "256M", "--workers", "2",
            "--node-id", "v1"] + list(extra), listeners=("http", "admin"))
        edge.__enter__()
        self.addCleanup(edge.stop)
        return edge

    def drive(self, url, rounds, shot_name="test_viewer.png"):
        shot = os.path.join(h.BUILD, shot_name)
        if os.path.exists(shot):
            os.unlink(shot)
        p = subprocess.run(["node", f"{HERE}/viewer_drive.mjs", NPM_DIR, url, shot, str(rounds)],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        self.assertTrue(os.path.getsize(shot) > 0, shot)
        return json.loads(p.stdout.strip().splitlines()[-1])

    def models(self):
        with open(f"{self.bucket}/index.json") as f:
            objects = json.load(f)["objects"]
        return [o["path"] for o in objects if o["path"].endswith((".glb", ".gltf"))]

    def want_files(self, path):
        """How many files a viewer fetches for a model: it, and for a .gltf
        its buffers and images."""
        if not path.endswith(".gltf"):
            return 1
        with open(self.bucket + path) as f:
            g = json.load(f)
        return 1 + len(g.get("buffers", [])) + len(g.get("images", []))


@needs_browser
class ViewerPage(ViewerBase):
    def test_every_model_loads_through_the_edge_miss_then_hit(self):
        ehost, eport = self.edge.addr["http"]
        # the page and its modules come through the edge with types a browser runs
        for path, ctype in (("/viewer/index.html", "text/html"), ("/viewer/viewer.js", "text/javascript"),
                            ("/viewer/lib/three/build/three.module.js", "text/javascript")):
            status, headers, _, _ = h.http("GET", ehost, eport, path)
            self.assertEqual(status, 200, path)
            self.assertTrue(headers["content-type"][0].startswith(ctype), (path, headers["content-type"]))

        models = self.models()
        self.assertTrue(any(m.endswith(".gltf") for m in models) and any(m.endswith(".glb") for m in models))
        out = self.drive(self.edge.url("http") + "/viewer/index.html", 2)
        errors = [c for c in out["console"] if c.startswith(("error", "pageerror"))]
        self.assertEqual(errors, [])
        first, second = out["rounds"]

        for rnd, word, part in ((first, "Miss", "fwd=miss"), (second, "Hit", "; hit")):
            self.assertIsNone(rnd["webglError"])
            self.assertEqual(rnd["index"]["status"], 200)
            self.assertEqual(rnd["index"]["xcache"], f"{word} from meshcdn")
            self.assertEqual(sorted(m["path"] for m in rnd["models"]), sorted(models))
            for m in rnd["models"]:
                label = (rnd["round"], m["path"])
                self.assertEqual((m["state"], m["error"]), ("loaded", None), label)
                self.assertEqual(m["shownState"], "loaded", label)
                self.assertGreater(m["drawn"], 0.01, label)   # the model covers part of its tile
                self.assertEqual(len(m["files"]), self.want_files(m["path"]), label)
                self.assertEqual(m["shownXCache"], [f["xcache"] for f in m["files"]], label)
                for f in m["files"]:
                    self.assertEqual(f["status"], 200, f)
                    self.assertEqual(f["bytes"], os.path.getsize(self.bucket + f["path"]), f)
                    self.assertEqual(f["type"], TYPES[os.path.splitext(f["path"])[1]], f)
                    self.assertEqual(f["xcache"], f"{word} from meshcdn", f)
                    self.assertTrue(f["cacheStatus"].startswith("meshcdn-v1;"), f)
                    self.assertIn(part, f["cacheStatus"], f)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@needs_browser
class CrossOriginViewerPage(ViewerBase):
    """The page from one origin, the models from the edge at another."""
    PAGE_IN_BUCKET = False

    def setUp(self):
        super().setUp()
        handler = functools.partial(_Quiet, directory=self.page_dir)
        self.page_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.page_server.daemon_threads = True
        threading.Thread(target=self.page_server.serve_forever, daemon=True).start()
        self.addCleanup(self.page_server.server_close)
        self.addCleanup(self.page_server.shutdown)
        self.page_origin = f"http://127.0.0.1:{self.page_server.server_address[1]}"

    def page_url(self, edge):
        self.assertNotEqual(edge.url("http"), self.page_origin)    # another port: another origin
        return f"{self.page_origin}/index.html?edge={edge.url('http')}/"

    def cors_errors(self, out):
        return [c for c in out["console"] if "CORS" in c or "Access-Control" in c]

    def test_every_model_loads_across_origins(self):
        # compressed too: the .gltf files reach Chromium gzip'd or br'd (it decodes them)
        edge = self.start_edge(["--cache.cors_origins", self.page_origin, "--cache.compress", "br gzip"])
        models = self.models()
        out = self.drive(self.page_url(edge), 1, "test_viewer_cors.png")   # one round: the browser is the slow part
        self.assertEqual(self.cors_errors(out), [])
        self.assertEqual([c for c in out["console"] if c.startswith(("error", "pageerror", "requestfailed"))], [])
        gltfs = [m for m in models if m.endswith(".gltf")]
        self.assertEqual(sorted(out["encodings"]), sorted(gltfs))
        self.assertTrue(all(e in ("br", "gzip") for e in out["encodings"].values()), out["encodings"])
        for rnd in out["rounds"]:
            self.assertIsNone(rnd["webglError"])
            self.assertEqual(rnd["index"]["status"], 200)
            self.assertEqual(sorted(m["path"] for m in rnd["models"]), sorted(models))
            for m in rnd["models"]:
                label = (rnd["round"], m["path"])
                self.assertEqual((m["state"], m["error"]), ("loaded", None), label)
                self.assertEqual(m["shownState"], "loaded", label)
                self.assertGreater(m["drawn"], 0.01, label)
                self.assertEqual(len(m["files"]), self.want_files(m["path"]), label)
                for f in m["files"]:
                    self.assertEqual((f["status"], f["bytes"]), (200, os.path.getsize(self.bucket + f["path"])), f)
                    # the page can read them only because the edge exposes them
                    self.assertEqual(f["xcache"], "Miss from meshcdn", f)
                    self.assertTrue(f["cacheStatus"].startswith("meshcdn-v1;"), f)
                self.assertEqual(m["shownCacheStatus"], [f["cacheStatus"] for f in m["files"]], label)

    def test_without_cors_for_the_models_every_model_fails(self):
        # the catalog's index.json is allowed; /models/ answers no CORS
        edge = self.start_edge(["--cache.cors_origins", self.page_origin, "--behavior./models/", "cors_origins="])
        out = self.drive(self.page_url(edge), 1, "test_viewer_cors_off.png")
        rnd = out["rounds"][0]
        self.assertEqual(rnd["index"]["status"], 200)
        self.assertEqual(sorted(m["path"] for m in rnd["models"]), sorted(self.models()))
        for m in rnd["models"]:
            self.assertEqual(m["state"], "error", m)
            self.assertEqual(m["shownState"], "error", m)
            self.assertEqual(m["files"][0]["status"], 0, m)           # the page never saw the response
        blocked = self.cors_errors(out)
        self.assertGreaterEqual(len(blocked), len(rnd["models"]), out["console"])
        self.assertTrue(all("/models/" in c for c in blocked), blocked)


if __name__ == "__main__":
    unittest.main()
