import numpy as np
import pytest
import torch

from vitprobe.probes.variance import feature_map_variance


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
