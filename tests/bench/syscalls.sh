#!/usr/bin/env bash
# Syscalls and CPU time per hit request: meshcdn-edge vs nginx proxy_cache vs
# Varnish (tests/bench/syscalls.py; README "syscalls.sh").
#   tests/bench/syscalls.sh [--sizes 4k,64k] [--seconds 5] [--no-strace] [--perf-record] [--run-dir DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
bash deploy/deps.sh --bench
command -v perf >/dev/null && command -v strace >/dev/null || {
    echo "bench: needs perf and strace (deploy/deps.sh --bench)" >&2; exit 1; }
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-bench -j2 --target meshcdn-edge meshcdn-origin meshcdn-load >/dev/null
exec python3 "$top/tests/bench/syscalls.py" --bin "$top/build-bench" "$@"
