"""storecase — shared pieces of the store end-to-end tests (test_store*.py):
a signed origin over a directory of bodies the test writes, an edge on a
store directory the test keeps, byte flipping inside data.mdb, and the
`meshcdn-edge check` tool."""

import os
import time
import unittest

import mcharness as h

AK, SECRET = "AKIDSTORETEST", "store-test-secret-0123456789"
BUCKET = "assets"
CHUNK = 256 * 1024


def flip_byte(store, needle, offset):
    """Flip the byte at `offset` inside the one copy of `needle` in data.mdb."""
    path = os.path.join(store, "data.mdb")
    with open(path, "r+b") as f:
        data = f.read()
        at = data.find(needle)
        assert at >= 0, "pattern not found in data.mdb"
        assert data.find(needle, at + 1) < 0, "pattern not unique in data.mdb"
        f.seek(at + offset)
        f.write(bytes([data[at + offset] ^ 0x5A]))


def check_store(store):
    return h.run("meshcdn-edge", ["check", "--store", store], timeout=120)


class StoreCase(unittest.TestCase):
    """A signed origin over a directory of random bodies this test writes."""

    def setUp(self):
        self.tmp = h.tempdir(self)
        self.root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(self.root, BUCKET))
        h.write_keys(f"{self.tmp}/keys", [(AK, SECRET)])
        h.write_keys(f"{self.tmp}/cred", [(AK, SECRET)])
        self.origin = h.Daemon("meshcdn-origin", [
            "--root", self.root, "--keys", f"{self.tmp}/keys",
            "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        self.addCleanup(self.origin.stop)
        self.store = f"{self.tmp}/store"

    def put(self, name, body):
        path = os.path.join(self.root, BUCKET, name.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)
        return "/" + name.lstrip("/")

    def edge(self, *extra, size="512M", workers="2", start=True):
        host, port = self.origin.addr["s3"]
        args = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                "--origin", f"http://{host}:{port}/{BUCKET}",
                "--credentials", f"{self.tmp}/cred",
                "--store", self.store, "--store-size", size,
                "--workers", workers, "--node-id", "s1",
                "--log-level", os.environ.get("MC_LOG", "info")] + list(extra)
        d = h.Daemon("meshcdn-edge", args, listeners=("http", "admin"), start=start)
        self.addCleanup(d.stop)
        return d

    def get(self, edge, path, headers=None, timeout=60):
        return h.http("GET", *edge.addr["http"], path, headers or {}, timeout=timeout)

    def metric(self, edge, name):
        return h.metrics(*edge.addr["admin"]).get(name, 0)

    def store_then_stop(self, path):
        e = self.edge()
        s, hd, b, c = self.get(e, path)
        self.assertEqual((s, c, hd["x-cache"]), (200, True, ["Miss from meshcdn"]))
        for _ in range(100):   # the publish commits shortly after the last byte
            if self.get(e, path)[1]["x-cache"] == ["Hit from meshcdn"]:
                break
            time.sleep(0.02)
        e.stop()


