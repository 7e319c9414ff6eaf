"""The probes on any model, from Python: functions that take an `nn.Module` and tensors (or a
DataLoader) and return DataFrames with the columns of the pipeline's tables
(`vitprobe.results.TABLES`, without the grid and provenance columns).

    model = vitprobe.load_model("resnet50", weights="timm")        # or a path, a URL, "init"
    api.fourier(model, images)                                      # table fourier
    eigs, summary = api.hessian(model, [(x, y)], weight_decay=5e-2)  # tables hessian, hessian_summary

Inputs. `images` are what the model's forward takes (normalised float tensors, (N, 3, H, W)),
a tensor or an iterable of tensors or of (images, labels) batches such as a DataLoader; a
tensor is cut into chunks of `batch_size`. Feature-map statistics are reduced inside each
forward pass (`vitprobe.features.map_statistics`): memory does not grow with the number of
images. `batches` are (inputs, targets) pairs; targets are class indices or soft targets.
`robustness` adds its noise in pixel space and so takes uint8 images with the mean/std
that normalise them.

Models. vitprobe's and timm's classes (ViT, PiT, Swin, Mixer, ResNet, ...) give the paper's
feature maps, tagged embed/stem/msa/mlp/conv/pool; any other model needs `modules`, the
names (`model.named_modules()`) whose outputs are the maps, kind "module".

Loss. The Hessian, trace and landscape use vitprobe's NLL (`vitprobe.losses.nll`) unless
`loss` (a callable `loss(outputs, targets) -> scalar`) is given; it is passed to the probes'
functions as their `loss_fn`, and the weight decay term is added as in the pipeline.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from vitprobe.losses import nll

__all__ = ["load_model", "fourier", "variance", "hessian", "robustness", "landscape"]


def load_model(arch: str, weights: str = "init", num_classes: int | None = None, *, root="data",
               **kwargs) -> nn.Module:
    """A vitprobe or timm model `arch` (kwargs: the entry point's) with weights from `weights`:
    "init", "timm" (timm's pretrained), or a path or URL of a state-dict file (.pth, .pth.tar
    with state_dict, .safetensors; the paper release's checkpoints included, their key names
    mapped: `vitprobe.weights`). URLs are downloaded into `<root>/weights/`. Eval mode, CPU.
    `num_classes` None: the model's own (100 for vitprobe's CIFAR models)."""
    from vitprobe import models
    from vitprobe import weights as w

    if weights not in w.KEYWORDS:
        w.check_source(weights, "weights", download=True)
    model = models.create_any(arch, num_classes=num_classes, pretrained=weights == "timm", **kwargs)
    if w.kind(weights) in ("file", "url"):
        w.load_into(model, weights, root=root, download=True)
    return model.eval()


# ---- inputs -----------------------------------------------------------------------------

def _chunks(images, batch_size: int) -> Iterable[Tensor]:
    if isinstance(images, Tensor):
        for i in range(0, len(images), batch_size):
            yield images[i:i + batch_size]
        return
    for batch in images:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _maps(model, images, statistics, modules, batch_size):
    """[(index, name, kind, depth, side, {stat: image-weighted mean})], n_images."""
    from vitprobe.features import map_statistics

    meta, sums, n = None, None, 0
    for x in _chunks(images, batch_size):
        maps = map_statistics(model, x.to(_device(model)), statistics, modules)
        stats = [{k: np.asarray(v, dtype=np.float64) * len(x) for k, v in m[5].items()} for m in maps]
        meta = meta or [m[:5] for m in maps]
        sums = stats if sums is None else [{k: a[k] + b[k] for k in a} for a, b in zip(sums, stats)]
        n += len(x)
    if not n:
        raise ValueError("no images given")
    return [(*m, {k: v / n for k, v in s.items()}) for m, s in zip(meta, sums)], n


# ---- feature maps -----------------------------------------------------------------------

def fourier(model: nn.Module, images, *, modules: list[str] | None = None, batch_size: int = 64) -> pd.DataFrame:
    """Table fourier: the relative log amplitude of every feature map's spectrum, mean over
    images and channels, along the diagonal (`vitprobe.probes.fourier`); one row per (map,
    frequency)."""
    from vitprobe.probes.fourier import frequencies, relative_log_amplitude

    maps, n = _maps(model, images, {"curve": lambda t: relative_log_amplitude(t).cpu()}, modules, batch_size)
    return pd.DataFrame([{"map_index": i, "map_name": name, "kind": kind, "depth": depth, "freq": float(f),
                          "log_amplitude": float(a), "high_freq_delta": float(s["curve"][-1]), "n_images": n}
                         for i, name, kind, depth, side, s in maps for f, a in zip(frequencies(side), s["curve"])])


def variance(model: nn.Module, images, *, modules: list[str] | None = None, batch_size: int = 64) -> pd.DataFrame:
    """Table variance: every feature map's variance over spatial positions (Bessel), mean
    over images and channels (`vitprobe.probes.variance`); one row per map."""
    from vitprobe.probes.variance import feature_map_variance

    maps, n = _maps(model, images, {"v": feature_map_variance}, modules, batch_size)
    return pd.DataFrame([{"map_index": i, "map_name": name, "kind": kind, "depth": depth, "variance": float(s["v"]),
                          "n_images": n} for i, name, kind, depth, _, s in maps])


# ---- loss-based probes ----------------------------------------------------------------

def hessian(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, k: int = 5, weight_decay: float = 0.0,
            loss: Callable | None = None, method: str = "lanczos", tol: float = 1e-3, trace_samples: int = 0,
            seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables hessian and hessian_summary: the top-k eigenvalues (by magnitude, sign kept) of
    the Hessian of loss + weight_decay/2·‖θ‖² on each mini-batch, and NEP, APE, λ_max and
    (with `trace_samples`) Hutchinson's trace over them (`vitprobe.probes.hessian`,
    `spectral`, `summary`)."""
    from vitprobe.probes.hessian import parameter_count, top_eigenvalues
    from vitprobe.probes.spectral import hessian_trace
    from vitprobe.probes.summary import spectrum_summary

    dev = _device(model)
    loss = nll if loss is None else loss
    rows, spectra, traces = [], [], []
    for b, (x, y) in enumerate(batches):
        x, y = x.to(dev), y.to(dev)
        values, info = top_eigenvalues(model, x, y, k=k, weight_decay=weight_decay, method=method, tol=tol,
                                       return_info=True, loss_fn=loss)
        rows += [{"batch": b, "rank": r + 1, "eigenvalue": float(v), "batch_size": len(x), "method": method,
                  "n_hvp": info["n_hvp"]} for r, v in enumerate(values)]
        spectra.append(values)
        if trace_samples:
            traces.append(hessian_trace(model, x, y, weight_decay=weight_decay, n_samples=trace_samples,
                                        seed=seed + b, return_info=True, loss_fn=loss)[1]["samples"])
    if not rows:
        raise ValueError("no batches given")
    summary = {**spectrum_summary(spectra, traces, weight_decay=weight_decay, n_params=parameter_count(model)),
               "batch_size": rows[0]["batch_size"], "method": method}
    return pd.DataFrame(rows), pd.DataFrame([summary])


