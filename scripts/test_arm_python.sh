#!/usr/bin/env bash
# The on-device Python bindings on ARM: the core wheel (vpr_embedded + the C++ extension)
# cross-built for aarch64 by scikit-build-core with the project's CMake and the aarch64
# toolchain, installed beside aarch64 numpy (the manylinux wheel) for Debian's aarch64
# CPython 3.11 (arm64 .deb packages unpacked into build/py-aarch64/sysroot, nothing
# installed on the system), then run under qemu-aarch64-static -cpu cortex-a76 (Pi 5):
# tests/core_install/check_core_install.py and the core test files, at every SIMD level
# the emulated CPU has (scalar, neon, neon_dotprod).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
root=$PWD/build/py-aarch64
sysroot=$root/sysroot
packages=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev libc6
  libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libcrypt1 libuuid1)
if [[ ! -x $sysroot/usr/bin/python3.11 ]]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "apt has no arm64 packages: run scripts/install_system_deps.sh" >&2
    exit 1
  fi
  rm -rf "$root/debs" "$sysroot.tmp"
  mkdir -p "$root/debs"
  (cd "$root/debs" && apt-get download -q -o APT::Sandbox::User=root "${packages[@]/%/:arm64}" \
    >/dev/null)
  for deb in "$root"/debs/*.deb; do dpkg -x "$deb" "$sysroot.tmp"; done
  mv "$sysroot.tmp" "$sysroot"
fi
python=(qemu-aarch64-static -L "$sysroot" -cpu cortex-a76 "$sysroot/usr/bin/python3.11" -P)
echo "aarch64 interpreter: $("${python[@]}" -c 'import sys, platform; print(sys.version.split()[0], platform.machine())')"

# Debian's /usr/include/python3.11/pyconfig.h dispatches on the target architecture to
# <aarch64-linux-gnu/python3.11/pyconfig.h>; give CMake one folder with the aarch64 one.
include=$root/include/python3.11
rm -rf "$root/include"
mkdir -p "$root/include"
cp -r "$sysroot/usr/include/python3.11" "$include"
cp "$sysroot/usr/include/aarch64-linux-gnu/python3.11/pyconfig.h" "$include/pyconfig.h"

# scikit-build-core takes the wheel's platform from _PYTHON_HOST_PLATFORM; the extension
# suffix and the Python headers are the target's, pybind11's CMake package the host's
# (the toolchain confines package searches to the aarch64 sysroot).
suffix=.cpython-311-aarch64-linux-gnu.so
rm -rf "$root/dist" "$root/cmake-build"
t0=$SECONDS
_PYTHON_HOST_PLATFORM=linux-aarch64 SETUPTOOLS_EXT_SUFFIX=$suffix \
  pip wheel . --no-deps --no-build-isolation -q -w "$root/dist" \
  -C cmake.define.CMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/aarch64-linux-gnu.cmake" \
  -C cmake.define.VPR_AARCH64_MARCH=armv8-a \
  -C cmake.define.pybind11_DIR="$(python -m pybind11 --cmakedir)" \
  -C cmake.define.Python_INCLUDE_DIR="$include" \
  -C cmake.define.PYTHON_MODULE_EXTENSION=$suffix \
  -C build-dir="$root/cmake-build"
wheel=$(ls "$root"/dist/vpr_embedded-*-linux_aarch64.whl)
echo "cross-built $(basename "$wheel") in $((SECONDS - t0)) s"
python -m zipfile -l "$wheel" >"$root/wheel-files.txt"  # (grep -q would cut the pipe)
grep -q "_core$suffix" "$root/wheel-files.txt"
file "$root/cmake-build/csrc/_core$suffix" | grep -q "ARM aarch64"

# Install for the target: host pip resolving aarch64 wheels into a site folder.
rm -rf "$root/site"
platforms=()
for p in manylinux_2_28_aarch64 manylinux_2_17_aarch64 manylinux2014_aarch64 linux_aarch64; do
  platforms+=(--platform "$p")
done
pip install -q --target "$root/site" "${platforms[@]}" --python-version 3.11 \
  --implementation cp --abi cp311 --only-binary=:all: -c constraints.txt "$wheel"
PYTHONPATH=$root/site "${python[@]}" tests/core_install/check_core_install.py
pip install -q --target "$root/site" "${platforms[@]}" --python-version 3.11 \
  --implementation cp --abi cp311 --only-binary=:all: -c constraints.txt --upgrade \
  pytest hypothesis pillow
# The Nordland recall test reads 3,576 PNGs (98 s under qemu): a data test, not an ARM one;
# the sequence matcher itself is covered by the other sequence tests here.
PYTHONPATH=$root/site VPR_DATA_DIR=${VPR_DATA_DIR:-$PWD/../shared/data} "${python[@]}" -m pytest -q \
  -p no:cacheprovider tests/test_matching.py tests/test_maps.py tests/test_sequence.py \
  --deselect tests/test_sequence.py::test_nordland_sequence_beats_single_frame_by_20_points
echo "aarch64: the core wheel passes the core tests under qemu -cpu cortex-a76"
