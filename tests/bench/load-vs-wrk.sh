#!/usr/bin/env bash
# Is meshcdn-load the bottleneck? Drives one hot object on one edge (one
# worker on core 0) with wrk and with meshcdn-load (each on core 1, 16
# connections, closed loop), side by side, and prints requests/s and the
# ratio. Issue 8 asks for meshcdn-load >= 80% of wrk.
#
#   tests/bench/load-vs-wrk.sh [SECONDS] [SIZE] [ROUNDS]
#
# SIZE is the object's size (16k, 64k, 1M; default 16k); ROUNDS (default 1)
# repeats wrk then meshcdn-load and prints the medians. With
# LOAD_BASELINE=/path/to/another/meshcdn-load, that binary runs too in each
# round (before/after comparisons on a shared machine).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-5}
size=${2:-16k}
rounds=${3:-1}
baseline=${LOAD_BASELINE:-}
cd "$top"
bash deploy/deps.sh
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null; }
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-release -j"$(nproc)" >/dev/null
bin=$top/build-release
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin/meshcdn-load" catalog --out "$tmp/root/assets" --count 1 --seed 3 --sizes "fixed:$size" --gltf-count 0 >/dev/null
path=$(grep -o '"/models/[^"]*\.glb"' "$tmp/root/assets/index.json" | tr -d '"')
printf '/%s\n' "${path#/}" > "$tmp/trace"
umask 077
printf 'AKBENCH %s\n' "$(head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9)" > "$tmp/keys"
"$bin/meshcdn-origin" --root "$tmp/root" --keys "$tmp/keys" --listen 127.0.0.1:0 --control 127.0.0.1:0 \
    >"$tmp/origin.log" 2>&1 &
pids+=($!)
port_of() { # log listener
  for _ in $(seq 100); do
    a=$(grep -o "listener=$2 addr=[0-9.:]*" "$1" | head -1 | sed 's/.*://')
    [ -n "$a" ] && { echo "$a"; return; }
    sleep 0.05
  done
  echo "no $2 listener in $1" >&2; exit 1
}
op=$(port_of "$tmp/origin.log" s3)
# warn level keeps the access log off the measured path; so pick the ports here
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ep=$(free_port); ap=$(free_port)
taskset -c 0 "$bin/meshcdn-edge" --origin "http://127.0.0.1:$op/assets" --credentials "$tmp/keys" \
    --store "$tmp/store" --workers 1 --listen "127.0.0.1:$ep" --admin "127.0.0.1:$ap" --log-level warn \
    >"$tmp/edge.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ap/healthz" >/dev/null && break; sleep 0.05; done
url="http://127.0.0.1:$ep$path"
curl -s -o /dev/null "$url"; curl -s -o /dev/null "$url"   # warm: a hit from here on

load_run() { # binary
  taskset -c 1 "$1" run --target "http://127.0.0.1:$ep" --trace "$tmp/trace" \
      --connections 16 --duration "${secs}s" --quiet --json "$tmp/r.json" >/dev/null 2>&1
  python3 -c "import json;print(round(json.load(open('$tmp/r.json'))['total']['requests_per_s']))"
}
wrk_all=(); load_all=(); base_all=()
for r in $(seq "$rounds"); do
  wrk_all+=("$(taskset -c 1 wrk -t1 -c16 -d"${secs}s" "$url" | awk '/Requests\/sec/ {print $2}')")
  load_all+=("$(load_run "$bin/meshcdn-load")")
  [ -n "$baseline" ] && base_all+=("$(load_run "$baseline")")
  echo "round $r: wrk ${wrk_all[-1]} meshcdn-load ${load_all[-1]}${baseline:+ baseline ${base_all[-1]}}" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
wrk_rps=$(median "${wrk_all[@]}")
load_rps=$(median "${load_all[@]}")
echo "hot $size GLB, edge: 1 worker on core 0; clients on core 1, 16 connections, ${secs}s, median of $rounds"
printf '%-14s %10s req/s\n' wrk "$wrk_rps" meshcdn-load "$load_rps"
[ -n "$baseline" ] && printf '%-14s %10s req/s\n' baseline "$(median "${base_all[@]}")"
python3 -c "print('meshcdn-load / wrk = %.2f' % ($load_rps / $wrk_rps))"
