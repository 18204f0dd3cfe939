"""End-to-end pipeline on a real dataset: (prune) -> quantize -> export -> build the map
from the reference side -> localize every query -> recall, latency and memory.

Every artefact goes to one output folder: the bundle (``bundle/``), the map
(``map.vprmap``), ``config.json`` (the resolved settings), ``localize.jsonl`` (the
top-k of each query) and ``report.json``. Calibration and any recovery use the
reference images only, never the queries.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from vpr_embedded.data.datasets import DatasetFormat, PlaceDataset, load_dataset
from vpr_embedded.data.images import load_tensor
from vpr_embedded.data.splits import Segment
from vpr_embedded.evaluate import EvaluateConfig, evaluate
from vpr_embedded.localize import DescriptorModel, open_model
from vpr_embedded.maps import Map, build_map
from vpr_embedded.matching import StorageName
from vpr_embedded.metrics import hits_at_n, paired_bootstrap, recall_at_n
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.progress import track
from vpr_embedded.sequence import DEFAULT_SEQUENCE_WINDOW, SequenceConfig, SequenceMatcher
from vpr_embedded.settings import comma_list, option

RECALL_AT = (1, 5, 10, 20)


@dataclass(frozen=True)
class PipelineConfig:
    """dataset: folder read in place (format detected unless given). model: registry
    name or checkpoint. quantize: "int8" (static, calibrated on reference images) or
    "none". storage: map encoding. sequence: also report sequence matching over L
    frames (0: off). compare_eager: also measure the unquantized eager model with a
    float32 map, the yardstick for what export and compression cost."""

    dataset: str = option(
        "corridor", "dataset folder, or the name of one in the data folder ($VPR_DATA_DIR)"
    )
    out: str = option("runs/pipeline", "folder for every artefact")
    model: str = option("efficientnet_lite0-gem", "registry name or checkpoint")
    dataset_format: DatasetFormat | None = option(None, "dataset layout", flag="--format")
    split: Segment | None = option(None, "only the places of this held-out segment")
    input_size: tuple[int, int] | None = option(None, "model input size", metavar=("H", "W"))
    quantize: Literal["int8", "none"] = option("int8", "int8 (static, calibrated) or none")
    calib_count: int = option(64, "reference images to calibrate", minimum=1)
    keep_float: tuple[str, ...] | None = option(
        None,
        "comma-separated backbone submodules int8 leaves float32 (default: the backbone's)",
        metavar="MODULES",
        parse=comma_list,
    )
    storage: StorageName = option("int8", "map encoding")
    pca_dim: int | None = option(None, "PCA to D dimensions", flag="--pca", metavar="D", minimum=1)
    threads: int = option(1, "extraction and matching threads", minimum=0, maximum=1024)
    sequence: int = option(0, "also match over L frames", metavar="L", minimum=0)
    sequence_window: int = option(
        DEFAULT_SEQUENCE_WINDOW,
        "places the sequence scores are contrast-normalised over",
        metavar="R",
        minimum=2,
    )
    compare_eager: bool = option(
        True, "skip the eager fp32 yardstick", flag="--no-eager", negate=True
    )
    parity_stops: bool = option(
        True,
        "report an int8 parity miss (cosine) in the table instead of stopping; the deployed "
        "and eager recall beside it show what it costs",
        flag="--report-parity-miss",
        negate=True,
    )
    compare: tuple[str, ...] = option(
        (), "also deploy this model the same way, side by side (repeatable)", repeat=True
    )


@dataclass
class PipelineReport:
    dataset: str
    model: str
    queries: int
    references: int
    recall: dict[str, float]
    extract_ms: dict[str, float]
    match_ms: dict[str, float]
    pte_bytes: int
    map_bytes: int
    map_bytes_per_place: float
    descriptor_dim: int
    peak_rss_mb: float
    export_checks: dict[str, Any]
    sequence_recall: dict[str, float] | None = None
    eager_fp32_recall: dict[str, float] | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    threads: int = 1
    sequence_length: int = 0
    hits_at_1: list[bool] = field(default_factory=list)  # per query with a positive
    export_summary: str = ""  # the export's own report (delegation, parity)
    out: str = ""
    compared: list[PipelineReport] = field(default_factory=list)

    def format(self) -> str:
        def row(path: str, r: dict[str, float]) -> str:
            return f"| {path} | " + " | ".join(f"{r[f'R@{n}']:.3f}" for n in RECALL_AT) + " |"

        lines = [self.export_summary] if self.export_summary else []
        lines += [f"EXPORT CHECK MISSED (reported, not stopped): {f}" for f in self.failures]
        lines += [
            f"dataset {self.dataset}: {self.references} reference places, {self.queries} queries",
            f"model {self.model}: descriptor {self.descriptor_dim} dims, "
            f".pte {self.pte_bytes / 1e6:.2f} MB, map {self.map_bytes / 1e3:.1f} kB "
            f"({self.map_bytes_per_place:.0f} B/place)",
            "",
            "| path | R@1 | R@5 | R@10 | R@20 |",
            "|---|---|---|---|---|",
            row("deployed (bundle + map)", self.recall),
        ]
        if self.sequence_recall is not None:
            lines.append(row("deployed + sequence", self.sequence_recall))
        if self.eager_fp32_recall is not None:
            lines.append(row("eager fp32, float32 map", self.eager_fp32_recall))
        lines += [
            "",
            f"per query: extraction {self.extract_ms['median']:.2f} ms (median), matching "
            f"{self.match_ms['median']:.3f} ms (median); peak RSS {self.peak_rss_mb:.0f} MB",
            "stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.stage_seconds.items()),
        ]
        if self.out:
            lines.append(
                f"\nartefacts in {self.out}/: bundle/, map.vprmap, localize.jsonl, report.json"
            )
        for other in self.compared:
            lines += ["", f"---- compared: {other.model}", other.format()]
        if self.compared:
            lines += ["", self.side_by_side()]
        return "\n".join(lines)

    @property
    def failures(self) -> list[str]:
        return list(self.export_checks.get("failures", []))

    def side_by_side(self) -> str:
        """The deployed models in one table (and the first one's eager fp32 yardstick)."""
        seq = self.sequence_length
        head = (
            f"| model on {self.dataset} | .pte MB | map B/place | model + 100k-place map MB "
            f"| ms/frame ({self.threads} thread) | R@1 single | R@1 sequence L={seq} |"
        )
        lines = [head, "|---|---|---|---|---|---|---|"]
        for r in [self, *self.compared]:
            seq_r1 = f"{r.sequence_recall['R@1']:.3f}" if r.sequence_recall else "-"
            total = r.pte_bytes / 1e6 + 100_000 * r.map_bytes_per_place / 1e6
            single = f"{r.recall['R@1']:.3f}"
            if r is not self and r.hits_at_1 and len(r.hits_at_1) == len(self.hits_at_1):
                d, lo, hi = paired_bootstrap(np.array(self.hits_at_1), np.array(r.hits_at_1))
                single += f" ({d * 100:+.1f} pt, 95% CI {lo * 100:+.1f}..{hi * 100:+.1f})"
            miss = " (parity miss)" if r.export_checks.get("failures") else ""
            lines.append(
                f"| {r.model} int8 deployed{miss} | {r.pte_bytes / 1e6:.2f} | "
                f"{r.map_bytes_per_place:.0f} | {total:.1f} | {r.extract_ms['median']:.2f} | "
                f"{single} | {seq_r1} |"
            )
        if self.eager_fp32_recall is not None:
            lines.append(
                f"| {self.model} eager fp32 (yardstick) | - | - | - | - | "
                f"{self.eager_fp32_recall['R@1']:.3f} | - |"
            )
        return "\n".join(lines)


def _recall(ids: NDArray[np.int64], dataset: PlaceDataset) -> dict[str, float]:
    return {f"R@{n}": v for n, v in recall_at_n(ids, dataset.positives, RECALL_AT).items()}


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"median": float(np.median(ms)), "mean": float(ms.mean()), "max": float(ms.max())}


