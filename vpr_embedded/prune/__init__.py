"""Structured pruning: backbone channels (Torch-Pruning DepGraph), descriptor
dimensions (own slicing per head), iterative schedules and label-free recovery.

Importance -> Pruner -> Group, in Torch-Pruning's words; the result is a native
checkpoint (config with the pruned widths + state_dict) that loads without it.
"""

from vpr_embedded.prune.config import PruneConfig, RecoveryConfig
from vpr_embedded.prune.descriptor import (
    energy_importance,
    l1_importance,
    prune_descriptor_units,
    select_units,
    structure,
)
from vpr_embedded.prune.run import PruneResult, StepRecord, prune_model, run_prune, steps_dir
from vpr_embedded.prune.widths import read_config, rebuild

__all__ = [
    "PruneConfig",
    "PruneResult",
    "RecoveryConfig",
    "StepRecord",
    "energy_importance",
    "l1_importance",
    "prune_descriptor_units",
    "prune_model",
    "read_config",
    "rebuild",
    "run_prune",
    "select_units",
    "steps_dir",
    "structure",
]
