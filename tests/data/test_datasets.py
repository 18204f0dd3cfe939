"""Dataset readers on the real data, gmberton on a synthetic folder, safe unpickling."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vpr_embedded.data.datasets import detect_format, load_dataset, read_aligned, read_gmberton
from vpr_embedded.data.ground_truth import UnsafePickleError, load_object_npy
from vpr_embedded.data.images import ImageReadError, load_tensor
from vpr_embedded.models import Preprocessing


@pytest.fixture(scope="module")
def data(shared_data: Path) -> Path:
    """The real data folder; missing data fails the test (tests/conftest.py), never skips."""
    return shared_data


def test_corridor_vpr_bench(data: Path) -> None:
    assert detect_format(data / "corridor") == "vpr-bench"
    ds = load_dataset(data / "corridor")
    assert (len(ds.references), len(ds.queries), len(ds.positives)) == (111, 111, 111)
    gt = load_object_npy(data / "corridor" / "ground_truth_new.npy")
    assert gt.shape == (111, 2)
    # hand-checked rows of ground_truth_new.npy
    assert ds.positives[0].tolist() == [0, 1, 2]
    assert ds.positives[1].tolist() == [0, 1, 2, 3]
    assert ds.positives[50].tolist() == [48, 49, 50, 51, 52]
    assert ds.positives[110].tolist() == [108, 109, 110]
    assert ds.queries[3].name == "0000003.jpg" and ds.references[3].name == "0000003.jpg"


def test_nordland_aligned(data: Path) -> None:
    assert detect_format(data / "nordland_part1") == "aligned"
    ds = load_dataset(data / "nordland_part1")
    assert (len(ds.references), len(ds.queries)) == (1788, 1788)
    assert ds.references[0].parent.name == "summer" and ds.queries[0].parent.name == "winter"
    assert ds.positives[0].tolist() == [0, 1, 2]
    assert ds.positives[100].tolist() == [98, 99, 100, 101, 102]
    assert ds.references[100].name == ds.queries[100].name
    assert ds.positives[1787].tolist() == [1785, 1786, 1787]


def test_gardens_aligned_natural_order(data: Path) -> None:
    ds = load_dataset(data / "gardens_point_sample")
    assert (len(ds.references), len(ds.queries)) == (10, 10)
    assert [p.name for p in ds.references] == [f"{i}.jpg" for i in range(10)]
    assert ds.positives[0].tolist() == [0, 1] and ds.positives[5].tolist() == [4, 5, 6]
    ds0 = read_aligned(data / "gardens_point_sample", tolerance=0)
    assert [p.tolist() for p in ds0.positives] == [[i] for i in range(10)]


def test_greyscale_becomes_three_channels(data: Path) -> None:
    prep = Preprocessing(16, 32)
    t = load_tensor(data / "nordland_part1" / "summer" / "images-00010.png", prep)
    assert t.shape == (3, 16, 32) and t.dtype.is_floating_point


def test_greyscale_png(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 128, np.uint8), mode="L").save(tmp_path / "g.png")
    t = load_tensor(tmp_path / "g.png", Preprocessing(4, 4, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0)))
    assert t.shape == (3, 4, 4)
    np.testing.assert_allclose(t.numpy(), 128 / 255 - 0.5, atol=1e-6)


def test_unreadable_image_error(tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match=r"bad\.jpg"):
        load_tensor(tmp_path / "bad.jpg", Preprocessing(4, 4))
    with pytest.raises(ImageReadError, match=r"nope\.jpg"):
        load_tensor(tmp_path / "nope.jpg", Preprocessing(4, 4))


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(path)


def test_gmberton_synthetic(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    for i, (e, n) in enumerate(
        [(500000.0, 4000000.0), (500010.0, 4000000.0), (500100.0, 4000000.0)]
    ):
        _img(root / "database" / f"@{e:.2f}@{n:.2f}@33@T@{i}@.jpg")
    _img(root / "queries" / "@500005.00@4000000.00@33@T@q0@.jpg")  # near db 0 and 1
    _img(root / "queries" / "@500090.00@4000010.00@33@T@q1@.jpg")  # ~14 m from db 2
    _img(root / "queries" / "@600000.00@4000000.00@33@T@q2@.jpg")  # nowhere
    assert detect_format(root) == "gmberton"
    ds = load_dataset(root)
    assert (len(ds.references), len(ds.queries)) == (3, 3)
    by_name = {q.name: p.tolist() for q, p in zip(ds.queries, ds.positives, strict=True)}
    assert by_name["@500005.00@4000000.00@33@T@q0@.jpg"] == [0, 1]
    assert by_name["@500090.00@4000010.00@33@T@q1@.jpg"] == [2]
    assert by_name["@600000.00@4000000.00@33@T@q2@.jpg"] == []
    assert read_gmberton(root, radius_m=200).positives[0].tolist() == [0, 1, 2]


def test_bad_gmberton_name(tmp_path: Path) -> None:
    _img(tmp_path / "database" / "x.jpg")
    _img(tmp_path / "queries" / "y.jpg")
    with pytest.raises(ValueError, match="gmberton"):
        load_dataset(tmp_path)


def test_unknown_layout(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    with pytest.raises(ValueError, match="cannot tell"):
        detect_format(tmp_path)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def _write_npy_payload(path: Path, payload: bytes) -> None:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1, 2), }"
    header = header + b" " * (63 - len(header)) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload)


def test_restricted_unpickler_refuses_malicious(tmp_path: Path) -> None:
    _write_npy_payload(tmp_path / "evil.npy", pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(UnsafePickleError, match="refusing to unpickle"):
        load_object_npy(tmp_path / "evil.npy")


def test_restricted_unpickler_reads_object_array(tmp_path: Path) -> None:
    a = np.empty((2, 2), dtype=object)
    a[0, 0], a[0, 1], a[1, 0], a[1, 1] = 0, [0, 1], 1, [1]
    np.save(tmp_path / "gt.npy", a, allow_pickle=True)
    b = load_object_npy(tmp_path / "gt.npy")
    assert b.shape == (2, 2) and b[0, 1] == [0, 1] and b[1, 1] == [1]
