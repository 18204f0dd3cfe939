"""Recall@N (device layer, numpy only): the one definition evaluation, the pipeline, the
sequence comparison and the benchmarks all report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def recall_at_n(
    ids: np.ndarray, positives: Sequence[np.ndarray], ns: Sequence[int]
) -> dict[int, float]:
    """Fraction of queries with a positive among their first N retrieved ids; queries
    without any positive are excluded (standard practice)."""
    if ids.shape[0] != len(positives):
        raise ValueError(f"{ids.shape[0]} result rows for {len(positives)} queries")
    out: dict[int, float] = {}
    for n in ns:
        hits = hits_at_n(ids, positives, n)
        out[n] = float(hits.mean()) if len(hits) else float("nan")
    return out


def hits_at_n(ids: np.ndarray, positives: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Per query with any positive: whether one is among its first ``n`` ids (bool)."""
    valid = [i for i, p in enumerate(positives) if len(p) > 0]
    return np.array([bool(np.isin(ids[i, :n], positives[i]).any()) for i in valid], dtype=bool)


def paired_bootstrap(
    hits_a: np.ndarray, hits_b: np.ndarray, *, rounds: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Recall of B minus recall of A over the same queries, with a 95 % interval from
    resampling the queries (paired: one resample draws the same queries for both)."""
    a, b = np.asarray(hits_a, dtype=np.float64), np.asarray(hits_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired hits need the same queries, got {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(rounds, len(a)))
    diffs = (b[idx] - a[idx]).mean(axis=1)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(b.mean() - a.mean()), float(lo), float(hi)
