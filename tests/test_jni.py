"""The Android JNI bridge (csrc/jni + org.vprembedded.VprMap), tested on the host.

scripts/test_jni.sh builds libvpr_jni.so for this machine and compiles the Java
wrapper (the very sources the Android app uses) and the harness
csrc/jni/host_test/VprJniHarness.java with plain javac; these tests run the
harness under ``java -Xcheck:jni`` on maps of the real corridor images (model-free
SeqSLAM descriptors) and check that it finds exactly what the Python API finds,
and that bad inputs are Java exceptions, never a crash of the JVM.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO, i420_to_rgb, rgb_to_i420
from numpy.typing import NDArray
from PIL import Image

from vpr_embedded.data.images import read_image, to_tensor
from vpr_embedded.manifest import read_manifest
from vpr_embedded.maps import Map, build_map
from vpr_embedded.matching import STORAGES
from vpr_embedded.sequence import SequenceConfig, SequenceMatcher, seqslam_descriptors

BUILD = REPO / "build" / "jni-host"
LIBRARY_DIR = BUILD / "csrc" / "jni"
CLASSES = BUILD / "classes"
WRAPPER = REPO / "csrc" / "jni" / "java" / "org" / "vprembedded"
SHA = hashlib.sha256(b"seqslam-32x24").hexdigest()
K = 5
SEQ_LENGTH = 4
SIZE = (32, 24)  # w, h: 768-dim descriptors


@pytest.fixture(scope="module")
def harness() -> list[str]:
    """Command prefix that runs the harness (built by scripts/test_jni.sh)."""
    for tool in ("cmake", "ninja", "javac", "java"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: the JNI host test needs cmake, ninja and a JDK")
    if os.environ.get("VPR_JNI_BUILT") != "1":
        subprocess.run(
            ["bash", str(REPO / "scripts" / "test_jni.sh"), "--build-only"],
            check=True,
            capture_output=True,
            text=True,
        )
    assert (LIBRARY_DIR / "libvpr_jni.so").is_file()
    return [
        "java",
        "-Xcheck:jni",
        f"-Djava.library.path={LIBRARY_DIR}",
        "-cp",
        str(CLASSES),
        "VprJniHarness",
    ]


def run_harness(harness: list[str], *args: str | Path | int) -> list[dict[str, Any]]:
    """Runs the harness; checks it exited normally with clean JNI use; returns its JSON lines."""
    proc = subprocess.run([*harness, *map(str, args)], capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "WARNING in native method" not in output, output  # -Xcheck:jni complaints
    assert "hs_err" not in output and "SIGSEGV" not in output, output
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines and lines[-1] == {"event": "done"}, output
    return lines


@pytest.fixture(scope="module")
def corridor(shared_data: Path) -> tuple[NDArray[np.float32], NDArray[np.float32], list[str]]:
    ref = sorted((shared_data / "corridor" / "ref").glob("*.jpg"))
    query = sorted((shared_data / "corridor" / "query").glob("*.jpg"))
    assert len(ref) > 50 and len(query) > 50
    # Names exercise UTF-8 beyond the BMP (JNI's NewStringUTF would mangle these).
    names = [f"lieu-é-{p.stem}" for p in ref]
    names[0] = "couloir 😀 début"
    return seqslam_descriptors(ref, SIZE), seqslam_descriptors(query, SIZE), names


def make_map(
    folder: Path,
    corridor: tuple[NDArray[np.float32], NDArray[np.float32], list[str]],
    storage: str,
) -> Path:
    ref, _, names = corridor
    n = ref.shape[0]
    extra: dict[str, Any] = {}
    if storage == "float32":  # names and positions
        positions = np.stack([np.arange(n) * 1.5 + 0.1, -np.arange(n) / 3.0], axis=1)
        extra = {"names": names, "positions": positions, "position_kind": "utm"}
    elif storage == "int8":  # names and a PCA projection (queries projected by the core)
        extra = {"names": names, "pca_dim": 64}
    elif storage == "pq4":  # PQ codes, IVF lists, int8 re-rank codes (the sequence uses them)
        from vpr_embedded.pq import PqConfig

        extra = {"pq": PqConfig(m=64, ivf_lists=4, nprobe=2), "rerank": "int8"}
    return build_map(
        ref,
        out_path=folder / f"corridor-{storage}.vprmap",
        model_sha256=SHA,
        model_name="seqslam-32x24",
        storage=storage,  # type: ignore[arg-type]
        **extra,
    )


@pytest.mark.parametrize("storage", [*STORAGES, "pq4"])
def test_java_matches_python(
    harness: list[str],
    corridor: tuple[NDArray[np.float32], NDArray[np.float32], list[str]],
    tmp_path: Path,
    storage: str,
) -> None:
    path = make_map(tmp_path, corridor, storage)
    queries = corridor[1]
    qfile = tmp_path / "queries.f32"
    queries.astype("<f4").tofile(qfile)
    lines = run_harness(harness, "search", path, qfile, K, SEQ_LENGTH)

    m = Map.open(path)
    info = lines[0]
    assert info["event"] == "info"
    assert info["count"] == m.count and info["dim"] == m.dim and info["input_dim"] == m.input_dim
    assert info["storage"] == m.storage == storage
    assert info["model_name"] == m.model_name and info["model_sha256"] == m.model_sha256 == SHA
    assert info["position_kind"] == m.position_kind
    assert info["nbytes"] == m.nbytes and info["format_version"] == m.format_version
    assert info["has_names"] == (m.names is not None)
    assert info["has_positions"] == (m.positions is not None)

    single = [x for x in lines if x["event"] == "search"]
    seq = [x for x in lines if x["event"] == "sequence"]
    assert len(single) == len(seq) == len(queries)
    matcher = SequenceMatcher(m, SequenceConfig(length=SEQ_LENGTH, k=K))
    for j, (got, got_seq) in enumerate(zip(single, seq, strict=True)):
        # One query per call, as the app does (a batch may take another kernel path,
        # whose float sums can differ in the last bit).
        expected = m.search(queries[j], K)
        assert got["ids"] == expected.ids[0].tolist(), f"query {j}"
        np.testing.assert_array_equal(np.float32(got["scores"]), expected.scores[0])
        if expected.names is None:
            assert got["names"] is None
        else:
            assert got["names"] == expected.names[0]
        if expected.positions is None:
            assert got["positions"] is None
        else:
            np.testing.assert_array_equal(
                np.reshape(got["positions"], (-1, 2)), expected.positions[0]
            )
        want_seq = matcher.push(queries[j])
        assert got_seq["ids"] == want_seq.ids[0].tolist(), f"sequence, query {j}"
        np.testing.assert_array_equal(np.float32(got_seq["scores"]), want_seq.scores[0])
    # Not a degenerate agreement: the queries find many different places.
    assert len({x["ids"][0] for x in single}) > 20


def test_java_position_prior_matches_python(
    harness: list[str],
    corridor: tuple[NDArray[np.float32], NDArray[np.float32], list[str]],
    tmp_path: Path,
) -> None:
    path = make_map(tmp_path, corridor, "float32")  # place i at (1.5 i + 0.1, -i / 3)
    queries = corridor[1]
    qfile = tmp_path / "queries.f32"
    queries.astype("<f4").tofile(qfile)
    m = Map.open(path)
    for x, y, radius, inside in ((30.1, -6.67, 5.0, 7), (1000.0, 0.0, 1.0, 0)):
        lines = run_harness(harness, "near", path, qfile, K, x, y, radius)
        near = [line for line in lines if line["event"] == "near"]
        seq = [line for line in lines if line["event"] == "sequence_near"]
        assert len(near) == len(seq) == len(queries)
        assert len(m.places_near(x, y, radius)) == inside
        matcher = SequenceMatcher(m, SequenceConfig(length=3, k=K))
        for j, (got, got_seq) in enumerate(zip(near, seq, strict=True)):
            want = m.search(queries[j], K, near=(x, y), radius=radius)
            assert got["ids"] == want.ids[0].tolist(), f"query {j}"
            np.testing.assert_array_equal(np.float32(got["scores"]), want.scores[0])
            assert len(got["ids"]) == min(K, inside)
            want_seq = matcher.push(queries[j], near=(x, y), radius=radius)
            assert got_seq["ids"] == want_seq.ids[0].tolist(), f"sequence, query {j}"
            np.testing.assert_array_equal(np.float32(got_seq["scores"]), want_seq.scores[0])


def flip_bit(src: Path, dst: Path, offset: int) -> Path:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0x10
    dst.write_bytes(bytes(data))
    return dst


def test_bad_inputs_are_java_exceptions(
    harness: list[str],
    corridor: tuple[NDArray[np.float32], NDArray[np.float32], list[str]],
    tmp_path: Path,
) -> None:
    good = make_map(tmp_path, corridor, "float32")
    size = good.stat().st_size
    truncated = tmp_path / "truncated.vprmap"
    truncated.write_bytes(good.read_bytes()[: size // 2])
    not_a_map = tmp_path / "notes.vprmap"
    not_a_map.write_text("this is not a map\n")
    corrupt = [
        flip_bit(good, tmp_path / "payload.vprmap", size // 2),  # descriptors: payload CRC
        flip_bit(good, tmp_path / "header.vprmap", 40),  # a header field: header CRC
        truncated,
        not_a_map,
        tmp_path,  # a folder
    ]
    lines = run_harness(harness, "errors", good, tmp_path / "missing.vprmap", *corrupt)
    cases = {x["case"]: x for x in lines if x["event"] == "case"}
    iae, ise = "java.lang.IllegalArgumentException", "java.lang.IllegalStateException"
    expected = {
        "missing_map": "java.io.FileNotFoundException",
        **{f"corrupt_map:{i}": "java.io.IOException" for i in range(len(corrupt))},
        "null_path": iae,
        "wrong_dim_short": iae,
        "wrong_dim_long": iae,
        "null_descriptor": iae,
        "bad_k": iae,
        "bad_threads": iae,
        "bad_name_index": iae,
        "large_k": None,
        "bad_sequence_config": iae,
        "sequence_wrong_dim": iae,
        "map_closed_twice": None,
        "search_after_close": ise,
        "count_after_close": ise,
        "sequence_after_map_close": None,  # the matcher keeps its own mapping
        "sequence_from_closed_map": ise,
        "push_after_close": ise,
    }
    # The folder is refused up front as "does not exist" (not a regular file).
    expected[f"corrupt_map:{len(corrupt) - 1}"] = "java.io.FileNotFoundException"
    assert {name: c["exception"] for name, c in cases.items()} == expected
    for name, c in cases.items():
        if c["exception"] is not None:
            assert c["message"], f"{name}: an exception without a message"
    assert "checksum" in cases["corrupt_map:0"]["message"].lower()
    assert "768" in cases["wrong_dim_long"]["message"]


def test_wrapper_mirrors_python_api() -> None:
    """VprMap has the Python Map's methods, under their camelCase names."""
    source = (WRAPPER / "VprMap.java").read_text()
    for name in (
        "open",
        "search",
        "count",
        "dim",
        "input_dim",
        "storage",
        "model_name",
        "model_sha256",
        "nbytes",
        "format_version",
        "position_kind",
        "path",
    ):
        assert hasattr(Map, name), name
        java = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
        assert re.search(rf"public (static )?(synchronized )?\w+ {java}\(", source), java
    sequence = (WRAPPER / "VprSequenceMatcher.java").read_text()
    for name in ("push", "reset", "frames", "count", "sequence_scores"):
        assert hasattr(SequenceMatcher, name), name
        java = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
        assert re.search(rf"public (synchronized )?[\w\[\]]+ {java}\(", sequence), java


