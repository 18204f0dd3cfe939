#!/usr/bin/env bash
# Downloads the manylinux aarch64 executorch wheel (same version as the host's) and
# unpacks it to build/wheels-aarch64/executorch-<version>/ ; prints the cmake dir.
# The wheel carries lib/*.so (glibc >= 2.28), headers and share/cmake for ARM.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f .venv/bin/activate ]]; then . .venv/bin/activate; fi
version=${EXECUTORCH_VERSION:-1.5.1}
dest=build/wheels-aarch64
root=$dest/executorch-$version
if [[ ! -f $root/executorch/share/cmake/executorch-config.cmake ]]; then
  mkdir -p "$dest"
  if ! ls "$dest"/executorch-"$version"-*aarch64*.whl >/dev/null 2>&1; then
    pip download --platform manylinux_2_28_aarch64 --only-binary=:all: --no-deps \
      "executorch==$version" -d "$dest" >&2
  fi
  wheel=$(ls "$dest"/executorch-"$version"-*aarch64*.whl | head -n1)
  rm -rf "$root.tmp"
  mkdir -p "$root.tmp"
  python3 -m zipfile -e "$wheel" "$root.tmp" >&2
  rm -rf "$root"
  mv "$root.tmp" "$root"
fi
ls "$root/executorch/lib/"*.so >/dev/null
echo "$PWD/$root/executorch/share/cmake"
