#!/usr/bin/env bash
# Issue 10's soak: a Release meshcdn-edge (1 worker, core 1) at full rate for
# 10 minutes (hot hits of 4 KiB/64 KiB/1 MiB from wrk plus a Zipf stream from
# meshcdn-load into a store a tenth of the catalog, so fills, evictions and
# hits all run), sampled every 10 s; fails (exit 1) if anonymous RSS, open
# fds or (with no load) malloc's bytes in use grow past a small tolerance,
# or on any error.
# tests/bench/soak.py says how; README "soak.sh" has the figures.
#   tests/bench/soak.sh [--seconds 600] [--interval 10] [--store-size BYTES] [--no-gdb] [--run-dir DIR] [--keep]
#   BIN=DIR tests/bench/soak.sh ...   # an already built tree instead (skips deps and build)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
if [ -z "${BIN:-}" ]; then
    bash deploy/deps.sh --bench
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
    cmake --build build-bench -j2 --target meshcdn-edge meshcdn-origin meshcdn-load >/dev/null
    BIN="$top/build-bench"
fi
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 cores (edge on core 1, clients on core 0)" >&2; exit 1; }
exec python3 "$top/tests/bench/soak.py" --bin "$BIN" "$@"
