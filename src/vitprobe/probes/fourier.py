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
import torch
from torch import Tensor, nn

from vitprobe import stats
from vitprobe.analysis.featuremaps import map_per_image
from vitprobe.analysis.inputs import chunks
from vitprobe.columns import Column, bounds
from vitprobe.probes import Probe, no_log, no_progress

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

EPS = 1e-6
MIN_SIDE = 3  # the smallest map side whose curve has a frequency above 0 (see the module docstring)
_CHUNK_ELEMENTS = 1 << 22  # FFT this many map elements at a time (in float64) to bound memory


def _check(fmap: Tensor) -> tuple[int, int]:
    if fmap.ndim != 4 or fmap.shape[-1] != fmap.shape[-2] or fmap.shape[-1] == 0:
        raise ValueError(f"feature map must be (B, C, H, W) with H == W > 0; got shape {tuple(fmap.shape)}")
    return fmap.shape[0], fmap.shape[-1]


def relative_log_amplitude_per_image(fmap: Tensor) -> Tensor:
    """float64 (B, ceil(H/2)): each image's relative log amplitude at ``frequencies(H)``, the
    mean over channels of log(|F| + eps) on the diagonal minus its own value at frequency 0
    (module docstring). The FFT runs in float64 on batch chunks; the result stays on the map's
    device."""
    b, h = _check(fmap)
    # After the roll, position c + i holds frequency i, i.e. unshifted index i: read the
    # diagonal straight from the unshifted spectrum.
    idx = torch.arange(h - h // 2, device=fmap.device)
    step = max(1, _CHUNK_ELEMENTS // max(1, fmap[0].numel()))
    parts = []
    for i in range(0, b, step):
        spec = torch.fft.fft2(fmap[i:i + step].detach().to(torch.float64))
        diag = spec[..., idx, idx]  # (b', C, ceil(H/2))
        parts.append(torch.log(diag.abs() + EPS).mean(dim=1))
    curves = torch.cat(parts)
    return curves - curves[:, :1]


def relative_log_amplitude(fmap: Tensor) -> Tensor:
    """float64 curve of ceil(H/2) values: relative log amplitude at ``frequencies(H)``, on the
    CPU: the mean over images of ``relative_log_amplitude_per_image`` (module docstring)."""
    return relative_log_amplitude_per_image(fmap).mean(dim=0).cpu()


def frequencies(h: int) -> np.ndarray:
    """x-axis of the curve for a map of side h, in units of pi: i / (h/2), i = 0..ceil(h/2)-1."""
    if h <= 0:
        raise ValueError(f"map side must be positive, got {h}")
    return np.arange(h - h // 2) / (h / 2)


def high_value(curve) -> float:
    """The curve's value at its highest frequency, NaN for a curve with no frequency above 0
    (one entry: maps of side 1 and 2)."""
    return float(curve[-1]) if len(curve) > 1 else float("nan")


def high_frequency_delta(fmap: Tensor) -> float:
    """Last value of ``relative_log_amplitude(fmap)``; NaN for a map of side 1 or 2."""
    return high_value(relative_log_amplitude(fmap))


def small_maps_note(maps: list[tuple[str, float, int]], most: int = 10) -> str | None:
    """The job log's note on the maps (name, depth, side) without a high-frequency value, or
    None where every map has one."""
    small = [(name, depth, side) for name, depth, side in maps if side < MIN_SIDE]
    if not small:
        return None
    named = ", ".join(f"{name} ({side}x{side}, depth {depth:.2f})" for name, depth, side in small[:most])
    if len(small) > most:
        named += f" and {len(small) - most} more"
    n = len(small)
    return (f"{n} feature map{'s' if n > 1 else ''} of 2x2 px or smaller ({named}) "
            f"{'have' if n > 1 else 'has'} no frequency above 0 on the curve, which reads the spectrum's diagonal "
            f"from 0 up to but not including the Nyquist frequency π (1x1: only frequency 0; 2x2: its only other "
            f"one is π): "
            f"{'their' if n > 1 else 'its'} high-frequency Δ log amplitude is NaN (left out of the figure)")


def compute(model: nn.Module, images, *, modules: list[str] | None = None, batch_size: int = 64,
            progress=no_progress, log=no_log) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables fourier and fourier_images. fourier: the relative log amplitude of every feature
    map's spectrum, mean over images and channels, along the diagonal; one row per (map,
    frequency). fourier_images: each image's own curve (mean over channels), one row per (map,
    frequency, image), `image` its position in `images`; fourier's `log_amplitude` and
    `high_freq_delta` are the means over images of these (module docstring). `images`: what the
    model's forward takes (normalised), a tensor (cut into chunks of `batch_size`) or an
    iterable of tensors or of (images, labels) batches; `modules`: the names whose outputs are
    the maps, for a model whose maps vitprobe does not know (`vitprobe.analysis.featuremaps`).
    Maps of side 1 and 2 keep their one row (frequency 0) per image, with ``high_freq_delta``
    NaN, and `log` gets one note naming them."""
    maps, n = map_per_image(model, chunks(images, batch_size), relative_log_amplitude_per_image, modules, progress)
    note = small_maps_note([(name, depth, side) for _, name, _, depth, side, _ in maps])
    if note:
        log(note)
    rows, per_image = [], []
    for i, name, kind, depth, side, curves in maps:  # curves: (n, ceil(side/2))
        curve, freqs = curves.mean(axis=0), frequencies(side)
        high = high_value(curve)
        rows += [{"map_index": i, "map_name": name, "kind": kind, "depth": depth, "freq": float(f),
                  "log_amplitude": float(a), "high_freq_delta": high, "n_images": n} for f, a in zip(freqs, curve)]
        per_image.append(pd.DataFrame({  # map, then frequency, then image
            "map_index": np.full(curves.size, i, dtype=np.int64),
            "image": np.tile(np.arange(n, dtype=np.int64), len(freqs)),
            "freq": np.repeat(freqs.astype(np.float64), n),
            "log_amplitude": curves.T.reshape(-1)}))
    images_table = (pd.concat(per_image, ignore_index=True) if per_image else
                    pd.DataFrame({c.name: [] for c in PROBE.tables["fourier_images"]}))
    return pd.DataFrame(rows), images_table


def run(model, inputs, settings: dict, log):
    images, progress = inputs.map_chunks(model, settings, log, "relative log amplitude of every feature map's Fourier spectrum")
    return compute(model, images, progress=progress, log=log)


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
