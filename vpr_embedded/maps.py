"""Map files (``.vprmap``): the Python side of csrc's map format (docs/map_format.md).

A map holds the encoded descriptors of reference places (float32, float16, int8,
binary, or pq4: product-quantized codes, ``vpr_embedded.pq``), an optional PCA
projection that queries go through, per-place names, positions and timestamps, and
the sha256 of the model bundle that made the descriptors, so a map is never searched
with the wrong model.

``build_map`` writes a map atomically (temporary file in the same folder, fsync,
``os.replace``, fsync of the folder); ``append_to_map`` adds places without
re-encoding the old ones; ``Map.open`` memory-maps a map through the C++ core,
which validates every size and offset and the CRC-32 checksums. Every refusal
(corrupt, truncated, foreign, newer or mismatched file) is a ``ValueError`` with
the fix in its message.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import secrets
import stat
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast, get_args

import numpy as np
from numpy.typing import NDArray

from vpr_embedded import _core
from vpr_embedded.matching import (
    StorageName,
    check_k,
    check_threads,
    encode,
    float_queries,
)

if TYPE_CHECKING:
    from vpr_embedded.pq import PqConfig, PqEncoding

PositionKind = Literal["latlon", "utm"]
# What a map can store: the matching storages, or PQ codes (host-trained, vpr_embedded.pq).
MapStorageName = Literal["float32", "float16", "int8", "binary", "pq4"]
MAP_STORAGES: tuple[MapStorageName, ...] = get_args(MapStorageName)
RERANK_STORAGES = ("float32", "float16", "int8")
POSITION_KINDS: tuple[PositionKind, ...] = get_args(PositionKind)

MAGIC = b"VPRMAP\r\n"
FORMAT_VERSION = 2  # written only for maps with version-2 sections (pq4); else 1
HEADER_SIZE = 320  # version 1; version 2 adds 8 section slots
HEADER_SIZE_V2 = 448
ALIGNMENT = 64
MODEL_NAME_BYTES = 64
SECTIONS = (
    "descriptors",
    "scales",
    "projection",
    "mean",
    "name_offsets",
    "name_data",
    "positions",
    "timestamps",
    # version 2
    "pq_info",
    "pq_codebooks",
    "pq_codes",
    "ivf_centroids",
    "ivf_list_blocks",
    "ivf_slot_places",
    "reserved_14",
    "reserved_15",
)
SECTIONS_V1 = 8
_PQ_INFO = struct.Struct("<IIQIIB39x")  # m, bits, blocks, nlist, nprobe, re-rank storage
_NO_RERANK = 0xFF
_STORAGE_CODE: dict[str, int] = {name: i for i, name in enumerate(MAP_STORAGES)}
_POSITION_CODE: dict[str | None, int] = {None: 0, "latlon": 1, "utm": 2}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# magic, version, header size, file size, count, dim, input dim, storage,
# position kind, flags, payload crc, header crc, reserved, sha256, model name.
_HEADER = struct.Struct("<8sIIQQIIBBHIII32s64s")
_SECTION = struct.Struct("<QQ")


@dataclass(frozen=True)
class MapSearchResult:
    """Top-k places of each query: ``ids``/``scores`` of shape (queries, k); ``names``
    (queries x k) if the map has names; ``positions`` (queries, k, 2) if it has positions."""

    ids: NDArray[np.int64]
    scores: NDArray[np.float32]
    names: list[list[str]] | None
    positions: NDArray[np.float64] | None


def _float_rows(x: object, what: str) -> NDArray[np.float32]:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array (places x dim), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{what} must be float32, got dtype {x.dtype}")
    rows = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(rows)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(rows), axis=1))[0])
        raise ValueError(f"{what}: row {bad} has a non-finite value (NaN or inf)")
    return rows


def _normalise(x: NDArray[np.float32], what: str) -> NDArray[np.float32]:
    """Unit rows, by the C++ core's normalise_rows (double sums, in order), so that the
    device's map writer (vpr::MapRecorder) writes the same bytes for the same rows."""
    zero = ~np.any(x != 0, axis=1)
    if np.any(zero):
        raise ValueError(f"{what}: row {int(np.flatnonzero(zero)[0])} is all zeros")
    return _core.normalise_rows(np.ascontiguousarray(x, dtype=np.float32))


