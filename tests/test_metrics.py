"""Recall@N, per-query hits and the paired bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest

from vpr_embedded.metrics import hits_at_n, paired_bootstrap, recall_at_n


def test_hits_agree_with_recall_and_skip_queries_without_positives() -> None:
    ids = np.array([[0, 1], [5, 2], [3, 4]])
    positives = [np.array([1]), np.array([], dtype=np.int64), np.array([3])]
    assert list(hits_at_n(ids, positives, 1)) == [False, True]
    assert list(hits_at_n(ids, positives, 2)) == [True, True]
    assert recall_at_n(ids, positives, (1,))[1] == pytest.approx(0.5)


def test_paired_bootstrap_brackets_the_difference() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(400) < 0.5
    b = a.copy()
    b[:40] = True  # B finds what A found, and more
    d, lo, hi = paired_bootstrap(a, b)
    assert d == pytest.approx(b.mean() - a.mean())
    assert 0 < lo <= d <= hi
    same = paired_bootstrap(a, a)
    assert same == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same queries"):
        paired_bootstrap(a, b[:10])
