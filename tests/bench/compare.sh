#!/usr/bin/env bash
# meshcdn-edge side by side with nginx proxy_cache, Varnish and static nginx
# (the ceiling), each with one worker on core 1, driven by wrk on core 0: hot
# hits at 4 KiB, 64 KiB, 1 MiB and 16 MiB, the miss path, and hit ratio under
# Zipf(0.9) with each cache at 10% of the catalog. Prints markdown tables;
# tests/bench/README.md says how to read them and holds the last figures.
#
#   tests/bench/compare.sh [--quick] [--keep] [--run-dir DIR] [--only hot,miss,zipf] [--no-load]
#
# Installs what is missing (deploy/deps.sh --bench: the build deps, nginx,
# varnish, wrk), builds meshcdn in Release into build-bench/, runs everything
# on 127.0.0.1.
# The system nginx/varnish services are never started or configured: each
# server runs from a generated config in the run directory.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
bash deploy/deps.sh --bench
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 cores (servers on core 1, clients on core 0)" >&2; exit 1; }
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-bench -j2 --target meshcdn-edge meshcdn-origin meshcdn-load >/dev/null
exec python3 "$top/tests/bench/compare.py" --bin "$top/build-bench" "$@"
