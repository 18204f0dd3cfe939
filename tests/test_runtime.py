"""The C++ localizer (csrc/runtime, built by scripts/test_runtime.sh) against Python:
preprocessing, descriptors and top-k, on the host and for aarch64 under qemu."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import bt601_rgb, bt601_yuv, i420_to_nv12, i420_to_rgb, rgb_to_i420
from conftest import frame_lines as _lines
from PIL import Image

from vpr_embedded.bundle import load_bundle, read_manifest
from vpr_embedded.data.images import load_tensor, read_image, to_tensor
from vpr_embedded.export import ExportConfig, export_bundle
from vpr_embedded.matching import Index
from vpr_embedded.models import build_model

REPO = Path(__file__).resolve().parents[1]
HOST_BIN = Path(
    os.environ.get("VPR_LOCALIZE", REPO / "build/runtime-host/csrc/runtime/vpr-localize")
)
ARM_BIN = REPO / "build/runtime-aarch64/csrc/runtime/vpr-localize"
ARM_LIB = REPO / "build/wheels-aarch64/executorch-1.5.1/executorch/lib"
QEMU = shutil.which("qemu-aarch64-static")
SIZE = (96, 96)


@pytest.fixture(scope="session")
def host_built() -> None:
    """The C++ localizer is a prerequisite of these tests: missing, they fail (the test
    command builds it first), they never skip."""
    if not HOST_BIN.is_file():
        pytest.fail(f"{HOST_BIN} is not built: run scripts/test_runtime.sh (make test does)")


needs_host = pytest.mark.usefixtures("host_built")


def _arm_ready() -> str | None:
    if not ARM_BIN.is_file():
        return f"{ARM_BIN} not built: run scripts/test_runtime.sh"
    if QEMU is None:
        return "qemu-aarch64-static is not installed"
    return None


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, host_built: None) -> Path:
    out = tmp_path_factory.mktemp("rt") / "int8"
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0-gem", input_size=SIZE)
    cfg = ExportConfig(
        quantize="int8",
        calib_images=shared_data / "corridor" / "ref",
        calib_count=8,
        check=False,
        progress=False,
    )
    export_bundle(model, out, cfg)
    return out


@pytest.fixture(scope="module")
def images(shared_data: Path) -> dict[str, list[Path]]:
    c = shared_data / "corridor"
    refs = sorted((c / "ref").glob("*.jpg"))[::4]
    queries = sorted((c / "query").glob("*.jpg"))[1::12]
    return {"refs": refs, "queries": queries}


def _run(
    cmd: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None
) -> list[dict[str, Any]]:
    """Run vpr-localize, which must succeed; its frame lines, each checked against
    schemas/localize-frame.schema.json."""
    p = subprocess.run(cmd, capture_output=True, env=env, input=stdin, timeout=600, check=False)
    assert p.returncode == 0, p.stderr.decode()
    return _lines(p.stdout.decode())


def _refused(cmd: list[str]) -> str:
    """Run a command that must fail with exit status 1; its stderr."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    return p.stderr


def _host(*args: str) -> list[str]:
    return [str(HOST_BIN), *args]


def _arm(*args: str) -> tuple[list[str], dict[str, str]]:
    assert QEMU is not None
    env = dict(os.environ, QEMU_LD_PREFIX="/usr/aarch64-linux-gnu", LD_LIBRARY_PATH=str(ARM_LIB))
    cmd = [QEMU, "-L", "/usr/aarch64-linux-gnu", "-cpu", "cortex-a76", str(ARM_BIN), *args]
    return cmd, env


def _descriptors(path: Path, dim: int) -> np.ndarray:
    return np.fromfile(path, dtype=np.float32).reshape(-1, dim)


