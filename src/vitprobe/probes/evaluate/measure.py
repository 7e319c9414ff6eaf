"""How the evaluate probe measures (torch): `compute` on any model, `run` on a pipeline run.
What it computes, its tables and their intervals: `vitprobe.probes.evaluate`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from vitprobe import stats
from vitprobe.data.augment import BatchAugment, normalize
from vitprobe.device import Device
from vitprobe.device import of as device_of
from vitprobe.models.modes import eval_mode
from vitprobe.probes import no_progress
from vitprobe.probes.evaluate import N_BINS


def calibration_error(confidence, correct, n_bins: int = N_BINS) -> float:
    """ECE of per-image max softmax probabilities `confidence` and bools `correct` (array-likes
    of one length): sum_b |B_b|/n · |accuracy(B_b) − mean confidence(B_b)| over `n_bins`
    equal-width bins, bin b holding confidences in (b/n_bins, (b+1)/n_bins]."""
    return stats.ece(confidence, correct, n_bins)  # the one implementation, also the bootstrap's (stats.ece_replicates)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = N_BINS) -> float:
    """ECE of softmax outputs `probs` (N, K) against `labels` (`calibration_error`)."""
    conf, pred = probs.max(dim=1)
    return calibration_error(conf.double().cpu().numpy(), (pred == labels).cpu().numpy(), n_bins)


def per_image_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """numpy arrays per image of `logits` (N, K): correct (bool, argmax == label), nll
    (float64, cross-entropy in nats, computed in float64) and confidence (float64, max
    softmax probability)."""
    logits, labels = logits.float().cpu(), labels.cpu()
    return {"correct": (logits.argmax(1) == labels).numpy(),
            "nll": F.cross_entropy(logits.double(), labels, reduction="none").numpy(),
            "confidence": logits.softmax(1).max(1).values.double().numpy()}


def summary(per_image: dict) -> dict:
    """Error (%), NLL and ECE from `per_image_metrics`' arrays, as table eval computes them."""
    correct = per_image["correct"]
    return {"error": 100.0 * (1.0 - float(np.mean(correct))), "nll_test": float(np.mean(per_image["nll"])),
            "ece": calibration_error(per_image["confidence"], correct), "n_test": len(correct)}


@torch.no_grad()
def clean_metrics(model, images_u8, labels, mean, std, device: Device, batch_size: int = 500,
                  progress=no_progress, per_image: bool = False):
    """Error (%), NLL and ECE of `model` (eval mode) on uint8 images, a dict (error, nll_test,
    ece, n_test); with `per_image`, (that dict, `per_image_metrics`' arrays: correct, nll,
    confidence), the dict computed from the arrays (`summary`). `progress` wraps the loop
    over batches (a list of batch start indices), e.g. in a progress bar."""
    logits = []
    with eval_mode(model):
        for i in progress(range(0, len(images_u8), batch_size)):
            x = normalize(images_u8[i:i + batch_size].to(device.torch_device), mean, std)
            with device.autocast():
                logits.append(model(device.prepare_input(x)).float().cpu())
    arrays = per_image_metrics(torch.cat(logits), labels)
    row = summary(arrays)
    return (row, arrays) if per_image else row


def std_error(values) -> float:
    """sd (ddof 1) / √n of `values`; NaN below 2 values."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


@torch.no_grad()
def augmented_nll(model, images_u8, labels, augment: BatchAugment, device: Device, batch_size: int = 500,
                  generator: torch.Generator | None = None, progress=no_progress, with_std_error: bool = False):
    """Mean soft-target NLL on augmented training batches, model in eval mode; with
    `with_std_error`, (mean, its standard error over the images: `std_error` of the
    per-image NLLs). `progress` wraps the loop over batches as in `clean_metrics`. The
    augmentation runs on the CPU (with `generator`, a CPU one) and each batch moves to the
    device after it: the same augmented images on every device."""
    nlls = []
    with eval_mode(model):
        for i in progress(range(0, len(images_u8), batch_size)):
            x, y = augment(images_u8[i:i + batch_size].cpu(), labels[i:i + batch_size].cpu(), generator)
            x, y = x.to(device.torch_device), y.to(device.torch_device)
            with device.autocast():
                logp = model(device.prepare_input(x)).float().log_softmax(1)
            nlls.append(-(y.cpu().double() * logp.cpu().double()).sum(1).numpy())
    nlls = np.concatenate(nlls) if nlls else np.zeros(0)
    mean = float(np.mean(nlls)) if len(nlls) else float("nan")
    return (mean, std_error(nlls)) if with_std_error else mean


def compute(model, test_images, test_labels, mean, std, *, train=None, augment: BatchAugment | None = None,
            batch_size: int = 500, seed: int = 0, device=None, progress=no_progress,
            train_progress=no_progress) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables (eval, eval_images). eval, one row: error (%), NLL and ECE on the uint8 test
    images (normalised inside with `mean`/`std`) and, with `train` = (uint8 images, labels)
    and the run's `augment` (`vitprobe.data.augment.BatchAugment`), the soft-target NLL on
    the augmented training images with its standard error, augmentation seeded with `seed`
    (NaN without them). eval_images: one row per test image (its index, label, correct,
    nll, confidence), from which eval's error, nll_test and ece are computed."""
    device = device_of(device, model)
    clean, arrays = clean_metrics(model, test_images, test_labels, mean, std, device, batch_size, progress=progress,
                                  per_image=True)
    nll_train, nll_train_se, n_train = float("nan"), float("nan"), 0
    if train is not None:
        if augment is None:
            raise ValueError("train images need the training augmentation (augment=BatchAugment(...)), as NLL_train "
                             "is defined on augmented images")
        gen = torch.Generator().manual_seed(seed)
        nll_train, nll_train_se = augmented_nll(model, *train, augment, device, batch_size, gen,
                                                progress=train_progress, with_std_error=True)
        n_train = len(train[1])
    row = {"error": clean["error"], "nll_test": clean["nll_test"], "nll_train": nll_train,
           "nll_train_std_error": nll_train_se, "ece": clean["ece"], "n_test": clean["n_test"], "n_train": n_train}
    images = pd.DataFrame({"image": np.arange(len(arrays["correct"]), dtype=np.int64),
                           "label": torch.as_tensor(test_labels).cpu().numpy().astype(np.int64),
                           "correct": arrays["correct"].astype(bool), "nll": arrays["nll"].astype(np.float64),
                           "confidence": arrays["confidence"].astype(np.float64)})
    return pd.DataFrame([row]), images


def run(model, inputs, settings: dict, log):
    test, split = inputs.test_split, inputs.training_split
    log(f"error, NLL and ECE on {len(test.labels)} test images, NLL on {len(split.labels)} augmented "
        f"training images, batches of {settings['batch_size']}")
    return compute(model, test.images, test.labels, *inputs.mean_std, train=(split.images, split.labels),
                   augment=inputs.augment(split.num_classes), batch_size=settings["batch_size"],
                   seed=settings["seed"], device=inputs.device, progress=log.bar("test batches"),
                   train_progress=log.bar("training batches"))

