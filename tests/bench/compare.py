#!/usr/bin/env python3
"""compare.py — meshcdn-edge side by side with nginx proxy_cache, Varnish and static nginx.

Run through tests/bench/compare.sh (it installs the packages and builds
meshcdn in Release first); see tests/bench/README.md for what is measured and
how to read the table. stdlib only.

Placement on the 2-core machine: every server under test gets one worker on
core 1 (`taskset -c 1`); wrk, meshcdn-load and the origins run on core 0.
Everything listens on 127.0.0.1, on ports the kernel hands out; nginx and
Varnish run as the current user from configs, temp, pid and cache
directories under the run directory (nothing under /etc or the system
services is touched).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))

SIZES = [("4k", 4096), ("64k", 65536), ("1M", 1 << 20), ("16M", 16 << 20)]
# wrk connections per object size: enough to keep one worker busy, few enough
# that the 16 MiB row measures bytes/s rather than queueing.
CONNS = {"4k": 64, "64k": 32, "1M": 16, "16M": 4}
TARGETS = ["meshcdn", "nginx-cache", "varnish", "nginx-static"]
PEERS = [("nginx-cache", "×nginx"), ("varnish", "×varnish"), ("nginx-static", "×static")]

procs = []          # every process we started, stopped in reverse order at exit


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(name, argv, logpath, core):
    out = open(logpath, "ab")
    p = subprocess.Popen(["taskset", "-c", str(core)] + argv, stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    out.close()
    p.bench_name = name
    procs.append(p)
    return p


def stop(p, timeout=15):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in procs:
        procs.remove(p)


mounts = []


def stop_all():
    for p in reversed(list(procs)):
        stop(p)
    for m in mounts:
        subprocess.run(["umount", m], stderr=subprocess.DEVNULL)
    mounts.clear()


def wait_port(port, proc, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} at start-up (see its log)")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on 127.0.0.1:{port} in {timeout}s")


def get(port, path, timeout=30):
    """GET a path; returns (status, headers as a lower-cased dict, body length)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            n = len(r.read())
            return r.status, {k.lower(): v for k, v in r.getheaders()}, n
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, 0


def is_hit(target, headers):
    """Each cache's own verdict that an answer came from its store."""
    if target == "meshcdn":
        return headers.get("x-cache", "").startswith("Hit")
    if target == "nginx-cache":
        return headers.get("x-cache-status", "") == "HIT"
    if target == "varnish":      # two transaction ids: this one and the one that stored it
        return len(headers.get("x-varnish", "").split()) == 2
    return True                  # static files: nothing to miss


def tree_rss(pid):
    """(RSS, anonymous RSS) in bytes of pid and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    rss = anon = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("RssAnon:"):
                        anon += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, anon


# ---- the origins ---------------------------------------------------------------

class Origin:
    """meshcdn-origin over the run's catalog, anonymous reads (nginx and Varnish cannot
    sign SigV4), counting requests in its /metrics."""

    def __init__(self, a, run):
        self.port, self.cport = free_port(), free_port()
        self.p = start("origin", [f"{a.exe}/mcb-origin", "--root", f"{run}/root",
                                  "--anonymous-read", "--listen", f"127.0.0.1:{self.port}",
                                  "--control", f"127.0.0.1:{self.cport}",
                                  "--origin.log_level", "warn"], f"{run}/origin.log", 0)
        wait_port(self.cport, self.p, "meshcdn-origin")

    def requests(self):
        if self.p.poll() is not None:
            raise SystemExit(f"meshcdn-origin exited with {self.p.returncode} (see origin.log)")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.cport}/metrics", timeout=10) as r:
            text = r.read().decode()
        return int(sum(float(line.split()[-1]) for line in text.splitlines()
                       if line.startswith("meshcdn_origin_requests_total")))


class SlowOrigin:
    """tests/bench/slow_origin.py: any path, fixed body, answered after a delay."""

    def __init__(self, run, delay_s, size):
        self.port = free_port()
        self.p = start("slow-origin", [sys.executable, f"{HERE}/slow_origin.py", "--port",
                                       str(self.port), "--delay", str(delay_s), "--size", str(size)],
                       f"{run}/slow-origin.log", 0)
        wait_port(self.port, self.p, "slow_origin.py")

    def requests(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__count", timeout=10) as r:
            return int(r.read())


# ---- the servers under test ------------------------------------------------------

NGINX_MAIN = """# generated by tests/bench/compare.py
user {user} {group};
worker_processes 1;
master_process on;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    types {{ model/gltf-binary glb; model/gltf+json gltf; image/png png; application/json json; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush {nopush};
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
{body}
}}
"""

NGINX_CACHE = """    upstream origin {{ server 127.0.0.1:{oport}; keepalive 64; }}
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=bench:64m {max_size}inactive=7d use_temp_path=off;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://origin/assets/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}"""

