import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from vitprobe.data.augment import normalize
from vitprobe.probes.robustness.measure import band_mask, band_noise, noise_robustness

FREQS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _chebyshev_radius(h: int, w: int) -> np.ndarray:
    """max(|fy|, |fx|) in units of pi, in numpy.fft.fft2's (unshifted) layout."""
    fy, fx = 2 * np.fft.fftfreq(h), 2 * np.fft.fftfreq(w)
    return np.maximum(np.abs(fy)[:, None], np.abs(fx)[None, :])


def test_band_mask_hand_check_8x8():
    # fftshifted rows/cols hold k = -4..3, frequency k/4; ring [0.25, 0.75] = max(|ky|, |kx|) in {1, 2, 3}:
    # everything but the centre (DC) and the row/column k = -4 (frequency 1)
    expected = np.array([[0] * 8] + [[0] + [1] * 7] * 7)
    expected[4, 4] = 0
    np.testing.assert_array_equal(band_mask(8, 8, 0.5, 0.25).numpy(), expected.astype(bool))
    # narrow ring at 0.25: only max(|ky|, |kx|) == 1, the 8 neighbours of the centre
    narrow = np.zeros((8, 8), bool)
    narrow[3:6, 3:6] = True
    narrow[4, 4] = False
    np.testing.assert_array_equal(band_mask(8, 8, 0.25, 0.1).numpy(), narrow)


@pytest.mark.parametrize("f", FREQS)
def test_noise_spectrum_inside_ring(f):
    g = torch.Generator().manual_seed(1)
    noise = band_noise((2, 3, 32, 32), eps=0.05, f=f, width=0.1, generator=g)
    assert noise.shape == (2, 3, 32, 32) and noise.dtype == torch.float32
    energy = np.abs(np.fft.fft2(noise.double().numpy(), axes=(-2, -1))) ** 2
    r = _chebyshev_radius(32, 32)
    inside = (r >= f - 0.1 - 1e-9) & (r <= f + 0.1 + 1e-9)
    total = energy.sum()
    assert energy[..., inside].sum() > 0
    assert energy[..., ~inside].sum() <= 1e-10 * total


def test_full_band_is_the_sign_noise():
    # ring [0, 1] keeps every frequency: the noise is eps * sign(N(0, 1)) itself
    noise = band_noise((2, 3, 8, 8), eps=0.1, f=0.5, width=0.5, generator=torch.Generator().manual_seed(3))
    sign = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(3)).sign()
    torch.testing.assert_close(noise, 0.1 * sign, rtol=0, atol=1e-7)


def test_eps_linear_and_seeds_differ():
    a = band_noise((1, 3, 16, 16), 1.0, 0.5, generator=torch.Generator().manual_seed(0))
    b = band_noise((1, 3, 16, 16), 2.5, 0.5, generator=torch.Generator().manual_seed(0))
    c = band_noise((1, 3, 16, 16), 1.0, 0.5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(b, 2.5 * a)
    assert (a - c).abs().max() > 0.1


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))


def _data(n=40):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    return images


def _direct_accuracy(model, images, labels, eps=None, f=None, batch_size=None):
    """Accuracy (%) with the noise drawn batch by batch from one generator seeded 0."""
    g = torch.Generator().manual_seed(0)
    batch_size = batch_size or len(images)
    correct = 0
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].float() / 255
        if f is not None:
            x = (x + band_noise(x.shape, eps, f, 0.1, generator=g)).clamp(0, 1)
        logits = model(normalize(x, MEAN, STD))
        correct += (logits.argmax(1) == labels[i:i + batch_size]).sum().item()
    return 100 * correct / len(images)


@pytest.mark.parametrize("batch_size", [64, 16])
def test_noise_robustness_rows(batch_size):
    model = _tiny_model()
    images = _data()
    with torch.no_grad():
        pred = model(normalize(images, MEAN, STD)).argmax(1)
    labels = torch.where(torch.arange(len(images)) % 3 == 0, (pred + 1) % 4, pred)  # ~2/3 correct
    clean = 100 * (pred == labels).double().mean().item()
    eps = 0.3
    df = noise_robustness(model, images, labels, MEAN, STD, eps=eps, batch_size=batch_size)
    assert list(df.columns) == ["freq", "accuracy", "clean_accuracy", "delta_accuracy", "eps", "width"]
    assert len(df) == 9
    np.testing.assert_allclose(df["freq"], FREQS)
    assert (df["clean_accuracy"] == clean).all()
    np.testing.assert_allclose(df["delta_accuracy"], df["accuracy"] - df["clean_accuracy"])
    assert (df["eps"] == eps).all() and (df["width"] == 0.1).all()
    with torch.no_grad():
        for f in (0.1, 0.5, 0.9):
            expected = _direct_accuracy(model, images, labels, eps, f, batch_size)
            assert df.loc[np.isclose(df["freq"], f), "accuracy"].item() == pytest.approx(expected)
    assert (df["delta_accuracy"] != 0).any()


def test_noisy_images_are_clipped_before_normalization():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3 * 16 * 16, 4)

        def forward(self, x):
            m = torch.tensor(MEAN).view(1, 3, 1, 1)
            s = torch.tensor(STD).view(1, 3, 1, 1)
            seen.append(x * s + m)
            return self.lin(x.flatten(1))

    images = _data(8)
    noise_robustness(Spy(), images, torch.zeros(8, dtype=torch.long), MEAN, STD, eps=0.5, freqs=(0.5,))
    pixels = torch.cat(seen)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    assert not torch.allclose(seen[1], seen[0])  # the noisy pass differs from the clean one


