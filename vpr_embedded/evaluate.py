"""Evaluation: recall@N, descriptor/map size, model size, MACs and extraction time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vpr_embedded.data.datasets import DatasetFormat, PlaceDataset
from vpr_embedded.data.images import ImageReadError, load_tensor
from vpr_embedded.data.splits import Segment
from vpr_embedded.devices import torch_device
from vpr_embedded.matching import StorageName
from vpr_embedded.metrics import recall_at_n
from vpr_embedded.models.aggregators import NetVLAD
from vpr_embedded.models.embed import embed_images
from vpr_embedded.models.loading import load_model
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.settings import option, required


@dataclass(frozen=True)
class EvaluateConfig:
    """How a model is evaluated on a dataset. recall_at: the N of recall@N. examples:
    queries shown in the PNG. netvlad_init_images: reference images used for k-means when
    the NetVLAD head is untrained. progress: report progress (vpr_embedded.progress).
    Matching is always the C++ core."""

    batch_size: int = option(32, "images per forward", minimum=1)
    storage: StorageName = option("float32", "map encoding of the references")
    recall_at: tuple[int, ...] = (1, 5, 10, 20)
    skip_unreadable: bool = option(False, "skip bad images, count them")
    out_dir: Path | None = option(
        None, "write result.json, config.json, examples.png", flag="--out"
    )
    examples: int = 6
    netvlad_init_images: int = 200
    progress: bool = True
    device: str = option("cpu", "where descriptors are extracted: cpu, cuda")


@dataclass(frozen=True)
class EvaluateJob:
    """`vpr-embedded evaluate`: a model (registry name or checkpoint) on a dataset."""

    model: str = required("registry name or checkpoint path")
    dataset: str = required("dataset folder (read in place), or a dataset name")
    format: DatasetFormat | None = option(None, "dataset layout (default: detect)")
    input_size: tuple[int, int] | None = option(None, "model input size", metavar=("H", "W"))
    tolerance: int | None = option(None, "aligned datasets: +-frames", minimum=0)
    split: Segment | None = option(None, "only the places of this held-out segment")
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


@dataclass
class EvaluationResult:
    model: str
    dataset: str
    references: int
    queries: int
    queries_evaluated: int
    recall: dict[str, float]
    descriptor_dim: int
    storage: str
    map_bytes_per_place: float
    model_bytes_fp32: int
    parameters: int
    macs: int
    ms_per_image: float
    input_size: tuple[int, int]
    skipped_references: list[str] = field(default_factory=list)
    skipped_queries: list[str] = field(default_factory=list)
    head_init: str = "weights"
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of Conv2d and Linear layers for one image (forward hooks)."""
    total = 0

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        per_image = out.numel() // out.shape[0]
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total += per_image * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            total += per_image * mod.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    return total


def _batches(
    paths: Sequence[Path], model: VPRModel, cfg: EvaluateConfig, desc: str
) -> tuple[np.ndarray, list[int], list[str], float]:
    """Descriptors of readable images, their indices, skipped paths, forward seconds."""
    e = embed_images(
        model,
        paths,
        batch_size=cfg.batch_size,
        skip_unreadable=cfg.skip_unreadable,
        desc=desc,
        progress=cfg.progress,
    )
    return e.descriptors, e.kept, e.skipped, e.forward_seconds


def init_netvlad(model: VPRModel, references: Sequence[Path], cfg: EvaluateConfig) -> str:
    """k-means centroids for an untrained NetVLAD head from local backbone features of
    (at most cfg.netvlad_init_images, evenly spaced) REFERENCE images, never queries."""
    agg = model.aggregator
    assert isinstance(agg, NetVLAD)
    n = min(cfg.netvlad_init_images, len(references))
    pick = np.linspace(0, len(references) - 1, n).round().astype(int)
    rng = np.random.default_rng(0)
    local: list[np.ndarray] = []
    for start in range(0, n, cfg.batch_size):
        xs = []
        for i in pick[start : start + cfg.batch_size]:
            try:
                xs.append(load_tensor(references[int(i)], model.preprocessing))
            except ImageReadError:
                if not cfg.skip_unreadable:
                    raise
        if not xs:
            continue
        with torch.no_grad():
            f = model.backbone(torch.stack(xs))
        f2 = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).numpy()
        take = min(len(f2), 100 * len(xs))
        local.append(f2[rng.choice(len(f2), take, replace=False)])
    agg.init_from_features(np.concatenate(local))
    model.head_initialised = True
    return f"netvlad k-means on local features of {n} reference images ({len(references)} total)"


