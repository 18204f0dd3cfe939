"""Held-out segments: fixed boundaries, guard frames, datasets and folders cut alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpr_embedded.data.datasets import load_dataset
from vpr_embedded.data.splits import GUARD_FRAMES, parse_folder, segment_range, split_paths
from vpr_embedded.quantize import find_images


def test_segments_of_nordland_part1_are_disjoint_and_guarded() -> None:
    train, val, test = (segment_range(1788, s) for s in ("train", "val", "test"))
    assert (train.start, train.stop) == (0, 1073)
    assert (val.start, val.stop) == (1083, 1341)
    assert (test.start, test.stop) == (1351, 1788)
    assert val.start - train.stop == GUARD_FRAMES
    assert test.start - val.stop == GUARD_FRAMES


def test_unknown_or_too_short_segments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown segment 'dev'"):
        segment_range(100, "dev")
    with pytest.raises(ValueError, match="too short"):
        segment_range(40, "val")


def test_a_split_dataset_keeps_its_own_places_only(shared_data: Path) -> None:
    whole = load_dataset(shared_data / "nordland_part1")
    test = load_dataset(shared_data / "nordland_part1", split="test")
    assert test.name == "nordland_part1@test"
    assert len(test.references) == len(test.queries) == 437
    assert test.references[0] == whole.references[1351]
    assert test.queries[-1] == whole.queries[-1]
    # Positives index the cut references and never reach outside the segment.
    for i, p in enumerate(test.positives):
        assert p.min() >= 0 and p.max() < 437
        assert np.isin(i, p)
    # The first query's positives lost the two references before the segment.
    assert list(test.positives[0]) == [0, 1, 2]


def test_splits_are_refused_for_layouts_without_route_order(shared_data: Path) -> None:
    with pytest.raises(ValueError, match="frame-aligned traversals"):
        load_dataset(shared_data / "corridor", split="test")


def test_a_folder_segment_is_the_same_cut(shared_data: Path) -> None:
    summer = shared_data / "nordland_part1" / "summer"
    all_paths = find_images(summer)
    train = find_images(f"{summer}@train")
    assert train == all_paths[:1073]
    assert split_paths(all_paths, None) == all_paths
    assert parse_folder(f"{summer}@val") == (summer, "val")
    with pytest.raises(ValueError, match="unknown segment 'summer' after @"):
        parse_folder("/nowhere@summer")


def test_a_folder_whose_name_holds_an_at_sign_is_taken_whole(tmp_path: Path) -> None:
    odd = tmp_path / "run@train"
    odd.mkdir()
    assert parse_folder(odd) == (odd, None)