def _direct_correct(model, images, labels, eps=None, f=None, batch_size=None, seed=0):
    """Per image: argmax == label, the noise drawn batch by batch from one generator seeded `seed`."""
    g = torch.Generator().manual_seed(seed)
    batch_size = batch_size or len(images)
    hits = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].float() / 255
        if f is not None:
            x = (x + band_noise(x.shape, eps, f, 0.1, generator=g)).clamp(0, 1)
        hits.append((model(normalize(x, MEAN, STD)).argmax(1) == labels[i:i + batch_size]).numpy())
    return np.concatenate(hits)


def _labels_about_two_thirds_right(model, images):
    with torch.no_grad():
        pred = model(normalize(images, MEAN, STD)).argmax(1)
    return torch.where(torch.arange(len(images)) % 3 == 0, (pred + 1) % 4, pred)


def _check_means(df, per_image):
    """Table robustness = the means x 100 of table robustness_images, frequency by frequency."""
    assert list(per_image["freq"].unique()) == list(df["freq"])
    for row in df.itertuples():
        at = per_image[per_image["freq"] == row.freq]
        assert row.accuracy == 100.0 * np.mean(at["correct"].to_numpy(dtype=float))
        assert row.clean_accuracy == 100.0 * np.mean(at["clean_correct"].to_numpy(dtype=float))
        assert row.delta_accuracy == pytest.approx(100.0 * np.mean(at["correct"].to_numpy(dtype=float)
                                                                   - at["clean_correct"].to_numpy(dtype=float)))
        assert row.n_images == len(at)


def test_robustness_images_reproduce_the_table():
    from vitprobe.probes.robustness import PROBE, headline
    from vitprobe.probes.robustness.measure import compute
    model = _tiny_model()
    images = _data()
    labels = _labels_about_two_thirds_right(model, images)
    freqs = [0.7, 0.1, 0.5]
    df, per_image = compute(model, images, labels, MEAN, STD, eps=0.3, freqs=freqs, batch_size=16)
    assert list(per_image.columns) == [c.name for c in PROBE.tables["robustness_images"]]
    assert [str(t) for t in per_image.dtypes] == ["int64", "float64", "bool", "bool"]
    assert len(per_image) == 3 * 40
    with torch.no_grad():
        clean = _direct_correct(model, images, labels)
        for f in freqs:
            at = per_image[per_image["freq"] == f]
            np.testing.assert_array_equal(at["image"], np.arange(40))
            np.testing.assert_array_equal(at["clean_correct"], clean)
            np.testing.assert_array_equal(at["correct"], _direct_correct(model, images, labels, 0.3, f, 16))
    _check_means(df, per_image)
    assert (per_image["correct"] != per_image["clean_correct"]).any()  # the noise changes some: not vacuous
    assert "worst delta" in headline(df, per_image)
    with pytest.raises(ValueError, match="freqs must be distinct"):
        compute(model, images, labels, MEAN, STD, freqs=[0.5, 0.5])


def test_chunked_run_numbers_the_images_by_their_position_in_the_sample():
    """Decoded image folders go chunk by chunk (noise seeded seed + chunk start): each image
    keeps its position 0..n-1 in the sample, and the table holds the means over all of them."""
    from vitprobe.probes.robustness.measure import compute, run

    model = _tiny_model()
    images = _data(40)
    labels = _labels_about_two_thirds_right(model, images)

    class Sample:  # what `image_sample` gives for a class-folder directory: len() and chunk(i, j)
        chunk_size = 4

        def __len__(self):
            return len(images)

        def chunk(self, start, stop):
            return images[start:stop], labels[start:stop]

    class Inputs:
        images_described = "images of a folder"
        device = None

        def image_sample(self, model, n_images, seed):
            return Sample(), MEAN, STD

    class Log:
        def __call__(self, message):
            pass

        def bar(self, what, total=None):
            return lambda iterable: iterable

    settings = {"n_images": 40, "seed": 3, "eps": 0.3, "freqs": [0.2, 0.8], "width": 0.1, "batch_size": 16}
    df, per_image = run(model, Inputs(), settings, Log())  # chunks of 16 images: at 0, 16, 32
    assert len(per_image) == 2 * 40 and (df["n_images"] == 40).all()
    for f in (0.2, 0.8):
        np.testing.assert_array_equal(per_image.loc[per_image["freq"] == f, "image"], np.arange(40))
        with torch.no_grad():
            expected = np.concatenate([_direct_correct(model, images[i:i + 16], labels[i:i + 16], 0.3, f, seed=3 + i)
                                       for i in (0, 16, 32)])
        np.testing.assert_array_equal(per_image.loc[per_image["freq"] == f, "correct"], expected)
    _check_means(df, per_image)
    # each chunk's rows are what compute gives on that chunk alone
    _, part = compute(model, images[16:32], labels[16:32], MEAN, STD, eps=0.3, freqs=[0.2, 0.8], batch_size=16,
                      seed=3 + 16)
    got = per_image[(per_image["image"] >= 16) & (per_image["image"] < 32)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, part.assign(image=part["image"] + 16))
