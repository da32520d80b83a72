#!/usr/bin/env bash
# The README's library example, built from a scratch project of its own both ways the README
# offers: find_package(shoal) against an install of this build, and add_subdirectory() of the
# source tree (which must not bring shoal's tests or benchmarks into the application's build).
# Neither project sets the C++ standard: shoal::shoal carries C++20 as a usage requirement.
#   tests/library/check.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "library check: $*" >&2; exit 1; }

# The example exactly as the README shows it.
awk '/^## shoal as a library/ { section = 1 } section && /^```cpp/ { code = 1; next } code && /^```/ { exit } code' \
  "$src/README.md" > "$work/main.cpp"
grep -q 'shoal::run(argc, argv, app)' "$work/main.cpp" || fail "no example found under '## shoal as a library' in README.md"

check_app() {  # check_app BINARY: it is shoal with the example's handlers
  "$1" --version | grep -q '^shoal ' || fail "$1 --version did not say shoal"
  printf '[server]\nlisten = ["127.0.0.1:0"]\ncontrol_socket = ""\nuser = "%s"\n' "$(id -un)" > "$work/app.toml"
  "$1" -t -c "$work/app.toml" | grep -q ': ok$' || fail "$1 -t failed"
}

echo "library check: find_package(shoal) after cmake --install"
cmake --install "$build" --prefix "$work/prefix" --component Development > /dev/null
mkdir -p "$work/installed"
cp "$work/main.cpp" "$work/installed/"
cat > "$work/installed/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(app LANGUAGES C CXX)
find_package(shoal 0.1 REQUIRED)
add_executable(app main.cpp)
target_link_libraries(app PRIVATE shoal::shoal)
CMAKE
cmake -S "$work/installed" -B "$work/installed/build" -DCMAKE_PREFIX_PATH="$work/prefix" > /dev/null
cmake --build "$work/installed/build" -j1 > "$work/installed.log" 2>&1 || { cat "$work/installed.log"; fail "find_package build failed"; }
check_app "$work/installed/build/app"

echo "library check: add_subdirectory(shoal)"
mkdir -p "$work/vendored"
cp "$work/main.cpp" "$work/vendored/"
cat > "$work/vendored/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(app LANGUAGES C CXX)
add_subdirectory("$src" shoal)
add_executable(app main.cpp)
target_link_libraries(app PRIVATE shoal::shoal)
CMAKE
# No optimisation: this checks that it builds and links, and -O0 compiles in half the time.
cmake -S "$work/vendored" -B "$work/vendored/build" -DCMAKE_BUILD_TYPE=None > /dev/null
targets=$(cmake --build "$work/vendored/build" --target help)
for unwanted in unit_tests integration_tests core_sim floor idle_conns micro_bench; do
  ! grep -qw "$unwanted" <<< "$targets" || fail "add_subdirectory brought shoal's $unwanted into the application's build"
done
cmake --build "$work/vendored/build" -j1 --target app > "$work/vendored.log" 2>&1 || { cat "$work/vendored.log"; fail "add_subdirectory build failed"; }
check_app "$work/vendored/build/app"
echo "library check: both ways build the README's example"
