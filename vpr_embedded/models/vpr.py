"""VPRModel (backbone + aggregator + L2 normalisation), its config and the registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from vpr_embedded.models.aggregators import AGGREGATORS, AvgPool, ConvAP, GeM, MixVPR, NetVLAD
from vpr_embedded.models.backbones import (
    RESNET_DEPTHS,
    EfficientNetLite0,
    EfficientNetWidths,
    ResNet,
    ResNetWidths,
    load_efficientnet_lite0_imagenet,
)
from vpr_embedded.models.ops import l2_normalize
from vpr_embedded.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

BACKBONES = ("efficientnet_lite0", *RESNET_DEPTHS)


@dataclass(frozen=True)
class AggregatorConfig:
    """Aggregator name and widths. Fields a head does not use are ignored by it.

    out_dim: GeM projection width (None: no projection). normalize_input: GeM on
    L2-normalised local features (CosPlace). out_channels: ConvAP/MixVPR channel width.
    pool: ConvAP output grid. out_rows, mix_depth, mlp_ratio, mixer_hidden: MixVPR
    (mixer_hidden overrides mlp_ratio per mixer, for pruned heads). clusters: NetVLAD.
    """

    name: str = "gem"
    out_dim: int | None = None
    normalize_input: bool = False
    out_channels: int = 512
    pool: tuple[int, int] = (2, 2)
    out_rows: int = 4
    mix_depth: int = 4
    mlp_ratio: int = 1
    mixer_hidden: tuple[int, ...] | None = None
    clusters: int = 16


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a VPRModel (weights aside), pruned widths included.

    backbone: "efficientnet_lite0" | "resnet18" | "resnet34" | "resnet50". last_layer:
    ResNet truncation (3: after layer3, 4: after layer4). backbone_widths: None for the
    standard widths. input_size: (height, width). pretrained: load ImageNet weights
    (EfficientNet-Lite0 only; ResNet weights come from a checkpoint).
    """

    backbone: str
    aggregator: AggregatorConfig = field(default_factory=AggregatorConfig)
    input_size: tuple[int, int] = (224, 224)
    last_layer: int = 4
    pretrained: bool = False
    backbone_widths: ResNetWidths | EfficientNetWidths | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    name: str = ""

    @property
    def display_name(self) -> str:
        """``name``, or backbone-aggregator for a config without one."""
        return self.name or f"{self.backbone}-{self.aggregator.name}"

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.input_size[0], self.input_size[1], self.mean, self.std, "RGB")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON- and torch.load(weights_only=True)-safe)."""
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        agg = dict(d.pop("aggregator", {}))
        agg["pool"] = tuple(agg.get("pool", (2, 2)))
        if agg.get("mixer_hidden") is not None:
            agg["mixer_hidden"] = tuple(agg["mixer_hidden"])
        w = d.pop("backbone_widths", None)
        widths: ResNetWidths | EfficientNetWidths | None = None
        if w is not None:
            if d["backbone"] == "efficientnet_lite0":
                widths = EfficientNetWidths(
                    int(w["stem"]), tuple((int(a), int(b)) for a, b in w["blocks"]), int(w["head"])
                )
            else:
                widths = ResNetWidths(
                    int(w["stem"]),
                    tuple(int(c) for c in w["stage_out"]),
                    tuple(tuple(tuple(int(c) for c in b) for b in s) for s in w["block_mid"]),
                )
        known = set(ModelConfig.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config fields {sorted(unknown)}")
        for key in ("input_size", "mean", "std"):
            if key in d:
                d[key] = tuple(d[key])
        return ModelConfig(aggregator=AggregatorConfig(**agg), backbone_widths=widths, **d)


def _mixvpr(channels: int, hw: tuple[int, int], a: AggregatorConfig) -> nn.Module:
    mix = MixVPR(channels, hw, a.out_channels, a.out_rows, a.mix_depth, a.mlp_ratio, a.mixer_hidden)
    mix.init_untrained()
    return mix


# Head name -> builder (backbone output channels, feature map size, config): one entry per
# head, as prune/heads.py has one pruner per head.
HEAD_BUILDERS: dict[str, Callable[[int, tuple[int, int], AggregatorConfig], nn.Module]] = {
    "avg": lambda c, hw, a: AvgPool(c),
    "gem": lambda c, hw, a: GeM(c, a.out_dim, normalize_input=a.normalize_input),
    "convap": lambda c, hw, a: ConvAP(c, hw, a.out_channels, a.pool),
    "mixvpr": _mixvpr,
    "netvlad": lambda c, hw, a: NetVLAD(c, a.clusters),
}


class VPRModel(nn.Module):
    """Image batch (N, 3, H, W), preprocessed per ``self.preprocessing`` -> unit-norm
    descriptors (N, descriptor_dim)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessing = config.preprocessing
        h, w = config.input_size
        self.backbone: ResNet | EfficientNetLite0
        if config.backbone == "efficientnet_lite0":
            ew = config.backbone_widths
            if ew is not None and not isinstance(ew, EfficientNetWidths):
                raise ValueError("EfficientNet-Lite0 needs EfficientNetWidths")
            self.backbone = EfficientNetLite0((h, w), ew)
            if config.pretrained:
                load_efficientnet_lite0_imagenet(self.backbone)
        elif config.backbone in RESNET_DEPTHS:
            rw = config.backbone_widths
            if rw is not None and not isinstance(rw, ResNetWidths):
                raise ValueError("ResNet needs ResNetWidths")
            if config.pretrained:
                raise ValueError(
                    "no offline ImageNet weights for ResNet: build with pretrained=False and "
                    "load a checkpoint (vpr_embedded.models.load_checkpoint)"
                )
            self.backbone = ResNet(config.backbone, config.last_layer, rw)
        else:
            raise ValueError(f"unknown backbone {config.backbone!r}; choose from {BACKBONES}")
        c = self.backbone.out_channels
        fhw = self.backbone.feature_size(h, w)
        a = config.aggregator
        if a.name not in HEAD_BUILDERS:
            raise ValueError(f"unknown aggregator {a.name!r}; choose from {AGGREGATORS}")
        self.aggregator: nn.Module = HEAD_BUILDERS[a.name](c, fhw, a)
        out_dim = self.aggregator.out_dim  # every head says its descriptor size
        assert isinstance(out_dim, int)
        self.descriptor_dim: int = out_dim
        self.feature_hw = fhw
        # NetVLAD centroids need data: evaluate() initialises an untrained head.
        self.head_initialised = a.name != "netvlad"
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return l2_normalize(self.aggregator(self.backbone(x)), dim=-1)


