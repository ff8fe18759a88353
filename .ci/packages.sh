#!/usr/bin/env bash
# Builds the .deb and the .rpm and checks them on this machine, as root on Debian:
# install, files/owners/modes, check-config and a foreground start as the cuewarden user,
# upgrade over itself keeping an edited config, remove, purge; the .rpm's contents and
# scriptlets with Debian's `rpm`; sizes; the unit's systemd-analyze exposure.
#
# Installs what it needs itself: Debian's `rpm` and `curl`, cargo-deb and cargo-generate-rpm
# (built once into $HOME/.cache/cuewarden-tools, then reused).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cuewarden-target}"
export CARGO_TERM_COLOR=never
TOOLS_TARGET_DIR="$HOME/.cache/cuewarden-tools"
CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
MAX_BINARY_BYTES=$((15 * 1024 * 1024))
MAX_DEB_BYTES=$((6 * 1024 * 1024))
MAX_EXPOSURE=2.0

if [ "$(id -u)" != 0 ]; then
  echo "packages.sh installs packages: run it as root" >&2
  exit 1
fi

passed=0
failed=0
ok() { passed=$((passed + 1)); printf '  ok    %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$1"; }
# check DESCRIPTION COMMAND...: counts COMMAND's success.
check() {
  local what=$1
  shift
  if "$@" >/tmp/cuewarden-check.out 2>&1; then
    ok "$what"
  else
    bad "$what"
    sed 's/^/        /' /tmp/cuewarden-check.out
  fi
}
# owner_mode PATH USER:GROUP MODE
owner_mode() {
  local got
  got=$(stat -c '%U:%G %a' "$1")
  [ "$got" = "$2 $3" ] || { echo "$1 is $got, want $2 $3"; return 1; }
}

echo "-- tools"
missing=()
command -v rpm >/dev/null || missing+=(rpm)
command -v curl >/dev/null || missing+=(curl)
# systemd-analyze rates the unit; systemd-sysusers is what the package depends on.
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# `cargo install` is a no-op when this exact version is already installed.
CARGO_TARGET_DIR="$TOOLS_TARGET_DIR" cargo install --locked --quiet \
  cargo-deb --version "$CARGO_DEB_VERSION"
# Debug build: a third of the build time, and fast enough to pack one binary.
CARGO_TARGET_DIR="$TOOLS_TARGET_DIR" cargo install --locked --quiet --debug \
  cargo-generate-rpm --version "$CARGO_GENERATE_RPM_VERSION"

echo "-- build"
cargo build --release --locked
binary="$CARGO_TARGET_DIR/release/cuewarden"
cargo deb --no-build --locked --quiet
deb=$(ls -t "$CARGO_TARGET_DIR"/debian/cuewarden_*.deb | head -n1)
cargo generate-rpm --target-dir "$CARGO_TARGET_DIR"
rpm_file=$(ls -t "$CARGO_TARGET_DIR"/generate-rpm/cuewarden-*.rpm | head -n1)

binary_bytes=$(stat -c %s "$binary")
deb_bytes=$(stat -c %s "$deb")
rpm_bytes=$(stat -c %s "$rpm_file")

echo "-- unit"
exposure=$(systemd-analyze security --offline=yes packaging/systemd/cuewarden.service 2>/dev/null \
  | sed -n 's/.*Overall exposure level for cuewarden.service: \([0-9.]*\).*/\1/p')
echo "  systemd-analyze security exposure: ${exposure:-unknown} (target <= $MAX_EXPOSURE)"
check "exposure ${exposure:-?} <= $MAX_EXPOSURE" \
  awk -v e="${exposure:-99}" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(e <= max) }'
check "unit runs check-config before start" \
  grep -qx 'ExecStartPre=/usr/bin/cuewarden check-config' packaging/systemd/cuewarden.service
check "unit is Type=notify, Restart=on-failure, User=cuewarden, StateDirectory=cuewarden" \
  sh -c 'for l in Type=notify Restart=on-failure User=cuewarden StateDirectory=cuewarden \
    ProtectSystem=strict NoNewPrivileges=yes PrivateTmp=yes ProtectHome=yes; do
    grep -qx "$l" packaging/systemd/cuewarden.service || { echo "missing $l"; exit 1; }; done'

