"""Map building on Ray against one process: images per second by workers.

For each model (int8 bundles: the zoo's nordland-lite0-gem at 64x128 and the default
efficientnet_lite0-gem at 224x224), the descriptors of every nordland_part1 summer image
(1788 PNGs, decoded and resized per image, as build-map does) are computed
- by the local engine (one process, one extraction thread);
- on a local Ray cluster with --workers 1 and 2 (one CPU and one extraction thread each),
  timed from the call to the last descriptor (actor start-up and model load included;
  cluster start-up, once per job, reported apart).
Each variant runs on the image list once and on it four times over (7152 images): the
difference gives the steady rate (images per second once the actors are up) and the fixed
cost of a run (start-up). Ray's overhead at 1 worker is its steady rate against the local
engine's, and its fixed cost. The projection to a cluster multiplies the steady rate per
worker, and says so.

  python benchmarks/bench_ray.py [--rounds 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_line, read_bandwidth

from vpr_embedded.data.datasets import list_images
from vpr_embedded.export import ExportConfig, export_bundle
from vpr_embedded.localize import EngineConfig, extract_descriptors, open_model
from vpr_embedded.models.loading import load_model

REPO = Path(__file__).resolve().parents[1]
MODELS = ("zoo:nordland-lite0-gem", "efficientnet_lite0-gem")
SFXL_IMAGES = 41_000_000  # SF-XL, the city-scale set the issue names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    data = Path(os.environ.get("VPR_DATA_DIR", REPO.parent / "shared" / "data"))
    ap.add_argument("--images", default=str(data / "nordland_part1" / "summer"))
    ap.add_argument("--rounds", type=int, default=2, help="timed runs per variant (median)")
    ap.add_argument("--work", default=str(REPO / "build/bench_ray"))
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/ray.json"))
    args = ap.parse_args()
    import ray

    paths = list_images(Path(args.images))
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    cluster_s = time.perf_counter() - t0
    info = machine_info()
    bandwidth, _ = read_bandwidth(0.5)
    rows: list[dict[str, Any]] = []
    for spec in MODELS:
        out = Path(args.work) / spec.replace(":", "-")
        cfg = ExportConfig(quantize="int8", calib_images=Path(args.images), calib_count=32,
                           check=False, progress=False)  # fmt: skip
        export_bundle(load_model(spec), out, cfg)
        local = open_model(str(out), threads=1)
        variants: dict[str, EngineConfig] = {"local": EngineConfig()}
        for w in (1, 2):
            variants[f"ray {w}"] = EngineConfig(engine="ray", workers=w, batch_size=32)
        sizes = {"x1": paths, "x4": paths * 4}
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):  # interleaved, so a slow spell hits every variant
            for name, engine in variants.items():
                for size, items in sizes.items():
                    t = time.perf_counter()
                    got = extract_descriptors(str(out), local, items, engine, name)
                    times.setdefault((name, size), []).append(time.perf_counter() - t)
                    assert len(got.good) == len(items), got.errors[:3]
        med = {k: statistics.median(v) for k, v in times.items()}
        row: dict[str, Any] = {"model": spec, "images": len(paths)}
        extra = 3 * len(paths)  # images in x4 beyond x1
        for name in variants:
            x1, x4 = med[(name, "x1")], med[(name, "x4")]
            rate = extra / (x4 - x1)
            row[f"{name} s"] = x1
            row[f"{name} img/s"] = len(paths) / x1
            row[f"{name} steady img/s"] = rate
            row[f"{name} fixed s"] = max(0.0, x1 - len(paths) / rate)
        row["ray 1 worker steady rate / local"] = (
            row["ray 1 steady img/s"] / row["local steady img/s"]
        )
        row["speed-up 2 workers vs 1"] = row["ray 2 steady img/s"] / row["ray 1 steady img/s"]
        per_worker = row["ray 1 steady img/s"]
        row["projection SF-XL hours at 64 workers"] = SFXL_IMAGES / (64 * per_worker) / 3600
        rows.append(row)
        print(json.dumps(row), flush=True)
    ray.shutdown()
    line = machine_line(info, bandwidth)
    print(f"\n{line}")
    print(
        f"{len(paths)} nordland_part1 summer PNGs (64x32), int8 bundles, 1 extraction thread "
        f"per worker; local Ray cluster start-up {cluster_s:.1f} s, not in the times"
    )
    print("| model | engine | 1788 images, s | img/s | steady img/s | fixed cost, s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        for name in ("local", "ray 1", "ray 2"):
            label = {"local": "local (1 process)", "ray 1": "Ray, 1 worker",
                     "ray 2": "Ray, 2 workers"}[name]  # fmt: skip
            print(f"| {r['model']} | {label} | {r[f'{name} s']:.2f} | {r[f'{name} img/s']:.0f} | "
                  f"{r[f'{name} steady img/s']:.0f} | {r[f'{name} fixed s']:.1f} |")  # fmt: skip
    for r in rows:
        print(f"- {r['model']}: Ray at 1 worker runs at "
              f"{100 * r['ray 1 worker steady rate / local']:.0f} % of the local engine's steady "
              f"rate; 2 workers give {r['speed-up 2 workers vs 1']:.2f}x of 1")  # fmt: skip
    print("\nPROJECTION, not measured: SF-XL (41M images) on 64 workers like one here (steady "
          "rate, linear in the workers, storage as fast as this disk's page cache):")  # fmt: skip
    for r in rows:
        print(f"- {r['model']}: {r['projection SF-XL hours at 64 workers']:.1f} h")
    doc = {"machine": info, "machine_line": line, "cluster_start_s": cluster_s, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
