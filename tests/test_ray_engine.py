"""build-map and append with --engine ray (vpr_embedded/ray_engine.py) on a local Ray
cluster of 2 CPUs: the same map as one process, bit for bit, also when a worker dies
midway; unreadable images reported and left out; no half-written map; a clear error
without Ray."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from vpr_embedded.export import ExportConfig, export_bundle
from vpr_embedded.localize import (
    AppendConfig,
    BuildMapConfig,
    EngineConfig,
    append_images,
    build_map_from_images,
)
from vpr_embedded.maps import Map
from vpr_embedded.models.zoo import load_zoo_model
from vpr_embedded.ray_engine import KILL_ONE_WORKER_ENV

RAY = EngineConfig(engine="ray", workers=2, batch_size=32)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs for this module (the build connects to it)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def bundle(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zoo's nordland model as an int8 bundle: integer arithmetic, so one process and
    the cluster must give the same bits."""
    out = tmp_path_factory.mktemp("ray") / "bundle"
    cfg = ExportConfig(quantize="int8", calib_images=shared_data / "nordland_part1" / "summer",
                       calib_count=8, check=False, progress=False)  # fmt: skip
    export_bundle(load_zoo_model("zoo:nordland-lite0-gem"), out, cfg)
    return out


@pytest.fixture(scope="module")
def summer(shared_data: Path) -> Path:
    folder = shared_data / "nordland_part1" / "summer"
    assert len(list(folder.glob("*.png"))) == 1788
    return folder


