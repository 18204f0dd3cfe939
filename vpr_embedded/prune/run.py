"""Iterative pruning: n steps of (descriptor pruning, backbone pruning, recovery)
towards the targets, each step's state saved so that a rerun resumes."""

from __future__ import annotations

import copy
import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vpr_embedded.devices import torch_device
from vpr_embedded.models.checkpoints import file_digest, load_checkpoint, save_checkpoint
from vpr_embedded.models.loading import load_model
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.prune.backbone import conv_widths, n_stages, prune_backbone
from vpr_embedded.prune.config import PruneConfig, PruneJob, RecoveryConfig
from vpr_embedded.prune.descriptor import (
    dims_of_units,
    energy_importance,
    l1_importance,
    prune_descriptor_units,
    select_units,
    structure,
    target_units,
)
from vpr_embedded.prune.recovery import (
    Kept,
    RecoveryData,
    accumulate_gradients,
    build_recovery_data,
    calibration_indices,
    mean_loss,
    recover,
)
from vpr_embedded.prune.schedule import dim_schedule, ratio_schedule
from vpr_embedded.prune.widths import rebuild
from vpr_embedded.quantize import sample_folders

STATE_FORMAT = "vpr-embedded-prune-step/1"


@dataclass
class StepRecord:
    step: int
    stage_ratios: list[float]
    descriptor_dim: int
    parameters: int
    loss_pruned: float | None = None
    loss_recovered: float | None = None
    epoch_losses: list[float] = field(default_factory=list)
    importance: str = ""
    seconds: float = 0.0


@dataclass
class PruneResult:
    model: VPRModel
    steps: list[StepRecord]
    recovery_images: list[str]
    resumed_from: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "config": self.model.config.to_dict(),
            "descriptor_dim": self.model.descriptor_dim,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "steps": [asdict(s) for s in self.steps],
            "recovery_images": self.recovery_images,
            "resumed_from": self.resumed_from,
        }


def _stage_targets(model: VPRModel, cfg: PruneConfig) -> list[float]:
    n = n_stages(model.backbone)
    if cfg.stage_ratios is None:
        return [cfg.backbone_ratio] * n
    if len(cfg.stage_ratios) != n:
        raise ValueError(
            f"{model.config.backbone} has {n} stages (stem first): got {len(cfg.stage_ratios)} "
            "stage ratios"
        )
    return list(cfg.stage_ratios)


def _target_dim(model: VPRModel, cfg: PruneConfig) -> int:
    d = model.descriptor_dim
    if cfg.descriptor_dim is not None:
        if cfg.descriptor_dim > d:
            raise ValueError(f"descriptor dim {cfg.descriptor_dim} exceeds the model's {d}")
        return cfg.descriptor_dim
    if cfg.descriptor_ratio is not None:
        return round(d * (1 - cfg.descriptor_ratio))
    return d


def _teacher_key(spec: str, teacher: VPRModel) -> str:
    """What the cached teacher outputs depend on: a checkpoint's content, not its path
    (a checkpoint rewritten in place must not reuse the old outputs)."""
    if spec and Path(spec).is_file():
        return f"{spec}@{file_digest(spec)}"
    return spec or teacher.config.name


def _params(model: VPRModel) -> int:
    return sum(p.numel() for p in model.parameters())


def steps_dir(out: Path) -> Path:
    return out.with_name(out.name + ".steps")


def _fingerprint(
    teacher_spec: str, input_size: tuple[int, int], cfg: PruneConfig
) -> dict[str, Any]:
    d = cfg.to_dict()
    d["recovery"] = {k: v for k, v in d["recovery"].items() if k not in ("progress", "device")}
    d.pop("cache_dir", None)  # where the cache lives does not change the result
    return {"teacher": teacher_spec, "input_size": list(input_size), "prune": d}


