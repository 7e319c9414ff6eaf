import copy
from pathlib import Path

import pytest
import torch
import yaml

# Tiny models on a shared 2-core machine: more threads than cores make them much slower.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


def randomize_bn(model):
    """Random BatchNorm statistics and affine parameters, as after training (global RNG).

    At initialization timm zero-inits the last BN of each residual branch, so untrained
    blocks pass their input through and value checks are vacuous; and with BN bias 0 and
    running mean 0 a pixel whose input channels are all ReLU-dead sits exactly at the ReLU's
    kink, where finite differences of gradients jump.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture
def demo_config() -> dict:
    """A fresh copy of the demo preset (profiles/demo/demo.yaml), unvalidated."""
    return copy.deepcopy(yaml.safe_load((REPO / "profiles/demo/demo.yaml").read_text()))


@pytest.fixture
def paper_config() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text()))
