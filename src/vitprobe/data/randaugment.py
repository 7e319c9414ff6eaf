"""RandAugment with timm's semantics, batched on the images' device.

The paper's release trains with timm's ``rand_augment_transform("rand-m9-n2-mstd1.0", hparams)``
(``timm.data.auto_augment``) after random crop and flip, with hparams from timm's
``transforms_imagenet_train``: ``img_mean`` = the dataset mean as a uint8 colour (the fill),
no ``interpolation`` (so every geometric op picks PIL's bilinear or bicubic at random) and
the default ``translate_pct`` 0.45. Per image, timm draws ``num_ops`` ops with replacement
from its 15 RandAugment ops (``OPS``, its ``_RAND_TRANSFORMS`` in that order); each is
applied with probability ``prob`` at magnitude N(magnitude, magnitude_std) clipped to
[0, magnitude_max or 10]; rotate, shear and translate negate their argument with
probability 1/2.

``rand_augment`` does the same per image, for a whole uint8 batch at once: ``draw`` takes
all random choices from one ``torch.Generator`` on the images' device, ``apply_op`` runs
one layer. The ops compute what PIL computes (Pillow's C code: ImageOps' and ImageEnhance's
formulas, Blend.c's float32 blend with truncation, Convert.c's integer RGB -> L, Filter.c's
3x3 SMOOTH with its border pixels kept, Geometry.c's affine bilinear / bicubic filters with
edge-clamped neighbours and the fill outside the source): point ops are exact; the
geometric ops use the same float64 arithmetic, and rotate differs from PIL only where
Python's ``round(cos, 15)`` and ``torch.round`` disagree in the last bit
(tests/data/test_randaugment.py states the tolerance). Posterize below magnitude 2.5 keeps 0 bits
(a black image), as the Pillow of the release's time did; Pillow >= 11 raises there instead.

Families, each one pass over the images that drew it (index_select, op, index_copy_):
per-image lookup tables (8 ops), Color and Sharpness (a blend with a degenerate image), and
the 5 affine ops (bilinear and bicubic apart). Computing every family on the whole batch and
selecting per image was 10x slower on CPU (about 220 against 20 ms per batch of 128 32x32
images at one thread); the grouping costs a few host syncs per layer on CUDA.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
       "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
INTERPOLATIONS = ("random", "bilinear", "bicubic")
LEVEL_DENOM = 10.0  # timm's _LEVEL_DENOM: magnitude 10 = the largest argument of each op
_I = {name: i for i, name in enumerate(OPS)}
_LUT_OPS = ("AutoContrast", "Equalize", "Invert", "Posterize", "Solarize", "SolarizeAdd", "Contrast", "Brightness")
_AFFINE_OPS = ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")


def fill_colour(mean: Sequence[float]) -> tuple[int, ...]:
    """timm's fill: ``img_mean = tuple(min(255, round(255 * m)) for m in mean)``."""
    return tuple(min(255, round(255 * m)) for m in mean)


class Draws(NamedTuple):
    """All random choices of one call, each (num_ops, B): op index into ``OPS`` (int64),
    applied (bool), magnitude after clipping (float64), negate (bool), bicubic (bool)."""

    op: Tensor
    apply: Tensor
    magnitude: Tensor
    negate: Tensor
    bicubic: Tensor


