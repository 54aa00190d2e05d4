"""The edge's LMDB store under damage, crashes and slow readers: a real edge
in front of the real signed origin, on ephemeral loopback ports."""

import os
import random
import re
import subprocess
import threading
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


class Fetcher(threading.Thread):
    """GETs random objects on fresh connections until told to stop or the edge
    dies; keeps every response that arrived complete."""

    def __init__(self, edge, paths, rng, stop):
        super().__init__(daemon=True)
        self.addr, self.paths, self.rng, self.stop = edge.addr["http"], paths, rng, stop
        self.complete = []   # (path, x-cache, body)

    def run(self):
        while not self.stop.is_set():
            path = self.rng.choice(self.paths)
            try:
                s, hd, b, c = h.http("GET", *self.addr, path, timeout=10)
            except OSError:
                if self.stop.wait(0.01):
                    return
                continue
            if c:
                self.complete.append((path, s, hd.get("x-cache", [""])[0], b))


class TestCrash(StoreCase):
    def test_kill9_during_fills_20_times_keeps_the_store_sound(self):
        seed = int(os.environ.get("MC_SEED", "5"))
        rng = random.Random(seed)
        bodies = {}

        def add_objects(prefix, n):
            # fresh keys every round, a few of them large, so every kill
            # lands among running fills
            new = []
            for i in range(n):
                size = rng.choice([2 << 20, 3 << 20]) if i % 8 == 0 else rng.randint(1, 300_000)
                body = rng.randbytes(size)
                path = self.put(f"crash/{prefix}-{i}.glb", body)
                bodies[path] = body
                new.append(path)
            return new

        old = add_objects("base", 40)
        known = set()        # seen as hits: committed, must survive every crash
        first_hits = []
        pending = 0
        for round_ in range(20):
            e = self.edge(start=False)
            t0 = time.monotonic()
            e.start()
            if known:
                path = rng.choice(sorted(known))
                while True:
                    s, hd, b, c = self.get(e, path)
                    if hd.get("x-cache") == ["Hit from meshcdn"] or time.monotonic() - t0 > 5:
                        break
                first_hits.append(time.monotonic() - t0)
                self.assertEqual((s, c, hd["x-cache"]), (200, True, ["Hit from meshcdn"]),
                                 f"round {round_}: {path} lost")
                self.assertEqual(b, bodies[path], f"round {round_}: {path} differs")
                self.assertLess(first_hits[-1], 1.0, f"round {round_}: first hit slow")
            stop = threading.Event()
            fresh = add_objects(f"r{round_}", 16)
            paths = old + fresh * 3   # weighted toward the new ones
            old += fresh
            workers = [Fetcher(e, paths, random.Random(rng.random()), stop) for _ in range(8)]
            for w in workers:
                w.start()
            time.sleep(rng.uniform(0.2, 0.7))
            e.expect_exit = None
            e.kill9()
            stop.set()
            for w in workers:
                w.join(15)
            for w in workers:
                for path, s, xc, b in w.complete:
                    self.assertEqual(s, 200)
                    self.assertEqual(len(b), len(bodies[path]), f"round {round_}: {path} truncated ({xc})")
                    self.assertEqual(b, bodies[path], f"round {round_}: {path} differs ({xc})")
                    if xc == "Hit from meshcdn":
                        known.add(path)
            r = check_store(self.store)
            self.assertEqual(r.returncode, 0, f"round {round_}:\n{r.stdout}{r.stderr}")
            pending += int(re.search(r"pending fills (\d+)", r.stdout).group(1))
        self.assertGreater(len(known), 10)
        self.assertGreater(pending, 0)   # the kills did land during fills
        print(f"\ncrash: 20 kills, {pending} fills cut off, {len(known)} objects known stored, first hit after start: "
              f"max {max(first_hits):.3f} s, median {sorted(first_hits)[len(first_hits) // 2]:.3f} s")


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
                 for i in range(120)]   # about 75 MiB through a 64 MiB store
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


if __name__ == "__main__":
    unittest.main()
