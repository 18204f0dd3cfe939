"""PT2E int8 quantization: calibration images, what gets quantized, dynamic mode."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vpr_embedded.models import AggregatorConfig, build_model
from vpr_embedded.quantize import (
    QuantizeConfig,
    calibration_tensors,
    find_images,
    quantize_model,
    sample_evenly,
)


def _targets(gm: torch.nn.Module) -> Counter[str]:
    assert isinstance(gm, torch.fx.GraphModule)
    return Counter(str(n.target) for n in gm.graph.nodes if n.op == "call_function")


def test_find_and_sample_images(shared_data: Path, tmp_path: Path) -> None:
    paths = find_images(shared_data / "corridor")  # recursive: ref/ and query/
    assert len(paths) == 222
    picked = sample_evenly(paths, 10)
    assert len(picked) == 10 and len(set(picked)) == 10
    assert sample_evenly(paths[:3], 10) == paths[:3]
    with pytest.raises(ValueError, match="no images"):
        find_images(tmp_path)
    with pytest.raises(FileNotFoundError):
        find_images(tmp_path / "missing")


def test_static_int8_quantizes_backbone_only(shared_data: Path) -> None:
    torch.manual_seed(0)
    m = build_model("resnet18-gem", input_size=(64, 64))
    xs, _ = calibration_tensors(shared_data / "corridor" / "ref", m.preprocessing, 4)
    q = quantize_model(m, xs, QuantizeConfig(progress=False))
    t = _targets(q)
    assert t["quantized_decomposed.dequantize_per_channel.default"] == 20  # every conv
    assert t["aten.log.default"] == 1 and t["aten.exp.default"] == 1  # GeM stays float
    gm = q
    assert isinstance(gm, torch.fx.GraphModule)
    for n in gm.graph.nodes:  # nothing after the backbone is re-quantized
        if n.op == "call_function" and n.target in (torch.ops.aten.log.default,):
            assert all("quantize" not in str(u.target) for u in n.users)
    with torch.no_grad():
        ref = torch.cat([m(x) for x in xs])
        out = torch.cat([q(x) for x in xs])  # the exported graph is batch 1
    assert out.shape == ref.shape
    assert torch.nn.functional.cosine_similarity(out, ref).min() > 0.9


def test_relu6_gets_its_own_observer() -> None:
    """conv -> ReLU6 is annotated like conv -> ReLU (the clamp is fused, [0, 6] gets all
    256 levels); zero padding keeps its input's qparams."""
    torch.manual_seed(0)
    m = build_model("efficientnet_lite0-gem", input_size=(64, 64), pretrained=False)
    cfg = QuantizeConfig(keep_float=(), progress=False)
    q = quantize_model(m, [torch.randn(1, 3, 64, 64)], cfg)
    assert isinstance(q, torch.fx.GraphModule)
    relu6 = [n for n in q.graph.nodes if n.target == torch.ops.aten.relu6.default]
    assert len(relu6) == 33
    for r in relu6:  # conv -> relu6 directly, no quantize in between; relu6 output quantized
        assert r.args[0].target == torch.ops.aten.conv2d.default, r.args[0]
        assert any("quantize_per_tensor" in str(u.target) for u in r.users)
    pads = [n for n in q.graph.nodes if n.target == torch.ops.aten.pad.default]
    assert pads and all("dequantize" in str(p.args[0].target) for p in pads[1:])


def test_efficientnet_keeps_stem_and_first_block_float_by_default() -> None:
    torch.manual_seed(0)
    m = build_model("efficientnet_lite0-gem", input_size=(64, 64), pretrained=False)
    x = [torch.randn(1, 3, 64, 64)]
    convs = sum(isinstance(c, torch.nn.Conv2d) for c in m.backbone.modules())
    q = quantize_model(m, x, QuantizeConfig(progress=False))
    per_channel = "quantized_decomposed.dequantize_per_channel.default"
    assert _targets(q)[per_channel] == convs - 3  # stem, block 0 depthwise + project
    q = quantize_model(m, x, QuantizeConfig(keep_float=("_conv_head",), progress=False))
    assert _targets(q)[per_channel] == convs - 1
    with pytest.raises(ValueError, match="not a submodule"):
        quantize_model(m, x, QuantizeConfig(keep_float=("_stem",), progress=False))


def test_dynamic_quantizes_linear_layers() -> None:
    m = build_model(
        replace(
            build_model("resnet18-gem", input_size=(64, 64)).config,
            aggregator=AggregatorConfig("gem", out_dim=32),
        )
    )
    q = quantize_model(m, [], QuantizeConfig(mode="dynamic", progress=False))
    t = _targets(q)
    assert any("choose_qparams" in k for k in t), t
    assert t["quantized_decomposed.dequantize_per_channel.default"] == 1  # the linear only


def test_static_needs_calibration_images() -> None:
    m = build_model("resnet18-gem", input_size=(64, 64))
    with pytest.raises(ValueError, match="calibration"):
        quantize_model(m, [], QuantizeConfig(progress=False))
    with pytest.raises(ValueError, match="expected"):
        quantize_model(m, [torch.zeros(1, 3, 32, 32)], QuantizeConfig(progress=False))
