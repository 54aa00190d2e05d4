#!/usr/bin/env bash
# Install the Debian packages meshcdn needs to build, run and test, only the
# ones missing (idempotent; apt-get update runs only when something is missing).
# Usage: deploy/deps.sh [--test | --bench]
set -euo pipefail

pkgs=(build-essential cmake pkg-config libevent-dev libcurl4-openssl-dev libssl-dev
      libxxhash-dev liblmdb-dev libinih-dev libjansson-dev zlib1g-dev libbrotli-dev curl ca-certificates)
# Node.js and npm: deploy/viewer/install.sh installs the demo's viewer page
# from the npm registry (a node that came with its own npm is left alone)
if ! command -v node >/dev/null; then pkgs+=(nodejs npm)
elif ! command -v npm >/dev/null; then pkgs+=(npm); fi
if [ "${1:-}" = "--test" ]; then
  # awscli, s3cmd, python3-boto3: tests/e2e/test_s3clients.py drives them against the origin;
  # python3-botocore: tests/e2e/ctlpeer.py checks meshcdnctl's signatures with it too;
  # openssl (the CLI): tests/e2e/test_tls.py makes its throwaway CA and certificates with it;
  # systemd: systemd-analyze verify checks deploy/systemd/ (ctest deploy_systemd_verify);
  # strace: test_deploy.py checks the daemons' system calls against the units' filter;
  # systemd-container: deploy/systemd/boot-test.sh boots the units in systemd-nspawn;
  # chromium: tests/e2e/test_viewer.py opens the viewer page in it, headless;
  # etcd-server, etcd-client: tests/e2e/test_etcd.py runs a 3-member cluster for the etcd backend;
  # python3-brotli, brotli (the CLI): tests/e2e/test_mesh3d.py decodes the edge's br variants;
  # iproute2 (ip, tc): deploy/lab's network namespaces, veths, bridges and netem (test_lab.py)
  pkgs+=(libcmocka-dev python3 awscli s3cmd python3-boto3 python3-botocore openssl systemd strace
         systemd-container chromium etcd-server etcd-client python3-brotli brotli iproute2)
fi
if [ "${1:-}" = "--bench" ]; then
  # tests/bench/compare.sh: the peers (run from generated configs, never as services) and the driver;
  # linux-perf, strace: tests/bench/syscalls.sh counts syscalls and CPU time per request;
  # valgrind: tests/bench/instr.sh counts user-space instructions per request;
  # gdb: tests/bench/soak.sh asks the edge's malloc for its bytes in use (malloc_stats)
  pkgs+=(python3 nginx varnish wrk linux-perf strace valgrind gdb)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
