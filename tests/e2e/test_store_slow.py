"""No long readers: 50 slow clients downloading large objects during heavy
fills and evictions; the LMDB map stays bounded and no write meets a full map."""

import os
import random
import re
import threading
import time
import unittest

import mcharness as h
from storecase import BUCKET, CHUNK, StoreCase, check_store, flip_byte


class SlowReaders:
    """n viewers on raw sockets, each GETting one path and reading `rate`
    bytes per tick: slow downloads that keep the edge streaming for seconds."""

    def __init__(self, addr, paths, rate=32 * 1024):
        import socket
        self.conns = []
        for path in paths:
            sk = socket.create_connection(addr, timeout=10)
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sk.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            sk.setblocking(False)
            self.conns.append({"sock": sk, "path": path, "data": bytearray(), "eof": False})
        self.rate = rate

    def tick(self):
        for c in self.conns:
            if c["eof"]:
                continue
            try:
                chunk = c["sock"].recv(self.rate)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                c["data"] += chunk
            else:
                c["eof"] = True
                c["sock"].close()

    def close(self):
        for c in self.conns:
            if not c["eof"]:
                c["sock"].close()

    def bodies(self):
        """(path, body so far, complete) for each viewer."""
        out = []
        for c in self.conns:
            head, _, body = bytes(c["data"]).partition(b"\r\n\r\n")
            m = re.search(rb"Content-Length: (\d+)", head)
            out.append((c["path"], body, bool(m) and len(body) == int(m.group(1)), head))
        return out


class TestSlowReaders(StoreCase):
    def test_map_stays_bounded_with_50_slow_clients_during_churn(self):
        size = 64 << 20
        rng = random.Random(11)
        big = {self.put(f"big/{i}.glb", rng.randbytes(6 << 20)): None for i in range(4)}
        for p in big:
            with open(os.path.join(self.root, BUCKET, p.lstrip("/")), "rb") as f:
                big[p] = f.read()
        churn = [self.put(f"churn/{i}.bin", rng.randbytes(rng.randint(256 << 10, 1 << 20)))
                 for i in range(80)]   # about 50 MiB, plus 24 MiB of big ones, through a 64 MiB store
        e = self.edge(size="64M")
        for p in big:
            self.assertEqual(self.get(e, p)[3], True)
        time.sleep(0.3)
        admin = e.addr["admin"]
        readers = SlowReaders(e.addr["http"], [p for p in big for _ in range(13)][:50], rate=8 * 1024)
        stop = threading.Event()
        answered, lock = [0], threading.Lock()

        def fill(part):
            for path in part:
                if stop.is_set():
                    return
                s, hd, b, c = h.http("GET", *e.addr["http"], path, timeout=30)
                self.assertEqual((s, c), (200, True))
                with lock:
                    answered[0] += 1

        fillers = [threading.Thread(target=fill, args=(churn[i::4],), daemon=True) for i in range(4)]
        for t in fillers:
            t.start()
        used, t0, deadline = [], time.monotonic(), time.monotonic() + 40
        while any(t.is_alive() for t in fillers) and time.monotonic() < deadline:
            for _ in range(5):
                readers.tick()
                time.sleep(0.02)
            used.append(h.metrics(*admin)["meshcdn_edge_store_map_used_bytes"])
        stop.set()
        for t in fillers:
            t.join(30)
        took = time.monotonic() - t0
        m = h.metrics(*admin)
        slow_done = sum(1 for _, _, c, _ in readers.bodies() if c)
        still = sum(1 for c in readers.conns if not c["eof"])
        for path, body, complete, head in readers.bodies():
            self.assertEqual(body, big[path][:len(body)])   # never a wrong byte
        readers.close()
        file_size = os.path.getsize(os.path.join(self.store, "data.mdb"))
        got = sum(len(b) for _, b, _, _ in readers.bodies())
        print(f"\nslow readers: {len(readers.conns)} viewers at ~{got / took / len(readers.conns) / 1024:.0f} KiB/s each "
              f"({still} still reading at the end, {slow_done} done), {answered[0]} churn fills, "
              f"evictions {m['meshcdn_edge_evictions_total']:.0f}; map used max "
              f"{max(used) / 2**20:.1f} MiB of {size / 2**20:.0f} MiB, data.mdb {file_size / 2**20:.1f} MiB, "
              f"write failures {m['meshcdn_edge_store_write_failures_total']:.0f}")
        self.assertEqual(answered[0], len(churn))
        self.assertGreater(m["meshcdn_edge_evictions_total"], 0)
        self.assertGreater(still, 25)      # the slow downloads were running throughout
        # the bound: the map never outgrows its configured size and no write
        # ever met a full map (a long reader pins freed pages and makes it full)
        self.assertLess(max(used), 0.95 * size)   # a pinned reader drives it to 100%
        self.assertLessEqual(file_size, size)
        self.assertEqual(m["meshcdn_edge_store_write_failures_total"], 0)
        self.assertEqual(m.get("meshcdn_edge_fills_unstored_total", 0), 0)

    def test_an_object_being_sent_is_not_evicted_under_it(self):
        # a slow viewer of a 14 MiB hit while 128 MiB of other objects go
        # through a 64 MiB store: without the pin the evictor takes the object
        # between two chunk reads and the viewer is cut off short (the
        # object is bigger than what the socket buffers can take at once)
        rng = random.Random(5)
        body = rng.randbytes(14 << 20)
        with open(os.path.join(self.root, BUCKET, "slow.glb"), "wb") as f:
            f.write(body)
        churn = [self.put(f"c/{i}.bin", rng.randbytes(1 << 20)) for i in range(128)]
        e = self.edge(size="64M", workers="1")
        self.assertEqual(self.get(e, "/slow.glb")[3], True)
        time.sleep(0.3)
        readers = SlowReaders(e.addr["http"], ["/slow.glb"], rate=4 * 1024)
        for i, path in enumerate(churn):
            # each asked twice: SIEVE passes over visited objects, so its hand
            # keeps coming round to the oldest, the one being sent
            for _ in range(2):
                s, hd, b, c = h.http("GET", *e.addr["http"], path, timeout=30)
                self.assertEqual((s, c), (200, True))
            readers.tick()
        m = h.metrics(*e.addr["admin"])
        self.assertGreater(m["meshcdn_edge_evictions_total"], 60)   # the store turned over
        readers.rate = 1 << 20
        deadline = time.monotonic() + 30
        while not readers.conns[0]["eof"] and time.monotonic() < deadline:
            readers.tick()
            time.sleep(0.01)
        (path, got, complete, head), = readers.bodies()
        self.assertIn(b"Hit from meshcdn", head)
        self.assertEqual(len(got), len(body))
        self.assertTrue(complete)
        self.assertEqual(got, body)


if __name__ == "__main__":
    unittest.main()
