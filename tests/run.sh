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
# The HTTP cache conformance suite (npm, pinned; tests/conformance): ctest's
# e2e_conformance_caching runs it when installed and skips it otherwise.
python3 tests/conformance/run.py --install-only ||
    echo "tests/run.sh: the conformance suite could not be installed; e2e_conformance_caching will skip" >&2
cd build-test
ctest --output-on-failure -j2 "$@"
