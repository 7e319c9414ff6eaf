"""The training loss and the parameters it is differentiated by: one definition for
training, the Hessian, the trace and the loss landscape."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def nll(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean negative log-likelihood.

    Integer class targets of shape (B,): ``F.cross_entropy``. Soft targets of shape (B, C)
    (mixup/cutmix/label smoothing): mean over the batch of -Σ_c t_c · log_softmax(outputs)_c.
    """
    if targets.ndim == 1 and not targets.is_floating_point():
        return F.cross_entropy(outputs, targets)
    if targets.ndim == 2 and targets.is_floating_point():
        log_p = F.log_softmax(outputs, dim=-1)
        return -(targets.to(log_p.dtype) * log_p).sum(-1).mean()
    raise ValueError(
        f"targets must be int class indices of shape (B,) or float soft targets of shape (B, C); "
        f"got dtype {targets.dtype} and shape {tuple(targets.shape)}"
    )


def trainable(model: nn.Module) -> list[Tensor]:
    """The parameters with ``requires_grad``: what training updates and the Hessian is over."""
    return [p for p in model.parameters() if p.requires_grad]
