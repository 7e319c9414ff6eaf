"""Feature-map variance against depth (paper Fig. 9), from the ``variance`` table.

One panel: ``variance`` (the variance of a feature map over spatial positions, Bessel
corrected, averaged over images and channels) on a log axis against normalized depth
(``depth``), one line per series in map order (``map_index``). Markers show the map
``kind``: filled = after an MSA sub-block ("msa"), open = any other map; the depths of the
MSA maps of the first series that has any are shaded as light grey bands. Maps without a
value (NaN: one spatial position, 1x1, see `vitprobe.probes.variance`) get no point, and the
line joins the maps that have one; a series with no such map keeps its legend entry, marked
"(every map 1x1)". A band in the series' colour over each map's interval
(`vitprobe.figures.bars`): with several seeds the t-interval of the per-seed values, with
one the run's bootstrap over images (``variance_low``/``_high``); the note under the figure
says which.

Rows are taken at the figure's ``epoch`` (default: each series' latest epoch); several seeds
of a run are averaged (arithmetic mean of the variance). A series without rows is named on
the figure.
"""

from __future__ import annotations

import pandas as pd

from vitprobe.figures.bars import IMAGES, level_of, seed_profile
from vitprobe.figures.panels import draw_depth_profile, epoch_title, finish, series_rows
from vitprobe.figures.style import COLUMN_WIDTH, color, paper_style, plt

NO_VALUE = "(every map 1x1)"  # legend mark of a series whose every variance is NaN


def series_profiles(table: pd.DataFrame, series: list[dict], epoch: int | None, level: float):
    """Per present series: (one row per map with the seed-mean variance and its interval,
    epoch, the maps' Stats)."""
    out = {}
    for s in series:
        rows = series_rows(table, s, epoch, one_run=True)
        if len(rows):
            profile, found = seed_profile(rows, ["map_index"], "variance", level, IMAGES, ("depth", "kind"))
            out[s["label"]] = (profile.dropna(subset=["variance"]),  # 1x1 maps: no value, no point
                               int(rows["epoch"].iloc[0]), found)
    return out


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    level = level_of(spec, tables["variance"])
    data = series_profiles(tables["variance"], series, spec.get("epoch"), level)
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
        finish(fig, level, {"variance": [st for v in data.values() for st in v[2]]},
               [s["label"] for s in series if s["label"] not in data], out, kind="bands")
    return fig
