#!/usr/bin/env bash
# shoal against nginx (Debian's), side by side in one run, with wrk. Both servers run one worker
# pinned to CPU 1 (and their masters on CPU 1 too); wrk runs on CPU 0: this machine has two cores
# and the load generator needs one of them. Each scenario runs A B A B … for ROUNDS rounds.
#
#   bench/compare.sh     (SECONDS_PER_RUN=10 ROUNDS=3 by default; e.g. SECONDS_PER_RUN=5 bench/compare.sh)
#   SCENARIOS="ka64 ka256" bench/compare.sh     (a subset of ka64 ka256 close pipe16 static4k static1m metrics; the
#                                                targets of the scenarios left out print as not measured)
#   SCENARIOS=metrics bench/compare.sh          (only the cost of [metrics]: shoal with and without)
#
# Prints, per server and scenario: requests/s (median, min, max) and the server's CPU time per
# request (master and workers, utime+stime from /proc over the run, divided by the requests);
# then the ratios shoal/nginx and whether each target of the performance issue is met; in the
# keep-alive scenarios user and system time apart, and how much CPU time the host took from this VM
# in each round (steal); the instructions per keep-alive request of the whole worker under wrk,
# beside the floors' (callgrind);
# then memory (idle RSS, RSS per idle keep-alive connection), reload latency, and the micro benchmark.
# In the keep-alive scenarios a third server runs too, bench/floor.cpp: the same system calls per
# request as the other two and no other work, so floor/nginx is the best CPU ratio any server can
# reach on this kernel, whatever it does in user space; and a fourth, bench/floor_libs.cpp: the
# floor through libevent's loop and llhttp's parser, the libraries shoal is built on, so that
# floor_libs/floor is what those cost and shoal/floor_libs what shoal's own code costs.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-3}
server_cpu=1
client_cpu=0
[ "$(nproc)" -ge 2 ] || { echo "compare.sh: needs 2 CPUs (wrk on one, the servers on the other)" >&2; exit 1; }

missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
dpkg-query -W -f='${Status}' libbenchmark-dev 2>/dev/null | grep -q 'install ok installed' || missing+=(libbenchmark-dev)
if ((${#missing[@]})); then
  [ "$(id -u)" -eq 0 ] || { echo "compare.sh: missing: ${missing[*]} (apt-get install them)" >&2; exit 1; }
  # Debian starts nginx on port 80 when it is installed; a benchmark must not leave one behind.
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  [ -n "$policy_added" ] && rm -f /usr/sbin/policy-rc.d
fi
./build.sh >/dev/null  # the Debian packages; the benchmark's own Release build goes beside ./build, not into it
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target shoal floor floor_libs idle_conns micro_bench >/dev/null
# 100,000 idle connections need far more fds than the usual 1024: root raises the hard limit,
# given CAP_SYS_RESOURCE (some containers withhold it: then only 10,000 are measured).
{ ulimit -Hn 250000 && ulimit -n 250000; } 2>/dev/null || ulimit -n "$(ulimit -Hn)"
idle_counts="10000"
[ "$(ulimit -n)" -ge 110000 ] && idle_counts="10000 100000"
max_conns=$((${idle_counts##* } + 10000))
[ $max_conns -ge 20000 ] || max_conns=20000

work=$(mktemp -d)
cleanup() {
  [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null || true
  kill -TERM $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
hz=$(getconf CLK_TCK)

# ---------------------------------------------------------------- the two servers
shoal_port=18180
nginx_port=18181
floor_port=18182
floor_close_port=18185
floor_libs_port=18186
# Static files: 4 KiB and 1 MiB, served by both from the same directory (nginx with sendfile and
# tcp_nopush, as it is deployed for files).
mkdir -p "$work/www"
chmod 0755 "$work" "$work/www"  # nginx's workers read them as its unprivileged user
head -c 4096 /dev/urandom > "$work/www/4k.bin"
head -c 1048576 /dev/urandom > "$work/www/1m.bin"
cat > "$work/shoal.toml" <<TOML
[server]
user = "$(id -un)"
listen = ["127.0.0.1:$shoal_port"]
backlog = 4096
workers = 1
cpu_affinity = [$server_cpu]
control_socket = ""
[http]
keepalive_timeout = "65s"
max_connections = $max_conns
[log]
level = "info"
[[route]]
path = "/hello"
body = "ok\n"
[[route]]
path = "/static/"
root = "$work/www"
TOML
# The same server counting for [metrics] (and answering scrapes on its own listener).
shoal_m_port=18183
metrics_port=18184
sed "s/127.0.0.1:$shoal_port/127.0.0.1:$shoal_m_port/" "$work/shoal.toml" > "$work/shoal-metrics.toml"
printf '[metrics]\nlisten = "127.0.0.1:%s"\n' $metrics_port >> "$work/shoal-metrics.toml"
mkdir -p "$work/nginx/logs"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
worker_cpu_affinity $(printf '%d' $((1 << server_cpu)) | awk '{ s=""; n=$1; while (n>0) { s=(n%2) s; n=int(n/2) } print s }');
worker_rlimit_nofile $((max_conns + 10000));
pid $work/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections $max_conns; }
http {
  access_log off;
  keepalive_timeout 65s;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$nginx_port backlog=4096;
    location = /hello { default_type text/plain; return 200 "ok\n"; }
    location /static/ { alias $work/www/; sendfile on; tcp_nopush on; }
  }
}
CONF

start_shoal() {  # start_shoal [CONFIG PORT]: sets started_pid
  local config=${1:-$work/shoal.toml} port=${2:-$shoal_port}
  taskset -c $server_cpu ./build-bench/shoal -c "$config" > "$config.log" 2>&1 &
  started_pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/hello" && return; sleep 0.05; done
  echo "shoal did not start:"; cat "$config.log"; exit 1
}
start_nginx() {
  taskset -c $server_cpu /usr/sbin/nginx -p "$work/nginx" -c "$work/nginx.conf" -g 'daemon off;' &
  nginx_pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$nginx_port/hello" && return; sleep 0.05; done
  echo "nginx did not start:"; cat "$work/nginx/logs/error.log"; exit 1
}
start_floor() {  # start_floor BINARY PORT [close]: sets started_pid
  local binary=$1
  shift
  taskset -c $server_cpu "./build-bench/$binary" "$@" > "$work/$binary-$1.log" 2>&1 &
  started_pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/hello" && return; sleep 0.05; done
  echo "$binary did not start:"; cat "$work/$binary-$1.log"; exit 1
}
start_shoal
shoal_pid=$started_pid
start_shoal "$work/shoal-metrics.toml" $shoal_m_port
shoal_m_pid=$started_pid
start_nginx
start_floor floor $floor_port
floor_pid=$started_pid
start_floor floor $floor_close_port close
floor_close_pid=$started_pid
start_floor floor_libs $floor_libs_port
floor_libs_pid=$started_pid

# utime+stime, and utime alone, of a process and its children, in clock ticks: "TOTAL USER".
cpu_ticks() {
  local total=0 user=0 pid utime stime
  for pid in $1 $(ps --ppid "$1" -o pid= 2>/dev/null); do
    # Fields 14 and 15 counted after the name, which may hold spaces ("shoal: worker 0").
    read -r utime stime <<<"$( { sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null || echo; } | awk '{print $12 + 0, $13 + 0}')"
    total=$((total + utime + stime)) user=$((user + utime))
  done
  echo "$total $user"
}
# The time the host gave this VM's CPUs to others (steal) and all the CPUs' time, in clock ticks:
# "STEAL TOTAL". On a shared host it is what moves a server's CPU per request between rounds.
steal_ticks() { awk '/^cpu / {print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit}' /proc/stat; }
worker_of() { ps --ppid "$1" -o pid= | head -1 | tr -d ' '; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------- throughput and CPU per request
declare -A rps cpu_us user_us steal_pct busy_pct
run() {  # run SERVER SCENARIO
  local server=$1 scenario=$2 port pid args=()
  case $server in
    shoal) port=$shoal_port pid=$shoal_pid ;;
    shoal+metrics) port=$shoal_m_port pid=$shoal_m_pid ;;
    nginx) port=$nginx_port pid=$nginx_pid ;;
    floor) port=$floor_port pid=$floor_pid ;;
    floor_libs) port=$floor_libs_port pid=$floor_libs_pid ;;
  esac
  # The floor of one connection per request is its own server (accept, recv, send, close).
  if [ "$server" = floor ] && [ "$scenario" = close ]; then port=$floor_close_port pid=$floor_close_pid; fi
  local path=/hello
  case $scenario in
    ka64) args=(-c64) ;;
    ka256) args=(-c256) ;;
    close) args=(-c64 -H "Connection: close") ;;
    pipe16) args=(-c64 -s bench/pipeline16.lua) ;;
    static4k) args=(-c32) path=/static/4k.bin ;;
    static1m) args=(-c32) path=/static/1m.bin ;;
  esac
  local before before_user after after_user out requests
  local steal_before all_before steal_after all_after
  read -r steal_before all_before <<<"$(steal_ticks)"
  read -r before before_user <<<"$(cpu_ticks "$pid")"
  out=$(taskset -c $client_cpu wrk -t1 -d"${duration}s" "${args[@]}" "http://127.0.0.1:$port$path")
  read -r after after_user <<<"$(cpu_ticks "$pid")"
  read -r steal_after all_after <<<"$(steal_ticks)"
  steal_pct[$server,$scenario]+="$(awk -v s=$((steal_after - steal_before)) -v a=$((all_after - all_before)) 'BEGIN {printf "%.0f", (a > 0) ? 100 * s / a : 0}') "
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  local errors; errors=$(echo "$out" | awk '/Socket errors|Non-2xx/ {print}' | tr '\n' ' ')
  [ -n "$errors" ] && echo "  note: $server $scenario: $errors" >&2
  rps[$server,$scenario]+="$(echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}') "
  cpu_us[$server,$scenario]+="$(awk -v t=$((after - before)) -v r="$requests" -v hz="$hz" 'BEGIN {printf "%.2f", t * 1e6 / hz / r}') "
  # How busy the server's CPU was: below 100 %, the client set the pace, not the server.
  busy_pct[$server,$scenario]+="$(awk -v t=$((after - before)) -v hz="$hz" -v d="$duration" 'BEGIN {printf "%.0f", 100 * t / hz / d}') "
  user_us[$server,$scenario]+="$(awk -v t=$((after_user - before_user)) -v r="$requests" -v hz="$hz" 'BEGIN {printf "%.3f", t * 1e6 / hz / r}') "
}
stats() {  # median min max of a list
  tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {printf "%s %s %s", a[int((NR+1)/2)], a[1], a[NR]}'
}

