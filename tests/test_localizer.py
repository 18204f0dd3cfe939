"""The Python Localizer over the C++ one: the same places as the Python path, and no torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vpr_embedded.bundle import load_bundle
from vpr_embedded.export import ExportConfig, export_bundle
from vpr_embedded.localizer import FrameError, Localization, Localizer
from vpr_embedded.maps import build_map
from vpr_embedded.models import build_model


@pytest.fixture(scope="module")
def bundle_and_map(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path
) -> tuple[Path, Path, list[Path]]:
    out = tmp_path_factory.mktemp("localizer")
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0-gem", input_size=(96, 96))
    cfg = ExportConfig(
        calib_images=shared_data / "corridor" / "ref", calib_count=8, check=False, progress=False
    )
    export_bundle(model, out / "bundle", cfg)
    b = load_bundle(out / "bundle", threads=1)
    refs = sorted((shared_data / "corridor" / "ref").glob("*.jpg"))
    the_map = build_map(
        b.embed_images(refs),
        out_path=out / "corridor.vprmap",
        model_sha256=b.manifest.pte_sha256,
        model_name=b.name,
        names=[p.name for p in refs],
    )
    queries = sorted((shared_data / "corridor" / "query").glob("*.jpg"))[::10]
    return out / "bundle", the_map, queries


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_localize_gives_the_python_paths_places(
    bundle_and_map: tuple[Path, Path, list[Path]],
) -> None:
    bundle, the_map, queries = bundle_and_map
    loc = Localizer(bundle, the_map, k=3)
    b = load_bundle(bundle, threads=1)
    assert loc.descriptor_dim == b.descriptor_dim and loc.places == 111
    for q, found in zip(queries, loc.stream(_rgb(q) for q in queries), strict=True):
        assert isinstance(found, Localization)
        python = b.embed_images([q])[0]
        ours = loc.embed(_rgb(q))
        assert float(python @ ours) > 0.9999  # same preprocessing and kernels
        from vpr_embedded.maps import Map

        want = Map.open(the_map).search(python, k=3)
        assert found.ids == want.ids[0].tolist(), q.name
        assert found.names[0] == want.names[0][0] if want.names else True
        assert found.inference_ms > 0 and found.scores == sorted(found.scores, reverse=True)


def test_bad_frames_and_arguments_are_one_clear_error(
    bundle_and_map: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    bundle, the_map, _ = bundle_and_map
    loc = Localizer(bundle, the_map)
    for frame, message in [
        (np.zeros((32, 32), np.uint8), r"\(height, width, 3\) uint8"),
        (np.zeros((32, 32, 3), np.float32), "uint8"),
        (np.zeros((0, 32, 3), np.uint8), "between 1 x 1"),
        ([[1, 2, 3]], "numpy array"),
    ]:
        with pytest.raises(ValueError, match=message):
            loc.localize(frame)  # type: ignore[arg-type]
    # In a stream, a bad frame is reported in its place and the others go on.
    good = np.zeros((40, 40, 3), np.uint8)
    out = list(
        loc.stream([good, np.zeros((32, 32), np.uint8), good, np.zeros((0, 8, 3), np.uint8)])
    )
    assert [type(r).__name__ for r in out] == [
        "Localization", "FrameError", "Localization", "FrameError"
    ]  # fmt: skip
    assert isinstance(out[1], FrameError) and out[1].frame == 1 and "uint8" in out[1].error
    assert isinstance(out[0], Localization) and isinstance(out[2], Localization)
    assert out[0].ids == out[2].ids
    with pytest.raises(ValueError, match="k must be a positive integer"):
        Localizer(bundle, the_map, k=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Localizer(bundle, tmp_path / "none.vprmap")
    other = build_map(
        np.eye(4, 1280, dtype=np.float32), out_path=tmp_path / "o.vprmap",
        model_sha256="0" * 64, model_name="other",
    )  # fmt: skip
    with pytest.raises(ValueError, match="rebuild the map with this bundle"):
        Localizer(bundle, other)


def test_the_localizer_runs_with_torch_unimportable(
    bundle_and_map: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    bundle, the_map, queries = bundle_and_map
    frames = tmp_path / "frames.npy"
    np.save(frames, np.stack([_rgb(q) for q in queries[:3]]))
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import numpy as np
        from vpr_embedded.localizer import Localizer
        loc = Localizer({str(bundle)!r}, {str(the_map)!r}, k=1)
        print([loc.localize(f).ids[0] for f in np.load({str(frames)!r})])
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    expected = [Localizer(bundle, the_map, k=1).localize(_rgb(q)).ids[0] for q in queries[:3]]
    assert r.stdout.strip() == str(expected)
