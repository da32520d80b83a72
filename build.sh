#!/usr/bin/env bash
# Installs whatever Debian 12 packages shoal needs and are missing, then configures and builds
# shoal (and its tests) into ./build. Safe to run again: it installs nothing that is there.
set -euo pipefail
cd "$(dirname "$0")"

packages=(cmake make g++ pkg-config
          libevent-dev libspdlog-dev libtomlplusplus-dev node-llhttp libsystemd-dev nlohmann-json3-dev
          libgtest-dev libgmock-dev curl iproute2)
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
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}"
cmake --build build -j"$(nproc)"
