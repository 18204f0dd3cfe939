"""Where pruning buys XNNPACK latency: per-stage ratio configurations of one model.

Each configuration prunes the backbone (L2 importance, one step, no recovery: latency
and size depend only on the widths) and the descriptor to --descriptor-dim, lowers it
to the int8 program `export` deploys, and times every program interleaved in one
process (--rounds rounds x --repeat runs, 1 thread, median). Prints a table and writes
benchmarks/results/bench_stage_ratios.json.

  python benchmarks/bench_stage_ratios.py [--model efficientnet_lite0-gem]
      [--config u35=0.35x8 early=0.4,0.4,0.45,0.45,0.35,0.35,0.25,0.25 ...]
      [--descriptor-dim 640] [--rounds 9] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from pruning_sweep.config import DATA, REFERENCE_DIRS
from pruning_sweep.measure import ensure_pte, load_method

from vpr_embedded.bundle import set_runtime_threads
from vpr_embedded.data.images import load_tensor
from vpr_embedded.models import VPRModel
from vpr_embedded.models.loading import load_model
from vpr_embedded.prune import PruneConfig, RecoveryConfig, prune_model
from vpr_embedded.prune.backbone import n_stages
from vpr_embedded.quantize import sample_folders

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = (
    "u30=0.30x8",
    "u35=0.35x8",
    "u40=0.40x8",
    "late=0,0,0.2,0.3,0.4,0.4,0.45,0.45",
    "early=0.4,0.4,0.45,0.45,0.35,0.35,0.25,0.25",
    "ramp=0.2,0.2,0.3,0.3,0.4,0.4,0.4,0.4",
    "mid=0.3,0.3,0.4,0.45,0.45,0.35,0.3,0.3",
)


def parse_config(spec: str, stages: int) -> tuple[str, tuple[float, ...]]:
    """ "NAME=R0,R1,..." (one ratio per stage, stem first) or "NAME=RxN" (uniform)."""
    name, _, rest = spec.partition("=")
    if "x" in rest:
        r, _, n = rest.partition("x")
        ratios = (float(r),) * int(n)
    else:
        ratios = tuple(float(v) for v in rest.split(","))
    if not name or len(ratios) != stages:
        raise SystemExit(f"--config {spec!r}: want NAME=R0,..,R{stages - 1} or NAME=Rx{stages}")
    return name, ratios


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="efficientnet_lite0-gem")
    ap.add_argument("--config", nargs="+", default=list(DEFAULT_CONFIGS))
    ap.add_argument("--descriptor-dim", type=int, default=640)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--work", default=str(REPO / "runs" / "stage_ratios"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args()

    torch.manual_seed(0)
    teacher = load_model(args.model)
    configs = [parse_config(c, n_stages(teacher.backbone)) for c in args.config]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    calib_paths = sample_folders([DATA / d / sub for d, sub in REFERENCE_DIRS.items()], 8)
    calib = [load_tensor(p, teacher.preprocessing).unsqueeze(0) for p in calib_paths]
    models: dict[str, tuple[VPRModel, tuple[float, ...] | None]] = {"unpruned": (teacher, None)}
    for name, ratios in configs:
        cfg = PruneConfig(
            stage_ratios=ratios,
            descriptor_dim=args.descriptor_dim,
            descriptor_importance="l1",
            importance="l2",
            recovery=RecoveryConfig(epochs=0, progress=False),
        )
        models[name] = (prune_model(teacher, cfg).model, ratios)
    methods = {}
    for name, (m, stage_r) in models.items():
        print(f"lowering {name} ...", flush=True)
        widths = "-".join(f"{r:g}" for r in stage_r) if stage_r else "full"
        prefix = work / f"{Path(args.model).stem}-{widths}-d{m.descriptor_dim}"
        methods[name] = load_method(ensure_pte(m, calib, prefix, "int8"))
    torch.set_num_threads(1)
    set_runtime_threads(1)
    x = torch.randn(1, 3, *teacher.config.input_size)
    times: dict[str, list[float]] = {k: [] for k in methods}
    for meth in methods.values():
        meth.execute([x])
    for _ in range(args.rounds):
        for name, meth in methods.items():
            for _ in range(args.repeat):
                t = time.perf_counter()
                meth.execute([x])
                times[name].append(time.perf_counter() - t)
    base = statistics.median(times["unpruned"])
    rows = []
    print("| config | stage ratios (stem first) | params | int8 ms | int8 cut |")
    print("|---|---|---|---|---|")
    for name, (m, stage_r) in models.items():
        ms = 1000.0 * statistics.median(times[name])
        row = {
            "config": name,
            "stage_ratios": list(stage_r) if stage_r else None,
            "parameters": sum(p.numel() for p in m.parameters()),
            "descriptor_dim": m.descriptor_dim,
            "int8_ms": ms,
            "int8_cut": 1.0 - ms / (1000.0 * base),
        }
        rows.append(row)
        rs = ",".join(f"{r:g}" for r in stage_r) if stage_r else "-"
        print(f"| {name} | {rs} | {row['parameters']:,} | {ms:.2f} | {row['int8_cut']:+.1%} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "bench_stage_ratios",
        "machine": platform.platform(),
        "model": args.model,
        "settings": vars(args),
        "rows": rows,
    }
    (out / "bench_stage_ratios.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out / 'bench_stage_ratios.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
