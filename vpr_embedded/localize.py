"""Localization stage: images -> descriptors with a model bundle (or an eager model),
maps built from them, and queries answered against a map.

``open_model`` accepts a bundle folder (``model.pte`` + ``manifest.json``, the device
path) or a checkpoint / registry name (eager PyTorch, for maps built before export).
The map records the model's sha256 so that a map is never searched with descriptors
of another model.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray

from vpr_embedded.data.datasets import list_images
from vpr_embedded.data.images import ImageReadError, load_tensor, read_image, to_tensor
from vpr_embedded.maps import (
    Map,
    MapStorageName,
    PositionKind,
    append_to_map,
    build_map,
    check_destination,
    check_model_name,
    encode_names,
)
from vpr_embedded.matching import StorageName
from vpr_embedded.models.vpr import VPRModel
from vpr_embedded.preprocessing import Preprocessing
from vpr_embedded.progress import track
from vpr_embedded.sequence import DEFAULT_SEQUENCE_WINDOW, SequenceConfig, SequenceMatcher
from vpr_embedded.settings import option, required

# Column names of a positions CSV (first column: image file name).
_POSITION_COLUMNS: dict[tuple[str, str], PositionKind] = {
    ("lat", "lon"): "latlon",
    ("latitude", "longitude"): "latlon",
    ("easting", "northing"): "utm",
    ("utm_east", "utm_north"): "utm",
}


@dataclass
class DescriptorModel:
    """Something that turns images into descriptors: a bundle or an eager model."""

    name: str
    sha256: str
    descriptor_dim: int
    preprocessing: Preprocessing
    kind: Literal["bundle", "eager"]
    _bundle: Any = None
    _eager: VPRModel | None = None
    seconds_per_image: list[float] = field(default_factory=list)

    def embed_one(self, image: torch.Tensor) -> NDArray[np.float32]:
        """One preprocessed (1, 3, H, W) image -> descriptor (D,)."""
        t0 = time.perf_counter()
        if self._bundle is not None:
            out: NDArray[np.float32] = self._bundle.embed_one(image)
        else:
            assert self._eager is not None
            device = next(self._eager.parameters()).device  # CUDA on a GPU worker
            with torch.no_grad():
                out = self._eager(image.to(device))[0].cpu().numpy().astype(np.float32)
        self.seconds_per_image.append(time.perf_counter() - t0)
        return out

    def embed_file(self, path: str | Path) -> NDArray[np.float32]:
        """One image file -> descriptor (D,); ImageReadError if it cannot be read."""
        return self.embed_one(load_tensor(path, self.preprocessing).unsqueeze(0))

    def embed_paths(self, paths: Sequence[Path], desc: str = "extracting") -> NDArray[np.float32]:
        """Image files -> descriptors (N, D), with a progress bar."""
        out = np.empty((len(paths), self.descriptor_dim), np.float32)
        for i, p in enumerate(track(paths, desc, "img")):
            out[i] = self.embed_file(p)
        return out


def _state_sha256(model: VPRModel) -> str:
    """Eager models are identified by their weights (a registry name alone is not)."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def open_model(spec: str | Path, *, threads: int | None = None) -> DescriptorModel:
    """A bundle folder, a checkpoint file or a registry name -> DescriptorModel."""
    path = Path(spec)
    if path.is_dir():
        from vpr_embedded.bundle import load_bundle

        bundle = load_bundle(path, threads=threads)
        return DescriptorModel(
            name=bundle.name,
            sha256=bundle.manifest.pte_sha256,
            descriptor_dim=bundle.descriptor_dim,
            preprocessing=bundle.preprocessing,
            kind="bundle",
            _bundle=bundle,
        )
    from vpr_embedded.models.loading import load_model

    model = load_model(spec)
    if not model.head_initialised:
        raise ValueError(
            f"{spec}: this head needs data to initialise (NetVLAD centroids); pass a "
            "checkpoint or a bundle exported from one"
        )
    if threads is not None:
        torch.set_num_threads(threads)
    return DescriptorModel(
        name=model.config.name or str(spec),
        sha256=_state_sha256(model),
        descriptor_dim=model.descriptor_dim,
        preprocessing=model.preprocessing,
        kind="eager",
        _eager=model.eval(),
    )


