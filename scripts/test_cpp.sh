#!/usr/bin/env bash
# Builds vpr_core and its C++ tests for the host (build/host) and runs them;
# the tests cover every SIMD level this CPU supports.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f .venv/bin/activate ]]; then . .venv/bin/activate; fi
cmake -S . -B build/host -G Ninja -DCMAKE_BUILD_TYPE=Release -DVPR_BUILD_TESTS=ON
cmake --build build/host
rc=0
ctest --test-dir build/host/csrc --output-on-failure --no-tests=error -V >build/host/ctest.log 2>&1 ||
  rc=$?
grep -E "SIMD levels covered|test cases:|assertions:|Status:|tests passed|tests failed" \
  build/host/ctest.log || true
if [[ $rc -ne 0 ]]; then cat build/host/ctest.log; exit "$rc"; fi
# The row-order experiment of docs/matching_speed.md keeps building and running (tiny size).
if [[ "$(uname -m)" == x86_64 ]] && grep -q avx2 /proc/cpuinfo; then
  g++ -O2 -mavx2 -mfma -std=c++17 -Icsrc/include -DVPR_HAVE_AVX2 -DVPR_HAVE_AVX512 \
    benchmarks/row_order_lab.cpp build/host/csrc/libvpr_core.a -lpthread -o build/host/row_order_lab
  lab_out=$(build/host/row_order_lab 4096 256 1 16)
  grep -q "core avx2/sequential i8" <<<"$lab_out"
  echo "row_order_lab: builds and runs"
  # The PQ scan lab of docs/pq.md: every kernel checked against the scalar scan (tiny size).
  g++ -O2 -Wall -Wextra -Werror -std=c++17 -Icsrc/include -DVPR_HAVE_AVX2 -DVPR_HAVE_AVX512 \
    benchmarks/pq4_scan_lab.cpp build/host/csrc/libvpr_core.a -lpthread -o build/host/pq4_scan_lab
  build/host/pq4_scan_lab 4096 64 1 | grep -q "avx2 "
  echo "pq4_scan_lab: builds and runs"
fi
