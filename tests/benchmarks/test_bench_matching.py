"""bench_matching.py's target verdicts (ties within 5%, as DESIGN.md asks) and the machine
record every run carries; run on synthetic rows, no timing."""

from __future__ import annotations

import bench_matching as bm
from _common import machine_info, machine_line


def _row(method: str, ms: float, *, ours: bool, n: int = 100_000, d: int = 256,
         storage: str = "int8", threads: int = 1, x_bound: float = 1.0,
         qps: float = 100.0) -> dict:  # fmt: skip
    return {"n": n, "d": d, "storage": storage, "threads": threads, "method": method,
            "ours": ours, "single_median_ms": ms, "x_bound": x_bound, "batch_qps": qps}  # fmt: skip


def test_judge_calls_a_margin_under_five_percent_a_tie() -> None:
    assert bm.judge(0.90, 1.0) == "PASS"
    assert bm.judge(0.97, 1.0) == "TIE"
    assert bm.judge(1.04, 1.0) == "TIE"
    assert bm.judge(1.10, 1.0) == "FAIL"


def test_single_query_targets_compare_with_the_best_yardstick_and_the_bound() -> None:
    rows = [
        _row("ours int8 (i8 q)", 1.95, ours=True, x_bound=1.5),
        _row("simsimd int8 dot", 3.0, ours=False),
        _row("numkong i8 dots_packed", 1.9, ours=False),
    ]
    lines = bm.target_single(rows, 1.25)
    d256 = [line for line in lines if "D=256 int8" in line or "int8 ratio" in line]
    assert d256[0].endswith("TIE")  # 1.95 vs the best yardstick 1.9: within 5%
    assert d256[1].endswith("FAIL")  # 1.5x bound against 1.25
    assert any("D=512" in line and "n/a" in line for line in lines)


def test_batch_int8_must_reach_twice_numkong() -> None:
    rows = [
        _row("ours int8 (i8 q)", 1.0, ours=True, qps=300.0),
        _row("numkong i8 dots_packed", 1.0, ours=False, qps=100.0),
        _row("ours float32", 1.0, ours=True, storage="float32", qps=100.0),
        _row("numpy matmul+argpartition", 1.0, ours=False, storage="float32", qps=120.0),
    ]
    lines = bm.target_batch(rows)
    assert any("int8" in line and line.endswith("PASS") for line in lines)  # 300 >= 2 x 100
    assert any("float32" in line and line.endswith("FAIL") for line in lines)  # 100 < 120


def test_every_run_names_its_machine() -> None:
    info = machine_info()
    for key in ("date_utc", "vendor", "family", "model", "stepping", "model_name", "flags"):
        assert info[key] not in (None, "")
    line = machine_line(info, 12.3e9)
    assert "12.3 GB/s" in line and str(info["model_name"]) in line and "UTC" in line
