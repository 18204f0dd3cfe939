"""`vpr-embedded` command line: parses arguments and calls one stage function each."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="match synthetic descriptors with the C++ core")
    p.add_argument("--places", type=int, default=100_000, help="map size")
    p.add_argument("--dim", type=int, default=512, help="descriptor dimension")
    p.add_argument("--k", type=int, default=5, help="results per query")
    p.add_argument("--threads", type=int, default=0, help="0: all cores")
    p.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from vpr_embedded.demo import run_demo

    run_demo(places=args.places, dim=args.dim, k=args.k, threads=args.threads)
    return 0


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
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--storage", default="float32", choices=["float32", "float16", "int8", "binary"])
    p.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--tolerance", type=int, default=None, help="aligned datasets: +-frames")
    p.add_argument("--skip-unreadable", action="store_true", help="skip bad images, count them")
    p.set_defaults(handler=_run_evaluate)


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
    )
    return 0


def _add_export(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="lower a model to an ExecuTorch bundle (.pte + manifest)")
    p.add_argument("--model", required=True, help="registry name or checkpoint path")
    p.add_argument("--quantize", default="int8", choices=["int8", "dynamic", "none"])
    p.add_argument("--calib-images", default=None, help="folder of real images (recursive)")
    p.add_argument("--calib-count", type=int, default=64, help="calibration images")
    p.add_argument("--parity-dataset", default=None, help="dataset for parity and recall@1")
    p.add_argument(
        "--format",
        default=None,
        choices=["vpr-bench", "aligned", "gmberton"],
        help="parity dataset layout (default: detect)",
    )
    p.add_argument("--parity-count", type=int, default=16, help="images in the parity check")
    p.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.set_defaults(handler=_run_export)


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
        overwrite=args.overwrite,
    )
    return 0 if result.passed else 3


def _add_models(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(handler=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from vpr_embedded.models.vpr import describe_models

    print(describe_models())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vpr-embedded", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_evaluate(sub)
    _add_export(sub)
    _add_models(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"vpr-embedded {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