def _with_new_defaults(fp: dict[str, Any]) -> dict[str, Any]:
    """A run.json written before a recovery option existed ran with its default."""
    defaults = {
        k: v for k, v in asdict(RecoveryConfig()).items() if k not in ("progress", "device")
    }
    prune = dict(fp.get("prune", {}))
    prune["recovery"] = {**defaults, **prune.get("recovery", {})}
    return {**fp, "prune": prune}


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(prefix + k)
    return out


def _check_resume(folder: Path, fp: dict[str, Any]) -> None:
    run = folder / "run.json"
    if not run.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        run.write_text(json.dumps(fp, indent=2) + "\n")
        return
    old = _with_new_defaults(json.loads(run.read_text()))
    if old != fp:
        diff = [k.removeprefix("prune.") for k in _differences(old, fp)]
        raise ValueError(
            f"{folder} holds a run made with different settings ({', '.join(diff)}): rerun "
            "the original command to resume it, or delete that folder / choose another --out"
        )


def check_finished_run(out: Path, teacher_spec: str, teacher: VPRModel, cfg: PruneConfig) -> None:
    """Refuse to reuse the finished checkpoint ``out`` for other settings (ValueError)
    when its run record exists; a checkpoint without one cannot be checked."""
    if (steps_dir(out) / "run.json").is_file():
        _check_resume(steps_dir(out), _fingerprint(teacher_spec, teacher.config.input_size, cfg))


def _save_step(folder: Path, k: int, model: VPRModel, kept: Kept, recs: list[StepRecord]) -> None:
    obj = {
        "format": "vpr-embedded/1",
        "state_format": STATE_FORMAT,
        "config": model.config.to_dict(),
        "state_dict": {n: t.cpu() for n, t in model.state_dict().items()},
        "kept_channels": kept.channels.clone(),
        "kept_dims": kept.dims.clone(),
        "records": json.dumps([asdict(r) for r in recs]),
    }
    tmp = folder / f"step_{k:03d}.pt.tmp"
    torch.save(obj, str(tmp))
    tmp.replace(folder / f"step_{k:03d}.pt")  # atomic: a killed run never leaves half a step


def _last_step(folder: Path) -> tuple[int, Path | None]:
    found = sorted(folder.glob("step_*.pt"))
    if not found:
        return 0, None
    return int(found[-1].stem.split("_")[1]), found[-1]


@dataclass
class PruneState:
    """A pruning run between steps: what a resumed run reloads from OUT.steps/ and what each
    step reads and advances."""

    student: VPRModel
    kept: Kept
    records: list[StepRecord]
    done: int  # steps finished (resumed from, at the start)
    data: RecoveryData | None
    live_teacher: VPRModel | None  # augmented recovery labels new views with it
    device: torch.device
    original: dict[str, int]  # the teacher's conv widths (ratios are relative to them)
    ratios: list[list[float]]  # per stage, per step: cumulative ratio
    dims: list[int]  # per step: descriptor size
    folder: Path | None  # OUT.steps/
    paths: list[Path]


def _needs_images(teacher: VPRModel, cfg: PruneConfig) -> bool:
    return (
        cfg.recovery.epochs > 0
        or (cfg.recovery.final_epochs or 0) > 0
        or cfg.importance == "taylor"
        or (
            _target_dim(teacher, cfg) < teacher.descriptor_dim
            and cfg.descriptor_importance == "energy"
        )
    )


