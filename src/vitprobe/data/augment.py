"""Training augmentation on whole batches on the batch's device (CPU or CUDA).

Randomness: every function takes an optional ``torch.Generator`` that must live on the
images' device, except ``rand_augment`` (torchvision's RandAugment, the ``impl: torchvision``
alternative, draws from the global CPU RNG). ``BatchAugment`` with a generator is
deterministic given that generator alone. The default RandAugment (``impl: timm``, the
paper's) is ``vitprobe.data.randaugment``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms import v2

from vitprobe.data.randaugment import fill_colour
from vitprobe.data.randaugment import rand_augment as timm_rand_augment


def _crop_flip_params(batch: int, pad: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample crop offsets dy, dx (int64, uniform in [0, 2*pad]) into the padded image
    and horizontal-flip flags (bool, p = 0.5), drawn in that order."""
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=device)
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=device)
    flip = torch.rand(batch, generator=generator, device=device) < 0.5
    return dy, dx, flip


def random_crop_flip(images: Tensor, pad: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None) -> Tensor:
    """(B, C, H, W), any dtype -> same: output[b] = crop of zero-padded image b at offsets
    (dy[b], dx[b]) of size H x W, mirrored left-right where flip[b] (flip=False: never),
    with the draws of ``_crop_flip_params``."""
    b, c, h, w = images.shape
    dy, dx, flips = _crop_flip_params(b, pad, generator, images.device)
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    cols = dx[:, None] + torch.arange(w, device=images.device)
    if flip:
        cols = torch.where(flips[:, None], cols.flip(1), cols)
    rows = dy[:, None] + torch.arange(h, device=images.device)
    index = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).reshape(b, 1, h * w)
    out = torch.gather(padded.reshape(b, c, -1), 2, index.expand(b, c, h * w))
    return out.reshape(b, c, h, w)


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """float32 (x / 255 - mean) / std per channel for uint8 input; floating input is taken
    to be in [0, 1] pixel units already (no division by 255)."""
    x = images.to(torch.float32)
    if images.dtype == torch.uint8:
        x = x.div_(255)
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return x.sub_(m).div_(s) if x is not images else (x - m) / s


def soft_targets(labels: Tensor, num_classes: int, smoothing: float = 0.0) -> Tensor:
    """float32 (B, K): one_hot(labels) * (1 - smoothing) + smoothing / K."""
    return F.one_hot(labels.long(), num_classes).float() * (1 - smoothing) + smoothing / num_classes


