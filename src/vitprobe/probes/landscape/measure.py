"""How the landscape probe measures (torch): `compute` on any model, `run` on a pipeline run.
What it computes, its tables and their intervals: `vitprobe.probes.landscape`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from vitprobe.analysis.inputs import as_batches
from vitprobe.models.losses import nll, trainable
from vitprobe.models.modes import eval_mode
from vitprobe.probes import no_progress


@torch.no_grad()
def _where(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def filter_normalized_direction(model: nn.Module, generator: torch.Generator | None = None) -> list[Tensor]:
    """One random direction, a tensor per trainable parameter.

    Parameters with >= 2 dims: d ~ N(0, I), then each filter d[j] (slice along the first dim:
    a conv output channel, a row of a linear weight) rescaled to ||θ[j]|| (Frobenius), i.e.
    d[j] · ||θ[j]|| / (||d[j]|| + 1e-10). 1-D parameters (biases, norm weights): zero
    (Li et al.'s 'ignore biasbn'). d is drawn on the generator's device (the CPU's by
    default) and moved to the parameter's: the same direction on every device.
    """
    directions = []
    for p in trainable(model):
        if p.ndim <= 1:
            directions.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype, device=_where(generator)).to(p.device)
        d_norm = d.flatten(1).norm(dim=1)
        p_norm = p.detach().flatten(1).norm(dim=1)
        scale = (p_norm / (d_norm + 1e-10)).view(-1, *([1] * (p.ndim - 1)))
        directions.append(d * scale)
    return directions


RELEASE_SKIP = ("pos_embed", "relative_position")  # the notebook's kws: zeroed directions


@torch.no_grad()
def release_direction(model: nn.Module, generator: torch.Generator | None = None,
                      skip: Sequence[str] = RELEASE_SKIP) -> list[Tensor]:
    """One random direction as the release draws it, a tensor per trainable parameter p:

    d ~ N(0, I) shaped like p, then d · ||p||_0 / (||d||_0 + 1e-7), where ||t||_0 is the norm
    over dim 0 (``torch.norm(t, dim=0, keepdim=True)``: one norm per position of the other
    dims, across output channels — the release's ``normalize_filter``, not Li et al.'s per
    filter norm); zero for parameters of < 2 dims (``ignore_bn``) and for parameters whose
    name contains one of ``skip`` (``ignore_kw``: positional embeddings, relative-position
    tables). A normal draw is made for every parameter, in order, zeroed ones included, on
    the generator's device (the CPU's by default), then moved to the parameter's.
    """
    directions = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype, device=_where(generator)).to(p.device)
        if p.ndim < 2 or any(key in name for key in skip):
            directions.append(torch.zeros_like(p))
            continue
        scale = p.detach().norm(dim=0, keepdim=True) / (d.norm(dim=0, keepdim=True) + 1e-7)
        directions.append(d * scale)
    return directions


@dataclass(frozen=True)
class Style:
    """One definition of the landscape: its directions, its l2 term and the loss built from them."""
    direction: Callable[..., list[Tensor]]
    l2: Callable[[list[Tensor]], float]
    wd_factor: float  # loss = nll + wd_factor · weight_decay · l2
    formula: str      # for logs


STYLES = {
    "release": Style(release_direction, lambda ps: float(sum(p.detach().double().norm().item() for p in ps)),
                     1.0, "NLL + wd·Σ‖p‖₂"),
    "li2018": Style(filter_normalized_direction, lambda ps: float(sum(p.detach().double().pow(2).sum().item()
                                                                       for p in ps)),
                    0.5, "NLL + wd/2·‖θ‖²"),
}


def landscape_style(name: str) -> Style:
    if name not in STYLES:
        raise ValueError(f"landscape style must be one of {', '.join(STYLES)}, got {name!r}")
    return STYLES[name]


def grid_1d(radius: float, n: int) -> np.ndarray:
    """n evenly spaced coordinates in [-radius, radius], symmetric, 0 exact for odd n."""
    xs = np.linspace(-radius, radius, n)
    return (xs - xs[::-1]) / 2


def grid_2d(radius: float, n: int) -> list[tuple[float, float]]:
    """The n x n grid of ``grid_1d`` as (x, y) pairs, x the outer (slow) index."""
    xs = grid_1d(radius, n)
    return [(float(x), float(y)) for x in xs for y in xs]


def _to(t: Tensor, like: Tensor) -> Tensor:
    return t.to(device=like.device, dtype=like.dtype) if t.is_floating_point() else t.to(like.device)


@torch.no_grad()
def loss_landscape(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]],
                   directions: Sequence[Sequence[Tensor]],
                   coords: np.ndarray | Sequence[Sequence[float]] | Sequence[float],
                   weight_decay: float = 0.0, progress=no_progress, style: str = "release",
                   loss_fn: Callable = nll) -> pd.DataFrame:
    """Loss at θ + Σ a_i d_i for every coordinate a in ``coords`` (see the module docstring),
    with the l2 term and loss of ``style`` (the directions are given; draw them with the
    style's ``direction``).

    ``directions``: k directions (k = 1 or 2), each a list of tensors shaped like the trainable
    parameters. ``coords``: shape (n,) or (n, k), or a list of k-tuples. Floating inputs are
    cast to the parameters' dtype; targets go through ``loss_fn`` (float targets are soft
    labels). The parameters (bit-exact) and the train/eval mode are restored afterwards.
    Columns: x (and y for k = 2), nll, l2, loss; one row per coordinate, in order.
    ``progress`` wraps the loop over the coordinates (an (n, k) array), e.g. in a progress bar.
    """
    definition = landscape_style(style)
    params = trainable(model)
    if not params:
        raise ValueError("model has no parameters with requires_grad=True")
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 1:
        coords = coords[:, None]
    k = len(directions)
    if k not in (1, 2) or coords.ndim != 2 or coords.shape[1] != k:
        raise ValueError(f"need 1 or 2 directions and coordinates of shape (n, {k}); "
                         f"got {k} directions and coordinates of shape {coords.shape}")
    for d in directions:
        if len(d) != len(params) or any(t.shape != p.shape for t, p in zip(d, params)):
            raise ValueError("each direction must hold one tensor per trainable parameter, shaped like it")
    batches = [(_to(x, params[0]), y.to(params[0].device)) for x, y in batches]
    if not batches:
        raise ValueError("no batches given")

    origin = [p.detach().clone() for p in params]
    rows = []
    with eval_mode(model):
        try:
            for a in progress(coords):
                for j, (p, p0) in enumerate(zip(params, origin)):
                    p.copy_(p0)
                    for a_i, d in zip(a, directions):
                        p.add_(d[j].to(p), alpha=float(a_i))
                nll = float(np.mean([loss_fn(model(x), y).item() for x, y in batches]))
                l2 = definition.l2(params)
                row = dict(zip("xy", map(float, a)))
                row.update(nll=nll, l2=l2, loss=nll + definition.wd_factor * weight_decay * l2)
                rows.append(row)
        finally:
            for p, p0 in zip(params, origin):
                p.copy_(p0)
    return pd.DataFrame(rows, columns=[*"xy"[:k], "nll", "l2", "loss"])


def compute(model: nn.Module, batches, *, weight_decay: float = 0.0, loss: Callable | None = None,
            style: str = "release", radius: float = 1.0, points_1d: int = 21, points_2d: int = 0, seed: int = 0,
            progress=None) -> pd.DataFrame:
    """Table landscape: the loss along one (a line of `points_1d`) and two (a `points_2d`²
    plane) random directions of `style`, drawn from a CPU generator seeded `seed`
    (the same directions on every device); `batches`: (inputs, targets) pairs, or one pair. `progress(what)` gives
    the progress wrapper of each grid ("1d grid points", "2d grid points")."""
    if not points_1d and not points_2d:
        raise ValueError("points_1d and points_2d are both 0: no points; allowed: at least one of them >= 1")
    definition = landscape_style(style)
    params = trainable(model)
    dev = params[0].device if params else torch.device("cpu")
    batches = [(x.to(dev), y.to(dev)) for x, y in as_batches(batches)]
    gen = torch.Generator().manual_seed(seed)
    d1, d2 = definition.direction(model, gen), definition.direction(model, gen)
    loss = nll if loss is None else loss
    bar = progress or (lambda what: no_progress)
    parts = []
    if points_1d:
        parts.append(loss_landscape(model, batches, [d1], grid_1d(radius, points_1d), weight_decay,
                                    progress=bar("1d grid points"), style=style, loss_fn=loss).assign(grid="1d", y=0.0))
    if points_2d:
        parts.append(loss_landscape(model, batches, [d1, d2], grid_2d(radius, points_2d), weight_decay,
                                    progress=bar("2d grid points"), style=style, loss_fn=loss).assign(grid="2d"))
    return pd.concat([part.assign(style=style) for part in parts], ignore_index=True)


def run(model, inputs, settings: dict, log):
    p = settings
    style = landscape_style(p["style"])
    wd = inputs.weight_decay
    grids = [f"{n} points on a line" for n in [p["points_1d"]] if n]
    grids += [f"{n}×{n} points on a plane" for n in [p["points_2d"]] if n]
    log(f"{style.formula} (wd {wd:g}, style {p['style']}) on {p['n_batches']} mini-batches of {p['batch_size']} "
        f"augmented training images at {' and '.join(grids) or 'no points'} along random directions, "
        f"radius {p['radius']:g}")
    batches = list(inputs.augmented_batches(p["n_batches"], p["batch_size"], p["seed"]))
    return compute(model, batches, weight_decay=wd, style=p["style"], radius=p["radius"], points_1d=p["points_1d"],
                   points_2d=p["points_2d"], seed=p["seed"], progress=log.bar)

