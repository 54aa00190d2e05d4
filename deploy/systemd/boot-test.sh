#!/usr/bin/env bash
# boot-test.sh [BUILD_DIR] — run the installed units under a real systemd:
# boots a throwaway container (systemd-nspawn --volatile=yes: the host's
# /usr read-only, an empty tmpfs root, a private network), with the build's
# `cmake --install --prefix /usr` laid over /usr, the example configs
# us-east-1/edge-a.ini and origin.ini unchanged in /etc/meshcdn (the
# example host names point at 127.0.0.1 in the container), and a meshcdn
# user. Then it checks, from inside: both units run as meshcdn with
# NoNewPrivs, a seccomp filter and no capabilities; the edge fetches an
# object through the origin (miss, hit, same bytes); /readyz; both stop on
# SIGTERM with status 0. Nothing on the host is changed (the cgroups and
# /run entries nspawn leaves behind are removed).
#
# Needs root and systemd-nspawn (Debian package systemd-container). Opt-in,
# not a ctest: it boots a container and touches the host's cgroup tree.
# Exit 0 pass, 1 fail, 77 skipped. Uses a Release build by default.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build-rel}
if [ "$(id -u)" -ne 0 ] || ! command -v systemd-nspawn >/dev/null; then
  echo "SKIP: needs root and systemd-nspawn (Debian package systemd-container)"; exit 77
fi
[ -x "$build/meshcdn-edge" ] || { echo "FAIL: $build/meshcdn-edge not built"; exit 1; }

w=$(mktemp -d "${TMPDIR:-/tmp}/meshcdn-boot.XXXXXX")
machine=meshcdn-boot-$$
had_run=$(ls /run/systemd 2>/dev/null || true)
cleanup() {
  rm -rf "$w"
  # what nspawn --keep-unit leaves when systemd is not PID 1 on the host
  for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
    for d in payload supervisor; do
      [ -d "$h/$d" ] && find "$h/$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  done
  rmdir /run/systemd/nspawn/propagate /run/systemd/nspawn /run/systemd/nspawn-root 2>/dev/null || true
  if ! grep -qx systemd-units-load <<<"$had_run"; then rm -f /run/systemd/systemd-units-load; fi
}
trap cleanup EXIT

DESTDIR=$w/stage cmake --install "$build" --prefix /usr >/dev/null
mkdir -p "$w"/{units,etc,seed/assets/models,result}
cp "$w"/stage/usr/lib/systemd/system/meshcdn-*.service "$w/units/"
uid=$(awk -F: 'BEGIN{u=990} {seen[$3]=1} END{while (seen[u]) u++; print u}' /etc/passwd)
cp /etc/passwd "$w/passwd"; cp /etc/group "$w/group"
echo "meshcdn:x:$uid:$uid:meshcdn:/var/lib/meshcdn:/usr/sbin/nologin" >>"$w/passwd"
echo "meshcdn:x:$uid:" >>"$w/group"
printf '127.0.0.1 localhost\n127.0.0.1 origin.meshcdn.example\n' >"$w/hosts"

