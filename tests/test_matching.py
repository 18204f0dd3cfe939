"""vpr_embedded.matching against a numpy reference, at every SIMD level."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vpr_embedded.matching import (
    STORAGES,
    Index,
    available_simd_levels,
    encode,
    search,
    simd_level,
    simd_level_forced,
)


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_top_k(db: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Reference: float32 scores, stable sort by (-score, index)."""
    scores = q @ db.T
    return np.stack([np.lexsort((np.arange(db.shape[0]), -row))[:k] for row in scores])


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """VPR-style recall@k: share of queries whose float32 best match is in the found top-k."""
    return float(np.mean([t[0] in f for f, t in zip(found, truth, strict=True)]))


def overlap_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Stricter k-recall@k: share of the float32 top-k present in the found top-k."""
    hits = [len(set(f) & set(t)) for f, t in zip(found, truth, strict=True)]
    return float(np.sum(hits)) / truth.size


# Ranks 2..10 of random unit vectors are near-ties, so the overlap of whole top-10
# lists is looser than recall; faiss's SQ8 reaches the same ~0.98 on such data.
MIN_OVERLAP = {"float16": 0.99, "int8": 0.97}


@pytest.fixture(params=available_simd_levels())
def level(request: pytest.FixtureRequest) -> Iterator[str]:
    with simd_level_forced(request.param):
        assert simd_level() == request.param
        yield request.param


def test_float32_top_k_equals_numpy(level: str) -> None:
    rng = np.random.default_rng(0)
    db, q = unit_rows(rng, 20_000, 256), unit_rows(rng, 30, 256)
    index = Index.encode(db)
    for threads in (1, 2):
        single = np.stack([index.search(row, 10, threads=threads).ids[0] for row in q])
        batch = index.search(q, 10, threads=threads).ids
        expected = numpy_top_k(db, q, 10)
        # Summation order differs from numpy's: allow only swaps of near-equal scores.
        for found in (single, batch):
            exact = np.mean(found == expected)
            assert exact >= 0.999, f"{level}: {exact}"


def test_scores_are_inner_products(level: str) -> None:
    rng = np.random.default_rng(1)
    db, q = unit_rows(rng, 1000, 128), unit_rows(rng, 4, 128)
    r = Index.encode(db).search(q, 5)
    expected = np.take_along_axis(q @ db.T, r.ids, axis=1)
    np.testing.assert_allclose(r.scores, expected, rtol=1e-5, atol=1e-6)
    assert r.ids.dtype == np.int64 and r.scores.dtype == np.float32


@pytest.mark.parametrize("storage", ["float16", "int8"])
def test_compressed_recall_on_random_data(storage: str, level: str) -> None:
    rng = np.random.default_rng(2)
    db, q = unit_rows(rng, 10_000, 512), unit_rows(rng, 200, 512)
    # Random unit vectors are nearly orthogonal: queries are database rows plus an
    # equal amount of noise (cosine ~0.71 to their place).
    q = db[:200] + q
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    truth = Index.encode(db).search(q, 10).ids
    found = Index.encode(db, storage).search(q, 10).ids  # type: ignore[arg-type]
    assert recall_at(found, truth) >= 0.99
    assert overlap_at(found, truth) >= MIN_OVERLAP[storage]


def real_descriptors(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Colour-histogram descriptors of the corridor images (real, model-free)."""

    def describe(path: Path) -> np.ndarray:
        img = np.asarray(Image.open(path).convert("RGB").resize((32, 24)), dtype=np.float32)
        x = img.reshape(-1) - img.mean()
        return x / np.linalg.norm(x)

    ref = sorted((root / "corridor" / "ref").glob("*.jpg"))
    qry = sorted((root / "corridor" / "query").glob("*.jpg"))
    db = np.stack([describe(p) for p in ref]).astype(np.float32)
    q = np.stack([describe(p) for p in qry]).astype(np.float32)
    return db, q


