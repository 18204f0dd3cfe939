"""Where torch work runs: one check of a --device argument for every command."""

from __future__ import annotations

import torch


def torch_device(spec: str) -> torch.device:
    """``spec`` as a torch device, refused up front (ValueError) when it is no device or
    names CUDA on a torch that sees none."""
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"--device {spec!r} is not a device: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {spec}: this torch sees no CUDA device; use --device cpu")
    return device
