"""Models: build, export, unit-norm output, aggregators vs textbook, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vpr_embedded.models import (
    AggregatorConfig,
    GeM,
    MixVPR,
    ModelConfig,
    NetVLAD,
    build_model,
    detect_checkpoint_format,
    list_models,
    load_checkpoint,
    save_checkpoint,
)
from vpr_embedded.models.aggregators import ConvAP
from vpr_embedded.models.backbones import EfficientNetLite0, ResNet, same_padding
from vpr_embedded.models.ops import l2_normalize

torch.manual_seed(0)


def test_registry_has_required_names() -> None:
    names = set(list_models())
    for n in (
        "efficientnet_lite0-gem",
        "efficientnet_lite0-avg",
        "efficientnet_lite0-mixvpr",
        "efficientnet_lite0-netvlad",
        "resnet18-gem",
        "resnet50-mixvpr",
        "resnet50-convap",
    ):
        assert n in names


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_unit_norm(name: str) -> None:
    m = build_model(name, input_size=(64, 64), pretrained=False)
    with torch.no_grad():
        y = m(torch.randn(2, 3, 64, 64))
    assert y.shape == (2, m.descriptor_dim)
    torch.testing.assert_close(y.norm(dim=1), torch.ones(2))


@pytest.mark.parametrize(
    ("name", "dim"),
    [
        ("efficientnet_lite0-gem", 1280),
        ("efficientnet_lite0-mixvpr", 2048),
        ("efficientnet_lite0-netvlad", 20480),
        ("resnet18-convap", 2048),
        ("resnet50-mixvpr", 4096),
        ("resnet50-gem", 2048),
    ],
)
def test_documented_dimensions(name: str, dim: int) -> None:
    m = build_model(name, input_size=(64, 64), pretrained=False)
    assert m.descriptor_dim == dim


@pytest.mark.parametrize(
    "name",
    [
        "resnet18-gem",
        "resnet34-avg",
        "resnet50-gem",
        "efficientnet_lite0-gem",
        "efficientnet_lite0-avg",
        "efficientnet_lite0-mixvpr",
        "efficientnet_lite0-netvlad",
        "resnet18-convap",
    ],
)
def test_torch_export(name: str) -> None:
    m = build_model(name, input_size=(64, 64), pretrained=False)
    x = torch.randn(1, 3, 64, 64)
    ep = torch.export.export(m, (x,))
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(x), m(x), rtol=1e-4, atol=1e-5)
    banned = {
        "aten.pow.Tensor_Scalar",
        "aten.sum.dim_IntList",
        "aten.layer_norm.default",
        "aten.adaptive_max_pool2d.default",
    }
    used = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not (used & banned), used & banned


def test_resnet_keys_match_torchvision_names() -> None:
    keys = set(ResNet("resnet50", 4).state_dict())
    assert {
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv3.weight",
        "layer1.0.downsample.0.weight",
        "layer4.2.bn3.weight",
    } <= keys
    assert len([k for k in keys if not k.endswith("num_batches_tracked")]) == 265  # tv minus fc
    assert not any(k.startswith("layer4") for k in ResNet("resnet18", 3).state_dict())


def test_pruned_widths_from_config() -> None:
    cfg = ModelConfig("resnet18", AggregatorConfig("gem"), (64, 64))
    from vpr_embedded.models import ResNetWidths

    w = ResNetWidths(
        32, (32, 64, 100, 200), (((16,), (24,)), ((40,), (48,)), ((56,), (64,)), ((72,), (80,)))
    )
    m = build_model(ModelConfig.from_dict({**cfg.to_dict(), "backbone_widths": w.__dict__}))
    assert m.descriptor_dim == 200
    assert m.backbone.conv1.weight.shape[0] == 32


def test_same_padding_tf() -> None:
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(225, 3, 2) == (1, 1)
    assert same_padding(112, 5, 1) == (2, 2)


def test_efficientnet_imagenet_weights_load_strict() -> None:
    m = build_model("efficientnet_lite0-gem", input_size=(96, 128))
    assert isinstance(m.backbone, EfficientNetLite0)
    w = m.backbone._conv_stem.weight
    assert float(w.detach().abs().sum()) > 0
    assert m.backbone._conv_stem.pads == (0, 1, 0, 1)
    with torch.no_grad():
        y = m(torch.randn(1, 3, 96, 128))
    assert y.shape == (1, 1280)


# ----------------------------------------------------------- textbook references


def test_l2_normalize_equals_f_normalize() -> None:
    x = torch.randn(4, 33)
    torch.testing.assert_close(l2_normalize(x), F.normalize(x, dim=-1))


def test_gem_textbook() -> None:
    x = torch.rand(2, 8, 5, 7)
    ref = F.avg_pool2d(x.clamp(min=1e-6).pow(3), (5, 7)).pow(1.0 / 3).flatten(1)
    torch.testing.assert_close(GeM(8)(x), ref, rtol=1e-5, atol=1e-6)


def test_convap_textbook() -> None:
    x = torch.rand(2, 8, 6, 6)
    m = ConvAP(8, (6, 6), 4, (2, 2))
    ref = F.adaptive_avg_pool2d(m.channel_pool(x), (2, 2)).flatten(1)
    torch.testing.assert_close(m(x), ref)


def test_mixvpr_textbook() -> None:
    torch.manual_seed(1)
    x = torch.rand(2, 8, 3, 4)
    m = MixVPR(8, (3, 4), out_channels=6, out_rows=2, mix_depth=2)
    with torch.no_grad():  # random (trained-like) weights incl. layer norm affine
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    y = x.flatten(2)
    for layer in m.mix:
        ln, fc1, _, fc2 = layer.mix
        y = y + fc2(F.relu(fc1(F.layer_norm(y, (12,), ln.weight, ln.bias))))
    y = m.row_proj(m.channel_proj(y.permute(0, 2, 1)).permute(0, 2, 1)).flatten(1)
    torch.testing.assert_close(m(x), y, rtol=1e-4, atol=1e-5)


def test_mixvpr_untrained_init_is_stripe_pooling() -> None:
    x = torch.rand(1, 8, 4, 3)
    m = MixVPR(8, (4, 3), out_channels=8, out_rows=2, mix_depth=2)
    m.init_untrained()
    q = m.channel_proj.weight
    torch.testing.assert_close(q @ q.T, torch.eye(8), atol=1e-5, rtol=0)
    top = x[:, :, :2].mean((2, 3)) @ q.T
    torch.testing.assert_close(m(x).view(1, 8, 2)[:, :, 0], top, atol=1e-5, rtol=1e-5)


def test_netvlad_textbook() -> None:
    torch.manual_seed(2)
    x = torch.rand(2, 6, 3, 3)
    m = NetVLAD(6, clusters=4)
    with torch.no_grad():
        m.conv.weight.copy_(torch.randn_like(m.conv.weight) * 3)
    xn = F.normalize(x, dim=1)
    a = F.softmax(m.conv(xn).view(2, 4, -1), dim=1)
    xf = xn.view(2, 6, -1)
    res = xf.unsqueeze(1) - m.centroids.unsqueeze(0).unsqueeze(-1)
    vlad = (res * a.unsqueeze(2)).sum(-1)
    ref = F.normalize(vlad, dim=2).view(2, -1)
    torch.testing.assert_close(m(x), ref, rtol=1e-4, atol=1e-5)


def test_netvlad_kmeans_init() -> None:
    import numpy as np

    m = NetVLAD(6, clusters=3)
    m.init_from_features(np.random.default_rng(0).random((300, 6)).astype(np.float32))
    assert m.alpha > 0
    torch.testing.assert_close(m.conv.weight[:, :, 0, 0].norm(dim=1), torch.full((3,), m.alpha))


# ------------------------------------------------------------------- checkpoints


def _rand(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if not v.is_floating_point():
            out[k] = v
        elif k.endswith("running_var"):
            out[k] = torch.rand_like(v) + 0.5
        else:
            out[k] = torch.randn_like(v) * 0.2
    return out


def _check_same(a: torch.nn.Module, b: torch.nn.Module, size: int = 64) -> None:
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))


def test_native_checkpoint_roundtrip(tmp_path: Path) -> None:
    m = build_model("resnet18-netvlad", input_size=(64, 64))
    m.load_state_dict(_rand(m.state_dict()))
    save_checkpoint(m, tmp_path / "m.pt")
    m2 = load_checkpoint(tmp_path / "m.pt")
    assert m2.config == m.config and m2.head_initialised
    _check_same(m.eval(), m2)


def test_mixvpr_release_checkpoint(tmp_path: Path) -> None:
    cfg = ModelConfig(
        "resnet18",
        AggregatorConfig("mixvpr", out_channels=32, out_rows=2, mix_depth=2),
        (64, 64),
        last_layer=3,
    )
    m = build_model(cfg)
    m.load_state_dict(_rand(m.state_dict()))
    sd = {f"backbone.model.{k}": v for k, v in m.backbone.state_dict().items()}
    sd.update({f"aggregator.{k}": v for k, v in m.aggregator.state_dict().items()})
    torch.save({"epoch": 3, "state_dict": sd}, tmp_path / "mix.ckpt")
    m2 = load_checkpoint(tmp_path / "mix.ckpt")
    assert m2.config.input_size == (64, 64)
    assert m2.config.aggregator.out_channels == 32
    _check_same(m, m2)


def test_cosplace_checkpoint(tmp_path: Path) -> None:
    cfg = ModelConfig(
        "resnet18", AggregatorConfig("gem", out_dim=16, normalize_input=True), (64, 64)
    )
    m = build_model(cfg)
    m.load_state_dict(_rand(m.state_dict()))
    names = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    sd = {}
    for k, v in m.backbone.state_dict().items():
        head, _, rest = k.partition(".")
        sd[f"backbone.{names[head]}.{rest}"] = v
    sd["aggregation.1.p"] = torch.ones(1) * 3
    sd["aggregation.3.weight"] = m.aggregator.fc.weight.detach()
    sd["aggregation.3.bias"] = m.aggregator.fc.bias.detach()
    torch.save(sd, tmp_path / "cos.pth")
    assert detect_checkpoint_format(sd) == "cosplace"
    m2 = load_checkpoint(tmp_path / "cos.pth", input_size=(64, 64))
    _check_same(m, m2)
    # reference: CosPlace's head L2Norm -> GeM -> Linear -> L2Norm
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        f = F.normalize(m.backbone(x), dim=1)
        g = F.avg_pool2d(f.clamp(min=1e-6).pow(3), f.shape[-2:]).pow(1 / 3).flatten(1)
        ref = F.normalize(F.linear(g, sd["aggregation.3.weight"], sd["aggregation.3.bias"]))
        torch.testing.assert_close(m2(x), ref, rtol=1e-4, atol=1e-5)


def test_torchvision_checkpoint(tmp_path: Path) -> None:
    r = ResNet("resnet18", 4)
    sd = _rand(r.state_dict())
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    torch.save(sd, tmp_path / "resnet18.pth")
    m = load_checkpoint(tmp_path / "resnet18.pth", input_size=(64, 64))
    assert m.config.backbone == "resnet18" and m.config.aggregator.name == "gem"
    torch.testing.assert_close(m.backbone.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"])


def test_bad_checkpoint_clear_error(tmp_path: Path) -> None:
    torch.save({"foo.weight": torch.ones(1)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="unrecognised checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