NGINX_STATIC = """    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
    }}"""

VCL = """vcl 4.1;
# generated by tests/bench/compare.py: the built-in VCL does the rest (it caches
# every GET/HEAD without Cookie/Authorization for the origin's max-age)
backend origin {{ .host = "127.0.0.1"; .port = "{oport}"; }}
sub vcl_backend_fetch {{ set bereq.url = "/assets" + bereq.url; }}
"""


class Target:
    def __init__(self, name, port, proc, d, admin=None):
        self.name, self.port, self.p, self.dir, self.admin = name, port, proc, d, admin

    def bytes_held(self):
        """Bytes of cached objects the cache holds now, read the cache's own way."""
        if self.name.startswith("meshcdn"):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=10) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("meshcdn_edge_store_bytes"):
                        return int(float(line.split()[-1]))
            return 0
        if self.name.startswith("nginx-cache"):   # file sizes (not du: levels=1:2 makes 4096 directories)
            n = 0
            for root, _, files in os.walk(f"{self.dir}/cache"):
                for fn in files:
                    try:
                        n += os.stat(os.path.join(root, fn)).st_size
                    except OSError:
                        pass
            return n
        if self.name == "varnish":       # malloc storage in use (bodies, headers, object structs)
            out = subprocess.run(["varnishstat", "-n", f"{self.dir}/work", "-1", "-f", "SMA.s0.g_bytes"],
                                 capture_output=True, text=True).stdout.split()
            return int(out[1]) if len(out) > 1 else 0
        return 0


def start_meshcdn(a, d, oport, cache_bytes):
    os.makedirs(d)
    port, admin = free_port(), free_port()
    p = start("meshcdn", [f"{a.exe}/mcb-edge", "--origin", f"http://127.0.0.1:{oport}/assets",
                          "--origin-sign", "none", "--store", f"{d}/store",
                          "--store-size", str(cache_bytes), "--workers", "1",
                          "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
                          "--node-id", "bench", "--log-level", "warn",
                          # the bodies are placeholder bytes named .glb: stored unchecked,
                          # as by the caches it is compared with
                          "--cache.mesh_validation", "off"], f"{d}/edge.log", 1)
    wait_port(port, p, "meshcdn-edge")
    return Target("meshcdn", port, p, d, admin)


def nginx_conf(d, body, nopush):
    import grp
    import pwd
    for t in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(f"{d}/tmp/{t}", exist_ok=True)
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(NGINX_MAIN.format(user=pwd.getpwuid(os.getuid()).pw_name,
                                  group=grp.getgrgid(os.getgid()).gr_name, dir=d, body=body,
                                  nopush=nopush))


def start_nginx(name, d, body, port):
    # tcp_nopush off for the cache: with it on, a 64 KiB hit waits ~40 ms for a
    # delayed ACK every time (corked tail + Nagle); static files do not show it.
    nginx_conf(d, body, "off" if name.startswith("nginx-cache") else "on")
    # -e: the start-up error log too goes to the run dir, not /var/log/nginx
    p = start(name, ["nginx", "-p", d, "-c", f"{d}/nginx.conf", "-e", f"{d}/error.log"],
              f"{d}/stdout.log", 1)
    wait_port(port, p, name)
    return Target(name, port, p, d)


