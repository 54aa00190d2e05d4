#!/usr/bin/env bash
# Warm restart: how long from starting meshcdn-edge on a store of N small
# objects to the first hit it serves (issue 5 asks for < 1 s at 1,000,000).
# The store is filled once through the mc_store API (mc-populate, no HTTP)
# and kept in DIR for later runs. Each run starts the edge, polls one random
# object until it answers `X-Cache: Hit`, prints the time, and stops the
# edge; the second column is with data.mdb dropped from the page cache first
# (posix_fadvise DONTNEED on that file only).
#
#   tests/bench/warm-restart.sh [N] [DIR] [RUNS]     (defaults: 1000000 /tmp/meshcdn-warm-N 3)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-1000000}
dir=${2:-/tmp/meshcdn-warm-$n}
runs=${3:-3}
cd "$top"
bash deploy/deps.sh >/dev/null
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-release -j2 --target meshcdn-edge mc-populate >/dev/null
bin=$top/build-release
# the eviction index has one slot per 32 KiB of store, at most 70% used
# once rounded up to a power of two: 32 KiB of store per object is enough
size_g=$(( (n + 32767) / 32768 ))
pow=8; while [ "$pow" -lt "$size_g" ]; do pow=$((pow * 2)); done
size="${pow}G"
if [ ! -f "$dir/data.mdb" ]; then
  echo "populating $dir with $n objects of 512 bytes (store size $size) ..."
  "$bin/mc-populate" --store "$dir" --store-size "$size" --count "$n"
fi
tmp=$(mktemp -d)
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
umask 077
echo "AKWARM unused-secret-for-an-unused-origin" > "$tmp/cred"

# Starts the edge and polls one random object over raw sockets (no process
# per attempt, so the figure is the edge's, not curl's start-up); prints the
# seconds from exec to the first "X-Cache: Hit" answer.
cat > "$tmp/first_hit.py" <<'PY'
import os, random, socket, subprocess, sys, time
edge, store, size, n, cred, log, cold = sys.argv[1:8]
if cold == "1":   # drop data.mdb (only that file) from the page cache
    fd = os.open(os.path.join(store, "data.mdb"), os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
ep, ap = free_port(), free_port()
obj = "/warm/obj-%08d.bin" % random.randrange(int(n))
req = f"GET {obj} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
t0 = time.monotonic()
p = subprocess.Popen([edge, "--origin", "http://127.0.0.1:9/none", "--origin-sign", "none",
                      "--credentials", cred, "--store", store, "--store-size", size, "--workers", "2",
                      "--listen", f"127.0.0.1:{ep}", "--admin", f"127.0.0.1:{ap}", "--log-level", "info"],
                     stdout=open(log, "w"), stderr=subprocess.STDOUT)
try:
    while True:
        if p.poll() is not None:
            sys.exit("edge exited: " + open(log).read())
        try:
            with socket.create_connection(("127.0.0.1", ep), timeout=5) as s:
                s.sendall(req)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            if b"X-Cache: Hit" in data:
                break
        except OSError:
            pass
        time.sleep(0.002)
    print("%.3f" % (time.monotonic() - t0))
    deadline = time.monotonic() + 300
    while os.environ.get("WARM_UNTIL_REBUILT") and time.monotonic() < deadline and \
            "eviction index rebuilt" not in open(log).read():
        time.sleep(0.1)
finally:
    p.terminate()
    p.wait()
PY

one_run() { # cold: 1 to drop data.mdb from the page cache first
  python3 "$tmp/first_hit.py" "$bin/meshcdn-edge" "$dir" "$size" "$n" "$tmp/cred" "$tmp/edge.log" "$1"
}

echo "store $dir: $(du -sh "$dir" | cut -f1) on disk, $n objects"
printf '%-4s %-28s %-28s\n' run "first hit, page cache warm" "first hit, data.mdb uncached"
for i in $(seq "$runs"); do
  w=$(one_run 0); c=$(one_run 1)
  printf '%-4s %-28s %-28s\n' "$i" "$w s" "$c s"
done
WARM_UNTIL_REBUILT=1 one_run 0 >/dev/null   # once more, until the index rebuild has finished
grep -o 'eviction index rebuilt.*' "$tmp/edge.log" | sed 's/^/(in the background: /; s/$/)/'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
