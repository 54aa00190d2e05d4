#!/usr/bin/env bash
# package.sh — build the meshcdn Debian package with CPack from a Release
# build, then show what it holds:
#
#   deploy/package.sh              -> build-pkg/meshcdn_VERSION_ARCH.deb
#   BUILD=/tmp/pkg deploy/package.sh
#
# Install it with `apt install ./build-pkg/meshcdn_*.deb` (or dpkg -i); see
# README.md, "Deploying".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build-pkg}

bash "$top/deploy/deps.sh"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF \
      -DMESHCDN_SANITIZE=OFF -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build "$build" -j"${JOBS:-2}" >/dev/null
rm -f "$build"/meshcdn_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls "$build"/meshcdn_*.deb)
dpkg-deb -I "$deb"
dpkg-deb -c "$deb" | awk '{print $1, $6}'
listing=$(dpkg-deb -c "$deb")
for f in usr/bin/meshcdn-edge usr/bin/meshcdn-origin usr/bin/meshcdnctl \
         usr/lib/systemd/system/meshcdn-edge@.service usr/lib/systemd/system/meshcdn-origin.service \
         usr/share/meshcdn/examples/origin.ini usr/share/meshcdn/examples/us-east-1/edge-a.ini; do
  grep -q " ./$f\$" <<<"$listing" || { echo "package.sh: $f missing from $deb" >&2; exit 1; }
done
grep -q adduser <<<"$(dpkg-deb -f "$deb" Depends)" || { echo "package.sh: no adduser dependency" >&2; exit 1; }
echo "built $deb"
