#!/usr/bin/env bash
# Cross-builds vpr_core and its tests for aarch64 twice and runs them under qemu:
#   build/aarch64-a72: -march=armv8-a,           qemu -cpu cortex-a72 (Raspberry Pi 4)
#   build/aarch64-a76: -march=armv8.2-a+dotprod, qemu -cpu cortex-a76 (Raspberry Pi 5)
# Needs g++-aarch64-linux-gnu, qemu-user-static, cmake and ninja.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f .venv/bin/activate ]]; then . .venv/bin/activate; fi

run() {
  local name=$1 march=$2 cpu=$3
  local build=build/$name
  echo "=== $name: -march=$march, qemu -cpu $cpu ==="
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVPR_BUILD_TESTS=ON \
    -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/aarch64-linux-gnu.cmake" \
    -DVPR_AARCH64_MARCH="$march" -DVPR_QEMU_CPU="$cpu"
  cmake --build "$build"
  # The tests live under csrc/; --no-tests=error fails loudly if none were registered.
  local rc=0
  ctest --test-dir "$build/csrc" --output-on-failure --no-tests=error -V >"$build/ctest.log" 2>&1 ||
    rc=$?
  grep -E "SIMD levels covered|test cases:|assertions:|Status:|tests passed|tests failed" \
    "$build/ctest.log" || true
  if [[ $rc -ne 0 ]]; then
    cat "$build/ctest.log"
    return "$rc"
  fi
}

run aarch64-a72 armv8-a cortex-a72
run aarch64-a76 armv8.2-a+dotprod cortex-a76
