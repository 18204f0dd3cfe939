"""Pruning sweep, report: costs and recall relative to the unpruned teacher, as a table."""

from __future__ import annotations

from typing import Any

from vpr_embedded.data.datasets import PlaceDataset

from .config import (
    SEED_PAPER,
    TARGET,
)


def judged(keys: Any) -> list[str]:
    """The recall columns the targets are judged (and the Pareto fronts drawn) on: corridor
    and nordland_part1, or its test segment when it is measured by segments (the last
    named segment if test is not among them)."""
    keys = list(keys)
    nord = [k for k in keys if k.startswith("nordland_part1")]
    if "nordland_part1@test" in nord:
        nord = ["nordland_part1@test"]
    return [k for k in keys if k == "corridor"] + nord[-1:]


def relative(rows: list[dict[str, Any]], datasets: dict[str, PlaceDataset]) -> None:
    """Changes vs the unpruned model of the same backbone, and the target verdicts."""
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["kind"] == "unpruned")
        if r["kind"] != "pruned":
            r["recall_drop"] = {k: base["recall"][k]["1"] - v["1"] for k, v in r["recall"].items()}
            continue
        lat = {}
        for key in ("eager_ms", "pte_fp32_ms", "pte_int8_ms"):
            if key in r and key in base:
                lat[key] = 1.0 - r[key] / base[key]
        r["latency_reduction"] = lat
        r["memory_reduction"] = {
            k: 1.0 - memory_bytes(r, ds) / memory_bytes(base, ds)
            for k, ds in datasets.items()
            if k in judged(datasets)
        }
        r["recall_drop"] = {k: base["recall"][k]["1"] - v["1"] for k, v in r["recall"].items()}
        checked = [k for k in judged(datasets) if k in r["recall_drop"]]
        xl = min(lat.get("pte_fp32_ms", -1.0), lat.get("pte_int8_ms", -1.0))
        if "pte_fp32_ms" not in lat:
            xl = lat.get("eager_ms", -1.0)
        r["meets_target"] = bool(
            xl >= TARGET["latency"]
            and min(r["memory_reduction"].values()) >= TARGET["memory"]
            and max(r["recall_drop"][k] for k in checked) <= TARGET["recall_drop"] + 1e-9
        )
        r["beats_seed_paper"] = bool(
            xl >= SEED_PAPER["latency"]
            and min(r["memory_reduction"].values()) >= SEED_PAPER["memory"]
            and max(r["recall_drop"][k] for k in checked) <= TARGET["recall_drop"] + 1e-9
        )


def table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r["recall"]))  # in measured order
    short = {"corridor": "corr", "nordland_part1": "nord", "gardens_point_sample": "gp"}

    def name(k: str) -> str:
        base, _, seg = k.partition("@")
        return short.get(base, base) + (f" {seg}" if seg else "")

    mem_cols = judged(columns)
    head = [
        "model", "kind", "ratio", "seed", "dim", "params", "MMACs", "fp32 MB", "int8 pte MB",
        "eager ms", "xnn fp32 ms", "xnn int8 ms", "match ms 100k",
        *(f"R@{n} {name(k)}" for k in columns for n in (1, 5)),
        "lat cut int8", *(f"mem cut {name(k)}" for k in mem_cols), "target",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for r in rows:
        rc = r["recall"]
        lat = r.get("latency_reduction", {})
        mem = r.get("memory_reduction", {})
        cells = [
            r["model"], r["kind"], f"{r['ratio']:.2f}", str(r["seed"]), str(r["dim"]),
            f(r.get("parameters"), ","), f(r.get("macs", 0) / 1e6 if "macs" in r else None, ".0f"),
            f(r.get("model_bytes_fp32", 0) / 1e6 if "model_bytes_fp32" in r else None, ".2f"),
            f(r["pte_int8_bytes"] / 1e6 if "pte_int8_bytes" in r else None, ".2f"),
            f(r.get("eager_ms"), ".1f"), f(r.get("pte_fp32_ms"), ".1f"),
            f(r.get("pte_int8_ms"), ".2f"), f(r.get("match_ms_100k"), ".2f"),
            *(f(rc.get(k, {}).get(str(n)), ".3f") for k in columns for n in (1, 5)),
            f(lat.get("pte_int8_ms"), "+.1%"), *(f(mem.get(k), "+.1%") for k in mem_cols),
            {True: "yes", False: "no"}.get(r.get("meets_target"), "-"),  # type: ignore[arg-type]
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def memory_bytes(row: dict[str, Any], ds: PlaceDataset) -> int:
    """Model (int8 .pte if exported, else fp32 state) + float32 map of the references."""
    model = row.get("pte_int8_bytes") or row["model_bytes_fp32"]
    return int(model) + len(ds.references) * int(row["map_bytes_per_place"])
