#!/usr/bin/env bash
# One edge worker vs two on this 2-core machine (issue 10: "two workers on two
# cores serve at least 1.7x one worker's hits"): hits per edge CPU-second,
# futex calls per request, and how SO_REUSEPORT spread connections and
# requests over the workers (tests/bench/scaling.py; README "scaling.sh").
#   tests/bench/scaling.sh [--sizes 4k,64k] [--seconds 5] [--rounds 3] [--perf-record] [--mutex-probe] [--run-dir DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
bash deploy/deps.sh --bench
command -v perf >/dev/null || { echo "bench: needs perf (deploy/deps.sh --bench)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 cores" >&2; exit 1; }
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-bench -j2 --target meshcdn-edge meshcdn-origin meshcdn-load >/dev/null
exec python3 "$top/tests/bench/scaling.py" --bin "$top/build-bench" "$@"