def _project(
    x: NDArray[np.float32], matrix: NDArray[np.float32], mean: NDArray[np.float32] | None
) -> NDArray[np.float32]:
    """normalise((x - mean) @ matrix), as the C++ core projects queries."""
    centred = x - mean if mean is not None else x
    return _normalise(np.ascontiguousarray(centred @ matrix, dtype=np.float32), "projected rows")


def _check_sha256(sha: str) -> str:
    s = sha.lower() if isinstance(sha, str) else ""
    if not _SHA256.match(s):
        raise ValueError(f"model_sha256 must be 64 hex digits (the bundle's sha256), got {sha!r}")
    return s


def check_model_name(name: str) -> None:
    """Refuse a model name the map header cannot hold (at most 64 UTF-8 bytes, no NUL)."""
    _model_name_bytes(name)


def _model_name_bytes(name: str) -> bytes:
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raw = b"\0"  # not text: refused below
    if len(raw) > MODEL_NAME_BYTES or b"\0" in raw:
        raise ValueError(
            f"model_name must be at most {MODEL_NAME_BYTES} UTF-8 bytes without NUL, got {name!r}"
        )
    return raw


def encode_names(names: Sequence[str]) -> list[bytes]:
    """Place names as UTF-8. A name that is not text (a file name whose bytes are not
    UTF-8 arrives with lone surrogates) is refused with the name, before any work."""
    out = []
    for n in names:
        try:
            out.append(str(n).encode("utf-8"))
        except UnicodeEncodeError:
            raw = os.fsencode(n) if isinstance(n, str) else n
            raise ValueError(
                f"place name {raw!r} is not valid UTF-8 (a file name in another encoding?): "
                "rename the file, or pass names explicitly"
            ) from None
    return out


def check_destination(path: str | Path) -> Path:
    """Refuse, before any work, a map path that cannot be written: a folder, a name too
    long for the file system once the writer's temporary suffix is added, or a folder
    that does not exist and cannot be created, or cannot be written. Returns the file a
    write replaces (symlinks resolved)."""
    out = _map_target(path)
    if out.is_dir():
        raise ValueError(
            f"{path} is a folder: give the map's file name, e.g. {Path(path) / 'map.vprmap'}"
        )
    if out.name in ("", ".", ".."):
        raise ValueError(f"{path} is not a file name for a map")
    existing = out.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    longest = len(os.fsencode(f".{out.name}.{'0' * 16}.tmp"))  # the writer's temporary file
    if longest > name_max:
        raise ValueError(
            f"the map file name {out.name!r} is too long: at most "
            f"{name_max - longest + len(os.fsencode(out.name))} bytes here"
        )
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write a map in {existing}: no permission to write there")
    return out


