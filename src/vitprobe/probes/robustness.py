"""Robustness to frequency-band noise.

Noise: delta = eps · sign(N(0, 1)) per pixel and channel; its 2-D spectrum is cut to a square
ring around frequency f — the frequencies whose Chebyshev radius max(|fy|, |fx|) (units of
pi) lies in [f - width, f + width] — and the real part of the inverse FFT is the noise. The
ring is symmetric under (ky, kx) -> (-ky, -kx), so the filtered noise is real up to rounding.

Accuracy: images in [0, 1] pixel units (uint8 / 255) plus the noise, clipped back to [0, 1]
(``clip=True``, default), then normalized with the dataset mean/std as for clean images.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import torch
from torch import Tensor

from vitprobe.columns import Column
from vitprobe.data.augment import normalize
from vitprobe.data.imagefolder import TensorSample
from vitprobe.device import Device
from vitprobe.device import of as device_of
from vitprobe.models.modes import eval_mode
from vitprobe.probes import Probe, no_progress

PROBE = Probe(
    "robustness", "accuracy under frequency-band noise",
    tables={"robustness": [
        Column("freq", pa.float64(), "π rad", "centre f of the noise's frequency band (Chebyshev radius in [f-w, f+w])"),
        Column("accuracy", pa.float64(), "%", "test accuracy with the band-limited noise added"),
        Column("clean_accuracy", pa.float64(), "%", "test accuracy without noise"),
        Column("delta_accuracy", pa.float64(), "pp", "accuracy - clean_accuracy"),
        Column("eps", pa.float64(), "", "noise amplitude before band filtering, in [0, 1] pixel units"),
        Column("width", pa.float64(), "π rad", "half width w of the frequency band"),
        Column("n_images", pa.int64(), "images", "test images evaluated"),
    ]},
    reads=("test",))

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


@torch.no_grad()
def noise_robustness(model, images_u8: Tensor, labels: Tensor, mean, std, eps: float,
                     freqs: Sequence[float] = FREQS, width: float = 0.1, batch_size: int = 500,
                     seed: int = 0, device: Device | torch.device | str | None = None,
                     clip: bool = True, progress=no_progress) -> pd.DataFrame:
    """Top-1 accuracy (%) under band noise at each frequency in ``freqs``, model in eval mode.

    Each frequency uses a fresh generator seeded with ``seed`` (on the device), so all
    frequencies filter the same sign pattern; the noise is drawn batch by batch, so it
    depends on ``batch_size``. ``device``: a ``vitprobe.device.Device`` (autocast etc.), a
    torch device, or None for the model's device.
    Columns: freq, accuracy, clean_accuracy, delta_accuracy (= accuracy - clean_accuracy,
    percentage points), eps, width; one row per frequency. ``progress`` wraps the loop over
    the passes through the images, a list: None (clean) first, then each frequency.
    """
    if len(images_u8) == 0 or len(images_u8) != len(labels):
        raise ValueError(f"need as many labels as images (> 0); got {len(images_u8)} images, {len(labels)} labels")
    dev = device_of(device, model)

    def accuracy(f: float | None) -> float:
        gen = torch.Generator(device=dev.torch_device).manual_seed(seed)
        correct = 0
        for i in range(0, len(images_u8), batch_size):
            x = images_u8[i:i + batch_size].to(dev.torch_device).float().div_(255)
            if f is not None:
                x += band_noise(x.shape, eps, f, width, generator=gen, device=dev.torch_device)
                if clip:
                    x.clamp_(0, 1)
            with dev.autocast():
                logits = model(dev.prepare_input(normalize(x, mean, std)))
            correct += (logits.argmax(1).cpu() == labels[i:i + batch_size].cpu()).sum().item()
        return 100.0 * correct / len(images_u8)

    freqs = [float(f) for f in freqs]
    with eval_mode(model):
        clean, *noisy = [accuracy(f) for f in progress([None, *freqs])]
    rows = []
    for f, acc in zip(freqs, noisy):
        rows.append({"freq": float(f), "accuracy": acc, "clean_accuracy": clean,
                     "delta_accuracy": acc - clean, "eps": float(eps), "width": float(width)})
    return pd.DataFrame(rows, columns=["freq", "accuracy", "clean_accuracy", "delta_accuracy", "eps", "width"])


def compute(model, images_u8: Tensor, labels: Tensor, mean, std, *, eps: float = 0.1, freqs=FREQS,
            width: float = 0.1, batch_size: int = 500, seed: int = 0, device=None,
            progress=no_progress) -> pd.DataFrame:
    """Table robustness: top-1 accuracy (%) under frequency-band noise against clean accuracy
    (`noise_robustness`); `images_u8` uint8 (N, 3, H, W), normalised inside with `mean`/`std`
    after the noise is added in [0, 1] pixel units."""
    df = noise_robustness(model, images_u8, labels, mean, std, eps=eps, freqs=list(freqs), width=width,
                          batch_size=batch_size, seed=seed, device=device, progress=progress)
    return df.assign(n_images=len(images_u8))


def run(model, inputs, settings: dict, log):
    p = settings
    images, mean, std = inputs.image_sample(model, p["n_images"], p["seed"])
    freqs = p["freqs"]
    # images in memory: one pass (noise drawn batch by batch); decoded files: a chunk of
    # batches at a time, accuracies weighted by chunk size
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
    parts = [compute(model, *images.chunk(i, i + chunk), mean, std, seed=p["seed"] + i, **settings)
             for i in log.bar(f"chunks of {chunk} images")(range(0, len(images), chunk))]
    df = parts[0].copy()
    for col in ("accuracy", "clean_accuracy"):
        df[col] = sum(part[col].to_numpy() * min(chunk, len(images) - i)
                      for i, part in zip(range(0, len(images), chunk), parts)) / len(images)
    df["delta_accuracy"] = df["accuracy"] - df["clean_accuracy"]
    df["n_images"] = len(images)
    return df


def headline(df: pd.DataFrame) -> str:
    worst = df.loc[df["delta_accuracy"].idxmin()]
    return (f"clean accuracy {worst['clean_accuracy']:.2f} %, worst delta {worst['delta_accuracy']:+.2f} pp "
            f"at frequency {worst['freq']:g}")
