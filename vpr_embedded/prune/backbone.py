"""Backbone channel pruning with Torch-Pruning (DependencyGraph + MetaPruner).

The DependencyGraph is built on the backbone alone: the VPR heads are handled by our
own slicing (descriptor.py), because Torch-Pruning's generic tracing mis-handles or
hangs on MixVPR/NetVLAD. The backbone's last conv is an ignored layer, so its output
channels (the head's input, and for GeM without projection the descriptor itself) are
never pruned here; its *inputs* still are, which is what we want.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from vpr_embedded.models.backbones import EfficientNetLite0, ResNet
from vpr_embedded.prune.schedule import round_width


def last_conv(backbone: nn.Module) -> nn.Conv2d:
    """The conv producing the backbone's output channels."""
    if isinstance(backbone, EfficientNetLite0):
        if backbone.has_head:
            return backbone._conv_head
        proj = backbone._blocks[-1]._project_conv
        assert isinstance(proj, nn.Conv2d)
        return proj
    if isinstance(backbone, ResNet):
        stage = backbone.layer4 if backbone.layer4 is not None else backbone.layer3
        blk = stage[-1]
        conv = blk.conv3 if hasattr(blk, "conv3") else blk.conv2
        assert isinstance(conv, nn.Conv2d)
        return conv
    raise TypeError(f"unsupported backbone {type(backbone).__name__}")


def stage_of(name: str, backbone: nn.Module) -> int:
    """Stage index of a module name: 0 = stem, then the network's stages (EfficientNet:
    7 MBConv stages, ResNet: layer1..4); the head conv counts as the last stage."""
    if isinstance(backbone, EfficientNetLite0):
        from vpr_embedded.models.backbones import _LITE0_STAGES

        if name.startswith("_blocks."):
            i = int(name.split(".")[1])
            for s, (reps, *_rest) in enumerate(_LITE0_STAGES):
                if i < reps:
                    return s + 1
                i -= reps
        return 0 if name.startswith(("_conv_stem", "_bn0")) else len(_LITE0_STAGES)
    if name.startswith("layer"):
        return int(name[5])
    return 0


def n_stages(backbone: nn.Module) -> int:
    return 8 if isinstance(backbone, EfficientNetLite0) else 5


def conv_widths(backbone: nn.Module) -> dict[str, int]:
    """Output channels of every conv, by module name (stable across rebuilds)."""
    return {n: int(m.out_channels) for n, m in backbone.named_modules() if isinstance(m, nn.Conv2d)}


def make_importance(kind: str) -> Any:
    """Torch-Pruning importance: l2 = group-mean L2 magnitude, taylor = |w * dL/dw|
    (needs .grad filled by the caller), random = control."""
    import torch_pruning as tp

    if kind == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean")
    if kind == "taylor":
        return tp.importance.GroupTaylorImportance(group_reduction="mean")
    if kind == "random":
        return tp.importance.RandomImportance()
    raise ValueError(f"unknown importance {kind!r}; use l2, taylor or random")


def prune_backbone(
    backbone: nn.Module,
    original: dict[str, int],
    ratios: list[float],
    *,
    importance: str = "l2",
    round_to: int = 8,
    global_pruning: bool = False,
    global_ratio: float = 0.0,
    fill_grads: Callable[[], object] | None = None,
    input_size: tuple[int, int] = (224, 224),
) -> dict[str, int]:
    """Prune ``backbone`` in place towards per-stage cumulative ratios of its ORIGINAL
    widths (``original``: conv name -> teacher width; ``ratios[stage]``).

    Local mode (default) asks each group for ``round(orig * (1 - r))`` channels rounded
    to ``round_to``, so repeated steps (and resumed runs, whose modules are new objects)
    land on the same widths. Global mode ranks all groups together and removes
    ``global_ratio`` of the current channels. ``fill_grads`` runs after graph tracing and
    before ranking (Taylor importance reads ``.grad``). Returns the new conv widths.
    """
    import torch_pruning as tp

    example = torch.zeros(1, 3, *input_size, device=next(backbone.parameters()).device)
    names = dict((m, n) for n, m in backbone.named_modules())
    ratio_dict: dict[nn.Module, float] = {}
    if not global_pruning:
        for m, n in names.items():
            if not isinstance(m, nn.Conv2d) or n not in original:
                continue
            target = round_width(
                original[n] * (1.0 - ratios[stage_of(n, backbone)]), round_to, m.out_channels
            )
            # +0.5: MetaPruner floors channels * (1 - ratio); land exactly on target.
            ratio_dict[m] = max(0.0, 1.0 - (target + 0.5) / m.out_channels)
    pruner = tp.pruner.MetaPruner(
        backbone,
        example,
        importance=make_importance(importance),
        global_pruning=global_pruning,
        pruning_ratio=global_ratio if global_pruning else 0.0,
        pruning_ratio_dict=ratio_dict or None,
        max_pruning_ratio=0.9,
        ignored_layers=[last_conv(backbone)],
        round_to=round_to,
    )
    if fill_grads is not None:
        backbone.zero_grad(set_to_none=True)
        fill_grads()
    for group in _groups(pruner):
        group.prune()
    backbone.zero_grad(set_to_none=True)
    return conv_widths(backbone)


def _groups(pruner: Any) -> Iterator[Any]:
    it: Iterator[Any] = pruner.step(interactive=True)
    yield from it


def prune_out_channels(
    backbone: nn.Module, conv: nn.Conv2d, drop: list[int], input_size: tuple[int, int]
) -> None:
    """Remove output channels ``drop`` of ``conv`` and everything coupled to them
    (BN, depthwise convs, residual partners, the next layers' inputs) via DepGraph."""
    import torch_pruning as tp

    if not drop:
        return
    example = torch.zeros(1, 3, *input_size, device=next(backbone.parameters()).device)
    dg = tp.DependencyGraph().build_dependency(backbone, example_inputs=example)
    group = dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(drop))
    group.prune()


def keep_to_drop(n: int, keep: Tensor) -> list[int]:
    mask = torch.ones(n, dtype=torch.bool)
    mask[keep] = False
    return [int(i) for i in torch.nonzero(mask).flatten()]
