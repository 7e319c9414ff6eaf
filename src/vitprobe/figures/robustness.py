"""Robustness to frequency-band noise (paper Fig. 2b), from the ``robustness`` table.

One panel: the change in test accuracy when band-limited random noise is added
(``delta_accuracy`` = ``accuracy`` - ``clean_accuracy``, in percentage points) against the
centre frequency of the noise band (``freq``, in units of π), one line with markers per
series in frequency order, and a horizontal line at 0. The legend gives each series' clean
accuracy (``clean_accuracy``, %); the title the noise amplitude ``eps`` and band half width
``width`` when all series share them. A band in the series' colour over each frequency's
interval of ``delta_accuracy`` (`vitprobe.figures.bars`): with several seeds the t-interval
of the per-seed values, with one the run's paired bootstrap over the images, each seen clean
and noisy (``delta_accuracy_low``/``_high``); the note under the figure says which.

Rows are taken at the figure's ``epoch`` (default: each series' latest epoch); several seeds
of a run are averaged. A series without rows is named on the figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitprobe.figures.bars import PAIRED_IMAGES, level_of, seed_profile
from vitprobe.figures.panels import band, epoch_title, finish, seed_mean, series_rows
from vitprobe.figures.style import COLUMN_WIDTH, color, paper_style, plt


def series_curves(table: pd.DataFrame, series: list[dict], epoch: int | None, level: float):
    """Per present series: (one row per frequency with seed-mean delta_accuracy, its interval
    and clean_accuracy, the series' rows, epoch, the Stats of delta_accuracy)."""
    out = {}
    for s in series:
        rows = series_rows(table, s, epoch, one_run=True)
        if len(rows):
            curve, found = seed_profile(rows, ["freq"], "delta_accuracy", level, PAIRED_IMAGES)
            curve = curve.merge(seed_mean(rows, ["freq"], ["clean_accuracy", "accuracy"]), on="freq")
            out[s["label"]] = (curve, rows, int(rows["epoch"].iloc[0]), found)
    return out


def clean_accuracy(curve: pd.DataFrame) -> float:
    """The series' clean accuracy (%): the same on every row of a run; mean over seeds."""
    return float(curve["clean_accuracy"].mean())


def _noise_text(data: dict) -> str:
    if not data:
        return ""
    rows = pd.concat([v[1] for v in data.values()])
    eps, width = np.unique(rows["eps"]), np.unique(rows["width"])
    parts = []
    if len(eps) == 1:
        parts.append(f"ε = {eps[0]:g}")
    if len(width) == 1:
        parts.append(f"band half width {width[0]:g}π")
    return ", ".join(parts)


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    level = level_of(spec, tables["robustness"])
    data = series_curves(tables["robustness"], series, spec.get("epoch"), level)
    with paper_style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 3.0), layout="constrained")
        ax.axhline(0, color="0.5", lw=0.8, ls="--", zorder=0)
        for i, s in enumerate(series):
            if s["label"] not in data:
                continue
            curve = data[s["label"]][0]
            ax.plot(curve["freq"], curve["delta_accuracy"], color=color(i), marker="o", ms=3.5,
                    label=f"{s['label']} (clean {clean_accuracy(curve):.1f}%)")
            band(ax, curve["freq"], curve["delta_accuracy_low"], curve["delta_accuracy_high"], color(i))
        if not data:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.5")
        ax.set_xlim(0, 1)
        ax.set_xlabel("Noise frequency (units of π)")
        ax.set_ylabel("Δ accuracy (percentage points)")
        noise = _noise_text(data)
        title = epoch_title("Accuracy under band-limited noise", {k: v[2] for k, v in data.items()})
        ax.set_title(title + ("\n" + noise if noise else ""))
        if data:
            fig.legend(loc="outside upper center", ncol=1 if len(data) < 3 else 2)
        finish(fig, level, {"Δ accuracy": [st for v in data.values() for st in v[3]]},
               [s["label"] for s in series if s["label"] not in data], out, kind="bands")
    return fig
