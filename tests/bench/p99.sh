#!/usr/bin/env bash
# Hit tail latency, meshcdn vs nginx proxy_cache vs Varnish vs static nginx,
# with what shapes it: more percentiles, the servers' run-queue wait, the
# loops' turns (tests/bench/p99.py; README "p99.sh").
#   tests/bench/p99.sh [--sizes 4k,64k,1M,16M] [--seconds 5] [--rounds 3] [--turns] [--run-dir DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
bash deploy/deps.sh --bench
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 cores" >&2; exit 1; }
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-bench -j2 --target meshcdn-edge meshcdn-origin meshcdn-load >/dev/null
exec python3 "$top/tests/bench/p99.py" --bin "$top/build-bench" "$@"
