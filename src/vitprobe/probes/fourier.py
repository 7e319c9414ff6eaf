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
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from torch import Tensor, nn

from vitprobe.analysis.featuremaps import map_means
from vitprobe.analysis.inputs import chunks
from vitprobe.columns import Column
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
    ]},
    reads=("test",), exact=True)

EPS = 1e-6
MIN_SIDE = 3  # the smallest map side whose curve has a frequency above 0 (see the module docstring)
_CHUNK_ELEMENTS = 1 << 22  # FFT this many map elements at a time (in float64) to bound memory


def _check(fmap: Tensor) -> tuple[int, int]:
    if fmap.ndim != 4 or fmap.shape[-1] != fmap.shape[-2] or fmap.shape[-1] == 0:
        raise ValueError(f"feature map must be (B, C, H, W) with H == W > 0; got shape {tuple(fmap.shape)}")
    return fmap.shape[0], fmap.shape[-1]


def relative_log_amplitude(fmap: Tensor) -> Tensor:
    """float64 curve of ceil(H/2) values: relative log amplitude at ``frequencies(H)``.

    See the module docstring for the definition. The FFT runs in float64 on batch chunks.
    """
    b, h = _check(fmap)
    # After the roll, position c + i holds frequency i, i.e. unshifted index i: read the
    # diagonal straight from the unshifted spectrum.
    idx = torch.arange(h - h // 2, device=fmap.device)
    step = max(1, _CHUNK_ELEMENTS // max(1, fmap[0].numel()))
    total = torch.zeros(len(idx), dtype=torch.float64, device=fmap.device)
    for i in range(0, b, step):
        spec = torch.fft.fft2(fmap[i:i + step].detach().to(torch.float64))
        diag = spec[..., idx, idx]  # (b', C, ceil(H/2))
        total += torch.log(diag.abs() + EPS).sum(dim=(0, 1))
    curve = total / (b * fmap.shape[1])
    return (curve - curve[0]).cpu()


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
            progress=no_progress, log=no_log) -> pd.DataFrame:
    """Table fourier: the relative log amplitude of every feature map's spectrum, mean over
    images and channels, along the diagonal; one row per (map, frequency). `images`: what the
    model's forward takes (normalised), a tensor (cut into chunks of `batch_size`) or an
    iterable of tensors or of (images, labels) batches; `modules`: the names whose outputs are
    the maps, for a model whose maps vitprobe does not know (`vitprobe.analysis.featuremaps`).
    Maps of side 1 and 2 keep their one row (frequency 0) with ``high_freq_delta`` NaN, and
    `log` gets one note naming them."""
    maps, n = map_means(model, chunks(images, batch_size), lambda t: relative_log_amplitude(t).cpu(), modules,
                        progress)
    note = small_maps_note([(name, depth, side) for _, name, _, depth, side, _ in maps])
    if note:
        log(note)
    return pd.DataFrame([{"map_index": i, "map_name": name, "kind": kind, "depth": depth, "freq": float(f),
                          "log_amplitude": float(a), "high_freq_delta": high_value(curve), "n_images": n}
                         for i, name, kind, depth, side, curve in maps for f, a in zip(frequencies(side), curve)])


def run(model, inputs, settings: dict, log):
    images, progress = inputs.map_chunks(model, settings, log, "relative log amplitude of every feature map's Fourier spectrum")
    return compute(model, images, progress=progress, log=log)


def headline(df: pd.DataFrame) -> str:
    deltas = df.groupby("map_index")["high_freq_delta"].first()
    known = deltas.dropna()
    if known.empty:
        return f"{len(deltas)} maps, no high-frequency Δ log amplitude (every map is 2x2 px or smaller: NaN)"
    text = (f"{len(deltas)} maps, mean high-frequency Δ log amplitude {known.mean():.3f} "
            f"(from {known.min():.3f} to {known.max():.3f})")
    if len(known) < len(deltas):
        text += f", {len(deltas) - len(known)} maps of 2x2 px or smaller left out (NaN)"
    return text
