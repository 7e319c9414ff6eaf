"""Our batched RandAugment against timm's own PIL transform (the library the paper's release
trained with), image by image, and our draws against timm's draw statistics.

Reference: ``timm.data.auto_augment.AugmentOp(name, prob=1.0, magnitude=m, hparams)`` with
magnitude_std 0 (so the level is exactly m), ``interpolation`` fixed in hparams, the fill
colour as ``img_mean``, and timm's ``_randomly_negate`` pinned to the sign under test.

Tolerance: point ops (10 ops) and shear / translate must be equal bit for bit. Rotate goes
through cos/sin rounded to 15 decimals, which Python's ``round`` and ``torch.round`` may do
differently in the last bit; there we allow a difference of at most 1 grey level on at most
0.1 % of the values (observed: none on these images).
"""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import auto_augment as taa

from vitprobe.data.randaugment import OPS, apply_op, draw, fill_colour, rand_augment

FILL = fill_colour((0.5071, 0.4867, 0.4408))  # CIFAR-100 mean, as the release passes it
GEOMETRIC = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"}
SIGNED = GEOMETRIC
MAGNITUDES = [0, 5, 7.3, 9, 10, 13]  # 13: beyond 10, as timm's magnitude_max allows


def _images(h=32, w=32):
    """Random noise, a gradient, a constant, a two-valued, a low-contrast and a dark image."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (3, 3, h, w), generator=g, dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    grad = torch.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) * 255 // (h + w - 2)]).to(torch.uint8)
    const = torch.full((3, h, w), 77, dtype=torch.uint8)
    two = torch.where((xx + yy) % 2 == 0, 30, 200).to(torch.uint8).expand(3, h, w)
    low = torch.randint(100, 121, (3, h, w), generator=g, dtype=torch.uint8)
    dark = torch.randint(0, 9, (3, h, w), generator=g, dtype=torch.uint8)
    return torch.cat([noise, torch.stack([grad, const, two, low, dark])])


def _timm(img_chw: torch.Tensor, name: str, magnitude: float, negate: bool, bicubic: bool, fill=FILL):
    if name == "Posterize" and int(magnitude / 10 * 4) == 0:
        # timm keeps int(m / 10 * 4) = 0 bits, which this Pillow refuses (ValueError); the
        # Pillow of the release's time computed lut = i & ~(2 ** 8 - 1) = 0: a black image
        return torch.zeros_like(img_chw)
    hparams = {"img_mean": fill, "interpolation": Image.Resampling.BICUBIC if bicubic else Image.Resampling.BILINEAR,
               "magnitude_max": max(10, magnitude)}  # AugmentOp clips the level to this
    op = taa.AugmentOp(name, prob=1.0, magnitude=magnitude, hparams=hparams)
    pil = Image.fromarray(img_chw.permute(1, 2, 0).numpy())
    original = taa._randomly_negate
    taa._randomly_negate = (lambda v: -v) if negate else (lambda v: v)
    try:
        out = op(pil)
    finally:
        taa._randomly_negate = original
    return torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1)


def _ours(images, name, magnitude, negate, bicubic, fill=FILL):
    n = len(images)
    return apply_op(images, torch.full((n,), OPS.index(name)), torch.full((n,), float(magnitude), dtype=torch.float64),
                    torch.full((n,), negate), torch.full((n,), bicubic), fill)


def _check(ours, ref, name, what):
    if name != "Rotate":
        assert torch.equal(ours, ref), f"{what}: {int((ours != ref).sum())} values differ"
        return
    diff = (ours.int() - ref.int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) <= 1e-3, what


def test_ops_are_timms_fifteen():
    assert OPS == tuple(taa._RAND_TRANSFORMS)


@pytest.mark.parametrize("name", [n for n in OPS if n not in GEOMETRIC])
def test_point_op_equals_timm_exactly(name):
    images = _images()
    for m in MAGNITUDES:
        ours = _ours(images, name, m, False, False)
        ref = torch.stack([_timm(img, name, m, False, False) for img in images])
        _check(ours, ref, name, f"{name} m={m}")


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
@pytest.mark.parametrize("bicubic", [False, True], ids=["bilinear", "bicubic"])
def test_geometric_op_equals_timm(name, bicubic):
    for h, w in [(32, 32), (20, 28)]:
        images = _images(h, w)
        for m in MAGNITUDES:
            for negate in (False, True):
                ours = _ours(images, name, m, negate, bicubic)
                ref = torch.stack([_timm(img, name, m, negate, bicubic) for img in images])
                _check(ours, ref, name, f"{name} m={m} negate={negate} {h}x{w}")


def test_fill_is_timms_img_mean():
    assert FILL == (129, 124, 112)
    images = _images()
    out = _ours(images, "TranslateXRel", 10, False, False, fill=(1, 2, 3))  # 14.4 px to the left
    fill = torch.tensor([1, 2, 3], dtype=torch.uint8).view(1, 3, 1, 1)
    assert torch.equal(out[:, :, :, -14:], fill.expand(8, 3, 32, 14))
    assert not bool((out[:, :, :, -15:-14] == fill).all())


def test_mixed_batch_and_inactive_images():
    """Different ops, magnitudes, signs and filters in one batch; inactive images unchanged."""
    images = _images().repeat(4, 1, 1, 1)[:30]
    g = torch.Generator().manual_seed(3)
    op = torch.arange(30) % 15
    mag = torch.rand(30, generator=g, dtype=torch.float64) * 10
    negate, bicubic = torch.rand(30, generator=g) < 0.5, torch.rand(30, generator=g) < 0.5
    active = torch.arange(30) < 25
    out = apply_op(images, op, mag, negate, bicubic, FILL, active=active)
    for i in range(30):
        if not active[i]:
            assert torch.equal(out[i], images[i])
            continue
        ref = _timm(images[i], OPS[op[i]], float(mag[i]), bool(negate[i]), bool(bicubic[i]))
        _check(out[i:i + 1], ref[None], OPS[op[i]], f"image {i}")


def test_rand_augment_composes_the_draws_like_timm():
    """End to end: the output of rand_augment equals timm's ops applied in turn with our draws."""
    images = _images().repeat(5, 1, 1, 1)
    out = rand_augment(images, FILL, generator=torch.Generator().manual_seed(11))
    d = draw(len(images), 2, 9, 1.0, 0.5, generator=torch.Generator().manual_seed(11))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    for i in range(len(images)):
        ref = images[i]
        for k in range(2):
            if d.apply[k, i]:
                ref = _timm(ref, OPS[d.op[k, i]], float(d.magnitude[k, i]), bool(d.negate[k, i]), bool(d.bicubic[k, i]))
        _check(out[i:i + 1], ref[None], "Rotate", f"image {i}")  # the loosest tolerance: rotate may be among the ops
    again = rand_augment(images, FILL, generator=torch.Generator().manual_seed(11))
    assert torch.equal(out, again)
    assert not torch.equal(out, rand_augment(images, FILL, generator=torch.Generator().manual_seed(12)))


