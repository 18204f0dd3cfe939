"""The public datasets vpr-embedded reads, where they live, and how to fetch one.

The data folder is ``$VPR_DATA_DIR`` when set, else ``~/.local/share/vpr-embedded/data``
(``$XDG_DATA_HOME`` respected); ``--data-dir`` overrides both. In this repository the
Makefile and the tests point it at ``../shared/data``.

``fetch`` downloads ``<mirror>/<name>.tar.gz`` (http, https, file URL or a local folder),
unpacks it beside the target, and accepts it only when every file matches the recorded
tree: file count, total bytes, and the sha256 of the sorted ``path, size, sha256`` list.
The archive's own bytes are not pinned (any tar of the right tree is accepted), so a
mirror can be rebuilt from a copy of the data. Nothing is left behind on failure, and an
existing dataset folder is never touched.

No public mirror of these prepared layouts exists yet: pass ``--mirror`` or set
``VPR_DATASETS_MIRROR``. Each entry names its upstream source; those downloads have other
layouts and are not exercised here (no internet), see docs/datasets.md.

Standard library only: this module works on a core install.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vpr_embedded import progress
from vpr_embedded.settings import option

DATA_DIR_ENV = "VPR_DATA_DIR"
MIRROR_ENV = "VPR_DATASETS_MIRROR"


@dataclass(frozen=True)
class DatasetInfo:
    """One supported dataset: what it is, its layout, its source and its exact tree."""

    name: str
    title: str
    layout: str  # the reader that loads it (data/datasets.py FORMATS)
    contents: str
    citation: str
    licence: str
    upstream: str  # where the original data comes from (not exercised here)
    files: int
    bytes: int
    tree_sha256: str

    @property
    def archive(self) -> str:
        return f"{self.name}.tar.gz"


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            name="corridor",
            title="Corridor (indoor, fisheye, walked twice)",
            layout="vpr-bench",
            contents="ref/ 111 JPEG, query/ 111 JPEG (160x120), ground_truth_new.npy",
            citation='Milford, "Vision-based place recognition: how low can you go?", '
            "IJRR 32(7), 2013",
            licence="VPR-Bench code MIT; images: the original authors'",
            upstream="VPR-Bench dataset collection (https://github.com/MubarizZaffar/VPR-Bench)",
            files=224,
            bytes=1_999_337,
            tree_sha256="a68ac9c40ebf88523a562c06933fa42ed2dd5da87568cbc4dccaaa673a4d8f8d",
        ),
        DatasetInfo(
            name="gardens_point_sample",
            title="Gardens Point Walking, 10 frames, day query against night reference",
            layout="vpr-bench (implicit ground truth: query/i.jpg shows ref/i.jpg)",
            contents="ref/ 10 JPEG (640x360, night), query/ 10 JPEG (960x540, day)",
            citation="Glover, Gardens Point Walking, Zenodo record 4590133; subset as in "
            "Schubert, Neubert, Garg, Milford, Fischer, VPR tutorial (2023)",
            licence="the original authors' (Zenodo record 4590133)",
            upstream="https://doi.org/10.5281/zenodo.4590133",
            files=20,
            bytes=1_632_788,
            tree_sha256="a1bcdd653088eb60d7839a0d7717526e727edbdcb85c4bcbe5c252881bc32739",
        ),
        DatasetInfo(
            name="nordland_part1",
            title="Nordland railway, summer against winter, first half of the route",
            layout="aligned (the same file name in summer/ and winter/ is the same place)",
            contents="summer/ 1788 PNG, winter/ 1788 PNG (64x32 greyscale, every 10th frame)",
            citation="NRK footage; trimmed and downsampled as in Sunderhauf, Neubert, Protzel 2013",
            licence="CC BY 4.0 (NRK)",
            upstream="NRK Nordlandsbanen footage, as distributed for the SeqSLAM literature",
            files=3576,
            bytes=8_863_253,
            tree_sha256="ee16ec5e5e49a9770e3f07361aa6afb4bf5bd0debaa06b24b2deaababb7082d9",
        ),
    )
}


class DatasetError(ValueError):
    """A dataset is unknown, missing, or a download does not match its record."""


def default_data_dir() -> Path:
    """``$VPR_DATA_DIR``, else ``$XDG_DATA_HOME/vpr-embedded/data`` (~/.local/share)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "vpr-embedded" / "data"


