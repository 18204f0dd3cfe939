"""The pad-free 180-degree-rotated deployment form gives the same descriptors."""

from __future__ import annotations

import pytest
import torch

from vpr_embedded.data.images import to_tensor
from vpr_embedded.models import build_model
from vpr_embedded.models.backbones import StaticSameConv2d
from vpr_embedded.models.rotate import rotated_180
from vpr_embedded.models.vpr import Preprocessing


@pytest.mark.parametrize("name", ["efficientnet_lite0-gem", "efficientnet_lite0-netvlad"])
@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_rotated_model_on_rotated_image_gives_the_same_descriptor(
    name: str, size: tuple[int, int]
) -> None:
    torch.manual_seed(0)
    model = build_model(name, input_size=size, pretrained=False).eval()
    model.head_initialised = True
    assert any(any(m.pads) for m in model.modules() if isinstance(m, StaticSameConv2d))
    rot = rotated_180(model)
    assert rot is not None
    assert not any(any(m.pads) for m in rot.modules() if isinstance(m, StaticSameConv2d))
    x = torch.randn(3, 3, *size)
    with torch.no_grad():
        ref, ours = model(x), rot(x.flip(2, 3))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    # the original is untouched
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, rtol=0, atol=0)


def test_no_rotated_form_when_it_gains_nothing_or_changes_the_descriptor() -> None:
    assert rotated_180(build_model("resnet18-gem", input_size=(64, 64))) is None  # no pads
    assert (
        rotated_180(build_model("efficientnet_lite0-mixvpr", input_size=(64, 64), pretrained=False))
        is None
    )  # MixVPR mixes positions: rotating would change the descriptor
    odd = build_model("efficientnet_lite0-gem", input_size=(65, 65), pretrained=False)
    assert rotated_180(odd) is None  # odd sizes: every "same" pad is symmetric already


def test_preprocessing_rotates_the_image() -> None:
    from PIL import Image

    im = Image.new("RGB", (4, 2))
    im.putpixel((0, 0), (255, 0, 0))
    plain = to_tensor(im, Preprocessing(2, 4))
    turned = to_tensor(im, Preprocessing(2, 4, rotate_180=True))
    torch.testing.assert_close(turned, plain.flip(1, 2))
    assert turned[0, 1, 3] > turned[0, 0, 0]  # the red corner moved to the bottom right
