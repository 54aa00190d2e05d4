#!/usr/bin/env bash
# Is meshcdn-load the bottleneck? Drives one hot object on one edge (one
# worker on core 0) with wrk and with meshcdn-load (each on core 1, 16
# connections, closed loop), side by side, and prints requests/s, the
# client's CPU time per request and the ratio. Issue 8 asks for
# meshcdn-load >= 80% of wrk.
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

# one client run on core 1: "REQ/S CPU-µs/REQUEST" (the client's user + system time
# over its requests: unlike req/s, it does not depend on what else the box runs)
cat >"$tmp/client.py" <<'PY'
import json, re, resource, subprocess, sys
kind, argv = sys.argv[1], sys.argv[2:]
out = subprocess.run(["taskset", "-c", "1"] + argv, capture_output=True, text=True).stdout
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
if kind == "wrk":
    n, rps = int(re.search(r"(\d+) requests in", out).group(1)), float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
else:
    t = json.load(open(kind))["total"]
    n, rps = t["requests"], t["requests_per_s"]
print("%.0f %.1f" % (rps, (ru.ru_utime + ru.ru_stime) / max(n, 1) * 1e6))
PY
load_run() { # binary
  python3 "$tmp/client.py" "$tmp/r.json" "$1" run --target "http://127.0.0.1:$ep" --trace "$tmp/trace" \
      --connections 16 --duration "${secs}s" --quiet --no-optimum --json "$tmp/r.json"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
names=(wrk meshcdn-load); [ -n "$baseline" ] && names+=(baseline)
declare -A rps cpu
for r in $(seq "$rounds"); do
  line="round $r:"
  for n in "${names[@]}"; do
    case $n in
      wrk) res=$(python3 "$tmp/client.py" wrk wrk -t1 -c16 -d"${secs}s" "$url") ;;
      meshcdn-load) res=$(load_run "$bin/meshcdn-load") ;;
      baseline) res=$(load_run "$baseline") ;;
    esac
    rps[$n]+="${res% *} "; cpu[$n]+="${res#* } "
    line+=" $n ${res% *} req/s ${res#* } µs/req;"
  done
  echo "$line" >&2
done
echo "hot $size GLB, edge: 1 worker on core 0; clients on core 1, 16 connections, ${secs}s, median of $rounds"
for n in "${names[@]}"; do
  # shellcheck disable=SC2086
  printf '%-14s %10s req/s %8s client CPU µs/request\n' "$n" "$(median ${rps[$n]})" "$(median ${cpu[$n]})"
done
# shellcheck disable=SC2086
python3 -c "print('meshcdn-load / wrk = %.2f' % ($(median ${rps[meshcdn-load]}) / $(median ${rps[wrk]})))"