@pytest.mark.parametrize("storage", ["float16", "int8"])
def test_compressed_recall_on_real_descriptors(storage: str, shared_data: Path) -> None:
    db, q = real_descriptors(shared_data)
    assert db.shape == (111, 32 * 24 * 3)
    truth = Index.encode(db).search(q, 10).ids
    found = Index.encode(db, storage).search(q, 10).ids  # type: ignore[arg-type]
    assert recall_at(found, truth) >= 0.99
    assert overlap_at(found, truth) >= MIN_OVERLAP[storage]


def test_binary_scores_are_hamming_based() -> None:
    rng = np.random.default_rng(3)
    db, q = unit_rows(rng, 500, 100), unit_rows(rng, 3, 100)
    r = Index.encode(db, "binary").search(q, 500)
    bits_db, bits_q = db > 0, q > 0
    hamming = (bits_q[:, None, :] != bits_db[None, :, :]).sum(axis=2)
    expected = 1.0 - 2.0 * np.take_along_axis(hamming, r.ids, axis=1) / 100
    np.testing.assert_allclose(r.scores, expected, rtol=0, atol=1e-6)
    order = np.lexsort((r.ids[0], -r.scores[0]))
    assert np.array_equal(order, np.arange(500))


def test_int8_queries_match_float_queries() -> None:
    rng = np.random.default_rng(4)
    db, q = unit_rows(rng, 2000, 64), unit_rows(rng, 8, 64)
    index = Index.encode(db, "int8")
    codes, scales = encode(q, "int8")
    assert scales is not None
    a = index.search(q, 5)
    b = index.search(codes, 5, query_scales=scales)
    assert np.array_equal(a.ids, b.ids)


def test_two_stage_search_reranks_exactly() -> None:
    rng = np.random.default_rng(5)
    db = unit_rows(rng, 5000, 256)
    q = db[:20] + 0.3 * unit_rows(rng, 20, 256) / 16
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    exact = Index.encode(db)
    coarse = Index.encode(db, "binary")
    # A shortlist of every place must give exactly the float32 answer.
    full = coarse.search(q, 5, shortlist=5000, rerank=exact)
    assert np.array_equal(full.ids, exact.search(q, 5).ids)
    # A short shortlist finds the true place, and its scores are exact inner products.
    short = coarse.search(q, 5, shortlist=200, rerank=exact)
    assert np.array_equal(short.ids[:, 0], np.arange(20))
    np.testing.assert_allclose(
        short.scores, np.take_along_axis(q @ db.T, short.ids, axis=1), rtol=1e-5, atol=1e-6
    )


def test_projection_is_applied_to_queries() -> None:
    rng = np.random.default_rng(6)
    raw = unit_rows(rng, 300, 64)
    mean = raw.mean(axis=0).astype(np.float32)
    basis = np.linalg.qr(rng.standard_normal((64, 64)))[0][:, :32].astype(np.float32)
    mapped = (raw - mean) @ basis
    mapped = (mapped / np.linalg.norm(mapped, axis=1, keepdims=True)).astype(np.float32)
    r = Index.encode(mapped).search(raw[:10], 1, projection=basis, projection_mean=mean)
    assert np.array_equal(r.ids[:, 0], np.arange(10))


def test_zero_copy_index_keeps_its_buffer_alive() -> None:
    rng = np.random.default_rng(7)
    db = unit_rows(rng, 100, 32).astype(np.float16)
    queries = db[[5, 17, 99]].astype(np.float32)
    expected = Index(db.copy()).search(queries, 3)  # over a copy it does not share
    index = Index(db)  # dtype float16 -> float16 storage, no copy
    del db
    gc.collect()
    reuse = [np.full((100, 32), 7, np.float16) for _ in range(20)]  # the freed memory, reused
    got = index.search(queries, 3)  # after the caller's array is gone
    np.testing.assert_array_equal(got.ids, expected.ids)
    np.testing.assert_array_equal(got.scores, expected.scores)
    assert got.ids[:, 0].tolist() == [5, 17, 99] and len(reuse) == 20
    assert index.storage == "float16" and index.nbytes == 100 * 32 * 2


