"""One way to embed image files with an eager model: ``embed_images``.

Evaluation, export's parity and recall checks and the benchmarks all turn lists of image
files into descriptors the same way: batches preprocessed as the model says, a forward
pass without gradients on the model's device, float32 results; unreadable images either
stop the work (the default) or are skipped and listed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from vpr_embedded.data.datasets import PlaceDataset
from vpr_embedded.data.images import ImageReadError, load_tensor
from vpr_embedded.metrics import recall_at_n
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.progress import bar


@dataclass
class Embedded:
    """Descriptors (N, D) of the images that could be read, their indices in the input,
    the paths skipped as unreadable, and the seconds spent in forward passes."""

    descriptors: NDArray[np.float32]
    kept: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    forward_seconds: float = 0.0


def embed_images(
    model: VPRModel,
    paths: Sequence[Path],
    *,
    batch_size: int = 32,
    skip_unreadable: bool = False,
    desc: str = "images",
    progress: bool = True,
) -> Embedded:
    """Descriptors of ``paths`` (in order), ``batch_size`` images per forward pass."""
    feats: list[NDArray[np.float32]] = []
    out = Embedded(np.zeros((0, model.descriptor_dim), np.float32))
    device = next(model.parameters()).device
    model.eval()
    with bar(len(paths), desc, "img", enabled=progress) as shown:
        for start in range(0, len(paths), batch_size):
            xs, idx = [], []
            for i in range(start, min(start + batch_size, len(paths))):
                try:
                    xs.append(load_tensor(paths[i], model.preprocessing))
                    idx.append(i)
                except ImageReadError:
                    if not skip_unreadable:
                        raise
                    out.skipped.append(str(paths[i]))
            shown.update(min(batch_size, len(paths) - start))
            if not xs:
                continue
            t = time.perf_counter()
            with torch.no_grad():
                d = model(torch.stack(xs).to(device)).cpu()
            out.forward_seconds += time.perf_counter() - t
            feats.append(d.numpy().astype(np.float32))
            out.kept += idx
    if feats:
        out.descriptors = np.ascontiguousarray(np.concatenate(feats), dtype=np.float32)
    return out


def exact_recall(
    model: VPRModel, dataset: PlaceDataset, *, progress: bool = False
) -> dict[str, float]:
    """R@1/5/10 of ``model`` on ``dataset`` by exact cosine search in float32: the quick
    check training runs after every epoch and the zoo records."""
    refs = embed_images(model, dataset.references, desc="references", progress=progress)
    qs = embed_images(model, dataset.queries, desc="queries", progress=progress)
    sim = qs.descriptors @ refs.descriptors.T
    ids = np.argsort(-sim, axis=1, kind="stable")[:, :10]
    r = recall_at_n(ids, dataset.positives, (1, 5, 10))
    return {f"R@{n}": float(v) for n, v in r.items()}
