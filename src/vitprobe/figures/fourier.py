"""Fourier analysis of feature maps (paper Fig. 2a and 8), from the ``fourier`` table.

(a) One small panel per series: the relative log amplitude curve of every feature map
    (x = ``freq``, frequency in units of π; y = ``log_amplitude``, the log amplitude minus its
    value at frequency 0), each curve coloured by the map's normalized depth (``depth``) on a
    sequential colormap with a shared "normalized depth" colorbar.
(b) One panel: Δ log amplitude at the highest frequency (``high_freq_delta``) against
    normalized depth (``depth``), one line per series in map order (``map_index``). Markers
    show the map ``kind``: filled = after an MSA sub-block (kind "msa"), open = any other map
    (embed, stem, mlp, conv, pool, mixer_*). The depths of the MSA maps of the first series
    that has any are shaded as light grey bands. Maps without a value (NaN: side 1 or 2, no
    frequency above 0, see `vitprobe.probes.fourier`) get no point, and the line joins the maps
    that have one; a series with no such map keeps its legend entry, marked "(no map above
    2x2 px)". A band in the series' colour over each map's interval (`vitprobe.figures.bars`):
    with several seeds the t-interval of the per-seed values, with one the run's bootstrap
    over images (``high_freq_delta_low``/``_high``); the note under the figure says which.

Rows are taken at the figure's ``epoch`` (default: each series' latest epoch); several seeds
of a run are averaged. A series without rows is named on the figure (``note_missing``).
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap, Normalize

from vitprobe.figures.bars import IMAGES, level_of, seed_profile
from vitprobe.figures.panels import (
    draw_depth_profile,
    epoch_title,
    finish,
    grid_rows,
    label_panels,
    panel_grid,
    seed_mean,
    series_rows,
)
from vitprobe.figures.style import FULL_WIDTH, color, paper_style, plt

# Sequential, perceptually uniform; the pale yellow end of viridis is cut off so that the
# deepest maps stay visible on white.
DEPTH_CMAP = ListedColormap(mpl.colormaps["viridis"](np.linspace(0.0, 0.9, 256)), name="viridis_depth")
DEPTH_NORM = Normalize(0.0, 1.0)
NO_VALUE = "(no map above 2x2 px)"  # legend mark of a series whose every high-frequency value is NaN


def series_data(table: pd.DataFrame, series: list[dict], epoch: int | None, level: float):
    """Per present series: (curves, high-frequency profile, epoch, the profile's Stats).
    `curves` has one row per (map, frequency) with the seed-mean log amplitude; the profile
    one row per map with its interval (`seed_profile`)."""
    data = {}
    for s in series:
        rows = series_rows(table, s, epoch, one_run=True)
        if not len(rows):
            continue
        curves = seed_mean(rows, ["map_index", "freq"], ["log_amplitude"], ("depth", "kind"))
        profile, found = seed_profile(rows, ["map_index"], "high_freq_delta", level, IMAGES, ("depth", "kind"))
        profile = profile.dropna(subset=["high_freq_delta"])  # maps of side <= 2: no value, no point
        data[s["label"]] = (curves, profile, int(rows["epoch"].iloc[0]), found)
    return data


def draw_curves(ax, curves: pd.DataFrame) -> None:
    for index, m in curves.groupby("map_index", sort=True):
        m = m.sort_values("freq")
        ax.plot(m["freq"], m["log_amplitude"], color=DEPTH_CMAP(DEPTH_NORM(m["depth"].iloc[0])), lw=0.9,
                gid=f"map {index}")


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    level = level_of(spec, tables["fourier"])
    data = series_data(tables["fourier"], series, spec.get("epoch"), level)
    colors = {s["label"]: color(i) for i, s in enumerate(series)}
    n_panels = max(len(data), 1)
    rows_a = grid_rows(n_panels)
    with paper_style():
        fig = plt.figure(figsize=(FULL_WIDTH, 1.75 * rows_a + 2.5), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.75 * rows_a + 0.3, 2.2])
        axes_a = panel_grid(top, n_panels, sharex=True, sharey=True)
        for ax, (label, (curves, *_)) in zip(axes_a, data.items()):
            draw_curves(ax, curves)
            ax.set_title(label)
        label_panels(axes_a, "Frequency (units of π)", "Δ log amplitude")
        for ax in axes_a:
            ax.set_xlim(0, 1)
            ax.axhline(0, color="0.6", lw=0.6, ls=":", zorder=0)
        if not data:
            axes_a[0].text(0.5, 0.5, "no data", transform=axes_a[0].transAxes, ha="center", va="center", color="0.5")
        sm = mpl.cm.ScalarMappable(norm=DEPTH_NORM, cmap=DEPTH_CMAP)
        top.colorbar(sm, ax=axes_a, label="Normalized depth", shrink=0.9, aspect=25 * rows_a)
        top.suptitle(epoch_title("(a) Relative log amplitude of Fourier-transformed feature maps",
                                 {k: v[2] for k, v in data.items()}))

        ax_b = bottom.subplots()
        profiles = {(k if len(v[1]) else f"{k} {NO_VALUE}"): v[1] for k, v in data.items()}
        colors |= {f"{k} {NO_VALUE}": colors[k] for k in data}
        handles = draw_depth_profile(ax_b, profiles, "high_freq_delta", colors)
        ax_b.set_ylabel("Δ log amplitude\nat high frequency")
        ax_b.set_title("(b) Δ log amplitude at the highest frequency vs depth")
        if handles:
            ax_b.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5))
        finish(fig, level, {"Δ": [st for v in data.values() for st in v[3]]},
               [s["label"] for s in series if s["label"] not in data], out, kind="bands in (b)")
    return fig
