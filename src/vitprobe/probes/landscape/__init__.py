"""Loss landscape along random directions, in two definitions (``STYLES``).

Parameters θ are the model's parameters with ``requires_grad`` (as for the Hessian), in
``model.parameters()`` order; buffers (BatchNorm running statistics) are left untouched. At
coordinates a = (a_1, ..., a_k) the model is evaluated at θ' = θ + Σ_i a_i d_i, in eval mode,
nll = mean over the given batches of loss_fn(model(x), y) (mean NLL, int or soft targets), and

- ``release`` (the paper's release: ops/loss_landscapes.py, ops/norm.py, losslandscape.ipynb):
  directions by ``release_direction``; l2 = Σ_p ||p'||_2 over the parameter tensors (each
  norm unsquared); loss = nll + weight_decay · l2.
- ``li2018`` (Li et al. 2018, "Visualizing the loss landscape of neural nets"): directions by
  ``filter_normalized_direction``; l2 = ||θ'||² (squared); loss = nll + weight_decay / 2 · l2,
  the objective AdamW's decoupled decay corresponds to.

The release perturbs every state-dict entry of >= 2 dims; for our models those are exactly the
trainable >= 2-dim parameters (attention masks are non-persistent buffers, relative-position
index buffers are zeroed by name), so the two agree (tests/probes/test_landscape.py checks it).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from vitprobe.columns import Column
from vitprobe.errors import ConfigError
from vitprobe.probes import Probe

PROBE = Probe(
    "landscape", "loss landscape along two random directions (the release's definition or Li et al.'s)",
    tables={"landscape": [
        Column("style", pa.string(), "", "the definition: release (the paper's code) or li2018"),
        Column("grid", pa.string(), "", "1d (a line along one direction) or 2d (a plane along two)"),
        Column("x", pa.float64(), "", "coordinate along the first random direction"),
        Column("y", pa.float64(), "", "coordinate along the second direction (0 on the 1d line)"),
        Column("nll", pa.float64(), "nats", "mean NLL on the augmented training batches"),
        Column("l2", pa.float64(), "", "release: Σ_p ‖p‖₂ over parameter tensors; li2018: ‖θ'‖² at that point"),
        Column("loss", pa.float64(), "nats", "release: nll + wd · l2; li2018: nll + wd/2 · l2"),
    ]},
    reads=("train",), exact=True,
    tiny={"n_batches": 1, "batch_size": 16, "points_1d": 3, "points_2d": 3, "radius": 0.5})


def headline(df: pd.DataFrame) -> str:
    best = df.loc[df["loss"].idxmin()]
    near = df.loc[(df["x"] ** 2 + df["y"] ** 2).idxmin()]  # the origin itself on odd grids
    at = "origin" if near["x"] == 0 and near["y"] == 0 else f"point nearest the origin ({near['x']:g}, {near['y']:g})"
    return (f"min loss {best['loss']:.4g} at ({best['x']:g}, {best['y']:g}) on the {best['grid']} grid, loss at {at} "
            f"{near['loss']:.4g}")


def check(settings: dict, config: dict) -> None:
    """Before any job: a landscape of no points is no landscape."""
    if not settings["points_1d"] and not settings["points_2d"]:
        raise ConfigError("probes.landscape.points_1d and points_2d: both 0, so there is no point to evaluate; "
                          "allowed: at least one of them >= 1 (or remove probes.landscape)")

