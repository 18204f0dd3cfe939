"""Small tensor helpers written only with ops the XNNPACK delegate takes (DESIGN.md)."""

from __future__ import annotations

import torch
from torch import Tensor


def l2_normalize(x: Tensor, dim: int = -1, eps: float = 1e-12) -> Tensor:
    """``x / max(||x||, eps)`` along ``dim`` with rsqrt and mean (no sum, no F.normalize).

    The mean runs on a 4-D view, over dims (2, 3) with keepdim: the only mean XNNPACK
    delegates (global average pooling).
    """
    n = x.shape[dim]
    xt = x.movedim(dim, -1)
    lead = xt.shape[:-1]
    sq4 = (xt * xt).reshape(-1, 1, n, 1).mean((2, 3), keepdim=True) * float(n)
    inv = torch.rsqrt(torch.clamp(sq4, min=eps * eps)).reshape(*lead, 1).movedim(-1, dim)
    return x * inv


class LayerNormManual(torch.nn.Module):
    """LayerNorm over the last dimension from mean/rsqrt (XNNPACK has no LayerNorm).

    Parameter names (``weight``, ``bias``) equal ``torch.nn.LayerNorm``'s so published
    checkpoints load unchanged.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.bias = torch.nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        mu = _mean_last(x)
        d = x - mu
        var = _mean_last(d * d)
        return d * torch.rsqrt(var + self.eps) * self.weight + self.bias


def _mean_last(x: Tensor) -> Tensor:
    """x.mean(-1, keepdim=True), written as the one mean XNNPACK delegates (4-D, over dims
    (2, 3), keepdim): a 3-D mean over the last dim stayed on the portable CPU kernels and
    failed the export's delegation check (MixVPR's mixers)."""
    n = x.shape[-1]
    return x.reshape(-1, 1, 1, n).mean((2, 3), keepdim=True).reshape(*x.shape[:-1], 1)