@needs_host
def test_preprocessing_equals_python(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """Same RGB pixels (PIL-decoded, written as PPM) -> bit-identical input tensors;
    also a downscale (antialiased in PIL) of a large Gardens Point image."""
    man = read_manifest(bundle)
    gardens = images["refs"][0].parents[2] / "gardens_point_sample" / "query" / "0.jpg"
    srcs = [*images["queries"][:3], gardens]  # 960x540: an antialiased downscale
    srcs = [p for p in srcs if p.is_file()]
    ppms = []
    for i, p in enumerate(srcs):
        q = tmp_path / f"{i}.ppm"
        read_image(p).save(q)
        ppms.append(q)
    out = tmp_path / "inputs.f32"
    _run(_host("--bundle", str(bundle), "--inputs-out", str(out), *map(str, ppms)))
    got = np.fromfile(out, np.float32).reshape(len(ppms), 3, *SIZE)
    for i, q in enumerate(ppms):
        ref = to_tensor(Image.open(q), man.preprocessing).numpy()
        np.testing.assert_array_equal(got[i], ref)


@needs_host
@pytest.mark.parametrize(
    "variant", ["corridor", "subsampling_444", "progressive", "greyscale", "large_420"]
)
def test_jpeg_decodes_to_pillows_pixels(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path, variant: str
) -> None:
    """libjpeg-turbo with Pillow's settings: the same pixels, so bit-identical inputs (stb
    decoded JPEG differently: mean differences of ~1 grey level, cosine 0.995)."""
    man = read_manifest(bundle)
    if variant == "corridor":
        srcs = images["queries"][:6]  # the real files as they are
    else:
        src = images["refs"][0].parents[2] / "gardens_point_sample" / "query" / "0.jpg"
        im = Image.open(src).convert("RGB")
        out = tmp_path / f"{variant}.jpg"
        if variant == "subsampling_444":
            im.save(out, quality=90, subsampling=0)
        elif variant == "progressive":
            im.save(out, quality=85, progressive=True)
        elif variant == "greyscale":
            im.convert("L").save(out, quality=85)
        else:
            im.resize((1920, 1080)).save(out, quality=80, subsampling=2)
        srcs = [out]
    inputs = tmp_path / "inputs.f32"
    _run(_host("--bundle", str(bundle), "--inputs-out", str(inputs), *map(str, srcs)))
    got = np.fromfile(inputs, np.float32).reshape(len(srcs), 3, *SIZE)
    for i, p in enumerate(srcs):
        np.testing.assert_array_equal(got[i], load_tensor(p, man.preprocessing).numpy())


@needs_host
def test_descriptors_and_topk_equal_python(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    from vpr_embedded.maps import build_map

    man = read_manifest(bundle)
    b = load_bundle(bundle, threads=1)
    refs, queries = images["refs"], images["queries"]
    # Python: PIL decode + executorch.runtime
    py_ref = b.embed_images(refs)
    py_q = b.embed_images(queries)
    map_path = build_map(
        py_ref,
        out_path=tmp_path / "corridor.vprmap",
        model_sha256=man.pte_sha256,
        model_name=man.model_name,
        storage="float32",
        names=[p.name for p in refs],
    )
    # C++ on PPMs holding PIL's pixels: the descriptors equal Python's
    ppms = []
    for i, p in enumerate(queries):
        ppm = tmp_path / f"q{i}.ppm"
        read_image(p).save(ppm)
        ppms.append(ppm)
    dfile = tmp_path / "d.f32"
    lines = _run(
        _host(
            "--bundle",
            str(bundle),
            "--map",
            str(map_path),
            "--k",
            "3",
            "--descriptors-out",
            str(dfile),
            *map(str, ppms),
        )
    )
    cpp = _descriptors(dfile, b.descriptor_dim)
    cos = (cpp * py_q).sum(1)
    assert cos.min() > 0.99999, cos
    ids = Index.encode(py_ref).search(py_q, k=3).ids
    got = np.array([line["ids"] for line in lines])
    np.testing.assert_array_equal(got[:, 0], np.asarray(ids)[:, 0])
    assert lines[0]["names"][0] == refs[int(ids[0][0])].name
    assert [line["frame"] for line in lines] == list(range(len(queries)))
    # C++ on the JPEGs themselves (libjpeg-turbo): the bound, cosine >= 0.99999
    summary = tmp_path / "summary.json"
    _run(
        _host(
            "--bundle",
            str(bundle),
            "--descriptors-out",
            str(dfile),
            "--summary",
            str(summary),
            *map(str, queries),
        )
    )
    doc = json.loads(summary.read_text())
    assert doc["model"] == man.model_name and doc["frames"] == len(queries) and doc["failed"] == 0
    assert (_descriptors(dfile, b.descriptor_dim) * py_q).sum(1).min() >= 0.99999


@needs_host
def test_host_is_quiet_unless_verbose(bundle: Path, images: dict[str, list[Path]]) -> None:
    args = ["--bundle", str(bundle), str(images["queries"][0])]
    quiet = subprocess.run(_host(*args), capture_output=True, text=True, timeout=600, check=False)
    assert quiet.returncode == 0 and "executorch:" not in quiet.stderr, quiet.stderr
    loud = subprocess.run(
        _host("--verbose", *args), capture_output=True, text=True, timeout=600, check=False
    )
    assert loud.returncode == 0 and "I executorch:" in loud.stderr


@needs_host
def test_host_refuses_an_image_bomb_from_its_header(bundle: Path, bomb_png: Path) -> None:
    p = subprocess.run(_host("--bundle", str(bundle), str(bomb_png)), capture_output=True,
                       text=True, timeout=120, check=False)  # fmt: skip
    assert p.returncode == 1, p.stderr
    (line,) = _lines(p.stdout)
    assert "claims 20000 x 20000 pixels, over the limit of 67108864" in line["error"]


@needs_host
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "-1"], "--k"),  # std::stoul made this 2**64 - 1
        (["--k", "1e3"], "--k"),  # ... and this 1
        (["--threads", "x"], "--threads"),
        (["--threads", "0"], "--threads"),
        (["--repeat", "2.5"], "--repeat"),
    ],
)
def test_host_parses_numbers_strictly(
    bundle: Path, images: dict[str, list[Path]], args: list[str], message: str
) -> None:
    cmd = _host("--bundle", str(bundle), *args, str(images["queries"][0]))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.startswith("vpr-localize: error: ") and message in p.stderr, p.stderr
    assert p.stdout == ""