def _example_png(
    path: Path,
    dataset: PlaceDataset,
    ref_kept: list[int],
    q_kept: list[int],
    ids: np.ndarray,
    n_examples: int,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = min(n_examples, len(q_kept))
    if rows == 0:
        return
    pick = np.linspace(0, len(q_kept) - 1, rows).round().astype(int)
    fig, axes = plt.subplots(rows, 4, figsize=(10, 2.2 * rows), squeeze=False)
    for r, qi in enumerate(pick):
        q = q_kept[qi]
        cells = [(dataset.queries[q], "query", "black")]
        for rank in range(min(3, ids.shape[1])):
            ref = ref_kept[int(ids[qi, rank])]
            ok = ref in set(dataset.positives[q].tolist())
            cells.append(
                (dataset.references[ref], f"#{rank + 1} ref {ref}", "green" if ok else "red")
            )
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c >= len(cells):
                continue
            p, title, colour = cells[c]
            with Image.open(p) as im:
                ax.imshow(im.convert("RGB"))
            ax.set_title(title, color=colour, fontsize=8)
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_edgecolor(colour)
                s.set_linewidth(4 if colour != "black" else 1)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def format_table(results: Sequence[EvaluationResult]) -> str:
    """Markdown table of results."""
    ns = list(results[0].recall) if results else []
    head = [
        "model",
        "dataset",
        *[f"R@{n}" for n in ns],
        "dim",
        "map B/place",
        "params",
        "MMACs",
        "ms/img",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [
            r.model,
            r.dataset,
            *[f"{r.recall[n]:.3f}" for n in ns],
            str(r.descriptor_dim),
            f"{r.map_bytes_per_place:g}",
            f"{r.parameters:,}",
            f"{r.macs / 1e6:.1f}",
            f"{r.ms_per_image:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(model: VPRModel, dataset: PlaceDataset, config: EvaluateConfig) -> EvaluationResult:
    """Extract descriptors, match queries against references with the C++ core, report
    recall@N and costs; write result.json, config.json and examples.png to out_dir."""
    from vpr_embedded.matching import STORAGES, Index

    if config.storage not in STORAGES:
        raise ValueError(f"unknown storage {config.storage!r}; use one of {', '.join(STORAGES)}")
    model.eval()
    head_init = "weights"
    if not model.head_initialised:
        head_init = init_netvlad(model, dataset.references, config)
    model.to(torch_device(config.device))
    try:
        refs, ref_kept, ref_skip, t_ref = _batches(dataset.references, model, config, "references")
        qs, q_kept, q_skip, t_q = _batches(dataset.queries, model, config, "queries")
    finally:
        model.cpu()
    if len(ref_kept) == 0 or len(q_kept) == 0:
        raise ValueError(f"{dataset.name}: no readable reference or query images")
    index = Index.encode(refs, storage=config.storage)
    k = max(config.recall_at)
    res = index.search(qs, k=k)
    ids = np.asarray(res.ids)
    ref_map = np.asarray(ref_kept, dtype=np.int64)
    positives_kept = [dataset.positives[q] for q in q_kept]
    rec = recall_at_n(ref_map[ids], positives_kept, config.recall_at)
    h, w = model.preprocessing.height, model.preprocessing.width
    params = sum(p.numel() for p in model.parameters())
    nbytes = sum(p.numel() * 4 for p in model.parameters()) + sum(
        b.numel() * 4 for b in model.buffers() if b.is_floating_point()
    )
    result = EvaluationResult(
        model=model.config.display_name,
        dataset=dataset.name,
        references=len(dataset.references),
        queries=len(dataset.queries),
        queries_evaluated=sum(1 for p in positives_kept if len(p)),
        recall={str(n): v for n, v in rec.items()},
        descriptor_dim=model.descriptor_dim,
        storage=config.storage,
        map_bytes_per_place=index.nbytes / max(index.count, 1),
        model_bytes_fp32=int(nbytes),
        parameters=int(params),
        macs=count_macs(model, torch.zeros(1, 3, h, w)),
        ms_per_image=1000.0 * (t_ref + t_q) / (len(ref_kept) + len(q_kept)),
        input_size=(h, w),
        skipped_references=ref_skip,
        skipped_queries=q_skip,
        head_init=head_init,
        device=config.device,
    )
    if config.out_dir is not None:
        out = Path(config.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        cfg = {k2: (str(v) if isinstance(v, Path) else v) for k2, v in asdict(config).items()}
        cfg["model_config"] = model.config.to_dict()
        (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        _example_png(out / "examples.png", dataset, ref_kept, q_kept, ref_map[ids], config.examples)
    return result


def run_evaluate(job: EvaluateJob) -> EvaluationResult:
    """The evaluate command: resolve the model and the dataset, evaluate."""
    from vpr_embedded.data.datasets import load_dataset

    torch_device(job.evaluate.device)  # a bad --device fails before the model and images load
    model = load_model(job.model, job.input_size)
    dataset = load_dataset(job.dataset, job.format, tolerance=job.tolerance, split=job.split)
    return evaluate(model, dataset, job.evaluate)
