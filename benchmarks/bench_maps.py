"""Map files and sequence matching: size per place, write throughput, search latency of
a memory-mapped map vs the in-memory Index (same run, interleaved), and recall@1 of
single-frame vs sequence (L=10) matching on nordland_part1.

Prints a table and writes benchmarks/results/bench_maps.json.
Usage: python benchmarks/bench_maps.py [--places 10000] [--search-places 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vpr_embedded.data.datasets import read_aligned
from vpr_embedded.maps import Map, build_map
from vpr_embedded.matching import STORAGES, Index, simd_level
from vpr_embedded.sequence import SequenceConfig, recall_single_vs_sequence, seqslam_descriptors

RESULTS = Path(__file__).resolve().parent / "results"
SHA = "0" * 64
TARGET_BYTES = {"int8": 520, "binary": 72}


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sizes(tmp: Path, places: int, dim: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    x = unit_rows(rng, places, dim)
    names = [f"images-{i:05d}.png" for i in range(places)]
    rows: list[dict[str, object]] = []
    for storage in STORAGES:
        t0 = time.perf_counter()
        bare = build_map(
            x, out_path=tmp / f"{storage}.vprmap", storage=storage, model_sha256=SHA,
            model_name="bench",
        )  # fmt: skip
        write_s = time.perf_counter() - t0
        full = build_map(
            x,
            out_path=tmp / f"{storage}_full.vprmap",
            storage=storage,
            names=names,
            positions=rng.random((places, 2)),
            position_kind="utm",
            timestamps=np.arange(places, dtype=np.float64),
            model_sha256=SHA,
            model_name="bench",
        )
        rows.append(
            {
                "storage": storage,
                "dim": dim,
                "places": places,
                "bytes_per_place": bare.stat().st_size / places,
                "bytes_per_place_with_names_positions_timestamps": full.stat().st_size / places,
                "target_bytes_per_place": TARGET_BYTES.get(storage),
                "write_places_per_s": places / write_s,
            }
        )
    return rows


def latency(tmp: Path, places: int, dim: int, queries: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(1)
    x = unit_rows(rng, places, dim)
    q = unit_rows(rng, queries, dim)
    out: list[dict[str, object]] = []
    for storage in ("int8", "binary"):
        path = build_map(
            x, out_path=tmp / f"lat_{storage}.vprmap", storage=storage, model_sha256=SHA,
            model_name="bench",
        )  # fmt: skip
        t0 = time.perf_counter()
        m = Map.open(path)
        open_ms = (time.perf_counter() - t0) * 1e3
        index = Index.encode(x, storage)  # type: ignore[arg-type]
        for threads in (1, 0):
            m.search(q[:4], k=5, threads=threads)
            index.search(q[:4], k=5, threads=threads)
            tm: list[float] = []
            ti: list[float] = []
            for j in range(queries):  # interleaved: one query on each, in turn
                t = time.perf_counter()
                a = m.search(q[j], k=5, threads=threads)
                tm.append(time.perf_counter() - t)
                t = time.perf_counter()
                b = index.search(q[j], k=5, threads=threads)
                ti.append(time.perf_counter() - t)
                assert np.array_equal(a.ids, b.ids)
            out.append(
                {
                    "storage": storage,
                    "places": places,
                    "dim": dim,
                    "threads": threads or os.cpu_count(),
                    "open_verify_ms": open_ms,
                    "map_median_ms": statistics.median(tm) * 1e3,
                    "index_median_ms": statistics.median(ti) * 1e3,
                }
            )
        del m, index
    return out


def nordland(data: Path) -> dict[str, object]:
    root = data / "nordland_part1"
    ds = read_aligned(root)
    t0 = time.perf_counter()
    refs = seqslam_descriptors(ds.references)
    queries = seqslam_descriptors(ds.queries)
    desc_s = time.perf_counter() - t0
    cfg = SequenceConfig(k=1)
    t0 = time.perf_counter()
    r = recall_single_vs_sequence(refs, queries, ds.positives, cfg)
    match_s = time.perf_counter() - t0
    return {
        "dataset": "nordland_part1 (summer ref, winter query, +-2 frames)",
        "descriptors": "SeqSLAM: 64x32 grey, patch-normalised (8 px), L2 (2048-D)",
        "config": cfg.__dict__,
        "recall_at_1_single": r.single,
        "recall_at_1_sequence": r.sequence,
        "gain_points": 100 * (r.sequence - r.single),
        "queries": r.queries,
        "descriptor_seconds": desc_s,
        "match_seconds": match_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--places", type=int, default=10_000, help="places for the size table")
    ap.add_argument("--search-places", type=int, default=100_000)
    ap.add_argument("--search-dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("VPR_DATA_DIR", "../shared/data"))
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        size_rows = sizes(tmp, args.places, 512)
        lat_rows = latency(tmp, args.search_places, args.search_dim, args.queries)
    nord = nordland(args.data)

    print(f"\nMap size at D=512, {args.places} places (names etc. optional)")
    print(
        f"{'storage':8} {'B/place':>9} {'+names,pos,ts':>14} {'target':>7} {'write places/s':>15}"
    )
    for r in size_rows:
        tgt = r["target_bytes_per_place"]
        print(
            f"{r['storage']!s:8} {r['bytes_per_place']:9.1f} "
            f"{r['bytes_per_place_with_names_positions_timestamps']:14.1f} "
            f"{tgt if tgt is not None else '-':>7} {r['write_places_per_s']:15,.0f}"
        )
    print(f"\nSearch latency, one query, k=5, {args.search_places} x {args.search_dim} (median)")
    print(f"{'storage':8} {'threads':>7} {'mmap map ms':>12} {'Index ms':>9} {'open ms':>8}")
    for r in lat_rows:
        print(
            f"{r['storage']!s:8} {r['threads']!s:>7} {r['map_median_ms']:12.3f} "
            f"{r['index_median_ms']:9.3f} {r['open_verify_ms']:8.1f}"
        )
    print(
        f"\nnordland_part1 recall@1: single-frame {nord['recall_at_1_single']:.3f}, "
        f"sequence L=10 {nord['recall_at_1_sequence']:.3f} "
        f"(+{nord['gain_points']:.1f} points, {nord['queries']} queries)"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bench_maps.json"
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "simd": simd_level(),
                },
                "sizes": size_rows,
                "latency": lat_rows,
                "nordland": nord,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
