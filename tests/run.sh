#!/usr/bin/env bash
# One command: install what is missing, build with warnings as errors and
# AddressSanitizer + UndefinedBehaviorSanitizer, run the whole suite (unit and
# end-to-end) through ctest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash deploy/deps.sh --test
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DMESHCDN_SANITIZE=ON >/dev/null
cmake --build build-test -j"$(nproc)"
cd build-test
ctest --output-on-failure -j2 "$@"
