#!/usr/bin/env bash
# Installs whatever Debian 12 packages shoal needs and are missing, then configures and builds.
# Safe to run again: it installs nothing that is there.
#   ./build.sh            shoal and its tests, into ./build
#   ./build.sh test       that, then every check CI runs: the test suite in ./build; the same suite
#                         built with AddressSanitizer + UndefinedBehaviorSanitizer in ./build-asan;
#                         the libFuzzer targets (clang) in ./build-fuzz, each run for 60 s
#   ./build.sh package    shoal, then its Debian package: build/shoal_<version>_amd64.deb
#                         (apt install ./build/shoal_*.deb installs it with what it needs)
#   ./build.sh fuzz [S]   only the fuzz targets, each run for S seconds (default 60)
#   ./build.sh sim [N]    the master core's seeded simulation on N random seeds (default 10000);
#                         ./build.sh sim --seed S replays one seed with a trace
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:-build}
case "$mode" in
  build|test|package|fuzz|sim) ;;
  *) echo "build.sh: unknown mode '$mode' (build, test, package, fuzz or sim)" >&2; exit 2 ;;
esac
fuzz_seconds=${2:-60}

# What building shoal (and its unit tests' binaries, and its man page) needs, and curl, with which
# the README's first lines try the server it starts; the test mode adds the
# tools the tests drive from outside (HAProxy, wrk, varnishtest, h11, Node, uvicorn, clang for the
# fuzzers; dpkg-dev, file, logrotate and systemd for the install test; prometheus for promtool and the
# scrape test); the package mode dpkg-dev, file.
packages=(cmake make g++ pkg-config go-md2man curl
          libevent-dev libspdlog-dev libtomlplusplus-dev node-llhttp libsystemd-dev nlohmann-json3-dev
          libgtest-dev libgmock-dev)
if [ "$mode" = test ] || [ "$mode" = fuzz ]; then
  packages+=(iproute2 haproxy wrk clang libclang-rt-14-dev python3 python3-h11 varnish nodejs python3-uvicorn
             dpkg-dev file logrotate systemd prometheus)
fi
[ "$mode" != package ] || packages+=(dpkg-dev file)  # cpack DEB: dpkg-shlibdeps, and file(1) to find the binaries
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: missing Debian packages: ${missing[*]}" >&2
    echo "build.sh: run as root, or first: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "build.sh: installing ${missing[*]}"
  # Debian starts services as it installs them (haproxy here); the tests start their own.
  policy_added=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ -z "$policy_added" ] || rm -f /usr/sbin/policy-rc.d
fi

jobs=$(nproc)
if [ "$mode" != fuzz ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}"
  cmake --build build -j"$jobs"
fi
[ "$mode" = build ] && exit 0
if [ "$mode" = package ]; then
  (cd build && cpack -G DEB)
  exit 0
fi
if [ "$mode" = sim ]; then
  if [ "${2:-}" = --seed ]; then exec build/tests/core_sim --seed "$3" --trace; fi
  exec build/tests/core_sim "${2:-10000}"
fi

build_checks() {  # the sanitizer tree (test mode) and the fuzz tree
  if [ "$mode" = test ]; then
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHOAL_SANITIZE=ON
    cmake --build build-asan -j"$jobs"
  fi
  cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHOAL_FUZZ=ON -DSHOAL_FUZZ_SECONDS="$fuzz_seconds" \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
  cmake --build build-fuzz -j"$jobs"
}

if [ "$mode" = test ]; then
  # The other two trees are built meanwhile at idle priority (SCHED_IDLE): they take only the CPU
  # the suite leaves, which mostly waits on sockets, signals and timers. That saves minutes of
  # CI time without taking CPU from a test while it runs.
  echo "build.sh: building build-asan and build-fuzz at idle priority while the test suite runs (build-checks.log)"
  idle=(chrt --idle 0 nice -n 19)
  "${idle[@]}" true 2>/dev/null || idle=(nice -n 19)  # util-linux's chrt, else at least niced
  export -f build_checks
  export mode jobs fuzz_seconds
  # Its own process group, so that a failed suite stops the whole build with it.
  setsid "${idle[@]}" bash -c 'set -euo pipefail; build_checks' > build-checks.log 2>&1 &
  checks=$!
  trap 'kill -- -"$checks" 2>/dev/null || true' EXIT
  echo "build.sh: the test suite"
  ctest --test-dir build --output-on-failure -j2
  echo "build.sh: waiting for the sanitizer and fuzz builds"
  wait "$checks" || { tail -50 build-checks.log; echo "build.sh: building build-asan or build-fuzz failed (build-checks.log)" >&2; exit 1; }
  trap - EXIT
  echo "build.sh: the test suite under AddressSanitizer + UndefinedBehaviorSanitizer"
  ctest --test-dir build-asan --output-on-failure -j2
else
  build_checks
fi
echo "build.sh: the fuzz targets, ${fuzz_seconds}s each"
ctest --test-dir build-fuzz --output-on-failure -j2 -V  # -V: the executions per target, for the record
