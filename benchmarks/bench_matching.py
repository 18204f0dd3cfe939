"""Benchmark exhaustive top-10 matching (vpr_embedded.matching) against its yardsticks.

Yardsticks, each timed as shipped: numpy (matmul + argpartition), faiss-cpu (IndexFlatIP,
IndexScalarQuantizer QT_fp16 / QT_8bit, IndexBinaryFlat), simsimd (cdist dot / hamming) and
numkong (packed i8 dot and packed binary hamming), plus a memory-bandwidth bound.
See benchmarks/README.md for what is measured and how to read the table.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import reexec_without_blas_env

if __name__ == "__main__":  # must run before numpy loads OpenBLAS
    reexec_without_blas_env(keep="--keep-openblas-env" in sys.argv)

import argparse
import json
import os
import platform
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

# simsimd must be imported before numkong / usearch: they clash otherwise (DESIGN.md).
import simsimd

# isort: split
import faiss
import numkong as nk
import numpy as np
from _common import (
    blas_report,
    machine_info,
    machine_line,
    nordland_pixels,
    normalise,
    project_descriptors,
    random_chunks,
    read_bandwidth,
    time_call,
)
from threadpoolctl import threadpool_limits

from vpr_embedded.matching import Index, encode, kernel_tuning, simd_level

K = 10
BATCH = 100
SEED = 20240611
STORAGES = ("float32", "float16", "int8", "binary")
NORDLAND = Path("/work/shared/data/nordland_part1")
Ids = np.ndarray
Chunks = Callable[[], Iterator[tuple[int, np.ndarray]]]


# ---------------------------------------------------------------- queries and top-k


@dataclass
class Queries:
    """One query set in every form the methods take."""

    f32: np.ndarray
    f16: np.ndarray = field(init=False)
    i8: np.ndarray = field(init=False)
    i8_scales: np.ndarray = field(init=False)
    bits: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.f16 = encode(self.f32, "float16")[0]
        codes, scales = encode(self.f32, "int8")
        self.i8, self.i8_scales = codes, scales
        self.bits = encode(self.f32, "binary")[0]


def top_largest(scores: np.ndarray, k: int = K) -> Ids:
    """Ids of the k largest scores per row, best first (what a numpy user writes)."""
    n = scores.shape[1]
    part = np.argpartition(scores, n - k, axis=1)[:, n - k :]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def top_smallest(dists: np.ndarray, k: int = K) -> Ids:
    """Ids of the k smallest distances per row, best first."""
    part = np.argpartition(dists, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(dists, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def recall_at_k(ids: Ids, truth: Ids) -> float:
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(ids, truth, strict=True))
    return hits / truth.size


# ---------------------------------------------------------------- databases


@dataclass
class Method:
    """A way to get top-10 ids: run(queries, rows, threads) -> ids (rows, k)."""

    name: str
    run: Callable[[Queries, slice, int], Ids]
    nbytes: int
    ours: bool = False
    threaded: bool = True


def assemble(chunks: Chunks, n: int, d: int, storage: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Encode the chunk stream into one (codes, scales) pair."""
    width = d // 8 if storage == "binary" else d
    dtype = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "binary": np.uint8}
    codes = np.empty((n, width), dtype=dtype[storage])
    scales = np.empty(n, dtype=np.float32) if storage == "int8" else None
    for start, x in chunks():
        c, s = (x, None) if storage == "float32" else encode(x, storage)
        codes[start : start + len(x)] = c
        if scales is not None and s is not None:
            scales[start : start + len(x)] = s
    return codes, scales


def faiss_float_index(chunks: Chunks, d: int, storage: str) -> faiss.Index:
    """IndexFlatIP or IndexScalarQuantizer, trained on the first chunk, filled chunk by chunk."""
    if storage == "float32":
        index = faiss.IndexFlatIP(d)
    else:
        qtype = {"float16": faiss.ScalarQuantizer.QT_fp16, "int8": faiss.ScalarQuantizer.QT_8bit}
        index = faiss.IndexScalarQuantizer(d, qtype[storage], faiss.METRIC_INNER_PRODUCT)
    for _, x in chunks():
        if not index.is_trained:
            index.train(x)
        index.add(x)
    return index