def _export(
    model: Any, dataset: PlaceDataset, cfg: PipelineConfig, out: Path
) -> tuple[dict[str, Any], str]:
    from vpr_embedded.export import ExportConfig, export_bundle

    # Calibrate and check parity on the reference side: queries stay unseen. With a
    # held-out segment, only that segment's references (FOLDER@SEGMENT).
    folder = Path(dataset.references[0]).parent
    references = Path(f"{folder}@{cfg.split}") if cfg.split else folder
    result = export_bundle(
        model,
        out / "bundle",
        ExportConfig(
            quantize=cfg.quantize,
            calib_images=references if cfg.quantize == "int8" else None,
            calib_count=cfg.calib_count,
            keep_float=cfg.keep_float,
        ),
    )
    parity_only = all(f.startswith("parity:") for f in result.failures)
    if not result.passed and (cfg.parity_stops or not parity_only):
        raise ValueError(
            "export checks failed: "
            + "; ".join(result.failures)
            + f" (report in {out}/bundle/export_report.json). For int8 parity, calibrate on "
            "more reference images (--calib-count), keep more early blocks float32 "
            "(--keep-float), export without quantization (--quantize none), or measure what "
            "the miss costs with --report-parity-miss"
        )
    checks: dict[str, Any] = {
        "quantize": result.quantize,
        "fully_delegated": result.delegation.fully_delegated,
        "parity_min_cosine": min(result.parity_cosines) if result.parity_cosines else None,
        "calibration": str(references),
        "failures": list(result.failures),
    }
    return checks, result.format()