def start_pruning(
    teacher: VPRModel, cfg: PruneConfig, teacher_spec: str, out: Path | None
) -> PruneState:
    """Check the settings, load the recovery images (teacher outputs cached), and start
    from the teacher or resume after the last step saved in OUT.steps/."""
    torch.manual_seed(cfg.seed)
    teacher.eval()
    device = torch_device(cfg.recovery.device)  # before any expensive work
    paths = sample_folders(cfg.recover_images, cfg.recover_max)
    if _needs_images(teacher, cfg) and not paths:
        raise ValueError(
            "recovery, Taylor importance and energy descriptor importance need images: pass "
            "--recover-images DIR (for an evaluation dataset, its reference images only)"
        )
    folder = steps_dir(out) if out is not None else None
    if folder is not None:  # refuse a changed command before any expensive work
        _check_resume(folder, _fingerprint(teacher_spec, teacher.config.input_size, cfg))
    data: RecoveryData | None = None
    if paths:
        data = build_recovery_data(
            teacher,
            paths,
            teacher_key=_teacher_key(teacher_spec, teacher),
            cache_dir=cfg.cache_dir or folder,
            labels=cfg.recovery.labels,
            progress=cfg.recovery.progress,
        )
    live_teacher = copy.deepcopy(teacher).to(device).eval() if cfg.recovery.augment else None
    state = PruneState(
        student=rebuild(teacher).to(device),
        kept=Kept(
            torch.arange(teacher.backbone.out_channels), torch.arange(teacher.descriptor_dim)
        ),
        records=[],
        done=0,
        data=data,
        live_teacher=live_teacher,
        device=device,
        original=conv_widths(teacher.backbone),
        ratios=[ratio_schedule(r, cfg.steps, cfg.schedule) for r in _stage_targets(teacher, cfg)],
        dims=dim_schedule(
            teacher.descriptor_dim, _target_dim(teacher, cfg), cfg.steps, cfg.schedule
        ),
        folder=folder,
        paths=paths,
    )
    if folder is not None:
        state.done, last = _last_step(folder)
        if last is not None:
            obj = torch.load(str(last), map_location="cpu", weights_only=True)
            state.student = load_checkpoint(last).to(device)
            state.kept = Kept(obj["kept_channels"], obj["kept_dims"])
            state.records = [StepRecord(**r) for r in json.loads(obj["records"])]
    return state


def _prune_descriptor(state: PruneState, k: int, cfg: PruneConfig) -> None:
    """Step part 1: keep the most important structural units of the descriptor."""
    st = structure(state.student)
    n_keep = target_units(state.student, state.dims[k], cfg.round_to)
    if n_keep >= st.units:
        return
    if cfg.descriptor_importance == "energy":
        assert state.data is not None
        calib = calibration_indices(len(state.data), cfg.calib_images)
        scores = energy_importance(state.student, state.data.images[calib])
    else:
        scores = l1_importance(state.student)
    keep = select_units(scores, n_keep)
    prune_descriptor_units(state.student, keep)
    state.kept.dims = state.kept.dims[dims_of_units(keep, st.dims_per_unit)]
    if st.kind == "backbone":
        state.kept.channels = state.kept.channels[keep]


def _prune_backbone_step(state: PruneState, k: int, ratios: list[float], cfg: PruneConfig) -> str:
    """Step part 2: Torch-Pruning towards the step's cumulative ratios; returns the
    importance used (Taylor falls back to L2 where its gradient vanishes)."""
    importance: str = cfg.importance
    if not any(r > 0 for r in ratios):
        return importance
    fill: Callable[[], object] | None = None
    if cfg.importance == "taylor":
        assert state.data is not None
        if mean_loss(state.student, state.data, state.kept, cfg.recovery) < 1e-9:
            # The distillation loss and its gradient vanish at the teacher itself.
            importance = "l2 (taylor: zero loss at the teacher)"
        else:
            fill = functools.partial(
                accumulate_gradients,
                state.student,
                state.data,
                state.kept,
                cfg.recovery,
                calibration_indices(len(state.data), cfg.calib_images),
            )
    prev = state.ratios[0][k - 1] if k > 0 else 0.0
    torch.manual_seed(cfg.seed * 1000 + k)  # random importance: reproducible
    prune_backbone(
        state.student.backbone,
        state.original,
        ratios,
        importance=importance.split(" ")[0],
        round_to=cfg.round_to,
        global_pruning=cfg.global_pruning,
        global_ratio=1.0 - (1.0 - ratios[0]) / (1.0 - prev),
        fill_grads=fill,
        input_size=state.student.config.input_size,
    )
    return importance


