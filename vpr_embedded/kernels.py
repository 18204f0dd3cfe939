"""`vpr-embedded kernels`: which matching kernel this CPU uses, and why."""

from __future__ import annotations

import json
from dataclasses import dataclass

from vpr_embedded.matching import kernel_tuning
from vpr_embedded.settings import option


@dataclass(frozen=True)
class KernelsConfig:
    """`vpr-embedded kernels`: the C++ core's kernel choice for this CPU and why.

    The choice comes from a fixed table per microarchitecture (docs/matching_speed.md);
    --measure times every candidate now (about a second) and shows what the measurement
    would choose, without changing what searches use: the way a table entry is made.
    """

    measure: bool = option(False, "time the candidates now")
    json: bool = option(False, "print JSON instead of text")


def run_kernels(cfg: KernelsConfig) -> str:
    """The report of the tuning searches use (or of a fresh measurement)."""
    tuning = kernel_tuning(measure=cfg.measure)
    if cfg.json:
        return json.dumps(tuning, indent=1)
    return str(tuning["report"])
