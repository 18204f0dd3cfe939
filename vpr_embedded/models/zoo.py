"""The model zoo: models trained by `vpr-embedded train` on the project's own data, shipped
in the package as fp16 checkpoints, each with a provenance record.

``vpr_embedded/zoo/NAME.pt`` is a native checkpoint (models/checkpoints.py) with fp16
weights; ``NAME.json`` says how it was made (the exact commands, data folders and splits,
commit, seed), its sha256, and its recall table with the segments named. ``--model
zoo:NAME`` loads one wherever a model is taken; `vpr-embedded models` lists them;
`vpr-embedded zoo-pack` writes an entry from a training run, and
``scripts/zoo.sh NAME`` regenerates an entry from its recipe (recipes/zoo/NAME.toml).
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpr_embedded.models.checkpoints import load_checkpoint, save_checkpoint
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.settings import option, required

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"
PREFIX = "zoo:"
MAX_ENTRY_BYTES = 10 * 1024 * 1024
MAX_ZOO_BYTES = 32 * 1024 * 1024


def zoo_names() -> list[str]:
    return sorted(p.stem for p in ZOO_DIR.glob("*.pt")) if ZOO_DIR.is_dir() else []


def zoo_path(spec: str) -> Path:
    """``zoo:NAME`` -> the entry's checkpoint, or one clear error listing the zoo."""
    name = spec[len(PREFIX) :] if spec.startswith(PREFIX) else spec
    path = ZOO_DIR / f"{name}.pt"
    if not path.is_file():
        have = ", ".join(zoo_names()) or "none"
        raise ValueError(f"no zoo model {name!r}; the zoo has: {have} (`vpr-embedded models`)")
    return path


def provenance(name: str) -> dict[str, Any]:
    path = ZOO_DIR / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    return data


def load_zoo_model(spec: str, input_size: tuple[int, int] | None = None) -> VPRModel:
    """A zoo entry as a float32 model."""
    model = load_checkpoint(zoo_path(spec), input_size=input_size)
    return model.float()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def describe_zoo() -> str:
    """One line per zoo entry: name, input, descriptor size, MB, and its recall table."""
    lines = []
    for name in zoo_names():
        info = provenance(name)
        mb = (ZOO_DIR / f"{name}.pt").stat().st_size / 1e6
        recall = "; ".join(
            f"{row['dataset']}: R@1 {row['R@1']:.3f}" for row in info.get("recall", [])
        )
        lines.append(
            f"zoo:{name:26s} input={info.get('input_size', '?')} "
            f"dim={info.get('descriptor_dim', '?')} {mb:.1f} MB  {recall}"
        )
    return "\n".join(lines) if lines else "(the zoo is empty)"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ZOO_DIR.parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass(frozen=True)
class ZooPackJob:
    """`vpr-embedded zoo-pack`: store a trained checkpoint in the zoo (fp16) with its
    provenance and its recall on the named evaluation sets."""

    checkpoint: Path = required("trained checkpoint (e.g. OUT/best.pt of `train`)")
    name: str = required("zoo entry name")
    command: str = required("the command that regenerates the entry (recorded)")
    train_config: Path | None = option(None, "the run's config.json (recorded)")
    evaluate: tuple[str, ...] = option(
        ("nordland_part1@val", "nordland_part1@test", "corridor"),
        "DATASET[@SEGMENT] to report recall on",
        repeat=True,
    )
    zoo_dir: Path = option(ZOO_DIR, "where the zoo lives")


def _recall_rows(model: VPRModel, specs: tuple[str, ...]) -> list[dict[str, Any]]:
    from vpr_embedded.data.datasets import load_dataset
    from vpr_embedded.models.embed import exact_recall

    rows = []
    for spec in specs:
        name, _, segment = spec.partition("@")
        ds = load_dataset(name, split=segment or None)
        r = exact_recall(model, ds)
        rows.append({"dataset": spec, "queries": len(ds.queries), **r})
    return rows


def run_zoo_pack(job: ZooPackJob) -> str:
    model = load_checkpoint(job.checkpoint).float().eval()
    out_dir = Path(job.zoo_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{job.name}.pt"
    # The native checkpoint format, with fp16 weights (integer buffers stay as they are).
    save_checkpoint(copy.deepcopy(model).half(), target)
    size = target.stat().st_size
    if size > MAX_ENTRY_BYTES:
        target.unlink()
        raise ValueError(f"{job.name}: {size / 1e6:.1f} MB at fp16, over the 10 MB entry limit")
    total = sum(p.stat().st_size for p in out_dir.glob("*.pt"))
    if total > MAX_ZOO_BYTES:
        target.unlink()
        raise ValueError(f"the zoo would hold {total / 1e6:.1f} MB, over its 32 MB limit")
    # The recall of what ships: the fp16 weights, loaded back as users load them.
    model = load_checkpoint(target).float().eval()
    rows = _recall_rows(model, job.evaluate)
    train_cfg = json.loads(Path(job.train_config).read_text()) if job.train_config else None
    record = {
        "name": job.name,
        "command": job.command,
        "training": train_cfg,
        "commit": _commit(),
        "sha256": sha256_of(target),
        "bytes": size,
        "input_size": list(model.config.input_size),
        "descriptor_dim": model.descriptor_dim,
        "recall": rows,
        "note": "recall of the fp16 weights in float32, exact search; segments of "
        "vpr_embedded/data/splits.py (train: trained on; val: chose the checkpoint; "
        "test: reported only)",
    }
    (out_dir / f"{job.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    table = "\n".join(
        f"  {r['dataset']:24s} {r['queries']:5d} queries  R@1 {r['R@1']:.3f}  R@5 {r['R@5']:.3f}"
        for r in rows
    )
    return f"wrote {target} ({size / 1e6:.1f} MB)\n{table}"
