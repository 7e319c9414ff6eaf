"""Measurements: a role's number in the result tables, as sums over its units (test images,
Hessian mini-batches) that the effect bootstrap resamples (`vitprobe.claims.effects`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd


class Missing(Exception):
    """A claim cannot be scored: what it needs is not in the config or the tables."""


@dataclass
class Measure:
    """One run's number as Σ num / Σ den over its units (ids), units resampled jointly with
    every other measure of the same `space`; or, with `statistic`, statistic(w) for unit
    weights w (replicates, units): a number that is no ratio of sums (a distance between
    pooled densities), w all ones for the point estimate."""
    space: str
    ids: np.ndarray
    num: np.ndarray
    den: np.ndarray
    statistic: Callable | None = None


@dataclass
class Quantity:
    """A role's number at one fraction, kernel size and epoch: the mean over its seeds."""
    label: str
    measures: list[Measure] = field(default_factory=list)
    unit: str = ""


def _rows(table: pd.DataFrame | None, name: str, role: dict, *, kernel=0, fraction=1.0, epoch=None, what=""):
    """The rows of one role's runs (all seeds) at `epoch` (None: the latest in the table)."""
    if table is None:
        raise Missing(f"needs table {name} (its probe in the config){what}")
    rows = table[(table["model"] == role["model"]) & (table["kernel_size"] == kernel) &
                 ((table["fraction"] - fraction).abs() < 1e-9)]
    if rows.empty:
        raise Missing(f"needs {name} rows of {role['model']}" + (f" (k={kernel})" if kernel else "") +
                      (f" at fraction {fraction:g}" if fraction != 1 else "") + what)
    at = int(rows["epoch"].max()) if epoch is None else epoch
    rows = rows[rows["epoch"] == at]
    if rows.empty:
        raise Missing(f"needs {name} of {role['model']} at epoch {epoch}" +
                      (what or f" (probes.{name.split('_')[0]}.epochs)"))
    return rows


def _per_seed(rows: pd.DataFrame, space: str, unit: str, value: Callable[[pd.DataFrame], pd.Series]) -> list[Measure]:
    out = []
    for _, g in rows.groupby("seed", sort=True):
        per = value(g)  # a Series indexed by unit id: the unit's value (a mean over the unit's rows)
        per = per.dropna()
        out.append(Measure(space, per.index.to_numpy(), per.to_numpy(float), np.ones(len(per))))
    return out


def error_of(t, role, label, **at) -> Quantity:
    """Test error (%), over the test images of eval_images."""
    rows = _rows(t.get("eval_images"), "eval_images", role, **at)
    return Quantity(label, _per_seed(rows, "test images", "image",
                                     lambda g: 100.0 * (~g.set_index("image")["correct"].astype(bool))), "%")


def _nep_quantity(rows: pd.DataFrame, label: str) -> Quantity:
    """NEP (%) of `rows`' eigenvalues pooled over mini-batches, per run and seed: a ratio per
    batch (negatives / eigenvalues), the batches of a run resampled together."""
    out = []
    for (run, seed), g in rows.groupby(["run", "seed"], sort=True):
        per = g.groupby("batch")["eigenvalue"]
        out.append(Measure(f"mini-batches|{run} e{int(g['epoch'].iloc[0])}", per.size().index.to_numpy(),
                           100.0 * per.apply(lambda v: (v < 0).sum()).to_numpy(float), per.size().to_numpy(float)))
    return Quantity(label, out, "%")


def nep_of(t, role, label, **at) -> Quantity:
    """NEP (%) of the Hessian spectrum pooled over mini-batches: a ratio per batch."""
    return _nep_quantity(_rows(t.get("hessian"), "hessian", role, **at), label)


def _map_table(t, items: str, summary: str, role, **at) -> pd.DataFrame:
    rows = _rows(t.get(items), items, role, **at)
    kinds = t.get(summary)
    if kinds is None:
        raise Missing(f"needs table {summary}")
    meta = kinds[["run", "epoch", "map_index", "kind"]].drop_duplicates()
    return rows.merge(meta, on=["run", "epoch", "map_index"], how="left")


