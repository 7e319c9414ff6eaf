"""Probe runners: checkpoint + spec -> one tidy per-run, per-checkpoint Parquet table.
The math lives in `vitprobe.probes`; this module only feeds it data and writes rows."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import torch

from vitprobe import results
from vitprobe.augment import BatchAugment
from vitprobe.device import Device
from vitprobe.probes import evaluate
from vitprobe.runtime import load_model, mean_std, test_split, train_hash, training_split


def augmented_batches(spec: dict, n_batches: int, batch_size: int, seed: int, device: Device):
    """`n_batches` disjoint mini-batches of augmented training images with soft targets
    (the training augmentation: crop/flip, RandAugment, Mixup/CutMix, label smoothing)."""
    split = training_split(spec)
    mean, std = mean_std(spec)
    augment = BatchAugment(spec["train"]["augment"], mean, std, split.num_classes)
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=device.torch_device).manual_seed(seed + 1)
    torch.manual_seed(seed)  # RandAugment draws from the global generator
    perm = torch.randperm(len(split.labels), generator=gen)
    if n_batches * batch_size > len(perm):  # small subsets: batches may overlap, never repeat within one
        perm = torch.cat([torch.randperm(len(split.labels), generator=gen)
                          for _ in range(-(-n_batches * batch_size // len(perm)))])
    for b in range(n_batches):
        idx = perm[b * batch_size:(b + 1) * batch_size]
        yield augment(split.images[idx].to(device.torch_device), split.labels[idx].to(device.torch_device), aug_gen)


def _write(df: pd.DataFrame, table: str, spec: dict, payload: dict, out) -> pd.DataFrame:
    results.write_run_table(df, table, out, run=spec["run"], epoch=payload["epoch"], config_hash=train_hash(spec))
    return df


def hessian(spec: dict, checkpoint_path, out, summary_out, device: Device) -> pd.DataFrame:
    """Top-k Hessian eigenvalues (by magnitude, sign kept) of NLL + wd/2·||θ||² on each of
    N mini-batches of augmented training images; one row per (batch, rank) in `out`. In
    `summary_out`, one row: NEP, APE and Hutchinson's trace on the same batches
    (`vitprobe.probes.summary`)."""
    from vitprobe.probes.hessian import top_eigenvalues
    from vitprobe.probes.spectral import hessian_trace
    from vitprobe.probes.summary import spectrum_summary

    p = spec["probe"]
    wd = spec["train"]["weight_decay"]
    model, payload = load_model(checkpoint_path, spec)
    model = model.to(device.torch_device)
    rows, spectra, traces = [], [], []
    for b, (x, y) in enumerate(augmented_batches(spec, p["n_batches"], p["batch_size"], p["seed"], device)):
        values, info = top_eigenvalues(model, x, y, k=p["k"], weight_decay=wd, method=p["method"], tol=p["tol"],
                                       return_info=True)
        print(f"batch {b}: {info['n_hvp']} HVPs, {info['seconds']:.1f} s, top eigenvalues {values}", file=sys.stderr)
        rows += [{"batch": b, "rank": r + 1, "eigenvalue": float(v), "batch_size": len(x), "method": p["method"],
                  "n_hvp": info["n_hvp"]} for r, v in enumerate(values)]
        spectra.append(values)
        if p["trace_samples"]:
            trace, tinfo = hessian_trace(model, x, y, weight_decay=wd, n_samples=p["trace_samples"],
                                         seed=p["seed"] + b, return_info=True)
            print(f"batch {b}: trace {trace:.4g} ± {tinfo['std_error']:.2g}, {tinfo['seconds']:.1f} s",
                  file=sys.stderr)
            traces.append(tinfo["samples"])
    summary = {**spectrum_summary(spectra, traces), "batch_size": p["batch_size"], "method": p["method"]}
    _write(pd.DataFrame([summary]), "hessian_summary", spec, payload, summary_out)
    return _write(pd.DataFrame(rows), "hessian", spec, payload, out)


def evaluate_checkpoint(spec: dict, checkpoint_path, out, device: Device) -> pd.DataFrame:
    """Clean test error / NLL / ECE and NLL on the augmented training set."""
    p = spec["probe"]
    model, payload = load_model(checkpoint_path, spec)
    model = device.prepare_model(model)
    mean, std = mean_std(spec)
    test = test_split(spec)
    row = evaluate.clean_metrics(model, test.images, test.labels, mean, std, device, p["batch_size"])
    split = training_split(spec)
    augment = BatchAugment(spec["train"]["augment"], mean, std, split.num_classes)
    torch.manual_seed(p["seed"])
    gen = torch.Generator(device=device.torch_device).manual_seed(p["seed"])
    row["nll_train"] = evaluate.augmented_nll(model, split.images, split.labels, augment, device,
                                              p["batch_size"], gen)
    row["n_train"] = len(split.labels)
    return _write(pd.DataFrame([row]), "eval", spec, payload, out)


def _test_images(spec: dict, n_images: int | None, seed: int):
    """The first n test images of a seeded permutation (all of them if n is None)."""
    test = test_split(spec)
    idx = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[:n_images]
    return test.images[idx], test.labels[idx]


def _map_statistics(spec: dict, checkpoint_path, device: Device, statistic, chunk: int = 64):
    """Per feature map, the image-weighted mean of `statistic(map)` over chunks of the
    probe's test images. Both statistics used here (the mean log-amplitude curve and the
    mean spatial variance) are means over images, so chunking changes nothing but memory."""
    from vitprobe.augment import normalize
    from vitprobe.features import feature_maps

    p = spec["probe"]
    model, payload = load_model(checkpoint_path, spec)
    model = model.to(device.torch_device)
    images, _ = _test_images(spec, p["n_images"], p["seed"])
    meta, sums = None, None
    for i in range(0, len(images), chunk):
        x = normalize(images[i:i + chunk].to(device.torch_device), *mean_std(spec))
        maps = feature_maps(model, x)
        stats = [np.asarray(statistic(m.tensor), dtype=np.float64) * len(x) for m in maps]
        meta = meta or [(m.index, m.name, m.kind, m.depth, m.tensor.shape[-1]) for m in maps]
        sums = stats if sums is None else [a + b for a, b in zip(sums, stats)]
    return [(*m, total / len(images)) for m, total in zip(meta, sums)], len(images), payload


def fourier(spec: dict, checkpoint_path, out, device: Device) -> pd.DataFrame:
    """Relative log amplitude of every feature map's Fourier spectrum; one row per (map, frequency)."""
    from vitprobe.probes.fourier import frequencies, relative_log_amplitude

    maps, n, payload = _map_statistics(spec, checkpoint_path, device, lambda t: relative_log_amplitude(t).cpu())
    rows = [{"map_index": i, "map_name": name, "kind": kind, "depth": depth, "freq": float(f),
             "log_amplitude": float(a), "high_freq_delta": float(curve[-1]), "n_images": n}
            for i, name, kind, depth, side, curve in maps for f, a in zip(frequencies(side), curve)]
    return _write(pd.DataFrame(rows), "fourier", spec, payload, out)


