"""How the robustness probe measures (torch): `compute` on any model, `run` on a pipeline run.
What it computes, its tables and their intervals: `vitprobe.probes.robustness`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from vitprobe.data.augment import normalize
from vitprobe.data.imagefolder import TensorSample
from vitprobe.device import Device
from vitprobe.device import of as device_of
from vitprobe.models.modes import eval_mode
from vitprobe.probes import no_progress

FREQS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_TOL = 1e-9  # ring edges are inclusive; absorbs rounding of f ± width (e.g. 0.3 - 0.1)


def band_mask(h: int, w: int, f: float, width: float = 0.1, device=None) -> Tensor:
    """bool (h, w) in **fftshifted** layout (frequency 0 at (h//2, w//2)).

    Row r holds fy = 2 (r - h//2) / h, column c holds fx = 2 (c - w//2) / w (units of pi,
    for even sides -1 .. 1 - 2/h); True where f - width <= max(|fy|, |fx|) <= f + width.
    ``torch.fft.ifftshift(mask)`` is the mask in the layout of ``torch.fft.fft2``.
    """
    fy = 2 * (torch.arange(h, device=device, dtype=torch.float64) - h // 2) / h
    fx = 2 * (torch.arange(w, device=device, dtype=torch.float64) - w // 2) / w
    radius = torch.maximum(fy.abs()[:, None], fx.abs()[None, :])
    return (radius >= f - width - _TOL) & (radius <= f + width + _TOL)


def band_noise(shape: Sequence[int], eps: float, f: float, width: float = 0.1,
               generator: torch.Generator | None = None, device=None) -> Tensor:
    """float32 noise of ``shape`` (..., H, W): eps·sign(N(0, 1)) band-passed to the ring
    ``band_mask(H, W, f, width)`` over the last two dims. The generator must live on ``device``."""
    sign = torch.randn(tuple(shape), generator=generator, device=device).sign_()
    mask = torch.fft.ifftshift(band_mask(shape[-2], shape[-1], f, width, device=sign.device))
    spec = torch.fft.fft2(sign) * mask
    return torch.fft.ifft2(spec).real.mul_(eps)


SUMMARY_COLUMNS = ["freq", "accuracy", "clean_accuracy", "delta_accuracy", "eps", "width"]
IMAGE_COLUMNS = ["image", "freq", "correct", "clean_correct"]


def image_table(freqs: Sequence[float], clean: np.ndarray, noisy: Sequence[np.ndarray]) -> pd.DataFrame:
    """Table robustness_images of per-image bools: `clean` (n,) and one (n,) array of
    `noisy` per frequency of `freqs`; images numbered 0 .. n - 1. Rows frequency by
    frequency, images in order."""
    n = len(clean)
    image = np.arange(n, dtype=np.int64)
    return pd.DataFrame({
        "image": np.tile(image, len(freqs)),
        "freq": np.repeat(np.asarray(freqs, dtype=np.float64), n),
        "correct": np.concatenate([np.asarray(c, dtype=bool) for c in noisy]) if len(freqs) else np.zeros(0, bool),
        "clean_correct": np.tile(np.asarray(clean, dtype=bool), len(freqs)),
    }, columns=IMAGE_COLUMNS)


def summarize(images: pd.DataFrame, eps: float, width: float) -> pd.DataFrame:
    """Table robustness (without n_images) from table robustness_images: per frequency, in
    the order of first appearance, accuracy = 100 · mean correct, clean_accuracy = 100 ·
    mean clean_correct, delta_accuracy = their difference."""
    rows = []
    for f, group in images.groupby("freq", sort=False):
        acc = 100.0 * float(np.mean(group["correct"].to_numpy(dtype=np.float64)))
        clean = 100.0 * float(np.mean(group["clean_correct"].to_numpy(dtype=np.float64)))
        rows.append({"freq": float(f), "accuracy": acc, "clean_accuracy": clean, "delta_accuracy": acc - clean,
                     "eps": float(eps), "width": float(width)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


@torch.no_grad()
def noise_robustness(model, images_u8: Tensor, labels: Tensor, mean, std, eps: float,
                     freqs: Sequence[float] = FREQS, width: float = 0.1, batch_size: int = 500,
                     seed: int = 0, device: Device | torch.device | str | None = None,
                     clip: bool = True, progress=no_progress, per_image: bool = False):
    """Top-1 accuracy (%) under band noise at each frequency in ``freqs`` (distinct), model
    in eval mode.

    Each frequency uses a fresh generator seeded with ``seed`` (on the device), so all
    frequencies filter the same sign pattern; the noise is drawn batch by batch, so it
    depends on ``batch_size``. ``device``: a ``vitprobe.device.Device`` (autocast etc.), a
    torch device, or None for the model's device.
    Columns: freq, accuracy, clean_accuracy, delta_accuracy (= accuracy - clean_accuracy,
    percentage points), eps, width; one row per frequency. With ``per_image``, (that table,
    table robustness_images: image (index in ``images_u8``), freq, correct, clean_correct),
    the first computed from the second (`summarize`). ``progress`` wraps the loop over the
    passes through the images, a list: None (clean) first, then each frequency.
    """
    if len(images_u8) == 0 or len(images_u8) != len(labels):
        raise ValueError(f"need as many labels as images (> 0); got {len(images_u8)} images, {len(labels)} labels")
    freqs = [float(f) for f in freqs]
    if len(set(freqs)) != len(freqs):
        raise ValueError(f"freqs must be distinct (the per-image rows are keyed by frequency); got {freqs}")
    dev = device_of(device, model)

    def correct(f: float | None) -> np.ndarray:
        gen = torch.Generator(device=dev.torch_device).manual_seed(seed)
        hits = []
        for i in range(0, len(images_u8), batch_size):
            x = images_u8[i:i + batch_size].to(dev.torch_device).float().div_(255)
            if f is not None:
                x += band_noise(x.shape, eps, f, width, generator=gen, device=dev.torch_device)
                if clip:
                    x.clamp_(0, 1)
            with dev.autocast():
                logits = model(dev.prepare_input(normalize(x, mean, std)))
            hits.append((logits.argmax(1).cpu() == labels[i:i + batch_size].cpu()).numpy())
        return np.concatenate(hits)

    with eval_mode(model):
        clean, *noisy = [correct(f) for f in progress([None, *freqs])]
    images = image_table(freqs, clean, noisy)
    table = summarize(images, eps, width)
    return (table, images) if per_image else table


def compute(model, images_u8: Tensor, labels: Tensor, mean, std, *, eps: float = 0.1, freqs=FREQS,
            width: float = 0.1, batch_size: int = 500, seed: int = 0, device=None,
            progress=no_progress) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables (robustness, robustness_images): top-1 accuracy (%) under frequency-band noise
    against clean accuracy (`noise_robustness`), and per (frequency, image) whether the image
    (its index in `images_u8`) is classified correctly with and without the noise;
    `images_u8` uint8 (N, 3, H, W), normalised inside with `mean`/`std` after the noise is
    added in [0, 1] pixel units."""
    df, images = noise_robustness(model, images_u8, labels, mean, std, eps=eps, freqs=list(freqs), width=width,
                                  batch_size=batch_size, seed=seed, device=device, progress=progress, per_image=True)
    return df.assign(n_images=len(images_u8)), images


def run(model, inputs, settings: dict, log):
    p = settings
    images, mean, std = inputs.image_sample(model, p["n_images"], p["seed"])
    freqs = p["freqs"]
    # images in memory: one pass (noise drawn batch by batch); decoded files: a chunk of
    # batches at a time (noise seeded seed + chunk start), accuracies over all the chunks' images
    chunk = len(images) if isinstance(images, TensorSample) else max(p["batch_size"], images.chunk_size)
    log(f"accuracy on {len(images)} {inputs.images_described}, clean and under band noise (eps "
        f"{p['eps']:g}, width {p['width']:g}) at {len(freqs)} frequencies {min(freqs):g}..{max(freqs):g}, "
        f"batches of {p['batch_size']}")
    classes = getattr(images, "classes", None)
    if classes is not None and len(classes) != getattr(model, "num_classes", len(classes)):
        log(f"warning: {len(classes)} class folders, but the model has {model.num_classes} classes; label i is the "
            f"i-th folder in sorted order, so accuracies are only meaningful if the folders are the model's classes")
    settings = dict(eps=p["eps"], freqs=freqs, width=p["width"], batch_size=p["batch_size"], device=inputs.device)
    if chunk == len(images):
        return compute(model, *images.chunk(0, chunk), mean, std, seed=p["seed"],
                       progress=log.bar("passes (clean, then each frequency)"), **settings)
    return chunked(model, images, mean, std, chunk, seed=p["seed"],
                   progress=log.bar(f"chunks of {chunk} images"), **settings)


def chunked(model, images, mean, std, chunk: int, *, eps: float = 0.1, freqs=FREQS, width: float = 0.1,
            batch_size: int = 500, seed: int = 0, device=None, progress=no_progress) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`compute` on `images` (`len()` and `chunk(i, j)`, as `vitprobe.data.imagefolder`'s
    samples) `chunk` images at a time, the noise of the chunk at i seeded `seed` + i:
    table robustness_images with the images numbered by their position in `images`, table
    robustness computed from it over all of them. `progress` wraps the loop over the chunks'
    start positions."""
    parts = []
    for i in progress(range(0, len(images), chunk)):
        _, part = compute(model, *images.chunk(i, min(i + chunk, len(images))), mean, std, eps=eps, freqs=freqs,
                          width=width, batch_size=batch_size, seed=seed + i, device=device)
        parts.append(part.assign(image=part["image"] + i))
    per_image = pd.concat(parts, ignore_index=True)
    # frequency by frequency (in the order given), images in order
    order = {float(f): k for k, f in enumerate(freqs)}
    per_image = per_image.sort_values(["freq", "image"], key=lambda c: c.map(order) if c.name == "freq" else c,
                                      kind="stable", ignore_index=True)
    return summarize(per_image, eps, width).assign(n_images=len(images)), per_image

