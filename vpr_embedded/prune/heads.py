"""One pruner per aggregation head, looked up by the head's type.

A head pruner knows, for its head, the structural units that own descriptor dims, the
weights that produce each unit (for L1 importance), how to keep only some units (the
output side), how to take fewer backbone channels (the input side, when the backbone's
output is pruned under it) and how to read its widths back into an AggregatorConfig.
This is Torch-Pruning's "one pruner per layer type", for the heads its tracing is not
trusted on (DESIGN.md); a new head adds a class here or is passed in ``customized``
(as Torch-Pruning's ``customized_pruners``), and nothing else changes.

Units and the dims each owns:
- AvgPool, GeM without projection: backbone output channel c -> dim c (pruned through the
  backbone's DependencyGraph: last conv filters + BN + coupled layers);
- GeM with projection: projection row r -> dim r;
- ConvAP: 1x1 conv filter c -> dims c*P .. c*P+P-1 (P = pooled cells);
- MixVPR: channel_proj row c -> dims c*R .. c*R+R-1 (R = out_rows);
- NetVLAD: cluster k -> dims k*D .. k*D+D-1 (D = local feature channels).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from torch import Tensor, nn

from vpr_embedded.models.aggregators import AvgPool, ConvAP, GeM, MixVPR, NetVLAD
from vpr_embedded.models.vpr import AggregatorConfig, VPRModel
from vpr_embedded.prune.backbone import keep_to_drop, last_conv, prune_out_channels


@dataclass(frozen=True)
class DescriptorStructure:
    """kind: "backbone" | "gem_fc" | "convap" | "mixvpr" | "netvlad"; units: how many
    prunable units; dims_per_unit: descriptor dims each unit owns (contiguous);
    count_units_one_by_one: units are not channel-like (NetVLAD clusters), so targets are
    not rounded to multiples of 8."""

    kind: str
    units: int
    dims_per_unit: int
    count_units_one_by_one: bool = False


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


class HeadPruner:
    """The interface; the default output side prunes the backbone's last channels (heads
    whose dims are backbone channels)."""

    def structure(self, model: VPRModel) -> DescriptorStructure:
        return DescriptorStructure("backbone", model.backbone.out_channels, 1)

    def unit_weights(self, model: VPRModel) -> Tensor:
        """Weights producing each unit, unit first (L1 importance sums the rest)."""
        return last_conv(model.backbone).weight

    def prune_units(self, model: VPRModel, keep: Tensor) -> None:
        """Keep only units ``keep`` (sorted), in place."""
        conv = last_conv(model.backbone)
        units = self.structure(model).units
        prune_out_channels(model.backbone, conv, keep_to_drop(units, keep), model.config.input_size)
        model.backbone.out_channels = conv.out_channels
        self.slice_input(model.aggregator, keep)

    def slice_input(self, head: nn.Module, keep: Tensor) -> None:
        """Make ``head`` take only backbone output channels ``keep`` (sorted)."""
        raise NotImplementedError

    def read_config(self, head: nn.Module, previous: AggregatorConfig) -> AggregatorConfig:
        """``previous`` with the widths ``head`` has now."""
        return previous


class AvgPoolPruner(HeadPruner):
    def slice_input(self, head: nn.Module, keep: Tensor) -> None:
        assert isinstance(head, AvgPool)
        head.out_dim = len(keep)


class GeMPruner(HeadPruner):
    """Without projection the dims are backbone channels; with one, projection rows."""

    def structure(self, model: VPRModel) -> DescriptorStructure:
        head = model.aggregator
        assert isinstance(head, GeM)
        if head.fc is None:
            return super().structure(model)
        return DescriptorStructure("gem_fc", head.fc.out_features, 1)

    def unit_weights(self, model: VPRModel) -> Tensor:
        head = model.aggregator
        assert isinstance(head, GeM)
        return super().unit_weights(model) if head.fc is None else head.fc.weight

    def prune_units(self, model: VPRModel, keep: Tensor) -> None:
        head = model.aggregator
        assert isinstance(head, GeM)
        if head.fc is None:
            super().prune_units(model, keep)
            return
        slice_linear(head.fc, keep, out=True)
        head.out_dim = len(keep)

    def slice_input(self, head: nn.Module, keep: Tensor) -> None:
        assert isinstance(head, GeM)
        if head.fc is not None:
            slice_linear(head.fc, keep, out=False)
        else:
            head.out_dim = len(keep)

    def read_config(self, head: nn.Module, previous: AggregatorConfig) -> AggregatorConfig:
        assert isinstance(head, GeM)
        return replace(previous, out_dim=head.fc.out_features if head.fc is not None else None)


class ConvAPPruner(HeadPruner):
    def structure(self, model: VPRModel) -> DescriptorStructure:
        head = model.aggregator
        assert isinstance(head, ConvAP)
        cells = head.pool[0] * head.pool[1]
        return DescriptorStructure("convap", head.channel_pool.out_channels, cells)

    def unit_weights(self, model: VPRModel) -> Tensor:
        head = model.aggregator
        assert isinstance(head, ConvAP)
        return head.channel_pool.weight

    def prune_units(self, model: VPRModel, keep: Tensor) -> None:
        head = model.aggregator
        assert isinstance(head, ConvAP)
        slice_conv(head.channel_pool, keep, out=True)
        head.out_dim = len(keep) * head.pool[0] * head.pool[1]

    def slice_input(self, head: nn.Module, keep: Tensor) -> None:
        assert isinstance(head, ConvAP)
        slice_conv(head.channel_pool, keep, out=False)

    def read_config(self, head: nn.Module, previous: AggregatorConfig) -> AggregatorConfig:
        assert isinstance(head, ConvAP)
        return replace(previous, out_channels=int(head.channel_pool.out_channels))


class MixVPRPruner(HeadPruner):
    def structure(self, model: VPRModel) -> DescriptorStructure:
        head = model.aggregator
        assert isinstance(head, MixVPR)
        return DescriptorStructure(
            "mixvpr", head.channel_proj.out_features, head.row_proj.out_features
        )

    def unit_weights(self, model: VPRModel) -> Tensor:
        head = model.aggregator
        assert isinstance(head, MixVPR)
        return head.channel_proj.weight

    def prune_units(self, model: VPRModel, keep: Tensor) -> None:
        head = model.aggregator
        assert isinstance(head, MixVPR)
        slice_linear(head.channel_proj, keep, out=True)
        head.out_dim = len(keep) * head.row_proj.out_features

    def slice_input(self, head: nn.Module, keep: Tensor) -> None:
        assert isinstance(head, MixVPR)
        slice_linear(head.channel_proj, keep, out=False)

    def read_config(self, head: nn.Module, previous: AggregatorConfig) -> AggregatorConfig:
        assert isinstance(head, MixVPR)
        hidden = tuple(
            int(lin.out_features)
            for layer in head.mix
            for lin in [layer.mix[1]]  # type: ignore[index]
            if isinstance(lin, nn.Linear)
        )
        return replace(
            previous,
            out_channels=int(head.channel_proj.out_features),
            out_rows=int(head.row_proj.out_features),
            mixer_hidden=hidden,
        )


class NetVLADPruner(HeadPruner):
    def structure(self, model: VPRModel) -> DescriptorStructure:
        head = model.aggregator
        assert isinstance(head, NetVLAD)
        return DescriptorStructure("netvlad", head.clusters, head.dim, count_units_one_by_one=True)

    def unit_weights(self, model: VPRModel) -> Tensor:
        head = model.aggregator
        assert isinstance(head, NetVLAD)
        return head.conv.weight

    def prune_units(self, model: VPRModel, keep: Tensor) -> None:
        head = model.aggregator
        assert isinstance(head, NetVLAD)
        slice_conv(head.conv, keep, out=True)
        head.centroids = _slice(head.centroids, keep, 0)
        head.clusters = len(keep)
        head.out_dim = head.clusters * head.dim

    def slice_input(self, head: nn.Module, keep: Tensor) -> None:
        assert isinstance(head, NetVLAD)
        slice_conv(head.conv, keep, out=False)
        head.centroids = _slice(head.centroids, keep, 1)
        head.dim = len(keep)
        head.out_dim = head.clusters * head.dim

    def read_config(self, head: nn.Module, previous: AggregatorConfig) -> AggregatorConfig:
        assert isinstance(head, NetVLAD)
        return replace(previous, clusters=int(head.conv.out_channels))


HEAD_PRUNERS: dict[type[nn.Module], HeadPruner] = {
    AvgPool: AvgPoolPruner(),
    GeM: GeMPruner(),
    ConvAP: ConvAPPruner(),
    MixVPR: MixVPRPruner(),
    NetVLAD: NetVLADPruner(),
}


def pruner_for(
    head: nn.Module, customized: Mapping[type[nn.Module], HeadPruner] | None = None
) -> HeadPruner:
    """The pruner of ``head``'s type (``customized`` first), by its class or a base class."""
    table = {**HEAD_PRUNERS, **(customized or {})}
    for cls in type(head).__mro__:
        if cls in table:
            return table[cls]
    raise ValueError(
        f"descriptor pruning does not support the {type(head).__name__} head: add a "
        "HeadPruner for it (vpr_embedded.prune.heads)"
    )
