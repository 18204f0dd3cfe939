"""`vpr-embedded kernels`: which matching kernel this CPU uses, and the timings behind it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from vpr_embedded.matching import kernel_tuning
from vpr_embedded.settings import option


@dataclass(frozen=True)
class KernelsConfig:
    """`vpr-embedded kernels`: the per-CPU kernel choice of the C++ core and why it was made.

    The choice is measured once per CPU and cached; --measure times every candidate again
    now (about half a second) and shows the result without changing the cached choice.
    """

    measure: bool = option(False, "time the candidates now")
    json: bool = option(False, "print JSON instead of text")


def run_kernels(cfg: KernelsConfig) -> str:
    """The report of the tuning searches use (or of a fresh measurement)."""
    tuning = kernel_tuning(measure=cfg.measure)
    if cfg.json:
        return json.dumps(tuning, indent=1)
    return str(tuning["report"])