def read_positions(
    csv_path: str | Path, image_names: Sequence[str]
) -> tuple[NDArray[np.float64], PositionKind]:
    """Positions CSV (header ``name,lat,lon`` or ``name,easting,northing``) -> one row
    per image, in the order of ``image_names``; every image needs a row."""
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"positions file {path} does not exist")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or len(rows[0]) != 3:
        raise ValueError(f"{path}: expected a header 'name,lat,lon' or 'name,easting,northing'")
    columns = (rows[0][1].strip().lower(), rows[0][2].strip().lower())
    if columns not in _POSITION_COLUMNS:
        raise ValueError(
            f"{path}: unknown position columns {columns}; use lat,lon or easting,northing"
        )
    table: dict[str, tuple[float, float]] = {}
    for line, row in enumerate(rows[1:], start=2):
        try:
            table[row[0].strip()] = (float(row[1]), float(row[2]))
        except (IndexError, ValueError) as exc:
            raise ValueError(f"{path}:{line}: expected name,number,number ({exc})") from exc
    missing = [n for n in image_names if n not in table]
    if missing:
        raise ValueError(f"{path}: no position for {len(missing)} images, e.g. {missing[:3]}")
    positions = np.array([table[n] for n in image_names], dtype=np.float64)
    return positions, _POSITION_COLUMNS[columns]


@dataclass
class Extracted:
    """Descriptors of the images that could be read, in input order, and the others."""

    descriptors: NDArray[np.float32]  # (good images, D)
    good: list[int]  # their indices in the input list
    errors: list[tuple[Path, str]]  # unreadable images and why


@dataclass(frozen=True)
class EngineConfig:
    """Where descriptors of many images are computed (build-map, append)."""

    engine: Literal["local", "ray"] = option(
        "local", "local: this process; ray: a Ray cluster (pip install 'vpr-embedded[scale]')"
    )
    address: str | None = option(
        None, "ray: the cluster's address (default: RAY_ADDRESS, else a local cluster)"
    )
    workers: int | None = option(
        None, "ray: model actors (default: one per --cpus-per-worker CPUs)", minimum=1
    )
    batch_size: int = option(32, "ray: images per batch", minimum=1)
    cpus_per_worker: float = option(1.0, "ray: CPUs (extraction threads) per actor", minimum=0.01)
    gpus_per_worker: float = option(0.0, "ray: GPUs per actor", minimum=0.0)
    on_bad_image: Literal["fail", "skip"] = option(
        "fail",
        "an image that cannot be read is reported with its path and left out of the map; "
        "fail: exit 1 at the end, skip: exit 0",
    )


@dataclass(frozen=True)
class BuildMapConfig:
    """`vpr-embedded build-map`: every image of a folder, as a map."""

    model: str = required("bundle folder, checkpoint or registry name")
    images: Path = required("folder of reference images")
    out: Path = required("map file to write (.vprmap)")
    storage: MapStorageName = option("int8", "encoding of the stored descriptors")
    pca_dim: int | None = option(None, "PCA to D dimensions", flag="--pca", metavar="D", minimum=1)
    whiten: bool = option(False, "PCA whitening")
    positions: Path | None = option(None, "CSV: name,lat,lon or name,easting,northing")
    threads: int | None = option(None, "extraction threads", minimum=0, maximum=1024)
    pq_m: int = option(64, "pq4: sub-quantizers, M / 2 bytes per place", metavar="M", minimum=2)
    ivf: int = option(
        0,
        "pq4: coarse lists (0: none; with --positions every list is stored in Z-order of "
        "position, so 1 is a full scan whose position prior reads few blocks whatever the ids)",
        metavar="LISTS",
        minimum=0,
    )
    nprobe: int = option(16, "pq4 with --ivf: lists a search scans by default", minimum=1)
    rerank: StorageName | None = option(
        None,
        "pq4: also keep these codes to re-rank a shortlist",
        choices=("float32", "float16", "int8"),
    )
    engine: EngineConfig = field(default_factory=EngineConfig)


