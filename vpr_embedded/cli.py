"""`vpr-embedded` command line: parses arguments and calls one stage function each."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from vpr_embedded import __version__
from vpr_embedded import runtime_log as _runtime_log
from vpr_embedded.extras import MissingExtraError, explain, require
from vpr_embedded.matching import MAX_THREADS

Handler = Callable[[argparse.Namespace], int]


def _integer(text: str, low: int, high: int | None) -> int:
    """Strict: decimal digits only (no 1e3, 0x10, 5_000 or spaces), then the range."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    value = int(text)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise argparse.ArgumentTypeError(f"{value} is out of range: it must be {bound}")
    return value


def _natural(text: str) -> int:
    return _integer(text, 0, None)


def _positive(text: str) -> int:
    return _integer(text, 1, None)


def _threads(text: str) -> int:
    return _integer(text, 0, MAX_THREADS)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="match synthetic descriptors with the C++ core")
    p.add_argument("--places", type=_positive, default=100_000, help="map size")
    p.add_argument("--dim", type=_positive, default=512, help="descriptor dimension")
    p.add_argument("--k", type=_positive, default=5, help="results per query")
    p.add_argument("--threads", type=_threads, default=0, help="0: all cores")
    p.set_defaults(handler=_run_demo, extra=None)


def _run_demo(args: argparse.Namespace) -> int:
    from vpr_embedded.demo import run_demo

    run_demo(places=args.places, dim=args.dim, k=args.k, threads=args.threads)
    return 0


