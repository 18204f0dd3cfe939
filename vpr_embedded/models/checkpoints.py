"""Checkpoint loading/saving: our native format, MixVPR releases, CosPlace/EigenPlaces
torch.hub weights and plain torchvision ResNet state_dicts. Always weights_only=True."""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vpr_embedded.models.backbones import RESNET_DEPTHS, ResNetWidths
from vpr_embedded.models.vpr import AggregatorConfig, ModelConfig, VPRModel, build_model

NATIVE_FORMAT = "vpr-embedded/1"
FORMATS = ("native", "mixvpr", "cosplace", "torchvision")


def file_digest(path: str | Path) -> str:
    """First 16 hex digits of the file's sha256: names a checkpoint by its content."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def save_checkpoint(model: VPRModel, path: str | Path) -> None:
    """Write ``{"format", "config", "state_dict"}``: rebuildable from the config alone."""
    torch.save(
        {
            "format": NATIVE_FORMAT,
            "config": model.config.to_dict(),
            "state_dict": model.state_dict(),
        },
        str(path),
    )


def detect_checkpoint_format(obj: Any) -> str:
    """One of FORMATS, from the loaded object's structure and key names."""
    if not isinstance(obj, dict):
        raise ValueError(f"a checkpoint must hold a dict, found {type(obj).__name__}")
    if "config" in obj and "state_dict" in obj:
        return "native"
    sd = obj.get("state_dict", obj)
    keys = [k for k in sd if isinstance(k, str)]
    if any(k.startswith("backbone.model.") for k in keys):
        return "mixvpr"
    if any(k.startswith("backbone.0.") for k in keys) and any(
        k.startswith("aggregation.") for k in keys
    ):
        return "cosplace"
    if "conv1.weight" in keys and any(k.startswith("layer1.") for k in keys):
        return "torchvision"
    raise ValueError(
        "unrecognised checkpoint layout (first keys: "
        f"{keys[:5]}); expected ours, MixVPR, CosPlace/EigenPlaces or torchvision ResNet"
    )


def resnet_from_state_dict(sd: dict[str, Tensor]) -> tuple[str, int, ResNetWidths]:
    """Architecture, truncation layer and (possibly pruned) widths from torchvision keys."""
    blocks: dict[int, set[int]] = {}
    for k in sd:
        m = re.match(r"layer(\d)\.(\d+)\.", k)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    last = max(blocks) if blocks else 0
    if last not in (3, 4):
        raise ValueError(f"ResNet state_dict ends at layer{last}: need layer3 or layer4")
    bottleneck = "layer1.0.conv3.weight" in sd
    counts = tuple(len(blocks[i]) for i in range(1, last + 1))
    arch = next(
        (
            a
            for a, (kind, depth) in RESNET_DEPTHS.items()
            if (kind == "bottleneck") == bottleneck and depth[:last] == counts
        ),
        None,
    )
    if arch is None:
        raise ValueError(f"unsupported ResNet: blocks per stage {counts}, bottleneck={bottleneck}")
    convs = ("conv1", "conv2") if bottleneck else ("conv1",)
    out_conv = "conv3" if bottleneck else "conv2"
    mids = tuple(
        tuple(
            tuple(int(sd[f"layer{s}.{i}.{c}.weight"].shape[0]) for c in convs)
            for i in range(counts[s - 1])
        )
        for s in range(1, last + 1)
    )
    outs = tuple(int(sd[f"layer{s}.0.{out_conv}.weight"].shape[0]) for s in range(1, last + 1))
    if last == 3:  # keep the standard layer4 widths for the (unused) fourth stage
        std = ResNetWidths.standard(arch)
        mids, outs = (*mids, std.block_mid[3]), (*outs, std.stage_out[3])
    return arch, last, ResNetWidths(int(sd["conv1.weight"].shape[0]), outs, mids)


