"""Distillation into another architecture: the relation loss, a short run, refusals, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vpr_embedded.cli import main
from vpr_embedded.distill import DistillConfig, distill, relation_loss
from vpr_embedded.models import build_model, load_checkpoint
from vpr_embedded.models.ops import l2_normalize
from vpr_embedded.quantize import sample_folders

SIZE = (64, 64)


def test_relation_loss_is_zero_only_for_the_same_relations() -> None:
    g = torch.Generator().manual_seed(0)
    t = l2_normalize(torch.randn(8, 32, generator=g))
    rotation, _ = torch.linalg.qr(torch.randn(32, 32, generator=g))
    cfg = DistillConfig()
    # Same pairwise similarities in another basis (and another size): no loss.
    wider = torch.cat([t @ rotation, torch.zeros(8, 16)], dim=1)
    assert float(relation_loss(wider, t, cfg)) == pytest.approx(0.0, abs=1e-5)
    other = l2_normalize(torch.randn(8, 48, generator=g))
    assert float(relation_loss(other, t, cfg)) > 0.01


def test_short_distillation_lowers_the_loss(shared_data: Path) -> None:
    torch.manual_seed(0)
    teacher = build_model("efficientnet_lite0-gem", input_size=SIZE, pretrained=True)
    student = build_model("resnet18-gem", input_size=SIZE)
    paths = sample_folders([shared_data / "corridor" / "ref"], 2000)
    cfg = DistillConfig(epochs=4, batch_size=16, lr=1e-3, progress=False)
    history = distill(student, teacher, paths, cfg)
    assert len(history) == 4 and history[-1] < history[0]
    assert not student.training and student(torch.zeros(1, 3, *SIZE)).shape == (1, 512)


def test_distillation_refusals(shared_data: Path) -> None:
    teacher = build_model("efficientnet_lite0-gem", input_size=SIZE)
    paths = sample_folders([shared_data / "gardens_point_sample" / "ref"], 100)
    other_size = build_model("resnet18-gem", input_size=(32, 32))
    with pytest.raises(ValueError, match="same way"):
        distill(other_size, teacher, paths, DistillConfig(progress=False))
    with pytest.raises(ValueError, match="too few"):
        distill(build_model("resnet18-gem", input_size=SIZE), teacher, paths, DistillConfig())


def test_distill_config_is_checked() -> None:
    for bad in ({"epochs": 0}, {"batch_size": 1}, {"lr": 0.0}, {"temperature": -1.0}):
        with pytest.raises(ValueError):
            DistillConfig(**bad)  # type: ignore[arg-type]


def test_distill_cli(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "r18.pt"
    cmd = ["distill", "--teacher", "efficientnet_lite0-gem", "--student", "resnet18-gem",
           "--images", str(shared_data / "gardens_point_sample" / "ref"), "--input-size", "64",
           "64", "--epochs", "1", "--batch-size", "4", "--out", str(out)]  # fmt: skip
    assert main([*cmd, "--device", "nowhere"]) == 2 and not out.exists()
    assert main(["distill", "--teacher", "efficientnet_lite0-gem", "--student", "resnet18-gem",
                 "--out", str(out)]) == 2  # fmt: skip
    assert main(cmd) == 0
    again = tmp_path / "again.pt"
    assert main([*cmd[:-1], str(again)]) == 0
    first, second = load_checkpoint(out).state_dict(), load_checkpoint(again).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)  # --seed repeats a run
    model = load_checkpoint(out)
    assert model.config.backbone == "resnet18" and "distilled" in model.config.display_name
    log = json.loads((tmp_path / "r18.pt.json").read_text())
    assert len(log["images"]) == 10 and len(log["epoch_losses"]) == 1
