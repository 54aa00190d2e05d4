#!/usr/bin/env bash
# User-space instructions per hit (valgrind callgrind), meshcdn-edge vs nginx
# proxy_cache (tests/bench/instr.py; README "instr.sh").
#   tests/bench/instr.sh [--sizes 4k,64k] [--requests N] [--connections N]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
bash deploy/deps.sh --bench
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-bench -j2 --target meshcdn-edge meshcdn-origin meshcdn-load >/dev/null
exec python3 "$top/tests/bench/instr.py" --bin "$top/build-bench" "$@"
