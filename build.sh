#!/usr/bin/env bash
# Installs whatever Debian 12 packages shoal needs and are missing, then configures and builds
# shoal (and its tests) into ./build. Safe to run again: it installs nothing that is there.
set -euo pipefail
cd "$(dirname "$0")"

packages=(cmake make g++ pkg-config
          libevent-dev libspdlog-dev libtomlplusplus-dev node-llhttp libsystemd-dev nlohmann-json3-dev
          libgtest-dev libgmock-dev curl iproute2 haproxy wrk)
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

cmake -S . -B build -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}"
cmake --build build -j"$(nproc)"
