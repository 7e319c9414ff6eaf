"""How the cka probe measures (torch): `compute` on any model, `run` on a pipeline run.
What it computes, its tables and their intervals: `vitprobe.probes.cka`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from vitprobe.analysis.featuremaps import map_statistics
from vitprobe.analysis.inputs import chunks, normalized_chunks
from vitprobe.probes import no_log, no_progress
from vitprobe.probes.cka import cka_from_hsic, stages


def gram(fmap: Tensor) -> Tensor:
    """float64 (n, n): the linear kernel X X' of the map flattened per image, X centred over
    the mini-batch (HSIC_1 is unchanged by it; it keeps the float32 product's rounding small)."""
    x = fmap.detach().flatten(1).float()
    x = x - x.mean(0, keepdim=True)
    return (x @ x.T).double()


def hsic1_matrix(grams: Tensor) -> Tensor:
    """(M, M) float64: HSIC_1(K_a, K_b) of every pair of the M kernels `grams` (M, n, n), the
    formula of the package docstring, all pairs at once."""
    m, n, _ = grams.shape
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs mini-batches of at least 4 images; got {n}")
    k = grams.clone()
    k.diagonal(dim1=1, dim2=2).zero_()
    flat = k.reshape(m, n * n)
    trace = flat @ flat.T                       # tr(K~_a K~_b) (both symmetric)
    total = flat.sum(1)                         # 1'K~1
    rows = k.sum(2)                             # K~1, (M, n)
    return (trace + torch.outer(total, total) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * rows @ rows.T) / (n * (n - 3))


def compute(model: nn.Module, images, *, modules: list[str] | None = None, batch_size: int = 256,
            progress=no_progress, log=no_log) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Tables cka_maps, cka and cka_batches of `model` on `images` (normalized float images: a
    tensor, cut into mini-batches of `batch_size`, or an iterable of mini-batches; a last
    smaller batch is left out), the feature maps of `vitprobe.analysis.featuremaps`, or the
    outputs of `modules` (module paths) for another model. Each mini-batch's maps are reduced to
    their kernels inside the forward pass: memory is one mini-batch's."""
    per_batch, meta, size = [], None, None
    for x in progress(chunks(images, batch_size)):
        if size is None:
            size = len(x)
        if len(x) != size:
            log(f"left out a last mini-batch of {len(x)} images (mini-batches of {size})")
            continue
        maps = map_statistics(model, x, {"gram": gram}, modules)
        if meta is None:
            meta = [m[:5] for m in maps]
        elif [m[:5] for m in maps] != meta:
            raise ValueError(f"mini-batch {len(per_batch)} gave other feature maps than the first")
        per_batch.append(hsic1_matrix(torch.stack([m[5]["gram"] for m in maps])).cpu().numpy())
    if not per_batch:
        raise ValueError("no mini-batch of images given")
    stage, marker = stages([m[2] for m in meta], [m[4] for m in meta])
    maps = pd.DataFrame([{"map_index": i, "map_name": name, "kind": kind, "depth": depth, "side": side,
                          "stage": s, "marker": mk} for (i, name, kind, depth, side), s, mk in zip(meta, stage, marker)])
    a, b = np.triu_indices(len(meta))
    pairs = np.stack([a, b], axis=1)
    hsic = np.stack([h[a, b] for h in per_batch])   # (batches, pairs)
    cka = pd.DataFrame({"map_a": a, "map_b": b, "cka": cka_from_hsic(hsic.mean(0), pairs),
                        "n_batches": len(per_batch), "batch_size": size})
    batches = pd.DataFrame({"batch": np.repeat(np.arange(len(per_batch)), len(a)), "map_a": np.tile(a, len(per_batch)),
                            "map_b": np.tile(b, len(per_batch)), "hsic": hsic.reshape(-1)})
    return maps, cka, batches


def run(model, inputs, settings: dict, log):
    p = settings
    images, mean, std = inputs.image_sample(model, p["n_images"], p["seed"])
    n = len(images) // p["batch_size"]
    log(f"mini-batch CKA between every pair of feature maps on {n} mini-batches of {p['batch_size']} "
        f"{inputs.images_described}")
    return compute(model, normalized_chunks(images, mean, std, inputs.device, p["batch_size"]),
                   batch_size=p["batch_size"],
                   progress=log.bar("mini-batches", total=n), log=log)
