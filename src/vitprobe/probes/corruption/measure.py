"""How the corruption probe measures (torch): `compute` on any model, `run` on a pipeline run.
What it computes, its tables and their intervals: `vitprobe.probes.corruption`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from vitprobe.data import cifar_c as corruptions
from vitprobe.device import Device
from vitprobe.device import of as device_of
from vitprobe.probes import no_log, no_progress
from vitprobe.probes.evaluate.measure import clean_metrics

SUMMARY_COLUMNS = ["corruption", "severity", "accuracy", "nll", "clean_accuracy", "clean_nll", "n_images"]
IMAGE_COLUMNS = ["image", "corruption", "severity", "correct", "nll", "clean_correct", "clean_nll"]


def summarize(images: pd.DataFrame) -> pd.DataFrame:
    """Table corruption from table corruption_images: per (corruption, severity), in the
    order of first appearance, the means (accuracies ×100) and the number of images."""
    rows = []
    for (name, severity), g in images.groupby(["corruption", "severity"], sort=False):
        rows.append({"corruption": name, "severity": int(severity),
                     "accuracy": 100.0 * float(np.mean(g["correct"].to_numpy(dtype=np.float64))),
                     "nll": float(np.mean(g["nll"].to_numpy(dtype=np.float64))),
                     "clean_accuracy": 100.0 * float(np.mean(g["clean_correct"].to_numpy(dtype=np.float64))),
                     "clean_nll": float(np.mean(g["clean_nll"].to_numpy(dtype=np.float64))),
                     "n_images": len(g)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def corruption_metrics(model, folder, names, severities, mean, std, device: Device, clean_images, clean_labels,
                       index: torch.Tensor | None = None, batch_size: int = 500, dataset: str | None = None,
                       progress=no_progress, per_image: bool = False):
    """One row per (corruption, severity): accuracy, nll, clean_accuracy, clean_nll, n_images.
    ``index`` picks the same rows of every severity block (default: all of them);
    ``clean_images``/``clean_labels`` are the clean test images of the same indices. With
    ``per_image``, (that table, table corruption_images: one row per (corruption, severity,
    image), image = the entry of ``index`` (default: the row), the first table their means
    (`summarize`))."""
    _, clean = clean_metrics(model, clean_images, clean_labels, mean, std, device, batch_size, per_image=True)
    image = (index.cpu().numpy() if index is not None else np.arange(len(clean_labels))).astype(np.int64)
    parts = []
    for name, severity in progress([(c, s) for c in names for s in severities]):
        images, labels = corruptions.read(folder, name, severity, dataset, index)
        _, m = clean_metrics(model, images, labels, mean, std, device, batch_size, per_image=True)
        parts.append(pd.DataFrame({"image": image, "corruption": name, "severity": np.int64(severity),
                                   "correct": m["correct"].astype(bool), "nll": m["nll"].astype(np.float64),
                                   "clean_correct": clean["correct"].astype(bool),
                                   "clean_nll": clean["nll"].astype(np.float64)}, columns=IMAGE_COLUMNS))
    per_rows = (pd.concat(parts, ignore_index=True) if parts else
                pd.DataFrame({c: [] for c in IMAGE_COLUMNS}).astype(
                    {"image": "int64", "corruption": "object", "severity": "int64", "correct": "bool",
                     "nll": "float64", "clean_correct": "bool", "clean_nll": "float64"}))
    table = summarize(per_rows)
    return (table, per_rows) if per_image else table


def compute(model, folder, test_images, test_labels, mean, std, *, extra: bool = False,
            severities=corruptions.SEVERITIES, n_images: int | None = None, seed: int = 0, batch_size: int = 500,
            dataset: str | None = None, device=None, log=no_log,
            progress=no_progress) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables (corruption, corruption_images). corruption: accuracy and NLL on the CIFAR-C
    copies in `folder` of the clean test set (`test_images` uint8, `test_labels`), per
    corruption (the 15, with `extra` the 19) and severity, beside the clean values of the
    same images: all of them, or `n_images` drawn by a permutation seeded `seed` (the same
    rows of every severity block). corruption_images: per (corruption, severity, image), the
    image's index in the test set, correct and NLL corrupted and clean; corruption holds
    their means. `log` gets one line saying what it computes, once the folder is checked."""
    names = corruptions.corruption_names(extra)
    n = corruptions.check(folder, names, dataset)
    if len(test_labels) != n:
        raise corruptions.DataDamaged(f"{folder}: {n} images per severity, but the clean {dataset or 'test'} test set "
                                      f"has {len(test_labels)}; probes.corruption.folder must hold the corrupted "
                                      f"copies of this test set")
    index = None
    if n_images is not None and n_images < n:
        index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:n_images].sort().values
    clean_idx = index if index is not None else torch.arange(n)
    log(f"accuracy and NLL on {len(clean_idx)} test images under {len(names)} corruptions x {len(severities)} "
        f"severities from {folder}, batches of {batch_size}")
    return corruption_metrics(model, folder, names, list(severities), mean, std, device_of(device, model),
                              test_images[clean_idx], test_labels[clean_idx], index=index, batch_size=batch_size,
                              dataset=dataset, progress=progress, per_image=True)


def run(model, inputs, settings: dict, log):
    p = settings
    test = inputs.test_split
    return compute(model, inputs.corruption_folder(p.get("folder")), test.images, test.labels, *inputs.mean_std,
                   extra=p["extra"], severities=p["severities"], n_images=p["n_images"], seed=p["seed"],
                   batch_size=p["batch_size"], dataset=inputs.dataset, device=inputs.device, log=log,
                   progress=log.bar("(corruption, severity) blocks"))

