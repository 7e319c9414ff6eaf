"""Loss landscapes along random directions (paper Fig. 1a), from the ``landscape`` table.

(a) 1-D: the training loss ``loss`` (NLL + the weight-decay term of the table's ``style``,
    `vitprobe.probes.landscape`) against the coordinate ``x`` along one direction (rows with
    ``grid`` == "1d"), one line per series in x order.
(b) 1-D: the NLL alone (``nll``) on the same line, to separate the data term from the
    weight-decay term (which dominates the level of (a) for large models).
(c) 2-D: one small panel per series with filled contours of ``loss`` over the plane
    (``x``, ``y``; rows with ``grid`` == "2d"), each with its own contour levels (evenly
    spaced round values over that panel's range) and colour bar: the loss's range differs by
    an order of magnitude between families (a shared scale made the ViTs' panels one flat
    colour on the demo), and (a) already compares the series on one axis.

Coordinate 0 is the trained weights. Rows are taken at the figure's ``epoch`` (default: each
series' latest epoch); several seeds are averaged point by point. A series without rows is
named on the figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from vitprobe.figures.panels import epoch_title, grid_rows, label_panels, panel_grid, seed_mean, series_rows
from vitprobe.figures.style import FULL_WIDTH, color, note_missing, paper_style, plt, save

N_LEVELS = 12  # contour bands
CMAP = "viridis"


def series_grids(table: pd.DataFrame, series: list[dict], epoch: int | None):
    """Per present series: (1-D line rows sorted by x, 2-D plane rows sorted by (y, x), epoch),
    seed means of loss, nll and l2 at every grid point."""
    out = {}
    for s in series:
        rows = series_rows(table, s, epoch, one_run=True)
        if not len(rows):
            continue
        line = seed_mean(rows[rows["grid"] == "1d"], ["x"], ["loss", "nll", "l2"])
        plane = seed_mean(rows[rows["grid"] == "2d"], ["y", "x"], ["loss", "nll", "l2"])
        out[s["label"]] = (line, plane, int(rows["epoch"].iloc[0]))
    return out


def shared_levels(planes: list[pd.DataFrame], n: int = N_LEVELS) -> np.ndarray:
    """Contour levels shared by all planes: at most n + 1 evenly spaced round values from at
    or below the lowest to at or above the highest loss of all planes."""
    values = np.concatenate([p["loss"].to_numpy() for p in planes]) if planes else np.array([0.0])
    values = values[np.isfinite(values)]
    lo, hi = (values.min(), values.max()) if len(values) else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return MaxNLocator(n).tick_values(lo, hi)


def plane_arrays(plane: pd.DataFrame):
    """X, Y coordinate vectors and Z[y, x] of the loss (NaN where a point is missing)."""
    z = plane.pivot(index="y", columns="x", values="loss").sort_index().sort_index(axis=1)
    return z.columns.to_numpy(float), z.index.to_numpy(float), z.to_numpy(float)


STYLE_TITLES = {"release": "the release's definition", "li2018": "Li et al. 2018"}


def style_title(table: pd.DataFrame) -> str:
    """How the table's rows were computed, for the title; several styles are named together."""
    styles = sorted(set(table["style"])) if "style" in table and len(table) else []
    return " + ".join(STYLE_TITLES.get(s, s) for s in styles) or "no data"


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    data = series_grids(tables["landscape"], series, spec.get("epoch"))
    colors = {s["label"]: color(i) for i, s in enumerate(series)}
    planes = {k: v[1] for k, v in data.items() if len(v[1])}
    n_panels = max(len(planes), 1)
    rows_c = grid_rows(n_panels)
    with paper_style():
        fig = plt.figure(figsize=(FULL_WIDTH, 2.4 + 1.9 * rows_c), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[2.4, 1.9 * rows_c])

        ax_loss, ax_nll = top.subplots(1, 2, sharex=True)
        has_line = any(len(v[0]) for v in data.values())
        for label, (line, _, _) in data.items():
            if len(line):
                ax_loss.plot(line["x"], line["loss"], color=colors[label], label=label)
                ax_nll.plot(line["x"], line["nll"], color=colors[label], label=label)
        for ax, title, ylabel in [(ax_loss, "(a) NLL + L2 along a random direction", "NLL + L2"),
                                  (ax_nll, "(b) NLL along the same direction", "NLL (nats)")]:
            ax.set_title(title)
            ax.set_xlabel("Coordinate along direction 1")
            ax.set_ylabel(ylabel)
            ax.axvline(0, color="0.6", lw=0.6, ls=":", zorder=0)
            if not has_line:
                ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.5")
        if ax_loss.get_legend_handles_labels()[0]:
            top.legend(*ax_loss.get_legend_handles_labels(), loc="outside right center")
        top.suptitle(epoch_title(f"Loss landscape ({style_title(tables['landscape'])}; 0 = trained weights)",
                                 {k: v[2] for k, v in data.items()}))

        axes_c = panel_grid(bottom, n_panels, min_cols=3, sharex=True, sharey=True)
        for ax, (label, plane) in zip(axes_c, planes.items()):
            x, y, z = plane_arrays(plane)
            ax.set_title(f"(c) {label}: NLL + L2" if ax is axes_c[0] else label)
            if len(x) < 2 or len(y) < 2:
                ax.text(0.5, 0.5, "too few points", transform=ax.transAxes, ha="center", va="center", color="0.5")
                continue
            levels = shared_levels([plane])
            filled = ax.contourf(x, y, z, levels=levels, cmap=CMAP)
            bottom.colorbar(filled, ax=ax, shrink=0.8, pad=0.02).ax.tick_params(labelsize=6)
            ax.contour(x, y, z, levels=levels, colors="white", linewidths=0.3, alpha=0.6)
            ax.plot([0], [0], marker="+", color="white", ms=5, mew=1.0, label="_trained")
            ax.set_aspect("equal", adjustable="box")
        if not planes:
            axes_c[0].text(0.5, 0.5, "no 2-D data", transform=axes_c[0].transAxes, ha="center", va="center",
                           color="0.5")
        label_panels(axes_c, "Direction 1", "Direction 2")
        note_missing(fig, [s["label"] for s in series if s["label"] not in data])
        save(fig, out)
    return fig
