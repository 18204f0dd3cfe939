"""Descriptor pruning: remove descriptor dimensions by pruning the structure that
produces them. What a head's units are and how they are cut is its HeadPruner's
(prune/heads.py, one per head type); this module ranks units and applies the cut.

Unit importance: "l1" (L1 norm of the unit's weights) or "energy" (mean squared value
of the unit's dims in the unit-norm descriptors of calibration images: what the unit
contributes to the cosine similarities the matcher ranks by).
"""

from __future__ import annotations

import torch
from torch import Tensor

from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.prune.heads import DescriptorStructure, pruner_for

__all__ = [
    "DescriptorStructure",
    "dims_of_units",
    "energy_importance",
    "l1_importance",
    "prune_descriptor_units",
    "select_units",
    "slice_aggregator_input",
    "structure",
    "target_units",
]


def structure(model: VPRModel) -> DescriptorStructure:
    return pruner_for(model.aggregator).structure(model)


def target_units(model: VPRModel, dim: int, round_to: int) -> int:
    """Units to keep for a descriptor of about ``dim`` dims (channel-like units rounded
    to ``round_to``; NetVLAD clusters are counted one by one)."""
    st = structure(model)
    units = dim / st.dims_per_unit
    if st.count_units_one_by_one:
        return max(1, min(st.units, round(units)))
    step = round_to if st.units >= round_to else 1
    return max(step, min(st.units, step * round(units / step)))


def l1_importance(model: VPRModel) -> Tensor:
    """Per-unit L1 norm of the weights that produce the unit."""
    with torch.no_grad():
        w = pruner_for(model.aggregator).unit_weights(model)
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


def slice_aggregator_input(model: VPRModel, keep: Tensor) -> None:
    """Make the head take only the backbone output channels ``keep`` (sorted indices):
    used when the backbone's output channels change under the head."""
    pruner_for(model.aggregator).slice_input(model.aggregator, keep)


def prune_descriptor_units(model: VPRModel, keep: Tensor) -> None:
    """Keep only the structural units ``keep`` (sorted unit indices), in place."""
    st = structure(model)
    keep = torch.sort(keep.long().cpu()).values
    pruner_for(model.aggregator).prune_units(model, keep)
    model.descriptor_dim = len(keep) * st.dims_per_unit


def select_units(scores: Tensor, n_keep: int) -> Tensor:
    """Indices of the ``n_keep`` highest-scoring units, sorted (stable on ties)."""
    order = torch.argsort(scores, descending=True, stable=True)
    return torch.sort(order[:n_keep]).values


def dims_of_units(units: Tensor, dims_per_unit: int) -> Tensor:
    """Descriptor dims owned by ``units`` (for feature/teacher bookkeeping)."""
    base = units.long()[:, None] * dims_per_unit
    return (base + torch.arange(dims_per_unit)[None, :]).flatten()
