import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from vitprobe.probes.variance import headline
from vitprobe.probes.variance.measure import compute, feature_map_variance


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (5, 1, 8, 8), (1, 7, 2, 3)])
def test_matches_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    fmap = rng.normal(loc=3.0, scale=rng.uniform(0.1, 5, size=shape[:2] + (1, 1)), size=shape)
    expected = fmap.reshape(*shape[:2], -1).var(axis=-1, ddof=1).mean()
    assert feature_map_variance(torch.from_numpy(fmap)) == pytest.approx(expected, rel=1e-12)
    assert feature_map_variance(torch.from_numpy(fmap).float()) == pytest.approx(expected, rel=1e-5)


def test_zero_for_spatially_constant_map():
    levels = torch.arange(2 * 3, dtype=torch.float32).view(2, 3, 1, 1) * 1.7 - 4
    fmap = levels.expand(2, 3, 8, 8)
    assert feature_map_variance(fmap) == pytest.approx(0.0, abs=1e-10)


def test_bessel_correction():
    # one sample, one channel, values 0 and 2 on a 1x2 map: ddof=1 variance is 2 (ddof=0 would be 1)
    assert feature_map_variance(torch.tensor([[[[0.0, 2.0]]]])) == pytest.approx(2.0)


def test_bad_shape_raises():
    with pytest.raises(ValueError, match="shape"):
        feature_map_variance(torch.zeros(3, 4, 4))


# ---- maps of one spatial position: variance NaN, one log note -------------------------------
def test_1x1_map_gives_nan_without_a_warning():
    fmap = torch.randn(4, 512, 1, 1, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "degrees of freedom <= 0" from torch
        assert math.isnan(feature_map_variance(fmap))


def test_2x2_map_hand_computed_bessel_variance():
    """Per (b, c), over the 4 positions, divisor n - 1 = 3, then the mean of the 4 values:
    [[1, 2], [3, 4]]: mean 2.5, squares 2.25 + 0.25 + 0.25 + 2.25 = 5 -> 5/3;
    [[0, 0], [0, 4]]: mean 1, squares 1 + 1 + 1 + 9 = 12 -> 4; [[2, 2], [2, 2]] -> 0;
    [[-1, 1], [1, -1]]: mean 0, squares 4 -> 4/3. Mean (5/3 + 4 + 0 + 4/3) / 4 = 7/4
    (divisor n = 4 would give 21/16)."""
    fmap = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 4.0]]],
                         [[[2.0, 2.0], [2.0, 2.0]], [[-1.0, 1.0], [1.0, -1.0]]]], dtype=torch.float64)
    assert feature_map_variance(fmap) == pytest.approx(7 / 4, rel=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 0, 4), (2, 3, 0, 0), (0, 3, 2, 2), (2, 0, 1, 1)])
def test_empty_map_raises(shape):
    with pytest.raises(ValueError, match="empty"):
        feature_map_variance(torch.zeros(shape))


