"""Aggregation heads: average pooling, GeM, ConvAP, MixVPR, NetVLAD.

Written only with ops the XNNPACK delegate takes (no pow with a non-2 exponent, no
sum, no F.normalize, no LayerNorm, no softmax over dim 1, no adaptive max pooling);
tests check each against a textbook implementation. Heads return unnormalised
descriptors except where the method itself normalises inside (NetVLAD); VPRModel
applies the final L2 normalisation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpr_embedded.models.ops import LayerNormManual, l2_normalize


class AvgPool(nn.Module):
    """Global average pooling."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.out_dim = in_channels

    def forward(self, x: Tensor) -> Tensor:
        return x.mean((2, 3), keepdim=True).flatten(1)  # keepdim: delegated by XNNPACK


class GeM(nn.Module):
    """Generalised-mean pooling with p = 3 fixed, then an optional linear projection.

    ``normalize_input`` L2-normalises every local feature first (CosPlace/EigenPlaces).
    """

    p = 3.0

    def __init__(
        self,
        in_channels: int,
        out_dim: int | None = None,
        eps: float = 1e-6,
        normalize_input: bool = False,
    ) -> None:
        super().__init__()
        self.eps = eps
        self.normalize_input = normalize_input
        self.fc: nn.Linear | None = nn.Linear(in_channels, out_dim) if out_dim else None
        self.out_dim = out_dim or in_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.normalize_input:
            x = l2_normalize(x, dim=1)
        y = torch.clamp(x, min=self.eps)
        # keepdim=True: XNNPACK delegates only 4-D means over (2, 3) with keepdim.
        y = torch.exp(torch.log((y * y * y).mean((2, 3), keepdim=True)) / self.p).flatten(1)
        if self.fc is not None:
            y = self.fc(y)
        return y


class ConvAP(nn.Module):
    """Conv-AP (Ali-bey et al., 2022): 1x1 channel reduction, then s1 x s2 average pooling."""

    def __init__(
        self,
        in_channels: int,
        feature_hw: tuple[int, int],
        out_channels: int = 512,
        pool: tuple[int, int] = (2, 2),
    ) -> None:
        super().__init__()
        self.channel_pool = nn.Conv2d(in_channels, out_channels, 1, bias=True)
        self.pool = pool
        self.feature_hw = feature_hw
        self.out_dim = out_channels * pool[0] * pool[1]

    def forward(self, x: Tensor) -> Tensor:
        x = self.channel_pool(x)
        return F.adaptive_avg_pool2d(x, self.pool).flatten(1)


