#!/usr/bin/env bash
# Robustness of the readers and of the C++ core:
#  1. libFuzzer + AddressSanitizer + UBSan on the map reader (csrc/fuzz/fuzz_map_file.cpp:
#     parsed in memory, opened from a file read into memory and memory-mapped, searched at
#     every SIMD level this CPU runs) and on the manifest reader (fuzz_manifest.cpp), each
#     seeded with valid inputs, for FUZZ_SECONDS (default 30) and MANIFEST_FUZZ_SECONDS
#     (default 15) seconds. The whole of vpr_core is instrumented (build/fuzz, clang);
#  2. every C++ test under AddressSanitizer + LeakSanitizer + UBSan (build/asan).
# Needs clang-14 and libclang-rt-14-dev (scripts/install_system_deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f .venv/bin/activate ]]; then . .venv/bin/activate; fi
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
MANIFEST_FUZZ_SECONDS=${MANIFEST_FUZZ_SECONDS:-15}
CXX_FUZZ=${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++ || true)}
if [[ -z "$CXX_FUZZ" ]]; then
  echo "clang++ not found: apt-get install clang-14 libclang-rt-14-dev" >&2
  exit 1
fi
out=build/fuzz
mkdir -p "$out/corpus-map" "$out/corpus-manifest" "$out/artifacts"

echo "== building the fuzzers with $CXX_FUZZ (vpr_core instrumented, every kernel)"
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cmake -S . -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVPR_BUILD_FUZZ=ON \
  -DCMAKE_CXX_COMPILER="$CXX_FUZZ" -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link $sanitize" \
  -DCMAKE_EXE_LINKER_FLAGS="$sanitize" >/dev/null
cmake --build "$out" --target fuzz_map_file fuzz_manifest
python csrc/fuzz/make_seeds.py "$out/seeds-map" "$out/seeds-manifest"

fuzz() {  # target, seconds, max_len, corpus, seeds
  local target=$1 seconds=$2 max_len=$3
  echo "== fuzzing $target for ${seconds}s"
  "$out/csrc/fuzz/$target" "$4" "$5" -max_total_time="$seconds" -max_len="$max_len" \
    -rss_limit_mb=2048 -artifact_prefix="$out/artifacts/$target-" -print_final_stats=1 \
    2>"$out/$target.log" ||
    { tail -60 "$out/$target.log"; echo "FUZZ FAILED (crash input in $out/artifacts/)"; exit 1; }
  grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb" "$out/$target.log" || true
  echo "$target: no crash, no out-of-bounds access, no undefined behaviour in ${seconds}s"
}
fuzz fuzz_map_file "$FUZZ_SECONDS" 8192 "$out/corpus-map" "$out/seeds-map"
fuzz fuzz_manifest "$MANIFEST_FUZZ_SECONDS" 4096 "$out/corpus-manifest" "$out/seeds-manifest"

echo "== every C++ test under AddressSanitizer + LeakSanitizer + UBSan"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVPR_BUILD_TESTS=ON \
  -DCMAKE_CXX_FLAGS="$sanitize -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build/asan --target vpr_core_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  build/asan/csrc/tests/vpr_core_tests
echo "asan: every C++ test clean"
