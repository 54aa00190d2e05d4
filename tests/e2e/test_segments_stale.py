"""Segmented objects (edge/segment.h) served stale or revalidated as whole
objects are (RFC 9111 4.2.4, 4.3; lookup.c, fill.h), with Cache-Status
(RFC 9211) saying what happened; and segment_threshold per behavior.

The scripted origin of test_segments.py: a 1 MiB object in 256 KiB segments
(threshold 512K). Objects are made stale with max-age=1 and a 1.2 s sleep."""

import os
import signal
import threading
import time
import unittest

import mcharness as h
from scriptorigin import ScriptOrigin
from test_segments import SIZE, RangeObject, SegmentCase, seg_range


def cache_status(resp):
    return resp[1].get("cache-status", [""])[0]


class StaleCase(SegmentCase):
    def store_whole(self):
        """A cold full GET: the head and all four segments stored (one origin request)."""
        s, hd, body, complete = self.get()
        self.assertEqual((s, complete, body == self.data), (200, True, True))
        self.idle()
        self.assertEqual(self.metric("meshcdn_edge_store_objects"), 5)
        return len(self.ranges())

    def expire(self):
        time.sleep(1.2)   # max-age=1: the head is stale

    def requests_by(self, result, code):
        return self.metric(f'meshcdn_edge_requests_total{{result="{result}",code="{code}"}}')

    def wait_metric(self, name, value):
        for _ in range(100):
            if self.metric(name) >= value:
                break
            time.sleep(0.05)
        self.assertGreaterEqual(self.metric(name), value)
        self.settle()


