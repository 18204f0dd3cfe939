"""The pruning sweep's settings: points, the recipe, where data and results go.

Settings live on the fields (vpr_embedded.settings): bench_pruning.py's flags are made
from them, with ``--config recipe.toml`` for the recipe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from vpr_embedded.data.splits import Segment
from vpr_embedded.prune.config import Importance, LrSchedule, Schedule
from vpr_embedded.settings import option

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("VPR_DATA_DIR", ROOT.parent / "shared" / "data"))
DatasetName = Literal["corridor", "nordland_part1", "gardens_point_sample"]
DATASETS: tuple[DatasetName, ...] = get_args(DatasetName)
REFERENCE_DIRS = {"corridor": "ref", "nordland_part1": "summer", "gardens_point_sample": "ref"}
TARGET = {"latency": 0.30, "memory": 0.40, "recall_drop": 0.01}
SEED_PAPER = {"latency": 0.16, "memory": 0.21}


@dataclass(frozen=True)
class Point:
    """Backbone ratio and descriptor size: dims (>= 1), a kept fraction (< 1) of the
    unpruned descriptor, or None (unpruned descriptor)."""

    ratio: float
    dim: float | None

    def resolve(self, full: int) -> int | None:
        if self.dim is None:
            return None
        return round(full * self.dim) if self.dim < 1 else int(self.dim)

    def tag(self, full: int) -> str:
        return f"r{self.ratio:.2f}-d{self.resolve(full) or 'full'}"


@dataclass(frozen=True)
class SweepConfig:
    """models: registry names (ResNet: seeded random init, no offline ImageNet
    weights) or checkpoint paths (e.g. a distilled ResNet). points: "R:D" pairs (see
    parse_point). steps/epochs/schedule/importance/lr/feature_weight/augment/lr_schedule/
    ema/soup/final_epochs: the pruning recipe (None: RecoveryConfig's default). recover_max:
    images per reference folder. threads: for pruning and recall (latency is always
    measured at 1 thread). device: where recovery trains. repeats: latency repeats.
    paired_rounds: re-time all variants of a model interleaved at the end (0: keep the
    solo timings).
    match_places: synthetic map size."""

    models: tuple[str, ...] = option(
        ("efficientnet_lite0-gem", "resnet18-gem"), "registry names or checkpoint paths"
    )
    points: tuple[str, ...] = option(
        ("0.3:0.5", "0.2:0.75", "0.4:0.4"),
        "RATIO:DIM (DIM < 1: kept fraction of the descriptor; 'full': unpruned); "
        "MODEL@RATIO:DIM applies to MODEL only; a #S1,S2 suffix sets that point's seeds",
    )
    steps: int = option(4, "iterative pruning steps", minimum=1)
    epochs: int = option(2, "recovery epochs per step", minimum=0)
    schedule: Schedule = option("linear", "how the targets are approached")
    importance: Importance = option("l2", "channel importance")
    lr: float | None = option(None, "recovery learning rate (default: prune's)")
    feature_weight: float | None = option(None, "feature distillation (default: prune's)")
    augment: bool = option(False, "augmented recovery (see prune)")
    lr_schedule: LrSchedule = option("constant", "recovery learning-rate schedule")
    ema: float = option(0.0, "weight-average decay (0: off)", minimum=0)
    soup: int = option(1, "recoveries averaged", metavar="K", minimum=1)
    final_epochs: int | None = option(None, "last step's epochs", minimum=0)
    recover_max: int = option(200, "images per reference folder", minimum=1)
    seeds: tuple[int, ...] = option((0,), "recovery seeds")
    threads: int = option(1, "for pruning and recall", minimum=0, maximum=1024)
    device: str = option("cpu", "where recovery trains: cpu, cuda, cuda:N")
    repeats: int = option(20, "latency repeats", minimum=1)
    paired_rounds: int = option(5, "interleaved re-timing rounds (0: off)", minimum=0)
    match_places: int = option(100_000, "synthetic map size", minimum=1)
    skip_export: bool = option(False, "skip the .pte export and its latency")
    datasets: tuple[DatasetName, ...] = option(DATASETS, "datasets measured")
    # A teacher trained on part of nordland_part1 (the zoo) is measured on places it never
    # saw: nordland_part1 on the named segments only (one recall column each), the others
    # whole (no model here is trained on them); recovery then takes --recover-images.
    segments: tuple[Segment, ...] = option(
        (), "measure nordland_part1 on these segments (e.g. val test) instead of whole"
    )
    recover_images: tuple[str, ...] = option(
        (),
        "recovery and calibration folders, FOLDER@SEGMENT allowed (default: the measured "
        "datasets' reference folders)",
    )
    data_dir: Path | None = option(None, "default: $VPR_DATA_DIR, else ../shared/data")
    work: Path | None = option(None, "checkpoints and caches (default runs/pruning)")
    out: Path | None = option(None, "results folder (default benchmarks/results)")
    tag: str = option("bench_pruning", "name of the result files")

    @property
    def data(self) -> Path:
        return self.data_dir if self.data_dir is not None else DATA

    @property
    def work_dir(self) -> Path:
        return self.work if self.work is not None else ROOT / "runs" / "pruning"

    @property
    def out_dir(self) -> Path:
        return self.out if self.out is not None else ROOT / "benchmarks" / "results"


def points_for(
    model: str, specs: tuple[str, ...], seeds: tuple[int, ...] = (0,)
) -> list[tuple[Point, tuple[int, ...]]]:
    """(point, seeds) for ``model``: "MODEL@R:D" entries apply to MODEL only, bare ones
    to all; a "#S1,S2" suffix overrides the seeds of that point."""
    out = []
    for spec in specs:
        who, _, rest = spec.rpartition("@")
        pt, _, sd = rest.partition("#")
        if who in ("", model):
            own = tuple(int(x) for x in sd.split(",")) if sd else seeds
            out.append((parse_point(pt), own))
    return out


def parse_point(s: str) -> Point:
    """ "R:D" (D dims), "R:F" (F < 1: kept fraction of the dims) or "R" / "R:full"."""
    r, _, d = s.partition(":")
    return Point(float(r), float(d) if d and d != "full" else None)