def _high_freq(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (map, image): the log amplitude at the map's highest frequency (NaN for maps with
    only frequency 0), wide: images x maps in forward order."""
    top = rows.groupby("map_index")["freq"].transform("max")
    high = rows[(rows["freq"] == top) & (top > 0)]
    return high.pivot_table(index="image", columns="map_index", values="log_amplitude")


def high_freq_rise(t, role, label, **at) -> Quantity:
    """Δ log amplitude at the highest frequency, last feature map (with one) minus first."""
    rows = _map_table(t, "fourier_images", "fourier", role, **at)

    def value(g):
        wide = _high_freq(g).dropna(axis=1, how="all")
        if wide.shape[1] < 2:
            raise Missing(f"needs two feature maps of {role['model']} with a high frequency")
        return wide.iloc[:, -1] - wide.iloc[:, 0]
    return Quantity(label, _per_seed(rows, "test images (the Fourier sample)", "image", value), "Δ log amplitude")


def _step_change(wide: pd.DataFrame, kinds: dict, kind: str, role) -> pd.Series:
    """Per image: the mean over maps of `kind` of (value of the map − value of the map before)."""
    cols = list(wide.columns)
    steps = [(c, cols[i - 1]) for i, c in enumerate(cols) if i and kinds.get(c) == kind]
    if not steps:
        raise Missing(f"needs {kind} feature maps of {role['model']}")
    return sum(wide[c] - wide[p] for c, p in steps) / len(steps)


def high_freq_step(t, role, label, kind: str, **at) -> Quantity:
    """Per map of `kind`: how much it changes the high-frequency Δ log amplitude of the map before."""
    rows = _map_table(t, "fourier_images", "fourier", role, **at)

    def value(g):
        kinds = dict(zip(g["map_index"], g["kind"]))
        return _step_change(_high_freq(g).dropna(axis=1, how="all"), kinds, kind, role)
    return Quantity(label, _per_seed(rows, "test images (the Fourier sample)", "image", value), "Δ log amplitude")


def variance_step(t, role, label, kind: str, **at) -> Quantity:
    """Per map of `kind`: how much it changes the feature-map variance of the map before."""
    rows = _map_table(t, "variance_images", "variance", role, **at)

    def value(g):
        kinds = dict(zip(g["map_index"], g["kind"]))
        wide = g.pivot_table(index="image", columns="map_index", values="variance").dropna(axis=1, how="all")
        return _step_change(wide, kinds, kind, role)
    return Quantity(label, _per_seed(rows, "test images (the variance sample)", "image", value), "variance")


def noise_change(t, role, label, low_freq: float = 0.5, **at) -> Quantity:
    """Accuracy change (pp) under band noise, mean over the bands at frequencies ≥ 0.5π, per image."""
    rows = _rows(t.get("robustness_images"), "robustness_images", role, **at)
    rows = rows[rows["freq"] >= low_freq - 1e-9]
    return Quantity(label, _per_seed(rows, "test images (the band-noise sample)", "image", lambda g: 100.0 * g.assign(
        d=g["correct"].astype(float) - g["clean_correct"].astype(float)).groupby("image")["d"].mean()), "pp")


def corrupted_accuracy(t, role, label, **at) -> Quantity:
    """Mean accuracy (%) over the corruptions and severities of CIFAR-C, per image."""
    rows = _rows(t.get("corruption_images"), "corruption_images", role, **at)
    from vitprobe.data.cifar_c import CORRUPTIONS  # torchvision: only when CIFAR-C was probed
    rows = rows[rows["corruption"].isin(CORRUPTIONS)]
    return Quantity(label, _per_seed(rows, "CIFAR-C test images", "image",
                                     lambda g: 100.0 * g.groupby("image")["correct"].mean()), "%")


def _block_kinds(t, role, **at) -> pd.DataFrame:
    summary = _rows(t.get("hessian_blocks_summary"), "hessian_blocks_summary", role, **at)
    return summary[["run", "seed", "epoch", "block", "kind", "msa"]]


def block_nep_of(t, role, label, kinds: tuple[str, ...], **at) -> Quantity:
    """NEP (%) of the eigenvalues of the blocks of `kinds` (hessian_blocks), pooled over
    those blocks and the mini-batches: a ratio per batch."""
    rows = _rows(t.get("hessian_blocks"), "hessian_blocks", role, **at)
    rows = rows.merge(_block_kinds(t, role, **at), on=["run", "seed", "epoch", "block"], how="left")
    rows = rows[rows["kind"].isin(kinds)]
    if rows.empty:
        raise Missing(f"needs blocks of kind {'/'.join(kinds)} in hessian_blocks of {role['model']}")
    return _nep_quantity(rows, label)


def cka_statistic_of(t, role, label, statistic_of: Callable, **at) -> Quantity:
    """A statistic of a model's mini-batch CKA (`vitprobe.probes.cka.stage_contrast` or
    `far_similarity`: a function of the mini-batches' HSIC), the mini-batches resampled."""
    batches = _rows(t.get("cka_batches"), "cka_batches", role, **at)
    maps = _rows(t.get("cka_maps"), "cka_maps", role, **at)
    out = []
    for (run, seed), g in batches.groupby(["run", "seed"], sort=True):
        try:
            statistic, ids = statistic_of(g, maps[(maps["run"] == run) & (maps["seed"] == seed)])
        except ValueError as exc:
            raise Missing(f"{role['model']}: {exc} (its feature maps allow no such pair)") from None
        out.append(Measure(f"mini-batches|{run} e{int(g['epoch'].iloc[0])}", ids, np.zeros(len(ids)), np.ones(len(ids)),
                           statistic))
    return Quantity(label, out, "CKA")


def heterogeneity_of(t, role, label, **at) -> Quantity:
    """Mean Jensen-Shannon distance between the blocks' densities pooled over the
    mini-batches (hessian_blocks_heterogeneity.mean_js), the batches resampled."""
    from vitprobe.probes.hessian.heterogeneity import pooled_mean_js  # the probe's own definition (numpy)
    dens = _rows(t.get("hessian_blocks_density"), "hessian_blocks_density", role, **at)
    het = _rows(t.get("hessian_blocks_heterogeneity"), "hessian_blocks_heterogeneity", role, **at)
    out = []
    for (run, seed), g in dens.groupby(["run", "seed"], sort=True):
        grid = het[(het["run"] == run) & (het["seed"] == seed)].iloc[0]
        statistic, batches = pooled_mean_js(g, grid)
        out.append(Measure(f"mini-batches|{run} e{int(g['epoch'].iloc[0])}", batches, np.zeros(len(batches)),
                           np.ones(len(batches)), statistic))
    return Quantity(label, out, "JS distance")
