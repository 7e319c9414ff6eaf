"""Feature-map variance against depth (paper Fig. 9), from the ``variance`` table.

One panel: ``variance`` (the variance of a feature map over spatial positions, Bessel
corrected, averaged over images and channels) on a log axis against normalized depth
(``depth``), one line per series in map order (``map_index``). Markers show the map
``kind``: filled = after an MSA sub-block ("msa"), open = any other map; the depths of the
MSA maps of the first series that has any are shaded as light grey bands. Maps without a
value (NaN: one spatial position, 1x1, see `vitprobe.probes.variance`) get no point, and the
line joins the maps that have one; a series with no such map keeps its legend entry, marked
"(every map 1x1)".

Rows are taken at the figure's ``epoch`` (default: each series' latest epoch); several seeds
of a run are averaged (arithmetic mean of the variance). A series without rows is named on
the figure.
"""

from __future__ import annotations

import pandas as pd

from vitprobe.figures.panels import draw_depth_profile, epoch_title, seed_mean, series_rows
from vitprobe.figures.style import COLUMN_WIDTH, color, note_missing, paper_style, plt, save

NO_VALUE = "(every map 1x1)"  # legend mark of a series whose every variance is NaN


def series_profiles(table: pd.DataFrame, series: list[dict], epoch: int | None):
    """Per present series: (one row per map with the seed-mean variance, epoch)."""
    out = {}
    for s in series:
        rows = series_rows(table, s, epoch, one_run=True)
        if len(rows):
            profile = seed_mean(rows, ["map_index"], ["variance"], ("depth", "kind"))
            out[s["label"]] = (profile.dropna(subset=["variance"]),  # 1x1 maps: no value, no point
                               int(rows["epoch"].iloc[0]))
    return out


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    data = series_profiles(tables["variance"], series, spec.get("epoch"))
    colors = {s["label"]: color(i) for i, s in enumerate(series)}
    with paper_style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 3.0), layout="constrained")
        profiles = {(k if len(v[0]) else f"{k} {NO_VALUE}"): v[0] for k, v in data.items()}
        colors |= {f"{k} {NO_VALUE}": colors[k] for k in data}
        handles = draw_depth_profile(ax, profiles, "variance", colors)
        if data:
            ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.5")
        ax.set_ylabel("Feature map variance")
        ax.set_title(epoch_title("Feature map variance", {k: v[1] for k, v in data.items()}))
        if handles:
            fig.legend(handles=handles, loc="outside upper center", ncol=2)
        note_missing(fig, [s["label"] for s in series if s["label"] not in data])
        save(fig, out)
    return fig
