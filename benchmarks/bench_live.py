"""Live localization benchmark: vpr-localize per frame, end to end, from a raw pipe.

For each model (the zoo's trained nordland-lite0-gem, exported int8 as `make run` exports
it, and the default efficientnet_lite0-gem, int8 at its default input) and each thread
count, a raw rgb24 stream of winter frames of nordland_part1 is written into
`vpr-localize --stdin 64x32 --sequence 10` against a summer map of every place (int8), as
fast as it reads them (the pipe's back-pressure). Reported per frame:

- the stages, medians of the lines' own times: convert (raw -> RGB), preprocess,
  inference, match (single frame + sequence of 10);
- end to end: the median gap between consecutive lines as the reader receives them, which
  adds the JSON line and the pipe to the stages; sustained frames per second = lines over
  the time from the first line to the last;
- JPEG decoding of real JPEG files (corridor, 160x120), from a run on files;
- the localizer's peak resident memory (model + map).

aarch64: the same binary's correctness is in the tests (under qemu, which cannot time it).
The Raspberry Pi figures printed here are an ESTIMATE: the measured inference time scaled
by the int8 multiply-accumulate peak of this CPU over that of a Cortex-A76 (Pi 5) or A72
(Pi 4), assuming XNNPACK reaches the same fraction of peak on both.

  python benchmarks/bench_live.py [--frames 437] [--threads 1 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_line, read_bandwidth

from vpr_embedded.bundle import load_bundle, read_manifest
from vpr_embedded.data.splits import segment_range
from vpr_embedded.export import ExportConfig, export_bundle
from vpr_embedded.maps import build_map
from vpr_embedded.models.loading import load_model

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "build/runtime-host/csrc/runtime/vpr-localize"
# What `make run` keeps float32 in the trained model (Makefile, KEEP_FLOAT).
ZOO_KEEP_FLOAT = tuple(["_conv_stem", "_bn0"] + [f"_blocks.{i}" for i in range(6)])
MODELS = {
    "zoo:nordland-lite0-gem": ZOO_KEEP_FLOAT,
    "efficientnet_lite0-gem": None,
}
# Peak int8 multiply-accumulates per cycle and core, and clock (GHz) of the Pi cores.
# A76: two 128-bit SDOT pipes (16 MACs each); A72: no dot product, two 128-bit pipes of
# widening multiply-accumulates (8 MACs each, at best).
PI = {"Pi 5 (Cortex-A76, 2.4 GHz)": (32, 2.4), "Pi 4 (Cortex-A72, 1.8 GHz)": (16, 1.8)}


def x86_int8_macs_per_cycle(info: dict[str, Any]) -> int:
    """Peak int8 MACs per cycle and core that XNNPACK's kernels can use on this CPU."""
    flags = [str(f) for f in info["flags"]]
    family = int(str(info["family"])) if str(info["family"]).isdigit() else 0
    if "avx512_vnni" in flags and info["vendor"] == "AuthenticAMD" and family >= 26:
        return 128  # Zen 5: two full-width 512-bit VPDPBUSD per cycle
    if "avx512_vnni" in flags:
        return 64  # one 512-bit VPDPBUSD per cycle (Zen 4 splits it into two 256-bit halves)
    if "avx2" in flags:
        return 32  # VPMADDUBSW + VPMADDWD on two 256-bit pipes
    return 16


