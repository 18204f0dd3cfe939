"""The end-to-end pipeline on a real (small) dataset: int8 export, map, localization."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpr_embedded.bundle import read_manifest
from vpr_embedded.maps import Map
from vpr_embedded.pipeline import PipelineConfig, PipelineReport, run_pipeline


@pytest.fixture(scope="module")
def run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PipelineReport]:
    out = tmp_path_factory.mktemp("pipeline")
    cfg = PipelineConfig(
        dataset=str(shared_data / "gardens_point_sample"),
        out=str(out),
        input_size=(96, 160),
        calib_count=10,
        sequence=3,
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


def test_report_is_consistent(run: tuple[Path, PipelineReport]) -> None:
    _, report = run
    r = [report.recall[f"R@{n}"] for n in (1, 5, 10, 20)]
    assert r == sorted(r) and r[-1] == 1.0  # 10 places: the top-20 holds them all
    assert report.export_checks["fully_delegated"] is True
    assert report.export_checks["parity_min_cosine"] >= 0.98
    assert report.sequence_recall is not None and report.eager_fp32_recall is not None
    assert report.map_bytes_per_place < 1400  # 1280 int8 codes + scale + name + header share
    assert report.extract_ms["median"] > 0 and report.match_ms["median"] > 0
