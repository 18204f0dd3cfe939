"""Sequence matching (SeqSLAM-style), backed by the C++ core.

Every query frame is scored against every place, the scores are locally
contrast-normalised over a window of ``contrast_window`` places, and a place's
sequence score is the best sum of normalised scores along a straight line of
``length`` frames ending at it, over velocities in ``[v_min, v_max]`` places per
frame. Defaults are SeqSLAM's (Milford & Wyeth 2012): L=10, R=10, v 0.8..1.25.

Also here: model-free SeqSLAM descriptors (downsample, patch-normalise, flatten,
L2-normalise) and recall@1 of single-frame vs sequence matching on a
frame-aligned dataset, used by the tests and benchmarks/bench_maps.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from vpr_embedded import _core
from vpr_embedded.extras import MissingExtraError
from vpr_embedded.matching import (
    Index,
    SearchResult,
    StorageName,
    check_k,
    check_threads,
    encode,
    float_queries,
)
from vpr_embedded.metrics import recall_at_n

if TYPE_CHECKING:
    from vpr_embedded.maps import Map


# The contrast window of the product's entry points (pipeline, localize, vpr-localize), 20
# rather than SeqSLAM's 10 that SequenceConfig keeps: chosen on nordland_part1's val segment
# with the GeM zoo model (sequence R@1 0.822 at 10, 0.903 at 20, 0.915 at 40; docs/training.md).
DEFAULT_SEQUENCE_WINDOW = 20


@dataclass(frozen=True)
class SequenceConfig:
    """Sequence matching settings (SeqSLAM defaults)."""

    length: int = 10
    v_min: float = 0.8
    v_max: float = 1.25
    v_steps: int = 5
    contrast_window: int = 10
    k: int = 5
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("length", "v_steps", "contrast_window", "k"):
            check_k(getattr(self, name), name)  # integers in [1, 2**31 - 1]
        if self.contrast_window < 2:
            raise ValueError(f"contrast_window must be at least 2, got {self.contrast_window}")
        for name in ("v_min", "v_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not 0 <= self.v_min <= self.v_max:
            raise ValueError(f"need 0 <= v_min <= v_max, got {self.v_min}, {self.v_max}")
        check_threads(self.threads)

    def args(self) -> tuple[int, float, float, int, int, int, int]:
        return (
            self.length,
            self.v_min,
            self.v_max,
            self.v_steps,
            self.contrast_window,
            self.k,
            self.threads,
        )


def _row(query: NDArray[np.float32], dim: int) -> NDArray[np.float32]:
    q = float_queries(query, "a query").reshape(-1)
    if q.shape[0] != dim:
        raise ValueError(f"a query must have {dim} values, got shape {query.shape}")
    return q


class SequenceMatcher:
    """Online sequence matcher: ``push`` one query frame, get the top-k places.

    Build it over a memory-mapped ``Map`` (its projection is applied to queries)
    with ``SequenceMatcher(map)``, or over descriptors with ``from_descriptors``.
    """

    def __init__(self, database: Map, config: SequenceConfig | None = None) -> None:
        self.config = config or SequenceConfig()
        self._owner: object = database
        self._core = _core.SequenceMatcher(database._core, *self.config.args())

    @classmethod
    def from_descriptors(
        cls,
        descriptors: NDArray[np.float32],
        storage: StorageName = "float32",
        config: SequenceConfig | None = None,
    ) -> SequenceMatcher:
        """Encode L2-normalised float32 rows (places x dim) and match sequences over them."""
        codes, scales = encode(descriptors, storage)
        self = cls.__new__(cls)
        self.config = config or SequenceConfig()
        self._owner = (codes, scales)
        self._core = _core.SequenceMatcher(
            codes, storage, int(descriptors.shape[1]), scales, *self.config.args()
        )
        return self

    @property
    def frames(self) -> int:
        """Query frames held (at most ``length``)."""
        return int(self._core.frames)

    @property
    def count(self) -> int:
        return int(self._core.count)

    def push(
        self,
        query: NDArray[np.float32],
        *,
        near: tuple[float, float] | None = None,
        radius: float | None = None,
    ) -> SearchResult:
        """Add one query frame; returns ids/scores of shape (1, k), best first.

        ``near=(x, y)`` with ``radius`` (a matcher over a ``Map`` with positions): the
        position prior as a moving window, this frame scores only the places within the
        radius; the others get the lowest score (-1) for this frame."""
        if (near is None) != (radius is None):
            raise ValueError("near=(x, y) and radius go together")
        candidates = None
        if near is not None and radius is not None:
            from vpr_embedded.maps import Map  # maps imports this module: import at use

            owner = self._owner
            if not isinstance(owner, Map) or owner.positions is None:
                raise ValueError(
                    "a position prior needs a sequence matcher over a map with positions"
                )
            candidates = owner.places_near(near[0], near[1], radius)
        ids, scores = self._core.push(_row(query, int(self._core.input_dim)), candidates)
        return SearchResult(ids=ids.reshape(1, -1), scores=scores.reshape(1, -1))

    def sequence_scores(self) -> NDArray[np.float32]:
        """Sequence score of every place after the last push."""
        return self._core.sequence_scores()

    def reset(self) -> None:
        """Forget the frames held (a new traversal starts)."""
        self._core.reset()

    def match(self, queries: NDArray[np.float32]) -> SearchResult:
        """Batch: row j is the result for frames j-L+1 .. j of ``queries`` (in order).
        Independent of the online state."""
        q = float_queries(queries)
        if q.ndim != 2:
            raise ValueError("queries must be a 2-D numpy array (frames x dim)")
        ids, scores = self._core.match(q)
        return SearchResult(ids=ids, scores=scores)


def match_scores(scores: NDArray[np.float32], config: SequenceConfig | None = None) -> SearchResult:
    """Batch sequence matching over a precomputed score matrix (frames x places)."""
    c = config or SequenceConfig()
    s = np.ascontiguousarray(scores, dtype=np.float32)
    if s.ndim != 2:
        raise ValueError(f"scores must be a 2-D array (frames x places), got shape {s.shape}")
    ids, out = _core.sequence_match_scores(
        s, c.length, c.v_min, c.v_max, c.v_steps, c.contrast_window, c.k
    )
    return SearchResult(ids=ids, scores=out)


def patch_normalise(image: NDArray[np.float32], patch: int = 8) -> NDArray[np.float32]:
    """SeqSLAM patch normalisation: each non-overlapping patch x patch block is shifted
    to zero mean and scaled to unit standard deviation (flat blocks become 0)."""
    h, w = image.shape
    if h % patch or w % patch:
        raise ValueError(f"image {w}x{h} is not a multiple of the patch size {patch}")
    blocks = image.reshape(h // patch, patch, w // patch, patch).astype(np.float32)
    mean = blocks.mean(axis=(1, 3), keepdims=True)
    std = blocks.std(axis=(1, 3), keepdims=True)
    out = np.where(std > 1e-6, (blocks - mean) / np.maximum(std, 1e-6), 0.0)
    return np.asarray(out.reshape(h, w), dtype=np.float32)


def seqslam_descriptors(
    paths: list[Path] | tuple[Path, ...], size: tuple[int, int] = (64, 32), patch: int = 8
) -> NDArray[np.float32]:
    """Model-free SeqSLAM descriptors: greyscale, resize to ``size`` (w, h), patch-normalise,
    flatten, L2-normalise. Returns (images, w*h) float32. Reads images with Pillow."""
    try:
        from PIL import Image
    except ModuleNotFoundError:
        raise MissingExtraError(
            "seqslam_descriptors reads images with Pillow: pip install pillow "
            "(it comes with the 'export' extra)"
        ) from None

    rows = np.empty((len(paths), size[0] * size[1]), dtype=np.float32)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            g = im.convert("L")
            if g.size != size:
                g = g.resize(size, Image.Resampling.BILINEAR)
            rows[i] = patch_normalise(np.asarray(g, dtype=np.float32), patch).reshape(-1)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.ascontiguousarray(rows / np.maximum(norms, 1e-12), dtype=np.float32)


@dataclass(frozen=True)
class SequenceRecall:
    """recall@1 of single-frame and sequence matching over the same descriptors."""

    single: float
    sequence: float
    queries: int
    config: SequenceConfig


def recall_single_vs_sequence(
    references: NDArray[np.float32],
    queries: NDArray[np.float32],
    positives: tuple[NDArray[np.int64], ...] | list[NDArray[np.int64]],
    config: SequenceConfig | None = None,
) -> SequenceRecall:
    """recall@1 over every query (in traversal order) of single-frame search and of
    sequence matching; a hit is a top-1 place among the query's positives."""
    c = config or SequenceConfig(k=1)
    single = Index.encode(references, "float32").search(queries, 1, threads=c.threads).ids[:, 0]
    seq = SequenceMatcher.from_descriptors(references, "float32", c).match(queries).ids[:, 0]

    def recall(found: NDArray[np.int64]) -> float:
        return recall_at_n(found.reshape(-1, 1), positives, (1,))[1]

    return SequenceRecall(recall(single), recall(seq), len(positives), c)