def test_a_path_outside_the_bmp_opens(
    harness: list[str],
    corridor: tuple[NDArray[np.float32], NDArray[np.float32], list[str]],
    tmp_path: Path,
) -> None:
    # JNI's modified UTF-8 spells an emoji as two surrogates, which names another file:
    # before paths went over as bytes this open failed ("No such file or directory").
    folder = tmp_path / "routes 😀 é"
    folder.mkdir()
    src = make_map(tmp_path, corridor, "binary")
    path = folder / "carte-😀.vprmap"
    shutil.copy(src, path)
    lines = run_harness(harness, "open", path)
    assert lines[0] == {"event": "opened", "count": corridor[0].shape[0]}


def test_maps_dropped_without_close_are_released(
    harness: list[str],
    corridor: tuple[NDArray[np.float32], NDArray[np.float32], list[str]],
    tmp_path: Path,
) -> None:
    # 2,000 maps and 2,000 sequence matchers, never closed: before, every one stayed
    # mapped for the life of the process.
    path = make_map(tmp_path, corridor, "binary")
    (leak,) = [e for e in run_harness(harness, "leak", path, 2000) if e["event"] == "leak"]
    assert leak["live_after_drop"] >= 4000  # 2 per map: the map and the matcher's
    assert leak["live_after_gc"] == 0, leak


