"""Safe reading of VPR-Bench ground truth (a pickled numpy object array)."""

from __future__ import annotations

import ast
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

# Only what numpy needs to rebuild an object array of ints and lists.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,  # type: ignore[attr-defined]
    ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,  # type: ignore[attr-defined]
    ("numpy.core.multiarray", "scalar"): np._core.multiarray.scalar,  # type: ignore[attr-defined]
    ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,  # type: ignore[attr-defined]
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
}


class UnsafePickleError(ValueError):
    """The pickle asks for something other than numpy array reconstruction."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays, dtypes, lists and tuples."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle {module}.{name}: ground-truth files may only contain "
                "numpy arrays of integers and lists"
            ) from None


def restricted_loads(data: bytes) -> Any:
    return RestrictedUnpickler(io.BytesIO(data)).load()


def load_object_npy(path: str | Path) -> np.ndarray:
    """Read a ``.npy`` file holding a pickled object array, without ``allow_pickle``.

    The header is parsed with ``ast.literal_eval``; the payload with RestrictedUnpickler.
    """
    p = Path(path)
    data = p.read_bytes()
    if not data.startswith(b"\x93NUMPY"):
        raise ValueError(f"{p} is not a .npy file")
    major = data[6]
    if major == 1:
        hlen = int.from_bytes(data[8:10], "little")
        start = 10
    elif major in (2, 3):
        hlen = int.from_bytes(data[8:12], "little")
        start = 12
    else:
        raise ValueError(f"{p}: unsupported .npy version {major}")
    header = ast.literal_eval(data[start : start + hlen].decode("latin1"))
    payload = data[start + hlen :]
    if header.get("descr") != "|O":
        arr: np.ndarray = np.load(p, allow_pickle=False)
        return arr
    try:
        obj = restricted_loads(payload)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{p}: {exc}") from None
    except Exception as exc:
        raise ValueError(f"{p}: corrupt ground-truth pickle ({exc})") from exc
    if not isinstance(obj, np.ndarray):
        raise ValueError(f"{p}: expected a numpy array, found {type(obj).__name__}")
    return obj


def vpr_bench_positives(path: str | Path, n_queries: int, n_refs: int) -> list[np.ndarray]:
    """Positives per query from VPR-Bench ``ground_truth_new.npy``: rows
    ``[query_index, [positive reference indices]]``."""
    gt = load_object_npy(path)
    if gt.ndim != 2 or gt.shape[1] != 2:
        raise ValueError(f"{path}: expected shape (queries, 2), found {gt.shape}")
    out: list[np.ndarray | None] = [None] * n_queries
    for row in gt:
        q = int(row[0])
        if not 0 <= q < n_queries:
            raise ValueError(f"{path}: query index {q} outside 0..{n_queries - 1}")
        pos = np.asarray(row[1], dtype=np.int64).reshape(-1)
        if pos.size and (pos.min() < 0 or pos.max() >= n_refs):
            raise ValueError(f"{path}: query {q} has reference indices outside 0..{n_refs - 1}")
        out[q] = np.unique(pos)
    missing = [i for i, o in enumerate(out) if o is None]
    if missing:
        raise ValueError(f"{path}: no ground truth for queries {missing[:10]}")
    return [o if o is not None else np.zeros(0, np.int64) for o in out]
