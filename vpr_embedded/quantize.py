"""Post-training int8 quantization for XNNPACK (PT2E, torchao's prepare/convert).

Static mode: per-channel symmetric int8 weights, per-tensor affine int8 activations,
calibrated on real images. Only the backbone is quantized: the pooling head (GeM's
cube/log/exp, NetVLAD's softmax, ...) and the final L2 normalisation stay float32
(they are a tiny share of the MACs, but cubing an int8 tensor loses most of the
descriptor's dynamic range). Within the backbone, ``float_modules`` stay float32 too
(EfficientNet-Lite0: the stem and first block, the layers most of the int8 error came
from on low-contrast frames). Dynamic mode quantizes only linear layers (weights int8,
activations quantized per call), for heads with large projections.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn
from torch.fx import Node

from vpr_embedded.data.datasets import IMAGE_SUFFIXES, _natural_key
from vpr_embedded.data.images import load_tensor
from vpr_embedded.data.splits import parse_folder, split_paths
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.preprocessing import Preprocessing
from vpr_embedded.progress import track

QuantMode = Literal["int8", "dynamic", "none"]
QUANT_MODES: tuple[QuantMode, ...] = ("int8", "dynamic", "none")


@dataclass(frozen=True)
class QuantizeConfig:
    """mode: "int8" (static, calibrated), "dynamic" (linear layers only) or "none".
    per_channel: per-output-channel weight scales. quantize_head: also quantize the
    aggregator (not recommended: see the module docstring). keep_float: backbone
    submodule names (``_conv_stem``, ``layer1.0``, ...) left float32; None: the
    backbone's ``float_modules``. progress: report progress."""

    mode: QuantMode = "int8"
    per_channel: bool = True
    quantize_head: bool = False
    keep_float: tuple[str, ...] | None = None
    progress: bool = True


def float_modules(model: VPRModel, config: QuantizeConfig) -> tuple[str, ...]:
    """Backbone submodules that ``config`` leaves float32 (checked to exist)."""
    names = model.backbone.float_modules if config.keep_float is None else config.keep_float
    known = {n for n, _ in model.backbone.named_modules() if n}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"--keep-float: {', '.join(unknown)} is not a submodule of the "
            f"{model.config.backbone} backbone (e.g. {', '.join(sorted(known)[:4])})"
        )
    return tuple(names)


def find_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursively), in natural order. ``FOLDER@SEGMENT``
    keeps one segment of a route-ordered folder (data/splits.py), e.g. the training
    places of a traversal for recovery or calibration."""
    root, segment = parse_folder(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    ordered = sorted(files, key=lambda p: (_natural_key(p.parent), _natural_key(p)))
    return split_paths(ordered, segment)


def sample_evenly(paths: Sequence[Path], count: int) -> list[Path]:
    """``count`` paths spread evenly over ``paths`` (all of them if there are fewer)."""
    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    if count >= len(paths):
        return list(paths)
    step = len(paths) / count
    return [paths[int(i * step)] for i in range(count)]


def sample_folders(folders: Sequence[str | Path], per_folder: int) -> list[Path]:
    """At most ``per_folder`` evenly spaced images of each folder, folder after folder
    (a cap per folder, so that a small map is not drowned out by a large one)."""
    return [p for folder in folders for p in sample_evenly(find_images(folder), per_folder)]


def calibration_tensors(
    folder: str | Path, prep: Preprocessing, count: int
) -> tuple[list[Tensor], list[Path]]:
    """``count`` preprocessed images (1, 3, H, W) sampled evenly from ``folder``."""
    paths = sample_evenly(find_images(folder), count)
    return [load_tensor(p, prep).unsqueeze(0) for p in paths], paths


def _annotate_conv_hardtanh(gm: torch.fx.GraphModule, qconfig: object, filter_fn: object) -> None:
    """Annotate conv -> hardtanh (ReLU6) like XNNPACKQuantizer's conv -> relu: the conv
    output stays unquantized and the clamp's output gets its own observer.

    Without this the hardtanh shares the conv's qparams, observed before the clamp, so
    [0, 6] gets only a fraction of the 256 levels (cosine 0.93 on EfficientNet-Lite0).
    XNNPACK fuses the clamp into the quantized convolution.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils import (
        _is_annotated,
        _mark_nodes_as_annotated,
    )
    from torchao.quantization.pt2e.quantizer import (
        QuantizationAnnotation,
        get_bias_qspec,
        get_input_act_qspec,
        get_output_act_qspec,
        get_weight_qspec,
    )
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    hardtanh = (
        torch.ops.aten.hardtanh.default,
        torch.ops.aten.hardtanh_.default,
        torch.ops.aten.relu6.default,
        torch.ops.aten.relu6_.default,
    )
    convs = (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in hardtanh:
            continue
        conv = node.args[0]
        if not isinstance(conv, Node) or conv.op != "call_function" or conv.target not in convs:
            continue
        if len(conv.users) > 1 or not isinstance(conv.args[0], Node):
            continue
        weight = conv.args[1]
        assert isinstance(weight, Node)
        qmap = {
            conv.args[0]: get_input_act_qspec(qconfig),
            weight: get_weight_qspec(qconfig),
        }
        partition = [node, conv, weight]
        bias = conv.args[2] if len(conv.args) > 2 else None
        if isinstance(bias, Node):
            qmap[bias] = get_bias_qspec(qconfig)
            partition.append(bias)
        if _is_annotated(partition):
            continue
        if callable(filter_fn) and not all(filter_fn(n) for n in partition):
            continue
        conv.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map=qmap, _annotated=True)
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
            output_qspec=get_output_act_qspec(qconfig), _annotated=True
        )
        _mark_nodes_as_annotated(partition)


