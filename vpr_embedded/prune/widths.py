"""Read a (pruned) model's widths back into a ModelConfig, and rebuild it without
torch-pruning: the checkpoint is then ``build_model(config)`` + a strict state_dict."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from vpr_embedded.models.backbones import (
    BasicBlock,
    Bottleneck,
    EfficientNetLite0,
    EfficientNetWidths,
    MBConv,
    ResNet,
    ResNetWidths,
)
from vpr_embedded.models.vpr import AggregatorConfig, ModelConfig, VPRModel, build_model
from vpr_embedded.prune.heads import pruner_for


def backbone_widths(
    backbone: nn.Module, previous: ResNetWidths | None = None
) -> ResNetWidths | EfficientNetWidths:
    """Widths read from the modules (not from the stale ``widths`` attribute)."""
    if isinstance(backbone, EfficientNetLite0):
        blocks = tuple(
            (int(b._depthwise_conv.out_channels), int(b._project_conv.out_channels))
            for b in backbone._blocks
            if isinstance(b, MBConv)
        )
        head = int(backbone._conv_head.out_channels) if backbone.has_head else 0
        return EfficientNetWidths(int(backbone._conv_stem.out_channels), blocks, head)
    if isinstance(backbone, ResNet):
        std = previous or ResNetWidths.standard(backbone.arch)
        stages = [backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4]
        outs: list[int] = []
        mids: list[tuple[tuple[int, ...], ...]] = []
        for s, stage in enumerate(stages):
            if stage is None:  # truncated after layer3: keep the unused stage's widths
                outs.append(std.stage_out[s])
                mids.append(std.block_mid[s])
                continue
            bm: list[tuple[int, ...]] = []
            for blk in stage:
                if isinstance(blk, Bottleneck):
                    bm.append((int(blk.conv1.out_channels), int(blk.conv2.out_channels)))
                    out = int(blk.conv3.out_channels)
                else:
                    assert isinstance(blk, BasicBlock)
                    bm.append((int(blk.conv1.out_channels),))
                    out = int(blk.conv2.out_channels)
            outs.append(out)
            mids.append(tuple(bm))
        return ResNetWidths(int(backbone.conv1.out_channels), tuple(outs), tuple(mids))
    raise TypeError(f"unsupported backbone {type(backbone).__name__}")


def aggregator_config(agg: nn.Module, previous: AggregatorConfig) -> AggregatorConfig:
    """The aggregator's (possibly pruned) widths, read by its head pruner."""
    return pruner_for(agg).read_config(agg, previous)


def read_config(model: VPRModel) -> ModelConfig:
    """ModelConfig with the widths the modules have now."""
    cfg = model.config
    prev = cfg.backbone_widths if isinstance(cfg.backbone_widths, ResNetWidths) else None
    return replace(
        cfg,
        backbone_widths=backbone_widths(model.backbone, prev),
        aggregator=aggregator_config(model.aggregator, cfg.aggregator),
        pretrained=False,
    )


def rebuild(model: VPRModel) -> VPRModel:
    """A fresh VPRModel from the read-back config with the pruned weights loaded
    strictly: proves the checkpoint needs no torch-pruning, and refreshes derived
    attributes (out_dim, descriptor_dim, depthwise groups) that in-place slicing skips."""
    fresh = build_model(read_config(model))
    fresh.load_state_dict(model.state_dict(), strict=True)
    fresh.head_initialised = model.head_initialised
    return fresh.eval()
