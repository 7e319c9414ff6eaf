"""Feature-map similarity (paper Fig. 10a), from the ``cka`` and ``cka_maps`` tables.

One heatmap per series: the mini-batch CKA (`vitprobe.probes.cka`) between every pair of the
model's feature maps, map index on both axes (the stem or embedding first, at the bottom left),
colour from 0 to 1 on one shared scale. The first map of every stage is a tick: "E" the
stem/embedding, "P" a pooling or subsampling map; thin white lines separate the stages, so
that a block per stage shows as a bright square on the diagonal. Axes: the maps in forward
order. Several seeds of a run are
averaged (the arithmetic mean of the CKA). A heatmap has no room for intervals: the note under
the figure gives, per series, the median width of the cells' intervals (``cka_low``/
``_high``, with one seed the bootstrap over mini-batches; with several the t-interval over
seeds) and the mean CKA within and across stages with theirs is a claim of the scorecard.

Rows are taken at the figure's ``epoch`` (default: each series' latest epoch). A series
without rows is named on the figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitprobe.figures.bars import level_of, seed_profile
from vitprobe.figures.panels import epoch_title, panel_grid, series_rows
from vitprobe.figures.style import FULL_WIDTH, note_bars, note_missing, paper_style, plt, save

PER_ROW = 4


def matrix(cka: pd.DataFrame, n: int, column: str = "cka") -> np.ndarray:
    """(n, n) symmetric matrix of `column` from the rows of pairs map_a <= map_b."""
    m = np.full((n, n), np.nan)
    a, b = cka["map_a"].to_numpy(int), cka["map_b"].to_numpy(int)
    m[a, b] = m[b, a] = cka[column].to_numpy(float)
    return m


def series_matrices(tables: dict[str, pd.DataFrame], series: list[dict], epoch: int | None, level: float):
    """Per present series: (CKA matrix, its maps table, epoch, median interval width, seeds)."""
    out = {}
    for s in series:
        rows = series_rows(tables["cka"], s, epoch, one_run=True)
        maps = series_rows(tables["cka_maps"], s, epoch, one_run=True)
        if not len(rows) or not len(maps):
            continue
        profile, found = seed_profile(rows, ["map_a", "map_b"], "cka", level)
        maps = maps.drop_duplicates("map_index").sort_values("map_index")
        widths = (profile["cka_high"] - profile["cka_low"])[profile["map_a"] != profile["map_b"]] \
            if "cka_low" in profile else pd.Series(dtype=float)
        out[s["label"]] = (matrix(profile, len(maps)), maps, int(rows["epoch"].iloc[0]),
                           float(widths.median()) if widths.notna().any() else float("nan"), rows["seed"].nunique())
    return out


def _draw(ax, m: np.ndarray, maps: pd.DataFrame, title: str):
    image = ax.imshow(m, origin="lower", vmin=0.0, vmax=1.0, cmap="magma", interpolation="nearest")
    firsts = maps[maps["marker"] != ""]
    ticks, labels = firsts["map_index"].to_numpy(), firsts["marker"].tolist()
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks(ticks, labels)
    stage = maps["stage"].to_numpy()
    for i in maps["map_index"].to_numpy()[1:][stage[1:] != stage[:-1]]:  # every stage boundary, E's too
        ax.axvline(i - 0.5, color="white", lw=0.6)
        ax.axhline(i - 0.5, color="white", lw=0.6)
    ax.set_title(title)
    ax.tick_params(length=2)
    return image


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    level = level_of(spec, tables["cka"])
    data = series_matrices(tables, series, spec.get("epoch"), level)
    with paper_style():
        per_row = min(max(len(data), 1), PER_ROW)
        rows = -(-max(len(data), 1) // per_row)
        fig = plt.figure(figsize=(min(FULL_WIDTH, 1.9 * per_row + 0.6), 2.0 * rows + 0.5), layout="constrained")
        axes = panel_grid(fig, len(data), per_row)
        image = None
        for ax, (label, (m, maps, _, _, _)) in zip(axes, data.items()):
            image = _draw(ax, m, maps, label)
        if image is None:
            axes[0].text(0.5, 0.5, "no data", transform=axes[0].transAxes, ha="center", va="center", color="0.5")
            axes[0].set_axis_off()
        else:
            fig.colorbar(image, ax=axes, shrink=0.8, label="mini-batch CKA")
        fig.suptitle(epoch_title("Feature map similarity (E: stem/embedding, P: pooling/subsampling)",
                                 {k: v[2] for k, v in data.items()}), fontsize=8)
        widths = "; ".join(f"{k} {v[3]:.3f}" for k, v in data.items() if not np.isnan(v[3]))
        how = (f"cells: {level:.0%} intervals, with one seed the bootstrap over mini-batches, with several the "
               f"t-interval over seeds; median width per series: {widths}" if widths else
               "no intervals: fewer than 5 mini-batches")
        note_bars(fig, how)
        note_missing(fig, [s["label"] for s in series if s["label"] not in data])
        save(fig, out)
    return fig
