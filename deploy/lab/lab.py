#!/usr/bin/env python3
"""deploy/lab — the whole meshcdn topology of deploy/regions/ on one machine (issue #9).

    lab.py up      start it: meshcdn-origin (primary, with the Control API) and a
                   secondary origin over a sample catalog, and three regions
                   (us-east-1, eu-central-1, ap-northeast-1) each with a
                   regional tier and two edges; print the map
    lab.py down    stop every process, delete every namespace (and with them
                   the veths, bridges and qdiscs), remove the run directory
    lab.py load    meshcdn-load per region against that region's two edges;
                   per-region hit ratio and errors, and the origins' requests
    lab.py status  the map, and which processes are alive
    lab.py node kill|stop|start|pause|cont NAME    one node: SIGKILL | SIGTERM |
                   start again with the same arguments and store | SIGSTOP | SIGCONT
    lab.py drill   under load: kill a regional tier, restart it, stop the
                   primary origin; client errors and the origin's share per window

Modes (MESHCDN_LAB_MODE=auto|netns|loopback, default auto):
  netns     one network namespace per node, a bridge per region in a router
            namespace, the routers joined by a core namespace; addresses in
            10.77.0.0/16 exist only inside those namespaces (nothing is added
            to the namespace this runs in, no route leads out). tc netem on
            the veths: 1 ms per hop inside a region (4 ms round trip between
            two nodes), 80-150 ms round trip between regions and to the origin.
            auto picks it only when `ip netns add`, veths, bridges and netem all
            work; forced without netem it runs without added latency (said so).
  loopback  every node on 127.0.0.1, ports from MESHCDN_LAB_PORT_BASE (default
            18000). The same latencies come from a delaying TCP proxy
            (delayproxy.py) that every upstream link goes through: each chunk is
            held for the one-way delay in each direction, and a new connection's
            first bytes for one round trip more (the handshake).
            MESHCDN_LAB_DELAY=0: no proxy, no added latency.

Files: everything under the run directory ($MESHCDN_LAB_DIR, default run/lab/):
state.json (mode, namespaces, nodes with their pids and arguments), keys/,
root/assets/ (the catalog: meshcdn-load catalog), store/NODE, NODE.log,
load/REGION.json. Binaries from $MESHCDN_BUILD (default: build-release, built
by `up` if missing).
"""

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
REGIONS_DIR = os.path.join(TOP, "deploy", "regions")

# (region, node-id prefix as in deploy/regions, subnet number, one-way uplink delay in ms)
REGIONS = [("us-east-1", "use1", 1, 20), ("eu-central-1", "euc1", 2, 25), ("ap-northeast-1", "apne1", 3, 40)]
ORIGIN_GROUP = ("origin", "org", 10, 18)
HOP_MS = 1          # each hop inside a region (node egress, bridge port egress)
ROLES = ("tier", "edge-a", "edge-b")
HOSTS = {"tier": 10, "edge-a": 11, "edge-b": 12, "origin": 10, "origin-b": 11, "client": 100}
# deploy/regions/ ports (netns mode uses them as they are)
PORTS = {"tier": (8090, 9090), "edge-a": (8080, 9080), "edge-b": (8081, 9081),
         "origin": (9000, 9001), "origin-b": (9000, 9001)}
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def rtt_ms(a_delay, b_delay):
    """Round trip between nodes of two groups through the core: every hop counted
    both ways (node egress, uplink both ends, bridge port egress)."""
    return 2 * (HOP_MS + a_delay + b_delay + HOP_MS)


def run_dir():
    return os.path.abspath(os.environ.get("MESHCDN_LAB_DIR") or os.path.join(TOP, "run", "lab"))


def ns_prefix(rd):
    # per run directory, so two labs (a person's and a test's) never share names
    return "mclab-" + hashlib.sha1(rd.encode()).hexdigest()[:4]


def say(*a):
    print("lab:", *a, flush=True)


def sh(args, check=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip() or p.stdout.strip()}")
    return p


# ---- state -------------------------------------------------------------------------

def state_path(rd):
    return os.path.join(rd, "state.json")


def load_state(rd):
    try:
        with open(state_path(rd)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def save_state(rd, st):
    tmp = state_path(rd) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f, indent=1)
    os.replace(tmp, state_path(rd))