def _localize(
    extractor: DescriptorModel, the_map: Map, dataset: PlaceDataset, cfg: PipelineConfig, out: Path
) -> tuple[NDArray[np.int64], NDArray[np.float32], list[float]]:
    k = min(max(RECALL_AT), the_map.count)
    ids = np.empty((len(dataset.queries), k), np.int64)
    descriptors = np.empty((len(dataset.queries), extractor.descriptor_dim), np.float32)
    match_seconds: list[float] = []
    first_query = len(extractor.seconds_per_image)
    with (out / "localize.jsonl").open("w") as log:
        for i, path in enumerate(track(dataset.queries, "localizing", "query")):
            descriptors[i] = extractor.embed_one(
                load_tensor(path, extractor.preprocessing).unsqueeze(0)
            )
            t0 = time.perf_counter()
            found = the_map.search(descriptors[i], k, threads=cfg.threads)
            match_seconds.append(time.perf_counter() - t0)
            ids[i] = found.ids[0]
            record = {
                "query": str(path),
                "ids": found.ids[0, :5].tolist(),
                "scores": [round(float(s), 5) for s in found.scores[0, :5]],
                "extract_ms": round(extractor.seconds_per_image[-1] * 1e3, 3),
                "match_ms": round(match_seconds[-1] * 1e3, 4),
            }
            log.write(json.dumps(record) + "\n")
    del extractor.seconds_per_image[:first_query]  # keep query-time extraction only
    return ids, descriptors, match_seconds


def _eager_recall(model: VPRModel, dataset: PlaceDataset) -> dict[str, float]:
    """The yardstick: the same (unquantized) model in PyTorch with a float32 map."""
    result = evaluate(model, dataset, EvaluateConfig(recall_at=RECALL_AT))
    return {f"R@{n}": v for n, v in result.recall.items()}


def _build_map(
    extractor: DescriptorModel, dataset: PlaceDataset, cfg: PipelineConfig, out: Path
) -> Path:
    """The dataset's reference images through the bundle, as the map."""
    db = extractor.embed_paths(list(dataset.references), desc="building map")
    return build_map(
        db,
        out_path=out / "map.vprmap",
        model_sha256=extractor.sha256,
        model_name=extractor.name,
        storage=cfg.storage,
        names=[p.name for p in dataset.references],
        pca_dim=cfg.pca_dim,
    )


def _sequence_recall(
    the_map: Map,
    descriptors: NDArray[np.float32],
    dataset: PlaceDataset,
    length: int,
    window: int,
) -> dict[str, float] | None:
    """Recall of the queries matched as a sequence of ``length`` frames, scores
    contrast-normalised over ``window`` places (None: off)."""
    if length <= 1:
        return None
    k = min(max(RECALL_AT), the_map.count)
    config = SequenceConfig(length=length, k=k, contrast_window=window)
    matcher = SequenceMatcher(the_map, config)
    return _recall(matcher.match(descriptors).ids, dataset)


def run_pipeline(cfg: PipelineConfig) -> PipelineReport:
    """Run every stage; writes the artefacts and report.json under ``cfg.out``. Each
    ``cfg.compare`` model goes through the same stages under ``cfg.out/compare-N/``."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    dataset = load_dataset(cfg.dataset, cfg.dataset_format, split=cfg.split)
    report = _run_one(cfg.model, dataset, cfg, out, cfg.compare_eager)
    for i, spec in enumerate(cfg.compare, start=1):
        report.compared.append(_run_one(spec, dataset, cfg, out / f"compare-{i}", False))
    (out / "report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report


def _run_one(
    spec: str, dataset: PlaceDataset, cfg: PipelineConfig, out: Path, eager: bool
) -> PipelineReport:
    from vpr_embedded.models.loading import load_model

    out.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}

    t0 = time.perf_counter()
    model = load_model(spec, cfg.input_size)
    checks, export_summary = _export(model, dataset, cfg, out)
    stages["export"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    extractor = open_model(out / "bundle", threads=cfg.threads)
    map_path = _build_map(extractor, dataset, cfg, out)
    stages["map"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    the_map = Map.open(map_path, extractor.sha256)
    ids, descriptors, match_seconds = _localize(extractor, the_map, dataset, cfg, out)
    stages["localize"] = time.perf_counter() - t0
    # Before the eager yardstick, whose batches would dominate the process's peak.
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    sequence_recall = _sequence_recall(
        the_map, descriptors, dataset, cfg.sequence, cfg.sequence_window
    )

    eager_recall = None
    if eager:
        t0 = time.perf_counter()
        eager_recall = _eager_recall(model, dataset)
        stages["eager yardstick"] = time.perf_counter() - t0

    report = PipelineReport(
        dataset=dataset.name,
        model=extractor.name,
        queries=len(dataset.queries),
        references=len(dataset.references),
        recall=_recall(ids, dataset),
        extract_ms=_stats(extractor.seconds_per_image),
        match_ms=_stats(match_seconds),
        pte_bytes=(out / "bundle" / "model.pte").stat().st_size,
        map_bytes=map_path.stat().st_size,
        map_bytes_per_place=map_path.stat().st_size / the_map.count,
        descriptor_dim=the_map.dim,
        peak_rss_mb=peak_rss_mb,
        export_checks=checks,
        sequence_recall=sequence_recall,
        eager_fp32_recall=eager_recall,
        stage_seconds=stages,
        export_summary=export_summary,
        out=str(out),
        threads=cfg.threads,
        sequence_length=cfg.sequence,
        hits_at_1=[bool(h) for h in hits_at_n(ids, dataset.positives, 1)],
    )
    (out / "report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report