def _add_datasets(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("datasets", help="list the supported public datasets, or fetch one")
    p.add_argument(
        "action", nargs="?", default="list", choices=["list", "fetch", "verify"], help="list"
    )
    p.add_argument("name", nargs="?", default=None, help="dataset to fetch or verify")
    p.add_argument("--data-dir", default=None, help="data folder (default: $VPR_DATA_DIR)")
    p.add_argument(
        "--mirror", default=None, help="URL or folder serving NAME.tar.gz ($VPR_DATASETS_MIRROR)"
    )
    p.set_defaults(handler=_run_datasets, extra=None)


def _run_datasets(args: argparse.Namespace) -> int:
    from vpr_embedded.data import catalog

    if args.action == "list":
        print(catalog.describe(args.data_dir))
        return 0
    if args.name is None:
        raise ValueError(
            f"datasets {args.action} needs a NAME: one of {', '.join(catalog.DATASETS)}"
        )
    if args.action == "verify":
        info = catalog.get_info(args.name)
        folder = catalog.resolve_dataset(args.name, args.data_dir)
        catalog.verify(info, folder)
        print(f"{folder}: {info.files} files, {info.bytes} bytes, tree sha256 matches")
        return 0
    with _ByteProgress(f"fetching {args.name}") as bar:
        folder = catalog.fetch(args.name, args.data_dir, mirror=args.mirror, progress=bar.update)
    print(f"{args.name}: {folder} (every file checked)")
    return 0


class _ByteProgress:
    """A download progress bar on stderr: tqdm when installed (the export extra), else a
    plain line rewritten in place, so the core install shows progress too."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self._bar: Any = None
        self._plain = False

    def __enter__(self) -> _ByteProgress:
        return self

    def update(self, done: int, total: int | None) -> None:
        if self._bar is None and not self._plain:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=self.desc, unit="B", unit_scale=True)
            except ImportError:
                self._plain = True
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        elif sys.stderr.isatty():
            of = f" of {total / 1e6:.1f}" if total else ""
            print(f"\r{self.desc}: {done / 1e6:.1f}{of} MB", end="", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._plain and sys.stderr.isatty():
            print(file=sys.stderr)


def _add_evaluate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", help="recall@N and costs of a model on a dataset")
    p.add_argument("--model", required=True, help="registry name or checkpoint path")
    p.add_argument("--dataset", required=True, help="dataset folder (read in place)")
    p.add_argument(
        "--format",
        default=None,
        choices=["vpr-bench", "aligned", "gmberton"],
        help="dataset layout (default: detect)",
    )
    p.add_argument("--out", default=None, help="write result.json, config.json, examples.png")
    p.add_argument("--batch-size", type=_positive, default=32)
    p.add_argument("--storage", default="float32", choices=["float32", "float16", "int8", "binary"])
    p.add_argument("--input-size", type=_positive, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--tolerance", type=_natural, default=None, help="aligned datasets: +-frames")
    p.add_argument("--skip-unreadable", action="store_true", help="skip bad images, count them")
    p.add_argument("--device", default="cpu", help="where descriptors are extracted: cpu, cuda")
    p.set_defaults(handler=_run_evaluate, extra="export")


def _run_evaluate(args: argparse.Namespace) -> int:
    from vpr_embedded.evaluate import run_evaluate

    run_evaluate(
        args.model,
        args.dataset,
        format=args.format,
        out_dir=args.out,
        batch_size=args.batch_size,
        storage=args.storage,
        input_size=tuple(args.input_size) if args.input_size else None,
        tolerance=args.tolerance,
        skip_unreadable=args.skip_unreadable,
        device=args.device,
    )
    return 0


def _add_export(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="lower a model to an ExecuTorch bundle (.pte + manifest)")
    p.add_argument("--model", required=True, help="registry name or checkpoint path")
    p.add_argument("--quantize", default="int8", choices=["int8", "dynamic", "none"])
    p.add_argument("--calib-images", default=None, help="folder of real images (recursive)")
    p.add_argument("--calib-count", type=_positive, default=64, help="calibration images")
    p.add_argument("--parity-dataset", default=None, help="dataset for parity and recall@1")
    p.add_argument(
        "--format",
        default=None,
        choices=["vpr-bench", "aligned", "gmberton"],
        help="parity dataset layout (default: detect)",
    )
    p.add_argument("--parity-count", type=_positive, default=16, help="images in the parity check")
    p.add_argument("--input-size", type=_positive, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument(
        "--keep-float",
        default=None,
        metavar="MODULES",
        help="comma-separated backbone submodules int8 leaves float32 ('' for none; "
        "default: the backbone's, e.g. _conv_stem,_bn0,_blocks.0 for EfficientNet-Lite0)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.set_defaults(handler=_run_export, extra="export")


def _run_export(args: argparse.Namespace) -> int:
    from vpr_embedded.export import run_export

    result = run_export(
        args.model,
        args.out,
        quantize=args.quantize,
        calib_images=args.calib_images,
        calib_count=args.calib_count,
        parity_dataset=args.parity_dataset,
        dataset_format=args.format,
        parity_count=args.parity_count,
        input_size=tuple(args.input_size) if args.input_size else None,
        keep_float=None
        if args.keep_float is None
        else tuple(n.strip() for n in args.keep_float.split(",") if n.strip()),
        overwrite=args.overwrite,
    )
    return 0 if result.passed else 3


def _add_models(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(handler=_run_models, extra="export")


def _run_models(args: argparse.Namespace) -> int:
    from vpr_embedded.models.vpr import describe_models

    print(describe_models())
    return 0


def _add_build_map(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("build-map", help="extract descriptors of a folder of images into a map")
    p.add_argument("--model", required=True, help="bundle folder, checkpoint or registry name")
    p.add_argument("--images", required=True, help="folder of reference images")
    p.add_argument("--out", required=True, help="map file to write (.vprmap)")
    p.add_argument("--storage", default="int8", choices=["float32", "float16", "int8", "binary"])
    p.add_argument("--pca", type=_positive, default=None, metavar="D", help="PCA to D dimensions")
    p.add_argument("--whiten", action="store_true", help="PCA whitening")
    p.add_argument("--positions", default=None, help="CSV: name,lat,lon or name,easting,northing")
    p.add_argument("--threads", type=_threads, default=None)
    p.set_defaults(handler=_run_build_map, extra="export")


def _run_build_map(args: argparse.Namespace) -> int:
    from vpr_embedded.localize import build_map_from_images

    build_map_from_images(
        args.model,
        args.images,
        args.out,
        storage=args.storage,
        pca_dim=args.pca,
        whiten=args.whiten,
        positions_csv=args.positions,
        threads=args.threads,
    )
    return 0


def _add_append(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("append", help="add a folder of images to an existing map")
    p.add_argument("--model", required=True, help="the model the map was built with")
    p.add_argument("--map", required=True, help="map file to extend (rewritten atomically)")
    p.add_argument("--images", required=True, help="folder of new reference images")
    p.add_argument("--positions", default=None, help="CSV: name,lat,lon or name,easting,northing")
    p.add_argument("--threads", type=_threads, default=None)
    p.set_defaults(handler=_run_append, extra="export")


def _run_append(args: argparse.Namespace) -> int:
    from vpr_embedded.localize import append_images

    append_images(
        args.model, args.map, args.images, positions_csv=args.positions, threads=args.threads
    )
    return 0


def _add_localize(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("localize", help="top-k places of images (JSON lines)")
    p.add_argument("--model", required=True, help="the model the map was built with")
    p.add_argument("--map", required=True, help="map file (.vprmap)")
    p.add_argument("--image", default=None, help="one image")
    p.add_argument("--dir", default=None, help="a folder of frames, in name order")
    p.add_argument("--k", type=_positive, default=5, help="places per image")
    p.add_argument("--sequence", type=_natural, default=0, metavar="L", help="match over L frames")
    p.add_argument("--threads", type=_threads, default=None)
    p.set_defaults(handler=_run_localize, extra="export")


def _run_localize(args: argparse.Namespace) -> int:
    from vpr_embedded.localize import localize_cli

    localize_cli(
        args.model,
        args.map,
        args.image,
        args.dir,
        k=args.k,
        sequence=args.sequence,
        threads=args.threads,
    )
    return 0


def _add_pipeline(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "pipeline", help="quantize, export, build a map and localize every query of a dataset"
    )
    p.add_argument(
        "--dataset",
        default="corridor",
        help="dataset folder, or the name of one in the data folder ($VPR_DATA_DIR)",
    )
    p.add_argument("--out", default="runs/pipeline", help="folder for every artefact")
    p.add_argument("--model", default="efficientnet_lite0-gem", help="registry name or checkpoint")
    p.add_argument("--format", default=None, choices=["vpr-bench", "aligned", "gmberton"])
    p.add_argument("--input-size", type=_positive, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--quantize", default="int8", choices=["int8", "none"])
    p.add_argument(
        "--calib-count", type=_positive, default=64, help="reference images to calibrate"
    )
    p.add_argument("--storage", default="int8", choices=["float32", "float16", "int8", "binary"])
    p.add_argument("--pca", type=_positive, default=None, metavar="D", help="PCA to D dimensions")
    p.add_argument("--threads", type=_threads, default=1, help="extraction and matching threads")
    p.add_argument(
        "--sequence", type=_natural, default=0, metavar="L", help="also match over L frames"
    )
    p.add_argument("--no-eager", action="store_true", help="skip the eager fp32 yardstick")
    p.set_defaults(handler=_run_pipeline, extra="export")


def _run_pipeline(args: argparse.Namespace) -> int:
    from vpr_embedded.pipeline import PipelineConfig, run_pipeline

    run_pipeline(
        PipelineConfig(
            dataset=args.dataset,
            out=args.out,
            model=args.model,
            dataset_format=args.format,
            input_size=tuple(args.input_size) if args.input_size else None,
            quantize=args.quantize,
            calib_count=args.calib_count,
            storage=args.storage,
            pca_dim=args.pca,
            threads=args.threads,
            sequence=args.sequence,
            compare_eager=not args.no_eager,
        )
    )
    return 0


def _add_distill(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "distill",
        help="train a model of another architecture from a teacher's descriptors (no labels)",
    )
    p.add_argument("--teacher", required=True, help="registry name or checkpoint path")
    p.add_argument("--student", required=True, help="registry name (fresh) or checkpoint path")
    p.add_argument(
        "--images",
        action="append",
        default=[],
        metavar="DIR",
        help="unlabelled training images (repeatable; a map's references, never its queries)",
    )
    p.add_argument("--images-per-folder", type=_positive, default=2000, help="cap, evenly sampled")
    p.add_argument("--epochs", type=_natural, default=30)
    p.add_argument("--batch-size", type=_positive, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--input-size", type=_positive, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--seed", type=_natural, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", required=True, help="student checkpoint (+ OUT.json log)")
    p.set_defaults(handler=_run_distill, extra="train")


def _run_distill(args: argparse.Namespace) -> int:
    from vpr_embedded.distill import run_distill

    run_distill(
        args.teacher,
        args.student,
        args.images,
        args.out,
        input_size=tuple(args.input_size) if args.input_size else None,
        images_per_folder=args.images_per_folder,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
    )
    return 0


def _add_prune(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "prune",
        help="iterative backbone + descriptor pruning with label-free recovery (resumable)",
    )
    p.add_argument("--model", required=True, help="registry name or checkpoint path (teacher)")
    p.add_argument("--backbone-ratio", type=float, default=0.0, help="channels removed per layer")
    p.add_argument(
        "--stage-ratios", type=float, nargs="+", default=None, help="per stage, stem first"
    )
    p.add_argument("--global", dest="global_pruning", action="store_true", help="global ranking")
    d = p.add_mutually_exclusive_group()
    d.add_argument("--descriptor-dim", type=_positive, default=None, help="target descriptor size")
    d.add_argument("--descriptor-ratio", type=float, default=None, help="descriptor dims removed")
    p.add_argument("--descriptor-importance", default="energy", choices=["energy", "l1"])
    p.add_argument("--steps", type=_positive, default=1, help="iterative pruning steps")
    p.add_argument("--schedule", default="linear", choices=["linear", "geometric"])
    p.add_argument("--importance", default="l2", choices=["l2", "taylor", "random"])
    p.add_argument(
        "--recover-images",
        action="append",
        default=[],
        metavar="DIR",
        help="unlabelled images for recovery (repeatable; for an evaluation dataset, its "
        "reference images only, never the queries)",
    )
    p.add_argument("--recover-max", type=_positive, default=400, help="images per folder (evenly)")
    p.add_argument(
        "--calib-images",
        type=_natural,
        default=64,
        metavar="N",
        help="recovery images (evenly spread) that rank channels and dims at every step",
    )
    p.add_argument("--epochs", type=_natural, default=1, help="recovery epochs per step")
    p.add_argument(
        "--final-epochs",
        type=_natural,
        default=None,
        metavar="E",
        help="recovery epochs of the last step, which yields the shipped model (default: --epochs)",
    )
    p.add_argument("--batch-size", type=_positive, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--feature-weight", type=float, default=1.0, help="feature distillation")
    p.add_argument(
        "--labels", action="store_true", help="multi-similarity on file-name place labels"
    )
    p.add_argument(
        "--augment",
        action="store_true",
        help="random views of the recovery images, labelled by the teacher on the fly",
    )
    p.add_argument(
        "--lr-schedule",
        default="constant",
        choices=["constant", "cosine"],
        help="cosine: lr decays to 0 by the end of every step's recovery",
    )
    p.add_argument(
        "--ema", type=float, default=0.0, help="weight-average decay, e.g. 0.99 (0: off)"
    )
    p.add_argument(
        "--soup",
        type=_positive,
        default=1,
        metavar="K",
        help="average the weights of K recoveries (different data orders) at every step; "
        "K times the recovery time (1: off)",
    )
    p.add_argument("--input-size", type=_positive, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--seed", type=_natural, default=0)
    p.add_argument(
        "--device", default="cpu", help="where recovery trains: cpu, cuda, cuda:N (resumable)"
    )
    p.add_argument("--out", required=True, help="pruned checkpoint; state in OUT.steps/")
    p.set_defaults(handler=_run_prune, extra="train")


def _run_prune(args: argparse.Namespace) -> int:
    from vpr_embedded.prune import run_prune

    run_prune(
        args.model,
        args.out,
        backbone_ratio=args.backbone_ratio,
        stage_ratios=tuple(args.stage_ratios) if args.stage_ratios else None,
        global_pruning=args.global_pruning,
        descriptor_dim=args.descriptor_dim,
        descriptor_ratio=args.descriptor_ratio,
        descriptor_importance=args.descriptor_importance,
        steps=args.steps,
        schedule=args.schedule,
        importance=args.importance,
        recover_images=tuple(args.recover_images),
        recover_max=args.recover_max,
        calib_images=args.calib_images,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        feature_weight=args.feature_weight,
        labels=args.labels,
        augment=args.augment,
        lr_schedule=args.lr_schedule,
        ema=args.ema,
        soup=args.soup,
        final_epochs=args.final_epochs,
        input_size=tuple(args.input_size) if args.input_size else None,
        seed=args.seed,
        device=args.device,
    )
    return 0


def _add_prune_sweep(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "prune-sweep",
        help="prune at several (backbone ratio, descriptor size) points; costs and recall",
    )
    p.add_argument("--models", nargs="+", default=["efficientnet_lite0-gem", "resnet18-gem"])
    p.add_argument(
        "--points",
        nargs="+",
        default=["0.3:0.5", "0.2:0.75", "0.4:0.4"],
        help="RATIO:DIM (DIM < 1: kept fraction of the descriptor; 'full': unpruned); "
        "MODEL@RATIO:DIM applies to MODEL only; a #S1,S2 suffix sets that point's seeds",
    )
    p.add_argument("--steps", type=_positive, default=4)
    p.add_argument("--epochs", type=_natural, default=2)
    p.add_argument("--schedule", default="linear", choices=["linear", "geometric"])
    p.add_argument("--importance", default="l2", choices=["l2", "taylor", "random"])
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--feature-weight", type=float, default=None)
    p.add_argument("--augment", action="store_true", help="augmented recovery (see prune)")
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    p.add_argument("--ema", type=float, default=0.0, help="weight-average decay (0: off)")
    p.add_argument("--soup", type=_positive, default=1, metavar="K", help="recoveries averaged")
    p.add_argument("--final-epochs", type=_natural, default=None, help="last step's epochs")
    p.add_argument("--recover-max", type=_positive, default=200, help="images per reference folder")
    p.add_argument("--seeds", nargs="+", type=_natural, default=[0])
    p.add_argument("--threads", type=_threads, default=1, help="for pruning and recall")
    p.add_argument("--device", default="cpu", help="where recovery trains: cpu, cuda, cuda:N")
    p.add_argument("--repeats", type=_positive, default=20, help="latency repeats")
    p.add_argument(
        "--paired-rounds", type=_natural, default=5, help="interleaved re-timing rounds (0: off)"
    )
    p.add_argument("--match-places", type=_positive, default=100_000)
    p.add_argument("--skip-export", action="store_true")
    p.add_argument(
        "--datasets",
        nargs="+",
        default=["corridor", "nordland_part1", "gardens_point_sample"],
        choices=["corridor", "nordland_part1", "gardens_point_sample"],
    )
    p.add_argument("--data-dir", default=None, help="default: ../shared/data")
    p.add_argument("--work", default=None, help="checkpoints and caches (default runs/pruning)")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--tag", default="bench_pruning")
    p.set_defaults(handler=_run_prune_sweep, extra="train")


def _run_prune_sweep(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from vpr_embedded.prune.sweep import SweepConfig, run_sweep

    cfg = SweepConfig(
        models=tuple(args.models),
        points=tuple(args.points),
        steps=args.steps,
        epochs=args.epochs,
        schedule=args.schedule,
        importance=args.importance,
        lr=args.lr,
        feature_weight=args.feature_weight,
        augment=args.augment,
        lr_schedule=args.lr_schedule,
        ema=args.ema,
        soup=args.soup,
        final_epochs=args.final_epochs,
        recover_max=args.recover_max,
        seeds=tuple(args.seeds),
        threads=args.threads,
        device=args.device,
        repeats=args.repeats,
        paired_rounds=args.paired_rounds,
        match_places=args.match_places,
        skip_export=args.skip_export,
        datasets=tuple(args.datasets),
        tag=args.tag,
    )
    if args.data_dir is not None:
        cfg = replace(cfg, data_dir=Path(args.data_dir))
    if args.work is not None:
        cfg = replace(cfg, work=Path(args.work))
    if args.out is not None:
        cfg = replace(cfg, out=Path(args.out))
    run_sweep(cfg)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vpr-embedded", description=__doc__)
    parser.add_argument("--version", action="version", version=f"vpr-embedded {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show the ExecuTorch runtime's own log lines and debug logging",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_datasets(sub)
    _add_demo(sub)
    _add_evaluate(sub)
    _add_export(sub)
    _add_models(sub)
    _add_build_map(sub)
    _add_append(sub)
    _add_localize(sub)
    _add_pipeline(sub)
    _add_prune(sub)
    _add_distill(sub)
    _add_prune_sweep(sub)
    return parser


def _quiet_third_party() -> None:
    """Hide import-time noise of the export stack that says nothing about the user's run:
    torchao's optional CUDA kernels and a torch deprecation inside torch.export."""
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_third_party()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _runtime_log.set_verbose(args.verbose)
    try:
        if args.extra is not None:
            require(args.extra, "this command")
        return handler(args)
    except MissingExtraError as exc:
        print(f"vpr-embedded {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        hint = explain(exc)
        if hint is None:
            raise
        print(f"vpr-embedded {args.command}: error: {hint}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, FloatingPointError) as exc:
        print(f"vpr-embedded {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
