"""City-scale maps: PQ fast scan (flat and IVF), exhaustive float32, faiss IndexPQFastScan /
IndexIVFPQFastScan and usearch HNSW (i8), side by side in one run; and the position prior.

Places: the 1788 real nordland_part1 summer references (descriptors of the zoo model
``zoo:nordland-lite0-gem``, PCA to D fitted on those references) plus synthetic
distractors up to N places. Distractors are drawn from a Gaussian with the mean and
covariance of the real references' projected descriptors (then L2-normalised), so they
look like real descriptors to a dot product; the run reports how often one outranks the
query's true place in exhaustive float32. Queries: the real winter images.

Choices (sub-quantizers, lists, nprobe, shortlist) are made on the validation segment
(frames 60-75 %); the table reports the test segment (75-100 %), which played no part.
Positives: +-2 frames. One thread, single queries, median latency over the queries,
methods interleaved per query round.

Usage: python benchmarks/bench_pq.py [--places 1000000] [--dims 256 512] [--no-usearch]
Prints a table; writes benchmarks/results/bench_pq.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_line, read_bandwidth

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nordland_part1"
SHA = "0" * 64
TOL = 2


def real_descriptors(model: str) -> tuple[np.ndarray, np.ndarray]:
    from vpr_embedded.data.datasets import list_images
    from vpr_embedded.localize import open_model

    ext = open_model(model)
    refs = ext.embed_paths(list_images(DATA / "summer"), desc="summer")
    qs = ext.embed_paths(list_images(DATA / "winter"), desc="winter")
    return refs.astype(np.float32), qs.astype(np.float32)


def pca(refs: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    mean = refs.mean(0)
    _, _, vt = np.linalg.svd(refs - mean, full_matrices=False)
    if d > vt.shape[0]:  # fewer references than D: pad with a random orthonormal complement
        rng = np.random.default_rng(1)
        extra = rng.standard_normal((d - vt.shape[0], refs.shape[1]))
        extra -= extra @ vt.T @ vt
        q, _ = np.linalg.qr(extra.T)
        vt = np.vstack([vt, q.T[: d - vt.shape[0]]])
    return vt[:d].T.astype(np.float32), mean.astype(np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def distractors(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n rows ~ N(mean, cov) of the real rows, normalised."""
    rng = np.random.default_rng(seed)
    mean = real.mean(0)
    cov = np.cov(real - mean, rowvar=False) + 1e-6 * np.eye(real.shape[1])
    chol = np.linalg.cholesky(cov).astype(np.float32)
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for s in range(0, n, 100_000):
        z = rng.standard_normal((min(100_000, n - s), real.shape[1]), dtype=np.float32)
        out[s : s + len(z)] = unit(z @ chol.T + mean)
    return out


def recall_at_1(ids: np.ndarray, qidx: np.ndarray) -> float:
    """ids: top-1 place id per query; place i < 1788 is real frame i."""
    return float(np.mean(np.abs(ids.astype(np.int64) - qidx) <= TOL))


