"""Writes seeds for the fuzzers: valid maps (every storage, with and without projection,
names, positions and timestamps; pq4 maps flat and with IVF lists and re-rank codes) for
the map reader, and manifests (a valid one and
near misses) for the manifest reader: make_seeds.py MAP_DIR [MANIFEST_DIR]."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np

from vpr_embedded.maps import build_map

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
for i, storage in enumerate(("float32", "float16", "int8", "binary")):
    for extras in (False, True):
        n, d = 6 + i, 16
        x = rng.standard_normal((n, d)).astype(np.float32)
        build_map(
            x,
            out_path=out / f"{storage}_{int(extras)}.vprmap",
            storage=storage,  # type: ignore[arg-type]
            names=[f"p{j}" for j in range(n)] if extras else None,
            positions=rng.random((n, 2)) if extras else None,
            position_kind="latlon" if extras else None,
            timestamps=np.arange(float(n)) if extras else None,
            pca_dim=4 if extras else None,
            model_sha256="00" * 32,
            model_name="fuzz",
        )
from vpr_embedded.pq import PqConfig  # noqa: E402

for name, cfg, rerank in (
    ("pq4_flat", PqConfig(m=4), None),
    ("pq4_ivf_int8", PqConfig(m=4, ivf_lists=3, nprobe=2), "int8"),
):
    n = 40
    build_map(
        rng.standard_normal((n, 16)).astype(np.float32),
        out_path=out / f"{name}.vprmap",
        storage="pq4",
        pq=cfg,
        rerank=rerank,  # type: ignore[arg-type]
        positions=rng.random((n, 2)),
        position_kind="utm",
        model_sha256="00" * 32,
        model_name="fuzz",
    )
print(f"wrote {len(list(out.glob('*.vprmap')))} seed maps to {out}")

# A manifest as export writes it (the fields every reader checks), and near misses.
MANIFEST = {
    "format": "vpr-embedded-bundle",
    "format_version": 1,
    "model_name": "efficientnet_lite0-gem",
    "model_config": {"backbone": "efficientnet_lite0", "input_size": [64, 96]},
    "input": {
        "height": 64,
        "width": 96,
        "channels": 3,
        "colour_order": "RGB",
        "resize": "pil-bilinear",
        "rotate_180": True,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    },
    "descriptor_dim": 1280,
    "quantization": {"mode": "int8"},
    "pte": {"file": "model.pte", "sha256": "ab" * 32, "bytes": 3655040},
}
if len(sys.argv) > 2:
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    variants = {"valid": MANIFEST}
    for name, edit in {
        "no_pte": lambda m: m.pop("pte"),
        "bgr": lambda m: m["input"].update(colour_order="BGR"),
        "zero_std": lambda m: m["input"].update(std=[0, 1, 1]),
        "huge": lambda m: m["input"].update(height=10**9),
        "upper_sha": lambda m: m["pte"].update(sha256="AB" * 32),
    }.items():
        m = copy.deepcopy(MANIFEST)
        edit(m)
        variants[name] = m
    for name, m in variants.items():
        (out / f"{name}.json").write_text(json.dumps(m, indent=1))
    (out / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(MANIFEST).encode())
    print(f"wrote {len(variants) + 1} seed manifests to {out}")
