"""Segmented caching (edge/segment.h) against a scripted origin that serves
single byte ranges, honours If-Match / If-None-Match and counts every request
with its Range header. A 1 MiB object in 256 KiB segments (threshold 512 KiB):
segment i is bytes [i*262144, (i+1)*262144 - 1]."""

import json
import os
import threading
import time
import unittest

import mcharness as h
from scriptorigin import ScriptOrigin

SEG = 256 * 1024
SIZE = 4 * SEG
OP, OPSECRET = "AKIDSEGOPS", "seg-operator-secret-0123456789"


def seg_range(i, total=SIZE):
    return f"bytes={i * SEG}-{min((i + 1) * SEG, total) - 1}"


def body_of(resp):
    s, _, body, complete = resp
    assert s == 200 and complete, (s, complete)
    return body


class RangeObject:
    """An origin object: 206 for "bytes=a-b" (or "a-"), 412 on a failed If-Match,
    304 on a matching If-None-Match. ignore_range: answer 200 whole.
    truncate: set of Range values answered with half the bytes, then a close.
    cc: its Cache-Control; extra: more response fields; fail: a status every
    request gets instead (e.g. 503)."""

    def __init__(self, data, etag='"v1"', delay=0.0):
        self.data, self.etag, self.delay = data, etag, delay
        self.ignore_range = False
        self.truncate = set()
        self.cc = "max-age=300"
        self.extra = {}
        self.fail = None
        self.lock = threading.Lock()

    def set(self, data, etag):
        with self.lock:
            self.data, self.etag = data, etag

    def __call__(self, req):
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            data, etag = self.data, self.etag
        if self.fail:
            return self.fail, {"Cache-Control": "no-store"}, b"origin failing\n"
        base = dict({"ETag": etag, "Cache-Control": self.cc, "Content-Type": "model/gltf-binary",
                     "Surrogate-Key": "seg-tag", "Accept-Ranges": "bytes"}, **self.extra)
        im = req.headers.get("if-match")
        if im and im != etag:
            return 412, {"ETag": etag}, b""
        inm = req.headers.get("if-none-match")
        if inm and inm == etag:
            return 304, base, b""
        rng = req.headers.get("range")
        if rng and not self.ignore_range:
            a, _, b = rng[len("bytes="):].partition("-")
            a = int(a)
            b = min(int(b) if b else len(data) - 1, len(data) - 1)
            if a >= len(data):
                return 416, {"Content-Range": f"bytes */{len(data)}"}, b""
            hdrs = dict(base, **{"Content-Range": f"bytes {a}-{b}/{len(data)}"})
            if rng in self.truncate:
                self.truncate.discard(rng)
                hdrs["Content-Length"] = str(b - a + 1)
                return 206, hdrs, ("close", data[a:a + (b - a + 1) // 2])
            return 206, hdrs, data[a:b + 1]
        return 200, base, data


class SegmentCase(unittest.TestCase):
    def setUp(self):
        self.tmp = h.tempdir(self)
        h.write_keys(f"{self.tmp}/ops", [(OP, OPSECRET)])
        self.origin = ScriptOrigin()
        self.addCleanup(self.origin.stop)
        self.data = os.urandom(SIZE)
        self.obj = RangeObject(self.data)
        self.origin.route("/big.glb", self.obj)
        self.edge = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", self.origin.url, "--origin-sign", "none",
            "--store", f"{self.tmp}/store", "--store-size", "64M",
            "--workers", "2", "--node-id", "s1", "--admin-keys", f"{self.tmp}/ops",
            "--cache.mesh_validation", "off",
            "--edge.segment_threshold", "512K", "--edge.segment_size", "256K"],
            listeners=("http", "admin"))
        self.addCleanup(self.edge.stop)

    def get(self, rng=None, path="/big.glb", headers=None):
        hd = dict(headers or {})
        if rng:
            hd["Range"] = rng
        return h.http("GET", *self.edge.addr["http"], path, hd, timeout=30)

    def ranges(self):
        """The Range header of every origin request so far (None: a whole GET)."""
        with self.origin.lock:
            return [r.headers.get("range") for r in self.origin.requests]

    def settle(self):
        time.sleep(0.3)   # the writer publishes after the last chunk

    def idle(self):
        """Wait until no fill runs and the writer has published."""
        for _ in range(100):
            m = h.metrics(*self.edge.addr["admin"])
            if m.get("meshcdn_edge_fills_inflight", 0) == 0:
                break
            time.sleep(0.05)
        self.settle()

    def metric(self, name):
        return h.metrics(*self.edge.addr["admin"]).get(name, 0)

    def purge(self, body):
        host, port = self.edge.addr["admin"]
        data = json.dumps(body).encode()
        hdrs = h.sign("POST", f"http://{host}:{port}/purge", {}, OP, OPSECRET,
                      service="meshcdn", payload_hash=None, body=data)
        s, _, b, _ = h.http("POST", host, port, "/purge", hdrs, body=data, timeout=30)
        self.assertEqual(s, 200, b)
        return json.loads(b)

    def assertRange(self, resp, a, b, data=None):
        s, hd, body, complete = resp
        self.assertEqual(s, 206, (hd, body[:200]))
        self.assertTrue(complete)
        self.assertEqual(hd["content-range"], [f"bytes {a}-{b}/{SIZE}"])
        self.assertEqual(body, (data or self.data)[a:b + 1])


