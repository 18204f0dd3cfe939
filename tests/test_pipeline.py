"""The end-to-end pipeline on a real (small) dataset: int8 export, map, localization."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vpr_embedded.bundle import load_bundle, read_manifest
from vpr_embedded.data.datasets import load_dataset
from vpr_embedded.maps import Map
from vpr_embedded.pipeline import PipelineConfig, PipelineReport, run_pipeline
from vpr_embedded.sequence import SequenceConfig, SequenceMatcher


@pytest.fixture(scope="module")
def run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PipelineReport]:
    out = tmp_path_factory.mktemp("pipeline")
    cfg = PipelineConfig(
        dataset=str(shared_data / "gardens_point_sample"),
        out=str(out),
        input_size=(96, 160),
        calib_count=10,
        sequence=3,
        compare=("efficientnet_lite0-avg",),
    )
    return out, run_pipeline(cfg)


def test_every_artefact_is_written(run: tuple[Path, PipelineReport]) -> None:
    out, report = run
    manifest = read_manifest(out / "bundle")  # validates the .pte against its sha256
    assert manifest.quantization == "int8"
    the_map = Map.open(out / "map.vprmap", manifest.pte_sha256)
    assert the_map.count == report.references == 10 and the_map.storage == "int8"
    lines = (out / "localize.jsonl").read_text().splitlines()
    assert len(lines) == report.queries == 10
    assert json.loads((out / "report.json").read_text())["recall"] == report.recall
    assert json.loads((out / "config.json").read_text())["input_size"] == [96, 160]


def test_report_is_consistent(run: tuple[Path, PipelineReport], shared_data: Path) -> None:
    out, report = run
    ds = load_dataset(shared_data / "gardens_point_sample")
    lines = [json.loads(line) for line in (out / "localize.jsonl").read_text().splitlines()]
    # Recall recomputed from the per-query results the pipeline wrote.
    for n in (1, 5):
        hits = [bool(set(q["ids"][:n]) & set(ds.positives[i])) for i, q in enumerate(lines)]
        assert report.recall[f"R@{n}"] == pytest.approx(float(np.mean(hits))), n
    times = [q["extract_ms"] for q in lines]  # per query, rounded to 1 us
    assert report.extract_ms["median"] == pytest.approx(float(np.median(times)), abs=1e-3)
    assert report.export_checks["fully_delegated"] is True
    assert report.export_checks["parity_min_cosine"] >= 0.98
    # Sequence recall recomputed: the bundle's query descriptors through the map's matcher.
    manifest = read_manifest(out / "bundle")
    the_map = Map.open(out / "map.vprmap", manifest.pte_sha256)
    bundle = load_bundle(out / "bundle", threads=1)
    descriptors = bundle.embed_images(list(ds.queries))
    seq = SequenceMatcher(the_map, SequenceConfig(length=3, k=1)).match(descriptors)
    seq_hits = [int(seq.ids[i, 0]) in set(ds.positives[i]) for i in range(len(lines))]
    assert report.sequence_recall is not None
    assert report.sequence_recall["R@1"] == pytest.approx(float(np.mean(seq_hits)))
    assert report.eager_fp32_recall is not None
    assert set(report.eager_fp32_recall) == set(report.recall)
    assert report.map_bytes_per_place < 1400  # 1280 int8 codes + scale + name + header share
    assert report.map_bytes == (out / "map.vprmap").stat().st_size


def test_a_compared_model_is_deployed_alike_and_tabled_side_by_side(
    run: tuple[Path, PipelineReport],
) -> None:
    out, report = run
    [other] = report.compared
    assert other.model != report.model
    assert (out / "compare-1" / "bundle" / "model.pte").is_file()
    assert Map.open(out / "compare-1" / "map.vprmap").count == 10
    assert other.eager_fp32_recall is None  # the yardstick is the first model's
    assert other.sequence_recall is not None
    table = report.side_by_side().splitlines()
    assert len(table) == 2 + 3  # header, rule, two deployed models, one yardstick
    assert table[3].startswith(f"| {other.model} int8 deployed |")
    cells = [c.strip() for c in table[3].strip("|").split("|")]
    assert float(cells[1]) == pytest.approx(other.pte_bytes / 1e6, abs=0.005)
    assert float(cells[5].split()[0]) == pytest.approx(other.recall["R@1"], abs=5e-4)
    assert "95% CI" in cells[5]  # the paired difference to the first model
    assert np.mean(other.hits_at_1) == pytest.approx(other.recall["R@1"])
    assert float(cells[6]) == pytest.approx(other.sequence_recall["R@1"], abs=5e-4)
    assert "eager fp32 (yardstick)" in table[4]


def test_a_parity_miss_stops_unless_reported(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vpr_embedded.export as export
    from vpr_embedded.pipeline import _export

    class Missed:
        passed = False
        quantize = "int8"
        parity_cosines = (0.97,)

        def __init__(self, failures: list[str]) -> None:
            self.failures = failures
            self.delegation = type("D", (), {"fully_delegated": True})()

        def format(self) -> str:
            return "export report"

    ds = load_dataset(shared_data / "gardens_point_sample")
    for failures, report, stops in (
        (["parity: min cosine 0.97 < 0.98"], False, True),
        (["parity: min cosine 0.97 < 0.98"], True, False),
        (["delegation: 2 ops fell back"], True, True),  # only parity may be reported
    ):
        monkeypatch.setattr(export, "export_bundle", lambda *a, f=failures, **k: Missed(f))
        cfg = PipelineConfig(dataset=str(ds), out=str(tmp_path), parity_stops=not report)
        if stops:
            with pytest.raises(ValueError, match="export checks failed"):
                _export(None, ds, cfg, tmp_path)
        else:
            checks, _ = _export(None, ds, cfg, tmp_path)
            assert checks["failures"] == failures