def prune_step(state: PruneState, k: int, cfg: PruneConfig) -> StepRecord:
    """Step k (0-based): prune the descriptor, then the backbone, rebuild without
    torch-pruning, then recover; the state advances and the step's record is returned."""
    t0 = time.perf_counter()
    ratios = [s[k] for s in state.ratios]
    _prune_descriptor(state, k, cfg)
    importance = _prune_backbone_step(state, k, ratios, cfg)
    state.student = rebuild(state.student).to(state.device)
    s = state.student
    rec = StepRecord(k + 1, ratios, s.descriptor_dim, _params(s), importance=importance)
    if state.data is not None:
        rcfg = cfg.recovery
        if k == cfg.steps - 1 and rcfg.final_epochs is not None:
            rcfg = replace(rcfg, epochs=rcfg.final_epochs)
        rec.loss_pruned = mean_loss(s, state.data, state.kept, cfg.recovery)
        rec.epoch_losses = recover(
            s,
            state.data,
            state.kept,
            rcfg,
            teacher=state.live_teacher,
            seed=cfg.seed + k,
            desc=f"step {k + 1}/{cfg.steps}",
        )
        rec.loss_recovered = mean_loss(s, state.data, state.kept, cfg.recovery)
    rec.seconds = time.perf_counter() - t0
    state.records.append(rec)
    if state.folder is not None:
        _save_step(state.folder, k + 1, s, state.kept, state.records)
    return rec


def prune_model(
    teacher: VPRModel,
    cfg: PruneConfig,
    *,
    teacher_spec: str = "",
    out: Path | None = None,
) -> PruneResult:
    """Prune a copy of ``teacher`` per ``cfg``; with ``out``, resumable from OUT.steps/
    and the final checkpoint written to ``out`` (+ ``out``.json)."""
    state = start_pruning(teacher, cfg, teacher_spec, out)
    for k in range(state.done, cfg.steps):
        prune_step(state, k, cfg)
    student = state.student.cpu()
    # Its own name in bundles, maps and reports (the config still says the teacher's).
    ratio = "stages" if cfg.stage_ratios else f"{cfg.backbone_ratio:.2f}"
    student.config = replace(
        student.config,
        name=f"{teacher.config.display_name}-pruned-r{ratio}-d{student.descriptor_dim}",
    )
    result = PruneResult(student.eval(), state.records, [str(p) for p in state.paths], state.done)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(student, out)
        summary = result.summary()
        summary["prune_config"] = cfg.to_dict()
        summary["teacher"] = teacher_spec
        Path(str(out) + ".json").write_text(json.dumps(summary, indent=2) + "\n")
    return result


def run_prune(job: PruneJob) -> PruneResult:
    """The prune command: resolve the teacher, prune (resuming a finished step)."""
    teacher = load_model(job.model, job.input_size)
    spec = str(Path(job.model).resolve()) if Path(job.model).is_file() else job.model
    return prune_model(teacher, job.prune, teacher_spec=spec, out=Path(job.out))


def format_steps(result: PruneResult, out: Path) -> str:
    """The per-step table of a pruning run."""
    lines = []
    if result.resumed_from:
        lines.append(f"resumed after step {result.resumed_from} from {steps_dir(out)}")
    lines += [
        "| step | ratios (stem..) | dim | params | loss pruned | loss recovered | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result.steps:
        lp = f"{r.loss_pruned:.4g}" if r.loss_pruned is not None else "-"
        lr_ = f"{r.loss_recovered:.4g}" if r.loss_recovered is not None else "-"
        rs = ",".join(f"{x:.2f}" for x in r.stage_ratios)
        lines.append(
            f"| {r.step} | {rs} | {r.descriptor_dim} | {r.parameters:,} | {lp} | {lr_} | "
            f"{r.seconds:.0f} |"
        )
    lines.append(
        f"wrote {out} (config with pruned widths + state_dict; loads without torch-pruning)"
    )
    return "\n".join(lines)
