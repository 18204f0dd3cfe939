"""Place-labelled training images, read in place from three layouts.

- ``aligned``: frame-aligned traversals (the Nordland layout): the same file name in two
  or more condition folders is the same place. ``frames_per_place`` consecutive frames
  form one place, so that a place has several views per condition (a train moves; the
  next frame is the same place seen a few metres on).
- ``gmberton``: UTM coordinates in file names (``@east@north@...@.jpg``) under any
  sub-folders; images in one ``cell_m`` x ``cell_m`` metre cell are one place.
- ``gsv-cities``: ``Dataframes/<city>.csv`` and ``Images/<city>/...`` (GSV-Cities,
  Ali-bey et al. 2022), one row per image with its ``place_id``.

Every reader returns PlaceImages: one path and one integer place label per image, and a
route position per place where the layout has one (for sampling batches without
neighbouring places, and for splits).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray

from vpr_embedded.data.catalog import resolve_dataset
from vpr_embedded.data.datasets import IMAGE_SUFFIXES, list_images, utm_from_name
from vpr_embedded.data.splits import segment_range

PlaceFormat = Literal["aligned", "gmberton", "gsv-cities"]
PLACE_FORMATS: tuple[PlaceFormat, ...] = get_args(PlaceFormat)


@dataclass(frozen=True)
class PlaceImages:
    """paths[i] shows place labels[i]; labels are 0..places-1. ``order``: a position
    along the route per place (aligned traversals), else None."""

    name: str
    paths: tuple[Path, ...]
    labels: NDArray[np.int64]
    order: NDArray[np.int64] | None = None

    @property
    def places(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.paths)} paths, {len(self.labels)} labels")


def _relabel(name: str, paths: list[Path], keys: list[object], min_images: int) -> PlaceImages:
    """Integer labels 0..P-1 for the places with at least ``min_images`` images."""
    groups: dict[object, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    kept = [k for k in groups if len(groups[k]) >= min_images]
    if not kept:
        raise ValueError(
            f"{name}: no place has {min_images} or more images "
            f"({len(paths)} images in {len(groups)} places); lower images_per_place"
        )
    out_paths: list[Path] = []
    labels: list[int] = []
    for label, k in enumerate(kept):
        for i in groups[k]:
            out_paths.append(paths[i])
            labels.append(label)
    return PlaceImages(name, tuple(out_paths), np.asarray(labels, dtype=np.int64))


def read_aligned_places(
    root: Path, *, split: str | None, frames_per_place: int, min_images: int
) -> PlaceImages:
    """Every image sub-folder of ``root`` is one traversal; equal names are one place."""
    if frames_per_place < 1:
        raise ValueError(f"frames_per_place must be >= 1, got {frames_per_place}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise ValueError(f"{root}: aligned traversals need two or more image folders")
    names = [p.name for p in list_images(folders[0])]
    for f in folders[1:]:
        other = [p.name for p in list_images(f)]
        if other != names:
            raise ValueError(
                f"{f}: its file names differ from {folders[0]}'s: not frame-aligned traversals"
            )
    frames = segment_range(len(names), split) if split else range(len(names))
    paths: list[Path] = []
    keys: list[object] = []
    for j in frames:
        for f in folders:
            paths.append(f / names[j])
            keys.append((j - frames.start) // frames_per_place)
    places = _relabel(f"{root.name}@{split}" if split else root.name, paths, keys, min_images)
    # Keys are already in route order, and _relabel keeps first-seen order.
    order = np.arange(places.places, dtype=np.int64)
    return PlaceImages(places.name, places.paths, places.labels, order)


def read_gmberton_places(root: Path, *, cell_m: float, min_images: int) -> PlaceImages:
    """All images under ``root`` with UTM names; one place per ``cell_m`` grid cell."""
    if cell_m <= 0:
        raise ValueError(f"cell_m must be positive, got {cell_m}")
    paths = sorted(p for p in root.rglob("*@*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{root}: no gmberton images (@UTM_east@UTM_north@...@.jpg)")
    keys: list[object] = []
    for p in paths:
        east, north = utm_from_name(p)
        keys.append((int(east // cell_m), int(north // cell_m)))
    return _relabel(root.name, paths, keys, min_images)


def read_gsv_cities(root: Path, *, cities: tuple[str, ...] | None, min_images: int) -> PlaceImages:
    """GSV-Cities: one CSV per city (``place_id`` and the fields of the image's name)."""
    frames = root / "Dataframes"
    if not frames.is_dir():
        raise FileNotFoundError(f"{root}: no Dataframes/ folder (GSV-Cities layout)")
    csvs = sorted(frames.glob("*.csv"))
    if cities is not None:
        wanted = set(cities)
        csvs = [c for c in csvs if c.stem in wanted]
        missing = wanted - {c.stem for c in csvs}
        if missing:
            raise FileNotFoundError(f"{frames}: no CSV for cities {sorted(missing)}")
    if not csvs:
        raise ValueError(f"{frames}: no <city>.csv files")
    paths: list[Path] = []
    keys: list[object] = []
    for table in csvs:
        city = table.stem
        with table.open(newline="") as fh:
            for row in csv.DictReader(fh):
                stem = root / "Images" / city / gsv_image_stem(row)
                jpg = stem.with_name(stem.name + ".JPG")
                paths.append(jpg if jpg.is_file() else stem.with_name(stem.name + ".jpg"))
                keys.append((city, int(row["place_id"])))
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise FileNotFoundError(
            f"{root}: {len(absent)} images named in Dataframes/ are missing (e.g. {absent[0]})"
        )
    return _relabel(root.name, paths, keys, min_images)


def gsv_image_stem(row: dict[str, str]) -> str:
    """The name GSV-Cities gives an image, without its .JPG: the row's city code
    (``city_id``), 7-digit place id, year, 2-digit month, 3-digit heading, latitude,
    longitude and panorama id, joined by ``_`` (as its README documents)."""
    try:
        return (
            f"{row['city_id']}_{int(row['place_id']):07d}_{int(row['year']):04d}_"
            f"{int(row['month']):02d}_{int(row['northdeg']):03d}_{row['lat']}_{row['lon']}_"
            f"{row['panoid']}"
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"GSV-Cities: bad row {row} ({exc})") from None


def detect_place_format(root: Path) -> PlaceFormat:
    if (root / "Dataframes").is_dir() and (root / "Images").is_dir():
        return "gsv-cities"
    if any(root.rglob("@*@*.jpg")) or (root / "database").is_dir():
        return "gmberton"
    return "aligned"


def load_places(
    root: str | Path,
    format: PlaceFormat | None = None,
    *,
    split: str | None = None,
    frames_per_place: int = 2,
    cell_m: float = 25.0,
    cities: tuple[str, ...] | None = None,
    min_images: int = 2,
) -> PlaceImages:
    """Place-labelled images of a dataset folder or name. ``split`` applies to aligned
    traversals (data/splits.py); the other layouts are training sets as a whole."""
    r = resolve_dataset(root)
    fmt = format or detect_place_format(r)
    if split is not None and fmt != "aligned":
        raise ValueError(f"{r}: --split needs aligned traversals; {fmt} data is used whole")
    if fmt == "aligned":
        return read_aligned_places(
            r, split=split, frames_per_place=frames_per_place, min_images=min_images
        )
    if fmt == "gmberton":
        return read_gmberton_places(r, cell_m=cell_m, min_images=min_images)
    if fmt == "gsv-cities":
        return read_gsv_cities(r, cities=cities, min_images=min_images)
    raise ValueError(f"unknown place format {fmt!r}; choose from {PLACE_FORMATS}")
