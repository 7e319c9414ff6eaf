"""Accuracy and robustness of AlterNet (paper Fig. 12), e.g. pre-activation ResNet-50 against
Alter-ResNet-50, at the figure's epoch (default: the latest epoch of each table), with
frequency-band noise as the robustness measure. The paper's Fig. 12b on CIFAR-100-C is
`fig_corruption`, its build-up rule (Fig. 12a) `fig_buildup`.

(a) One labelled marker per series at (test accuracy, robustness): test accuracy = 100 -
    error from the `eval` table; robustness = the run's mean of `accuracy` over all noise
    frequencies (column freq) of the `robustness` table, i.e. the mean accuracy under
    frequency-band noise. Full-data runs (fraction 1 unless the series names a fraction);
    with several seeds the mean over runs and error bars over their min..max.
(b, c) Hessian max-eigenvalue spectra of the series from the `hessian` table (column
    eigenvalue, pooled over batches and ranks): negative eigenvalues left, positive right;
    NEP and APE in the legend.

A series without rows is listed under the figure (with the tables it lacks) instead of failing.
"""

from __future__ import annotations

import pandas as pd

from vitprobe.figures.panels import (
    draw_labelled_points,
    figure_epoch,
    finish_with_spectra,
    full_data,
    layout,
    missing_label,
    series_eigenvalues,
    series_rows,
    shifted,
    stat,
)
from vitprobe.figures.style import paper_style, plt

ACCURACY_LABEL = "Test accuracy (%)"
ROBUSTNESS_LABEL = "Accuracy under band noise (%)\n(mean over frequencies)"


def accuracy_robustness_points(tables: dict[str, pd.DataFrame], series: list[dict], epochs: dict):
    """(label, index, accuracy Stat, robustness Stat) per series with full-data rows in both
    tables, and per series the tables it lacks."""
    points, lacking = [], {}
    for i, s in enumerate(series):
        ev = full_data(series_rows(tables["eval"], s, epochs["eval"]), s)
        rob = full_data(series_rows(tables["robustness"], s, epochs["robustness"]), s)
        lacking[s["label"]] = [t for t, rows in [("eval", ev), ("robustness", rob)] if not len(rows)]
        if len(ev) and len(rob):
            points.append((s["label"], i, shifted(stat(ev, "error"), 100.0, -1.0), stat(rob, "accuracy")))
    return points, lacking


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    epochs = {t: figure_epoch(tables[t], spec.get("epoch")) for t in ("eval", "robustness", "hessian")}
    points, lacking = accuracy_robustness_points(tables, series, epochs)
    values = series_eigenvalues(tables["hessian"], series, epochs["hessian"])
    missing = [missing_label(s["label"], lacking[s["label"]] + ([] if len(values[s["label"]]) else ["hessian"]), 3)
               for s in series]
    with paper_style():
        fig, ax_a, ax_neg, ax_pos = layout()
        ax_a.set_title("(a) Accuracy and robustness" + (f", epoch {epochs['eval']}" if epochs["eval"] is not None
                                                        else ""))
        draw_labelled_points(ax_a, points, ACCURACY_LABEL, ROBUSTNESS_LABEL, margins=(0.25, 0.2))
        finish_with_spectra(fig, ax_neg, ax_pos, values, spec.get("bins", 40), epochs["hessian"], missing, out)
    return fig
