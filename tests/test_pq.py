"""PQ maps (vpr_embedded.pq + the pq4 storage of maps): training, the block layout, search
with IVF, re-ranking and the position prior, against independent references."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from vpr_embedded import _core
from vpr_embedded.maps import HEADER_SIZE_V2, Map, append_to_map, build_map
from vpr_embedded.matching import Index
from vpr_embedded.pq import (
    NO_PLACE,
    PqConfig,
    check_config,
    encode_pq,
    morton_keys,
    order_lists_by_position,
    train_pq,
    unpack_pq4_codes,
)

SHA = "ab" * 32
KW: dict[str, object] = {"model_sha256": SHA, "model_name": "m"}


def clustered(rng: np.random.Generator, n: int, d: int, centres: int = 50) -> np.ndarray:
    """Unit rows around `centres` directions: neighbours exist, as with real places."""
    c = rng.standard_normal((centres, d)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.5 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(3)


def reference_pack(codes: np.ndarray) -> np.ndarray:
    """The block layout written out plainly: block b, sub-quantizer j, byte i holds slot
    32b + i (low nibble) and 32b + 16 + i (high nibble)."""
    n, m = codes.shape
    blocks = -(-n // 32)
    padded = np.zeros((blocks * 32, m), dtype=np.uint8)
    padded[:n] = codes
    out = np.zeros((blocks, m, 16), dtype=np.uint8)
    for b in range(blocks):
        for j in range(m):
            for i in range(16):
                out[b, j, i] = padded[32 * b + i, j] | (padded[32 * b + 16 + i, j] << 4)
    return out.reshape(-1)


def test_pack_matches_the_documented_layout(rng: np.random.Generator) -> None:
    for n, m in [(1, 2), (31, 4), (32, 8), (70, 16)]:
        codes = rng.integers(0, 16, (n, m), dtype=np.uint8)
        assert np.array_equal(_core.pack_pq4_codes(codes), reference_pack(codes))
    with pytest.raises(ValueError, match="above 15"):
        _core.pack_pq4_codes(np.full((3, 2), 16, dtype=np.uint8))


def test_codes_are_the_nearest_centroids(rng: np.random.Generator) -> None:
    x = clustered(rng, 500, 32)
    enc = train_pq(x, PqConfig(m=8))
    codes = encode_pq(x, enc.codebooks)
    sub = x.reshape(500, 8, 4)
    d2 = ((sub[:, :, None, :] - enc.codebooks[None]) ** 2).sum(-1)  # n x m x 16
    assert np.array_equal(codes, d2.argmin(-1))
    assert np.array_equal(enc.codes, reference_pack(codes))


def test_pq_map_recall_and_exact_rerank(tmp_path: Path, rng: np.random.Generator) -> None:
    x = clustered(rng, 3000, 64)
    q = clustered(np.random.default_rng(9), 40, 64)
    exact = Index.encode(x, "float32").search(q, 10).ids
    flat = Map.open(build_map(x, out_path=tmp_path / "a", storage="pq4", pq=PqConfig(m=32), **KW))  # type: ignore[arg-type]
    assert flat.format_version == 2 and flat.storage == "pq4"
    assert flat.pq_info == {"m": 32, "blocks": 94, "code_bytes": 94 * 32 * 16, "nlist": 0,
                            "nprobe": 0, "rerank": None}  # fmt: skip
    assert flat.codes is None  # no rows without re-rank codes
    got = flat.search(q, 10).ids
    recall10 = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact, strict=True)])
    # 16 B per place of noisy 64-d data: about half of the true top-10 (a scan with a wrong
    # table or layout finds about 10 / 3000 of it).
    assert recall10 > 0.35, recall10
    # With int8 re-rank codes and a shortlist of every place, the result is exactly the
    # int8 map's.
    rr = Map.open(build_map(x, out_path=tmp_path / "b", storage="pq4", pq=PqConfig(m=32),
                            rerank="int8", **KW))  # type: ignore[arg-type]  # fmt: skip
    i8 = Map.open(build_map(x, out_path=tmp_path / "c", storage="int8", **KW))  # type: ignore[arg-type]
    assert i8.format_version == 1  # maps without version-2 sections stay readable by old readers
    a, b = rr.search(q, 5, shortlist=3000), i8.search(q, 5)
    assert np.array_equal(a.ids, b.ids) and np.allclose(a.scores, b.scores)
    # The default shortlist re-ranks: recall@10 rises above PQ alone.
    r2 = rr.search(q, 10).ids
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(r2, exact, strict=True)]) > recall10


def test_ivf_with_every_list_equals_flat(tmp_path: Path, rng: np.random.Generator) -> None:
    x = clustered(rng, 2000, 32)
    q = clustered(np.random.default_rng(8), 20, 32)
    flat = Map.open(build_map(x, out_path=tmp_path / "f", storage="pq4", pq=PqConfig(m=8), **KW))  # type: ignore[arg-type]
    ivf = Map.open(build_map(x, out_path=tmp_path / "i", storage="pq4",
                             pq=PqConfig(m=8, ivf_lists=16, nprobe=2), **KW))  # type: ignore[arg-type]  # fmt: skip
    info = ivf.pq_info
    assert info is not None and info["nlist"] == 16 and info["nprobe"] == 2
    assert np.array_equal(ivf.search(q, 10, nprobe=16).ids, flat.search(q, 10).ids)
    # Fewer lists: a subset of the places is scanned; results stay valid place ids.
    few = ivf.search(q, 10).ids
    assert few.shape == (20, 10) and few.min() >= 0 and few.max() < 2000
    with pytest.raises(ValueError, match="IVF"):
        flat.search(q, 5, nprobe=4)


def test_position_prior_equals_a_search_of_the_places_inside(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    x = clustered(rng, 1000, 32)
    pos = np.stack([np.arange(1000.0), np.zeros(1000)], 1)
    q = x[[100, 500, 900]] + 0.01
    for storage, kw in (("int8", {}), ("pq4", {"pq": PqConfig(m=8), "rerank": "int8"})):
        m = Map.open(build_map(x, out_path=tmp_path / storage, storage=storage, positions=pos,
                               position_kind="utm", **kw, **KW))  # type: ignore[arg-type]  # fmt: skip
        inside = m.places_near(480.0, 0.0, 30.0)
        assert list(inside) == list(range(450, 511))
        got = m.search(q, 5, near=(480.0, 0.0), radius=30.0)
        assert np.all((got.ids >= 450) & (got.ids <= 510))
        if storage == "int8":  # exact storage: the same as searching only those rows
            sub = Index.encode(x[450:511], "int8").search(q, 5)
            assert np.array_equal(got.ids, sub.ids + 450)
        # Query 1 (place 500) lies inside: found first.
        assert got.ids[1, 0] == 500
        empty = m.search(q, 5, near=(5000.0, 0.0), radius=1.0)
        assert empty.ids.shape == (3, 0)
    bare = Map.open(build_map(x, out_path=tmp_path / "bare", storage="int8", **KW))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no positions"):
        bare.search(q, 5, near=(1.0, 2.0), radius=3.0)
    with pytest.raises(ValueError, match="go together"):
        bare.search(q, 5, near=(1.0, 2.0))


def test_unpack_inverts_the_block_layout(rng: np.random.Generator) -> None:
    codes = rng.integers(0, 16, (70, 6), dtype=np.uint8)
    packed = reference_pack(codes)
    back = unpack_pq4_codes(packed, 3, 6)
    assert back.shape == (96, 6)
    assert np.array_equal(back[:70], codes) and not back[70:].any()


def test_morton_keys_follow_the_z_order() -> None:
    # A 2 x 2 grid in Z-order: (0,0), (1,0), (0,1), (1,1); far corners get far keys.
    grid = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [100.0, 100.0]])
    keys = morton_keys(grid * 0.01)  # any scale: the extent maps to 65535 cells
    assert list(np.argsort(keys)) == [0, 1, 2, 3, 4]
    assert keys[4] == 0xFFFFFFFF  # the far corner: every bit of both axes set
    assert morton_keys(np.zeros((3, 2))).tolist() == [0, 0, 0]  # one point: no extent
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no inf or NaN on the way
        huge = morton_keys(np.array([[-1e308, 0.0], [1e308, 1e308], [0.0, 0.0]]))
        # x spans the shared scale (65535 cells), y half of it: (0, 0) is x cell 32767.
        assert huge.tolist() == [0, 0x7FFFFFFF, 0x15555555]
        assert morton_keys(np.array([[0.0, 0.0], [5e-324, 5e-324]])).tolist() == [0, 0]


def test_one_list_in_z_order_is_a_flat_scan_with_a_local_prior(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """`--ivf 1` with positions: the flat map's results, its places stored in Z-order."""
    n = 900
    x = clustered(rng, n, 32)
    pos = rng.uniform(0.0, 1000.0, (n, 2))
    q = x[rng.choice(n, 8, replace=False)] + 0.02
    flat = Map.open(build_map(x, out_path=tmp_path / "flat", storage="pq4", pq=PqConfig(m=8),
                              positions=pos, position_kind="utm", **KW))  # type: ignore[arg-type]  # fmt: skip
    one = Map.open(build_map(x, out_path=tmp_path / "one", storage="pq4",
                             pq=PqConfig(m=8, ivf_lists=1, nprobe=1), positions=pos,
                             position_kind="utm", **KW))  # type: ignore[arg-type]  # fmt: skip
    a, b = flat.search(q, 10), one.search(q, 10)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.scores, b.scores)
    for centre, radius in (((300.0, 700.0), 60.0), ((500.0, 500.0), 400.0)):
        a = flat.search(q, 5, near=centre, radius=radius)
        b = one.search(q, 5, near=centre, radius=radius)
        assert a.ids.shape[1] == 5 and np.array_equal(a.ids, b.ids)


