import math

import numpy as np
import pytest
import torch

from vitprobe.probes.fourier import EPS, frequencies, high_frequency_delta, relative_log_amplitude

SIDES = [4, 8, 16, 32]


def _diagonal_cosine(h: int, i0: int) -> torch.Tensor:
    """cos(pi f0 (y + x)) with f0 = i0 / (h/2): all its energy at frequencies ±(i0, i0)."""
    f0 = i0 / (h / 2)
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(h, dtype=torch.float64), indexing="ij")
    return torch.cos(math.pi * f0 * (y + x))


@pytest.mark.parametrize("h", SIDES)
def test_diagonal_cosine_peaks_at_its_frequency(h):
    for i0 in range(1, h // 2):
        fmap = _diagonal_cosine(h, i0).expand(2, 3, h, h)
        curve = relative_log_amplitude(fmap).numpy()
        assert curve.shape == (h // 2,)
        assert np.argmax(curve) == i0
        # |F| is h*h/2 at (i0, i0) and 0 (rounding) at the DC and the other diagonal entries
        expected = np.zeros(h // 2)
        expected[i0] = math.log(h * h / 2 + EPS) - math.log(EPS)
        np.testing.assert_allclose(curve, expected, atol=1e-4)


@pytest.mark.parametrize("h", SIDES)
def test_constant_map_is_dc_only(h):
    c = 2.5
    fmap = torch.full((3, 4, h, h), c, dtype=torch.float64)
    curve = relative_log_amplitude(fmap).numpy()
    expected = np.full(h // 2, math.log(EPS) - math.log(h * h * c + EPS))
    expected[0] = 0.0
    np.testing.assert_allclose(curve, expected, atol=1e-5)
    assert high_frequency_delta(fmap) == pytest.approx(expected[-1], abs=1e-5)


@pytest.mark.parametrize("h", SIDES)
def test_first_value_zero_and_duplication_invariance(h):
    g = torch.Generator().manual_seed(h)
    fmap = torch.randn(2, 3, h, h, generator=g)
    curve = relative_log_amplitude(fmap)
    assert curve[0].item() == 0.0
    assert curve[1:].abs().min() > 1e-3  # a random map is not flat: the check above is not vacuous
    np.testing.assert_allclose(relative_log_amplitude(fmap.repeat(3, 1, 1, 1)), curve, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(relative_log_amplitude(fmap.repeat(1, 2, 1, 1)), curve, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1, 8, 6), (1, 1, 7, 5), (8, 8), (1, 1, 0, 0)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match=str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")):
        relative_log_amplitude(torch.zeros(shape))


def test_hand_check_4x4_with_numpy():
    rng = np.random.default_rng(0)
    fmap = rng.normal(size=(2, 3, 4, 4))
    a = np.log(np.abs(np.fft.fft2(fmap, axes=(-2, -1))) + 1e-6)
    a = np.fft.fftshift(a, axes=(-2, -1)).mean(axis=(0, 1))
    expected = np.array([a[2, 2], a[3, 3]]) - a[2, 2]
    np.testing.assert_allclose(relative_log_amplitude(torch.from_numpy(fmap)).numpy(), expected, rtol=1e-10, atol=1e-12)
    # float32 input gives the same curve up to float32 precision of the input
    np.testing.assert_allclose(relative_log_amplitude(torch.from_numpy(fmap).float()).numpy(), expected, atol=1e-5)


def release_curve(fmap: np.ndarray) -> np.ndarray:
    """The release's fourier_analysis.ipynb, transcribed: log(|fft2| + 1e-6), torch.roll by
    int(h/2) on both axes, mean over batch and channels, diag()[int(h/2):], minus its first."""
    h = fmap.shape[-1]
    a = np.log(np.abs(np.fft.fft2(fmap, axes=(-2, -1))) + 1e-6)
    a = np.roll(a, (int(h / 2), int(h / 2)), axis=(-2, -1)).mean(axis=(0, 1))
    d = np.diag(a)[int(h / 2):]
    return d - d[0]


@pytest.mark.parametrize("h", [1, 2, 3, 4, 7, 8, 16, 27, 31, 32])
def test_matches_the_release_notebook_for_even_and_odd_sides(h):
    fmap = np.random.default_rng(h).normal(size=(3, 2, h, h))
    curve = relative_log_amplitude(torch.from_numpy(fmap)).numpy()
    np.testing.assert_allclose(curve, release_curve(fmap), rtol=1e-10, atol=1e-12)
    assert len(frequencies(h)) == len(curve) == (h + 1) // 2


@pytest.mark.parametrize("h", [7, 27, 31])
def test_odd_side_diagonal_cosine_peaks_at_its_frequency(h):
    """cos(2 pi i0 (y + x) / h) has its energy at (i0, i0) and (h - i0, h - i0); the curve
    reads the first, at frequency 2 i0 / h (units of pi), for every i0 up to (h - 1) / 2."""
    for i0 in range(1, (h + 1) // 2):
        y, x = np.mgrid[:h, :h]
        fmap = torch.from_numpy(np.cos(2 * np.pi * i0 * (y + x) / h)).expand(2, 1, h, h)
        curve = relative_log_amplitude(fmap).numpy()
        assert np.argmax(curve) == i0
        assert frequencies(h)[i0] == pytest.approx(2 * i0 / h)


def test_frequencies():
    np.testing.assert_allclose(frequencies(8), [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(frequencies(32), np.arange(16) / 16)
    np.testing.assert_allclose(frequencies(7), [0, 2 / 7, 4 / 7, 6 / 7])
    assert frequencies(31)[-1] == pytest.approx(30 / 31)
    with pytest.raises(ValueError):
        frequencies(0)
