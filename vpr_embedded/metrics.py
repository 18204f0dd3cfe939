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
    valid = [i for i, p in enumerate(positives) if len(p) > 0]
    out: dict[int, float] = {}
    for n in ns:
        hits = sum(bool(np.isin(ids[i, :n], positives[i]).any()) for i in valid)
        out[n] = hits / len(valid) if valid else float("nan")
    return out
