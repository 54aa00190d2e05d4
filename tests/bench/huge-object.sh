#!/usr/bin/env bash
# huge-object.sh — a 4 GiB object (exactly 2^32 bytes, the 32-bit boundary)
# fetched through a real edge from the real, signed origin: a miss that
# stores it, then a hit, each checked byte for byte (SHA-256) against the
# file, plus a range that straddles the 4 GiB - 1 byte mark.
#
#   tests/bench/huge-object.sh [SIZE_BYTES]      (default 4294967296)
#
# Needs about 2 x SIZE of free disk (the origin's file and the edge's store)
# and a Release build in build-release (deploy/demo.sh or tests/run.sh make
# one). Prints the times and exits non-zero on any mismatch. Not part of the
# test suite: it moves 12+ GB through the disk. Above [edge] segment_threshold
# (default 64M) the object is stored as segments (edge/segment.h); pass
# EDGE_FLAGS=--edge.segment_threshold=0 to store it whole.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$top/build-release
size=${1:-4294967296}
[ -x "$bin/meshcdn-edge" ] || { echo "build first: cmake -S $top -B $bin -DCMAKE_BUILD_TYPE=Release && cmake --build $bin"; exit 2; }
tmp=$(mktemp -d /var/tmp/meshcdn-huge-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; if [ "${KEEP:-0}" = 1 ]; then rm -f "$f"; rm -rf "$tmp/store"; echo "logs kept in $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

mkdir -p "$tmp/root/assets/big"
f=$tmp/root/assets/big/huge.glb
# deterministic, incompressible-looking content without holding it in memory
set +o pipefail   # openssl dies of SIGPIPE when head has enough
openssl enc -aes-128-ctr -K 000102030405060708090a0b0c0d0e0f -iv 0 -nosalt -in /dev/zero 2>/dev/null |
    head -c "$size" > "$f"
set -o pipefail
[ "$(stat -c %s "$f")" = "$size" ] || { echo "could not write $size bytes to $f"; exit 1; }
want=$(sha256sum "$f" | cut -d' ' -f1)
printf 'AKIDHUGE huge-secret-0123456789\n' > "$tmp/keys"; chmod 600 "$tmp/keys"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
op=$(port); cp=$(port); ep=$(port); ap=$(port)
"$bin/meshcdn-origin" --root "$tmp/root" --keys "$tmp/keys" --listen 127.0.0.1:$op --control 127.0.0.1:$cp \
    >"$tmp/origin.log" 2>&1 & pids+=($!)
store_size=$(( (size * 5 / 1073741824 + 2) ))G
"$bin/meshcdn-edge" --listen 127.0.0.1:$ep --admin 127.0.0.1:$ap --origin http://127.0.0.1:$op/assets \
    --credentials "$tmp/keys" --store "$tmp/store" --store-size "$store_size" --workers 2 \
    --store.max_object_size=$(( size + 1 )) --cache.mesh_validation off \
    --log-level info ${EDGE_FLAGS:-} >"$tmp/edge.log" 2>&1 & pids+=($!)   # (placeholder bytes, not glTF)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ap/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

fetch() {   # prints: seconds sha256 x-cache
    local t0 t1 sum xc
    t0=$(date +%s.%N)
    sum=$(curl -fsS -D "$tmp/h" "http://127.0.0.1:$ep/big/huge.glb" | sha256sum | cut -d' ' -f1)
    t1=$(date +%s.%N)
    xc=$(grep -i '^x-cache:' "$tmp/h" | tr -d '\r' | cut -d' ' -f2)
    echo "$(echo "$t1 - $t0" | bc) $sum $xc"
}
read -r t1 s1 x1 < <(fetch)
sleep 1
for _ in $(seq 600); do   # the publish follows the last chunk's commit (whole, or the last segment's)
    m=$(curl -fs "http://127.0.0.1:$ap/metrics")
    objs=$(echo "$m" | awk '/^meshcdn_edge_store_objects /{print $2}')
    busy=$(echo "$m" | awk '/^meshcdn_edge_fills_inflight /{print $2}')
    [ "${objs%.*}" -ge 1 ] && [ "${busy%.*}" = 0 ] && break; sleep 0.2
done
read -r t2 s2 x2 < <(fetch)
r=$(curl -fsS -r $((size - 3))-$((size + 5)) "http://127.0.0.1:$ep/big/huge.glb" | od -An -tx1 | tr -d ' \n')
rwant=$(tail -c 3 "$f" | od -An -tx1 | tr -d ' \n')
gib=$(echo "scale=2; $size / 1073741824" | bc)
echo "object: $size bytes ($gib GiB), store $store_size"
echo "miss: ${t1}s  X-Cache: $x1  sha256 $( [ "$s1" = "$want" ] && echo ok || echo MISMATCH)"
echo "hit:  ${t2}s  X-Cache: $x2  sha256 $( [ "$s2" = "$want" ] && echo ok || echo MISMATCH)"
echo "range past the end, last 3 bytes: $( [ "$r" = "$rwant" ] && echo ok || echo "MISMATCH ($r vs $rwant)")"
[ "$s1" = "$want" ] && [ "$s2" = "$want" ] && [ "$x2" = Hit ] && [ "$r" = "$rwant" ]
