"""Pruning: widths, export, checkpoints without torch-pruning, descriptor importance,
recovery and resumable runs. Tiny inputs (64 px) keep the whole file fast."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vpr_embedded.cli import main
from vpr_embedded.models import (
    AggregatorConfig,
    EfficientNetWidths,
    ModelConfig,
    ResNetWidths,
    VPRModel,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from vpr_embedded.prune import (
    PruneConfig,
    RecoveryConfig,
    energy_importance,
    l1_importance,
    prune_descriptor_units,
    prune_model,
    rebuild,
    select_units,
    structure,
)
from vpr_embedded.prune.backbone import conv_widths, prune_backbone
from vpr_embedded.prune.schedule import dim_schedule, ratio_schedule, round_width

SIZE = (64, 64)


def effnet(agg: str = "gem", pretrained: bool = False) -> VPRModel:
    torch.manual_seed(0)
    return build_model(f"efficientnet_lite0-{agg}", input_size=SIZE, pretrained=pretrained)


def resnet(agg: AggregatorConfig | None = None) -> VPRModel:
    torch.manual_seed(0)
    cfg = ModelConfig("resnet18", agg or AggregatorConfig("gem"), SIZE, last_layer=3)
    m = build_model(cfg)
    if isinstance(m.aggregator, torch.nn.Module) and agg is not None and agg.name == "netvlad":
        m.head_initialised = True
    return m


def x(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, *SIZE, generator=torch.Generator().manual_seed(1))


def test_schedules() -> None:
    assert ratio_schedule(0.4, 4, "linear") == pytest.approx([0.1, 0.2, 0.3, 0.4])
    geo = ratio_schedule(0.4, 2, "geometric")
    assert geo[-1] == pytest.approx(0.4) and (1 - geo[0]) ** 2 == pytest.approx(0.6)
    assert dim_schedule(1280, 640, 2) == [960, 640]
    assert round_width(11.2, 8, 16) == 16 and round_width(22.4, 8, 32) == 24  # rounded up
    assert round_width(3, 8, 16) == 8  # never below one multiple


def test_backbone_pruning_widths() -> None:
    m = effnet()
    orig = conv_widths(m.backbone)
    prune_backbone(m.backbone, orig, [0.3] * 8, input_size=SIZE)
    m = rebuild(m)
    w = m.config.backbone_widths
    assert isinstance(w, EfficientNetWidths)
    assert w.head == 1280  # the descriptor channels are never pruned by the backbone step
    assert w.stem == 24 and all(c % 8 == 0 for b in w.blocks for c in b)
    assert w.blocks[-1] == (round_width(1152 * 0.7, 8, 1152), round_width(320 * 0.7, 8, 320))
    assert m(x()).shape == (2, 1280)  # export: see the checkpoint test


def test_resnet_widths_multiple_of_8() -> None:
    m = resnet()
    prune_backbone(m.backbone, conv_widths(m.backbone), [0.5] * 5, input_size=SIZE)
    m = rebuild(m)
    w = m.config.backbone_widths
    assert isinstance(w, ResNetWidths)
    assert w.stem == 32 and w.stage_out[:2] == (32, 64)
    assert w.stage_out[2] == 256  # last stage output: the descriptor, kept
    assert all(c % 8 == 0 for s in w.block_mid[:3] for b in s for c in b)
    assert m(x()).shape == (2, 256)


def test_checkpoint_loads_and_exports_without_torch_pruning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = effnet()
    prune_backbone(m.backbone, conv_widths(m.backbone), [0.25] * 8, input_size=SIZE)
    m = rebuild(m)
    prune_descriptor_units(m, select_units(l1_importance(m), 512))
    m = rebuild(m)
    ref = m(x())
    save_checkpoint(m, tmp_path / "p.pt")
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # import torch_pruning now fails
    with pytest.raises(ImportError):
        import torch_pruning  # noqa: F401
    back = load_checkpoint(tmp_path / "p.pt")
    assert back.descriptor_dim == 512
    torch.testing.assert_close(back(x()), ref)
    torch.export.export(back, (x(1),))


def _pre_norm(m: VPRModel, inp: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = m.aggregator(m.backbone(inp))
    return out


@pytest.mark.parametrize("kind", ["gem", "gem_fc", "convap", "mixvpr"])
def test_descriptor_pruning_keeps_most_important(kind: str) -> None:
    if kind == "gem":
        m = effnet(pretrained=True)  # random init: all-equal (clamped) GeM energies
    elif kind == "gem_fc":
        m = resnet(AggregatorConfig("gem", out_dim=64))
    elif kind == "convap":
        m = resnet(AggregatorConfig("convap", out_channels=32, pool=(2, 2)))
    else:
        m = resnet(AggregatorConfig("mixvpr", out_channels=32, out_rows=2, mix_depth=1))
    st = structure(m)
    inp = x(4)
    before = _pre_norm(m, inp)
    scores = energy_importance(m, inp) if kind == "gem" else l1_importance(m)
    n_keep = st.units // 4
    keep = select_units(scores, n_keep)
    assert set(keep.tolist()) == set(torch.topk(scores, n_keep).indices.tolist())
    prune_descriptor_units(m, keep)
    m = rebuild(m)
    assert m.descriptor_dim == n_keep * st.dims_per_unit
    dims = (keep[:, None] * st.dims_per_unit + torch.arange(st.dims_per_unit)).flatten()
    # Per-unit heads: the kept dims are exactly the unpruned model's values.
    torch.testing.assert_close(_pre_norm(m, inp), before[:, dims], rtol=1e-4, atol=1e-5)
    torch.export.export(m, (x(1),))


def test_netvlad_cluster_pruning() -> None:
    m = resnet(AggregatorConfig("netvlad", clusters=8))
    keep = select_units(energy_importance(m, x(4)), 4)
    prune_descriptor_units(m, keep)
    m = rebuild(m)
    assert m.config.aggregator.clusters == 4 and m(x()).shape == (2, 4 * 256)


def _cfg(data: Path, **kw: object) -> PruneConfig:
    rec = RecoveryConfig(epochs=3, batch_size=5, lr=1e-3, progress=False)
    base = PruneConfig(
        backbone_ratio=0.3,
        descriptor_dim=640,
        steps=2,
        recover_images=(data / "gardens_point_sample" / "ref",),
        recovery=rec,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_two_step_recovery_lowers_distillation_loss(shared_data: Path) -> None:
    res = prune_model(effnet(pretrained=True), _cfg(shared_data), teacher_spec="t")
    assert [s.descriptor_dim for s in res.steps] == [960, 640]
    for s in res.steps:
        assert s.loss_pruned is not None and s.loss_recovered is not None
        assert s.loss_recovered < s.loss_pruned
        assert s.epoch_losses[-1] < s.epoch_losses[0]


def test_final_epochs_set_only_the_last_steps_recovery(shared_data: Path) -> None:
    rec = RecoveryConfig(epochs=1, final_epochs=3, batch_size=5, lr=1e-3, progress=False)
    res = prune_model(effnet(pretrained=True), _cfg(shared_data, recovery=rec))
    assert [len(s.epoch_losses) for s in res.steps] == [1, 3]
    last = res.steps[-1]
    assert last.loss_recovered is not None and last.loss_pruned is not None
    assert last.loss_recovered < last.loss_pruned


def test_taylor_and_random_importance_run(shared_data: Path) -> None:
    no_recovery = RecoveryConfig(epochs=0, progress=False)
    for imp in ("taylor", "random"):
        # One step: the descriptor is pruned first, so the distillation loss (and the
        # Taylor gradient) is already non-zero when the backbone is ranked.
        cfg = _cfg(shared_data, importance=imp, steps=1, recovery=no_recovery)
        res = prune_model(effnet(pretrained=True), cfg)
        assert res.model.descriptor_dim == 640
        assert res.steps[0].importance == imp


def _two_step_command(data: Path, out: Path) -> list[str]:
    """A quick two-step prune run without recovery (resumable, writes OUT.steps/)."""
    gp = str(data / "gardens_point_sample" / "ref")
    return ["prune", "--model", "efficientnet_lite0-gem", "--input-size", "64", "64",
            "--backbone-ratio", "0.2", "--descriptor-dim", "640", "--steps", "2",
            "--recover-images", gp, "--epochs", "0", "--out", str(out)]  # fmt: skip


def test_resume_and_changed_command(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.pt"
    cmd = _two_step_command(shared_data, out)
    assert main(cmd) == 0
    assert out.is_file() and (tmp_path / "p.pt.steps" / "step_002.pt").is_file()
    (tmp_path / "p.pt.steps" / "step_002.pt").unlink()  # as if killed during step 2
    res_first = load_checkpoint(tmp_path / "p.pt.steps" / "step_001.pt")
    assert res_first.descriptor_dim == 960
    assert main([*cmd, "--device", "nowhere"]) == 2  # a clear error, nothing written
    assert main([*cmd, "--device", "cpu:0"]) == 0  # the device is no part of the run
    assert load_checkpoint(out).descriptor_dim == 640
    (tmp_path / "p.pt.steps" / "step_002.pt").unlink()
    assert main(cmd) == 0
    assert load_checkpoint(out).descriptor_dim == 640
    assert load_checkpoint(out).config.name == "efficientnet_lite0-gem-pruned-r0.20-d640"
    changed = [c if c != "640" else "512" for c in cmd]
    assert main(changed) == 2  # refused with a clear message, nothing overwritten
    assert load_checkpoint(out).descriptor_dim == 640


def test_resume_of_a_run_recorded_before_newer_recovery_options(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    out = tmp_path / "p.pt"
    cmd = _two_step_command(shared_data, out)
    assert main(cmd) == 0
    run = tmp_path / "p.pt.steps" / "run.json"
    old = json.loads(run.read_text())
    for key in ("augment", "lr_schedule", "ema", "soup", "final_epochs"):  # before they existed
        del old["prune"]["recovery"][key]
    run.write_text(json.dumps(old))
    (tmp_path / "p.pt.steps" / "step_002.pt").unlink()
    assert main(cmd) == 0  # the same command resumes
    assert main([*cmd, "--ema", "0.9"]) == 2
    assert "recovery.ema" in capsys.readouterr().err  # the setting that differs, by name
    assert main([*cmd, "--soup", "2"]) == 2
    assert "recovery.soup" in capsys.readouterr().err
    assert main([*cmd, "--calib-images", "0"]) == 2
    assert "calibration images must be >= 1" in capsys.readouterr().err
    assert main([*cmd, "--final-epochs", "2"]) == 2
    assert "recovery.final_epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # parsed strictly, before any work
        main([*cmd, "--final-epochs", "-1"])
    assert refused.value.code == 2
    assert "--final-epochs: -1 is out of range: it must be at least 0" in capsys.readouterr().err
