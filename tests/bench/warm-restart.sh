#!/usr/bin/env bash
# Warm restart: how long from starting meshcdn-edge on a store of N small
# objects to the first hit it serves (issue 5 asks for < 1 s at 1,000,000).
# The store is filled once through the mc_store API (mc-populate, no HTTP)
# and kept in DIR for later runs. Each run starts the edge, polls one object
# with curl until it answers `X-Cache: Hit`, prints the time, and stops the
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
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-release -j2 --target meshcdn-edge mc-populate >/dev/null
bin=$top/build-release
# one eviction-index slot per 32 KiB of store at 70% load: room for n objects
size_g=$(( (n * 32 / 1024 / 1024 * 10 / 7) / 1024 + 1 ))
size_g=$(( size_g < 8 ? 8 : size_g ))
pow=8; while [ "$pow" -lt "$size_g" ]; do pow=$((pow * 2)); done
size="${pow}G"
if [ ! -f "$dir/data.mdb" ]; then
  echo "populating $dir with $n objects of 512 bytes (store size $size) ..."
  "$bin/mc-populate" --store "$dir" --store-size "$size" --count "$n"
fi
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
umask 077
echo "AKWARM unused-secret-for-an-unused-origin" > "$tmp/cred"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
drop_cache() { python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"; }

one_run() { # cold: 1 to drop data.mdb from the page cache first
  local ep ap t0 t1 obj
  ep=$(free_port); ap=$(free_port)
  obj=$(printf '/warm/obj-%08d.bin' $(( (RANDOM * 32768 + RANDOM) % n )))
  [ "$1" = 1 ] && drop_cache "$dir/data.mdb"
  t0=$(date +%s.%N)
  # no origin at all: only a hit can answer 200
  "$bin/meshcdn-edge" --origin http://127.0.0.1:9/none --origin-sign none --credentials "$tmp/cred" \
      --store "$dir" --store-size "$size" --workers 2 --listen "127.0.0.1:$ep" --admin "127.0.0.1:$ap" \
      --log-level info >"$tmp/edge.log" 2>&1 &
  pid=$!
  while ! curl -s -o /dev/null -D "$tmp/h" "http://127.0.0.1:$ep$obj" || ! grep -q 'X-Cache: Hit' "$tmp/h"; do
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/edge.log" >&2; exit 1; }
    sleep 0.005
  done
  t1=$(date +%s.%N)
  kill "$pid"; wait "$pid" || true; pid=
  rebuilt=$(grep -o 'eviction index rebuilt" objects=[0-9]*' "$tmp/edge.log" | grep -o '[0-9]*$' || echo "-")
  python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$t1"
  echo "$rebuilt" > "$tmp/rebuilt"
}

echo "store $dir: $(du -sh "$dir" | cut -f1) on disk, $n objects"
printf '%-4s %-28s %-28s\n' run "first hit, page cache warm" "first hit, data.mdb uncached"
for i in $(seq "$runs"); do
  w=$(one_run 0); c=$(one_run 1)
  printf '%-4s %-28s %-28s\n' "$i" "$w s" "$c s"
done
echo "(eviction index rebuilt in the writer thread: $(cat "$tmp/rebuilt") objects)"
