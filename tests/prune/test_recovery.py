"""Recovery options: augmentation labelled by a live teacher, cosine lr, weight averaging,
weight soups."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vpr_embedded.models import VPRModel, build_model
from vpr_embedded.prune import RecoveryConfig
from vpr_embedded.prune.recovery import (
    Kept,
    RecoveryData,
    WeightAverage,
    augment,
    make_batch,
    recover,
    teacher_outputs,
)

SIZE = (64, 64)


def images(n: int = 8) -> torch.Tensor:
    return torch.randn(n, 3, *SIZE, generator=torch.Generator().manual_seed(3))


def test_augment_is_seeded_and_changes_every_image() -> None:
    x = images()
    a = augment(x, torch.Generator().manual_seed(0))
    b = augment(x, torch.Generator().manual_seed(0))
    c = augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert all(not torch.allclose(a[i], x[i], atol=1e-3) for i in range(len(x)))


def test_augmented_batch_is_labelled_by_the_teacher_on_the_view() -> None:
    torch.manual_seed(0)
    teacher = build_model("efficientnet_lite0-gem", input_size=SIZE, pretrained=False).eval()
    x = images(4)
    desc, feat = teacher_outputs(teacher, x, progress=False)
    data = RecoveryData(x, desc, feat)
    idx = torch.arange(4)
    cached = make_batch(data, idx, torch.device("cpu"))
    torch.testing.assert_close(cached.teacher_desc, desc)
    view = make_batch(data, idx, torch.device("cpu"), teacher, torch.Generator().manual_seed(0))
    assert not torch.allclose(view.images, x)
    with torch.no_grad():
        torch.testing.assert_close(view.teacher_desc, teacher(view.images))


def test_weight_average_warms_up_then_follows_the_decay() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    avg = WeightAverage([p], decay=0.9)
    with torch.no_grad():
        p.fill_(1.0)
    avg.update()  # warm-up decay min(0.9, 1/10) = 0.1: mostly the new value
    torch.testing.assert_close(avg.average[0], torch.full((3,), 0.9))
    for _ in range(200):
        avg.update()
    avg.apply()
    torch.testing.assert_close(p.detach(), torch.ones(3))


def _student_and_data(shared_data: Path) -> tuple[VPRModel, RecoveryData, Kept, VPRModel]:
    from vpr_embedded.data.images import load_tensor
    from vpr_embedded.prune import rebuild

    torch.manual_seed(0)
    teacher = build_model("efficientnet_lite0-gem", input_size=SIZE, pretrained=True).eval()
    paths = sorted((shared_data / "gardens_point_sample" / "ref").glob("*.jpg"))
    x = torch.stack([load_tensor(p, teacher.preprocessing) for p in paths])
    desc, feat = teacher_outputs(teacher, x, progress=False)
    student = rebuild(teacher)
    with torch.no_grad():  # a perturbed copy: something to recover
        for prm in student.parameters():
            prm.add_(0.05 * torch.randn_like(prm))
    kept = Kept(torch.arange(teacher.backbone.out_channels), torch.arange(teacher.descriptor_dim))
    return student, RecoveryData(x, desc, feat), kept, teacher


@pytest.mark.parametrize(
    "options",
    [
        {"augment": True},
        {"lr_schedule": "cosine", "ema": 0.9},
        {"augment": True, "lr_schedule": "cosine", "ema": 0.9},
        {"soup": 2},
    ],
)
def test_recovery_options_lower_the_loss(shared_data: Path, options: dict[str, object]) -> None:
    from vpr_embedded.prune.recovery import mean_loss

    student, data, kept, teacher = _student_and_data(shared_data)
    cfg = RecoveryConfig(epochs=3, batch_size=5, lr=1e-3, progress=False, **options)  # type: ignore[arg-type]
    before = mean_loss(student, data, kept, cfg)
    hist = recover(student, data, kept, cfg, teacher=teacher)
    after = mean_loss(student, data, kept, cfg)
    assert len(hist) == 3 and all(math.isfinite(h) for h in hist)
    assert after < before


def test_cosine_schedule_ends_near_zero(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    student, data, kept, _ = _student_and_data(shared_data)
    seen: list[float] = []
    step = torch.optim.AdamW.step

    def spy(self: torch.optim.AdamW, *a: object, **k: object) -> object:
        seen.append(self.param_groups[0]["lr"])
        return step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    cfg = RecoveryConfig(epochs=2, batch_size=5, lr=1e-3, lr_schedule="cosine", progress=False)
    recover(student, data, kept, cfg)
    assert seen[0] == pytest.approx(1e-3)
    assert seen == sorted(seen, reverse=True) and seen[-1] < 0.2e-3


def test_augmented_recovery_needs_the_teacher_and_bad_options_are_refused(
    shared_data: Path,
) -> None:
    student, data, kept, _ = _student_and_data(shared_data)
    with pytest.raises(ValueError, match="needs the teacher"):
        recover(student, data, kept, RecoveryConfig(augment=True, progress=False))
    with pytest.raises(ValueError, match="lr schedule"):
        RecoveryConfig(lr_schedule="step")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ema"):
        RecoveryConfig(ema=1.0)
    with pytest.raises(ValueError, match="soup"):
        RecoveryConfig(soup=0)
    with pytest.raises(ValueError, match="final epochs"):
        RecoveryConfig(final_epochs=-1)


def test_soup_is_the_mean_of_its_members(shared_data: Path) -> None:
    from vpr_embedded.prune.recovery import SOUP_SEED_STRIDE

    student, data, kept, _ = _student_and_data(shared_data)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    one = RecoveryConfig(epochs=1, batch_size=5, lr=1e-3, progress=False)
    members = []
    for m in range(3):  # member m trains alone on the data order of its own seed
        student.load_state_dict(start)
        recover(student, data, kept, one, seed=7 + m * SOUP_SEED_STRIDE)
        members.append({k: v.clone() for k, v in student.state_dict().items()})
    student.load_state_dict(start)
    recover(
        student,
        data,
        kept,
        RecoveryConfig(epochs=1, batch_size=5, lr=1e-3, progress=False, soup=3),
        seed=7,
    )
    soup = student.state_dict()
    moved = 0
    for k, v in soup.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, sum(m[k] for m in members) / 3)
            moved += int(not torch.allclose(members[0][k], members[1][k]))
        else:
            assert torch.equal(v, start[k])  # BN counters frozen
    assert moved > 0  # the members differ: the data orders are not the same


def test_augment_flag_decides_whether_views_are_drawn(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vpr_embedded.prune.recovery as recovery

    calls: list[int] = []

    def counting(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        calls.append(len(x))
        return augment(x, gen)

    monkeypatch.setattr(recovery, "augment", counting)
    student, data, kept, teacher = _student_and_data(shared_data)
    recover(student, data, kept, RecoveryConfig(epochs=1, batch_size=5, progress=False))
    assert calls == []
    cfg = RecoveryConfig(epochs=1, batch_size=5, augment=True, progress=False)
    recover(student, data, kept, cfg, teacher=teacher)
    assert calls == [5, 5]  # every batch of the 10 images is a new view
