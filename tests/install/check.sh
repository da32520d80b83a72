#!/usr/bin/env bash
# The installed files agree with each other: shoal is installed as an operator installs it and run
# as its systemd unit runs it, and every step of the unit's life works.
#
#   tests/install/check.sh SOURCE_DIR BUILD_DIR       (as root: namespaces, a chroot, the unit's user)
#
# 1. `cmake --install --prefix /usr` into a staging root, and the Debian package (cpack, the same
#    rules): the two hold the same files, and the man page has the README's sections.
# 2. In throwaway namespaces (mount, network, pid), over an overlay of this machine's own root so
#    that nothing of it is touched: `dpkg -i` of the package, whose postinst creates the user.
#    `systemd-analyze verify` on its units where systemd is installed.
# 3. The unit's constraints, read from the installed unit itself: its User= and Group=, the whole
#    tree read-only (ProtectSystem=strict) but for its ReadWritePaths=, which exist as its
#    RuntimeDirectory= and LogsDirectory= make them, a private /tmp, no new privileges. Then its
#    ExecStartPre= (-t), ExecStart= (answers on the config's port), ExecReload=, a logrotate run
#    of the installed logrotate file (shoal writes into the new files afterwards), `shoal status`,
#    its KillSignal= (exit 0), and `dpkg --purge`.
# Not emulated: the capability bounding set, PrivateDevices=, the syscall and address-family
# filters, MemoryDenyWriteExecute= (systemd-analyze verify checks that they parse).
set -euo pipefail
fail() { echo "install check: $*" >&2; exit 1; }
step() { echo "install check: $*"; }

if [ "${1:-}" = --inside ]; then inside=1; work=$2; else inside=""; fi

if [ -z "$inside" ]; then
  src=$1 build=$2
  if [ "$(id -u)" -ne 0 ]; then
    echo "install check: not run: it needs root (namespaces, a chroot, the unit's user)" >&2
    exit 77
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT

  step "cmake --install --prefix /usr into a staging root"
  DESTDIR="$work/stage" cmake --install "$build" --prefix /usr --component Runtime > "$work/install.log" ||
    { cat "$work/install.log"; fail "cmake --install failed"; }
  step "the Debian package, from the same rules"
  cpack -G DEB -B "$work/package" --config "$build/CPackConfig.cmake" > "$work/cpack.log" 2>&1 ||
    { cat "$work/cpack.log"; fail "cpack failed"; }
  deb=$(ls "$work"/package/shoal_*.deb)

  (cd "$work/stage" && find . -type f | sed 's#^\.##' | sort) > "$work/staged.txt"
  dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' | sort > "$work/packaged.txt"
  diff "$work/staged.txt" "$work/packaged.txt" || fail "the package and cmake --install hold different files"
  for path in /usr/bin/shoal /etc/shoal/server.toml /etc/logrotate.d/shoal /usr/lib/systemd/system/shoal.service \
              /usr/lib/systemd/system/shoal.socket /usr/lib/tmpfiles.d/shoal.conf /usr/share/man/man8/shoal.8.gz \
              /usr/share/doc/shoal/README.md /usr/share/doc/shoal/prometheus-alerts.yml \
              /usr/share/doc/shoal/grafana-dashboard.json; do
    grep -qx "$path" "$work/packaged.txt" || fail "$path is not installed"
  done
  mkdir -p "$work/unpacked" && dpkg-deb -x "$deb" "$work/unpacked"
  for path in $(grep -v '^/usr/bin/shoal$' "$work/staged.txt"); do  # the package's binary is stripped
    cmp -s "$work/stage$path" "$work/unpacked$path" || fail "$path differs between the package and cmake --install"
  done
  dpkg-deb -f "$deb" Depends | grep -q libevent || fail "the package does not depend on libevent"
  [ "$(dpkg-deb -I "$deb" conffiles | sort | tr '\n' ' ')" = "/etc/logrotate.d/shoal /etc/shoal/server.toml " ] ||
    fail "the package's conffiles are not its two files in /etc"

  manpage=$(zcat "$work/stage/usr/share/man/man8/shoal.8.gz")
  for heading in NAME SYNOPSIS DESCRIPTION "COMMAND LINE" "SIGNALS AND COMMANDS" "DEPLOYING A NEW VERSION" \
                 CONFIGURATION LOGS "LIMITS AND TIMEOUTS" SYSTEMD KEYS FILES; do
    grep -qx ".SH $heading" <<< "$manpage" || fail "the man page has no section $heading"
  done
  grep -q '^\.TH shoal 8 ' <<< "$manpage" || fail "the man page is not shoal(8)"
  grep -q 'max_header_bytes' <<< "$manpage" || fail "the man page does not list the config keys"

  cp "$deb" "$work/shoal.deb"
  step "dpkg -i and the unit's life, in namespaces over an overlay of this machine's root"
  # Mounts made inside must never reach this machine: private propagation. Where / is no mount
  # point (a chroot, as on a fresh CI machine) it cannot be changed; every mount there is private
  # already, which the inside checks before it mounts anything else.
  propagation=private
  unshare --mount --propagation private true 2> /dev/null || propagation=unchanged
  exec unshare --mount --net --pid --fork --propagation "$propagation" "$0" --inside "$work"