def test_searches_racing_a_close_end_in_illegal_state(
    harness: list[str],
    corridor: tuple[NDArray[np.float32], NDArray[np.float32], list[str]],
    tmp_path: Path,
) -> None:
    path = make_map(tmp_path, corridor, "int8")
    (race,) = [e for e in run_harness(harness, "race", path, 4) if e["event"] == "race"]
    assert race["unexpected"] is None, race
    assert race["results"] + race["closed"] == 4 * 2000
    assert race["closed"] > 0  # the close really happened while they searched


def test_manifests_through_jni_meet_the_shared_fixtures(harness: list[str]) -> None:
    # The app reads manifests with the C++ validator (org.vprembedded.VprManifest), so it
    # must accept and refuse the shared fixtures exactly as Python does.
    folder = REPO / "tests" / "fixtures" / "manifests"
    refusals = json.loads((folder / "refusals.json").read_text())
    files = sorted((folder / "good").glob("*.json")) + sorted((folder / "bad").glob("*.json"))
    seen = {e["file"]: e["refused"] for e in run_harness(harness, "manifests", *files)[:-1]}
    for path in files:
        verdict = seen[path.name]
        if path.parent.name == "good":
            assert verdict is None, (path.name, verdict)
        else:
            assert verdict is not None and refusals[path.name] in verdict, (path.name, verdict)