cp "$top/deploy/regions/origin.ini" "$top/deploy/regions/us-east-1/edge-a.ini" "$w/etc/"
umask 077
printf 'AKIDBOOTEDGE %s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$w/etc/origin.keys"
cp "$w/etc/origin.keys" "$w/etc/edge.cred"
printf 'AKIDBOOTOPS %s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$w/etc/operators.keys"
umask 022
chown "$uid:$uid" "$w"/etc/*.keys "$w"/etc/*.cred
chown "root:$uid" "$w/etc" "$w"/etc/*.ini; chmod 0750 "$w/etc"; chmod 0640 "$w"/etc/*.ini
head -c 700000 /dev/urandom >"$w/seed/assets/models/chair.glb"

cat >"$w/units/boot-test.target" <<'UNIT'
[Unit]
Description=meshcdn boot test
Wants=boot-seed.service meshcdn-origin.service meshcdn-edge@edge-a.service boot-probe.service
UNIT
cat >"$w/units/boot-seed.service" <<'UNIT'
[Unit]
Before=meshcdn-origin.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'install -d -o meshcdn -g meshcdn /var/lib/meshcdn/origin && cp -r /seed/assets /var/lib/meshcdn/origin/ && chown -R meshcdn:meshcdn /var/lib/meshcdn/origin'
UNIT
cat >"$w/units/boot-probe.service" <<'UNIT'
[Unit]
After=meshcdn-origin.service meshcdn-edge@edge-a.service
[Service]
Type=oneshot
StandardOutput=append:/result/out.txt
StandardError=append:/result/err.txt
ExecStart=/seed/probe.sh
ExecStopPost=/bin/systemctl --no-block poweroff
UNIT
cat >"$w/seed/probe.sh" <<'PROBE'
#!/bin/sh
for i in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:9080/readyz && break; sleep 0.1; done
for u in meshcdn-origin.service meshcdn-edge@edge-a.service; do
  pid=$(systemctl show -p MainPID --value $u)
  echo "$u user=$(stat -c %U /proc/$pid) $(grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/$pid/status | sed 's/:[[:space:]]*/=/' | tr '\n' ' ')"
  echo "$u $(grep 'Max open files' /proc/$pid/limits | tr -s ' ')"
done
for n in 1 2; do echo "get$n $(curl -s -o /tmp/body -D - http://127.0.0.1:8080/models/chair.glb | grep -i '^x-cache' | tr -d '\r')"; done
cmp -s /tmp/body /seed/assets/models/chair.glb && echo "body same"
echo "readyz $(curl -s http://127.0.0.1:9080/readyz)"
systemctl stop meshcdn-edge@edge-a.service meshcdn-origin.service
for u in meshcdn-origin.service meshcdn-edge@edge-a.service; do
  echo "$u stopped $(systemctl show -p Result -p ExecMainStatus $u | tr '\n' ' ')"
done
echo "--- journal"
journalctl --no-pager -o cat -u meshcdn-edge@edge-a -u meshcdn-origin | tail -25
PROBE
chmod 755 "$w/seed/probe.sh"

rc=0
timeout 180 systemd-nspawn -D / --volatile=yes --private-network --register=no --keep-unit \
  --machine="$machine" --overlay-ro="/usr:$w/stage/usr:/usr" \
  --bind-ro="$w/units:/etc/systemd/system" --bind="$w/etc:/etc/meshcdn" \
  --bind-ro="$w/passwd:/etc/passwd" --bind-ro="$w/group:/etc/group" --bind-ro="$w/hosts:/etc/hosts" \
  --bind-ro="$w/seed:/seed" --bind="$w/result:/result" \
  -b systemd.unit=boot-test.target systemd.firstboot=off >"$w/console.log" 2>&1 || rc=$?
out=$w/result/out.txt
if [ ! -s "$out" ]; then
  echo "FAIL: the probe wrote nothing (nspawn exit $rc); console:"; tail -30 "$w/console.log"
  cat "$w/result/err.txt" 2>/dev/null; exit 1
fi
cat "$out"
fail=0
expect() { grep -qE "$1" "$out" || { echo "FAIL: expected /$1/"; fail=1; }; }
for u in meshcdn-origin.service 'meshcdn-edge@edge-a.service'; do
  expect "^$u user=meshcdn CapEff=0+ CapBnd=0+ NoNewPrivs=1 Seccomp=2 "
  expect "^$u stopped Result=success ExecMainStatus=0"
done
expect '^get1 X-Cache: Miss from meshcdn'
expect '^get2 X-Cache: Hit from meshcdn'
expect '^body same'
expect '^readyz ready'
if [ $fail -ne 0 ] && [ -s "$w/result/err.txt" ]; then echo "--- probe stderr"; cat "$w/result/err.txt"; fi
[ $fail -eq 0 ] && echo "PASS: both units run hardened under systemd $(systemd-analyze --version | awk 'NR==1{print $2}') and serve"
exit $fail
