"""Recovery after a pruning step: distillation from the unpruned teacher, no labels.

Losses (on a batch of recovery images):
- descriptor: 1 - cosine to the teacher's descriptor restricted to the dims the
  student kept (tracked through every descriptor-pruning step) and re-normalised;
- similarity: MSE between the student's and the teacher's batch cosine-similarity
  matrices (a relation, so it works whatever the descriptor dims);
- feature: MSE of the student's backbone output against the teacher's on the kept
  channels (the student's output channels are a tracked subset of the teacher's), over
  the teacher's mean square;
- multi-similarity (Wang et al., 2019) on place labels, optional: frame-aligned
  traversals give them for free (same file name = same place).
Teacher outputs are computed once and cached; with augmentation the teacher also runs
on every augmented batch (the cache still serves losses for logging and Taylor
importance). BatchNorm
statistics are frozen (BN modules in eval mode, their affine weights still train):
with running statistics updated, BN drifts to the recovery images (DESIGN.md).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpr_embedded.data.images import load_images
from vpr_embedded.models.ops import l2_normalize
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.progress import bar as progress_bar
from vpr_embedded.progress import track
from vpr_embedded.prune.config import RecoveryConfig


@dataclass
class RecoveryData:
    """Preprocessed images (N, 3, H, W), the teacher's descriptors (N, Dt) and backbone
    outputs (N, C, h, w), and optional place labels (N,)."""

    images: Tensor
    teacher_desc: Tensor
    teacher_feat: Tensor
    labels: Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])


def place_labels(paths: Sequence[Path]) -> Tensor:
    """Frame-aligned traversals: the same file name is the same place."""
    ids: dict[str, int] = {}
    return torch.tensor([ids.setdefault(p.name, len(ids)) for p in paths], dtype=torch.long)


def teacher_outputs(
    teacher: VPRModel, images: Tensor, batch_size: int = 32, progress: bool = True
) -> tuple[Tensor, Tensor]:
    teacher.eval()
    descs: list[Tensor] = []
    feats: list[Tensor] = []
    with torch.no_grad():
        starts = range(0, len(images), batch_size)
        for i in track(starts, "teacher", "batch", enabled=progress):
            f = teacher.backbone(images[i : i + batch_size])
            feats.append(f)
            descs.append(l2_normalize(teacher.aggregator(f), dim=-1))
    return torch.cat(descs), torch.cat(feats)


def build_recovery_data(
    teacher: VPRModel,
    paths: Sequence[Path],
    *,
    teacher_key: str,
    cache_dir: Path | None,
    labels: bool = False,
    progress: bool = True,
) -> RecoveryData:
    """Load and preprocess ``paths``, run the teacher once, cache the result under
    ``cache_dir`` (keyed by teacher, input size and the image list)."""
    key_src = json.dumps(
        [teacher_key, list(teacher.config.input_size), [str(p) for p in paths]]
    ).encode()
    key = hashlib.sha1(key_src).hexdigest()[:16]
    cache = cache_dir / f"teacher-{key}.pt" if cache_dir is not None else None
    lab = place_labels(paths) if labels else None
    if cache is not None and cache.is_file():
        obj = torch.load(str(cache), map_location="cpu", weights_only=True)
        return RecoveryData(obj["images"], obj["desc"], obj["feat"], lab)
    prep = teacher.preprocessing
    imgs = load_images(paths, prep, desc="recovery images" if progress else None)
    desc, feat = teacher_outputs(teacher, imgs, progress=progress)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        torch.save({"images": imgs, "desc": desc, "feat": feat}, str(tmp))
        tmp.replace(cache)
    return RecoveryData(imgs, desc, feat, lab)


def freeze_bn_stats(model: nn.Module) -> None:
    """Train mode everywhere except BatchNorm, whose running statistics stay fixed."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def similarity_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """MSE between the batch cosine-similarity matrices (unit-norm rows)."""
    s = student @ student.T
    t = teacher @ teacher.T
    return ((s - t) ** 2).mean()


def feature_loss(student: Tensor, teacher: Tensor) -> Tensor:
    return ((student - teacher) ** 2).mean() / (teacher * teacher).mean().clamp(min=1e-12)


def multi_similarity_loss(
    desc: Tensor,
    labels: Tensor,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    margin: float = 0.1,
) -> Tensor:
    """Multi-similarity loss with its hard-pair mining (Wang et al., CVPR 2019)."""
    sim = desc @ desc.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=desc.device)
    pos_mask, neg_mask = same & ~eye, ~same
    losses: list[Tensor] = []
    for i in range(len(labels)):
        pos, neg = sim[i][pos_mask[i]], sim[i][neg_mask[i]]
        if len(pos) == 0 or len(neg) == 0:
            continue
        neg = neg[neg + margin > pos.min()]
        pos = pos[pos - margin < sim[i][neg_mask[i]].max()]
        if len(pos) == 0 or len(neg) == 0:
            continue
        lp = torch.log1p(torch.exp(-alpha * (pos - base)).sum()) / alpha
        ln = torch.log1p(torch.exp(beta * (neg - base)).sum()) / beta
        losses.append(lp + ln)
    if not losses:
        return desc.sum() * 0.0
    return torch.stack(losses).mean()


@dataclass
class Kept:
    """Which of the teacher's backbone output channels and descriptor dims the student
    still has (indices into the teacher's), in the student's order."""

    channels: Tensor
    dims: Tensor


@dataclass
class Batch:
    """Images on the student's device with the teacher's unit-norm descriptors (all its
    dims) and backbone outputs (all its channels) for exactly those images."""

    images: Tensor
    teacher_desc: Tensor
    teacher_feat: Tensor
    labels: Tensor | None = None


def augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Per image: zoom in 0-30 %, shift within the zoom, rotate up to 8 degrees, flip
    half of the time, scale contrast by 0.75-1.25 and shift brightness (normalised
    units, +-0.3). One affine resample for the whole batch; parameters drawn on the CPU
    so that a seed gives the same views on any device. The rotation acts on normalised
    coordinates: a slight shear for non-square inputs, harmless for a random view."""
    b = x.shape[0]
    r = torch.rand(b, 7, generator=gen)
    scale = 1.0 - 0.3 * r[:, 0]
    angle = (r[:, 1] - 0.5) * math.radians(16)
    flip = torch.where(r[:, 2] < 0.5, -1.0, 1.0)
    tx, ty = (r[:, 3] - 0.5) * 2 * (1 - scale), (r[:, 4] - 0.5) * 2 * (1 - scale)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    ).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    contrast = (0.75 + 0.5 * r[:, 5]).view(b, 1, 1, 1).to(x)
    brightness = (0.6 * r[:, 6] - 0.3).view(b, 1, 1, 1).to(x)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return (out - mean) * contrast + mean + brightness


