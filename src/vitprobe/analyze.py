"""Probe runners: checkpoint + spec -> one tidy per-run, per-checkpoint Parquet table.
The math lives in `vitprobe.probes`; this module only feeds it data and writes rows."""

from __future__ import annotations

import sys

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


def hessian(spec: dict, checkpoint_path, out, device: Device) -> pd.DataFrame:
    """Top-k Hessian eigenvalues (by magnitude, sign kept) of NLL + wd/2·||θ||² on each of
    N mini-batches of augmented training images; one row per (batch, rank)."""
    from vitprobe.probes.hessian import top_eigenvalues

    p = spec["probe"]
    model, payload = load_model(checkpoint_path, spec)
    model = model.to(device.torch_device)
    rows = []
    for b, (x, y) in enumerate(augmented_batches(spec, p["n_batches"], p["batch_size"], p["seed"], device)):
        values, info = top_eigenvalues(model, x, y, k=p["k"], weight_decay=spec["train"]["weight_decay"],
                                       method=p["method"], tol=p["tol"], return_info=True)
        print(f"batch {b}: {info['n_hvp']} HVPs, {info['seconds']:.1f} s, top eigenvalues {values}", file=sys.stderr)
        rows += [{"batch": b, "rank": r + 1, "eigenvalue": float(v), "batch_size": len(x), "method": p["method"],
                  "n_hvp": info["n_hvp"]} for r, v in enumerate(values)]
    df = pd.DataFrame(rows)
    results.write_run_table(df, "hessian", out, run=spec["run"], epoch=payload["epoch"], config_hash=train_hash(spec))
    return df


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
    df = pd.DataFrame([row])
    results.write_run_table(df, "eval", out, run=spec["run"], epoch=payload["epoch"], config_hash=train_hash(spec))
    return df
