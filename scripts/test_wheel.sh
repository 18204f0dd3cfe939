#!/usr/bin/env bash
# The core package as a user gets it: `pip wheel .` (build isolation, as a user runs it)
# builds build/wheel-host/dist/vpr_embedded-*.whl; a new venv installs that wheel alone
# (numpy comes with it; no torch), then runs tests/core_install/check_core_install.py and
# the core test files (matching, maps, sequence) against the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f .venv/bin/activate ]]; then . .venv/bin/activate; fi
root=build/wheel-host
rm -rf "$root"
mkdir -p "$root"
t0=$SECONDS
pip wheel . --no-deps -q -w "$root/dist"
wheel=$(ls "$root"/dist/vpr_embedded-*.whl)
echo "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KB) in $((SECONDS - t0)) s"
# The model zoo ships inside the package: every committed entry is in the wheel.
python3 -m zipfile -l "$wheel" > "$root/listing.txt"
for entry in vpr_embedded/zoo/*.pt vpr_embedded/zoo/*.json; do
  grep -q " *$entry " "$root/listing.txt" || { echo "$entry is missing from the wheel" >&2; exit 1; }
done
python3.11 -m venv "$root/venv"
"$root/venv/bin/pip" install -q -c constraints.txt "$wheel"
"$root/venv/bin/pip" list 2>/dev/null | grep -Ei "^(numpy|torch|vpr-embedded) " | tr -s ' '
# -P: never import the source tree in the working directory instead of the installed wheel.
"$root/venv/bin/python" -P tests/core_install/check_core_install.py
"$root/venv/bin/pip" install -q -c constraints.txt pytest hypothesis pillow
VPR_DATA_DIR=${VPR_DATA_DIR:-../shared/data} "$root/venv/bin/python" -P -m pytest -q \
  -p no:cacheprovider tests/test_matching.py tests/test_maps.py tests/test_sequence.py \
  tests/test_layers.py
"$root/venv/bin/python" -P -c "import sys, vpr_embedded.maps; assert 'torch' not in sys.modules"
echo "core wheel: installs into a new venv without torch and passes the core tests"
