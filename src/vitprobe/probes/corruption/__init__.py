"""Accuracy and NLL under common corruptions (CIFAR-10-C / CIFAR-100-C, `vitprobe.data.cifar_c`).

For each corruption c and severity s: accuracy (%) = share of the images of that block whose
argmax logit is the label; NLL = mean cross-entropy of the softmax, in nats. Images are
normalized with the clean dataset's mean/std, as clean test images are. Clean accuracy and
NLL on the clean test set (the same image indices) go into every row, so the table alone
gives the paper's Fig. 12b (clean accuracy against the mean over 15 corruptions x 5
severities).

Table corruption_images keeps, per (corruption, severity, image), correctness and NLL of the
corrupted image beside those of the clean one, so that intervals over images (Wilson,
paired bootstrap clean vs corrupted) need no rerun; table corruption holds their means.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from vitprobe import stats
from vitprobe.columns import Column, bounds
from vitprobe.data.registry import ARCHIVES
from vitprobe.errors import ConfigError
from vitprobe.probes import Probe

PROBE = Probe(
    "corruption", "accuracy and NLL on CIFAR-10-C/100-C per corruption and severity",
    tables={
        "corruption": [
            Column("corruption", pa.string(), "", "CIFAR-C corruption, e.g. gaussian_noise (vitprobe.data.cifar_c.CORRUPTIONS)"),
            Column("severity", pa.int64(), "", "corruption severity, 1 (mild) .. 5 (strong)"),
            Column("accuracy", pa.float64(), "%", "top-1 accuracy on the corrupted test images (100 · mean of "
                   "corruption_images.correct)"),
            Column("nll", pa.float64(), "nats", "mean NLL on the corrupted test images"),
            Column("clean_accuracy", pa.float64(), "%", "top-1 accuracy on the same test images, uncorrupted"),
            Column("clean_nll", pa.float64(), "nats", "mean NLL on the same test images, uncorrupted"),
            Column("n_images", pa.int64(), "images", "test images per (corruption, severity)"),
        ],
        "corruption_images": [
            Column("image", pa.int64(), "", "index of the clean test image (its row in each severity block of CIFAR-C)"),
            Column("corruption", pa.string(), "", "CIFAR-C corruption, as in table corruption"),
            Column("severity", pa.int64(), "", "corruption severity, 1 (mild) .. 5 (strong)"),
            Column("correct", pa.bool_(), "", "argmax logit == label on the corrupted image"),
            Column("nll", pa.float64(), "nats", "cross-entropy on the corrupted image"),
            Column("clean_correct", pa.bool_(), "", "argmax logit == label on the same image, uncorrupted"),
            Column("clean_nll", pa.float64(), "nats", "cross-entropy on the same image, uncorrupted"),
        ],
    },
    reads=("test", "corruptions"),
    tiny={"severities": [1], "n_images": 8, "batch_size": 8},
    intervals={"corruption": ("corruption_images", [
        *bounds("accuracy", "Wilson score interval over the n_images images", "%"),
        *bounds("nll", "expanded percentile bootstrap over the images of corruption_images", "nats"),
        *bounds("clean_accuracy", "Wilson score interval over the n_images images", "%"),
    ])})


def headline(df: pd.DataFrame, images: pd.DataFrame | None = None) -> str:
    return (f"clean accuracy {df['clean_accuracy'].iloc[0]:.2f} %, mean corrupted accuracy "
            f"{df['accuracy'].mean():.2f} %")


def check(settings: dict, config: dict) -> None:
    """Before any job: without `folder`, data.dataset must have a published CIFAR-C set."""
    dataset = config["data"]["dataset"]
    if not settings.get("folder") and dataset not in ARCHIVES:
        raise ConfigError(f"probes.corruption.folder: required for data.dataset {dataset!r}, which has no "
                          f"published corrupted test set (only {', '.join(ARCHIVES)}: CIFAR-10-C, CIFAR-100-C); "
                          f"give a folder in the CIFAR-C layout or remove probes.corruption")


def intervals(table: str, rows: pd.DataFrame, units: pd.DataFrame, ci) -> pd.DataFrame:
    """corruption with its interval columns (`vitprobe.stats`): accuracies by Wilson, nll by
    the bootstrap over images."""
    acc_low, acc_high = stats.wilson_columns(rows, "accuracy", "n_images", ci)
    clean_low, clean_high = stats.wilson_columns(rows, "clean_accuracy", "n_images", ci)
    keys = ["corruption", "severity"]
    nll_low, nll_high = stats.mean_intervals(rows, units, keys, "nll", ci)
    return rows.assign(accuracy_low=acc_low, accuracy_high=acc_high, nll_low=nll_low, nll_high=nll_high,
                       clean_accuracy_low=clean_low, clean_accuracy_high=clean_high)