def make_batch(
    data: RecoveryData,
    idx: Tensor,
    device: torch.device,
    teacher: VPRModel | None = None,
    gen: torch.Generator | None = None,
) -> Batch:
    """The cached teacher outputs of ``idx``; with ``teacher`` (on ``device``) and
    ``gen``, an augmented view of the images and the teacher's outputs on that view."""
    x = data.images[idx].to(device)
    labels = data.labels[idx].to(device) if data.labels is not None else None
    if teacher is None:
        desc, feat = data.teacher_desc[idx].to(device), data.teacher_feat[idx].to(device)
        return Batch(x, desc, feat, labels)
    if gen is not None:
        x = augment(x, gen)
    with torch.no_grad():
        f = teacher.backbone(x)
        d = l2_normalize(teacher.aggregator(f), dim=-1)
    return Batch(x, d, f, labels)


def distill_loss(model: VPRModel, batch: Batch, kept: Kept, cfg: RecoveryConfig) -> Tensor:
    """The recovery objective on one batch (already on the model's device)."""
    f = model.backbone(batch.images)
    d = l2_normalize(model.aggregator(f), dim=-1)
    t = batch.teacher_desc
    loss = cfg.sim_weight * similarity_loss(d, t)
    if cfg.desc_weight > 0:
        tk = l2_normalize(t.index_select(1, kept.dims.to(t.device)), dim=-1)
        loss = loss + cfg.desc_weight * (1.0 - (d * tk).sum(1)).mean()
    if cfg.feature_weight > 0:
        ft = batch.teacher_feat.index_select(1, kept.channels.to(t.device))
        loss = loss + cfg.feature_weight * feature_loss(f, ft)
    if cfg.labels and batch.labels is not None and cfg.ms_weight > 0:
        loss = loss + cfg.ms_weight * multi_similarity_loss(d, batch.labels)
    return loss


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def batches(
    data: RecoveryData, batch_size: int, gen: torch.Generator, labelled: bool
) -> list[Tensor]:
    """Shuffled index batches; with labels, whole places per batch (so that every
    anchor has positives)."""
    if not labelled or data.labels is None:
        perm = torch.randperm(len(data), generator=gen)
        return [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
    places = torch.unique(data.labels)
    places = places[torch.randperm(len(places), generator=gen)]
    members = [torch.nonzero(data.labels == p).flatten() for p in places]
    per = max(1, batch_size // max(1, max(len(m) for m in members)))
    return [torch.cat(members[i : i + per]) for i in range(0, len(members), per)]


def mean_loss(model: VPRModel, data: RecoveryData, kept: Kept, cfg: RecoveryConfig) -> float:
    """The recovery objective over all images (no gradients), for logging and tests."""
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), cfg.batch_size):
            idx = torch.arange(i, min(i + cfg.batch_size, len(data)))
            batch = make_batch(data, idx, _device_of(model))
            total += float(distill_loss(model, batch, kept, cfg)) * len(idx)
            n += len(idx)
    return total / max(n, 1)


def accumulate_gradients(
    model: VPRModel, data: RecoveryData, kept: Kept, cfg: RecoveryConfig, images: Tensor
) -> float:
    """Fill .grad with d(distillation loss)/dw over the recovery images ``images``
    (indices; for Taylor importance); returns the loss. BN statistics frozen."""
    freeze_bn_stats(model)
    total = 0.0
    n = len(images)
    for i in range(0, n, cfg.batch_size):
        idx = images[i : i + cfg.batch_size]
        batch = make_batch(data, idx, _device_of(model))
        loss = distill_loss(model, batch, kept, cfg) * (len(idx) / n)
        loss.backward()  # type: ignore[no-untyped-call]
        total += float(loss.detach())
    model.eval()
    return total


