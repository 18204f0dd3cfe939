"""Dataset readers (read in place): VPR-Bench, frame-aligned traversals, gmberton.

A PlaceDataset gives reference and query image paths, positives per query (indices
into the references) and a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from vpr_embedded.data.catalog import resolve_dataset
from vpr_embedded.data.ground_truth import vpr_bench_positives
from vpr_embedded.data.splits import parse_folder, split_dataset, split_paths

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
DatasetFormat = Literal["vpr-bench", "aligned", "gmberton"]
FORMATS: tuple[DatasetFormat, ...] = get_args(DatasetFormat)
GMBERTON_RADIUS_M = 25.0


@dataclass(frozen=True)
class PlaceDataset:
    """references/queries: image paths; positives[i]: sorted int64 reference indices
    that show the place of query i (may be empty)."""

    name: str
    references: tuple[Path, ...]
    queries: tuple[Path, ...]
    positives: tuple[np.ndarray, ...]
    format: str = ""

    def __post_init__(self) -> None:
        if len(self.positives) != len(self.queries):
            raise ValueError(
                f"{self.name}: {len(self.positives)} positive lists for {len(self.queries)} queries"
            )


def _natural_key(p: Path) -> list[int | str]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder, in natural order (2.jpg before 10.jpg). ``FOLDER@SEGMENT``
    keeps one held-out segment of a route-ordered folder (data/splits.py)."""
    folder, segment = parse_folder(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return split_paths(sorted(files, key=_natural_key), segment)


def read_vpr_bench(root: str | Path) -> PlaceDataset:
    """VPR-Bench layout: ``query/``, ``ref/`` and ``ground_truth_new.npy``."""
    r = Path(root)
    refs, queries = list_images(r / "ref"), list_images(r / "query")
    gt = r / "ground_truth_new.npy"
    if not gt.is_file():
        raise FileNotFoundError(f"VPR-Bench ground truth {gt} is missing")
    pos = vpr_bench_positives(gt, len(queries), len(refs))
    return PlaceDataset(r.name, tuple(refs), tuple(queries), tuple(pos), "vpr-bench")


def default_tolerance(root: Path) -> int:
    """Frames of slack for aligned traversals: 2 for Nordland (the usual +-2), else 1
    (consecutive frames of a walk are near duplicates, e.g. Gardens Point)."""
    return 2 if "nordland" in root.name.lower() else 1


def _aligned_dirs(root: Path) -> tuple[Path, Path]:
    """(reference folder, query folder): ref/ + query/ if present, else the only two
    image sub-folders in sorted order (reference first: summer before winter)."""
    if (root / "ref").is_dir() and (root / "query").is_dir():
        return root / "ref", root / "query"
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(subs) != 2:
        raise ValueError(
            f"{root}: an aligned dataset needs ref/ and query/, or exactly two image folders "
            f"(found {[p.name for p in subs]}); pass ref_dir/query_dir"
        )
    return subs[0], subs[1]


def read_aligned(
    root: str | Path,
    *,
    ref_dir: str | None = None,
    query_dir: str | None = None,
    tolerance: int | None = None,
) -> PlaceDataset:
    """Two traversals whose equal file names are the same place. Query i's positives are
    the references within +-tolerance frames (in natural file order) of its namesake."""
    r = Path(root)
    if ref_dir is not None and query_dir is not None:
        rd, qd = r / ref_dir, r / query_dir
    else:
        rd, qd = _aligned_dirs(r)
    refs, queries = list_images(rd), list_images(qd)
    tol = default_tolerance(r) if tolerance is None else tolerance
    if tol < 0:
        raise ValueError(f"tolerance must be >= 0 frames, got {tol}")
    where = {p.name: i for i, p in enumerate(refs)}
    unmatched = [q.name for q in queries if q.name not in where]
    if unmatched:
        raise ValueError(
            f"{qd}: {len(unmatched)} query images have no namesake in {rd} "
            f"(e.g. {unmatched[:3]}): not a frame-aligned pair of traversals"
        )
    n = len(refs)
    pos = []
    for q in queries:
        j = where[q.name]
        pos.append(np.arange(max(0, j - tol), min(n, j + tol + 1), dtype=np.int64))
    return PlaceDataset(r.name, tuple(refs), tuple(queries), tuple(pos), "aligned")


def utm_from_name(p: Path) -> tuple[float, float]:
    """(east, north) from a gmberton file name ``@UTM_east@UTM_north@...@.jpg``."""
    parts = p.name.split("@")
    try:
        return float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        raise ValueError(f"{p}: not a gmberton image name (@UTM_east@UTM_north@...@.jpg)") from None


def read_gmberton(root: str | Path, *, radius_m: float = GMBERTON_RADIUS_M) -> PlaceDataset:
    """gmberton layout (``database/``, ``queries/``): positives within radius_m metres."""
    from sklearn.neighbors import NearestNeighbors

    r = Path(root)
    refs, queries = list_images(r / "database"), list_images(r / "queries")
    db = np.array([utm_from_name(p) for p in refs], dtype=np.float64)
    qs = np.array([utm_from_name(p) for p in queries], dtype=np.float64)
    nn = NearestNeighbors().fit(db)
    found = nn.radius_neighbors(qs, radius=radius_m, return_distance=False)
    pos = tuple(np.sort(np.asarray(f, dtype=np.int64)) for f in found)
    return PlaceDataset(r.name, tuple(refs), tuple(queries), pos, "gmberton")


def detect_format(root: str | Path) -> str:
    """One of FORMATS, from the folder layout."""
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"dataset folder {r} does not exist")
    if (r / "ground_truth_new.npy").is_file() and (r / "ref").is_dir():
        return "vpr-bench"
    if (r / "database").is_dir() and (r / "queries").is_dir():
        return "gmberton"
    subs = [p for p in r.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 2 or ((r / "ref").is_dir() and (r / "query").is_dir()):
        return "aligned"
    raise ValueError(
        f"{r}: cannot tell the dataset format (expected query/+ref/+ground_truth_new.npy, "
        "database/+queries/, or two frame-aligned folders); pass the format explicitly"
    )


def load_dataset(
    root: str | Path,
    format: str | None = None,
    *,
    tolerance: int | None = None,
    radius_m: float = GMBERTON_RADIUS_M,
    split: str | None = None,
) -> PlaceDataset:
    """Read a dataset in place, auto-detecting its format unless given. ``root`` is a folder
    or the name of a supported dataset in the data folder (data/catalog.py). ``split``: only
    the places of that segment (data/splits.py), for held-out evaluation."""
    root = resolve_dataset(root)
    fmt = format or detect_format(root)
    if fmt == "vpr-bench":
        ds = read_vpr_bench(root)
    elif fmt == "aligned":
        ds = read_aligned(root, tolerance=tolerance)
    elif fmt == "gmberton":
        ds = read_gmberton(root, radius_m=radius_m)
    else:
        raise ValueError(f"unknown dataset format {fmt!r}; choose from {FORMATS}")
    return split_dataset(ds, split)