@dataclass(frozen=True)
class AppendConfig:
    """`vpr-embedded append`: a folder of new reference images added to a map."""

    model: str = required("the model the map was built with")
    map: Path = required("map file to extend (rewritten atomically)")
    images: Path = required("folder of new reference images")
    positions: Path | None = option(None, "CSV: name,lat,lon or name,easting,northing")
    threads: int | None = option(None, "extraction threads", minimum=0, maximum=1024)
    engine: EngineConfig = field(default_factory=EngineConfig)


@dataclass(frozen=True)
class LocalizeConfig:
    """`vpr-embedded localize`: one image or a folder of frames against a map."""

    model: str = required("the model the map was built with")
    map: Path = required("map file (.vprmap)")
    image: Path | None = option(None, "one image")
    dir: Path | None = option(None, "a folder of frames, in name order")
    k: int = option(5, "places per image", minimum=1)
    sequence: int = option(0, "match over L frames", metavar="L", minimum=0)
    sequence_window: int = option(
        DEFAULT_SEQUENCE_WINDOW,
        "places the sequence scores are contrast-normalised over",
        metavar="R",
        minimum=2,
    )
    threads: int | None = option(None, "extraction and matching threads", minimum=0, maximum=1024)
    near: tuple[float, float] | None = option(
        None, "position prior: only places near X Y (with --radius)", metavar=("X", "Y")
    )
    radius: float | None = option(None, "position prior radius (metres for lat/lon maps)")
    nprobe: int = option(0, "pq4 maps with IVF: lists scanned (0: the map's default)", minimum=0)
    on_bad_image: Literal["fail", "skip"] = option(
        "fail",
        "a frame that cannot be read gets an error line either way; fail: exit 1 at the end, "
        "skip: exit 0",
    )


@dataclass(frozen=True)
class MapWritten:
    """What build-map or append wrote."""

    path: Path
    places: int
    added: int
    dim: int
    storage: str
    bytes_per_place: float
    model: str
    failed: list[tuple[Path, str]] = field(default_factory=list)  # unreadable images, why
    on_bad_image: Literal["fail", "skip"] = "fail"


def extract_descriptors(
    model: str, extractor: DescriptorModel, paths: Sequence[Path], engine: EngineConfig, desc: str
) -> Extracted:
    """Descriptors of the readable images among ``paths``, in order, on the chosen engine."""
    if engine.engine == "ray":
        from vpr_embedded.ray_engine import RayOptions, extract_on_ray

        options = RayOptions(
            address=engine.address,
            workers=engine.workers,
            batch_size=engine.batch_size,
            cpus_per_worker=engine.cpus_per_worker,
            gpus_per_worker=engine.gpus_per_worker,
        )
        return extract_on_ray(model, paths, options, desc)
    out, good, errors = [], [], []
    for i, p in enumerate(track(paths, desc, "img")):
        try:
            out.append(extractor.embed_file(p))
        except ImageReadError as exc:
            errors.append((Path(p), str(exc)))
            continue
        good.append(i)
    dim = extractor.descriptor_dim
    rows = np.stack(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)
    return Extracted(rows, good, errors)


def _no_place_left(paths: Sequence[Path], got: Extracted) -> None:
    if not got.good:
        first = f": {got.errors[0][0]}: {got.errors[0][1]}" if got.errors else ""
        raise ValueError(f"none of the {len(paths)} images could be read{first}")


def _written(
    path: Path, added: int | None, extractor: DescriptorModel, got: Extracted, engine: EngineConfig
) -> MapWritten:
    """What was written to ``path``: ``added`` places (None: all of them, a new map)."""
    m = Map.open(path)
    return MapWritten(
        path,
        m.count,
        m.count if added is None else added,
        m.dim,
        m.storage,
        m.bytes_per_place,
        extractor.name,
        got.errors,
        engine.on_bad_image,
    )


