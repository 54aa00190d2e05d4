#!/usr/bin/env bash
# verify.sh BUILD_DIR — check the systemd units as they are installed:
# `DESTDIR=ROOT cmake --install BUILD_DIR --prefix /usr`, then
# `systemd-analyze verify --root=ROOT` on meshcdn-origin.service and an
# instance of meshcdn-edge@.service. Works without systemd as PID 1 (verify
# loads the units in an offline manager). The root also gets the host's own
# units (sysinit.target, ...) and kill(1), which the units depend on.
#
# systemd-analyze exits 0 on unknown keys and bad values (it only warns), so
# any output at all is a failure; a deliberately broken copy is checked first
# to show the check is live. Exit 0 pass, 1 fail, 77 skipped (no systemd-analyze).
set -euo pipefail
build=${1:?usage: verify.sh BUILD_DIR}
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze not found (Debian package systemd; deploy/deps.sh --test installs it)"
  exit 77
fi
root=$(mktemp -d "${TMPDIR:-/tmp}/meshcdn-verify.XXXXXX")
# systemd-analyze, run as root without systemd as PID 1, stamps
# /run/systemd/systemd-units-load; remove it when it was not there before.
stamp=/run/systemd/systemd-units-load
had_stamp=0; [ -e $stamp ] && had_stamp=1
trap 'rm -rf "$root"; if [ $had_stamp = 0 ]; then rm -f $stamp; fi' EXIT
DESTDIR=$root cmake --install "$build" --prefix /usr >/dev/null
units=$root/usr/lib/systemd/system
for u in meshcdn-origin.service meshcdn-edge@.service; do
  [ -f "$units/$u" ] || { echo "FAIL: $u not installed in $units"; exit 1; }
done
cp -an /usr/lib/systemd/system/. "$units/"   # -n: never over ours
ln -s usr/bin "$root/bin"
ln -s usr/lib "$root/lib"
ln -s usr/sbin "$root/sbin"
cp "$(type -P kill)" "$root/usr/bin/kill"

check() {   # check UNIT...: prints the output, returns 1 when there is any
  local out rc=0
  out=$(systemd-analyze verify --man=no --root="$root" "$@" 2>&1) || rc=$?
  if [ $rc -ne 0 ] || [ -n "$out" ]; then
    printf '%s\n' "$out"
    return 1
  fi
}

# Live check: a misspelt key and a bad value must be reported.
cp "$units/meshcdn-origin.service" "$root/ok.service"
sed -i 's/^ProtectHome=yes/ProtectHom=yes/; s/^SystemCallFilter=@system-service/SystemCallFilter=@system-servic/' \
    "$units/meshcdn-origin.service"
if check meshcdn-origin.service >/dev/null; then
  echo "FAIL: systemd-analyze verify did not report a broken unit; this check proves nothing here"
  exit 1
fi
mv "$root/ok.service" "$units/meshcdn-origin.service"

if ! check meshcdn-origin.service meshcdn-edge@edge-a.service meshcdn-edge@tier.service; then
  echo "FAIL: systemd-analyze verify reported the above"
  exit 1
fi
echo "PASS: meshcdn-origin.service, meshcdn-edge@.service pass systemd-analyze verify ($(systemd-analyze --version | head -1))"
for u in meshcdn-origin.service meshcdn-edge@edge-a.service; do
  systemd-analyze security --offline=true --root="$root" "$u" 2>/dev/null | grep 'Overall exposure' || true
done