def start_nginx_cache(d, oport, cache_bytes, fs_bytes=None):
    """fs_bytes: the cache directory is a tmpfs of that size, so nginx cannot
    hold more than its budget between two passes of its cache manager (with
    max_size alone it held 4.7x on average). Needs mount rights (root)."""
    os.makedirs(d)
    port = free_port()
    name = "nginx-cache"
    if fs_bytes:
        os.makedirs(f"{d}/cache")
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={fs_bytes},mode=0755", "tmpfs", f"{d}/cache"],
                       check=True)
        mounts.append(f"{d}/cache")
        name = "nginx-cache-fs"
    # with a max_size, its cache manager at full speed (the defaults, 100 files
    # per pass and 50 ms sleeps, let it hold 4.7x max_size on average)
    ms = (f"max_size={cache_bytes} manager_files=100000 manager_sleep=1ms manager_threshold=1000ms "
          if cache_bytes else "")
    return start_nginx(name, d, NGINX_CACHE.format(oport=oport, dir=d, port=port,
                                                   max_size=ms), port)


def start_nginx_static(d, root):
    os.makedirs(d)
    port = free_port()
    return start_nginx("nginx-static", d, NGINX_STATIC.format(port=port, root=root), port)


def start_varnish(d, oport, cache_bytes):
    os.makedirs(d)
    port = free_port()
    with open(f"{d}/bench.vcl", "w") as f:
        f.write(VCL.format(oport=oport))
    # -j none: no privilege separation, runs as whoever we are; -n: its own work dir
    p = start("varnish", ["varnishd", "-F", "-j", "none", "-n", f"{d}/work", "-a",
                          f"127.0.0.1:{port}", "-T", "none", "-f", f"{d}/bench.vcl",
                          "-s", f"malloc,{cache_bytes}", "-p", "thread_pools=1"],
              f"{d}/varnishd.log", 1)
    wait_port(port, p, "varnishd", timeout=60)
    return Target("varnish", port, p, d)


def bench_exe(a, run):
    """The benches' common start: a.exe = RUN/bin with the daemons linked
    under other names (on a shared development machine a neighbour's `pkill
    meshcdn-origin` once stopped the bench's origin mid-run: same binaries,
    another process name), and SIGINT/SIGTERM exit through the callers'
    `finally` (which stops what they started)."""
    a.exe = f"{run}/bin"
    os.makedirs(a.exe, exist_ok=True)
    for src, dst in (("meshcdn-origin", "mcb-origin"), ("meshcdn-edge", "mcb-edge")):
        if not os.path.lexists(f"{a.exe}/{dst}"):
            os.symlink(f"{a.bin}/{src}", f"{a.exe}/{dst}")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))


def hot_objects(a, run, labels):
    """One GLB of each size label (4k, 64k, 1M, 16M) under hot/LABEL/ in
    RUN/root/assets (meshcdn-load catalog, seed 3); {label: its path}."""
    paths = {}
    for label in labels:
        subprocess.run([f"{a.bin}/meshcdn-load", "catalog", "--out", f"{run}/root/assets", "--count", "1",
                        "--seed", "3", "--sizes", f"fixed:{label}", "--gltf-count", "0", "--prefix",
                        f"hot/{label}/"], check=True, stderr=subprocess.DEVNULL)
        with open(f"{run}/root/assets/index.json") as f:
            paths[label] = json.load(f)["objects"][0]["path"]
    return paths


def start_caches(a, run, phase, oport, cache_bytes, nginx_max=None):
    base = f"{run}/{phase}"
    return [start_meshcdn(a, f"{base}/meshcdn", oport, cache_bytes),
            start_nginx_cache(f"{base}/nginx-cache", oport, nginx_max),
            start_varnish(f"{base}/varnish", oport, cache_bytes)]


