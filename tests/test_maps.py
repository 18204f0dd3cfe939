"""Map files: round trip, projection, append, atomic writes, and refusal of bad files."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from vpr_embedded import _core
from vpr_embedded.maps import HEADER_SIZE, Map, append_to_map, build_map
from vpr_embedded.matching import STORAGES, Index

SHA = "0123456789abcdef" * 4
OTHER_SHA = "f" * 64


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def small_map(tmp_path: Path, rng: np.random.Generator, **kw: object) -> Path:
    x = unit_rows(rng, 60, 32)
    args: dict[str, object] = {
        "out_path": tmp_path / "small.vprmap",
        "storage": "int8",
        "names": [f"place {i}" for i in range(60)],
        "positions": rng.random((60, 2)),
        "position_kind": "latlon",
        "timestamps": np.arange(60.0),
        "model_sha256": SHA,
        "model_name": "tiny-model",
    }
    args.update(kw)
    return build_map(x, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("storage", STORAGES)
def test_round_trip_equals_in_memory_index(
    tmp_path: Path, rng: np.random.Generator, storage: str
) -> None:
    x = unit_rows(rng, 400, 48)
    names = [f"img-{i:04d}.png" for i in range(400)]
    pos = rng.random((400, 2)) * 1000
    ts = np.linspace(0, 100, 400)
    p = build_map(
        x,
        out_path=tmp_path / "m.vprmap",
        storage=storage,  # type: ignore[arg-type]
        names=names,
        positions=pos,
        position_kind="utm",
        timestamps=ts,
        model_sha256=SHA,
        model_name="tiny",
    )
    m = Map.open(p, SHA, expected_descriptor_dim=48)
    assert (m.count, m.dim, m.input_dim, m.storage) == (400, 48, 48, storage)
    assert m.model_sha256 == SHA and m.model_name == "tiny" and m.format_version == 1
    assert m.names == names and m.position_kind == "utm"
    assert m.positions is not None and np.array_equal(m.positions, pos)
    assert m.timestamps is not None and np.array_equal(m.timestamps, ts)
    assert not m.codes.flags.writeable
    q = unit_rows(rng, 6, 48)
    got = m.search(q, k=4, threads=1)
    want = Index.encode(x, storage).search(q, 4, threads=1)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-6)
    assert got.names is not None and got.names[0] == [names[i] for i in want.ids[0]]
    assert got.positions is not None and got.positions.shape == (6, 4, 2)
    assert m.search(q[0], k=1).ids.shape == (1, 1)
    # No temporary left; the write lock file stays by design.
    assert sorted(f.name for f in tmp_path.iterdir()) == [".m.vprmap.lock", "m.vprmap"]


def test_crc32_agrees_with_zlib() -> None:
    data = bytes(range(256)) * 9 + b"tail"
    assert _core.map_crc32(data) == zlib.crc32(data)
    assert _core.map_crc32(data[100:], zlib.crc32(data[:100])) == zlib.crc32(data)


@pytest.mark.parametrize("whiten", [False, True])
def test_pca_projection_is_stored_and_applied_to_queries(
    tmp_path: Path, rng: np.random.Generator, whiten: bool
) -> None:
    x = unit_rows(rng, 300, 64)
    p = build_map(
        x,
        out_path=tmp_path / "pca.vprmap",
        storage="float32",
        pca_dim=16,
        whiten=whiten,
        model_sha256=SHA,
        model_name="tiny",
    )
    m = Map.open(p)
    assert (m.dim, m.input_dim) == (16, 64)
    assert m.projection is not None and m.projection.shape == (64, 16)
    assert m.projection_mean is not None
    projected = (x - m.projection_mean) @ m.projection
    projected /= np.linalg.norm(projected, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(m.codes), projected, atol=1e-5)
    got = m.search(x[:20], k=1)
    assert np.array_equal(got.ids[:, 0], np.arange(20))
    with pytest.raises(ValueError, match="descriptor dimension 64"):
        m.search(projected[:2].astype(np.float32), k=1)


def test_append_keeps_old_codes_and_projects_new_places(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    x = unit_rows(rng, 200, 64)
    p = build_map(
        x[:150],
        out_path=tmp_path / "a.vprmap",
        storage="int8",
        names=[str(i) for i in range(150)],
        pca_dim=24,
        model_sha256=SHA,
        model_name="tiny",
    )
    before = Map.open(p)
    old_codes = np.array(before.codes)
    old_scales = np.array(before.scales)
    append_to_map(p, x[150:], names=[str(i) for i in range(150, 200)])
    after = Map.open(p, SHA)
    assert after.count == 200 and after.names == [str(i) for i in range(200)]
    np.testing.assert_array_equal(np.asarray(after.codes)[:150], old_codes)
    np.testing.assert_array_equal(np.asarray(after.scales)[:150], old_scales)
    assert np.array_equal(after.search(x[150:], k=1).ids[:, 0], np.arange(150, 200))
    # The first mapping still reads the replaced file's old contents safely.
    assert before.count == 150 and before.search(x[:3], k=1).ids[:, 0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="has names"):
        append_to_map(p, x[:2])
    with pytest.raises(ValueError, match="dimension 32"):
        append_to_map(p, unit_rows(rng, 2, 32), names=["a", "b"])


def test_failed_write_leaves_the_old_map(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = small_map(tmp_path, rng)
    original = p.read_bytes()

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        small_map(tmp_path, rng, storage="float32")
    assert p.read_bytes() == original
    # No temporary file is left; the write lock file stays (it is never removed).
    assert sorted(f.name for f in tmp_path.iterdir()) == [f".{p.name}.lock", p.name]


def test_wrong_model_is_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    p = small_map(tmp_path, rng)
    with pytest.raises(ValueError, match=r"built with model 'tiny-model' \(sha256 0123"):
        Map.open(p, OTHER_SHA)
    with pytest.raises(ValueError, match="descriptors of dimension 512"):
        Map.open(p, SHA, expected_descriptor_dim=512)
    with pytest.raises(ValueError, match="built with model 'tiny-model' of descriptor dim"):
        Map.open(p).search(np.ones((1, 31), np.float32))


def test_bad_arguments(tmp_path: Path, rng: np.random.Generator) -> None:
    x = unit_rows(rng, 10, 8)
    kw: dict[str, object] = {"model_sha256": SHA, "model_name": "m"}
    with pytest.raises(ValueError, match="64 hex digits"):
        build_map(x, out_path=tmp_path / "a", model_sha256="abc", model_name="m")
    with pytest.raises(ValueError, match="one name per place"):
        build_map(x, out_path=tmp_path / "a", names=["a"], **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="position_kind"):
        build_map(x, out_path=tmp_path / "a", positions=np.zeros((10, 2)), **kw)  # type: ignore[arg-type]
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        build_map(bad, out_path=tmp_path / "a", **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pca_dim"):
        build_map(x, out_path=tmp_path / "a", pca_dim=9, **kw)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        Map.open(tmp_path / "missing.vprmap")
    m = Map.open(small_map(tmp_path, rng))
    with pytest.raises(ValueError, match="shortlist"):
        m.search(x[:1, :8].repeat(4, axis=1), k=1, shortlist=10)


# Header fields: (name, offset, struct format).
HEADER_FIELDS = [
    ("magic", 0, "8s"),
    ("version", 8, "<I"),
    ("header size", 12, "<I"),
    ("file size", 16, "<Q"),
    ("count", 24, "<Q"),
    ("dim", 32, "<I"),
    ("input dim", 36, "<I"),
    ("storage", 40, "B"),
    ("position kind", 41, "B"),
    ("flags", 42, "<H"),
    ("payload crc", 44, "<I"),
    ("header crc", 48, "<I"),
    ("sha256", 56, "32s"),
    ("model name", 88, "64s"),
    *[(f"section {i}", 152 + 8 * i, "<Q") for i in range(16)],
]


def rewrite(p: Path, data: bytes | bytearray, name: str = "bad.vprmap") -> Path:
    out = p.parent / name
    out.write_bytes(bytes(data))
    return out


def test_bad_files_are_refused_with_clear_messages(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    p = small_map(tmp_path, rng)
    good = p.read_bytes()
    Map.open(p)

    with pytest.raises(ValueError, match="not a vpr-embedded map"):
        Map.open(rewrite(p, b"PK\x03\x04" + good[4:]))
    with pytest.raises(ValueError, match="not a vpr-embedded map"):
        Map.open(rewrite(p, b"hello"))
    newer = bytearray(good)
    struct.pack_into("<I", newer, 8, 7)
    with pytest.raises(
        ValueError,
        match=r"map format version 7 is newer than this build supports \(2\): rebuild the map",
    ):
        Map.open(rewrite(p, newer))
    with pytest.raises(
        ValueError, match=f"truncated: expected {len(good)} bytes, file has {len(good) - 5}"
    ):
        Map.open(rewrite(p, good[:-5]))
    with pytest.raises(ValueError, match="truncated: expected at least 320 bytes, file has 0"):
        Map.open(rewrite(p, b""))
    with pytest.raises(ValueError, match="size mismatch"):
        Map.open(rewrite(p, good + b"\0"))
    flipped = bytearray(good)
    flipped[HEADER_SIZE + 70] ^= 0x01
    with pytest.raises(ValueError, match="checksum mismatch: the file is corrupt, rebuild it"):
        Map.open(rewrite(p, flipped))
    flipped[-1] ^= 0x80
    with pytest.raises(ValueError, match="checksum mismatch"):
        Map.open(rewrite(p, flipped))
    # Without verification a payload flip is accepted (sizes are still checked).
    assert Map.open(rewrite(p, flipped), verify_checksum=False).count == 60


@pytest.mark.parametrize(("field", "offset", "fmt"), HEADER_FIELDS)
def test_every_header_field_bit_flip_is_refused(
    tmp_path: Path, rng: np.random.Generator, field: str, offset: int, fmt: str
) -> None:
    p = small_map(tmp_path, rng)
    good = p.read_bytes()
    size = struct.calcsize(fmt)
    for byte in range(offset, offset + size):
        for bit in (0, 7):
            data = bytearray(good)
            data[byte] ^= 1 << bit
            with pytest.raises(ValueError):
                Map.open(rewrite(p, data))


def test_truncation_at_every_section_boundary_is_refused(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    p = small_map(tmp_path, rng)
    good = p.read_bytes()
    for n in [1, 7, 8, 11, 12, 100, 319, 320, 321, 384, len(good) // 2, len(good) - 1]:
        with pytest.raises(ValueError, match="truncated"):
            Map.open(rewrite(p, good[:n]), verify_checksum=False)


def test_int8_map_of_512_dims_fits_the_size_budget(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    x = unit_rows(rng, 2000, 512)
    kw: dict[str, object] = {"model_sha256": SHA, "model_name": "m"}
    i8 = Map.open(build_map(x, out_path=tmp_path / "i8", storage="int8", **kw))  # type: ignore[arg-type]
    b = Map.open(build_map(x, out_path=tmp_path / "b", storage="binary", **kw))  # type: ignore[arg-type]
    assert i8.bytes_per_place <= 520
    assert b.bytes_per_place <= 72


def recrc(data: bytearray) -> bytearray:
    """Recompute both CRC-32s, as a buggy or hostile writer would: the file then passes
    the checksum, so only a value check can refuse what it holds."""
    struct.pack_into("<I", data, 44, zlib.crc32(bytes(data[HEADER_SIZE:])))
    struct.pack_into("<I", data, 48, 0)
    struct.pack_into("<I", data, 48, zlib.crc32(bytes(data[:HEADER_SIZE])))
    return data


@pytest.mark.parametrize(
    ("storage", "poison", "message"),
    [
        ("float32", struct.pack("<f", float("nan")), "non-finite float32 value at place 0"),
        ("float32", struct.pack("<f", float("inf")), "non-finite float32 value at place 0"),
        ("float16", np.float16(np.inf).tobytes(), "non-finite float16 value at place 0"),
    ],
)
def test_a_map_with_non_finite_codes_and_a_valid_checksum_is_refused(
    tmp_path: Path, rng: np.random.Generator, storage: str, poison: bytes, message: str
) -> None:
    p = small_map(tmp_path, rng, storage=storage)
    data = bytearray(p.read_bytes())
    (codes_offset,) = struct.unpack_from("<Q", data, 152)  # the descriptors section
    data[codes_offset : codes_offset + len(poison)] = poison
    bad = rewrite(p, recrc(data))
    with pytest.raises(ValueError, match=f"corrupt map: a {message}"):
        Map.open(bad)
    assert Map.open(rewrite(p, recrc(bytearray(p.read_bytes())), "ok.vprmap")).count == 60


@pytest.mark.parametrize(
    "query",
    [
        np.ones((1, 32), np.complex64),
        np.ones((1, 32), bool),
        np.ones((1, 32), np.int32),
        np.array([["a"] * 32], dtype=object),
    ],
)
def test_map_search_refuses_what_index_search_refuses(
    tmp_path: Path, rng: np.random.Generator, query: np.ndarray
) -> None:
    m = Map.open(small_map(tmp_path, rng))
    with pytest.raises(ValueError, match="must be real floating-point"):
        m.search(query, k=1)
    with pytest.raises(ValueError):
        Index.encode(unit_rows(rng, 10, 32)).search(query, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 2**64}, r"k must be an integer in \[1, 2147483647\]"),
        ({"k": 0}, r"k must be an integer in \[1, "),
        ({"k": 2.0}, r"k must be an integer"),
        ({"threads": 2**31}, r"threads must be an integer in \[0, 1024\]"),
        ({"threads": -1}, r"threads must be an integer in \[0, 1024\]"),
    ],
)
def test_out_of_range_integers_are_value_errors_not_type_errors(
    tmp_path: Path, rng: np.random.Generator, kwargs: dict[str, object], message: str
) -> None:
    m = Map.open(small_map(tmp_path, rng))
    q = unit_rows(rng, 1, 32)
    with pytest.raises(ValueError, match=message):
        m.search(q, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        Index.encode(unit_rows(rng, 10, 32)).search(q, **{"k": 1, **kwargs})  # type: ignore[arg-type]
