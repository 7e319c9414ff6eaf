"""Accuracy against robustness on CIFAR-C (paper Fig. 12b), from the `corruption` table at
the figure's epoch (default: the latest).

One labelled marker per series: x = clean test accuracy (column clean_accuracy), y = the
run's mean of `accuracy` over the 15 standard corruptions x the severities in the table
(the 4 extra corruptions, when present, are left out of the mean, as in the paper's mCA).
Full-data runs (fraction 1 unless the series names one). A series without rows is listed
under the figure.

Bars (`vitprobe.figures.bars`): with several seeds the mean over seeds and the t-interval of
the per-seed values; with one seed the run's own interval: x: Wilson over the test images
(clean_accuracy_low/high); y: the bootstrap over images of each image's correctness averaged
over the corruptions and severities of the mean (from `corruption_images`: one resample of
images for all of them, since every image is seen under each). The note says which.
"""

from __future__ import annotations

import pandas as pd

from vitprobe.config import load
from vitprobe.data.cifar_c import CORRUPTIONS
from vitprobe.figures.bars import IMAGES, WILSON_IMAGES, image_mean_interval, level_of, stat
from vitprobe.figures.panels import draw_labelled_points, figure_epoch, finish, full_data, series_rows
from vitprobe.figures.style import COLUMN_WIDTH, paper_style, plt
from vitprobe.stats import Intervals

CLEAN_LABEL = "Clean test accuracy (%)"
CORRUPTED_LABEL = "Mean accuracy on corrupted images (%)\n(15 corruptions × severities)"


def _standard(units: pd.DataFrame) -> pd.Series:
    return units["corruption"].isin(CORRUPTIONS)


def accuracy_robustness_points(table: pd.DataFrame, series: list[dict], epoch: int | None,
                               images: pd.DataFrame | None = None, ci: Intervals | None = None,
                               level: float | None = None):
    """(label, index, clean accuracy Stat, mean corrupted accuracy Stat) per series with rows,
    and the labels of the series without rows; the run's own interval of the mean from the
    per-image table `images` (none without it)."""
    ci = ci or load.intervals()
    level = level or ci.level
    table = table[table["corruption"].isin(CORRUPTIONS)]
    points, missing = [], []
    for i, s in enumerate(series):
        rows = full_data(series_rows(table, s, epoch), s)
        if len(rows):
            corrupted = stat(rows, "accuracy", level, (IMAGES[0], None),
                             interval=lambda run: image_mean_interval(images, run, "correct", ci, keep=_standard))
            points.append((s["label"], i, stat(rows, "clean_accuracy", level, WILSON_IMAGES), corrupted))
        else:
            missing.append(s["label"])
    return points, missing


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    table = tables["corruption"]
    epoch = figure_epoch(table, spec.get("epoch"))
    ci, level = load.intervals(spec), level_of(spec, table)
    points, missing = accuracy_robustness_points(table, spec["series"], epoch, tables.get("corruption_images"), ci,
                                                 level)
    with paper_style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.6))
        ax.set_title("Robustness on CIFAR-C" + (f", epoch {epoch}" if epoch is not None else ""))
        draw_labelled_points(ax, points, CLEAN_LABEL, CORRUPTED_LABEL, margins=(0.25, 0.2))
        finish(fig, level, {"clean accuracy": [p[2] for p in points],
                            "mean corrupted accuracy": [p[3] for p in points]}, missing, out)
    return fig
