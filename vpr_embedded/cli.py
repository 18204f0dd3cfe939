"""`vpr-embedded` command line: argument parsing and printing only.

Every command is one stage entry function taking one config dataclass; the flags, their
defaults, types, choices and help come from that dataclass (vpr_embedded.settings), so
nothing is typed twice. ``--config FILE.toml`` gives settings by field name (nested
configs as tables); flags override the file, which overrides the defaults. The stages
return results and log; this module prints them and turns a user's error into one line
and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpr_embedded import __version__, progress
from vpr_embedded import runtime_log as _runtime_log
from vpr_embedded.extras import MissingExtraError, explain, require
from vpr_embedded.settings import SettingsError, add_arguments, resolve

Printer = Callable[[Any, Any], int]  # (config, result) -> exit status


def _print_text(cfg: Any, result: Any) -> int:
    print(result)
    return 0


def _print_evaluation(cfg: Any, result: Any) -> int:
    from vpr_embedded.evaluate import format_table

    print(format_table([result]))
    if result.skipped_references or result.skipped_queries:
        print(
            f"skipped unreadable images: {len(result.skipped_references)} references, "
            f"{len(result.skipped_queries)} queries"
        )
    return 0


def _print_export(cfg: Any, result: Any) -> int:
    print(result.format())
    return 0 if result.passed else 3


def _print_map(cfg: Any, result: Any) -> int:
    """The map written; one stderr line per image left out, and exit 1 if any was (unless
    --on-bad-image skip)."""
    for path, why in result.failed:
        print(f"vpr-embedded: {path}: {why}", file=sys.stderr)
    if result.added == result.places:
        print(
            f"wrote {result.path}: {result.places} places, {result.dim} dims ({result.storage}), "
            f"{result.bytes_per_place:.0f} bytes/place, model {result.model}"
        )
    else:
        print(f"appended {result.added} places to {result.path} ({result.places} in all)")
    if result.failed:
        print(
            f"vpr-embedded: {len(result.failed)} of {len(result.failed) + result.added} images "
            "could not be read and are not in the map (see above)",
            file=sys.stderr,
        )
        return 0 if result.on_bad_image == "skip" else 1
    return 0


def _print_frames(cfg: Any, result: Any) -> int:
    """One JSON line per frame as the stage yields it (flushed, so a pipe sees each frame
    when it is done); exit 1 at the end if any frame failed, unless --on-bad-image skip."""
    done = failed = 0
    for line in result:
        print(json.dumps(line), flush=True)
        if "error" in line:
            failed += 1
        else:
            done += 1
    if failed:
        print(
            f"vpr-embedded localize: {failed} of {done + failed} frames failed (see their "
            "error lines)",
            file=sys.stderr,
        )
        return 0 if cfg.on_bad_image == "skip" else 1
    return 0


def _print_format(cfg: Any, result: Any) -> int:
    print(result.format())
    return 0


def _print_prune(cfg: Any, result: Any) -> int:
    from vpr_embedded.prune.run import format_steps

    print(format_steps(result, Path(cfg.out)))
    return 0


def _print_distill(cfg: Any, result: Any) -> int:
    print(f"loss per epoch: {', '.join(f'{v:.4g}' for v in result.epoch_losses)}")
    config = result.student.config
    print(f"wrote {result.out} ({config.name}, {result.student.descriptor_dim}-d descriptor)")
    return 0


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    config: str  # "module:Class"
    run: str  # "module:function", called with the config
    printer: Printer
    extra: str | None = None  # the optional extra the command needs


COMMANDS: tuple[Command, ...] = (
    Command(
        "datasets",
        "list the supported public datasets, or fetch one",
        "vpr_embedded.data.catalog:DatasetsConfig",
        "vpr_embedded.data.catalog:run_datasets",
        _print_text,
    ),
    Command(
        "demo",
        "match synthetic descriptors with the C++ core",
        "vpr_embedded.demo:DemoConfig",
        "vpr_embedded.demo:run_demo",
        _print_text,
    ),
    Command(
        "kernels",
        "which matching kernel this CPU uses and why (--measure: time the candidates)",
        "vpr_embedded.kernels:KernelsConfig",
        "vpr_embedded.kernels:run_kernels",
        _print_text,
    ),
    Command(
        "evaluate",
        "recall@N and costs of a model on a dataset",
        "vpr_embedded.evaluate:EvaluateJob",
        "vpr_embedded.evaluate:run_evaluate",
        _print_evaluation,
        "export",
    ),
    Command(
        "export",
        "lower a model to an ExecuTorch bundle (.pte + manifest)",
        "vpr_embedded.export:ExportJob",
        "vpr_embedded.export:run_export",
        _print_export,
        "export",
    ),
    Command(
        "models",
        "list the registered models",
        "vpr_embedded.models.vpr:ModelsConfig",
        "vpr_embedded.models.vpr:run_models",
        _print_text,
        "export",
    ),
    Command(
        "build-map",
        "extract descriptors of a folder of images into a map",
        "vpr_embedded.localize:BuildMapConfig",
        "vpr_embedded.localize:build_map_from_images",
        _print_map,
        "export",
    ),
    Command(
        "append",
        "add a folder of images to an existing map",
        "vpr_embedded.localize:AppendConfig",
        "vpr_embedded.localize:append_images",
        _print_map,
        "export",
    ),
    Command(
        "localize",
        "top-k places of images (one JSON line per frame)",
        "vpr_embedded.localize:LocalizeConfig",
        "vpr_embedded.localize:run_localize",
        _print_frames,
        "export",
    ),
    Command(
        "pipeline",
        "quantize, export, build a map and localize every query of a dataset",
        "vpr_embedded.pipeline:PipelineConfig",
        "vpr_embedded.pipeline:run_pipeline",
        _print_format,
        "export",
    ),
    Command(
        "prune",
        "iterative backbone + descriptor pruning with label-free recovery (resumable)",
        "vpr_embedded.prune.config:PruneJob",
        "vpr_embedded.prune.run:run_prune",
        _print_prune,
        "train",
    ),
    Command(
        "train",
        "fine-tune a model on place-labelled images (resumable, validated per epoch)",
        "vpr_embedded.train:TrainJob",
        "vpr_embedded.train:run_train",
        _print_format,
        "train",
    ),
    Command(
        "zoo-pack",
        "store a trained checkpoint in the model zoo (fp16, provenance, recall table)",
        "vpr_embedded.models.zoo:ZooPackJob",
        "vpr_embedded.models.zoo:run_zoo_pack",
        _print_text,
        "export",
    ),
    Command(
        "distill",
        "train a model of another architecture from a teacher's descriptors (no labels)",
        "vpr_embedded.distill:DistillJob",
        "vpr_embedded.distill:run_distill",
        _print_distill,
        "train",
    ),
)


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _config_class(command: Command) -> type[Any] | None:
    """The command's config class, or None when its module needs a missing extra (the
    command is still listed; running it says which extra to install)."""
    try:
        cls: type[Any] = _load(command.config)
        return cls
    except ModuleNotFoundError as exc:
        if explain(exc) is None:
            raise
        return None


def _add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], c: Command, with_flags: bool
) -> None:
    """The command's subparser; its flags (which import its stage module) only when it is
    the command being run or documented."""
    config = _config_class(c) if with_flags else None
    desc = (config.__doc__ or "").strip() if config is not None else None
    p = sub.add_parser(c.name, help=c.help, description=desc)
    p.set_defaults(command_spec=c)
    if config is None:
        # Not parsed here: the command's extra is missing (running it says so in one line).
        p.set_defaults(unparsed=True)
        return
    p.add_argument(
        "--config",
        dest="config_file",
        default=None,
        metavar="FILE",
        help="settings from a TOML file (field names; flags override it)",
    )
    add_arguments(p, config)


def _add_prune_sweep(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # The sweep is a benchmark (benchmarks/pruning_sweep), not a library stage: this
    # documented alias runs benchmarks/bench_pruning.py with the same flags, from a checkout.
    p = sub.add_parser(
        "prune-sweep",
        help="alias of benchmarks/bench_pruning.py (a source checkout): prune at several "
        "(backbone ratio, descriptor size) points; costs and recall",
        add_help=False,
    )
    p.set_defaults(command_spec=None, unparsed=True)


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not a global option)."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command it names gets its flags (None: all)."""
    wanted = _command_in(argv) if argv is not None else None
    parser = argparse.ArgumentParser(prog="vpr-embedded", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vpr-embedded {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show the ExecuTorch runtime's own log lines and debug logging",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        _add_command(sub, command, argv is None or command.name == wanted)
    _add_prune_sweep(sub)
    return parser


def _run_prune_sweep(argv: list[str]) -> int:
    import vpr_embedded

    script = Path(vpr_embedded.__file__).resolve().parents[1] / "benchmarks" / "bench_pruning.py"
    if not script.is_file():
        raise ValueError(
            "prune-sweep is the pruning benchmark of a source checkout: clone the repository "
            "and run python benchmarks/bench_pruning.py"
        )
    sys.path.insert(0, str(script.parent))
    bench = importlib.import_module("bench_pruning")
    status: int = bench.main(argv, prog="vpr-embedded prune-sweep")
    return status


class _PlainBar:
    """Progress on a core install (no tqdm): one line rewritten in place, on a terminal."""

    def __init__(self, total: int | None, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0

    def update(self, n: int = 1) -> None:
        self.done += n
        if sys.stderr.isatty():
            of = f"/{self.total}" if self.total else ""
            print(f"\r{self.desc}: {self.done}{of} {self.unit}", end="", file=sys.stderr)

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        if sys.stderr.isatty() and self.done:
            print(file=sys.stderr)


def _reporter(total: int | None, desc: str, unit: str) -> progress.Bar:
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return _PlainBar(total, desc, unit)
    bar: progress.Bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B")
    return bar


def _quiet_third_party() -> None:
    """Hide import-time noise of the export stack that says nothing about the user's run:
    torchao's optional CUDA kernels and a torch deprecation inside torch.export."""
    import warnings

    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)


def _error(command: str, message: object) -> int:
    print(f"vpr-embedded {command}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_third_party()
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words)
    args, rest = parser.parse_known_args(words)
    if rest and not getattr(args, "unparsed", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _runtime_log.set_verbose(args.verbose)
    progress.install(_reporter)
    command: Command | None = args.command_spec
    try:
        if command is None:  # prune-sweep: everything after the command name is the benchmark's
            return _run_prune_sweep(words[words.index(args.command) + 1 :])
        if command.extra is not None:
            require(command.extra, "this command")
        if hasattr(args, "unparsed"):  # its module could not be imported: say why
            _load(command.config)
        config = resolve(_load(command.config), args)
        result = _load(command.run)(config)
        return command.printer(config, result)
    except MissingExtraError as exc:
        return _error(args.command, exc)
    except ModuleNotFoundError as exc:
        hint = explain(exc)
        if hint is None:
            raise
        return _error(args.command, hint)
    except (SettingsError, ValueError, FileNotFoundError, FloatingPointError) as exc:
        return _error(args.command, exc)
    except KeyboardInterrupt:  # Ctrl-C: the stages write nothing half-done (atomic writers)
        print(f"vpr-embedded {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
