"""Exhaustive top-k descriptor matching, backed by the C++ core (`vpr_embedded._core`).

Descriptors are L2-normalised rows; the score is their inner product (float32,
float16), the dequantised inner product (int8), or ``1 - 2 * hamming / dim``
(binary sign bits). Results are sorted by score, ties broken by the lower index.
Arrays are used without copies when they are C-contiguous with the exact dtype;
anything else raises ``ValueError`` with the fix in the message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, cast, get_args

import numpy as np
from numpy.typing import NDArray

from vpr_embedded import _core

StorageName = Literal["float32", "float16", "int8", "binary"]
STORAGES: tuple[StorageName, ...] = get_args(StorageName)

_DTYPE_STORAGE: dict[np.dtype[np.generic], StorageName] = {
    np.dtype(np.float32): "float32",
    np.dtype(np.float16): "float16",
    np.dtype(np.int8): "int8",
    np.dtype(np.uint8): "binary",
}


@dataclass(frozen=True)
class SearchResult:
    """Top-k of each query: ``ids`` and ``scores`` of shape (queries, min(k, places))."""

    ids: NDArray[np.int64]
    scores: NDArray[np.float32]


def _storage(storage: str) -> StorageName:
    if storage not in STORAGES:
        raise ValueError(f"unknown storage {storage!r}; use one of: {', '.join(STORAGES)}")
    return storage


# Bounds of the integer arguments, checked before anything reaches C++ (where a value that
# does not fit would surface as a TypeError of the binding).
MAX_K = 2**31 - 1
MAX_THREADS = 1024


def _bounded_int(value: object, low: int, high: int) -> int | None:
    """``value`` as an int when it is an integer (not a bool) in [low, high], else None."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        return None
    number = int(value)
    return number if low <= number <= high else None


def check_k(k: object, what: str = "k") -> int:
    """``k`` as an int in [1, MAX_K], else ValueError."""
    number = _bounded_int(k, 1, MAX_K)
    if number is None:
        raise ValueError(f"{what} must be an integer in [1, {MAX_K}], got {k!r}")
    return number


def check_threads(threads: object) -> int:
    """``threads`` as an int in [0, MAX_THREADS] (0: all cores), else ValueError."""
    number = _bounded_int(threads, 0, MAX_THREADS)
    if number is None:
        raise ValueError(
            f"threads must be an integer in [0, {MAX_THREADS}] (0: all cores), got {threads!r}"
        )
    return number


def float_queries(queries: object, what: str = "queries") -> NDArray[np.float32]:
    """Real floating-point queries as a C-contiguous float32 array (a copy only when the
    dtype or layout differs); complex, boolean, integer and object arrays are refused
    rather than cast."""
    if not isinstance(queries, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(queries).__name__}")
    if not np.issubdtype(queries.dtype, np.floating):
        raise ValueError(f"{what} must be real floating-point (float32), got dtype {queries.dtype}")
    return np.ascontiguousarray(queries, dtype=np.float32)


def _as_2d(queries: NDArray[np.generic], what: str) -> NDArray[np.generic]:
    if not isinstance(queries, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(queries).__name__}")
    if queries.ndim == 1:
        return queries.reshape(1, -1)
    return queries


def encode(
    descriptors: NDArray[np.float32], storage: StorageName = "float32"
) -> tuple[NDArray[np.generic], NDArray[np.float32] | None]:
    """Encode float32 rows as ``storage``: returns (codes, per-row scales for int8 else None)."""
    codes, scales = _core.encode(descriptors, _storage(storage))
    return codes, scales


