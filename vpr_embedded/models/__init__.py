"""Models: backbones, aggregators, VPRModel, registry and checkpoints."""

from vpr_embedded.models.aggregators import AGGREGATORS, GeM, MixVPR, NetVLAD
from vpr_embedded.models.backbones import (
    EfficientNetLite0,
    EfficientNetWidths,
    ResNet,
    ResNetWidths,
)
from vpr_embedded.models.checkpoints import (
    detect_checkpoint_format,
    load_checkpoint,
    save_checkpoint,
)
from vpr_embedded.models.vpr import (
    AggregatorConfig,
    ModelConfig,
    VPRModel,
    build_model,
    list_models,
)
from vpr_embedded.preprocessing import Preprocessing

__all__ = [
    "AGGREGATORS",
    "AggregatorConfig",
    "EfficientNetLite0",
    "EfficientNetWidths",
    "GeM",
    "MixVPR",
    "ModelConfig",
    "NetVLAD",
    "Preprocessing",
    "ResNet",
    "ResNetWidths",
    "VPRModel",
    "build_model",
    "detect_checkpoint_format",
    "list_models",
    "load_checkpoint",
    "save_checkpoint",
]