def variance(spec: dict, checkpoint_path, out, device: Device) -> pd.DataFrame:
    """Feature-map variance of every map; one row per map."""
    from vitprobe.probes.variance import feature_map_variance

    maps, n, payload = _map_statistics(spec, checkpoint_path, device, feature_map_variance)
    rows = [{"map_index": i, "map_name": name, "kind": kind, "depth": depth, "variance": float(v), "n_images": n}
            for i, name, kind, depth, _, v in maps]
    return _write(pd.DataFrame(rows), "variance", spec, payload, out)


def robustness(spec: dict, checkpoint_path, out, device: Device) -> pd.DataFrame:
    """Accuracy under frequency-band noise against clean accuracy; one row per frequency."""
    from vitprobe.probes.robustness import noise_robustness

    p = spec["probe"]
    model, payload = load_model(checkpoint_path, spec)
    model = device.prepare_model(model)
    images, labels = _test_images(spec, p["n_images"], p["seed"])
    df = noise_robustness(model, images, labels, *mean_std(spec), eps=p["eps"], freqs=p["freqs"],
                          width=p["width"], batch_size=p["batch_size"], seed=p["seed"], device=device)
    df["n_images"] = len(images)
    return _write(df, "robustness", spec, payload, out)


def landscape(spec: dict, checkpoint_path, out, device: Device) -> pd.DataFrame:
    """NLL + L2 along filter-normalized random directions: a 1-D line and a 2-D plane."""
    from vitprobe.probes.landscape import filter_normalized_direction, grid_1d, grid_2d, loss_landscape

    p = spec["probe"]
    model, payload = load_model(checkpoint_path, spec)
    model = model.to(device.torch_device)
    batches = list(augmented_batches(spec, p["n_batches"], p["batch_size"], p["seed"], device))
    gen = torch.Generator(device=device.torch_device).manual_seed(p["seed"])
    d1, d2 = filter_normalized_direction(model, gen), filter_normalized_direction(model, gen)
    wd = spec["train"]["weight_decay"]
    parts = []
    if p["points_1d"]:
        line = loss_landscape(model, batches, [d1], grid_1d(p["radius"], p["points_1d"]), wd)
        parts.append(line.assign(grid="1d", y=0.0))
    if p["points_2d"]:
        plane = loss_landscape(model, batches, [d1, d2], grid_2d(p["radius"], p["points_2d"]), wd)
        parts.append(plane.assign(grid="2d"))
    return _write(pd.concat(parts, ignore_index=True), "landscape", spec, payload, out)


# probe name (= its table's name = config key under `probes`) ->
# runner(spec, checkpoint, *outs, device): one out per table of `results.tables_of(probe)`
PROBES = {
    "hessian": hessian,
    "eval": evaluate_checkpoint,
    "fourier": fourier,
    "variance": variance,
    "robustness": robustness,
    "landscape": landscape,
}
