"""The lesion study (vitprobe.probes.lesion) against independent truth: a unit removed by hand
(its branch's last layer given zero weights, no hook) gives the same predictions on the same
images as the probe's removal, for a ResNet block (subsampling included), a ViT's MSA and MLP
sub-blocks and an AlterNet MSA block; the intact model's error equals the eval probe's; the
paired intervals are the bootstrap of the per-image differences written out; bad input is one
line."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from vitprobe import models, stats
from vitprobe.data.augment import normalize
from vitprobe.device import resolve
from vitprobe.probes.evaluate.measure import clean_metrics
from vitprobe.probes.lesion import headline, intervals
from vitprobe.probes.lesion.measure import _per_image, compute, lesion_units

SMALL = {"resnet18_cifar": {"layers": [1, 1, 1, 1], "widths": [16, 32, 64, 128]},
         "vit_ti_cifar": {"patch_size": 4, "embed_dim": 64, "depth": 2, "num_heads": 2},
         "alternet50_cifar": {"layers": [1, 2, 2, 2], "widths": [8, 16, 24, 32], "msa_blocks": [0, 1, 1, 1],
                              "heads": [1, 1, 2, 2], "head_dim": 16}}


def _model(arch):
    torch.manual_seed(0)
    model = models.create(arch, num_classes=10, **SMALL[arch])
    for m in model.modules():  # trained-looking BN statistics and non-zero branch scales
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _zero(module: nn.Module):
    for p in module.parameters():
        p.data.zero_()


@pytest.mark.parametrize("arch, unit, by_hand", [
    ("resnet18_cifar", "layer2.0", ["layer2.0.bn2"]),          # a subsampling block: its projection stays
    ("resnet18_cifar", "layer1.0", ["layer1.0.bn2"]),
    ("vit_ti_cifar", "blocks.1.msa", ["blocks.1.attn.proj"]),  # the attention's output projection, zeroed
    ("vit_ti_cifar", "blocks.0.mlp", ["blocks.0.mlp.fc2"]),
    ("alternet50_cifar", "layer3.1", ["layer3.1.attn.proj"]),  # an AlterNet MSA block
])
def test_removal_equals_a_block_removed_by_hand(arch, unit, by_hand):
    model = _model(arch)
    images, labels = torch.randn(24, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.arange(24) % 10
    table, per_image = compute(model, images, labels, batch_size=8)
    row = table[table["unit_name"] == unit].iloc[0]
    hand = copy.deepcopy(model)
    for path in by_hand:
        _zero(dict(hand.named_modules())[path])
    correct, nll = _per_image(hand, images, labels, 8, lambda b: b)
    mine = per_image[per_image["unit"] == row["unit"]]
    assert np.array_equal(mine["correct"].to_numpy(), correct)
    assert np.allclose(mine["nll"].to_numpy(), nll, rtol=1e-5, atol=1e-6)
    assert row["delta_nll"] != 0  # the removal changed something: the test can fail
    assert row["subsampling"] == (unit == "layer2.0")


def test_intact_error_is_the_eval_probes():
    model = _model("resnet18_cifar")
    u8 = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(40) % 10
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    table, _ = compute(model, u8, labels, batch_size=16, prepare=lambda b: normalize(b, mean, std))
    row = clean_metrics(model, u8, labels, mean, std, resolve("cpu"), batch_size=16)
    assert table["intact_error"].iloc[0] == pytest.approx(row["error"], abs=1e-9)
    assert table["intact_nll"].iloc[0] == pytest.approx(row["nll_test"], rel=1e-6)
    assert headline(table).startswith("4 units; intact error")


def test_units_of_the_families():
    model = _model("alternet50_cifar")
    units = lesion_units(model, torch.randn(2, 3, 32, 32))
    assert list(units["kind"]) == ["conv", "conv", "msa", "conv", "msa", "conv", "msa"]
    assert list(units["subsampling"]) == [False, True, False, True, False, True, False]
    assert list(units["stage"]) == [1, 2, 2, 3, 3, 4, 4]


def test_bad_units_are_one_line():
    model = _model("vit_ti_cifar")
    with pytest.raises(ValueError, match="units: 'blocks.9.attn' are not modules of VisionTransformer"):
        compute(model, torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.long), units={"x": "blocks.9.attn"})
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="unsupported model Sequential.*pass units="):
        compute(plain, torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long))


def test_units_by_name_on_any_model():
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    table, _ = compute(plain, torch.randn(8, 3, 8, 8), torch.zeros(8, dtype=torch.long), units={"conv": "0"})
    assert list(table["removed"]) == ["0"] and table["kind"].iloc[0] == "module"


def test_intervals_are_the_paired_bootstrap():
    rng = np.random.default_rng(3)
    n = 200
    images = pd.DataFrame({"run": "r", "epoch": 1, "unit": np.repeat([0, 1], n), "image": np.tile(np.arange(n), 2),
                           "correct": rng.random(2 * n) < 0.6, "nll": rng.gamma(2.0, 0.5, 2 * n),
                           "intact_correct": np.tile(rng.random(n) < 0.8, 2),
                           "intact_nll": np.tile(rng.gamma(2.0, 0.4, n), 2)})
    rows = pd.DataFrame({"run": "r", "epoch": 1, "unit": [0, 1], "delta_error": [0.0, 0.0], "delta_nll": [0.0, 0.0]})
    ci = stats.Intervals(level=0.95, resamples=1000, seed=0)
    out = intervals("lesion", rows, images, ci)
    g = images[images["unit"] == 1]
    d = 100.0 * (g["intact_correct"].astype(float).to_numpy() - g["correct"].astype(float).to_numpy())
    w = stats.weights(n, ci.resamples, ci.rng("r", 1, "d_error"))
    low, high = stats.percentile((w @ d) / n, n, 0.95)
    assert (out.loc[1, "delta_error_low"], out.loc[1, "delta_error_high"]) == pytest.approx((low, high), rel=1e-9)
    assert (out["delta_nll_high"] > out["delta_nll_low"]).all()