@pytest.fixture(scope="module")
def local_map(bundle: Path, summer: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "summer.vprmap"
    build_map_from_images(BuildMapConfig(model=str(bundle), images=summer, out=out))
    return out


def test_ray_map_of_nordland_summer_equals_one_process(
    cluster: None, bundle: Path, summer: Path, local_map: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ray.vprmap"
    written = build_map_from_images(
        BuildMapConfig(model=str(bundle), images=summer, out=out, engine=RAY)
    )
    assert written.places == 1788 and written.failed == []
    assert out.read_bytes() == local_map.read_bytes()  # same descriptors, same order


def test_ray_build_survives_a_worker_killed_midway(
    cluster: None,
    bundle: Path,
    summer: Path,
    local_map: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One actor exits in the middle of a batch (the test hook); Ray restarts it and runs
    the batch again, and the map is still complete and the same."""
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_ONE_WORKER_ENV, str(marker))
    out = tmp_path / "ray.vprmap"
    written = build_map_from_images(
        BuildMapConfig(model=str(bundle), images=summer, out=out, engine=RAY)
    )
    assert marker.exists()  # a worker really died
    assert written.places == 1788
    assert out.read_bytes() == local_map.read_bytes()


def _small_folder(summer: Path, folder: Path, count: int, start: int = 0) -> list[Path]:
    folder.mkdir()
    picked = sorted(summer.glob("*.png"))[start : start + count]
    for p in picked:
        shutil.copy(p, folder / p.name)
    return picked


def test_ray_reports_unreadable_images_and_leaves_them_out(
    cluster: None, bundle: Path, summer: Path, tmp_path: Path
) -> None:
    """A truncated and a garbage image: each reported with its path, the rest mapped,
    as the local engine does; the CLI exits 1, or 0 with --on-bad-image skip."""
    folder = tmp_path / "imgs"
    good = _small_folder(summer, folder, 40)
    cut = good[5].read_bytes()
    (folder / "00000005x.png").write_bytes(cut[: len(cut) // 2])  # truncated
    (folder / "zz-garbage.png").write_bytes(b"not a png at all")
    maps = {}
    for engine in (EngineConfig(), RAY):
        out = tmp_path / f"{engine.engine}.vprmap"
        written = build_map_from_images(
            BuildMapConfig(model=str(bundle), images=folder, out=out, engine=engine)
        )
        assert sorted(p.name for p, _ in written.failed) == ["00000005x.png", "zz-garbage.png"]
        assert all(why for _, why in written.failed)
        assert written.places == 40
        maps[engine.engine] = out
        assert Map.open(out).names == [p.name for p in good]
    assert maps["ray"].read_bytes() == maps["local"].read_bytes()
    cli = [sys.executable, "-m", "vpr_embedded.cli", "build-map", "--model", str(bundle),
           "--images", str(folder), "--engine", "ray", "--workers", "1"]  # fmt: skip
    # The CLI joins this module's cluster, as a user's job joins theirs (RAY_ADDRESS).
    env = dict(os.environ, RAY_ADDRESS=ray.get_runtime_context().gcs_address)
    fail = subprocess.run([*cli, "--out", str(tmp_path / "f.vprmap")], capture_output=True,
                          text=True, timeout=600, env=env, check=False)  # fmt: skip
    assert fail.returncode == 1, fail.stderr
    assert "zz-garbage.png" in fail.stderr and "2 of 42 images could not be read" in fail.stderr
    assert Map.open(tmp_path / "f.vprmap").count == 40
    skip = subprocess.run([*cli, "--out", str(tmp_path / "s.vprmap"), "--on-bad-image", "skip"],
                          capture_output=True, text=True, timeout=600, env=env,
                          check=False)  # fmt: skip
    assert skip.returncode == 0, skip.stderr


def test_ray_append_equals_local_append(
    cluster: None, bundle: Path, summer: Path, tmp_path: Path
) -> None:
    first = _small_folder(summer, tmp_path / "first", 30)
    _small_folder(summer, tmp_path / "more", 25, start=30)
    maps = {}
    for engine in (EngineConfig(), RAY):
        out = tmp_path / f"{engine.engine}.vprmap"
        build_map_from_images(BuildMapConfig(model=str(bundle), images=tmp_path / "first", out=out))
        written = append_images(
            AppendConfig(model=str(bundle), map=out, images=tmp_path / "more", engine=engine)
        )
        assert written.added == 25 and written.places == 55
        maps[engine.engine] = out
    assert maps["ray"].read_bytes() == maps["local"].read_bytes()
    assert Map.open(maps["ray"]).names[:30] == [p.name for p in first]


def test_interrupted_ray_build_leaves_no_map(bundle: Path, summer: Path, tmp_path: Path) -> None:
    """Ctrl-C midway through a cluster build: no map, no temporary file."""
    out = tmp_path / "cut.vprmap"
    cmd = [sys.executable, "-m", "vpr_embedded.cli", "build-map", "--model", str(bundle),
           "--images", str(summer), "--out", str(out), "--engine", "ray", "--workers", "1",
           "--batch-size", "8"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a cluster of its own
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    assert p.stderr is not None
    seen = ""
    deadline = time.monotonic() + 300
    done = re.compile(r"\| *([1-9][0-9]*)/1788 ")  # the bar has counted some images
    while not done.search(seen):
        chunk = p.stderr.read(32)
        assert chunk and time.monotonic() < deadline, seen
        seen += chunk
    p.send_signal(signal.SIGINT)
    _, rest = p.communicate(timeout=120)
    assert p.returncode == 130, seen + rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert not out.exists()
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith((".cut", "cut"))] == []


def test_engine_ray_without_ray_names_the_extra(tmp_path: Path, summer: Path) -> None:
    """Without Ray installed (its import blocked here), one line naming the extra."""
    code = (
        "import sys; sys.modules['ray'] = None; from vpr_embedded import cli; "
        f"sys.exit(cli.main(['build-map', '--model', 'efficientnet_lite0-gem', '--images', "
        f"{str(summer)!r}, '--out', {str(tmp_path / 'x.vprmap')!r}, '--engine', 'ray']))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       check=False)  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "pip install 'vpr-embedded[scale]'" in p.stderr
    assert not (tmp_path / "x.vprmap").exists()
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_workers_that_cannot_load_the_model_fail_the_build_in_one_error(
    cluster: None, summer: Path, tmp_path: Path
) -> None:
    """A model the workers cannot load (here: a folder no node has) ends the build with a
    RayBuildError saying what Ray reported, instead of hanging or writing a map."""
    from vpr_embedded.ray_engine import RayBuildError, RayOptions, extract_on_ray

    paths = sorted(summer.glob("*.png"))[:8]
    with pytest.raises(RayBuildError, match="every node has the package, the model"):
        extract_on_ray(str(tmp_path / "no-such-bundle"), paths, RayOptions(workers=1))