echo "shoal $(./build-bench/shoal --version | cut -d' ' -f2) vs $(/usr/sbin/nginx -v 2>&1 | cut -d: -f2 | tr -d ' '), $(nproc) CPUs:" \
     "servers pinned to CPU $server_cpu (1 worker each), wrk pinned to CPU $client_cpu (1 thread);" \
     "$rounds rounds of ${duration}s, A B A B"
read -r -a all <<<"${SCENARIOS:-ka64 ka256 close pipe16 static4k static1m metrics}"
scenarios=()
measure_metrics=""
for scenario in "${all[@]}"; do
  if [ "$scenario" = metrics ]; then measure_metrics=1; else scenarios+=("$scenario"); fi
done
for scenario in "${scenarios[@]}"; do
  for _ in $(seq "$rounds"); do
    run shoal "$scenario"; run nginx "$scenario"
    if [[ $scenario = ka* || $scenario = close ]]; then run floor "$scenario"; fi
    if [[ $scenario = ka* ]]; then run floor_libs "$scenario"; fi
  done
done
kill -TERM $floor_pid $floor_close_pid $floor_libs_pid && wait $floor_pid $floor_close_pid $floor_libs_pid 2>/dev/null || true

declare -A med_rps med_cpu
verdict() {
  if [ -z "$2" ]; then printf '  %-58s %6s %s %-5s %s\n' "$1" - "$3" "$4" "not measured"; return; fi
  awk -v v="$2" -v op="$3" -v limit="$4" -v what="$1" \
  'BEGIN { ok = (op == "<=") ? (v <= limit) : (v >= limit); printf "  %-58s %6.2f %s %-5s %s\n", what, v, op, limit, ok ? "met" : "NOT met" }'; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.4f", a / b}' || true; }
show() { [ -n "$2" ] && printf '  %-58s %6.2f\n' "$1" "$2" || printf '  %-58s %6s\n' "$1" -; }
if [ ${#scenarios[@]} -gt 0 ]; then
printf '\n%-10s %-10s %26s %24s\n' scenario server "requests/s median (min-max)" "CPU us/request median"
for scenario in "${scenarios[@]}"; do
  for server in shoal nginx; do
    read -r m lo hi <<<"$(stats "${rps[$server,$scenario]}")"
    read -r c _ _ <<<"$(stats "${cpu_us[$server,$scenario]}")"
    med_rps[$server,$scenario]=$m
    med_cpu[$server,$scenario]=$c
    printf '%-10s %-10s %10s (%s-%s) %24s   (each round: %s)\n' "$scenario" "$server" "$m" "$lo" "$hi" "$c" "${cpu_us[$server,$scenario]}"
  done
  printf '%-10s %-10s %26s %24s\n' "$scenario" ratio \
    "$(awk -v a="${med_rps[shoal,$scenario]}" -v b="${med_rps[nginx,$scenario]}" 'BEGIN {printf "%.2f", a / b}')" \
    "$(awk -v a="${med_cpu[shoal,$scenario]}" -v b="${med_cpu[nginx,$scenario]}" 'BEGIN {printf "%.2f", a / b}')"
  for floor in floor floor_libs; do
    [ -n "${rps[$floor,$scenario]:-}" ] || continue
    read -r m lo hi <<<"$(stats "${rps[$floor,$scenario]}")"
    read -r c _ _ <<<"$(stats "${cpu_us[$floor,$scenario]}")"
    med_cpu[$floor,$scenario]=$c
    med_rps[$floor,$scenario]=$m
    printf '%-10s %-10s %10s (%s-%s) %24s   (each round: %s)\n' "$scenario" $floor "$m" "$lo" "$hi" "$c" "${cpu_us[$floor,$scenario]}"
    printf '%-10s %-17s %43s\n' "$scenario" "$floor/nginx" \
      "$(awk -v a="$c" -v b="${med_cpu[nginx,$scenario]}" 'BEGIN {printf "%.2f", a / b}')"
  done
done

echo
echo "targets (CPU per request; what shoal's own code costs above the floor, and where nginx is the peer):"
verdict "shoal/floor, keep-alive 64" "$(ratio "${med_cpu[shoal,ka64]:-}" "${med_cpu[floor,ka64]:-}")" "<=" 1.05
verdict "shoal/floor, keep-alive 256" "$(ratio "${med_cpu[shoal,ka256]:-}" "${med_cpu[floor,ka256]:-}")" "<=" 1.05
# floor_libs is the floor through the two libraries shoal is built on: no server built on them
# gets below floor_libs/floor, and what is left of the 1.05 is all shoal's own code may cost.
for scenario in ka64 ka256; do
  [ -z "${med_cpu[floor_libs,$scenario]:-}" ] ||
    show "  the libraries alone (floor_libs/floor), $scenario" \
      "$(ratio "${med_cpu[floor_libs,$scenario]}" "${med_cpu[floor,$scenario]}")"
done
verdict "shoal/nginx, one connection per request" "$(ratio "${med_cpu[shoal,close]:-}" "${med_cpu[nginx,close]:-}")" "<=" 0.90
verdict "shoal/nginx, static 4 KiB file, keep-alive 32" "$(ratio "${med_cpu[shoal,static4k]:-}" "${med_cpu[nginx,static4k]:-}")" "<=" 1.0
verdict "shoal/nginx, static 1 MiB file, keep-alive 32" "$(ratio "${med_cpu[shoal,static1m]:-}" "${med_cpu[nginx,static1m]:-}")" "<=" 1.0
echo "requests/s (shoal/nginx):"
verdict "keep-alive 64" "$(ratio "${med_rps[shoal,ka64]:-}" "${med_rps[nginx,ka64]:-}")" ">=" 1.0
verdict "pipelined 16" "$(ratio "${med_rps[shoal,pipe16]:-}" "${med_rps[nginx,pipe16]:-}")" ">=" 1.2
# wrk has one CPU: a server that does not keep its own CPU busy is waiting for wrk, and its
# requests/s is then wrk's pace more than its own (the floor's tells what wrk alone allows).
for scenario in ka64 pipe16; do
  busy=""
  for server in shoal nginx floor; do
    [ -n "${busy_pct[$server,$scenario]:-}" ] || continue
    read -r b _ _ <<<"$(stats "${busy_pct[$server,$scenario]}")"
    busy+="$server $b  "
  done
  [ -z "$busy" ] || printf '    %-56s %s\n' "server CPU busy, % of the run, $scenario (medians)" "$busy"
done
[ -z "${med_rps[floor,ka64]:-}" ] || show "floor/nginx requests/s, keep-alive 64 (what wrk allows)" \
  "$(ratio "${med_rps[floor,ka64]}" "${med_rps[nginx,ka64]}")"
echo "the floors (the same system calls and nothing else; no server can do less), CPU per request:"
each_round() {  # each_round A B SCENARIO: A/B round by round (they ran one after the other in each)
  [ -n "${cpu_us[$2,$3]:-}" ] || return 0
  printf '    %-56s %s\n' "the same, each round" "$(paste -d' ' <(tr ' ' '\n' <<<"${cpu_us[$1,$3]}" | grep -v '^$') \
    <(tr ' ' '\n' <<<"${cpu_us[$2,$3]}" | grep -v '^$') | awk '{printf "%.2f ", $1 / $2}')"
}
for scenario in ka64 ka256 close; do
  show "floor/nginx, $scenario" "$(ratio "${med_cpu[floor,$scenario]:-}" "${med_cpu[nginx,$scenario]:-}")"
  show "shoal/floor, $scenario" "$(ratio "${med_cpu[shoal,$scenario]:-}" "${med_cpu[floor,$scenario]:-}")"
  # How much of a ratio's distance from its target is the machine's drift between rounds.
  each_round shoal floor $scenario
  [ "$scenario" = close ] && continue
  # The kernel's time and user space's apart (the kernel's ticks are sampled as they fall, so
  # one round's split is rough; the same system calls should cost each server the same).
  split=""
  for server in shoal floor floor_libs nginx; do
    [ -n "${user_us[$server,$scenario]:-}" ] || continue
    read -r u _ _ <<<"$(stats "${user_us[$server,$scenario]}")"
    split+="$server $u/$(awk -v c="${med_cpu[$server,$scenario]}" -v u="$u" 'BEGIN {printf "%.2f", c - u}')  "
  done
  [ -z "$split" ] || printf '  %-58s %s\n' "user/system us per request, $scenario (medians)" "$split"
  steal=""
  for server in shoal floor floor_libs nginx; do
    [ -n "${steal_pct[$server,$scenario]:-}" ] && steal+="$server ${steal_pct[$server,$scenario]% } "
  done
  [ -z "$steal" ] || printf '  %-58s %s\n' "CPU time the host took from this VM (steal, %), each round" "$steal"
  # The floor through libevent and llhttp: what the libraries cost, and what is left to shoal.
  show "floor_libs/floor, $scenario" "$(ratio "${med_cpu[floor_libs,$scenario]:-}" "${med_cpu[floor,$scenario]:-}")"
  each_round floor_libs floor $scenario
  show "shoal/floor_libs, $scenario" "$(ratio "${med_cpu[shoal,$scenario]:-}" "${med_cpu[floor_libs,$scenario]:-}")"
  each_round shoal floor_libs $scenario
done
# Instructions, which a busy machine does not disturb: the whole worker under wrk (epoll,
# libevent, llhttp and shoal, as a keep-alive request really runs) beside the floor, each under
# callgrind with 64 connections for 5 s.
if command -v valgrind >/dev/null && [[ " ${scenarios[*]} " = *" ka64 "* ]]; then
  cg_port=18189
  sed "s/127.0.0.1:$shoal_port/127.0.0.1:$cg_port/" "$work/shoal.toml" > "$work/shoal-cg.toml"
  # A browser's request: wrk's Host and the eleven fields Firefox sends for a page (520 bytes),
  # where each field's cost shows, which wrk's 45-byte request hides.
  browser_fields=(-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    -H "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" -H "Accept-Language: en-US,en;q=0.5"
    -H "Accept-Encoding: gzip, deflate, br, zstd" -H "Referer: http://127.0.0.1/index.html"
    -H "Cookie: session=3f2a9c8e7b6d5a4f3e2d1c0b9a8f7e6d; theme=dark" -H "Upgrade-Insecure-Requests: 1"
    -H "Sec-Fetch-Dest: document" -H "Sec-Fetch-Mode: navigate" -H "Sec-Fetch-Site: same-origin" -H "Priority: u=0, i")
  cg_fields=()
  cg_run() {  # cg_run NAME COMMAND...: instructions per request of the process that ran the most
    local name=$1 pid requests best=0 file total
    shift
    rm -f "$work"/cg-"$name".[0-9]*
    valgrind --tool=callgrind --callgrind-out-file="$work/cg-$name.%p" "$@" > "$work/cg-$name.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$cg_port/hello" && break; sleep 0.1; done
    requests=$(taskset -c $client_cpu wrk -t1 -c64 -d5s "${cg_fields[@]}" "http://127.0.0.1:$cg_port/hello" |
               awk '/requests in/ {print $1}')
    kill -TERM $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    for file in "$work"/cg-"$name".[0-9]*; do
      total=$(callgrind_annotate "$file" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
      [ "${total:-0}" -gt "$best" ] && best=$total
    done
    awk -v a="$best" -v b="$requests" 'BEGIN {if (b > 0) printf "%.0f", a / b}'
  }
  cg_shoal=$(cg_run shoal --toggle-collect=event_base_loop ./build-bench/shoal -c "$work/shoal-cg.toml")
  cg_floor=$(cg_run floor ./build-bench/floor $cg_port)
  cg_floor_libs=$(cg_run floor_libs ./build-bench/floor_libs $cg_port)
  cg_shoal_1=$cg_shoal cg_floor_libs_1=$cg_floor_libs
  echo "instructions per keep-alive request, the whole worker under wrk -c64 (callgrind):"
  printf '  %-58s %6s\n' "shoal (event_base_loop and all it calls)" "$cg_shoal" "floor (the whole process)" "$cg_floor" \
    "floor_libs (the whole process)" "$cg_floor_libs"
  show "the same, shoal/floor" "$(ratio "$cg_shoal" "$cg_floor")"
  show "the same, floor_libs/floor" "$(ratio "$cg_floor_libs" "$cg_floor")"
  show "the same, shoal/floor_libs" "$(ratio "$cg_shoal" "$cg_floor_libs")"
  # Beside floor_libs alone: the floor looks for the empty line a byte at a time, which on 520
  # bytes costs more than llhttp's parse (6,751 against 5,237 when measured), so it is no floor here.
  cg_fields=("${browser_fields[@]}")
  cg_shoal=$(cg_run shoal --toggle-collect=event_base_loop ./build-bench/shoal -c "$work/shoal-cg.toml")
  cg_floor_libs=$(cg_run floor_libs ./build-bench/floor_libs $cg_port)
  echo "the same for a browser's request (Host and 11 fields, 520 bytes):"
  printf '  %-58s %6s\n' "shoal" "$cg_shoal" "floor_libs" "$cg_floor_libs"
  show "the same, shoal/floor_libs" "$(ratio "$cg_shoal" "$cg_floor_libs")"
  printf '  %-58s %6s\n' "shoal's own (shoal - floor_libs), per field beyond Host" "$(awk -v s="$cg_shoal" -v l="$cg_floor_libs" -v s1="$cg_shoal_1" -v l1="$cg_floor_libs_1" \
    'BEGIN {printf "%.0f", ((s - l) - (s1 - l1)) / 11}')"
fi
fi

# ---------------------------------------------------------------- the cost of [metrics]
if [ -n "$measure_metrics" ]; then
  echo
  echo "[metrics] (shoal counting every response in its shared slot, and scraped every second, against shoal without):"
  scraper() { while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$metrics_port/metrics"; done; }
  scraper &
  scraper_pid=$!
  for scenario in ka64 close; do rps[shoal,$scenario]="" cpu_us[shoal,$scenario]=""; done  # this section's own rounds
  for _ in $(seq "$rounds"); do
    for scenario in ka64 close; do run shoal "$scenario"; run shoal+metrics "$scenario"; done
  done
  kill $scraper_pid 2>/dev/null || true
  printf '%-10s %-14s %30s %24s\n' scenario server "requests/s median (min-max)" "CPU us/request median"
  for scenario in ka64 close; do
    for server in shoal shoal+metrics; do
      read -r m lo hi <<<"$(stats "${rps[$server,$scenario]}")"
      read -r c _ _ <<<"$(stats "${cpu_us[$server,$scenario]}")"
      med_cpu[$server,$scenario]=$c
      printf '%-10s %-14s %14s (%s-%s) %24s   (each round: %s)\n' "$scenario" "$server" "$m" "$lo" "$hi" "$c" "${cpu_us[$server,$scenario]}"
    done
  done
  curl -s "http://127.0.0.1:$metrics_port/metrics" | grep -E '^shoal_requests_total|^shoal_request_duration_seconds_count' | sed 's/^/  scraped: /'
  echo "targets (with/without; the noise of one run is the spread of its rounds above):"
  verdict "CPU per request with [metrics], keep-alive 64" "$(ratio "${med_cpu[shoal+metrics,ka64]}" "${med_cpu[shoal,ka64]}")" "<=" 1.03
  verdict "CPU per request with [metrics], one connection per request" \
    "$(ratio "${med_cpu[shoal+metrics,close]}" "${med_cpu[shoal,close]}")" "<=" 1.03
  # callgrind counts instructions, which a busy shared machine does not disturb: everything the loop
  # runs (event_base_loop and what it calls) over the benchmark's requests, without and with [metrics].
  if command -v valgrind >/dev/null; then
    echo
    echo "instructions per keep-alive request in the worker's loop (callgrind, in-process):"
    for bench in BM_KeepAliveRequest BM_KeepAliveRequestCounted; do
      valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" --toggle-collect=event_base_loop \
        ./build-bench/micro_bench --benchmark_filter="^$bench\$" --benchmark_min_time=0.2 >/dev/null 2>&1
      total=$(callgrind_annotate "$work/cg.out" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
      requests=$(callgrind_annotate --tree=caller "$work/cg.out" |
                 awk '/respond_rendered\(shoal::RouteEntry const&\) \(/ && !n++ { match($0, /\([0-9,]+x\)/); s = substr($0, RSTART + 1, RLENGTH - 3); gsub(",", "", s); print s }')
      printf '  %-30s %8s\n' "$bench" "$(awk -v a="$total" -v b="$requests" 'BEGIN {printf "%.0f", a / b}')"
    done
  fi
fi
[ ${#scenarios[@]} -gt 0 ] || exit 0

# ---------------------------------------------------------------- memory
echo
echo "memory (KiB):"
shoal_worker=$(worker_of $shoal_pid)
nginx_worker=$(worker_of $nginx_pid)
printf '  %-6s master RSS %6s, worker RSS %6s (idle)\n' shoal "$(rss_kib $shoal_pid)" "$(rss_kib "$shoal_worker")"
printf '  %-6s master RSS %6s, worker RSS %6s (idle)\n' nginx "$(rss_kib $nginx_pid)" "$(rss_kib "$nginx_worker")"
declare -A per_conn idle_worker
# workers_sum MASTER COUNT: the sum over MASTER's workers of COUNT PID, their RSS (KiB) or fds.
workers_sum() {
  local total=0 pid
  for pid in $(ps --ppid "$1" -o pid=); do total=$((total + $("$2" "$pid"))); done
  echo $total
}
fd_count() { ls /proc/"$1"/fd 2>/dev/null | wc -l; }
# hold_idle NAME MASTER PORT COUNT HOLDERS: COUNT idle keep-alive connections to PORT (each
# answered once, then held), from HOLDERS processes (each from its own loopback address when
# more than one); prints the workers' RSS before and after and sets per_conn[NAME,COUNT]. The
# figure counts only when the holders had every connection answered and the workers still hold
# them all when the RSS is read: a server that closes idle connections to make room (nginx does,
# near worker_connections) would otherwise be credited with memory for connections it dropped.
hold_idle() {
  local name=$1 master=$2 port=$3 count=$4 holders=$5 before after k n answered fds_before kept pids=()
  before=$(workers_sum "$master" rss_kib)
  fds_before=$(workers_sum "$master" fd_count)
  [ "$count" = 10000 ] && idle_worker[$name]=$before
  for ((k = 0; k < holders; k++)); do
    n=$((count / holders + (k < count % holders ? 1 : 0)))
    local source=()
    ((holders > 1)) && source=(127.0.0.$((10 + k)))
    taskset -c $client_cpu ./build-bench/idle_conns "$port" "$n" "${source[@]}" > "$work/hold-$k.out" 2>&1 &
    pids+=($!)
  done
  # Each holder prints "open N" once all its connections were answered (or an error and exits).
  for ((k = 0; k < holders; k++)); do
    for _ in $(seq 1200); do grep -q . "$work/hold-$k.out" && break; kill -0 "${pids[k]}" 2>/dev/null || break; sleep 0.1; done
  done
  after=$(workers_sum "$master" rss_kib)
  kept=$(($(workers_sum "$master" fd_count) - fds_before))
  answered=$(cat "$work"/hold-*.out | awk '/^open/ {s += $2} END {print s + 0}')
  { grep -hv '^open' "$work"/hold-*.out || true; } | head -3 | sed 's/^/  holder: /'
  kill -TERM "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true
  rm -f "$work"/hold-*.out
  if [ "$answered" = "$count" ] && [ "$kept" -ge "$count" ]; then
    per_conn[$name,$count]=$(awk -v a="$after" -v b="$before" -v n="$count" 'BEGIN {printf "%.2f", (a - b) / n}')
  fi
  printf '  %-6s workers RSS %7s -> %7s with %6s idle keep-alive connections (%s answered, %s held by the workers): %s KiB per connection\n' \
    "$name" "$before" "$after" "$count" "$answered" "$kept" "${per_conn[$name,$count]:-not measured}"
  # The connections' close must be over before the next count starts from a settled RSS.
  local pid
  for pid in $(ps --ppid "$master" -o pid=); do
    for _ in $(seq 100); do [ "$(fd_count "$pid")" -lt 100 ] && break; sleep 0.1; done
  done
}
for conns in $idle_counts; do
  hold_idle shoal $shoal_pid $shoal_port "$conns" 1
  hold_idle nginx $nginx_pid $nginx_port "$conns" 1
done
if [ "$idle_counts" = 10000 ] && [ "$(ulimit -n)" -ge 5000 ]; then
  # No process here may hold 100,000 fds: the servers hold them in several workers instead, each
  # within the limit, and the connections come from as many holders. Both servers get the same
  # number of workers. nginx listens with reuseport, one socket per worker, so that the kernel
  # spreads the connections evenly: from one shared socket its accept_mutex put them in 3 of 7
  # workers, which at 15/16 of worker_connections close idle keep-alive connections to take new
  # ones ("worker_connections are not enough, reusing connections"), and held 54,112 of 100,000.
  per_worker=$(($(ulimit -n) - 2000))
  spread=$(((100000 + per_worker - 1) / per_worker + 1))
  echo "  100,000 idle connections: the fd limit is $(ulimit -Hn) per process and may not be raised here" \
       "(no CAP_SYS_RESOURCE): held by $spread workers of each server, from $spread holders"
  sed -e "s/127.0.0.1:$shoal_port/127.0.0.1:18186/" -e "s/^workers = 1/workers = $spread/" -e '/^cpu_affinity/d' \
      -e "s/^max_connections = .*/max_connections = $per_worker/" "$work/shoal.toml" > "$work/shoal-spread.toml"
  sed -e "s/^worker_processes 1;/worker_processes $spread;/" -e '/^worker_cpu_affinity/d' \
      -e "s/^worker_rlimit_nofile .*/worker_rlimit_nofile $(ulimit -n);/" -e "s|^pid .*|pid $work/nginx-spread.pid;|" \
      -e "s/events { worker_connections [0-9]*; }/events { worker_connections $per_worker; }/" \
      -e "s/listen 127.0.0.1:$nginx_port backlog=4096;/listen 127.0.0.1:18187 backlog=4096 reuseport;/" "$work/nginx.conf" > "$work/nginx-spread.conf"
  start_shoal "$work/shoal-spread.toml" 18186
  shoal_spread_pid=$started_pid
  taskset -c $server_cpu /usr/sbin/nginx -p "$work/nginx" -c "$work/nginx-spread.conf" -g 'daemon off;' &
  nginx_spread_pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18187/hello && break; sleep 0.05; done
  for _ in $(seq 100); do [ "$(ps --ppid $shoal_spread_pid -o pid= | wc -l)" -ge $spread ] &&
                          [ "$(ps --ppid $nginx_spread_pid -o pid= | wc -l)" -ge $spread ] && break; sleep 0.05; done
  hold_idle shoal $shoal_spread_pid 18186 100000 $spread
  hold_idle nginx $nginx_spread_pid 18187 100000 $spread
  kill -TERM $shoal_spread_pid; kill -QUIT $nginx_spread_pid; wait $shoal_spread_pid $nginx_spread_pid 2>/dev/null || true
fi
# nginx allocates its connection structures for all of worker_connections when a worker starts:
# that memory is in its "before" above, not in its figure per connection. What one slot costs:
sed -e "s/events { worker_connections [0-9]*; }/events { worker_connections 1024; }/" -e "s|^pid .*|pid $work/nginx-small.pid;|" \
    -e "s/listen 127.0.0.1:$nginx_port /listen 127.0.0.1:18188 /" "$work/nginx.conf" > "$work/nginx-small.conf"
taskset -c $server_cpu /usr/sbin/nginx -p "$work/nginx" -c "$work/nginx-small.conf" -g 'daemon off;' &
nginx_small_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18188/hello && break; sleep 0.05; done
small_rss=$(workers_sum $nginx_small_pid rss_kib)
kill -QUIT $nginx_small_pid; wait $nginx_small_pid 2>/dev/null || true
slot_kib=$(awk -v a="${idle_worker[nginx]}" -v b="$small_rss" -v n=$((max_conns - 1024)) 'BEGIN {printf "%.2f", (a - b) / n}')
printf '  nginx  worker RSS %s with worker_connections 1024, %s with %s: %s KiB per slot, allocated at start\n' \
  "$small_rss" "${idle_worker[nginx]}" $max_conns "$slot_kib"
for conns in 10000 100000; do
  [ -n "${per_conn[nginx,$conns]:-}" ] && printf '  %-58s %6.2f\n' "nginx KiB per idle connection with its slot, $conns held" \
    "$(awk -v a="${per_conn[nginx,$conns]}" -v b="$slot_kib" 'BEGIN {print a + b}')"
done
verdict "idle worker RSS, shoal/nginx" "$(ratio "${idle_worker[shoal]}" "${idle_worker[nginx]}")" "<=" 1.0
for conns in 10000 100000; do
  verdict "KiB of shoal worker RSS per idle connection, $conns held" "${per_conn[shoal,$conns]:-}" "<=" 0.40
  verdict "  the same, shoal/nginx" "$(ratio "${per_conn[shoal,$conns]:-}" "${per_conn[nginx,$conns]:-}")" "<=" 1.0
done

# ---------------------------------------------------------------- reload under load
echo
echo "reload (shoal, keep-alive 64; $rounds rounds of a ${duration}s steady window, then a ${duration}s window with a SIGHUP every second):"
pct() { echo "$1" | awk -v p="$2" '$1 == p {print $2}'; }
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1e6; else print n }'; }
wrk_latency() { taskset -c $client_cpu wrk -t1 -c64 -d"${duration}s" --latency "http://127.0.0.1:$shoal_port/hello"; }
log_mark=$(wc -l < "$work/shoal.toml.log")
steady_p99=() reloading_p99=() failed=0
for round in $(seq "$rounds"); do
  steady=$(wrk_latency)
  wrk_latency > "$work/reload.out" &
  wrk_pid=$!
  for _ in $(seq $((duration - 1))); do sleep 1; kill -HUP $shoal_pid; done
  wait $wrk_pid
  reloading=$(cat "$work/reload.out")
  for window in steady reloading; do
    out=${!window}
    errors=$(echo "$out" | grep -E 'Socket errors|Non-2xx' || true)
    [ -n "$errors" ] && failed=$((failed + 1))
    printf '  round %s, %-9s window: p50 %-9s p99 %-9s %s\n' "$round" "$window" "$(pct "$out" 50%)" "$(pct "$out" 99%)" \
      "${errors:-no errors}"
  done
  steady_p99+=("$(to_us "$(pct "$steady" 99%)")")
  reloading_p99+=("$(to_us "$(pct "$reloading" 99%)")")
done
ready_ms=$(tail -n +"$log_mark" "$work/shoal.toml.log" | { grep -oP 'ready with \d+ worker\(s\) in \K[0-9]+' || true; } | sort -n | tr '\n' ' ')
printf '  SIGHUP to new generation ready (ms, each reload): %s\n' "$ready_ms"
read -r steady_med _ _ <<<"$(stats "${steady_p99[*]}")"
read -r reloading_med _ _ <<<"$(stats "${reloading_p99[*]}")"
printf '  median p99: steady %s us, reloading %s us\n' "$steady_med" "$reloading_med"
max_ready=$(echo "$ready_ms" | tr ' ' '\n' | grep -v '^$' | sort -n | tail -1)
verdict "slowest SIGHUP to new generation accepting (ms)" "${max_ready:-999}" "<=" 50
verdict "median p99 reloading / median p99 steady" "$(ratio "$reloading_med" "$steady_med")" "<=" 2
verdict "windows with a failed request (socket error or non-2xx)" "$failed" "<=" 0

# ---------------------------------------------------------------- micro benchmark
echo
echo "micro benchmark (one keep-alive request through the connection code, in-process):"
./build-bench/micro_bench --benchmark_min_time=1 2>/dev/null | grep '^BM_' | sed 's/^/  /'

