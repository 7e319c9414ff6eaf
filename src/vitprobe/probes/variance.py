"""Feature-map variance: for a map (B, C, H, W), the variance over the H*W spatial positions
of each sample and channel (Bessel-corrected, torch.var's default, as the paper's release),
then the mean over batch and channels.

A map of one spatial position (1x1: a CNN's last stages on small images; a ViT's token map,
prefix tokens dropped, has one position per patch, so only an image of one patch) has no such
variance: with Bessel's correction the sum of squares is divided by n - 1 = 0, so it is
undefined. Its ``variance`` is NaN (not 0, which would read as "measured, spatially
constant"), and ``run`` names such maps in the job log. An empty map (no position, image or
channel) is bad input and raises.

Per image (table ``variance_images``, for intervals over images): image b's value is
v_b = mean_c var_(y, x) fmap[b, c, y, x] (``feature_map_variance_per_image``); the map's
``variance`` is their mean over images (every image has the same C channels, so the mean over
(b, c) is the mean over b of the means over c), and ``compute`` writes it as that mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import Tensor, nn

from vitprobe import stats
from vitprobe.analysis.featuremaps import map_per_image
from vitprobe.analysis.inputs import chunks
from vitprobe.columns import Column, bounds
from vitprobe.probes import Probe, no_log, no_progress

PROBE = Probe(
    "variance", "variance of every feature map",
    tables={"variance": [
        Column("map_index", pa.int64(), "", "feature map position in forward order (0 = embedding/stem)"),
        Column("map_name", pa.string(), "", "module path of the map"),
        Column("kind", pa.string(), "", "embed, stem, msa, mlp, conv, pool, mixer_token, mixer_channel"),
        Column("depth", pa.float64(), "", "normalized depth of the map, in [0, 1]"),
        Column("variance", pa.float64(), "",
               "variance over spatial positions (Bessel), mean over images and channels; NaN for maps of one "
               "position (1x1), for which it is undefined"),
        Column("n_images", pa.int64(), "images", "test images the maps were computed on"),
    ], "variance_images": [
        Column("map_index", pa.int64(), "", "feature map position in forward order, as in table variance"),
        Column("image", pa.int64(), "", "position of the image in the probe's sample (0..n_images-1): the same "
               "position is the same test image in every run of one data set with the same n_images and seed"),
        Column("variance", pa.float64(), "",
               "that image's variance over spatial positions (Bessel), mean over channels; NaN for maps of one "
               "position (1x1); variance.variance is the mean over images of it"),
    ]},
    reads=("test",), exact=True, tiny={"n_images": 16},
    intervals={"variance": ("variance_images", [
        *bounds("variance", "expanded percentile bootstrap over the images of variance_images (one resample for "
                "all of the checkpoint's maps); NaN for maps of one position"),
    ])})


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
    and `modules` as in `vitprobe.probes.fourier.compute`. Maps of one position (1x1) get
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


def headline(df: pd.DataFrame, images: pd.DataFrame | None = None) -> str:
    """The job's result line, from table variance (`images`, table variance_images, adds nothing)."""
    known = df["variance"].dropna()
    if known.empty:
        return f"{len(df)} maps, no variance (every map is 1x1: NaN)"
    text = f"{len(df)} maps, variance from {known.min():.4g} to {known.max():.4g}"
    if len(known) < len(df):
        k = len(df) - len(known)
        text += f", {k} map{'s' if k > 1 else ''} of one position (1x1) left out (NaN)"
    return text


def intervals(table: str, rows: pd.DataFrame, units: pd.DataFrame, ci) -> pd.DataFrame:
    """variance with its interval columns: the bootstrap over images (`vitprobe.stats`) of
    each map's mean variance."""
    low, high = stats.mean_intervals(rows, units, ["map_index"], "variance", ci)
    return rows.assign(variance_low=low, variance_high=high)