def _annotate_zero_pads(gm: torch.fx.GraphModule) -> None:
    """Zero padding of an annotated output keeps its qparams (0 is exact in affine int8),
    so the padded tensor stays int8 inside XNNPACK instead of dq -> pad -> q."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    pads = (torch.ops.aten.pad.default, torch.ops.aten.constant_pad_nd.default)
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in pads or Q_ANNOTATION_KEY in node.meta:
            continue
        prev = node.args[0]
        value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value", 0.0)
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        if not isinstance(prev, Node) or mode != "constant" or value not in (0, 0.0, None):
            continue
        ann = prev.meta.get(Q_ANNOTATION_KEY)
        if ann is None or ann.output_qspec is None:
            continue
        shared = SharedQuantizationSpec(prev)
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
            input_qspec_map={prev: shared}, output_qspec=shared, _annotated=True
        )


def _quantizer(config: QuantizeConfig, keep_float: tuple[str, ...]) -> object:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    class _Quantizer(XNNPACKQuantizer):  # type: ignore[misc]
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            if self.global_config is not None:
                _annotate_conv_hardtanh(model, self.global_config, self.filter_fn)
                _annotate_zero_pads(model)
            out: torch.fx.GraphModule = super().annotate(model)
            return out

    q = _Quantizer()
    if config.mode == "dynamic":
        dyn = get_symmetric_quantization_config(is_per_channel=config.per_channel, is_dynamic=True)
        q.set_module_type(nn.Linear, dyn)
    else:
        static = get_symmetric_quantization_config(is_per_channel=config.per_channel)
        q.set_global(static)
        # Not set_module_name("backbone"): its filter rejects the weight get_attr
        # nodes (no nn_module_stack), so no conv pattern would match.
        float_prefixes = tuple("backbone." + n for n in keep_float)
        if not config.quantize_head:
            q.set_filter_function(lambda n: _quantized(n, ("backbone",), float_prefixes))
        elif float_prefixes:
            q.set_filter_function(lambda n: _quantized(n, ("",), float_prefixes))
    return q


def _within(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def _quantized(node: Node, inside: tuple[str, ...], outside: tuple[str, ...]) -> bool:
    """True for nodes traced inside a module of ``inside`` and none of ``outside`` (and
    for nodes without a module stack: weights, placeholders)."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return True
    names = [str(path).removeprefix("L['self'].") for path, _ in stack.values()]
    if any(_within(n, p) for n in names for p in outside):
        return False
    return any(_within(n, p) for n in names for p in inside)


def quantize_model(
    model: VPRModel,
    calibration: Iterable[Tensor],
    config: QuantizeConfig | None = None,
) -> nn.Module:
    """PT2E-quantize ``model`` for XNNPACK; returns the converted graph module (it takes
    the same (1, 3, H, W) input). ``calibration``: preprocessed image batches (int8
    static mode needs at least one; ignored by dynamic mode)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    cfg = config or QuantizeConfig()
    if cfg.mode == "none":
        raise ValueError("quantize_model called with mode 'none': export the float model")
    if cfg.mode not in QUANT_MODES:
        raise ValueError(f"unknown quantization mode {cfg.mode!r}; use one of {QUANT_MODES}")
    model.eval()
    prep = model.preprocessing
    example = torch.zeros(1, 3, prep.height, prep.width)
    graph = torch.export.export(model, (example,)).module()
    keep_float = float_modules(model, cfg) if cfg.mode == "int8" else ()
    prepared = prepare_pt2e(graph, _quantizer(cfg, keep_float))
    batches = list(calibration)
    if cfg.mode == "int8" and not batches:
        raise ValueError("static int8 quantization needs calibration images (--calib-images)")
    with torch.no_grad():
        if cfg.mode == "dynamic":
            prepared(example)
        for x in track(batches, "calibrating", "batch", enabled=cfg.progress):
            if x.ndim != 4 or tuple(x.shape[1:]) != (3, prep.height, prep.width):
                raise ValueError(
                    f"calibration batch of shape {tuple(x.shape)}: expected "
                    f"(N, 3, {prep.height}, {prep.width})"
                )
            prepared(x)
    converted: nn.Module = convert_pt2e(prepared)
    return converted
