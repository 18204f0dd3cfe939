"""Held-out places: a traversal cut into contiguous, named segments.

Neighbouring frames of a route are near duplicates, so a random frame-level split leaks
places from training into evaluation. A traversal is therefore cut into contiguous
segments by fixed fractions of its frames, decided once, before any run, and the same
for every method (tunnels and stations included):

    train  [0.00, 0.60)   training and label-free recovery
    val    [0.60, 0.75)   every choice: recipes, checkpoints, thresholds
    test   [0.75, 1.00]   reported only; no choice ever looks at it

The first ``GUARD_FRAMES`` frames of val and test are dropped, so that no place of one
segment lies within a positive's tolerance (+-2 frames on Nordland) or a training
neighbour of another. On nordland_part1 (1788 frames): train 0-1072, val 1083-1340,
test 1351-1787 (437 places).

A segment applies to a frame-aligned dataset (both traversals are cut at the same frames)
and to a single image folder in route order, written ``FOLDER@SEGMENT`` wherever an image
folder is taken (recovery, calibration, distillation images).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

if TYPE_CHECKING:
    from vpr_embedded.data.datasets import PlaceDataset

Segment = Literal["train", "val", "test"]
SEGMENTS: dict[str, tuple[float, float]] = {
    "train": (0.0, 0.60),
    "val": (0.60, 0.75),
    "test": (0.75, 1.0),
}
SEGMENT_NAMES: tuple[Segment, ...] = get_args(Segment)
GUARD_FRAMES = 10


def segment_range(frames: int, segment: str) -> range:
    """Frame indices of ``segment`` in a traversal of ``frames`` frames."""
    if segment not in SEGMENTS:
        raise ValueError(f"unknown segment {segment!r}; choose from {', '.join(SEGMENTS)}")
    lo, hi = SEGMENTS[segment]
    start, stop = round(lo * frames), round(hi * frames)
    if start > 0:
        start += GUARD_FRAMES
    if stop <= start:
        raise ValueError(
            f"a traversal of {frames} frames is too short for a {segment} segment "
            f"(fractions {lo}-{hi}, {GUARD_FRAMES} guard frames)"
        )
    return range(start, stop)


def split_paths(paths: Sequence[Path], segment: str | None) -> list[Path]:
    """The paths (one traversal, in route order) that fall in ``segment`` (None: all)."""
    if segment is None:
        return list(paths)
    r = segment_range(len(paths), segment)
    return list(paths[r.start : r.stop])


def parse_folder(spec: str | Path) -> tuple[Path, str | None]:
    """``FOLDER@SEGMENT`` -> (FOLDER, SEGMENT); a plain folder -> (folder, None). A folder
    whose own name holds an @ is taken whole when it exists."""
    text = str(spec)
    if "@" not in text or Path(text).exists():
        return Path(text), None
    folder, _, segment = text.rpartition("@")
    if segment not in SEGMENTS:
        raise ValueError(
            f"{text}: unknown segment {segment!r} after @; choose from {', '.join(SEGMENTS)}"
        )
    return Path(folder), segment


def split_dataset(dataset: PlaceDataset, segment: str | None) -> PlaceDataset:
    """The places of ``segment`` only: references and queries cut at the same frames,
    positives re-indexed into the cut references (frame-aligned datasets only)."""
    if segment is None:
        return dataset
    if dataset.format != "aligned":
        raise ValueError(
            f"{dataset.name}: segments (--split) are defined for frame-aligned traversals, "
            f"not for the {dataset.format or 'unknown'} layout; evaluate it whole"
        )
    if len(dataset.references) != len(dataset.queries):
        raise ValueError(
            f"{dataset.name}: {len(dataset.references)} references and "
            f"{len(dataset.queries)} queries: not one frame per place in each traversal"
        )
    r = segment_range(len(dataset.references), segment)
    positives = []
    for p in dataset.positives[r.start : r.stop]:
        kept = p[(p >= r.start) & (p < r.stop)] - r.start
        positives.append(np.asarray(kept, dtype=np.int64))
    return replace(
        dataset,
        name=f"{dataset.name}@{segment}",
        references=dataset.references[r.start : r.stop],
        queries=dataset.queries[r.start : r.stop],
        positives=tuple(positives),
    )
