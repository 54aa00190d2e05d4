#!/usr/bin/env bash
# What does TLS cost a viewer? One edge (one worker on core 0) serves the
# same stored objects over HTTP and HTTPS (TLS 1.3, P-256 ECDSA certificate
# from a CA made here); clients on core 1: a 64 MiB hit with curl (best of 3)
# and 200 KiB hits with wrk (16 keep-alive connections), side by side.
#
#   tests/bench/tls-vs-http.sh [SECONDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-5}
cd "$top"
bash deploy/deps.sh --test
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null; }
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-release -j"$(nproc)" >/dev/null
bin=$top/build-release
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

cd "$tmp"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 1 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout edge.key -out edge.csr \
    -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > ext
openssl x509 -req -in edge.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 1 -extfile ext \
    -out edge.pem 2>/dev/null
mkdir -p root/assets
head -c 64M /dev/urandom > root/assets/big.glb
head -c 200K /dev/urandom > root/assets/small.glb
"$bin/meshcdn-origin" --root root --anonymous-read --listen 127.0.0.1:0 --control 127.0.0.1:0 \
    >origin.log 2>&1 &
pids+=($!)
port_of() { # log listener
  for _ in $(seq 100); do
    a=$(grep -o "listener=$2 addr=[0-9.:]*" "$1" | head -1 | sed 's/.*://')
    [ -n "$a" ] && { echo "$a"; return; }
    sleep 0.05
  done
  echo "no $2 listener in $1" >&2; exit 1
}
op=$(port_of origin.log s3)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ep=$(free_port); tp=$(free_port); ap=$(free_port)
taskset -c 0 "$bin/meshcdn-edge" --origin "http://127.0.0.1:$op/assets" --origin-sign none \
    --store store --workers 1 --listen "127.0.0.1:$ep" --tls-listen "127.0.0.1:$tp" \
    --tls.cert=edge.pem --tls.key=edge.key --admin "127.0.0.1:$ap" --log-level warn \
    --cache.mesh_validation off >edge.log 2>&1 &   # (random bytes named .glb: stored unchecked)
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ap/healthz" >/dev/null && break; sleep 0.05; done
for o in big small; do curl -s -o /dev/null "http://127.0.0.1:$ep/$o.glb"; done   # stored: hits from here on

best() { sort -n | head -1; }
h=$(for _ in 1 2 3; do taskset -c 1 curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$ep/big.glb"; done | best)
s=$(for _ in 1 2 3; do taskset -c 1 curl -s --cacert ca.pem -o /dev/null -w '%{time_total}\n' "https://127.0.0.1:$tp/big.glb"; done | best)
wh=$(taskset -c 1 wrk -t1 -c16 -d"${secs}s" "http://127.0.0.1:$ep/small.glb" | awk '/Requests\/sec/ {print $2}')
ws=$(taskset -c 1 wrk -t1 -c16 -d"${secs}s" "https://127.0.0.1:$tp/small.glb" | awk '/Requests\/sec/ {print $2}')
echo "edge: 1 worker on core 0; clients on core 1"
printf '%-28s %10s %10s\n' "" HTTP HTTPS
printf '%-28s %9ss %9ss\n' "64 MiB hit, curl (best of 3)" "$h" "$s"
printf '%-28s %10s %10s\n' "200 KiB hits, wrk -c16 req/s" "$wh" "$ws"
