"""Descriptor pruning: remove descriptor dimensions by pruning the structure that
produces them, with our own slicing for every head (custom pruners for MixVPR and
NetVLAD; Torch-Pruning's tracing is not trusted on them, DESIGN.md).

Structural units and the descriptor dims each one owns:
- GeM/avg without projection: backbone output channel c -> dim c (pruned through the
  backbone's DependencyGraph: last conv filters + BN + coupled layers);
- GeM with projection: projection row r -> dim r;
- ConvAP: 1x1 conv filter c -> dims c*P .. c*P+P-1 (P = pooled cells);
- MixVPR: channel_proj row c -> dims c*R .. c*R+R-1 (R = out_rows);
- NetVLAD: cluster k -> dims k*D .. k*D+D-1 (D = local feature channels).
Unit importance: "l1" (L1 norm of the unit's weights) or "energy" (mean squared value
of the unit's dims in the unit-norm descriptors of calibration images: what the unit
contributes to the cosine similarities the matcher ranks by).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vpr_embedded.models.aggregators import AvgPool, GeM, MixVPR, NetVLAD
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.prune.backbone import keep_to_drop, last_conv, prune_out_channels


@dataclass(frozen=True)
class DescriptorStructure:
    """kind: "backbone" | "gem_fc" | "convap" | "mixvpr" | "netvlad"; units: how many
    prunable units; dims_per_unit: descriptor dims each unit owns (contiguous)."""

    kind: str
    units: int
    dims_per_unit: int


def structure(model: VPRModel) -> DescriptorStructure:
    agg = model.aggregator
    if isinstance(agg, AvgPool) or (isinstance(agg, GeM) and agg.fc is None):
        return DescriptorStructure("backbone", model.backbone.out_channels, 1)
    if isinstance(agg, GeM):
        assert agg.fc is not None
        return DescriptorStructure("gem_fc", agg.fc.out_features, 1)
    if isinstance(agg, MixVPR):
        return DescriptorStructure(
            "mixvpr", agg.channel_proj.out_features, agg.row_proj.out_features
        )
    if isinstance(agg, NetVLAD):
        return DescriptorStructure("netvlad", agg.clusters, agg.dim)
    if model.config.aggregator.name == "convap":
        conv = agg.channel_pool
        assert isinstance(conv, nn.Conv2d)
        p = model.config.aggregator.pool
        return DescriptorStructure("convap", conv.out_channels, p[0] * p[1])
    raise ValueError(f"descriptor pruning does not support the {type(agg).__name__} head")


def target_units(model: VPRModel, dim: int, round_to: int) -> int:
    """Units to keep for a descriptor of about ``dim`` dims (channel-like units rounded
    to ``round_to``; NetVLAD clusters are counted one by one)."""
    st = structure(model)
    units = dim / st.dims_per_unit
    if st.kind == "netvlad":
        return max(1, min(st.units, round(units)))
    step = round_to if st.units >= round_to else 1
    return max(step, min(st.units, step * round(units / step)))


def l1_importance(model: VPRModel) -> Tensor:
    """Per-unit L1 norm of the weights that produce the unit."""
    st = structure(model)
    agg = model.aggregator
    with torch.no_grad():
        if st.kind == "backbone":
            w = last_conv(model.backbone).weight
        elif st.kind == "gem_fc":
            assert isinstance(agg, GeM) and agg.fc is not None
            w = agg.fc.weight
        elif st.kind == "mixvpr":
            assert isinstance(agg, MixVPR)
            w = agg.channel_proj.weight
        elif st.kind == "netvlad":
            assert isinstance(agg, NetVLAD)
            w = agg.conv.weight
        else:
            conv = agg.channel_pool
            assert isinstance(conv, nn.Conv2d)
            w = conv.weight
        return w.detach().abs().flatten(1).sum(1).float().cpu()


def energy_importance(model: VPRModel, images: Tensor, batch_size: int = 32) -> Tensor:
    """Per-unit mean squared descriptor value over ``images`` (preprocessed batch)."""
    st = structure(model)
    acc = torch.zeros(st.units * st.dims_per_unit)
    model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            d = model(images[i : i + batch_size].to(dev))
            acc += (d * d).sum(0).cpu()
    return (acc / max(len(images), 1)).view(st.units, st.dims_per_unit).sum(1)


def _slice(p: Tensor, keep: Tensor, dim: int) -> nn.Parameter:
    return nn.Parameter(p.detach().index_select(dim, keep.to(p.device)).clone())


def slice_linear(m: nn.Linear, keep: Tensor, *, out: bool) -> None:
    m.weight = _slice(m.weight, keep, 0 if out else 1)
    if out:
        if m.bias is not None:
            m.bias = _slice(m.bias, keep, 0)
        m.out_features = len(keep)
    else:
        m.in_features = len(keep)


def slice_conv(m: nn.Conv2d, keep: Tensor, *, out: bool) -> None:
    m.weight = _slice(m.weight, keep, 0 if out else 1)
    if out:
        if m.bias is not None:
            m.bias = _slice(m.bias, keep, 0)
        m.out_channels = len(keep)
    else:
        m.in_channels = len(keep)


def slice_aggregator_input(model: VPRModel, keep: Tensor) -> None:
    """Make the head take only the backbone output channels ``keep`` (sorted indices):
    used when the backbone's output channels change under the head."""
    agg = model.aggregator
    if isinstance(agg, AvgPool):
        agg.out_dim = len(keep)
    elif isinstance(agg, GeM):
        if agg.fc is not None:
            slice_linear(agg.fc, keep, out=False)
        else:
            agg.out_dim = len(keep)
    elif isinstance(agg, MixVPR):
        slice_linear(agg.channel_proj, keep, out=False)
    elif isinstance(agg, NetVLAD):
        slice_conv(agg.conv, keep, out=False)
        agg.centroids = _slice(agg.centroids, keep, 1)
        agg.dim = len(keep)
        agg.out_dim = agg.clusters * agg.dim
    elif model.config.aggregator.name == "convap":
        conv = agg.channel_pool
        assert isinstance(conv, nn.Conv2d)
        slice_conv(conv, keep, out=False)
    else:
        raise ValueError(f"cannot slice the input of {type(agg).__name__}")


