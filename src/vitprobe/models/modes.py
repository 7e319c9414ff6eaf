"""Model mode helpers shared by the probes."""

from __future__ import annotations

import contextlib

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Put the model in eval mode; on exit restore every submodule's own train/eval flag
    (mixed modes come back as they were), also when the body raises."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
