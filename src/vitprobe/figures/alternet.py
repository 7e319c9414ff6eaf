"""Accuracy and robustness of AlterNet (paper Fig. 12), e.g. pre-activation ResNet-50 against
Alter-ResNet-50, at the figure's epoch (default: the latest epoch of each table), with
frequency-band noise as the robustness measure. The paper's Fig. 12b on CIFAR-100-C is
`fig_corruption`, its build-up rule (Fig. 12a) `fig_buildup`.

(a) One labelled marker per series at (test accuracy, robustness): test accuracy = 100 -
    error from the `eval` table; robustness = the run's mean of `accuracy` over all noise
    frequencies (column freq) of the `robustness` table, i.e. the mean accuracy under
    frequency-band noise. Full-data runs (fraction 1 unless the series names a fraction).
(b, c) Hessian max-eigenvalue spectra of the series from the `hessian` table (column
    eigenvalue, pooled over batches, ranks and seeds, the legend saying how many seeds):
    negative eigenvalues left, positive right; NEP and APE of the histogram in the legend.
(d) NEP (%) and APE per series from the `hessian_summary` table.

Bars (`vitprobe.figures.bars`): with several seeds the mean over seeds and the t-interval of
the per-seed values; with one seed the run's own interval: test accuracy: Wilson over the
test images (the eval table's error_low/high); robustness: the bootstrap over images of
each image's accuracy averaged over the noise frequencies (`robustness_images`); NEP, APE:
bootstrap over the mini-batches. The note under the figure says which. A series without
rows is listed under the figure (with the tables it lacks) instead of failing.
"""

from __future__ import annotations

import pandas as pd

from vitprobe.config import load
from vitprobe.figures.bars import IMAGES, WILSON_TEST, image_mean_interval, level_of, shifted, stat
from vitprobe.figures.panels import (
    draw_labelled_points,
    draw_spectra_panels,
    figure_epoch,
    finish,
    full_data,
    layout,
    missing_label,
    series_rows,
    series_spectra,
    spectrum_quantities,
)
from vitprobe.figures.style import paper_style, plt
from vitprobe.stats import Intervals

ACCURACY_LABEL = "Test accuracy (%)"
ROBUSTNESS_LABEL = "Accuracy under band noise (%)\n(mean over frequencies)"


def accuracy_robustness_points(tables: dict[str, pd.DataFrame], series: list[dict], epochs: dict, ci: Intervals,
                               level: float):
    """(label, index, accuracy Stat, robustness Stat) per series with full-data rows in both
    tables, and per series the tables it lacks."""
    points, lacking = [], {}
    images = tables.get("robustness_images")
    for i, s in enumerate(series):
        ev = full_data(series_rows(tables["eval"], s, epochs["eval"]), s)
        rob = full_data(series_rows(tables["robustness"], s, epochs["robustness"]), s)
        lacking[s["label"]] = [t for t, rows in [("eval", ev), ("robustness", rob)] if not len(rows)]
        if len(ev) and len(rob):
            robustness = stat(rob, "accuracy", level, (IMAGES[0], None),
                              interval=lambda run: image_mean_interval(images, run, "correct", ci))
            points.append((s["label"], i, shifted(stat(ev, "error", level, WILSON_TEST), 100.0, -1.0), robustness))
    return points, lacking


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    epochs = {t: figure_epoch(tables[t], spec.get("epoch")) for t in ("eval", "robustness", "hessian")}
    ci = load.intervals(spec)
    level = level_of(spec, tables["eval"], tables["robustness"], tables.get("hessian_summary"))
    points, lacking = accuracy_robustness_points(tables, series, epochs, ci, level)
    values, found, seeds = series_spectra(tables, series, epochs["hessian"], level)
    missing = [missing_label(s["label"], lacking[s["label"]] + ([] if len(values[s["label"]]) else ["hessian"]), 3)
               for s in series]
    with paper_style():
        fig, ax_a, axes = layout()
        ax_a.set_title("(a) Accuracy and robustness" + (f", epoch {epochs['eval']}" if epochs["eval"] is not None
                                                        else ""))
        draw_labelled_points(ax_a, points, ACCURACY_LABEL, ROBUSTNESS_LABEL, margins=(0.25, 0.2))
        draw_spectra_panels(fig, axes, values, found, seeds, spec.get("bins", 40), epochs["hessian"])
        finish(fig, level, {"test accuracy": [p[2] for p in points], "robustness": [p[3] for p in points],
                            **spectrum_quantities(found)}, missing, out)
    return fig
