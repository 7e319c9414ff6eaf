import pytest
import torch
import torch.nn.functional as F

from vitprobe.config.load import defaults
from vitprobe.data.augment import (
    BatchAugment,
    _crop_flip_params,
    mixup_cutmix,
    normalize,
    rand_augment,
    random_crop_flip,
    soft_targets,
)
from vitprobe.data.randaugment import fill_colour
from vitprobe.data.randaugment import rand_augment as timm_rand_augment


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _uint8(b=16, h=8, w=10, seed=0):
    return torch.randint(0, 256, (b, 3, h, w), generator=_gen(seed), dtype=torch.uint8)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("flip", [True, False])
def test_random_crop_flip_matches_per_sample_reference(dtype, flip):
    images = _uint8().to(dtype)
    pad = 3
    out = random_crop_flip(images, pad, flip, generator=_gen(5))
    dy, dx, flips = _crop_flip_params(len(images), pad, _gen(5))
    assert dy.unique().numel() > 1 and dx.unique().numel() > 1 and 0 < flips.sum() < len(flips)
    assert dy.min() >= 0 and dy.max() <= 2 * pad
    for i in range(len(images)):
        ref = F.pad(images[i], (pad, pad, pad, pad))[:, dy[i]:dy[i] + 8, dx[i]:dx[i] + 10]
        if flip and flips[i]:
            ref = ref.flip(-1)
        assert torch.equal(out[i], ref), i
    assert out.dtype == dtype and out.shape == images.shape


def test_random_crop_flip_no_pad_is_identity_or_mirror():
    images = _uint8()
    out = random_crop_flip(images, pad=0, flip=True, generator=_gen(1))
    mirrored = [torch.equal(o, x.flip(-1)) for o, x in zip(out, images)]
    kept = [torch.equal(o, x) for o, x in zip(out, images)]
    assert all(m or k for m, k in zip(mirrored, kept)) and any(mirrored) and any(kept)
    assert torch.equal(random_crop_flip(images, 0, False, _gen(1)), images)


def test_normalize_values():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    out = normalize(images, (0.2, 0.5, 1.0), (0.5, 0.25, 2.0))
    assert out.dtype == torch.float32
    expected = torch.tensor([[-0.4, 0.0, 1.6], [-2.0, -1.2, 2.0], [-0.5, -0.4, 0.0]])
    assert torch.allclose(out[0, :, 0], expected, atol=1e-6)


def test_soft_targets():
    t = soft_targets(torch.tensor([3, 0]), 10, smoothing=0.1)
    assert t.dtype == torch.float32 and t.shape == (2, 10)
    assert torch.allclose(t.sum(1), torch.ones(2))
    assert t[0, 3].item() == pytest.approx(0.91) and t[0, 0].item() == pytest.approx(0.01)
    assert torch.equal(soft_targets(torch.tensor([2]), 4), torch.tensor([[0.0, 0.0, 1.0, 0.0]]))


def _mix_batch(b=8, k=10):
    x = torch.rand(b, 3, 16, 16, generator=_gen(7))
    labels = torch.arange(b) % k  # partner (flipped) labels always differ from own for even b
    return x, labels, soft_targets(labels, k)


def test_mixup_is_convex_combination_with_lam_from_targets():
    x, labels, y = _mix_batch()
    lams = []
    for seed in range(5):
        xo, yo = mixup_cutmix(x, y, mixup_alpha=1.0, cutmix_alpha=0.0, generator=_gen(seed))
        assert torch.allclose(yo.sum(1), torch.ones(len(x)))
        lam = yo[torch.arange(len(x)), labels]
        assert torch.allclose(lam, lam[0].expand_as(lam))
        lam = lam[0].item()
        assert torch.allclose(xo, lam * x + (1 - lam) * x.flip(0), atol=1e-6)
        lams.append(lam)
    assert len(set(lams)) == 5


def test_cutmix_pixels_are_own_or_partner():
    x, labels, y = _mix_batch()
    partner_fractions = []
    for seed in range(8):
        xo, yo = mixup_cutmix(x, y, mixup_alpha=0.0, cutmix_alpha=0.8, generator=_gen(seed))
        assert torch.allclose(yo.sum(1), torch.ones(len(x)))
        own, other = xo == x, xo == x.flip(0)
        assert bool((own | other).all())
        from_partner = other & ~own
        mask = from_partner[0, 0]
        assert bool((from_partner == mask).all())  # the same box for every sample and channel
        lam = yo[0, labels[0]].item()
        assert mask.float().mean().item() == pytest.approx(1 - lam, abs=1e-6)
        partner_fractions.append(mask.float().mean().item())
    assert max(partner_fractions) > 0