echo "-- sizes"
check "binary $binary_bytes bytes <= $MAX_BINARY_BYTES" test "$binary_bytes" -le "$MAX_BINARY_BYTES"
check ".deb $deb_bytes bytes <= $MAX_DEB_BYTES" test "$deb_bytes" -le "$MAX_DEB_BYTES"

echo "-- .deb contents"
dpkg-deb -c "$deb" | awk '{print $6}' >/tmp/cuewarden-deb-files
for f in ./usr/bin/cuewarden ./etc/cuewarden/config.toml ./usr/lib/sysusers.d/cuewarden.conf \
  ./usr/share/doc/cuewarden/copyright; do
  check "deb ships $f" grep -qx "$f" /tmp/cuewarden-deb-files
done
check "deb ships the unit under lib/systemd/system" \
  grep -Eqx '\./(usr/)?lib/systemd/system/cuewarden\.service' /tmp/cuewarden-deb-files
check "deb marks /etc/cuewarden/config.toml as a conffile" \
  sh -c "dpkg-deb -f '$deb' >/dev/null && dpkg-deb -I '$deb' conffiles | grep -qx /etc/cuewarden/config.toml"

control=$(mktemp -d)
dpkg-deb -e "$deb" "$control"
for script in postinst prerm postrm; do
  check "deb $script is valid sh" sh -n "$control/$script"
done
rm -rf "$control"

echo "-- install"
if dpkg-query -W -f='${Status}' cuewarden 2>/dev/null | grep -q 'ok installed\|config-files'; then
  dpkg --purge cuewarden >/dev/null
fi
check "dpkg -i" dpkg -i "$deb"
check "/usr/bin/cuewarden root:root 755" owner_mode /usr/bin/cuewarden root:root 755
check "/etc/cuewarden/config.toml root:cuewarden 640" \
  owner_mode /etc/cuewarden/config.toml root:cuewarden 640
check "/lib/systemd/system/cuewarden.service root:root 644" \
  owner_mode /lib/systemd/system/cuewarden.service root:root 644
check "/usr/lib/sysusers.d/cuewarden.conf root:root 644" \
  owner_mode /usr/lib/sysusers.d/cuewarden.conf root:root 644
check "/var/lib/cuewarden cuewarden:cuewarden 750" \
  owner_mode /var/lib/cuewarden cuewarden:cuewarden 750
check "cuewarden is a system user without a login shell" \
  sh -c 'uid=$(id -u cuewarden) && [ "$uid" -lt 1000 ] &&
    getent passwd cuewarden | grep -Eq ":(/usr/sbin/nologin|/sbin/nologin|/bin/false)$"'
# verify warns about unknown keys but still exits 0: any output fails the check.
check "systemd-analyze verify accepts the installed unit, without a warning" \
  sh -c 'out=$(systemd-analyze verify --man=no /lib/systemd/system/cuewarden.service 2>&1) &&
    [ -z "$out" ] || { echo "$out"; exit 1; }'
check "installed unit is the packaged one" \
  cmp /lib/systemd/system/cuewarden.service packaging/systemd/cuewarden.service
check "installed config is the packaged one" cmp /etc/cuewarden/config.toml packaging/config.toml
check "unit is enabled (multi-user.target.wants)" \
  test -L /etc/systemd/system/multi-user.target.wants/cuewarden.service

as_cuewarden() { setpriv --reuid=cuewarden --regid=cuewarden --init-groups -- "$@"; }
check "check-config as cuewarden against the installed config" \
  as_cuewarden /usr/bin/cuewarden check-config --config /etc/cuewarden/config.toml