def prune_descriptor_units(model: VPRModel, keep: Tensor) -> None:
    """Keep only the structural units ``keep`` (sorted unit indices), in place."""
    st = structure(model)
    keep = torch.sort(keep.long().cpu()).values
    agg = model.aggregator
    if st.kind == "backbone":
        conv = last_conv(model.backbone)
        prune_out_channels(
            model.backbone, conv, keep_to_drop(st.units, keep), model.config.input_size
        )
        model.backbone.out_channels = conv.out_channels
        slice_aggregator_input(model, keep)
    elif st.kind == "gem_fc":
        assert isinstance(agg, GeM) and agg.fc is not None
        slice_linear(agg.fc, keep, out=True)
        agg.out_dim = len(keep)
    elif st.kind == "mixvpr":
        assert isinstance(agg, MixVPR)
        slice_linear(agg.channel_proj, keep, out=True)
        agg.out_dim = len(keep) * agg.row_proj.out_features
    elif st.kind == "netvlad":
        assert isinstance(agg, NetVLAD)
        slice_conv(agg.conv, keep, out=True)
        agg.centroids = _slice(agg.centroids, keep, 0)
        agg.clusters = len(keep)
        agg.out_dim = agg.clusters * agg.dim
    else:
        pool = agg.channel_pool
        assert isinstance(pool, nn.Conv2d)
        slice_conv(pool, keep, out=True)
    model.descriptor_dim = len(keep) * st.dims_per_unit


def select_units(scores: Tensor, n_keep: int) -> Tensor:
    """Indices of the ``n_keep`` highest-scoring units, sorted (stable on ties)."""
    order = torch.argsort(scores, descending=True, stable=True)
    return torch.sort(order[:n_keep]).values


def dims_of_units(units: Tensor, dims_per_unit: int) -> Tensor:
    """Descriptor dims owned by ``units`` (for feature/teacher bookkeeping)."""
    base = units.long()[:, None] * dims_per_unit
    return (base + torch.arange(dims_per_unit)[None, :]).flatten()