def get_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def resolve_dataset(spec: str | Path, data_dir: str | Path | None = None) -> Path:
    """A dataset folder, or the name of a known dataset inside the data folder -> its path.
    A missing one raises DatasetError naming where it was looked for and how to get it."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    name = str(spec)
    if name in DATASETS:
        root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        if (root / name).is_dir():
            return root / name
        raise DatasetError(
            f"dataset {name!r} is not in the data folder {root}: set {DATA_DIR_ENV} (or "
            f"--data-dir) to the folder that holds it, or get it with "
            f"`vpr-embedded datasets fetch {name} --mirror URL`"
        )
    raise DatasetError(
        f"dataset folder {path} does not exist; give a folder or one of: {', '.join(DATASETS)}"
    )


def tree_digest(root: str | Path) -> tuple[int, int, str]:
    """(files, total bytes, sha256 of the sorted 'path<TAB>size<TAB>sha256' lines)."""
    base = Path(root)
    lines: list[str] = []
    total = 0
    for p in sorted(base.rglob("*")):
        if p.is_symlink() or not p.is_file():
            continue
        h = hashlib.sha256()
        size = 0
        with p.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
                size += len(block)
        total += size
        lines.append(f"{p.relative_to(base).as_posix()}\t{size}\t{h.hexdigest()}\n")
    lines.sort()
    return len(lines), total, hashlib.sha256("".join(lines).encode()).hexdigest()


def verify(info: DatasetInfo, root: str | Path) -> None:
    """Raise DatasetError unless ``root`` holds exactly the recorded tree of ``info``."""
    files, total, digest = tree_digest(root)
    if (files, total, digest) != (info.files, info.bytes, info.tree_sha256):
        raise DatasetError(
            f"{info.name}: the download holds {files} files, {total} bytes, tree sha256 "
            f"{digest[:16]}...; expected {info.files} files, {info.bytes} bytes, "
            f"{info.tree_sha256[:16]}...: the mirror's copy differs or is damaged"
        )


def _archive_url(mirror: str, info: DatasetInfo) -> str:
    if "://" not in mirror:  # a local folder
        return Path(mirror).expanduser().resolve().joinpath(info.archive).as_uri()
    return mirror.rstrip("/") + "/" + urllib.parse.quote(info.archive)


Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


def _download(url: str, dest: Path, progress: Progress | None) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as r, dest.open("wb") as out:
            length = r.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            done = 0
            while block := r.read(1 << 16):
                out.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, expected)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DatasetError(f"cannot download {url}: {exc}") from None
    if expected is not None and done != expected:
        raise DatasetError(f"{url}: received {done} of {expected} bytes; try again")


def fetch(
    name: str,
    data_dir: str | Path | None = None,
    *,
    mirror: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Download and verify dataset ``name`` into ``data_dir/name``; returns that folder.
    Refuses when the folder exists (verify it with ``verify`` instead)."""
    info = get_info(name)
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if not mirror:
        raise DatasetError(
            f"no mirror given for {name}: pass --mirror URL (or set {MIRROR_ENV}) to a "
            f"place that serves {info.archive}; no public mirror of the prepared layout "
            f"exists yet (upstream: {info.upstream}; docs/datasets.md)"
        )
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    target = root / name
    if target.exists():
        raise DatasetError(f"{target} already exists; remove it first to fetch {name} again")
    root.mkdir(parents=True, exist_ok=True)
    # Everything happens in a temporary folder beside the target, then one rename.
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=root))
    try:
        archive = work / info.archive
        _download(_archive_url(mirror, info), archive, progress)
        unpacked = work / "tree"
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(unpacked, filter="data")  # no absolute paths, links out
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DatasetError(
                f"{info.archive} from {mirror} is not a valid archive: {exc}"
            ) from None
        # An archive may hold the tree itself or one folder named after the dataset.
        inner = unpacked / name
        tree = inner if inner.is_dir() and len(list(unpacked.iterdir())) == 1 else unpacked
        verify(info, tree)
        tree.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def describe(data_dir: str | Path | None = None) -> str:
    """A table of the supported datasets and whether each is in the data folder."""
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    out = [f"data folder: {root} (set {DATA_DIR_ENV} or --data-dir)", ""]
    for d in DATASETS.values():
        here = "present" if (root / d.name).is_dir() else "missing"
        out += [
            f"{d.name}  [{here}]  {d.title}",
            f"    layout:   {d.layout}",
            f"    contents: {d.contents}; {d.files} files, {d.bytes / 1e6:.1f} MB",
            f"    source:   {d.citation}",
            f"    upstream: {d.upstream}",
            f"    licence:  {d.licence}",
        ]
    return "\n".join(out)


@dataclass(frozen=True)
class DatasetsConfig:
    """`vpr-embedded datasets [list|fetch|verify] [NAME]`."""

    action: Literal["list", "fetch", "verify"] = option("list", "what to do", positional=True)
    name: str | None = option(None, "dataset to fetch or verify", positional=True)
    data_dir: Path | None = option(None, f"data folder (default: ${DATA_DIR_ENV})")
    mirror: str | None = option(None, f"URL or folder serving NAME.tar.gz (${MIRROR_ENV})")


def run_datasets(cfg: DatasetsConfig) -> str:
    """The datasets command: the catalogue, or one dataset fetched or verified."""
    if cfg.action == "list":
        return describe(cfg.data_dir)
    if cfg.name is None:
        raise DatasetError(f"datasets {cfg.action} needs a NAME: one of {', '.join(DATASETS)}")
    info = get_info(cfg.name)
    if cfg.action == "verify":
        folder = resolve_dataset(cfg.name, cfg.data_dir)
        verify(info, folder)
        return f"{folder}: {info.files} files, {info.bytes} bytes, tree sha256 matches"
    with progress.bar(None, f"fetching {cfg.name}", "B") as shown:
        seen = [0]

        def report(done: int, total: int | None) -> None:
            shown.update(done - seen[0])
            seen[0] = done

        folder = fetch(cfg.name, cfg.data_dir, mirror=cfg.mirror, progress=report)
    return f"{cfg.name}: {folder} (every file checked)"
