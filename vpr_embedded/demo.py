"""Matching demo: a synthetic map of random unit descriptors, searched with noisy copies.

Shows the C++ core at work before any model exists: each query is a perturbed
copy of a known place, and the demo prints the top-k found for a few queries
and how many were found at rank 1, per storage type.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from vpr_embedded.matching import STORAGES, Index, simd_level
from vpr_embedded.settings import option


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


@dataclass(frozen=True)
class DemoConfig:
    """`vpr-embedded demo`: synthetic descriptors matched by the C++ core."""

    places: int = option(100_000, "map size", minimum=1)
    dim: int = option(512, "descriptor dimension", minimum=8)
    k: int = option(5, "results per query", minimum=1)
    threads: int = option(0, "0: all cores", minimum=0, maximum=1024)


def run_demo(cfg: DemoConfig) -> str:
    """Every storage on the same synthetic map: bytes per place, time per query, recall@1."""
    rng = np.random.default_rng(0)
    database = _unit_rows(rng, cfg.places, cfg.dim)
    truth = rng.choice(cfg.places, size=100, replace=False)
    queries = database[truth] + 0.6 * _unit_rows(rng, truth.size, cfg.dim) / np.sqrt(2.0)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    lines = [
        f"map: {cfg.places} places x {cfg.dim} dims; 100 queries; SIMD level: {simd_level()}",
        f"{'storage':>8} {'bytes/place':>12} {'ms/query':>9} {'recall@1':>9}",
    ]
    for storage in STORAGES:
        index = Index.encode(database, storage)
        t0 = time.perf_counter()
        for q in queries:
            result = index.search(q, cfg.k, threads=cfg.threads)
        per_query = (time.perf_counter() - t0) * 1e3 / len(queries)
        batch = index.search(queries, cfg.k, threads=cfg.threads)
        recall = float(np.mean(batch.ids[:, 0] == truth))
        lines.append(
            f"{storage:>8} {index.nbytes / cfg.places:>12.0f} {per_query:>9.3f} {recall:>9.2f}"
        )
    lines += [
        f"\nlast query (true place {truth[-1]}): top-{cfg.k} ids {result.ids[0].tolist()}",
        f"scores {np.round(result.scores[0], 3).tolist()}",
    ]
    return "\n".join(lines)