def test_lists_in_position_order_keep_every_result(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Place ids unrelated to positions (a map whose references came in any order): each
    list is stored in Z-order of position, and no search result changes."""
    n = 1500
    x = clustered(rng, n, 32)
    pos = rng.uniform(0.0, 1000.0, (n, 2))
    enc = train_pq(x, PqConfig(m=8, ivf_lists=8, nprobe=3))
    ordered = order_lists_by_position(enc, pos)
    keys = morton_keys(pos)
    assert enc.slot_places is not None and ordered.slot_places is not None
    assert enc.list_blocks is not None
    codes, new_codes = (unpack_pq4_codes(e.codes, e.blocks, 8) for e in (enc, ordered))
    slot_of = {int(p): s for s, p in enumerate(enc.slot_places) if p != NO_PLACE}
    bounds = enc.list_blocks.astype(int) * 32
    moved = 0
    for lst in range(8):
        lo, hi = bounds[lst], bounds[lst + 1]
        before, after = enc.slot_places[lo:hi], ordered.slot_places[lo:hi]
        real = after[after != NO_PLACE]
        assert sorted(real.tolist()) == sorted(before[before != NO_PLACE].tolist())
        assert np.all(np.diff(keys[real].astype(np.int64)) >= 0)  # Z-order inside the list
        assert np.all(after[len(real) :] == NO_PLACE)  # padding stays at the end
        for s, p in zip(range(lo, lo + len(real)), real, strict=True):  # codes moved along
            assert np.array_equal(new_codes[s], codes[slot_of[int(p)]])
        moved += int(np.count_nonzero(real != before[: len(real)]))
    assert moved > n // 2  # ids in random order: most places changed slot
    q = x[rng.choice(n, 15, replace=False)] + 0.02
    plain = Map.open(build_map(x, out_path=tmp_path / "plain", storage="pq4", pq=enc, **KW))  # type: ignore[arg-type]
    placed = Map.open(build_map(x, out_path=tmp_path / "placed", storage="pq4", pq=enc,
                                positions=pos, position_kind="utm", **KW))  # type: ignore[arg-type]  # fmt: skip
    for kw in ({}, {"nprobe": 8}):
        a, b = plain.search(q, 10, **kw), placed.search(q, 10, **kw)
        assert np.array_equal(a.ids, b.ids) and np.array_equal(a.scores, b.scores)
    # The prior on the ordered map: the best of the places inside, as the plain map scores
    # them. Radius 150 hits over a quarter of the blocks (the masked full scan); radius 80
    # a few blocks (candidates put in slot order through the bitmap, scored by group).
    everything = plain.search(q, n, nprobe=8)
    for centre, radius in (((500.0, 500.0), 150.0), ((100.0, 100.0), 80.0)):
        near = placed.search(q, 5, near=centre, radius=radius)
        inside = set(placed.places_near(*centre, radius).tolist())
        assert 5 <= len(inside) < n and set(near.ids.ravel().tolist()) <= inside
        for row, ids in enumerate(near.ids):
            kept = [int(i) for i in everything.ids[row] if int(i) in inside][:5]
            assert [int(i) for i in ids] == kept
    flat = train_pq(x, PqConfig(m=8))
    assert order_lists_by_position(flat, pos) is flat  # flat: slot = place, nothing moves
    with pytest.raises(ValueError, match="shape"):
        order_lists_by_position(enc, pos[:10])


def test_bad_pq_settings_are_refused_with_the_fix(tmp_path: Path, rng: np.random.Generator) -> None:
    x = clustered(rng, 200, 48)
    with pytest.raises(ValueError, match="does not divide"):
        check_config(PqConfig(m=20), 48, 200)
    with pytest.raises(ValueError, match="even"):
        check_config(PqConfig(m=3), 48, 200)
    with pytest.raises(ValueError, match="nprobe"):
        check_config(PqConfig(m=8, ivf_lists=4, nprobe=9), 48, 200)
    with pytest.raises(ValueError, match="storage='pq4'"):
        build_map(x, out_path=tmp_path / "x", storage="int8", rerank="int8", **KW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="re-rank codes must be"):
        build_map(x, out_path=tmp_path / "x", storage="pq4", rerank="binary", **KW)  # type: ignore[arg-type]
    # An encoding trained on other rows (benchmarks pass one): refused before writing.
    for cfg in (PqConfig(m=8), PqConfig(m=8, ivf_lists=4, nprobe=2)):
        other = train_pq(x[:100], cfg)
        with pytest.raises(ValueError, match=r"codes of (up to 128|100) places, not 200"):
            build_map(x, out_path=tmp_path / "o", storage="pq4", pq=other, **KW)  # type: ignore[arg-type]
        assert not (tmp_path / "o").exists()
        with pytest.raises(ValueError, match="another dimension"):
            build_map(x[:100, :32], out_path=tmp_path / "o", storage="pq4", pq=other, **KW)  # type: ignore[arg-type]
    p = build_map(x, out_path=tmp_path / "p", storage="pq4", pq=PqConfig(m=8), **KW)  # type: ignore[arg-type]
    before = p.read_bytes()
    with pytest.raises(ValueError, match="rebuild the map"):
        append_to_map(p, x[:3])
    assert p.read_bytes() == before
    with pytest.raises(ValueError, match="cannot re-rank"):
        Map.open(p).search(x[:1], 5, shortlist=10)


def test_corrupt_pq_maps_are_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    x = clustered(rng, 300, 32)
    p = build_map(x, out_path=tmp_path / "p", storage="pq4",
                  pq=PqConfig(m=8, ivf_lists=4, nprobe=2), rerank="int8", **KW)  # type: ignore[arg-type]  # fmt: skip
    good = p.read_bytes()
    bad = tmp_path / "bad.vprmap"
    # Truncated anywhere, including inside the version-2 section slots.
    for n in [321, 400, HEADER_SIZE_V2 - 1, HEADER_SIZE_V2 + 1, len(good) // 2, len(good) - 1]:
        bad.write_bytes(good[:n])
        with pytest.raises(ValueError, match="truncated"):
            Map.open(bad, verify_checksum=False)
    # A flipped byte in every version-2 section slot is refused (checksum on).
    for off in range(320, HEADER_SIZE_V2, 8):
        data = bytearray(good)
        data[off] ^= 1
        bad.write_bytes(bytes(data))
        with pytest.raises(ValueError):
            Map.open(bad)
    # A valid checksum over an invalid slot map (a hostile writer): still refused.
    slots_off, slots_len = struct.unpack_from("<QQ", good, 320 + 5 * 16)
    data = bytearray(good)
    struct.pack_into("<I", data, slots_off, 1)
    struct.pack_into("<I", data, slots_off + 4, 1)
    struct.pack_into("<I", data, 44, zlib.crc32(bytes(data[HEADER_SIZE_V2:])))
    struct.pack_into("<I", data, 48, 0)
    struct.pack_into("<I", data, 48, zlib.crc32(bytes(data[:HEADER_SIZE_V2])))
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="slot"):
        Map.open(bad)
    assert slots_len % (32 * 4) == 0
