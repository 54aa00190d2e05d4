#!/usr/bin/env bash
# One command: install what is missing, build, generate a sample 3D catalog,
# start meshcdn-origin over it and meshcdn-edge in front of it on loopback,
# print what to try, and stop both on Ctrl-C.
#
#   deploy/demo.sh            (ports: edge 8080, admin 9080, origin 9000, control 9001)
#   EDGE_PORT=18080 deploy/demo.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

EDGE_PORT=${EDGE_PORT:-8080}
ADMIN_PORT=${ADMIN_PORT:-9080}
ORIGIN_PORT=${ORIGIN_PORT:-9000}
CONTROL_PORT=${CONTROL_PORT:-9001}
run=$top/run/demo

bash deploy/deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DMESHCDN_TESTS=OFF >/dev/null
cmake --build build-release -j"$(nproc)" >/dev/null
bin=$top/build-release

mkdir -p "$run/root/assets"
if [ ! -f "$run/root/assets/index.json" ]; then
  "$bin/meshcdn-load" catalog --out "$run/root/assets" --count 24 --seed 42 \
      --sizes lognormal:median=200k,max=16M --gltf-count 3
fi
# The viewer page and its three.js files (npm registry; node_modules in
# run/demo/npm) in the catalog's root: the edge serves them as /viewer/.
viewer=""
if bash deploy/viewer/install.sh "$run/npm" "$run/root/assets/viewer"; then
  viewer=yes
else
  echo "demo: no viewer page (deploy/viewer/install.sh failed); the rest runs without it"
fi
# The page's files change with the repository: the edge revalidates them on
# each use instead of keeping a copy for a day like the models.
printf '[cache-control]\n/assets/viewer/ = no-cache\n' > "$run/origin.ini"
# One key for the demo: the origin accepts it, the edge signs with it.
if [ ! -f "$run/keys" ]; then
  umask 077
  printf 'AKIDMESHCDNDEMO %s\n' "$(head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)" > "$run/keys"
  cp "$run/keys" "$run/credentials"
fi
if [ ! -f "$run/operator.cred" ]; then   # the operator's key: purges and invalidations
  umask 077
  printf 'AKIDMESHCDNOPS %s\n' "$(head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)" > "$run/operator.cred"
fi
chmod 600 "$run/keys" "$run/credentials" "$run/operator.cred"

pids=()
stop() {
  trap '' INT TERM; trap - EXIT   # a second Ctrl-C must not cut the cleanup short
  echo
  echo "stopping..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped. logs: $run/origin.log $run/edge.log"
}
trap stop INT TERM EXIT

"$bin/meshcdn-origin" --config "$run/origin.ini" --listen 127.0.0.1:$ORIGIN_PORT --control 127.0.0.1:$CONTROL_PORT \
    --root "$run/root" --keys "$run/keys" --control.operator_keys "$run/operator.cred" \
    --control.db "$run/control" >"$run/origin.log" 2>&1 &
pids+=($!)
"$bin/meshcdn-edge" --listen 127.0.0.1:$EDGE_PORT --admin 127.0.0.1:$ADMIN_PORT \
    --origin http://127.0.0.1:$ORIGIN_PORT/assets --credentials "$run/credentials" \
    --store "$run/store" --store-size 1G --node-id demo-a1 --region local \
    --admin-keys "$run/operator.cred" --control http://127.0.0.1:$CONTROL_PORT >"$run/edge.log" 2>&1 &
pids+=($!)

for _ in $(seq 50); do
  if curl -fsS "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1 &&
     curl -fsS "http://127.0.0.1:$CONTROL_PORT/healthz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
if ! curl -fsS "http://127.0.0.1:$ADMIN_PORT/healthz" >/dev/null 2>&1; then
  echo "the edge did not start; see $run/edge.log:"; tail -5 "$run/edge.log"; exit 1
fi

glb=$(grep -o '"/models/[^"]*\.glb"' "$run/root/assets/index.json" | head -1 | tr -d '"')
gltf=$(grep -o '"/models/[^"]*\.gltf"' "$run/root/assets/index.json" | head -1 | tr -d '"')
cat <<MSG

meshcdn demo is running (Ctrl-C stops it)
  edge    http://127.0.0.1:$EDGE_PORT        (store: $run/store)
  admin   http://127.0.0.1:$ADMIN_PORT/metrics
  origin  http://127.0.0.1:$ORIGIN_PORT/assets  (SigV4 only: try it unsigned, get AccessDenied)
  catalog $run/root/assets/index.json

MSG
if [ -n "$viewer" ]; then
  cat <<MSG
  viewer  http://127.0.0.1:$EDGE_PORT/viewer/index.html
          the catalog's models in a browser, fetched through the edge, each file's
          X-Cache and Cache-Status beside it; "fetch again" shows Miss -> Hit
MSG
fi
cat <<MSG

Try:
  curl -sI http://127.0.0.1:$EDGE_PORT$glb | grep -E 'X-Cache|Cache-Status|Age'   # Miss
  curl -sI http://127.0.0.1:$EDGE_PORT$glb | grep -E 'X-Cache|Cache-Status|Age'   # Hit
  curl -s  http://127.0.0.1:$EDGE_PORT$gltf | head -c 300; echo
  curl -s -r 0-11 http://127.0.0.1:$EDGE_PORT$glb | od -c | head -2
  curl -s  http://127.0.0.1:$ORIGIN_PORT/assets$glb
  curl -s  http://127.0.0.1:$ADMIN_PORT/metrics | grep -E '^meshcdn_edge_(requests|store)'

Purge it (operator key in $run/operator.cred):
  export MESHCDN_CREDENTIALS=$run/operator.cred MESHCDN_CONTROL=http://127.0.0.1:$CONTROL_PORT
  $bin/meshcdnctl purge --edge http://127.0.0.1:$ADMIN_PORT $glb    # this node only
  $bin/meshcdnctl invalidate --wait '/models/*'                       # the fleet, via the control API
  $bin/meshcdnctl list
Load it:
  $bin/meshcdn-load run --index $run/root/assets/index.json --target http://127.0.0.1:$EDGE_PORT --duration 10s \\
      --metrics http://127.0.0.1:$ADMIN_PORT/metrics   # + the edge's counts, and Belady/SIEVE/LRU at its store size
MSG
wait
