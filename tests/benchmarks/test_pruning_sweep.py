"""The pruning sweep of benchmarks/pruning_sweep: point specs, teacher labels, its flags."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from pruning_sweep.config import parse_point, points_for
from pruning_sweep.measure import file_label, model_label, teacher_model

from vpr_embedded.models import build_model, load_checkpoint, save_checkpoint


def effnet() -> object:
    torch.manual_seed(0)
    return build_model("efficientnet_lite0-gem", input_size=(64, 64), pretrained=False)


def test_sweep_labels_a_checkpoint_teacher_by_name_and_content(tmp_path: Path) -> None:
    m = effnet()
    save_checkpoint(m, tmp_path / "a.pt")
    m.config = replace(m.config, name="mine")
    save_checkpoint(m, tmp_path / "b.pt")
    registry = teacher_model("resnet18-gem", 0)
    assert model_label("resnet18-gem") == file_label("resnet18-gem", registry) == "resnet18-gem"
    assert model_label(str(tmp_path / "b.pt")) == "mine"
    a, b = (file_label(str(tmp_path / n), load_checkpoint(tmp_path / n)) for n in ("a.pt", "b.pt"))
    assert a.startswith("efficientnet_lite0-gem-") and b.startswith("mine-") and a[-8:] != b[-8:]


def test_sweep_points() -> None:
    assert parse_point("0.3:0.5").resolve(1280) == 640
    assert parse_point("0.2:960").resolve(1280) == 960
    assert parse_point("0.2").resolve(1280) is None
    specs = ("0.3:0.5", "resnet18-gem@0.5:256#1,2")
    assert [(p.ratio, s) for p, s in points_for("resnet18-gem", specs)] == [
        (0.3, (0,)),
        (0.5, (1, 2)),
    ]
    assert [p.ratio for p, _ in points_for("efficientnet_lite0-gem", specs)] == [0.3]


def test_sweep_on_segments_judges_the_test_segment_and_tables_every_column() -> None:
    from pruning_sweep.config import SweepConfig
    from pruning_sweep.measure import recovery_folders
    from pruning_sweep.report import judged, table

    keys = ["nordland_part1@val", "nordland_part1@test", "corridor"]
    assert judged(keys) == ["corridor", "nordland_part1@test"]
    assert judged(["nordland_part1", "gardens_point_sample"]) == ["nordland_part1"]
    assert judged(["nordland_part1@val"]) == ["nordland_part1@val"]
    rc = {k: {"1": 0.25, "5": 0.5} for k in keys}
    row = {"model": "m", "kind": "unpruned", "ratio": 0.0, "seed": 0, "dim": 8, "recall": rc}
    head, _, line = table([row]).splitlines()
    assert "R@1 nord val" in head and "R@5 nord test" in head and "mem cut nord test" in head
    assert line.count("0.250") == 3 and line.count("0.500") == 3
    given = SweepConfig(recover_images=("data/nordland_part1/summer@train",))
    assert recovery_folders(given) == (Path("data/nordland_part1/summer@train"),)
    assert all(p.name in ("ref", "summer") for p in recovery_folders(SweepConfig()))
