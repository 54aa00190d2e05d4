"""Issue #5's bound test: 640 MiB of distinct objects through an edge whose
store is 64 MiB (its own file so ctest runs it beside the others)."""

import os
import threading
import time
import unittest

import mcharness as h
from test_caching import CachingCase, fixed


class TestStoreBound(CachingCase):
    def test_640_mib_of_distinct_objects_through_a_64_mib_store(self):
        # issue #5: disk use stays under the bound, every request is
        # answered in full, the metrics show the evictions
        store = f"{self.tmp}/s-640"
        edge = self.start_edge("--store-size", "64M", "--store", store, "--workers", "2")
        body = {}
        for i in range(640):
            body[i] = bytes([i % 251]) * (1 << 20)
            self.origin.route(f"/d{i}.bin", fixed(200, {"Cache-Control": "max-age=600"}, body[i]))
        bad = []
        peak = [0]

        def fetch(lo):
            for i in range(lo, 640, 4):
                s, hd, b, c = self.get(f"/d{i}.bin", edge=edge)
                if (s, c, b) != (200, True, body[i]):
                    bad.append((i, s, c, len(b)))
                peak[0] = max(peak[0], os.path.getsize(f"{store}/data.mdb"))

        threads = [threading.Thread(target=fetch, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual(bad, [])
        self.assertLessEqual(peak[0], 64 << 20)
        self.assertLessEqual(os.path.getsize(f"{store}/data.mdb"), 64 << 20)
        # the evictor works behind the fills (the last publishes can leave it
        # above the watermark for a moment): let it finish its rounds
        deadline = time.monotonic() + 10
        while True:
            m = h.metrics(*edge.addr["admin"])
            if (m["meshcdn_edge_evictions_total"] > 500 and m["meshcdn_edge_store_bytes"] <= 64 * (1 << 20) * 0.80) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertLessEqual(m["meshcdn_edge_store_bytes"], 64 * (1 << 20) * 0.80)
        self.assertGreater(m["meshcdn_edge_evictions_total"], 500)
        self.assertEqual(self.origin.count("/d0.bin"), 1)


if __name__ == "__main__":
    unittest.main()