def faiss_method(name: str, index: faiss.Index, form: str) -> Method:
    def run(q: Queries, rows: slice, threads: int) -> Ids:
        faiss.omp_set_num_threads(threads)
        return index.search(getattr(q, form)[rows], K)[1]

    return Method(name, run, index.ntotal * index.code_size)


def ours_methods(codes: np.ndarray, scales: np.ndarray | None, storage: str, d: int) -> list:
    index = Index(codes, storage, dim=d, scales=scales)

    def run_f32(q: Queries, rows: slice, threads: int) -> Ids:
        return index.search(q.f32[rows], K, threads=threads).ids

    def run_i8(q: Queries, rows: slice, threads: int) -> Ids:
        return index.search(q.i8[rows], K, threads=threads, query_scales=q.i8_scales[rows]).ids

    if storage != "int8":
        return [Method(f"ours {storage}", run_f32, index.nbytes, ours=True)]
    return [
        Method("ours int8 (f32 q)", run_f32, index.nbytes, ours=True),
        Method("ours int8 (i8 q)", run_i8, index.nbytes, ours=True),
    ]


def simsimd_method(codes: np.ndarray, scales: np.ndarray | None, storage: str) -> Method:
    metric, dtype, form = {
        "float32": ("dot", "float32", "f32"),
        "float16": ("dot", "float16", "f16"),
        "int8": ("dot", "int8", "i8"),
        "binary": ("hamming", "bin8", "bits"),
    }[storage]

    def run(q: Queries, rows: slice, threads: int) -> Ids:
        out = simsimd.cdist(
            getattr(q, form)[rows], codes, metric=metric, dtype=dtype,
            threads=threads, out_dtype="float32",
        )  # fmt: skip
        scores = np.asarray(out)
        if storage == "binary":
            return top_smallest(scores)
        return top_largest(scores * scales if scales is not None else scores)

    extra = scales.nbytes if scales is not None else 0
    return Method(f"simsimd {dtype} {metric}", run, codes.nbytes + extra)


def numkong_method(codes: np.ndarray, scales: np.ndarray | None, storage: str) -> Method:
    packed = nk.hammings_pack(codes) if storage == "binary" else nk.dots_pack(codes)

    def run(q: Queries, rows: slice, threads: int) -> Ids:
        if storage == "binary":
            return top_smallest(np.asarray(nk.hammings_packed(q.bits[rows], packed)))
        return top_largest(np.asarray(nk.dots_packed(q.i8[rows], packed)) * scales)

    name = "numkong u1 hammings_packed" if storage == "binary" else "numkong i8 dots_packed"
    extra = scales.nbytes if scales is not None else 0
    return Method(name, run, packed.nbytes + extra, threaded=False)


def numpy_method(db: np.ndarray) -> Method:
    def run(q: Queries, rows: slice, threads: int) -> Ids:
        return top_largest(q.f32[rows] @ db.T)

    return Method("numpy matmul+argpartition", run, db.nbytes)


def build_methods(chunks: Chunks, n: int, d: int, storage: str) -> list[Method]:
    """Our index and every yardstick for one storage type, all over the same database."""
    codes, scales = assemble(chunks, n, d, storage)
    methods = ours_methods(codes, scales, storage, d)
    if storage == "float32":
        methods.append(numpy_method(codes))
    if storage == "binary":
        index = faiss.IndexBinaryFlat(d)
        index.add(codes)
        methods.append(faiss_method("faiss IndexBinaryFlat", index, "bits"))
    else:
        index = faiss_float_index(chunks, d, storage)
        label = {"float32": "IndexFlatIP", "float16": "SQ QT_fp16", "int8": "SQ QT_8bit"}
        methods.append(faiss_method(f"faiss {label[storage]}", index, "f32"))
    methods.append(simsimd_method(codes, scales, storage))
    if storage in ("int8", "binary"):
        methods.append(numkong_method(codes, scales, storage))
    return methods