class Index:
    """A database of encoded descriptors, searched exhaustively by the C++ core.

    ``Index(codes, ...)`` wraps already-encoded arrays without copying them:
    float32 / float16 / int8 rows (int8 with one float32 scale per row), or
    uint8 packed sign bits (binary, ``dim`` bits per row). ``Index.encode``
    encodes float32 descriptors first.
    """

    def __init__(
        self,
        codes: NDArray[np.generic],
        storage: StorageName | None = None,
        *,
        dim: int | None = None,
        scales: NDArray[np.float32] | None = None,
    ) -> None:
        if not isinstance(codes, np.ndarray):
            raise ValueError(f"descriptors must be a numpy array, got {type(codes).__name__}")
        if storage is None:
            if codes.dtype not in _DTYPE_STORAGE:
                raise ValueError(
                    f"descriptors of dtype {codes.dtype} are not supported; use float32, "
                    "float16, int8 (with scales) or uint8 (packed binary codes)"
                )
            storage = _DTYPE_STORAGE[codes.dtype]
        if storage == "binary" and dim is None and codes.ndim == 2:
            dim = codes.shape[1] * 8
        self._index = _core.Index(codes, _storage(storage), dim or 0, scales)

    @classmethod
    def encode(cls, descriptors: NDArray[np.float32], storage: StorageName = "float32") -> Index:
        """Encode L2-normalised float32 rows (places x dim) and index them."""
        codes, scales = encode(descriptors, storage)
        dim = descriptors.shape[1] if storage == "binary" else None
        return cls(codes, storage, dim=dim, scales=scales)

    @property
    def count(self) -> int:
        return int(self._index.count)

    @property
    def dim(self) -> int:
        return int(self._index.dim)

    @property
    def storage(self) -> StorageName:
        return cast(StorageName, self._index.storage)

    @property
    def nbytes(self) -> int:
        """Bytes of descriptor data (codes and scales)."""
        return int(self._index.nbytes)

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return f"Index(count={self.count}, dim={self.dim}, storage={self.storage!r})"

    def search(
        self,
        queries: NDArray[np.generic],
        k: int = 10,
        *,
        threads: int = 0,
        query_scales: NDArray[np.float32] | None = None,
        projection: NDArray[np.float32] | None = None,
        projection_mean: NDArray[np.float32] | None = None,
        shortlist: int = 0,
        rerank: Index | None = None,
    ) -> SearchResult:
        """Top-``k`` places for each query row (a 1-D query is one row).

        Queries are float32, or int8 with ``query_scales`` for an int8 index.
        ``projection`` (in_dim x dim, optional ``projection_mean``) maps raw
        queries into the index's space: ``normalise((q - mean) @ projection)``.
        With ``rerank`` (a float32 index of the same places) and ``shortlist``
        m, this index gives m candidates that are re-ranked exactly.
        """
        k = check_k(k)
        threads = check_threads(threads)
        if _bounded_int(shortlist, 0, MAX_K) is None:
            raise ValueError(f"shortlist must be an integer in [0, {MAX_K}], got {shortlist!r}")
        q = _as_2d(queries, "queries")
        if q.dtype == np.int8:
            if query_scales is None:
                raise ValueError("int8 queries need query_scales (one float32 per query)")
            if projection is not None or rerank is not None:
                raise ValueError("projection and re-ranking need float32 queries")
            ids, scores = self._index.search_int8(
                q.view(np.int8), query_scales, int(k), int(threads)
            )
        else:
            if query_scales is not None:
                raise ValueError("query_scales are only used with int8 queries")
            if rerank is not None and not isinstance(rerank, Index):
                raise ValueError("rerank must be an Index of float32 descriptors")
            if (rerank is None) != (shortlist == 0):
                raise ValueError("two-stage search needs both rerank=Index and shortlist >= 1")
            ids, scores = self._index.search(
                q,
                int(k),
                int(threads),
                projection,
                projection_mean,
                int(shortlist),
                rerank._index if rerank is not None else None,
            )
        return SearchResult(ids=ids, scores=scores)


def search(
    database: NDArray[np.float32],
    queries: NDArray[np.float32],
    k: int = 10,
    *,
    storage: StorageName = "float32",
    threads: int = 0,
) -> SearchResult:
    """One-shot search: encode ``database`` as ``storage`` and search ``queries``."""
    return Index.encode(database, storage).search(queries, k, threads=threads)


def simd_level() -> str:
    """SIMD level the searches use now (e.g. ``avx512``, ``neon_dotprod``, ``scalar``)."""
    return str(_core.simd_level())


def available_simd_levels() -> list[str]:
    """Every SIMD level this CPU and build can run, ``scalar`` first."""
    return list(_core.available_simd_levels())


def force_simd_level(level: str | None) -> None:
    """Force a SIMD level by name (tests cover each); ``None`` restores the detected one."""
    _core.force_simd_level(level)


@contextmanager
def simd_level_forced(level: str) -> Iterator[None]:
    """Run a block at one SIMD level, then restore the detected level."""
    force_simd_level(level)
    try:
        yield
    finally:
        force_simd_level(None)


def kernel_tuning(measure: bool = False) -> dict[str, object]:
    """Which kernel variant (SIMD level x row order) each single-query scan uses on this
    CPU, and why: a fixed table per microarchitecture, else the default (best instruction
    set, rows in order); ``VPR_KERNEL_TUNING=off`` forces the default
    (docs/matching_speed.md). ``measure=True`` times every candidate now and returns what
    the measurement would choose, without changing what searches use."""
    return dict(_core.kernel_tuning(measure))
