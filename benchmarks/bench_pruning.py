"""Pruning sweep (benchmark entry): the same as ``vpr-embedded prune-sweep``.

For (backbone ratio, descriptor size) points, prune + recover each model, then measure
parameters, MACs, model bytes (fp32, int8 .pte), descriptor dim, map bytes, extraction
latency at 1 thread (eager, ExecuTorch XNNPACK fp32/int8), matching latency (C++ core,
100k synthetic places, 1 thread) and recall@1/5 on corridor, nordland_part1 and
gardens_point_sample, with a PCA-of-the-unpruned-descriptor yardstick. Recovery uses
the datasets' REFERENCE images only. Logic: vpr_embedded/prune/sweep.py.

Usage: python benchmarks/bench_pruning.py [--models efficientnet_lite0-gem resnet18-gem]
    [--points 0.3:0.5 0.2:960] [--steps 4] [--epochs 2] [--seeds 0 1]
Writes benchmarks/results/bench_pruning.{json,md} + Pareto PNGs (work files: runs/pruning).
"""

from __future__ import annotations

import sys

from vpr_embedded.cli import main

if __name__ == "__main__":
    sys.exit(main(["prune-sweep", *sys.argv[1:]]))