# start_daemon LOG: starts the installed daemon as cuewarden on a free loopback port;
# sets $daemon_pid and $daemon_url.
start_daemon() {
  local log=$1 address=""
  (cd /var/lib/cuewarden && exec env CUEWARDEN__SERVER__LISTEN=127.0.0.1:0 \
    setpriv --reuid=cuewarden --regid=cuewarden --init-groups -- \
    /usr/bin/cuewarden run --config /etc/cuewarden/config.toml) >"$log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 1 100); do
    address=$(sed -n 's/.*listening.*address=\([0-9.:]*\).*/\1/p' "$log" | head -n1)
    [ -n "$address" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  daemon_url="http://$address"
  [ -n "$address" ]
}
stop_daemon() {
  kill -TERM "$daemon_pid"
  wait "$daemon_pid"
}

if start_daemon /tmp/cuewarden-run.log; then
  ok "the installed daemon starts as cuewarden (${daemon_url})"
  check "/health answers 200" curl -fsS --max-time 5 "$daemon_url/health"
  check "state is in /var/lib/cuewarden, owned by cuewarden" \
    sh -c '[ "$(stat -c %U:%G /var/lib/cuewarden/cuewarden.redb)" = cuewarden:cuewarden ]'
  check "the generated API key is private to cuewarden" \
    owner_mode /var/lib/cuewarden/api_key cuewarden:cuewarden 600
  check "an authenticated API call works" \
    curl -fsS --max-time 5 -H "X-Api-Key: $(cat /var/lib/cuewarden/api_key)" \
    "$daemon_url/api/v1/jobs"
  check "SIGTERM stops it with exit 0" stop_daemon
else
  bad "the installed daemon starts as cuewarden"
  sed 's/^/        /' /tmp/cuewarden-run.log
  kill "$daemon_pid" 2>/dev/null || true
fi

echo "-- upgrade over itself"
marker="# edited by the owner $(date +%s)"
sed -i "s|^listen = .*|listen = \"127.0.0.1:6881\"   $marker|" /etc/cuewarden/config.toml
check "dpkg -i again (upgrade)" dpkg -i --force-confold "$deb"
check "the edited config survives the upgrade" grep -qF "$marker" /etc/cuewarden/config.toml
check "config still root:cuewarden 640" owner_mode /etc/cuewarden/config.toml root:cuewarden 640
check "state survives the upgrade" test -s /var/lib/cuewarden/cuewarden.redb
check "the upgraded config still validates" \
  as_cuewarden /usr/bin/cuewarden check-config --config /etc/cuewarden/config.toml

echo "-- remove, purge"
check "dpkg -r" dpkg -r cuewarden
check "remove deletes the binary and the unit" \
  sh -c '! test -e /usr/bin/cuewarden && ! test -e /lib/systemd/system/cuewarden.service'
check "remove keeps the config and the state" \
  sh -c 'test -f /etc/cuewarden/config.toml && test -f /var/lib/cuewarden/cuewarden.redb'
check "dpkg --purge" dpkg --purge cuewarden
check "purge deletes the config, the state and the enablement" \
  sh -c '! test -e /etc/cuewarden && ! test -e /var/lib/cuewarden &&
    ! test -e /etc/systemd/system/multi-user.target.wants/cuewarden.service'
check "purge keeps the cuewarden user (Debian policy: files may still be owned by it)" \
  getent passwd cuewarden

echo "-- .rpm"
rpm -qlp "$rpm_file" 2>/dev/null | tee /tmp/cuewarden-rpm-files | sed 's/^/  /'
for f in /usr/bin/cuewarden /etc/cuewarden/config.toml /usr/lib/systemd/system/cuewarden.service \
  /usr/lib/sysusers.d/cuewarden.conf; do
  check "rpm ships $f" grep -qx "$f" /tmp/cuewarden-rpm-files
done
check "rpm marks the config %config(noreplace) root:cuewarden 640" \
  sh -c "rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEMODES:octal}\n]' \
    '$rpm_file' 2>/dev/null | grep -Eq '^/etc/cuewarden/config.toml cn root:cuewarden 100640$'"
check "rpm has pre/post install and uninstall scriptlets" \
  sh -c "rpm -qp --scripts '$rpm_file' 2>/dev/null \
    | grep -cE '^(preinstall|postinstall|preuninstall|postuninstall) (scriptlet|program)' | grep -qx 4"

echo "-- sizes"
printf '  binary %8d bytes  %s\n' "$binary_bytes" "$binary"
printf '  .deb   %8d bytes  %s\n' "$deb_bytes" "$deb"
printf '  .rpm   %8d bytes  %s\n' "$rpm_bytes" "$rpm_file"
echo "  exposure ${exposure:-unknown}"

echo "packages: $passed passed, $failed failed"
[ "$failed" = 0 ]
