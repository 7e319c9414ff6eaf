"""Accuracy against robustness on CIFAR-C (paper Fig. 12b), from the `corruption` table at
the figure's epoch (default: the latest).

One labelled marker per series: x = clean test accuracy (column clean_accuracy), y = the
run's mean of `accuracy` over the 15 standard corruptions x the severities in the table
(the 4 extra corruptions, when present, are left out of the mean, as in the paper's mCA).
Full-data runs (fraction 1 unless the series names one); with several seeds the mean over
runs and error bars over their min..max. A series without rows is listed under the figure.
"""

from __future__ import annotations

import pandas as pd

from vitprobe.data.cifar_c import CORRUPTIONS
from vitprobe.figures.panels import draw_labelled_points, figure_epoch, full_data, series_rows, stat
from vitprobe.figures.style import COLUMN_WIDTH, note_missing, paper_style, plt, save

CLEAN_LABEL = "Clean test accuracy (%)"
CORRUPTED_LABEL = "Mean accuracy on corrupted images (%)\n(15 corruptions × severities)"


def accuracy_robustness_points(table: pd.DataFrame, series: list[dict], epoch: int | None):
    """(label, index, clean accuracy Stat, mean corrupted accuracy Stat) per series with rows,
    and the labels of the series without rows."""
    table = table[table["corruption"].isin(CORRUPTIONS)]
    points, missing = [], []
    for i, s in enumerate(series):
        rows = full_data(series_rows(table, s, epoch), s)
        if len(rows):
            points.append((s["label"], i, stat(rows, "clean_accuracy"), stat(rows, "accuracy")))
        else:
            missing.append(s["label"])
    return points, missing


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    table = tables["corruption"]
    epoch = figure_epoch(table, spec.get("epoch"))
    points, missing = accuracy_robustness_points(table, spec["series"], epoch)
    with paper_style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.6))
        ax.set_title("Robustness on CIFAR-C" + (f", epoch {epoch}" if epoch is not None else ""))
        draw_labelled_points(ax, points, CLEAN_LABEL, CORRUPTED_LABEL, margins=(0.25, 0.2))
        note_missing(fig, missing)
        save(fig, out)
    return fig