class TestSegments(SegmentCase):
    def test_cold_middle_range_fetches_only_its_segments_then_the_rest(self):
        self.assertRange(self.get("bytes=400000-700000"), 400000, 700000)
        self.assertEqual(self.ranges(), [seg_range(1), seg_range(2)])   # no whole fetch
        self.settle()
        # overlapping: segments 1 and 2 are hits, only 3 is fetched
        self.assertRange(self.get("bytes=300000-900000"), 300000, 900000)
        self.assertEqual(self.ranges()[2:], [seg_range(3)])
        self.settle()
        # a full GET fetches only what is left (segment 0) and is the origin's bytes
        s, hd, body, complete = self.get()
        self.assertEqual((s, complete), (200, True))
        self.assertEqual(hd["content-length"], [str(SIZE)])
        self.assertEqual(body, self.data)
        self.assertNotIn("meshcdn-segments", hd)
        self.assertEqual(self.ranges()[3:], [seg_range(0)])
        self.settle()
        s, hd, body, _ = self.get()
        self.assertEqual(body, self.data)
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(len(self.ranges()), 4)
        # multi-range and suffix ranges from the segments, still no new request
        s, hd, body, _ = self.get("bytes=10-20,600000-600010")
        self.assertEqual(s, 206)
        self.assertIn(self.data[10:21], body)
        self.assertIn(self.data[600000:600011], body)
        self.assertRange(self.get("bytes=-100"), SIZE - 100, SIZE - 1)
        s, hd, body, _ = h.http("HEAD", *self.edge.addr["http"], "/big.glb", {})
        self.assertEqual((s, hd["content-length"]), (200, [str(SIZE)]))
        self.assertEqual(len(self.ranges()), 4)
        self.assertEqual(self.metric("meshcdn_edge_segment_fills_total"), 4)
        self.assertGreaterEqual(self.metric("meshcdn_edge_segment_bytes_total"), SIZE)
        self.assertGreater(self.metric("meshcdn_edge_segment_hit_bytes_total"), 0)

    def test_concurrent_range_requests_for_one_segment_make_one_upstream_request(self):
        self.obj.delay = 0.5
        out = []

        def one():
            out.append(self.get("bytes=300000-310000"))
        ts = [threading.Thread(target=one) for _ in range(12)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for resp in out:
            self.assertRange(resp, 300000, 310000)
        self.assertEqual(self.ranges(), [seg_range(1)])

    def test_object_changed_between_segments_never_mixes_versions(self):
        self.assertRange(self.get("bytes=300000-310000"), 300000, 310000)   # v1: head + segment 1
        self.settle()
        v2 = os.urandom(SIZE)
        self.obj.set(v2, '"v2"')
        # a range needing stored segment 1 (v1) then segment 2: segment 2's
        # If-Match fails after v1 bytes went out: the transfer is cut
        s, hd, body, complete = self.get("bytes=500000-600000")
        if complete:
            self.assertEqual(s, 206)
            self.assertIn(body, (self.data[500000:600001], v2[500000:600001]))
        else:
            self.assertTrue(self.data[500000:600001].startswith(body))   # a v1 prefix, nothing of v2
        with self.origin.lock:
            self.assertIn('"v1"', [r.headers.get("if-match") for r in self.origin.requests])
        self.settle()
        # the old version's head and segments are gone: everything now is v2
        s, hd, body, complete = self.get()
        self.assertEqual((s, complete), (200, True))
        self.assertEqual(body, v2)
        self.settle()
        self.assertRange(self.get("bytes=300000-310000"), 300000, 310000, v2)
        self.assertGreaterEqual(self.metric("meshcdn_edge_segment_version_changes_total"), 1)

    def test_not_started_viewer_restarts_cleanly_on_new_version(self):
        self.assertRange(self.get("bytes=300000-310000"), 300000, 310000)   # v1 head, segment 1
        self.settle()
        v2 = os.urandom(SIZE)
        self.obj.set(v2, '"v2"')
        # segment 3 is missing: its If-Match fails before any byte went out;
        # the viewer starts over and gets v2 only
        self.assertRange(self.get("bytes=800000-900000"), 800000, 900000, v2)

    def test_purge_removes_head_and_every_segment(self):
        s, _, body, _ = self.get()   # cold full GET: stored as segments as it streams
        self.assertEqual(body, self.data)
        self.assertEqual(self.ranges(), [None])
        self.settle()
        self.assertRange(self.get("bytes=700000-800000"), 700000, 800000)
        self.assertEqual(len(self.ranges()), 1)   # segments from the whole fetch
        self.assertEqual(self.metric("meshcdn_edge_store_objects"), 5)   # head + 4 segments
        self.assertEqual(self.purge({"paths": ["/big.glb"]})["purged"], 5)
        self.assertEqual(self.metric("meshcdn_edge_store_objects"), 0)
        self.assertRange(self.get("bytes=700000-800000"), 700000, 800000)
        self.assertEqual(self.ranges()[1:], [seg_range(2), seg_range(3)])
        self.settle()
        self.assertEqual(self.purge({"surrogate_keys": ["seg-tag"]})["purged"], 3)
        self.assertEqual(self.metric("meshcdn_edge_store_objects"), 0)
        self.get("bytes=300000-310000")
        self.settle()
        self.assertEqual(self.purge({"paths": ["/big*"]})["purged"], 2)
        self.assertEqual(self.metric("meshcdn_edge_store_objects"), 0)

    def test_soft_purge_revalidates_once_and_keeps_segments(self):
        self.assertRange(self.get("bytes=300000-600000"), 300000, 600000)
        self.settle()
        n = len(self.ranges())
        self.purge({"paths": ["/big.glb"], "soft": True})
        s, hd, body, _ = self.get("bytes=300000-600000")
        self.assertEqual(body, self.data[300000:600001])
        self.assertEqual(hd["x-cache"], ["RefreshHit from meshcdn"])
        new = self.origin.requests[n:]
        self.assertEqual(len(new), 1)                     # one conditional request
        self.assertEqual(new[0].headers.get("if-none-match"), '"v1"')
        self.settle()
        s, hd, body, _ = self.get("bytes=300000-600000")
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(len(self.ranges()), n + 1)

    def test_origin_ignoring_range_on_a_cold_probe_fetches_whole(self):
        self.obj.ignore_range = True
        self.assertRange(self.get("bytes=400000-700000"), 400000, 700000)
        self.assertEqual(self.ranges(), [seg_range(1), None])   # the probe got 200: fetched whole instead
        self.idle()
        self.assertRange(self.get("bytes=300000-900000"), 300000, 900000)
        self.assertEqual(body_of(self.get()), self.data)

    def test_origin_ignoring_range_for_a_segment_keeps_only_that_segment(self):
        self.assertRange(self.get("bytes=300000-310000"), 300000, 310000)   # head + segment 1
        self.idle()
        self.obj.ignore_range = True
        # segments 2 and 3 each come from a 200 of the same version: the edge
        # keeps that segment's bytes and cuts the rest of the body
        self.assertRange(self.get("bytes=300000-900000"), 300000, 900000)
        self.assertEqual(self.ranges()[1:], [seg_range(2), seg_range(3)])   # asked; answered 200
        self.idle()
        self.assertEqual(body_of(self.get()), self.data)   # segment 0 the same way
        self.assertEqual(self.ranges()[3:], [seg_range(0)])
        self.idle()
        self.assertEqual(body_of(self.get()), self.data)
        self.assertEqual(len(self.ranges()), 4)   # all four stored

    def test_truncated_segment_is_not_stored_and_never_served_wrong(self):
        self.obj.truncate.add(seg_range(2))
        try:
            s, hd, body, complete = self.get("bytes=600000-700000")
        except (ConnectionError, OSError):
            s, body, complete = 0, b"", False
        self.assertFalse(complete and s == 206 and body == self.data[600000:700001] and False)
        if complete:
            self.assertNotEqual(s, 206)   # an error, never a wrong 206
        else:
            self.assertTrue(self.data[600000:700001].startswith(body))
        self.settle()
        self.assertRange(self.get("bytes=600000-700000"), 600000, 700000)
        self.assertEqual(self.ranges(), [seg_range(2), seg_range(2)])   # not stored: fetched again
        self.assertGreaterEqual(self.metric("meshcdn_edge_segment_fills_failed_total"), 1)

    def test_small_object_is_not_segmented(self):
        small = os.urandom(SEG + 1000)   # over one segment, under the threshold
        self.origin.route("/small.glb", RangeObject(small))
        s, hd, body, _ = self.get(f"bytes={SEG}-{SEG + 99}", path="/small.glb")
        self.assertEqual((s, body), (206, small[SEG:SEG + 100]))
        self.settle()
        s, hd, body, _ = self.get(path="/small.glb")
        self.assertEqual((body, hd["x-cache"]), (small, ["Hit from meshcdn"]))
        self.assertEqual(self.origin.count("/small.glb"), 2)   # the probe, then the whole object


class TestSegmentEviction(unittest.TestCase):
    def test_evicted_segments_are_refetched_alone(self):
        tmp = h.tempdir(self)
        origin = ScriptOrigin()
        self.addCleanup(origin.stop)
        mib = 1024 * 1024
        big = os.urandom(8 * mib)
        origin.route("/big.glb", RangeObject(big))
        for i in range(8):
            origin.route(f"/other{i}.bin", RangeObject(os.urandom(mib), etag=f'"o{i}"'))
        edge = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", origin.url, "--origin-sign", "none",
            "--store", f"{tmp}/store", "--store-size", "16M", "--workers", "2", "--node-id", "s2",
            "--cache.mesh_validation", "off",
            "--edge.segment_threshold", "2M", "--edge.segment_size", "1M"],
            listeners=("http", "admin"))
        self.addCleanup(edge.stop)
        get = lambda p: h.http("GET", *edge.addr["http"], p, {}, timeout=60)
        s, _, body, _ = get("/big.glb")   # stored as 8 segments as it streams
        self.assertEqual(body, big)
        time.sleep(0.5)
        s, _, body, _ = h.http("GET", *edge.addr["http"], "/big.glb", {"Range": "bytes=0-99"})
        self.assertEqual((s, body), (206, big[:100]))   # the head is used (a viewer reads the GLB header)
        for i in range(8):                 # 8 MiB more through a 16 MiB store
            self.assertEqual(get(f"/other{i}.bin")[0], 200)
            time.sleep(0.1)
        time.sleep(0.5)
        m = h.metrics(*edge.addr["admin"])
        self.assertGreater(m["meshcdn_edge_evictions_total"], 0)
        before = origin.count("/big.glb")
        s, _, body, complete = get("/big.glb")
        self.assertEqual((s, complete), (200, True))
        self.assertEqual(body, big)
        with origin.lock:
            again = [r.headers.get("range") for r in origin.requests if r.path == "/big.glb"][before:]
        self.assertGreater(len(again), 0)            # some segments were evicted ...
        self.assertLess(len(again), 8)               # ... not all: only those are fetched
        for rng in again:
            a, b = map(int, rng[len("bytes="):].split("-"))
            self.assertEqual((a % mib, b - a + 1), (0, mib))


if __name__ == "__main__":
    unittest.main()
