"""Evaluation: recall on a hand-made example, MAC counter, end to end on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vpr_embedded.evaluate import EvaluateConfig, count_macs, evaluate
from vpr_embedded.metrics import recall_at_n
from vpr_embedded.models import build_model


def test_recall_hand_made() -> None:
    ids = np.array([[3, 1, 2], [0, 2, 1], [2, 0, 1], [1, 2, 3]])
    positives = [np.array([1]), np.array([0]), np.array([3]), np.array([], dtype=np.int64)]
    r = recall_at_n(ids, positives, (1, 2, 3))
    # query 3 has no positive -> excluded; q0 hit at rank 2, q1 at 1, q2 never
    assert r == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 3: pytest.approx(2 / 3)}


def test_count_macs_conv_linear() -> None:
    m = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 7)
    )
    assert count_macs(m, torch.zeros(1, 3, 5, 5)) == 4 * 25 * 3 * 9 + 100 * 7


@pytest.mark.parametrize("name", ["efficientnet_lite0-gem", "efficientnet_lite0-netvlad"])
def test_evaluate_gardens_end_to_end(name: str, tmp_path: Path, shared_data: Path) -> None:
    from vpr_embedded.data.datasets import load_dataset
    from vpr_embedded.data.images import load_tensor

    model = build_model(name, input_size=(64, 96))
    ds = load_dataset(shared_data / "gardens_point_sample")
    cfg = EvaluateConfig(
        batch_size=5, out_dir=tmp_path, progress=False, examples=2, netvlad_init_images=4
    )
    r = evaluate(model, ds, cfg)
    assert set(r.recall) == {"1", "5", "10", "20"}
    # The same recall from the model's own descriptors, ranked by numpy (evaluate
    # initialised the NetVLAD centroids in place, so the model is the evaluated one).
    with torch.no_grad():
        refs = model(torch.stack([load_tensor(p, model.preprocessing) for p in ds.references]))
        queries = model(torch.stack([load_tensor(p, model.preprocessing) for p in ds.queries]))
    ranked = np.argsort(-(queries.numpy() @ refs.numpy().T), axis=1, kind="stable")
    for n in (1, 5):
        hits = [bool(set(ranked[i, :n]) & set(ds.positives[i])) for i in range(len(ds.queries))]
        assert r.recall[str(n)] == pytest.approx(float(np.mean(hits)), abs=1e-6), n
    assert r.descriptor_dim == model.descriptor_dim
    assert r.map_bytes_per_place >= 4 * r.descriptor_dim
    assert r.parameters > 3_000_000 and r.macs > 0
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["dataset"] == "gardens_point_sample"
    assert (tmp_path / "examples.png").stat().st_size > 1000
    assert (tmp_path / "config.json").is_file()


def test_device_is_checked_before_any_work(tmp_path: Path, shared_data: Path) -> None:
    from vpr_embedded.cli import main
    from vpr_embedded.devices import torch_device

    assert torch_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a device"):
        torch_device("nowhere")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            torch_device("cuda")
    out = tmp_path / "ev"
    cmd = ["evaluate", "--model", "efficientnet_lite0-gem", "--input-size", "64", "64",
           "--dataset", str(shared_data / "gardens_point_sample"), "--out", str(out)]  # fmt: skip
    assert main([*cmd, "--device", "nowhere"]) == 2 and not out.exists()