def robustness(model: nn.Module, images_u8: Tensor, labels: Tensor, mean, std, *, eps: float = 0.1,
               freqs=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), width: float = 0.1, batch_size: int = 500,
               seed: int = 0) -> pd.DataFrame:
    """Table robustness: top-1 accuracy (%) under frequency-band noise against clean accuracy
    (`vitprobe.probes.robustness`); `images_u8` uint8 (N, 3, H, W), normalised inside with
    `mean`/`std` after the noise is added in [0, 1] pixel units."""
    from vitprobe.probes.robustness import noise_robustness

    df = noise_robustness(model, images_u8, labels, mean, std, eps=eps, freqs=list(freqs), width=width,
                          batch_size=batch_size, seed=seed, device=_device(model))
    return df.assign(n_images=len(images_u8))


def landscape(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, weight_decay: float = 0.0,
              loss: Callable | None = None, style: str = "release", radius: float = 1.0, points_1d: int = 21,
              points_2d: int = 0, seed: int = 0) -> pd.DataFrame:
    """Table landscape: the loss along one (a line of `points_1d`) and two (a `points_2d`²
    plane) random directions of `style` (`vitprobe.probes.landscape`)."""
    from vitprobe.probes.landscape import grid_1d, grid_2d, landscape_style, loss_landscape

    definition = landscape_style(style)
    dev = _device(model)
    batches = [(x.to(dev), y.to(dev)) for x, y in batches]
    gen = torch.Generator(device=dev).manual_seed(seed)
    d1, d2 = definition.direction(model, gen), definition.direction(model, gen)
    loss = nll if loss is None else loss
    parts = []
    if points_1d:
        parts.append(loss_landscape(model, batches, [d1], grid_1d(radius, points_1d), weight_decay,
                                    style=style, loss_fn=loss).assign(grid="1d", y=0.0))
    if points_2d:
        parts.append(loss_landscape(model, batches, [d1, d2], grid_2d(radius, points_2d), weight_decay,
                                    style=style, loss_fn=loss).assign(grid="2d"))
    if not parts:
        raise ValueError("points_1d and points_2d are both 0: no points")
    return pd.concat(parts, ignore_index=True).assign(style=style)
