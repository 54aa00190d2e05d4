#!/usr/bin/env bash
# Memory marks of issue 10 (tests/bench/memory.py; README "memory.sh"):
# RSS per idle keep-alive connection (10,000 of them) and in-memory index
# bytes per stored object (1,000,000 objects, filled by mc-populate).
#   tests/bench/memory.sh [--conns N] [--objects N] [--only idle,index] [--store-dir DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
bash deploy/deps.sh --bench
# 10,000 client sockets here and as many in the edge (it raises its own soft
# limit to fit max_connections, up to the hard one)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-bench -j2 --target meshcdn-edge meshcdn-origin meshcdn-load mc-populate >/dev/null
exec python3 "$top/tests/bench/memory.py" --bin "$top/build-bench" "$@"
