"""Condition augmentation: seeded, shape-preserving, never a mirror."""

from __future__ import annotations

import pytest
import torch

from vpr_embedded.data.augment import ConditionAugment


def test_the_same_seed_gives_the_same_views() -> None:
    x = torch.randn(6, 3, 16, 32)
    a, b = ConditionAugment(3)(x), ConditionAugment(3)(x)
    assert torch.equal(a, b)
    assert a.shape == x.shape
    assert not torch.equal(ConditionAugment(4)(x), a)


def test_views_stay_close_to_their_image_and_are_not_mirrored() -> None:
    # A left-to-right ramp: a mirror would turn its correlation with the original negative.
    ramp = torch.linspace(-1, 1, 64).expand(8, 3, 32, 64).clone()
    out = ConditionAugment(0)(ramp)
    for i in range(8):
        c = torch.corrcoef(torch.stack([out[i].flatten(), ramp[i].flatten()]))[0, 1]
        assert c > 0.5


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        ConditionAugment(0)(torch.zeros(3, 8, 8))
