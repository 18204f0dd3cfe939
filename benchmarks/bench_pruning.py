"""Pruning sweep (benchmark entry; `vpr-embedded prune-sweep` runs this from a checkout).

For (backbone ratio, descriptor size) points, prune + recover each model, then measure
parameters, MACs, model bytes (fp32, int8 .pte), descriptor dim, map bytes, extraction
latency at 1 thread (eager, ExecuTorch XNNPACK fp32/int8), matching latency (C++ core,
100k synthetic places, 1 thread) and recall@1/5 on corridor, nordland_part1 and
gardens_point_sample, with a PCA-of-the-unpruned-descriptor yardstick. Recovery uses
the datasets' REFERENCE images only. Logic: benchmarks/pruning_sweep/ (config, measure,
report, plot).

Usage: python benchmarks/bench_pruning.py [--config recipe.toml]
    [--models efficientnet_lite0-gem resnet18-gem] [--points 0.3:0.5 0.2:960] [--steps 4]
    [--epochs 2] [--seeds 0 1]
Writes benchmarks/results/bench_pruning.{json,md} + Pareto PNGs (work files: runs/pruning).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pruning_sweep, beside this file

from pruning_sweep import SweepConfig, run_sweep

from vpr_embedded.settings import SettingsError, add_arguments, resolve


def build_parser(prog: str = "bench_pruning.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="prune at several (backbone ratio, descriptor size) points"
    )
    parser.add_argument(
        "--config", dest="config_file", default=None, metavar="FILE", help="TOML recipe"
    )
    add_arguments(parser, SweepConfig)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "bench_pruning.py") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        run_sweep(resolve(SweepConfig, args))
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
