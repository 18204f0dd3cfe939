"""`vpr-embedded kernels` and the kernel choice: a fixed table per microarchitecture
(no timing at start-up), `VPR_KERNEL_TUNING=off` for the default, and a measurement that
times every candidate without changing what searches use."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from vpr_embedded.kernels import KernelsConfig, run_kernels
from vpr_embedded.matching import Index, available_simd_levels, kernel_tuning

SEARCH_THEN_REPORT = """
import json, numpy as np
from vpr_embedded.matching import Index, kernel_tuning
rng = np.random.default_rng(0)
db = rng.standard_normal((3000, 256)).astype(np.float32)
db /= np.linalg.norm(db, axis=1, keepdims=True)
ids = {s: Index.encode(db, s).search(db[:5], 1).ids[:, 0].tolist()
       for s in ("float32", "float16", "int8")}
t = kernel_tuning()
print(json.dumps({"ids": ids, "source": t["source"],
                  "chosen": [p["chosen"] for p in t["picks"]]}))
"""


def _in_new_process(**env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", SEARCH_THEN_REPORT], env={**os.environ, **env},
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout)


def _candidates() -> set[str]:
    # scalar is the reference; amx's single-query kernels are avx512's, so not timed twice
    levels = [lv for lv in available_simd_levels() if lv not in ("scalar", "amx")]
    orders = ("sequential", "sequential+prefetch", "interleaved")
    split = {"avx512/sequential+split"} if "avx512" in levels else set()
    return {f"{lv}/{order}" for lv in levels for order in orders} | split


def _best_single_query_level() -> str:
    return [lv for lv in available_simd_levels() if lv != "amx"][-1]


def test_the_choice_in_use_is_reported_with_its_reasons() -> None:
    t = kernel_tuning()
    assert t["cpu"]
    assert t["source"].startswith(("table: ", "default"))
    assert len(t["picks"]) == 6  # dot_f32, dot_f16, dot_i8 x short / long rows
    kernels = {(p["kernel"], p["min_dim"]) for p in t["picks"]}
    assert kernels == {(k, d) for k in ("dot_f32", "dot_f16", "dot_i8") for d in (1, 513)}
    for p in t["picks"]:
        assert p["why"]
        assert p["candidates"] == []  # the table is not a measurement
        if _candidates():
            assert p["chosen"] in _candidates()


def test_the_same_machine_always_gets_the_same_choice_and_off_gives_the_default() -> None:
    first, second = _in_new_process(), _in_new_process()
    assert first == second
    off = _in_new_process(VPR_KERNEL_TUNING="off")
    assert off["source"] == "default (VPR_KERNEL_TUNING=off)"
    best = _best_single_query_level()
    assert all(c == f"{best}/sequential" for c in off["chosen"])
    assert off["ids"] == first["ids"] == {s: [0, 1, 2, 3, 4] for s in first["ids"]}


def test_measuring_now_times_every_candidate_without_changing_the_choice() -> None:
    before = [p["chosen"] for p in kernel_tuning()["picks"]]
    fresh = kernel_tuning(measure=True)
    assert fresh["source"].startswith("measured now")
    assert fresh["buffer_bytes"] == int(os.environ["VPR_KERNEL_TUNING_BYTES"])
    for p in fresh["picks"]:
        assert {c["variant"] for c in p["candidates"]} == _candidates()
        assert all(c["median_ms"] > 0 for c in p["candidates"])
        assert p["chosen"] in _candidates() | {f"{_best_single_query_level()}/sequential"}
    assert [p["chosen"] for p in kernel_tuning()["picks"]] == before


def test_cli_prints_the_report_and_json() -> None:
    text = run_kernels(KernelsConfig())
    assert "cpu:" in text and "dot_i8" in text
    data = json.loads(run_kernels(KernelsConfig(json=True)))
    assert len(data["picks"]) == 6
    rng = np.random.default_rng(1)
    db = rng.standard_normal((100, 64)).astype(np.float32)
    assert Index.encode(db, "float32").search(db[:1], 1).ids[0, 0] == 0
