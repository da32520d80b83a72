#!/usr/bin/env bash
# Rolling deploys across several shoal instances behind HAProxy (Debian's), with load through the
# balancer the whole time. Scenarios: rolling reload (shoal reload), rolling binary upgrade (new
# binary in place, then shoal upgrade), rolling restart (SIGTERM, wait for exit, start, wait until
# HAProxy marks the instance up), and the same restart with drain_delay = "0s" as a control.
#
#   bench/fleet.sh            3 instances, 12 s of load per scenario
#   bench/fleet.sh --short    2 instances, 6 s per scenario
#   --proxy-v2                HAProxy sends a PROXY v2 header (send-proxy-v2, on checks too) and
#                             shoal's listeners expect it (CI runs --short --proxy-v2)
#   --app node                each instance runs examples/node (an [app] under shoal, with
#                             clients/node/shoal.js) instead of shoal's own workers
#   --rate N                  each wrk connection sends N requests per second (a steady rate)
#                             instead of as many as it can
#
# Prints, per scenario, the clients' totals (wrk: requests, non-2xx, each kind of socket error,
# for keep-alive clients and for one connection per request), HAProxy's own counters from its
# stats (5xx sent to clients, retries, redispatches, connection errors, each server's downtime),
# and, for shoal's own workers, a stream of POSTs that each carry an id: how many were answered
# 2xx and how many reached the instances twice (found twice in their access logs).
# Exits 1 if a real scenario (not the control) saw any non-2xx, socket error, 5xx, failed POST or
# POST delivered twice.
set -euo pipefail
cd "$(dirname "$0")/.."
instances=3 seconds=12 proxy="" app="" rate=""
while (($#)); do
  case "$1" in
    --short) instances=2 seconds=6 ;;
    --proxy-v2) proxy=v2 ;;
    --app) app=${2:-}; shift; [ "$app" = node ] || { echo "fleet.sh: --app takes 'node'" >&2; exit 2; } ;;
    --rate) rate=${2:-}; shift; [[ "$rate" =~ ^[1-9][0-9]*$ ]] || { echo "fleet.sh: --rate takes requests per second per connection" >&2; exit 2; } ;;
    *) echo "fleet.sh: unknown option '$1' (--short, --proxy-v2, --app node, --rate N)" >&2; exit 2 ;;
  esac
  shift
done
[ -z "$app" ] || [ -z "$proxy" ] || { echo "fleet.sh: --proxy-v2 is for shoal's own workers, not --app" >&2; exit 2; }
[ -z "$app" ] || command -v node >/dev/null || { echo "fleet.sh: node is missing: run ./build.sh test (it installs nodejs)" >&2; exit 2; }
# wrk paces each connection when WRK_DELAY_MS is set (bench/count_non2xx.lua's delay()).
[ -z "$rate" ] || export WRK_DELAY_MS=$((1000 / rate))
for tool in haproxy wrk curl ss; do
  command -v $tool >/dev/null || { echo "fleet.sh: $tool is missing: run ./build.sh test (it installs what the tests need)" >&2; exit 2; }
done
# SHOAL_BUILD_DIR: which build's binary (ctest in build-asan passes its own).
build_dir=${SHOAL_BUILD_DIR:-build}
[ -x "$build_dir/shoal" ] || { echo "fleet.sh: $build_dir/shoal is missing: run ./build.sh" >&2; exit 2; }

