"""The demo's viewer page (deploy/viewer/) in Debian's headless Chromium: a
small generated catalog behind the real origin and edge, the page and its
three.js files laid into the catalog's root by deploy/viewer/install.sh (npm
packages cached in $MESHCDN_BUILD/viewer-npm), driven by viewer_drive.mjs
(playwright-core). Every model must load and render from bytes fetched through
the edge, each file showing the edge's X-Cache and Cache-Status: Miss on the
cold edge, Hit after "fetch again". The screenshot of the last round is left
at $MESHCDN_BUILD/test_viewer.png.

    cd build-dbg && ctest -R e2e_test_viewer --output-on-failure
"""

import json
import os
import shutil
import subprocess
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


@unittest.skipUnless(shutil.which("node") and shutil.which("npm"),
                     "node and npm are needed (deploy/deps.sh installs them)")
@unittest.skipUnless(os.access(CHROMIUM, os.X_OK), "Debian's chromium is needed (deploy/deps.sh --test)")
class ViewerPage(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        self.bucket = f"{self.tmp}/root/{BUCKET}"
        p = h.run("meshcdn-load", ["catalog", "--out", self.bucket, "--count", "8", "--seed", "11",
                                    "--sizes", "lognormal:median=60k,max=600k", "--gltf-count", "2"])
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run(["bash", f"{TOP}/deploy/viewer/install.sh", NPM_DIR, f"{self.bucket}/viewer",
                            "--dev"], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        h.write_keys(f"{self.tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/cred", [(AK, SECRET)])
        self.origin = h.Daemon("meshcdn-origin", [
            "--root", f"{self.tmp}/root", "--keys", f"{self.tmp}/keys",
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        self.origin.__enter__()
        self.addCleanup(self.origin.stop)
        host, port = self.origin.addr["s3"]
        self.edge = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", f"http://{host}:{port}/{BUCKET}", "--credentials", f"{self.tmp}/cred",
            "--store", f"{self.tmp}/store", "--store-size", "256M", "--workers", "2",
            "--node-id", "v1"], listeners=("http", "admin"))
        self.edge.__enter__()
        self.addCleanup(self.edge.stop)

    def drive(self, url, rounds):
        shot = os.path.join(h.BUILD, "test_viewer.png")
        p = subprocess.run(["node", f"{HERE}/viewer_drive.mjs", NPM_DIR, url, shot, str(rounds)],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        return json.loads(p.stdout.strip().splitlines()[-1])

    def test_every_model_loads_through_the_edge_miss_then_hit(self):
        ehost, eport = self.edge.addr["http"]
        # the page and its modules come through the edge with types a browser runs
        for path, ctype in (("/viewer/index.html", "text/html"), ("/viewer/viewer.js", "text/javascript"),
                            ("/viewer/lib/three/build/three.module.js", "text/javascript")):
            status, headers, _, _ = h.http("GET", ehost, eport, path)
            self.assertEqual(status, 200, path)
            self.assertTrue(headers["content-type"][0].startswith(ctype), (path, headers["content-type"]))

        with open(f"{self.bucket}/index.json") as f:
            objects = json.load(f)["objects"]
        models = [o["path"] for o in objects if o["path"].endswith((".glb", ".gltf"))]
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
                want = 1
                if m["path"].endswith(".gltf"):   # + its buffer and texture, from the .gltf itself
                    with open(self.bucket + m["path"]) as f:
                        g = json.load(f)
                    want += len(g.get("buffers", [])) + len(g.get("images", []))
                self.assertEqual(len(m["files"]), want, label)
                self.assertEqual(m["shownXCache"], [f["xcache"] for f in m["files"]], label)
                for f in m["files"]:
                    self.assertEqual(f["status"], 200, f)
                    self.assertEqual(f["bytes"], os.path.getsize(self.bucket + f["path"]), f)
                    self.assertEqual(f["type"], TYPES[os.path.splitext(f["path"])[1]], f)
                    self.assertEqual(f["xcache"], f"{word} from meshcdn", f)
                    self.assertTrue(f["cacheStatus"].startswith("meshcdn-v1;"), f)
                    self.assertIn(part, f["cacheStatus"], f)


if __name__ == "__main__":
    unittest.main()
