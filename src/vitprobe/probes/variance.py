"""Feature-map variance: for a map (B, C, H, W), the variance over the H*W spatial positions
of each sample and channel (Bessel-corrected, torch.var's default, as the paper's release),
then the mean over batch and channels."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import torch
from torch import Tensor, nn

from vitprobe.analysis.featuremaps import map_means
from vitprobe.analysis.inputs import chunks
from vitprobe.columns import Column
from vitprobe.probes import Probe, no_progress

PROBE = Probe(
    "variance", "variance of every feature map",
    tables={"variance": [
        Column("map_index", pa.int64(), "", "feature map position in forward order (0 = embedding/stem)"),
        Column("map_name", pa.string(), "", "module path of the map"),
        Column("kind", pa.string(), "", "embed, stem, msa, mlp, conv, pool, mixer_token, mixer_channel"),
        Column("depth", pa.float64(), "", "normalized depth of the map, in [0, 1]"),
        Column("variance", pa.float64(), "", "variance over spatial positions (Bessel), mean over images and channels"),
        Column("n_images", pa.int64(), "images", "test images the maps were computed on"),
    ]},
    reads=("test",), exact=True)


def feature_map_variance(fmap: Tensor) -> float:
    """mean over (b, c) of var_{(y, x)} fmap[b, c, y, x] with ddof = 1."""
    if fmap.ndim != 4:
        raise ValueError(f"feature map must be (B, C, H, W); got shape {tuple(fmap.shape)}")
    if fmap.shape[-1] * fmap.shape[-2] < 2:
        raise ValueError(f"variance with Bessel's correction needs >= 2 positions; got shape {tuple(fmap.shape)}")
    return fmap.detach().flatten(2).var(dim=-1).mean(dtype=torch.float64).item()


def compute(model: nn.Module, images, *, modules: list[str] | None = None, batch_size: int = 64,
            progress=no_progress) -> pd.DataFrame:
    """Table variance: every feature map's variance over spatial positions (Bessel), mean
    over images and channels; one row per map. `images` and `modules` as in
    `vitprobe.probes.fourier.compute`."""
    maps, n = map_means(model, chunks(images, batch_size), feature_map_variance, modules, progress)
    return pd.DataFrame([{"map_index": i, "map_name": name, "kind": kind, "depth": depth, "variance": float(v),
                          "n_images": n} for i, name, kind, depth, _, v in maps])


def run(model, inputs, settings: dict, log):
    images, progress = inputs.map_chunks(model, settings, log, "spatial variance of every feature map")
    return compute(model, images, progress=progress)


def headline(df: pd.DataFrame) -> str:
    return f"{len(df)} maps, variance from {df['variance'].min():.4g} to {df['variance'].max():.4g}"