def pid_alive(pid, exe=None):
    """A live (not zombie) process, and when exe is given one running it: a
    recycled pid never gets our signals."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
            return False
        if exe:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            return any(a.decode(errors="replace").endswith(os.path.basename(exe)) for a in argv[:4])
        return True
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


# ---- mode detection ------------------------------------------------------------------

def probe_netns(prefix):
    """(netns usable, netem usable, why not)."""
    if os.geteuid() != 0:
        return False, False, "not root"
    if not shutil.which("ip"):
        return False, False, "no ip(8) (apt-get install iproute2)"
    a, b = f"{prefix}-probe-a", f"{prefix}-probe-b"
    try:
        for n in (a, b):
            p = sh(["ip", "netns", "add", n], check=False)
            if p.returncode != 0:
                return False, False, f"ip netns add refused: {p.stderr.strip()}"
        p = sh(["ip", "-n", a, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", b], check=False)
        if p.returncode != 0:
            return False, False, f"veth refused: {p.stderr.strip()}"
        p = sh(["ip", "-n", a, "link", "add", "br0", "type", "bridge"], check=False)
        if p.returncode != 0:
            return False, False, f"bridge refused: {p.stderr.strip()}"
        if not shutil.which("tc"):
            return True, False, "no tc(8)"
        p = sh(["ip", "netns", "exec", a, "tc", "qdisc", "add", "dev", "v0", "root", "netem", "delay", "1ms"],
               check=False)
        if p.returncode != 0:
            return True, False, f"tc netem refused: {p.stderr.strip()}"
        return True, True, ""
    finally:
        for n in (a, b):
            sh(["ip", "netns", "del", n], check=False)


# ---- topology ----------------------------------------------------------------------

def node_table(mode, base):
    """Every node: name -> dict(region, short, role, host, port, aport, group)."""
    nodes = {}

    def add(name, region, short, role, group, i):
        if mode == "netns":
            host = f"10.77.{group}.{HOSTS[role]}"
            port, aport = PORTS[role]
        else:
            host = "127.0.0.1"
            port, aport = base + i * 2, base + i * 2 + 1
        nodes[name] = {"name": name, "region": region, "short": short, "role": role, "group": group,
                       "host": host, "port": port, "aport": aport}

    add("origin", "-", "org", "origin", ORIGIN_GROUP[2], 0)
    add("origin-b", "-", "org", "origin-b", ORIGIN_GROUP[2], 1)
    i = 2
    for region, short, group, _ in REGIONS:
        for role in ROLES:
            add(f"{short}-{role}", region, short, role, group, i)
            i += 1
    return nodes


def group_delay(short):
    for _, s, _, d in REGIONS:
        if s == short:
            return d
    return ORIGIN_GROUP[3]


class Lab:
    def __init__(self, rd):
        self.rd = rd
        self.st = load_state(rd)

    def save(self):
        save_state(self.rd, self.st)

    # ---- netns plumbing ----

    def ns(self, what):
        return f"{self.st['prefix']}-{what}"

    def ns_add(self, what):
        name = self.ns(what)
        sh(["ip", "netns", "add", name])
        self.st["namespaces"].append(name)
        self.save()
        sh(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def netem(self, ns, dev, ms):
        if self.st["netem"] and ms > 0:
            sh(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", f"{ms}ms"])

    def build_netns(self):
        core = self.ns_add("core")
        sh(["ip", "netns", "exec", core, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        groups = [(ORIGIN_GROUP[1], ORIGIN_GROUP[2], ORIGIN_GROUP[3])] + [(s, g, d) for _, s, g, d in REGIONS]
        for short, g, d in groups:
            r = self.ns_add(f"r-{short}")
            sh(["ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            sh(["ip", "-n", r, "link", "add", "br0", "type", "bridge"])
            sh(["ip", "-n", r, "addr", "add", f"10.77.{g}.1/24", "dev", "br0"])
            sh(["ip", "-n", r, "link", "set", "br0", "up"])
            # uplink: core "rG" <-> router "uplink", 10.77.254.(4G+1 | 4G+2)/30
            sh(["ip", "-n", core, "link", "add", f"r{g}", "type", "veth", "peer", "name", "uplink", "netns", r])
            sh(["ip", "-n", core, "addr", "add", f"10.77.254.{4 * g + 1}/30", "dev", f"r{g}"])
            sh(["ip", "-n", core, "link", "set", f"r{g}", "up"])
            sh(["ip", "-n", r, "addr", "add", f"10.77.254.{4 * g + 2}/30", "dev", "uplink"])
            sh(["ip", "-n", r, "link", "set", "uplink", "up"])
            sh(["ip", "-n", r, "route", "add", "default", "via", f"10.77.254.{4 * g + 1}"])
            sh(["ip", "-n", core, "route", "add", f"10.77.{g}.0/24", "via", f"10.77.254.{4 * g + 2}"])
            self.netem(core, f"r{g}", d)
            self.netem(r, "uplink", d)
        hosts = [(n["name"], n["short"], n["group"], HOSTS[n["role"]]) for n in self.st["nodes"].values()]
        hosts += [(f"{s}-client", s, g, HOSTS["client"]) for _, s, g, _ in REGIONS]
        for name, short, g, hnum in hosts:
            nsn = self.ns_add(name)
            r = self.ns(f"r-{short}")
            sh(["ip", "-n", r, "link", "add", f"p{hnum}", "type", "veth", "peer", "name", "eth0", "netns", nsn])
            sh(["ip", "-n", r, "link", "set", f"p{hnum}", "master", "br0", "up"])
            sh(["ip", "-n", nsn, "addr", "add", f"10.77.{g}.{hnum}/24", "dev", "eth0"])
            sh(["ip", "-n", nsn, "link", "set", "eth0", "up"])
            sh(["ip", "-n", nsn, "route", "add", "default", "via", f"10.77.{g}.1"])
            self.netem(nsn, "eth0", HOP_MS)
            self.netem(r, f"p{hnum}", HOP_MS)

    def wrap(self, where, argv):
        """argv run inside `where`'s namespace (netns mode) or as is."""
        if self.st["mode"] == "netns":
            return ["ip", "netns", "exec", self.ns(where)] + argv
        return argv

    # ---- links (loopback proxy) ----

    def link(self, src_short, dst):
        """(host, port, rtt ms) a node of group src_short uses to reach node dst."""
        d = self.st["nodes"][dst]
        if dst in ("origin", "origin-b") or src_short != d["short"]:
            rtt = rtt_ms(group_delay(src_short), group_delay(d["short"]))
        else:
            rtt = 4 * HOP_MS
        return d["host"], d["port"], rtt

    def via(self, src_short, dst, admin=False):
        """(URL base for src_short -> dst's listener, or its admin/control one,
        through the proxy in loopback mode with delays; the link's description
        for the map)."""
        host, port, rtt = self.link(src_short, dst)
        if admin:
            port = self.st["nodes"][dst]["aport"]
        key = f"{src_short}>{dst}{'/admin' if admin else ''}"
        if self.st["mode"] == "loopback" and self.st["delay"]:
            lp = self.st["proxy"]["links"].get(key)
            if lp is None:
                lp = self.st["base"] + 100 + len(self.st["proxy"]["links"])
                self.st["proxy"]["links"][key] = lp
                self.st["proxy"]["spec"].append({"listen": lp, "host": host, "port": port,
                                                 "one_way_ms": rtt / 2, "name": key})
            return f"http://127.0.0.1:{lp}", f"{dst} via proxy 127.0.0.1:{lp}, rtt {rtt:g} ms"
        if self.st["mode"] == "netns" and self.st["netem"]:
            return f"http://{host}:{port}", f"{dst} {host}:{port}, rtt {rtt:g} ms"
        return f"http://{host}:{port}", f"{dst} {host}:{port}"

    # ---- processes ----

    def spawn(self, name, argv, ns_where=None):
        log = os.path.join(self.rd, f"{name}.log")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        full = self.wrap(ns_where or name, argv) if ns_where != "" else argv
        with open(log, "ab") as lf:
            p = subprocess.Popen(full, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, start_new_session=True, cwd=self.rd)
        return {"pid": p.pid, "exe": argv[0], "argv": argv, "log": log, "ns": ns_where if ns_where is not None else name}

    def wait_listening(self, name, want, timeout=30):
        proc = self.st["procs"][name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(proc["log"], errors="replace") as f:
                    text = f.read()
            except FileNotFoundError:
                text = ""
            if all(f"msg=listening listener={w} " in text for w in want):
                return
            if not pid_alive(proc["pid"]):
                raise RuntimeError(f"{name} exited before listening; {proc['log']}:\n{text[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{name}: not listening on {want} after {timeout} s; see {proc['log']}")

    def start_node(self, name):
        n = self.st["nodes"][name]
        b = self.st["build"]
        rd = self.rd
        if n["role"] in ("origin", "origin-b"):
            argv = [os.path.join(b, "meshcdn-origin"), "--config", os.path.join(REGIONS_DIR, "origin.ini"),
                    "--listen", f"{n['host']}:{n['port']}", "--control", f"{n['host']}:{n['aport']}",
                    "--root", f"{rd}/root", "--keys", f"{rd}/keys/origin.keys",
                    "--control.db", f"{rd}/control-{name}", "--control.operator_keys", f"{rd}/keys/operators.keys",
                    "--control.unreachable_after", "10s"]
            want = ("s3", "control")
        else:
            argv = [os.path.join(b, "meshcdn-edge"), "--config", os.path.join(REGIONS_DIR, n["region"], f"{n['role']}.ini"),
                    "--listen", f"{n['host']}:{n['port']}", "--admin", f"{n['host']}:{n['aport']}",
                    "--store", f"{rd}/store/{name}", "--workers", "1",
                    "--store-size", self.st["tier_store" if n["role"] == "tier" else "edge_store"],
                    "--credentials", f"{rd}/keys/{name}.cred", "--admin.keys", f"{rd}/keys/operators.keys",
                    "--edge.drain_timeout", "3s"] + n["flags"]
            want = ("http", "admin")
        self.st["procs"][name] = self.spawn(name, argv)
        self.save()
        return want

    def stop_proc(self, name, sig=signal.SIGINT, wait=8.0):
        proc = self.st["procs"].get(name)
        if not proc or not pid_alive(proc["pid"], proc["exe"]):
            return
        try:
            os.kill(proc["pid"], sig)
        except ProcessLookupError:
            return
        self.wait_gone(name, wait)

    def wait_gone(self, name, wait=8.0):
        """Wait for the process to end; SIGKILL it after `wait` s."""
        proc = self.st["procs"][name]
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pid_alive(proc["pid"]):
            time.sleep(0.05)
        if pid_alive(proc["pid"], proc["exe"]):
            os.kill(proc["pid"], signal.SIGKILL)
            while pid_alive(proc["pid"]):
                time.sleep(0.05)


# ---- up ------------------------------------------------------------------------------

def ensure_build():
    b = os.environ.get("MESHCDN_BUILD")
    if b:
        return os.path.abspath(b)
    b = os.path.join(TOP, "build-release")
    if not all(os.access(os.path.join(b, x), os.X_OK) for x in ("meshcdn-edge", "meshcdn-origin", "meshcdn-load")):
        say("building build-release (Release) ...")
        subprocess.run(["bash", os.path.join(TOP, "deploy", "deps.sh")], check=True)
        subprocess.run(["cmake", "-S", TOP, "-B", b, "-DCMAKE_BUILD_TYPE=Release", "-DMESHCDN_TESTS=OFF"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", b, f"-j{os.cpu_count() or 2}"], check=True, stdout=subprocess.DEVNULL)
    return b


def write_keyfile(path, pairs):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for a, s in pairs:
            f.write(f"{a} {s}\n")


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cmd_up(args):
    rd = run_dir()
    old = load_state(rd)
    if old:
        sys.exit(f"lab: {rd} holds a lab already (state.json); run deploy/lab/down first")
    build = ensure_build()
    mode = os.environ.get("MESHCDN_LAB_MODE", "auto")
    prefix = ns_prefix(rd)
    netns_ok, netem_ok, why = (False, False, "loopback asked for") if mode == "loopback" else probe_netns(prefix)
    if mode == "auto":
        mode = "netns" if (netns_ok and netem_ok) else "loopback"
        if mode == "loopback":
            say(f"no network namespaces with netem here ({why}): loopback mode")
    elif mode == "netns":
        if not netns_ok:
            sys.exit(f"lab: netns mode impossible: {why}")
        if not netem_ok:
            say(f"netns mode without added latency: {why}")
    elif mode != "loopback":
        sys.exit(f"lab: MESHCDN_LAB_MODE={mode}: use auto, netns or loopback")
    delay = os.environ.get("MESHCDN_LAB_DELAY", "1") != "0"
    base = int(os.environ.get("MESHCDN_LAB_PORT_BASE", "18000"))
    os.makedirs(os.path.join(rd, "keys"), exist_ok=True)
    os.makedirs(os.path.join(rd, "store"), exist_ok=True)
    st = {"mode": mode, "netem": mode == "netns" and netem_ok, "delay": mode == "loopback" and delay,
          "prefix": prefix, "base": base, "build": build, "namespaces": [], "procs": {},
          "edge_store": args.edge_store, "tier_store": args.tier_store,
          "nodes": node_table(mode, base), "proxy": {"links": {}, "spec": []}, "started": time.time()}
    lab = Lab(rd)
    lab.st = st
    lab.save()
    try:
        up(lab, args)
    except BaseException as e:
        say(f"up failed: {e}; stopping what was started (logs kept in {rd})")
        down(lab, keep=True)
        os.replace(state_path(rd), state_path(rd) + ".failed")
        raise SystemExit(1)
    print_map(lab)


def up(lab, args):
    st, rd = lab.st, lab.rd
    if st["mode"] == "loopback":
        used = [p for n in st["nodes"].values() for p in (n["port"], n["aport"])]
        used += list(range(st["base"] + 100, st["base"] + 100 + 40))
        busy = [p for p in used if not port_free(p)]
        if busy:
            raise RuntimeError(f"ports in use: {busy[:6]} (set MESHCDN_LAB_PORT_BASE)")
    # keys: one pair per node (origin.keys lists them all), one operator key
    pairs = []
    for name, n in st["nodes"].items():
        if n["role"] in ("origin", "origin-b"):
            continue
        pair = ("AKIDLAB" + name.upper().replace("-", ""), secrets.token_hex(20))
        write_keyfile(f"{rd}/keys/{name}.cred", [pair])
        pairs.append(pair)
    write_keyfile(f"{rd}/keys/origin.keys", pairs)
    write_keyfile(f"{rd}/keys/operators.keys", [("AKIDLABOPS", secrets.token_hex(20))])
    # the sample catalog (both origins serve the same root: the secondary is a replica)
    cat = [os.path.join(st["build"], "meshcdn-load"), "catalog", "--out", f"{rd}/root/assets",
           "--count", str(args.count), "--seed", "9", "--sizes", args.sizes, "--gltf-count", str(max(1, args.count // 20))]
    subprocess.run(cat, check=True, stdout=subprocess.DEVNULL)
    if st["mode"] == "netns":
        say("namespaces, veths and bridges" + (" with netem" if st["netem"] else " (no netem: no added latency)"))
        lab.build_netns()
    # upstream flags of every edge (and the proxy links they need)
    for name, n in st["nodes"].items():
        if n["role"] in ("origin", "origin-b"):
            n["upstreams"] = []
            continue
        o, odesc = lab.via(n["short"], "origin")
        ob, obdesc = lab.via(n["short"], "origin-b")
        c, _ = lab.via(n["short"], "origin", admin=True)      # the Control API
        flags = ["--origin", f"{o}/assets", "--origin-secondary", f"{ob}/assets", "--control", c]
        ups = [odesc, obdesc]
        if n["role"] != "tier":
            tier = f"{n['short']}-tier"
            t, tdesc = lab.via(n["short"], tier)
            th = st["nodes"][tier]
            flags += ["--parents.tier", f"{t} health=http://{th['host']}:{th['aport']}/healthz"]
            ups.insert(0, tdesc)
        n["flags"] = flags
        n["upstreams"] = ups
    lab.save()
    if st["proxy"]["spec"]:
        with open(f"{rd}/proxy.json", "w") as f:
            json.dump(st["proxy"]["spec"], f, indent=1)
        st["procs"]["proxy"] = lab.spawn("proxy", [sys.executable, os.path.join(HERE, "delayproxy.py"),
                                                   f"{rd}/proxy.json"], ns_where="")
        lab.save()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(st["procs"]["proxy"]["log"], errors="replace") as f:
                if "msg=proxy-ready" in f.read():
                    break
            if not pid_alive(st["procs"]["proxy"]["pid"]):
                raise RuntimeError("the delay proxy exited; see proxy.log")
            time.sleep(0.05)
        else:
            raise RuntimeError("the delay proxy did not start; see proxy.log")
    # origins, then the tiers, then the edges (whose parents the tiers are)
    for batch in (["origin", "origin-b"],
                  [f"{s}-tier" for _, s, _, _ in REGIONS],
                  [f"{s}-{r}" for _, s, _, _ in REGIONS for r in ROLES[1:]]):
        wants = {name: lab.start_node(name) for name in batch}
        for name, want in wants.items():
            lab.wait_listening(name, want)
    say(f"up: {len(st['nodes'])} nodes, mode {st['mode']}")


def print_map(lab):
    st = lab.st
    lat = ("netem" if st["netem"] else "none (no netem)") if st["mode"] == "netns" else \
        ("delay proxy" if st["delay"] else "none (MESHCDN_LAB_DELAY=0)")
    print(f"\nmeshcdn lab — mode {st['mode']}, added latency: {lat}; run dir {lab.rd}")
    if st["mode"] == "netns":
        print(f"namespaces {st['prefix']}-*: run a command in one with `ip netns exec {st['prefix']}-NODE CMD`; "
              f"each region's clients are in {st['prefix']}-REGION-client (e.g. {st['prefix']}-use1-client)")
    print(f"{'node':<13} {'region':<15} {'role':<9} {'address':<19} {'admin/control':<19} upstreams")
    for name, n in st["nodes"].items():
        ups = "; ".join(n.get("upstreams", [])) or f"root {lab.rd}/root (bucket assets)"
        print(f"{name:<13} {n['region']:<15} {n['role']:<9} {n['host'] + ':' + str(n['port']):<19} "
              f"{n['host'] + ':' + str(n['aport']):<19} {ups}")
    e = st["nodes"]["use1-edge-a"]
    try:
        with open(os.path.join(lab.rd, "root", "assets", "index.json")) as f:
            path = json.load(f)["objects"][0]["path"]
    except (OSError, ValueError, KeyError, IndexError):
        path = "/index.json"
    pre = f"ip netns exec {st['prefix']}-use1-client " if st["mode"] == "netns" else ""
    print(f"\ntry:  {pre}curl -sI http://{e['host']}:{e['port']}{path} | grep -E 'X-Cache|Cache-Status'")
    print("      deploy/lab/load --duration 20s        per-region hit ratio and errors")
    print("      deploy/lab/lab.py node kill use1-tier ; deploy/lab/lab.py node start use1-tier")
    print("      deploy/lab/down                       stop everything, remove", lab.rd)


# ---- down ----------------------------------------------------------------------------

def down(lab, keep=False):
    st = lab.st
    bad = []
    procs = st.get("procs", {})
    # viewers' side first, so nothing is left waiting on a stopped upstream;
    # each batch signalled at once, then waited for
    batches = [[n for n, v in st.get("nodes", {}).items() if v["role"].startswith("edge") and n in procs],
               [n for n, v in st.get("nodes", {}).items() if v["role"] == "tier" and n in procs],
               [n for n in ("origin", "origin-b") if n in procs],
               [n for n in ("proxy",) if n in procs]]
    for batch in batches:
        live = [n for n in batch if pid_alive(procs[n]["pid"], procs[n]["exe"])]
        for n in live:
            try:
                os.kill(procs[n]["pid"], signal.SIGTERM if n == "proxy" else signal.SIGINT)
                os.kill(procs[n]["pid"], signal.SIGCONT)      # one paused by `node pause`
            except ProcessLookupError:
                pass
        for n in live:
            lab.wait_gone(n, 8)
    for name, p in st.get("procs", {}).items():
        try:
            with open(p["log"], errors="replace") as f:
                found = [l for l in f.read().splitlines() if any(s in l for s in SANITIZER_PATTERNS)]
        except OSError:
            found = []
        if found:
            bad.append(f"{name}: {found[0]}")
    prefix = st.get("prefix")
    names = list(st.get("namespaces", []))
    if prefix and shutil.which("ip"):
        listed = sh(["ip", "netns", "list"], check=False).stdout.split("\n")
        names += [l.split()[0] for l in listed if l.startswith(prefix + "-")]
    for n in dict.fromkeys(names):
        sh(["ip", "netns", "del", n], check=False)
    if prefix and shutil.which("ip"):
        left = [l for l in sh(["ip", "netns", "list"], check=False).stdout.split("\n") if l.startswith(prefix + "-")]
        if left:
            bad.append(f"namespaces left: {left}")
    if not keep:
        shutil.rmtree(lab.rd, ignore_errors=True)
    return bad


def cmd_down(args):
    rd = run_dir()
    lab = Lab(rd)
    if lab.st is None:
        # nothing recorded: still remove namespaces a crashed `up` may have left
        lab.st = {"prefix": ns_prefix(rd), "procs": {}, "namespaces": []}
        if not os.path.isdir(rd):
            say("no lab in", rd)
    bad = down(lab, keep=args.keep)
    for b in bad:
        say("problem:", b)
    say("down" + (f" (kept {rd})" if args.keep else f": {rd} removed"))
    sys.exit(1 if bad else 0)


# ---- status / node -------------------------------------------------------------------

def need_lab():
    lab = Lab(run_dir())
    if lab.st is None:
        sys.exit(f"lab: no lab in {run_dir()} (deploy/lab/up)")
    return lab


def cmd_status(args):
    lab = need_lab()
    print_map(lab)
    for name, p in lab.st["procs"].items():
        print(f"  {name:<13} pid {p['pid']:<8} {'alive' if pid_alive(p['pid'], p['exe']) else 'NOT RUNNING'}")


def cmd_node(args):
    lab = need_lab()
    name = args.name
    if name not in lab.st["nodes"]:
        sys.exit(f"lab: no node {name}; nodes: {', '.join(lab.st['nodes'])}")
    p = lab.st["procs"].get(name)
    if args.action == "kill":
        lab.stop_proc(name, signal.SIGKILL, 5)
    elif args.action == "stop":
        lab.stop_proc(name, signal.SIGTERM, 10)
    elif args.action == "cont":
        if p and pid_alive(p["pid"], p["exe"]):
            os.kill(p["pid"], signal.SIGCONT)
    elif args.action == "pause":
        if p and pid_alive(p["pid"], p["exe"]):
            os.kill(p["pid"], signal.SIGSTOP)
    elif args.action == "start":
        if p and pid_alive(p["pid"], p["exe"]):
            sys.exit(f"lab: {name} is running (pid {p['pid']})")
        want = lab.start_node(name)
        lab.wait_listening(name, want)
    say(f"{name}: {args.action}")


# ---- load ----------------------------------------------------------------------------

def http_get(lab, where, url, timeout=5):
    """GET url from inside `where` (a namespace in netns mode)."""
    if lab.st["mode"] == "netns":
        p = subprocess.run(["ip", "netns", "exec", lab.ns(where), "curl", "-fsS", "--max-time", str(timeout), url],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise OSError(p.stderr.strip())
        return p.stdout
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def origin_gets(lab):
    """{origin name: GET requests served so far} (None when it does not answer)."""
    out = {}
    for name in ("origin", "origin-b"):
        n = lab.st["nodes"][name]
        try:
            m = parse_metrics(http_get(lab, name, f"http://{n['host']}:{n['aport']}/metrics"))
            out[name] = sum(v for k, v in m.items()
                            if k.startswith("meshcdn_origin_requests_total{") and 'method="GET"' in k)
        except OSError:
            out[name] = None
    return out


def cmd_load(args):
    lab = need_lab()
    st = lab.st
    outdir = os.path.abspath(args.json_dir or os.path.join(lab.rd, "load"))
    os.makedirs(outdir, exist_ok=True)
    index = os.path.join(lab.rd, "root", "assets", "index.json")
    before = origin_gets(lab)
    procs = {}
    for i, (region, short, _, _) in enumerate(REGIONS):
        argv = [os.path.join(st["build"], "meshcdn-load"), "run", "--index", index, "--zipf", str(args.zipf),
                "--seed", str(args.seed + i), "--duration", args.duration, "--connections", str(args.connections),
                "--json", os.path.join(outdir, f"{region}.json"), "--quiet", "--no-optimum",
                "--timeout", args.timeout]
        if args.rate:
            argv += ["--rate", str(args.rate)]
        for role in ROLES[1:]:
            n = st["nodes"][f"{short}-{role}"]
            argv += ["--target", f"http://{n['host']}:{n['port']}"]
        for role in ROLES[1:]:
            n = st["nodes"][f"{short}-{role}"]
            argv += ["--metrics", f"http://{n['host']}:{n['aport']}/metrics"]
        log = open(os.path.join(outdir, f"{region}.log"), "wb")
        procs[region] = subprocess.Popen(lab.wrap(f"{short}-client", argv), stdout=log, stderr=subprocess.STDOUT)
    rc = 0
    for region, p in procs.items():
        if p.wait() != 0:
            rc = 1
            say(f"{region}: meshcdn-load exited {p.returncode}; see {outdir}/{region}.log")
    after = origin_gets(lab)
    tot_req = tot_err = 0
    print(f"{'region':<15} {'requests':>9} {'req/s':>7} {'hit ratio':>9} {'errors':>7} {'p50 ms':>7} {'p99 ms':>7}  edge offload")
    summary = {"regions": {}}
    for region in procs:
        try:
            with open(os.path.join(outdir, f"{region}.json")) as f:
                t = json.load(f)["total"]
        except (OSError, ValueError, KeyError):
            print(f"{region:<15} (no report)")
            rc = 1
            continue
        errs = sum(t["errors"].values())
        detail = ",".join(f"{k}={v}" for k, v in t["errors"].items() if v)
        off = t["edge"]["origin_offload"] if t.get("edge") else float("nan")
        print(f"{region:<15} {t['requests']:>9} {t['requests_per_s']:>7.0f} {t['hit_ratio']:>9.1%} {errs:>7} "
              f"{t['latency_us']['p50'] / 1000:>7.1f} {t['latency_us']['p99'] / 1000:>7.1f}  {off:.1%} {detail}")
        tot_req += t["requests"]
        tot_err += errs
        summary["regions"][region] = {"requests": t["requests"], "hit_ratio": t["hit_ratio"], "errors": errs}
    # a counter below its start: that origin restarted meanwhile (counts from zero)
    got = {k: (after[k] - before[k] if after[k] >= before[k] else after[k])
           if after[k] is not None and before[k] is not None else None for k in after}
    og = sum(v for v in got.values() if v)
    share = og / tot_req if tot_req else 0
    print(f"origin GETs: {og:.0f} ({', '.join(f'{k} {v:.0f}' if v is not None else f'{k} down' for k, v in got.items())})"
          f" = {share:.2%} of the {tot_req} client requests; client errors: {tot_err}")
    summary.update({"origin_gets": got, "client_requests": tot_req, "client_errors": tot_err, "origin_share": share})
    with open(os.path.join(outdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    sys.exit(rc)


# ---- drill: the "done when", measured ----------------------------------------

def snapshot(lab):
    """Counters of the whole lab at one moment: client requests (the edges'),
    the requests the edges sent each region's tier, the origins' GETs."""
    st = lab.st
    snap = {"client": 0.0, "tier": {}, "origin": origin_gets(lab), "t": time.monotonic()}
    for _, short, _, _ in REGIONS:
        snap["tier"][short] = 0.0
        for role in ROLES[1:]:
            n = st["nodes"][f"{short}-{role}"]
            m = parse_metrics(http_get(lab, f"{short}-client", f"http://{n['host']}:{n['aport']}/metrics"))
            snap["client"] += sum(v for k, v in m.items() if k.startswith("meshcdn_edge_requests_total{"))
            snap["tier"][short] += sum(v for k, v in m.items()
                                       if k.startswith('meshcdn_edge_upstream_requests_total{upstream="tier",code="2'))
    return snap


def window(a, b):
    c = b["client"] - a["client"]
    o = {k: b["origin"][k] - a["origin"][k] for k in a["origin"]
         if a["origin"][k] is not None and b["origin"][k] is not None}
    return {"seconds": b["t"] - a["t"], "client": c, "origin": o, "share": sum(o.values()) / c if c else 0.0,
            "tier_share": {s: (b["tier"][s] - a["tier"][s]) / c if c else 0.0 for s in b["tier"]}}


def cmd_drill(args):
    lab = need_lab()
    st = lab.st
    tier = args.tier
    if st["nodes"].get(tier, {}).get("role") != "tier":
        sys.exit(f"lab: {tier} is not a tier")
    short = st["nodes"][tier]["short"]
    w = args.window
    total = args.warmup + 4 * w + 15
    outdir = os.path.join(lab.rd, "drill")
    say(f"load {total} s at {args.rate} req/s per region; warm-up {args.warmup} s, then windows of {w} s: "
        f"before, {tier} killed (SIGKILL), after its restart, primary origin stopped (SIGTERM)")
    # a seed of its own: an earlier `load` replayed would be all hits
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    say(f"seed {seed}")
    load = subprocess.Popen([sys.executable, os.path.abspath(__file__), "load", "--duration", f"{total}s",
                             "--rate", str(args.rate), "--json-dir", outdir, "--seed", str(seed)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(args.warmup)
        s0 = snapshot(lab)
        time.sleep(w)
        s1 = snapshot(lab)
        lab.stop_proc(tier, signal.SIGKILL, 5)
        time.sleep(w)
        s2 = snapshot(lab)
        lab.wait_listening(tier, lab.start_node(tier))
        time.sleep(1)
        s3 = snapshot(lab)
        time.sleep(w)
        s4 = snapshot(lab)
        lab.stop_proc("origin", signal.SIGTERM, 10)
        time.sleep(w)
        s5 = snapshot(lab)
        lab.wait_listening("origin", lab.start_node("origin"))
        out, _ = load.communicate()
    finally:
        if load.poll() is None:
            load.kill()
    wins = [("before", window(s0, s1)), (f"{tier} killed", window(s1, s2)),
            (f"{tier} restarted", window(s3, s4)), ("primary origin stopped", window(s4, s5))]
    print(out, end="")
    print(f"\n{'window':<24} {'client req':>10} {'origin GETs':>12} {'origin share':>12} {short + ' tier share':>16}")
    for name, x in wins:
        og = ", ".join(f"{k} {v:.0f}" for k, v in x["origin"].items())
        print(f"{name:<24} {x['client']:>10.0f} {sum(x['origin'].values()):>12.0f} {x['share']:>12.1%} "
              f"{x['tier_share'][short]:>16.1%}   ({og})")
    b, d, a = wins[0][1], wins[1][1], wins[2][1]
    rise = d["share"] - b["share"]
    trend = d["share"] - (b["share"] + a["share"]) / 2
    ok = rise <= b["tier_share"][short] and trend <= b["tier_share"][short]
    print(f"origin share rise while {tier} was down: {rise:+.1%} (against the mean of before and after: "
          f"{trend:+.1%}); {tier}'s share before: {b['tier_share'][short]:.1%} -> {'OK' if ok else 'EXCEEDED'}")
    with open(os.path.join(outdir, "drill.json"), "w") as f:
        json.dump(dict(wins), f, indent=1)
    sys.exit(0 if ok and load.returncode == 0 else 1)


# ---- command line --------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(prog="deploy/lab/lab.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="start the lab and print its map")
    u.add_argument("--count", type=int, default=int(os.environ.get("MESHCDN_LAB_COUNT", "800")),
                   help="catalog assets (default 800)")
    u.add_argument("--sizes", default=os.environ.get("MESHCDN_LAB_SIZES", "lognormal:median=32k,max=512k"),
                   help="catalog sizes (meshcdn-load catalog --sizes)")
    u.add_argument("--edge-store", default=os.environ.get("MESHCDN_LAB_EDGE_STORE", "16M"),
                   help="each edge's store size (default 16M: part of the catalog, so edges keep missing)")
    u.add_argument("--tier-store", default=os.environ.get("MESHCDN_LAB_TIER_STORE", "128M"),
                   help="each tier's store size (default 128M: the whole catalog)")
    d = sub.add_parser("down", help="stop and remove everything")
    d.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    sub.add_parser("status", help="the map and the processes")
    n = sub.add_parser("node", help="kill, stop, pause, cont or start one node")
    n.add_argument("action", choices=("kill", "stop", "start", "pause", "cont"))
    n.add_argument("name")
    l = sub.add_parser("load", help="meshcdn-load in every region against its own edges")
    l.add_argument("--duration", default="20s")
    l.add_argument("--rate", type=int, default=150, help="requests/s per region (open loop); 0: closed loop")
    l.add_argument("--connections", type=int, default=32,
                   help="connections per target at most (open loop) or in all (closed loop)")
    l.add_argument("--zipf", type=float, default=0.9)
    l.add_argument("--seed", type=int, default=1)
    l.add_argument("--timeout", default="10s")
    l.add_argument("--json-dir", help="where the reports go (default RUN/load)")
    r = sub.add_parser("drill", help="under load: kill a tier and restart it, stop the primary origin; "
                                     "origin share per window")
    r.add_argument("--tier", default="use1-tier")
    r.add_argument("--warmup", type=float, default=30)
    r.add_argument("--window", type=float, default=15)
    r.add_argument("--rate", type=int, default=100, help="requests/s per region")
    r.add_argument("--seed", type=int, help="load seed (default: from the clock)")
    args = ap.parse_args()
    {"up": cmd_up, "down": cmd_down, "status": cmd_status, "node": cmd_node, "load": cmd_load,
     "drill": cmd_drill}[args.cmd](args)


if __name__ == "__main__":
    main()
