"""The dataset catalogue: its recorded trees are those of the real data, and ``fetch``
downloads from a mirror (a local HTTP server here: there is no internet), checks every
file, and leaves nothing behind when the download is damaged."""

from __future__ import annotations

import http.server
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vpr_embedded.cli import main
from vpr_embedded.data import catalog
from vpr_embedded.data.catalog import DATASETS, DatasetError, fetch, resolve_dataset, verify


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_recorded_trees_are_the_real_data(name: str, shared_data: Path) -> None:
    verify(DATASETS[name], shared_data / name)


def _pack(src: Path, archive: Path, *, inner: str | None = None) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=inner or ".")
    return archive


@pytest.fixture()
def http_mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving tmp_path/mirror; yields (URL, folder)."""
    folder = tmp_path / "mirror"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(folder), **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    finally:
        server.shutdown()
        server.server_close()


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_fetch_over_http_checks_every_file(
    http_mirror: tuple[str, Path], shared_data: Path, tmp_path: Path
) -> None:
    url, folder = http_mirror
    _pack(shared_data / "corridor", folder / "corridor.tar.gz", inner="corridor")
    seen: list[int] = []
    out = fetch("corridor", tmp_path / "data", mirror=url, progress=lambda d, t: seen.append(d))
    assert out == tmp_path / "data" / "corridor"
    verify(DATASETS["corridor"], out)
    assert seen and seen[-1] == (folder / "corridor.tar.gz").stat().st_size
    assert _leftovers(tmp_path / "data") == ["corridor"]
    # The fetched folder is what a name resolves to, and the readers load it.
    assert resolve_dataset("corridor", tmp_path / "data") == out
    with pytest.raises(DatasetError, match="already exists"):
        fetch("corridor", tmp_path / "data", mirror=url)


def test_a_damaged_or_truncated_download_is_refused_and_leaves_nothing(
    http_mirror: tuple[str, Path], shared_data: Path, tmp_path: Path
) -> None:
    url, folder = http_mirror
    changed = tmp_path / "changed"
    changed.mkdir()
    for sub in ("ref", "query"):
        (changed / sub).mkdir()
        for p in sorted((shared_data / "gardens_point_sample" / sub).iterdir()):
            (changed / sub / p.name).write_bytes(p.read_bytes())
    (changed / "ref" / "3.jpg").write_bytes(b"\xff\xd8 not the real frame")
    _pack(changed, folder / "gardens_point_sample.tar.gz")
    data = tmp_path / "data"
    with pytest.raises(DatasetError, match="mirror's copy differs"):
        fetch("gardens_point_sample", data, mirror=url)
    assert _leftovers(data) == []

    whole = _pack(shared_data / "gardens_point_sample", tmp_path / "whole.tar.gz")
    (folder / "gardens_point_sample.tar.gz").write_bytes(whole.read_bytes()[:5000])
    with pytest.raises(DatasetError, match="not a valid archive"):
        fetch("gardens_point_sample", data, mirror=url)
    assert _leftovers(data) == []


def test_fetch_errors_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(catalog.MIRROR_ENV, raising=False)
    with pytest.raises(DatasetError, match="pass --mirror URL"):
        fetch("corridor", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset 'tokyo'"):
        fetch("tokyo", tmp_path, mirror=str(tmp_path))
    with pytest.raises(DatasetError, match="cannot download"):
        fetch("corridor", tmp_path / "d", mirror=str(tmp_path / "no-such-mirror"))
    assert _leftovers(tmp_path / "d") == []


def test_missing_data_names_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(catalog.DATA_DIR_ENV, str(tmp_path))
    assert catalog.default_data_dir() == tmp_path
    with pytest.raises(DatasetError, match=f"not in the data folder {tmp_path}.*datasets fetch"):
        resolve_dataset("nordland_part1")
    with pytest.raises(DatasetError, match="does not exist; give a folder or one of"):
        resolve_dataset(tmp_path / "nowhere")


def test_cli_fetch_from_a_folder_mirror(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _pack(shared_data / "gardens_point_sample", mirror / "gardens_point_sample.tar.gz")
    data = str(tmp_path / "data")
    argv = ["datasets", "fetch", "gardens_point_sample", "--mirror", str(mirror)]
    assert main([*argv, "--data-dir", data]) == 0
    assert main(["datasets", "verify", "gardens_point_sample", "--data-dir", data]) == 0
    assert main(["datasets", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    assert "gardens_point_sample  [present]" in out and "corridor  [missing]" in out
    assert main(["datasets", "fetch", "--data-dir", data]) == 2
    assert "needs a NAME" in capsys.readouterr().err
