import numpy as np
import pytest
import torch
from torch import nn

from vitprobe.data.augment import normalize
from vitprobe.probes.robustness import band_mask, band_noise, noise_robustness

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
