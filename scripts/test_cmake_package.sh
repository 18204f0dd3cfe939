#!/usr/bin/env bash
# The C++ package as a C++ user meets it:
#   1. cmake --install of vpr_core for x86_64 into build/pkg-host/prefix; the consumer
#      project tests/cmake/consumer finds it with find_package(vpr_embedded) and runs;
#      the same source also builds with nothing but `pkg-config --cflags --libs`;
#   2. the same for aarch64 (cross toolchain), the consumer run under qemu -cpu cortex-a76;
#   3. tests/cmake/subdirectory pulls the tree in with add_subdirectory and checks that
#      the parent's C++ standard, build type and install rules are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f .venv/bin/activate ]]; then . .venv/bin/activate; fi
jobs=${VPR_JOBS:-2}

package() {  # name, extra cmake args...
  local name=$1; shift
  local build=build/pkg-$name prefix=$PWD/build/pkg-$name/prefix
  rm -rf "$build"
  cmake -S . -B "$build/core" -G Ninja "$@" -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
  cmake --build "$build/core" -j "$jobs" >/dev/null
  cmake --install "$build/core" >/dev/null
  # vpr_embedded_DIR, not CMAKE_PREFIX_PATH: a cross toolchain re-roots prefix searches
  # under its sysroot (CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY).
  cmake -S tests/cmake/consumer -B "$build/consumer" -G Ninja "$@" \
    -Dvpr_embedded_DIR="$prefix/lib/cmake/vpr_embedded" >/dev/null
  cmake --build "$build/consumer" >/dev/null
  echo "$name: installed $(find "$prefix" -type f | wc -l) files; consumer built with find_package"
}

package host
build/pkg-host/consumer/vpr_consumer
prefix=$PWD/build/pkg-host/prefix
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" g++ -std=c++17 -O2 tests/cmake/consumer/main.cpp \
  $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs vpr_embedded) \
  -o build/pkg-host/consumer_pkgconfig
build/pkg-host/consumer_pkgconfig
echo "host: the consumer also builds from pkg-config"

package aarch64 -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/aarch64-linux-gnu.cmake" \
  -DVPR_AARCH64_MARCH=armv8.2-a+dotprod -DVPR_QEMU_CPU=cortex-a76
file build/pkg-aarch64/consumer/vpr_consumer | grep -q "ARM aarch64"
qemu-aarch64-static -L /usr/aarch64-linux-gnu -cpu cortex-a76 build/pkg-aarch64/consumer/vpr_consumer
echo "aarch64: the cross-built consumer runs under qemu -cpu cortex-a76"

rm -rf build/pkg-subdirectory
cmake -S tests/cmake/subdirectory -B build/pkg-subdirectory -G Ninja -DVPR_SOURCE_DIR="$PWD" \
  >/dev/null
cmake --build build/pkg-subdirectory -j "$jobs" >/dev/null
build/pkg-subdirectory/vpr_parent
echo "add_subdirectory: the parent's C++20, Debug build and install rules are kept"