def _registry() -> dict[str, ModelConfig]:
    reg: dict[str, ModelConfig] = {}
    for agg in AGGREGATORS:
        a = AggregatorConfig(name=agg)
        if agg == "mixvpr":
            a = replace(a, out_channels=512, out_rows=4)
        reg[f"efficientnet_lite0-{agg}"] = ModelConfig(
            "efficientnet_lite0", a, (224, 224), pretrained=True
        )
        for arch in RESNET_DEPTHS:
            if agg in ("mixvpr", "convap"):
                big = arch == "resnet50"
                a2 = replace(a, out_channels=1024 if big and agg == "mixvpr" else 512)
                reg[f"{arch}-{agg}"] = ModelConfig(arch, a2, (320, 320), last_layer=3)
            else:
                reg[f"{arch}-{agg}"] = ModelConfig(arch, a, (224, 224), last_layer=4)
    return {k: replace(v, name=k) for k, v in reg.items()}


REGISTRY: dict[str, ModelConfig] = _registry()


def list_models() -> list[str]:
    """Names accepted by build_model."""
    return sorted(REGISTRY)


def build_model(
    name_or_config: str | ModelConfig,
    *,
    input_size: tuple[int, int] | None = None,
    pretrained: bool | None = None,
) -> VPRModel:
    """Build a registered model ("efficientnet_lite0-gem", "resnet50-mixvpr", ...) or one
    from a ModelConfig; ``input_size``/``pretrained`` override the config."""
    if isinstance(name_or_config, str):
        if name_or_config not in REGISTRY:
            raise ValueError(
                f"unknown model {name_or_config!r}; `vpr-embedded models` lists: "
                + ", ".join(list_models())
            )
        cfg = REGISTRY[name_or_config]
    else:
        cfg = name_or_config
    if input_size is not None:
        cfg = replace(cfg, input_size=(int(input_size[0]), int(input_size[1])))
    if pretrained is not None:
        cfg = replace(cfg, pretrained=pretrained)
    with torch.no_grad():
        return VPRModel(cfg)


def describe_models() -> str:
    """One line per registered model: name, input size, truncation, descriptor size."""
    lines = []
    for name in list_models():
        c = REGISTRY[name]
        a = c.aggregator
        extra = {
            "gem": "",
            "avg": "",
            "convap": f" out={a.out_channels}x{a.pool[0]}x{a.pool[1]}",
            "mixvpr": f" out={a.out_channels}x{a.out_rows}",
            "netvlad": f" clusters={a.clusters}",
        }[a.name]
        lines.append(
            f"{name:28s} input={c.input_size[0]}x{c.input_size[1]} "
            f"last_layer={c.last_layer if c.backbone != 'efficientnet_lite0' else '-'} "
            f"pretrained={c.pretrained}{extra}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class ModelsConfig:
    """`vpr-embedded models`: the registered models (no settings)."""


def run_models(cfg: ModelsConfig) -> str:
    from vpr_embedded.models.zoo import describe_zoo

    return (
        "Registered architectures (--model NAME; ImageNet backbone where pretrained=True):\n"
        + describe_models()
        + "\n\nZoo (--model zoo:NAME; trained by this project, recall on named segments):\n"
        + describe_zoo()
    )
