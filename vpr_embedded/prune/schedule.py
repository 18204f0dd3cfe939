"""Iterative schedules: the cumulative targets reached after each step."""

from __future__ import annotations

import math


def ratio_schedule(target: float, steps: int, kind: str = "linear") -> list[float]:
    """Cumulative pruned fraction after steps 1..n. linear: equal fractions of the
    original removed per step; geometric: an equal fraction of what remains removed per
    step (gentler late steps, when the network has less slack)."""
    if kind == "linear":
        return [target * k / steps for k in range(1, steps + 1)]
    if kind == "geometric":
        return [1.0 - (1.0 - target) ** (k / steps) for k in range(1, steps + 1)]
    raise ValueError(f"unknown schedule {kind!r}; use linear or geometric")


def dim_schedule(start: int, target: int, steps: int, kind: str = "linear") -> list[int]:
    """Descriptor size after steps 1..n (the last one is exactly ``target``)."""
    if kind == "linear":
        dims = [round(start - (start - target) * k / steps) for k in range(1, steps + 1)]
    elif kind == "geometric":
        dims = [round(start * (target / start) ** (k / steps)) for k in range(1, steps + 1)]
    else:
        raise ValueError(f"unknown schedule {kind!r}; use linear or geometric")
    dims[-1] = target
    return dims


def round_width(width: float, multiple: int, current: int) -> int:
    """``width`` rounded UP to a multiple of ``multiple`` (never above ``current``): a
    layer never loses more than asked, so thin early layers (16, 24 channels) are
    spared rather than halved."""
    if multiple <= 1:
        return max(1, min(current, math.ceil(width - 1e-9)))
    return max(min(multiple, current), min(current, multiple * math.ceil(width / multiple - 1e-9)))