def build_map_from_images(cfg: BuildMapConfig) -> MapWritten:
    """Extract descriptors of every image of a folder and write them as a map. What would
    make the write fail (the destination, the names, the model name) is checked before
    any image is read."""
    check_destination(cfg.out)
    paths = list_images(Path(cfg.images))
    extractor = open_model(cfg.model, threads=cfg.threads)
    names = [p.name for p in paths]
    encode_names(names)
    check_model_name(extractor.name)
    positions, kind = read_positions(cfg.positions, names) if cfg.positions else (None, None)
    pq = None
    if cfg.storage == "pq4":
        from vpr_embedded.pq import PqConfig, check_config

        pq = PqConfig(m=cfg.pq_m, ivf_lists=cfg.ivf, nprobe=min(cfg.nprobe, max(cfg.ivf, 1)))
        check_config(pq, cfg.pca_dim or extractor.descriptor_dim, len(paths))
    elif cfg.rerank is not None or cfg.ivf:
        raise ValueError("--rerank and --ivf need --storage pq4")
    got = extract_descriptors(cfg.model, extractor, paths, cfg.engine, "building map")
    _no_place_left(paths, got)
    written = build_map(
        got.descriptors,
        out_path=cfg.out,
        model_sha256=extractor.sha256,
        model_name=extractor.name,
        storage=cfg.storage,
        names=[names[i] for i in got.good],
        positions=positions[got.good] if positions is not None else None,
        position_kind=kind,
        pca_dim=cfg.pca_dim,
        whiten=cfg.whiten,
        pq=pq,
        rerank=cfg.rerank,
    )
    return _written(written, None, extractor, got, cfg.engine)


def append_images(cfg: AppendConfig) -> MapWritten:
    """Add the images of a folder to an existing map (old places are not recomputed)."""
    check_destination(cfg.map)
    paths = list_images(Path(cfg.images))
    extractor = open_model(cfg.model, threads=cfg.threads)
    existing = Map.open(cfg.map, extractor.sha256)
    names = [p.name for p in paths] if existing.names is not None else None
    if names is not None:
        encode_names(names)
    positions = None
    if cfg.positions:
        positions, kind = read_positions(cfg.positions, [p.name for p in paths])
        if existing.position_kind not in (None, kind):
            raise ValueError(f"{cfg.map} holds {existing.position_kind} positions, not {kind}")
    got = extract_descriptors(cfg.model, extractor, paths, cfg.engine, "appending")
    _no_place_left(paths, got)
    del existing  # release the map before the file is replaced
    written = append_to_map(
        cfg.map,
        got.descriptors,
        [names[i] for i in got.good] if names is not None else None,
        positions[got.good] if positions is not None else None,
    )
    return _written(written, len(got.good), extractor, got, cfg.engine)


def _places(the_map: Map, ids: NDArray[np.int64], scores: NDArray[np.float32]) -> dict[str, Any]:
    """The ids/scores/names/positions fields of a frame line (schemas/localize-frame)."""
    keep = ids >= 0  # fewer places than k
    ids, scores = ids[keep], scores[keep]
    names, positions = the_map.names, the_map.positions
    return {
        "ids": [int(i) for i in ids],
        "scores": [round(float(s), 6) for s in scores],
        "names": [names[int(i)] for i in ids] if names is not None else None,
        "positions": positions[ids].tolist() if positions is not None else None,
    }


