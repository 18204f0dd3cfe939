"""The C++ localizer (csrc/runtime, built by scripts/test_runtime.sh) against Python:
preprocessing, descriptors and top-k, on the host and for aarch64 under qemu."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
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


def _run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert p.returncode == 0, p.stderr
    out: dict[str, object] = json.loads(p.stdout)
    return out


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
def test_jpeg_decode_close_to_pil(
    bundle: Path, images: dict[str, list[Path]], tmp_path: Path
) -> None:
    """stb_image and libjpeg decode JPEG slightly differently: inputs agree closely."""
    man = read_manifest(bundle)
    out = tmp_path / "inputs.f32"
    q = images["queries"][:3]
    _run(_host("--bundle", str(bundle), "--inputs-out", str(out), *map(str, q)))
    got = np.fromfile(out, np.float32).reshape(len(q), 3, *SIZE)
    for i, p in enumerate(q):
        ref = load_tensor(p, man.preprocessing).numpy()
        assert float(np.abs(got[i] - ref).mean()) < 0.02  # ~1 grey level in 255, normalised


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
    doc = _run(
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
    results = doc["results"]
    assert isinstance(results, list)
    got = np.array([[e["id"] for e in r["top"]] for r in results])
    np.testing.assert_array_equal(got[:, 0], np.asarray(ids)[:, 0])
    assert results[0]["top"][0]["name"] == refs[int(ids[0][0])].name
    # C++ on the JPEGs themselves (stb decode): close to Python
    doc2 = _run(_host("--bundle", str(bundle), "--descriptors-out", str(dfile), *map(str, queries)))
    assert doc2["model"] == man.model_name
    assert (_descriptors(dfile, b.descriptor_dim) * py_q).sum(1).min() > 0.995


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
    err = _refused(_host("--bundle", str(bundle), str(bomb_png)))
    assert "claims 20000 x 20000 pixels, over the limit of 67108864" in err


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
    hr, ar = host["results"], arm["results"]
    assert isinstance(hr, list) and isinstance(ar, list)
    assert [r["top"][0]["id"] for r in hr] == [r["top"][0]["id"] for r in ar]


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
        if p.returncode == 1:  # refused in one line
            lines = p.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("vpr-localize: error: "), p.stderr
    assert outcomes.count(1) > 0  # most damage is caught and refused, in one line