def memory_needed(n: int, d: int, storage: str, chunk_rows: int) -> int:
    """Bytes for our codes plus yardstick copies, one chunk, and batch score matrices."""
    per_place = {"float32": 8 * d, "float16": 4 * d, "int8": 3 * d + 8, "binary": 3 * d // 8}
    return n * per_place[storage] + 2 * chunk_rows * d * 4 + 3 * BATCH * n * 8


# ---------------------------------------------------------------- random data


def chunk_rows_for(d: int) -> int:
    return max(1024, 2**26 // d)  # 256 MB float32 chunks


def random_queries(chunks: Chunks) -> np.ndarray:
    """Noisy copies of random database rows (cosine ~0.71), taken from the first chunk."""
    _, first = next(chunks())
    rng = np.random.default_rng([SEED, 1])
    rows = first[rng.choice(len(first), BATCH, replace=False)]
    noise = normalise(rng.standard_normal(rows.shape, dtype=np.float32))
    return normalise(rows + noise)


def exact_top_k(chunks: Chunks, q: np.ndarray) -> Ids:
    """Exact float32 top-k of q over the chunk stream (running merge)."""
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for start, x in chunks():
        s = np.concatenate([best_s, q @ x.T], axis=1)
        new_ids = np.broadcast_to(np.arange(start, start + len(x)), (len(q), len(x)))
        i = np.concatenate([best_i, new_ids], axis=1)
        top = top_largest(s, min(K, s.shape[1]))
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return best_i


# ---------------------------------------------------------------- measurement


def measure(methods: list[Method], q: Queries, threads: int, reps: int, batch_reps: int) -> dict:
    """Interleaved timings: in each repetition every method runs once, in rotated order."""
    single: dict[str, list[float]] = {m.name: [] for m in methods}
    batch: dict[str, list[float]] = {m.name: [] for m in methods}
    ids: dict[str, Ids] = {}
    with threadpool_limits(limits=threads):
        for m in methods:  # warm-up; the batch result gives recall
            m.run(q, slice(0, 1), threads)
            ids[m.name] = m.run(q, slice(0, BATCH), threads)
        for r in range(reps):
            rows = slice(r % BATCH, r % BATCH + 1)
            for m in methods[r % len(methods) :] + methods[: r % len(methods)]:
                single[m.name].append(time_call(lambda m=m, rows=rows: m.run(q, rows, threads)))
        for r in range(batch_reps):
            for m in methods[r % len(methods) :] + methods[: r % len(methods)]:
                batch[m.name].append(time_call(lambda m=m: m.run(q, slice(0, BATCH), threads)))
    return {"single": single, "batch": batch, "ids": ids}


def real_recall(storage: str, d: int, real: tuple[np.ndarray, np.ndarray] | None) -> dict:
    """Recall@10 of each method vs exact float32 on projected Nordland pixel descriptors."""
    if real is None:
        return {}
    db, queries = project_descriptors(*real, d=d, seed=SEED)
    truth = top_largest(queries @ db.T)
    methods = build_methods(lambda: iter([(0, db)]), len(db), d, storage)
    q = Queries(queries)
    rows = slice(0, len(queries))
    with threadpool_limits(limits=1):
        return {m.name: recall_at_k(m.run(q, rows, 1), truth) for m in methods}


def group_rows(
    key: dict, methods: list[Method], timing: dict, truth: Ids, real: dict, bw: float, n: int
) -> list[dict]:
    rows = []
    for m in methods:
        single, batch = timing["single"][m.name], timing["batch"][m.name]
        median = statistics.median(single)
        bound = m.nbytes / bw
        rows.append({
            **key, "method": m.name, "ours": m.ours,
            "threads_used": key["threads"] if m.threaded else 1,
            "single_median_ms": median * 1e3, "single_min_ms": min(single) * 1e3,
            "single_max_ms": max(single) * 1e3,
            "batch_qps": BATCH / statistics.median(batch),
            "recall_random": recall_at_k(timing["ids"][m.name], truth),
            "recall_real": real.get(m.name), "bytes_per_place": m.nbytes / n,
            "bound_ms": bound * 1e3, "x_bound": median / bound,
        })  # fmt: skip
    fastest = min(rows, key=lambda r: r["single_median_ms"])
    for r in rows:
        r["fastest"] = r is fastest
    return rows


def run_grid(args: argparse.Namespace, bw: float) -> list[dict]:
    real_px = nordland_pixels(NORDLAND) if args.real else None
    real_cache: dict[tuple[str, int], dict] = {}
    results: list[dict] = []
    for n, d in args.cells:
        chunk_rows = min(n, chunk_rows_for(d))
        chunks = random_chunks(n, d, SEED, chunk_rows)
        fits = {s: memory_needed(n, d, s, chunk_rows) <= args.memory_gb * 1e9
                for s in args.storage}  # fmt: skip
        truth, q = None, None
        if any(fits.values()):
            q = Queries(random_queries(chunks))
            truth = exact_top_k(chunks, q.f32)
        cell = GridCell(n, d, chunks, q, truth)
        for storage in args.storage:
            results += run_storage(args, cell, storage, fits[storage], real_px, real_cache, bw)
    return results


@dataclass
class GridCell:
    """One (N, D) point of the grid: its chunk stream, queries and exact top-k."""

    n: int
    d: int
    chunks: Chunks
    queries: Queries | None
    truth: Ids | None


def run_storage(
    args: argparse.Namespace, cell: GridCell, storage: str, fits: bool,
    real_px: tuple[np.ndarray, np.ndarray] | None, real_cache: dict, bw: float,
) -> list[dict]:  # fmt: skip
    n, d = cell.n, cell.d
    if not fits:
        print(f"N={n} D={d} {storage}: skipped (memory)", flush=True)
        return [{"n": n, "d": d, "storage": storage, "threads": t, "method": "skipped (memory)"}
                for t in args.threads]  # fmt: skip
    print(f"N={n} D={d} {storage}: building", flush=True)
    methods = build_methods(cell.chunks, n, d, storage)
    if (storage, d) not in real_cache:
        real_cache[(storage, d)] = real_recall(storage, d, real_px)
    rows = []
    for t in args.threads:
        timing = measure(methods, cell.queries, t, args.repeats, args.batch_repeats)
        key = {"n": n, "d": d, "storage": storage, "threads": t}
        rows += group_rows(key, methods, timing, cell.truth, real_cache[(storage, d)], bw, n)
        print(f"  threads={t} done", flush=True)
    del methods
    return rows


# ---------------------------------------------------------------- reporting


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown_table(rows: list[dict]) -> str:
    head = ("| N | D | storage | threads | method | single median ms | min-max ms | batch-100 q/s "
            "| recall@10 random | recall@10 real | bytes/place | x bound |")  # fmt: skip
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        cells = [str(r["n"]), str(r["d"]), r["storage"], str(r["threads"])]
        if "single_median_ms" not in r:
            lines.append("| " + " | ".join([*cells, r["method"], *["-"] * 7]) + " |")
            continue
        name = r["method"] + (" (1 thread, no threads arg)" if r["threads_used"] != r["threads"]
                              else "")  # fmt: skip
        name = f"**{name}** (fastest)" if r["fastest"] else name
        cells += [
            name, fmt(r["single_median_ms"], ".3f"),
            f"{r['single_min_ms']:.3f}-{r['single_max_ms']:.3f}", fmt(r["batch_qps"], ".0f"),
            fmt(r["recall_random"], ".3f"), fmt(r["recall_real"], ".3f"),
            fmt(r["bytes_per_place"], ".1f"), fmt(r["x_bound"], ".2f"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pick(rows: list[dict], **where: object) -> list[dict]:
    return [r for r in rows if "single_median_ms" in r and all(r[k] == v for k, v in where.items())]


TIE_MARGIN = 0.05  # DESIGN.md: a margin under 5% is a tie, neither a win nor a loss


def verdict(ok: bool | None) -> str:
    return "n/a (not measured)" if ok is None else ("PASS" if ok else "FAIL")


def judge(value: float, limit: float) -> str:
    """PASS when value <= limit by more than the tie margin, TIE within it, else FAIL
    (for "at least" targets pass the inverse ratio)."""
    if value <= limit * (1 - TIE_MARGIN):
        return "PASS"
    return "TIE" if value <= limit * (1 + TIE_MARGIN) else "FAIL"


def target_single(rows: list[dict], bound_target: float) -> list[str]:
    out = []
    for d in (256, 512, 1024):
        for storage in STORAGES:
            group = pick(rows, n=100_000, d=d, storage=storage, threads=1)
            ours = [r for r in group if r["ours"]]
            peers = [r for r in group if not r["ours"]]
            if not ours or not peers:
                out.append(f"- N=100k D={d} {storage} 1T ours vs best yardstick: {verdict(None)}")
                continue
            o = min(ours, key=lambda r: r["single_median_ms"])
            p = min(peers, key=lambda r: r["single_median_ms"])
            out.append(
                f"- N=100k D={d} {storage} 1T: {o['method']} {o['single_median_ms']:.3f} ms"
                f" vs {p['method']} {p['single_median_ms']:.3f} ms: "
                f"{judge(o['single_median_ms'], p['single_median_ms'])}"
            )
            if storage in ("float32", "int8"):
                out.append(
                    f"  - {storage} ratio to bound {o['x_bound']:.2f} "
                    f"(target <= {bound_target}): {judge(o['x_bound'], bound_target)}"
                )
    return out


def target_threads(rows: list[dict]) -> list[str]:
    out = []
    for key in sorted({(r["n"], r["d"], r["storage"]) for r in pick(rows, threads=2)}):
        n, d, storage = key

        def speedup(ours: bool, n: int = n, d: int = d, storage: str = storage) -> float | None:
            t = {th: [r for r in pick(rows, n=n, d=d, storage=storage, threads=th)
                      if r["ours"] == ours and (ours or r["method"].startswith("faiss"))]
                 for th in (1, 2)}  # fmt: skip
            if not t[1] or not t[2]:
                return None
            return min(r["single_median_ms"] for r in t[1]) / min(
                r["single_median_ms"] for r in t[2]
            )

        s_ours, s_faiss = speedup(True), speedup(False)
        result = verdict(None) if s_ours is None else judge(1.0 / s_ours, 1.0)
        out.append(
            f"- N={n} D={d} {storage} 2T speedup: ours {fmt(s_ours, '.2f')}x vs faiss "
            f"{fmt(s_faiss, '.2f')}x: {result}"
        )
        group = pick(rows, n=n, d=d, storage=storage, threads=2)
        ours = [r for r in group if r["ours"]]
        peers = [r for r in group if not r["ours"]]
        if ours and peers:
            o = min(ours, key=lambda r: r["single_median_ms"])
            p = min(peers, key=lambda r: r["single_median_ms"])
            out.append(
                f"  - 2T: {o['method']} {o['single_median_ms']:.3f} ms vs {p['method']} "
                f"{p['single_median_ms']:.3f} ms: "
                f"{judge(o['single_median_ms'], p['single_median_ms'])}"
            )
    return out


def target_million(rows: list[dict], bound_target: float = 1.3) -> list[str]:
    out = []
    for storage in ("float32", "float16", "int8"):
        ours = [r for r in pick(rows, n=1_000_000, d=256, storage=storage, threads=1) if r["ours"]]
        if not ours:
            out.append(f"- N=1M D=256 {storage} ratio to bound: {verdict(None)}")
            continue
        r = min(ours, key=lambda r: r["single_median_ms"])
        out.append(
            f"- N=1M D=256 {r['method']} 1T: {r['x_bound']:.2f}x bound "
            f"(target <= {bound_target}): {judge(r['x_bound'], bound_target)}"
        )
    return out


def target_batch(rows: list[dict]) -> list[str]:
    out = []
    pairs = [
        ("float32", "ours float32", "numpy", 1.0),  # at least numpy's throughput
        ("int8", "ours int8 (i8 q)", "numkong", 2.0),  # at least twice numkong's
    ]
    for storage, ours_name, peer, factor in pairs:
        for n, d, t in sorted(
            {(r["n"], r["d"], r["threads"]) for r in pick(rows, storage=storage)}
        ):
            group = pick(rows, n=n, d=d, storage=storage, threads=t)
            o = [r for r in group if r["method"] == ours_name]
            p = [r for r in group if r["method"].startswith(peer)]
            if not o or not p:
                continue
            result = judge(factor * p[0]["batch_qps"], o[0]["batch_qps"])
            out.append(
                f"- batch-100 N={n} D={d} {t}T {ours_name} {o[0]['batch_qps']:.0f} q/s vs "
                f"{factor:g}x {p[0]['method']} {factor * p[0]['batch_qps']:.0f} q/s: {result}"
            )
    return out or [f"- batch-100: {verdict(None)}"]


def summary(rows: list[dict], bound_target: float) -> list[str]:
    return [
        "Single query, N=100k, 1 thread (ours vs best yardstick of that storage):",
        *target_single(rows, bound_target),
        "2 threads speed a single query up (ours 1T->2T > 1):", *target_threads(rows),
        "N=1M ratio to bound (ours, 1 thread):", *target_million(rows),
        "Batch-100 throughput:", *target_batch(rows),
    ]  # fmt: skip


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--d", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    p.add_argument("--storage", nargs="+", choices=STORAGES, default=list(STORAGES))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=7, help="single-query repetitions")
    p.add_argument("--batch-repeats", type=int, default=3, help="batch-100 repetitions")
    p.add_argument("--memory-gb", type=float, default=6.0, help="budget per (N, D, storage)")
    p.add_argument(
        "--bound-target", type=float, default=1.25, help="N=100k: PASS if x bound <= this"
    )
    p.add_argument("--bandwidth-gib", type=float, default=1.0, help="array size for bandwidth")
    p.add_argument("--no-real", dest="real", action="store_false", help="skip Nordland recall")
    p.add_argument("--quick", action="store_true", help="N=10k,100k; D=256,1024; repeats 3")
    p.add_argument(
        "--check", action="store_true",
        help="measure the target cells only (N=100k x D=256,512,1024 and N=1M x D=256, "
        "1 and 2 threads), print PASS/FAIL per target, exit 1 on any FAIL",
    )  # fmt: skip
    p.add_argument("--keep-openblas-env", action="store_true",
                   help="do not unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")  # fmt: skip
    default_out = Path(__file__).resolve().parent / "results" / "bench_matching.json"
    p.add_argument("--out", type=Path, default=default_out)
    args = p.parse_args()
    if args.quick:
        args.n, args.d, args.repeats, args.batch_repeats = [10_000, 100_000], [256, 1024], 3, 2
    args.cells = [(n, d) for n in args.n for d in args.d]
    if args.check:
        args.cells = [(100_000, 256), (100_000, 512), (100_000, 1024), (1_000_000, 256)]
        args.threads, args.storage = [1, 2], list(STORAGES)
    return args


def environment_lines(bw: float, bw_kernel: str, machine: dict) -> list[str]:
    unset = os.environ.get("VPR_BENCH_REEXECED")
    tuning = kernel_tuning()
    picks = ", ".join(
        f"{p['kernel']} {'D>512' if p['min_dim'] > 512 else 'D<=512'}: {p['chosen']}"
        for p in tuning["picks"]  # type: ignore[union-attr]
    )
    return [
        machine_line(machine, bw),
        f"kernel choice ({tuning['source']}): {picks}",
        f"python {platform.python_version()} numpy {np.__version__} faiss {faiss.__version__} "
        f"simsimd {simsimd.__version__} numkong {nk.__version__}",
        f"ours SIMD level: {simd_level()}; cpu: {platform.processor() or platform.machine()}",
        f"unset for this process: {unset if unset and unset != '-' else 'nothing'}; "
        f"idle pools sleep: OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "
        f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}",
        *[f"threadpool: {line}" for line in blas_report()],
        f"single-thread read bandwidth: {bw / 1e9:.1f} GB/s ({bw_kernel})",
    ]


def main() -> None:
    args = parse_args()
    bw, bw_kernel = read_bandwidth(args.bandwidth_gib)
    machine = machine_info()
    env = environment_lines(bw, bw_kernel, machine)
    print("\n".join(env), flush=True)
    rows = run_grid(args, bw)
    table = markdown_table(rows)
    lines = summary(rows, args.bound_target)
    print("\n" + table + "\n\n" + "\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    payload = {"config": config, "environment": env, "machine": machine,
               "kernel_tuning": kernel_tuning(), "bandwidth_bytes_per_s": bw,
               "rows": rows, "summary": lines}  # fmt: skip
    args.out.write_text(json.dumps(payload, indent=1, default=float))
    print(f"\nwrote {args.out}")
    if args.check:
        failed = [line for line in lines if line.rstrip().endswith("FAIL")]
        ties = [line for line in lines if line.rstrip().endswith("TIE")]
        missing = [line for line in lines if "n/a (not measured)" in line]
        print(
            f"\ncheck on this machine: {len(failed)} FAIL, {len(ties)} TIE (within "
            f"{TIE_MARGIN:.0%}), {len(missing)} not measured"
        )
        print("CHECK: " + ("PASS" if not failed and not missing else "FAIL"))
        if failed or missing:
            sys.exit(1)


if __name__ == "__main__":
    main()