def test_compute_gives_nan_for_1x1_maps_and_logs_one_note():
    pools = [nn.AvgPool2d(2), nn.AdaptiveAvgPool2d((2, 1)), nn.AdaptiveAvgPool2d(1)]
    model = nn.Sequential(*pools)  # 8x8 -> 4x4, 2x1 (two positions: defined), 1x1
    images = torch.randn(5, 2, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    notes = []
    df, per_image = compute(model, images, modules=["0", "1", "2"], batch_size=2, log=notes.append)

    # truth, independently: pool by hand, numpy's ddof=1 variance over positions, mean over (b, c)
    x, expected = images, []
    for pool in pools:
        x = pool(x)
        expected.append(x.numpy().reshape(5, 2, -1).var(axis=-1, ddof=1).mean() if x[0, 0].numel() > 1 else None)
    assert df["variance"][0] == pytest.approx(expected[0], rel=1e-12)
    assert df["variance"][1] == pytest.approx(expected[1], rel=1e-12)
    assert math.isnan(df["variance"][2])
    assert df["n_images"].tolist() == [5, 5, 5]
    assert per_image[per_image["map_index"] == 2]["variance"].isna().all()  # NaN for every image, too

    assert notes == ["1 feature map of one spatial position, 1x1 (2 (depth 1.00)): the variance over one position "
                     "with Bessel's correction divides by n - 1 = 0 and is undefined, so its variance is NaN "
                     "(left out of the figure)"]
    line = headline(df)
    low, high = sorted(expected[:2])
    assert line == f"3 maps, variance from {low:.4g} to {high:.4g}, 1 map of one position (1x1) left out (NaN)"


def test_compute_logs_nothing_when_every_map_has_two_positions_or_more():
    notes = []
    df, per_image = compute(nn.Sequential(nn.AdaptiveAvgPool2d((1, 2))), torch.randn(3, 2, 8, 8), modules=["0"],
                            log=notes.append)
    assert notes == [] and not df["variance"].isna().any() and not per_image["variance"].isna().any()


def test_headline_when_every_map_is_1x1():
    df = pd.DataFrame({"map_index": [0, 1], "variance": [float("nan")] * 2})
    assert headline(df) == "2 maps, no variance (every map is 1x1: NaN)"


# ---- per image: table variance_images -------------------------------------------------------
@pytest.mark.parametrize("case", ["vit", "pools"])
def test_variance_table_is_the_mean_over_images_of_variance_images(case):
    """7 random images in chunks of 3 (the last one of 1): the per-image table's mean over
    images is the variance table, and every image's row is that image's value alone."""
    from vitprobe import models
    from vitprobe.probes.variance import PROBE

    g = torch.Generator().manual_seed(1)
    if case == "vit":
        torch.manual_seed(0)
        model = models.create("vit_ti_cifar", num_classes=10, patch_size=4, embed_dim=16, depth=2, num_heads=2).eval()
        modules, images = None, torch.randn(7, 3, 32, 32, generator=g)
    else:
        model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d((2, 1)), nn.AdaptiveAvgPool2d(1)).double()
        modules, images = ["0", "1", "2"], torch.randn(7, 2, 9, 9, generator=g, dtype=torch.float64)
    df, per_image = compute(model, images, modules=modules, batch_size=3)
    assert PROBE.table_names == ("variance", "variance_images")
    assert list(per_image.columns) == [c.name for c in PROBE.tables["variance_images"]]
    assert [str(t) for t in per_image.dtypes] == ["int64", "int64", "float64"]
    assert len(per_image) == len(df) * 7
    assert per_image.groupby("map_index")["image"].apply(list).tolist() == [list(range(7))] * len(df)

    mean = per_image.groupby("map_index", sort=True)["variance"].mean()  # NaN stays NaN (all NaN)
    main = df.set_index("map_index")["variance"].sort_index()
    np.testing.assert_allclose(mean.to_numpy(), main.to_numpy(), rtol=1e-12, equal_nan=True)
    if case == "pools":
        assert main.isna().tolist() == [False, False, True]

    tol = 1e-5 if case == "vit" else 1e-12  # the float32 ViT may round differently on another batch size
    alone, _ = compute(model, images[4:5], modules=modules)
    np.testing.assert_allclose(per_image[per_image["image"] == 4]["variance"], alone["variance"], rtol=tol,
                               equal_nan=True)


def test_a_constant_image_has_variance_0_next_to_a_random_one():
    """Image 0 is constant in space (a level per channel): its own variance is 0, whatever the
    random image 1; image 1's is numpy's, and the table's value is their mean."""
    from vitprobe.probes.variance.measure import feature_map_variance_per_image

    constant = torch.tensor([1.5, -2.0, 7.0], dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, 6, 6)
    noise = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    images = torch.cat([constant, noise])
    df, per_image = compute(nn.Sequential(nn.Identity()), images, modules=["0"], batch_size=1)
    v0, v1 = per_image.sort_values("image")["variance"]
    assert v0 == pytest.approx(0.0, abs=1e-12)
    expected = noise.numpy().reshape(3, -1).var(axis=-1, ddof=1).mean()
    assert v1 == pytest.approx(expected, rel=1e-12)
    assert df["variance"].item() == pytest.approx(expected / 2, rel=1e-12)
    np.testing.assert_allclose(feature_map_variance_per_image(images).numpy(), [v0, v1], rtol=1e-12, atol=1e-12)
    assert math.isnan(feature_map_variance_per_image(torch.ones(2, 3, 1, 1))[1])