class TestSegmentsStale(StaleCase):
    def test_fresh_head_hit_and_partial(self):
        self.assertRange(self.get("bytes=300000-310000"), 300000, 310000)   # probe: head + segment 1
        self.settle()
        r = self.get("bytes=300000-310000")
        self.assertRange(r, 300000, 310000)
        self.assertEqual(r[1]["x-cache"], ["Hit from meshcdn"])
        self.assertRegex(cache_status(r), r"^meshcdn-s1; hit; ttl=\d+$")
        self.assertEqual(len(self.ranges()), 1)
        # a stored head whose segment is fetched: fwd=partial (RFC 9211 2.2), not a miss
        r = self.get("bytes=600000-610000")
        self.assertRange(r, 600000, 610000)
        self.assertIn("fwd=partial; fwd-status=206; ttl=", cache_status(r))
        self.assertIn("stored", cache_status(r))
        # ... and when that fetch fails: 502 fwd=partial (the head is fresh, not stale)
        self.origin.stop()
        r = self.get("bytes=900000-910000")
        self.assertEqual(r[0], 502)
        self.assertIn("fwd=partial", cache_status(r))

    def test_stale_while_revalidate_serves_stale_and_refreshes_in_background(self):
        self.obj.cc = "max-age=1, stale-while-revalidate=30"
        n = self.store_whole()
        self.expire()
        self.obj.delay = 0.5   # the background revalidation takes a while
        self.obj.cc = "max-age=300"
        before = self.requests_by("stale", 206)
        r = self.get("bytes=300000-600000")
        self.assertRange(r, 300000, 600000)
        self.assertEqual(r[1]["x-cache"], ["Hit from meshcdn"])
        self.assertRegex(cache_status(r), r"; hit; ttl=(0|-\d+); detail=stale-while-revalidate$")
        self.assertEqual(self.requests_by("stale", 206), before + 1)   # access log result=stale
        # one conditional request refreshed the head; the segments were kept
        self.wait_metric("meshcdn_edge_segment_revalidated_total", 1)
        with self.origin.lock:
            new = self.origin.requests[n:]
        self.assertEqual([(q.headers.get("range"), q.headers.get("if-none-match")) for q in new],
                         [("bytes=0-0", '"v1"')])
        s, hd, body, complete = self.get()
        self.assertEqual((s, complete, body == self.data), (200, True, True))
        self.assertRegex(hd["cache-status"][0], r"; hit; ttl=\d+$")   # fresh again: max-age=300
        self.assertEqual(len(self.ranges()), n + 1)

    def test_stale_while_revalidate_finds_new_version_in_background(self):
        self.obj.cc = "max-age=1, stale-while-revalidate=30"
        self.assertRange(self.get("bytes=300000-310000"), 300000, 310000)   # v1: head + segment 1
        self.settle()
        self.expire()
        v2 = os.urandom(SIZE)
        self.obj.set(v2, '"v2"')
        self.obj.cc = "max-age=300"
        r = self.get("bytes=300000-310000")
        self.assertRange(r, 300000, 310000)                                  # v1, served stale
        self.assertIn("detail=stale-while-revalidate", cache_status(r))
        self.wait_metric("meshcdn_edge_segment_version_changes_total", 1)
        n = len(self.ranges())
        # the old head and segment are gone; the new version's head was stored
        # by the revalidation: only segment 1 is fetched, for v2 (If-Match)
        r = self.get("bytes=300000-310000")
        self.assertRange(r, 300000, 310000, v2)
        self.assertEqual(self.ranges()[n:], [seg_range(1)])
        self.assertEqual(self.origin.last("/big.glb").headers.get("if-match"), '"v2"')
        self.assertIn("fwd=partial", cache_status(r))

    def test_stale_if_error_serves_stored_segments(self):
        self.obj.cc = "max-age=1, stale-if-error=60"
        self.store_whole()
        self.expire()
        self.obj.fail = 503
        before = self.requests_by("stale", 206)
        r = self.get("bytes=300000-600000")
        self.assertRange(r, 300000, 600000)
        self.assertRegex(cache_status(r), r"; hit; ttl=(0|-\d+); detail=stale-if-error$")
        self.assertEqual(self.requests_by("stale", 206), before + 1)
        self.origin.stop()
        s, hd, body, complete = self.get()
        self.assertEqual((s, complete, body == self.data), (200, True, True))
        self.assertIn("detail=stale-if-error", hd["cache-status"][0])
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])

    def test_stale_if_error_with_a_missing_segment_serves_what_it_can(self):
        self.obj.cc = "max-age=1, stale-if-error=60"
        self.assertRange(self.get("bytes=300000-310000"), 300000, 310000)   # head + segment 1
        self.settle()
        self.assertRange(self.get("bytes=0-10"), 0, 10)                      # + segment 0
        self.settle()
        self.expire()
        self.origin.stop()
        r = self.get("bytes=0-400000")                                       # segments 0, 1: stored
        self.assertRange(r, 0, 400000)
        self.assertIn("detail=stale-if-error", cache_status(r))
        # the first byte is in a missing segment: nothing can be served
        r = self.get("bytes=600000-610000")
        self.assertEqual(r[0], 504)
        self.assertIn("fwd=stale; detail=segment-unavailable", cache_status(r))
        # a whole GET: the stored first half goes out, then the response ends short
        s, hd, body, complete = self.get()
        self.assertEqual((s, complete), (200, False))
        self.assertEqual(hd["content-length"], [str(SIZE)])
        self.assertIn("detail=stale-if-error", hd["cache-status"][0])
        self.assertTrue(len(body) <= 2 * 262144 and self.data.startswith(body))

    def test_must_revalidate_stale_head_is_not_served(self):
        self.obj.cc = "max-age=1, must-revalidate, stale-if-error=60"
        self.assertRange(self.get("bytes=300000-310000"), 300000, 310000)
        self.settle()
        self.expire()
        self.obj.fail = 503
        r = self.get("bytes=300000-310000")
        self.assertEqual(r[0], 503)                           # the upstream's 5xx, as for a whole object
        self.assertIn("fwd=stale", cache_status(r))
        self.origin.stop()
        r = self.get("bytes=300000-310000")
        self.assertEqual(r[0], 504)
        self.assertIn("fwd=stale; detail=stale-forbidden", cache_status(r))

    def test_403_on_revalidation_is_passed_on_not_served_stale(self):
        self.obj.cc = "max-age=1, stale-if-error=60"
        self.assertRange(self.get("bytes=300000-310000"), 300000, 310000)
        self.settle()
        self.expire()
        self.obj.fail = 403   # not an error stale-if-error covers (RFC 5861: 500, 502, 503, 504)
        r = self.get("bytes=300000-310000")
        self.assertEqual(r[0], 403)
        self.assertIn("fwd=stale; fwd-status=403", cache_status(r))
        self.assertEqual(self.ranges()[-2:], ["bytes=0-0", None])   # the conditional, then the URL whole

    def test_must_revalidate_holds_for_viewers_on_every_worker(self):
        """Viewers on the other worker wait for the revalidation the first
        one started; none of them may get the stale copy when it fails."""
        self.obj.cc = "max-age=1, must-revalidate"
        self.assertRange(self.get("bytes=300000-310000"), 300000, 310000)
        self.settle()
        self.expire()
        self.obj.fail, self.obj.delay = 503, 0.5
        out = []
        ts = [threading.Thread(target=lambda: out.append(self.get("bytes=300000-310000"))) for _ in range(12)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(sorted(r[0] for r in out), [503] * 12)

    def test_304_updates_the_head_and_keeps_the_segments(self):
        self.obj.cc = "max-age=1"
        n = self.store_whole()
        self.expire()
        self.obj.cc = "max-age=300"
        self.obj.extra = {"X-Revision": "2"}
        r = self.get("bytes=300000-600000")
        self.assertRange(r, 300000, 600000)
        self.assertEqual(r[1]["x-cache"], ["RefreshHit from meshcdn"])
        self.assertIn("fwd=stale; fwd-status=304; ttl=", cache_status(r))
        self.assertEqual(r[1]["x-revision"], ["2"])
        self.assertEqual(self.ranges()[n:], ["bytes=0-0"])
        self.settle()
        s, hd, body, complete = self.get()
        self.assertEqual((s, complete, body == self.data), (200, True, True))
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])
        self.assertEqual((hd["x-revision"], hd["cache-control"]), (["2"], ["max-age=300"]))
        self.assertEqual(len(self.ranges()), n + 1)                       # no segment fetched again
        self.assertEqual(self.metric("meshcdn_edge_store_objects"), 5)

    def test_200_with_a_new_etag_replaces_every_segment(self):
        self.obj.cc = "max-age=1"
        n = self.store_whole()
        self.expire()
        v2 = os.urandom(SIZE)
        self.obj.set(v2, '"v2"')
        self.obj.cc = "max-age=300"
        s, hd, body, complete = self.get()
        self.assertEqual((s, complete), (200, True))
        self.assertTrue(body == v2, "a body of the new version only")
        self.assertIn("fwd=stale", hd["cache-status"][0])              # as a whole object's 200 on revalidation
        self.assertEqual(self.ranges()[n:], ["bytes=0-0", None])         # the conditional, then the new body
        self.idle()
        self.assertEqual(self.metric("meshcdn_edge_store_objects"), 5)   # v2's head and segments only
        for a, b in ((0, 1000), (300000, 900000), (SIZE - 100, SIZE - 1)):
            r = self.get(f"bytes={a}-{b}")
            self.assertRange(r, a, b, v2)
            self.assertEqual(r[1]["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(self.metric("meshcdn_edge_segment_version_changes_total"), 1)


class TestSegmentThresholdPerBehavior(unittest.TestCase):
    def test_behaviors_override_the_threshold(self):
        tmp = h.tempdir(self)
        origin = ScriptOrigin()
        self.addCleanup(origin.stop)
        data = os.urandom(SIZE)
        for p in ("/whole/a.glb", "/low/a.glb", "/d/a.glb"):
            origin.route(p, RangeObject(data))
        edge = h.Daemon("meshcdn-edge", [
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--origin", origin.url, "--origin-sign", "none",
            "--store", f"{tmp}/store", "--store-size", "64M", "--workers", "2", "--node-id", "s3",
            "--cache.mesh_validation", "off",
            "--edge.segment_threshold", "2M", "--edge.segment_size", "256K",
            "--behavior./whole/=segment_threshold=0",
            "--behavior./low/=segment_threshold=512K"],
            listeners=("http", "admin"))
        self.addCleanup(edge.stop)

        def get(path, rng=None):
            return h.http("GET", *edge.addr["http"], path, {"Range": rng} if rng else {}, timeout=30)

        def objects():
            time.sleep(0.4)
            return h.metrics(*edge.addr["admin"]).get("meshcdn_edge_store_objects", 0)

        def ranges(path):
            with origin.lock:
                return [r.headers.get("range") for r in origin.requests if r.path == path]
        # /low/: 1 MiB is over its 512K: a cold range past the first segment is a probe
        s, _, body, _ = get("/low/a.glb", "bytes=300000-300099")
        self.assertEqual((s, body), (206, data[300000:300100]))
        self.assertEqual(ranges("/low/a.glb"), [seg_range(1)])
        self.assertEqual(objects(), 2)                         # head + segment 1
        # /whole/ (0: never): no probe, fetched and stored whole
        s, _, body, _ = get("/whole/a.glb", "bytes=300000-300099")
        self.assertEqual((s, body), (206, data[300000:300100]))
        self.assertEqual(ranges("/whole/a.glb"), [None])
        # the default (2M): the probe's total is under it: fetched and stored whole
        s, _, body, _ = get("/d/a.glb", "bytes=300000-300099")
        self.assertEqual((s, body), (206, data[300000:300100]))
        self.assertEqual(ranges("/d/a.glb"), [seg_range(1), None])
        self.assertEqual(objects(), 4)                         # + one object each
        s, hd, body, _ = get("/whole/a.glb")
        self.assertEqual((body, hd["x-cache"]), (data, ["Hit from meshcdn"]))

    def test_sighup_applies_a_behavior_threshold(self):
        tmp = h.tempdir(self)
        origin = ScriptOrigin()
        self.addCleanup(origin.stop)
        data = os.urandom(SIZE)
        for p in ("/v/a.glb", "/v/b.glb"):
            origin.route(p, RangeObject(data))
        conf = f"{tmp}/edge.ini"

        def write(threshold):
            with open(conf + ".new", "w") as f:
                f.write(f"[edge]\nsegment_threshold = 2M\nsegment_size = 256K\n[origin]\nurl = {origin.url}\n"
                        f"sign = none\n[cache]\nmesh_validation = off\n[behavior]\n"
                        f"/v/ = segment_threshold={threshold}\n")
            os.replace(conf + ".new", conf)
        write("0")
        edge = h.Daemon("meshcdn-edge", ["--config", conf, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                         "--store", f"{tmp}/store", "--store-size", "64M", "--workers", "2"],
                        listeners=("http", "admin"))
        self.addCleanup(edge.stop)

        def probes(path):
            with origin.lock:
                return [r.headers.get("range") for r in origin.requests if r.path == path]
        s, _, body, _ = h.http("GET", *edge.addr["http"], "/v/a.glb", {"Range": "bytes=300000-300099"})
        self.assertEqual((s, body, probes("/v/a.glb")), (206, data[300000:300100], [None]))
        write("512K")
        edge.proc.send_signal(signal.SIGHUP)
        edge.wait_log(r"configuration reloaded[^\n]*behavior:/v/")
        s, _, body, _ = h.http("GET", *edge.addr["http"], "/v/b.glb", {"Range": "bytes=300000-300099"})
        self.assertEqual((s, body, probes("/v/b.glb")), (206, data[300000:300100], [seg_range(1)]))


if __name__ == "__main__":
    unittest.main()
