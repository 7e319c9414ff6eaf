import copy
from pathlib import Path

import pytest
import torch
import yaml

# Tiny models on a shared 2-core machine: more threads than cores make them much slower.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo_config() -> dict:
    """A fresh copy of the demo preset (profiles/demo/demo.yaml), unvalidated."""
    return copy.deepcopy(yaml.safe_load((REPO / "profiles/demo/demo.yaml").read_text()))


@pytest.fixture
def paper_config() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text()))
