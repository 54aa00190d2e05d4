#!/usr/bin/env python3
"""reload.py — how long a SIGHUP reload takes and whether requests in flight
notice it (issue 9). Four keep-alive viewers fetch 64 KiB hits while the
edge reloads 50 times a config of 32 behaviors (a TTL changing each time).

    MESHCDN_BUILD=build-rel tests/bench/reload.py
"""
import datetime, os, re, signal, socket, sys, threading, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
os.environ.setdefault("MESHCDN_BUILD", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build-rel"))
import mcharness as h
from scriptorigin import ScriptOrigin

o = ScriptOrigin()
for i in range(100):
    o.route(f"/m/n{i}.bin", lambda req, i=i: (200, {"Cache-Control": "max-age=600"}, b"x" * 65536))
tmp = h.tempdir()
conf = f"{tmp}/edge.ini"
def write(ttl):
    beh = "".join(f"/p{i:02d}/ = max_ttl={ttl}s query=none\n" for i in range(31)) + f"/m/ = max_ttl={ttl}s\n"
    with open(conf + ".n", "w") as f:
        f.write(f"[origin]\nurl = {o.url}\nsign = none\n[behavior]\n{beh}")
    os.replace(conf + ".n", conf)
write(100)
d = h.Daemon("meshcdn-edge", ["--config", conf, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                              "--store", f"{tmp}/store", "--store-size", "256M", "--workers", "2"],
             listeners=("http", "admin"))
host, port = d.addr["http"]
stop = threading.Event(); counts = [0]; errs = []
def viewer(k):
    s = socket.create_connection((host, port), timeout=10)
    n = 0
    while not stop.is_set():
        i = (n * 7 + k) % 100
        s.sendall(f"GET /m/n{i}.bin HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        st, _, body, c = h.read_response(s)
        if st != 200 or len(body) != 65536 or not c:
            errs.append(st)
        n += 1
    counts[0] += n
ts = [threading.Thread(target=viewer, args=(k,)) for k in range(4)]
for t in ts: t.start()
lat = []
for r in range(50):
    write(100 + r + 1)
    before = d.log().count("configuration reloaded")
    t0 = time.time()
    d.proc.send_signal(signal.SIGHUP)
    while d.log().count("configuration reloaded") == before:
        time.sleep(0.002)
    tsv = re.findall(r"ts=(\S+) level=info mod=main msg=\"configuration reloaded\"", d.log())[-1]
    t1 = datetime.datetime.strptime(tsv, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    lat.append((t1 - t0) * 1000)
    time.sleep(0.05)
stop.set()
for t in ts: t.join()
lat.sort()
print(f"reloads=50 behaviors=32 p50_ms={lat[25]:.1f} max_ms={lat[-1]:.1f} (signal sent to the reloaded line's own timestamp, ms resolution)")
print(f"requests_during_reloads={counts[0]} errors={len(errs)}")
d.stop(); o.stop()
import shutil
shutil.rmtree(tmp, True)
