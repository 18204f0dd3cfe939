"""Train (fine-tune) a VPR model on place-labelled images: `vpr-embedded train`.

A registry model (backbone + aggregator) or a checkpoint learns descriptors in which views
of one place are close and other places far:

- batches of P places x K images (``places_per_batch`` x ``images_per_place``), drawn so
  that no two places of a batch are route neighbours (they would look alike and be
  pushed apart);
- the multi-similarity loss with its pair miner from pytorch-metric-learning (the loss
  GSV-Cities and MixVPR train with), not a copy of it;
- augmentation for condition changes (data/augment.py);
- AdamW, a linear warm-up then a cosine decay per step, the aggregator at ``head_lr_scale``
  times the backbone's rate (a new head starts from random weights);
- after every epoch: recall@1/5 on a validation segment, the best checkpoint kept, and a
  resume state, so that a stopped run goes on from its last finished epoch.

Held-out places: train on ``--split train`` and validate on ``--val-split val`` of a
traversal (data/splits.py); the test segment plays no part here.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vpr_embedded.data.augment import ConditionAugment
from vpr_embedded.data.datasets import load_dataset
from vpr_embedded.data.images import load_images
from vpr_embedded.data.places import PlaceFormat, PlaceImages, load_places
from vpr_embedded.data.splits import Segment
from vpr_embedded.devices import torch_device
from vpr_embedded.extras import require
from vpr_embedded.models.checkpoints import save_checkpoint
from vpr_embedded.models.embed import exact_recall
from vpr_embedded.models.loading import load_model
from vpr_embedded.models.vpr import VPRModel, build_model, list_models
from vpr_embedded.progress import bar
from vpr_embedded.settings import option, required, to_dict

STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainJob:
    """`vpr-embedded train`: fine-tune ``model`` on the places of ``data``."""

    model: str = required("registry name, zoo:NAME or checkpoint to start from")
    data: str = required("training images: dataset folder or name")
    out: Path = required("output folder: best.pt, last.pt, history.json, resume state")
    format: PlaceFormat | None = option(None, "layout of the training data (default: detect)")
    split: Segment | None = option("train", "segment of an aligned traversal to train on")
    val_data: str | None = option(None, "validation dataset (default: --data)")
    val_split: Segment | None = option("val", "segment of the validation dataset")
    input_size: tuple[int, int] | None = option(None, "model input size", metavar=("H", "W"))
    epochs: int = option(10, "training epochs", minimum=1)
    places_per_batch: int = option(32, "P: places per batch", minimum=2)
    images_per_place: int = option(4, "K: images per place", minimum=2)
    frames_per_place: int = option(2, "aligned data: consecutive frames per place", minimum=1)
    neighbour_gap: int = option(2, "aligned data: places this close never share a batch")
    cell_m: float = option(25.0, "gmberton data: metres per place cell", minimum=0)
    cities: tuple[str, ...] | None = option(None, "GSV-Cities: cities to use", repeat=True)
    lr: float = option(3e-4, "backbone learning rate (AdamW)", minimum=0)
    head_lr_scale: float = option(10.0, "aggregator learning rate / backbone's", minimum=0)
    weight_decay: float = option(1e-3, "AdamW weight decay", minimum=0)
    warmup_epochs: float = option(0.5, "linear warm-up, in epochs", minimum=0)
    ms_alpha: float = option(1.0, "multi-similarity alpha (positives)", minimum=0)
    ms_beta: float = option(50.0, "multi-similarity beta (negatives)", minimum=0)
    ms_base: float = option(0.0, "multi-similarity base similarity")
    miner_epsilon: float = option(0.1, "multi-similarity miner margin", minimum=0)
    augment: bool = option(True, "condition-change augmentation", negate=True, flag="--no-augment")
    device: str = option("cpu", "cpu, cuda or cuda:N")
    seed: int = option(0, "seed of batches, augmentation and head init", minimum=0)
    stop_after: int | None = option(
        None, "stop after this epoch; the same command later goes on from it", minimum=1
    )
    progress: bool = True


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    recall: dict[str, float]
    seconds: float
    lr: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "loss": self.loss,
            "recall": self.recall,
            "seconds": self.seconds,
            "lr": self.lr,
        }


@dataclass
class TrainResult:
    out: Path
    best: Path
    best_epoch: int
    best_recall: dict[str, float]
    history: list[EpochRecord] = field(default_factory=list)
    resumed_from: int = 0

    def format(self) -> str:
        lines = [f"{'epoch':>5} {'loss':>8} {'R@1':>6} {'R@5':>6} {'s':>6}"]
        for h in self.history:
            lines.append(
                f"{h.epoch:5d} {h.loss:8.4f} {h.recall['R@1']:6.3f} {h.recall['R@5']:6.3f} "
                f"{h.seconds:6.1f}"
            )
        lines.append(
            f"best: epoch {self.best_epoch}, validation R@1 {self.best_recall['R@1']:.3f}, "
            f"R@5 {self.best_recall['R@5']:.3f} -> {self.best}"
        )
        return "\n".join(lines)


class PlaceBatches:
    """Epochs of P x K batches: every place at most once per epoch; K images per place
    (with repeats when a place has fewer); places within ``gap`` route positions of
    each other never in one batch."""

    def __init__(self, places: PlaceImages, p: int, k: int, gap: int, seed: int) -> None:
        if places.places < p:
            raise ValueError(
                f"{places.name}: {places.places} places, fewer than the {p} a batch needs; "
                "lower --places-per-batch"
            )
        self.by_place = [np.flatnonzero(places.labels == i) for i in range(places.places)]
        self.order = places.order
        self.p, self.k, self.gap = p, k, gap if places.order is not None else 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.by_place) // self.p

    def epoch(self) -> list[np.ndarray]:
        """Index arrays of one epoch's batches (image indices, P*K each).

        Places are walked in route order and each goes to a random one of the least
        filled batches whose last place lies more than ``gap`` positions back; with more
        batches than ``gap`` one is always free, so neighbours never share a batch and
        the batches change from epoch to epoch. Places beyond B*P are left out at random.
        """
        n, b = len(self.by_place), len(self)
        kept = np.sort(self.rng.permutation(n)[: b * self.p])
        if self.order is not None:
            kept = kept[np.argsort(self.order[kept], kind="stable")]
        members: list[list[int]] = [[] for _ in range(b)]
        last = np.full(b, -(10**9), dtype=np.int64)
        for place in kept:
            pos = int(self.order[place]) if self.order is not None else 0
            free = [i for i in range(b) if len(members[i]) < self.p and pos - last[i] > self.gap]
            if not free:
                continue  # only when the last places are crowded together; left out
            fewest = min(len(members[i]) for i in free)
            choice = int(self.rng.choice([i for i in free if len(members[i]) == fewest]))
            members[choice].append(int(place))
            last[choice] = pos
        full = [m for m in members if len(m) == self.p]
        self.rng.shuffle(full)
        return [np.concatenate([self._views(pl) for pl in m]) for m in full]

    def _views(self, place: int) -> np.ndarray:
        idx = self.by_place[place]
        replace_ = len(idx) < self.k
        return np.asarray(self.rng.choice(idx, self.k, replace=replace_), dtype=np.int64)


def _load_batch(places: PlaceImages, idx: np.ndarray, model: VPRModel) -> tuple[Tensor, Tensor]:
    x = load_images([places.paths[i] for i in idx], model.preprocessing)
    return x, torch.from_numpy(places.labels[idx])


def _optimizer(model: VPRModel, job: TrainJob) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        [
            {"params": list(model.backbone.parameters()), "lr": job.lr},
            {"params": list(model.aggregator.parameters()), "lr": job.lr * job.head_lr_scale},
        ],
        weight_decay=job.weight_decay,
    )


def _schedule(
    opt: torch.optim.Optimizer, steps: int, warmup: int
) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _start_model(job: TrainJob) -> VPRModel:
    """The model to train; a registry name starts from ImageNet weights where there are."""
    torch.manual_seed(job.seed)
    if job.model in list_models():
        return build_model(job.model, input_size=job.input_size)
    return load_model(job.model, input_size=job.input_size)


def _job_key(job: TrainJob) -> dict[str, Any]:
    """What must match for a resume: everything that shapes the run (the epoch count sets
    the learning-rate schedule), not where it runs or when it pauses."""
    d = to_dict(job)
    for k in ("device", "progress", "stop_after", "out"):
        d.pop(k, None)
    plain: dict[str, Any] = json.loads(json.dumps(d, default=str))
    return plain


def _resume(
    path: Path, job: TrainJob, model: VPRModel, opt: torch.optim.Optimizer, sched: Any
) -> tuple[int, list[EpochRecord], dict[str, Any]]:
    state = torch.load(str(path), map_location="cpu", weights_only=False)
    if state.get("job") != _job_key(job):
        raise ValueError(
            f"{path} was written by a run with other settings; use a new --out, or delete "
            "the folder to start again"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["schedule"])
    history = [EpochRecord(**h) for h in state["history"]]
    return int(state["epoch"]), history, state["rng"]


def _save_state(
    path: Path,
    job: TrainJob,
    model: VPRModel,
    opt: torch.optim.Optimizer,
    sched: Any,
    epoch: int,
    history: list[EpochRecord],
    rng: dict[str, Any],
) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(
        {
            "job": _job_key(job),
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "schedule": sched.state_dict(),
            "epoch": epoch,
            "history": [h.to_dict() for h in history],
            "rng": rng,
        },
        str(tmp),
    )
    tmp.replace(path)


def _train_epoch(
    model: VPRModel,
    places: PlaceImages,
    batches: list[np.ndarray],
    parts: tuple[Any, Any, Any, Any],
    job: TrainJob,
    epoch: int,
) -> float:
    loss_fn, miner, opt, sched = parts
    aug = ConditionAugment(seed=job.seed * 1000 + epoch) if job.augment else None
    device = next(model.parameters()).device
    model.train()
    total = 0.0
    with bar(len(batches), f"epoch {epoch}/{job.epochs}", "batch", enabled=job.progress) as b:
        for idx in batches:
            x, y = _load_batch(places, idx, model)
            if aug is not None:
                x = aug(x)
            x, y = x.to(device), y.to(device)
            d = model(x)
            loss = loss_fn(d, y, miner(d, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            value = float(loss.detach())
            total += value
            b.update()
            b.set_postfix_str(f"loss {value:.3f}")
    model.eval()
    return total / max(1, len(batches))


def run_train(job: TrainJob) -> TrainResult:
    """Train, validating after every epoch; resumes from ``out`` when a state is there."""
    require("train", "vpr-embedded train", ("pytorch_metric_learning",))
    from pytorch_metric_learning import losses, miners

    places = load_places(
        job.data,
        job.format,
        split=job.split,
        frames_per_place=job.frames_per_place,
        cell_m=job.cell_m,
        cities=job.cities,
        min_images=2,
    )
    val = load_dataset(job.val_data or job.data, split=job.val_split)
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(to_dict(job), indent=2, default=str) + "\n")

    model = _start_model(job)
    device = torch_device(job.device)
    model.to(device)
    sampler = PlaceBatches(
        places, job.places_per_batch, job.images_per_place, job.neighbour_gap, job.seed
    )
    opt = _optimizer(model, job)
    steps = job.epochs * len(sampler)
    sched = _schedule(opt, steps, round(job.warmup_epochs * len(sampler)))
    loss_fn = losses.MultiSimilarityLoss(alpha=job.ms_alpha, beta=job.ms_beta, base=job.ms_base)
    miner = miners.MultiSimilarityMiner(epsilon=job.miner_epsilon)

    state_path = out / STATE_FILE
    start, history = 0, list[EpochRecord]()
    if state_path.is_file():
        start, history, rng = _resume(state_path, job, model, opt, sched)
        sampler.rng.bit_generator.state = rng["sampler"]
        random.setstate(rng["python"])
    best_path = out / "best.pt"
    last_epoch = min(job.epochs, job.stop_after or job.epochs)
    for epoch in range(start + 1, last_epoch + 1):
        t = time.perf_counter()
        loss = _train_epoch(
            model, places, sampler.epoch(), (loss_fn, miner, opt, sched), job, epoch
        )
        recall = exact_recall(model, val, progress=job.progress)
        history.append(
            EpochRecord(epoch, loss, recall, time.perf_counter() - t, opt.param_groups[0]["lr"])
        )
        if recall["R@1"] >= max((h.recall["R@1"] for h in history), default=-1.0):
            save_checkpoint(model, best_path)
        save_checkpoint(model, out / "last.pt")
        rng = {"sampler": sampler.rng.bit_generator.state, "python": random.getstate()}
        _save_state(state_path, job, model, opt, sched, epoch, history, rng)
        (out / "history.json").write_text(
            json.dumps([h.to_dict() for h in history], indent=2) + "\n"
        )
    # best.pt holds the last epoch with the highest validation R@1 (ties: the later one).
    best = max(history, key=lambda h: (h.recall["R@1"], h.epoch))
    return TrainResult(out, best_path, best.epoch, best.recall, history, start)
