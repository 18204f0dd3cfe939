#!/usr/bin/env bash
# Robustness of the map reader:
#  1. libFuzzer + AddressSanitizer on csrc/fuzz/fuzz_map_file.cpp, seeded with
#     valid maps, for FUZZ_SECONDS (default 30) seconds;
#  2. the C++ map and sequence tests under AddressSanitizer + LeakSanitizer
#     (a separate build of vpr_core_tests in build/asan).
# Needs clang-14 and libclang-rt-14-dev (scripts/install_system_deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f .venv/bin/activate ]]; then . .venv/bin/activate; fi
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
CXX_FUZZ=${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++ || true)}
if [[ -z "$CXX_FUZZ" ]]; then
  echo "clang++ not found: apt-get install clang-14 libclang-rt-14-dev" >&2
  exit 1
fi
out=build/fuzz
mkdir -p "$out/corpus" "$out/artifacts"

# Scalar kernels only: the target is the reader, not the SIMD code.
echo "== building the map-file fuzzer with $CXX_FUZZ"
"$CXX_FUZZ" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Icsrc/include csrc/fuzz/fuzz_map_file.cpp csrc/src/map_file.cpp csrc/src/sequence.cpp \
  csrc/src/matcher.cpp csrc/src/encode.cpp csrc/src/half.cpp csrc/fuzz/scalar_dispatch.cpp \
  csrc/src/kernels/scalar.cpp -lpthread -o "$out/fuzz_map_file"
python csrc/fuzz/make_seeds.py "$out/seeds"

echo "== fuzzing for ${FUZZ_SECONDS}s"
"$out/fuzz_map_file" "$out/corpus" "$out/seeds" -max_total_time="$FUZZ_SECONDS" -max_len=8192 \
  -rss_limit_mb=1024 -artifact_prefix="$out/artifacts/" -print_final_stats=1 2>"$out/fuzz.log" ||
  { tail -60 "$out/fuzz.log"; echo "FUZZ FAILED (crash input in $out/artifacts/)"; exit 1; }
grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb" "$out/fuzz.log" || true
echo "fuzz: no crash, no out-of-bounds read in ${FUZZ_SECONDS}s"

echo "== C++ map/sequence tests under AddressSanitizer + LeakSanitizer"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVPR_BUILD_TESTS=ON \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build/asan --target vpr_core_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 build/asan/csrc/tests/vpr_core_tests \
  -tc="*map*,*sequence*"
echo "asan: map and sequence tests clean"
