"""The device layer imports neither torch nor any host stage (docs/design.md, "Layers")."""

from __future__ import annotations

import subprocess
import sys

DEVICE_LAYER = (
    "vpr_embedded.matching",
    "vpr_embedded.kernels",
    "vpr_embedded.maps",
    "vpr_embedded.sequence",
    "vpr_embedded.manifest",
    "vpr_embedded.metrics",
    "vpr_embedded.preprocessing",
    "vpr_embedded.localizer",
    "vpr_embedded.extras",
    "vpr_embedded.settings",
    "vpr_embedded.progress",
    "vpr_embedded.runtime_log",
    "vpr_embedded.data.catalog",
    "vpr_embedded.data.splits",
    "vpr_embedded.cli",
)
HOST_STAGES = (
    "vpr_embedded.models",
    "vpr_embedded.data.images",
    "vpr_embedded.data.datasets",
    "vpr_embedded.bundle",
    "vpr_embedded.quantize",
    "vpr_embedded.export",
    "vpr_embedded.evaluate",
    "vpr_embedded.localize",
    "vpr_embedded.ray_engine",
    "vpr_embedded.pipeline",
    "vpr_embedded.prune",
    "vpr_embedded.distill",
    "vpr_embedded.train",
    "vpr_embedded.pq",
)
HOST_LIBRARIES = (
    "torch",
    "executorch",
    "torchao",
    "torch_pruning",
    "pytorch_metric_learning",
    "sklearn",
    "PIL",
    "tqdm",
)


def test_the_device_layer_imports_no_torch_and_no_host_stage() -> None:
    imports = "; ".join(f"import {m}" for m in DEVICE_LAYER)
    watched = HOST_STAGES + HOST_LIBRARIES
    code = f"import sys; {imports}; print(sorted(m for m in {watched!r} if m in sys.modules))"
    # -P: the installed package, not a source tree in the working directory.
    r = subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"the device layer imported {r.stdout.strip()}"


def test_the_layer_lists_cover_the_package() -> None:
    import pkgutil

    import vpr_embedded

    listed = {m.rsplit(".", 1)[-1] for m in DEVICE_LAYER + HOST_STAGES} | {"data"}
    top = {m.name for m in pkgutil.iter_modules(vpr_embedded.__path__)}
    # What is neither is the compiled core and small host helpers.
    assert top - listed <= {"_core", "_localizer", "demo", "devices"}, top - listed