def calibration_indices(n_images: int, count: int) -> Tensor:
    """``count`` indices spread evenly over the recovery set (which lists its folders
    one after the other), so that every folder informs the importance."""
    idx = torch.linspace(0, n_images - 1, min(count, n_images)).round().long()
    out: Tensor = torch.unique_consecutive(idx)
    return out


class WeightAverage:
    """Exponential moving average of the trainable weights, with the usual warm-up
    (decay min(d, (1 + t) / (10 + t))) so that the pruned starting point fades fast.
    The warm-up reaches 0.95 after ~170 updates and 0.99 after ~890: with a few hundred
    updates a step, decays above ~0.95 all act alike."""

    def __init__(self, params: list[nn.Parameter], decay: float) -> None:
        self.params = params
        self.decay = decay
        self.average = [p.detach().clone() for p in params]
        self.updates = 0

    def update(self) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        with torch.no_grad():
            for a, p in zip(self.average, self.params, strict=True):
                a.lerp_(p.detach(), 1.0 - d)

    def apply(self) -> None:
        with torch.no_grad():
            for a, p in zip(self.average, self.params, strict=True):
                p.copy_(a)


SOUP_SEED_STRIDE = 100_003  # member m of a soup trains on the data order of seed + m * this


def recover(
    model: VPRModel,
    data: RecoveryData,
    kept: Kept,
    cfg: RecoveryConfig,
    *,
    teacher: VPRModel | None = None,
    seed: int = 0,
    desc: str = "recover",
) -> list[float]:
    """AdamW on the recovery objective for cfg.epochs; returns mean loss per epoch.
    cfg.augment needs ``teacher`` (on the model's device) to label the augmented views.

    With cfg.soup = K > 1, K recoveries start from the same pruned weights with
    different data orders (member 0 is the plain run) and their weights are averaged
    (a "model soup", Wortsman et al., 2022): they share one structure and one starting
    point, so the average is a model of its own, and it carries less of a single data
    order's luck into the next pruning step. The epoch losses are the members' means."""
    if cfg.epochs <= 0 or len(data) == 0:
        return []
    if cfg.augment and teacher is None:
        raise ValueError("augmented recovery needs the teacher to label the augmented images")
    if cfg.soup == 1:
        return _recover_once(model, data, kept, cfg, teacher, seed, desc)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    total: dict[str, Tensor] = {}
    histories: list[list[float]] = []
    for member in range(cfg.soup):
        model.load_state_dict(start)
        member_desc = f"{desc} soup {member + 1}/{cfg.soup}"
        member_seed = seed + SOUP_SEED_STRIDE * member
        histories.append(_recover_once(model, data, kept, cfg, teacher, member_seed, member_desc))
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                total[k] = total[k] + v if k in total else v.detach().clone()
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k in total:  # integer buffers (BN counters) are frozen, equal in all members
                v.copy_(total[k] / cfg.soup)
    return [sum(h[e] for h in histories) / cfg.soup for e in range(len(histories[0]))]


def _recover_once(
    model: VPRModel,
    data: RecoveryData,
    kept: Kept,
    cfg: RecoveryConfig,
    teacher: VPRModel | None,
    seed: int,
    desc: str,
) -> list[float]:
    device = _device_of(model)
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    average = WeightAverage(params, cfg.ema) if cfg.ema > 0 else None
    labelled = cfg.labels and data.labels is not None
    history: list[float] = []
    # All epochs' batches up front, so that the cosine schedule knows the true count.
    plan = [batches(data, cfg.batch_size, gen, labelled) for _ in range(cfg.epochs)]
    total_updates = sum(1 for bs in plan for idx in bs if len(idx) >= 2)
    updates = 0
    for epoch, bs in enumerate(plan):
        freeze_bn_stats(model)
        total, seen = 0.0, 0
        desc_epoch = f"{desc} epoch {epoch + 1}/{cfg.epochs}"
        with progress_bar(len(bs), desc_epoch, "batch", enabled=cfg.progress) as shown:
            for idx in bs:
                shown.update()
                if len(idx) < 2:  # a similarity matrix needs two images
                    continue
                if cfg.lr_schedule == "cosine":
                    frac = updates / max(total_updates, 1)
                    for group in opt.param_groups:
                        group["lr"] = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
                if cfg.augment:
                    batch = make_batch(data, idx, device, teacher, gen)
                else:
                    batch = make_batch(data, idx, device)
                loss = distill_loss(model, batch, kept, cfg)
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                updates += 1
                if average is not None:
                    average.update()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError("recovery loss is not finite: lower --lr")
                total += value * len(idx)
                seen += len(idx)
                shown.set_postfix_str(f"loss={total / seen:.4g}")
        history.append(total / max(seen, 1))
    if average is not None:
        average.apply()
    model.eval()
    model.zero_grad(set_to_none=True)
    return history