def count_macs(model: torch.nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of one forward pass: convolutions and linear layers."""
    total = 0

    def conv(m: torch.nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear(m: torch.nn.Linear, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear))
    with torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    for h in hooks:
        h.remove()
    return total


def stream(bundle: Path, map_path: Path, frames: np.ndarray, threads: int) -> dict[str, Any]:
    """Writes the frames into vpr-localize's stdin from a thread and times the lines."""
    n, h, w, _ = frames.shape
    summary = map_path.parent / f"summary-{threads}.json"
    cmd = [str(BIN), "--bundle", str(bundle), "--map", str(map_path), "--threads", str(threads),
           "--stdin", f"{w}x{h}", "--pixels", "rgb24", "--sequence", "10", "--summary",
           str(summary)]  # fmt: skip
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdin is not None and p.stdout is not None

    def write() -> None:
        assert p.stdin is not None
        for f in frames:
            p.stdin.write(f.tobytes())
        p.stdin.close()

    writer = threading.Thread(target=write)
    writer.start()
    arrivals, lines = [], []
    for text in p.stdout:
        arrivals.append(time.perf_counter())
        lines.append(json.loads(text))
    writer.join()
    if p.wait() != 0 or len(lines) != n or any("error" in line for line in lines):
        raise RuntimeError(f"{cmd} failed ({p.returncode}, {len(lines)} of {n} lines)")
    gaps = np.diff(arrivals) * 1000
    ms = {k: statistics.median(line["ms"][k] for line in lines) for k in lines[0]["ms"]}
    return {
        "convert_ms": ms["decode"],
        "preprocess_ms": ms["preprocess"],
        "inference_ms": ms["inference"],
        "match_ms": ms["match"],
        "end_to_end_ms": float(np.median(gaps)),
        "fps": (n - 1) / (arrivals[-1] - arrivals[0]),
        "peak_rss_mb": json.loads(summary.read_text())["peak_rss_kb"] / 1024,
    }


def jpeg_decode_ms(bundle: Path, jpegs: list[Path]) -> float:
    p = subprocess.run([str(BIN), "--bundle", str(bundle), *map(str, jpegs)],
                       capture_output=True, text=True, check=True)  # fmt: skip
    return float(statistics.median(json.loads(t)["ms"]["decode"] for t in p.stdout.splitlines()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    data = Path(os.environ.get("VPR_DATA_DIR", REPO.parent / "shared" / "data"))
    ap.add_argument("--data", default=str(data))
    ap.add_argument("--frames", type=int, default=437, help="winter frames (test segment)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--work", default=str(REPO / "build/bench_live"))
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/live.json"))
    args = ap.parse_args()
    if not BIN.is_file():
        print(f"{BIN} missing: run scripts/test_runtime.sh first", file=sys.stderr)
        return 2
    root = Path(args.data) / "nordland_part1"
    summer = sorted((root / "summer").glob("*.png"))
    winter = sorted((root / "winter").glob("*.png"))
    picked = list(segment_range(len(winter), "test"))[: args.frames]
    frames = np.stack([np.asarray(Image.open(winter[i]).convert("RGB")) for i in picked])
    jpegs = sorted((Path(args.data) / "corridor" / "query").glob("*.jpg"))[:50]
    info = machine_info()
    bandwidth, _ = read_bandwidth(0.5)
    x86_peak = x86_int8_macs_per_cycle(info)
    ghz = _cpu_ghz()
    rows = []
    for spec in args.models:
        model = load_model(spec)
        out = Path(args.work) / spec.replace(":", "-")
        cfg = ExportConfig(quantize="int8", calib_images=root / "summer", calib_count=64,
                           keep_float=MODELS.get(spec), check=False, progress=False)  # fmt: skip
        export_bundle(model, out, cfg)
        man = read_manifest(out)
        b = load_bundle(out, threads=2)
        map_path = build_map(b.embed_images(summer), out_path=out / "summer.vprmap",
                             model_sha256=man.pte_sha256, model_name=man.model_name,
                             names=[p.name for p in summer])  # fmt: skip
        h, w = model.config.input_size
        macs = count_macs(model.eval(), h, w)
        decode = jpeg_decode_ms(out, jpegs)
        for threads in args.threads:
            r: dict[str, Any] = {"model": spec, "input": [h, w], "threads": threads}
            r.update(macs=macs, places=len(summer), frames=len(frames), jpeg_decode_ms=decode)
            r.update(stream(out, map_path, frames, threads))
            if threads == 1 and ghz:
                for pi, (peak, pi_ghz) in PI.items():
                    scale = (x86_peak * ghz) / (peak * pi_ghz)
                    r[f"estimate {pi} inference_ms"] = r["inference_ms"] * scale
            rows.append(r)
            print(json.dumps(r), flush=True)
    line = machine_line(info, bandwidth)
    print(f"\n{line}")
    print(f"nordland_part1 test segment, {len(frames)} winter frames (64x32 rgb24 on stdin) "
          f"against {len(summer)} summer places (int8 map), --sequence 10; ms per frame, "
          "medians")  # fmt: skip
    print("| model | input | MMACs | threads | convert | preprocess | inference | match | "
          "end to end | fps | JPEG decode | peak RSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['input'][0]}x{r['input'][1]} | {r['macs'] / 1e6:.0f} | "
              f"{r['threads']} | {r['convert_ms']:.3f} | {r['preprocess_ms']:.3f} | "
              f"{r['inference_ms']:.2f} | {r['match_ms']:.3f} | {r['end_to_end_ms']:.2f} | "
              f"{r['fps']:.0f} | {r['jpeg_decode_ms']:.3f} | {r['peak_rss_mb']:.0f} |")  # fmt: skip
    if ghz:
        print(f"\nESTIMATE, not measured: Pi inference at 1 thread = measured x ({x86_peak} "
              f"int8 MACs/cycle x {ghz:.2f} GHz here) / (Pi core's peak x its clock), "
              "assuming the same fraction of peak on both; the clock is the one /proc/cpuinfo "
              "reports (a VM's nominal clock: if this core boosts higher, the estimate is "
              "optimistic by that ratio); the zoo model's float32 blocks are counted as "
              "int8")  # fmt: skip
        for r in rows:
            if r["threads"] == 1:
                est = ", ".join(f"{k.split(' inference')[0][9:]}: {v:.1f} ms" for k, v in r.items()
                                if k.startswith("estimate"))  # fmt: skip
                print(f"- {r['model']}: {est}")
    doc = {"machine": info, "machine_line": line, "x86_int8_macs_per_cycle": x86_peak,
           "cpu_ghz": ghz, "rows": rows}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _cpu_ghz() -> float | None:
    """The clock /proc/cpuinfo reports for the first core (a VM's nominal clock), in GHz."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000
    except (OSError, ValueError):
        pass
    return None


if __name__ == "__main__":
    sys.exit(main())
