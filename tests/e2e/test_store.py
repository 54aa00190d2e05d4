"""The edge's LMDB store under damage: a flipped byte in a stored chunk is
never sent (refetched before the headers, or the connection aborted after),
and `meshcdn-edge check` finds it. Real edge, real signed origin."""

import os
import random
import re
import threading
import time
import unittest

import mcharness as h
from storecase import BUCKET, CHUNK, StoreCase, check_store, flip_byte


class TestChecksum(StoreCase):
    def test_damaged_single_chunk_is_refetched_never_sent(self):
        body = os.urandom(100_000)
        path = self.put("models/one-chunk.glb", body)
        self.store_then_stop(path)
        self.assertEqual(check_store(self.store).returncode, 0)
        flip_byte(self.store, body[50_000:50_064], 10)

        p = check_store(self.store)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("chunk 0 fails its checksum", p.stdout)

        e = self.edge()
        s, hd, b, c = self.get(e, path)
        self.assertEqual((s, c), (200, True))
        self.assertEqual(hd["x-cache"], ["Miss from meshcdn"])
        self.assertEqual(b, body)   # the origin's bytes, never the damaged ones
        self.assertEqual(self.metric(e, "meshcdn_edge_store_checksum_failures_total"), 1)
        # the damaged copy was deleted and replaced by the refetch
        for _ in range(100):
            s, hd, b, c = self.get(e, path)
            if hd["x-cache"] == ["Hit from meshcdn"]:
                break
            time.sleep(0.02)
        self.assertEqual((hd["x-cache"], b), (["Hit from meshcdn"], body))
        e.stop()
        p = check_store(self.store)
        self.assertEqual(p.returncode, 0, p.stdout)

    def test_damaged_chunk_mid_stream_aborts_the_connection(self):
        body = os.urandom(4 * CHUNK + 1000)
        path = self.put("models/four-chunks.glb", body)
        self.store_then_stop(path)
        flip_byte(self.store, body[2 * CHUNK + 5000:2 * CHUNK + 5064], 3)

        e = self.edge()
        s, hd, b, c = self.get(e, path)
        # headers went out before chunk 2 was read: the only honest ending
        # is a closed connection, never a complete-looking short body
        self.assertEqual(s, 200)
        self.assertEqual(hd["content-length"], [str(len(body))])
        self.assertFalse(c)
        self.assertLessEqual(len(b), 2 * CHUNK)
        self.assertEqual(b, body[:len(b)])   # nothing damaged was sent
        self.assertGreaterEqual(self.metric(e, "meshcdn_edge_store_checksum_failures_total"), 1)
        # the damaged object is deleted (through the writer, so a moment
        # later): then a request refetches it whole; until then, aborts only
        for _ in range(50):
            time.sleep(0.02)
            s, hd, b, c = self.get(e, path)
            if c:
                break
            self.assertEqual(b, body[:len(b)])
        self.assertEqual((s, c, hd["x-cache"]), (200, True, ["Miss from meshcdn"]))
        self.assertEqual(b, body)

    def test_damaged_chunk_behind_a_range_is_refetched(self):
        body = os.urandom(3 * CHUNK)
        path = self.put("models/ranged.glb", body)
        self.store_then_stop(path)
        flip_byte(self.store, body[CHUNK + 100:CHUNK + 164], 0)
        e = self.edge()
        s, hd, b, c = self.get(e, path, {"Range": f"bytes={CHUNK}-{CHUNK + 999}"})
        self.assertEqual((s, c), (206, True))
        self.assertEqual(b, body[CHUNK:CHUNK + 1000])
        self.assertEqual(self.metric(e, "meshcdn_edge_store_checksum_failures_total"), 1)


class TestVerifyReads(StoreCase):
    """[store] verify_reads: `first` checks a chunk on each worker's first
    read since start; `always` on every read, so damage made while the node
    runs is caught at the next hit too."""

    def damage_while_running(self, mode):
        body = os.urandom(100_000)
        path = self.put("models/live.glb", body)
        e = self.edge(f"--store.verify_reads={mode}", workers="1")
        self.assertEqual(self.get(e, path)[3], True)
        for _ in range(100):
            s, hd, b, c = self.get(e, path)
            if hd["x-cache"] == ["Hit from meshcdn"]:
                break
            time.sleep(0.02)
        self.assertEqual((hd["x-cache"], b), (["Hit from meshcdn"], body))   # checked once here
        flip_byte(self.store, body[50_000:50_064], 10)   # the map is the file: the node sees it
        s, hd, b, c = self.get(e, path)
        return e, body, hd, b

    def test_always_catches_damage_made_while_running(self):
        e, body, hd, b = self.damage_while_running("always")
        self.assertEqual(hd["x-cache"], ["Miss from meshcdn"])
        self.assertEqual(b, body)
        self.assertEqual(self.metric(e, "meshcdn_edge_store_checksum_failures_total"), 1)

    def test_first_checks_once_per_start(self):
        # the documented trade: a chunk this worker already checked is trusted
        # until the node restarts; after a restart the damage is found
        e, body, hd, b = self.damage_while_running("first")
        self.assertEqual(hd["x-cache"], ["Hit from meshcdn"])
        self.assertEqual(self.metric(e, "meshcdn_edge_store_checksum_failures_total"), 0)
        e.stop()
        e = self.edge(workers="1")
        s, hd, b, c = self.get(e, "/models/live.glb")
        self.assertEqual((hd["x-cache"], b), (["Miss from meshcdn"], body))
        self.assertEqual(self.metric(e, "meshcdn_edge_store_checksum_failures_total"), 1)


class TestCheckTool(StoreCase):
    def test_check_reports_a_sound_store_and_runs_beside_a_node(self):
        bodies = {self.put(f"m/{i}.glb", os.urandom(random.randint(1, 3 * CHUNK))): None for i in range(6)}
        e = self.edge()
        for p in bodies:
            self.get(e, p)
        time.sleep(0.3)
        r = check_store(self.store)   # beside the running node
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("a node is running", r.stdout)
        # the node is undisturbed: it still serves hits
        s, hd, b, c = self.get(e, next(iter(bodies)))
        self.assertEqual((s, c, hd["x-cache"]), (200, True, ["Hit from meshcdn"]))
        e.stop()
        r = check_store(self.store)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r"objects 6 ")
        self.assertIn("sound", r.stdout)

    def test_check_refuses_what_is_not_a_store(self):
        r = check_store(self.tmp)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no data.mdb", r.stderr)
        r = h.run("meshcdn-edge", ["check"])
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main()
