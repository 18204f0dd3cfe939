"""The pruning stage's configuration (one frozen dataclass, DESIGN.md conventions)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

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

    epochs: int = 1
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 1e-4
    desc_weight: float = 1.0
    sim_weight: float = 10.0
    feature_weight: float = 1.0
    labels: bool = False
    ms_weight: float = 1.0
    progress: bool = True
    device: str = "cpu"
    augment: bool = False
    lr_schedule: LrSchedule = "constant"
    ema: float = 0.0
    soup: int = 1
    final_epochs: int | None = None

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

    backbone_ratio: float = 0.0
    stage_ratios: tuple[float, ...] | None = None
    global_pruning: bool = False
    importance: Importance = "l2"
    descriptor_dim: int | None = None
    descriptor_ratio: float | None = None
    descriptor_importance: DescriptorImportance = "energy"
    steps: int = 1
    schedule: Schedule = "linear"
    round_to: int = 8
    recover_images: tuple[Path, ...] = ()
    recover_max: int = 400
    calib_images: int = 64
    seed: int = 0
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
