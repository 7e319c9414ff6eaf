import copy
import os
from pathlib import Path

import pytest
import torch
import yaml

from vitprobe.jobserver import THREAD_ENV

# Tiny models on a shared 2-core machine: more threads than cores make them much slower.
torch.set_num_threads(1)
# ...in the tests' subprocesses too (CLI trainings, the README's snippets; Snakemake sets its
# jobs' own): torch's default, a thread per core, spin-waits while the other xdist worker holds
# the other core (the README's API example: 84 CPU-s instead of 12). The Slurm test drops these
# again for its Slurm run, whose jobs must get theirs from the profile.
for _var in THREAD_ENV:
    os.environ.setdefault(_var, "1")

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


def pytest_configure(config):
    """Keep the order below: pytest-xdist >= 3.6 otherwise hands out the files with the most
    tests first (`--no-loadscope-reorder` off), which ran the Slurm file last."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    """The slow end-to-end files first, the Slurm one (mostly waiting on the cluster) first of
    them (stable otherwise): split over workers (`make test`: -n 2 --dist loadfile), the
    longest start at once instead of meeting at the end."""
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, item.get_closest_marker("slurm") is None))


@pytest.fixture
def demo_config() -> dict:
    """A fresh copy of the demo preset (profiles/demo/demo.yaml), unvalidated."""
    return copy.deepcopy(yaml.safe_load((REPO / "profiles/demo/demo.yaml").read_text()))


@pytest.fixture
def paper_config() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text()))


def _tiny_probes() -> dict:
    """Each probe's settings at the size of a tiny run (its `PROBE.tiny`; tests add epochs and,
    for a probe that reads CIFAR-C, the folder). A probe without them fails every test here."""
    from vitprobe.catalog import PROBES
    missing = [name for name, probe in PROBES.items() if probe.tiny is None]
    if missing:
        raise AssertionError(f"probes {', '.join(missing)} declare no tiny settings (Probe(tiny=...)): every probe "
                             f"runs in the tests at that size")
    return {name: dict(probe.tiny) for name, probe in PROBES.items()}


#: Each probe's settings at the size of a tiny run, from the probe itself.
TINY_PROBES = _tiny_probes()


def tiny_vit_config(tmp: Path, probes: dict, *, epochs: int = 1, train_per_class: int = 24,
                    test_per_class: int = 6, depth: int = 2) -> dict:
    """The demo preset cut to one run: a tiny ViT (dim 16, 2 heads) trained `epochs` epochs
    on 10-class synthetic data under `tmp`, checkpointed at its last epoch, with `probes`."""
    c = copy.deepcopy(yaml.safe_load((REPO / "profiles/demo/demo.yaml").read_text()))
    c["data"].update(dataset="synthetic", root=str(tmp / "data"), synthetic={
        "num_classes": 10, "train_per_class": train_per_class, "test_per_class": test_per_class, "seed": 0})
    c["models"]["vit_demo"]["kwargs"].update(embed_dim=16, depth=depth, num_heads=2)
    c["experiments"] = {"x": {"models": ["vit_demo"]}}
    c["figures"] = {}
    c["train"].update(epochs=epochs, warmup_epochs=1, checkpoint_epochs=[epochs], batch_size=32, lr_batch_size=32)
    c["probes"] = probes
    return c


def train_tiny_run(config: dict, tmp: Path):
    """Validate `config` (of `tiny_vit_config`), write its synthetic data and train its one
    run by the CLI: (plan, run, checkpoint path tmp/e<last epoch>.pt)."""
    import json

    from vitprobe.cli import main
    from vitprobe.config.load import validate
    from vitprobe.data import splits as data

    plan = validate(config)
    data.prepare("synthetic", tmp / "data", synthetic=config["data"]["synthetic"])
    run, epoch = plan.runs[0], config["train"]["epochs"]
    ckpt = tmp / f"e{epoch}.pt"
    assert main(["train", "--spec", json.dumps(plan.train_spec(run)), "--device", "cpu", "--no-progress",
                 "--state-dir", str(tmp / "state"), "--checkpoint", f"{epoch}={ckpt}",
                 "--log", str(tmp / "train_log.parquet")]) == 0
    return plan, run, ckpt
