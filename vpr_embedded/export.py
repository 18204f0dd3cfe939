"""ExecuTorch export: XNNPACK lowering (fp32 or int8) to a model bundle, then checks.

``export_bundle`` lowers a VPRModel with ``to_edge_transform_and_lower`` and the
XnnpackPartitioner, writes ``model.pte`` + ``manifest.json`` (see bundle.py), and then
checks what it wrote:

- delegation: which operators run inside XNNPACK and which fall back to the portable
  kernels, with their share of the multiply-accumulates;
- parity: the ``.pte`` run by ``executorch.runtime`` on real images against the eager
  float model, cosine per image (>= 0.999 float, >= 0.98 int8);
- recall@1 on a dataset, when one is given: the bundle's against the eager float
  model's (the bundle within 1 point).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import operator
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from vpr_embedded.bundle import load_bundle
from vpr_embedded.data.datasets import DatasetFormat
from vpr_embedded.data.images import load_images, load_tensor
from vpr_embedded.data.splits import Segment
from vpr_embedded.manifest import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    PTE_NAME,
    sha256_file,
    write_manifest,
)
from vpr_embedded.models.embed import embed_images
from vpr_embedded.models.loading import load_model
from vpr_embedded.models.rotate import deployment_form
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.preprocessing import RESIZE_METHOD, Preprocessing
from vpr_embedded.progress import bar as progress_bar
from vpr_embedded.quantize import (
    QUANT_MODES,
    QuantizeConfig,
    QuantMode,
    calibration_tensors,
    find_images,
    float_modules,
    quantize_model,
    sample_evenly,
)
from vpr_embedded.settings import comma_list, option, required

PARITY_MIN_COSINE = {"none": 0.999, "int8": 0.98, "dynamic": 0.98}
MAX_RECALL_DROP = 0.01


@dataclass(frozen=True)
class ExportConfig:
    """quantize: "int8" (static PT2E, calibrated), "dynamic" (linear layers) or "none".
    calib_images: folder of real images (searched recursively) for calibration and,
    without a parity dataset, for the parity check. parity_dataset: dataset folder for
    parity images and recall@1. keep_float: backbone submodules left float32 by int8
    (None: the backbone's default). pad_free: export the 180-degree-rotated pad-free form
    when the model has one (models/rotate.py). check: run the checks. progress: report
    progress."""

    quantize: QuantMode = option("int8", "int8: static, calibrated; dynamic: linear layers")
    calib_images: Path | None = option(None, "folder of real images (recursive)")
    calib_count: int = option(64, "calibration images", minimum=1)
    parity_dataset: Path | None = option(None, "dataset for parity and recall@1")
    dataset_format: DatasetFormat | None = option(
        None, "parity dataset layout (default: detect)", flag="--format"
    )
    parity_count: int = option(16, "images in the parity check", minimum=1)
    split: Segment | None = option(None, "parity dataset: only this held-out segment")
    keep_float: tuple[str, ...] | None = option(
        None,
        "comma-separated backbone submodules int8 leaves float32 ('' for none; default: "
        "the backbone's, e.g. _conv_stem,_bn0,_blocks.0 for EfficientNet-Lite0)",
        metavar="MODULES",
        parse=comma_list,
    )
    pad_free: bool = True
    check: bool = True
    progress: bool = True


@dataclass(frozen=True)
class ExportJob:
    """`vpr-embedded export`: a model lowered to a bundle folder."""

    model: str = required("registry name or checkpoint path")
    out: Path = required("bundle folder to write")
    input_size: tuple[int, int] | None = option(None, "model input size", metavar=("H", "W"))
    overwrite: bool = option(False, "replace an existing bundle")
    export: ExportConfig = field(default_factory=ExportConfig)


@dataclass
class DelegationReport:
    """Operators inside XNNPACK delegates and outside them (counts and MACs)."""

    delegates: int = 0
    delegated_ops: dict[str, int] = field(default_factory=dict)
    fallback_ops: dict[str, int] = field(default_factory=dict)
    delegated_macs: int = 0
    fallback_macs: int = 0

    @property
    def fully_delegated(self) -> bool:
        return self.delegates > 0 and not self.fallback_ops

    @property
    def delegated_mac_share(self) -> float:
        total = self.delegated_macs + self.fallback_macs
        return self.delegated_macs / total if total else 1.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fully_delegated"] = self.fully_delegated
        d["delegated_mac_share"] = self.delegated_mac_share
        return d

    def format(self) -> str:
        lines = [
            f"delegation: {self.delegates} XNNPACK delegate(s), "
            f"{100 * self.delegated_mac_share:.2f} % of "
            f"{self.delegated_macs + self.fallback_macs:,} MACs delegated",
            "  in XNNPACK: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(self.delegated_ops.items())),
        ]
        if self.fallback_ops:
            lines.append(
                f"  FALLBACK ({self.fallback_macs:,} MACs): "
                + ", ".join(f"{k} x{v}" for k, v in sorted(self.fallback_ops.items()))
            )
        else:
            lines.append("  fallback: none (fully delegated)")
        return "\n".join(lines)


@dataclass
class ExportResult:
    bundle: Path
    model_name: str
    quantize: str
    pte_bytes: int
    delegation: DelegationReport
    parity_cosines: list[float] = field(default_factory=list)
    parity_images: list[str] = field(default_factory=list)
    recall: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bundle"] = str(self.bundle)
        d["delegation"] = self.delegation.to_dict()
        d["passed"] = self.passed
        return d

    def format(self) -> str:
        lines = [
            f"bundle {self.bundle}: {self.model_name} quantize={self.quantize} "
            f".pte {self.pte_bytes / 1e6:.2f} MB ({self.seconds:.0f} s)",
            self.delegation.format(),
        ]
        if not self.parity_cosines:
            lines.append("parity: not checked (no images: pass --calib-images or --parity-dataset)")
        else:
            c = np.asarray(self.parity_cosines)
            lines.append(
                f"parity vs eager fp32 on {len(c)} images: cosine min {c.min():.5f} "
                f"mean {c.mean():.5f} (need >= {PARITY_MIN_COSINE[self.quantize]})"
            )
        for ds, r in self.recall.items():
            lines.append(
                f"recall@1 on {ds}: eager fp32 {r['eager_fp32']:.4f}, bundle "
                f"{r['bundle']:.4f} (drop {100 * (r['eager_fp32'] - r['bundle']):+.2f} points)"
            )
        lines += [f"CHECK FAILED: {f}" for f in self.failures]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- lowering


def _op_name(target: Any) -> str:
    s = str(target)
    m = re.match(r"<EdgeOpOverload: ([^>]+)>", s)
    if m:
        return m.group(1)
    return getattr(target, "__name__", s)


def _node_macs(node: torch.fx.Node) -> int:
    """Multiply-accumulates of a convolution / matmul node from its shape metadata."""
    name = _op_name(node.target)
    out = node.meta.get("val")
    if not isinstance(out, torch.Tensor):
        return 0

    def shape(i: int) -> tuple[int, ...]:
        a = node.args[i] if i < len(node.args) else None
        v = a.meta.get("val") if isinstance(a, torch.fx.Node) else None
        return tuple(v.shape) if isinstance(v, torch.Tensor) else ()

    if "convolution" in name:
        w = shape(1)
        return out.numel() * math.prod(w[1:]) if len(w) >= 3 else 0
    if name.startswith(("aten.linear", "aten.mm", "aten.bmm")):
        x = shape(0)
        return out.numel() * x[-1] if x else 0
    if name.startswith("aten.addmm"):
        x = shape(1)
        return out.numel() * x[-1] if x else 0
    return 0


def delegation_report(edge_program: Any) -> DelegationReport:
    """Inspect a lowered edge program: ops inside ``executorch_call_delegate``
    submodules count as delegated, other call_function nodes as fallback."""
    rep = DelegationReport()
    gm = edge_program.graph_module
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        name = _op_name(node.target)
        if "executorch_call_delegate" in name:
            rep.delegates += 1
            lowered = getattr(gm, str(node.args[0].target))
            sub = getattr(lowered, "_original_exported_program", None) or lowered.original_module
            for n in sub.graph_module.graph.nodes:
                if n.op != "call_function" or n.target is operator.getitem:
                    continue
                k = _op_name(n.target)
                rep.delegated_ops[k] = rep.delegated_ops.get(k, 0) + 1
                rep.delegated_macs += _node_macs(n)
        else:
            rep.fallback_ops[name] = rep.fallback_ops.get(name, 0) + 1
            rep.fallback_macs += _node_macs(node)
    return rep


def lower_to_pte(module: nn.Module, example: torch.Tensor) -> tuple[bytes, DelegationReport]:
    """torch.export + XNNPACK lowering; returns the .pte bytes and the delegation report."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with torch.no_grad():
        ep = torch.export.export(module, (example,))
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    report = delegation_report(edge.exported_program())
    program = edge.to_executorch()
    return bytes(program.buffer), report


# ------------------------------------------------------------------------------ bundle


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _jsonable(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def build_manifest(
    model: VPRModel,
    pte: Path,
    quantize: str,
    calibration: Sequence[Path],
    calib_source: Path | None,
    keep_float: Sequence[str] = (),
    rotate_180: bool = False,
) -> dict[str, Any]:
    p = model.preprocessing
    quant: dict[str, Any] = {"mode": quantize}
    if quantize == "int8":
        quant |= {
            "scheme": "PT2E static, XNNPACKQuantizer",
            "weights": "int8 per-channel symmetric",
            "activations": "int8 per-tensor affine",
            "float_parts": "aggregator and final L2 normalisation",
            "float_backbone_modules": list(keep_float),
            "calibration_images": len(calibration),
            "calibration_source": str(calib_source) if calib_source else None,
        }
    elif quantize == "dynamic":
        quant |= {"scheme": "PT2E dynamic, linear layers", "weights": "int8 per-channel"}
    name = model.config.display_name
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "model_name": name,
        "model_config": _jsonable(model.config.to_dict()),
        "input": {
            "height": p.height,
            "width": p.width,
            "channels": 3,
            "layout": "NCHW",
            "dtype": "float32",
            "batch": 1,
            "colour_order": p.colour_order,
            "resize": RESIZE_METHOD,
            "rotate_180": rotate_180,
            "scale": 1.0 / 255.0,
            "mean": list(p.mean),
            "std": list(p.std),
        },
        "descriptor_dim": int(model.descriptor_dim),
        "output": {"dtype": "float32", "l2_normalized": True},
        "quantization": quant,
        "versions": {
            "torch": torch.__version__,
            "executorch": _version("executorch"),
            "torchao": _version("torchao"),
            "vpr_embedded": _version("vpr-embedded"),
        },
        "pte": {"file": pte.name, "sha256": sha256_file(pte), "bytes": pte.stat().st_size},
    }


def _cosines(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float64]:
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(1) / np.maximum(na, 1e-12), np.float64)


