"""Train a VPR model of another architecture from a teacher's descriptors, no labels.

Why: ResNet ImageNet or VPR weights cannot be obtained offline here, and a randomly
initialised ResNet means nothing. A ResNet distilled from the EfficientNet-Lite0 teacher
on a map's reference images is a real ResNet-based VPR model (weaker than the teacher)
that the pruning stage can then be measured on.

The descriptors differ in size, so the loss compares relations within a batch: the MSE
between the student's and the teacher's cosine-similarity matrices, plus the KL
divergence between their row-wise softmax over the other images (temperature tau), which
weighs each image's nearest neighbours, what recall@1 ranks by. Every batch is a new
augmented view labelled by the teacher on the fly. BatchNorm trains (a fresh student has
no statistics to keep). AdamW with a cosine learning rate; bf16 autocast on CUDA.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from vpr_embedded import progress
from vpr_embedded.data.images import load_images
from vpr_embedded.devices import torch_device
from vpr_embedded.models.checkpoints import save_checkpoint
from vpr_embedded.models.loading import load_model
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.prune.recovery import augment, similarity_loss
from vpr_embedded.quantize import sample_folders
from vpr_embedded.settings import option, required


@dataclass(frozen=True)
class DistillConfig:
    """epochs: passes over the images. images_per_folder: evenly sampled cap per folder.
    temperature: of the neighbour KL term; kl_weight / sim_weight weigh the two terms."""

    epochs: int = option(30, "passes over the images", minimum=0)
    batch_size: int = option(64, "images per batch", minimum=1)
    lr: float = option(1e-3, "learning rate (cosine schedule)")
    weight_decay: float = 0.05
    sim_weight: float = 10.0
    kl_weight: float = 1.0
    temperature: float = 0.05
    images_per_folder: int = option(2000, "cap, evenly sampled", minimum=1)
    seed: int = option(0, "seed of the student's init and the data order", minimum=0)
    device: str = option("cpu", "cpu, cuda or cuda:N")
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(
                f"batch size must be >= 2 (similarities need pairs), got {self.batch_size}"
            )
        if self.lr <= 0 or self.temperature <= 0:
            raise ValueError(
                f"lr and temperature must be positive, got {self.lr}, {self.temperature}"
            )
        if self.images_per_folder < 1:
            raise ValueError(f"images per folder must be >= 1, got {self.images_per_folder}")


def relation_loss(student: Tensor, teacher: Tensor, cfg: DistillConfig) -> Tensor:
    """Similarity-matrix MSE + neighbour KL between unit-norm descriptor batches."""
    s, t = student @ student.T, teacher @ teacher.T
    off = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    log_p_s = F.log_softmax((s / cfg.temperature).masked_fill(~off, -1e4), dim=1)
    p_t = F.softmax((t / cfg.temperature).masked_fill(~off, -1e4), dim=1)
    kl = F.kl_div(log_p_s, p_t, reduction="batchmean")
    return cfg.sim_weight * similarity_loss(student, teacher) + cfg.kl_weight * kl


def distill(
    student: VPRModel, teacher: VPRModel, paths: Sequence[Path], cfg: DistillConfig
) -> list[float]:
    """Train ``student`` in place on ``paths``; returns the mean loss per epoch."""
    if student.preprocessing != teacher.preprocessing:
        raise ValueError(
            "student and teacher must read images the same way (input size, mean/std): "
            f"{student.preprocessing} vs {teacher.preprocessing}; pass --input-size"
        )
    if len(paths) < 2 * cfg.batch_size:
        raise ValueError(
            f"{len(paths)} images are too few for batches of {cfg.batch_size}: "
            "add --images folders or lower --batch-size"
        )
    device = torch_device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    images = load_images(paths, teacher.preprocessing, desc="images" if cfg.progress else None)
    images = images.to(device)
    teacher = teacher.to(device).eval()
    student.to(device)
    try:
        return _train(student, teacher, images, cfg, gen, device)
    finally:  # also after an error: the caller's models stay on the CPU
        student.cpu().eval()
        teacher.cpu()


def _train(
    student: VPRModel,
    teacher: VPRModel,
    images: Tensor,
    cfg: DistillConfig,
    gen: torch.Generator,
    device: torch.device,
) -> list[float]:
    n = len(images)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = n // cfg.batch_size  # full batches only: BatchNorm trains
    total = cfg.epochs * per_epoch
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda")
    history: list[float] = []
    step = 0
    for epoch in range(cfg.epochs):
        student.train()
        perm = torch.randperm(n, generator=gen)
        desc = f"distill epoch {epoch + 1}/{cfg.epochs}"
        running = 0.0
        with progress.bar(per_epoch, desc, "batch", enabled=cfg.progress) as shown:
            for b in range(per_epoch):
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
                x = augment(images[perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]], gen)
                with torch.no_grad(), autocast:
                    t = teacher(x)
                with autocast:
                    s = student(x)
                loss = relation_loss(s.float(), t.float(), cfg)
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                step += 1
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError("distillation loss is not finite: lower --lr")
                running += value
                shown.update()
                shown.set_postfix_str(f"loss={running / (b + 1):.4g}")
        history.append(running / max(per_epoch, 1))
    return history


@dataclass(frozen=True)
class DistillJob:
    """`vpr-embedded distill`: a model of another architecture trained from a teacher."""

    teacher: str = required("registry name or checkpoint path")
    student: str = required("registry name (fresh) or checkpoint path")
    images: tuple[Path, ...] = option(
        (),
        "unlabelled training images (repeatable; a map's references, never its queries)",
        metavar="DIR",
        repeat=True,
    )
    out: Path = required("student checkpoint (+ OUT.json log)")
    input_size: tuple[int, int] | None = option(None, "model input size", metavar=("H", "W"))
    distill: DistillConfig = field(default_factory=DistillConfig)


@dataclass(frozen=True)
class DistillResult:
    student: VPRModel
    out: Path
    epoch_losses: list[float]


def run_distill(job: DistillJob) -> DistillResult:
    """The distill command: resolve both models, distill, write OUT (+ OUT.json, the log)."""
    if not job.images:
        raise ValueError("distillation needs --images DIR (a map's reference images)")
    cfg = job.distill
    torch_device(cfg.device)  # refuse a bad device before loading anything
    torch.manual_seed(cfg.seed)  # a fresh student's initial weights
    t_model = load_model(job.teacher, job.input_size)
    s_model = load_model(job.student, job.input_size)
    paths = sample_folders([str(p) for p in job.images], cfg.images_per_folder)
    t0 = time.perf_counter()
    history = distill(s_model, t_model, paths, cfg)
    s_model.config = replace(
        s_model.config,
        name=f"{s_model.config.display_name}-distilled-{t_model.config.display_name}",
    )
    out_path = Path(job.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(s_model, out_path)
    log = {
        "teacher": job.teacher,
        "student": job.student,
        "config": asdict(cfg),
        "images": [str(p) for p in paths],
        "epoch_losses": history,
        "seconds": time.perf_counter() - t0,
    }
    Path(str(out_path) + ".json").write_text(json.dumps(log, indent=2) + "\n")
    return DistillResult(s_model, out_path, history)
