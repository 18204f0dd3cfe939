"""Augmentation for condition changes (season, weather, time of day, camera shake).

Works on preprocessed batches (N, 3, H, W), in the model's normalised units, on the CPU
with a seeded generator, so that a seed gives the same views on any device. Written with
plain torch ops because torchvision, the usual home of these transforms, cannot be
installed beside the pinned CPU torch here (PyPI's torchvision needs another torch
build), and the few transforms needed are a line or two each.

Per image:
- geometry: zoom in 0-20 %, shift within the zoom, rotate up to 4 degrees; never a
  mirror (a place seen mirrored is not the place a camera sees);
- photometry: contrast x0.6-1.4 and brightness +-0.5 (snow, dusk, over-exposure), a
  colour cast of +-0.1 per channel, greyscale one time in five;
- blur (a 3x3 box, half the time) and sensor noise (sigma up to 0.1);
- one occluding rectangle of 0-20 % of the area, one time in three (a passing object).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


class ConditionAugment:
    """Callable on a batch; one generator for the life of the object."""

    def __init__(self, seed: int) -> None:
        self.gen = torch.Generator().manual_seed(seed)

    def _rand(self, *shape: int) -> Tensor:
        return torch.rand(*shape, generator=self.gen)

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"augment expects (N, 3, H, W) images, got {tuple(x.shape)}")
        x = self._geometry(x)
        x = self._photometry(x)
        return self._occlude(x)

    def _geometry(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        r = self._rand(b, 4)
        scale = 1.0 - 0.2 * r[:, 0]
        angle = (r[:, 1] - 0.5) * math.radians(8)
        tx, ty = (r[:, 2] - 0.5) * 2 * (1 - scale), (r[:, 3] - 0.5) * 2 * (1 - scale)
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )

    def _photometry(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        r = self._rand(b, 6)
        grey = (r[:, 0] < 0.2).view(b, 1, 1, 1)
        x = torch.where(grey, x.mean(dim=1, keepdim=True).expand_as(x), x)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        contrast = (0.6 + 0.8 * r[:, 1]).view(b, 1, 1, 1)
        brightness = (r[:, 2] - 0.5).view(b, 1, 1, 1)
        cast = (self._rand(b, 3) - 0.5).view(b, 3, 1, 1) * 0.2
        x = (x - mean) * contrast + mean + brightness + cast
        blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        x = torch.where((r[:, 3] < 0.5).view(b, 1, 1, 1), blurred, x)
        noise = torch.randn(x.shape, generator=self.gen) * (0.1 * r[:, 4]).view(b, 1, 1, 1)
        return x + noise

    def _occlude(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        r = self._rand(b, 5)
        out = x.clone()
        for i in range(b):
            if r[i, 0] >= 1 / 3:
                continue
            area = 0.2 * float(r[i, 1])
            rh = max(1, round(h * math.sqrt(area)))
            rw = max(1, round(w * math.sqrt(area)))
            top = int(float(r[i, 2]) * (h - rh + 1))
            left = int(float(r[i, 3]) * (w - rw + 1))
            out[i, :, top : top + rh, left : left + rw] = float(r[i, 4]) * 2 - 1
        return out
