import math

import numpy as np
import pytest
import torch

from vitprobe.probes.fourier.measure import EPS, frequencies, high_frequency_delta, relative_log_amplitude

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


# ---- maps too small for a high-frequency value (issue 22 item 5) ---------------------------
def test_1x1_map_has_only_frequency_0_and_no_high_frequency_value():
    fmap = torch.full((2, 3, 1, 1), 7.0, dtype=torch.float64)
    np.testing.assert_array_equal(relative_log_amplitude(fmap).numpy(), [0.0])
    np.testing.assert_array_equal(frequencies(1), [0.0])
    assert math.isnan(high_frequency_delta(fmap))


def test_2x2_map_leaves_out_its_nyquist_frequency_so_has_no_high_frequency_value():
    """A 2x2 map's diagonal holds F[0, 0] (frequency 0) and F[1, 1] (the Nyquist one, π). The
    curve reads diag()[1:] of the spectrum rolled by 1, i.e. F[0, 0] alone: the Nyquist entry is
    never read at an even side. Even a checkerboard, all of whose energy is at (π, π), has no value."""
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)
    assert abs(torch.fft.fft2(checker)[1, 1].item()) == pytest.approx(4.0)  # the energy is there...
    fmap = checker.expand(2, 3, 2, 2)
    np.testing.assert_array_equal(relative_log_amplitude(fmap).numpy(), [0.0])  # ...but not on the curve
    np.testing.assert_array_equal(frequencies(2), [0.0])
    assert math.isnan(high_frequency_delta(fmap))


def test_3x3_map_is_the_smallest_with_a_high_frequency_value():
    """cos(2 pi (y + x) / 3): |F| = 9/2 at (1, 1) and (2, 2), 0 at (0, 0); the curve's last entry is
    frequency 2/3 π."""
    y, x = np.mgrid[:3, :3]
    fmap = torch.from_numpy(np.cos(2 * np.pi * (y + x) / 3)).expand(2, 1, 3, 3)
    assert frequencies(3)[-1] == pytest.approx(2 / 3)
    assert high_frequency_delta(fmap) == pytest.approx(math.log(4.5 + EPS) - math.log(EPS), abs=1e-4)


def test_high_frequency_value_of_a_cosine_at_the_last_frequency():
    """8x8, cos(pi 0.75 (y + x)): |F| = 32 at (3, 3), the curve's last entry; 0 at (0, 0)."""
    fmap = _diagonal_cosine(8, 3).expand(1, 2, 8, 8)
    assert high_frequency_delta(fmap) == pytest.approx(math.log(32 + EPS) - math.log(EPS), abs=1e-4)


def test_compute_gives_nan_for_maps_of_side_2_and_1_and_logs_one_note():
    from torch import nn

    from vitprobe.probes.fourier import headline
    from vitprobe.probes.fourier.measure import compute

    pools = [nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(3), nn.AdaptiveAvgPool2d(2), nn.AdaptiveAvgPool2d(1)]
    model = nn.Sequential(*pools)  # 8x8 -> 4x4, 3x3, 2x2, 1x1
    images = torch.randn(5, 2, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    notes = []
    df, per_image = compute(model, images, modules=["0", "1", "2", "3"], batch_size=2, log=notes.append)

    # truth, independently: pool the images by hand and run the release's notebook transcription
    x, expected = images, {}
    for i, pool in enumerate(pools):
        x = pool(x)
        expected[i] = release_curve(x.numpy())
    high = df.groupby("map_index")["high_freq_delta"].first()
    assert high[0] == pytest.approx(expected[0][-1], abs=1e-9)
    assert high[1] == pytest.approx(expected[1][-1], abs=1e-9)
    assert math.isnan(high[2]) and math.isnan(high[3])
    for i in (2, 3):  # their one row, frequency 0, relative log amplitude 0 by construction
        rows = df[df["map_index"] == i]
        assert rows["freq"].tolist() == [0.0] and rows["log_amplitude"].tolist() == [0.0]
        rows = per_image[per_image["map_index"] == i]  # and one row per image, the same
        assert rows["image"].tolist() == list(range(5))
        assert set(rows["freq"]) == {0.0} and set(rows["log_amplitude"]) == {0.0}

    assert len(notes) == 1
    note = notes[0]
    assert note.startswith("2 feature maps of 2x2 px or smaller (2 (2x2, depth 0.67), 3 (1x1, depth 1.00)) "
                           "have no frequency above 0")
    assert "their high-frequency Δ log amplitude is NaN (left out of the figure)" in note

    line = headline(df)
    mean = (expected[0][-1] + expected[1][-1]) / 2
    assert line.startswith(f"4 maps, mean high-frequency Δ log amplitude {mean:.3f} ")
    assert "nan" not in line.lower().replace("(nan)", "")
    assert line.endswith("2 maps of 2x2 px or smaller left out (NaN)")


def test_compute_logs_nothing_when_every_map_has_a_value():
    from torch import nn

    from vitprobe.probes.fourier.measure import compute

    notes = []
    compute(nn.Sequential(nn.AvgPool2d(2)), torch.randn(2, 1, 8, 8), modules=["0"], log=notes.append)
    assert notes == []


def test_headline_when_every_map_is_too_small():
    import pandas as pd

    from vitprobe.probes.fourier import headline

    df = pd.DataFrame({"map_index": [0, 1], "high_freq_delta": [float("nan")] * 2})
    assert headline(df) == "2 maps, no high-frequency Δ log amplitude (every map is 2x2 px or smaller: NaN)"


# ---- per image: table fourier_images --------------------------------------------------------
def _tiny_vit():
    from vitprobe import models
    torch.manual_seed(0)
    return models.create("vit_ti_cifar", num_classes=10, patch_size=4, embed_dim=16, depth=2, num_heads=2).eval()


def _pools():
    from torch import nn
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d(3), nn.AdaptiveAvgPool2d(2),
                         nn.AdaptiveAvgPool2d(1)).double()  # 9x9 -> 7x7, 3x3, 2x2, 1x1