fi

# ---- inside the namespaces: pid 1 of a pid namespace, so every process started here dies with it
root="$work/ns/root"
mkdir -p "$work/ns"
mount -t tmpfs tmpfs "$work/ns"     # the overlay's upper layer may not live on the root it covers
if [ "$(findmnt -n -o PROPAGATION "$work/ns")" != private ]; then
  umount "$work/ns"
  fail "mounts made here would propagate to this machine (propagation $(findmnt -n -o PROPAGATION /)): not run"
fi
mkdir -p "$work/ns/upper" "$work/ns/work" "$root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/ns/upper,workdir=$work/ns/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/tmp"    # PrivateTmp=
mount -t tmpfs tmpfs "$root/run"    # a /run as at boot: nothing of this machine's
ip link set lo up
in_root() { chroot "$root" "$@"; }

cp "$work/shoal.deb" "$root/tmp/"
in_root dpkg -i /tmp/shoal.deb > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i failed"; }
unit=$root/usr/lib/systemd/system/shoal.service
key() { sed -n "s/^$1=//p" "$unit" | tail -1; }
user=$(key User) group=$(key Group)
[ -n "$user" ] && [ -n "$group" ] || fail "the unit sets no User= or Group="
in_root getent passwd "$user" > /dev/null || fail "the package did not create the unit's user '$user'"
[ "$(in_root stat -c %U /var/log/shoal)" = "$user" ] || fail "the package did not make /var/log/shoal for '$user'"
[ "$(in_root stat -c %U /run/shoal)" = "$user" ] || fail "the package did not make /run/shoal for '$user'"
grep -qx "d /run/shoal 0755 $user $group -" "$root/usr/lib/tmpfiles.d/shoal.conf" ||
  fail "/usr/lib/tmpfiles.d/shoal.conf does not make /run/shoal for the unit's user at boot"
step "as the unit's user, before systemd made anything: shoal -t"
in_root setpriv --reuid="$user" --regid="$group" --clear-groups /usr/bin/shoal -t -c /etc/shoal/server.toml ||
  fail "shoal -t failed as '$user' right after the install"

if in_root sh -c 'command -v systemd-analyze' > /dev/null; then
  in_root systemd-analyze verify /usr/lib/systemd/system/shoal.service /usr/lib/systemd/system/shoal.socket \
    > "$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "systemd-analyze verify found problems in the units"; }
  [ ! -s "$work/verify.log" ] || { cat "$work/verify.log"; fail "systemd-analyze verify warned about the units"; }
  step "systemd-analyze verify: the units are clean"
else
  step "systemd-analyze is not installed here: the units were not verified by it"
fi

# What systemd makes before it starts the unit, then ProtectSystem=strict with ReadWritePaths=.
for dir in $(key RuntimeDirectory); do in_root install -d -o "$user" -g "$group" -m 0755 "/run/$dir"; done
for dir in $(key LogsDirectory); do in_root install -d -o "$user" -g "$group" -m 0755 "/var/log/$dir"; done
for path in $(key ReadWritePaths); do
  [ -d "$root$path" ] || fail "ReadWritePaths= names $path, which the unit does not create"
  mount --bind "$root$path" "$root$path"
