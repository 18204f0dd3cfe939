"""A pad-free deployment form of models with TF "same" padding (EfficientNet-Lite).

TF "same" padding of a stride-2 convolution on an even size is asymmetric: (b, b + 1).
PyTorch convolutions only pad symmetrically, so the model carries explicit pad ops, and
XNNPACK spends 15 % of the int8 latency of EfficientNet-Lite0 on them. Rotated by 180
degrees (image and every kernel), the pad becomes (b + 1, b), and a convolution with
symmetric padding b + 1 computes exactly that: its last window never reaches the extra
trailing pad. Everything else in the backbone (1x1 and symmetric convolutions, BN,
ReLU6, residual sums) commutes with the rotation, and global pooling heads do not see
it. So the rotated model on the rotated image gives the same descriptor, with no pads.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from vpr_embedded.models.backbones import StaticSameConv2d
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.preprocessing import Preprocessing

# Heads that pool over all positions without looking at where they are.
ROTATION_INVARIANT_HEADS = ("gem", "avg", "netvlad")


def _rotated_padding(pads: tuple[int, int, int, int]) -> tuple[int, int] | None:
    """Symmetric (h, w) padding equal to ``pads`` (left, right, top, bottom) rotated by
    180 degrees, or None if there is none."""
    left, right, top, bottom = pads
    if right - left not in (0, 1) or bottom - top not in (0, 1):
        return None
    return bottom, right


def rotated_180(model: VPRModel) -> VPRModel | None:
    """A copy of ``model`` that takes the image rotated by 180 degrees and has no pad
    ops, or None when rotating gains nothing (no asymmetric padding) or would change the
    descriptor (a head that keeps spatial layout: MixVPR, ConvAP)."""
    asymmetric = [
        m for m in model.backbone.modules() if isinstance(m, StaticSameConv2d) and any(m.pads)
    ]
    if not asymmetric or model.config.aggregator.name not in ROTATION_INVARIANT_HEADS:
        return None
    if any(_rotated_padding(m.pads) is None for m in asymmetric):
        return None
    rot = copy.deepcopy(model)
    with torch.no_grad():
        for m in rot.backbone.modules():
            if not isinstance(m, nn.Conv2d):
                continue
            if m.kernel_size != (1, 1):
                m.weight.copy_(m.weight.flip(2, 3))
            if isinstance(m, StaticSameConv2d) and any(m.pads):
                padding = _rotated_padding(m.pads)
                assert padding is not None
                m.padding = padding
                m.pads = (0, 0, 0, 0)
    return rot.eval()


def deployment_form(model: VPRModel, pad_free: bool = True) -> tuple[VPRModel, Preprocessing]:
    """The model a bundle runs and the preprocessing its input needs: the pad-free
    rotated form where there is one (and ``pad_free``), else ``model`` itself."""
    rotated = rotated_180(model) if pad_free else None
    if rotated is None:
        return model, model.preprocessing
    return rotated, replace(model.preprocessing, rotate_180=True)
