"""Place-labelled training images from the three layouts, on trees the tests write."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vpr_embedded.data.places import detect_place_format, load_places


def _png(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (16, 8), value).save(path)


def write_aligned(
    root: Path, frames: int, conditions: tuple[str, ...] = ("summer", "winter")
) -> Path:
    for c in conditions:
        for j in range(frames):
            _png(root / c / f"{j:05d}.png", (j * 7) % 256)
    return root


def test_aligned_traversals_group_frames_into_places(tmp_path: Path) -> None:
    root = write_aligned(tmp_path / "route", 10)
    places = load_places(root, split=None, frames_per_place=2)
    assert detect_place_format(root) == "aligned"
    assert places.places == 5
    assert len(places.paths) == 20
    # Place 0 is frames 0 and 1 of both traversals.
    names = sorted(
        f"{p.parent.name}/{p.name}" for p in np.asarray(places.paths)[places.labels == 0]
    )
    assert names == ["summer/00000.png", "summer/00001.png", "winter/00000.png", "winter/00001.png"]
    assert list(places.order) == [0, 1, 2, 3, 4]


def test_aligned_training_segment_holds_no_validation_frame(tmp_path: Path) -> None:
    root = write_aligned(tmp_path / "route", 100)
    train = load_places(root, split="train", frames_per_place=1)
    frames = {int(p.stem) for p in train.paths}
    assert frames == set(range(60))


def test_misaligned_traversals_are_refused(tmp_path: Path) -> None:
    root = write_aligned(tmp_path / "route", 4)
    (root / "winter" / "00003.png").rename(root / "winter" / "00009.png")
    with pytest.raises(ValueError, match="not frame-aligned"):
        load_places(root)


def test_gmberton_names_group_by_grid_cell(tmp_path: Path) -> None:
    root = tmp_path / "gm"
    for i, (e, n) in enumerate(
        [(100.0, 200.0), (110.0, 205.0), (400.0, 200.0), (405.0, 210.0), (900.0, 900.0)]
    ):
        _png(root / "database" / f"@{e}@{n}@{i}@.jpg")
    places = load_places(root, cell_m=25.0, min_images=2)
    assert detect_place_format(root) == "gmberton"
    # Two cells with two images each; the lone image at (900, 900) is not a place.
    assert places.places == 2
    assert len(places.paths) == 4
    with pytest.raises(ValueError, match="--split needs aligned"):
        load_places(root, split="train")


def test_gsv_cities_rows_name_their_images(tmp_path: Path) -> None:
    root = tmp_path / "gsv"
    (root / "Dataframes").mkdir(parents=True)
    rows = [
        (130, 2018, 4, 15, "51.4861", "-0.0895151", "6jFjb3wGyCkcBfq4k559ag"),
        (130, 2016, 7, 2, "51.4862", "-0.0895", "Ff3OtsS4ihGSPdPjtlpEUA"),
        (7660, 2015, 6, 97, "51.5233", "-0.158693", "zFbmpj8jt8natu7IPYrh_w"),
        (7660, 2008, 9, 348, "51.5281", "-0.127114", "W3KMPec54NBqLMzmZmGv-Q"),
    ]
    with (root / "Dataframes" / "London.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["place_id", "year", "month", "northdeg", "city_id", "lat", "lon", "panoid"])
        for pid, y, m, deg, lat, lon, pano in rows:
            w.writerow([pid, y, m, deg, "London", lat, lon, pano])
            name = f"London_{pid:07d}_{y}_{m:02d}_{deg:03d}_{lat}_{lon}_{pano}.JPG"
            _png(root / "Images" / "London" / name)
    places = load_places(root)
    assert detect_place_format(root) == "gsv-cities"
    assert places.places == 2
    assert (
        places.paths[0].name
        == "London_0000130_2018_04_015_51.4861_-0.0895151_6jFjb3wGyCkcBfq4k559ag.JPG"
    )
    assert list(places.labels) == [0, 0, 1, 1]
    (root / "Images" / "London" / places.paths[3].name).unlink()
    with pytest.raises(FileNotFoundError, match="1 images named in Dataframes/ are missing"):
        load_places(root)
    with pytest.raises(FileNotFoundError, match="no CSV for cities"):
        load_places(root, cities=("Paris",))
