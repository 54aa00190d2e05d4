#!/usr/bin/env bash
# purge-big.sh — a prefix purge of N stored objects (default 100,000) on a
# live edge, and what it does to hits on other objects meanwhile (issue #6:
# "a prefix purge of 100,000 objects finishes in under a second while hits
# on other objects keep their p99 latency").
#
#   tests/bench/purge-big.sh [N] [DURATION_S]
#
# Fills a store with N objects under /bulk/ and 100 under /hot/ (mc-populate,
# through the store API), starts meshcdn-edge on it (1 worker; the process on
# core 1, or on EDGE_CPUS, e.g. EDGE_CPUS=0,1 to give the writer a core),
# drives hits on /hot/ objects with wrk (core 0) twice for DURATION_S
# seconds: once as a baseline, once with POST /purge {"paths":["/bulk/*"]}
# sent a third of the way in. Prints the purge's wall time (curl, request to
# answer, which comes after the store committed it) and the hits' p50/p99 in
# both runs. Needs wrk (deploy/deps.sh --bench) and a Release build.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-100000}
dur=${2:-9}
cd "$top"
bash deploy/deps.sh --bench >/dev/null
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-release -j2 --target meshcdn-edge mc-populate >/dev/null
bin=$top/build-release
tmp=$(mktemp -d /var/tmp/meshcdn-purge-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
umask 077
size=8G   # the eviction index wants one slot per 32 KiB of store
echo "populating: $n objects under /bulk/, 100 under /hot/ ..."
"$bin/mc-populate" --store "$tmp/store" --store-size $size --count "$n" --prefix /bulk/ >/dev/null
"$bin/mc-populate" --store "$tmp/store" --store-size $size --count 100 --prefix /hot/ >/dev/null
echo "AKIDPURGEOPS purge-bench-secret-0123456789" > "$tmp/ops"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ep=$(port); ap=$(port)
taskset -c "${EDGE_CPUS:-1}" "$bin/meshcdn-edge" --listen 127.0.0.1:$ep --admin 127.0.0.1:$ap --origin http://127.0.0.1:9/none \
    --origin-sign none --store "$tmp/store" --store-size $size --workers 1 --admin-keys "$tmp/ops" \
    --log-level warn >"$tmp/edge.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ap/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
objects() { curl -fs "http://127.0.0.1:$ap/metrics" | awk '/^meshcdn_edge_store_objects /{print $2}'; }
echo "stored objects: $(objects)"
cat > "$tmp/hot.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 100
  return wrk.format("GET", string.format("/hot/obj-%08d.bin", i))
end
LUA
curl -fsS -o /dev/null -D - "http://127.0.0.1:$ep/hot/obj-00000001.bin" | grep -i '^x-cache' || true
run_wrk() { taskset -c 0 wrk -t1 -c16 -d"${dur}s" --latency -s "$tmp/hot.lua" "http://127.0.0.1:$ep" > "$1"; }
lat() { awk -v p="$2" '$1==p {print $2}' "$1"; }
run_wrk "$tmp/base.txt"
run_wrk "$tmp/purge.txt" &
wrk_pid=$!
sleep $(( dur / 3 ))
t=$(curl -sS -o "$tmp/purge.json" -w '%{time_total}' -X POST --aws-sigv4 "aws:amz:us-east-1:meshcdn" \
      --user AKIDPURGEOPS:purge-bench-secret-0123456789 -d '{"paths":["/bulk/*"]}' \
      "http://127.0.0.1:$ap/purge")
wait $wrk_pid
echo "purge of /bulk/*: $(cat "$tmp/purge.json" | tr -d '\n') in ${t}s; objects left: $(objects)"
printf 'hits on /hot/ (wrk -c16, %ss):   baseline p50 %s p99 %s, %s req/s   during the purge p50 %s p99 %s, %s req/s\n' "$dur" \
    "$(lat "$tmp/base.txt" 50%)" "$(lat "$tmp/base.txt" 99%)" "$(awk '/Requests\/sec/{print $2}' "$tmp/base.txt")" \
    "$(lat "$tmp/purge.txt" 50%)" "$(lat "$tmp/purge.txt" 99%)" "$(awk '/Requests\/sec/{print $2}' "$tmp/purge.txt")"
grep -E "non-2xx|Socket errors" "$tmp/base.txt" "$tmp/purge.txt" || true