def draw(batch: int, num_ops: int, magnitude: float, magnitude_std: float, prob: float,
         magnitude_max: float | None = None, interpolation: str = "random",
         generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Draws:
    """timm's draws for ``batch`` images, independent per image and per layer: op uniform
    over the 15 ops (with replacement), applied with probability ``prob``, magnitude
    clip(N(magnitude, magnitude_std), 0, magnitude_max or 10) (uniform in [0, magnitude] for
    magnitude_std > 100, as timm reads its ``mstd``), negate with probability 1/2,
    bicubic with probability 1/2 (``interpolation="random"``) or always/never. Drawn in
    that order from ``generator`` (the device's global RNG if None)."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    shape = (num_ops, batch)
    kw = {"generator": generator, "device": device}
    op = torch.randint(0, len(OPS), shape, **kw)
    apply = torch.rand(shape, dtype=torch.float64, **kw) < prob
    mag = torch.full(shape, float(magnitude), dtype=torch.float64, device=device)
    if magnitude_std > 100:  # timm's config string turns mstd > 100 into uniform sampling in [0, m]
        mag = mag * torch.rand(shape, dtype=torch.float64, **kw)
    elif magnitude_std > 0:
        mag = mag + magnitude_std * torch.randn(shape, dtype=torch.float64, **kw)
    mag = mag.clamp(0.0, float(magnitude_max or LEVEL_DENOM))
    negate = torch.rand(shape, dtype=torch.float64, **kw) > 0.5  # timm: -v if random() > 0.5
    if interpolation == "random":
        bicubic = torch.rand(shape, dtype=torch.float64, **kw) < 0.5
    else:
        bicubic = torch.full(shape, interpolation == "bicubic", dtype=torch.bool, device=device)
    return Draws(op, apply, mag, negate, bicubic)


# ----------------------------------------------------------------------------- point ops

def _blend(degenerate: Tensor, image: Tensor, alpha: Tensor) -> Tensor:
    """PIL's Image.blend on 8-bit data (Blend.c): float32 ``in1 + alpha * (in2 - in1)``,
    clipped to [0, 255], truncated. ``alpha`` float32, broadcastable."""
    d = degenerate.to(torch.float32)
    return (d + alpha * (image.to(torch.float32) - d)).clamp_(0, 255).to(torch.uint8)


def _histogram(x: Tensor) -> Tensor:
    """(n, 3, H, W) uint8 -> (n, 3, 256) int64 counts per channel."""
    n, c = x.shape[:2]
    flat = x.reshape(n * c, -1).long()
    hist = torch.zeros(n * c, 256, dtype=torch.int64, device=x.device)
    return hist.scatter_add_(1, flat, torch.ones_like(flat)).view(n, c, 256)


def _grey(x: Tensor) -> Tensor:
    """PIL's RGB -> L (Convert.c): (R 19595 + G 38470 + B 7471 + 0x8000) >> 16, (n, 1, H, W) int32."""
    r, g, b = x.to(torch.int32).unbind(1)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).unsqueeze(1)


def _autocontrast_lut(hist: Tensor, levels: Tensor) -> Tensor:
    """ImageOps.autocontrast (cutoff 0): per channel lo/hi = lowest/highest present value;
    lut = clip(int(i * scale + offset), 0, 255), scale = 255 / (hi - lo), offset = -lo * scale;
    identity where hi <= lo."""
    present = hist > 0
    lo = torch.where(present, levels, 256).amin(-1, keepdim=True)
    hi = torch.where(present, levels, -1).amax(-1, keepdim=True)
    # tensor / tensor: a correctly rounded division as Python's `255.0 / (hi - lo)`; the
    # scalar form `255.0 / t` is evaluated as reciprocal(t) * 255, 1 ulp off for some ranges
    span = (hi - lo).clamp(min=1).double()
    scale = torch.full_like(span, 255.0) / span
    offset = -lo.double() * scale
    lut = (levels.double() * scale + offset).trunc().clamp(0, 255).long()
    return torch.where(hi <= lo, levels, lut)


