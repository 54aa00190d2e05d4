#!/usr/bin/env bash
# One command: install what is missing, build with warnings as errors (the
# Release build the demo uses, and a Debug build with AddressSanitizer +
# UndefinedBehaviorSanitizer), run the whole suite (unit and end-to-end)
# through ctest.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash deploy/deps.sh --test
# The demo's Release build first: -O2 finds warnings (-Werror) that -O0 does not.
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-release -j"$(nproc)"
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DMESHCDN_SANITIZE=ON >/dev/null
cmake --build build-test -j"$(nproc)"
cd build-test
ctest --output-on-failure -j2 "$@"
