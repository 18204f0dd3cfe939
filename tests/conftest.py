"""Shared test fixtures: where the real data lives."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# Kernel measurements (`vpr-embedded kernels --measure`) in tests run on 8 MB: they check
# that every candidate runs, not its speed (docs/matching_speed.md).
os.environ.setdefault("VPR_KERNEL_TUNING_BYTES", str(8 << 20))
# Scans under 4 MB run on one thread whatever is asked (a parked worker costs more to wake
# than it saves); the tests' small maps must still exercise the threaded path.
os.environ.setdefault("VPR_SCAN_MIN_BYTES_PER_THREAD", "0")


def data_dir() -> Path:
    """Real datasets: $VPR_DATA_DIR, else ../shared/data beside the repository."""
    return Path(os.environ.get("VPR_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = data_dir()
    if not path.is_dir():
        pytest.fail(f"real data not found at {path}; set VPR_DATA_DIR to ../shared/data")
    return path


def write_png_claiming(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header claims width x height greyscale pixels (a decompression
    bomb when large: readers must refuse it from the header, before decoding). Greyscale,
    because stb_image's own check (at most 2**30 bytes) passes 20000 x 20000 x 1."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    # Pixel data that really inflates to the claimed size (a filter byte per row, then
    # zeros), compressed in pieces: a few hundred KB on disk, hundreds of MB decoded.
    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    rows_per_piece = max(1, (1 << 22) // len(row))
    parts = []
    for start in range(0, height, rows_per_piece):
        parts.append(packer.compress(row * min(rows_per_piece, height - start)))
    idat = b"".join(parts) + packer.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture()
def png_claiming() -> Callable[[Path, int, int], Path]:
    return write_png_claiming


@pytest.fixture(scope="session")
def bomb_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_png_claiming(tmp_path_factory.mktemp("bomb") / "bomb.png", 20000, 20000)


@functools.cache
def _frame_validator() -> Any:
    import jsonschema  # a dev dependency: imported only by the tests that check lines

    schema = json.loads((REPO / "schemas" / "localize-frame.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def frame_lines(text: str) -> list[dict[str, Any]]:
    """Parses a localize output (one JSON line per frame) and checks every line against
    schemas/localize-frame.schema.json, the contract of the Python and C++ writers."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    for line in lines:
        errors = [e.message for e in _frame_validator().iter_errors(line)]
        assert not errors, (line, errors)
    return lines


@pytest.fixture(scope="session")
def check_frame_lines() -> Callable[[str], list[dict[str, Any]]]:
    """frame_lines, for the tests that take it as a fixture."""
    return frame_lines


# Reference YUV <-> RGB (textbook BT.601 limited range) for the frame tests of vpr-localize
# (tests/test_runtime.py) and of the Android preprocessing (tests/test_jni.py).
def bt601_yuv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB -> full-resolution float Y, U, V planes, BT.601 limited range
    (ffmpeg's default for rgb24 -> yuv); subsampling and rounding are the caller's."""
    x = rgb.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return y, u, v


def bt601_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The textbook inverse of full-resolution Y, U, V planes (any numeric dtype) -> uint8
    RGB: what libyuv computes in fixed point."""
    yy = 1.164 * (y.astype(np.float64) - 16)
    uu, vv = u.astype(np.float64) - 128.0, v.astype(np.float64) - 128.0
    rgb = np.stack([yy + 1.596 * vv, yy - 0.392 * uu - 0.813 * vv, yy + 2.017 * uu], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def rgb_to_i420(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> an I420 frame, chroma averaged over 2 x 2 blocks. Even sizes
    only."""
    y, u, v = bt601_yuv(rgb)
    h, w = y.shape

    def half(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = [y, half(u), half(v)]
    return b"".join(np.clip(np.rint(c), 0, 255).astype(np.uint8).tobytes() for c in planes)


def i420_to_rgb(frame: bytes, w: int, h: int) -> np.ndarray:
    """The inverse of an I420 frame, chroma repeated over 2 x 2 blocks."""
    a = np.frombuffer(frame, np.uint8)
    y = a[: w * h].reshape(h, w)
    u = a[w * h : w * h * 5 // 4].reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1)
    v = a[w * h * 5 // 4 :].reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1)
    return bt601_rgb(y, u, v)


def i420_to_nv12(frame: bytes, w: int, h: int) -> bytes:
    """The same frame with its chroma interleaved (U, V, U, V, ...): NV12."""
    a = np.frombuffer(frame, np.uint8)
    q = w * h // 4
    u, v = a[w * h : w * h + q], a[w * h + q :]
    return a[: w * h].tobytes() + np.stack([u, v], axis=1).tobytes()
