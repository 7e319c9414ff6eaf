"""Fourier analysis of feature maps: relative log amplitude along the frequency diagonal.

For a map (B, C, H, W), H = W (any side, odd ones included):

    F = fft2 over (H, W);  A = log(|F| + 1e-6);  roll by c = floor(H/2) so frequency 0 sits at
    (c, c);  mean over batch and channels;  curve[i] = A[c + i, c + i] - A[c, c],
    i = 0 .. ceil(H/2) - 1  (the release's ``shift`` and ``diag()[int(h/2):]``).

Index i is the frequency 2 pi i / H = i / (H/2) in units of pi; ``high_frequency_delta`` is the
last value of the curve ("Δ log amplitude at high frequency"), at frequency (1 - 2/H) pi for
even H (32: 0.9375, 16: 0.875, 8: 0.75, 4: 0.5) and (1 - 1/H) pi for odd H (31: 0.968, 7: 0.857):
the odd-sided diagonal has no Nyquist entry, its last entry is the positive frequency
(H - 1)/2, which an even side of H + 1 would not reach.

Maps of side 1 and 2 have no high-frequency value: their curve is the single entry i = 0
(frequency 0, relative log amplitude 0 by construction). A 1x1 map has no other frequency at
all. A 2x2 map's only other frequency on the diagonal is the Nyquist one, π (unshifted index
1), and the curve never reads the Nyquist entry at any even side (after the roll it sits at
position 0, before c; 32 stops at 0.9375 π, 4 at 0.5 π); taking it for 2x2 alone would make
that point a different quantity from the others, so it is not taken. Their
``high_freq_delta`` is NaN (not 0, which would read as "measured, no change"); the smallest
side with a value is 3 (frequency 2/3 π). ``run`` names such maps in the job log.

Per image (table ``fourier_images``, for intervals over images): image b's curve is
curve_b[i] = mean_c A[b, c, c + i, c + i] - mean_c A[b, c, c, c], its own relative log amplitude
(``relative_log_amplitude_per_image``). The curve above is exactly their mean over images: every
image has the same C channels, so mean_b curve_b[i] = mean_(b,c) A[b, c, c+i, c+i] - mean_(b,c)
A[b, c, c, c] = curve[i] (the mean of differences is the difference of means: linear after the
log), and ``high_freq_delta`` is the mean over images of curve_b's last value. ``compute``
writes the table ``fourier`` as these means, so the two tables agree to rounding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from vitprobe import stats
from vitprobe.columns import Column, bounds
from vitprobe.probes import Probe

PROBE = Probe(
    "fourier", "relative log amplitude of the Fourier spectrum of every feature map",
    tables={"fourier": [
        Column("map_index", pa.int64(), "", "feature map position in forward order (0 = embedding/stem)"),
        Column("map_name", pa.string(), "", "module path of the map, e.g. blocks.3.msa, layer2.1"),
        Column("kind", pa.string(), "", "embed, stem, msa, mlp, conv, pool, mixer_token, mixer_channel"),
        Column("depth", pa.float64(), "", "normalized depth of the map, in [0, 1]"),
        Column("freq", pa.float64(), "π rad", "frequency along the spectrum's diagonal, 0 .. 1 - 2/H"),
        Column("log_amplitude", pa.float64(), "", "relative log amplitude: log amplitude minus its value at frequency 0"),
        Column("high_freq_delta", pa.float64(), "",
               "the map's log_amplitude at its highest frequency (Δ log amplitude); NaN for maps of side <= 2, "
               "which have no frequency above 0 on the curve"),
        Column("n_images", pa.int64(), "images", "test images the maps were computed on"),
    ], "fourier_images": [
        Column("map_index", pa.int64(), "", "feature map position in forward order, as in table fourier"),
        Column("image", pa.int64(), "", "position of the image in the probe's sample (0..n_images-1): the same "
               "position is the same test image in every run of one data set with the same n_images and seed"),
        Column("freq", pa.float64(), "π rad", "frequency along the spectrum's diagonal, as in table fourier"),
        Column("log_amplitude", pa.float64(), "",
               "that image's relative log amplitude: log|F| on the diagonal, mean over channels, minus its own "
               "value at frequency 0; fourier.log_amplitude is the mean over images of it"),
    ]},
    reads=("test",), exact=True, tiny={"n_images": 16},
    intervals={"fourier": ("fourier_images", [
        *bounds("log_amplitude", "expanded percentile bootstrap over the images of fourier_images (one resample "
                "for all of the checkpoint's rows)"),
        *bounds("high_freq_delta", "the same bootstrap of the per-image values at the map's highest frequency "
                "(NaN for maps of side <= 2)"),
    ])})


def headline(df: pd.DataFrame, images: pd.DataFrame | None = None) -> str:
    """The job's result line, from table fourier (`images`, table fourier_images, adds nothing)."""
    deltas = df.groupby("map_index")["high_freq_delta"].first()
    known = deltas.dropna()
    if known.empty:
        return f"{len(deltas)} maps, no high-frequency Δ log amplitude (every map is 2x2 px or smaller: NaN)"
    text = (f"{len(deltas)} maps, mean high-frequency Δ log amplitude {known.mean():.3f} "
            f"(from {known.min():.3f} to {known.max():.3f})")
    if len(known) < len(deltas):
        text += f", {len(deltas) - len(known)} maps of 2x2 px or smaller left out (NaN)"
    return text


def intervals(table: str, rows: pd.DataFrame, units: pd.DataFrame, ci) -> pd.DataFrame:
    """fourier with its interval columns: the bootstrap over images (`vitprobe.stats`) of
    each (map, frequency)'s mean log amplitude, and of each map's value at its highest
    frequency."""
    low, high = stats.mean_intervals(rows, units, ["map_index", "freq"], "log_amplitude", ci)
    top = units.groupby(["run", "epoch", "map_index"])["freq"].transform("max")
    at_top = units[(units["freq"] == top) & (top > 0)]
    hf_low, hf_high = stats.mean_intervals(rows, at_top, ["map_index"], "log_amplitude", ci)
    known = ~rows["high_freq_delta"].isna().to_numpy()
    return rows.assign(log_amplitude_low=low, log_amplitude_high=high,
                       high_freq_delta_low=np.where(known, hf_low, np.nan),
                       high_freq_delta_high=np.where(known, hf_high, np.nan))

