"""The model zoo: entries packed at fp16 with provenance, loaded by name, and the shipped
entries match their records (sha256, sizes, and the recall they report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vpr_embedded.models import build_model, save_checkpoint
from vpr_embedded.models.checkpoints import load_checkpoint
from vpr_embedded.models.embed import exact_recall
from vpr_embedded.models.loading import load_model
from vpr_embedded.models.zoo import (
    MAX_ENTRY_BYTES,
    MAX_ZOO_BYTES,
    ZOO_DIR,
    ZooPackJob,
    provenance,
    run_zoo_pack,
    sha256_of,
    zoo_names,
)


def test_pack_writes_fp16_weights_and_a_provenance_record(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VPR_DATA_DIR", str(shared_data))
    model = build_model("efficientnet_lite0-gem", input_size=(32, 64))
    ckpt = tmp_path / "best.pt"
    save_checkpoint(model, ckpt)
    job = ZooPackJob(
        checkpoint=ckpt,
        name="tiny",
        command="vpr-embedded train ...",
        evaluate=("gardens_point_sample",),
        zoo_dir=tmp_path / "zoo",
    )
    text = run_zoo_pack(job)
    assert "gardens_point_sample" in text
    stored = torch.load(str(tmp_path / "zoo" / "tiny.pt"), weights_only=True)
    assert stored["state_dict"]["backbone._conv_stem.weight"].dtype == torch.float16
    record = json.loads((tmp_path / "zoo" / "tiny.json").read_text())
    assert record["sha256"] == sha256_of(tmp_path / "zoo" / "tiny.pt")
    assert record["input_size"] == [32, 64]
    [row] = record["recall"]
    # The record is the recall of the fp16 weights as users load them.
    again = exact_recall(load_checkpoint(tmp_path / "zoo" / "tiny.pt"), _dataset(shared_data))
    assert row["R@1"] == again["R@1"]


def _dataset(root: Path):  # type: ignore[no-untyped-def]
    from vpr_embedded.data.datasets import load_dataset

    return load_dataset(root / "gardens_point_sample")


def test_an_unknown_zoo_name_lists_the_zoo() -> None:
    with pytest.raises(ValueError, match="no zoo model 'nope'; the zoo has"):
        load_model("zoo:nope")


def test_the_shipped_zoo_fits_its_limits() -> None:
    sizes = [(ZOO_DIR / f"{n}.pt").stat().st_size for n in zoo_names()]
    assert all(s <= MAX_ENTRY_BYTES for s in sizes)
    assert sum(sizes) <= MAX_ZOO_BYTES


@pytest.mark.parametrize("name", zoo_names())
def test_a_shipped_entry_matches_its_record(
    name: str, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vpr_embedded.data.datasets import load_dataset

    monkeypatch.setenv("VPR_DATA_DIR", str(shared_data))
    record = provenance(name)
    path = ZOO_DIR / f"{name}.pt"
    assert record["sha256"] == sha256_of(path)
    for key in ("command", "commit", "training", "recall"):
        assert record[key], key
    model = load_model(f"zoo:{name}")
    assert list(model.config.input_size) == record["input_size"]
    # The reported test-segment recall is what the shipped weights give here.
    row = next(r for r in record["recall"] if r["dataset"].endswith("@test"))
    dataset, _, segment = row["dataset"].partition("@")
    got = exact_recall(model, load_dataset(dataset, split=segment))
    assert got["R@1"] == pytest.approx(row["R@1"], abs=1.5 / row["queries"])
