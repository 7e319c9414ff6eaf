"""How the fourier probe measures (torch): `compute` on any model, `run` on a pipeline run.
What it computes, its tables and their intervals: `vitprobe.probes.fourier`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from vitprobe.analysis.featuremaps import map_per_image
from vitprobe.analysis.inputs import chunks
from vitprobe.probes import no_log, no_progress
from vitprobe.probes.fourier import PROBE

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

