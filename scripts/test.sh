#!/usr/bin/env bash
# Quick start, tests: install everything, then lint, C++ tests (x86_64 and aarch64
# under qemu) and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v make >/dev/null || bash scripts/install_system_deps.sh
make test "$@"