def timed(fn, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    ids, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        ids.append(fn(q[None]))
        times.append((time.perf_counter() - t0) * 1e3)
    return np.array(ids), times


def prior_on_map(
    args, mp, test_idx: np.ndarray, test_q: np.ndarray, n_db: int, ids=None
) -> list[dict]:
    """Position prior on a big map: query position = true frame + N(0, sigma) frames.
    ids: the original place of each map id (a map whose rows were reordered)."""
    noisy = test_idx + np.random.default_rng(5).normal(0.0, args.prior_sigma, len(test_idx))
    rows = []
    for _ in range(args.rounds):
        for radius in (None, 5.0, 10.0, 20.0, 40.0, 80.0):
            got, t = [], []
            for qi, q in enumerate(test_q):
                t0 = time.perf_counter()
                if radius is None:
                    r = mp.search(q, 1, threads=1)
                else:
                    r = mp.search(q, 1, threads=1, near=(noisy[qi], 0.0), radius=radius)
                t.append((time.perf_counter() - t0) * 1e3)
                top = int(r.ids[0, 0]) if r.ids.shape[1] else -1
                got.append(-(10**9) if top < 0 else (top if ids is None else int(ids[top])))
            inside = n_db
            if radius is not None:
                sizes = [len(mp.places_near(noisy[i], 0.0, radius)) for i in range(0, len(t), 20)]
                inside = int(np.mean(sizes))
            rows.append(
                {
                    "radius": radius,
                    "recall_at_1": recall_at_1(np.array(got), test_idx),
                    "median_ms": statistics.median(t),
                    "mean_places_in_radius": inside,
                }
            )
    return rows


def run_dim(args, d: int, refs_raw, qs_raw, rng_seed: int) -> dict[str, object]:
    import faiss

    from vpr_embedded.data.splits import segment_range
    from vpr_embedded.maps import Map, build_map
    from vpr_embedded.matching import Index
    from vpr_embedded.pq import PqConfig, train_pq

    faiss.omp_set_num_threads(1)
    proj, mean = pca(refs_raw, d)
    refs = unit((refs_raw - mean) @ proj)
    qs = unit((qs_raw - mean) @ proj)
    nreal = len(refs)
    db = np.concatenate([refs, distractors(refs, args.places - nreal, rng_seed)])
    segs = {s: np.array(segment_range(nreal, s)) for s in ("val", "test")}
    m = args.pq_m
    nlist = args.ivf
    t0 = time.perf_counter()
    flat = train_pq(db, PqConfig(m=m, seed=0))
    train_flat_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ivf = train_pq(db, PqConfig(m=m, ivf_lists=nlist, nprobe=1, seed=0))
    train_ivf_s = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="bench_pq_"))
    # Positions for the prior: real place i at frame i; distractors spread uniformly over
    # the same stretch of route (a city's places all lie somewhere along its streets).
    rng_pos = np.random.default_rng(rng_seed + 1)
    xs = np.concatenate(
        [np.arange(nreal, dtype=np.float64), rng_pos.uniform(0, nreal, len(db) - nreal)]
    )
    positions = np.stack([xs, np.zeros(len(db))], 1)
    maps = {}
    variants = [("pq+int8", flat, "int8"), ("ivfpq+int8", ivf, "int8")]
    if not args.prior_only:
        variants += [("pq", flat, None), ("ivfpq", ivf, None)]
    for name, enc, rr in variants:
        p = build_map(
            db,
            out_path=tmp / f"{name}.vprmap",
            storage="pq4",
            pq=enc,
            rerank=rr,
            positions=positions,
            position_kind="utm",
            model_sha256=SHA,
            model_name="bench",
        )
        maps[name] = Map.open(p)
    if args.prior_only:
        test_idx = segs["test"]
        rows = prior_on_map(args, maps["pq+int8"], test_idx, qs[test_idx], len(db))
        # The same places stored in route order (ids follow positions, as in a map built
        # from drives): a radius then selects runs of consecutive places.
        order = np.argsort(xs, kind="stable")
        p = build_map(db[order], out_path=tmp / "ordered.vprmap", storage="pq4",
                      pq=PqConfig(m=m, seed=0), rerank="int8", positions=positions[order],
                      position_kind="utm", model_sha256=SHA, model_name="bench")  # fmt: skip
        ordered = prior_on_map(args, Map.open(p), test_idx, qs[test_idx], len(db), ids=order)
        # The IVF map of the same (scattered) ids: build_map stores every list in Z-order
        # of position (pq.order_lists_by_position), so the places inside a radius sit in a
        # few runs per list. Its no-prior row probes the default nprobe (1) lists.
        ivf_rows = prior_on_map(args, maps["ivfpq+int8"], test_idx, qs[test_idx], len(db))
        return {"dim": d, "places": len(db), "pq_m": m, "ivf_lists": nlist, "prior_rows": rows,
                "prior_rows_route_order": ordered,
                "prior_rows_ivf_z_order": ivf_rows}  # fmt: skip
    exact = Index.encode(db, "float32")

    # faiss yardsticks, trained on the same sample size
    sample = db[np.random.default_rng(0).choice(len(db), min(65536, len(db)), replace=False)]
    fpq = faiss.IndexPQFastScan(d, m, 4, faiss.METRIC_INNER_PRODUCT)
    fpq.train(sample)
    fpq.add(db)
    quant = faiss.IndexFlatIP(d)
    fivf = faiss.IndexIVFPQFastScan(quant, d, nlist, m, 4, faiss.METRIC_INNER_PRODUCT)
    fivf.train(sample)
    fivf.add(db)
    usearch_index = None
    usearch_mb = None
    if not args.no_usearch:
        from usearch.index import Index as UIndex

        usearch_index = UIndex(ndim=d, metric="ip", dtype="i8")
        t0 = time.perf_counter()
        usearch_index.add(np.arange(len(db)), db, threads=os.cpu_count() or 1, log=False)
        usearch_build_s = time.perf_counter() - t0
        usearch_mb = usearch_index.memory_usage / 1e6

    def ours(name, **kw):
        mp = maps[name]
        return lambda q: int(mp.search(q, 1, threads=1, **kw).ids[0, 0])

    def faiss_fn(index, nprobe=None):
        if nprobe is not None:
            index.nprobe = nprobe
        return lambda q: int(index.search(q, 1)[1][0, 0])

    # --- choices on the validation segment -------------------------------------------
    val_q = qs[segs["val"]]
    nprobes = [p for p in (4, 8, 16, 32, 64, 128) if p <= nlist]
    exact_val = recall_at_1(
        np.array([int(exact.search(q[None], 1).ids[0, 0]) for q in val_q]), segs["val"]
    )
    chosen = {}
    for name in ("ivfpq", "ivfpq+int8"):
        best = None
        for p in nprobes:
            r = recall_at_1(timed(ours(name, nprobe=p), val_q)[0], segs["val"])
            if best is None and r >= exact_val - 0.01:
                best = p
        chosen[name] = best or nprobes[-1]
    fbest = None
    for p in nprobes:
        r = recall_at_1(timed(faiss_fn(fivf, p), val_q)[0], segs["val"])
        if fbest is None and r >= exact_val - 0.01:
            fbest = p
    chosen["faiss ivfpq"] = fbest or nprobes[-1]
    # The re-rank shortlist, by the same rule: the shortest within 1 point of exhaustive
    # float32 on val, else the longest (ivfpq at its chosen nprobe).
    shortlists = (50, 100, 200, 400)
    for name, kw in (("pq+int8", {}), ("ivfpq+int8", {"nprobe": chosen["ivfpq+int8"]})):
        best = None
        for sl in shortlists:
            r = recall_at_1(timed(ours(name, shortlist=sl, **kw), val_q)[0], segs["val"])
            if best is None and r >= exact_val - 0.01:
                best = sl
        chosen[f"{name} shortlist"] = best or shortlists[-1]

    # --- the test segment -------------------------------------------------------------
    test_idx = segs["test"]
    test_q = qs[test_idx]
    methods = {
        "float32 exhaustive (ours)": lambda q: int(exact.search(q, 1, threads=1).ids[0, 0]),
        "pq (ours)": ours("pq"),
        f"pq + int8 re-rank of {chosen['pq+int8 shortlist']} (ours)": ours(
            "pq+int8", shortlist=chosen["pq+int8 shortlist"]
        ),
        f"ivfpq nprobe={chosen['ivfpq']} (ours)": ours("ivfpq", nprobe=chosen["ivfpq"]),
        f"ivfpq nprobe={chosen['ivfpq+int8']} + int8 re-rank of "
        f"{chosen['ivfpq+int8 shortlist']} (ours)": ours(
            "ivfpq+int8", nprobe=chosen["ivfpq+int8"], shortlist=chosen["ivfpq+int8 shortlist"]
        ),
        "faiss IndexPQFastScan": faiss_fn(fpq),
        f"faiss IndexIVFPQFastScan nprobe={chosen['faiss ivfpq']}": faiss_fn(
            fivf, chosen["faiss ivfpq"]
        ),
    }
    if usearch_index is not None:
        methods["usearch HNSW i8"] = lambda q: int(usearch_index.search(q[0], 1, threads=1).keys[0])
    # Every PQ method, ours and faiss's, stores m / 2 bytes of codes per place.
    bytes_per_place = {k: m / 2 for k in methods}
    bytes_per_place["float32 exhaustive (ours)"] = 4.0 * d
    bytes_per_place["usearch HNSW i8"] = (usearch_mb or 0) * 1e6 / len(db)
    rerank_bytes = {k: (d + 4 if "re-rank" in k else 0) for k in methods}
    times: dict[str, list[float]] = {k: [] for k in methods}
    ids: dict[str, list[int]] = {k: [] for k in methods}
    for _ in range(args.rounds):
        for name, fn in methods.items():  # interleaved: every method per round
            got, t = timed(fn, test_q)
            times[name] += t
            ids[name] = list(got)
    rows = []
    exact_ids = np.array(ids["float32 exhaustive (ours)"])
    for name in methods:
        rows.append(
            {
                "method": name,
                "recall_at_1": recall_at_1(np.array(ids[name]), test_idx),
                "hits": int(np.sum(np.abs(np.array(ids[name]) - test_idx) <= TOL)),
                "median_ms": statistics.median(times[name]),
                "code_bytes_per_place": bytes_per_place[name],
                "rerank_bytes_per_place": rerank_bytes[name],
            }
        )
    distractor_wins = float(np.mean(exact_ids >= nreal))
    prior_rows = prior_on_map(args, maps["pq+int8"], test_idx, test_q, len(db))
    for mp in maps.values():
        del mp
    return {
        "dim": d,
        "places": len(db),
        "pq_m": m,
        "ivf_lists": nlist,
        "validation": "val segment (frames 60-75 %)",
        "test": "test segment (frames 75-100 %)",
        "test_queries": len(test_idx),
        "float32_val_recall_at_1": exact_val,
        "chosen_on_val": chosen,
        "distractor_top1_rate_float32": distractor_wins,
        "train_s": {"pq": train_flat_s, "ivfpq": train_ivf_s},
        "usearch_build_s": None if usearch_index is None else usearch_build_s,
        "usearch_memory_mb": usearch_mb,
        "rows": rows,
        "prior_rows": prior_rows,
    }


