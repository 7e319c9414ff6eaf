"""Class token vs global average pooling (paper Fig. 6), e.g. ViT-Ti against ViT-Ti with a
GAP head, at the figure's epoch (default: the latest epoch of each table).

(a) One labelled marker per series at (nll_train, error) of its full-data runs, from the
    `eval` table (columns nll_train, error; fraction 1 unless the series names a fraction);
    with several seeds the mean, and error bars over the runs' min..max.
(b, c) Hessian max-eigenvalue spectra of the series from the `hessian` table (column
    eigenvalue, all batches and ranks pooled): negative eigenvalues left, positive right,
    density on a log axis; NEP (share of negative eigenvalues) and APE (mean of the positive
    ones) in the legend.

A series without rows is listed under the figure (with the table it lacks) instead of failing.
"""

from __future__ import annotations

import pandas as pd

from vitprobe.figures.panels import (
    draw_nll_error,
    figure_epoch,
    finish_with_spectra,
    layout,
    missing_label,
    nll_error_points,
    series_eigenvalues,
)
from vitprobe.figures.style import paper_style, plt


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    eval_epoch = figure_epoch(tables["eval"], spec.get("epoch"))
    hess_epoch = figure_epoch(tables["hessian"], spec.get("epoch"))
    points, _ = nll_error_points(tables["eval"], series, eval_epoch)
    values = series_eigenvalues(tables["hessian"], series, hess_epoch)
    with_points = {p[0] for p in points}
    missing = [missing_label(s["label"], [t for t, ok in [("eval", s["label"] in with_points),
                                                          ("hessian", len(values[s["label"]]) > 0)] if not ok], 2)
               for s in series]
    with paper_style():
        fig, ax_a, ax_neg, ax_pos = layout()
        ax_a.set_title("(a) Error and NLL" + (f", epoch {eval_epoch}" if eval_epoch is not None else ""))
        draw_nll_error(ax_a, points)
        finish_with_spectra(fig, ax_neg, ax_pos, values, spec.get("bins", 40), hess_epoch, missing, out)
    return fig
