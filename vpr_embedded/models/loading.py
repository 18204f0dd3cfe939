"""One way to turn a model spec into a model: ``load_model``.

A spec is a checkpoint file (native or a supported foreign format, models/checkpoints.py),
a zoo entry ``zoo:NAME`` (models/zoo.py) or a registry name (``vpr-embedded models``).
Every stage that takes ``--model`` for an eager model resolves it here; bundles (the
device form) are opened by ``vpr_embedded.localize.open_model``, which uses this for
everything else.
"""

from __future__ import annotations

from pathlib import Path

from vpr_embedded.models.checkpoints import load_checkpoint
from vpr_embedded.models.vpr import VPRModel, build_model, list_models
from vpr_embedded.models.zoo import PREFIX, load_zoo_model


def load_model(spec: str | Path, input_size: tuple[int, int] | None = None) -> VPRModel:
    """A checkpoint path, ``zoo:NAME`` or a registry name -> VPRModel (``input_size``: H, W
    override)."""
    if str(spec).startswith(PREFIX):
        return load_zoo_model(str(spec), input_size)
    path = Path(spec)
    if path.is_file():
        return load_checkpoint(path, input_size=input_size)
    if str(spec) in list_models():
        return build_model(str(spec), input_size=input_size)
    raise ValueError(
        f"{str(spec)!r} is neither a checkpoint file nor a registered model "
        "(`vpr-embedded models` lists them and the zoo)"
    )
