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

import torch
import torch.nn.functional as F

from vitprobe.augment import BatchAugment, normalize
from vitprobe.device import Device
from vitprobe.probes import no_progress


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
    model.eval()
    logits = []
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
    model.eval()
    total, n = 0.0, 0
    for i in progress(range(0, len(images_u8), batch_size)):
        x, y = augment(images_u8[i:i + batch_size].to(device.torch_device),
                       labels[i:i + batch_size].to(device.torch_device), generator)
        with device.autocast():
            logp = model(device.prepare_input(x)).float().log_softmax(1)
        total += -(y * logp).sum().item()
        n += len(x)
    return total / n