def test_k_larger_than_database_returns_all_sorted() -> None:
    rng = np.random.default_rng(8)
    db = unit_rows(rng, 7, 16)
    r = search(db, db[3], k=50)
    assert r.ids.shape == (1, 7) and r.ids[0, 0] == 3
    assert sorted(r.ids[0].tolist()) == list(range(7))
    assert np.all(np.diff(r.scores[0]) <= 0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Index.encode(np.zeros((10, 8), np.float64)), "float32"),
        (lambda: Index.encode(np.zeros((0, 8), np.float32)), "empty"),
        (lambda: Index.encode(np.zeros(8, np.float32)), "2-D"),
        (lambda: Index.encode(np.full((2, 8), np.nan, np.float32)), "non-finite"),
        (lambda: Index(np.zeros((4, 8), np.int8)), "scale"),
        (lambda: Index(np.zeros((4, 8), np.float32)[:, ::2]), "C-contiguous"),
        (lambda: Index(np.zeros((4, 8), np.int64)), "not supported"),
        (lambda: Index(np.zeros((4, 2), np.uint8), dim=20), "cannot hold"),
        (lambda: Index(np.zeros((0, 8), np.float32)).search(np.zeros(8, np.float32)), "empty"),
    ],
)
def test_bad_databases_raise_value_error(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_bad_queries_raise_value_error() -> None:
    rng = np.random.default_rng(9)
    index = Index.encode(unit_rows(rng, 10, 8))
    q = unit_rows(rng, 2, 8)
    with pytest.raises(ValueError, match="dimension"):
        index.search(unit_rows(rng, 2, 9))
    with pytest.raises(ValueError, match="float32"):
        index.search(q.astype(np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        index.search(np.asfortranarray(unit_rows(rng, 3, 8)))
    with pytest.raises(ValueError, match="non-finite"):
        index.search(np.full((1, 8), np.inf, np.float32))
    for k in (0, -3, 2.5):
        with pytest.raises(ValueError, match="k must be"):
            index.search(q, k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        index.search(q, 3, threads=-1)
    with pytest.raises(ValueError, match="query_scales"):
        index.search(np.zeros((1, 8), np.int8))
    with pytest.raises(ValueError, match="unknown storage"):
        Index.encode(q, "int4")  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300),
    d=st.integers(1, 80),
    nq=st.integers(1, 6),
    k=st.integers(1, 40),
    storage=st.sampled_from(STORAGES),
    seed=st.integers(0, 2**32 - 1),
)
def test_shapes_and_order_for_any_size(
    n: int, d: int, nq: int, k: int, storage: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    db, q = unit_rows(rng, n, d), unit_rows(rng, nq, d)
    r = Index.encode(db, storage).search(q, k, threads=2)  # type: ignore[arg-type]
    assert r.ids.shape == r.scores.shape == (nq, min(k, n))
    assert np.all((r.ids >= 0) & (r.ids < n))
    for ids, scores in zip(r.ids, r.scores, strict=True):
        assert len(set(ids.tolist())) == len(ids)
        order = np.lexsort((ids, -scores))
        assert np.array_equal(order, np.arange(len(ids)))
    if storage == "float32":
        np.testing.assert_allclose(
            r.scores, np.take_along_axis(q @ db.T, r.ids, axis=1), rtol=1e-4, atol=1e-5
        )


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(
        [np.float64, np.float16, np.int8, np.uint8, np.int32, np.int64, np.complex64, np.bool_]
    ),
    ndim=st.integers(0, 3),
    fortran=st.booleans(),
)
def test_queries_of_any_other_dtype_or_layout_raise_value_error(
    dtype: type, ndim: int, fortran: bool
) -> None:
    index = Index.encode(unit_rows(np.random.default_rng(10), 20, 8))
    shape = (3, 8, 2)[:ndim] if ndim != 1 else (8,)
    q = np.zeros(shape, dtype=dtype)
    if fortran:
        q = np.asfortranarray(q)
    with pytest.raises(ValueError):
        index.search(q, 3)  # only float32 (or int8 with query_scales) rows of dim 8 are valid
