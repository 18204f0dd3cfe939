"""The pruning stage's configuration (one frozen dataclass, DESIGN.md conventions)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vpr_embedded.settings import option, required

Importance = Literal["l2", "taylor", "random"]
DescriptorImportance = Literal["energy", "l1"]
Schedule = Literal["linear", "geometric"]
LrSchedule = Literal["constant", "cosine"]
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
IMPORTANCES: tuple[str, ...] = ("l2", "taylor", "random")
DESCRIPTOR_IMPORTANCES: tuple[str, ...] = ("energy", "l1")
SCHEDULES: tuple[str, ...] = ("linear", "geometric")


@dataclass(frozen=True)
class RecoveryConfig:
    """Label-free recovery by distillation from the unpruned teacher.

    epochs: passes over the recovery images after every pruning step (0: no recovery).
    desc_weight: 1 - cosine between the student's descriptor and the teacher's
    descriptor restricted to the dims the student kept (re-normalised).
    sim_weight: batch cosine-similarity-matrix MSE (works across descriptor dims).
    feature_weight: MSE of the backbone output against the teacher's (kept channels),
    normalised by the teacher's mean square. ms_weight: multi-similarity loss on place
    labels (file name = place), only when ``labels`` is set. BatchNorm statistics stay
    frozen (DESIGN.md: they drift to the recovery images otherwise). device: where the
    student trains ("cpu", "cuda", "cuda:1"); it does not change what a run means, so a
    run started on one device resumes on another. augment: random zoom, shift, small
    rotation, flip and brightness/contrast per image, with the teacher run on the same
    augmented image (its outputs then cannot be cached): a few hundred images are
    otherwise memorised. lr_schedule: "constant" or "cosine" (to zero at the end of every
    step's recovery: the last iterates are less noisy). ema: decay of an exponential moving
    average of the weights that replaces them at the end of the step (0: off). soup: how
    many recoveries (different data orders) start from the same pruned weights at every
    step; their weights are averaged (1: a single recovery). It costs soup times the
    recovery time. final_epochs: epochs of the last step's recovery, which follows the
    largest pruning hit and yields the model that ships (None: ``epochs``).
    """

    epochs: int = option(1, "recovery epochs per step", minimum=0)
    batch_size: int = option(16, "recovery images per batch", minimum=2)
    lr: float = option(3e-4, "recovery learning rate", minimum=0)
    weight_decay: float = 1e-4
    desc_weight: float = 1.0
    sim_weight: float = 10.0
    feature_weight: float = option(1.0, "feature distillation", minimum=0)
    labels: bool = option(False, "multi-similarity on file-name place labels")
    ms_weight: float = 1.0
    progress: bool = True
    device: str = option("cpu", "where recovery trains: cpu, cuda, cuda:N (resumable)")
    augment: bool = option(
        False, "random views of the recovery images, labelled by the teacher on the fly"
    )
    lr_schedule: LrSchedule = option(
        "constant", "cosine: lr decays to 0 by the end of every step's recovery"
    )
    ema: float = option(0.0, "weight-average decay, e.g. 0.99 (0: off)", minimum=0)
    soup: int = option(
        1,
        "average the weights of K recoveries (different data orders) at every step; "
        "K times the recovery time (1: off)",
        metavar="K",
    )
    final_epochs: int | None = option(
        None,
        "recovery epochs of the last step, which yields the shipped model (default: --epochs)",
        metavar="E",
        minimum=0,
    )

    def __post_init__(self) -> None:
        if self.final_epochs is not None and self.final_epochs < 0:
            raise ValueError(f"final epochs must be >= 0, got {self.final_epochs}")
        if self.soup < 1:
            raise ValueError(f"soup must be >= 1 recoveries to average, got {self.soup}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr schedule {self.lr_schedule!r}; use one of {LR_SCHEDULES}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {self.ema}")


@dataclass(frozen=True)
class PruneConfig:
    """What to prune and how.

    backbone_ratio: fraction of channels removed per prunable layer (multiples of 8
    kept); stage_ratios overrides it per stage (stem first). descriptor_dim or
    descriptor_ratio: target descriptor size. steps/schedule: iterative path to the
    targets. recover_images: folders of unlabelled images (recursive); recover_max
    caps how many are used per folder (evenly sampled). calib_images: how many of them
    (evenly spread) rank the channels (Taylor) and descriptor dims (energy) at every
    step; more give a less noisy ranking. cache_dir: where teacher outputs are
    cached (default: beside the run).
    """

    backbone_ratio: float = option(0.0, "channels removed per layer")
    stage_ratios: tuple[float, ...] | None = option(None, "per stage, stem first")
    global_pruning: bool = option(False, "global ranking", flag="--global")
    importance: Importance = option("l2", "channel importance")
    descriptor_dim: int | None = option(None, "target descriptor size", minimum=1)
    descriptor_ratio: float | None = option(None, "descriptor dims removed")
    descriptor_importance: DescriptorImportance = option("energy", "descriptor dim importance")
    steps: int = option(1, "iterative pruning steps", minimum=1)
    schedule: Schedule = option("linear", "how the targets are approached")
    round_to: int = 8
    recover_images: tuple[Path, ...] = option(
        (),
        "unlabelled images for recovery (repeatable; for an evaluation dataset, its "
        "reference images only, never the queries)",
        metavar="DIR",
        repeat=True,
    )
    recover_max: int = option(400, "images per folder (evenly)", minimum=1)
    calib_images: int = option(
        64,
        "recovery images (evenly spread) that rank channels and dims at every step",
        metavar="N",
        minimum=0,
    )
    seed: int = option(0, "seed of the recovery's data order and augmentation", minimum=0)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.backbone_ratio < 1.0:
            raise ValueError(f"backbone ratio must be in [0, 1), got {self.backbone_ratio}")
        if self.stage_ratios is not None and any(not 0 <= r < 1 for r in self.stage_ratios):
            raise ValueError(f"stage ratios must be in [0, 1), got {self.stage_ratios}")
        if self.descriptor_dim is not None and self.descriptor_ratio is not None:
            raise ValueError("give a descriptor dim or a descriptor ratio, not both")
        if self.descriptor_ratio is not None and not 0 <= self.descriptor_ratio < 1:
            raise ValueError(f"descriptor ratio must be in [0, 1), got {self.descriptor_ratio}")
        if self.descriptor_dim is not None and self.descriptor_dim <= 0:
            raise ValueError(f"descriptor dim must be positive, got {self.descriptor_dim}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.calib_images < 1:
            raise ValueError(f"calibration images must be >= 1, got {self.calib_images}")
        if self.importance not in IMPORTANCES:
            raise ValueError(f"unknown importance {self.importance!r}; use one of {IMPORTANCES}")
        if self.descriptor_importance not in DESCRIPTOR_IMPORTANCES:
            raise ValueError(
                f"unknown descriptor importance {self.descriptor_importance!r}; "
                f"use one of {DESCRIPTOR_IMPORTANCES}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; use one of {SCHEDULES}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (paths as strings)."""
        d = asdict(self)
        d["recover_images"] = [str(p) for p in self.recover_images]
        d["cache_dir"] = str(self.cache_dir) if self.cache_dir else None
        d["stage_ratios"] = list(self.stage_ratios) if self.stage_ratios else None
        return d


@dataclass(frozen=True)
class PruneJob:
    """`vpr-embedded prune`: a teacher pruned into a checkpoint, resumable from OUT.steps/."""

    model: str = required("registry name or checkpoint path (teacher)")
    out: Path = required("pruned checkpoint; state in OUT.steps/")
    input_size: tuple[int, int] | None = option(None, "model input size", metavar=("H", "W"))
    prune: PruneConfig = field(default_factory=PruneConfig)
