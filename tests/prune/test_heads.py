"""One pruner per aggregation head: every registered head has one, a head of your own plugs
in through ``customized``, and an unknown head is refused with what to do."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from vpr_embedded.models import build_model
from vpr_embedded.models.vpr import AGGREGATORS, HEAD_BUILDERS, AggregatorConfig
from vpr_embedded.prune.heads import DescriptorStructure, HeadPruner, pruner_for


@pytest.mark.parametrize("head", AGGREGATORS)
def test_every_head_has_a_builder_and_a_pruner(head: str) -> None:
    assert head in HEAD_BUILDERS
    model = build_model(f"efficientnet_lite0-{head}", input_size=(64, 64), pretrained=False)
    pruner = pruner_for(model.aggregator)
    st = pruner.structure(model)
    assert st.units * st.dims_per_unit == model.descriptor_dim
    assert pruner.unit_weights(model).shape[0] == st.units


class TwoHalves(nn.Module):
    """A toy head: a 1x1 conv, then the mean of the left and right halves of the map."""

    def __init__(self, channels: int, out: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, out, 1)
        self.out_dim = 2 * out

    def forward(self, x: Tensor) -> Tensor:
        y = self.proj(x)
        w = y.shape[-1] // 2
        return torch.cat([y[..., :w].mean((2, 3)), y[..., w:].mean((2, 3))], dim=1)


class TwoHalvesPruner(HeadPruner):
    def structure(self, model: nn.Module) -> DescriptorStructure:  # type: ignore[override]
        return DescriptorStructure("two-halves", model.aggregator.proj.out_channels, 2)


def test_a_head_of_your_own_plugs_in_through_customized() -> None:
    head = TwoHalves(8, 4)
    with pytest.raises(ValueError, match="does not support the TwoHalves head: add a HeadPruner"):
        pruner_for(head)
    pruner = pruner_for(head, customized={TwoHalves: TwoHalvesPruner()})
    assert isinstance(pruner, TwoHalvesPruner)

    class Subclass(TwoHalves):
        pass

    assert isinstance(pruner_for(Subclass(8, 4), {TwoHalves: TwoHalvesPruner()}), TwoHalvesPruner)


def test_read_config_follows_the_pruned_widths() -> None:
    from vpr_embedded.prune import prune_descriptor_units
    from vpr_embedded.prune.widths import aggregator_config

    model = build_model("efficientnet_lite0-mixvpr", input_size=(64, 64), pretrained=False)
    prune_descriptor_units(model, torch.arange(0, 512, 2))
    cfg = aggregator_config(model.aggregator, model.config.aggregator)
    assert isinstance(cfg, AggregatorConfig) and cfg.out_channels == 256
    assert model.descriptor_dim == 256 * 4