def _recall_at_1(
    model: VPRModel,
    bundle_dir: Path,
    dataset: Path,
    fmt: str | None,
    progress: bool,
    split: str | None = None,
) -> tuple[str, float, float]:
    from vpr_embedded.data.datasets import load_dataset
    from vpr_embedded.matching import Index
    from vpr_embedded.metrics import recall_at_n

    ds = load_dataset(dataset, fmt, split=split)
    b = load_bundle(bundle_dir)
    paths = list(ds.references) + list(ds.queries)
    # Eager batches first, then the bundle: alternating the two runtimes per image makes
    # their thread pools fight over the cores.
    eager = np.empty((len(paths), model.descriptor_dim), np.float32)
    ours = np.empty_like(eager)
    eager[:] = embed_images(
        model, paths, desc=f"recall {ds.name}, eager", progress=progress
    ).descriptors
    with progress_bar(len(paths), f"recall {ds.name}, bundle", "img", enabled=progress) as shown:
        for i, p in enumerate(paths):
            ours[i] = b.embed_one(load_tensor(p, b.preprocessing).unsqueeze(0))
            shown.update(1)
    nr = len(ds.references)
    out = []
    for d in (eager, ours):
        idx = Index.encode(np.ascontiguousarray(d[:nr]))
        ids = np.asarray(idx.search(np.ascontiguousarray(d[nr:]), k=1).ids)
        out.append(recall_at_n(ids, ds.positives, (1,))[1])
    return ds.name, out[0], out[1]