# ----------------------------------------------------------------------------- draw statistics

N = 20_000  # images; 2 layers each


def _timm_draws(n, seed=0):
    """timm's RandAugment('rand-m9-n2-mstd1.0') on n dummy images, recording per image and
    layer (op name or None when skipped, magnitude after clipping, negated)."""
    import random
    random.seed(seed)
    np.random.seed(seed)
    ra = taa.rand_augment_transform("rand-m9-n2-mstd1.0", {"img_mean": FILL, "translate_const": 14})
    log = []
    for op in ra.ops:
        op.aug_fn = lambda img, *args, _n=op.name, **kw: img + [(_n, args)]
        op.level_fn = lambda m, h: (m,)
    for _ in range(n):
        slots = ra([])
        log.append(slots)
    return ra, log


def test_draw_statistics_match_timm():
    ra, log = _timm_draws(N)
    assert [op.name for op in ra.ops] == list(OPS) and ra.num_layers == 2
    assert all(op.prob == 0.5 and op.magnitude == 9 and op.magnitude_std == 1.0 for op in ra.ops)
    timm_applied = np.array([len(s) for s in log]).sum() / (2 * N)
    timm_mag = np.array([a[0] for s in log for _, a in s])
    timm_ops = np.bincount([OPS.index(n) for s in log for n, _ in s], minlength=15)

    d = draw(N, 2, 9, 1.0, 0.5, generator=torch.Generator().manual_seed(0))
    applied = d.apply.double().mean().item()
    ops = torch.bincount(d.op.flatten(), minlength=15).numpy()
    mag = d.magnitude[d.apply].numpy()

    # probability 0.5: binomial z against 0.5 and against timm's rate (two samples of 2N)
    se = math.sqrt(0.25 / (2 * N))
    assert abs(applied - 0.5) < 4 * se and abs(timm_applied - 0.5) < 4 * se
    assert abs(applied - timm_applied) < 4 * math.sqrt(2) * se
    # ops uniform over 15: chi-square, 14 degrees of freedom; 40 is p ~ 2e-4
    for counts in (ops, timm_ops):
        expected = counts.sum() / 15
        assert ((counts - expected) ** 2 / expected).sum() < 40
    # magnitude N(9, 1) clipped to [0, 10]: mean, std and the mass at 10 against the exact values
    # of the clipped normal and against timm's sample
    phi = 0.5 * (1 + math.erf(1 / math.sqrt(2)))  # P(N(9,1) < 10)
    pdf = math.exp(-0.5) / math.sqrt(2 * math.pi)
    mean = 9 * phi - pdf + 10 * (1 - phi)
    second = (81 + 1) * phi - (9 + 10) * pdf + 100 * (1 - phi)  # E[X^2 1{X<10}] = (mu^2+s^2)Phi - (mu+b) s phi
    std = math.sqrt(second - mean ** 2)
    for sample in (mag, timm_mag):
        k = len(sample)
        assert abs(sample.mean() - mean) < 4 * std / math.sqrt(k)
        assert abs(sample.std() - std) < 0.02
        at10 = (sample == 10).mean()
        assert abs(at10 - (1 - phi)) < 4 * math.sqrt(phi * (1 - phi) / k)
        assert sample.min() >= 0 and sample.max() == 10
    assert abs(mag.mean() - timm_mag.mean()) < 4 * std * math.sqrt(1 / len(mag) + 1 / len(timm_mag))
    # negation and the filter: fair coins
    for coin in (d.negate, d.bicubic):
        assert abs(coin.double().mean().item() - 0.5) < 4 * se


