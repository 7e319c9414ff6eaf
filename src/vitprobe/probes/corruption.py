"""Accuracy and NLL under common corruptions (CIFAR-10-C / CIFAR-100-C, `vitprobe.corruptions`).

For each corruption c and severity s: accuracy (%) = share of the images of that block whose
argmax logit is the label; NLL = mean cross-entropy of the softmax, in nats. Images are
normalized with the clean dataset's mean/std, as clean test images are. Clean accuracy and
NLL on the clean test set (the same image indices) go into every row, so the table alone
gives the paper's Fig. 12b (clean accuracy against the mean over 15 corruptions x 5
severities).
"""

from __future__ import annotations

import pandas as pd
import torch

from vitprobe import corruptions
from vitprobe.device import Device
from vitprobe.probes import no_progress
from vitprobe.probes.evaluate import clean_metrics


def corruption_metrics(model, folder, names, severities, mean, std, device: Device, clean_images, clean_labels,
                       index: torch.Tensor | None = None, batch_size: int = 500, dataset: str | None = None,
                       progress=no_progress) -> pd.DataFrame:
    """One row per (corruption, severity): accuracy, nll, clean_accuracy, clean_nll, n_images.
    ``index`` picks the same rows of every severity block (default: all of them);
    ``clean_images``/``clean_labels`` are the clean test images of the same indices."""
    clean = clean_metrics(model, clean_images, clean_labels, mean, std, device, batch_size)
    rows = []
    for name, severity in progress([(c, s) for c in names for s in severities]):
        images, labels = corruptions.read(folder, name, severity, dataset, index)
        m = clean_metrics(model, images, labels, mean, std, device, batch_size)
        rows.append({"corruption": name, "severity": severity, "accuracy": 100.0 - m["error"], "nll": m["nll_test"],
                     "clean_accuracy": 100.0 - clean["error"], "clean_nll": clean["nll_test"],
                     "n_images": len(labels)})
    return pd.DataFrame(rows)