def _strip(sd: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def _load(model: VPRModel, backbone: dict[str, Tensor], agg: dict[str, Tensor]) -> VPRModel:
    model.backbone.load_state_dict(backbone, strict=True)
    model.aggregator.load_state_dict(agg, strict=True)
    model.head_initialised = True
    return model.eval()


def _square_input(feature_side: int, stride: int, hw: int) -> tuple[int, int]:
    side = math.isqrt(hw)
    if side * side != hw:
        raise ValueError(
            f"cannot infer a square input from a {hw}-position feature map: pass input_size"
        )
    return side * stride, side * stride


def _load_native(obj: dict[str, Any], input_size: tuple[int, int] | None) -> VPRModel:
    cfg = ModelConfig.from_dict(obj["config"])
    if input_size is not None:
        cfg = replace(cfg, input_size=input_size)
    model = build_model(replace(cfg, pretrained=False))
    model.load_state_dict(obj["state_dict"], strict=True)
    model.head_initialised = True
    return model.eval()


def _load_mixvpr_release(sd: dict[str, Tensor], input_size: tuple[int, int] | None) -> VPRModel:
    """The MixVPR release (ResNet backbone + a MixVPR or ConvAP aggregator)."""
    bb = _strip(sd, "backbone.model.")
    bb = {k: v for k, v in bb.items() if not k.startswith("fc.")}
    agg = _strip(sd, "aggregator.")
    arch, last, widths = resnet_from_state_dict(bb)
    stride = 16 if last == 3 else 32
    if "channel_proj.weight" in agg:
        oc, _ = agg["channel_proj.weight"].shape
        rows, hw = agg["row_proj.weight"].shape
        depth = len({k.split(".")[1] for k in agg if k.startswith("mix.")})
        hidden = tuple(int(agg[f"mix.{i}.mix.1.weight"].shape[0]) for i in range(depth))
        a = AggregatorConfig(
            "mixvpr", out_channels=int(oc), out_rows=int(rows), mix_depth=depth, mixer_hidden=hidden
        )
        size = input_size or _square_input(0, stride, int(hw))
    elif "channel_pool.weight" in agg:
        a = AggregatorConfig("convap", out_channels=int(agg["channel_pool.weight"].shape[0]))
        size = input_size or (320, 320)
    else:
        raise ValueError(f"unknown MixVPR-release aggregator keys {sorted(agg)[:4]}")
    cfg = ModelConfig(arch, a, size, last, False, widths, name=f"{arch}-{a.name}")
    return _load(build_model(cfg), bb, agg)


def _load_cosplace(sd: dict[str, Tensor], input_size: tuple[int, int] | None) -> VPRModel:
    """CosPlace / EigenPlaces (ResNet + L2 + GeM + linear), backbone as nn.Sequential."""
    idx = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
    bb = {}
    for k, v in _strip(sd, "backbone.").items():
        head, _, rest = k.partition(".")
        if head not in idx:
            raise ValueError(f"unexpected CosPlace backbone key backbone.{k}")
        bb[f"{idx[head]}.{rest}"] = v
    arch, last, widths = resnet_from_state_dict(bb)
    fc_w, fc_b = sd["aggregation.3.weight"], sd["aggregation.3.bias"]
    pkey = "aggregation.1.p"
    if pkey in sd and abs(float(sd[pkey].flatten()[0]) - 3.0) > 1e-3:
        warnings.warn(
            f"checkpoint GeM p = {float(sd[pkey].flatten()[0]):.4f}; "
            "this model uses p = 3 fixed (XNNPACK)",
            stacklevel=3,
        )
    a = AggregatorConfig("gem", out_dim=int(fc_w.shape[0]), normalize_input=True)
    cfg = ModelConfig(
        arch, a, input_size or (224, 224), last, False, widths, name=f"{arch}-cosplace"
    )
    return _load(build_model(cfg), bb, {"fc.weight": fc_w, "fc.bias": fc_b})


def _load_torchvision(
    sd: dict[str, Tensor], base: str | ModelConfig | None, input_size: tuple[int, int] | None
) -> VPRModel:
    """A bare torchvision ResNet; the aggregator comes from ``base`` (default: GeM)."""
    bb = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    arch, last, widths = resnet_from_state_dict(bb)
    if base is None:
        a = AggregatorConfig("gem")
    else:
        bcfg = build_model(base, pretrained=False).config if isinstance(base, str) else base
        a = bcfg.aggregator
    cfg = ModelConfig(
        arch, a, input_size or (224, 224), last, False, widths, name=f"{arch}-{a.name}"
    )
    model = build_model(cfg)
    model.backbone.load_state_dict(bb, strict=True)
    model.head_initialised = a.name != "netvlad"
    return model.eval()


def load_checkpoint(
    path: str | Path,
    *,
    base: str | ModelConfig | None = None,
    input_size: tuple[int, int] | None = None,
) -> VPRModel:
    """Load a model from a checkpoint in any of FORMATS (detected from its keys).

    base: for a bare torchvision ResNet, the registry name or config giving the
    aggregator (default: GeM). input_size overrides the inferred/recorded input size.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read checkpoint {p} with weights_only=True: {exc}") from exc
    fmt = detect_checkpoint_format(obj)
    if fmt == "native":
        return _load_native(obj, input_size)
    sd: dict[str, Tensor] = obj.get("state_dict", obj)
    if fmt == "mixvpr":
        return _load_mixvpr_release(sd, input_size)
    if fmt == "cosplace":
        return _load_cosplace(sd, input_size)
    return _load_torchvision(sd, base, input_size)
