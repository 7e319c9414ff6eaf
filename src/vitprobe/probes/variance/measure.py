"""How the variance probe measures (torch): `compute` on any model, `run` on a pipeline run.
What it computes, its tables and their intervals: `vitprobe.probes.variance`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from vitprobe.analysis.featuremaps import map_per_image
from vitprobe.analysis.inputs import chunks
from vitprobe.probes import no_log, no_progress


def feature_map_variance_per_image(fmap: Tensor) -> Tensor:
    """float64 (B,): per image, mean over c of var_{(y, x)} fmap[b, c, y, x] with ddof = 1;
    NaN for a map of one position (H = W = 1), where n - 1 = 0. On the map's device."""
    if fmap.ndim != 4:
        raise ValueError(f"feature map must be (B, C, H, W); got shape {tuple(fmap.shape)}")
    if fmap.numel() == 0:
        raise ValueError(f"feature map is empty; got shape {tuple(fmap.shape)}")
    if fmap.shape[-1] * fmap.shape[-2] == 1:
        return torch.full((fmap.shape[0],), float("nan"), dtype=torch.float64, device=fmap.device)
    return fmap.detach().flatten(2).var(dim=-1).mean(dim=1, dtype=torch.float64)


def feature_map_variance(fmap: Tensor) -> float:
    """mean over (b, c) of var_{(y, x)} fmap[b, c, y, x] with ddof = 1: the mean over images of
    ``feature_map_variance_per_image``; NaN for a map of one position (H = W = 1)."""
    return feature_map_variance_per_image(fmap).mean().item()


def _variance_and_positions(fmap: Tensor) -> np.ndarray:
    """(B, 2): per image, (its variance, H * W): `map_per_image` carries the number of
    positions along (the same for every image)."""
    v = feature_map_variance_per_image(fmap).cpu().numpy()
    return np.stack([v, np.full_like(v, fmap.shape[-2] * fmap.shape[-1])], axis=1)


def one_position_note(maps: list[tuple[str, float, int]], most: int = 10) -> str | None:
    """The job log's note on the maps (name, depth, positions) of one spatial position, whose
    variance is NaN, or None where every map has more."""
    single = [(name, depth) for name, depth, positions in maps if positions == 1]
    if not single:
        return None
    named = ", ".join(f"{name} (depth {depth:.2f})" for name, depth in single[:most])
    if len(single) > most:
        named += f" and {len(single) - most} more"
    n = len(single)
    return (f"{n} feature map{'s' if n > 1 else ''} of one spatial position, 1x1 ({named}): the variance over "
            f"one position with Bessel's correction divides by n - 1 = 0 and is undefined, so "
            f"{'their' if n > 1 else 'its'} variance is NaN (left out of the figure)")


def compute(model: nn.Module, images, *, modules: list[str] | None = None, batch_size: int = 64,
            progress=no_progress, log=no_log) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables variance and variance_images. variance: every feature map's variance over
    spatial positions (Bessel), mean over images and channels; one row per map.
    variance_images: each image's own value (mean over channels), one row per (map, image),
    `image` its position in `images`; variance's value is their mean over images. `images`
    and `modules` as in `vitprobe.probes.fourier.measure.compute`. Maps of one position (1x1) get
    variance NaN, and `log` gets one note naming them."""
    maps, n = map_per_image(model, chunks(images, batch_size), _variance_and_positions, modules, progress)
    note = one_position_note([(name, depth, round(v[0, 1])) for _, name, _, depth, _, v in maps])
    if note:
        log(note)
    table = pd.DataFrame([{"map_index": i, "map_name": name, "kind": kind, "depth": depth,
                           "variance": float(v[:, 0].mean()), "n_images": n} for i, name, kind, depth, _, v in maps])
    per_image = pd.DataFrame({  # map, then image
        "map_index": np.repeat(np.array([m[0] for m in maps], dtype=np.int64), n),
        "image": np.tile(np.arange(n, dtype=np.int64), len(maps)),
        "variance": np.concatenate([v[:, 0] for *_, v in maps]) if maps else np.zeros(0)})
    return table, per_image


def run(model, inputs, settings: dict, log):
    images, progress = inputs.map_chunks(model, settings, log, "spatial variance of every feature map")
    return compute(model, images, progress=progress, log=log)

