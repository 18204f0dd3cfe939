"""PQ stage (host): trains the product quantizer and coarse index of a ``pq4`` map.

A place's descriptor (dimension D, after any PCA of the map) is cut into ``m`` sub-vectors
of D / m values; each sub-space gets 16 centroids (k-means, scikit-learn), and a place
stores, per sub-space, the 4-bit index of its nearest centroid: m / 2 bytes per place. The
C++ core searches the codes with in-register look-up tables (``vpr/pq.hpp``); the device
never trains anything, it only reads what this module wrote into the map.

With ``ivf_lists`` L > 0, a coarse k-means over the descriptors splits the places into L
lists; a search then scans only the ``nprobe`` lists whose centroids best match the query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vpr_embedded import _core

CENTROIDS = 16  # 4-bit codes
PQ_BLOCK = int(_core.PQ_BLOCK)
NO_PLACE = 0xFFFFFFFF  # slot_places entry of a padding slot


@dataclass(frozen=True)
class PqConfig:
    """How a pq4 map's codes are trained.

    m: sub-quantizers (even, <= 256, dividing the map's dimension): m / 2 bytes per place.
    ivf_lists: coarse lists (0: none, every search scans all codes).
    nprobe: lists a search scans by default (ignored without lists).
    train_sample: at most this many places train the codebooks (a uniform sample).
    """

    m: int = 64
    ivf_lists: int = 0
    nprobe: int = 16
    train_sample: int = 65536
    seed: int = 0


@dataclass(frozen=True)
class PqEncoding:
    """What a pq4 map stores: codebooks, block-packed codes and the optional lists."""

    m: int
    codebooks: NDArray[np.float32]  # m x 16 x (D / m)
    codes: NDArray[np.uint8]  # blocks x m x 16, the fast-scan layout, flattened
    blocks: int
    nlist: int
    nprobe: int
    centroids: NDArray[np.float32] | None  # nlist x D
    list_blocks: NDArray[np.uint64] | None  # nlist + 1
    slot_places: NDArray[np.uint32] | None  # blocks x 32, NO_PLACE for padding


def check_encoding(enc: PqEncoding, dim: int, count: int) -> None:
    """Raise ValueError unless ``enc`` (trained already) holds the codes of ``count`` places
    of dimension ``dim``: what the map reader checks, said before a map is written."""
    if enc.codebooks.shape[0] * enc.codebooks.shape[2] != dim:
        raise ValueError("the PQ encoding was trained for another dimension")
    if enc.slot_places is not None:
        held = int(np.count_nonzero(enc.slot_places != NO_PLACE))
        fits = held == count
    else:  # flat: the last block is padded, so only the block count is known
        held = enc.blocks * PQ_BLOCK
        fits = enc.blocks == -(-count // PQ_BLOCK)
    if not fits:
        raise ValueError(
            f"the PQ encoding holds the codes of {'up to ' if enc.slot_places is None else ''}"
            f"{held} places, not {count}: encode these descriptors (train_pq on them, or "
            "encode_pq with its codebooks)"
        )


def check_config(cfg: PqConfig, dim: int, count: int) -> None:
    """Raises ValueError naming the fix for a configuration the map cannot hold."""
    if cfg.m < 2 or cfg.m > 256 or cfg.m % 2:
        raise ValueError(f"--pq-m must be even and between 2 and 256, got {cfg.m}")
    if dim % cfg.m:
        divisors = [m for m in range(2, 257, 2) if dim % m == 0]
        raise ValueError(
            f"--pq-m {cfg.m} does not divide the descriptor dimension {dim}; use one of "
            f"{divisors[-6:]}"
        )
    if cfg.ivf_lists < 0 or cfg.ivf_lists > max(1, count):
        raise ValueError(f"--ivf must lie in 0..{count} (places), got {cfg.ivf_lists}")
    if cfg.ivf_lists and not 1 <= cfg.nprobe <= cfg.ivf_lists:
        raise ValueError(f"--nprobe must lie in 1..{cfg.ivf_lists}, got {cfg.nprobe}")
    if cfg.train_sample < CENTROIDS:
        raise ValueError(f"train_sample must be at least {CENTROIDS}")


def _kmeans(x: NDArray[np.float32], k: int, seed: int, max_iter: int = 25) -> NDArray[np.float32]:
    from sklearn.cluster import KMeans

    if len(x) <= k:  # fewer points than centroids: the points themselves (and repeats)
        reps = np.resize(np.arange(len(x)), k)
        return np.ascontiguousarray(x[reps], dtype=np.float32)
    km = KMeans(n_clusters=k, n_init=1, max_iter=max_iter, random_state=seed)
    km.fit(x)
    return np.ascontiguousarray(km.cluster_centers_, dtype=np.float32)


def encode_pq(rows: NDArray[np.float32], codebooks: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Nearest-centroid (L2) code of every sub-vector: places x m, values 0..15."""
    m, _, ds = codebooks.shape
    n = rows.shape[0]
    out = np.empty((n, m), dtype=np.uint8)
    half_norms = 0.5 * np.einsum("mkd,mkd->mk", codebooks, codebooks)
    for start in range(0, n, 16384):
        sub = rows[start : start + 16384].reshape(-1, m, ds)
        # argmin |x - c|^2 = argmax <x, c> - |c|^2 / 2
        scores = np.einsum("nmd,mkd->nmk", sub, codebooks) - half_norms
        out[start : start + len(sub)] = np.argmax(scores, axis=2)
    return out


def train_pq(rows: NDArray[np.float32], cfg: PqConfig) -> PqEncoding:
    """Codebooks, codes and (with ``cfg.ivf_lists``) coarse lists for ``rows`` (places x D,
    L2-normalised float32, the rows the map stores)."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    n, dim = rows.shape
    check_config(cfg, dim, n)
    rng = np.random.default_rng(cfg.seed)
    sample = rows if n <= cfg.train_sample else rows[rng.choice(n, cfg.train_sample, False)]
    ds = dim // cfg.m
    codebooks = np.stack(
        [_kmeans(sample[:, j * ds : (j + 1) * ds], CENTROIDS, cfg.seed + j) for j in range(cfg.m)]
    )
    codes = encode_pq(rows, codebooks)
    if cfg.ivf_lists == 0:
        packed = np.asarray(_core.pack_pq4_codes(codes))
        blocks = -(-n // PQ_BLOCK)
        return PqEncoding(cfg.m, codebooks, packed, blocks, 0, 0, None, None, None)
    # Spherical coarse centroids: queries probe lists by inner product, so places are
    # assigned by inner product too.
    centroids = _kmeans(sample, cfg.ivf_lists, cfg.seed)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    assign = np.empty(n, dtype=np.int64)
    for start in range(0, n, 65536):
        assign[start : start + 65536] = np.argmax(rows[start : start + 65536] @ centroids.T, 1)
    order = np.argsort(assign, kind="stable")  # by list, then by place id
    sizes = np.bincount(assign, minlength=cfg.ivf_lists)
    padded = -(-sizes // PQ_BLOCK) * PQ_BLOCK
    slots = int(padded.sum())
    slot_places = np.full(slots, NO_PLACE, dtype=np.uint32)
    slot_codes = np.zeros((slots, cfg.m), dtype=np.uint8)
    starts = np.concatenate([[0], np.cumsum(padded)[:-1]])
    list_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for lst in np.nonzero(sizes)[0]:
        members = order[list_starts[lst] : list_starts[lst] + sizes[lst]]
        slot_places[starts[lst] : starts[lst] + sizes[lst]] = members
        slot_codes[starts[lst] : starts[lst] + sizes[lst]] = codes[members]
    list_blocks = np.concatenate([[0], np.cumsum(padded // PQ_BLOCK)]).astype(np.uint64)
    packed = np.asarray(_core.pack_pq4_codes(slot_codes))
    return PqEncoding(
        cfg.m,
        codebooks,
        packed,
        slots // PQ_BLOCK,
        cfg.ivf_lists,
        min(cfg.nprobe, cfg.ivf_lists),
        centroids,
        list_blocks,
        slot_places,
    )


def unpack_pq4_codes(packed: NDArray[np.uint8], blocks: int, m: int) -> NDArray[np.uint8]:
    """The inverse of ``_core.pack_pq4_codes``: (blocks x 32) x m codes, one per slot."""
    arr = np.asarray(packed, dtype=np.uint8).reshape(blocks, m, 16)
    # Byte i of a sub-quantizer's 16 holds slot i in its low nibble, slot 16 + i in its high.
    slots = np.concatenate([arr & 15, arr >> 4], axis=2)  # blocks x m x 32
    return np.ascontiguousarray(slots.transpose(0, 2, 1).reshape(blocks * PQ_BLOCK, m))


def _spread_bits(v: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Bit i of each 16-bit value moved to bit 2i (for a Morton key)."""
    v = v & np.uint64(0xFFFF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
    v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
    v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
    return (v | (v << np.uint64(1))) & np.uint64(0x55555555)


def morton_keys(positions: NDArray[np.float64]) -> NDArray[np.uint64]:
    """A Z-order key per position (places x 2): positions close together mostly get keys
    close together. Both axes share one scale (the larger extent over 65535 cells)."""
    p = np.asarray(positions, dtype=np.float64)
    # Halved: max - min of positions near +-1e308 would overflow to inf; the halves cannot.
    half_offsets = p / 2 - p.min(axis=0) / 2
    half_extent = float(half_offsets.max())
    scale = 65535.0 / half_extent if half_extent > 0 else 0.0
    if not np.isfinite(scale):  # a subnormal extent: every place in one cell
        scale = 0.0
    cells = np.clip(np.floor(half_offsets * scale), 0, 65535).astype(np.uint64)
    return _spread_bits(cells[:, 0]) | (_spread_bits(cells[:, 1]) << np.uint64(1))


def order_lists_by_position(enc: PqEncoding, positions: NDArray[np.float64]) -> PqEncoding:
    """The same encoding with each coarse list's places in Z-order of their positions.

    Why: the position prior scores the places inside a radius block by block (32 slots per
    block). Lists ordered by place id leave those places scattered over the map when ids do
    not follow positions (a map whose references came in any order), so each costs one
    block read; in Z-order they sit in a few runs of every list, and their blocks are read
    once. Search results do not change (scores and ties depend on places, not slots).
    Flat encodings (no lists) are returned as they are: their slot is the place id.
    """
    if enc.nlist == 0 or enc.slot_places is None or enc.list_blocks is None:
        return enc
    slot_places = enc.slot_places
    real = slot_places != NO_PLACE
    count = int(np.count_nonzero(real))
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (count, 2):
        raise ValueError(f"positions must have shape ({count}, 2), got {pos.shape}")
    keys = morton_keys(pos)
    codes = unpack_pq4_codes(enc.codes, enc.blocks, enc.m)
    new_places = slot_places.copy()
    bounds = enc.list_blocks.astype(np.int64) * PQ_BLOCK
    for lst in range(enc.nlist):
        lo, hi = int(bounds[lst]), int(bounds[lst + 1])
        members = np.nonzero(real[lo:hi])[0] + lo  # padding sits at the list's end
        if len(members) < 2:
            continue
        places = slot_places[members]
        order = np.lexsort((places, keys[places]))  # Z-order, then place id
        new_places[members] = places[order]
        codes[members] = codes[members[order]]  # the right side is a copy
    packed = np.asarray(_core.pack_pq4_codes(codes))
    return PqEncoding(
        enc.m,
        enc.codebooks,
        packed,
        enc.blocks,
        enc.nlist,
        enc.nprobe,
        enc.centroids,
        enc.list_blocks,
        new_places,
    )