# ---- wrk -------------------------------------------------------------------------

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNIT[m.group(2)]


def wrk(url, conns, secs, script=None):
    argv = ["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency",
            "--timeout", "10s"]
    if script:
        argv += ["-s", script]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
         "p50": ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
         "p99": ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
         "errors": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["errors"] += int(m.group(1))
    return r


def median_of(runs):
    keys = ("rps", "p50", "p99") + (("load_rps",) if all("load_rps" in r for r in runs) else ())
    return {k: statistics.median(r[k] for r in runs) for k in keys} | {
        "errors": sum(r["errors"] for r in runs), "rounds": len(runs),
        "origin_requests": sum(r.get("origin_requests", 0) for r in runs)}


# ---- phase 1: hot hits -----------------------------------------------------------

def hot(a, run, origin, paths):
    sizes = [s for s in SIZES if s[0] in a.sizes]
    targets = start_caches(a, run, "hot", origin.port, 4 << 30)
    targets.insert(3, start_nginx_static(f"{run}/hot/nginx-static", f"{run}/root/assets"))
    for t in targets:                           # warm, then demand a hit by each one's header
        for label, size in sizes:
            for _ in range(3):
                st, h, n = get(t.port, paths[label])
            if st != 200 or n != size or not is_hit(t.name, h):
                raise SystemExit(f"{t.name} {label}: not a hit after warming: status {st}, "
                                 f"{n} bytes, headers {h}")
    log(f"hot: all {len(targets)} targets warm, every size a hit by its own header")
    runs = {}
    for rnd in range(a.rounds):
        for label, size in sizes:
            for t in targets:                   # interleaved: round → size → target
                before = origin.requests()
                r = wrk(f"http://127.0.0.1:{t.port}{paths[label]}", CONNS[label], a.duration)
                r["origin_requests"] = origin.requests() - before
                st, h, _ = get(t.port, paths[label])
                r["hit_after"] = is_hit(t.name, h)
                if not r["hit_after"]:
                    r["errors"] += 1
                if a.with_load:             # the same load from the project's own tool
                    before = origin.requests()
                    lr = load_hot(a, run, t, paths[label], CONNS[label])
                    r["load_rps"] = lr["rps"]
                    r["origin_requests"] += origin.requests() - before
                    r["errors"] += lr["errors"]
                runs.setdefault((t.name, label), []).append(r)
                log(f"hot round {rnd + 1}/{a.rounds} {label:>3} {t.name:<12} {r['rps']:>10.0f} req/s "
                    f"(meshcdn-load {r.get('load_rps', 0):.0f}) "
                    f"p50 {r['p50']:.3f} ms p99 {r['p99']:.3f} ms origin +{r['origin_requests']} errors {r['errors']}")
    rss = {t.name: tree_rss(t.p.pid) for t in targets}
    for t in targets:
        stop(t.p)
    res = {k: median_of(v) for k, v in runs.items()}
    return sizes, res, rss