@needs_host
def test_host_refuses_a_fifo_as_map_at_once(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    fifo = tmp_path / "map.vprmap"
    os.mkfifo(fifo)  # before, open() waited for a writer forever
    err = _refused(_host("--bundle", str(bundle), "--map", str(fifo), str(images["queries"][0])))
    assert "is not a regular file" in err


@needs_host
@pytest.mark.parametrize("rule", ["upper_case_sha256", "byte_order_mark"])
def test_python_and_cpp_apply_the_same_manifest_rules(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path, rule: str
) -> None:
    # Before, an upper-case sha256 passed Python only and a UTF-8 BOM passed C++ only.
    bad = tmp_path / rule
    shutil.copytree(bundle, bad)
    path = bad / "manifest.json"
    if rule == "upper_case_sha256":
        doc = json.loads(path.read_text())
        doc["pte"]["sha256"] = doc["pte"]["sha256"].upper()
        path.write_text(json.dumps(doc))
        message = "lower-case sha256"
    else:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        message = "byte order mark"
    with pytest.raises(ValueError, match=message):
        read_manifest(bad)
    assert message in _refused(_host("--bundle", str(bad), str(images["queries"][0])))


@needs_host
def test_host_refuses_tampered_bundle_and_foreign_map(
    bundle: Path, tmp_path: Path, images: dict[str, list[Path]]
) -> None:
    from vpr_embedded.maps import build_map

    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    data = bytearray((bad / "model.pte").read_bytes())
    data[100] ^= 1
    (bad / "model.pte").write_bytes(bytes(data))
    assert "sha256" in _refused(_host("--bundle", str(bad), str(images["queries"][0])))
    bad_rot = tmp_path / "bad_rot"
    shutil.copytree(bundle, bad_rot)
    doc = json.loads((bad_rot / "manifest.json").read_text())
    assert doc["input"]["rotate_180"] is True  # EfficientNet: the pad-free rotated form
    doc["input"]["rotate_180"] = 1
    (bad_rot / "manifest.json").write_text(json.dumps(doc))
    assert "rotate_180" in _refused(_host("--bundle", str(bad_rot), str(images["queries"][0])))
    man = read_manifest(bundle)
    other = build_map(
        np.eye(3, man.descriptor_dim, dtype=np.float32),
        out_path=tmp_path / "o.vprmap",
        model_sha256="ab" * 32,
        model_name="other",
        storage="float32",
    )
    err = _refused(_host("--bundle", str(bundle), "--map", str(other), str(images["queries"][0])))
    assert "rebuild the map" in err


@pytest.fixture(scope="module")
def corridor_map(
    bundle: Path, images: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    from vpr_embedded.maps import build_map

    man = read_manifest(bundle)
    refs = images["refs"]
    return build_map(
        load_bundle(bundle, threads=1).embed_images(refs),
        out_path=tmp_path_factory.mktemp("cm") / "corridor.vprmap",
        model_sha256=man.pte_sha256,
        model_name=man.model_name,
        storage="float32",
        names=[p.name for p in refs],
        positions=np.stack([np.arange(len(refs)) * 2.0, np.zeros(len(refs))], axis=1),
        position_kind="utm",
    )


@needs_host
def test_host_streams_past_bad_frames(
    bundle: Path, corridor_map: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """Before, the first bad image stopped vpr-localize and lost every result before it."""
    q = images["queries"][:3]
    data = q[1].read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff" + b"\x00" * 64)
    frames = [q[0], truncated, q[1], tmp_path / "missing.jpg", garbage, q[2]]
    cmd = _host("--bundle", str(bundle), "--map", str(corridor_map), "--k", "3",
                *map(str, frames))  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 1
    lines = _lines(p.stdout)
    assert [line["frame"] for line in lines] == list(range(6))
    assert [line["source"] for line in lines] == list(map(str, frames))
    assert ["error" in line for line in lines] == [False, True, False, True, True, False]
    assert "truncated" in lines[1]["error"] and "no such file" in lines[3]["error"]
    assert p.stderr.strip() == "vpr-localize: 3 of 6 frames failed (see their error lines)"
    good = _run([*cmd[:-6], str(q[0]), str(q[1]), str(q[2])])
    assert [line["ids"] for line in good] == [lines[i]["ids"] for i in (0, 2, 5)]
    assert all(len(line["positions"]) == 3 for line in good)
    skip = subprocess.run([*cmd, "--on-bad-image", "skip"], capture_output=True, timeout=300)
    assert skip.returncode == 0 and len(_lines(skip.stdout.decode())) == 6


@needs_host
def test_host_reads_raw_frames_from_stdin(
    bundle: Path, corridor_map: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """rgb24 frames on a pipe give the lines of the same pixels as files; a stream that
    ends inside a frame gives an error line for it and keeps the whole frames' lines."""
    q = images["queries"][:4]
    frames = np.stack([np.asarray(read_image(p)) for p in q])
    n, h, w, _ = frames.shape
    args = ["--bundle", str(bundle), "--map", str(corridor_map), "--k", "3"]
    from_files = _run(_host(*args, *map(str, q)))
    raw = frames.tobytes()
    lines = _run(_host(*args, "--stdin", f"{w}x{h}"), stdin=raw)
    assert [line["ids"] for line in lines] == [line["ids"] for line in from_files]
    assert [line["scores"] for line in lines] == [line["scores"] for line in from_files]
    assert [line["source"] for line in lines] == ["stdin"] * n
    cut = subprocess.run(_host(*args, "--stdin", f"{w}x{h}"), input=raw[:-100],
                         capture_output=True, timeout=300, check=False)  # fmt: skip
    assert cut.returncode == 1
    cut_lines = _lines(cut.stdout.decode())
    assert [line["ids"] for line in cut_lines[:-1]] == [line["ids"] for line in lines[:-1]]
    assert cut_lines[-1]["frame"] == n - 1
    assert f"{w * h * 3 - 100} of {w * h * 3} bytes" in cut_lines[-1]["error"]
    bad = subprocess.run(_host(*args, "--stdin", "160by120"), capture_output=True, text=True,
                         input="", timeout=60, check=False)  # fmt: skip
    assert bad.returncode == 2 and "WIDTHxHEIGHT" in bad.stderr


@needs_host
def test_host_converts_yuv_frames_with_libyuv(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """yuv420p and nv12 frames (the same YUV in two layouts) give the same inputs, and those
    are the textbook BT.601 limited-range RGB of the frame, within a grey level."""
    man = read_manifest(bundle)
    q = images["queries"][:3]
    frames = np.stack([np.asarray(read_image(p)) for p in q])
    n, h, w, _ = frames.shape
    i420 = [rgb_to_i420(f) for f in frames]
    outs = {}
    for fmt, data in (
        ("yuv420p", b"".join(i420)),
        ("nv12", b"".join(i420_to_nv12(f, w, h) for f in i420)),
    ):
        out = tmp_path / f"{fmt}.f32"
        lines = _run(
            _host("--bundle", str(bundle), "--stdin", f"{w}x{h}", "--pixels", fmt,
                  "--inputs-out", str(out)),
            stdin=data,
        )  # fmt: skip
        assert len(lines) == n
        outs[fmt] = np.fromfile(out, np.float32).reshape(n, 3, *SIZE)
    np.testing.assert_array_equal(outs["yuv420p"], outs["nv12"])
    std = np.asarray(man.preprocessing.std, np.float32).reshape(3, 1, 1)
    for i, f in enumerate(i420):
        expected = to_tensor(Image.fromarray(i420_to_rgb(f, w, h)), man.preprocessing).numpy()
        levels = np.abs(outs["yuv420p"][i] - expected) * std * 255
        assert float(levels.max()) <= 2.0 and float(levels.mean()) < 0.5


@needs_host
def test_host_live_stream_takes_the_newest_frame(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """--live: frames that arrive faster than inference are dropped and counted; the last
    frame is always localized. Without it a pipe is read frame by frame: all of them."""
    frame = np.asarray(read_image(images["queries"][0]))
    h, w, _ = frame.shape
    count = 40
    raw = tmp_path / "frames.rgb"
    raw.write_bytes(frame.tobytes() * count)
    args = ["--bundle", str(bundle), "--stdin", f"{w}x{h}"]
    with raw.open("rb") as f:  # every frame is there at once: a camera far faster than us
        p = subprocess.run(_host(*args, "--live"), stdin=f, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = _lines(p.stdout.decode())
    assert lines[-1]["frame"] == count - 1 and len(lines) < count
    assert len(lines) + sum(line["dropped"] for line in lines) == count
    assert [line["frame"] for line in lines] == sorted({line["frame"] for line in lines})
    with raw.open("rb") as f:
        every = subprocess.run(_host(*args), stdin=f, capture_output=True, timeout=300)
    lines = _lines(every.stdout.decode())
    assert [line["frame"] for line in lines] == list(range(count))
    assert all("dropped" not in line for line in lines)


@needs_host
def test_host_sequence_equals_python_matcher(
    bundle: Path, corridor_map: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    from vpr_embedded.maps import Map
    from vpr_embedded.sequence import DEFAULT_SEQUENCE_WINDOW, SequenceConfig, SequenceMatcher

    q = images["queries"]
    # The default window (the product's, 20) and a small one that changes the scores.
    for window_args, window in (((), DEFAULT_SEQUENCE_WINDOW), (("--sequence-window", "3"), 3)):
        dfile = tmp_path / f"d{window}.f32"
        lines = _run(
            _host("--bundle", str(bundle), "--map", str(corridor_map), "--k", "3",
                  "--sequence", "4", *window_args, "--descriptors-out", str(dfile), *map(str, q))
        )  # fmt: skip
        descriptors = _descriptors(dfile, read_manifest(bundle).descriptor_dim)
        config = SequenceConfig(length=4, k=3, contrast_window=window)
        matcher = SequenceMatcher(Map.open(corridor_map), config)
        for line, d in zip(lines, descriptors, strict=True):
            found = matcher.push(d)
            assert line["sequence"]["length"] == 4 and line["sequence"]["window"] == window
            assert line["sequence"]["ids"] == found.ids[0].tolist()
            np.testing.assert_allclose(line["sequence"]["scores"], found.scores[0], rtol=1e-5)
    err = subprocess.run(_host("--bundle", str(bundle), "--sequence", "4", str(q[0])),
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert err.returncode == 2 and "--sequence: needs --map" in err.stderr
    err = subprocess.run(
        _host("--bundle", str(bundle), "--map", str(corridor_map), "--sequence-window", "5",
              str(q[0])), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert err.returncode == 2 and "--sequence-window: needs --sequence L" in err.stderr


@needs_host
@pytest.mark.parametrize("storage", ["int8", "float16"])
def test_host_records_a_map_byte_identical_to_python(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path, storage: str
) -> None:
    """--record: a map made on the device from the frames it saw, the same bytes as
    Python's writer for the same descriptors, names and times; a second drive appends."""
    from vpr_embedded.maps import Map, build_map

    man = read_manifest(bundle)
    q = images["queries"][:6]
    rec, dfile = tmp_path / "route.vprmap", tmp_path / "d.f32"
    args = ["--bundle", str(bundle), "--record", str(rec), "--record-storage", storage]
    # --record-every 4: one fold mid-run, one at the end
    lines = _run(_host(*args, "--record-every", "4", "--descriptors-out", str(dfile), *map(str, q)))
    assert len(lines) == 6
    m = Map.open(rec, man.pte_sha256)
    assert m.count == 6 and m.storage == storage and m.names == [p.name for p in q]
    assert m.timestamps is not None and np.all(np.diff(m.timestamps) >= 0)
    d1 = _descriptors(dfile, man.descriptor_dim)

    def python_map(rows: np.ndarray, names: list[str], times: np.ndarray) -> bytes:
        out = build_map(rows, out_path=tmp_path / "py.vprmap", model_sha256=man.pte_sha256,
                        model_name=man.model_name, storage=storage, names=names,
                        timestamps=times)  # fmt: skip
        return out.read_bytes()

    assert rec.read_bytes() == python_map(d1, m.names, m.timestamps)
    assert not any(p.name.endswith((".journal", ".tmp")) for p in tmp_path.glob(".*"))
    more = images["queries"][6:8]
    _run(_host(*args, "--descriptors-out", str(dfile), *map(str, more)))
    m2 = Map.open(rec)
    assert m2.count == 8 and m2.names is not None and m2.timestamps is not None
    rows = np.concatenate([d1, _descriptors(dfile, man.descriptor_dim)])
    assert rec.read_bytes() == python_map(rows, m2.names, m2.timestamps)
    # A map of another model is refused before any frame, in one line.
    other = build_map(np.eye(2, man.descriptor_dim, dtype=np.float32),
                      out_path=tmp_path / "o.vprmap", model_sha256="ab" * 32,
                      model_name="other", storage=storage, names=["a", "b"],
                      timestamps=np.zeros(2))  # fmt: skip
    err = _refused(_host("--bundle", str(bundle), "--record", str(other), str(q[0])))
    assert "not this bundle's" in err


@needs_host
def test_host_records_positions_byte_identical_to_python(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """--record-positions: each recorded place gets its position from the CSV (build-map's
    header, any row order), the map has the bytes Python writes for the same places; a frame
    with no position gets an error line and is not recorded, and the rest goes on."""
    from vpr_embedded.maps import Map, build_map

    man = read_manifest(bundle)
    q = images["queries"][:5]
    xy = {p.name: (-27.4771 + 1e-4 * i, 153.0280 - 2e-4 * i) for i, p in enumerate(q)}
    missing = q[3].name
    csv = tmp_path / "gps.csv"
    rows = [f"{n},{x!r},{y!r}" for n, (x, y) in reversed(xy.items()) if n != missing]
    csv.write_text("name,lat,lon\n" + "\n".join(rows) + "\n")
    rec, dfile = tmp_path / "route.vprmap", tmp_path / "d.f32"
    args = ["--bundle", str(bundle), "--record", str(rec), "--record-positions", str(csv)]
    p = subprocess.run(_host(*args, "--descriptors-out", str(dfile), *map(str, q)),
                       capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert p.returncode == 1 and "1 of 5 frames failed" in p.stderr, p.stderr
    lines = _lines(p.stdout)
    assert [("error" in line) for line in lines] == [False, False, False, True, False]
    assert f"no position for {missing} in {csv}" in lines[3]["error"]
    m = Map.open(rec, man.pte_sha256)
    kept = [p.name for p in q if p.name != missing]
    assert m.names == kept and m.position_kind == "latlon" and m.timestamps is not None
    assert m.positions is not None
    np.testing.assert_array_equal(m.positions, np.array([xy[n] for n in kept]))
    python = build_map(_descriptors(dfile, man.descriptor_dim), out_path=tmp_path / "py.vprmap",
                       model_sha256=man.pte_sha256, model_name=man.model_name, names=kept,
                       positions=m.positions, position_kind="latlon",
                       timestamps=m.timestamps)  # fmt: skip
    assert rec.read_bytes() == python.read_bytes()
    # A recording without positions cannot extend a map with them (one line, before frames).
    err = _refused(_host("--bundle", str(bundle), "--record", str(rec), str(q[0])))
    assert "has latlon positions, this recording none" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("name,x,y\n")
    assert "expected a header" in _refused(_host(*args[:4], "--record-positions", str(bad),
                                                 str(q[0])))  # fmt: skip


@needs_host
def test_host_records_stream_positions_from_a_fifo(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """On --stdin the positions may come from a FIFO that another process (a GPS) writes
    as frames come: frame-N's line is waited for, in step with the frames."""
    import threading

    from vpr_embedded.maps import Map

    frame = np.asarray(read_image(images["queries"][0]))
    h, w, _ = frame.shape
    fifo = tmp_path / "gps.fifo"
    os.mkfifo(fifo)
    rec = tmp_path / "drive.vprmap"
    args = ["--bundle", str(bundle), "--stdin", f"{w}x{h}", "--record", str(rec),
            "--record-positions", str(fifo)]  # fmt: skip
    proc = subprocess.Popen(_host(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None

    def gps() -> None:  # one fix per frame, after that frame has been sent
        with fifo.open("w") as f:
            f.write("name,easting,northing\n")
            f.flush()
            for i in range(4):
                sent[i].wait(60)
                f.write(f"frame-{i},{500000.0 + i},{6960000.0 - 2 * i}\n")
                f.flush()

    sent = [threading.Event() for _ in range(4)]
    writer = threading.Thread(target=gps)
    writer.start()
    for i in range(4):
        proc.stdin.write(frame.tobytes())
        proc.stdin.flush()
        sent[i].set()
        line = json.loads(proc.stdout.readline())
        assert line["frame"] == i and "error" not in line, line
    proc.stdin.close()
    assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    writer.join(10)
    m = Map.open(rec)
    assert m.names == [f"frame-{i}" for i in range(4)] and m.position_kind == "utm"
    assert m.positions is not None
    np.testing.assert_array_equal(m.positions[:, 0], 500000.0 + np.arange(4))


@needs_host
def test_host_recording_survives_kill_9(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """A recorder killed mid-drive loses no frame whose line was written: its journal is
    folded into the map by the next run (here one with no frames)."""
    import signal

    from vpr_embedded.maps import Map

    frame = np.asarray(read_image(images["queries"][0]))
    h, w, _ = frame.shape
    rec = tmp_path / "drive.vprmap"
    args = ["--bundle", str(bundle), "--stdin", f"{w}x{h}", "--record", str(rec)]
    p = subprocess.Popen(_host(*args, "--record-every", "1000"), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert p.stdin is not None and p.stdout is not None
    seen = 0
    for _ in range(7):
        p.stdin.write(frame.tobytes())
        p.stdin.flush()
        json.loads(p.stdout.readline())
        seen += 1
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert not rec.exists()  # nothing folded yet: all of it is in the journal
    assert (tmp_path / ".drive.vprmap.journal").is_file()
    again = subprocess.run(_host(*args), input=b"", capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr
    m = Map.open(rec)
    assert m.count == seen and m.names == [f"frame-{i}" for i in range(seen)]
    assert not (tmp_path / ".drive.vprmap.journal").exists()


FAKE_CAMERA = HOST_BIN.parent / "libvpr_fake_v4l2.so"


def _rgb_to_yuyv(rgb: np.ndarray) -> bytes:
    """(H, W, 3) RGB -> YUYV (4:2:2, what USB webcams stream), chroma averaged over each
    pixel pair."""
    y, u, v = bt601_yuv(rgb)
    h, w = y.shape
    out = np.empty((h, w * 2))
    out[:, 0::4], out[:, 2::4] = y[:, 0::2], y[:, 1::2]
    out[:, 1::4] = u.reshape(h, w // 2, 2).mean(2)
    out[:, 3::4] = v.reshape(h, w // 2, 2).mean(2)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).tobytes()


def _yuyv_to_rgb(frame: bytes, w: int, h: int) -> np.ndarray:
    """The inverse of a YUYV frame, chroma repeated over each pixel pair."""
    a = np.frombuffer(frame, np.uint8).reshape(h, w * 2)
    y = np.empty((h, w), np.uint8)
    y[:, 0::2], y[:, 1::2] = a[:, 0::4], a[:, 2::4]
    return bt601_rgb(y, a[:, 1::4].repeat(2, 1), a[:, 3::4].repeat(2, 1))


def _proc(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)


def _camera(
    tmp_path: Path, size: tuple[int, int], formats: str, **fake: str | int
) -> tuple[Path, dict[str, str]]:
    """A fake V4L2 device (csrc/runtime/tests/fake_v4l2.cpp, LD_PRELOADed): its device
    file, and the environment that runs vpr-localize against it."""
    assert FAKE_CAMERA.is_file(), "build it: scripts/test_runtime.sh (target vpr_fake_v4l2)"
    device = tmp_path / "video0.fakecam"
    device.write_bytes(b"")
    env = dict(os.environ, LD_PRELOAD=str(FAKE_CAMERA), FAKE_CAM_SIZE=f"{size[0]}x{size[1]}",
               FAKE_CAM_FORMATS=formats)  # fmt: skip
    env.update({f"FAKE_CAM_{k.upper()}": str(v) for k, v in fake.items()})
    return device, env


@needs_host
def test_host_camera_streams_the_newest_frame_and_counts_drops(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """--camera: a YUYV device (padded rows) slower to read than it fills its buffers: each
    line is the newest frame, numbered by the driver, with the frames skipped counted; the
    inputs are the frames' textbook BT.601 RGB through Python's preprocessing, within a
    grey level or two; the device is unplugged after its last frame: exit 1, one message,
    and every line before it kept."""
    man = read_manifest(bundle)
    std = np.asarray(man.preprocessing.std, np.float32).reshape(3, 1, 1)
    rgb = [np.asarray(read_image(p)) for p in images["queries"][:9]]
    h, w, _ = rgb[0].shape
    yuyv = [_rgb_to_yuyv(f) for f in rgb]
    stride = w * 2 + 32
    frames = tmp_path / "frames.yuyv"
    padded = [np.pad(np.frombuffer(f, np.uint8).reshape(h, w * 2), ((0, 0), (0, 32))) for f in yuyv]
    frames.write_bytes(b"".join(p.tobytes() for p in padded))
    device, env = _camera(tmp_path, (w, h), "MJPG,YUYV", frames=frames, stride=stride, burst=3)
    inputs = tmp_path / "inputs.f32"
    args = ["--camera", str(device), "--inputs-out", str(inputs), "--camera-format", "yuyv"]
    p = _proc(_host("--bundle", str(bundle), *args), env)
    assert p.returncode == 1, p.stderr
    assert f"{w}x{h} yuyv" in p.stderr and "unplugged" in p.stderr, p.stderr
    lines = _lines(p.stdout)
    # Bursts of 3: frames 2, 5, 8 are the newest each time; 2 dropped before each.
    assert [line["frame"] for line in lines] == [2, 5, 8]
    assert [line["dropped"] for line in lines] == [2, 2, 2]
    got = np.fromfile(inputs, np.float32).reshape(len(lines), 3, *SIZE)
    for i, line in enumerate(lines):
        want = to_tensor(Image.fromarray(_yuyv_to_rgb(yuyv[line["frame"]], w, h)),
                         man.preprocessing).numpy()  # fmt: skip
        levels = np.abs(got[i] - want) * std * 255
        assert float(levels.max()) <= 2.0 and float(levels.mean()) < 0.5, (i, levels.max())


@needs_host
@pytest.mark.parametrize("fourcc", ["NV12", "YU12"])
def test_host_camera_planar_formats_equal_the_pipe(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path, fourcc: str
) -> None:
    """NV12 and YU12 (yuv420) cameras with rows longer than the width (bytesperline) give
    the inputs of the same frames sent packed on --stdin: one converter, two layouts."""
    rgb = [np.asarray(read_image(p)) for p in images["queries"][:3]]
    h, w, _ = rgb[0].shape
    i420 = [rgb_to_i420(f) for f in rgb]
    pad, stride = 32, w + 32
    cam, packed = b"", b""
    for f in i420:
        a = np.frombuffer(f, np.uint8)
        y = np.pad(a[: w * h].reshape(h, w), ((0, 0), (0, pad)))
        if fourcc == "NV12":
            nv12 = np.frombuffer(i420_to_nv12(f, w, h), np.uint8)
            chroma = np.pad(nv12[w * h :].reshape(h // 2, w), ((0, 0), (0, pad)))
            packed += nv12.tobytes()
        else:  # V4L2's YU12: chroma rows of half the luma stride
            u, v = a[w * h : w * h * 5 // 4], a[w * h * 5 // 4 :]
            chroma = np.concatenate([np.pad(c.reshape(h // 2, w // 2), ((0, 0), (0, pad // 2)))
                                     for c in (u, v)])  # fmt: skip
            packed += f
        cam += y.tobytes() + chroma.tobytes()
    frames = tmp_path / "frames.raw"
    frames.write_bytes(cam)
    device, env = _camera(tmp_path, (w, h), fourcc, frames=frames, stride=stride)
    cam_in, pipe_in = tmp_path / "cam.f32", tmp_path / "pipe.f32"
    p = _proc(_host("--bundle", str(bundle), "--camera", str(device), "--frames", "3",
                    "--inputs-out", str(cam_in)), env)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert [line["frame"] for line in _lines(p.stdout)] == [0, 1, 2]
    pixels = "nv12" if fourcc == "NV12" else "yuv420p"
    _run(_host("--bundle", str(bundle), "--stdin", f"{w}x{h}", "--pixels", pixels,
               "--inputs-out", str(pipe_in)), stdin=packed)  # fmt: skip
    np.testing.assert_array_equal(np.fromfile(cam_in, np.float32),
                                  np.fromfile(pipe_in, np.float32))  # fmt: skip


@needs_host
def test_host_camera_mjpeg_gives_the_files_inputs_and_survives_a_bad_frame(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """An MJPEG camera (the format "auto" falls back to when nothing raw is offered) whose
    frames are the real JPEGs: the inputs equal those of the files bit for bit (one JPEG
    decoder); a frame the driver flags as corrupt gets an error line and the stream goes
    on; --frames N ends the run cleanly, and --record maps it (frame-N names)."""
    q = images["queries"][:5]
    h, w, _ = np.asarray(read_image(q[0])).shape
    device, env = _camera(tmp_path, (w, h), "GREY,MJPG", jpegs=":".join(map(str, q)),
                          error_at=1)  # fmt: skip
    cam_in, file_in = tmp_path / "cam.f32", tmp_path / "file.f32"
    rec = tmp_path / "cam.vprmap"
    args = ["--camera", str(device), "--frames", "4", "--inputs-out", str(cam_in)]
    p = _proc(_host("--bundle", str(bundle), *args, "--record", str(rec)), env)
    assert p.returncode == 1 and "1 of 4 frames failed" in p.stderr, p.stderr
    lines = _lines(p.stdout)
    assert [line["frame"] for line in lines] == [0, 1, 2, 3]
    assert "corrupt" in lines[1]["error"] and all("error" not in lines[i] for i in (0, 2, 3))
    _run(_host("--bundle", str(bundle), "--inputs-out", str(file_in), *map(str, q)))
    files = np.fromfile(file_in, np.float32).reshape(len(q), -1)
    cam = np.fromfile(cam_in, np.float32).reshape(3, -1)
    np.testing.assert_array_equal(cam, files[[0, 2, 3]])
    from vpr_embedded.maps import Map

    assert Map.open(rec).names == ["frame-0", "frame-2", "frame-3"]


@needs_host
def test_host_camera_stops_on_sigint_and_folds_the_recording(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """A camera never ends; Ctrl-C (SIGINT) ends the run after the frame in hand, with exit
    0, the recorder's journal folded into the map and --summary written."""
    import signal

    from vpr_embedded.maps import Map

    rgb = np.asarray(read_image(images["queries"][0]))
    h, w, _ = rgb.shape
    frames = tmp_path / "f.yuyv"
    frames.write_bytes(_rgb_to_yuyv(rgb))
    device, env = _camera(tmp_path, (w, h), "YUYV", frames=frames, loop=1)
    rec, summary = tmp_path / "drive.vprmap", tmp_path / "s.json"
    # Unbuffered: a buffered readline may read the 4th line ahead into a buffer that
    # communicate() (which reads the pipe itself) never sees; under load the test then
    # counted 4 lines against 5 places recorded.
    proc = subprocess.Popen(_host("--bundle", str(bundle), "--camera", str(device), "--record",
                                  str(rec), "--record-every", "1000", "--summary", str(summary)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            bufsize=0)  # fmt: skip
    assert proc.stdout is not None
    seen = [json.loads(proc.stdout.readline()) for _ in range(3)]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    seen += _lines(out.decode())
    assert all("error" not in line for line in seen)
    assert Map.open(rec).count == len(seen)
    assert not (tmp_path / ".drive.vprmap.journal").exists()
    assert json.loads(summary.read_text())["frames"] == len(seen)


@needs_host
def test_host_camera_errors_are_one_line(bundle: Path, tmp_path: Path) -> None:
    """A missing device, a file that is not a V4L2 device, a device with no usable format,
    a bad size: one line each, before any frame."""
    err = _refused(_host("--bundle", str(bundle), "--camera", str(tmp_path / "video9")))
    assert "cannot open camera" in err and "No such file" in err
    err = _refused(_host("--bundle", str(bundle), "--camera", "/dev/null"))
    assert "/dev/null is not a V4L2 device" in err
    device, env = _camera(tmp_path, (64, 48), "GREY,H264")
    p = _proc(_host("--bundle", str(bundle), "--camera", str(device)), env)
    assert p.returncode == 1 and p.stdout == "", p.stderr
    assert "offers GREY, H264, none of which is YUYV, NV12, YU12, RGB3 or MJPG" in p.stderr
    p = _proc(_host("--bundle", str(bundle), "--camera", str(device), "--camera-size", "640"))
    assert p.returncode == 2 and "--camera-size" in p.stderr


FFMPEG = shutil.which("ffmpeg")
DRIVE = 120  # frames of the nordland_part1 test segment in the video tests


@pytest.fixture(scope="module")
def drive(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory, host_built: None
) -> dict[str, Any]:
    """The zoo's nordland model as an int8 bundle, a summer map of DRIVE places of the test
    segment (Python-built), and the winter frames of the same places as a numbered PNG
    sequence, the input of ffmpeg's image2 demuxer."""
    from vpr_embedded.data.splits import segment_range
    from vpr_embedded.maps import build_map
    from vpr_embedded.models.zoo import load_zoo_model

    root = tmp_path_factory.mktemp("drive")
    summer = sorted((shared_data / "nordland_part1" / "summer").glob("*.png"))
    winter = sorted((shared_data / "nordland_part1" / "winter").glob("*.png"))
    picked = list(segment_range(len(summer), "test"))[:DRIVE]
    bundle = root / "bundle"
    cfg = ExportConfig(quantize="int8", calib_images=shared_data / "nordland_part1" / "summer",
                       calib_count=8, check=False, progress=False)  # fmt: skip
    export_bundle(load_zoo_model("zoo:nordland-lite0-gem"), bundle, cfg)
    man = read_manifest(bundle)
    refs = [summer[i] for i in picked]
    b = load_bundle(bundle, threads=2)
    map_path = build_map(b.embed_images(refs), out_path=root / "summer.vprmap",
                         model_sha256=man.pte_sha256, model_name=man.model_name,
                         names=[p.name for p in refs])  # fmt: skip
    frames = root / "winter"
    frames.mkdir()
    for n, i in enumerate(picked):
        (frames / f"{n:05d}.png").symlink_to(winter[i])
    for n, i in enumerate(picked):
        (frames.parent / "summer_seq").mkdir(exist_ok=True)
        (frames.parent / "summer_seq" / f"{n:05d}.png").symlink_to(summer[i])
    w, h = Image.open(winter[0]).size
    return {"bundle": bundle, "map": map_path, "winter": frames, "summer": root / "summer_seq",
            "size": f"{w}x{h}", "root": root}  # fmt: skip


def _ffmpeg(*args: str | Path) -> subprocess.Popen[bytes]:
    """ffmpeg writing raw video to a pipe (the documented way to feed vpr-localize)."""
    assert FFMPEG is not None, "ffmpeg is missing: scripts/install_system_deps.sh installs it"
    cmd = [FFMPEG, "-loglevel", "error", "-nostdin", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE)


def _piped(video: subprocess.Popen[bytes], cmd: list[str]) -> list[dict[str, Any]]:
    """Runs vpr-localize on ffmpeg's output; both must succeed; returns the lines."""
    p = subprocess.run(cmd, stdin=video.stdout, capture_output=True, timeout=600, check=False)
    assert video.stdout is not None
    video.stdout.close()
    assert video.wait(timeout=60) == 0, "ffmpeg failed"
    assert p.returncode == 0, p.stderr.decode()
    return _lines(p.stdout.decode())


def _python_localize(d: dict[str, Any], frames: Path) -> list[dict[str, Any]]:
    """Python's `vpr-embedded localize` on a folder of frames: its lines, in frame order."""
    cli = [sys.executable, "-m", "vpr_embedded.cli", "localize", "--model", str(d["bundle"])]
    cli += ["--map", str(d["map"]), "--dir", str(frames), "--sequence", "10", "--k", "3"]
    out = subprocess.run(cli, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    lines = _lines(out.stdout)
    assert [Path(line["source"]).name for line in lines] == sorted(p.name for p in frames.iterdir())
    return lines


def _top1(lines: list[dict[str, Any]], key: str | None = None) -> list[int]:
    return [(line[key] if key else line)["ids"][0] for line in lines]


@needs_host
def test_host_video_pipe_of_a_drive_equals_python(drive: dict[str, Any], tmp_path: Path) -> None:
    """A winter drive through ffmpeg into vpr-localize --stdin --sequence 10, against the
    summer map: one line per frame with the top-1 (single frame and sequence) of Python's
    `localize` on the same frames: the PNG sequence as raw rgb24, and an H.264 video
    (libx264) decoded into the pipe, against Python on ffmpeg's decoded frames. The same
    video as yuv420p (libyuv converts instead of ffmpeg) gives descriptors within the
    conversion's rounding."""
    args = ["--bundle", str(drive["bundle"]), "--map", str(drive["map"]), "--k", "3",
            "--sequence", "10", "--stdin", drive["size"]]  # fmt: skip
    seq = drive["winter"] / "%05d.png"
    raw = _piped(_ffmpeg("-i", seq, "-pix_fmt", "rgb24", "-f", "rawvideo", "-"),
                 _host(*args, "--pixels", "rgb24"))  # fmt: skip
    python = _python_localize(drive, drive["winter"])
    assert [line["frame"] for line in raw] == list(range(DRIVE))
    assert _top1(raw) == _top1(python)
    assert _top1(raw, "sequence") == _top1(python, "sequence")
    # H.264: what a dashcam or a phone records; lossy, so compared on its decoded frames.
    video = tmp_path / "drive.mp4"
    enc = subprocess.run([FFMPEG or "ffmpeg", "-loglevel", "error", "-nostdin", "-i", str(seq),
                          "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(video)],
                         capture_output=True, timeout=300, check=False)  # fmt: skip
    assert enc.returncode == 0, enc.stderr
    decoded = tmp_path / "decoded"
    decoded.mkdir()
    dec = subprocess.run([FFMPEG or "ffmpeg", "-loglevel", "error", "-nostdin", "-i", str(video),
                          "-pix_fmt", "rgb24", str(decoded / "%05d.png")],
                         capture_output=True, timeout=300, check=False)  # fmt: skip
    assert dec.returncode == 0, dec.stderr
    rgb_in, yuv_in = tmp_path / "rgb.f32", tmp_path / "yuv.f32"
    h264 = _piped(_ffmpeg("-i", video, "-pix_fmt", "rgb24", "-f", "rawvideo", "-"),
                  _host(*args, "--pixels", "rgb24", "--inputs-out", str(rgb_in)))  # fmt: skip
    assert len(h264) == DRIVE
    python_h264 = _python_localize(drive, decoded)
    assert _top1(h264) == _top1(python_h264)
    assert _top1(h264, "sequence") == _top1(python_h264, "sequence")
    yuv = _piped(_ffmpeg("-i", video, "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"),
                 _host(*args, "--pixels", "yuv420p", "--inputs-out", str(yuv_in)))  # fmt: skip
    assert len(yuv) == DRIVE
    # The int8 model is not smooth at a grey level (its descriptors move more than that),
    # so the two converters are compared where they act: on the model inputs.
    std = np.asarray(read_manifest(drive["bundle"]).preprocessing.std, np.float32)
    a, b = np.fromfile(rgb_in, np.float32), np.fromfile(yuv_in, np.float32)
    levels = (np.abs(a - b).reshape(DRIVE, 3, -1) * std.reshape(1, 3, 1) * 255).reshape(-1)
    assert float(levels.max()) <= 3.0 and float(levels.mean()) < 0.6, (levels.max(), levels.mean())


@needs_host
def test_host_recorded_drive_localizes_the_next_drive(
    drive: dict[str, Any], tmp_path: Path
) -> None:
    """Drive once in summer with --record (no Python: the pipe and vpr-localize), then in
    winter against the recorded map: the same places as against the Python-built map."""
    rec = tmp_path / "recorded.vprmap"
    base = ["--bundle", str(drive["bundle"]), "--stdin", drive["size"], "--pixels", "rgb24"]
    first = _piped(_ffmpeg("-i", drive["summer"] / "%05d.png", "-pix_fmt", "rgb24", "-f",
                           "rawvideo", "-"), _host(*base, "--record", str(rec)))  # fmt: skip
    assert len(first) == DRIVE
    winter = drive["winter"] / "%05d.png"
    args = ["--k", "3", "--sequence", "10"]
    on_recorded = _piped(_ffmpeg("-i", winter, "-pix_fmt", "rgb24", "-f", "rawvideo", "-"),
                         _host(*base, "--map", str(rec), *args))  # fmt: skip
    on_python = _piped(_ffmpeg("-i", winter, "-pix_fmt", "rgb24", "-f", "rawvideo", "-"),
                       _host(*base, "--map", str(drive["map"]), *args))  # fmt: skip
    assert _top1(on_recorded) == _top1(on_python)
    assert _top1(on_recorded, "sequence") == _top1(on_python, "sequence")
    assert [line["names"][0] for line in on_recorded] == [f"frame-{i}" for i in _top1(on_recorded)]


def test_aarch64_video_pipe_under_qemu(drive: dict[str, Any], tmp_path: Path) -> None:
    """The drive's first 20 winter frames through ffmpeg into the aarch64 vpr-localize under
    qemu (cortex-a76): one line per frame, the host's single-frame and sequence top-1."""
    reason = _arm_ready()
    if reason:
        pytest.fail(reason)
    args = ["--bundle", str(drive["bundle"]), "--map", str(drive["map"]), "--k", "3",
            "--sequence", "10", "--stdin", drive["size"], "--pixels", "yuv420p"]  # fmt: skip
    seq = drive["winter"] / "%05d.png"
    video = ["-i", seq, "-frames:v", "20", "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"]
    host = _piped(_ffmpeg(*video), _host(*args))
    cmd, env = _arm(*args)
    stream = _ffmpeg(*video)
    p = subprocess.run(cmd, stdin=stream.stdout, capture_output=True, env=env, timeout=600,
                       check=False)  # fmt: skip
    assert stream.wait(timeout=60) == 0
    assert p.returncode == 0, p.stderr.decode()
    arm = _lines(p.stdout.decode())
    assert len(arm) == len(host) == 20
    assert _top1(arm) == _top1(host)
    assert _top1(arm, "sequence") == _top1(host, "sequence")


def test_aarch64_under_qemu_equals_host(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    reason = _arm_ready()
    if reason:
        pytest.fail(reason)
    from vpr_embedded.maps import build_map

    man = read_manifest(bundle)
    b = load_bundle(bundle, threads=1)
    refs, queries = images["refs"], images["queries"][:4]
    map_path = build_map(
        b.embed_images(refs),
        out_path=tmp_path / "m.vprmap",
        model_sha256=man.pte_sha256,
        model_name=man.model_name,
        storage="int8",
    )
    args = ["--bundle", str(bundle), "--map", str(map_path), "--k", "3"]
    host_d, arm_d = tmp_path / "h.f32", tmp_path / "a.f32"
    host = _run(_host(*args, "--descriptors-out", str(host_d), *map(str, queries)))
    cmd, env = _arm(*args, "--descriptors-out", str(arm_d), *map(str, queries))
    arm = _run(cmd, env)
    hd, ad = _descriptors(host_d, b.descriptor_dim), _descriptors(arm_d, b.descriptor_dim)
    assert (hd * ad).sum(1).min() > 0.995
    assert [r["ids"][0] for r in host] == [r["ids"][0] for r in arm]
    # Raw YUV frames on standard input under qemu: libyuv's NEON path gives what the host's
    # gives (within a grey level: the SIMD paths round differently) and the same top-1.
    frames = np.stack([np.asarray(read_image(p)) for p in queries])
    yuv = b"".join(rgb_to_i420(f) for f in frames)
    h, w = frames.shape[1:3]
    stdin = ["--stdin", f"{w}x{h}", "--pixels", "yuv420p"]
    host_i, arm_i = tmp_path / "hi.f32", tmp_path / "ai.f32"
    host = _run(_host(*args, *stdin, "--inputs-out", str(host_i)), stdin=yuv)
    cmd, env = _arm(*args, *stdin, "--inputs-out", str(arm_i))
    arm = _run(cmd, env, stdin=yuv)
    assert [r["ids"][0] for r in host] == [r["ids"][0] for r in arm]
    std = np.asarray(man.preprocessing.std, np.float32).reshape(1, 3, 1, 1)
    levels = np.abs(np.fromfile(host_i, np.float32) - np.fromfile(arm_i, np.float32))
    levels = levels.reshape(len(queries), 3, *SIZE) * std * 255
    assert float(levels.max()) <= 2.0


def _damaged_bundles(bundle: Path, out: Path, count: int, seed: int) -> list[Path]:
    """Copies of the bundle whose program has a few random bytes changed, its manifest's
    sha256 and size recomputed, so that only the program's own checks can refuse it."""
    rng = np.random.default_rng(seed)
    pte = (bundle / "model.pte").read_bytes()
    manifest = json.loads((bundle / "manifest.json").read_text())
    made = []
    for i in range(count):
        data = bytearray(pte)
        # Half the copies are damaged in the first 4 KiB (flatbuffer tables and offsets),
        # half anywhere (constant data, the XNNPACK delegate blob).
        limit = 4096 if i % 2 == 0 else len(data)
        for at in rng.integers(0, limit, size=int(rng.integers(1, 9))):
            data[int(at)] ^= int(rng.integers(1, 256))
        folder = out / f"damaged-{i:02d}"
        folder.mkdir()
        (folder / "model.pte").write_bytes(bytes(data))
        manifest["pte"]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
        manifest["pte"]["bytes"] = len(data)
        (folder / "manifest.json").write_text(json.dumps(manifest))
        made.append(folder)
    return made


@needs_host
def test_host_never_crashes_on_a_damaged_program(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    # Before program verification, 2 of 10 such programs killed vpr-localize (SIGSEGV).
    outcomes = []
    for folder in _damaged_bundles(bundle, tmp_path, 40, seed=11):
        p = subprocess.run(
            _host("--bundle", str(folder), str(images["queries"][0])),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        outcomes.append(p.returncode)
        assert p.returncode in (0, 1), f"{folder.name}: exit {p.returncode}\n{p.stderr[-2000:]}"
        if p.returncode == 1:  # refused in one line, or the frame's run failed in its line
            lines = p.stderr.strip().splitlines()
            assert len(lines) == 1, p.stderr
            if lines[0].startswith("vpr-localize: error: "):
                assert p.stdout == ""
            else:
                assert lines[0] == "vpr-localize: 1 of 1 frames failed (see their error lines)"
                assert "error" in _lines(p.stdout)[0]
    assert outcomes.count(1) > 0  # most damage is caught and refused, in one line
