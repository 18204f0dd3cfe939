"""Pruning sweep: for (backbone ratio, descriptor dim) pairs, prune + recover, then measure
parameters, MACs, model bytes (fp32 state, fp32/int8 .pte), descriptor dim, map bytes,
extraction latency at 1 thread (eager, ExecuTorch XNNPACK fp32 and int8), matching
latency (C++ core, 100k synthetic places, 1 thread), recall@1/5 on corridor,
nordland_part1 and gardens_point_sample; PCA of the unpruned descriptor as a yardstick.

Recovery uses the REFERENCE side of the evaluation datasets only (corridor/ref,
nordland_part1/summer, gardens_point_sample/ref), never their queries.

Writes OUT/TAG.{json,md} and Pareto PNGs; pruned checkpoints, per-variant measurements
and teacher caches go to ``work`` (resumable: a rerun only computes what is new).
Split: config (settings), measure, report, plot; entry: benchmarks/bench_pruning.py
(``vpr-embedded prune-sweep`` runs it from a source checkout).
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from _common import machine_info

from vpr_embedded.data.datasets import PlaceDataset, load_dataset

from .config import SEED_PAPER, TARGET, SweepConfig, points_for
from .measure import model_label, recovery_folders, run_model, teacher_init
from .plot import plots
from .report import memory_bytes, relative, table

__all__ = ["SweepConfig", "run_sweep"]


def measured_datasets(args: SweepConfig) -> dict[str, PlaceDataset]:
    """Result columns -> datasets: nordland_part1 whole, or one column per segment
    ("nordland_part1@test") with --segments; the others whole."""
    out: dict[str, PlaceDataset] = {}
    for d in args.datasets:
        if d == "nordland_part1" and args.segments:
            for seg in args.segments:
                out[f"{d}@{seg}"] = load_dataset(args.data / d, split=seg)
        else:
            out[d] = load_dataset(args.data / d)
    return out


def run_sweep(args: SweepConfig) -> dict[str, Any]:
    """Run the sweep, print the table, write OUT/TAG.{json,md} and the Pareto PNGs."""
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for p in args.points:
        points_for(p.rpartition("@")[0], (p,))  # fail before any work on a malformed point
    datasets = measured_datasets(args)
    rows: list[dict[str, Any]] = []
    for name in args.models:
        rows += run_model(name, args, datasets, args.work_dir)
    relative(rows, datasets)
    for r in rows:
        if "model_bytes_fp32" in r:
            r["_mem"] = {k: memory_bytes(r, ds) / 1e6 for k, ds in datasets.items()}
    info = machine_info()
    md = (
        f"{info['vendor']} family {info['family']} model {info['model']} "
        f"({info['model_name']}), {info['cores']} cores, {info['date_utc']} UTC\n\n" + table(rows)
    )
    print(md)
    pngs = plots(rows, args.out_dir, args.tag)
    for r in rows:
        r["memory_mb"] = r.pop("_mem", None)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(args).items()}
    settings.pop("parsed", None)
    doc = {
        "benchmark": "bench_pruning",
        "machine": {**info, "platform": platform.platform()},
        "torch": torch.__version__,
        "settings": settings,
        "recovery_images": [str(p) for p in recovery_folders(args)],
        "measured": {
            k: f"{len(ds.queries)} queries, {len(ds.references)} places"
            for k, ds in datasets.items()
        },
        "teacher_init": {model_label(m): teacher_init(m) for m in args.models},
        "targets": TARGET,
        "seed_paper": SEED_PAPER,
        "rows": rows,
        "plots": pngs,
    }
    (args.out_dir / f"{args.tag}.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
    (args.out_dir / f"{args.tag}.md").write_text(md + "\n")
    print(f"wrote {args.out_dir / (args.tag + '.json')}")
    return doc
