"""build-map / append / localize from images, with an eager model on real images."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vpr_embedded.cli import main
from vpr_embedded.localize import (
    AppendConfig,
    BuildMapConfig,
    append_images,
    build_map_from_images,
    localize,
    open_model,
    read_positions,
)
from vpr_embedded.maps import Map

MODEL = "efficientnet_lite0-gem"


@pytest.fixture(scope="module")
def gardens(shared_data: Path) -> Path:
    return shared_data / "gardens_point_sample"


@pytest.fixture(scope="module")
def gardens_map(gardens: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("maps") / "gardens.vprmap"
    build_map_from_images(
        BuildMapConfig(model=MODEL, images=gardens / "ref", out=out, storage="float32", threads=1)
    )
    return out


def test_build_map_records_the_model(gardens_map: Path) -> None:
    m = Map.open(gardens_map)
    assert m.count == 10 and m.dim == 1280 and m.storage == "float32"
    assert m.model_sha256 == open_model(MODEL).sha256
    assert m.names == [f"{i}.jpg" for i in range(10)]


def test_localize_finds_the_place_of_a_reference_image(gardens: Path, gardens_map: Path) -> None:
    # A reference image must find itself first, with a score of ~1.
    results = list(localize(MODEL, gardens_map, [gardens / "ref" / "3.jpg"], k=3, threads=1))
    assert results[0]["ids"][0] == 3 and results[0]["names"][0] == "3.jpg"
    assert results[0]["scores"][0] == pytest.approx(1.0, abs=1e-4)
    assert results[0]["scores"] == sorted(results[0]["scores"], reverse=True)


def test_localize_with_sequences_returns_k_places(gardens: Path, gardens_map: Path) -> None:
    frames = sorted((gardens / "query").glob("*.jpg"), key=lambda p: int(p.stem))
    results = list(
        localize(MODEL, gardens_map, frames, k=2, sequence=3, sequence_window=4, threads=1)
    )
    assert len(results) == 10 and all(len(r["ids"]) == 2 for r in results)
    assert all(r["sequence"]["length"] == 3 and len(r["sequence"]["ids"]) == 2 for r in results)
    assert all(r["sequence"]["window"] == 4 for r in results)
    # The sequence field is the matcher's answer over these frames, in order.
    from vpr_embedded.sequence import SequenceConfig, SequenceMatcher

    model = open_model(MODEL, threads=1)
    the_map = Map.open(gardens_map)
    matcher = SequenceMatcher(the_map, SequenceConfig(length=3, k=2, contrast_window=4))
    for r, frame in zip(results, frames, strict=True):
        d = model.embed_paths([frame])[0]
        found = matcher.push(d)
        assert r["sequence"]["ids"] == found.ids[0].tolist()
        np.testing.assert_allclose(r["sequence"]["scores"], found.scores[0, :2], rtol=1e-5)


def test_a_map_refuses_another_model(gardens: Path, gardens_map: Path) -> None:
    with pytest.raises(ValueError, match=MODEL):  # before any frame, not per frame
        localize("efficientnet_lite0-avg", gardens_map, [gardens / "query" / "0.jpg"])


def test_cli_localize_streams_a_folder_past_a_bad_frame(
    gardens: Path,
    gardens_map: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    check_frame_lines: Callable[[str], list[dict[str, object]]],
) -> None:
    """A corrupt JPEG among good frames: an error line for it, results for the others
    (before, the first bad file stopped the command and lost every result)."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in (0, 1, 3):
        (frames / f"{i}.jpg").write_bytes((gardens / "query" / f"{i}.jpg").read_bytes())
    data = (gardens / "query" / "2.jpg").read_bytes()
    (frames / "2.jpg").write_bytes(data[: len(data) // 3])  # truncated mid-scan
    (frames / "4.jpg").write_bytes(b"not a jpeg at all")
    args = ["localize", "--model", MODEL, "--map", str(gardens_map), "--k", "2", "--threads", "1"]
    assert main([*args, "--dir", str(frames)]) == 1
    out = capsys.readouterr()
    lines = check_frame_lines(out.out)
    assert [line["frame"] for line in lines] == [0, 1, 2, 3, 4]
    assert ["error" in line for line in lines] == [False, False, True, False, True]
    assert "truncated" in str(lines[2]["error"]) and str(lines[2]["source"]).endswith("2.jpg")
    assert "2 of 5 frames failed" in out.err
    assert main([*args, "--dir", str(frames), "--on-bad-image", "skip"]) == 0
    assert len(check_frame_lines(capsys.readouterr().out)) == 5
    # Sequences with a position prior: every good line carries both answers.
    csv = tmp_path / "pos.csv"
    csv.write_text("name,easting,northing\n" + "".join(f"{i}.jpg,{10 * i},0\n" for i in range(10)))
    pos_map = tmp_path / "pos.vprmap"
    assert main(["build-map", "--model", MODEL, "--images", str(gardens / "ref"), "--out",
                 str(pos_map), "--positions", str(csv), "--threads", "1"]) == 0  # fmt: skip
    capsys.readouterr()
    seq = ["--map", str(pos_map), "--sequence", "2", "--near", "10", "0", "--radius", "15"]
    assert main([*args[:3], *seq, "--k", "2", "--threads", "1", "--dir", str(frames)]) == 1
    good = [line for line in check_frame_lines(capsys.readouterr().out) if "error" not in line]
    assert len(good) == 3
    for line in good:
        assert set(line["ids"]) <= {0, 1, 2}  # type: ignore[arg-type]
        sequence = line["sequence"]
        assert isinstance(sequence, dict) and set(sequence["ids"]) <= {0, 1, 2}
        assert line["positions"] is not None


def test_append_adds_places_without_touching_old_ones(
    gardens: Path, gardens_map: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.vprmap"
    copy.write_bytes(gardens_map.read_bytes())
    before = np.array(Map.open(copy).codes)
    append_images(AppendConfig(model=MODEL, map=copy, images=gardens / "query", threads=1))
    after = Map.open(copy)
    assert after.count == 20
    assert np.array_equal(np.array(after.codes)[:10], before)
    assert after.names is not None and after.names[10] == "0.jpg"


def test_positions_csv(tmp_path: Path) -> None:
    csv = tmp_path / "pos.csv"
    csv.write_text("name,lat,lon\na.jpg,1.5,2.5\nb.jpg,3,4\n")
    positions, kind = read_positions(csv, ["b.jpg", "a.jpg"])
    assert kind == "latlon" and positions.tolist() == [[3.0, 4.0], [1.5, 2.5]]
    with pytest.raises(ValueError, match="no position for 1 images"):
        read_positions(csv, ["a.jpg", "c.jpg"])
    csv.write_text("name,x,y\na.jpg,1,2\n")
    with pytest.raises(ValueError, match="unknown position columns"):
        read_positions(csv, ["a.jpg"])


def test_cli_localize_prints_json_and_reports_errors(
    gardens: Path,
    gardens_map: Path,
    capsys: pytest.CaptureFixture[str],
    check_frame_lines: Callable[[str], list[dict[str, object]]],
) -> None:
    args = ["localize", "--model", MODEL, "--map", str(gardens_map), "--k", "2"]
    assert main([*args, "--image", str(gardens / "ref" / "7.jpg"), "--threads", "1"]) == 0
    (record,) = check_frame_lines(capsys.readouterr().out)
    assert record["ids"][0] == 7
    assert main([*args, "--image", "missing.jpg"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([*args, "--image", "a.jpg", "--dir", "b"]) == 2
    assert "exactly one" in capsys.readouterr().err


def test_cli_refuses_an_image_bomb_in_one_line(
    gardens_map: Path, bomb_png: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["localize", "--model", MODEL, "--map", str(gardens_map), "--image", str(bomb_png)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "over the limit of 67108864 (8192 x 8192)" in err[0], err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--k", "-1", "-1 is out of range: it must be at least 1"),
        ("--k", "1e3", "'1e3' is not an integer"),
        ("--threads", "x", "'x' is not an integer"),
        ("--threads", "5000", "it must be between 0 and 1024"),
    ],
)
def test_cli_parses_numbers_strictly(
    gardens_map: Path, flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["localize", "--model", MODEL, "--map", str(gardens_map), "--dir", "x", flag, value]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture()
def no_extraction(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts images extracted: checks that must come first leave it at 0."""
    from vpr_embedded import localize as stage

    calls: list[int] = []
    original = stage.DescriptorModel.embed_paths

    def counting(self: stage.DescriptorModel, paths: list[Path], desc: str = "") -> object:
        calls.append(len(paths))
        return original(self, paths, desc)

    monkeypatch.setattr(stage.DescriptorModel, "embed_paths", counting)
    return calls


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_build_map_refuses_a_folder_as_out_before_extracting(
    gardens: Path, tmp_path: Path, no_extraction: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["build-map", "--model", MODEL, "--images", str(gardens / "ref"), "--out", str(tmp_path)]
    assert "is a folder: give the map's file name" in _one_line_error(argv, capsys)
    assert no_extraction == []


def test_build_map_refuses_a_too_long_name_before_extracting(
    gardens: Path, tmp_path: Path, no_extraction: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / ("m" * 240 + ".vprmap")  # fits NAME_MAX, its temporary file does not
    argv = ["build-map", "--model", MODEL, "--images", str(gardens / "ref"), "--out", str(out)]
    assert "is too long: at most" in _one_line_error(argv, capsys)
    assert no_extraction == []


def test_build_map_refuses_non_utf8_file_names_before_extracting(
    gardens: Path, tmp_path: Path, no_extraction: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "refs"
    folder.mkdir()
    for p in sorted((gardens / "ref").glob("*.jpg"))[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    latin1 = os.fsdecode(b"caf\xe9.jpg")  # a Latin-1 file name: not UTF-8
    (folder / latin1).write_bytes((gardens / "ref" / "0.jpg").read_bytes())
    out = tmp_path / "m.vprmap"
    argv = ["build-map", "--model", MODEL, "--images", str(folder), "--out", str(out)]
    assert "place name b'caf\\xe9.jpg' is not valid UTF-8" in _one_line_error(argv, capsys)
    assert no_extraction == [] and not out.exists()


def test_cli_pq4_map_and_position_prior(
    gardens: Path, gardens_map: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """build-map --storage pq4 with re-rank codes and positions, then localize --near."""
    csv = tmp_path / "pos.csv"
    csv.write_text("name,easting,northing\n" + "".join(f"{i}.jpg,{10 * i},0\n" for i in range(10)))
    out = tmp_path / "pq.vprmap"
    build = ["build-map", "--model", MODEL, "--images", str(gardens / "ref"), "--out", str(out)]
    pq = ["--storage", "pq4", "--pq-m", "64", "--rerank", "int8", "--positions", str(csv)]
    assert main([*build, *pq, "--threads", "1"]) == 0
    capsys.readouterr()
    m = Map.open(out)
    assert m.storage == "pq4" and m.pq_info is not None and m.pq_info["rerank"] == "int8"
    args = ["localize", "--model", MODEL, "--map", str(out), "--k", "3", "--threads", "1"]
    image = ["--image", str(gardens / "ref" / "7.jpg")]
    assert main([*args, *image, "--near", "70", "0", "--radius", "15"]) == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record["ids"][0] == 7 and set(record["ids"]) == {6, 7, 8}
    # Nothing within the radius: an empty answer, not an error.
    assert main([*args, *image, "--near", "500", "0", "--radius", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip())["ids"] == []
    assert main([*args, *image, "--near", "70", "0"]) == 2
    assert "go together" in capsys.readouterr().err
    assert main(["localize", "--model", MODEL, "--map", str(gardens_map), *image,
                 "--near", "1", "2", "--radius", "3"]) == 2  # fmt: skip
    assert "no positions" in capsys.readouterr().err
    assert main([*build[:-1], str(tmp_path / "bad.vprmap"), "--storage", "pq4", "--pq-m", "6"]) == 2
    assert "does not divide" in capsys.readouterr().err


def test_frame_schema_accepts_the_good_fixtures_and_refuses_the_bad(
    check_frame_lines: Callable[[str], list[dict[str, object]]],
) -> None:
    """tests/fixtures/localize: the lines both writers are checked against."""
    folder = Path(__file__).parent / "fixtures" / "localize"
    assert len(check_frame_lines((folder / "good.jsonl").read_text())) == 4
    bad = [line for line in (folder / "bad.jsonl").read_text().splitlines() if line.strip()]
    assert len(bad) == 10
    for line in bad:
        with pytest.raises(AssertionError):
            check_frame_lines(line)