class FeatureMixerLayer(nn.Module):
    """MixVPR feature mixer: x + MLP(LayerNorm(x)) over the flattened spatial dimension."""

    def __init__(self, hw: int, hidden: int) -> None:
        super().__init__()
        self.mix = nn.Sequential(
            LayerNormManual(hw), nn.Linear(hw, hidden), nn.ReLU(), nn.Linear(hidden, hw)
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.mix(x)
        return x + y


class MixVPR(nn.Module):
    """MixVPR (Ali-bey et al., 2023). Key names equal the official implementation's."""

    def __init__(
        self,
        in_channels: int,
        feature_hw: tuple[int, int],
        out_channels: int = 512,
        out_rows: int = 4,
        mix_depth: int = 4,
        mlp_ratio: int = 1,
        mixer_hidden: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        hw = feature_hw[0] * feature_hw[1]
        hidden = mixer_hidden or (hw * mlp_ratio,) * mix_depth
        if len(hidden) != mix_depth:
            raise ValueError(f"mixer_hidden has {len(hidden)} widths for {mix_depth} mixers")
        self.feature_hw = feature_hw
        self.mix = nn.Sequential(*[FeatureMixerLayer(hw, h) for h in hidden])
        self.channel_proj = nn.Linear(in_channels, out_channels)
        self.row_proj = nn.Linear(hw, out_rows)
        self.out_dim = out_channels * out_rows

    def init_untrained(self, seed: int = 0) -> None:
        """Sensible weights for an untrained head: identity mixers (last linear of each
        mixer zero, so x + 0), an orthogonal channel projection, and a row projection
        that averages horizontal stripes of the feature map (out_rows regions)."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in self.mix:
                assert isinstance(layer, FeatureMixerLayer)
                last = layer.mix[3]
                assert isinstance(last, nn.Linear)
                last.weight.zero_()
                last.bias.zero_()
            w = self.channel_proj.weight
            q = torch.linalg.qr(torch.randn(max(w.shape), min(w.shape), generator=g))[0]
            w.copy_(q if q.shape == w.shape else q.T)
            self.channel_proj.bias.zero_()
            h, wd = self.feature_hw
            rows = self.row_proj.out_features
            stripe = (torch.arange(h) * rows) // h  # stripe index of each feature row
            m = (stripe[None, :] == torch.arange(rows)[:, None]).float()  # (rows, h)
            m = m[:, :, None].expand(rows, h, wd).reshape(rows, h * wd)
            self.row_proj.weight.copy_(m / m.sum(1, keepdim=True).clamp(min=1))
            self.row_proj.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(2)
        x = self.mix(x)
        x = self.channel_proj(x.permute(0, 2, 1))
        x = self.row_proj(x.permute(0, 2, 1))
        return x.flatten(1)


class NetVLAD(nn.Module):
    """NetVLAD (Arandjelovic et al., 2016), key names of pytorch-NetVlad (``conv``,
    ``centroids``). Local features are L2-normalised, soft-assigned (softmax over
    clusters on the last dim), residuals aggregated, intra-normalised and flattened."""

    def __init__(self, in_channels: int, clusters: int = 16, alpha: float = 100.0) -> None:
        super().__init__()
        self.clusters = clusters
        self.dim = in_channels
        self.alpha = alpha
        self.conv = nn.Conv2d(in_channels, clusters, 1, bias=False)
        self.centroids = nn.Parameter(torch.rand(clusters, in_channels))
        self.out_dim = clusters * in_channels
        with torch.no_grad():
            self.conv.weight.copy_((2.0 * alpha * self.centroids)[:, :, None, None])

    def init_from_features(self, features: np.ndarray, seed: int = 0) -> None:
        """Centroids by k-means on local features (n, D) (L2-normalised here) and the
        assignment weights/alpha of the original NetVLAD initialisation."""
        from sklearn.cluster import KMeans

        f = features.astype(np.float32)
        f /= np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        km = KMeans(n_clusters=self.clusters, n_init=1, random_state=seed, max_iter=50).fit(f)
        c = km.cluster_centers_.astype(np.float32)
        cn = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        dots = np.sort(cn @ f.T, axis=0)[::-1]
        alpha = float(-math.log(0.01) / max(float(np.mean(dots[0] - dots[1])), 1e-6))
        self.alpha = alpha
        with torch.no_grad():
            self.centroids.copy_(torch.from_numpy(c))
            self.conv.weight.copy_(torch.from_numpy(alpha * cn)[:, :, None, None])

    def forward(self, x: Tensor) -> Tensor:
        n, d, h, w = x.shape
        hw = h * w
        x = l2_normalize(x, dim=1)
        a = self.conv(x).flatten(2).permute(0, 2, 1)  # (n, hw, K)
        a = torch.softmax(a, dim=-1)
        xf = x.flatten(2).permute(0, 2, 1)  # (n, hw, D)
        vlad = torch.bmm(a.permute(0, 2, 1), xf)  # (n, K, D)
        mass = a.mean(1).unsqueeze(-1) * float(hw)  # (n, K, 1)
        vlad = vlad - self.centroids.unsqueeze(0) * mass
        vlad = l2_normalize(vlad, dim=-1)
        return vlad.reshape(n, self.clusters * d)


AGGREGATORS = ("avg", "gem", "convap", "mixvpr", "netvlad")
