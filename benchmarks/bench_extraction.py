"""Descriptor extraction benchmark: PyTorch eager fp32 vs ExecuTorch (XNNPACK) fp32
and int8, through the Python runtime and the C++ localizer, at 1 and 2 threads.

Per model: ms per image (median over --rounds interleaved rounds of --repeat runs),
.pte size, int8 parity (cosine vs eager on real images) and the C++ localizer's peak
resident memory (VmHWM of the child process: model + map). Prints a table and writes
benchmarks/results/extraction.json. Needs the host localizer (scripts/test_runtime.sh).

  python benchmarks/bench_extraction.py [--models efficientnet_lite0-gem resnet18-gem]
      [--checkpoint PRUNED.pt ...] [--calib-images DIR] [--rounds 7] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vpr_embedded.bundle import load_bundle, read_manifest, set_runtime_threads
from vpr_embedded.data.images import load_tensor, to_tensor
from vpr_embedded.export import ExportConfig, export_bundle
from vpr_embedded.maps import build_map
from vpr_embedded.models.loading import load_model
from vpr_embedded.quantize import find_images, sample_evenly

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "build/runtime-host/csrc/runtime/vpr-localize"


def _times_ms(fn: object, repeat: int) -> list[float]:
    """``repeat`` timings of ``fn`` in ms, after one warm-up call."""
    assert callable(fn)
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return times


def _add(times: dict[str, list[float]], key: str, values: list[float]) -> None:
    times.setdefault(key, []).extend(values)


def _cpp(
    bundle: Path, map_path: Path, image: Path, threads: int, repeat: int
) -> tuple[float, float, float]:
    """C++ median ms of preprocessing and of inference (decode excluded) and the
    child's peak resident memory in MB (VmHWM, reported by the binary: ru_maxrss would
    include the forking Python's pages)."""
    cmd = [str(BIN), "--bundle", str(bundle), "--map", str(map_path), "--threads", str(threads)]
    cmd += ["--repeat", str(repeat + 1), str(image)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout is not None
    text = p.stdout.read()
    if p.wait() != 0:
        raise RuntimeError(f"{cmd} failed with {p.returncode}")
    doc = json.loads(text)
    med = doc["median_ms"]
    return float(med["preprocess"]), float(med["inference"]), float(doc["peak_rss_kb"]) / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["efficientnet_lite0-gem", "resnet18-gem"])
    ap.add_argument("--checkpoint", nargs="*", default=[], help="pruned checkpoints too")
    data = Path(os.environ.get("VPR_DATA_DIR", REPO.parent / "shared" / "data"))
    ap.add_argument("--calib-images", default=str(data / "corridor" / "ref"))
    ap.add_argument("--images", default=str(data / "corridor" / "query"))
    ap.add_argument("--calib-count", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per variant and round")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/extraction.json"))
    ap.add_argument("--bundles", default=str(REPO / "build/bench_bundles"))
    args = ap.parse_args()
    if not BIN.is_file():
        print(f"{BIN} missing: run scripts/test_runtime.sh first", file=sys.stderr)
        return 2
    images = sample_evenly(find_images(args.images), 16)
    rows = []
    for spec in [*args.models, *args.checkpoint]:
        model = load_model(spec)
        name = Path(spec).stem if Path(spec).is_file() else spec
        x = load_tensor(images[0], model.preprocessing).unsqueeze(0)
        with Image.open(images[0]) as im:
            frame = im.convert("RGB")  # decoded once: decode is excluded on both sides
        bundles = {}
        for q in ("none", "int8"):
            out = Path(args.bundles) / f"{name}-{q}"
            cfg = ExportConfig(
                quantize=q,
                calib_images=Path(args.calib_images),
                calib_count=args.calib_count,
                parity_count=16,
                progress=False,
            )
            res = export_bundle(model, out, cfg)
            bundles[q] = (out, res)
        # a map of 1000 random places for the C++ memory figure (model + map)
        rng = np.random.default_rng(0)
        for out, _res in bundles.values():
            mm = read_manifest(out)
            build_map(
                rng.standard_normal((1000, mm.descriptor_dim)).astype(np.float32),
                out_path=out / "bench.vprmap",
                model_sha256=mm.pte_sha256,
                model_name=mm.model_name,
                storage="int8",
            )
        for threads in args.threads:
            torch.set_num_threads(threads)
            set_runtime_threads(threads)
            loaded = {q: load_bundle(out) for q, (out, _res) in bundles.items()}
            # The bundles' input (rotated for the pad-free form), prepared as a device does.
            bprep = loaded["int8"].preprocessing
            xb = to_tensor(frame, bprep).unsqueeze(0)
            # Every variant is timed in each round, in turn, so that a slow spell of this
            # shared machine hits all of them alike; medians over all rounds.
            times: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                with torch.no_grad():
                    _add(times, "eager", _times_ms(lambda m=model, x=x: m(x), args.repeat))
                prep_frame = _times_ms(lambda f=frame, p=bprep: to_tensor(f, p), args.repeat)
                _add(times, "py_pre", prep_frame)
                for q, b in loaded.items():
                    _add(times, f"py_{q}", _times_ms(lambda b=b, x=xb: b.embed_one(x), args.repeat))
                    out = bundles[q][0]
                    pre, inf, rss = _cpp(out, out / "bench.vprmap", images[0], threads, args.repeat)
                    _add(times, f"cpp_pre_{q}", [pre])
                    _add(times, f"cpp_{q}", [inf])
                    _add(times, f"rss_{q}", [rss])
            med = {k: statistics.median(v) for k, v in times.items()}
            row: dict[str, object] = {
                "model": name,
                "threads": threads,
                "input": list(model.config.input_size),
                "eager_fp32_ms": med["eager"],
                "py_preprocess_ms": med["py_pre"],
            }
            for q, (_out, res) in bundles.items():
                tag = "fp32" if q == "none" else "int8"
                row[f"et_{tag}_py_ms"] = med[f"py_{q}"]
                row[f"et_{tag}_py_frame_ms"] = med["py_pre"] + med[f"py_{q}"]
                row[f"et_{tag}_cpp_ms"] = med[f"cpp_{q}"]
                row[f"et_{tag}_cpp_frame_ms"] = med[f"cpp_pre_{q}"] + med[f"cpp_{q}"]
                row[f"cpp_preprocess_ms_{tag}"] = med[f"cpp_pre_{q}"]
                row[f"et_{tag}_cpp_rss_mb"] = max(times[f"rss_{q}"])
                row[f"pte_{tag}_mb"] = res.pte_bytes / 1e6
                row[f"{tag}_min_cosine"] = min(res.parity_cosines) if res.parity_cosines else None
                row[f"{tag}_fully_delegated"] = res.delegation.fully_delegated
            rows.append(row)
    hdr = (
        f"{'model':24s} {'thr':>3s} {'eager':>7s} {'ET fp32':>8s} {'ET int8':>8s} "
        f"{'x eager':>7s} {'C++ int8':>8s} {'C++/Py':>6s} {'frame Py':>8s} {'frame C++':>9s} "
        f"{'C++/Py':>6s} {'pte fp32':>8s} {'pte int8':>8s} {'cos int8':>8s} {'RSS MB':>7s}"
    )
    print("ms per image; ET = Python runtime, inference only; frame = preprocess + inference")
    print("from a decoded RGB frame (decode excluded), int8 bundle")
    print(hdr)
    for r in rows:
        f = {k: float(v) if isinstance(v, int | float) else 0.0 for k, v in r.items()}
        print(
            f"{r['model']!s:24s} {r['threads']!s:>3s} {f['eager_fp32_ms']:7.2f} "
            f"{f['et_fp32_py_ms']:8.2f} {f['et_int8_py_ms']:8.2f} "
            f"{f['eager_fp32_ms'] / f['et_int8_py_ms']:7.1f} {f['et_int8_cpp_ms']:8.2f} "
            f"{f['et_int8_cpp_ms'] / f['et_int8_py_ms']:6.2f} {f['et_int8_py_frame_ms']:8.2f} "
            f"{f['et_int8_cpp_frame_ms']:9.2f} "
            f"{f['et_int8_cpp_frame_ms'] / f['et_int8_py_frame_ms']:6.2f} "
            f"{f['pte_fp32_mb']:8.2f} {f['pte_int8_mb']:8.2f} {f['int8_min_cosine']:8.4f} "
            f"{f['et_int8_cpp_rss_mb']:7.1f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "machine": os.uname().machine,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "note": "ms per image, median; *_py_ms / *_cpp_ms: inference only; *_frame_ms: "
        "preprocess (from a decoded RGB frame) + inference",
        "rows": rows,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