# ---- org.vprembedded.VprPreprocessor: the Android app's model input -------------------

MANIFESTS = REPO / "tests" / "fixtures" / "manifests" / "good"


@pytest.fixture(scope="module", params=["valid.json", "bgr_no_rotation.json"])
def prep_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle folder holding only a manifest (RGB and rotated, or BGR and upright): the
    preprocessor never opens the .pte."""
    folder = tmp_path_factory.mktemp(Path(request.param).stem)
    shutil.copy(MANIFESTS / request.param, folder / "manifest.json")
    return folder


def _frames(shared_data: Path) -> list[NDArray[np.uint8]]:
    """Real frames: two corridor queries (160x120 to the manifests' 96x64) and a 960x540
    Gardens Point image (a large antialiased reduction)."""
    paths = sorted((shared_data / "corridor" / "query").glob("*.jpg"))[:2]
    paths.append(shared_data / "gardens_point_sample" / "query" / "0.jpg")
    return [np.asarray(read_image(p)) for p in paths]


def _python_input(bundle: Path, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    prep = read_manifest(bundle, check_pte=False).preprocessing
    return to_tensor(Image.fromarray(rgb), prep).numpy()


def _tensor(path: Path, like: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.fromfile(path, np.float32).reshape(like.shape)


def test_preprocessor_gives_pythons_input_for_rgb_and_argb_pixels(
    harness: list[str], prep_bundle: Path, shared_data: Path, tmp_path: Path
) -> None:
    """The same RGB pixels give bit-identical model inputs in Java (through the C++ core) and
    in Python, packed, with padded rows, and as Android ARGB ints."""
    for i, rgb in enumerate(_frames(shared_data)):
        h, w, _ = rgb.shape
        want = _python_input(prep_bundle, rgb)
        packed = tmp_path / f"{i}.rgb"
        packed.write_bytes(rgb.tobytes())
        padded = tmp_path / f"{i}.padded"
        padded.write_bytes(np.pad(rgb.reshape(h, w * 3), ((0, 0), (0, 7))).tobytes())
        argb = tmp_path / f"{i}.argb"
        ints = (0xFF << 24) | (rgb[..., 0].astype(np.uint32) << 16)
        ints |= (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
        argb.write_bytes(ints.astype("<u4").tobytes())
        for name, args in (
            ("packed", ["rgb", prep_bundle, packed, w, h, 0]),
            ("padded", ["rgb", prep_bundle, padded, w, h, w * 3 + 7]),
            ("argb", ["argb", prep_bundle, argb, w, h]),
        ):
            out = tmp_path / f"{i}.{name}.f32"
            events = run_harness(harness, *args, out)
            assert events[0] == {"event": "preprocessed", "floats": want.size}
            np.testing.assert_array_equal(_tensor(out, want), want, err_msg=f"{i} {name}")


def _yuv_files(
    tmp_path: Path, frame: bytes, w: int, h: int, layout: str, pad: int
) -> tuple[Path, int, Path, int]:
    """An I420 frame as Android lays it out: a Y plane of rows `pad` bytes longer than the
    width, and chroma planar (U rows, then V rows) or interleaved (nv12: U first, nv21: V
    first)."""
    a = np.frombuffer(frame, np.uint8)
    cw, ch = w // 2, h // 2
    y = a[: w * h].reshape(h, w)
    u = a[w * h : w * h + cw * ch].reshape(ch, cw)
    v = a[w * h + cw * ch :].reshape(ch, cw)
    y_stride = w + pad
    y_file = tmp_path / f"y.{layout}.{pad}"
    y_file.write_bytes(np.pad(y, ((0, 0), (0, pad))).tobytes()[:-pad] if pad else y.tobytes())
    if layout == "planar":
        uv_stride = cw + pad
        planes = [np.pad(c, ((0, 0), (0, pad))) for c in (u, v)]
        chroma = b"".join(c.tobytes() for c in planes)
    else:
        uv_stride = w + pad
        first, second = (u, v) if layout == "nv12" else (v, u)
        chroma = np.pad(np.stack([first, second], -1).reshape(ch, w), ((0, 0), (0, pad))).tobytes()
    c_file = tmp_path / f"c.{layout}.{pad}"
    c_file.write_bytes(chroma)
    return y_file, y_stride, c_file, uv_stride


def test_preprocessor_converts_camera_planes_in_every_android_layout(
    harness: list[str], prep_bundle: Path, shared_data: Path, tmp_path: Path
) -> None:
    """A YUV_420_888 frame gives one model input whatever its layout (planar, NV12, NV21,
    padded rows, heap buffers), and that input is Python's for the textbook BT.601 RGB of the
    frame, within the rounding of libyuv's fixed point (a grey level or two)."""
    prep = read_manifest(prep_bundle, check_pte=False).preprocessing
    std = np.asarray(prep.std, np.float32).reshape(3, 1, 1)
    for i, rgb in enumerate(_frames(shared_data)):
        h, w, _ = rgb.shape
        frame = rgb_to_i420(rgb)
        want = _python_input(prep_bundle, i420_to_rgb(frame, w, h))
        got = {}
        for layout, pad, heap in (
            ("planar", 0, False),
            ("planar", 16, False),
            ("nv12", 0, False),
            ("nv12", 64, False),
            ("nv21", 0, False),
            ("nv21", 8, True),
        ):
            y, ys, c, cs = _yuv_files(tmp_path, frame, w, h, layout, pad)
            out = tmp_path / f"{i}.{layout}.{pad}.f32"
            extra = ["heap"] if heap else []
            run_harness(harness, "yuv", prep_bundle, w, h, 0, y, ys, c, layout, cs, out, *extra)
            got[(layout, pad, heap)] = _tensor(out, want)
        first = got[("planar", 0, False)]
        for key, tensor in got.items():
            np.testing.assert_array_equal(tensor, first, err_msg=f"frame {i} {key}")
        levels = np.abs(first - want) * std * 255
        assert float(levels.max()) <= 2.0 and float(levels.mean()) < 0.5, (i, levels.max())


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_preprocessor_turns_camera_frames_upright(
    harness: list[str], prep_bundle: Path, shared_data: Path, tmp_path: Path, rotation: int
) -> None:
    """A sensor frame that needs `rotation` degrees clockwise to be upright (what
    ImageInfo.getRotationDegrees() says) gives exactly the input of the upright frame."""
    rgb = _frames(shared_data)[0]
    h, w, _ = rgb.shape
    upright = rgb_to_i420(rgb)
    a = np.frombuffer(upright, np.uint8)
    planes = [a[: w * h].reshape(h, w), a[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)]
    planes.append(a[w * h * 5 // 4 :].reshape(h // 2, w // 2))
    # The sensor's frame: the upright one turned counter-clockwise by `rotation`.
    sensor = [np.ascontiguousarray(np.rot90(p, rotation // 90)) for p in planes]
    sh, sw = sensor[0].shape
    outs = {}
    for name, (y, u, v), (fw, fh), turn in (
        ("upright", planes, (w, h), 0),
        ("sensor", sensor, (sw, sh), rotation),
    ):
        y_file = tmp_path / f"{name}.y"
        y_file.write_bytes(y.tobytes())
        c_file = tmp_path / f"{name}.c"
        c_file.write_bytes(u.tobytes() + v.tobytes())
        out = tmp_path / f"{name}.f32"
        run_harness(harness, "yuv", prep_bundle, fw, fh, turn, y_file, fw, c_file, "planar",
                    fw // 2, out)  # fmt: skip
        outs[name] = np.fromfile(out, np.float32)
    assert (sw, sh) != (w, h) or rotation == 180
    np.testing.assert_array_equal(outs["sensor"], outs["upright"])


def test_preprocessor_refuses_bad_frames_with_a_java_exception(
    harness: list[str], prep_bundle: Path
) -> None:
    """Every bad size, stride, buffer or rotation is an IllegalArgumentException saying what
    is wrong; the JVM goes on (run_harness checks it exits normally, -Xcheck:jni clean)."""
    cases = {e["case"]: e for e in run_harness(harness, "preprocess-errors", prep_bundle)[:-1]}
    assert cases.pop("yuv_ok")["exception"] is None
    expected = {
        "rgb_short": "needs",
        "rgb_null": "null",
        "rgb_bad_size": "size",
        "rgb_stride_too_small": "stride",
        "rgb_out_too_short": "output array",
        "rgb_out_null": "output array",
        "argb_short": "needs",
        "yuv_y_short": "Y plane",
        "yuv_u_short": "U plane",
        "yuv_semi_planar_short": "U row stride",
        "yuv_pixel_stride_3": "pixel stride",
        "yuv_rotation_45": "rotation",
        "yuv_null_v": "V buffer is null",
        "yuv_negative_height": "frame size",
        "yuv_huge": "frame size",
        "yuv_stride_below_width": "Y row stride",
        "yuv_out_wrong": "output array",
    }
    assert set(cases) == set(expected)
    for name, needle in expected.items():
        case = cases[name]
        assert case["exception"] == "java.lang.IllegalArgumentException", case
        assert needle in case["message"], case