@pytest.mark.parametrize("case", ["vit", "pools"])
def test_fourier_table_is_the_mean_over_images_of_fourier_images(case):
    """7 random images in chunks of 3 (the last one of 1): the per-image table's mean over
    images is the fourier table, every image's rows are that image's curve alone, and the
    chunk size changes nothing."""
    from vitprobe.probes.fourier import PROBE
    from vitprobe.probes.fourier.measure import compute

    g = torch.Generator().manual_seed(1)
    if case == "vit":
        model, modules, images = _tiny_vit(), None, torch.randn(7, 3, 32, 32, generator=g)
    else:
        model, modules, images = _pools(), ["0", "1", "2", "3"], torch.randn(7, 2, 9, 9, generator=g,
                                                                              dtype=torch.float64)
    df, per_image = compute(model, images, modules=modules, batch_size=3)
    assert PROBE.table_names == ("fourier", "fourier_images")
    assert list(per_image.columns) == [c.name for c in PROBE.tables["fourier_images"]]
    assert [str(t) for t in per_image.dtypes] == ["int64", "int64", "float64", "float64"]
    assert len(per_image) == len(df) * 7 and not per_image.duplicated(["map_index", "freq", "image"]).any()
    assert set(per_image["image"]) == set(range(7))

    mean = per_image.groupby(["map_index", "freq"], sort=True)["log_amplitude"].mean()
    main = df.set_index(["map_index", "freq"]).sort_index()
    assert mean.index.equals(main.index)
    np.testing.assert_allclose(mean.to_numpy(), main["log_amplitude"].to_numpy(), rtol=1e-12, atol=1e-15)
    top = per_image[per_image["freq"] == per_image.groupby("map_index")["freq"].transform("max")]
    high = top.groupby("map_index")["log_amplitude"].mean()
    expected = df.groupby("map_index")["high_freq_delta"].first()
    sides_ok = expected.notna()
    np.testing.assert_allclose(high[sides_ok], expected[sides_ok], rtol=1e-12)
    if case == "pools":
        assert expected.isna().tolist() == [False, False, True, True]  # 2x2 and 1x1: NaN, one row per image

    # image j's rows are the curve of image j alone (its position in `images`); the float32 ViT's
    # forward pass may round differently on another batch size
    tol = 1e-5 if case == "vit" else 1e-9
    alone, _ = compute(model, images[5:6], modules=modules)
    rows = per_image[per_image["image"] == 5].sort_values(["map_index", "freq"])
    np.testing.assert_allclose(rows["log_amplitude"], alone.sort_values(["map_index", "freq"])["log_amplitude"],
                               rtol=tol, atol=tol)
    # one chunk of all 7: the same per-image table
    _, whole = compute(model, images, modules=modules, batch_size=7)
    np.testing.assert_allclose(whole["log_amplitude"], per_image["log_amplitude"], rtol=tol, atol=tol)
    assert whole[["map_index", "image", "freq"]].equals(per_image[["map_index", "image", "freq"]])


def test_a_pure_cosine_image_has_its_own_known_log_amplitude():
    """Image 0 is cos(pi 0.5 (y + x)) in both channels of an 8x8 map: |F| = 32 at (2, 2), 0 at
    (0, 0) and the other diagonal entries, so its own curve is log(32 + eps) - log(eps) at
    frequency 0.5 and 0 elsewhere, whatever the random image 1 next to it."""
    from torch import nn

    from vitprobe.probes.fourier.measure import compute

    cosine = _diagonal_cosine(8, 2).expand(1, 2, 8, 8)
    noise = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    df, per_image = compute(nn.Sequential(nn.Identity()), torch.cat([cosine, noise]), modules=["0"], batch_size=1)
    rows = per_image[per_image["image"] == 0].sort_values("freq")
    np.testing.assert_allclose(rows["freq"], [0, 0.25, 0.5, 0.75])
    peak = math.log(32 + EPS) - math.log(EPS)
    np.testing.assert_allclose(rows["log_amplitude"], [0, 0, peak, 0], atol=1e-4)
    mine = per_image[per_image["image"] == 1].sort_values("freq")["log_amplitude"].to_numpy()
    np.testing.assert_allclose(df.sort_values("freq")["log_amplitude"], (rows["log_amplitude"].to_numpy() + mine) / 2,
                               rtol=1e-12)


def test_relative_log_amplitude_per_image_is_each_images_own_curve():
    from vitprobe.probes.fourier.measure import relative_log_amplitude_per_image

    fmap = torch.randn(4, 3, 7, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    curves = relative_log_amplitude_per_image(fmap)
    assert curves.shape == (4, 4) and curves.dtype == torch.float64 and (curves[:, 0] == 0).all()
    for b in range(4):
        np.testing.assert_allclose(curves[b].numpy(), release_curve(fmap[b:b + 1].numpy()), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(curves.mean(dim=0).numpy(), release_curve(fmap.numpy()), rtol=1e-10, atol=1e-12)