def load_hot(a, run, t, path, conns):
    trace = f"{run}/hot/trace-{t.name}"
    with open(trace, "w") as f:
        f.write(path + "\n")
    rj = f"{run}/hot/load-{t.name}.json"
    subprocess.run(["taskset", "-c", "0", f"{a.bin}/meshcdn-load", "run", "--target",
                    f"http://127.0.0.1:{t.port}", "--trace", trace, "--connections", str(conns),
                    "--duration", f"{a.duration}s", "--quiet", "--json", rj], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(rj) as f:
        tot = json.load(f)["total"]
    return {"rps": tot["requests_per_s"], "errors": sum(tot["errors"].values())}


def hot_table(sizes, res, rss):
    out = ["| size | conns | target | req/s | MB/s | p50 ms | p99 ms | ×nginx-cache | ×varnish | ×static "
           "| meshcdn-load req/s | ×nginx-cache by meshcdn-load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, size in sizes:
        for t in TARGETS:
            r = res.get((t, label))
            if not r:
                continue
            flag = " ⚠" if r["errors"] or r["origin_requests"] else ""
            ratios = []
            for peer, _ in PEERS:
                pr = res.get((peer, label))
                ratios.append(f"{r['rps'] / pr['rps']:.2f}" if pr and pr["rps"] else "-")
            name = f"**{t}**" if t.startswith("meshcdn") else t
            base = res.get(("nginx-cache", label), {})
            if "load_rps" in r:
                ratios += [f"{r['load_rps']:,.0f}",
                           f"{r['load_rps'] / base['load_rps']:.2f}" if base.get("load_rps") else "-"]
            else:
                ratios += ["-", "-"]
            out.append(f"| {label} | {CONNS[label]} | {name}{flag} | {r['rps']:,.0f} | "
                       f"{r['rps'] * size / 1e6:,.0f} | {r['p50']:.3f} | {r['p99']:.3f} | "
                       + " | ".join(ratios) + " |")
    out += ["", "⚠: wrk counted socket errors, timeouts or non-2xx answers, or the origin saw a request "
            "during the measurement (so not every answer was a hit).", "",
            "| target | RSS after (MiB, whole process tree) | of which anonymous |", "|---|---|---|"]
    for t in TARGETS:
        if t in rss:
            out.append(f"| {t} | {rss[t][0] / 2**20:.1f} | {rss[t][1] / 2**20:.1f} |")
    return "\n".join(out)


# ---- phase 2: the miss path --------------------------------------------------------

COLD_LUA = """-- every request a path never asked before: a cold object per request
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/cold/%s/" .. n .. ".glb")
end
"""


def miss(a, run):
    slow = SlowOrigin(run, a.miss_delay_ms / 1000.0, a.miss_size)
    targets = start_caches(a, run, "miss", slow.port, 4 << 30)
    runs = {}
    for rnd in range(a.rounds):
        for t in targets:
            script = f"{run}/miss/cold-{t.name}-{rnd}.lua"
            with open(script, "w") as f:
                f.write(COLD_LUA % f"{t.name}-{rnd}")
            before = slow.requests()
            r = wrk(f"http://127.0.0.1:{t.port}/", a.miss_conns, a.miss_duration, script)
            r["origin_requests"] = slow.requests() - before
            r["requests"] = r["rps"] * a.miss_duration
            runs.setdefault(t.name, []).append(r)
            log(f"miss round {rnd + 1}/{a.rounds} {t.name:<12} {r['rps']:>8.0f} req/s p50 {r['p50']:.2f} ms "
                f"p99 {r['p99']:.2f} ms origin +{r['origin_requests']}")
    rss = {t.name: tree_rss(t.p.pid) for t in targets}
    for t in targets:
        stop(t.p)
    script = f"{run}/miss/cold-direct.lua"
    with open(script, "w") as f:
        f.write(COLD_LUA % "direct")
    r = wrk(f"http://127.0.0.1:{slow.port}/", a.miss_conns, a.miss_duration, script)
    r["origin_requests"] = r["requests"] = r["rps"] * a.miss_duration
    runs["origin-direct"] = [r]
    rss["origin-direct"] = tree_rss(slow.p.pid)
    log(f"miss origin-direct {r['rps']:>8.0f} req/s p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms")
    stop(slow.p)
    res = {}
    for name, v in runs.items():
        res[name] = median_of(v)
        res[name]["origin_per_request"] = statistics.median(
            r["origin_requests"] / max(1.0, r["requests"]) for r in v)
    return res, rss


def miss_table(a, res, rss):
    ideal = a.miss_conns / (a.miss_delay_ms / 1000.0)
    out = [f"| target | req/s | p50 ms | p99 ms | origin requests per request | ×nginx-cache | RSS after MiB |",
           "|---|---|---|---|---|---|---|"]
    for t in ("meshcdn", "nginx-cache", "varnish", "origin-direct"):
        r = res.get(t)
        if not r:
            continue
        base = res.get("nginx-cache")
        ratio = f"{r['rps'] / base['rps']:.2f}" if base and base["rps"] else "-"
        name = f"**{t}**" if t.startswith("meshcdn") else t
        out.append(f"| {name}{' ⚠' if r['errors'] else ''} | {r['rps']:,.0f} | {r['p50']:.2f} | "
                   f"{r['p99']:.2f} | {r['origin_per_request']:.2f} | {ratio} | {rss[t][0] / 2**20:.1f} |")
    out.append(f"\n(origin-direct: wrk straight at slow_origin.py, no cache; the ceiling with "
               f"{a.miss_conns} connections and a {a.miss_delay_ms:g} ms origin is {ideal:,.0f} req/s)")
    return "\n".join(out)


# ---- phase 3: hit ratio under a small cache ------------------------------------------

def zipf_drive(a, t, origin, index, rj):
    """One cold cache through the Zipf trace: requests, origin requests (counted
    at the origin), errors, and the bytes the cache held, sampled every 0.2 s."""
    before = origin.requests()
    lp = subprocess.Popen(["taskset", "-c", "0", f"{a.bin}/meshcdn-load", "run", "--target",
                           f"http://127.0.0.1:{t.port}", "--index", index, "--zipf", "0.9",
                           "--seed", "1", "--requests", str(a.zipf_requests), "--connections", "16",
                           "--quiet", "--json", rj], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    held = []
    while lp.poll() is None:        # how far over its budget each cache goes, sampled
        held.append(t.bytes_held())
        time.sleep(0.2)
    if lp.returncode != 0:
        raise SystemExit(f"meshcdn-load run against {t.name} failed ({lp.returncode})")
    held.append(t.bytes_held())
    with open(rj) as f:
        tot = json.load(f)["total"]
    n = origin.requests() - before
    errs = sum(v for k, v in tot.get("errors", {}).items()) if isinstance(tot.get("errors"), dict) else 0
    log(f"zipf {t.name:<14} {tot['requests']} requests, origin {n}, "
        f"hit ratio at the origin {1 - n / max(1, tot['requests']):.4f}, "
        f"held mean {statistics.mean(held) / 1e6:.1f} MB")
    return {"requests": tot["requests"], "origin": n, "rps": tot["requests_per_s"], "errors": errs,
            "rss": tree_rss(t.p.pid), "peak": max(held), "mean": statistics.mean(held)}


def zipf(a, run, origin, index):
    with open(index) as f:
        objs = json.load(f)["objects"]
    total = sum(o["size"] for o in objs)
    budget = total // 10
    targets = start_caches(a, run, "zipf", origin.port, budget, nginx_max=budget)
    if os.geteuid() == 0:   # nginx held to its budget by its filesystem too
        targets.append(start_nginx_cache(f"{run}/zipf/nginx-cache-fs", origin.port, budget, fs_bytes=budget))
    res = {}
    for t in targets:
        res[t.name] = zipf_drive(a, t, origin, index, f"{run}/zipf/{t.name}.json")
        stop(t.p)
    # nginx-cache-cal: nginx proxy_cache with max_size scaled down until the
    # bytes it actually holds (mean of the samples) are the budget, so it is
    # judged on the same bytes as the others without running out of space.
    mean, max_size = res["nginx-cache"]["mean"], budget
    for i in range(3):
        if abs(mean / budget - 1) <= 0.15:
            break
        max_size = max(1 << 20, int(max_size * budget / max(1, mean)))
        t = start_nginx_cache(f"{run}/zipf/nginx-cache-cal{i}", origin.port, max_size)
        t.name = "nginx-cache-cal"
        r = zipf_drive(a, t, origin, index, f"{run}/zipf/nginx-cache-cal{i}.json")
        stop(t.p)
        r["max_size"], mean = max_size, r["mean"]
        res["nginx-cache-cal"] = r
    # meshcdn-nginx-bytes: meshcdn with a store the size of the most bytes
    # nginx held (its sampled peak), to compare the two under the same limit
    nb = int(res["nginx-cache"]["peak"])
    if nb > budget * 1.15:
        t = start_meshcdn(a, f"{run}/zipf/meshcdn-nginx-bytes", origin.port, nb)
        t.name = "meshcdn-nginx-bytes"
        res[t.name] = zipf_drive(a, t, origin, index, f"{run}/zipf/{t.name}.json")
        res[t.name]["store_size"] = nb
        stop(t.p)
    sim = subprocess.run(["taskset", "-c", "0", f"{a.bin}/meshcdn-load", "simulate", "--cache-size",
                          str(budget), "--index", index, "--zipf", "0.9", "--seed", "1",
                          "--requests", str(a.zipf_requests)], capture_output=True, text=True).stdout
    return res, total, budget, sim


def zipf_table(res, total, budget, sim):
    out = [f"catalog {total / 1e6:.1f} MB, each cache limited to {budget / 1e6:.1f} MB (10%)", "",
           "| target | requests | origin requests | hit ratio (at the origin) | ×nginx-cache origin requests "
           "| bytes held: mean, peak (sampled, ×budget) | RSS after MiB |",
           "|---|---|---|---|---|---|---|"]
    base = res.get("nginx-cache")
    belady = next((float(l.split()[1]) for l in sim.splitlines() if l.startswith("belady")), None)
    for t in ("meshcdn", "nginx-cache", "nginx-cache-cal", "nginx-cache-fs", "varnish", "meshcdn-nginx-bytes"):
        r = res.get(t)
        if not r:
            continue
        ratio = f"{r['origin'] / base['origin']:.2f}" if base and base["origin"] else "-"
        name = f"**{t}**" if t.startswith("meshcdn") else t
        out.append(f"| {name}{' ⚠' if r['errors'] else ''} | {r['requests']} | {r['origin']} | "
                   f"{1 - r['origin'] / max(1, r['requests']):.4f}"
                   f"{' (over Belady)' if belady and t != 'meshcdn-nginx-bytes' and 1 - r['origin'] / max(1, r['requests']) > belady + 0.005 else ''}"
                   f" | {ratio} | "
                   f"{r['mean'] / budget:.2f}, {r['peak'] / budget:.2f} | {r['rss'][0] / 2**20:.1f} |")
    if "nginx-cache-cal" in res:
        out += ["", f"nginx-cache-cal: the same nginx with max_size={res['nginx-cache-cal']['max_size']} "
                "(scaled down from the budget until the bytes it holds average the budget)."]
    if "meshcdn-nginx-bytes" in res:
        r = res["meshcdn-nginx-bytes"]
        out += ["", f"meshcdn-nginx-bytes: meshcdn with --store-size {r['store_size']} (the most bytes nginx-cache "
                f"held, sampled: {r['store_size'] / budget:.2f}x the budget; its bytes-held column is still "
                "relative to the 10% budget)."]
    if "nginx-cache-fs" in res:
        out += ["", "nginx-cache-fs: the same nginx with its cache directory on a tmpfs of the budget's size "
                "(max_size alone does not hold nginx to it)."]
    if belady is not None:
        out += ["", f"(over Belady): a hit ratio above {belady:.4f}, the optimum for the budget on this "
                "sequence (Belady's MIN below), is only reachable by holding more bytes than the budget."]
    out += ["", "simulator, same sequence and byte budget:", "```", sim.strip(), "```"]
    return "\n".join(out)


# ---- main ------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="meshcdn vs nginx proxy_cache vs Varnish vs static nginx")
    ap.add_argument("--bin", required=True, help="build directory with the meshcdn binaries")
    ap.add_argument("--quick", action="store_true", help="2 sizes, 1 round, short runs (~1-2 min)")
    ap.add_argument("--run-dir", help="where configs, stores and logs go (default: a new temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the run dir")
    ap.add_argument("--only", default="hot,miss,zipf", help="phases to run (comma list)")
    ap.add_argument("--no-load", dest="with_load", action="store_false",
                    help="hot phase: wrk only, not also meshcdn-load")
    ap.add_argument("--sizes", dest="size_list", help="hot phase sizes, comma list of 4k,64k,1M,16M (default: all; --quick: 4k,1M)")
    ap.add_argument("--rounds", type=int, help="hot phase rounds (default 3; --quick: 1)")
    ap.add_argument("--seconds", "--duration", dest="seconds", type=int, help="hot phase seconds per run (default 10; --quick: 3)")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    a.sizes = ["4k", "1M"] if a.quick else [s for s, _ in SIZES]
    if a.size_list:
        known = [s for s, _ in SIZES]
        a.sizes = [s for s in known if s in a.size_list.split(",")]
        if len(a.sizes) != len(a.size_list.split(",")):
            ap.error(f"--sizes: each of {','.join(known)}")
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.duration = a.seconds or (3 if a.quick else 10)
    a.miss_duration = 3 if a.quick else 5
    a.miss_conns, a.miss_delay_ms, a.miss_size = 32, 10.0, 16384
    a.zipf_requests = 5000 if a.quick else 40000
    phases = a.only.split(",")

    run = a.run_dir or tempfile.mkdtemp(prefix="mcbench-")
    os.makedirs(run, exist_ok=True)
    bench_exe(a, run)
    try:
        log(f"run dir {run}")
        load = f"{a.bin}/meshcdn-load"
        paths = hot_objects(a, run, [label for label, _ in SIZES])
        subprocess.run([load, "catalog", "--out", f"{run}/root/assets", "--count", "2000", "--seed", "7",
                        "--sizes", "lognormal:median=64k,sigma=1.0,min=4k,max=4M"],
                       check=True, stderr=subprocess.DEVNULL)
        index = f"{run}/zipf-index.json"
        shutil.copy(f"{run}/root/assets/index.json", index)
        origin = Origin(a, run)

        report = [f"meshcdn side-by-side benchmark — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
                  f"machine: {os.cpu_count()} cores, {platform_line()}",
                  f"versions: {versions()}", f"load average at start: {loadavg()}", ""]
        if "hot" in phases:
            sizes, res, rss = hot(a, run, origin, paths)
            report += [f"## Hot hits: one object per size, wrk -t1 on core 0, {a.duration} s x "
                       f"{a.rounds} round(s), medians", "", hot_table(sizes, res, rss), ""]
            print("\n".join(report[-4:]), flush=True)
        if "miss" in phases:
            res, rss = miss(a, run)
            report += [f"## Miss path: a cold {a.miss_size // 1024} KiB object per request, origin "
                       f"{a.miss_delay_ms:g} ms away (slow_origin.py), {a.miss_conns} connections, "
                       f"{a.miss_duration} s x {a.rounds}", "", miss_table(a, res, rss), ""]
            print("\n".join(report[-4:]), flush=True)
        if "zipf" in phases:
            res, total, budget, sim = zipf(a, run, origin, index)
            report += [f"## Zipf(0.9), seed 1, {a.zipf_requests} requests, 16 connections "
                       f"(meshcdn-load on core 0), cold start", "", zipf_table(res, total, budget, sim), ""]
            print("\n".join(report[-4:]), flush=True)
        report.insert(4, f"load average at end: {loadavg()}")
        with open(f"{run}/report.md", "w") as f:
            f.write("\n".join(report) + "\n")
        print("\n".join(report[:5]))
        log(f"report: {run}/report.md" if a.keep or a.run_dir else
            "(run dir removed; --keep or --run-dir DIR keeps configs, logs and report.md)")
    finally:
        stop_all()
        if not a.keep and not a.run_dir:
            shutil.rmtree(run, ignore_errors=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def platform_line():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, kernel {os.uname().release}"


def versions():
    def first(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    return "; ".join([first(["nginx", "-v"]), first(["varnishd", "-V"]).split(" revision")[0].replace("varnishd (", ""),
                      first(["wrk", "-v"]).split(" [")[0]])


if __name__ == "__main__":
    main()
