"""Matching demo: a synthetic map of random unit descriptors, searched with noisy copies.

Shows the C++ core at work before any model exists: each query is a perturbed
copy of a known place, and the demo prints the top-k found for a few queries
and how many were found at rank 1, per storage type.
"""

from __future__ import annotations

import time

import numpy as np

from vpr_embedded.matching import STORAGES, Index, simd_level


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def run_demo(places: int = 100_000, dim: int = 512, k: int = 5, threads: int = 0) -> None:
    rng = np.random.default_rng(0)
    database = _unit_rows(rng, places, dim)
    truth = rng.choice(places, size=100, replace=False)
    queries = database[truth] + 0.6 * _unit_rows(rng, truth.size, dim) / np.sqrt(2.0)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    print(f"map: {places} places x {dim} dims; 100 queries; SIMD level: {simd_level()}")
    print(f"{'storage':>8} {'bytes/place':>12} {'ms/query':>9} {'recall@1':>9}")
    for storage in STORAGES:
        index = Index.encode(database, storage)
        t0 = time.perf_counter()
        for q in queries:
            result = index.search(q, k, threads=threads)
        per_query = (time.perf_counter() - t0) * 1e3 / len(queries)
        batch = index.search(queries, k, threads=threads)
        recall = float(np.mean(batch.ids[:, 0] == truth))
        print(f"{storage:>8} {index.nbytes / places:>12.0f} {per_query:>9.3f} {recall:>9.2f}")
    print(f"\nlast query (true place {truth[-1]}): top-{k} ids {result.ids[0].tolist()}")
    print(f"scores {np.round(result.scores[0], 3).tolist()}")
