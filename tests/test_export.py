"""ExecuTorch bundles: export (CLI and API), reload, run, delegation, tamper checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vpr_embedded import cli
from vpr_embedded.bundle import BundleError, load_bundle, read_manifest
from vpr_embedded.data.images import load_tensor
from vpr_embedded.export import ExportConfig, export_bundle
from vpr_embedded.models import build_model

SIZE = (64, 64)


@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "fp32"
    rc = cli.main(
        [
            "export",
            "--model",
            "resnet18-gem",
            "--input-size",
            *map(str, SIZE),
            "--quantize",
            "none",
            "--calib-images",
            str(shared_data / "corridor" / "ref"),
            "--parity-count",
            "4",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "int8"
    cfg = ExportConfig(
        quantize="int8",
        calib_images=shared_data / "corridor" / "ref",
        calib_count=4,
        parity_count=2,
        progress=False,
    )
    torch.manual_seed(0)
    # the default architecture: int8 (ReLU6, padding, GeM, L2) must be fully delegated
    model = build_model("efficientnet_lite0-gem", input_size=SIZE)
    res = export_bundle(model, out, cfg)
    assert res.delegation.fully_delegated, res.delegation.format()
    assert res.delegation.delegated_mac_share == 1.0
    assert len(res.parity_cosines) == 2
    # the pad-free form: TF "same" stride-2 pads became conv padding (models/rotate.py)
    assert "aten.constant_pad_nd.default" not in res.delegation.delegated_ops
    assert read_manifest(out).preprocessing.rotate_180
    return out


def test_fp32_round_trip(fp32_bundle: Path, shared_data: Path) -> None:
    man = read_manifest(fp32_bundle)
    raw = man.raw
    assert raw["format"] == "vpr-embedded-bundle" and raw["format_version"] == 1
    assert raw["model_config"]["backbone"] == "resnet18"
    assert raw["input"]["height"] == SIZE[0] and raw["input"]["colour_order"] == "RGB"
    assert raw["descriptor_dim"] == 512 and raw["quantization"]["mode"] == "none"
    assert raw["versions"]["executorch"].startswith("1.5")
    assert raw["delegation"]["fully_delegated"] is True
    assert raw["checks"]["parity_min_cosine"] >= 0.999
    b = load_bundle(fp32_bundle, threads=1)
    images = sorted((shared_data / "corridor" / "query").glob("*.jpg"))[:3]
    d = b.embed_images(images)
    ref = b.embed(torch.stack([load_tensor(p, b.preprocessing) for p in images]))
    np.testing.assert_array_equal(d, ref)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-4)
    rep = json.loads((fp32_bundle / "export_report.json").read_text())
    assert min(rep["parity_cosines"]) >= 0.999 and rep["passed"]


def test_int8_bundle_is_smaller_and_close(int8_bundle: Path) -> None:
    rep = json.loads((int8_bundle / "export_report.json").read_text())
    assert min(rep["parity_cosines"]) > 0.95  # random-size model; real targets: benchmark
    man = read_manifest(int8_bundle)
    assert man.quantization == "int8"
    assert man.raw["quantization"]["calibration_images"] == 4
    # The same architecture's float32 weights: int8 weights are a quarter of them, and the
    # few layers kept in float (the stem) leave the program well under 40 %.
    model = build_model("efficientnet_lite0-gem", input_size=SIZE)
    fp32_bytes = 4 * sum(t.numel() for t in model.state_dict().values())
    assert man.pte_bytes < 0.4 * fp32_bytes, (man.pte_bytes, fp32_bytes)
    b = load_bundle(int8_bundle)
    x = torch.zeros(2, 3, *SIZE)
    assert b.embed(x).shape == (2, b.descriptor_dim)
    with pytest.raises(ValueError, match="expected float32"):
        b.embed(torch.zeros(1, 3, 32, 32))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_tampered_pte_is_refused(fp32_bundle: Path, tmp_path: Path) -> None:
    b = _copy(fp32_bundle, tmp_path / "b")
    data = bytearray((b / "model.pte").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "model.pte").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"sha256 .* does not match"):
        load_bundle(b)
    (b / "model.pte").write_bytes(bytes(data[:-1]))
    with pytest.raises(BundleError, match="bytes"):
        load_bundle(b)
    (b / "model.pte").unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(b)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="other"), "not a vpr-embedded bundle manifest"),
        (lambda d: d.update(format_version=99), "version 99"),
        (lambda d: d["input"].update(height=96), "program takes input"),
        (lambda d: d.update(descriptor_dim=256), "descriptor_dim"),
        (lambda d: d["input"].update(std=[0.2, 0.0, 0.2]), "positive"),
        (lambda d: d["input"].update(colour_order="XYZ"), "colour_order"),
        (lambda d: d["input"].update(rotate_180="yes"), "rotate_180"),
        (lambda d: d["pte"].update(sha256="0" * 64), "does not match"),
        (lambda d: d["pte"].update(file="../model.pte"), "plain file name"),
        (lambda d: d.pop("model_config"), "lacks 'model_config'"),
    ],
)
def test_tampered_manifest_is_refused(
    fp32_bundle: Path, tmp_path: Path, edit: object, message: str
) -> None:
    b = _copy(fp32_bundle, tmp_path / "b")
    doc = json.loads((b / "manifest.json").read_text())
    assert callable(edit)
    edit(doc)
    (b / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=message):
        load_bundle(b)


def test_bad_manifest_json_and_missing_bundle(fp32_bundle: Path, tmp_path: Path) -> None:
    b = _copy(fp32_bundle, tmp_path / "b")
    (b / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(b)
    (b / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"manifest\.json is missing"):
        load_bundle(b)
    with pytest.raises(FileNotFoundError):
        load_bundle(tmp_path / "nothing")


def test_cli_errors(tmp_path: Path) -> None:
    rc = cli.main(["export", "--model", "no-such-model", "--out", str(tmp_path / "x")])
    assert rc == 2
    rc = cli.main(["export", "--model", "resnet18-gem", "--out", str(tmp_path / "y")])
    assert rc == 2  # int8 without --calib-images


def test_cli_keep_float_names_must_exist(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["export", "--model", "efficientnet_lite0-gem", "--input-size", "64", "64"]
    args += ["--calib-images", str(shared_data / "gardens_point_sample" / "ref")]
    rc = cli.main([*args, "--keep-float", "_stem", "--out", str(tmp_path / "z")])
    assert rc == 2
    assert "not a submodule" in capsys.readouterr().err


def test_a_damaged_program_with_a_matching_sha256_is_refused_in_one_line(
    fp32_bundle: Path, tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The sha256 in the manifest is recomputed, so only the runtime's own verification of
    # the program can refuse it (before, a RuntimeError traceback).
    import hashlib

    bundle = tmp_path / "damaged"
    shutil.copytree(fp32_bundle, bundle)
    data = bytearray((bundle / "model.pte").read_bytes())
    data[40:48] = b"\xff" * 8  # inside the program's flatbuffer tables
    (bundle / "model.pte").write_bytes(bytes(data))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["pte"]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not a valid ExecuTorch program"):
        load_bundle(bundle)
    image = shared_data / "gardens_point_sample" / "query" / "0.jpg"
    argv = ["localize", "--model", str(bundle), "--map", str(tmp_path / "x.vprmap")]
    assert cli.main([*argv, "--image", str(image)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "re-export the bundle" in err[0], err


def test_mixvpr_int8_is_fully_delegated(tmp_path: Path, shared_data: Path) -> None:
    """MixVPR's mixers normalise over the flattened spatial dim: that LayerNorm's means
    must reach XNNPACK too (a 3-D mean over the last dim once fell back to portable)."""
    from vpr_embedded.models.ops import LayerNormManual

    x = torch.randn(2, 5, 7)
    ln = LayerNormManual(7)
    torch.testing.assert_close(ln(x), torch.nn.functional.layer_norm(x, (7,)))
    cfg = ExportConfig(
        quantize="int8",
        calib_images=shared_data / "nordland_part1" / "summer",
        calib_count=4,
        parity_count=2,
        progress=False,
    )
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0-mixvpr", input_size=(64, 128))
    res = export_bundle(model, tmp_path / "mixvpr", cfg)
    assert res.delegation.fully_delegated, res.delegation.format()
    assert "aten.mean.dim" in res.delegation.delegated_ops
