#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the build and tests need, only when missing.
set -euo pipefail

packages=(g++ make git python3.11-venv python3.11-dev g++-aarch64-linux-gnu qemu-user-static
  doctest-dev clang-format clang-14 libclang-rt-14-dev
  openjdk-17-jdk-headless  # JNI headers, javac and java for scripts/test_jni.sh
  nlohmann-json3-dev libstb-dev libcli11-dev  # csrc/runtime: JSON, PNG/PNM decoding, arguments
  libjpeg62-turbo-dev libyuv-dev  # vpr-localize: JPEG (Pillow's decoder) and YUV frames
  ffmpeg  # tests/test_runtime.py: video files and raw streams piped into vpr-localize
  pkgconf file)  # scripts/test_cmake_package.sh: the pkg-config consumer, checking ELF machines
# scripts/test_arm_python.sh unpacks Debian's arm64 CPython into a folder (nothing is
# installed): apt must know arm64 packages to download them.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  add_arm64=1
fi
missing=()
for pkg in "${packages[@]}"; do
  case "$pkg" in
    # A Python 3.11 that can make venvs and build extensions (pyenv's, say) needs no package.
    python3.11-venv) python3.11 -c "import ensurepip, venv" 2>/dev/null && continue ;;
    python3.11-dev) python3.11 -c "import sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_paths()['include'] + '/Python.h'))" 2>/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ] && [ -z "${add_arm64:-}" ]; then
  exit 0
fi
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
if [ -n "${add_arm64:-}" ]; then
  echo "adding the arm64 architecture to apt (for downloads only)"
  $sudo_cmd dpkg --add-architecture arm64
fi
$sudo_cmd apt-get update -qq
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
