#!/usr/bin/env bash
# Quick start, main job: install everything, then run it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v make >/dev/null || bash scripts/install_system_deps.sh
make run "$@"
