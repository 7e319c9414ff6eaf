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

import pandas as pd
import pyarrow as pa

from vitprobe import stats
from vitprobe.columns import Column, bounds
from vitprobe.probes import Probe

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

