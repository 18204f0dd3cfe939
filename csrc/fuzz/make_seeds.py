"""Writes valid seed maps (every storage, with and without projection, names,
positions and timestamps) for the map-reader fuzzer: make_seeds.py OUT_DIR."""

from __future__ import annotations

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
print(f"wrote {len(list(out.glob('*.vprmap')))} seed maps to {out}")
