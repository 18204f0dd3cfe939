#!/usr/bin/env bash
# Builds the ExecuTorch localizer (csrc/runtime) for the host against the venv's
# executorch wheel, cross-builds it for aarch64 against the manylinux aarch64 wheel
# (scripts/fetch_executorch_aarch64.sh), then runs tests/test_runtime.py: C++
# preprocessing and descriptors vs Python's executorch.runtime on real images
# (../shared/data/corridor), and the same top-k on the host and under
# qemu-aarch64-static -cpu cortex-a76.
#   SKIP_AARCH64=1  host only
#   BUILD_ONLY=1    build both, leave the tests to a later pytest run (make test)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f .venv/bin/activate ]]; then . .venv/bin/activate; fi
et_host=$(python -c "import executorch, os; print(os.path.join(list(executorch.__path__)[0], 'share', 'cmake'))")

echo "=== host: build/runtime-host (executorch from $et_host) ==="
cmake -S . -B build/runtime-host -G Ninja -DCMAKE_BUILD_TYPE=Release -DVPR_BUILD_RUNTIME=ON \
  -Dexecutorch_DIR="$et_host" >/dev/null
cmake --build build/runtime-host --target vpr-localize vpr_fake_v4l2

if [[ "${SKIP_AARCH64:-0}" != 1 ]]; then
  et_arm=$(bash scripts/fetch_executorch_aarch64.sh)
  # libjpeg-turbo and libyuv for aarch64: Debian's arm64 -dev packages unpacked into a
  # folder (nothing is installed), their static libraries linked into vpr-localize.
  frame_libs=$PWD/build/frame-libs-aarch64
  if [[ ! -f $frame_libs/usr/lib/aarch64-linux-gnu/libyuv.a ]]; then
    rm -rf "$frame_libs.debs" "$frame_libs"
    mkdir -p "$frame_libs.debs"
    (cd "$frame_libs.debs" && apt-get download -q -o APT::Sandbox::User=root \
      libyuv-dev:arm64 libjpeg62-turbo-dev:arm64 >/dev/null)
    for deb in "$frame_libs.debs"/*.deb; do dpkg -x "$deb" "$frame_libs"; done
  fi
  echo "=== aarch64: build/runtime-aarch64 (executorch from $et_arm) ==="
  cmake -S . -B build/runtime-aarch64 -G Ninja -DCMAKE_BUILD_TYPE=Release -DVPR_BUILD_RUNTIME=ON \
    -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/aarch64-linux-gnu.cmake" \
    -DVPR_AARCH64_MARCH=armv8.2-a+dotprod -DVPR_QEMU_CPU=cortex-a76 \
    -Dexecutorch_DIR="$et_arm" -DVPR_FRAME_LIBS_ROOT="$frame_libs" >/dev/null
  cmake --build build/runtime-aarch64 --target vpr-localize
fi

if [[ "${BUILD_ONLY:-0}" == 1 ]]; then exit 0; fi
deselect=()
if [[ "${SKIP_AARCH64:-0}" == 1 ]]; then
  deselect=(--deselect tests/test_runtime.py::test_aarch64_under_qemu_equals_host)
fi
VPR_DATA_DIR=${VPR_DATA_DIR:-../shared/data} python -m pytest -q tests/test_runtime.py "${deselect[@]}"
