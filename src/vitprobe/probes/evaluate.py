"""Error, NLL and calibration.

- error: top-1 error (%) on the clean test set.
- nll_test: mean negative log-likelihood on the clean test set.
- nll_train: mean NLL with soft targets on the *augmented* training set (the training
  augmentation, Mixup/CutMix and label smoothing included), model in eval mode, as the
  paper's NLL_train.
- ece: expected calibration error, 10 equal-width confidence bins:
  sum_b |B_b|/n · |accuracy(B_b) − mean confidence(B_b)|.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import torch
import torch.nn.functional as F

from vitprobe.columns import Column
from vitprobe.data.augment import BatchAugment, normalize
from vitprobe.device import Device
from vitprobe.device import of as device_of
from vitprobe.models.modes import eval_mode
from vitprobe.probes import Probe, no_progress

PROBE = Probe(
    "eval", "test error, NLL, ECE and NLL_train of a checkpoint",
    tables={"eval": [
        Column("error", pa.float64(), "%", "top-1 error on the clean test set"),
        Column("nll_test", pa.float64(), "nats", "mean NLL on the clean test set"),
        Column("nll_train", pa.float64(), "nats", "mean NLL (soft targets) on the augmented training set, eval mode"),
        Column("ece", pa.float64(), "", "expected calibration error on the test set, 10 equal-width bins"),
        Column("n_test", pa.int64(), "images", "test images evaluated"),
        Column("n_train", pa.int64(), "images", "augmented training images evaluated"),
    ]},
    reads=("train", "test"), rule="evaluate")


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 10) -> float:
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).double()
    # bin b holds confidences in (b/n, (b+1)/n]; confidence 0 cannot occur for softmax outputs
    bins = torch.clamp(torch.ceil(conf.double() * n_bins).long() - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.double().mean().item() * abs(correct[mask].mean().item() - conf[mask].double().mean().item())
    return ece


@torch.no_grad()
def clean_metrics(model, images_u8, labels, mean, std, device: Device, batch_size: int = 500,
                  progress=no_progress) -> dict:
    """Error (%), NLL and ECE of `model` (eval mode) on uint8 images. `progress` wraps the
    loop over batches (a list of batch start indices), e.g. in a progress bar."""
    logits = []
    with eval_mode(model):
        for i in progress(range(0, len(images_u8), batch_size)):
            x = normalize(images_u8[i:i + batch_size].to(device.torch_device), mean, std)
            with device.autocast():
                logits.append(model(device.prepare_input(x)).float().cpu())
    logits = torch.cat(logits)
    nll = F.cross_entropy(logits, labels, reduction="mean").item()
    error = 100.0 * (logits.argmax(1) != labels).double().mean().item()
    return {"error": error, "nll_test": nll, "ece": expected_calibration_error(logits.softmax(1), labels),
            "n_test": len(labels)}


@torch.no_grad()
def augmented_nll(model, images_u8, labels, augment: BatchAugment, device: Device, batch_size: int = 500,
                  generator: torch.Generator | None = None, progress=no_progress) -> float:
    """Mean soft-target NLL on augmented training batches, model in eval mode. `progress`
    wraps the loop over batches as in `clean_metrics`."""
    total, n = 0.0, 0
    with eval_mode(model):
        for i in progress(range(0, len(images_u8), batch_size)):
            x, y = augment(images_u8[i:i + batch_size].to(device.torch_device),
                           labels[i:i + batch_size].to(device.torch_device), generator)
            with device.autocast():
                logp = model(device.prepare_input(x)).float().log_softmax(1)
            total += -(y * logp).sum().item()
            n += len(x)
    return total / n


def compute(model, test_images, test_labels, mean, std, *, train=None, augment: BatchAugment | None = None,
            batch_size: int = 500, seed: int = 0, device=None, progress=no_progress,
            train_progress=no_progress) -> pd.DataFrame:
    """Table eval, one row: error (%), NLL and ECE on the uint8 test images (normalised inside
    with `mean`/`std`) and, with `train` = (uint8 images, labels) and the run's `augment`
    (`vitprobe.data.augment.BatchAugment`), the soft-target NLL on the augmented training
    images, augmentation seeded with `seed` (NaN without them)."""
    device = device_of(device, model)
    row = clean_metrics(model, test_images, test_labels, mean, std, device, batch_size, progress=progress)
    row["nll_train"], row["n_train"] = float("nan"), 0
    if train is not None:
        if augment is None:
            raise ValueError("train images need the training augmentation (augment=BatchAugment(...)), as NLL_train "
                             "is defined on augmented images")
        gen = torch.Generator(device=device.torch_device).manual_seed(seed)
        row["nll_train"] = augmented_nll(model, *train, augment, device, batch_size, gen, progress=train_progress)
        row["n_train"] = len(train[1])
    return pd.DataFrame([row])


def run(model, inputs, settings: dict, log):
    test, split = inputs.test_split, inputs.training_split
    log(f"error, NLL and ECE on {len(test.labels)} test images, NLL on {len(split.labels)} augmented "
        f"training images, batches of {settings['batch_size']}")
    return compute(model, test.images, test.labels, *inputs.mean_std, train=(split.images, split.labels),
                   augment=inputs.augment(split.num_classes), batch_size=settings["batch_size"],
                   seed=settings["seed"], device=inputs.device, progress=log.bar("test batches"),
                   train_progress=log.bar("training batches"))


def headline(df: pd.DataFrame) -> str:
    row = df.iloc[0]
    return (f"error {row['error']:.2f} %, NLL test {row['nll_test']:.4f}, NLL train {row['nll_train']:.4f}, "
            f"ECE {row['ece']:.4f}")