def localize(
    model: str | Path,
    map_path: str | Path,
    images: Sequence[Path],
    *,
    k: int = 5,
    sequence: int = 0,
    sequence_window: int = DEFAULT_SEQUENCE_WINDOW,
    threads: int | None = None,
    near: tuple[float, float] | None = None,
    radius: float | None = None,
    nprobe: int = 0,
) -> Iterator[dict[str, Any]]:
    """Localize image files in order, one JSON-ready line per frame
    (schemas/localize-frame.schema.json, the lines of vpr-localize), each yielded as soon
    as its frame is done. The model and the map are opened and checked here, before the
    first frame (a bad model or map raises at once); a frame that cannot be read or run
    gives an error line and the next frame goes on. With ``sequence`` L > 1 the frames
    are consecutive and each line also holds the best places over the last L frames, their
    scores contrast-normalised over ``sequence_window`` places.
    ``near`` and ``radius``: the position prior (a moving window for sequences)."""
    if k <= 0:
        raise ValueError(f"k must be >= 1, got {k}")
    if (near is None) != (radius is None):
        raise ValueError("--near X Y and --radius R go together")
    extractor = open_model(model, threads=threads)
    the_map = Map.open(map_path, extractor.sha256)
    if near is not None and the_map.positions is None:
        raise ValueError(f"{map_path} has no positions: rebuild it with --positions to use --near")
    matcher = None
    if sequence > 1:
        config = SequenceConfig(length=sequence, k=k, contrast_window=sequence_window)
        matcher = SequenceMatcher(the_map, config)
    return _frames(extractor, the_map, images, k, matcher, sequence, threads, near, radius, nprobe)


def _frames(
    extractor: DescriptorModel,
    the_map: Map,
    images: Sequence[Path],
    k: int,
    matcher: SequenceMatcher | None,
    sequence: int,
    threads: int | None,
    near: tuple[float, float] | None,
    radius: float | None,
    nprobe: int,
) -> Iterator[dict[str, Any]]:
    for number, path in enumerate(images):
        try:
            t0 = time.perf_counter()
            image = read_image(path)
            t1 = time.perf_counter()
            tensor = to_tensor(image, extractor.preprocessing).unsqueeze(0)
            t2 = time.perf_counter()
            descriptor = extractor.embed_one(tensor)
            t3 = time.perf_counter()
            found = the_map.search(
                descriptor, k, threads=threads or 0, near=near, radius=radius, nprobe=nprobe
            )
            line: dict[str, Any] = {"frame": number, "source": str(path)}
            line.update(_places(the_map, found.ids[0], found.scores[0]))
            if matcher is not None:
                seq = matcher.push(descriptor, near=near, radius=radius)
                line["sequence"] = {
                    "length": sequence,
                    "window": matcher.config.contrast_window,
                    **_places(the_map, seq.ids[0, :k], seq.scores[0, :k]),
                }
            t4 = time.perf_counter()
        except (ValueError, OSError, RuntimeError) as exc:  # this frame only
            yield {"frame": number, "source": str(path), "error": str(exc)}
            continue
        line["ms"] = {
            "decode": round((t1 - t0) * 1e3, 3),
            "preprocess": round((t2 - t1) * 1e3, 3),
            "inference": round((t3 - t2) * 1e3, 3),
            "match": round((t4 - t3) * 1e3, 3),
        }
        yield line


def run_localize(cfg: LocalizeConfig) -> Iterator[dict[str, Any]]:
    """The localize command: one image (that fails as a whole if it cannot be read) or a
    folder of frames (one line per frame, an error line for a bad one)."""
    if (cfg.image is None) == (cfg.dir is None):
        raise ValueError("give exactly one of --image FILE or --dir DIR")
    if cfg.image is not None:
        if not Path(cfg.image).is_file():
            raise FileNotFoundError(f"image {cfg.image} does not exist")
        paths = [Path(cfg.image)]
    else:
        paths = list_images(Path(str(cfg.dir)))
    lines = localize(
        cfg.model,
        cfg.map,
        paths,
        k=cfg.k,
        sequence=cfg.sequence,
        sequence_window=cfg.sequence_window,
        threads=cfg.threads,
        near=cfg.near,
        radius=cfg.radius,
        nprobe=cfg.nprobe,
    )
    if cfg.image is None:
        return lines
    line = next(lines)
    if "error" in line:
        raise ValueError(line["error"])
    return iter([line])