def _names_sections(names: Sequence[str], count: int) -> tuple[bytes, bytes]:
    if isinstance(names, str) or len(names) != count:
        raise ValueError(f"need one name per place: got {len(names)} names for {count} places")
    encoded = encode_names(names)
    offsets = np.zeros(count + 1, dtype=np.uint64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    if offsets[-1] >= 2**32:
        raise ValueError("names take more than 4 GiB; shorten them")
    return offsets.astype("<u4").tobytes(), b"".join(encoded)


def _positions(positions: object, count: int) -> NDArray[np.float64]:
    p = np.ascontiguousarray(positions, dtype="<f8")
    if p.shape != (count, 2):
        raise ValueError(f"positions must have shape ({count}, 2), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("positions contain a non-finite value (NaN or inf)")
    return p


def _timestamps(timestamps: object, count: int) -> NDArray[np.float64]:
    t = np.ascontiguousarray(timestamps, dtype="<f8")
    if t.shape != (count,):
        raise ValueError(f"timestamps must have shape ({count},), got {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("timestamps contain a non-finite value (NaN or inf)")
    return t


@dataclass(frozen=True)
class _MapContent:
    storage: MapStorageName
    dim: int
    input_dim: int
    codes: NDArray[np.generic]
    scales: NDArray[np.float32] | None
    projection: NDArray[np.float32] | None
    mean: NDArray[np.float32] | None
    names: Sequence[str] | None
    positions: NDArray[np.float64] | None
    position_kind: PositionKind | None
    timestamps: NDArray[np.float64] | None
    model_sha256: str
    model_name: str
    count: int = -1  # places (default: rows of codes; a pq4 map may keep no codes)
    pq: PqEncoding | None = None
    rerank: StorageName | None = None  # storage of `codes` in a pq4 map


def _pq_sections(pq: PqEncoding, rerank: StorageName | None) -> list[bytes | memoryview]:
    info = _PQ_INFO.pack(
        pq.m,
        4,
        pq.blocks,
        pq.nlist,
        pq.nprobe,
        _NO_RERANK if rerank is None else _STORAGE_CODE[rerank],
    )
    out: list[bytes | memoryview] = [
        info,
        np.ascontiguousarray(pq.codebooks, dtype="<f4").tobytes(),
        np.ascontiguousarray(pq.codes, dtype=np.uint8).data,
    ]
    if pq.nlist:
        assert pq.centroids is not None and pq.list_blocks is not None
        assert pq.slot_places is not None
        out += [
            np.ascontiguousarray(pq.centroids, dtype="<f4").tobytes(),
            np.ascontiguousarray(pq.list_blocks, dtype="<u8").tobytes(),
            np.ascontiguousarray(pq.slot_places, dtype="<u4").tobytes(),
        ]
    return out


def _serialise(c: _MapContent) -> list[bytes | memoryview]:
    """Header and sections (with padding) of a map, ready to write."""
    count = int(c.codes.shape[0]) if c.count < 0 else c.count
    version2 = c.pq is not None
    header_size = HEADER_SIZE_V2 if version2 else HEADER_SIZE
    sections: list[bytes | memoryview] = [b""] * (len(SECTIONS) if version2 else SECTIONS_V1)
    if c.codes.size:
        sections[0] = np.ascontiguousarray(c.codes).reshape(-1).view(np.uint8).data
    if c.pq is not None:
        for i, data in enumerate(_pq_sections(c.pq, c.rerank)):
            sections[SECTIONS_V1 + i] = data
    if c.scales is not None:
        sections[1] = np.ascontiguousarray(c.scales, dtype="<f4").tobytes()
    if c.projection is not None:
        sections[2] = np.ascontiguousarray(c.projection, dtype="<f4").tobytes()
        if c.mean is not None:
            sections[3] = np.ascontiguousarray(c.mean, dtype="<f4").tobytes()
    if c.names is not None:
        sections[4], sections[5] = _names_sections(c.names, count)
    if c.positions is not None:
        sections[6] = c.positions.tobytes()
    if c.timestamps is not None:
        sections[7] = c.timestamps.tobytes()
    table = bytearray()
    body: list[bytes | memoryview] = []
    offset = header_size
    for data in sections:
        size = len(data) if isinstance(data, bytes) else data.nbytes
        if size == 0:  # absent (also name data when every name is empty)
            table += _SECTION.pack(0, 0)
            continue
        pad = -offset % ALIGNMENT
        if pad:
            body.append(bytes(pad))
            offset += pad
        table += _SECTION.pack(offset, size)
        body.append(data)
        offset += size
    crc = 0
    for part in body:
        crc = zlib.crc32(part, crc)

    def header(header_crc: int) -> bytes:
        fixed = _HEADER.pack(
            MAGIC,
            2 if version2 else 1,
            header_size,
            offset,
            count,
            c.dim,
            c.input_dim,
            _STORAGE_CODE[c.storage],
            _POSITION_CODE[c.position_kind],
            0,
            crc,
            header_crc,
            0,
            bytes.fromhex(c.model_sha256),
            _model_name_bytes(c.model_name),
        )
        # Slots 0-7 follow the fixed fields; 280-320 stay zero; version 2 puts 8-15 at 320.
        out = fixed + bytes(table[: SECTIONS_V1 * _SECTION.size])
        out += bytes(HEADER_SIZE - len(out))
        if version2:
            out += bytes(table[SECTIONS_V1 * _SECTION.size :])
        return out + bytes(header_size - len(out))

    head = header(zlib.crc32(header(0)))
    return [head, *body]


class MapLockedError(ValueError):
    """Another process kept the map's write lock for longer than the wait allowed."""


# How long a writer waits for another writer of the same map before giving up.
LOCK_TIMEOUT_S = 120.0


def _map_target(path: str | Path) -> Path:
    """The file a write of ``path`` replaces: symlinks resolved, so that writing through a
    link replaces its target and leaves the link in place."""
    p = Path(path)
    return Path(os.path.realpath(p)) if p.is_symlink() else p


@contextlib.contextmanager
def _write_lock(target: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the map's exclusive write lock (``.NAME.lock`` beside it; flock, so a killed
    writer releases it) from before the map is read until after it is replaced, so that
    two writers never both read the old map and one silently overwrites the other's
    places. A second writer waits up to ``timeout`` seconds, then fails with a clear
    message. While the lock is held no other writer runs, so leftover temporary files of
    writers that were killed are removed here."""
    wait = LOCK_TIMEOUT_S if timeout is None else timeout
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / f".{target.name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise MapLockedError(
                        f"{target}: another process has been writing this map for over "
                        f"{wait:g} s (lock {lock_path}); wait for it to finish, then retry"
                    ) from None
                time.sleep(0.05)
        for stale in folder.glob(f".{glob.escape(target.name)}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        yield
    finally:
        os.close(fd)  # releases the flock


def _write_atomic(path: Path, parts: Sequence[bytes | memoryview]) -> None:
    """Write parts to path so a crash leaves either the old file or the new one. The caller
    holds the write lock. A new file gets mode 0666 & ~umask, as any file a user creates;
    a replaced file keeps its mode."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        old_mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        old_mode = None
    tmp = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # O_EXCL on a random name: never another file; 0o666 lets the kernel apply the umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if old_mode is not None:
                os.fchmod(f.fileno(), old_mode)
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def build_map(
    descriptors: NDArray[np.float32],
    *,
    out_path: str | Path,
    model_sha256: str,
    model_name: str,
    storage: MapStorageName = "int8",
    names: Sequence[str] | None = None,
    positions: NDArray[np.float64] | None = None,
    position_kind: PositionKind | None = None,
    timestamps: NDArray[np.float64] | None = None,
    pca_dim: int | None = None,
    whiten: bool = False,
    pq: PqConfig | PqEncoding | None = None,
    rerank: StorageName | None = None,
) -> Path:
    """Write a map of ``descriptors`` (places x model dim, float32) to ``out_path``.

    Rows are L2-normalised. With ``pca_dim`` and/or ``whiten`` a PCA is fitted on the
    descriptors and stored in the map, and the stored rows are the projected,
    renormalised descriptors; queries are projected by the C++ core.
    ``positions`` (places x 2, float64) need ``position_kind`` ("latlon" or "utm");
    ``timestamps`` are float64 seconds. ``storage="pq4"`` trains product-quantized codes
    (``pq``, a ``vpr_embedded.pq.PqConfig``; host only: scikit-learn) and keeps, with
    ``rerank``, the codes of that storage too, to re-rank a shortlist exactly. Returns the
    path written.
    """
    if storage not in MAP_STORAGES:
        raise ValueError(f"unknown storage {storage!r}; use one of: {', '.join(MAP_STORAGES)}")
    if storage != "pq4" and (pq is not None or rerank is not None):
        raise ValueError("PQ settings and re-rank codes need storage='pq4'")
    if rerank is not None and rerank not in RERANK_STORAGES:
        raise ValueError(f"re-rank codes must be one of {RERANK_STORAGES}, got {rerank!r}")
    check_destination(out_path)
    _model_name_bytes(model_name)
    rows = _normalise(_float_rows(descriptors, "descriptors"), "descriptors")
    count, input_dim = rows.shape
    projection: NDArray[np.float32] | None = None
    mean: NDArray[np.float32] | None = None
    if pca_dim is not None or whiten:
        projection, mean = fit_pca(rows, pca_dim, whiten=whiten)
        rows = _project(rows, projection, mean)
    # Checked before any PQ training (minutes on a big map), and used to order its lists.
    if (positions is None) != (position_kind is None):
        raise ValueError("positions and position_kind ('latlon' or 'utm') go together")
    if position_kind is not None and position_kind not in POSITION_KINDS:
        raise ValueError(f"position_kind must be one of {POSITION_KINDS}, got {position_kind!r}")
    checked_positions = _positions(positions, count) if positions is not None else None
    encoding: PqEncoding | None = None
    if storage == "pq4":
        from vpr_embedded.pq import (  # host only (sklearn)
            PqConfig,
            PqEncoding,
            check_config,
            check_encoding,
            order_lists_by_position,
            train_pq,
        )

        if isinstance(pq, PqEncoding):  # trained already (benchmarks: one training, many maps)
            # Checked before writing: the reader would refuse the map ("PQ block count").
            check_encoding(pq, int(rows.shape[1]), count)
            encoding = pq
        else:
            pq_cfg = pq if pq is not None else PqConfig()
            check_config(pq_cfg, int(rows.shape[1]), count)
            encoding = train_pq(rows, pq_cfg)
        if checked_positions is not None:
            # The position prior reads the places inside a radius block by block: lists in
            # Z-order of position keep those places in few blocks (results do not change).
            encoding = order_lists_by_position(encoding, checked_positions)
        if rerank is not None:
            codes, scales = encode(rows, rerank)
        else:
            codes, scales = np.zeros((0, 0), dtype=np.uint8), None
    else:
        codes, scales = encode(rows, storage)
    content = _MapContent(
        storage=storage,
        dim=int(rows.shape[1]),
        input_dim=int(input_dim),
        codes=codes,
        scales=scales,
        projection=projection,
        mean=mean,
        names=list(names) if names is not None else None,
        positions=checked_positions,
        position_kind=position_kind,
        timestamps=_timestamps(timestamps, count) if timestamps is not None else None,
        model_sha256=_check_sha256(model_sha256),
        model_name=model_name,
        count=count,
        pq=encoding,
        rerank=rerank,
    )
    out = _map_target(out_path)
    parts = _serialise(content)
    with _write_lock(out):
        _write_atomic(out, parts)
    return Path(out_path)


def fit_pca(
    rows: NDArray[np.float32], dim: int | None, *, whiten: bool = False
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """PCA of ``rows`` as (matrix in_dim x dim, mean): ``project = (x - mean) @ matrix``;
    with ``whiten`` each component is divided by its standard deviation.

    Centring plus numpy's SVD (LAPACK), the computation scikit-learn's full-solver PCA
    runs, so that a map with a projection can be built on a core install (a Raspberry Pi)
    without scikit-learn. Each component's sign is fixed (its largest entry positive) so
    the same rows always give the same matrix."""
    n, d = rows.shape
    k = min(n, d) if dim is None else dim
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= min(n, d):
        raise ValueError(
            f"pca_dim must be an integer in [1, min(places, dim) = {min(n, d)}], got {dim!r}"
        )
    x = rows.astype(np.float64)
    mean = x.mean(axis=0)
    _, singular, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = vt[:k]
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    matrix = (components * np.where(signs == 0, 1.0, signs)[:, None]).T.copy()
    if whiten:
        variance = singular[:k] ** 2 / max(n - 1, 1)
        matrix /= np.sqrt(np.maximum(variance, 1e-12))[None, :]
    return (
        np.ascontiguousarray(matrix, dtype=np.float32),
        np.ascontiguousarray(mean, dtype=np.float32),
    )


# Maps up to this many bytes are read into memory, not memory-mapped (see Map.open).
COPY_LIMIT_BYTES: int = _core.MAP_COPY_LIMIT_BYTES


def _open_core(path: Path, verify_checksum: bool, copy_limit_bytes: int) -> _core.MapFile:
    if not path.exists():
        raise FileNotFoundError(f"map {path} does not exist")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file (a map is a .vprmap file)")
    if isinstance(copy_limit_bytes, bool) or not isinstance(copy_limit_bytes, int | np.integer):
        raise ValueError(f"copy_limit_bytes must be an integer >= 0, got {copy_limit_bytes!r}")
    if copy_limit_bytes < 0:
        raise ValueError(f"copy_limit_bytes must be >= 0, got {copy_limit_bytes}")
    try:
        return _core.MapFile(str(path), verify_checksum, min(int(copy_limit_bytes), 2**63))
    except RuntimeError as e:  # the C++ core's refusal of a bad file
        raise ValueError(str(e)) from None


class Map:
    """An open map file, searched by the C++ core without copying descriptors.

    A map of at most ``copy_limit_bytes`` (default 64 MiB) is read into memory this reader
    owns, so a writer that overwrites the file in place (``cp new.vprmap map.vprmap``)
    cannot change or truncate it under a running search. Larger maps are memory-mapped:
    replace them (write a new file and rename it over the old one, as every vpr-embedded
    writer does), never overwrite them in place, or a reader dies of SIGBUS
    (docs/map_format.md)."""

    def __init__(self, core: _core.MapFile, path: Path) -> None:
        self._core = core
        self._path = path
        self._names: list[str] | None = None
        self._pq_info: dict[str, object] | None = None

    @classmethod
    def open(
        cls,
        path: str | Path,
        expected_model_sha256: str | None = None,
        *,
        expected_descriptor_dim: int | None = None,
        verify_checksum: bool = True,
        copy_limit_bytes: int = COPY_LIMIT_BYTES,
    ) -> Map:
        """Open and validate a map. With ``expected_model_sha256`` (the bundle's sha256)
        or ``expected_descriptor_dim``, a map built with another model is refused. Maps of
        at most ``copy_limit_bytes`` are read into memory, larger ones memory-mapped
        (0: always map)."""
        p = Path(path)
        core = _open_core(p, verify_checksum, copy_limit_bytes)
        m = cls(core, p)
        built = f"model {m.model_name!r} (sha256 {m.model_sha256}, descriptor dim {m.input_dim})"
        if expected_model_sha256 is not None:
            want = expected_model_sha256.lower()
            if want != m.model_sha256:
                raise ValueError(
                    f"{p} was built with {built}, not with the model of sha256 {want}: "
                    "rebuild the map with this model, or use the model it was built with"
                )
        if expected_descriptor_dim is not None and expected_descriptor_dim != m.input_dim:
            raise ValueError(
                f"{p} was built with {built}, but the model gives descriptors of dimension "
                f"{expected_descriptor_dim}: rebuild the map with this model"
            )
        return m

    @property
    def memory_mapped(self) -> bool:
        """True when the file is memory-mapped, False when it was read into memory."""
        return self._core.memory_mapped

    @property
    def path(self) -> Path:
        return self._path

    @property
    def count(self) -> int:
        return int(self._core.count)

    def __len__(self) -> int:
        return self.count

    @property
    def dim(self) -> int:
        """Dimension of the stored descriptors (after the projection, if any)."""
        return int(self._core.dim)

    @property
    def input_dim(self) -> int:
        """Dimension of the model's descriptors, i.e. of the queries."""
        return int(self._core.input_dim)

    @property
    def storage(self) -> MapStorageName:
        return cast(MapStorageName, self._core.storage)

    @property
    def pq_info(self) -> dict[str, object] | None:
        """pq4 maps: sub-quantizers ``m``, ``code_bytes``, IVF ``nlist`` and default
        ``nprobe``, and the ``rerank`` storage (None without re-rank codes)."""
        if self._pq_info is None:
            info = self._core.pq_info
            self._pq_info = {} if info is None else dict(info)
        return self._pq_info or None

    def places_near(self, x: float, y: float, radius: float) -> NDArray[np.uint32]:
        """Ids of the places stored within ``radius`` of (x, y) (metres for latlon maps,
        the positions' unit otherwise), sorted."""
        return np.asarray(self._core.places_near(float(x), float(y), float(radius)))

    @property
    def format_version(self) -> int:
        return int(self._core.format_version)

    @property
    def model_sha256(self) -> str:
        return str(self._core.model_sha256)

    @property
    def model_name(self) -> str:
        return str(self._core.model_name)

    @property
    def nbytes(self) -> int:
        """Size of the map file in bytes."""
        return int(self._core.nbytes)

    @property
    def bytes_per_place(self) -> float:
        return self.nbytes / self.count

    @property
    def names(self) -> list[str] | None:
        if self._names is None:
            self._names = self._core.names
        return self._names

    @property
    def positions(self) -> NDArray[np.float64] | None:
        """(places, 2) float64, read-only view into the file; None if absent."""
        return self._core.positions

    @property
    def position_kind(self) -> PositionKind | None:
        kind = str(self._core.position_kind)
        return None if kind == "none" else cast(PositionKind, kind)

    @property
    def timestamps(self) -> NDArray[np.float64] | None:
        return self._core.timestamps

    @property
    def codes(self) -> NDArray[np.generic]:
        """Encoded descriptors, a read-only view into the file."""
        return self._core.codes

    @property
    def scales(self) -> NDArray[np.float32] | None:
        return self._core.scales

    @property
    def projection(self) -> NDArray[np.float32] | None:
        return self._core.projection

    @property
    def projection_mean(self) -> NDArray[np.float32] | None:
        return self._core.projection_mean

    def __repr__(self) -> str:
        return (
            f"Map({str(self._path)!r}, count={self.count}, dim={self.dim}, "
            f"storage={self.storage!r}, model={self.model_name!r})"
        )

    def search(
        self,
        query_descriptors: NDArray[np.float32],
        k: int = 5,
        *,
        threads: int = 0,
        shortlist: int = 0,
        near: tuple[float, float] | None = None,
        radius: float | None = None,
        nprobe: int = 0,
    ) -> MapSearchResult:
        """Top-``k`` places of each query (raw model descriptors; the map's projection is
        applied by the C++ core).

        ``near=(x, y)`` with ``radius``: the position prior, only places stored within the
        radius take part (fewer than k results, or none, when few lie inside).
        pq4 maps: ``nprobe`` IVF lists are scanned (0: the map's default) and, with
        re-rank codes, a ``shortlist`` of PQ candidates (0: the default) is re-ranked
        exactly. Other maps store one encoding, so ``shortlist`` is refused."""
        k = check_k(k)
        threads = check_threads(threads)
        info = self.pq_info
        if shortlist and (info is None or info["rerank"] is None):
            raise ValueError(
                "this map stores one encoding, so it cannot re-rank a shortlist: search with "
                "shortlist=0, or build a pq4 map with re-rank codes (--rerank int8)"
            )
        if shortlist < 0 or nprobe < 0:
            raise ValueError("shortlist and nprobe must be >= 0")
        if nprobe and (info is None or not info["nlist"]):
            raise ValueError("nprobe needs a pq4 map with IVF lists (build-map --ivf LISTS)")
        if (near is None) != (radius is None):
            raise ValueError("near=(x, y) and radius go together")
        if near is not None and self.positions is None:
            raise ValueError(
                f"{self._path} has no positions: rebuild it with --positions to use --near"
            )
        queries = float_queries(query_descriptors, "query_descriptors")
        q = queries.reshape(1, -1) if queries.ndim == 1 else queries
        if q.ndim != 2 or q.shape[1] != self.input_dim:
            raise ValueError(
                f"queries have shape {query_descriptors.shape}, but this map was built with "
                f"model {self.model_name!r} of descriptor dimension {self.input_dim}"
            )
        ids, scores = self._core.search(
            q,
            int(k),
            int(threads),
            None if near is None else (float(near[0]), float(near[1])),
            None if radius is None else float(radius),
            int(nprobe),
            int(shortlist),
        )
        names = self.names
        found_names = [[names[i] for i in row] for row in ids.tolist()] if names else None
        pos = self.positions
        return MapSearchResult(
            ids=ids,
            scores=scores,
            names=found_names,
            positions=pos[ids] if pos is not None else None,
        )


def append_to_map(
    path: str | Path,
    descriptors: NDArray[np.float32],
    names: Sequence[str] | None = None,
    positions: NDArray[np.float64] | None = None,
    timestamps: NDArray[np.float64] | None = None,
    *,
    out_path: str | Path | None = None,
) -> Path:
    """Add places to a map without re-encoding the existing ones: new descriptors (raw
    model descriptors) go through the stored projection, are encoded and appended; the
    map is rewritten atomically (to ``out_path`` if given). Names, positions and
    timestamps must be given exactly when the map has them. The map's write lock is held
    from reading the old map to replacing it (a second writer waits)."""
    source = _map_target(path)
    out = check_destination(out_path) if out_path is not None else check_destination(source)
    with _write_lock(out):
        _append_locked(source, out, descriptors, names, positions, timestamps)
    return Path(out_path) if out_path is not None else Path(path)


def _append_locked(
    source: Path,
    out: Path,
    descriptors: NDArray[np.float32],
    names: Sequence[str] | None,
    positions: NDArray[np.float64] | None,
    timestamps: NDArray[np.float64] | None,
) -> None:
    m = Map.open(source)
    if m.storage == "pq4":
        raise ValueError(
            f"{m.path} is a pq4 map: its codebooks were trained on its places, so new places "
            "are not appended to it; rebuild the map with every image (build-map)"
        )
    rows = _normalise(_float_rows(descriptors, "descriptors"), "descriptors")
    n_new = rows.shape[0]
    if rows.shape[1] != m.input_dim:
        raise ValueError(
            f"new descriptors have dimension {rows.shape[1]}, but {m.path} was built with model "
            f"{m.model_name!r} of descriptor dimension {m.input_dim}"
        )
    for what, old, new in (
        ("names", m.names, names),
        ("positions", m.positions, positions),
        ("timestamps", m.timestamps, timestamps),
    ):
        if (old is None) != (new is None):
            has = "has" if old is not None else "has no"
            raise ValueError(f"{m.path} {has} {what}: pass {what} for the new places accordingly")
    projection = None if m.projection is None else np.array(m.projection)
    mean = None if m.projection_mean is None else np.array(m.projection_mean)
    if projection is not None:
        rows = _project(rows, projection, mean)
    codes, scales = encode(rows, m.storage)
    old_scales = m.scales
    all_names = None
    if m.names is not None and names is not None:
        if isinstance(names, str) or len(names) != n_new:
            raise ValueError(f"need one name per new place: got {len(names)} for {n_new}")
        all_names = [*m.names, *names]
    old_pos, old_ts = m.positions, m.timestamps
    content = _MapContent(
        storage=m.storage,
        dim=m.dim,
        input_dim=m.input_dim,
        codes=np.concatenate([m.codes, codes]),
        scales=(
            np.concatenate([old_scales, scales])
            if old_scales is not None and scales is not None
            else None
        ),
        projection=projection,
        mean=mean,
        names=all_names,
        positions=(
            np.concatenate([old_pos, _positions(positions, n_new)]) if old_pos is not None else None
        ),
        position_kind=m.position_kind,
        timestamps=(
            np.concatenate([old_ts, _timestamps(timestamps, n_new)]) if old_ts is not None else None
        ),
        model_sha256=m.model_sha256,
        model_name=m.model_name,
    )
    parts = _serialise(content)
    del m
    _write_atomic(out, parts)
