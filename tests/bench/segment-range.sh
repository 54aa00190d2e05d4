#!/usr/bin/env bash
# segment-range.sh — segmented caching (edge/segment.h) against whole-object
# fills: a 1 MiB range in the middle of a cold SIZE object (default 4 GiB)
# through a real edge from the real, signed origin. For each mode it prints
# the time to first byte and total time of the viewer's range, the origin
# bytes the edge had pulled when the viewer was done, and once its fill is
# over; every range is checked byte for byte against the file.
#
#   tests/bench/segment-range.sh [SIZE_BYTES]      (default 4294967296)
#   BIN=build-rel tests/bench/segment-range.sh     (where the Release binaries are)
#
# Needs about 2 x SIZE of free disk (the origin's file, the whole-object
# store). Not part of the test suite.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$top/${BIN:-build-release}
size=${1:-4294967296}
[ -x "$bin/meshcdn-edge" ] || { echo "build first: cmake -S $top -B $bin -DCMAKE_BUILD_TYPE=Release && cmake --build $bin"; exit 2; }
tmp=$(mktemp -d /var/tmp/meshcdn-segr-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

mkdir -p "$tmp/root/assets/big"
f=$tmp/root/assets/big/huge.glb
set +o pipefail
openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f -iv 0 -nosalt -in /dev/zero 2>/dev/null |
    head -c "$size" > "$f"
set -o pipefail
printf 'AKIDSEGR segr-secret-0123456789\n' > "$tmp/keys"; chmod 600 "$tmp/keys"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
op=$(port); cp=$(port)
"$bin/meshcdn-origin" --root "$tmp/root" --keys "$tmp/keys" --listen 127.0.0.1:$op --control 127.0.0.1:$cp \
    >"$tmp/origin.log" 2>&1 & pids+=($!)

mib=1048576
a=$(( (size / 2 / mib) * mib + 12345 )); b=$(( a + mib - 1 ))
want=$(dd if="$f" iflag=skip_bytes,count_bytes skip=$a count=$mib bs=1M 2>/dev/null | sha256sum | cut -d" " -f1)
metric() { curl -fs "http://127.0.0.1:$2/metrics" | awk -v m="$1" '$1==m{printf "%.0f", $2}'; }

run() {   # run NAME EDGE-FLAGS...: one cold range through a fresh edge and store
    local name=$1; shift
    local ep ap; ep=$(port); ap=$(port)
    "$bin/meshcdn-edge" --listen 127.0.0.1:$ep --admin 127.0.0.1:$ap --origin http://127.0.0.1:$op/assets \
        --credentials "$tmp/keys" --store "$tmp/store-$name" --store-size $(( size * 5 / 1073741824 + 2 ))G \
        --workers 2 --store.max_object_size=$(( size + 1 )) --cache.mesh_validation off "$@" \
        >"$tmp/edge-$name.log" 2>&1 & local pid=$!; pids+=($pid)
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ap/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    local out sum
    out=$(curl -fsS -r $a-$b -o "$tmp/body" -w '%{time_starttransfer} %{time_total}' "http://127.0.0.1:$ep/big/huge.glb")
    local at_done; at_done=$(metric meshcdn_edge_upstream_bytes_total $ap)
    sum=$(sha256sum < "$tmp/body" | cut -d' ' -f1)
    local t0; t0=$(date +%s.%N)
    while [ "$(metric meshcdn_edge_fills_inflight $ap)" != 0 ] || [ "$(metric meshcdn_edge_store_objects $ap)" = 0 ]; do
        sleep 0.2; [ "$(echo "$(date +%s.%N) - $t0 > 600" | bc)" = 1 ] && break
    done
    sleep 1
    local settled; settled=$(metric meshcdn_edge_upstream_bytes_total $ap)
    local t_fill; t_fill=$(echo "$(date +%s.%N) - $t0" | bc)
    read -r ttfb total <<<"$out"
    printf '%-12s ttfb %6.3fs  range done %6.3fs  origin bytes at range end %11d, after fill %11d (+%.1fs)  sha256 %s\n' \
        "$name" "$ttfb" "$total" "$at_done" "$settled" "$t_fill" "$( [ "$sum" = "$want" ] && echo ok || echo MISMATCH)"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$tmp/store-$name"
    [ "$sum" = "$want" ]
}
echo "object: $size bytes, range bytes=$a-$b (1 MiB)"
run whole --edge.segment_threshold=0
run segmented --edge.segment_threshold=64M --edge.segment_size=8M
