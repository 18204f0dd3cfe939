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
if [[ $rc -ne 0 ]]; then cat build/host/ctest.log; fi
exit "$rc"