def _rand_bbox(h: int, w: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """timm's rand_bbox: box of sides (H, W) * sqrt(1 - lam) at a uniform centre, clipped."""
    ratio = np.sqrt(1 - lam)
    ch, cw = int(h * ratio), int(w * ratio)
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    y0, y1 = np.clip([cy - ch // 2, cy + ch // 2], 0, h)
    x0, x1 = np.clip([cx - cw // 2, cx + cw // 2], 0, w)
    return int(y0), int(y1), int(x0), int(x1)


def mixup_cutmix(x: Tensor, y: Tensor, mixup_alpha: float, cutmix_alpha: float,
                 switch_prob: float = 0.5,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mix each sample with its partner in the flipped batch (timm's 'batch' mode).

    With both alphas > 0, CutMix with probability ``switch_prob``, else Mixup; with one
    alpha 0, only the other; both 0: inputs returned unchanged. lam ~ Beta(alpha, alpha).
    Mixup: x' = lam x + (1 - lam) x.flip(0). CutMix: a box of area ratio 1 - lam pasted from
    x.flip(0), lam then set to 1 - (clipped box area) / (H W). Targets y (soft, (B, K)):
    lam y + (1 - lam) y.flip(0). The scalar draws come from a numpy Generator seeded by
    one draw from ``generator`` (global RNG of x's device if None); inputs are not modified.
    """
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return x, y
    if y.dim() != 2:
        raise ValueError(f"mixup_cutmix needs soft targets (B, K), got shape {tuple(y.shape)}; use soft_targets()")
    seed = torch.randint(0, 2**62, (1,), generator=generator, device=x.device).item()
    rng = np.random.default_rng(seed)
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < switch_prob)
    partner = x.flip(0)
    if use_cutmix:
        lam = float(rng.beta(cutmix_alpha, cutmix_alpha))
        h, w = x.shape[-2:]
        y0, y1, x0, x1 = _rand_bbox(h, w, lam, rng)
        out = x.clone()
        out[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        lam = float(rng.beta(mixup_alpha, mixup_alpha))
        out = x * lam + partner * (1.0 - lam)
    return out, y * lam + y.flip(0) * (1.0 - lam)


_RANDAUG_CACHE: dict[tuple[int, int], v2.RandAugment] = {}


def rand_augment(images: Tensor, num_ops: int, magnitude: float, magnitude_std: float, group_size: int) -> Tensor:
    """uint8 (B, 3, H, W) -> uint8: each group of ``group_size`` consecutive samples gets
    torchvision v2 RandAugment(num_ops, magnitude=m, num_magnitude_bins=11) (same ops for
    the whole group), m = round(N(magnitude, magnitude_std)) clipped to [0, 10] per group
    (timm's scale, 10 = max). All randomness from the global CPU torch RNG."""
    if images.dtype != torch.uint8:
        raise TypeError(f"rand_augment needs uint8 images, got {images.dtype}")
    groups = []
    for group in images.split(group_size):
        m = float(magnitude)
        if magnitude_std > 0:
            m += float(torch.randn(())) * magnitude_std
        m = int(min(10, max(0, round(m))))
        op = _RANDAUG_CACHE.setdefault((num_ops, m), v2.RandAugment(num_ops, magnitude=m, num_magnitude_bins=11))
        groups.append(op(group))
    return torch.cat(groups)


class BatchAugment:
    """Training batch transform, the order of the paper's release (timm's
    ``transforms_imagenet_train`` with a CIFAR crop): random crop + flip, RandAugment (uint8),
    normalize, soft targets with label smoothing, then Mixup/CutMix. The keyword arguments
    are the keys of ``train.augment`` in the config (defaults: the schema,
    ``vitprobe.config.load.defaults("train", "augment")``); ``randaugment=None`` disables
    RandAugment, else a dict with ``impl``:

    - ``timm``: ``vitprobe.data.randaugment.rand_augment`` with the remaining keys, fill colour
      ``fill_colour(mean)`` (timm's ``img_mean``), after crop and flip;
    - ``torchvision``: ``rand_augment`` above (groups of ``group_size`` images share one
      draw), before crop and flip, as vitprobe did before following the release.

    Called with a generator (on the images' device), the whole call is deterministic given
    it (the torchvision impl then runs on the CPU RNG forked and seeded from the generator,
    leaving the global RNG untouched). Without one, the global RNGs are used.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], num_classes: int, *, crop_pad: int,
                 hflip: bool, randaugment: dict | None, mixup_alpha: float, cutmix_alpha: float,
                 switch_prob: float, label_smoothing: float):
        ra = None if randaugment is None else dict(randaugment)
        if ra is not None:
            ra.setdefault("impl", "timm")
            if ra["impl"] not in ("timm", "torchvision"):
                raise ValueError(f"randaugment impl must be 'timm' or 'torchvision', got {ra['impl']!r}")
        self.randaugment = ra
        self.crop_pad = int(crop_pad)
        self.hflip = bool(hflip)
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.switch_prob = float(switch_prob)
        self.label_smoothing = float(label_smoothing)
        self.mean, self.std = tuple(mean), tuple(std)
        self.num_classes = int(num_classes)

    def _rand_augment(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        kw = {k: v for k, v in self.randaugment.items() if k != "impl"}
        if self.randaugment["impl"] == "timm":
            return timm_rand_augment(x, fill_colour(self.mean), generator=generator, **kw)
        if generator is None:
            return rand_augment(x, **kw)
        seed = torch.randint(0, 2**62, (1,), generator=generator, device=x.device).item()
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # CPU only, unlike torch.manual_seed
            return rand_augment(x, **kw)

    def __call__(self, images_uint8: Tensor, labels: Tensor,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """uint8 (B, 3, H, W), int labels (B,) -> (float32 normalized inputs, float32 (B, K)
        targets whose rows sum to 1)."""
        if images_uint8.dtype != torch.uint8:
            raise TypeError(f"BatchAugment needs uint8 images, got {images_uint8.dtype}")
        x = images_uint8
        ra = self.randaugment
        if ra is not None and ra["impl"] == "torchvision":
            x = self._rand_augment(x, generator)
        if self.crop_pad > 0 or self.hflip:
            x = random_crop_flip(x, self.crop_pad, self.hflip, generator)
        if ra is not None and ra["impl"] == "timm":
            x = self._rand_augment(x, generator)
        x = normalize(x, self.mean, self.std)
        y = soft_targets(labels.to(x.device), self.num_classes, self.label_smoothing)
        return mixup_cutmix(x, y, self.mixup_alpha, self.cutmix_alpha, self.switch_prob, generator)