work=$(mktemp -d)
cleanup() {
  for pidfile in "$work"/*.pid; do [ -f "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null; done
  kill -KILL $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  pkill -KILL -f "$work/" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

picked=" "
free_port() {  # free_port VAR: a port no socket uses, below the kernel's ephemeral range (where clients' ports are)
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    [[ "$picked" == *" $port "* ]] && continue
    ss -Htan "sport = :$port" | grep -q . && continue
    picked+="$port "
    printf -v "$1" '%s' "$port"
    return
  done
}

# ---------------------------------------------------------------- instances
declare -a ports
write_config() {  # write_config I DRAIN_DELAY
  local i=$1
  cat > "$work/s$i.toml" <<TOML
[server]
user = "$(id -un)"
listen = [$( [ -n "$proxy" ] && echo "{ address = \"127.0.0.1:${ports[$i]}\", proxy_protocol = \"$proxy\" }" \
             || echo "\"127.0.0.1:${ports[$i]}\"")]
workers = 1
cpu_affinity = "none"
pid_file = "s$i.pid"
control_socket = "s$i.ctl"
[shutdown]
# The rule: drain_delay > check interval x fall + one interval = 200ms x 2 + 200ms = 600ms.
drain_delay = "$2"
timeout = "10s"
[log]
file = "s$i.log"
access_log = "s$i.access.log"
TOML
  if [ -n "$app" ]; then
    cat >> "$work/s$i.toml" <<TOML
[app]
command = ["node", "$PWD/examples/node/server.js"]
ready = "fd"
TOML
  else
    cat >> "$work/s$i.toml" <<TOML
[[route]]
path = "/hello"
body = "ok\n"
TOML
  fi
}
start_instance() {  # start_instance I: runs bin/sI (its own copy of the binary)
  local i=$1
  (cd "$work" && setsid "$work/bin/s$i" -c "$work/s$i.toml" >> "$work/s$i.out" 2>&1 &)
  for _ in $(seq 200); do
    [ -s "$work/s$i.pid" ] && grep -q '\] generation [0-9]* ready:' "$work/s$i.log" 2>/dev/null && return
    sleep 0.05
  done
  echo "instance $i did not start"; cat "$work/s$i.out" "$work/s$i.log"; exit 1
}
stop_instance() {  # SIGTERM, then wait for the master to exit
  local i=$1 pid; pid=$(cat "$work/s$i.pid")
  kill -TERM "$pid"
  for _ in $(seq 400); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  echo "instance $i did not stop"; exit 1
}

mkdir -p "$work/bin"
for i in $(seq 1 $instances); do
  free_port "ports[$i]"
  cp "$build_dir/shoal" "$work/bin/s$i"
  write_config "$i" 1s
  start_instance "$i"
done

# ---------------------------------------------------------------- the balancer
free_port lb_port
free_port stats_port
{
  cat <<CFG
global
    maxconn 4000
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
frontend fleet
    bind 127.0.0.1:$lb_port
    default_backend shoal
backend shoal
    balance roundrobin
    http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
CFG
  server_options="check"
  [ -n "$proxy" ] && server_options="check send-proxy-v2 check-send-proxy"
  for i in $(seq 1 $instances); do echo "    server s$i 127.0.0.1:${ports[$i]} $server_options"; done
  cat <<CFG
frontend stats
    bind 127.0.0.1:$stats_port
    stats enable
    stats uri /stats
CFG
} > "$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -p "$work/haproxy.pid" -D
stats() { curl -s "http://127.0.0.1:$stats_port/stats;csv"; }
column() {  # column CSV PROXY SERVER NAME
  awk -F, -v px="$2" -v sv="$3" -v name="$4" \
    'NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
     $1 == px && $2 == sv { print $col[name] }' <<<"$1"
}
server_up() { [ "$(column "$(stats)" shoal "s$1" status)" = UP ]; }
wait_up() {
  for _ in $(seq 200); do server_up "$1" && return; sleep 0.05; done
  echo "HAProxy did not mark s$1 up"; exit 1
}
for i in $(seq 1 $instances); do wait_up "$i"; done

# ---------------------------------------------------------------- scenarios
failed=0
scenario() {  # scenario NAME ACTION [control]
  local name=$1 action=$2 control=${3:-}
  local name_id=${name//[^a-z]/}
  local before; before=$(stats)
  wrk -t1 -c16 -d"${seconds}s" -s bench/count_non2xx.lua "http://127.0.0.1:$lb_port/hello" > "$work/ka.out" 2>&1 &
  local ka=$!
  wrk -t1 -c8 -d"${seconds}s" -s bench/count_non2xx.lua -H "Connection: close" "http://127.0.0.1:$lb_port/hello" \
    > "$work/close.out" 2>&1 &
  local close=$!
  # POSTs, which HAProxy must never replay: each carries its own id, and every instance's access log
  # is searched for it afterwards (shoal's own workers only: the Node example keeps no access log).
  local posts=""
  if [ -z "$app" ]; then
    : > "$work/posts.out"
    ( for n in $(seq 1 2000); do
        [ -e "$work/posts.stop" ] && break
        code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -X POST --data-binary "charge=1" \
               "http://127.0.0.1:$lb_port/hello?post=$name_id-$n" || true)
        echo "$n $code" >> "$work/posts.out"
      done ) &
    posts=$!
  fi
  sleep 1  # the load is running before the first instance is touched
  for i in $(seq 1 $instances); do $action "$i"; done
  wait $ka $close
  if [ -n "$posts" ]; then touch "$work/posts.stop"; wait "$posts"; rm -f "$work/posts.stop"; fi
  local after; after=$(stats)
  delta() { echo $(( $(column "$after" "$1" "$2" "$3") - $(column "$before" "$1" "$2" "$3") )); }
  local fe5xx retries redispatches econ downtime=""
  fe5xx=$(delta fleet FRONTEND hrsp_5xx)
  retries=$(delta shoal BACKEND wretr)
  redispatches=$(delta shoal BACKEND wredis)
  econ=$(delta shoal BACKEND econ)
  for i in $(seq 1 $instances); do downtime+="s$i=$(delta shoal "s$i" downtime)s "; done
  printf '%-28s keep-alive:   %s\n' "$name" "$(grep '^requests=' "$work/ka.out")"
  printf '%-28s per-request:  %s\n' "" "$(grep '^requests=' "$work/close.out")"
  printf '%-28s haproxy: 5xx=%s retries=%s redispatches=%s conn_errors=%s downtime: %s\n' "" "$fe5xx" "$retries" \
    "$redispatches" "$econ" "$downtime"
  local post_errors=0
  if [ -n "$posts" ]; then
    # Every buffered access-log line is written once shoal reopen returns.
    for i in $(seq 1 $instances); do "$build_dir/shoal" reopen -c "$work/s$i.toml" > /dev/null || true; done
    local sent answered delivered duplicates
    sent=$(wc -l < "$work/posts.out")
    answered=$(awk '$2 ~ /^2/' "$work/posts.out" | wc -l)
    cat "$work"/s*.access.log* 2>/dev/null | grep -o "POST /hello?post=$name_id-[0-9]* " | sort > "$work/delivered"
    delivered=$(uniq < "$work/delivered" | wc -l)
    duplicates=$(uniq -d < "$work/delivered" | wc -l)
    printf '%-28s POST:  sent=%s 2xx=%s delivered=%s delivered-twice=%s\n' "" "$sent" "$answered" "$delivered" "$duplicates"
    # An answered POST that no access log shows would mean the count itself cannot be trusted.
    post_errors=$((sent - answered + duplicates + (answered > delivered ? answered - delivered : 0)))
  fi
  local errors
  # Each line is "requests=N non2xx=N connect=N read=N write=N timeout=N p50_us=N p99_us=N": count the error fields.
  errors=$(cat "$work/ka.out" "$work/close.out" |
           awk '/^requests=/ { for (i = 2; i <= 6; i++) { split($i, kv, "="); sum += kv[2] } } END { print sum + 0 }')
  if [ -z "$control" ] && { [ "$errors" -ne 0 ] || [ "$fe5xx" -ne 0 ] || [ "$post_errors" -ne 0 ]; }; then
    echo "  FAILED: $errors client error(s), $fe5xx 5xx from the balancer, $post_errors POST(s) failed or delivered twice"
    failed=1
  fi
}

reload_one() { "$build_dir/shoal" reload -c "$work/s$1.toml" > /dev/null; }
upgrade_one() {
  cp "$build_dir/shoal" "$work/bin/s$1.new" && mv "$work/bin/s$1.new" "$work/bin/s$1"  # the new binary in place
  "$build_dir/shoal" upgrade -c "$work/s$1.toml" > /dev/null
}
restart_one() {
  stop_instance "$1"
  start_instance "$1"
  wait_up "$1"
}
restart_without_delay() {
  write_config "$1" 0s
  restart_one "$1"
}

echo "fleet: $instances shoal instances${app:+ running the $app example} behind $(haproxy -v | head -1 | cut -d' ' -f1-3), checks every 200ms (fall 2, rise 2)," \
     "retries 3 + redispatch; wrk: 16 keep-alive + 8 per-request connections${rate:+ at $rate requests/s each}, ${seconds}s per scenario"
scenario "rolling reload" reload_one
scenario "rolling binary upgrade" upgrade_one
scenario "rolling restart" restart_one
# Control: the instances now run with drain_delay 0s (the restart below writes that config first,
# and a second pass shows its effect).
for i in $(seq 1 $instances); do write_config "$i" 0s; "$build_dir/shoal" reload -c "$work/s$i.toml" > /dev/null || true; done
scenario "control: restart, no delay" restart_one control
exit $failed
