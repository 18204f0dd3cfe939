#!/usr/bin/env bash
# Host test of the Android JNI bridge: builds libvpr_jni.so for this machine
# (build/jni-host), compiles the Java library csrc/jni/java (the one the Android app
# depends on) and the harness csrc/jni/host_test with plain javac, then runs
# tests/test_jni.py, which drives the harness with `java -Xcheck:jni`.
#   scripts/test_jni.sh               build, then run the pytest
#   scripts/test_jni.sh --build-only  build only (what tests/test_jni.py calls)
# Needs cmake, ninja, a C++17 compiler and a JDK (openjdk-17-jdk-headless).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/jni-host
wrapper=csrc/jni/java/org/vprembedded
if [[ -z "${JAVA_HOME:-}" ]]; then
  JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
  export JAVA_HOME
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVPR_BUILD_JNI=ON >"$build.cmake.log" 2>&1 ||
  { cat "$build.cmake.log"; exit 1; }
cmake --build "$build" --target vpr_jni -j "${VPR_JOBS:-2}"
rm -rf "$build/classes"
# --release 8: the Java level the Android app compiles the wrapper with.
"$JAVA_HOME/bin/javac" -Xlint:all -Werror --release 8 -d "$build/classes" \
  "$wrapper"/*.java csrc/jni/host_test/VprJniHarness.java
test -f "$build/classes/VprJniHarness.class"
echo "built $build/csrc/jni/libvpr_jni.so and $build/classes"
if [[ "${1:-}" == "--build-only" ]]; then exit 0; fi
if [[ -f .venv/bin/activate ]]; then . .venv/bin/activate; fi
VPR_JNI_BUILT=1 python -m pytest -q tests/test_jni.py
