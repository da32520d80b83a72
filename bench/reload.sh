#!/usr/bin/env bash
# Reload under real load: wrk drives shoal on loopback while the master gets SIGHUP every second,
# once with keep-alive connections and once with a new connection per request. Prints, for each,
# the requests, the non-2xx responses and each kind of socket error. The target is zero of each.
#
#   bench/reload.sh [SECONDS] [CONNECTIONS]     (defaults: 20 s, 32 connections)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
connections=${2:-32}

if ! command -v wrk >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "reload.sh: wrk is missing: apt-get install wrk" >&2; exit 1; }
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
fi
BUILD_TYPE=Release ./build.sh >/dev/null

work=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/shoal.toml" <<TOML
[server]
user = "$(id -un)"
listen = ["127.0.0.1:0"]
workers = "auto"
[log]
level = "info"
[[route]]
path = "/hello"
body = "ok\n"
TOML

run() {  # run NAME [wrk header args...]
  local name=$1; shift
  : > "$work/shoal.log"
  ./build/shoal -c "$work/shoal.toml" > "$work/shoal.log" 2>&1 &
  local master=$!
  local port=""
  for _ in $(seq 100); do
    port=$(grep -oP 'listening on http://127\.0\.0\.1:\K[0-9]+' "$work/shoal.log" || true)
    [ -n "$port" ] && grep -q '] generation 1 ready:' "$work/shoal.log" && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "shoal did not start:"; cat "$work/shoal.log"; exit 1; }
  wrk -t2 -c"$connections" -d"${seconds}s" -s bench/count_non2xx.lua "$@" "http://127.0.0.1:$port/hello" \
    > "$work/wrk.out" 2>&1 &
  local wrk_pid=$!
  local reloads=0
  # One SIGHUP a second while wrk runs (stopping a second early so the last one completes under load).
  for _ in $(seq $((seconds - 1))); do
    sleep 1
    kill -HUP "$master"
    reloads=$((reloads + 1))
  done
  wait "$wrk_pid"
  kill -TERM "$master"
  wait "$master" || true
  local ok; ok=$(grep -c 'reload succeeded' "$work/shoal.log" || true)
  local failed; failed=$(grep -c 'reload failed' "$work/shoal.log" || true)
  printf '%-26s %s reloads=%d succeeded=%d failed=%d\n' "$name" "$(grep '^requests=' "$work/wrk.out")" \
    "$reloads" "$ok" "$failed"
}

echo "shoal $(./build/shoal --version | cut -d' ' -f2), $(nproc) CPUs, ${seconds}s per run, SIGHUP every second"
run "keep-alive ($connections conns)"
run "new connection per request" -H "Connection: close"
