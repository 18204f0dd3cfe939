"""`vpr-embedded kernels` and the per-CPU kernel choice: measured once, cached per CPU,
re-measured when the cache is stale or damaged, and never in the way of a search."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from vpr_embedded.kernels import KernelsConfig, run_kernels
from vpr_embedded.matching import Index, available_simd_levels, kernel_tuning

SEARCH_THEN_REPORT = """
import json, numpy as np
from vpr_embedded.matching import Index, kernel_tuning
rng = np.random.default_rng(0)
db = rng.standard_normal((3000, 256)).astype(np.float32)
db /= np.linalg.norm(db, axis=1, keepdims=True)
ids = Index.encode(db, "int8").search(db[:5], 1).ids[:, 0].tolist()
t = kernel_tuning()
print(json.dumps({"ids": ids, "source": t["source"], "note": t["cache_note"],
                  "chosen": [p["chosen"] for p in t["picks"]]}))
"""


def _search_in_new_process(cache: Path | str, mode: str = "auto") -> dict:
    env = {**os.environ, "VPR_KERNEL_CACHE": str(cache), "VPR_KERNEL_TUNING": mode,
           "VPR_KERNEL_TUNING_BYTES": str(4 << 20)}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", SEARCH_THEN_REPORT], env=env, capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout)


def _candidates() -> set[str]:
    levels = [lv for lv in available_simd_levels() if lv != "scalar"]
    return {f"{lv}/{order}" for lv in levels for order in ("sequential", "sequential+prefetch", "interleaved")}


def test_the_choice_in_use_is_reported_with_its_reasons() -> None:
    t = kernel_tuning()
    assert t["cpu"]
    assert len(t["picks"]) == 6  # dot_f32, dot_f16, dot_i8 x short / long rows
    kernels = {(p["kernel"], p["min_dim"]) for p in t["picks"]}
    assert kernels == {(k, d) for k in ("dot_f32", "dot_f16", "dot_i8") for d in (1, 513)}
    for p in t["picks"]:
        assert p["why"]
        if _candidates():
            assert p["chosen"] in _candidates()


def test_measuring_now_times_every_candidate_without_changing_the_choice() -> None:
    before = [p["chosen"] for p in kernel_tuning()["picks"]]
    fresh = kernel_tuning(measure=True)
    for p in fresh["picks"]:
        assert {c["variant"] for c in p["candidates"]} == _candidates()
        assert all(c["median_ms"] > 0 for c in p["candidates"])
    assert [p["chosen"] for p in kernel_tuning()["picks"]] == before


def test_cache_is_written_once_then_read(tmp_path: Path) -> None:
    cache = tmp_path / "sub" / "tuning.txt"
    first = _search_in_new_process(cache)
    assert first["source"] == "measured" and "written" in first["note"]
    assert cache.read_text().startswith("vpr-kernel-tuning 1\n")
    second = _search_in_new_process(cache)
    assert second["source"] == "cache" and second["note"] == "read"
    assert second["chosen"] == first["chosen"]
    assert second["ids"] == first["ids"] == [0, 1, 2, 3, 4]


def test_damaged_or_foreign_cache_is_measured_again_and_replaced(tmp_path: Path) -> None:
    cache = tmp_path / "tuning.txt"
    _search_in_new_process(cache)
    good = cache.read_text()
    damages = [
        "garbage\n",
        good.replace("cpu ", "cpu another "),
        good.replace("pick dot_i8", "pick dot_q9"),
        good[: len(good) // 2],
    ]
    for damaged in damages:
        cache.write_text(damaged)
        got = _search_in_new_process(cache)
        assert got["source"] == "measured", damaged
        assert "measured again" in got["note"] and "written" in got["note"]
        assert got["ids"] == [0, 1, 2, 3, 4]
        assert cache.read_text().startswith("vpr-kernel-tuning 1\n")


def test_unwritable_cache_and_tuning_off_still_search(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    got = _search_in_new_process(blocker / "tuning.txt")  # parent is a file: cannot write
    assert got["source"] == "measured" and "not written" in got["note"]
    assert got["ids"] == [0, 1, 2, 3, 4]
    off = _search_in_new_process(tmp_path / "unused.txt", mode="off")
    assert off["source"].startswith("default")
    assert not (tmp_path / "unused.txt").exists()
    assert off["ids"] == [0, 1, 2, 3, 4]


def test_cli_prints_the_report_and_json() -> None:
    text = run_kernels(KernelsConfig())
    assert "cpu:" in text and "dot_i8" in text
    data = json.loads(run_kernels(KernelsConfig(json=True)))
    assert len(data["picks"]) == 6
    rng = np.random.default_rng(1)
    db = rng.standard_normal((100, 64)).astype(np.float32)
    assert Index.encode(db, "float32").search(db[:1], 1).ids[0, 0] == 0