done
mount -o remount,bind,ro "$root"
mount -o remount,bind,ro "$root/run"
unit_constraints=(chroot "$root" setpriv --reuid="$user" --regid="$group" --clear-groups --no-new-privs)
as_unit() { "${unit_constraints[@]}" "$@"; }
# The unit's command lines, word for word.
read -r -a start_pre <<< "$(key ExecStartPre)"
read -r -a start <<< "$(key ExecStart)"
read -r -a reload <<< "$(key ExecReload)"
config=""
for ((i = 0; i < ${#start[@]}; i++)); do [ "${start[i]}" = -c ] && config=${start[i + 1]}; done
[ -n "$config" ] || fail "ExecStart= names no config (-c)"
port=$(sed -n 's/^listen = \[".*:\([0-9]*\)"\]/\1/p' "$root$config")
[ -n "$port" ] || fail "no listen port found in $config"
log_dir=$(dirname "$(sed -n 's/^file = "\(.*\)"/\1/p' "$root$config")")
deadline() { local until=$((SECONDS + $1)); shift; until "$@"; do ((SECONDS < until)) || return 1; sleep 0.05; done; }

step "ExecStartPre: ${start_pre[*]}"
as_unit "${start_pre[@]}" || fail "ExecStartPre failed as '$user' under the unit's constraints"
step "ExecStart: ${start[*]}"
"${unit_constraints[@]}" "${start[@]}" > "$work/stdout.log" 2>&1 &   # not a function: $! is shoal
master=$!
answers() { [ "$(curl -s --max-time 1 "http://127.0.0.1:$port/")" = "shoal is running" ]; }
deadline 15 answers || { cat "$work/stdout.log" "$root$log_dir/shoal.log" 2>/dev/null; fail "no answer on port $port"; }
[ "$(cat "$root/run/shoal/shoal.pid")" = "$master" ] || fail "the pid file does not name the master"
metrics_at=$(sed -n '/^\[metrics\]/,/^\[/s/^listen = "\(.*\)"/\1/p' "$root$config")
if [ -n "$metrics_at" ]; then
  curl -sS --max-time 2 "http://$metrics_at/metrics" > "$work/metrics.txt" 2>&1 || true
  grep -q '^shoal_workers{generation="1",state="ready"}' "$work/metrics.txt" ||
    { head -c 2000 "$work/metrics.txt"; cat "$work/stdout.log" "$root$log_dir/shoal.log" 2>/dev/null | tail -20
      fail "no metrics at http://$metrics_at/metrics under the unit"; }
  step "metrics answer at http://$metrics_at/metrics"
fi
step "ExecReload: ${reload[*]}"
as_unit "${reload[@]}" > "$work/reload.out" || { cat "$work/reload.out"; fail "ExecReload failed"; }
grep -q '^reload ok' "$work/reload.out" || fail "ExecReload said: $(cat "$work/reload.out")"

step "logrotate with /etc/logrotate.d/shoal"
answers && answers
requests() { if [ -f "$1" ]; then grep -c '"GET / HTTP/1.1" 200' "$1" || true; else echo 0; fi; }
logged() { [ "$(requests "$root$log_dir/access.log")" -ge "$1" ]; }
deadline 5 logged 2 || fail "the access log did not get its lines"
in_root logrotate -f -s /tmp/logrotate.state /etc/logrotate.d/shoal > "$work/logrotate.log" 2>&1 ||
  { cat "$work/logrotate.log"; fail "logrotate failed (its postrotate runs shoal reopen)"; }
[ -f "$root$log_dir/access.log.1" ] && [ -f "$root$log_dir/shoal.log.1" ] || fail "logrotate rotated nothing"
rotated=$(requests "$root$log_dir/access.log.1")
answers
deadline 5 logged 1 || fail "after logrotate, the new access log got no line"
[ "$(requests "$root$log_dir/access.log.1")" = "$rotated" ] || fail "after logrotate, shoal still wrote into the rotated file"
grep -q 'reopen' "$root$log_dir/shoal.log" || fail "after logrotate, the new shoal.log has no line of the reopen"

step "shoal status"
as_unit "${start[0]}" status -c "$config" > "$work/status.out" || { cat "$work/status.out"; fail "shoal status failed"; }
step "KillSignal=$(key KillSignal)"
kill -s "$(key KillSignal | sed 's/^SIG//')" "$master"
stop_seconds=$(key TimeoutStopSec | sed 's/s$//')
gone() { ! kill -0 "$master" 2> /dev/null; }  # bash reaps its background job as it exits
deadline "$stop_seconds" gone || fail "shoal did not stop within TimeoutStopSec"
code=0
wait "$master" || code=$?
[ "$code" = 0 ] || { tail -20 "$root$log_dir/shoal.log"; fail "shoal exited $code after the stop signal"; }
if grep -E ' (error|critical) ' "$root$log_dir/shoal.log" "$root$log_dir/shoal.log.1"; then
  fail "shoal logged errors"
fi

step "dpkg --purge"
for path in $(key ReadWritePaths); do umount "$root$path"; done
mount -o remount,bind,rw "$root"
mount -o remount,bind,rw "$root/run"
in_root dpkg --purge shoal > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge failed"; }
[ ! -e "$root/usr/bin/shoal" ] && [ ! -e "$root/etc/shoal/server.toml" ] && [ ! -e "$root/var/log/shoal" ] &&
  [ ! -e "$root/run/shoal" ] && [ ! -e "$root/usr/lib/tmpfiles.d/shoal.conf" ] ||
  fail "dpkg --purge left files behind"
step "ok"