def test_draws_are_per_image_and_per_layer():
    """Draw per image, not per group: consecutive images (and the two layers of one image) share
    an op at the independent rate 1/15, not at a group's rate near 1."""
    d = draw(N, 2, 9, 1.0, 0.5, generator=torch.Generator().manual_seed(1))
    for same in (d.op[0, 1:] == d.op[0, :-1], d.op[0] == d.op[1]):
        rate = same.double().mean().item()
        assert abs(rate - 1 / 15) < 4 * math.sqrt((1 / 15) * (14 / 15) / N)
    same_apply = (d.apply[0, 1:] == d.apply[0, :-1]).double().mean().item()
    assert abs(same_apply - 0.5) < 4 * math.sqrt(0.25 / N)
    assert d.magnitude[0, 1:].ne(d.magnitude[0, :-1]).float().mean() > 0.8


def test_draw_options():
    d = draw(1000, 3, 4, 0.0, 1.0, magnitude_max=None, interpolation="bicubic",
             generator=torch.Generator().manual_seed(0))
    assert d.op.shape == (3, 1000) and bool(d.apply.all()) and bool((d.magnitude == 4).all()) and bool(d.bicubic.all())
    d = draw(1000, 1, 9, 5.0, 0.0, magnitude_max=12, interpolation="bilinear",
             generator=torch.Generator().manual_seed(0))
    assert not bool(d.apply.any()) and not bool(d.bicubic.any())
    assert float(d.magnitude.max()) == 12 and float(d.magnitude.min()) == 0 and float(d.magnitude.median()) > 8
    for std in (150.0, float("inf")):  # timm's mstd > 100: uniform in [0, magnitude]
        m = draw(20_000, 1, 8, std, 1.0, generator=torch.Generator().manual_seed(0)).magnitude
        assert float(m.min()) >= 0 and float(m.max()) <= 8 and abs(float(m.mean()) - 4) < 4 * 8 / math.sqrt(12 * 20_000)
        assert abs(float((m < 2).double().mean()) - 0.25) < 0.015
    with pytest.raises(ValueError, match="interpolation"):
        draw(10, 2, 9, 1.0, 0.5, interpolation="nearest")


def test_rejects_non_uint8():
    with pytest.raises(TypeError, match="uint8"):
        rand_augment(_images().float(), FILL)



@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu_on_the_same_draws():
    """On CUDA, with a CUDA generator: the draws stay on the device and every image equals the
    CPU ops applied with those draws (rotate within the stated tolerance: CUDA's cos/sin)."""
    images = _images().repeat(16, 1, 1, 1)
    out = rand_augment(images.cuda(), FILL, generator=torch.Generator("cuda").manual_seed(5))
    d = draw(len(images), 2, 9, 1.0, 0.5, generator=torch.Generator("cuda").manual_seed(5), device="cuda")
    assert out.device.type == "cuda" and d.op.device.type == "cuda"
    ref = images
    for k in range(2):
        ref = apply_op(ref, d.op[k].cpu(), d.magnitude[k].cpu(), d.negate[k].cpu(), d.bicubic[k].cpu(), FILL,
                       active=d.apply[k].cpu())
    _check(out.cpu(), ref, "Rotate", "cuda vs cpu")


def test_autocontrast_lut_equals_pils_formula_for_every_range():
    """Every (lo, hi) channel range, 0 <= lo < hi <= 255: the lookup table equals PIL's
    ImageOps.autocontrast (cutoff 0) transcribed: scale = 255.0 / (hi - lo) (a correctly
    rounded Python division), offset = -lo * scale, lut[i] = clip(int(i * scale + offset), 0, 255).
    A reciprocal-then-multiply scale gets 3 511 of the 32 640 ranges off by one somewhere."""
    from vitprobe.data.randaugment import _autocontrast_lut

    levels = torch.arange(256)
    pairs = [(lo, hi) for lo in range(256) for hi in range(lo + 1, 256)]
    hist = torch.zeros(len(pairs), 256, dtype=torch.int64)
    index = torch.arange(len(pairs))
    hist[index, torch.tensor([p[0] for p in pairs])] = 1
    hist[index, torch.tensor([p[1] for p in pairs])] = 1
    ours = _autocontrast_lut(hist, levels).tolist()
    wrong = []
    for row, (lo, hi) in zip(ours, pairs):
        scale = 255.0 / (hi - lo)
        offset = -lo * scale
        if row != [min(255, max(0, int(i * scale + offset))) for i in range(256)]:
            wrong.append((lo, hi))
    assert not wrong, f"{len(wrong)} ranges differ from PIL's formula, e.g. {wrong[:3]}"