def test_mixup_cutmix_switch_and_passthrough():
    x, labels, y = _mix_batch()
    kinds = set()
    for seed in range(20):
        xo, _ = mixup_cutmix(x, y, 1.0, 0.8, switch_prob=0.5, generator=_gen(seed))
        kinds.add("cutmix" if bool(((xo == x) | (xo == x.flip(0))).all()) else "mixup")
    assert kinds == {"cutmix", "mixup"}
    for seed in range(5):
        xo, _ = mixup_cutmix(x, y, 1.0, 0.8, switch_prob=1.0, generator=_gen(seed))
        assert bool(((xo == x) | (xo == x.flip(0))).all())
    xo, yo = mixup_cutmix(x, y, 0.0, 0.0, generator=_gen(0))
    assert xo is x and yo is y
    a = mixup_cutmix(x, y, 1.0, 0.8, generator=_gen(3))
    b = mixup_cutmix(x, y, 1.0, 0.8, generator=_gen(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(x, _mix_batch()[0])  # input untouched


def test_rand_augment_deterministic_and_per_group():
    images = _uint8(b=4, h=32, w=32, seed=2)
    torch.manual_seed(0)
    a = rand_augment(images, **{**TV, "group_size": 2})
    torch.manual_seed(0)
    b = rand_augment(images, **{**TV, "group_size": 2})
    assert a.dtype == torch.uint8 and a.shape == images.shape and torch.equal(a, b)

    # Eight groups of four copies of one image: same ops inside a group, different across groups.
    same = _uint8(b=1, h=32, w=32, seed=3).expand(32, -1, -1, -1).contiguous()
    torch.manual_seed(1)
    out = rand_augment(same, **{**TV, "num_ops": 2, "magnitude": 9, "group_size": 4}).view(8, 4, 3, 32, 32)
    assert all(torch.equal(g[0], g[j]) for g in out for j in range(4))
    assert len({tuple(g[0].flatten().tolist()) for g in out}) > 1
    with pytest.raises(TypeError):
        rand_augment(images.float(), **TV)


AUG = defaults("train", "augment")  # the schema's defaults, the one source
TV = {"num_ops": 2, "magnitude": 9, "magnitude_std": 1.0, "group_size": 8}  # the schema fills these for torchvision
OFF = {**AUG, "crop_pad": 0, "hflip": False, "randaugment": None, "mixup_alpha": 0.0,
       "cutmix_alpha": 0.0, "label_smoothing": 0.0}
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def test_batch_augment_all_off_is_normalize_and_one_hot():
    images, labels = _uint8(b=6, h=32, w=32), torch.tensor([0, 1, 2, 3, 4, 9])
    x, y = BatchAugment(MEAN, STD, 10, **OFF)(images, labels, generator=_gen(0))
    assert torch.equal(x, normalize(images, MEAN, STD))
    assert torch.equal(y, F.one_hot(labels, 10).float())


def test_batch_augment_defaults():
    images, labels = _uint8(b=12, h=32, w=32), torch.arange(12) % 10
    aug = BatchAugment(MEAN, STD, 10, **AUG)
    state = torch.get_rng_state()
    x, y = aug(images, labels, generator=_gen(4))
    assert torch.equal(torch.get_rng_state(), state)  # with a generator the global RNG is untouched
    assert x.dtype == torch.float32 and x.shape == (12, 3, 32, 32)
    assert y.dtype == torch.float32 and y.shape == (12, 10)
    assert torch.allclose(y.sum(1), torch.ones(12)) and bool((y > 0).all())  # smoothing 0.1
    torch.manual_seed(123)  # a different global state must not matter
    x2, y2 = aug(images, labels, generator=_gen(4))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, aug(images, labels, generator=_gen(5))[0])
    x3, _ = aug(images, labels)  # global RNG
    assert x3.shape == x.shape
    with pytest.raises(TypeError, match="mixup"):
        BatchAugment(MEAN, STD, 10, **AUG, mixup=1.0)


def test_batch_augment_timm_randaugment_after_crop_flip():
    """The release's order: crop + flip, then timm's RandAugment with the dataset mean as fill."""
    assert AUG["randaugment"] == {"impl": "timm", "num_ops": 2, "magnitude": 9, "magnitude_std": 1.0, "prob": 0.5,
                                  "magnitude_max": None, "interpolation": "random"}
    images, labels = _uint8(b=12, h=32, w=32), torch.arange(12) % 10
    cfg = {**OFF, "crop_pad": 4, "hflip": True, "randaugment": AUG["randaugment"]}
    x, _ = BatchAugment(MEAN, STD, 10, **cfg)(images, labels, generator=_gen(4))
    g = _gen(4)
    crop = random_crop_flip(images, 4, True, g)
    kw = {k: v for k, v in AUG["randaugment"].items() if k != "impl"}
    expected = timm_rand_augment(crop, fill_colour(MEAN), generator=g, **kw)
    assert torch.equal(x, normalize(expected, MEAN, STD))
    assert not torch.equal(expected, crop)


def test_batch_augment_torchvision_randaugment_before_crop_flip():
    images, labels = _uint8(b=12, h=32, w=32), torch.arange(12) % 10
    cfg = {**OFF, "crop_pad": 4, "hflip": True, "randaugment": {"impl": "torchvision", **TV}}
    x, _ = BatchAugment(MEAN, STD, 10, **cfg)(images, labels, generator=_gen(4))
    g = _gen(4)
    seed = torch.randint(0, 2**62, (1,), generator=g).item()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ra = rand_augment(images, **TV)
    assert torch.equal(x, normalize(random_crop_flip(ra, 4, True, g), MEAN, STD))
    with pytest.raises(ValueError, match="impl"):
        BatchAugment(MEAN, STD, 10, **{**cfg, "randaugment": {"impl": "albumentations"}})