def prior_run(args, refs_raw, qs_raw) -> dict[str, object]:
    """Position prior on nordland (frame index as position, noise model stated)."""
    from vpr_embedded.data.splits import segment_range
    from vpr_embedded.maps import Map, build_map

    nreal = len(refs_raw)
    pos = np.stack([np.arange(nreal, dtype=np.float64), np.zeros(nreal)], 1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_prior_"))
    p = build_map(
        refs_raw,
        out_path=tmp / "m.vprmap",
        storage="int8",
        positions=pos,
        position_kind="utm",
        model_sha256=SHA,
        model_name="bench",
    )
    mp = Map.open(p)
    rng = np.random.default_rng(5)
    sigma = args.prior_sigma
    noisy = np.arange(nreal) + rng.normal(0.0, sigma, nreal)  # believed frame of each query
    segs = {s: np.array(segment_range(nreal, s)) for s in ("val", "test")}

    def run(idx, radius):
        got, t = [], []
        for i in idx:
            t0 = time.perf_counter()
            if radius is None:
                r = mp.search(qs_raw[i], 1, threads=1)
            else:
                r = mp.search(qs_raw[i], 1, threads=1, near=(noisy[i], 0.0), radius=radius)
            t.append((time.perf_counter() - t0) * 1e3)
            got.append(int(r.ids[0, 0]) if r.ids.shape[1] else -(10**9))
        return recall_at_1(np.array(got), idx), statistics.median(t)

    radii = [5.0, 10.0, 20.0, 40.0, 80.0, 160.0]
    val = {r: run(segs["val"], r)[0] for r in radii}
    best = max(radii, key=lambda r: (val[r], -r))
    rows = []
    for radius in (None, *radii):
        rec, ms = run(segs["test"], radius)
        rows.append(
            {
                "radius": radius,
                "recall_at_1": rec,
                "median_ms": ms,
                "places_in_radius": nreal if radius is None else min(nreal, 2 * radius + 1),
            }
        )
    return {
        "noise_sigma_frames": sigma,
        "val_recall_by_radius": val,
        "chosen_radius": best,
        "rows": rows,
    }


def crossover(args: argparse.Namespace) -> list[dict[str, object]]:
    """Where the coarse index starts to pay: flat PQ against IVF-PQ (nlist ~ 4 sqrt(N),
    nprobe = nlist / 64, at least 1), 1 and 2 threads, N from 10k to the full size.
    Speed does not depend on what the codes hold, so the places are synthetic clustered
    unit vectors (queries: perturbed places); recall@10 of IVF-PQ is measured against
    flat PQ's own top-10."""
    from vpr_embedded.maps import Map, build_map
    from vpr_embedded.pq import PqConfig, train_pq

    rng = np.random.default_rng(7)
    d = args.dims[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_pq_x_"))
    rows = []
    for n in [x for x in (10_000, 30_000, 100_000, 300_000, 1_000_000) if x <= args.places]:
        centres = unit(rng.standard_normal((max(16, n // 100), d)).astype(np.float32))
        x = unit(
            centres[rng.integers(0, len(centres), n)]
            + 0.6 * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d) * 4
        )
        q = unit(
            x[rng.integers(0, n, 200)] + 0.05 * rng.standard_normal((200, d)).astype(np.float32)
        )
        nlist = int(4 * np.sqrt(n))
        nprobe = max(1, nlist // 64)
        flat = Map.open(
            build_map(
                x,
                out_path=tmp / "f.vprmap",
                storage="pq4",
                pq=train_pq(x, PqConfig(m=args.pq_m)),
                model_sha256=SHA,
                model_name="x",
            )
        )
        ivf = Map.open(
            build_map(
                x,
                out_path=tmp / "i.vprmap",
                storage="pq4",
                pq=train_pq(x, PqConfig(m=args.pq_m, ivf_lists=nlist, nprobe=nprobe)),
                model_sha256=SHA,
                model_name="x",
            )
        )
        for threads in (1, 2):
            tf, ti, hit = [], [], 0
            for qq in q:
                t0 = time.perf_counter()
                a = flat.search(qq, 10, threads=threads).ids[0]
                tf.append((time.perf_counter() - t0) * 1e3)
                t0 = time.perf_counter()
                b = ivf.search(qq, 10, threads=threads).ids[0]
                ti.append((time.perf_counter() - t0) * 1e3)
                hit += len(set(a.tolist()) & set(b.tolist()))
            rows.append(
                {
                    "places": n,
                    "threads": threads,
                    "nlist": nlist,
                    "nprobe": nprobe,
                    "flat_ms": statistics.median(tf),
                    "ivf_ms": statistics.median(ti),
                    "ivf_recall10_vs_flat": hit / (10 * len(q)),
                }
            )
            r = rows[-1]
            print(
                f"N {n:>8d} threads {threads}: flat {r['flat_ms']:.3f} ms, IVF {nlist}/"
                f"{nprobe} {r['ivf_ms']:.3f} ms, IVF recall@10 vs flat "
                f"{r['ivf_recall10_vs_flat']:.3f}"
            )
        del flat, ivf
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--places", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--pq-m", type=int, default=64, help="sub-quantizers (32 B per place)")
    ap.add_argument("--ivf", type=int, default=1024, help="IVF lists")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--model", default="zoo:nordland-lite0-gem")
    ap.add_argument("--prior-sigma", type=float, default=10.0, help="position noise, frames")
    ap.add_argument("--no-usearch", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_pq.json")
    ap.add_argument("--crossover", action="store_true", help="only the flat vs IVF sweep")
    ap.add_argument("--prior-only", action="store_true", help="only the prior on the big map")
    args = ap.parse_args()
    if args.crossover:
        info = machine_info()
        bw, _ = read_bandwidth(0.5)
        print(machine_line(info, bw))
        rows = crossover(args)
        out_x = args.out.with_name("bench_pq_crossover.json")
        out_x.write_text(
            json.dumps(
                {
                    "machine": info,
                    "bandwidth_gbs": bw / 1e9,
                    "machine_line": machine_line(info, bw),
                    "date": time.strftime("%Y-%m-%d"),
                    "rows": rows,
                },
                indent=1,
            )
        )
        print(f"wrote {out_x}")
        return
    info = machine_info()
    bw, _ = read_bandwidth(0.5)
    line = machine_line(info, bw)
    print(line)
    refs_raw, qs_raw = real_descriptors(args.model)
    out: dict[str, object] = {
        "machine": info,
        "bandwidth_gbs": bw / 1e9,
        "machine_line": line,
        "date": time.strftime("%Y-%m-%d"),
        "model": args.model,
        "runs": [],
        "prior": prior_run(args, refs_raw, qs_raw),
    }
    for d in args.dims:
        res = run_dim(args, d, refs_raw, qs_raw, rng_seed=d)
        out["runs"].append(res)  # type: ignore[union-attr]
        if args.prior_only:
            print(f"\nN = {res['places']}, D = {d}: position prior on the pq + int8 map, test")
            for key in ("prior_rows", "prior_rows_route_order", "prior_rows_ivf_z_order"):
                print(f"  {key}:")
                for r in res[key]:  # type: ignore[index]
                    print(
                        f"  radius {r['radius']!s:>6s}: R@1 {r['recall_at_1']:.3f}  "
                        f"{r['median_ms']:.3f} ms  {r['mean_places_in_radius']} places in radius"
                    )
            continue
        print(
            f"\nN = {res['places']}, D = {d}, M = {res['pq_m']} (32 B/place), test segment "
            f"({res['test_queries']} queries); choices on the val segment: {res['chosen_on_val']}"
        )
        rate = res["distractor_top1_rate_float32"]
        print(f"distractor ranked first by exhaustive float32: {rate:.3f} of test queries")
        print(
            f"{'method':58s} {'R@1':>6s} {'hits':>5s} {'ms':>8s} {'B/place':>8s} {'+rerank B':>9s}"
        )
        for r in res["rows"]:  # type: ignore[index]
            print(
                f"{r['method']:58s} {r['recall_at_1']:6.3f} {r['hits']:5d} {r['median_ms']:8.3f} "
                f"{r['code_bytes_per_place']:8.1f} {r['rerank_bytes_per_place']:9d}"
            )
        print("position prior on this map (pq + int8 re-rank), test segment:")
        for r in res["prior_rows"]:  # type: ignore[index]
            print(
                f"  radius {r['radius']!s:>6s}: R@1 {r['recall_at_1']:.3f}  "
                f"{r['median_ms']:.3f} ms  {r['mean_places_in_radius']} places in radius"
            )
    pr = out["prior"]
    print(
        f"\nposition prior, nordland_part1 int8 map (1788 places), query position = true frame "
        f"+ N(0, {pr['noise_sigma_frames']}) frames; radius chosen on val: {pr['chosen_radius']}"
    )  # type: ignore[index]
    for r in pr["rows"]:  # type: ignore[index]
        print(
            f"radius {r['radius']!s:>6s}: R@1 {r['recall_at_1']:.3f}  "
            f"{r['median_ms']:.3f} ms  ~{r['places_in_radius']} places"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float))
    print(f"\nwrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
