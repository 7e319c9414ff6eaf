"""Heterogeneity of the block spectra (`vitprobe.probes.hessian_blocks`; Zhang et al. 2024,
"Why Transformers Need Adam: A Hessian Perspective"). numpy and pandas only.

**Heterogeneity** (Zhang et al.): each block's density, pooled over the mini-batches, on one
grid for the checkpoint (its nodes' range, padded by 3σ, `density_grid` points; each node a
Gaussian of σ = `density_sigma` times the range, normalised to a distribution over the grid);
the Jensen-Shannon distance (base 2, in [0, 1]: the square root of the divergence) of every
pair of blocks, and their mean. Intervals: the expanded percentile bootstrap over the
mini-batches, the pooled densities recomputed per resample.
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
import pandas as pd


def density_grid(density: pd.DataFrame, sigma: float, points: int) -> tuple[np.ndarray, float]:
    """(grid, σ): `points` points over the nodes' range padded by 3σ, σ = sigma·range (1 if
    every node is the same)."""
    lo, hi = float(density["node"].min()), float(density["node"].max())
    width = sigma * (hi - lo) if hi > lo else 1.0
    return np.linspace(lo - 3 * width, hi + 3 * width, points), width


def batch_densities(density: pd.DataFrame, blocks: list[str], grid: np.ndarray, width: float):
    """(batches, D): D[b, j] is block j's smoothed density on batch b, a distribution over
    `grid` (sums to 1); batches sorted."""
    batches = sorted(density["batch"].unique())
    D = np.zeros((len(batches), len(blocks), len(grid)))
    pos = {b: i for i, b in enumerate(batches)}
    col = {n: j for j, n in enumerate(blocks)}
    for (block, batch), g in density.groupby(["block", "batch"], sort=False):
        z = (grid[None, :] - g["node"].to_numpy()[:, None]) / width
        D[pos[batch], col[block]] = (np.exp(-0.5 * z * z) * g["weight"].to_numpy()[:, None]).sum(0)
    D /= np.maximum(D.sum(2, keepdims=True), 1e-300)
    return batches, D


def _normalized(P: np.ndarray) -> np.ndarray:
    """Each block's pooled density made a distribution again (a block absent from some
    batches pools fewer of them)."""
    return P / np.maximum(P.sum(-1, keepdims=True), 1e-300)


def js_distances(P: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Jensen-Shannon distances (base 2) between rows of distributions P (..., blocks, grid)
    for each (a, b) of `pairs`: shape (..., pairs)."""
    # Not scipy.spatial.distance.jensenshannon: it takes the square root of a divergence that
    # rounding can make negative, and so gives NaN for about half of all pairs of nearly equal
    # densities (and for an all-zero one); this clips the divergence to [0, 1] first.
    a, b = P[..., [i for i, _ in pairs], :], P[..., [j for _, j in pairs], :]
    m = (a + b) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_a = np.where(a > 0, a * np.log2(a / m), 0.0).sum(-1)
        kl_b = np.where(b > 0, b * np.log2(b / m), 0.0).sum(-1)
    return np.sqrt(np.clip((kl_a + kl_b) / 2, 0.0, 1.0))


def pooled_js(D: np.ndarray, w: np.ndarray, pairs) -> np.ndarray:
    """(resamples, pairs): the JS distances of the densities D (batches, blocks, grid) pooled
    with batch weights w (resamples, batches), in chunks."""
    out = []
    for chunk in np.array_split(w, max(1, len(w) // 100)):
        out.append(js_distances(_normalized(np.einsum("rb,bjg->rjg", chunk, D)), pairs))
    return np.concatenate(out)


def stored_densities(density: pd.DataFrame, grid_row):
    """(blocks, batches, D, pairs) of one checkpoint's density rows on the grid a table row
    recorded (grid_low, grid_high, grid_points, sigma): `batch_densities` and every block
    pair, in the order `heterogeneity` wrote them."""
    blocks = list(dict.fromkeys(density["block"]))
    grid = np.linspace(grid_row["grid_low"], grid_row["grid_high"], int(grid_row["grid_points"]))
    batches, D = batch_densities(density, blocks, grid, float(grid_row["sigma"]))
    return blocks, batches, D, list(itertools.combinations(range(len(blocks)), 2))


def pooled_mean_js(density: pd.DataFrame, grid_row) -> tuple[Callable, np.ndarray]:
    """(statistic, batches) of one checkpoint's density rows on the grid of its heterogeneity
    row (grid_low, grid_high, grid_points, sigma): statistic(w), for batch weights w
    (resamples, batches in `batches` order), is the mean over block pairs of their JS
    distance, the densities pooled with w; with w all ones, hessian_blocks_heterogeneity's
    mean_js."""
    _, batches, D, pairs = stored_densities(density, grid_row)
    return (lambda w: pooled_js(D, np.atleast_2d(w), pairs).mean(1)), np.asarray(batches)


def heterogeneity(density: pd.DataFrame, blocks: list[str], sigma: float = 0.01, points: int = 401):
    """(hessian_blocks_js, hessian_blocks_heterogeneity) of one checkpoint's density rows."""
    grid, width = density_grid(density, sigma, points)
    batches, D = batch_densities(density, blocks, grid, width)
    pairs = list(itertools.combinations(range(len(blocks)), 2))
    d = js_distances(_normalized(D.sum(0)), pairs)
    on = {"grid_low": float(grid[0]), "grid_high": float(grid[-1]), "grid_points": len(grid), "sigma": width}
    js = pd.DataFrame({"block_a": [blocks[i] for i, _ in pairs], "block_b": [blocks[j] for _, j in pairs],
                       "js_distance": d, **on})
    het = pd.DataFrame([{"n_blocks": len(blocks), "mean_js": float(d.mean()) if len(d) else float("nan"),
                         "n_batches": len(batches), **on}])
    return js, het