def _quantized(
    model: VPRModel, deployed: VPRModel, dprep: Preprocessing, config: ExportConfig
) -> tuple[nn.Module, torch.Tensor, list[Path], tuple[str, ...]]:
    """The module to lower (quantized as the config says), an example input, the
    calibration images used and the modules int8 left in float32."""
    calib: list[torch.Tensor] = []
    calib_paths: list[Path] = []
    if config.quantize == "int8" and config.calib_images is not None:
        calib, calib_paths = calibration_tensors(config.calib_images, dprep, config.calib_count)
    prep = model.preprocessing
    example = calib[0] if calib else torch.zeros(1, 3, prep.height, prep.width)
    if config.quantize == "none":
        return deployed, example, calib_paths, ()
    qcfg = QuantizeConfig(config.quantize, keep_float=config.keep_float, progress=config.progress)
    module = quantize_model(deployed, calib, qcfg)
    keep_float = float_modules(deployed, qcfg) if config.quantize == "int8" else ()
    return module, example, calib_paths, keep_float


def export_bundle(model: VPRModel, out_dir: str | Path, config: ExportConfig) -> ExportResult:
    """Quantize (optionally), lower to XNNPACK, write the bundle, run the checks."""
    t0 = time.perf_counter()
    if config.quantize not in QUANT_MODES:
        raise ValueError(f"unknown quantization {config.quantize!r}; use one of {QUANT_MODES}")
    if not getattr(model, "head_initialised", True):
        raise ValueError(
            "the model's NetVLAD head is not initialised: export a checkpoint whose head "
            "was trained or initialised (vpr-embedded evaluate initialises it)"
        )
    if config.quantize == "int8" and config.calib_images is None:
        raise ValueError("int8 export needs real calibration images: pass --calib-images DIR")
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The program runs the pad-free form when there is one: the same descriptors from the
    # image rotated by 180 degrees, which the manifest tells every runtime to do.
    deployed, dprep = deployment_form(model, config.pad_free)
    module, example, calib_paths, keep_float = _quantized(model, deployed, dprep, config)
    pte_bytes, report = lower_to_pte(module, example)
    tmp = out / (PTE_NAME + ".tmp")
    tmp.write_bytes(pte_bytes)
    tmp.replace(out / PTE_NAME)
    manifest = build_manifest(
        model,
        out / PTE_NAME,
        config.quantize,
        calib_paths,
        config.calib_images,
        keep_float,
        rotate_180=dprep.rotate_180,
    )
    manifest["delegation"] = {
        "fully_delegated": report.fully_delegated,
        "delegated_mac_share": report.delegated_mac_share,
        "fallback_ops": report.fallback_ops,
    }
    write_manifest(out, manifest)
    cfg_doc = {k: _jsonable(v) for k, v in asdict(config).items()}
    (out / "export_config.json").write_text(json.dumps(cfg_doc, indent=2) + "\n")
    result = ExportResult(out, manifest["model_name"], config.quantize, len(pte_bytes), report)
    if not report.fully_delegated:
        result.failures.append(
            "not fully delegated to XNNPACK: " + ", ".join(sorted(report.fallback_ops))
        )
    if config.check:
        _check(model, out, config, result)
        manifest["checks"] = {
            "parity_min_cosine": min(result.parity_cosines) if result.parity_cosines else None,
            "parity_images": len(result.parity_cosines),
            "recall_at_1": result.recall,
            "passed": result.passed,
        }
        write_manifest(out, manifest)
    result.seconds = time.perf_counter() - t0
    (out / "export_report.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result


def _check(model: VPRModel, out: Path, config: ExportConfig, result: ExportResult) -> None:
    paths: list[Path] = []
    if config.parity_dataset is not None:
        from vpr_embedded.data.datasets import load_dataset

        ds = load_dataset(config.parity_dataset, config.dataset_format, split=config.split)
        paths = sample_evenly(list(ds.queries), config.parity_count)
    elif config.calib_images is not None:
        paths = sample_evenly(find_images(config.calib_images), config.parity_count)
    if paths:
        bundle = load_bundle(out)
        ours = bundle.embed(load_images(paths, bundle.preprocessing))
        eager = embed_images(model, paths, progress=False).descriptors
        cos = _cosines(ours, eager)
        result.parity_cosines = [float(c) for c in cos]
        result.parity_images = [str(p) for p in paths]
        need = PARITY_MIN_COSINE[config.quantize]
        if float(cos.min()) < need:
            result.failures.append(f"parity: min cosine {cos.min():.5f} < {need}")
    if config.parity_dataset is not None:
        name, r_eager, r_bundle = _recall_at_1(
            model,
            out,
            config.parity_dataset,
            config.dataset_format,
            config.progress,
            config.split,
        )
        result.recall[name] = {"eager_fp32": r_eager, "bundle": r_bundle}
        if r_eager - r_bundle > MAX_RECALL_DROP + 1e-9:
            result.failures.append(
                f"recall@1 on {name}: bundle {r_bundle:.4f} is more than 1 point below "
                f"eager fp32 {r_eager:.4f}"
            )


def run_export(job: ExportJob) -> ExportResult:
    """The export command; the caller exits non-zero if a check failed."""
    out = Path(job.out)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ValueError(f"{out} exists and is not a bundle: choose an empty or new folder")
    if job.overwrite and out.exists():
        shutil.rmtree(out)
    return export_bundle(load_model(job.model, job.input_size), out, job.export)
