#!/usr/bin/env bash
# Install the viewer page's library from the npm registry and lay the page out
# for the origin to serve through the edge (no build step: ES modules and an
# import map).
#
#   deploy/viewer/install.sh NPM_DIR OUT_DIR [--dev]
#
# NPM_DIR  where node_modules lives (outside the repository, reused: `npm ci`
#          runs again only when package-lock.json or the mode changed)
# OUT_DIR  the page, its module and the library files it imports, e.g.
#          run/demo/root/assets/viewer (served by the edge as /viewer/)
# --dev    also install the devDependencies (playwright-core, for
#          tests/e2e/test_viewer.py)
# Exit status 3: node or npm is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
npm_dir=${1:?usage: install.sh NPM_DIR OUT_DIR [--dev]}
out=${2:?usage: install.sh NPM_DIR OUT_DIR [--dev]}
mode=prod
[ "${3:-}" = "--dev" ] && mode=dev

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "viewer: node and npm are needed (deploy/deps.sh installs them)" >&2
  exit 3
fi

mkdir -p "$npm_dir"
npm_dir=$(cd "$npm_dir" && pwd)
stamp="$mode $(cat "$here/package.json" "$here/package-lock.json" "$here/.npmrc" | sha256sum | cut -d' ' -f1)"
if [ ! -d "$npm_dir/node_modules/three" ] || [ "$(cat "$npm_dir/.meshcdn-stamp" 2>/dev/null)" != "$stamp" ]; then
  cp "$here/package.json" "$here/package-lock.json" "$here/.npmrc" "$npm_dir/"
  omit=(); [ "$mode" = prod ] && omit=(--omit=dev)
  (cd "$npm_dir" && npm ci --no-audit --no-fund --loglevel=error "${omit[@]}" >/dev/null)
  echo "$stamp" > "$npm_dir/.meshcdn-stamp"
fi

three=$npm_dir/node_modules/three
rm -rf "$out"
mkdir -p "$out/lib/three/build" "$out/lib/three/examples/jsm/loaders" "$out/lib/three/examples/jsm/utils"
cp "$here/index.html" "$here/viewer.js" "$out/"
# only what the page imports: three's core and the glTF loader with its helpers
cp "$three/LICENSE" "$three/package.json" "$out/lib/three/"
cp "$three/build/three.module.js" "$three/build/three.core.js" "$out/lib/three/build/"
cp "$three/examples/jsm/loaders/GLTFLoader.js" "$out/lib/three/examples/jsm/loaders/"
cp "$three/examples/jsm/utils/BufferGeometryUtils.js" "$three/examples/jsm/utils/SkeletonUtils.js" \
   "$out/lib/three/examples/jsm/utils/"
