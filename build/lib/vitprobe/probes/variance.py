"""Feature-map variance: for a map (B, C, H, W), the variance over the H*W spatial positions
of each sample and channel (Bessel-corrected, torch.var's default, as the paper's release),
then the mean over batch and channels."""

from __future__ import annotations

import torch
from torch import Tensor


def feature_map_variance(fmap: Tensor) -> float:
    """mean over (b, c) of var_{(y, x)} fmap[b, c, y, x] with ddof = 1."""
    if fmap.ndim != 4:
        raise ValueError(f"feature map must be (B, C, H, W); got shape {tuple(fmap.shape)}")
    if fmap.shape[-1] * fmap.shape[-2] < 2:
        raise ValueError(f"variance with Bessel's correction needs >= 2 positions; got shape {tuple(fmap.shape)}")
    return fmap.detach().flatten(2).var(dim=-1).mean(dtype=torch.float64).item()