def _equalize_lut(hist: Tensor, levels: Tensor) -> Tensor:
    """ImageOps.equalize: step = (N - count of the highest present value) // 255; lut[i] =
    (step // 2 + #pixels below i) // step, clipped to 255 by Image.point; identity where
    fewer than 2 values are present or step is 0."""
    present = hist > 0
    last = torch.where(present, levels, -1).amax(-1, keepdim=True)
    step = (hist.sum(-1, keepdim=True) - hist.gather(-1, last.clamp(min=0))) // 255
    below = hist.cumsum(-1) - hist
    lut = ((step // 2 + below) // step.clamp(min=1)).clamp(max=255)
    keep = (present.sum(-1, keepdim=True) <= 1) | (step == 0)
    return torch.where(keep, levels, lut)


def _point_luts(x: Tensor, op: Tensor, mag: Tensor) -> Tensor:
    """(n, 3, 256) int64 lookup tables of the table ops, per image by its op (identity for
    the others); ``mag`` float64 (n,)."""
    n, dev = x.shape[0], x.device
    levels = torch.arange(256, device=dev).expand(n, 3, 256)
    level = (mag / LEVEL_DENOM).view(n, 1, 1)
    bits = (level * 4).trunc().long().clamp(max=8)  # timm: posterize keeps int(level * 4) bits
    thresh = (level * 256).trunc().long().clamp(max=256)
    add = (level * 110).trunc().long().clamp(max=128)
    factor = (level * 1.8 + 0.1).to(torch.float32)

    @functools.cache
    def hist():
        return _histogram(x)

    def grey_mean():  # ImageStat's mean of the L image, rounded as ImageEnhance.Contrast does
        grey = _grey(x)
        mean = grey.sum((1, 2, 3), dtype=torch.int64).double() / grey[0].numel()
        return (mean + 0.5).floor().view(n, 1, 1)

    luts = {
        "AutoContrast": lambda: _autocontrast_lut(hist(), levels),
        "Equalize": lambda: _equalize_lut(hist(), levels),
        "Invert": lambda: 255 - levels,
        "Posterize": lambda: levels & (256 - (1 << (8 - bits))),
        "Solarize": lambda: torch.where(levels < thresh, levels, 255 - levels),
        "SolarizeAdd": lambda: torch.where(levels < 128, (levels + add).clamp(max=255), levels),
        "Contrast": lambda: _blend(grey_mean(), levels, factor).long(),
        "Brightness": lambda: _blend(torch.zeros((), device=dev), levels, factor).long(),
    }
    out = levels
    for name, make in luts.items():
        mask = (op == _I[name]).view(n, 1, 1)
        if bool(mask.any()):
            out = torch.where(mask, make(), out)
    return out


def _smooth(x: Tensor) -> Tensor:
    """PIL's ImageFilter.SMOOTH (Filter.c 3x3, kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 in
    float32, summed row y+1, y, y-1 as PIL does, +0.5, clipped, truncated); border pixels kept."""
    xf = x.to(torch.float32)
    one = torch.tensor(1.0) / torch.tensor(13.0)
    five = torch.tensor(5.0) / torch.tensor(13.0)
    h, w = x.shape[-2:]

    def row(dy, centre):
        r = xf[..., 1 + dy:h - 1 + dy, :]
        return (r[..., :-2] * one + r[..., 1:-1] * centre) + r[..., 2:] * one

    ss = torch.tensor(0.5) + row(1, one)
    ss = ss + row(0, five)
    ss = ss + row(-1, one)
    out = x.clone()
    out[..., 1:-1, 1:-1] = ss.clamp_(0, 255).to(torch.uint8)
    return out


def _colour_sharpness(x: Tensor, op: Tensor, mag: Tensor) -> Tensor:
    """ImageEnhance.Color (blend with the L image) and .Sharpness (blend with SMOOTH), factor
    (level * 1.8 + 0.1) as float32."""
    factor = (mag / LEVEL_DENOM * 1.8 + 0.1).to(torch.float32).view(-1, 1, 1, 1)
    degenerate = torch.where((op == _I["Color"]).view(-1, 1, 1, 1), _grey(x), _smooth(x).to(torch.int32))
    return _blend(degenerate, x, factor)


# ----------------------------------------------------------------------------- affine ops

def _affine_matrices(op: Tensor, mag: Tensor, negate: Tensor, h: int, w: int, translate_pct: float) -> Tensor:
    """(n, 6) float64: PIL's inverse affine data (a, b, c, d, e, f) of each image's op:
    source = (a X + b Y + c, d X + e Y + f) for the output pixel centre (X, Y)."""
    level = mag / LEVEL_DENOM
    sign = torch.where(negate, -1.0, 1.0).to(torch.float64)
    one, zero = torch.ones_like(level), torch.zeros_like(level)
    shear = sign * (level * 0.3)
    pct = sign * (level * translate_pct)
    # Image.rotate: angle % 360, the inverse rotation about (w/2, h/2) with cos and sin
    # rounded to 15 decimals.
    deg = sign * (level * 30.0)
    deg = torch.where(deg < 0, deg + 360.0, deg)
    angle = -(deg * (math.pi / 180))
    cos, sin = torch.round(torch.cos(angle), decimals=15), torch.round(torch.sin(angle), decimals=15)
    cx, cy = w / 2, h / 2
    rot = torch.stack([cos, sin, (cos * -cx + sin * -cy) + 0.0 + cx,
                       -sin, cos, (-sin * -cx + cos * -cy) + 0.0 + cy], 1)
    table = {
        "Rotate": rot,
        "ShearX": torch.stack([one, shear, zero, zero, one, zero], 1),
        "ShearY": torch.stack([one, zero, zero, shear, one, zero], 1),
        "TranslateXRel": torch.stack([one, zero, pct * w, zero, one, zero], 1),
        "TranslateYRel": torch.stack([one, zero, zero, zero, one, pct * h], 1),
    }
    out = torch.stack([one, zero, zero, zero, one, zero], 1)
    for name, m in table.items():
        out = torch.where((op == _I[name]).view(-1, 1), m, out)
    return out


def _cubic(v1: Tensor, v2: Tensor, v3: Tensor, v4: Tensor, d: Tensor) -> Tensor:
    """Geometry.c's BICUBIC (a = -1): p1 + d (p2 + d (p3 + d p4)) with p1 = v2, p2 = -v1 + v3,
    p3 = 2 (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4, rounded as PIL's doubles are (the
    reordered terms are exact rewrites: a + (-b) == a - b); integer taps stay integers, as PIL
    sums them as int. float64 result."""
    p4 = v2 - v1
    p4 -= v3
    p4 += v4
    p3 = (v1 - v2) * 2
    p3 += v3
    p3 -= v4
    t = p4 * d
    t += p3
    t *= d
    t += v3 - v1
    t *= d
    t += v2
    return t


def _affine(x: Tensor, matrix: Tensor, bicubic: bool, fill: Tensor) -> Tensor:
    """PIL's Image.transform(AFFINE, resample=BILINEAR or BICUBIC, fillcolor=fill) per image:
    sources outside [0, W) x [0, H) take the fill; inside, neighbours are clamped to the
    edge; bilinear truncates, bicubic clips then truncates."""
    n, c, h, w = x.shape
    dev = x.device
    X = (torch.arange(w, device=dev, dtype=torch.float64) + 0.5).view(1, 1, w)
    Y = (torch.arange(h, device=dev, dtype=torch.float64) + 0.5).view(1, h, 1)
    a, b, cc, d, e, f = (m.view(n, 1, 1) for m in matrix.unbind(1))
    xin = (a * X + b * Y) + cc
    yin = (d * X + e * Y) + f
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    xs, ys = xin - 0.5, yin - 0.5
    x0, y0 = xs.floor(), ys.floor()
    dx, dy = xs - x0, ys - y0
    # taps[i][j] = source values (all channels) at column x0 + i, row y0 + j, edge-clamped:
    # one index_select of rows of the channel-last float64 image, a contiguous (k, k, n, h*w, c)
    i32 = torch.int32
    offsets = torch.arange(-1, 3, device=dev, dtype=i32) if bicubic else torch.arange(0, 2, device=dev, dtype=i32)
    rows = ((y0.to(i32).view(1, n, h * w) + offsets.view(-1, 1, 1)).clamp_(0, h - 1) * w).unsqueeze(0)
    cols = (x0.to(i32).view(1, n, h * w) + offsets.view(-1, 1, 1)).clamp_(0, w - 1).unsqueeze(1)
    base = (torch.arange(n, device=dev, dtype=i32) * (h * w)).view(n, 1)
    table = x.permute(0, 2, 3, 1).reshape(n * h * w, c).to(torch.int16 if bicubic else torch.float64)
    k = len(offsets)
    taps = table.index_select(0, (cols + rows + base).view(-1)).view(k, k, n, h * w, c)
    dx, dy = dx.view(n, h * w, 1), dy.view(n, h * w, 1)
    if bicubic:  # along x in each of the 4 rows at once, then along y
        v = _cubic(*_cubic(*taps, dx), dy).clamp_(0, 255)
    else:  # a + (b - a) d, along x then y
        t0, t1 = taps
        v = (t1 - t0).mul_(dx).add_(t0)
        v = (v[1] - v[0]).mul_(dy).add_(v[0])
    v = v.view(n, h, w, c).permute(0, 3, 1, 2)
    out = v.to(torch.uint8)
    return torch.where(inside.unsqueeze(1), out, fill.view(1, c, 1, 1))


# ----------------------------------------------------------------------------- dispatch

def _update_(x: Tensor, mask: Tensor, fn, *params: Tensor) -> None:
    """Apply fn in place to the images of x where mask (fn gets those images and their params)."""
    idx = mask.nonzero().squeeze(1)
    if idx.numel():
        x.index_copy_(0, idx, fn(x.index_select(0, idx), *(p.index_select(0, idx) for p in params)))


def apply_op(images: Tensor, op: Tensor, magnitude: Tensor, negate: Tensor, bicubic: Tensor,
             fill: Sequence[int], translate_pct: float = 0.45, active: Tensor | None = None) -> Tensor:
    """One RandAugment layer: image i gets ``OPS[op[i]]`` at ``magnitude[i]`` (float64, timm's
    scale) with its argument negated where ``negate[i]`` (rotate, shear, translate) and PIL's
    bicubic filter where ``bicubic[i]`` (else bilinear), if ``active[i]`` (default all).
    uint8 (B, 3, H, W) -> uint8, exactly timm's ``AugmentOp`` with that level on each image."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise TypeError(f"RandAugment needs uint8 (B, 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
    dev = images.device
    op, magnitude = op.to(dev), magnitude.to(dev, torch.float64)
    negate, bicubic = negate.to(dev), bicubic.to(dev)
    active = torch.ones_like(op, dtype=torch.bool) if active is None else active.to(dev)
    fill_t = torch.as_tensor(list(fill), dtype=torch.uint8, device=dev)
    h, w = images.shape[-2:]
    member = torch.zeros(len(OPS), dtype=torch.int8, device=dev)
    member[[_I[n] for n in _LUT_OPS]] = 1
    member[[_I["Color"], _I["Sharpness"]]] = 2
    member[[_I[n] for n in _AFFINE_OPS]] = 3
    family = torch.where(active, member[op], 0)

    def lut(x, o, m):
        table = _point_luts(x, o, m)
        return table.gather(2, x.reshape(*x.shape[:2], -1).long()).view_as(x).to(torch.uint8)

    def affine(cubic):
        return lambda x, o, m, s: _affine(x, _affine_matrices(o, m, s, h, w, translate_pct), cubic, fill_t)

    x = images.clone()
    _update_(x, family == 1, lut, op, magnitude)
    _update_(x, family == 2, _colour_sharpness, op, magnitude)
    _update_(x, (family == 3) & ~bicubic, affine(False), op, magnitude, negate)
    _update_(x, (family == 3) & bicubic, affine(True), op, magnitude, negate)
    return x


def rand_augment(images: Tensor, fill: Sequence[int], num_ops: int = 2, magnitude: float = 9,
                 magnitude_std: float = 1.0, prob: float = 0.5, magnitude_max: float | None = None,
                 interpolation: str = "random", translate_pct: float = 0.45,
                 generator: torch.Generator | None = None) -> Tensor:
    """timm's RandAugment (``rand-m{magnitude}-n{num_ops}-mstd{magnitude_std}``, ``p`` =
    ``prob``, ``mmax`` = ``magnitude_max``) on each image of a uint8 (B, 3, H, W) batch with
    fill colour ``fill`` (``fill_colour(mean)``): the draws of ``draw``, then ``num_ops``
    layers of ``apply_op``. Deterministic given ``generator`` (on the images' device)."""
    d = draw(len(images), num_ops, magnitude, magnitude_std, prob, magnitude_max, interpolation,
             generator, images.device)
    x = images
    for k in range(num_ops):
        x = apply_op(x, d.op[k], d.magnitude[k], d.negate[k], d.bicubic[k], fill, translate_pct, d.apply[k])
    return x
